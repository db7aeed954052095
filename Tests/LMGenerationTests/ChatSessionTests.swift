import Foundation
import LMCore
import LMGeneration
import LMModels
import LMTestSupport
import LMTokenizers
import XCTest

/// The chat session's bookkeeping: cache reuse between turns, undo, regenerate, context shifts,
/// save / load, settings, and the paragraph format's stop rule.
final class ChatSessionTests: XCTestCase {
    var shakespeareFolder: String { TestPaths.model("shakespeare") }

    func tokenizer() throws -> any Tokenizer {
        try XCTUnwrap(try TokenizerLoader.find(inModelFolder: shakespeareFolder))
    }

    func settings(_ f: (inout ChatSettings) -> Void) -> ChatSettings {
        var s = ChatSettings()
        f(&s)
        return s
    }

    /// The bundled character model: context 64, so long sessions shift.
    func shakespeare(_ f: (inout ChatSettings) -> Void = { _ in }) throws -> ChatSession {
        let model = try ModelRegistry.loadCausalLM(folder: shakespeareFolder)
        return try ChatSession(model: model, tokenizer: try tokenizer(), settings: settings(f))
    }

    /// A small random GPT-2 over the same 65 characters with 512 positions: room for a
    /// 20-turn conversation without a shift.
    func longContext(_ f: (inout ChatSettings) -> Void = { _ in }) throws -> ChatSession {
        var config = GPT2Config()
        config.vocabSize = 65; config.nPositions = 512; config.nEmbd = 32; config.nLayer = 2; config.nHead = 2
        config.bosTokenID = nil; config.eosTokenID = nil
        let model = try GPT2Model(randomWith: config, seed: 1)
        return try ChatSession(model: model, tokenizer: try tokenizer(), settings: settings(f))
    }

    @discardableResult
    func say(_ s: ChatSession, _ text: String) throws -> ChatTurn {
        try s.respond(to: text) { _ in }
    }

    /// The cache holds exactly `tokens[0..<keep] + tokens[cacheTailStart..<cacheEnd]`.
    func assertCacheMatches(_ s: ChatSession, file: StaticString = #filePath, line: UInt = #line) {
        let expected = Array(s.tokens[0..<s.keep]) + Array(s.tokens[s.cacheTailStart..<s.cacheEnd])
        XCTAssertEqual(s.generator.history, expected, "cache contents", file: file, line: line)
        XCTAssertEqual(s.cache.length, expected.count, file: file, line: line)
        XCTAssertLessThanOrEqual(s.cache.length, s.cache.capacity, file: file, line: line)
    }

    // MARK: Cache reuse (the latency contract, measured in tokens rather than time)

    func testATurnAfterTwentyTurnsRunsOnlyItsNewTokens() throws {
        for system in [nil, "A talk."] {
            let s = try longContext { $0.system = system; $0.maxTokens = 8; $0.sampler.seed = 1 }
            var first = ChatTurnStats()
            for i in 0..<21 {
                XCTAssertEqual(s.cacheEnd, s.tokens.count, "between turns the cache holds the whole conversation")
                let cachedBefore = s.cache.length
                let turn = try say(s, "hello there")
                let stats = try XCTUnwrap(s.lastStats)
                // Only the turn's own text runs before the first token: "hello there\n".
                XCTAssertEqual(stats.promptTokens, 12, "turn \(i + 1)")
                XCTAssertEqual(stats.promptTokens, turn.replyStart - turn.start)
                XCTAssertEqual(turn.start, cachedBefore, "turn \(i + 1) starts where the cache ends")
                // Then the reply is closed: its last token and the paragraph break.
                XCTAssertTrue((turn.prompt + turn.reply + turn.closing).hasSuffix("\n\n"))
                XCTAssertTrue(["", "\n", "\n\n"].contains(turn.closing))
                XCTAssertEqual(stats.closingTokens, turn.end - turn.replyEnd + (turn.replyEnd > turn.replyStart ? 1 : 0))
                XCTAssertEqual(stats.reencodedTokens, 0)
                XCTAssertEqual(stats.contextShifts, 0)
                if i == 0 { first = stats }
                assertCacheMatches(s)
            }
            XCTAssertEqual(s.turns.count, 21)
            XCTAssertEqual(s.lastStats?.promptTokens, first.promptTokens, "turn 21 prefills what turn 1 did")
            XCTAssertEqual(s.cache.length, s.tokens.count, "the whole conversation stays cached, none of it is read again")
            XCTAssertGreaterThan(s.cache.length, 20 * 12)
        }
    }

