/* The CUDA quantized-weight kernels (engine/cuda/mgl-cuda-quant.cu) against
 * the CPU: the W8A16/W4A16 GEMV (T = 1..8) against the plain reference with
 * the activations rounded to f16 as the kernel does (only f32 summation order
 * differs: tight), the dequantize-to-f16 GEMM path (T > 8: each weight
 * rounded to f16 once, looser), and the CPU kernels (q4 takes int8
 * activation blocks there: the CPU-to-CUDA tolerance of docs/quantization.md).
 * Shapes: K = 48 and 352 (shorter last group), odd N, per-row and grouped
 * scales, and one decode-sized matrix whose GEMV time gives the fraction of
 * the device's bandwidth reached on the quantized bytes; then the tiny
 * Llama-3 and Phi-3 fixtures quantized, CUDA against the CPU backend (prompt
 * logits and one decode step). Exit 77 (skipped) when no CUDA device can be
 * used. */
#include "mgl-cuda-quant.h"
#include "mgl-model.h"
#include "mgl-quant.h"
#include "cpu/mgl-blas.h"
#include "cpu/mgl-ops-quant.h"
#include "../unit/mgl-test.h"
#include "gpu-parity.h"

#include <cuda_runtime_api.h>
#include <glib.h>
#include <math.h>
#include <time.h>

static MglCudaStream* S;
static uint64_t g_rng = 777;

