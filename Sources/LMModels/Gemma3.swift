import Foundation
import LMCore

// Legend: B rows in a chunk, C channels (hidden size), F the feed-forward width, V vocabulary,
// NH query heads, KVH key/value heads, HS head size, W = KVH·HS the cached width per position,
// P the first position of a chunk.

/// Gemma 3 (text): the configuration, from a GGUF file's `gemma3.*` metadata or a Hugging Face
/// `config.json` (`model_type: gemma3_text`).
public struct Gemma3Config: Sendable, Equatable {
    public var vocabSize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layers: Int
    public var heads: Int
    public var kvHeads: Int
    public var headDim: Int
    public var contextLength: Int
    public var rmsNormEps: Float = 1e-6
    /// RoPE base of the global (full-attention) layers and of the sliding-window layers.
    public var ropeBase: Double = 1_000_000
    public var ropeBaseLocal: Double = 10_000
    /// Linear position scaling of the global layers (`rope_scaling` `linear`; 1 = none).
    public var ropeScale: Double = 1
    public var slidingWindow: Int = 512
    /// Per layer: whether it is a sliding-window layer.
    public var slidingLayers: [Bool]
    /// The factor on q·k: 1/√query_pre_attn_scalar.
    public var queryScale: Float
    /// Factor on the embeddings: √hidden (rounded to the checkpoint's float type in Hugging Face).
    public var embedScale: Float
    /// `final_logit_softcapping`: logits = cap · tanh(logits / cap); nil = none.
    public var finalLogitSoftcap: Float? = nil
    public var bosTokenID: Int? = 2
    public var eosTokenID: Int? = 1
    public var tieWordEmbeddings = true
    /// Hugging Face norms hold w and scale by (1 + w); GGUF's converter stored 1 + w already.
    public var normsAddOne = false

    /// Layer l is a sliding-window layer unless (l + 1) is a multiple of `pattern` (Gemma 3: 6).
    public static func slidingPattern(layers: Int, pattern: Int) -> [Bool] {
        (0..<layers).map { pattern <= 0 ? false : ($0 + 1) % pattern != 0 }
    }

    /// From a GGUF file's metadata (`general.architecture` = gemma3).
    public init(gguf file: GGUFFile) throws {
        let a = file.architecture ?? "gemma3"
        func key(_ k: String) -> String { "\(a).\(k)" }
        hiddenSize = try file.int(key("embedding_length"))
        layers = try file.int(key("block_count"))
        intermediateSize = try file.int(key("feed_forward_length"))
        heads = try file.int(key("attention.head_count"))
        kvHeads = try file.optionalInt(key("attention.head_count_kv")) ?? heads
        headDim = try file.optionalInt(key("attention.key_length")) ?? hiddenSize / max(1, heads)
        if let v = try file.optionalInt(key("attention.value_length")), v != headDim {
            throw LMError(.invalidConfig, "'\(file.path)': key_length \(headDim) and value_length \(v) differ, which Gemma 3 never does — the file is corrupt")
        }
        contextLength = try file.int(key("context_length"))
        rmsNormEps = Float(try file.double(key("attention.layer_norm_rms_epsilon")) ?? 1e-6)
        ropeBase = try file.double(key("rope.freq_base")) ?? 1_000_000
        ropeBaseLocal = try file.double(key("rope.freq_base_swa")) ?? 10_000
        if let type = file.metadata[key("rope.scaling.type")]?.stringValue, type != "none" {
            guard type == "linear" else {
                throw LMError(.invalidConfig, "'\(file.path)': rope scaling '\(type)' is not supported for gemma3 (only linear)")
            }
            ropeScale = try file.double(key("rope.scaling.factor")) ?? 1
        }
        slidingWindow = try file.optionalInt(key("attention.sliding_window")) ?? 512
        // attention.sliding_window_pattern: n (layer l slides unless (l + 1) % n == 0, default 6)
        // or one boolean per layer, as llama.cpp reads it.
        if case .array(let flags)? = file.metadata[key("attention.sliding_window_pattern")] {
            guard flags.count == layers, flags.allSatisfy({ $0.boolValue != nil }) else {
                throw LMError(.invalidConfig, "'\(file.path)': \(key("attention.sliding_window_pattern")) has \(flags.count) entries for \(layers) layers — the file is corrupt")
            }
            slidingLayers = flags.map { $0.boolValue! }
        } else {
            let pattern = try file.optionalInt(key("attention.sliding_window_pattern")) ?? 6
            slidingLayers = Gemma3Config.slidingPattern(layers: layers, pattern: pattern)
        }
        // llama.cpp: 1/√(n_embd / n_head) for the 62-layer (27B) model, 1/√head_dim otherwise.
        queryScale = 1 / Float(layers == 62 ? hiddenSize / heads : headDim).squareRoot()
        embedScale = Float(hiddenSize).squareRoot()
        if let cap = try file.double(key("final_logit_softcapping")), cap > 0 { finalLogitSoftcap = Float(cap) }
        if let cap = try file.double(key("attn_logit_softcapping")), cap > 0 {
            throw LMError(.invalidConfig, "'\(file.path)': attention logit soft-capping is not supported (Gemma 3 has none)")
        }
        let embedding = try file.tensor("token_embd.weight")
        vocabSize = embedding.dims.count == 2 ? embedding.dims[1] : 0
        bosTokenID = try file.optionalInt("tokenizer.ggml.bos_token_id") ?? 2
        eosTokenID = try file.optionalInt("tokenizer.ggml.eos_token_id") ?? 1
        tieWordEmbeddings = !file.contains("output.weight")
        normsAddOne = false
        try validate()
    }

