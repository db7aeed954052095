import Foundation
import LMCore
import LMModels
import LMTestSupport
import XCTest

/// `lm train` through the real binary: kills, full disks, divergence, wrong resumes.
final class TrainCLITests: XCTestCase {
    var dir = ""
    var corpus = ""
    var lm: String { TestPaths.lmBinary }

    override func setUpWithError() throws {
        dir = try TestPaths.temporaryDirectory("train-cli")
        let full = try String(contentsOfFile: try TestPaths.sharedFile("data/tinyshakespeare/input.txt"), encoding: .utf8)
        corpus = dir + "/corpus.txt"
        try String(full.prefix(40_000)).write(toFile: corpus, atomically: true, encoding: .utf8)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func train(_ out: String, _ extra: [String] = []) -> [String] {
        ["train", "--corpus", corpus, "--preset", "nano", "--out", out, "--steps", "150", "--eval-interval", "25",
         "--eval-batches", "4", "--checkpoint-interval", "10", "--log-interval", "5", "--threads", "1"] + extra
    }

    func testKilledRunResumesExactly() throws {
        let reference = dir + "/reference"
        let r = try runProcess(lm, train(reference))
        XCTAssertEqual(r.status, 0, r.stderr)
        let expected = try logLinesWithoutTiming(reference)
        XCTAssertEqual(expected.count, 31)

        // Kill with SIGKILL at a random moment after the first checkpoint, twice, then finish.
        let run = dir + "/killed"
        for attempt in 0..<2 { try killAfterFirstCheckpoint(lm, train(run, attempt == 0 ? [] : ["--resume"]), runDirectory: run) }
        let resumed = try runProcess(lm, train(run, ["--resume"]))
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertEqual(try logLinesWithoutTiming(run), expected, "a killed and resumed run logs the same losses, bit for bit")
        try assertSameWeights(reference, run)
    }

    func testFullDiskWhileSavingKeepsThePreviousCheckpoint() throws {
        let run = dir + "/disk"
        let first = try runProcess(lm, train(run, ["--steps", "20"]))
        XCTAssertEqual(first.status, 0, first.stderr)
        let before = try Data(contentsOf: URL(fileURLWithPath: run + "/checkpoint.safetensors"))
        // A file-size limit below the checkpoint's size (≈ 350 kB) but above the model's: writes fail like on a full disk.
        let limited = try runProcess("/bin/bash", ["-c", "ulimit -f 250; exec \"$0\" \"$@\"", lm] + train(run, ["--resume", "--steps", "40"]))
        XCTAssertNotEqual(limited.status, 0)
        XCTAssertTrue(limited.stderr.contains("cannot write"), limited.stderr)
        XCTAssertTrue(limited.stderr.contains("disk space"), limited.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: run + "/checkpoint.safetensors")), before, "previous checkpoint intact")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: run).filter { $0.contains(".tmp-") }
        XCTAssertEqual(leftovers, [], "no temporary files left behind")
        // And the run goes on from there once there is room again.
        let again = try runProcess(lm, train(run, ["--resume", "--steps", "40"]))
        XCTAssertEqual(again.status, 0, again.stderr)
    }

    func testDivergenceStopsWithAClearMessageAndKeepsTheLastGoodCheckpoint() throws {
        let run = dir + "/nan"
        let r = try runProcess(lm, train(run, ["--lr", "1e30", "--warmup", "0", "--checkpoint-interval", "1", "--clip", "0"]))
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("training diverged"), r.stderr)
        XCTAssertTrue(r.stderr.contains("--lr"), r.stderr)
        XCTAssertTrue(r.stderr.contains("last good checkpoint"), r.stderr)
        // The checkpoint of step 1 (the last one whose loss was finite) is intact and loadable.
        let ckpt = try SafeTensorsFile(path: run + "/checkpoint.safetensors")
        let state = try XCTUnwrap(ckpt.metadata["trainer_state"])
        XCTAssertTrue(state.contains("\"step\":1,") || state.contains("\"step\":1}"), state)
    }

    func testResumeWithADifferentShapeOrWithoutACheckpointIsRefused() throws {
        let run = dir + "/shape"
        XCTAssertEqual(try runProcess(lm, train(run, ["--steps", "10"])).status, 0)
        let wrong = try runProcess(lm, train(run, ["--resume", "--layers", "3"]))
        XCTAssertNotEqual(wrong.status, 0)
        XCTAssertTrue(wrong.stderr.contains("3 layers"), wrong.stderr)
        XCTAssertEqual(wrong.stderr.split(separator: "\n").filter { $0.hasPrefix("Error") }.count, 1)
        let none = try runProcess(lm, train(dir + "/nothing", ["--resume"]))
        XCTAssertNotEqual(none.status, 0)
        XCTAssertTrue(none.stderr.contains("does not exist"), none.stderr)
        let again = try runProcess(lm, train(run))
        XCTAssertNotEqual(again.status, 0, "an existing run is not overwritten without --resume")
        XCTAssertTrue(again.stderr.contains("--resume"), again.stderr)
    }

    func testEmptyAndShortCorporaAreOneLineErrors() throws {
        let empty = dir + "/empty.txt", short = dir + "/short.txt"
        FileManager.default.createFile(atPath: empty, contents: Data())
        try "Hello there".write(toFile: short, atomically: true, encoding: .utf8)
        for (path, fragment) in [(empty, "empty"), (short, "shorter than the context")] {
            let r = try runProcess(lm, ["train", "--corpus", path, "--preset", "nano", "--out", dir + "/x\(fragment.count)"])
            XCTAssertNotEqual(r.status, 0)
            let errors = r.stderr.split(separator: "\n").filter { $0.hasPrefix("Error") }
            XCTAssertEqual(errors.count, 1, r.stderr)
            XCTAssertTrue(r.stderr.contains(fragment), r.stderr)
        }
    }

    /// `lm train --arch bert --objective mlm`: a short run writes a BERT folder `lm embed` reads;
    /// wrong combinations and a missing WordPiece tokenizer are one-line errors.
    func testMaskedLMPretrainingFromTheCommandLine() throws {
        let minilm = try TestPaths.sharedFile("models/minilm-l6-v2")
        let out = dir + "/mlm"
        let r = try runProcess(lm, ["train", "--arch", "bert", "--objective", "mlm", "--tokenizer", minilm, "--corpus", corpus,
                                    "--preset", "nano", "--steps", "10", "--eval-interval", "5", "--eval-batches", "2",
                                    "--out", out, "--threads", "1", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let summary = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data((r.stdout.split(separator: "\n").last ?? "").utf8)) as? [String: Any])
        XCTAssertEqual(summary["steps"] as? Int, 10)
        XCTAssertTrue(r.stderr.contains("BERT") || r.stderr.contains("lm embed --model"), r.stderr)
        for f in ["config.json", "model.safetensors", "vocab.txt", "checkpoint.safetensors", "log.jsonl", "loss.svg"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/" + f), f)
        }
        let e = try runProcess(lm, ["embed", "--model", out, "--json", "to be or not to be"])
        XCTAssertEqual(e.status, 0, e.stderr)
        XCTAssertTrue(e.stdout.contains("\"embedding\""), e.stdout)
        // --resume needs no --arch: the checkpoint says what the run is.
        let more = try runProcess(lm, ["train", "--corpus", corpus, "--out", out, "--resume", "--steps", "12", "--threads", "1"])
        XCTAssertEqual(more.status, 0, more.stderr)
        XCTAssertEqual(try logLinesWithoutTiming(out).map { $0.contains("\"step\":12") }, [false, false, false, true], "steps 1, 5, 10, then 12")

        let cases: [([String], String)] = [
            (["--arch", "bert"], "needs a WordPiece tokenizer: pass --tokenizer"),
            (["--arch", "bert", "--tokenizer", "char"], "not --tokenizer char"),
            (["--arch", "gpt", "--objective", "mlm"], "use --arch bert --objective mlm"),
            (["--arch", "bert", "--objective", "clm", "--tokenizer", minilm], "trains with --objective mlm"),
            (["--arch", "llama"], "--arch llama: use gpt or bert"),
        ]
        for (i, (args, message)) in cases.enumerated() {
            let bad = try runProcess(lm, ["train", "--corpus", corpus, "--preset", "nano", "--out", dir + "/bad\(i)"] + args)
            XCTAssertNotEqual(bad.status, 0, args.joined(separator: " "))
            XCTAssertTrue(bad.stderr.contains(message), "\(args): \(bad.stderr)")
            XCTAssertEqual(bad.stderr.split(separator: "\n").filter { $0.hasPrefix("Error") }.count, 1, bad.stderr)
        }
    }
}

