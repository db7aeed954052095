import LMCore

/// The tokenizer stored in a GGUF file's `tokenizer.ggml.*` keys (a llama.cpp vocabulary file or
/// a full model), and the `Tokenizer` it describes.
///
/// | `tokenizer.ggml.model` | tokenizer |
/// | --- | --- |
/// | `gpt2` | `ByteLevelBPETokenizer` from `tokens` + `merges` |
/// | `bert` | `WordPieceTokenizer` (uncased) from `tokens`, converted back from llama.cpp's `▁word` spelling to `##` |
/// | `llama` | `SentencePieceBPETokenizer` from `tokens` + `scores` + `llamaCppTokenTypes` (llama.cpp's SPM rules) |
///
/// As llama.cpp does when it loads a file, a `llama` vocabulary without BOS/EOS/unknown keys
/// uses ids 1/2/0, and tokens that look like control tokens are made control
/// (`llamaCppTokenTypes`, `endOfGenerationTokens`).
public struct GGUFVocabulary: Sendable {
    public var model: String
    public var pre: String?
    public var tokens: [String]
    public var scores: [Float]
    public var tokenTypes: [Int]
    public var merges: [String]
    public var specialTokens: SpecialTokens
    public var addBOS: Bool
    public var addEOS: Bool
    public var addSpacePrefix: Bool
    /// `tokenTypes` as llama.cpp uses them: a token whose text names an end of generation
    /// (`</s>`, `<end_of_turn>`, `<|im_end|>`, `<eos>`, …) or a fill-in-the-middle token the
    /// file gives no id key for (`<|fim_prefix|>`, `<PRE>`, …) is control even if the file says
    /// otherwise (Gemma 3 stores `</s>` as user-defined; llama.cpp treats it as control, so it is
    /// matched only when special tokens are parsed and hidden when they are skipped).
    public var llamaCppTokenTypes: [Int]
    /// The ids llama.cpp ends generation at (`llama_vocab_is_eog`), ascending: EOS, the end-of-
    /// turn/-message ids of the file, the tokens named as such (see `llamaCppTokenTypes`), and the
    /// fill-in-the-middle pad/repo/separator ids. Gemma 3: 1 `<eos>`, 106 `<end_of_turn>`, 212 `</s>`.
    public var endOfGenerationTokens: [Int]

    public init(path: String) throws {
        let meta = try GGUFMetadata(path: path)
        try self.init(metadata: meta, path: path)
    }

    public init(metadata meta: GGUFMetadata, path: String = "the GGUF file") throws {
        guard let model = meta["tokenizer.ggml.model"]?.stringValue else {
            throw LMError(.invalidConfig, "'\(path)' has no tokenizer (no tokenizer.ggml.model key); use a GGUF that includes its vocabulary")
        }
        guard let tokenValues = meta["tokenizer.ggml.tokens"], (tokenValues.count ?? 0) > 0 else {
            throw LMError(.corruptFile, "'\(path)' has no tokenizer.ggml.tokens array; the vocabulary is missing")
        }
        guard let tokens = tokenValues.stringArray else {
            throw LMError(.corruptFile, "'\(path)': tokenizer.ggml.tokens holds a non-string")
        }
        self.model = model
        self.pre = meta["tokenizer.ggml.pre"]?.stringValue
        self.tokens = tokens
        self.scores = meta["tokenizer.ggml.scores"]?.doubleArray?.map { Float($0) } ?? []
        self.tokenTypes = meta["tokenizer.ggml.token_type"]?.intArray ?? []
        self.merges = meta["tokenizer.ggml.merges"]?.stringArray ?? []
        let n = tokens.count
        func id(_ keys: String...) -> Int? {
            for k in keys {
                if let v = meta["tokenizer.ggml.\(k)"]?.intValue, v >= 0, v < n { return v }
            }
            return nil
        }
        // llama.cpp's defaults for SPM vocabularies: <unk> 0, <s> 1, </s> 2.
        func fallback(_ v: Int) -> Int? { model == "llama" && v < n ? v : nil }
        self.specialTokens = SpecialTokens(
            bos: id("bos_token_id") ?? fallback(1), eos: id("eos_token_id") ?? fallback(2),
            pad: id("padding_token_id"), unk: id("unknown_token_id") ?? fallback(0), cls: id("cls_token_id"),
            sep: id("seperator_token_id", "separator_token_id"), mask: id("mask_token_id"))
        self.addBOS = meta["tokenizer.ggml.add_bos_token"]?.boolValue ?? (model == "llama")
        self.addEOS = meta["tokenizer.ggml.add_eos_token"]?.boolValue ?? false
        self.addSpacePrefix = meta["tokenizer.ggml.add_space_prefix"]?.boolValue ?? (model == "llama")
        if !scores.isEmpty && scores.count != n || !tokenTypes.isEmpty && tokenTypes.count != n {
            throw LMError(.corruptFile, "'\(path)': \(n) tokens but \(scores.count) scores and \(tokenTypes.count) token types; the vocabulary is corrupt")
        }
        (self.llamaCppTokenTypes, self.endOfGenerationTokens) = Self.llamaCppTypes(
            tokens: tokens, types: tokenTypes.isEmpty ? Array(repeating: 1, count: n) : tokenTypes,
            eos: specialTokens.eos, key: { k in id(k) })
    }

