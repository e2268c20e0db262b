/* ops-matmul.c: the CPU backend's matrix products. Prefill and vision:
 * OpenBLAS GEMM (one thread per call, split across our pool; 16-bit weights
 * widened a tile at a time). Decode: mgl_matmul_rows, which reads each
 * weight row once for all the sequences of a step, with kernels chosen by
 * CPUID at run time (AVX-512, AVX2, or a portable loop). */
#include "mgl-ops.h"

#include "mgl-blas.h"
#include "mgl-cpu-isa.h"
#include "mgl-ops-bf16.h"
#include "mgl-ops-quant.h"
#include "mgl-pool.h"
#include "mgl-quant.h"
#include <stdlib.h>
#include <string.h>

#define ROW_TILE 256

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
/* The final reduction of the AVX2 kernel: (a0 + a1), halves, two hadds. */
__attribute__((target("avx2,fma"))) static inline float reduce2(__m256 a0, __m256 a1) {
    __m256 a = _mm256_add_ps(a0, a1);
    __m128 lo = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    lo = _mm_hadd_ps(lo, lo);
    lo = _mm_hadd_ps(lo, lo);
    return _mm_cvtss_f32(lo);
}

/* s + the dot of weights [k, K) of a row with x (the scalar tail of the
 * vector kernels). */
static inline float tail_dot(const void* wrow, MglDType dt, const float* x, int64_t k, int64_t K, float s) {
    for (int64_t j = k; j < K; j++) {
        float w = dt == MGL_DT_F32    ? ((const float*)wrow)[j]
                  : dt == MGL_DT_BF16 ? mgl_bf16_to_f32(((const uint16_t*)wrow)[j])
                                      : mgl_f16_to_f32(((const uint16_t*)wrow)[j]);
        s += w * x[j];
    }
    return s;
}

