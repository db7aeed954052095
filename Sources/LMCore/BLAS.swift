import CBLAS

/// The BLAS wrapper: the only file that talks to OpenBLAS.
public enum BLAS {
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
        cblas_sgemv(CblasRowMajor, trans ? CblasTrans : CblasNoTrans, Int32(rows), Int32(cols),
                    alpha, A, Int32(lda), x, 1, beta, y, 1)
    }

    /// Sets OpenBLAS's thread count (swift-lm's `--threads`).
    public static func setThreads(_ n: Int) {
        openblas_set_num_threads(Int32(n))
    }

    public static var threads: Int { Int(openblas_get_num_threads()) }
}
