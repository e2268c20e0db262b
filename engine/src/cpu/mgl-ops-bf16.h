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

/* The kernels of mgl_gemm_bf16: vdpbf16ps (AVX512_BF16), and for products
 * of 16 rows or more the AMX tiles, or the software model of the tiles the
 * tests check the AMX block with. */
typedef enum {
    MGL_BF16_GEMM_NONE = 0,
    MGL_BF16_GEMM_AVX512 = 1,
    MGL_BF16_GEMM_AMX = 2,
    MGL_BF16_GEMM_AMX_EMULATED = 3
} MglBf16Gemm;
/* The kernel in use: AMX at level amx-bf16 once a start-up product on the
 * tiles has agreed with the model (else vdpbf16ps); a forced one if set. */
MglBf16Gemm mgl_gemm_bf16_kernel(void);
const char* mgl_gemm_bf16_kernel_name(MglBf16Gemm k);
/* Whether level amx-bf16 was reached but the tiles disagreed with the model. */
bool mgl_gemm_bf16_amx_disagreed(void);
/* Tests: use kernel k from now on (k < 0: the chosen one again). False,
 * and nothing changed, where this CPU cannot run k. Not thread-safe: set it
 * before the products. */
bool mgl_gemm_bf16_force(int k);
/* y[T, N] = bf16(x)[T, K] bf16(W)[N, K]^T (+ bias), sums in f32; W in
 * f32, f16, bf16 or quantized (rounded to bf16 as it is packed). */
void mgl_gemm_bf16(const float* x, int64_t T, const MglWeight* W, const float* bias, MglAct act, float* y);

#endif
