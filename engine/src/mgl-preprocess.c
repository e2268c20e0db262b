/* mgl-preprocess.c: square padding, Pillow-exact bicubic resize, CLIP
 * normalisation and the box pipeline of MG-LLaVA's eval dataset. */
#include "mgl-preprocess.h"
#include "cpu/mgl-cpu-isa.h"
#include "cpu/mgl-pool.h"

#include <glib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* (122,116,104) = int(x*255) of the CLIP mean: truncation, as expand2square does */
static const uint8_t k_pad[3] = {122, 116, 104};
static const float k_mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
static const float k_std[3] = {0.26862954f, 0.26130258f, 0.27577711f};

MglStatus mgl_image_check(int w, int h, int stride, MglErr* err) {
    if (w < 1 || h < 1) return mgl_err(err, MGL_E_INVALID, "image: empty (%dx%d)", w, h);
    if (w > 16384 || h > 16384)
        return mgl_err(err, MGL_E_INVALID, "image: %dx%d is larger than 16384 pixels a side", w, h);
    if (stride < 3 * w) return mgl_err(err, MGL_E_INVALID, "image: stride %d is less than 3*width", stride);
    return MGL_OK;
}

MglStatus mgl_pad_square(const uint8_t* rgb, int w, int h, int stride, uint8_t** out, int* S_out, MglErr* err) {
    MGL_TRY(mgl_image_check(w, h, stride, err));
    int S, ox, oy;
    mgl_pad_geometry(w, h, &S, &ox, &oy, NULL);
    uint8_t* c = malloc((size_t)S * S * 3);
    if (!c) return mgl_err(err, MGL_E_NOMEM, "image: out of memory for a %dx%d canvas", S, S);
    for (int x = 0; x < S; x++) memcpy(c + 3 * x, k_pad, 3); /* one row of the pad colour, copied */
    for (int y = 1; y < S; y++) memcpy(c + (size_t)y * S * 3, c, (size_t)S * 3);
    for (int y = 0; y < h; y++) memcpy(c + ((size_t)(y + oy) * S + ox) * 3, rgb + (size_t)y * stride, (size_t)w * 3);
    *out = c;
    *S_out = S;
    return MGL_OK;
}

/* ---- Pillow resampling (libImaging/Resample.c semantics) -------------- */

#define PRECISION_BITS MGL_BICUBIC_PRECISION /* 32 - 8 - 2, as Pillow */

static double bicubic_filter(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

void mgl_pad_geometry(int w, int h, int* S, int* ox, int* oy, uint8_t colour[3]) {
    if (colour) memcpy(colour, k_pad, 3);
    *S = w > h ? w : h;
    *ox = w < h ? (h - w) / 2 : 0;
    *oy = w > h ? (w - h) / 2 : 0;
}

/* Coefficients for one axis: bounds (xmin, xsize) per output and fixed-point weights. */
int mgl_bicubic_coeffs(int in_size, int out_size, int** bounds_out, int32_t** kk_out) {
    double scale = (double)in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 2.0 * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    double* prekk = calloc((size_t)out_size * ksize, sizeof(double));
    int* bounds = calloc((size_t)out_size * 2, sizeof(int));
    int32_t* kk = calloc((size_t)out_size * ksize, sizeof(int32_t));
    if (!prekk || !bounds || !kk) {
        free(prekk);
        free(bounds);
        free(kk);
        *bounds_out = NULL;
        *kk_out = NULL;
        return 0;
    }
    for (int xx = 0; xx < out_size; xx++) {
        double center = (xx + 0.5) * scale;
        double ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        double* k = prekk + (size_t)xx * ksize;
        for (int x = 0; x < xmax; x++) {
            double wgt = bicubic_filter((x + xmin - center + 0.5) * ss);
            k[x] = wgt;
            ww += wgt;
        }
        for (int x = 0; x < xmax; x++)
            if (ww != 0.0) k[x] /= ww;
        bounds[xx * 2] = xmin;
        bounds[xx * 2 + 1] = xmax;
    }
    for (size_t i = 0; i < (size_t)out_size * ksize; i++) {
        double v = prekk[i];
        kk[i] = v < 0 ? (int32_t)(-0.5 + v * (1 << PRECISION_BITS)) : (int32_t)(0.5 + v * (1 << PRECISION_BITS));
    }
    free(prekk);
    *bounds_out = bounds;
    *kk_out = kk;
    return ksize;
}

static uint8_t clip8(int32_t in) {
    int32_t v = in >> PRECISION_BITS;
    return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)v;
}

