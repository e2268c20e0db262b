/* mgl-cuda-ops.cu: the CUDA backend's ops: kernels and their host launchers.
 * Activations are fp32; weights f32/f16/bf16; every reduction accumulates in
 * fp32 (norm statistics and sampling sums in fp64, as the CPU backend).
 * Kernels are written plainly: one thread per output element unless a row
 * reduction needs a block, a warp per GEMV row. */
#include <cub/cub.cuh>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>
#include <mutex>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unordered_map>

#include "mgl-cuda-internal.cuh"
#include "mgl-cuda-quant.h"

/* ---- errors, memory ------------------------------------------------------ */

bool mglc_fail(MglCudaStream* s, cudaError_t e, const char* what) {
    if (e == cudaSuccess) return false;
    if (s && s->st_err == MGL_OK) {
        s->st_err = e == cudaErrorMemoryAllocation ? MGL_E_NOMEM : MGL_E_DEVICE;
        snprintf(s->msg, sizeof s->msg, "CUDA: %s: %s", what, cudaGetErrorString(e));
    }
    return true;
}

bool mglc_blas_fail(MglCudaStream* s, cublasStatus_t e, const char* what) {
    if (e == CUBLAS_STATUS_SUCCESS) return false;
    if (s && s->st_err == MGL_OK) {
        s->st_err = e == CUBLAS_STATUS_ALLOC_FAILED ? MGL_E_NOMEM : MGL_E_DEVICE;
        snprintf(s->msg, sizeof s->msg, "cuBLAS: %s: %s", what, cublasGetStatusString(e));
    }
    return true;
}

static std::mutex g_mem_mu;
static std::unordered_map<void*, size_t> g_mem_sizes;
static size_t g_mem_live, g_mem_peak;

MglStatus mglc_malloc(void** p, size_t bytes, const char* what, MglErr* err) {
    *p = NULL;
    if (bytes == 0) bytes = 16;
    cudaError_t e = cudaMalloc(p, bytes);
    if (e != cudaSuccess) {
        cudaGetLastError();
        *p = NULL;
        size_t fr = 0, tot = 0;
        cudaMemGetInfo(&fr, &tot);
        cudaGetLastError();
        return mgl_err(err, e == cudaErrorMemoryAllocation ? MGL_E_NOMEM : MGL_E_DEVICE,
                       "CUDA: out of device memory for %s: needed %.1f MiB, %.1f MiB free of %.1f MiB (%s)", what,
                       bytes / 1048576.0, fr / 1048576.0, tot / 1048576.0, cudaGetErrorString(e));
    }
    std::lock_guard<std::mutex> lk(g_mem_mu);
    g_mem_sizes[*p] = bytes;
    g_mem_live += bytes;
    if (g_mem_live > g_mem_peak) g_mem_peak = g_mem_live;
    return MGL_OK;
}

extern "C" void* mgl_cuda_malloc(size_t bytes, MglErr* err) {
    void* p = NULL;
    if (mglc_malloc(&p, bytes, "buffer", err) != MGL_OK) return NULL;
    return p;
}

extern "C" void mgl_cuda_free(void* p) {
    if (!p) return;
    {
        std::lock_guard<std::mutex> lk(g_mem_mu);
        auto it = g_mem_sizes.find(p);
        if (it != g_mem_sizes.end()) {
            g_mem_live -= it->second;
            g_mem_sizes.erase(it);
        }
    }
    cudaFree(p);
}

extern "C" size_t mgl_cuda_peak_bytes(void) {
    std::lock_guard<std::mutex> lk(g_mem_mu);
    return g_mem_peak;
}
extern "C" size_t mgl_cuda_live_bytes(void) {
    std::lock_guard<std::mutex> lk(g_mem_mu);
    return g_mem_live;
}
extern "C" void mgl_cuda_reset_peak(void) {
    std::lock_guard<std::mutex> lk(g_mem_mu);
    g_mem_peak = g_mem_live;
}

extern "C" MglStatus mgl_cuda_upload(void* dst, const void* src, size_t bytes, MglErr* err) {
    /* From pageable memory cudaMemcpy may return once the bytes are staged, before
     * they land; the engine's streams are non-blocking (no implicit ordering with
     * the legacy stream), so wait for the copy itself: the bytes are on the device
     * when this returns. */
    cudaError_t e = cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice);
    if (e == cudaSuccess) e = cudaStreamSynchronize(cudaStreamLegacy);
    if (e != cudaSuccess)
        return mgl_err(err, MGL_E_DEVICE, "CUDA: upload of %zu bytes: %s", bytes, cudaGetErrorString(e));
    return MGL_OK;
}

extern "C" MglStatus mgl_cuda_download(void* dst, const void* src, size_t bytes, MglErr* err) {
    cudaError_t e = cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost);
    if (e != cudaSuccess)
        return mgl_err(err, MGL_E_DEVICE, "CUDA: download of %zu bytes: %s", bytes, cudaGetErrorString(e));
    return MGL_OK;
}

extern "C" MglStatus mgl_cuda_weight_upload(const MglWeight* h, MglDType dt, MglCudaW* out, MglErr* err) {
    memset(out, 0, sizeof *out);
    if (dt != MGL_DT_F32 && dt != MGL_DT_F16 && dt != MGL_DT_BF16)
        return mgl_err(err, MGL_E_INVALID, "CUDA: weight precision must be f32, f16 or bf16");
    const size_t n = (size_t)(h->rows * h->cols), es = mglc_dtsize(dt), hes = mgl_dtype_size(h->dtype);
    void* d = NULL;
    MGL_TRY(mglc_malloc(&d, n * es, "weights", err));
    /* convert in slices of 8M elements through a host staging buffer */
    const size_t slice = (size_t)8 << 20;
    void* stage = dt == h->dtype ? NULL : malloc((n < slice ? n : slice) * es);
    if (dt != h->dtype && !stage) {
        mgl_cuda_free(d);
        return mgl_err(err, MGL_E_NOMEM, "CUDA: host staging buffer for a weight upload");
    }
    MglStatus st = MGL_OK;
    for (size_t i = 0; i < n && st == MGL_OK; i += slice) {
        size_t k = n - i < slice ? n - i : slice;
        const uint8_t* src = (const uint8_t*)h->data + i * hes;
        if (stage) {
            mgl_convert_floats(src, h->dtype, stage, dt, k);
            src = (const uint8_t*)stage;
        }
        st = mgl_cuda_upload((uint8_t*)d + i * es, src, k * es, err);
    }
    free(stage);
    if (st != MGL_OK) {
        mgl_cuda_free(d);
        return st;
    }
    out->data = d;
    out->dtype = dt;
    out->rows = h->rows;
    out->cols = h->cols;
    return MGL_OK;
}

extern "C" void mgl_cuda_weight_free(MglCudaW* w) {
    if (!w) return;
    mgl_cuda_free((void*)w->data);
    w->data = NULL;
}

void* mglc_scratch(MglCudaStream* s, void** buf, size_t* have, size_t need, const char* what) {
    if (need <= *have) return *buf;
    if (s->capturing) {
        if (s->st_err == MGL_OK) {
            s->st_err = MGL_E_DEVICE;
            snprintf(s->msg, sizeof s->msg, "CUDA: %s scratch must grow during graph capture", what);
        }
        return NULL;
    }
    /* pending work may still read the old buffer */
    cudaStreamSynchronize(s->st);
    mgl_cuda_free(*buf);
    *buf = NULL;
    *have = 0;
    size_t want = need + need / 4;
    MglErr e = {MGL_OK, ""};
    if (mglc_malloc(buf, want, what, &e) != MGL_OK) {
        if (s->st_err == MGL_OK) {
            s->st_err = e.code;
            snprintf(s->msg, sizeof s->msg, "%s", e.msg);
        }
        return NULL;
    }
    *have = want;
    return *buf;
}

/* ---- streams -------------------------------------------------------------- */

extern "C" MglStatus mgl_cuda_stream_new(int gpu_id, MglCudaStream** out, MglErr* err) {
    *out = NULL;
    cudaError_t e = cudaSetDevice(gpu_id);
    if (e != cudaSuccess) return mgl_err(err, MGL_E_DEVICE, "CUDA: device %d: %s", gpu_id, cudaGetErrorString(e));
    MglCudaStream* s = (MglCudaStream*)calloc(1, sizeof *s);
    if (!s) return mgl_err(err, MGL_E_NOMEM, "out of memory");
    s->dev = gpu_id;
    e = cudaStreamCreateWithFlags(&s->st, cudaStreamNonBlocking);
    if (e != cudaSuccess) {
        free(s);
        return mgl_err(err, MGL_E_DEVICE, "CUDA: cannot create a stream: %s", cudaGetErrorString(e));
    }
    cublasStatus_t b = cublasCreate(&s->blas);
    if (b == CUBLAS_STATUS_SUCCESS) b = cublasSetStream(s->blas, s->st);
    if (b != CUBLAS_STATUS_SUCCESS) {
        if (s->blas) cublasDestroy(s->blas);
        cudaStreamDestroy(s->st);
        free(s);
        return mgl_err(err, MGL_E_DEVICE, "cuBLAS: cannot create a handle: %s", cublasGetStatusString(b));
    }
    *out = s;
    return MGL_OK;
}

