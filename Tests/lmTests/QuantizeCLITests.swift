import Foundation
import LMCore
import LMTestSupport
import XCTest

/// `lm quantize`, `lm eval` and `lm bench --quant int8` through the real binary.
final class QuantizeCLITests: XCTestCase {
    var lm: String { TestPaths.lmBinary }

    func lastJSON(_ r: ProcessResult) throws -> [String: Any] {
        let line = r.stdout.split(separator: "\n").last.map(String.init) ?? ""
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], r.stdout + r.stderr)
    }

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
