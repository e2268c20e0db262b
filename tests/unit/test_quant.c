/* Quantized weights (engine/src/mgl-quant.c, engine/src/cpu/ops-quant.c):
 * the format's round trip and group sizes, every kernel against the plain
 * reference (the AVX2 kernels by default, the portable loop under
 * MGL_CPU_ISA=scalar), a sequence's result the same alone and in a batch,
 * the prefill GEMM path, and malformed quantized tensors refused with a
 * message naming the problem. */
#include "mgl-internal.h"
#include "mgl-quant.h"
#include "cpu/mgl-blas.h"
#include "cpu/mgl-ops-bf16.h"
#include "cpu/mgl-ops-quant.h"
#include "mgl-test.h"

#include <glib.h>
#include <math.h>

static uint64_t rng = 0x1234567887654321ull;
static float frand(void) { /* uniform in [-1, 1) */
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}

typedef struct {
    uint8_t* q;
    uint16_t* s;
    MglWeight W;
} QMat;

static QMat make(const float* w, int64_t N, int64_t K, int bits, int group) {
    QMat m;
    const int64_t G = mgl_quant_n_groups(K, group);
    m.q = malloc((size_t)(N * mgl_quant_row_bytes(bits, K)));
    m.s = malloc(sizeof(uint16_t) * (size_t)(N * G));
    mgl_quantize_rows(w, N, K, bits, group, m.q, m.s);
    m.W = mgl_quant_weight(m.q, m.s, bits, N, K, G);
    return m;
}

static const int64_t Ks[] = {1, 7, 16, 17, 31, 32, 33, 48, 64, 100, 128, 352, 1000};
static const int groups[] = {0, 32, 64, 128};

/* every weight comes back within half a step (q8), or one step (q4, whose
 * largest positive level is 7 where the grid reaches 8) */
static void round_trip(void) {
    for (size_t ki = 0; ki < G_N_ELEMENTS(Ks); ki++)
        for (size_t gi = 0; gi < G_N_ELEMENTS(groups); gi++)
            for (int bits = 8; bits >= 4; bits -= 4) {
                const int64_t N = 3, K = Ks[ki];
                float* w = malloc(sizeof(float) * (size_t)(N * K));
                for (int64_t i = 0; i < N * K; i++) w[i] = frand() * (i % 5 == 0 ? 3.0f : 0.5f);
                w[0] = 0; /* a group of zeros has scale 0 */
                QMat m = make(w, N, K, bits, groups[gi]);
                const int64_t G = mgl_quant_n_groups(K, groups[gi]), gs = m.W.qgroup;
                CHECK_MSG(gs > 0 && (K + gs - 1) / gs == G, "K %lld group %d: group_for gives %lld", (long long)K,
                          groups[gi], (long long)gs);
                if (G > 1) CHECK(gs == groups[gi]);
                float* d = malloc(sizeof(float) * (size_t)K);
                for (int64_t n = 0; n < N; n++) {
                    mgl_quant_dequant_row(&m.W, n, d);
                    for (int64_t k = 0; k < K; k++) {
                        const float s = fabsf(mgl_f16_to_f32(m.s[n * G + k / gs]));
                        const float bound = (bits == 8 ? 0.5f : 1.0f) * s * 1.0001f + 1e-7f;
                        const float e = fabsf(d[k] - w[n * K + k]);
                        if (e > bound) {
                            CHECK_MSG(false, "q%d K %lld group %d: w[%lld,%lld] %g came back %g (scale %g)", bits,
                                      (long long)K, groups[gi], (long long)n, (long long)k, w[n * K + k], d[k], s);
                            break;
                        }
                    }
                }
                free(d);
                free(m.q);
                free(m.s);
                free(w);
            }
    /* a group count no power-of-two group gives is refused */
    CHECK(mgl_quant_group_for(352, 3) == 128);
    CHECK(mgl_quant_group_for(352, 4) == 0);
    CHECK(mgl_quant_group_for(48, 2) == 32);
    CHECK(mgl_quant_group_for(48, 1) == 48);
    CHECK(mgl_quant_row_bytes(4, 48) == 24 && mgl_quant_row_bytes(4, 33) == 17 && mgl_quant_row_bytes(4, 352) == 176);
}

/* the kernels against the reference: within the rounding of f32 sums of K
 * terms; a row's result bit for bit the same alone and with others */
