/* ops-quant.c: matrix products with quantized weights (q8, q4; the layout is
 * in mgl-quant.h).
 *
 * q8 (W8A32): activations stay f32; each weight is widened to f32 in
 * registers, the products of a group are summed in f32 and the sum is
 * multiplied by the group's scale, so the only error is the weights' own.
 * q4 (W4A8): the activations of each row are quantized once per call to int8
 * per block of 32 (mgl_quant_act_blocks), and a block's 32 products are one
 * integer dot product (u8 nibbles x s8 activations, AVX2 maddubs), scaled by
 * the block's activation scale, with the weights' offset of 8 taken off
 * through the block's activation sum; the partial block at a row's end stays
 * f32. This halves q4's instructions per weight against widening to f32,
 * for an added relative error of about 0.3% per product (docs/quantization.md).
 *
 * Decode (mgl_qmatmul_rows): each weight row is read once for up to four
 * sequences at a time, every sequence with its own accumulators, so its
 * result is bit for bit the same alone or in a batch. Kernels are chosen at
 * run time: AVX2/FMA/F16C when the CPU has them (MGL_CPU_ISA=scalar forces
 * the portable loop, which computes the same sums), split over the pool like
 * the f32 path. Prefill (mgl_qmatmul with many rows): tiles of rows
 * dequantized to f32, one GEMM each, as the 16-bit weights (f32 activations
 * for both widths). */
#include "mgl-cpu-isa.h"
#include "mgl-ops-quant.h"

#include "mgl-blas.h"
#include "mgl-pool.h"
#include "mgl-quant.h"

#include <stdlib.h>
#include <string.h>

#define QROW_TILE 256

/* One sequence's activations: f32, and for q4 the int8 blocks (mgl-quant.h). */
typedef struct {
    const float* x;
    const int8_t* q;
    const float* s;
    const int32_t* sum;
} QX;

/* The portable kernel, the sums of the SIMD kernels in plain order: q8 per
 * group, then total += scale * sum; q4 per whole block, the integer dot
 * product times weight scale x activation scale, the partial last block f32. */
static void dot_rows_scalar(const uint8_t* row, const uint16_t* sc, int bits, int64_t K, int64_t gs, const QX* xr,
                            int nt, float* out) {
    const int64_t nb = bits == 4 ? K / MGL_QUANT_BLOCK : 0;
    for (int t = 0; t < nt; t++) {
        float total = 0;
        for (int64_t b = 0; b < nb; b++) {
            int32_t d = 0;
            for (int64_t k = b * MGL_QUANT_BLOCK; k < (b + 1) * MGL_QUANT_BLOCK; k++)
                d += mgl_quant_value(row, 4, K, k) * (int32_t)xr[t].q[k];
            total += (float)d * (mgl_f16_to_f32(sc[b * MGL_QUANT_BLOCK / gs]) * xr[t].s[b]);
        }
        for (int64_t g = nb * MGL_QUANT_BLOCK / gs, k0 = g * gs; k0 < K; g++, k0 += gs) {
            const int64_t k1 = k0 + gs < K ? k0 + gs : K;
            float acc = 0;
            for (int64_t k = k0 > nb * MGL_QUANT_BLOCK ? k0 : nb * MGL_QUANT_BLOCK; k < k1; k++)
                acc += (float)mgl_quant_value(row, bits, K, k) * xr[t].x[k];
            total += mgl_f16_to_f32(sc[g]) * acc;
        }
        out[t] = total;
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define MGL_HAVE_QAVX2 1

__attribute__((target("avx2,fma"))) static inline float hsum8(__m256 a) {
    __m128 lo = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    lo = _mm_hadd_ps(lo, lo);
    lo = _mm_hadd_ps(lo, lo);
    return _mm_cvtss_f32(lo);
}

/* q8: up to four sequences against one row. Per group each sequence has two
 * 8-lane accumulators (reset at the group), folded into its vector total by
 * one FMA with the scale; the few weights of a group past its last whole 16
 * go through a scalar sum added before the scale. The order of every sum is
 * fixed by K and the group, never by the number of sequences. */
__attribute__((target("avx2,fma,f16c"))) static inline __attribute__((always_inline)) void
q8dot_body(const uint8_t* row, const uint16_t* sc, int64_t K, int64_t gs, const QX* xr, int nt, float* out) {
    __m256 tot[4];
    float tail_tot[4] = {0, 0, 0, 0};
    for (int t = 0; t < 4; t++) tot[t] = _mm256_setzero_ps();
    for (int64_t g = 0, k0 = 0; k0 < K; g++, k0 += gs) {
        const int64_t k1 = k0 + gs < K ? k0 + gs : K;
        __m256 a0[4], a1[4];
        for (int t = 0; t < 4; t++) a0[t] = a1[t] = _mm256_setzero_ps();
        int64_t k = k0;
        for (; k + 16 <= k1; k += 16) {
            const __m128i b = _mm_loadu_si128((const __m128i*)(row + k));
            const __m256 w0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b));
            const __m256 w1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(b, 8)));
            for (int t = 0; t < nt; t++) {
                a0[t] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xr[t].x + k), a0[t]);
                a1[t] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xr[t].x + k + 8), a1[t]);
            }
        }
        const float s = _cvtsh_ss(sc[g]); /* F16C, inline: no call (and its spills) per group */
        const __m256 vs = _mm256_set1_ps(s);
        for (int t = 0; t < nt; t++) tot[t] = _mm256_fmadd_ps(_mm256_add_ps(a0[t], a1[t]), vs, tot[t]);
        if (k < k1)
            for (int t = 0; t < nt; t++) {
                float acc = 0;
                for (int64_t j = k; j < k1; j++) acc += (float)(int8_t)row[j] * xr[t].x[j];
                tail_tot[t] += s * acc;
            }
    }
    for (int t = 0; t < nt; t++) out[t] = hsum8(tot[t]) + tail_tot[t];
}

