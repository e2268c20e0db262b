/* ops-cpu.c: CPU backend: OpenBLAS GEMM (one thread per call, split across
 * our pool), vectorised elementwise loops, fp32 math. */
#include "mgl-ops.h"

#include "mgl-blas.h"
#include "mgl-pool.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ROW_TILE 256

/* Hot elementwise loops are compiled for AVX-512, AVX2 and baseline x86-64;
 * the loader picks the best at run time. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define MGL_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MGL_CLONES
#endif

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
/* The final reduction of dot_rows4: (a0 + a1), halves, two hadds. */
__attribute__((target("avx2,fma"))) static inline float reduce2(__m256 a0, __m256 a1) {
    __m256 a = _mm256_add_ps(a0, a1);
    __m128 lo = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    lo = _mm_hadd_ps(lo, lo);
    lo = _mm_hadd_ps(lo, lo);
    return _mm_cvtss_f32(lo);
}

/* dot(w_row, x[t]) for up to four rows with AVX2/FMA (bf16 widens by a
 * shift, f16 by F16C): each weight chunk is loaded and widened once for all
 * rows, and each row has its own two 8-lane accumulators, so its sum is
 * formed in the same order whatever the number of rows. */
__attribute__((target("avx2,fma,f16c"))) static void dot_rows4(const void* wrow, MglDType dt, const float* const* x,
                                                               int nt, int64_t K, float* out) {
    __m256 a0[4], a1[4];
    for (int t = 0; t < 4; t++) a0[t] = a1[t] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) {
        __m256 w0, w1;
        if (dt == MGL_DT_F32) {
            w0 = _mm256_loadu_ps((const float*)wrow + k);
            w1 = _mm256_loadu_ps((const float*)wrow + k + 8);
        } else {
            __m128i h0 = _mm_loadu_si128((const __m128i*)((const uint16_t*)wrow + k));
            __m128i h1 = _mm_loadu_si128((const __m128i*)((const uint16_t*)wrow + k + 8));
            if (dt == MGL_DT_BF16) {
                w0 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h0), 16));
                w1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h1), 16));
            } else {
                w0 = _mm256_cvtph_ps(h0);
                w1 = _mm256_cvtph_ps(h1);
            }
        }
        for (int t = 0; t < nt; t++) {
            a0[t] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x[t] + k), a0[t]);
            a1[t] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x[t] + k + 8), a1[t]);
        }
    }
    for (int t = 0; t < nt; t++) {
        float s = reduce2(a0[t], a1[t]);
        for (int64_t j = k; j < K; j++) {
            float w = dt == MGL_DT_F32    ? ((const float*)wrow)[j]
                      : dt == MGL_DT_BF16 ? mgl_bf16_to_f32(((const uint16_t*)wrow)[j])
                                          : mgl_f16_to_f32(((const uint16_t*)wrow)[j]);
            s += w * x[t][j];
        }
        out[t] = s;
    }
}
/* AVX-512: up to eight rows, the same scheme with 16-lane accumulators (each
 * row's sum in one fixed order, whatever the number of rows). */
__attribute__((target("avx512f,avx512bw,avx512vl,f16c,fma"))) static inline __attribute__((always_inline)) void
dot_rows8_body(const void* wrow, MglDType dt, const float* const* x, int nt, int64_t K, float* out) {
    __m512 a0[8], a1[8];
    for (int t = 0; t < 8; t++) a0[t] = a1[t] = _mm512_setzero_ps();
    int64_t k = 0;
    const size_t es = dt == MGL_DT_F32 ? 4 : 2;
    for (; k + 32 <= K; k += 32) {
        /* many rows make each weight line slow to consume: fetch ahead so the
         * stream of weights keeps the memory busy */
        _mm_prefetch((const char*)wrow + (size_t)k * es + 2048, _MM_HINT_T0);
        _mm_prefetch((const char*)wrow + (size_t)k * es + 2112, _MM_HINT_T0);
        __m512 w0, w1;
        if (dt == MGL_DT_F32) {
            w0 = _mm512_loadu_ps((const float*)wrow + k);
            w1 = _mm512_loadu_ps((const float*)wrow + k + 16);
        } else {
            __m256i h0 = _mm256_loadu_si256((const __m256i*)((const uint16_t*)wrow + k));
            __m256i h1 = _mm256_loadu_si256((const __m256i*)((const uint16_t*)wrow + k + 16));
            if (dt == MGL_DT_BF16) {
                w0 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h0), 16));
                w1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h1), 16));
            } else {
                w0 = _mm512_cvtph_ps(h0);
                w1 = _mm512_cvtph_ps(h1);
            }
        }
        for (int t = 0; t < nt; t++) {
            a0[t] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x[t] + k), a0[t]);
            a1[t] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x[t] + k + 16), a1[t]);
        }
    }
    for (int t = 0; t < nt; t++) {
        float s = _mm512_reduce_add_ps(_mm512_add_ps(a0[t], a1[t]));
        for (int64_t j = k; j < K; j++) {
            float w = dt == MGL_DT_F32    ? ((const float*)wrow)[j]
                      : dt == MGL_DT_BF16 ? mgl_bf16_to_f32(((const uint16_t*)wrow)[j])
                                          : mgl_f16_to_f32(((const uint16_t*)wrow)[j]);
            s += w * x[t][j];
        }
        out[t] = s;
    }
}
/* dot_rows8_body compiled for each row count and weight type, so the row
 * loop unrolls and the type test leaves the inner loop (same arithmetic). */
