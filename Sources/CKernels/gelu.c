// Exact-erf GELU (BERT's "gelu") over arrays. The Swift loops scalarize on Linux (the sign
// tests and selects), so these live here; the arithmetic is the Swift helpers' operation by
// operation (VectorMath.exp, VectorMath.erfOfMagnitude, geluErfWithDerivative), with the
// fused multiply-adds written as fmaf and -ffp-contract=off, so the results are the same floats.
#include "ckernels.h"
#include <math.h>
#include <stdint.h>
#include <string.h>

static inline float lm_expf(float x0) {
    float x = x0 < -87.3f ? -87.3f : x0;
    x = x > 88.37f ? 88.37f : x;
    float shifted = fmaf(x, 1.44269504f, 12582912.0f);
    float n = shifted - 12582912.0f;
    float r = fmaf(n, -0.693359375f, x);
    r = fmaf(n, 2.1219444e-4f, r);
    float p = 1.98756915e-4f;
    p = fmaf(p, r, 1.39819995e-3f);
    p = fmaf(p, r, 8.3334519e-3f);
    p = fmaf(p, r, 4.16657959e-2f);
    p = fmaf(p, r, 1.66666655e-1f);
    p = fmaf(p, r, 5.00000012e-1f);
    float y = fmaf(p, r * r, r + 1);
    int32_t bits;
    memcpy(&bits, &shifted, 4);
    bits = (bits - 0x4B400000 + 127) << 23;
    float scale;
    memcpy(&scale, &bits, 4);
    float result = y * scale;
    return x0 < -87.3f ? 0 : result;
}

// erf(a) for a ≥ 0 given e = exp(−a²) (Abramowitz & Stegun 7.1.26).
static inline float lm_erf_magnitude(float a, float e) {
    float t = 1 / fmaf(a, 0.3275911f, 1.0f);
    float p = 1.061405429f;
    p = fmaf(p, t, -1.453152027f);
    p = fmaf(p, t, 1.421413741f);
    p = fmaf(p, t, -0.284496736f);
    p = fmaf(p, t, 0.254829592f);
    return 1 - p * t * e;
}

void lm_gelu_erf_forward(float *out, const float *inp, size_t lo, size_t hi) {
    for (size_t i = lo; i < hi; i++) {
        float x = inp[i];
        float z = x * 0.70710678f;
        float a = z < 0 ? -z : z;
        float y = lm_erf_magnitude(a, lm_expf(-a * a));
        float erf = z < 0 ? -y : y;
        out[i] = 0.5f * x * (1 + erf);
    }
}

void lm_gelu_erf_forward_saving(float *out, float *derivative, const float *inp, size_t lo, size_t hi) {
    for (size_t i = lo; i < hi; i++) {
        float x = inp[i];
        float e = lm_expf(-0.5f * x * x);
        float erfAbs = lm_erf_magnitude((x < 0 ? -x : x) * 0.70710678f, e);
        float cdf = 0.5f * (1 + (x < 0 ? -erfAbs : erfAbs));
        out[i] = x * cdf;
        derivative[i] = cdf + x * e * 0.39894228f;
    }
}
