/* Parity of the engine's video path (spec section 11) with the PyTorch
 * reference of the official video evaluation (tools/reference/
 * make_video_goldens.py, goldens in tests/fixtures/golden-video): each
 * frame's own preprocessing and boxes, frame sampling, the video prompt, the
 * embedding sequence with the frames in time order, the prompt logits and the
 * greedy tokens of mgl_generate_clip, for three LLM kinds; the context check;
 * bad input. */
#include "mgl-internal.h"
#include "mgl-json.h"
#include "mgl-model.h"
#include "cpu/mgl-cpu.h"
#include "../unit/mgl-test.h"

#include <glib.h>
#include <math.h>

typedef struct {
    const float* p;
    int64_t d1, d2;
} Chw;

/* Golden tensor `name` (maybe subsampled with name.idx<d>) against `val` at the full indices. */
static double max_diff(const MglTensorSet* gs, const char* name, const Chw* val, double* maxref) {
    const MglTensor* g = mgl_tset_get(gs, name);
    if (!g) return INFINITY;
    const int64_t n = mgl_tensor_numel(g);
    float* ref = malloc(sizeof(float) * (size_t)(n ? n : 1));
    mgl_tensor_to_f32(g, ref, NULL);
    const int32_t* idx[MGL_MAX_DIMS] = {0};
    for (int d = 0; d < g->ndim; d++) {
        char in[128];
        snprintf(in, sizeof in, "%s.idx%d", name, d);
        const MglTensor* it = mgl_tset_get(gs, in);
        if (it) idx[d] = (const int32_t*)it->data;
    }
    int64_t pos[MGL_MAX_DIMS] = {0};
    double md = 0;
    *maxref = 1e-6;
    for (int64_t i = 0; i < n; i++) {
        int64_t f[MGL_MAX_DIMS] = {0};
        for (int d = 0; d < g->ndim; d++) f[d] = idx[d] ? idx[d][pos[d]] : pos[d];
        float got = g->ndim == 3 ? val->p[(f[0] * val->d1 + f[1]) * val->d2 + f[2]] : val->p[f[0] * val->d1 + f[1]];
        double diff = fabs((double)got - ref[i]);
        if (!(diff <= md)) md = isnan(diff) ? INFINITY : diff;
        if (fabs(ref[i]) > *maxref) *maxref = fabs(ref[i]);
        for (int d = g->ndim - 1; d >= 0; d--) {
            if (++pos[d] < g->shape[d]) break;
            pos[d] = 0;
        }
    }
    free(ref);
    return md;
}

static void check_abs(const MglTensorSet* gs, const char* ctx, const char* name, const Chw* v, double tol) {
    double mr, d = max_diff(gs, name, v, &mr);
    CHECK_MSG(d <= tol, "%s: %s max|diff| %.3g > %.3g", ctx, name, d, tol);
    if (d <= tol) printf("  %-14s %-16s ok  max|diff| %.2e\n", ctx, name, d);
}

static void check_rel(const MglTensorSet* gs, const char* ctx, const char* name, const Chw* v, double rel) {
    double mr, d = max_diff(gs, name, v, &mr);
    CHECK_MSG(d <= rel * mr, "%s: %s max|diff| %.3g (max|ref| %.3g)", ctx, name, d, mr);
    if (d <= rel * mr) printf("  %-14s %-16s ok  rel %.2e\n", ctx, name, d / mr);
}

typedef struct {
    int n;
    MglImage img[32];
    MglBox* boxes[32];
    size_t n_boxes[32];
    int limit_num;
} Clip;

