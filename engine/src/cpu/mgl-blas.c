/* mgl-blas.c: OpenBLAS through dlopen.
 *
 * OpenBLAS picks its GEMM kernel once, when the library is initialised, from
 * CPUID. Under some hypervisors a current CPU is not recognised and it falls
 * back to its generic "Prescott" kernel, 7x slower than the AVX-512 one on the
 * same core (measured: 40 vs 295 GFLOP/s for a 577x4096x1024 SGEMM). Loading
 * the library ourselves lets us set OPENBLAS_CORETYPE from the CPU's own
 * feature flags first, unless the user already set it. Each call runs on the
 * calling thread (OPENBLAS_NUM_THREADS=1); the engine's pool spreads calls
 * over the cores, so no BLAS worker threads spin beside a pipeline. */
#include "mgl-blas.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*SgemmFn)(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*, int);
static SgemmFn p_sgemm;
static void (*p_set_threads)(int);
static char* (*p_corename)(void);
static char g_error[400];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static const char* pick_coretype(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512dq"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
    return NULL;
}

static void load(void) {
    const char* env = getenv("OPENBLAS_CORETYPE");
    const char* pick = pick_coretype();
    bool set_here = false;
    if ((!env || !*env) && pick && !getenv("MGL_BLAS_NO_CORETYPE")) {
        setenv("OPENBLAS_CORETYPE", pick, 1);
        set_here = true;
    }
    /* the engine threads BLAS calls itself: OpenBLAS runs each call on the caller's thread */
    bool threads_here = false;
    if (!getenv("OPENBLAS_NUM_THREADS")) {
        setenv("OPENBLAS_NUM_THREADS", "1", 1);
        threads_here = true;
    }
    static const char* const paths[] = {
#ifdef MGL_OPENBLAS_PATH
        MGL_OPENBLAS_PATH,
#endif
        "libopenblas.so.0", "libopenblas.so", NULL};
    void* h = NULL;
    for (int i = 0; paths[i] && !h; i++) h = dlopen(paths[i], RTLD_NOW | RTLD_LOCAL);
    /* both are read once at load; keep child processes unaffected */
    if (set_here) unsetenv("OPENBLAS_CORETYPE");
    if (threads_here) unsetenv("OPENBLAS_NUM_THREADS");
    if (!h) {
        snprintf(g_error, sizeof g_error, "CPU backend: cannot load OpenBLAS (libopenblas.so.0): %s", dlerror());
        return;
    }
    p_sgemm = (SgemmFn)dlsym(h, "cblas_sgemm");
    p_set_threads = (void (*)(int))dlsym(h, "openblas_set_num_threads");
    p_corename = (char* (*)(void))dlsym(h, "openblas_get_corename");
    if (!p_sgemm) snprintf(g_error, sizeof g_error, "CPU backend: OpenBLAS has no cblas_sgemm");
}

MglStatus mgl_blas_init(MglErr* err) {
    pthread_once(&g_once, load);
    if (!p_sgemm) return mgl_err(err, MGL_E_UNSUPPORTED, "%s", g_error);
    return MGL_OK;
}

void mgl_sgemm(int trans_b, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
               float beta, float* C, int ldc) {
    p_sgemm(MGL_ROW_MAJOR, MGL_NO_TRANS, trans_b ? MGL_TRANS : MGL_NO_TRANS, M, N, K, alpha, A, lda, B, ldb, beta, C,
            ldc);
}

void mgl_blas_set_threads(int n) {
    if (p_set_threads) p_set_threads(n);
}

const char* mgl_blas_corename(void) { return p_corename ? p_corename() : "(not loaded)"; }
