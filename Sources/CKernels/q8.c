#include "q8.h"
#include <immintrin.h>
#include <math.h>

void lm_q8_quantize_row(const float *x, int8_t *q, float *d, size_t n) {
    const __m256 signBit = _mm256_set1_ps(-0.0f);
    for (size_t b = 0; b < n / LM_Q8_BLOCK; b++) {
        const float *xb = x + b * LM_Q8_BLOCK;
        __m256 v0 = _mm256_loadu_ps(xb), v1 = _mm256_loadu_ps(xb + 8);
        __m256 v2 = _mm256_loadu_ps(xb + 16), v3 = _mm256_loadu_ps(xb + 24);
        __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(signBit, v0), _mm256_andnot_ps(signBit, v1)),
                                 _mm256_max_ps(_mm256_andnot_ps(signBit, v2), _mm256_andnot_ps(signBit, v3)));
        __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float amax = _mm_cvtss_f32(m4);
        const float scale = amax / 127.0f;
        d[b] = scale;
        const __m256 inv = _mm256_set1_ps(scale != 0.0f ? 1.0f / scale : 0.0f);
        __m256i i0 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v0, inv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        __m256i i1 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v1, inv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        __m256i i2 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v2, inv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        __m256i i3 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v3, inv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        // Pack 32-bit → 16-bit → 8-bit; the packs interleave 128-bit lanes, a permute restores order.
        __m256i s01 = _mm256_packs_epi32(i0, i1), s23 = _mm256_packs_epi32(i2, i3);
        __m256i s = _mm256_packs_epi16(s01, s23);
        s = _mm256_permutevar8x32_epi32(s, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)(q + b * LM_Q8_BLOCK), s);
    }
}

// 8 int32 partial sums of a·b over 32 int8 pairs (values in [−127, 127]).
static inline __m256i dot32(__m256i a, __m256i b) {
    const __m256i ax = _mm256_sign_epi8(a, a);
    const __m256i sb = _mm256_sign_epi8(b, a);
    const __m256i p16 = _mm256_maddubs_epi16(ax, sb);
    return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
}

static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float f16(uint16_t h) { return _cvtsh_ss(h); }

void lm_q8_gemv(float *y, const int8_t *wq, const uint16_t *wd, size_t cols, size_t r0, size_t r1,
                const int8_t *xq, const float *xd, const float *bias, int accumulate) {
    const size_t nb = cols / LM_Q8_BLOCK;
    size_t r = r0;
    for (; r + 4 <= r1; r += 4) {
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        const int8_t *w0 = wq + r * cols, *w1 = w0 + cols, *w2 = w1 + cols, *w3 = w2 + cols;
        const uint16_t *d0 = wd + r * nb, *d1 = d0 + nb, *d2 = d1 + nb, *d3 = d2 + nb;
        for (size_t b = 0; b < nb; b++) {
            const __m256i x = _mm256_loadu_si256((const __m256i *)(xq + b * LM_Q8_BLOCK));
            const float s = xd[b];
            a0 = _mm256_fmadd_ps(_mm256_set1_ps(f16(d0[b]) * s), _mm256_cvtepi32_ps(dot32(x, _mm256_loadu_si256((const __m256i *)(w0 + b * LM_Q8_BLOCK)))), a0);
            a1 = _mm256_fmadd_ps(_mm256_set1_ps(f16(d1[b]) * s), _mm256_cvtepi32_ps(dot32(x, _mm256_loadu_si256((const __m256i *)(w1 + b * LM_Q8_BLOCK)))), a1);
            a2 = _mm256_fmadd_ps(_mm256_set1_ps(f16(d2[b]) * s), _mm256_cvtepi32_ps(dot32(x, _mm256_loadu_si256((const __m256i *)(w2 + b * LM_Q8_BLOCK)))), a2);
            a3 = _mm256_fmadd_ps(_mm256_set1_ps(f16(d3[b]) * s), _mm256_cvtepi32_ps(dot32(x, _mm256_loadu_si256((const __m256i *)(w3 + b * LM_Q8_BLOCK)))), a3);
        }
        float v[4] = {hsum(a0), hsum(a1), hsum(a2), hsum(a3)};
        for (int k = 0; k < 4; k++) {
            float t = v[k] + (bias ? bias[r + k] : 0.0f);
            y[r + k] = accumulate ? y[r + k] + t : t;
        }
    }
    for (; r < r1; r++) {
        __m256 a = _mm256_setzero_ps();
        const int8_t *w = wq + r * cols;
        const uint16_t *d = wd + r * nb;
        for (size_t b = 0; b < nb; b++) {
            const __m256i x = _mm256_loadu_si256((const __m256i *)(xq + b * LM_Q8_BLOCK));
            a = _mm256_fmadd_ps(_mm256_set1_ps(f16(d[b]) * xd[b]), _mm256_cvtepi32_ps(dot32(x, _mm256_loadu_si256((const __m256i *)(w + b * LM_Q8_BLOCK)))), a);
        }
        float t = hsum(a) + (bias ? bias[r] : 0.0f);
        y[r] = accumulate ? y[r] + t : t;
    }
}

void lm_q8_dequantize_rows(float *out, size_t ldo, const int8_t *wq, const uint16_t *wd, size_t cols,
                           size_t r0, size_t r1) {
    const size_t nb = cols / LM_Q8_BLOCK;
    for (size_t r = r0; r < r1; r++) {
        float *o = out + (r - r0) * ldo;
        const int8_t *w = wq + r * cols;
        for (size_t b = 0; b < nb; b++) {
            const __m256 d = _mm256_set1_ps(f16(wd[r * nb + b]));
            for (int k = 0; k < 4; k++) {
                const __m128i q8 = _mm_loadl_epi64((const __m128i *)(w + b * LM_Q8_BLOCK + 8 * k));
                const __m256 f = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q8));
                _mm256_storeu_ps(o + b * LM_Q8_BLOCK + 8 * k, _mm256_mul_ps(f, d));
            }
        }
    }
}
