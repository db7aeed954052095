import Foundation
import LMCore

// Legend: S sequences in a batch, N packed rows (tokens of all sequences, no padding),
// C hidden size, F intermediate size, V vocabulary, NH heads, K labels.

/// BERT's `config.json` (Hugging Face `BertConfig`), with defaults for absent keys.
///
/// swift-lm adds one key of its own: `classifier_pooling` — `"cls"` (Hugging Face's
/// `BertForSequenceClassification`: `classifier(tanh(pooler(h[CLS])))`, the default) or
/// `"mean"` (`classifier(mean of h over the tokens)`, no pooler; what `lm finetune --task
/// classify` writes, as sentence-transformers models are trained with mean pooling).
public struct BertConfig: Codable, Sendable, Equatable {
    public var vocabSize = 30522
    public var hiddenSize = 768
    public var numHiddenLayers = 12
    public var numAttentionHeads = 12
    public var intermediateSize = 3072
    public var hiddenAct = "gelu"
    public var maxPositionEmbeddings = 512
    public var typeVocabSize = 2
    public var layerNormEps: Float = 1e-12
    public var padTokenID: Int? = 0
    public var positionEmbeddingType = "absolute"
    public var hiddenDropoutProb: Float = 0.1
    public var attentionProbsDropoutProb: Float = 0.1
    public var architectures: [String]? = nil
    /// Label names by class index ("0" → "negative"), as Hugging Face stores them.
    public var id2label: [String: String]? = nil
    public var classifierPooling: String? = nil
    public var modelType = "bert"

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size", hiddenSize = "hidden_size", numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads", intermediateSize = "intermediate_size"
        case hiddenAct = "hidden_act", maxPositionEmbeddings = "max_position_embeddings"
        case typeVocabSize = "type_vocab_size", layerNormEps = "layer_norm_eps", padTokenID = "pad_token_id"
        case positionEmbeddingType = "position_embedding_type", hiddenDropoutProb = "hidden_dropout_prob"
        case attentionProbsDropoutProb = "attention_probs_dropout_prob", architectures, id2label
        case classifierPooling = "classifier_pooling", modelType = "model_type"
    }

    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = BertConfig()
        vocabSize = try c.decodeIfPresent(Int.self, forKey: .vocabSize) ?? d.vocabSize
        hiddenSize = try c.decodeIfPresent(Int.self, forKey: .hiddenSize) ?? d.hiddenSize
        numHiddenLayers = try c.decodeIfPresent(Int.self, forKey: .numHiddenLayers) ?? d.numHiddenLayers
        numAttentionHeads = try c.decodeIfPresent(Int.self, forKey: .numAttentionHeads) ?? d.numAttentionHeads
        intermediateSize = try c.decodeIfPresent(Int.self, forKey: .intermediateSize) ?? d.intermediateSize
        hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? d.hiddenAct
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings) ?? d.maxPositionEmbeddings
        typeVocabSize = try c.decodeIfPresent(Int.self, forKey: .typeVocabSize) ?? d.typeVocabSize
        layerNormEps = try c.decodeIfPresent(Float.self, forKey: .layerNormEps) ?? d.layerNormEps
        padTokenID = try c.decodeIfPresent(Int.self, forKey: .padTokenID)
        positionEmbeddingType = try c.decodeIfPresent(String.self, forKey: .positionEmbeddingType) ?? d.positionEmbeddingType
        hiddenDropoutProb = try c.decodeIfPresent(Float.self, forKey: .hiddenDropoutProb) ?? d.hiddenDropoutProb
        attentionProbsDropoutProb = try c.decodeIfPresent(Float.self, forKey: .attentionProbsDropoutProb) ?? d.attentionProbsDropoutProb
        architectures = try c.decodeIfPresent([String].self, forKey: .architectures)
        id2label = try c.decodeIfPresent([String: String].self, forKey: .id2label)
        classifierPooling = try c.decodeIfPresent(String.self, forKey: .classifierPooling)
        modelType = try c.decodeIfPresent(String.self, forKey: .modelType) ?? d.modelType
    }

    public var headSize: Int { hiddenSize / numAttentionHeads }

    /// Class names in index order (`LABEL_i` where the config names none).
    public func labelNames(count: Int) -> [String] {
        (0..<count).map { id2label?[String($0)] ?? "LABEL_\($0)" }
    }

    /// Whether the classifier reads the mean of the hidden states (true) or the pooled [CLS] row.
    public var meanPooling: Bool { classifierPooling == "mean" }

    public var gelu: GELUKind {
        get throws {
            switch hiddenAct {
            case "gelu": return .erf
            case "gelu_new", "gelu_pytorch_tanh": return .tanh
            default:
                throw LMError(.invalidConfig, "hidden_act '\(hiddenAct)' is not supported (supported: gelu, gelu_new, gelu_pytorch_tanh)")
            }
        }
    }

    public func validate() throws {
        func check(_ ok: Bool, _ message: String) throws {
            if !ok { throw LMError(.invalidConfig, "BERT config: " + message) }
        }
        try check(vocabSize > 0 && hiddenSize > 0 && numHiddenLayers > 0 && numAttentionHeads > 0 && intermediateSize > 0,
                  "vocab_size, hidden_size, num_hidden_layers, num_attention_heads and intermediate_size must be positive")
        if let tooLarge = ConfigLimits.check([("num_hidden_layers", numHiddenLayers, ConfigLimits.layers), ("hidden_size", hiddenSize, ConfigLimits.width),
                                              ("num_attention_heads", numAttentionHeads, ConfigLimits.heads), ("max_position_embeddings", maxPositionEmbeddings, ConfigLimits.positions),
                                              ("vocab_size", vocabSize, ConfigLimits.vocabulary), ("intermediate_size", intermediateSize, ConfigLimits.width * 8)]) {
            try check(false, tooLarge)
        }
        try check(hiddenSize % numAttentionHeads == 0,
                  "hidden_size (\(hiddenSize)) must be divisible by num_attention_heads (\(numAttentionHeads))")
        try check(maxPositionEmbeddings > 0 && typeVocabSize > 0, "max_position_embeddings and type_vocab_size must be positive")
        try check(positionEmbeddingType == "absolute", "position_embedding_type '\(positionEmbeddingType)' is not supported (only absolute)")
        try check(layerNormEps > 0, "layer_norm_eps must be positive")
        try check(classifierPooling == nil || ["cls", "mean"].contains(classifierPooling!),
                  "classifier_pooling '\(classifierPooling ?? "")' must be cls or mean")
        _ = try gelu
    }

    /// The encoder's parameters with their Hugging Face names (prefix `bert.`) and shapes.
    /// Within a layer, the query, key and value weights come one after another, then their
    /// biases: in a parameter slab they form one (3C, C) matrix and one (3C) bias.
    public var encoderLayout: [(name: String, shape: [Int])] {
        let C = hiddenSize, F = intermediateSize
        var layout: [(name: String, shape: [Int])] = [
            ("bert.embeddings.word_embeddings.weight", [vocabSize, C]),
            ("bert.embeddings.position_embeddings.weight", [maxPositionEmbeddings, C]),
            ("bert.embeddings.token_type_embeddings.weight", [typeVocabSize, C]),
            ("bert.embeddings.LayerNorm.weight", [C]), ("bert.embeddings.LayerNorm.bias", [C]),
        ]
        for l in 0..<numHiddenLayers {
            let p = "bert.encoder.layer.\(l)."
            layout += [
                (p + "attention.self.query.weight", [C, C]), (p + "attention.self.key.weight", [C, C]),
                (p + "attention.self.value.weight", [C, C]),
                (p + "attention.self.query.bias", [C]), (p + "attention.self.key.bias", [C]),
                (p + "attention.self.value.bias", [C]),
                (p + "attention.output.dense.weight", [C, C]), (p + "attention.output.dense.bias", [C]),
                (p + "attention.output.LayerNorm.weight", [C]), (p + "attention.output.LayerNorm.bias", [C]),
                (p + "intermediate.dense.weight", [F, C]), (p + "intermediate.dense.bias", [F]),
                (p + "output.dense.weight", [C, F]), (p + "output.dense.bias", [C]),
                (p + "output.LayerNorm.weight", [C]), (p + "output.LayerNorm.bias", [C]),
            ]
        }
        return layout
    }

    /// The pooler (`tanh(dense(h[CLS]))`).
    public var poolerLayout: [(name: String, shape: [Int])] {
        [("bert.pooler.dense.weight", [hiddenSize, hiddenSize]), ("bert.pooler.dense.bias", [hiddenSize])]
    }

    /// `BertForSequenceClassification`'s head for `labels` classes (the pooler only with cls pooling).
    public func classifierLayout(labels: Int) -> [(name: String, shape: [Int])] {
        (meanPooling ? [] : poolerLayout) + [("classifier.weight", [labels, hiddenSize]), ("classifier.bias", [labels])]
    }

    /// `BertForMaskedLM`'s head; the decoder weight is tied to the word embeddings.
    public var maskedLMLayout: [(name: String, shape: [Int])] {
        [("cls.predictions.transform.dense.weight", [hiddenSize, hiddenSize]),
         ("cls.predictions.transform.dense.bias", [hiddenSize]),
         ("cls.predictions.transform.LayerNorm.weight", [hiddenSize]),
         ("cls.predictions.transform.LayerNorm.bias", [hiddenSize]),
         ("cls.predictions.bias", [vocabSize])]
    }

    /// The tiny shape used by tests and `lm train --arch bert` presets.
    public static func small(vocabularySize: Int, layers: Int, heads: Int, dim: Int, positions: Int) -> BertConfig {
        var c = BertConfig()
        c.vocabSize = vocabularySize
        c.numHiddenLayers = layers
        c.numAttentionHeads = heads
        c.hiddenSize = dim
        c.intermediateSize = 4 * dim
        c.maxPositionEmbeddings = positions
        return c
    }

    /// `config.json` as Hugging Face writes it, with `architectures` and, for a classifier,
    /// `id2label` / `label2id`.
    public func huggingFaceJSON(architecture: String, labels: [String]? = nil) throws -> Data {
        var c = self
        c.architectures = [architecture]
        if let labels { c.id2label = Dictionary(uniqueKeysWithValues: labels.enumerated().map { (String($0.offset), $0.element) }) }
        var object = try JSONSerialization.jsonObject(with: JSONEncoder().encode(c)) as? [String: Any] ?? [:]
        if let labels {
            object["label2id"] = Dictionary(uniqueKeysWithValues: labels.enumerated().map { ($0.element, $0.offset) })
            object["num_labels"] = labels.count
        }
        object["initializer_range"] = 0.02
        return try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
    }
}

