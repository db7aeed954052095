import Foundation
import LMCore

/// Byte-level BPE, as GPT-2 (and RoBERTa, GPT-J, Falcon, ...) tokenize: identical to Hugging
/// Face's `ByteLevel` + `BPE` and to OpenAI's encoder.
///
/// 1. The text is split by `GPT2PreTokenizer` (the GPT-2 pattern).
/// 2. Each piece's UTF-8 bytes start as single-byte tokens (the vocabulary spells byte `b` with
///    the printable character `ByteLevelBPETokenizer.byteToUnicode[b]`, so a space is `Ġ`).
/// 3. Adjacent tokens are merged, lowest merge rank first, until no listed merge applies.
///
/// Merges are looked up by the pair of token ids (no strings), and each distinct piece's result
/// is cached, so common words cost one hash lookup.
///
/// ```swift
/// let gpt2 = try ByteLevelBPETokenizer(vocabularyFile: "vocab.json", mergesFile: "merges.txt")
/// try gpt2.encode("Hello world")   // [15496, 995]
/// ```
public final class ByteLevelBPETokenizer: Tokenizer, @unchecked Sendable {
    public let specialTokens: SpecialTokens
    public let postProcessor: PostProcessor
    public let addsSpecialTokensByDefault = false
    public var vocabularySize: Int { pieces.count }
    public var summary: String {
        "byte-level BPE, \(pieces.count) pieces, \(mergeCount) merges\(addPrefixSpace ? ", prefix space" : "")"
    }

    /// Whether a space is put before the text when it does not start with one (RoBERTa-style).
    public let addPrefixSpace: Bool

    private let pieces: [String]          // id -> vocabulary string (byte-level spelling)
    private let pieceBytes: [[UInt8]]     // id -> the bytes it stands for
    private let pieceIds: ByteSliceMap    // spelling bytes -> id (added tokens included)
    private let byteIds: [Int32]          // byte -> id of its single-byte token (-1: none)
    private let merges: IntPairMap        // (left id, right id) -> rank << 32 | merged id
    var mergeTable: IntPairMap { merges }
    private let mergeCount: Int
    private let special: Set<Int>
    private let added: AddedTokens
    private let unk: Int32?
    private let cache = WordCache()

