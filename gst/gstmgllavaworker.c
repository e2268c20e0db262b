/* gstmgllavaworker.c: mgllavafilter's request queue and the thread that
 * hands it to the model's scheduler.
 *
 * At most max-pending requests wait in the element's queue. When it is
 * full, drop-policy decides: drop the oldest waiting request, drop the new
 * one, or block the streaming thread (attach-mode=exact always blocks). The
 * worker thread takes one request at a time, submits it to the model's
 * MglServer through this element's MglStream (the image preprocessing runs
 * here, off the streaming thread) and waits for its callback: the server
 * batches it with the requests of every other element sharing the model,
 * so an element has one request at the model at a time and batching is
 * across elements. The callback (on the server's thread) only copies the
 * result and signals; the worker then posts the `mgllava-result` message
 * and queues the result for the next outgoing buffer. Every request
 * completes its sequence number, with an answer or with a gap marker, so
 * attach-mode=exact can wait for its own.
 *
 * "pending" is what waits in the queue plus the request submitted and not
 * yet called back. A flush discards the queue and aborts the submitted
 * request (mgl_stream_abort); a stop discards the queue and stops the
 * submitted request through the abort flag; all counted as aborted. */
#include "gstmgllavafilter-private.h"

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---- jobs and results -------------------------------------------------- */

void gst_mgllava_job_free(GstMgllavaJob* j) {
    if (!j) return;
    g_free(j->rgb);
    if (j->boxes) g_array_unref(j->boxes);
    if (j->objects) g_array_unref(j->objects);
    if (j->clip) g_ptr_array_unref(j->clip);
    g_free(j->prompt);
    g_free(j);
}

void gst_mgllava_result_free(GstMgllavaResult* r) {
    if (!r) return;
    g_free(r->fields.text);
    g_free(r->fields.prompt);
    g_free(r->fields.json);
    g_free(r->fields.constraint);
    g_free(r->fields.object_label);
    g_free(r);
}

void gst_mgllava_done_free(GstMgllavaDone* d) {
    if (!d) return;
    g_free(d->text);
    g_free(d->error);
    g_free(d->ids);
    g_free(d);
}

/* The answer to @job, from the scheduler's result @d. */
GstMgllavaResult* gst_mgllava_result_new(const GstMgllavaJob* job, const GstMgllavaDone* d) {
    GstMgllavaResult* r = g_new0(GstMgllavaResult, 1);
    const MglTimings* tm = &d->timings;

    r->fields.text = g_strdup(d->text ? d->text : "");
    r->fields.prompt = g_strdup(job->prompt);
    r->fields.source_pts = job->pts;
    r->fields.source_frame = job->frame;
    r->fields.n_tokens = tm->n_generated;
    r->fields.n_objects = tm->n_objects;
    r->fields.latency_ms = (d->t_done - job->t_sampled) / 1000.0;
    r->fields.preprocess_ms = tm->preprocess_ms;
    r->fields.vision_ms = tm->vision_ms;
    r->fields.prefill_ms = tm->prefill_ms;
    r->fields.decode_ms = tm->decode_ms;
    r->seq = job->seq;
    if (job->clip) gst_mgllava_filter_clip_result(job, r);
    return r;
}

/* ---- worker ------------------------------------------------------------ */

GstMgllavaDone* gst_mgllava_done_new(const MglResult* res) {
    GstMgllavaDone* d = g_new0(GstMgllavaDone, 1);

    d->status = res->status;
    d->text = g_strdup(res->text);
    d->error = g_strdup(res->error);
    d->timings = res->timings;
    d->batch = res->batch;
    if (res->ids && res->n_ids) {
        d->ids = g_new(gint32, res->n_ids);
        memcpy(d->ids, res->ids, res->n_ids * sizeof(gint32));
        d->n_ids = res->n_ids;
    }
    d->t_done = g_get_monotonic_time();
    return d;
}

/* The scheduler's callback, on the server's thread: copy and signal. */
static void gst_mgllava_filter_on_result(uint64_t id, const MglResult* res, void* data) {
    GstMgllavaFilter* self = data;
    GstMgllavaDone* d = gst_mgllava_done_new(res);

    g_mutex_lock(&self->lock);
    g_assert(self->done == NULL);
    self->done = d;
    g_cond_broadcast(&self->cond);
    g_mutex_unlock(&self->lock);
}