/// A batch for a BERT model: sequences packed one after another (no padding).
///
/// ```swift
/// let batch = try BertBatch(sequences: [[101, 7592, 102], [101, 102]])
/// ```
public struct BertBatch: Sendable {
    /// Token ids, token type ids and positions of every row, sequence after sequence.
    public var ids: [Int32]
    public var typeIds: [Int32]
    public var positions: [Int32]
    /// Row ranges of the sequences.
    public var lengths: [Int]

    public init(sequences: [[Int]], typeIds: [[Int]]? = nil) {
        ids = []; self.typeIds = []; positions = []; lengths = []
        for (s, seq) in sequences.enumerated() {
            ids += seq.map { Int32(truncatingIfNeeded: $0) }
            self.typeIds += typeIds.map { $0[s].map { Int32(truncatingIfNeeded: $0) } } ?? Array(repeating: 0, count: seq.count)
            positions += (0..<seq.count).map { Int32($0) }
            lengths.append(seq.count)
        }
    }

    /// A padded batch (rows of `inputIDs` with `attentionMask` 1 on real tokens, 0 on padding)
    /// as the packed batch of its real tokens: the same result as masking the padding.
    public init(padded inputIDs: [[Int]], attentionMask: [[Int]], typeIds: [[Int]]? = nil) {
        let keep = attentionMask.map { m in m.indices.filter { m[$0] != 0 } }
        self.init(sequences: zip(inputIDs, keep).map { row, k in k.map { row[$0] } },
                  typeIds: typeIds.map { t in zip(t, keep).map { row, k in k.map { row[$0] } } })
    }

