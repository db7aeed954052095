// Causal self-attention for training: the attention probabilities are kept for the backward
// pass. Legend: B batch, T time, C channels, NH heads, HS = C / NH.
// qkv (B, T, 3C): q at columns 0..<C, k at C..<2C, v at 2C..<3C; head h at h·HS within each.

/// out (B, T, C) = softmax(q·kᵀ/√HS, causal) · v per (batch, head); att (B, NH, T, T) keeps the
/// probabilities (zero above the diagonal). (batch, head) pairs are split across threads.
public func causalAttentionForward(out: UnsafeMutablePointer<Float>, att: UnsafeMutablePointer<Float>,
                                   qkv: UnsafePointer<Float>, B: Int, T: Int, C: Int, NH: Int, pool: ThreadPool) {
    let HS = C / NH, C3 = 3 * C
    let scale = 1 / Float(HS).squareRoot()
    if T < smallAttentionLimit {
        // Short sequences: per query row, 4-key dot products over the visible keys only.
        pool.parallelFor(B * NH) { pairs in
            for pair in pairs {
                let b = pair / NH, h = pair % NH
                let q = qkv + b * T * C3 + h * HS, k = q + C, v = q + 2 * C
                for t in 0..<T {
                    let a = att + pair * T * T + t * T
                    let qt = q + t * C3
                    var j = 0
                    while j + 4 <= t + 1 {
                        let s4 = VectorMath.dot4(k + j * C3, rowStride: C3, qt, HS) * scale
                        a[j] = s4[0]; a[j + 1] = s4[1]; a[j + 2] = s4[2]; a[j + 3] = s4[3]
                        j += 4
                    }
                    while j <= t { a[j] = VectorMath.dot1(k + j * C3, qt, HS) * scale; j += 1 }
                    softmaxRow(a, valid: t + 1, count: T)
                    let o = out + (b * T + t) * C + h * HS
                    o.initialize(repeating: 0, count: HS)
                    for j in 0...t { VectorMath.axpy(o, a[j], v + j * C3, HS) }
                }
            }
        }
        return
    }
    pool.parallelFor(B * NH) { pairs in
        for pair in pairs {
            let b = pair / NH, h = pair % NH
            let q = qkv + b * T * C3 + h * HS
            let a = att + pair * T * T
            BLAS.sgemm(transB: true, M: T, N: T, K: HS, alpha: scale, A: q, lda: C3, B: q + C, ldb: C3, C: a, ldc: T)
            for t in 0..<T { softmaxRow(a + t * T, valid: t + 1, count: T) }
            BLAS.sgemm(M: T, N: HS, K: T, A: a, lda: T, B: q + 2 * C, ldb: C3,
                       C: out + b * T * C + h * HS, ldc: C)
        }
    }
}

/// Sequences shorter than this use row-by-row SIMD kernels that skip the masked half;
/// longer ones use `sgemm` per (batch, head).
public let smallAttentionLimit = 128

/// Backward of `causalAttentionForward` (accumulates into dqkv). `scratch` holds
/// `pool.threadCount · T · T` floats.
public func causalAttentionBackward(dqkv: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                                    qkv: UnsafePointer<Float>, att: UnsafePointer<Float>,
                                    scratch: UnsafeMutablePointer<Float>,
                                    B: Int, T: Int, C: Int, NH: Int, pool: ThreadPool) {
    let HS = C / NH, C3 = 3 * C
    let scale = 1 / Float(HS).squareRoot()
    let threads = pool.threadCount
    if T < smallAttentionLimit {
        pool.run { thread in
            let ds = scratch + thread * T * T
            for pair in ThreadPool.chunk(B * NH, parts: threads, index: thread) {
                let b = pair / NH, h = pair % NH
                let q = qkv + b * T * C3 + h * HS, k = q + C, v = q + 2 * C
                let dq = dqkv + b * T * C3 + h * HS, dk = dq + C, dv = dq + 2 * C
                for t in 0..<T {
                    let a = att + pair * T * T + t * T
                    let dy = dout + (b * T + t) * C + h * HS
                    // datt[j] = dy · v_j
                    var j = 0
                    while j + 4 <= t + 1 {
                        let s4 = VectorMath.dot4(v + j * C3, rowStride: C3, dy, HS)
                        ds[j] = s4[0]; ds[j + 1] = s4[1]; ds[j + 2] = s4[2]; ds[j + 3] = s4[3]
                        j += 4
                    }
                    while j <= t { ds[j] = VectorMath.dot1(v + j * C3, dy, HS); j += 1 }
                    // Softmax backward: dpre = att ⊙ (datt − Σ att·datt).
                    var dot: Float = 0
                    for j in 0...t { dot += a[j] * ds[j] }
                    for j in 0...t { ds[j] = a[j] * (ds[j] - dot) * scale }
                    let qt = q + t * C3, dqt = dq + t * C3
                    for j in 0...t {
                        VectorMath.axpy(dv + j * C3, a[j], dy, HS)       // dv_j += att·dy
                        VectorMath.axpy(dqt, ds[j], k + j * C3, HS)      // dq_t += dpre·k_j·scale
                        VectorMath.axpy(dk + j * C3, ds[j], qt, HS)      // dk_j += dpre·q_t·scale
                    }
                }
            }
        }
        return
    }
    pool.run { thread in
        let ds = scratch + thread * T * T
        for pair in ThreadPool.chunk(B * NH, parts: threads, index: thread) {
            let b = pair / NH, h = pair % NH
            let q = qkv + b * T * C3 + h * HS, k = q + C, v = q + 2 * C
            let dq = dqkv + b * T * C3 + h * HS, dk = dq + C, dv = dq + 2 * C
            let a = att + pair * T * T
            let dy = dout + b * T * C + h * HS
            // datt (T, T) = dy · vᵀ;  dv += attᵀ · dy
            BLAS.sgemm(transB: true, M: T, N: T, K: HS, A: dy, lda: C, B: v, ldb: C3, C: ds, ldc: T)
            BLAS.sgemm(transA: true, M: T, N: HS, K: T, A: a, lda: T, B: dy, ldb: C, beta: 1, C: dv, ldc: C3)
            // Softmax backward in place: dpre = att ⊙ (datt − Σ att·datt), zero above the diagonal.
            for t in 0..<T {
                let ar = a + t * T, dr = ds + t * T
                var dot: Float = 0
                for j in 0...t { dot += ar[j] * dr[j] }
                for j in 0...t { dr[j] = ar[j] * (dr[j] - dot) }
                for j in (t + 1)..<T { dr[j] = 0 }
            }
            // dq += dpre · k · scale;  dk += dpreᵀ · q · scale
            BLAS.sgemm(M: T, N: HS, K: T, alpha: scale, A: ds, lda: T, B: k, ldb: C3, beta: 1, C: dq, ldc: C3)
            BLAS.sgemm(transA: true, M: T, N: HS, K: T, alpha: scale, A: ds, lda: T, B: q, ldb: C3, beta: 1, C: dk, ldc: C3)
        }
    }
}