#define MGL_ROWS8(NT)                                                                                            \
    __attribute__((target("avx512f,avx512bw,avx512vl,f16c,fma"))) static void dot_rows8_##NT(                    \
        const void* w, MglDType dt, const float* const* x, int64_t K, float* out) {                              \
        if (dt == MGL_DT_F32) dot_rows8_body(w, MGL_DT_F32, x, NT, K, out);                                     \
        else if (dt == MGL_DT_BF16) dot_rows8_body(w, MGL_DT_BF16, x, NT, K, out);                              \
        else dot_rows8_body(w, MGL_DT_F16, x, NT, K, out);                                                      \
    }
MGL_ROWS8(1)
MGL_ROWS8(2)
MGL_ROWS8(3)
MGL_ROWS8(4)
MGL_ROWS8(5)
MGL_ROWS8(6)
MGL_ROWS8(7)
MGL_ROWS8(8)
typedef void (*MglRows8Fn)(const void*, MglDType, const float* const*, int64_t, float*);
static const MglRows8Fn dot_rows8_avx512[9] = {NULL, dot_rows8_1, dot_rows8_2, dot_rows8_3, dot_rows8_4,
                                               dot_rows8_5, dot_rows8_6, dot_rows8_7, dot_rows8_8};

static int have_avx512(void) {
    static int v = -1;
    if (v < 0) {
        const char* isa = getenv("MGL_CPU_ISA"); /* "avx2" or "scalar" force a narrower kernel (tests) */
        v = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512vl") && mgl_cpu_has_f16c() && !(isa && *isa);
    }
    return v;
}
static int have_avx2(void) {
    static int v = -1;
    if (v < 0) {
        const char* isa = getenv("MGL_CPU_ISA");
        v = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && mgl_cpu_has_f16c() &&
            !(isa && !strcmp(isa, "scalar"));
    }
    return v;
}
#define MGL_HAVE_DOT16 1
#endif

void mgl_weight_row(const MglWeight* W, int64_t r, float* out) {
    const uint8_t* base = W->data;
    size_t es = mgl_dtype_size(W->dtype);
    mgl_convert_floats(base + (size_t)(r * W->cols) * es, W->dtype, out, MGL_DT_F32, (size_t)W->cols);
}

/* ---- GEMM -------------------------------------------------------------- */

/* C[M,N] = alpha * A[M,K] B^T (trans_b) or A B, split over the pool along N
 * (or M when N is narrow); each part is a single-threaded OpenBLAS call. */
typedef struct {
    int trans_b, M, N, K, lda, ldb, ldc;
    float alpha, beta;
    const float *A, *B;
    float* C;
    bool split_n;
} Gemm;

static void gemm_part(void* ctx, int64_t b, int64_t e) {
    const Gemm* g = ctx;
    if (g->split_n) {
        const float* B = g->trans_b ? g->B + b * g->ldb : g->B + b;
        mgl_sgemm(g->trans_b, g->M, (int)(e - b), g->K, g->alpha, g->A, g->lda, B, g->ldb, g->beta, g->C + b, g->ldc);
    } else {
        mgl_sgemm(g->trans_b, (int)(e - b), g->N, g->K, g->alpha, g->A + b * g->lda, g->lda, g->B, g->ldb, g->beta,
                  g->C + b * g->ldc, g->ldc);
    }
}

