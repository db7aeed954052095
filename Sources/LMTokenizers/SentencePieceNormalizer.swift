/// SentencePiece's text normalizer, in Swift: the model's precompiled character map (a
/// darts-clone double-array trie of rewrite rules, e.g. NFKC), user-defined symbols kept as they
/// are, leading/trailing/repeated spaces removed (`remove_extra_whitespaces`), a dummy-prefix
/// space, and spaces escaped as `▁`. Behaves as libsentencepiece's `Normalizer::Normalize`
/// (tests compare the two on whole corpora).
struct SentencePieceNormalizer: Sendable {
    private let units: [UInt32]           // the double array
    private let replacements: [UInt8]     // NUL-terminated replacement strings
    private let userDefined: PrefixTrie?
    let addDummyPrefix: Bool
    let removeExtraWhitespaces: Bool
    let escapeWhitespaces: Bool
    let treatWhitespaceAsSuffix: Bool
    /// ASCII bytes that no rule and no user-defined symbol starts with: copied as they are.
    private let asciiPassthrough: [Bool]

    static let space: [UInt8] = [0xE2, 0x96, 0x81]

    /// Fails (returns nil) when the character map blob is malformed.
    init?(charsMap blob: [UInt8], userDefinedSymbols: [String], addDummyPrefix: Bool,
          removeExtraWhitespaces: Bool, escapeWhitespaces: Bool, treatWhitespaceAsSuffix: Bool) {
        if blob.isEmpty {
            units = []
            replacements = []
        } else {
            guard blob.count > 4 else { return nil }
            let trieSize = Int(UInt32(blob[0]) | UInt32(blob[1]) << 8 | UInt32(blob[2]) << 16 | UInt32(blob[3]) << 24)
            guard trieSize < blob.count - 4, trieSize % 4 == 0 else { return nil }
            var u = [UInt32](repeating: 0, count: trieSize / 4)
            for i in 0..<u.count {
                let o = 4 + 4 * i
                u[i] = UInt32(blob[o]) | UInt32(blob[o + 1]) << 8 | UInt32(blob[o + 2]) << 16 | UInt32(blob[o + 3]) << 24
            }
            units = u
            replacements = Array(blob[(4 + trieSize)...]) + [0]
        }
        if userDefinedSymbols.isEmpty {
            userDefined = nil
        } else {
            var trie = PrefixTrie.Builder()
            for s in userDefinedSymbols { trie.insert(Array(s.utf8), 1) }
            userDefined = trie.build()
        }
        var passthrough = [Bool](repeating: true, count: 128)
        for c in 0..<128 {
            if !units.isEmpty {
                let root = Int(Self.offset(units[0]))
                let node = root ^ c
                if node < units.count && Self.label(units[node]) == UInt32(c) { passthrough[c] = false }
            }
            if userDefinedSymbols.contains(where: { $0.utf8.first == UInt8(c) }) { passthrough[c] = false }
        }
        self.asciiPassthrough = passthrough
        self.addDummyPrefix = addDummyPrefix
        self.removeExtraWhitespaces = removeExtraWhitespaces
        self.escapeWhitespaces = escapeWhitespaces
        self.treatWhitespaceAsSuffix = treatWhitespaceAsSuffix
    }

    /// The longest rewrite rule matching a prefix of `p[i...]`: (replacement start, consumed bytes).
    @inline(__always)
    private func longestRule(_ p: UnsafeBufferPointer<UInt8>, _ i: Int) -> (Int, Int)? {
        if units.isEmpty { return nil }
        return units.withUnsafeBufferPointer { a -> (Int, Int)? in
            var best: (Int, Int)? = nil
            var node = Int(Self.offset(a[0]))
            var k = i
            while k < p.count {
                let c = Int(p[k])
                node ^= c
                guard node < a.count else { break }
                let unit = a[node]
                if Self.label(unit) != UInt32(c) { break }
                node ^= Int(Self.offset(unit))
                k += 1
                if (unit >> 8) & 1 == 1, node < a.count {
                    best = (Int(a[node] & 0x7FFF_FFFF), k - i)
                }
            }
            return best
        }
    }

