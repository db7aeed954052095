import Foundation
import LMCore
import LMModels

// Legend: B batch, T time, BT = B·T rows, C channels, F MLP width, V vocabulary, L layers,
// NH heads. Shapes in comments are per layer unless they say otherwise.

/// A GPT-2-architecture model set up for training: parameters and gradients in two slabs with
/// the Hugging Face names and layouts (Conv1D weights (in, out)), so a checkpoint is the
/// parameter slab written as is, and every activation the backward pass needs.
///
/// ```swift
/// let model = try GPTTrainingModel(config: config, batch: 12, time: 64)
/// model.initializeWeights(seed: 1337)
/// let loss = try model.forward(inputs: x, targets: y, B: 12, T: 64)
/// model.zeroGradients(); model.backward(); optimizer.step(...)
/// ```
public final class GPTTrainingModel: @unchecked Sendable {
    public let config: GPT2Config
    public let params: ParameterSlab
    public let grads: ParameterSlab
    /// Largest batch and time the activations were sized for.
    public let maxBatch: Int, maxTime: Int
    /// Dropout probability on the embeddings and on both residual branches (training only).
    public var dropout: Float = 0
    /// True: dropout active. Set false for evaluation.
    public var training = true
    public let pool: ThreadPool
    let gelu: GELUKind
    private var rng: SeededRNG

    struct LayerParams {
        let ln1w, ln1b, attnW, attnB, projW, projB, ln2w, ln2b, fcW, fcB, fcProjW, fcProjB: UnsafeMutablePointer<Float>
    }
    private let p: [LayerParams], g: [LayerParams]
    private let wte, wpe, lnfw, lnfb: UnsafeMutablePointer<Float>
    private let dwte, dwpe, dlnfw, dlnfb: UnsafeMutablePointer<Float>

    /// Saved activations of one layer.
    struct LayerActs {
        let ln1, ln1Mean, ln1Rstd, qkv, atty, att, residual2, ln2, ln2Mean, ln2Rstd, fch, fchGelu, residual3: UnsafeMutablePointer<Float>  // fch: gelu′ after forward
        let dropAttn, dropMLP: UnsafeMutablePointer<UInt8>
    }
    private let acts: TensorStorage
    private let masks: UnsafeMutableBufferPointer<UInt8>
    private let layerActs: [LayerActs]
    private let encoded: UnsafeMutablePointer<Float>       // (BT, C) embeddings after dropout
    private let dropEmbed: UnsafeMutablePointer<UInt8>     // (BT, C)
    private let lnf, lnfMean, lnfRstd, logits, losses, branch: UnsafeMutablePointer<Float>
    // Gradient buffers for activations (reused across layers).
    private let dresidual, dbranch, dln, datty, dqkv, dfch, attScratch: UnsafeMutablePointer<Float>
    private let inputs: UnsafeMutablePointer<Int32>, targets: UnsafeMutablePointer<Int32>
    private var lastB = 0, lastT = 0, lastCount = 0
    private var haveTargets = false

    /// Bytes of activations and their gradients (for the memory plan).
    public let activationBytes: Int

    /// Floats of activations for `config` at batch B, time T (used by the memory plan).
    public static func activationFloats(config c: GPT2Config, B: Int, T: Int, threads: Int) -> (acts: Int, maskBytes: Int) {
        let BT = B * T, C = c.nEmbd, F = c.innerSize, V = c.vocabSize, NH = c.nHead
        // ln1, 2 stats, qkv, atty, residual2, ln2, 2 stats, fch, fchGelu, residual3; att probs
        let perLayer = BT * (C + 2 + 3 * C + C + C + C + 2 + 2 * F + C) + B * NH * T * T
        // encoded, lnf, 2 stats, logits, losses, branch; dresidual, dbranch, dln, datty, dqkv, dfch; scratch
        let shared = BT * C + BT * C + 2 * BT + BT * V + BT + BT * C
            + 4 * BT * C + 3 * BT * C + BT * F + threads * T * T
        return (c.nLayer * perLayer + shared, (2 * c.nLayer + 1) * BT * C)
    }

