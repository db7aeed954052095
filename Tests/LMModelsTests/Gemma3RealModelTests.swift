import Foundation
import LMCore
import LMModels
import LMTestSupport
import XCTest

/// The real google/gemma-3-270m Q4_K_M file (`make gemma` fetches it; CI does before `make test`)
/// against the exact computation of its weights (`Fixtures/gemma3-270m/make_reference.py`: the
/// float64 reference of ../shared/bench/gguf_ref.py) on 254 positions: a prompt and two lines of
/// WikiText-2. llama.cpp's own top tokens are stored beside them.
final class Gemma3RealModelTests: XCTestCase {
    static let pool = ThreadPool(threads: 2)

    /// The model file: `$LM_CACHE/…`, else `~/.cache/swift-lm/…`; a failure naming `make gemma` when absent.
    static func gemmaFile(file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let cache = ProcessInfo.processInfo.environment["LM_CACHE"] ?? (NSHomeDirectory() + "/.cache/swift-lm")
        let path = cache + "/gemma-3-270m-q4_k_m.gguf"
        guard FileManager.default.fileExists(atPath: path) else {
            XCTFail("the real Gemma 3 270M file is not at \(path) — run `make gemma` (make test fetches it)", file: file, line: line)
            throw XCTSkip("gemma-3-270m-q4_k_m.gguf absent")
        }
        return path
    }

    func testLogitsEqualTheExactComputationOfTheWeights() throws {
        let model = try ModelRegistry.loadCausalLM(path: try Self.gemmaFile(), pool: Self.pool)
        XCTAssertEqual(model.modelType, "gemma3")
        XCTAssertEqual(model.layerCount, 18)
        XCTAssertEqual(model.weightTypes, ["Q5_0": 81, "Q4_K": 27, "Q6_K": 9, "Q8_0": 10])
        let ref = try loadJSON(try TestPaths.checkedIn("LMModelsTests", "gemma3-270m/reference.json"))
        let V = model.vocabularySize
        var positions = 0, agreeExact = 0, agreeLlama = 0
        var worstLogprob = 0.0, meanKL = 0.0
        var lp = [Double](repeating: 0, count: V)
        for seq in ref["sequences"] as! [[String: Any]] {
            let ids = ints(seq["ids"])
            let topIDs = (seq["exact_top_ids"] as! [[Any]]).map(ints)
            let topLP = (seq["exact_top_logprobs"] as! [[Any]]).map { $0.map { ($0 as! NSNumber).doubleValue } }
            let llamaTop = (seq["llamacpp_top_ids"] as! [[Any]]).map(ints)
            for tokenByToken in [false, true] {
                let cache = model.makeCache(capacity: ids.count)
                var logits: [Float] = []
                if tokenByToken {
                    for id in ids { logits += try model.forward(tokens: [id], cache: cache) }
                } else {
                    logits = try model.forward(tokens: ids, cache: cache, allLogits: true)
                }
                for t in 0..<ids.count {
                    let best = logits.withUnsafeBufferPointer { logSoftmaxDouble($0.baseAddress! + t * V, count: V, into: &lp) }
                    positions += 1
                    if best == topIDs[t][0] { agreeExact += 1 }
                    if best == llamaTop[t][0] { agreeLlama += 1 }
                    // KL(exact ‖ ours) over the 16 most likely tokens (nearly all the mass).
                    var kl = 0.0
                    for (i, id) in topIDs[t].enumerated() {
                        worstLogprob = max(worstLogprob, abs(lp[id] - topLP[t][i]))
                        kl += Foundation.exp(topLP[t][i]) * (topLP[t][i] - lp[id])
                    }
                    meanKL += kl
                }
            }
        }
        meanKL /= Double(positions)
        print("gemma-3-270m: \(positions) positions, top-1 \(agreeExact) with the exact computation, \(agreeLlama) with llama.cpp; worst |Δ log p| \(worstLogprob), mean KL (top 16) \(meanKL)")
        XCTAssertEqual(positions, 2 * 254)
        XCTAssertGreaterThanOrEqual(Double(agreeExact) / Double(positions), 0.995, "top-1 agreement with the exact computation")
        XCTAssertLessThanOrEqual(worstLogprob, 1e-3, "log-probabilities of the 16 most likely tokens")
        XCTAssertLessThanOrEqual(abs(meanKL), 1e-5, "KL(exact ‖ swift-lm)")
        XCTAssertGreaterThanOrEqual(Double(agreeLlama) / Double(positions), 0.9, "llama.cpp's own top token (it rounds activations to 8 bits)")
    }
}
