/// A read-only byte trie for prefix lookups: the longest vocabulary piece starting at a position
/// (WordPiece), or every piece starting there (SentencePiece unigram).
///
/// Nodes are numbered in depth-first order and the children of a node are contiguous (sorted by
/// byte), so a walk touches a few neighbouring cache lines instead of a hash table; the root's
/// 256 children are a direct table.
///
/// ```swift
/// var builder = PrefixTrie.Builder()
/// builder.insert(Array("un".utf8), 1); builder.insert(Array("unit".utf8), 2)
/// let trie = builder.build()
/// // trie.longestPrefix("units", from: 0) == (end: 4, id: 2)
/// ```
struct PrefixTrie: Sendable {
    /// Collects keys; the last insertion of a key wins.
    struct Builder {
        private var keys: [([UInt8], Int32)] = []

        mutating func insert(_ bytes: [UInt8], _ id: Int32) {
            keys.append((bytes, id))
        }

        func build() -> PrefixTrie {
            PrefixTrie(keys: keys)
        }
    }

    typealias Node = UInt32
    static let none = Node.max

    fileprivate struct NodeData {
        var firstEdge: Int32
        var edgeCount: Int32
        var value: Int32
    }

    private var nodes: [NodeData] = []
    private var labels: [UInt8] = []
    private var targets: [Node] = []
    private var rootTable = [Node](repeating: PrefixTrie.none, count: 256)

    private init(keys: [([UInt8], Int32)]) {
        // Sort by bytes, keeping the last insertion of duplicate keys.
        let order = keys.indices.sorted { a, b in
            let x = keys[a].0, y = keys[b].0
            return x.lexicographicallyPrecedes(y) || (x == y && a < b)
        }
        var unique: [([UInt8], Int32)] = []
        for i in order {
            if let last = unique.last, last.0 == keys[i].0 { unique[unique.count - 1] = keys[i] } else { unique.append(keys[i]) }
        }
        _ = build(unique, 0..<unique.count, depth: 0)
        if let root = nodes.first {
            for e in Int(root.firstEdge)..<Int(root.firstEdge + root.edgeCount) {
                rootTable[Int(labels[e])] = targets[e]
            }
        }
    }

    /// Builds the node for `keys[range]` (all sharing their first `depth` bytes); returns its index.
    private mutating func build(_ keys: [([UInt8], Int32)], _ range: Range<Int>, depth: Int) -> Node {
        let index = nodes.count
        nodes.append(NodeData(firstEdge: 0, edgeCount: 0, value: -1))
        var lower = range.lowerBound
        if lower < range.upperBound && keys[lower].0.count == depth {
            nodes[index].value = keys[lower].1
            lower += 1
        }
        // Group the rest by their byte at `depth`.
        var groups: [(UInt8, Range<Int>)] = []
        var i = lower
        while i < range.upperBound {
            let b = keys[i].0[depth]
            var j = i + 1
            while j < range.upperBound && keys[j].0[depth] == b { j += 1 }
            groups.append((b, i..<j))
            i = j
        }
        let first = labels.count
        nodes[index].firstEdge = Int32(first)
        nodes[index].edgeCount = Int32(groups.count)
        labels.append(contentsOf: groups.map(\.0))
        targets.append(contentsOf: repeatElement(PrefixTrie.none, count: groups.count))
        for (k, group) in groups.enumerated() {
            targets[first + k] = build(keys, group.1, depth: depth + 1)
        }
        return Node(index)
    }

    /// Unchecked access to the arrays, valid inside `withView` (the hot loops use this).
    struct View {
        fileprivate let nodes: UnsafeBufferPointer<NodeData>
        fileprivate let labels: UnsafeBufferPointer<UInt8>
        fileprivate let targets: UnsafeBufferPointer<Node>
        fileprivate let root: UnsafeBufferPointer<Node>

        /// The child of `node` along `byte`, or `PrefixTrie.none`. Node ids come from this trie.
        @inline(__always)
        func child(of node: Node, _ byte: UInt8) -> Node {
            if node == 0 { return root[Int(byte)] }
            let n = nodes.baseAddress.unsafelyUnwrapped[Int(node)]
            let l = labels.baseAddress.unsafelyUnwrapped
            var e = Int(n.firstEdge)
            let end = e + Int(n.edgeCount)
            if n.edgeCount <= 8 {
                while e < end {
                    let label = l[e]
                    if label == byte { return targets.baseAddress.unsafelyUnwrapped[e] }
                    if label > byte { return PrefixTrie.none }
                    e += 1
                }
                return PrefixTrie.none
            }
            var lo = e, hi = end
            while lo < hi {
                let mid = (lo + hi) >> 1
                if l[mid] < byte { lo = mid + 1 } else { hi = mid }
            }
            return lo < end && l[lo] == byte ? targets.baseAddress.unsafelyUnwrapped[lo] : PrefixTrie.none
        }

        /// The id stored at `node`, or -1.
        @inline(__always)
        func value(of node: Node) -> Int32 {
            nodes.baseAddress.unsafelyUnwrapped[Int(node)].value
        }
    }

    @inline(__always)
    func withView<R>(_ body: (View) throws -> R) rethrows -> R {
        try nodes.withUnsafeBufferPointer { n in
            try labels.withUnsafeBufferPointer { l in
                try targets.withUnsafeBufferPointer { t in
                    try rootTable.withUnsafeBufferPointer { r in
                        try body(View(nodes: n, labels: l, targets: t, root: r))
                    }
                }
            }
        }
    }

    /// The child of `node` along `byte`, or `PrefixTrie.none`.
    func child(of node: Node, _ byte: UInt8) -> Node {
        withView { $0.child(of: node, byte) }
    }

    /// The id stored at `node`, or -1.
    func value(of node: Node) -> Int32 {
        nodes[Int(node)].value
    }

    /// The end offset and id of the longest piece that `p[start...]` starts with.
    @inline(__always)
    func longestPrefix(_ p: UnsafeBufferPointer<UInt8>, from start: Int) -> (end: Int, id: Int32)? {
        if nodes.isEmpty { return nil }
        return withView { v in
            var node: Node = 0
            var best: (Int, Int32)? = nil
            var i = start
            while i < p.count {
                node = v.child(of: node, p[i])
                if node == PrefixTrie.none { break }
                i += 1
                let value = v.value(of: node)
                if value >= 0 { best = (i, value) }
            }
            return best
        }
    }
}
