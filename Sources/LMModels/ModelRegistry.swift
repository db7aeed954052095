import LMCore

/// Maps a `config.json` `model_type` to the architecture that loads it.
/// Adding an architecture: one file with its config and model, one line here.
public enum ModelRegistry {
    /// (folder, threads, quantize float weights to Q8 as they load)
    public typealias Loader = (ModelFolder, ThreadPool, Bool) throws -> any CausalLanguageModel

    public static let causalLMs: [String: Loader] = [
        "gpt2": { try GPT2Model(folder: $0, pool: $1, quantize: $2) },
    ]

    public static var supportedTypes: [String] { causalLMs.keys.sorted() }

    /// Opens `path` as a Hugging Face folder and loads the causal LM its config names.
    public static func loadCausalLM(folder path: String, pool: ThreadPool = Threads.shared,
                                    quantize: Bool = false) throws -> any CausalLanguageModel {
        let folder = try ModelFolder(path: path)
        guard let loader = causalLMs[folder.modelType] else {
            throw LMError(.invalidConfig, "'\(path)/config.json' has model_type '\(folder.modelType)', which swift-lm cannot run as a causal LM (supported: \(supportedTypes.joined(separator: ", ")))")
        }
        return try loader(folder, pool, quantize)
    }
}

extension ModelRegistry {
    /// Opens `path` as a BERT folder (`model_type: bert`), with a clear error for anything else.
    public static func loadBert(folder path: String, pool: ThreadPool = Threads.shared,
                                quantize: Bool = false) throws -> BertModel {
        let folder = try ModelFolder(path: path)
        guard folder.modelType == "bert" else {
            throw LMError(.invalidConfig, "'\(path)/config.json' has model_type '\(folder.modelType)'; this command needs a BERT encoder (model_type bert)")
        }
        return try BertModel(folder: folder, pool: pool, quantize: quantize)
    }
}
