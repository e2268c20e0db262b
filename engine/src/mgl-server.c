/* mgl-server.c: the scheduler that serves many streams from one model
 * (public API in mgllava.h, "serving many streams").
 *
 * One thread owns a backend context with max_batch sequence slots. Each turn
 * it admits waiting requests into free slots, round-robin over the streams
 * that have any; runs vision, prefill and the first sample of the newly
 * admitted ones together; then one decode step and one sample for every
 * sequence already running, as one batched backend call (continuous
 * batching). A finished sequence is called back and frees its slot before
 * the next turn. The KV cache of a slot belongs to the slot (fixed slots:
 * each slot grows its own cache to what its request needs, up to n_ctx).
 *
 * Locking: `lock` guards the streams, their queues, the slots and the
 * abort flags; backend calls and callbacks run without it.
 *
 * Logits masks (constrained decoding): the mask of step t + 1 depends only
 * on the tokens up to t, which are known before step t + 1's forward pass.
 * On a device backend a mask thread computes the masks while the device
 * runs the step (vision and prefill for a newcomer's first token), so their
 * host time hides behind the step; on the CPU backend, whose pool already
 * uses every core, they are computed after it. MGL_MASK_OVERLAP=1 or 0
 * forces either way (the tests run the overlap on the CPU: same tokens). */
#include "mgl-model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Req {
    uint64_t id;
    MglStream* stream;
    MglGen g;
    MglResultFunc done;
    void* user;
    int batch;           /* the largest decode batch it was in */
    double mask_wait_ms; /* the server's time on its masks after its steps (MglResult) */
    bool aborted;        /* under the server lock */
    MglErr err;
} Req;

struct MglStream {
    MglServer* s;
    GQueue queue; /* Req*, waiting for a slot */
    int pending;  /* accepted, not yet called back */
    GCond idle;   /* signalled when pending drops */
};

/* The mask thread: computes the masks of `reqs` while the server thread
 * runs the step (one job at a time, posted and waited for by the server). */
typedef struct {
    GMutex lock;
    GCond cond;
    GThread* thread;
    MglModel* m;
    Req** reqs;
    int n;
    bool pending, quit;
} MaskWorker;

struct MglServer {
    MglModel* m;
    MaskWorker* mw; /* NULL: masks computed after the step */
    const MglBackend* be;
    MglBackendCtx* bc;
    int max_batch;
    int64_t n_ctx;
    GMutex lock;
    GCond wake;
    GThread* thread;
    bool quit;
    GPtrArray* streams; /* MglStream*, in admission order */
    guint rr;           /* the next stream to admit from */
    Req** slots;        /* max_batch, NULL = free */
    GQueue dead;        /* Req* aborted while queued: called back by the thread */
    uint64_t next_id;
};

static double now_ms(void) { return (double)g_get_monotonic_time() / 1000.0; }

MglServerParams mgl_server_default_params(void) {
    MglServerParams p = {.max_batch = 0, .n_ctx = 0, .kv_precision = NULL};
    return p;
}

int mgl_server_max_batch(const MglServer* s) { return s ? s->max_batch : 0; }

/* ---- results ---- */

static void req_free(Req* r) {
    mgl_gen_clear(&r->g);
    g_free(r);
}

/* Calls back (without the lock), then forgets the request. */
static void req_complete(MglServer* s, Req* r, MglStatus st, const char* msg) {
    char* text = NULL;
    MglResult res = {.status = st, .batch = r->batch, .mask_wait_ms = r->mask_wait_ms};
    if (st == MGL_OK) {
        r->g.st = MGL_OK;
        st = mgl_gen_finish(s->m, &r->g, &text, &r->err);
        res.status = st;
        msg = r->err.msg;
    } else {
        r->g.st = st;
        mgl_gen_finish(s->m, &r->g, NULL, NULL);
    }
    res.error = st == MGL_OK ? NULL : (msg && *msg ? msg : mgl_status_to_string(st));
    res.text = st == MGL_OK ? (text ? text : "") : NULL;
    res.ids = r->g.gen;
    res.n_ids = r->g.ng;
    res.timings = r->g.t;
    if (r->done) r->done(r->id, &res, r->user);
    free(text);
    MglStream* sm = r->stream;
    g_mutex_lock(&s->lock);
    sm->pending--;
    g_cond_broadcast(&sm->idle);
    g_mutex_unlock(&s->lock);
    req_free(r);
}

