import LMCore
import LMTestSupport
import XCTest

/// Packed bidirectional attention: the fast kernel against its reference twin, the same
/// result on 1 and 2 threads, and the backward against finite differences.
final class PackedAttentionTests: XCTestCase {
    func testForwardMatchesReferenceOnAnyThreadCount() {
        let C = 48, seqs = PackedSequences(lengths: [5, 1, 17, 9], heads: 3)
        let qkv = randomFloats(seqs.rows * 3 * C, seed: 4, scale: 2)
        var ref = [Float](repeating: 0, count: seqs.rows * C)
        packedAttentionForwardRef(out: &ref, qkv: qkv, seqs: seqs, C: C)
        var outs: [[Float]] = []
        for threads in [1, 2] {
            let pool = ThreadPool(threads: threads)
            var out = [Float](repeating: 0, count: seqs.rows * C)
            var scratch = [Float](repeating: 0, count: seqs.scratchCount(threads: threads))
            packedAttentionForward(out: &out, probs: nil, scratch: &scratch, qkv: qkv, seqs: seqs, C: C, pool: pool)
            assertClose(out, ref, tol: Tolerance.kernel * maxAbs(ref), "packed attention, \(threads) threads")
            var probs = [Float](repeating: 0, count: seqs.probabilityCount)
            var saved = [Float](repeating: 0, count: seqs.rows * C)
            packedAttentionForward(out: &saved, probs: &probs, scratch: nil, qkv: qkv, seqs: seqs, C: C, pool: pool)
            GradCheck.assertBitIdentical(saved, out, "saving probabilities changes nothing")
            outs.append(out)
        }
        GradCheck.assertBitIdentical(outs[0], outs[1], "1 vs 2 threads")
    }

    func testBackwardMatchesFiniteDifferences() {
        let C = 8, seqs = PackedSequences(lengths: [3, 1, 4], heads: 2)
        let pool = ThreadPool(threads: 2)
        let qkv = randomFloats(seqs.rows * 3 * C, seed: 7)
        let r = randomFloats(seqs.rows * C, seed: 8)
        var probs = [Float](repeating: 0, count: seqs.probabilityCount)
        var scratch = [Float](repeating: 0, count: seqs.scratchCount(threads: 2))
        func forward(_ x: [Float]) -> [Float] {
            var out = [Float](repeating: 0, count: seqs.rows * C)
            packedAttentionForward(out: &out, probs: &probs, scratch: nil, qkv: x, seqs: seqs, C: C, pool: pool)
            return out
        }
        let numeric = GradCheck.numericGradient(at: qkv) { GradCheck.dot(r, forward($0)) }
        _ = forward(qkv)
        var dqkv = [Float](repeating: 0, count: qkv.count)
        packedAttentionBackward(dqkv: &dqkv, dout: r, qkv: qkv, probs: probs, scratch: &scratch, seqs: seqs, C: C, pool: pool)
        GradCheck.assertMatches(analytic: dqkv, numeric: numeric, "packed attention dqkv")
    }
}
