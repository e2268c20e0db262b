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
static int (*p_get_threads)(void);
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

/* OpenBLAS reads OPENBLAS_CORETYPE and OPENBLAS_NUM_THREADS once, as it
 * initialises inside dlopen. Setting them with setenv (and unsetting them
 * after) races with every other thread that reads the environment: setenv can
 * move the array of strings that a getenv elsewhere is walking, and frees the
 * old one. A GStreamer pipeline crashed that way (jpegdec's getenv in a
 * streaming thread while the model loaded on another). The library is loaded
 * under an environment array of our own instead: a copy of the process's with
 * the two settings added, put in place and taken away by one pointer store
 * each. Neither array is changed or freed while it may be read, so a getenv
 * anywhere sees one or the other, and the process's environment (children
 * included) is the same after as before. */
extern char** environ;
static char** g_load_env; /* the loading environment; kept, as a reader may still hold it */

static void load(void) {
    const char* env = getenv("OPENBLAS_CORETYPE");
    const char* pick = pick_coretype();
    static char coretype[64], threads[] = "OPENBLAS_NUM_THREADS=1";
    const char* add[2];
    int n_add = 0;
    if ((!env || !*env) && pick && !getenv("MGL_BLAS_NO_CORETYPE")) {
        snprintf(coretype, sizeof coretype, "OPENBLAS_CORETYPE=%s", pick);
        add[n_add++] = coretype;
    }
    /* the engine threads BLAS calls itself: OpenBLAS runs each call on the caller's thread */
    if (!getenv("OPENBLAS_NUM_THREADS")) add[n_add++] = threads;
    char** const old = __atomic_load_n(&environ, __ATOMIC_ACQUIRE);
    if (n_add) {
        size_t n = 0;
        while (old && old[n]) n++;
        g_load_env = malloc(sizeof(char*) * (n + (size_t)n_add + 1));
        if (g_load_env) {
            for (size_t i = 0; i < n; i++) g_load_env[i] = old[i];
            for (int i = 0; i < n_add; i++) g_load_env[n + (size_t)i] = (char*)add[i];
            g_load_env[n + (size_t)n_add] = NULL;
            __atomic_store_n(&environ, g_load_env, __ATOMIC_RELEASE);
        }
    }
    static const char* const paths[] = {
#ifdef MGL_OPENBLAS_PATH
        MGL_OPENBLAS_PATH,
#endif
        "libopenblas.so.0", "libopenblas.so", NULL};
    void* h = NULL;
    for (int i = 0; paths[i] && !h; i++) h = dlopen(paths[i], RTLD_NOW | RTLD_LOCAL);
    if (g_load_env) { /* the process's own array back, unless someone replaced ours meanwhile (setenv) */
        char** mine = g_load_env;
        __atomic_compare_exchange_n(&environ, &mine, old, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
    }
    if (!h) {
        snprintf(g_error, sizeof g_error, "CPU backend: cannot load OpenBLAS (libopenblas.so.0): %s", dlerror());
        return;
    }
    p_sgemm = (SgemmFn)dlsym(h, "cblas_sgemm");
    p_set_threads = (void (*)(int))dlsym(h, "openblas_set_num_threads");
    p_corename = (char* (*)(void))dlsym(h, "openblas_get_corename");
    p_get_threads = (int (*)(void))dlsym(h, "openblas_get_num_threads");
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

int mgl_blas_threads(void) { return p_get_threads ? p_get_threads() : 0; }