extern "C" void mgl_cuda_stream_free(MglCudaStream* s) {
    if (!s) return;
    cudaStreamSynchronize(s->st);
    cublasDestroy(s->blas);
    cudaStreamDestroy(s->st);
    mgl_cuda_free(s->cast);
    mgl_cuda_free(s->tmp);
    mgl_cuda_free(s->attn);
    free(s);
}

extern "C" MglStatus mgl_cuda_stream_sync(MglCudaStream* s, MglErr* err) {
    cudaError_t e = cudaStreamSynchronize(s->st);
    mglc_fail(s, e, "stream synchronize");
    mglc_fail(s, cudaGetLastError(), "kernel");
    if (s->st_err != MGL_OK) {
        MglStatus code = s->st_err;
        s->st_err = MGL_OK;
        return mgl_err(err, code, "%s", s->msg);
    }
    return MGL_OK;
}

/* ---- device helpers ------------------------------------------------------- */

__device__ __forceinline__ float tof(float x) { return x; }
__device__ __forceinline__ float tof(__half x) { return __half2float(x); }
__device__ __forceinline__ float tof(__nv_bfloat16 x) { return __bfloat162float(x); }
template <typename T> __device__ __forceinline__ T fromf(float x);
template <> __device__ __forceinline__ float fromf<float>(float x) { return x; }
template <> __device__ __forceinline__ __half fromf<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 fromf<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

template <typename T> __device__ __forceinline__ T warp_sum(T v) {
    for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* sum over the block (blockDim.x a multiple of 32, <= 1024); sh holds 32 T */
template <typename T> __device__ T block_sum(T v, T* sh) {
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    T r = lane < nw ? sh[lane] : (T)0;
    r = warp_sum(r);
    return r;
}

/* max over the block (same shape as block_sum) */
__device__ float block_max(float v, float* sh) {
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    float r = lane < nw ? sh[lane] : -INFINITY;
    return warp_max(r);
}

/* inclusive prefix sum over the block; *total gets the block's sum */
__device__ double block_scan(double v, double* sh, double* total) {
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    for (int o = 1; o < 32; o <<= 1) {
        double u = __shfl_up_sync(0xffffffffu, v, o);
        if (lane >= o) v += u;
    }
    __syncthreads();
    if (lane == 31) sh[wid] = v;
    __syncthreads();
    if (wid == 0) {
        double w = lane < nw ? sh[lane] : 0.0;
        for (int o = 1; o < 32; o <<= 1) {
            double u = __shfl_up_sync(0xffffffffu, w, o);
            if (lane >= o) w += u;
        }
        if (lane < nw) sh[lane] = w;
    }
    __syncthreads();
    if (wid > 0) v += sh[wid - 1];
    *total = sh[nw - 1];
    __syncthreads();
    return v;
}

/* PyTorch's source index (see mgl_bilinear_src): no fused multiply-add */
__device__ __forceinline__ void bil_src(int64_t in, int64_t out, int64_t o, int64_t* i0, int64_t* i1, float* lam) {
    const double scale = (double)((float)in / (float)out);
    double src = __dsub_rn(__dmul_rn(scale, (double)o + 0.5), 0.5);
    if (src < 0) src = 0;
    int64_t a = (int64_t)src;
    *i0 = a;
    *i1 = a < in - 1 ? a + 1 : a;
    *lam = (float)(src - (double)a);
}

static inline unsigned blocks_for(int64_t n, int threads) {
    int64_t b = (n + threads - 1) / threads;
    return (unsigned)(b < 1 ? 1 : (b > 0x7fffffff ? 0x7fffffff : b));
}

/* ---- GEMM / GEMV ----------------------------------------------------------- */

template <typename T> __global__ void cast_kernel(const float* __restrict__ x, T* __restrict__ y, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        y[i] = fromf<T>(x[i]);
}

/* y[t, row] = W[row, :] . x[t] (+ bias) for NT rows of x (stride K, y's
 * stride ldy): one warp per weight row, read once for the NT rows; 16-byte
 * loads when aligned. Each row of x has its own sums, formed as for NT = 1,
 * so a row's result does not depend on the others (batched decode). */
template <typename WT, bool VEC, int NT>
__global__ void gemv_kernel(const WT* __restrict__ W, const float* __restrict__ x, const float* __restrict__ bias,
                            float* __restrict__ y, int64_t N, int64_t K, int64_t ldy) {
    const int64_t row = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (row >= N) return;
    const WT* w = W + row * K;
    float acc[NT];
#pragma unroll
    for (int t = 0; t < NT; t++) acc[t] = 0.0f;
    if (VEC) {
        constexpr int V = 16 / sizeof(WT);
#pragma unroll 4
        for (int64_t k = (int64_t)lane * V; k < K; k += 32 * V) {
            uint4 raw = __ldg(reinterpret_cast<const uint4*>(w + k));
            const WT* hv = reinterpret_cast<const WT*>(&raw);
#pragma unroll
            for (int j = 0; j < V; j += 4)
#pragma unroll
                for (int t = 0; t < NT; t++) {
                    float4 xv = __ldg(reinterpret_cast<const float4*>(x + t * K + k + j));
                    acc[t] += tof(hv[j]) * xv.x + tof(hv[j + 1]) * xv.y + tof(hv[j + 2]) * xv.z + tof(hv[j + 3]) * xv.w;
                }
        }
    } else {
        for (int64_t k = lane; k < K; k += 32)
#pragma unroll
            for (int t = 0; t < NT; t++) acc[t] += tof(w[k]) * x[t * K + k];
    }
#pragma unroll
    for (int t = 0; t < NT; t++) {
        const float v = warp_sum(acc[t]);
        if (lane == 0) y[t * ldy + row] = v + (bias ? bias[row] : 0.0f);
    }
}

__global__ void bias_kernel(float* __restrict__ y, const float* __restrict__ b, int64_t T, int64_t N, int64_t ldy) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < T * N; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t t = i / N, n = i % N;
        y[t * ldy + n] += b[n];
    }
}

static cudaDataType cuda_type(MglDType t) {
    return t == MGL_DT_F16 ? CUDA_R_16F : (t == MGL_DT_BF16 ? CUDA_R_16BF : CUDA_R_32F);
}

/* y = A W^T with A (T, K) already in W's dtype */
static void gemm_typed(MglCudaStream* s, const void* A, int64_t T, const MglCudaW* W, float* y, int64_t ldy) {
    const float alpha = 1.0f, beta = 0.0f;
    cudaDataType t = cuda_type(W->dtype);
    mglc_blas_fail(s,
                   cublasGemmEx(s->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)W->rows, (int)T, (int)W->cols, &alpha, W->data,
                                t, (int)W->cols, A, t, (int)W->cols, &beta, y, CUDA_R_32F, (int)ldy, CUBLAS_COMPUTE_32F,
                                CUBLAS_GEMM_DEFAULT),
                   "GemmEx");
}

static void add_bias(MglCudaStream* s, float* y, const float* bias, int64_t T, int64_t N, int64_t ldy) {
    if (!bias) return;
    bias_kernel<<<blocks_for(T * N, 256), 256, 0, s->st>>>(y, bias, T, N, ldy);
    MGLC_LAUNCHED(s, "bias");
}

template <typename WT, int NT>
static void gemv_rows(MglCudaStream* s, const MglCudaW* W, const float* x, const float* bias, float* y, int64_t ldy) {
    constexpr int V = 16 / sizeof(WT);
    const int threads = 256, rows_per_block = threads / 32;
    unsigned grid = blocks_for(W->rows, rows_per_block);
    bool vec = W->cols % V == 0 && ((uintptr_t)x & 15) == 0 && ((uintptr_t)W->data & 15) == 0;
    if (vec)
        gemv_kernel<WT, true, NT><<<grid, threads, 0, s->st>>>((const WT*)W->data, x, bias, y, W->rows, W->cols, ldy);
    else
        gemv_kernel<WT, false, NT><<<grid, threads, 0, s->st>>>((const WT*)W->data, x, bias, y, W->rows, W->cols, ldy);
    MGLC_LAUNCHED(s, "gemv");
}

/* T (1..8) rows of x through the GEMV */
template <typename WT>
static void gemv_launch(MglCudaStream* s, const MglCudaW* W, const float* x, int64_t T, const float* bias, float* y,
                        int64_t ldy) {
    switch (T) {
    case 1: gemv_rows<WT, 1>(s, W, x, bias, y, ldy); break;
    case 2: gemv_rows<WT, 2>(s, W, x, bias, y, ldy); break;
    case 3: gemv_rows<WT, 3>(s, W, x, bias, y, ldy); break;
    case 4: gemv_rows<WT, 4>(s, W, x, bias, y, ldy); break;
    case 5: gemv_rows<WT, 5>(s, W, x, bias, y, ldy); break;
    case 6: gemv_rows<WT, 6>(s, W, x, bias, y, ldy); break;
    case 7: gemv_rows<WT, 7>(s, W, x, bias, y, ldy); break;
    default: gemv_rows<WT, 8>(s, W, x, bias, y, ldy); break;
    }
}

