/* ops-cpu.c: CPU backend ops other than the matrix products (ops-matmul.c):
 * norms, activations, convolutions, resizes, RoPE; vectorised loops on
 * fp32. Attention is in ops-attn.c. */
#include "mgl-ops.h"

#include "mgl-cpu-math.h"
#include "mgl-pool.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>


/* Hot elementwise loops are compiled for AVX-512, AVX2 and baseline x86-64;
 * the loader picks the best at run time. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define MGL_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MGL_CLONES
#endif

/* ---- normalisation and activations ------------------------------------ */

MGL_CLONES static void layernorm_row(const float* xr, int64_t C, const float* w, const float* b, float eps, float* yr) {
    /* two passes in float with 4 partial sums: vectorises, and stays within
     * ~1e-7 of a double-precision reference for C up to a few thousand */
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t c = 0;
    for (; c + 4 <= C; c += 4) {
        s0 += xr[c];
        s1 += xr[c + 1];
        s2 += xr[c + 2];
        s3 += xr[c + 3];
    }
    for (; c < C; c++) s0 += xr[c];
    float mean = (s0 + s1 + s2 + s3) / (float)C;
    float v = 0;
    for (c = 0; c < C; c++) {
        float d = xr[c] - mean;
        v += d * d;
    }
    float rstd = 1.0f / sqrtf(v / (float)C + eps);
    for (c = 0; c < C; c++) yr[c] = (xr[c] - mean) * rstd * w[c] + (b ? b[c] : 0.0f);
}

typedef struct {
    const float* x;
    int64_t C;
    const float *w, *b;
    float eps;
    float* y;
} NormCtx;

static void layernorm_part(void* ctx, int64_t b, int64_t e) {
    const NormCtx* c = ctx;
    for (int64_t t = b; t < e; t++) layernorm_row(c->x + t * c->C, c->C, c->w, c->b, c->eps, c->y + t * c->C);
}

void mgl_layernorm(const float* x, int64_t T, int64_t C, const float* w, const float* b, float eps, float* y) {
    NormCtx c = {x, C, w, b, eps, y};
    mgl_parallel_for(T, (8192 + C - 1) / C, layernorm_part, &c);
}

static void rmsnorm_part(void* ctx, int64_t b, int64_t e) {
    const NormCtx* c = ctx;
    for (int64_t t = b; t < e; t++) {
        const float* xr = c->x + t * c->C;
        float* yr = c->y + t * c->C;
        double ss = 0.0;
        for (int64_t k = 0; k < c->C; k++) ss += (double)xr[k] * xr[k];
        float r = 1.0f / sqrtf((float)(ss / (double)c->C) + c->eps);
        for (int64_t k = 0; k < c->C; k++) yr[k] = c->w[k] * (xr[k] * r);
    }
}

void mgl_rmsnorm(const float* x, int64_t T, int64_t C, const float* w, float eps, float* y) {
    NormCtx c = {x, C, w, NULL, eps, y};
    mgl_parallel_for(T, (8192 + C - 1) / C, rmsnorm_part, &c);
}

/* erf(x) for float as a branch-free rational approximation x*P(x^2)/Q(x^2)
 * on [-4, 4] (beyond that erf is +-1 in float); max error a few ulp, so the
 * loop vectorises where libm's erff does not. */
static inline float erf_fast(float x) {
    float c = x < -4.0f ? -4.0f : (x > 4.0f ? 4.0f : x);
    float x2 = c * c;
    float p = -2.72614225801306e-10f;
    p = p * x2 + 2.77068142495902e-08f;
    p = p * x2 - 2.10102402082508e-06f;
    p = p * x2 - 5.69250639462346e-05f;
    p = p * x2 - 7.34990630326855e-04f;
    p = p * x2 - 2.95459980854025e-03f;
    p = p * x2 - 1.60960333262415e-02f;
    float q = -1.45660718464996e-05f;
    q = q * x2 - 2.13374055278905e-04f;
    q = q * x2 - 1.68282697438203e-03f;
    q = q * x2 - 7.37332916720468e-03f;
    q = q * x2 - 1.42647390514189e-02f;
    return c * p / q;
}

