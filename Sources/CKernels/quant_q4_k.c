// Q4_K: 256 weights per 144-byte super-block, `f16 d; f16 dmin; u8 scales[12]; u8 qs[128]`: eight
// sub-blocks of 32 with 6-bit scale sc_j and min m_j; y = (d·sc_j)·q − (dmin·m_j), q a 4-bit nibble.
#include <immintrin.h>
#include "quant_impl.h"
#include "quant_simd.h"

void lm_deq_q4_k_ref(const void *src, float *dst, size_t n) {
    const lm_block_q4_k *b = (const lm_block_q4_k *)src;
    for (size_t i = 0; i < n / LM_QKK; i++) {
        const float d = lm_f16_to_f32(lm_rd16(&b[i].d));
        const float dmin = lm_f16_to_f32(lm_rd16(&b[i].dmin));
        const uint8_t *q = b[i].qs;
        float *y = dst + i * LM_QKK;
        for (int c = 0; c < 4; c++) {
            uint8_t sc, m;
            lm_q4k_scale_min(2 * c, b[i].scales, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            lm_q4k_scale_min(2 * c + 1, b[i].scales, &sc, &m);
            const float d2 = d * (float)sc, m2 = dmin * (float)m;
            for (int l = 0; l < 32; l++) y[64 * c + l] = d1 * (float)(q[32 * c + l] & 0xF) - m1;
            for (int l = 0; l < 32; l++) y[64 * c + 32 + l] = d2 * (float)(q[32 * c + l] >> 4) - m2;
        }
    }
}


// GEMV plan: y = Σ_blocks [ Σ_j (d·sc_j) · Σ_l q_l·x_l  −  Σ_j (dmin·m_j) · X_j ], where X_j = Σ x over
// sub-block j is computed once per call (shared by all rows). The nibble dot of each sub-block stays
// in a vector register and is scaled by one broadcast FMA; the min term is an 8-lane FMA per block.
// Four rows share each load of x; a row's arithmetic never depends on which rows share its pass.

// The 8 scales and mins of block b as floats, times d and dmin: ds[0..7], returned dm.
INLINE __m256 block_scales(const lm_block_q4_k *b, float *ds) {
    uint64_t sc, m;
    lm_q4k_unpack_scales(b->scales, &sc, &m);
    const __m128 dd = _mm_cvtph_ps(_mm_cvtsi32_si128((int)lm_rd32(b)));  // d, dmin
    const __m256 scf = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)sc)));
    const __m256 mf = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)m)));
    _mm256_storeu_ps(ds, _mm256_mul_ps(_mm256_broadcastss_ps(dd), scf));
    return _mm256_mul_ps(_mm256_broadcastss_ps(_mm_movehdup_ps(dd)), mf);
}

// ---- AVX2 ----

INLINE __m256i ld8_u8(const uint8_t *q) { return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)q)); }

void lm_deq_q4_k_avx2(const void *src, float *dst, size_t n) {
    const lm_block_q4_k *b = (const lm_block_q4_k *)src;
    const __m256i low = _mm256_set1_epi32(15);
    for (size_t i = 0; i < n / LM_QKK; i++) {
        float ds[8];
        float dm[8];
        _mm256_storeu_ps(dm, block_scales(&b[i], ds));
        float *y = dst + i * LM_QKK;
        for (int c = 0; c < 4; c++) {
            const __m256 d1 = _mm256_set1_ps(ds[2 * c]), m1 = _mm256_set1_ps(dm[2 * c]);
            const __m256 d2 = _mm256_set1_ps(ds[2 * c + 1]), m2 = _mm256_set1_ps(dm[2 * c + 1]);
            for (int l = 0; l < 32; l += 8) {
                const __m256i v = ld8_u8(b[i].qs + 32 * c + l);
                const __m256 lo = _mm256_cvtepi32_ps(_mm256_and_si256(v, low));
                const __m256 hi = _mm256_cvtepi32_ps(_mm256_srli_epi32(v, 4));
                _mm256_storeu_ps(y + 64 * c + l, _mm256_sub_ps(_mm256_mul_ps(d1, lo), m1));
                _mm256_storeu_ps(y + 64 * c + 32 + l, _mm256_sub_ps(_mm256_mul_ps(d2, hi), m2));
            }
        }
    }
}

