import Foundation
import LMCore
import LMModels

/// A model the trainer updates: its parameter and gradient slabs, the dropout switch and RNG,
/// and its initialisation. `GPTTrainingModel` and `BertTrainingModel` are such models.
public protocol TrainableModel: AnyObject {
    var params: ParameterSlab { get }
    var grads: ParameterSlab { get }
    /// false during evaluation (no dropout).
    var training: Bool { get set }
    /// The dropout RNG state (saved in checkpoints so a resumed run draws the same masks).
    var rngState: [UInt64] { get }
    func restoreRNG(_ words: [UInt64]) throws
    func initializeWeights(seed: UInt64)
}

extension GPTTrainingModel: TrainableModel {}
extension BertTrainingModel: TrainableModel {}

/// What `Trainer` trains: a model, the loss of a batch drawn from the token stream, and its
/// backward pass. The loop (schedule, evaluation, best model, checkpoints, resume, log, plot)
/// is the same for every objective.
///
/// - `CausalLMObjective`: a GPT predicting every next token (`lm train`, `lm finetune`).
/// - `MaskedLMObjective`: a BERT encoder predicting masked tokens (`lm train --arch bert --objective mlm`).
public protocol TrainingObjective: AnyObject {
    associatedtype Model: TrainableModel
    var model: Model { get }
    /// Tokens one batch runs through the model (for tokens/s).
    var tokensPerBatch: Int { get }
    /// "2-layer 32-dim GPT" (titles and logs).
    var summary: String { get }
    /// Draws a batch from `range` of `data` with `rng` and returns its mean loss (forward pass;
    /// the batch is a function of the RNG state only).
    func loss(_ data: TokenDataset, _ range: Range<Int>, rng: inout SeededRNG) throws -> Float
    /// Accumulates the gradient of the last loss, times `lossScale`, into `grads`.
    func backward(lossScale: Float) throws
    /// The model config as JSON (checkpoint metadata).
    func configJSON() throws -> String
    /// Writes the model as a Hugging Face folder: config.json and model.safetensors (atomically).
    func export(to dir: String) throws
}

extension TrainingObjective {
    public var params: ParameterSlab { model.params }
    public var grads: ParameterSlab { model.grads }
    public var training: Bool {
        get { model.training }
        set { model.training = newValue }
    }
    public var rngState: [UInt64] { model.rngState }
    public func restoreRNG(_ words: [UInt64]) throws { try model.restoreRNG(words) }
    public func initializeWeights(seed: UInt64) { model.initializeWeights(seed: seed) }
    public func zeroGradients() { grads.zero() }
}

extension ParameterSlab {
    /// Copies every tensor from `source` (a checkpoint or a pretrained model of the same shape).
    public func load(from source: WeightSource) throws {
        for (name, t) in tensors {
            let src = try source.tensor(name, shape: t.shape)
            t.data.update(from: src.data, count: t.count)
        }
    }

    /// Optimizer groups: one per tensor, weight decay on 2-D tensors (not biases or
    /// LayerNorms), the tensors `frozen` names never updated.
    public func optimizerGroups(frozen: (String) -> Bool = { _ in false }) -> [ParameterGroup] {
        var offset = 0
        return layout.map { entry in
            let n = entry.shape.reduce(1, *)
            defer { offset += n }
            return ParameterGroup(range: offset..<offset + n, decay: entry.shape.count >= 2, trainable: !frozen(entry.name))
        }
    }
}

/// A GPT predicting the next token of random windows of the corpus (nanoGPT's batches).
public final class CausalLMObjective: TrainingObjective {
    public let model: GPTTrainingModel
    let B: Int, T: Int
    private var inputs: [Int32], targets: [Int32]

    public init(model: GPTTrainingModel, batch: Int, context: Int) {
        self.model = model
        B = batch; T = context
        inputs = [Int32](repeating: 0, count: batch * context)
        targets = inputs
    }

    public var tokensPerBatch: Int { B * T }
    public var summary: String { "\(model.config.nLayer)-layer \(model.config.nEmbd)-dim GPT" }

    public func loss(_ data: TokenDataset, _ range: Range<Int>, rng: inout SeededRNG) throws -> Float {
        let (B, T, model) = (self.B, self.T, self.model)
        return try inputs.withUnsafeMutableBufferPointer { i in
            try targets.withUnsafeMutableBufferPointer { t in
                data.batch(from: range, B: B, T: T, rng: &rng, inputs: i.baseAddress!, targets: t.baseAddress!)
                return try model.forward(inputs: i.baseAddress!, targets: t.baseAddress!, B: B, T: T)
            }
        }
    }

    public func backward(lossScale: Float) throws { try model.backward(lossScale: lossScale) }

    public func configJSON() throws -> String { String(decoding: try JSONEncoder.sorted.encode(model.config), as: UTF8.self) }

    public func export(to dir: String) throws {
        try FileIO.makeDirectory(dir)
        try SafeTensorsWriter.write(model.params.tensors, to: dir + "/model.safetensors")
        let config = try model.config.huggingFaceJSON(dropout: model.dropout)
        try FileIO.writeString(String(decoding: config, as: UTF8.self) + "\n", to: dir + "/config.json")
    }
}

extension JSONEncoder {
    /// An encoder with sorted keys (stable checkpoint metadata).
    static var sorted: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return e
    }
}
