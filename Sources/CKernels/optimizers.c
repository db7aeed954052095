#include "ckernels.h"
#include <math.h>

void lm_adam_update(float *restrict p, const float *restrict g, float *restrict m, float *restrict v,
                    size_t lo, size_t hi, float l2, float decoupled, float w1, float beta2, float w2,
                    float bc2Sqrt, float stepSize, float eps) {
    const float negStep = -stepSize;
    for (size_t i = lo; i < hi; i++) {
        float pi = p[i];
        if (decoupled != 1.0f) pi = pi * decoupled;
        float gi = g[i];
        if (l2 != 0.0f) gi = gi + l2 * pi;
        const float mi = m[i] + w1 * (gi - m[i]);
        const float vi = v[i] * beta2 + w2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = pi + negStep * mi / (sqrtf(vi) / bc2Sqrt + eps);
    }
}

void lm_adagrad_update(float *restrict p, const float *restrict g, float *restrict sum, size_t lo, size_t hi,
                       float l2, float lr, float eps) {
    for (size_t i = lo; i < hi; i++) {
        float gi = g[i];
        if (l2 != 0.0f) gi = gi + l2 * p[i];
        sum[i] = sum[i] + gi * gi;
        p[i] = p[i] + (-lr) * gi / (sqrtf(sum[i]) + eps);
    }
}

void lm_rmsprop_update(float *restrict p, const float *restrict g, float *restrict v, size_t lo, size_t hi,
                       float l2, float alpha, float oneMinusAlpha, float lr, float eps) {
    for (size_t i = lo; i < hi; i++) {
        float gi = g[i];
        if (l2 != 0.0f) gi = gi + l2 * p[i];
        v[i] = v[i] * alpha + oneMinusAlpha * gi * gi;
        p[i] = p[i] + (-lr) * gi / (sqrtf(v[i]) + eps);
    }
}
