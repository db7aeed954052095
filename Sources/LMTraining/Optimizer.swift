import CKernels
import LMCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Optimizers over the flat parameter slab. One update is one elementwise loop over the slab
// (llm.c's AdamW), split across the pool by element range, so results never depend on the
// thread count. The update rules follow PyTorch's single-tensor implementations
// (torch/optim/{adamw,adam,sgd,adagrad,rmsprop}.py) operation by operation, in Float, with
// bias corrections in Double as Python computes them.

/// Which update rule an `Optimizer` applies.
public enum OptimizerKind: String, Codable, Sendable, CaseIterable {
    /// Adam with decoupled weight decay (`torch.optim.AdamW`; Loshchilov & Hutter).
    case adamw
    /// Adam with L2 weight decay added to the gradient (`torch.optim.Adam`).
    case adam
    /// Stochastic gradient descent with heavy-ball momentum (`torch.optim.SGD`).
    case sgd
    /// AdaGrad (`torch.optim.Adagrad`, lr_decay 0, initial accumulator 0).
    case adagrad
    /// RMSprop (`torch.optim.RMSprop`, not centered, no momentum).
    case rmsprop
}

/// Optimizer hyper-parameters, with PyTorch's meaning for each. The learning rate is not
/// here: it comes from a `LearningRateSchedule` at every step.
///
/// ```swift
/// var config = OptimizerConfig()          // AdamW, β = (0.9, 0.999), ε = 1e-8
/// config.weightDecay = 0.1
/// try config.validate()
/// ```
///
/// PyTorch's own defaults differ for some kinds; set them explicitly to reproduce a PyTorch
/// run: `weight_decay` is 0.01 for `torch.optim.AdamW` (0 here), `eps` is 1e-10 for Adagrad
/// (1e-8 here; `eps` is used exactly as given), and `momentum` is 0 for SGD (0.9 here).
public struct OptimizerConfig: Codable, Sendable, Equatable {
    /// The update rule.
    public var kind: OptimizerKind = .adamw
    /// Adam(W): decay rate of the first moment (`betas[0]`), in [0, 1).
    public var beta1: Float = 0.9
    /// Adam(W): decay rate of the second moment (`betas[1]`), in [0, 1).
    public var beta2: Float = 0.999
    /// Added to the denominator: Adam(W) `sqrt(v̂) + eps`, Adagrad `sqrt(sum) + eps`,
    /// RMSprop `sqrt(square_avg) + eps`. Unused by SGD. Must be ≥ 0.
    public var eps: Float = 1e-8
    /// Weight decay, applied only to groups with `decay == true`. AdamW: decoupled,
    /// `p -= lr·wd·p` before the Adam update. Adam, SGD, Adagrad, RMSprop: L2, `g += wd·p`
    /// (PyTorch's `weight_decay` for those optimizers). Must be ≥ 0.
    public var weightDecay: Float = 0.0
    /// SGD momentum: `buf = momentum·buf + g` (the first step sets `buf = g`), `p -= lr·buf`;
    /// dampening 0, no Nesterov. 0 is plain SGD. In [0, 1]. Unused by the other kinds.
    public var momentum: Float = 0.9
    /// RMSprop smoothing constant: `v = alpha·v + (1 − alpha)·g²`. In [0, 1].
    public var alpha: Float = 0.99

    public init() {}

    enum CodingKeys: String, CodingKey {
        case kind, beta1, beta2, eps, momentum, alpha
        case weightDecay = "weight_decay"
    }

