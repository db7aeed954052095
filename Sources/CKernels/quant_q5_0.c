// Q5_0: 32 weights per 22-byte block, `f16 d; u8 qh[4]; u8 qs[16]`. With h = qh as a little-endian
// u32: y[j] = d·((qs[j] & 15 | bit j of h << 4) − 16), y[j+16] = d·((qs[j] >> 4 | bit j+16 of h << 4) − 16).
#include <immintrin.h>
#include "quant_impl.h"
#include "quant_simd.h"

void lm_deq_q5_0_ref(const void *src, float *dst, size_t n) {
    const lm_block_q5_0 *b = (const lm_block_q5_0 *)src;
    for (size_t i = 0; i < n / LM_QK; i++) {
        const float d = lm_f16_to_f32(lm_rd16(&b[i].d));
        const uint32_t h = lm_rd32(b[i].qh);
        float *y = dst + i * LM_QK;
        for (int j = 0; j < 16; j++) {
            const int lo = (b[i].qs[j] & 0xF) | (int)(((h >> j) & 1) << 4);
            const int hi = (b[i].qs[j] >> 4) | (int)(((h >> (j + 16)) & 1) << 4);
            y[j] = d * (float)(lo - 16);
            y[j + 16] = d * (float)(hi - 16);
        }
    }
}


// GEMV plan: per row Σ_b d_b · (Σ_j q_j · x_j) — the block's float dot in a vector register, one FMA
// by the broadcast scale per block, four rows sharing each load of x; scales of 8 / 16 consecutive
// blocks are gathered and converted together first. A row's arithmetic never depends on which
// other rows share its pass.

// ---- AVX2 ----
// The 32 signed 5-bit values of a block are built as bytes (q − 16 = nibble | (high bit ? 0 : 0xF0)),
// stored to a small buffer and reloaded with sign extension — cheaper than extracting the four
// 8-byte pieces from a register.

// The block's 32 values q − 16 as signed bytes, in element order.
INLINE __m256i block_bytes(const lm_block_q5_0 *b) {
    const __m128i qs = _mm_loadu_si128((const __m128i *)b->qs);
    const __m256i nib = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(qs, 4), qs), _mm256_set1_epi8(0x0F));
    // Byte j = 0xFF when bit j of qh is set: spread qh byte j/8 to byte j, test bit j % 8.
    const __m256i hb = _mm256_shuffle_epi8(_mm256_set1_epi32((int)lm_rd32(b->qh)),
                                           _mm256_setr_epi64x(0, 0x0101010101010101ll, 0x0202020202020202ll, 0x0303030303030303ll));
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(hb, bit), bit);
    return _mm256_or_si256(nib, _mm256_andnot_si256(set, _mm256_set1_epi8((char)0xF0)));
}

void lm_deq_q5_0_avx2(const void *src, float *dst, size_t n) {
    const lm_block_q5_0 *b = (const lm_block_q5_0 *)src;
    int8_t t[32];
    for (size_t i = 0; i < n / LM_QK; i++) {
        const __m256 d = _mm256_set1_ps(_cvtsh_ss(lm_rd16(&b[i].d)));
        _mm256_storeu_si256((__m256i *)t, block_bytes(&b[i]));
        for (int j = 0; j < 4; j++) _mm256_storeu_ps(dst + i * LM_QK + 8 * j, _mm256_mul_ps(d, ld8_i8(t + 8 * j)));
    }
}