static float frand(void) {
    g_rng = g_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((g_rng >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}

static void* up(const void* h, size_t bytes) {
    MglErr e = {0};
    void* d = mgl_cuda_malloc(bytes ? bytes : 4, &e);
    REQUIRE(d != NULL);
    if (bytes) REQUIRE(mgl_cuda_upload(d, h, bytes, &e) == MGL_OK);
    return d;
}

static void sync_down(void* h, const void* d, size_t bytes) {
    MglErr e = {0};
    MglStatus st = mgl_cuda_stream_sync(S, &e);
    if (st != MGL_OK) fprintf(stderr, "device error: %s\n", e.msg);
    REQUIRE(st == MGL_OK);
    REQUIRE(mgl_cuda_download(h, d, bytes, &e) == MGL_OK);
}

static void one(int64_t N, int64_t K, int bits, int group, int64_t T) {
    const int64_t G = mgl_quant_n_groups(K, group);
    float* w = malloc(sizeof(float) * (size_t)(N * K));
    float* x = malloc(sizeof(float) * (size_t)(T * K));
    float* x16 = malloc(sizeof(float) * (size_t)(T * K));
    for (int64_t i = 0; i < N * K; i++) w[i] = frand();
    for (int64_t i = 0; i < T * K; i++) {
        x[i] = frand() * 3.0f;
        x16[i] = mgl_f16_to_f32(mgl_f32_to_f16(x[i]));
    }
    uint8_t* q = malloc((size_t)(N * mgl_quant_row_bytes(bits, K)));
    uint16_t* sc = malloc(sizeof(uint16_t) * (size_t)(N * G));
    mgl_quantize_rows(w, N, K, bits, group, q, sc);
    MglWeight W = mgl_quant_weight(q, sc, bits, N, K, G);
    float* ref = malloc(sizeof(float) * (size_t)(T * N));
    float* cpu = malloc(sizeof(float) * (size_t)(T * N));
    float* got = malloc(sizeof(float) * (size_t)(T * N));
    mgl_quant_matmul_ref(x16, T, &W, false, ref);
    mgl_qmatmul(x, T, &W, cpu);
    MglErr e = {0};
    MglCudaW dW;
    REQUIRE(mgl_cuda_qweight_upload(&W, &dW, &e) == MGL_OK);
    float* dx = up(x, sizeof(float) * (size_t)(T * K));
    float* dy = mgl_cuda_malloc(sizeof(float) * (size_t)(T * N), &e);
    REQUIRE(dy != NULL);
    mgl_cuda_qmatmul(S, dx, T, &dW, dy, N);
    sync_down(got, dy, sizeof(float) * (size_t)(T * N));
    const ParityDiff pr = parity_diff(ref, got, (size_t)(T * N));
    const ParityDiff pc = parity_diff(cpu, got, (size_t)(T * N));
    /* GEMV: f32 order only; GEMM: the f16 rounding of each weight and of x */
    const double tol = T <= 8 ? 2e-5 : 3e-3;
    /* vs the CPU kernels: q4's int8 activation blocks (<= 0.35% of sum |w x|), q8's f32 activations vs f16 */
    const double tol_cpu = bits == 4 ? 2e-2 : 3e-3;
    printf("q%d N %lld K %lld group %d T %lld: vs reference %.2e (tol %.0e), vs CPU kernels %.2e (tol %.0e)\n", bits,
           (long long)N, (long long)K, group, (long long)T, pr.rel, tol, pc.rel, tol_cpu);
    CHECK(pr.rel <= tol);
    CHECK(pc.rel <= tol_cpu);
    mgl_cuda_qweight_free(&dW);
    mgl_cuda_free(dx);
    mgl_cuda_free(dy);
    free(w);
    free(x);
    free(x16);
    free(q);
    free(sc);
    free(ref);
    free(cpu);
    free(got);
}

/* decode-sized GEMV: the quantized bytes over the time, against the bus */
static void bandwidth(int bits) {
    const int64_t N = 11008, K = 4096, G = mgl_quant_n_groups(K, bits == 8 ? 128 : 32);
    const size_t qb = (size_t)(N * mgl_quant_row_bytes(bits, K)), sb = sizeof(uint16_t) * (size_t)(N * G);
    uint8_t* q = calloc(qb, 1);
    uint16_t* sc = calloc((size_t)(N * G), sizeof(uint16_t));
    MglWeight W = mgl_quant_weight(q, sc, bits, N, K, G);
    MglErr e = {0};
    MglCudaW dW;
    REQUIRE(mgl_cuda_qweight_upload(&W, &dW, &e) == MGL_OK);
    float* xz = calloc((size_t)K, sizeof(float));
    float* dx = up(xz, sizeof(float) * (size_t)K);
    float* dy = mgl_cuda_malloc(sizeof(float) * (size_t)N, &e);
    for (int i = 0; i < 5; i++) mgl_cuda_qmatmul(S, dx, 1, &dW, dy, N);
    REQUIRE(mgl_cuda_stream_sync(S, &e) == MGL_OK);
    struct timespec t0, t1;
    const int reps = 200;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < reps; i++) mgl_cuda_qmatmul(S, dx, 1, &dW, dy, N);
    REQUIRE(mgl_cuda_stream_sync(S, &e) == MGL_OK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    const double s = ((t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9) / reps;
    int dev = 0, clk = 0, width = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&clk, cudaDevAttrMemoryClockRate, dev);
    cudaDeviceGetAttribute(&width, cudaDevAttrGlobalMemoryBusWidth, dev);
    const double peak = 2.0 * clk * 1e3 * (width / 8.0); /* bytes/s, DDR */
    const double bw = (double)(qb + sb) / s;
    printf("bandwidth q%d GEMV %lldx%lld: %.1f us, %.0f GB/s of %.0f GB/s (%.0f%% of the bus)\n", bits, (long long)N,
           (long long)K, s * 1e6, bw / 1e9, peak / 1e9, 100.0 * bw / peak);
    mgl_cuda_qweight_free(&dW);
    mgl_cuda_free(dx);
    mgl_cuda_free(dy);
    free(xz);
    free(q);
    free(sc);
}

/* a tiny fixture model quantized, on the CPU and on CUDA: prompt logits
 * (the dequantized GEMM) and one decode step (the GEMV) */
static MglModel* load_on(const char* path, const char* dev) {
    MglModelParams mp = mgl_model_default_params();
    mp.device = dev;
    mp.precision = "f32";
    MglModel* m = NULL;
    MglErr e = {0};
    if (mgl_model_load(path, &mp, &m, &e) != MGL_OK) fprintf(stderr, "%s (%s): %s\n", path, dev, e.msg);
    REQUIRE(m != NULL);
    return m;
}

static void model(const char* name, int bits, const char* tmp) {
    char* src = g_build_filename(test_env("MGL_FIXTURES"), "models", name, NULL);
    char* out = g_strdup_printf("%s/%s-q%d", tmp, name, bits);
    MglErr e = {0};
    REQUIRE(mgl_convert(src, out, bits == 8 ? "q8,float=f32" : "q4,float=f32", &e) == MGL_OK);
    MglModel* c = load_on(out, "cpu");
    MglModel* g = load_on(out, "cuda");
    MglPrompt pr;
    REQUIRE(mgl_prompt_build(c->tok, c->tmpl, "Describe the image in a few words.", false, &pr, &e) == MGL_OK);
    const int64_t H = c->w.lc.hidden, V = c->w.lc.vocab, L = (int64_t)pr.n_ids;
    float* emb = malloc(sizeof(float) * (size_t)((L + 1) * H));
    for (int64_t i = 0; i < L; i++) mgl_weight_row(&c->w.embed, pr.ids[i], emb + i * H);
    float* lc = malloc(sizeof(float) * (size_t)(L * V));
    float* lg = malloc(sizeof(float) * (size_t)(L * V));
    MglCtx *cc = NULL, *gc = NULL;
    REQUIRE(mgl_ctx_new(c, &cc, &e) == MGL_OK && mgl_ctx_new(g, &gc, &e) == MGL_OK);
    REQUIRE(mgl_llm_forward(cc, emb, L, 0, lc, true, &e) == MGL_OK);
    REQUIRE(mgl_llm_forward(gc, emb, L, 0, lg, true, &e) == MGL_OK);
    const ParityDiff p0 = parity_diff(lc, lg, (size_t)(L * V));
    mgl_weight_row(&c->w.embed, 7, emb);
    REQUIRE(mgl_llm_forward(cc, emb, 1, L, lc, false, &e) == MGL_OK);
    REQUIRE(mgl_llm_forward(gc, emb, 1, L, lg, false, &e) == MGL_OK);
    const ParityDiff p1 = parity_diff(lc, lg, (size_t)V);
    /* CPU q4 rounds activations to int8 blocks, CUDA to f16; q8 both keep them (f32 / f16) */
    const double tol = bits == 8 ? 1e-2 : 5e-2;
    printf("%s q%d: CUDA vs CPU logits: prompt %.2e, decode step %.2e (tol %.0e)\n", name, bits, p0.rel, p1.rel, tol);
    CHECK(p0.rel <= tol && p1.rel <= tol);
    mgl_ctx_free(cc);
    mgl_ctx_free(gc);
    mgl_model_free(c);
    mgl_model_free(g);
    mgl_prompt_clear(&pr);
    free(emb);
    free(lc);
    free(lg);
    g_free(out);
    g_free(src);
}

int main(void) {
    MglErr e = {0};
    if (mgl_cuda_device_count() <= 0 || mgl_cuda_probe(0, &e) != MGL_OK) {
        printf("no usable CUDA device (%s): skipped\n", e.msg[0] ? e.msg : "none found");
        return 77;
    }
    REQUIRE(mgl_blas_init(&e) == MGL_OK);
    REQUIRE(mgl_cuda_stream_new(0, &S, &e) == MGL_OK);
    /* K = 1001: a q4 last block of odd length (its padding nibble), a q8 tail, short last groups and rows of
     * bytes not a multiple of 16 (the unaligned loads) */
    const int64_t shapes[][2] = {{37, 48}, {64, 352}, {301, 1000}, {19, 1001}, {1024, 4096}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int bits = 8; bits >= 4; bits -= 4)
            for (int gi = 0; gi < 3; gi++) {
                const int group = gi == 0 ? 0 : gi == 1 ? 32 : 128;
                const int64_t Ts[] = {1, 3, 8, 17};
                for (int ti = 0; ti < 4; ti++) one(shapes[s][0], shapes[s][1], bits, group, Ts[ti]);
            }
    /* past one dequantized tile of the prefill path (32 Mi weights: 8192 rows at K = 4096): the second tile's
     * rows, offsets and scales, as a 7B model's lm_head and down projection take them */
    one(8200, 4096, 8, 128, 9);
    one(8200, 4096, 4, 32, 9);
    bandwidth(8);
    bandwidth(4);
    char* tmp = g_dir_make_tmp("mgl-cuda-quant-XXXXXX", NULL);
    REQUIRE(tmp != NULL);
    for (int bits = 8; bits >= 4; bits -= 4) {
        model("tiny-llama3", bits, tmp); /* q|k|v and gate|up fused on the device */
        model("tiny-phi3", bits, tmp);   /* fused in the files */
    }
    char* cmd = g_strdup_printf("rm -rf '%s'", tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    g_free(cmd);
    g_free(tmp);
    mgl_cuda_stream_free(S);
    TEST_DONE();
}
