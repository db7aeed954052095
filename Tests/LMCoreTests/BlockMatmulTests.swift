import CKernels
import LMCore
import LMTestSupport
import XCTest

/// Products with GGUF block weights (`BlockMatrix`): the GEMM that dequantizes while it packs
/// against the float GEMM on the dequantized matrix (the same bits), decoding and prefill against
/// the Double reference, any thread count, and the AVX-512 GEMM kernel against the AVX2 one.
final class BlockMatmulTests: XCTestCase {
    let pools = [ThreadPool(threads: 1), ThreadPool(threads: 2), ThreadPool(threads: 3)]

    override func tearDown() { lm_quant_set_isa(0) }

    /// Random blocks of `type` with sane float16 scales: (rows, cols) weights of magnitude ~0.1.
    func randomBlocks(_ type: WeightType, rows: Int, cols: Int, seed: UInt64) -> [UInt8] {
        var rng = SeededRNG(seed: seed)
        let t = type.traits
        var bytes = (0..<type.bytes(rows: rows, cols: cols)).map { _ in UInt8(truncatingIfNeeded: rng.nextInt(below: 256)) }
        func half(_ v: Float, at i: Int) {
            let h = Float16(v).bitPattern
            bytes[i] = UInt8(h & 0xFF); bytes[i + 1] = UInt8(h >> 8)
        }
        let blocks = bytes.count / t.blockBytes
        for b in 0..<blocks {
            let o = b * t.blockBytes, scale = 0.002 + 0.01 * rng.nextFloat()
            switch type {
            case .q8_0, .q5_0: half(scale, at: o)
            case .q4_K: half(scale, at: o); half(scale / 2, at: o + 2)
            case .q6_K: half(scale / 8, at: o + 208)
            case .f16, .bf16:
                for i in stride(from: 0, to: t.blockBytes, by: 2) {
                    let v = (rng.nextFloat() * 2 - 1) * 0.1
                    if type == .f16 { half(v, at: o + i) } else {
                        let b16 = v.bitPattern >> 16
                        bytes[o + i] = UInt8(b16 & 0xFF); bytes[o + i + 1] = UInt8(b16 >> 8)
                    }
                }
            default: break
            }
        }
        return bytes
    }

    let types: [WeightType] = [.f16, .bf16, .q8_0, .q5_0, .q4_K, .q6_K]

    func testPackingGEMMEqualsTheFloatGEMMOnTheDequantizedMatrixBitForBit() throws {
        for type in types {
            for (M, N, K) in [(7, 37, 256), (13, 64, 512), (30, 20, 768), (150, 48, 1024)] {
                let bytes = randomBlocks(type, rows: N, cols: K, seed: 1)
                try bytes.withUnsafeBytes { raw in
                    let w = try BlockMatrix(type: type, rows: N, cols: K, bytes: raw, owner: nil)
                    let deq = w.dequantizedRef()
                    let a = randomFloats(M * K, seed: 2), bias = randomFloats(N, seed: 3)
                    var scratch = [Float](repeating: 0, count: lm_sgemm_scratch_floats())
                    for isa in [1, 2] {
                        lm_quant_set_isa(Int32(isa))
                        var ref = [Float](repeating: 0, count: M * N), got = ref
                        lm_sgemm(1, a, K, deq.data, K, &ref, N, 0, M, N, K, bias, nil, 0, &scratch)
                        lm_sgemm_blocks(a, K, w.ggmlID, w.base, w.rowBytes, K, &got, N, M, 0, N, bias, 0, &scratch)
                        XCTAssertEqual(got, ref, "\(type) \(M)×\(N)×\(K), ISA \(isa)")
                    }
                }
            }
        }
    }

    func testForwardMatchesTheReferenceForOneAndManyRowsOnAnyThreadCount() throws {
        for type in types {
            for (N, C, OC) in [(1, 512, 100), (1, 1024, 33), (9, 256, 70), (40, 768, 130)] {
                let bytes = randomBlocks(type, rows: OC, cols: C, seed: 4)
                try bytes.withUnsafeBytes { raw in
                    let w = try BlockMatrix(type: type, rows: OC, cols: C, bytes: raw, owner: nil)
                    let x = randomFloats(N * C, seed: 5), b = randomFloats(OC, seed: 6)
                    var ref = [Float](repeating: 0, count: N * OC)
                    w.forwardRef(out: &ref, inp: x, bias: b, N: N)
                    var first: [Float]? = nil
                    for pool in pools {
                        var y = [Float](repeating: 0, count: N * OC)
                        w.forward(out: &y, inp: x, bias: b, N: N, pool: pool)
                        let scale = max(1, maxAbs(ref))
                        XCTAssertLessThanOrEqual(maxAbsDiff(y, ref) / scale, 1e-5, "\(type) \(N)×\(C)×\(OC)")
                        if let first { XCTAssertEqual(y, first, "\(type): the thread count changes nothing") } else { first = y }
                    }
                    // accumulate adds to what is there
                    var acc = [Float](repeating: 1, count: N * OC)
                    w.forward(out: &acc, inp: x, bias: b, N: N, accumulate: true, pool: pools[1])
                    XCTAssertLessThanOrEqual(maxAbsDiff(acc, ref.map { $0 + 1 }) / max(1, maxAbs(ref)), 1e-5, "\(type) accumulate")
                }
            }
        }
    }

    func testTheAVX512GEMMKernelGivesTheAVX2Bits() {
        for (M, N, K) in [(12, 16, 64), (24, 48, 300), (150, 100, 129), (7, 33, 40)] {
            let a = randomFloats(M * K, seed: 7), b = randomFloats(K * N, seed: 8), bias = randomFloats(N, seed: 9)
            let mul = randomFloats(M * N, seed: 10)
            var scratch = [Float](repeating: 0, count: lm_sgemm_scratch_floats())
            var results: [[Float]] = []
            for isa in [1, 2] {
                lm_quant_set_isa(Int32(isa))
                var c = [Float](repeating: 0, count: M * N), d = c
                lm_sgemm(0, a, K, b, N, &c, N, 0, M, N, K, bias, mul, N, &scratch)
                lm_sgemm(1, a, K, b, K, &d, N, 0, M, N, min(K, N), nil, nil, 0, &scratch)
                results.append(c + d)
            }
            XCTAssertEqual(results[0], results[1], "\(M)×\(N)×\(K)")
        }
    }
}
