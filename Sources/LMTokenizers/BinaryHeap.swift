/// An element of a `BinaryHeap`: `before(a, b)` is true when `a` must come out first.
protocol HeapElement {
    static func before(_ a: Self, _ b: Self) -> Bool
}

/// A binary heap (priority queue) for the merge loops of BPE: pops the element that comes
/// `before` all others.
///
/// ```swift
/// var heap = BinaryHeap<MergeCandidate>()
/// heap.push(candidate)
/// while let next = heap.pop() { ... }
/// ```
struct BinaryHeap<Element: HeapElement> {
    private var items: [Element] = []

    init(capacity: Int = 0) {
        items.reserveCapacity(capacity)
    }

    var isEmpty: Bool { items.isEmpty }

    mutating func push(_ e: Element) {
        items.append(e)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            if !Element.before(items[i], items[parent]) { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> Element? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < items.count && Element.before(items[l], items[m]) { m = l }
                if r < items.count && Element.before(items[r], items[m]) { m = r }
                if m == i { break }
                items.swapAt(i, m)
                i = m
            }
        }
        return top
    }
}
