#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import LMCore

/// SentencePiece BPE written in Swift, for vocabularies that come as piece/score/type tables
/// rather than a `.model` file: the Llama-style (`tokenizer.ggml.model = llama`) vocabulary of a
/// llama.cpp `.gguf` — Llama 2, Gemma 3 — tokenized exactly as llama.cpp's "SPM" tokenizer does.
///
/// Encoding (`llama_tokenize`):
/// 1. **Partition.** The text is cut around the tokens that are matched as whole strings before
///    any merging: user-defined pieces (type 4: Gemma's `"\n"`, `"\n\n"`, space and tab runs,
///    `<b>`) always, control and unknown pieces (types 3, 2: `<bos>`, `<start_of_turn>`) only
///    with `parseSpecialTokens`. As llama.cpp does, these tokens are taken longest first (equal
///    lengths by id), each one splitting every still-unsplit stretch at its leftmost
///    non-overlapping occurrences — not a leftmost-longest scan.
/// 2. **Merge.** Each stretch of plain text (with a `▁` before it when `addSpacePrefix`) has its
///    spaces replaced by `▁`, is split into UTF-8 characters, and adjacent symbols are merged —
///    the pair whose merged string is a vocabulary entry (any type) with the highest score
///    first, the leftmost on ties — until no merge applies.
/// 3. A final symbol that is not a vocabulary entry (only a single character can be) becomes its
///    UTF-8 bytes as `<0xXX>` pieces (or the single-byte piece; `<unk>` when neither exists).
/// No normalization. `encode(_:addSpecialTokens: true)` puts BOS first (and EOS last) as the
/// file's `add_bos_token`/`add_eos_token` say.
///
/// Decoding (`llama_detokenize`): a normal piece with `▁` turned back into spaces, a byte piece
/// as its byte, a user-defined piece as its text, a control or unknown piece as its text only
/// when special tokens are kept (unused-type pieces decode to nothing); with `addSpacePrefix`
/// the first piece loses one leading space (llama.cpp keeps it when it has dropped a leading
/// BOS, so `[<s>, ▁Hello]` decodes to " Hello"). `decode(_:skipSpecialTokens: true)` is
/// `llama_detokenize(remove_special: true, unparse_special: false)`,
/// `skipSpecialTokens: false` is `(remove_special: false, unparse_special: true)`.
///
/// The token types must be the ones llama.cpp uses (`GGUFVocabulary.llamaCppTokenTypes`, where
/// control-looking tokens such as Gemma's `</s>` are made control). For `.model` files,
/// `SentencePieceTokenizer` (libsentencepiece and its Swift twin `SentencePieceEncoder`) is used
/// instead; the tests check this type against both on the llama-tiny vocabulary, against
/// llama.cpp's vectors, and against llama.cpp on the Gemma 3 vocabulary.
public final class SentencePieceBPETokenizer: Tokenizer, @unchecked Sendable {
    public let specialTokens: SpecialTokens
    public let postProcessor: PostProcessor
    public let addsSpecialTokensByDefault = false
    public let addSpacePrefix: Bool
    /// Whether a sequence starts with BOS / ends with EOS (`tokenizer.ggml.add_bos_token`, …);
    /// `decode(_:skipSpecialTokens: true)` drops such a BOS/EOS as llama.cpp does.
    public let addBOS: Bool
    public let addEOS: Bool
    public var vocabularySize: Int { pieces.count }
    public var summary: String {
        "SentencePiece BPE (Swift, llama.cpp SPM rules, from a piece table), \(pieces.count) pieces"
            + (byteTokens[0] >= 0 ? ", byte fallback" : "")
            + (partitioner.count > 0 ? ", \(partitioner.count) special/user-defined" : "")
    }

    private let pieces: [String]
    private let scores: [Float]
    /// `scoreKey` of each score: merge candidates are ordered by (score key, leftmost).
    private let scoreKeys: [UInt32]
    private let types: [UInt8]
    private let pieceIds: ByteSliceMap
    /// byte -> the id llama.cpp falls back to: `<0xXX>`, else the one-byte piece; -1 if neither.
    private let byteTokens: [Int32]
    /// The bytes each id decodes to with special tokens kept (`token_to_piece(special: true)`),
    /// all in one arena: id i is `pieceArena[pieceOffsets[i]..<pieceOffsets[i + 1]]`.
    private let pieceArena: [UInt8]
    private let pieceOffsets: [Int32]
    private let partitioner: LlamaTokenPartitioner