    @inline(__always) private static func label(_ u: UInt32) -> UInt32 { u & (0x8000_0000 | 0xFF) }
    @inline(__always) private static func offset(_ u: UInt32) -> UInt32 { (u >> 10) << ((u & (1 << 9)) >> 6) }

    /// The normalized form of the prefix of `p` at `i`: where its bytes are (in `p`, or at
    /// `replacements[start...]` up to a NUL) and how many input bytes it consumes.
    @inline(__always)
    private func prefix(_ p: UnsafeBufferPointer<UInt8>, _ i: Int) -> (fromRules: Bool, start: Int, length: Int, consumed: Int) {
        if let userDefined, let (end, _) = userDefined.longestPrefix(p, from: i) {
            return (false, i, end - i, end - i)
        }
        if let (start, consumed) = longestRule(p, i) {
            var k = start
            while k < replacements.count && replacements[k] != 0 { k += 1 }
            return (true, start, k - start, consumed)
        }
        let n = min(UnicodeText.sequenceLength(p[i]), p.count - i)
        return (false, i, n, n)
    }

    @inline(__always)
    private func appendSpace(_ out: inout [UInt8]) {
        if escapeWhitespaces {
            out.append(0xE2)
            out.append(0x96)
            out.append(0x81)
        } else {
            out.append(0x20)
        }
    }

    /// Normalizes valid UTF-8 `p` into `out` (cleared first).
    func normalize(_ p: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]) {
        out.removeAll(keepingCapacity: true)
        if p.isEmpty { return }
        var i = 0
        if removeExtraWhitespaces {
            while i < p.count {
                let r = prefix(p, i)
                let isSpace = r.length == 1 && (r.fromRules ? replacements[r.start] : p[r.start]) == 0x20
                if !isSpace { break }
                i += r.consumed
            }
            if i >= p.count { return }
        }
        if !treatWhitespaceAsSuffix && addDummyPrefix { appendSpace(&out) }
        var previousSpace = removeExtraWhitespaces
        replacements.withUnsafeBufferPointer { rules in
            while i < p.count {
                let c = p[i]
                if c < 0x80 && asciiPassthrough[Int(c)] {
                    // Fast path: an ASCII byte no rule touches is its own normalized form.
                    if c == 0x20 {
                        if !previousSpace { appendSpace(&out) }
                        previousSpace = removeExtraWhitespaces
                    } else {
                        out.append(c)
                        previousSpace = false
                    }
                    i += 1
                    continue
                }
                let r = prefix(p, i)
                let bytes = r.fromRules ? UnsafeBufferPointer(rebasing: rules[r.start..<r.start + r.length])
                                        : UnsafeBufferPointer(rebasing: p[r.start..<r.start + r.length])
                var k = 0
                if previousSpace {
                    while k < bytes.count && bytes[k] == 0x20 { k += 1 }
                }
                if k < bytes.count {
                    while k < bytes.count {
                        let b = bytes[k]
                        if escapeWhitespaces && b == 0x20 { appendSpace(&out) } else { out.append(b) }
                        k += 1
                    }
                    previousSpace = bytes[bytes.count - 1] == 0x20
                }
                i += r.consumed
                if !removeExtraWhitespaces { previousSpace = false }
            }
        }
        if removeExtraWhitespaces {
            if escapeWhitespaces {
                while out.count >= 3 && out[out.count - 3] == 0xE2 && out[out.count - 2] == 0x96 && out[out.count - 1] == 0x81 {
                    out.removeLast(3)
                }
            } else {
                while out.last == 0x20 { out.removeLast() }
            }
        }
        if treatWhitespaceAsSuffix && addDummyPrefix { appendSpace(&out) }
    }
}
