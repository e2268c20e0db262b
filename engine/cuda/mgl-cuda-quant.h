/* mgl-cuda-quant.h: quantized weights (q8, q4; mgl-quant.h) on the device
 * (mgl-cuda-quant.cu). Plain C types; built only when MGL_HAVE_CUDA. */
#ifndef MGL_CUDA_QUANT_H
#define MGL_CUDA_QUANT_H

#include "mgl-cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Upload a host quantized weight (qbits set): its bytes and f16 scales. */
MglStatus mgl_cuda_qweight_upload(const MglWeight* host, MglCudaW* out, MglErr* err);
void mgl_cuda_qweight_free(MglCudaW* w);
/* y[T, N] (row stride ldy) = x[T, K] @ W^T for a quantized W: T <= 8 the
 * W8A16/W4A16 GEMV (x rounded to f16, f32 sums, one warp per weight row);
 * more rows: W dequantized to f16 in tiles, each an f16 GEMM. No bias. */
void mgl_cuda_qmatmul(MglCudaStream* s, const float* x, int64_t T, const MglCudaW* W, float* y, int64_t ldy);
/* Rows r0 .. r0 + nr of W as f16 (scale x q rounded once) into `out` (device, nr x K). */
void mgl_cuda_qdequant_f16(MglCudaStream* s, const MglCudaW* W, int64_t r0, int64_t nr, void* out);

#ifdef __cplusplus
}
#endif

#endif
