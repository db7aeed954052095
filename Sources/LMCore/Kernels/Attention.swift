import CKernels
#if canImport(Glibc)
import Glibc
#endif

/// Sizes and strides of one multi-head attention call over a key/value cache.
///
/// Queries: T rows of `qStride` floats; head h at columns h·HS. Keys and values: L rows of
/// `kvStride` floats (the cache, positions 0..<L); kv head g at columns g·HS. Query head h uses
/// kv head h / (NH / KVH) (grouped-query attention; KVH = NH for GPT-2 and BERT).
/// Output: T rows of `outStride` floats, head h at columns h·HS.
public struct AttentionDims: Sendable {
    public var T: Int, L: Int, NH: Int, KVH: Int, HS: Int
    public var qStride: Int, kvStride: Int, outStride: Int
    /// Causal: query t sits at position L − T + t and sees keys 0...L − T + t.
    /// Not causal: every query sees all L keys (BERT; padding is excluded by passing L = real length).
    public var causal: Bool
    /// Sliding-window attention (causal only): a query sees only the `window` latest keys, its
    /// own included (key j visible iff q − j < window; Gemma, llama.cpp's n_swa). 0: no window.
    public var window: Int = 0
    /// The factor on q·k; nil: 1/√HS.
    public var scale: Float? = nil
    /// Many-query products with swift-lm's own GEMM (`lm_sgemm`) instead of OpenBLAS: the same
    /// FMA chains on any CPU, whatever kernels OpenBLAS picks (newer architectures' choice;
    /// GPT-2 and BERT keep OpenBLAS, their measured numbers came from it).
    public var ownGEMM = false

    public init(T: Int, L: Int, NH: Int, KVH: Int, HS: Int, qStride: Int, kvStride: Int, outStride: Int, causal: Bool,
                window: Int = 0, scale: Float? = nil) {
        self.T = T; self.L = L; self.NH = NH; self.KVH = KVH; self.HS = HS
        self.qStride = qStride; self.kvStride = kvStride; self.outStride = outStride; self.causal = causal
        self.window = window; self.scale = scale
    }

    /// Query rows per block in the many-query path.
    static let block = 128

    /// Floats of scratch `attentionForward` needs on a pool of `threads` threads.
    public func scratchCount(threads: Int) -> Int {
        max(max(T, NH) * L, threads * min(T, AttentionDims.block) * L)
    }

    @inline(__always) func visibleKeys(_ t: Int) -> Int { causal ? L - T + t + 1 : L }
    /// The first key query t sees.
    @inline(__always) func firstKey(_ t: Int) -> Int { window > 0 ? max(0, visibleKeys(t) - window) : 0 }
    @inline(__always) func kvHead(_ h: Int) -> Int { h / (NH / KVH) }
    var factor: Float { scale ?? 1 / Float(HS).squareRoot() }
}

