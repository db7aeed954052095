import Foundation
import LMCore
import LMModels
import LMTestSupport
import LMTokenizers
import XCTest

/// BERT against PyTorch / Hugging Face: the real all-MiniLM-L6-v2 (../shared/fixtures/minilm)
/// and the random 2-layer BERTs with masked-LM and classification heads (fixtures/bert-tiny-mlm).
final class BertParityTests: XCTestCase {
    static let pool = ThreadPool(threads: 2)

    func miniLM() throws -> BertModel {
        try ModelRegistry.loadBert(folder: try TestPaths.miniLM(), pool: Self.pool)
    }

    func cosine(_ a: ArraySlice<Float>, _ b: ArraySlice<Float>) -> Double {
        var ab = 0.0, aa = 0.0, bb = 0.0
        for (x, y) in zip(a, b) { ab += Double(x) * Double(y); aa += Double(x) * Double(x); bb += Double(y) * Double(y) }
        return ab / (aa.squareRoot() * bb.squareRoot())
    }

    /// Every one of the 24 sentences alone: last_hidden_state ≤ 1e-4, the pooler output, and the
    /// sentence embedding (cosine ≥ 0.99999, abs ≤ 1e-5); then all 24 in one packed batch.
    func testMiniLMHiddenStatesAndEmbeddingsMatchPyTorch() throws {
        let model = try miniLM()
        let meta = try loadJSON(try TestPaths.sharedFile("fixtures/minilm/tokenization.json"))
        let ref = try SafeTensorsFile(path: try TestPaths.sharedFile("fixtures/minilm/outputs.safetensors"))
        let sentences = meta["sentences"] as! [[String: Any]]
        XCTAssertEqual(sentences.count, 24)
        let C = 384
        let refEmb = try ref.tensor("sentence_embedding").scalars
        let refPool = try ref.tensor("pooler_output").scalars
        var worstHidden: Float = 0
        for (i, s) in sentences.enumerated() {
            let ids = ints(s["input_ids"])
            let batch = BertBatch(sequences: [ids])
            let h = try model.hiddenStates(batch)
            let expected = try ref.tensor(String(format: "last_hidden_state.%02d", i)).scalars
            XCTAssertEqual(h.count, expected.count, "sentence \(i) rows")
            worstHidden = max(worstHidden, maxAbsDiff(h, expected))
            let e = try model.sentenceEmbeddings(batch)
            let want = refEmb[i * C..<(i + 1) * C]
            XCTAssertGreaterThanOrEqual(cosine(e[0..<C], want), 0.99999, "embedding cosine of sentence \(i) (\(s["name"]!))")
            assertClose(e, Array(want), tol: 1e-5, "embedding of sentence \(i)")
            assertClose(try model.pooledOutput(batch), Array(refPool[i * C..<(i + 1) * C]), tol: Tolerance.logits, "pooler \(i)")
        }
        XCTAssertLessThanOrEqual(worstHidden, Tolerance.logits, "MiniLM last_hidden_state, worst of 24 sentences")

        // All 24 at once (lengths 2 … 136): the same embeddings.
        let all = BertBatch(sequences: sentences.map { ints($0["input_ids"]) })
        let e = try model.sentenceEmbeddings(all)
        for i in 0..<24 {
            XCTAssertGreaterThanOrEqual(cosine(e[i * C..<(i + 1) * C], refEmb[i * C..<(i + 1) * C]), 0.99999, "batched sentence \(i)")
        }
        assertClose(e, refEmb, tol: 1e-5, "24 embeddings in one batch")
    }

