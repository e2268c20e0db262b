/* mgl-ops-bf16.h: the bf16 matrix product on AVX512_BF16 (ops-bf16.c). */
#ifndef MGL_OPS_BF16_H
#define MGL_OPS_BF16_H

#include "mgl-ops.h"

/* The calling thread's precision for mgl_matmul: true = bf16 products
 * (activations rounded to bf16, any weight dtype packed as bf16) wherever
 * mgl_gemm_bf16_available(); false (the default) = f32 products. The CPU
 * backend sets it from the model's precision at each entry. */
void mgl_cpu_set_bf16(bool on);
bool mgl_cpu_bf16(void);
/* Whether this CPU (and MGL_CPU_ISA) allows mgl_gemm_bf16. */
bool mgl_gemm_bf16_available(void);
/* y[T, N] = bf16(x)[T, K] bf16(W)[N, K]^T (+ bias), sums in f32; W in
 * f32, f16, bf16 or quantized (rounded to bf16 as it is packed). */
void mgl_gemm_bf16(const float* x, int64_t T, const MglWeight* W, const float* bias, MglAct act, float* y);

#endif
