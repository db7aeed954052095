// Q6_K: 256 weights per 210-byte super-block, `u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d` (d last):
// 6-bit q = 4 low bits from ql, 2 high bits from qh, minus 32; sixteen groups of 16 with an int8 scale.
// y = (d·scale)·q, evaluated left to right in float as ggml's dequantize_row_q6_K (and gguf-py) do.
#include <immintrin.h>
#include "quant_impl.h"
#include "quant_simd.h"

void lm_deq_q6_k_ref(const void *src, float *dst, size_t n) {
    const lm_block_q6_k *b = (const lm_block_q6_k *)src;
    for (size_t i = 0; i < n / LM_QKK; i++) {
        const float d = lm_f16_to_f32(lm_rd16(&b[i].d));
        for (int half = 0; half < 2; half++) {
            const uint8_t *L = b[i].ql + 64 * half, *H = b[i].qh + 32 * half;
            const int8_t *S = b[i].scales + 8 * half;
            float *y = dst + i * LM_QKK + 128 * half;
            for (int l = 0; l < 32; l++) {
                const int is = l / 16;
                const int q1 = ((L[l] & 0xF) | (((H[l] >> 0) & 3) << 4)) - 32;
                const int q2 = ((L[l + 32] & 0xF) | (((H[l] >> 2) & 3) << 4)) - 32;
                const int q3 = ((L[l] >> 4) | (((H[l] >> 4) & 3) << 4)) - 32;
                const int q4 = ((L[l + 32] >> 4) | (((H[l] >> 6) & 3) << 4)) - 32;
                y[l] = d * (float)S[is] * (float)q1;
                y[l + 32] = d * (float)S[is + 2] * (float)q2;
                y[l + 64] = d * (float)S[is + 4] * (float)q3;
                y[l + 96] = d * (float)S[is + 6] * (float)q4;
            }
        }
    }
}


// GEMV plan: with q' = q + 32 ∈ [0, 63] and X_g = Σ x over group g (16 elements, computed once per
// call and shared by all rows), y = Σ_blocks Σ_g (d·S_g) · (Σ_{l∈g} q'_l·x_l − 32·X_g). The 6-bit values
// of half a block are assembled as bytes with whole-register operations, stored to a small buffer and
// reloaded 16 (8) at a time with zero extension; each group's float dot is scaled by one broadcast FMA.
// Element e of a block belongs to group e / 16 — the scale index of the format — so the d·S vector
// and the X vector line up lane by lane. Four rows share each load of x; a row's arithmetic never
// depends on which rows share its pass.

// ---- AVX2 ----

// The 128 values q + 32 of half `h` of block b, as bytes in element order, to t[0..127].
INLINE void half_bytes_avx2(const lm_block_q6_k *b, int h, uint8_t *t) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x30);
    const __m256i la = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h));
    const __m256i lb = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h + 32));
    const __m256i hh = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * h));
    const __m256i q1 = _mm256_or_si256(_mm256_and_si256(la, m4), _mm256_and_si256(_mm256_slli_epi16(hh, 4), m2));
    const __m256i q2 = _mm256_or_si256(_mm256_and_si256(lb, m4), _mm256_and_si256(_mm256_slli_epi16(hh, 2), m2));
    const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(la, 4), m4), _mm256_and_si256(hh, m2));
    const __m256i q4 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(lb, 4), m4),
                                       _mm256_and_si256(_mm256_srli_epi16(hh, 2), m2));
    _mm256_storeu_si256((__m256i *)t, q1);
    _mm256_storeu_si256((__m256i *)(t + 32), q2);
    _mm256_storeu_si256((__m256i *)(t + 64), q3);
    _mm256_storeu_si256((__m256i *)(t + 96), q4);
}

INLINE __m256 ld8_u8(const uint8_t *q) { return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)q))); }

// d·S for the 16 groups of block b, to ds[0..15].
INLINE void block_scales_avx2(const lm_block_q6_k *b, float *ds) {
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(lm_rd16(&b->d)));
    const __m128i s = _mm_loadu_si128((const __m128i *)b->scales);
    _mm256_storeu_ps(ds, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(s))));
    _mm256_storeu_ps(ds + 8, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_unpackhi_epi64(s, s)))));
}

void lm_deq_q6_k_avx2(const void *src, float *dst, size_t n) {
    const lm_block_q6_k *b = (const lm_block_q6_k *)src;
    _Alignas(32) uint8_t t[128];
    const __m256 off = _mm256_set1_ps(32.0f);
    for (size_t i = 0; i < n / LM_QKK; i++) {
        // y = (d·S)·(q' − 32): q' − 32 is exact, and d·S is rounded first, as in the reference.
        float ds[16];
        block_scales_avx2(&b[i], ds);
        for (int h = 0; h < 2; h++) {
            half_bytes_avx2(&b[i], h, t);
            for (int e = 0; e < 128; e += 8)
                _mm256_storeu_ps(dst + i * LM_QKK + 128 * h + e,
                                 _mm256_mul_ps(_mm256_set1_ps(ds[8 * h + e / 16]), _mm256_sub_ps(ld8_u8(t + e), off)));
        }
    }
}

