/* The public inference API on a tiny model: streaming, sampling, abort, the
 * object order, and bad input (empty or huge images, NaN/huge boxes, prompts too long, empty or
 * invalid prompts) giving clear errors instead of crashes. */
#include "mgllava.h"
#include "mgl-preprocess.h"
#include "mgl-test.h"

#include <glib.h>
#include <math.h>
#include <unistd.h>

static MglModel* model;
static MglCtx* ctx;
static uint8_t pixels[64 * 48 * 3];
static const MglImage img = {pixels, 64, 48, 64 * 3};

typedef struct {
    GString* s;
    int n;
    int stop_after;
} Stream;
static bool on_tok(int32_t id, const char* text, void* ud) {
    Stream* st = ud;
    g_string_append(st->s, text);
    st->n++;
    return st->stop_after <= 0 || st->n < st->stop_after;
}

static MglStatus gen(const MglBox* b, size_t nb, const char* q, MglGenParams* p, int32_t** ids, size_t* n,
                     MglErr* err) {
    char* text = NULL;
    MglStatus st = mgl_generate(ctx, &img, b, nb, q, p, &text, ids, n, NULL, err);
    free(text);
    return st;
}

/* Object order: NMS order (score) against reading order (row third of the box
 * centre, then x), on a 640x480 frame whose boxes are given most confident
 * first in a scrambled order; both through mgl_boxes_to_768 and mgl_generate. */
static void object_order(void) {
    MglErr err = {0};
    /* centres (row third by y in 0..479, then x): D(500,60) row 0; B(100,200)
     * and E(300,230) row 1; A(50,400), F(600,470) and C(320,420) row 2 */
    const MglBox scrambled[] = {
        {40, 380, 60, 420, 0.9f, "a"},
        {90, 190, 110, 210, 0.8f, "b"},
        {310, 410, 330, 430, 0.7f, "c"},
        {490, 50, 510, 70, 0.6f, "d"},
        {290, 220, 310, 240, 0.5f, "e"},
        {590, 460, 610, 479, 0.4f, "f"},
        /* y centre exactly 160 (3*160/480 = 1): row 1, left of B */
        {0, 150, 20, 170, 0.3f, "g"},
    };
    const size_t n = G_N_ELEMENTS(scrambled);
    const int want_reading[] = {3, 6, 1, 4, 0, 2, 5};
    float *b_score = NULL, *b_read = NULL;
    size_t n_score = 0, n_read = 0;
    REQUIRE(mgl_boxes_to_768(scrambled, n, 640, 480, 0, MGL_OBJECT_ORDER_SCORE, &b_score, &n_score, &err) == MGL_OK);
    REQUIRE(mgl_boxes_to_768(scrambled, n, 640, 480, 0, MGL_OBJECT_ORDER_READING, &b_read, &n_read, &err) == MGL_OK);
    REQUIRE(n_score == n && n_read == n);
    for (size_t i = 0; i < n; i++) {
        /* same 768-frame boxes, permuted: reading slot i holds score slot want_reading[i] */
        for (int k = 0; k < 4; k++)
            CHECK_MSG(b_read[4 * i + k] == b_score[4 * want_reading[i] + k], "slot %zu coord %d: %g vs %g", i, k,
                      b_read[4 * i + k], b_score[4 * want_reading[i] + k]);
    }
    /* score order: x1 of the first box is box a's (40 * 1.2 = 48) */
    CHECK(b_score[0] == 48.0f && b_read[0] == 588.0f);
    free(b_score);
    free(b_read);

    /* through generate: reading order of the scrambled boxes gives what the
     * same boxes in reading order (equal scores keep their input order) give */
    MglBox in_order[G_N_ELEMENTS(scrambled)];
    for (size_t i = 0; i < n; i++) {
        in_order[i] = scrambled[want_reading[i]];
        in_order[i].score = 1.0f;
    }
    uint8_t* px = malloc(640 * 480 * 3);
    for (size_t i = 0; i < 640 * 480 * 3; i++) px[i] = (uint8_t)(i * 29 % 253);
    const MglImage frame = {px, 640, 480, 640 * 3};
    MglGenParams p = mgl_gen_default_params();
    p.max_new_tokens = 8;
    p.object_order = MGL_OBJECT_ORDER_READING;
    int32_t *a = NULL, *b = NULL, *c = NULL;
    size_t na = 0, nb = 0, nc = 0;
    char* text = NULL;
    CHECK(mgl_generate(ctx, &frame, scrambled, n, "Describe the image.", &p, &text, &a, &na, NULL, &err) == MGL_OK);
    free(text);
    p.object_order = MGL_OBJECT_ORDER_SCORE;
    CHECK(mgl_generate(ctx, &frame, in_order, n, "Describe the image.", &p, &text, &b, &nb, NULL, &err) == MGL_OK);
    free(text);
    CHECK_MSG(na == nb && na > 0 && memcmp(a, b, na * sizeof *a) == 0, "reading order: %zu vs %zu tokens", na, nb);
    /* the model's default (its manifest has no object_order: score) */
    p.object_order = MGL_OBJECT_ORDER_MODEL;
    CHECK(mgl_generate(ctx, &frame, in_order, n, "Describe the image.", &p, &text, &c, &nc, NULL, &err) == MGL_OK);
    free(text);
    CHECK(nc == nb && memcmp(b, c, nb * sizeof *b) == 0);
    free(a);
    free(b);
    free(c);
    free(px);

    int o = 99;
    CHECK(mgl_object_order_parse("reading", &o) == MGL_OK && o == MGL_OBJECT_ORDER_READING);
    CHECK(mgl_object_order_parse("score", &o) == MGL_OK && o == MGL_OBJECT_ORDER_SCORE);
    CHECK(mgl_object_order_parse("model", &o) == MGL_OK && o == MGL_OBJECT_ORDER_MODEL);
    CHECK(mgl_object_order_parse("Reading", &o) == MGL_E_INVALID && mgl_object_order_parse(NULL, &o) == MGL_E_INVALID);
}