static void gemv_any(MglCudaStream* s, const MglCudaW* W, const float* x, int64_t T, const float* bias, float* y,
                     int64_t ldy) {
    if (W->dtype == MGL_DT_F16)
        gemv_launch<__half>(s, W, x, T, bias, y, ldy);
    else if (W->dtype == MGL_DT_BF16)
        gemv_launch<__nv_bfloat16>(s, W, x, T, bias, y, ldy);
    else
        gemv_launch<float>(s, W, x, T, bias, y, ldy);
}

void mglc_matmul_rows(MglCudaStream* s, const float* x, int64_t T, const MglCudaW* W, const float* bias, float* y,
                      int64_t ldy) {
    for (int64_t t0 = 0; t0 < T; t0 += 8) {
        const int64_t n = T - t0 < 8 ? T - t0 : 8;
        if (W->qbits) { /* q8/q4: up to 8 rows in one GEMV, each with its own sums */
            mgl_cuda_qmatmul(s, x + t0 * W->cols, n, W, y + t0 * ldy, ldy);
            add_bias(s, y + t0 * ldy, bias, n, W->rows, ldy);
        } else {
            gemv_any(s, W, x + t0 * W->cols, n, bias, y + t0 * ldy, ldy);
        }
    }
}

extern "C" void mgl_cuda_matmul(MglCudaStream* s, const float* x, int64_t T, const MglCudaW* W, const float* bias,
                                float* y, int64_t ldy) {
    if (T <= 0) return;
    if (W->qbits) { /* q8/q4: mgl-cuda-quant.cu */
        mgl_cuda_qmatmul(s, x, T, W, y, ldy);
        add_bias(s, y, bias, T, W->rows, ldy);
        return;
    }
    if (T == 1) {
        gemv_any(s, W, x, 1, bias, y, ldy);
        return;
    }
    const void* A = x;
    if (W->dtype != MGL_DT_F32) {
        int64_t n = T * W->cols;
        void* c = mglc_scratch(s, &s->cast, &s->cast_bytes, (size_t)n * 2, "GEMM input");
        if (!c) return;
        if (W->dtype == MGL_DT_F16)
            cast_kernel<__half><<<blocks_for(n, 256), 256, 0, s->st>>>(x, (__half*)c, n);
        else
            cast_kernel<__nv_bfloat16><<<blocks_for(n, 256), 256, 0, s->st>>>(x, (__nv_bfloat16*)c, n);
        MGLC_LAUNCHED(s, "cast");
        A = c;
    }
    gemm_typed(s, A, T, W, y, ldy);
    add_bias(s, y, bias, T, W->rows, ldy);
}

/* ---- norms and elementwise --------------------------------------------------- */

static int row_threads(int64_t C) {
    int64_t t = (C + 31) / 32 * 32;
    return (int)(t < 32 ? 32 : (t > 256 ? 256 : t));
}

__global__ void layernorm_kernel(const float* x, int64_t C, const float* __restrict__ w, const float* __restrict__ b,
                                 float eps, float* y) {
    __shared__ float sh[32];
    const float* xr = x + blockIdx.x * C;
    float* yr = y + blockIdx.x * C;
    float s = 0.0f;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) s += xr[c];
    const float mean = block_sum(s, sh) / (float)C;
    float v = 0.0f;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
        float d = xr[c] - mean;
        v += d * d;
    }
    v = block_sum(v, sh);
    const float rstd = 1.0f / sqrtf(v / (float)C + eps);
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) yr[c] = (xr[c] - mean) * rstd * w[c] + (b ? b[c] : 0.0f);
}

__global__ void rmsnorm_kernel(const float* x, int64_t C, const float* __restrict__ w, float eps, float* y) {
    __shared__ double sh[32];
    const float* xr = x + blockIdx.x * C;
    float* yr = y + blockIdx.x * C;
    double ss = 0.0;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) ss += (double)xr[c] * xr[c];
    ss = block_sum(ss, sh);
    const float r = 1.0f / sqrtf((float)(ss / (double)C) + eps);
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) yr[c] = w[c] * (xr[c] * r);
}

extern "C" void mgl_cuda_layernorm(MglCudaStream* s, const float* x, int64_t T, int64_t C, const float* w,
                                   const float* b, float eps, float* y) {
    if (T <= 0) return;
    layernorm_kernel<<<(unsigned)T, row_threads(C), 0, s->st>>>(x, C, w, b, eps, y);
    MGLC_LAUNCHED(s, "layernorm");
}

extern "C" void mgl_cuda_rmsnorm(MglCudaStream* s, const float* x, int64_t T, int64_t C, const float* w, float eps,
                                 float* y) {
    if (T <= 0) return;
    rmsnorm_kernel<<<(unsigned)T, row_threads(C), 0, s->st>>>(x, C, w, eps, y);
    MGLC_LAUNCHED(s, "rmsnorm");
}

#define GRID_STRIDE(i, n)                                                                                              \
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

__global__ void gelu_kernel(float* x, int64_t n) {
    GRID_STRIDE(i, n) {
        float v = x[i];
        x[i] = 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
    }
}
__global__ void quick_gelu_kernel(float* x, int64_t n) {
    GRID_STRIDE(i, n) {
        float v = x[i];
        x[i] = v / (1.0f + expf(-1.702f * v));
    }
}
__global__ void silu_mul_kernel(const float* g, int64_t ldg, const float* u, int64_t ldu, float* out, int64_t T,
                                int64_t n) {
    GRID_STRIDE(i, T * n) {
        int64_t t = i / n, k = i % n;
        float a = g[t * ldg + k];
        out[i] = a / (1.0f + expf(-a)) * u[t * ldu + k];
    }
}
__global__ void add_kernel(float* y, const float* x, int64_t n) { GRID_STRIDE(i, n) y[i] += x[i]; }
__global__ void scale_add_kernel(float* x, const float* y, const float* g, int64_t rows, int64_t C) {
    GRID_STRIDE(i, rows * C) x[i] += y[i] * g[i % C];
}

extern "C" void mgl_cuda_gelu_erf(MglCudaStream* s, float* x, int64_t n) {
    if (n <= 0) return;
    gelu_kernel<<<blocks_for(n, 256), 256, 0, s->st>>>(x, n);
    MGLC_LAUNCHED(s, "gelu");
}
extern "C" void mgl_cuda_quick_gelu(MglCudaStream* s, float* x, int64_t n) {
    if (n <= 0) return;
    quick_gelu_kernel<<<blocks_for(n, 256), 256, 0, s->st>>>(x, n);
    MGLC_LAUNCHED(s, "quick_gelu");
}
extern "C" void mgl_cuda_silu_mul(MglCudaStream* s, const float* gate, int64_t ldg, const float* up, int64_t ldu,
                                  float* out, int64_t T, int64_t n) {
    if (T * n <= 0) return;
    silu_mul_kernel<<<blocks_for(T * n, 256), 256, 0, s->st>>>(gate, ldg, up, ldu, out, T, n);
    MGLC_LAUNCHED(s, "silu_mul");
}
extern "C" void mgl_cuda_add(MglCudaStream* s, float* y, const float* x, int64_t n) {
    if (n <= 0) return;
    add_kernel<<<blocks_for(n, 256), 256, 0, s->st>>>(y, x, n);
    MGLC_LAUNCHED(s, "add");
}
extern "C" void mgl_cuda_scale_add(MglCudaStream* s, float* x, const float* y, const float* gamma, int64_t rows,
                                   int64_t C) {
    if (rows * C <= 0) return;
    scale_add_kernel<<<blocks_for(rows * C, 256), 256, 0, s->st>>>(x, y, gamma, rows, C);
    MGLC_LAUNCHED(s, "scale_add");
}

__global__ void colmean_kernel(const float* x, int64_t rows, int64_t C, float* mean) {
    int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (c >= C) return;
    double s = 0.0;
    for (int64_t r = 0; r < rows; r++) s += x[r * C + c];
    mean[c] = (float)(s / (double)rows);
}
void mglc_colmean(MglCudaStream* s, const float* x, int64_t rows, int64_t C, float* mean) {
    colmean_kernel<<<blocks_for(C, 128), 128, 0, s->st>>>(x, rows, C, mean);
    MGLC_LAUNCHED(s, "colmean");
}

__global__ void gate_mix_kernel(const float* l, const float* h, const float* g, float* f, int64_t n) {
    const float tg = tanhf(*g);
    GRID_STRIDE(i, n) f[i] = l[i] + h[i] * tg;
}
void mglc_gate_mix(MglCudaStream* s, const float* l, const float* h, const float* g, float* fused, int64_t n) {
    gate_mix_kernel<<<blocks_for(n, 256), 256, 0, s->st>>>(l, h, g, fused, n);
    MGLC_LAUNCHED(s, "gate_mix");
}

