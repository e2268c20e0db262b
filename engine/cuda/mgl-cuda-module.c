/* mgl-cuda-module.c: the entry point of libmgllava-cuda.so, the CUDA backend
 * as a module (mgl-backend-module.h), and the engine helpers its code calls,
 * each handed on to the engine's own through the host table. Compiled into
 * the module only: the GPU tests link the CUDA objects with the engine itself. */
#include "mgl-backend-module.h"
#include "mgl-internal.h"
#include "mgl-preprocess.h"
#include "mgl-quant.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

extern const MglBackend mgl_backend_cuda; /* mgl-cuda-backend.cu */

static const MglBackendHost* host;

MglStatus mgl_err(MglErr* err, MglStatus code, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    host->verr(err, code, fmt, ap);
    va_end(ap);
    return code;
}
bool mgl_nvidia_driver_present(void) { return host->nvidia_driver_present(); }
size_t mgl_dtype_size(MglDType t) { return host->dtype_size(t); }
void mgl_convert_floats(const void* src, MglDType st, void* dst, MglDType dt, size_t n) {
    host->convert_floats(src, st, dst, dt, n);
}
void mgl_weight_walk_bound(const MglModelWeights* w, MglWeightFunc fn, void* user) {
    host->weight_walk_bound(w, fn, user);
}
void* mgl_weight_field(MglModelWeights* w, const MglWeightItem* it) { return host->weight_field(w, it); }
double mgl_rng_unit(uint64_t* state) { return host->rng_unit(state); }
int64_t mgl_quant_row_bytes(int bits, int64_t K) { return host->quant_row_bytes(bits, K); }
int64_t mgl_quant_n_groups(int64_t K, int group) { return host->quant_n_groups(K, group); }
MglStatus mgl_image_check(int w, int h, int stride, MglErr* err) { return host->image_check(w, h, stride, err); }
void mgl_pad_geometry(int w, int h, int* S, int* ox, int* oy, uint8_t colour[3]) {
    host->pad_geometry(w, h, S, ox, oy, colour);
}
int mgl_bicubic_coeffs(int in_size, int out_size, int** bounds, int32_t** kk) {
    return host->bicubic_coeffs(in_size, out_size, bounds, kk);
}
const float (*mgl_normalize_lut(void))[256] { return host->normalize_lut(); }

__attribute__((visibility("default"))) const MglBackend*
mgl_backend_module_open(const MglBackendHost* h, const char* abi, char* why, size_t why_size) {
    if (!h || !abi || strcmp(abi, MGL_BACKEND_ABI)) {
        snprintf(why, why_size, "the module is from another build (its ABI %s, the engine's %s)", MGL_BACKEND_ABI,
                 abi ? abi : "?");
        return NULL;
    }
    host = h;
    return &mgl_backend_cuda;
}
