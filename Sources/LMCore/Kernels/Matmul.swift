import CKernels

/// How a weight matrix is stored.
public enum WeightLayout: Sendable {
    /// (in, out): y = x·W — GPT-2's Conv1D.
    case inOut
    /// (out, in): y = x·Wᵀ — `nn.Linear`, tied LM heads.
    case outIn
}

/// out (N, OC) = inp (N, C) · W + bias, or out += … when `accumulate` (a fused residual add).
///
/// N = 1 (decoding) runs swift-lm's own GEMV, parallel over output columns so each weight is
/// streamed once and the result does not depend on the thread count; N > 1 runs `gemm`.
/// `ldw` is the weight's row stride when it differs from its logical width (padded rows).
public func matmulForward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
                          weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                          N: Int, C: Int, OC: Int, layout: WeightLayout,
                          accumulate: Bool = false, pool: ThreadPool, ldw: Int? = nil) {
    if N == 1 && ldw == nil {
        switch layout {
        case .inOut: gemvInOut(out: out, x: inp, weight: weight, bias: bias, C: C, OC: OC, accumulate: accumulate, pool: pool)
        case .outIn: gemvOutIn(out: out, x: inp, weight: weight, bias: bias, C: C, OC: OC, accumulate: accumulate, pool: pool)
        }
        return
    }
    if layout == .inOut && !accumulate && ldw == nil && shortGemmFits(M: N, K: C) {
        shortGemm(transB: false, A: inp, lda: C, B: weight, ldb: OC, C: out, ldc: OC, M: N, N: OC, K: C, bias: bias, pool: pool)
        return
    }
    var beta: Float = accumulate ? 1 : 0
    if let bias {  // the bias goes into C first (rows split across the pool), then C += A·W
        pool.parallelFor(N, minimumPerThread: 16) { rows in
            for n in rows {
                let o = out + n * OC
                if accumulate {
                    for j in 0..<OC { o[j] += bias[j] }
                } else {
                    o.update(from: bias, count: OC)
                }
            }
        }
        beta = 1
    }
    switch layout {
    case .inOut:
        gemm(M: N, N: OC, K: C, A: inp, lda: C, B: weight, ldb: ldw ?? OC, beta: beta, C: out, ldc: OC, pool: pool)
    case .outIn:
        gemm(transB: true, M: N, N: OC, K: C, A: inp, lda: C, B: weight, ldb: ldw ?? C, beta: beta, C: out, ldc: OC, pool: pool)
    }
}

/// C (M, N) = A (M, K) · op(B) (+ bias) (⊙ mul) with swift-lm's own GEMM (`gemm.h`), for a
/// short inner dimension (K ≤ 256): the bias is the accumulators' start and the product `mul`
/// is applied as results are stored, so neither costs a pass of its own, and nothing is zeroed
/// first. Rows go to threads in multiples of 6; every output is the same chain of fused
/// multiply-adds whichever thread computes it, so results do not depend on the thread count.
func shortGemm(transB: Bool, A: UnsafePointer<Float>, lda: Int, B: UnsafePointer<Float>, ldb: Int,
               C: UnsafeMutablePointer<Float>, ldc: Int, M: Int, N: Int, K: Int,
               bias: UnsafePointer<Float>?, mul: UnsafePointer<Float>? = nil, ldm: Int = 0, pool: ThreadPool) {
    let scratch = pool.scratch(bytes: lm_sgemm_scratch_floats() * MemoryLayout<Float>.size)
    let pieces = pool.pieceCount((M + 5) / 6)
    pool.forEachPiece(pieces) { p, t in
        let rows = ThreadPool.chunk(M, parts: pieces, index: p, grain: 6)
        if rows.isEmpty { return }
        lm_sgemm(transB ? 1 : 0, A, lda, B, ldb, C, ldc, rows.lowerBound, rows.upperBound, N, K, bias, mul, ldm,
                 scratch[t].assumingMemoryBound(to: Float.self))
    }
}

/// Whether `shortGemm` takes a product of M rows and inner dimension K.
@inline(__always)
func shortGemmFits(M: Int, K: Int) -> Bool { K <= 256 && M >= 12 }