    /// The padded batch of fixtures/minilm/batch.json (right padding, attention mask): hidden
    /// states where the mask is 1, and the sentence embeddings.
    func testMiniLMPaddedBatchMatchesPyTorch() throws {
        let model = try miniLM()
        let meta = try loadJSON(try TestPaths.checkedIn("LMModelsTests", "minilm-batch.json"))
        let ref = try SafeTensorsFile(path: try TestPaths.sharedFile("fixtures/minilm/batch.safetensors"))
        let ids = (meta["input_ids"] as! [Any]).map(ints), mask = (meta["attention_mask"] as! [Any]).map(ints)
        let types = (meta["token_type_ids"] as! [Any]).map(ints)
        XCTAssertEqual(ids.count, 4)
        let batch = BertBatch(padded: ids, attentionMask: mask, typeIds: types)
        XCTAssertEqual(batch.lengths, mask.map { $0.reduce(0, +) })
        let h = try model.hiddenStates(batch)
        let refH = try ref.tensor("last_hidden_state").scalars   // (4, 78, 384)
        let C = 384, T = 78
        var row = 0, worst: Float = 0
        for b in 0..<4 {
            for t in 0..<T where mask[b][t] == 1 {
                worst = max(worst, maxAbsDiff(Array(h[row * C..<(row + 1) * C]), Array(refH[(b * T + t) * C..<(b * T + t + 1) * C])))
                row += 1
            }
        }
        XCTAssertEqual(row, batch.rows)
        XCTAssertLessThanOrEqual(worst, Tolerance.logits, "padded batch hidden states (mask 1)")
        let e = try model.sentenceEmbeddings(batch)
        let refE = try ref.tensor("sentence_embedding").scalars
        for b in 0..<4 {
            XCTAssertGreaterThanOrEqual(cosine(e[b * C..<(b + 1) * C], refE[b * C..<(b + 1) * C]), 0.99999, "padded batch sentence \(b)")
        }
        assertClose(e, refE, tol: 1e-5, "padded batch embeddings")
        assertClose(try model.pooledOutput(batch), try ref.tensor("pooler_output").scalars, tol: Tolerance.logits, "padded batch pooler")
    }

    /// The tokenizer and the model together: text → embedding of the 256-token truncated input.
    func testMiniLMTruncatedTextEmbedding() throws {
        let folder = try TestPaths.miniLM()
        let model = try ModelRegistry.loadBert(folder: folder, pool: Self.pool)
        let tok = try TokenizerLoader.load(path: folder)
        let meta = try loadJSON(try TestPaths.checkedIn("LMModelsTests", "minilm-truncation.json"))
        let e = try tok.encodePair(meta["text"] as! String, truncation: Truncation(maxLength: 256))
        XCTAssertEqual(e.ids, ints(meta["input_ids"]))
        let ref = try SafeTensorsFile(path: try TestPaths.sharedFile("fixtures/minilm/outputs.safetensors"))
        let got = try model.sentenceEmbeddings(BertBatch(sequences: [e.ids]))
        let want = try ref.tensor("truncated_256.sentence_embedding").scalars
        XCTAssertGreaterThanOrEqual(cosine(got[...], want[...]), 0.99999)
    }

    func testTinyMaskedLMLogitsMatchPyTorch() throws {
        let model = try ModelRegistry.loadBert(folder: try TestPaths.sharedFile("fixtures/bert-tiny-mlm/model-mlm"), pool: Self.pool)
        XCTAssertTrue(model.hasMaskedLMHead)
        let meta = try loadJSON(try TestPaths.checkedIn("LMModelsTests", "bert-tiny-mlm.json"))
        let ref = try SafeTensorsFile(path: try TestPaths.sharedFile("fixtures/bert-tiny-mlm/mlm_logits.safetensors"))
        let sentences = meta["sentences"] as! [[String: Any]]
        XCTAssertEqual(sentences.count, 2)
        var batchSeqs: [[Int]] = [], batchTypes: [[Int]] = [], expectedAll: [Float] = []
        for (i, s) in sentences.enumerated() {
            let ids = ints(s["input_ids"]), types = ints(s["token_type_ids"])
            let logits = try model.maskedLMLogits(BertBatch(sequences: [ids], typeIds: [types]))
            let expected = try ref.tensor("logits.\(i)").scalars
            assertClose(logits, expected, tol: Tolerance.logits, "MLM logits of sentence \(i)")
            // The top-5 ids at the masked positions.
            let V = model.config.vocabSize
            for (k, pos) in ints(s["mask_positions"]).enumerated() {
                let row = Array(logits[pos * V..<(pos + 1) * V])
                let top = row.indices.sorted { row[$0] > row[$1] }.prefix(5)
                let want = ints(((s["top5_at_masks"] as! [Any])[k] as! [String: Any])["ids"])
                XCTAssertEqual(Array(top), want, "top-5 at mask \(pos) of sentence \(i)")
            }
            batchSeqs.append(ids); batchTypes.append(types); expectedAll += expected
        }
        let both = try model.maskedLMLogits(BertBatch(sequences: batchSeqs, typeIds: batchTypes))
        assertClose(both, expectedAll, tol: Tolerance.logits, "MLM logits of both sentences in one batch")
    }

