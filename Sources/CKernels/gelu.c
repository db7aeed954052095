#include "gelu.h"
#include <math.h>
#include <stdint.h>
#include <string.h>

// Mirrors VectorMath.exp: Cody–Waite reduction and Cephes' degree-6 polynomial.
static inline float lm_exp(float x0) {
    float x = x0 < -87.3f ? -87.3f : x0;
    x = x > 88.37f ? 88.37f : x;
    const float shifted = fmaf(x, 1.44269504f, 12582912.0f);
    const float n = shifted - 12582912.0f;
    float r = fmaf(n, -0.693359375f, x);
    r = fmaf(n, 2.1219444e-4f, r);
    float p = 1.98756915e-4f;
    p = fmaf(p, r, 1.39819995e-3f);
    p = fmaf(p, r, 8.3334519e-3f);
    p = fmaf(p, r, 4.16657959e-2f);
    p = fmaf(p, r, 1.66666655e-1f);
    p = fmaf(p, r, 5.00000012e-1f);
    const float y = fmaf(p, r * r, r + 1.0f);
    uint32_t bits;
    memcpy(&bits, &shifted, 4);
    bits = (bits - 0x4B400000u + 127u) << 23;
    float scale;
    memcpy(&scale, &bits, 4);
    const float result = y * scale;
    return x0 < -87.3f ? 0.0f : result;
}

// Mirrors VectorMath.erfOfMagnitude (Abramowitz & Stegun 7.1.26), e = exp(−a²).
static inline float lm_erf_magnitude(float a, float e) {
    const float t = 1.0f / fmaf(a, 0.3275911f, 1.0f);
    float p = 1.061405429f;
    p = fmaf(p, t, -1.453152027f);
    p = fmaf(p, t, 1.421413741f);
    p = fmaf(p, t, -0.284496736f);
    p = fmaf(p, t, 0.254829592f);
    return 1.0f - p * t * e;
}

static const float tanhScale = 0.79788456f;  // √(2/π)

void lm_gelu_tanh(float *out, const float *inp, size_t lo, size_t hi) {
#pragma clang loop vectorize(assume_safety)
    for (size_t i = lo; i < hi; i++) {
        const float x = inp[i];
        const float u = tanhScale * fmaf(0.044715f * x, x * x, x);
        out[i] = x / (1.0f + lm_exp(-2.0f * u));  // 0.5·(1 + tanh(u)) = sigmoid(2u)
    }
}

void lm_gelu_erf(float *out, const float *inp, size_t lo, size_t hi) {
#pragma clang loop vectorize(assume_safety)
    for (size_t i = lo; i < hi; i++) {
        const float x = inp[i];
        const float z = x * 0.70710678f;
        const float a = z < 0 ? -z : z;
        const float m = lm_erf_magnitude(a, lm_exp(-a * a));
        out[i] = 0.5f * x * (1.0f + (z < 0 ? -m : m));
    }
}

void lm_gelu_saving(float *out, float *deriv, const float *inp, size_t lo, size_t hi, int erf) {
    if (erf) {
#pragma clang loop vectorize(assume_safety)
        for (size_t i = lo; i < hi; i++) {
            const float x = inp[i];
            const float e = lm_exp(-0.5f * x * x);
            const float m = lm_erf_magnitude((x < 0 ? -x : x) * 0.70710678f, e);
            const float cdf = 0.5f * (1.0f + (x < 0 ? -m : m));
            out[i] = x * cdf;
            deriv[i] = cdf + x * e * 0.39894228f;
        }
    } else {
#pragma clang loop vectorize(assume_safety)
        for (size_t i = lo; i < hi; i++) {
            const float x = inp[i];
            const float u = tanhScale * fmaf(0.044715f * x, x * x, x);
            const float t = 1.0f - 2.0f / (lm_exp(2.0f * u) + 1.0f);
            const float du = tanhScale * (1.0f + 3.0f * 0.044715f * x * x);
            out[i] = 0.5f * x * (1.0f + t);
            deriv[i] = 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du;
        }
    }
}
