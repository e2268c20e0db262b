/* The CPU kernels chosen by CPUID (engine/src/cpu/mgl-cpu-isa.c) against
 * plain double-precision references: attention (decode rows and blocked
 * prefill, causal and full, grouped heads, head sizes on and off the vector
 * path, key counts with and without a tail) and the matrix products. The
 * meson file runs this at the widest level the CPU has and again with
 * MGL_CPU_ISA capping it, so every fallback is checked on any machine. */
#include "mgl-internal.h"
#include "cpu/mgl-blas.h"
#include "cpu/mgl-cpu-isa.h"
#include "cpu/mgl-cpu-math.h"
#include "cpu/mgl-ops-bf16.h"
#include "mgl-ops.h"
#include "mgl-test.h"

#include <math.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float frand(void) { /* uniform in [-1, 1) */
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}
static float* randv(int64_t n, float amp) {
    float* v = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    for (int64_t i = 0; i < n; i++) v[i] = frand() * amp;
    return v;
}

/* softmax(q k^T / sqrt(HS)) v in double, row by row */
static void attn_ref(const float* q, int64_t T, int64_t pos0, const float* kc, const float* vc, int64_t NH, int64_t NKV,
                     int64_t HS, bool causal, double* out) {
    const int64_t L = pos0 + T, group = NH / NKV;
    double* s = malloc(sizeof(double) * (size_t)L);
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < NH; h++) {
            const int64_t n = causal ? pos0 + t + 1 : L, kvh = h / group;
            double mx = -INFINITY, sum = 0;
            for (int64_t j = 0; j < n; j++) {
                double d = 0;
                for (int64_t i = 0; i < HS; i++) d += (double)q[(t * NH + h) * HS + i] * kc[(j * NKV + kvh) * HS + i];
                s[j] = d / sqrt((double)HS);
                if (s[j] > mx) mx = s[j];
            }
            for (int64_t j = 0; j < n; j++) sum += s[j] = exp(s[j] - mx);
            for (int64_t i = 0; i < HS; i++) {
                double o = 0;
                for (int64_t j = 0; j < n; j++) o += s[j] * vc[(j * NKV + kvh) * HS + i];
                out[(t * NH + h) * HS + i] = o / sum;
            }
        }
    free(s);
}

/* The interleaved cache (L, NKV, HS) of es-byte values in the head-major
 * layout the LLM keeps: (NKV, cap, HS), cap >= L. */
static void* head_major(const void* c, size_t es, int64_t L, int64_t NKV, int64_t HS, int64_t cap) {
    uint8_t* hm = calloc((size_t)(NKV * cap * HS), es);
    for (int64_t j = 0; j < L; j++)
        for (int64_t h = 0; h < NKV; h++)
            memcpy(hm + es * (size_t)((h * cap + j) * HS), (const uint8_t*)c + es * (size_t)((j * NKV + h) * HS),
                   es * (size_t)HS);
    return hm;
}

/* The same attention over the head-major copy of the cache: the same bits */
static void attention_head_major(const float* q, int64_t T, int64_t pos0, const void* kc, const void* vc, MglDType kvdt,
                                 int64_t NH, int64_t NKV, int64_t HS, bool causal, const float* want) {
    const int64_t L = pos0 + T, cap = L + 7;
    const size_t es = mgl_dtype_size(kvdt);
    void* kh = head_major(kc, es, L, NKV, HS, cap);
    void* vh = head_major(vc, es, L, NKV, HS, cap);
    float* out = malloc(sizeof(float) * (size_t)(T * NH * HS));
    mgl_attention_cache(q, T, pos0, kh, vh, kvdt, NH, NKV, HS, cap * HS, HS, causal, out);
    CHECK_MSG(memcmp(out, want, sizeof(float) * (size_t)(T * NH * HS)) == 0,
              "attention %s T=%lld pos0=%lld NH=%lld NKV=%lld HS=%lld: head-major cache gives other bits",
              mgl_dtype_name(kvdt), (long long)T, (long long)pos0, (long long)NH, (long long)NKV, (long long)HS);
    free(kh);
    free(vh);
    free(out);
}

/* the cache in kvdt (f32 through mgl_attention itself); the reference reads
 * the values the 16-bit cache holds; the head-major layout gives the bits of
 * the interleaved one */
