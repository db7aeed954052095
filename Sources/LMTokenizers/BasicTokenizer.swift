import Foundation

/// BERT's normalizer options (Hugging Face `BertNormalizer`; `tokenizer_config.json`'s
/// `do_lower_case`, `strip_accents`, `tokenize_chinese_chars`).
public struct BertNormalization: Equatable, Sendable, Codable {
    /// Delete NUL, U+FFFD and control/format characters; turn every whitespace into a space.
    public var cleanText: Bool
    /// Put spaces around CJK ideographs so each one is a word.
    public var handleChineseChars: Bool
    /// Remove accents (NFD, then drop nonspacing marks). nil: do it exactly when lowercasing.
    public var stripAccents: Bool?
    public var lowercase: Bool

    public init(cleanText: Bool = true, handleChineseChars: Bool = true, stripAccents: Bool? = nil, lowercase: Bool = true) {
        self.cleanText = cleanText
        self.handleChineseChars = handleChineseChars
        self.stripAccents = stripAccents
        self.lowercase = lowercase
    }

    /// The uncased BERT default (bert-base-uncased, MiniLM, bge).
    public static let uncased = BertNormalization()
    /// The cased default: no lowercasing, no accent stripping.
    public static let cased = BertNormalization(lowercase: false)

    var stripsAccents: Bool { stripAccents ?? lowercase }
}

/// BERT's text normalization and pre-tokenization, as Hugging Face applies them (the
/// `BertNormalizer` followed by the `BertPreTokenizer`), producing words for WordPiece.
///
/// Per input character, in order: clean text (drop NUL, U+FFFD, Cc/Cf/Cn/Co except tab/LF/CR;
/// whitespace becomes a space), pad CJK ideographs with spaces, strip accents (NFD and drop Mn),
/// lowercase (full Unicode mapping, per character); then split on whitespace (dropped) and
/// around punctuation (ASCII symbols and Unicode P*, each its own word).
///
/// Works on UTF-8 bytes; ASCII takes a fast path, other characters go through a cache of their
/// normalized forms (Foundation's NFD for everything but Hangul, which is decomposed here).
final class BasicTokenizer: @unchecked Sendable {
    let options: BertNormalization
    private let strip: Bool
    private let lock = NSLock()
    private var cache: [UInt32: [UInt32]] = [:]

    init(options: BertNormalization) {
        self.options = options
        self.strip = options.stripsAccents
    }

    /// Calls `body` with the UTF-8 bytes and the character count of every word of `p`.
    func forEachWord(_ p: UnsafeBufferPointer<UInt8>,
                     _ body: (UnsafeBufferPointer<UInt8>, _ characters: Int) throws -> Void) rethrows {
        var word: [UInt8] = []
        word.reserveCapacity(64)
        var chars = 0
        var single: [UInt8] = []
        single.reserveCapacity(4)

        @inline(__always) func flush() throws {
            if chars > 0 {
                try word.withUnsafeBufferPointer { try body($0, chars) }
                word.removeAll(keepingCapacity: true)
                chars = 0
            }
        }
        @inline(__always) func emitAlone(_ x: UInt32) throws {
            try flush()
            single.removeAll(keepingCapacity: true)
            UnicodeText.append(x, to: &single)
            try single.withUnsafeBufferPointer { try body($0, 1) }
        }

        let lower = options.lowercase
        let clean = options.cleanText
        let chinese = options.handleChineseChars
        var i = 0
        let n = p.count
        while i < n {
            let b = p[i]
            if b < 0x80 {
                // ASCII fast path: no decomposition; lowercasing is +32.
                i += 1
                var c = UInt32(b)
                // clean_text deletes controls before whitespace is looked at: VT and FF vanish.
                if clean && UnicodeText.isBertControl(c) { continue }
                if UnicodeText.isWhitespace(c) { try flush(); continue }
                if UnicodeText.isBertPunctuation(c) { try emitAlone(c); continue }
                if lower && c >= 0x41 && c <= 0x5A { c += 32 }
                word.append(UInt8(c))
                chars += 1
                continue
            }
            let (c, len) = UnicodeText.decode(p, i)
            i += len
            if clean {
                if c == 0xFFFD || UnicodeText.isBertControl(c) { continue }
                if UnicodeText.isWhitespace(c) { try flush(); continue }
            } else if UnicodeText.isWhitespace(c) {
                try flush(); continue
            }
            let isCJK = chinese && UnicodeText.isChineseCharacter(c)
            if isCJK { try flush() }
            for x in normalized(c) {
                if UnicodeText.isWhitespace(x) { try flush(); continue }
                if UnicodeText.isBertPunctuation(x) { try emitAlone(x); continue }
                UnicodeText.append(x, to: &word)
                chars += 1
            }
            if isCJK { try flush() }
        }
        try flush()
    }

    /// The scalars `c` (non-ASCII) becomes after accent stripping and lowercasing.
    private func normalized(_ c: UInt32) -> [UInt32] {
        if !strip && !options.lowercase { return [c] }
        lock.lock()
        if let hit = cache[c] {
            lock.unlock()
            return hit
        }
        lock.unlock()
        let value = computeNormalized(c)
        lock.lock()
        if cache.count < 1 << 16 { cache[c] = value }
        lock.unlock()
        return value
    }

    private func computeNormalized(_ c: UInt32) -> [UInt32] {
        guard let scalar = Unicode.Scalar(c) else { return [c] }
        var scalars: [UInt32] = [c]
        if strip {
            scalars = Self.nfd(scalar).filter { x in
                guard let s = Unicode.Scalar(x) else { return true }
                return s.properties.generalCategory != .nonspacingMark
            }
        }
        if options.lowercase {
            var out: [UInt32] = []
            for x in scalars {
                guard let s = Unicode.Scalar(x) else { out.append(x); continue }
                out.append(contentsOf: s.properties.lowercaseMapping.unicodeScalars.map(\.value))
            }
            scalars = out
        }
        return scalars
    }

    /// Canonical decomposition (NFD) of one scalar. Hangul syllables are decomposed
    /// arithmetically into conjoining jamo; everything else through Foundation.
    static func nfd(_ s: Unicode.Scalar) -> [UInt32] {
        let v = s.value
        if v < 0xC0 { return [v] }
        if v >= 0xAC00 && v <= 0xD7A3 {
            let index = v - 0xAC00
            let l = 0x1100 + index / (21 * 28)
            let vowel = 0x1161 + (index % (21 * 28)) / 28
            let t = index % 28
            return t == 0 ? [l, vowel] : [l, vowel, 0x11A7 + t]
        }
        return String(Character(s)).decomposedStringWithCanonicalMapping.unicodeScalars.map(\.value)
    }
}
