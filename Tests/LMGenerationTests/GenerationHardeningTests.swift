import Foundation
import LMCore
import LMGeneration
import LMModels
import LMTestSupport
import LMTokenizers
import XCTest

/// Requests and models that must not crash generation: a --max-tokens far beyond any buffer,
/// a temperature whose inverse overflows, weights that make the logits NaN.
final class HugeMaxTokensTests: XCTestCase {
    /// Runs `lm` and reads its stdout until `until` says enough, then stops it (SIGTERM) and
    /// returns what it wrote, how it ended and its stderr.
    func runUntil(_ args: [String], until: (String) -> Bool, timeout: Double = 120)
        throws -> (stdout: String, stderr: String, stopped: Bool, status: Int32, reason: Process.TerminationReason) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: TestPaths.lmBinary)
        p.arguments = args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let errData = readInBackground(err.fileHandleForReading)
        var data = Data()
        var stopped = false
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }  // end of output: the process is done
            data += chunk
            if until(String(decoding: data, as: UTF8.self)) {
                stopped = true
                break
            }
        }
        if p.isRunning { p.terminate() }
        p.waitUntilExit()
        return (String(decoding: data, as: UTF8.self), String(decoding: errData(), as: UTF8.self), stopped,
                p.terminationStatus, p.terminationReason)
    }

    /// `--max-tokens 10^12 --ignore-eos` asks for more than any buffer could hold: generation
    /// must simply run (sliding the window past the 128-token context) until it is stopped.
    func testAHugeMaxTokensRunsUntilStopped() throws {
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: TestPaths.lmBinary), "lm binary not found at \(TestPaths.lmBinary)")
        let r = try runUntil(["generate", "--model", TestPaths.model("gpt2-tiny"), "--prompt-ids", "1,2,3",
                              "--max-tokens", "1000000000000", "--ignore-eos", "--temperature", "0", "--threads", "1"]) { text in
            text.split(separator: " ").count > 300
        }
        XCTAssertTrue(r.stopped, "lm stopped before 300 tokens (status \(r.status)): \(r.stderr)")
        XCTAssertFalse(r.stderr.contains("Fatal error") || r.stderr.contains("Crash"), r.stderr)
        if r.reason == .uncaughtSignal {
            XCTAssertEqual(r.status, SIGTERM, "only our SIGTERM may end it: \(r.stderr)")
        }
        let ids = r.stdout.split(separator: " ").dropLast().map { Int($0) }
        XCTAssertTrue(ids.allSatisfy { $0 != nil && $0! >= 0 && $0! < 1000 }, "token ids: \(r.stdout.prefix(200))")
    }

    /// The library side: a generator asked for 10^12 tokens stops when its callback says so.
    func testTheGeneratorRunsAHugeMaxTokensUntilTheCallbackStops() throws {
        let model = try ModelRegistry.loadCausalLM(folder: TestPaths.model("gpt2-tiny"), pool: ThreadPool(threads: 1))
        let g = try TokenGenerator(model: model, settings: .greedy)
        g.stopTokens = []
        var n = 0
        let stats = try g.generate(prompt: [1, 2, 3], maxTokens: 1_000_000_000_000) { _ in
            n += 1
            return n < 300
        }
        XCTAssertEqual(stats.generatedTokens, 300)
        XCTAssertGreaterThan(stats.contextShifts, 0, "300 tokens slide a 128-token context")
        XCTAssertLessThanOrEqual(g.history.count, g.cache.capacity)
    }
}

/// Passes every tensor of a random model through, with one value made NaN.
private final class PoisonedWeights: WeightSource {
    let base = RandomWeightSource(seed: 7)
    let name: String, index: Int, value: Float
    init(name: String, index: Int, value: Float = .nan) { self.name = name; self.index = index; self.value = value }
    func tensor(_ n: String, shape: [Int]) throws -> Tensor {
        let t = try base.tensor(n, shape: shape)
        if n == name { t.data[index] = value }
        return t
    }
    func done(with name: String) {}
}

final class NonFiniteLogitsTests: XCTestCase {
    func tinyConfig() -> GPT2Config {
        var c = GPT2Config()
        c.vocabSize = 65; c.nPositions = 32; c.nEmbd = 16; c.nLayer = 2; c.nHead = 2
        c.bosTokenID = nil; c.eosTokenID = nil
        return c
    }