    /// Decodes a config; absent keys keep their defaults.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        kind = try c.decodeIfPresent(OptimizerKind.self, forKey: .kind) ?? kind
        beta1 = try c.decodeIfPresent(Float.self, forKey: .beta1) ?? beta1
        beta2 = try c.decodeIfPresent(Float.self, forKey: .beta2) ?? beta2
        eps = try c.decodeIfPresent(Float.self, forKey: .eps) ?? eps
        weightDecay = try c.decodeIfPresent(Float.self, forKey: .weightDecay) ?? weightDecay
        momentum = try c.decodeIfPresent(Float.self, forKey: .momentum) ?? momentum
        alpha = try c.decodeIfPresent(Float.self, forKey: .alpha) ?? alpha
    }

    /// Throws `LMError(.invalidArgument)` naming the first value out of range.
    public func validate() throws {
        func check(_ ok: Bool, _ name: String, _ value: Float, _ range: String) throws {
            guard ok else {
                throw LMError(.invalidArgument, "optimizer \(name) is \(value); it must be in \(range)")
            }
        }
        // `x >= 0` is false for NaN, so every check below also rejects NaN.
        try check(beta1 >= 0 && beta1 < 1, "beta1", beta1, "[0, 1)")
        try check(beta2 >= 0 && beta2 < 1, "beta2", beta2, "[0, 1)")
        try check(eps >= 0 && eps.isFinite, "eps", eps, "[0, ∞)")
        try check(weightDecay >= 0 && weightDecay.isFinite, "weight decay", weightDecay, "[0, ∞)")
        try check(momentum >= 0 && momentum <= 1, "momentum", momentum, "[0, 1]")
        try check(alpha >= 0 && alpha <= 1, "alpha", alpha, "[0, 1]")
    }
}

/// A contiguous range of the parameter slab and how the optimizer treats it.
///
/// ```swift
/// // nanoGPT's rule: decay 2-D weights, not biases or LayerNorm parameters.
/// var groups: [ParameterGroup] = []
/// var offset = 0
/// for (name, shape) in slab.layout {
///     let n = shape.reduce(1, *)
///     groups.append(ParameterGroup(range: offset..<offset + n, decay: shape.count >= 2,
///                                  trainable: !frozen.contains(name)))
///     offset += n
/// }
/// ```
public struct ParameterGroup: Sendable, Equatable {
    /// Element offsets in the slab.
    public var range: Range<Int>
    /// Whether weight decay applies (2-D weights) or not (biases, norms).
    public var decay: Bool
    /// false = frozen: never updated and its optimizer state stays untouched.
    public var trainable: Bool

    public init(range: Range<Int>, decay: Bool, trainable: Bool = true) {
        self.range = range
        self.decay = decay
        self.trainable = trainable
    }
}

/// Updates a parameter slab from a gradient slab of the same layout, keeping the moment
/// buffers (one or two floats per parameter) itself.
///
/// ```swift
/// let optimizer = try Optimizer(config: config, parameterCount: slab.count, groups: groups)
/// for step in 0..<steps {
///     // ... forward, zero grads, backward into `grads` ...
///     let norm = clipGradientNorm(grads.storage.base, count: grads.count, maxNorm: 1, pool: pool)
///     optimizer.step(params: slab.storage.base, grads: grads.storage.base,
///                    lr: schedule.learningRate(at: step), pool: pool)
/// }
/// ```
///
/// Every element of `0..<parameterCount` must belong to exactly one group. The step count is
/// global: bias corrections use `t = stepCount` after the increment, also for groups that
/// were frozen for a while.
public final class Optimizer {
    public let config: OptimizerConfig
    public let parameterCount: Int
    public let groups: [ParameterGroup]
    /// Updates applied so far (PyTorch's `state['step']`); 0 before the first step.
    public private(set) var stepCount: Int = 0

    /// Trainable groups sorted by offset: the only ranges `step` touches.
    private let active: [ParameterGroup]
    /// Moment buffers, (parameterCount) each, named as PyTorch's state dict names them.
    private let state: [(name: String, tensor: Tensor)]
    /// β1, β2, weight decay and α as the decimal doubles they were written as (0.9, not
    /// Float(0.9)), so bias corrections match Python's arithmetic.
    private let beta1D: Double, beta2D: Double, weightDecayD: Double, alphaD: Double

