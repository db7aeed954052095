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

// Lane k of the result = the full sum of the eight int32 lanes of p_k.
static inline __m256i hsum8_epi32(__m256i p0, __m256i p1, __m256i p2, __m256i p3,
                                  __m256i p4, __m256i p5, __m256i p6, __m256i p7) {
    const __m256i s01 = _mm256_hadd_epi32(p0, p1), s23 = _mm256_hadd_epi32(p2, p3);
    const __m256i s45 = _mm256_hadd_epi32(p4, p5), s67 = _mm256_hadd_epi32(p6, p7);
    const __m256i s0123 = _mm256_hadd_epi32(s01, s23), s4567 = _mm256_hadd_epi32(s45, s67);
    const __m256i lo = _mm256_permute2x128_si256(s0123, s4567, 0x20);
    const __m256i hi = _mm256_permute2x128_si256(s0123, s4567, 0x31);
    return _mm256_add_epi32(lo, hi);
}

#define Q8_DOT(k) dot32(_mm256_loadu_si256((const __m256i *)(x + (k) * LM_Q8_BLOCK)), \
                        _mm256_loadu_si256((const __m256i *)(w + (k) * LM_Q8_BLOCK)))

// One row: groups of eight blocks are reduced to eight integer sums in one vector, which is
// scaled by the eight weight scales × activation scales at once.
static inline float q8_row_dot(const int8_t *wrow, const uint16_t *drow, const int8_t *xq, const float *xd, size_t nb) {
    __m256 acc = _mm256_setzero_ps();
    size_t b = 0;
    for (; b + 8 <= nb; b += 8) {
        const int8_t *w = wrow + b * LM_Q8_BLOCK, *x = xq + b * LM_Q8_BLOCK;
        const __m256i sums = hsum8_epi32(Q8_DOT(0), Q8_DOT(1), Q8_DOT(2), Q8_DOT(3),
                                         Q8_DOT(4), Q8_DOT(5), Q8_DOT(6), Q8_DOT(7));
        const __m256 scales = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(drow + b))),
                                            _mm256_loadu_ps(xd + b));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), scales, acc);
    }
    float total = hsum(acc);
    for (; b < nb; b++) {
        const __m256i p = dot32(_mm256_loadu_si256((const __m256i *)(xq + b * LM_Q8_BLOCK)),
                                _mm256_loadu_si256((const __m256i *)(wrow + b * LM_Q8_BLOCK)));
        __m128i s4 = _mm_add_epi32(_mm256_extracti128_si256(p, 1), _mm256_castsi256_si128(p));
        s4 = _mm_hadd_epi32(s4, s4);
        s4 = _mm_hadd_epi32(s4, s4);
        total += (float)_mm_cvtsi128_si32(s4) * f16(drow[b]) * xd[b];
    }
    return total;
}

void lm_q8_gemv(float *y, const int8_t *wq, const uint16_t *wd, size_t cols, size_t r0, size_t r1,
                const int8_t *xq, const float *xd, const float *bias, int accumulate) {
    const size_t nb = cols / LM_Q8_BLOCK;
    for (size_t r = r0; r < r1; r++) {
        float t = q8_row_dot(wq + r * cols, wd + r * nb, xq, xd, nb) + (bias ? bias[r] : 0.0f);
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
