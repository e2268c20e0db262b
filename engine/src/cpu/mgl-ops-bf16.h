/* mgl-ops-bf16.h: the bf16 matrix product on AVX512_BF16 (ops-bf16.c). */
#ifndef MGL_OPS_BF16_H
#define MGL_OPS_BF16_H

#include "mgl-ops.h"

/* Whether this CPU (and MGL_CPU_ISA) allows mgl_gemm_bf16. */
bool mgl_gemm_bf16_available(void);
/* y[T, N] = bf16(x)[T, K] W[N, K]^T (+ bias) for a bf16 W, sums in f32. */
void mgl_gemm_bf16(const float* x, int64_t T, const MglWeight* W, const float* bias, float* y);

#endif