    /// Names of the moment buffers `kind` keeps, in `stateTensors` order.
    static func stateNames(_ config: OptimizerConfig) -> [String] {
        switch config.kind {
        case .adamw, .adam: return ["exp_avg", "exp_avg_sq"]
        case .sgd: return config.momentum == 0 ? [] : ["momentum_buffer"]
        case .adagrad: return ["sum"]
        case .rmsprop: return ["square_avg"]
        }
    }

    /// Validates `config` and the groups (in bounds, no overlap, no gap) and allocates the
    /// zeroed moment buffers.
    public init(config: OptimizerConfig, parameterCount: Int, groups: [ParameterGroup]) throws {
        try config.validate()
        guard parameterCount >= 0 else {
            throw LMError(.invalidArgument, "optimizer parameter count is \(parameterCount); it must be ≥ 0")
        }
        let sorted = groups.filter { !$0.range.isEmpty }.sorted { $0.range.lowerBound < $1.range.lowerBound }
        var covered = 0
        for g in sorted {
            guard g.range.lowerBound >= 0, g.range.upperBound <= parameterCount else {
                throw LMError(.invalidArgument,
                              "parameter group \(g.range) lies outside the slab 0..<\(parameterCount); build groups from the slab layout")
            }
            guard g.range.lowerBound == covered else {
                let what = g.range.lowerBound < covered ? "overlaps the previous group" : "leaves \(covered)..<\(g.range.lowerBound) in no group"
                throw LMError(.invalidArgument,
                              "parameter group \(g.range) \(what); give every parameter exactly one group (trainable: false to freeze it)")
            }
            covered = g.range.upperBound
        }
        guard covered == parameterCount else {
            throw LMError(.invalidArgument,
                          "parameters \(covered)..<\(parameterCount) are in no group; give every parameter exactly one group (trainable: false to freeze it)")
        }
        self.config = config
        self.parameterCount = parameterCount
        self.groups = groups
        self.active = sorted.filter { $0.trainable }
        self.state = Optimizer.stateNames(config).map { ($0, Tensor(zeros: [parameterCount])) }
        func decimal(_ x: Float) -> Double { Double(String(describing: x)) ?? Double(x) }
        beta1D = decimal(config.beta1)
        beta2D = decimal(config.beta2)
        weightDecayD = decimal(config.weightDecay)
        alphaD = decimal(config.alpha)
    }

    /// One update of `params` (parameterCount) from `grads` (parameterCount) at learning
    /// rate `lr`. Elementwise, split across `pool` by element range: the result does not
    /// depend on the thread count. Frozen groups are not read or written.
    public func step(params: UnsafeMutablePointer<Float>, grads: UnsafePointer<Float>, lr: Float, pool: ThreadPool) {
        stepCount += 1
        let t = Double(stepCount)
        let c = config
        let kind = c.kind
        let s0 = state.first?.tensor.data
        let s1 = state.count > 1 ? state[1].tensor.data : nil
        // Scalars as PyTorch forms them: Python doubles, rounded to Float where they meet a tensor.
        let bc1 = 1 - pow(beta1D, t)
        let bc2Sqrt = Float((1 - pow(beta2D, t)).squareRoot())
        let stepSize = Float(Double(lr) / bc1)
        let decoupled = Float(1 - Double(lr) * weightDecayD)
        let oneMinusBeta1 = Float(1 - beta1D)
        let oneMinusBeta2 = Float(1 - beta2D)
        let oneMinusAlpha = Float(1 - alphaD)
        let firstStep = stepCount == 1
        let groups = active

        pool.parallelFor(parameterCount, grain: 64, minimumPerThread: 16_384) { chunk in
            for g in groups {
                let lo = max(g.range.lowerBound, chunk.lowerBound)
                let hi = min(g.range.upperBound, chunk.upperBound)
                if lo >= hi { continue }
                let wd: Float = g.decay ? c.weightDecay : 0
                switch kind {
                case .adamw:
                    guard let m = s0, let v = s1 else { return }
                    adamUpdate(p: params, g: grads, m: m, v: v, lo: lo, hi: hi, l2: 0,
                               decoupled: wd == 0 ? 1 : decoupled, w1: oneMinusBeta1, beta2: c.beta2,
                               w2: oneMinusBeta2, bc2Sqrt: bc2Sqrt, stepSize: stepSize, eps: c.eps)
                case .adam:
                    guard let m = s0, let v = s1 else { return }
                    adamUpdate(p: params, g: grads, m: m, v: v, lo: lo, hi: hi, l2: wd,
                               decoupled: 1, w1: oneMinusBeta1, beta2: c.beta2,
                               w2: oneMinusBeta2, bc2Sqrt: bc2Sqrt, stepSize: stepSize, eps: c.eps)
                case .sgd:
                    sgdUpdate(p: params, g: grads, buf: s0, lo: lo, hi: hi, l2: wd, momentum: c.momentum,
                              first: firstStep, lr: lr)
                case .adagrad:
                    guard let sum = s0 else { return }
                    lm_adagrad_update(params, grads, sum, lo, hi, wd, lr, c.eps)
                case .rmsprop:
                    guard let v = s0 else { return }
                    lm_rmsprop_update(params, grads, v, lo, hi, wd, c.alpha, oneMinusAlpha, lr, c.eps)
                }
            }
        }
    }

