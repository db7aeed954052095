import CKernels
import LMCore
import LMTestSupport
import XCTest

/// The int8 block format and its kernels against their references.
final class Q8Tests: XCTestCase {
    let pools = [ThreadPool(threads: 1), ThreadPool(threads: 2), ThreadPool(threads: 3)]

    func testRoundTripErrorIsWithinHalfAScaleStep() {
        for (rows, cols) in [(3, 64), (5, 50), (1, 1)] {
            let w = randomFloats(rows * cols, seed: 40, scale: 3)
            let q = w.withUnsafeBufferPointer { Q8Matrix.quantize($0.baseAddress!, rows: rows, cols: cols) }
            XCTAssertEqual(q.cols % 32, 0)
            XCTAssertEqual(q.logicalCols, cols)
            let back = q.dequantized().scalars
            for r in 0..<rows {
                for c in 0..<cols {
                    let d = Float(Float16(bitPattern: q.scales[r * q.blocksPerRow + c / 32]))
                    // Half a step, plus the float16 rounding of the scale at the block's extreme.
                    XCTAssertLessThanOrEqual(abs(back[r * cols + c] - w[r * cols + c]), d / 2 + 127 * d / 2048 + 1e-7,
                                             "(\(r), \(c))")
                }
                for c in cols..<q.cols { XCTAssertEqual(q.q[r * q.cols + c], 0, "padding is zero") }
            }
        }
    }

    func testActivationQuantizationMatchesTheReference() {
        let x = randomFloats(256, seed: 41, scale: 5) + [Float](repeating: 0, count: 32)  // one all-zero block
        var q1 = [Int8](repeating: 0, count: x.count), q2 = q1
        var d1 = [Float](repeating: 0, count: x.count / 32), d2 = d1
        lm_q8_quantize_row(x, &q1, &d1, x.count)
        q8QuantizeRowRef(x, q: &q2, d: &d2, n: x.count)
        XCTAssertEqual(q1, q2)
        XCTAssertEqual(d1, d2)
        XCTAssertEqual(d1.last, 0)
    }

    func testMatmulMatchesReferenceForOneAndManyRowsOnAnyThreadCount() {
        for (N, C, OC) in [(1, 64, 100), (1, 50, 33), (1, 768, 300), (7, 96, 70), (40, 64, 600), (13, 800, 37), (20, 50, 130)] {
            let x = randomFloats(N * C, seed: 42), wf = randomFloats(OC * C, seed: 43, scale: 0.1), b = randomFloats(OC, seed: 44)
            let w = wf.withUnsafeBufferPointer { Q8Matrix.quantize($0.baseAddress!, rows: OC, cols: C) }
            var ref = [Float](repeating: 0, count: N * OC)
            q8MatmulForwardRef(out: &ref, inp: x, weight: w, bias: b, N: N)
            var outs: [[Float]] = []
            for pool in pools {
                let ws = Q8Workspace(maxCols: C)
                var y = [Float](repeating: 0, count: N * OC)
                q8MatmulForward(out: &y, inp: x, weight: w, bias: b, N: N, workspace: ws, pool: pool)
                assertClose(y, ref, tol: 1e-5 * Float(C).squareRoot() * 4, "q8 N=\(N) C=\(C) OC=\(OC) threads=\(pool.threadCount)")
                outs.append(y)
            }
            XCTAssertTrue(outs[0] == outs[1] && outs[0] == outs[2], "identical on 1, 2, 3 threads (N=\(N))")
            // And close to the float product: int8 costs well under 1 % of the output scale.
            var exact = [Float](repeating: 0, count: N * OC)
            matmulForwardRef(out: &exact, inp: x, weight: wf, bias: b, N: N, C: C, OC: OC, layout: .outIn)
            let scale = maxAbs(exact)
            XCTAssertLessThan(maxAbsDiff(outs[0], exact) / scale, 0.01, "int8 vs float N=\(N)")
        }
    }

    func testAccumulateAddsToTheOutput() {
        let C = 64, OC = 40
        let x = randomFloats(C, seed: 45), wf = randomFloats(OC * C, seed: 46)
        let w = wf.withUnsafeBufferPointer { Q8Matrix.quantize($0.baseAddress!, rows: OC, cols: C) }
        let ws = Q8Workspace(maxCols: C)
        var y = [Float](repeating: 0, count: OC)
        q8MatmulForward(out: &y, inp: x, weight: w, bias: nil, N: 1, workspace: ws, pool: pools[1])
        var z = [Float](repeating: 1, count: OC)
        q8MatmulForward(out: &z, inp: x, weight: w, bias: nil, N: 1, accumulate: true, workspace: ws, pool: pools[1])
        assertClose(z, y.map { $0 + 1 }, tol: 1e-6, "accumulate")
    }

    func testBatchedAccumulateAddsToTheOutput() {
        let N = 9, C = 96, OC = 50
        let x = randomFloats(N * C, seed: 48), wf = randomFloats(OC * C, seed: 49), b = randomFloats(OC, seed: 50)
        let w = wf.withUnsafeBufferPointer { Q8Matrix.quantize($0.baseAddress!, rows: OC, cols: C) }
        let ws = Q8Workspace(maxCols: C)
        var y = [Float](repeating: 0, count: N * OC)
        q8MatmulForward(out: &y, inp: x, weight: w, bias: b, N: N, workspace: ws, pool: pools[1])
        let start = randomFloats(N * OC, seed: 51)
        var z = start
        q8MatmulForward(out: &z, inp: x, weight: w, bias: b, N: N, accumulate: true, workspace: ws, pool: pools[1])
        assertClose(z, zip(y, start).map { $0 + $1 }, tol: 1e-5, "batched accumulate")
    }

    /// The batched path dequantizes while packing: the same bits as the float GEMM on the
    /// dequantized matrix (each weight is d·q exactly, and the FMA chains are the same).
    func testBatchedProductEqualsFloatGemmOnTheDequantizedMatrix() {
        let N = 31, C = 800, OC = 70   // several k-blocks, edge rows and columns
        let x = randomFloats(N * C, seed: 52), wf = randomFloats(OC * C, seed: 53, scale: 0.2), b = randomFloats(OC, seed: 54)
        let w = wf.withUnsafeBufferPointer { Q8Matrix.quantize($0.baseAddress!, rows: OC, cols: C) }
        var y = [Float](repeating: 0, count: N * OC)
        q8MatmulForward(out: &y, inp: x, weight: w, bias: b, N: N, workspace: Q8Workspace(maxCols: C), pool: pools[2])
        let deq = w.dequantized()
        var ref = [Float](repeating: 0, count: N * OC)
        var scratch = [Float](repeating: 0, count: lm_sgemm_scratch_floats())
        lm_sgemm(1, x, C, deq.data, C, &ref, OC, 0, N, OC, C, b, nil, 0, &scratch)
        XCTAssertEqual(y, ref)
    }

    func testCorruptScalesAreDetected() {
        let w = randomFloats(2 * 32, seed: 47)
        let q = w.withUnsafeBufferPointer { Q8Matrix.quantize($0.baseAddress!, rows: 2, cols: 32) }
        XCTAssertNoThrow(try q.validateScales(name: "w"))
        q.scales[1] = Float16.nan.bitPattern
        XCTAssertThrowsError(try q.validateScales(name: "w")) { e in
            XCTAssertTrue((e as? LMError)?.message.contains("corrupt scale") == true)
        }
    }
}
