import Foundation
import LMCore
import LMModels
import LMTestSupport
import LMTraining
import XCTest

/// The BERT training model: its forward equals the PyTorch fixtures and the inference model, its
/// hand-written backward equals finite differences of the loss, and fine-tuning learns.
final class BertTrainingTests: XCTestCase {
    let pool = ThreadPool(threads: 2)

    func tinyConfig(pooling: String = "mean") -> BertConfig {
        var c = BertConfig.small(vocabularySize: 20, layers: 2, heads: 2, dim: 8, positions: 16)
        c.intermediateSize = 12
        c.layerNormEps = 1e-5
        c.classifierPooling = pooling
        return c
    }

    /// Random weights of order 1 (so no gradient is negligible) and a batch of three sequences
    /// of different lengths with both token types.
    func setUp(_ model: BertTrainingModel, seed: UInt64) -> BertBatch {
        var r = SeededRNG(seed: seed)
        for (name, t) in model.params.tensors {
            // Embeddings of order 1 keep the embedding LayerNorm's curvature (and so the
            // finite-difference error) small; LayerNorm scales around 1.
            let scale: Float = name.contains("embeddings") ? 1 : (name.contains("LayerNorm.weight") ? 0.5 : 0.4)
            for i in 0..<t.count { t.data[i] = (r.nextFloat() * 2 - 1) * scale + (name.contains("LayerNorm.weight") ? 1 : 0) }
        }
        return BertBatch(sequences: [[1, 5, 7, 2], [3], [1, 9, 9, 4, 11, 2]], typeIds: [[0, 0, 1, 1], [0], [0, 0, 0, 1, 1, 1]])
    }

    /// Every parameter's gradient against central differences of the loss.
    func checkGradients(_ model: BertTrainingModel, loss: () throws -> Float, _ what: String) throws {
        model.training = false
        _ = try loss()
        model.zeroGradients()
        try model.backward()
        let analytic = Array(model.grads.storage.base.withMemoryRebound(to: Float.self, capacity: model.grads.count) {
            UnsafeBufferPointer(start: $0, count: model.grads.count)
        })
        let params = model.params.storage.base
        var x = Array(UnsafeBufferPointer(start: params, count: model.params.count))
        let numeric = GradCheck.numericGradient(at: x, h: 5e-3) { probe in
            params.update(from: probe, count: probe.count)
            return Double((try? loss()) ?? .nan)
        }
        params.update(from: &x, count: x.count)
        // Per tensor, so a failure names it. The key bias adds a constant to every score of a
        // row, which the softmax cancels: its gradient is exactly zero.
        for (name, t) in model.grads.tensors {
            let o = t.offset
            GradCheck.assertMatches(analytic: Array(analytic[o..<o + t.count]), numeric: Array(numeric[o..<o + t.count]),
                                    "\(what): \(name)", expectNonZero: !name.contains("key.bias"))
        }
        _ = try loss()
    }

    func testClassifierGradientsMatchFiniteDifferencesWithMeanPooling() throws {
        let model = try BertTrainingModel(config: tinyConfig(), head: .classification(labels: 3), maxTokens: 16, maxLength: 8, pool: pool)
        let batch = setUp(model, seed: 1)
        try checkGradients(model, loss: { try model.forward(batch, labels: [2, 0, 1]) }, "mean pooling")
    }

    func testClassifierGradientsMatchFiniteDifferencesWithTheCLSPooler() throws {
        let model = try BertTrainingModel(config: tinyConfig(pooling: "cls"), head: .classification(labels: 2), maxTokens: 16, maxLength: 8, pool: pool)
        let batch = setUp(model, seed: 2)
        try checkGradients(model, loss: { try model.forward(batch, labels: [1, 0, 1]) }, "cls pooler")
    }

    func testMaskedLMGradientsMatchFiniteDifferences() throws {
        let model = try BertTrainingModel(config: tinyConfig(), head: .maskedLM, maxTokens: 16, maxLength: 8, pool: pool)
        let batch = setUp(model, seed: 3)
        var targets = [Int32](repeating: -1, count: batch.rows)
        targets[1] = 5; targets[4] = 3; targets[7] = 19; targets[10] = 0
        try checkGradients(model, loss: { try model.forward(batch, maskedTargets: targets) }, "masked LM")
    }

    /// The training forward (dropout off) and the inference model built from its slab both give
    /// PyTorch's logits on the tiny classifier fixture.
    func testTrainingForwardMatchesPyTorchClassifier() throws {
        let folder = try ModelFolder(path: try TestPaths.sharedFile("fixtures/bert-tiny-mlm/model-cls"))
        let config = try folder.decodeConfig(BertConfig.self)
        let model = try BertTrainingModel(config: config, head: .classification(labels: 2), maxTokens: 64, maxLength: 32, pool: pool)
        let file = try folder.openWeights()
        let missing = try model.loadWeights(from: SafeTensorsWeightSource(file: file, optionalPrefixes: ["bert."])) { _ in true }
        XCTAssertEqual(missing, [])
        model.training = false
        let meta = try loadJSON(try TestPaths.checkedIn("LMModelsTests", "bert-tiny-classification.json"))
        let b = meta["batch"] as! [String: Any]
        let batch = BertBatch(padded: (b["input_ids"] as! [Any]).map(ints), attentionMask: (b["attention_mask"] as! [Any]).map(ints))
        let expected = (b["logits"] as! [Any]).flatMap(floats)
        try model.forward(batch, labels: nil)
        assertClose(model.logits, expected, tol: Tolerance.logits, "training forward")
        assertClose(try model.inferenceModel().classificationLogits(batch), expected, tol: Tolerance.logits, "inference model from the slab")
    }