    private static let space: [UInt8] = [0xE2, 0x96, 0x81]   // ▁ U+2581

    /// The ids generation ends at (llama.cpp's end-of-generation set: EOS, `<end_of_turn>`, …).
    public let endOfGenerationTokens: [Int]

    /// Builds the tokenizer from the vocabulary tables (types as in GGUF / SentencePiece:
    /// 1 normal, 2 unknown, 3 control, 4 user defined, 5 unused, 6 byte). BOS/EOS are added as
    /// `addBOS`/`addEOS` say, unless a `postProcessor` is given.
    public init(pieces: [String], scores: [Float], types: [Int], specialTokens: SpecialTokens,
                addSpacePrefix: Bool = true, addBOS: Bool = true, addEOS: Bool = false,
                endOfGenerationTokens: [Int]? = nil, postProcessor: PostProcessor? = nil) throws {
        self.endOfGenerationTokens = endOfGenerationTokens ?? specialTokens.eos.map { [$0] } ?? []
        guard !pieces.isEmpty, scores.count == pieces.count, types.count == pieces.count else {
            throw LMError(.invalidConfig, "SentencePiece tables disagree: \(pieces.count) pieces, \(scores.count) scores, \(types.count) types; they must have one entry per piece")
        }
        // llama.cpp gives an empty piece the text "[EMPTY_<id>]".
        var pieces = pieces
        for i in pieces.indices where pieces[i].isEmpty { pieces[i] = "[EMPTY_\(i)]" }
        self.pieces = pieces
        self.scores = scores
        self.scoreKeys = scores.map(Self.scoreKey)
        self.types = types.map { UInt8(clamping: $0) }
        self.specialTokens = specialTokens
        self.addSpacePrefix = addSpacePrefix
        self.addBOS = addBOS && specialTokens.bos != nil
        self.addEOS = addEOS && specialTokens.eos != nil
        self.postProcessor = postProcessor
            ?? .bosEos(bos: addBOS ? specialTokens.bos : nil, eos: addEOS ? specialTokens.eos : nil)

        let n = pieces.count
        var map = ByteSliceMap(capacity: n)
        var arena: [UInt8] = []
        arena.reserveCapacity(n * 8)
        var offsets = [Int32](repeating: 0, count: n + 1)
        var candidates: [LlamaTokenPartitioner.Candidate] = []
        for i in 0..<n {
            var p = pieces[i]
            p.withUTF8 { u in
                map.insert(UnsafeRawBufferPointer(u), Int32(i))
                switch SentencePiecePieceType(rawValue: types[i]) {
                case .normal:
                    // ▁ -> space
                    var k = 0
                    while k < u.count {
                        if k + 2 < u.count && u[k] == 0xE2 && u[k + 1] == 0x96 && u[k + 2] == 0x81 {
                            arena.append(0x20)
                            k += 3
                        } else {
                            arena.append(u[k])
                            k += 1
                        }
                    }
                case .control, .unknown, .userDefined:
                    arena.append(contentsOf: u)
                    candidates.append(.init(bytes: Array(u), id: Int32(i),
                                            alwaysSplit: types[i] == SentencePiecePieceType.userDefined.rawValue))
                case .byte:
                    arena.append(Self.byteValue(u))
                default:
                    break   // unused / undefined: decodes to nothing
                }
            }
            offsets[i + 1] = Int32(arena.count)
        }
        var byteTokens = [Int32](repeating: -1, count: 256)
        let hex = Array("0123456789ABCDEF".utf8)
        for b in 0..<256 {
            let name: [UInt8] = [0x3C, 0x30, 0x78, hex[b >> 4], hex[b & 15], 0x3E]   // <0xAB>
            let id = name.withUnsafeBytes { map.value(for: $0) }
                ?? [UInt8(b)].withUnsafeBytes { map.value(for: $0) }
            if let id { byteTokens[b] = id }
        }
        self.pieceIds = map
        self.byteTokens = byteTokens
        self.pieceArena = arena
        self.pieceOffsets = offsets
        self.partitioner = LlamaTokenPartitioner(candidates)
    }