    /// A NaN in the position embedding of position 3: the first three tokens (sampled from
    /// positions 0, 1, 2) are fine, the fourth's logits are NaN and generation stops there with
    /// one line instead of sampling garbage.
    func testNaNWeightsStopGenerationWithOneLine() throws {
        let c = tinyConfig()
        for temperature: Float in [0, 0.8] {
            let model = try GPT2Model(config: c, source: PoisonedWeights(name: "transformer.wpe.weight", index: 3 * c.nEmbd + 5))
            var s = SamplerSettings()
            s.temperature = temperature
            let g = try TokenGenerator(model: model, settings: s)
            var got: [Int] = []
            XCTAssertThrowsError(try g.generate(prompt: [1], maxTokens: 20) { got.append($0); return true }) { error in
                let e = error as? LMError
                XCTAssertEqual(e?.kind, .corruptFile, "\(error)")
                let m = e?.message ?? ""
                XCTAssertTrue(m.contains("non-finite logits (NaN) at token 4"), m)
                XCTAssertTrue(m.contains("gpt2"), m)
                XCTAssertFalse(m.contains("\n"), m)
            }
            XCTAssertEqual(got.count, 3, "temperature \(temperature)")
        }
    }

    /// An infinite weight in the (tied) embedding row of a token: its logit is ±inf or NaN at
    /// the first sample already.
    func testInfiniteWeightsStopAtTheFirstToken() throws {
        let c = tinyConfig()
        let model = try GPT2Model(config: c, source: PoisonedWeights(name: "transformer.wte.weight", index: 7 * c.nEmbd, value: .infinity))
        let g = try TokenGenerator(model: model, settings: .greedy)
        XCTAssertThrowsError(try g.generate(prompt: [1, 2], maxTokens: 5) { _ in true }) { error in
            let m = (error as? LMError)?.message ?? "\(error)"
            XCTAssertTrue(m.contains("non-finite logits"), m)
            XCTAssertTrue(m.contains("at token 1 "), m)
        }
    }

    /// A chat turn on such a model fails with the same line and leaves the session usable.
    func testAChatTurnReportsNaNLogits() throws {
        let c = tinyConfig()
        let model = try GPT2Model(config: c, source: PoisonedWeights(name: "transformer.h.0.mlp.c_fc.weight", index: 0))
        let tokenizer = try CharacterVocabulary.tokenizer()
        let s = try ChatSession(model: model, tokenizer: tokenizer)
        XCTAssertThrowsError(try s.respond(to: "hi") { _ in }) { error in
            XCTAssertTrue(((error as? LMError)?.message ?? "").contains("non-finite logits (NaN) at token 1"), "\(error)")
        }
        XCTAssertEqual(s.tokens, [])
    }
}

/// The bundled Shakespeare model's 65-character tokenizer (for the tiny models above).
enum CharacterVocabulary {
    static func tokenizer() throws -> any Tokenizer {
        try TokenizerLoader.load(path: TestPaths.model("shakespeare") + "/tokenizer.json")
    }
}

final class TinyTemperatureTests: XCTestCase {
    func sample(_ logits: [Float], _ s: SamplerSettings, n: Int = 20) throws -> [Int] {
        let sampler = try Sampler(settings: s, vocabularySize: logits.count)
        return logits.withUnsafeBufferPointer { p in (0..<n).map { _ in sampler.sample(logits: p) } }
    }

    /// 1/1e-45 overflows Float: the sampler must not turn that into inf·0 = NaN probabilities,
    /// but pick the argmax, as greedy does.
    func testATinyTemperatureIsGreedy() throws {
        var clear = randomFloats(500, seed: 4, scale: 3)
        clear[321] = 10
        var close: [Float] = [12, 79, -3, 80, 40, 79.5, 0]
        close += randomFloats(60, seed: 5, scale: 30)
        var chains: [SamplerSettings] = []
        for (k, p, m) in [(40, Float(0.95), Float(0.05)), (0, 1, 0), (2, 0.5, 0.5)] {
            var s = SamplerSettings()
            s.topK = k; s.topP = p; s.minP = m
            chains.append(s)
        }
        for logits in [clear, close, [80, 79], [79, 80]] {
            let best = try sample(logits, .greedy, n: 1)[0]
            XCTAssertEqual(best, logits.indices.max { logits[$0] < logits[$1] })
            for var s in chains {
                for t: Float in [1e-45, .leastNonzeroMagnitude, 1e-40, .leastNormalMagnitude, 1e-30] {
                    s.temperature = t
                    XCTAssertEqual(Set(try sample(logits, s)), [best], "temperature \(t), top-k \(s.topK), \(logits.prefix(8))")
                }
            }
        }
    }

    /// The same through a generator: a tiny temperature generates the greedy tokens.
    func testATinyTemperatureGeneratesTheGreedyTokens() throws {
        let model = try ModelRegistry.loadCausalLM(folder: TestPaths.model("gpt2-tiny"), pool: ThreadPool(threads: 1))
        func run(_ s: SamplerSettings) throws -> [Int] {
            let g = try TokenGenerator(model: model, settings: s)
            g.stopTokens = []
            var out: [Int] = []
            try g.generate(prompt: [5, 6, 7], maxTokens: 30) { out.append($0); return true }
            return out
        }
        var tiny = SamplerSettings()
        tiny.temperature = 1e-45
        XCTAssertEqual(try run(tiny), try run(.greedy))
    }
}
