/* Stage-by-stage parity of the CPU engine with the PyTorch reference
 * (tools/reference/, goldens in tests/fixtures/golden): preprocessing, box
 * pipeline, CLIP, ConvNeXt stages, the multi-scale map, RoIAlign pooling,
 * Conv-Gate fusion, projectors, the input embedding sequence, prompt logits,
 * per-step logits and greedy tokens, for three LLM kinds. `MGL_GOLDEN_ROOT`
 * may point at another golden folder (e.g. for the packed-model run). */
#include "mgl-internal.h"
#include "mgl-json.h"
#include "mgl-model.h"
#include "cpu/mgl-cpu.h"
#include "../unit/mgl-test.h"

#include <glib.h>
#include <math.h>

static const char* g_root;
static const char* g_models;
static double worst_rel = 0;

typedef float (*Getter)(void* ud, const int64_t* idx);

/* Compare golden tensor `name` (possibly subsampled with name.idx<d>) against
 * getter values at the full-tensor indices. */
static void compare(const MglTensorSet* gs, const char* ctx, const char* name, Getter get, void* ud, double rel,
                    double abs_tol) {
    const MglTensor* g = mgl_tset_get(gs, name);
    if (!g) {
        CHECK_MSG(false, "%s: golden tensor %s missing", ctx, name);
        return;
    }
    int64_t n = mgl_tensor_numel(g);
    float* ref = malloc(sizeof(float) * (size_t)(n ? n : 1));
    mgl_tensor_to_f32(g, ref, NULL);
    const int32_t* idx[MGL_MAX_DIMS] = {0};
    for (int d = 0; d < g->ndim; d++) {
        char in[128];
        snprintf(in, sizeof in, "%s.idx%d", name, d);
        const MglTensor* it = mgl_tset_get(gs, in);
        if (it) idx[d] = (const int32_t*)it->data;
    }
    double maxref = 1e-6, maxdiff = 0;
    int64_t worst = -1;
    int64_t pos[MGL_MAX_DIMS] = {0};
    for (int64_t i = 0; i < n; i++) {
        int64_t full[MGL_MAX_DIMS];
        for (int d = 0; d < g->ndim; d++) full[d] = idx[d] ? idx[d][pos[d]] : pos[d];
        float got = get(ud, full);
        double diff = fabs((double)got - ref[i]);
        if (!(diff <= maxdiff)) {
            maxdiff = isnan(diff) ? INFINITY : diff;
            worst = i;
        }
        if (fabs(ref[i]) > maxref) maxref = fabs(ref[i]);
        for (int d = g->ndim - 1; d >= 0; d--) {
            if (++pos[d] < g->shape[d]) break;
            pos[d] = 0;
        }
    }
    bool ok = abs_tol > 0 ? maxdiff <= abs_tol : maxdiff <= rel * maxref;
    double r = maxdiff / maxref;
    if (abs_tol == 0 && r > worst_rel) worst_rel = r;
    CHECK_MSG(ok, "%s: %s max|diff| %.3g (max|ref| %.3g, rel %.3g) at flat %lld", ctx, name, maxdiff, maxref, r,
              (long long)worst);
    if (ok) printf("  %-28s %-14s ok  max|diff| %.2e  rel %.2e\n", ctx, name, maxdiff, r);
    free(ref);
}

/* getters over the engine's layouts */
typedef struct {
    const float* p;
    int64_t d1, d2;
} Chw; /* (C, H, W) row-major */
static float get_chw(void* ud, const int64_t* i) {
    Chw* c = ud;
    return c->p[(i[0] * c->d1 + i[1]) * c->d2 + i[2]];
}
typedef struct {
    const float* p;
    int64_t W, C;
} Nhwc; /* golden (C, H, W) vs engine (H*W, C) */
static float get_nhwc(void* ud, const int64_t* i) {
    Nhwc* c = ud;
    return c->p[(i[1] * c->W + i[2]) * c->C + i[0]];
}
typedef struct {
    const float* p;
    int64_t cols;
} Mat;
static float get_mat(void* ud, const int64_t* i) {
    Mat* m = ud;
    return m->p[i[0] * m->cols + i[1]];
}
static float get_scalar(void* ud, const int64_t* i) { return *(const float*)ud; }
/* the 192x192 multi-scale map, from the per-level maps upsampled by the engine's own resize */
typedef struct {
    float* up[4];
    int C[4];
} Fm;
static float get_fm(void* ud, const int64_t* i) {
    Fm* f = ud;
    int64_t c = i[0];
    for (int s = 0; s < 4; s++) {
        if (c < f->C[s]) return f->up[s][(i[1] * 192 + i[2]) * f->C[s] + c];
        c -= f->C[s];
    }
    return NAN;
}