/* Submits @job and waits for its callback (without the lock). */
static GstMgllavaDone* gst_mgllava_filter_run(GstMgllavaFilter* self, GstMgllavaJob* job) {
    GstMgllavaDone* d;
    MglErr err = {0};
    MglImage img;
    MglStatus st;
    uint64_t id = 0;
    gboolean stopping;

    img.data = job->rgb;
    img.width = job->width;
    img.height = job->height;
    img.stride = job->width * 3;
    /* also stops a request that a flush or stop races with its submission */
    job->gen.abort_flag = &self->abort_flag;
    gst_mgllava_filter_constraint_bind(self, &job->gen);
    st = job->clip ? gst_mgllava_filter_clip_submit(self, job, gst_mgllava_filter_on_result, &id, &err)
                   : mgl_stream_submit(self->stream, &img, (const MglBox*)job->boxes->data, job->boxes->len,
                                       job->prompt, &job->gen, gst_mgllava_filter_on_result, self, &id, &err);
    if (st != MGL_OK) {
        /* refused at submission: no callback follows */
        d = g_new0(GstMgllavaDone, 1);
        d->status = st;
        d->error = g_strdup(err.msg);
        return d;
    }
    g_mutex_lock(&self->lock);
    stopping = self->flushing;
    g_mutex_unlock(&self->lock);
    if (stopping) /* a flush raced with the submission */
        mgl_stream_abort(self->stream, id);
    g_mutex_lock(&self->lock);
    while (!self->done) /* exactly one callback per accepted request */
        g_cond_wait(&self->cond, &self->lock);
    d = self->done;
    self->done = NULL;
    g_mutex_unlock(&self->lock);
    return d;
}

static gpointer gst_mgllava_filter_worker(gpointer data) {
    GstMgllavaFilter* self = data;

    /* the image preprocessing of a submission runs here: like the scheduler
     * (started at this priority by the model cache), it yields the CPU to the
     * streaming threads, so on a busy machine the frames keep their pace and
     * the answers come a little later */
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10) != 0)
        GST_DEBUG_OBJECT(self, "could not lower the worker's priority");

    g_mutex_lock(&self->lock);
    for (;;) {
        GstMgllavaJob* job;
        GstMgllavaResult* res = NULL;
        GstMgllavaDone* d;
        MglStatus st;
        gboolean incomplete = FALSE;

        while (self->running && g_queue_is_empty(&self->jobs)) g_cond_wait(&self->cond, &self->lock);
        if (!self->running) break;
        job = g_queue_pop_head(&self->jobs);
        self->busy = TRUE;
        g_cond_broadcast(&self->cond); /* a slot freed (drop-policy=block) */
        g_mutex_unlock(&self->lock);

        if (job->objects) { /* object-mode: one batch of questions (gstmgllavaobjects.c) */
            gst_mgllava_filter_run_objects(self, job);
            gst_mgllava_job_free(job);
            g_mutex_lock(&self->lock);
            continue;
        }
        d = gst_mgllava_filter_run(self, job);
        st = d->status;
        if (st == MGL_OK) {
            GstStructure* msg;

            res = gst_mgllava_result_new(job, d);
            if (!gst_mgllava_filter_constraint_finish(self, d->ids, d->n_ids, res)) {
                incomplete = TRUE;
                GST_WARNING_OBJECT(self,
                                   "frame %" G_GUINT64_FORMAT ": the constrained answer is %s after %u tokens "
                                   "(max-new-tokens=%u)",
                                   job->frame, res->fields.constraint, res->fields.n_tokens, job->gen.max_new_tokens);
            }
            /* the bus message carries the same fields as the meta, and a
             * structured answer also as a value */
            msg = gst_mgllava_result_meta_to_structure(&res->fields);
            gst_mgllava_constraint_add_answer(msg, res->fields.json);
            gst_element_post_message(GST_ELEMENT(self), gst_message_new_element(GST_OBJECT(self), msg));
            GST_DEBUG_OBJECT(self,
                             "frame %" G_GUINT64_FORMAT ": \"%s\" (%.1f ms, "
                             "%u tokens, batch %d)",
                             res->fields.source_frame, res->fields.text, res->fields.latency_ms, res->fields.n_tokens,
                             d->batch);
        } else if (st == MGL_E_ABORTED) {
            GST_DEBUG_OBJECT(self, "request for frame %" G_GUINT64_FORMAT " aborted", job->frame);
        } else {
            /* transient: this frame gets no answer, the stream keeps flowing */
            GST_ELEMENT_WARNING(self, STREAM, FAILED, ("Inference failed on frame %" G_GUINT64_FORMAT ".", job->frame),
                                ("%s: %s", mgl_status_to_string(st), d->error ? d->error : ""));
        }

        /* every request ends counted once: an answer (posted on the bus, even
         * when a flush then discards it), aborted by a flush or stop, or failed */
        g_mutex_lock(&self->lock);
        if (d->batch > self->max_batch_seen) self->max_batch_seen = d->batch;
        if (res) {
            self->n_results++;
            if (incomplete) self->n_incomplete++;
            if (!self->flushing)
                g_queue_push_tail(&self->results, res);
            else
                gst_mgllava_result_free(res);
        } else if (st == MGL_E_ABORTED) {
            self->n_aborted++;
        } else {
            self->n_failed++;
        }
        /* a request that produced nothing still completes its sequence number */
        if (!res && !self->flushing) {
            GstMgllavaResult* gap = g_new0(GstMgllavaResult, 1);
            gap->seq = job->seq;
            gap->fields.source_frame = GST_MGLLAVA_NO_ANSWER;
            g_queue_push_tail(&self->results, gap);
        }
        self->busy = FALSE;
        g_cond_broadcast(&self->cond);
        g_mutex_unlock(&self->lock);
        gst_mgllava_done_free(d);
        gst_mgllava_job_free(job);
        g_mutex_lock(&self->lock);
    }
    g_mutex_unlock(&self->lock);
    return NULL;
}

