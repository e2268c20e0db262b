/* mgl-cuda-preprocess-kernels.cuh: the kernels of the device preprocessing
 * (mgl-cuda-preprocess.cu), written in the part of C that CUDA C++ shares, so
 * that tests/unit/test_prep_kernels.c runs these very lines on the CPU, each
 * thread in turn, against mgl_views_make (a build without a GPU checks their
 * arithmetic too). Before including it a C file defines __global__,
 * __device__, __forceinline__, __restrict__ and blockIdx/blockDim/threadIdx. */
#ifndef MGL_CUDA_PREPROCESS_KERNELS_CUH
#define MGL_CUDA_PREPROCESS_KERNELS_CUH

#include "mgl-preprocess.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PREP_PB MGL_BICUBIC_PRECISION

__device__ __forceinline__ uint8_t prep_clip8(int32_t v) {
    v >>= PREP_PB;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* The padded square's pixel (X, Y), channel c. */
typedef struct {
    const uint8_t* rgb;
    int w, h, ox, oy;
    uint8_t pad[3];
} PrepSrc;

__device__ __forceinline__ int32_t prep_px(const PrepSrc* s, int X, int Y, int c) {
    const int x = X - s->ox, y = Y - s->oy;
    return x >= 0 && x < s->w && y >= 0 && y < s->h ? s->rgb[((size_t)y * s->w + x) * 3 + c] : s->pad[c];
}

/* tmp[y][x] (768 wide, S rows): the horizontal pass of row y of the square */
__global__ void prep_hpass_kernel(PrepSrc s, int S, const int* __restrict__ bounds, const int32_t* __restrict__ kk,
                                  int ks, uint8_t* __restrict__ tmp) {
    const int x = blockIdx.x * blockDim.x + threadIdx.x, y = blockIdx.y;
    if (x >= MGL_AUX_SIZE || y >= S) return;
    const int xmin = bounds[2 * x], xs = bounds[2 * x + 1];
    const int32_t* k = kk + (size_t)x * ks;
    for (int c = 0; c < 3; c++) {
        int32_t ss = 1 << (PREP_PB - 1);
        for (int i = 0; i < xs; i++) ss += prep_px(&s, xmin + i, y, c) * k[i];
        tmp[((size_t)y * MGL_AUX_SIZE + x) * 3 + c] = prep_clip8(ss);
    }
}

/* a square of side 768 needs no resampling: tmp is the square itself */
__global__ void prep_pad_kernel(PrepSrc s, uint8_t* __restrict__ tmp) {
    const int x = blockIdx.x * blockDim.x + threadIdx.x, y = blockIdx.y;
    if (x >= MGL_AUX_SIZE) return;
    for (int c = 0; c < 3; c++) tmp[((size_t)y * MGL_AUX_SIZE + x) * 3 + c] = (uint8_t)prep_px(&s, x, y, c);
}

/* x768 (CHW): the vertical pass over tmp (when `vert`, else tmp's own rows), through the table */
__global__ void prep_vpass_norm_kernel(const uint8_t* __restrict__ tmp, bool vert, const int* __restrict__ bounds,
                                       const int32_t* __restrict__ kk, int ks, const float* __restrict__ lut,
                                       float* __restrict__ x768) {
    const int x = blockIdx.x * blockDim.x + threadIdx.x, y = blockIdx.y;
    if (x >= MGL_AUX_SIZE) return;
    const size_t plane = (size_t)MGL_AUX_SIZE * MGL_AUX_SIZE;
    for (int c = 0; c < 3; c++) {
        uint8_t v;
        if (vert) {
            const int ymin = bounds[2 * y], ys = bounds[2 * y + 1];
            const int32_t* k = kk + (size_t)y * ks;
            int32_t ss = 1 << (PREP_PB - 1);
            for (int i = 0; i < ys; i++) ss += tmp[((size_t)(ymin + i) * MGL_AUX_SIZE + x) * 3 + c] * k[i];
            v = prep_clip8(ss);
        } else {
            v = tmp[((size_t)y * MGL_AUX_SIZE + x) * 3 + c];
        }
        x768[c * plane + (size_t)y * MGL_AUX_SIZE + x] = lut[c * 256 + v];
    }
}

#endif