static void attention_case_dt(int64_t T, int64_t pos0, int64_t NH, int64_t NKV, int64_t HS, bool causal, float amp,
                              MglDType kvdt) {
    const int64_t L = pos0 + T;
    float* q = randv(T * NH * HS, amp);
    float* kc = randv(L * NKV * HS, amp);
    float* vc = randv(L * NKV * HS, 1.0f);
    float* out = malloc(sizeof(float) * (size_t)(T * NH * HS));
    double* ref = malloc(sizeof(double) * (size_t)(T * NH * HS));
    if (kvdt == MGL_DT_F32) {
        mgl_attention(q, T, pos0, kc, vc, NH, NKV, HS, causal, out);
        attention_head_major(q, T, pos0, kc, vc, kvdt, NH, NKV, HS, causal, out);
    } else {
        const size_t n = (size_t)(L * NKV * HS);
        uint16_t* k16 = malloc(2 * n);
        uint16_t* v16 = malloc(2 * n);
        mgl_convert_floats(kc, MGL_DT_F32, k16, kvdt, n);
        mgl_convert_floats(vc, MGL_DT_F32, v16, kvdt, n);
        mgl_convert_floats(k16, kvdt, kc, MGL_DT_F32, n);
        mgl_convert_floats(v16, kvdt, vc, MGL_DT_F32, n);
        mgl_attention_kv(q, T, pos0, k16, v16, kvdt, NH, NKV, HS, causal, out);
        attention_head_major(q, T, pos0, k16, v16, kvdt, NH, NKV, HS, causal, out);
        free(k16);
        free(v16);
    }
    attn_ref(q, T, pos0, kc, vc, NH, NKV, HS, causal, ref);
    double worst = 0;
    for (int64_t i = 0; i < T * NH * HS; i++) {
        double d = fabs(out[i] - ref[i]);
        if (!(d <= worst)) worst = d; /* NaN propagates as a failure */
    }
    /* values are in [-1, 1]: f32 scores over up to 256 terms and softmax sums over a few thousand keys */
    CHECK_MSG(worst <= 2e-5, "attention %s T=%lld pos0=%lld NH=%lld NKV=%lld HS=%lld causal=%d amp=%g: max|diff| %.3g",
              mgl_dtype_name(kvdt), (long long)T, (long long)pos0, (long long)NH, (long long)NKV, (long long)HS, causal,
              amp, worst);
    free(q);
    free(kc);
    free(vc);
    free(out);
    free(ref);
}

static void attention_case(int64_t T, int64_t pos0, int64_t NH, int64_t NKV, int64_t HS, bool causal, float amp) {
    static const MglDType dts[] = {MGL_DT_F32, MGL_DT_F16, MGL_DT_BF16};
    for (int i = 0; i < 3; i++) attention_case_dt(T, pos0, NH, NKV, HS, causal, amp, dts[i]);
}

static void attention(void) {
    static const int64_t hs[] = {16, 20, 64, 80, 96, 128, 256};
    static const int64_t pos[] = {0, 1, 14, 15, 16, 17, 31, 100, 1000};
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++)
        for (size_t p = 0; p < sizeof pos / sizeof pos[0]; p++) {
            attention_case(1, pos[p], 4, 4, hs[i], true, 1.0f); /* decode */
            attention_case(3, pos[p], 4, 2, hs[i], true, 1.0f); /* a few rows, grouped heads */
            attention_case(1, pos[p], 2, 1, hs[i], true, 4.0f); /* sharp softmax */
        }
    attention_case(40, 0, 3, 3, 64, true, 1.0f);    /* prefill */
    attention_case(200, 37, 4, 2, 128, true, 1.0f); /* prefill past a block, grouped, after a prefix */
    attention_case(24, 0, 2, 2, 80, false, 1.0f);   /* full attention (vision) */
    attention_case(5, 0, 2, 2, 64, false, 1.0f);
    attention_case(1, 3000, 2, 2, 64, true, 1.0f); /* long context */
    /* prefill tiles (64 query rows, 64-key blocks, rows four at a time): partial tiles and blocks,
     * a prefix that is not a block multiple, every head size class, sharp scores, full attention */
    attention_case(67, 0, 2, 1, 16, true, 1.0f);
    attention_case(130, 5, 3, 3, 96, true, 4.0f);
    attention_case(17, 63, 2, 2, 256, true, 1.0f);
    attention_case(150, 0, 2, 2, 32, false, 4.0f);
    attention_case(64, 64, 4, 1, 128, true, 1.0f);
    /* head sizes of 8 lanes but not 16 (the GEMM version under every ISA) */
    attention_case(33, 3, 2, 1, 24, true, 1.0f);
    attention_case(70, 0, 2, 2, 40, false, 4.0f);
}