/// C (M, N) = alpha · op(A) · op(B) + beta · C (row-major, `BLAS.sgemm`'s conventions), cut
/// into a few fixed pieces along the larger of M and N (so the smaller operand is the one packed
/// again per piece) and shared out among `pool`'s threads; OpenBLAS runs single-threaded inside
/// each call. OpenBLAS's rounding depends on the shape of each call, so the pieces depend only
/// on the problem, never on the thread count: results are bit-identical on any number of threads.
public func gemm(transA: Bool = false, transB: Bool = false, M: Int, N: Int, K: Int, alpha: Float = 1,
                 A: UnsafePointer<Float>, lda: Int, B: UnsafePointer<Float>, ldb: Int,
                 beta: Float = 0, C: UnsafeMutablePointer<Float>, ldc: Int, pool: ThreadPool) {
    if M == 0 || N == 0 { return }
    let splitRows = M >= N
    let dim = splitRows ? M : N
    // Below ~1 MFLOP one call: a split costs more than it saves.
    let pieces = M * N * K < 1 << 20 ? 1 : (dim >= 1024 ? 4 : (dim >= 64 ? 2 : 1))
    func piece(_ p: Int) {
        let r = ThreadPool.chunk(dim, parts: pieces, index: p, grain: 16)
        if r.isEmpty { return }
        let o = r.lowerBound
        if splitRows {
            BLAS.sgemm(transA: transA, transB: transB, M: r.count, N: N, K: K, alpha: alpha,
                       A: transA ? A + o : A + o * lda, lda: lda, B: B, ldb: ldb,
                       beta: beta, C: C + o * ldc, ldc: ldc)
        } else {
            BLAS.sgemm(transA: transA, transB: transB, M: M, N: r.count, K: K, alpha: alpha,
                       A: A, lda: lda, B: transB ? B + o * ldb : B + o, ldb: ldb,
                       beta: beta, C: C + o, ldc: ldc)
        }
    }
    if pieces == 1 {
        piece(0)
        return
    }
    pool.forEachPiece(pieces) { p, _ in piece(p) }
}

/// Reference twin of `matmulForward`: a plain triple loop with Double accumulation.
public func matmulForwardRef(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
                             weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                             N: Int, C: Int, OC: Int, layout: WeightLayout, accumulate: Bool = false) {
    for n in 0..<N {
        for j in 0..<OC {
            var s = Double(bias?[j] ?? 0)
            for i in 0..<C {
                let w = layout == .inOut ? weight[i * OC + j] : weight[j * C + i]
                s += Double(inp[n * C + i]) * Double(w)
            }
            out[n * OC + j] = accumulate ? out[n * OC + j] + Float(s) : Float(s)
        }
    }
}

/// y (OC) = x (C) · W (C, OC) + b. Each thread owns a contiguous block of columns and sweeps
/// the rows four at a time, so the weight streams from memory in long sequential runs.
@inline(__always)
func gemvInOut(out: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
               bias: UnsafePointer<Float>?, C: Int, OC: Int, accumulate: Bool, pool: ThreadPool) {
    pool.parallelFor(OC, grain: 64, minimumPerThread: 128) { range in
        let j0 = range.lowerBound
        let w = range.count
        let y = out + j0
        if !accumulate {
            if let bias { y.update(from: bias + j0, count: w) } else { y.initialize(repeating: 0, count: w) }
        } else if let bias {
            for j in 0..<w { y[j] += bias[j0 + j] }
        }
        let ry = UnsafeMutableRawPointer(y)
        var i = 0
        while i &+ 4 <= C {
            let x0 = SIMD8<Float>(repeating: x[i]), x1 = SIMD8<Float>(repeating: x[i &+ 1])
            let x2 = SIMD8<Float>(repeating: x[i &+ 2]), x3 = SIMD8<Float>(repeating: x[i &+ 3])
            let r0 = UnsafeRawPointer(weight + (i &* OC &+ j0))
            let r1 = UnsafeRawPointer(weight + ((i &+ 1) &* OC &+ j0))
            let r2 = UnsafeRawPointer(weight + ((i &+ 2) &* OC &+ j0))
            let r3 = UnsafeRawPointer(weight + ((i &+ 3) &* OC &+ j0))
            var j = 0
            while j &+ 8 <= w {
                let o = j &* 4
                var acc = r0.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self) * x0
                acc = acc.addingProduct(r1.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self), x1)
                acc = acc.addingProduct(r2.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self), x2)
                acc = acc.addingProduct(r3.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self), x3)
                ry.storeBytes(of: ry.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self) + acc,
                              toByteOffset: o, as: SIMD8<Float>.self)
                j &+= 8
            }
            while j < w {
                let p0 = (weight + (i &* OC &+ j0))[j] * x[i]
                let p1 = (weight + ((i &+ 1) &* OC &+ j0))[j] * x[i &+ 1]
                let p2 = (weight + ((i &+ 2) &* OC &+ j0))[j] * x[i &+ 2]
                let p3 = (weight + ((i &+ 3) &* OC &+ j0))[j] * x[i &+ 3]
                y[j] += ((p0 + p1) + p2) + p3
                j &+= 1
            }
            i &+= 4
        }
        while i < C {
            let xi = x[i]
            let r = weight + (i &* OC &+ j0)
            for j in 0..<w { y[j] = y[j].addingProduct(xi, r[j]) }
            i &+= 1
        }
    }
}