/* ---- masks beside the step ---- */

static gpointer mask_thread(gpointer data) {
    MaskWorker* w = data;
    g_mutex_lock(&w->lock);
    for (;;) {
        while (!w->pending && !w->quit) g_cond_wait(&w->cond, &w->lock);
        if (w->quit) break;
        Req** reqs = w->reqs;
        const int n = w->n;
        g_mutex_unlock(&w->lock);
        for (int i = 0; i < n; i++) mgl_gen_prepare_sample(w->m, &reqs[i]->g);
        g_mutex_lock(&w->lock);
        w->pending = false;
        g_cond_broadcast(&w->cond);
    }
    g_mutex_unlock(&w->lock);
    return NULL;
}

/* Whether any of the requests has a logits mask. */
static bool any_mask(Req** reqs, int n) {
    for (int i = 0; i < n; i++)
        if (reqs[i]->g.p.token_mask) return true;
    return false;
}

/* Starts the masks of @reqs on the mask thread; false when they are to be
 * computed by the caller after the step (no mask thread, or no mask). */
static bool masks_begin(MglServer* s, Req** reqs, int n) {
    MaskWorker* w = s->mw;
    if (!w || !any_mask(reqs, n)) return false;
    g_mutex_lock(&w->lock);
    w->reqs = reqs;
    w->n = n;
    w->pending = true;
    g_cond_broadcast(&w->cond);
    g_mutex_unlock(&w->lock);
    return true;
}

/* After the step: waits for the masks begun (@begun), else computes them.
 * The time this takes (what the masks add to the step) is added to each
 * masked request's mask_wait_ms. */
static void masks_end(MglServer* s, Req** reqs, int n, bool begun) {
    const double t0 = now_ms();
    if (!begun) {
        for (int i = 0; i < n; i++) mgl_gen_prepare_sample(s->m, &reqs[i]->g);
    } else {
        MaskWorker* w = s->mw;
        g_mutex_lock(&w->lock);
        while (w->pending) g_cond_wait(&w->cond, &w->lock);
        g_mutex_unlock(&w->lock);
    }
    const double dt = now_ms() - t0;
    for (int i = 0; i < n; i++)
        if (reqs[i]->g.p.token_mask) reqs[i]->mask_wait_ms += dt;
}

static MaskWorker* mask_worker_new(MglModel* m) {
    MaskWorker* w = g_new0(MaskWorker, 1);
    g_mutex_init(&w->lock);
    g_cond_init(&w->cond);
    w->m = m;
    w->thread = g_thread_new("mgllava-masks", mask_thread, w);
    return w;
}

static void mask_worker_free(MaskWorker* w) {
    if (!w) return;
    g_mutex_lock(&w->lock);
    w->quit = true;
    g_cond_broadcast(&w->cond);
    g_mutex_unlock(&w->lock);
    g_thread_join(w->thread);
    g_mutex_clear(&w->lock);
    g_cond_clear(&w->cond);
    g_free(w);
}

/* ---- the thread ---- */

/* The next waiting request, round-robin over the streams (lock held). */
static Req* next_waiting(MglServer* s) {
    const guint n = s->streams->len;
    for (guint k = 0; k < n; k++) {
        MglStream* sm = g_ptr_array_index(s->streams, (s->rr + k) % n);
        Req* r = g_queue_pop_head(&sm->queue);
        if (r) {
            s->rr = (s->rr + k + 1) % n;
            return r;
        }
    }
    return NULL;
}