static void kernels(void) {
    double worst = 0, a8_worst = 0;
    for (size_t ki = 0; ki < G_N_ELEMENTS(Ks); ki++)
        for (size_t gi = 0; gi < G_N_ELEMENTS(groups); gi++)
            for (int bits = 8; bits >= 4; bits -= 4) {
                const int64_t N = 37, K = Ks[ki], T = 9;
                float* w = malloc(sizeof(float) * (size_t)(N * K));
                float* x = malloc(sizeof(float) * (size_t)(T * K));
                for (int64_t i = 0; i < N * K; i++) w[i] = frand();
                for (int64_t i = 0; i < T * K; i++) x[i] = frand() * 2.0f;
                QMat m = make(w, N, K, bits, groups[gi]);
                float* ref = malloc(sizeof(float) * (size_t)(T * N));
                float* got = malloc(sizeof(float) * (size_t)(T * N));
                float* one =
                    malloc(sizeof(float) * (size_t)(N > K ? N : K)); /* a row of N outputs, or one of K weights */
                float* deq = malloc(sizeof(float) * (size_t)K);
                float* exact = malloc(sizeof(float) * (size_t)(T * N));
                mgl_quant_matmul_ref(x, T, &m.W, true, ref); /* q4: int8 activation blocks, as the kernels */
                mgl_quant_matmul_ref(x, T, &m.W, false, exact);
                /* q4's int8 activations move a product by at most |w| x half a step (block max |x| / 254) */
                for (int64_t i = 0; bits == 4 && i < T * N; i++) {
                    const float* xt = x + (i / N) * K;
                    double mag = 0, bound = 1e-12;
                    mgl_quant_dequant_row(&m.W, i % N, deq);
                    for (int64_t k = 0; k < K; k++) {
                        mag += fabs((double)deq[k] * xt[k]);
                        const int64_t b0 = k / 32 * 32;
                        if (b0 + 32 > K) continue; /* the partial block stays f32 */
                        double amax = 0;
                        for (int j = 0; j < 32; j++) amax = fmax(amax, fabs(xt[b0 + j]));
                        bound += fabs(deq[k]) * amax / 254 * 1.001;
                    }
                    const double e = fabs((double)ref[i] - exact[i]);
                    if (mag > 0) a8_worst = fmax(a8_worst, e / mag);
                    if (e > bound) {
                        CHECK_MSG(false, "K %lld: int8 activations moved y[%lld] by %g, bound %g", (long long)K,
                                  (long long)i, e, bound);
                        break;
                    }
                }
                for (int64_t nt = 1; nt <= T; nt++) {
                    mgl_qmatmul_rows(x, nt, &m.W, got);
                    for (int64_t t = 0; t < nt; t++)
                        for (int64_t n = 0; n < N; n++) {
                            /* error bound of a sum of K f32 products: K * 2^-24 * sum |w x| */
                            mgl_quant_dequant_row(&m.W, n, deq);
                            double mag = 0;
                            for (int64_t k = 0; k < K; k++) mag += fabs((double)deq[k] * x[t * K + k]);
                            const double e = fabs((double)got[t * N + n] - ref[t * N + n]);
                            const double tol = (double)(K + 8) * 6e-8 * mag + 1e-30;
                            if (mag > 0 && e / mag > worst) worst = e / mag;
                            if (e > tol) {
                                CHECK_MSG(false, "q%d K %lld group %d T %lld: y[%lld,%lld] %.9g vs ref %.9g", bits,
                                          (long long)K, groups[gi], (long long)nt, (long long)t, (long long)n,
                                          got[t * N + n], ref[t * N + n]);
                                t = nt;
                                break;
                            }
                        }
                    /* the narrower SIMD kernels give the same bits (AVX-512 with and
                     * without VNNI, AVX2) */
                    for (int isa = mgl_qmatmul_isa() - 1; isa >= 1; isa--) {
                        float* alt = malloc(sizeof(float) * (size_t)(nt * N));
                        mgl_qmatmul_set_isa(isa);
                        mgl_qmatmul_rows(x, nt, &m.W, alt);
                        mgl_qmatmul_set_isa(-1);
                        CHECK_MSG(!memcmp(alt, got, sizeof(float) * (size_t)(nt * N)),
                                  "q%d K %lld group %d T %lld: kernel %d differs from kernel %d", bits, (long long)K,
                                  groups[gi], (long long)nt, isa, mgl_qmatmul_isa());
                        free(alt);
                    }
                    /* each row alone gives the same bits as in the batch */
                    for (int64_t t = 0; t < nt; t++) {
                        mgl_qmatmul_rows(x + t * K, 1, &m.W, one);
                        CHECK_MSG(!memcmp(one, got + t * N, sizeof(float) * (size_t)N),
                                  "q%d K %lld group %d: row %lld differs alone and in a batch of %lld", bits,
                                  (long long)K, groups[gi], (long long)t, (long long)nt);
                    }
                }
                /* mgl_matmul routes quantized weights: the GEMM path (T > 8) and mgl_weight_row */
                mgl_matmul(x, T, &m.W, NULL, got); /* f32 activations at both widths */
                for (int64_t i = 0; i < T * N; i++) {
                    const double e = fabs((double)got[i] - exact[i]);
                    if (e > 1e-4 * (fabs(exact[i]) + 1.0)) {
                        CHECK_MSG(false, "q%d K %lld: GEMM y[%lld] %.9g vs ref %.9g", bits, (long long)K, (long long)i,
                                  got[i], exact[i]);
                        break;
                    }
                }
                /* at precision bf16 (AVX512_BF16) the prefill GEMM rounds x and the
                 * dequantized weights to bf16: against double on the rounded values */
                if (mgl_gemm_bf16_available()) {
                    mgl_cpu_set_bf16(true);
                    mgl_matmul(x, T, &m.W, NULL, got);
                    mgl_cpu_set_bf16(false);
                    for (int64_t i = 0; i < T * N; i++) {
                        mgl_quant_dequant_row(&m.W, i % N, deq);
                        double r = 0, mag = 1e-30;
                        for (int64_t k = 0; k < K; k++) {
                            const double xv = mgl_bf16_to_f32(mgl_f32_to_bf16(x[(i / N) * K + k]));
                            const double wv = mgl_bf16_to_f32(mgl_f32_to_bf16(deq[k]));
                            r += xv * wv;
                            mag += fabs(xv * wv);
                        }
                        if (fabs(got[i] - r) > 1e-6 * mag) {
                            CHECK_MSG(false, "q%d K %lld: bf16 GEMM y[%lld] %.9g vs %.9g", bits, (long long)K,
                                      (long long)i, got[i], r);
                            break;
                        }
                    }
                }
                mgl_weight_row(&m.W, N - 1, one);
                mgl_quant_dequant_row(&m.W, N - 1, deq);
                CHECK(!memcmp(one, deq, sizeof(float) * (size_t)K));
                free(deq);
                free(exact);
                free(one);
                free(ref);
                free(got);
                free(m.q);
                free(m.s);
                free(x);
                free(w);
            }
    printf("kernel %s: worst error %.3g of sum |w x|; q4's int8 activation blocks move a dot product by at most "
           "%.3g of sum |w x|\n",
           (const char*[]){"scalar", "avx2", "avx512", "avx512-vnni"}[mgl_qmatmul_isa()], worst, a8_worst);
}

