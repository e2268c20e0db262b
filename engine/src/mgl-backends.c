/* mgl-backends.c: the registry of backends, the only place in the core that
 * knows which exist. The CPU backend is part of the engine. The CUDA backend
 * is a module (libmgllava-cuda.so, mgl-backend-module.h) opened at the first
 * request for it, and only where an NVIDIA driver is present: until then,
 * and on machines without one, the process maps none of the CUDA libraries.
 * Where it cannot be opened, "cuda" is a stand-in whose probe gives the
 * reason, so callers (which probe before they use a backend) report it as
 * they report an unusable GPU. */
#define _GNU_SOURCE /* dladdr */
#include "mgl-backend.h"

#include "cpu/mgl-cpu.h"
#include "mgl-backend-module.h"
#include "mgl-internal.h"
#include "mgl-preprocess.h"
#include "mgl-quant.h"

#include <stdio.h>
#include <string.h>

#ifdef MGL_HAVE_CUDA
#include <dlfcn.h>
#include <glib.h>
#include <unistd.h>

/* Linked into the GPU tests only, with the CUDA objects: used as it is. */
extern const MglBackend mgl_backend_cuda __attribute__((weak));

static MglErr cuda_why;  /* why the module is not there */
static int cuda_devices; /* the stand-in's device_count: 1 when a driver is there */
static const MglBackend* cuda_loaded;

static MglStatus cuda_stub_probe(int gpu_id, MglErr* err) {
    (void)gpu_id;
    return mgl_err(err, cuda_why.code, "%s", cuda_why.msg);
}
static int cuda_stub_count(void) { return cuda_devices; }
static const MglBackend cuda_stub = {.name = "cuda", .probe = cuda_stub_probe, .device_count = cuda_stub_count};

bool mgl_nvidia_driver_present(void) {
    const char* force = getenv("MGL_CUDA_PROBE");
    if (force && *force == '1') return true;
    return access("/dev/nvidiactl", F_OK) == 0 || access("/dev/nvidia0", F_OK) == 0 ||
           access("/proc/driver/nvidia/version", F_OK) == 0 || access("/dev/dxg", F_OK) == 0;
}

static const MglBackendHost host = {mgl_verr,           mgl_nvidia_driver_present, mgl_dtype_size,
                                    mgl_convert_floats, mgl_weight_walk_bound,     mgl_weight_field,
                                    mgl_rng_unit,       mgl_quant_row_bytes,       mgl_quant_n_groups,
                                    mgl_image_check,    mgl_pad_geometry,          mgl_bicubic_coeffs,
                                    mgl_normalize_lut};

#define MODULE_NAME "libmgllava-cuda.so"

/* Opens the module at path: its table, or NULL with the reason added to *why. */
static const MglBackend* open_module(const char* path, GString* why) {
    void* h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char* e = dlerror();
        /* a missing file is the usual case in the search, worth a word only at the end */
        g_string_append_printf(why, "%s%s", why->len ? "; " : "", e ? e : path);
        return NULL;
    }
    MglBackendModuleOpen open = (MglBackendModuleOpen)dlsym(h, MGL_BACKEND_MODULE_OPEN);
    char msg[512] = "";
    const MglBackend* be = open ? open(&host, MGL_BACKEND_ABI, msg, sizeof msg) : NULL;
    if (!be) {
        g_string_append_printf(why, "%s%s: %s", why->len ? "; " : "", path,
                               open ? msg : "not an mgllava backend module (no " MGL_BACKEND_MODULE_OPEN ")");
        dlclose(h);
    }
    return be; /* the module stays loaded for the life of the process */
}

/* The module's place: MGL_CUDA_MODULE (a file) when set; else beside the
 * engine's own file (libmgllava.so, or the executable that links the engine
 * statically: the build folder's engine/), then the install's libdir. */
static void cuda_load(void) {
    if (&mgl_backend_cuda) {
        cuda_loaded = &mgl_backend_cuda;
        return;
    }
    if (!mgl_nvidia_driver_present()) {
        mgl_err(&cuda_why, MGL_E_DEVICE, MGL_NO_NVIDIA_DRIVER);
        return;
    }
    cuda_devices = 1; /* a driver: a GPU may be there, so failing to load is worth a message */
    GString* why = g_string_new(NULL);
    const char* env = getenv("MGL_CUDA_MODULE");
    if (env && *env) {
        cuda_loaded = open_module(env, why);
    } else {
        Dl_info di;
        if (dladdr((void*)mgl_backend_get, &di) && di.dli_fname) {
            char* dir = g_path_get_dirname(di.dli_fname);
            char* p = g_build_filename(dir, MODULE_NAME, NULL);
            if (g_file_test(p, G_FILE_TEST_EXISTS)) cuda_loaded = open_module(p, why);
            g_free(p);
            g_free(dir);
        }
        if (!cuda_loaded) {
            char* p = g_build_filename(MGL_MODULE_DIR, MODULE_NAME, NULL);
            if (g_file_test(p, G_FILE_TEST_EXISTS) || !why->len) cuda_loaded = open_module(p, why);
            g_free(p);
        }
    }
    if (!cuda_loaded)
        mgl_err(&cuda_why, MGL_E_DEVICE, "CUDA: the CUDA backend module could not be loaded (%s)", why->str);
    g_string_free(why, TRUE);
}
static gpointer cuda_load_once(gpointer unused) {
    (void)unused;
    cuda_load();
    return NULL;
}
#endif

static const char* const names[] = {
    "cpu",
#ifdef MGL_HAVE_CUDA
    "cuda",
#endif
    NULL,
};

const MglBackend* mgl_backend_get(const char* name) {
    if (!name) return NULL;
    if (!strcmp(name, "cpu")) return &mgl_backend_cpu;
#ifdef MGL_HAVE_CUDA
    if (!strcmp(name, "cuda")) {
        static GOnce once = G_ONCE_INIT;
        g_once(&once, cuda_load_once, NULL);
        return cuda_loaded ? cuda_loaded : &cuda_stub;
    }
#endif
    return NULL;
}

const char* const* mgl_backend_names(void) { return names; }