INLINE void rows_avx2(int R, float *y, const uint8_t *w, size_t row_bytes, size_t nsb, size_t r, size_t ahead,
                      const float *x, const float *xs, const float *bias, int accumulate) {
    __m256 acc[4], accm[4];
    const __m256i low = _mm256_set1_epi32(15);
    for (int i = 0; i < R; i++) acc[i] = accm[i] = _mm256_setzero_ps();
    for (size_t sb = 0; sb < nsb; sb++) {
        float ds[4][8];
        const __m256 xsv = _mm256_loadu_ps(xs + 8 * sb);
        for (int i = 0; i < R; i++) {
            const uint8_t *blk = w + (r + i) * row_bytes + sb * 144;
            LM_PREFETCH(blk, ahead);
            LM_PREFETCH(blk + 64, ahead);
            LM_PREFETCH(blk + 128, ahead);
            const __m256 dm = block_scales((const lm_block_q4_k *)blk, ds[i]);
            accm[i] = _mm256_fmadd_ps(dm, xsv, accm[i]);
        }
        for (int c = 0; c < 4; c++) {
            const float *xa = x + sb * LM_QKK + 64 * c, *xb = xa + 32;
            for (int i = 0; i < R; i++) {
                const uint8_t *q = w + (r + i) * row_bytes + sb * 144 + 16 + 32 * c;
                __m256 sa = _mm256_setzero_ps(), sbv = _mm256_setzero_ps();
                for (int l = 0; l < 32; l += 8) {
                    const __m256i v = ld8_u8(q + l);
                    const __m256 lo = _mm256_cvtepi32_ps(_mm256_and_si256(v, low));
                    const __m256 hi = _mm256_cvtepi32_ps(_mm256_srli_epi32(v, 4));
                    if (l == 0) {
                        sa = _mm256_mul_ps(lo, _mm256_loadu_ps(xa));
                        sbv = _mm256_mul_ps(hi, _mm256_loadu_ps(xb));
                    } else {
                        sa = _mm256_fmadd_ps(lo, _mm256_loadu_ps(xa + l), sa);
                        sbv = _mm256_fmadd_ps(hi, _mm256_loadu_ps(xb + l), sbv);
                    }
                }
                acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(ds[i][2 * c]), sa, acc[i]);
                acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(ds[i][2 * c + 1]), sbv, acc[i]);
            }
        }
    }
    for (int i = 0; i < R; i++) lm_store_out(y, r + i, bias, accumulate, hsum8(acc[i]) - hsum8(accm[i]));
}

// Σ x over each 32-element sub-block (fixed order: 8-wide partial sums, then a horizontal sum).
static void subblock_sums_avx2(const float *x, size_t n, float *xs) {
    for (size_t j = 0; j < n / 32; j++) {
        const float *p = x + 32 * j;
        xs[j] = hsum8(_mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)),
                                    _mm256_add_ps(_mm256_loadu_ps(p + 16), _mm256_loadu_ps(p + 24))));
    }
}

void lm_gemv_q4_k_avx2(float *y, const uint8_t *w, size_t row_bytes, size_t n, size_t r0, size_t r1,
                       const float *x, const float *bias, int accumulate) {
    const size_t ahead = lm_prefetch_ahead(row_bytes, 4);
    lm_prefetch_start(w + r0 * row_bytes, ahead, (r1 - r0) * row_bytes);
    float xs[LM_MAX_N / 32];
    subblock_sums_avx2(x, n, xs);
    const size_t nsb = n / LM_QKK;
    size_t r = r0;
    for (; r + 4 <= r1; r += 4) rows_avx2(4, y, w, row_bytes, nsb, r, ahead, x, xs, bias, accumulate);
    for (; r < r1; r++) rows_avx2(1, y, w, row_bytes, nsb, r, ahead, x, xs, bias, accumulate);
}

// ---- AVX-512 ----

