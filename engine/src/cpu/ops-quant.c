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
#define QPREFETCH_ROWS 4

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

#define AVX2Q __attribute__((target("avx2,fma,f16c")))

/* log2 of the blocks per scale group: a power of two (groups of 32 and up),
 * or 62 for one group per row (every block's index shifts to 0) */
static inline int q4_group_shift(int64_t K, int64_t gs) {
    return gs >= K ? 62 : __builtin_ctzll((unsigned long long)(gs / MGL_QUANT_BLOCK));
}

/* Block b's 32 nibbles (stored + 8) as bytes: weights 0-15, then 16-31. */
AVX2Q static inline __m256i q4_nibbles(const uint8_t* row, int64_t b) {
    const __m128i m = _mm_set1_epi8(15);
    const __m128i v = _mm_loadu_si128((const __m128i*)(row + b * (MGL_QUANT_BLOCK / 2)));
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m), _mm_and_si128(v, m));
}

/* acc + the block's products u . x (8 int32 lanes, exact, less the block's
 * activation sum per lane) times weight scale s x activation scale */
AVX2Q static inline __m256 q4_block(__m256i u, const QX* x, int64_t b, float s, __m256 acc) {
    const __m256i xv = _mm256_loadu_si256((const __m256i*)(x->q + b * MGL_QUANT_BLOCK));
    __m256i d = _mm256_madd_epi16(_mm256_maddubs_epi16(u, xv), _mm256_set1_epi16(1));
    d = _mm256_sub_epi32(d, _mm256_set1_epi32(x->sum[b]));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_set1_ps(s * x->s[b]), acc);
}

/* A row's end: its sums a0 (even blocks) and a1 (odd) after the blocks
 * before `b`; an odd last whole block `b` (even: into a0), the partial last
 * block in f32, and the lanes summed. */
AVX2Q static inline float q4_row_end(const uint8_t* row, const uint16_t* sc, int64_t K, int64_t gs, int64_t b,
                                     const QX* x, __m256 a0, __m256 a1) {
    const int64_t nb = K / MGL_QUANT_BLOCK;
    if (b < nb) a0 = q4_block(q4_nibbles(row, b), x, b, _cvtsh_ss(sc[b >> q4_group_shift(K, gs)]), a0);
    float tail = 0;
    if (nb * MGL_QUANT_BLOCK < K) {
        const float st = _cvtsh_ss(sc[nb * MGL_QUANT_BLOCK / gs]);
        float acc = 0;
        for (int64_t j = nb * MGL_QUANT_BLOCK; j < K; j++) acc += (float)mgl_quant_value(row, 4, K, j) * x->x[j];
        tail = st * acc;
    }
    return hsum8(_mm256_add_ps(a0, a1)) + tail;
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
    const int64_t nb = K / MGL_QUANT_BLOCK;
    const int sh = q4_group_shift(K, gs);
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        const __m256i u0 = q4_nibbles(row, b), u1 = q4_nibbles(row, b + 1);
        const float s0 = _cvtsh_ss(sc[b >> sh]), s1 = _cvtsh_ss(sc[(b + 1) >> sh]);
        for (int t = 0; t < nt; t++) {
            a0[t] = q4_block(u0, &xr[t], b, s0, a0[t]);
            a1[t] = q4_block(u1, &xr[t], b + 1, s1, a1[t]);
        }
    }
    for (int t = 0; t < nt; t++) out[t] = q4_row_end(row, sc, K, gs, b, &xr[t], a0[t], a1[t]);
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

/* The AVX-512 kernels: the AVX2 kernels' arithmetic in half the
 * instructions, and the same bits. q8: 16 weights per step in one 16-lane
 * accumulator whose halves are the AVX2 kernel's two 8-lane ones (a0 | a1).
 * q4: two blocks per step in one 512-bit integer dot product (vpdpbusd with
 * AVX512_VNNI, else maddubs + madd), whose halves are the even and odd
 * blocks' lanes (the AVX2 kernel's a0 | a1); the sums are exact in int32 (at
 * most 15 x 127 x 4 per lane before the offset), so both give the AVX2 sums. */
#define AVX512Q __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c")))
#define AVX512QV __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma,f16c")))

/* the halves of a 16-lane accumulator added: the AVX2 kernel's a0 + a1 */
AVX512Q static inline __m256 halves(__m512 a) {
    return _mm256_add_ps(_mm512_castps512_ps256(a), _mm512_extractf32x8_ps(a, 1));
}

