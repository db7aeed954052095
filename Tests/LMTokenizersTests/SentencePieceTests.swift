import XCTest
@testable import LMTokenizers

/// SentencePiece through libsentencepiece against the llama-tiny fixture (Python sentencepiece
/// 0.2.3 ids for 20 texts), and the Swift SentencePiece-BPE against libsentencepiece.
final class SentencePieceTests: XCTestCase {
    private func llamaTiny() throws -> SentencePieceTokenizer {
        try SentencePieceTokenizer(modelFile: TestData.fixture("llama-tiny-tokenizer.model"))
    }

    private func fixtureTexts() throws -> [[String: Any]] {
        let fixture = try TestData.json(TestData.fixture("llama-tiny-sentencepiece.json"))
        let texts = try XCTUnwrap(fixture["texts"] as? [[String: Any]])
        XCTAssertEqual(texts.count, 20)
        return texts
    }

    func testAll20TextsIdsPiecesAndDecoding() throws {
        let sp = try llamaTiny()
        XCTAssertEqual(sp.vocabularySize, 512)
        XCTAssertTrue(sp.hasByteFallback)
        XCTAssertEqual(sp.specialTokens, SpecialTokens(bos: 1, eos: 2, unk: 0))
        XCTAssertFalse(sp.addsSpecialTokensByDefault)
        for t in try fixtureTexts() {
            let text = try XCTUnwrap(t["text"] as? String)
            let name = t["name"] as? String ?? "?"
            let ids = try sp.encode(text)
            XCTAssertEqual(ids, TestData.ints(t["ids"]), "\(name): \(text.debugDescription)")
            XCTAssertEqual(sp.pieces(for: ids), t["pieces"] as? [String], name)
            XCTAssertEqual(try sp.encodeAsPieces(text), t["pieces"] as? [String], name)
            XCTAssertEqual(ids.filter { sp.pieceType(for: $0) == .byte }, TestData.ints(t["byte_fallback_ids"]), name)
            XCTAssertEqual(sp.decode(ids), t["decoded"] as? String, name)
            XCTAssertEqual(try sp.encode(text, addSpecialTokens: true), [1] + ids, name)
        }
    }

    func testLoadFromBytesAndBadModels() throws {
        let bytes = try TestData.bytes(TestData.fixture("llama-tiny-tokenizer.model"))
        let sp = try SentencePieceTokenizer(modelBytes: bytes)
        XCTAssertEqual(try sp.encode("The end."), [355, 322, 273, 463])
        XCTAssertThrowsError(try SentencePieceTokenizer(modelBytes: Array("not a model".utf8))) { error in
            XCTAssertTrue("\(error)".contains("not a SentencePiece model"), "\(error)")
        }
        XCTAssertThrowsError(try SentencePieceTokenizer(modelBytes: Array(bytes[0..<1000])))
        XCTAssertThrowsError(try SentencePieceTokenizer(modelBytes: []))
        XCTAssertThrowsError(try SentencePieceTokenizer(modelFile: "/nonexistent/tokenizer.model")) { error in
            XCTAssertTrue("\(error)".contains("/nonexistent/tokenizer.model"), "\(error)")
        }
    }

    func testPieceLookupsAndSpecialDecoding() throws {
        let sp = try llamaTiny()
        XCTAssertEqual(sp.id(for: "<s>"), 1)
        XCTAssertEqual(sp.id(for: "<unk>"), 0)
        XCTAssertNil(sp.id(for: "no such piece"))
        XCTAssertEqual(sp.piece(for: 13), "<0x0A>")
        XCTAssertNil(sp.piece(for: 512))
        XCTAssertTrue(sp.isSpecial(1))
        XCTAssertFalse(sp.isSpecial(300))
        XCTAssertEqual(sp.decode([1, 355, 322, 273, 463, 2]), "The end.")
        XCTAssertEqual(sp.decode([355, 99999]), "The\u{FFFD}")
        // Parsing special-token text (off by default: "<s>" is plain text, as in the fixture).
        XCTAssertEqual(try sp.encode("<s>The end.", parseSpecialTokens: true), [1, 355, 322, 273, 463])
    }

    /// The Swift SentencePiece-BPE (used for GGUF Llama vocabularies) on the llama-tiny tables
    /// gives the same ids as libsentencepiece on every fixture text and on WikiText-2 lines.
    func testSwiftSentencePieceBPEMatchesLibrary() throws {
        let sp = try llamaTiny()
        let ids = 0..<sp.vocabularySize
        let swift = try SentencePieceBPETokenizer(
            pieces: ids.map { sp.piece(for: $0)! }, scores: ids.map { sp.score(for: $0) },
            types: ids.map { sp.pieceType(for: $0).rawValue }, specialTokens: sp.specialTokens)
        for t in try fixtureTexts() {
            let text = try XCTUnwrap(t["text"] as? String)
            XCTAssertEqual(try swift.encode(text), TestData.ints(t["ids"]), text.debugDescription)
            XCTAssertEqual(swift.decode(TestData.ints(t["ids"])), t["decoded"] as? String)
        }
        let valid = try TestData.text(TestData.sharedFile("data/wikitext-2/valid.txt"))
        var checked = 0
        for line in valid.split(separator: "\n").prefix(600) {
            let s = String(line)
            XCTAssertEqual(try swift.encode(s), try sp.encodeWithLibrary(s), s)
            checked += 1
        }
        XCTAssertEqual(checked, 600)
    }
}