static void gemm(int trans_b, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
                 float beta, float* C, int ldc) {
    /* split the larger side: each part then packs only its own slice of the
     * big operand (ConvNeXt: 36864 rows of activations; decoders: the weights) */
    Gemm g = {trans_b, M, N, K, lda, ldb, ldc, alpha, beta, A, B, C, N > M};
    double work = (double)M * N * K;
    int64_t len = g.split_n ? N : M;
    if (work < 2e5) {
        gemm_part(&g, 0, len);
        return;
    }
    /* one part per thread (at least 16 rows/cols): fewer, larger BLAS calls */
    int64_t threads = mgl_pool_size();
    int64_t grain = (len + threads - 1) / threads;
    mgl_parallel_for(len, grain < 16 ? 16 : grain, gemm_part, &g);
}

typedef struct {
    const float* x;
    int64_t T, K, N;
    const MglWeight* W;
    float* y;
} MatmulCtx;

/* Decode rows: y[m, n] = dot(W[n], x[m]) for m < T, each dot in one fixed
 * order whatever T is (a sequence's result does not depend on what else is
 * in the batch); a weight row is read from memory once for all T rows. */
static void rows_part(void* ctx, int64_t b, int64_t e) {
    const MatmulCtx* c = ctx;
    const uint8_t* base = c->W->data;
    const MglDType dt = c->W->dtype;
    size_t es = mgl_dtype_size(dt);
#ifdef MGL_HAVE_DOT16
    if (have_avx512()) {
        for (int64_t n = b; n < e; n++) {
            const void* w = base + (size_t)(n * c->K) * es;
            for (int64_t t0 = 0; t0 < c->T; t0 += 8) {
                const int nt = c->T - t0 < 8 ? (int)(c->T - t0) : 8;
                const float* x[8];
                float o[8];
                for (int t = 0; t < nt; t++) x[t] = c->x + (t0 + t) * c->K;
                dot_rows8_avx512[nt](w, dt, x, c->K, o);
                for (int t = 0; t < nt; t++) c->y[(t0 + t) * c->N + n] = o[t];
            }
        }
        return;
    }
    if (have_avx2()) {
        for (int64_t n = b; n < e; n++) {
            const void* w = base + (size_t)(n * c->K) * es;
            for (int64_t t0 = 0; t0 < c->T; t0 += 4) {
                const int nt = c->T - t0 < 4 ? (int)(c->T - t0) : 4;
                const float* x[4];
                float o[4];
                for (int t = 0; t < nt; t++) x[t] = c->x + (t0 + t) * c->K;
                dot_rows4(w, dt, x, nt, c->K, o);
                for (int t = 0; t < nt; t++) c->y[(t0 + t) * c->N + n] = o[t];
            }
        }
        return;
    }
#endif
    float* row = dt == MGL_DT_F32 ? NULL : malloc(sizeof(float) * (size_t)c->K);
    for (int64_t n = b; n < e; n++) {
        const float* w = (const float*)(base + (size_t)(n * c->K) * es);
        if (row) {
            mgl_convert_floats(base + (size_t)(n * c->K) * es, dt, row, MGL_DT_F32, (size_t)c->K);
            w = row;
        }
        for (int64_t t = 0; t < c->T; t++) {
            const float* x = c->x + t * c->K;
            float s = 0.0f;
            for (int64_t k = 0; k < c->K; k++) s += w[k] * x[k];
            c->y[t * c->N + n] = s;
        }
    }
    free(row);
}

/* prefill with 16-bit weights: widen ROW_TILE rows at a time, GEMM each tile */
static void tiles16_part(void* ctx, int64_t b, int64_t e) {
    const MatmulCtx* c = ctx;
    const uint8_t* base = c->W->data;
    size_t es = mgl_dtype_size(c->W->dtype);
    float* tile = malloc(sizeof(float) * (size_t)(ROW_TILE * c->K));
    for (int64_t t = b; t < e; t++) {
        int64_t n0 = t * ROW_TILE;
        int64_t nr = c->N - n0 < ROW_TILE ? c->N - n0 : ROW_TILE;
        mgl_convert_floats(base + (size_t)(n0 * c->K) * es, c->W->dtype, tile, MGL_DT_F32, (size_t)(nr * c->K));
        mgl_sgemm(1, (int)c->T, (int)nr, (int)c->K, 1.0f, c->x, (int)c->K, tile, (int)c->K, 0.0f, c->y + n0,
                  (int)c->N);
    }
    free(tile);
}

typedef struct {
    float* y;
    const float* bias;
    int64_t N;
} BiasCtx;

static void bias_part(void* ctx, int64_t b, int64_t e) {
    const BiasCtx* c = ctx;
    for (int64_t t = b; t < e; t++)
        for (int64_t n = 0; n < c->N; n++) c->y[t * c->N + n] += c->bias[n];
}

