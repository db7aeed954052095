/// LayerNorm over the last dimension, with optional saved statistics for the backward pass.
/// out (N, C) = (inp − mean) · rstd · weight + bias;  mean, rstd (N) when given.
/// Rows are split across `pool` when there are many.
public func layerNormForward(out: UnsafeMutablePointer<Float>,
                             mean: UnsafeMutablePointer<Float>?, rstd: UnsafeMutablePointer<Float>?,
                             inp: UnsafePointer<Float>,
                             weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                             N: Int, C: Int, eps: Float, pool: ThreadPool? = nil) {
    if let pool, N >= 16 {
        pool.parallelFor(N) { rows in
            layerNormRows(out: out, mean: mean, rstd: rstd, inp: inp, weight: weight, bias: bias,
                          rows: rows, C: C, eps: eps)
        }
    } else {
        layerNormRows(out: out, mean: mean, rstd: rstd, inp: inp, weight: weight, bias: bias,
                      rows: 0..<N, C: C, eps: eps)
    }
}

@inline(__always)
func layerNormRows(out: UnsafeMutablePointer<Float>,
                   mean: UnsafeMutablePointer<Float>?, rstd: UnsafeMutablePointer<Float>?,
                   inp: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                   rows: Range<Int>, C: Int, eps: Float) {
    for n in rows {
        let x = inp + n * C
        let o = out + n * C
        var s0 = SIMD8<Float>()
        var i = 0
        let rx = UnsafeRawPointer(x)
        while i + 8 <= C {
            s0 += rx.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            i += 8
        }
        var sum = VectorMath.horizontalSum(s0)
        while i < C { sum += x[i]; i += 1 }
        let m = sum / Float(C)
        var v0 = SIMD8<Float>()
        i = 0
        let mv = SIMD8<Float>(repeating: m)
        while i + 8 <= C {
            let d = rx.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self) - mv
            v0 = v0.addingProduct(d, d)
            i += 8
        }
        var variance = VectorMath.horizontalSum(v0)
        while i < C { let d = x[i] - m; variance += d * d; i += 1 }
        variance /= Float(C)
        let rs = 1 / (variance + eps).squareRoot()
        if let bias {
            for c in 0..<C { o[c] = ((x[c] - m) * rs) * weight[c] + bias[c] }
        } else {
            for c in 0..<C { o[c] = ((x[c] - m) * rs) * weight[c] }
        }
        mean?[n] = m
        rstd?[n] = rs
    }
}

/// Reference twin of `layerNormForward`: two passes in Double.
public func layerNormForwardRef(out: UnsafeMutablePointer<Float>,
                                inp: UnsafePointer<Float>,
                                weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                                N: Int, C: Int, eps: Float) {
    for n in 0..<N {
        let x = inp + n * C
        var m = 0.0
        for c in 0..<C { m += Double(x[c]) }
        m /= Double(C)
        var v = 0.0
        for c in 0..<C { v += (Double(x[c]) - m) * (Double(x[c]) - m) }
        v /= Double(C)
        let rs = 1 / (v + Double(eps)).squareRoot()
        for c in 0..<C {
            out[n * C + c] = Float((Double(x[c]) - m) * rs * Double(weight[c]) + Double(bias?[c] ?? 0))
        }
    }
}

/// Backward of `layerNormForward` (accumulates into dinp, dweight, dbias), using the saved
/// mean and rstd. Parameter gradients are split by column and input gradients by row, so the
/// result does not depend on the thread count.
public func layerNormBackward(dinp: UnsafeMutablePointer<Float>, dweight: UnsafeMutablePointer<Float>?,
                              dbias: UnsafeMutablePointer<Float>?,
                              dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                              mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, N: Int, C: Int,
                              pool: ThreadPool) {
    if dweight != nil || dbias != nil {
        pool.parallelFor(C, grain: 16, minimumPerThread: 32) { cols in
            for n in 0..<N {
                let x = inp + n * C, d = dout + n * C
                let m = mean[n], rs = rstd[n]
                for c in cols {
                    dbias?[c] += d[c]
                    dweight?[c] += (x[c] - m) * rs * d[c]
                }
            }
        }
    }
    pool.parallelFor(N, minimumPerThread: 8) { rows in
        for n in rows {
            let x = inp + n * C, d = dout + n * C, dx = dinp + n * C
            let m = mean[n], rs = rstd[n]
            var dnormMean: Float = 0, dnormNormMean: Float = 0
            for c in 0..<C {
                let dnorm = weight[c] * d[c]
                dnormMean += dnorm
                dnormNormMean += dnorm * (x[c] - m) * rs
            }
            dnormMean /= Float(C)
            dnormNormMean /= Float(C)
            for c in 0..<C {
                let norm = (x[c] - m) * rs
                dx[c] += (weight[c] * d[c] - dnormMean - norm * dnormNormMean) * rs
            }
        }
    }
}
