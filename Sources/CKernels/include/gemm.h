// swift-lm's own SGEMM, for two jobs:
// - products with a short inner dimension (K ≤ 256, such as a small model's C = 128
//   projections), where OpenBLAS's fixed costs — a separate pass to zero or pre-fill C with the
//   bias, and its packing — weigh more than on large products (measured 6–10 % faster than
//   OpenBLAS's sgemm for 768×{128,384,512}×128 on one Zen 2 core);
// - batched products with int8 (Q8) weights: the weights are dequantized as their panels are
//   packed, so no float copy of the matrix is ever written (`lm-kernel-bench`: 0.96× the time of
//   the float weights through OpenBLAS on GPT-2's 512-row prefill products, 189 against 182
//   GFLOP/s on 2 threads; dequantizing first, then OpenBLAS, took 1.02× that time).
// Row-major; 6×16 AVX2 micro-kernel over packed blocks (BLIS-style loops). Each output is one
// fused-multiply-add chain over k in order, so any split of the rows or columns gives the same bits.
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Floats of scratch one call needs (per thread).
size_t lm_sgemm_scratch_floats(void);

/// C[i0..<i1, 0..<N] = A (M, K) · op(B) (+ bias (N) on every row when bias is not NULL), then
/// ⊙ mul (M, N, row stride ldm) when mul is not NULL (a fused element-wise product, e.g. a
/// GELU derivative). op(B) = B (K, N), or with transB B (N, K) transposed.
/// Rows [i0, i1) only, so threads can take disjoint row ranges. scratch: lm_sgemm_scratch_floats().
void lm_sgemm(int transB, const float *A, size_t lda, const float *B, size_t ldb, float *C, size_t ldc,
              size_t i0, size_t i1, size_t N, size_t K, const float *bias, const float *mul, size_t ldm,
              float *scratch);

/// C[0..<M, j0..<j1] = A (M, K) · dequant(W)ᵀ + bias, or C += … with accumulate != 0 (a fused
/// residual add). W is a Q8 matrix (`q8.h`): wq (N, K) int8, wd (N, K / 32) float16 scales, K a
/// multiple of 32; bias (N) may be NULL. Columns [j0, j1) only, so threads can take disjoint
/// column ranges. scratch: lm_sgemm_scratch_floats().
void lm_sgemm_q8(const float *A, size_t lda, const int8_t *wq, const uint16_t *wd, size_t K, float *C, size_t ldc,
                 size_t M, size_t j0, size_t j1, const float *bias, int accumulate, float *scratch);

/// C[0..<M, j0..<j1] = A (M, K) · dequant(W)ᵀ + bias, or C += … with accumulate != 0, for W
/// stored as rows of ggml blocks (`quant.h`: F16, BF16, Q8_0, Q5_0, Q4_K, Q6_K), `row_bytes`
/// apart. Each panel row is dequantized (lm_dequantize) as the panels are packed, so no float
/// copy of the matrix is written. Columns [j0, j1) only. scratch: lm_sgemm_scratch_floats().
void lm_sgemm_blocks(const float *A, size_t lda, int type, const void *w, size_t row_bytes, size_t K, float *C,
                     size_t ldc, size_t M, size_t j0, size_t j1, const float *bias, int accumulate, float *scratch);

#ifdef __cplusplus
}
#endif
