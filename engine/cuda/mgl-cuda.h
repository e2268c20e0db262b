/* mgl-cuda.h: the CUDA backend's C interface (plain C types only: no CUDA
 * header is needed to include it). Built only when MGL_HAVE_CUDA.
 *
 * The ops on device buffers (mgl_cuda_*): the device twins of mgl-ops.h,
 * fp32 activations, weights in f32/f16/bf16, each enqueued on an
 * MglCudaStream. Launch and cuBLAS errors are recorded in the stream and
 * reported by mgl_cuda_stream_sync() as MglErr messages; nothing aborts.
 * The model itself is reached through the backend table, mgl_backend_cuda
 * (mgl-cuda-backend.cu; see mgl-backend.h). */
#ifndef MGL_CUDA_H
#define MGL_CUDA_H

#ifdef __cplusplus
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
extern "C" {
#endif

#include "mgl-backend.h"

/* ---- devices ------------------------------------------------------------ */

int mgl_cuda_device_count(void); /* 0 when the runtime or driver is missing */
/* MGL_OK when device `gpu_id` exists and a context can be made on it;
 * otherwise MGL_E_DEVICE with the runtime's reason. */
MglStatus mgl_cuda_probe(int gpu_id, MglErr* err);
/* "NVIDIA H100 80GB HBM3 (sm_90, 79.1 GiB)" or "" */
void mgl_cuda_device_name(int gpu_id, char* buf, size_t n);

/* ---- raw buffers ------------------------------------------------------- */

void* mgl_cuda_malloc(size_t bytes, MglErr* err); /* NULL + MGL_E_NOMEM naming bytes needed and free */
void mgl_cuda_free(void* p);
MglStatus mgl_cuda_upload(void* dst, const void* src, size_t bytes, MglErr* err);
MglStatus mgl_cuda_download(void* dst, const void* src, size_t bytes, MglErr* err);
/* peak and current bytes allocated through mgl_cuda_malloc (this process) */
size_t mgl_cuda_peak_bytes(void);
size_t mgl_cuda_live_bytes(void);
void mgl_cuda_reset_peak(void);

/* A weight matrix on the device (rows = out, cols = in), f32/f16/bf16: an
 * MglWeight whose data is device memory. */
typedef MglWeight MglCudaW;

/* Upload a host weight converted to `dt` (F32, F16 or BF16). */
MglStatus mgl_cuda_weight_upload(const MglWeight* host, MglDType dt, MglCudaW* out, MglErr* err);
void mgl_cuda_weight_free(MglCudaW* w);

/* ---- streams ------------------------------------------------------------ */

typedef struct MglCudaStream MglCudaStream;
MglStatus mgl_cuda_stream_new(int gpu_id, MglCudaStream** out, MglErr* err);
void mgl_cuda_stream_free(MglCudaStream* s);
/* Waits for the stream; returns the first recorded launch/cuBLAS error or the sync error. */
MglStatus mgl_cuda_stream_sync(MglCudaStream* s, MglErr* err);

/* ---- preprocessing -------------------------------------------------------- */

/* An image's views made on the device, the bytes of the CPU's mgl_views_make:
 * the w x h RGB8 image (host, rows `stride` bytes apart) padded to its square,
 * Pillow's bicubic to 768 and the normalisation into x768 (CHW f32, device),
 * the bilinear 336 view into x336 (device), on stream s. *prep holds the work
 * buffers and tables between calls (made at the first; mgl_cuda_preprocess_free). */
typedef struct MglCudaPrep MglCudaPrep;
MglStatus mgl_cuda_preprocess(MglCudaStream* s, MglCudaPrep** prep, const uint8_t* rgb, int w, int h, int stride,
                              float* x768, float* x336, MglErr* err);
void mgl_cuda_preprocess_free(MglCudaPrep* prep);

/* ---- ops (device pointers; semantics as mgl-ops.h) ----------------------- */

/* y[T,N] (row stride ldy, >= N) = x[T,K] @ W^T (+ bias). T == 1 uses a GEMV kernel;
 * otherwise cuBLAS GemmEx with fp32 accumulation (x cast to W's dtype first). */
void mgl_cuda_matmul(MglCudaStream* s, const float* x, int64_t T, const MglCudaW* W, const float* bias, float* y,
                     int64_t ldy);
void mgl_cuda_layernorm(MglCudaStream* s, const float* x, int64_t T, int64_t C, const float* w, const float* b,
                        float eps, float* y);
void mgl_cuda_rmsnorm(MglCudaStream* s, const float* x, int64_t T, int64_t C, const float* w, float eps, float* y);
void mgl_cuda_gelu_erf(MglCudaStream* s, float* x, int64_t n);
void mgl_cuda_quick_gelu(MglCudaStream* s, float* x, int64_t n);
/* out[t, i] = silu(gate[t*ldg + i]) * up[t*ldu + i], i < n, t < T; out row stride n */
void mgl_cuda_silu_mul(MglCudaStream* s, const float* gate, int64_t ldg, const float* up, int64_t ldu, float* out,
                       int64_t T, int64_t n);
void mgl_cuda_add(MglCudaStream* s, float* y, const float* x, int64_t n);
/* x[i, c] += y[i, c] * gamma[c] */
void mgl_cuda_scale_add(MglCudaStream* s, float* x, const float* y, const float* gamma, int64_t rows, int64_t C);
void mgl_cuda_dwconv7_nhwc(MglCudaStream* s, const float* x, int64_t H, int64_t W, int64_t C, const float* w,
                           const float* b, float* y);
void mgl_cuda_patchify_conv(MglCudaStream* s, const float* x, bool chw, int64_t H, int64_t W, int64_t Cin, int64_t k,
                            const MglCudaW* wt, const float* bias, float* y);
void mgl_cuda_resize_bilinear_chw(MglCudaStream* s, const float* x, int64_t C, int64_t H, int64_t W, int64_t Ho,
                                  int64_t Wo, float* y);
void mgl_cuda_resize_bilinear_nhwc(MglCudaStream* s, const float* x, int64_t H, int64_t W, int64_t C, int64_t Ho,
                                   int64_t Wo, float* y);
/* inv_freq (device, HS/2 floats) as mgl_rope computes it: mgl_cuda_rope_table fills one. */
MglStatus mgl_cuda_rope_table(int64_t HS, float theta, float** out_dev, MglErr* err);
/* x rows have stride ldx (>= NH*HS); positions pos0.. */
void mgl_cuda_rope(MglCudaStream* s, float* x, int64_t ldx, int64_t T, int64_t NH, int64_t HS, int64_t pos0,
                   const float* inv_freq);
/* Attention as mgl_attention, with row strides; kcache/vcache hold rows
 * 0..pos0+T-1 in `kv_dtype` (F32, F16 or BF16). HS <= 256. T <= 4 takes the
 * split-K decode kernel, longer T the flash-style tiled kernel. */
void mgl_cuda_attention(MglCudaStream* s, const float* q, int64_t ldq, int64_t T, int64_t pos0, const void* kcache,
                        const void* vcache, int64_t ldkv, MglDType kv_dtype, int64_t NH, int64_t NKV, int64_t HS,
                        bool causal, float* out, int64_t ldo);
/* rows of x (T, n) with stride ldx, converted to dtype, into dst + row*n (dst row stride n) starting at row `row0` */
void mgl_cuda_store_rows(MglCudaStream* s, const float* x, int64_t ldx, int64_t T, int64_t n, void* dst, MglDType dt,
                         int64_t row0);
/* out[i, :] = E[ids[i], :] widened to f32; ids on the device */
void mgl_cuda_embed(MglCudaStream* s, const MglCudaW* E, const int32_t* ids, int64_t n, float* out);
/* *flag (device) = 1 when any logit is NaN, else 0 */
void mgl_cuda_nan_flag(MglCudaStream* s, const float* logits, int64_t V, int32_t* flag);
/* logits[i] = -inf where bit i of `allow` (device, V bits) is clear */
void mgl_cuda_mask_logits(MglCudaStream* s, float* logits, int64_t V, const uint32_t* allow);
/* index of the largest logit (the first on ties), written to *out (device) */
void mgl_cuda_argmax(MglCudaStream* s, const float* logits, int64_t V, int32_t* out);
/* Sampling as the CPU engine: logits/temperature -> top-k -> top-p -> draw
 * with `u` in [0, 1). Writes the id to *out (device). Needs a workspace from
 * mgl_cuda_sampler_new for this vocabulary size. */
typedef struct MglCudaSampler MglCudaSampler;
MglStatus mgl_cuda_sampler_new(int64_t V, MglCudaSampler** out, MglErr* err);
void mgl_cuda_sampler_free(MglCudaSampler* sp);
void mgl_cuda_sample(MglCudaStream* s, MglCudaSampler* sp, const float* logits, float temperature, int top_k,
                     float top_p, double u, int32_t* out);
/* RoIAlign (aligned=False, 56x56, adaptive sampling) over the 4-level
 * multi-scale map + mean, as mgl_stage_objects: so[s] is (hs*hs, C[s]) with
 * hs = 192 >> s; boxes (n, 4) in 768-pixel coordinates, on the device.
 * pooled (n, sum C). */
void mgl_cuda_roi_pool(MglCudaStream* s, const float* const so[4], const int C[4], const float* boxes, int64_t n,
                       float* pooled);

#ifdef __cplusplus
}
#endif
#endif