/// y (OC) = W (OC, C) · x (C) + b: rows split across threads, four rows at a time so each
/// load of x serves four weight rows. Each thread streams one contiguous block of W.
@inline(__always)
func gemvOutIn(out: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
               bias: UnsafePointer<Float>?, C: Int, OC: Int, accumulate: Bool, pool: ThreadPool) {
    pool.parallelFor(OC, grain: 16, minimumPerThread: 64) { range in
        @inline(__always) func store(_ j: Int, _ v: Float) {
            var s = v
            if let bias { s += bias[j] }
            out[j] = accumulate ? out[j] + s : s
        }
        var j = range.lowerBound
        while j &+ 4 <= range.upperBound {
            let s = VectorMath.dot4(weight + j &* C, rowStride: C, x, C)
            store(j, s[0]); store(j &+ 1, s[1]); store(j &+ 2, s[2]); store(j &+ 3, s[3])
            j &+= 4
        }
        while j < range.upperBound {
            store(j, VectorMath.dot1(weight + j &* C, x, C))
            j &+= 1
        }
    }
}

/// Backward of `matmulForward` (accumulates): dinp (N, C) += dout · Wᵀ-or-W,
/// dweight += the matching outer product, dbias (OC) += column sums of dout.
/// Any gradient may be nil (frozen weights, no input gradient). With `overwriteInput`, dinp is
/// set rather than accumulated (saves zeroing it first); `dinpScale` (N, C) then multiplies it
/// element-wise as it is written (the GELU derivative of the layer below, fused). Deterministic
/// for any thread count.
public func matmulBackward(dinp: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>?,
                           dbias: UnsafeMutablePointer<Float>?,
                           dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                           N: Int, C: Int, OC: Int, layout: WeightLayout, overwriteInput: Bool = false,
                           dinpScale: UnsafePointer<Float>? = nil, pool: ThreadPool) {
    precondition(dinpScale == nil || overwriteInput, "dinpScale needs overwriteInput")
    if let dinp, layout == .inOut, overwriteInput, shortGemmFits(M: N, K: OC) {
        // dinp = dout · Wᵀ (⊙ dinpScale), W (C, OC) read as the transposed operand.
        shortGemm(transB: true, A: dout, lda: OC, B: weight, ldb: OC, C: dinp, ldc: C, M: N, N: C, K: OC,
                  bias: nil, mul: dinpScale, ldm: C, pool: pool)
    } else if let dinp {
        let beta: Float = overwriteInput ? 0 : 1
        switch layout {
        case .inOut:  // W (C, OC): dinp += dout · Wᵀ
            gemm(transB: true, M: N, N: C, K: OC, A: dout, lda: OC, B: weight, ldb: OC, beta: beta, C: dinp, ldc: C, pool: pool)
        case .outIn:  // W (OC, C): dinp += dout · W
            gemm(M: N, N: C, K: OC, A: dout, lda: OC, B: weight, ldb: C, beta: beta, C: dinp, ldc: C, pool: pool)
        }
        if let dinpScale {
            pool.parallelFor(N, minimumPerThread: 8) { rows in
                for i in rows.lowerBound * C..<rows.upperBound * C { dinp[i] *= dinpScale[i] }
            }
        }
    }
    if let dweight {
        switch layout {
        case .inOut:  // dW (C, OC) += inpᵀ · dout
            gemm(transA: true, M: C, N: OC, K: N, A: inp, lda: C, B: dout, ldb: OC, beta: 1, C: dweight, ldc: OC, pool: pool)
        case .outIn:  // dW (OC, C) += doutᵀ · inp
            gemm(transA: true, M: OC, N: C, K: N, A: dout, lda: OC, B: inp, ldb: C, beta: 1, C: dweight, ldc: C, pool: pool)
        }
    }
    if let dbias {
        pool.parallelFor(OC, grain: 16, minimumPerThread: 256) { cols in
            for n in 0..<N {
                let row = dout + n * OC
                for j in cols { dbias[j] += row[j] }
            }
        }
    }
}
