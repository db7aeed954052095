import Foundation
import LMCore
import LMModels
import LMQuant
import LMTestSupport
import XCTest

/// `lm quantize` on BERT folders: the Q8 folder loads as Q8 and classifies like the float one.
final class BertQuantizeTests: XCTestCase {
    func testBertClassifierQuantizesAndStaysClose() throws {
        let src = try TestPaths.sharedFile("fixtures/bert-tiny-mlm/model-cls")
        let out = try TestPaths.temporaryDirectory("bert-q8") + "/int8"
        let summary = try ModelQuantizer.quantize(folder: src, to: out)
        // Word embeddings, 6 matrices per layer × 2, the pooler; classifier.weight stays float.
        XCTAssertEqual(summary.quantizedTensors, 1 + 12 + 1)
        XCTAssertLessThanOrEqual(summary.sizeRatio, 0.32)
        let pool = ThreadPool(threads: 2)
        let f = try ModelRegistry.loadBert(folder: src, pool: pool), q = try ModelRegistry.loadBert(folder: out, pool: pool)
        XCTAssertTrue(q.isQuantized)
        XCTAssertEqual(q.labels, f.labels)
        let batch = BertBatch(sequences: [[101, 2023, 3185, 2001, 7078, 6919, 999, 102], [101, 1996, 5436, 102]])
        assertClose(try q.classificationLogits(batch), try f.classificationLogits(batch), tol: 0.02, "int8 vs float logits")
        XCTAssertThrowsError(try ModelQuantizer.quantize(folder: out, to: out + "2")) { XCTAssertTrue("\($0)".contains("already quantized")) }
    }
}
