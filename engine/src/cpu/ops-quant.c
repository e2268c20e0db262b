/* ops-quant.c: matrix products with quantized weights (q8, q4; the layout is
 * in mgl-quant.h). Activations stay f32: each weight is widened to f32 in
 * registers and multiplied by its activation, the products of a group are
 * summed and the sum is multiplied by the group's scale (W8A32 / W4A32; no
 * rounding of activations, so the only error is the weights' own).
 *
 * Decode (mgl_qmatmul_rows): each weight row is read once for up to four
 * sequences at a time, every sequence with its own accumulators, so its
 * result is bit for bit the same alone or in a batch. Kernels are chosen at
 * run time: AVX2/FMA/F16C when the CPU has them (MGL_CPU_ISA=scalar forces
 * the portable loop), split over the pool like the f32 path. Prefill
 * (mgl_qmatmul with many rows): tiles of rows dequantized to f32, one GEMM
 * each, as the 16-bit weights. */
#include "mgl-ops-quant.h"

#include "mgl-blas.h"
#include "mgl-pool.h"
#include "mgl-quant.h"

#include <stdlib.h>
#include <string.h>

#define QROW_TILE 256

/* The portable kernel: per group, the f32 sum of q * x in order, then
 * total += scale * sum (the same grouping as the SIMD kernels). */
static void dot_rows_scalar(const uint8_t* row, const uint16_t* sc, int bits, int64_t K, int64_t gs,
                            const float* const* x, int nt, float* out) {
    for (int t = 0; t < nt; t++) {
        float total = 0;
        for (int64_t g = 0, k0 = 0; k0 < K; g++, k0 += gs) {
            const int64_t k1 = k0 + gs < K ? k0 + gs : K;
            float acc = 0;
            for (int64_t k = k0; k < k1; k++) acc += (float)mgl_quant_value(row, bits, K, k) * x[t][k];
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

/* Up to four sequences against one quantized row. Per group each sequence
 * has two 8-lane accumulators (reset at the group), folded into its vector
 * total by one FMA with the scale; the few weights of a group past its last
 * whole 16 (q8) or 32 (q4) go through a scalar sum added to the group sum
 * before the scale. The order of every sum is fixed by K and the group,
 * never by the number of sequences. */
__attribute__((target("avx2,fma,f16c"))) static inline __attribute__((always_inline)) void
qdot_body(const uint8_t* row, const uint16_t* sc, int bits, int64_t K, int64_t gs, const float* const* x, int nt,
          float* out) {
    __m256 tot[4];
    for (int t = 0; t < 4; t++) tot[t] = _mm256_setzero_ps();
    float tail_tot[4] = {0, 0, 0, 0};
    const __m128i eight = _mm_set1_epi8(8), lowmask = _mm_set1_epi8(15);
    for (int64_t g = 0, k0 = 0; k0 < K; g++, k0 += gs) {
        const int64_t k1 = k0 + gs < K ? k0 + gs : K;
        __m256 a0[4], a1[4];
        for (int t = 0; t < 4; t++) a0[t] = a1[t] = _mm256_setzero_ps();
        int64_t k = k0;
        if (bits == 8) {
            for (; k + 16 <= k1; k += 16) {
                const __m128i b = _mm_loadu_si128((const __m128i*)(row + k));
                const __m256 w0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b));
                const __m256 w1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(b, 8)));
                for (int t = 0; t < nt; t++) {
                    a0[t] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x[t] + k), a0[t]);
                    a1[t] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x[t] + k + 8), a1[t]);
                }
            }
        } else {
            /* whole blocks of 32: bytes 0-15 hold weights 0-15 (low nibbles) and 16-31 (high) */
            for (; k + MGL_QUANT_BLOCK <= k1; k += MGL_QUANT_BLOCK) {
                const __m128i b = _mm_loadu_si128((const __m128i*)(row + k / 2));
                const __m128i lo = _mm_sub_epi8(_mm_and_si128(b, lowmask), eight);
                const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(b, 4), lowmask), eight);
                const __m256 w0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo));
                const __m256 w1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)));
                const __m256 w2 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi));
                const __m256 w3 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)));
                for (int t = 0; t < nt; t++) {
                    a0[t] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x[t] + k), a0[t]);
                    a1[t] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x[t] + k + 8), a1[t]);
                    a0[t] = _mm256_fmadd_ps(w2, _mm256_loadu_ps(x[t] + k + 16), a0[t]);
                    a1[t] = _mm256_fmadd_ps(w3, _mm256_loadu_ps(x[t] + k + 24), a1[t]);
                }
            }
        }
        const float s = _cvtsh_ss(sc[g]); /* F16C, inline: no call (and its spills) per group */
        const __m256 vs = _mm256_set1_ps(s);
        for (int t = 0; t < nt; t++) tot[t] = _mm256_fmadd_ps(_mm256_add_ps(a0[t], a1[t]), vs, tot[t]);
        if (k < k1)
            for (int t = 0; t < nt; t++) {
                float acc = 0;
                for (int64_t j = k; j < k1; j++) acc += (float)mgl_quant_value(row, bits, K, j) * x[t][j];
                tail_tot[t] += s * acc;
            }
    }
    for (int t = 0; t < nt; t++) out[t] = hsum8(tot[t]) + tail_tot[t];
}

#define MGL_QDOT(NT)                                                                                                   \
    __attribute__((target("avx2,fma,f16c"))) static void qdot_##NT(                                                    \
        const uint8_t* row, const uint16_t* sc, int bits, int64_t K, int64_t gs, const float* const* x, float* out) {  \
        if (bits == 8)                                                                                                 \
            qdot_body(row, sc, 8, K, gs, x, NT, out);                                                                  \
        else                                                                                                           \
            qdot_body(row, sc, 4, K, gs, x, NT, out);                                                                  \
    }
MGL_QDOT(1)
MGL_QDOT(2)
MGL_QDOT(3)
MGL_QDOT(4)
typedef void (*MglQdotFn)(const uint8_t*, const uint16_t*, int, int64_t, int64_t, const float* const*, float*);
static const MglQdotFn qdot_avx2[5] = {NULL, qdot_1, qdot_2, qdot_3, qdot_4};
#endif

int mgl_qmatmul_isa(void) {
    static int v = -1;
    if (v < 0) {
        const char* isa = getenv("MGL_CPU_ISA"); /* "scalar" forces the portable loop (tests) */
        v = 0;
#ifdef MGL_HAVE_QAVX2
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && mgl_cpu_has_f16c() &&
            !(isa && !strcmp(isa, "scalar")))
            v = 1;
#else
        (void)isa;
#endif
    }
    return v;
}

typedef struct {
    const float* x;
    int64_t T;
    const MglWeight* W;
    float* y;
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
            const float* x[4];
            float o[4];
            for (int t = 0; t < nt; t++) x[t] = c->x + (t0 + t) * K;
#ifdef MGL_HAVE_QAVX2
            if (avx2)
                qdot_avx2[nt](row, sc, W->qbits, K, gs, x, o);
            else
#endif
                dot_rows_scalar(row, sc, W->qbits, K, gs, x, nt, o);
            for (int t = 0; t < nt; t++) c->y[(t0 + t) * N + n] = o[t];
        }
    }
    (void)avx2;
}

void mgl_qmatmul_rows(const float* x, int64_t T, const MglWeight* W, float* y) {
    QCtx c = {x, T, W, y};
    mgl_parallel_for(W->rows, 32, qrows_part, &c);
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
    QCtx c = {x, T, W, y};
    mgl_parallel_for((W->rows + QROW_TILE - 1) / QROW_TILE, 1, qtiles_part, &c);
}
