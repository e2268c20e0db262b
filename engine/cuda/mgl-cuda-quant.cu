/* mgl-cuda-quant.cu: quantized weights (q8, q4; layout in mgl-quant.h) on
 * the device.
 *
 * Decode (T <= 8 rows): W8A16 / W4A16 GEMV. One warp per weight row; each
 * lane reads 16 bytes at a time (16 q8 weights, or one q4 block of 32), so a
 * warp's 32 loads are 512 contiguous bytes of the row; the activations are
 * rounded to f16 (the "A16") and every product is accumulated in f32, each
 * row of x with its own accumulators (a sequence's result does not depend on
 * the others in the batch). The warp's lanes are summed by shuffles.
 * MGL_CUDA_QGEMV=shared rounds the activations once per block of 8 rows into
 * shared memory instead of once per row where they are read (the same sums;
 * not yet timed: tests/gpu/check.sh measures both).
 * Prefill (T > 8): tiles of rows dequantized to f16 (scale x q rounded once)
 * and handed to the f16 GEMM of mgl_cuda_matmul (cuBLAS, f32 accumulation).
 *
 * The model upload (mgl-cuda-model.cu) hands quantized LLM matrices here;
 * tests/gpu/test_cuda_quant.c checks these kernels against the CPU. None of
 * it has run on a GPU yet. */
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mgl-cuda-internal.cuh"
#include "mgl-cuda-quant.h"

#define QBLOCK 32 /* MGL_QUANT_BLOCK */

static int64_t row_bytes(int bits, int64_t K) {
    return bits == 8 ? K : K / QBLOCK * (QBLOCK / 2) + (K % QBLOCK + 1) / 2;
}

__device__ __forceinline__ float a16(float x) { return __half2float(__float2half_rn(x)); }

/* weight k of a q4 row (mgl_quant_value) */
__device__ __forceinline__ int q4_at(const uint8_t* row, int64_t K, int64_t k) {
    const int64_t b = k / QBLOCK, j = k % QBLOCK;
    const int64_t L = K - b * QBLOCK < QBLOCK ? K - b * QBLOCK : QBLOCK, h = (L + 1) / 2;
    const uint8_t byte = row[b * (QBLOCK / 2) + (j < h ? j : j - h)];
    return (j < h ? byte & 15 : byte >> 4) - 8;
}

/* 16 bytes of a row: one vector load when the row is 16-byte aligned */
__device__ __forceinline__ void load16(const uint8_t* p, bool aligned, uint8_t out[16]) {
    if (aligned) {
        const uint4 v = __ldg((const uint4*)p);
        const uint32_t w[4] = {v.x, v.y, v.z, v.w};
        for (int i = 0; i < 16; i++) out[i] = (uint8_t)(w[i / 4] >> (8 * (i % 4)));
    } else {
        for (int i = 0; i < 16; i++) out[i] = p[i];
    }
}

/* Activations as the GEMV reads them, each rounded to f16 ("A16"): 8 at a
 * time from element k of row t. XGlobal rounds x's f32 values where they
 * are read (per weight row); XShared reads a block's copy rounded once into
 * shared memory (chunk [k0, k0 + n), NT rows of `ld` halves). Both give the
 * same floats, so the sums are the same bits either way. */
struct XGlobal {
    const float* x;
    int64_t K;
    __device__ __forceinline__ void at8(int t, int64_t k, float out[8]) const {
        for (int j = 0; j < 8; j++) out[j] = a16(x[t * K + k + j]);
    }
};
struct XShared {
    const __half* xs;
    int64_t k0, ld;
    __device__ __forceinline__ void at8(int t, int64_t k, float out[8]) const {
        const uint4 v = *(const uint4*)(xs + t * ld + (k - k0)); /* 16-byte aligned: k - k0 is a multiple of 16 */
        const __half* h = (const __half*)&v;
        for (int j = 0; j < 8; j++) out[j] = __half2float(h[j]);
    }
};

/* Lane `lane`'s vector steps c = c0 + lane, c0 + lane + 32, ... below c1
 * (c0 a multiple of 32): 16 q8 weights or one q4 block of 32 each, into acc. */