/* ---- lifecycle --------------------------------------------------------- */

/* Load progress on the bus: a GST_MESSAGE_PROGRESS (code "mgllava-load":
 * START before the model cache is asked, CONTINUE as the load goes on, then
 * COMPLETE, ERROR, or CANCELED when the element stopped waiting) and an
 * element message "mgllava-load" with stage ("start", "loading", "done",
 * "failed", "canceled"), fraction (0 to 1), what (the step being loaded),
 * path, device, seconds since the start, shared (the model was already
 * loaded by another element) and, on failure, error. docs/elements.md,
 * "Load progress". */
static void post_load(GstMgllavaFilter* self, GstProgressType type, const gchar* stage, gdouble fraction,
                      const gchar* what, const gchar* path, const gchar* device, gdouble seconds, gboolean shared,
                      const gchar* error) {
    gchar* text;

    if (type == GST_PROGRESS_TYPE_START)
        text = g_strdup_printf("Loading MG-LLaVA model %s (device %s)", path, device);
    else if (type == GST_PROGRESS_TYPE_CONTINUE)
        text = g_strdup_printf("Loading MG-LLaVA model %s: %.0f%% %s", path, fraction * 100.0, what);
    else if (type == GST_PROGRESS_TYPE_COMPLETE)
        text = g_strdup_printf("MG-LLaVA model %s %s in %.2f s", path, shared ? "shared (already loaded)" : "loaded",
                               seconds);
    else if (type == GST_PROGRESS_TYPE_CANCELED)
        text = g_strdup_printf("Loading MG-LLaVA model %s given up (the element stopped)", path);
    else
        text = g_strdup_printf("Could not load MG-LLaVA model %s: %s", path, error ? error : "");
    gst_element_post_message(GST_ELEMENT(self), gst_message_new_progress(GST_OBJECT(self), type, "mgllava-load", text));
    g_free(text);
    gst_element_post_message(
        GST_ELEMENT(self),
        gst_message_new_element(GST_OBJECT(self),
                                gst_structure_new("mgllava-load", "stage", G_TYPE_STRING, stage, "fraction",
                                                  G_TYPE_DOUBLE, fraction, "what", G_TYPE_STRING, what ? what : "",
                                                  "path", G_TYPE_STRING, path, "device", G_TYPE_STRING, device,
                                                  "seconds", G_TYPE_DOUBLE, seconds, "shared", G_TYPE_BOOLEAN, shared,
                                                  "error", G_TYPE_STRING, error ? error : "", NULL)));
}

