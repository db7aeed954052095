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

/// log softmax of `count` logits in Double (libm exp and log) into `out`; returns the index of
/// the largest logit (the lowest index on ties). For scoring: perplexity, KL divergence.
@discardableResult
public func logSoftmaxDouble(_ x: UnsafePointer<Float>, count: Int, into out: UnsafeMutablePointer<Double>) -> Int {
    var m = -Double.infinity, best = 0
    for i in 0..<count where Double(x[i]) > m { m = Double(x[i]); best = i }
    var z = 0.0
    for i in 0..<count { z += Glibc.exp(Double(x[i]) - m) }
    let lz = Glibc.log(z)
    for i in 0..<count { out[i] = Double(x[i]) - m - lz }
    return best
}

/// KL(p ‖ q) = Σ p (log p − log q) of two distributions given as log-probabilities, in nats
/// (rounding below zero clamped to 0).
public func klDivergence(logP: UnsafePointer<Double>, logQ: UnsafePointer<Double>, count: Int) -> Double {
    var k = 0.0
    for i in 0..<count { k += Glibc.exp(logP[i]) * (logP[i] - logQ[i]) }
    return max(0, k)
}

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