    func testTinyClassificationLogitsMatchPyTorch() throws {
        let model = try ModelRegistry.loadBert(folder: try TestPaths.sharedFile("fixtures/bert-tiny-mlm/model-cls"), pool: Self.pool)
        XCTAssertEqual(model.labels, ["LABEL_0", "LABEL_1"])
        let meta = try loadJSON(try TestPaths.checkedIn("LMModelsTests", "bert-tiny-classification.json"))
        for s in meta["single"] as! [[String: Any]] {
            let got = try model.classificationLogits(BertBatch(sequences: [ints(s["input_ids"])], typeIds: [ints(s["token_type_ids"])]))
            assertClose(got, floats(s["logits"]), tol: Tolerance.logits, "single: \(s["text"]!)")
        }
        let b = meta["batch"] as! [String: Any]
        let batch = BertBatch(padded: (b["input_ids"] as! [Any]).map(ints), attentionMask: (b["attention_mask"] as! [Any]).map(ints),
                              typeIds: (b["token_type_ids"] as! [Any]).map(ints))
        assertClose(try model.classificationLogits(batch), (b["logits"] as! [Any]).flatMap(floats), tol: Tolerance.logits, "padded batch")
        let pair = meta["pair"] as! [String: Any]
        let got = try model.classificationLogits(BertBatch(sequences: [ints(pair["input_ids"])], typeIds: [ints(pair["token_type_ids"])]))
        assertClose(got, floats(pair["logits"]), tol: Tolerance.logits, "sentence pair with token types")
    }

    /// Q8 linear layers stay close to float (the bundled int8 classifier relies on it).
    func testQuantizedMiniLMEmbeddingsStayClose() throws {
        let folder = try TestPaths.miniLM()
        let f = try ModelRegistry.loadBert(folder: folder, pool: Self.pool)
        let q = try ModelRegistry.loadBert(folder: folder, pool: Self.pool, convertTo: .q8)
        XCTAssertTrue(q.isQuantized)
        let batch = BertBatch(sequences: [[101, 2023, 3185, 2001, 7078, 6919, 999, 102], [101, 1996, 5436, 2001, 11771, 102]])
        let a = try f.sentenceEmbeddings(batch), b = try q.sentenceEmbeddings(batch)
        for s in 0..<2 { XCTAssertGreaterThan(cosine(a[s * 384..<(s + 1) * 384], b[s * 384..<(s + 1) * 384]), 0.995) }
    }

    func testBadInputsAreOneLineErrors() throws {
        let model = try ModelRegistry.loadBert(folder: try TestPaths.sharedFile("fixtures/bert-tiny-mlm/model-cls"), pool: Self.pool)
        XCTAssertThrowsError(try model.hiddenStates(BertBatch(sequences: [[101, 40000, 102]]))) {
            XCTAssertTrue("\($0)".contains("outside the vocabulary"), "\($0)")
        }
        XCTAssertThrowsError(try model.hiddenStates(BertBatch(sequences: [Array(repeating: 1000, count: 513)]))) {
            XCTAssertTrue("\($0)".contains("512 positions"), "\($0)")
        }
        XCTAssertThrowsError(try model.hiddenStates(BertBatch(sequences: [[]]))) { XCTAssertTrue("\($0)".contains("empty"), "\($0)") }
        XCTAssertThrowsError(try model.maskedLMLogits(BertBatch(sequences: [[101, 102]]))) {
            XCTAssertTrue("\($0)".contains("masked-LM head"), "\($0)")
        }
        XCTAssertThrowsError(try ModelRegistry.loadBert(folder: try TestPaths.sharedFile("fixtures/gpt2-tiny/model"))) {
            XCTAssertTrue("\($0)".contains("needs a BERT encoder"), "\($0)")
        }
    }
}
