/* test_grammar_model: constrained generation through the engine, on the tiny
 * random-weight fixture models (SentencePiece-style Vicuna, byte-level
 * Llama-3): real logits, greedy and sampled, alone (mgl_generate) and
 * batched (MglServer: two requests with different schemas in one batch, each
 * obeying its own), the budget ending inside the structure, and the
 * `mgllava run --schema/--grammar` command. */
#include "test_grammar_util.h"

#include <glib/gstdio.h>
#include <math.h>
#include <sys/wait.h>

static uint8_t* make_image(int w, int h) {
    uint8_t* px = g_malloc((size_t)w * h * 3);
    for (int i = 0; i < w * h * 3; i++) px[i] = (uint8_t)((i * 37) % 251);
    return px;
}

static char* no_spaces(const char* s) {
    GString* o = g_string_new(NULL);
    for (; *s; s++)
        if (*s != ' ') g_string_append_c(o, *s);
    return g_string_free(o, FALSE);
}

/* One constrained request alone: the result flag agrees with the ids, a
 * complete answer validates and equals the engine's own text (spaces
 * aside), an incomplete one used the whole budget and completes to a valid
 * answer. Returns the result. */
static MglGrammarResult one(MglCtx* ctx, const MglTokenizer* tok, const MglImage* img, const char* sch, float temp,
                            uint64_t seed, int budget) {
    MglGrammar* g = NULL;
    MglErr err = {0};
    REQUIRE(mgl_grammar_from_schema(tok, sch, &g, &err) == MGL_OK);
    MglGrammarState* st = NULL;
    REQUIRE(mgl_grammar_state_new(g, &st, &err) == MGL_OK);
    MglGenParams p = mgl_gen_default_params();
    p.max_new_tokens = budget;
    p.temperature = temp;
    p.top_k = temp > 0 ? 40 : 0;
    p.seed = seed;
    mgl_grammar_state_bind(st, &p);
    CHECK(p.token_mask == mgl_grammar_token_mask && p.token_mask_data == st);
    char* text = NULL;
    int32_t* ids = NULL;
    size_t n = 0;
    MglTimings tm;
    MglStatus s = mgl_generate(ctx, img, NULL, 0, "Describe the image as JSON.", &p, &text, &ids, &n, &tm, &err);
    REQUIRE(s == MGL_OK);
    const char* gtext = NULL;
    MglGrammarResult r = mgl_grammar_state_finish(st, ids, n, &gtext);
    GString* why = g_string_new(NULL);
    if (r == MGL_GRAMMAR_COMPLETE) {
        CHECK_MSG(gt_check_json(sch, gtext, why), "answer %s does not validate against %s: %s", gtext, sch, why->str);
        char *a = no_spaces(text), *b = no_spaces(gtext);
        CHECK_MSG(!strcmp(a, b), "engine text \"%s\" vs the grammar's \"%s\"", text, gtext);
        g_free(a);
        g_free(b);
    } else {
        CHECK_MSG(r == MGL_GRAMMAR_INCOMPLETE, "invalid under the mask: %s", gtext);
        CHECK((int)n == budget);
        uint8_t comp[4096];
        int k = gram_state_completion(st, comp, sizeof comp - 1);
        CHECK(k > 0);
        char* full = g_strdup_printf("%s%.*s", gtext, k, (const char*)comp);
        CHECK_MSG(gt_check_json(sch, full, why), "completed %s does not validate: %s", full, why->str);
        g_free(full);
    }
    MglGrammarStats stats;
    mgl_grammar_state_stats(st, &stats);
    CHECK(stats.masks == n); /* one mask per sampled token (the first from the prefill) */
    g_string_free(why, TRUE);
    free(text);
    free(ids);
    mgl_grammar_state_free(st);
    mgl_grammar_free(g);
    return r;
}

