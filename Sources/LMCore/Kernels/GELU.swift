import CKernels

/// Which GELU a model uses (Hugging Face `activation_function` / `hidden_act`).
public enum GELUKind: String, Sendable, Codable {
    /// 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) — GPT-2's `gelu_new`.
    case tanh
    /// 0.5·x·(1 + erf(x/√2)) — BERT's `gelu`.
    case erf
}

let geluTanhScale: Float = 0.797_884_56  // √(2/π)

/// out (n) = gelu(inp); `out` may equal `inp`. Parallel over `pool` for large n.
/// The loops are C (`lm_gelu_tanh`, `lm_gelu_erf`: they vectorise there, not in Swift) and
/// bit-identical to the scalar helpers below.
public func geluForward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, n: Int,
                        kind: GELUKind, pool: ThreadPool? = nil) {
    let body = { (r: Range<Int>) in
        switch kind {
        case .tanh: lm_gelu_tanh(out, inp, r.lowerBound, r.upperBound)
        case .erf: lm_gelu_erf(out, inp, r.lowerBound, r.upperBound)
        }
    }
    if let pool, n >= 16_384 {
        pool.parallelFor(n, grain: 64, body)
    } else {
        body(0..<n)
    }
}

/// Scalar twin of `geluForward` in Swift (the same operations; tests check the C loops
/// against it bit for bit).
public func geluForwardScalar(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, n: Int, kind: GELUKind) {
    switch kind {
    case .tanh:
        for i in 0..<n {
            let x = inp[i]
            let u = geluTanhScale * x.addingProduct(0.044_715 * x, x * x)
            out[i] = x / (1 + VectorMath.exp(-2 * u))  // 0.5·(1 + tanh(u)) = sigmoid(2u)
        }
    case .erf:
        for i in 0..<n {
            let x = inp[i]
            out[i] = 0.5 * x * (1 + VectorMath.erf(x * 0.707_106_78))
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// Reference twin of `geluForward`, with libm's tanh and erf in Double.
public func geluForwardRef(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, n: Int, kind: GELUKind) {
    for i in 0..<n {
        let x = Double(inp[i])
        switch kind {
        case .tanh: out[i] = Float(0.5 * x * (1 + Glibc.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))))
        case .erf: out[i] = Float(0.5 * x * (1 + Glibc.erf(x / 2.0.squareRoot())))
        }
    }
}

/// gelu(x) and gelu′(x) for the tanh form.
@inline(__always)
func geluTanhWithDerivative(_ x: Float) -> (value: Float, derivative: Float) {
    let u = geluTanhScale * x.addingProduct(0.044_715 * x, x * x)
    let t = VectorMath.tanh(u)
    let du = geluTanhScale * (1 + 3 * 0.044_715 * x * x)
    return (0.5 * x * (1 + t), 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du)
}

/// gelu(x) and gelu′(x) for the erf form: Φ(x) = ½(1 + erf(x/√2)) and gelu′ = Φ(x) + x·φ(x),
/// with the one exponential e = exp(−x²/2) serving both erf(|x|/√2) and φ(x) = e/√(2π).
@inline(__always)
func geluErfWithDerivative(_ x: Float) -> (value: Float, derivative: Float) {
    let e = VectorMath.exp(-0.5 * x * x)
    let erfAbs = VectorMath.erfOfMagnitude((x < 0 ? -x : x) * 0.707_106_78, expOfMinusSquare: e)
    let cdf = 0.5 * (1 + (x < 0 ? -erfAbs : erfAbs))
    return (x * cdf, cdf + x * e * 0.398_942_28)
}

/// Backward of `geluForward`: dinp (n) += gelu′(inp) · dout (or = with `overwrite`).
public func geluBackward(dinp: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, dout: UnsafePointer<Float>,
                         n: Int, kind: GELUKind, overwrite: Bool = false, pool: ThreadPool? = nil) {
    let keep: Float = overwrite ? 0 : 1
    let body = { (r: Range<Int>) in
        switch kind {
        case .tanh:
            for i in r { dinp[i] = keep * dinp[i] + geluTanhWithDerivative(inp[i]).derivative * dout[i] }
        case .erf:
            for i in r { dinp[i] = keep * dinp[i] + geluErfWithDerivative(inp[i]).derivative * dout[i] }
        }
    }
    if let pool, n >= 16_384 {
        pool.parallelFor(n, grain: 64, body)
    } else {
        body(0..<n)
    }
}

/// Training forward: out (n) = gelu(inp) and derivative (n) = gelu′(inp), sharing the one
/// exponential both need, so the backward pass is a single multiply (`geluBackwardSaved`).
/// `derivative` may equal `inp` (the pre-activation is not needed afterwards).
public func geluForwardSaving(out: UnsafeMutablePointer<Float>, derivative: UnsafeMutablePointer<Float>,
                              inp: UnsafePointer<Float>, n: Int, kind: GELUKind, pool: ThreadPool? = nil) {
    let body = { (r: Range<Int>) in
        lm_gelu_saving(out, derivative, inp, r.lowerBound, r.upperBound, kind == .erf ? 1 : 0)
    }
    if let pool, n >= 16_384 {
        pool.parallelFor(n, grain: 64, body)
    } else {
        body(0..<n)
    }
}

/// Scalar twin of `geluForwardSaving` in Swift (checked bit for bit against the C loop).
public func geluForwardSavingScalar(out: UnsafeMutablePointer<Float>, derivative: UnsafeMutablePointer<Float>,
                                    inp: UnsafePointer<Float>, n: Int, kind: GELUKind) {
    for i in 0..<n {
        let (v, d) = kind == .erf ? geluErfWithDerivative(inp[i]) : geluTanhWithDerivative(inp[i])
        out[i] = v
        derivative[i] = d
    }
}

/// Backward of `geluForwardSaving`: dinp (n) = derivative · dout.
public func geluBackwardSaved(dinp: UnsafeMutablePointer<Float>, derivative: UnsafePointer<Float>,
                              dout: UnsafePointer<Float>, n: Int, pool: ThreadPool? = nil) {
    let body = { (r: Range<Int>) in for i in r { dinp[i] = derivative[i] * dout[i] } }
    if let pool, n >= 65_536 { pool.parallelFor(n, grain: 64, body) } else { body(0..<n) }
}
