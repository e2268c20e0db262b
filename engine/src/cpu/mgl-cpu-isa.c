/* mgl-cpu-isa.c: the CPU kernels' level, from CPUID and MGL_CPU_ISA. */
#include "mgl-cpu-isa.h"

#include "mgl-internal.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static MglCpuLevel g_level;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void detect(void) {
    MglCpuLevel l = MGL_CPU_SCALAR;
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && mgl_cpu_has_f16c()) {
        l = MGL_CPU_AVX2;
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")) {
            l = MGL_CPU_AVX512;
            if (__builtin_cpu_supports("avx512bf16")) l = MGL_CPU_AVX512_BF16;
        }
    }
#endif
    const char* cap = getenv("MGL_CPU_ISA");
    if (cap && *cap) {
        MglCpuLevel c = !strcmp(cap, "scalar")   ? MGL_CPU_SCALAR
                        : !strcmp(cap, "avx2")   ? MGL_CPU_AVX2
                        : !strcmp(cap, "avx512") ? MGL_CPU_AVX512
                                                 : MGL_CPU_AVX512_BF16;
        if (c < l) l = c;
    }
    g_level = l;
}

MglCpuLevel mgl_cpu_level(void) {
    pthread_once(&g_once, detect);
    return g_level;
}

const char* mgl_cpu_level_name(MglCpuLevel l) {
    static const char* const names[] = {"scalar", "avx2", "avx512", "avx512-bf16"};
    return l >= 0 && l <= MGL_CPU_AVX512_BF16 ? names[l] : "?";
}
