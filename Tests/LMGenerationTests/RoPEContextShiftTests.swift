import Foundation
import LMCore
import LMGeneration
import LMModels
import LMTestSupport
import LMTokenizers
import XCTest

/// Models with rotary embeddings (Gemma 3) shift a full context by moving their cached keys, as
/// llama.cpp's context shift does: nothing is encoded again, and what follows equals a fresh run
/// over the kept text. Uses the tiny random Gemma 3 of `LMModelsTests/Fixtures/gemma3-tiny`
/// (sliding window 8 on five layers of six).
final class RoPEContextShiftTests: XCTestCase {
    func gemma(maxBatch: Int = 512) throws -> (any CausalLanguageModel, any Tokenizer) {
        let file = try ModelFile(path: try TestPaths.checkedIn("LMModelsTests", "gemma3-tiny/tiny-f32.gguf"))
        guard case .gguf(let g) = file else { throw XCTSkip("not a GGUF") }
        let model = try ModelRegistry.loadCausalLM(file, options: ModelLoadOptions(pool: ThreadPool(threads: 2), maxBatch: maxBatch))
        return (model, try XCTUnwrap(try TokenizerLoader.find(inGGUF: g)))
    }

    /// The cache holds exactly the session's window of tokens.
    func assertCacheHoldsTheWindow(_ s: ChatSession, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(s.generator.history, Array(s.tokens[0..<s.keep]) + Array(s.tokens[s.cacheTailStart..<s.cacheEnd]),
                       file: file, line: line)
        XCTAssertEqual(s.cache.length, s.generator.history.count, file: file, line: line)
    }

    /// With no shift in between, the cache equals a fresh run over its tokens.
    func assertCacheEqualsAFreshRun(_ s: ChatSession, file: StaticString = #filePath, line: UInt = #line) throws {
        assertCacheHoldsTheWindow(s, file: file, line: line)
        let probe = 300, history = s.generator.history
        let fresh = try s.model.forward(tokens: history + [probe], cache: s.model.makeCache(capacity: s.cache.capacity))
        let cached = try s.model.forward(tokens: [probe], cache: s.cache)
        assertClose(cached, fresh, tol: 1e-4, "cached window vs a fresh run", file: file, line: line)
    }

    /// Eight greedy turns with a system text in a 40-token context (it fills and shifts).
    func longChat(maxBatch: Int = 512) throws -> ChatSession {
        let (model, tokenizer) = try gemma(maxBatch: maxBatch)
        var settings = ChatSettings()
        settings.sampler.temperature = 0
        settings.maxTokens = 6
        settings.system = "the capital"
        let s = try ChatSession(model: model, tokenizer: tokenizer, settings: settings, contextSize: 40)
        for i in 0..<8 {
            _ = try s.respond(to: "hello world of france \(i)") { _ in }
            assertCacheHoldsTheWindow(s)
        }
        return s
    }

    func testChatShiftsWithoutEncodingAnythingAgain() throws {
        let s = try longChat()
        XCTAssertGreaterThan(s.totals.contextShifts, 0, "a 40-token context fills")
        XCTAssertEqual(s.totals.reencodedTokens, 0, "RoPE keys move; nothing is encoded again")
        XCTAssertGreaterThan(s.keep, 0, "the system text stays")
    }

    func testASlidingWindowThatLostTheSystemTextFallsBackToEncodingAgain() throws {
        // maxBatch 3: the sliding layers (window 8) keep 10 positions. Once the kept tail is
        // shorter than the window, a shift would need the system text's last tokens in them,
        // which they dropped: the session encodes the tail again instead — and stays right.
        let s = try longChat(maxBatch: 3)
        XCTAssertGreaterThan(s.totals.contextShifts, 0)
        XCTAssertGreaterThan(s.totals.reencodedTokens, 0)
    }

    func testGenerationShiftsWithoutEncodingAgain() throws {
        let (model, _) = try gemma()
        var settings = SamplerSettings()
        settings.temperature = 0
        let g = try TokenGenerator(model: model, settings: settings, cache: model.makeCache(capacity: 16))
        g.stopTokens = []
        let stats = try g.generate(prompt: [2, 345, 350], maxTokens: 40) { _ in true }
        XCTAssertEqual(stats.generatedTokens, 40)
        XCTAssertGreaterThan(stats.contextShifts, 0)
        XCTAssertEqual(stats.reencodedTokens, 0)
        XCTAssertLessThanOrEqual(g.cache.length, 16)
    }

    func testUndoPastTheWindowEncodesTheKeptTextAgain() throws {
        // maxBatch 1: the sliding layers keep 8 positions; undoing a long turn needs older ones,
        // so the generator encodes the kept tokens again — and the cache is right afterwards.
        let (model, tokenizer) = try gemma(maxBatch: 1)
        var settings = ChatSettings()
        settings.sampler.temperature = 0
        settings.maxTokens = 12
        let s = try ChatSession(model: model, tokenizer: tokenizer, settings: settings, contextSize: 100)
        _ = try s.respond(to: "hello world") { _ in }
        _ = try s.respond(to: "the capital of france is") { _ in }
        XCTAssertNotNil(try s.undo())
        try assertCacheEqualsAFreshRun(s)
    }
}
