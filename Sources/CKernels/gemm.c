#include "gemm.h"
#include <immintrin.h>
#include <string.h>
#include "lm_transpose8.h"
#include "quant.h"

#define MR 6
#define NR 16
#define MC 144
#define KC 384   // a multiple of 32: int8 blocks never straddle two k-blocks
#define KC_MAX 512  // k-blocks of 256-weight block types (Q4_K, Q6_K) are 512 deep
#define NC 2048

size_t lm_sgemm_scratch_floats(void) { return MC * KC_MAX + KC_MAX * NC + MR * NR + NR * KC_MAX; }

// Where the packed B panels come from.
typedef struct {
    enum { B_KN, B_NK, B_Q8, B_BLOCKS } kind;
    const float *b;     // B_KN: (K, N); B_NK: (N, K)
    size_t ldb;         // B_BLOCKS: bytes per row
    const int8_t *q;    // B_Q8: (N, ldb) int8, one float16 scale per 32 along k
    const uint16_t *d;
    const void *w;      // B_BLOCKS: N rows of ggml blocks (`quant.h`)
    int type;
} bsource;

#define AI static inline __attribute__((always_inline))

// C (rows, 16) = start + Σ_k ap[k][r] · bp[k][0..<16] over kn steps, then ⊙ mul. start is C
// (load), C + bias (load and bias), bias, or zero. rows is a constant at every call site.
AI void kernel_rows(const int rows, size_t kn, const float *ap, const float *bp, float *c, size_t ldc, int load,
                    const float *bias, const float *mul, size_t ldm) {
    __m256 acc[MR][2];
    for (int r = 0; r < rows; r++) {
        if (load) {
            acc[r][0] = _mm256_loadu_ps(c + r * ldc);
            acc[r][1] = _mm256_loadu_ps(c + r * ldc + 8);
            if (bias) {
                acc[r][0] = _mm256_add_ps(acc[r][0], _mm256_loadu_ps(bias));
                acc[r][1] = _mm256_add_ps(acc[r][1], _mm256_loadu_ps(bias + 8));
            }
        } else if (bias) {
            acc[r][0] = _mm256_loadu_ps(bias);
            acc[r][1] = _mm256_loadu_ps(bias + 8);
        } else {
            acc[r][0] = acc[r][1] = _mm256_setzero_ps();
        }
    }
#pragma clang loop unroll_count(4)
    for (size_t k = 0; k < kn; k++) {
        const __m256 b0 = _mm256_loadu_ps(bp), b1 = _mm256_loadu_ps(bp + 8);
        for (int r = 0; r < rows; r++) {
            const __m256 a = _mm256_broadcast_ss(ap + r);
            acc[r][0] = _mm256_fmadd_ps(a, b0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(a, b1, acc[r][1]);
        }
        ap += MR;
        bp += NR;
    }
    for (int r = 0; r < rows; r++) {
        if (mul) {
            acc[r][0] = _mm256_mul_ps(acc[r][0], _mm256_loadu_ps(mul + r * ldm));
            acc[r][1] = _mm256_mul_ps(acc[r][1], _mm256_loadu_ps(mul + r * ldm + 8));
        }
        _mm256_storeu_ps(c + r * ldc, acc[r][0]);
        _mm256_storeu_ps(c + r * ldc + 8, acc[r][1]);
    }
}

static void kernel(int rows, size_t kn, const float *ap, const float *bp, float *c, size_t ldc, int load,
                   const float *bias, const float *mul, size_t ldm) {
    switch (rows) {
    case 1: kernel_rows(1, kn, ap, bp, c, ldc, load, bias, mul, ldm); break;
    case 2: kernel_rows(2, kn, ap, bp, c, ldc, load, bias, mul, ldm); break;
    case 3: kernel_rows(3, kn, ap, bp, c, ldc, load, bias, mul, ldm); break;
    case 4: kernel_rows(4, kn, ap, bp, c, ldc, load, bias, mul, ldm); break;
    case 5: kernel_rows(5, kn, ap, bp, c, ldc, load, bias, mul, ldm); break;
    default: kernel_rows(MR, kn, ap, bp, c, ldc, load, bias, mul, ldm); break;
    }
}

// AVX-512 (run-time choice, lm_quant_isa() == 2): 12 rows × 16 columns from two consecutive
// 6-row A micro-panels and one B panel, one zmm accumulator per row. Each output is the same
// fused-multiply-add chain over k as in kernel_rows, so the results are the same bits as the
// AVX2 path's.
__attribute__((target("avx512f"))) static void kernel12_avx512(size_t kn, const float *ap0, const float *ap1,
                                                              const float *bp, float *c, size_t ldc, int load,
                                                              const float *bias, const float *mul, size_t ldm) {
    __m512 acc[12];
    const __m512 b16 = bias ? _mm512_loadu_ps(bias) : _mm512_setzero_ps();
    for (int r = 0; r < 12; r++) {
        if (load) {
            acc[r] = _mm512_loadu_ps(c + r * ldc);
            if (bias) acc[r] = _mm512_add_ps(acc[r], b16);
        } else {
            acc[r] = b16;
        }
    }
#pragma clang loop unroll_count(2)
    for (size_t k = 0; k < kn; k++) {
        const __m512 b = _mm512_loadu_ps(bp);
        for (int r = 0; r < 6; r++) acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(ap0[r]), b, acc[r]);
        for (int r = 0; r < 6; r++) acc[6 + r] = _mm512_fmadd_ps(_mm512_set1_ps(ap1[r]), b, acc[6 + r]);
        ap0 += MR;
        ap1 += MR;
        bp += NR;
    }
    for (int r = 0; r < 12; r++) {
        if (mul) acc[r] = _mm512_mul_ps(acc[r], _mm512_loadu_ps(mul + r * ldm));
        _mm512_storeu_ps(c + r * ldc, acc[r]);
    }
}

