import Foundation
import LMCore
import LMTestSupport
import XCTest

/// `lm classify` and `lm embed` through the real binary: the output contracts and bad input.
final class BertCLITests: XCTestCase {
    var lm: String { TestPaths.lmBinary }

    func jsonLines(_ s: String) throws -> [Any] {
        try s.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) }
    }

    func testClassifyPrintsLabelAndScoreAndThePipelineJSONShape() throws {
        let model = try tinyBertClassifier()
        let plain = try run(["classify", "--model", model, "This movie was absolutely wonderful!", "The plot was boring and far too long."])
        XCTAssertEqual(plain.status, 0, plain.stderr)
        let lines = plain.stdout.split(separator: "\n").map { $0.split(separator: "\t") }
        XCTAssertEqual(lines.count, 2)
        // Logits (0.906, 0.228) and (0.561, 0.252) from PyTorch: LABEL_0 with softmax 0.6633 and 0.5765.
        XCTAssertEqual(lines[0][0], "LABEL_0"); XCTAssertEqual(lines[0][1], "0.6633")
        XCTAssertEqual(lines[1][0], "LABEL_0"); XCTAssertEqual(lines[1][1], "0.5765")

        let json = try run(["classify", "--model", model, "--json", "This movie was absolutely wonderful!"])
        let one = try XCTUnwrap(try jsonLines(json.stdout).first as? [String: Any], json.stdout)
        XCTAssertEqual(one["label"] as? String, "LABEL_0")
        XCTAssertEqual(try XCTUnwrap(one["score"] as? Double), 0.6633, accuracy: 1e-4)

        let top = try run(["classify", "--model", model, "--json", "--top-k", "This movie was absolutely wonderful!"])
        let list = try XCTUnwrap(try jsonLines(top.stdout).first as? [[String: Any]], top.stdout)
        XCTAssertEqual(list.map { $0["label"] as? String }, ["LABEL_0", "LABEL_1"])
        XCTAssertEqual(list.compactMap { $0["score"] as? Double }.reduce(0, +), 1, accuracy: 1e-5)
    }

    func testClassifyStreamsStdinInOrderWithAnErrorLineForAnEmptyLine() throws {
        let model = try tinyBertClassifier()
        let input = (0..<70).map { $0 == 40 ? "" : "sentence number \($0)" }.joined(separator: "\n") + "\n"
        let r = try run(["classify", "--model", model, "--json", "--batch", "16"], stdin: input)
        XCTAssertEqual(r.status, 0, r.stderr)
        let out = try jsonLines(r.stdout)
        XCTAssertEqual(out.count, 70, "one JSON value per input line")
        let error = try XCTUnwrap(out[40] as? [String: Any])
        XCTAssertEqual(error["error"] as? String, "line 41: empty line — nothing to classify")
        XCTAssertNotNil((out[41] as? [String: Any])?["label"])
        XCTAssertTrue(r.stderr.contains("sentences/s"), r.stderr)
        // The same lines from --file give the same output.
        let file = try TestPaths.temporaryDirectory("cls") + "/in.txt"
        try input.write(toFile: file, atomically: true, encoding: .utf8)
        XCTAssertEqual(try run(["classify", "--model", model, "--json", "--batch", "16", "--file", file]).stdout, r.stdout)
    }

    func testClassifyTruncatesAVeryLongTextWithANote() throws {
        let model = try tinyBertClassifier()
        let long = Array(repeating: "word", count: 10_000).joined(separator: " ")
        let r = try run(["classify", "--model", model, "--json"], stdin: long + "\n")
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("line 1 has 10002 tokens; classified its first 512"), r.stderr)
        XCTAssertEqual(try jsonLines(r.stdout).count, 1)
    }

    func testClassifyEvalPrintsMetricsAndNamesBadLines() throws {
        let model = try tinyBertClassifier()
        let dir = try TestPaths.temporaryDirectory("tsv")
        let good = dir + "/good.tsv"
        try "sentence\tlabel\nThis movie was absolutely wonderful! \t0\nThe plot was boring and far too long. \tLABEL_1\n"
            .write(toFile: good, atomically: true, encoding: .utf8)
        let r = try run(["classify", "--model", model, "--eval", good, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let m = try XCTUnwrap(try jsonLines(r.stdout).last as? [String: Any])
        XCTAssertEqual(m["accuracy"] as? Double, 0.5)
        XCTAssertEqual(m["confusion_matrix"] as? [[Int]], [[1, 0], [1, 0]])
        let text = try run(["classify", "--model", model, "--eval", good])
        XCTAssertTrue(text.stdout.contains("accuracy 50.00 %"), text.stdout)
        XCTAssertTrue(text.stdout.contains("confusion matrix"), text.stdout)

        let badLabel = dir + "/bad-label.tsv"
        try "sentence\tlabel\ngood\t1\nbad\tmaybe\n".write(toFile: badLabel, atomically: true, encoding: .utf8)
        let e1 = try run(["classify", "--model", model, "--eval", badLabel])
        XCTAssertNotEqual(e1.status, 0)
        XCTAssertTrue(e1.stderr.contains("bad-label.tsv:3: label 'maybe'"), e1.stderr)
        let missing = dir + "/missing.tsv"
        try "sentence\tlabel\ngood\t1\nno label here\n".write(toFile: missing, atomically: true, encoding: .utf8)
        let e2 = try run(["classify", "--model", model, "--eval", missing])
        XCTAssertNotEqual(e2.status, 0)
        XCTAssertTrue(e2.stderr.contains("missing.tsv:3: expected 2 TAB-separated columns"), e2.stderr)
        let noHeader = dir + "/no-header.tsv"
        try "good\t1\n".write(toFile: noHeader, atomically: true, encoding: .utf8)
        let e3 = try run(["classify", "--model", model, "--eval", noHeader])
        XCTAssertTrue(e3.stderr.contains("no-header.tsv:1: the header must name a 'sentence' and a 'label' column"), e3.stderr)
    }

    func testUnknownModelFolderAndEmptyTextAreOneLineErrors() throws {
        let r = try run(["classify", "--model", "/no/such/folder", "hello"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("model folder '/no/such/folder' does not exist"), r.stderr)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        let gpt = try run(["classify", "--model", TestPaths.model("gpt2-tiny"), "hello"])
        XCTAssertEqual(gpt.status, 1)
        XCTAssertTrue(gpt.stderr.contains("needs a BERT encoder"), gpt.stderr)
        let empty = try run(["classify", "--model", try tinyBertClassifier(), ""])
        XCTAssertEqual(empty.status, 1)
        XCTAssertTrue(empty.stderr.contains("TEXT 1 is empty"), empty.stderr)
        let e = try run(["embed", "--model", "/no/such/folder", "hello"])
        XCTAssertEqual(e.status, 1)
        XCTAssertTrue(e.stderr.contains("does not exist"), e.stderr)
    }

    /// `lm embed --json` on stdin: one {"text", "embedding"} per line, equal to sentence-transformers.
    func testEmbedJSONOnStdinMatchesSentenceTransformers() throws {
        let model = try TestPaths.miniLM()
        let meta = try loadJSON(try TestPaths.sharedFile("fixtures/minilm/tokenization.json"))
        let sentences = meta["sentences"] as! [[String: Any]]
        let picks = [0, 1, 21]   // short, pangram, medium
        let input = picks.map { sentences[$0]["text"] as! String }.joined(separator: "\n") + "\n"
        let r = try run(["embed", "--model", model, "--json"], stdin: input)
        XCTAssertEqual(r.status, 0, r.stderr)
        let rows = try jsonLines(r.stdout).map { try XCTUnwrap($0 as? [String: Any]) }
        XCTAssertEqual(rows.count, 3)
        let ref = try SafeTensorsFile(path: try TestPaths.sharedFile("fixtures/minilm/outputs.safetensors")).tensor("sentence_embedding").scalars
        for (k, i) in picks.enumerated() {
            XCTAssertEqual(rows[k]["text"] as? String, sentences[i]["text"] as? String)
            let e = floats(rows[k]["embedding"])
            XCTAssertEqual(e.count, 384)
            assertClose(e, Array(ref[i * 384..<(i + 1) * 384]), tol: 1e-5, "embedding of sentence \(i)")
        }
    }

    /// Without --model, lm classify uses the bundled int8 sentiment model (models/sentiment).
    func testClassifyUsesTheBundledSentimentModel() throws {
        let r = try run(["classify", "--json", "what a wonderful film", "a dull, lifeless and tedious mess"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let out = try jsonLines(r.stdout).map { try XCTUnwrap($0 as? [String: Any]) }
        XCTAssertEqual(out.map { $0["label"] as? String }, ["positive", "negative"])
        for o in out { XCTAssertGreaterThan(try XCTUnwrap(o["score"] as? Double), 0.9) }
        // The folder stays within the 25 MB budget.
        let dir = TestPaths.model("sentiment")
        let bytes = try FileManager.default.contentsOfDirectory(atPath: dir).reduce(0) {
            $0 + ((try FileManager.default.attributesOfItem(atPath: dir + "/" + $1)[.size] as? Int) ?? 0)
        }
        XCTAssertLessThanOrEqual(bytes, 25_000_000)
    }
}
