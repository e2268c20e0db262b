/* mgl-cuda-internal.cuh: shared by the CUDA backend's translation units. */
#ifndef MGL_CUDA_INTERNAL_CUH
#define MGL_CUDA_INTERNAL_CUH

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "mgl-cuda.h"

struct MglCudaStream {
    int dev;
    cudaStream_t st;
    cublasHandle_t blas;
    /* growable scratch: `cast` holds GEMM inputs in the weight dtype, `tmp` im2col/RoI weights */
    void* cast;
    size_t cast_bytes;
    void* tmp;
    size_t tmp_bytes;
    /* prefill attention: packed queries, scores and probabilities */
    void* attn;
    size_t attn_bytes;
    /* first error since the last sync */
    MglStatus st_err;
    char msg[512];
    bool capturing; /* inside stream capture: no allocation allowed */
};

/* record the first failure; returns true when `e` is an error */
bool mglc_fail(MglCudaStream* s, cudaError_t e, const char* what);
bool mglc_blas_fail(MglCudaStream* s, cublasStatus_t e, const char* what);
/* check the last launch */
#define MGLC_LAUNCHED(s, what) mglc_fail((s), cudaGetLastError(), (what))
/* grow a scratch buffer (not while capturing); NULL on failure (recorded) */
void* mglc_scratch(MglCudaStream* s, void** buf, size_t* have, size_t need, const char* what);
/* cudaMalloc with accounting and a message naming the size and free memory */
MglStatus mglc_malloc(void** p, size_t bytes, const char* what, MglErr* err);

/* variants of the ops that read the position from the device (CUDA graphs):
 * pos = d_pos ? *d_pos : pos0 */
void mglc_rope(MglCudaStream* s, float* x, int64_t ldx, int64_t T, int64_t NH, int64_t HS, int64_t pos0,
               const int* d_pos, const float* inv_freq);
void mglc_attention(MglCudaStream* s, const float* q, int64_t ldq, int64_t T, int64_t pos0, const int* d_pos,
                    const void* kc, const void* vc, int64_t ldkv, MglDType kvt, int64_t NH, int64_t NKV, int64_t HS,
                    bool causal, float* out, int64_t ldo, float* partial /* may be NULL: stream scratch */);
void mglc_store_rows(MglCudaStream* s, const float* x, int64_t ldx, int64_t T, int64_t n, void* dst, MglDType dt,
                     int64_t row0, const int* d_pos);
/* A batch of sequences, one row each (batched decode), in device memory:
 * row t's position, and its KV caches (layer 0; layer l starts l * lstride[t]
 * bytes further). Passed by value to the kernels; pos == NULL: no table. */
struct MglcSeqTab {
    const int* pos;
    uint8_t* const* k;
    uint8_t* const* v;
    const int64_t* lstride;
    int64_t layer;
};
/* the decode ops over a batch of sequences (row t at position tab->pos[t]);
 * each row gets the bits it gets alone at T = 1 */
void mglc_rope_rows(MglCudaStream* s, float* x, int64_t ldx, int64_t T, int64_t NH, int64_t HS, const int* d_pos,
                    const float* inv_freq);
void mglc_store_seqs(MglCudaStream* s, const float* x, int64_t ldx, int64_t T, int64_t n, const MglcSeqTab* tab,
                     bool values, MglDType dt);
void mglc_attention_seqs(MglCudaStream* s, const float* q, int64_t ldq, int64_t n, const MglcSeqTab* tab, int64_t ldkv,
                         MglDType kvt, int64_t NH, int64_t NKV, int64_t HS, float* out, int64_t ldo, float* part);
/* y = x W^T (+ bias) for T rows through the GEMV, 8 rows at a time, each row's
 * sums as for one row alone (mgl_cuda_matmul's T = 1 path) */
void mglc_matmul_rows(MglCudaStream* s, const float* x, int64_t T, const MglCudaW* W, const float* bias, float* y,
                      int64_t ldy);
/* scratch floats the decode attention needs for T rows */
int64_t mglc_attn_partial_floats(int64_t T, int64_t NH, int64_t HS);
/* x[c] over rows -> mean[c] (double accumulation), rows x C */
void mglc_colmean(MglCudaStream* s, const float* x, int64_t rows, int64_t C, float* mean);
/* fused[i] = l[i] + h[i] * tanh(*g) */
void mglc_gate_mix(MglCudaStream* s, const float* l, const float* h, const float* g, float* fused, int64_t n);

static inline size_t mglc_dtsize(MglDType t) { return t == MGL_DT_F32 ? 4 : 2; }

#endif
