import Foundation
import LMCore

// Legend: B rows in a chunk, T tokens, C channels (n_embd), V vocabulary, L layers,
// NH heads, HS head size (C / NH), P the first position of a chunk.

/// GPT-2's `config.json` (Hugging Face `GPT2Config`), with defaults for absent keys.
public struct GPT2Config: Codable, Sendable, Equatable {
    public var vocabSize: Int = 50257
    public var nPositions: Int = 1024
    public var nEmbd: Int = 768
    public var nLayer: Int = 12
    public var nHead: Int = 12
    /// MLP width; nil means 4 · nEmbd.
    public var nInner: Int? = nil
    public var activationFunction: String = "gelu_new"
    public var layerNormEpsilon: Float = 1e-5
    public var bosTokenID: Int? = 50256
    public var eosTokenID: Int? = 50256
    public var tieWordEmbeddings: Bool = true
    public var scaleAttnWeights: Bool = true
    public var scaleAttnByInverseLayerIdx: Bool = false
    public var reorderAndUpcastAttn: Bool = false
    public var modelType: String = "gpt2"

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size", nPositions = "n_positions", nEmbd = "n_embd", nLayer = "n_layer"
        case nHead = "n_head", nInner = "n_inner", activationFunction = "activation_function"
        case layerNormEpsilon = "layer_norm_epsilon", bosTokenID = "bos_token_id", eosTokenID = "eos_token_id"
        case tieWordEmbeddings = "tie_word_embeddings", scaleAttnWeights = "scale_attn_weights"
        case scaleAttnByInverseLayerIdx = "scale_attn_by_inverse_layer_idx"
        case reorderAndUpcastAttn = "reorder_and_upcast_attn", modelType = "model_type"
    }

    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = GPT2Config()
        vocabSize = try c.decodeIfPresent(Int.self, forKey: .vocabSize) ?? d.vocabSize
        nPositions = try c.decodeIfPresent(Int.self, forKey: .nPositions) ?? d.nPositions
        nEmbd = try c.decodeIfPresent(Int.self, forKey: .nEmbd) ?? d.nEmbd
        nLayer = try c.decodeIfPresent(Int.self, forKey: .nLayer) ?? d.nLayer
        nHead = try c.decodeIfPresent(Int.self, forKey: .nHead) ?? d.nHead
        nInner = try c.decodeIfPresent(Int.self, forKey: .nInner)
        activationFunction = try c.decodeIfPresent(String.self, forKey: .activationFunction) ?? d.activationFunction
        layerNormEpsilon = try c.decodeIfPresent(Float.self, forKey: .layerNormEpsilon) ?? d.layerNormEpsilon
        bosTokenID = try c.decodeIfPresent(Int.self, forKey: .bosTokenID)
        eosTokenID = try c.decodeIfPresent(Int.self, forKey: .eosTokenID)
        tieWordEmbeddings = try c.decodeIfPresent(Bool.self, forKey: .tieWordEmbeddings) ?? d.tieWordEmbeddings
        scaleAttnWeights = try c.decodeIfPresent(Bool.self, forKey: .scaleAttnWeights) ?? d.scaleAttnWeights
        scaleAttnByInverseLayerIdx = try c.decodeIfPresent(Bool.self, forKey: .scaleAttnByInverseLayerIdx) ?? false
        reorderAndUpcastAttn = try c.decodeIfPresent(Bool.self, forKey: .reorderAndUpcastAttn) ?? false
        modelType = try c.decodeIfPresent(String.self, forKey: .modelType) ?? d.modelType
    }

    /// The GPT-2 small shape (124 M parameters).
    public static let gpt2Small = GPT2Config()

    /// Presets by name, for `lm bench --random NAME`.
    public static let presets: [String: GPT2Config] = [
        "gpt2-124m": .gpt2Small,
        "gpt2-355m": { var c = GPT2Config(); c.nEmbd = 1024; c.nLayer = 24; c.nHead = 16; return c }(),
        // A tiny shape with GPT-2's context, for fast tests of the benchmark harness.
        "gpt2-nano": { var c = GPT2Config(); c.vocabSize = 1000; c.nEmbd = 64; c.nLayer = 2; c.nHead = 4
                       c.bosTokenID = 999; c.eosTokenID = 999; return c }(),
    ]

    public var innerSize: Int { nInner ?? 4 * nEmbd }
    public var headSize: Int { nEmbd / nHead }

    public var gelu: GELUKind {
        get throws {
            switch activationFunction {
            case "gelu_new", "gelu_pytorch_tanh", "gelu_fast": return .tanh
            case "gelu": return .erf
            default:
                throw LMError(.invalidConfig, "activation_function '\(activationFunction)' is not supported (supported: gelu_new, gelu_pytorch_tanh, gelu)")
            }
        }
    }

    /// Throws a one-line error for any value swift-lm cannot run.
    public func validate() throws {
        func check(_ ok: Bool, _ message: String) throws {
            if !ok { throw LMError(.invalidConfig, "GPT-2 config: " + message) }
        }
        try check(vocabSize > 0 && nPositions > 0 && nEmbd > 0 && nLayer > 0 && nHead > 0,
                  "vocab_size, n_positions, n_embd, n_layer and n_head must be positive")
        try check(nEmbd % nHead == 0, "n_embd (\(nEmbd)) must be divisible by n_head (\(nHead))")
        try check(innerSize > 0, "n_inner must be positive")
        try check(scaleAttnWeights, "scale_attn_weights = false is not supported")
        try check(!scaleAttnByInverseLayerIdx, "scale_attn_by_inverse_layer_idx = true is not supported")
        try check(layerNormEpsilon > 0, "layer_norm_epsilon must be positive")
        _ = try gelu
    }

    /// Every parameter with its Hugging Face name and shape, in `named_parameters()` order.
    /// Conv1D weights are (in, out).
    public var parameterLayout: [(name: String, shape: [Int])] {
        let C = nEmbd, F = innerSize
        var layout: [(name: String, shape: [Int])] = [
            ("transformer.wte.weight", [vocabSize, C]),
            ("transformer.wpe.weight", [nPositions, C]),
        ]
        for l in 0..<nLayer {
            let p = "transformer.h.\(l)."
            layout += [
                (p + "ln_1.weight", [C]), (p + "ln_1.bias", [C]),
                (p + "attn.c_attn.weight", [C, 3 * C]), (p + "attn.c_attn.bias", [3 * C]),
                (p + "attn.c_proj.weight", [C, C]), (p + "attn.c_proj.bias", [C]),
                (p + "ln_2.weight", [C]), (p + "ln_2.bias", [C]),
                (p + "mlp.c_fc.weight", [C, F]), (p + "mlp.c_fc.bias", [F]),
                (p + "mlp.c_proj.weight", [F, C]), (p + "mlp.c_proj.bias", [C]),
            ]
        }
        layout += [("transformer.ln_f.weight", [C]), ("transformer.ln_f.bias", [C])]
        if !tieWordEmbeddings { layout.append(("lm_head.weight", [vocabSize, C])) }
        return layout
    }
}

