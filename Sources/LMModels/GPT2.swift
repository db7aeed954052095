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
        if let tooLarge = ConfigLimits.check([("n_layer", nLayer, ConfigLimits.layers), ("n_embd", nEmbd, ConfigLimits.width),
                                              ("n_head", nHead, ConfigLimits.heads), ("n_positions", nPositions, ConfigLimits.positions),
                                              ("vocab_size", vocabSize, ConfigLimits.vocabulary), ("n_inner", innerSize, ConfigLimits.width * 8)]) {
            try check(false, tooLarge)
        }
        try check(nEmbd % nHead == 0, "n_embd (\(nEmbd)) must be divisible by n_head (\(nHead))")
        try check(innerSize > 0, "n_inner must be positive")
        try check(scaleAttnWeights, "scale_attn_weights = false is not supported")
        try check(!scaleAttnByInverseLayerIdx, "scale_attn_by_inverse_layer_idx = true is not supported")
        try check(layerNormEpsilon > 0, "layer_norm_epsilon must be positive")
        _ = try gelu
    }

    /// Every parameter with its Hugging Face name, shape, role and layer, in `named_parameters()`
    /// order. Conv1D weights are (in, out).
    public var tensorTable: [TensorSpec] {
        let C = nEmbd, F = innerSize
        var t = [TensorSpec("transformer.wte.weight", [vocabSize, C], .tokenEmbedding),
                 TensorSpec("transformer.wpe.weight", [nPositions, C], .positionEmbedding)]
        for l in 0..<nLayer {
            let p = "transformer.h.\(l)."
            t += [
                TensorSpec(p + "ln_1.weight", [C], .attentionNorm, layer: l), TensorSpec(p + "ln_1.bias", [C], .bias, layer: l),
                TensorSpec(p + "attn.c_attn.weight", [C, 3 * C], .attentionQKV, layer: l, layout: .inOut),
                TensorSpec(p + "attn.c_attn.bias", [3 * C], .bias, layer: l),
                TensorSpec(p + "attn.c_proj.weight", [C, C], .attentionOutput, layer: l, layout: .inOut),
                TensorSpec(p + "attn.c_proj.bias", [C], .bias, layer: l),
                TensorSpec(p + "ln_2.weight", [C], .ffnNorm, layer: l), TensorSpec(p + "ln_2.bias", [C], .bias, layer: l),
                TensorSpec(p + "mlp.c_fc.weight", [C, F], .ffnUp, layer: l, layout: .inOut),
                TensorSpec(p + "mlp.c_fc.bias", [F], .bias, layer: l),
                TensorSpec(p + "mlp.c_proj.weight", [F, C], .ffnDown, layer: l, layout: .inOut),
                TensorSpec(p + "mlp.c_proj.bias", [C], .bias, layer: l),
            ]
        }
        t += [TensorSpec("transformer.ln_f.weight", [C], .outputNorm), TensorSpec("transformer.ln_f.bias", [C], .bias)]
        if !tieWordEmbeddings { t.append(TensorSpec("lm_head.weight", [vocabSize, C], .output)) }
        return t
    }

    /// Every parameter with its Hugging Face name and shape, in `named_parameters()` order.
    /// Conv1D weights are (in, out).
    public var parameterLayout: [(name: String, shape: [Int])] {
        tensorTable.map { ($0.name, $0.shape) }
    }
}

/// GPT-2 (Hugging Face `GPT2LMHeadModel`) inference with a KV cache.
///
/// The four projection matrices of each block are held transposed, as (out, in), in one
/// owned slab: decoding then streams each weight row contiguously (the Conv1D (in, out) layout
/// of the checkpoint is converted once at load). Embeddings, LayerNorms and biases stay
/// zero-copy views of the checkpoint.
///
/// Thread safety: `forward` may be called from several threads or tasks at once, each with its
/// own cache; the calls take turns (a lock around the activation buffers and the thread pool)
/// and give exactly the logits of serial calls. The logits buffer `forward` returns belongs to
/// the calling thread: only that thread's next call overwrites it.
public final class GPT2Model: CausalLanguageModel, @unchecked Sendable {
    public static let architecture = Architecture(
        name: "gpt2", modelTypes: ["gpt2"],
        loadFolder: { try GPT2Model(folder: $0, maxBatch: $1.maxBatch, pool: $1.pool, convertTo: $1.convertTo) },
        tensorTable: { try $0.decodeConfig(GPT2Config.self).tensorTable })

