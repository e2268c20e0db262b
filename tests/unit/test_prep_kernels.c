/* The device preprocessing's kernels (engine/cuda/mgl-cuda-preprocess-kernels.cuh)
 * run on the CPU, every thread of every block in turn, against the CPU's
 * mgl_views_make: the 768 view must be the same bytes. Their arithmetic is
 * checked in every build, a GPU or not; tests/gpu/test_cuda_ops runs them on
 * a device (and the 336 view, the bilinear op's). */
#include "mgl-model.h"
#include "mgl-test.h"
#include "prep-images.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    unsigned x, y, z;
} Dim3;
static Dim3 blockIdx, blockDim, threadIdx;
#define __global__ static
#define __device__
#define __forceinline__ inline
#define __restrict__ restrict
#include "../../engine/cuda/mgl-cuda-preprocess-kernels.cuh"

/* a launch of gx x gy blocks of `threads`, one thread after another */
#define LAUNCH(gx, gy, threads, call)                                                                                  \
    do {                                                                                                               \
        blockDim = (Dim3){(threads), 1, 1};                                                                            \
        for (unsigned by_ = 0; by_ < (unsigned)(gy); by_++)                                                            \
            for (unsigned bx_ = 0; bx_ < (unsigned)(gx); bx_++)                                                        \
                for (unsigned t_ = 0; t_ < (unsigned)(threads); t_++) {                                                \
                    blockIdx = (Dim3){bx_, by_, 0};                                                                    \
                    threadIdx = (Dim3){t_, 0, 0};                                                                      \
                    call;                                                                                              \
                }                                                                                                      \
    } while (0)

/* the 768 view as mgl-cuda-preprocess.cu makes it (the upload packs the rows) */
static float* device_x768(const uint8_t* px, int w, int h, int stride) {
    PrepSrc src;
    int S = 0;
    mgl_pad_geometry(w, h, &S, &src.ox, &src.oy, src.pad);
    uint8_t* rgb = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++) memcpy(rgb + (size_t)y * w * 3, px + (size_t)y * stride, (size_t)w * 3);
    src.rgb = rgb;
    src.w = w;
    src.h = h;
    int* bounds = NULL;
    int32_t* kk = NULL;
    int ks = 0;
    const bool resample = S != MGL_AUX_SIZE;
    if (resample) ks = mgl_bicubic_coeffs(S, MGL_AUX_SIZE, &bounds, &kk);
    uint8_t* tmp = malloc((size_t)S * MGL_AUX_SIZE * 3);
    float* x768 = malloc(sizeof(float) * 3 * MGL_AUX_SIZE * MGL_AUX_SIZE);
    const float* lut = &mgl_normalize_lut()[0][0];
    const unsigned threads = 128, gx = (MGL_AUX_SIZE + threads - 1) / threads;
    if (resample)
        LAUNCH(gx, S, threads, prep_hpass_kernel(src, S, bounds, kk, ks, tmp));
    else
        LAUNCH(gx, MGL_AUX_SIZE, threads, prep_pad_kernel(src, tmp));
    LAUNCH(gx, MGL_AUX_SIZE, threads, prep_vpass_norm_kernel(tmp, resample, bounds, kk, ks, lut, x768));
    free(rgb);
    free(tmp);
    free(bounds);
    free(kk);
    return x768;
}

int main(void) {
    for (size_t i = 0; i < PREP_N_SIZES; i++) {
        int w, h, stride;
        uint8_t* px = prep_image(i, &w, &h, &stride);
        const MglImage img = {px, w, h, stride};
        MglViews* v = NULL;
        MglErr e = {0};
        REQUIRE(mgl_views_make(&img, &v, &e) == MGL_OK);
        float* got = device_x768(px, w, h, stride);
        size_t bad = 0, first = 0;
        for (size_t j = 0; j < 3u * MGL_AUX_SIZE * MGL_AUX_SIZE; j++)
            if (memcmp(&got[j], &v->x768[j], sizeof(float)) != 0 && bad++ == 0) first = j;
        CHECK_MSG(bad == 0,
                  "%dx%d (stride %d): %zu of the 768 view's values differ from the CPU's, first at %zu: %g vs %g", w, h,
                  stride, bad, first, got[first], v->x768[first]);
        if (bad == 0) printf("ok  %dx%d stride %d: the 768 view is the CPU's\n", w, h, stride);
        free(got);
        mgl_views_unref(v);
        free(px);
    }
    TEST_DONE();
}