/* q4: up to four sequences against one row, block by block of 32. A block's
 * bytes 0-15 hold weights 0-15 (low nibbles) and 16-31 (high), stored + 8:
 * u8 nibbles x s8 activations summed in int32 lanes (exact), less the
 * block's activation sum once per lane (8 lanes x 8 = the offset), then one
 * FMA with the weight scale times the activation scale into accumulators
 * that alternate by block. The row's partial last block: f32, scalar. */
__attribute__((target("avx2,fma,f16c"))) static inline __attribute__((always_inline)) void
q4dot_body(const uint8_t* row, const uint16_t* sc, int64_t K, int64_t gs, const QX* xr, int nt, float* out) {
    __m256 a0[4], a1[4];
    for (int t = 0; t < 4; t++) a0[t] = a1[t] = _mm256_setzero_ps();
    const __m128i lowmask = _mm_set1_epi8(15);
    const __m256i ones = _mm256_set1_epi16(1);
    const int64_t nb = K / MGL_QUANT_BLOCK, bpg = gs / MGL_QUANT_BLOCK > 0 ? gs / MGL_QUANT_BLOCK : 1;
    float s = 0;
    for (int64_t b = 0; b < nb; b++) {
        if (b % bpg == 0) s = _cvtsh_ss(sc[b / bpg]);
        const __m128i v = _mm_loadu_si128((const __m128i*)(row + b * (MGL_QUANT_BLOCK / 2)));
        const __m256i u = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), lowmask), _mm_and_si128(v, lowmask));
        for (int t = 0; t < nt; t++) {
            const __m256i xv = _mm256_loadu_si256((const __m256i*)(xr[t].q + b * MGL_QUANT_BLOCK));
            __m256i d = _mm256_madd_epi16(_mm256_maddubs_epi16(u, xv), ones);
            d = _mm256_sub_epi32(d, _mm256_set1_epi32(xr[t].sum[b]));
            const __m256 f = _mm256_set1_ps(s * xr[t].s[b]);
            if (b & 1)
                a1[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), f, a1[t]);
            else
                a0[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), f, a0[t]);
        }
    }
    for (int t = 0; t < nt; t++) {
        float tail = 0;
        if (nb * MGL_QUANT_BLOCK < K) {
            const float st = _cvtsh_ss(sc[nb * MGL_QUANT_BLOCK / gs]);
            float acc = 0;
            for (int64_t j = nb * MGL_QUANT_BLOCK; j < K; j++) acc += (float)mgl_quant_value(row, 4, K, j) * xr[t].x[j];
            tail = st * acc;
        }
        out[t] = hsum8(_mm256_add_ps(a0[t], a1[t])) + tail;
    }
}

#define MGL_QDOT(NT)                                                                                                   \
    __attribute__((target("avx2,fma,f16c"))) static void qdot_##NT(const uint8_t* row, const uint16_t* sc, int bits,   \
                                                                   int64_t K, int64_t gs, const QX* x, float* out) {   \
        if (bits == 8)                                                                                                 \
            q8dot_body(row, sc, K, gs, x, NT, out);                                                                    \
        else                                                                                                           \
            q4dot_body(row, sc, K, gs, x, NT, out);                                                                    \
    }
MGL_QDOT(1)
MGL_QDOT(2)
MGL_QDOT(3)
MGL_QDOT(4)
typedef void (*MglQdotFn)(const uint8_t*, const uint16_t*, int, int64_t, int64_t, const QX*, float*);
static const MglQdotFn qdot_avx2[5] = {NULL, qdot_1, qdot_2, qdot_3, qdot_4};
#endif