    public let config: GPT2Config
    public var modelType: String { "gpt2" }
    public var vocabularySize: Int { config.vocabSize }
    public var contextLength: Int { config.nPositions }
    public var bosTokenID: Int? { config.bosTokenID }
    public var eosTokenID: Int? { config.eosTokenID }
    public var layerCount: Int { config.nLayer }
    public let parameterCount: Int
    public var weightTypes: [String: Int] {
        var types: [String: Int] = [:]
        for m in layers.flatMap({ [$0.attnW, $0.projW, $0.fcW, $0.fcProjW] }) + (config.tieWordEmbeddings ? [wte] : [wte, lmHead]) {
            types[m.type.rawValue, default: 0] += 1
        }
        return types
    }

    struct Layer {
        let ln1w, ln1b: Tensor            // (C)
        let attnW: LinearWeights          // (3C, C)
        let attnB: Tensor                 // (3C)
        let projW: LinearWeights          // (C, C)
        let projB: Tensor                 // (C)
        let ln2w, ln2b: Tensor            // (C)
        let fcW: LinearWeights            // (F, C)
        let fcB: Tensor                   // (F)
        let fcProjW: LinearWeights        // (C, F)
        let fcProjB: Tensor               // (C)
    }

    let wte: LinearWeights                // (V, C)
    let wpe: Tensor                       // (maxT, C)
    let layers: [Layer]
    let lnfW, lnfB: Tensor                // (C)
    let lmHead: LinearWeights             // (V, C): wte when tied
    let gelu: GELUKind
    let pool: ThreadPool

    /// Rows processed per pass during prefill (like llama.cpp's n_batch).
    public let maxBatch: Int
    /// Used only while holding `lock`.
    private let ws: Workspace
    private let q8ws: Q8Workspace
    private let lock: ForwardLock

    /// Whether the linear layers run int8 (Q8).
    public var isQuantized: Bool { lmHead.isQuantized }

    /// Bytes of all weights as held in memory.
    public let weightBytes: Int

    /// Activation buffers reused by every forward call (no allocation while decoding).
    final class Workspace {
        let x, h, qkv, att, fc: Tensor    // (B, C), (B, C), (B, 3C), (B, C), (B, F)
        let scratch: Tensor               // attention scores (AttentionDims.scratchCount)
        var ids: [Int32]                  // (B) chunk ids

        init(config c: GPT2Config, batch B: Int, threads: Int) {
            x = Tensor(zeros: [B, c.nEmbd]); h = Tensor(zeros: [B, c.nEmbd])
            qkv = Tensor(zeros: [B, 3 * c.nEmbd]); att = Tensor(zeros: [B, c.nEmbd])
            fc = Tensor(zeros: [B, c.innerSize])
            let dims = AttentionDims(T: B, L: c.nPositions, NH: c.nHead, KVH: c.nHead, HS: c.headSize,
                                     qStride: 3 * c.nEmbd, kvStride: c.nEmbd, outStride: c.nEmbd, causal: true)
            scratch = Tensor(zeros: [dims.scratchCount(threads: threads)])
            ids = [Int32](repeating: 0, count: B)
        }
    }