/* ---- convolutions, resizes ------------------------------------------------------ */

/* one thread per channel, its 49 taps in registers, 16 output columns of one row */
#define DW_COLS 16
__global__ void dwconv7_kernel(const float* __restrict__ x, int H, int W, int C, const float* __restrict__ w,
                               const float* __restrict__ b, float* __restrict__ y) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    const int r = blockIdx.y, c0 = blockIdx.z * DW_COLS;
    if (c >= C) return;
    float wk[49];
#pragma unroll
    for (int k = 0; k < 49; k++) wk[k] = w[(int64_t)c * 49 + k];
    const float bias = b ? b[c] : 0.0f;
    for (int col = c0; col < c0 + DW_COLS && col < W; col++) {
        float acc = bias;
#pragma unroll
        for (int ky = 0; ky < 7; ky++) {
            int yy = r + ky - 3;
            if (yy < 0 || yy >= H) continue;
#pragma unroll
            for (int kx = 0; kx < 7; kx++) {
                int xx = col + kx - 3;
                if (xx < 0 || xx >= W) continue;
                acc += x[((int64_t)yy * W + xx) * C + c] * wk[ky * 7 + kx];
            }
        }
        y[((int64_t)r * W + col) * C + c] = acc;
    }
}

extern "C" void mgl_cuda_dwconv7_nhwc(MglCudaStream* s, const float* x, int64_t H, int64_t W, int64_t C, const float* w,
                                      const float* b, float* y) {
    dim3 grid((unsigned)((C + 127) / 128), (unsigned)H, (unsigned)((W + DW_COLS - 1) / DW_COLS));
    dwconv7_kernel<<<grid, 128, 0, s->st>>>(x, (int)H, (int)W, (int)C, w, b, y);
    MGLC_LAUNCHED(s, "dwconv7");
}

template <typename OT>
__global__ void im2col_kernel(const float* __restrict__ x, bool chw, int64_t H, int64_t W, int64_t Cin, int64_t k,
                              int64_t Wo, int64_t total, OT* __restrict__ cols) {
    const int64_t K = Cin * k * k;
    GRID_STRIDE(i, total) {
        int64_t row = i / K, j = i % K;
        int64_t ci = j / (k * k), ky = (j / k) % k, kx = j % k;
        int64_t oy = row / Wo, ox = row % Wo, iy = oy * k + ky, ix = ox * k + kx;
        float v = chw ? x[(ci * H + iy) * W + ix] : x[(iy * W + ix) * Cin + ci];
        cols[i] = fromf<OT>(v);
    }
}

extern "C" void mgl_cuda_patchify_conv(MglCudaStream* s, const float* x, bool chw, int64_t H, int64_t W, int64_t Cin,
                                       int64_t k, const MglCudaW* wt, const float* bias, float* y) {
    const int64_t Ho = H / k, Wo = W / k, K = Cin * k * k, total = Ho * Wo * K;
    const size_t es = mglc_dtsize(wt->dtype);
    void* cols = mglc_scratch(s, &s->tmp, &s->tmp_bytes, (size_t)total * es, "im2col");
    if (!cols) return;
    unsigned g = blocks_for(total, 256);
    if (wt->dtype == MGL_DT_F16)
        im2col_kernel<__half><<<g, 256, 0, s->st>>>(x, chw, H, W, Cin, k, Wo, total, (__half*)cols);
    else if (wt->dtype == MGL_DT_BF16)
        im2col_kernel<__nv_bfloat16><<<g, 256, 0, s->st>>>(x, chw, H, W, Cin, k, Wo, total, (__nv_bfloat16*)cols);
    else
        im2col_kernel<float><<<g, 256, 0, s->st>>>(x, chw, H, W, Cin, k, Wo, total, (float*)cols);
    if (MGLC_LAUNCHED(s, "im2col")) return;
    gemm_typed(s, cols, Ho * Wo, wt, y, wt->rows);
    add_bias(s, y, bias, Ho * Wo, wt->rows, wt->rows);
}

__global__ void resize_kernel(const float* __restrict__ x, int64_t C, int64_t H, int64_t W, int64_t Ho, int64_t Wo,
                              float* __restrict__ y, bool nhwc) {
    GRID_STRIDE(i, C * Ho * Wo) {
        int64_t c, oy, ox;
        if (nhwc) {
            c = i % C;
            ox = (i / C) % Wo;
            oy = i / (C * Wo);
        } else {
            ox = i % Wo;
            oy = (i / Wo) % Ho;
            c = i / (Wo * Ho);
        }
        int64_t h0, h1, w0, w1;
        float hl1, wl1;
        bil_src(H, Ho, oy, &h0, &h1, &hl1);
        bil_src(W, Wo, ox, &w0, &w1, &wl1);
        const float hl0 = 1.0f - hl1, wl0 = 1.0f - wl1;
        float a, b, cc, d;
        if (nhwc) {
            a = x[(h0 * W + w0) * C + c];
            b = x[(h0 * W + w1) * C + c];
            cc = x[(h1 * W + w0) * C + c];
            d = x[(h1 * W + w1) * C + c];
        } else {
            const float* xc = x + c * H * W;
            a = xc[h0 * W + w0];
            b = xc[h0 * W + w1];
            cc = xc[h1 * W + w0];
            d = xc[h1 * W + w1];
        }
        y[i] = hl0 * (wl0 * a + wl1 * b) + hl1 * (wl0 * cc + wl1 * d);
    }
}

extern "C" void mgl_cuda_resize_bilinear_chw(MglCudaStream* s, const float* x, int64_t C, int64_t H, int64_t W,
                                             int64_t Ho, int64_t Wo, float* y) {
    resize_kernel<<<blocks_for(C * Ho * Wo, 256), 256, 0, s->st>>>(x, C, H, W, Ho, Wo, y, false);
    MGLC_LAUNCHED(s, "resize");
}
extern "C" void mgl_cuda_resize_bilinear_nhwc(MglCudaStream* s, const float* x, int64_t H, int64_t W, int64_t C,
                                              int64_t Ho, int64_t Wo, float* y) {
    resize_kernel<<<blocks_for(C * Ho * Wo, 256), 256, 0, s->st>>>(x, C, H, W, Ho, Wo, y, true);
    MGLC_LAUNCHED(s, "resize");
}

/* ---- RoPE, KV rows, embeddings ----------------------------------------------------- */

extern "C" MglStatus mgl_cuda_rope_table(int64_t HS, float theta, float** out, MglErr* err) {
    *out = NULL;
    const int64_t half = HS / 2;
    float* inv = (float*)malloc(sizeof(float) * (size_t)(half ? half : 1));
    if (!inv) return mgl_err(err, MGL_E_NOMEM, "out of memory");
    /* the CPU formula, evaluated on the host: same bits */
    for (int64_t i = 0; i < half; i++) inv[i] = 1.0f / powf(theta, (float)(2 * i) / (float)HS);
    void* d = NULL;
    MglStatus st = mglc_malloc(&d, sizeof(float) * (size_t)(half ? half : 1), "RoPE table", err);
    if (st == MGL_OK) st = mgl_cuda_upload(d, inv, sizeof(float) * (size_t)half, err);
    free(inv);
    if (st != MGL_OK) {
        mgl_cuda_free(d);
        return st;
    }
    *out = (float*)d;
    return MGL_OK;
}

/* positions: pos0 + t, or *d_pos + t, or (per_row, a batch of sequences) d_pos[t] */
__global__ void rope_kernel(float* x, int64_t ldx, int64_t T, int64_t NH, int64_t HS, int64_t pos0, const int* d_pos,
                            bool per_row, const float* __restrict__ inv) {
    const int64_t half = HS / 2;
    const int64_t base = d_pos && !per_row ? (int64_t)*d_pos : pos0;
    GRID_STRIDE(i, T * NH * half) {
        int64_t k = i % half, h = (i / half) % NH, t = i / (half * NH);
        float a = (float)(per_row ? (int64_t)d_pos[t] : base + t) * inv[k];
        float c = cosf(a), s = sinf(a);
        float* v = x + t * ldx + h * HS;
        float x0 = v[k], x1 = v[k + half];
        v[k] = x0 * c - x1 * s;
        v[k + half] = x1 * c + x0 * s;
    }
}

void mglc_rope(MglCudaStream* s, float* x, int64_t ldx, int64_t T, int64_t NH, int64_t HS, int64_t pos0,
               const int* d_pos, const float* inv) {
    int64_t n = T * NH * (HS / 2);
    if (n <= 0) return;
    rope_kernel<<<blocks_for(n, 256), 256, 0, s->st>>>(x, ldx, T, NH, HS, pos0, d_pos, false, inv);
    MGLC_LAUNCHED(s, "rope");
}

