/* mgl-cpu-math.h: scalar elementary functions written branch-free, so the
 * loops that call them vectorise (libm's expf does not inline). */
#ifndef MGL_CPU_MATH_H
#define MGL_CPU_MATH_H

#include <math.h>
#include <stdint.h>

/* exp(x), branch-free so the loops vectorise: x = n ln2 + r
 * with |r| <= ln2/2 (ln2 split in two for an exact product), a degree-6
 * polynomial for e^r, 2^n through the exponent bits. Relative error at most
 * 2.6e-7 over [-87, 88] (test_cpu_kernels checks it); x is clamped to that
 * range (e^-87 is about 1.6e-38, e^88 about 1.7e38). The softmax, SiLU and
 * quick_gelu use it. */
static inline float exp_fast(float x) {
    x = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x;
    const float n = nearbyintf(x * 1.44269504088896341f);
    const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    union {
        float f;
        int32_t i;
    } u = {.i = ((int32_t)n + 127) << 23};
    return p * u.f;
}

#endif