/* The load thread's view of the progress: posted when the step changes or
 * the fraction moved by a percent, at most every 100 ms. */
typedef struct {
    GstMgllavaFilter* self;
    const gchar* path;
    const gchar* device;
    gint64 t0, last_post;
    gdouble last_fraction;
    gchar last_what[96];
} GstMgllavaLoadWatch;

static gboolean gst_mgllava_filter_on_load_progress(gdouble fraction, const gchar* what, gpointer data) {
    GstMgllavaLoadWatch* w = data;
    gint64 now = g_get_monotonic_time();
    const gsize n = gst_mgllava_load_step_len(what);
    /* a new step, not only new detail in the same one */
    gboolean step = n != gst_mgllava_load_step_len(w->last_what) || strncmp(what, w->last_what, n) != 0;

    if (g_atomic_int_get(&w->self->load_cancel)) return FALSE;
    if (fraction > w->last_fraction && fraction < 1.0 &&
        (step || (fraction - w->last_fraction >= 0.01 && now - w->last_post >= 100 * G_TIME_SPAN_MILLISECOND))) {
        post_load(w->self, GST_PROGRESS_TYPE_CONTINUE, "loading", fraction, what, w->path, w->device,
                  (now - w->t0) / 1e6, FALSE, NULL);
        w->last_fraction = fraction;
        w->last_post = now;
        g_strlcpy(w->last_what, what, sizeof w->last_what);
    }
    return TRUE;
}

gboolean gst_mgllava_filter_open_model(GstMgllavaFilter* self) {
    MglModelParams mp = mgl_model_default_params();
    MglServerParams sp = mgl_server_default_params();
    MglErr err = {0};
    gchar* path;
    GstMgllavaDevice device;
    GstMgllavaPrecision precision;
    gboolean reused = FALSE;
    gint loaded_with;
    GstMgllavaLoadWatch watch = {self};
    gdouble seconds;

    GST_OBJECT_LOCK(self);
    path = g_strdup(self->model_path);
    device = self->device;
    precision = self->precision;
    mp.gpu_id = self->gpu_id;
    mp.n_threads = self->threads;
    sp.max_batch = (int)self->max_batch;
    GST_OBJECT_UNLOCK(self);

    if (!path || !*path) {
        GST_ELEMENT_ERROR(self, RESOURCE, NOT_FOUND,
                          ("No model set: set the \"model\" property to an MG-LLaVA model folder."), (NULL));
        g_free(path);
        return FALSE;
    }
    mp.device = device == GST_MGLLAVA_DEVICE_CUDA ? "cuda" : device == GST_MGLLAVA_DEVICE_CPU ? "cpu" : "auto";
    mp.precision = precision == GST_MGLLAVA_PRECISION_F32    ? "f32"
                   : precision == GST_MGLLAVA_PRECISION_F16  ? "f16"
                   : precision == GST_MGLLAVA_PRECISION_BF16 ? "bf16"
                                                             : NULL;
    GST_INFO_OBJECT(self, "loading model %s (device %s)", path, mp.device);
    post_load(self, GST_PROGRESS_TYPE_START, "start", 0.0, "", path, mp.device, 0.0, FALSE, NULL);
    watch.path = path;
    watch.device = mp.device;
    watch.t0 = g_get_monotonic_time();
    self->cached = gst_mgllava_model_cache_acquire_full(path, &mp, &sp, gst_mgllava_filter_on_load_progress, &watch,
                                                        &reused, &err);
    seconds = (g_get_monotonic_time() - watch.t0) / 1e6;
    if (!self->cached && g_atomic_int_get(&self->load_cancel)) {
        /* the element is stopping: no error, the load goes on only if
         * another element waits for it */
        post_load(self, GST_PROGRESS_TYPE_CANCELED, "canceled", watch.last_fraction, watch.last_what, path, mp.device,
                  seconds, FALSE, NULL);
        g_free(path);
        return FALSE;
    }
    post_load(self, self->cached ? GST_PROGRESS_TYPE_COMPLETE : GST_PROGRESS_TYPE_ERROR,
              self->cached ? "done" : "failed", self->cached ? 1.0 : watch.last_fraction,
              self->cached ? "ready" : watch.last_what, path, mp.device, seconds, reused,
              self->cached ? NULL : err.msg);
    if (!self->cached) {
        GST_ELEMENT_ERROR(self, RESOURCE, OPEN_READ, ("Could not load MG-LLaVA model \"%s\": %s", path, err.msg),
                          ("%s", mgl_status_to_string(err.code)));
        g_free(path);
        return FALSE;
    }
    self->model = gst_mgllava_cached_model_get_model(self->cached);
    self->server = gst_mgllava_cached_model_get_server(self->cached);
    loaded_with = gst_mgllava_cached_model_get_requested_max_batch(self->cached);
    GST_INFO_OBJECT(self, "model %s %s (scheduler: %d slots)", path, reused ? "shared with another element" : "loaded",
                    mgl_server_max_batch(self->server));
    if (reused && loaded_with != sp.max_batch)
        GST_ELEMENT_WARNING(self, RESOURCE, SETTINGS,
                            ("max-batch=%d is not used: the model \"%s\" is shared with an "
                             "element that loaded it with max-batch=%d (%d slots)",
                             sp.max_batch, path, loaded_with, mgl_server_max_batch(self->server)),
                            ("max-batch is set by the element that loads the model"));
    g_free(path);
    self->stream = mgl_stream_new(self->server);
    return gst_mgllava_filter_clip_open(self); /* clip-frames against the context */
}

