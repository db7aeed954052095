import Foundation
import LMCore
import LMModels

// Legend: S sequences, N packed rows (all tokens of the batch, no padding), C hidden size,
// F intermediate size, V vocabulary, K labels, M masked rows, L layers.

/// A BERT encoder with a classification or masked-LM head, set up for training: parameters and
/// gradients in two slabs with the Hugging Face names (`bert.…`, `classifier.…`,
/// `cls.predictions.…`), every activation the hand-written backward pass needs, and packed
/// batches (`BertBatch`): dynamic padding costs nothing because there is no padding.
///
/// ```swift
/// let model = try BertTrainingModel(config: config, head: .classification(labels: 2), maxTokens: 2048, maxLength: 64)
/// try model.loadWeights(from: source)             // MiniLM; the new head starts random
/// let loss = try model.forward(batch, labels: [1, 0, ...])
/// model.zeroGradients(); try model.backward(); optimizer.step(...)
/// ```
public final class BertTrainingModel: @unchecked Sendable {
    public enum Head: Equatable, Sendable {
        case classification(labels: Int)
        case maskedLM
    }

    public let config: BertConfig
    public let head: Head
    public let params: ParameterSlab
    public let grads: ParameterSlab
    /// Most rows (tokens) and longest sequence a batch may have.
    public let maxTokens: Int, maxLength: Int
    /// Hidden dropout (embeddings and both residual branches); training only.
    public var dropout: Float
    public var training = true
    public let pool: ThreadPool
    let gelu: GELUKind
    private var rng: SeededRNG

    struct LayerParams {
        let qkvW, qkvB, outW, outB, ln1w, ln1b, interW, interB, out2W, out2B, ln2w, ln2b: UnsafeMutablePointer<Float>
    }
    struct LayerActs {
        let qkv, ctx, probs, pre1, mean1, rstd1, x1, inter, interGelu, pre2, mean2, rstd2: UnsafeMutablePointer<Float>
        let drop1, drop2: UnsafeMutablePointer<UInt8>
    }
    private let p: [LayerParams], g: [LayerParams]
    private let word, pos, type, embLNw, embLNb: UnsafeMutablePointer<Float>
    private let dword, dpos, dtype, dembLNw, dembLNb: UnsafeMutablePointer<Float>
    // Head parameters (nil when the head lacks them) and their gradients.
    private let poolW, poolB, clsW, clsB, mlmW, mlmB, mlmLNw, mlmLNb, mlmBias: UnsafeMutablePointer<Float>?
    private let dpoolW, dpoolB, dclsW, dclsB, dmlmW, dmlmB, dmlmLNw, dmlmLNb, dmlmBias: UnsafeMutablePointer<Float>?

    private let storage: TensorStorage
    private let maskStorage: UnsafeMutableBufferPointer<UInt8>
    private let acts: [LayerActs]
    private let xs: [UnsafeMutablePointer<Float>]            // L + 1 layer inputs/outputs (N, C)
    private let embSum, embMean, embRstd, embLN: UnsafeMutablePointer<Float>
    private let embDrop: UnsafeMutablePointer<UInt8>
    private let gbuf, dpre, dx1, dbranch, dctx, dqkv, dinter, attScratch: UnsafeMutablePointer<Float>
    // Head activations: rows are sequences (classification) or masked tokens (MLM).
    private let headIn, headPre, headAct, headLN, headMean, headRstd, headLogits, headLosses, dheadIn, dheadPre, dheadAct: UnsafeMutablePointer<Float>
    private var ids: [Int32] = [], types: [Int32] = [], positions: [Int32] = []
    private var seqs = PackedSequences(lengths: [], heads: 1)
    private var targets: [Int32] = []
    private var maskedRows: [Int] = []
    private var haveLoss = false

    public var labelCount: Int { if case .classification(let k) = head { return k }; return 0 }
    /// Bytes of activations (for the memory plan).
    public let activationBytes: Int

