import Foundation
import LMCore
import LMModels
import LMTokenizers

/// A causal LM and its tokenizer, from a model folder or a GGUF file (opened once; a GGUF's
/// tokenizer is the vocabulary in its metadata).
struct LoadedModel {
    let path: String
    let file: ModelFile
    let model: any CausalLanguageModel
    let tokenizer: (any Tokenizer)?

    static func load(_ path: String, pool: ThreadPool, convertTo: WeightType? = nil) throws -> LoadedModel {
        let file = try ModelFile(path: path)
        let model = try ModelRegistry.loadCausalLM(file, options: ModelLoadOptions(pool: pool, convertTo: convertTo))
        return LoadedModel(path: path, file: file, model: model, tokenizer: try tokenizer(of: file))
    }

    /// The tokenizer a model file carries, or nil when it has none.
    static func tokenizer(of file: ModelFile) throws -> (any Tokenizer)? {
        switch file {
        case .folder(let f): return try TokenizerLoader.find(inModelFolder: f.path)
        case .gguf(let g): return try TokenizerLoader.find(inGGUF: g)
        }
    }

    /// The tokenizer, or an error saying the model has none.
    func requireTokenizer(_ what: String) throws -> any Tokenizer {
        guard let tokenizer else {
            throw LMError(.invalidInput, "'\(path)' has no tokenizer, so it cannot read \(what) — give a model folder with tokenizer.json, tokenizer.model, vocab.txt or vocab.json + merges.txt, or a .gguf file with its vocabulary")
        }
        return tokenizer
    }
}

/// `--ctx-size`: the context of a session (llama.cpp's `-c`).
func contextSize(_ requested: Int?, model: any CausalLanguageModel) throws -> Int {
    if let requested {
        guard requested >= 2 else { throw LMError(.invalidArgument, "--ctx-size \(requested) is too small (at least 2)") }
        guard requested <= model.contextLength else {
            throw LMError(.invalidArgument, "--ctx-size \(requested) exceeds the model's context of \(model.contextLength)")
        }
        return requested
    }
    return min(model.contextLength, defaultContextSize)
}

/// The context used when `--ctx-size` is not given, for models trained on longer ones (llama.cpp's default).
let defaultContextSize = 4096