    /// Builds the model from Hugging Face-named tensors in the checkpoint layout. Weights the
    /// source holds in Q8 load as Q8; with `convertTo: .q8`, float linear weights (and the token
    /// embedding / LM head) are quantized to Q8 as they load.
    public init(config: GPT2Config, source: WeightSource, maxBatch: Int = 512,
                pool: ThreadPool = Threads.shared, convertTo: WeightType? = nil) throws {
        try config.validate()
        self.config = config
        self.pool = pool
        self.gelu = try config.gelu
        let shapes = Dictionary(uniqueKeysWithValues: config.parameterLayout.map { ($0.name, $0.shape) })
        func get(_ name: String) throws -> Tensor { try source.tensor(name, shape: shapes[name]!) }
        /// A linear weight in (out, in): `transposed` for Conv1D's (in, out).
        func linear(_ name: String, transposed: Bool) throws -> LinearWeights {
            let s = shapes[name]!
            let (rows, cols) = transposed ? (s[1], s[0]) : (s[0], s[1])
            if let q = try source.q8(name, rows: rows, cols: cols) { return .q8(q) }
            let src = try get(name)
            var w = src
            if transposed {
                w = Tensor(zeros: [rows, cols])
                transpose(out: w.data, inp: src.data, rows: s[0], cols: s[1])
            }
            let converted = try LinearWeights.converting(w, to: convertTo)
            if transposed || converted.isQuantized { source.done(with: name) }
            return converted
        }

        wte = try linear("transformer.wte.weight", transposed: false)
        wpe = try get("transformer.wpe.weight")
        layers = try (0..<config.nLayer).map { l in
            let p = "transformer.h.\(l)."
            return Layer(ln1w: try get(p + "ln_1.weight"), ln1b: try get(p + "ln_1.bias"),
                         attnW: try linear(p + "attn.c_attn.weight", transposed: true), attnB: try get(p + "attn.c_attn.bias"),
                         projW: try linear(p + "attn.c_proj.weight", transposed: true), projB: try get(p + "attn.c_proj.bias"),
                         ln2w: try get(p + "ln_2.weight"), ln2b: try get(p + "ln_2.bias"),
                         fcW: try linear(p + "mlp.c_fc.weight", transposed: true), fcB: try get(p + "mlp.c_fc.bias"),
                         fcProjW: try linear(p + "mlp.c_proj.weight", transposed: true), fcProjB: try get(p + "mlp.c_proj.bias"))
        }
        lnfW = try get("transformer.ln_f.weight")
        lnfB = try get("transformer.ln_f.bias")
        lmHead = config.tieWordEmbeddings ? wte : try linear("lm_head.weight", transposed: false)
        parameterCount = config.parameterLayout.reduce(0) { $0 + $1.shape.reduce(1, *) }
        self.maxBatch = max(1, min(maxBatch, config.nPositions))
        ws = Workspace(config: config, batch: self.maxBatch, threads: pool.threadCount)
        q8ws = Q8Workspace(maxCols: max(config.nEmbd, config.innerSize))
        lock = ForwardLock(vocabularySize: config.vocabSize)
        var bytes = wte.bytes + wpe.count * 4 + lnfW.count * 8
        if !config.tieWordEmbeddings { bytes += lmHead.bytes }
        for l in layers {
            bytes += l.attnW.bytes + l.projW.bytes + l.fcW.bytes + l.fcProjW.bytes
            bytes += (l.ln1w.count * 4 + l.attnB.count + l.projB.count + l.fcB.count + l.fcProjB.count) * 4
        }
        weightBytes = bytes
    }

    /// Loads a Hugging Face GPT-2 folder (float or swift-lm Q8); tensor names with or without the
    /// `transformer.` prefix.
    public convenience init(folder: ModelFolder, maxBatch: Int = 512, pool: ThreadPool = Threads.shared,
                            convertTo: WeightType? = nil) throws {
        let config = try folder.decodeConfig(GPT2Config.self)
        try config.validate()
        let source = SafeTensorsWeightSource(file: try folder.openWeights(), optionalPrefixes: ["transformer."])
        try self.init(config: config, source: source, maxBatch: maxBatch, pool: pool, convertTo: convertTo)
    }

    /// A model with random weights (N(0, 0.02²) matrices, unit LayerNorm scales, zero biases),
    /// for benchmarks and tests; `convertTo: .q8` makes its linear layers Q8.
    public convenience init(randomWith config: GPT2Config, seed: UInt64, pool: ThreadPool = Threads.shared,
                            convertTo: WeightType? = nil) throws {
        try self.init(config: config, source: RandomWeightSource(seed: seed), pool: pool, convertTo: convertTo)
    }

    public func makeCache(capacity: Int?) -> KVCache {
        KVCache(layers: config.nLayer, capacity: min(capacity ?? config.nPositions, config.nPositions),
                width: config.nEmbd)
    }

    public func forward(tokens: UnsafeBufferPointer<Int32>, cache: KVCache, logitsFrom: Int) throws
        -> UnsafeMutableBufferPointer<Float> {
        try validate(tokens: tokens, cache: cache, logitsFrom: logitsFrom)
        let T = tokens.count, V = config.vocabSize, C = config.nEmbd
        let rows = T - logitsFrom
        return lock.withLogits(rows: rows) { logits in
            runInChunks(count: T, maxBatch: maxBatch, logitsFrom: logitsFrom, logits: logits, V: V, chunk: { offset, B in
                for i in 0..<B { ws.ids[i] = tokens[offset + i] }
                forwardChunk(B: B, cache: cache)
            }, head: { first, n, dest in
                // Final LayerNorm and LM head on the rows whose logits are wanted.
                layerNormForward(out: ws.h.data, mean: nil, rstd: nil, inp: ws.x.data + first * C,
                                 weight: lnfW.data, bias: lnfB.data, N: n, C: C, eps: config.layerNormEpsilon, pool: pool)
                lmHead.forward(out: dest, inp: ws.h.data, bias: nil, N: n, workspace: q8ws, pool: pool)
            })
            return UnsafeMutableBufferPointer(start: logits, count: rows * V)
        }
    }