    /// The slab layout of an encoder with `head`.
    public static func layout(config: BertConfig, head: Head) -> [(name: String, shape: [Int])] {
        switch head {
        case .classification(let k): return config.encoderLayout + config.classifierLayout(labels: k)
        case .maskedLM: return config.encoderLayout + config.maskedLMLayout
        }
    }

    public init(config: BertConfig, head: Head, maxTokens: Int, maxLength: Int, seed: UInt64 = 1,
                pool: ThreadPool = Threads.shared) throws {
        try config.validate()
        guard maxTokens > 0, maxLength > 0, maxLength <= config.maxPositionEmbeddings else {
            throw LMError(.invalidArgument, "max length \(maxLength) must be in 1...\(config.maxPositionEmbeddings) (the model's positions)")
        }
        if case .classification(let k) = head, k < 2 {
            throw LMError(.invalidArgument, "a classifier needs at least 2 labels, got \(k)")
        }
        self.config = config
        self.head = head
        self.maxTokens = maxTokens
        self.maxLength = maxLength
        self.pool = pool
        self.dropout = config.hiddenDropoutProb
        gelu = try config.gelu
        rng = SeededRNG(seed: seed ^ 0xB3A7_D00D)
        let layout = BertTrainingModel.layout(config: config, head: head)
        params = ParameterSlab(layout: layout)
        grads = ParameterSlab(layout: layout)
        func view(_ slab: ParameterSlab, _ name: String) -> UnsafeMutablePointer<Float> { slab.data(name) }
        func maybe(_ slab: ParameterSlab, _ name: String) -> UnsafeMutablePointer<Float>? { slab.dataIfPresent(name) }
        func layer(_ s: ParameterSlab, _ l: Int) -> LayerParams {
            let q = "bert.encoder.layer.\(l)."
            return LayerParams(qkvW: view(s, q + "attention.self.query.weight"), qkvB: view(s, q + "attention.self.query.bias"),
                               outW: view(s, q + "attention.output.dense.weight"), outB: view(s, q + "attention.output.dense.bias"),
                               ln1w: view(s, q + "attention.output.LayerNorm.weight"), ln1b: view(s, q + "attention.output.LayerNorm.bias"),
                               interW: view(s, q + "intermediate.dense.weight"), interB: view(s, q + "intermediate.dense.bias"),
                               out2W: view(s, q + "output.dense.weight"), out2B: view(s, q + "output.dense.bias"),
                               ln2w: view(s, q + "output.LayerNorm.weight"), ln2b: view(s, q + "output.LayerNorm.bias"))
        }
        let params = self.params, grads = self.grads
        p = (0..<config.numHiddenLayers).map { layer(params, $0) }
        g = (0..<config.numHiddenLayers).map { layer(grads, $0) }
        let e = "bert.embeddings."
        word = view(params, e + "word_embeddings.weight"); dword = view(grads, e + "word_embeddings.weight")
        pos = view(params, e + "position_embeddings.weight"); dpos = view(grads, e + "position_embeddings.weight")
        type = view(params, e + "token_type_embeddings.weight"); dtype = view(grads, e + "token_type_embeddings.weight")
        embLNw = view(params, e + "LayerNorm.weight"); dembLNw = view(grads, e + "LayerNorm.weight")
        embLNb = view(params, e + "LayerNorm.bias"); dembLNb = view(grads, e + "LayerNorm.bias")
        poolW = maybe(params, "bert.pooler.dense.weight"); dpoolW = maybe(grads, "bert.pooler.dense.weight")
        poolB = maybe(params, "bert.pooler.dense.bias"); dpoolB = maybe(grads, "bert.pooler.dense.bias")
        clsW = maybe(params, "classifier.weight"); dclsW = maybe(grads, "classifier.weight")
        clsB = maybe(params, "classifier.bias"); dclsB = maybe(grads, "classifier.bias")
        let m = "cls.predictions."
        mlmW = maybe(params, m + "transform.dense.weight"); dmlmW = maybe(grads, m + "transform.dense.weight")
        mlmB = maybe(params, m + "transform.dense.bias"); dmlmB = maybe(grads, m + "transform.dense.bias")
        mlmLNw = maybe(params, m + "transform.LayerNorm.weight"); dmlmLNw = maybe(grads, m + "transform.LayerNorm.weight")
        mlmLNb = maybe(params, m + "transform.LayerNorm.bias"); dmlmLNb = maybe(grads, m + "transform.LayerNorm.bias")
        mlmBias = maybe(params, m + "bias"); dmlmBias = maybe(grads, m + "bias")

        // Activations: one allocation, carved in order.
        let N = maxTokens, C = config.hiddenSize, F = config.intermediateSize, L = config.numHiddenLayers
        let probsPerLayer = config.numAttentionHeads * N * maxLength, headRows = N
        let headWidth = BertTrainingModel.headWidth(config: config, head: head)
        let sizes = BertTrainingModel.activationFloats(config: config, head: head, maxTokens: maxTokens, maxLength: maxLength,
                                                       threads: pool.threadCount)
        storage = TensorStorage(count: sizes.floats)
        maskStorage = .allocate(capacity: sizes.maskBytes)
        maskStorage.initialize(repeating: 1)
        activationBytes = sizes.floats * 4 + sizes.maskBytes
        var cursor = storage.base
        func take(_ n: Int) -> UnsafeMutablePointer<Float> { defer { cursor += n }; return cursor }
        var maskCursor = maskStorage.baseAddress!
        func takeMask() -> UnsafeMutablePointer<UInt8> { defer { maskCursor += N * C }; return maskCursor }
        acts = (0..<L).map { _ in
            LayerActs(qkv: take(3 * N * C), ctx: take(N * C), probs: take(probsPerLayer), pre1: take(N * C), mean1: take(N), rstd1: take(N),
                      x1: take(N * C), inter: take(N * F), interGelu: take(N * F), pre2: take(N * C), mean2: take(N), rstd2: take(N),
                      drop1: takeMask(), drop2: takeMask())
        }
        xs = (0...L).map { _ in take(N * C) }
        embSum = take(N * C); embLN = take(N * C); embMean = take(N); embRstd = take(N); embDrop = takeMask()
        gbuf = take(N * C); dpre = take(N * C); dx1 = take(N * C); dbranch = take(N * C); dctx = take(N * C)
        dqkv = take(3 * N * C); dinter = take(N * F); attScratch = take(pool.threadCount * maxLength * maxLength)
        headIn = take(headRows * C); headPre = take(headRows * C); headAct = take(headRows * C); headLN = take(headRows * C)
        dheadIn = take(headRows * C); dheadPre = take(headRows * C); dheadAct = take(headRows * C)
        headMean = take(headRows); headRstd = take(headRows); headLogits = take(headRows * headWidth); headLosses = take(headRows)
        precondition(cursor - storage.base <= sizes.floats, "activation plan too small")
    }