typedef struct {
    const uint8_t* in;
    uint8_t* out;
    int w, h, ow, oh, ks;
    const int* bounds;
    const int32_t* kk;
    int simd; /* 0: the portable passes, 1: AVX2, 2: AVX-512 */
} Pass;

static void hpass_scalar(const Pass* p, int64_t b, int64_t e) {
    for (int64_t y = b; y < e; y++)
        for (int x = 0; x < p->ow; x++) {
            int xmin = p->bounds[2 * x], xs = p->bounds[2 * x + 1];
            const int32_t* k = p->kk + (size_t)x * p->ks;
            for (int c = 0; c < 3; c++) {
                int32_t ss = 1 << (PRECISION_BITS - 1);
                for (int i = 0; i < xs; i++) ss += p->in[((size_t)y * p->w + xmin + i) * 3 + c] * k[i];
                p->out[((size_t)y * p->ow + x) * 3 + c] = clip8(ss);
            }
        }
}

static void vpass_scalar(const Pass* p, int64_t b, int64_t e) {
    for (int64_t y = b; y < e; y++) {
        int ymin = p->bounds[2 * y], ys = p->bounds[2 * y + 1];
        const int32_t* k = p->kk + (size_t)y * p->ks;
        for (int x = 0; x < p->w; x++)
            for (int c = 0; c < 3; c++) {
                int32_t ss = 1 << (PRECISION_BITS - 1);
                for (int i = 0; i < ys; i++) ss += p->in[((size_t)(ymin + i) * p->w + x) * 3 + c] * k[i];
                p->out[((size_t)y * p->w + x) * 3 + c] = clip8(ss);
            }
    }
}

/* hpass's blocks of 16 outputs: the window [j0, j0 + width) of input pixels
 * and width rows of 16 coefficients */
typedef struct {
    int j0, width;
    size_t off; /* into coef, in rows of 16 */
} HBlock;

/* hpass's context: the pass, and the blocks when the SIMD passes run */
typedef struct {
    Pass pass;
    const HBlock* blocks;
    const int32_t* coef;
    int nblk;
} HPass;

/* The passes with AVX-512, the same integer sums: every product and partial
 * sum is exact in int32 (8-bit pixels times 22-bit weights, and Pillow's
 * weights of a tap sum to 1), so any order of the additions gives Pillow's
 * bytes. vpass: 16 bytes of a row (any channel) at a time, one multiply-add
 * per tap (8 with AVX2). hpass: 16 outputs of one channel at a time as a dense block: the
 * block's coefficients laid out by input pixel (zero outside an output's
 * taps), so each input pixel of the block's window is one broadcast
 * multiply-add, on a row split into planes first. */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define PRE_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))

PRE_AVX512 static inline __m128i clip8x16(__m512i acc) {
    const __m512i v = _mm512_max_epi32(_mm512_srai_epi32(acc, PRECISION_BITS), _mm512_setzero_si512());
    return _mm512_cvtusepi32_epi8(v); /* saturates above 255 */
}

/* AVX2 (CPUs without AVX-512): the same sums 8 lanes at a time */
#define PRE_AVX2 __attribute__((target("avx2")))
PRE_AVX2 static inline void store8_clip(uint8_t* o, __m256i acc) {
    __m256i v = _mm256_srai_epi32(acc, PRECISION_BITS);
    v = _mm256_min_epi32(_mm256_max_epi32(v, _mm256_setzero_si256()), _mm256_set1_epi32(255));
    const __m256i w = _mm256_packus_epi16(_mm256_packus_epi32(v, v), _mm256_setzero_si256());
    const __m128i lo = _mm_unpacklo_epi32(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
    _mm_storel_epi64((__m128i*)o, lo);
}

/* One output row of vpass: n bytes at o from ys input rows n bytes apart at
 * base, weighted by k */
PRE_AVX2 static void vrow_avx2(const uint8_t* base, int64_t n, const int32_t* k, int ys, uint8_t* o) {
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256i acc = _mm256_set1_epi32(1 << (PRECISION_BITS - 1));
        for (int i = 0; i < ys; i++) {
            const __m256i px = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)(base + (size_t)i * n + j)));
            acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(px, _mm256_set1_epi32(k[i])));
        }
        store8_clip(o + j, acc);
    }
    for (; j < n; j++) {
        int32_t ss = 1 << (PRECISION_BITS - 1);
        for (int i = 0; i < ys; i++) ss += base[(size_t)i * n + j] * k[i];
        o[j] = clip8(ss);
    }
}