/* Sixteen weights at p widened to f32 (bf16 by a shift, f16 by F16C). */
__attribute__((target("avx512f,avx512bw,avx512vl,f16c,fma"))) static inline __attribute__((always_inline)) __m512
load16w(const void* p, MglDType dt) {
    if (dt == MGL_DT_F32) return _mm512_loadu_ps((const float*)p);
    const __m256i h = _mm256_loadu_si256((const __m256i*)p);
    if (dt == MGL_DT_BF16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    return _mm512_cvtph_ps(h);
}

/* One activation row against weight rows [0, n) (decode of a single
 * sequence), one row after the other: the weights are read as one
 * sequential stream, which the hardware prefetchers follow at the full
 * speed of the memory bus. (Four rows side by side, with software prefetch
 * of the next four, streamed 50-67 GB/s where one sequential stream reached
 * 69-87 in the same minutes, 440 MB of f32 rows on 2 threads.) Each row's
 * sum is formed exactly as dot_blk_body forms it (two 16-lane accumulators
 * over 32-wide steps, one reduce, then the tail), so a sequence's bits do
 * not depend on whether it decodes alone or in a batch. */
__attribute__((target("avx512f,avx512bw,avx512vl,f16c,fma"))) static inline __attribute__((always_inline)) void
dot_seq_body(const void* w0p, size_t row_bytes, MglDType dt, const float* x, int64_t K, int64_t n, float* out) {
    const size_t es = dt == MGL_DT_F32 ? 4 : 2;
    for (int64_t r = 0; r < n; r++) {
        const uint8_t* wr = (const uint8_t*)w0p + (size_t)r * row_bytes;
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
        int64_t k = 0;
        for (; k + 32 <= K; k += 32) {
            a0 = _mm512_fmadd_ps(load16w(wr + (size_t)k * es, dt), _mm512_loadu_ps(x + k), a0);
            a1 = _mm512_fmadd_ps(load16w(wr + (size_t)(k + 16) * es, dt), _mm512_loadu_ps(x + k + 16), a1);
        }
        out[r] = tail_dot(wr, dt, x, k, K, _mm512_reduce_add_ps(_mm512_add_ps(a0, a1)));
    }
}
/* A row-in-order kernel compiled per weight type, so the type test leaves
 * the inner loop. */
#define MGL_SEQ_FN(NAME, TARGET, BODY)                                                                                 \
    __attribute__((target(TARGET))) static void NAME(const void* w, size_t rb, MglDType dt, const float* x, int64_t K, \
                                                     int64_t n, float* out) {                                          \
        if (dt == MGL_DT_F32)                                                                                          \
            BODY(w, rb, MGL_DT_F32, x, K, n, out);                                                                     \
        else if (dt == MGL_DT_BF16)                                                                                    \
            BODY(w, rb, MGL_DT_BF16, x, K, n, out);                                                                    \
        else                                                                                                           \
            BODY(w, rb, MGL_DT_F16, x, K, n, out);                                                                     \
    }
MGL_SEQ_FN(dot_seq, "avx512f,avx512bw,avx512vl,f16c,fma", dot_seq_body)
/* R weight rows against S activation rows (a few sequences of a decode
 * batch): R*S pairs, each with its own two 16-lane accumulators over 32-wide
 * steps, one reduce, then the tail, the order dot_seq uses,
 * so a sequence's bits do not depend on the batch. Each weight chunk is
 * loaded once for the S rows and each activation chunk once for the R rows:
 * (R + S) loads for R * S multiply-adds, where one row at a time needs
 * 1 + S. */
__attribute__((target("avx512f,avx512bw,avx512vl,f16c,fma"))) static inline __attribute__((always_inline)) void
dot_blk_body(const void* w0p, const void* pf, const char* pf2, size_t pf2_step, size_t row_bytes, MglDType dt,
             const float* const* x, int R, int S, int64_t K, float* out, int64_t ldo) {
    __m512 a0[4][2], a1[4][2];
    for (int r = 0; r < R; r++)
        for (int s = 0; s < S; s++) a0[r][s] = a1[r][s] = _mm512_setzero_ps();
    int64_t k = 0;
    const size_t es = dt == MGL_DT_F32 ? 4 : 2;
    for (; k + 32 <= K; k += 32) {
        __m512 w0[4], w1[4];
        for (int r = 0; r < R; r++) {
            const uint8_t* wr = (const uint8_t*)w0p + r * row_bytes + (size_t)k * es;
            /* the same place in the rows the caller will want next */
            for (size_t off = 0; off < 32 * es; off += 64)
                _mm_prefetch((const char*)pf + r * row_bytes + (size_t)k * es + off, _MM_HINT_T0);
            w0[r] = load16w(wr, dt);
            w1[r] = load16w(wr + 16 * es, dt);
        }
        /* a share of the range the caller will want after these rows, into L2 */
        for (size_t off = 0; off < pf2_step; off += 64) _mm_prefetch(pf2 + off, _MM_HINT_T1);
        pf2 += pf2_step;
        for (int s = 0; s < S; s++) {
            const __m512 x0 = _mm512_loadu_ps(x[s] + k), x1 = _mm512_loadu_ps(x[s] + k + 16);
            for (int r = 0; r < R; r++) {
                a0[r][s] = _mm512_fmadd_ps(w0[r], x0, a0[r][s]);
                a1[r][s] = _mm512_fmadd_ps(w1[r], x1, a1[r][s]);
            }
        }
    }
    for (int r = 0; r < R; r++) {
        const uint8_t* wrow = (const uint8_t*)w0p + r * row_bytes;
        for (int s = 0; s < S; s++)
            out[s * ldo + r] = tail_dot(wrow, dt, x[s], k, K, _mm512_reduce_add_ps(_mm512_add_ps(a0[r][s], a1[r][s])));
    }
}
/* A block body compiled for each block shape and weight type, so the loops
 * over R and S unroll and the type test leaves the inner loop. */
typedef void (*MglBlkFn)(const void*, const void*, const char*, size_t, size_t, MglDType, const float* const*, int64_t,
                         float*, int64_t);
#define MGL_BLK_FN(NAME, TARGET, BODY, R, S)                                                                           \
    __attribute__((target(TARGET))) static void NAME##_##R##_##S(                                                      \
        const void* w, const void* pf, const char* pf2, size_t pf2_step, size_t rb, MglDType dt,                       \
        const float* const* x, int64_t K, float* out, int64_t ldo) {                                                   \
        if (dt == MGL_DT_F32)                                                                                          \
            BODY(w, pf, pf2, pf2_step, rb, MGL_DT_F32, x, R, S, K, out, ldo);                                          \
        else if (dt == MGL_DT_BF16)                                                                                    \
            BODY(w, pf, pf2, pf2_step, rb, MGL_DT_BF16, x, R, S, K, out, ldo);                                         \
        else                                                                                                           \
            BODY(w, pf, pf2, pf2_step, rb, MGL_DT_F16, x, R, S, K, out, ldo);                                          \
    }
