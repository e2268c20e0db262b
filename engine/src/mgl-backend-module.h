/* mgl-backend-module.h: a device backend built as its own shared module
 * (libmgllava-cuda.so) and loaded by the registry (mgl-backends.c) only when
 * the machine has the device's driver. The engine links none of the device's
 * libraries: a CPU-only process never maps cuBLAS (over 200 MB of resident
 * pages at load) and GStreamer's plugin scanner loads the plugin quickly.
 *
 * The module has no undefined engine symbols: the few engine helpers its code
 * calls come through MglBackendHost, handed over when the registry opens it.
 * The ABI string (the version and a digest of the headers the two share,
 * both set by meson) must match, so a module from another build is refused
 * with a clear reason instead of running with other struct layouts. */
#ifndef MGL_BACKEND_MODULE_H
#define MGL_BACKEND_MODULE_H

#include "mgl-backend.h"
#include "mgl-weight-table.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Whether an NVIDIA driver can be there at all, without loading it (the
 * device nodes or the driver's /proc entry; MGL_CUDA_PROBE=1 says yes):
 * the registry asks before it opens the module, the module's probe before it
 * starts the CUDA runtime (which loads libcuda: slow, and noisy under
 * valgrind). mgl-backends.c. */
bool mgl_nvidia_driver_present(void);
#define MGL_NO_NVIDIA_DRIVER "CUDA: no usable GPU (no NVIDIA driver: /dev/nvidiactl and /dev/nvidia0 are missing)"

typedef struct {
    MglStatus (*verr)(MglErr* err, MglStatus code, const char* fmt, va_list ap);
    bool (*nvidia_driver_present)(void);
    size_t (*dtype_size)(MglDType t);
    void (*convert_floats)(const void* src, MglDType st, void* dst, MglDType dt, size_t n);
    void (*weight_walk_bound)(const MglModelWeights* w, MglWeightFunc fn, void* user);
    void* (*weight_field)(MglModelWeights* w, const MglWeightItem* it);
    double (*rng_unit)(uint64_t* state);
    int64_t (*quant_row_bytes)(int bits, int64_t K);
    int64_t (*quant_n_groups)(int64_t K, int group);
    /* preprocessing's tables (mgl-preprocess.h), for views made on the device */
    MglStatus (*image_check)(int w, int h, int stride, MglErr* err);
    void (*pad_geometry)(int w, int h, int* S, int* ox, int* oy, uint8_t colour[3]);
    int (*bicubic_coeffs)(int in_size, int out_size, int** bounds, int32_t** kk);
    const float (*(*normalize_lut)(void))[256];
} MglBackendHost;

/* The module's one exported function: its backend table, or NULL with the
 * reason in why (the ABI differs). */
#define MGL_BACKEND_MODULE_OPEN "mgl_backend_module_open"
typedef const MglBackend* (*MglBackendModuleOpen)(const MglBackendHost* host, const char* abi, char* why,
                                                  size_t why_size);

#ifdef __cplusplus
}
#endif
#endif