AVX512Q static inline __attribute__((always_inline)) void
q8dot512_body(const uint8_t* row, const uint16_t* sc, int64_t K, int64_t gs, const QX* xr, int nt, float* out) {
    __m256 tot[4];
    float tail_tot[4] = {0, 0, 0, 0};
    for (int t = 0; t < 4; t++) tot[t] = _mm256_setzero_ps();
    for (int64_t g = 0, k0 = 0; k0 < K; g++, k0 += gs) {
        const int64_t k1 = k0 + gs < K ? k0 + gs : K;
        __m512 a[4];
        for (int t = 0; t < 4; t++) a[t] = _mm512_setzero_ps();
        int64_t k = k0;
        for (; k + 16 <= k1; k += 16) {
            const __m512 w = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)(row + k))));
            for (int t = 0; t < nt; t++) a[t] = _mm512_fmadd_ps(w, _mm512_loadu_ps(xr[t].x + k), a[t]);
        }
        const float s = _cvtsh_ss(sc[g]);
        const __m256 vs = _mm256_set1_ps(s);
        for (int t = 0; t < nt; t++) tot[t] = _mm256_fmadd_ps(halves(a[t]), vs, tot[t]);
        if (k < k1)
            for (int t = 0; t < nt; t++) {
                float acc = 0;
                for (int64_t j = k; j < k1; j++) acc += (float)(int8_t)row[j] * xr[t].x[j];
                tail_tot[t] += s * acc;
            }
    }
    for (int t = 0; t < nt; t++) out[t] = hsum8(tot[t]) + tail_tot[t];
}

/* Blocks b and b + 1's nibbles as 64 bytes, each block as q4_nibbles lays it out. */
AVX512Q static inline __m512i q4_nibbles2(const uint8_t* row, int64_t b) {
    const __m256i m = _mm256_set1_epi8(15);
    const __m256i v = _mm256_loadu_si256((const __m256i*)(row + b * (MGL_QUANT_BLOCK / 2)));
    const __m256i lo = _mm256_and_si256(v, m), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m);
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_permute2x128_si256(lo, hi, 0x20)),
                              _mm256_permute2x128_si256(lo, hi, 0x31), 1);
}

/* u (64 nibbles of two blocks, stored + 8) . x (64 int8) in 16 int32 lanes:
 * lanes 0-7 the first block's, 8-15 the second's */
AVX512QV static inline __m512i q4dp_vnni(__m512i u, __m512i x) {
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, x);
}
AVX512Q static inline __m512i q4dp_bw(__m512i u, __m512i x) {
    return _mm512_madd_epi16(_mm512_maddubs_epi16(u, x), _mm512_set1_epi16(1));
}

#define MGL_Q4DOT512_BODY(NAME, TARGET, DP)                                                                            \
    TARGET static inline __attribute__((always_inline)) void NAME(const uint8_t* row, const uint16_t* sc, int64_t K,   \
                                                                  int64_t gs, const QX* xr, int nt, float* out) {      \
        __m512 a[4];                                                                                                   \
        for (int t = 0; t < 4; t++) a[t] = _mm512_setzero_ps();                                                        \
        const int64_t nb = K / MGL_QUANT_BLOCK;                                                                        \
        const int sh = q4_group_shift(K, gs);                                                                          \
        int64_t b = 0;                                                                                                 \
        for (; b + 2 <= nb; b += 2) {                                                                                  \
            const float s0 = _cvtsh_ss(sc[b >> sh]), s1 = _cvtsh_ss(sc[(b + 1) >> sh]);                                \
            const __m512i u = q4_nibbles2(row, b);                                                                     \
            for (int t = 0; t < nt; t++) {                                                                             \
                const __m512i xv = _mm512_loadu_si512((const void*)(xr[t].q + b * MGL_QUANT_BLOCK));                   \
                __m512i d = DP(u, xv);                                                                                 \
                const __m512i off =                                                                                    \
                    _mm512_inserti64x4(_mm512_set1_epi32(xr[t].sum[b]), _mm256_set1_epi32(xr[t].sum[b + 1]), 1);       \
                d = _mm512_sub_epi32(d, off);                                                                          \
                const __m512 f =                                                                                       \
                    _mm512_insertf32x8(_mm512_set1_ps(s0 * xr[t].s[b]), _mm256_set1_ps(s1 * xr[t].s[b + 1]), 1);       \
                a[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), f, a[t]);                                                \
            }                                                                                                          \
        }                                                                                                              \
        for (int t = 0; t < nt; t++)                                                                                   \
            out[t] =                                                                                                   \
                q4_row_end(row, sc, K, gs, b, &xr[t], _mm512_castps512_ps256(a[t]), _mm512_extractf32x8_ps(a[t], 1));  \
    }
