/// Scalar math written so that loops calling it auto-vectorise (AVX2 + FMA with the package's
/// `-target-cpu`): branch-free selects, bit tricks instead of float→int conversions.
/// Swift's generic SIMD comparisons and conversions scalarise on Linux, so element-wise
/// kernels are plain loops over these helpers; reductions use `SIMD8` with `addingProduct`.
public enum VectorMath {
    /// e^x with a relative error below 2e-7 over the float range; -inf gives 0.
    /// (Cody–Waite range reduction and a degree-6 polynomial, as in Cephes `expf`.)
    @inline(__always)
    public static func exp(_ x0: Float) -> Float {
        var x = x0 < -87.3 ? -87.3 : x0
        x = x > 88.37 ? 88.37 : x
        let shifted = Float(12_582_912.0).addingProduct(x, 1.442_695_04)
        let n = shifted - 12_582_912.0
        var r = x.addingProduct(n, -0.693_359_375)
        r = r.addingProduct(n, 2.121_944_4e-4)
        var p: Float = 1.987_569_15e-4
        p = Float(1.398_199_95e-3).addingProduct(p, r)
        p = Float(8.333_451_9e-3).addingProduct(p, r)
        p = Float(4.166_579_59e-2).addingProduct(p, r)
        p = Float(1.666_666_55e-1).addingProduct(p, r)
        p = Float(5.000_000_12e-1).addingProduct(p, r)
        let y = (r + 1).addingProduct(p, r * r)
        let scale = Float(bitPattern: (shifted.bitPattern &- 0x4B40_0000 &+ 127) &<< 23)
        let result = y * scale
        return x0 < -87.3 ? 0 : result
    }

    /// tanh(x) = 1 − 2 / (e^{2x} + 1), saturating cleanly at ±1.
    @inline(__always)
    public static func tanh(_ x: Float) -> Float {
        1 - 2 / (exp(2 * x) + 1)
    }

    /// 1 / (1 + e^{−x}).
    @inline(__always)
    public static func sigmoid(_ x: Float) -> Float {
        1 / (1 + exp(-x))
    }

    /// erf(x), absolute error below 1.5e-7 (Abramowitz & Stegun 7.1.26).
    @inline(__always)
    public static func erf(_ x: Float) -> Float {
        let a = x < 0 ? -x : x
        let y = erfOfMagnitude(a, expOfMinusSquare: exp(-a * a))
        return x < 0 ? -y : y
    }

    /// erf(a) for a ≥ 0 given e = exp(−a²) (callers that already have it save an exponential).
    @inline(__always)
    public static func erfOfMagnitude(_ a: Float, expOfMinusSquare e: Float) -> Float {
        let t = 1 / Float(1).addingProduct(a, 0.327_591_1)
        var p: Float = 1.061_405_429
        p = Float(-1.453_152_027).addingProduct(p, t)
        p = Float(1.421_413_741).addingProduct(p, t)
        p = Float(-0.284_496_736).addingProduct(p, t)
        p = Float(0.254_829_592).addingProduct(p, t)
        return 1 - p * t * e
    }

    /// Sum of the 8 lanes.
    @inline(__always)
    public static func horizontalSum(_ v: SIMD8<Float>) -> Float {
        let h = v.lowHalf + v.highHalf
        return (h[0] + h[2]) + (h[1] + h[3])
    }

