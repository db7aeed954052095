import CBLAS
import Foundation
import CKernels

/// The BLAS wrapper: the only file that talks to OpenBLAS.
public enum BLAS {
    /// The OpenBLAS core in use and the one OpenBLAS detected by itself: they differ when its
    /// detection fell back to old kernels on a CPU newer than it (see `lm_blas_prepare`), which
    /// the first BLAS use here corrects.
    public static let core: (used: String, detected: String) = {
        lm_blas_prepare()
        return (String(cString: lm_blas_core()), String(cString: lm_blas_detected_core()))
    }()

    /// "OpenBLAS SkylakeX (it detected Prescott)", for system-info lines.
    public static var coreDescription: String {
        let c = core
        return c.used == c.detected ? "OpenBLAS \(c.used)" : "OpenBLAS \(c.used) (it detected \(c.detected): set by swift-lm)"
    }

    /// C (M, N) = alpha · op(A) · op(B) + beta · C, all row-major.
    /// op(A) is (M, K): A is (M, K) with row stride `lda`, or (K, M) when `transA`.
    /// op(B) is (K, N): B is (K, N) with row stride `ldb`, or (N, K) when `transB`.
    @inline(__always)
    public static func sgemm(transA: Bool = false, transB: Bool = false,
                             M: Int, N: Int, K: Int, alpha: Float = 1,
                             A: UnsafePointer<Float>, lda: Int,
                             B: UnsafePointer<Float>, ldb: Int,
                             beta: Float = 0,
                             C: UnsafeMutablePointer<Float>, ldc: Int) {
        if M == 0 || N == 0 { return }
        _ = core
        cblas_sgemm(CblasRowMajor,
                    transA ? CblasTrans : CblasNoTrans,
                    transB ? CblasTrans : CblasNoTrans,
                    Int32(M), Int32(N), Int32(K), alpha,
                    A, Int32(lda), B, Int32(ldb), beta, C, Int32(ldc))
    }

    /// y (M) = alpha · op(A) · x + beta · y; A is (rows, cols) row-major with stride `lda`;
    /// op(A) is A, or Aᵀ when `trans`.
    @inline(__always)
    public static func sgemv(trans: Bool = false, rows: Int, cols: Int, alpha: Float = 1,
                             A: UnsafePointer<Float>, lda: Int, x: UnsafePointer<Float>,
                             beta: Float = 0, y: UnsafeMutablePointer<Float>) {
        _ = core
        cblas_sgemv(CblasRowMajor, trans ? CblasTrans : CblasNoTrans, Int32(rows), Int32(cols),
                    alpha, A, Int32(lda), x, 1, beta, y, 1)
    }

    /// Sets OpenBLAS's thread count (swift-lm's `--threads`).
    public static func setThreads(_ n: Int) {
        _ = core
        openblas_set_num_threads(Int32(n))
    }

    public static var threads: Int { Int(openblas_get_num_threads()) }
}

/// What the CPU offers and what swift-lm runs on it, as llama.cpp's system info: printed by
/// `lm --version` and `lm bench`.
public enum SystemInfo {
    /// The CPU's model name (/proc/cpuinfo).
    public static let cpuName: String = {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "unknown CPU" }
        for line in text.split(separator: "\n") where line.hasPrefix("model name") {
            if let colon = line.firstIndex(of: ":") { return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces) }
        }
        return "unknown CPU"
    }()

    /// Vector features ("avx2 fma avx512f … avx512vnni avx512bf16").
    public static var features: String { String(cString: lm_cpu_features()) }

    /// One line per fact: CPU, features, swift-lm's kernels, the BLAS core.
    public static var lines: [String] {
        ["CPU: \(cpuName) (\(ProcessInfo.processInfo.activeProcessorCount) cores available)",
         "features: \(features)",
         "kernels: \(kernelISA) (LM_KERNELS=avx2 forces the AVX2 ones)",
         "BLAS: \(BLAS.coreDescription)"]
    }
}