MGL_Q4DOT512_BODY(q4dot512_vnni_body, AVX512QV, q4dp_vnni)
MGL_Q4DOT512_BODY(q4dot512_bw_body, AVX512Q, q4dp_bw)

/* q4, one sequence against four weight rows (decode of a single sequence):
 * the activations' vectors are loaded once for the four rows, and each row's
 * lanes get exactly the operations of the kernel above (the same bits). */
#define MGL_Q4ROWS4(NAME, TARGET, DP)                                                                                  \
    TARGET static void NAME(const uint8_t* const* rows, const uint16_t* const* scs, int64_t K, int64_t gs,             \
                            const QX* x, float* out) {                                                                 \
        __m512 a[4];                                                                                                   \
        for (int r = 0; r < 4; r++) a[r] = _mm512_setzero_ps();                                                        \
        const int64_t nb = K / MGL_QUANT_BLOCK;                                                                        \
        const int sh = q4_group_shift(K, gs);                                                                          \
        int64_t b = 0;                                                                                                 \
        for (; b + 2 <= nb; b += 2) {                                                                                  \
            const __m512i xv = _mm512_loadu_si512((const void*)(x->q + b * MGL_QUANT_BLOCK));                          \
            const __m512i off = _mm512_inserti64x4(_mm512_set1_epi32(x->sum[b]), _mm256_set1_epi32(x->sum[b + 1]), 1); \
            const float xs0 = x->s[b], xs1 = x->s[b + 1];                                                              \
            for (int r = 0; r < 4; r++) {                                                                              \
                const float s0 = _cvtsh_ss(scs[r][b >> sh]), s1 = _cvtsh_ss(scs[r][(b + 1) >> sh]);                    \
                const __m512i u = q4_nibbles2(rows[r], b);                                                             \
                const __m512i d = _mm512_sub_epi32(DP(u, xv), off);                                                    \
                const __m512 f = _mm512_insertf32x8(_mm512_set1_ps(s0 * xs0), _mm256_set1_ps(s1 * xs1), 1);            \
                a[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), f, a[r]);                                                \
            }                                                                                                          \
        }                                                                                                              \
        for (int r = 0; r < 4; r++)                                                                                    \
            out[r] = q4_row_end(rows[r], scs[r], K, gs, b, x, _mm512_castps512_ps256(a[r]),                            \
                                _mm512_extractf32x8_ps(a[r], 1));                                                      \
    }
MGL_Q4ROWS4(q4rows4_vnni, AVX512QV, q4dp_vnni)
MGL_Q4ROWS4(q4rows4_bw, AVX512Q, q4dp_bw)

/* q4, R rows (1 or 2) against S sequences (up to 4) of a decode batch: each
 * (row, sequence) pair gets exactly the lanes of the one-row kernel above
 * (the same integer dot product, offset, product of the two scales and FMA,
 * so the same bits), with each block pair's nibbles unpacked once for the S
 * sequences and each sequence's activations, offsets and scales loaded once
 * for the R rows; the scale product is one vector multiply of the rows' and
 * the sequences' scale pairs (the same float products). */
#define MGL_Q4BLK(NAME, TARGET, DP)                                                                                    \
    TARGET static inline __attribute__((always_inline)) void NAME##_body(                                              \
        const uint8_t* row0, int64_t rb, const uint16_t* sc0, int64_t G, int64_t K, int64_t gs, const QX* x, int R,    \
        int S, float* out, int64_t ldo) {                                                                              \
        __m512 a[2][4];                                                                                                \
        for (int r = 0; r < R; r++)                                                                                    \
            for (int t = 0; t < S; t++) a[r][t] = _mm512_setzero_ps();                                                 \
        const int64_t nb = K / MGL_QUANT_BLOCK;                                                                        \
        const int sh = q4_group_shift(K, gs);                                                                          \
        int64_t b = 0;                                                                                                 \
        for (; b + 2 <= nb; b += 2) {                                                                                  \
            __m512i u[2];                                                                                              \
            __m512 ws[2];                                                                                              \
            for (int r = 0; r < R; r++) {                                                                              \
                const uint16_t* sc = sc0 + r * G;                                                                      \
                u[r] = q4_nibbles2(row0 + r * rb, b);                                                                  \
                ws[r] = _mm512_insertf32x8(_mm512_set1_ps(_cvtsh_ss(sc[b >> sh])),                                     \
                                           _mm256_set1_ps(_cvtsh_ss(sc[(b + 1) >> sh])), 1);                           \
            }                                                                                                          \
            for (int t = 0; t < S; t++) {                                                                              \
                const __m512i xv = _mm512_loadu_si512((const void*)(x[t].q + b * MGL_QUANT_BLOCK));                    \
                const __m512i off =                                                                                    \
                    _mm512_inserti64x4(_mm512_set1_epi32(x[t].sum[b]), _mm256_set1_epi32(x[t].sum[b + 1]), 1);         \
                const __m512 xs = _mm512_insertf32x8(_mm512_set1_ps(x[t].s[b]), _mm256_set1_ps(x[t].s[b + 1]), 1);     \
                for (int r = 0; r < R; r++) {                                                                          \
                    const __m512i d = _mm512_sub_epi32(DP(u[r], xv), off);                                             \
                    a[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_mul_ps(ws[r], xs), a[r][t]);               \
                }                                                                                                      \
            }                                                                                                          \
        }                                                                                                              \
        for (int r = 0; r < R; r++)                                                                                    \
            for (int t = 0; t < S; t++)                                                                                \
                out[t * ldo + r] = q4_row_end(row0 + r * rb, sc0 + r * G, K, gs, b, &x[t],                             \
                                              _mm512_castps512_ps256(a[r][t]), _mm512_extractf32x8_ps(a[r][t], 1));    \
    }
