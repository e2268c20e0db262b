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
 * consecutive tasks share their panel. Bias is added as the tile is stored.
 *
 * With AMX (level amx-bf16), products of 16 rows or more run on the tiles
 * instead: TDPBF16PS multiplies a 16 x 32 block of activations by a 32 x 16
 * block of the panel (the same pairs of k, so the same panel) in one
 * instruction. The activations are rounded into tile order (each 16 rows x
 * 16 pairs one contiguous 1 KB tile, so a tile load reads one stream and
 * rows of a long K do not collide in the L1 sets), K is padded to whole
 * tiles with zero pairs, and each 32 x 32 block of outputs is four
 * accumulator tiles over the whole of K (ops-bf16-amx.h), stored to a
 * scratch block and then written out with the bias and the activation. A
 * software model of the tile instructions runs the same block in the tests,
 * and once at start-up beside the hardware: if the two disagree, the
 * vdpbf16ps kernel is used instead (mgl_gemm_bf16_kernel_name says so). */
#include "mgl-ops.h"

#include "mgl-cpu-isa.h"
#include "mgl-ops-bf16.h"
#include "mgl-pool.h"
#include "mgl-quant.h"
#include <math.h>
#include <pthread.h>
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
    const uint32_t* xb; /* x in bf16: rows of KP pairs, or (AMX) in tile order */
    const MglWeight* W;
    const float* bias;
    MglAct act; /* applied to each tile as it is stored */
    float* y;
    int64_t T, N, K, KP;
    int64_t KPP;     /* pairs in a panel: KP, or (AMX) KP padded to whole tiles */
    int64_t mb, nmb; /* rows per task, row blocks */
    bool emulated;   /* AMX: the software model of the tiles */
} TileCtx;

static void tiles_part(void* ctx, int64_t b, int64_t e);

/* The tasks of a product over xb (panels of KPP pairs): rows per task all of
 * them up to 1024 (each panel packed once), else 512 (a multiple of the AMX
 * block's 32 rows). */
static TileCtx tile_ctx(const uint32_t* xb, int64_t KPP, const MglWeight* W, const float* bias, MglAct act, float* y,
                        int64_t T, bool emulated) {
    const int64_t mb = T <= 1024 ? T : 512;
    return (TileCtx){xb, W, bias, act, y, T, W->rows, W->cols, (W->cols + 1) / 2, KPP, mb, (T + mb - 1) / mb, emulated};
}
static int64_t tile_tasks(const TileCtx* c) { return (c->N + NR - 1) / NR * c->nmb; }

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
 * w[n0+j][2kp+1]) in bf16 for kp < KPP; columns past nc, pairs past KP and
 * the odd K's last half pair are 0. Rows not in bf16 are rounded (nearest
 * even) into `scratch` (NR rows of 2 * KP) first; so are the rows of an odd
 * K, padded with a 0. */
BF16 static void pack_panel(const MglWeight* W, int64_t K, int64_t KP, int64_t KPP, int64_t n0, int nc, uint32_t* p,
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
    for (; kp < KPP; kp++)
        for (int j = 0; j < NR; j++) {
            uint32_t v = 0;
            if (j < nc && kp < KP) memcpy(&v, rows[j] + kp, sizeof v);
            p[kp * NR + j] = v;
        }
}

/* A pool part's panel, the buffers that packing one needs, and which panel
 * it holds. */
typedef struct {
    uint32_t* p;
    uint16_t* scratch;
    float* deq;
    int64_t packed;
} PanelBuf;

static PanelBuf panel_buf(const TileCtx* c) {
    PanelBuf pb = {aligned_alloc(64, sizeof(uint32_t) * (size_t)(c->KPP * NR)), NULL, NULL, -1};
    if (c->W->qbits || c->W->dtype != MGL_DT_BF16 || c->K % 2)
        pb.scratch = malloc(sizeof(uint16_t) * (size_t)(NR * 2 * c->KP));
    if (c->W->qbits) pb.deq = malloc(sizeof(float) * (size_t)c->K);
    return pb;
}

static void panel_buf_free(PanelBuf* pb) {
    free(pb->deq);
    free(pb->scratch);
    free(pb->p);
}

/* A task's panel (packed unless the buffer holds it), its first column n0,
 * its columns nc, and its rows [m0, m1). */
typedef struct {
    int64_t n0, m0, m1;
    int nc;
} Task;

