// Micro-benchmarks of the hot kernels on GPT-2-124M shapes: GEMV bandwidth (decode) and
// GEMM throughput (prefill). Run: swift run -c release lm-kernel-bench [threads]
import LMCore

#if canImport(Glibc)
import Glibc
#endif

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

let threads = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 2 : 2
Threads.configure(threads)
let pool = Threads.shared
let C = 768

// 48 distinct (C × 3C)-sized matrices ≈ 453 MB, so weights stream from DRAM like a 12-layer model.
struct Shape { let name: String; let C: Int; let OC: Int; let layout: WeightLayout; let copies: Int }
let shapes = [
    Shape(name: "qkv  768x2304 inOut", C: C, OC: 3 * C, layout: .inOut, copies: 48),
    Shape(name: "fc   768x3072 inOut", C: C, OC: 4 * C, layout: .inOut, copies: 36),
    Shape(name: "proj 3072x768 inOut", C: 4 * C, OC: C, layout: .inOut, copies: 36),
    Shape(name: "head 50257x768 outIn", C: C, OC: 50257, layout: .outIn, copies: 3),
]
var rng = SeededRNG(seed: 1)
for s in shapes {
    let mats = (0..<s.copies).map { _ -> Tensor in
        let t = Tensor(zeros: [s.C, s.OC])
        rng.fillNormal(t.buffer, std: 0.02)
        return t
    }
    let x = Tensor(zeros: [s.C]); rng.fillNormal(x.buffer, std: 1)
    let y = Tensor(zeros: [s.OC])
    var best = Double.infinity
    for _ in 0..<5 {
        let t0 = now()
        for m in mats {
            matmulForward(out: y.data, inp: x.data, weight: m.data, bias: nil, N: 1, C: s.C, OC: s.OC, layout: s.layout, pool: pool)
        }
        best = min(best, now() - t0)
    }
    let bytes = Double(s.copies * s.C * s.OC * 4)
    print(String(format: "gemv %@: %.1f GB/s (%.3f ms per matrix)", s.name, bytes / best / 1e9, best / Double(s.copies) * 1e3))
}

// Prefill-like GEMM: [512 × 768] · [768 × 3072].
let a = Tensor(zeros: [512, C]), w = Tensor(zeros: [C, 4 * C]), o = Tensor(zeros: [512, 4 * C])
rng.fillNormal(a.buffer, std: 1); rng.fillNormal(w.buffer, std: 0.02)
var best = Double.infinity
for _ in 0..<10 {
    let t0 = now()
    matmulForward(out: o.data, inp: a.data, weight: w.data, bias: nil, N: 512, C: C, OC: 4 * C, layout: .inOut, pool: pool)
    best = min(best, now() - t0)
}
print(String(format: "gemm 512x768x3072: %.1f GFLOP/s", 2.0 * 512 * 768 * 3072 / best / 1e9))

// Pool dispatch overhead.
let n = 20_000
let t0 = now()
for _ in 0..<n { pool.run { _ in } }
print(String(format: "pool.run: %.2f µs per dispatch", (now() - t0) / Double(n) * 1e6))

// GEMM threaded by swift-lm's pool (`gemm`: OpenBLAS single-threaded inside each call, output
// columns cut into fixed pieces) against OpenBLAS's own threading, on prefill and training shapes.
func gemmSplit(M: Int, K: Int, N: Int, a: UnsafePointer<Float>, w: UnsafePointer<Float>, o: UnsafeMutablePointer<Float>) {
    gemm(transB: true, M: M, N: N, K: K, A: a, lda: K, B: w, ldb: K, C: o, ldc: N, pool: pool)
}
for (M, K, N) in [(512, 768, 3072), (512, 3072, 768), (768, 128, 384), (768, 128, 512), (768, 512, 128), (16384, 384, 1536)] {
    let a = Tensor(zeros: [M, K]), w = Tensor(zeros: [N, K]), o = Tensor(zeros: [M, N])
    rng.fillNormal(a.buffer, std: 1); rng.fillNormal(w.buffer, std: 0.02)
    let reps = M * N * K > 1_000_000_000 ? 3 : 20
    var bestOwn = Double.infinity, bestSplit = Double.infinity
    BLAS.setThreads(threads)
    for _ in 0..<reps {
        let t0 = now()
        BLAS.sgemm(transB: true, M: M, N: N, K: K, A: a.data, lda: K, B: w.data, ldb: K, C: o.data, ldc: N)
        bestOwn = min(bestOwn, now() - t0)
    }
    BLAS.setThreads(1)
    for _ in 0..<reps {
        let t0 = now()
        gemmSplit(M: M, K: K, N: N, a: a.data, w: w.data, o: o.data)
        bestSplit = min(bestSplit, now() - t0)
    }
    let flops = 2.0 * Double(M * N * K)
    print(String(format: "gemm %dx%dx%d: OpenBLAS threads %.1f GFLOP/s, pool split %.1f GFLOP/s",
                 M, K, N, flops / bestOwn / 1e9, flops / bestSplit / 1e9))
}
BLAS.setThreads(threads)