#define MGL_BLK(R, S) MGL_BLK_FN(dot_blk, "avx512f,avx512bw,avx512vl,f16c,fma", dot_blk_body, R, S)
MGL_BLK(1, 1)
MGL_BLK(1, 2)
MGL_BLK(2, 1)
MGL_BLK(2, 2)
MGL_BLK(4, 1)
MGL_BLK(4, 2)
static const MglBlkFn dot_blk_avx512[5][3] = {
    {NULL, NULL, NULL}, {NULL, dot_blk_1_1, dot_blk_1_2}, {NULL, dot_blk_2_1, dot_blk_2_2},
    {NULL, NULL, NULL}, {NULL, dot_blk_4_1, dot_blk_4_2},
};
/* AVX2: R rows by S sequences, each pair with two 8-lane accumulators over
 * 16-wide steps, reduce2, then the tail, whatever R and S (so under AVX2 too
 * a sequence's bits do not depend on the batch); blocks of two rows for a
 * batch (16 registers), four for one sequence. */
__attribute__((target("avx2,fma,f16c"))) static inline __attribute__((always_inline)) __m256 load8w(const void* p,
                                                                                                    MglDType dt) {
    if (dt == MGL_DT_F32) return _mm256_loadu_ps((const float*)p);
    const __m128i h = _mm_loadu_si128((const __m128i*)p);
    if (dt == MGL_DT_BF16) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    return _mm256_cvtph_ps(h);
}
__attribute__((target("avx2,fma,f16c"))) static inline __attribute__((always_inline)) void
dot_blk2_body(const void* w0p, const void* pf, const char* pf2, size_t pf2_step, size_t row_bytes, MglDType dt,
              const float* const* x, int R, int S, int64_t K, float* out, int64_t ldo) {
    __m256 a0[4][2], a1[4][2];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < S; t++) a0[r][t] = a1[r][t] = _mm256_setzero_ps();
    int64_t k = 0;
    const size_t es = dt == MGL_DT_F32 ? 4 : 2;
    for (; k + 16 <= K; k += 16) {
        for (int r = 0; r < R; r++)
            for (size_t off = 0; off < 16 * es; off += 64)
                _mm_prefetch((const char*)pf + r * row_bytes + (size_t)k * es + off, _MM_HINT_T0);
        for (size_t off = 0; off < pf2_step; off += 64) _mm_prefetch(pf2 + off, _MM_HINT_T1);
        pf2 += pf2_step;
        for (int r = 0; r < R; r++) {
            const uint8_t* wr = (const uint8_t*)w0p + r * row_bytes + (size_t)k * es;
            const __m256 w0 = load8w(wr, dt), w1 = load8w(wr + 8 * es, dt);
            for (int t = 0; t < S; t++) {
                a0[r][t] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x[t] + k), a0[r][t]);
                a1[r][t] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x[t] + k + 8), a1[r][t]);
            }
        }
    }
    for (int r = 0; r < R; r++) {
        const uint8_t* wrow = (const uint8_t*)w0p + r * row_bytes;
        for (int t = 0; t < S; t++) out[t * ldo + r] = tail_dot(wrow, dt, x[t], k, K, reduce2(a0[r][t], a1[r][t]));
    }
}
#define MGL_BLK2(R, S) MGL_BLK_FN(dot_blk2, "avx2,fma,f16c", dot_blk2_body, R, S)
MGL_BLK2(1, 1)
MGL_BLK2(1, 2)
MGL_BLK2(2, 1)
MGL_BLK2(2, 2)
static const MglBlkFn dot_blk_avx2[5][3] = {
    {NULL, NULL, NULL}, {NULL, dot_blk2_1_1, dot_blk2_1_2}, {NULL, dot_blk2_2_1, dot_blk2_2_2}, {NULL, NULL, NULL},
    {NULL, NULL, NULL},
};

/* dot_seq for AVX2: each row's sum as dot_blk2_body forms it (two 8-lane
 * accumulators over 16-wide steps, reduce2, then the tail) */
__attribute__((target("avx2,fma,f16c"))) static inline __attribute__((always_inline)) void
dot_seq2_body(const void* w0p, size_t row_bytes, MglDType dt, const float* x, int64_t K, int64_t n, float* out) {
    const size_t es = dt == MGL_DT_F32 ? 4 : 2;
    for (int64_t r = 0; r < n; r++) {
        const uint8_t* wr = (const uint8_t*)w0p + (size_t)r * row_bytes;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        int64_t k = 0;
        for (; k + 16 <= K; k += 16) {
            a0 = _mm256_fmadd_ps(load8w(wr + (size_t)k * es, dt), _mm256_loadu_ps(x + k), a0);
            a1 = _mm256_fmadd_ps(load8w(wr + (size_t)(k + 8) * es, dt), _mm256_loadu_ps(x + k + 8), a1);
        }
        out[r] = tail_dot(wr, dt, x, k, K, reduce2(a0, a1));
    }
}
MGL_SEQ_FN(dot_seq2, "avx2,fma,f16c", dot_seq2_body)