    /// GPT-2's table from bytes to printable characters: printable Latin-1 bytes map to
    /// themselves, the other 68 bytes to U+0100 and up, in byte order.
    public static let byteToUnicode: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var next: UInt32 = 256
        for b in 0..<256 {
            let printable = (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b)
            if printable {
                table[b] = Unicode.Scalar(UInt32(b))!
            } else {
                table[b] = Unicode.Scalar(next)!
                next += 1
            }
        }
        return table
    }()

    /// Builds the tokenizer from a vocabulary (byte-level strings to ids), merge rules in rank
    /// order (pairs of byte-level strings), and added tokens (special tokens such as
    /// `<|endoftext|>`, whose text is kept literally).
    public init(vocabulary: [String: Int], merges mergeList: [(String, String)],
                addedTokens: [(content: String, id: Int, special: Bool)] = [],
                specialTokens: SpecialTokens? = nil, postProcessor: PostProcessor = .none,
                addPrefixSpace: Bool = false, unknownToken: String? = nil) throws {
        guard !vocabulary.isEmpty else {
            throw LMError(.invalidConfig, "the BPE vocabulary is empty; pass a vocab.json with the pieces")
        }
        var size = (vocabulary.values.max() ?? -1) + 1
        for t in addedTokens { size = max(size, t.id + 1) }
        guard vocabulary.values.allSatisfy({ $0 >= 0 }), size <= vocabulary.count + addedTokens.count + 1024 else {
            throw LMError(.corruptFile, "the BPE vocabulary has negative or widely scattered ids (largest \(size - 1) for \(vocabulary.count) pieces); check vocab.json")
        }
        // Scalar -> byte for the byte-level alphabet (all below U+0144); -1 outside it.
        var unicodeToByte = [Int16](repeating: -1, count: 0x144)
        for (b, u) in Self.byteToUnicode.enumerated() { unicodeToByte[Int(u.value)] = Int16(b) }
        // Pieces are looked up by the bytes of their spelling: no String hashing.
        var spellings = ByteSliceMap(capacity: vocabulary.count + addedTokens.count)

        var pieces = [String](repeating: "", count: size)
        var bytes = [[UInt8]](repeating: [], count: size)
        var present = [Bool](repeating: false, count: size)
        var byteIds = [Int32](repeating: -1, count: 256)
        for (piece, id) in vocabulary {
            pieces[id] = piece
            present[id] = true
            var raw: [UInt8] = []
            var isByteLevel = true
            for s in piece.unicodeScalars {
                guard s.value < 0x144, unicodeToByte[Int(s.value)] >= 0 else { isByteLevel = false; break }
                raw.append(UInt8(unicodeToByte[Int(s.value)]))
            }
            spellings.insert(piece, Int32(id))
            // A piece outside the byte alphabet (an added token stored in vocab.json) stands for its own text.
            bytes[id] = isByteLevel ? raw : Array(piece.utf8)
            if isByteLevel && raw.count == 1 { byteIds[Int(raw[0])] = Int32(id) }
        }
        var special = Set<Int>()
        var addedList: [(content: String, id: Int)] = []
        for t in addedTokens {
            pieces[t.id] = t.content
            bytes[t.id] = Array(t.content.utf8)
            present[t.id] = true
            addedList.append((t.content, t.id))
            if t.special { special.insert(t.id) }
        }
        let tokenIds = spellings
        for t in addedTokens { spellings.insert(t.content, Int32(t.id)) }
        if let missing = present.firstIndex(of: false) {
            throw LMError(.corruptFile, "the BPE vocabulary has no piece for id \(missing) (ids must run from 0 to \(size - 1)); check vocab.json / added_tokens")
        }
        var mergeMap = IntPairMap(capacity: mergeList.count)
        var joined: [UInt8] = []
        for (rank, (a, b)) in mergeList.enumerated() {
            joined.removeAll(keepingCapacity: true)
            joined.append(contentsOf: a.utf8)
            let split = joined.count
            joined.append(contentsOf: b.utf8)
            let ids = joined.withUnsafeBytes { j -> (Int32?, Int32?, Int32?) in
                (tokenIds.value(for: UnsafeRawBufferPointer(rebasing: j[..<split])),
                 tokenIds.value(for: UnsafeRawBufferPointer(rebasing: j[split...])),
                 tokenIds.value(for: j))
            }
            guard let left = ids.0, let right = ids.1, let merged = ids.2 else { continue }
            mergeMap.insertIfAbsent(IntPairMap.key(left, right), UInt64(rank) << 32 | UInt64(UInt32(merged)))
        }
        self.pieces = pieces
        self.pieceBytes = bytes
        self.pieceIds = spellings
        self.byteIds = byteIds
        self.merges = mergeMap
        self.mergeCount = mergeList.count
        self.special = special
        self.added = AddedTokens(addedList)
        self.addPrefixSpace = addPrefixSpace
        self.unk = unknownToken.flatMap { vocabulary[$0] }.map(Int32.init)
        if let specialTokens {
            self.specialTokens = specialTokens
        } else {
            let eot = vocabulary["<|endoftext|>"] ?? addedTokens.first { $0.content == "<|endoftext|>" }?.id
            self.specialTokens = SpecialTokens(bos: eot, eos: eot, unk: self.unk.map(Int.init))
        }
        self.postProcessor = postProcessor
    }

    /// Loads Hugging Face / OpenAI files: `vocab.json` (piece -> id) and `merges.txt`.
    public convenience init(vocabularyFile: String, mergesFile: String) throws {
        let vocabData = try MappedFile(path: vocabularyFile)
        guard let object = try? JSONSerialization.jsonObject(with: Data(vocabData.bytes)),
              let dict = object as? [String: Any] else {
            throw LMError(.corruptFile, "'\(vocabularyFile)' is not a JSON object of piece -> id; expected GPT-2's vocab.json")
        }
        var vocabulary: [String: Int] = [:]
        vocabulary.reserveCapacity(dict.count)
        for (k, v) in dict {
            guard let id = (v as? NSNumber)?.intValue else {
                throw LMError(.corruptFile, "'\(vocabularyFile)': the id of '\(k)' is not a number")
            }
            vocabulary[k] = id
        }
        let merges = try Self.parseMerges(FileIO.readString(mergesFile), path: mergesFile)
        // GPT-2's tokenizer treats <|endoftext|> as its special (bos = eos = unk) token.
        var added: [(content: String, id: Int, special: Bool)] = []
        if let eot = vocabulary.removeValue(forKey: "<|endoftext|>") { added.append(("<|endoftext|>", eot, true)) }
        try self.init(vocabulary: vocabulary, merges: merges, addedTokens: added)
    }

    /// The rules of a merges.txt: `#version` header and blank lines skipped, two symbols a line.
    static func parseMerges(_ text: String, path: String) throws -> [(String, String)] {
        var out: [(String, String)] = []
        for (n, line) in lines(of: text).enumerated() {
            if line.isEmpty || (n == 0 && line.utf8.starts(with: "#version".utf8)) { continue }
            guard let pair = splitMerge(line) else {
                throw LMError(.corruptFile, "'\(path)' line \(n + 1) is not two symbols separated by one space: '\(line.prefix(60))'")
            }
            out.append(pair)
        }
        return out
    }

    public func encode(_ text: String, parseSpecialTokens: Bool) throws -> [Int] {
        encodeSplittingAddedTokens(text, added: added, parse: parseSpecialTokens) { p, out in
            if addPrefixSpace, let first = p.first, first != 0x20 {
                var spaced = [UInt8](repeating: 0x20, count: p.count + 1)
                spaced.withUnsafeMutableBufferPointer { s in
                    _ = UnsafeMutableBufferPointer(rebasing: s[1...]).initialize(from: p)
                }
                spaced.withUnsafeBufferPointer { encodeOrdinary($0, into: &out) }
            } else {
                encodeOrdinary(p, into: &out)
            }
        }
    }

    private func encodeOrdinary(_ p: UnsafeBufferPointer<UInt8>, into out: inout [Int]) {
        var symbols: [Int32] = []
        symbols.reserveCapacity(64)
        cache.lock()
        defer { cache.unlock() }
        GPT2PreTokenizer.forEachPiece(p) { range in
            let word = UnsafeBufferPointer(rebasing: p[range])
            if cache.lookup(word, into: &out) { return }
            let start = out.count
            symbols.removeAll(keepingCapacity: true)
            for b in word {
                let id = byteIds[Int(b)]
                if id >= 0 {
                    symbols.append(id)
                } else if let unk {
                    symbols.append(unk)
                }
            }
            if symbols.count < 32 {
                Self.mergeNaive(&symbols, merges)
            } else {
                Self.mergeWithHeap(&symbols, merges)
            }
            for s in symbols { out.append(Int(s)) }
            cache.store(word, out[start...])
        }
    }

    /// Applies merges to `symbols` lowest rank first, leftmost first among equal ranks:
    /// a scan per merge (fast for the short pieces of ordinary text). Reference for `mergeWithHeap`.
    static func mergeNaive(_ symbols: inout [Int32], _ merges: IntPairMap) {
        while symbols.count > 1 {
            var bestRank = UInt64.max
            var bestIndex = -1
            var bestId: Int32 = 0
            for i in 0..<(symbols.count - 1) {
                if let m = merges.value(for: IntPairMap.key(symbols[i], symbols[i + 1])), m >> 32 < bestRank {
                    bestRank = m >> 32
                    bestIndex = i
                    bestId = Int32(truncatingIfNeeded: m & 0xFFFF_FFFF)
                }
            }
            if bestIndex < 0 { return }
            symbols[bestIndex] = bestId
            symbols.remove(at: bestIndex + 1)
        }
    }

    /// The same merges with a binary heap over a linked list: O(n log n) for long pieces
    /// (a run of 10,000 `=` must not take quadratic time).
    static func mergeWithHeap(_ symbols: inout [Int32], _ merges: IntPairMap) {
        let n = symbols.count
        if n < 2 { return }
        var next = Array(1...n)          // next[i] == n: none
        var prev = Array(-1..<(n - 1))
        var alive = [Bool](repeating: true, count: n)
        var ids = symbols
        // Candidates carry the ids they were made for; stale ones are skipped when popped.
        var heap = BinaryHeap<MergeCandidate>()
        for i in 0..<(n - 1) {
            if let m = merges.value(for: IntPairMap.key(ids[i], ids[i + 1])) {
                heap.push(MergeCandidate(rank: m >> 32, left: i, leftId: ids[i], rightId: ids[i + 1]))
            }
        }
        while let e = heap.pop() {
            let i = e.left
            guard alive[i], ids[i] == e.leftId else { continue }
            let j = next[i]
            guard j < n, ids[j] == e.rightId,
                  let m = merges.value(for: IntPairMap.key(ids[i], ids[j])), m >> 32 == e.rank else { continue }
            ids[i] = Int32(truncatingIfNeeded: m & 0xFFFF_FFFF)
            alive[j] = false
            next[i] = next[j]
            if next[j] < n { prev[next[j]] = i }
            if prev[i] >= 0, let m2 = merges.value(for: IntPairMap.key(ids[prev[i]], ids[i])) {
                heap.push(MergeCandidate(rank: m2 >> 32, left: prev[i], leftId: ids[prev[i]], rightId: ids[i]))
            }
            if next[i] < n, let m3 = merges.value(for: IntPairMap.key(ids[i], ids[next[i]])) {
                heap.push(MergeCandidate(rank: m3 >> 32, left: i, leftId: ids[i], rightId: ids[next[i]]))
            }
        }
        symbols.removeAll(keepingCapacity: true)
        var k = 0
        while k < n {
            symbols.append(ids[k])
            k = next[k]
        }
    }

    public func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(ids.count * 4)
        for id in ids {
            guard id >= 0 && id < pieceBytes.count else {
                bytes.append(contentsOf: [0xEF, 0xBF, 0xBD])
                continue
            }
            if skipSpecialTokens && special.contains(id) { continue }
            bytes.append(contentsOf: pieceBytes[id])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    public func piece(for id: Int) -> String? {
        id >= 0 && id < pieces.count ? pieces[id] : nil
    }

    public func id(for piece: String) -> Int? {
        pieceIds.value(for: piece).map(Int.init)
    }

    public func isSpecial(_ id: Int) -> Bool {
        special.contains(id)
    }
}