MGL_Q4BLK(q4blk_vnni, AVX512QV, q4dp_vnni)
MGL_Q4BLK(q4blk_bw, AVX512Q, q4dp_bw)
typedef void (*MglQ4BlkFn)(const uint8_t*, int64_t, const uint16_t*, int64_t, int64_t, int64_t, const QX*, float*,
                           int64_t);
#define MGL_Q4BLK_RS(R, S)                                                                                             \
    AVX512QV static void q4blkv_##R##_##S(const uint8_t* row0, int64_t rb, const uint16_t* sc0, int64_t G, int64_t K,  \
                                          int64_t gs, const QX* x, float* out, int64_t ldo) {                          \
        q4blk_vnni_body(row0, rb, sc0, G, K, gs, x, R, S, out, ldo);                                                   \
    }                                                                                                                  \
    AVX512Q static void q4blkb_##R##_##S(const uint8_t* row0, int64_t rb, const uint16_t* sc0, int64_t G, int64_t K,   \
                                         int64_t gs, const QX* x, float* out, int64_t ldo) {                           \
        q4blk_bw_body(row0, rb, sc0, G, K, gs, x, R, S, out, ldo);                                                     \
    }
MGL_Q4BLK_RS(1, 1)
MGL_Q4BLK_RS(1, 2)
MGL_Q4BLK_RS(1, 3)
MGL_Q4BLK_RS(1, 4)
MGL_Q4BLK_RS(2, 1)
MGL_Q4BLK_RS(2, 2)
MGL_Q4BLK_RS(2, 3)
MGL_Q4BLK_RS(2, 4)
static const MglQ4BlkFn q4blk_v[3][5] = {{NULL},
                                         {NULL, q4blkv_1_1, q4blkv_1_2, q4blkv_1_3, q4blkv_1_4},
                                         {NULL, q4blkv_2_1, q4blkv_2_2, q4blkv_2_3, q4blkv_2_4}};
static const MglQ4BlkFn q4blk_b[3][5] = {{NULL},
                                         {NULL, q4blkb_1_1, q4blkb_1_2, q4blkb_1_3, q4blkb_1_4},
                                         {NULL, q4blkb_2_1, q4blkb_2_2, q4blkb_2_3, q4blkb_2_4}};

#define MGL_QDOT512(NT)                                                                                                \
    AVX512QV static void qdot512v_##NT(const uint8_t* row, const uint16_t* sc, int bits, int64_t K, int64_t gs,        \
                                       const QX* x, float* out) {                                                      \
        if (bits == 8)                                                                                                 \
            q8dot512_body(row, sc, K, gs, x, NT, out);                                                                 \
        else                                                                                                           \
            q4dot512_vnni_body(row, sc, K, gs, x, NT, out);                                                            \
    }                                                                                                                  \
    AVX512Q static void qdot512_##NT(const uint8_t* row, const uint16_t* sc, int bits, int64_t K, int64_t gs,          \
                                     const QX* x, float* out) {                                                        \
        if (bits == 8)                                                                                                 \
            q8dot512_body(row, sc, K, gs, x, NT, out);                                                                 \
        else                                                                                                           \
            q4dot512_bw_body(row, sc, K, gs, x, NT, out);                                                              \
    }
