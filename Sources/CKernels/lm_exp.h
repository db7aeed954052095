// Shared by the C kernels (not part of the module's API).
#pragma once
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