static void add_bias(float* y, int64_t T, int64_t N, const float* bias) {
    BiasCtx bc = {y, bias, N};
    mgl_parallel_for(T, (4096 + N - 1) / N, bias_part, &bc);
}

void mgl_matmul_rows(const float* x, int64_t T, const MglWeight* W, const float* bias, float* y) {
    MatmulCtx c = {x, T, W->cols, W->rows, W, y};
    mgl_parallel_for(W->rows, 64, rows_part, &c);
    if (bias) add_bias(y, T, W->rows, bias);
}

void mgl_matmul(const float* x, int64_t T, const MglWeight* W, const float* bias, float* y) {
    const int64_t N = W->rows, K = W->cols;
    MatmulCtx c = {x, T, K, N, W, y};
    if (T == 1) {
        mgl_matmul_rows(x, 1, W, bias, y);
        return;
    }
    if (W->dtype == MGL_DT_F32) {
        gemm(1, (int)T, (int)N, (int)K, 1.0f, x, (int)K, (const float*)W->data, (int)K, 0.0f, y, (int)N);
    } else {
        mgl_parallel_for((N + ROW_TILE - 1) / ROW_TILE, 1, tiles16_part, &c);
    }
    if (bias) add_bias(y, T, N, bias);
}

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
    for (int64_t i = b; i < e; i++) x[i] = x[i] / (1.0f + expf(-1.702f * x[i]));
}

void mgl_quick_gelu(float* x, int64_t n) { mgl_parallel_for(n, 16384, quick_gelu_part, x); }

typedef struct {
    const float *a, *b;
    float* out;
} BinCtx;

MGL_CLONES static void silu_mul_part(void* ctx, int64_t b, int64_t e) {
    const BinCtx* c = ctx;
    for (int64_t i = b; i < e; i++) c->out[i] = c->a[i] / (1.0f + expf(-c->a[i])) * c->b[i];
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

MGL_CLONES static void dwconv7_part(void* ctx, int64_t rb, int64_t re) {
    const DwCtx* d = ctx;
    const int64_t H = d->H, W = d->W, C = d->C;
    for (int64_t r = rb; r < re; r++)
        for (int64_t c = 0; c < W; c++) {
            float* yo = d->y + (r * W + c) * C;
            for (int64_t ch = 0; ch < C; ch++) yo[ch] = d->b ? d->b[ch] : 0.0f;
            for (int ky = 0; ky < 7; ky++) {
                int64_t yy = r + ky - 3;
                if (yy < 0 || yy >= H) continue;
                for (int kx = 0; kx < 7; kx++) {
                    int64_t xx = c + kx - 3;
                    if (xx < 0 || xx >= W) continue;
                    const float* xi = d->x + (yy * W + xx) * C;
                    const float* wk = d->wt + (ky * 7 + kx) * C;
                    for (int64_t ch = 0; ch < C; ch++) yo[ch] += xi[ch] * wk[ch];
                }
            }
        }
}

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
    float* cols;
} Im2colCtx;

static void im2col_part(void* ctx, int64_t b, int64_t e) {
    const Im2colCtx* c = ctx;
    for (int64_t oy = b; oy < e; oy++)
        for (int64_t ox = 0; ox < c->Wo; ox++) {
            float* row = c->cols + (oy * c->Wo + ox) * c->K;
            for (int64_t ci = 0; ci < c->Cin; ci++)
                for (int64_t ky = 0; ky < c->k; ky++)
                    for (int64_t kx = 0; kx < c->k; kx++) {
                        int64_t iy = oy * c->k + ky, ix = ox * c->k + kx;
                        row[(ci * c->k + ky) * c->k + kx] =
                            c->chw ? c->x[(ci * c->H + iy) * c->W + ix] : c->x[(iy * c->W + ix) * c->Cin + ci];
                    }
        }
}

void mgl_patchify_conv(const float* x, bool chw, int64_t H, int64_t W, int64_t Cin, int64_t k, const MglWeight* wt,
                       const float* bias, float* y) {
    int64_t Ho = H / k, Wo = W / k, K = Cin * k * k;
    float* cols = malloc(sizeof(float) * (size_t)(Ho * Wo * K));
    Im2colCtx c = {x, chw, H, W, Cin, k, Wo, K, cols};
    mgl_parallel_for(Ho, 1, im2col_part, &c);
    mgl_matmul(cols, Ho * Wo, wt, bias, y);
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
    if (nhwc) mgl_parallel_for(Ho, 1, bil_nhwc_part, &p);
    else mgl_parallel_for(C, 1, bil_chw_part, &p);
    free(h0); free(h1); free(w0); free(w1); free(hl0); free(hl1); free(wl0); free(wl1);
}