INLINE512 float hsum8_512(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

LM_AVX512 void lm_deq_q4_k_avx512(const void *src, float *dst, size_t n) {
    const lm_block_q4_k *b = (const lm_block_q4_k *)src;
    const __m512i low = _mm512_set1_epi32(15);
    for (size_t i = 0; i < n / LM_QKK; i++) {
        float ds[8];
        float dm[8];
        _mm256_storeu_ps(dm, block_scales(&b[i], ds));
        float *y = dst + i * LM_QKK;
        for (int c = 0; c < 4; c++) {
            const __m512 d1 = _mm512_set1_ps(ds[2 * c]), m1 = _mm512_set1_ps(dm[2 * c]);
            const __m512 d2 = _mm512_set1_ps(ds[2 * c + 1]), m2 = _mm512_set1_ps(dm[2 * c + 1]);
            for (int l = 0; l < 32; l += 16) {
                const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(b[i].qs + 32 * c + l)));
                const __m512 lo = _mm512_cvtepi32_ps(_mm512_and_si512(v, low));
                const __m512 hi = _mm512_cvtepi32_ps(_mm512_srli_epi32(v, 4));
                _mm512_storeu_ps(y + 64 * c + l, _mm512_sub_ps(_mm512_mul_ps(d1, lo), m1));
                _mm512_storeu_ps(y + 64 * c + 32 + l, _mm512_sub_ps(_mm512_mul_ps(d2, hi), m2));
            }
        }
    }
}

INLINE512 void rows_avx512(int R, float *y, const uint8_t *w, size_t row_bytes, size_t nsb, size_t r, size_t ahead,
                           const float *x, const float *xs, const float *bias, int accumulate) {
    __m512 acc[4];
    __m256 accm[4];
    const __m512i low = _mm512_set1_epi32(15);
    for (int i = 0; i < R; i++) {
        acc[i] = _mm512_setzero_ps();
        accm[i] = _mm256_setzero_ps();
    }
    for (size_t sb = 0; sb < nsb; sb++) {
        float ds[4][8];
        const __m256 xsv = _mm256_loadu_ps(xs + 8 * sb);
        for (int i = 0; i < R; i++) {
            const uint8_t *blk = w + (r + i) * row_bytes + sb * 144;
            LM_PREFETCH(blk, ahead);
            LM_PREFETCH(blk + 64, ahead);
            LM_PREFETCH(blk + 128, ahead);
            const __m256 dm = block_scales((const lm_block_q4_k *)blk, ds[i]);
            accm[i] = _mm256_fmadd_ps(dm, xsv, accm[i]);
        }
        for (int c = 0; c < 4; c++) {
            const float *xa = x + sb * LM_QKK + 64 * c;
            const __m512 xa0 = _mm512_loadu_ps(xa), xa1 = _mm512_loadu_ps(xa + 16);
            const __m512 xb0 = _mm512_loadu_ps(xa + 32), xb1 = _mm512_loadu_ps(xa + 48);
            for (int i = 0; i < R; i++) {
                const uint8_t *q = w + (r + i) * row_bytes + sb * 144 + 16 + 32 * c;
                const __m512i v0 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)q));
                const __m512i v1 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(q + 16)));
                __m512 sa = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_and_si512(v0, low)), xa0);
                sa = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_and_si512(v1, low)), xa1, sa);
                __m512 sbv = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(v0, 4)), xb0);
                sbv = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(v1, 4)), xb1, sbv);
                acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(ds[i][2 * c]), sa, acc[i]);
                acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(ds[i][2 * c + 1]), sbv, acc[i]);
            }
        }
    }
    for (int i = 0; i < R; i++) lm_store_out(y, r + i, bias, accumulate, hsum16(acc[i]) - hsum8_512(accm[i]));
}

LM_AVX512 static void subblock_sums_avx512(const float *x, size_t n, float *xs) {
    for (size_t j = 0; j < n / 32; j++)
        xs[j] = hsum16(_mm512_add_ps(_mm512_loadu_ps(x + 32 * j), _mm512_loadu_ps(x + 32 * j + 16)));
}

LM_AVX512 void lm_gemv_q4_k_avx512(float *y, const uint8_t *w, size_t row_bytes, size_t n, size_t r0, size_t r1,
                                   const float *x, const float *bias, int accumulate) {
    const size_t ahead = lm_prefetch_ahead(row_bytes, 4);
    lm_prefetch_start(w + r0 * row_bytes, ahead, (r1 - r0) * row_bytes);
    float xs[LM_MAX_N / 32];
    subblock_sums_avx512(x, n, xs);
    const size_t nsb = n / LM_QKK;
    size_t r = r0;
    for (; r + 4 <= r1; r += 4) rows_avx512(4, y, w, row_bytes, nsb, r, ahead, x, xs, bias, accumulate);
    for (; r < r1; r++) rows_avx512(1, y, w, row_bytes, nsb, r, ahead, x, xs, bias, accumulate);
}
