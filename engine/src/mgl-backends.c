/* mgl-backends.c: the registry of backends compiled into this build, the
 * only place in the core that knows which exist. */
#include "mgl-backend.h"

#include "cpu/mgl-cpu.h"

#include <string.h>

#ifdef MGL_HAVE_CUDA
extern const MglBackend mgl_backend_cuda; /* engine/cuda/mgl-cuda-backend.cu */
#endif

static const MglBackend* const backends[] = {
    &mgl_backend_cpu,
#ifdef MGL_HAVE_CUDA
    &mgl_backend_cuda,
#endif
};

static const char* const names[] = {
    "cpu",
#ifdef MGL_HAVE_CUDA
    "cuda",
#endif
    NULL,
};

const MglBackend* mgl_backend_get(const char* name) {
    for (size_t i = 0; name && i < sizeof backends / sizeof backends[0]; i++)
        if (!strcmp(backends[i]->name, name)) return backends[i];
    return NULL;
}

const char* const* mgl_backend_names(void) { return names; }
