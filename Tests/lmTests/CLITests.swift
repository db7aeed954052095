import Foundation
import LMCore
import LMModels
import LMTestSupport
import XCTest

/// Runs the real `lm` binary and checks the command contracts.
final class CLITests: XCTestCase {
    var lm: String { TestPaths.lmBinary }
    var tiny: String { TestPaths.model("gpt2-tiny") }

    func testGenerateJSONContractAndGreedyIDs() throws {
        let r = try run(["generate", "--model", tiny, "--prompt-ids", "992,211,349,527", "--temperature", "0",
                         "--max-tokens", "20", "--ignore-eos", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let j = try lastJSON(r)
        XCTAssertEqual(ints(j["ids"]), [290, 290, 290, 290, 286, 286, 286, 286, 946, 946, 665, 665, 665, 825, 286, 946, 322, 322, 177, 177])
        XCTAssertNotNil(j["prompt_tokens_per_s"] as? Double)
        XCTAssertGreaterThan(try XCTUnwrap(j["tokens_per_s"] as? Double), 0)
        XCTAssertTrue(r.stderr.contains("tokens/s"))
    }

    func testGenerateStreamsIDsWithoutTokenizer() throws {
        let r = try run(["generate", "--model", tiny, "--prompt-ids", "1,2,3", "--max-tokens", "5", "--seed", "7"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout.split(separator: " ").filter { !$0.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty }.count, 5)
        let again = try run(["generate", "--model", tiny, "--prompt-ids", "1,2,3", "--max-tokens", "5", "--seed", "7", "--threads", "1"])
        XCTAssertEqual(r.stdout, again.stdout, "same seed, same tokens, any thread count")
    }

    func testGenerateUsesTheBundledShakespeareModelByDefault() throws {
        let r = try run(["generate", "--prompt", "ROMEO:", "--max-tokens", "200", "--seed", "1", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let text = try XCTUnwrap(try lastJSON(r)["text"] as? String)
        XCTAssertEqual(text.unicodeScalars.count, 200, "one character per token")
        // A trained character model writes mostly lowercase English words and line breaks.
        let words = text.split(whereSeparator: { !$0.isLetter }).map { $0.lowercased() }
        let common: Set<String> = ["the", "and", "i", "to", "of", "a", "my", "you", "that", "in", "is", "not", "me", "it", "with", "be", "your", "his", "this", "he"]
        XCTAssertGreaterThan(words.filter(common.contains).count, 5, "Shakespeare-like text: \(text)")
        XCTAssertTrue(text.contains("\n"))
    }

    /// A small random GPT-2 with the real GPT-2 tokenizer files beside it.
    func makeTokenizedModel() throws -> String {
        let dir = try TestPaths.temporaryDirectory("gpt2-tok")
        var config = GPT2Config()
        config.nEmbd = 32; config.nLayer = 1; config.nHead = 2; config.nPositions = 64
        let source = RandomWeightSource(seed: 3, std: 0.5)
        let tensors = try config.parameterLayout.map { ($0.name, try source.tensor($0.name, shape: $0.shape)) }
        try SafeTensorsWriter.write(tensors, to: dir + "/model.safetensors")
        let json = try JSONEncoder().encode(config)
        try json.write(to: URL(fileURLWithPath: dir + "/config.json"))
        for f in ["vocab.json", "merges.txt"] {
            try FileManager.default.copyItem(atPath: try TestPaths.sharedFile("data/gpt2-tokenizer/" + f), toPath: dir + "/" + f)
        }
        return dir
    }

    func testGenerateFromTextStreamsDecodedText() throws {
        let model = try makeTokenizedModel()
        defer { try? FileManager.default.removeItem(atPath: model) }
        let json = try run(["generate", "--model", model, "--prompt", "Hello world", "--max-tokens", "6",
                            "--seed", "2", "--ignore-eos", "--json"])
        XCTAssertEqual(json.status, 0, json.stderr)
        let j = try lastJSON(json)
        XCTAssertEqual(ints(j["ids"]).count, 6)
        let text = try XCTUnwrap(j["text"] as? String)
        XCTAssertFalse(text.isEmpty)
        let streamed = try run(["generate", "--model", model, "--prompt", "Hello world", "--max-tokens", "6",
                                "--seed", "2", "--ignore-eos"])
        XCTAssertEqual(streamed.status, 0, streamed.stderr)
        XCTAssertEqual(streamed.stdout, "Hello world" + text + "\n", "streamed text = prompt + decoded ids")
    }

    func testForwardWritesLogitsTensor() throws {
        let dir = try TestPaths.temporaryDirectory("forward")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let out = dir + "/l.safetensors"
        let r = try run(["forward", "--model", tiny, "--ids", "231,27,609", "--out", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        let f = try SafeTensorsFile(path: out)
        XCTAssertEqual(f.names, ["logits"])
        let t = try f.tensor("logits")
        XCTAssertEqual(t.shape, [3, 1000])
        let ref = try SafeTensorsFile(path: try TestPaths.sharedFile("fixtures/gpt2-tiny/logits.safetensors")).tensor("logits.1")
        assertClose(Array(t.scalars[0..<3000]), Array(ref.scalars[0..<3000]), tol: Tolerance.logits, "first 3 positions")
    }

    func testBenchJSONContract() throws {
        let r = try run(["bench", "--random", "gpt2-nano", "--reps", "2", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let j = try lastJSON(r)
        for key in ["pp512", "tg128"] {
            let test = try XCTUnwrap(j[key] as? [String: Any], "missing \(key)")
            XCTAssertGreaterThan(try XCTUnwrap(test["mean"] as? Double), 0)
            XCTAssertNotNil(test["stddev"] as? Double)
            XCTAssertEqual((test["runs"] as? [Any])?.count, 2)
        }
    }

    func testBadInputGivesOneLineErrorAndNonZeroExit() throws {
        let dir = try TestPaths.temporaryDirectory("badcli")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A truncated checkpoint and an unknown architecture.
        for name in ["truncated", "unknown"] {
            try FileManager.default.createDirectory(atPath: dir + "/" + name, withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: tiny + "/config.json", toPath: dir + "/\(name)/config.json")
            let data = try Data(contentsOf: URL(fileURLWithPath: tiny + "/model.safetensors"))
            try (name == "truncated" ? data.prefix(1000) : data).write(to: URL(fileURLWithPath: dir + "/\(name)/model.safetensors"))
        }
        let cfg = try String(contentsOfFile: dir + "/unknown/config.json", encoding: .utf8)
            .replacingOccurrences(of: "\"gpt2\"", with: "\"xlnet\"")
        try cfg.write(toFile: dir + "/unknown/config.json", atomically: true, encoding: .utf8)
        let long = (0..<200).map(String.init).joined(separator: ",")
        let cases: [([String], String)] = [
            (["generate", "--model", dir + "/missing", "--prompt-ids", "1"], "does not exist"),
            (["generate", "--model", dir + "/truncated", "--prompt-ids", "1"], "truncated"),
            (["generate", "--model", dir + "/unknown", "--prompt-ids", "1"], "xlnet"),
            (["generate", "--model", tiny, "--prompt-ids", long], "context"),
            (["generate", "--model", tiny, "--prompt-ids", "1", "--top-p", "2"], "--top-p"),
            (["generate", "--model", tiny, "--prompt-ids", "5000"], "vocabulary"),
            (["generate", "--model", tiny, "--prompt", "hello"], "--prompt-ids"),
            (["forward", "--model", tiny, "--ids", "1,x", "--out", dir + "/o.safetensors"], "token id"),
        ]
        for (args, fragment) in cases {
            let r = try run(args)
            XCTAssertNotEqual(r.status, 0, "\(args) should fail")
            let lines = r.stderr.split(separator: "\n")
            XCTAssertEqual(lines.count, 1, "\(args): one line, got: \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(fragment), "\(args): '\(r.stderr)' should mention '\(fragment)'")
            XCTAssertFalse(r.stderr.contains("Fatal error"), r.stderr)
        }
    }
}
