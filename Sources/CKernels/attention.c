#include "attention.h"
#include <immintrin.h>
#include "lm_exp.h"
#include "lm_transpose8.h"

#define NR 16

// C (mr, 16) (+)= alpha · Σ_k A[r][k] · B[k][0..<16] for k in [0, kn): A[r][k] at a + r·sa_i + k·sa_k,
// B row k at b + k·ldb. mr is a literal at every call site, so each is specialised.
static inline __attribute__((always_inline)) void tile(int mr, const float *a, size_t sa_i, size_t sa_k,
                                                       const float *b, size_t ldb, float *c, size_t ldc,
                                                       size_t kn, float alpha, int accumulate) {
    __m256 acc[6][2];
    for (int r = 0; r < mr; r++) { acc[r][0] = _mm256_setzero_ps(); acc[r][1] = _mm256_setzero_ps(); }
    for (size_t k = 0; k < kn; k++) {
        const __m256 b0 = _mm256_loadu_ps(b + k * ldb), b1 = _mm256_loadu_ps(b + k * ldb + 8);
        for (int r = 0; r < mr; r++) {
            const __m256 av = _mm256_broadcast_ss(a + r * sa_i + k * sa_k);
            acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
        }
    }
    const __m256 al = _mm256_set1_ps(alpha);
    for (int r = 0; r < mr; r++) {
        float *o = c + r * ldc;
        __m256 v0 = _mm256_mul_ps(acc[r][0], al), v1 = _mm256_mul_ps(acc[r][1], al);
        if (accumulate) { v0 = _mm256_add_ps(_mm256_loadu_ps(o), v0); v1 = _mm256_add_ps(_mm256_loadu_ps(o + 8), v1); }
        _mm256_storeu_ps(o, v0);
        _mm256_storeu_ps(o + 8, v1);
    }
}

// Dispatches a row block of mr ≤ 6 rows to a specialised tile.
static inline void tile_rows(size_t mr, const float *a, size_t sa_i, size_t sa_k, const float *b, size_t ldb,
                             float *c, size_t ldc, size_t kn, float alpha, int accumulate) {
    switch (mr) {
    case 6: tile(6, a, sa_i, sa_k, b, ldb, c, ldc, kn, alpha, accumulate); break;
    case 5: tile(5, a, sa_i, sa_k, b, ldb, c, ldc, kn, alpha, accumulate); break;
    case 4: tile(4, a, sa_i, sa_k, b, ldb, c, ldc, kn, alpha, accumulate); break;
    case 3: tile(3, a, sa_i, sa_k, b, ldb, c, ldc, kn, alpha, accumulate); break;
    case 2: tile(2, a, sa_i, sa_k, b, ldb, c, ldc, kn, alpha, accumulate); break;
    default: tile(1, a, sa_i, sa_k, b, ldb, c, ldc, kn, alpha, accumulate); break;
    }
}

#define MR 6

void lm_attn_scores(float *s, size_t lds, const float *q, size_t ldq, const float *kT,
                    size_t T, size_t HS, float alpha) {
    for (size_t t0 = 0; t0 < T; t0 += MR) {
        const size_t mr = T - t0 < MR ? T - t0 : MR;
        const size_t last = t0 + mr - 1;  // the block's last row sees keys 0...last
        for (size_t j0 = 0; j0 <= last; j0 += NR)
            tile_rows(mr, q + t0 * ldq, ldq, 1, kT + j0, T, s + t0 * lds + j0, lds, HS, alpha, 0);
    }
}

void lm_attn_lower(float *out, size_t ldo, const float *p, size_t ldp, const float *v, size_t ldv,
                   size_t T, size_t HS, float alpha, int accumulate) {
    for (size_t t0 = 0; t0 < T; t0 += MR) {
        const size_t mr = T - t0 < MR ? T - t0 : MR;
        const size_t kn = t0 + mr;  // P is zero past the block's last row's diagonal
        for (size_t c0 = 0; c0 < HS; c0 += NR)
            tile_rows(mr, p + t0 * ldp, ldp, 1, v + c0, ldv, out + t0 * ldo + c0, ldo, kn, alpha, accumulate);
    }
}

void lm_attn_upper_t(float *out, size_t ldo, const float *p, size_t ldp, const float *y, size_t ldy,
                     size_t T, size_t HS, float alpha, int accumulate) {
    for (size_t j0 = 0; j0 < T; j0 += MR) {
        const size_t mr = T - j0 < MR ? T - j0 : MR;
        // Row j of Pᵀ is column j of P: P[t][j] at p + t·ldp + j, zero for t < j.
        for (size_t c0 = 0; c0 < HS; c0 += NR)
            tile_rows(mr, p + j0 * ldp + j0, 1, ldp, y + j0 * ldy + c0, ldy, out + j0 * ldo + c0, ldo,
                      T - j0, alpha, accumulate);
    }
}

void lm_transpose(float *dst, const float *src, size_t lds, size_t rows, size_t cols) {
    if (rows % 8 == 0 && cols % 8 == 0) {
        for (size_t r = 0; r < rows; r += 8)
            for (size_t c = 0; c < cols; c += 8) transpose8x8(dst + c * rows + r, rows, src + r * lds + c, lds);
        return;
    }
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) dst[c * rows + r] = src[r * lds + c];
}

void lm_attn_softmax(float *s, size_t T) {
    for (size_t t = 0; t < T; t++) {
        float *row = s + t * T;
        const size_t n = t + 1;
        __m256 mv = _mm256_set1_ps(-INFINITY);
        size_t i = 0;
        for (; i + 8 <= n; i += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(row + i));
        float lanes[8];
        _mm256_storeu_ps(lanes, mv);
        float m = lanes[0];
        for (int l = 1; l < 8; l++) m = lanes[l] > m ? lanes[l] : m;
        for (; i < n; i++) m = row[i] > m ? row[i] : m;
#pragma clang loop vectorize(assume_safety)
        for (size_t j = 0; j < n; j++) row[j] = lm_exp(row[j] - m);
        __m256 sv = _mm256_setzero_ps();
        i = 0;
        for (; i + 8 <= n; i += 8) sv = _mm256_add_ps(sv, _mm256_loadu_ps(row + i));
        _mm256_storeu_ps(lanes, sv);
        float sum = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
        for (; i < n; i++) sum += row[i];
        const float inv = 1.0f / sum;
#pragma clang loop vectorize(assume_safety)
        for (size_t j = 0; j < n; j++) row[j] *= inv;
        for (size_t j = n; j < T; j++) row[j] = 0;
    }
}
