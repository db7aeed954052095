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