PRE_AVX512 static void vrow_avx512(const uint8_t* base, int64_t n, const int32_t* k, int ys, uint8_t* o) {
    for (int64_t j = 0; j < n; j += 16) {
        const __mmask16 m = n - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - j)) - 1);
        __m512i acc = _mm512_set1_epi32(1 << (PRECISION_BITS - 1));
        for (int i = 0; i < ys; i++) {
            const __m512i px = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, base + (size_t)i * n + j));
            acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(px, _mm512_set1_epi32(k[i])));
        }
        _mm_mask_storeu_epi8(o + j, m, clip8x16(acc));
    }
}

/* One block's 16 outputs of channel c (its plane pl from the window's first
 * pixel) into px[16] */
PRE_AVX512 static void hblock_avx512(const int32_t* pl, const int32_t* cf, int width, uint8_t* px) {
    __m512i acc = _mm512_set1_epi32(1 << (PRECISION_BITS - 1));
    for (int j = 0; j < width; j++)
        acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(_mm512_set1_epi32(pl[j]), _mm512_loadu_si512(cf + j * 16)));
    _mm_storeu_si128((__m128i*)px, clip8x16(acc));
}
PRE_AVX2 static void hblock_avx2(const int32_t* pl, const int32_t* cf, int width, uint8_t* px) {
    __m256i a0 = _mm256_set1_epi32(1 << (PRECISION_BITS - 1)), a1 = a0;
    for (int j = 0; j < width; j++) {
        const __m256i v = _mm256_set1_epi32(pl[j]);
        a0 = _mm256_add_epi32(a0, _mm256_mullo_epi32(v, _mm256_loadu_si256((const __m256i*)(cf + j * 16))));
        a1 = _mm256_add_epi32(a1, _mm256_mullo_epi32(v, _mm256_loadu_si256((const __m256i*)(cf + j * 16 + 8))));
    }
    store8_clip(px, a0);
    store8_clip(px + 8, a1);
}

static void hpass_blocks(const HPass* h, int64_t b, int64_t e) {
    const Pass* p = &h->pass;
    int32_t* planes = malloc(sizeof(int32_t) * 3 * (size_t)p->w);
    if (!planes) {
        hpass_scalar(p, b, e);
        return;
    }
    for (int64_t y = b; y < e; y++) {
        const uint8_t* row = p->in + (size_t)y * p->w * 3;
        for (int x = 0; x < p->w; x++)
            for (int c = 0; c < 3; c++) planes[(size_t)c * p->w + x] = row[x * 3 + c];
        uint8_t* o = p->out + (size_t)y * p->ow * 3;
        for (int bi = 0; bi < h->nblk; bi++) {
            const HBlock* hb = &h->blocks[bi];
            const int32_t* cf = h->coef + hb->off * 16;
            uint8_t px[3][16];
            for (int c = 0; c < 3; c++) {
                const int32_t* pl = planes + (size_t)c * p->w + hb->j0;
                if (p->simd == 2)
                    hblock_avx512(pl, cf, hb->width, px[c]);
                else
                    hblock_avx2(pl, cf, hb->width, px[c]);
            }
            const int x0 = bi * 16, nx = p->ow - x0 < 16 ? p->ow - x0 : 16;
            for (int t = 0; t < nx; t++)
                for (int c = 0; c < 3; c++) o[(size_t)(x0 + t) * 3 + c] = px[c][t];
        }
    }
    free(planes);
}