    /// From a Hugging Face `config.json` (`model_type: gemma3_text`); `embeddingType` is the
    /// float type the embedding is stored in (the embedding scale is rounded to it, as
    /// transformers does).
    public init(huggingFace data: Data, path: String, embeddingType: DType = .f32) throws {
        guard let c = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw LMError(.corruptFile, "'\(path)' is not a JSON object")
        }
        func int(_ k: String) throws -> Int {
            guard let v = (c[k] as? NSNumber)?.intValue else {
                throw LMError(.invalidConfig, "'\(path)' is missing \"\(k)\" (an integer)")
            }
            return v
        }
        func double(_ k: String) -> Double? { (c[k] as? NSNumber)?.doubleValue }
        func firstInt(_ k: String) -> Int? {
            if let n = c[k] as? NSNumber { return n.intValue }
            return (c[k] as? [NSNumber])?.first?.intValue
        }
        vocabSize = try int("vocab_size")
        hiddenSize = try int("hidden_size")
        intermediateSize = try int("intermediate_size")
        layers = try int("num_hidden_layers")
        heads = try int("num_attention_heads")
        kvHeads = (c["num_key_value_heads"] as? NSNumber)?.intValue ?? heads
        headDim = (c["head_dim"] as? NSNumber)?.intValue ?? hiddenSize / max(1, heads)
        contextLength = (c["max_position_embeddings"] as? NSNumber)?.intValue ?? 32_768
        rmsNormEps = Float(double("rms_norm_eps") ?? 1e-6)
        // RoPE: rope_theta / rope_local_base_freq / rope_scaling, or rope_parameters (per layer type).
        func scaling(_ s: [String: Any]?) throws -> Double {
            guard let s, let type = (s["rope_type"] ?? s["type"]) as? String, type != "default" else { return 1 }
            guard type == "linear" else {
                throw LMError(.invalidConfig, "'\(path)': rope scaling '\(type)' is not supported for gemma3 (only linear)")
            }
            return (s["factor"] as? NSNumber)?.doubleValue ?? 1
        }
        ropeBase = double("rope_theta") ?? 1_000_000
        ropeBaseLocal = double("rope_local_base_freq") ?? 10_000
        ropeScale = try scaling(c["rope_scaling"] as? [String: Any])
        if let p = c["rope_parameters"] as? [String: Any] {
            if let full = p["full_attention"] as? [String: Any] {
                ropeBase = (full["rope_theta"] as? NSNumber)?.doubleValue ?? ropeBase
                ropeScale = try scaling(full)
                if let local = p["sliding_attention"] as? [String: Any] {
                    ropeBaseLocal = (local["rope_theta"] as? NSNumber)?.doubleValue ?? ropeBaseLocal
                    guard try scaling(local) == 1 else {
                        throw LMError(.invalidConfig, "'\(path)': rope scaling on the sliding-window layers is not supported")
                    }
                }
            } else {
                ropeBase = (p["rope_theta"] as? NSNumber)?.doubleValue ?? ropeBase
                ropeScale = try scaling(p)
            }
        }
        slidingWindow = (c["sliding_window"] as? NSNumber)?.intValue ?? 512
        if let types = c["layer_types"] as? [String] {
            guard types.count == layers else {
                throw LMError(.invalidConfig, "'\(path)': layer_types has \(types.count) entries for \(layers) layers")
            }
            slidingLayers = try types.map {
                switch $0 {
                case "sliding_attention": return true
                case "full_attention": return false
                default: throw LMError(.invalidConfig, "'\(path)': layer type '\($0)' is not supported (sliding_attention, full_attention)")
                }
            }
        } else {
            let pattern = (c["sliding_window_pattern"] as? NSNumber)?.intValue
                ?? (c["_sliding_window_pattern"] as? NSNumber)?.intValue ?? 6
            slidingLayers = Gemma3Config.slidingPattern(layers: layers, pattern: pattern)
        }
        let scalar = double("query_pre_attn_scalar") ?? Double(headDim)
        queryScale = Float(1 / scalar.squareRoot())
        // transformers: embed_scale = hidden_size ** 0.5 cast to the embedding's dtype.
        let scale = Float(Double(hiddenSize).squareRoot())
        switch embeddingType {
        case .bf16: embedScale = Float(bitPattern: (scale.bitPattern &+ 0x7FFF &+ ((scale.bitPattern >> 16) & 1)) & 0xFFFF_0000)
        case .f16: embedScale = Float(Float16(scale))
        default: embedScale = scale
        }
        if let cap = double("final_logit_softcapping"), cap > 0 { finalLogitSoftcap = Float(cap) }
        if let cap = double("attn_logit_softcapping"), cap > 0 {
            throw LMError(.invalidConfig, "'\(path)': attn_logit_softcapping is not supported (Gemma 3 has none)")
        }
        let act = (c["hidden_activation"] ?? c["hidden_act"]) as? String ?? "gelu_pytorch_tanh"
        guard ["gelu_pytorch_tanh", "gelu_new", "gelu_fast"].contains(act) else {
            throw LMError(.invalidConfig, "'\(path)': hidden_activation '\(act)' is not supported (gelu_pytorch_tanh)")
        }
        bosTokenID = firstInt("bos_token_id") ?? 2
        eosTokenID = firstInt("eos_token_id") ?? 1
        tieWordEmbeddings = (c["tie_word_embeddings"] as? Bool) ?? true
        normsAddOne = true
        try validate()
    }

    /// Throws a one-line error for any value swift-lm cannot run.
    public func validate() throws {
        func check(_ ok: Bool, _ message: String) throws {
            if !ok { throw LMError(.invalidConfig, "Gemma 3 config: " + message) }
        }
        try check(vocabSize > 0 && hiddenSize > 0 && intermediateSize > 0 && layers > 0 && heads > 0 && kvHeads > 0,
                  "vocabulary, hidden size, feed-forward size, layers and heads must be positive")
        if let tooLarge = ConfigLimits.check([("layers", layers, ConfigLimits.layers), ("hidden size", hiddenSize, ConfigLimits.width),
                                              ("heads", heads, ConfigLimits.heads), ("vocabulary", vocabSize, ConfigLimits.vocabulary),
                                              ("feed-forward size", intermediateSize, ConfigLimits.width * 8)]) {
            try check(false, tooLarge)
        }
        try check(headDim > 0 && headDim % 2 == 0, "head_dim (\(headDim)) must be positive and even")
        try check(heads % kvHeads == 0, "the \(heads) query heads must be a multiple of the \(kvHeads) key/value heads")
        try check(contextLength > 0, "the context length must be positive")
        try check(slidingWindow > 0, "sliding_window must be positive")
        try check(rmsNormEps > 0, "rms_norm_eps must be positive")
        try check(ropeBase > 0 && ropeBaseLocal > 0 && ropeScale > 0, "RoPE bases and scaling must be positive")
        try check(slidingLayers.count == layers, "one layer type per layer")
    }

    public var qWidth: Int { heads * headDim }
    public var kvWidth: Int { kvHeads * headDim }

    /// Every tensor with its role, by the names of GGUF (`gguf: true`) or of Hugging Face.
    /// Shapes are (out, in) for matrices.
    public func tensorTable(gguf: Bool) -> [TensorSpec] {
        let C = hiddenSize, F = intermediateSize, HS = headDim
        func n(_ hf: String, _ gg: String) -> String { gguf ? gg : hf }
        var t = [TensorSpec(n("model.embed_tokens.weight", "token_embd.weight"), [vocabSize, C], .tokenEmbedding)]
        for l in 0..<layers {
            let p = "model.layers.\(l).", g = "blk.\(l)."
            t += [
                TensorSpec(n(p + "input_layernorm.weight", g + "attn_norm.weight"), [C], .attentionNorm, layer: l),
                TensorSpec(n(p + "self_attn.q_proj.weight", g + "attn_q.weight"), [qWidth, C], .attentionQ, layer: l),
                TensorSpec(n(p + "self_attn.k_proj.weight", g + "attn_k.weight"), [kvWidth, C], .attentionK, layer: l),
                TensorSpec(n(p + "self_attn.v_proj.weight", g + "attn_v.weight"), [kvWidth, C], .attentionV, layer: l),
                TensorSpec(n(p + "self_attn.q_norm.weight", g + "attn_q_norm.weight"), [HS], .attentionQNorm, layer: l),
                TensorSpec(n(p + "self_attn.k_norm.weight", g + "attn_k_norm.weight"), [HS], .attentionKNorm, layer: l),
                TensorSpec(n(p + "self_attn.o_proj.weight", g + "attn_output.weight"), [C, qWidth], .attentionOutput, layer: l),
                TensorSpec(n(p + "post_attention_layernorm.weight", g + "post_attention_norm.weight"), [C], .postAttentionNorm, layer: l),
                TensorSpec(n(p + "pre_feedforward_layernorm.weight", g + "ffn_norm.weight"), [C], .ffnNorm, layer: l),
                TensorSpec(n(p + "mlp.gate_proj.weight", g + "ffn_gate.weight"), [F, C], .ffnGate, layer: l),
                TensorSpec(n(p + "mlp.up_proj.weight", g + "ffn_up.weight"), [F, C], .ffnUp, layer: l),
                TensorSpec(n(p + "mlp.down_proj.weight", g + "ffn_down.weight"), [C, F], .ffnDown, layer: l),
                TensorSpec(n(p + "post_feedforward_layernorm.weight", g + "post_ffw_norm.weight"), [C], .postFFNNorm, layer: l),
            ]
        }
        t.append(TensorSpec(n("model.norm.weight", "output_norm.weight"), [C], .outputNorm))
        if !tieWordEmbeddings { t.append(TensorSpec(n("lm_head.weight", "output.weight"), [vocabSize, C], .output)) }
        return t
    }
}