    /// `<0xAB>` -> 0xAB.
    static func parseBytePiece(_ p: String) -> UInt8? {
        guard p.count == 6, p.hasPrefix("<0x"), p.hasSuffix(">") else { return nil }
        return UInt8(p.dropFirst(3).dropLast(), radix: 16)
    }

    /// The byte a byte piece stands for, read as llama.cpp does: the hex digits after `<0x`
    /// (up to two, stopping at the first non-digit; 0 when there are none).
    private static func byteValue(_ u: UnsafeBufferPointer<UInt8>) -> UInt8 {
        var v: UInt8 = 0
        for k in 3..<min(5, u.count) {
            let c = u[k]
            let d: UInt8
            switch c {
            case 0x30...0x39: d = c - 0x30
            case 0x41...0x46: d = c - 0x41 + 10
            case 0x61...0x66: d = c - 0x61 + 10
            default: return v
            }
            v = v &* 16 &+ d
        }
        return v
    }

    // MARK: Encoding

    public func encode(_ text: String, parseSpecialTokens: Bool) throws -> [Int] {
        var copy = text
        return copy.withUTF8 { p in
            var out: [Int] = []
            out.reserveCapacity(p.count / 3 + 4)
            var session = Session()
            for segment in partitioner.partition(p, parseSpecial: parseSpecialTokens) {
                switch segment {
                case .token(let id):
                    out.append(id)
                case .text(let r):
                    // Plain text is never next to plain text, so every stretch follows the
                    // start or a token: llama.cpp's space prefix goes before each one.
                    session.escaped.removeAll(keepingCapacity: true)
                    if addSpacePrefix { session.escaped += Self.space }
                    for b in UnsafeBufferPointer(rebasing: p[r]) {
                        if b == 0x20 { session.escaped += Self.space } else { session.escaped.append(b) }
                    }
                    merge(&session, into: &out)
                }
            }
            return out
        }
    }

    private struct Symbol {
        var start: Int32
        var length: Int32
        var prev: Int32
        var next: Int32
    }

    /// Buffers reused across the text stretches of one `encode`.
    private struct Session {
        var escaped: [UInt8] = []
        var symbols: [Symbol] = []
        var heap: [MergeHeap.Item] = []
    }