    // MARK: Undo and regenerate

    func testUndoCutsTheCacheBackAndTheNextTurnIsAsIfTheUndoneOneNeverHappened() throws {
        let a = try longContext { $0.maxTokens = 12; $0.sampler.seed = 5 }
        try say(a, "first")
        let lengthBefore = a.cache.length, tokensBefore = a.tokens, cacheEndBefore = a.cacheEnd
        try say(a, "second")
        XCTAssertGreaterThan(a.cache.length, lengthBefore)
        XCTAssertEqual(try a.undo()?.user, "second")
        XCTAssertEqual(a.cache.length, lengthBefore)
        XCTAssertEqual(a.cacheEnd, cacheEndBefore)
        XCTAssertEqual(a.tokens, tokensBefore)
        XCTAssertEqual(a.turns.map(\.user), ["first"])
        assertCacheMatches(a)
        let rng = a.generator.sampler.rngState
        let third = try say(a, "third")

        let b = try longContext { $0.maxTokens = 12; $0.sampler.seed = 5 }
        try say(b, "first")
        try b.generator.sampler.restoreRNG(rng)
        let thirdB = try say(b, "third")
        XCTAssertEqual(third.reply, thirdB.reply)
        XCTAssertEqual(a.tokens, b.tokens)

        XCTAssertNotNil(try a.undo())
        XCTAssertNotNil(try a.undo())
        XCTAssertNil(try a.undo(), "nothing left to undo")
        XCTAssertEqual(a.cache.length, 0)
        XCTAssertEqual(a.tokens, [])
    }

    func testRegenSamplesTheLastReplyAgainFromTheSameContext() throws {
        // Greedy: the same context gives the same reply.
        let g = try shakespeare { $0.sampler.temperature = 0; $0.maxTokens = 40 }
        let original = try say(g, "ROMEO:")
        let again = try g.regenerate { _ in }
        XCTAssertEqual(again.reply, original.reply)
        XCTAssertEqual(again.start, original.start)
        XCTAssertEqual(again.replyStart, original.replyStart)
        XCTAssertEqual(g.turns.count, 1)
        assertCacheMatches(g)

        // Sampling: the prompt stays, the random stream continues.
        let s = try longContext { $0.maxTokens = 16; $0.sampler.seed = 3 }
        let turn = try say(s, "hello")
        let prefix = Array(s.tokens[..<turn.replyStart])
        let rng = s.generator.sampler.rngState
        let regen = try s.regenerate { _ in }
        XCTAssertEqual(Array(s.tokens[..<regen.replyStart]), prefix)
        XCTAssertEqual(s.tokens.count, regen.end)
        XCTAssertNotEqual(s.generator.sampler.rngState, rng)
        XCTAssertEqual(s.turns.count, 1)
        assertCacheMatches(s)
        XCTAssertEqual(s.lastStats?.promptTokens, 1, "only the prompt's last token runs again")

        let empty = try longContext()
        XCTAssertThrowsError(try empty.regenerate { _ in }) { XCTAssertTrue("\($0)".contains("say something first")) }
    }

    // MARK: Context shifts

    func testALongSessionKeepsAnsweringAndKeepsTheSystemText() throws {
        let s = try shakespeare { $0.system = "ROMEO:"; $0.maxTokens = 30; $0.sampler.seed = 2 }
        let system = Array(s.tokens)
        XCTAssertEqual(s.keep, system.count)
        for i in 0..<8 {
            let turn = try say(s, "Speak, good friend.")
            XCTAssertGreaterThan(turn.end, turn.replyStart, "turn \(i + 1) has a reply")
            assertCacheMatches(s)
            XCTAssertEqual(Array(s.generator.history.prefix(system.count)), system, "the system text stays in place")
        }
        XCTAssertGreaterThan(s.tokens.count, 3 * s.cache.capacity)
        XCTAssertGreaterThan(s.totals.contextShifts, 0)
        // A turn longer than the whole context: only its newest part is read.
        let long = try say(s, String(repeating: "O, woe! ", count: 12))
        XCTAssertGreaterThan(long.end, long.replyStart)
        assertCacheMatches(s)
        // Undo across shifts re-encodes a window that ends where the turn began.
        let undone = try XCTUnwrap(try s.undo())
        XCTAssertEqual(s.cacheEnd, undone.start)
        assertCacheMatches(s)
        try say(s, "Farewell.")
        assertCacheMatches(s)
    }