// Rows [i0, i0 + mc) × k [k0, k0 + kc) of A into 6-row micro-panels, k-major (zero rows past mc).
static void pack_a(float *ap, const float *A, size_t lda, size_t i0, size_t mc, size_t k0, size_t kc) {
    for (size_t p = 0; p < mc; p += MR) {
        const size_t rows = mc - p < MR ? mc - p : MR;
        float *dst = ap + p * kc;
        const float *s = A + (i0 + p) * lda + k0;
        size_t k = 0;
        if (rows == MR)
            for (; k + 8 <= kc; k += 8) {  // 6 rows × 8 k → 8 groups of 6, through 4×4 and 2×4 transposes
                const __m256 r0 = _mm256_loadu_ps(s + k), r1 = _mm256_loadu_ps(s + lda + k),
                             r2 = _mm256_loadu_ps(s + 2 * lda + k), r3 = _mm256_loadu_ps(s + 3 * lda + k),
                             r4 = _mm256_loadu_ps(s + 4 * lda + k), r5 = _mm256_loadu_ps(s + 5 * lda + k);
                const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
                const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
                const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
                const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
                const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
                float *d = dst + k * MR;
                const __m128 t4l = _mm256_castps256_ps128(t4), t4h = _mm256_extractf128_ps(t4, 1);
                const __m128 t5l = _mm256_castps256_ps128(t5), t5h = _mm256_extractf128_ps(t5, 1);
                _mm_storeu_ps(d + 0, _mm256_castps256_ps128(u0));    _mm_storel_pi((__m64 *)(d + 4), t4l);
                _mm_storeu_ps(d + 6, _mm256_castps256_ps128(u1));    _mm_storeh_pi((__m64 *)(d + 10), t4l);
                _mm_storeu_ps(d + 12, _mm256_castps256_ps128(u2));   _mm_storel_pi((__m64 *)(d + 16), t5l);
                _mm_storeu_ps(d + 18, _mm256_castps256_ps128(u3));   _mm_storeh_pi((__m64 *)(d + 22), t5l);
                _mm_storeu_ps(d + 24, _mm256_extractf128_ps(u0, 1)); _mm_storel_pi((__m64 *)(d + 28), t4h);
                _mm_storeu_ps(d + 30, _mm256_extractf128_ps(u1, 1)); _mm_storeh_pi((__m64 *)(d + 34), t4h);
                _mm_storeu_ps(d + 36, _mm256_extractf128_ps(u2, 1)); _mm_storel_pi((__m64 *)(d + 40), t5h);
                _mm_storeu_ps(d + 42, _mm256_extractf128_ps(u3, 1)); _mm_storeh_pi((__m64 *)(d + 46), t5h);
            }
        for (; k < kc; k++)
            for (size_t r = 0; r < MR; r++) dst[k * MR + r] = r < rows ? s[r * lda + k] : 0;
    }
}