    /// Dot product of two vectors of length `n` (8-wide, 4 accumulators).
    @inline(__always)
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var s0 = SIMD8<Float>(), s1 = SIMD8<Float>(), s2 = SIMD8<Float>(), s3 = SIMD8<Float>()
        var i = 0
        let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
        while i &+ 32 <= n {
            s0 = s0.addingProduct(ra.loadUnaligned(fromByteOffset: i &* 4, as: SIMD8<Float>.self),
                                  rb.loadUnaligned(fromByteOffset: i &* 4, as: SIMD8<Float>.self))
            s1 = s1.addingProduct(ra.loadUnaligned(fromByteOffset: (i &+ 8) &* 4, as: SIMD8<Float>.self),
                                  rb.loadUnaligned(fromByteOffset: (i &+ 8) &* 4, as: SIMD8<Float>.self))
            s2 = s2.addingProduct(ra.loadUnaligned(fromByteOffset: (i &+ 16) &* 4, as: SIMD8<Float>.self),
                                  rb.loadUnaligned(fromByteOffset: (i &+ 16) &* 4, as: SIMD8<Float>.self))
            s3 = s3.addingProduct(ra.loadUnaligned(fromByteOffset: (i &+ 24) &* 4, as: SIMD8<Float>.self),
                                  rb.loadUnaligned(fromByteOffset: (i &+ 24) &* 4, as: SIMD8<Float>.self))
            i &+= 32
        }
        while i &+ 8 <= n {
            s0 = s0.addingProduct(ra.loadUnaligned(fromByteOffset: i &* 4, as: SIMD8<Float>.self),
                                  rb.loadUnaligned(fromByteOffset: i &* 4, as: SIMD8<Float>.self))
            i &+= 8
        }
        var s = horizontalSum((s0 + s1) + (s2 + s3))
        while i < n {
            s = s.addingProduct(a[i], b[i])
            i &+= 1
        }
        return s
    }

    /// Dot product with a single 8-wide accumulator: the per-row order `dot4` uses.
    @inline(__always)
    public static func dot1(_ w: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var a0 = SIMD8<Float>()
        let rw = UnsafeRawPointer(w), rx = UnsafeRawPointer(x)
        var i = 0
        while i &+ 8 <= n {
            let o = i &* 4
            a0 = a0.addingProduct(rw.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self),
                                  rx.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self))
            i &+= 8
        }
        var s = horizontalSum(a0)
        while i < n { s = s.addingProduct(w[i], x[i]); i &+= 1 }
        return s
    }

    /// Four dot products of consecutive rows (row stride `rowStride`) with one vector x (n).
    /// Each row is summed in the same order as `dot1`, so a row's result does not depend on
    /// whether it was computed in a group of four.
    @inline(__always)
    public static func dot4(_ w: UnsafePointer<Float>, rowStride: Int, _ x: UnsafePointer<Float>, _ n: Int) -> SIMD4<Float> {
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
        let r0 = UnsafeRawPointer(w), r1 = UnsafeRawPointer(w + rowStride)
        let r2 = UnsafeRawPointer(w + 2 &* rowStride), r3 = UnsafeRawPointer(w + 3 &* rowStride)
        let rx = UnsafeRawPointer(x)
        var i = 0
        while i &+ 8 <= n {
            let o = i &* 4
            let xv = rx.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
            a0 = a0.addingProduct(r0.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self), xv)
            a1 = a1.addingProduct(r1.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self), xv)
            a2 = a2.addingProduct(r2.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self), xv)
            a3 = a3.addingProduct(r3.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self), xv)
            i &+= 8
        }
        var s = SIMD4(horizontalSum(a0), horizontalSum(a1), horizontalSum(a2), horizontalSum(a3))
        while i < n {
            let xi = x[i]
            s[0] = s[0].addingProduct(w[i], xi)
            s[1] = s[1].addingProduct(w[rowStride &+ i], xi)
            s[2] = s[2].addingProduct(w[2 &* rowStride &+ i], xi)
            s[3] = s[3].addingProduct(w[3 &* rowStride &+ i], xi)
            i &+= 1
        }
        return s
    }

    /// y[0..<n] += alpha * x[0..<n].
    @inline(__always)
    public static func axpy(_ y: UnsafeMutablePointer<Float>, _ alpha: Float, _ x: UnsafePointer<Float>, _ n: Int) {
        for i in 0..<n { y[i] = y[i].addingProduct(alpha, x[i]) }
    }
}
