#include "gemm.h"
#include <immintrin.h>
#include <string.h>
#include "lm_transpose8.h"

#define MR 6
#define NR 16
#define MC 144
#define KC 256
#define NC 512

size_t lm_sgemm_scratch_floats(void) { return MC * KC + KC * NC + MR * NR; }

// C (6, 16) = (C if load) + bias? + Σ_k ap[k][0..<6] ⊗ bp[k][0..<16] over kn steps.
static inline void kernel(size_t kn, const float *ap, const float *bp, float *c, size_t ldc, int load,
                          const float *bias, const float *mul, size_t ldm) {
    __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
    if (load) {
        c00 = _mm256_loadu_ps(c);           c01 = _mm256_loadu_ps(c + 8);
        c10 = _mm256_loadu_ps(c + ldc);     c11 = _mm256_loadu_ps(c + ldc + 8);
        c20 = _mm256_loadu_ps(c + 2 * ldc); c21 = _mm256_loadu_ps(c + 2 * ldc + 8);
        c30 = _mm256_loadu_ps(c + 3 * ldc); c31 = _mm256_loadu_ps(c + 3 * ldc + 8);
        c40 = _mm256_loadu_ps(c + 4 * ldc); c41 = _mm256_loadu_ps(c + 4 * ldc + 8);
        c50 = _mm256_loadu_ps(c + 5 * ldc); c51 = _mm256_loadu_ps(c + 5 * ldc + 8);
    } else if (bias) {
        c00 = c10 = c20 = c30 = c40 = c50 = _mm256_loadu_ps(bias);
        c01 = c11 = c21 = c31 = c41 = c51 = _mm256_loadu_ps(bias + 8);
    } else {
        c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = _mm256_setzero_ps();
    }
#pragma clang loop unroll_count(4)
    for (size_t k = 0; k < kn; k++) {
        _mm_prefetch((const char *)(bp + 8 * NR), _MM_HINT_T0);
        const __m256 b0 = _mm256_loadu_ps(bp), b1 = _mm256_loadu_ps(bp + 8);
        __m256 a;
        a = _mm256_broadcast_ss(ap + 0); c00 = _mm256_fmadd_ps(a, b0, c00); c01 = _mm256_fmadd_ps(a, b1, c01);
        a = _mm256_broadcast_ss(ap + 1); c10 = _mm256_fmadd_ps(a, b0, c10); c11 = _mm256_fmadd_ps(a, b1, c11);
        a = _mm256_broadcast_ss(ap + 2); c20 = _mm256_fmadd_ps(a, b0, c20); c21 = _mm256_fmadd_ps(a, b1, c21);
        a = _mm256_broadcast_ss(ap + 3); c30 = _mm256_fmadd_ps(a, b0, c30); c31 = _mm256_fmadd_ps(a, b1, c31);
        a = _mm256_broadcast_ss(ap + 4); c40 = _mm256_fmadd_ps(a, b0, c40); c41 = _mm256_fmadd_ps(a, b1, c41);
        a = _mm256_broadcast_ss(ap + 5); c50 = _mm256_fmadd_ps(a, b0, c50); c51 = _mm256_fmadd_ps(a, b1, c51);
        ap += MR;
        bp += NR;
    }
    if (mul) {
        c00 = _mm256_mul_ps(c00, _mm256_loadu_ps(mul));           c01 = _mm256_mul_ps(c01, _mm256_loadu_ps(mul + 8));
        c10 = _mm256_mul_ps(c10, _mm256_loadu_ps(mul + ldm));     c11 = _mm256_mul_ps(c11, _mm256_loadu_ps(mul + ldm + 8));
        c20 = _mm256_mul_ps(c20, _mm256_loadu_ps(mul + 2 * ldm)); c21 = _mm256_mul_ps(c21, _mm256_loadu_ps(mul + 2 * ldm + 8));
        c30 = _mm256_mul_ps(c30, _mm256_loadu_ps(mul + 3 * ldm)); c31 = _mm256_mul_ps(c31, _mm256_loadu_ps(mul + 3 * ldm + 8));
        c40 = _mm256_mul_ps(c40, _mm256_loadu_ps(mul + 4 * ldm)); c41 = _mm256_mul_ps(c41, _mm256_loadu_ps(mul + 4 * ldm + 8));
        c50 = _mm256_mul_ps(c50, _mm256_loadu_ps(mul + 5 * ldm)); c51 = _mm256_mul_ps(c51, _mm256_loadu_ps(mul + 5 * ldm + 8));
    }
    _mm256_storeu_ps(c, c00);           _mm256_storeu_ps(c + 8, c01);
    _mm256_storeu_ps(c + ldc, c10);     _mm256_storeu_ps(c + ldc + 8, c11);
    _mm256_storeu_ps(c + 2 * ldc, c20); _mm256_storeu_ps(c + 2 * ldc + 8, c21);
    _mm256_storeu_ps(c + 3 * ldc, c30); _mm256_storeu_ps(c + 3 * ldc + 8, c31);
    _mm256_storeu_ps(c + 4 * ldc, c40); _mm256_storeu_ps(c + 4 * ldc + 8, c41);
    _mm256_storeu_ps(c + 5 * ldc, c50); _mm256_storeu_ps(c + 5 * ldc + 8, c51);
}