static void load_records(const char* path, Clip* c, GStringChunk* chunk) {
    JsonParser* p = json_parser_new();
    REQUIRE(json_parser_load_from_file(p, path, NULL));
    JsonArray* a = json_node_get_array(json_parser_get_root(p));
    REQUIRE((int)json_array_get_length(a) == c->n);
    for (int k = 0; k < c->n; k++) {
        JsonObject* o = json_array_get_object_element(a, (guint)k);
        JsonArray* b = json_object_get_array_member(o, "boxes");
        JsonArray* s = json_object_get_array_member(o, "scores");
        JsonArray* l = json_object_get_array_member(o, "labels");
        size_t n = json_array_get_length(b);
        c->n_boxes[k] = n;
        c->boxes[k] = calloc(n ? n : 1, sizeof(MglBox));
        for (guint i = 0; i < n; i++) {
            JsonArray* r = json_array_get_array_element(b, i);
            c->boxes[k][i] = (MglBox){(float)json_array_get_double_element(r, 0),
                                      (float)json_array_get_double_element(r, 1),
                                      (float)json_array_get_double_element(r, 2),
                                      (float)json_array_get_double_element(r, 3),
                                      (float)json_array_get_double_element(s, i),
                                      g_string_chunk_insert_const(chunk, json_array_get_string_element(l, i))};
        }
    }
    g_object_unref(p);
}

/* Each source frame: the video views and the boxes in the 768 frame. */
static void run_frames(const Clip* c, const MglTensorSet* gs) {
    MglErr err = {0};
    for (int k = 0; k < c->n; k++) {
        char ctx[32], nm[32];
        snprintf(ctx, sizeof ctx, "frame %d", k);
        MglViews* v = NULL;
        REQUIRE(mgl_views_make_video(&c->img[k], &v, &err) == MGL_OK);
        Chw a = {v->x768, 768, 768}, l = {v->x336, 336, 336};
        snprintf(nm, sizeof nm, "x768_%d", k);
        check_abs(gs, ctx, nm, &a, 1e-5);
        snprintf(nm, sizeof nm, "x336_%d", k);
        check_abs(gs, ctx, nm, &l, 1e-5);
        mgl_views_unref(v);
        float* b = NULL;
        size_t nb = 0;
        REQUIRE(mgl_boxes_to_768(c->boxes[k], c->n_boxes[k], c->img[k].width, c->img[k].height, c->limit_num,
                                 MGL_OBJECT_ORDER_SCORE, &b, &nb, &err) == MGL_OK);
        snprintf(nm, sizeof nm, "boxes768_%d", k);
        const MglTensor* g = mgl_tset_get(gs, nm);
        REQUIRE(g);
        bool same = g->shape[0] == (int64_t)nb;
        for (size_t i = 0; same && i < 4 * nb; i++) same = ((const float*)g->data)[i] == b[i];
        CHECK_MSG(same, "frame %d: boxes768 differ from the reference", k);
        free(b);
    }
}