    /// Texts llama.cpp treats as end of generation (and therefore as control tokens).
    static let endOfGenerationNames: Set<String> = [
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
        "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
        "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
        "<\u{FF5C}end\u{2581}of\u{2581}sentence\u{FF5C}>", "[e~[",
    ]

    /// Fill-in-the-middle token texts by id key (llama.cpp makes them control when the key is
    /// absent; the pad/repo/separator ones also end generation).
    static let fillInTheMiddleNames: [(keys: [String], names: Set<String>, endsGeneration: Bool)] = [
        (["fim_pre_token_id", "prefix_token_id"], ["<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>",
            "<\u{FF5C}fim\u{2581}begin\u{FF5C}>", "<PRE>", "\u{2581}<PRE>", "<|code_prefix|>", "<|prefix|>"], false),
        (["fim_suf_token_id", "suffix_token_id"], ["<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>",
            "<\u{FF5C}fim\u{2581}hole\u{FF5C}>", "<SUF>", "\u{2581}<SUF>", "<|code_suffix|>", "<|suffix|>"], false),
        (["fim_mid_token_id", "middle_token_id"], ["<|fim_middle|>", "<fim-middle>", "<fim_middle>",
            "<\u{FF5C}fim\u{2581}end\u{FF5C}>", "<MID>", "\u{2581}<MID>", "<|code_middle|>", "<|middle|>"], false),
        (["fim_pad_token_id"], ["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"], true),
        (["fim_rep_token_id"], ["<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"], true),
        (["fim_sep_token_id"], ["<|file_sep|>"], true),
    ]