/* a heap tensor in a set */
static void add(MglTensorSet* set, const char* name, MglDType dt, int64_t d0, int64_t d1, const void* src) {
    const size_t nb = (size_t)(d0 * d1) * mgl_dtype_size(dt);
    MglMap* m = calloc(1, sizeof *m);
    uint8_t* buf = malloc(nb ? nb : 1);
    if (src)
        memcpy(buf, src, nb);
    else
        memset(buf, 0, nb);
    m->path = strdup("(test)");
    m->data = buf;
    m->size = nb;
    m->refcount = 1;
    MglTensor t = {
        .name = strdup(name), .dtype = dt, .ndim = 2, .shape = {d0, d1}, .stride = {d1, 1}, .data = buf, .map = m};
    REQUIRE(mgl_tset_add(set, &t, NULL) == MGL_OK);
}

static void expect_refused(const char* what, MglDType qdt, int64_t qcols, MglDType sdt, int64_t G, bool nan,
                           bool scales, const char* needle) {
    MglTensorSet* set = mgl_tset_new();
    const int64_t N = 4, K = 352;
    add(set, "w", qdt, N, qcols, NULL);
    uint16_t sc[4 * 16];
    for (int i = 0; i < 4 * 16; i++) sc[i] = mgl_f32_to_f16(0.01f);
    if (nan) sc[5] = 0x7e00;
    if (scales) add(set, "w_scale", sdt, N, G, sc);
    char msg[400] = "";
    MglWeight w;
    const bool ok = mgl_quant_view(set, mgl_tset_get(set, "w"), N, K, &w, msg, sizeof msg);
    CHECK_MSG(!ok && strstr(msg, needle), "%s: accepted or unclear message '%s'", what, msg);
    mgl_tset_free(set);
}

