import LMCore
import LMTestSupport
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Every fast kernel against its plain reference twin.
final class KernelTests: XCTestCase {
    let pools = [ThreadPool(threads: 1), ThreadPool(threads: 2), ThreadPool(threads: 3)]

    func testExpTanhErfMatchLibm() {
        var worstExp: Float = 0, worstTanh: Float = 0, worstErf: Float = 0
        var x: Float = -87
        while x < 88 {
            let e = Float(Glibc.exp(Double(x)))
            worstExp = max(worstExp, abs(VectorMath.exp(x) - e) / e)
            if abs(x) < 20 {
                worstTanh = max(worstTanh, abs(VectorMath.tanh(x) - Float(Glibc.tanh(Double(x)))))
                worstErf = max(worstErf, abs(VectorMath.erf(x) - Float(Glibc.erf(Double(x)))))
            }
            x += 0.0137
        }
        XCTAssertLessThan(worstExp, Tolerance.transcendental, "exp relative error")
        XCTAssertLessThan(worstTanh, 1e-6, "tanh abs error")
        XCTAssertLessThan(worstErf, 3e-7, "erf abs error")
        XCTAssertEqual(VectorMath.exp(-.infinity), 0)
        XCTAssertEqual(VectorMath.exp(-200), 0)
        XCTAssertTrue(VectorMath.exp(100).isFinite)
    }

    func testLayerNormMatchesReference() {
        for (N, C) in [(1, 64), (5, 768), (3, 13)] {
            let x = randomFloats(N * C, seed: 1, scale: 3)
            let w = randomFloats(C, seed: 2), b = randomFloats(C, seed: 3)
            var fast = [Float](repeating: 0, count: N * C), ref = fast
            var mean = [Float](repeating: 0, count: N), rstd = mean
            layerNormForward(out: &fast, mean: &mean, rstd: &rstd, inp: x, weight: w, bias: b, N: N, C: C, eps: 1e-5)
            layerNormForwardRef(out: &ref, inp: x, weight: w, bias: b, N: N, C: C, eps: 1e-5)
            assertClose(fast, ref, tol: 1e-5, "layernorm \(N)x\(C)")
            XCTAssertTrue(rstd.allSatisfy { $0 > 0 })
        }
    }

    func testGELUMatchesReference() {
        let x = randomFloats(20_000, seed: 4, scale: 8)
        for kind in [GELUKind.tanh, .erf] {
            var fast = [Float](repeating: 0, count: x.count), ref = fast
            geluForward(out: &fast, inp: x, n: x.count, kind: kind, pool: pools[1])
            geluForwardRef(out: &ref, inp: x, n: x.count, kind: kind)
            assertClose(fast, ref, tol: 4e-6, "gelu \(kind)")
        }
    }

    /// The C GELU loops do the scalar Swift helpers' operations one for one: equal to the bit,
    /// in place too, on a length that leaves a vector remainder, over the clamping range of exp.
    func testGELUCLoopsAreBitIdenticalToTheSwiftScalarHelpers() {
        var x = randomFloats(10_003, seed: 41, scale: 12)
        x += [0, -0.0, 1e-30, -1e-30, 100, -100, 200, -200, 87.3, -87.3, 44.2, -44.2, .infinity, -.infinity]
        let n = x.count
        for kind in [GELUKind.tanh, .erf] {
            var fast = [Float](repeating: 0, count: n), scalar = fast
            geluForward(out: &fast, inp: x, n: n, kind: kind, pool: pools[1])
            geluForwardScalar(out: &scalar, inp: x, n: n, kind: kind)
            var inPlace = x
            inPlace.withUnsafeMutableBufferPointer { geluForward(out: $0.baseAddress!, inp: $0.baseAddress!, n: n, kind: kind) }
            XCTAssertEqual(fast.map(\.bitPattern), scalar.map(\.bitPattern), "gelu \(kind): C loop vs Swift scalar")
            XCTAssertEqual(inPlace.map(\.bitPattern), scalar.map(\.bitPattern), "gelu \(kind) in place")

            var out = [Float](repeating: 0, count: n), deriv = out, outS = out, derivS = out
            geluForwardSaving(out: &out, derivative: &deriv, inp: x, n: n, kind: kind, pool: pools[1])
            geluForwardSavingScalar(out: &outS, derivative: &derivS, inp: x, n: n, kind: kind)
            XCTAssertEqual(out.map(\.bitPattern), outS.map(\.bitPattern), "gelu saving \(kind): value")
            XCTAssertEqual(deriv.map(\.bitPattern), derivS.map(\.bitPattern), "gelu saving \(kind): derivative")
            var aliased = x
            aliased.withUnsafeMutableBufferPointer { p in
                out.withUnsafeMutableBufferPointer { geluForwardSaving(out: $0.baseAddress!, derivative: p.baseAddress!, inp: p.baseAddress!, n: n, kind: kind) }
            }
            XCTAssertEqual(aliased.map(\.bitPattern), derivS.map(\.bitPattern), "gelu saving \(kind): derivative in place")
        }
    }

