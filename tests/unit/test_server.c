/* The scheduler (MglServer) against mgl_generate alone, on the three tiny
 * LLM families (Llama MHA, Llama GQA, Phi-3): requests with different prompt
 * lengths, budgets and sampling settings join and leave a batch smaller than
 * their number, from two streams; every answer must be the one the request
 * gets alone, token for token. Also: abort of one request and of a whole
 * stream, and an explicit max_batch that cannot fit.
 *
 * MGL_TEST_DEVICE (default cpu) and MGL_TEST_PRECISION choose the backend:
 * tests/gpu runs it on CUDA with batched decode steps (MGL_CUDA_BATCHED=1),
 * skipped (77) where no GPU can be used. */
#include "mgllava.h"
#include "mgl-test.h"

#include <glib.h>
#include <stdlib.h>
#include <string.h>

#define NREQ 7

#define REQUIRE_MSG(cond, ...)                                                                                         \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "%s:%d: REQUIRE failed: %s: ", __FILE__, __LINE__, #cond);                                 \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fputc('\n', stderr);                                                                                       \
            exit(1);                                                                                                   \
        }                                                                                                              \
    } while (0)

typedef struct {
    GMutex lock;
    GCond cond;
    int done;
    MglStatus status[NREQ];
    int32_t* ids[NREQ];
    size_t n_ids[NREQ];
    char* text[NREQ];
    int batch[NREQ];
    uint64_t id[NREQ];
} Results;

typedef struct {
    Results* r;
    int k;
} Slot;

static void on_result(uint64_t id, const MglResult* res, void* ud) {
    Slot* s = ud;
    Results* r = s->r;
    g_mutex_lock(&r->lock);
    r->status[s->k] = res->status;
    r->ids[s->k] = g_memdup2(res->ids, sizeof(int32_t) * (res->n_ids ? res->n_ids : 1));
    r->n_ids[s->k] = res->n_ids;
    r->text[s->k] = g_strdup(res->text);
    r->batch[s->k] = res->batch;
    r->done++;
    g_cond_broadcast(&r->cond);
    g_mutex_unlock(&r->lock);
}

static void wait_done(Results* r, int n) {
    g_mutex_lock(&r->lock);
    gint64 end = g_get_monotonic_time() + 120 * G_TIME_SPAN_SECOND;
    while (r->done < n && g_cond_wait_until(&r->cond, &r->lock, end)) {
    }
    g_mutex_unlock(&r->lock);
}

static void results_clear(Results* r) {
    for (int k = 0; k < NREQ; k++) {
        g_free(r->ids[k]);
        g_free(r->text[k]);
    }
}

/* The token mask of the tests: ids below 40 and EOS only. */
static bool allow_small_ids(const int32_t* gen, size_t n, uint32_t* allow, int32_t V, void* ud) {
    (void)gen;
    (void)n;
    (void)ud;
    const int32_t eos = 2;
    for (int32_t i = 40; i < V; i++)
        if (i != eos) allow[i >> 5] &= ~(1u << (i & 31));
    return true;
}

static const char* questions[NREQ] = {"Describe the image.",
                                      "What is in the picture?",
                                      "Count the objects, then name every colour you can see.",
                                      "Where is the red one?",
                                      "Is there anything at the top left of the frame, and what is it?",
                                      "Hi",
                                      "What is the second object from the left?"};

static void make_request(int k, uint8_t* px, MglImage* img, MglBox* boxes, size_t* nb, MglGenParams* p) {
    const int w = 40 + 8 * k, h = 30 + 5 * k;
    for (int i = 0; i < w * h * 3; i++) px[i] = (uint8_t)((i * (7 + k) + k * 31) % 251);
    *img = (MglImage){px, w, h, w * 3};
    *nb = (size_t)(k % 4);
    for (size_t i = 0; i < *nb; i++)
        boxes[i] = (MglBox){(float)(2 * i),     (float)(3 * i),  (float)(w / 2 + i),
                            (float)(h / 2 + i), 0.9f - 0.1f * i, i % 2 ? "a" : "b"};
    *p = mgl_gen_default_params();
    p->max_new_tokens = 4 + 3 * k;
    if (k % 3 == 1) { /* seeded sampling */
        p->temperature = 0.9f;
        p->top_k = 20;
        p->top_p = 0.95f;
        p->seed = 1000 + k;
    }
}