    public init(config: GPT2Config, batch B: Int, time T: Int, seed: UInt64 = 1337, pool: ThreadPool = Threads.shared) throws {
        try config.validate()
        guard B > 0, T > 0, T <= config.nPositions else {
            throw LMError(.invalidArgument, "batch \(B) and context \(T) must be positive and the context at most n_positions (\(config.nPositions))")
        }
        guard config.tieWordEmbeddings else {
            throw LMError(.invalidConfig, "training needs tie_word_embeddings = true (GPT-2's tied LM head)")
        }
        self.config = config
        self.maxBatch = B
        self.maxTime = T
        self.pool = pool
        self.gelu = try config.gelu
        self.rng = SeededRNG(seed: seed ^ 0xD5A1_C0DE)
        let params = ParameterSlab(layout: config.parameterLayout)
        let grads = ParameterSlab(layout: config.parameterLayout)
        self.params = params
        self.grads = grads

        func view(_ slab: ParameterSlab, _ name: String) -> UnsafeMutablePointer<Float> { slab.data(name) }
        func layer(_ slab: ParameterSlab, _ l: Int) -> LayerParams {
            let q = "transformer.h.\(l)."
            return LayerParams(ln1w: view(slab, q + "ln_1.weight"), ln1b: view(slab, q + "ln_1.bias"),
                               attnW: view(slab, q + "attn.c_attn.weight"), attnB: view(slab, q + "attn.c_attn.bias"),
                               projW: view(slab, q + "attn.c_proj.weight"), projB: view(slab, q + "attn.c_proj.bias"),
                               ln2w: view(slab, q + "ln_2.weight"), ln2b: view(slab, q + "ln_2.bias"),
                               fcW: view(slab, q + "mlp.c_fc.weight"), fcB: view(slab, q + "mlp.c_fc.bias"),
                               fcProjW: view(slab, q + "mlp.c_proj.weight"), fcProjB: view(slab, q + "mlp.c_proj.bias"))
        }
        var pl: [LayerParams] = [], gl: [LayerParams] = []
        for l in 0..<config.nLayer { pl.append(layer(params, l)); gl.append(layer(grads, l)) }
        wte = view(params, "transformer.wte.weight"); wpe = view(params, "transformer.wpe.weight")
        lnfw = view(params, "transformer.ln_f.weight"); lnfb = view(params, "transformer.ln_f.bias")
        dwte = view(grads, "transformer.wte.weight"); dwpe = view(grads, "transformer.wpe.weight")
        dlnfw = view(grads, "transformer.ln_f.weight"); dlnfb = view(grads, "transformer.ln_f.bias")

        // Activations: one allocation, carved in order.
        let BT = B * T, C = config.nEmbd, F = config.innerSize, V = config.vocabSize, NH = config.nHead
        let sizes = GPTTrainingModel.activationFloats(config: config, B: B, T: T, threads: pool.threadCount)
        acts = TensorStorage(count: sizes.acts)
        masks = .allocate(capacity: sizes.maskBytes)
        masks.initialize(repeating: 1)
        p = pl
        g = gl
        activationBytes = sizes.acts * 4 + sizes.maskBytes
        var cursor = acts.base
        func take(_ n: Int) -> UnsafeMutablePointer<Float> { defer { cursor += n }; return cursor }
        var maskCursor = masks.baseAddress!
        func takeMask() -> UnsafeMutablePointer<UInt8> { defer { maskCursor += BT * C }; return maskCursor }
        var la: [LayerActs] = []
        for _ in 0..<config.nLayer {
            la.append(LayerActs(
                ln1: take(BT * C), ln1Mean: take(BT), ln1Rstd: take(BT), qkv: take(BT * 3 * C), atty: take(BT * C),
                att: take(B * NH * T * T), residual2: take(BT * C), ln2: take(BT * C), ln2Mean: take(BT), ln2Rstd: take(BT),
                fch: take(BT * F), fchGelu: take(BT * F), residual3: take(BT * C),
                dropAttn: takeMask(), dropMLP: takeMask()))
        }
        layerActs = la
        encoded = take(BT * C); dropEmbed = takeMask()
        lnf = take(BT * C); lnfMean = take(BT); lnfRstd = take(BT); logits = take(BT * V); losses = take(BT)
        branch = take(BT * C)
        dresidual = take(BT * C); dbranch = take(BT * C); dln = take(BT * C); datty = take(BT * C)
        dqkv = take(BT * 3 * C); dfch = take(BT * F)
        attScratch = take(pool.threadCount * T * T)
        precondition(cursor - acts.base <= sizes.acts, "activation plan too small")
        inputs = .allocate(capacity: BT)
        targets = .allocate(capacity: BT)
    }