    /// Floats per row of the head's output: logits (masked LM), or logits then probabilities.
    static func headWidth(config: BertConfig, head: Head) -> Int {
        switch head { case .maskedLM: return config.vocabSize; case .classification(let k): return 2 * k }
    }

    /// Floats of activations and bytes of dropout masks for a model of `config` with `head` and
    /// batches of up to `maxTokens` rows (the memory plan, before anything is allocated).
    public static func activationFloats(config: BertConfig, head: Head, maxTokens N: Int, maxLength: Int,
                                        threads: Int) -> (floats: Int, maskBytes: Int) {
        let C = config.hiddenSize, F = config.intermediateSize, L = config.numHiddenLayers
        let probsPerLayer = config.numAttentionHeads * N * maxLength     // Σ n² ≤ N · maxLength
        let headRows = N                                                 // sequences, masked rows ≤ tokens
        let headWidth = BertTrainingModel.headWidth(config: config, head: head)
        let perLayer = 3 * N * C + N * C + probsPerLayer + N * C + 2 * N + N * C + 2 * N * F + N * C + 2 * N
        let shared = (L + 1) * N * C + 2 * N * C + 2 * N + 5 * N * C + 3 * N * C + N * F + threads * maxLength * maxLength
            + headRows * (7 * C + 2 + headWidth + 1)
        return (L * perLayer + shared, (2 * L + 1) * N * C)
    }