int mgl_qmatmul_isa(void) {
#ifdef MGL_HAVE_QAVX2
    return mgl_cpu_level() >= MGL_CPU_AVX2;
#else
    return 0;
#endif
}

typedef struct {
    const float* x;
    int64_t T;
    const MglWeight* W;
    float* y;
    const int8_t* xq; /* q4: T rows of K int8 activations, their block scales and sums */
    const float* xs;
    const int32_t* xsum;
} QCtx;

static void qrows_part(void* ctx, int64_t b, int64_t e) {
    const QCtx* c = ctx;
    const MglWeight* W = c->W;
    const int64_t K = W->cols, N = W->rows, gs = W->qgroup, G = (K + gs - 1) / gs;
    const int64_t rb = mgl_quant_row_bytes(W->qbits, K);
    const int avx2 = mgl_qmatmul_isa();
    for (int64_t n = b; n < e; n++) {
        const uint8_t* row = (const uint8_t*)W->data + n * rb;
        const uint16_t* sc = W->scales + n * G;
        for (int64_t t0 = 0; t0 < c->T; t0 += 4) {
            const int nt = c->T - t0 < 4 ? (int)(c->T - t0) : 4;
            QX xr[4];
            float o[4];
            for (int t = 0; t < nt; t++) {
                const int64_t r = t0 + t, nb = K / MGL_QUANT_BLOCK;
                xr[t] = (QX){c->x + r * K, c->xq ? c->xq + r * K : NULL, c->xs ? c->xs + r * nb : NULL,
                             c->xsum ? c->xsum + r * nb : NULL};
            }
#ifdef MGL_HAVE_QAVX2
            if (avx2)
                qdot_avx2[nt](row, sc, W->qbits, K, gs, xr, o);
            else
#endif
                dot_rows_scalar(row, sc, W->qbits, K, gs, xr, nt, o);
            for (int t = 0; t < nt; t++) c->y[(t0 + t) * N + n] = o[t];
        }
    }
    (void)avx2;
}

static void qtiles_part(void* ctx, int64_t b, int64_t e);

void mgl_qmatmul_rows(const float* x, int64_t T, const MglWeight* W, float* y) {
    QCtx c = {x, T, W, y, NULL, NULL, NULL};
    const int64_t K = W->cols, nb = K / MGL_QUANT_BLOCK;
    int8_t* xq = NULL;
    float* xs = NULL;
    int32_t* xsum = NULL;
    if (W->qbits == 4 && nb > 0) { /* the activations' int8 blocks, once for all weight rows */
        xq = malloc((size_t)(T * K));
        xs = malloc(sizeof(float) * (size_t)(T * nb));
        xsum = malloc(sizeof(int32_t) * (size_t)(T * nb));
        if (xq && xs && xsum) {
            for (int64_t t = 0; t < T; t++) mgl_quant_act_blocks(x + t * K, K, xq + t * K, xs + t * nb, xsum + t * nb);
            c.xq = xq;
            c.xs = xs;
            c.xsum = xsum;
        }
    }
    if (W->qbits == 4 && nb > 0 && !c.xq) /* out of memory for them: the dequantizing GEMM (f32 activations) */
        mgl_parallel_for((W->rows + QROW_TILE - 1) / QROW_TILE, 1, qtiles_part, &c);
    else
        mgl_parallel_for(W->rows, 32, qrows_part, &c);
    free(xq);
    free(xs);
    free(xsum);
}

/* prefill: QROW_TILE rows dequantized to f32, one GEMM per tile */
static void qtiles_part(void* ctx, int64_t b, int64_t e) {
    const QCtx* c = ctx;
    const int64_t N = c->W->rows, K = c->W->cols;
    float* tile = malloc(sizeof(float) * (size_t)(QROW_TILE * K));
    if (!tile) return;
    for (int64_t t = b; t < e; t++) {
        const int64_t n0 = t * QROW_TILE, nr = N - n0 < QROW_TILE ? N - n0 : QROW_TILE;
        for (int64_t r = 0; r < nr; r++) mgl_quant_dequant_row(c->W, n0 + r, tile + r * K);
        mgl_sgemm(1, (int)c->T, (int)nr, (int)K, 1.0f, c->x, (int)K, tile, (int)K, 0.0f, c->y + n0, (int)N);
    }
    free(tile);
}

void mgl_qmatmul(const float* x, int64_t T, const MglWeight* W, float* y) {
    if (T <= 8) {
        mgl_qmatmul_rows(x, T, W, y);
        return;
    }
    QCtx c = {x, T, W, y, NULL, NULL, NULL};
    mgl_parallel_for((W->rows + QROW_TILE - 1) / QROW_TILE, 1, qtiles_part, &c);
}