static void run_case(JsonObject* cs, const Clip* c, MglModel* m, const char* root) {
    MglErr err = {0};
    const char* name = json_object_get_string_member(cs, "name");
    char* gpath = g_build_filename(root, json_object_get_string_member(cs, "file"), NULL);
    char* spath = g_build_filename(root, json_object_get_string_member(cs, "sidecar"), NULL);
    MglTensorSet* gs = mgl_tset_new();
    REQUIRE(mgl_safetensors_load(gpath, gs, &err) == MGL_OK);
    JsonParser* jp = NULL;
    JsonObject* side = NULL;
    REQUIRE(mgl_json_load_object(spath, 1 << 24, &jp, &side, NULL));
    const char* q = json_object_get_string_member(side, "question");
    const size_t T = (size_t)json_object_get_int_member(side, "frames");

    /* frame sampling as the decord loader */
    size_t idx[32];
    mgl_clip_sample_indices((size_t)c->n, T, idx);
    JsonArray* fi = json_object_get_array_member(side, "frame_indices");
    bool same = json_array_get_length(fi) == T;
    for (size_t j = 0; same && j < T; j++) same = (int64_t)idx[j] == json_array_get_int_element(fi, (guint)j);
    CHECK_MSG(same, "%s: sampled frame indices differ from np.linspace", name);
    MglClipFrame fr[32];
    for (size_t j = 0; j < T; j++) fr[j] = (MglClipFrame){c->img[idx[j]], c->boxes[idx[j]], c->n_boxes[idx[j]]};

    /* the request as the engine builds it: prompt ids (the golden marks the slot with -201) and length */
    MglGenParams gp = mgl_gen_default_params();
    gp.max_new_tokens = (int)json_object_get_int_member(side, "max_new_tokens");
    MglGen g;
    REQUIRE(mgl_gen_begin_clip(m, m->n_ctx, fr, T, q, &gp, &g, &err) == MGL_OK);
    JsonArray* gi = json_object_get_array_member(side, "prompt_ids");
    same = json_array_get_length(gi) == g.pr.n_ids + 1;
    for (guint i = 0, k = 0; same && i < json_array_get_length(gi); i++) {
        int64_t v = json_array_get_int_element(gi, i);
        same = v == -201 ? k == g.pr.image_pos : g.pr.ids[k++] == v;
    }
    CHECK_MSG(same, "%s: prompt ids differ from the reference", name);
    const int64_t L = g.L, P = m->w.n_patches, D = m->w.D, H = m->w.lc.hidden, V = m->w.lc.vocab;
    CHECK_MSG(L == json_object_get_int_member(side, "sequence_length"), "%s: %lld tokens, reference %lld", name,
              (long long)L, (long long)json_object_get_int_member(side, "sequence_length"));

    /* the embedding sequence from the stages, frame by frame in the rows the layout gives */
    float* emb = calloc((size_t)(L * H), sizeof(float));
    float* clip = malloc(sizeof(float) * (size_t)(P * D));
    float* fused = malloc(sizeof(float) * (size_t)(P * D));
    float* so[4];
    for (int s = 0; s < 4; s++) so[s] = malloc(sizeof(float) * (size_t)((192 >> s) * (192 >> s) * m->w.stages[s].C));
    const MglSeqLayout ly = mgl_seq_layout(&g.in, P);
    for (int64_t i = 0; i < ly.prefix; i++) mgl_weight_row(&m->w.embed, g.pr.ids[i], emb + i * H);
    for (int64_t i = 0; i < ly.n_suffix; i++)
        mgl_weight_row(&m->w.embed, g.pr.ids[ly.prefix + i], emb + (ly.suffix + i) * H);
    JsonArray* rows = json_object_get_array_member(side, "frame_rows");
    for (size_t j = 0; j < T; j++) {
        const MglSeqFrame* f = &g.in.frames[j];
        const int64_t row = mgl_seq_frame_row(&g.in, P, j);
        JsonArray* r = json_array_get_array_element(rows, (guint)j);
        CHECK_MSG(row == json_array_get_int_element(r, 0) && (int64_t)f->n_obj == json_array_get_int_element(r, 1),
                  "%s: frame %zu at row %lld with %zu objects, reference row %lld with %lld", name, j, (long long)row,
                  f->n_obj, (long long)json_array_get_int_element(r, 0), (long long)json_array_get_int_element(r, 1));
        mgl_stage_clip(&m->w, f->x336, clip);
        mgl_stage_convnext(&m->w, f->x768, so);
        mgl_stage_fuse(&m->w, clip, so[3], fused, NULL);
        mgl_stage_mlp2(&m->w.proj, fused, P, H, emb + row * H);
        float* pooled = malloc(sizeof(float) * f->n_obj * (size_t)m->w.Cm);
        mgl_stage_objects(&m->w, so, f->boxes768, f->n_obj, pooled);
        mgl_stage_mlp2(&m->w.bproj, pooled, (int64_t)f->n_obj, H, emb + (row + P) * H);
        free(pooled);
    }
    Chw em = {emb, H, 0};
    check_rel(gs, name, "inputs_embeds", &em, 1e-4);
    MglCtx* ctx = NULL;
    REQUIRE(mgl_ctx_new(m, &ctx, &err) == MGL_OK);
    float* logits = malloc(sizeof(float) * (size_t)V);
    REQUIRE(mgl_llm_forward(ctx, emb, L, 0, logits, false, &err) == MGL_OK);
    /* the golden keeps the last row only: index it as row L-1 of a one-row matrix */
    Chw lm = {logits - (L - 1) * V, V, 0};
    check_rel(gs, name, "prompt_logits", &lm, 1e-4);
    mgl_gen_clear(&g);

    /* the public API end to end: same tokens, same text, same counts */
    JsonArray* want = json_object_get_array_member(side, "greedy_ids");
    char* text = NULL;
    int32_t* ids = NULL;
    size_t nid = 0;
    MglTimings tm;
    REQUIRE(mgl_generate_clip(ctx, fr, T, q, &gp, &text, &ids, &nid, &tm, &err) == MGL_OK);
    bool ok = nid == json_array_get_length(want);
    for (size_t k = 0; ok && k < nid; k++) ok = ids[k] == json_array_get_int_element(want, (guint)k);
    CHECK_MSG(ok, "%s: mgl_generate_clip's %zu ids differ from the reference", name, nid);
    CHECK_MSG(strcmp(text, json_object_get_string_member(side, "text")) == 0, "%s: text '%s' vs '%s'", name, text,
              json_object_get_string_member(side, "text"));
    CHECK(tm.n_prompt_tokens == (int)L);
    CHECK(tm.n_objects == (int)json_object_get_int_member(side, "n_object_tokens"));
    if (ok)
        printf("  %-14s greedy           ok  %zu frames, %lld tokens, %zu ids (%.0f ms vision, %.0f ms prefill)\n",
               name, T, (long long)L, nid, tm.vision_ms, tm.prefill_ms);
    free(text);
    free(ids);
    free(logits);
    mgl_ctx_free(ctx);
    for (int s = 0; s < 4; s++) free(so[s]);
    free(clip);
    free(fused);
    free(emb);
    g_object_unref(jp);
    mgl_tset_free(gs);
    g_free(gpath);
    g_free(spath);
}