/// Gemma 3 (text) inference with a KV cache, from a GGUF file (`gemma3`) or a Hugging Face
/// folder (`gemma3_text`): RMSNorm before and after attention and the feed-forward block,
/// grouped-query attention with RMS-normalised queries and keys, rotary embeddings (NeoX
/// rotation; base 10 000 on the sliding-window layers, 1 000 000 on the global ones), a
/// sliding window of `sliding_window` positions on five layers of six (their cache keeps only
/// the window), GeGLU (tanh GELU), embeddings scaled by √hidden, the output head tied to them.
///
/// Everything is computed in float32 from the weights the file holds: quantized blocks are
/// dequantized as they are used, activations are never rounded to 8 bits, and the KV cache is
/// float32 — the computation the weights describe (llama.cpp's CPU path rounds activations to
/// Q8 and keeps an f16 cache). GGUF weights stay memory-mapped: nothing is copied.
///
/// Thread safety: `forward` and `shiftCache` may be called from several threads or tasks at
/// once, each with its own cache; the calls take turns (a lock around the activation buffers and
/// the thread pool) and give exactly the results of serial calls. The logits buffer `forward`
/// returns belongs to the calling thread: only that thread's next call overwrites it.
public final class Gemma3Model: CausalLanguageModel, @unchecked Sendable {
    public static let architecture = Architecture(
        name: "gemma3", modelTypes: ["gemma3_text"], ggufNames: ["gemma3"],
        loadFolder: { try Gemma3Model(folder: $0, options: $1) },
        loadGGUF: { try Gemma3Model(gguf: $0, options: $1) },
        tensorTable: { folder in
            try Gemma3Config(huggingFace: folder.configData, path: folder.path + "/config.json").tensorTable(gguf: false)
        })