void mgl_resize_bilinear_chw(const float* x, int64_t C, int64_t H, int64_t W, int64_t Ho, int64_t Wo, float* y) {
    resize(x, C, H, W, Ho, Wo, y, false);
}

void mgl_resize_bilinear_nhwc(const float* x, int64_t H, int64_t W, int64_t C, int64_t Ho, int64_t Wo, float* y) {
    resize(x, C, H, W, Ho, Wo, y, true);
}

/* ---- attention --------------------------------------------------------- */

typedef struct {
    const float *q, *kc, *vc;
    int64_t T, pos0, NH, NKV, HS, L;
    bool causal;
    float* out;
} AttnCtx;

/* Small T (decode): one pass per (token, head) over the cache. */
static void attn_rows_part(void* ctx, int64_t b, int64_t e) {
    const AttnCtx* a = ctx;
    const int64_t group = a->NH / a->NKV, HS = a->HS;
    const float scale = 1.0f / sqrtf((float)HS);
    float* att = malloc(sizeof(float) * (size_t)a->L);
    for (int64_t th = b; th < e; th++) {
        int64_t t = th / a->NH, h = th % a->NH;
        const float* qh = a->q + t * a->NH * HS + h * HS;
        int64_t kvh = h / group;
        int64_t n = a->causal ? a->pos0 + t + 1 : a->L;
        float mx = -INFINITY;
        for (int64_t j = 0; j < n; j++) {
            const float* kj = a->kc + j * a->NKV * HS + kvh * HS;
            float s = 0.0f;
            for (int64_t d = 0; d < HS; d++) s += qh[d] * kj[d];
            s *= scale;
            att[j] = s;
            if (s > mx) mx = s;
        }
        double sum = 0.0;
        for (int64_t j = 0; j < n; j++) {
            att[j] = expf(att[j] - mx);
            sum += att[j];
        }
        float inv = (float)(1.0 / sum);
        float* o = a->out + t * a->NH * HS + h * HS;
        memset(o, 0, sizeof(float) * (size_t)HS);
        for (int64_t j = 0; j < n; j++) {
            const float* vj = a->vc + j * a->NKV * HS + kvh * HS;
            float p = att[j] * inv;
            for (int64_t d = 0; d < HS; d++) o[d] += p * vj[d];
        }
    }
    free(att);
}

/* Prefill: per head, S = Q K^T and O = P V as GEMMs over strided views; heads
 * are spread over the pool, each with its own score buffer. */
static void attn_heads_part(void* ctx, int64_t b, int64_t e) {
    const AttnCtx* a = ctx;
    const int64_t T = a->T, L = a->L, HS = a->HS, group = a->NH / a->NKV;
    const float scale = 1.0f / sqrtf((float)HS);
    float* S = malloc(sizeof(float) * (size_t)(T * L));
    for (int64_t h = b; h < e; h++) {
        const int64_t kvh = h / group;
        mgl_sgemm(1, (int)T, (int)L, (int)HS, scale, a->q + h * HS, (int)(a->NH * HS), a->kc + kvh * HS,
                  (int)(a->NKV * HS), 0.0f, S, (int)L);
        for (int64_t t = 0; t < T; t++) {
            float* r = S + t * L;
            int64_t n = a->causal ? a->pos0 + t + 1 : L;
            float mx = -INFINITY;
            for (int64_t j = 0; j < n; j++) mx = r[j] > mx ? r[j] : mx;
            double sum = 0.0;
            for (int64_t j = 0; j < n; j++) {
                r[j] = expf(r[j] - mx);
                sum += r[j];
            }
            float inv = (float)(1.0 / sum);
            for (int64_t j = 0; j < n; j++) r[j] *= inv;
            for (int64_t j = n; j < L; j++) r[j] = 0.0f;
        }
        mgl_sgemm(0, (int)T, (int)HS, (int)L, 1.0f, S, (int)L, a->vc + kvh * HS, (int)(a->NKV * HS), 0.0f,
                  a->out + h * HS, (int)(a->NH * HS));
    }
    free(S);
}

void mgl_attention(const float* q, int64_t T, int64_t pos0, const float* kc, const float* vc, int64_t NH, int64_t NKV,
                   int64_t HS, bool causal, float* out) {
    AttnCtx a = {q, kc, vc, T, pos0, NH, NKV, HS, pos0 + T, causal, out};
    if (T >= 16) mgl_parallel_for(NH, 1, attn_heads_part, &a);
    else mgl_parallel_for(T * NH, 1, attn_rows_part, &a);
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
