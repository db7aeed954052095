/// Row-wise softmax in place: x (N, C) → softmax over each row's first `valid` entries;
/// entries at and after `valid` become 0. Rows of stride `stride`.
@inline(__always)
public func softmaxRow(_ x: UnsafeMutablePointer<Float>, valid: Int, count: Int) {
    var m = -Float.infinity
    for i in 0..<valid { m = x[i] > m ? x[i] : m }
    var sum: Float = 0
    for i in 0..<valid {
        let e = VectorMath.exp(x[i] - m)
        x[i] = e
        sum += e
    }
    let inv = 1 / sum
    for i in 0..<valid { x[i] *= inv }
    for i in valid..<count { x[i] = 0 }
}

/// out (N, C) = softmax(inp) row by row; `out` may equal `inp`.
public func softmaxForward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, N: Int, C: Int) {
    for n in 0..<N {
        if out + n * C != UnsafeMutablePointer(mutating: inp + n * C) {
            (out + n * C).update(from: inp + n * C, count: C)
        }
        softmaxRow(out + n * C, valid: C, count: C)
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// Reference twin of `softmaxForward` (Double accumulation, libm exp).
public func softmaxForwardRef(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, N: Int, C: Int) {
    for n in 0..<N {
        let x = inp + n * C
        var m = -Double.infinity
        for i in 0..<C { m = max(m, Double(x[i])) }
        var s = 0.0
        for i in 0..<C { s += Glibc.exp(Double(x[i]) - m) }
        for i in 0..<C { out[n * C + i] = Float(Glibc.exp(Double(x[i]) - m) / s) }
    }
}