INLINE void rows_avx2(int R, float *y, const uint8_t *w, size_t row_bytes, size_t nb, size_t r, size_t ahead,
                      const float *x, const float *bias, int accumulate) {
    __m256 acc[4];
    int8_t t[4][32];
    for (int i = 0; i < R; i++) acc[i] = _mm256_setzero_ps();
    for (size_t b0 = 0; b0 < nb; b0 += 8) {
        const size_t m = nb - b0 < 8 ? nb - b0 : 8;
        float d[4][8];
        for (int i = 0; i < R; i++) scales8(w + (r + i) * row_bytes + b0 * 22, 22, m, d[i]);
        for (size_t b = 0; b < m; b++) {
            const float *xb = x + (b0 + b) * LM_QK;
            for (int i = 0; i < R; i++) {
                const uint8_t *blk = w + (r + i) * row_bytes + (b0 + b) * 22;
                LM_PREFETCH(blk, ahead);
                _mm256_storeu_si256((__m256i *)t[i], block_bytes((const lm_block_q5_0 *)blk));
            }
            __asm__ volatile("" ::: "memory");  // reload t as four 8-byte pieces (see above)
            const __m256 x0 = _mm256_loadu_ps(xb), x1 = _mm256_loadu_ps(xb + 8);
            const __m256 x2 = _mm256_loadu_ps(xb + 16), x3 = _mm256_loadu_ps(xb + 24);
            for (int i = 0; i < R; i++) {
                __m256 s = _mm256_mul_ps(ld8_i8(t[i]), x0);
                s = _mm256_fmadd_ps(ld8_i8(t[i] + 8), x1, s);
                s = _mm256_fmadd_ps(ld8_i8(t[i] + 16), x2, s);
                s = _mm256_fmadd_ps(ld8_i8(t[i] + 24), x3, s);
                acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(d[i][b]), s, acc[i]);
            }
        }
    }
    for (int i = 0; i < R; i++) lm_store_out(y, r + i, bias, accumulate, hsum8(acc[i]));
}

void lm_gemv_q5_0_avx2(float *y, const uint8_t *w, size_t row_bytes, size_t n, size_t r0, size_t r1,
                       const float *x, const float *bias, int accumulate) {
    const size_t nb = n / LM_QK, ahead = lm_prefetch_ahead(row_bytes, 4);
    lm_prefetch_start(w + r0 * row_bytes, ahead, (r1 - r0) * row_bytes);
    size_t r = r0;
    for (; r + 4 <= r1; r += 4) rows_avx2(4, y, w, row_bytes, nb, r, ahead, x, bias, accumulate);
    for (; r < r1; r++) rows_avx2(1, y, w, row_bytes, nb, r, ahead, x, bias, accumulate);
}

// ---- AVX-512 ----
// Lane j of a 16-wide vector holds qs[j] (zero-extended): nibble & 15 is element j, nibble >> 4 is
// element j + 16; the high bit is ORed in as 16. The −16 offset is applied once per 16 blocks through
// a per-call table of −16·Σ_block x (shared by all rows): Σ_j (q_j − 16)·x_j = Σ_j q_j·x_j − 16·Σ_j x_j.

// Elements j and j + 16 of the block (0 ≤ j < 16) as unsigned 5-bit values, as floats. The high bits
// come from qh broadcast to every lane and rotated so that bit j (bit j + 16) lands on bit 4 — cheaper
// here than loading qh into mask registers (measured).
INLINE512 void block16x2(const lm_block_q5_0 *b, __m512 *lo, __m512 *hi) {
    const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)b->qs));
    const __m512i hb = _mm512_broadcastd_epi32(_mm_loadu_si32(b->qh));
    const __m512i j = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i tl = _mm512_rolv_epi32(hb, _mm512_sub_epi32(_mm512_set1_epi32(36), j));  // by (4 − j) mod 32
    const __m512i th = _mm512_rolv_epi32(hb, _mm512_sub_epi32(_mm512_set1_epi32(20), j));  // bit j + 16 → bit 4
    const __m512i sixteen = _mm512_set1_epi32(16);
    // ternary 0xF8: a | (b & c)
    *lo = _mm512_cvtepi32_ps(_mm512_ternarylogic_epi32(_mm512_and_si512(v, _mm512_set1_epi32(15)), tl, sixteen, 0xF8));
    *hi = _mm512_cvtepi32_ps(_mm512_ternarylogic_epi32(_mm512_srli_epi32(v, 4), th, sixteen, 0xF8));
}

