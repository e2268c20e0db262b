/* Every CUDA op against its CPU twin (engine/src/mgl-ops.h and the CPU
 * stage code) over a sweep of shapes: odd sizes, strided rows, GQA head
 * ratios, T = 1 and long sequences, f32 weights (tight tolerance) and
 * f16/bf16 weights (the GEMM input is rounded to 16 bits: looser).
 * Exit 77 (skipped) when no CUDA device can be used. */
#include "mgl-cuda.h"
#include "mgl-model.h"
#include "cpu/mgl-cpu.h"
#include "mgl-ops.h"
#include "cpu/mgl-blas.h"
#include "../unit/mgl-test.h"
#include "gpu-parity.h"
#include "../unit/prep-images.h"

#include <math.h>

static MglCudaStream* S;
static uint64_t g_rng = 12345;
static double worst = 0;

static float frand(void) {
    uint64_t z = (g_rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (float)((double)(z >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static float* rnd(size_t n, float scale) {
    float* p = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) p[i] = frand() * scale;
    return p;
}

static void* up(const void* h, size_t bytes) {
    MglErr e = {0};
    void* d = mgl_cuda_malloc(bytes ? bytes : 4, &e);
    if (!d) fprintf(stderr, "%s\n", e.msg);
    REQUIRE(d != NULL);
    if (bytes) REQUIRE(mgl_cuda_upload(d, h, bytes, &e) == MGL_OK);
    return d;
}

static float* dev0(size_t n) {
    float* z = calloc(n ? n : 1, sizeof(float));
    float* d = up(z, sizeof(float) * n);
    free(z);
    return d;
}

static float* down(const void* d, size_t n) {
    MglErr e = {0};
    float* h = malloc(sizeof(float) * (n ? n : 1));
    MglStatus st = mgl_cuda_stream_sync(S, &e);
    if (st != MGL_OK) fprintf(stderr, "device error: %s\n", e.msg);
    REQUIRE(st == MGL_OK);
    REQUIRE(mgl_cuda_download(h, d, sizeof(float) * n, &e) == MGL_OK);
    return h;
}

/* max |got - ref| <= tol * max(1e-3, max |ref|) */
static void cmp(const char* what, const float* ref, const float* got, size_t n, double tol) {
    ParityDiff d = parity_diff(ref, got, n);
    if (d.rel > worst) worst = d.rel;
    CHECK_MSG(d.rel <= tol, "%s: max|diff| %.3g (max|ref| %.3g, rel %.3g > %.1g) at %zu: ref %g got %g", what,
              d.max_diff, d.max_ref, d.rel, tol, d.at, n ? ref[d.at] : 0.0f, n ? got[d.at] : 0.0f);
    if (d.rel <= tol) printf("  %-58s ok  rel %.2e\n", what, d.rel);
}

static const char* dt_name(MglDType t) { return t == MGL_DT_F16 ? "f16" : t == MGL_DT_BF16 ? "bf16" : "f32"; }
static double dt_tol(MglDType t) { return t == MGL_DT_F16 ? 4e-3 : t == MGL_DT_BF16 ? 3e-2 : 2e-5; }

/* a host weight in dtype `dt` with values representable there */
static MglWeight host_weight(int64_t rows, int64_t cols, MglDType dt, float scale, void** store) {
    size_t n = (size_t)(rows * cols);
    float* f = rnd(n, scale);
    void* buf = malloc(n * mgl_dtype_size(dt));
    mgl_convert_floats(f, MGL_DT_F32, buf, dt, n);
    free(f);
    *store = buf;
    MglWeight w = {buf, dt, rows, cols};
    return w;
}

static void test_matmul(void) {
    const int64_t shapes[][3] = {{1, 64, 48},   {1, 33, 17},   {1, 4096, 300},  {3, 33, 17},
                                 {7, 100, 257}, {64, 256, 96}, {577, 128, 160}, {2, 8, 1}};
    const MglDType dts[] = {MGL_DT_F32, MGL_DT_F16, MGL_DT_BF16};
    MglErr e = {0};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (int di = 0; di < 3; di++)
            for (int bias = 0; bias < 2; bias++) {
                const int64_t T = shapes[si][0], K = shapes[si][1], N = shapes[si][2], ldy = N + (bias ? 5 : 0);
                void* store;
                MglWeight W = host_weight(N, K, dts[di], 1.0f / sqrtf((float)K), &store);
                float* x = rnd((size_t)(T * K), 1.0f);
                float* b = rnd((size_t)N, 0.5f);
                float* ref = malloc(sizeof(float) * (size_t)(T * N));
                mgl_matmul(x, T, &W, bias ? b : NULL, ref);
                MglCudaW dw;
                REQUIRE(mgl_cuda_weight_upload(&W, dts[di], &dw, &e) == MGL_OK);
                float* dx = up(x, sizeof(float) * (size_t)(T * K));
                float* db = up(b, sizeof(float) * (size_t)N);
                float* dy = dev0((size_t)(T * ldy));
                mgl_cuda_matmul(S, dx, T, &dw, bias ? db : NULL, dy, ldy);
                float* got = down(dy, (size_t)(T * ldy));
                float* packed = malloc(sizeof(float) * (size_t)(T * N));
                for (int64_t t = 0; t < T; t++) memcpy(packed + t * N, got + t * ldy, sizeof(float) * (size_t)N);
                char what[96];
                snprintf(what, sizeof what, "matmul T=%lld K=%lld N=%lld %s%s", (long long)T, (long long)K,
                         (long long)N, dt_name(dts[di]), bias ? " bias ldy+5" : "");
                cmp(what, ref, packed, (size_t)(T * N), dt_tol(dts[di]));
                mgl_cuda_weight_free(&dw);
                mgl_cuda_free(dx);
                mgl_cuda_free(db);
                mgl_cuda_free(dy);
                free(store);
                free(x);
                free(b);
                free(ref);
                free(got);
                free(packed);
            }
}

static void test_norms(void) {
    const int64_t shapes[][2] = {{1, 32}, {5, 1000}, {37, 1536}, {3, 7}, {200, 4096}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int64_t T = shapes[si][0], C = shapes[si][1];
        float* x = rnd((size_t)(T * C), 3.0f);
        for (int64_t i = 0; i < T * C; i++) x[i] += 0.5f;
        float* w = rnd((size_t)C, 1.0f);
        float* b = rnd((size_t)C, 1.0f);
        float* ref = malloc(sizeof(float) * (size_t)(T * C));
        float *dx = up(x, sizeof(float) * (size_t)(T * C)), *dw = up(w, sizeof(float) * (size_t)C),
              *db = up(b, sizeof(float) * (size_t)C), *dy = dev0((size_t)(T * C));
        char what[96];
        for (int hasb = 0; hasb < 2; hasb++) {
            mgl_layernorm(x, T, C, w, hasb ? b : NULL, 1e-5f, ref);
            mgl_cuda_layernorm(S, dx, T, C, dw, hasb ? db : NULL, 1e-5f, dy);
            float* got = down(dy, (size_t)(T * C));
            snprintf(what, sizeof what, "layernorm T=%lld C=%lld%s", (long long)T, (long long)C, hasb ? " bias" : "");
            cmp(what, ref, got, (size_t)(T * C), 2e-5);
            free(got);
        }
        /* in place, as the engine calls it */
        mgl_cuda_layernorm(S, dx, T, C, dw, db, 1e-6f, dx);
        mgl_layernorm(x, T, C, w, b, 1e-6f, ref);
        float* got = down(dx, (size_t)(T * C));
        snprintf(what, sizeof what, "layernorm in place T=%lld C=%lld", (long long)T, (long long)C);
        cmp(what, ref, got, (size_t)(T * C), 2e-5);
        free(got);
        REQUIRE(mgl_cuda_upload(dx, x, sizeof(float) * (size_t)(T * C), NULL) == MGL_OK);
        mgl_rmsnorm(x, T, C, w, 1e-5f, ref);
        mgl_cuda_rmsnorm(S, dx, T, C, dw, 1e-5f, dy);
        got = down(dy, (size_t)(T * C));
        snprintf(what, sizeof what, "rmsnorm T=%lld C=%lld", (long long)T, (long long)C);
        cmp(what, ref, got, (size_t)(T * C), 2e-5);
        free(got);
        mgl_cuda_free(dx);
        mgl_cuda_free(dw);
        mgl_cuda_free(db);
        mgl_cuda_free(dy);
        free(x);
        free(w);
        free(b);
        free(ref);
    }
}

static void test_elementwise(void) {
    const int64_t n = 10007;
    float* x = rnd((size_t)n, 6.0f);
    float* y = rnd((size_t)n, 2.0f);
    float* ref = malloc(sizeof(float) * (size_t)n);
    float *dx, *dy, *got;
    memcpy(ref, x, sizeof(float) * (size_t)n);
    mgl_gelu_erf(ref, n);
    dx = up(x, sizeof(float) * (size_t)n);
    mgl_cuda_gelu_erf(S, dx, n);
    got = down(dx, (size_t)n);
    cmp("gelu (erf) n=10007", ref, got, (size_t)n, 1e-5);
    free(got);
    memcpy(ref, x, sizeof(float) * (size_t)n);
    mgl_quick_gelu(ref, n);
    REQUIRE(mgl_cuda_upload(dx, x, sizeof(float) * (size_t)n, NULL) == MGL_OK);
    mgl_cuda_quick_gelu(S, dx, n);
    got = down(dx, (size_t)n);
    cmp("quick_gelu n=10007", ref, got, (size_t)n, 1e-5);
    free(got);
    memcpy(ref, y, sizeof(float) * (size_t)n);
    mgl_add(ref, x, n);
    REQUIRE(mgl_cuda_upload(dx, x, sizeof(float) * (size_t)n, NULL) == MGL_OK);
    dy = up(y, sizeof(float) * (size_t)n);
    mgl_cuda_add(S, dy, dx, n);
    got = down(dy, (size_t)n);
    cmp("add n=10007", ref, got, (size_t)n, 1e-6);
    free(got);
    mgl_cuda_free(dy);
    /* SiLU gating over (T, 2F) rows: gate | up, as the decoder calls it */
    const int64_t T = 7, F = 333;
    float* g = rnd((size_t)(T * 2 * F), 5.0f);
    float* r2 = malloc(sizeof(float) * (size_t)(T * F));
    for (int64_t t = 0; t < T; t++) mgl_silu_mul(g + t * 2 * F, g + t * 2 * F + F, r2 + t * F, F);
    float* dg = up(g, sizeof(float) * (size_t)(T * 2 * F));
    float* du = dev0((size_t)(T * F));
    mgl_cuda_silu_mul(S, dg, 2 * F, dg + F, 2 * F, du, T, F);
    got = down(du, (size_t)(T * F));
    cmp("silu_mul T=7 F=333 (strided gate|up)", r2, got, (size_t)(T * F), 1e-6);
    free(got);
    /* ConvNeXt's layer-scale residual */
    const int64_t rows = 50, C = 37;
    float* a = rnd((size_t)(rows * C), 1.0f);
    float* bb = rnd((size_t)(rows * C), 1.0f);
    float* gm = rnd((size_t)C, 1.0f);
    float* r3 = malloc(sizeof(float) * (size_t)(rows * C));
    for (int64_t i = 0; i < rows * C; i++) r3[i] = a[i] + bb[i] * gm[i % C];
    float *da = up(a, sizeof(float) * (size_t)(rows * C)), *dbb = up(bb, sizeof(float) * (size_t)(rows * C)),
          *dgm = up(gm, sizeof(float) * (size_t)C);
    mgl_cuda_scale_add(S, da, dbb, dgm, rows, C);
    got = down(da, (size_t)(rows * C));
    cmp("scale_add rows=50 C=37", r3, got, (size_t)(rows * C), 1e-6);
    free(got);
    mgl_cuda_free(dx);
    mgl_cuda_free(dg);
    mgl_cuda_free(du);
    mgl_cuda_free(da);
    mgl_cuda_free(dbb);
    mgl_cuda_free(dgm);
    free(x);
    free(y);
    free(ref);
    free(g);
    free(r2);
    free(a);
    free(bb);
    free(gm);
    free(r3);
}

static void test_conv(void) {
    const int64_t dw[][3] = {{24, 24, 64}, {7, 5, 3}, {48, 48, 130}, {1, 1, 8}};
    for (size_t i = 0; i < sizeof dw / sizeof dw[0]; i++) {
        const int64_t H = dw[i][0], W = dw[i][1], C = dw[i][2], n = H * W * C;
        float* x = rnd((size_t)n, 1.0f);
        float* w = rnd((size_t)(C * 49), 0.2f);
        float* b = rnd((size_t)C, 0.5f);
        float* ref = malloc(sizeof(float) * (size_t)n);
        mgl_dwconv7_nhwc(x, H, W, C, w, b, ref);
        float *dx = up(x, sizeof(float) * (size_t)n), *dwt = up(w, sizeof(float) * (size_t)(C * 49)),
              *db = up(b, sizeof(float) * (size_t)C), *dy = dev0((size_t)n);
        mgl_cuda_dwconv7_nhwc(S, dx, H, W, C, dwt, db, dy);
        float* got = down(dy, (size_t)n);
        char what[96];
        snprintf(what, sizeof what, "dwconv7 %lldx%lld C=%lld", (long long)H, (long long)W, (long long)C);
        cmp(what, ref, got, (size_t)n, 2e-5);
        mgl_cuda_free(dx);
        mgl_cuda_free(dwt);
        mgl_cuda_free(db);
        mgl_cuda_free(dy);
        free(x);
        free(w);
        free(b);
        free(ref);
        free(got);
    }
    /* patch embedding: CHW input (CLIP, ConvNeXt stem) and NHWC (downsampling) */
    struct {
        int64_t H, W, Cin, k, Cout;
        bool chw;
    } pc[] = {{28, 28, 3, 14, 32, true}, {16, 16, 3, 4, 24, true}, {12, 12, 8, 2, 16, false}, {6, 10, 5, 2, 7, false}};
    const MglDType dts[] = {MGL_DT_F32, MGL_DT_F16, MGL_DT_BF16};
    MglErr e = {0};
    for (size_t i = 0; i < sizeof pc / sizeof pc[0]; i++)
        for (int di = 0; di < 3; di++) {
            const int64_t H = pc[i].H, W = pc[i].W, Cin = pc[i].Cin, k = pc[i].k, Co = pc[i].Cout;
            const int64_t n = H * W * Cin, no = (H / k) * (W / k) * Co;
            float* x = rnd((size_t)n, 1.0f);
            void* store;
            MglWeight wt = host_weight(Co, Cin * k * k, dts[di], 0.1f, &store);
            float* b = rnd((size_t)Co, 0.5f);
            float* ref = malloc(sizeof(float) * (size_t)no);
            mgl_patchify_conv(x, pc[i].chw, H, W, Cin, k, &wt, b, ref);
            MglCudaW dwt;
            REQUIRE(mgl_cuda_weight_upload(&wt, dts[di], &dwt, &e) == MGL_OK);
            float *dx = up(x, sizeof(float) * (size_t)n), *db = up(b, sizeof(float) * (size_t)Co),
                  *dy = dev0((size_t)no);
            mgl_cuda_patchify_conv(S, dx, pc[i].chw, H, W, Cin, k, &dwt, db, dy);
            float* got = down(dy, (size_t)no);
            char what[96];
            snprintf(what, sizeof what, "patchify %s %lldx%lldx%lld k=%lld -> %lld %s", pc[i].chw ? "chw" : "nhwc",
                     (long long)H, (long long)W, (long long)Cin, (long long)k, (long long)Co, dt_name(dts[di]));
            cmp(what, ref, got, (size_t)no, dt_tol(dts[di]));
            mgl_cuda_weight_free(&dwt);
            mgl_cuda_free(dx);
            mgl_cuda_free(db);
            mgl_cuda_free(dy);
            free(x);
            free(store);
            free(b);
            free(ref);
            free(got);
        }
}

static void test_resize(void) {
    const int64_t rs[][5] = {{3, 17, 13, 40, 29}, {8, 24, 24, 96, 96}, {2, 50, 60, 33, 21}, {1, 1, 1, 4, 4}};
    for (size_t i = 0; i < sizeof rs / sizeof rs[0]; i++)
        for (int nhwc = 0; nhwc < 2; nhwc++) {
            const int64_t C = rs[i][0], H = rs[i][1], W = rs[i][2], Ho = rs[i][3], Wo = rs[i][4];
            float* x = rnd((size_t)(C * H * W), 1.0f);
            float* ref = malloc(sizeof(float) * (size_t)(C * Ho * Wo));
            if (nhwc)
                mgl_resize_bilinear_nhwc(x, H, W, C, Ho, Wo, ref);
            else
                mgl_resize_bilinear_chw(x, C, H, W, Ho, Wo, ref);
            float* dx = up(x, sizeof(float) * (size_t)(C * H * W));
            float* dy = dev0((size_t)(C * Ho * Wo));
            if (nhwc)
                mgl_cuda_resize_bilinear_nhwc(S, dx, H, W, C, Ho, Wo, dy);
            else
                mgl_cuda_resize_bilinear_chw(S, dx, C, H, W, Ho, Wo, dy);
            float* got = down(dy, (size_t)(C * Ho * Wo));
            char what[96];
            snprintf(what, sizeof what, "resize %s C=%lld %lldx%lld -> %lldx%lld", nhwc ? "nhwc" : "chw", (long long)C,
                     (long long)H, (long long)W, (long long)Ho, (long long)Wo);
            cmp(what, ref, got, (size_t)(C * Ho * Wo), 1e-6);
            mgl_cuda_free(dx);
            mgl_cuda_free(dy);
            free(x);
            free(ref);
            free(got);
        }
}

/* An image's views made on the device against the CPU's mgl_views_make: the
 * 768 view byte for byte (integer resampling, the same table), the 336 view
 * as the bilinear op (test_resize's tolerance). Sizes that pad across and
 * down, need no resampling (a 768 square, or 768 wide), shrink, enlarge, and
 * a strided image; the coefficient cache sees the side change between calls. */
static void test_preprocess(void) {
    MglCudaPrep* prep = NULL;
    float* d768 = dev0(3 * 768 * 768);
    float* d336 = dev0(3 * 336 * 336);
    for (size_t i = 0; i <= PREP_N_SIZES; i++) { /* the first image again at the end: the cache changed back */
        int w, h, stride;
        uint8_t* px = prep_image(i % PREP_N_SIZES, &w, &h, &stride);
        const MglImage img = {px, w, h, stride};
        MglViews* v = NULL;
        MglErr e = {0};
        REQUIRE(mgl_views_make(&img, &v, &e) == MGL_OK);
        MglStatus st = mgl_cuda_preprocess(S, &prep, px, w, h, stride, d768, d336, &e);
        CHECK_MSG(st == MGL_OK, "preprocess %dx%d: %s", w, h, e.msg);
        float* g768 = down(d768, 3 * 768 * 768);
        float* g336 = down(d336, 3 * 336 * 336);
        size_t bad = 0, first = 0;
        for (size_t j = 0; j < 3 * 768 * 768; j++)
            if (memcmp(&g768[j], &v->x768[j], sizeof(float)) != 0 && bad++ == 0) first = j;
        CHECK_MSG(bad == 0,
                  "preprocess %dx%d (stride %d): x768 differs from the CPU's at %zu values, first %zu: %g vs %g", w, h,
                  stride, bad, first, g768[first], v->x768[first]);
        if (bad == 0) printf("  %-58s ok  x768 exact\n", "preprocess");
        char what[96];
        snprintf(what, sizeof what, "preprocess %dx%d stride %d: x336", w, h, stride);
        cmp(what, v->x336, g336, 3 * 336 * 336, 1e-6);
        free(g768);
        free(g336);
        mgl_views_unref(v);
        free(px);
    }
    /* bad input: a clear error, no launch */
    MglErr e = {0};
    uint8_t one[3] = {0};
    CHECK(mgl_cuda_preprocess(S, &prep, one, 0, 1, 3, d768, d336, &e) == MGL_E_INVALID);
    CHECK_MSG(strstr(e.msg, "empty") != NULL, "preprocess of a 0x1 image: '%s'", e.msg);
    mgl_cuda_preprocess_free(prep);
    mgl_cuda_free(d768);
    mgl_cuda_free(d336);
}

static void test_rope(void) {
    struct {
        int64_t T, NH, HS, pos0, pad;
        float theta;
    } rc[] = {
        {5, 4, 64, 0, 0, 1e4f}, {1, 32, 128, 1000, 0, 1e4f}, {33, 8, 128, 7, 24, 5e5f}, {3, 3, 12, 4000, 6, 1e4f}};
    MglErr e = {0};
    for (size_t i = 0; i < sizeof rc / sizeof rc[0]; i++) {
        const int64_t T = rc[i].T, NH = rc[i].NH, HS = rc[i].HS, ld = NH * HS + rc[i].pad;
        float* x = rnd((size_t)(T * ld), 1.0f);
        float* ref = malloc(sizeof(float) * (size_t)(T * NH * HS));
        for (int64_t t = 0; t < T; t++) memcpy(ref + t * NH * HS, x + t * ld, sizeof(float) * (size_t)(NH * HS));
        mgl_rope(ref, T, NH, HS, rc[i].pos0, rc[i].theta);
        float* inv = NULL;
        REQUIRE(mgl_cuda_rope_table(HS, rc[i].theta, &inv, &e) == MGL_OK);
        float* dx = up(x, sizeof(float) * (size_t)(T * ld));
        mgl_cuda_rope(S, dx, ld, T, NH, HS, rc[i].pos0, inv);
        float* got = down(dx, (size_t)(T * ld));
        float* packed = malloc(sizeof(float) * (size_t)(T * NH * HS));
        for (int64_t t = 0; t < T; t++) memcpy(packed + t * NH * HS, got + t * ld, sizeof(float) * (size_t)(NH * HS));
        char what[96];
        snprintf(what, sizeof what, "rope T=%lld NH=%lld HS=%lld pos0=%lld ld+%lld theta=%g", (long long)T,
                 (long long)NH, (long long)HS, (long long)rc[i].pos0, (long long)rc[i].pad, rc[i].theta);
        cmp(what, ref, packed, (size_t)(T * NH * HS), 2e-5);
        mgl_cuda_free(inv);
        mgl_cuda_free(dx);
        free(x);
        free(ref);
        free(got);
        free(packed);
    }
}

/* attention through both paths (T <= 4: the split-K decode kernel; longer: the
 * prefill GEMMs, whose scores and probabilities are in the cache dtype, hence
 * the cache dtype's tolerance) */
static void test_attention(void) {
    struct {
        int64_t T, pos0, NH, NKV, HS;
        bool causal;
    } ac[] = {{1, 0, 4, 4, 64, true},     {1, 37, 8, 2, 128, true}, {3, 100, 4, 1, 64, true},
              {4, 0, 2, 2, 32, false},    {17, 0, 4, 4, 32, true},  {577, 0, 16, 16, 64, false},
              {300, 20, 8, 2, 128, true}, {64, 5, 4, 4, 12, true},  {1, 900, 32, 8, 128, true},
              {20, 0, 2, 1, 256, true},   {5, 3, 6, 3, 48, true},   {1, 4095, 4, 4, 128, true}};
    const MglDType kts[] = {MGL_DT_F32, MGL_DT_F16, MGL_DT_BF16};
    for (size_t i = 0; i < sizeof ac / sizeof ac[0]; i++)
        for (int ki = 0; ki < 3; ki++) {
            const int64_t T = ac[i].T, p0 = ac[i].pos0, NH = ac[i].NH, NKV = ac[i].NKV, HS = ac[i].HS;
            const int64_t L = p0 + T, kvd = NKV * HS, qd = NH * HS, ldq = qd + 3, ldo = qd + 1;
            float* q = rnd((size_t)(T * ldq), 1.5f);
            float* k = rnd((size_t)(L * kvd), 1.5f);
            float* v = rnd((size_t)(L * kvd), 1.0f);
            /* the CPU sees the cache values as the device stores them */
            const MglDType kt = kts[ki];
            size_t es = mgl_dtype_size(kt);
            void* k16 = malloc((size_t)(L * kvd) * es);
            void* v16 = malloc((size_t)(L * kvd) * es);
            mgl_convert_floats(k, MGL_DT_F32, k16, kt, (size_t)(L * kvd));
            mgl_convert_floats(v, MGL_DT_F32, v16, kt, (size_t)(L * kvd));
            mgl_convert_floats(k16, kt, k, MGL_DT_F32, (size_t)(L * kvd));
            mgl_convert_floats(v16, kt, v, MGL_DT_F32, (size_t)(L * kvd));
            float* qp = malloc(sizeof(float) * (size_t)(T * qd));
            for (int64_t t = 0; t < T; t++) memcpy(qp + t * qd, q + t * ldq, sizeof(float) * (size_t)qd);
            float* ref = malloc(sizeof(float) * (size_t)(T * qd));
            mgl_attention(qp, T, p0, k, v, NH, NKV, HS, ac[i].causal, ref);
            float* dq = up(q, sizeof(float) * (size_t)(T * ldq));
            void* dk = up(k16, (size_t)(L * kvd) * es);
            void* dv = up(v16, (size_t)(L * kvd) * es);
            float* dy = dev0((size_t)(T * ldo));
            mgl_cuda_attention(S, dq, ldq, T, p0, dk, dv, kvd, kt, NH, NKV, HS, ac[i].causal, dy, ldo);
            float* got = down(dy, (size_t)(T * ldo));
            float* packed = malloc(sizeof(float) * (size_t)(T * qd));
            for (int64_t t = 0; t < T; t++) memcpy(packed + t * qd, got + t * ldo, sizeof(float) * (size_t)qd);
            char what[120];
            snprintf(what, sizeof what, "attention T=%lld pos0=%lld NH=%lld NKV=%lld HS=%lld %s kv=%s", (long long)T,
                     (long long)p0, (long long)NH, (long long)NKV, (long long)HS, ac[i].causal ? "causal" : "full",
                     dt_name(kt));
            cmp(what, ref, packed, (size_t)(T * qd), kt == MGL_DT_F32 || T <= 4 ? 5e-5 : dt_tol(kt));
            mgl_cuda_free(dq);
            mgl_cuda_free(dk);
            mgl_cuda_free(dv);
            mgl_cuda_free(dy);
            free(q);
            free(k);
            free(v);
            free(k16);
            free(v16);
            free(qp);
            free(ref);
            free(got);
            free(packed);
        }
}

static void test_rows_embed(void) {
    MglErr e = {0};
    /* KV rows stored in 16 bits at a row offset */
    const int64_t T = 5, n = 40, ld = 70, row0 = 3;
    float* x = rnd((size_t)(T * ld), 2.0f);
    const MglDType dts[] = {MGL_DT_F32, MGL_DT_F16, MGL_DT_BF16};
    for (int di = 0; di < 3; di++) {
        size_t es = mgl_dtype_size(dts[di]);
        void* z = calloc((size_t)((row0 + T) * n), es);
        void* dd = up(z, (size_t)((row0 + T) * n) * es);
        float* dx = up(x, sizeof(float) * (size_t)(T * ld));
        mgl_cuda_store_rows(S, dx, ld, T, n, dd, dts[di], row0);
        REQUIRE(mgl_cuda_stream_sync(S, &e) == MGL_OK);
        REQUIRE(mgl_cuda_download(z, dd, (size_t)((row0 + T) * n) * es, &e) == MGL_OK);
        float* got = malloc(sizeof(float) * (size_t)(T * n));
        mgl_convert_floats((uint8_t*)z + (size_t)(row0 * n) * es, dts[di], got, MGL_DT_F32, (size_t)(T * n));
        float* ref = malloc(sizeof(float) * (size_t)(T * n));
        for (int64_t t = 0; t < T; t++)
            for (int64_t j = 0; j < n; j++) ref[t * n + j] = x[t * ld + j];
        /* the same rounding as the host conversion: exact */
        float* refr = malloc(sizeof(float) * (size_t)(T * n));
        void* tmp = malloc((size_t)(T * n) * es);
        mgl_convert_floats(ref, MGL_DT_F32, tmp, dts[di], (size_t)(T * n));
        mgl_convert_floats(tmp, dts[di], refr, MGL_DT_F32, (size_t)(T * n));
        char what[64];
        snprintf(what, sizeof what, "store_rows %s (exact rounding)", dt_name(dts[di]));
        cmp(what, refr, got, (size_t)(T * n), 0);
        mgl_cuda_free(dd);
        mgl_cuda_free(dx);
        free(z);
        free(got);
        free(ref);
        free(refr);
        free(tmp);
    }
    free(x);
    /* embedding gather */
    for (int di = 0; di < 3; di++) {
        const int64_t V = 50, H = 33, n_ids = 9;
        void* store;
        MglWeight E = host_weight(V, H, dts[di], 1.0f, &store);
        int32_t ids[9] = {0, 49, 7, 7, 1, 23, 48, 2, 31};
        float* ref = malloc(sizeof(float) * (size_t)(n_ids * H));
        for (int64_t i = 0; i < n_ids; i++) mgl_weight_row(&E, ids[i], ref + i * H);
        MglCudaW dE;
        REQUIRE(mgl_cuda_weight_upload(&E, dts[di], &dE, &e) == MGL_OK);
        int32_t* di_ = up(ids, sizeof ids);
        float* dy = dev0((size_t)(n_ids * H));
        mgl_cuda_embed(S, &dE, di_, n_ids, dy);
        float* got = down(dy, (size_t)(n_ids * H));
        char what[64];
        snprintf(what, sizeof what, "embed V=50 H=33 %s", dt_name(dts[di]));
        cmp(what, ref, got, (size_t)(n_ids * H), 0);
        mgl_cuda_weight_free(&dE);
        mgl_cuda_free(di_);
        mgl_cuda_free(dy);
        free(store);
        free(ref);
        free(got);
    }
}

static void test_sampling(void) {
    MglErr e = {0};
    const int64_t Vs[] = {256, 32000, 128256};
    for (size_t vi = 0; vi < 3; vi++) {
        const int64_t V = Vs[vi];
        float* lg = rnd((size_t)V, 8.0f);
        /* a planted tie at the top: argmax takes the first */
        lg[V / 3] = 20.0f;
        lg[V / 2] = 20.0f;
        float* dl = up(lg, sizeof(float) * (size_t)V);
        int32_t* dout = up(NULL, 0);
        int32_t got = -1;
        mgl_cuda_argmax(S, dl, V, dout);
        REQUIRE(mgl_cuda_stream_sync(S, &e) == MGL_OK);
        REQUIRE(mgl_cuda_download(&got, dout, sizeof got, &e) == MGL_OK);
        CHECK_MSG(got == V / 3, "argmax V=%lld: %d, want %lld", (long long)V, got, (long long)(V / 3));
        lg[V / 3] = lg[V / 2] = 3.0f;
        REQUIRE(mgl_cuda_upload(dl, lg, sizeof(float) * (size_t)V, &e) == MGL_OK);
        MglCudaSampler* sp = NULL;
        REQUIRE(mgl_cuda_sampler_new(V, &sp, &e) == MGL_OK);
        struct {
            float t;
            int k;
            float p;
        } cfg[] = {{0.7f, 0, 1.0f}, {1.0f, 40, 1.0f}, {0.8f, 0, 0.9f}, {1.3f, 50, 0.5f}, {0.5f, 1, 1.0f}};
        int same = 0, total = 0;
        for (size_t ci = 0; ci < sizeof cfg / sizeof cfg[0]; ci++)
            for (int d = 0; d < 8; d++) {
                double u = (double)(((uint64_t)(frand() * 4e9) * 2654435761ull) % 1000003) / 1000003.0;
                int32_t want = mgl_sample_draw(lg, V, cfg[ci].t, cfg[ci].k, cfg[ci].p, u);
                mgl_cuda_sample(S, sp, dl, cfg[ci].t, cfg[ci].k, cfg[ci].p, u, dout);
                REQUIRE(mgl_cuda_stream_sync(S, &e) == MGL_OK);
                REQUIRE(mgl_cuda_download(&got, dout, sizeof got, &e) == MGL_OK);
                CHECK_MSG(got >= 0 && got < V, "sample out of range: %d", got);
                same += got == want;
                total++;
                if (cfg[ci].k == 1) CHECK_MSG(got == want, "top-k 1 sample %d, greedy %d", got, want);
            }
        /* the same draw up to summation order: a draw on a boundary may differ */
        CHECK_MSG(same >= total - 1, "sampling V=%lld: %d of %d draws as the CPU's", (long long)V, same, total);
        printf("  %-58s ok  %d/%d draws identical\n",
               V == 256     ? "sampling V=256"
               : V == 32000 ? "sampling V=32000"
                            : "sampling V=128256",
               same, total);
        mgl_cuda_sampler_free(sp);
        mgl_cuda_free(dl);
        mgl_cuda_free(dout);
        free(lg);
    }
}

static void test_roi(void) {
    /* mgl_stage_objects reads only the channel counts of the model */
    MglModelWeights fm;
    memset(&fm, 0, sizeof fm);
    int C[4] = {8, 16, 32, 12};
    fm.Cm = 0;
    for (int s = 0; s < 4; s++) {
        fm.stages[s].C = C[s];
        fm.Cm += C[s];
    }
    float* so[4];
    float* dso[4];
    for (int s = 0; s < 4; s++) {
        int64_t hs = 192 >> s;
        so[s] = rnd((size_t)(hs * hs * C[s]), 1.0f);
        dso[s] = up(so[s], sizeof(float) * (size_t)(hs * hs * C[s]));
    }
    const float boxes[] = {0,   0,   768, 768, 10,  20,  30, 40, 100.5f, 200.25f, 700, 767, 760, 760,
                           768, 768, 300, 10,  301, 700, -5, -5, 50,     50,      0,   0,   0,   0};
    const size_t n = sizeof boxes / sizeof boxes[0] / 4;
    float* ref = malloc(sizeof(float) * n * (size_t)fm.Cm);
    mgl_stage_objects(&fm, so, boxes, n, ref);
    float* db = up(boxes, sizeof boxes);
    float* dp = dev0(n * (size_t)fm.Cm);
    const float* cso[4] = {dso[0], dso[1], dso[2], dso[3]};
    mgl_cuda_roi_pool(S, cso, C, db, (int64_t)n, dp);
    float* got = down(dp, n * (size_t)fm.Cm);
    cmp("RoIAlign 56x56 + mean over 4 levels, 7 boxes (edges)", ref, got, n * (size_t)fm.Cm, 1e-4);
    for (int s = 0; s < 4; s++) {
        free(so[s]);
        mgl_cuda_free(dso[s]);
    }
    mgl_cuda_free(db);
    mgl_cuda_free(dp);
    free(ref);
    free(got);
}

int main(void) {
    MglErr e = {0};
    if (mgl_cuda_device_count() <= 0 || mgl_cuda_probe(0, &e) != MGL_OK) {
        printf("no usable CUDA device (%s): skipped\n", e.msg[0] ? e.msg : "none found");
        return 77;
    }
    char name[200];
    mgl_cuda_device_name(0, name, sizeof name);
    printf("device: %s\n", name);
    MglErr be = {0};
    if (mgl_blas_init(&be) != MGL_OK) {
        fprintf(stderr, "%s\n", be.msg);
        return 1;
    }
    REQUIRE(mgl_cuda_stream_new(0, &S, &e) == MGL_OK);
    test_matmul();
    test_norms();
    test_elementwise();
    test_conv();
    test_resize();
    test_preprocess();
    test_rope();
    test_attention();
    test_rows_embed();
    test_sampling();
    test_roi();
    mgl_cuda_stream_free(S);
    printf("worst relative difference: %.3g\n", worst);
    TEST_DONE();
}
