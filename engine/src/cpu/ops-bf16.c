/* ops-bf16.c: y = x W^T + b in bf16 on CPUs with AVX512_BF16, for models
 * loaded with precision "bf16" (the default f32 precision never comes here).
 *
 * The activations are rounded to bf16 (round to nearest even, as PyTorch's
 * autocast does), and so are f32, f16 or quantized weights as they are
 * packed; pairs of them are multiplied by vdpbf16ps and the sums are kept in
 * f32. Twice the multiply rate of f32 FMA. The price is the rounding (a
 * relative 2^-9 per element); docs/cpu.md gives its effect on the answers.
 *
 * Blocking: the weights are packed per task into a panel of 32 output
 * columns (for each pair of k, the 32 columns' two weights side by side), so
 * a 12 x 32 tile of outputs takes two panel loads and 12 broadcasts of an
 * activation pair per step of two along k, 24 accumulators in registers.
 * Tasks are (panel, block of rows), spread over the pool; a thread's
 * consecutive tasks share their panel. Bias is added as the tile is stored. */
#include "mgl-ops.h"

#include "mgl-cpu-isa.h"
#include "mgl-ops-bf16.h"
#include "mgl-pool.h"
#include "mgl-quant.h"
#include <stdlib.h>
#include <string.h>

#define MR 12 /* rows of a tile */
#define NR 32 /* columns of a tile and of a panel */

/* x (T, K) rounded to bf16, rows of KP pairs (the odd K's last pair padded with 0) */
typedef struct {
    const float* x;
    int64_t K, KP;
    uint32_t* xb;
} RoundCtx;

static void round_part(void* ctx, int64_t b, int64_t e);

static _Thread_local bool tl_bf16;
void mgl_cpu_set_bf16(bool on) { tl_bf16 = on; }
bool mgl_cpu_bf16(void) { return tl_bf16; }

typedef struct {
    const uint32_t* xb;
    const MglWeight* W;
    const float* bias;
    MglAct act; /* applied to each tile as it is stored */
    float* y;
    int64_t T, N, K, KP, mb, nmb;
} TileCtx;

static void tiles_part(void* ctx, int64_t b, int64_t e);

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

BF16 static void round_part(void* ctx, int64_t b, int64_t e) {
    const RoundCtx* c = ctx;
    for (int64_t t = b; t < e; t++) {
        const float* x = c->x + t * c->K;
        uint32_t* o = c->xb + t * c->KP;
        int64_t k = 0;
        for (; k + 32 <= c->K; k += 32) {
            const __m512bh h = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + k + 16), _mm512_loadu_ps(x + k));
            _mm512_storeu_si512((void*)(o + k / 2), (__m512i)h);
        }
        for (; k < c->K; k += 2) {
            const uint32_t lo = mgl_f32_to_bf16(x[k]);
            const uint32_t hi = k + 1 < c->K ? mgl_f32_to_bf16(x[k + 1]) : 0;
            o[k / 2] = lo | hi << 16;
        }
    }
}

/* One tile: mr (<= MR) rows of xb against a panel, nc (<= NR) columns stored. */
BF16 static inline __attribute__((always_inline)) void
tile_body(const uint32_t* a, int64_t KP, const uint32_t* p, int mr, float* y, int64_t ldy, int nc, const float* bias) {
    __m512 acc[MR][2];
    for (int i = 0; i < mr; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int64_t kp = 0; kp < KP; kp++) {
        const __m512bh b0 = (__m512bh)_mm512_loadu_si512((const void*)(p + kp * NR));
        const __m512bh b1 = (__m512bh)_mm512_loadu_si512((const void*)(p + kp * NR + 16));
        for (int i = 0; i < mr; i++) {
            const __m512bh av = (__m512bh)_mm512_set1_epi32((int)a[i * KP + kp]);
            acc[i][0] = _mm512_dpbf16_ps(acc[i][0], av, b0);
            acc[i][1] = _mm512_dpbf16_ps(acc[i][1], av, b1);
        }
    }
    const __mmask16 m0 = nc >= 16 ? 0xffff : (__mmask16)((1u << nc) - 1u);
    const __mmask16 m1 = nc >= 32 ? 0xffff : nc <= 16 ? 0 : (__mmask16)((1u << (nc - 16)) - 1u);
    __m512 b0 = _mm512_setzero_ps(), b1 = _mm512_setzero_ps();
    if (bias) {
        b0 = _mm512_maskz_loadu_ps(m0, bias);
        b1 = _mm512_maskz_loadu_ps(m1, bias + 16);
    }
    for (int i = 0; i < mr; i++) {
        _mm512_mask_storeu_ps(y + i * ldy, m0, _mm512_add_ps(acc[i][0], b0));
        _mm512_mask_storeu_ps(y + i * ldy + 16, m1, _mm512_add_ps(acc[i][1], b1));
    }
}