    func testSoftmaxMatchesReference() {
        let x = randomFloats(7 * 100, seed: 5, scale: 20)
        var fast = [Float](repeating: 0, count: x.count), ref = fast
        softmaxForward(out: &fast, inp: x, N: 7, C: 100)
        softmaxForwardRef(out: &ref, inp: x, N: 7, C: 100)
        assertClose(fast, ref, tol: 1e-6, "softmax")
        for n in 0..<7 {
            XCTAssertEqual(fast[n * 100..<(n + 1) * 100].reduce(0, +), 1, accuracy: 1e-5)
        }
    }

    func testMatmulMatchesReferenceInBothLayoutsAndShapes() {
        // (13, 7, 21) and (50, 256, 40): swift-lm's own short-K GEMM with edge rows and columns.
        for (N, C, OC) in [(1, 64, 192), (1, 131, 67), (1, 768, 50), (4, 64, 100), (17, 33, 65), (13, 7, 21), (50, 256, 40)] {
            let x = randomFloats(N * C, seed: 6)
            let w = randomFloats(C * OC, seed: 7)
            let b = randomFloats(OC, seed: 8)
            for layout in [WeightLayout.inOut, .outIn] {
                for useBias in [true, false] {
                    for accumulate in [false, true] {
                        let start = randomFloats(N * OC, seed: 9)
                        var ref = start
                        matmulForwardRef(out: &ref, inp: x, weight: w, bias: useBias ? b : nil,
                                         N: N, C: C, OC: OC, layout: layout, accumulate: accumulate)
                        for pool in pools {
                            var fast = start
                            matmulForward(out: &fast, inp: x, weight: w, bias: useBias ? b : nil,
                                          N: N, C: C, OC: OC, layout: layout, accumulate: accumulate, pool: pool)
                            let tol = Tolerance.kernel * Float(C).squareRoot() * 4
                            assertClose(fast, ref, tol: tol,
                                        "matmul N=\(N) C=\(C) OC=\(OC) \(layout) bias=\(useBias) acc=\(accumulate) threads=\(pool.threadCount)")
                        }
                    }
                }
            }
        }
    }

    func testGEMMIsBitIdenticalForAnyThreadCount() {
        for (N, C, OC) in [(5, 128, 384), (64, 96, 1000), (300, 64, 64), (301, 128, 50)] {
            let x = randomFloats(N * C, seed: 20), w = randomFloats(C * OC, seed: 21)
            var outs: [[Float]] = []
            for pool in pools {
                for layout in [WeightLayout.inOut, .outIn] {
                    var y = [Float](repeating: 0, count: N * OC)
                    matmulForward(out: &y, inp: x, weight: w, bias: nil, N: N, C: C, OC: OC, layout: layout, pool: pool)
                    outs.append(y)
                }
            }
            XCTAssertTrue(outs[0] == outs[2] && outs[0] == outs[4], "inOut N=\(N)")
            XCTAssertTrue(outs[1] == outs[3] && outs[1] == outs[5], "outIn N=\(N)")
        }
    }

    func testGEMVIsBitIdenticalForAnyThreadCount() {
        let C = 768, OC = 3 * 768
        let x = randomFloats(C, seed: 10), w = randomFloats(C * OC, seed: 11), b = randomFloats(OC, seed: 12)
        var outs: [[Float]] = []
        for pool in pools {
            for layout in [WeightLayout.inOut, .outIn] {
                var y = [Float](repeating: 0, count: OC)
                matmulForward(out: &y, inp: x, weight: w, bias: b, N: 1, C: C, OC: OC, layout: layout, pool: pool)
                outs.append(y)
            }
        }
        XCTAssertEqual(outs[0], outs[2]); XCTAssertEqual(outs[0], outs[4])
        XCTAssertEqual(outs[1], outs[3]); XCTAssertEqual(outs[1], outs[5])
    }