    deinit { maskStorage.deallocate() }

    /// BERT's initialisation: N(0, 0.02²) matrices and embeddings, zero biases, unit LayerNorm scales.
    public func initializeWeights(seed: UInt64) {
        var r = SeededRNG(seed: seed)
        for (name, t) in params.tensors {
            if t.rank >= 2 { r.fillNormal(t.buffer, std: 0.02) }
            else if name.hasSuffix("LayerNorm.weight") { t.buffer.initialize(repeating: 1) }
            else { t.buffer.initialize(repeating: 0) }
        }
    }

    /// Copies every parameter `source` holds (names with or without `bert.`); returns the names
    /// it does not hold, which keep their current (initial) values — a new head.
    @discardableResult
    public func loadWeights(from source: WeightSource, has: (String) -> Bool) throws -> [String] {
        var missing: [String] = []
        for (name, t) in params.tensors {
            guard has(name) else { missing.append(name); continue }
            let src = try source.tensor(name, shape: t.shape)
            t.data.update(from: src.data, count: t.count)
        }
        return missing
    }

    public func zeroGradients() { grads.zero() }
    public var rngState: [UInt64] { rng.stateWords }
    public func restoreRNG(_ words: [UInt64]) throws { rng = try SeededRNG(stateWords: words) }

    /// Runs the encoder over a packed batch, keeping what the backward pass needs; the final
    /// hidden states end in `xs[L]`.
    private func encoderForward(_ b: BertBatch) throws {
        let N = b.rows, C = config.hiddenSize, F = config.intermediateSize
        guard b.count > 0, N > 0, N <= maxTokens else {
            throw LMError(.invalidArgument, "a batch of \(N) tokens exceeds the planned \(maxTokens)")
        }
        for n in b.lengths where n < 1 || n > maxLength {
            throw LMError(.invalidArgument, "a sequence of \(n) tokens is outside 1...\(maxLength) (--max-length)")
        }
        for i in 0..<N where b.ids[i] < 0 || Int(b.ids[i]) >= config.vocabSize || b.typeIds[i] < 0 || Int(b.typeIds[i]) >= config.typeVocabSize {
            throw LMError(.invalidInput, "token id \(b.ids[i]) / type \(b.typeIds[i]) is outside the vocabulary (\(config.vocabSize)) or the token types (\(config.typeVocabSize))")
        }
        ids = b.ids; types = b.typeIds; positions = b.positions
        seqs = PackedSequences(lengths: b.lengths, heads: config.numAttentionHeads)
        let eps = config.layerNormEps
        let drop = training && dropout > 0
        ids.withUnsafeBufferPointer { i in positions.withUnsafeBufferPointer { ps in types.withUnsafeBufferPointer { t in
            embeddingSumForward(out: embSum, lookups: [EmbeddingLookup(table: word, ids: i.baseAddress!),
                                                       EmbeddingLookup(table: pos, ids: ps.baseAddress!),
                                                       EmbeddingLookup(table: type, ids: t.baseAddress!)], N: N, C: C, pool: pool)
        } } }
        layerNormForward(out: embLN, mean: embMean, rstd: embRstd, inp: embSum, weight: embLNw, bias: embLNb, N: N, C: C, eps: eps, pool: pool)
        if drop {
            dropoutForward(out: xs[0], mask: embDrop, inp: embLN, n: N * C, p: dropout, rng: &rng, pool: pool)
        } else {
            xs[0].update(from: embLN, count: N * C)
        }
        for l in 0..<config.numHiddenLayers {
            let w = p[l], a = acts[l], x = xs[l]
            matmulForward(out: a.qkv, inp: x, weight: w.qkvW, bias: w.qkvB, N: N, C: C, OC: 3 * C, layout: .outIn, pool: pool)
            packedAttentionForward(out: a.ctx, probs: a.probs, scratch: nil, qkv: a.qkv, seqs: seqs, C: C, pool: pool)
            matmulForward(out: a.pre1, inp: a.ctx, weight: w.outW, bias: w.outB, N: N, C: C, OC: C, layout: .outIn, pool: pool)
            if drop { dropoutForward(out: a.pre1, mask: a.drop1, inp: a.pre1, n: N * C, p: dropout, rng: &rng, pool: pool) }
            residualForward(out: a.pre1, a: a.pre1, b: x, n: N * C, pool: pool)
            layerNormForward(out: a.x1, mean: a.mean1, rstd: a.rstd1, inp: a.pre1, weight: w.ln1w, bias: w.ln1b, N: N, C: C, eps: eps, pool: pool)
            matmulForward(out: a.inter, inp: a.x1, weight: w.interW, bias: w.interB, N: N, C: C, OC: F, layout: .outIn, pool: pool)
            // inter then holds gelu′ of the pre-activation (all the backward pass needs of it).
            geluForwardSaving(out: a.interGelu, derivative: a.inter, inp: a.inter, n: N * F, kind: gelu, pool: pool)
            matmulForward(out: a.pre2, inp: a.interGelu, weight: w.out2W, bias: w.out2B, N: N, C: F, OC: C, layout: .outIn, pool: pool)
            if drop { dropoutForward(out: a.pre2, mask: a.drop2, inp: a.pre2, n: N * C, p: dropout, rng: &rng, pool: pool) }
            residualForward(out: a.pre2, a: a.pre2, b: a.x1, n: N * C, pool: pool)
            layerNormForward(out: xs[l + 1], mean: a.mean2, rstd: a.rstd2, inp: a.pre2, weight: w.ln2w, bias: w.ln2b, N: N, C: C, eps: eps, pool: pool)
        }
    }

