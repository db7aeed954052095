import Foundation
import LMCore
import LMModels
import LMTestSupport
import XCTest

/// Gemma 3 against transformers and llama.cpp on the random 6-layer model of
/// `Fixtures/gemma3-tiny` (made by its `make_gemma3_tiny.py`): the same model as a Hugging Face
/// folder and as an F32 GGUF, sliding window 8 on layers 0–4, GQA 4:1.
final class Gemma3ParityTests: XCTestCase {
    static let pool = ThreadPool(threads: 2)

    func fixture(_ name: String) throws -> String { try TestPaths.checkedIn("LMModelsTests", "gemma3-tiny/" + name) }

    func load(_ name: String, maxBatch: Int = 512, threads: Int = 2) throws -> any CausalLanguageModel {
        let pool = threads == 2 ? Self.pool : ThreadPool(threads: threads)
        return try ModelRegistry.loadCausalLM(try ModelFile(path: try fixture(name)),
                                              options: ModelLoadOptions(pool: pool, maxBatch: maxBatch))
    }

    var sequences: [[String: Any]] {
        get throws { try loadJSON(try fixture("reference.json"))["sequences"] as! [[String: Any]] }
    }

    /// Logits of `ids` run `step` tokens per call (all at once when nil).
    func logits(_ model: any CausalLanguageModel, _ ids: [Int], step: Int? = nil) throws -> [Float] {
        let cache = model.makeCache()
        var out: [Float] = []
        var done = 0
        while done < ids.count {
            let chunk = Array(ids[done..<min(ids.count, done + (step ?? ids.count))])
            out += try model.forward(tokens: chunk, cache: cache, allLogits: true)
            done += chunk.count
        }
        return out
    }

    func testHuggingFaceFolderAndGGUFMatchTransformers() throws {
        let ref = try SafeTensorsFile(path: try fixture("reference.safetensors"))
        let hf = try load("hf"), gguf = try load("tiny-f32.gguf")
        XCTAssertEqual(hf.modelType, "gemma3")
        XCTAssertEqual(gguf.vocabularySize, 512)
        XCTAssertEqual(hf.parameterCount, 305_088)
        XCTAssertEqual(gguf.parameterCount, 305_088)
        for seq in try sequences {
            let ids = ints(seq["input_ids"]), name = seq["name"] as! String
            let expected = try ref.tensor(seq["transformers_logits_key"] as! String).scalars
            let a = try logits(hf, ids), b = try logits(gguf, ids)
            assertClose(a, expected, tol: Tolerance.logits, "HF folder, \(name)")
            assertClose(b, expected, tol: Tolerance.logits, "GGUF, \(name)")
            // The two files hold the same numbers (GGUF's norms are 1 + w, added in float32 as we do).
            assertClose(a, b, tol: 1e-6, "HF folder vs GGUF, \(name)")
        }
    }

    func testTokenByTokenAndChunkedPrefillMatchTheBatch() throws {
        // maxBatch 5: the sliding-window layers (window 8) keep 12 slots and drop old positions
        // as chunks arrive; token by token: 8 slots.
        let ref = try SafeTensorsFile(path: try fixture("reference.safetensors"))
        for maxBatch in [1, 5, 512] {
            let model = try load("tiny-f32.gguf", maxBatch: maxBatch)
            for seq in try sequences {
                let ids = ints(seq["input_ids"])
                let expected = try ref.tensor(seq["transformers_logits_key"] as! String).scalars
                for step in [1, 3, 7, nil] as [Int?] {
                    assertClose(try logits(model, ids, step: step), expected, tol: Tolerance.logits,
                                "maxBatch \(maxBatch), \(step.map { "\($0) per call" } ?? "one call"), \(seq["name"]!)")
                }
            }
        }
    }

    func testResultsDoNotDependOnTheThreadCount() throws {
        let ids = ints((try sequences)[2]["input_ids"])
        let one = try logits(try load("tiny-f32.gguf", threads: 1), ids)
        let three = try logits(try load("tiny-f32.gguf", threads: 3), ids)
        XCTAssertEqual(one, three)
    }