template <int BITS, int NT, class XS>
__device__ __forceinline__ void qsteps(const uint8_t* row, const __half* sc, int64_t gs, bool aligned, int64_t c0,
                                       int64_t c1, int lane, const XS& xs, float acc[NT]) {
    uint8_t b[16];
    float xv[32];
    for (int64_t c = c0 + lane; c < c1; c += 32) {
        if (BITS == 8) {
            const int64_t k = c * 16;
            const float s = __half2float(sc[k / gs]);
            load16(row + k, aligned, b);
            for (int t = 0; t < NT; t++) {
                xs.at8(t, k, xv);
                xs.at8(t, k + 8, xv + 8);
                float d = 0.0f;
                for (int j = 0; j < 16; j++) d += (float)(int8_t)b[j] * xv[j];
                acc[t] += s * d;
            }
        } else {
            const int64_t k = c * QBLOCK;
            const float s = __half2float(sc[k / gs]);
            load16(row + c * (QBLOCK / 2), aligned, b);
            for (int t = 0; t < NT; t++) {
                for (int q = 0; q < 4; q++) xs.at8(t, k + 8 * q, xv + 8 * q);
                float d = 0.0f;
                for (int j = 0; j < 16; j++)
                    d += (float)((b[j] & 15) - 8) * xv[j] + (float)((b[j] >> 4) - 8) * xv[j + 16];
                acc[t] += s * d;
            }
        }
    }
}

/* The weights past the last whole vector step, and the warp's sum into y. */
template <int BITS, int NT>
__device__ __forceinline__ void qtail_store(const uint8_t* row, const __half* sc, int64_t K, int64_t gs, int64_t kv,
                                            int lane, const float* x, float acc[NT], float* y, int64_t ldy, int64_t n) {
    for (int64_t k = kv + lane; k < K; k += 32) {
        const float w = __half2float(sc[k / gs]) * (BITS == 8 ? (float)(int8_t)row[k] : (float)q4_at(row, K, k));
        for (int t = 0; t < NT; t++) acc[t] += w * a16(x[t * K + k]);
    }
    for (int t = 0; t < NT; t++) {
        float v = acc[t];
        for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
        if (lane == 0) y[t * ldy + n] = v;
    }
}

/* One warp per weight row, the activations rounded where they are read. */
template <int BITS, int NT>
__global__ void qgemv_kernel(const uint8_t* __restrict__ W, const __half* __restrict__ scales, int64_t N, int64_t K,
                             int64_t gs, int64_t G, int64_t rb, const float* __restrict__ x, float* __restrict__ y,
                             int64_t ldy) {
    const int lane = threadIdx.x & 31;
    const int64_t n = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (n >= N) return;
    const uint8_t* row = W + n * rb;
    const __half* sc = scales + n * G;
    const bool aligned = (rb % 16) == 0 && ((uintptr_t)W & 15) == 0;
    const int64_t per = BITS == 8 ? 16 : QBLOCK, nv = K / per;
    float acc[NT];
    for (int t = 0; t < NT; t++) acc[t] = 0.0f;
    qsteps<BITS, NT>(row, sc, gs, aligned, 0, nv, lane, XGlobal{x, K}, acc);
    qtail_store<BITS, NT>(row, sc, K, gs, nv * per, lane, x, acc, y, ldy, n);
}

/* The same sums with the activations rounded once per block (MGL_CUDA_QGEMV=shared; written without a GPU,
 * for the GPU check to time against qgemv_kernel): the block's threads round a chunk of every row of x into
 * shared memory, then each warp takes its row's steps over the chunk. A chunk is a whole number of 32-step
 * rounds, so each lane takes the same steps in the same order as qgemv_kernel and the bits are the same. */