// Rows [i0, i0 + mc) × k [k0, k0 + kc) of A into 6-row micro-panels, k-major (zero rows past mc).
static void pack_a(float *ap, const float *A, size_t lda, size_t i0, size_t mc, size_t k0, size_t kc) {
    for (size_t p = 0; p < mc; p += MR) {
        const size_t rows = mc - p < MR ? mc - p : MR;
        float *dst = ap + p * kc;
        for (size_t r = 0; r < MR; r++) {
            if (r < rows) {
                const float *src = A + (i0 + p + r) * lda + k0;
                for (size_t k = 0; k < kc; k++) dst[k * MR + r] = src[k];
            } else {
                for (size_t k = 0; k < kc; k++) dst[k * MR + r] = 0;
            }
        }
    }
}

// B rows [k0, k0 + kc) × columns [j0, j0 + nc) into 16-column micro-panels (zero padded).
static void pack_b(float *bp, const float *B, size_t ldb, size_t k0, size_t kc, size_t j0, size_t nc) {
    for (size_t j = 0; j < nc; j += NR) {
        const size_t cols = nc - j < NR ? nc - j : NR;
        float *dst = bp + j * kc;
        const float *src = B + k0 * ldb + j0 + j;
        if (cols == NR) {
            for (size_t k = 0; k < kc; k++) {
                _mm256_storeu_ps(dst + k * NR, _mm256_loadu_ps(src + k * ldb));
                _mm256_storeu_ps(dst + k * NR + 8, _mm256_loadu_ps(src + k * ldb + 8));
            }
        } else {
            for (size_t k = 0; k < kc; k++) {
                size_t c = 0;
                for (; c < cols; c++) dst[k * NR + c] = src[k * ldb + c];
                for (; c < NR; c++) dst[k * NR + c] = 0;
            }
        }
    }
}

// Like pack_b for B stored (N, K): column j of op(B) is row j of B.
static void pack_b_t(float *bp, const float *B, size_t ldb, size_t k0, size_t kc, size_t j0, size_t nc) {
    for (size_t j = 0; j < nc; j += NR) {
        const size_t cols = nc - j < NR ? nc - j : NR;
        float *dst = bp + j * kc;
        const float *src = B + (j0 + j) * ldb + k0;
        size_t k = 0;
        if (cols == NR)
            for (; k + 8 <= kc; k += 8) {
                transpose8x8(dst + k * NR, NR, src + k, ldb);
                transpose8x8(dst + k * NR + 8, NR, src + 8 * ldb + k, ldb);
            }
        for (; k < kc; k++) {
            size_t c = 0;
            for (; c < cols; c++) dst[k * NR + c] = src[c * ldb + k];
            for (; c < NR; c++) dst[k * NR + c] = 0;
        }
    }
}

void lm_sgemm(int transB, const float *A, size_t lda, const float *B, size_t ldb, float *C, size_t ldc,
              size_t i0, size_t i1, size_t N, size_t K, const float *bias, const float *mul, size_t ldm,
              float *scratch) {
    float *ap = scratch, *bpk = scratch + MC * KC, *edge = bpk + KC * NC;
    if (K == 0) {  // C = bias (or 0), times mul
        for (size_t i = i0; i < i1; i++)
            for (size_t j = 0; j < N; j++) C[i * ldc + j] = (bias ? bias[j] : 0) * (mul ? mul[i * ldm + j] : 1);
        return;
    }
    for (size_t jc = 0; jc < N; jc += NC) {
        const size_t nc = N - jc < NC ? N - jc : NC;
        for (size_t k0 = 0; k0 < K; k0 += KC) {
            const size_t kc = K - k0 < KC ? K - k0 : KC;
            if (transB) pack_b_t(bpk, B, ldb, k0, kc, jc, nc); else pack_b(bpk, B, ldb, k0, kc, jc, nc);
            const int last = k0 + kc == K;
            for (size_t ic = i0; ic < i1; ic += MC) {
                const size_t mc = i1 - ic < MC ? i1 - ic : MC;
                pack_a(ap, A, lda, ic, mc, k0, kc);
                for (size_t j = 0; j < nc; j += NR) {
                    const size_t cols = nc - j < NR ? nc - j : NR;
                    float biasTile[NR];
                    const float *bj = (k0 == 0 && bias) ? bias + jc + j : NULL;
                    if (bj && cols < NR) {
                        memset(biasTile, 0, sizeof biasTile);
                        memcpy(biasTile, bj, cols * sizeof(float));
                        bj = biasTile;
                    }
                    const float *bp = bpk + j * kc;
                    for (size_t p = 0; p < mc; p += MR) {
                        const size_t rows = mc - p < MR ? mc - p : MR;
                        float *cp = C + (ic + p) * ldc + jc + j;
                        const float *mp = (mul && last) ? mul + (ic + p) * ldm + jc + j : NULL;
                        if (rows == MR && cols == NR) {
                            kernel(kc, ap + p * kc, bp, cp, ldc, k0 > 0, bj, mp, ldm);
                        } else {  // edge tile through a 6×16 buffer
                            if (k0 > 0)
                                for (size_t r = 0; r < rows; r++) memcpy(edge + r * NR, cp + r * ldc, cols * sizeof(float));
                            kernel(kc, ap + p * kc, bp, edge, NR, k0 > 0, bj, NULL, 0);
                            for (size_t r = 0; r < rows; r++)
                                for (size_t c = 0; c < cols; c++)
                                    cp[r * ldc + c] = mp ? edge[r * NR + c] * mp[r * ldm + c] : edge[r * NR + c];
                        }
                    }
                }
            }
        }
    }
}