/* y = x W^T for W in f32, f16 and bf16: against double, and a row's bits
 * the same computed alone (T = 1) or among others (decode batches of 2, 3,
 * 5 and 8 sequences: whole and partial pairs of sequences, blocks of four
 * rows and the two- and one-row ends) */
static void matmul_rows(void) {
    static const int64_t Ks[] = {1, 16, 31, 32, 33, 100, 768, 1000};
    static const int64_t Ns[] = {1, 3, 4, 5, 9, 67, 300};
    static const int64_t Ts[] = {2, 3, 5, 8};
    static const MglDType dts[] = {MGL_DT_F32, MGL_DT_F16, MGL_DT_BF16};
    for (size_t di = 0; di < 3; di++)
        for (size_t ki = 0; ki < sizeof Ks / sizeof Ks[0]; ki++)
            for (size_t ni = 0; ni < sizeof Ns / sizeof Ns[0]; ni++) {
                const int64_t K = Ks[ki], N = Ns[ni], T = Ts[(di + ki + ni) % 4];
                const MglDType dt = dts[di];
                float* wf = randv(N * K, 1.0f);
                uint8_t* wd = malloc(mgl_dtype_size(dt) * (size_t)(N * K));
                mgl_convert_floats(wf, MGL_DT_F32, wd, dt, (size_t)(N * K));
                mgl_convert_floats(wd, dt, wf, MGL_DT_F32, (size_t)(N * K)); /* the values W holds */
                MglWeight W = {.data = wd, .dtype = dt, .rows = N, .cols = K};
                float* x = randv(T * K, 1.0f);
                float* yb = malloc(sizeof(float) * (size_t)(T * N));
                float* y1 = malloc(sizeof(float) * (size_t)N);
                mgl_matmul_rows(x, T, &W, NULL, yb);
                double worst = 0;
                int differ = 0;
                for (int64_t t = 0; t < T; t++) {
                    mgl_matmul_rows(x + t * K, 1, &W, NULL, y1);
                    for (int64_t n = 0; n < N; n++) {
                        double r = 0;
                        for (int64_t k = 0; k < K; k++) r += (double)x[t * K + k] * wf[n * K + k];
                        double d = fabs(yb[t * N + n] - r) / (1.0 + sqrt((double)K));
                        if (!(d <= worst)) worst = d;
                        differ += memcmp(&y1[n], &yb[t * N + n], sizeof(float)) != 0;
                    }
                }
                /* the same matrix three times in one region (q, k, v), next to N rows of another
                 * size: each output as its own call gives it */
                {
                    MglWeight W2 = W;
                    W2.rows = N > 1 ? N - 1 : 1;
                    const MglWeight* Ws[3] = {&W, &W2, &W};
                    float* ys[3];
                    for (int i = 0; i < 3; i++) ys[i] = malloc(sizeof(float) * (size_t)(T * N));
                    mgl_matmul_rows_n(x, T, 3, Ws, ys);
                    int multi_differ = memcmp(ys[0], yb, sizeof(float) * (size_t)(T * N)) != 0 ||
                                       memcmp(ys[2], yb, sizeof(float) * (size_t)(T * N)) != 0;
                    for (int64_t t = 0; t < T; t++)
                        multi_differ += memcmp(ys[1] + t * W2.rows, yb + t * N, sizeof(float) * (size_t)W2.rows) != 0;
                    CHECK_MSG(!multi_differ, "matmul_rows_n %s K=%lld N=%lld: differs from separate calls",
                              mgl_dtype_name(dt), (long long)K, (long long)N);
                    for (int i = 0; i < 3; i++) free(ys[i]);
                }
                CHECK_MSG(worst <= 2e-6, "matmul_rows %s K=%lld N=%lld: scaled max|diff| %.3g", mgl_dtype_name(dt),
                          (long long)K, (long long)N, worst);
                CHECK_MSG(differ == 0, "matmul_rows %s K=%lld N=%lld: %d results differ alone and in a batch",
                          mgl_dtype_name(dt), (long long)K, (long long)N, differ);
                free(wf);
                free(wd);
                free(x);
                free(yb);
                free(y1);
            }
}