static void family(const char* name) {
    char* path = g_build_filename(test_env("MGL_FIXTURES"), "models", name, NULL);
    MglModelParams mp = mgl_model_default_params();
    const char* dev = getenv("MGL_TEST_DEVICE");
    mp.device = dev && *dev ? dev : "cpu";
    const char* prec = getenv("MGL_TEST_PRECISION");
    if (prec && *prec) mp.precision = prec;
    MglModel* m = NULL;
    MglErr err = {0};
    MglStatus ls = mgl_model_load(path, &mp, &m, &err);
    if (ls == MGL_E_DEVICE && strcmp(mp.device, "cpu") != 0) {
        printf("skipped: no %s device (%s)\n", mp.device, err.msg);
        exit(77);
    }
    REQUIRE_MSG(ls == MGL_OK, "%s: %s", path, err.msg);
    MglCtx* c = NULL;
    REQUIRE(mgl_ctx_new(m, &c, &err) == MGL_OK);

    static uint8_t px[NREQ][100 * 70 * 3];
    MglImage img[NREQ];
    MglBox boxes[NREQ][4];
    size_t nb[NREQ];
    MglGenParams gp[NREQ];
    int32_t* alone[NREQ];
    size_t n_alone[NREQ];
    char* text_alone[NREQ];
    for (int k = 0; k < NREQ; k++) {
        make_request(k, px[k], &img[k], boxes[k], &nb[k], &gp[k]);
        REQUIRE_MSG(mgl_generate(c, &img[k], boxes[k], nb[k], questions[k], &gp[k], &text_alone[k], &alone[k],
                                 &n_alone[k], NULL, &err) == MGL_OK,
                    "%s alone %d: %s", name, k, err.msg);
    }

    /* three slots for seven requests from two streams */
    MglServerParams sp = mgl_server_default_params();
    sp.max_batch = 3;
    MglServer* s = NULL;
    REQUIRE_MSG(mgl_server_new(m, &sp, &s, &err) == MGL_OK, "%s", err.msg);
    CHECK(mgl_server_max_batch(s) == 3);
    MglStream* st[2] = {mgl_stream_new(s), mgl_stream_new(s)};
    Results r;
    memset(&r, 0, sizeof r);
    g_mutex_init(&r.lock);
    g_cond_init(&r.cond);
    Slot slots[NREQ];
    for (int k = 0; k < NREQ; k++) {
        slots[k] = (Slot){&r, k};
        REQUIRE_MSG(mgl_stream_submit(st[k % 2], &img[k], boxes[k], nb[k], questions[k], &gp[k], on_result, &slots[k],
                                      &r.id[k], &err) == MGL_OK,
                    "%s", err.msg);
        CHECK(r.id[k] > 0);
    }
    wait_done(&r, NREQ);
    REQUIRE_MSG(r.done == NREQ, "%s: %d of %d answers", name, r.done, NREQ);
    int batched = 0;
    for (int k = 0; k < NREQ; k++) {
        CHECK_MSG(r.status[k] == MGL_OK, "%s request %d: %s", name, k, mgl_status_to_string(r.status[k]));
        bool same = r.n_ids[k] == n_alone[k] && memcmp(r.ids[k], alone[k], sizeof(int32_t) * n_alone[k]) == 0;
        CHECK_MSG(same, "%s request %d: %zu tokens in the batch vs %zu alone", name, k, r.n_ids[k], n_alone[k]);
        CHECK_MSG(r.text[k] && !strcmp(r.text[k], text_alone[k]), "%s request %d: '%s' vs '%s'", name, k,
                  r.text[k] ? r.text[k] : "(null)", text_alone[k]);
        batched += r.batch[k] > 1;
    }
    CHECK_MSG(batched >= 2, "%s: only %d requests decoded in a batch of more than one", name, batched);
    /* a request stays pending until its callback has returned */
    for (int i = 0; i < 2000 && (mgl_stream_pending(st[0]) || mgl_stream_pending(st[1])); i++) g_usleep(1000);
    CHECK(mgl_stream_pending(st[0]) == 0 && mgl_stream_pending(st[1]) == 0);
    results_clear(&r);

    /* abort: one request by id, then everything of stream 1 */
    memset(&r, 0, sizeof r);
    for (int k = 0; k < NREQ; k++)
        REQUIRE(mgl_stream_submit(st[k % 2], &img[k], boxes[k], nb[k], questions[k], &gp[k], on_result, &slots[k],
                                  &r.id[k], &err) == MGL_OK);
    mgl_stream_abort(st[0], r.id[6]);
    mgl_stream_abort(st[1], 0);
    wait_done(&r, NREQ);
    REQUIRE(r.done == NREQ);
    for (int k = 0; k < NREQ; k++) {
        if (k == 6 || k % 2 == 1) {
            /* aborted (or finished before the abort reached it: then it is the alone answer) */
            CHECK_MSG(r.status[k] == MGL_E_ABORTED || (r.status[k] == MGL_OK && r.n_ids[k] == n_alone[k]),
                      "%s aborted request %d: %s", name, k, mgl_status_to_string(r.status[k]));
        } else {
            CHECK_MSG(r.status[k] == MGL_OK && r.n_ids[k] == n_alone[k] &&
                          memcmp(r.ids[k], alone[k], sizeof(int32_t) * n_alone[k]) == 0,
                      "%s request %d after aborts elsewhere differs", name, k);
        }
    }
    results_clear(&r);

    /* a stream freed with requests in flight: all called back as aborted or done */
    memset(&r, 0, sizeof r);
    for (int k = 0; k < 3; k++)
        REQUIRE(mgl_stream_submit(st[1], &img[k], boxes[k], nb[k], questions[k], &gp[k], on_result, &slots[k], NULL,
                                  &err) == MGL_OK);
    mgl_stream_free(st[1]);
    CHECK(r.done == 3);
    results_clear(&r);

    mgl_stream_free(st[0]);
    mgl_server_free(s);
    g_mutex_clear(&r.lock);
    g_cond_clear(&r.cond);

    /* several requests about one frame (one per object, and a whole-frame one): views and vision
     * shared, answers as alone; with a token mask, every token obeys it, alone and served */
    {
        sp.max_batch = 3;
        REQUIRE(mgl_server_new(m, &sp, &s, &err) == MGL_OK);
        MglStream* fs = mgl_stream_new(s);
        memset(&r, 0, sizeof r);
        g_mutex_init(&r.lock);
        g_cond_init(&r.cond);
        const int k = 3; /* the frame with three boxes */
        MglGenParams masked = gp[k];
        masked.token_mask = allow_small_ids;
        int32_t* want[4];
        size_t n_want[4];
        MglFrameRequest fr[4];
        Slot fslots[4];
        for (int j = 0; j < 4; j++) {
            const MglBox* b = j < 3 ? &boxes[k][j] : boxes[k];
            size_t nb_j = j < 3 ? 1 : nb[k];
            const MglGenParams* pj = j == 2 ? &masked : &gp[k];
            char* t = NULL;
            REQUIRE(mgl_generate(c, &img[k], b, nb_j, questions[j], pj, &t, &want[j], &n_want[j], NULL, &err) ==
                    MGL_OK);
            free(t);
            fslots[j] = (Slot){&r, j};
            fr[j] = (MglFrameRequest){questions[j], b, nb_j, pj, on_result, &fslots[j]};
        }
        for (size_t i = 0; i < n_want[2]; i++)
            CHECK_MSG(want[2][i] < 40 || want[2][i] == mgl_tokenizer_eos(mgl_model_tokenizer(m)), "%s: masked token %d",
                      name, want[2][i]);
        uint64_t fids[4];
        REQUIRE_MSG(mgl_stream_submit_frame(fs, &img[k], fr, 4, fids, &err) == MGL_OK, "%s", err.msg);
        wait_done(&r, 4);
        REQUIRE(r.done == 4);
        for (int j = 0; j < 4; j++) {
            CHECK(fids[j] > 0);
            CHECK_MSG(r.status[j] == MGL_OK && r.n_ids[j] == n_want[j] &&
                          memcmp(r.ids[j], want[j], sizeof(int32_t) * n_want[j]) == 0,
                      "%s: frame request %d differs from alone", name, j);
            free(want[j]);
        }
        results_clear(&r);
        /* one bad request refuses the whole frame */
        fr[1].question = "   ";
        CHECK(mgl_stream_submit_frame(fs, &img[k], fr, 4, fids, &err) == MGL_E_INVALID && fids[0] == 0);
        CHECK_MSG(strstr(err.msg, "request 1"), "%s", err.msg);
        mgl_stream_free(fs);
        mgl_server_free(s);
        g_mutex_clear(&r.lock);
        g_cond_clear(&r.cond);
    }

    /* a budget larger than what fits after the prompt is capped to the context, not refused */
    {
        MglCtxParams cp = mgl_ctx_default_params();
        cp.n_ctx = 640;
        MglCtx* small = NULL;
        REQUIRE(mgl_ctx_new_with_params(m, &cp, &small, &err) == MGL_OK);
        MglGenParams big = mgl_gen_default_params();
        big.max_new_tokens = 1000;
        char* t = NULL;
        int32_t* ids = NULL;
        size_t nid = 0;
        MglTimings tm;
        MglStatus st2 = mgl_generate(small, &img[0], boxes[0], nb[0], questions[0], &big, &t, &ids, &nid, &tm, &err);
        CHECK_MSG(st2 == MGL_OK, "%s: capped budget: %s", name, err.msg);
        CHECK_MSG(st2 != MGL_OK || tm.n_prompt_tokens + (int)nid <= 640, "%s: %d + %zu tokens in a 640 context", name,
                  tm.n_prompt_tokens, nid);
        free(t);
        free(ids);
        mgl_ctx_free(small);
    }

    /* KV caches that cannot fit are refused at start, naming the sizes */
    sp.max_batch = 4;
    sp.n_ctx = 200000000;
    CHECK(mgl_server_new(m, &sp, &s, &err) == MGL_E_NOMEM);
    CHECK_MSG(strstr(err.msg, "KV cache") && strstr(err.msg, "MiB"), "%s", err.msg);
    printf("  expected error: %s\n", err.msg);
    sp.max_batch = -1;
    sp.n_ctx = 0;
    CHECK(mgl_server_new(m, &sp, &s, &err) == MGL_E_INVALID);

    for (int k = 0; k < NREQ; k++) {
        free(alone[k]);
        free(text_alone[k]);
    }
    mgl_ctx_free(c);
    mgl_model_free(m);
    g_free(path);
    printf("%s: %d requests through 3 slots equal to alone\n", name, NREQ);
}

int main(void) {
    family("tiny-vicuna");
    family("tiny-llama3");
    family("tiny-phi3");
    family("tiny-yi");
    TEST_DONE();
}
