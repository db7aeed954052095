/// Turns ids into text one id at a time, emitting only complete UTF-8 characters: what `lm
/// generate` and the REPL print while tokens arrive.
///
/// A character may be split over several tokens (GPT-2 byte-level tokens, SentencePiece byte
/// fallback `<0xE2><0x82><0xAC>`), and some tokenizers change the text of a token depending on
/// its neighbours (SentencePiece drops the leading space of the first piece, WordPiece glues
/// `##` pieces). So the detokenizer decodes a small window of recent ids twice — with and
/// without the new id — and emits the difference once it no longer ends in an incomplete
/// character (U+FFFD). Each call costs a decode of the window, not of the whole text.
///
/// ```swift
/// var stream = tokenizer.makeStreamingDetokenizer()
/// for id in generatedIds { print(stream.append(id), terminator: "") }
/// print(stream.flush())
/// ```
public struct StreamingDetokenizer {
    public let tokenizer: any Tokenizer
    public let skipSpecialTokens: Bool

    /// The window: ids[0..<readOffset] were already emitted (as context), the rest are pending.
    private var ids: [Int] = []
    private var readOffset = 0

    /// Pending ids longer than this are emitted even if the text still ends in U+FFFD
    /// (a genuinely invalid byte sequence must not stall the stream).
    private static let maxPending = 8

    public init(tokenizer: any Tokenizer, skipSpecialTokens: Bool = true) {
        self.tokenizer = tokenizer
        self.skipSpecialTokens = skipSpecialTokens
    }

    /// Adds one id; returns the text that is now complete (often one token's text, sometimes
    /// empty while a multi-byte character is still incomplete).
    public mutating func append(_ id: Int) -> String {
        ids.append(id)
        let prefix = tokenizer.decode(Array(ids[0..<readOffset]), skipSpecialTokens: skipSpecialTokens)
        let full = tokenizer.decode(ids, skipSpecialTokens: skipSpecialTokens)
        let pending = ids.count - readOffset
        if full.unicodeScalars.last == "\u{FFFD}" && pending < Self.maxPending {
            return ""
        }
        let new = Self.suffix(of: full, after: prefix)
        // Keep the last emitted id(s) as context for the next decode.
        ids.removeFirst(readOffset)
        readOffset = ids.count
        return new
    }

    /// Returns whatever is still pending (an incomplete character becomes U+FFFD) and resets.
    public mutating func flush() -> String {
        defer {
            ids.removeAll()
            readOffset = 0
        }
        if readOffset == ids.count { return "" }
        let prefix = tokenizer.decode(Array(ids[0..<readOffset]), skipSpecialTokens: skipSpecialTokens)
        let full = tokenizer.decode(ids, skipSpecialTokens: skipSpecialTokens)
        return Self.suffix(of: full, after: prefix)
    }

    /// The part of `full` after its longest common UTF-8 prefix with `prefix`, cut at a scalar
    /// boundary.
    static func suffix(of full: String, after prefix: String) -> String {
        let f = Array(full.utf8)
        let p = Array(prefix.utf8)
        var k = 0
        while k < f.count && k < p.count && f[k] == p[k] { k += 1 }
        while k > 0 && k < f.count && f[k] & 0xC0 == 0x80 { k -= 1 }
        return String(decoding: f[k...], as: UTF8.self)
    }
}