/* y = x W^T + b through mgl_matmul (prefill, vision) in each weight dtype,
 * at f32 precision and at bf16 precision: there, on AVX512_BF16, x and W are
 * rounded to bf16 before the products (the reference rounds them the same
 * way); elsewhere the products stay f32's. The error is measured against
 * the sum of |x w| of its output. `kernel` >= 0 forces mgl_gemm_bf16's
 * kernel (vdpbf16ps, the AMX tiles, or their software model: the AMX block
 * and its tile layouts checked on CPUs without AMX); < 0 the one chosen. */
static void matmul_gemm(bool bf16, int kernel) {
    static const int64_t Ts[] = {2, 5, 12, 13, 17, 40, 64, 300};
    static const int64_t Ks[] = {1, 2, 31, 32, 33, 100, 768};
    static const int64_t Ns[] = {1, 17, 32, 33, 100};
    static const MglDType dts[] = {MGL_DT_F32, MGL_DT_F16, MGL_DT_BF16};
    mgl_cpu_set_bf16(bf16);
    REQUIRE(mgl_gemm_bf16_force(kernel));
    const bool round = bf16 && mgl_gemm_bf16_available();
    printf("matmul at %s precision: %s\n", bf16 ? "bf16" : "f32",
           round ? "bf16 products (x and W rounded to bf16)" : "f32 products");
    if (round) printf("  bf16 kernel: %s\n", mgl_gemm_bf16_kernel_name(mgl_gemm_bf16_kernel()));
    for (size_t di = 0; di < 3; di++)
        for (size_t ti = 0; ti < sizeof Ts / sizeof Ts[0]; ti++)
            for (size_t ki = 0; ki < sizeof Ks / sizeof Ks[0]; ki++)
                for (size_t ni = 0; ni < sizeof Ns / sizeof Ns[0]; ni++) {
                    const int64_t T = Ts[ti], K = Ks[ki], N = Ns[ni];
                    const MglDType dt = dts[di];
                    float* wf = randv(N * K, 1.0f);
                    uint8_t* wd = malloc(mgl_dtype_size(dt) * (size_t)(N * K));
                    mgl_convert_floats(wf, MGL_DT_F32, wd, dt, (size_t)(N * K));
                    mgl_convert_floats(wd, dt, wf, MGL_DT_F32, (size_t)(N * K));
                    MglWeight W = {.data = wd, .dtype = dt, .rows = N, .cols = K};
                    float* x = randv(T * K, 2.0f);
                    float* bias = ni % 2 ? randv(N, 1.0f) : NULL;
                    float* y = malloc(sizeof(float) * (size_t)(T * N));
                    mgl_matmul(x, T, &W, bias, y);
                    /* the fused activation: the values of the product, then the activation */
                    for (int a = 1; a <= 2; a++) {
                        float* ya = malloc(sizeof(float) * (size_t)(T * N));
                        float* ys = malloc(sizeof(float) * (size_t)(T * N));
                        mgl_matmul_act(x, T, &W, bias, (MglAct)a, ya);
                        memcpy(ys, y, sizeof(float) * (size_t)(T * N));
                        if (a == MGL_ACT_GELU)
                            mgl_gelu_erf(ys, T * N);
                        else
                            mgl_quick_gelu(ys, T * N);
                        CHECK_MSG(!memcmp(ya, ys, sizeof(float) * (size_t)(T * N)),
                                  "matmul_act %d %s at %s T=%lld K=%lld N=%lld: differs from matmul then act", a,
                                  mgl_dtype_name(dt), bf16 ? "bf16" : "f32", (long long)T, (long long)K, (long long)N);
                        free(ya);
                        free(ys);
                    }
                    double worst = 0;
                    for (int64_t t = 0; t < T; t++)
                        for (int64_t n = 0; n < N; n++) {
                            double r = bias ? bias[n] : 0, mag = 1;
                            for (int64_t k = 0; k < K; k++) {
                                float xv = x[t * K + k], wv = wf[n * K + k];
                                if (round) {
                                    xv = mgl_bf16_to_f32(mgl_f32_to_bf16(xv));
                                    wv = mgl_bf16_to_f32(mgl_f32_to_bf16(wv));
                                }
                                r += (double)xv * wv;
                                mag += fabs((double)xv * wv);
                            }
                            double d = fabs(y[t * N + n] - r) / mag;
                            if (!(d <= worst)) worst = d;
                        }
                    CHECK_MSG(worst <= 1e-6, "matmul %s at %s T=%lld K=%lld N=%lld bias=%d: relative error %.3g",
                              mgl_dtype_name(dt), bf16 ? "bf16" : "f32", (long long)T, (long long)K, (long long)N,
                              bias != NULL, worst);
                    free(wf);
                    free(wd);
                    free(x);
                    free(bias);
                    free(y);
                }
    mgl_cpu_set_bf16(false);
    REQUIRE(mgl_gemm_bf16_force(-1));
}