static void malformed(void) {
    /* well formed first: q4 [4, 176] with groups of 128 (G = 3) */
    MglTensorSet* set = mgl_tset_new();
    add(set, "w", MGL_DT_U8, 4, 176, NULL);
    uint16_t sc[12];
    for (int i = 0; i < 12; i++) sc[i] = mgl_f32_to_f16(0.5f);
    add(set, "w_scale", MGL_DT_F16, 4, 3, sc);
    MglWeight w;
    char msg[400] = "";
    CHECK_MSG(mgl_quant_view(set, mgl_tset_get(set, "w"), 4, 352, &w, msg, sizeof msg), "%s", msg);
    CHECK(w.qbits == 4 && w.qgroup == 128 && w.cols == 352);
    mgl_tset_free(set);
    expect_refused("q4 row bytes", MGL_DT_U8, 352, MGL_DT_F16, 3, false, true, "must be a contiguous U8 [4, 176]");
    expect_refused("q8 row bytes", MGL_DT_I8, 176, MGL_DT_F16, 3, false, true, "must be a contiguous I8 [4, 352]");
    expect_refused("no scales", MGL_DT_U8, 176, MGL_DT_F16, 3, false, false, "'w_scale' missing");
    expect_refused("f32 scales", MGL_DT_U8, 176, MGL_DT_F32, 3, false, true, "must be a contiguous F16");
    expect_refused("bad group count", MGL_DT_U8, 176, MGL_DT_F16, 4, false, true, "power of two");
    expect_refused("nan scale", MGL_DT_U8, 176, MGL_DT_F16, 3, true, true, "not finite");
    expect_refused("float weight", MGL_DT_F16, 352, MGL_DT_F16, 3, false, true, "not a quantized matrix");
}

static void parse(void) {
    MglQuantSpec q;
    MglDType dt;
    CHECK(mgl_quant_parse("q8", &q, &dt) && q.bits == 8 && q.group == 128 && q.head && dt == MGL_DT_F16);
    CHECK(mgl_quant_parse("q4,group=64,head=keep,float=f32", &q, &dt) && q.bits == 4 && q.group == 64 && !q.head &&
          dt == MGL_DT_F32);
    CHECK(mgl_quant_parse("q8,group=0,projectors=q", &q, &dt) && q.group == 0 && q.projectors);
    CHECK(!mgl_quant_parse("q4,group=48", &q, &dt));
    CHECK(!mgl_quant_parse("q4,group=16", &q, &dt));
    CHECK(!mgl_quant_parse("q4,bogus", &q, &dt));
    CHECK(!mgl_quant_parse("q5", &q, &dt));
}

/* the activations' int8 blocks (vectorised where the CPU has AVX2) against
 * the definition written out here: max |x| / 127, round half to even,
 * clamp, the block's sum; ties, zeros, tiny and huge values, and a NaN */
static void act_blocks(void) {
    enum { NB = 64, K = NB * 32 + 7 };
    float* x = malloc(sizeof(float) * K);
    for (int i = 0; i < K; i++) {
        const int b = i / 32;
        x[i] = b % 8 == 0   ? 0.0f                          /* an all-zero block */
               : b % 8 == 1 ? (float)((i % 32) - 16) * 0.5f /* x.5 ties after scaling by 127/16... */
               : b % 8 == 2 ? frand() * 1e-30f
               : b % 8 == 3 ? frand() * 1e30f
                            : frand() * 3.0f;
    }
    x[5 * 32 + 3] = NAN;
    int8_t q[K];
    float xs[NB];
    int32_t sum[NB];
    mgl_quant_act_blocks(x, K, q, xs, sum);
    int bad = 0;
    for (int b = 0; b < NB; b++) {
        const float* v = x + b * 32;
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(v[j]));
        const float inv = amax > 0 ? 127.0f / amax : 0.0f;
        float sc = amax / 127.0f;
        int32_t su = 0;
        for (int j = 0; j < 32; j++) {
            float r = nearbyintf(v[j] * inv);
            if (r != r) {
                r = 0;
                sc = NAN;
            }
            r = r < -127.0f ? -127.0f : r > 127.0f ? 127.0f : r;
            bad += q[b * 32 + j] != (int8_t)r;
            su += (int32_t)r;
        }
        bad += sum[b] != su || memcmp(&xs[b], &sc, sizeof sc) != 0;
    }
    CHECK_MSG(bad == 0, "activation blocks: %d values differ from the definition", bad);
    free(x);
}

int main(void) {
    MglErr err = {0};
    REQUIRE(mgl_blas_init(&err) == MGL_OK); /* the prefill GEMM */
    round_trip();
    act_blocks();
    kernels();
    malformed();
    parse();
    TEST_DONE();
}