static MglStatus load_boxes(const char* path, MglBox** out, size_t* n, GStringChunk* chunk) {
    JsonParser* p = NULL;
    JsonObject* o = NULL;
    MglErr err;
    GError* ge = NULL;
    if (!mgl_json_load_object(path, 1 << 24, &p, &o, &ge)) return mgl_err_json(&err, ge);
    JsonArray* b = json_object_get_array_member(o, "boxes");
    JsonArray* s = json_object_get_array_member(o, "scores");
    JsonArray* l = json_object_get_array_member(o, "labels");
    *n = json_array_get_length(b);
    *out = calloc(*n ? *n : 1, sizeof(MglBox));
    for (guint i = 0; i < *n; i++) {
        JsonArray* r = json_array_get_array_element(b, i);
        (*out)[i].x1 = (float)json_array_get_double_element(r, 0);
        (*out)[i].y1 = (float)json_array_get_double_element(r, 1);
        (*out)[i].x2 = (float)json_array_get_double_element(r, 2);
        (*out)[i].y2 = (float)json_array_get_double_element(r, 3);
        (*out)[i].score = (float)json_array_get_double_element(s, i);
        (*out)[i].label = g_string_chunk_insert_const(chunk, json_array_get_string_element(l, i));
    }
    g_object_unref(p);
    return MGL_OK;
}

typedef struct {
    char name[64];
    MglImage img;
    MglBox* boxes;
    size_t n_boxes;
    int limit_num;
    MglTensorSet* gs;
} Scene;

static MglModel* model_for(const char* name, MglModel** cache, const char** names, int* n) {
    for (int i = 0; i < *n; i++)
        if (!strcmp(names[i], name)) return cache[i];
    char* dir = g_build_filename(g_models, name, NULL);
    MglErr err = {0};
    MglModel* m = NULL;
    MglModelParams mp = mgl_model_default_params();
    if (mgl_model_load(dir, &mp, &m, &err) != MGL_OK) fprintf(stderr, "load %s: %s\n", dir, err.msg);
    g_free(dir);
    cache[*n] = m;
    names[(*n)++] = g_strdup(name);
    return m;
}

