import LMCore
import LMGeneration
import LMModels
import LMTestSupport
import XCTest

final class SamplerTests: XCTestCase {
    func settings(_ f: (inout SamplerSettings) -> Void) -> SamplerSettings {
        var s = SamplerSettings()
        f(&s)
        return s
    }

    func sample(_ logits: [Float], _ s: SamplerSettings, n: Int = 1) throws -> [Int] {
        let sampler = try Sampler(settings: s, vocabularySize: logits.count)
        return logits.withUnsafeBufferPointer { p in (0..<n).map { _ in sampler.sample(logits: p) } }
    }

    func testGreedyPicksArgmaxWithTiesToLowestID() throws {
        XCTAssertEqual(try sample([0.1, 3, 2, 3], .greedy), [1])
        XCTAssertEqual(try sample([-5, -1, -1, -9], .greedy), [1])
    }

    func testTopKOneAndTinyTopPAreGreedy() throws {
        let logits = randomFloats(500, seed: 1, scale: 4)
        let best = logits.indices.max { logits[$0] < logits[$1] }!
        XCTAssertEqual(Set(try sample(logits, settings { $0.topK = 1; $0.temperature = 1.5 }, n: 50)), [best])
        XCTAssertEqual(Set(try sample(logits, settings { $0.topK = 0; $0.topP = 1e-6; $0.minP = 0; $0.temperature = 2 }, n: 50)), [best])
    }

    func testTopKRestrictsToTheKBest() throws {
        let logits = randomFloats(300, seed: 2, scale: 1)
        let top5 = Set(logits.indices.sorted { logits[$0] > logits[$1] }.prefix(5))
        let drawn = Set(try sample(logits, settings { $0.topK = 5; $0.topP = 1; $0.minP = 0; $0.temperature = 5 }, n: 500))
        XCTAssertTrue(drawn.isSubset(of: top5))
        XCTAssertEqual(drawn.count, 5, "high temperature should reach all five")
    }

    func testTopPKeepsTheSmallestSetReachingTheMass() throws {
        // probabilities 0.5, 0.3, 0.15, 0.05
        let logits = [0.5, 0.3, 0.15, 0.05].map { Float(log($0)) }
        for (p, allowed) in [(0.45, Set([0])), (0.75, Set([0, 1])), (0.85, Set([0, 1, 2])), (0.99, Set([0, 1, 2, 3]))] {
            for k in [0, 3, 4] where !(k == 3 && allowed.count == 4) {
                let s = settings { $0.topK = k; $0.topP = Float(p); $0.minP = 0; $0.temperature = 1 }
                let drawn = Set(try sample(logits, s, n: 2000))
                XCTAssertEqual(drawn, allowed.intersection(0..<(k == 0 ? 4 : k)), "top-p \(p) top-k \(k)")
            }
        }
    }

    func testMinPDropsUnlikelyTokens() throws {
        let logits = [0.6, 0.3, 0.09, 0.01].map { Float(log($0)) }
        let drawn = Set(try sample(logits, settings { $0.topK = 0; $0.topP = 1; $0.minP = 0.2; $0.temperature = 1 }, n: 2000))
        XCTAssertEqual(drawn, [0, 1])
    }

    func testFrequenciesFollowTheSoftmaxAtTemperatureOne() throws {
        let probs: [Float] = [0.5, 0.25, 0.125, 0.125]
        let drawn = try sample(probs.map { log($0) }, settings { $0.topK = 0; $0.topP = 1; $0.minP = 0; $0.temperature = 1; $0.seed = 9 }, n: 20_000)
        for (i, p) in probs.enumerated() {
            let f = Float(drawn.filter { $0 == i }.count) / Float(drawn.count)
            XCTAssertEqual(f, p, accuracy: 0.015, "token \(i)")
        }
    }

    func testRepetitionPenaltyLowersSeenTokens() throws {
        // Positive logits are divided by the penalty, negative ones multiplied; each token once.
        let sampler = try Sampler(settings: settings { $0.temperature = 0; $0.repeatPenalty = 3 }, vocabularySize: 4)
        let positive: [Float] = [2, 1.9, 0.5, 0.1]
        positive.withUnsafeBufferPointer { p in
            XCTAssertEqual(sampler.sample(logits: p), 0)
            sampler.accept(0); sampler.accept(0)
            XCTAssertEqual(sampler.sample(logits: p), 1, "2/3 < 1.9")
            sampler.accept(1)
            XCTAssertEqual(sampler.sample(logits: p), 0, "2/3 > 1.9/3 > 0.5: penalised once, not per occurrence")
        }
        let negative: [Float] = [-1, -1.2, -5, -6]
        sampler.resetHistory()
        negative.withUnsafeBufferPointer { p in
            sampler.accept(0)
            XCTAssertEqual(sampler.sample(logits: p), 1, "-1·3 < -1.2")
        }
    }

