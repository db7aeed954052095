/// GPT-2's pre-tokenization, written as a scanner over UTF-8 instead of a regex.
///
/// It splits text exactly as the pattern
/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
/// does with leftmost-first alternation (Hugging Face's `ByteLevel` pre-tokenizer, OpenAI's
/// encoder, llama.cpp's "gpt-2" pre-tokenizer). `\s` is Unicode White_Space, `\p{L}`/`\p{N}`
/// the general categories L*/N*; contractions are case-sensitive.
///
/// The subtle alternative is `\s+(?!\S)`: a run of whitespace followed by a non-space gives up
/// its last character, so that `"  world"` splits into `" "` and `" world"`; a run that ends
/// the text is kept whole; a single whitespace before a non-space falls through to `\s+`.
enum GPT2PreTokenizer {
    /// Calls `body` with the byte range of each piece of `p` (valid UTF-8), in order.
    @inline(__always)
    static func forEachPiece(_ p: UnsafeBufferPointer<UInt8>, _ body: (Range<Int>) -> Void) {
        let n = p.count
        var i = 0
        while i < n {
            let start = i
            let b = p[i]
            // 1. Contractions.
            if b == 0x27 && i + 1 < n {
                let c1 = p[i + 1]
                if c1 == 0x73 || c1 == 0x74 || c1 == 0x6D || c1 == 0x64 {   // s t m d
                    i += 2
                    body(start..<i)
                    continue
                }
                if i + 2 < n {
                    let c2 = p[i + 2]
                    if (c1 == 0x72 && c2 == 0x65) || (c1 == 0x76 && c2 == 0x65) || (c1 == 0x6C && c2 == 0x6C) {  // re ve ll
                        i += 3
                        body(start..<i)
                        continue
                    }
                }
            }
            // 2-4. An optional space, then a run of letters, of numbers, or of other non-space.
            var j = i
            if b == 0x20 && i + 1 < n { j = i + 1 }
            let (c, len) = UnicodeText.decode(p, j)
            if j > i || !UnicodeText.isWhitespace(c) {
                let kind = classify(c)
                if kind != .space {
                    j += len
                    while j < n {
                        let (d, dlen) = UnicodeText.decode(p, j)
                        if classify(d) != kind { break }
                        j += dlen
                    }
                    i = j
                    body(start..<i)
                    continue
                }
            }
            // 5-6. Whitespace: the run, minus its last character when a non-space follows.
            var end = i
            var lastStart = i
            while end < n {
                let (d, dlen) = UnicodeText.decode(p, end)
                if !UnicodeText.isWhitespace(d) { break }
                lastStart = end
                end += dlen
            }
            if end < n && lastStart > i {
                i = lastStart          // \s+(?!\S) backtracked by one character
            } else {
                i = end                // at the end of the text, or a single character (\s+)
            }
            body(start..<i)
        }
    }

    private enum Kind { case letter, number, other, space }

    @inline(__always)
    private static func classify(_ c: UInt32) -> Kind {
        if UnicodeText.isLetter(c) { return .letter }
        if UnicodeText.isNumber(c) { return .number }
        if UnicodeText.isWhitespace(c) { return .space }
        return .other
    }
}
