/* mgl-cuda-preprocess.cu: an image's two views made on the device from its
 * 8-bit pixels, the same bytes as the CPU's mgl_views_make: the frame (about
 * 0.9 MB at 640x480) goes up instead of 7 MB of floats.
 *
 *   square padding   the padded square is never formed: a pixel of it is the
 *                    image's, or the pad colour outside the image
 *   bicubic to 768   Pillow's two passes (horizontal first, each rounded to
 *                    8 bits) with the CPU's fixed-point coefficients, made on
 *                    the host by mgl_bicubic_coeffs and uploaded: integer
 *                    sums, so every byte equals the CPU's
 *   normalisation    the CPU's table of each channel's 256 values
 *   336 view         the bilinear resize of the 768 view (mgl_cuda_resize_bilinear_chw,
 *                    the op the parity tests compare with the CPU's)
 */
#include "mgl-cuda-internal.cuh"
#include "mgl-preprocess.h"

#include <stdlib.h>
#include <string.h>

struct MglCudaPrep {
    uint8_t* rgb; /* the image, packed */
    size_t rgb_cap;
    uint8_t* tmp; /* the horizontal pass: S rows of 768 pixels (or the padded square when S = 768) */
    size_t tmp_cap;
    int* bounds; /* S -> 768 coefficients, both axes (the square) */
    int32_t* kk;
    int coef_S, ks;
    float* lut; /* 3 x 256 */
};

#include "mgl-cuda-preprocess-kernels.cuh"

extern "C" void mgl_cuda_preprocess_free(MglCudaPrep* p) {
    if (!p) return;
    mgl_cuda_free(p->rgb);
    mgl_cuda_free(p->tmp);
    mgl_cuda_free(p->bounds);
    mgl_cuda_free(p->kk);
    mgl_cuda_free(p->lut);
    free(p);
}

/* The S -> 768 coefficients (kept while S stays) and the table. The uploads
 * are synchronous, so the host arrays can go at once. */
static MglStatus prep_tables(MglCudaPrep* p, int S, MglErr* err) {
    if (!p->lut) {
        MGL_TRY(mglc_malloc((void**)&p->lut, sizeof(float) * 3 * 256, "preprocessing table", err));
        MGL_TRY(mgl_cuda_upload(p->lut, mgl_normalize_lut(), sizeof(float) * 3 * 256, err));
    }
    if (S == MGL_AUX_SIZE || S == p->coef_S) return MGL_OK;
    int* b = NULL;
    int32_t* k = NULL;
    const int ks = mgl_bicubic_coeffs(S, MGL_AUX_SIZE, &b, &k);
    MglStatus st = b && k ? MGL_OK : mgl_err(err, MGL_E_NOMEM, "preprocessing: out of memory for coefficients");
    mgl_cuda_free(p->bounds);
    mgl_cuda_free(p->kk);
    p->bounds = NULL;
    p->kk = NULL;
    p->coef_S = 0;
    if (st == MGL_OK) st = mglc_malloc((void**)&p->bounds, sizeof(int) * 2 * MGL_AUX_SIZE, "coefficients", err);
    if (st == MGL_OK)
        st = mglc_malloc((void**)&p->kk, sizeof(int32_t) * (size_t)ks * MGL_AUX_SIZE, "coefficients", err);
    if (st == MGL_OK) st = mgl_cuda_upload(p->bounds, b, sizeof(int) * 2 * MGL_AUX_SIZE, err);
    if (st == MGL_OK) st = mgl_cuda_upload(p->kk, k, sizeof(int32_t) * (size_t)ks * MGL_AUX_SIZE, err);
    free(b);
    free(k);
    if (st == MGL_OK) p->coef_S = S, p->ks = ks;
    return st;
}

extern "C" MglStatus mgl_cuda_preprocess(MglCudaStream* s, MglCudaPrep** pp, const uint8_t* rgb, int w, int h,
                                         int stride, float* x768, float* x336, MglErr* err) {
    MGL_TRY(mgl_image_check(w, h, stride, err));
    if (!*pp && !(*pp = (MglCudaPrep*)calloc(1, sizeof(MglCudaPrep))))
        return mgl_err(err, MGL_E_NOMEM, "preprocessing: out of memory");
    MglCudaPrep* p = *pp;
    PrepSrc src;
    int S = 0;
    mgl_pad_geometry(w, h, &S, &src.ox, &src.oy, src.pad);
    src.w = w;
    src.h = h;
    /* the work before this call may still read the buffers: wait for it */
    MGL_TRY(mgl_cuda_stream_sync(s, err));
    MGL_TRY(prep_tables(p, S, err));
    const size_t row = (size_t)w * 3;
    if (!mglc_scratch(s, (void**)&p->rgb, &p->rgb_cap, row * (size_t)h, "the image") ||
        !mglc_scratch(s, (void**)&p->tmp, &p->tmp_cap, (size_t)S * MGL_AUX_SIZE * 3, "preprocessing"))
        return mgl_cuda_stream_sync(s, err); /* the error mglc_scratch recorded */
    if (stride == (int)row) {
        mglc_fail(s, cudaMemcpyAsync(p->rgb, rgb, row * (size_t)h, cudaMemcpyHostToDevice, s->st), "image upload");
    } else {
        mglc_fail(s, cudaMemcpy2DAsync(p->rgb, row, rgb, (size_t)stride, row, (size_t)h, cudaMemcpyHostToDevice, s->st),
                  "image upload");
    }
    src.rgb = p->rgb;
    const int threads = 128;
    const unsigned gx = (MGL_AUX_SIZE + threads - 1) / threads;
    const bool resample = S != MGL_AUX_SIZE;
    if (resample) {
        prep_hpass_kernel<<<dim3(gx, (unsigned)S), threads, 0, s->st>>>(src, S, p->bounds, p->kk, p->ks, p->tmp);
        MGLC_LAUNCHED(s, "preprocess: horizontal pass");
    } else {
        prep_pad_kernel<<<dim3(gx, MGL_AUX_SIZE), threads, 0, s->st>>>(src, p->tmp);
        MGLC_LAUNCHED(s, "preprocess: pad");
    }
    prep_vpass_norm_kernel<<<dim3(gx, MGL_AUX_SIZE), threads, 0, s->st>>>(p->tmp, resample, p->bounds, p->kk, p->ks,
                                                                          p->lut, x768);
    MGLC_LAUNCHED(s, "preprocess: vertical pass");
    mgl_cuda_resize_bilinear_chw(s, x768, 3, MGL_AUX_SIZE, MGL_AUX_SIZE, 336, 336, x336);
    /* the image's host bytes are read before an asynchronous upload from
     * pageable memory returns; the caller's later work orders after this */
    return MGL_OK;
}