    func testSameSeedSameTokensDifferentSeedDifferentTokens() throws {
        let logits = randomFloats(1000, seed: 3, scale: 2)
        let s = settings { $0.topK = 0; $0.topP = 1; $0.minP = 0; $0.temperature = 1; $0.seed = 5 }
        XCTAssertEqual(try sample(logits, s, n: 100), try sample(logits, s, n: 100))
        XCTAssertNotEqual(try sample(logits, s, n: 100), try sample(logits, settings { $0 = s; $0.seed = 6 }, n: 100))
    }

    func testInvalidSettingsAreRejected() {
        for bad in [settings { $0.topP = 2 }, settings { $0.topP = 0 }, settings { $0.temperature = -1 },
                    settings { $0.minP = 1.5 }, settings { $0.topK = -3 }, settings { $0.repeatPenalty = 0 }] {
            XCTAssertThrowsError(try Sampler(settings: bad, vocabularySize: 10)) { e in
                XCTAssertEqual((e as? LMError)?.kind, .invalidArgument)
            }
        }
    }
}

final class TokenGeneratorTests: XCTestCase {
    func model(threads: Int) throws -> any CausalLanguageModel {
        try ModelRegistry.loadCausalLM(folder: try TestPaths.sharedFile("fixtures/gpt2-tiny/model"), pool: ThreadPool(threads: threads))
    }

    func testGreedyGenerationMatchesHuggingFace() throws {
        let meta = try loadJSON(try TestPaths.sharedFile("fixtures/gpt2-tiny/generate.json"))
        for threads in [1, 2] {
            let lm = try model(threads: threads)
            for prompt in meta["prompts"] as! [[String: Any]] {
                let gen = try TokenGenerator(model: lm, settings: .greedy)
                gen.stopTokens = []
                var out: [Int] = []
                let stats = try gen.generate(prompt: ints(prompt["prompt_ids"]), maxTokens: 20) { out.append($0); return true }
                XCTAssertEqual(out, ints(prompt["new_ids"]), "\(prompt["name"]!) on \(threads) threads")
                XCTAssertEqual(stats.generatedTokens, 20)
                XCTAssertEqual(gen.cache.length, ints(prompt["prompt_ids"]).count + 19)
            }
        }
    }

    func testSeededSamplingIsTheSameOnOneAndTwoThreads() throws {
        var s = SamplerSettings()
        s.temperature = 1.0; s.topK = 0; s.topP = 0.98; s.minP = 0.01; s.seed = 1234; s.repeatPenalty = 1.1
        var runs: [[Int]] = []
        for threads in [1, 2, 1] {
            let gen = try TokenGenerator(model: try model(threads: threads), settings: s)
            gen.stopTokens = []
            var out: [Int] = []
            try gen.generate(prompt: [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15], maxTokens: 60) { out.append($0); return true }
            runs.append(out)
        }
        XCTAssertEqual(runs[0], runs[1])
        XCTAssertEqual(runs[0], runs[2])
        XCTAssertEqual(runs[0].count, 60)
    }

    func testGenerationStopsAtEOSAndAtTheContextEnd() throws {
        let lm = try model(threads: 1)
        let gen = try TokenGenerator(model: lm, settings: .greedy)
        gen.stopTokens = [290]  // the fixture's first greedy token for this prompt
        var out: [Int] = []
        let stats = try gen.generate(prompt: [992, 211, 349, 527], maxTokens: 20) { out.append($0); return true }
        XCTAssertEqual(out, [])
        XCTAssertTrue(stats.stoppedAtEOS)

        let full = try TokenGenerator(model: lm, settings: .greedy)
        full.stopTokens = []
        full.slideWhenFull = false
        var n = 0
        try full.generate(prompt: [Int](repeating: 3, count: 120), maxTokens: 50) { _ in n += 1; return true }
        XCTAssertEqual(n, 9, "120 prompt tokens + 8 fed back fill the 128-position context; the 9th is sampled last")

        // Sliding: the window is re-encoded from its newest half and generation goes on.
        let sliding = try TokenGenerator(model: lm, settings: .greedy)
        sliding.stopTokens = []
        var slid: [Int] = []
        let s = try sliding.generate(prompt: [Int](repeating: 3, count: 120), maxTokens: 200) { slid.append($0); return true }
        XCTAssertEqual(slid.count, 200)
        XCTAssertEqual(s.contextShifts, 3)
        XCTAssertEqual(sliding.history.count, sliding.cache.length)
        // The tokens after a shift are what a fresh run on the kept window gives.
        let fresh = try TokenGenerator(model: lm, settings: .greedy)
        fresh.stopTokens = []
        let window = Array(([Int](repeating: 3, count: 120) + slid).prefix(128).suffix(64)) + [slid[8]]
        var next: [Int] = []
        try fresh.generate(prompt: window, maxTokens: 3) { next.append($0); return true }
        XCTAssertEqual(next, Array(slid[9..<12]))
    }
}
