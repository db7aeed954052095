import LMCore
import LMModels

/// Everything that defines a training run (saved in its checkpoint; `--resume` checks it).
public struct TrainingOptions: Codable, Sendable, Equatable {
    // Model shape (GPT-2 architecture).
    public var layers = 4
    public var heads = 4
    public var dim = 128
    public var context = 64
    // Batches and length.
    public var batch = 12
    public var gradientAccumulation = 1
    public var steps = 2000
    // Optimisation.
    public var optimizer = OptimizerConfig.adamW(beta2: 0.999, weightDecay: 0.1)
    public var learningRate: Float = 1e-3
    public var minLearningRate: Float = 1e-4
    public var warmupSteps = 100
    public var schedule: LearningRateSchedule.Kind = .cosine
    public var gradientClip: Float = 1.0
    public var dropout: Float = 0
    // Evaluation, checkpoints, logging.
    public var evalInterval = 250
    public var evalBatches = 200
    /// Stop after this many evaluations without a new best validation loss (0 = never).
    public var patience = 0
    public var checkpointInterval = 250
    public var logInterval = 10
    public var seed: UInt64 = 1337
    /// Layers whose weights stay fixed (fine-tuning): the embeddings count as layer −1.
    public var frozenLayers: [Int] = []
    /// Set: the run pretrains a BERT encoder with the masked-LM objective (`--arch bert
    /// --objective mlm`) instead of a GPT; the context counts `[CLS]` and `[SEP]`.
    public var maskedLM: MaskedLMOptions? = nil

    public init() {}

    public static let presetNames = ["nano", "shakespeare-cpu", "baby"]

    /// Named presets: `nano` (seconds, for tests), `shakespeare-cpu` (nanoGPT's CPU run),
    /// `baby` (nanoGPT's "baby GPT" on Shakespeare characters).
    public static func preset(_ name: String) throws -> TrainingOptions {
        var o = TrainingOptions()
        switch name {
        case "nano":
            o.layers = 2; o.heads = 2; o.dim = 32; o.context = 32; o.batch = 4; o.steps = 200
            o.warmupSteps = 10; o.evalInterval = 50; o.evalBatches = 10; o.checkpointInterval = 50; o.logInterval = 10
        case "shakespeare-cpu":
            break  // the defaults above
        case "baby":
            o.layers = 6; o.heads = 6; o.dim = 384; o.context = 256; o.batch = 64; o.steps = 5000
            o.dropout = 0.2; o.evalInterval = 250; o.evalBatches = 200; o.checkpointInterval = 250
        default:
            throw LMError(.invalidArgument, "unknown preset '\(name)' (known: \(presetNames.joined(separator: ", ")))")
        }
        return o
    }

    public var learningRateSchedule: LearningRateSchedule {
        LearningRateSchedule(kind: schedule, maxLR: learningRate, minLR: minLearningRate,
                             warmupSteps: warmupSteps, decaySteps: max(steps, warmupSteps))
    }

    /// The GPT-2 config for a vocabulary of `vocabularySize`.
    public func modelConfig(vocabularySize: Int, bos: Int? = nil, eos: Int? = nil) -> GPT2Config {
        var c = GPT2Config()
        c.vocabSize = vocabularySize
        c.nPositions = context
        c.nEmbd = dim
        c.nLayer = layers
        c.nHead = heads
        c.activationFunction = "gelu"
        c.bosTokenID = bos
        c.eosTokenID = eos
        return c
    }

    /// The BERT config (`BertForMaskedLM`) of a masked-LM run: the shape flags, an
    /// intermediate size of 4 × dim, `context` positions, hidden dropout `dropout` (attention
    /// dropout is not implemented, so its probability is recorded as 0).
    public func bertConfig(vocabularySize: Int, pad: Int?) -> BertConfig {
        var c = BertConfig.small(vocabularySize: vocabularySize, layers: layers, heads: heads, dim: dim, positions: context)
        c.hiddenDropoutProb = dropout
        c.attentionProbsDropoutProb = 0
        c.padTokenID = pad
        return c
    }

    /// "GPT" or "BERT masked LM" with the shape (messages about a checkpoint's model).
    public var shapeDescription: String {
        "\(maskedLM == nil ? "GPT" : "BERT masked LM") with \(layers) layers, \(heads) heads, \(dim) dim, context \(context)"
    }

    /// One-line errors for impossible values.
    public func validate() throws {
        func check(_ ok: Bool, _ message: String) throws {
            if !ok { throw LMError(.invalidArgument, message) }
        }
        try check(layers >= 1 && layers <= 256, "--layers \(layers) must be in 1...256")
        try check(heads >= 1 && dim >= 1 && dim % heads == 0, "--dim \(dim) must be a positive multiple of --heads \(heads)")
        try check(dim <= 16384 && heads <= 1024, "--dim \(dim) / --heads \(heads) is beyond what a CPU trains (at most 16384 / 1024)")
        try check(context >= 2, "--context \(context) must be at least 2")
        try check(context <= 1 << 16, "--context \(context) is beyond what a CPU trains (at most 65536)")
        try check(batch >= 1, "--batch \(batch) must be at least 1")
        try check(batch <= 1 << 16 && batch * context <= 1 << 24, "--batch \(batch) × --context \(context) tokens per step is beyond what fits in memory (at most 16 M)")
        try check(gradientAccumulation >= 1, "--grad-accum \(gradientAccumulation) must be at least 1")
        try check(steps >= 1, "--steps \(steps) must be at least 1")
        try check(learningRate > 0 && learningRate.isFinite, "--lr \(learningRate) must be positive")
        try check(minLearningRate >= 0 && minLearningRate <= learningRate, "--min-lr \(minLearningRate) must be in 0...--lr")
        try check(warmupSteps >= 0, "--warmup \(warmupSteps) must be ≥ 0")
        try check(gradientClip >= 0, "--clip \(gradientClip) must be ≥ 0 (0 = off)")
        try check(dropout >= 0 && dropout < 1, "--dropout \(dropout) must be in [0, 1)")
        try check(evalInterval >= 1 && evalBatches >= 1, "--eval-interval and --eval-batches must be ≥ 1")
        try check(checkpointInterval >= 1, "--checkpoint-interval must be ≥ 1")
        try check(logInterval >= 1, "--log-interval must be ≥ 1")
        try check(patience >= 0, "--patience must be ≥ 0")
        if let maskedLM {
            try check(context >= 3, "--context \(context) must be at least 3 for a masked LM ([CLS], a token, [SEP])")
            try check(frozenLayers.isEmpty, "frozen layers apply to GPT fine-tuning, not to masked-LM pretraining")
            try maskedLM.validate()
        }
        try optimizer.validate()
        try learningRateSchedule.validate()
    }
}

extension OptimizerConfig {
    /// AdamW with the given second-moment decay and weight decay (PyTorch default β2 0.999; nanoGPT uses 0.99).
    public static func adamW(beta2: Float, weightDecay: Float) -> OptimizerConfig {
        var c = OptimizerConfig()
        c.kind = .adamw
        c.beta2 = beta2
        c.weightDecay = weightDecay
        return c
    }
}
