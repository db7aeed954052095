import CKernels

/// A weight matrix in swift-lm's int8 block format (Q8): `rows` rows of `cols` weights, `cols`
/// a multiple of 32, each row cut into blocks of 32 along the input dimension with one float16
/// scale per block: weight ≈ scale · q, q ∈ [−127, 127] (symmetric; llama.cpp's Q8_0 layout,
/// 34 bytes per 32 weights). Rows are the output dimension: y = W · x.
///
/// ```swift
/// let q = Q8Matrix.quantize(weight)            // weight: (rows, cols) float, (out, in)
/// let back = q.dequantized()                  // within half a scale step of weight
/// ```
public final class Q8Matrix: @unchecked Sendable {
    public static let blockSize = 32
    public let rows: Int
    /// Columns stored (a multiple of 32).
    public let cols: Int
    /// Columns of the original matrix (≤ cols; the rest is zero padding).
    public let logicalCols: Int
    public let q: UnsafeMutablePointer<Int8>          // (rows, cols)
    public let scales: UnsafeMutablePointer<UInt16>   // (rows, cols / 32), float16 bits
    private let owner: AnyObject?
    private let owned: Bool

    public var blocksPerRow: Int { cols / Q8Matrix.blockSize }
    /// Bytes of weights and scales.
    public var bytes: Int { rows * cols + rows * blocksPerRow * 2 }

    /// Views existing storage (a memory-mapped file): nothing is copied.
    public init(rows: Int, cols: Int, logicalCols: Int, q: UnsafeMutablePointer<Int8>,
                scales: UnsafeMutablePointer<UInt16>, owner: AnyObject?) {
        self.rows = rows; self.cols = cols; self.logicalCols = logicalCols
        self.q = q; self.scales = scales; self.owner = owner; self.owned = false
    }

    /// Empty storage for rows × paddedCols (zeroed).
    public init(rows: Int, logicalCols: Int) {
        let cols = Q8Matrix.padded(logicalCols)
        self.rows = rows; self.cols = cols; self.logicalCols = logicalCols
        q = .allocate(capacity: max(1, rows * cols))
        q.initialize(repeating: 0, count: rows * cols)
        scales = .allocate(capacity: max(1, rows * cols / Q8Matrix.blockSize))
        scales.initialize(repeating: 0, count: rows * cols / Q8Matrix.blockSize)
        owner = nil; owned = true
    }

    deinit {
        if owned { q.deallocate(); scales.deallocate() }
    }

    /// `n` rounded up to a multiple of 32.
    public static func padded(_ n: Int) -> Int { (n + blockSize - 1) / blockSize * blockSize }

    /// Quantizes a (rows, cols) float matrix in the (out, in) layout; columns are zero-padded to
    /// a multiple of 32. Reference implementation (round to nearest, ties to even).
    public static func quantize(_ w: UnsafePointer<Float>, rows: Int, cols: Int) -> Q8Matrix {
        let m = Q8Matrix(rows: rows, logicalCols: cols)
        var block = [Float](repeating: 0, count: blockSize)
        for r in 0..<rows {
            for b in 0..<m.blocksPerRow {
                for i in 0..<blockSize {
                    let c = b * blockSize + i
                    block[i] = c < cols ? w[r * cols + c] : 0
                }
                let (d, qs) = quantizeBlockRef(block)
                m.scales[r * m.blocksPerRow + b] = Float16(d).bitPattern
                for i in 0..<blockSize { m.q[r * m.cols + b * blockSize + i] = qs[i] }
            }
        }
        return m
    }

    /// One block: scale = max|x| / 127 rounded to float16, q = round(x / scale).
    /// The scale is rounded to float16 first and q computed from it, so dequantization uses
    /// exactly the stored scale.
    public static func quantizeBlockRef(_ x: [Float]) -> (scale: Float, q: [Int8]) {
        var amax: Float = 0
        for v in x { amax = max(amax, abs(v)) }
        let d = Float(Float16(amax / 127))
        let inv: Float = d != 0 ? 1 / d : 0
        let q = x.map { v -> Int8 in
            let r = (v * inv).rounded(.toNearestOrEven)
            return Int8(max(-127, min(127, r)))
        }
        return (d, q)
    }