/* The block tables of hpass_blocks for a Pass; false when out of memory. */
static bool hblocks_make(HPass* h) {
    const Pass* p = &h->pass;
    h->nblk = (p->ow + 15) / 16;
    HBlock* blocks = malloc(sizeof(HBlock) * (size_t)h->nblk);
    if (!blocks) return false;
    size_t rows = 0;
    for (int bi = 0; bi < h->nblk; bi++) {
        const int x0 = bi * 16, x1 = x0 + 16 < p->ow ? x0 + 16 : p->ow;
        int j0 = p->bounds[2 * x0], j1 = j0;
        for (int x = x0; x < x1; x++) {
            if (p->bounds[2 * x] < j0) j0 = p->bounds[2 * x];
            if (p->bounds[2 * x] + p->bounds[2 * x + 1] > j1) j1 = p->bounds[2 * x] + p->bounds[2 * x + 1];
        }
        blocks[bi] = (HBlock){j0, j1 - j0, rows};
        rows += (size_t)(j1 - j0);
    }
    int32_t* coef = calloc(rows * 16 + 16, sizeof(int32_t));
    if (!coef) {
        free(blocks);
        return false;
    }
    for (int bi = 0; bi < h->nblk; bi++) {
        const int x0 = bi * 16, x1 = x0 + 16 < p->ow ? x0 + 16 : p->ow;
        for (int x = x0; x < x1; x++) {
            const int xmin = p->bounds[2 * x], xs = p->bounds[2 * x + 1];
            for (int i = 0; i < xs; i++)
                coef[(blocks[bi].off + (size_t)(xmin + i - blocks[bi].j0)) * 16 + (size_t)(x - x0)] =
                    p->kk[(size_t)x * p->ks + i];
        }
    }
    h->blocks = blocks;
    h->coef = coef;
    return true;
}
#endif

static void hpass(void* ctx, int64_t b, int64_t e) {
    const HPass* h = ctx;
#if defined(__x86_64__) && defined(__GNUC__)
    if (h->blocks) { /* made only for the SIMD passes */
        hpass_blocks(h, b, e);
        return;
    }
#endif
    hpass_scalar(&h->pass, b, e);
}

static void vpass(void* ctx, int64_t b, int64_t e) {
    const Pass* p = ctx;
#if defined(__x86_64__) && defined(__GNUC__)
    if (p->simd) {
        const int64_t n = (int64_t)p->w * 3;
        for (int64_t y = b; y < e; y++) {
            const uint8_t* base = p->in + (size_t)p->bounds[2 * y] * n;
            const int32_t* k = p->kk + (size_t)y * p->ks;
            if (p->simd == 2)
                vrow_avx512(base, n, k, p->bounds[2 * y + 1], p->out + (size_t)y * n);
            else
                vrow_avx2(base, n, k, p->bounds[2 * y + 1], p->out + (size_t)y * n);
        }
        return;
    }
#endif
    vpass_scalar(p, b, e);
}

static MglStatus resize_bicubic(const uint8_t* in, int w, int h, uint8_t* out, int ow, int oh, bool fast, MglErr* err) {
    if (w == ow && h == oh) {
        memcpy(out, in, (size_t)w * h * 3);
        return MGL_OK;
    }
    int simd = 0;
#if defined(__x86_64__) && defined(__GNUC__)
    if (fast) simd = mgl_cpu_level() >= MGL_CPU_AVX512 ? 2 : mgl_cpu_level() >= MGL_CPU_AVX2 ? 1 : 0;
#else
    (void)fast;
#endif
    /* horizontal pass first, then vertical, as Pillow does */
    int *bx = NULL, *by = NULL;
    int32_t *kx = NULL, *ky = NULL;
    int ksx = mgl_bicubic_coeffs(w, ow, &bx, &kx);
    int ksy = mgl_bicubic_coeffs(h, oh, &by, &ky);
    uint8_t* tmp = malloc((size_t)ow * h * 3);
    if (!bx || !by || !kx || !ky || !tmp) {
        free(tmp);
        free(bx);
        free(by);
        free(kx);
        free(ky);
        return mgl_err(err, MGL_E_NOMEM, "image: out of memory resizing %dx%d to %dx%d", w, h, ow, oh);
    }
    const uint8_t* src = in;
    int tw = w;
    if (ow != w) {
        HPass hp = {.pass = {in, tmp, w, h, ow, h, ksx, bx, kx, simd}};
#if defined(__x86_64__) && defined(__GNUC__)
        if (simd) hblocks_make(&hp); /* leaves no blocks when out of memory: the portable pass */
#endif
        mgl_parallel_for(h, 8, hpass, &hp);
        free((void*)hp.blocks);
        free((void*)hp.coef);
        src = tmp;
        tw = ow;
    }
    if (oh != h) {
        Pass p = {src, out, tw, h, tw, oh, ksy, by, ky, simd};
        mgl_parallel_for(oh, 8, vpass, &p);
    } else {
        memcpy(out, src, (size_t)tw * h * 3);
    }
    free(tmp);
    free(bx);
    free(by);
    free(kx);
    free(ky);
    return MGL_OK;
}

MglStatus mgl_resize_bicubic_rgb8(const uint8_t* in, int w, int h, uint8_t* out, int ow, int oh, MglErr* err) {
    return resize_bicubic(in, w, h, out, ow, oh, true, err);
}