LM_AVX512 void lm_deq_q5_0_avx512(const void *src, float *dst, size_t n) {
    const lm_block_q5_0 *b = (const lm_block_q5_0 *)src;
    const __m512 sixteen = _mm512_set1_ps(16.0f);
    for (size_t i = 0; i < n / LM_QK; i++) {
        const __m512 d = _mm512_set1_ps(_cvtsh_ss(lm_rd16(&b[i].d)));
        __m512 lo, hi;
        block16x2(&b[i], &lo, &hi);
        // q − 16 is exact in float, so d·(q − 16) rounds exactly as the reference.
        _mm512_storeu_ps(dst + i * LM_QK, _mm512_mul_ps(d, _mm512_sub_ps(lo, sixteen)));
        _mm512_storeu_ps(dst + i * LM_QK + 16, _mm512_mul_ps(d, _mm512_sub_ps(hi, sixteen)));
    }
}

INLINE512 void rows_avx512(int R, float *y, const uint8_t *w, size_t row_bytes, size_t nb, size_t r, size_t ahead,
                           const float *x, const float *xs, const float *bias, int accumulate) {
    __m512 acc[4], corr[4];
    for (int i = 0; i < R; i++) acc[i] = corr[i] = _mm512_setzero_ps();
    for (size_t b0 = 0; b0 < nb; b0 += 16) {
        const size_t m = nb - b0 < 16 ? nb - b0 : 16;
        float d[4][16];
        const __m512 xsv = _mm512_loadu_ps(xs + b0);  // −16·Σx per block, zero past the end
        for (int i = 0; i < R; i++) {
            scales16(w + (r + i) * row_bytes + b0 * 22, 22, m, d[i]);
            corr[i] = _mm512_fmadd_ps(_mm512_loadu_ps(d[i]), xsv, corr[i]);
        }
        for (size_t b = 0; b < m; b++) {
            const float *xb = x + (b0 + b) * LM_QK;
            const __m512 x0 = _mm512_loadu_ps(xb), x1 = _mm512_loadu_ps(xb + 16);
            for (int i = 0; i < R; i++) {
                __m512 lo, hi;
                const uint8_t *blk = w + (r + i) * row_bytes + (b0 + b) * 22;
                LM_PREFETCH(blk, ahead);
                block16x2((const lm_block_q5_0 *)blk, &lo, &hi);
                const __m512 s = _mm512_fmadd_ps(hi, x1, _mm512_mul_ps(lo, x0));
                acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(d[i][b]), s, acc[i]);
            }
        }
    }
    for (int i = 0; i < R; i++) lm_store_out(y, r + i, bias, accumulate, hsum16(_mm512_add_ps(acc[i], corr[i])));
}

LM_AVX512 void lm_gemv_q5_0_avx512(float *y, const uint8_t *w, size_t row_bytes, size_t n, size_t r0, size_t r1,
                                   const float *x, const float *bias, int accumulate) {
    const size_t ahead = lm_prefetch_ahead(row_bytes, 4);
    lm_prefetch_start(w + r0 * row_bytes, ahead, (r1 - r0) * row_bytes);
    const size_t nb = n / LM_QK;
    float xs[LM_MAX_N / LM_QK + 16];
    for (size_t b = 0; b < nb; b++)
        xs[b] = -16.0f * hsum16(_mm512_add_ps(_mm512_loadu_ps(x + b * LM_QK), _mm512_loadu_ps(x + b * LM_QK + 16)));
    for (size_t b = nb; b < nb + 16; b++) xs[b] = 0;
    size_t r = r0;
    for (; r + 4 <= r1; r += 4) rows_avx512(4, y, w, row_bytes, nb, r, ahead, x, xs, bias, accumulate);
    for (; r < r1; r++) rows_avx512(1, y, w, row_bytes, nb, r, ahead, x, xs, bias, accumulate);
}
