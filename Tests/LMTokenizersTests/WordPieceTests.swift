import XCTest
@testable import LMTokenizers

/// MiniLM (all-MiniLM-L6-v2) WordPiece against the Hugging Face fixtures in
/// ../shared/fixtures/minilm (copied to Fixtures/): every id of all 24 sentences, truncation
/// at 256, and a padded batch.
final class WordPieceTests: XCTestCase {
    private static var cached: [String: any Tokenizer] = [:]

    /// MiniLM's tokenizer, from its folder (tokenizer.json) or only vocab.txt + tokenizer_config.json.
    private func miniLM(_ source: String = "folder") throws -> any Tokenizer {
        if let t = Self.cached[source] { return t }
        let folder = try TestData.sharedFile("models/minilm-l6-v2")
        let t: any Tokenizer
        switch source {
        case "vocab.txt": t = try TokenizerLoader.load(path: folder + "/vocab.txt")
        default: t = try TokenizerLoader.load(path: folder)
        }
        Self.cached[source] = t
        return t
    }

    func testAll24SentencesFromTokenizerJSONAndVocabTxt() throws {
        let fixture = try TestData.json(TestData.fixture("minilm-tokenization.json"))
        let sentences = try XCTUnwrap(fixture["sentences"] as? [[String: Any]])
        XCTAssertEqual(sentences.count, 24)
        for source in ["folder", "vocab.txt"] {
            let bert = try miniLM(source)
            XCTAssertTrue(bert.addsSpecialTokensByDefault)
            for s in sentences {
                let text = try XCTUnwrap(s["text"] as? String)
                let name = s["name"] as? String ?? "?"
                let expected = TestData.ints(s["input_ids"])
                let e = try bert.encodePair(text)
                XCTAssertEqual(e.ids, expected, "\(source) \(name): \(text.debugDescription)")
                XCTAssertEqual(e.typeIds, TestData.ints(s["token_type_ids"]), name)
                XCTAssertEqual(e.attentionMask, TestData.ints(s["attention_mask"]), name)
                XCTAssertEqual(bert.pieces(for: e.ids), s["tokens"] as? [String], name)
                XCTAssertEqual(bert.decode(e.ids, skipSpecialTokens: true), s["decoded"] as? String, name)
            }
        }
    }

    func testTruncationAt256() throws {
        let fixture = try TestData.json(TestData.fixture("minilm-truncation.json"))
        let text = try XCTUnwrap(fixture["text"] as? String)
        let bert = try miniLM()
        XCTAssertEqual(try bert.encode(text).count + 2, fixture["n_tokens_untruncated"] as? Int)
        let e = try bert.encodePair(text, truncation: Truncation(maxLength: 256))
        XCTAssertEqual(e.ids, TestData.ints(fixture["input_ids"]))
        XCTAssertEqual(e.ids.count, 256)
    }

    func testPaddedBatch() throws {
        let fixture = try TestData.json(TestData.fixture("minilm-batch.json"))
        let texts = try XCTUnwrap(fixture["texts"] as? [String])
        let batch = try miniLM().encodeBatch(texts, padding: .longest)
        let ids = try XCTUnwrap(fixture["input_ids"] as? [[NSNumber]]).map { $0.map(\.intValue) }
        let mask = try XCTUnwrap(fixture["attention_mask"] as? [[NSNumber]]).map { $0.map(\.intValue) }
        let types = try XCTUnwrap(fixture["token_type_ids"] as? [[NSNumber]]).map { $0.map(\.intValue) }
        XCTAssertEqual(batch.map(\.ids), ids)
        XCTAssertEqual(batch.map(\.attentionMask), mask)
        XCTAssertEqual(batch.map(\.typeIds), types)
        XCTAssertThrowsError(try miniLM().encodeBatch(texts, padding: .fixed(10)))
        let fixed = try miniLM().encodeBatch(texts, truncation: Truncation(maxLength: 10), padding: .fixed(10))
        XCTAssertEqual(fixed.map(\.ids.count), [10, 10, 10, 10])
        XCTAssertEqual(fixed[1].ids, [101, 102, 0, 0, 0, 0, 0, 0, 0, 0])
    }