    /// Classification: the mean cross-entropy of the batch against `labels` (one per sequence;
    /// nil computes only the logits, see `logits`).
    @discardableResult
    public func forward(_ b: BertBatch, labels: [Int]?) throws -> Float {
        guard case .classification(let K) = head else { throw LMError(.invalidArgument, "this model has a masked-LM head") }
        if let labels {
            guard labels.count == b.count else { throw LMError(.invalidArgument, "\(labels.count) labels for \(b.count) sequences") }
            for y in labels where y < 0 || y >= K { throw LMError(.invalidInput, "label \(y) is outside 0..<\(K)") }
        }
        try encoderForward(b)
        let S = b.count, C = config.hiddenSize, h = xs[config.numHiddenLayers]
        if config.meanPooling {
            for s in 0..<S {
                let o = headIn + s * C, n = seqs.length(s)
                o.initialize(repeating: 0, count: C)
                for r in seqs.offsets[s]..<seqs.offsets[s + 1] { for c in 0..<C { o[c] += h[r * C + c] } }
                let inv = 1 / Float(n)
                for c in 0..<C { o[c] *= inv }
            }
        } else {
            for s in 0..<S { (headPre + s * C).update(from: h + seqs.offsets[s] * C, count: C) }   // [CLS] rows
            matmulForward(out: headAct, inp: headPre, weight: poolW!, bias: poolB!, N: S, C: C, OC: C, layout: .outIn, pool: pool)
            for i in 0..<(S * C) { headIn[i] = VectorMath.tanh(headAct[i]) }
        }
        matmulForward(out: headLogits, inp: headIn, weight: clsW!, bias: clsB!, N: S, C: C, OC: K, layout: .outIn, pool: pool)
        guard let labels else { haveLoss = false; return .nan }
        targets = labels.map { Int32($0) }
        let probs = headLogits + S * K   // beside the logits (the buffer has room for N rows)
        targets.withUnsafeBufferPointer {
            crossEntropyForward(losses: headLosses, probs: probs, logits: headLogits, targets: $0.baseAddress!, N: S, V: K, pool: pool)
        }
        haveLoss = true
        var sum = 0.0
        for s in 0..<S { sum += Double(headLosses[s]) }
        return Float(sum / Double(S))
    }

