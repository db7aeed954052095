import Foundation
import LMCore
import LMModels
import LMTestSupport
import LMTraining
import XCTest

/// A classifier's config.json must name as many labels as its head has rows: a config with
/// more (or fewer) labels than `classifier.weight` is refused at load with one line.
final class ClassifierLabelCountTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = try TestPaths.temporaryDirectory("classifier-labels")
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// A copy of the bundled sentiment model (2 labels) whose config.json `edit` changes.
    func sentiment(_ name: String, _ edit: (inout [String: Any]) -> Void) throws -> String {
        let folder = dir + "/" + name
        try FileManager.default.copyItem(atPath: TestPaths.model("sentiment"), toPath: folder)
        let path = folder + "/config.json"
        var config = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        edit(&config)
        try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted]).write(to: URL(fileURLWithPath: path))
        return folder
    }

    func expectRefused(_ folder: String, _ words: [String], line: UInt = #line) {
        XCTAssertThrowsError(try BertTextPipeline(folder: folder, classifier: true), line: line) { error in
            guard let e = error as? LMError else { return XCTFail("\(error)", line: line) }
            XCTAssertEqual(e.kind, .invalidConfig, e.message, line: line)
            XCTAssertTrue(e.message.contains(folder + "/config.json"), e.message, line: line)
            for w in words { XCTAssertTrue(e.message.contains(w), "should say '\(w)': \(e.message)", line: line) }
            XCTAssertFalse(e.message.contains("\n"), e.message, line: line)
        }
        // Every loader of the folder refuses it, not only the pipeline.
        XCTAssertThrowsError(try ModelRegistry.loadBert(folder: folder), line: line)
    }

    func testMoreLabelsThanTheHeadHasRowsAreRefused() throws {
        let three = try sentiment("three") { c in
            c["id2label"] = ["0": "negative", "1": "positive", "2": "neutral"]
            c["label2id"] = ["negative": 0, "positive": 1, "neutral": 2]
            c["num_labels"] = 3
        }
        expectRefused(three, ["3 labels", "2 rows", "classifier.weight"])

        let numOnly = try sentiment("num") { c in c["num_labels"] = 5 }
        expectRefused(numOnly, ["num_labels 5", "2 rows"])

        let idOnly = try sentiment("id") { c in
            c["id2label"] = ["0": "negative", "1": "positive", "7": "other"]
            c["num_labels"] = nil
        }
        expectRefused(idOnly, ["id2label", "2 rows"])
    }

    func testFewerLabelsThanRowsAreRefused() throws {
        let one = try sentiment("one") { c in
            c["id2label"] = ["0": "negative"]
            c["label2id"] = ["negative": 0]
            c["num_labels"] = 1
        }
        expectRefused(one, ["1 label", "2 rows"])
    }

    func testMatchingOrAbsentLabelsLoad() throws {
        let p = try BertTextPipeline(folder: TestPaths.model("sentiment"), classifier: true)
        XCTAssertEqual(p.labels, ["negative", "positive"])
        // No id2label / num_labels: the head's rows name the classes LABEL_0, LABEL_1.
        let bare = try sentiment("bare") { c in
            c["id2label"] = nil; c["label2id"] = nil; c["num_labels"] = nil
        }
        XCTAssertEqual(try BertTextPipeline(folder: bare, classifier: true).labels, ["LABEL_0", "LABEL_1"])
        let probs = try BertTextPipeline(folder: bare, classifier: true).probabilities(["a fine film"])
        XCTAssertEqual(probs.first?.count, 2)
    }
}
