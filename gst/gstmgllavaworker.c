/* gstmgllavaworker.c: mgllavafilter's request queue and the thread that
 * answers it.
 *
 * At most max-pending requests wait. When the queue is full, drop-policy
 * decides: drop the oldest waiting request, drop the new one, or block the
 * streaming thread (attach-mode=exact always blocks). The worker thread
 * owns the engine context: it takes one request at a time, runs the model
 * without the lock, posts the `mgllava-result` message and queues the
 * result for the next outgoing buffer. Every request completes its sequence
 * number, with an answer or with a gap marker, so attach-mode=exact can
 * wait for its own. */
#include "gstmgllavafilter-private.h"

#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---- jobs and results -------------------------------------------------- */

void
gst_mgllava_job_free (GstMgllavaJob * j)
{
  if (!j)
    return;
  g_free (j->rgb);
  if (j->boxes)
    g_array_unref (j->boxes);
  g_free (j->prompt);
  g_free (j);
}

void
gst_mgllava_result_free (GstMgllavaResult * r)
{
  if (!r)
    return;
  g_free (r->fields.text);
  g_free (r->fields.prompt);
  g_free (r);
}

/* The answer to @job, from the engine's @text and timings @tm. */
static GstMgllavaResult *
gst_mgllava_result_new (const GstMgllavaJob * job, const char *text,
    const MglTimings * tm)
{
  GstMgllavaResult *r = g_new0 (GstMgllavaResult, 1);

  r->fields.text = g_strdup (text);
  r->fields.prompt = g_strdup (job->prompt);
  r->fields.source_pts = job->pts;
  r->fields.source_frame = job->frame;
  r->fields.n_tokens = tm->n_generated;
  r->fields.n_objects = tm->n_objects;
  r->fields.latency_ms = (g_get_monotonic_time () - job->t_sampled) / 1000.0;
  r->fields.preprocess_ms = tm->preprocess_ms;
  r->fields.vision_ms = tm->vision_ms;
  r->fields.prefill_ms = tm->prefill_ms;
  r->fields.decode_ms = tm->decode_ms;
  r->seq = job->seq;
  return r;
}

/* ---- worker ------------------------------------------------------------ */

static gpointer
gst_mgllava_filter_worker (gpointer data)
{
  GstMgllavaFilter *self = data;

  /* Inference yields the CPU to the streaming threads: on a busy machine the
   * frames keep their pace and the answers come a little later. The engine's
   * compute threads are created from here and inherit this. */
  if (setpriority (PRIO_PROCESS, (id_t) syscall (SYS_gettid), 10) != 0)
    GST_DEBUG_OBJECT (self, "could not lower the worker's priority");

  g_mutex_lock (&self->lock);
  for (;;) {
    GstMgllavaJob *job;
    GstMgllavaResult *res = NULL;
    MglTimings tm = { 0 };
    MglErr err = { 0 };
    MglStatus st;
    MglImage img;
    char *text = NULL;

    while (self->running && g_queue_is_empty (&self->jobs))
      g_cond_wait (&self->cond, &self->lock);
    if (!self->running)
      break;
    job = g_queue_pop_head (&self->jobs);
    self->busy = TRUE;
    g_cond_broadcast (&self->cond);     /* a slot freed (drop-policy=block) */
    g_mutex_unlock (&self->lock);

    img.data = job->rgb;
    img.width = job->width;
    img.height = job->height;
    img.stride = job->width * 3;
    job->gen.abort_flag = &self->abort_flag;
    st = mgl_generate (self->ctx, &img, (const MglBox *) job->boxes->data,
        job->boxes->len, job->prompt, &job->gen, &text, NULL, NULL, &tm, &err);
    if (st == MGL_OK) {
      res = gst_mgllava_result_new (job, text, &tm);
      /* the bus message carries the same fields as the meta */
      gst_element_post_message (GST_ELEMENT (self),
          gst_message_new_element (GST_OBJECT (self),
              gst_mgllava_result_meta_to_structure (&res->fields)));
      GST_DEBUG_OBJECT (self, "frame %" G_GUINT64_FORMAT ": \"%s\" (%.1f ms)",
          res->fields.source_frame, res->fields.text, res->fields.latency_ms);
    } else if (st == MGL_E_ABORTED) {
      GST_DEBUG_OBJECT (self, "request for frame %" G_GUINT64_FORMAT
          " aborted", job->frame);
    } else {
      /* transient: this frame gets no answer, the stream keeps flowing */
      GST_ELEMENT_WARNING (self, STREAM, FAILED,
          ("Inference failed on frame %" G_GUINT64_FORMAT ".", job->frame),
          ("%s: %s", mgl_status_to_string (st), err.msg));
    }
    free (text);

    /* every request ends counted once: an answer (posted on the bus, even
     * when a flush then discards it), aborted by a flush or stop, or failed */
    g_mutex_lock (&self->lock);
    if (res) {
      self->n_results++;
      if (!self->flushing)
        g_queue_push_tail (&self->results, res);
      else
        gst_mgllava_result_free (res);
    } else if (st == MGL_E_ABORTED) {
      self->n_aborted++;
    } else {
      self->n_failed++;
    }
    /* a request that produced nothing still completes its sequence number */
    if (!res && !self->flushing) {
      GstMgllavaResult *gap = g_new0 (GstMgllavaResult, 1);
      gap->seq = job->seq;
      gap->fields.source_frame = GST_MGLLAVA_NO_ANSWER;
      g_queue_push_tail (&self->results, gap);
    }
    self->busy = FALSE;
    g_cond_broadcast (&self->cond);
    g_mutex_unlock (&self->lock);
    gst_mgllava_job_free (job);
    g_mutex_lock (&self->lock);
  }
  g_mutex_unlock (&self->lock);
  return NULL;
}