    /// Random sequences of turns, interrupted turns, /undo, /regen, /reset, /set and /save +
    /// /load on the 64-position model: after every step the cache holds exactly the keys and
    /// values of its window, as a fresh encoding of those tokens gives them.
    func testRandomOperationsKeepTheCacheEqualToAFreshEncodingOfItsWindow() throws {
        let dir = try TestPaths.temporaryDirectory("chat-random")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let model = try ModelRegistry.loadCausalLM(folder: shakespeareFolder)
        let reference = model.makeCache()
        let texts = ["ROMEO:", "What news?", "O, speak again, bright angel, for thou art as glorious to this night.", "Ay."]
        for (seed, system) in [(UInt64(1), nil), (2, "KING RICHARD:"), (3, String(repeating: "A tale. ", count: 5))] {
            let s = try ChatSession(model: model, tokenizer: try tokenizer(),
                                    settings: settings { $0.system = system; $0.maxTokens = 12; $0.sampler.seed = seed })
            var rng = SeededRNG(seed: seed)
            for step in 0..<24 {
                let what: String
                switch rng.next() % 10 {
                case 0: what = "undo"; _ = try s.undo()
                case 1: what = "regen"; if !s.turns.isEmpty { try s.regenerate { _ in } }
                case 2: what = "reset"; try s.reset()
                case 3:
                    what = "interrupted turn"
                    let stopAfter = Int(rng.next() % 12)
                    var calls = 0
                    try s.respond(to: texts[Int(rng.next() % 4)], isInterrupted: { calls += 1; return calls > stopAfter }) { _ in }
                case 4:
                    what = "save and load"
                    try s.save(to: dir + "/s.json")
                    XCTAssertEqual(try s.load(from: dir + "/s.json"), [])
                case 5: what = "set"; try s.set("repeat_last_n", "\(8 + rng.next() % 64)")
                default: what = "turn"; try say(s, texts[Int(rng.next() % 4)])
                }
                assertCacheMatches(s)
                // The cached keys and values against the window encoded at once.
                let window = Array(s.tokens[0..<s.keep]) + Array(s.tokens[s.cacheTailStart..<s.cacheEnd])
                reference.reset()
                if !window.isEmpty {
                    _ = try window.map { Int32($0) }.withUnsafeBufferPointer { try model.forward(tokens: $0, cache: reference, allLogits: false) }
                }
                var worst: Float = 0
                for l in 0..<reference.layers {
                    for (a, b) in [(s.cache.keys(l), reference.keys(l)), (s.cache.values(l), reference.values(l))] {
                        worst = max(worst, maxAbsDiff(UnsafeBufferPointer(start: a, count: window.count * reference.width),
                                                      UnsafeBufferPointer(start: b, count: window.count * reference.width)))
                    }
                }
                XCTAssertLessThanOrEqual(worst, Tolerance.cacheVsRecompute, "seed \(seed), step \(step): \(what)")
            }
            XCTAssertGreaterThan(s.totals.contextShifts, 0, "seed \(seed): the context shifted")
        }
    }

    // MARK: Interrupt

    func testInterruptEndsTheReplyAndTheNextTurnGoesOn() throws {
        let s = try shakespeare { $0.maxTokens = 100; $0.sampler.seed = 4; $0.raw = true }
        var calls = 0
        let turn = try s.respond(to: "ROMEO:", isInterrupted: { calls += 1; return calls > 5 }) { _ in }
        XCTAssertEqual(turn.stop, .interrupted)
        XCTAssertEqual(turn.replyEnd - turn.replyStart, 5)
        XCTAssertEqual(turn.end, turn.replyEnd, "nothing closes a raw reply")
        XCTAssertEqual(s.lastStats?.generatedTokens, 5)
        XCTAssertEqual(s.lastStats?.closingTokens, 0, "the interrupted token is dropped, the rest was fed while generating")
        XCTAssertEqual(s.cacheEnd, s.tokens.count)
        assertCacheMatches(s)
        let next = try say(s, " JULIET:")
        XCTAssertEqual(next.stop, .maxTokens)
        XCTAssertEqual(next.replyEnd - next.replyStart, 100)
        XCTAssertEqual(s.lastStats?.closingTokens, 1, "the last sampled token")
    }

