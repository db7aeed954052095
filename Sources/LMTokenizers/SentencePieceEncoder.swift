/// SentencePiece encoding (BPE and unigram models) written in Swift over a `.model`'s pieces and
/// normalizer — the fast twin of libsentencepiece, which stays the reference (`SentencePieceTokenizer`
/// uses this engine only for models it supports, and the tests compare both on whole corpora).
///
/// Same algorithms as libsentencepiece 0.1.97:
/// - BPE: characters (user-defined symbols whole and frozen), then repeatedly merge the adjacent
///   pair whose concatenation is a piece with the highest score, leftmost first on ties.
/// - Unigram: Viterbi over all pieces that start at each character (the library's optimized
///   encoder, same float arithmetic and tie rule), unknown characters at `min score - 10`.
/// - Unknown pieces become their bytes with byte fallback, else runs of them one unknown id.
///
/// Speed: when no piece has a `▁` after its first character, pieces never cross a word
/// boundary, so each `▁word` is encoded once and cached (BPE only: unigram sums scores over the
/// whole sentence in floating point, so it is run per sentence to stay bit-identical).
final class SentencePieceEncoder: @unchecked Sendable {
    enum Algorithm { case bpe, unigram }

    let algorithm: Algorithm
    private let normalizer: SentencePieceNormalizer
    private let pieceIds: ByteSliceMap      // normal, user-defined and unused pieces
    private let reservedIds: ByteSliceMap   // control, unknown and byte pieces
    private let trie: PrefixTrie            // pieceIds as a trie (unigram)
    private let userDefined: PrefixTrie?
    private let isUserDefined: [Bool]
    private let scores: [Float]
    private let unk: Int
    private let byteIds: [Int]?
    private let minScore: Float
    private let maxScore: Float
    private let splitWords: Bool
    private let cache = WordCache()
    /// Unigram: piece scores as doubles (NaN for unused pieces).
    private let pieceScores: [Double]

    /// nil when the model uses something this engine does not implement (word/char models,
    /// unused pieces in BPE, custom normalization rules, a malformed character map).
    init?(proto: SentencePieceModelProto) {
        switch proto.modelType {
        case .bpe: algorithm = .bpe
        case .unigram: algorithm = .unigram
        default: return nil
        }
        if proto.hasNormalizationRuleTSV { return nil }
        var ids = ByteSliceMap(capacity: proto.pieces.count)
        var reserved = ByteSliceMap(capacity: 512)
        var trieBuilder = PrefixTrie.Builder()
        var user: [String] = []
        var unk: Int? = nil
        var bytes = [Int](repeating: -1, count: 256)
        var minScore = Float.greatestFiniteMagnitude
        var maxScore = Float.leastNormalMagnitude
        var unusedSeen = false
        for (i, p) in proto.pieces.enumerated() {
            switch p.type {
            case .normal, .userDefined, .unused:
                guard ids.value(for: p.piece) == nil else { return nil }
                ids.insert(p.piece, Int32(i))
                trieBuilder.insert(Array(p.piece.utf8), Int32(i))
                if p.type == .userDefined { user.append(p.piece) }
                if p.type == .unused { unusedSeen = true }
                if p.type == .normal {
                    minScore = min(minScore, p.score)
                    maxScore = max(maxScore, p.score)
                }
            case .unknown, .control, .byte:
                reserved.insert(p.piece, Int32(i))
                if p.type == .unknown { unk = i }
                if p.type == .byte, let b = SentencePieceBPETokenizer.parseBytePiece(p.piece) { bytes[Int(b)] = i }
            }
        }
        guard let unk else { return nil }
        if unusedSeen && proto.modelType == .bpe { return nil }
        if proto.byteFallback && bytes.contains(-1) { return nil }
        guard let normalizer = SentencePieceNormalizer(
            charsMap: proto.precompiledCharsMap, userDefinedSymbols: user, addDummyPrefix: proto.addDummyPrefix,
            removeExtraWhitespaces: proto.removeExtraWhitespaces, escapeWhitespaces: proto.escapeWhitespaces,
            treatWhitespaceAsSuffix: proto.treatWhitespaceAsSuffix) else { return nil }
        self.normalizer = normalizer
        self.pieceIds = ids
        self.reservedIds = reserved
        let trie = trieBuilder.build()
        self.trie = trie
        self.userDefined = user.isEmpty ? nil : {
            var t = PrefixTrie.Builder()
            for s in user { t.insert(Array(s.utf8), 1) }
            return t.build()
        }()
        self.isUserDefined = proto.pieces.map { $0.type == .userDefined }
        self.scores = proto.pieces.map(\.score)
        self.unk = unk
        self.byteIds = proto.byteFallback ? bytes : nil
        self.minScore = minScore
        self.maxScore = maxScore
        self.pieceScores = proto.pieces.map { $0.type == .unused ? Double.nan : Double($0.score) }
        // Words are independent when no piece has ▁ past its first character (and ▁ itself is known).
        let space = "\u{2581}"
        let inner = proto.pieces.contains { p in
            (p.type == .normal || p.type == .userDefined) && p.piece.unicodeScalars.dropFirst().contains("\u{2581}")
        }
        self.splitWords = algorithm == .bpe && !inner && !proto.treatWhitespaceAsSuffix
            && proto.escapeWhitespaces && ids.value(for: space) != nil
    }