/// GPT-2 (Hugging Face `GPT2LMHeadModel`) inference with a KV cache.
///
/// The four projection matrices of each block are held transposed, as (out, in), in one
/// owned slab: decoding then streams each weight row contiguously (the Conv1D (in, out) layout
/// of the checkpoint is converted once at load). Embeddings, LayerNorms and biases stay
/// zero-copy views of the checkpoint.
public final class GPT2Model: CausalLanguageModel, @unchecked Sendable {
    public let config: GPT2Config
    public var modelType: String { "gpt2" }
    public var vocabularySize: Int { config.vocabSize }
    public var contextLength: Int { config.nPositions }
    public var bosTokenID: Int? { config.bosTokenID }
    public var eosTokenID: Int? { config.eosTokenID }
    public let parameterCount: Int

    struct Layer {
        let ln1w, ln1b: Tensor            // (C)
        let attnW, attnB: Tensor          // (3C, C), (3C)
        let projW, projB: Tensor          // (C, C), (C)
        let ln2w, ln2b: Tensor            // (C)
        let fcW, fcB: Tensor              // (F, C), (F)
        let fcProjW, fcProjB: Tensor      // (C, F), (C)
    }

    let wte: Tensor                       // (V, C)
    let wpe: Tensor                       // (maxT, C)
    let layers: [Layer]
    let lnfW, lnfB: Tensor                // (C)
    let lmHead: Tensor                    // (V, C): wte when tied
    let gelu: GELUKind
    let pool: ThreadPool
    /// The transposed projection matrices of every layer.
    private let linearSlab: ParameterSlab

    /// Rows processed per pass during prefill (like llama.cpp's n_batch).
    public let maxBatch: Int
    private let ws: Workspace

    /// Activation buffers reused by every forward call (no allocation while decoding).
    final class Workspace {
        let x, h, qkv, att, fc: Tensor    // (B, C), (B, C), (B, 3C), (B, C), (B, F)
        let scratch: Tensor               // attention scores (AttentionDims.scratchCount)
        var logits: Tensor                // (rows, V); grows for allLogits calls
        var ids: [Int32]                  // (B) chunk ids