    public var rows: Int { ids.count }
    public var count: Int { lengths.count }
}

/// BERT inference (Hugging Face `BertModel`, `BertForMaskedLM`, `BertForSequenceClassification`)
/// on packed batches: every linear layer runs once over all the tokens of the batch, and
/// attention runs per sequence, so padding costs nothing.
///
/// ```swift
/// let model = try BertModel(folder: ModelFolder(path: "../shared/models/minilm-l6-v2"))
/// let batch = BertBatch(sequences: [[101, 7592, 2088, 102]])
/// let embeddings = try model.sentenceEmbeddings(batch)      // (S, C), L2-normalised
/// ```
public final class BertModel: @unchecked Sendable {
    /// BERT is an encoder: the registry knows it for its tensor table (quantizing), not as a causal LM.
    public static let architecture = Architecture(
        name: "bert", modelTypes: ["bert"],
        tensorTable: { folder in
            let config = try folder.decodeConfig(BertConfig.self)
            try config.validate()
            let file = try folder.openWeights()
            return file.names.compactMap { name -> TensorSpec? in
                guard let e = file.entries[name], e.dtype != .i64 else { return nil }  // position_ids
                return TensorSpec(name, e.shape, BertConfig.role(of: name, rank: e.shape.count), layer: BertConfig.layer(of: name))
            }
        })

    public let config: BertConfig
    public let pool: ThreadPool
    public let parameterCount: Int
    /// Class names when the folder has a classification head.
    public let labels: [String]?
    public var hasMaskedLMHead: Bool { mlm != nil }
    public var isQuantized: Bool { layers.first?.qkvW.isQuantized ?? false }
    public let weightBytes: Int
    let gelu: GELUKind