/// The lines of a text file, split at LF with a trailing CR removed (byte-wise: a `Character`
/// may join "\r\n", and scalar-view slicing is slow).
func lines(of text: String) -> [String] {
    var copy = text
    return copy.withUTF8 { p -> [String] in
        var out: [String] = []
        var start = 0
        var i = 0
        while i <= p.count {
            if i == p.count || p[i] == 0x0A {
                if i == p.count && start == i { break }
                var end = i
                if end > start && p[end - 1] == 0x0D { end -= 1 }
                out.append(String(decoding: UnsafeBufferPointer(rebasing: p[start..<end]), as: UTF8.self))
                start = i + 1
            }
            i += 1
        }
        return out
    }
}

/// "a b" -> ("a", "b"): a merge rule, split at its first space (scalar-wise).
func splitMerge(_ rule: String) -> (String, String)? {
    let scalars = rule.unicodeScalars
    guard let space = scalars.firstIndex(of: " ") else { return nil }
    let a = String(scalars[..<space]), b = String(scalars[scalars.index(after: space)...])
    guard !a.isEmpty, !b.isEmpty, !b.unicodeScalars.contains(" ") else { return nil }
    return (a, b)
}

/// A BPE merge candidate in `mergeWithHeap`: lowest rank first, then leftmost.
struct MergeCandidate: HeapElement {
    var rank: UInt64
    var left: Int
    var leftId: Int32
    var rightId: Int32

