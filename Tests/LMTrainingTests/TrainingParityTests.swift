import Foundation
import LMCore
import LMModels
import LMTestSupport
import LMTraining
import XCTest

/// One training step against PyTorch: ../shared/fixtures/training (gpt2-tiny, batch 4 × 32).
final class TrainingParityTests: XCTestCase {
    func load(threads: Int = 2) throws -> TrainingFixture { try loadTrainingFixture(threads: threads) }
}

struct TrainingFixture {
    let model: GPTTrainingModel
    let inputs: [Int32], targets: [Int32]
    let step: [String: Any]
}

func loadTrainingFixture(threads: Int = 2) throws -> TrainingFixture {
    do {
        let folder = try ModelFolder(path: try TestPaths.sharedFile("fixtures/gpt2-tiny/model"))
        let config = try folder.decodeConfig(GPT2Config.self)
        let model = try GPTTrainingModel(config: config, batch: 4, time: 32, pool: ThreadPool(threads: threads))
        try model.loadWeights(from: SafeTensorsWeightSource(file: try folder.openWeights(), optionalPrefixes: ["transformer."]))
        let step = try loadJSON(try TestPaths.sharedFile("fixtures/training/step.json"))
        let batch = (step["batch"] as! [String: Any])["input_ids"] as! [[Any]]
        var inputs: [Int32] = [], targets: [Int32] = []
        for row in batch {
            let ids = row.map { Int32(($0 as! NSNumber).intValue) }
            inputs += ids
            targets += Array(ids.dropFirst()) + [-1]   // HF shifts labels; the last position predicts nothing
        }
        return TrainingFixture(model: model, inputs: inputs, targets: targets, step: step)
    }
}

extension TrainingParityTests {

    func testLossAndGradientsMatchPyTorch() throws {
        let f = try load()
        let loss = try f.model.forward(inputs: f.inputs, targets: f.targets, B: 4, T: 32)
        XCTAssertEqual(Double(loss), (f.step["loss_before"] as! NSNumber).doubleValue, accuracy: 1e-5)
        f.model.zeroGradients()
        try f.model.backward()
        let refNorms = f.step["grad_l2_norms"] as! [String: Any]
        let refGrads = try SafeTensorsFile(path: try TestPaths.sharedFile("fixtures/training/grads_step1.safetensors"))
        for (name, g) in f.model.grads.tensors {
            let norm = (g.scalars.reduce(0.0) { $0 + Double($1) * Double($1) }).squareRoot()
            let ref = try XCTUnwrap((refNorms[name] as? NSNumber)?.doubleValue, "no reference norm for \(name)")
            XCTAssertEqual(norm, ref, accuracy: max(ref * 1e-4, 1e-9), "‖∇\(name)‖")
            let expected = try refGrads.tensor(name)
            assertClose(g.scalars, expected.scalars, tol: max(maxAbs(expected.scalars) * 1e-4, 1e-7), "∇\(name)")
        }
    }

    func testGradientsAreIdenticalOnOneAndTwoThreads() throws {
        var all: [[(String, [Float])]] = []
        for threads in [1, 2] {
            let f = try load(threads: threads)
            try f.model.forward(inputs: f.inputs, targets: f.targets, B: 4, T: 32)
            f.model.zeroGradients()
            try f.model.backward()
            all.append(f.model.grads.tensors.map { ($0.0, $0.1.scalars) })
        }
        for (a, b) in zip(all[0], all[1]) {
            XCTAssertTrue(a.1 == b.1, "∇\(a.0) differs between 1 and 2 threads by up to \(maxAbsDiff(a.1, b.1))")
        }
    }
}

extension GPTTrainingModel {
    @discardableResult
    func forward(inputs: [Int32], targets: [Int32], B: Int, T: Int) throws -> Float {
        try inputs.withUnsafeBufferPointer { i in
            try targets.withUnsafeBufferPointer { t in try forward(inputs: i.baseAddress!, targets: t.baseAddress!, B: B, T: T) }
        }
    }
}

/// AdamW steps on the fixture batch against PyTorch's losses after each step.
final class OptimizerStepParityTests: XCTestCase {
    func testThreeAdamWStepsMatchPyTorchLosses() throws {
        let f = try loadTrainingFixture()
        let model = f.model
        var config = OptimizerConfig()
        config.kind = .adamw; config.beta1 = 0.9; config.beta2 = 0.999; config.eps = 1e-8; config.weightDecay = 0.1
        let groups = model.params.optimizerGroups()
        let optimizer = try Optimizer(config: config, parameterCount: model.params.count, groups: groups)
        let expected = (f.step["three_steps"] as! [String: Any])["losses"] as! [NSNumber]
        var losses: [Float] = []
        for _ in 0..<3 {
            losses.append(try model.forward(inputs: f.inputs, targets: f.targets, B: 4, T: 32))
            model.zeroGradients()
            try model.backward()
            optimizer.step(params: model.params.storage.base, grads: model.grads.storage.base, lr: 1e-3, pool: model.pool)
            if losses.count == 1 {
                // Parameters after the first step (abs 1e-6; where |g| < 1e-6 Adam's ratio is ill-conditioned: allow lr).
                let ref = try SafeTensorsFile(path: try TestPaths.sharedFile("fixtures/training/params_after_step1.safetensors"))
                let grads = try SafeTensorsFile(path: try TestPaths.sharedFile("fixtures/training/grads_step1.safetensors"))
                for (name, p) in model.params.tensors {
                    let r = try ref.tensor(name).scalars, g = try grads.tensor(name).scalars
                    var worst: Float = 0
                    for i in 0..<r.count {
                        let tol: Float = abs(g[i]) < 1e-6 ? 1e-3 : 1e-6
                        worst = max(worst, abs(p.data[i] - r[i]) / tol)
                    }
                    XCTAssertLessThanOrEqual(worst, 1, "\(name) after one AdamW step")
                }
            }
        }
        losses.append(try model.forward(inputs: f.inputs, targets: f.targets, B: 4, T: 32))
        XCTAssertEqual(losses.count, expected.count)
        for (got, want) in zip(losses, expected) {
            XCTAssertEqual(Double(got), want.doubleValue, accuracy: 1e-5 * max(1, want.doubleValue))
        }
        XCTAssertEqual(Double(losses[1]), 6.756143569946289, accuracy: 1e-4 * 6.756)
    }
}
