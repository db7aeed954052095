import Foundation
import LMCore
import LMTestSupport
import XCTest

/// Every inference command on GGUF files (the tiny random Gemma 3 of
/// `LMModelsTests/Fixtures/gemma3-tiny`, with its 512-token SentencePiece vocabulary), `lm inspect`,
/// and broken files as one-line errors.
final class GGUFCLITests: XCTestCase {
    var lm: String { TestPaths.lmBinary }

    func tiny() throws -> String { try TestPaths.checkedIn("LMModelsTests", "gemma3-tiny/tiny-f32.gguf") }

    func testInspectPrintsTheMetadataAndTheTensorTable() throws {
        let r = try run(["inspect", try tiny()])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("general.architecture = \"gemma3\""), r.stdout)
        XCTAssertTrue(r.stdout.contains("gemma3.attention.sliding_window = 8"), r.stdout)
        XCTAssertTrue(r.stdout.contains("blk.5.ffn_down.weight"), r.stdout)
        XCTAssertTrue(r.stdout.contains("architecture gemma3 is supported; every tensor type is supported"), r.stdout)
        let j = try lastJSON(try run(["inspect", try tiny(), "--json"]))
        XCTAssertEqual(j["format"] as? String, "gguf")
        let tensors = try XCTUnwrap(j["tensors"] as? [[String: Any]])
        XCTAssertEqual(tensors.count, 80)
        let embd = try XCTUnwrap(tensors.first { $0["name"] as? String == "token_embd.weight" })
        XCTAssertEqual(ints(embd["shape"]), [512, 64])
        XCTAssertEqual(embd["type"] as? String, "F32")
        XCTAssertEqual(embd["bytes"] as? Int, 512 * 64 * 4)
        let meta = try XCTUnwrap(j["metadata"] as? [String: Any])
        XCTAssertEqual(meta["gemma3.block_count"] as? Int, 6)
        // A Hugging Face folder: config and tensors with their roles.
        let hf = try run(["inspect", try TestPaths.checkedIn("LMModelsTests", "gemma3-tiny/hf")])
        XCTAssertEqual(hf.status, 0, hf.stderr)
        XCTAssertTrue(hf.stdout.contains("model.layers.5.mlp.down_proj.weight"), hf.stdout)
        XCTAssertTrue(hf.stdout.contains("ffnDown (layer 5)"), hf.stdout)
    }

    func testGenerateForwardTokenizeBenchAndEvalTakeAGGUFFile() throws {
        let g = try run(["generate", "--model", try tiny(), "--prompt", "Hello world", "--temperature", "0",
                         "--max-tokens", "6", "--ignore-eos", "--json"])
        XCTAssertEqual(g.status, 0, g.stderr)
        let j = try lastJSON(g)
        XCTAssertEqual(ints(j["ids"]).count, 6)
        XCTAssertEqual(j["prompt_tokens"] as? Int, 3, "<bos> hello ▁world")
        let t = try run(["tokenize", "--tokenizer", try tiny(), "--add-special", "--lines", "--ids"], stdin: "Hello world\nthe capital\n")
        XCTAssertEqual(t.status, 0, t.stderr)
        XCTAssertEqual(t.stdout.split(separator: "\n").count, 2)
        XCTAssertTrue(t.stdout.hasPrefix("2 345 350\n"), t.stdout)
        let dir = try TestPaths.temporaryDirectory("gguf-cli")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let f = try run(["forward", "--model", try tiny(), "--ids", "2,345,350", "--batch", "1", "--out", dir + "/l.safetensors"])
        XCTAssertEqual(f.status, 0, f.stderr)
        XCTAssertEqual(try SafeTensorsFile(path: dir + "/l.safetensors").entries["logits"]?.shape, [3, 512])
        let b = try run(["bench", "--model", try tiny(), "--pp", "16", "--tg", "4", "--reps", "1", "--json"])
        XCTAssertEqual(b.status, 0, b.stderr)
        let bj = try lastJSON(b)
        XCTAssertNotNil(bj["pp16"])
        XCTAssertEqual((bj["weight_types"] as? [String: Any])?["F32"] as? Int, 43)
        XCTAssertNotNil(bj["kernels"] as? String)
        let text = String(repeating: "hello world of france is the capital. ", count: 20)
        try text.write(toFile: dir + "/c.txt", atomically: true, encoding: .utf8)
        let e = try run(["eval", "--model", try tiny(), "--corpus", dir + "/c.txt", "--context", "32", "--json"])
        XCTAssertEqual(e.status, 0, e.stderr)
        XCTAssertGreaterThan(try XCTUnwrap(try lastJSON(e)["perplexity"] as? Double), 1)
        let chat = try run(["chat", "--model", try tiny(), "--max-tokens", "4", "--temperature", "0", "--json"], stdin: "hello\nworld\n")
        XCTAssertEqual(chat.status, 0, chat.stderr)
        XCTAssertEqual(chat.stdout.split(separator: "\n").count, 2)
    }

    func testBrokenFilesAreOneLineErrors() throws {
        let dir = try TestPaths.temporaryDirectory("gguf-cli")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let bytes = try Data(contentsOf: URL(fileURLWithPath: try tiny()))
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: dir + "/half.gguf"))
        try Data("GGUF".utf8).write(to: URL(fileURLWithPath: dir + "/four.gguf"))
        try Data("hello".utf8).write(to: URL(fileURLWithPath: dir + "/text.gguf"))
        for (file, fragment) in [("half.gguf", "truncated"), ("four.gguf", "truncated"), ("text.gguf", "neither a model folder nor a GGUF file"),
                                 ("missing.gguf", "does not exist")] {
            for args in [["generate", "--model", dir + "/" + file, "--prompt", "hi"], ["inspect", dir + "/" + file],
                         ["bench", "--model", dir + "/" + file]] {
                let r = try run(args)
                XCTAssertNotEqual(r.status, 0, "\(args)")
                let lines = r.stderr.split(separator: "\n")
                XCTAssertEqual(lines.count, 1, "\(args): \(r.stderr)")
                XCTAssertTrue(r.stderr.contains(fragment), "\(args): \(r.stderr)")
                XCTAssertFalse(r.stderr.contains("Fatal error"), r.stderr)
            }
        }
    }
}