    /// Sentence pairs and Hugging Face's longest-first truncation (checked against
    /// tokenizers 0.23.3: `enable_truncation(max_length=n); encode("a b c d e f g", "h i j k")`).
    func testPairsAndLongestFirstTruncation() throws {
        let bert = try miniLM()
        let a = "a b c d e f g", b = "h i j k"
        let expected: [Int: ([String], [String])] = [
            8: (["a", "b", "c"], ["h", "i"]), 9: (["a", "b", "c"], ["h", "i", "j"]),
            10: (["a", "b", "c", "d"], ["h", "i", "j"]), 12: (["a", "b", "c", "d", "e"], ["h", "i", "j", "k"]),
        ]
        for (maxLength, (first, second)) in expected {
            let e = try bert.encodePair(a, b, truncation: Truncation(maxLength: maxLength))
            XCTAssertEqual(bert.pieces(for: e.ids), ["[CLS]"] + first + ["[SEP]"] + second + ["[SEP]"], "max \(maxLength)")
            XCTAssertEqual(e.typeIds, Array(repeating: 0, count: first.count + 2) + Array(repeating: 1, count: second.count + 1))
        }
        // Tie: the first sequence keeps half of the room (rounded down).
        let tie = try bert.encodePair("a b c d e", "f g h i j", truncation: Truncation(maxLength: 10))
        XCTAssertEqual(bert.pieces(for: tie.ids), ["[CLS]", "a", "b", "c", "[SEP]", "f", "g", "h", "i", "[SEP]"])
        XCTAssertThrowsError(try bert.encodePair("a b c", truncation: Truncation(maxLength: 1))) { error in
            XCTAssertTrue("\(error)".contains("at least 2"), "\(error)")
        }
    }

    /// Rules checked against Hugging Face tokenizers 0.23.3 beyond the fixture.
    func testBasicTokenizerEdgeCases() throws {
        let bert = try miniLM()
        func pieces(_ s: String) throws -> [String] { bert.pieces(for: try bert.encode(s)) }
        // U+0085 (Cc) and U+FEFF, U+180E (Cf) are deleted; U+1680, U+2028 are whitespace.
        XCTAssertEqual(try pieces("a\u{85}b"), ["ab"])
        XCTAssertEqual(try pieces("a\u{FEFF}b"), ["ab"])
        XCTAssertEqual(try pieces("a\u{1680}b"), ["a", "b"])
        XCTAssertEqual(try pieces("a\u{2028}b"), ["a", "b"])
        XCTAssertEqual(try pieces("a\u{0B}b"), ["ab"])
        // The Rust normalizer's CJK blocks: U+2B920 is split off, U+2B820 is not.
        XCTAssertEqual(try pieces("a\u{2B920}b"), ["a", "[UNK]", "b"])
        XCTAssertEqual(try pieces("a\u{2B820}b"), ["[UNK]"])
        // Special-token text is plain text unless parsed.
        XCTAssertEqual(try pieces("hello [MASK]"), ["hello", "[", "mask", "]"])
        XCTAssertEqual(bert.pieces(for: try bert.encode("hello [MASK] [mask]", parseSpecialTokens: true)),
                       ["hello", "[MASK]", "[", "mask", "]"])
    }

    func testMiniLMVocabularyEqualsBgeGGUF() throws {
        let minilm = try miniLM()
        let bge = try TokenizerLoader.load(path: TestData.sharedFile("data/llama-cpp-vocab/ggml-vocab-bert-bge.gguf"))
        XCTAssertEqual(minilm.vocabularySize, bge.vocabularySize)
        for id in 0..<minilm.vocabularySize where minilm.piece(for: id) != bge.piece(for: id) {
            XCTFail("id \(id): \(minilm.piece(for: id) ?? "-") vs \(bge.piece(for: id) ?? "-")")
            break
        }
    }
}