BF16 static Task task_panel(const TileCtx* c, PanelBuf* pb, int64_t task) {
    const int64_t panel = task / c->nmb;
    Task t = {.n0 = panel * NR, .m0 = (task % c->nmb) * c->mb};
    t.nc = c->N - t.n0 < NR ? (int)(c->N - t.n0) : NR;
    t.m1 = t.m0 + c->mb < c->T ? t.m0 + c->mb : c->T;
    if (panel != pb->packed) {
        pack_panel(c->W, c->K, c->KP, c->KPP, t.n0, t.nc, pb->p, pb->scratch, pb->deq);
        pb->packed = panel;
    }
    return t;
}

static void tiles_part(void* ctx, int64_t b, int64_t e) {
    const TileCtx* c = ctx;
    PanelBuf pb = panel_buf(c);
    for (int64_t task = b; task < e; task++) {
        const Task t = task_panel(c, &pb, task);
        for (int64_t m = t.m0; m < t.m1; m += MR) {
            const int mr = t.m1 - m < MR ? (int)(t.m1 - m) : MR;
            float* y = c->y + m * c->N + t.n0;
            tiles[mr](c->xb + m * c->KP, c->KP, pb.p, y, c->N, t.nc, c->bias ? c->bias + t.n0 : NULL);
            if (c->act != MGL_ACT_NONE)
                for (int i = 0; i < mr; i++) mgl_act_range(c->act, y + i * c->N, t.nc);
        }
    }
    panel_buf_free(&pb);
}

/* ---- AMX ---- */

/* The activations in tile order: rows [b, e) of the 16-row groups, row t's
 * pairs 16 kb .. 16 kb + 15 at xt[((t / 16) * nkb + kb) * 256 + (t % 16) * 16].
 * Rows past T, and pairs past K (the odd K's last half pair included), are 0. */
typedef struct {
    const float* x;
    int64_t T, K, nkb;
    uint32_t* xt;
} TileRoundCtx;

