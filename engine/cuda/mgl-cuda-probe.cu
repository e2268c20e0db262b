/* mgl-cuda-probe.cu: is there a usable GPU? (device count, a context, a name) */
#include <cuda_runtime.h>
#include <stdio.h>

#include "mgl-backend-module.h" /* mgl_nvidia_driver_present */
#include "mgl-cuda.h"

extern "C" int mgl_cuda_device_count(void) {
    int n = 0;
    if (!mgl_nvidia_driver_present()) return 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); /* clear the sticky "no driver" state */
        return 0;
    }
    return n;
}

extern "C" MglStatus mgl_cuda_probe(int gpu_id, MglErr* err) {
    int n = 0;
    if (!mgl_nvidia_driver_present()) return mgl_err(err, MGL_E_DEVICE, MGL_NO_NVIDIA_DRIVER);
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return mgl_err(err, MGL_E_DEVICE, "CUDA: no usable GPU (%s%s)",
                       e == cudaErrorInsufficientDriver ? "no NVIDIA driver, or one older than this build's runtime: "
                                                        : "",
                       cudaGetErrorString(e));
    }
    if (n <= 0) return mgl_err(err, MGL_E_DEVICE, "CUDA: no GPU found");
    if (gpu_id < 0 || gpu_id >= n)
        return mgl_err(err, MGL_E_DEVICE, "CUDA: gpu_id %d out of range (%d device%s)", gpu_id, n, n == 1 ? "" : "s");
    cudaDeviceProp p;
    e = cudaGetDeviceProperties(&p, gpu_id);
    if (e == cudaSuccess && p.major < 8)
        return mgl_err(err, MGL_E_DEVICE, "CUDA: device %d (%s) is sm_%d%d; this build needs sm_80 or newer", gpu_id,
                       p.name, p.major, p.minor);
    if (e == cudaSuccess) e = cudaSetDevice(gpu_id);
    if (e == cudaSuccess) e = cudaFree(0); /* makes the primary context */
    if (e != cudaSuccess) {
        cudaGetLastError();
        return mgl_err(err, MGL_E_DEVICE, "CUDA: device %d unusable (%s)", gpu_id, cudaGetErrorString(e));
    }
    return MGL_OK;
}

extern "C" void mgl_cuda_device_name(int gpu_id, char* buf, size_t n) {
    if (!n) return;
    buf[0] = 0;
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, gpu_id) != cudaSuccess) {
        cudaGetLastError();
        return;
    }
    snprintf(buf, n, "%s (sm_%d%d, %.1f GiB)", p.name, p.major, p.minor, (double)p.totalGlobalMem / (1u << 30));
}
