/* The CUDA backend against the CPU backend on the tiny fixture models
 * (tests/fixtures/models/tiny-{vicuna,llama3,phi3}): every stage's output
 * (CLIP, ConvNeXt stages, fusion, RoI object features, prompt logits of all
 * rows, one decode step), then greedy generation, which must give the same
 * tokens in f32. f16 and bf16 are compared with their tolerances and their
 * greedy tokens reported. Exit 77 (skipped) when no CUDA device can be used. */
#include "mgl-cuda.h"
#include "mgl-model.h"
#include "cpu/mgl-cpu.h"
#include "../unit/mgl-test.h"
#include "gpu-parity.h"

#include <glib.h>
#include <math.h>

static uint8_t pixels[96 * 72 * 3];
static const MglImage img = {pixels, 96, 72, 96 * 3};
static const MglBox boxes[] = {{5, 5, 40, 30, 0.9f, "cup"}, {30, 10, 90, 70, 0.8f, "dog"}, {0, 0, 96, 72, 0.5f, "cup"}};

static void cmp(const char* ctx, const char* what, const float* ref, const float* got, size_t n, double tol) {
    ParityDiff d = parity_diff(ref, got, n);
    CHECK_MSG(d.rel <= tol, "%s: %s: max|diff| %.3g (max|ref| %.3g, rel %.3g > %.1g) at %zu", ctx, what, d.max_diff,
              d.max_ref, d.rel, tol, d.at);
    if (d.rel <= tol) printf("  %-26s %-18s ok  rel %.2e\n", ctx, what, d.rel);
}

static MglModel* load(const char* path, const char* device, const char* precision) {
    MglModelParams mp = mgl_model_default_params();
    mp.device = device;
    mp.precision = precision;
    MglModel* m = NULL;
    MglErr err = {0};
    if (mgl_model_load(path, &mp, &m, &err) != MGL_OK) fprintf(stderr, "load %s (%s): %s\n", path, device, err.msg);
    return m;
}

static int32_t* generate(MglCtx* c, size_t* n) {
    MglGenParams gp = mgl_gen_default_params();
    gp.max_new_tokens = 12;
    int32_t* ids = NULL;
    char* text = NULL;
    MglErr err = {0};
    MglStatus st = mgl_generate(c, &img, boxes, 3, "Describe the image in detail.", &gp, &text, &ids, n, NULL, &err);
    CHECK_MSG(st == MGL_OK, "generate: %s", err.msg);
    free(text);
    return ids;
}

