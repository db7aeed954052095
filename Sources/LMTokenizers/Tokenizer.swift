import LMCore

/// The ids of a tokenizer's special tokens; nil when the vocabulary has no such token.
///
/// `bos`/`eos` begin and end a sequence (`<s>`, `</s>`, GPT-2's `<|endoftext|>`), `cls`/`sep`/
/// `mask` are BERT's `[CLS]`, `[SEP]` and `[MASK]`, `unk` stands for text the vocabulary cannot
/// cover, and `pad` fills batches to one length.
public struct SpecialTokens: Equatable, Sendable {
    public var bos: Int?
    public var eos: Int?
    public var pad: Int?
    public var unk: Int?
    public var cls: Int?
    public var sep: Int?
    public var mask: Int?

    public init(bos: Int? = nil, eos: Int? = nil, pad: Int? = nil, unk: Int? = nil,
                cls: Int? = nil, sep: Int? = nil, mask: Int? = nil) {
        self.bos = bos
        self.eos = eos
        self.pad = pad
        self.unk = unk
        self.cls = cls
        self.sep = sep
        self.mask = mask
    }
}

/// Turns text into token ids and back. Tokenizers see only text and ids, never tensors.
///
/// Implementations: `WordPieceTokenizer` (BERT), `ByteLevelBPETokenizer` (GPT-2 and friends),
/// `SentencePieceTokenizer` (a `.model` through libsentencepiece) and `SentencePieceBPETokenizer`
/// (the Llama vocabulary of a llama.cpp `.gguf`). `TokenizerLoader` picks one from a path.
///
/// ```swift
/// let tokenizer = try TokenizerLoader.load(path: "models/gpt2")
/// let ids = try tokenizer.encode("Hello world")          // [15496, 995]: no special tokens
/// let text = tokenizer.decode(ids)                       // "Hello world"
/// let bert = try tokenizer.encode("Hi", addSpecialTokens: true)  // BERT: [CLS] hi [SEP]
/// var stream = tokenizer.makeStreamingDetokenizer()      // for generation: complete UTF-8 only
/// ```
///
/// Every implementation is immutable after loading (caches are internally locked), so one
/// instance may be shared between threads.
public protocol Tokenizer: AnyObject, Sendable {
    /// Number of ids: every id in `0..<vocabularySize` has a piece.
    var vocabularySize: Int { get }

    /// The special tokens the vocabulary defines.
    var specialTokens: SpecialTokens { get }

    /// How special tokens are put around one sequence or a pair (`[CLS] A [SEP] B [SEP]`, `<s> A`).
    var postProcessor: PostProcessor { get }

    /// Whether `lm tokenize` adds special tokens when neither `--add-special` nor `--no-special`
    /// is given: true only for BERT-style tokenizers, which Hugging Face always wraps in
    /// `[CLS]`/`[SEP]`; false for SentencePiece and byte-level BPE.
    var addsSpecialTokensByDefault: Bool { get }

    /// A one-line description for logs and `lm tokenize`: the kind, the size, the options.
    var summary: String { get }

    /// Encodes `text` without adding special tokens. With `parseSpecialTokens`, the text of a
    /// special or added token (`<|endoftext|>`, `[MASK]`) becomes that token's id; without it,
    /// such text is tokenized like any other text (llama.cpp's "parse special" off).
    func encode(_ text: String, parseSpecialTokens: Bool) throws -> [Int]

    /// Decodes ids into text. Ids outside `0..<vocabularySize` become U+FFFD; byte sequences that
    /// are not valid UTF-8 become U+FFFD. With `skipSpecialTokens`, control/special tokens are
    /// left out (Hugging Face's `skip_special_tokens=True`).
    func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String

    /// The vocabulary string of `id` (`Ġworld`, `##ing`, `▁the`, `<0x0A>`), or nil when out of range.
    func piece(for id: Int) -> String?

    /// The id of a vocabulary string, or nil.
    func id(for piece: String) -> Int?

    /// Whether `id` is a special/control token (skipped by `decode(_:skipSpecialTokens: true)`).
    func isSpecial(_ id: Int) -> Bool

    /// The ids that end a generation: EOS, and for vocabularies that have them the other
    /// end-of-turn tokens llama.cpp stops at (Gemma's `<end_of_turn>`).
    var endOfGenerationTokens: [Int] { get }
}

extension Tokenizer {
    public var endOfGenerationTokens: [Int] { specialTokens.eos.map { [$0] } ?? [] }

    /// Encodes `text` without special tokens and without parsing special-token text.
    public func encode(_ text: String) throws -> [Int] {
        try encode(text, parseSpecialTokens: false)
    }

    /// Encodes `text`, adding the special tokens of a single sequence when `addSpecialTokens`.
    public func encode(_ text: String, addSpecialTokens: Bool, parseSpecialTokens: Bool = false) throws -> [Int] {
        let ids = try encode(text, parseSpecialTokens: parseSpecialTokens)
        return addSpecialTokens ? postProcessor.apply(ids, nil).ids : ids
    }

    /// Encodes raw bytes, which must be UTF-8; invalid UTF-8 throws an error naming the offset.
    public func encode(utf8 bytes: [UInt8], parseSpecialTokens: Bool = false) throws -> [Int] {
        let text = try bytes.withUnsafeBytes { try UTF8Text.decode($0, source: "the input text") }
        return try encode(text, parseSpecialTokens: parseSpecialTokens)
    }

    /// Decodes ids, keeping special tokens (Hugging Face's default).
    public func decode(_ ids: [Int]) -> String {
        decode(ids, skipSpecialTokens: false)
    }

    /// The vocabulary strings of `ids` (`"<?>"` for an id out of range).
    public func pieces(for ids: [Int]) -> [String] {
        ids.map { piece(for: $0) ?? "<?>" }
    }

    /// A detokenizer that takes ids one at a time and returns only complete UTF-8 text.
    public func makeStreamingDetokenizer(skipSpecialTokens: Bool = true) -> StreamingDetokenizer {
        StreamingDetokenizer(tokenizer: self, skipSpecialTokens: skipSpecialTokens)
    }
}
