/// Which GELU a model uses (Hugging Face `activation_function` / `hidden_act`).
public enum GELUKind: String, Sendable, Codable {
    /// 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) — GPT-2's `gelu_new`.
    case tanh
    /// 0.5·x·(1 + erf(x/√2)) — BERT's `gelu`.
    case erf
}

let geluTanhScale: Float = 0.797_884_56  // √(2/π)

/// out (n) = gelu(inp); `out` may equal `inp`. Parallel over `pool` for large n.
public func geluForward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, n: Int,
                        kind: GELUKind, pool: ThreadPool? = nil) {
    let body = { (r: Range<Int>) in
        switch kind {
        case .tanh:
            for i in r {
                let x = inp[i]
                let u = geluTanhScale * x.addingProduct(0.044_715 * x, x * x)
                // 0.5·(1 + tanh(u)) = sigmoid(2u)
                out[i] = x / (1 + VectorMath.exp(-2 * u))
            }
        case .erf:
            for i in r {
                let x = inp[i]
                out[i] = 0.5 * x * (1 + VectorMath.erf(x * 0.707_106_78))
            }
        }
    }
    if let pool, n >= 16_384 {
        pool.parallelFor(n, grain: 64, body)
    } else {
        body(0..<n)
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

/// Backward of `geluForward`: dinp (n) += gelu′(inp) · dout (or = with `overwrite`).
public func geluBackward(dinp: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, dout: UnsafePointer<Float>,
                         n: Int, kind: GELUKind, overwrite: Bool = false, pool: ThreadPool? = nil) {
    let keep: Float = overwrite ? 0 : 1
    let body = { (r: Range<Int>) in
        switch kind {
        case .tanh:
            for i in r {
                let x = inp[i]
                let u = geluTanhScale * x.addingProduct(0.044_715 * x, x * x)
                let t = VectorMath.tanh(u)
                let du = geluTanhScale * (1 + 3 * 0.044_715 * x * x)
                let g = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du
                dinp[i] = keep * dinp[i] + g * dout[i]
            }
        case .erf:
            for i in r {
                let x = inp[i]
                let cdf = 0.5 * (1 + VectorMath.erf(x * 0.707_106_78))
                let pdf = VectorMath.exp(-0.5 * x * x) * 0.398_942_28  // 1/√(2π)
                dinp[i] = keep * dinp[i] + (cdf + x * pdf) * dout[i]
            }
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
        switch kind {
        case .tanh:
            for i in r {
                let x = inp[i]
                let u = geluTanhScale * x.addingProduct(0.044_715 * x, x * x)
                let t = VectorMath.tanh(u)
                let du = geluTanhScale * (1 + 3 * 0.044_715 * x * x)
                out[i] = 0.5 * x * (1 + t)
                derivative[i] = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du
            }
        case .erf:
            for i in r {
                let x = inp[i]
                // erf(x/√2) by Abramowitz & Stegun 7.1.26 with e = exp(−x²/2): its exp(−(x/√2)²) is e.
                let e = VectorMath.exp(-0.5 * x * x)
                let a = (x < 0 ? -x : x) * 0.707_106_78
                let t = 1 / Float(1).addingProduct(a, 0.327_591_1)
                var p: Float = 1.061_405_429
                p = Float(-1.453_152_027).addingProduct(p, t)
                p = Float(1.421_413_741).addingProduct(p, t)
                p = Float(-0.284_496_736).addingProduct(p, t)
                p = Float(0.254_829_592).addingProduct(p, t)
                let erfAbs = 1 - p * t * e
                let cdf = 0.5 * (1 + (x < 0 ? -erfAbs : erfAbs))
                out[i] = x * cdf
                derivative[i] = cdf + x * e * 0.398_942_28  // + x·φ(x), φ = e/√(2π)
            }
        }
    }
    if let pool, n >= 16_384 {
        pool.parallelFor(n, grain: 64, body)
    } else {
        body(0..<n)
    }
}

/// Backward of `geluForwardSaving`: dinp (n) = derivative · dout.
public func geluBackwardSaved(dinp: UnsafeMutablePointer<Float>, derivative: UnsafePointer<Float>,
                              dout: UnsafePointer<Float>, n: Int, pool: ThreadPool? = nil) {
    let body = { (r: Range<Int>) in for i in r { dinp[i] = derivative[i] * dout[i] } }
    if let pool, n >= 65_536 { pool.parallelFor(n, grain: 64, body) } else { body(0..<n) }
}