    public let config: Gemma3Config
    public var modelType: String { "gemma3" }
    public var vocabularySize: Int { config.vocabSize }
    public var contextLength: Int { config.contextLength }
    public var bosTokenID: Int? { config.bosTokenID }
    public var eosTokenID: Int? { config.eosTokenID }
    public var layerCount: Int { config.layers }
    public let parameterCount: Int
    public let weightBytes: Int
    public let weightTypes: [String: Int]
    public var canShiftCache: Bool { true }

    struct Layer {
        let attnNorm, qNorm, kNorm, postAttnNorm, ffnNorm, postFFNNorm: Tensor   // (C), (HS), (HS), (C)…
        let q: LinearWeights        // (NH·HS, C)
        let k, v: LinearWeights     // (W, C)
        let o: LinearWeights        // (C, NH·HS)
        let gate, up: LinearWeights // (F, C)
        let down: LinearWeights     // (C, F)
        let sliding: Bool
    }

    let embedding: LinearWeights    // (V, C)
    let output: LinearWeights       // (V, C): the embedding when tied
    let outputNorm: Tensor          // (C)
    let layers: [Layer]
    let ropeGlobal, ropeLocal: RotaryEmbedding
    let pool: ThreadPool
    public let maxBatch: Int
    /// Used only while holding `lock`.
    private let ws: Workspace
    private let q8ws: Q8Workspace
    private let lock: ForwardLock
    /// Keeps the weights' memory (a mapped file) alive.
    private let owner: AnyObject?