/* f32 -> f16 / bf16 conversions (vectorised where the CPU has AVX2/F16C)
 * equal the scalar ones bit for bit: a million bit patterns spread over all
 * 2^32 (NaNs, infinities, subnormals and the rounding ties among them). */
static void conversions(void) {
    const size_t n = 1 << 20;
    float* f = malloc(sizeof(float) * n);
    uint16_t* h = malloc(sizeof(uint16_t) * n);
    for (size_t i = 0; i < n; i++) {
        uint32_t x = (uint32_t)(i * 4099u) ^ (i & 1 ? 0x8000u : 0u); /* odd steps hit the ties' bit */
        memcpy(&f[i], &x, sizeof x);
    }
    long bad16 = 0, badb = 0;
    mgl_convert_floats(f, MGL_DT_F32, h, MGL_DT_F16, n);
    for (size_t i = 0; i < n; i++) bad16 += h[i] != mgl_f32_to_f16(f[i]);
    mgl_convert_floats(f, MGL_DT_F32, h, MGL_DT_BF16, n);
    for (size_t i = 0; i < n; i++) badb += h[i] != mgl_f32_to_bf16(f[i]);
    /* f16 -> bf16 (every f16 bit pattern) as f16 -> f32 -> bf16 one by one */
    long badh = 0;
    uint16_t* src = malloc(sizeof(uint16_t) * 65536);
    uint16_t* dst = malloc(sizeof(uint16_t) * 65536);
    for (uint32_t i = 0; i < 65536; i++) src[i] = (uint16_t)i;
    mgl_convert_floats(src, MGL_DT_F16, dst, MGL_DT_BF16, 65536);
    for (uint32_t i = 0; i < 65536; i++) badh += dst[i] != mgl_f32_to_bf16(mgl_f16_to_f32(src[i]));
    free(src);
    free(dst);
    CHECK_MSG(bad16 == 0 && badb == 0 && badh == 0,
              "conversions differ from the scalar ones: %ld f32 to f16, %ld f32 to bf16, %ld f16 to bf16", bad16, badb,
              badh);
    free(f);
    free(h);
}

/* exp_fast over its whole range, and the activations built on it (SiLU gating, quick_gelu) against
 * double precision, at many points including both clamps */
static void activations(void) {
    double worst = 0, wx = 0;
    for (double x = -87.0; x <= 88.0; x += 1.0 / 4096) {
        const float xf = (float)x;
        const double r = exp((double)xf), e = fabs(exp_fast(xf) - r) / r;
        if (e > worst) worst = e, wx = x;
    }
    CHECK_MSG(worst <= 2.6e-7, "exp_fast: relative error %.3g at %g", worst, wx);
    CHECK(exp_fast(-1000.0f) > 0.0f && exp_fast(-1000.0f) < 2e-38f && isfinite(exp_fast(1000.0f)));
    enum { N = 20001 };
    float* g = malloc(sizeof(float) * N);
    float* u = malloc(sizeof(float) * N);
    float* o = malloc(sizeof(float) * N);
    for (int i = 0; i < N; i++) {
        g[i] = (float)(i - N / 2) * 0.01f; /* -100 .. 100 */
        u[i] = 1.0f + 0.001f * (float)(i % 7);
    }
    mgl_silu_mul(g, u, o, N);
    double ws = 0, wq = 0;
    for (int i = 0; i < N; i++) {
        const double x = g[i], want = x / (1.0 + exp(-x)) * u[i];
        const double e = fabs(o[i] - want) / (fabs(want) + 1e-30);
        if (fabs(want) > 1e-30 && e > ws) ws = e;
    }
    memcpy(o, g, sizeof(float) * N);
    mgl_quick_gelu(o, N);
    for (int i = 0; i < N; i++) {
        /* the exponent as the kernel forms it in float (its rounding is not exp's error) */
        const double x = g[i], want = x / (1.0 + exp((double)(-1.702f * g[i])));
        const double e = fabs(o[i] - want) / (fabs(want) + 1e-30);
        if (fabs(want) > 1e-30 && e > wq) wq = e;
    }
    CHECK_MSG(ws <= 1e-6, "silu_mul: relative error %.3g", ws);
    CHECK_MSG(wq <= 1e-6, "quick_gelu: relative error %.3g", wq);
    free(g);
    free(u);
    free(o);
}

