import Foundation
import LMCore
import LMModels
import LMTestSupport
import XCTest

/// GPT-2 against PyTorch / Hugging Face outputs in ../shared/fixtures/gpt2-tiny.
final class GPT2ParityTests: XCTestCase {
    func fixture(_ name: String) throws -> String { try TestPaths.sharedFile("fixtures/gpt2-tiny/" + name) }

    func loadModel(threads: Int = 2) throws -> any CausalLanguageModel {
        try ModelRegistry.loadCausalLM(folder: try fixture("model"), pool: ThreadPool(threads: threads))
    }

    func testLogitsMatchPyTorchOnEverySequence() throws {
        let model = try loadModel()
        let meta = try loadJSON(try fixture("logits.json"))
        let ref = try SafeTensorsFile(path: try fixture("logits.safetensors"))
        let sequences = meta["sequences"] as! [[String: Any]]
        XCTAssertEqual(sequences.count, 3)
        for seq in sequences {
            let ids = ints(seq["input_ids"])
            let expected = try ref.tensor(seq["logits_key"] as! String)
            let got = try model.forward(tokens: ids, cache: model.makeCache(), allLogits: true)
            assertClose(got, expected.scalars, tol: Tolerance.logits, "logits of \(seq["name"]!)")
        }
    }

    func testCachedDecodingEqualsFullRecompute() throws {
        let model = try loadModel()
        let ids = ints((try loadJSON(try fixture("logits.json"))["sequences"] as! [[String: Any]])[2]["input_ids"])
        let full = try model.forward(tokens: ids, cache: model.makeCache(), allLogits: true)
        let V = model.vocabularySize
        // Prefill 5 tokens, then one at a time: every step's logits equal the full pass's row.
        let cache = model.makeCache()
        let first = try model.forward(tokens: Array(ids[0..<5]), cache: cache, allLogits: false)
        assertClose(first, Array(full[4 * V..<5 * V]), tol: Tolerance.cacheVsRecompute, "prefill row 4")
        var worst: Float = 0
        for t in 5..<ids.count {
            let step = try model.forward(tokens: [ids[t]], cache: cache, allLogits: false)
            worst = max(worst, maxAbsDiff(step, Array(full[t * V..<(t + 1) * V])))
        }
        XCTAssertLessThanOrEqual(worst, Tolerance.cacheVsRecompute, "cached decode vs recompute")
        XCTAssertEqual(cache.length, ids.count)
    }

    func testStepLogitsOfGreedyDecodingMatchPyTorch() throws {
        let model = try loadModel(threads: 1)
        let meta = try loadJSON(try fixture("generate.json"))
        let ref = try SafeTensorsFile(path: try fixture("generate.safetensors"))
        for prompt in meta["prompts"] as! [[String: Any]] {
            let cache = model.makeCache()
            var logits = try model.forward(tokens: ints(prompt["prompt_ids"]), cache: cache, allLogits: false)
            let expected = try ref.tensor(prompt["step_logits_key"] as! String)
            let newIDs = ints(prompt["new_ids"])
            let V = model.vocabularySize
            for (step, id) in newIDs.enumerated() {
                assertClose(logits, Array(expected.scalars[step * V..<(step + 1) * V]), tol: Tolerance.logits,
                            "step \(step) of \(prompt["name"]!)")
                XCTAssertEqual(logits.indices.max { logits[$0] < logits[$1] }, id)
                if step + 1 < newIDs.count { logits = try model.forward(tokens: [id], cache: cache, allLogits: false) }
            }
            XCTAssertEqual([cache.length], [ints(prompt["prompt_ids"]).count + newIDs.count - 1])
        }
    }

    func testPrefillInSeveralChunksEqualsOnePass() throws {
        let folder = try ModelFolder(path: try fixture("model"))
        let small = try GPT2Model(folder: folder, pool: ThreadPool(threads: 2))
        let ids = (0..<100).map { ($0 * 37) % 1000 }
        let config = small.config
        let chunked = try GPT2Model(folder: folder, maxBatch: 16, pool: ThreadPool(threads: 2))
        XCTAssertEqual(chunked.config, config)
        let a = try small.forward(tokens: ids, cache: small.makeCache(), allLogits: true)
        let b = try chunked.forward(tokens: ids, cache: chunked.makeCache(), allLogits: true)
        assertClose(a, b, tol: Tolerance.cacheVsRecompute, "chunked prefill")
    }
}