MglStatus mgl_resize_bicubic_rgb8_scalar(const uint8_t* in, int w, int h, uint8_t* out, int ow, int oh, MglErr* err) {
    return resize_bicubic(in, w, h, out, ow, oh, false, err);
}

/* The normalisation of each channel's 256 byte values, each computed as the
 * reference does (uint8 * (1/255) in float64, stored as float32; then
 * (x - mean) / std in float32), so a table lookup gives the same floats. */
typedef struct {
    const uint8_t* rgb;
    float* chw;
    size_t n;
    const float (*lut)[256];
} NormCtx;

static void normalize_part(void* ctx, int64_t b, int64_t e) {
    const NormCtx* c = ctx;
    for (int ch = 0; ch < 3; ch++) {
        float* o = c->chw + ch * c->n;
        const float* t = c->lut[ch];
        for (int64_t i = b; i < e; i++) o[i] = t[c->rgb[i * 3 + ch]];
    }
}

const float (*mgl_normalize_lut(void))[256] {
    static float lut[3][256];
    static gsize done = 0;
    if (g_once_init_enter(&done)) {
        for (int c = 0; c < 3; c++)
            for (int v = 0; v < 256; v++) {
                const float x = (float)((double)v * (1.0 / 255.0));
                lut[c][v] = (x - k_mean[c]) / k_std[c];
            }
        g_once_init_leave(&done, 1);
    }
    return (const float(*)[256])lut;
}

void mgl_normalize_clip(const uint8_t* rgb, int w, int h, float* chw) {
    NormCtx c = {rgb, chw, (size_t)w * h, mgl_normalize_lut()};
    mgl_parallel_for((int64_t)c.n, 16384, normalize_part, &c);
}

/* ---- boxes ------------------------------------------------------------ */

typedef struct {
    float b[4];
    float score;
    int label;
    size_t idx;
} Cand;

static int cand_by_score(const void* a, const void* b) {
    const Cand* x = a;
    const Cand* y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* reading order: row third of the box centre, centre x, then the rank in the NMS output */
typedef struct {
    int row;
    double x;
    size_t rank;
    Cand c;
} ReadKey;

static int read_key_cmp(const void* a, const void* b) {
    const ReadKey* x = a;
    const ReadKey* y = b;
    if (x->row != y->row) return x->row < y->row ? -1 : 1;
    if (x->x != y->x) return x->x < y->x ? -1 : 1;
    return x->rank < y->rank ? -1 : x->rank > y->rank;
}

static void sort_reading_order(Cand* c, size_t m, int h, float dy) {
    ReadKey* k = malloc(sizeof *k * (m ? m : 1));
    for (size_t i = 0; i < m; i++) {
        double cy = ((double)c[i].b[1] + (double)c[i].b[3]) / 2.0 - dy;
        int row = (int)floor(3.0 * cy / h);
        k[i].row = row < 0 ? 0 : row > 2 ? 2 : row;
        k[i].x = ((double)c[i].b[0] + (double)c[i].b[2]) / 2.0;
        k[i].rank = i;
        k[i].c = c[i];
    }
    qsort(k, m, sizeof *k, read_key_cmp);
    for (size_t i = 0; i < m; i++) c[i] = k[i].c;
    free(k);
}

/* IoU above torchvision's threshold (the float IoU against the double 0.2). */
static inline bool suppresses(const float* a, float area_a, const float* b, float area_b) {
    float xx1 = fmaxf(a[0], b[0]), yy1 = fmaxf(a[1], b[1]);
    float xx2 = fminf(a[2], b[2]), yy2 = fminf(a[3], b[3]);
    float iw = fmaxf(0.0f, xx2 - xx1), ih = fmaxf(0.0f, yy2 - yy1);
    float inter = iw * ih;
    float ovr = inter / (area_a + area_b - inter);
    return (double)ovr > 0.2;
}

/* torchvision.ops.batched_nms's coordinate-offset form (what it uses for up
 * to 1000 boxes): every box of label k moves by k * (max_coord + 1), areas
 * and IoUs on the moved coordinates, one greedy pass over all labels at
 * once (with negative coordinates boxes of different labels can then still
 * overlap: kept as torchvision has it). */
static void nms_offset(Cand* c, size_t n, bool* dead) {
    float maxc = -INFINITY;
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 4; k++) maxc = c[i].b[k] > maxc ? c[i].b[k] : maxc;
    float(*sb)[4] = malloc(sizeof(float[4]) * (n ? n : 1));
    float* area = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) {
        float off = (float)c[i].label * (maxc + 1.0f);
        for (int k = 0; k < 4; k++) sb[i][k] = c[i].b[k] + off;
        area[i] = (sb[i][2] - sb[i][0]) * (sb[i][3] - sb[i][1]);
    }
    for (size_t i = 0; i < n; i++) {
        if (dead[i]) continue;
        for (size_t j = i + 1; j < n; j++)
            if (!dead[j] && suppresses(sb[i], area[i], sb[j], area[j])) dead[j] = true;
    }
    free(sb);
    free(area);
}

