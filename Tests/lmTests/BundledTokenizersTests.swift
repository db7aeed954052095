import Foundation
import LMTestSupport
import XCTest

/// The bundled tokenizers of `tokenizers/` (see tokenizers/README.md), reached by name through
/// `lm tokenize --tokenizer NAME`, against ids from the reference tokenizers.
///
/// The expected ids were computed once in the peers' venv (../shared/bench/requirements.txt: transformers 5.23.0,
/// tokenizers 0.23.3, sentencepiece 0.2.3) from the files in tokenizers/:
/// - gpt2: `GPT2TokenizerFast.from_pretrained("tokenizers/gpt2")(text)["input_ids"]` (the same
///   from `GPT2Tokenizer` and from `tokenizers.ByteLevelBPETokenizer(vocab.json, merges.txt)`);
/// - bert-base-uncased: `BertTokenizerFast.from_pretrained("tokenizers/bert-base-uncased")(text)`
///   (the same from the slow `BertTokenizer`), [CLS]/[SEP] included as Hugging Face adds them;
/// - wikitext2-spm: `sentencepiece.SentencePieceProcessor(model_file=".../tokenizer.model").encode(text)`;
/// - char-shakespeare: `tokenizers.Tokenizer.from_file(".../tokenizer.json").encode(text).ids`.
final class BundledTokenizersTests: XCTestCase {
    private func tokenizeJSON(_ name: String, _ text: String, _ extra: [String] = []) throws -> [String: Any] {
        let r = try run(["tokenize", "--tokenizer", name, "--json"] + extra + [text])
        XCTAssertEqual(r.status, 0, r.stderr)
        return try lastJSON(r)
    }

    private func ids(_ name: String, _ text: String) throws -> [Int] {
        try XCTUnwrap(try tokenizeJSON(name, text)["ids"] as? [Int])
    }

    /// `lm tokenize --decode` of `ids`: the text.
    private func decoded(_ name: String, _ ids: [Int]) throws -> String {
        let r = try run(["tokenize", "--tokenizer", name, "--decode", "--json", ids.map(String.init).joined(separator: " ")])
        XCTAssertEqual(r.status, 0, r.stderr)
        return try XCTUnwrap(try lastJSON(r)["text"] as? String)
    }

    func testGPT2MatchesHuggingFace() throws {
        let text = "Hello world! The quick brown fox can't jump over 1,234 lazy dogs\u{2026} caf\u{E9} \u{1F600}"
        let expected = [15496, 995, 0, 383, 2068, 7586, 21831, 460, 470, 4391, 625, 352, 11, 24409, 16931, 6844,
                        1399, 40304, 30325, 222]
        XCTAssertEqual(try ids("gpt2", text), expected)
        XCTAssertEqual(try decoded("gpt2", expected), text)
    }

    func testBERTUncasedMatchesHuggingFace() throws {
        let text = "Hello, World! Tokenizers aren't na\u{EF}ve: Caf\u{E9} au lait costs $3.50."
        // [CLS] hello , world ! token ##izer ##s aren ' t naive : cafe au lai ##t costs $ 3 . 50 . [SEP]
        let expected = [101, 7592, 1010, 2088, 999, 19204, 17629, 2015, 4995, 1005, 1056, 15743, 1024, 7668, 8740,
                        21110, 2102, 5366, 1002, 1017, 1012, 2753, 1012, 102]
        XCTAssertEqual(try ids("bert-base-uncased", text), expected)
    }

    func testWikiText2SentencePieceIdsAndRoundTrip() throws {
        let text = "The tower was built in 1889 by Gustave Eiffel's company."
        // ▁The ▁tower ▁was ▁built ▁in ▁188 9 ▁by ▁G ust ave ▁E iff el ' s ▁company .
        let expected = [323, 4458, 321, 1456, 284, 2329, 7954, 366, 387, 492, 480, 405, 2927, 319, 7953, 7924, 1594, 7938]
        XCTAssertEqual(try ids("wikitext2-spm", text), expected)
        XCTAssertEqual(try decoded("wikitext2-spm", expected), text)
        // Byte fallback: text outside WikiText-2's alphabet still round-trips.
        let rare = "Zürich \u{1F600} \u{4E2D}\u{6587}"
        XCTAssertEqual(try decoded("wikitext2-spm", try ids("wikitext2-spm", rare)), rare)
    }

    func testCharacterShakespeareIdsAndRoundTrip() throws {
        let text = "First Citizen:\nBefore we proceed any further, hear me speak."
        let expected = [18, 47, 56, 57, 58, 1, 15, 47, 58, 47, 64, 43, 52, 10, 0, 14, 43, 44, 53, 56, 43, 1, 61, 43, 1,
                        54, 56, 53, 41, 43, 43, 42, 1, 39, 52, 63, 1, 44, 59, 56, 58, 46, 43, 56, 6, 1, 46, 43, 39, 56,
                        1, 51, 43, 1, 57, 54, 43, 39, 49, 8]
        XCTAssertEqual(try ids("char-shakespeare", text), expected)
        XCTAssertEqual(try decoded("char-shakespeare", expected), text)
    }

    func testUnknownNameIsOneLineListingTheBundledNames() throws {
        let r = try run(["tokenize", "--tokenizer", "no-such-tokenizer", "x"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertEqual(r.stdout, "")
        let lines = r.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("'no-such-tokenizer'"), r.stderr)
        XCTAssertTrue(r.stderr.contains("bert-base-uncased, char-shakespeare, gpt2, wikitext2-spm"), r.stderr)
    }

    /// An existing path wins over a bundled name, and $LM_TOKENIZERS is searched first.
    func testPathsWinAndEnvironmentFolderIsSearched() throws {
        let dir = try TestPaths.temporaryDirectory("bundled-tok")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A folder named like a bundled tokenizer, holding another tokenizer (the character one).
        let fake = dir + "/gpt2"
        try FileManager.default.createDirectory(atPath: fake, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: TestPaths.packageRoot + "/tokenizers/char-shakespeare/tokenizer.json",
                                         toPath: fake + "/tokenizer.json")
        var r = try runProcess(TestPaths.lmBinary, ["tokenize", "--tokenizer", "gpt2", "--ids", "Hi"], cwd: dir)
        XCTAssertEqual(r.stdout, "20 47\n", "./gpt2 is a path, so it wins: " + r.stderr)
        r = try runProcess(TestPaths.lmBinary, ["tokenize", "--tokenizer", "gpt2", "--ids", "Hi"],
                           environment: ["LM_TOKENIZERS": dir])
        XCTAssertEqual(r.stdout, "20 47\n", "$LM_TOKENIZERS comes first: " + r.stderr)
        r = try runProcess(TestPaths.lmBinary, ["tokenize", "--tokenizer", "gpt2", "--ids", "Hi"], cwd: NSTemporaryDirectory())
        XCTAssertEqual(r.stdout, "17250\n", "tokenizers/ above the executable: " + r.stderr)
    }
}
