import Foundation
import LMCore
import LMModels

/// Where a training run keeps its files.
///
/// `RUN_DIR` is itself a Hugging Face model folder holding the best model so far
/// (`config.json`, `model.safetensors`, the tokenizer), so `lm generate --model RUN_DIR` works
/// during and after training. Beside it: `checkpoint.safetensors` (the latest resumable state:
/// parameters, optimizer moments and, in its metadata, the step, RNG state and options),
/// `log.jsonl` and `loss.svg`. Every file is written atomically (temporary file, then rename):
/// a run killed at any moment leaves the previous checkpoint intact.
public struct RunDirectory: Sendable {
    public let path: String
    public init(path: String) { self.path = path }

    public var checkpoint: String { path + "/checkpoint.safetensors" }
    public var log: String { path + "/log.jsonl" }
    public var plot: String { path + "/loss.svg" }
    public var tokens: String { path + "/tokens.bin" }
    public var modelWeights: String { path + "/model.safetensors" }
    public var config: String { path + "/config.json" }
}

/// What a checkpoint carries besides the tensors.
public struct TrainerState: Codable, Sendable, Equatable {
    /// Completed optimizer steps.
    public var step: Int
    public var optimizerStep: Int
    /// Dropout RNG state (the data order is a function of the seed and the step).
    public var rng: [UInt64]
    public var bestValidationLoss: Float?
    public var bestStep: Int?
    /// Evaluations since the last improvement (early stopping).
    public var evaluationsWithoutImprovement: Int
    /// Size of log.jsonl when this checkpoint was written (a resumed run truncates to it).
    public var logBytes: Int
    /// Wall-clock seconds spent training before this checkpoint.
    public var elapsedSeconds: Double
    /// The corpus the run trains on (nil in checkpoints written before it was recorded).
    public var corpus: CorpusIdentity? = nil

    enum CodingKeys: String, CodingKey {
        case step, optimizerStep = "optimizer_step", rng, bestValidationLoss = "best_val_loss", bestStep = "best_step"
        case evaluationsWithoutImprovement = "evals_without_improvement", logBytes = "log_bytes"
        case elapsedSeconds = "elapsed_s", corpus
    }
}

/// A corpus file as a run remembers it, so `--resume` with a different file is refused
/// instead of silently training on the old one's tokens: its path, size and a checksum.
public struct CorpusIdentity: Codable, Sendable, Equatable {
    public var path: String
    public var bytes: Int
    /// A 64-bit hash of the bytes (hex), 8 bytes at a time: cheap even for large corpora.
    public var checksum: String

    public init(path: String) throws {
        let file = try MappedFile(path: path)
        var h: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(file.size)
        let b = file.bytes
        var i = 0
        while i + 8 <= b.count {
            h = (h ^ b.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0x100_0000_01B3 &+ 0x9E37_79B9
            h ^= h >> 29
            i += 8
        }
        while i < b.count { h = (h ^ UInt64(b[i])) &* 0x100_0000_01B3; i += 1 }
        self.path = path
        bytes = file.size
        checksum = String(h, radix: 16)
    }

    /// The same identity under another path (a moved corpus is the same corpus).
    public func withPath(_ p: String) -> CorpusIdentity { var c = self; c.path = p; return c }
}

/// Writes and reads `checkpoint.safetensors`.
public enum Checkpoint {
    static let formatKey = "swift_lm_checkpoint"

    /// Saves parameters, optimizer moments, options, model config and trainer state atomically.
    public static func save(to path: String, objective: any TrainingObjective, optimizer: Optimizer,
                            options: TrainingOptions, tokenizer: String, state: TrainerState) throws {
        var items: [(String, SafeTensorsWriter.Item)] = objective.params.tensors.map { ($0.0, .float($0.1)) }
        for (name, t) in optimizer.stateTensors() { items.append(("optimizer." + name, .float(t))) }
        func json<T: Encodable>(_ v: T) throws -> String { String(decoding: try JSONEncoder.sorted.encode(v), as: UTF8.self) }
        let metadata: [String: String] = [
            "format": "pt",
            formatKey: "1",
            "model_config": try objective.configJSON(),
            "training_options": try json(options),
            "trainer_state": try json(state),
            "tokenizer": tokenizer,
        ]
        try SafeTensorsWriter.write(items: items, metadata: metadata, to: path)
    }