void mglc_rope_rows(MglCudaStream* s, float* x, int64_t ldx, int64_t T, int64_t NH, int64_t HS, const int* d_pos,
                    const float* inv) {
    int64_t n = T * NH * (HS / 2);
    if (n <= 0) return;
    rope_kernel<<<blocks_for(n, 256), 256, 0, s->st>>>(x, ldx, T, NH, HS, 0, d_pos, true, inv);
    MGLC_LAUNCHED(s, "rope (rows)");
}

extern "C" void mgl_cuda_rope(MglCudaStream* s, float* x, int64_t ldx, int64_t T, int64_t NH, int64_t HS, int64_t pos0,
                              const float* inv) {
    mglc_rope(s, x, ldx, T, NH, HS, pos0, NULL, inv);
}

template <typename T>
__global__ void store_rows_kernel(const float* __restrict__ x, int64_t ldx, int64_t rows, int64_t n, T* dst,
                                  int64_t row0, const int* d_pos) {
    const int64_t r0 = d_pos ? (int64_t)*d_pos : row0;
    GRID_STRIDE(i, rows * n) {
        int64_t t = i / n, j = i % n;
        dst[(r0 + t) * n + j] = fromf<T>(x[t * ldx + j]);
    }
}

void mglc_store_rows(MglCudaStream* s, const float* x, int64_t ldx, int64_t T, int64_t n, void* dst, MglDType dt,
                     int64_t row0, const int* d_pos) {
    unsigned g = blocks_for(T * n, 256);
    if (dt == MGL_DT_F16)
        store_rows_kernel<__half><<<g, 256, 0, s->st>>>(x, ldx, T, n, (__half*)dst, row0, d_pos);
    else if (dt == MGL_DT_BF16)
        store_rows_kernel<__nv_bfloat16><<<g, 256, 0, s->st>>>(x, ldx, T, n, (__nv_bfloat16*)dst, row0, d_pos);
    else
        store_rows_kernel<float><<<g, 256, 0, s->st>>>(x, ldx, T, n, (float*)dst, row0, d_pos);
    MGLC_LAUNCHED(s, "store_rows");
}

/* row t of x into its own sequence's cache (layer tab.layer) at position tab.pos[t] */
template <typename T>
__global__ void store_seqs_kernel(const float* __restrict__ x, int64_t ldx, int64_t rows, int64_t n, MglcSeqTab tab,
                                  bool values) {
    GRID_STRIDE(i, rows * n) {
        int64_t t = i / n, j = i % n;
        T* dst = (T*)((values ? tab.v[t] : tab.k[t]) + tab.layer * tab.lstride[t]);
        dst[(int64_t)tab.pos[t] * n + j] = fromf<T>(x[t * ldx + j]);
    }
}

void mglc_store_seqs(MglCudaStream* s, const float* x, int64_t ldx, int64_t T, int64_t n, const MglcSeqTab* tab,
                     bool values, MglDType dt) {
    unsigned g = blocks_for(T * n, 256);
    if (dt == MGL_DT_F16)
        store_seqs_kernel<__half><<<g, 256, 0, s->st>>>(x, ldx, T, n, *tab, values);
    else if (dt == MGL_DT_BF16)
        store_seqs_kernel<__nv_bfloat16><<<g, 256, 0, s->st>>>(x, ldx, T, n, *tab, values);
    else
        store_seqs_kernel<float><<<g, 256, 0, s->st>>>(x, ldx, T, n, *tab, values);
    MGLC_LAUNCHED(s, "store_rows (sequences)");
}

extern "C" void mgl_cuda_store_rows(MglCudaStream* s, const float* x, int64_t ldx, int64_t T, int64_t n, void* dst,
                                    MglDType dt, int64_t row0) {
    mglc_store_rows(s, x, ldx, T, n, dst, dt, row0, NULL);
}

template <typename T>
__global__ void embed_kernel(const T* __restrict__ E, int64_t rows, int64_t H, const int32_t* __restrict__ ids,
                             int64_t n, float* __restrict__ out) {
    GRID_STRIDE(i, n * H) {
        int64_t r = i / H, j = i % H;
        int64_t id = ids[r];
        out[i] = (id >= 0 && id < rows) ? tof(E[id * H + j]) : 0.0f;
    }
}

extern "C" void mgl_cuda_embed(MglCudaStream* s, const MglCudaW* E, const int32_t* ids, int64_t n, float* out) {
    if (n <= 0) return;
    unsigned g = blocks_for(n * E->cols, 256);
    if (E->dtype == MGL_DT_F16)
        embed_kernel<__half><<<g, 256, 0, s->st>>>((const __half*)E->data, E->rows, E->cols, ids, n, out);
    else if (E->dtype == MGL_DT_BF16)
        embed_kernel<__nv_bfloat16><<<g, 256, 0, s->st>>>((const __nv_bfloat16*)E->data, E->rows, E->cols, ids, n, out);
    else
        embed_kernel<float><<<g, 256, 0, s->st>>>((const float*)E->data, E->rows, E->cols, ids, n, out);
    MGLC_LAUNCHED(s, "embed");
}

/* ---- attention ------------------------------------------------------------------------ */

/* Prefill on the tensor cores: per head S = (scale Q) K^T and O = P V are
 * cuBLAS GEMMs in the KV cache's dtype with fp32 accumulation (f32 caches stay
 * f32 throughout), and a row softmax between them applies the causal limit and
 * writes P in the cache dtype. GQA: head h reads KV head h / (NH / NKV), so the
 * heads go as NH/NKV strided batches of NKV. Query rows go in chunks that keep
 * S and P under ATTN_SCRATCH bytes (long prompts never need T x L at once). */
#define ATTN_SCRATCH ((size_t)256 << 20)

template <typename T> struct CudaType;
template <> struct CudaType<float> { static constexpr cudaDataType value = CUDA_R_32F; };
template <> struct CudaType<__half> { static constexpr cudaDataType value = CUDA_R_16F; };
template <> struct CudaType<__nv_bfloat16> { static constexpr cudaDataType value = CUDA_R_16BF; };

template <typename KT>
__global__ void attn_pack_q_kernel(const float* __restrict__ q, int64_t ldq, int64_t T, int64_t D, float scale,
                                   KT* __restrict__ out) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < T * D; i += (int64_t)gridDim.x * blockDim.x)
        out[i] = fromf<KT>(q[(i / D) * ldq + i % D] * scale);
}

/* one block per row (h, r) of S (rows of L scores); query t0 + r sees keys < pos0 + t0 + r + 1 when causal */
template <typename KT>
__global__ void attn_softmax_kernel(const float* __restrict__ S, int64_t L, int Tc, int t0, int pos0, bool causal,
                                    KT* __restrict__ P) {
    __shared__ float red[32];
    const int64_t row = blockIdx.x;
    const int64_t lim = causal ? min(L, (int64_t)pos0 + t0 + (int)(row % Tc) + 1) : L;
    const float* s = S + row * L;
    KT* p = P + row * L;
    float m = -INFINITY;
    for (int64_t j = threadIdx.x; j < lim; j += blockDim.x) m = fmaxf(m, s[j]);
    m = block_max(m, red);
    float sum = 0.0f;
    for (int64_t j = threadIdx.x; j < lim; j += blockDim.x) sum += expf(s[j] - m);
    sum = block_sum(sum, red);
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    for (int64_t j = threadIdx.x; j < L; j += blockDim.x) p[j] = fromf<KT>(j < lim ? expf(s[j] - m) * inv : 0.0f);
}