/* The context check and bad input: clear errors, no crash. */
static void run_checks(MglModel* vic, MglModel* phi, const Clip* c) {
    MglErr err = {0};
    const char* q = "What happens in the video?";
    CHECK(mgl_clip_max_frames(vic, 0, q) == 7); /* 4096 tokens: 7 x 577 + text + 1 */
    CHECK(mgl_clip_check(vic, 0, 7, q, &err) == MGL_OK);
    CHECK(mgl_clip_check(vic, 0, 8, q, &err) == MGL_E_INVALID);
    CHECK_MSG(strstr(err.msg, "8 frames") && strstr(err.msg, "4096-token context") && strstr(err.msg, "at most 7"),
              "context error: %s", err.msg);
    /* the demo model's 2048-token context holds 3 frames */
    CHECK(mgl_clip_max_frames(phi, 2048, q) == 3);
    CHECK(mgl_clip_check(phi, 2048, 4, q, &err) == MGL_E_INVALID && strstr(err.msg, "2048"));
    MglCtx* ctx = NULL;
    REQUIRE(mgl_ctx_new(vic, &ctx, &err) == MGL_OK);
    MglClipFrame fr[9];
    for (int j = 0; j < 9; j++) fr[j] = (MglClipFrame){c->img[j], c->boxes[j], c->n_boxes[j]};
    char* text = NULL;
    CHECK(mgl_generate_clip(ctx, fr, 8, q, NULL, &text, NULL, NULL, NULL, &err) == MGL_E_INVALID);
    CHECK(strstr(err.msg, "8 frames") != NULL);
    CHECK(mgl_generate_clip(ctx, fr, 0, q, NULL, &text, NULL, NULL, NULL, &err) == MGL_E_INVALID);
    CHECK(mgl_generate_clip(ctx, fr, 2, "a <video> b", NULL, &text, NULL, NULL, NULL, &err) == MGL_E_INVALID);
    CHECK(strstr(err.msg, "<video>") != NULL);
    fr[1].image.stride = 3;
    CHECK(mgl_generate_clip(ctx, fr, 2, q, NULL, &text, NULL, NULL, NULL, &err) == MGL_E_INVALID);
    CHECK_MSG(strstr(err.msg, "clip frame 1") != NULL, "bad frame error: %s", err.msg);
    CHECK(text == NULL);
    mgl_ctx_free(ctx);
    /* np.linspace(0, n-1, k, dtype=int) */
    size_t idx[8];
    mgl_clip_sample_indices(3, 8, idx);
    const size_t want[8] = {0, 0, 0, 0, 1, 1, 1, 2};
    CHECK(memcmp(idx, want, sizeof want) == 0);
    mgl_clip_sample_indices(100, 3, idx);
    CHECK(idx[0] == 0 && idx[1] == 49 && idx[2] == 99);
}

