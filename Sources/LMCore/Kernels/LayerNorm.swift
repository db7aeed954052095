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
        // Each thread owns a block of columns and sweeps every row: no reduction across threads.
        pool.parallelFor(C, grain: 16, minimumPerThread: 32) { cols in
            let c0 = cols.lowerBound, w = cols.count
            let db = dbias.map { UnsafeMutableRawPointer($0 + c0) }
            let dw = dweight.map { UnsafeMutableRawPointer($0 + c0) }
            for n in 0..<N {
                let x = UnsafeRawPointer(inp + n * C + c0), d = UnsafeRawPointer(dout + n * C + c0)
                let m = SIMD8<Float>(repeating: mean[n]), rs = SIMD8<Float>(repeating: rstd[n])
                var j = 0
                while j &+ 8 <= w {
                    let o = j &* 4
                    let dv = d.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
                    if let db { db.storeBytes(of: db.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self) + dv, toByteOffset: o, as: SIMD8<Float>.self) }
                    if let dw {
                        let norm = (x.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self) - m) * rs
                        dw.storeBytes(of: dw.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self) + norm * dv, toByteOffset: o, as: SIMD8<Float>.self)
                    }
                    j &+= 8
                }
                while j < w {
                    let dj = dout[n * C + c0 + j]
                    dbias?[c0 + j] += dj
                    dweight?[c0 + j] += (inp[n * C + c0 + j] - mean[n]) * rstd[n] * dj
                    j &+= 1
                }
            }
        }
    }
    pool.parallelFor(N, minimumPerThread: 8) { rows in
        let wr = UnsafeRawPointer(weight)
        for n in rows {
            let x = inp + n * C, d = dout + n * C, dx = dinp + n * C
            let xr = UnsafeRawPointer(x), dr = UnsafeRawPointer(d), dxr = UnsafeMutableRawPointer(dx)
            let m = mean[n], rs = rstd[n]
            let mv = SIMD8<Float>(repeating: m), rsv = SIMD8<Float>(repeating: rs)
            var s1 = SIMD8<Float>(), s2 = SIMD8<Float>()
            var c = 0
            while c &+ 8 <= C {
                let o = c &* 4
                let dnorm = wr.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self) * dr.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
                s1 += dnorm
                s2 = s2.addingProduct(dnorm, (xr.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self) - mv) * rsv)
                c &+= 8
            }
            var dnormMean = VectorMath.horizontalSum(s1), dnormNormMean = VectorMath.horizontalSum(s2)
            while c < C {
                let dnorm = weight[c] * d[c]
                dnormMean += dnorm
                dnormNormMean += dnorm * (x[c] - m) * rs
                c &+= 1
            }
            dnormMean /= Float(C)
            dnormNormMean /= Float(C)
            let a = SIMD8<Float>(repeating: dnormMean), b = SIMD8<Float>(repeating: dnormNormMean)
            c = 0
            while c &+ 8 <= C {
                let o = c &* 4
                let norm = (xr.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self) - mv) * rsv
                let dnorm = wr.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self) * dr.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
                let g = (dnorm - a - norm * b) * rsv
                dxr.storeBytes(of: dxr.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self) + g, toByteOffset: o, as: SIMD8<Float>.self)
                c &+= 8
            }
            while c < C {
                let norm = (x[c] - m) * rs
                dx[c] += (weight[c] * d[c] - dnormMean - norm * dnormNormMean) * rs
                c &+= 1
            }
        }
    }
}