    struct Layer {
        let qkvW: LinearWeights            // (3C, C): query, key, value stacked
        let qkvB: Tensor                   // (3C)
        let outW: LinearWeights            // (C, C)
        let outB, ln1w, ln1b: Tensor       // (C)
        let interW: LinearWeights          // (F, C)
        let interB: Tensor                 // (F)
        let out2W: LinearWeights           // (C, F)
        let out2B, ln2w, ln2b: Tensor      // (C)
    }
    struct Classifier {
        let poolerW: LinearWeights?        // (C, C), nil with mean pooling
        let poolerB: Tensor?
        let weight: Tensor                 // (K, C)
        let bias: Tensor                   // (K)
    }
    struct MaskedLMHead {
        let dense: LinearWeights           // (C, C)
        let denseB, lnw, lnb: Tensor       // (C)
        let bias: Tensor                   // (V); the decoder is the word embedding matrix
    }

    let wordEmbeddings: LinearWeights      // (V, C)
    let positionEmbeddings: Tensor         // (P, C)
    let typeEmbeddings: Tensor             // (TV, C)
    let embLNw, embLNb: Tensor
    let layers: [Layer]
    let pooler: (weight: LinearWeights, bias: Tensor)?
    let classifier: Classifier?
    let mlm: MaskedLMHead?
    private let q8ws: Q8Workspace

    /// Builds the model from Hugging Face-named tensors (`bert.` prefix optional). Heads load
    /// when their tensors are present; `convertTo: .q8` makes the linear layers and the word
    /// embeddings Q8 as they load (Q8 tensors in the source load as Q8 in any case).
    public init(config: BertConfig, source: WeightSource, heads: Heads, pool: ThreadPool = Threads.shared,
                convertTo: WeightType? = nil) throws {
        try config.validate()
        self.config = config
        self.pool = pool
        gelu = try config.gelu
        let C = config.hiddenSize
        var shapes = Dictionary(uniqueKeysWithValues: (config.encoderLayout + config.poolerLayout + config.maskedLMLayout)
            .map { ($0.name, $0.shape) })
        func get(_ name: String) throws -> Tensor { try source.tensor(name, shape: shapes[name]!) }
        func linear(_ name: String) throws -> LinearWeights {
            let s = shapes[name]!
            if let q = try source.q8(name, rows: s[0], cols: s[1]) { return .q8(q) }
            let w = try get(name)
            let converted = try LinearWeights.converting(w, to: convertTo)
            if converted.isQuantized { source.done(with: name) }
            return converted
        }
        /// query, key and value stacked into one (3C, C) matrix (a copy).
        func stacked(_ p: String) throws -> LinearWeights {
            let names = ["query", "key", "value"].map { p + "attention.self.\($0).weight" }
            let parts = try names.map(linear)
            if case .q8 = parts[0] {
                let m = Q8Matrix(rows: 3 * C, logicalCols: C)
                for (i, part) in parts.enumerated() {
                    guard case .q8(let q) = part else { throw LMError(.corruptFile, "'\(names[i])' is float but '\(names[0])' is Q8 — re-run lm quantize") }
                    (m.q + i * C * m.cols).update(from: q.q, count: C * q.cols)
                    (m.scales + i * C * m.blocksPerRow).update(from: q.scales, count: C * q.blocksPerRow)
                }
                return .q8(m)
            }
            let w = Tensor(zeros: [3 * C, C])
            for (i, part) in parts.enumerated() {
                guard case .float(let t) = part else { throw LMError(.corruptFile, "'\(names[i])' is Q8 but '\(names[0])' is float") }
                (w.data + i * C * C).update(from: t.data, count: C * C)
                source.done(with: names[i])
            }
            return .float(w)
        }
        func stackedBias(_ p: String) throws -> Tensor {
            let b = Tensor(zeros: [3 * C])
            for (i, n) in ["query", "key", "value"].enumerated() {
                (b.data + i * C).update(from: try get(p + "attention.self.\(n).bias").data, count: C)
            }
            return b
        }
        wordEmbeddings = try linear("bert.embeddings.word_embeddings.weight")
        positionEmbeddings = try get("bert.embeddings.position_embeddings.weight")
        typeEmbeddings = try get("bert.embeddings.token_type_embeddings.weight")
        embLNw = try get("bert.embeddings.LayerNorm.weight")
        embLNb = try get("bert.embeddings.LayerNorm.bias")
        layers = try (0..<config.numHiddenLayers).map { l in
            let p = "bert.encoder.layer.\(l)."
            return Layer(qkvW: try stacked(p), qkvB: try stackedBias(p),
                         outW: try linear(p + "attention.output.dense.weight"), outB: try get(p + "attention.output.dense.bias"),
                         ln1w: try get(p + "attention.output.LayerNorm.weight"), ln1b: try get(p + "attention.output.LayerNorm.bias"),
                         interW: try linear(p + "intermediate.dense.weight"), interB: try get(p + "intermediate.dense.bias"),
                         out2W: try linear(p + "output.dense.weight"), out2B: try get(p + "output.dense.bias"),
                         ln2w: try get(p + "output.LayerNorm.weight"), ln2b: try get(p + "output.LayerNorm.bias"))
        }
        pooler = heads.pooler
            ? (try linear("bert.pooler.dense.weight"), try get("bert.pooler.dense.bias")) : nil
        if let K = heads.classifierLabels {
            shapes["classifier.weight"] = [K, C]
            shapes["classifier.bias"] = [K]
            if !config.meanPooling && pooler == nil {
                throw LMError(.missingTensor, "the classifier uses the [CLS] pooler but the checkpoint has no 'bert.pooler.dense.weight'")
            }
            classifier = Classifier(poolerW: config.meanPooling ? nil : pooler?.weight, poolerB: config.meanPooling ? nil : pooler?.bias,
                                    weight: try get("classifier.weight"), bias: try get("classifier.bias"))
            labels = config.labelNames(count: K)
        } else {
            classifier = nil
            labels = nil
        }
        mlm = heads.maskedLM
            ? MaskedLMHead(dense: try linear("cls.predictions.transform.dense.weight"),
                           denseB: try get("cls.predictions.transform.dense.bias"),
                           lnw: try get("cls.predictions.transform.LayerNorm.weight"),
                           lnb: try get("cls.predictions.transform.LayerNorm.bias"),
                           bias: try get("cls.predictions.bias"))
            : nil
        let all = config.encoderLayout + (pooler != nil ? config.poolerLayout : []) + (mlm != nil ? config.maskedLMLayout : [])
        parameterCount = all.reduce(0) { $0 + $1.shape.reduce(1, *) } + (classifier.map { $0.weight.count + $0.bias.count } ?? 0)
        var bytes = wordEmbeddings.bytes + (positionEmbeddings.count + typeEmbeddings.count) * 4
        for l in layers { bytes += l.qkvW.bytes + l.outW.bytes + l.interW.bytes + l.out2W.bytes }
        weightBytes = bytes
        q8ws = Q8Workspace(maxCols: max(C, config.intermediateSize))
    }