    // MARK: Save and load

    func testSaveAndLoadResumeExactlyInAFreshSession() throws {
        let dir = try TestPaths.temporaryDirectory("chat-save")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = try shakespeare { $0.maxTokens = 50; $0.sampler.seed = 11; $0.system = "KING:" }
        try say(a, "ROMEO:")
        try say(a, "What news?")
        try a.save(to: dir + "/s.json", modelPath: shakespeareFolder)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/s.kv.safetensors"))
        let saved = a.turns
        let next = try say(a, "JULIET:")
        let regen = try a.regenerate { _ in }

        // Another seed and no system text: the file's settings, tokens, cache and RNG win.
        let b = try shakespeare { $0.sampler.seed = 999 }
        XCTAssertEqual(try b.load(from: dir + "/s.json"), [])
        XCTAssertEqual(b.turns, saved)
        XCTAssertEqual(b.settings, a.settings)
        assertCacheMatches(b)
        let nextB = try say(b, "JULIET:")
        XCTAssertEqual(nextB.reply, next.reply)
        XCTAssertEqual(try b.regenerate { _ in }.reply, regen.reply)
        XCTAssertEqual(b.tokens, a.tokens)

        // Without the KV-cache file the window is encoded again, and the session goes on.
        try FileManager.default.removeItem(atPath: dir + "/s.kv.safetensors")
        let c = try shakespeare()
        let notes = try c.load(from: dir + "/s.json")
        XCTAssertEqual(notes.count, 1)
        XCTAssertTrue(notes[0].contains("missing"), notes[0])
        assertCacheMatches(c)
        XCTAssertGreaterThan(try say(c, "JULIET:").end, c.turns.last!.replyStart - 1)
    }