/* ---- the asynchronous load --------------------------------------------- */

static gpointer gst_mgllava_filter_load_thread(gpointer data) {
    GstMgllavaFilter* self = data;
    gboolean ok = gst_mgllava_filter_open_model(self) && gst_mgllava_filter_constraint_open(self);

    g_mutex_lock(&self->lock);
    /* read without the lock by the streaming thread's fast path */
    g_atomic_int_set(&self->load_state, ok ? GST_MGLLAVA_MODEL_READY : GST_MGLLAVA_MODEL_FAILED);
    g_cond_broadcast(&self->cond);
    g_mutex_unlock(&self->lock);
    if (ok) g_object_notify(G_OBJECT(self), "model-loaded");
    return NULL;
}

void gst_mgllava_filter_load_start(GstMgllavaFilter* self) {
    g_mutex_lock(&self->lock);
    g_atomic_int_set(&self->load_state, GST_MGLLAVA_MODEL_LOADING);
    self->n_unloaded = 0;
    g_mutex_unlock(&self->lock);
    g_atomic_int_set(&self->load_cancel, 0);
    self->loader = g_thread_new("mgllava-load-wait", gst_mgllava_filter_load_thread, self);
}

void gst_mgllava_filter_load_cancel(GstMgllavaFilter* self) {
    g_atomic_int_set(&self->load_cancel, 1);
    g_mutex_lock(&self->lock);
    g_cond_broadcast(&self->cond);
    g_mutex_unlock(&self->lock);
}

void gst_mgllava_filter_load_join(GstMgllavaFilter* self) {
    gst_mgllava_filter_load_cancel(self);
    if (self->loader) {
        g_thread_join(self->loader);
        self->loader = NULL;
    }
}

gboolean gst_mgllava_filter_load_wait(GstMgllavaFilter* self, gboolean wait, GstFlowReturn* ret) {
    gboolean ready;

    g_mutex_lock(&self->lock);
    while (wait && self->load_state == GST_MGLLAVA_MODEL_LOADING && !self->flushing &&
           !g_atomic_int_get(&self->load_cancel))
        g_cond_wait(&self->cond, &self->lock);
    ready = self->load_state == GST_MGLLAVA_MODEL_READY;
    if (ready)
        *ret = GST_FLOW_OK;
    else if (self->load_state == GST_MGLLAVA_MODEL_FAILED)
        *ret = GST_FLOW_ERROR; /* the load thread posted the error */
    else if (self->flushing || g_atomic_int_get(&self->load_cancel))
        *ret = GST_FLOW_FLUSHING;
    else {
        *ret = GST_FLOW_OK; /* live: this frame passes unanswered */
        self->n_unloaded++;
    }
    g_mutex_unlock(&self->lock);
    return ready;
}