    /// Classification logits (S, K) of the last forward.
    public var logits: [Float] { Array(UnsafeBufferPointer(start: headLogits, count: seqs.count * labelCount)) }

    /// Masked LM: `targets` has one entry per row, the original id at masked rows and −1
    /// elsewhere; returns the mean cross-entropy over the masked rows.
    @discardableResult
    public func forward(_ b: BertBatch, maskedTargets: [Int32]) throws -> Float {
        guard head == .maskedLM else { throw LMError(.invalidArgument, "this model has a classification head") }
        guard maskedTargets.count == b.rows else { throw LMError(.invalidArgument, "\(maskedTargets.count) targets for \(b.rows) tokens") }
        try encoderForward(b)
        let C = config.hiddenSize, V = config.vocabSize, h = xs[config.numHiddenLayers]
        maskedRows = maskedTargets.indices.filter { maskedTargets[$0] >= 0 }
        targets = maskedRows.map { maskedTargets[$0] }
        for t in targets where Int(t) >= V { throw LMError(.invalidInput, "target id \(t) is outside the vocabulary (\(V))") }
        let M = maskedRows.count
        haveLoss = true
        guard M > 0 else { return 0 }
        for (i, r) in maskedRows.enumerated() { (headIn + i * C).update(from: h + r * C, count: C) }
        matmulForward(out: headPre, inp: headIn, weight: mlmW!, bias: mlmB!, N: M, C: C, OC: C, layout: .outIn, pool: pool)
        geluForwardSaving(out: headAct, derivative: headPre, inp: headPre, n: M * C, kind: gelu, pool: pool)
        layerNormForward(out: headLN, mean: headMean, rstd: headRstd, inp: headAct, weight: mlmLNw!, bias: mlmLNb!,
                         N: M, C: C, eps: config.layerNormEps, pool: pool)
        matmulForward(out: headLogits, inp: headLN, weight: word, bias: mlmBias!, N: M, C: C, OC: V, layout: .outIn, pool: pool)
        targets.withUnsafeBufferPointer {
            crossEntropyForward(losses: headLosses, probs: headLogits, logits: headLogits, targets: $0.baseAddress!, N: M, V: V, pool: pool)
        }
        var sum = 0.0
        for i in 0..<M { sum += Double(headLosses[i]) }
        return Float(sum / Double(M))
    }