/* A uniform grid over one label's boxes: each kept box is listed in the
 * cells it covers (or, when it covers too many, in `wide`), so a candidate
 * is compared only with the kept boxes near it. The same greedy decisions
 * as the all-pairs loop: a candidate dies when a kept box of its label
 * overlaps it above the threshold. */
typedef struct {
    double x0, y0, cw, ch;
    int nx, ny;
    GArray** cell; /* of size_t (candidate index), per cell, lazily made */
    GArray* wide;  /* kept boxes that span more than WIDE_CELLS cells */
    size_t* stamp; /* per candidate: the query that last saw it */
} Grid;

#define WIDE_CELLS 64

static void grid_span(const Grid* g, const float* b, int* ix0, int* iy0, int* ix1, int* iy1) {
    double fx0 = floor(((double)b[0] - g->x0) / g->cw), fx1 = floor(((double)b[2] - g->x0) / g->cw);
    double fy0 = floor(((double)b[1] - g->y0) / g->ch), fy1 = floor(((double)b[3] - g->y0) / g->ch);
    *ix0 = fx0 < 0 ? 0 : fx0 >= g->nx ? g->nx - 1 : (int)fx0;
    *ix1 = fx1 < 0 ? 0 : fx1 >= g->nx ? g->nx - 1 : (int)fx1;
    *iy0 = fy0 < 0 ? 0 : fy0 >= g->ny ? g->ny - 1 : (int)fy0;
    *iy1 = fy1 < 0 ? 0 : fy1 >= g->ny ? g->ny - 1 : (int)fy1;
    if (*ix1 < *ix0) *ix1 = *ix0; /* inverted boxes: a cell still, they overlap nothing */
    if (*iy1 < *iy0) *iy1 = *iy0;
}

/* The label's boxes are idx[0..m) (score order); dead marks the suppressed. */
static bool nms_label_grid(const Cand* c, const float* area, const size_t* idx, size_t m, bool* dead,
                           const volatile int* abort) {
    Grid g = {0};
    double x0 = INFINITY, y0 = INFINITY, x1 = -INFINITY, y1 = -INFINITY, sw = 0, sh = 0;
    for (size_t k = 0; k < m; k++) {
        const float* b = c[idx[k]].b;
        x0 = fmin(x0, b[0]);
        y0 = fmin(y0, b[1]);
        x1 = fmax(x1, b[2]);
        y1 = fmax(y1, b[3]);
        sw += fmax(0.0, (double)b[2] - b[0]);
        sh += fmax(0.0, (double)b[3] - b[1]);
    }
    /* cells about the mean box size, at most 256 a side */
    double mw = fmax(sw / (double)m, 1.0), mh = fmax(sh / (double)m, 1.0);
    g.x0 = x0;
    g.y0 = y0;
    g.nx = (int)fmin(256.0, fmax(1.0, ceil((x1 - x0) / mw)));
    g.ny = (int)fmin(256.0, fmax(1.0, ceil((y1 - y0) / mh)));
    g.cw = fmax((x1 - x0) / g.nx, 1e-6);
    g.ch = fmax((y1 - y0) / g.ny, 1e-6);
    g.cell = calloc((size_t)g.nx * (size_t)g.ny, sizeof(GArray*));
    g.wide = g_array_new(FALSE, FALSE, sizeof(size_t));
    g.stamp = calloc(m, sizeof(size_t));
    bool aborted = false;
    for (size_t k = 0; k < m; k++) {
        if ((k & 1023) == 1023 && abort && *abort) {
            aborted = true;
            break;
        }
        const size_t j = idx[k];
        int ix0, iy0, ix1, iy1;
        grid_span(&g, c[j].b, &ix0, &iy0, &ix1, &iy1);
        bool killed = false;
        /* any kept box above the threshold kills it, so the order they are tried in does not matter */
        for (guint w = 0; w < g.wide->len && !killed; w++) {
            size_t i = g_array_index(g.wide, size_t, w);
            killed = suppresses(c[idx[i]].b, area[idx[i]], c[j].b, area[j]);
        }
        for (int yy = iy0; yy <= iy1 && !killed; yy++)
            for (int xx = ix0; xx <= ix1 && !killed; xx++) {
                GArray* a = g.cell[(size_t)yy * g.nx + xx];
                for (guint q = 0; a && q < a->len && !killed; q++) {
                    size_t i = g_array_index(a, size_t, q);
                    if (g.stamp[i] == k + 1) continue;
                    g.stamp[i] = k + 1;
                    killed = suppresses(c[idx[i]].b, area[idx[i]], c[j].b, area[j]);
                }
            }
        if (killed) {
            dead[j] = true;
            continue;
        }
        /* kept: list it where later candidates will look */
        if ((int64_t)(ix1 - ix0 + 1) * (iy1 - iy0 + 1) > WIDE_CELLS) {
            g_array_append_val(g.wide, k);
            continue;
        }
        for (int yy = iy0; yy <= iy1; yy++)
            for (int xx = ix0; xx <= ix1; xx++) {
                GArray** a = &g.cell[(size_t)yy * g.nx + xx];
                if (!*a) *a = g_array_new(FALSE, FALSE, sizeof(size_t));
                g_array_append_val(*a, k);
            }
    }
    for (size_t q = 0; q < (size_t)g.nx * (size_t)g.ny; q++)
        if (g.cell[q]) g_array_free(g.cell[q], TRUE);
    free(g.cell);
    g_array_free(g.wide, TRUE);
    free(g.stamp);
    return !aborted;
}

