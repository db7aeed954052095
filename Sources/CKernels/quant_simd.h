// SIMD helpers shared by the block-type kernels (quant_*.c): private to CKernels.
#pragma once
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

#define INLINE static inline __attribute__((always_inline))
#define INLINE512 static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512vl,avx512dq")))

// ---- AVX2 ----

INLINE float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

INLINE __m256 ld8_i8(const int8_t *q) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)q))); }

// The fp16 scales of m ≤ 8 blocks at stride `stride` bytes from p, as floats in d[0..<8].
INLINE void scales8(const uint8_t *p, size_t stride, size_t m, float *d) {
    const __m256i idx = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32((int)stride));
    const __m256i live = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)m), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256i g = _mm256_mask_i32gather_epi32(_mm256_setzero_si256(), (const int *)(const void *)p, idx, live, 1);
    g = _mm256_and_si256(g, _mm256_set1_epi32(0xFFFF));
    g = _mm256_permute4x64_epi64(_mm256_packus_epi32(g, g), 0x08);
    _mm256_storeu_ps(d, _mm256_cvtph_ps(_mm256_castsi256_si128(g)));
}

// ---- AVX-512 ----

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