static MglStatus prefill_batch(MglServer* s, MglSeq** seqs, Req** reqs, int n, MglErr* err) {
    double t0 = now_ms();
    MglStatus st = MGL_OK;
    for (int i = 0; i < n && st == MGL_OK; i++)
        st = s->be->reserve(s->bc, &seqs[i], 1, reqs[i]->g.L + reqs[i]->g.p.max_new_tokens + 1, err);
    /* the first token's masks (nothing generated yet) beside vision and prefill */
    const bool begun = masks_begin(s, reqs, n);
    if (st == MGL_OK) st = s->be->vision(s->bc, seqs, n, err);
    for (int i = 0; i < n; i++) mgl_gen_drop_views(&reqs[i]->g);
    double t1 = now_ms();
    if (st == MGL_OK) st = s->be->prefill(s->bc, seqs, n, err);
    masks_end(s, reqs, n, begun);
    if (st == MGL_OK) st = s->be->sample(s->bc, seqs, n, err);
    double t2 = now_ms();
    for (int i = 0; i < n; i++) {
        reqs[i]->g.t.vision_ms = t1 - t0;
        reqs[i]->g.t.prefill_ms = t2 - t1;
        reqs[i]->g.seq.n_past = reqs[i]->g.L;
        if (reqs[i]->batch < 1) reqs[i]->batch = 1;
    }
    return st;
}

static gpointer server_thread(gpointer data) {
    MglServer* s = data;
    const int B = s->max_batch;
    Req** fresh = g_new0(Req*, B);
    Req** run = g_new0(Req*, B);
    MglSeq** seqs = g_new0(MglSeq*, B);
    bool* fin = g_new0(bool, B);
    g_mutex_lock(&s->lock);
    while (!s->quit) {
        /* requests aborted while waiting */
        Req* d;
        while ((d = g_queue_pop_head(&s->dead))) {
            g_mutex_unlock(&s->lock);
            req_complete(s, d, MGL_E_ABORTED, "aborted before it ran");
            g_mutex_lock(&s->lock);
        }
        int nf = 0, nr = 0;
        for (int i = 0; i < B; i++)
            if (s->slots[i]) run[nr++] = s->slots[i];
        for (int i = 0; i < B; i++) {
            if (s->slots[i]) continue;
            Req* r = next_waiting(s);
            if (!r) break;
            r->g.seq.slot = i;
            s->slots[i] = r;
            fresh[nf++] = r;
        }
        if (nf == 0 && nr == 0) {
            if (g_queue_is_empty(&s->dead) && !s->quit) g_cond_wait(&s->wake, &s->lock);
            continue;
        }
        for (int i = 0; i < nf; i++) fresh[i]->g.abort = fresh[i]->aborted;
        for (int i = 0; i < nr; i++) run[i]->g.abort = run[i]->aborted;
        g_mutex_unlock(&s->lock);

        /* newcomers: vision, prefill, the first token */
        if (nf > 0) {
            MglErr err = {0};
            for (int i = 0; i < nf; i++) seqs[i] = &fresh[i]->g.seq;
            MglStatus st = prefill_batch(s, seqs, fresh, nf, &err);
            for (int i = 0; i < nf; i++) {
                Req* r = fresh[i];
                fin[i] = st != MGL_OK || mgl_gen_push(s->m, &r->g, &r->err);
                if (st != MGL_OK) r->g.st = st, snprintf(r->err.msg, sizeof r->err.msg, "%s", err.msg);
            }
            for (int i = 0; i < nf; i++)
                if (fin[i]) {
                    Req* r = fresh[i];
                    g_mutex_lock(&s->lock);
                    s->slots[r->g.seq.slot] = NULL;
                    g_mutex_unlock(&s->lock);
                    req_complete(s, r, r->g.st, r->err.msg);
                }
        }
        /* one decode step for the sequences already running */
        if (nr > 0) {
            MglErr err = {0};
            for (int i = 0; i < nr; i++) seqs[i] = &run[i]->g.seq;
            double t0 = now_ms();
            /* this step's masks need only the tokens already pushed */
            const bool begun = masks_begin(s, run, nr);
            MglStatus st = s->be->decode(s->bc, seqs, nr, &err);
            masks_end(s, run, nr, begun);
            if (st == MGL_OK) st = s->be->sample(s->bc, seqs, nr, &err);
            double dt = now_ms() - t0;
            for (int i = 0; i < nr; i++) {
                Req* r = run[i];
                r->g.t.decode_ms += dt;
                if (nr > r->batch) r->batch = nr;
                if (st != MGL_OK) {
                    r->g.st = st;
                    snprintf(r->err.msg, sizeof r->err.msg, "%s", err.msg);
                    fin[i] = true;
                } else {
                    fin[i] = mgl_gen_push(s->m, &r->g, &r->err);
                }
            }
            for (int i = 0; i < nr; i++)
                if (fin[i]) {
                    Req* r = run[i];
                    g_mutex_lock(&s->lock);
                    s->slots[r->g.seq.slot] = NULL;
                    g_mutex_unlock(&s->lock);
                    req_complete(s, r, r->g.st, r->err.msg);
                }
        }
        g_mutex_lock(&s->lock);
    }
    g_mutex_unlock(&s->lock);
    g_free(fresh);
    g_free(run);
    g_free(seqs);
    g_free(fin);
    return NULL;
}