// B (K, N) rows [k0, k0 + kc) × columns [j0, j0 + nc) into 16-column micro-panels (zero padded).
static void pack_b_kn(float *bp, const float *B, size_t ldb, size_t k0, size_t kc, size_t j0, size_t nc) {
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

// Like pack_b_kn for B stored (N, K): column j of op(B) is row j of B.
static void pack_b_nk(float *bp, const float *B, size_t ldb, size_t k0, size_t kc, size_t j0, size_t nc) {
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

// Eight rows × eight k of an int8 matrix, dequantized (row i times scale[i]) and transposed
// into dst (k-major, stride ldd). Each value is d·q exactly (an 11-bit by 8-bit product).
AI void dequant8x8(float *dst, size_t ldd, const int8_t *q, size_t ldq, const float *scale) {
    __m256 r[8];
    for (int i = 0; i < 8; i++) {
        const __m256i q32 = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(q + i * ldq)));
        r[i] = _mm256_mul_ps(_mm256_cvtepi32_ps(q32), _mm256_set1_ps(scale[i]));
    }
    transpose8x8_regs(dst, ldd, r);
}

// Like pack_b_nk for an int8 matrix (N, ldb) with float16 scales per 32 along k: the weights are
// dequantized as they are packed (k0 and kc multiples of 32).
static void pack_b_q8(float *bp, const int8_t *q, const uint16_t *d, size_t ldb, size_t k0, size_t kc,
                      size_t j0, size_t nc) {
    const size_t nb = ldb / 32;
    for (size_t j = 0; j < nc; j += NR) {
        const size_t cols = nc - j < NR ? nc - j : NR;
        float *dst = bp + j * kc;
        for (size_t b = k0 / 32; b < (k0 + kc) / 32; b++) {
            float scale[NR];
            for (size_t c = 0; c < NR; c++) scale[c] = c < cols ? _cvtsh_ss(d[(j0 + j + c) * nb + b]) : 0;
            const int8_t *src = q + (j0 + j) * ldb + b * 32;
            float *out = dst + (b * 32 - k0) * NR;
            if (cols == NR) {
                for (size_t k = 0; k < 32; k += 8) {
                    dequant8x8(out + k * NR, NR, src + k, ldb, scale);
                    dequant8x8(out + k * NR + 8, NR, src + 8 * ldb + k, ldb, scale + 8);
                }
            } else {
                for (size_t k = 0; k < 32; k++)
                    for (size_t c = 0; c < NR; c++) out[k * NR + c] = c < cols ? scale[c] * (float)src[c * ldb + k] : 0;
            }
        }
    }
}

// Like pack_b_nk for rows of ggml blocks: each of a panel's 16 rows is dequantized over
// [k0, k0 + kc) into `rows` (16 × kc floats; k0 and kc multiples of the block size), then the
// panel is transposed out of it in 8 × 8 blocks. Rows past nc are zero.
static void pack_b_blocks(float *bp, float *rows, int type, const void *w, size_t row_bytes, size_t k0, size_t kc,
                          size_t j0, size_t nc) {
    const size_t skip = k0 / lm_quant_block_elems(type) * lm_quant_block_bytes(type);
    for (size_t j = 0; j < nc; j += NR) {
        const size_t cols = nc - j < NR ? nc - j : NR;
        for (size_t c = 0; c < NR; c++) {
            if (c < cols)
                lm_dequantize(type, (const char *)w + (j0 + j + c) * row_bytes + skip, rows + c * kc, kc);
            else
                memset(rows + c * kc, 0, kc * sizeof(float));
        }
        float *dst = bp + j * kc;
        size_t k = 0;
        for (; k + 8 <= kc; k += 8) {
            transpose8x8(dst + k * NR, NR, rows + k, kc);
            transpose8x8(dst + k * NR + 8, NR, rows + 8 * kc + k, kc);
        }
        for (; k < kc; k++)  // F16 / BF16 rows whose length is not a multiple of 8
            for (size_t c = 0; c < NR; c++) dst[k * NR + c] = rows[c * kc + k];
    }
}

static void pack_b(float *bp, float *rows, const bsource *b, size_t k0, size_t kc, size_t j0, size_t nc) {
    switch (b->kind) {
    case B_KN: pack_b_kn(bp, b->b, b->ldb, k0, kc, j0, nc); break;
    case B_NK: pack_b_nk(bp, b->b, b->ldb, k0, kc, j0, nc); break;
    case B_Q8: pack_b_q8(bp, b->q, b->d, b->ldb, k0, kc, j0, nc); break;
    case B_BLOCKS: pack_b_blocks(bp, rows, b->type, b->w, b->ldb, k0, kc, j0, nc); break;
    }
}