    final class Workspace {
        let x, h, q, k, v, att, o, g, u: Tensor   // (B, C) ×2, (B, NH·HS), (B, W) ×2, (B, NH·HS), (B, C), (B, F) ×2
        let tableGlobal, tableLocal, shiftTable: Tensor  // (B, HS) cos|sin; (1, HS)
        var scratch: Tensor                       // attention scores
        var ids: [Int32]

        init(_ c: Gemma3Config, batch B: Int) {
            x = Tensor(zeros: [B, c.hiddenSize]); h = Tensor(zeros: [B, c.hiddenSize])
            q = Tensor(zeros: [B, c.qWidth]); k = Tensor(zeros: [B, c.kvWidth]); v = Tensor(zeros: [B, c.kvWidth])
            att = Tensor(zeros: [B, c.qWidth]); o = Tensor(zeros: [B, c.hiddenSize])
            g = Tensor(zeros: [B, c.intermediateSize]); u = Tensor(zeros: [B, c.intermediateSize])
            tableGlobal = Tensor(zeros: [B, c.headDim]); tableLocal = Tensor(zeros: [B, c.headDim])
            shiftTable = Tensor(zeros: [1, c.headDim])
            scratch = Tensor(zeros: [1])
            ids = [Int32](repeating: 0, count: B)
        }
    }