    /// A checkpoint read back: options, config, state, and the tensors to restore.
    public struct Loaded {
        public let file: SafeTensorsFile
        public let options: TrainingOptions
        /// The model config as JSON (`GPT2Config` or `BertConfig`, after `options.maskedLM`).
        public let configJSON: String
        public let state: TrainerState
        public let tokenizer: String

        /// The model config, decoded as `type`.
        public func config<C: Decodable>(_ type: C.Type) throws -> C {
            do { return try JSONDecoder().decode(C.self, from: Data(configJSON.utf8)) } catch {
                throw LMError(.corruptFile, "'\(file.path)' has an unreadable model config (\(error)) — start a new run without --resume")
            }
        }

        /// Copies parameters and optimizer moments into a model and optimizer of the same shape.
        public func restore(into model: any TrainingObjective, optimizer: Optimizer) throws {
            try model.params.load(from: SafeTensorsWeightSource(file: file))
            try optimizer.loadState(fromCheckpoint: file, stepCount: state.optimizerStep)
            try Checkpoint.checkFinite(file.path, model.params.tensors + optimizer.stateTensors().map { ("optimizer." + $0.0, $0.1) })
            try model.restoreRNG(state.rng)
        }
    }

    public static func load(from path: String) throws -> Loaded {
        let file = try SafeTensorsFile(path: path)
        guard file.metadata[formatKey] == "1",
              let configJSON = file.metadata["model_config"], let optionsJSON = file.metadata["training_options"],
              let stateJSON = file.metadata["trainer_state"] else {
            throw LMError(.corruptFile, "'\(path)' is not a swift-lm training checkpoint (missing metadata) — start a new run without --resume")
        }
        return Loaded(file: file, options: try decodeMetadata(TrainingOptions.self, optionsJSON, path: path),
                      configJSON: configJSON, state: try decodeMetadata(TrainerState.self, stateJSON, path: path),
                      tokenizer: file.metadata["tokenizer"] ?? "")
    }

    /// A checkpoint only ever holds finite numbers (a run stops before a step that is not):
    /// NaN or infinity read back means the file was damaged, not that the run diverged.
    static func checkFinite(_ path: String, _ tensors: [(String, Tensor)]) throws {
        for (name, t) in tensors {
            let p = UnsafeBufferPointer(start: t.data, count: t.count)
            if let k = p.firstIndex(where: { !$0.isFinite }) {
                throw LMError(.corruptFile, "'\(path)' is damaged: \(name) holds \(p[k]) at element \(k) (a checkpoint only holds finite numbers) — restore a copy of the run folder, or start a new run without --resume")
            }
        }
    }

    /// A JSON value from a checkpoint's metadata, or a one-line error naming the file.
    static func decodeMetadata<T: Decodable>(_ type: T.Type, _ json: String, path: String) throws -> T {
        do { return try JSONDecoder().decode(T.self, from: Data(json.utf8)) } catch {
            throw LMError(.corruptFile, "'\(path)' has unreadable training metadata (\(error)) — start a new run without --resume")
        }
    }
}

extension Optimizer {
    /// Restores the moments a checkpoint file stores as `optimizer.NAME` tensors.
    func loadState(fromCheckpoint file: SafeTensorsFile, stepCount: Int) throws {
        var moments: [String: Tensor] = [:]
        for name in file.names where name.hasPrefix("optimizer.") {
            moments[String(name.dropFirst("optimizer.".count))] = try file.tensor(name)
        }
        try loadState(moments, stepCount: stepCount)
    }
}