    func testLlamaCppAgreesWithinItsF16CacheNoise() throws {
        // llama.cpp keeps an f16 KV cache and an f16 GELU table; on this model it is 3.5e-3 to
        // 4.9e-3 from transformers (measured by make_gemma3_tiny.py). Bound: 0.02.
        let ref = try SafeTensorsFile(path: try fixture("reference.safetensors"))
        let model = try load("tiny-f32.gguf")
        for seq in try sequences {
            let ids = ints(seq["input_ids"])
            let ours = try logits(model, ids)
            for key in ["llamacpp_batch_logits_key", "llamacpp_token_by_token_logits_key"] {
                assertClose(ours, try ref.tensor(seq[key] as! String).scalars, tol: 0.02, "\(key), \(seq["name"]!)")
            }
        }
    }

    func testGreedyDecodingGivesTheReferenceTokens() throws {
        let meta = try loadJSON(try fixture("reference.json"))["greedy"] as! [String: Any]
        let ref = try SafeTensorsFile(path: try fixture("reference.safetensors"))
        let stepLogits = try ref.tensor(meta["transformers_step_logits_key"] as! String).scalars
        let model = try load("tiny-f32.gguf")
        let cache = model.makeCache()
        var logits = try model.forward(tokens: ints(meta["prompt_ids"]), cache: cache)
        var got: [Int] = []
        for step in 0..<8 {
            assertClose(logits, Array(stepLogits[step * 512..<(step + 1) * 512]), tol: Tolerance.logits, "greedy step \(step)")
            let next = logits.indices.max { logits[$0] < logits[$1] || (logits[$0] == logits[$1] && $0 > $1) }!
            got.append(next)
            logits = try model.forward(tokens: [next], cache: cache)
        }
        XCTAssertEqual(got, ints(meta["new_ids"]))
    }

    func testQuantizedFilesMatchTheExactComputationOfTheirWeights() throws {
        // llama.cpp's own Q8_0 and Q4_K_M (here Q5_0 / Q8_0) files: swift-lm computes with the
        // dequantized weights and float activations — the plain float64 reference; llama.cpp rounds
        // activations to 8 bits (0.13 from it here).
        let ref = try SafeTensorsFile(path: try fixture("quant/logits.safetensors"))
        let ids = ints((try sequences)[1]["input_ids"])
        for name in ["q8_0", "q4_k_m"] {
            let model = try load("quant/tiny-\(name).gguf")
            for step in [1, nil] as [Int?] {
                let ours = try logits(model, ids, step: step)
                assertClose(ours, try ref.tensor("\(name).plain_f64.logits").scalars, tol: Tolerance.logits, "\(name) vs exact")
                assertClose(ours, try ref.tensor("\(name).batch.logits").scalars, tol: 0.4, "\(name) vs llama.cpp")
            }
        }
    }

