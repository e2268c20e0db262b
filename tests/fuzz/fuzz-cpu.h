/* fuzz-cpu.h: force-included (-include) into the engine sources of the fuzz
 * build only. clang < 15 rejects __builtin_cpu_supports("f16c") ("invalid cpu
 * feature string for builtin"), which engine/src/mgl-core.c and
 * engine/src/cpu/ops-cpu.c use; this routes the builtin through CPUID so the
 * engine compiles unchanged. A no-op with newer clang and with gcc. */
#ifndef MGL_FUZZ_CPU_H
#define MGL_FUZZ_CPU_H
#if defined(__clang__) && __clang_major__ < 15 && (defined(__x86_64__) || defined(__i386__))
#include <cpuid.h>
#include <string.h>

static inline int mgl_fuzz_cpu_supports_(const char* f) {
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (strcmp(f, "f16c") == 0)
        return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C) && __builtin_cpu_supports("avx");
    if (strcmp(f, "avx2") == 0) return __builtin_cpu_supports("avx2");
    if (strcmp(f, "fma") == 0) return __builtin_cpu_supports("fma");
    if (strcmp(f, "avx") == 0) return __builtin_cpu_supports("avx");
    if (strcmp(f, "avx512f") == 0) return __builtin_cpu_supports("avx512f");
    if (strcmp(f, "avx512bw") == 0) return __builtin_cpu_supports("avx512bw");
    if (strcmp(f, "avx512vl") == 0) return __builtin_cpu_supports("avx512vl");
    if (strcmp(f, "avx512dq") == 0) return __builtin_cpu_supports("avx512dq");
    return 0; /* unknown to this shim: take the portable path */
}
#define __builtin_cpu_supports(f) mgl_fuzz_cpu_supports_(f)
#endif
#endif
