#include "gelu.h"
#include "lm_exp.h"
#include <math.h>
#include <stdint.h>
#include <string.h>

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