void gst_mgllava_filter_worker_start(GstMgllavaFilter* self) {
    g_mutex_lock(&self->lock);
    self->running = TRUE;
    self->flushing = FALSE;
    self->abort_flag = 0;
    self->n_sampled = self->n_results = self->n_dropped = self->n_failed = self->n_aborted = self->n_late = 0;
    self->n_incomplete = 0;
    self->max_batch_seen = 0;
    memset(&self->trig_stats, 0, sizeof self->trig_stats);
    g_mutex_unlock(&self->lock);
    self->worker = g_thread_new("mgllava-worker", gst_mgllava_filter_worker, self);
}

/* Discards the queued requests (counted as aborted) and the answers no frame
 * took yet (already counted as results). */
static void gst_mgllava_filter_clear_queues(GstMgllavaFilter* self) {
    /* with lock */
    self->n_aborted += g_queue_get_length(&self->jobs);
    g_queue_clear_full(&self->jobs, (GDestroyNotify)gst_mgllava_job_free);
    g_queue_clear_full(&self->results, (GDestroyNotify)gst_mgllava_result_free);
}

void gst_mgllava_filter_worker_stop(GstMgllavaFilter* self) {
    g_mutex_lock(&self->lock);
    self->running = FALSE;
    self->abort_flag = 1;
    gst_mgllava_filter_clear_queues(self);
    g_cond_broadcast(&self->cond);
    g_mutex_unlock(&self->lock);
    /* the submitted request is aborted at once (still queued in the scheduler)
     * or at its next step (running), and called back as MGL_E_ABORTED */
    if (self->stream) mgl_stream_abort(self->stream, 0);
    if (self->worker) {
        g_thread_join(self->worker);
        self->worker = NULL;
    }
    g_mutex_lock(&self->lock);
    gst_mgllava_filter_clear_queues(self);
    g_mutex_unlock(&self->lock);
    g_clear_pointer(&self->stream, mgl_stream_free);
    self->server = NULL;
    self->model = NULL;
    g_clear_pointer(&self->cached, gst_mgllava_model_cache_release);
}

void gst_mgllava_filter_worker_flush_start(GstMgllavaFilter* self) {
    /* waiting requests are discarded, the submitted one is aborted */
    g_mutex_lock(&self->lock);
    self->flushing = TRUE;
    self->abort_flag = 1;
    gst_mgllava_filter_clear_queues(self);
    g_cond_broadcast(&self->cond);
    g_mutex_unlock(&self->lock);
    if (self->stream) mgl_stream_abort(self->stream, 0);
}

void gst_mgllava_filter_worker_flush_stop(GstMgllavaFilter* self) {
    g_mutex_lock(&self->lock);
    while (self->busy) g_cond_wait(&self->cond, &self->lock);
    gst_mgllava_filter_clear_queues(self);
    self->flushing = FALSE;
    self->abort_flag = 0;
    g_mutex_unlock(&self->lock);
}

void gst_mgllava_filter_worker_drain(GstMgllavaFilter* self, GQueue* late) {
    GstMgllavaResult* r;

    /* let every pending request finish so no answer is lost (live or not: at
     * most max-pending requests wait); a flush or stop ends the wait */
    g_mutex_lock(&self->lock);
    while (!self->flushing && self->running && (self->busy || !g_queue_is_empty(&self->jobs)))
        g_cond_wait(&self->cond, &self->lock);
    while ((r = g_queue_pop_head(&self->results))) {
        if (r->fields.source_frame != GST_MGLLAVA_NO_ANSWER)
            g_queue_push_tail(late, r);
        else
            gst_mgllava_result_free(r);
    }
    g_mutex_unlock(&self->lock);
}

