import LMCore

/// BERT's WordPiece tokenizer, identical to Hugging Face's `BertTokenizer` (fast and slow).
///
/// `BasicTokenizer` normalizes the text and splits it into words; each word then becomes the
/// longest vocabulary piece that starts it, followed by the longest `##` continuation pieces
/// (greedy longest-match-first). A word that cannot be covered, or that has more than
/// `maxInputCharsPerWord` characters, becomes one `[UNK]`. Special tokens: `[CLS] A [SEP]`,
/// pairs `[CLS] A [SEP] B [SEP]`, added by default (`addsSpecialTokensByDefault`).
///
/// ```swift
/// let bert = try WordPieceTokenizer(vocabularyFile: "minilm/vocab.txt")
/// try bert.encode("Dvořák", addSpecialTokens: true)   // [CLS] d ##vor ##ak [SEP]
/// ```
public final class WordPieceTokenizer: Tokenizer, @unchecked Sendable {
    /// Everything besides the vocabulary.
    public struct Configuration: Equatable, Sendable {
        public var normalization: BertNormalization
        public var unkToken: String
        public var clsToken: String
        public var sepToken: String
        public var padToken: String
        public var maskToken: String
        public var continuingSubwordPrefix: String
        public var maxInputCharsPerWord: Int

        public init(normalization: BertNormalization = .uncased, unkToken: String = "[UNK]",
                    clsToken: String = "[CLS]", sepToken: String = "[SEP]", padToken: String = "[PAD]",
                    maskToken: String = "[MASK]", continuingSubwordPrefix: String = "##",
                    maxInputCharsPerWord: Int = 100) {
            self.normalization = normalization
            self.unkToken = unkToken
            self.clsToken = clsToken
            self.sepToken = sepToken
            self.padToken = padToken
            self.maskToken = maskToken
            self.continuingSubwordPrefix = continuingSubwordPrefix
            self.maxInputCharsPerWord = maxInputCharsPerWord
        }
    }

    public let configuration: Configuration
    public let specialTokens: SpecialTokens
    public let postProcessor: PostProcessor
    public let addsSpecialTokensByDefault = true
    public var vocabularySize: Int { pieces.count }
    public var summary: String {
        let n = configuration.normalization
        return "WordPiece (BERT), \(pieces.count) pieces, \(n.lowercase ? "lowercase" : "cased")\(n.stripsAccents ? ", accents stripped" : "")"
    }

    private let pieces: [String]
    private let pieceIds: ByteSliceMap
    private let basic: BasicTokenizer
    private let wordStart: PrefixTrie
    private let wordContinuation: PrefixTrie
    private let unk: Int32
    private let special: Set<Int>
    private let added: AddedTokens

    /// Builds the tokenizer from the pieces in id order (the lines of `vocab.txt`).
    /// `addedTokens` are extra special tokens beyond [CLS]/[SEP]/[PAD]/[UNK]/[MASK] (tokenizer.json).
    public init(vocabulary: [String], configuration: Configuration = Configuration(),
                addedTokens: [(content: String, id: Int)] = [], postProcessor: PostProcessor? = nil) throws {
        guard !vocabulary.isEmpty else {
            throw LMError(.invalidConfig, "the WordPiece vocabulary is empty; pass a vocab.txt with one piece per line")
        }
        self.configuration = configuration
        self.pieces = vocabulary
        var ids = ByteSliceMap(capacity: vocabulary.count)
        var start = PrefixTrie.Builder()
        var continuation = PrefixTrie.Builder()
        let prefix = Array(configuration.continuingSubwordPrefix.utf8)
        for (id, piece) in vocabulary.enumerated() {
            let bytes = Array(piece.utf8)
            ids.insert(bytes, Int32(id))
            start.insert(bytes, Int32(id))
            if !prefix.isEmpty, bytes.count > prefix.count, Array(bytes[0..<prefix.count]) == prefix {
                continuation.insert(Array(bytes[prefix.count...]), Int32(id))
            } else if prefix.isEmpty {
                continuation.insert(bytes, Int32(id))
            }
        }
        self.pieceIds = ids
        self.wordStart = start.build()
        self.wordContinuation = continuation.build()
        guard let unk = ids.value(for: configuration.unkToken) else {
            throw LMError(.invalidConfig, "the WordPiece vocabulary has no unknown token '\(configuration.unkToken)'; add it to vocab.txt or set unk_token")
        }
        self.unk = unk
        func lookup(_ s: String) -> Int? { ids.value(for: s).map(Int.init) }
        let tokens = SpecialTokens(pad: lookup(configuration.padToken), unk: Int(unk),
                                   cls: lookup(configuration.clsToken), sep: lookup(configuration.sepToken),
                                   mask: lookup(configuration.maskToken))
        self.specialTokens = tokens
        if let postProcessor {
            self.postProcessor = postProcessor
        } else if let cls = tokens.cls, let sep = tokens.sep {
            self.postProcessor = .bert(cls: cls, sep: sep)
        } else {
            self.postProcessor = .none
        }
        var specialList: [(content: String, id: Int)] = addedTokens
        for (name, id) in [(configuration.padToken, tokens.pad), (configuration.unkToken, tokens.unk),
                           (configuration.clsToken, tokens.cls), (configuration.sepToken, tokens.sep),
                           (configuration.maskToken, tokens.mask)] {
            if let id, !specialList.contains(where: { $0.content == name }) { specialList.append((name, id)) }
        }
        self.added = AddedTokens(specialList)
        self.special = Set(specialList.map(\.id))
        self.basic = BasicTokenizer(options: configuration.normalization)
    }

