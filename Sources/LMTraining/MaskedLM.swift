import Foundation
import LMCore
import LMModels
import LMTokenizers

/// BERT's masking rule (Devlin et al. 2019; Hugging Face's `DataCollatorForLanguageModeling`):
/// each token is chosen with probability `maskProbability`; a chosen token becomes `[MASK]`
/// with probability `maskFraction`, a uniformly random vocabulary id with `randomFraction`, and
/// stays as it is otherwise; the loss is the cross-entropy at the chosen tokens.
public struct MaskedLMOptions: Codable, Sendable, Equatable {
    public var maskProbability: Float = 0.15
    public var maskFraction: Float = 0.8
    public var randomFraction: Float = 0.1

    public init() {}

    enum CodingKeys: String, CodingKey {
        case maskProbability = "mask_probability", maskFraction = "mask_fraction", randomFraction = "random_fraction"
    }

    public func validate() throws {
        guard maskProbability > 0 && maskProbability <= 1 else {
            throw LMError(.invalidArgument, "--mask-prob \(maskProbability) must be in (0, 1]")
        }
        guard maskFraction >= 0, randomFraction >= 0, maskFraction + randomFraction <= 1 else {
            throw LMError(.invalidArgument, "the [MASK] and random fractions (\(maskFraction), \(randomFraction)) must be ≥ 0 and add up to at most 1")
        }
    }
}

/// The special ids masked-LM batches need: `[CLS]` and `[SEP]` around each sequence, `[MASK]`.
public struct MaskedLMTokens: Sendable, Equatable {
    public var cls: Int, sep: Int, mask: Int

    public init(cls: Int, sep: Int, mask: Int) { self.cls = cls; self.sep = sep; self.mask = mask }

    /// The ids of a WordPiece (BERT) tokenizer; other tokenizers have no `[CLS]`/`[SEP]`/`[MASK]`.
    public init(tokenizer: any Tokenizer) throws {
        let s = tokenizer.specialTokens
        guard let cls = s.cls, let sep = s.sep, let mask = s.mask else {
            throw LMError(.invalidArgument, "masked-LM pretraining needs a WordPiece tokenizer with [CLS], [SEP] and [MASK] (\(tokenizer.summary) has none) — pass --tokenizer with a BERT folder or its vocab.txt / tokenizer.json, e.g. ../shared/models/minilm-l6-v2")
        }
        self.init(cls: cls, sep: sep, mask: mask)
    }
}

/// One masked-LM batch: the packed sequences as the model reads them, and per row the id to
/// predict (−1 where nothing is predicted).
public struct MaskedLMBatch: Sendable {
    public var batch: BertBatch
    public var targets: [Int32]
    /// The ids before masking (row by row, like `batch.ids`).
    public var original: [Int32]

    /// `B` random windows of `T − 2` tokens from `range` of `data`, each as `[CLS] window [SEP]`,
    /// masked by `options`; every draw comes from `rng`, so the batch is a function of its state.
    /// At least one token of the batch is chosen.
    public init(_ data: TokenDataset, _ range: Range<Int>, B: Int, T: Int, vocabularySize V: Int, tokens: MaskedLMTokens,
                options: MaskedLMOptions, rng: inout SeededRNG) {
        let n = T - 2
        var sequences: [[Int]] = [], targets: [Int32] = [], original: [Int32] = []
        sequences.reserveCapacity(B); targets.reserveCapacity(B * T); original.reserveCapacity(B * T)
        for _ in 0..<B {
            let start = range.lowerBound + rng.nextInt(below: range.count - n)
            var seq = [tokens.cls]
            targets.append(-1); original.append(Int32(tokens.cls))
            for i in 0..<n {
                let id = Int(data.tokens[start + i])
                original.append(Int32(id))
                guard rng.nextFloat() < options.maskProbability else { seq.append(id); targets.append(-1); continue }
                targets.append(Int32(id))
                let r = rng.nextFloat()
                seq.append(r < options.maskFraction ? tokens.mask
                           : r < options.maskFraction + options.randomFraction ? rng.nextInt(below: V) : id)
            }
            seq.append(tokens.sep)
            targets.append(-1); original.append(Int32(tokens.sep))
            sequences.append(seq)
        }
        if !targets.contains(where: { $0 >= 0 }) {
            // Nothing chosen (tiny batches): predict one token, masked.
            let s = rng.nextInt(below: B), i = 1 + rng.nextInt(below: n)
            targets[s * T + i] = original[s * T + i]
            sequences[s][i] = tokens.mask
        }
        batch = BertBatch(sequences: sequences)
        self.targets = targets
        self.original = original
    }
}

/// A BERT encoder with the masked-LM head (`BertForMaskedLM`), trained on random windows of
/// the corpus masked by BERT's rule.
public final class MaskedLMObjective: TrainingObjective {
    public let model: BertTrainingModel
    public let tokens: MaskedLMTokens
    public let options: MaskedLMOptions
    let B: Int, T: Int

    /// A model of `config` for batches of `batch` sequences of `context` tokens (`[CLS]` and
    /// `[SEP]` included).
    public init(config: BertConfig, batch: Int, context: Int, tokens: MaskedLMTokens, options: MaskedLMOptions,
                seed: UInt64, pool: ThreadPool) throws {
        try options.validate()
        guard context >= 3 else { throw LMError(.invalidArgument, "--context \(context) must be at least 3 ([CLS], a token, [SEP])") }
        for (name, id) in [("[CLS]", tokens.cls), ("[SEP]", tokens.sep), ("[MASK]", tokens.mask)] where id >= config.vocabSize {
            throw LMError(.invalidConfig, "the tokenizer's \(name) id \(id) is outside the model's vocabulary (\(config.vocabSize))")
        }
        model = try BertTrainingModel(config: config, head: .maskedLM, maxTokens: batch * context, maxLength: context,
                                      seed: seed, pool: pool)
        self.tokens = tokens
        self.options = options
        B = batch; T = context
    }

    /// Memory of activations for such a model, before it is built.
    public static func activationBytes(config: BertConfig, batch: Int, context: Int, threads: Int) -> Int {
        let a = BertTrainingModel.activationFloats(config: config, head: .maskedLM, maxTokens: batch * context,
                                                   maxLength: context, threads: threads)
        return a.floats * 4 + a.maskBytes
    }

    public var tokensPerBatch: Int { B * T }
    public var summary: String { "\(model.config.numHiddenLayers)-layer \(model.config.hiddenSize)-dim BERT (masked LM)" }

    public func loss(_ data: TokenDataset, _ range: Range<Int>, rng: inout SeededRNG) throws -> Float {
        let b = MaskedLMBatch(data, range, B: B, T: T, vocabularySize: model.config.vocabSize, tokens: tokens,
                              options: options, rng: &rng)
        return try model.forward(b.batch, maskedTargets: b.targets)
    }

    public func backward(lossScale: Float) throws { try model.backward(lossScale: lossScale) }

    public func configJSON() throws -> String { String(decoding: try JSONEncoder.sorted.encode(model.config), as: UTF8.self) }

    public func export(to dir: String) throws { try model.export(to: dir) }
}