    /// The float matrix (rows, logicalCols).
    public func dequantized() -> Tensor {
        let t = Tensor(zeros: [rows, logicalCols])
        let full = UnsafeMutablePointer<Float>.allocate(capacity: max(1, cols))
        defer { full.deallocate() }
        for r in 0..<rows {
            lm_q8_dequantize_rows(full, cols, q, scales, cols, r, r + 1)
            (t.data + r * logicalCols).update(from: full, count: logicalCols)
        }
        return t
    }

    /// Reference dequantization of one row into `out` (cols floats), in Swift.
    public func dequantizeRowRef(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        for b in 0..<blocksPerRow {
            let d = Float(Float16(bitPattern: scales[r * blocksPerRow + b]))
            for i in 0..<Q8Matrix.blockSize {
                out[b * Q8Matrix.blockSize + i] = d * Float(q[r * cols + b * Q8Matrix.blockSize + i])
            }
        }
    }

    /// Throws if any scale is not a finite, non-negative number (a corrupt file).
    public func validateScales(name: String) throws {
        for i in 0..<(rows * blocksPerRow) {
            let d = Float(Float16(bitPattern: scales[i]))
            guard d.isFinite, d >= 0 else {
                throw LMError(.corruptFile, "tensor '\(name)' has a corrupt scale (\(d)) in block \(i) — re-run lm quantize on the float model")
            }
        }
    }
}

/// Reusable buffers for int8 products: the activations of a decoding step quantized per block.
/// (Batched products dequantize the weights into the GEMM's packed panels, in the thread pool's
/// scratch, so they need no buffer here.)
public final class Q8Workspace: @unchecked Sendable {
    public let maxCols: Int
    let xq: UnsafeMutablePointer<Int8>     // (maxCols)
    let xd: UnsafeMutablePointer<Float>    // (maxCols / 32)

    public init(maxCols: Int) {
        self.maxCols = Q8Matrix.padded(max(1, maxCols))
        xq = .allocate(capacity: self.maxCols)
        xd = .allocate(capacity: self.maxCols / Q8Matrix.blockSize)
    }

    deinit { xq.deallocate(); xd.deallocate() }
}

/// Reference quantization of activations: the same rule as `Q8Matrix.quantizeBlockRef` but
/// with float32 scales. x (n, n a multiple of 32) → q (n), d (n / 32).
public func q8QuantizeRowRef(_ x: UnsafePointer<Float>, q: UnsafeMutablePointer<Int8>, d: UnsafeMutablePointer<Float>, n: Int) {
    for b in 0..<(n / Q8Matrix.blockSize) {
        var amax: Float = 0
        for i in 0..<Q8Matrix.blockSize { amax = max(amax, abs(x[b * 32 + i])) }
        let scale = amax / 127
        d[b] = scale
        let inv: Float = scale != 0 ? 1 / scale : 0
        for i in 0..<Q8Matrix.blockSize {
            q[b * 32 + i] = Int8(max(-127, min(127, (x[b * 32 + i] * inv).rounded(.toNearestOrEven))))
        }
    }
}