// Q8 GEMV (decode) on the same shapes, weights cold.
let q8ws = Q8Workspace(maxCols: 4 * C)
for s in shapes where s.layout == .inOut || s.name.hasPrefix("head") {
    let rows = s.layout == .inOut ? s.OC : s.OC, cols = s.layout == .inOut ? s.C : s.C
    let mats = (0..<s.copies).map { _ -> Q8Matrix in
        let t = Tensor(zeros: [rows, cols])
        rng.fillNormal(t.buffer, std: 0.02)
        return Q8Matrix.quantize(t.data, rows: rows, cols: cols)
    }
    let x = Tensor(zeros: [cols]); rng.fillNormal(x.buffer, std: 1)
    let y = Tensor(zeros: [rows])
    var best = Double.infinity
    for _ in 0..<5 {
        let t0 = now()
        for m in mats { q8MatmulForward(out: y.data, inp: x.data, weight: m, bias: nil, N: 1, workspace: q8ws, pool: pool) }
        best = min(best, now() - t0)
    }
    let bytes = Double(mats.reduce(0) { $0 + $1.bytes })
    print(String(format: "q8 gemv %@: %.1f GB/s (%.3f ms per matrix)", s.name, bytes / best / 1e9, best / Double(s.copies) * 1e3))
}

// Batched products on GPT-2-124M's prefill shapes (512 rows, (out, in) weights, with bias):
// float through `matmulForward` (OpenBLAS in pool pieces, bias pre-filled) against Q8 through
// `q8MatmulForward` (swift-lm's GEMM, weights dequantized while packed). Best of 15 each,
// interleaved; the total weights the shapes as a 12-layer prefill does (one of each per layer).
let prefillShapes = [("qkv  512x768x2304", 768, 2304), ("proj 512x768x768", 768, 768),
                     ("fc   512x768x3072", 768, 3072), ("mlp  512x3072x768", 3072, 768)]
var floatTotal = 0.0, q8Total = 0.0
for (name, K, N) in prefillShapes {
    let a = Tensor(zeros: [512, K]), wf = Tensor(zeros: [N, K]), o = Tensor(zeros: [512, N]), bias = Tensor(zeros: [N])
    rng.fillNormal(a.buffer, std: 1); rng.fillNormal(wf.buffer, std: 0.02); rng.fillNormal(bias.buffer, std: 0.02)
    let wq = Q8Matrix.quantize(wf.data, rows: N, cols: K)
    let ws = Q8Workspace(maxCols: K)
    var bestF = Double.infinity, bestQ = Double.infinity
    for _ in 0..<15 {
        var t0 = now()
        matmulForward(out: o.data, inp: a.data, weight: wf.data, bias: bias.data, N: 512, C: K, OC: N, layout: .outIn, pool: pool)
        bestF = min(bestF, now() - t0)
        t0 = now()
        q8MatmulForward(out: o.data, inp: a.data, weight: wq, bias: bias.data, N: 512, workspace: ws, pool: pool)
        bestQ = min(bestQ, now() - t0)
    }
    floatTotal += bestF; q8Total += bestQ
    let flops = 2.0 * 512 * Double(K * N)
    print(String(format: "prefill %@: float %.2f ms (%.1f GFLOP/s), q8 %.2f ms (%.1f GFLOP/s), q8/float time %.3f",
                 name, bestF * 1e3, flops / bestF / 1e9, bestQ * 1e3, flops / bestQ / 1e9, bestQ / bestF))
}
print(String(format: "prefill, one layer's four products: float %.2f ms, q8 %.2f ms, q8/float time %.3f",
             floatTotal * 1e3, q8Total * 1e3, q8Total / floatTotal))