static void test_alone(const char* model_rel) {
    char* path = gt_path("MGL_FIXTURES", model_rel);
    MglModel* m = NULL;
    MglCtx* ctx = NULL;
    MglErr err = {0};
    MglModelParams mp = mgl_model_default_params();
    mp.device = "cpu";
    REQUIRE(mgl_model_load(path, &mp, &m, &err) == MGL_OK);
    REQUIRE(mgl_ctx_new(m, &ctx, &err) == MGL_OK);
    const MglTokenizer* tok = mgl_model_tokenizer(m);
    uint8_t* px = make_image(96, 64);
    MglImage img = {px, 96, 64, 96 * 3};
    GRand* r = g_rand_new_with_seed(5);
    int complete = 0, incomplete = 0;
    for (int i = 0; i < 16; i++) {
        GString* sch = g_string_new(NULL);
        gt_rand_top_schema(r, sch);
        MglGrammarResult res = one(ctx, tok, &img, sch->str, i % 2 ? 1.0f : 0.0f, (uint64_t)i, 48);
        complete += res == MGL_GRAMMAR_COMPLETE;
        incomplete += res == MGL_GRAMMAR_INCOMPLETE;
        g_string_free(sch, TRUE);
    }
    /* a small schema with room: greedy and sampled both finish */
    const char* small =
        "{\"type\":\"object\",\"properties\":{\"count\":{\"type\":\"integer\"},\"alert\":{\"type\":\"boolean\"}},"
        "\"required\":[\"count\",\"alert\"]}";
    CHECK(one(ctx, tok, &img, small, 0.0f, 0, 60) == MGL_GRAMMAR_COMPLETE);
    CHECK(one(ctx, tok, &img, small, 0.8f, 9, 60) == MGL_GRAMMAR_COMPLETE);
    /* a budget that ends inside the structure */
    CHECK(one(ctx, tok, &img, small, 0.0f, 0, 3) == MGL_GRAMMAR_INCOMPLETE);
    printf("%s: 16 random schemas: %d complete, %d incomplete (budget 48)\n", model_rel, complete, incomplete);
    g_rand_free(r);
    g_free(px);
    mgl_ctx_free(ctx);
    mgl_model_free(m);
    g_free(path);
}

/* ---- batched ------------------------------------------------------------------------ */

typedef struct {
    GMutex lock;
    GCond cond;
    int done;
    MglGrammarState* st[2];
    MglGrammarResult res[2];
    char* text[2];
    int batch[2];
    double mask_wait[2];
    MglStatus status[2];
} Batch;

typedef struct {
    Batch* b;
    int k;
} BSlot;

static void on_result(uint64_t id, const MglResult* res, void* ud) {
    (void)id;
    BSlot* s = ud;
    Batch* b = s->b;
    const char* t = NULL;
    /* finish in the callback, as the API suggests */
    MglGrammarResult r =
        res->status == MGL_OK ? mgl_grammar_state_finish(b->st[s->k], res->ids, res->n_ids, &t) : MGL_GRAMMAR_INVALID;
    g_mutex_lock(&b->lock);
    b->res[s->k] = r;
    b->text[s->k] = g_strdup(t ? t : "");
    b->batch[s->k] = res->batch;
    b->mask_wait[s->k] = res->mask_wait_ms;
    b->status[s->k] = res->status;
    b->done++;
    g_cond_broadcast(&b->cond);
    g_mutex_unlock(&b->lock);
}