        init(config c: GPT2Config, batch B: Int, threads: Int) {
            x = Tensor(zeros: [B, c.nEmbd]); h = Tensor(zeros: [B, c.nEmbd])
            qkv = Tensor(zeros: [B, 3 * c.nEmbd]); att = Tensor(zeros: [B, c.nEmbd])
            fc = Tensor(zeros: [B, c.innerSize])
            let dims = AttentionDims(T: B, L: c.nPositions, NH: c.nHead, KVH: c.nHead, HS: c.headSize,
                                     qStride: 3 * c.nEmbd, kvStride: c.nEmbd, outStride: c.nEmbd, causal: true)
            scratch = Tensor(zeros: [dims.scratchCount(threads: threads)])
            logits = Tensor(zeros: [1, c.vocabSize])
            ids = [Int32](repeating: 0, count: B)
        }
    }

    /// Names of the Conv1D weights of layer `l`, which the model keeps transposed.
    static func conv1DNames(_ l: Int) -> [String] {
        let p = "transformer.h.\(l)."
        return [p + "attn.c_attn.weight", p + "attn.c_proj.weight", p + "mlp.c_fc.weight", p + "mlp.c_proj.weight"]
    }

    /// Builds the model from Hugging Face-named tensors in the checkpoint layout.
    public init(config: GPT2Config, source: WeightSource, maxBatch: Int = 512,
                pool: ThreadPool = Threads.shared) throws {
        try config.validate()
        self.config = config
        self.pool = pool
        self.gelu = try config.gelu
        let shapes = Dictionary(uniqueKeysWithValues: config.parameterLayout.map { ($0.name, $0.shape) })
        func get(_ name: String) throws -> Tensor { try source.tensor(name, shape: shapes[name]!) }

        // One slab for the transposed matrices: (out, in) = the checkpoint's (in, out) swapped.
        var linearLayout: [(name: String, shape: [Int])] = []
        for l in 0..<config.nLayer {
            for name in GPT2Model.conv1DNames(l) {
                let s = shapes[name]!
                linearLayout.append((name, [s[1], s[0]]))
            }
        }
        let slab = ParameterSlab(layout: linearLayout)
        linearSlab = slab
        func getTransposed(_ name: String) throws -> Tensor {
            let src = try get(name)
            let dst = try slab.tensor(name)
            transpose(out: dst.data, inp: src.data, rows: src.shape[0], cols: src.shape[1])
            source.done(with: name)
            return dst
        }

        wte = try get("transformer.wte.weight")
        wpe = try get("transformer.wpe.weight")
        layers = try (0..<config.nLayer).map { l in
            let p = "transformer.h.\(l)."
            return Layer(ln1w: try get(p + "ln_1.weight"), ln1b: try get(p + "ln_1.bias"),
                         attnW: try getTransposed(p + "attn.c_attn.weight"), attnB: try get(p + "attn.c_attn.bias"),
                         projW: try getTransposed(p + "attn.c_proj.weight"), projB: try get(p + "attn.c_proj.bias"),
                         ln2w: try get(p + "ln_2.weight"), ln2b: try get(p + "ln_2.bias"),
                         fcW: try getTransposed(p + "mlp.c_fc.weight"), fcB: try get(p + "mlp.c_fc.bias"),
                         fcProjW: try getTransposed(p + "mlp.c_proj.weight"), fcProjB: try get(p + "mlp.c_proj.bias"))
        }
        lnfW = try get("transformer.ln_f.weight")
        lnfB = try get("transformer.ln_f.bias")
        lmHead = config.tieWordEmbeddings ? wte : try get("lm_head.weight")
        parameterCount = config.parameterLayout.reduce(0) { $0 + $1.shape.reduce(1, *) }
        self.maxBatch = max(1, min(maxBatch, config.nPositions))
        ws = Workspace(config: config, batch: self.maxBatch, threads: pool.threadCount)
    }

    /// Loads a Hugging Face GPT-2 folder; tensor names with or without the `transformer.` prefix.
    public convenience init(folder: ModelFolder, maxBatch: Int = 512, pool: ThreadPool = Threads.shared) throws {
        let config = try folder.decodeConfig(GPT2Config.self)
        try config.validate()
        let source = SafeTensorsWeightSource(file: try folder.openWeights(), optionalPrefixes: ["transformer."])
        try self.init(config: config, source: source, maxBatch: maxBatch, pool: pool)
    }

    /// A model with random weights (N(0, 0.02²) matrices, unit LayerNorm scales, zero biases),
    /// for benchmarks and tests.
    public convenience init(randomWith config: GPT2Config, seed: UInt64, pool: ThreadPool = Threads.shared) throws {
        try self.init(config: config, source: RandomWeightSource(seed: seed), pool: pool)
    }

    public func makeCache(capacity: Int?) -> KVCache {
        KVCache(layers: config.nLayer, capacity: min(capacity ?? config.nPositions, config.nPositions),
                width: config.nEmbd)
    }

