// swift-lm's own SGEMM for products with a short inner dimension (K ≤ 256, such as a small
// model's C = 128 projections), where OpenBLAS's fixed costs — a separate pass to zero or
// pre-fill C with the bias, and its packing — weigh more than on large products (measured
// 6–10 % faster than OpenBLAS's sgemm for 768×{128,384,512}×128 on one Zen 2 core).
// Row-major; 6×16 AVX2 micro-kernel over packed blocks (BLIS-style loops). Each output is one
// fused-multiply-add chain over k in order, so any split of the rows gives the same bits.
#pragma once
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Floats of scratch one call needs (per thread).
size_t lm_sgemm_scratch_floats(void);

/// C[i0..<i1, 0..<N] = A (M, K) · op(B) (+ bias (N) on every row when bias is not NULL), then
/// ⊙ mul (M, N, row stride ldm) when mul is not NULL (a fused element-wise product, e.g. a
/// GELU derivative; needs K ≤ 256). op(B) = B (K, N), or with transB B (N, K) transposed.
/// Rows [i0, i1) only, so threads can take disjoint row ranges. scratch: lm_sgemm_scratch_floats().
void lm_sgemm(int transB, const float *A, size_t lda, const float *B, size_t ldb, float *C, size_t ldc,
              size_t i0, size_t i1, size_t N, size_t K, const float *bias, const float *mul, size_t ldm,
              float *scratch);

#ifdef __cplusplus
}
#endif
