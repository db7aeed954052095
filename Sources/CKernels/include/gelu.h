// GELU activations, element-wise (AVX2 + FMA). Swift's float→int bit tricks and selects in
// these loops compiled to scalar code on Linux (measured: GELU was 7.6 % of a GPT-2-124M prefill);
// the same operations in C vectorise 8 wide. Every operation matches LMCore's scalar helpers
// (`VectorMath.exp`, `geluTanhWithDerivative`, `geluErfWithDerivative`) one for one, fused
// multiply-adds included, so results are bit-identical to them (checked in GELUTests).
#pragma once
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// out[i] = gelu(inp[i]) for i in [lo, hi), tanh form (GPT-2 `gelu_new`). out may equal inp.
void lm_gelu_tanh(float *out, const float *inp, size_t lo, size_t hi);

/// out[i] = gelu(inp[i]) for i in [lo, hi), erf form (BERT `gelu`). out may equal inp.
void lm_gelu_erf(float *out, const float *inp, size_t lo, size_t hi);

/// out[i] = gelu(inp[i]) and deriv[i] = gelu′(inp[i]); erf != 0 selects the erf form.
/// out or deriv may equal inp.
void lm_gelu_saving(float *out, float *deriv, const float *inp, size_t lo, size_t hi, int erf);

#ifdef __cplusplus
}
#endif