    @inline(__always)
    static func before(_ a: MergeCandidate, _ b: MergeCandidate) -> Bool {
        a.rank != b.rank ? a.rank < b.rank : a.left < b.left
    }
}

/// The cache of encoded pieces (piece bytes -> ids), shared by all callers behind a lock.
/// Cleared when it holds `capacity` pieces, so memory stays bounded on endless input.
final class WordCache: @unchecked Sendable {
    private var index = ByteSliceMap(capacity: 1 << 14)
    private var ranges: [(start: Int32, count: Int32)] = []
    private var ids: [Int32] = []
    private let mutex = NSLock()
    let capacity: Int

    init(capacity: Int = 1 << 16) {
        self.capacity = capacity
    }

    @inline(__always) func lock() { mutex.lock() }
    @inline(__always) func unlock() { mutex.unlock() }

    /// Appends the cached ids of `word` to `out`; false when not cached. Call under `lock()`.
    @inline(__always)
    func lookup(_ word: UnsafeBufferPointer<UInt8>, into out: inout [Int]) -> Bool {
        guard let slot = index.value(for: UnsafeRawBufferPointer(word)) else { return false }
        let r = ranges[Int(slot)]
        for k in Int(r.start)..<Int(r.start + r.count) { out.append(Int(ids[k])) }
        return true
    }

    /// Stores the ids of `word`. Call under `lock()`.
    func store(_ word: UnsafeBufferPointer<UInt8>, _ value: ArraySlice<Int>) {
        if ranges.count >= capacity {
            index.removeAll()
            ranges.removeAll(keepingCapacity: true)
            ids.removeAll(keepingCapacity: true)
        }
        index.insert(UnsafeRawBufferPointer(word), Int32(ranges.count))
        ranges.append((Int32(ids.count), Int32(value.count)))
        for v in value { ids.append(Int32(v)) }
    }
}