    /// Backward pass of the last forward with a loss: accumulates into `grads`; `lossScale`
    /// multiplies the gradient (1 / micro-batches for gradient accumulation).
    public func backward(lossScale: Float = 1) throws {
        guard haveLoss else { throw LMError(.invalidArgument, "backward needs a forward pass with labels or targets") }
        let N = seqs.rows, C = config.hiddenSize, S = seqs.count
        let gOut = gbuf
        gOut.initialize(repeating: 0, count: N * C)
        switch head {
        case .classification(let K):
            let probs = headLogits + S * K, dlogits = headLogits
            dlogits.initialize(repeating: 0, count: S * K)
            targets.withUnsafeBufferPointer {
                crossEntropyBackward(dlogits: dlogits, probs: probs, targets: $0.baseAddress!, dloss: lossScale / Float(S), N: S, V: K, pool: pool)
            }
            matmulBackward(dinp: dheadIn, dweight: dclsW, dbias: dclsB, dout: dlogits, inp: headIn, weight: clsW!,
                           N: S, C: C, OC: K, layout: .outIn, overwriteInput: true, pool: pool)
            if config.meanPooling {
                for s in 0..<S {
                    let d = dheadIn + s * C, inv = 1 / Float(seqs.length(s))
                    for r in seqs.offsets[s]..<seqs.offsets[s + 1] { for c in 0..<C { gOut[r * C + c] = d[c] * inv } }
                }
            } else {
                for i in 0..<(S * C) { dheadAct[i] = dheadIn[i] * (1 - headIn[i] * headIn[i]) }   // tanh′
                matmulBackward(dinp: dheadPre, dweight: dpoolW, dbias: dpoolB, dout: dheadAct, inp: headPre, weight: poolW!,
                               N: S, C: C, OC: C, layout: .outIn, overwriteInput: true, pool: pool)
                for s in 0..<S { (gOut + seqs.offsets[s] * C).update(from: dheadPre + s * C, count: C) }
            }
        case .maskedLM:
            let M = maskedRows.count, V = config.vocabSize
            if M > 0 {
                let dloss = lossScale / Float(M), d = headLogits
                pool.parallelFor(M, minimumPerThread: 4) { rows in
                    for i in rows {
                        let row = d + i * V
                        for v in 0..<V { row[v] *= dloss }
                        row[Int(self.targets[i])] -= dloss
                    }
                }
                matmulBackward(dinp: dheadIn, dweight: dword, dbias: dmlmBias, dout: d, inp: headLN, weight: word,
                               N: M, C: C, OC: V, layout: .outIn, overwriteInput: true, pool: pool)
                dheadAct.initialize(repeating: 0, count: M * C)
                layerNormBackward(dinp: dheadAct, dweight: dmlmLNw, dbias: dmlmLNb, dout: dheadIn, inp: headAct, weight: mlmLNw!,
                                  mean: headMean, rstd: headRstd, N: M, C: C, pool: pool)
                geluBackwardSaved(dinp: dheadAct, derivative: headPre, dout: dheadAct, n: M * C, pool: pool)
                matmulBackward(dinp: dheadIn, dweight: dmlmW, dbias: dmlmB, dout: dheadAct, inp: headIn, weight: mlmW!,
                               N: M, C: C, OC: C, layout: .outIn, overwriteInput: true, pool: pool)
                for (i, r) in maskedRows.enumerated() { (gOut + r * C).update(from: dheadIn + i * C, count: C) }
            }
        }
        encoderBackward(gOut)
    }

