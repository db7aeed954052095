import LMCore

/// SentencePiece BPE written in Swift, for vocabularies that come as piece/score/type tables
/// rather than a `.model` file: the Llama vocabulary of a llama.cpp `.gguf` (llama.cpp's "SPM"
/// tokenizer).
///
/// Encoding: a `▁` dummy prefix is put before the text (`addSpacePrefix`), every space becomes
/// `▁`, the text is split into characters, and adjacent symbols are merged — the pair whose
/// merged string is a piece with the highest score first (leftmost on ties) — until no merge
/// applies. A symbol that is not a piece becomes its UTF-8 bytes as `<0xXX>` pieces (byte
/// fallback), or `<unk>` without them. No normalization.
///
/// This follows llama.cpp's SPM tokenizer, not libsentencepiece, where they differ: merges may
/// form any vocabulary entry (control and byte pieces included), there are no frozen
/// user-defined symbols, and the dummy prefix goes only before the start of the text. For
/// `.model` files, `SentencePieceTokenizer` (libsentencepiece and its Swift twin
/// `SentencePieceEncoder`) is used instead; the tests check this type against both on the
/// llama-tiny vocabulary and against llama.cpp's vectors.
public final class SentencePieceBPETokenizer: Tokenizer, @unchecked Sendable {
    public let specialTokens: SpecialTokens
    public let postProcessor: PostProcessor
    public let addsSpecialTokensByDefault = false
    public let addSpacePrefix: Bool
    public var vocabularySize: Int { pieces.count }
    public var summary: String {
        "SentencePiece BPE (Swift, from a piece table), \(pieces.count) pieces\(byteIds[0] >= 0 ? ", byte fallback" : "")"
    }

    private let pieces: [String]
    private let scores: [Float]
    private let types: [Int]
    private let pieceIds: ByteSliceMap
    private let byteIds: [Int32]         // byte -> id of <0xXX>, -1 if absent
    private let decodedBytes: [[UInt8]]  // id -> bytes it decodes to
    private let added: AddedTokens

    private static let space: [UInt8] = [0xE2, 0x96, 0x81]   // ▁ U+2581

    /// Builds the tokenizer from the vocabulary tables (types as in GGUF / SentencePiece:
    /// 1 normal, 2 unknown, 3 control, 4 user defined, 5 unused, 6 byte).
    public init(pieces: [String], scores: [Float], types: [Int], specialTokens: SpecialTokens,
                addSpacePrefix: Bool = true, postProcessor: PostProcessor? = nil) throws {
        guard !pieces.isEmpty, scores.count == pieces.count, types.count == pieces.count else {
            throw LMError(.invalidConfig, "SentencePiece tables disagree: \(pieces.count) pieces, \(scores.count) scores, \(types.count) types; they must have one entry per piece")
        }
        self.pieces = pieces
        self.scores = scores
        self.types = types
        self.specialTokens = specialTokens
        self.addSpacePrefix = addSpacePrefix
        self.postProcessor = postProcessor ?? .bosEos(bos: specialTokens.bos, eos: nil)
        var map = ByteSliceMap(capacity: pieces.count)
        var byteIds = [Int32](repeating: -1, count: 256)
        var decoded: [[UInt8]] = []
        decoded.reserveCapacity(pieces.count)
        var control: [(content: String, id: Int)] = []
        for (i, p) in pieces.enumerated() {
            map.insert(p, Int32(i))
            switch SentencePiecePieceType(rawValue: types[i]) {
            case .byte:
                if let b = Self.parseBytePiece(p) {
                    if byteIds[Int(b)] < 0 { byteIds[Int(b)] = Int32(i) }
                    decoded.append([b])
                } else {
                    decoded.append(Array(p.utf8))
                }
            case .control:
                control.append((p, i))
                decoded.append([])
            case .unknown:
                decoded.append(Array(" \u{2047} ".utf8))
            default:
                var out: [UInt8] = []
                let u = Array(p.utf8)
                var k = 0
                while k < u.count {
                    if k + 2 < u.count && u[k] == 0xE2 && u[k + 1] == 0x96 && u[k + 2] == 0x81 {
                        out.append(0x20)
                        k += 3
                    } else {
                        out.append(u[k])
                        k += 1
                    }
                }
                decoded.append(out)
            }
        }
        self.pieceIds = map
        self.byteIds = byteIds
        self.decodedBytes = decoded
        self.added = AddedTokens(control)
    }