#define QX_HALVES 16384 /* shared halves per block (32 KB) */
template <int BITS, int NT>
__global__ void qgemv_shared_kernel(const uint8_t* __restrict__ W, const __half* __restrict__ scales, int64_t N,
                                    int64_t K, int64_t gs, int64_t G, int64_t rb, const float* __restrict__ x,
                                    float* __restrict__ y, int64_t ldy) {
    constexpr int64_t per = BITS == 8 ? 16 : QBLOCK, round = 32 * per;
    constexpr int64_t chunk = QX_HALVES / NT / round * round; /* at NT = 8: 2048 (q4) or 2048 (q8) */
    __shared__ __align__(16) __half xs[NT * chunk];
    const int lane = threadIdx.x & 31;
    const int64_t n = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    const bool live = n < N; /* every warp takes part in the copies */
    const uint8_t* row = W + (live ? n : 0) * rb;
    const __half* sc = scales + (live ? n : 0) * G;
    const bool aligned = (rb % 16) == 0 && ((uintptr_t)W & 15) == 0;
    const int64_t nv = K / per, kv = nv * per;
    float acc[NT];
    for (int t = 0; t < NT; t++) acc[t] = 0.0f;
    for (int64_t k0 = 0; k0 < kv; k0 += chunk) {
        const int64_t m = kv - k0 < chunk ? kv - k0 : chunk;
        __syncthreads(); /* the last chunk is read */
        for (int64_t i = threadIdx.x; i < NT * m; i += blockDim.x) {
            const int64_t t = i / m, j = i % m;
            xs[t * chunk + j] = __float2half_rn(x[t * K + k0 + j]);
        }
        __syncthreads();
        if (live) qsteps<BITS, NT>(row, sc, gs, aligned, k0 / per, (k0 + m) / per, lane, XShared{xs, k0, chunk}, acc);
    }
    if (live) qtail_store<BITS, NT>(row, sc, K, gs, kv, lane, x, acc, y, ldy, n);
}

/* rows r0 .. r0 + nr of W, dequantized to f16: out[r, k] = half(scale * q) */
template <int BITS>
__global__ void qdequant_kernel(const uint8_t* __restrict__ W, const __half* __restrict__ scales, int64_t r0,
                                int64_t nr, int64_t K, int64_t gs, int64_t G, int64_t rb, __half* out) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= nr * K) return;
    const int64_t r = i / K, k = i % K, n = r0 + r;
    const uint8_t* row = W + n * rb;
    const int q = BITS == 8 ? (int)(int8_t)row[k] : q4_at(row, K, k);
    out[i] = __float2half_rn(__half2float(scales[n * G + k / gs]) * (float)q);
}

static unsigned nblocks(int64_t n, int threads) { return (unsigned)((n + threads - 1) / threads); }

extern "C" MglStatus mgl_cuda_qweight_upload(const MglWeight* host, MglCudaW* out, MglErr* err) {
    *out = *host;
    out->data = NULL;
    out->scales = NULL;
    if (!host->qbits) return mgl_err(err, MGL_E_INVALID, "cuda: not a quantized weight");
    const int64_t K = host->cols, G = (K + host->qgroup - 1) / host->qgroup;
    const size_t qb = (size_t)(host->rows * row_bytes(host->qbits, K)),
                 sb = sizeof(uint16_t) * (size_t)(host->rows * G);
    void *d = NULL, *s = NULL;
    MGL_TRY(mglc_malloc(&d, qb ? qb : 16, "quantized weights", err));
    MglStatus st = mglc_malloc(&s, sb ? sb : 16, "quantized weight scales", err);
    if (st == MGL_OK) st = mgl_cuda_upload(d, host->data, qb, err);
    if (st == MGL_OK) st = mgl_cuda_upload(s, host->scales, sb, err);
    if (st != MGL_OK) {
        mgl_cuda_free(d);
        mgl_cuda_free(s);
        return st;
    }
    out->data = d;
    out->scales = (const uint16_t*)s;
    return MGL_OK;
}

extern "C" void mgl_cuda_qweight_free(MglCudaW* w) {
    mgl_cuda_free((void*)w->data);
    mgl_cuda_free((void*)w->scales);
    w->data = NULL;
    w->scales = NULL;
}