    /// Which heads a checkpoint holds.
    public struct Heads: Sendable {
        public var pooler = false
        /// Number of classes of `classifier.weight`, if present.
        public var classifierLabels: Int? = nil
        public var maskedLM = false
        public init(pooler: Bool = false, classifierLabels: Int? = nil, maskedLM: Bool = false) {
            self.pooler = pooler; self.classifierLabels = classifierLabels; self.maskedLM = maskedLM
        }
    }

    /// Loads a Hugging Face BERT folder (float or swift-lm Q8); names with or without `bert.`.
    public convenience init(folder: ModelFolder, pool: ThreadPool = Threads.shared, convertTo: WeightType? = nil) throws {
        guard folder.modelType == "bert" else {
            throw LMError(.invalidConfig, "'\(folder.path)' is a \(folder.modelType) model, not bert")
        }
        let config = try folder.decodeConfig(BertConfig.self)
        let file = try folder.openWeights()
        let source = SafeTensorsWeightSource(file: file, optionalPrefixes: ["bert."])
        func has(_ name: String) -> Bool {
            source.resolve(name) != nil || source.resolve(Q8Storage.quantizedName(name)) != nil
        }
        var heads = Heads(pooler: has("bert.pooler.dense.weight"), maskedLM: has("cls.predictions.transform.dense.weight"))
        if has("classifier.weight") {
            guard let name = source.resolve("classifier.bias"), let e = file.entries[name], e.shape.count == 1, e.shape[0] > 0 else {
                throw LMError(.corruptFile, "'\(file.path)' has 'classifier.weight' but no vector 'classifier.bias'")
            }
            heads.classifierLabels = e.shape[0]
            try Self.checkLabels(config, folder: folder, rows: e.shape[0])
        }
        try self.init(config: config, source: source, heads: heads, pool: pool, convertTo: convertTo)
    }