GstStructure* gst_mgllava_filter_worker_stats(GstMgllavaFilter* self) {
    GstStructure* s;

    g_mutex_lock(&self->lock);
    s = gst_structure_new("mgllava-stats", "sampled", G_TYPE_UINT64, self->n_sampled, "results", G_TYPE_UINT64,
                          self->n_results, "dropped", G_TYPE_UINT64, self->n_dropped, "failed", G_TYPE_UINT64,
                          self->n_failed, "aborted", G_TYPE_UINT64, self->n_aborted, "late", G_TYPE_UINT64,
                          self->n_late, "pending", G_TYPE_UINT, g_queue_get_length(&self->jobs) + (self->busy ? 1 : 0),
                          "largest-batch", G_TYPE_INT, self->max_batch_seen, "incomplete", G_TYPE_UINT64,
                          self->n_incomplete, "unloaded", G_TYPE_UINT64, self->n_unloaded, NULL);
    gst_mgllava_filter_trigger_add_stats(self, s);
    gst_mgllava_filter_clip_add_stats(self, s);
    g_mutex_unlock(&self->lock);
    return s;
}

/* ---- the queue --------------------------------------------------------- */

/* Queues @job under the drop policy; returns its sequence number, 0 when it
 * was dropped (then freed). */
guint64 gst_mgllava_filter_submit(GstMgllavaFilter* self, GstMgllavaJob* job, GstMgllavaAttachMode mode,
                                  GstMgllavaDropPolicy policy, guint max_pending) {
    guint64 seq;

    g_mutex_lock(&self->lock);
    job->seq = seq = ++self->next_seq;
    self->n_sampled++;
    if (g_queue_get_length(&self->jobs) >= max_pending) {
        if (policy == GST_MGLLAVA_DROP_BLOCK || mode == GST_MGLLAVA_ATTACH_EXACT) {
            while (!self->flushing && self->running && g_queue_get_length(&self->jobs) >= max_pending)
                g_cond_wait(&self->cond, &self->lock);
        } else if (policy == GST_MGLLAVA_DROP_OLDEST) {
            gst_mgllava_job_free(g_queue_pop_head(&self->jobs));
            self->n_dropped++;
        }
    }
    if (self->flushing || !self->running) {
        self->n_aborted++; /* refused by a flush or stop */
        gst_mgllava_job_free(job);
        seq = 0;
    } else if (policy == GST_MGLLAVA_DROP_NEWEST && mode != GST_MGLLAVA_ATTACH_EXACT &&
               g_queue_get_length(&self->jobs) >= max_pending) {
        self->n_dropped++;
        gst_mgllava_job_free(job);
        seq = 0;
    } else {
        g_queue_push_tail(&self->jobs, job);
        g_cond_broadcast(&self->cond);
    }
    g_mutex_unlock(&self->lock);
    return seq;
}

void gst_mgllava_filter_take_results(GstMgllavaFilter* self, guint64 seq, GstMgllavaAttachMode mode,
                                     guint64 exact_latency, guint64 frame, GQueue* ready) {
    GstMgllavaResult* r;

    g_mutex_lock(&self->lock);
    if (mode == GST_MGLLAVA_ATTACH_EXACT && seq) {
        /* hold this frame until its answer, at most exact-latency */
        gboolean forever = !GST_CLOCK_TIME_IS_VALID(exact_latency);
        gint64 deadline = forever ? 0 : g_get_monotonic_time() + exact_latency / 1000;
        gboolean done = FALSE;

        while (!done && !self->flushing && self->running) {
            GList* l;
            for (l = self->results.head; l; l = l->next)
                if (((GstMgllavaResult*)l->data)->seq == seq) done = TRUE;
            if (done) break;
            if (forever)
                g_cond_wait(&self->cond, &self->lock);
            else if (!g_cond_wait_until(&self->cond, &self->lock, deadline)) {
                GST_WARNING_OBJECT(self,
                                   "frame %" G_GUINT64_FORMAT " waited the full "
                                   "exact-latency; its answer will attach to a later frame",
                                   frame);
                break;
            }
        }
    }
    /* everything finished so far attaches to this buffer, in order */
    while ((r = g_queue_pop_head(&self->results))) g_queue_push_tail(ready, r);
    g_mutex_unlock(&self->lock);
}
