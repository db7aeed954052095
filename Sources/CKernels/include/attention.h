// Small products of causal self-attention for training (AVX2 + FMA). Per (batch, head) the
// matrices are tiny (T × HS, e.g. 64 × 32), where a BLAS call costs more in packing and call
// overhead than in arithmetic, and half of every T × T product is masked: these kernels skip the
// masked tiles. Columns come in tiles of 16 (HS and T must be multiples of 16); each output is
// one fused-multiply-add chain over k in order, so results never depend on the thread count.
#pragma once
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// S (T, T) = alpha · Q · Kᵀ for the causal part: rows t, columns j < 16·⌈(t + 1)/16⌉ (written
/// in 16-wide tiles; columns past the diagonal inside a tile get values the caller overwrites,
/// columns past the last tile are left alone). q: row t at q + t·ldq (HS floats); kT: (HS, T),
/// Kᵀ (row d holds dimension d of every key).
void lm_attn_scores(float *s, size_t lds, const float *q, size_t ldq, const float *kT,
                    size_t T, size_t HS, float alpha);

/// out (T, HS) (+)= alpha · P · V with P (T, T) lower triangular (zero above the diagonal):
/// row t sums k < t + 1 (rounded up to the row block). v: row j at v + j·ldv.
void lm_attn_lower(float *out, size_t ldo, const float *p, size_t ldp, const float *v, size_t ldv,
                   size_t T, size_t HS, float alpha, int accumulate);

/// out (T, HS) (+)= alpha · Pᵀ · Y with P (T, T) lower triangular: row j sums t ≥ j (from the row
/// block's first row). y: row t at y + t·ldy.
void lm_attn_upper_t(float *out, size_t ldo, const float *p, size_t ldp, const float *y, size_t ldy,
                     size_t T, size_t HS, float alpha, int accumulate);

/// Causal softmax of S (T, T) in place: row t over columns 0...t, zero after.
void lm_attn_softmax(float *s, size_t T);

/// dst (cols, rows) = srcᵀ for a (rows, cols) block with row stride lds (8×8 blocks in
/// registers when rows and cols are multiples of 8).
void lm_transpose(float *dst, const float *src, size_t lds, size_t rows, size_t cols);

#ifdef __cplusplus
}
#endif
