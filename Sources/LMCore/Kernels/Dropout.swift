/// Inverted dropout (training only): out = inp · mask / (1 − p). One seed is drawn from `rng`
/// per call; the mask of each fixed block of 65 536 elements comes from that seed and the
/// block's index, so blocks can be drawn in parallel and the mask depends only on the seed,
/// never on the thread count. `out` may equal `inp`.
public func dropoutForward(out: UnsafeMutablePointer<Float>, mask: UnsafeMutablePointer<UInt8>,
                           inp: UnsafePointer<Float>, n: Int, p: Float, rng: inout SeededRNG,
                           pool: ThreadPool? = nil) {
    let scale = 1 / (1 - p)
    let seed = rng.next()
    let block = 65_536
    let blocks = (n + block - 1) / block
    let body = { (range: Range<Int>) in
        for b in range {
            var r = SeededRNG(seed: seed &+ UInt64(b))
            for i in (b * block)..<min(n, (b + 1) * block) {
                let keep: UInt8 = r.nextFloat() >= p ? 1 : 0
                mask[i] = keep
                out[i] = keep == 1 ? inp[i] * scale : 0
            }
        }
    }
    if let pool { pool.parallelFor(blocks, body) } else { body(0..<blocks) }
}

/// Backward of `dropoutForward`: dinp (n) += dout · mask / (1 − p).
public func dropoutBackward(dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                            mask: UnsafePointer<UInt8>, n: Int, p: Float, pool: ThreadPool? = nil) {
    let scale = 1 / (1 - p)
    let body = { (r: Range<Int>) in
        for i in r { dinp[i] += dout[i] * (mask[i] != 0 ? scale : 0) }
    }
    if let pool, n >= 65_536 { pool.parallelFor(n, grain: 64, body) } else { body(0..<n) }
}
