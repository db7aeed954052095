import LMCore

/// UTF-8 decoding and the Unicode character classes the tokenizers need, with ASCII fast paths.
///
/// Every tokenizer works on the UTF-8 bytes of its input; these helpers decode one scalar at a
/// time from a buffer that is already known to be valid UTF-8 (a Swift `String`'s storage, or
/// bytes checked by `validateUTF8`).
enum UnicodeText {
    /// Decodes the scalar starting at `i` of valid UTF-8 `p`; returns it and its byte length.
    @inline(__always)
    static func decode(_ p: UnsafeBufferPointer<UInt8>, _ i: Int) -> (scalar: UInt32, length: Int) {
        let b0 = UInt32(p[i])
        if b0 < 0x80 { return (b0, 1) }
        if b0 < 0xE0 { return ((b0 & 0x1F) << 6 | UInt32(p[i + 1] & 0x3F), 2) }
        if b0 < 0xF0 {
            return ((b0 & 0x0F) << 12 | UInt32(p[i + 1] & 0x3F) << 6 | UInt32(p[i + 2] & 0x3F), 3)
        }
        return ((b0 & 0x07) << 18 | UInt32(p[i + 1] & 0x3F) << 12 | UInt32(p[i + 2] & 0x3F) << 6
                    | UInt32(p[i + 3] & 0x3F), 4)
    }

    /// Appends the UTF-8 encoding of scalar `v` to `out`.
    @inline(__always)
    static func append(_ v: UInt32, to out: inout [UInt8]) {
        if v < 0x80 {
            out.append(UInt8(v))
        } else if v < 0x800 {
            out.append(UInt8(0xC0 | (v >> 6)))
            out.append(UInt8(0x80 | (v & 0x3F)))
        } else if v < 0x10000 {
            out.append(UInt8(0xE0 | (v >> 12)))
            out.append(UInt8(0x80 | ((v >> 6) & 0x3F)))
            out.append(UInt8(0x80 | (v & 0x3F)))
        } else {
            out.append(UInt8(0xF0 | (v >> 18)))
            out.append(UInt8(0x80 | ((v >> 12) & 0x3F)))
            out.append(UInt8(0x80 | ((v >> 6) & 0x3F)))
            out.append(UInt8(0x80 | (v & 0x3F)))
        }
    }

    /// Byte length of the UTF-8 sequence introduced by lead byte `b` (1 for continuation bytes).
    @inline(__always)
    static func sequenceLength(_ b: UInt8) -> Int {
        if b < 0xC0 { return 1 }
        if b < 0xE0 { return 2 }
        if b < 0xF0 { return 3 }
        return 4
    }

    // MARK: Character classes

    private static let asciiLetter: UInt8 = 1, asciiDigit: UInt8 = 2, asciiSpace: UInt8 = 4, asciiPunct: UInt8 = 8
    private static let asciiFlags: [UInt8] = {
        var t = [UInt8](repeating: 0, count: 128)
        for c in UInt8(ascii: "a")...UInt8(ascii: "z") { t[Int(c)] |= asciiLetter }
        for c in UInt8(ascii: "A")...UInt8(ascii: "Z") { t[Int(c)] |= asciiLetter }
        for c in UInt8(ascii: "0")...UInt8(ascii: "9") { t[Int(c)] |= asciiDigit }
        for c in [0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20] { t[c] |= asciiSpace }
        for c in 33...47 { t[c] |= asciiPunct }
        for c in 58...64 { t[c] |= asciiPunct }
        for c in 91...96 { t[c] |= asciiPunct }
        for c in 123...126 { t[c] |= asciiPunct }
        return t
    }()

    @inline(__always)
    static func category(_ v: UInt32) -> Unicode.GeneralCategory {
        guard let s = Unicode.Scalar(v) else { return .surrogate }
        return s.properties.generalCategory
    }

    /// `\p{L}`: general category L*.
    @inline(__always)
    static func isLetter(_ v: UInt32) -> Bool {
        if v < 0x80 { return asciiFlags[Int(v)] & asciiLetter != 0 }
        switch category(v) {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }

    /// `\p{N}`: general category N*.
    @inline(__always)
    static func isNumber(_ v: UInt32) -> Bool {
        if v < 0x80 { return asciiFlags[Int(v)] & asciiDigit != 0 }
        switch category(v) {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    /// `\s` / Rust `char::is_whitespace`: the Unicode White_Space property.
    @inline(__always)
    static func isWhitespace(_ v: UInt32) -> Bool {
        if v < 0x80 { return asciiFlags[Int(v)] & asciiSpace != 0 }
        switch v {
        case 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000: return true
        default: return false
        }
    }

    /// BERT punctuation: ASCII symbols and punctuation, or Unicode P* (not S*).
    @inline(__always)
    static func isBertPunctuation(_ v: UInt32) -> Bool {
        if v < 0x80 { return asciiFlags[Int(v)] & asciiPunct != 0 }
        switch category(v) {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation: return true
        default: return false
        }
    }

    /// BERT control characters (deleted by clean_text): Cc, Cf, Cn, Co except tab, LF and CR.
    @inline(__always)
    static func isBertControl(_ v: UInt32) -> Bool {
        if v < 0x80 { return v < 0x20 ? (v != 0x09 && v != 0x0A && v != 0x0D) : v == 0x7F }
        switch category(v) {
        case .control, .format, .unassigned, .privateUse, .surrogate: return true
        default: return false
        }
    }

    /// CJK ideographs that BERT surrounds with spaces: the blocks of HF tokenizers' BertNormalizer
    /// (which, unlike the Python BasicTokenizer, starts the Extension E block at U+2B920).
    @inline(__always)
    static func isChineseCharacter(_ v: UInt32) -> Bool {
        switch v {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F,
             0x2B740...0x2B81F, 0x2B920...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F: return true
        default: return false
        }
    }
}
