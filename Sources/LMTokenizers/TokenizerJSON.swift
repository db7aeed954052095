import Foundation
import LMCore

/// Reads Hugging Face's `tokenizer.json` (the `tokenizers` library's single-file format) into
/// one of our tokenizers.
///
/// Supported pipelines:
/// - `model.type` **WordPiece** with a `BertNormalizer` (or none) and the BERT pre-tokenizer →
///   `WordPieceTokenizer` (normalizer flags, `unk_token`, `continuing_subword_prefix`,
///   `max_input_chars_per_word`, post-processor, added tokens).
/// - `model.type` **BPE** with a `ByteLevel` pre-tokenizer (GPT-2, RoBERTa, GPT-J, ...) →
///   `ByteLevelBPETokenizer` (`add_prefix_space`, merges as `"a b"` strings or `[a, b]` pairs).
///
/// Anything else (Metaspace/SentencePiece-style BPE, Unigram, custom split regexes) throws an
/// error that says so; for SentencePiece models use the folder's `tokenizer.model`.
/// The file's own `truncation`/`padding` settings are ignored, as transformers does by default.
public enum TokenizerJSON {
    /// Loads a tokenizer.json file.
    public static func load(path: String) throws -> any Tokenizer {
        let file = try MappedFile(path: path)
        guard let object = try? JSONSerialization.jsonObject(with: Data(file.bytes)),
              let root = object as? [String: Any] else {
            throw LMError(.corruptFile, "'\(path)' is not valid JSON; expected a Hugging Face tokenizer.json")
        }
        do {
            return try load(root: root)
        } catch let e as LMError {
            throw LMError(e.kind, "'\(path)': \(e.message)")
        }
    }

    /// Whether `root` describes a pipeline `load` supports (used to prefer tokenizer.model otherwise).
    static func isSupported(path: String) -> Bool {
        guard let file = try? MappedFile(path: path),
              let object = try? JSONSerialization.jsonObject(with: Data(file.bytes)),
              let root = object as? [String: Any],
              let model = root["model"] as? [String: Any] else { return false }
        switch model["type"] as? String {
        case "WordPiece": return true
        case "BPE": return CharacterTokenizer.fromHuggingFaceJSON(root) != nil || (try? byteLevelOptions(root)) != nil
        default: return false
        }
    }

    static func load(root: [String: Any]) throws -> any Tokenizer {
        guard let model = root["model"] as? [String: Any] else {
            throw LMError(.corruptFile, "no \"model\" object; expected a Hugging Face tokenizer.json")
        }
        let type = model["type"] as? String ?? (model["merges"] != nil ? "BPE" : "")
        if let characters = CharacterTokenizer.fromHuggingFaceJSON(root) { return characters }
        let added = addedTokens(root)
        switch type {
        case "WordPiece":
            return try wordPiece(root: root, model: model, added: added)
        case "BPE":
            return try bytePairs(root: root, model: model, added: added)
        default:
            throw LMError(.invalidConfig, "tokenizer model type '\(type)' is not supported (WordPiece and byte-level BPE are); for a SentencePiece model load its tokenizer.model instead")
        }
    }

    private static func addedTokens(_ root: [String: Any]) -> [(content: String, id: Int, special: Bool)] {
        guard let list = root["added_tokens"] as? [[String: Any]] else { return [] }
        return list.compactMap { t in
            guard let content = t["content"] as? String, let id = (t["id"] as? NSNumber)?.intValue else { return nil }
            return (content, id, (t["special"] as? Bool) ?? false)
        }
    }

    private static func vocabulary(_ model: [String: Any]) throws -> [String: Int] {
        guard let vocab = model["vocab"] as? [String: Any] else {
            throw LMError(.corruptFile, "model.vocab is missing or not an object of piece -> id")
        }
        var out: [String: Int] = [:]
        out.reserveCapacity(vocab.count)
        for (k, v) in vocab {
            guard let id = (v as? NSNumber)?.intValue, id >= 0 else {
                throw LMError(.corruptFile, "model.vocab: the id of '\(k)' is not a non-negative number")
            }
            out[k] = id
        }
        return out
    }

