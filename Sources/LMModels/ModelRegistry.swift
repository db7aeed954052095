import LMCore

/// How a model is loaded.
public struct ModelLoadOptions: @unchecked Sendable {
    public var pool: ThreadPool
    /// Converts float linear weights to this type as they load (`.q8`: int8); nil keeps the
    /// types the file holds. Quantized weights are never converted again.
    public var convertTo: WeightType?
    /// Rows processed per pass during prefill (llama.cpp's n_batch).
    public var maxBatch: Int

    public init(pool: ThreadPool = Threads.shared, convertTo: WeightType? = nil, maxBatch: Int = 512) {
        self.pool = pool
        self.convertTo = convertTo
        self.maxBatch = maxBatch
    }
}

/// A model on disk: a Hugging Face folder or a GGUF file, opened once.
public enum ModelFile: @unchecked Sendable {
    case folder(ModelFolder)
    case gguf(GGUFFile)

    /// Opens `path`: a folder (config.json + model.safetensors) or a `.gguf` file.
    public init(path: String) throws {
        guard FileIO.exists(path) else {
            throw LMError(.fileNotFound, "model '\(path)' does not exist — give a model folder (config.json + model.safetensors) or a .gguf file")
        }
        if FileIO.isDirectory(path) {
            self = .folder(try ModelFolder(path: path))
        } else if GGUFFile.isGGUF(path: path) {
            self = .gguf(try GGUFFile(path: path))
        } else {
            throw LMError(.invalidInput, "'\(path)' is neither a model folder nor a GGUF file — pass a folder with config.json and model.safetensors, or a .gguf file")
        }
    }

    public var path: String {
        switch self {
        case .folder(let f): return f.path
        case .gguf(let g): return g.path
        }
    }

    /// The architecture name the file gives (`model_type` or `general.architecture`).
    public var architectureName: String {
        switch self {
        case .folder(let f): return f.modelType
        case .gguf(let g): return g.architecture ?? "(none)"
        }
    }
}

/// One architecture: the names it goes by and how to load it. Adding an architecture: one file
/// with its config and model, and one line in `ModelRegistry.architectures`.
public struct Architecture: Sendable {
    public let name: String
    /// `config.json` `model_type` values it loads.
    public let modelTypes: [String]
    /// GGUF `general.architecture` values it loads.
    public let ggufNames: [String]
    public let loadFolder: (@Sendable (ModelFolder, ModelLoadOptions) throws -> any CausalLanguageModel)?
    public let loadGGUF: (@Sendable (GGUFFile, ModelLoadOptions) throws -> any CausalLanguageModel)?
    /// The tensors a folder of this architecture holds, with their roles.
    public let tensorTable: (@Sendable (ModelFolder) throws -> [TensorSpec])?

    public init(name: String, modelTypes: [String], ggufNames: [String] = [],
                loadFolder: (@Sendable (ModelFolder, ModelLoadOptions) throws -> any CausalLanguageModel)? = nil,
                loadGGUF: (@Sendable (GGUFFile, ModelLoadOptions) throws -> any CausalLanguageModel)? = nil,
                tensorTable: (@Sendable (ModelFolder) throws -> [TensorSpec])? = nil) {
        self.name = name
        self.modelTypes = modelTypes
        self.ggufNames = ggufNames
        self.loadFolder = loadFolder
        self.loadGGUF = loadGGUF
        self.tensorTable = tensorTable
    }
}

/// Maps a `config.json` `model_type` or a GGUF `general.architecture` to the architecture that
/// loads it.
public enum ModelRegistry {
    public static let architectures: [Architecture] = [
        GPT2Model.architecture,
        BertModel.architecture,
        Gemma3Model.architecture,
    ]

    public static func architecture(modelType: String) -> Architecture? {
        architectures.first { $0.modelTypes.contains(modelType) }
    }

    public static func architecture(gguf name: String) -> Architecture? {
        architectures.first { $0.ggufNames.contains(name) }
    }

    /// The `model_type` values swift-lm runs as causal LMs.
    public static var supportedTypes: [String] {
        architectures.filter { $0.loadFolder != nil }.flatMap(\.modelTypes).sorted()
    }

    /// The GGUF architectures swift-lm runs.
    public static var supportedGGUF: [String] {
        architectures.filter { $0.loadGGUF != nil }.flatMap(\.ggufNames).sorted()
    }

    /// Loads the causal LM at `path` (a folder or a GGUF file).
    public static func loadCausalLM(path: String, pool: ThreadPool = Threads.shared,
                                    convertTo: WeightType? = nil) throws -> any CausalLanguageModel {
        try loadCausalLM(try ModelFile(path: path), options: ModelLoadOptions(pool: pool, convertTo: convertTo))
    }

    /// Loads the causal LM of an opened model file.
    public static func loadCausalLM(_ file: ModelFile, options: ModelLoadOptions = ModelLoadOptions()) throws
        -> any CausalLanguageModel {
        switch file {
        case .folder(let folder):
            guard let load = architecture(modelType: folder.modelType)?.loadFolder else {
                throw LMError(.invalidConfig, "'\(folder.path)/config.json' has model_type '\(folder.modelType)', which swift-lm cannot run as a causal LM (supported: \(supportedTypes.joined(separator: ", ")))")
            }
            return try load(folder, options)
        case .gguf(let gguf):
            guard let name = gguf.architecture else {
                throw LMError(.invalidConfig, "'\(gguf.path)' has no general.architecture — it is not a model file (a vocabulary only?)")
            }
            guard let load = architecture(gguf: name)?.loadGGUF else {
                throw LMError(.invalidConfig, "'\(gguf.path)' is a '\(name)' model, an architecture swift-lm cannot run yet (supported GGUF architectures: \(supportedGGUF.joined(separator: ", ")))")
            }
            return try load(gguf, options)
        }
    }

    /// Opens `path` as a Hugging Face folder and loads the causal LM its config names.
    public static func loadCausalLM(folder path: String, pool: ThreadPool = Threads.shared,
                                    convertTo: WeightType? = nil) throws -> any CausalLanguageModel {
        try loadCausalLM(.folder(try ModelFolder(path: path)), options: ModelLoadOptions(pool: pool, convertTo: convertTo))
    }

    /// The tensor table of a folder, by its architecture.
    public static func tensorTable(_ folder: ModelFolder) throws -> [TensorSpec] {
        guard let table = architecture(modelType: folder.modelType)?.tensorTable else {
            throw LMError(.invalidConfig, "'\(folder.path)' is a \(folder.modelType) model; swift-lm has no tensor table for it (known: \(architectures.filter { $0.tensorTable != nil }.flatMap(\.modelTypes).joined(separator: ", ")))")
        }
        return try table(folder)
    }
}

extension ModelRegistry {
    /// Opens `path` as a BERT folder (`model_type: bert`), with a clear error for anything else.
    public static func loadBert(folder path: String, pool: ThreadPool = Threads.shared,
                                convertTo: WeightType? = nil) throws -> BertModel {
        let folder = try ModelFolder(path: path)
        guard folder.modelType == "bert" else {
            throw LMError(.invalidConfig, "'\(path)/config.json' has model_type '\(folder.modelType)'; this command needs a BERT encoder (model_type bert)")
        }
        return try BertModel(folder: folder, pool: pool, convertTo: convertTo)
    }
}
