/// Inverted dropout (training only): out = inp · mask / (1 − p), the mask drawn from `rng` on
/// the calling thread so it depends only on the seed. `out` may equal `inp`.
public func dropoutForward(out: UnsafeMutablePointer<Float>, mask: UnsafeMutablePointer<UInt8>,
                           inp: UnsafePointer<Float>, n: Int, p: Float, rng: inout SeededRNG) {
    let scale = 1 / (1 - p)
    for i in 0..<n {
        let keep: UInt8 = rng.nextFloat() >= p ? 1 : 0
        mask[i] = keep
        out[i] = keep == 1 ? inp[i] * scale : 0
    }
}

/// Backward of `dropoutForward`: dinp (n) += dout · mask / (1 − p).
public func dropoutBackward(dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                            mask: UnsafePointer<UInt8>, n: Int, p: Float) {
    let scale = 1 / (1 - p)
    for i in 0..<n where mask[i] != 0 { dinp[i] += dout[i] * scale }
}