static void run_scene(Scene* sc, MglModel* m) {
    MglErr err = {0};
    float *x768, *x336, *b768;
    size_t nobj;
    REQUIRE(mgl_stage_preprocess(&sc->img, sc->boxes, sc->n_boxes, sc->limit_num, MGL_OBJECT_ORDER_SCORE, &x768, &x336,
                                 &b768, &nobj, &err) == MGL_OK);
    char ctx[96];
    snprintf(ctx, sizeof ctx, "scene %s", sc->name);
    Chw a = {x768, 768, 768}, b = {x336, 336, 336};
    compare(sc->gs, ctx, "x768", get_chw, &a, 0, 1e-5);
    compare(sc->gs, ctx, "x336", get_chw, &b, 0, 1e-5);
    const MglTensor* gb = mgl_tset_get(sc->gs, "boxes768");
    CHECK_MSG(gb && gb->shape[0] == (int64_t)nobj, "%s: %zu boxes kept, golden %lld", ctx, nobj,
              gb ? (long long)gb->shape[0] : -1LL);
    if (gb && gb->shape[0] == (int64_t)nobj) {
        Mat bm = {b768, 4};
        compare(sc->gs, ctx, "boxes768", get_mat, &bm, 0, 1e-9);
    }
    const int64_t P = m->w.n_patches, D = m->w.D;
    float* clip = malloc(sizeof(float) * (size_t)(P * D));
    mgl_stage_clip(&m->w, x336, clip);
    Mat cm = {clip, D};
    compare(sc->gs, ctx, "clip_features", get_mat, &cm, 1e-4, 0);
    float* so[4];
    Fm fm;
    for (int s = 0; s < 4; s++) {
        int64_t hs = 192 >> s;
        so[s] = malloc(sizeof(float) * (size_t)(hs * hs * m->w.stages[s].C));
    }
    mgl_stage_convnext(&m->w, x768, so);
    for (int s = 0; s < 4; s++) {
        char nm[32];
        snprintf(nm, sizeof nm, "cnx_stage%d", s);
        Nhwc v = {so[s], 192 >> s, m->w.stages[s].C};
        compare(sc->gs, ctx, nm, get_nhwc, &v, 1e-4, 0);
        fm.C[s] = m->w.stages[s].C;
        fm.up[s] = malloc(sizeof(float) * 192 * 192 * (size_t)fm.C[s]);
        mgl_resize_bilinear_nhwc(so[s], 192 >> s, 192 >> s, fm.C[s], 192, 192, fm.up[s]);
    }
    compare(sc->gs, ctx, "fm", get_fm, &fm, 1e-4, 0);
    float* pooled = malloc(sizeof(float) * nobj * (size_t)m->w.Cm);
    mgl_stage_objects(&m->w, so, b768, nobj, pooled);
    Mat pm = {pooled, m->w.Cm};
    compare(sc->gs, ctx, "obj_pooled", get_mat, &pm, 1e-4, 0);
    for (int s = 0; s < 4; s++) {
        free(so[s]);
        free(fm.up[s]);
    }
    free(pooled);
    free(clip);
    free(x768);
    free(x336);
    free(b768);
}

/* Captures the logits of each decode step through a forward hook-free path:
 * re-run generation step by step. */