    /// One chunk of B tokens (ids in `ws.ids`) at positions cache.length ..< cache.length + B;
    /// leaves the final residual stream in `ws.x` and advances the cache. Holding `lock`.
    private func forwardChunk(B: Int, cache: KVCache) {
        let C = config.nEmbd, F = config.innerSize, NH = config.nHead, HS = config.headSize
        let P = cache.length
        let x = ws.x.data, h = ws.h.data, qkv = ws.qkv.data, att = ws.att.data, fc = ws.fc.data
        let eps = config.layerNormEpsilon
        for t in 0..<B {
            let row = x + t * C, pos = wpe.data + (P + t) * C
            wte.row(Int(ws.ids[t]), into: row)
            for c in 0..<C { row[c] += pos[c] }
        }
        let dims = AttentionDims(T: B, L: P + B, NH: NH, KVH: NH, HS: HS,
                                 qStride: 3 * C, kvStride: C, outStride: C, causal: true)
        for (l, w) in layers.enumerated() {
            layerNormForward(out: h, mean: nil, rstd: nil, inp: x, weight: w.ln1w.data, bias: w.ln1b.data,
                             N: B, C: C, eps: eps, pool: pool)
            w.attnW.forward(out: qkv, inp: h, bias: w.attnB.data, N: B, workspace: q8ws, pool: pool)
            let kc = cache.keys(l), vc = cache.values(l)
            for t in 0..<B {
                (kc + (P + t) * C).update(from: qkv + t * 3 * C + C, count: C)
                (vc + (P + t) * C).update(from: qkv + t * 3 * C + 2 * C, count: C)
            }
            attentionForward(out: att, q: qkv, k: kc, v: vc, scratch: ws.scratch.data, dims: dims, pool: pool)
            w.projW.forward(out: x, inp: att, bias: w.projB.data, N: B, accumulate: true, workspace: q8ws, pool: pool)
            layerNormForward(out: h, mean: nil, rstd: nil, inp: x, weight: w.ln2w.data, bias: w.ln2b.data,
                             N: B, C: C, eps: eps, pool: pool)
            w.fcW.forward(out: fc, inp: h, bias: w.fcB.data, N: B, workspace: q8ws, pool: pool)
            geluForward(out: fc, inp: fc, n: B * F, kind: gelu, pool: pool)
            w.fcProjW.forward(out: x, inp: fc, bias: w.fcProjB.data, N: B, accumulate: true, workspace: q8ws, pool: pool)
        }
        cache.advance(by: B)
    }
}

/// What makes a model's `forward` safe to call from several threads at once (GPT-2, Gemma 3):
/// a lock around everything the calls share — the activation buffers and the thread pool, which
/// runs one job at a time — and one logits buffer per calling thread, so the buffer `forward`
/// returns stays the caller's until that thread's next call (a task reads it before its next
/// suspension point). A buffer grows to the most rows its thread asked for and lives as long as
/// the model; one thread calling, as in the CLI, allocates nothing per token.
final class ForwardLock: @unchecked Sendable {
    private let lock = NSLock()
    private let vocabularySize: Int
    /// Logits buffers (rows, V) by calling thread; only touched while holding `lock`.
    private var logits: [UInt: Tensor] = [:]

    init(vocabularySize: Int) { self.vocabularySize = vocabularySize }

    /// Runs `body` holding the lock.
    func withLock<R>(_ body: () throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    /// Runs `body` holding the lock, with the calling thread's logits buffer of at least `rows` rows.
    func withLogits<R>(rows: Int, _ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        #if canImport(Glibc)
        let thread = UInt(pthread_self())
        #else
        let thread = UInt(bitPattern: pthread_self())
        #endif
        let buffer: Tensor
        if let b = logits[thread], b.shape[0] >= rows {
            buffer = b
        } else {
            buffer = Tensor(zeros: [max(1, rows), vocabularySize])
            logits[thread] = buffer
        }
        return try body(buffer.data)
    }
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