static void test_batched(const char* model_rel) {
    char* path = gt_path("MGL_FIXTURES", model_rel);
    MglModel* m = NULL;
    MglErr err = {0};
    MglModelParams mp = mgl_model_default_params();
    mp.device = "cpu";
    REQUIRE(mgl_model_load(path, &mp, &m, &err) == MGL_OK);
    const MglTokenizer* tok = mgl_model_tokenizer(m);
    /* two schemas with no common answer: an object and an array */
    const char* sch[2] = {
        "{\"type\":\"object\",\"properties\":{\"count\":{\"type\":\"integer\"},\"label\":{\"enum\":[\"red\","
        "\"blue\"]}},\"required\":[\"count\",\"label\"]}",
        "{\"type\":\"array\",\"items\":{\"type\":\"boolean\"},\"minItems\":2,\"maxItems\":3}"};
    MglGrammar* g[2];
    for (int k = 0; k < 2; k++) REQUIRE(mgl_grammar_from_schema(tok, sch[k], &g[k], &err) == MGL_OK);
    uint8_t* px = make_image(96, 64);
    MglImage img = {px, 96, 64, 96 * 3};
    /* the masks after each step (the CPU's way), then on the server's mask
     * thread beside the step (a device backend's way): the same answers */
    char* answers[2][3][2] = {{{NULL}}};
    for (int overlap = 0; overlap < 2; overlap++) {
        g_setenv("MGL_MASK_OVERLAP", overlap ? "1" : "0", TRUE);
        MglServerParams sp = mgl_server_default_params();
        sp.max_batch = 2;
        MglServer* srv = NULL;
        REQUIRE(mgl_server_new(m, &sp, &srv, &err) == MGL_OK);
        MglStream* stream = mgl_stream_new(srv);
        for (int round = 0; round < 3; round++) {
            Batch b = {0};
            g_mutex_init(&b.lock);
            g_cond_init(&b.cond);
            MglGenParams gp[2];
            MglFrameRequest req[2];
            BSlot slot[2];
            for (int k = 0; k < 2; k++) {
                REQUIRE(mgl_grammar_state_new(g[k], &b.st[k], &err) == MGL_OK);
                gp[k] = mgl_gen_default_params();
                gp[k].max_new_tokens = 60;
                gp[k].temperature = round == 0 ? 0.0f : 1.0f;
                gp[k].seed = (uint64_t)(round * 10 + k);
                mgl_grammar_state_bind(b.st[k], &gp[k]);
                slot[k] = (BSlot){&b, k};
                req[k] = (MglFrameRequest){.question = k ? "List booleans." : "Count them.",
                                           .params = &gp[k],
                                           .done = on_result,
                                           .user_data = &slot[k]};
            }
            REQUIRE(mgl_stream_submit_frame(stream, &img, req, 2, NULL, &err) == MGL_OK);
            g_mutex_lock(&b.lock);
            gint64 end = g_get_monotonic_time() + 120 * G_TIME_SPAN_SECOND;
            while (b.done < 2 && g_cond_wait_until(&b.cond, &b.lock, end)) {
            }
            g_mutex_unlock(&b.lock);
            REQUIRE(b.done == 2);
            for (int k = 0; k < 2; k++) {
                CHECK(b.status[k] == MGL_OK);
                GString* why = g_string_new(NULL);
                CHECK_MSG(b.res[k] == MGL_GRAMMAR_COMPLETE, "%s: request %d: %s \"%s\"", model_rel, k,
                          mgl_grammar_result_name(b.res[k]), b.text[k]);
                if (b.res[k] == MGL_GRAMMAR_COMPLETE) {
                    CHECK_MSG(gt_check_json(sch[k], b.text[k], why), "request %d: %s: %s", k, b.text[k], why->str);
                    g_string_truncate(why, 0);
                    CHECK_MSG(!gt_check_json(sch[1 - k], b.text[k], why), "request %d's answer fits the other schema",
                              k);
                }
                g_string_free(why, TRUE);
                /* the server's time on the masks after the steps: computing them
                 * (no overlap) takes some; waiting for the mask thread may take none */
                CHECK_MSG(b.mask_wait[k] >= 0.0 && b.mask_wait[k] < 120e3 && (overlap || b.mask_wait[k] > 0.0),
                          "request %d: mask_wait_ms %g (overlap %d)", k, b.mask_wait[k], overlap);
                mgl_grammar_state_free(b.st[k]);
                answers[overlap][round][k] = b.text[k];
            }
            CHECK_MSG(b.batch[0] == 2 && b.batch[1] == 2, "decoded in batches of %d and %d", b.batch[0], b.batch[1]);
            g_mutex_clear(&b.lock);
            g_cond_clear(&b.cond);
        }
        mgl_stream_free(stream);
        mgl_server_free(srv);
    }
    g_unsetenv("MGL_MASK_OVERLAP");
    for (int round = 0; round < 3; round++)
        for (int k = 0; k < 2; k++) {
            CHECK_MSG(g_strcmp0(answers[0][round][k], answers[1][round][k]) == 0,
                      "%s: round %d request %d: \"%s\" with the masks after the step, \"%s\" beside it", model_rel,
                      round, k, answers[0][round][k], answers[1][round][k]);
            g_free(answers[0][round][k]);
            g_free(answers[1][round][k]);
        }
    printf("%s: two schemas in one batch of 2: each answer obeys its own (3 rounds, greedy and sampled), the same "
           "with the masks computed beside the step\n",
           model_rel);
    for (int k = 0; k < 2; k++) mgl_grammar_free(g[k]);
    g_free(px);
    mgl_model_free(m);
    g_free(path);
}

/* ---- the command ---------------------------------------------------------------------- */