static void run_case(JsonObject* cs, Scene* sc, MglModel* m) {
    MglErr err = {0};
    const char* name = json_object_get_string_member(cs, "name");
    char* gpath = g_build_filename(g_root, json_object_get_string_member(cs, "file"), NULL);
    char* spath = g_build_filename(g_root, json_object_get_string_member(cs, "sidecar"), NULL);
    MglTensorSet* gs = mgl_tset_new();
    REQUIRE(mgl_safetensors_load(gpath, gs, &err) == MGL_OK);
    JsonParser* jp = NULL;
    JsonObject* side = NULL;
    REQUIRE(mgl_json_load_object(spath, 1 << 24, &jp, &side, NULL));
    const char* q = json_object_get_string_member(side, "question");

    /* prompt ids: the golden marks the image slot with -200 */
    MglPrompt pr;
    REQUIRE(mgl_prompt_build(m->tok, m->tmpl, q, true, &pr, &err) == MGL_OK);
    JsonArray* gi = json_object_get_array_member(side, "prompt_ids");
    bool same = json_array_get_length(gi) == pr.n_ids + 1;
    for (guint i = 0, k = 0; same && i < json_array_get_length(gi); i++) {
        int64_t v = json_array_get_int_element(gi, i);
        if (v == -200)
            same = k == pr.image_pos;
        else
            same = pr.ids[k++] == v;
    }
    CHECK_MSG(same, "%s: prompt ids differ from the reference", name);

    float *x768, *x336, *b768;
    size_t nobj;
    REQUIRE(mgl_stage_preprocess(&sc->img, sc->boxes, sc->n_boxes, sc->limit_num, MGL_OBJECT_ORDER_SCORE, &x768, &x336,
                                 &b768, &nobj, &err) == MGL_OK);
    const int64_t P = m->w.n_patches, D = m->w.D, H = m->w.lc.hidden, V = m->w.lc.vocab;
    float* clip = malloc(sizeof(float) * (size_t)(P * D));
    float* fused = malloc(sizeof(float) * (size_t)(P * D));
    mgl_stage_clip(&m->w, x336, clip);
    float* so[4];
    for (int s = 0; s < 4; s++) so[s] = malloc(sizeof(float) * (size_t)((192 >> s) * (192 >> s) * m->w.stages[s].C));
    mgl_stage_convnext(&m->w, x768, so);
    float gate = 0;
    mgl_stage_fuse(&m->w, clip, so[3], fused, &gate);
    compare(gs, name, "fuse_gate", get_scalar, &gate, 0, 1e-5);
    Mat fmat = {fused, D};
    compare(gs, name, "fused", get_mat, &fmat, 1e-4, 0);
    int64_t L = (int64_t)pr.n_ids + P + (int64_t)nobj, ip = (int64_t)pr.image_pos;
    float* emb = malloc(sizeof(float) * (size_t)(L * H));
    mgl_stage_embeds(&m->w, &pr, fused, so, b768, nobj, emb);
    /* the projected image and object tokens are rows of the sequence */
    Mat vm = {emb + ip * H, H};
    compare(gs, name, "vimg", get_mat, &vm, 1e-4, 0);
    Mat om = {emb + (ip + P) * H, H};
    compare(gs, name, "vobj", get_mat, &om, 1e-4, 0);
    Mat em = {emb, H};
    compare(gs, name, "inputs_embeds", get_mat, &em, 1e-4, 0);
    MglCtx* c = NULL;
    REQUIRE(mgl_ctx_new(m, &c, &err) == MGL_OK);
    float* logits = malloc(sizeof(float) * (size_t)(L * V));
    REQUIRE(mgl_llm_forward(c, emb, L, 0, logits, true, &err) == MGL_OK);
    Mat lm = {logits, V};
    compare(gs, name, "prompt_logits", get_mat, &lm, 1e-4, 0);
    /* greedy steps on the same context, logits compared at each step when stored */
    JsonArray* want = json_object_get_array_member(side, "greedy_ids");
    guint nw = json_array_get_length(want);
    float* step = malloc(sizeof(float) * (size_t)((nw ? nw : 1) * V));
    memcpy(step, logits + (L - 1) * V, sizeof(float) * (size_t)V);
    float* e1 = malloc(sizeof(float) * (size_t)H);
    bool ids_ok = true;
    for (guint k = 0; k < nw; k++) {
        int32_t id = 0;
        const float* lg = step + (size_t)k * V;
        for (int64_t v = 1; v < V; v++)
            if (lg[v] > lg[id]) id = (int32_t)v;
        if (id != json_array_get_int_element(want, k)) {
            ids_ok = false;
            CHECK_MSG(false, "%s: greedy token %u is %d, reference %lld", name, k, id,
                      (long long)json_array_get_int_element(want, k));
            break;
        }
        if (k + 1 < nw) {
            mgl_weight_row(&m->w.embed, id, e1);
            REQUIRE(mgl_llm_forward(c, e1, 1, L + k, step + (size_t)(k + 1) * V, false, &err) == MGL_OK);
        }
    }
    if (mgl_tset_get(gs, "step_logits") && ids_ok) {
        Mat sm = {step, V};
        compare(gs, name, "step_logits", get_mat, &sm, 1e-4, 0);
    }
    /* and the public API end to end: same tokens, same text */
    MglGenParams gp = mgl_gen_default_params();
    gp.max_new_tokens = (int)json_object_get_int_member(side, "max_new_tokens");
    char* text = NULL;
    int32_t* ids = NULL;
    size_t nid = 0;
    MglTimings tm;
    REQUIRE(mgl_generate(c, &sc->img, sc->boxes, sc->n_boxes, q, &gp, &text, &ids, &nid, &tm, &err) == MGL_OK);
    bool gen_ok = nid == nw;
    for (size_t k = 0; gen_ok && k < nid; k++) gen_ok = ids[k] == json_array_get_int_element(want, (guint)k);
    CHECK_MSG(gen_ok, "%s: mgl_generate produced %zu ids that differ from the reference's %u", name, nid, nw);
    CHECK_MSG(strcmp(text, json_object_get_string_member(side, "text")) == 0, "%s: text '%s' vs reference '%s'", name,
              text, json_object_get_string_member(side, "text"));
    CHECK(tm.n_objects == (int)json_object_get_int_member(side, "n_object_tokens"));
    CHECK(tm.n_prompt_tokens == (int)json_object_get_int_member(side, "sequence_length"));
    if (gen_ok) printf("  %-28s greedy         ok  %u tokens: \"%s\"\n", name, nw, text);
    free(text);
    free(ids);
    free(e1);
    free(step);
    free(logits);
    mgl_ctx_free(c);
    free(emb);
    for (int s = 0; s < 4; s++) free(so[s]);
    free(clip);
    free(fused);
    free(x768);
    free(x336);
    free(b768);
    mgl_prompt_clear(&pr);
    g_object_unref(jp);
    mgl_tset_free(gs);
    g_free(gpath);
    g_free(spath);
}