MGL_CLONES static void gelu_part(void* ctx, int64_t b, int64_t e) {
    float* x = ctx;
    for (int64_t i = b; i < e; i++) x[i] = 0.5f * x[i] * (1.0f + erf_fast(x[i] * 0.70710678118654752f));
}

void mgl_gelu_erf(float* x, int64_t n) { mgl_parallel_for(n, 16384, gelu_part, x); }

MGL_CLONES static void quick_gelu_part(void* ctx, int64_t b, int64_t e) {
    float* x = ctx;
    for (int64_t i = b; i < e; i++) x[i] = x[i] / (1.0f + exp_fast(-1.702f * x[i]));
}

void mgl_quick_gelu(float* x, int64_t n) { mgl_parallel_for(n, 16384, quick_gelu_part, x); }

void mgl_act_range(MglAct act, float* x, int64_t n) {
    if (act == MGL_ACT_GELU)
        gelu_part(x, 0, n);
    else if (act == MGL_ACT_QUICK_GELU)
        quick_gelu_part(x, 0, n);
}

typedef struct {
    const float *a, *b;
    float* out;
} BinCtx;

MGL_CLONES static void silu_mul_part(void* ctx, int64_t b, int64_t e) {
    const BinCtx* c = ctx;
    for (int64_t i = b; i < e; i++) c->out[i] = c->a[i] / (1.0f + exp_fast(-c->a[i])) * c->b[i];
}

void mgl_silu_mul(const float* gate, const float* up, float* out, int64_t n) {
    BinCtx c = {gate, up, out};
    mgl_parallel_for(n, 16384, silu_mul_part, &c);
}

MGL_CLONES static void add_part(void* ctx, int64_t b, int64_t e) {
    const BinCtx* c = ctx;
    for (int64_t i = b; i < e; i++) c->out[i] += c->a[i];
}

void mgl_add(float* y, const float* x, int64_t n) {
    BinCtx c = {x, NULL, y};
    mgl_parallel_for(n, 32768, add_part, &c);
}

/* ---- convolutions ------------------------------------------------------ */

typedef struct {
    const float* x;
    int64_t H, W, C;
    const float *wt, *b;
    float* y;
} DwCtx;

/* One output pixel's channels [c0, c0 + n) (n <= DW_CB): the sums stay in a
 * block of registers over the 49 taps and are stored once (the taps in the
 * same order as a plain loop over them). */
#define DW_CB 64
static inline __attribute__((always_inline)) void dw_pixel(const DwCtx* d, int64_t r, int64_t c, int64_t c0,
                                                           int64_t n) {
    const int64_t H = d->H, W = d->W, C = d->C;
    float acc[DW_CB];
    for (int64_t i = 0; i < n; i++) acc[i] = d->b ? d->b[c0 + i] : 0.0f;
    for (int ky = 0; ky < 7; ky++) {
        const int64_t yy = r + ky - 3;
        if (yy < 0 || yy >= H) continue;
        for (int kx = 0; kx < 7; kx++) {
            const int64_t xx = c + kx - 3;
            if (xx < 0 || xx >= W) continue;
            const float* xi = d->x + (yy * W + xx) * C + c0;
            const float* wk = d->wt + (ky * 7 + kx) * C + c0;
            for (int64_t i = 0; i < n; i++) acc[i] += xi[i] * wk[i];
        }
    }
    float* yo = d->y + (r * W + c) * C + c0;
    for (int64_t i = 0; i < n; i++) yo[i] = acc[i];
}