// C[i0..<i1, j0..<j1] (+)= A · op(B) (+ bias) (⊙ mul): BLIS-style loops over packed blocks.
static void blocked(const float *A, size_t lda, const bsource *b, float *C, size_t ldc, size_t i0, size_t i1,
                    size_t j0, size_t j1, size_t K, const float *bias, int accumulate, const float *mul, size_t ldm,
                    size_t kcmax, float *scratch) {
    float *ap = scratch, *bpk = scratch + MC * KC_MAX, *edge = bpk + KC_MAX * NC, *rows = edge + MR * NR;
    const int avx512 = lm_quant_isa() >= 2;
    if (K == 0) {  // C (+)= bias (or 0), times mul
        for (size_t i = i0; i < i1; i++)
            for (size_t j = j0; j < j1; j++) {
                const float v = (accumulate ? C[i * ldc + j] : 0) + (bias ? bias[j] : 0);
                C[i * ldc + j] = v * (mul ? mul[i * ldm + j] : 1);
            }
        return;
    }
    for (size_t jc = j0; jc < j1; jc += NC) {
        const size_t nc = j1 - jc < NC ? j1 - jc : NC;
        for (size_t k0 = 0; k0 < K; k0 += kcmax) {
            const size_t kc = K - k0 < kcmax ? K - k0 : kcmax;
            pack_b(bpk, rows, b, k0, kc, jc, nc);
            const int load = k0 > 0 || accumulate, last = k0 + kc == K;
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
                        if (avx512 && cols == NR && p + 2 * MR <= mc) {  // two full micro-panels at once
                            const float *mp = (mul && last) ? mul + (ic + p) * ldm + jc + j : NULL;
                            kernel12_avx512(kc, ap + p * kc, ap + (p + MR) * kc, bp, C + (ic + p) * ldc + jc + j, ldc,
                                            load, bj, mp, ldm);
                            p += MR;
                            continue;
                        }
                        const int rows = mc - p < MR ? (int)(mc - p) : MR;
                        float *cp = C + (ic + p) * ldc + jc + j;
                        const float *mp = (mul && last) ? mul + (ic + p) * ldm + jc + j : NULL;
                        if (cols == NR) {
                            kernel(rows, kc, ap + p * kc, bp, cp, ldc, load, bj, mp, ldm);
                        } else {  // edge columns through a 6×16 buffer
                            if (load)
                                for (int r = 0; r < rows; r++) memcpy(edge + r * NR, cp + r * ldc, cols * sizeof(float));
                            kernel(rows, kc, ap + p * kc, bp, edge, NR, load, bj, NULL, 0);
                            for (int r = 0; r < rows; r++)
                                for (size_t c = 0; c < cols; c++)
                                    cp[r * ldc + c] = mp ? edge[r * NR + c] * mp[r * ldm + c] : edge[r * NR + c];
                        }
                    }
                }
            }
        }
    }
}

void lm_sgemm(int transB, const float *A, size_t lda, const float *B, size_t ldb, float *C, size_t ldc,
              size_t i0, size_t i1, size_t N, size_t K, const float *bias, const float *mul, size_t ldm,
              float *scratch) {
    const bsource b = {transB ? B_NK : B_KN, B, ldb, NULL, NULL, NULL, 0};
    blocked(A, lda, &b, C, ldc, i0, i1, 0, N, K, bias, 0, mul, ldm, KC, scratch);
}

void lm_sgemm_q8(const float *A, size_t lda, const int8_t *wq, const uint16_t *wd, size_t K, float *C, size_t ldc,
                 size_t M, size_t j0, size_t j1, const float *bias, int accumulate, float *scratch) {
    const bsource b = {B_Q8, NULL, K, wq, wd, NULL, 0};
    blocked(A, lda, &b, C, ldc, 0, M, j0, j1, K, bias, accumulate, NULL, 0, KC, scratch);
}

void lm_sgemm_blocks(const float *A, size_t lda, int type, const void *w, size_t row_bytes, size_t K, float *C,
                     size_t ldc, size_t M, size_t j0, size_t j1, const float *bias, int accumulate, float *scratch) {
    const bsource b = {B_BLOCKS, NULL, row_bytes, NULL, NULL, w, type};
    blocked(A, lda, &b, C, ldc, 0, M, j0, j1, K, bias, accumulate, NULL, 0,
            lm_quant_block_elems(type) > 32 ? KC_MAX : KC, scratch);
}