int main(void) {
    const char* fx = test_env("MGL_FIXTURES");
    char* root = getenv("MGL_GOLDEN_ROOT") ? g_strdup(getenv("MGL_GOLDEN_ROOT")) : g_build_filename(fx, "golden", NULL);
    char* models =
        getenv("MGL_GOLDEN_MODELS") ? g_strdup(getenv("MGL_GOLDEN_MODELS")) : g_build_filename(fx, "models", NULL);
    g_root = root;
    g_models = models;
    char* mpath = g_build_filename(root, "manifest.json", NULL);
    JsonParser* jp = NULL;
    JsonObject* man = NULL;
    MglErr err = {0};
    REQUIRE(mgl_json_load_object(mpath, 1 << 26, &jp, &man, NULL));
    GStringChunk* chunk = g_string_chunk_new(4096);
    JsonObject* scenes = json_object_get_object_member(man, "scenes");
    GList* names = json_object_get_members(scenes);
    Scene sc[16];
    int nsc = 0;
    MglModel* cache[8];
    const char* cnames[8];
    int ncache = 0;
    for (GList* l = names; l && nsc < 16; l = l->next, nsc++) {
        Scene* s = &sc[nsc];
        memset(s, 0, sizeof *s);
        snprintf(s->name, sizeof s->name, "%s", (const char*)l->data);
        JsonObject* so = json_object_get_object_member(scenes, s->name);
        char* f = g_build_filename(root, json_object_get_string_member(so, "file"), NULL);
        s->gs = mgl_tset_new();
        REQUIRE(mgl_safetensors_load(f, s->gs, &err) == MGL_OK);
        g_free(f);
        const MglTensor* im = mgl_tset_get(s->gs, "image");
        REQUIRE(im && im->dtype == MGL_DT_U8 && im->ndim == 3);
        s->img = (MglImage){im->data, (int)im->shape[1], (int)im->shape[0], (int)im->shape[1] * 3};
        char* bp = g_build_filename(root, json_object_get_string_member(so, "boxes"), NULL);
        REQUIRE(load_boxes(bp, &s->boxes, &s->n_boxes, chunk) == MGL_OK);
        g_free(bp);
        s->limit_num = (int)json_object_get_int_member(so, "limit_num");
        /* the vision towers are shared by the tiny models: any of them will do */
        run_scene(s, model_for("tiny-vicuna", cache, cnames, &ncache));
    }
    g_list_free(names);
    JsonArray* cases = json_object_get_array_member(man, "cases");
    for (guint i = 0; i < json_array_get_length(cases); i++) {
        JsonObject* cs = json_array_get_object_element(cases, i);
        const char* scn = json_object_get_string_member(cs, "scene");
        Scene* s = NULL;
        for (int k = 0; k < nsc; k++)
            if (!strcmp(sc[k].name, scn)) s = &sc[k];
        REQUIRE(s);
        MglModel* m = model_for(json_object_get_string_member(cs, "model"), cache, cnames, &ncache);
        REQUIRE(m);
        run_case(cs, s, m);
    }
    printf("worst relative difference over all float stages: %.3g\n", worst_rel);
    for (int k = 0; k < nsc; k++) {
        mgl_tset_free(sc[k].gs);
        free(sc[k].boxes);
    }
    for (int k = 0; k < ncache; k++) {
        mgl_model_free(cache[k]);
        g_free((char*)cnames[k]);
    }
    g_string_chunk_free(chunk);
    g_object_unref(jp);
    g_free(mpath);
    g_free(root);
    g_free(models);
    TEST_DONE();
}
