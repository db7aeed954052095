import Foundation
import LMTestSupport
import XCTest

/// Runs the real `lm tokenize` / `lm tokenizer train` and checks their contracts.
final class TokenizeCLITests: XCTestCase {
    private var lm: String { TestPaths.lmBinary }

    /// Runs lm with raw stdin bytes (invalid UTF-8 included).
    private func runLM(_ args: [String], stdin: [UInt8] = []) throws -> ProcessResult {
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: lm), "lm binary not found at \(lm)")
        return try runProcess(lm, args, stdinBytes: Data(stdin))
    }

    private func json(_ s: String) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(s.utf8)) as? [String: Any], s)
    }

    func testJSONFromStdinIsOneObjectWithNewlines() throws {
        let gpt2 = try TestPaths.sharedFile("data/gpt2-tokenizer")
        let r = try runLM(["tokenize", "--tokenizer", gpt2, "--json"], stdin: Array("Hello world\n\nBye".utf8))
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout.split(separator: "\n").count, 1, "exactly one JSON line")
        let j = try json(r.stdout)
        XCTAssertEqual(ints(j["ids"]), [15496, 995, 198, 198, 3886, 68])  // HF tokenizers 0.23.3
        XCTAssertEqual(j["pieces"] as? [String], ["Hello", "Ġworld", "Ċ", "Ċ", "By", "e"])
        XCTAssertEqual(Set(j.keys), ["ids", "pieces"])
    }

    func testSpecialTokensByDefaultOnlyForBERT() throws {
        let bert = try TestPaths.sharedFile("models/minilm-l6-v2")
        var r = try runLM(["tokenize", "--tokenizer", bert, "--ids", "Hello world"])
        XCTAssertEqual(r.stdout, "101 7592 2088 102\n", r.stderr)
        r = try runLM(["tokenize", "--tokenizer", bert, "--ids", "--no-special", "Hello world"])
        XCTAssertEqual(r.stdout, "7592 2088\n", r.stderr)
        let sp = try TestPaths.sharedFile("fixtures/llama-tiny/model/tokenizer.model")
        r = try runLM(["tokenize", "--tokenizer", sp, "--ids", "The end."])
        XCTAssertEqual(r.stdout, "355 322 273 463\n", r.stderr)
        r = try runLM(["tokenize", "--tokenizer", sp, "--ids", "--add-special", "The end."])
        XCTAssertEqual(r.stdout, "1 355 322 273 463\n", r.stderr)
        let gguf = try TestPaths.sharedFile("data/llama-cpp-vocab/ggml-vocab-bert-bge.gguf")
        r = try runLM(["tokenize", "--tokenizer", gguf, "--pieces", "--no-special", "Führer"])
        XCTAssertEqual(r.stdout, "fu ##hrer\n", r.stderr)
    }

    func testDefaultOutputIsATable() throws {
        let r = try runLM(["tokenize", "--tokenizer", try TestPaths.sharedFile("data/gpt2-tokenizer"), "Hello world"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("15496  Hello"), r.stdout)
        XCTAssertTrue(r.stdout.contains("2 tokens"), r.stdout)
    }

    func testErrorsAreOneLine() throws {
        let gpt2 = try TestPaths.sharedFile("data/gpt2-tokenizer")
        var r = try runLM(["tokenize", "--tokenizer", gpt2, "--json"], stdin: [0x63, 0x61, 0x66, 0xE9])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("not valid UTF-8: byte 0xE9 at offset 3"), r.stderr)
        XCTAssertEqual(r.stdout, "")
        r = try runLM(["tokenize", "--tokenizer", "/nonexistent/folder", "x"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("does not exist"), r.stderr)
        r = try runLM(["tokenize", "--tokenizer", TestPaths.model("gpt2-tiny"), "x"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("no tokenizer in folder"), r.stderr)
        r = try runLM(["tokenize", "--tokenizer", try TestPaths.sharedFile("data/wikitext-2/README.md"), "x"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("unknown tokenizer file"), r.stderr)
        r = try runLM(["tokenize", "--tokenizer", gpt2, "--ids", "--json", "x"])
        XCTAssertNotEqual(r.status, 0)
        for line in [r.stderr] { XCTAssertFalse(line.contains("Fatal error"), line) }
    }

    func testTrainWritesModelAndDescriptionAndValidatesFirst() throws {
        let dir = try TestPaths.temporaryDirectory("tok-train")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let corpus = try TestPaths.sharedFile("data/sentencepiece/botchan.txt")
        var r = try runLM(["tokenizer", "train", "--input", corpus, "--vocab-size", "400", "--model-type", "bpe",
                         "--byte-fallback", "--output", dir])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("wrote"), r.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/tokenizer.model"))
        let report = try loadJSON(dir + "/tokenizer_training.json")
        XCTAssertEqual(report["vocabSize"] as? Int, 400)
        r = try runLM(["tokenize", "--tokenizer", dir, "--json", "Botchan"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertFalse(ints(try json(r.stdout)["ids"]).isEmpty)
        // Too small: refused before training, with the value that works.
        r = try runLM(["tokenizer", "train", "--input", corpus, "--vocab-size", "300", "--model-type", "unigram",
                     "--byte-fallback", "--output", dir + "/x"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("--vocab-size 328"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/x"))
        // The corpus that aborts libsentencepiece's unigram trainer when not validated.
        let blank = dir + "/blank.txt"
        try "  \n\t\n".write(toFile: blank, atomically: true, encoding: .utf8)
        r = try runLM(["tokenizer", "train", "--input", blank, "--vocab-size", "100", "--model-type", "unigram", "--output", dir + "/y"])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("no text to learn from"), r.stderr)
        r = try runLM(["tokenizer", "train", "--input", dir + "/none.txt", "--vocab-size", "100", "--model-type", "bpe", "--output", dir + "/z"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("does not exist"), r.stderr)
    }

    func testHelpHasExamples() throws {
        for args in [["tokenize", "--help"], ["tokenizer", "train", "--help"]] {
            let r = try run(args)
            XCTAssertEqual(r.status, 0)
            XCTAssertTrue(r.stdout.contains("Examples:"), r.stdout)
        }
    }
}