    /// Refuses a config.json whose labels (`id2label`, `num_labels`) are not the classification
    /// head's rows: extra labels would silently never be predicted, missing ones would show as
    /// LABEL_i — either way the config belongs to other weights.
    static func checkLabels(_ config: BertConfig, folder: ModelFolder, rows K: Int) throws {
        struct Count: Decodable {
            var numLabels: Int?
            enum CodingKeys: String, CodingKey { case numLabels = "num_labels" }
        }
        let configFile = "'\(folder.path)/config.json'"
        let head = "the classification head 'classifier.weight' in model.safetensors has \(K) row\(K == 1 ? "" : "s")"
        let fix = "make id2label and num_labels name \(K) label\(K == 1 ? "" : "s"), or use the weights this config was written for"
        if let id2label = config.id2label {
            let n = id2label.count
            guard n == K else {
                let names = id2label.sorted { (Int($0.key) ?? .max, $0.key) < (Int($1.key) ?? .max, $1.key) }.map(\.value)
                let shown = names.prefix(6).joined(separator: ", ") + (names.count > 6 ? ", …" : "")
                throw LMError(.invalidConfig, "\(configFile) names \(n) label\(n == 1 ? "" : "s") in id2label (\(shown)) but \(head) — \(fix)")
            }
            for key in id2label.keys where !(Int(key).map { (0..<K).contains($0) } ?? false) {
                throw LMError(.invalidConfig, "\(configFile) has id2label key '\(key)', not a class index 0...\(K - 1) of the \(K) rows of 'classifier.weight' — \(fix)")
            }
        }
        if let n = (try? folder.decodeConfig(Count.self))?.numLabels, n != K {
            throw LMError(.invalidConfig, "\(configFile) has num_labels \(n) but \(head) — \(fix)")
        }
    }

    /// Activations of one batch (grown as needed, reused across calls).
    private final class Workspace {
        var rows = 0
        var x = Tensor(zeros: [0]), h = Tensor(zeros: [0]), qkv = Tensor(zeros: [0]), ctx = Tensor(zeros: [0])
        var inter = Tensor(zeros: [0]), scratch = Tensor(zeros: [0])
    }
    private let ws = Workspace()
    private let lock = NSLock()

    private func checkBatch(_ b: BertBatch) throws {
        guard b.count > 0 else { throw LMError(.invalidInput, "empty batch — give at least one text") }
        for (s, n) in b.lengths.enumerated() {
            guard n > 0 else { throw LMError(.invalidInput, "sequence \(s) of the batch is empty — it needs at least one token") }
            guard n <= config.maxPositionEmbeddings else {
                throw LMError(.invalidInput, "sequence \(s) has \(n) tokens, more than the model's \(config.maxPositionEmbeddings) positions — truncate it")
            }
        }
        for i in 0..<b.rows {
            guard b.ids[i] >= 0, Int(b.ids[i]) < config.vocabSize else {
                throw LMError(.invalidInput, "token id \(b.ids[i]) is outside the vocabulary (0..<\(config.vocabSize))")
            }
            guard b.typeIds[i] >= 0, Int(b.typeIds[i]) < config.typeVocabSize else {
                throw LMError(.invalidInput, "token type id \(b.typeIds[i]) is outside 0..<\(config.typeVocabSize)")
            }
        }
    }

    /// Runs the encoder: the last hidden state (N, C) of every row, packed like the batch.
    /// `body` reads it while the model's buffers hold it.
    public func withHiddenStates<R>(_ batch: BertBatch, _ body: (UnsafeMutablePointer<Float>) throws -> R) throws -> R {
        try checkBatch(batch)
        lock.lock()
        defer { lock.unlock() }
        let N = batch.rows, C = config.hiddenSize, F = config.intermediateSize
        let seqs = PackedSequences(lengths: batch.lengths, heads: config.numAttentionHeads)
        if ws.rows < N || ws.scratch.count < seqs.scratchCount(threads: pool.threadCount) {
            let n = max(N, ws.rows)
            ws.x = Tensor(zeros: [n, C]); ws.h = Tensor(zeros: [n, C]); ws.qkv = Tensor(zeros: [n, 3 * C])
            ws.ctx = Tensor(zeros: [n, C]); ws.inter = Tensor(zeros: [n, F])
            ws.scratch = Tensor(zeros: [max(ws.scratch.count, seqs.scratchCount(threads: pool.threadCount))])
            ws.rows = n
        }
        let x = ws.x.data, h = ws.h.data, qkv = ws.qkv.data, ctx = ws.ctx.data, inter = ws.inter.data
        let eps = config.layerNormEps
        try batch.ids.withUnsafeBufferPointer { ids in
            try batch.positions.withUnsafeBufferPointer { pos in
                try batch.typeIds.withUnsafeBufferPointer { types in
                    try embed(out: h, ids: ids.baseAddress!, positions: pos.baseAddress!, types: types.baseAddress!, N: N)
                }
            }
        }
        layerNormForward(out: x, mean: nil, rstd: nil, inp: h, weight: embLNw.data, bias: embLNb.data, N: N, C: C, eps: eps, pool: pool)
        for w in layers {
            w.qkvW.forward(out: qkv, inp: x, bias: w.qkvB.data, N: N, workspace: q8ws, pool: pool)
            packedAttentionForward(out: ctx, probs: nil, scratch: ws.scratch.data, qkv: qkv, seqs: seqs, C: C, pool: pool)
            // h = ctx · Woᵀ + b + x, then x = LayerNorm(h) (post-LN)
            h.update(from: x, count: N * C)
            w.outW.forward(out: h, inp: ctx, bias: w.outB.data, N: N, accumulate: true, workspace: q8ws, pool: pool)
            layerNormForward(out: x, mean: nil, rstd: nil, inp: h, weight: w.ln1w.data, bias: w.ln1b.data, N: N, C: C, eps: eps, pool: pool)
            w.interW.forward(out: inter, inp: x, bias: w.interB.data, N: N, workspace: q8ws, pool: pool)
            geluForward(out: inter, inp: inter, n: N * F, kind: gelu, pool: pool)
            h.update(from: x, count: N * C)
            w.out2W.forward(out: h, inp: inter, bias: w.out2B.data, N: N, accumulate: true, workspace: q8ws, pool: pool)
            layerNormForward(out: x, mean: nil, rstd: nil, inp: h, weight: w.ln2w.data, bias: w.ln2b.data, N: N, C: C, eps: eps, pool: pool)
        }
        return try body(x)
    }

