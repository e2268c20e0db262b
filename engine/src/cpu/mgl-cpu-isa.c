/* mgl-cpu-isa.c: the CPU kernels' level, from CPUID and MGL_CPU_ISA. */
#include "mgl-cpu-isa.h"

#include "mgl-internal.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

static MglCpuLevel g_level;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

#if defined(__x86_64__) && defined(__GNUC__)
/* AMX tiles usable: the CPU has AMX-TILE and AMX-BF16 with at least the
 * palette-1 geometry the kernels configure (8 tiles of 16 rows x 64 bytes),
 * the OS saves the tile state (XCR0 bits 17 and 18), and Linux grants this
 * process the tile data (arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA), which
 * holds for every thread of the process; kernels before 5.16 refuse it). */
static bool amx_usable(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d & (1u << 24)) || !(d & (1u << 22))) return false;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return false; /* OSXSAVE */
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & (3u << 17)) != (3u << 17)) return false;
    if (!__get_cpuid_count(0x1d, 1, &a, &b, &c, &d)) return false;
    if ((b & 0xffff) < 64 || (b >> 16) < 8 || (c & 0xffff) < 16) return false;
    enum { ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
}
#endif

static void detect(void) {
    /* the cap first: below amx-bf16 the tile state is never requested */
    MglCpuLevel cap = MGL_CPU_AMX_BF16;
    const char* env = getenv("MGL_CPU_ISA");
    if (env && *env)
        cap = !strcmp(env, "scalar")        ? MGL_CPU_SCALAR
              : !strcmp(env, "avx2")        ? MGL_CPU_AVX2
              : !strcmp(env, "avx512")      ? MGL_CPU_AVX512
              : !strcmp(env, "avx512-bf16") ? MGL_CPU_AVX512_BF16
                                            : MGL_CPU_AMX_BF16;
    MglCpuLevel l = MGL_CPU_SCALAR;
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && mgl_cpu_has_f16c()) {
        l = MGL_CPU_AVX2;
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")) {
            l = MGL_CPU_AVX512;
            if (__builtin_cpu_supports("avx512bf16")) {
                l = MGL_CPU_AVX512_BF16;
                if (cap >= MGL_CPU_AMX_BF16 && amx_usable()) l = MGL_CPU_AMX_BF16;
            }
        }
    }
#endif
    g_level = l < cap ? l : cap;
}

MglCpuLevel mgl_cpu_level(void) {
    pthread_once(&g_once, detect);
    return g_level;
}

const char* mgl_cpu_level_name(MglCpuLevel l) {
    static const char* const names[] = {"scalar", "avx2", "avx512", "avx512-bf16", "amx-bf16"};
    return l >= 0 && l <= MGL_CPU_AMX_BF16 ? names[l] : "?";
}