/* The depthwise 7x7 conv (ConvNeXt's, NHWC, padding 3) against a
 * double-precision reference: images narrower and wider than the row blocks
 * of eight pixels, channel counts with and without a multiple of 32 (the
 * vector blocks: 16 and 48 take the 16-channel block) and a tail, with and
 * without a bias. */
static void dwconv(void) {
    static const int64_t shapes[][3] = {{1, 1, 5},   {5, 7, 32},  {9, 13, 33},  {12, 14, 64},
                                        {7, 30, 70}, {6, 21, 16}, {10, 17, 48}, {16, 23, 192}};
    double worst = 0;
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (int with_b = 0; with_b < 2; with_b++) {
            const int64_t H = shapes[si][0], W = shapes[si][1], C = shapes[si][2];
            float* x = randv(H * W * C, 2.0f);
            float* w = randv(C * 49, 1.0f);
            float* b = with_b ? randv(C, 1.0f) : NULL;
            float* y = malloc(sizeof(float) * (size_t)(H * W * C));
            mgl_dwconv7_nhwc(x, H, W, C, w, b, y);
            for (int64_t r = 0; r < H; r++)
                for (int64_t c = 0; c < W; c++)
                    for (int64_t ch = 0; ch < C; ch++) {
                        double s = b ? b[ch] : 0, mag = 1e-30 + (b ? fabs(b[ch]) : 0);
                        for (int ky = 0; ky < 7; ky++)
                            for (int kx = 0; kx < 7; kx++) {
                                const int64_t yy = r + ky - 3, xx = c + kx - 3;
                                if (yy < 0 || yy >= H || xx < 0 || xx >= W) continue;
                                const double t = (double)x[(yy * W + xx) * C + ch] * w[ch * 49 + ky * 7 + kx];
                                s += t;
                                mag += fabs(t);
                            }
                        const double e = fabs(y[(r * W + c) * C + ch] - s) / mag;
                        if (!(e <= worst)) worst = e;
                    }
            free(x);
            free(w);
            free(b);
            free(y);
        }
    CHECK_MSG(worst <= 1e-6, "dwconv7: relative error %.3g", worst);
}

int main(void) {
    MglErr err = {0};
    REQUIRE(mgl_blas_init(&err) == MGL_OK);
    printf("CPU kernel level: %s\n", mgl_cpu_level_name(mgl_cpu_level()));
    conversions();
    activations();
    attention();
    dwconv();
    matmul_rows();
    matmul_gemm(false, -1);
    matmul_gemm(true, -1);
    /* the kernels not chosen on this CPU, where it can run them */
    const MglBf16Gemm chosen = mgl_gemm_bf16_kernel();
    for (int k = MGL_BF16_GEMM_AVX512; k <= MGL_BF16_GEMM_AMX_EMULATED; k++)
        if (k != (int)chosen && mgl_gemm_bf16_force(k)) matmul_gemm(true, k);
    REQUIRE(mgl_gemm_bf16_force(-1));
    /* a CPU with usable AMX tiles must run them: the start-up product on the
     * tiles agreed with their model */
    CHECK_MSG(!mgl_gemm_bf16_amx_disagreed(), "AMX tiles present, but their product disagreed with the tile model");
    TEST_DONE();
}