    /// Loads a GGUF file's gemma3 model; its weights stay memory-mapped in their own types.
    public convenience init(gguf file: GGUFFile, options: ModelLoadOptions = ModelLoadOptions()) throws {
        let config = try Gemma3Config(gguf: file)
        let w = GGUFWeights(file: file)
        try self.init(config: config, tensors: config.tensorTable(gguf: true), owner: file, options: options,
                      vector: { try w.vector($0, count: $1) },
                      matrix: { try w.matrix($0, rows: $1, cols: $2, convertTo: options.convertTo) })
    }

    /// Loads a Hugging Face `gemma3_text` folder (float32, float16 or bfloat16 safetensors).
    public convenience init(folder: ModelFolder, options: ModelLoadOptions = ModelLoadOptions()) throws {
        let file = try folder.openWeights()
        let source = SafeTensorsWeightSource(file: file, optionalPrefixes: ["language_model."])
        let embedName = source.resolve("model.embed_tokens.weight") ?? source.resolve("language_model.model.embed_tokens.weight")
        let embedType = embedName.flatMap { file.entries[$0]?.dtype } ?? .f32
        let config = try Gemma3Config(huggingFace: folder.configData, path: folder.path + "/config.json", embeddingType: embedType)
        func resolved(_ name: String) -> String {
            source.resolve(name) ?? source.resolve("language_model." + name) ?? name
        }
        try self.init(config: config, tensors: config.tensorTable(gguf: false), owner: file, options: options,
                      vector: { name, count in
                          let t = try source.tensor(resolved(name), shape: [count])
                          // Hugging Face Gemma norms scale by (1 + w).
                          let out = Tensor(zeros: [count])
                          for i in 0..<count { out.data[i] = 1 + t.data[i] }
                          return out
                      },
                      matrix: { name, rows, cols in
                          let n = resolved(name)
                          if let q = try source.q8(n, rows: rows, cols: cols) { return .q8(q) }
                          let w = try source.tensor(n, shape: [rows, cols])
                          return try LinearWeights.converting(w, to: options.convertTo)
                      })
    }

    /// Builds the model from its tensor table; `vector` and `matrix` fetch tensors by name
    /// (vectors already holding the norm's final scale).
    init(config: Gemma3Config, tensors: [TensorSpec], owner: AnyObject?, options: ModelLoadOptions,
         vector: (String, Int) throws -> Tensor, matrix: (String, Int, Int) throws -> LinearWeights) throws {
        try config.validate()
        self.config = config
        self.owner = owner
        pool = options.pool
        var byRole: [String: TensorSpec] = [:]
        for t in tensors { byRole["\(t.role.rawValue).\(t.layer ?? -1)"] = t }
        func spec(_ role: TensorRole, _ layer: Int?) -> TensorSpec { byRole["\(role.rawValue).\(layer ?? -1)"]! }
        func vec(_ role: TensorRole, _ layer: Int?) throws -> Tensor {
            let s = spec(role, layer)
            return try vector(s.name, s.shape[0])
        }
        func mat(_ role: TensorRole, _ layer: Int?) throws -> LinearWeights {
            let s = spec(role, layer)
            return try matrix(s.name, s.shape[0], s.shape[1])
        }
        embedding = try mat(.tokenEmbedding, nil)
        layers = try (0..<config.layers).map { l in
            Layer(attnNorm: try vec(.attentionNorm, l), qNorm: try vec(.attentionQNorm, l), kNorm: try vec(.attentionKNorm, l),
                  postAttnNorm: try vec(.postAttentionNorm, l), ffnNorm: try vec(.ffnNorm, l),
                  postFFNNorm: try vec(.postFFNNorm, l),
                  q: try mat(.attentionQ, l), k: try mat(.attentionK, l), v: try mat(.attentionV, l),
                  o: try mat(.attentionOutput, l), gate: try mat(.ffnGate, l), up: try mat(.ffnUp, l),
                  down: try mat(.ffnDown, l), sliding: config.slidingLayers[l])
        }
        outputNorm = try vec(.outputNorm, nil)
        output = config.tieWordEmbeddings ? embedding : try mat(.output, nil)
        ropeGlobal = RotaryEmbedding(headSize: config.headDim, base: config.ropeBase, scale: config.ropeScale)
        ropeLocal = RotaryEmbedding(headSize: config.headDim, base: config.ropeBaseLocal)
        maxBatch = max(1, options.maxBatch)
        ws = Workspace(config, batch: maxBatch)
        q8ws = Q8Workspace(maxCols: max(config.hiddenSize, config.intermediateSize, config.qWidth))
        lock = ForwardLock(vocabularySize: config.vocabSize)

        var count = 0, bytes = 0
        var types: [String: Int] = [:]
        for l in layers {
            for m in [l.q, l.k, l.v, l.o, l.gate, l.up, l.down] {
                count += m.rows * m.cols; bytes += m.bytes; types[m.type.rawValue, default: 0] += 1
            }
            for t in [l.attnNorm, l.qNorm, l.kNorm, l.postAttnNorm, l.ffnNorm, l.postFFNNorm] { count += t.count; bytes += t.count * 4 }
        }
        for m in config.tieWordEmbeddings ? [embedding] : [embedding, output] {
            count += m.rows * m.cols; bytes += m.bytes; types[m.type.rawValue, default: 0] += 1
        }
        count += outputNorm.count; bytes += outputNorm.count * 4
        parameterCount = count
        weightBytes = bytes
        weightTypes = types
    }