/* ---- lifecycle --------------------------------------------------------- */

gboolean
gst_mgllava_filter_open_model (GstMgllavaFilter * self)
{
  MglModelParams mp = mgl_model_default_params ();
  MglErr err = { 0 };
  gchar *path;
  GstMgllavaDevice device;
  gboolean reused = FALSE;

  GST_OBJECT_LOCK (self);
  path = g_strdup (self->model_path);
  device = self->device;
  mp.gpu_id = self->gpu_id;
  mp.n_threads = self->threads;
  GST_OBJECT_UNLOCK (self);

  if (!path || !*path) {
    GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND,
        ("No model set: set the \"model\" property to an MG-LLaVA model folder."),
        (NULL));
    g_free (path);
    return FALSE;
  }
  mp.device = device == GST_MGLLAVA_DEVICE_CUDA ? "cuda" :
      device == GST_MGLLAVA_DEVICE_CPU ? "cpu" : "auto";
  GST_INFO_OBJECT (self, "loading model %s (device %s)", path, mp.device);
  self->cached = gst_mgllava_model_cache_acquire (path, &mp, &reused, &err);
  if (!self->cached) {
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ,
        ("Could not load MG-LLaVA model \"%s\": %s", path, err.msg),
        ("%s", mgl_status_to_string (err.code)));
    g_free (path);
    return FALSE;
  }
  GST_INFO_OBJECT (self, "model %s %s", path, reused ?
      "shared with another element" : "loaded");
  g_free (path);
  self->model = gst_mgllava_cached_model_get_model (self->cached);
  if (mgl_ctx_new (self->model, &self->ctx, &err) != MGL_OK) {
    GST_ELEMENT_ERROR (self, RESOURCE, FAILED,
        ("Could not create an inference context: %s", err.msg), (NULL));
    self->model = NULL;
    g_clear_pointer (&self->cached, gst_mgllava_model_cache_release);
    return FALSE;
  }
  return TRUE;
}

void
gst_mgllava_filter_worker_start (GstMgllavaFilter * self)
{
  g_mutex_lock (&self->lock);
  self->running = TRUE;
  self->flushing = FALSE;
  self->abort_flag = 0;
  self->n_sampled = self->n_results = self->n_dropped = self->n_failed =
      self->n_aborted = self->n_late = 0;
  g_mutex_unlock (&self->lock);
  self->worker = g_thread_new ("mgllava-worker", gst_mgllava_filter_worker,
      self);
}

/* Discards the queued requests (counted as aborted) and the answers no frame
 * took yet (already counted as results). */
static void
gst_mgllava_filter_clear_queues (GstMgllavaFilter * self)
{
  /* with lock */
  self->n_aborted += g_queue_get_length (&self->jobs);
  g_queue_clear_full (&self->jobs, (GDestroyNotify) gst_mgllava_job_free);
  g_queue_clear_full (&self->results,
      (GDestroyNotify) gst_mgllava_result_free);
}

void
gst_mgllava_filter_worker_stop (GstMgllavaFilter * self)
{
  g_mutex_lock (&self->lock);
  self->running = FALSE;
  self->abort_flag = 1;
  gst_mgllava_filter_clear_queues (self);
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);
  if (self->worker) {
    g_thread_join (self->worker);
    self->worker = NULL;
  }
  g_mutex_lock (&self->lock);
  gst_mgllava_filter_clear_queues (self);
  g_mutex_unlock (&self->lock);
  g_clear_pointer (&self->ctx, mgl_ctx_free);
  self->model = NULL;
  g_clear_pointer (&self->cached, gst_mgllava_model_cache_release);
}

void
gst_mgllava_filter_worker_flush_start (GstMgllavaFilter * self)
{
  /* pending requests are dropped, the one in flight is aborted */
  g_mutex_lock (&self->lock);
  self->flushing = TRUE;
  self->abort_flag = 1;
  gst_mgllava_filter_clear_queues (self);
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);
}