/* rows [b, e) of W against the T activation rows, with a level's block
 * kernels (tab[R][S]: R weight rows by S = 1 or 2 sequences; rmax rows a
 * block; kstep weights a step) for a batch of T >= 2 rows: each block
 * of rows is passed over by the sequences two at a time (AVX-512: four rows
 * by two sequences, 8 accumulator pairs, 6 loads per 8 multiply-adds per
 * half step). While the later pairs of sequences reread a block from L1, the
 * memory stream must not pause: every call also fetches its share of the
 * next block into L2, spread over its steps, and the next block's first
 * lines into L1 (four rows by four sequences, or two rows by four, kept the
 * bus idle for a third of the time and ran at half the bandwidth on this
 * path). */
static void rows_blocked(const MglBlkFn (*tab)[3], int rmax, int64_t kstep, const uint8_t* base, MglDType dt, size_t es,
                         const float* xs, int64_t T, int64_t K, int64_t N, int64_t b, int64_t e, float* y) {
    const size_t rb = (size_t)K * es;
    const int64_t groups = (T + 1) / 2, steps = K / kstep;
    for (int64_t n = b; n < e;) {
        const int R = e - n >= rmax ? rmax : e - n >= 2 ? 2 : 1;
        const int64_t pn = n + R < N ? n + R : n;
        /* this block's calls share the next block's bytes, rounded up to lines */
        const char* next = (const char*)base + (size_t)(n + R) * rb;
        size_t share = 0;
        if (n + 2 * R <= N && steps > 0) share = (((size_t)R * rb / (size_t)groups) / (size_t)steps + 63) & ~(size_t)63;
        for (int64_t t0 = 0; t0 < T; t0 += 2) {
            const int S = T - t0 < 2 ? 1 : 2;
            const float* x[2] = {xs + t0 * K, xs + (t0 + S - 1) * K};
            tab[R][S](base + (size_t)n * rb, base + (size_t)pn * rb, next, share, rb, dt, x, K, y + t0 * N + n, N);
            next += share * (size_t)steps;
        }
        n += R;
    }
}

static int have_avx512(void) { return mgl_cpu_level() >= MGL_CPU_AVX512; }
static int have_avx2(void) { return mgl_cpu_level() >= MGL_CPU_AVX2; }
#define MGL_HAVE_DOT16 1
#endif