    /// Loads `vocab.txt` (one piece per line, the line number is the id).
    public convenience init(vocabularyFile path: String, configuration: Configuration = Configuration()) throws {
        let text = try FileIO.readString(path)
        try self.init(vocabulary: Self.parseVocabulary(text), configuration: configuration)
    }

    /// The lines of a vocab.txt, trailing whitespace removed (as Hugging Face reads it).
    static func parseVocabulary(_ text: String) -> [String] {
        var copy = text
        return copy.withUTF8 { p -> [String] in
            var out: [String] = []
            var start = 0
            var i = 0
            while i <= p.count {
                if i == p.count || p[i] == 0x0A {
                    if i == p.count && start == i { break }
                    // Drop trailing whitespace (any White_Space scalar), scalar by scalar.
                    var end = i
                    while end > start {
                        var k = end - 1
                        while k > start && p[k] & 0xC0 == 0x80 { k -= 1 }
                        let (c, _) = UnicodeText.decode(p, k)
                        if !UnicodeText.isWhitespace(c) { break }
                        end = k
                    }
                    out.append(String(decoding: UnsafeBufferPointer(rebasing: p[start..<end]), as: UTF8.self))
                    start = i + 1
                }
                i += 1
            }
            return out
        }
    }

    public func encode(_ text: String, parseSpecialTokens: Bool) throws -> [Int] {
        encodeSplittingAddedTokens(text, added: added, parse: parseSpecialTokens) { p, out in
            basic.forEachWord(p) { word, characters in
                appendWordPieces(word, characters: characters, to: &out)
            }
        }
    }

    /// Greedy longest-match-first over one normalized word.
    @inline(__always)
    private func appendWordPieces(_ word: UnsafeBufferPointer<UInt8>, characters: Int, to out: inout [Int]) {
        if characters > configuration.maxInputCharsPerWord {
            out.append(Int(unk))
            return
        }
        let mark = out.count
        var start = 0
        while start < word.count {
            let trie = start == 0 ? wordStart : wordContinuation
            guard let (end, id) = trie.longestPrefix(word, from: start) else {
                out.removeLast(out.count - mark)
                out.append(Int(unk))
                return
            }
            out.append(Int(id))
            start = end
        }
    }

    public func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String {
        // Hugging Face's WordPiece decoder: "##" pieces join the previous one, others get a
        // space; each piece is then cleaned (" ." -> ".", ...) on its own.
        var out = ""
        var first = true
        let prefix = configuration.continuingSubwordPrefix
        for id in ids {
            if skipSpecialTokens && special.contains(id) { continue }
            guard id >= 0 && id < pieces.count else {
                out += first ? "\u{FFFD}" : " \u{FFFD}"
                first = false
                continue
            }
            var piece = pieces[id]
            if !first {
                if !prefix.isEmpty && piece.utf8.starts(with: prefix.utf8) {
                    piece = String(decoding: piece.utf8.dropFirst(prefix.utf8.count), as: UTF8.self)
                } else {
                    piece = " " + piece
                }
            }
            first = false
            out += Self.cleanup(piece)
        }
        return out
    }

    /// Hugging Face's `cleanup_tokenization_spaces`, applied to one decoded piece.
    static func cleanup(_ s: String) -> String {
        guard s.utf8.first == 0x20 else { return s }
        var t = s
        for (from, to) in [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                           (" 'm", "'m"), (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")] {
            t = t.replacingAll(from, with: to)
        }
        return t
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

extension String {
    /// Replaces every occurrence of `target` (no Foundation needed).
    func replacingAll(_ target: String, with replacement: String) -> String {
        // Byte-wise, so that a match never depends on grapheme clusters.
        let s = Array(utf8), t = Array(target.utf8), r = Array(replacement.utf8)
        guard !t.isEmpty, s.count >= t.count else { return self }
        var out: [UInt8] = []
        out.reserveCapacity(s.count)
        var i = 0
        var changed = false
        while i < s.count {
            if i + t.count <= s.count && s[i] == t[0] && Array(s[i..<i + t.count]) == t {
                out += r
                i += t.count
                changed = true
            } else {
                out.append(s[i])
                i += 1
            }
        }
        return changed ? String(decoding: out, as: UTF8.self) : self
    }
}