    /// llama.cpp's SPM merge (`llm_tokenizer_spm_session`) over `session.escaped`: repeatedly
    /// merge the adjacent pair whose concatenation is a piece with the highest score (leftmost
    /// on ties), then emit each symbol's id, or its bytes when it is not a piece.
    private func merge(_ session: inout Session, into out: inout [Int]) {
        // Take the buffers out of the session (so they are uniquely referenced) and put them back.
        let escaped = session.escaped
        var symbols: [Symbol] = []
        var heapStorage: [MergeHeap.Item] = []
        swap(&symbols, &session.symbols)
        swap(&heapStorage, &session.heap)
        symbols.removeAll(keepingCapacity: true)
        defer {
            swap(&symbols, &session.symbols)
            swap(&heapStorage, &session.heap)
        }
        escaped.withUnsafeBytes { p in
            var offset = 0
            while offset < p.count {
                let len = min(UnicodeText.sequenceLength(p[offset]), p.count - offset)
                let k = Int32(symbols.count)
                symbols.append(Symbol(start: Int32(offset), length: Int32(len), prev: k - 1, next: k + 1))
                offset += len
            }
            if symbols.isEmpty { return }
            symbols[symbols.count - 1].next = -1
            // At most n - 1 first pairs and 2 per merge (n - 1 merges).
            let capacity = 3 * symbols.count
            if heapStorage.count < capacity {
                heapStorage += repeatElement(MergeHeap.Item(key: 0, right: 0, size: 0), count: capacity - heapStorage.count)
            }
            let pieceIds = self.pieceIds
            let scoreKeys = self.scoreKeys
            symbols.withUnsafeMutableBufferPointer { sym in
                heapStorage.withUnsafeMutableBufferPointer { storage in
                    scoreKeys.withUnsafeBufferPointer { scoreKeys in
                        var heap = MergeHeap(items: storage.baseAddress!)
                        @inline(__always)
                        func tryAdd(_ left: Int32, _ right: Int32, _ heap: inout MergeHeap) {
                            if left < 0 || right < 0 { return }
                            let start = Int(sym[Int(left)].start)
                            let size = Int(sym[Int(left)].length + sym[Int(right)].length)
                            guard let id = pieceIds.value(for: UnsafeRawBufferPointer(rebasing: p[start..<start + size])) else { return }
                            heap.push(MergeHeap.Item(
                                key: UInt64(scoreKeys[Int(id)]) << 32 | UInt64(UInt32.max - UInt32(left)),
                                right: right, size: Int32(size)))
                        }
                        for i in 1..<Int32(sym.count) { tryAdd(i - 1, i, &heap) }
                        while let b = heap.pop() {
                            let left = Int(UInt32.max - UInt32(truncatingIfNeeded: b.key))
                            let l = sym[left], r = sym[Int(b.right)]
                            if l.length == 0 || r.length == 0 || l.length + r.length != b.size { continue }
                            sym[left].length += r.length
                            sym[Int(b.right)].length = 0
                            sym[left].next = r.next
                            if r.next >= 0 { sym[Int(r.next)].prev = Int32(left) }
                            tryAdd(sym[left].prev, Int32(left), &heap)
                            tryAdd(Int32(left), sym[left].next, &heap)
                        }
                    }
                }

                var i = 0
                while i >= 0 {
                    let s = sym[i]
                    let slice = UnsafeRawBufferPointer(rebasing: p[Int(s.start)..<Int(s.start + s.length)])
                    if let id = pieceIds.value(for: slice) {
                        out.append(Int(id))
                    } else {
                        // Only a single character can be left unmerged: its bytes.
                        for (k, b) in slice.enumerated() {
                            let id = byteTokens[Int(b)]
                            if id >= 0 {
                                out.append(Int(id))
                            } else if let unk = specialTokens.unk, k == 0 {
                                // No byte pieces (llama.cpp would stop with an error): one <unk>
                                // for the whole character.
                                out.append(unk)
                            }
                        }
                    }
                    i = Int(s.next)
                }
            }
        }
    }

    /// A score as an unsigned integer with the same order (−0 and +0 equal, as floats compare).
    static func scoreKey(_ score: Float) -> UInt32 {
        let bits = (score == 0 ? Float(0) : score).bitPattern
        return bits & 0x8000_0000 != 0 ? ~bits : bits | 0x8000_0000
    }

    // MARK: Decoding

    public func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String {
        String(decoding: detokenize(ids, removeSpecial: skipSpecialTokens, unparseSpecial: !skipSpecialTokens),
               as: UTF8.self)
    }

    /// llama.cpp's `llama_detokenize`, as bytes. Ids out of range become U+FFFD (llama.cpp
    /// rejects them).
    func detokenize(_ ids: [Int], removeSpecial: Bool, unparseSpecial: Bool) -> [UInt8] {
        var lo = 0, hi = ids.count
        var removeSpace = addSpacePrefix
        if removeSpecial && addBOS && hi > 0 && ids[0] == specialTokens.bos {
            lo = 1
            removeSpace = false
        }
        if removeSpecial && addEOS && hi > lo && ids[hi - 1] == specialTokens.eos { hi -= 1 }
        var bytes: [UInt8] = []
        bytes.reserveCapacity((hi - lo) * 6)
        for k in lo..<max(lo, hi) {
            let id = ids[k]
            guard id >= 0 && id < pieces.count else {
                bytes += [0xEF, 0xBF, 0xBD]
                removeSpace = false
                continue
            }
            if unparseSpecial || !isSpecial(id) {
                var a = Int(pieceOffsets[id])
                let b = Int(pieceOffsets[id + 1])
                if removeSpace && a < b && pieceArena[a] == 0x20 { a += 1 }
                bytes.append(contentsOf: pieceArena[a..<b])
            }
            removeSpace = false
        }
        return bytes
    }