void mgl_weight_row(const MglWeight* W, int64_t r, float* out) {
    if (W->qbits) {
        mgl_quant_dequant_row(W, r, out);
        return;
    }
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
        if (c->T == 1) /* one sequence: the rows in order, one stream */
            dot_seq(base + (size_t)(b * c->K) * es, (size_t)c->K * es, dt, c->x, c->K, e - b, c->y + b);
        else
            rows_blocked(dot_blk_avx512, 4, 32, base, dt, es, c->x, c->T, c->K, c->N, b, e, c->y);
        return;
    }
    if (have_avx2()) {
        if (c->T == 1)
            dot_seq2(base + (size_t)(b * c->K) * es, (size_t)c->K * es, dt, c->x, c->K, e - b, c->y + b);
        else
            rows_blocked(dot_blk_avx2, 2, 16, base, dt, es, c->x, c->T, c->K, c->N, b, e, c->y);
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

/* 16-bit weights widened whole for one GEMM, up to this many elements (64 MB of f32) */
#define WIDEN_MAX ((size_t)16 << 20)
typedef struct {
    const MglWeight* W;
    float* out;
} WidenCtx;
static void widen_part(void* ctx, int64_t b, int64_t e) {
    const WidenCtx* c = ctx;
    const size_t es = mgl_dtype_size(c->W->dtype);
    mgl_convert_floats((const uint8_t*)c->W->data + (size_t)(b * c->W->cols) * es, c->W->dtype, c->out + b * c->W->cols,
                       MGL_DT_F32, (size_t)((e - b) * c->W->cols));
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
        mgl_sgemm(1, (int)c->T, (int)nr, (int)c->K, 1.0f, c->x, (int)c->K, tile, (int)c->K, 0.0f, c->y + n0, (int)c->N);
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

/* bias (if any) then the activation, row by row in one pass */
typedef struct {
    float* y;
    const float* bias;
    int64_t N;
    MglAct act;
} BiasActCtx;

static void bias_act_part(void* ctx, int64_t b, int64_t e) {
    const BiasActCtx* c = ctx;
    for (int64_t t = b; t < e; t++) {
        float* row = c->y + t * c->N;
        if (c->bias)
            for (int64_t n = 0; n < c->N; n++) row[n] += c->bias[n];
        mgl_act_range(c->act, row, c->N);
    }
}

void mgl_matmul_rows(const float* x, int64_t T, const MglWeight* W, const float* bias, float* y) {
    MatmulCtx c = {x, T, W->cols, W->rows, W, y};
    if (W->qbits)
        mgl_qmatmul_rows(x, T, W, y); /* ops-quant.c */
    else
        mgl_parallel_for(W->rows, 64, rows_part, &c);
    if (bias) add_bias(y, T, W->rows, bias);
}

/* Several matrices' rows as one range: a part is cut at the matrices'
 * boundaries and each piece goes to rows_part as if it were its own call. */
typedef struct {
    MatmulCtx m[4];
    int64_t start[5];
    int n;
} MultiCtx;

static void multi_part(void* ctx, int64_t b, int64_t e) {
    const MultiCtx* c = ctx;
    for (int i = 0; i < c->n; i++) {
        const int64_t lo = b > c->start[i] ? b : c->start[i], hi = e < c->start[i + 1] ? e : c->start[i + 1];
        if (lo < hi) rows_part((void*)&c->m[i], lo - c->start[i], hi - c->start[i]);
    }
}

void mgl_matmul_rows_n(const float* x, int64_t T, int n, const MglWeight* const* W, float* const* y) {
    bool quant = false;
    for (int i = 0; i < n; i++) quant |= W[i]->qbits != 0;
    if (quant || n > 4) { /* the quantized path quantizes activations per call */
        for (int i = 0; i < n; i++) mgl_matmul_rows(x, T, W[i], NULL, y[i]);
        return;
    }
    MultiCtx c = {.n = n};
    c.start[0] = 0;
    for (int i = 0; i < n; i++) {
        c.m[i] = (MatmulCtx){x, T, W[i]->cols, W[i]->rows, W[i], y[i]};
        c.start[i + 1] = c.start[i] + W[i]->rows;
    }
    mgl_parallel_for(c.start[n], 64, multi_part, &c);
}

void mgl_matmul(const float* x, int64_t T, const MglWeight* W, const float* bias, float* y) {
    mgl_matmul_act(x, T, W, bias, MGL_ACT_NONE, y);
}

void mgl_matmul_act(const float* x, int64_t T, const MglWeight* W, const float* bias, MglAct act, float* y) {
    const int64_t N = W->rows, K = W->cols;
    MatmulCtx c = {x, T, K, N, W, y};
    if (T == 1) {
        mgl_matmul_rows(x, 1, W, bias, y);
        mgl_act_range(act, y, N);
        return;
    }
    /* precision bf16 (quantized weights: above the decode batches' few rows) */
    if (mgl_cpu_bf16() && (!W->qbits || T > 8) && mgl_gemm_bf16_available()) {
        mgl_gemm_bf16(x, T, W, bias, act, y); /* precision bf16 (ops-bf16.c), bias and act included */
        return;
    }
    if (W->qbits) {
        mgl_qmatmul(x, T, W, y); /* ops-quant.c */
    } else if (W->dtype == MGL_DT_F32) {
        gemm(1, (int)T, (int)N, (int)K, 1.0f, x, (int)K, (const float*)W->data, (int)K, 0.0f, y, (int)N);
    } else if (T >= ROW_TILE && (size_t)(N * K) <= WIDEN_MAX) {
        /* many rows (vision, long prefills): the matrix widened once, then one
         * GEMM split over the pool along its larger side (tiles of 256 weight
         * rows gave ConvNeXt's 36,864-row stage three parts for two cores,
         * and each tile's GEMM packed all the activations again) */
        float* wf = malloc(sizeof(float) * (size_t)(N * K));
        if (wf) {
            WidenCtx wc = {W, wf};
            mgl_parallel_for(N, 64, widen_part, &wc);
            gemm(1, (int)T, (int)N, (int)K, 1.0f, x, (int)K, wf, (int)K, 0.0f, y, (int)N);
            free(wf);
        } else {
            mgl_parallel_for((N + ROW_TILE - 1) / ROW_TILE, 1, tiles16_part, &c);
        }
    } else {
        mgl_parallel_for((N + ROW_TILE - 1) / ROW_TILE, 1, tiles16_part, &c);
    }
    if (act != MGL_ACT_NONE) {
        BiasActCtx bc = {y, bias, N, act};
        mgl_parallel_for(T, (4096 + N - 1) / N, bias_act_part, &bc);
    } else if (bias) {
        add_bias(y, T, N, bias);
    }
}
