// int8 block kernels (AVX2): the Q8 format of swift-lm's quantized models.
//
// A quantized matrix has `rows` rows of `cols` weights, `cols` a multiple of 32. Each row is
// cut into blocks of 32 along the input dimension; a block stores 32 int8 values q and one
// float16 scale d, with weight ≈ d · q and q in [−127, 127] (symmetric, like llama.cpp's Q8_0).
// Activations are quantized the same way on the fly, with float32 scales.
//
// These are C because Swift's SIMD types on Linux scalarise the int8 widening multiply-adds and
// the float↔int conversions these loops are made of (measured: see README, "Quantization").
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LM_Q8_BLOCK 32

/// Quantizes n floats (n a multiple of 32) to q (n int8) and d (n/32 float scales), rounding to nearest even.
void lm_q8_quantize_row(const float *x, int8_t *q, float *d, size_t n);

/// y[r] = bias[r] + Σ_b wd[r,b]·xd[b]·Σ_i wq[r, 32b+i]·xq[32b+i] for r in [r0, r1). bias may be NULL;
/// with accumulate != 0, y[r] += … instead.
void lm_q8_gemv(float *y, const int8_t *wq, const uint16_t *wd, size_t cols, size_t r0, size_t r1,
                const int8_t *xq, const float *xd, const float *bias, int accumulate);

/// out (rows × cols floats, row stride ldo) = the dequantized rows [r0, r1) of a matrix.
void lm_q8_dequantize_rows(float *out, size_t ldo, const int8_t *wq, const uint16_t *wd, size_t cols,
                           size_t r0, size_t r1);

#ifdef __cplusplus
}
#endif
