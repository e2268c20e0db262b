/* mgl-ops-quant.h: the CPU backend's products with quantized weights
 * (ops-quant.c); mgl_matmul and mgl_matmul_rows route quantized matrices
 * here. Bias is the caller's. */
#ifndef MGL_OPS_QUANT_H
#define MGL_OPS_QUANT_H

#include "mgl-ops.h"

/* y[T, N] = x[T, K] @ W^T for a few rows (decode): a row's result does not
 * depend on T (each weight row read once for up to four rows at a time). */
void mgl_qmatmul_rows(const float* x, int64_t T, const MglWeight* W, float* y);
/* Any T: mgl_qmatmul_rows up to 8 rows, dequantized tiles and a GEMM above. */
void mgl_qmatmul(const float* x, int64_t T, const MglWeight* W, float* y);
/* The kernel in use: 3 AVX-512 with VNNI, 2 AVX-512, 1 AVX2/FMA/F16C (the
 * three give the same bits), 0 the portable loop (MGL_CPU_ISA caps it). */
int mgl_qmatmul_isa(void);
/* Tests: use kernel `isa` (at most what the CPU has) from now on; -1 goes
 * back to the CPU's. */
void mgl_qmatmul_set_isa(int isa);

#endif
