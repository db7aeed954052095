import Foundation
import LMCore
import LMModels
import LMTestSupport
import LMTraining
import XCTest

/// One training step against PyTorch: ../shared/fixtures/training (gpt2-tiny, batch 4 × 32).
final class TrainingParityTests: XCTestCase {
    struct Fixture {
        let model: GPTTrainingModel
        let inputs: [Int32], targets: [Int32]
        let step: [String: Any]
    }

    func load(threads: Int = 2) throws -> Fixture {
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
        return Fixture(model: model, inputs: inputs, targets: targets, step: step)
    }

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