/// `lm finetune` on our own model and on a Hugging Face GPT-2 folder.
final class FinetuneCLITests: XCTestCase {
    var dir = ""
    var lm: String { TestPaths.lmBinary }

    override func setUpWithError() throws { dir = try TestPaths.temporaryDirectory("finetune") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func testFinetuningTheBundledModelWithFrozenLayers() throws {
        let full = try String(contentsOfFile: try TestPaths.sharedFile("data/tinyshakespeare/input.txt"), encoding: .utf8)
        let corpus = dir + "/sonnets.txt"
        try String(full.suffix(30_000)).write(toFile: corpus, atomically: true, encoding: .utf8)
        let base = TestPaths.model("shakespeare"), out = dir + "/ft"
        let r = try runProcess(lm, ["finetune", "--model", base, "--corpus", corpus, "--out", out, "--steps", "30",
                                    "--freeze", "-1,0,1", "--eval-interval", "10", "--eval-batches", "4", "--batch", "4",
                                    "--context", "64", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let before = try SafeTensorsFile(path: base + "/model.safetensors")
        let after = try SafeTensorsFile(path: out + "/model.safetensors")
        for name in before.names {
            let same = try before.tensor(name).scalars == after.tensor(name).scalars
            let frozen = name.hasPrefix("transformer.wte") || name.hasPrefix("transformer.wpe")
                || name.hasPrefix("transformer.h.0.") || name.hasPrefix("transformer.h.1.")
            XCTAssertEqual(same, frozen, "\(name) should \(frozen ? "stay fixed" : "change")")
        }
        // The fine-tuned folder keeps the base model's tokenizer and generates.
        let g = try runProcess(lm, ["generate", "--model", out, "--prompt", "KING:", "--max-tokens", "20"])
        XCTAssertEqual(g.status, 0, g.stderr)
        XCTAssertTrue(g.stdout.hasPrefix("KING:"))
    }

    func testFinetuningAHuggingFaceGPT2Folder() throws {
        // A small GPT-2 in the Hugging Face layout with the real GPT-2 tokenizer files.
        let model = dir + "/hf-gpt2"
        try FileManager.default.createDirectory(atPath: model, withIntermediateDirectories: true)
        var config = GPT2Config()
        config.nEmbd = 32; config.nLayer = 2; config.nHead = 2; config.nPositions = 64
        let source = RandomWeightSource(seed: 5)
        let tensors = try config.parameterLayout.map { ($0.name, try source.tensor($0.name, shape: $0.shape)) }
        try SafeTensorsWriter.write(tensors, to: model + "/model.safetensors")
        try config.huggingFaceJSON().write(to: URL(fileURLWithPath: model + "/config.json"))
        for f in ["vocab.json", "merges.txt"] {
            try FileManager.default.copyItem(atPath: try TestPaths.sharedFile("data/gpt2-tokenizer/" + f), toPath: model + "/" + f)
        }
        let corpus = dir + "/text.txt"
        let text = try String(contentsOfFile: try TestPaths.sharedFile("data/wikitext-2/valid.txt"), encoding: .utf8)
        try String(text.prefix(60_000)).write(toFile: corpus, atomically: true, encoding: .utf8)
        let out = dir + "/ft"
        let r = try runProcess(lm, ["finetune", "--model", model, "--corpus", corpus, "--out", out, "--steps", "20",
                                    "--lr", "3e-3", "--eval-interval", "10", "--eval-batches", "2", "--batch", "2",
                                    "--context", "32", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let records = try String(contentsOfFile: out + "/log.jsonl", encoding: .utf8).split(separator: "\n")
            .compactMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        let losses = records.compactMap { ($0["train_loss"] as? NSNumber)?.floatValue }
        XCTAssertGreaterThan(losses.count, 2)
        XCTAssertLessThan(losses.last!, losses.first!, "fine-tuning lowers the loss: \(losses)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/vocab.json"), "the tokenizer travels with the model")
        let folder = try ModelFolder(path: out)
        XCTAssertEqual(try folder.decodeConfig(GPT2Config.self).vocabSize, 50257)
    }

    /// `lm finetune --task classify`: a run killed with SIGKILL (twice, at random moments) and
    /// resumed logs the same losses and evaluations and keeps the same best model as a run that
    /// never stopped; an existing run is not overwritten; --resume without a checkpoint is an error.
    func testKilledClassifierFinetuneResumesExactly() throws {
        let base = try ToyClassificationTask.make(in: dir)
        func args(_ out: String, _ extra: [String] = []) -> [String] {
            ["finetune", "--task", "classify", "--model", base, "--train", dir + "/train.tsv", "--dev", dir + "/dev.tsv",
             "--epochs", "12", "--batch", "8", "--max-length", "16", "--lr", "1e-3", "--dropout", "0.1",
             "--checkpoint-interval", "4", "--log-interval", "3", "--threads", "1", "--out", out] + extra
        }
        let reference = dir + "/reference"
        let r = try runProcess(lm, args(reference))
        XCTAssertEqual(r.status, 0, r.stderr)
        let expected = try logLinesWithoutTiming(reference)
        XCTAssertEqual(expected.filter { $0.contains("\"accuracy\"") }.count, 12, "one evaluation per epoch")

        let run = dir + "/killed"
        for attempt in 0..<2 { try killAfterFirstCheckpoint(lm, args(run, attempt == 0 ? [] : ["--resume"]), runDirectory: run) }
        let resumed = try runProcess(lm, args(run, ["--resume"]))
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertEqual(try logLinesWithoutTiming(run), expected, "a killed and resumed fine-tune logs the same, bit for bit")
        try assertSameWeights(reference, run)
        let c = try runProcess(lm, ["classify", "--model", run, "really wonderful"])
        XCTAssertEqual(c.status, 0, c.stderr)

        let again = try runProcess(lm, args(reference))
        XCTAssertNotEqual(again.status, 0, "an existing run is not overwritten without --resume")
        XCTAssertTrue(again.stderr.contains("--resume"), again.stderr)
        let none = try runProcess(lm, args(dir + "/nothing", ["--resume"]))
        XCTAssertNotEqual(none.status, 0)
        XCTAssertTrue(none.stderr.contains("does not exist"), none.stderr)
    }
}