int main(void) {
    const char* fx = test_env("MGL_FIXTURES");
    char* root = g_build_filename(fx, "golden-video", NULL);
    char* models = g_build_filename(fx, "models", NULL);
    char* mpath = g_build_filename(root, "manifest.json", NULL);
    JsonParser* jp = NULL;
    JsonObject* man = NULL;
    MglErr err = {0};
    REQUIRE(mgl_json_load_object(mpath, 1 << 24, &jp, &man, NULL));
    JsonObject* co = json_object_get_object_member(man, "clip");
    Clip c = {.n = (int)json_object_get_int_member(co, "n_source_frames"),
              .limit_num = (int)json_object_get_int_member(co, "limit_num")};
    REQUIRE(c.n > 8 && c.n <= 32);
    char* cf = g_build_filename(root, json_object_get_string_member(co, "file"), NULL);
    MglTensorSet* cs = mgl_tset_new();
    REQUIRE(mgl_safetensors_load(cf, cs, &err) == MGL_OK);
    for (int k = 0; k < c.n; k++) {
        char nm[32];
        snprintf(nm, sizeof nm, "frame%d", k);
        const MglTensor* im = mgl_tset_get(cs, nm);
        REQUIRE(im && im->dtype == MGL_DT_U8 && im->ndim == 3);
        c.img[k] = (MglImage){im->data, (int)im->shape[1], (int)im->shape[0], (int)im->shape[1] * 3};
    }
    GStringChunk* chunk = g_string_chunk_new(1024);
    char* bp = g_build_filename(root, json_object_get_string_member(co, "boxes"), NULL);
    load_records(bp, &c, chunk);
    run_frames(&c, cs);

    JsonArray* cases = json_object_get_array_member(man, "cases");
    MglModel* loaded[8] = {0};
    const char* lname[8] = {0};
    int nl = 0;
    for (guint i = 0; i < json_array_get_length(cases); i++) {
        JsonObject* o = json_array_get_object_element(cases, i);
        char* dir = g_build_filename(models, json_object_get_string_member(o, "model"), NULL);
        MglModelParams mp = mgl_model_default_params();
        MglModel* m = NULL;
        REQUIRE(mgl_model_load(dir, &mp, &m, &err) == MGL_OK);
        g_free(dir);
        run_case(o, &c, m, root);
        loaded[nl] = m;
        lname[nl++] = json_object_get_string_member(o, "model");
    }
    MglModel *vic = NULL, *phi = NULL;
    for (int k = 0; k < nl; k++) {
        if (!strcmp(lname[k], "tiny-vicuna")) vic = loaded[k];
        if (!strcmp(lname[k], "tiny-phi3")) phi = loaded[k];
    }
    REQUIRE(vic && phi);
    run_checks(vic, phi, &c);
    for (int k = 0; k < nl; k++) mgl_model_free(loaded[k]);
    for (int k = 0; k < c.n; k++) free(c.boxes[k]);
    g_string_chunk_free(chunk);
    mgl_tset_free(cs);
    g_object_unref(jp);
    g_free(bp);
    g_free(cf);
    g_free(mpath);
    g_free(root);
    g_free(models);
    TEST_DONE();
}
