import XCTest
@testable import LMTokenizers

/// The streaming detokenizer emits only complete UTF-8, and the concatenation of what it emits
/// is the full decode.
final class StreamingDetokenizerTests: XCTestCase {
    private func stream(_ tokenizer: any Tokenizer, _ ids: [Int]) -> [String] {
        var s = tokenizer.makeStreamingDetokenizer()
        var out = ids.map { s.append($0) }
        out.append(s.flush())
        return out
    }

    private func check(_ tokenizer: any Tokenizer, _ text: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let ids = try tokenizer.encode(text)
        let parts = stream(tokenizer, ids)
        XCTAssertEqual(parts.joined(), tokenizer.decode(ids, skipSpecialTokens: true), file: file, line: line)
        for p in parts {
            XCTAssertFalse(p.unicodeScalars.contains("\u{FFFD}"), "emitted an incomplete character: \(parts)", file: file, line: line)
        }
    }

    /// GPT-2 splits many characters over byte-level tokens ("🤗" is 3 tokens).
    func testByteLevelBPEHoldsPartialCharacters() throws {
        let gpt2 = try ByteLevelBPETests.gpt2()
        let ids = try gpt2.encode("🤗")
        XCTAssertGreaterThan(ids.count, 1, "the test needs a character split over tokens")
        let parts = stream(gpt2, ids)
        XCTAssertEqual(parts.filter { !$0.isEmpty }, ["🤗"])
        try check(gpt2, "Hello 🤗 wörld — 日本語のテキスト, ℌ𝔢𝔩𝔩𝔬!")
        try check(gpt2, try TestData.text(TestData.sharedFile("data/wikitext-2/valid.txt")).prefix(20_000).description)
    }

    /// SentencePiece byte fallback: "日" is <0xE6><0x97><0xA5> in llama-tiny.
    func testSentencePieceByteFallback() throws {
        let sp = try SentencePieceTokenizer(modelFile: TestData.fixture("llama-tiny-tokenizer.model"))
        let ids = try sp.encode("日本")
        XCTAssertEqual(sp.pieces(for: ids).filter { $0.hasPrefix("<0x") }.count, 6)
        let parts = stream(sp, ids)
        XCTAssertEqual(parts.filter { !$0.isEmpty }, ["日", "本"])
        try check(sp, "  leading spaces, 日本語 🤗 ℌ𝔢𝔩𝔩𝔬 and\nnew lines")
        // The first piece's dummy-prefix space is dropped once, as in a full decode.
        XCTAssertEqual(stream(sp, try sp.encode("Hello world")).joined(), "Hello world")
    }

    func testWordPieceJoinsContinuations() throws {
        let bert = try TokenizerLoader.load(path: TestData.sharedFile("models/minilm-l6-v2"))
        let ids = try bert.encode("Transformers embeddings, okay.", addSpecialTokens: true)
        XCTAssertEqual(stream(bert, ids).joined(), "transformers embeddings, okay.")
    }

    func testFlushEmitsIncompleteTailAndResets() throws {
        let gpt2 = try ByteLevelBPETests.gpt2()
        let ids = try gpt2.encode("🤗")
        var s = gpt2.makeStreamingDetokenizer()
        XCTAssertEqual(s.append(ids[0]), "")
        XCTAssertEqual(s.flush(), "\u{FFFD}")
        XCTAssertEqual(ids.map { s.append($0) }.joined(), "🤗")
    }
}