static void bad(MglStatus want, const char* needle, const MglImage* im, const MglBox* b, size_t nb, const char* q,
                MglGenParams* p) {
    MglErr err = {0};
    char* text = NULL;
    MglStatus st = mgl_generate(ctx, im, b, nb, q, p, &text, NULL, NULL, NULL, &err);
    CHECK_MSG(st == want, "status %d, want %d (%s)", st, want, err.msg);
    CHECK_MSG(strstr(err.msg, needle) != NULL, "message lacks '%s': %s", needle, err.msg);
    CHECK(text == NULL);
    printf("  expected error: %s\n", err.msg);
}

int main(void) {
    for (size_t i = 0; i < sizeof pixels; i++) pixels[i] = (uint8_t)(i * 37 % 251);
    char* path = g_build_filename(test_env("MGL_FIXTURES"), "models", "tiny-llama3", NULL);
    MglErr err = {0};
    MglModelParams mp = mgl_model_default_params();
    REQUIRE(mgl_model_load(path, &mp, &model, &err) == MGL_OK);
    REQUIRE(mgl_ctx_new(model, &ctx, &err) == MGL_OK);
    CHECK(mgl_model_default_max_new_tokens(model) == 16);
    CHECK(strcmp(mgl_model_template(model)->name, "llama3_chat") == 0);

    /* greedy is deterministic; streaming pieces concatenate to the answer */
    MglGenParams p = mgl_gen_default_params();
    int32_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    MglBox box = {5, 5, 40, 30, 0.9f, "thing"};
    CHECK(gen(&box, 1, "Describe the image.", &p, &a, &na, &err) == MGL_OK);
    Stream s = {g_string_new(NULL), 0, 0};
    p.on_token = on_tok;
    p.user_data = &s;
    char* text = NULL;
    MglTimings tm;
    CHECK(mgl_generate(ctx, &img, &box, 1, "Describe the image.", &p, &text, &b, &nb, &tm, &err) == MGL_OK);
    CHECK(na == nb && na > 0 && memcmp(a, b, na * sizeof *a) == 0);
    char* streamed = g_strstrip(g_strdup(s.s->str));
    CHECK_MSG(strcmp(streamed, text) == 0, "streamed '%s' vs '%s'", streamed, text);
    CHECK(tm.n_objects == 1 && tm.n_generated == (int)nb && tm.vision_ms > 0 && tm.prefill_ms > 0);
    g_free(streamed);
    free(text);
    free(b);
    /* the callback can stop generation */
    g_string_truncate(s.s, 0);
    s.n = 0;
    s.stop_after = 3;
    CHECK(gen(&box, 1, "Describe the image.", &p, &b, &nb, &err) == MGL_OK);
    CHECK(nb == 3);
    free(b);
    /* top-k 1 sampling equals greedy; seeded sampling repeats itself */
    MglGenParams q = mgl_gen_default_params();
    q.temperature = 0.7f;
    q.top_k = 1;
    CHECK(gen(&box, 1, "Describe the image.", &q, &b, &nb, &err) == MGL_OK);
    CHECK(nb == na && memcmp(a, b, na * sizeof *a) == 0);
    free(b);
    q.top_k = 0;
    q.top_p = 0.9f;
    q.temperature = 5.0f;
    q.seed = 42;
    int32_t* c = NULL;
    size_t nc = 0;
    CHECK(gen(&box, 1, "Describe the image.", &q, &b, &nb, &err) == MGL_OK);
    CHECK(gen(&box, 1, "Describe the image.", &q, &c, &nc, &err) == MGL_OK);
    CHECK(nb == nc && memcmp(b, c, nb * sizeof *b) == 0);
    for (size_t i = 0; i < nb; i++) CHECK(b[i] >= 0 && b[i] < 405);
    free(b);
    free(c);
    /* no boxes: one dummy object token; use_objects=false: none; use_high_res=false */
    CHECK(mgl_generate(ctx, &img, NULL, 0, "Describe the image.", NULL, &text, NULL, NULL, &tm, &err) == MGL_OK);
    CHECK(tm.n_objects == 1);
    free(text);
    MglGenParams r = mgl_gen_default_params();
    r.use_objects = false;
    CHECK(mgl_generate(ctx, &img, &box, 1, "Describe the image.", &r, &text, NULL, NULL, &tm, &err) == MGL_OK);
    CHECK(tm.n_objects == 0);
    free(text);
    r = mgl_gen_default_params();
    r.use_high_res = false;
    CHECK(mgl_generate(ctx, &img, &box, 1, "Describe the image.", &r, &text, NULL, NULL, &tm, &err) == MGL_OK);
    free(text);
    /* abort */
    volatile int flag = 1;
    r = mgl_gen_default_params();
    r.abort_flag = &flag;
    bad(MGL_E_ABORTED, "aborted", &img, &box, 1, "Describe the image.", &r);

    /* bad input */
    const MglImage empty = {pixels, 0, 0, 0};
    const MglImage huge = {pixels, 20000, 10, 60000};
    const MglImage short_stride = {pixels, 64, 48, 10};
    bad(MGL_E_INVALID, "empty", &empty, NULL, 0, "hi", NULL);
    bad(MGL_E_INVALID, "16384", &huge, NULL, 0, "hi", NULL);
    bad(MGL_E_INVALID, "stride", &short_stride, NULL, 0, "hi", NULL);
    bad(MGL_E_INVALID, "missing", NULL, NULL, 0, "hi", NULL);
    MglBox nanbox = {NAN, 0, 10, 10, 0.5f, "x"};
    MglBox infbox = {0, 0, INFINITY, 10, 0.5f, "x"};
    MglBox hugebox = {0, 0, 1e9f, 10, 0.5f, "x"};
    MglBox nanscore = {0, 0, 10, 10, NAN, "x"};
    bad(MGL_E_INVALID, "non-finite", &img, &nanbox, 1, "hi", NULL);
    bad(MGL_E_INVALID, "non-finite", &img, &infbox, 1, "hi", NULL);
    bad(MGL_E_INVALID, "1e6", &img, &hugebox, 1, "hi", NULL);
    bad(MGL_E_INVALID, "non-finite", &img, &nanscore, 1, "hi", NULL);
    /* negative and out-of-frame coordinates are ordinary detector output: clamped, or dropped to the dummy box */
    MglBox neg[2] = {{-30, -20, 20, 20, 0.9f, "a"}, {-300, -300, -200, -200, 0.8f, "b"}};
    CHECK(mgl_generate(ctx, &img, neg, 2, "hi", NULL, &text, NULL, NULL, &tm, &err) == MGL_OK && tm.n_objects == 1);
    free(text);
    bad(MGL_E_INVALID, "empty question", &img, NULL, 0, "", NULL);
    bad(MGL_E_INVALID, "empty question", &img, NULL, 0, "  \n ", NULL);
    bad(MGL_E_INVALID, "UTF-8", &img, NULL, 0, "caf\xc3", NULL);
    bad(MGL_E_INVALID, "<image>", &img, NULL, 0, "what is <image>?", NULL);
    GString* lng = g_string_new(NULL);
    for (int i = 0; i < 3000; i++) g_string_append(lng, "the red circle ");
    bad(MGL_E_INVALID, "context", &img, NULL, 0, lng->str, NULL);
    g_string_free(lng, TRUE);
    MglGenParams t = mgl_gen_default_params();
    t.top_p = 0;
    bad(MGL_E_INVALID, "top-p", &img, NULL, 0, "hi", &t);
    t = mgl_gen_default_params();
    t.temperature = NAN;
    bad(MGL_E_INVALID, "temperature", &img, NULL, 0, "hi", &t);
    t = mgl_gen_default_params();
    t.object_order = 7;
    bad(MGL_E_INVALID, "object_order", &img, NULL, 0, "hi", &t);
    object_order();
    /* many boxes: NMS + the per-label cap keep it bounded */
    MglBox* many = calloc(10000, sizeof(MglBox));
    for (int i = 0; i < 10000; i++)
        many[i] = (MglBox){(float)(i % 60),     (float)(i % 40),         (float)(i % 60 + 5),
                           (float)(i % 40 + 5), (float)(i % 97) / 97.0f, i % 3 ? "a" : "b"};
    CHECK(mgl_generate(ctx, &img, many, 10000, "hi", NULL, &text, NULL, NULL, &tm, &err) == MGL_OK);
    /* at most limit_num (100) survive uncapped; above that, 20 per label */
    CHECK_MSG(tm.n_objects >= 1 && tm.n_objects <= 100, "%d objects", tm.n_objects);
    free(text);
    free(many);

    /* a weight file truncated on disk after loading: a clear error, not SIGBUS */
    {
        char* tmp = g_dir_make_tmp("mgl-api-XXXXXX", NULL);
        char* parent = g_path_get_dirname(path);
        char* cmd = g_strdup_printf("cp -r '%s'/. '%s'", parent, tmp);
        REQUIRE(system(cmd) == 0);
        g_free(cmd);
        char* mdir = g_build_filename(tmp, "tiny-llama3", NULL);
        char* pth = g_build_filename(mdir, "iter_10.pth", NULL);
        MglModel* m3 = NULL;
        MglCtx* c3 = NULL;
        REQUIRE(mgl_model_load(mdir, NULL, &m3, &err) == MGL_OK);
        REQUIRE(mgl_ctx_new(m3, &c3, &err) == MGL_OK);
        CHECK(mgl_generate(c3, &img, NULL, 0, "hi", NULL, &text, NULL, NULL, NULL, &err) == MGL_OK);
        free(text);
        REQUIRE(truncate(pth, 1000) == 0);
        text = NULL;
        MglStatus st = mgl_generate(c3, &img, NULL, 0, "hi", NULL, &text, NULL, NULL, NULL, &err);
        CHECK_MSG(st == MGL_E_IO && strstr(err.msg, "iter_10.pth") && strstr(err.msg, "changed on disk"), "%d %s", st,
                  err.msg);
        printf("  expected error: %s\n", err.msg);
        CHECK(text == NULL);
        mgl_ctx_free(c3);
        mgl_model_free(m3);
        cmd = g_strdup_printf("rm -rf '%s'", tmp);
        CHECK(system(cmd) == 0);
        g_free(cmd);
        g_free(pth);
        g_free(mdir);
        g_free(parent);
        g_free(tmp);
    }

    /* model loading errors */
    MglModel* m2 = NULL;
    MglModelParams bp = mgl_model_default_params();
    bp.device = "tpu";
    CHECK(mgl_model_load(path, &bp, &m2, &err) == MGL_E_INVALID && m2 == NULL);
    CHECK(mgl_model_load("/nonexistent", NULL, &m2, &err) == MGL_E_IO && m2 == NULL);
    free(a);
    g_string_free(s.s, TRUE);
    mgl_ctx_free(ctx);
    mgl_model_free(model);
    mgl_model_free(NULL);
    mgl_ctx_free(NULL);
    g_free(path);
    TEST_DONE();
}
