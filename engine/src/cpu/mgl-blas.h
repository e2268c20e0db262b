/* mgl-blas.h: OpenBLAS, loaded at run time so its kernel can be chosen for
 * the CPU (see mgl-blas.c). */
#ifndef MGL_BLAS_H
#define MGL_BLAS_H

#include "mgl-internal.h"

enum { MGL_ROW_MAJOR = 101, MGL_NO_TRANS = 111, MGL_TRANS = 112 };

/* Loads OpenBLAS once; every later call is free. */
MglStatus mgl_blas_init(MglErr* err);
void mgl_sgemm(int trans_b, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
               float beta, float* C, int ldc);
void mgl_blas_set_threads(int n);
const char* mgl_blas_corename(void);
/* OpenBLAS's own thread count (1: each call on its caller's thread); 0 before the load */
int mgl_blas_threads(void);

#endif
