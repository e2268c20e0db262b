/* mgl-cuda-probe.cu: CUDA runtime presence check (the CUDA backend grows here). */
#include <cuda_runtime.h>

extern "C" __attribute__((visibility("default"))) int mgl_cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) return 0;
    return n;
}