    /// Word + position + token-type embeddings (before the embedding LayerNorm).
    private func embed(out: UnsafeMutablePointer<Float>, ids: UnsafePointer<Int32>, positions: UnsafePointer<Int32>,
                       types: UnsafePointer<Int32>, N: Int) throws {
        let C = config.hiddenSize
        switch wordEmbeddings {
        case .float(let t):
            embeddingSumForward(out: out, lookups: [EmbeddingLookup(table: t.data, ids: ids),
                                                    EmbeddingLookup(table: positionEmbeddings.data, ids: positions),
                                                    EmbeddingLookup(table: typeEmbeddings.data, ids: types)], N: N, C: C, pool: pool)
        case .q8, .blocks:
            for n in 0..<N { wordEmbeddings.row(Int(ids[n]), into: out + n * C) }
            let p = positionEmbeddings.data, t = typeEmbeddings.data
            for n in 0..<N {
                let o = out + n * C, pr = p + Int(positions[n]) * C, tr = t + Int(types[n]) * C
                for c in 0..<C { o[c] += pr[c] + tr[c] }
            }
        }
    }

    /// The last hidden state (N, C), packed like the batch.
    public func hiddenStates(_ batch: BertBatch) throws -> [Float] {
        try withHiddenStates(batch) { Array(UnsafeBufferPointer(start: $0, count: batch.rows * config.hiddenSize)) }
    }

    /// Mean of the hidden states over each sequence's tokens (S, C) into `out`.
    func meanPool(_ hidden: UnsafePointer<Float>, _ batch: BertBatch, into out: UnsafeMutablePointer<Float>) {
        let C = config.hiddenSize
        var r0 = 0
        for (s, n) in batch.lengths.enumerated() {
            let o = out + s * C
            o.initialize(repeating: 0, count: C)
            for r in r0..<(r0 + n) { for c in 0..<C { o[c] += hidden[r * C + c] } }
            let inv = 1 / Float(n)
            for c in 0..<C { o[c] *= inv }
            r0 += n
        }
    }

    /// Sentence embeddings as sentence-transformers computes them: the mean of the hidden
    /// states over the tokens, divided by its L2 norm (at least 1e-12). (S, C), row-major.
    public func sentenceEmbeddings(_ batch: BertBatch) throws -> [Float] {
        let C = config.hiddenSize
        var out = [Float](repeating: 0, count: batch.count * C)
        try withHiddenStates(batch) { h in
            out.withUnsafeMutableBufferPointer { o in
                meanPool(h, batch, into: o.baseAddress!)
                for s in 0..<batch.count {
                    let row = o.baseAddress! + s * C
                    let norm = max(Float(VectorMath.dot(row, row, C)).squareRoot(), 1e-12)
                    for c in 0..<C { row[c] /= norm }
                }
            }
        }
        return out
    }

    /// The pooler output tanh(dense(h[CLS])) of every sequence (S, C).
    public func pooledOutput(_ batch: BertBatch) throws -> [Float] {
        guard let pooler else { throw LMError(.missingTensor, "this checkpoint has no pooler (bert.pooler.dense)") }
        var out = [Float](repeating: 0, count: batch.count * config.hiddenSize)
        try withHiddenStates(batch) { h in
            out.withUnsafeMutableBufferPointer { poolCLS(h, batch, weight: pooler.weight, bias: pooler.bias, into: $0.baseAddress!) }
        }
        return out
    }

