import Foundation
import LMCore
import LMModels
import LMQuant
import LMTestSupport
import LMTokenizers
import XCTest

final class QuantizeTests: XCTestCase {
    var dir = ""
    override func setUpWithError() throws { dir = try TestPaths.temporaryDirectory("quant") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func testBundledModelQuantizesWithinTheQ8QualityBar() throws {
        let src = TestPaths.model("shakespeare"), out = dir + "/int8"
        let summary = try ModelQuantizer.quantize(folder: src, to: out)
        XCTAssertLessThanOrEqual(summary.sizeRatio, 0.30, "file size ≤ 30 % of fp32")
        XCTAssertEqual(summary.quantizedTensors, 17, "16 block matrices and the embedding")
        let fp32 = try ModelRegistry.loadCausalLM(folder: src, pool: ThreadPool(threads: 2))
        let int8 = try ModelRegistry.loadCausalLM(folder: out, pool: ThreadPool(threads: 2))
        XCTAssertTrue((int8 as? GPT2Model)?.isQuantized == true)
        // Tiny Shakespeare's validation split (the last 10 %), 60 windows of 64.
        let text = try String(contentsOfFile: try TestPaths.sharedFile("data/tinyshakespeare/input.txt"), encoding: .utf8)
        let tok = try XCTUnwrap(try TokenizerLoader.find(inModelFolder: src))
        let ids = try tok.encode(text)
        let val = Array(ids[(ids.count * 9 / 10)...])
        let c = try Perplexity.compare(reference: fp32, candidate: int8, tokens: val, context: 64, maxChunks: 60)
        XCTAssertEqual(c.reference.scoredTokens, 60 * 31)
        XCTAssertGreaterThan(c.reference.perplexity, 3, "a character model's perplexity: \(c.reference.perplexity)")
        XCTAssertLessThan(c.reference.perplexity, 12)
        XCTAssertLessThanOrEqual(c.changePercent, 0.5, "perplexity within +0.5 %: \(c.changePercent)")
        XCTAssertGreaterThanOrEqual(c.top1Agreement, 0.977, "top-1 agreement")
        XCTAssertGreaterThan(c.meanKLD, 0, "int8 is not the float model")
        XCTAssertLessThan(c.meanKLD, 0.01)
        // The plain evaluation agrees with the comparison's reference.
        let r = try Perplexity.evaluate(fp32, tokens: val, context: 64, maxChunks: 60)
        XCTAssertEqual(r.perplexity, c.reference.perplexity, accuracy: 1e-9)
        // It still writes Shakespeare: the greedy continuation mostly agrees with the float model.
        func greedy(_ m: any CausalLanguageModel) throws -> [Int] {
            let cache = m.makeCache()
            var ids = try tok.encode("ROMEO:\n")
            var out: [Int] = []
            var logits = try m.forward(tokens: ids, cache: cache)
            for _ in 0..<40 {
                let next = logits.indices.max { logits[$0] < logits[$1] }!
                out.append(next)
                ids = [next]
                logits = try m.forward(tokens: ids, cache: cache)
            }
            return out
        }
        let a = try greedy(fp32), b = try greedy(int8)
        XCTAssertGreaterThanOrEqual(zip(a, b).prefix { $0 == $1 }.count, 10, "\(tok.decode(a)) vs \(tok.decode(b))")
    }

    func testQuantizingTwiceIsRefusedAndCorruptScalesAreCaught() throws {
        let out = dir + "/int8"
        _ = try ModelQuantizer.quantize(folder: TestPaths.model("shakespeare"), to: out)
        XCTAssertThrowsError(try ModelQuantizer.quantize(folder: out, to: dir + "/again")) { e in
            XCTAssertTrue((e as? LMError)?.message.contains("already quantized") == true, "\(e)")
        }
        // Corrupt one scale of one tensor: loading must fail with a message naming it.
        let file = try SafeTensorsFile(path: out + "/model.safetensors")
        var items: [(String, SafeTensorsWriter.Item)] = []
        for name in file.names {
            let (e, bytes) = try file.rawBytes(name)
            var b = Array(bytes)
            if name == "transformer.h.1.mlp.c_fc.weight.q8_scale" { b[2] = 0x00; b[3] = 0x7E }  // a NaN float16
            items.append((name, .raw(dtype: e.dtype, shape: e.shape, bytes: b)))
        }
        try SafeTensorsWriter.write(items: items, to: out + "/model.safetensors")
        XCTAssertThrowsError(try ModelRegistry.loadCausalLM(folder: out)) { e in
            let m = (e as? LMError)?.message ?? "\(e)"
            XCTAssertTrue(m.contains("corrupt scale") && m.contains("mlp.c_fc"), m)
        }
    }

    func testInputWidthsThatAreNotAMultipleOf32ArePadded() throws {
        var config = GPT2Config()
        config.vocabSize = 100; config.nEmbd = 48; config.nLayer = 1; config.nHead = 3; config.nPositions = 32
        let model = dir + "/odd"
        try FileManager.default.createDirectory(atPath: model, withIntermediateDirectories: true)
        let source = RandomWeightSource(seed: 9, std: 0.2)
        try SafeTensorsWriter.write(try config.parameterLayout.map { ($0.name, try source.tensor($0.name, shape: $0.shape)) },
                                    to: model + "/model.safetensors")
        try config.huggingFaceJSON().write(to: URL(fileURLWithPath: model + "/config.json"))
        _ = try ModelQuantizer.quantize(folder: model, to: dir + "/odd-int8")
        let q = try SafeTensorsFile(path: dir + "/odd-int8/model.safetensors")
        XCTAssertEqual(q.entries["transformer.h.0.attn.c_attn.weight.q8"]?.shape, [144, 64], "48 inputs padded to 64")
        let a = try ModelRegistry.loadCausalLM(folder: model), b = try ModelRegistry.loadCausalLM(folder: dir + "/odd-int8")
        let ids = [1, 5, 9, 30, 2, 77]
        let la = try a.forward(tokens: ids, cache: a.makeCache(), allLogits: true)
        let lb = try b.forward(tokens: ids, cache: b.makeCache(), allLogits: true)
        XCTAssertLessThan(maxAbsDiff(la, lb) / maxAbs(la), 0.02, "padded int8 stays close to float")
        // Decoding one token at a time (the GEMV path) agrees with the batched path.
        let cache = b.makeCache()
        var last: [Float] = []
        for id in ids { last = try b.forward(tokens: [id], cache: cache) }
        assertClose(last, Array(lb.suffix(100)), tol: 0.02 * maxAbs(la), "int8 decode vs prefill")
    }
}