    func testLoadOfAMissingOrCorruptFileThrowsAndLeavesTheSessionAsItWas() throws {
        let dir = try TestPaths.temporaryDirectory("chat-load")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let s = try shakespeare { $0.maxTokens = 20; $0.sampler.seed = 1 }
        try say(s, "ROMEO:")
        let tokens = s.tokens, turns = s.turns, length = s.cache.length, settings = s.settings

        func expectFailure(_ path: String, _ kind: LMError.Kind, _ words: String, line: UInt = #line) {
            XCTAssertThrowsError(try s.load(from: path), line: line) { error in
                let e = error as? LMError
                XCTAssertEqual(e?.kind, kind, "\(error)", line: line)
                XCTAssertTrue(e?.message.contains(words) ?? false, "\(error)", line: line)
            }
            XCTAssertEqual(s.tokens, tokens, line: line)
            XCTAssertEqual(s.turns, turns, line: line)
            XCTAssertEqual(s.cache.length, length, line: line)
            XCTAssertEqual(s.settings, settings, line: line)
        }
        expectFailure(dir + "/nope.json", .fileNotFound, "/save")
        try "not json at all".write(toFile: dir + "/garbage.json", atomically: true, encoding: .utf8)
        expectFailure(dir + "/garbage.json", .corruptFile, "not a swift-lm chat session")
        try #"{"format": "swift-lm-chat"}"#.write(toFile: dir + "/partial.json", atomically: true, encoding: .utf8)
        expectFailure(dir + "/partial.json", .corruptFile, "missing")

        // A real file with a token outside the vocabulary, and one from another model.
        let other = try shakespeare { $0.maxTokens = 5 }
        try say(other, "ROMEO:")
        try other.save(to: dir + "/good.json")
        var object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/good.json"))) as? [String: Any])
        var ids = try XCTUnwrap(object["tokens"] as? [Int])
        ids[0] = 999
        object["tokens"] = ids
        try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: dir + "/badtoken.json"))
        expectFailure(dir + "/badtoken.json", .corruptFile, "outside the vocabulary")
        let wide = try longContext { $0.maxTokens = 5 }
        try say(wide, "hi")
        try wide.save(to: dir + "/wide.json")
        expectFailure(dir + "/wide.json", .invalidInput, "another model")

        try say(s, "JULIET:")
        assertCacheMatches(s)
    }

    // MARK: Settings

    func testSetParsesValuesAndRejectsBadOnes() throws {
        var st = ChatSettings()
        try st.set("temperature", "0.7")
        try st.set("top-k", "5")
        try st.set("max_tokens", "12")
        try st.set("seed", "18446744073709551615")
        XCTAssertEqual(st.sampler.temperature, 0.7)
        XCTAssertEqual(st.sampler.topK, 5)
        XCTAssertEqual(st.maxTokens, 12)
        XCTAssertEqual(st.sampler.seed, .max)
        let kept = st
        for (name, value, words) in [("temperature", "abc", "not a number"), ("temperature", "-1", "out of range"),
                                     ("top_p", "0", "out of range"), ("max_tokens", "0", "out of range"),
                                     ("seed", "-3", "non-negative"), ("top_k", "1.5", "not an integer"),
                                     ("bogus", "1", "temperature, top_k")] {
            XCTAssertThrowsError(try st.set(name, value)) { XCTAssertTrue("\($0)".contains(words), "\(name) \(value): \($0)") }
            XCTAssertEqual(st, kept)
        }
        // The seed round-trips through a saved session exactly.
        let data = try JSONEncoder().encode(st)
        XCTAssertEqual(try JSONDecoder().decode(ChatSettings.self, from: data), st)

        let s = try shakespeare { $0.maxTokens = 10 }
        try say(s, "ROMEO:")
        try s.set("seed", "5")
        XCTAssertEqual(s.generator.sampler.rngState, SeededRNG(seed: 5).stateWords, "/set seed restarts the stream")
        let length = s.cache.length
        try s.set("repeat_last_n", "8")
        XCTAssertEqual(s.generator.sampler.settings.repeatLastN, 8)
        XCTAssertEqual(s.cache.length, length, "a new sampler, the same cache")
        try say(s, "JULIET:")
        assertCacheMatches(s)
    }

    // MARK: Format and stop rule

    func testParagraphFormatAndTheEmptyLineStopRule() throws {
        var f = ChatReplyFilter(stopAtBlankLine: true)
        XCTAssertTrue(f.feed("\n\nHe") == ("He", false), "leading newlines are dropped")
        XCTAssertTrue(f.feed("llo\n") == ("llo", false), "a newline is held back")
        XCTAssertTrue(f.feed("there\n") == ("\nthere", false))
        XCTAssertTrue(f.feed("\nmore") == ("", true), "an empty line ends the reply")
        var raw = ChatReplyFilter(stopAtBlankLine: false)
        XCTAssertTrue(raw.feed("\n\nx\n\n") == ("\n\nx\n\n", false))

        let plain = try shakespeare { $0.maxTokens = 12 }
        XCTAssertEqual(plain.format("hi"), "hi\n")
        let system = try shakespeare { $0.system = "ROMEO:"; $0.maxTokens = 12 }
        XCTAssertEqual(system.format("hi"), "hi\n")
        let rawSession = try shakespeare { $0.raw = true; $0.system = "ROMEO:" }
        XCTAssertEqual(rawSession.format("hi"), "hi")
        // The text as the model reads it: paragraphs, each turn's text on its own line.
        func text(_ s: ChatSession, _ range: Range<Int>? = nil) -> String {
            s.tokenizer.decode(Array(s.tokens[range ?? 0..<s.tokens.count]), skipSpecialTokens: false)
        }
        XCTAssertEqual(text(system), "ROMEO:\n\n")
        XCTAssertEqual(text(rawSession), "ROMEO:")
        let t1 = try say(system, "hi")
        let t2 = try say(system, "Peace.")
        XCTAssertEqual(text(system), "ROMEO:\n\nhi\n" + t1.reply + t1.closing + "Peace.\n" + t2.reply + t2.closing)
        XCTAssertTrue(text(system).hasSuffix("\n\n"))
        XCTAssertEqual(text(system, t1.start..<t1.replyStart), "hi\n")
        XCTAssertEqual(text(system, t1.replyEnd..<t1.end), t1.closing)

        // A turn the tokenizer cannot read is refused and changes nothing.
        XCTAssertThrowsError(try say(plain, "snow ☃")) { XCTAssertEqual(($0 as? LMError)?.kind, .invalidInput) }
        XCTAssertEqual(plain.tokens, [])
        XCTAssertEqual(plain.turns, [])
    }
}