    public func makeCache(capacity: Int?) -> KVCache {
        let n = min(capacity ?? config.contextLength, config.contextLength)
        return KVCache(capacity: n, width: config.kvWidth,
                       windows: config.slidingLayers.map { $0 ? config.slidingWindow : nil }, maxBatch: maxBatch)
    }

    public func shiftCache(_ cache: KVCache, removing range: Range<Int>) -> Bool {
        let ws = ws, KVH = config.kvHeads, W = config.kvWidth
        return lock.withLock {
            cache.removePositions(range) { l, keys, rows, delta in
                let rope = layers[l].sliding ? ropeLocal : ropeGlobal
                rope.fillTable(positions: delta..<(delta + 1), into: ws.shiftTable.data)
                rope.apply(keys, rows: rows, heads: KVH, stride: W, table: ws.shiftTable.data, sameForAllRows: true)
            }
        }
    }

    public func forward(tokens: UnsafeBufferPointer<Int32>, cache: KVCache, logitsFrom: Int) throws
        -> UnsafeMutableBufferPointer<Float> {
        try validate(tokens: tokens, cache: cache, logitsFrom: logitsFrom)
        let T = tokens.count, V = config.vocabSize, C = config.hiddenSize
        let rows = T - logitsFrom
        // Attention scores for the longest layer this cache can hold.
        let L = cache.slots.max() ?? 1
        let need = AttentionDims(T: maxBatch, L: L, NH: config.heads, KVH: config.kvHeads, HS: config.headDim,
                                 qStride: 0, kvStride: 0, outStride: 0, causal: true).scratchCount(threads: pool.threadCount)
        return lock.withLogits(rows: rows) { logits in
            if ws.scratch.count < need { ws.scratch = Tensor(zeros: [need]) }
            runInChunks(count: T, maxBatch: maxBatch, logitsFrom: logitsFrom, logits: logits, V: V, chunk: { offset, B in
                for i in 0..<B { ws.ids[i] = tokens[offset + i] }
                forwardChunk(B: B, cache: cache)
            }, head: { first, n, dest in
                rmsNormForward(out: ws.h.data, inp: ws.x.data + first * C, weight: outputNorm.data, N: n, C: C,
                               eps: config.rmsNormEps, pool: pool)
                output.forward(out: dest, inp: ws.h.data, bias: nil, N: n, workspace: q8ws, pool: pool)
                if let cap = config.finalLogitSoftcap {
                    for i in 0..<(n * V) { dest[i] = cap * Foundation.tanh(dest[i] / cap) }
                }
            })
            return UnsafeMutableBufferPointer(start: logits, count: rows * V)
        }
    }