INLINE void rows_avx2(int R, float *y, const uint8_t *w, size_t row_bytes, size_t nsb, size_t r, size_t ahead,
                      const float *x, const float *xs, const float *bias, int accumulate) {
    __m256 acc[4];
    _Alignas(32) uint8_t t[4][128];
    for (int i = 0; i < R; i++) acc[i] = _mm256_setzero_ps();
    for (size_t sb = 0; sb < nsb; sb++) {
        float ds[4][16];
        const __m256 xs0 = _mm256_loadu_ps(xs + 16 * sb), xs1 = _mm256_loadu_ps(xs + 16 * sb + 8);
        for (int i = 0; i < R; i++) {
            const uint8_t *blk = w + (r + i) * row_bytes + sb * 210;
            for (int l = 0; l < 256; l += 64) LM_PREFETCH(blk + l, ahead);
            block_scales_avx2((const lm_block_q6_k *)blk, ds[i]);
            acc[i] = _mm256_fmadd_ps(_mm256_loadu_ps(ds[i]), xs0, acc[i]);
            acc[i] = _mm256_fmadd_ps(_mm256_loadu_ps(ds[i] + 8), xs1, acc[i]);
        }
        for (int h = 0; h < 2; h++) {
            for (int i = 0; i < R; i++) half_bytes_avx2((const lm_block_q6_k *)(w + (r + i) * row_bytes + sb * 210), h, t[i]);
            __asm__ volatile("" ::: "memory");  // reload the bytes 8 at a time (see above)
            for (int g = 0; g < 8; g++) {
                const float *xg = x + sb * LM_QKK + 128 * h + 16 * g;
                const __m256 x0 = _mm256_loadu_ps(xg), x1 = _mm256_loadu_ps(xg + 8);
                for (int i = 0; i < R; i++) {
                    const __m256 s = _mm256_fmadd_ps(ld8_u8(t[i] + 16 * g + 8), x1, _mm256_mul_ps(ld8_u8(t[i] + 16 * g), x0));
                    acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(ds[i][8 * h + g]), s, acc[i]);
                }
            }
        }
    }
    for (int i = 0; i < R; i++) lm_store_out(y, r + i, bias, accumulate, hsum8(acc[i]));
}

// −32 · Σ x over each 16-element group.
static void group_sums_avx2(const float *x, size_t n, float *xs) {
    for (size_t g = 0; g < n / 16; g++)
        xs[g] = -32.0f * hsum8(_mm256_add_ps(_mm256_loadu_ps(x + 16 * g), _mm256_loadu_ps(x + 16 * g + 8)));
}

void lm_gemv_q6_k_avx2(float *y, const uint8_t *w, size_t row_bytes, size_t n, size_t r0, size_t r1,
                       const float *x, const float *bias, int accumulate) {
    const size_t ahead = lm_prefetch_ahead(row_bytes, 4);
    lm_prefetch_start(w + r0 * row_bytes, ahead, (r1 - r0) * row_bytes);
    float xs[LM_MAX_N / 16];
    group_sums_avx2(x, n, xs);
    const size_t nsb = n / LM_QKK;
    size_t r = r0;
    for (; r + 4 <= r1; r += 4) rows_avx2(4, y, w, row_bytes, nsb, r, ahead, x, xs, bias, accumulate);
    for (; r < r1; r++) rows_avx2(1, y, w, row_bytes, nsb, r, ahead, x, xs, bias, accumulate);
}

// ---- AVX-512 ----

// As half_bytes_avx2 with 64-byte registers: [q1 | q2] = (ql & 15) | ([qh << 4 | qh << 2] & 0x30) and
// [q3 | q4] = ((ql >> 4) & 15) | ([qh | qh >> 2] & 0x30), the shifts per 16-bit lane (bits crossing
// into a neighbour byte are masked off).
INLINE512 void half_bytes_avx512(const lm_block_q6_k *b, int h, uint8_t *t) {
    const __m512i m4 = _mm512_set1_epi8(0x0F), m2 = _mm512_set1_epi8(0x30);
    const __m512i l = _mm512_loadu_si512(b->ql + 64 * h);
    const __m512i hh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(b->qh + 32 * h)));
    const __m512i s12 = _mm512_setr_epi64(4, 4, 4, 4, 2, 2, 2, 2);  // 16-bit shift counts: halves 4, 2
    const __m512i s34 = _mm512_setr_epi64(0, 0, 0, 0, 2, 2, 2, 2);
    const __m512i cnt12 = _mm512_or_si512(s12, _mm512_slli_epi64(s12, 16));
    const __m512i cnt34 = _mm512_or_si512(s34, _mm512_slli_epi64(s34, 16));
    const __m512i c12 = _mm512_or_si512(cnt12, _mm512_slli_epi64(cnt12, 32));
    const __m512i c34 = _mm512_or_si512(cnt34, _mm512_slli_epi64(cnt34, 32));
    // select(a, b, 0x30): bits of b where the mask is set, of a elsewhere (a is clear there).
    const __m512i q12 = _mm512_ternarylogic_epi32(_mm512_and_si512(l, m4), _mm512_sllv_epi16(hh, c12), m2, 0xD8);
    const __m512i q34 = _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_srli_epi16(l, 4), m4), _mm512_srlv_epi16(hh, c34), m2, 0xD8);
    _mm512_storeu_si512(t, q12);
    _mm512_storeu_si512(t + 64, q34);
}

