/* mgl-ops.h: the backend seam. Every op the MG-LLaVA graph uses, on fp32
 * activations; weights keep their stored dtype (f32/f16/bf16) and are widened
 * on the fly, so a mmapped 16-bit model is never copied whole.
 * Layout conventions: row-major; "NHWC" feature maps are (H*W, C) matrices
 * with row r*W + c; Linear weights are PyTorch's (out, in). */
#ifndef MGL_OPS_H
#define MGL_OPS_H

#include "mgl-internal.h"

/* A weight matrix (rows = out features, cols = in features) in its stored dtype. */
typedef struct {
    const void* data;
    MglDType dtype; /* F32, F16 or BF16; quantized (mgl-quant.h): I8 (q8) or U8 (q4) */
    int64_t rows, cols;
    const uint16_t* scales; /* quantized: f16 scales, rows x groups */
    int32_t qbits, qgroup;  /* quantized: 8 or 4 (0: a float matrix) and the group length along cols */
} MglWeight;

/* y[T,N] = x[T,K] @ W[N,K]^T (+ bias[N]). T == 1 is mgl_matmul_rows. */
void mgl_matmul(const float* x, int64_t T, const MglWeight* W, const float* bias, float* y);
/* The same for a few independent rows (decode: one per sequence): every
 * y[t, n] is computed in one fixed order whatever T is, so a row's result is
 * bit for bit the same alone or in a batch; each weight row is read once. */
void mgl_matmul_rows(const float* x, int64_t T, const MglWeight* W, const float* bias, float* y);
/* mgl_matmul_rows for n (<= 4) matrices of the same x (q, k, v; gate, up)
 * in one parallel region: y[i] = x W[i]^T, the same bits as n calls. */
void mgl_matmul_rows_n(const float* x, int64_t T, int n, const MglWeight* const* W, float* const* y);
/* The activations that follow a matrix product in the vision towers. */
typedef enum { MGL_ACT_NONE, MGL_ACT_GELU, MGL_ACT_QUICK_GELU } MglAct;
/* mgl_matmul then `act` (mgl_gelu_erf, mgl_quick_gelu), fused where the
 * product allows: applied as the bf16 GEMM stores a tile, or with the bias
 * in one pass after an f32 GEMM. The values of the two calls. */
void mgl_matmul_act(const float* x, int64_t T, const MglWeight* W, const float* bias, MglAct act, float* y);
/* `act` over n contiguous values on the calling thread (the element-wise
 * code of mgl_gelu_erf / mgl_quick_gelu). */
void mgl_act_range(MglAct act, float* x, int64_t n);
/* Row `r` of W widened to f32 (embedding lookup). */
void mgl_weight_row(const MglWeight* W, int64_t r, float* out);

void mgl_layernorm(const float* x, int64_t T, int64_t C, const float* w, const float* b, float eps, float* y);
void mgl_rmsnorm(const float* x, int64_t T, int64_t C, const float* w, float eps, float* y);
void mgl_gelu_erf(float* x, int64_t n);
void mgl_quick_gelu(float* x, int64_t n);
/* out[i] = silu(gate[i]) * up[i] */
void mgl_silu_mul(const float* gate, const float* up, float* out, int64_t n);
void mgl_add(float* y, const float* x, int64_t n);

/* Depthwise 7x7 conv, zero padding 3, stride 1, on an NHWC map (H*W, C):
 * w is (C, 1, 7, 7), b is (C). */
void mgl_dwconv7_nhwc(const float* x, int64_t H, int64_t W, int64_t C, const float* w, const float* b, float* y);
/* Conv with kernel k == stride k (patchify): NHWC or CHW input -> (H/k*W/k, Cout).
 * wt is (Cout, Cin, k, k). Input layout chosen by `chw`. */
void mgl_patchify_conv(const float* x, bool chw, int64_t H, int64_t W, int64_t Cin, int64_t k, const MglWeight* wt,
                       const float* bias, float* y);

/* PyTorch's source index for output `o` of a resize in -> out with
 * align_corners=False: the scale is rounded to float (in/out), the index
 * scale*(o+0.5)-0.5 is formed in double (clamped at 0), and the weight of i1
 * is the float of its fractional part; this matches upsample_bilinear2d on the
 * CPU to the last bit in our tests (the float-only formula is off by 1e-4). */
void mgl_bilinear_src(int64_t in, int64_t out, int64_t o, int64_t* i0, int64_t* i1, float* lambda);

/* Bilinear resize, align_corners=False, no antialias (PyTorch upsample_bilinear2d). */
void mgl_resize_bilinear_chw(const float* x, int64_t C, int64_t H, int64_t W, int64_t Ho, int64_t Wo, float* y);
void mgl_resize_bilinear_nhwc(const float* x, int64_t H, int64_t W, int64_t C, int64_t Ho, int64_t Wo, float* y);

/* Causal attention over a KV cache. q: (T, NH*HS) for positions pos0..pos0+T-1;
 * kcache/vcache: (pos0+T, NKV*HS). out: (T, NH*HS). `causal` false = full attention. */
void mgl_attention(const float* q, int64_t T, int64_t pos0, const float* kcache, const float* vcache, int64_t NH,
                   int64_t NKV, int64_t HS, bool causal, float* out);
/* The same over a cache held in `kvdt` (F32, F16 or BF16): 16-bit keys and
 * values are widened as they are read; scores, softmax and sums stay f32. */
void mgl_attention_kv(const float* q, int64_t T, int64_t pos0, const void* kcache, const void* vcache, MglDType kvdt,
                      int64_t NH, int64_t NKV, int64_t HS, bool causal, float* out);
/* The same over a cache in any layout: key j of kv head h starts at element
 * h * head_step + j * key_step (mgl_attention_kv: head_step HS, key_step
 * NKV * HS). The LLM's cache is head-major (head_step = capacity * HS,
 * key_step = HS): a head's keys are one contiguous run, which the hardware
 * prefetchers stream at full bandwidth where rows NKV * HS apart are not. */
void mgl_attention_cache(const float* q, int64_t T, int64_t pos0, const void* kcache, const void* vcache, MglDType kvdt,
                         int64_t NH, int64_t NKV, int64_t HS, int64_t head_step, int64_t key_step, bool causal,
                         float* out);

/* HF rotate-half RoPE, in place on (T, NH*HS), positions pos0.. */
void mgl_rope(float* x, int64_t T, int64_t NH, int64_t HS, int64_t pos0, float theta);

#endif
