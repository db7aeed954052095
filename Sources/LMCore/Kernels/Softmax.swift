/// Softmax in place over the first `valid` entries of a row of `count`; entries at and after
/// `valid` become 0. The exponentials run in a loop of their own so it vectorises (a loop that
/// also sums cannot, without reassociation); the sum is taken 8 lanes at a time.
@inline(__always)
public func softmaxRow(_ x: UnsafeMutablePointer<Float>, valid: Int, count: Int) {
    var m = -Float.infinity
    for i in 0..<valid { m = x[i] > m ? x[i] : m }
    for i in 0..<valid { x[i] = VectorMath.exp(x[i] - m) }
    var acc = SIMD8<Float>()
    var i = 0
    let raw = UnsafeRawPointer(x)
    while i &+ 8 <= valid {
        acc += raw.loadUnaligned(fromByteOffset: i &* 4, as: SIMD8<Float>.self)
        i &+= 8
    }
    var sum = VectorMath.horizontalSum(acc)
    while i < valid { sum += x[i]; i &+= 1 }
    let inv = 1 / sum
    for i in 0..<valid { x[i] *= inv }
    if valid < count { (x + valid).initialize(repeating: 0, count: count - valid) }
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
