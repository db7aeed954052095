// The type table, run-time ISA choice and dispatch of quant.h. The per-type kernels live in
// quant_<type>.c (see quant_impl.h).
#include "quant.h"
#include "quant_impl.h"

size_t lm_quant_block_elems(int type) {
    switch (type) {
    case LM_TYPE_F32: case LM_TYPE_F16: case LM_TYPE_BF16: return 1;
    case LM_TYPE_Q8_0: case LM_TYPE_Q5_0: return LM_QK;
    case LM_TYPE_Q4_K: case LM_TYPE_Q6_K: return LM_QKK;
    default: return 0;
    }
}

size_t lm_quant_block_bytes(int type) {
    switch (type) {
    case LM_TYPE_F32: return 4;
    case LM_TYPE_F16: case LM_TYPE_BF16: return 2;
    case LM_TYPE_Q8_0: return sizeof(lm_block_q8_0);
    case LM_TYPE_Q5_0: return sizeof(lm_block_q5_0);
    case LM_TYPE_Q4_K: return sizeof(lm_block_q4_k);
    case LM_TYPE_Q6_K: return sizeof(lm_block_q6_k);
    default: return 0;
    }
}

// ---- instruction set ----

static int detect_isa(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        return 2;
    return 1;  // the package is compiled for haswell: AVX2 + FMA + F16C are assumed throughout
}

static int detected_isa = 0;  // 0 = not yet detected
static int current_isa = 0;   // 0 = follow detection

static int cpu_isa(void) {
    int d = __atomic_load_n(&detected_isa, __ATOMIC_RELAXED);
    if (d == 0) {
        d = detect_isa();
        __atomic_store_n(&detected_isa, d, __ATOMIC_RELAXED);
    }
    return d;
}

int lm_quant_isa(void) {
    const int forced = __atomic_load_n(&current_isa, __ATOMIC_RELAXED);
    return forced ? forced : cpu_isa();
}

int lm_quant_set_isa(int isa) {
    const int cpu = cpu_isa();
    const int use = (isa <= 0) ? 0 : (isa >= 2 ? cpu : 1);
    __atomic_store_n(&current_isa, use, __ATOMIC_RELAXED);
    return lm_quant_isa();
}

// ---- reference ----

static void deq_f32(const void *src, float *dst, size_t n) { memcpy(dst, src, n * sizeof(float)); }

void lm_dequantize_ref(int type, const void *src, float *dst, size_t n) {
    switch (type) {
    case LM_TYPE_F32: deq_f32(src, dst, n); break;
    case LM_TYPE_F16: lm_deq_f16_ref(src, dst, n); break;
    case LM_TYPE_BF16: lm_deq_bf16_ref(src, dst, n); break;
    case LM_TYPE_Q8_0: lm_deq_q8_0_ref(src, dst, n); break;
    case LM_TYPE_Q5_0: lm_deq_q5_0_ref(src, dst, n); break;
    case LM_TYPE_Q4_K: lm_deq_q4_k_ref(src, dst, n); break;
    case LM_TYPE_Q6_K: lm_deq_q6_k_ref(src, dst, n); break;
    default: break;
    }
}

double lm_quant_dot_ref(int type, const void *row, const float *x, size_t n) {
    const size_t be = lm_quant_block_elems(type), bb = lm_quant_block_bytes(type);
    if (be == 0) return 0;
    // One chunk of whole blocks at a time through a small buffer.
    enum { CHUNK = 1024 };
    float buf[CHUNK];
    double s = 0;
    const uint8_t *p = (const uint8_t *)row;
    for (size_t k = 0; k < n; k += CHUNK) {
        const size_t m = n - k < CHUNK ? n - k : CHUNK;
        lm_dequantize_ref(type, p + k / be * bb, buf, m);
        for (size_t i = 0; i < m; i++) s += (double)buf[i] * (double)x[k + i];
    }
    return s;
}

// ---- fast paths ----