/* ---- the server ---- */

static int default_batch(size_t per_slot, size_t free_bytes) {
    if (per_slot == 0 || free_bytes == 0) return 1;
    size_t n = free_bytes / 2 / per_slot; /* half of what is free, for the caches */
    return n < 1 ? 1 : n > 8 ? 8 : (int)n;
}

MglStatus mgl_server_new(MglModel* m, const MglServerParams* params, MglServer** out, MglErr* err) {
    *out = NULL;
    if (!m) return mgl_err(err, MGL_E_INVALID, "server: no model");
    MglServerParams p = params ? *params : mgl_server_default_params();
    if (p.max_batch < 0 || p.max_batch > 256)
        return mgl_err(err, MGL_E_INVALID, "server: max_batch %d (0 = from memory, else 1..256)", p.max_batch);
    if (p.n_ctx < 0) return mgl_err(err, MGL_E_INVALID, "server: n_ctx %d must be >= 0", p.n_ctx);
    const int64_t n_ctx = p.n_ctx > 0 ? p.n_ctx : m->n_ctx;
    MglDType kv = m->kv_dtype;
    if (p.kv_precision) {
        if (!strcmp(p.kv_precision, "f16"))
            kv = MGL_DT_F16;
        else if (!strcmp(p.kv_precision, "bf16"))
            kv = MGL_DT_BF16;
        else if (!strcmp(p.kv_precision, "f32"))
            kv = MGL_DT_F32;
        else
            return mgl_err(err, MGL_E_INVALID, "server: KV precision \"%s\" (f16, bf16 or f32)", p.kv_precision);
    }
    MglBackendInfo info;
    m->be->model_info(m->bm, &info);
    const MglLlmConfig* lc = &m->w.lc;
    const size_t es = mgl_dtype_size(kv);
    const size_t per_slot =
        2 * (size_t)lc->n_layers * (size_t)n_ctx * (size_t)lc->n_kv_heads * (size_t)lc->head_dim * es;
    int B = p.max_batch;
    if (B == 0)
        B = default_batch(per_slot, info.free_bytes);
    else if (info.free_bytes && (double)B * (double)per_slot > (double)info.free_bytes)
        return mgl_err(err, MGL_E_NOMEM,
                       "server: max_batch %d needs %.1f MiB of KV cache (%d slots of %lld tokens, %.1f MiB each) but "
                       "%.1f MiB are free on %s",
                       B, (double)B * (double)per_slot / 1048576.0, B, (long long)n_ctx, per_slot / 1048576.0,
                       info.free_bytes / 1048576.0, info.device);
    MglServer* s = g_new0(MglServer, 1);
    s->m = m;
    s->be = m->be;
    s->max_batch = B;
    s->n_ctx = n_ctx;
    MglBackendCtxParams bp = {.n_seq = B, .n_ctx = n_ctx, .kv_dtype = kv};
    MglStatus st = s->be->ctx_new(m->bm, &bp, &s->bc, err);
    if (st != MGL_OK) {
        g_free(s);
        return st;
    }
    g_mutex_init(&s->lock);
    g_cond_init(&s->wake);
    s->streams = g_ptr_array_new();
    s->slots = g_new0(Req*, B);
    g_queue_init(&s->dead);
    {
        const char* ov = g_getenv("MGL_MASK_OVERLAP");
        const bool overlap = ov && *ov ? strcmp(ov, "0") != 0 : strcmp(s->be->name, "cpu") != 0;
        if (overlap) s->mw = mask_worker_new(m);
    }
    s->thread = g_thread_new("mgllava-server", server_thread, s);
    *out = s;
    return MGL_OK;
}