/// out (N, rows) = inp (N, logicalCols) · Wᵀ + bias with W in Q8 (or out += … when `accumulate`).
///
/// One row (decoding): the activations are quantized per block and each thread takes a
/// contiguous range of weight rows (int8 dot products, `lm_q8_gemv`): the weights stream once,
/// at about a quarter of the float bytes. Several rows (prefill): swift-lm's float GEMM
/// (`lm_sgemm_q8`) dequantizes the weights as it packs them (AVX2 has no int8 product faster
/// than float FMA, and no float copy of the matrix is written); each thread takes a range of
/// output columns, so results never depend on the thread count.
public func q8MatmulForward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, weight w: Q8Matrix,
                            bias: UnsafePointer<Float>?, N: Int, accumulate: Bool = false,
                            workspace ws: Q8Workspace, pool: ThreadPool) {
    let C = w.logicalCols, K = w.cols, OC = w.rows
    if N == 1 {
        precondition(K <= ws.maxCols, "Q8 workspace too small")
        // Quantize the activations (zero-padded to K).
        if C == K {
            lm_q8_quantize_row(inp, ws.xq, ws.xd, K)
        } else {
            withUnsafeTemporaryAllocation(of: Float.self, capacity: K) { buf in
                buf.baseAddress!.update(from: inp, count: C)
                (buf.baseAddress! + C).initialize(repeating: 0, count: K - C)
                lm_q8_quantize_row(buf.baseAddress!, ws.xq, ws.xd, K)
            }
        }
        pool.parallelFor(OC, grain: 16, minimumPerThread: 64) { r in
            lm_q8_gemv(out, w.q, w.scales, K, r.lowerBound, r.upperBound, ws.xq, ws.xd, bias, accumulate ? 1 : 0)
        }
        return
    }
    let scratch = pool.scratch(bytes: lm_sgemm_scratch_floats() * MemoryLayout<Float>.size)
    let pieces = pool.pieceCount((OC + 15) / 16)
    func run(_ a: UnsafePointer<Float>) {
        pool.forEachPiece(pieces) { p, t in
            let cols = ThreadPool.chunk(OC, parts: pieces, index: p, grain: 16)
            if cols.isEmpty { return }
            lm_sgemm_q8(a, K, w.q, w.scales, K, out, OC, N, cols.lowerBound, cols.upperBound, bias,
                        accumulate ? 1 : 0, scratch[t].assumingMemoryBound(to: Float.self))
        }
    }
    if C == K {
        run(inp)
    } else {  // input width not a multiple of 32: activations zero-padded to match the stored rows
        let padded = UnsafeMutablePointer<Float>.allocate(capacity: N * K)
        defer { padded.deallocate() }
        for n in 0..<N {
            (padded + n * K).update(from: inp + n * C, count: C)
            (padded + n * K + C).initialize(repeating: 0, count: K - C)
        }
        run(padded)
    }
}

/// Reference twin of `q8MatmulForward`: activations quantized with `q8QuantizeRowRef` for a
/// single row (as the fast path), dot products in Double.
public func q8MatmulForwardRef(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, weight w: Q8Matrix,
                               bias: UnsafePointer<Float>?, N: Int) {
    let C = w.logicalCols, K = w.cols
    var row = [Float](repeating: 0, count: K)
    var x = [Float](repeating: 0, count: K)
    var xq = [Int8](repeating: 0, count: K), xd = [Float](repeating: 0, count: K / 32)
    for n in 0..<N {
        for c in 0..<K { x[c] = c < C ? inp[n * C + c] : 0 }
        if N == 1 { q8QuantizeRowRef(x, q: &xq, d: &xd, n: K) }
        for r in 0..<w.rows {
            row.withUnsafeMutableBufferPointer { w.dequantizeRowRef(r, into: $0.baseAddress!) }
            var s = Double(bias?[r] ?? 0)
            if N == 1 {
                for b in 0..<(K / 32) {
                    var blockSum = 0
                    for i in 0..<32 { blockSum += Int(xq[b * 32 + i]) * Int(w.q[r * K + b * 32 + i]) }
                    s += Double(Float(Float16(bitPattern: w.scales[r * (K / 32) + b]))) * Double(xd[b]) * Double(blockSum)
                }
            } else {
                for c in 0..<C { s += Double(x[c]) * Double(row[c]) }
            }
            out[n * w.rows + r] = Float(s)
        }
    }
}