void lm_dequantize(int type, const void *src, float *dst, size_t n) {
    const int avx512 = lm_quant_isa() >= 2;
    switch (type) {
    case LM_TYPE_F32: deq_f32(src, dst, n); break;
    case LM_TYPE_F16: (avx512 ? lm_deq_f16_avx512 : lm_deq_f16_avx2)(src, dst, n); break;
    case LM_TYPE_BF16: (avx512 ? lm_deq_bf16_avx512 : lm_deq_bf16_avx2)(src, dst, n); break;
    case LM_TYPE_Q8_0: (avx512 ? lm_deq_q8_0_avx512 : lm_deq_q8_0_avx2)(src, dst, n); break;
    case LM_TYPE_Q5_0: (avx512 ? lm_deq_q5_0_avx512 : lm_deq_q5_0_avx2)(src, dst, n); break;
    case LM_TYPE_Q4_K: (avx512 ? lm_deq_q4_k_avx512 : lm_deq_q4_k_avx2)(src, dst, n); break;
    case LM_TYPE_Q6_K: (avx512 ? lm_deq_q6_k_avx512 : lm_deq_q6_k_avx2)(src, dst, n); break;
    default: break;
    }
}

typedef void (*gemv_fn)(float *, const uint8_t *, size_t, size_t, size_t, size_t, const float *, const float *, int);

// F32 rows: four rows at a time, 8-wide accumulators, one fixed order per row.
static void gemv_f32(float *y, const uint8_t *w, size_t row_bytes, size_t n, size_t r0, size_t r1,
                     const float *x, const float *bias, int accumulate) {
    for (size_t r = r0; r < r1; r++) {
        const float *row = (const float *)(const void *)(w + r * row_bytes);
        float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        size_t k = 0;
        for (; k + 8 <= n; k += 8)
            for (int l = 0; l < 8; l++) acc[l] += row[k + l] * x[k + l];
        float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
        for (; k < n; k++) s += row[k] * x[k];
        lm_store_out(y, r, bias, accumulate, s);
    }
}

// Q5_0 / Q4_K / Q6_K rows longer than the kernels' per-call tables of x sums (n > 65536, outside the
// contract): dequantize a chunk at a time and sum in float — slow, but safe and still split-invariant.
static void gemv_long_rows(int type, float *y, const uint8_t *w, size_t row_bytes, size_t n, size_t r0, size_t r1,
                           const float *x, const float *bias, int accumulate) {
    enum { CHUNK = 4096 };
    float buf[CHUNK];
    const size_t be = lm_quant_block_elems(type), bb = lm_quant_block_bytes(type);
    for (size_t r = r0; r < r1; r++) {
        float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (size_t k = 0; k < n; k += CHUNK) {
            const size_t m = n - k < CHUNK ? n - k : CHUNK;
            lm_dequantize(type, w + r * row_bytes + k / be * bb, buf, m);
            for (size_t i = 0; i < m; i++) acc[i & 7] += buf[i] * x[k + i];
        }
        const float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
        lm_store_out(y, r, bias, accumulate, s);
    }
}

void lm_quant_gemv(int type, float *y, const void *w, size_t row_bytes, size_t n, size_t r0, size_t r1,
                   const float *x, const float *bias, int accumulate) {
    if (r1 <= r0) return;
    if (n > LM_MAX_N && (type == LM_TYPE_Q5_0 || type == LM_TYPE_Q4_K || type == LM_TYPE_Q6_K)) {
        gemv_long_rows(type, y, (const uint8_t *)w, row_bytes, n, r0, r1, x, bias, accumulate);
        return;
    }
    const int avx512 = lm_quant_isa() >= 2;
    gemv_fn f = 0;
    switch (type) {
    case LM_TYPE_F32: f = gemv_f32; break;
    case LM_TYPE_F16: f = avx512 ? lm_gemv_f16_avx512 : lm_gemv_f16_avx2; break;
    case LM_TYPE_BF16: f = avx512 ? lm_gemv_bf16_avx512 : lm_gemv_bf16_avx2; break;
    case LM_TYPE_Q8_0: f = avx512 ? lm_gemv_q8_0_avx512 : lm_gemv_q8_0_avx2; break;
    case LM_TYPE_Q5_0: f = avx512 ? lm_gemv_q5_0_avx512 : lm_gemv_q5_0_avx2; break;
    case LM_TYPE_Q4_K: f = avx512 ? lm_gemv_q4_k_avx512 : lm_gemv_q4_k_avx2; break;
    case LM_TYPE_Q6_K: f = avx512 ? lm_gemv_q6_k_avx512 : lm_gemv_q6_k_avx2; break;
    default: return;
    }
    f(y, (const uint8_t *)w, row_bytes, n, r0, r1, x, bias, accumulate);
}
