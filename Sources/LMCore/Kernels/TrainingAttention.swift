// Causal self-attention for training: the attention probabilities are kept for the backward
// pass. Legend: B batch, T time, C channels, NH heads, HS = C / NH.
// qkv (B, T, 3C): q at columns 0..<C, k at C..<2C, v at 2C..<3C; head h at h·HS within each.

/// out (B, T, C) = softmax(q·kᵀ/√HS, causal) · v per (batch, head); att (B, NH, T, T) keeps the
/// probabilities (zero above the diagonal). (batch, head) pairs are split across threads.
public func causalAttentionForward(out: UnsafeMutablePointer<Float>, att: UnsafeMutablePointer<Float>,
                                   qkv: UnsafePointer<Float>, B: Int, T: Int, C: Int, NH: Int, pool: ThreadPool) {
    let HS = C / NH, C3 = 3 * C
    let scale = 1 / Float(HS).squareRoot()
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

/// Backward of `causalAttentionForward` (accumulates into dqkv). `scratch` holds
/// `pool.threadCount · T · T` floats.
public func causalAttentionBackward(dqkv: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                                    qkv: UnsafePointer<Float>, att: UnsafePointer<Float>,
                                    scratch: UnsafeMutablePointer<Float>,
                                    B: Int, T: Int, C: Int, NH: Int, pool: ThreadPool) {
    let HS = C / NH, C3 = 3 * C
    let scale = 1 / Float(HS).squareRoot()
    let threads = pool.threadCount
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