INLINE512 __m512 ld16_u8(const uint8_t *q) { return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)q))); }

INLINE512 __m512 block_scales_avx512(const lm_block_q6_k *b) {
    const __m512 d = _mm512_set1_ps(_cvtsh_ss(lm_rd16(&b->d)));
    return _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)b->scales))));
}

LM_AVX512 void lm_deq_q6_k_avx512(const void *src, float *dst, size_t n) {
    const lm_block_q6_k *b = (const lm_block_q6_k *)src;
    _Alignas(64) uint8_t t[128];
    const __m512 off = _mm512_set1_ps(32.0f);
    for (size_t i = 0; i < n / LM_QKK; i++) {
        float ds[16];
        _mm512_storeu_ps(ds, block_scales_avx512(&b[i]));
        for (int h = 0; h < 2; h++) {
            half_bytes_avx512(&b[i], h, t);
            for (int g = 0; g < 8; g++)
                _mm512_storeu_ps(dst + i * LM_QKK + 128 * h + 16 * g,
                                 _mm512_mul_ps(_mm512_set1_ps(ds[8 * h + g]), _mm512_sub_ps(ld16_u8(t + 16 * g), off)));
        }
    }
}

INLINE512 void rows_avx512(int R, float *y, const uint8_t *w, size_t row_bytes, size_t nsb, size_t r, size_t ahead,
                           const float *x, const float *xs, const float *bias, int accumulate) {
    __m512 acc[4];
    _Alignas(64) uint8_t t[4][128];
    for (int i = 0; i < R; i++) acc[i] = _mm512_setzero_ps();
    for (size_t sb = 0; sb < nsb; sb++) {
        float ds[4][16];
        const __m512 xsv = _mm512_loadu_ps(xs + 16 * sb);
        for (int i = 0; i < R; i++) {
            const uint8_t *blk = w + (r + i) * row_bytes + sb * 210;
            for (int l = 0; l < 256; l += 64) LM_PREFETCH(blk + l, ahead);
            const __m512 dsv = block_scales_avx512((const lm_block_q6_k *)blk);
            _mm512_storeu_ps(ds[i], dsv);
            acc[i] = _mm512_fmadd_ps(dsv, xsv, acc[i]);
        }
        for (int h = 0; h < 2; h++) {
            for (int i = 0; i < R; i++) half_bytes_avx512((const lm_block_q6_k *)(w + (r + i) * row_bytes + sb * 210), h, t[i]);
            __asm__ volatile("" ::: "memory");  // reload the bytes 16 at a time (see above)
            for (int g = 0; g < 8; g++) {
                const __m512 xg = _mm512_loadu_ps(x + sb * LM_QKK + 128 * h + 16 * g);
                for (int i = 0; i < R; i++)
                    acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(ds[i][8 * h + g]), _mm512_mul_ps(ld16_u8(t[i] + 16 * g), xg), acc[i]);
            }
        }
    }
    for (int i = 0; i < R; i++) lm_store_out(y, r + i, bias, accumulate, hsum16(acc[i]));
}

LM_AVX512 static void group_sums_avx512(const float *x, size_t n, float *xs) {
    for (size_t g = 0; g < n / 16; g++) {
        const __m256 v = _mm256_add_ps(_mm256_loadu_ps(x + 16 * g), _mm256_loadu_ps(x + 16 * g + 8));
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        s = _mm_add_ss(s, _mm_movehdup_ps(s));
        xs[g] = -32.0f * _mm_cvtss_f32(s);
    }
}

LM_AVX512 void lm_gemv_q6_k_avx512(float *y, const uint8_t *w, size_t row_bytes, size_t n, size_t r0, size_t r1,
                                   const float *x, const float *bias, int accumulate) {
    const size_t ahead = lm_prefetch_ahead(row_bytes, 4);
    lm_prefetch_start(w + r0 * row_bytes, ahead, (r1 - r0) * row_bytes);
    float xs[LM_MAX_N / 16];
    group_sums_avx512(x, n, xs);
    const size_t nsb = n / LM_QKK;
    size_t r = r0;
    for (; r + 4 <= r1; r += 4) rows_avx512(4, y, w, row_bytes, nsb, r, ahead, x, xs, bias, accumulate);
    for (; r < r1; r++) rows_avx512(1, y, w, row_bytes, nsb, r, ahead, x, xs, bias, accumulate);
}