    /// Fine-tuning the tiny classifier on a separable toy task reaches 100 % dev accuracy and
    /// writes a model folder that `BertTextPipeline` reads back with the same predictions.
    func testClassifierTrainerLearnsAToyTaskAndKeepsTheBestModel() throws {
        let dir = try TestPaths.temporaryDirectory("finetune")
        let base = try ToyClassificationTask.make(in: dir)
        var o = ClassifierTrainingOptions()
        o.epochs = 30; o.batch = 8; o.maxLength = 16; o.learningRate = 3e-3; o.dropout = 0; o.patience = 0
        var evaluations = 0
        let trainer = try ClassifierTrainer(model: base, train: dir + "/train.tsv", dev: dir + "/dev.tsv",
                                            labels: ["negative", "positive"], options: o, out: dir + "/out", pool: pool)
        let summary = try trainer.run { if case .evaluation = $0 { evaluations += 1 } }
        XCTAssertEqual(summary.steps, 30 * 6)
        XCTAssertEqual(evaluations, 30, "one evaluation per epoch")
        XCTAssertEqual(summary.best.accuracy, 1, "toy task learned: \(summary.best.report)")
        let pipeline = try BertTextPipeline(folder: dir + "/out")
        XCTAssertEqual(pipeline.labels, ["negative", "positive"])
        let p = try pipeline.probabilities(["really wonderful", "really dull"])
        XCTAssertGreaterThan(p[0][1], 0.5); XCTAssertGreaterThan(p[1][0], 0.5)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/out/log.jsonl"))
    }

    /// A run "killed" mid-epoch (its folder copied as it was at that moment: the last checkpoint,
    /// log lines past it, a best model exported after it) and resumed ends exactly like the run
    /// that never stopped: the same log to the bit (losses, gradient norms, evaluations, with
    /// dropout on) and the same best model.
    func testKilledClassifierRunResumesExactly() throws {
        let dir = try TestPaths.temporaryDirectory("finetune-resume")
        let base = try ToyClassificationTask.make(in: dir)
        var o = ClassifierTrainingOptions()
        o.epochs = 6; o.batch = 8; o.maxLength = 16; o.learningRate = 1e-3; o.dropout = 0.1
        o.evalInterval = 4; o.checkpointInterval = 5; o.logInterval = 3
        func trainer(_ out: String, resume: Bool = false) throws -> ClassifierTrainer {
            try ClassifierTrainer(model: base, train: dir + "/train.tsv", dev: dir + "/dev.tsv", labels: ["negative", "positive"],
                                  options: o, out: out, resume: resume, pool: pool)
        }
        // The reference run, with copies of its folder taken as steps 10 and 23 finish: their
        // checkpoints are those written after the evaluations at steps 8 and 20, with the log
        // lines of steps 9 and 21 after them.
        let snapshots = [10, 23]
        let reference = dir + "/reference"
        let full = try trainer(reference).run { e in
            guard case .step(let step, _, _, _, _) = e, snapshots.contains(step) else { return }
            try? FileManager.default.copyItem(atPath: reference, toPath: dir + "/killed-\(step)")
        }
        XCTAssertEqual(full.steps, 36)
        let expected = try logLinesWithoutTiming(reference)
        for step in snapshots {
            let run = dir + "/killed-\(step)"
            let state = try ClassifierCheckpoint.load(from: ClassifierCheckpoint.path(in: run)).state
            XCTAssertLessThan(state.step, step, "the copy holds an earlier checkpoint")
            let later = try logLinesWithoutTiming(run).filter { line in
                let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                return (obj?["step"] as? Int ?? 0) > state.step
            }
            XCTAssertFalse(later.isEmpty, "and log lines written after it")
            let resumed = try trainer(run, resume: true).run()
            XCTAssertEqual(resumed.steps, full.steps)
            XCTAssertEqual(resumed.bestStep, full.bestStep)
            XCTAssertEqual(resumed.best, full.best)
            XCTAssertEqual(resumed.curve.map(\.step), full.curve.map(\.step))
            XCTAssertEqual(try logLinesWithoutTiming(run), expected, "resumed from step \(state.step): the same log, bit for bit")
            try assertSameWeights(reference, run)
            // Resuming a finished run trains nothing and reports the same result.
            let again = try trainer(run, resume: true).run()
            XCTAssertEqual(again.steps, full.steps)
            XCTAssertEqual(try logLinesWithoutTiming(run), expected)
        }
        // A new run over an existing one, or --resume without a checkpoint: clear errors.
        XCTAssertThrowsError(try trainer(reference)) { e in
            XCTAssertTrue((e as? LMError)?.message.contains("--resume") == true, "\(e)")
        }
        XCTAssertThrowsError(try trainer(dir + "/none", resume: true)) { e in
            XCTAssertTrue((e as? LMError)?.message.contains("does not exist") == true, "\(e)")
        }
    }
}