    /// Backward through the blocks and the embeddings; `gOut` (N, C) holds the gradient of
    /// the final hidden states and is reused for every layer's input gradient.
    private func encoderBackward(_ gOut: UnsafeMutablePointer<Float>) {
        let N = seqs.rows, C = config.hiddenSize, F = config.intermediateSize
        let drop = training && dropout > 0
        /// Backward of out = LN(pre), pre = drop(branch) + residual: the residual's gradient is
        /// written to `residualGrad`; the returned buffer holds the branch's gradient.
        func postLNBackward(dout: UnsafePointer<Float>, pre: UnsafePointer<Float>, lnw: UnsafePointer<Float>,
                            dlnw: UnsafeMutablePointer<Float>, dlnb: UnsafeMutablePointer<Float>,
                            mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, mask: UnsafePointer<UInt8>,
                            residualGrad: UnsafeMutablePointer<Float>) -> UnsafePointer<Float> {
            dpre.initialize(repeating: 0, count: N * C)
            layerNormBackward(dinp: dpre, dweight: dlnw, dbias: dlnb, dout: dout, inp: pre, weight: lnw,
                              mean: mean, rstd: rstd, N: N, C: C, pool: pool)
            residualGrad.update(from: dpre, count: N * C)
            guard drop else { return UnsafePointer(dpre) }
            dbranch.initialize(repeating: 0, count: N * C)
            dropoutBackward(dinp: dbranch, dout: dpre, mask: mask, n: N * C, p: dropout, pool: pool)
            return UnsafePointer(dbranch)
        }
        for l in stride(from: config.numHiddenLayers - 1, through: 0, by: -1) {
            let w = p[l], d = g[l], a = acts[l], x = xs[l]
            // x2 = LN2(pre2), pre2 = drop(out2) + x1
            var dbr = postLNBackward(dout: gOut, pre: a.pre2, lnw: w.ln2w, dlnw: d.ln2w, dlnb: d.ln2b,
                                     mean: a.mean2, rstd: a.rstd2, mask: a.drop2, residualGrad: dx1)
            matmulBackward(dinp: dinter, dweight: d.out2W, dbias: d.out2B, dout: dbr, inp: a.interGelu, weight: w.out2W,
                           N: N, C: F, OC: C, layout: .outIn, overwriteInput: true, pool: pool)
            geluBackwardSaved(dinp: dinter, derivative: a.inter, dout: dinter, n: N * F, pool: pool)
            matmulBackward(dinp: dx1, dweight: d.interW, dbias: d.interB, dout: dinter, inp: a.x1, weight: w.interW,
                           N: N, C: C, OC: F, layout: .outIn, pool: pool)
            // x1 = LN1(pre1), pre1 = drop(ctx·Woᵀ + b) + x
            dbr = postLNBackward(dout: dx1, pre: a.pre1, lnw: w.ln1w, dlnw: d.ln1w, dlnb: d.ln1b,
                                 mean: a.mean1, rstd: a.rstd1, mask: a.drop1, residualGrad: gOut)
            matmulBackward(dinp: dctx, dweight: d.outW, dbias: d.outB, dout: dbr, inp: a.ctx, weight: w.outW,
                           N: N, C: C, OC: C, layout: .outIn, overwriteInput: true, pool: pool)
            dqkv.initialize(repeating: 0, count: N * 3 * C)
            packedAttentionBackward(dqkv: dqkv, dout: dctx, qkv: a.qkv, probs: a.probs, scratch: attScratch, seqs: seqs, C: C, pool: pool)
            matmulBackward(dinp: gOut, dweight: d.qkvW, dbias: d.qkvB, dout: dqkv, inp: x, weight: w.qkvW,
                           N: N, C: C, OC: 3 * C, layout: .outIn, pool: pool)
        }
        var demb = UnsafePointer(gOut)
        if drop {
            dbranch.initialize(repeating: 0, count: N * C)
            dropoutBackward(dinp: dbranch, dout: gOut, mask: embDrop, n: N * C, p: dropout, pool: pool)
            demb = UnsafePointer(dbranch)
        }
        dpre.initialize(repeating: 0, count: N * C)
        layerNormBackward(dinp: dpre, dweight: dembLNw, dbias: dembLNb, dout: demb, inp: embSum, weight: embLNw,
                          mean: embMean, rstd: embRstd, N: N, C: C, pool: pool)
        ids.withUnsafeBufferPointer { i in positions.withUnsafeBufferPointer { ps in types.withUnsafeBufferPointer { t in
            embeddingSumBackward(dtables: [dword, dpos, dtype],
                                 lookups: [EmbeddingLookup(table: word, ids: i.baseAddress!), EmbeddingLookup(table: pos, ids: ps.baseAddress!),
                                           EmbeddingLookup(table: type, ids: t.baseAddress!)],
                                 dout: dpre, N: N, C: C, pool: pool)
        } } }
    }

    /// The current weights as an inference model (zero-copy views, except the stacked q/k/v).
    public func inferenceModel(labels: [String]? = nil) throws -> BertModel {
        var c = config
        if let labels { c.id2label = Dictionary(uniqueKeysWithValues: labels.enumerated().map { (String($0.offset), $0.element) }) }
        let heads: BertModel.Heads
        switch head {
        case .classification(let k): heads = BertModel.Heads(pooler: !config.meanPooling, classifierLabels: k)
        case .maskedLM: heads = BertModel.Heads(maskedLM: true)
        }
        return try BertModel(config: c, source: SlabWeightSource(slab: params), heads: heads, pool: pool)
    }

    /// Writes the model as a Hugging Face folder: config.json and model.safetensors (atomically).
    public func export(to dir: String, labels: [String]? = nil) throws {
        try FileIO.makeDirectory(dir)
        try SafeTensorsWriter.write(params.tensors, to: dir + "/model.safetensors")
        let arch = head == .maskedLM ? "BertForMaskedLM" : "BertForSequenceClassification"
        let json = try config.huggingFaceJSON(architecture: arch, labels: head == .maskedLM ? nil : labels)
        try FileIO.writeString(String(decoding: json, as: UTF8.self) + "\n", to: dir + "/config.json")
    }
}