    /// Encodes valid UTF-8 text, appending ids to `out`.
    func encode(_ p: UnsafeBufferPointer<UInt8>, into out: inout [Int]) {
        var normalized: [UInt8] = []
        normalized.reserveCapacity(p.count + p.count / 4 + 4)
        normalizer.normalize(p, into: &normalized)
        if normalized.isEmpty { return }
        let start = out.count
        normalized.withUnsafeBufferPointer { n in
            if splitWords {
                cache.lock()
                defer { cache.unlock() }
                var wordStart = 0
                var i = 0
                while i < n.count {
                    if i > wordStart && n[i] == 0xE2 && i + 2 < n.count && n[i + 1] == 0x96 && n[i + 2] == 0x81 {
                        encodeCached(UnsafeBufferPointer(rebasing: n[wordStart..<i]), into: &out)
                        wordStart = i
                    }
                    i += 1
                }
                encodeCached(UnsafeBufferPointer(rebasing: n[wordStart..<n.count]), into: &out)
            } else {
                encodeSegment(n, into: &out)
            }
        }
        if byteIds == nil {
            // Runs of unknown pieces are one unknown piece.
            var k = start + 1
            var w = start + 1
            while k < out.count {
                if !(out[k] == unk && out[w - 1] == unk) {
                    out[w] = out[k]
                    w += 1
                }
                k += 1
            }
            if out.count > start { out.removeLast(out.count - w) }
        }
    }

    /// Call under `cache.lock()`.
    private func encodeCached(_ word: UnsafeBufferPointer<UInt8>, into out: inout [Int]) {
        if cache.lookup(word, into: &out) { return }
        let start = out.count
        encodeSegment(word, into: &out)
        cache.store(word, out[start...])
    }

    private func encodeSegment(_ n: UnsafeBufferPointer<UInt8>, into out: inout [Int]) {
        switch algorithm {
        case .bpe: bpe(n, into: &out)
        case .unigram: unigram(n, into: &out)
        }
    }

