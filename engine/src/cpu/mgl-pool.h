/* mgl-pool.h: the CPU backend's thread pool.
 *
 * One process-wide pool of worker threads that park on a condition variable
 * after a short spin, so idle engines cost nothing and never fight a
 * GStreamer pipeline's own threads for the cores (an OpenMP runtime busy-waits
 * for a long time by default, and cannot be told otherwise after it loads). */
#ifndef MGL_POOL_H
#define MGL_POOL_H

#include <stdint.h>

typedef void (*MglRangeFn)(void* ctx, int64_t begin, int64_t end);

/* Run fn over [0, n) split into contiguous ranges, one per thread, each at
 * least `grain` long (fewer threads for small n). Returns when all are done.
 * When the pool is busy (another engine in another thread), runs inline. */
void mgl_parallel_for(int64_t n, int64_t grain, MglRangeFn fn, void* ctx);
int mgl_pool_size(void);
/* Threads that take part in a job, the caller included: n, or (0) the
 * MGL_NUM_THREADS environment variable, else one per online CPU. Takes
 * effect at once, also after the pool has started (threads beyond n sit
 * jobs out; more than were started are started). Process-wide. */
void mgl_pool_set_size(int n);

#endif