static int run_cli(const char* const* args, char** out, char** errs) {
    GPtrArray* argv = g_ptr_array_new();
    g_ptr_array_add(argv, (gpointer)test_env("MGLLAVA"));
    for (int i = 0; args[i]; i++) g_ptr_array_add(argv, (gpointer)args[i]);
    g_ptr_array_add(argv, NULL);
    int status = -1;
    GError* ge = NULL;
    REQUIRE(g_spawn_sync(NULL, (gchar**)argv->pdata, NULL, 0, NULL, NULL, out, errs, &status, &ge));
    g_ptr_array_unref(argv);
    return g_spawn_check_wait_status(status, NULL) ? 0 : (WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

static void test_cli(void) {
    char* dir = g_dir_make_tmp("mgl-grammar-XXXXXX", NULL);
    REQUIRE(dir);
    char* img = g_build_filename(dir, "img.ppm", NULL);
    GString* ppm = g_string_new("P6\n64 48\n255\n");
    for (int i = 0; i < 64 * 48 * 3; i++) g_string_append_c(ppm, (char)((i * 29) % 256));
    REQUIRE(g_file_set_contents(img, ppm->str, (gssize)ppm->len, NULL));
    g_string_free(ppm, TRUE);
    const char* sch =
        "{\"type\":\"object\",\"properties\":{\"count\":{\"type\":\"integer\"}},\"required\":[\"count\"]}";
    char* schema = g_build_filename(dir, "count.json", NULL);
    REQUIRE(g_file_set_contents(schema, sch, -1, NULL));
    char* bad = g_build_filename(dir, "bad.json", NULL);
    REQUIRE(g_file_set_contents(bad, "{\"type\":\"string\",\"pattern\":\"^a\"}", -1, NULL));
    char* gram = g_build_filename(dir, "yn.gbnf", NULL);
    REQUIRE(g_file_set_contents(gram, "root ::= \"yes\" | \"no\"\n", -1, NULL));
    char* model = gt_path("MGL_FIXTURES", "models/tiny-vicuna");
    char *out = NULL, *errs = NULL;

    const char* a1[] = {"run",       "--model",  model,  "--image",          img,  "--prompt",
                        "How many?", "--schema", schema, "--max-new-tokens", "60", NULL};
    int rc = run_cli(a1, &out, &errs);
    CHECK_MSG(rc == 0, "rc %d: %s", rc, errs);
    g_strstrip(out);
    GString* why = g_string_new(NULL);
    CHECK_MSG(gt_check_json(sch, out, why), "--schema printed \"%s\": %s", out, why->str);
    g_free(out);
    g_free(errs);

    const char* a2[] = {"run",       "--model",  model,  "--image",          img, "--prompt",
                        "How many?", "--schema", schema, "--max-new-tokens", "2", NULL};
    rc = run_cli(a2, &out, &errs);
    CHECK(rc == 1);
    CHECK_MSG(strstr(errs, "incomplete answer") && strstr(errs, "budget is 2 new tokens") &&
                  strstr(errs, "--max-new-tokens"),
              "%s", errs);
    CHECK_MSG(!*out, "an incomplete answer was printed: %s", out);
    g_free(out);
    g_free(errs);

    const char* a3[] = {"run", "--model", model, "--image", img, "--prompt", "How many?", "--schema", bad, NULL};
    rc = run_cli(a3, &out, &errs);
    CHECK(rc == 1);
    CHECK_MSG(strstr(errs, "unsupported keyword \"pattern\"") && strstr(errs, "bad.json"), "%s", errs);
    g_free(out);
    g_free(errs);

    const char* a4[] = {"run",        "--model",   model, "--image", img, "--prompt",
                        "Is it red?", "--grammar", gram,  "--json",  NULL};
    rc = run_cli(a4, &out, &errs);
    CHECK_MSG(rc == 0, "rc %d: %s", rc, errs);
    CHECK_MSG(strstr(out, "\"text\": \"yes\"") || strstr(out, "\"text\": \"no\""), "%s", out);
    CHECK(strstr(out, "\"constraint\": \"complete\"") != NULL);
    g_free(out);
    g_free(errs);

    const char* a5[] = {"run", "--model",   model, "--image",  img,    "--prompt",
                        "x",   "--grammar", gram,  "--schema", schema, NULL};
    rc = run_cli(a5, &out, &errs);
    CHECK(rc == 1 && strstr(errs, "not both"));
    g_free(out);
    g_free(errs);

    char* missing = g_build_filename(dir, "missing.json", NULL);
    const char* a6[] = {"run", "--model", model, "--image", img, "--prompt", "x", "--schema", missing, NULL};
    rc = run_cli(a6, &out, &errs);
    CHECK(rc == 1 && strstr(errs, "missing.json"));
    g_free(out);
    g_free(errs);

    g_string_free(why, TRUE);
    const char* files[] = {img, schema, bad, gram};
    for (int i = 0; i < 4; i++) g_unlink(files[i]);
    g_rmdir(dir);
    g_free(missing);
    g_free(model);
    g_free(gram);
    g_free(bad);
    g_free(schema);
    g_free(img);
    g_free(dir);
}

int main(void) {
    test_alone("models/tiny-vicuna");
    test_alone("models/tiny-llama3");
    test_batched("models/tiny-vicuna");
    test_batched("models/tiny-llama3");
    test_cli();
    TEST_DONE();
}
