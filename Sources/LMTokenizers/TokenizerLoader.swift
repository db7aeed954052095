import Foundation
import LMCore

/// Picks and loads the right tokenizer for a path.
///
/// | path | tokenizer |
/// | --- | --- |
/// | a folder with `tokenizer.json` (WordPiece or byte-level BPE) | `TokenizerJSON` |
/// | a folder with `tokenizer.model` | `SentencePieceTokenizer` (libsentencepiece) |
/// | a folder with `vocab.txt` (+ `tokenizer_config.json`) | `WordPieceTokenizer` |
/// | a folder with `vocab.json` + `merges.txt` | `ByteLevelBPETokenizer` |
/// | a `.model` file | `SentencePieceTokenizer` |
/// | a `.gguf` file | `GGUFVocabulary` (gpt2, bert or llama vocabularies) |
/// | a `.json` file | `TokenizerJSON` |
/// | a `vocab.txt` file | `WordPieceTokenizer` |
///
/// In a folder, `tokenizer.json` wins when we support its pipeline; otherwise `tokenizer.model`
/// (a Llama folder has both, and libsentencepiece reproduces the `.model` exactly).
///
/// ```swift
/// // lm generate: a model folder may come without a tokenizer (then it takes ids only).
/// if let tokenizer = try TokenizerLoader.find(inModelFolder: folder) { ... }
/// let sp = try TokenizerLoader.load(path: "llama-tiny/tokenizer.model")
/// ```
public enum TokenizerLoader {
    /// The files that make up a tokenizer in a model folder (any of them may be absent).
    public static let fileNames = ["tokenizer.json", "tokenizer.model", "vocab.json", "merges.txt", "vocab.txt",
                                   "tokenizer_config.json", "special_tokens_map.json"]

    /// Copies a model folder's tokenizer files into another folder (models that travel keep
    /// their tokenizer).
    public static func copyTokenizerFiles(from dir: String, to dest: String) throws {
        guard dir != dest else { return }
        for f in fileNames where FileIO.exists(dir + "/" + f) {
            try FileIO.copyAtomically(dir + "/" + f, dest + "/" + f)
        }
    }

    /// Loads the tokenizer at `path` (a folder or a file), or throws an error that says what
    /// was expected.
    public static func load(path: String) throws -> any Tokenizer {
        guard FileIO.exists(path) else {
            throw LMError(.fileNotFound, "tokenizer path '\(path)' does not exist; pass a model folder, a tokenizer.model, a tokenizer.json or a .gguf vocabulary")
        }
        if FileIO.isDirectory(path) {
            guard let tokenizer = try find(inModelFolder: path) else {
                throw LMError(.fileNotFound, "no tokenizer in folder '\(path)': expected tokenizer.json, tokenizer.model, vocab.txt, or vocab.json with merges.txt")
            }
            return tokenizer
        }
        return try loadFile(path)
    }

    /// The tokenizer of a model folder, or nil when the folder has none of the known files.
    /// Throws when a tokenizer file is there but cannot be read.
    public static func find(inModelFolder folder: String) throws -> (any Tokenizer)? {
        func file(_ name: String) -> String? {
            let p = (folder as NSString).appendingPathComponent(name)
            return FileIO.exists(p) && !FileIO.isDirectory(p) ? p : nil
        }
        let json = file("tokenizer.json")
        let model = file("tokenizer.model")
        if let json, model == nil || TokenizerJSON.isSupported(path: json) {
            return try TokenizerJSON.load(path: json)
        }
        if let model { return try SentencePieceTokenizer(modelFile: model) }
        if let vocab = file("vocab.txt") {
            return try WordPieceTokenizer(vocabularyFile: vocab,
                                          configuration: try wordPieceConfiguration(file("tokenizer_config.json")))
        }
        if let vocab = file("vocab.json") {
            guard let merges = file("merges.txt") else {
                throw LMError(.fileNotFound, "folder '\(folder)' has vocab.json but no merges.txt; byte-level BPE needs both")
            }
            return try ByteLevelBPETokenizer(vocabularyFile: vocab, mergesFile: merges)
        }
        return nil
    }

    /// The vocabulary a GGUF model file carries in its `tokenizer.ggml.*` metadata, or nil.
    public static func find(inGGUF file: GGUFFile) throws -> (any Tokenizer)? {
        guard file.metadata["tokenizer.ggml.model"] != nil else { return nil }
        return try GGUFVocabulary(metadata: file.metadata, path: file.path).makeTokenizer()
    }

    private static func loadFile(_ path: String) throws -> any Tokenizer {
        let name = (path as NSString).lastPathComponent
        let ext = (name as NSString).pathExtension.lowercased()
        switch ext {
        case "model":
            return try SentencePieceTokenizer(modelFile: path)
        case "gguf":
            return try GGUFVocabulary(path: path).makeTokenizer()
        case "json" where name != "vocab.json":
            return try TokenizerJSON.load(path: path)
        case "txt" where name.hasPrefix("vocab"):
            let folder = (path as NSString).deletingLastPathComponent
            let config = (folder as NSString).appendingPathComponent("tokenizer_config.json")
            return try WordPieceTokenizer(vocabularyFile: path,
                                          configuration: wordPieceConfiguration(FileIO.exists(config) ? config : nil))
        default:
            // Sniff the content: GGUF magic or a SentencePiece model.
            let file = try MappedFile(path: path)
            if file.size >= 4, file.bytes[0] == 0x47, file.bytes[1] == 0x47, file.bytes[2] == 0x55, file.bytes[3] == 0x46 {
                return try GGUFVocabulary(path: path).makeTokenizer()
            }
            throw LMError(.invalidInput, "unknown tokenizer file '\(path)': expected a .model (SentencePiece), .gguf, tokenizer.json or vocab.txt, or a model folder")
        }
    }

    /// WordPiece options from `tokenizer_config.json` (`do_lower_case`, `strip_accents`,
    /// `tokenize_chinese_chars`, special-token names); uncased defaults without it.
    static func wordPieceConfiguration(_ path: String?) throws -> WordPieceTokenizer.Configuration {
        var config = WordPieceTokenizer.Configuration()
        guard let path else { return config }
        let file = try MappedFile(path: path)
        guard let object = try? JSONSerialization.jsonObject(with: Data(file.bytes)),
              let c = object as? [String: Any] else {
            throw LMError(.corruptFile, "'\(path)' is not a JSON object; expected a tokenizer_config.json")
        }
        if let lower = c["do_lower_case"] as? Bool { config.normalization.lowercase = lower }
        if let strip = c["strip_accents"] as? Bool { config.normalization.stripAccents = strip }
        if let chinese = c["tokenize_chinese_chars"] as? Bool { config.normalization.handleChineseChars = chinese }
        func name(_ key: String) -> String? {
            if let s = c[key] as? String { return s }
            return (c[key] as? [String: Any])?["content"] as? String
        }
        if let s = name("unk_token") { config.unkToken = s }
        if let s = name("cls_token") { config.clsToken = s }
        if let s = name("sep_token") { config.sepToken = s }
        if let s = name("pad_token") { config.padToken = s }
        if let s = name("mask_token") { config.maskToken = s }
        return config
    }
}