/* torchvision.ops.batched_nms's per-label form (what it uses past 1000
 * boxes): greedy NMS within each label on the original coordinates. */
static bool nms_vanilla(Cand* c, size_t n, bool* dead, const volatile int* abort) {
    float* area = malloc(sizeof(float) * (n ? n : 1));
    int n_labels = 0;
    for (size_t i = 0; i < n; i++) {
        area[i] = (c[i].b[2] - c[i].b[0]) * (c[i].b[3] - c[i].b[1]);
        if (c[i].label + 1 > n_labels) n_labels = c[i].label + 1;
    }
    /* each label's candidates in score order */
    size_t* start = calloc((size_t)n_labels + 1, sizeof(size_t));
    size_t* idx = malloc(sizeof(size_t) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) start[c[i].label + 1]++;
    for (int l = 0; l < n_labels; l++) start[l + 1] += start[l];
    size_t* fill = calloc((size_t)n_labels, sizeof(size_t));
    for (size_t i = 0; i < n; i++) idx[start[c[i].label] + fill[c[i].label]++] = i;
    bool ok = true;
    for (int l = 0; l < n_labels && ok; l++)
        ok = nms_label_grid(c, area, idx + start[l], start[l + 1] - start[l], dead, abort);
    free(fill);
    free(idx);
    free(start);
    free(area);
    return ok;
}

MglStatus mgl_boxes_to_768(const MglBox* boxes, size_t n, int w, int h, int limit_num, int order, float** out768,
                           size_t* n_out, MglErr* err) {
    return mgl_boxes_to_768_abortable(boxes, n, w, h, limit_num, order, NULL, out768, n_out, err);
}

