import Foundation
import LMCore
import LMTestSupport
import XCTest

/// `lm quantize`, `lm eval` and `lm bench --quant int8` through the real binary.
final class QuantizeCLITests: XCTestCase {
    var lm: String { TestPaths.lmBinary }

    func testQuantizeReportJSONContractAndTheResultRuns() throws {
        let dir = try TestPaths.temporaryDirectory("quant-cli")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let corpus = try TestPaths.sharedFile("data/tinyshakespeare/input.txt")
        let r = try runProcess(lm, ["quantize", "--model", TestPaths.model("shakespeare"), "--out", dir + "/q", "--report",
                                    "--corpus", corpus, "--split-from", "0.9", "--max-chunks", "40", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let j = try lastJSON(r)
        for key in ["size_ratio", "ppl_fp32", "ppl_int8", "ppl_change_percent", "mean_kld", "top1_agreement"] {
            XCTAssertNotNil(j[key] as? Double, "missing \(key)")
        }
        XCTAssertLessThan(try XCTUnwrap(j["size_ratio"] as? Double), 0.3)
        let top1 = try XCTUnwrap(j["top1_agreement"] as? Double)
        XCTAssertTrue(top1 > 0.9 && top1 <= 1, "a fraction: \(top1)")
        // Every inference command takes the int8 folder.
        let g = try runProcess(lm, ["generate", "--model", dir + "/q", "--prompt", "JULIET:", "--max-tokens", "30", "--seed", "3"])
        XCTAssertEqual(g.status, 0, g.stderr)
        XCTAssertTrue(g.stdout.hasPrefix("JULIET:"))
        let e = try runProcess(lm, ["eval", "--model", dir + "/q", "--corpus", corpus, "--split-from", "0.9", "--max-chunks", "40", "--json"])
        XCTAssertEqual(e.status, 0, e.stderr)
        XCTAssertEqual(try XCTUnwrap(try lastJSON(e)["perplexity"] as? Double), try XCTUnwrap(j["ppl_int8"] as? Double), accuracy: 1e-9)
        // Quantizing the result again is an error, one line.
        let again = try runProcess(lm, ["quantize", "--model", dir + "/q", "--out", dir + "/qq"])
        XCTAssertNotEqual(again.status, 0)
        XCTAssertTrue(again.stderr.contains("already quantized"), again.stderr)
    }

    /// Class probabilities of every line of `file` from `lm classify --top-k --json`, in label order.
    func probabilities(_ model: String, _ file: String, labels: [String]) throws -> [[Double]] {
        let r = try runProcess(lm, ["classify", "--model", model, "--file", file, "--top-k", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        return try r.stdout.split(separator: "\n").map { line in
            let list = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [[String: Any]])
            return try labels.map { l in try XCTUnwrap(list.first { $0["label"] as? String == l }?["score"] as? Double) }
        }
    }

    /// `lm quantize --report --tsv` on a BERT classifier: its numbers equal what `lm classify`
    /// prints for the two folders (accuracy, agreement, KL recomputed here), and `lm eval --tsv`
    /// reports the same accuracies.
    func testQuantizeReportOnALabelledTSVComparesTheClassifiers() throws {
        let dir = try TestPaths.temporaryDirectory("quant-tsv")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // 40 SST-2 sentences, and the random tiny classifier with its bias moved so that it
        // predicts both classes (about half each) instead of always the first.
        let rows = try String(contentsOfFile: try TestPaths.sharedFile("data/sst2/dev.tsv"), encoding: .utf8)
            .split(separator: "\n").prefix(41)
        let tsv = dir + "/dev.tsv", sentences = dir + "/sentences.txt"
        try (rows.joined(separator: "\n") + "\n").write(toFile: tsv, atomically: true, encoding: .utf8)
        try (rows.dropFirst().map { String($0.split(separator: "\t")[0]) }.joined(separator: "\n") + "\n")
            .write(toFile: sentences, atomically: true, encoding: .utf8)
        let truth = rows.dropFirst().map { Int($0.split(separator: "\t")[1])! }
        let labels = ["LABEL_0", "LABEL_1"]
        let model = try tinyBertClassifier()
        let margins = try probabilities(model, sentences, labels: labels).map { log($0[0] / $0[1]) }.sorted()
        let file = try SafeTensorsFile(path: model + "/model.safetensors")
        let tensors = try file.names.map { name -> (String, Tensor) in
            let t = try file.tensor(name)
            // Halfway between the two middle margins, so no sentence sits on the boundary.
            if name == "classifier.bias" { t.data[0] -= Float((margins[margins.count / 2 - 1] + margins[margins.count / 2]) / 2) }
            return (name, t)
        }
        try SafeTensorsWriter.write(tensors, to: model + "/model.safetensors")

        let r = try runProcess(lm, ["quantize", "--model", model, "--out", dir + "/int8", "--report", "--tsv", tsv, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("| int8 |") && r.stdout.contains("top-1 agreement"), r.stdout)
        let j = try lastJSON(r)
        let fp32 = try probabilities(model, sentences, labels: labels)
        let int8 = try probabilities(dir + "/int8", sentences, labels: labels)
        func argmax(_ p: [Double]) -> Int { p[1] > p[0] ? 1 : 0 }
        let predicted = fp32.map(argmax)
        XCTAssertTrue(predicted.contains(0) && predicted.contains(1), "the test classifier predicts both classes")
        func accuracy(_ p: [[Double]]) -> Double { Double(zip(p.map(argmax), truth).filter { $0 == $1 }.count) / Double(truth.count) }
        XCTAssertEqual(try XCTUnwrap(j["accuracy_fp32"] as? Double), accuracy(fp32), accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(j["accuracy_int8"] as? Double), accuracy(int8), accuracy: 1e-12)
        let agreement = Double(zip(fp32, int8).filter { argmax($0) == argmax($1) }.count) / Double(truth.count)
        XCTAssertEqual(try XCTUnwrap(j["top1_agreement"] as? Double), agreement, accuracy: 1e-12)
        let kld = zip(fp32, int8).map { p, q in (0..<2).map { p[$0] * log(p[$0] / q[$0]) }.reduce(0, +) }.reduce(0, +) / Double(truth.count)
        let reported = try XCTUnwrap(j["mean_kld"] as? Double)
        XCTAssertGreaterThan(reported, 0, "int8 changes the probabilities a little")
        // The printed probabilities are float32, and a KL of ~1e-6 is a difference of nearly equal
        // logarithms, so the recomputed value is good to a few percent only.
        XCTAssertEqual(reported, kld, accuracy: 0.1 * kld, "KL recomputed from the printed probabilities")
        XCTAssertLessThan(try XCTUnwrap(j["size_ratio"] as? Double), 0.3)

        for (folder, key) in [(model, "accuracy_fp32"), (dir + "/int8", "accuracy_int8")] {
            let e = try runProcess(lm, ["eval", "--model", folder, "--tsv", tsv, "--json"])
            XCTAssertEqual(e.status, 0, e.stderr)
            let m = try lastJSON(e)
            XCTAssertEqual(try XCTUnwrap(m["accuracy"] as? Double), try XCTUnwrap(j[key] as? Double), accuracy: 1e-12)
            let confusion = try XCTUnwrap(m["confusion_matrix"] as? [[Int]])
            XCTAssertEqual(confusion.map { $0.reduce(0, +) }, [truth.filter { $0 == 0 }.count, truth.filter { $0 == 1 }.count])
            for key in ["precision", "recall", "f1"] { XCTAssertNotNil(m[key] as? Double, key) }
        }
        let text = try runProcess(lm, ["eval", "--model", model, "--tsv", tsv])
        XCTAssertTrue(text.stdout.contains("confusion matrix") && text.stdout.contains("F1"), text.stdout)
    }

    /// Held-out data that does not fit the model: one-line errors, nothing written.
    func testTSVForACausalLMAndCorpusForAClassifierAreClearErrors() throws {
        let dir = try TestPaths.temporaryDirectory("quant-bad")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tsv = dir + "/d.tsv"
        try "sentence\tlabel\ngood\t1\n".write(toFile: tsv, atomically: true, encoding: .utf8)
        let corpus = try TestPaths.sharedFile("data/tinyshakespeare/input.txt")
        let classifier = try tinyBertClassifier()
        let cases: [([String], String)] = [
            (["eval", "--model", TestPaths.model("shakespeare"), "--tsv", tsv], "is a gpt2 model (a causal LM); --tsv scores BERT classifiers"),
            (["quantize", "--model", TestPaths.model("shakespeare"), "--out", dir + "/q1", "--report", "--tsv", tsv], "--tsv scores BERT classifiers"),
            (["eval", "--model", classifier, "--corpus", corpus], "is a BERT classifier, which --corpus cannot score"),
            (["quantize", "--model", classifier, "--out", dir + "/q2", "--report", "--corpus", corpus], "which --corpus cannot score"),
            (["quantize", "--model", classifier, "--out", dir + "/q3", "--report"], "give a labelled TSV to score it on with --tsv"),
            (["quantize", "--model", classifier, "--out", dir + "/q4", "--tsv", tsv], "scored only with --report"),
            (["eval", "--model", classifier, "--tsv", tsv, "--corpus", corpus], "not both"),
            (["eval", "--model", classifier, "--tsv", tsv, "--split-from", "0.5"], "apply to --corpus text, not to --tsv"),
            (["eval", "--model", try TestPaths.sharedFile("fixtures/bert-tiny-mlm/model-mlm"), "--tsv", tsv], "has no classification head"),
        ]
        for (args, message) in cases {
            let r = try runProcess(lm, args)
            XCTAssertNotEqual(r.status, 0, args.joined(separator: " "))
            XCTAssertTrue(r.stderr.contains(message), "\(args.joined(separator: " ")): \(r.stderr)")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        }
        for q in ["q1", "q2", "q3", "q4"] { XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/" + q), "\(q) written despite the error") }
    }

    func testBenchInt8JSONContract() throws {
        let r = try runProcess(lm, ["bench", "--random", "gpt2-nano", "--quant", "int8", "--reps", "1", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let j = try lastJSON(r)
        for key in ["pp512", "tg128"] {
            let t = try XCTUnwrap(j[key] as? [String: Any])
            XCTAssertGreaterThan(try XCTUnwrap(t["mean"] as? Double), 0)
        }
    }
}