    private static func wordPiece(root: [String: Any], model: [String: Any],
                                  added: [(content: String, id: Int, special: Bool)]) throws -> any Tokenizer {
        let vocab = try vocabulary(model)
        for t in added where vocab[t.content] == nil {
            throw LMError(.invalidConfig, "added token '\(t.content)' (id \(t.id)) is not in the WordPiece vocabulary; added tokens outside the vocabulary are not supported")
        }
        var list = [String](repeating: "", count: (vocab.values.max() ?? -1) + 1)
        var seen = [Bool](repeating: false, count: list.count)
        for (piece, id) in vocab {
            list[id] = piece
            seen[id] = true
        }
        if let hole = seen.firstIndex(of: false) {
            throw LMError(.corruptFile, "model.vocab has no piece for id \(hole); WordPiece ids must run from 0 without gaps")
        }
        var config = WordPieceTokenizer.Configuration()
        if let unk = model["unk_token"] as? String { config.unkToken = unk }
        if let prefix = model["continuing_subword_prefix"] as? String { config.continuingSubwordPrefix = prefix }
        if let maxChars = (model["max_input_chars_per_word"] as? NSNumber)?.intValue { config.maxInputCharsPerWord = maxChars }
        config.normalization = try bertNormalization(root["normalizer"])
        let post = try postProcessor(root["post_processor"], vocab: vocab)
        // Name BERT's roles after the tokens the post-processor uses, where it says.
        if let post, case let .special(cls, _)? = post.single.first, let name = list[safe: cls] { config.clsToken = name }
        if let post, case let .special(sep, _)? = post.single.last, let name = list[safe: sep] { config.sepToken = name }
        if let padding = root["padding"] as? [String: Any], let pad = padding["pad_token"] as? String { config.padToken = pad }
        return try WordPieceTokenizer(vocabulary: list, configuration: config,
                                      addedTokens: added.filter(\.special).map { ($0.content, $0.id) },
                                      postProcessor: post)
    }

    private static func bertNormalization(_ value: Any?) throws -> BertNormalization {
        guard let n = value as? [String: Any] else {
            return BertNormalization(cleanText: false, handleChineseChars: false, stripAccents: false, lowercase: false)
        }
        switch n["type"] as? String {
        case "BertNormalizer":
            return BertNormalization(
                cleanText: n["clean_text"] as? Bool ?? true,
                handleChineseChars: n["handle_chinese_chars"] as? Bool ?? true,
                stripAccents: n["strip_accents"] as? Bool,
                lowercase: n["lowercase"] as? Bool ?? true)
        case let other:
            throw LMError(.invalidConfig, "normalizer '\(other ?? "?")' is not supported for WordPiece (only BertNormalizer)")
        }
    }

    /// The post-processor: TemplateProcessing, BertProcessing, RobertaProcessing, ByteLevel or none.
    private static func postProcessor(_ value: Any?, vocab: [String: Int]) throws -> PostProcessor? {
        guard let p = value as? [String: Any], let type = p["type"] as? String else { return nil }
        func pair(_ key: String) -> Int? {
            guard let a = p[key] as? [Any], a.count == 2 else { return nil }
            return (a[1] as? NSNumber)?.intValue
        }
        switch type {
        case "TemplateProcessing":
            let specials = p["special_tokens"] as? [String: Any] ?? [:]
            func items(_ key: String) throws -> [PostProcessor.Item] {
                guard let list = p[key] as? [[String: Any]] else { return [] }
                var out: [PostProcessor.Item] = []
                for item in list {
                    if let s = item["SpecialToken"] as? [String: Any], let name = s["id"] as? String {
                        let typeId = (s["type_id"] as? NSNumber)?.intValue ?? 0
                        let ids = ((specials[name] as? [String: Any])?["ids"] as? [NSNumber])?.map(\.intValue)
                            ?? vocab[name].map { [$0] }
                        guard let ids else {
                            throw LMError(.corruptFile, "post_processor uses special token '\(name)', which has no id")
                        }
                        for id in ids { out.append(.special(id: id, typeId: typeId)) }
                    } else if let s = item["Sequence"] as? [String: Any] {
                        let typeId = (s["type_id"] as? NSNumber)?.intValue ?? 0
                        out.append(.sequence(index: (s["id"] as? String) == "B" ? 1 : 0, typeId: typeId))
                    }
                }
                return out
            }
            return PostProcessor(single: try items("single"), pair: try items("pair"))
        case "BertProcessing":
            guard let cls = pair("cls"), let sep = pair("sep") else { return nil }
            return .bert(cls: cls, sep: sep)
        case "RobertaProcessing":
            guard let cls = pair("cls"), let sep = pair("sep") else { return nil }
            return PostProcessor(
                single: [.special(id: cls, typeId: 0), .sequence(index: 0, typeId: 0), .special(id: sep, typeId: 0)],
                pair: [.special(id: cls, typeId: 0), .sequence(index: 0, typeId: 0), .special(id: sep, typeId: 0),
                       .special(id: sep, typeId: 0), .sequence(index: 1, typeId: 0), .special(id: sep, typeId: 0)])
        case "ByteLevel":
            return PostProcessor.none
        case "Sequence":
            let steps = p["processors"] as? [Any] ?? []
            for step in steps {
                if let found = try postProcessor(step, vocab: vocab), found != .none { return found }
            }
            return PostProcessor.none
        default:
            throw LMError(.invalidConfig, "post_processor '\(type)' is not supported")
        }
    }

