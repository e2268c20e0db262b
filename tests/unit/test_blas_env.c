/* test_blas_env: loading OpenBLAS (mgl_blas_init) sets its kernel and thread
 * count for the load only, without changing the process's environment in a
 * way another thread could see half done: another thread walks the
 * environment and calls getenv all through the load (the race that had
 * crashed a pipeline when setenv moved the array under a reader), and after
 * it the environment array is the same array with the same strings. */
#include "cpu/mgl-blas.h"
#include "mgl-test.h"

#include <pthread.h>
#include <stdatomic.h>

extern char** environ;

static atomic_int stop;
static atomic_long reads;

static void* reader(void* unused) {
    (void)unused;
    while (!atomic_load(&stop)) {
        size_t len = 0;
        for (char** e = environ; e && *e; e++) len += strlen(*e); /* every string of whichever array is there */
        if (getenv("MGL_TEST_NO_SUCH_VARIABLE") || len == 0) atomic_fetch_add(&reads, 1000000);
        atomic_fetch_add(&reads, 1);
    }
    return NULL;
}

int main(void) {
    /* the case that changes the environment for the load: neither variable set by the user */
    unsetenv("OPENBLAS_CORETYPE");
    unsetenv("OPENBLAS_NUM_THREADS");
    unsetenv("MGL_BLAS_NO_CORETYPE");
    char** const before = environ;
    size_t n = 0;
    while (before[n]) n++;
    char** copy = malloc(sizeof(char*) * (n + 1));
    for (size_t i = 0; i < n; i++) copy[i] = strdup(before[i]);
    copy[n] = NULL;

    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, reader, NULL) == 0);
    while (atomic_load(&reads) < 100) { /* the reader is running before the load starts */
    }
    MglErr err = {0};
    MglStatus st = mgl_blas_init(&err);
    atomic_store(&stop, 1);
    pthread_join(th, NULL);
    if (st != MGL_OK) {
        printf("skip: %s\n", err.msg);
        return 77;
    }
    CHECK_MSG(atomic_load(&reads) < 1000000, "the reader saw an empty environment or a variable that is not set");
    CHECK_MSG(environ == before, "the environment array was replaced");
    size_t m = 0;
    while (environ[m]) m++;
    CHECK_MSG(m == n, "%zu variables before the load, %zu after", n, m);
    for (size_t i = 0; i < n && i < m; i++) CHECK_MSG(!strcmp(environ[i], copy[i]), "variable %zu changed", i);
    CHECK(getenv("OPENBLAS_CORETYPE") == NULL);
    CHECK(getenv("OPENBLAS_NUM_THREADS") == NULL);
    /* ...and OpenBLAS saw both settings while it initialised */
    CHECK_MSG(mgl_blas_threads() == 1, "OpenBLAS runs %d threads, not 1 (OPENBLAS_NUM_THREADS=1 unseen)",
              mgl_blas_threads());
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    const char* core = mgl_blas_corename();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512dq"))
        CHECK_MSG(!strcmp(core, "SkylakeX"), "OpenBLAS core %s on an AVX-512 CPU (OPENBLAS_CORETYPE unseen)", core);
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        CHECK_MSG(!strcmp(core, "Haswell"), "OpenBLAS core %s on an AVX2 CPU (OPENBLAS_CORETYPE unseen)", core);
#endif
    for (size_t i = 0; i < n; i++) free(copy[i]);
    free(copy);
    TEST_DONE();
}
