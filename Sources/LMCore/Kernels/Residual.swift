/// out (n) = a + b; `out` may alias `a` or `b`. Split across `pool` when large.
public func residualForward(out: UnsafeMutablePointer<Float>, a: UnsafePointer<Float>, b: UnsafePointer<Float>, n: Int,
                            pool: ThreadPool? = nil) {
    if let pool, n >= 65_536 {
        pool.parallelFor(n, grain: 64) { r in for i in r { out[i] = a[i] + b[i] } }
    } else {
        for i in 0..<n { out[i] = a[i] + b[i] }
    }
}

/// Backward of `residualForward`: da += dout and db += dout.
public func residualBackward(da: UnsafeMutablePointer<Float>, db: UnsafeMutablePointer<Float>,
                             dout: UnsafePointer<Float>, n: Int) {
    for i in 0..<n {
        da[i] += dout[i]
        db[i] += dout[i]
    }
}
