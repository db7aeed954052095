// Bidirectional (BERT) self-attention over sequences of different lengths packed one after
// another, with no padding: sequence s holds rows offsets[s] ..< offsets[s + 1]. Each row
// attends to every row of its own sequence and to nothing else, which is exactly a padded
// batch with the padding masked as keys — without computing the padding.
// Legend: N packed rows, C channels, NH heads, HS = C / NH, n a sequence's length.
// qkv (N, 3C): q at columns 0..<C, k at C..<2C, v at 2C..<3C; head h at h·HS within each.

/// Where sequences start and end in a packed batch, and where each (sequence, head) keeps its
/// attention probabilities (n × n floats per head) when they are saved for the backward pass.
public struct PackedSequences: Sendable, Equatable {
    /// offsets[s] ..< offsets[s + 1] are the rows of sequence s; offsets[0] = 0.
    public let offsets: [Int]
    /// Start of sequence s's probabilities (NH · n² floats) in a probabilities buffer.
    public let probabilityOffsets: [Int]
    public let heads: Int

    public init(lengths: [Int], heads: Int) {
        var o = [0], p = [0]
        for n in lengths {
            o.append(o.last! + n)
            p.append(p.last! + heads * n * n)
        }
        offsets = o
        probabilityOffsets = p
        self.heads = heads
    }

    public var count: Int { offsets.count - 1 }
    public var rows: Int { offsets.last! }
    public func length(_ s: Int) -> Int { offsets[s + 1] - offsets[s] }
    public var maxLength: Int { (0..<count).map(length).max() ?? 0 }
    /// Floats of attention probabilities for every (sequence, head).
    public var probabilityCount: Int { probabilityOffsets.last! }
    /// Floats of scratch `packedAttentionForward` (without saved probabilities) and
    /// `packedAttentionBackward` need on `threads` threads.
    public func scratchCount(threads: Int) -> Int { threads * maxLength * maxLength }
}

/// out (N, C) = softmax(q·kᵀ/√HS) · v per (sequence, head), bidirectional within each sequence.
/// `probs`, when given (`seqs.probabilityCount` floats), keeps the probabilities for
/// `packedAttentionBackward`; otherwise `scratch` (`seqs.scratchCount`) holds them briefly.
/// (sequence, head) pairs are split across threads; results do not depend on the thread count.
public func packedAttentionForward(out: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>?,
                                   scratch: UnsafeMutablePointer<Float>?, qkv: UnsafePointer<Float>,
                                   seqs: PackedSequences, C: Int, pool: ThreadPool) {
    let NH = seqs.heads, HS = C / NH, C3 = 3 * C
    let scale = 1 / Float(HS).squareRoot()
    let pairs = seqs.count * NH, threads = pool.threadCount
    let maxN = seqs.maxLength
    pool.run { thread in
        for pair in ThreadPool.chunk(pairs, parts: threads, index: thread) {
            let s = pair / NH, h = pair % NH
            let n = seqs.length(s), r0 = seqs.offsets[s]
            if n == 0 { continue }
            let p = probs.map { $0 + seqs.probabilityOffsets[s] + h * n * n } ?? scratch! + thread * maxN * maxN
            let q = qkv + r0 * C3 + h * HS
            BLAS.sgemm(transB: true, M: n, N: n, K: HS, alpha: scale, A: q, lda: C3, B: q + C, ldb: C3, C: p, ldc: n)
            for r in 0..<n { softmaxRow(p + r * n, valid: n, count: n) }
            BLAS.sgemm(M: n, N: HS, K: n, A: p, lda: n, B: q + 2 * C, ldb: C3, C: out + r0 * C + h * HS, ldc: C)
        }
    }
}

/// Backward of `packedAttentionForward` with saved `probs` (accumulates into dqkv).
/// `scratch` holds `seqs.scratchCount(threads:)` floats.
public func packedAttentionBackward(dqkv: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                                    qkv: UnsafePointer<Float>, probs: UnsafePointer<Float>,
                                    scratch: UnsafeMutablePointer<Float>,
                                    seqs: PackedSequences, C: Int, pool: ThreadPool) {
    let NH = seqs.heads, HS = C / NH, C3 = 3 * C
    let scale = 1 / Float(HS).squareRoot()
    let pairs = seqs.count * NH, threads = pool.threadCount
    let maxN = seqs.maxLength
    pool.run { thread in
        let dp = scratch + thread * maxN * maxN
        for pair in ThreadPool.chunk(pairs, parts: threads, index: thread) {
            let s = pair / NH, h = pair % NH
            let n = seqs.length(s), r0 = seqs.offsets[s]
            if n == 0 { continue }
            let p = probs + seqs.probabilityOffsets[s] + h * n * n
            let q = qkv + r0 * C3 + h * HS, k = q + C, v = q + 2 * C
            let dq = dqkv + r0 * C3 + h * HS, dk = dq + C, dv = dq + 2 * C
            let dy = dout + r0 * C + h * HS
            // dP (n, n) = dy · vᵀ;  dv += Pᵀ · dy
            BLAS.sgemm(transB: true, M: n, N: n, K: HS, A: dy, lda: C, B: v, ldb: C3, C: dp, ldc: n)
            BLAS.sgemm(transA: true, M: n, N: HS, K: n, A: p, lda: n, B: dy, ldb: C, beta: 1, C: dv, ldc: C3)
            // Softmax backward in place: dS = P ⊙ (dP − Σ P·dP).
            for r in 0..<n {
                let pr = p + r * n, dr = dp + r * n
                var dot: Float = 0
                for j in 0..<n { dot += pr[j] * dr[j] }
                for j in 0..<n { dr[j] = pr[j] * (dr[j] - dot) }
            }
            // dq += dS · k · scale;  dk += dSᵀ · q · scale
            BLAS.sgemm(M: n, N: HS, K: n, alpha: scale, A: dp, lda: n, B: k, ldb: C3, beta: 1, C: dq, ldc: C3)
            BLAS.sgemm(transA: true, M: n, N: HS, K: n, alpha: scale, A: dp, lda: n, B: q, ldb: C3, beta: 1, C: dk, ldc: C3)
        }
    }
}

/// Reference twin of `packedAttentionForward`: each sequence through `attentionForwardRef`
/// (not causal, every key visible).
public func packedAttentionForwardRef(out: UnsafeMutablePointer<Float>, qkv: UnsafePointer<Float>,
                                      seqs: PackedSequences, C: Int) {
    for s in 0..<seqs.count {
        let n = seqs.length(s), r0 = seqs.offsets[s]
        if n == 0 { continue }
        let dims = AttentionDims(T: n, L: n, NH: seqs.heads, KVH: seqs.heads, HS: C / seqs.heads,
                                 qStride: 3 * C, kvStride: 3 * C, outStride: C, causal: false)
        let q = qkv + r0 * 3 * C
        attentionForwardRef(out: out + r0 * C, q: q, k: q + C, v: q + 2 * C, dims: dims)
    }
}