    /// Appends the id of the piece `n[range]`, or its bytes / the unknown id.
    @inline(__always)
    private func emit(_ n: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, _ id: Int?, into out: inout [Int]) {
        let slice = UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: n[range]))
        let resolved = id ?? reservedIds.value(for: slice).map(Int.init) ?? pieceIds.value(for: slice).map(Int.init) ?? unk
        if resolved == unk, let byteIds {
            for b in slice { out.append(byteIds[Int(b)]) }
        } else {
            out.append(resolved)
        }
    }

    private struct Symbol {
        var start: Int
        var length: Int
        var prev: Int
        var next: Int
        var frozen: Bool
    }

    /// A merge candidate: highest score first, then leftmost (libsentencepiece's agenda order).
    private struct Pair: HeapElement {
        var score: Float
        var left: Int
        var right: Int
        var size: Int

        @inline(__always)
        static func before(_ a: Pair, _ b: Pair) -> Bool {
            a.score != b.score ? a.score > b.score : a.left < b.left
        }
    }

    private func bpe(_ n: UnsafeBufferPointer<UInt8>, into out: inout [Int]) {
        var symbols: [Symbol] = []
        symbols.reserveCapacity(n.count)
        var i = 0
        while i < n.count {
            var len = min(UnicodeText.sequenceLength(n[i]), n.count - i)
            var frozen = false
            if let userDefined, let (end, _) = userDefined.longestPrefix(n, from: i) {
                len = end - i
                frozen = true
            }
            symbols.append(Symbol(start: i, length: len, prev: symbols.count - 1, next: symbols.count + 1, frozen: frozen))
            i += len
        }
        if symbols.isEmpty { return }
        symbols[symbols.count - 1].next = -1
        if symbols.count == 1 {
            emit(n, 0..<n.count, nil, into: &out)
            return
        }
        var heap = BinaryHeap<Pair>(capacity: symbols.count)
        func tryAdd(_ left: Int, _ right: Int) {
            if left < 0 || right < 0 || symbols[left].frozen || symbols[right].frozen { return }
            let start = symbols[left].start
            let size = symbols[left].length + symbols[right].length
            let slice = UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: n[start..<start + size]))
            guard let id = pieceIds.value(for: slice) else { return }
            heap.push(Pair(score: scores[Int(id)], left: left, right: right, size: size))
        }
        for k in 1..<symbols.count { tryAdd(k - 1, k) }
        while let top = heap.pop() {
            let l = symbols[top.left], r = symbols[top.right]
            if l.length == 0 || r.length == 0 || l.length + r.length != top.size { continue }
            symbols[top.left].length += r.length
            symbols[top.left].next = r.next
            if r.next >= 0 { symbols[r.next].prev = top.left }
            symbols[top.right].length = 0
            tryAdd(symbols[top.left].prev, top.left)
            tryAdd(top.left, symbols[top.left].next)
        }
        var k = 0
        while k >= 0 {
            let s = symbols[k]
            emit(n, s.start..<s.start + s.length, nil, into: &out)
            k = s.next
        }
    }

    private struct BestPath {
        var id: Int32 = -1
        var start: Int32 = -1
        var score: Float = 0
    }

    private func unigram(_ n: UnsafeBufferPointer<UInt8>, into out: inout [Int]) {
        let size = n.count
        let unkScore = minScore - 10.0
        var best = [BestPath](repeating: BestPath(), count: size + 1)
        best.withUnsafeMutableBufferPointer { best in
            trie.withView { trie in
            pieceScores.withUnsafeBufferPointer { pieceScores in
                var start = 0
                while start < size {
                    let tillHere = best[start].score
                    let tillHereD = Double(tillHere)
                    var hasSingle = false
                    let mblen = min(UnicodeText.sequenceLength(n[start]), size - start)
                    // Every piece starting here: walk the trie (root children from a table).
                    var node = trie.child(of: 0, n[start])
                    var end = start + 1
                    while node != PrefixTrie.none {
                        let v = trie.value(of: node)
                        if v >= 0 {
                            let id = Int(v)
                            var score = pieceScores[id]
                            if score.isNaN {
                                // unused pieces are skipped
                            } else {
                                if isUserDefined[id] {
                                    // As in the library: length * max - 0.1, in double.
                                    score = Double(Float(end - start) * maxScore) - 0.1
                                }
                                let candidate = score + tillHereD
                                if best[end].start == -1 || candidate > Double(best[end].score) {
                                    best[end] = BestPath(id: v, start: Int32(start), score: Float(candidate))
                                }
                                if end - start == mblen { hasSingle = true }
                            }
                        }
                        if end >= size { break }
                        node = trie.child(of: node, n[end])
                        end += 1
                    }
                    if !hasSingle {
                        let candidate = unkScore + tillHere
                        let e = start + mblen
                        if best[e].start == -1 || candidate > best[e].score {
                            best[e] = BestPath(id: Int32(unk), start: Int32(start), score: candidate)
                        }
                    }
                    start += mblen
                }
            }
            }
        }
        // Backtrack, then emit in order.
        var ends: [Int32] = []
        var end = size
        while end > 0 {
            ends.append(Int32(end))
            end = Int(best[end].start)
        }
        for e in ends.reversed() {
            let node = best[Int(e)]
            if Int(node.id) == unk, byteIds != nil {
                emit(n, Int(node.start)..<Int(e), unk, into: &out)
            } else {
                out.append(Int(node.id))
            }
        }
    }
}