template <typename KT>
static void attn_prefill(MglCudaStream* s, const float* q, int64_t ldq, int64_t T, int64_t pos0, const void* kc,
                         const void* vc, int64_t ldkv, int64_t NH, int64_t NKV, int64_t HS, bool causal, float scale,
                         float* out, int64_t ldo) {
    const int64_t L = pos0 + T, D = NH * HS, R = NH / NKV;
    const size_t es = sizeof(KT);
    int64_t Tc = (int64_t)(ATTN_SCRATCH / ((size_t)(NH * L) * (sizeof(float) + es)));
    Tc = Tc < 1 ? 1 : (Tc > T ? T : Tc);
    const size_t q_bytes = ((size_t)(T * D) * es + 255) & ~(size_t)255;
    const size_t s_bytes = ((size_t)(NH * Tc * L) * sizeof(float) + 255) & ~(size_t)255;
    uint8_t* buf = (uint8_t*)mglc_scratch(s, &s->attn, &s->attn_bytes, q_bytes + s_bytes + (size_t)(NH * Tc * L) * es,
                                          "attention scores");
    if (!buf) return;
    KT* qp = (KT*)buf;
    float* S = (float*)(buf + q_bytes);
    KT* P = (KT*)(buf + q_bytes + s_bytes);
    attn_pack_q_kernel<KT><<<blocks_for(T * D, 256), 256, 0, s->st>>>(q, ldq, T, D, scale, qp);
    if (MGLC_LAUNCHED(s, "attention (queries)")) return;
    const cudaDataType dt = CudaType<KT>::value;
    const float one = 1.0f, zero = 0.0f;
    for (int64_t t0 = 0; t0 < T; t0 += Tc) {
        const int64_t n = T - t0 < Tc ? T - t0 : Tc;
        for (int64_t j = 0; j < R; j++) { /* heads h = g R + j, g = 0 .. NKV-1 */
            if (mglc_blas_fail(s,
                               cublasGemmStridedBatchedEx(s->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)L, (int)n, (int)HS,
                                                          &one, kc, dt, (int)ldkv, (long long)HS, qp + t0 * D + j * HS,
                                                          dt, (int)D, (long long)(R * HS), &zero, S + j * n * L,
                                                          CUDA_R_32F, (int)L, (long long)(R * n * L), (int)NKV,
                                                          CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                               "attention scores GEMM"))
                return;
        }
        attn_softmax_kernel<KT><<<(unsigned)(NH * n), 256, 0, s->st>>>(S, L, (int)n, (int)t0, (int)pos0, causal, P);
        if (MGLC_LAUNCHED(s, "attention (softmax)")) return;
        for (int64_t j = 0; j < R; j++) {
            if (mglc_blas_fail(s,
                               cublasGemmStridedBatchedEx(
                                   s->blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)HS, (int)n, (int)L, &one, vc, dt, (int)ldkv,
                                   (long long)HS, P + j * n * L, dt, (int)L, (long long)(R * n * L), &zero,
                                   out + t0 * ldo + j * HS, CUDA_R_32F, (int)ldo, (long long)(R * HS), (int)NKV,
                                   CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                               "attention output GEMM"))
                return;
        }
    }
}

/* Split-K decode: block (row = t*NH + h, split) walks its slice of the keys,
 * one key per warp step (lanes across the head dims, coalesced), then the 4
 * warps merge; attn_combine_kernel merges the splits. */
#define DC_SPLITS 16
#define DC_WARPS 4

template <int DPL, typename KT>
__global__ void __launch_bounds__(DC_WARPS * 32)
    attn_decode_kernel(const float* __restrict__ q, int64_t ldq, int T, int pos0, const int* d_pos,
                       const KT* __restrict__ kc, const KT* __restrict__ vc, int64_t ldkv, int NH, int NKV, int HS,
                       bool causal, float scale, float* __restrict__ part, MglcSeqTab tab) {
    __shared__ float sm_m[DC_WARPS], sm_l[DC_WARPS];
    __shared__ float sm_acc[DC_WARPS][DPL * 32];
    const int row = blockIdx.x, t = row / NH, h = row % NH, kvh = h / (NH / NKV), split = blockIdx.y;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int p0 = d_pos ? *d_pos : pos0, L = p0 + T, lim = causal ? p0 + t + 1 : L;
    if (tab.pos) { /* a batch of sequences: row t is one token of its own sequence (as T = 1 alone) */
        p0 = tab.pos[t];
        L = lim = p0 + 1;
        kc = (const KT*)(tab.k[t] + tab.layer * tab.lstride[t]);
        vc = (const KT*)(tab.v[t] + tab.layer * tab.lstride[t]);
    }
    const int chunk = (lim + gridDim.y - 1) / gridDim.y;
    const int kb = split * chunk, ke = min(lim, kb + chunk);
    float qr[DPL], acc[DPL];
#pragma unroll
    for (int i = 0; i < DPL; i++) {
        int d = lane + 32 * i;
        qr[i] = d < HS ? q[(int64_t)t * ldq + (int64_t)h * HS + d] * scale : 0.0f;
        acc[i] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    for (int j = kb + warp; j < ke; j += DC_WARPS) {
        const KT* kr = kc + (int64_t)j * ldkv + (int64_t)kvh * HS;
        const KT* vr = vc + (int64_t)j * ldkv + (int64_t)kvh * HS;
        float dot = 0.0f, vv[DPL];
#pragma unroll
        for (int i = 0; i < DPL; i++) {
            int d = lane + 32 * i;
            float kx = d < HS ? tof(kr[d]) : 0.0f;
            vv[i] = d < HS ? tof(vr[d]) : 0.0f;
            dot += qr[i] * kx;
        }
        const float sc = warp_sum(dot);
        const float mnew = fmaxf(m, sc);
        const float corr = m == -INFINITY ? 0.0f : expf(m - mnew);
        const float p = expf(sc - mnew);
        l = l * corr + p;
#pragma unroll
        for (int i = 0; i < DPL; i++) acc[i] = acc[i] * corr + p * vv[i];
        m = mnew;
    }
    if (lane == 0) {
        sm_m[warp] = m;
        sm_l[warp] = l;
    }
#pragma unroll
    for (int i = 0; i < DPL; i++) sm_acc[warp][lane + 32 * i] = acc[i];
    __syncthreads();
    float M = -INFINITY;
    for (int w = 0; w < DC_WARPS; w++) M = fmaxf(M, sm_m[w]);
    float* dst = part + ((int64_t)row * gridDim.y + split) * (HS + 2);
    for (int d = threadIdx.x; d < HS; d += blockDim.x) {
        float a = 0.0f;
        if (M != -INFINITY)
            for (int w = 0; w < DC_WARPS; w++)
                if (sm_m[w] != -INFINITY) a += sm_acc[w][d] * expf(sm_m[w] - M);
        dst[d] = a;
    }
    if (threadIdx.x == 0) {
        float Ls = 0.0f;
        if (M != -INFINITY)
            for (int w = 0; w < DC_WARPS; w++)
                if (sm_m[w] != -INFINITY) Ls += sm_l[w] * expf(sm_m[w] - M);
        dst[HS] = M;
        dst[HS + 1] = Ls;
    }
}

__global__ void attn_combine_kernel(const float* __restrict__ part, int splits, int NH, int HS, float* __restrict__ out,
                                    int64_t ldo) {
    const int row = blockIdx.x, t = row / NH, h = row % NH;
    const float* p = part + (int64_t)row * splits * (HS + 2);
    float M = -INFINITY;
    for (int s = 0; s < splits; s++) M = fmaxf(M, p[s * (HS + 2) + HS]);
    float Ls = 0.0f;
    if (M != -INFINITY)
        for (int s = 0; s < splits; s++) {
            float ms = p[s * (HS + 2) + HS];
            if (ms != -INFINITY) Ls += p[s * (HS + 2) + HS + 1] * expf(ms - M);
        }
    const float inv = Ls > 0.0f ? 1.0f / Ls : 0.0f;
    for (int d = threadIdx.x; d < HS; d += blockDim.x) {
        float a = 0.0f;
        if (M != -INFINITY)
            for (int s = 0; s < splits; s++) {
                float ms = p[s * (HS + 2) + HS];
                if (ms != -INFINITY) a += p[s * (HS + 2) + d] * expf(ms - M);
            }
        out[(int64_t)t * ldo + (int64_t)h * HS + d] = a * inv;
    }
}

int64_t mglc_attn_partial_floats(int64_t T, int64_t NH, int64_t HS) { return T * NH * DC_SPLITS * (HS + 2); }

template <int DPL, typename KT>
static void attn_launch(MglCudaStream* s, const float* q, int64_t ldq, int64_t T, int64_t pos0, const int* d_pos,
                        const void* kc, const void* vc, int64_t ldkv, int64_t NH, int64_t NKV, int64_t HS, bool causal,
                        float* out, int64_t ldo, float* part, const MglcSeqTab* tab) {
    const float scale = 1.0f / sqrtf((float)HS);
    if (T <= 4 || tab) {
        if (!part) {
            part = (float*)mglc_scratch(s, &s->tmp, &s->tmp_bytes,
                                        sizeof(float) * (size_t)mglc_attn_partial_floats(T, NH, HS), "attention");
            if (!part) return;
        }
        dim3 grid((unsigned)(T * NH), DC_SPLITS);
        attn_decode_kernel<DPL, KT><<<grid, DC_WARPS * 32, 0, s->st>>>(q, ldq, (int)T, (int)pos0, d_pos, (const KT*)kc,
                                                                       (const KT*)vc, ldkv, (int)NH, (int)NKV, (int)HS,
                                                                       causal, scale, part, tab ? *tab : MglcSeqTab{});
        if (MGLC_LAUNCHED(s, "attention (decode)")) return;
        attn_combine_kernel<<<(unsigned)(T * NH), 128, 0, s->st>>>(part, DC_SPLITS, (int)NH, (int)HS, out, ldo);
        MGLC_LAUNCHED(s, "attention (combine)");
        return;
    }
    /* prefill reads the position from the host: it is never graph-captured */
    attn_prefill<KT>(s, q, ldq, T, pos0, kc, vc, ldkv, NH, NKV, HS, causal, scale, out, ldo);
}

template <typename KT>
static void attn_dispatch(MglCudaStream* s, const float* q, int64_t ldq, int64_t T, int64_t pos0, const int* d_pos,
                          const void* kc, const void* vc, int64_t ldkv, int64_t NH, int64_t NKV, int64_t HS,
                          bool causal, float* out, int64_t ldo, float* part, const MglcSeqTab* tab) {
    if (HS <= 32)
        attn_launch<1, KT>(s, q, ldq, T, pos0, d_pos, kc, vc, ldkv, NH, NKV, HS, causal, out, ldo, part, tab);
    else if (HS <= 64)
        attn_launch<2, KT>(s, q, ldq, T, pos0, d_pos, kc, vc, ldkv, NH, NKV, HS, causal, out, ldo, part, tab);
    else if (HS <= 128)
        attn_launch<4, KT>(s, q, ldq, T, pos0, d_pos, kc, vc, ldkv, NH, NKV, HS, causal, out, ldo, part, tab);
    else
        attn_launch<8, KT>(s, q, ldq, T, pos0, d_pos, kc, vc, ldkv, NH, NKV, HS, causal, out, ldo, part, tab);
}

static void attention_any(MglCudaStream* s, const float* q, int64_t ldq, int64_t T, int64_t pos0, const int* d_pos,
                          const void* kc, const void* vc, int64_t ldkv, MglDType kvt, int64_t NH, int64_t NKV,
                          int64_t HS, bool causal, float* out, int64_t ldo, float* part, const MglcSeqTab* tab) {
    if (T <= 0) return;
    if (HS > 256 || HS <= 0 || NKV <= 0 || NH % NKV != 0) {
        if (s->st_err == MGL_OK) {
            s->st_err = MGL_E_UNSUPPORTED;
            snprintf(s->msg, sizeof s->msg, "CUDA attention: head size %lld, %lld heads over %lld KV heads unsupported",
                     (long long)HS, (long long)NH, (long long)NKV);
        }
        return;
    }
    if (kvt == MGL_DT_F16)
        attn_dispatch<__half>(s, q, ldq, T, pos0, d_pos, kc, vc, ldkv, NH, NKV, HS, causal, out, ldo, part, tab);
    else if (kvt == MGL_DT_BF16)
        attn_dispatch<__nv_bfloat16>(s, q, ldq, T, pos0, d_pos, kc, vc, ldkv, NH, NKV, HS, causal, out, ldo, part, tab);
    else
        attn_dispatch<float>(s, q, ldq, T, pos0, d_pos, kc, vc, ldkv, NH, NKV, HS, causal, out, ldo, part, tab);
}

void mglc_attention(MglCudaStream* s, const float* q, int64_t ldq, int64_t T, int64_t pos0, const int* d_pos,
                    const void* kc, const void* vc, int64_t ldkv, MglDType kvt, int64_t NH, int64_t NKV, int64_t HS,
                    bool causal, float* out, int64_t ldo, float* part) {
    attention_any(s, q, ldq, T, pos0, d_pos, kc, vc, ldkv, kvt, NH, NKV, HS, causal, out, ldo, part, NULL);
}

void mglc_attention_seqs(MglCudaStream* s, const float* q, int64_t ldq, int64_t n, const MglcSeqTab* tab, int64_t ldkv,
                         MglDType kvt, int64_t NH, int64_t NKV, int64_t HS, float* out, int64_t ldo, float* part) {
    attention_any(s, q, ldq, n, 0, NULL, NULL, NULL, ldkv, kvt, NH, NKV, HS, true, out, ldo, part, tab);
}

extern "C" void mgl_cuda_attention(MglCudaStream* s, const float* q, int64_t ldq, int64_t T, int64_t pos0,
                                   const void* kc, const void* vc, int64_t ldkv, MglDType kvt, int64_t NH, int64_t NKV,
                                   int64_t HS, bool causal, float* out, int64_t ldo) {
    mglc_attention(s, q, ldq, T, pos0, NULL, kc, vc, ldkv, kvt, NH, NKV, HS, causal, out, ldo, NULL);
}

/* ---- argmax and sampling ------------------------------------------------------------------ */

__global__ void argmax_kernel(const float* __restrict__ x, int64_t V, int32_t* out) {
    __shared__ float sv[1024];
    __shared__ int32_t si[1024];
    float best = -INFINITY;
    int32_t bi = -1;
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x)
        if (bi < 0 || x[i] > best) {
            best = x[i];
            bi = (int32_t)i;
        }
    sv[threadIdx.x] = best;
    si[threadIdx.x] = bi;
    __syncthreads();
    for (int o = blockDim.x / 2; o; o >>= 1) {
        if (threadIdx.x < o) {
            float v2 = sv[threadIdx.x + o];
            int32_t i2 = si[threadIdx.x + o];
            int32_t i1 = si[threadIdx.x];
            /* larger value wins; equal values: the smaller index (the CPU's first maximum) */
            if (i2 >= 0 && (i1 < 0 || v2 > sv[threadIdx.x] || (v2 == sv[threadIdx.x] && i2 < i1))) {
                sv[threadIdx.x] = v2;
                si[threadIdx.x] = i2;
            }
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) *out = si[0] < 0 ? 0 : si[0];
}

extern "C" void mgl_cuda_argmax(MglCudaStream* s, const float* logits, int64_t V, int32_t* out) {
    argmax_kernel<<<1, 1024, 0, s->st>>>(logits, V, out);
    MGLC_LAUNCHED(s, "argmax");
}

__global__ void mask_logits_kernel(float* logits, int64_t V, const uint32_t* allow) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < V; i += (int64_t)gridDim.x * blockDim.x)
        if (!((allow[i >> 5] >> (i & 31)) & 1u)) logits[i] = -INFINITY;
}

