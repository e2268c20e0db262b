/* mgl-pool.c: fork-join thread pool with parking workers (see mgl-pool.h).
 *
 * Work is cut into a few chunks per thread and taken from an atomic counter,
 * so the calling thread simply does everything itself when the other cores
 * are busy (a pipeline, another process): nobody waits for a worker that has
 * not been scheduled. A worker joins a job only under the pool mutex, and the
 * caller withdraws the job under that mutex before waiting for the workers
 * that did join, so no worker can touch a finished job. */
#include "mgl-pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

#define MAX_THREADS 256
#define SPIN 2000 /* pauses before a worker parks: a few microseconds */

typedef struct {
    MglRangeFn fn;
    void* ctx;
    int64_t n, chunk, nchunks;
    atomic_int_fast64_t next; /* next chunk to take */
    atomic_int active;        /* workers inside the job (changed with g_mu) */
    bool waiting;             /* the caller sleeps on g_done (with g_mu) */
} Job;

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static atomic_int g_size;  /* threads started, including the caller */
static atomic_int g_limit; /* of those, how many take part in a job */
static int g_want = 0;     /* with g_grow: mgl_pool_set_size's */
static pthread_mutex_t g_grow = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t g_run = PTHREAD_MUTEX_INITIALIZER; /* one job at a time */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_wake = PTHREAD_COND_INITIALIZER;
static pthread_cond_t g_done = PTHREAD_COND_INITIALIZER;
static Job* g_job; /* with g_mu */
static atomic_uint_fast64_t g_seq;

static void run_chunks(Job* j) {
    for (;;) {
        int64_t c = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (c >= j->nchunks) return;
        int64_t b = c * j->chunk, e = b + j->chunk;
        if (e > j->n) e = j->n;
        j->fn(j->ctx, b, e);
    }
}

static void* worker(void* arg) {
    uint64_t seen = 0;
    const int index = (int)(intptr_t)arg; /* 1 .. g_size - 1 */
    for (;;) {
        int spins = 0;
        while (atomic_load_explicit(&g_seq, memory_order_acquire) == seen && spins < SPIN) {
            CPU_RELAX();
            spins++;
        }
        pthread_mutex_lock(&g_mu);
        while (atomic_load_explicit(&g_seq, memory_order_acquire) == seen) pthread_cond_wait(&g_wake, &g_mu);
        seen = atomic_load_explicit(&g_seq, memory_order_acquire);
        Job* j = g_job;
        /* beyond the size set since the pool started: sit the job out */
        if (index >= atomic_load_explicit(&g_limit, memory_order_relaxed)) j = NULL;
        if (j) atomic_fetch_add_explicit(&j->active, 1, memory_order_relaxed);
        pthread_mutex_unlock(&g_mu);
        if (!j) continue;
        run_chunks(j);
        pthread_mutex_lock(&g_mu);
        /* the caller may return the moment active reaches 0 (it spins on it
         * without the lock); read `waiting` first: once the count is 0 the
         * job's memory is no longer ours */
        const bool wake = j->waiting;
        if (atomic_fetch_sub_explicit(&j->active, 1, memory_order_release) == 1 && wake) pthread_cond_signal(&g_done);
        pthread_mutex_unlock(&g_mu);
    }
    return NULL;
}

/* Starts workers until n threads (the caller included) exist (g_grow held). */
static void grow_to(int n) {
    int have = atomic_load(&g_size);
    for (int i = have; i < n; i++) {
        pthread_t t;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        int ok = pthread_create(&t, &a, worker, (void*)(intptr_t)i) == 0;
        pthread_attr_destroy(&a);
        if (!ok) break;
        atomic_store(&g_size, i + 1);
    }
}

/* The thread count asked for: mgl_pool_set_size's, else MGL_NUM_THREADS,
 * else one per online CPU (g_grow held). */
static int wanted(void) {
    int n = g_want > 0 ? g_want : (int)sysconf(_SC_NPROCESSORS_ONLN);
    const char* env = getenv("MGL_NUM_THREADS");
    if (g_want <= 0 && env && atoi(env) > 0) n = atoi(env);
    if (n < 1) n = 1;
    if (n > MAX_THREADS) n = MAX_THREADS;
    return n;
}

static void init(void) {
    pthread_mutex_lock(&g_grow);
    atomic_store(&g_size, 1);
    const int n = wanted();
    grow_to(n);
    atomic_store(&g_limit, n);
    pthread_mutex_unlock(&g_grow);
}

int mgl_pool_size(void) {
    pthread_once(&g_once, init);
    const int size = atomic_load(&g_size), limit = atomic_load(&g_limit);
    return limit < size ? limit : size;
}

void mgl_pool_set_size(int n) {
    pthread_once(&g_once, init);
    pthread_mutex_lock(&g_grow);
    g_want = n;
    n = wanted();
    grow_to(n); /* more threads than started: start them */
    atomic_store(&g_limit, n);
    pthread_mutex_unlock(&g_grow);
}

void mgl_parallel_for(int64_t n, int64_t grain, MglRangeFn fn, void* ctx) {
    if (n <= 0) return;
    pthread_once(&g_once, init);
    if (grain < 1) grain = 1;
    int64_t max_chunks = n / grain;
    const int size = mgl_pool_size();
    if (size <= 1 || max_chunks <= 1 || pthread_mutex_trylock(&g_run) != 0) {
        fn(ctx, 0, n);
        return;
    }
    /* a few chunks per thread: late or busy threads leave theirs to others */
    int64_t nchunks = (int64_t)size * 4;
    if (nchunks > max_chunks) nchunks = max_chunks;
    Job j = {.fn = fn, .ctx = ctx, .n = n};
    j.chunk = (n + nchunks - 1) / nchunks;
    j.nchunks = (n + j.chunk - 1) / j.chunk;
    atomic_init(&j.next, 0);
    atomic_init(&j.active, 0);
    j.waiting = false;
    pthread_mutex_lock(&g_mu);
    g_job = &j;
    atomic_fetch_add_explicit(&g_seq, 1, memory_order_release);
    pthread_cond_broadcast(&g_wake);
    pthread_mutex_unlock(&g_mu);
    run_chunks(&j);
    pthread_mutex_lock(&g_mu);
    g_job = NULL; /* no worker can join from here on */
    pthread_mutex_unlock(&g_mu);
    /* the workers' last chunks end about when ours do: spin a little
     * before sleeping (a futex round trip costs more than a decode op) */
    for (int spins = 0; atomic_load_explicit(&j.active, memory_order_acquire) > 0 && spins < SPIN; spins++) CPU_RELAX();
    if (atomic_load_explicit(&j.active, memory_order_acquire) > 0) {
        pthread_mutex_lock(&g_mu);
        j.waiting = true;
        while (atomic_load_explicit(&j.active, memory_order_acquire) > 0) pthread_cond_wait(&g_done, &g_mu);
        pthread_mutex_unlock(&g_mu);
    }
    pthread_mutex_unlock(&g_run);
}