void mgl_server_free(MglServer* s) {
    if (!s) return;
    while (s->streams->len) mgl_stream_free(g_ptr_array_index(s->streams, 0));
    g_mutex_lock(&s->lock);
    s->quit = true;
    g_cond_broadcast(&s->wake);
    g_mutex_unlock(&s->lock);
    g_thread_join(s->thread);
    mask_worker_free(s->mw);
    s->be->ctx_free(s->bc);
    g_ptr_array_unref(s->streams);
    g_free(s->slots);
    g_mutex_clear(&s->lock);
    g_cond_clear(&s->wake);
    g_free(s);
}

/* ---- streams ---- */

MglStream* mgl_stream_new(MglServer* s) {
    MglStream* sm = g_new0(MglStream, 1);
    sm->s = s;
    g_queue_init(&sm->queue);
    g_cond_init(&sm->idle);
    g_mutex_lock(&s->lock);
    g_ptr_array_add(s->streams, sm);
    g_mutex_unlock(&s->lock);
    return sm;
}

/* Marks for abort (lock held): queued ones go to the thread's dead list,
 * running ones stop at their next step. */
static void abort_locked(MglStream* sm, uint64_t id) {
    MglServer* s = sm->s;
    for (GList* l = sm->queue.head; l;) {
        GList* next = l->next;
        Req* r = l->data;
        if (id == 0 || r->id == id) {
            g_queue_delete_link(&sm->queue, l);
            r->aborted = true;
            g_queue_push_tail(&s->dead, r);
        }
        l = next;
    }
    for (int i = 0; i < s->max_batch; i++) {
        Req* r = s->slots[i];
        if (r && r->stream == sm && (id == 0 || r->id == id)) r->aborted = true;
    }
    g_cond_broadcast(&s->wake);
}

void mgl_stream_abort(MglStream* sm, uint64_t id) {
    if (!sm) return;
    g_mutex_lock(&sm->s->lock);
    abort_locked(sm, id);
    g_mutex_unlock(&sm->s->lock);
}

int mgl_stream_pending(MglStream* sm) {
    if (!sm) return 0;
    g_mutex_lock(&sm->s->lock);
    int n = sm->pending;
    g_mutex_unlock(&sm->s->lock);
    return n;
}

void mgl_stream_free(MglStream* sm) {
    if (!sm) return;
    MglServer* s = sm->s;
    g_mutex_lock(&s->lock);
    abort_locked(sm, 0);
    while (sm->pending > 0) g_cond_wait(&sm->idle, &s->lock);
    g_ptr_array_remove(s->streams, sm);
    if (s->rr >= s->streams->len) s->rr = 0;
    g_mutex_unlock(&s->lock);
    g_cond_clear(&sm->idle);
    g_free(sm);
}