BF16 static void tile_round_part(void* ctx, int64_t b, int64_t e) {
    const TileRoundCtx* c = ctx;
    for (int64_t t = b; t < e; t++) {
        uint32_t* o = c->xt + (t / 16) * c->nkb * 256 + (t % 16) * 16;
        if (t >= c->T) {
            for (int64_t kb = 0; kb < c->nkb; kb++) _mm512_storeu_si512((void*)(o + kb * 256), _mm512_setzero_si512());
            continue;
        }
        const float* x = c->x + t * c->K;
        for (int64_t kb = 0; kb < c->nkb; kb++) {
            const int64_t left = c->K - kb * 32;
            const __mmask16 m0 = left >= 16 ? 0xffff : left <= 0 ? 0 : (__mmask16)((1u << left) - 1u);
            const __mmask16 m1 = left >= 32 ? 0xffff : left <= 16 ? 0 : (__mmask16)((1u << (left - 16)) - 1u);
            const float* xk = x + (left > 0 ? kb * 32 : 0);
            const __m512 lo = _mm512_maskz_loadu_ps(m0, xk), hi = _mm512_maskz_loadu_ps(m1, xk + 16);
            _mm512_storeu_si512((void*)(o + kb * 256), (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
        }
    }
}

/* The software model of the tiles: eight tiles of 16 rows x 64 bytes, and
 * TDPBF16PS as the instruction set reference gives it (per output, the two
 * products of each pair added in order, in f32). */
static _Thread_local uint8_t emu_tile[8][1024];

static void emu_zero(int t) { memset(emu_tile[t], 0, sizeof emu_tile[t]); }
static void emu_load(int t, const void* base, int64_t stride) {
    for (int r = 0; r < 16; r++) memcpy(emu_tile[t] + 64 * r, (const uint8_t*)base + r * stride, 64);
}
static void emu_store(int t, void* base, int64_t stride) {
    for (int r = 0; r < 16; r++) memcpy((uint8_t*)base + r * stride, emu_tile[t] + 64 * r, 64);
}
static void emu_dp(int tc, int ta, int tb) {
    float c[16][16];
    uint16_t a[16][32], b[16][32];
    memcpy(c, emu_tile[tc], sizeof c);
    memcpy(a, emu_tile[ta], sizeof a);
    memcpy(b, emu_tile[tb], sizeof b);
    for (int m = 0; m < 16; m++)
        for (int k = 0; k < 16; k++)
            for (int n = 0; n < 16; n++) {
                c[m][n] += mgl_bf16_to_f32(a[m][2 * k]) * mgl_bf16_to_f32(b[k][2 * n]);
                c[m][n] += mgl_bf16_to_f32(a[m][2 * k + 1]) * mgl_bf16_to_f32(b[k][2 * n + 1]);
            }
    memcpy(emu_tile[tc], c, sizeof c);
}

#define AMX_ATTR
#define AMX_BLOCK amx_block_emu
#define TZERO(t) emu_zero(t)
#define TLOAD(t, base, stride) emu_load(t, base, stride)
#define TDP(c, a, b) emu_dp(c, a, b)
#define TSTORE(t, base, stride) emu_store(t, base, stride)
#include "ops-bf16-amx.h"

#define AMX __attribute__((target("amx-tile,amx-bf16")))
/* The tile loads read memory the compiler does not see them read: the
 * barrier before the first one keeps the stores of the panel before it. */
#define AMX_ATTR AMX
#define AMX_BLOCK amx_block_hw
#define TZERO(t)                                                                                                       \
    do {                                                                                                               \
        __asm__ volatile("" ::: "memory");                                                                             \
        _tile_zero(t);                                                                                                 \
    } while (0)
#define TLOAD(t, base, stride) _tile_loadd(t, base, stride)
#define TDP(c, a, b) _tile_dpbf16ps(c, a, b)
#define TSTORE(t, base, stride) _tile_stored(t, base, stride)
#include "ops-bf16-amx.h"

/* Palette 1, tiles 0-7 of 16 rows x 64 bytes. ldtilecfg reads all 64 bytes
 * (a static object, so none of it is left unwritten). */
typedef struct __attribute__((aligned(64))) {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} AmxConfig;
static const AmxConfig amx_config = {
    .palette = 1, .colsb = {64, 64, 64, 64, 64, 64, 64, 64}, .rows = {16, 16, 16, 16, 16, 16, 16, 16}};

AMX static void amx_begin(void) { _tile_loadconfig(&amx_config); }
AMX static void amx_end(void) { _tile_release(); }

static void amx_part(void* ctx, int64_t b, int64_t e) {
    const TileCtx* c = ctx;
    const int64_t nkb = c->KPP / 16;
    PanelBuf pb = panel_buf(c);
    float cb[32 * 32] __attribute__((aligned(64)));
    if (!c->emulated) amx_begin();
    for (int64_t task = b; task < e; task++) {
        const Task t = task_panel(c, &pb, task);
        const float* bias = c->bias ? c->bias + t.n0 : NULL;
        for (int64_t m = t.m0; m < t.m1; m += 32) {
            const int rows = t.m1 - m < 32 ? (int)(t.m1 - m) : 32;
            const uint32_t* a0 = c->xb + (m / 16) * nkb * 256;
            const uint32_t* a1 = rows > 16 ? a0 + nkb * 256 : NULL;
            if (c->emulated)
                amx_block_emu(a0, a1, pb.p, nkb, cb);
            else
                amx_block_hw(a0, a1, pb.p, nkb, cb);
            for (int i = 0; i < rows; i++) {
                float* o = c->y + (m + i) * c->N + t.n0;
                if (bias)
                    for (int j = 0; j < t.nc; j++) o[j] = cb[i * 32 + j] + bias[j];
                else
                    memcpy(o, cb + i * 32, sizeof(float) * (size_t)t.nc);
                if (c->act != MGL_ACT_NONE) mgl_act_range(c->act, o, t.nc);
            }
        }
    }
    if (!c->emulated) amx_end();
    panel_buf_free(&pb);
}

/* y = x W^T (+ bias, act) on the tiles (or their model): over the pool, or
 * (pooled false: the start-up check) on the calling thread alone. */
static void gemm_amx(const float* x, int64_t T, const MglWeight* W, const float* bias, MglAct act, float* y,
                     bool emulated, bool pooled) {
    const int64_t K = W->cols, nkb = ((K + 1) / 2 + 15) / 16, groups = (T + 15) / 16;
    uint32_t* xt = aligned_alloc(64, sizeof(uint32_t) * (size_t)(groups * nkb * 256));
    TileRoundCtx rc = {x, T, K, nkb, xt};
    TileCtx c = tile_ctx(xt, nkb * 16, W, bias, act, y, T, emulated);
    const int64_t tasks = tile_tasks(&c);
    if (pooled) {
        mgl_parallel_for(groups * 16, 64, tile_round_part, &rc);
        mgl_parallel_for(tasks, 1, amx_part, &c);
    } else {
        tile_round_part(&rc, 0, groups * 16);
        amx_part(&c, 0, tasks);
    }
    free(xt);
}

/* The start-up check: the tiles against their model on a product with
 * partial row groups, panels and tiles of k. */
static bool amx_agrees(void) {
    enum { T = 40, K = 101, N = 40 };
    float* x = malloc(sizeof(float) * T * K);
    float* w = malloc(sizeof(float) * N * K);
    float* y0 = malloc(sizeof(float) * T * N);
    float* y1 = malloc(sizeof(float) * T * N);
    uint32_t s = 12345;
    for (int i = 0; i < T * K; i++) x[i] = (float)((s = s * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
    for (int i = 0; i < N * K; i++) w[i] = (float)((s = s * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
    const MglWeight W = {.data = w, .dtype = MGL_DT_F32, .rows = N, .cols = K};
    gemm_amx(x, T, &W, NULL, MGL_ACT_NONE, y0, false, false);
    gemm_amx(x, T, &W, NULL, MGL_ACT_NONE, y1, true, false);
    bool ok = true;
    for (int i = 0; i < T * N; i++)
        if (!(fabsf(y0[i] - y1[i]) <= 1e-4f * (1.0f + fabsf(y1[i])))) ok = false;
    free(x);
    free(w);
    free(y0);
    free(y1);
    return ok;
}

static MglBf16Gemm g_kernel = MGL_BF16_GEMM_NONE;
static bool g_amx_disagreed;
static int g_forced = -1;
static pthread_once_t g_kernel_once = PTHREAD_ONCE_INIT;

static void choose_kernel(void) {
    const MglCpuLevel l = mgl_cpu_level();
    g_kernel = l >= MGL_CPU_AVX512_BF16 ? MGL_BF16_GEMM_AVX512 : MGL_BF16_GEMM_NONE;
    if (l >= MGL_CPU_AMX_BF16) {
        if (amx_agrees())
            g_kernel = MGL_BF16_GEMM_AMX;
        else
            g_amx_disagreed = true;
    }
}

MglBf16Gemm mgl_gemm_bf16_kernel(void) {
    pthread_once(&g_kernel_once, choose_kernel);
    return g_forced >= 0 ? (MglBf16Gemm)g_forced : g_kernel;
}

bool mgl_gemm_bf16_force(int k) {
    pthread_once(&g_kernel_once, choose_kernel);
    const bool ok =
        k < 0 || k == MGL_BF16_GEMM_NONE ||
        ((k == MGL_BF16_GEMM_AVX512 || k == MGL_BF16_GEMM_AMX_EMULATED) && mgl_cpu_level() >= MGL_CPU_AVX512_BF16) ||
        (k == MGL_BF16_GEMM_AMX && g_kernel == MGL_BF16_GEMM_AMX);
    if (ok) g_forced = k < 0 ? -1 : k;
    return ok;
}

bool mgl_gemm_bf16_amx_disagreed(void) {
    pthread_once(&g_kernel_once, choose_kernel);
    return g_amx_disagreed;
}

bool mgl_gemm_bf16_available(void) { return mgl_gemm_bf16_kernel() != MGL_BF16_GEMM_NONE; }
#else
static void round_part(void* ctx, int64_t b, int64_t e) { (void)ctx, (void)b, (void)e; }
static void tiles_part(void* ctx, int64_t b, int64_t e) { (void)ctx, (void)b, (void)e; }
static void gemm_amx(const float* x, int64_t T, const MglWeight* W, const float* bias, MglAct act, float* y,
                     bool emulated, bool pooled) {
    (void)x, (void)T, (void)W, (void)bias, (void)act, (void)y, (void)emulated, (void)pooled;
}
MglBf16Gemm mgl_gemm_bf16_kernel(void) { return MGL_BF16_GEMM_NONE; }
bool mgl_gemm_bf16_force(int k) { return k <= MGL_BF16_GEMM_NONE; }
bool mgl_gemm_bf16_amx_disagreed(void) { return false; }
bool mgl_gemm_bf16_available(void) { return false; }
#endif

const char* mgl_gemm_bf16_kernel_name(MglBf16Gemm k) {
    switch (k) {
    case MGL_BF16_GEMM_AVX512: return "avx512-bf16";
    case MGL_BF16_GEMM_AMX: return "amx";
    case MGL_BF16_GEMM_AMX_EMULATED: return "amx-model";
    default: return "none";
    }
}

void mgl_gemm_bf16(const float* x, int64_t T, const MglWeight* W, const float* bias, MglAct act, float* y) {
    const MglBf16Gemm kernel = mgl_gemm_bf16_kernel();
    if (T >= 16 && (kernel == MGL_BF16_GEMM_AMX || kernel == MGL_BF16_GEMM_AMX_EMULATED)) {
        gemm_amx(x, T, W, bias, act, y, kernel == MGL_BF16_GEMM_AMX_EMULATED, true);
        return;
    }
    const int64_t K = W->cols, KP = (K + 1) / 2;
    uint32_t* xb = malloc(sizeof(uint32_t) * (size_t)(T * KP));
    RoundCtx rc = {x, K, KP, xb};
    mgl_parallel_for(T, 64, round_part, &rc);
    TileCtx c = tile_ctx(xb, KP, W, bias, act, y, T, false);
    mgl_parallel_for(tile_tasks(&c), 1, tiles_part, &c);
    free(xb);
}