    func testAttentionMatchesReference() {
        // (T new queries, L keys, NH, KVH, HS, causal): decode, small batch, sgemm path, GQA, bidirectional.
        let cases: [(Int, Int, Int, Int, Int, Bool)] = [
            (1, 1, 4, 4, 16, true), (1, 37, 4, 4, 16, true), (3, 10, 4, 2, 16, true),
            (20, 20, 4, 4, 16, true), (24, 50, 2, 1, 32, true), (12, 12, 4, 4, 16, false),
        ]
        for (T, L, NH, KVH, HS, causal) in cases {
            let qStride = NH * HS + 5, kvStride = KVH * HS + 3, outStride = NH * HS
            let q = randomFloats(T * qStride, seed: 13, scale: 2)
            let k = randomFloats(L * kvStride, seed: 14, scale: 2)
            let v = randomFloats(L * kvStride, seed: 15)
            let d = AttentionDims(T: T, L: L, NH: NH, KVH: KVH, HS: HS, qStride: qStride, kvStride: kvStride,
                                  outStride: outStride, causal: causal)
            var ref = [Float](repeating: 0, count: T * outStride)
            attentionForwardRef(out: &ref, q: q, k: k, v: v, dims: d)
            for pool in pools {
                var fast = [Float](repeating: 0, count: T * outStride)
                var scratch = [Float](repeating: .nan, count: d.scratchCount(threads: pool.threadCount))
                attentionForward(out: &fast, q: q, k: k, v: v, scratch: &scratch, dims: d, pool: pool)
                assertClose(fast, ref, tol: 1e-5, "attention T=\(T) L=\(L) NH=\(NH) KVH=\(KVH) causal=\(causal)")
            }
        }
    }

    func testEmbeddingAddsTokenAndPosition() {
        let V = 10, C = 4
        let wte = (0..<V * C).map { Float($0) }, wpe = (0..<8 * C).map { Float($0) * 0.5 }
        let ids: [Int32] = [3, 0, 9]
        var out = [Float](repeating: 0, count: 3 * C)
        embeddingForward(out: &out, tokens: ids, tokenTable: wte, positionTable: wpe, startPosition: 2, T: 3, C: C)
        for t in 0..<3 {
            for c in 0..<C {
                XCTAssertEqual(out[t * C + c], wte[Int(ids[t]) * C + c] + wpe[(2 + t) * C + c])
            }
        }
    }

    func testThreadPoolChunksCoverTheRangeOnce() {
        for n in [0, 1, 7, 64, 1000, 1001] {
            for parts in 1...4 {
                var seen = [Int](repeating: 0, count: n)
                for i in 0..<parts {
                    for j in ThreadPool.chunk(n, parts: parts, index: i, grain: 8) { seen[j] += 1 }
                }
                XCTAssertEqual(seen, [Int](repeating: 1, count: n), "n=\(n) parts=\(parts)")
            }
        }
        let pool = pools[1]
        var hits = [Int](repeating: 0, count: 10_000)
        hits.withUnsafeMutableBufferPointer { h in
            for _ in 0..<200 {
                pool.parallelFor(h.count, grain: 16) { r in for i in r { h[i] += 1 } }
            }
        }
        XCTAssertEqual(Set(hits), [200])
    }
}

extension KernelTests {
    /// The training GELU (value and saved derivative) against the plain forward and backward.
    func testGELUSavingMatchesForwardAndBackward() {
        let x = randomFloats(5000, seed: 30, scale: 6)
        let dout = randomFloats(5000, seed: 31)
        for kind in [GELUKind.tanh, .erf] {
            var y = [Float](repeating: 0, count: x.count), d = y, yRef = y, dRef = y, dinp = y
            geluForwardSaving(out: &y, derivative: &d, inp: x, n: x.count, kind: kind)
            geluForward(out: &yRef, inp: x, n: x.count, kind: kind)
            geluBackward(dinp: &dRef, inp: x, dout: dout, n: x.count, kind: kind)
            geluBackwardSaved(dinp: &dinp, derivative: d, dout: dout, n: x.count)
            assertClose(y, yRef, tol: 2e-6, "gelu \(kind) value")
            assertClose(dinp, dRef, tol: 2e-6, "gelu \(kind) gradient")
        }
    }
}