MglStatus mgl_boxes_to_768_abortable(const MglBox* boxes, size_t n, int w, int h, int limit_num, int order,
                                     const volatile int* abort, float** out768, size_t* n_out, MglErr* err) {
    *out768 = NULL;
    *n_out = 0;
    if (n > 1000000) return mgl_err(err, MGL_E_INVALID, "boxes: %zu boxes is more than 1000000", n);
    for (size_t i = 0; i < n; i++) {
        const MglBox* b = &boxes[i];
        if (!isfinite(b->x1) || !isfinite(b->y1) || !isfinite(b->x2) || !isfinite(b->y2) || !isfinite(b->score))
            return mgl_err(err, MGL_E_INVALID, "boxes: box %zu has a non-finite coordinate or score", i);
        if (fabsf(b->x1) > 1e6f || fabsf(b->y1) > 1e6f || fabsf(b->x2) > 1e6f || fabsf(b->y2) > 1e6f)
            return mgl_err(err, MGL_E_INVALID, "boxes: box %zu has a coordinate beyond 1e6 pixels", i);
    }
    int S = w > h ? w : h;
    float dx = w < h ? (float)((h - w) / 2) : 0.0f, dy = w > h ? (float)((w - h) / 2) : 0.0f;
    Cand* c = calloc(n ? n : 1, sizeof *c);
    /* labels -> ids in order of first appearance */
    GHashTable* ids = g_hash_table_new(g_str_hash, g_str_equal);
    for (size_t i = 0; i < n; i++) {
        c[i].b[0] = boxes[i].x1 + dx;
        c[i].b[1] = boxes[i].y1 + dy;
        c[i].b[2] = boxes[i].x2 + dx;
        c[i].b[3] = boxes[i].y2 + dy;
        c[i].score = boxes[i].score;
        c[i].idx = i;
        const char* l = boxes[i].label ? boxes[i].label : "";
        gpointer v = g_hash_table_lookup(ids, l);
        if (!v) {
            v = GINT_TO_POINTER(g_hash_table_size(ids) + 1);
            g_hash_table_insert(ids, (gpointer)l, v);
        }
        c[i].label = GPOINTER_TO_INT(v) - 1;
    }
    g_hash_table_unref(ids);
    if (n > MGL_MAX_DETECTIONS) {
        /* the most confident MGL_MAX_DETECTIONS (ties: input order) go on to NMS */
        qsort(c, n, sizeof *c, cand_by_score);
        g_message("mgllava: %zu boxes: only the %d most confident go through NMS (the official code would "
                  "keep them all)",
                  n, MGL_MAX_DETECTIONS);
        n = MGL_MAX_DETECTIONS;
    }

    /* torchvision.ops.batched_nms: the coordinate-offset form up to 1000
     * boxes, the per-label form beyond (its 4000-coordinate switch) */
    qsort(c, n, sizeof *c, cand_by_score);
    bool* dead = calloc(n ? n : 1, 1);
    if (n * 4 <= 4000)
        nms_offset(c, n, dead);
    else if (!nms_vanilla(c, n, dead, abort)) {
        free(dead);
        free(c);
        return mgl_err(err, MGL_E_ABORTED, "boxes: aborted");
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (!dead[i]) c[m++] = c[i];
    free(dead);

    /* per-label top-20 when more than limit_num survive; groups in order of
     * first appearance in the score-sorted list */
    if (limit_num > 0 && m > (size_t)limit_num) {
        int per = limit_num > 50 ? 20 : 5;
        Cand* kept = malloc(sizeof *kept * m);
        size_t k = 0;
        bool* done = calloc(m, 1);
        for (size_t i = 0; i < m; i++) {
            if (done[i]) continue;
            int cnt = 0;
            for (size_t j = i; j < m; j++) {
                if (c[j].label != c[i].label) continue;
                done[j] = true;
                if (cnt < per) {
                    kept[k++] = c[j];
                    cnt++;
                }
            }
        }
        free(done);
        memcpy(c, kept, sizeof *kept * k);
        free(kept);
        m = k;
    }

    if (order == MGL_OBJECT_ORDER_READING) sort_reading_order(c, m, h, dy);

    /* scale to the 768 frame: float32 multiply, round half to even */
    double s = 768.0 / S;
    int h1 = (int)(S * s);
    int start = (int)floor((h1 - 768) / 2.0);
    float* out = malloc(sizeof(float) * 4 * (m ? m : 1));
    size_t k = 0;
    for (size_t i = 0; i < m; i++) {
        int v[4];
        for (int q = 0; q < 4; q++) v[q] = (int)nearbyintf(c[i].b[q] * (float)s);
        float x1 = (float)(v[0] - start > 0 ? v[0] - start : 0);
        float y1 = (float)(v[1] - start > 0 ? v[1] - start : 0);
        float x2 = (float)(v[2] - start < 768 ? v[2] - start : 768);
        float y2 = (float)(v[3] - start < 768 ? v[3] - start : 768);
        if (x2 < 0 || y2 < 0 || x1 > 768 || y1 > 768) continue;
        out[4 * k + 0] = x1;
        out[4 * k + 1] = y1;
        out[4 * k + 2] = x2;
        out[4 * k + 3] = y2;
        k++;
    }
    free(c);
    if (k == 0) {
        memset(out, 0, sizeof(float) * 4);
        k = 1;
    }
    *out768 = out;
    *n_out = k;
    return MGL_OK;
}