    deinit {
        masks.deallocate()
        inputs.deallocate()
        targets.deallocate()
    }

    /// nanoGPT / GPT-2 initialisation: N(0, 0.02²) for matrices and embeddings, the two
    /// residual projections scaled by 1/√(2L), zero biases, unit LayerNorm scales.
    public func initializeWeights(seed: UInt64) {
        var r = SeededRNG(seed: seed)
        let projStd = 0.02 / Float(2 * config.nLayer).squareRoot()
        for (name, t) in params.tensors {
            if t.rank >= 2 {
                let std = name.hasSuffix("c_proj.weight") ? projStd : 0.02
                r.fillNormal(t.buffer, std: std)
            } else if name.hasSuffix(".weight") {
                t.buffer.initialize(repeating: 1)
            } else {
                t.buffer.initialize(repeating: 0)
            }
        }
    }

    /// Copies weights from another source with the same config (a pretrained checkpoint).
    public func loadWeights(from source: WeightSource) throws { try params.load(from: source) }

    public func zeroGradients() { grads.zero() }

    /// The dropout RNG state (saved in checkpoints so a resumed run draws the same masks).
    public var rngState: [UInt64] {
        get { rng.stateWords }
    }
    public func restoreRNG(_ words: [UInt64]) throws { rng = try SeededRNG(stateWords: words) }

