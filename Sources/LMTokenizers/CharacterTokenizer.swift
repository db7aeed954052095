import Foundation
import LMCore

/// A character-level tokenizer: one id per Unicode scalar of a fixed alphabet, as nanoGPT's
/// Shakespeare-char models use (the alphabet is the sorted set of the corpus's characters).
///
/// Saved as a Hugging Face `tokenizer.json`: a BPE model with the characters as its vocabulary
/// and no merges, no normalizer or pre-tokenizer, and the `Fuse` decoder — so `tokenizers`
/// in Python loads it and gives the same ids.
///
/// ```swift
/// let tok = CharacterTokenizer(corpus: text)      // alphabet = sorted characters of text
/// try tok.save(to: "run/tokenizer.json")
/// ```
public final class CharacterTokenizer: Tokenizer, @unchecked Sendable {
    public let alphabet: [Unicode.Scalar]
    private let index: [UInt32: Int]

    public init(alphabet: [Unicode.Scalar]) {
        self.alphabet = alphabet
        var idx: [UInt32: Int] = [:]
        for (i, s) in alphabet.enumerated() { idx[s.value] = i }
        index = idx
    }

    /// The sorted set of the scalars of `corpus`.
    public convenience init(corpus: String) {
        var seen = Set<UInt32>()
        for s in corpus.unicodeScalars { seen.insert(s.value) }
        self.init(alphabet: seen.sorted().compactMap(Unicode.Scalar.init))
    }

    public var vocabularySize: Int { alphabet.count }
    public var specialTokens: SpecialTokens { SpecialTokens() }
    public var postProcessor: PostProcessor { .none }
    public var addsSpecialTokensByDefault: Bool { false }
    public var summary: String { "character-level, \(alphabet.count) characters" }

    public func encode(_ text: String, parseSpecialTokens: Bool) throws -> [Int] {
        var ids: [Int] = []
        ids.reserveCapacity(text.unicodeScalars.count)
        for s in text.unicodeScalars {
            guard let id = index[s.value] else {
                let shown = s.value < 0x20 ? String(format: "U+%04X", s.value) : "'\(Character(s))' (U+\(String(format: "%04X", s.value)))"
                throw LMError(.invalidInput, "character \(shown) is not in this model's \(alphabet.count)-character alphabet — use only characters of its training text")
            }
            ids.append(id)
        }
        return ids
    }

    public func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String {
        var s = String.UnicodeScalarView()
        for id in ids { s.append(id >= 0 && id < alphabet.count ? alphabet[id] : "\u{FFFD}") }
        return String(s)
    }

    public func piece(for id: Int) -> String? {
        id >= 0 && id < alphabet.count ? String(Character(alphabet[id])) : nil
    }

    public func id(for piece: String) -> Int? {
        let scalars = Array(piece.unicodeScalars)
        guard scalars.count == 1 else { return nil }
        return index[scalars[0].value]
    }

    public func isSpecial(_ id: Int) -> Bool { false }

    /// The `tokenizer.json` object.
    public func huggingFaceJSON() throws -> Data {
        var vocab: [String: Int] = [:]
        for (i, s) in alphabet.enumerated() { vocab[String(Character(s))] = i }
        let object: [String: Any] = [
            "version": "1.0",
            "truncation": NSNull(), "padding": NSNull(), "added_tokens": [Any](),
            "normalizer": NSNull(), "pre_tokenizer": NSNull(), "post_processor": NSNull(),
            "decoder": ["type": "Fuse"],
            "model": ["type": "BPE", "dropout": NSNull(), "unk_token": NSNull(),
                      "continuing_subword_prefix": NSNull(), "end_of_word_suffix": NSNull(),
                      "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                      "vocab": vocab, "merges": [Any]()] as [String: Any],
        ]
        return try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    }

    /// Writes `tokenizer.json` atomically.
    public func save(to path: String) throws {
        try FileIO.writeString(String(decoding: try huggingFaceJSON(), as: UTF8.self), to: path)
    }

    /// Recognises the `tokenizer.json` shape `save` writes (a BPE model without merges whose
    /// vocabulary is single characters, with the Fuse decoder); nil for anything else.
    public static func fromHuggingFaceJSON(_ object: [String: Any]) -> CharacterTokenizer? {
        guard let model = object["model"] as? [String: Any], model["type"] as? String == "BPE",
              (model["merges"] as? [Any])?.isEmpty == true,
              (object["decoder"] as? [String: Any])?["type"] as? String == "Fuse",
              object["pre_tokenizer"] is NSNull || object["pre_tokenizer"] == nil,
              let vocab = model["vocab"] as? [String: Any] else { return nil }
        var alphabet = [Unicode.Scalar?](repeating: nil, count: vocab.count)
        for (piece, idAny) in vocab {
            let scalars = Array(piece.unicodeScalars)
            guard scalars.count == 1, let id = (idAny as? NSNumber)?.intValue, id >= 0, id < vocab.count else { return nil }
            alphabet[id] = scalars[0]
        }
        let full = alphabet.compactMap { $0 }
        guard full.count == vocab.count else { return nil }
        return CharacterTokenizer(alphabet: full)
    }
}
