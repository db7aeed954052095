// Q8_0: 32 weights per 34-byte block, `f16 d; i8 qs[32]`, y[j] = d·qs[j].
#include <immintrin.h>
#include "quant_impl.h"
#include "quant_simd.h"

void lm_deq_q8_0_ref(const void *src, float *dst, size_t n) {
    const lm_block_q8_0 *b = (const lm_block_q8_0 *)src;
    for (size_t i = 0; i < n / LM_QK; i++) {
        const float d = lm_f16_to_f32(lm_rd16(&b[i].d));
        for (int j = 0; j < LM_QK; j++) dst[i * LM_QK + j] = d * (float)b[i].qs[j];
    }
}


// GEMV plan (both ISAs): per row, Σ_b d_b · (Σ_j qs_j · x_j) with the block's float dot in a vector
// register and one FMA by the broadcast scale per block; four rows share each load of x. The scales
// of 8 (AVX2) or 16 (AVX-512) consecutive blocks are gathered and converted together into a small
// float array first (measured faster than converting each scale where it is used, or a 64k-entry
// table). A row's arithmetic never depends on which other rows share its pass.

// ---- AVX2 ----

void lm_deq_q8_0_avx2(const void *src, float *dst, size_t n) {
    const lm_block_q8_0 *b = (const lm_block_q8_0 *)src;
    for (size_t i = 0; i < n / LM_QK; i++) {
        const __m256 d = _mm256_set1_ps(_cvtsh_ss(lm_rd16(&b[i].d)));
        for (int j = 0; j < 4; j++) _mm256_storeu_ps(dst + i * LM_QK + 8 * j, _mm256_mul_ps(d, ld8_i8(b[i].qs + 8 * j)));
    }
}

INLINE void rows_avx2(int R, float *y, const uint8_t *w, size_t row_bytes, size_t nb, size_t r, size_t ahead,
                      const float *x, const float *bias, int accumulate) {
    __m256 acc[4];
    for (int i = 0; i < R; i++) acc[i] = _mm256_setzero_ps();
    for (size_t b0 = 0; b0 < nb; b0 += 8) {
        const size_t m = nb - b0 < 8 ? nb - b0 : 8;
        float d[4][8];
        for (int i = 0; i < R; i++) scales8(w + (r + i) * row_bytes + b0 * 34, 34, m, d[i]);
        for (size_t b = 0; b < m; b++) {
            const float *xb = x + (b0 + b) * LM_QK;
            const __m256 x0 = _mm256_loadu_ps(xb), x1 = _mm256_loadu_ps(xb + 8);
            const __m256 x2 = _mm256_loadu_ps(xb + 16), x3 = _mm256_loadu_ps(xb + 24);
            for (int i = 0; i < R; i++) {
                const int8_t *q = (const int8_t *)(w + (r + i) * row_bytes + (b0 + b) * 34 + 2);
                LM_PREFETCH(q, ahead);
                __m256 s = _mm256_mul_ps(ld8_i8(q), x0);
                s = _mm256_fmadd_ps(ld8_i8(q + 8), x1, s);
                s = _mm256_fmadd_ps(ld8_i8(q + 16), x2, s);
                s = _mm256_fmadd_ps(ld8_i8(q + 24), x3, s);
                acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(d[i][b]), s, acc[i]);
            }
        }
    }
    for (int i = 0; i < R; i++) lm_store_out(y, r + i, bias, accumulate, hsum8(acc[i]));
}

void lm_gemv_q8_0_avx2(float *y, const uint8_t *w, size_t row_bytes, size_t n, size_t r0, size_t r1,
                       const float *x, const float *bias, int accumulate) {
    const size_t nb = n / LM_QK, ahead = lm_prefetch_ahead(row_bytes, 4);
    lm_prefetch_start(w + r0 * row_bytes, ahead, (r1 - r0) * row_bytes);
    size_t r = r0;
    for (; r + 4 <= r1; r += 4) rows_avx2(4, y, w, row_bytes, nb, r, ahead, x, bias, accumulate);
    for (; r < r1; r++) rows_avx2(1, y, w, row_bytes, nb, r, ahead, x, bias, accumulate);
}

// ---- AVX-512 ----

INLINE512 __m512 ld16_i8(const int8_t *q) { return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)q))); }

LM_AVX512 void lm_deq_q8_0_avx512(const void *src, float *dst, size_t n) {
    const lm_block_q8_0 *b = (const lm_block_q8_0 *)src;
    for (size_t i = 0; i < n / LM_QK; i++) {
        const __m512 d = _mm512_set1_ps(_cvtsh_ss(lm_rd16(&b[i].d)));
        _mm512_storeu_ps(dst + i * LM_QK, _mm512_mul_ps(d, ld16_i8(b[i].qs)));
        _mm512_storeu_ps(dst + i * LM_QK + 16, _mm512_mul_ps(d, ld16_i8(b[i].qs + 16)));
    }
}

INLINE512 void rows_avx512(int R, float *y, const uint8_t *w, size_t row_bytes, size_t nb, size_t r, size_t ahead,
                           const float *x, const float *bias, int accumulate) {
    __m512 acc[4];
    for (int i = 0; i < R; i++) acc[i] = _mm512_setzero_ps();
    for (size_t b0 = 0; b0 < nb; b0 += 16) {
        const size_t m = nb - b0 < 16 ? nb - b0 : 16;
        float d[4][16];
        for (int i = 0; i < R; i++) scales16(w + (r + i) * row_bytes + b0 * 34, 34, m, d[i]);
        for (size_t b = 0; b < m; b++) {
            const float *xb = x + (b0 + b) * LM_QK;
            const __m512 x0 = _mm512_loadu_ps(xb), x1 = _mm512_loadu_ps(xb + 16);
            for (int i = 0; i < R; i++) {
                const int8_t *q = (const int8_t *)(w + (r + i) * row_bytes + (b0 + b) * 34 + 2);
                LM_PREFETCH(q, ahead);
                __m512 s = _mm512_mul_ps(ld16_i8(q), x0);
                s = _mm512_fmadd_ps(ld16_i8(q + 16), x1, s);
                acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(d[i][b]), s, acc[i]);
            }
        }
    }
    for (int i = 0; i < R; i++) lm_store_out(y, r + i, bias, accumulate, hsum16(acc[i]));
}

LM_AVX512 void lm_gemv_q8_0_avx512(float *y, const uint8_t *w, size_t row_bytes, size_t n, size_t r0, size_t r1,
                                   const float *x, const float *bias, int accumulate) {
    const size_t nb = n / LM_QK, ahead = lm_prefetch_ahead(row_bytes, 4);
    lm_prefetch_start(w + r0 * row_bytes, ahead, (r1 - r0) * row_bytes);
    size_t r = r0;
    for (; r + 4 <= r1; r += 4) rows_avx512(4, y, w, row_bytes, nb, r, ahead, x, bias, accumulate);
    for (; r < r1; r++) rows_avx512(1, y, w, row_bytes, nb, r, ahead, x, bias, accumulate);
}