    /// llama.cpp's load-time type fixes and end-of-generation set (see `llamaCppTokenTypes`).
    /// The names are looked up as bytes, and only for tokens that could be one (first byte,
    /// length), so this is cheap for a 262k-token vocabulary.
    static func llamaCppTypes(tokens: [String], types: [Int], eos: Int?,
                              key: (String) -> Int?) -> (types: [Int], endOfGeneration: [Int]) {
        var types = types
        var eog = Set<Int>()
        if let eos { eog.insert(eos) }
        for k in ["eot_token_id", "eom_token_id"] { if let v = key(k) { eog.insert(v) } }
        // name -> 1 (makes control) | 2 (ends generation)
        var names = ByteSliceMap(capacity: 64)
        var firstBytes = [Bool](repeating: false, count: 256)
        var maxLength = 0
        func add(_ set: Set<String>, _ flags: Int32) {
            for name in set {
                names.insert(name, flags)
                firstBytes[Int(name.utf8.first!)] = true
                maxLength = max(maxLength, name.utf8.count)
            }
        }
        add(endOfGenerationNames, 3)
        for f in fillInTheMiddleNames {
            if let v = f.keys.lazy.compactMap(key).first {
                if f.endsGeneration { eog.insert(v) }
            } else {
                add(f.names, f.endsGeneration ? 3 : 1)
            }
        }
        let control = SentencePiecePieceType.control.rawValue
        for i in tokens.indices {
            var t = tokens[i]
            let flags: Int32? = t.withUTF8 { u in
                guard u.count <= maxLength, let b = u.first, firstBytes[Int(b)] else { return nil }
                return names.value(for: UnsafeRawBufferPointer(u))
            }
            guard let flags else { continue }
            if flags & 2 != 0 { eog.insert(i) }
            if types[i] != control && types[i] != SentencePiecePieceType.unknown.rawValue { types[i] = control }
        }
        return (types, eog.sorted())
    }

    /// The tokenizer this vocabulary describes.
    public func makeTokenizer() throws -> any Tokenizer {
        switch model {
        case "gpt2":
            var vocabulary: [String: Int] = [:]
            vocabulary.reserveCapacity(tokens.count)
            var added: [(content: String, id: Int, special: Bool)] = []
            for (i, t) in tokens.enumerated() {
                let type = i < tokenTypes.count ? tokenTypes[i] : 1
                if type == SentencePiecePieceType.control.rawValue || type == SentencePiecePieceType.userDefined.rawValue {
                    added.append((t, i, type == SentencePiecePieceType.control.rawValue))
                } else {
                    vocabulary[t] = i
                }
            }
            var pairs: [(String, String)] = []
            pairs.reserveCapacity(merges.count)
            for m in merges {
                guard let pair = splitMerge(m) else {
                    throw LMError(.corruptFile, "GGUF merge '\(m)' is not two symbols separated by a space")
                }
                pairs.append(pair)
            }
            let post: PostProcessor = addBOS || addEOS
                ? .bosEos(bos: addBOS ? specialTokens.bos : nil, eos: addEOS ? specialTokens.eos : nil) : .none
            return try ByteLevelBPETokenizer(vocabulary: vocabulary, merges: pairs, addedTokens: added,
                                             specialTokens: specialTokens, postProcessor: post)
        case "bert":
            // llama.cpp stores "▁word" for word-initial pieces and "ing" for "##ing".
            let vocabulary = tokens.map { t -> String in
                let scalars = t.unicodeScalars
                if scalars.first == "[" && scalars.last == "]" { return t }
                if scalars.first == "\u{2581}" { return String(scalars.dropFirst()) }
                return "##" + t
            }
            var config = WordPieceTokenizer.Configuration()
            func name(_ id: Int?) -> String? { id.map { vocabulary[$0] } }
            if let s = name(specialTokens.unk) { config.unkToken = s }
            if let s = name(specialTokens.cls) { config.clsToken = s }
            if let s = name(specialTokens.sep) { config.sepToken = s }
            if let s = name(specialTokens.pad) { config.padToken = s }
            if let s = name(specialTokens.mask) { config.maskToken = s }
            return try WordPieceTokenizer(vocabulary: vocabulary, configuration: config)
        case "llama":
            return try SentencePieceBPETokenizer(
                pieces: tokens, scores: scores.isEmpty ? Array(repeating: 0, count: tokens.count) : scores,
                types: llamaCppTokenTypes, specialTokens: specialTokens, addSpacePrefix: addSpacePrefix,
                addBOS: addBOS, addEOS: addEOS, endOfGenerationTokens: endOfGenerationTokens)
        default:
            throw LMError(.invalidConfig, "GGUF tokenizer model '\(model)' is not supported; supported: gpt2 (byte-level BPE), bert (WordPiece), llama (SentencePiece BPE)")
        }
    }
}
