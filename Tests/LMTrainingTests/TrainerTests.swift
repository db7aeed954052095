import Foundation
import LMCore
import LMModels
import LMTestSupport
import LMTokenizers
import LMTraining
import XCTest

/// The training loop end to end on a small slice of Tiny Shakespeare.
final class TrainerTests: XCTestCase {
    var dir = ""
    var corpus = ""

    override func setUpWithError() throws {
        (dir, corpus) = try shakespeareSlice("trainer")
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func nano(steps: Int = 60) throws -> TrainingOptions {
        var o = try TrainingOptions.preset("nano")
        o.steps = steps
        o.evalInterval = 20
        o.evalBatches = 4
        o.checkpointInterval = 20
        o.logInterval = 5
        return o
    }

    func testLossFallsAndTheRunFolderIsAModel() throws {
        let out = dir + "/run"
        let trainer = try Trainer(corpus: corpus, tokenizer: .characters, options: try nano(steps: 100), runDirectory: out,
                                  resume: false, pool: ThreadPool(threads: 2))
        var events: [TrainerEvent] = []
        let summary = try trainer.run { events.append($0) }
        XCTAssertEqual(summary.steps, 100)
        let records = try TrainingLog.read(out + "/log.jsonl")
        XCTAssertEqual(records.first?.step, 1)
        XCTAssertEqual(records.last?.step, 100)
        XCTAssertEqual(records.compactMap(\.valLoss).count, 5, "evaluations at 20, 40, 60, 80, 100")
        let first = try XCTUnwrap(records.first?.trainLoss), last = try XCTUnwrap(records.last?.trainLoss)
        XCTAssertLessThan(last, first - 0.5, "loss falls: \(first) → \(last)")
        XCTAssertLessThan(try XCTUnwrap(summary.bestValidationLoss), 3.4)
        // Every logged line has the keys scripts rely on.
        for line in try String(contentsOfFile: out + "/log.jsonl", encoding: .utf8).split(separator: "\n") {
            let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            for key in ["step", "train_loss", "lr", "ms_per_step", "tokens_per_s"] { XCTAssertNotNil(obj[key], key) }
        }
        // The run folder is a model folder: generation works with its tokenizer.
        let model = try ModelRegistry.loadCausalLM(folder: out)
        let tok = try XCTUnwrap(try TokenizerLoader.find(inModelFolder: out))
        XCTAssertEqual(model.vocabularySize, tok.vocabularySize)
        let logits = try model.forward(tokens: try tok.encode("ROMEO:"), cache: model.makeCache())
        XCTAssertTrue(logits.allSatisfy(\.isFinite))
        let svg = try String(contentsOfFile: out + "/loss.svg", encoding: .utf8)
        XCTAssertTrue(svg.hasPrefix("<svg") && svg.contains("polyline") && svg.contains("validation loss"))
        XCTAssertTrue(events.contains { if case .checkpoint(let s) = $0 { return s == 100 }; return false })
    }

    func testTheExportedModelReproducesTheTrainingModelsLogits() throws {
        let out = dir + "/run"
        let trainer = try Trainer(corpus: corpus, tokenizer: .characters, options: try nano(steps: 20), runDirectory: out,
                                  resume: false, pool: ThreadPool(threads: 1))
        try trainer.run()
        let inference = try ModelRegistry.loadCausalLM(folder: out, pool: ThreadPool(threads: 1))
        let ids: [Int32] = [1, 5, 9, 13, 20, 3, 2, 40]
        let training = try XCTUnwrap((trainer.objective as? CausalLMObjective)?.model)
        training.training = false
        try ids.withUnsafeBufferPointer { _ = try training.forward(inputs: $0.baseAddress!, targets: nil, B: 1, T: ids.count) }
        let a = Array(training.lastLogits)
        let b = try inference.forward(tokens: ids.map(Int.init), cache: inference.makeCache(), allLogits: true)
        assertClose(a, b, tol: 1e-4, "training forward vs inference forward")
    }

    func testResumeContinuesExactlyAsIfNeverStopped() throws {
        // One run of 60 steps; another paused at step 33 (between checkpoints), resumed in a new trainer.
        let whole = dir + "/whole", parts = dir + "/parts"
        var o = try nano(steps: 60)
        o.dropout = 0.1  // the dropout RNG state must survive the checkpoint too
        try Trainer(corpus: corpus, tokenizer: .characters, options: o, runDirectory: whole,
                    resume: false, pool: ThreadPool(threads: 2)).run()
        try Trainer(corpus: corpus, tokenizer: .characters, options: o, runDirectory: parts,
                    resume: false, pool: ThreadPool(threads: 2)).run(pauseAt: 33)
        XCTAssertEqual(try TrainingLog.read(parts + "/log.jsonl").last?.step, 30)
        try Trainer(corpus: corpus, tokenizer: .characters, options: o, runDirectory: parts,
                    resume: true, pool: ThreadPool(threads: 2)).run()
        try assertSameRun(whole, parts)
    }

    func testBadCorporaAreRejected() throws {
        let empty = dir + "/empty.txt"
        FileManager.default.createFile(atPath: empty, contents: Data())
        let short = dir + "/short.txt"
        try "To be or not".write(toFile: short, atomically: true, encoding: .utf8)
        let binary = dir + "/binary.txt"
        FileManager.default.createFile(atPath: binary, contents: Data([0x41, 0xFF, 0xFE, 0x42]))
        for (path, fragment) in [(empty, "empty"), (short, "shorter than the context"), (binary, "UTF-8"),
                                 (dir + "/missing.txt", "does not exist")] {
            XCTAssertThrowsError(try Trainer(corpus: path, tokenizer: .characters, options: try nano(), runDirectory: dir + "/r-\(fragment.count)",
                                             resume: false)) { e in
                let m = (e as? LMError)?.message ?? "\(e)"
                XCTAssertTrue(m.contains(fragment), "'\(m)' should mention '\(fragment)'")
            }
        }
    }
}

/// Two run folders logged the same steps with the same losses, validation losses and gradient
/// norms to the last bit, and hold bit-identical best models.
func assertSameRun(_ whole: String, _ parts: String, file: StaticString = #filePath, line: UInt = #line) throws {
    let a = try TrainingLog.read(whole + "/log.jsonl"), b = try TrainingLog.read(parts + "/log.jsonl")
    XCTAssertEqual(a.map(\.step), b.map(\.step), file: file, line: line)
    XCTAssertEqual(a.map(\.trainLoss), b.map(\.trainLoss), "same losses to the last bit", file: file, line: line)
    XCTAssertEqual(a.map(\.valLoss), b.map(\.valLoss), file: file, line: line)
    XCTAssertEqual(a.map(\.gradNorm), b.map(\.gradNorm), file: file, line: line)
    let wa = try SafeTensorsFile(path: whole + "/model.safetensors"), wb = try SafeTensorsFile(path: parts + "/model.safetensors")
    for name in wa.names { XCTAssertEqual(try wa.tensor(name).scalars, try wb.tensor(name).scalars, name, file: file, line: line) }
}

/// A fresh folder holding `corpus.txt`: the first 60,000 characters of Tiny Shakespeare.
func shakespeareSlice(_ prefix: String) throws -> (dir: String, corpus: String) {
    let dir = try TestPaths.temporaryDirectory(prefix)
    let full = try String(contentsOfFile: try TestPaths.sharedFile("data/tinyshakespeare/input.txt"), encoding: .utf8)
    try String(full.prefix(60_000)).write(toFile: dir + "/corpus.txt", atomically: true, encoding: .utf8)
    return (dir, dir + "/corpus.txt")
}