#define MGL_TILE(R)                                                                                                    \
    BF16 static void tile_##R(const uint32_t* a, int64_t KP, const uint32_t* p, float* y, int64_t ldy, int nc,         \
                              const float* bias) {                                                                     \
        tile_body(a, KP, p, R, y, ldy, nc, bias);                                                                      \
    }
MGL_TILE(1)
MGL_TILE(2)
MGL_TILE(3)
MGL_TILE(4)
MGL_TILE(5)
MGL_TILE(6)
MGL_TILE(7)
MGL_TILE(8)
MGL_TILE(9)
MGL_TILE(10)
MGL_TILE(11)
MGL_TILE(12)
typedef void (*TileFn)(const uint32_t*, int64_t, const uint32_t*, float*, int64_t, int, const float*);
static const TileFn tiles[MR + 1] = {NULL,   tile_1, tile_2, tile_3,  tile_4,  tile_5, tile_6,
                                     tile_7, tile_8, tile_9, tile_10, tile_11, tile_12};

/* Sixteen rows of pairs, from pair kp0 on, transposed into the panel:
 * dst[k * NR + i] = rows[i][kp0 + k] for k < 16. Pairs interleaved within
 * 128-bit lanes (32-bit, then 64-bit unpacks), then the lanes themselves
 * transposed 4 x 4. */
BF16 static inline void transpose16(const uint32_t* const* rows, int64_t kp0, uint32_t* dst) {
    __m512i r[16], t[16];
    for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_si512((const void*)(rows[i] + kp0));
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    __m512i u[4][4]; /* u[g][e], lane L: rows 4g..4g+3 at pair 4L + e */
    for (int g = 0; g < 4; g++) {
        u[g][0] = _mm512_unpacklo_epi64(t[4 * g], t[4 * g + 2]);
        u[g][1] = _mm512_unpackhi_epi64(t[4 * g], t[4 * g + 2]);
        u[g][2] = _mm512_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
        u[g][3] = _mm512_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
    }
    for (int e = 0; e < 4; e++) {
        const __m512i x0 = _mm512_shuffle_i32x4(u[0][e], u[1][e], 0x44),
                      x1 = _mm512_shuffle_i32x4(u[0][e], u[1][e], 0xEE);
        const __m512i x2 = _mm512_shuffle_i32x4(u[2][e], u[3][e], 0x44),
                      x3 = _mm512_shuffle_i32x4(u[2][e], u[3][e], 0xEE);
        _mm512_storeu_si512((void*)(dst + (0 + e) * NR), _mm512_shuffle_i32x4(x0, x2, 0x88));
        _mm512_storeu_si512((void*)(dst + (4 + e) * NR), _mm512_shuffle_i32x4(x0, x2, 0xDD));
        _mm512_storeu_si512((void*)(dst + (8 + e) * NR), _mm512_shuffle_i32x4(x1, x3, 0x88));
        _mm512_storeu_si512((void*)(dst + (12 + e) * NR), _mm512_shuffle_i32x4(x1, x3, 0xDD));
    }
}

/* Panel of columns [n0, n0 + nc): p[kp * NR + j] = the pair (w[n0+j][2kp],
 * w[n0+j][2kp+1]) in bf16; columns past nc, and the odd K's last half pair,
 * are 0. Rows not in bf16 are rounded (nearest even) into `scratch` (NR rows
 * of 2 * KP) first; so are the rows of an odd K, padded with a 0. */
