/* mgl-generate.c: one request from image and question to answer text, on
 * whatever backend the context's model runs: preprocessing, the prompt, the
 * backend's vision, prefill and decode steps, sampling, stop rules. */
#include "mgl-model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

MglStatus mgl_views_make(const MglImage* img, MglViews** out, MglErr* err) {
    *out = NULL;
    if (!img || !img->data) return mgl_err(err, MGL_E_INVALID, "image: no pixels");
    uint8_t* sq = NULL;
    int S = 0;
    MGL_TRY(mgl_pad_square(img->data, img->width, img->height, img->stride, &sq, &S, err));
    MglViews* v = calloc(1, sizeof *v);
    uint8_t* r = malloc((size_t)MGL_AUX_SIZE * MGL_AUX_SIZE * 3);
    float* a = malloc(sizeof(float) * 3 * MGL_AUX_SIZE * MGL_AUX_SIZE);
    float* l = malloc(sizeof(float) * 3 * 336 * 336);
    MglStatus st = v && r && a && l ? MGL_OK : mgl_err(err, MGL_E_NOMEM, "image: out of memory");
    if (st == MGL_OK) st = mgl_resize_bicubic_rgb8(sq, S, S, r, MGL_AUX_SIZE, MGL_AUX_SIZE, err);
    free(sq);
    if (st != MGL_OK) {
        free(v);
        free(r);
        free(a);
        free(l);
        return st;
    }
    mgl_normalize_clip(r, MGL_AUX_SIZE, MGL_AUX_SIZE, a);
    free(r);
    mgl_resize_bilinear_chw(a, 3, MGL_AUX_SIZE, MGL_AUX_SIZE, 336, 336, l);
    v->x768 = a;
    v->x336 = l;
    v->width = img->width;
    v->height = img->height;
    v->refs = 1;
    *out = v;
    return MGL_OK;
}

MglStatus mgl_model_views_make(const MglModel* m, const MglImage* img, MglViews** out, MglErr* err) {
    if (!m->be->views_on_device || !m->be->views_on_device(m->bm)) return mgl_views_make(img, out, err);
    *out = NULL;
    if (!img || !img->data) return mgl_err(err, MGL_E_INVALID, "image: no pixels");
    MGL_TRY(mgl_image_check(img->width, img->height, img->stride, err));
    const size_t row = (size_t)img->width * 3;
    MglViews* v = calloc(1, sizeof *v);
    uint8_t* rgb = malloc(row * (size_t)img->height);
    if (!v || !rgb) {
        free(v);
        free(rgb);
        return mgl_err(err, MGL_E_NOMEM, "image: out of memory");
    }
    for (int y = 0; y < img->height; y++) memcpy(rgb + (size_t)y * row, img->data + (size_t)y * img->stride, row);
    v->rgb = rgb;
    v->width = img->width;
    v->height = img->height;
    v->refs = 1;
    *out = v;
    return MGL_OK;
}

MglViews* mgl_views_ref(MglViews* v) {
    if (v) g_atomic_int_inc(&v->refs);
    return v;
}

void mgl_views_unref(MglViews* v) {
    if (!v || !g_atomic_int_dec_and_test(&v->refs)) return;
    free(v->x768);
    free(v->x336);
    free(v->rgb);
    free(v);
}

MglStatus mgl_stage_preprocess(const MglImage* img, const MglBox* boxes, size_t n_boxes, int limit_num, int order,
                               float** x768, float** x336, float** boxes768, size_t* n_obj, MglErr* err) {
    *x768 = *x336 = *boxes768 = NULL;
    MglViews* v = NULL;
    MGL_TRY(mgl_views_make(img, &v, err));
    MglStatus st = mgl_boxes_to_768(boxes, n_boxes, img->width, img->height, limit_num, order, boxes768, n_obj, err);
    if (st == MGL_OK) { /* the caller owns the views' buffers */
        *x768 = v->x768;
        *x336 = v->x336;
        v->x768 = v->x336 = NULL;
    }
    mgl_views_unref(v);
    return st;
}