    public func forward(tokens: UnsafeBufferPointer<Int32>, cache: KVCache, allLogits: Bool) throws
        -> UnsafeMutableBufferPointer<Float> {
        try validate(tokens: tokens, cache: cache)
        let T = tokens.count, V = config.vocabSize, C = config.nEmbd
        let rows = allLogits ? T : 1
        if ws.logits.shape[0] < rows { ws.logits = Tensor(zeros: [rows, V]) }
        var done = 0
        while done < T {
            let B = min(maxBatch, T - done)
            for i in 0..<B { ws.ids[i] = tokens[done + i] }
            forwardChunk(B: B, cache: cache)
            defer { done += B }
            // Final LayerNorm and LM head: every row when all logits are wanted, else only the last token.
            if !allLogits && done + B < T { continue }
            let first = allLogits ? 0 : B - 1
            let n = B - first
            layerNormForward(out: ws.h.data, mean: nil, rstd: nil, inp: ws.x.data + first * C,
                             weight: lnfW.data, bias: lnfB.data, N: n, C: C, eps: config.layerNormEpsilon, pool: pool)
            let dest = allLogits ? ws.logits.data + done * V : ws.logits.data
            matmulForward(out: dest, inp: ws.h.data, weight: lmHead.data, bias: nil,
                          N: n, C: C, OC: V, layout: .outIn, pool: pool)
        }
        return UnsafeMutableBufferPointer(start: ws.logits.data, count: rows * V)
    }

    /// One chunk of B tokens (ids in `ws.ids`) at positions cache.length ..< cache.length + B;
    /// leaves the final residual stream in `ws.x` and advances the cache.
    private func forwardChunk(B: Int, cache: KVCache) {
        let C = config.nEmbd, F = config.innerSize, NH = config.nHead, HS = config.headSize
        let P = cache.length
        let x = ws.x.data, h = ws.h.data, qkv = ws.qkv.data, att = ws.att.data, fc = ws.fc.data
        let eps = config.layerNormEpsilon
        ws.ids.withUnsafeBufferPointer { ids in
            embeddingForward(out: x, tokens: ids.baseAddress!, tokenTable: wte.data, positionTable: wpe.data,
                             startPosition: P, T: B, C: C)
        }
        let dims = AttentionDims(T: B, L: P + B, NH: NH, KVH: NH, HS: HS,
                                 qStride: 3 * C, kvStride: C, outStride: C, causal: true)
        for (l, w) in layers.enumerated() {
            layerNormForward(out: h, mean: nil, rstd: nil, inp: x, weight: w.ln1w.data, bias: w.ln1b.data,
                             N: B, C: C, eps: eps, pool: pool)
            matmulForward(out: qkv, inp: h, weight: w.attnW.data, bias: w.attnB.data,
                          N: B, C: C, OC: 3 * C, layout: .outIn, pool: pool)
            let kc = cache.keys(l), vc = cache.values(l)
            for t in 0..<B {
                (kc + (P + t) * C).update(from: qkv + t * 3 * C + C, count: C)
                (vc + (P + t) * C).update(from: qkv + t * 3 * C + 2 * C, count: C)
            }
            attentionForward(out: att, q: qkv, k: kc, v: vc, scratch: ws.scratch.data, dims: dims, pool: pool)
            matmulForward(out: x, inp: att, weight: w.projW.data, bias: w.projB.data,
                          N: B, C: C, OC: C, layout: .outIn, accumulate: true, pool: pool)
            layerNormForward(out: h, mean: nil, rstd: nil, inp: x, weight: w.ln2w.data, bias: w.ln2b.data,
                             N: B, C: C, eps: eps, pool: pool)
            matmulForward(out: fc, inp: h, weight: w.fcW.data, bias: w.fcB.data,
                          N: B, C: C, OC: F, layout: .outIn, pool: pool)
            geluForward(out: fc, inp: fc, n: B * F, kind: gelu, pool: pool)
            matmulForward(out: x, inp: fc, weight: w.fcProjW.data, bias: w.fcProjB.data,
                          N: B, C: F, OC: C, layout: .outIn, accumulate: true, pool: pool)
        }
        cache.advance(by: B)
    }

    /// Weight bytes (float32), tied tensors counted once.
    public var weightBytes: Int { parameterCount * 4 }
}

extension GPT2Config {
    /// `config.json` as Hugging Face writes it for `GPT2LMHeadModel` (loadable by transformers).
    public func huggingFaceJSON(dropout: Float = 0) throws -> Data {
        var object = try JSONSerialization.jsonObject(with: JSONEncoder().encode(self)) as? [String: Any] ?? [:]
        object["architectures"] = ["GPT2LMHeadModel"]
        object["n_inner"] = nInner.map { $0 as Any } ?? NSNull()
        object["n_ctx"] = nPositions
        for key in ["resid_pdrop", "embd_pdrop", "attn_pdrop"] { object[key] = Double(dropout) }
        object["initializer_range"] = 0.02
        object["use_cache"] = true
        return try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
    }
}