MGL_CLONES static void dw_pixels(const DwCtx* d, int64_t r, int64_t c0, int64_t c1) {
    const int64_t C = d->C;
    for (int64_t c = c0; c < c1; c++) {
        int64_t ch = 0;
        for (; ch + DW_CB <= C; ch += DW_CB) dw_pixel(d, r, c, ch, DW_CB); /* a constant trip count */
        if (ch < C) dw_pixel(d, r, c, ch, C - ch);
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include "mgl-cpu-isa.h"
#include <immintrin.h>
#define DW_PX 8 /* output pixels of a row block */
/* Eight output pixels of row r from column c (all 7 taps of each inside the
 * row), 32 channels from ch: 16 sums in registers. A tap's weights are loaded
 * once for the eight pixels, and each input vector once for the taps that
 * read it, where dw_pixel loads both for every multiply-add. Each sum takes
 * the same fused multiply-adds in the same order as dw_pixel (bias, then the
 * rows inside the image, each left to right), so the bits are the same. */
__attribute__((target("avx512f"))) static void dw_block(const DwCtx* d, int64_t r, int64_t c, int64_t ch) {
    const int64_t H = d->H, W = d->W, C = d->C;
    __m512 acc[DW_PX][2];
    const __m512 b0 = d->b ? _mm512_loadu_ps(d->b + ch) : _mm512_setzero_ps();
    const __m512 b1 = d->b ? _mm512_loadu_ps(d->b + ch + 16) : _mm512_setzero_ps();
    for (int p = 0; p < DW_PX; p++) acc[p][0] = b0, acc[p][1] = b1;
    for (int ky = 0; ky < 7; ky++) {
        const int64_t yy = r + ky - 3;
        if (yy < 0 || yy >= H) continue;
        const float* xr = d->x + (yy * W + c - 3) * C + ch; /* the input row from the first pixel's first tap */
        const float* wr = d->wt + ky * 7 * C + ch;
        for (int kx = 0; kx < 7; kx++) {
            const __m512 w0 = _mm512_loadu_ps(wr + kx * C), w1 = _mm512_loadu_ps(wr + kx * C + 16);
            for (int p = 0; p < DW_PX; p++) {
                const float* xi = xr + (p + kx) * C;
                acc[p][0] = _mm512_fmadd_ps(_mm512_loadu_ps(xi), w0, acc[p][0]);
                acc[p][1] = _mm512_fmadd_ps(_mm512_loadu_ps(xi + 16), w1, acc[p][1]);
            }
        }
    }
    float* yo = d->y + (r * W + c) * C + ch;
    for (int p = 0; p < DW_PX; p++) {
        _mm512_storeu_ps(yo + p * C, acc[p][0]);
        _mm512_storeu_ps(yo + p * C + 16, acc[p][1]);
    }
}

/* The same for 16 channels from ch (8 sums): the 14 input vectors a tap row
 * reads and its 7 weights are loaded once and stay in registers for its 56
 * multiply-adds (ConvNeXt's narrow first stages: 16 or 48 channels). */
__attribute__((target("avx512f"))) static void dw_block16(const DwCtx* d, int64_t r, int64_t c, int64_t ch) {
    const int64_t H = d->H, W = d->W, C = d->C;
    __m512 acc[DW_PX];
    const __m512 b0 = d->b ? _mm512_loadu_ps(d->b + ch) : _mm512_setzero_ps();
    for (int p = 0; p < DW_PX; p++) acc[p] = b0;
    for (int ky = 0; ky < 7; ky++) {
        const int64_t yy = r + ky - 3;
        if (yy < 0 || yy >= H) continue;
        const float* xr = d->x + (yy * W + c - 3) * C + ch;
        const float* wr = d->wt + ky * 7 * C + ch;
        __m512 in[DW_PX + 6], w[7];
        for (int i = 0; i < DW_PX + 6; i++) in[i] = _mm512_loadu_ps(xr + i * C);
        for (int kx = 0; kx < 7; kx++) w[kx] = _mm512_loadu_ps(wr + kx * C);
        for (int kx = 0; kx < 7; kx++)
            for (int p = 0; p < DW_PX; p++) acc[p] = _mm512_fmadd_ps(in[p + kx], w[kx], acc[p]);
    }
    float* yo = d->y + (r * W + c) * C + ch;
    for (int p = 0; p < DW_PX; p++) _mm512_storeu_ps(yo + p * C, acc[p]);
}

/* Rows [rb, re): the columns whose taps all lie inside the row in blocks of
 * eight pixels by 32 channels, then 16 (channels past a multiple of 16, and
 * the columns near the edges, by dw_pixel). */
static void dwconv7_part(void* ctx, int64_t rb, int64_t re) {
    const DwCtx* d = ctx;
    const int64_t W = d->W, C = d->C, C32 = C / 32 * 32, C16 = C / 16 * 16;
    if (mgl_cpu_level() < MGL_CPU_AVX512 || C16 == 0 || W < 6 + DW_PX) {
        for (int64_t r = rb; r < re; r++) dw_pixels(d, r, 0, W);
        return;
    }
    for (int64_t r = rb; r < re; r++) {
        int64_t c = 3; /* the first column with all its taps inside */
        dw_pixels(d, r, 0, c);
        for (; c + DW_PX <= W - 3; c += DW_PX) {
            for (int64_t ch = 0; ch < C32; ch += 32) dw_block(d, r, c, ch);
            if (C32 < C16) dw_block16(d, r, c, C32);
            if (C16 < C)
                for (int p = 0; p < DW_PX; p++) dw_pixel(d, r, c + p, C16, C - C16);
        }
        dw_pixels(d, r, c, W);
    }
}
#else
static void dwconv7_part(void* ctx, int64_t rb, int64_t re) {
    const DwCtx* d = ctx;
    for (int64_t r = rb; r < re; r++) dw_pixels(d, r, 0, d->W);
}
#endif

void mgl_dwconv7_nhwc(const float* x, int64_t H, int64_t W, int64_t C, const float* w, const float* b, float* y) {
    /* taps transposed to (49, C) so the channel loop reads both operands contiguously */
    float* wt = malloc(sizeof(float) * (size_t)(49 * C));
    for (int64_t ch = 0; ch < C; ch++)
        for (int k = 0; k < 49; k++) wt[k * C + ch] = w[ch * 49 + k];
    DwCtx d = {x, H, W, C, wt, b, y};
    mgl_parallel_for(H, 1, dwconv7_part, &d);
    free(wt);
}

typedef struct {
    const float* x;
    bool chw;
    int64_t H, W, Cin, k, Wo, K;
    int64_t oy0; /* the chunk's first output row (cols holds rows oy0..) */
    float* cols;
} Im2colCtx;

/* Each output pixel's row of K = Cin * k * k values in the weights' order
 * (ci, ky, kx). From CHW, a (ci, ky) run of k values is contiguous in both;
 * from HWC, a (ky, kx) pixel's Cin values are contiguous in the input and go
 * to stride k * k in the row. */
static void im2col_part(void* ctx, int64_t b, int64_t e) {
    const Im2colCtx* c = ctx;
    const int64_t k = c->k, Cin = c->Cin, W = c->W;
    for (int64_t r = b; r < e; r++)
        for (int64_t ox = 0; ox < c->Wo; ox++) {
            const int64_t oy = c->oy0 + r;
            float* row = c->cols + (r * c->Wo + ox) * c->K;
            if (c->chw) {
                for (int64_t ci = 0; ci < Cin; ci++)
                    for (int64_t ky = 0; ky < k; ky++)
                        memcpy(row + (ci * k + ky) * k, c->x + (ci * c->H + oy * k + ky) * W + ox * k,
                               sizeof(float) * (size_t)k);
            } else {
                for (int64_t ky = 0; ky < k; ky++)
                    for (int64_t kx = 0; kx < k; kx++) {
                        const float* src = c->x + ((oy * k + ky) * W + ox * k + kx) * Cin;
                        float* dst = row + ky * k + kx;
                        for (int64_t ci = 0; ci < Cin; ci++) dst[ci * k * k] = src[ci];
                    }
            }
        }
}

/* In chunks of output rows whose patches take about 4 MB: the product reads
 * a chunk's patches while they are in the caches, and the buffer is a
 * chunk's (ConvNeXt's stem at 768 had 7 MB of patches to write, read and
 * fault in every frame, its downsampling layers up to 28 MB). */
#define PATCH_CHUNK_BYTES ((int64_t)4 << 20)
void mgl_patchify_conv(const float* x, bool chw, int64_t H, int64_t W, int64_t Cin, int64_t k, const MglWeight* wt,
                       const float* bias, float* y) {
    const int64_t Ho = H / k, Wo = W / k, K = Cin * k * k;
    int64_t rows = PATCH_CHUNK_BYTES / (int64_t)(sizeof(float) * (size_t)(Wo * K));
    rows = rows < 1 ? 1 : rows > Ho ? Ho : rows;
    float* cols = malloc(sizeof(float) * (size_t)(rows * Wo * K));
    for (int64_t oy0 = 0; oy0 < Ho; oy0 += rows) {
        const int64_t n = Ho - oy0 < rows ? Ho - oy0 : rows;
        Im2colCtx c = {x, chw, H, W, Cin, k, Wo, K, oy0, cols};
        mgl_parallel_for(n, 1, im2col_part, &c);
        mgl_matmul(cols, n * Wo, wt, bias, y + oy0 * Wo * wt->rows);
    }
    free(cols);
}

/* ---- resizing ---------------------------------------------------------- */

/* see mgl-ops.h: PyTorch's index, double arithmetic on a float scale */
void mgl_bilinear_src(int64_t in, int64_t out, int64_t o, int64_t* i0, int64_t* i1, float* lambda) {
    const double scale = (double)((float)in / (float)out);
    double src = scale * ((double)o + 0.5) - 0.5;
    if (src < 0) src = 0;
    int64_t a = (int64_t)src;
    *i0 = a;
    *i1 = a < in - 1 ? a + 1 : a;
    *lambda = (float)(src - (double)a);
}

static void bilinear_coeffs(int64_t in, int64_t out, int64_t* i0, int64_t* i1, float* l0, float* l1) {
    for (int64_t o = 0; o < out; o++) {
        mgl_bilinear_src(in, out, o, &i0[o], &i1[o], &l1[o]);
        l0[o] = 1.0f - l1[o];
    }
}

typedef struct {
    const float* x;
    int64_t H, W, C, Ho, Wo;
    const int64_t *h0, *h1, *w0, *w1;
    const float *hl0, *hl1, *wl0, *wl1;
    float* y;
} Bil;

static void bil_chw_part(void* ctx, int64_t b, int64_t e) {
    const Bil* p = ctx;
    for (int64_t c = b; c < e; c++) {
        const float* xc = p->x + c * p->H * p->W;
        for (int64_t oy = 0; oy < p->Ho; oy++)
            for (int64_t ox = 0; ox < p->Wo; ox++) {
                const float* r0 = xc + p->h0[oy] * p->W;
                const float* r1 = xc + p->h1[oy] * p->W;
                p->y[(c * p->Ho + oy) * p->Wo + ox] =
                    p->hl0[oy] * (p->wl0[ox] * r0[p->w0[ox]] + p->wl1[ox] * r0[p->w1[ox]]) +
                    p->hl1[oy] * (p->wl0[ox] * r1[p->w0[ox]] + p->wl1[ox] * r1[p->w1[ox]]);
            }
    }
}

static void bil_nhwc_part(void* ctx, int64_t b, int64_t e) {
    const Bil* p = ctx;
    const int64_t C = p->C;
    for (int64_t oy = b; oy < e; oy++)
        for (int64_t ox = 0; ox < p->Wo; ox++) {
            const float* A = p->x + (p->h0[oy] * p->W + p->w0[ox]) * C;
            const float* B = p->x + (p->h0[oy] * p->W + p->w1[ox]) * C;
            const float* Cc = p->x + (p->h1[oy] * p->W + p->w0[ox]) * C;
            const float* D = p->x + (p->h1[oy] * p->W + p->w1[ox]) * C;
            float* o = p->y + (oy * p->Wo + ox) * C;
            for (int64_t ch = 0; ch < C; ch++)
                o[ch] = p->hl0[oy] * (p->wl0[ox] * A[ch] + p->wl1[ox] * B[ch]) +
                        p->hl1[oy] * (p->wl0[ox] * Cc[ch] + p->wl1[ox] * D[ch]);
        }
}

static void resize(const float* x, int64_t C, int64_t H, int64_t W, int64_t Ho, int64_t Wo, float* y, bool nhwc) {
    int64_t *h0 = malloc(sizeof(int64_t) * (size_t)Ho), *h1 = malloc(sizeof(int64_t) * (size_t)Ho);
    int64_t *w0 = malloc(sizeof(int64_t) * (size_t)Wo), *w1 = malloc(sizeof(int64_t) * (size_t)Wo);
    float *hl0 = malloc(sizeof(float) * (size_t)Ho), *hl1 = malloc(sizeof(float) * (size_t)Ho);
    float *wl0 = malloc(sizeof(float) * (size_t)Wo), *wl1 = malloc(sizeof(float) * (size_t)Wo);
    bilinear_coeffs(H, Ho, h0, h1, hl0, hl1);
    bilinear_coeffs(W, Wo, w0, w1, wl0, wl1);
    Bil p = {x, H, W, C, Ho, Wo, h0, h1, w0, w1, hl0, hl1, wl0, wl1, y};
    if (nhwc)
        mgl_parallel_for(Ho, 1, bil_nhwc_part, &p);
    else
        mgl_parallel_for(C, 1, bil_chw_part, &p);
    free(h0);
    free(h1);
    free(w0);
    free(w1);
    free(hl0);
    free(hl1);
    free(wl0);
    free(wl1);
}

void mgl_resize_bilinear_chw(const float* x, int64_t C, int64_t H, int64_t W, int64_t Ho, int64_t Wo, float* y) {
    resize(x, C, H, W, Ho, Wo, y, false);
}

void mgl_resize_bilinear_nhwc(const float* x, int64_t H, int64_t W, int64_t C, int64_t Ho, int64_t Wo, float* y) {
    resize(x, C, H, W, Ho, Wo, y, true);
}

/* ---- RoPE -------------------------------------------------------------- */

typedef struct {
    float* x;
    int64_t NH, HS, pos0;
    const float* inv;
} RopeCtx;

static void rope_part(void* ctx, int64_t b, int64_t e) {
    const RopeCtx* r = ctx;
    const int64_t half = r->HS / 2;
    for (int64_t t = b; t < e; t++) {
        float pos = (float)(r->pos0 + t);
        for (int64_t i = 0; i < half; i++) {
            float a = pos * r->inv[i];
            float c = cosf(a), s = sinf(a);
            for (int64_t h = 0; h < r->NH; h++) {
                float* v = r->x + t * r->NH * r->HS + h * r->HS;
                float x0 = v[i], x1 = v[i + half];
                v[i] = x0 * c - x1 * s;
                v[i + half] = x1 * c + x0 * s;
            }
        }
    }
}

void mgl_rope(float* x, int64_t T, int64_t NH, int64_t HS, int64_t pos0, float theta) {
    const int64_t half = HS / 2;
    float* inv = malloc(sizeof(float) * (size_t)half);
    /* as HF: inv_freq = 1 / theta ** (arange(0, d, 2).float() / d), in float32 */
    for (int64_t i = 0; i < half; i++) inv[i] = 1.0f / powf(theta, (float)(2 * i) / (float)HS);
    RopeCtx r = {x, NH, HS, pos0, inv};
    mgl_parallel_for(T, 8, rope_part, &r);
    free(inv);
}