template <int BITS>
static void qgemv_launch(MglCudaStream* s, const float* x, int64_t T, const MglCudaW* W, float* y, int64_t ldy) {
    const int64_t K = W->cols, gs = W->qgroup, G = (K + gs - 1) / gs, rb = row_bytes(BITS, K);
    static const bool shared = getenv("MGL_CUDA_QGEMV") && !strcmp(getenv("MGL_CUDA_QGEMV"), "shared");
    const int warps = shared ? 8 : 4; /* shared: one rounding of x for 8 rows */
    const unsigned grid = nblocks(W->rows, warps);
    const uint8_t* q = (const uint8_t*)W->data;
    const __half* sc = (const __half*)W->scales;
#define MGLC_QGEMV(NT)                                                                                                 \
    (shared ? qgemv_shared_kernel<BITS, NT><<<grid, warps * 32, 0, s->st>>>(q, sc, W->rows, K, gs, G, rb, x, y, ldy)   \
            : qgemv_kernel<BITS, NT><<<grid, warps * 32, 0, s->st>>>(q, sc, W->rows, K, gs, G, rb, x, y, ldy))
    switch (T) {
    case 1: MGLC_QGEMV(1); break;
    case 2: MGLC_QGEMV(2); break;
    case 3: MGLC_QGEMV(3); break;
    case 4: MGLC_QGEMV(4); break;
    case 5: MGLC_QGEMV(5); break;
    case 6: MGLC_QGEMV(6); break;
    case 7: MGLC_QGEMV(7); break;
    default: MGLC_QGEMV(8); break;
    }
#undef MGLC_QGEMV
    MGLC_LAUNCHED(s, "quantized GEMV");
}

extern "C" void mgl_cuda_qdequant_f16(MglCudaStream* s, const MglCudaW* W, int64_t r0, int64_t nr, void* out) {
    const int64_t K = W->cols, gs = W->qgroup, G = (K + gs - 1) / gs, rb = row_bytes(W->qbits, K);
    const int64_t n = nr * K;
    if (n <= 0) return;
    const uint8_t* q = (const uint8_t*)W->data;
    const __half* sc = (const __half*)W->scales;
    if (W->qbits == 8)
        qdequant_kernel<8><<<nblocks(n, 256), 256, 0, s->st>>>(q, sc, r0, nr, K, gs, G, rb, (__half*)out);
    else
        qdequant_kernel<4><<<nblocks(n, 256), 256, 0, s->st>>>(q, sc, r0, nr, K, gs, G, rb, (__half*)out);
    MGLC_LAUNCHED(s, "dequantize to f16");
}

extern "C" void mgl_cuda_qmatmul(MglCudaStream* s, const float* x, int64_t T, const MglCudaW* W, float* y,
                                 int64_t ldy) {
    if (T <= 0 || W->rows <= 0 || W->cols <= 0) return;
    if (T <= 8) { /* one launch for all rows */
        if (W->qbits == 8)
            qgemv_launch<8>(s, x, T, W, y, ldy);
        else
            qgemv_launch<4>(s, x, T, W, y, ldy);
        return;
    }
    /* tiles of rows in f16, stream-ordered allocation: freed after the GEMMs that read it */
    const int64_t K = W->cols;
    int64_t tile = (64ll << 20) / (2 * (K > 0 ? K : 1));
    if (tile > W->rows) tile = W->rows;
    if (tile < 1) tile = 1;
    void* buf = NULL;
    if (mglc_fail(s, cudaMallocAsync(&buf, (size_t)(tile * K) * 2, s->st), "dequantized tile")) return;
    for (int64_t r0 = 0; r0 < W->rows; r0 += tile) {
        const int64_t nr = W->rows - r0 < tile ? W->rows - r0 : tile;
        mgl_cuda_qdequant_f16(s, W, r0, nr, buf);
        MglCudaW t = {buf, MGL_DT_F16, nr, K, NULL, 0, 0};
        mgl_cuda_matmul(s, x, T, &t, NULL, y + r0, ldy);
    }
    mglc_fail(s, cudaFreeAsync(buf, s->st), "dequantized tile");
}
