/* gpu-parity.h: how the CUDA parity tests compare a device result with the
 * CPU's: max |got - ref| relative to max(1e-3, max |ref|); a NaN counts as
 * an infinite difference. */
#ifndef GPU_PARITY_H
#define GPU_PARITY_H
#include <math.h>
#include <stddef.h>

typedef struct {
    double rel, max_diff, max_ref;
    size_t at; /* where the largest difference is */
} ParityDiff;

static inline ParityDiff parity_diff(const float* ref, const float* got, size_t n) {
    ParityDiff r = {0, 0, 1e-3, 0};
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)ref[i] - got[i]);
        if (!(d <= r.max_diff)) {
            r.max_diff = isnan(d) ? INFINITY : d;
            r.at = i;
        }
        if (fabs(ref[i]) > r.max_ref) r.max_ref = fabs(ref[i]);
    }
    r.rel = r.max_diff / r.max_ref;
    return r;
}
#endif