    /// `add_prefix_space` of a byte-level pipeline; throws for any other pre-tokenizer.
    private static func byteLevelOptions(_ root: [String: Any]) throws -> Bool {
        func isByteLevel(_ v: Any?) -> [String: Any]? {
            guard let p = v as? [String: Any] else { return nil }
            if p["type"] as? String == "ByteLevel" { return p }
            if p["type"] as? String == "Sequence", let list = p["pretokenizers"] as? [Any], list.count == 1 {
                return isByteLevel(list[0])
            }
            return nil
        }
        guard let pre = isByteLevel(root["pre_tokenizer"]) else {
            let type = (root["pre_tokenizer"] as? [String: Any])?["type"] as? String ?? "none"
            throw LMError(.invalidConfig, "BPE with pre-tokenizer '\(type)' is not supported (only byte-level BPE, as GPT-2); for a SentencePiece-style model load its tokenizer.model")
        }
        if pre["use_regex"] as? Bool == false {
            throw LMError(.invalidConfig, "a ByteLevel pre-tokenizer with use_regex=false is not supported")
        }
        if let normalizer = root["normalizer"] as? [String: Any] {
            throw LMError(.invalidConfig, "byte-level BPE with a '\(normalizer["type"] as? String ?? "?")' normalizer is not supported")
        }
        return pre["add_prefix_space"] as? Bool ?? false
    }

    private static func bytePairs(root: [String: Any], model: [String: Any],
                                  added: [(content: String, id: Int, special: Bool)]) throws -> any Tokenizer {
        let prefixSpace = try byteLevelOptions(root)
        if model["ignore_merges"] as? Bool == true {
            throw LMError(.invalidConfig, "BPE with ignore_merges=true (Llama 3 style) is not supported")
        }
        var vocab = try vocabulary(model)
        var merges: [(String, String)] = []
        for m in model["merges"] as? [Any] ?? [] {
            if let s = m as? String {
                guard let pair = splitMerge(s) else {
                    throw LMError(.corruptFile, "merge '\(s)' is not two symbols separated by a space")
                }
                merges.append(pair)
            } else if let a = m as? [String], a.count == 2 {
                merges.append((a[0], a[1]))
            } else {
                throw LMError(.corruptFile, "model.merges holds an entry that is neither \"a b\" nor [a, b]")
            }
        }
        for t in added { vocab.removeValue(forKey: t.content) }
        let unk = model["unk_token"] as? String
        let post = try postProcessor(root["post_processor"], vocab: vocab) ?? .none
        var specials = SpecialTokens()
        let eot = added.first { $0.content == "<|endoftext|>" }?.id ?? vocab["<|endoftext|>"]
        specials.bos = added.first { $0.content == "<s>" }?.id ?? eot
        specials.eos = added.first { $0.content == "</s>" }?.id ?? eot
        specials.pad = added.first { $0.content == "<pad>" }?.id
        specials.unk = unk.flatMap { u in added.first { $0.content == u }?.id ?? vocab[u] }
        specials.mask = added.first { $0.content == "<mask>" }?.id
        return try ByteLevelBPETokenizer(vocabulary: vocab, merges: merges, addedTokens: added,
                                         specialTokens: specials, postProcessor: post,
                                         addPrefixSpace: prefixSpace, unknownToken: unk)
    }
}

extension Array {
    subscript(safe i: Int) -> Element? { i >= 0 && i < count ? self[i] : nil }
}