    /// Forward pass over B sequences of T ids. With targets (−1 = ignore), returns the mean
    /// cross-entropy over the non-ignored positions and keeps what `backward` needs.
    @discardableResult
    public func forward(inputs ids: UnsafePointer<Int32>, targets tg: UnsafePointer<Int32>?, B: Int, T: Int) throws -> Float {
        guard B <= maxBatch, T <= maxTime, B > 0, T > 0 else {
            throw LMError(.invalidArgument, "batch \(B)×\(T) exceeds the planned \(maxBatch)×\(maxTime)")
        }
        let BT = B * T, C = config.nEmbd, F = config.innerSize, V = config.vocabSize, NH = config.nHead
        let eps = config.layerNormEpsilon
        for i in 0..<BT {
            guard ids[i] >= 0, Int(ids[i]) < V else {
                throw LMError(.invalidInput, "token id \(ids[i]) is outside the vocabulary (0..<\(V))")
            }
            inputs[i] = ids[i]
            targets[i] = tg?[i] ?? -1
        }
        lastB = B; lastT = T
        haveTargets = tg != nil
        let drop = training && dropout > 0

        for b in 0..<B {
            embeddingForward(out: encoded + b * T * C, tokens: inputs + b * T, tokenTable: wte, positionTable: wpe,
                             startPosition: 0, T: T, C: C)
        }
        if drop { dropoutForward(out: encoded, mask: dropEmbed, inp: encoded, n: BT * C, p: dropout, rng: &rng, pool: pool) }
        var residual = UnsafePointer(encoded)
        for l in 0..<config.nLayer {
            let w = p[l], a = layerActs[l]
            layerNormForward(out: a.ln1, mean: a.ln1Mean, rstd: a.ln1Rstd, inp: residual, weight: w.ln1w, bias: w.ln1b,
                             N: BT, C: C, eps: eps, pool: pool)
            matmulForward(out: a.qkv, inp: a.ln1, weight: w.attnW, bias: w.attnB, N: BT, C: C, OC: 3 * C, layout: .inOut, pool: pool)
            causalAttentionForward(out: a.atty, att: a.att, qkv: a.qkv, B: B, T: T, C: C, NH: NH, pool: pool)
            matmulForward(out: branch, inp: a.atty, weight: w.projW, bias: w.projB, N: BT, C: C, OC: C, layout: .inOut, pool: pool)
            if drop { dropoutForward(out: branch, mask: a.dropAttn, inp: branch, n: BT * C, p: dropout, rng: &rng, pool: pool) }
            residualForward(out: a.residual2, a: residual, b: branch, n: BT * C, pool: pool)
            layerNormForward(out: a.ln2, mean: a.ln2Mean, rstd: a.ln2Rstd, inp: a.residual2, weight: w.ln2w, bias: w.ln2b,
                             N: BT, C: C, eps: eps, pool: pool)
            matmulForward(out: a.fch, inp: a.ln2, weight: w.fcW, bias: w.fcB, N: BT, C: C, OC: F, layout: .inOut, pool: pool)
            // fch then holds gelu′ of the pre-activation (all the backward pass needs of it).
            geluForwardSaving(out: a.fchGelu, derivative: a.fch, inp: a.fch, n: BT * F, kind: gelu, pool: pool)
            matmulForward(out: branch, inp: a.fchGelu, weight: w.fcProjW, bias: w.fcProjB, N: BT, C: F, OC: C, layout: .inOut, pool: pool)
            if drop { dropoutForward(out: branch, mask: a.dropMLP, inp: branch, n: BT * C, p: dropout, rng: &rng, pool: pool) }
            residualForward(out: a.residual3, a: a.residual2, b: branch, n: BT * C, pool: pool)
            residual = UnsafePointer(a.residual3)
        }
        layerNormForward(out: lnf, mean: lnfMean, rstd: lnfRstd, inp: residual, weight: lnfw, bias: lnfb,
                         N: BT, C: C, eps: eps, pool: pool)
        matmulForward(out: logits, inp: lnf, weight: wte, bias: nil, N: BT, C: C, OC: V, layout: .outIn, pool: pool)
        guard tg != nil else { return .nan }
        crossEntropyForward(losses: losses, probs: logits, logits: logits, targets: targets, N: BT, V: V, pool: pool)
        var sum = 0.0
        var count = 0
        for i in 0..<BT where targets[i] >= 0 { sum += Double(losses[i]); count += 1 }
        lastCount = count
        return count > 0 ? Float(sum / Double(count)) : 0
    }

    /// Logits (BT, V) of the last forward without targets (before softmax).
    public var lastLogits: UnsafeBufferPointer<Float> {
        UnsafeBufferPointer(start: logits, count: lastB * lastT * config.vocabSize)
    }