BF16 static void pack_panel(const MglWeight* W, int64_t K, int64_t KP, int64_t n0, int nc, uint32_t* p,
                            uint16_t* scratch, float* deq) {
    const void* w = W->data;
    const MglDType dt = W->dtype;
    const uint32_t* rows[NR];
    for (int j = 0; j < nc; j++) {
        if (!W->qbits && dt == MGL_DT_BF16 && K % 2 == 0) {
            rows[j] = (const uint32_t*)((const uint16_t*)w + (n0 + j) * K);
        } else {
            uint16_t* r = scratch + (size_t)j * 2 * KP;
            if (W->qbits) { /* quantized: the weights' f32 values, then rounded */
                mgl_quant_dequant_row(W, n0 + j, deq);
                mgl_convert_floats(deq, MGL_DT_F32, r, MGL_DT_BF16, (size_t)K);
            } else {
                mgl_convert_floats((const uint8_t*)w + mgl_dtype_size(dt) * (size_t)((n0 + j) * K), dt, r, MGL_DT_BF16,
                                   (size_t)K);
            }
            if (K % 2) r[K] = 0;
            rows[j] = (const uint32_t*)r;
        }
    }
    int64_t kp = 0;
    if (nc == NR) /* whole panels: 16 x 16 blocks */
        for (; kp + 16 <= KP; kp += 16) {
            transpose16(rows, kp, p + kp * NR);
            transpose16(rows + 16, kp, p + kp * NR + 16);
        }
    for (; kp < KP; kp++)
        for (int j = 0; j < NR; j++) {
            uint32_t v = 0;
            if (j < nc) memcpy(&v, rows[j] + kp, sizeof v);
            p[kp * NR + j] = v;
        }
}

static void tiles_part(void* ctx, int64_t b, int64_t e) {
    const TileCtx* c = ctx;
    uint32_t* p = malloc(sizeof(uint32_t) * (size_t)(c->KP * NR));
    uint16_t* scratch = c->W->qbits || c->W->dtype != MGL_DT_BF16 || c->K % 2
                            ? malloc(sizeof(uint16_t) * (size_t)(NR * 2 * c->KP))
                            : NULL;
    float* deq = c->W->qbits ? malloc(sizeof(float) * (size_t)c->K) : NULL;
    int64_t packed = -1;
    for (int64_t task = b; task < e; task++) {
        const int64_t panel = task / c->nmb, m0 = (task % c->nmb) * c->mb;
        const int64_t n0 = panel * NR;
        const int nc = c->N - n0 < NR ? (int)(c->N - n0) : NR;
        if (panel != packed) {
            pack_panel(c->W, c->K, c->KP, n0, nc, p, scratch, deq);
            packed = panel;
        }
        const int64_t m1 = m0 + c->mb < c->T ? m0 + c->mb : c->T;
        for (int64_t m = m0; m < m1; m += MR) {
            const int mr = m1 - m < MR ? (int)(m1 - m) : MR;
            tiles[mr](c->xb + m * c->KP, c->KP, p, c->y + m * c->N + n0, c->N, nc, c->bias ? c->bias + n0 : NULL);
            if (c->act != MGL_ACT_NONE)
                for (int i = 0; i < mr; i++) mgl_act_range(c->act, c->y + (m + i) * c->N + n0, nc);
        }
    }
    free(deq);
    free(scratch);
    free(p);
}

bool mgl_gemm_bf16_available(void) { return mgl_cpu_level() >= MGL_CPU_AVX512_BF16; }
#else
static void round_part(void* ctx, int64_t b, int64_t e) { (void)ctx, (void)b, (void)e; }
static void tiles_part(void* ctx, int64_t b, int64_t e) { (void)ctx, (void)b, (void)e; }
bool mgl_gemm_bf16_available(void) { return false; }
#endif

void mgl_gemm_bf16(const float* x, int64_t T, const MglWeight* W, const float* bias, MglAct act, float* y) {
    const int64_t N = W->rows, K = W->cols, KP = (K + 1) / 2;
    uint32_t* xb = malloc(sizeof(uint32_t) * (size_t)(T * KP));
    RoundCtx rc = {x, K, KP, xb};
    mgl_parallel_for(T, 64, round_part, &rc);
    /* rows per task: all of them up to 1024 (each panel packed once), else 512 */
    const int64_t mb = T <= 1024 ? T : 512;
    TileCtx c = {xb, W, bias, act, y, T, N, K, KP, mb, (T + mb - 1) / mb};
    const int64_t tasks = (N + NR - 1) / NR * c.nmb;
    mgl_parallel_for(tasks, 1, tiles_part, &c);
    free(xb);
}
