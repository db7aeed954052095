/// out (cols, rows) = inp (rows, cols)ᵀ, in 32 × 32 tiles so both sides stay in cache.
public func transpose(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, rows: Int, cols: Int) {
    let tile = 32
    var r0 = 0
    while r0 < rows {
        let r1 = min(r0 + tile, rows)
        var c0 = 0
        while c0 < cols {
            let c1 = min(c0 + tile, cols)
            for r in r0..<r1 {
                for c in c0..<c1 { out[c * rows + r] = inp[r * cols + c] }
            }
            c0 = c1
        }
        r0 = r1
    }
}