    /// The moment buffers, named as in PyTorch's optimizer state dict: `exp_avg`, `exp_avg_sq`
    /// (Adam, AdamW), `momentum_buffer` (SGD with momentum > 0; none for plain SGD), `sum`
    /// (Adagrad), `square_avg` (RMSprop); each of shape [parameterCount]. These are live
    /// views of the optimizer's own buffers: write them out before the next `step`.
    public func stateTensors() -> [(String, Tensor)] {
        state.map { ($0.name, $0.tensor) }
    }

    /// Restores the moments and step count saved from `stateTensors`. Throws
    /// `LMError(.corruptFile)` when the names differ from this optimizer's (another kind) or a
    /// tensor's size is not `parameterCount` (another model), leaving the state unchanged.
    public func loadState(_ tensors: [String: Tensor], stepCount: Int) throws {
        let expected = state.map(\.name)
        guard Set(tensors.keys) == Set(expected) else {
            throw LMError(.corruptFile,
                          "optimizer state has \(tensors.keys.sorted()) but \(config.kind.rawValue) keeps \(expected); resume with the optimizer the checkpoint was written with, or start a new run")
        }
        for name in expected {
            guard let t = tensors[name], t.count == parameterCount else {
                throw LMError(.corruptFile,
                              "optimizer state '\(name)' has \(tensors[name]?.count ?? 0) values but the model has \(parameterCount) parameters; the checkpoint is from a different architecture")
            }
        }
        guard stepCount >= 0 else {
            throw LMError(.corruptFile, "optimizer step count is \(stepCount); it must be ≥ 0")
        }
        for (name, dst) in state {
            if let src = tensors[name], parameterCount > 0 { dst.data.update(from: src.data, count: parameterCount) }
        }
        self.stepCount = stepCount
    }
}

/// Adam(W) on [lo, hi), PyTorch's order of operations:
/// p *= 1 − lr·wd (AdamW);  g += wd·p (Adam);  m = lerp(m, g, 1 − β1);  v = v·β2 + (1 − β2)·g·g;
/// p += −stepSize · m / (√v / √(1 − β2ᵗ) + eps), stepSize = lr / (1 − β1ᵗ).
@inline(__always)
private func adamUpdate(p: UnsafeMutablePointer<Float>, g: UnsafePointer<Float>,
                        m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>,
                        lo: Int, hi: Int, l2: Float, decoupled: Float, w1: Float, beta2: Float,
                        w2: Float, bc2Sqrt: Float, stepSize: Float, eps: Float) {
    // The loop (documented in ckernels.h) is C: Swift's sqrt does not vectorise on Linux.
    lm_adam_update(p, g, m, v, lo, hi, l2, decoupled, w1, beta2, w2, bc2Sqrt, stepSize, eps)
}

