/// out (n) = a + b; `out` may alias `a` or `b`.
public func residualForward(out: UnsafeMutablePointer<Float>, a: UnsafePointer<Float>, b: UnsafePointer<Float>, n: Int) {
    for i in 0..<n { out[i] = a[i] + b[i] }
}

/// Backward of `residualForward`: da += dout and db += dout.
public func residualBackward(da: UnsafeMutablePointer<Float>, db: UnsafeMutablePointer<Float>,
                             dout: UnsafePointer<Float>, n: Int) {
    for i in 0..<n {
        da[i] += dout[i]
        db[i] += dout[i]
    }
}