    func testContextShiftMovesAndRotatesTheCachedKeys() throws {
        // Removing cached positions [3, 9): every later key is the same key rotated back by 6
        // positions, every value is unchanged; in layer 0 (whose inputs do not depend on other
        // tokens) that is exactly what a fresh run over the shortened text computes. (Deeper
        // layers keep what they computed with the removed tokens in view — llama.cpp's context
        // shift is the same approximation.)
        let model = try load("tiny-f32.gguf", maxBatch: 4)
        let gemma = try XCTUnwrap(model as? Gemma3Model)
        XCTAssertTrue(model.canShiftCache)
        let ids = ints((try sequences)[2]["input_ids"])
        let cache = model.makeCache()
        _ = try model.forward(tokens: ids, cache: cache)
        let W = cache.width
        func row(_ base: UnsafeMutablePointer<Float>, _ l: Int, _ p: Int) -> [Float] {
            Array(UnsafeBufferPointer(start: base + (p - cache.base(l)) * W, count: W))
        }
        var keys: [[Int: [Float]]] = [], values: [[Int: [Float]]] = []
        for l in 0..<cache.layers {
            keys.append(Dictionary(uniqueKeysWithValues: cache.held(l).map { ($0, row(cache.keys(l), l, $0)) }))
            values.append(Dictionary(uniqueKeysWithValues: cache.held(l).map { ($0, row(cache.values(l), l, $0)) }))
        }
        XCTAssertTrue(model.shiftCache(cache, removing: 3..<9))
        XCTAssertEqual(cache.length, ids.count - 6)
        for l in 0..<cache.layers {
            let c = gemma.config
            let rope = RotaryEmbedding(headSize: c.headDim, base: c.slidingLayers[l] ? c.ropeBaseLocal : c.ropeBase)
            for p in cache.held(l) {
                let old = p < 3 ? p : p + 6
                var expected = try XCTUnwrap(keys[l][old], "layer \(l) held position \(old)")
                if old != p { rope.applyRef(&expected, rows: 1, heads: c.kvHeads, stride: W, positions: (p - old)..<(p - old + 1)) }
                assertClose(row(cache.keys(l), l, p), expected, tol: 1e-5, "layer \(l) key at \(p)")
                XCTAssertEqual(row(cache.values(l), l, p), values[l][old], "layer \(l) value at \(p)")
            }
        }
        let fresh = model.makeCache()
        _ = try model.forward(tokens: Array(ids[0..<3]) + Array(ids[9...]), cache: fresh)
        for p in cache.held(0) where p >= fresh.base(0) {
            let f = fresh.keys(0) + (p - fresh.base(0)) * W
            assertClose(row(cache.keys(0), 0, p), Array(UnsafeBufferPointer(start: f, count: W)),
                        tol: 1e-5, "layer 0 key at \(p) vs a fresh run")
        }
        // Decoding goes on after the shift.
        XCTAssertEqual(try model.forward(tokens: [300], cache: cache).count, 512)
        // A shift that would take away what the sliding layers need is refused, changing nothing.
        let small = try load("tiny-f32.gguf", maxBatch: 1)
        let c2 = small.makeCache()
        _ = try small.forward(tokens: Array(ids[0..<20]), cache: c2)
        // Window 8, 8 slots: the cache holds positions 13..<20. Removing 10..<16 would need
        // positions 7…9 again (the next query, at 14, sees 7…14).
        XCTAssertFalse(small.shiftCache(c2, removing: 10..<16))
        XCTAssertEqual(c2.length, 20)
        XCTAssertTrue(small.shiftCache(c2, removing: 2..<4), "positions before the window can go")
        XCTAssertEqual(c2.length, 18)
    }

    func testGGUFConfigAndTensorTable() throws {
        let file = try GGUFFile(path: try fixture("tiny-f32.gguf"))
        let c = try Gemma3Config(gguf: file)
        XCTAssertEqual(c.slidingLayers, [true, true, true, true, true, false])
        XCTAssertEqual(c.slidingWindow, 8)
        XCTAssertEqual(c.ropeBaseLocal, 10_000)
        XCTAssertEqual(c.ropeBase, 1_000_000)
        XCTAssertEqual(c.queryScale, 1 / Float(32).squareRoot())
        let hf = try ModelFolder(path: try fixture("hf"))
        let h = try Gemma3Config(huggingFace: hf.configData, path: "config.json")
        XCTAssertEqual(h.slidingLayers, c.slidingLayers)
        XCTAssertEqual(h.ropeBase, c.ropeBase)
        XCTAssertEqual(h.ropeBaseLocal, c.ropeBaseLocal)
        XCTAssertTrue(h.normsAddOne)
        // The table names every tensor of both files.
        for t in c.tensorTable(gguf: true) { XCTAssertNotNil(file.tensorInfo(t.name), t.name) }
        let st = try hf.openWeights()
        for t in h.tensorTable(gguf: false) { XCTAssertTrue(st.contains(t.name), t.name) }
        XCTAssertEqual(try ModelRegistry.tensorTable(hf).filter { $0.role.isQuantizable }.count, 1 + 6 * 7)
    }
}
