// Causal self-attention for training: the attention probabilities are kept for the backward
// pass. Legend: B batch, T time, C channels, NH heads, HS = C / NH.
// qkv (B, T, 3C): q at columns 0..<C, k at C..<2C, v at 2C..<3C; head h at h·HS within each.

import CKernels

/// True when the small causal products can run in swift-lm's own kernels (`attention.h`): head
/// size and time in multiples of 16. Otherwise each block is a BLAS call.
@inline(__always)
func attentionUsesOwnKernels(T: Int, HS: Int) -> Bool { T % 16 == 0 && HS % 16 == 0 }

/// out (B, T, C) = softmax(q·kᵀ/√HS, causal) · v per (batch, head); att (B, NH, T, T) keeps the
/// probabilities (zero above the diagonal). (batch, head) pairs are split across threads.
public func causalAttentionForward(out: UnsafeMutablePointer<Float>, att: UnsafeMutablePointer<Float>,
                                   qkv: UnsafePointer<Float>, B: Int, T: Int, C: Int, NH: Int, pool: ThreadPool) {
    let HS = C / NH, C3 = 3 * C
    let scale = 1 / Float(HS).squareRoot()
    // Query rows in blocks: a block only multiplies against the keys its last row can see.
    if attentionUsesOwnKernels(T: T, HS: HS) {
        pool.parallelFor(B * NH) { pairs in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: HS * T) { kT in
                for pair in pairs {
                    let b = pair / NH, h = pair % NH
                    let q = qkv + b * T * C3 + h * HS
                    let a = att + pair * T * T
                    lm_transpose(kT.baseAddress!, q + C, C3, T, HS)
                    lm_attn_scores(a, T, q, C3, kT.baseAddress!, T, HS, scale)
                    lm_attn_softmax(a, T)
                    lm_attn_lower(out + b * T * C + h * HS, C, a, T, q + 2 * C, C3, T, HS, 1, 0)
                }
            }
        }
        return
    }
    let block = attentionRowBlock
    pool.parallelFor(B * NH) { pairs in
        for pair in pairs {
            let b = pair / NH, h = pair % NH
            let q = qkv + b * T * C3 + h * HS
            let a = att + pair * T * T
            var t0 = 0
            while t0 < T {
                let t1 = min(T, t0 + block), rows = t1 - t0
                let ab = a + t0 * T
                BLAS.sgemm(transB: true, M: rows, N: t1, K: HS, alpha: scale, A: q + t0 * C3, lda: C3,
                           B: q + C, ldb: C3, C: ab, ldc: T)
                for r in 0..<rows { softmaxRow(ab + r * T, valid: t0 + r + 1, count: T) }
                BLAS.sgemm(M: rows, N: HS, K: t1, A: ab, lda: T, B: q + 2 * C, ldb: C3,
                           C: out + (b * T + t0) * C + h * HS, ldc: C)
                t0 = t1
            }
        }
    }
}

/// Query rows per block in the causal attention kernels.
let attentionRowBlock = 64

