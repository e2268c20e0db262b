/* membw.c: the memory read bandwidth a few threads reach (the decode
 * figures' limit): each thread sums its share of a 512 MiB buffer with
 * 64-byte vector loads, five passes; prints GB/s. anchors.sh builds and runs
 * it before and after the measurements.
 * Usage: membw [THREADS] */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef float v16 __attribute__((vector_size(64)));

static size_t g_n;
static char* g_buf;
static int g_threads;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void* run(void* arg) {
    const long id = (long)arg;
    const size_t per = g_n / (size_t)g_threads;
    const v16* p = (const v16*)(g_buf + (size_t)id * per);
    v16 s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
    for (int rep = 0; rep < 5; rep++)
        for (size_t i = 0; i + 4 <= per / sizeof(v16); i += 4) {
            s0 += p[i];
            s1 += p[i + 1];
            s2 += p[i + 2];
            s3 += p[i + 3];
        }
    v16 s = s0 + s1 + s2 + s3;
    return (void*)(long)(s[0] > 1e30f);
}

int main(int argc, char** argv) {
    g_threads = argc > 1 ? atoi(argv[1]) : 2;
    if (g_threads < 1 || g_threads > 64) return 2;
    g_n = (size_t)512 << 20;
    g_buf = aligned_alloc(64, g_n);
    if (!g_buf) return 1;
    memset(g_buf, 1, g_n);
    pthread_t t[64];
    double best = 0;
    for (int round = 0; round < 3; round++) {
        const double t0 = now();
        for (long i = 0; i < g_threads; i++) pthread_create(&t[i], NULL, run, (void*)i);
        for (int i = 0; i < g_threads; i++) pthread_join(t[i], NULL);
        const double gbs = 5.0 * (double)g_n / (now() - t0) / 1e9;
        if (gbs > best) best = gbs;
    }
    printf("%.1f\n", best);
    free(g_buf);
    return 0;
}
