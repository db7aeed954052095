// F16 and BF16 weights: one element per 2 bytes (IEEE half; bfloat16 = the top 16 bits of a float).
#include <immintrin.h>
#include "quant_impl.h"
#include "quant_simd.h"


void lm_deq_f16_ref(const void *src, float *dst, size_t n) {
    const uint8_t *p = (const uint8_t *)src;
    for (size_t i = 0; i < n; i++) dst[i] = lm_f16_to_f32(lm_rd16(p + 2 * i));
}

void lm_deq_bf16_ref(const void *src, float *dst, size_t n) {
    const uint8_t *p = (const uint8_t *)src;
    for (size_t i = 0; i < n; i++) dst[i] = lm_bf16_to_f32(lm_rd16(p + 2 * i));
}

// ---- AVX2 ----

INLINE __m256 ld8_f16(const uint8_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
INLINE __m256 ld8_bf16(const uint8_t *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}

void lm_deq_f16_avx2(const void *src, float *dst, size_t n) {
    const uint8_t *p = (const uint8_t *)src;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, ld8_f16(p + 2 * i));
    for (; i < n; i++) dst[i] = lm_f16_to_f32(lm_rd16(p + 2 * i));
}

void lm_deq_bf16_avx2(const void *src, float *dst, size_t n) {
    const uint8_t *p = (const uint8_t *)src;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, ld8_bf16(p + 2 * i));
    for (; i < n; i++) dst[i] = lm_bf16_to_f32(lm_rd16(p + 2 * i));
}

// R rows from row r; every row's arithmetic is the same whatever R is: two 8-wide accumulators
// (even / odd 8-element steps), then a single 8-step, a fixed-order horizontal sum, a scalar tail.
INLINE void rows_avx2(int bf, int R, float *y, const uint8_t *w, size_t row_bytes, size_t n, size_t r, size_t ahead,
                      const float *x, const float *bias, int accumulate) {
    __m256 a0[4], a1[4];
    for (int i = 0; i < R; i++) a0[i] = a1[i] = _mm256_setzero_ps();
    size_t k = 0;
    for (; k + 16 <= n; k += 16) {
        const __m256 x0 = _mm256_loadu_ps(x + k), x1 = _mm256_loadu_ps(x + k + 8);
        for (int i = 0; i < R; i++) {
            const uint8_t *p = w + (r + i) * row_bytes + 2 * k;
            LM_PREFETCH(p, ahead);
            a0[i] = _mm256_fmadd_ps(bf ? ld8_bf16(p) : ld8_f16(p), x0, a0[i]);
            a1[i] = _mm256_fmadd_ps(bf ? ld8_bf16(p + 16) : ld8_f16(p + 16), x1, a1[i]);
        }
    }
    if (k + 8 <= n) {
        const __m256 x0 = _mm256_loadu_ps(x + k);
        for (int i = 0; i < R; i++) {
            const uint8_t *p = w + (r + i) * row_bytes + 2 * k;
            a0[i] = _mm256_fmadd_ps(bf ? ld8_bf16(p) : ld8_f16(p), x0, a0[i]);
        }
        k += 8;
    }
    for (int i = 0; i < R; i++) {
        float s = hsum8(_mm256_add_ps(a0[i], a1[i]));
        const uint8_t *p = w + (r + i) * row_bytes;
        for (size_t j = k; j < n; j++) {
            const uint16_t h = lm_rd16(p + 2 * j);
            s += (bf ? lm_bf16_to_f32(h) : lm_f16_to_f32(h)) * x[j];
        }
        lm_store_out(y, r + i, bias, accumulate, s);
    }
}

static void gemv_avx2(int bf, float *y, const uint8_t *w, size_t row_bytes, size_t n, size_t r0, size_t r1,
                      const float *x, const float *bias, int accumulate) {
    const size_t ahead = lm_prefetch_ahead(row_bytes, 4);
    lm_prefetch_start(w + r0 * row_bytes, ahead, (r1 - r0) * row_bytes);
    size_t r = r0;
    if (bf) {
        for (; r + 4 <= r1; r += 4) rows_avx2(1, 4, y, w, row_bytes, n, r, ahead, x, bias, accumulate);
        for (; r < r1; r++) rows_avx2(1, 1, y, w, row_bytes, n, r, ahead, x, bias, accumulate);
    } else {
        for (; r + 4 <= r1; r += 4) rows_avx2(0, 4, y, w, row_bytes, n, r, ahead, x, bias, accumulate);
        for (; r < r1; r++) rows_avx2(0, 1, y, w, row_bytes, n, r, ahead, x, bias, accumulate);
    }
}

void lm_gemv_f16_avx2(float *y, const uint8_t *w, size_t row_bytes, size_t n, size_t r0, size_t r1,
                      const float *x, const float *bias, int accumulate) {
    gemv_avx2(0, y, w, row_bytes, n, r0, r1, x, bias, accumulate);
}