/// Backward of `causalAttentionForward`: accumulates into dqkv, or with `overwrite` sets every
/// element of it (saves zeroing it first). `scratch` holds `pool.threadCount · T · T` floats.
public func causalAttentionBackward(dqkv: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                                    qkv: UnsafePointer<Float>, att: UnsafePointer<Float>,
                                    scratch: UnsafeMutablePointer<Float>,
                                    B: Int, T: Int, C: Int, NH: Int, overwrite: Bool = false, pool: ThreadPool) {
    let HS = C / NH, C3 = 3 * C
    let scale = 1 / Float(HS).squareRoot()
    let threads = pool.threadCount
    // One (batch, head) pair's q, k, v, their gradients, its probabilities and its dout.
    @inline(__always)
    func headPointers(_ pair: Int) -> (UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>,
                                       UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>,
                                       UnsafePointer<Float>, UnsafePointer<Float>) {
        let b = pair / NH, h = pair % NH
        let q = qkv + b * T * C3 + h * HS, dq = dqkv + b * T * C3 + h * HS
        return (q, q + C, q + 2 * C, dq, dq + C, dq + 2 * C, att + pair * T * T, dout + b * T * C + h * HS)
    }
    if attentionUsesOwnKernels(T: T, HS: HS) {
        pool.run { thread in
            let ds = scratch + thread * T * T
            withUnsafeTemporaryAllocation(of: Float.self, capacity: HS * T) { vT in
                for pair in ThreadPool.chunk(B * NH, parts: threads, index: thread) {
                    let (q, k, v, dq, dk, dv, a, dy) = headPointers(pair)
                    // datt = dy · vᵀ (causal part);  dv += attᵀ · dy
                    lm_transpose(vT.baseAddress!, v, C3, T, HS)
                    lm_attn_scores(ds, T, dy, C, vT.baseAddress!, T, HS, 1)
                    lm_attn_upper_t(dv, C3, a, T, dy, C, T, HS, 1, overwrite ? 0 : 1)
                    for t in 0..<T { causalSoftmaxBackwardRow(datt: ds + t * T, att: a + t * T, t: t, count: T) }
                    // dq += dpre · k · scale;  dk += dpreᵀ · q · scale
                    lm_attn_lower(dq, C3, ds, T, k, C3, T, HS, scale, overwrite ? 0 : 1)
                    lm_attn_upper_t(dk, C3, ds, T, q, C3, T, HS, scale, overwrite ? 0 : 1)
                }
            }
        }
        return
    }
    if overwrite { dqkv.initialize(repeating: 0, count: B * T * C3) }
    let block = attentionRowBlock
    pool.run { thread in
        let ds = scratch + thread * T * T
        for pair in ThreadPool.chunk(B * NH, parts: threads, index: thread) {
            let (q, k, v, dq, dk, dv, a, dy) = headPointers(pair)
            var t0 = 0
            while t0 < T {
                let t1 = min(T, t0 + block), rows = t1 - t0
                let ab = a + t0 * T, db = ds + t0 * T, dyb = dy + t0 * C
                // datt (rows, t1) = dy · vᵀ;  dv[0..<t1] += attᵀ · dy
                BLAS.sgemm(transB: true, M: rows, N: t1, K: HS, A: dyb, lda: C, B: v, ldb: C3, C: db, ldc: T)
                BLAS.sgemm(transA: true, M: t1, N: HS, K: rows, A: ab, lda: T, B: dyb, ldb: C, beta: 1, C: dv, ldc: C3)
                // Softmax backward in place: dpre = att ⊙ (datt − Σ att·datt), zero above the diagonal.
                for r in 0..<rows { causalSoftmaxBackwardRow(datt: db + r * T, att: ab + r * T, t: t0 + r, count: t1) }
                // dq += dpre · k · scale;  dk[0..<t1] += dpreᵀ · q · scale
                BLAS.sgemm(M: rows, N: HS, K: t1, alpha: scale, A: db, lda: T, B: k, ldb: C3, beta: 1,
                           C: dq + t0 * C3, ldc: C3)
                BLAS.sgemm(transA: true, M: t1, N: HS, K: rows, alpha: scale, A: db, lda: T, B: q + t0 * C3, ldb: C3,
                           beta: 1, C: dk, ldc: C3)
                t0 = t1
            }
        }
    }
}

/// Softmax backward of causal row t in place: datt ← att ⊙ (datt − Σ att·datt) over columns
/// 0...t, zero over t + 1..<count.
@inline(__always)
func causalSoftmaxBackwardRow(datt dr: UnsafeMutablePointer<Float>, att ar: UnsafePointer<Float>, t: Int, count: Int) {
    var dot: Float = 0
    for j in 0...t { dot += ar[j] * dr[j] }
    for j in 0...t { dr[j] = ar[j] * (dr[j] - dot) }
    if t + 1 < count { (dr + t + 1).initialize(repeating: 0, count: count - t - 1) }
}