    /// One chunk of B tokens (ids in `ws.ids`) at positions cache.length ..< cache.length + B;
    /// leaves the final residual stream in `ws.x` and advances the cache. Holding `lock`.
    private func forwardChunk(B: Int, cache: KVCache) {
        let c = config
        let C = c.hiddenSize, F = c.intermediateSize, NH = c.heads, KVH = c.kvHeads, HS = c.headDim
        let QW = c.qWidth, W = c.kvWidth, eps = c.rmsNormEps
        let P = cache.length
        cache.prepare(toAppend: B)
        let x = ws.x.data, h = ws.h.data, q = ws.q.data, k = ws.k.data, v = ws.v.data
        let att = ws.att.data, o = ws.o.data, g = ws.g.data, u = ws.u.data
        for t in 0..<B {
            let row = x + t * C
            embedding.row(Int(ws.ids[t]), into: row)
            for i in 0..<C { row[i] *= c.embedScale }
        }
        ropeGlobal.fillTable(positions: P..<(P + B), into: ws.tableGlobal.data)
        ropeLocal.fillTable(positions: P..<(P + B), into: ws.tableLocal.data)
        for (l, w) in layers.enumerated() {
            rmsNormForward(out: h, inp: x, weight: w.attnNorm.data, N: B, C: C, eps: eps, pool: pool)
            w.q.forward(out: q, inp: h, bias: nil, N: B, workspace: q8ws, pool: pool)
            w.k.forward(out: k, inp: h, bias: nil, N: B, workspace: q8ws, pool: pool)
            w.v.forward(out: v, inp: h, bias: nil, N: B, workspace: q8ws, pool: pool)
            rmsNormForward(out: q, inp: q, weight: w.qNorm.data, N: B * NH, C: HS, eps: eps, pool: pool)
            rmsNormForward(out: k, inp: k, weight: w.kNorm.data, N: B * KVH, C: HS, eps: eps, pool: pool)
            let rope = w.sliding ? ropeLocal : ropeGlobal
            let table = w.sliding ? ws.tableLocal.data : ws.tableGlobal.data
            rope.apply(q, rows: B, heads: NH, stride: QW, table: table)
            rope.apply(k, rows: B, heads: KVH, stride: W, table: table)
            let slot = P - cache.base(l)
            let kc = cache.keys(l), vc = cache.values(l)
            (kc + slot * W).update(from: k, count: B * W)
            (vc + slot * W).update(from: v, count: B * W)
            var dims = AttentionDims(T: B, L: slot + B, NH: NH, KVH: KVH, HS: HS, qStride: QW, kvStride: W, outStride: QW,
                                     causal: true, window: w.sliding ? c.slidingWindow : 0, scale: c.queryScale)
            dims.ownGEMM = true
            attentionForward(out: att, q: q, k: kc, v: vc, scratch: ws.scratch.data, dims: dims, pool: pool)
            w.o.forward(out: o, inp: att, bias: nil, N: B, workspace: q8ws, pool: pool)
            rmsNormForward(out: x, inp: o, weight: w.postAttnNorm.data, add: x, N: B, C: C, eps: eps, pool: pool)
            rmsNormForward(out: h, inp: x, weight: w.ffnNorm.data, N: B, C: C, eps: eps, pool: pool)
            w.gate.forward(out: g, inp: h, bias: nil, N: B, workspace: q8ws, pool: pool)
            w.up.forward(out: u, inp: h, bias: nil, N: B, workspace: q8ws, pool: pool)
            geluForward(out: g, inp: g, n: B * F, kind: .tanh, pool: pool)
            for i in 0..<(B * F) { g[i] *= u[i] }
            w.down.forward(out: o, inp: g, bias: nil, N: B, workspace: q8ws, pool: pool)
            rmsNormForward(out: x, inp: o, weight: w.postFFNNorm.data, add: x, N: B, C: C, eps: eps, pool: pool)
        }
        cache.advance(by: B)
    }
}
