/// out (n) = a + b; `out` may alias `a` or `b`.
public func residualForward(out: UnsafeMutablePointer<Float>, a: UnsafePointer<Float>, b: UnsafePointer<Float>, n: Int) {
    for i in 0..<n { out[i] = a[i] + b[i] }
}