__global__ void nan_flag_kernel(const float* logits, int64_t V, int32_t* flag) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < V; i += (int64_t)gridDim.x * blockDim.x)
        if (isnan(logits[i])) *flag = 1;
}

extern "C" void mgl_cuda_nan_flag(MglCudaStream* s, const float* logits, int64_t V, int32_t* flag) {
    int64_t blocks = (V + 255) / 256;
    if (blocks > 1024) blocks = 1024;
    mglc_fail(s, cudaMemsetAsync(flag, 0, sizeof(int32_t), s->st), "NaN flag");
    nan_flag_kernel<<<(unsigned)blocks, 256, 0, s->st>>>(logits, V, flag);
    MGLC_LAUNCHED(s, "NaN flag");
}

extern "C" void mgl_cuda_mask_logits(MglCudaStream* s, float* logits, int64_t V, const uint32_t* allow) {
    int64_t blocks = (V + 255) / 256;
    if (blocks > 1024) blocks = 1024;
    mask_logits_kernel<<<(unsigned)blocks, 256, 0, s->st>>>(logits, V, allow);
    MGLC_LAUNCHED(s, "logits mask");
}

struct MglCudaSampler {
    int64_t V;
    float *keys_in, *keys_out;
    int32_t *ids_in, *ids_out;
    void* tmp;
    size_t tmp_bytes;
};

extern "C" MglStatus mgl_cuda_sampler_new(int64_t V, MglCudaSampler** out, MglErr* err) {
    *out = NULL;
    MglCudaSampler* sp = (MglCudaSampler*)calloc(1, sizeof *sp);
    if (!sp) return mgl_err(err, MGL_E_NOMEM, "out of memory");
    sp->V = V;
    size_t fb = sizeof(float) * (size_t)V, ib = sizeof(int32_t) * (size_t)V;
    MglStatus st = mglc_malloc((void**)&sp->keys_in, fb, "sampler", err);
    if (st == MGL_OK) st = mglc_malloc((void**)&sp->keys_out, fb, "sampler", err);
    if (st == MGL_OK) st = mglc_malloc((void**)&sp->ids_in, ib, "sampler", err);
    if (st == MGL_OK) st = mglc_malloc((void**)&sp->ids_out, ib, "sampler", err);
    if (st == MGL_OK) {
        cudaError_t e = cub::DeviceRadixSort::SortPairsDescending(NULL, sp->tmp_bytes, sp->keys_in, sp->keys_out,
                                                                  sp->ids_in, sp->ids_out, (int)V);
        if (e != cudaSuccess) st = mgl_err(err, MGL_E_DEVICE, "CUDA: sampler: %s", cudaGetErrorString(e));
    }
    if (st == MGL_OK) st = mglc_malloc(&sp->tmp, sp->tmp_bytes, "sampler", err);
    if (st != MGL_OK) {
        mgl_cuda_sampler_free(sp);
        return st;
    }
    *out = sp;
    return MGL_OK;
}

extern "C" void mgl_cuda_sampler_free(MglCudaSampler* sp) {
    if (!sp) return;
    mgl_cuda_free(sp->keys_in);
    mgl_cuda_free(sp->keys_out);
    mgl_cuda_free(sp->ids_in);
    mgl_cuda_free(sp->ids_out);
    mgl_cuda_free(sp->tmp);
    free(sp);
}

__global__ void sample_prep_kernel(const float* logits, float temp, int64_t V, float* keys, int32_t* ids) {
    GRID_STRIDE(i, V) {
        keys[i] = logits[i] / temp;
        ids[i] = (int32_t)i;
    }
}

