/* mgl-cpu-isa.h: the instruction sets the CPU kernels may use, read once from
 * CPUID. MGL_CPU_ISA=scalar|avx2|avx512|avx512-bf16 caps the level (the tests
 * run every kernel through each level, so a machine without AVX-512, its BF16
 * extension or AMX runs the same checks through the fallback). */
#ifndef MGL_CPU_ISA_H
#define MGL_CPU_ISA_H

typedef enum {
    MGL_CPU_SCALAR = 0,      /* portable C */
    MGL_CPU_AVX2 = 1,        /* AVX2 + FMA + F16C */
    MGL_CPU_AVX512 = 2,      /* AVX-512 F/BW/VL/DQ */
    MGL_CPU_AVX512_BF16 = 3, /* and AVX512_BF16 (vdpbf16ps) */
    MGL_CPU_AMX_BF16 = 4     /* and AMX-TILE + AMX-BF16, enabled by the kernel for this process */
} MglCpuLevel;

MglCpuLevel mgl_cpu_level(void);
const char* mgl_cpu_level_name(MglCpuLevel l);

#endif
