import Foundation
import LMCore
import XCTest

/// OpenBLAS never runs kernels older than the CPU: its detection fell back to SSE3 "Prescott"
/// kernels on Xeons newer than Debian's 0.3.21, at a third of the speed.
final class BLASCoreTests: XCTestCase {
    func testOpenBLASRunsKernelsForThisCPU() throws {
        if let forced = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] {
            throw XCTSkip("OPENBLAS_CORETYPE=\(forced) is the user's choice")
        }
        let features = Set(SystemInfo.features.split(separator: " ").map(String.init))
        let core = BLAS.core.used
        if features.isSuperset(of: ["avx512f", "avx512bw", "avx512vl", "avx512dq"]) {
            XCTAssertTrue(["SkylakeX", "Cooperlake", "SapphireRapids"].contains(core), "\(core) on an AVX-512 CPU (detected: \(BLAS.core.detected))")
        } else if features.isSuperset(of: ["avx2", "fma"]) {
            XCTAssertTrue(["Haswell", "Zen", "SkylakeX", "Cooperlake", "SapphireRapids"].contains(core), "\(core) (detected: \(BLAS.core.detected))")
        }
        // And the GEMM is right with it.
        let a: [Float] = [1, 2, 3, 4, 5, 6], b: [Float] = [7, 8, 9, 10, 11, 12]
        var c = [Float](repeating: 0, count: 4)
        BLAS.sgemm(M: 2, N: 2, K: 3, A: a, lda: 3, B: b, ldb: 2, C: &c, ldc: 2)
        XCTAssertEqual(c, [58, 64, 139, 154])
    }

    func testSystemInfoNamesTheCPUAndTheBLASCore() {
        let lines = SystemInfo.lines
        XCTAssertEqual(lines.count, 4)
        XCTAssertTrue(lines[0].hasPrefix("CPU: "))
        XCTAssertTrue(lines[3].contains("OpenBLAS \(BLAS.core.used)"), lines[3])
    }
}