/// SGD on [lo, hi): g += wd·p;  buf = g (first step) or momentum·buf + g;  p += −lr·buf.
@inline(__always)
private func sgdUpdate(p: UnsafeMutablePointer<Float>, g: UnsafePointer<Float>, buf: UnsafeMutablePointer<Float>?,
                       lo: Int, hi: Int, l2: Float, momentum: Float, first: Bool, lr: Float) {
    for i in lo..<hi {
        var d = g[i]
        if l2 != 0 { d = d + l2 * p[i] }
        if let buf {
            d = first ? d : buf[i] * momentum + d
            buf[i] = d
        }
        p[i] = p[i] + (-lr) * d
    }
}

/// The global L2 norm of `grads` (count), summed in Double over 64 fixed blocks whose
/// partial sums are added in order: the same value for any thread count.
///
/// ```swift
/// let norm = gradientNorm(grads.storage.base, count: grads.count, pool: Threads.shared)
/// ```
public func gradientNorm(_ grads: UnsafePointer<Float>, count: Int, pool: ThreadPool) -> Float {
    if count <= 0 { return 0 }
    let blocks = 64
    return withUnsafeTemporaryAllocation(of: Double.self, capacity: blocks) { partial -> Float in
        let sums = partial.baseAddress!
        pool.parallelFor(blocks, minimumPerThread: count >= 1 << 16 ? 1 : blocks) { range in
            for block in range {
                let r = ThreadPool.chunk(count, parts: blocks, index: block)
                sums[block] = sumOfSquares(grads + r.lowerBound, r.count)
            }
        }
        var total = 0.0
        for block in 0..<blocks { total += sums[block] }
        return Float(total.squareRoot())
    }
}

/// Σ x² in Double with four interleaved accumulators (a fixed order for a given n).
@inline(__always)
private func sumOfSquares(_ x: UnsafePointer<Float>, _ n: Int) -> Double {
    var a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0
    var i = 0
    while i + 4 <= n {
        let x0 = Double(x[i]), x1 = Double(x[i + 1]), x2 = Double(x[i + 2]), x3 = Double(x[i + 3])
        a0 += x0 * x0; a1 += x1 * x1; a2 += x2 * x2; a3 += x3 * x3
        i += 4
    }
    while i < n { let xi = Double(x[i]); a0 += xi * xi; i += 1 }
    return (a0 + a1) + (a2 + a3)
}

/// Global-norm gradient clipping, as `torch.nn.utils.clip_grad_norm_`: returns the norm
/// before clipping and multiplies every gradient by `min(1, maxNorm / (norm + 1e-6))`
/// (so gradients change only when `norm + 1e-6 > maxNorm`). A NaN or infinite norm is
/// returned as is and the gradients are left alone: check it and stop.
///
/// ```swift
/// let norm = clipGradientNorm(grads.storage.base, count: grads.count, maxNorm: 1, pool: pool)
/// guard norm.isFinite else { throw LMError(.invalidInput, "gradient norm is \(norm) ...") }
/// ```
@discardableResult
public func clipGradientNorm(_ grads: UnsafeMutablePointer<Float>, count: Int, maxNorm: Float, pool: ThreadPool) -> Float {
    let norm = gradientNorm(grads, count: count, pool: pool)
    guard norm.isFinite else { return norm }
    let coef = Float(Double(maxNorm) / (Double(norm) + 1e-6))
    if coef < 1 {
        pool.parallelFor(count, grain: 64, minimumPerThread: 16_384) { r in
            for i in r { grads[i] *= coef }
        }
    }
    return norm
}