MGL_QDOT512(1)
MGL_QDOT512(2)
MGL_QDOT512(3)
MGL_QDOT512(4)
static const MglQdotFn qdot_avx512v[5] = {NULL, qdot512v_1, qdot512v_2, qdot512v_3, qdot512v_4};
static const MglQdotFn qdot_avx512[5] = {NULL, qdot512_1, qdot512_2, qdot512_3, qdot512_4};
#endif

static int g_isa_forced = -1;
static int detect_isa(void) {
#ifdef MGL_HAVE_QAVX2
    static int v = -1;
    if (v < 0) {
        const MglCpuLevel l = mgl_cpu_level();
        v = l >= MGL_CPU_AVX512 ? (__builtin_cpu_supports("avx512vnni") ? 3 : 2) : l >= MGL_CPU_AVX2 ? 1 : 0;
    }
    return v;
#else
    return 0;
#endif
}
int mgl_qmatmul_isa(void) {
    const int d = detect_isa();
    return g_isa_forced >= 0 && g_isa_forced < d ? g_isa_forced : d;
}
void mgl_qmatmul_set_isa(int isa) { g_isa_forced = isa; }

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
    const int isa = mgl_qmatmul_isa();
    int64_t n = b;
#ifdef MGL_HAVE_QAVX2
    if (c->T > 1 && W->qbits == 4 && c->xq && isa >= 2) { /* a decode batch at q4: pairs of rows */
        for (; n < e; n += 2) {
            const int R = e - n >= 2 ? 2 : 1;
            const uint8_t* row0 = (const uint8_t*)W->data + n * rb;
            if (n + 2 + QPREFETCH_ROWS <= e)
                for (int64_t off = 0; off < 2 * rb; off += 64)
                    _mm_prefetch((const char*)(row0 + QPREFETCH_ROWS * rb + off), _MM_HINT_T0);
            for (int64_t t0 = 0; t0 < c->T; t0 += 4) {
                const int S = c->T - t0 < 4 ? (int)(c->T - t0) : 4;
                QX xr[4];
                for (int t = 0; t < S; t++) {
                    const int64_t r = t0 + t, nb = K / MGL_QUANT_BLOCK;
                    xr[t] = (QX){c->x + r * K, c->xq + r * K, c->xs + r * nb, c->xsum + r * nb};
                }
                (isa == 3 ? q4blk_v : q4blk_b)[R][S](row0, rb, W->scales + n * G, G, K, gs, xr, c->y + t0 * N + n, N);
            }
        }
        return;
    }
    if (c->T == 1 && W->qbits == 4 && c->xq && isa >= 2) /* one sequence at q4: four weight rows at a time */
        for (; n + 4 <= e; n += 4) {
            const uint8_t* rows[4];
            const uint16_t* scs[4];
            for (int r = 0; r < 4; r++) {
                rows[r] = (const uint8_t*)W->data + (n + r) * rb;
                scs[r] = W->scales + (n + r) * G;
            }
            if (n + 8 <= e)
                for (int64_t off = 0; off < 4 * rb; off += 64)
                    _mm_prefetch((const char*)(rows[0] + 4 * rb + off), _MM_HINT_T0);
            const QX xr = {c->x, c->xq, c->xs, c->xsum};
            (isa == 3 ? q4rows4_vnni : q4rows4_bw)(rows, scs, K, gs, &xr, c->y + n);
        }
#endif
    for (; n < e; n++) {
        const uint8_t* row = (const uint8_t*)W->data + n * rb;
        const uint16_t* sc = W->scales + n * G;
#ifdef MGL_HAVE_QAVX2
        /* rows are short (K/2 bytes at q4): fetch a few rows ahead so the
         * memory keeps streaming while this one is computed */
        if (n + QPREFETCH_ROWS < e)
            for (int64_t off = 0; off < rb; off += 64)
                _mm_prefetch((const char*)(row + QPREFETCH_ROWS * rb + off), _MM_HINT_T0);
#endif
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
            if (isa == 3)
                qdot_avx512v[nt](row, sc, W->qbits, K, gs, xr, o);
            else if (isa == 2)
                qdot_avx512[nt](row, sc, W->qbits, K, gs, xr, o);
            else if (isa == 1)
                qdot_avx2[nt](row, sc, W->qbits, K, gs, xr, o);
            else
#endif
                dot_rows_scalar(row, sc, W->qbits, K, gs, xr, nt, o);
            for (int t = 0; t < nt; t++) c->y[(t0 + t) * N + n] = o[t];
        }
    }
    (void)isa;
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
