// Block-quantized weight types of llama.cpp's GGUF files, computed with float activations.
//
// A matrix is `rows` rows of `n` weights (n = the input dimension, a multiple of the type's block
// size), each row `row_bytes` bytes of consecutive blocks (ggml's layout, the bytes of the file).
// Types are named by their ggml ids. Weights are dequantized exactly as gguf-py / ggml do (fp16
// scales converted to float first); products multiply them with float activations — never with
// activations rounded to 8 bits as llama.cpp's CPU path does — so a product is what the file's
// weights compute, up to float rounding.
//
// Every fast kernel has a plain C reference twin (`_ref`), and the fast dequantizers are
// bit-identical to them. The SIMD paths are chosen at run time: AVX-512 where the CPU has it,
// AVX2 + FMA otherwise (`lm_quant_set_isa` forces one, for tests and benchmarks).
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    LM_TYPE_F32 = 0,
    LM_TYPE_F16 = 1,
    LM_TYPE_Q5_0 = 6,
    LM_TYPE_Q8_0 = 8,
    LM_TYPE_Q4_K = 12,
    LM_TYPE_Q6_K = 14,
    LM_TYPE_BF16 = 30,
};

/// Weights per block and bytes per block of a supported type; 0 for any other id.
size_t lm_quant_block_elems(int type);
size_t lm_quant_block_bytes(int type);

/// dst[0..<n] = the n weights stored in the blocks at src (n a multiple of the block size).
/// Plain scalar C, written from ggml's dequantize_row_* (the reference).
void lm_dequantize_ref(int type, const void *src, float *dst, size_t n);

/// The same, vectorised; bit-identical to lm_dequantize_ref.
void lm_dequantize(int type, const void *src, float *dst, size_t n);

/// y[r] = (accumulate ? y[r] : 0) + (bias ? bias[r] : 0) + Σ_k W[r, k] · x[k] for r in [r0, r1)
/// (decoding: one activation row). Each y[r] is computed the same way whatever [r0, r1) is, so
/// threads may split the rows freely. n ≤ 65536.
void lm_quant_gemv(int type, float *y, const void *w, size_t row_bytes, size_t n, size_t r0, size_t r1,
                   const float *x, const float *bias, int accumulate);

/// Reference twin of one output of lm_quant_gemv: the row dequantized with lm_dequantize_ref,
/// products summed in double.
double lm_quant_dot_ref(int type, const void *row, const float *x, size_t n);

/// The instruction set the fast paths use: 2 = AVX-512 (F, BW, VL, DQ), 1 = AVX2 + FMA + F16C.
int lm_quant_isa(void);
/// Forces an instruction set (1 or 2; 0 = detect). Returns the one in use afterwards (a request
/// the CPU cannot run falls back to what it has).
int lm_quant_set_isa(int isa);

#ifdef __cplusplus
}
#endif
