/* test_pool: the CPU backend's thread pool (engine/src/cpu/mgl-pool.c).
 * mgl_pool_set_size takes effect also after the pool has started (an
 * element's `threads`, or `bench --threads`, come after other work used the
 * pool): at 1 every range runs on the calling thread; a larger size than
 * was started starts the threads; every index of a parallel_for is covered
 * exactly once whatever the size. */
#include "mgl-test.h"

#include "cpu/mgl-pool.h"

#include <pthread.h>
#include <stdatomic.h>

#define N 20000

typedef struct {
    pthread_t caller;
    atomic_int hits[N];
    atomic_int off_caller; /* ranges run on another thread */
} Ctx;

static void part(void* p, int64_t b, int64_t e) {
    Ctx* c = p;
    if (!pthread_equal(pthread_self(), c->caller)) atomic_fetch_add(&c->off_caller, 1);
    for (int64_t i = b; i < e; i++) atomic_fetch_add(&c->hits[i], 1);
    /* long enough per range for a parked worker to wake and take some */
    volatile double x = 0;
    for (int64_t i = b; i < e; i++) x += (double)i * 1e-9;
}

static int run(Ctx* c) {
    for (int i = 0; i < N; i++) atomic_store(&c->hits[i], 0);
    atomic_store(&c->off_caller, 0);
    c->caller = pthread_self();
    mgl_parallel_for(N, 64, part, c);
    int bad = 0;
    for (int i = 0; i < N; i++) bad += atomic_load(&c->hits[i]) != 1;
    return bad;
}

int main(void) {
    static Ctx c;
    /* the pool starts at its default size */
    CHECK(run(&c) == 0);
    CHECK(mgl_pool_size() >= 1);

    /* one thread: everything on the caller, every time */
    mgl_pool_set_size(1);
    CHECK(mgl_pool_size() == 1);
    for (int r = 0; r < 20; r++) {
        CHECK(run(&c) == 0);
        CHECK_MSG(atomic_load(&c.off_caller) == 0, "%d ranges ran off the calling thread at size 1",
                  atomic_load(&c.off_caller));
    }

    /* more threads than started: started, and the work still covered once */
    mgl_pool_set_size(3);
    CHECK(mgl_pool_size() == 3);
    int off = 0;
    for (int r = 0; r < 50; r++) {
        CHECK(run(&c) == 0);
        off += atomic_load(&c.off_caller);
    }
    printf("size 3: %d ranges over 50 runs taken by the workers\n", off);

    /* back to two */
    mgl_pool_set_size(2);
    CHECK(mgl_pool_size() == 2);
    CHECK(run(&c) == 0);
    TEST_DONE();
}