    private func poolCLS(_ hidden: UnsafePointer<Float>, _ batch: BertBatch, weight: LinearWeights, bias: Tensor,
                         into out: UnsafeMutablePointer<Float>) {
        let C = config.hiddenSize
        let cls = Tensor(zeros: [batch.count, C])
        var r0 = 0
        for (s, n) in batch.lengths.enumerated() {
            (cls.data + s * C).update(from: hidden + r0 * C, count: C)
            r0 += n
        }
        weight.forward(out: out, inp: cls.data, bias: bias.data, N: batch.count, workspace: q8ws, pool: pool)
        for i in 0..<(batch.count * C) { out[i] = VectorMath.tanh(out[i]) }
    }

    /// Classification logits (S, K) of `BertForSequenceClassification` (or the mean-pooling head).
    public func classificationLogits(_ batch: BertBatch) throws -> [Float] {
        guard let classifier, let labels else {
            throw LMError(.missingTensor, "'this model has no classification head (classifier.weight) — fine-tune one with lm finetune --task classify")
        }
        let S = batch.count, C = config.hiddenSize, K = labels.count
        var logits = [Float](repeating: 0, count: S * K)
        try withHiddenStates(batch) { h in
            let pooled = Tensor(zeros: [S, C])
            if let w = classifier.poolerW, let b = classifier.poolerB {
                poolCLS(h, batch, weight: w, bias: b, into: pooled.data)
            } else {
                meanPool(h, batch, into: pooled.data)
            }
            logits.withUnsafeMutableBufferPointer {
                matmulForward(out: $0.baseAddress!, inp: pooled.data, weight: classifier.weight.data, bias: classifier.bias.data,
                              N: S, C: C, OC: K, layout: .outIn, pool: pool)
            }
        }
        return logits
    }

    /// Masked-LM logits (N, V) of every row: LayerNorm(gelu(h·Wᵀ + b))·Eᵀ + bias.
    public func maskedLMLogits(_ batch: BertBatch) throws -> [Float] {
        guard let mlm else { throw LMError(.missingTensor, "this checkpoint has no masked-LM head (cls.predictions)") }
        let N = batch.rows, C = config.hiddenSize, V = config.vocabSize
        var logits = [Float](repeating: 0, count: N * V)
        try withHiddenStates(batch) { h in
            let t = Tensor(zeros: [N, C])
            mlm.dense.forward(out: t.data, inp: h, bias: mlm.denseB.data, N: N, workspace: q8ws, pool: pool)
            geluForward(out: t.data, inp: t.data, n: N * C, kind: gelu, pool: pool)
            layerNormForward(out: t.data, mean: nil, rstd: nil, inp: t.data, weight: mlm.lnw.data, bias: mlm.lnb.data,
                             N: N, C: C, eps: config.layerNormEps, pool: pool)
            logits.withUnsafeMutableBufferPointer {
                wordEmbeddings.forward(out: $0.baseAddress!, inp: t.data, bias: mlm.bias.data, N: N, workspace: q8ws, pool: pool)
            }
        }
        return logits
    }
}

extension BertConfig {
    /// The role of a Hugging Face BERT tensor (names with or without `bert.`), for the tensor
    /// table: linear weights and the word embeddings are quantizable; position and token-type
    /// embeddings, LayerNorms, biases and the classifier are not.
    public static func role(of name: String, rank: Int) -> TensorRole {
        func has(_ s: String) -> Bool { name.contains(s) }
        if rank != 2 {
            if has("embeddings.LayerNorm") { return .embeddingNorm }
            if has("attention.output.LayerNorm") { return .postAttentionNorm }
            if has("predictions.transform.LayerNorm") { return .headNorm }
            if has("output.LayerNorm") { return .postFFNNorm }
            if name.hasPrefix("classifier.") { return .classifier }
            return .bias
        }
        if has("word_embeddings") { return .tokenEmbedding }
        if has("position_embeddings") { return .positionEmbedding }
        if has("token_type_embeddings") { return .tokenTypeEmbedding }
        if has("attention.self.query") { return .attentionQ }
        if has("attention.self.key") { return .attentionK }
        if has("attention.self.value") { return .attentionV }
        if has("attention.output.dense") { return .attentionOutput }
        if has("intermediate.dense") { return .ffnUp }
        if has("output.dense") { return .ffnDown }
        if has("pooler.dense") { return .pooler }
        if has("predictions.transform.dense") { return .headTransform }
        if name.hasPrefix("classifier.") { return .classifier }
        return .output
    }

    /// The encoder layer of a tensor (`encoder.layer.N.`), or nil.
    public static func layer(of name: String) -> Int? {
        guard let r = name.range(of: "encoder.layer.") else { return nil }
        return Int(name[r.upperBound...].prefix { $0.isNumber })
    }
}