MglGenParams mgl_gen_default_params(void) {
    MglGenParams p = {.max_new_tokens = 0,
                      .temperature = 0.0f,
                      .top_p = 1.0f,
                      .top_k = 0,
                      .seed = 0,
                      .limit_num = -1,
                      .use_objects = true,
                      .use_high_res = true,
                      .object_order = MGL_OBJECT_ORDER_MODEL};
    return p;
}

MglStatus mgl_object_order_parse(const char* name, int* order) {
    static const struct {
        const char* name;
        int order;
    } k[] = {
        {"model", MGL_OBJECT_ORDER_MODEL}, {"score", MGL_OBJECT_ORDER_SCORE}, {"reading", MGL_OBJECT_ORDER_READING}};
    for (size_t i = 0; name && i < sizeof k / sizeof k[0]; i++)
        if (!strcmp(name, k[i].name)) {
            *order = k[i].order;
            return MGL_OK;
        }
    return MGL_E_INVALID;
}

static uint64_t rng_next(uint64_t* s) {
    /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

typedef struct {
    float p;
    int32_t id;
} Cand;
static int cand_desc(const void* a, const void* b) {
    const Cand* x = a;
    const Cand* y = b;
    if (x->p != y->p) return x->p > y->p ? -1 : 1;
    return x->id - y->id;
}

int32_t mgl_sample_draw(const float* logits, int64_t V, float temperature, int top_k, float top_p, double u) {
    /* temperature -> top-k -> top-p, as HF's logits warpers */
    Cand* c = malloc(sizeof(Cand) * (size_t)V);
    float mx = -INFINITY;
    for (int64_t i = 0; i < V; i++) {
        c[i].p = logits[i] / temperature;
        c[i].id = (int32_t)i;
        if (c[i].p > mx) mx = c[i].p;
    }
    qsort(c, (size_t)V, sizeof(Cand), cand_desc);
    int64_t n = V;
    if (top_k > 0 && top_k < n) n = top_k;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        c[i].p = expf(c[i].p - mx);
        sum += c[i].p;
    }
    if (top_p > 0.0f && top_p < 1.0f) {
        double cum = 0;
        int64_t keep = n;
        for (int64_t i = 0; i < n; i++) {
            cum += c[i].p / sum;
            if (cum >= top_p) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
        sum = 0;
        for (int64_t i = 0; i < n; i++) sum += c[i].p;
    }
    double r = u * sum;
    int32_t id = c[n - 1].id;
    for (int64_t i = 0; i < n; i++) {
        r -= c[i].p;
        if (r < 0) {
            id = c[i].id;
            break;
        }
    }
    free(c);
    return id;
}

int32_t mgl_sample_logits(float* logits, int64_t V, const MglSampling* s) {
    if (s->allow)
        for (int64_t i = 0; i < V; i++)
            if (!((s->allow[i >> 5] >> (i & 31)) & 1u)) logits[i] = -INFINITY;
    if (s->temperature <= 0.0f) {
        int32_t best = 0;
        for (int64_t i = 1; i < V; i++)
            if (logits[i] > logits[best]) best = (int32_t)i;
        return best;
    }
    /* one draw per sampled token */
    return mgl_sample_draw(logits, V, s->temperature, s->top_k, s->top_p, mgl_rng_unit(s->rng));
}

static double now_ms(void) { return (double)g_get_monotonic_time() / 1000.0; }

static bool ends_with_stop_word(const MglModel* m, const int32_t* ids, size_t n) {
    if (!m->tmpl->stop_words[0]) return false;
    char* text = NULL;
    if (mgl_tokenizer_decode(m->tok, ids, n, false, &text, NULL) != MGL_OK) return false;
    /* the reference deletes \r and \n before comparing */
    size_t k = 0;
    for (size_t i = 0; text[i]; i++)
        if (text[i] != '\r' && text[i] != '\n') text[k++] = text[i];
    text[k] = 0;
    bool hit = false;
    for (int i = 0; m->tmpl->stop_words[i] && !hit; i++) hit = g_str_has_suffix(text, m->tmpl->stop_words[i]);
    free(text);
    return hit;
}

double mgl_rng_unit(uint64_t* state) { return (double)(rng_next(state) >> 11) / 9007199254740992.0; }

/* Whitespace as Python's str.isspace() sees it: the reference's answer is
 * decode(...).strip(). */
static bool py_space(gunichar c) {
    return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

void mgl_text_strip(char* s) {
    if (!s) return;
    if (!g_utf8_validate(s, -1, NULL)) {
        g_strstrip(s);
        return;
    }
    char* b = s;
    while (*b && py_space(g_utf8_get_char(b))) b = g_utf8_next_char(b);
    char* end = b;
    for (char* q = b; *q; q = g_utf8_next_char(q))
        if (!py_space(g_utf8_get_char(q))) end = g_utf8_next_char(q);
    memmove(s, b, (size_t)(end - b));
    s[end - b] = 0;
}

/* ---- one request's state, shared by mgl_generate and the scheduler ---- */

MglStatus mgl_gen_begin(MglModel* m, int64_t n_ctx, const MglImage* image, const MglBox* boxes, size_t n_boxes,
                        const char* question, const MglGenParams* params, MglGen* g, MglErr* err) {
    memset(g, 0, sizeof *g);
    if (!image || !question) return mgl_err(err, MGL_E_INVALID, "generate: missing context, image or question");
    MglViews* v = NULL;
    MglStatus st = mgl_gen_check(m, question, params, g, err);
    const double t0 = now_ms();
    if (st == MGL_OK) st = mgl_model_views_make(m, image, &v, err);
    const double t1 = now_ms();
    if (st == MGL_OK) st = mgl_gen_begin_views(m, n_ctx, v, boxes, n_boxes, question, g, err);
    if (st == MGL_OK) g->t.preprocess_ms += t1 - t0;
    mgl_views_unref(v);
    return st;
}

/* The parameter checks of a request (before any image work). */
MglStatus mgl_gen_check(MglModel* m, const char* question, const MglGenParams* params, MglGen* g, MglErr* err) {
    g->p = params ? *params : mgl_gen_default_params();
    MglGenParams* p = &g->p;
    if (p->max_new_tokens <= 0) p->max_new_tokens = m->files->man.max_new_tokens;
    if (p->limit_num < 0) p->limit_num = m->files->man.limit_num;
    if (p->object_order < 0) p->object_order = m->files->man.object_order;
    if (p->object_order != MGL_OBJECT_ORDER_SCORE && p->object_order != MGL_OBJECT_ORDER_READING)
        return mgl_err(err, MGL_E_INVALID, "generate: object_order %d is not an MglObjectOrder", p->object_order);
    if (!(p->temperature >= 0.0f) || !(p->top_p > 0.0f && p->top_p <= 1.0f) || p->top_k < 0)
        return mgl_err(err, MGL_E_INVALID, "generate: temperature must be >= 0, top-p in (0, 1], top-k >= 0");
    MGL_TRY(mgl_model_files_check(m->files, err));
    const char* q = question;
    while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r') q++;
    if (!*q) return mgl_err(err, MGL_E_INVALID, "prompt: empty question");
    return MGL_OK;
}

MglStatus mgl_gen_begin_views(MglModel* m, int64_t n_ctx, MglViews* v, const MglBox* boxes, size_t n_boxes,
                              const char* question, MglGen* g, MglErr* err) {
    const double t0 = now_ms();
    MglGenParams* p = &g->p;
    MGL_TRY(mgl_prompt_build(m->tok, m->tmpl, question, true, &g->pr, err));
    g->in = (MglSeqInput){
        .ids = g->pr.ids, .n_ids = g->pr.n_ids, .image_pos = g->pr.image_pos, .use_high_res = p->use_high_res};
    MglStatus st = mgl_boxes_to_768(boxes, n_boxes, v->width, v->height, p->limit_num, p->object_order, &g->b768,
                                    &g->in.n_obj, err);
    if (st != MGL_OK) {
        mgl_gen_clear(g);
        return st;
    }
    g->views = mgl_views_ref(v);
    g->in.x768 = v->x768;
    g->in.x336 = v->x336;
    if (v->rgb) g->in.rgb = v->rgb, g->in.rgb_w = v->width, g->in.rgb_h = v->height;
    g->in.boxes768 = g->b768;
    if (!p->use_objects || !p->use_high_res) g->in.n_obj = 0;
    st = mgl_gen_ready(m, n_ctx, g, err);
    if (st == MGL_OK) g->t.preprocess_ms = now_ms() - t0;
    return st;
}

/* The prompt's length against the context (the answer budget shrinks to what
 * fits), the sampling state and the buffers; g->in is set. Clears g on an error. */
MglStatus mgl_gen_ready(MglModel* m, int64_t n_ctx, MglGen* g, MglErr* err) {
    MglGenParams* p = &g->p;
    MglStatus st = MGL_OK;
    g->L = mgl_seq_layout(&g->in, m->w.n_patches).L;
    if (g->L + p->max_new_tokens > n_ctx && g->L < n_ctx) {
        /* room for some answer: the budget shrinks to what fits (logged once per model) */
        if (g_atomic_int_compare_and_exchange(&m->warned_budget, 0, 1))
            g_message("mgllava: %d new tokens after a %lld-token prompt exceed the %lld-token context: the answer is "
                      "capped at %lld tokens (this is said once)",
                      p->max_new_tokens, (long long)g->L, (long long)n_ctx, (long long)(n_ctx - g->L));
        p->max_new_tokens = (int)(n_ctx - g->L);
    }
    if (g->L + p->max_new_tokens > n_ctx) {
        st = mgl_err(err, MGL_E_INVALID,
                     "prompt: %lld tokens (%zu text + %lld visual) plus %d new exceed the %lld-token context",
                     (long long)g->L, g->pr.n_ids, (long long)(g->L - (int64_t)g->pr.n_ids), p->max_new_tokens,
                     (long long)n_ctx);
        mgl_gen_clear(g);
        return st;
    }
    g->rng = p->seed ^ 0x6d676c6c617661ull;
    g->seq = (MglSeq){.slot = 0,
                      .n_past = 0,
                      .in = &g->in,
                      .samp = {.temperature = p->temperature, .top_k = p->top_k, .top_p = p->top_p, .rng = &g->rng}};
    g->gen = malloc(sizeof(int32_t) * (size_t)(p->max_new_tokens + 1));
    if (!g->gen) {
        mgl_gen_clear(g);
        return mgl_err(err, MGL_E_NOMEM, "out of memory");
    }
    g->dt = p->on_token ? mgl_detok_new(m->tok, true) : NULL;
    if (p->token_mask && !(g->allow = malloc(sizeof(uint32_t) * (size_t)((m->w.lc.vocab + 31) / 32)))) {
        mgl_gen_clear(g);
        return mgl_err(err, MGL_E_NOMEM, "out of memory");
    }
    return MGL_OK;
}

void mgl_gen_prepare_sample(MglModel* m, MglGen* g) {
    g->seq.samp.allow = NULL;
    if (!g->p.token_mask || !g->allow) return;
    const int32_t V = m->w.lc.vocab;
    memset(g->allow, 0xff, sizeof(uint32_t) * (size_t)((V + 31) / 32));
    if (g->p.token_mask(g->gen, g->ng, g->allow, V, g->p.token_mask_data)) g->seq.samp.allow = g->allow;
}

bool mgl_gen_push(MglModel* m, MglGen* g, MglErr* err) {
    const MglGenParams* p = &g->p;
    const int32_t id = g->seq.token;
    g->gen[g->ng++] = id;
    bool stop = false;
    for (int i = 0; i < m->n_eos; i++) stop |= id == m->eos_ids[i];
    if (p->on_token && !stop) {
        const char* piece = g->dt ? mgl_detok_push(g->dt, id) : "";
        if (!p->on_token(id, piece ? piece : "", p->user_data)) stop = true;
    }
    if (!stop) stop = ends_with_stop_word(m, g->gen, g->ng);
    if (stop || (int)g->ng >= p->max_new_tokens) return true;
    if ((p->abort_flag && *p->abort_flag) || g->abort) {
        g->st = mgl_err(err, MGL_E_ABORTED, "generate: aborted after %zu tokens", g->ng);
        return true;
    }
    /* the next step feeds this token at the position after the last one */
    g->seq.n_past = g->L + (int64_t)g->ng - 1;
    return false;
}

MglStatus mgl_gen_finish(MglModel* m, MglGen* g, char** text, MglErr* err) {
    g->t.n_prompt_tokens = (int)g->L;
    g->t.n_generated = (int)g->ng;
    g->t.n_objects = (int)g->in.n_obj;
    if (g->st != MGL_OK || !text) return g->st;
    char* s = NULL;
    g->st = mgl_tokenizer_decode(m->tok, g->gen, g->ng, true, &s, err);
    if (g->st == MGL_OK) {
        mgl_text_strip(s);
        *text = s;
    }
    return g->st;
}

void mgl_gen_clear(MglGen* g) {
    mgl_gen_clear_clip(g);
    mgl_detok_free(g->dt);
    free(g->allow);
    free(g->gen);
    mgl_views_unref(g->views);
    free(g->b768);
    mgl_prompt_clear(&g->pr);
    memset(g, 0, sizeof *g);
}

/* One request on the context: the backend's reserve, vision and prefill,
 * then one token at a time; EOS, stop words, the streaming callback, the
 * abort flag and the token budget are decided by mgl_gen_push for every
 * backend; the text is the reference's decode(...).strip(). */
MglStatus mgl_generate(MglCtx* c, const MglImage* image, const MglBox* boxes, size_t n_boxes, const char* question,
                       const MglGenParams* params, char** text, int32_t** ids_out, size_t* n_ids_out, MglTimings* tm,
                       MglErr* err) {
    if (text) *text = NULL;
    if (ids_out) *ids_out = NULL;
    if (n_ids_out) *n_ids_out = 0;
    if (!c || !image || !question) return mgl_err(err, MGL_E_INVALID, "generate: missing context, image or question");
    MglGen g;
    MGL_TRY(mgl_gen_begin(c->m, c->p.n_ctx, image, boxes, n_boxes, question, params, &g, err));
    return mgl_gen_run(c, &g, text, ids_out, n_ids_out, tm, err);
}

void mgl_gen_drop_views(MglGen* g) {
    if (!g->views) return;
    g->in.x768 = g->in.x336 = NULL;
    mgl_views_unref(g->views);
    g->views = NULL;
}

/* The steps of one begun request (mgl_gen_begin*) on the context; clears g. */
MglStatus mgl_gen_run(MglCtx* c, MglGen* g, char** text, int32_t** ids_out, size_t* n_ids_out, MglTimings* tm,
                      MglErr* err) {
    MglModel* m = c->m;
    const MglBackend* be = m->be;
    MglSeq* const batch[1] = {&g->seq};
    double t1 = now_ms();
    MglStatus st = be->reserve(c->bc, batch, 1, g->L + g->p.max_new_tokens + 1, err);
    if (st == MGL_OK) st = be->vision(c->bc, batch, 1, err);
    mgl_gen_drop_views(g);
    double t2 = now_ms();
    g->t.vision_ms = t2 - t1;
    if (st == MGL_OK) st = be->prefill(c->bc, batch, 1, err);
    mgl_gen_prepare_sample(m, g);
    if (st == MGL_OK) st = be->sample(c->bc, batch, 1, err);
    g->seq.n_past = g->L;
    double t3 = now_ms();
    g->t.prefill_ms = t3 - t2;
    g->st = st;
    while (g->st == MGL_OK && !mgl_gen_push(m, g, err)) {
        g->st = be->decode(c->bc, batch, 1, err);
        mgl_gen_prepare_sample(m, g);
        if (g->st == MGL_OK) g->st = be->sample(c->bc, batch, 1, err);
    }
    g->t.decode_ms = now_ms() - t3;
    if (g->st == MGL_OK && g->p.on_token && g->dt) { /* text the streaming detokenizer still held back */
        const char* tail = mgl_detok_flush(g->dt);
        if (tail && *tail) g->p.on_token(-1, tail, g->p.user_data);
    }
    st = mgl_gen_finish(m, g, text, err);
    if (st == MGL_OK && ids_out) {
        *ids_out = g->gen;
        g->gen = NULL;
        if (n_ids_out) *n_ids_out = g->ng;
    }
    if (tm) *tm = g->t;
    mgl_gen_clear(g);
    return st;
}

MglStatus mgl_ctx_bench_frame(MglCtx* c, int prompt_tokens, int gen_tokens, MglFrameBench* out, MglErr* err) {
    MglModel* m = c->m;
    const MglBackend* be = m->be;
    const int64_t P = m->w.n_patches, V = m->w.lc.vocab;
    uint8_t* px = malloc(640 * 480 * 3);
    if (!px) return mgl_err(err, MGL_E_NOMEM, "out of memory");
    for (int i = 0; i < 640 * 480 * 3; i++) px[i] = (uint8_t)(i * 131 % 251);
    MglImage img = {px, 640, 480, 640 * 3};
    MglBox bx[10];
    for (int i = 0; i < 10; i++) {
        bx[i].x1 = (float)(i * 40);
        bx[i].y1 = (float)(i * 25);
        bx[i].x2 = (float)(i * 40 + 200);
        bx[i].y2 = (float)(i * 25 + 180);
        bx[i].score = 0.9f - 0.05f * (float)i;
        bx[i].label = i % 2 ? "a" : "b";
    }
    MglStatus st = MGL_OK;
    for (int rep = 0; rep < 2 && st == MGL_OK; rep++) { /* the first run warms up */
        double t0 = now_ms();
        float *x768 = NULL, *x336 = NULL, *b768 = NULL;
        MglSeqInput in = {.use_high_res = true};
        st = mgl_stage_preprocess(&img, bx, 10, 100, MGL_OBJECT_ORDER_SCORE, &x768, &x336, &b768, &in.n_obj, err);
        if (st != MGL_OK) break;
        int64_t n_text = (int64_t)prompt_tokens - P - (int64_t)in.n_obj;
        if (n_text < 2) n_text = 2;
        int32_t* ids = malloc(sizeof(int32_t) * (size_t)n_text);
        for (int64_t i = 0; i < n_text; i++) ids[i] = (int32_t)((i * 31 + 7) % V);
        in.ids = ids;
        in.n_ids = (size_t)n_text;
        in.image_pos = n_text < 5 ? (size_t)n_text : 5;
        in.x768 = x768;
        in.x336 = x336;
        in.boxes768 = b768;
        const int64_t L = mgl_seq_layout(&in, P).L;
        uint64_t rng = 0;
        MglSeq seq = {.slot = 0, .in = &in, .samp = {.temperature = 0.0f, .top_p = 1.0f, .rng = &rng}};
        MglSeq* const batch[1] = {&seq};
        double t1 = now_ms();
        st = be->reserve(c->bc, batch, 1, L + gen_tokens + 1, err);
        if (st == MGL_OK) st = be->vision(c->bc, batch, 1, err);
        double t2 = now_ms();
        if (st == MGL_OK) st = be->prefill(c->bc, batch, 1, err);
        if (st == MGL_OK) st = be->sample(c->bc, batch, 1, err);
        double t3 = now_ms();
        for (int i = 1; i < gen_tokens && st == MGL_OK; i++) {
            seq.n_past = L + i - 1;
            st = be->decode(c->bc, batch, 1, err);
            if (st == MGL_OK) st = be->sample(c->bc, batch, 1, err);
        }
        double t4 = now_ms();
        free(ids);
        free(x768);
        free(x336);
        free(b768);
        out->frame_ms = t4 - t0;
        out->preprocess_ms = t1 - t0;
        out->vision_ms = t2 - t1;
        out->prefill_ms = t3 - t2;
        out->decode_ms = t4 - t3;
        out->prompt_tokens = (int)L;
        out->generated = gen_tokens;
    }
    free(px);
    return st;
}