static void run_model(const char* dir, const char* name, const char* precision, double tol, double tol_logits) {
    char* path = g_build_filename(dir, name, NULL);
    char ctx[64];
    snprintf(ctx, sizeof ctx, "%s %s", name, precision);
    MglModel* mc = load(path, "cpu", NULL);
    MglModel* mg = load(path, "cuda", precision);
    REQUIRE(mc && mg && !strcmp(mgl_model_backend_name(mg), "cuda") && !strcmp(mgl_model_backend_name(mc), "cpu"));
    MglCtx *cc = NULL, *cg = NULL;
    MglErr err = {0};
    REQUIRE(mgl_ctx_new(mc, &cc, &err) == MGL_OK);
    REQUIRE(mgl_ctx_new(mg, &cg, &err) == MGL_OK);
    float *x768, *x336, *b768;
    size_t nobj;
    REQUIRE(mgl_stage_preprocess(&img, boxes, 3, 100, MGL_OBJECT_ORDER_SCORE, &x768, &x336, &b768, &nobj, &err) ==
            MGL_OK);
    const int64_t P = mc->w.n_patches, D = mc->w.D;
    /* CLIP */
    float* rc = malloc(sizeof(float) * (size_t)(P * D));
    float* gc = malloc(sizeof(float) * (size_t)(P * D));
    mgl_stage_clip(&mc->w, x336, rc);
    CHECK_MSG(mgl_ctx_stage_clip(cg, x336, gc, &err) == MGL_OK, "%s", err.msg);
    cmp(ctx, "clip", rc, gc, (size_t)(P * D), tol);
    /* ConvNeXt */
    float *rs[4], *gs[4];
    for (int s = 0; s < 4; s++) {
        int64_t hs = 192 >> s, n = hs * hs * mc->w.stages[s].C;
        rs[s] = malloc(sizeof(float) * (size_t)n);
        gs[s] = malloc(sizeof(float) * (size_t)n);
    }
    mgl_stage_convnext(&mc->w, x768, rs);
    CHECK_MSG(mgl_ctx_stage_convnext(cg, x768, gs, &err) == MGL_OK, "%s", err.msg);
    for (int s = 0; s < 4; s++) {
        char w[32];
        snprintf(w, sizeof w, "convnext stage %d", s);
        int64_t hs = 192 >> s;
        cmp(ctx, w, rs[s], gs[s], (size_t)(hs * hs * mc->w.stages[s].C), tol);
    }
    /* fusion (same inputs on both sides) */
    float* rf = malloc(sizeof(float) * (size_t)(P * D));
    float* gf = malloc(sizeof(float) * (size_t)(P * D));
    float rg = 0, gg = 0;
    mgl_stage_fuse(&mc->w, rc, rs[3], rf, &rg);
    CHECK_MSG(mgl_ctx_stage_fuse(cg, rc, rs[3], gf, &gg, &err) == MGL_OK, "%s", err.msg);
    cmp(ctx, "fused", rf, gf, (size_t)(P * D), tol);
    cmp(ctx, "gate logit", &rg, &gg, 1, tol);
    /* objects */
    float* rp = malloc(sizeof(float) * (nobj ? nobj : 1) * (size_t)mc->w.Cm);
    float* gp = malloc(sizeof(float) * (nobj ? nobj : 1) * (size_t)mc->w.Cm);
    mgl_stage_objects(&mc->w, rs, b768, nobj, rp);
    CHECK_MSG(mgl_ctx_stage_objects(cg, rs, b768, nobj, gp, &err) == MGL_OK, "%s", err.msg);
    cmp(ctx, "object features", rp, gp, nobj * (size_t)mc->w.Cm, tol);
    /* decoder: all prompt logits, then one step */
    MglPrompt pr = {0};
    REQUIRE(mgl_prompt_build(mc->tok, mc->tmpl, "What is in the image?", true, &pr, &err) == MGL_OK);
    const int64_t H = mc->w.lc.hidden, V = mc->w.lc.vocab, L = (int64_t)pr.n_ids + P + (int64_t)nobj;
    float* emb = malloc(sizeof(float) * (size_t)((L + 1) * H));
    mgl_stage_embeds(&mc->w, &pr, rf, rs, b768, nobj, emb);
    float* rl = malloc(sizeof(float) * (size_t)(L * V));
    float* gl = malloc(sizeof(float) * (size_t)(L * V));
    REQUIRE(mgl_llm_forward(cc, emb, L, 0, rl, true, &err) == MGL_OK);
    CHECK_MSG(mgl_llm_forward(cg, emb, L, 0, gl, true, &err) == MGL_OK, "%s", err.msg);
    cmp(ctx, "prompt logits", rl, gl, (size_t)(L * V), tol_logits);
    mgl_weight_row(&mc->w.embed, 3, emb + L * H);
    REQUIRE(mgl_llm_forward(cc, emb + L * H, 1, L, rl, false, &err) == MGL_OK);
    CHECK_MSG(mgl_llm_forward(cg, emb + L * H, 1, L, gl, false, &err) == MGL_OK, "%s", err.msg);
    cmp(ctx, "decode-step logits", rl, gl, (size_t)V, tol_logits);
    /* greedy generation */
    size_t na = 0, nb = 0;
    int32_t* a = generate(cc, &na);
    int32_t* b = generate(cg, &nb);
    size_t same = 0;
    while (same < na && same < nb && a[same] == b[same]) same++;
    if (!strcmp(precision, "f32"))
        CHECK_MSG(na == nb && same == na, "%s: greedy tokens differ: %zu of %zu/%zu identical", ctx, same, na, nb);
    printf("  %-26s %-18s %s  %zu of %zu tokens identical\n", ctx, "greedy", same == na && na == nb ? "ok" : "--", same,
           na);
    free(a);
    free(b);
    mgl_prompt_clear(&pr);
    free(emb);
    free(rl);
    free(gl);
    free(rc);
    free(gc);
    free(rf);
    free(gf);
    free(rp);
    free(gp);
    for (int s = 0; s < 4; s++) {
        free(rs[s]);
        free(gs[s]);
    }
    free(x768);
    free(x336);
    free(b768);
    mgl_ctx_free(cc);
    mgl_ctx_free(cg);
    mgl_model_free(mc);
    mgl_model_free(mg);
    g_free(path);
}

int main(void) {
    MglErr e = {0};
    if (mgl_cuda_device_count() <= 0 || mgl_cuda_probe(0, &e) != MGL_OK) {
        printf("no usable CUDA device (%s): skipped\n", e.msg[0] ? e.msg : "none found");
        return 77;
    }
    for (size_t i = 0; i < sizeof pixels; i++) pixels[i] = (uint8_t)((i * 37 + (i / 288) * 11) % 251);
    char* dir = g_build_filename(test_env("MGL_FIXTURES"), "models", NULL);
    const char* models[] = {"tiny-vicuna", "tiny-llama3", "tiny-phi3"};
    for (int i = 0; i < 3; i++) {
        run_model(dir, models[i], "f32", 1e-4, 1e-4);
        run_model(dir, models[i], "f16", 3e-2, 5e-2);
        run_model(dir, models[i], "bf16", 1e-1, 1.5e-1);
    }
    g_free(dir);
    TEST_DONE();
}