static void queue_req(MglStream* sm, Req* r, MglResultFunc done, void* user_data, uint64_t* id);

MglStatus mgl_stream_submit(MglStream* sm, const MglImage* image, const MglBox* boxes, size_t n_boxes,
                            const char* question, const MglGenParams* params, MglResultFunc done, void* user_data,
                            uint64_t* id, MglErr* err) {
    if (id) *id = 0;
    if (!sm) return mgl_err(err, MGL_E_INVALID, "submit: no stream");
    MglServer* s = sm->s;
    Req* r = g_new0(Req, 1);
    MglGenParams p = params ? *params : mgl_gen_default_params();
    p.on_token = NULL; /* results come whole */
    MglStatus st = mgl_gen_begin(s->m, s->n_ctx, image, boxes, n_boxes, question, &p, &r->g, err);
    if (st != MGL_OK) {
        g_free(r);
        return st;
    }
    queue_req(sm, r, done, user_data, id);
    return MGL_OK;
}

MglStatus mgl_stream_submit_clip(MglStream* sm, const MglClipFrame* frames, size_t n_frames, const char* question,
                                 const MglGenParams* params, MglResultFunc done, void* user_data, uint64_t* id,
                                 MglErr* err) {
    if (id) *id = 0;
    if (!sm) return mgl_err(err, MGL_E_INVALID, "submit: no stream");
    MglServer* s = sm->s;
    Req* r = g_new0(Req, 1);
    MglGenParams p = params ? *params : mgl_gen_default_params();
    p.on_token = NULL; /* results come whole */
    MglStatus st = mgl_gen_begin_clip(s->m, s->n_ctx, frames, n_frames, question, &p, &r->g, err);
    if (st != MGL_OK) {
        g_free(r);
        return st;
    }
    queue_req(sm, r, done, user_data, id);
    return MGL_OK;
}

/* Queues a begun request for the thread. */
static void queue_req(MglStream* sm, Req* r, MglResultFunc done, void* user_data, uint64_t* id) {
    MglServer* s = sm->s;
    r->stream = sm;
    r->done = done;
    r->user = user_data;
    g_mutex_lock(&s->lock);
    r->id = ++s->next_id;
    sm->pending++;
    g_queue_push_tail(&sm->queue, r);
    g_cond_broadcast(&s->wake);
    g_mutex_unlock(&s->lock);
    if (id) *id = r->id;
}

/* ---- batched decode benchmark ---- */

MglStatus mgl_model_bench_batch(MglModel* m, int B, int T, int G, MglBatchBench* out, MglErr* err) {
    memset(out, 0, sizeof *out);
    if (B < 1 || T < 1 || G < 1)
        return mgl_err(err, MGL_E_INVALID, "bench: batch %d, %d prompt and %d new tokens", B, T, G);
    const MglBackend* be = m->be;
    const int64_t H = m->w.lc.hidden, V = m->w.lc.vocab;
    MglBackendCtxParams bp = {.n_seq = B, .n_ctx = (int64_t)T + G + 1, .kv_dtype = m->kv_dtype};
    MglBackendCtx* bc = NULL;
    MGL_TRY(be->ctx_new(m->bm, &bp, &bc, err));
    float* emb = malloc(sizeof(float) * (size_t)((int64_t)T * H));
    float* logits = malloc(sizeof(float) * (size_t)V);
    MglSeq* seqs = calloc((size_t)B, sizeof(MglSeq));
    MglSeq** ptr = calloc((size_t)B, sizeof(MglSeq*));
    uint64_t rng = 0;
    MglStatus st = emb && logits && seqs && ptr ? MGL_OK : mgl_err(err, MGL_E_NOMEM, "bench: out of memory");
    /* each sequence its own prompt, prefilled alone */
    double t0 = now_ms();
    for (int b = 0; b < B && st == MGL_OK; b++) {
        for (int64_t i = 0; i < T; i++) mgl_weight_row(&m->w.embed, (i * 7919 + b * 131) % V, emb + i * H);
        seqs[b] = (MglSeq){.slot = b, .samp = {.temperature = 0.0f, .top_p = 1.0f, .rng = &rng}};
        ptr[b] = &seqs[b];
        st = be->forward(bc, b, emb, T, 0, logits, false, err);
        int32_t best = 0;
        for (int64_t k = 1; k < V && st == MGL_OK; k++)
            if (logits[k] > logits[best]) best = (int32_t)k;
        seqs[b].token = best;
        seqs[b].n_past = T;
    }
    out->prefill_ms = now_ms() - t0;
    /* G steps of all B sequences together (the first one warms up) */
    double t1 = 0;
    for (int g = 0; g <= G && st == MGL_OK; g++) {
        if (g == 1) t1 = now_ms();
        st = be->decode(bc, ptr, B, err);
        if (st == MGL_OK) st = be->sample(bc, ptr, B, err);
        for (int b = 0; b < B; b++) seqs[b].n_past++;
    }
    const double ms = now_ms() - t1;
    if (st == MGL_OK) {
        out->step_ms = ms / G;
        out->tokens_per_s = (double)B * G / (ms / 1000.0);
    }
    free(emb);
    free(logits);
    free(seqs);
    free(ptr);
    be->ctx_free(bc);
    return st;
}

