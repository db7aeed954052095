import Foundation
import LMCore
import LMModels
import LMTestSupport
import LMTokenizers
import LMTraining
import XCTest

/// `Trainer` with the masked-LM objective: BERT's masking rule, a nano BERT whose loss falls,
/// a run folder that is a `BertForMaskedLM` folder, exact resume, and bad input.
final class MaskedLMTrainerTests: XCTestCase {
    var dir = ""
    var corpus = ""
    var tokenizer = ""

    override func setUpWithError() throws {
        (dir, corpus) = try shakespeareSlice("mlm")
        tokenizer = try TestPaths.sharedFile("models/minilm-l6-v2")
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func nano(steps: Int) throws -> TrainingOptions {
        var o = try TrainingOptions.preset("nano")
        o.maskedLM = MaskedLMOptions()
        o.steps = steps
        o.learningRate = 3e-3
        o.evalInterval = 20
        o.evalBatches = 4
        o.checkpointInterval = 20
        o.logInterval = 5
        return o
    }

    func trainer(_ o: TrainingOptions, _ out: String, resume: Bool = false, spec: TokenizerSpec? = nil) throws -> Trainer {
        try Trainer(corpus: corpus, tokenizer: spec ?? .existing(tokenizer), options: o, runDirectory: out, resume: resume,
                    pool: ThreadPool(threads: 2))
    }

    /// 15 % of the window tokens chosen, of those 80 % [MASK], 10 % random, 10 % kept; [CLS] and
    /// [SEP] around every sequence and never chosen; the same RNG state gives the same batch.
    func testMaskingFollowsBERTsRule() throws {
        let path = dir + "/tokens.bin"
        try TokenFile.write((0..<20_000).map { Int32(1000 + $0 % 5000) }, vocabularySize: 30_000, to: path)
        let data = try TokenDataset(tokens: try TokenFile(path: path), context: 130)
        let special = MaskedLMTokens(cls: 101, sep: 102, mask: 103)
        var rng = SeededRNG(seed: 9)
        let B = 64, T = 130
        let b = MaskedLMBatch(data, data.train, B: B, T: T, vocabularySize: 30_000, tokens: special, options: MaskedLMOptions(), rng: &rng)
        XCTAssertEqual(b.batch.lengths, Array(repeating: T, count: B))
        var chosen = 0, masked = 0, kept = 0, windowTokens = 0
        for s in 0..<B {
            XCTAssertEqual(b.batch.ids[s * T], 101); XCTAssertEqual(b.batch.ids[s * T + T - 1], 102)
            XCTAssertEqual(b.targets[s * T], -1); XCTAssertEqual(b.targets[s * T + T - 1], -1)
            for i in (s * T + 1)..<(s * T + T - 1) {
                windowTokens += 1
                if b.targets[i] < 0 { XCTAssertEqual(b.batch.ids[i], b.original[i]); continue }
                XCTAssertEqual(b.targets[i], b.original[i])
                chosen += 1
                if b.batch.ids[i] == 103 { masked += 1 } else if b.batch.ids[i] == b.original[i] { kept += 1 }
            }
        }
        let random = chosen - masked - kept
        XCTAssertEqual(Double(chosen) / Double(windowTokens), 0.15, accuracy: 0.01, "\(chosen) of \(windowTokens)")
        XCTAssertEqual(Double(masked) / Double(chosen), 0.8, accuracy: 0.03)
        XCTAssertEqual(Double(kept) / Double(chosen), 0.1, accuracy: 0.025)
        XCTAssertEqual(Double(random) / Double(chosen), 0.1, accuracy: 0.025)
        var again = SeededRNG(seed: 9)
        let c = MaskedLMBatch(data, data.train, B: B, T: T, vocabularySize: 30_000, tokens: special, options: MaskedLMOptions(), rng: &again)
        XCTAssertEqual(c.batch.ids, b.batch.ids)
        XCTAssertEqual(c.targets, b.targets)
    }

    func testNanoBERTLossFallsAndTheRunFolderIsABertForMaskedLM() throws {
        let out = dir + "/run"
        let t = try trainer(try nano(steps: 60), out)
        let summary = try t.run()
        let records = try TrainingLog.read(out + "/log.jsonl")
        XCTAssertEqual(records.compactMap(\.valLoss).count, 3, "evaluations at 20, 40, 60")
        let first = try XCTUnwrap(records.first?.trainLoss), last = try XCTUnwrap(records.last?.trainLoss)
        XCTAssertEqual(Double(first), log(30522), accuracy: 0.3, "starts near ln V")
        XCTAssertLessThan(last, first - 1, "loss falls: \(first) → \(last)")
        XCTAssertEqual(summary.bestStep, 60)
        let svg = try String(contentsOfFile: out + "/loss.svg", encoding: .utf8)
        XCTAssertTrue(svg.contains("BERT (masked LM)"), "plot title names the model")

        // A Hugging Face BertForMaskedLM folder: config, weights, vocab.txt.
        let config = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/config.json"))) as? [String: Any])
        XCTAssertEqual(config["architectures"] as? [String], ["BertForMaskedLM"])
        XCTAssertEqual(config["model_type"] as? String, "bert")
        XCTAssertEqual(config["max_position_embeddings"] as? Int, 32)
        let vocab = try String(contentsOfFile: out + "/vocab.txt", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(vocab.count, 30522)
        let names = try SafeTensorsFile(path: out + "/model.safetensors").names
        XCTAssertTrue(names.contains("cls.predictions.transform.dense.weight") && names.contains("bert.encoder.layer.1.output.dense.weight"))
        XCTAssertFalse(names.contains { $0.contains("pooler") }, "BertForMaskedLM has no pooler")

        // Our BERT loader reads it, and its masked-LM logits give the training model's loss.
        let model = try ModelRegistry.loadBert(folder: out, pool: ThreadPool(threads: 1))
        XCTAssertTrue(model.hasMaskedLMHead)
        let objective = try XCTUnwrap(t.objective as? MaskedLMObjective)
        var rng = SeededRNG(seed: 42)
        let b = MaskedLMBatch(t.dataset, t.dataset.validation, B: 4, T: 32, vocabularySize: 30522, tokens: objective.tokens,
                              options: objective.options, rng: &rng)
        objective.training = false
        let expected = try objective.model.forward(b.batch, maskedTargets: b.targets)
        let logits = try model.maskedLMLogits(b.batch)
        var total = 0.0, count = 0
        for (row, target) in b.targets.enumerated() where target >= 0 {
            let z = logits[(row * 30522)..<((row + 1) * 30522)]
            let m = Double(z.max()!)
            total += m + log(z.reduce(0.0) { $0 + exp(Double($1) - m) }) - Double(z[z.startIndex + Int(target)])
            count += 1
        }
        XCTAssertEqual(total / Double(count), Double(expected), accuracy: 1e-4, "inference loss vs training loss")
    }

    func testResumeReproducesTheLossesToTheBit() throws {
        let whole = dir + "/whole", parts = dir + "/parts"
        var o = try nano(steps: 30)
        o.dropout = 0.1  // the dropout RNG state must survive the checkpoint too
        try trainer(o, whole).run()
        try trainer(o, parts).run(pauseAt: 17)
        XCTAssertEqual(try TrainingLog.read(parts + "/log.jsonl").last?.step, 15)
        try trainer(o, parts, resume: true).run()
        try assertSameRun(whole, parts)
    }

    func testTokenizersWithoutMaskAndWrongResumesAreRejected() throws {
        let o = try nano(steps: 10)
        let cases: [(TokenizerSpec, String)] = [(.characters, "needs a WordPiece tokenizer"),
                                                (.sentencePiece(vocabularySize: 500), "needs a WordPiece tokenizer"),
                                                (.existing(try TestPaths.sharedFile("data/gpt2-tokenizer")), "has none")]
        for (i, (spec, fragment)) in cases.enumerated() {
            XCTAssertThrowsError(try trainer(o, dir + "/bad\(i)", spec: spec)) { e in
                let m = (e as? LMError)?.message ?? "\(e)"
                XCTAssertTrue(m.contains(fragment), "'\(m)' should mention '\(fragment)'")
            }
        }
        // A GPT run resumed as a masked LM (or the reverse) is refused.
        let gpt = dir + "/gpt"
        var g = try TrainingOptions.preset("nano")
        g.steps = 5; g.evalInterval = 5; g.evalBatches = 1; g.checkpointInterval = 5
        try Trainer(corpus: corpus, tokenizer: .characters, options: g, runDirectory: gpt, resume: false, pool: ThreadPool(threads: 1)).run()
        XCTAssertThrowsError(try trainer(o, gpt, resume: true)) { e in
            XCTAssertTrue("\(e)".contains("holds a model with GPT") && "\(e)".contains("BERT masked LM"), "\(e)")
        }
    }
}