    /// Backward pass of the last `forward` with targets: accumulates into `grads`
    /// (call `zeroGradients` first unless accumulating micro-batches). `lossScale` multiplies the
    /// gradient (1 / micro-batches for gradient accumulation).
    public func backward(lossScale: Float = 1) throws {
        guard haveTargets else { throw LMError(.invalidArgument, "backward needs a forward pass with targets") }
        let B = lastB, T = lastT, BT = B * T, C = config.nEmbd, F = config.innerSize, V = config.vocabSize, NH = config.nHead
        let drop = training && dropout > 0
        // dlogits in place of the probabilities: (p − onehot) / count.
        let dloss = lastCount > 0 ? lossScale / Float(lastCount) : 0
        let dlogits = logits
        pool.parallelFor(BT, minimumPerThread: 4) { rows in
            for n in rows {
                let d = dlogits + n * V
                let t = Int(self.targets[n])
                if t < 0 {
                    d.initialize(repeating: 0, count: V)
                } else {
                    for v in 0..<V { d[v] *= dloss }
                    d[t] -= dloss
                }
            }
        }
        // LM head (tied to wte) and the final LayerNorm.
        matmulBackward(dinp: dln, dweight: dwte, dbias: nil, dout: dlogits, inp: lnf, weight: wte,
                       N: BT, C: C, OC: V, layout: .outIn, overwriteInput: true, pool: pool)
        dresidual.initialize(repeating: 0, count: BT * C)
        let lastResidual = config.nLayer > 0 ? UnsafePointer(layerActs[config.nLayer - 1].residual3) : UnsafePointer(encoded)
        layerNormBackward(dinp: dresidual, dweight: dlnfw, dbias: dlnfb, dout: dln, inp: lastResidual, weight: lnfw,
                          mean: lnfMean, rstd: lnfRstd, N: BT, C: C, pool: pool)

        for l in stride(from: config.nLayer - 1, through: 0, by: -1) {
            let w = p[l], d = g[l], a = layerActs[l]
            let residualIn = l == 0 ? UnsafePointer(encoded) : UnsafePointer(layerActs[l - 1].residual3)
            // residual3 = residual2 + drop(mlp): the branch gets dresidual (through the mask).
            var dmlp = UnsafePointer(dresidual)
            if drop {
                dbranch.initialize(repeating: 0, count: BT * C)
                dropoutBackward(dinp: dbranch, dout: dresidual, mask: a.dropMLP, n: BT * C, p: dropout, pool: pool)
                dmlp = UnsafePointer(dbranch)
            }
            // dfch = (dmlp · fcProjWᵀ) ⊙ gelu′ (saved in fch by the forward pass), in one product.
            matmulBackward(dinp: dfch, dweight: d.fcProjW, dbias: d.fcProjB, dout: dmlp, inp: a.fchGelu,
                           weight: w.fcProjW, N: BT, C: F, OC: C, layout: .inOut, overwriteInput: true,
                           dinpScale: a.fch, pool: pool)
            matmulBackward(dinp: dln, dweight: d.fcW, dbias: d.fcB, dout: dfch, inp: a.ln2, weight: w.fcW,
                           N: BT, C: C, OC: F, layout: .inOut, overwriteInput: true, pool: pool)
            layerNormBackward(dinp: dresidual, dweight: d.ln2w, dbias: d.ln2b, dout: dln, inp: a.residual2, weight: w.ln2w,
                              mean: a.ln2Mean, rstd: a.ln2Rstd, N: BT, C: C, pool: pool)
            // residual2 = residualIn + drop(attn).
            var dattn = UnsafePointer(dresidual)
            if drop {
                dbranch.initialize(repeating: 0, count: BT * C)
                dropoutBackward(dinp: dbranch, dout: dresidual, mask: a.dropAttn, n: BT * C, p: dropout, pool: pool)
                dattn = UnsafePointer(dbranch)
            }
            matmulBackward(dinp: datty, dweight: d.projW, dbias: d.projB, dout: dattn, inp: a.atty, weight: w.projW,
                           N: BT, C: C, OC: C, layout: .inOut, overwriteInput: true, pool: pool)
            causalAttentionBackward(dqkv: dqkv, dout: datty, qkv: a.qkv, att: a.att, scratch: attScratch,
                                    B: B, T: T, C: C, NH: NH, overwrite: true, pool: pool)
            matmulBackward(dinp: dln, dweight: d.attnW, dbias: d.attnB, dout: dqkv, inp: a.ln1, weight: w.attnW,
                           N: BT, C: C, OC: 3 * C, layout: .inOut, overwriteInput: true, pool: pool)
            layerNormBackward(dinp: dresidual, dweight: d.ln1w, dbias: d.ln1b, dout: dln, inp: residualIn, weight: w.ln1w,
                              mean: a.ln1Mean, rstd: a.ln1Rstd, N: BT, C: C, pool: pool)
        }
        // Embeddings (through the embedding dropout).
        var dembed = UnsafePointer(dresidual)
        if drop {
            dbranch.initialize(repeating: 0, count: BT * C)
            dropoutBackward(dinp: dbranch, dout: dresidual, mask: dropEmbed, n: BT * C, p: dropout, pool: pool)
            dembed = UnsafePointer(dbranch)
        }
        embeddingBackward(dtokenTable: dwte, dpositionTable: dwpe, dout: dembed, tokens: inputs,
                          startPosition: 0, B: B, T: T, C: C, pool: pool)
    }
}