    /// `<0xAB>` -> 0xAB.
    static func parseBytePiece(_ p: String) -> UInt8? {
        guard p.count == 6, p.hasPrefix("<0x"), p.hasSuffix(">") else { return nil }
        return UInt8(p.dropFirst(3).dropLast(), radix: 16)
    }

    public func encode(_ text: String, parseSpecialTokens: Bool) throws -> [Int] {
        var first = true
        return encodeSplittingAddedTokens(text, added: added, parse: parseSpecialTokens) { p, out in
            defer { first = false }
            if p.isEmpty { return }
            // Escape: dummy prefix (at the start of the text only), spaces -> ▁.
            var escaped: [UInt8] = []
            escaped.reserveCapacity(p.count + p.count / 4 + 3)
            if addSpacePrefix && first { escaped += Self.space }
            for b in p {
                if b == 0x20 { escaped += Self.space } else { escaped.append(b) }
            }
            escaped.withUnsafeBufferPointer { encodeEscaped($0, into: &out) }
        }
    }

    private struct Symbol {
        var start: Int
        var length: Int
        var prev: Int
        var next: Int
    }

    /// A merge candidate: higher score first; on a tie, the leftmost.
    private struct Bigram: HeapElement {
        var score: Float
        var left: Int
        var right: Int
        var size: Int

        @inline(__always)
        static func before(_ a: Bigram, _ b: Bigram) -> Bool {
            a.score != b.score ? a.score > b.score : a.left < b.left
        }
    }

    private func encodeEscaped(_ p: UnsafeBufferPointer<UInt8>, into out: inout [Int]) {
        var symbols: [Symbol] = []
        symbols.reserveCapacity(p.count)
        var offset = 0
        while offset < p.count {
            let len = min(UnicodeText.sequenceLength(p[offset]), p.count - offset)
            symbols.append(Symbol(start: offset, length: len, prev: symbols.count - 1, next: symbols.count + 1))
            offset += len
        }
        if symbols.isEmpty { return }
        symbols[symbols.count - 1].next = -1

        var heap = BinaryHeap<Bigram>(capacity: symbols.count)
        func tryAdd(_ left: Int, _ right: Int) {
            if left < 0 || right < 0 { return }
            let start = symbols[left].start
            let size = symbols[left].length + symbols[right].length
            guard let id = pieceIds.value(for: UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: p[start..<start + size]))) else { return }
            heap.push(Bigram(score: scores[Int(id)], left: left, right: right, size: size))
        }

        for i in 1..<symbols.count { tryAdd(i - 1, i) }
        while let b = heap.pop() {
            let l = symbols[b.left], r = symbols[b.right]
            if l.length == 0 || r.length == 0 || l.length + r.length != b.size { continue }
            symbols[b.left].length += r.length
            symbols[b.right].length = 0
            symbols[b.left].next = r.next
            if r.next >= 0 { symbols[r.next].prev = b.left }
            tryAdd(symbols[b.left].prev, b.left)
            tryAdd(b.left, symbols[b.left].next)
        }

        var i = 0
        while i >= 0 {
            let s = symbols[i]
            let slice = UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: p[s.start..<s.start + s.length]))
            if let id = pieceIds.value(for: slice) {
                out.append(Int(id))
            } else {
                for b in slice {
                    let id = byteIds[Int(b)]
                    if id >= 0 {
                        out.append(Int(id))
                    } else if let unk = specialTokens.unk {
                        // Without byte pieces the whole character is one <unk>.
                        if out.last != unk || b == slice.first { out.append(unk) }
                    }
                }
            }
            i = s.next
        }
    }

    public func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(ids.count * 4)
        for id in ids {
            guard id >= 0 && id < decodedBytes.count else {
                bytes += [0xEF, 0xBF, 0xBD]
                continue
            }
            if skipSpecialTokens && types[id] == SentencePiecePieceType.control.rawValue { continue }
            bytes += decodedBytes[id]
        }
        // The dummy prefix: drop one leading space.
        if addSpacePrefix && bytes.first == 0x20 { bytes.removeFirst() }
        return String(decoding: bytes, as: UTF8.self)
    }

    public func piece(for id: Int) -> String? {
        id >= 0 && id < pieces.count ? pieces[id] : nil
    }

    public func id(for piece: String) -> Int? {
        pieceIds.value(for: piece).map(Int.init)
    }

    public func isSpecial(_ id: Int) -> Bool {
        id >= 0 && id < types.count && types[id] == SentencePiecePieceType.control.rawValue
    }

    /// The score of a piece.
    public func score(for id: Int) -> Float {
        id >= 0 && id < scores.count ? scores[id] : 0
    }
}