/* Keys sorted descending (stable: ties by id). One block of 1024 threads:
 * the softmax of the first n, the top-p cut, then the draw, each a chunked
 * prefix sum over the sorted list. */
__global__ void sample_kernel(const float* __restrict__ keys, const int32_t* __restrict__ ids, int64_t V, int top_k,
                              float top_p, double u, int32_t* out) {
    const int NOT_FOUND = 0x7fffffff;
    __shared__ double sh[32];
    __shared__ int found;
    const int64_t n = top_k > 0 && top_k < V ? top_k : V;
    const float mx = keys[0];
    double part = 0.0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) part += (double)expf(keys[i] - mx);
    double sum = block_sum(part, sh);
    int64_t keep = n;
    if (top_p > 0.0f && top_p < 1.0f) {
        if (threadIdx.x == 0) found = NOT_FOUND;
        __syncthreads();
        double carry = 0.0;
        for (int64_t base = 0; base < n; base += blockDim.x) {
            int64_t i = base + threadIdx.x;
            double v = i < n ? (double)expf(keys[i] - mx) / sum : 0.0;
            double tot;
            double cum = carry + block_scan(v, sh, &tot);
            if (i < n && cum >= (double)top_p) atomicMin(&found, (int)i);
            __syncthreads();
            if (found != NOT_FOUND) break; /* uniform: read after the barrier */
            carry += tot;
        }
        if (found != NOT_FOUND) keep = found + 1;
        __syncthreads();
        part = 0.0;
        for (int64_t i = threadIdx.x; i < keep; i += blockDim.x) part += (double)expf(keys[i] - mx);
        sum = block_sum(part, sh);
    }
    const double r = u * sum;
    if (threadIdx.x == 0) found = NOT_FOUND;
    __syncthreads();
    double carry = 0.0;
    for (int64_t base = 0; base < keep; base += blockDim.x) {
        int64_t i = base + threadIdx.x;
        double v = i < keep ? (double)expf(keys[i] - mx) : 0.0;
        double tot;
        double cum = carry + block_scan(v, sh, &tot);
        if (i < keep && r - cum < 0.0) atomicMin(&found, (int)i);
        __syncthreads();
        if (found != NOT_FOUND) break;
        carry += tot;
    }
    if (threadIdx.x == 0) *out = ids[found != NOT_FOUND ? found : keep - 1];
}

extern "C" void mgl_cuda_sample(MglCudaStream* s, MglCudaSampler* sp, const float* logits, float temperature, int top_k,
                                float top_p, double u, int32_t* out) {
    const int64_t V = sp->V;
    sample_prep_kernel<<<blocks_for(V, 256), 256, 0, s->st>>>(logits, temperature, V, sp->keys_in, sp->ids_in);
    if (MGLC_LAUNCHED(s, "sample prep")) return;
    size_t tb = sp->tmp_bytes;
    if (mglc_fail(s,
                  cub::DeviceRadixSort::SortPairsDescending(sp->tmp, tb, sp->keys_in, sp->keys_out, sp->ids_in,
                                                            sp->ids_out, (int)V, 0, 32, s->st),
                  "sort"))
        return;
    sample_kernel<<<1, 1024, 0, s->st>>>(sp->keys_out, sp->ids_out, V, top_k, top_p, u, out);
    MGLC_LAUNCHED(s, "sample");
}

/* ---- RoIAlign + mean ----------------------------------------------------------------------- */

#define ROI_F 192
#define ROI_P 56

/* Every bilinear sample of every bin adds its 4 taps' weights (with the 1/(count*P*P)
 * of the mean folded in) to each level's grid: level 0 directly, levels 1-3 spread over
 * the pixels whose bilinear upsample gives the multi-scale map at that tap. */
__global__ void roi_weights_kernel(const float* __restrict__ boxes, float* lw0, float* lw1, float* lw2, float* lw3) {
    const int bi = blockIdx.y;
    const float* bx = boxes + 4 * bi;
    const int64_t F = ROI_F, P = ROI_P;
    const float sigma = (float)ROI_F / 768.0f;
    const float x0 = bx[0] * sigma, y0 = bx[1] * sigma;
    const float rw = fmaxf(bx[2] * sigma - x0, 1.0f), rh = fmaxf(bx[3] * sigma - y0, 1.0f);
    const float bw = rw / (float)P, bh = rh / (float)P;
    const int64_t gw = (int64_t)ceilf(rw / (float)P), gh = (int64_t)ceilf(rh / (float)P);
    const float cnt = (float)(gw * gh > 1 ? gw * gh : 1);
    const float wsample = 1.0f / (cnt * (float)(P * P));
    float* lv[4] = {lw0 + (int64_t)bi * F * F, lw1 + (int64_t)bi * (F / 2) * (F / 2),
                    lw2 + (int64_t)bi * (F / 4) * (F / 4), lw3 + (int64_t)bi * (F / 8) * (F / 8)};
    const int64_t total = P * gh * P * gw;
    GRID_STRIDE(i, total) {
        int64_t ix = i % gw, pw = (i / gw) % P, iy = (i / (gw * P)) % gh, ph = i / (gw * P * gh);
        float y = y0 + (float)ph * bh + ((float)iy + 0.5f) * bh / (float)gh;
        float x = x0 + (float)pw * bw + ((float)ix + 0.5f) * bw / (float)gw;
        if (y < -1.0f || y > (float)F || x < -1.0f || x > (float)F) continue;
        float yy = y <= 0 ? 0 : y, xx = x <= 0 ? 0 : x;
        int64_t yl = (int64_t)yy, xl = (int64_t)xx, yh, xh;
        if (yl >= F - 1) {
            yh = yl = F - 1;
            yy = (float)yl;
        } else
            yh = yl + 1;
        if (xl >= F - 1) {
            xh = xl = F - 1;
            xx = (float)xl;
        } else
            xh = xl + 1;
        float ly = yy - (float)yl, lx = xx - (float)xl, hy = 1 - ly, hx = 1 - lx;
        const int64_t ty[4] = {yl, yl, yh, yh}, tx[4] = {xl, xh, xl, xh};
        const float tw[4] = {wsample * hy * hx, wsample * hy * lx, wsample * ly * hx, wsample * ly * lx};
        for (int tp = 0; tp < 4; tp++) {
            if (tw[tp] == 0.0f) continue;
            atomicAdd(&lv[0][ty[tp] * F + tx[tp]], tw[tp]);
            for (int s = 1; s < 4; s++) {
                int64_t hs = F >> s, a0, a1, b0, b1;
                float la, lb;
                bil_src(hs, F, ty[tp], &a0, &a1, &la);
                bil_src(hs, F, tx[tp], &b0, &b1, &lb);
                float w = tw[tp];
                atomicAdd(&lv[s][a0 * hs + b0], w * (1 - la) * (1 - lb));
                atomicAdd(&lv[s][a0 * hs + b1], w * (1 - la) * lb);
                atomicAdd(&lv[s][a1 * hs + b0], w * la * (1 - lb));
                atomicAdd(&lv[s][a1 * hs + b1], w * la * lb);
            }
        }
    }
}

extern "C" void mgl_cuda_roi_pool(MglCudaStream* s, const float* const so[4], const int C[4], const float* boxes,
                                  int64_t n, float* pooled) {
    if (n <= 0) return;
    int64_t per = 0;
    for (int l = 0; l < 4; l++) per += (int64_t)(ROI_F >> l) * (ROI_F >> l);
    float* lw = (float*)mglc_scratch(s, &s->tmp, &s->tmp_bytes, sizeof(float) * (size_t)(n * per), "RoI weights");
    if (!lw) return;
    if (mglc_fail(s, cudaMemsetAsync(lw, 0, sizeof(float) * (size_t)(n * per), s->st), "memset")) return;
    float* lv[4];
    int64_t off = 0;
    for (int l = 0; l < 4; l++) {
        lv[l] = lw + off;
        off += n * (int64_t)(ROI_F >> l) * (ROI_F >> l);
    }
    roi_weights_kernel<<<dim3(64, (unsigned)n), 256, 0, s->st>>>(boxes, lv[0], lv[1], lv[2], lv[3]);
    if (MGLC_LAUNCHED(s, "RoI weights")) return;
    int64_t Cm = C[0] + C[1] + C[2] + C[3], coff = 0;
    const float alpha = 1.0f, beta = 0.0f;
    for (int l = 0; l < 4; l++) {
        int64_t hw = (int64_t)(ROI_F >> l) * (ROI_F >> l);
        /* pooled[:, coff:coff+C] (n x C) = LW (n x hw) @ so (hw x C), in column-major terms */
        if (mglc_blas_fail(s,
                           cublasSgemm(s->blas, CUBLAS_OP_N, CUBLAS_OP_N, C[l], (int)n, (int)hw, &alpha, so[l], C[l],
                                       lv[l], (int)hw, &beta, pooled + coff, (int)Cm),
                           "RoI Sgemm"))
            return;
        coff += C[l];
    }
}
