import Foundation
import LMTestSupport
import XCTest

/// Runs the bad-input suite (Benchmarks/badinput/run.py: some 500 hostile inputs through the real
/// binary — broken model files, configs, corpora, TSVs, option values, unwritable outputs, shared
/// output folders, piped chat) and requires every case to pass: no crash, no exit 0 on bad input,
/// one-line errors, and each case's own expectations. About two minutes on 2 cores (debug build).
final class BadInputSuiteTests: XCTestCase {
    func testTheBadInputSuitePasses() throws {
        let script = TestPaths.packageRoot + "/Benchmarks/badinput/run.py"
        XCTAssertTrue(FileManager.default.fileExists(atPath: script), "missing \(script)")
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: TestPaths.lmBinary), "lm binary not found at \(TestPaths.lmBinary)")
        let r = try runProcess("/usr/bin/env", ["python3", script, "--lm", TestPaths.lmBinary, "--shared", TestPaths.shared, "--json"],
                               cwd: TestPaths.packageRoot)
        guard let line = r.stdout.split(separator: "\n").last,
              let report = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            return XCTFail("the suite printed no JSON report (exit \(r.status)):\n\(r.stdout.suffix(2000))\n\(r.stderr.suffix(4000))")
        }
        let failed = report["failed"] as? Int ?? -1
        let cases = report["cases"] as? [[String: Any]] ?? []
        let failing = cases.filter { ($0["passed"] as? Bool) != true }.map { c -> String in
            let reasons = (c["reasons"] as? [String] ?? []).joined(separator: "; ")
            let tail = (c["stderr_tail"] as? [String] ?? []).joined(separator: " | ")
            return "[\(c["category"] ?? "")] \(c["name"] ?? "")\n    \(c["command"] ?? "")\n    status \(c["status"] ?? "nil"): \(reasons)\n    stderr: \(tail)"
        }
        XCTAssertEqual(failed, 0, "\(report["passed"] ?? 0) passed, \(failed) failed (\(report["crashes"] ?? 0) crashes, "
            + "\(report["exit0_on_failure"] ?? 0) exit 0 on failure):\n" + failing.joined(separator: "\n"))
        XCTAssertEqual(r.status, failed == 0 ? 0 : 1, "the suite's exit status follows its result")
        XCTAssertGreaterThanOrEqual(cases.count, 150, "the suite has at least 150 cases")
    }
}