void lm_gemv_bf16_avx2(float *y, const uint8_t *w, size_t row_bytes, size_t n, size_t r0, size_t r1,
                       const float *x, const float *bias, int accumulate) {
    gemv_avx2(1, y, w, row_bytes, n, r0, r1, x, bias, accumulate);
}

// ---- AVX-512 ----


INLINE512 __m512 ld16_f16(const uint8_t *p, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}
INLINE512 __m512 ld16_bf16(const uint8_t *p, __mmask16 m) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
}

LM_AVX512 void lm_deq_f16_avx512(const void *src, float *dst, size_t n) {
    const uint8_t *p = (const uint8_t *)src;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, ld16_f16(p + 2 * i, 0xFFFF));
    if (i < n) {
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(dst + i, m, ld16_f16(p + 2 * i, m));
    }
}

LM_AVX512 void lm_deq_bf16_avx512(const void *src, float *dst, size_t n) {
    const uint8_t *p = (const uint8_t *)src;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, ld16_bf16(p + 2 * i, 0xFFFF));
    if (i < n) {
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(dst + i, m, ld16_bf16(p + 2 * i, m));
    }
}

// As rows_avx2 with 16-wide vectors; the tail is one masked step.
INLINE512 void rows_avx512(int bf, int R, float *y, const uint8_t *w, size_t row_bytes, size_t n, size_t r, size_t ahead,
                           const float *x, const float *bias, int accumulate) {
    __m512 a0[4], a1[4];
    for (int i = 0; i < R; i++) a0[i] = a1[i] = _mm512_setzero_ps();
    size_t k = 0;
    for (; k + 32 <= n; k += 32) {
        const __m512 x0 = _mm512_loadu_ps(x + k), x1 = _mm512_loadu_ps(x + k + 16);
        for (int i = 0; i < R; i++) {
            const uint8_t *p = w + (r + i) * row_bytes + 2 * k;
            LM_PREFETCH(p, ahead);
            a0[i] = _mm512_fmadd_ps(bf ? ld16_bf16(p, 0xFFFF) : ld16_f16(p, 0xFFFF), x0, a0[i]);
            a1[i] = _mm512_fmadd_ps(bf ? ld16_bf16(p + 32, 0xFFFF) : ld16_f16(p + 32, 0xFFFF), x1, a1[i]);
        }
    }
    for (; k < n; k += 16) {
        const __mmask16 m = n - k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - k)) - 1);
        const __m512 x0 = _mm512_maskz_loadu_ps(m, x + k);
        for (int i = 0; i < R; i++) {
            const uint8_t *p = w + (r + i) * row_bytes + 2 * k;
            a0[i] = _mm512_fmadd_ps(bf ? ld16_bf16(p, m) : ld16_f16(p, m), x0, a0[i]);
        }
    }
    for (int i = 0; i < R; i++) lm_store_out(y, r + i, bias, accumulate, hsum16(_mm512_add_ps(a0[i], a1[i])));
}

LM_AVX512 static void gemv_avx512(int bf, float *y, const uint8_t *w, size_t row_bytes, size_t n, size_t r0,
                                  size_t r1, const float *x, const float *bias, int accumulate) {
    const size_t ahead = lm_prefetch_ahead(row_bytes, 4);
    lm_prefetch_start(w + r0 * row_bytes, ahead, (r1 - r0) * row_bytes);
    size_t r = r0;
    if (bf) {
        for (; r + 4 <= r1; r += 4) rows_avx512(1, 4, y, w, row_bytes, n, r, ahead, x, bias, accumulate);
        for (; r < r1; r++) rows_avx512(1, 1, y, w, row_bytes, n, r, ahead, x, bias, accumulate);
    } else {
        for (; r + 4 <= r1; r += 4) rows_avx512(0, 4, y, w, row_bytes, n, r, ahead, x, bias, accumulate);
        for (; r < r1; r++) rows_avx512(0, 1, y, w, row_bytes, n, r, ahead, x, bias, accumulate);
    }
}

LM_AVX512 void lm_gemv_f16_avx512(float *y, const uint8_t *w, size_t row_bytes, size_t n, size_t r0, size_t r1,
                                  const float *x, const float *bias, int accumulate) {
    gemv_avx512(0, y, w, row_bytes, n, r0, r1, x, bias, accumulate);
}

LM_AVX512 void lm_gemv_bf16_avx512(float *y, const uint8_t *w, size_t row_bytes, size_t n, size_t r0, size_t r1,
                                   const float *x, const float *bias, int accumulate) {
    gemv_avx512(1, y, w, row_bytes, n, r0, r1, x, bias, accumulate);
}
