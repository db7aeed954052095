import Foundation
import LMCore
import LMModels

/// What a classifier fine-tuning checkpoint carries besides the tensors: everything the loop
/// needs to go on exactly as if it had never stopped.
public struct ClassifierTrainerState: Codable, Sendable, Equatable {
    /// Completed optimizer steps.
    public var step: Int
    public var optimizerStep: Int
    /// Dropout RNG state (the example order is a function of the seed and the epoch).
    public var rng: [UInt64]
    public var best: ClassificationMetrics?
    public var bestStep: Int
    /// Evaluations since the last improvement (early stopping).
    public var evaluationsWithoutImprovement: Int
    /// (step, dev accuracy) of every evaluation so far.
    public var curveSteps: [Int]
    public var curveAccuracies: [Double]
    /// The last `logInterval` training losses (the next log line averages them).
    public var recentLosses: [Float]
    /// Examples per second of every step so far (the summary's median).
    public var examplesPerSecond: [Double]
    /// Size of log.jsonl when this checkpoint was written (a resumed run truncates to it).
    public var logBytes: Int
    /// Seconds spent in training steps before this checkpoint.
    public var trainSeconds: Double
    /// Training examples of the run (a resume with another --train file is refused).
    public var trainExamples: Int
    /// The run ended (all steps, or stopped early): there is nothing left to resume.
    public var finished: Bool
    public var stoppedEarly: Bool
    /// The --train file (nil in checkpoints written before it was recorded).
    public var trainFile: CorpusIdentity? = nil

    enum CodingKeys: String, CodingKey {
        case trainFile = "train_file"
        case step, optimizerStep = "optimizer_step", rng, best, bestStep = "best_step"
        case evaluationsWithoutImprovement = "evals_without_improvement"
        case curveSteps = "curve_steps", curveAccuracies = "curve_accuracies", recentLosses = "recent_losses"
        case examplesPerSecond = "examples_per_s", logBytes = "log_bytes", trainSeconds = "train_s"
        case trainExamples = "train_examples", finished, stoppedEarly = "stopped_early"
    }
}

/// Writes and reads the `checkpoint.safetensors` of `lm finetune --task classify`: parameters,
/// AdamW moments, and in its metadata the options, labels and loop state. Written atomically
/// (temporary file, then rename), so a run killed at any moment keeps its previous checkpoint.
public enum ClassifierCheckpoint {
    static let formatKey = "swift_lm_classifier_checkpoint"

    public static func path(in directory: String) -> String { directory + "/checkpoint.safetensors" }

    public static func save(to path: String, model: BertTrainingModel, optimizer: Optimizer,
                            options: ClassifierTrainingOptions, labels: [String], state: ClassifierTrainerState) throws {
        var items: [(String, SafeTensorsWriter.Item)] = model.params.tensors.map { ($0.0, .float($0.1)) }
        for (name, t) in optimizer.stateTensors() { items.append(("optimizer." + name, .float(t))) }
        func json<T: Encodable>(_ v: T) throws -> String { String(decoding: try JSONEncoder.sorted.encode(v), as: UTF8.self) }
        let metadata: [String: String] = [
            "format": "pt",
            formatKey: "1",
            "classifier_options": try json(options),
            "labels": try json(labels),
            "trainer_state": try json(state),
        ]
        try SafeTensorsWriter.write(items: items, metadata: metadata, to: path)
    }

    /// A checkpoint read back.
    public struct Loaded {
        public let file: SafeTensorsFile
        public let options: ClassifierTrainingOptions
        public let labels: [String]
        public let state: ClassifierTrainerState

        /// Copies parameters, optimizer moments and the dropout RNG into a model and optimizer of the same shape.
        public func restore(into model: BertTrainingModel, optimizer: Optimizer) throws {
            try model.params.load(from: SafeTensorsWeightSource(file: file))
            try optimizer.loadState(fromCheckpoint: file, stepCount: state.optimizerStep)
            try Checkpoint.checkFinite(file.path, model.params.tensors + optimizer.stateTensors().map { ("optimizer." + $0.0, $0.1) })
            try model.restoreRNG(state.rng)
        }
    }

    public static func load(from path: String) throws -> Loaded {
        let file = try SafeTensorsFile(path: path)
        guard file.metadata[formatKey] == "1", let optionsJSON = file.metadata["classifier_options"],
              let labelsJSON = file.metadata["labels"], let stateJSON = file.metadata["trainer_state"] else {
            throw LMError(.corruptFile, "'\(path)' is not a checkpoint of lm finetune --task classify — start a new run without --resume")
        }
        return Loaded(file: file, options: try Checkpoint.decodeMetadata(ClassifierTrainingOptions.self, optionsJSON, path: path),
                      labels: try Checkpoint.decodeMetadata([String].self, labelsJSON, path: path),
                      state: try Checkpoint.decodeMetadata(ClassifierTrainerState.self, stateJSON, path: path))
    }
}