    /// llama.cpp's `llama_token_to_piece` (no stripping): the bytes `id` decodes to.
    func pieceBytes(for id: Int, special: Bool) -> ArraySlice<UInt8> {
        guard id >= 0 && id < pieces.count, special || !isSpecial(id) else { return [] }
        return pieceArena[Int(pieceOffsets[id])..<Int(pieceOffsets[id + 1])]
    }

    public func piece(for id: Int) -> String? {
        id >= 0 && id < pieces.count ? pieces[id] : nil
    }

    public func id(for piece: String) -> Int? {
        pieceIds.value(for: piece).map(Int.init)
    }

    /// Control and unknown pieces: what `decode(_:skipSpecialTokens: true)` leaves out.
    public func isSpecial(_ id: Int) -> Bool {
        guard id >= 0 && id < types.count else { return false }
        let t = types[id]
        return t == UInt8(SentencePiecePieceType.control.rawValue) || t == UInt8(SentencePiecePieceType.unknown.rawValue)
    }

    /// The score of a piece.
    public func score(for id: Int) -> Float {
        id >= 0 && id < scores.count ? scores[id] : 0
    }
}

/// The merge candidates of one text stretch: a max-heap on `key` = score key << 32 | (max −
/// left index), so the highest score comes out first and, on equal scores, the leftmost pair.
/// The caller provides storage for every push.
private struct MergeHeap {
    struct Item {
        var key: UInt64
        var right: Int32
        var size: Int32
    }

    let items: UnsafeMutablePointer<Item>
    var count = 0

    @inline(__always)
    mutating func push(_ x: Item) {
        var i = count
        count += 1
        while i > 0 {
            let parent = (i - 1) >> 1
            if items[parent].key >= x.key { break }
            items[i] = items[parent]
            i = parent
        }
        items[i] = x
    }

    @inline(__always)
    mutating func pop() -> Item? {
        if count == 0 { return nil }
        let top = items[0]
        count -= 1
        let last = items[count]
        let n = count
        var i = 0
        while true {
            var child = 2 * i + 1
            if child >= n { break }
            if child + 1 < n && items[child + 1].key > items[child].key { child += 1 }
            if items[child].key <= last.key { break }
            items[i] = items[child]
            i = child
        }
        if n > 0 { items[i] = last }
        return top
    }
}

/// llama.cpp's partition of the input by special and user-defined tokens
/// (`tokenizer_st_partition`): the candidates are taken longest first (equal lengths by id);
/// each one becomes a token at its leftmost non-overlapping occurrences inside text no longer
/// candidate has claimed. Control and unknown candidates take part only when special tokens are
/// parsed; user-defined ones always.
///
/// llama.cpp searches the text once per candidate (thousands of `<unusedN>` for Gemma); this
/// first finds which candidates occur at all in one pass over the text with a byte trie, then
/// searches only for those, in llama.cpp's order, which gives the same result.
struct LlamaTokenPartitioner: Sendable {
    struct Candidate: Sendable {
        var bytes: [UInt8]
        var id: Int32
        /// User-defined: split out even when special tokens are not parsed.
        var alwaysSplit: Bool
    }

    enum Segment: Equatable {
        case text(Range<Int>)
        case token(Int)
    }

    /// Candidates by rank (the order llama.cpp applies them).
    private let candidates: [Candidate]
    /// Trie: node -> its children `edges[edgeStart[node]..<edgeStart[node + 1]]`, rank or -1.
    private let edgeStart: [Int32]
    private let edgeByte: [UInt8]
    private let edgeNode: [Int32]
    private let nodeRank: [Int32]
    /// The root's children by byte (-1: no candidate starts with it).
    private let rootChild: [Int32]

    var count: Int { candidates.count }

