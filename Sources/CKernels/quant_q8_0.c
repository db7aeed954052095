// Q8_0: 32 weights per 34-byte block, `f16 d; i8 qs[32]`, y[j] = d·qs[j].
#include <immintrin.h>
#include "quant_impl.h"

void lm_deq_q8_0_ref(const void *src, float *dst, size_t n) {
    const lm_block_q8_0 *b = (const lm_block_q8_0 *)src;
    for (size_t i = 0; i < n / LM_QK; i++) {
        const float d = lm_f16_to_f32(lm_rd16(&b[i].d));
        for (int j = 0; j < LM_QK; j++) dst[i * LM_QK + j] = d * (float)b[i].qs[j];
    }
}

#define INLINE static inline __attribute__((always_inline))
#define INLINE512 static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512vl,avx512dq")))

// GEMV plan (both ISAs): per row, Σ_b d_b · (Σ_j qs_j · x_j) with the block's float dot in a vector
// register and one FMA by the broadcast scale per block; four rows share each load of x. The scales
// of 8 (AVX2) or 16 (AVX-512) consecutive blocks are gathered and converted together into a small
// float array first (measured faster than converting each scale where it is used, or a 64k-entry
// table). A row's arithmetic never depends on which other rows share its pass.

// ---- AVX2 ----

INLINE __m256 ld8_i8(const int8_t *q) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)q))); }

INLINE float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// The fp16 scales of m ≤ 8 blocks at stride `stride` bytes from p, as floats in d[0..<8].
INLINE void scales8(const uint8_t *p, size_t stride, size_t m, float *d) {
    const __m256i idx = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32((int)stride));
    const __m256i live = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)m), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256i g = _mm256_mask_i32gather_epi32(_mm256_setzero_si256(), (const int *)(const void *)p, idx, live, 1);
    g = _mm256_and_si256(g, _mm256_set1_epi32(0xFFFF));
    g = _mm256_permute4x64_epi64(_mm256_packus_epi32(g, g), 0x08);
    _mm256_storeu_ps(d, _mm256_cvtph_ps(_mm256_castsi256_si128(g)));
}

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

INLINE512 float hsum16(__m512 v) {
    const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// The fp16 scales of m ≤ 16 blocks at stride `stride` bytes from p, as floats in d[0..<16].
INLINE512 void scales16(const uint8_t *p, size_t stride, size_t m, float *d) {
    const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                           _mm512_set1_epi32((int)stride));
    const __mmask16 live = (__mmask16)(m >= 16 ? 0xFFFF : (1u << m) - 1);
    const __m512i g = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), live, idx, p, 1);
    _mm512_storeu_ps(d, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(g)));
}

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