MglStatus mgl_stream_submit_frame(MglStream* sm, const MglImage* image, const MglFrameRequest* rq, size_t n,
                                  uint64_t* ids, MglErr* err) {
    if (ids)
        for (size_t i = 0; i < n; i++) ids[i] = 0;
    if (!sm) return mgl_err(err, MGL_E_INVALID, "submit: no stream");
    if (n == 0) return MGL_OK;
    if (!rq || !image) return mgl_err(err, MGL_E_INVALID, "submit: no requests or no image");
    MglServer* s = sm->s;
    Req** rs = g_new0(Req*, n);
    MglStatus st = MGL_OK;
    for (size_t i = 0; i < n && st == MGL_OK; i++) {
        rs[i] = g_new0(Req, 1);
        MglGenParams p = rq[i].params ? *rq[i].params : mgl_gen_default_params();
        p.on_token = NULL;
        st = mgl_gen_check(s->m, rq[i].question, &p, &rs[i]->g, err);
        if (st != MGL_OK) mgl_err_prefix(err, "request %zu", i);
    }
    /* one preprocessing of the image for all of them */
    MglViews* v = NULL;
    const double t0 = now_ms();
    if (st == MGL_OK) st = mgl_model_views_make(s->m, image, &v, err);
    const double tv = now_ms() - t0;
    size_t begun = 0;
    for (size_t i = 0; i < n && st == MGL_OK; i++, begun++) {
        st = mgl_gen_begin_views(s->m, s->n_ctx, v, rq[i].boxes, rq[i].n_boxes, rq[i].question, &rs[i]->g, err);
        if (st != MGL_OK)
            mgl_err_prefix(err, "request %zu", i);
        else
            rs[i]->g.t.preprocess_ms += tv;
    }
    mgl_views_unref(v);
    if (st != MGL_OK) {
        for (size_t i = 0; i < n; i++) {
            if (i < begun) mgl_gen_clear(&rs[i]->g);
            g_free(rs[i]);
        }
        g_free(rs);
        return st;
    }
    g_mutex_lock(&s->lock);
    for (size_t i = 0; i < n; i++) {
        rs[i]->stream = sm;
        rs[i]->done = rq[i].done;
        rs[i]->user = rq[i].user_data;
        rs[i]->id = ++s->next_id;
        if (ids) ids[i] = rs[i]->id;
        sm->pending++;
        g_queue_push_tail(&sm->queue, rs[i]);
    }
    g_cond_broadcast(&s->wake);
    g_mutex_unlock(&s->lock);
    g_free(rs);
    return MGL_OK;
}
