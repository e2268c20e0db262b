/* The CUDA backend's video path against the CPU's on the tiny models: a clip
 * (frames of different sizes, with and without boxes) must give the CPU's
 * greedy tokens in f32. Exit 77 (skipped) when no CUDA device can be used. */
#include "mgl-cuda.h"
#include "mgllava.h"
#include "../unit/mgl-test.h"

#include <glib.h>
#include <string.h>

#define T 4

static uint8_t* px[T];
static MglClipFrame frames[T];
static const MglBox box = {6, 8, 40, 36, 0.9f, "ball"};

static MglModel* load(const char* path, const char* device) {
    MglModelParams mp = mgl_model_default_params();
    mp.device = device;
    mp.precision = "f32";
    MglModel* m = NULL;
    MglErr err = {0};
    if (mgl_model_load(path, &mp, &m, &err) != MGL_OK) fprintf(stderr, "load %s (%s): %s\n", path, device, err.msg);
    return m;
}

static int32_t* clip_ids(MglModel* m, size_t* n) {
    MglCtx* c = NULL;
    MglErr err = {0};
    int32_t* ids = NULL;
    MglGenParams gp = mgl_gen_default_params();
    gp.max_new_tokens = 10;
    REQUIRE(mgl_ctx_new(m, &c, &err) == MGL_OK);
    MglStatus st = mgl_generate_clip(c, frames, T, "What happens in the video?", &gp, NULL, &ids, n, NULL, &err);
    CHECK_MSG(st == MGL_OK, "generate_clip: %s", err.msg);
    mgl_ctx_free(c);
    return ids;
}

int main(void) {
    MglErr e = {0};
    if (mgl_cuda_device_count() <= 0 || mgl_cuda_probe(0, &e) != MGL_OK) {
        printf("no usable CUDA device (%s): skipped\n", e.msg[0] ? e.msg : "none found");
        return 77;
    }
    for (int k = 0; k < T; k++) {
        const int w = 96 + 16 * k, h = 64 + 8 * (k % 2);
        px[k] = g_malloc((size_t)w * h * 3);
        for (int i = 0; i < w * h * 3; i++) px[k][i] = (uint8_t)((i * 31 + k * 57 + (i / (3 * w)) * 7) % 251);
        frames[k] = (MglClipFrame){{px[k], w, h, 3 * w}, k % 2 ? &box : NULL, k % 2 ? 1 : 0};
    }
    const char* models[] = {"tiny-vicuna", "tiny-llama3", "tiny-phi3"};
    for (int i = 0; i < 3; i++) {
        char* dir = g_build_filename(test_env("MGL_FIXTURES"), "models", models[i], NULL);
        MglModel* cpu = load(dir, "cpu");
        MglModel* gpu = load(dir, "cuda");
        REQUIRE(cpu && gpu);
        size_t na = 0, nb = 0;
        int32_t* a = clip_ids(cpu, &na);
        int32_t* b = clip_ids(gpu, &nb);
        bool same = a && b && na == nb && memcmp(a, b, na * sizeof(int32_t)) == 0;
        CHECK_MSG(same, "%s: the CUDA clip's %zu tokens differ from the CPU's %zu", models[i], nb, na);
        if (same) printf("  %-12s clip of %d frames: CUDA f32 gives the CPU's %zu tokens\n", models[i], T, na);
        free(a);
        free(b);
        mgl_model_free(cpu);
        mgl_model_free(gpu);
        g_free(dir);
    }
    for (int k = 0; k < T; k++) g_free(px[k]);
    TEST_DONE();
}