/// softmax(q·kᵀ/√HS [+ causal mask]) · v for every head.
///
/// Heads are split across threads. Few queries (decoding): each query is a row of dot products
/// and a weighted sum of value rows. Many queries (prefill): per head two single-threaded
/// `sgemm` calls per block of 128 query rows over the keys the block can see; masked entries
/// are zeroed by the softmax. `scratch` holds `dims.scratchCount(threads:)` floats.
public func attentionForward(out: UnsafeMutablePointer<Float>,
                             q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                             scratch: UnsafeMutablePointer<Float>, dims d: AttentionDims, pool: ThreadPool) {
    let scale = d.factor
    if d.T < 8 {
        pool.parallelFor(d.NH, minimumPerThread: 1) { heads in
            for h in heads {
                let g = d.kvHead(h)
                let s = scratch + h * d.L
                for t in 0..<d.T {
                    let qr = q + t * d.qStride + h * d.HS
                    let j0 = d.firstKey(t), n = d.visibleKeys(t) - j0
                    let kb = k + j0 * d.kvStride + g * d.HS, vb = v + j0 * d.kvStride + g * d.HS
                    for j in 0..<n { s[j] = VectorMath.dot(qr, kb + j * d.kvStride, d.HS) * scale }
                    softmaxRow(s, valid: n, count: n)
                    let o = out + t * d.outStride + h * d.HS
                    o.initialize(repeating: 0, count: d.HS)
                    for j in 0..<n { VectorMath.axpy(o, s[j], vb + j * d.kvStride, d.HS) }
                }
            }
        }
        return
    }
    // Heads split across threads; per head, query rows in blocks that only touch the keys the
    // block's last row can see (causal). Each thread has its own scores area in `scratch`.
    let block = AttentionDims.block
    let gemmScratch = d.ownGEMM ? pool.scratch(bytes: lm_sgemm_scratch_floats() * MemoryLayout<Float>.size) : []
    pool.forEachPiece(d.NH) { h, thread in
        let scores = scratch + thread * min(d.T, block) * d.L
        do {
            let g = d.kvHead(h)
            var t0 = 0
            while t0 < d.T {
                let t1 = min(t0 + block, d.T)
                // The block's queries see keys j0 ..< j0 + n (each row a part of them).
                let j0 = d.firstKey(t0), n = d.visibleKeys(t1 - 1) - j0
                let qb = q + t0 * d.qStride + h * d.HS, kb = k + j0 * d.kvStride + g * d.HS
                let vb = v + j0 * d.kvStride + g * d.HS, ob = out + t0 * d.outStride + h * d.HS
                // scores (t1 − t0, n) = q_h · k_gᵀ · scale
                if d.ownGEMM {
                    lm_sgemm(1, qb, d.qStride, kb, d.kvStride, scores, n, 0, t1 - t0, n, d.HS, nil, nil, 0,
                             gemmScratch[thread].assumingMemoryBound(to: Float.self))
                } else {
                    BLAS.sgemm(transB: true, M: t1 - t0, N: n, K: d.HS, alpha: scale, A: qb, lda: d.qStride, B: kb,
                               ldb: d.kvStride, C: scores, ldc: n)
                }
                for r in 0..<(t1 - t0) {
                    let row = scores + r * n, lo = d.firstKey(t0 + r) - j0, hi = d.visibleKeys(t0 + r) - j0
                    if d.ownGEMM { for j in lo..<hi { row[j] *= scale } }
                    if lo > 0 { row.initialize(repeating: 0, count: lo) }
                    softmaxRow(row + lo, valid: hi - lo, count: n - lo)
                }
                // out_h (t1 − t0, HS) = probs · v_g
                if d.ownGEMM {
                    lm_sgemm(0, scores, n, vb, d.kvStride, ob, d.outStride, 0, t1 - t0, d.HS, n, nil, nil, 0,
                             gemmScratch[thread].assumingMemoryBound(to: Float.self))
                } else {
                    BLAS.sgemm(M: t1 - t0, N: d.HS, K: n, A: scores, lda: n, B: vb, ldb: d.kvStride, C: ob, ldc: d.outStride)
                }
                t0 = t1
            }
        }
    }
}

/// Reference twin of `attentionForward`: scores, softmax and weighted sums in Double.
public func attentionForwardRef(out: UnsafeMutablePointer<Float>,
                                q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                                dims d: AttentionDims) {
    let scale = d.scale.map(Double.init) ?? 1 / Double(d.HS).squareRoot()
    var s = [Double](repeating: 0, count: d.L)
    for h in 0..<d.NH {
        let g = d.kvHead(h)
        for t in 0..<d.T {
            let j0 = d.firstKey(t), n = d.visibleKeys(t)
            var m = -Double.infinity
            for j in j0..<n {
                var dot = 0.0
                for c in 0..<d.HS { dot += Double(q[t * d.qStride + h * d.HS + c]) * Double(k[j * d.kvStride + g * d.HS + c]) }
                s[j] = dot * scale
                m = max(m, s[j])
            }
            var z = 0.0
            for j in j0..<n { s[j] = Glibc.exp(s[j] - m); z += s[j] }
            for c in 0..<d.HS {
                var acc = 0.0
                for j in j0..<n { acc += s[j] / z * Double(v[j * d.kvStride + g * d.HS + c]) }
                out[t * d.outStride + h * d.HS + c] = Float(acc)
            }
        }
    }
}

