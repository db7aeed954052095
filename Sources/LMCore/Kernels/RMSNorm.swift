// Legend: N rows, C channels.

/// out (N, C) = inp · 1/√(mean(inp²) + eps) · weight, row by row (RMSNorm: Gemma, Llama); `out`
/// may equal `inp`. The mean of squares is summed in Double (as ggml does), the rest in Float.
/// With `add`, out = add + that (a fused residual add; `add` may equal `out`). Rows are
/// independent, so the split across threads never changes a result.
public func rmsNormForward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                           add: UnsafePointer<Float>? = nil, N: Int, C: Int, eps: Float, pool: ThreadPool? = nil) {
    let body = { (rows: Range<Int>) in
        for n in rows {
            let x = inp + n * C, o = out + n * C
            var s0 = SIMD4<Double>(), s1 = SIMD4<Double>()
            var i = 0
            while i &+ 8 <= C {
                let a = SIMD4<Double>(Double(x[i] * x[i]), Double(x[i &+ 1] * x[i &+ 1]),
                                      Double(x[i &+ 2] * x[i &+ 2]), Double(x[i &+ 3] * x[i &+ 3]))
                let b = SIMD4<Double>(Double(x[i &+ 4] * x[i &+ 4]), Double(x[i &+ 5] * x[i &+ 5]),
                                      Double(x[i &+ 6] * x[i &+ 6]), Double(x[i &+ 7] * x[i &+ 7]))
                s0 += a
                s1 += b
                i &+= 8
            }
            var sum = (s0 + s1).sum()
            while i < C { sum += Double(x[i] * x[i]); i &+= 1 }
            let mean = Float(sum / Double(C))
            let scale = 1 / (mean + eps).squareRoot()
            if let add {
                let a = add + n * C
                for c in 0..<C { o[c] = a[c] + x[c] * scale * weight[c] }
            } else {
                for c in 0..<C { o[c] = x[c] * scale * weight[c] }
            }
        }
    }
    if let pool, N * C >= 65_536 {
        pool.parallelFor(N, minimumPerThread: 4, body)
    } else {
        body(0..<N)
    }
}

/// Reference twin of `rmsNormForward`, in Double throughout.
public func rmsNormForwardRef(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                              add: UnsafePointer<Float>? = nil, N: Int, C: Int, eps: Float) {
    for n in 0..<N {
        var s = 0.0
        for c in 0..<C { s += Double(inp[n * C + c]) * Double(inp[n * C + c]) }
        let scale = 1 / (s / Double(C) + Double(eps)).squareRoot()
        for c in 0..<C {
            let y = Double(inp[n * C + c]) * scale * Double(weight[c])
            out[n * C + c] = Float(y + Double(add?[n * C + c] ?? 0))
        }
    }
}
