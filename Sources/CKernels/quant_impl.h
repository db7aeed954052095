// Private to quant*.c: the ggml block layouts, scalar helpers and the per-type kernels that
// quant.c dispatches to. Written from the format description in shared/docs/gemma3-gguf.md §2.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <immintrin.h>

// Blocks sit at 34-, 22- and 210-byte strides in a file, so nothing here may assume alignment:
// the structs are packed (alignment 1) and multi-byte fields are read with memcpy.
#define LM_PACKED __attribute__((packed))

typedef struct LM_PACKED { uint16_t d; int8_t qs[32]; } lm_block_q8_0;
typedef struct LM_PACKED { uint16_t d; uint8_t qh[4]; uint8_t qs[16]; } lm_block_q5_0;
typedef struct LM_PACKED { uint16_t d; uint16_t dmin; uint8_t scales[12]; uint8_t qs[128]; } lm_block_q4_k;
typedef struct LM_PACKED { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; } lm_block_q6_k;

_Static_assert(sizeof(lm_block_q8_0) == 34, "Q8_0 block is 34 bytes");
_Static_assert(sizeof(lm_block_q5_0) == 22, "Q5_0 block is 22 bytes");
_Static_assert(sizeof(lm_block_q4_k) == 144, "Q4_K block is 144 bytes");
_Static_assert(sizeof(lm_block_q6_k) == 210, "Q6_K block is 210 bytes");
_Static_assert(offsetof(lm_block_q4_k, qs) == 16, "Q4_K qs at byte 16");
_Static_assert(offsetof(lm_block_q6_k, scales) == 192 && offsetof(lm_block_q6_k, d) == 208, "Q6_K layout");

#define LM_QK 32    // elements per Q8_0 / Q5_0 block
#define LM_QKK 256  // elements per K-quant super-block
#define LM_MAX_N 65536

static inline uint16_t lm_rd16(const void *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t lm_rd32(const void *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline float lm_bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/// IEEE half → float, exact, in plain C. NaNs come out quiet (payload kept, bit 22 set), which is
/// what F16C's vcvtph2ps does, so the reference and the vector paths agree on every bit pattern.
static inline float lm_f16_to_f32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1Fu, man = h & 0x3FFu;
    if (exp == 0x1F) return lm_bits_f32(sign | 0x7F800000u | (man << 13) | (man ? 0x00400000u : 0));
    if (exp != 0) return lm_bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
    const float f = (float)man * 0x1p-24f;  // zero or subnormal: man · 2^-24, exact
    return sign ? -f : f;
}

/// bfloat16 → float: the 16 bits are the top half of the float.
static inline float lm_bf16_to_f32(uint16_t h) { return lm_bits_f32((uint32_t)h << 16); }

/// Q4_K's packed 6-bit scales and mins of sub-block j (get_scale_min_k4).
static inline void lm_q4k_scale_min(int j, const uint8_t *s, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (uint8_t)((s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4));
        *m = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

/// All eight scales (bytes 0..7 of *sc) and mins (*m) of a Q4_K block, with 32-bit word operations:
/// words a = s[0..3], b = s[4..7], c = s[8..11].
static inline void lm_q4k_unpack_scales(const uint8_t *s, uint64_t *sc, uint64_t *m) {
    const uint32_t a = lm_rd32(s), b = lm_rd32(s + 4), c = lm_rd32(s + 8);
    const uint32_t sc_lo = a & 0x3F3F3F3Fu;
    const uint32_t sc_hi = (c & 0x0F0F0F0Fu) | (((a >> 6) & 0x03030303u) << 4);
    const uint32_t m_lo = b & 0x3F3F3F3Fu;
    const uint32_t m_hi = ((c >> 4) & 0x0F0F0F0Fu) | (((b >> 6) & 0x03030303u) << 4);
    *sc = (uint64_t)sc_lo | ((uint64_t)sc_hi << 32);
    *m = (uint64_t)m_lo | ((uint64_t)m_hi << 32);
}

/// Software prefetch for the GEMVs, which stream each weight once. Measured on a KVM Xeon (2 vCPUs):
/// without it a Q8_0 GEMV over DRAM-resident weights reaches half the memory bandwidth, because the
/// hardware prefetchers do not run far enough ahead of a core that computes between loads. A pass
/// over `rows` rows reads blocks at the same offset in each; the line `ahead` bytes past a block is
/// prefetched when the block is read: `rows` whole rows ahead (the next group) when rows are short,
/// else a fixed distance within the row.
#ifndef LM_PF_BYTES
#define LM_PF_BYTES 8192
#endif
static inline size_t lm_prefetch_ahead(size_t row_bytes, size_t rows) {
    const size_t group = row_bytes * rows;
    if (group == 0) return 0;
    if (group <= LM_PF_BYTES) return group * (LM_PF_BYTES / group);
    if (group <= 2 * LM_PF_BYTES) return group;
    return LM_PF_BYTES / rows;
}
/// The first `ahead` bytes of a pass (what the in-loop prefetches skip), prefetched up front.
static inline void lm_prefetch_start(const uint8_t *p, size_t ahead, size_t total) {
    const size_t n = ahead < total ? ahead : total;
    for (size_t o = 0; o < n; o += 64) _mm_prefetch((const char *)(p + o), _MM_HINT_T0);
}
#define LM_PREFETCH(p, ahead) _mm_prefetch((const char *)((uintptr_t)(p) + (ahead)), _MM_HINT_T0)

/// y = (accumulate ? y : 0) + (bias ? bias : 0) + dot, in that order.
static inline void lm_store_out(float *y, size_t r, const float *bias, int accumulate, float dot) {
    float t = accumulate ? y[r] : 0.0f;
    if (bias) t = t + bias[r];
    y[r] = t + dot;
}

// Per-type kernels. `deq_*` dequantize n weights (n a multiple of the block size); `gemv_*` follow
// lm_quant_gemv's contract. Suffix: _ref plain C, _avx2 AVX2+FMA+F16C, _avx512 AVX-512 F/BW/VL/DQ.
#define LM_QUANT_DECLARE(T)                                                                             \
    void lm_deq_##T##_ref(const void *src, float *dst, size_t n);                                      \
    void lm_deq_##T##_avx2(const void *src, float *dst, size_t n);                                     \
    void lm_deq_##T##_avx512(const void *src, float *dst, size_t n);                                   \
    void lm_gemv_##T##_avx2(float *y, const uint8_t *w, size_t row_bytes, size_t n, size_t r0, size_t r1, \
                            const float *x, const float *bias, int accumulate);                         \
    void lm_gemv_##T##_avx512(float *y, const uint8_t *w, size_t row_bytes, size_t n, size_t r0, size_t r1, \
                              const float *x, const float *bias, int accumulate);

LM_QUANT_DECLARE(f16)
LM_QUANT_DECLARE(bf16)
LM_QUANT_DECLARE(q8_0)
LM_QUANT_DECLARE(q5_0)
LM_QUANT_DECLARE(q4_k)
LM_QUANT_DECLARE(q6_k)

#define LM_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))
