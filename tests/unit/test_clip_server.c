/* Clip requests through the scheduler (mgl_stream_submit_clip): a clip and
 * image requests admitted together into one batch answer token for token as
 * each does alone (mgl_generate_clip, mgl_generate), on tiny-llama3 (8
 * frames) and tiny-vicuna (7, its context's most); a clip over the context is
 * refused at submission naming the context, with no callback. */
#include "mgllava.h"
#include "mgl-test.h"

#include <glib.h>
#include <string.h>

#define NREQ 3

typedef struct {
    GMutex lock;
    GCond cond;
    int done;
    MglStatus status[NREQ];
    int32_t* ids[NREQ];
    size_t n_ids[NREQ];
    int batch[NREQ];
} Results;

typedef struct {
    Results* r;
    int k;
} Slot;

static void on_result(uint64_t id, const MglResult* res, void* ud) {
    Slot* s = ud;
    Results* r = s->r;
    (void)id;
    g_mutex_lock(&r->lock);
    r->status[s->k] = res->status;
    r->ids[s->k] = g_memdup2(res->ids, sizeof(int32_t) * (res->n_ids ? res->n_ids : 1));
    r->n_ids[s->k] = res->n_ids;
    r->batch[s->k] = res->batch;
    r->done++;
    g_cond_broadcast(&r->cond);
    g_mutex_unlock(&r->lock);
}

static void wait_done(Results* r, int n) {
    g_mutex_lock(&r->lock);
    gint64 end = g_get_monotonic_time() + 300 * G_TIME_SPAN_SECOND;
    while (r->done < n && g_cond_wait_until(&r->cond, &r->lock, end)) {
    }
    g_mutex_unlock(&r->lock);
}

/* A frame of a short synthetic clip: a square moving over a gradient. */
static uint8_t* make_frame(int w, int h, int k) {
    uint8_t* p = g_malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t* q = p + ((size_t)y * w + x) * 3;
            bool in = x >= 8 + 6 * k && x < 28 + 6 * k && y >= 10 && y < 30;
            q[0] = in ? 230 : (uint8_t)(x * 255 / w);
            q[1] = in ? 40 : (uint8_t)(y * 255 / h);
            q[2] = (uint8_t)((x + y + 9 * k) & 0xff);
        }
    return p;
}

static void check_model(const char* name, int n_frames) {
    char* dir = g_build_filename(test_env("MGL_FIXTURES"), "models", name, NULL);
    MglModelParams mp = mgl_model_default_params();
    MglModel* m = NULL;
    MglErr err = {0};
    REQUIRE(mgl_model_load(dir, &mp, &m, &err) == MGL_OK);
    const int W = 96, H = 64;
    uint8_t* px[8];
    MglClipFrame fr[16];
    MglBox box = {8, 10, 28, 30, 0.9f, "square"};
    for (int k = 0; k < 8; k++) {
        px[k] = make_frame(W, H, k);
        fr[k] = (MglClipFrame){{px[k], W, H, 3 * W}, k % 3 ? &box : NULL, k % 3 ? 1 : 0};
    }
    for (int k = 8; k < 16; k++) fr[k] = fr[k - 8];
    const int max_frames = mgl_clip_max_frames(m, 0, "What happens in the video?");
    REQUIRE(max_frames >= n_frames && max_frames < 16);
    const char* q = "What happens in the video?";
    MglGenParams gp = mgl_gen_default_params();
    gp.max_new_tokens = 6;

    /* alone */
    MglCtx* c = NULL;
    REQUIRE(mgl_ctx_new(m, &c, &err) == MGL_OK);
    int32_t *clip_ids = NULL, *img_ids = NULL;
    size_t n_clip = 0, n_img = 0;
    REQUIRE(mgl_generate_clip(c, fr, (size_t)n_frames, q, &gp, NULL, &clip_ids, &n_clip, NULL, &err) == MGL_OK);
    REQUIRE(mgl_generate(c, &fr[2].image, &box, 1, "Describe the image.", &gp, NULL, &img_ids, &n_img, NULL, &err) ==
            MGL_OK);
    mgl_ctx_free(c);

    /* together in one batch: the clip between two image requests */
    MglServerParams sp = mgl_server_default_params();
    sp.max_batch = 3;
    MglServer* s = NULL;
    REQUIRE(mgl_server_new(m, &sp, &s, &err) == MGL_OK);
    MglStream* st = mgl_stream_new(s);
    Results r = {0};
    g_mutex_init(&r.lock);
    g_cond_init(&r.cond);
    Slot slots[NREQ] = {{&r, 0}, {&r, 1}, {&r, 2}};
    REQUIRE(mgl_stream_submit(st, &fr[2].image, &box, 1, "Describe the image.", &gp, on_result, &slots[0], NULL,
                              &err) == MGL_OK);
    REQUIRE(mgl_stream_submit_clip(st, fr, (size_t)n_frames, q, &gp, on_result, &slots[1], NULL, &err) == MGL_OK);
    REQUIRE(mgl_stream_submit(st, &fr[2].image, &box, 1, "Describe the image.", &gp, on_result, &slots[2], NULL,
                              &err) == MGL_OK);
    /* one frame more than the context holds: refused now, no callback */
    CHECK(mgl_stream_submit_clip(st, fr, (size_t)max_frames + 1, q, &gp, on_result, &slots[1], NULL, &err) ==
          MGL_E_INVALID);
    CHECK_MSG(strstr(err.msg, "-token context") != NULL, "%s", err.msg);
    wait_done(&r, NREQ);
    REQUIRE(r.done == NREQ);
    for (int k = 0; k < NREQ; k++) {
        const int32_t* want = k == 1 ? clip_ids : img_ids;
        const size_t nw = k == 1 ? n_clip : n_img;
        CHECK(r.status[k] == MGL_OK);
        CHECK_MSG(r.n_ids[k] == nw && memcmp(r.ids[k], want, nw * sizeof(int32_t)) == 0,
                  "%s: request %d (%s) differs from the same request alone", name, k, k == 1 ? "clip" : "image");
    }
    CHECK_MSG(r.batch[1] >= 2, "%s: the clip decoded in a batch of %d", name, r.batch[1]);
    printf("%s: clip of %d frames batched with two image requests (batch %d): same %zu ids as alone\n", name, n_frames,
           r.batch[1], n_clip);
    for (int k = 0; k < NREQ; k++) g_free(r.ids[k]);
    mgl_stream_free(st);
    mgl_server_free(s);
    g_mutex_clear(&r.lock);
    g_cond_clear(&r.cond);
    free(clip_ids);
    free(img_ids);
    for (int k = 0; k < 8; k++) g_free(px[k]);
    mgl_model_free(m);
    g_free(dir);
}

int main(void) {
    check_model("tiny-llama3", 8);
    check_model("tiny-vicuna", 7);
    TEST_DONE();
}