void
gst_mgllava_filter_worker_flush_stop (GstMgllavaFilter * self)
{
  g_mutex_lock (&self->lock);
  while (self->busy)
    g_cond_wait (&self->cond, &self->lock);
  gst_mgllava_filter_clear_queues (self);
  self->flushing = FALSE;
  self->abort_flag = 0;
  g_mutex_unlock (&self->lock);
}

void
gst_mgllava_filter_worker_drain (GstMgllavaFilter * self, GQueue * late)
{
  GstMgllavaResult *r;

  /* let every pending request finish so no answer is lost (live or not: at
   * most max-pending requests wait); a flush or stop ends the wait */
  g_mutex_lock (&self->lock);
  while (!self->flushing && self->running &&
      (self->busy || !g_queue_is_empty (&self->jobs)))
    g_cond_wait (&self->cond, &self->lock);
  while ((r = g_queue_pop_head (&self->results))) {
    if (r->fields.source_frame != GST_MGLLAVA_NO_ANSWER)
      g_queue_push_tail (late, r);
    else
      gst_mgllava_result_free (r);
  }
  g_mutex_unlock (&self->lock);
}

GstStructure *
gst_mgllava_filter_worker_stats (GstMgllavaFilter * self)
{
  GstStructure *s;

  g_mutex_lock (&self->lock);
  s = gst_structure_new ("mgllava-stats",
      "sampled", G_TYPE_UINT64, self->n_sampled,
      "results", G_TYPE_UINT64, self->n_results,
      "dropped", G_TYPE_UINT64, self->n_dropped,
      "failed", G_TYPE_UINT64, self->n_failed,
      "aborted", G_TYPE_UINT64, self->n_aborted,
      "late", G_TYPE_UINT64, self->n_late,
      "pending", G_TYPE_UINT, g_queue_get_length (&self->jobs) + (self->busy ?
          1 : 0), NULL);
  g_mutex_unlock (&self->lock);
  return s;
}

/* ---- the queue --------------------------------------------------------- */

/* Queues @job under the drop policy; returns its sequence number, 0 when it
 * was dropped (then freed). */
guint64
gst_mgllava_filter_submit (GstMgllavaFilter * self, GstMgllavaJob * job,
    GstMgllavaAttachMode mode, GstMgllavaDropPolicy policy, guint max_pending)
{
  guint64 seq;

  g_mutex_lock (&self->lock);
  job->seq = seq = ++self->next_seq;
  self->n_sampled++;
  if (g_queue_get_length (&self->jobs) >= max_pending) {
    if (policy == GST_MGLLAVA_DROP_BLOCK || mode == GST_MGLLAVA_ATTACH_EXACT) {
      while (!self->flushing && self->running
          && g_queue_get_length (&self->jobs) >= max_pending)
        g_cond_wait (&self->cond, &self->lock);
    } else if (policy == GST_MGLLAVA_DROP_OLDEST) {
      gst_mgllava_job_free (g_queue_pop_head (&self->jobs));
      self->n_dropped++;
    }
  }
  if (self->flushing || !self->running) {
    self->n_aborted++;          /* refused by a flush or stop */
    gst_mgllava_job_free (job);
    seq = 0;
  } else if (policy == GST_MGLLAVA_DROP_NEWEST
      && mode != GST_MGLLAVA_ATTACH_EXACT
      && g_queue_get_length (&self->jobs) >= max_pending) {
    self->n_dropped++;
    gst_mgllava_job_free (job);
    seq = 0;
  } else {
    g_queue_push_tail (&self->jobs, job);
    g_cond_broadcast (&self->cond);
  }
  g_mutex_unlock (&self->lock);
  return seq;
}

void
gst_mgllava_filter_take_results (GstMgllavaFilter * self, guint64 seq,
    GstMgllavaAttachMode mode, guint64 exact_latency, guint64 frame,
    GQueue * ready)
{
  GstMgllavaResult *r;

  g_mutex_lock (&self->lock);
  if (mode == GST_MGLLAVA_ATTACH_EXACT && seq) {
    /* hold this frame until its answer, at most exact-latency */
    gboolean forever = !GST_CLOCK_TIME_IS_VALID (exact_latency);
    gint64 deadline = forever ? 0 :
        g_get_monotonic_time () + exact_latency / 1000;
    gboolean done = FALSE;

    while (!done && !self->flushing && self->running) {
      GList *l;
      for (l = self->results.head; l; l = l->next)
        if (((GstMgllavaResult *) l->data)->seq == seq)
          done = TRUE;
      if (done)
        break;
      if (forever)
        g_cond_wait (&self->cond, &self->lock);
      else if (!g_cond_wait_until (&self->cond, &self->lock, deadline)) {
        GST_WARNING_OBJECT (self, "frame %" G_GUINT64_FORMAT " waited the full "
            "exact-latency; its answer will attach to a later frame", frame);
        break;
      }
    }
  }
  /* everything finished so far attaches to this buffer, in order */
  while ((r = g_queue_pop_head (&self->results)))
    g_queue_push_tail (ready, r);
  g_mutex_unlock (&self->lock);
}