    init(_ list: [Candidate]) {
        let sorted = list.filter { !$0.bytes.isEmpty }.sorted {
            $0.bytes.count != $1.bytes.count ? $0.bytes.count > $1.bytes.count : $0.id < $1.id
        }
        candidates = sorted
        // Build with per-node child lists, then flatten.
        var children: [[(UInt8, Int32)]] = [[]]
        var rank: [Int32] = [-1]
        for (r, c) in sorted.enumerated() {
            var node = 0
            for b in c.bytes {
                if let next = children[node].first(where: { $0.0 == b })?.1 {
                    node = Int(next)
                } else {
                    children.append([])
                    rank.append(-1)
                    children[node].append((b, Int32(children.count - 1)))
                    node = children.count - 1
                }
            }
            if rank[node] < 0 { rank[node] = Int32(r) }   // duplicate texts: the first rank
        }
        var start: [Int32] = [0]
        var bytes: [UInt8] = []
        var nodes: [Int32] = []
        var root = [Int32](repeating: -1, count: 256)
        for (i, list) in children.enumerated() {
            for (b, child) in list.sorted(by: { $0.0 < $1.0 }) {
                bytes.append(b)
                nodes.append(child)
                if i == 0 { root[Int(b)] = child }
            }
            start.append(Int32(bytes.count))
        }
        edgeStart = start
        edgeByte = bytes
        edgeNode = nodes
        nodeRank = rank
        rootChild = root
    }

    /// The first occurrence of `c` in `p[from..<count]` (memchr for its first byte, then memcmp).
    @inline(__always)
    static func find(_ c: UnsafeBufferPointer<UInt8>, in p: UnsafePointer<UInt8>, count n: Int, from start: Int) -> Int? {
        let len = c.count
        var i = start
        while i + len <= n {
            guard let hit = memchr(p + i, Int32(c[0]), n - len - i + 1) else { return nil }
            let m = p.distance(to: hit.assumingMemoryBound(to: UInt8.self))
            if memcmp(p + m, c.baseAddress!, len) == 0 { return m }
            i = m + 1
        }
        return nil
    }

    /// The text cut into plain stretches and tokens, in order.
    func partition(_ p: UnsafeBufferPointer<UInt8>, parseSpecial: Bool) -> [Segment] {
        let n = p.count
        if n == 0 { return [] }
        // Which candidates occur at all (one trie walk from every byte), with the first place.
        var firstAt = [Int32](repeating: -1, count: candidates.count)
        var present: [Int] = []
        for i in 0..<n {
            var node = rootChild[Int(p[i])]
            var k = i + 1
            while node >= 0 {
                let r = Int(nodeRank[Int(node)])
                if r >= 0 && firstAt[r] < 0 && (parseSpecial || candidates[r].alwaysSplit) {
                    firstAt[r] = Int32(i)
                    present.append(r)
                }
                if k == n { break }
                let b = p[k]
                var next: Int32 = -1
                for e in Int(edgeStart[Int(node)])..<Int(edgeStart[Int(node) + 1]) where edgeByte[e] == b {
                    next = edgeNode[e]
                    break
                }
                node = next
                k += 1
            }
        }
        if present.isEmpty { return [.text(0..<n)] }
        present.sort()

        // Apply them in llama.cpp's order: each at its leftmost occurrences that lie wholly in
        // unclaimed text, without overlapping each other.
        var claimed = [Bool](repeating: false, count: n)
        var taken: [(start: Int, end: Int, id: Int)] = []
        let base = p.baseAddress!
        for r in present {
            candidates[r].bytes.withUnsafeBufferPointer { c in
                let len = c.count
                var i = Int(firstAt[r])
                while i + len <= n {
                    guard let m = Self.find(c, in: base, count: n, from: i) else { break }
                    // The last claimed byte inside: no occurrence starting at or before it is free.
                    var k = m + len - 1
                    while k >= m && !claimed[k] { k -= 1 }
                    if k >= m {
                        i = k + 1
                        continue
                    }
                    for j in m..<m + len { claimed[j] = true }
                    taken.append((m, m + len, Int(candidates[r].id)))
                    i = m + len
                }
            }
        }
        taken.sort { $0.start < $1.start }
        var out: [Segment] = []
        out.reserveCapacity(taken.count * 2 + 1)
        var at = 0
        for t in taken {
            if at < t.start { out.append(.text(at..<t.start)) }
            out.append(.token(t.id))
            at = t.end
        }
        if at < n { out.append(.text(at..<n)) }
        return out
    }
}
