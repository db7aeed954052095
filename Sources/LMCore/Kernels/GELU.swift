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