/// Loading and bad input.
final class ModelLoadingTests: XCTestCase {
    var dir = ""
    override func setUpWithError() throws { dir = try TestPaths.temporaryDirectory("models") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func copyFixtureModel(_ name: String) throws -> String {
        let src = try TestPaths.sharedFile("fixtures/gpt2-tiny/model")
        let dst = dir + "/" + name
        try FileManager.default.createDirectory(atPath: dst, withIntermediateDirectories: true)
        for f in ["config.json", "model.safetensors"] {
            try FileManager.default.copyItem(atPath: src + "/" + f, toPath: dst + "/" + f)
        }
        return dst
    }

    func expectError(_ kind: LMError.Kind, _ fragment: String, line: UInt = #line, _ body: () throws -> Void) {
        XCTAssertThrowsError(try body(), line: line) { e in
            guard let e = e as? LMError else { return XCTFail("not an LMError: \(e)", line: line) }
            XCTAssertEqual(e.kind, kind, e.message, line: line)
            XCTAssertTrue(e.message.contains(fragment), "'\(e.message)' should mention '\(fragment)'", line: line)
        }
    }

    func testTensorNamesWithoutTransformerPrefixLoad() throws {
        let folder = try copyFixtureModel("noprefix")
        let file = try SafeTensorsFile(path: folder + "/model.safetensors")
        let renamed = try file.names.map { name -> (String, Tensor) in
            (name.hasPrefix("transformer.") ? String(name.dropFirst(12)) : name, try file.tensor(name))
        }
        try SafeTensorsWriter.write(renamed, to: folder + "/model.safetensors")
        let a = try ModelRegistry.loadCausalLM(folder: folder)
        let b = try ModelRegistry.loadCausalLM(folder: try TestPaths.sharedFile("fixtures/gpt2-tiny/model"))
        XCTAssertEqual(try a.forward(tokens: [1, 2, 3], cache: a.makeCache()), try b.forward(tokens: [1, 2, 3], cache: b.makeCache()))
    }

    func testBadFoldersAndFilesGiveClearErrors() throws {
        expectError(.fileNotFound, "does not exist") { _ = try ModelRegistry.loadCausalLM(folder: self.dir + "/missing") }
        try FileManager.default.createDirectory(atPath: dir + "/empty", withIntermediateDirectories: true)
        expectError(.fileNotFound, "config.json") { _ = try ModelRegistry.loadCausalLM(folder: self.dir + "/empty") }

        let unknown = try copyFixtureModel("unknown")
        let cfg = try String(contentsOfFile: unknown + "/config.json", encoding: .utf8)
            .replacingOccurrences(of: "\"model_type\": \"gpt2\"", with: "\"model_type\": \"mamba9\"")
        try cfg.write(toFile: unknown + "/config.json", atomically: true, encoding: .utf8)
        expectError(.invalidConfig, "mamba9") { _ = try ModelRegistry.loadCausalLM(folder: unknown) }

        let truncated = try copyFixtureModel("truncated")
        let data = try Data(contentsOf: URL(fileURLWithPath: truncated + "/model.safetensors"))
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: truncated + "/model.safetensors"))
        expectError(.corruptFile, "truncated") { _ = try ModelRegistry.loadCausalLM(folder: truncated) }

        let noWeights = try copyFixtureModel("noweights")
        try FileManager.default.removeItem(atPath: noWeights + "/model.safetensors")
        expectError(.fileNotFound, "model.safetensors") { _ = try ModelRegistry.loadCausalLM(folder: noWeights) }

        let wrongShape = try copyFixtureModel("wrongshape")
        let cfg2 = try String(contentsOfFile: wrongShape + "/config.json", encoding: .utf8)
            .replacingOccurrences(of: "\"n_positions\": 128", with: "\"n_positions\": 256")
        try cfg2.write(toFile: wrongShape + "/config.json", atomically: true, encoding: .utf8)
        expectError(.shapeMismatch, "wpe") { _ = try ModelRegistry.loadCausalLM(folder: wrongShape) }

        let badHeads = try copyFixtureModel("badheads")
        let cfg3 = try String(contentsOfFile: badHeads + "/config.json", encoding: .utf8)
            .replacingOccurrences(of: "\"n_head\": 4", with: "\"n_head\": 5")
        try cfg3.write(toFile: badHeads + "/config.json", atomically: true, encoding: .utf8)
        expectError(.invalidConfig, "divisible") { _ = try ModelRegistry.loadCausalLM(folder: badHeads) }
    }

    func testBadTokensAndContextOverflowThrow() throws {
        let model = try ModelRegistry.loadCausalLM(folder: try TestPaths.sharedFile("fixtures/gpt2-tiny/model"))
        expectError(.invalidInput, "outside the vocabulary") { _ = try model.forward(tokens: [1000], cache: model.makeCache()) }
        expectError(.invalidInput, "context") {
            _ = try model.forward(tokens: [Int](repeating: 1, count: 129), cache: model.makeCache())
        }
        let cache = model.makeCache()
        _ = try model.forward(tokens: [Int](repeating: 1, count: 128), cache: cache)
        expectError(.invalidInput, "context") { _ = try model.forward(tokens: [1], cache: cache) }
        expectError(.invalidInput, "no tokens") { _ = try model.forward(tokens: [], cache: model.makeCache()) }
    }

    func testRandomModelHasTheRequestedShape() throws {
        let model = try GPT2Model(randomWith: GPT2Config.presets["gpt2-nano"]!, seed: 1)
        XCTAssertEqual(model.contextLength, 1024)
        XCTAssertEqual(model.parameterCount, GPT2Config.presets["gpt2-nano"]!.parameterLayout.reduce(0) { $0 + $1.shape.reduce(1, *) })
        XCTAssertEqual(GPT2Config.gpt2Small.parameterLayout.reduce(0) { $0 + $1.shape.reduce(1, *) }, 124_439_808)
        let logits = try model.forward(tokens: [1, 2, 3], cache: model.makeCache())
        XCTAssertTrue(logits.allSatisfy(\.isFinite))
    }
}
