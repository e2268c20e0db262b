/* gstmgllavafilter.c
 *
 * SECTION:element-mgllavafilter
 * @title: mgllavafilter
 *
 * Runs MG-LLaVA (low-resolution CLIP view, high-resolution ConvNeXt view and
 * object tokens from upstream detections) on sampled video frames and attaches
 * each answer as a #GstMgllavaResultMeta, posts an element message
 * `mgllava-result` on the bus, and sends the text on the `text_src` pad.
 * Pixels are never modified.
 *
 * The model loads in start() (READY to PAUSED). Inference runs on a worker
 * thread that owns the engine. In `attach-mode=latest` the streaming thread
 * never waits: a sampled frame is copied (as RGB) into a request and the
 * frame goes on at once; each answer is attached to the next outgoing buffer
 * and carries the PTS and number of the frame it is about. In
 * `attach-mode=exact` the sampled frame is held until its answer (at most
 * `exact-latency`), and the element adds that bound to the LATENCY query.
 *
 * Detections come from GstVideoRegionOfInterestMeta on the buffer (any
 * detector, tracker or mgllavaboxes/mgllavablobdetect upstream).
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 videotestsrc num-buffers=100 ! mgllavafilter model=models/demo \
 *     prompt="Describe the image." interval=25 ! mgllavajson location=- ! fakesink
 * gst-launch-1.0 filesrc location=in.mp4 ! decodebin ! videoconvert ! \
 *     mgllavafilter name=f model=/models/mgllava-7b ! videoconvert ! autovideosink \
 *     f.text_src ! queue ! fakesink
 * ]|
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstmgllavafilter.h"
#include "gstmgllavameta.h"
#include "gstmglroi.h"

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

GST_DEBUG_CATEGORY_STATIC (gst_mgllava_filter_debug);
#define GST_CAT_DEFAULT gst_mgllava_filter_debug

#define VIDEO_FORMATS "{ RGB, RGBx, BGRx, RGBA, BGRA, I420, NV12 }"

#define DEFAULT_PROMPT "Describe the image."
#define DEFAULT_MAX_NEW_TOKENS 0
#define DEFAULT_TEMPERATURE 0.0f
#define DEFAULT_TOP_P 1.0f
#define DEFAULT_TOP_K 0
#define DEFAULT_SEED 0
#define DEFAULT_INTERVAL 30
#define DEFAULT_INTERVAL_TIME 0
#define DEFAULT_DEVICE GST_MGLLAVA_DEVICE_AUTO
#define DEFAULT_GPU_ID 0
#define DEFAULT_ATTACH_MODE GST_MGLLAVA_ATTACH_LATEST
#define DEFAULT_MAX_PENDING 1
#define DEFAULT_DROP_POLICY GST_MGLLAVA_DROP_OLDEST
#define DEFAULT_USE_OBJECTS TRUE
#define DEFAULT_MAX_OBJECTS 0
#define DEFAULT_MIN_OBJECT_SIZE 0.0
#define DEFAULT_USE_HIGH_RES TRUE
#define DEFAULT_OBJECT_ORDER GST_MGLLAVA_OBJECT_ORDER_MODEL
#define DEFAULT_EXACT_LATENCY (5 * GST_SECOND)
#define DEFAULT_TEXT_DURATION 0
#define DEFAULT_THREADS 0

enum
{
  PROP_0,
  PROP_MODEL,
  PROP_PROMPT,
  PROP_MAX_NEW_TOKENS,
  PROP_TEMPERATURE,
  PROP_TOP_P,
  PROP_TOP_K,
  PROP_SEED,
  PROP_INTERVAL,
  PROP_INTERVAL_TIME,
  PROP_DEVICE,
  PROP_GPU_ID,
  PROP_ATTACH_MODE,
  PROP_MAX_PENDING,
  PROP_DROP_POLICY,
  PROP_USE_OBJECTS,
  PROP_MAX_OBJECTS,
  PROP_OBJECT_LABELS,
  PROP_MIN_OBJECT_SIZE,
  PROP_USE_HIGH_RES,
  PROP_OBJECT_ORDER,
  PROP_EXACT_LATENCY,
  PROP_TEXT_DURATION,
  PROP_THREADS,
  PROP_STATS,
};

/* A sampled frame waiting for the worker: owns its pixels and boxes. */
typedef struct
{
  guint8 *rgb;
  gint width, height;
  GArray *boxes;                /* MglBox, labels interned */
  gchar *prompt;
  MglGenParams gen;
  GstClockTime pts;
  guint64 frame;
  gint64 t_sampled;             /* monotonic us */
  guint64 seq;
} Job;

typedef struct
{
  gchar *text;
  gchar *prompt;
  GstClockTime pts;
  guint64 frame;
  guint n_tokens, n_objects;
  MglTimings tm;
  gdouble latency_ms;
  guint64 seq;
} Result;

struct _GstMgllavaFilter
{
  GstBaseTransform parent;

  GstPad *text_src;

  /* with OBJECT_LOCK */
  gchar *model_path;
  gchar *prompt;
  guint max_new_tokens;
  gfloat temperature;
  gfloat top_p;
  guint top_k;
  guint64 seed;
  guint interval;
  guint64 interval_time;
  GstMgllavaDevice device;
  gint gpu_id;
  GstMgllavaAttachMode attach_mode;
  guint max_pending;
  GstMgllavaDropPolicy drop_policy;
  gboolean use_objects;
  guint max_objects;
  gchar *object_labels;
  gdouble min_object_size;
  gboolean use_high_res;
  GstMgllavaObjectOrder object_order;
  guint64 exact_latency;
  guint64 text_duration;
  gint threads;
  GstClockTime qos_earliest;    /* running time; NONE = no QoS info */

  /* streaming thread only */
  GstVideoInfo info;
  gboolean have_info;
  GstVideoConverter *conv;
  guint64 frame_count;
  GstClockTime last_sample_rt;
  gboolean text_started;
  gboolean text_segment_pending;
  GstClockTime last_text_pts;
  GstClockTime text_end;         /* end of the last text buffer */
  gboolean live_known, live;

  /* engine: created in start(), used by the worker only, freed in stop() */
  MglModel *model;
  MglCtx *ctx;

  /* with lock */
  GMutex lock;
  GCond cond;
  GQueue jobs;
  GQueue results;
  gboolean running;
  gboolean busy;
  gboolean flushing;
  volatile int abort_flag;
  guint64 next_seq;
  guint64 n_sampled, n_results, n_dropped, n_failed, n_late;
  GThread *worker;

  GMutex text_lock;
};

#define gst_mgllava_filter_parent_class parent_class
G_DEFINE_TYPE (GstMgllavaFilter, gst_mgllava_filter, GST_TYPE_BASE_TRANSFORM);
GST_ELEMENT_REGISTER_DEFINE (mgllavafilter, "mgllavafilter", GST_RANK_NONE,
    GST_TYPE_MGLLAVA_FILTER);

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK, GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE (VIDEO_FORMATS)));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE (VIDEO_FORMATS)));
static GstStaticPadTemplate text_src_template =
GST_STATIC_PAD_TEMPLATE ("text_src", GST_PAD_SRC, GST_PAD_ALWAYS,
    GST_STATIC_CAPS ("text/x-raw, format=(string)utf8"));

/* ---- enums ------------------------------------------------------------- */

#define GST_TYPE_MGLLAVA_ATTACH_MODE (gst_mgllava_attach_mode_get_type ())
static GType
gst_mgllava_attach_mode_get_type (void)
{
  static GType t = 0;
  static const GEnumValue values[] = {
    {GST_MGLLAVA_ATTACH_LATEST,
        "Frames pass at once; answers attach to a later frame", "latest"},
    {GST_MGLLAVA_ATTACH_EXACT,
        "Sampled frames wait for their own answer (bounded by exact-latency)",
        "exact"},
    {0, NULL, NULL}
  };
  if (g_once_init_enter (&t))
    g_once_init_leave (&t, g_enum_register_static ("GstMgllavaAttachMode",
            values));
  return t;
}

#define GST_TYPE_MGLLAVA_DROP_POLICY (gst_mgllava_drop_policy_get_type ())
static GType
gst_mgllava_drop_policy_get_type (void)
{
  static GType t = 0;
  static const GEnumValue values[] = {
    {GST_MGLLAVA_DROP_OLDEST, "Drop the oldest waiting request", "oldest"},
    {GST_MGLLAVA_DROP_NEWEST, "Drop the new request", "newest"},
    {GST_MGLLAVA_DROP_BLOCK,
        "Block the streaming thread until a request slot frees", "block"},
    {0, NULL, NULL}
  };
  if (g_once_init_enter (&t))
    g_once_init_leave (&t, g_enum_register_static ("GstMgllavaDropPolicy",
            values));
  return t;
}

#define GST_TYPE_MGLLAVA_OBJECT_ORDER (gst_mgllava_object_order_get_type ())
static GType
gst_mgllava_object_order_get_type (void)
{
  static GType t = 0;
  static const GEnumValue values[] = {
    {GST_MGLLAVA_OBJECT_ORDER_MODEL,
        "The model's own (its manifest's object_order; default score)", "model"},
    {GST_MGLLAVA_OBJECT_ORDER_SCORE,
        "Most confident first, as the official code orders them", "score"},
    {GST_MGLLAVA_OBJECT_ORDER_READING,
        "Reading order: top, middle, bottom third of the frame, each left to "
          "right", "reading"},
    {0, NULL, NULL}
  };
  if (g_once_init_enter (&t))
    g_once_init_leave (&t, g_enum_register_static ("GstMgllavaObjectOrder",
            values));
  return t;
}

#define GST_TYPE_MGLLAVA_DEVICE (gst_mgllava_device_get_type ())
static GType
gst_mgllava_device_get_type (void)
{
  static GType t = 0;
  static const GEnumValue values[] = {
    {GST_MGLLAVA_DEVICE_AUTO, "GPU when usable, else CPU", "auto"},
    {GST_MGLLAVA_DEVICE_CPU, "CPU", "cpu"},
    {GST_MGLLAVA_DEVICE_CUDA, "CUDA GPU (error when unusable)", "cuda"},
    {0, NULL, NULL}
  };
  if (g_once_init_enter (&t))
    g_once_init_leave (&t, g_enum_register_static ("GstMgllavaDevice", values));
  return t;
}

/* ---- jobs and results -------------------------------------------------- */

static void
job_free (Job * j)
{
  if (!j)
    return;
  g_free (j->rgb);
  if (j->boxes)
    g_array_unref (j->boxes);
  g_free (j->prompt);
  g_free (j);
}

static void
result_free (Result * r)
{
  if (!r)
    return;
  g_free (r->text);
  g_free (r->prompt);
  g_free (r);
}

/* The bus message carries the same fields as the meta: one definition of them. */
static GstStructure *
result_structure (const Result * r)
{
  GstMgllavaResultMeta m;

  memset (&m, 0, sizeof m);
  m.text = r->text;
  m.prompt = r->prompt;
  m.source_pts = r->pts;
  m.source_frame = r->frame;
  m.n_tokens = r->n_tokens;
  m.n_objects = r->n_objects;
  m.latency_ms = r->latency_ms;
  m.preprocess_ms = r->tm.preprocess_ms;
  m.vision_ms = r->tm.vision_ms;
  m.prefill_ms = r->tm.prefill_ms;
  m.decode_ms = r->tm.decode_ms;
  return gst_mgllava_result_meta_to_structure (&m);
}

/* ---- shared models ----------------------------------------------------- */

/* Every mgllavafilter in the process that names the same model (same folder,
 * device and thread setting) shares one loaded MglModel: many streams, one
 * copy of the weights. Each element keeps its own MglCtx (KV cache), and the
 * model is immutable once loaded. */
typedef struct
{
  gchar *key;
  MglModel *model;
  gint refs;
} SharedModel;

static GMutex shared_lock;
static GHashTable *shared_models;       /* key -> SharedModel, with shared_lock */

static MglModel *
shared_model_acquire (const gchar * path, const MglModelParams * mp,
    gboolean * reused, MglErr * err)
{
  gchar *abs = g_canonicalize_filename (path, NULL);
  gchar *real = realpath (abs, NULL);
  gchar *key = g_strdup_printf ("%s|%s|%d|%d", real ? real : abs, mp->device,
      mp->gpu_id, mp->n_threads);
  SharedModel *sm;
  MglModel *m = NULL;

  free (real);
  g_free (abs);
  g_mutex_lock (&shared_lock);
  if (!shared_models)
    shared_models = g_hash_table_new (g_str_hash, g_str_equal);
  sm = g_hash_table_lookup (shared_models, key);
  if (sm) {
    sm->refs++;
    m = sm->model;
    *reused = TRUE;
    g_free (key);
  } else if (mgl_model_load (path, mp, &m, err) == MGL_OK) {
    /* loaded under the lock: two elements starting together load it once */
    sm = g_new0 (SharedModel, 1);
    sm->key = key;
    sm->model = m;
    sm->refs = 1;
    g_hash_table_insert (shared_models, sm->key, sm);
    *reused = FALSE;
  } else {
    g_free (key);
  }
  g_mutex_unlock (&shared_lock);
  return m;
}

static void
shared_model_release (MglModel * m)
{
  GHashTableIter it;
  gpointer k, v;

  if (!m)
    return;
  g_mutex_lock (&shared_lock);
  g_hash_table_iter_init (&it, shared_models);
  while (g_hash_table_iter_next (&it, &k, &v)) {
    SharedModel *sm = v;
    if (sm->model == m) {
      if (--sm->refs == 0) {
        g_hash_table_iter_remove (&it);
        mgl_model_free (sm->model);
        g_free (sm->key);
        g_free (sm);
      }
      break;
    }
  }
  g_mutex_unlock (&shared_lock);
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
    Job *job;
    Result *res;
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
    res = g_new0 (Result, 1);
    st = mgl_generate (self->ctx, &img, (const MglBox *) job->boxes->data,
        job->boxes->len, job->prompt, &job->gen, &text, NULL, NULL, &res->tm,
        &err);
    if (st == MGL_OK) {
      res->text = g_strdup (text);
      res->prompt = g_strdup (job->prompt);
      res->pts = job->pts;
      res->frame = job->frame;
      res->n_tokens = res->tm.n_generated;
      res->n_objects = res->tm.n_objects;
      res->latency_ms = (g_get_monotonic_time () - job->t_sampled) / 1000.0;
      res->seq = job->seq;
      gst_element_post_message (GST_ELEMENT (self),
          gst_message_new_element (GST_OBJECT (self), result_structure (res)));
      GST_DEBUG_OBJECT (self, "frame %" G_GUINT64_FORMAT ": \"%s\" (%.1f ms)",
          res->frame, res->text, res->latency_ms);
    } else if (st == MGL_E_ABORTED) {
      GST_DEBUG_OBJECT (self, "request for frame %" G_GUINT64_FORMAT
          " aborted", job->frame);
      g_clear_pointer (&res, result_free);
    } else {
      /* transient: this frame gets no answer, the stream keeps flowing */
      GST_ELEMENT_WARNING (self, STREAM, FAILED,
          ("Inference failed on frame %" G_GUINT64_FORMAT ".", job->frame),
          ("%s: %s", mgl_status_to_string (st), err.msg));
      g_clear_pointer (&res, result_free);
    }
    free (text);

    g_mutex_lock (&self->lock);
    if (res && !self->flushing) {
      g_queue_push_tail (&self->results, res);
      self->n_results++;
    } else {
      if (!res && st != MGL_E_ABORTED)
        self->n_failed++;
      result_free (res);
    }
    /* a request that produced nothing still completes its sequence number */
    if (!res && !self->flushing) {
      Result *gap = g_new0 (Result, 1);
      gap->seq = job->seq;
      gap->frame = G_MAXUINT64;       /* marker: no answer */
      g_queue_push_tail (&self->results, gap);
    }
    self->busy = FALSE;
    g_cond_broadcast (&self->cond);
    g_mutex_unlock (&self->lock);
    job_free (job);
    g_mutex_lock (&self->lock);
  }
  g_mutex_unlock (&self->lock);
  return NULL;
}

/* ---- lifecycle --------------------------------------------------------- */

static gboolean
gst_mgllava_filter_start (GstBaseTransform * trans)
{
  GstMgllavaFilter *self = GST_MGLLAVA_FILTER (trans);
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
  self->model = shared_model_acquire (path, &mp, &reused, &err);
  if (!self->model) {
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ,
        ("Could not load MG-LLaVA model \"%s\": %s", path, err.msg),
        ("%s", mgl_status_to_string (err.code)));
    g_free (path);
    return FALSE;
  }
  GST_INFO_OBJECT (self, "model %s %s", path, reused ?
      "shared with another element" : "loaded");
  g_free (path);
  if (mgl_ctx_new (self->model, &self->ctx, &err) != MGL_OK) {
    GST_ELEMENT_ERROR (self, RESOURCE, FAILED,
        ("Could not create an inference context: %s", err.msg), (NULL));
    g_clear_pointer (&self->model, shared_model_release);
    return FALSE;
  }

  self->frame_count = 0;
  self->last_sample_rt = GST_CLOCK_TIME_NONE;
  self->text_started = FALSE;
  self->last_text_pts = GST_CLOCK_TIME_NONE;
  self->text_end = GST_CLOCK_TIME_NONE;
  self->live_known = FALSE;
  g_mutex_lock (&self->lock);
  self->running = TRUE;
  self->flushing = FALSE;
  self->abort_flag = 0;
  self->n_sampled = self->n_results = self->n_dropped = self->n_failed =
      self->n_late = 0;
  g_mutex_unlock (&self->lock);
  self->worker = g_thread_new ("mgllava-worker", gst_mgllava_filter_worker,
      self);
  return TRUE;
}

static void
gst_mgllava_filter_clear_queues (GstMgllavaFilter * self, gboolean count)
{
  /* with lock */
  if (count)
    self->n_dropped += g_queue_get_length (&self->jobs);
  g_queue_clear_full (&self->jobs, (GDestroyNotify) job_free);
  g_queue_clear_full (&self->results, (GDestroyNotify) result_free);
}

static gboolean
gst_mgllava_filter_stop (GstBaseTransform * trans)
{
  GstMgllavaFilter *self = GST_MGLLAVA_FILTER (trans);

  g_mutex_lock (&self->lock);
  self->running = FALSE;
  self->abort_flag = 1;
  gst_mgllava_filter_clear_queues (self, FALSE);
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);
  if (self->worker) {
    g_thread_join (self->worker);
    self->worker = NULL;
  }
  g_mutex_lock (&self->lock);
  gst_mgllava_filter_clear_queues (self, FALSE);
  g_mutex_unlock (&self->lock);
  g_clear_pointer (&self->ctx, mgl_ctx_free);
  g_clear_pointer (&self->model, shared_model_release);
  g_clear_pointer (&self->conv, gst_video_converter_free);
  self->have_info = FALSE;
  return TRUE;
}

static gboolean
gst_mgllava_filter_set_caps (GstBaseTransform * trans, GstCaps * incaps,
    GstCaps * outcaps)
{
  GstMgllavaFilter *self = GST_MGLLAVA_FILTER (trans);
  GstVideoInfo info;

  if (!gst_video_info_from_caps (&info, incaps)) {
    GST_ERROR_OBJECT (self, "invalid caps %" GST_PTR_FORMAT, incaps);
    return FALSE;
  }
  /* in-flight requests own copies of their pixels: a resolution switch is safe */
  g_clear_pointer (&self->conv, gst_video_converter_free);
  if (GST_VIDEO_INFO_FORMAT (&info) != GST_VIDEO_FORMAT_RGB) {
    GstVideoInfo out;

    gst_video_info_set_format (&out, GST_VIDEO_FORMAT_RGB,
        GST_VIDEO_INFO_WIDTH (&info), GST_VIDEO_INFO_HEIGHT (&info));
    /* the converter insists on equal rates and interlacing */
    GST_VIDEO_INFO_FPS_N (&out) = GST_VIDEO_INFO_FPS_N (&info);
    GST_VIDEO_INFO_FPS_D (&out) = GST_VIDEO_INFO_FPS_D (&info);
    GST_VIDEO_INFO_INTERLACE_MODE (&out) = GST_VIDEO_INFO_INTERLACE_MODE (&info);
    self->conv = gst_video_converter_new (&info, &out,
        gst_structure_new ("options",
            GST_VIDEO_CONVERTER_OPT_THREADS, G_TYPE_UINT, 1, NULL));
    if (!self->conv) {
      GST_ERROR_OBJECT (self, "cannot convert %s to RGB",
          gst_video_format_to_string (GST_VIDEO_INFO_FORMAT (&info)));
      return FALSE;
    }
  }
  self->info = info;
  self->have_info = TRUE;
  GST_DEBUG_OBJECT (self, "caps %" GST_PTR_FORMAT, incaps);
  return TRUE;
}

/* ---- text pad ---------------------------------------------------------- */

static void
gst_mgllava_filter_text_prepare (GstMgllavaFilter * self)
{
  /* with text_lock */
  if (!self->text_started) {
    gchar *id = gst_pad_create_stream_id (self->text_src, GST_ELEMENT (self),
        "text");
    GstCaps *caps = gst_static_pad_template_get_caps (&text_src_template);

    gst_pad_push_event (self->text_src, gst_event_new_stream_start (id));
    gst_pad_push_event (self->text_src, gst_event_new_caps (caps));
    gst_caps_unref (caps);
    g_free (id);
    self->text_started = TRUE;
    self->text_segment_pending = TRUE;
  }
  if (self->text_segment_pending) {
    GstSegment seg = GST_BASE_TRANSFORM (self)->segment;

    gst_pad_push_event (self->text_src, gst_event_new_segment (&seg));
    self->text_segment_pending = FALSE;
  }
}

/* How long a caption stays on text_src: the text-duration property, else the
 * sampling period (interval-time, or interval frames), at least one frame. */
static GstClockTime
gst_mgllava_filter_text_duration (GstMgllavaFilter * self, GstBuffer * video)
{
  GstClockTime frame = GST_CLOCK_TIME_NONE, d;
  guint64 text_duration, interval_time;
  guint interval;

  /* properties may change from the application thread at any time */
  GST_OBJECT_LOCK (self);
  text_duration = self->text_duration;
  interval_time = self->interval_time;
  interval = self->interval;
  GST_OBJECT_UNLOCK (self);
  if (text_duration > 0)
    return text_duration;
  if (video && GST_BUFFER_DURATION_IS_VALID (video))
    frame = GST_BUFFER_DURATION (video);
  else if (self->have_info && GST_VIDEO_INFO_FPS_N (&self->info) > 0)
    frame = gst_util_uint64_scale_int (GST_SECOND,
        GST_VIDEO_INFO_FPS_D (&self->info), GST_VIDEO_INFO_FPS_N (&self->info));
  if (!GST_CLOCK_TIME_IS_VALID (frame) || frame == 0)
    frame = GST_SECOND / 30;
  d = interval_time > 0 ? interval_time : frame * MAX (interval, 1);
  return MAX (d, frame);
}

/* A text buffer for the answer, starting at the video frame that carries it
 * (or, with none, at its source frame), kept monotonic, lasting
 * gst_mgllava_filter_text_duration(): textoverlay shows it for that long. */
static void
gst_mgllava_filter_push_text (GstMgllavaFilter * self, const Result * r,
    GstBuffer * video)
{
  GstBuffer *buf;
  gsize len = strlen (r->text);
  GstClockTime pts = video ? GST_BUFFER_PTS (video) : r->pts, dur;

  if (!GST_CLOCK_TIME_IS_VALID (pts))
    pts = r->pts;
  if (!gst_pad_is_linked (self->text_src))
    return;
  g_mutex_lock (&self->text_lock);
  gst_mgllava_filter_text_prepare (self);
  if (GST_CLOCK_TIME_IS_VALID (self->last_text_pts) &&
      (!GST_CLOCK_TIME_IS_VALID (pts) || pts < self->last_text_pts))
    pts = self->last_text_pts;
  dur = gst_mgllava_filter_text_duration (self, video);
  buf = gst_buffer_new_memdup (r->text, len);
  GST_BUFFER_PTS (buf) = pts;
  GST_BUFFER_DURATION (buf) = dur;
  self->last_text_pts = pts;
  self->text_end = GST_CLOCK_TIME_IS_VALID (pts) ? pts + dur :
      GST_CLOCK_TIME_NONE;
  gst_pad_push (self->text_src, buf);
  g_mutex_unlock (&self->text_lock);
}

/* A frame without an answer and no caption showing: a gap event, so
 * textoverlay and subtitle consumers keep running. */
static void
gst_mgllava_filter_push_gap (GstMgllavaFilter * self, GstBuffer * video)
{
  GstClockTime pts = GST_BUFFER_PTS (video), dur = GST_BUFFER_DURATION (video);

  if (!GST_CLOCK_TIME_IS_VALID (pts) || !gst_pad_is_linked (self->text_src))
    return;
  g_mutex_lock (&self->text_lock);
  gst_mgllava_filter_text_prepare (self);
  /* a frame that starts while a caption shows is covered by it (frame times
   * are rounded: the caption may end a nanosecond before the frame does) */
  if ((!GST_CLOCK_TIME_IS_VALID (self->text_end) || pts >= self->text_end) &&
      (!GST_CLOCK_TIME_IS_VALID (self->last_text_pts)
          || pts >= self->last_text_pts))
    gst_pad_push_event (self->text_src, gst_event_new_gap (pts, dur));
  g_mutex_unlock (&self->text_lock);
}

/* ---- events and queries ------------------------------------------------ */

static gboolean
gst_mgllava_filter_sink_event (GstBaseTransform * trans, GstEvent * event)
{
  GstMgllavaFilter *self = GST_MGLLAVA_FILTER (trans);

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_FLUSH_START:
      /* pending requests are dropped, the one in flight is aborted */
      g_mutex_lock (&self->lock);
      self->flushing = TRUE;
      self->abort_flag = 1;
      gst_mgllava_filter_clear_queues (self, TRUE);
      g_cond_broadcast (&self->cond);
      g_mutex_unlock (&self->lock);
      gst_pad_push_event (self->text_src, gst_event_ref (event));
      break;
    case GST_EVENT_FLUSH_STOP:
      g_mutex_lock (&self->lock);
      while (self->busy)
        g_cond_wait (&self->cond, &self->lock);
      gst_mgllava_filter_clear_queues (self, FALSE);
      self->flushing = FALSE;
      self->abort_flag = 0;
      g_mutex_unlock (&self->lock);
      g_mutex_lock (&self->text_lock);
      self->last_text_pts = GST_CLOCK_TIME_NONE;
      self->text_end = GST_CLOCK_TIME_NONE;
      self->text_segment_pending = TRUE;
      g_mutex_unlock (&self->text_lock);
      self->last_sample_rt = GST_CLOCK_TIME_NONE;
      GST_OBJECT_LOCK (self);
      self->qos_earliest = GST_CLOCK_TIME_NONE;
      GST_OBJECT_UNLOCK (self);
      gst_pad_push_event (self->text_src, gst_event_ref (event));
      break;
    case GST_EVENT_SEGMENT:
      g_mutex_lock (&self->text_lock);
      self->text_segment_pending = TRUE;
      g_mutex_unlock (&self->text_lock);
      break;
    case GST_EVENT_STREAM_START:
      self->frame_count = 0;
      self->last_sample_rt = GST_CLOCK_TIME_NONE;
      break;
    case GST_EVENT_EOS:{
      gboolean live;
      GList *l;

      /* not live: let every pending request finish so no answer is lost */
      GST_OBJECT_LOCK (self);
      live = self->live_known && self->live;
      GST_OBJECT_UNLOCK (self);
      g_mutex_lock (&self->lock);
      if (!live)
        while (!self->flushing && (self->busy
                || !g_queue_is_empty (&self->jobs)))
          g_cond_wait (&self->cond, &self->lock);
      /* answers that no frame will carry go out on the text pad */
      for (l = self->results.head; l; l = l->next) {
        Result *r = l->data;
        if (r->frame != G_MAXUINT64) {
          g_mutex_unlock (&self->lock);
          gst_mgllava_filter_push_text (self, r, NULL);
          g_mutex_lock (&self->lock);
        }
      }
      g_queue_clear_full (&self->results, (GDestroyNotify) result_free);
      g_mutex_unlock (&self->lock);
      if (self->text_started)
        gst_pad_push_event (self->text_src, gst_event_new_eos ());
      break;
    }
    default:
      break;
  }
  return GST_BASE_TRANSFORM_CLASS (parent_class)->sink_event (trans, event);
}

static gboolean
gst_mgllava_filter_src_event (GstBaseTransform * trans, GstEvent * event)
{
  GstMgllavaFilter *self = GST_MGLLAVA_FILTER (trans);

  if (GST_EVENT_TYPE (event) == GST_EVENT_QOS) {
    GstQOSType type;
    gdouble proportion;
    GstClockTimeDiff diff;
    GstClockTime ts;

    gst_event_parse_qos (event, &type, &proportion, &diff, &ts);
    GST_OBJECT_LOCK (self);
    /* as GstBaseTransform computes it: frames before this running time are late */
    if (diff > 0)
      self->qos_earliest = ts + 2 * diff;
    else
      self->qos_earliest = ts + diff;
    GST_OBJECT_UNLOCK (self);
  }
  return GST_BASE_TRANSFORM_CLASS (parent_class)->src_event (trans, event);
}

static gboolean
gst_mgllava_filter_query (GstBaseTransform * trans, GstPadDirection direction,
    GstQuery * query)
{
  GstMgllavaFilter *self = GST_MGLLAVA_FILTER (trans);
  gboolean ret;

  ret = GST_BASE_TRANSFORM_CLASS (parent_class)->query (trans, direction,
      query);
  if (ret && direction == GST_PAD_SRC
      && GST_QUERY_TYPE (query) == GST_QUERY_LATENCY) {
    gboolean live;
    GstClockTime min, max, add = 0;

    gst_query_parse_latency (query, &live, &min, &max);
    GST_OBJECT_LOCK (self);
    if (self->attach_mode == GST_MGLLAVA_ATTACH_EXACT)
      add = self->exact_latency;
    self->live_known = TRUE;
    self->live = live;
    GST_OBJECT_UNLOCK (self);
    min += add;
    if (GST_CLOCK_TIME_IS_VALID (max))
      max += add;
    if (GST_CLOCK_TIME_IS_VALID (max) && max < min)
      max = min;
    GST_DEBUG_OBJECT (self, "latency: live %d, min %" GST_TIME_FORMAT ", max %"
        GST_TIME_FORMAT " (+%" GST_TIME_FORMAT ")", live, GST_TIME_ARGS (min),
        GST_TIME_ARGS (max), GST_TIME_ARGS (add));
    gst_query_set_latency (query, live, min, max);
  }
  return ret;
}

static gboolean
gst_mgllava_filter_propose_allocation (GstBaseTransform * trans,
    GstQuery * decide_query, GstQuery * query)
{
  gst_query_add_allocation_meta (query, GST_MGLLAVA_RESULT_META_API_TYPE, NULL);
  return GST_BASE_TRANSFORM_CLASS (parent_class)->propose_allocation (trans,
      decide_query, query);
}

/* ---- streaming --------------------------------------------------------- */

/* Copy the frame as packed RGB; NULL when the frame cannot be mapped. */
static guint8 *
gst_mgllava_filter_to_rgb (GstMgllavaFilter * self, GstBuffer * buf)
{
  GstVideoFrame in;
  gint w = GST_VIDEO_INFO_WIDTH (&self->info);
  gint h = GST_VIDEO_INFO_HEIGHT (&self->info);
  guint8 *rgb;

  if (!gst_video_frame_map (&in, &self->info, buf, GST_MAP_READ))
    return NULL;
  rgb = g_malloc ((gsize) w * h * 3);
  if (!self->conv) {
    const guint8 *src = GST_VIDEO_FRAME_PLANE_DATA (&in, 0);
    gint stride = GST_VIDEO_FRAME_PLANE_STRIDE (&in, 0);
    gint y;

    for (y = 0; y < h; y++)
      memcpy (rgb + (gsize) y * w * 3, src + (gsize) y * stride, (gsize) w * 3);
  } else {
    GstVideoInfo oi;
    GstVideoFrame out;
    GstBuffer *ob;

    gst_video_info_set_format (&oi, GST_VIDEO_FORMAT_RGB, w, h);
    GST_VIDEO_INFO_FPS_N (&oi) = GST_VIDEO_INFO_FPS_N (&self->info);
    GST_VIDEO_INFO_FPS_D (&oi) = GST_VIDEO_INFO_FPS_D (&self->info);
    GST_VIDEO_INFO_INTERLACE_MODE (&oi) =
        GST_VIDEO_INFO_INTERLACE_MODE (&self->info);
    ob = gst_buffer_new_wrapped_full (0, rgb, (gsize) w * h * 3, 0,
        (gsize) w * h * 3, NULL, NULL);
    /* a tightly packed RGB frame: stride 3*w, no padding */
    oi.stride[0] = w * 3;
    oi.size = (gsize) w * h * 3;
    if (gst_video_frame_map (&out, &oi, ob, GST_MAP_WRITE)) {
      gst_video_converter_frame (self->conv, &in, &out);
      gst_video_frame_unmap (&out);
    }
    gst_buffer_unref (ob);
  }
  gst_video_frame_unmap (&in);
  return rgb;
}

static gboolean
gst_mgllava_filter_should_sample (GstMgllavaFilter * self, GstBuffer * buf,
    guint interval, guint64 interval_time, GstClockTime earliest)
{
  GstBaseTransform *trans = GST_BASE_TRANSFORM (self);
  GstClockTime rt = gst_segment_to_running_time (&trans->segment,
      GST_FORMAT_TIME, GST_BUFFER_PTS (buf));

  /* QoS: a frame that is already late is not worth a request */
  if (GST_CLOCK_TIME_IS_VALID (earliest) && GST_CLOCK_TIME_IS_VALID (rt)
      && rt < earliest) {
    g_mutex_lock (&self->lock);
    self->n_late++;
    g_mutex_unlock (&self->lock);
    return FALSE;
  }
  if (interval_time > 0 && GST_CLOCK_TIME_IS_VALID (rt)) {
    if (!GST_CLOCK_TIME_IS_VALID (self->last_sample_rt) ||
        rt >= self->last_sample_rt + interval_time) {
      self->last_sample_rt = rt;
      return TRUE;
    }
    return FALSE;
  }
  return interval > 0 && self->frame_count % interval == 0;
}

static void
gst_mgllava_filter_attach (GstMgllavaFilter * self, GstBuffer * buf,
    Result * r)
{
  GstMgllavaResultMeta *m;

  m = gst_buffer_add_mgllava_result_meta (buf, r->text, r->prompt, r->pts,
      r->frame);
  if (m) {
    m->n_tokens = r->n_tokens;
    m->n_objects = r->n_objects;
    m->latency_ms = r->latency_ms;
    m->preprocess_ms = r->tm.preprocess_ms;
    m->vision_ms = r->tm.vision_ms;
    m->prefill_ms = r->tm.prefill_ms;
    m->decode_ms = r->tm.decode_ms;
  }
}

static GstFlowReturn
gst_mgllava_filter_transform_ip (GstBaseTransform * trans, GstBuffer * buf)
{
  GstMgllavaFilter *self = GST_MGLLAVA_FILTER (trans);
  guint interval, max_pending, max_objects;
  guint64 interval_time, exact_latency;
  GstMgllavaAttachMode mode;
  GstMgllavaDropPolicy policy;
  GstClockTime earliest;
  gboolean use_objects, sampled;
  guint64 frame = self->frame_count;
  guint64 seq = 0;
  GQueue ready = G_QUEUE_INIT;
  Result *r;

  if (G_UNLIKELY (!self->have_info))
    return GST_FLOW_NOT_NEGOTIATED;

  GST_OBJECT_LOCK (self);
  interval = self->interval;
  interval_time = self->interval_time;
  mode = self->attach_mode;
  policy = self->drop_policy;
  max_pending = MAX (self->max_pending, 1);
  exact_latency = self->exact_latency;
  earliest = self->qos_earliest;
  use_objects = self->use_objects;
  max_objects = self->max_objects;
  GST_OBJECT_UNLOCK (self);

  sampled = gst_mgllava_filter_should_sample (self, buf, interval,
      interval_time, earliest);
  self->frame_count++;

  if (sampled) {
    Job *job = g_new0 (Job, 1);
    GstMglRoiFilter f = { 0 };

    job->rgb = gst_mgllava_filter_to_rgb (self, buf);
    job->width = GST_VIDEO_INFO_WIDTH (&self->info);
    job->height = GST_VIDEO_INFO_HEIGHT (&self->info);
    job->boxes = g_array_new (FALSE, FALSE, sizeof (MglBox));
    job->gen = mgl_gen_default_params ();
    GST_OBJECT_LOCK (self);
    job->prompt = g_strdup (self->prompt);
    job->gen.max_new_tokens = self->max_new_tokens;
    job->gen.temperature = self->temperature;
    job->gen.top_p = self->top_p;
    job->gen.top_k = self->top_k;
    job->gen.seed = self->seed + frame;
    job->gen.use_objects = self->use_objects;
    job->gen.use_high_res = self->use_high_res;
    job->gen.object_order = self->object_order;
    f.max_objects = max_objects;
    f.min_object_size = self->min_object_size;
    f.labels = self->object_labels && *self->object_labels ?
        g_strsplit (self->object_labels, ",", -1) : NULL;
    GST_OBJECT_UNLOCK (self);
    if (f.labels) {
      gchar **l;
      for (l = f.labels; *l; l++)
        g_strstrip (*l);
    }
    if (use_objects)
      gst_mgl_roi_collect (buf, job->width, job->height, &f, job->boxes);
    g_strfreev (f.labels);
    job->pts = GST_BUFFER_PTS (buf);
    job->frame = frame;
    job->t_sampled = g_get_monotonic_time ();

    if (!job->rgb) {
      GST_ELEMENT_WARNING (self, STREAM, FAILED,
          ("Could not map frame %" G_GUINT64_FORMAT ".", frame), (NULL));
      job_free (job);
    } else {
      g_mutex_lock (&self->lock);
      job->seq = seq = ++self->next_seq;
      self->n_sampled++;
      if (g_queue_get_length (&self->jobs) >= max_pending) {
        if (policy == GST_MGLLAVA_DROP_BLOCK || mode == GST_MGLLAVA_ATTACH_EXACT) {
          while (!self->flushing && self->running
              && g_queue_get_length (&self->jobs) >= max_pending)
            g_cond_wait (&self->cond, &self->lock);
        } else if (policy == GST_MGLLAVA_DROP_OLDEST) {
          job_free (g_queue_pop_head (&self->jobs));
          self->n_dropped++;
        }
      }
      if (self->flushing || !self->running ||
          (policy == GST_MGLLAVA_DROP_NEWEST && mode != GST_MGLLAVA_ATTACH_EXACT
              && g_queue_get_length (&self->jobs) >= max_pending)) {
        self->n_dropped++;
        job_free (job);
        seq = 0;
      } else {
        g_queue_push_tail (&self->jobs, job);
        g_cond_broadcast (&self->cond);
      }
      g_mutex_unlock (&self->lock);
    }
  }

  g_mutex_lock (&self->lock);
  if (mode == GST_MGLLAVA_ATTACH_EXACT && seq) {
    /* hold this frame until its answer, at most exact-latency */
    gint64 deadline = g_get_monotonic_time () + exact_latency / 1000;
    gboolean done = FALSE;

    while (!done && !self->flushing && self->running) {
      GList *l;
      for (l = self->results.head; l; l = l->next)
        if (((Result *) l->data)->seq == seq)
          done = TRUE;
      if (!done && !g_cond_wait_until (&self->cond, &self->lock, deadline)) {
        GST_WARNING_OBJECT (self, "frame %" G_GUINT64_FORMAT " waited the full "
            "exact-latency; its answer will attach to a later frame", frame);
        break;
      }
    }
  }
  /* everything finished so far attaches to this buffer, in order */
  while ((r = g_queue_pop_head (&self->results)))
    g_queue_push_tail (&ready, r);
  g_mutex_unlock (&self->lock);

  if (g_queue_is_empty (&ready)) {
    gst_mgllava_filter_push_gap (self, buf);
  } else {
    while ((r = g_queue_pop_head (&ready))) {
      if (r->frame != G_MAXUINT64) {
        gst_mgllava_filter_attach (self, buf, r);
        gst_mgllava_filter_push_text (self, r, buf);
      }
      result_free (r);
    }
  }
  return GST_FLOW_OK;
}

/* ---- properties -------------------------------------------------------- */

static void
gst_mgllava_filter_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstMgllavaFilter *self = GST_MGLLAVA_FILTER (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MODEL:
      if (GST_STATE (self) > GST_STATE_READY) {
        GST_WARNING_OBJECT (self, "model can only change in the NULL or READY state");
        break;
      }
      g_free (self->model_path);
      self->model_path = g_value_dup_string (value);
      break;
    case PROP_PROMPT:
      g_free (self->prompt);
      self->prompt = g_value_dup_string (value);
      if (!self->prompt)
        self->prompt = g_strdup (DEFAULT_PROMPT);
      break;
    case PROP_MAX_NEW_TOKENS:
      self->max_new_tokens = g_value_get_uint (value);
      break;
    case PROP_TEMPERATURE:
      self->temperature = g_value_get_float (value);
      break;
    case PROP_TOP_P:
      self->top_p = g_value_get_float (value);
      break;
    case PROP_TOP_K:
      self->top_k = g_value_get_uint (value);
      break;
    case PROP_SEED:
      self->seed = g_value_get_uint64 (value);
      break;
    case PROP_INTERVAL:
      self->interval = g_value_get_uint (value);
      break;
    case PROP_INTERVAL_TIME:
      self->interval_time = g_value_get_uint64 (value);
      break;
    case PROP_DEVICE:
      self->device = g_value_get_enum (value);
      break;
    case PROP_GPU_ID:
      self->gpu_id = g_value_get_int (value);
      break;
    case PROP_ATTACH_MODE:
      self->attach_mode = g_value_get_enum (value);
      break;
    case PROP_MAX_PENDING:
      self->max_pending = g_value_get_uint (value);
      break;
    case PROP_DROP_POLICY:
      self->drop_policy = g_value_get_enum (value);
      break;
    case PROP_USE_OBJECTS:
      self->use_objects = g_value_get_boolean (value);
      break;
    case PROP_MAX_OBJECTS:
      self->max_objects = g_value_get_uint (value);
      break;
    case PROP_OBJECT_LABELS:
      g_free (self->object_labels);
      self->object_labels = g_value_dup_string (value);
      break;
    case PROP_MIN_OBJECT_SIZE:
      self->min_object_size = g_value_get_double (value);
      break;
    case PROP_OBJECT_ORDER:
      self->object_order = g_value_get_enum (value);
      break;
    case PROP_USE_HIGH_RES:
      self->use_high_res = g_value_get_boolean (value);
      break;
    case PROP_EXACT_LATENCY:
      self->exact_latency = g_value_get_uint64 (value);
      break;
    case PROP_TEXT_DURATION:
      self->text_duration = g_value_get_uint64 (value);
      break;
    case PROP_THREADS:
      self->threads = g_value_get_int (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_mgllava_filter_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstMgllavaFilter *self = GST_MGLLAVA_FILTER (object);

  if (prop_id == PROP_STATS) {
    GstStructure *s;
    g_mutex_lock (&self->lock);
    s = gst_structure_new ("mgllava-stats",
        "sampled", G_TYPE_UINT64, self->n_sampled,
        "results", G_TYPE_UINT64, self->n_results,
        "dropped", G_TYPE_UINT64, self->n_dropped,
        "failed", G_TYPE_UINT64, self->n_failed,
        "late", G_TYPE_UINT64, self->n_late,
        "pending", G_TYPE_UINT, g_queue_get_length (&self->jobs) + (self->busy ?
            1 : 0), NULL);
    g_mutex_unlock (&self->lock);
    g_value_take_boxed (value, s);
    return;
  }
  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MODEL:
      g_value_set_string (value, self->model_path);
      break;
    case PROP_PROMPT:
      g_value_set_string (value, self->prompt);
      break;
    case PROP_MAX_NEW_TOKENS:
      g_value_set_uint (value, self->max_new_tokens);
      break;
    case PROP_TEMPERATURE:
      g_value_set_float (value, self->temperature);
      break;
    case PROP_TOP_P:
      g_value_set_float (value, self->top_p);
      break;
    case PROP_TOP_K:
      g_value_set_uint (value, self->top_k);
      break;
    case PROP_SEED:
      g_value_set_uint64 (value, self->seed);
      break;
    case PROP_INTERVAL:
      g_value_set_uint (value, self->interval);
      break;
    case PROP_INTERVAL_TIME:
      g_value_set_uint64 (value, self->interval_time);
      break;
    case PROP_DEVICE:
      g_value_set_enum (value, self->device);
      break;
    case PROP_GPU_ID:
      g_value_set_int (value, self->gpu_id);
      break;
    case PROP_ATTACH_MODE:
      g_value_set_enum (value, self->attach_mode);
      break;
    case PROP_MAX_PENDING:
      g_value_set_uint (value, self->max_pending);
      break;
    case PROP_DROP_POLICY:
      g_value_set_enum (value, self->drop_policy);
      break;
    case PROP_USE_OBJECTS:
      g_value_set_boolean (value, self->use_objects);
      break;
    case PROP_MAX_OBJECTS:
      g_value_set_uint (value, self->max_objects);
      break;
    case PROP_OBJECT_LABELS:
      g_value_set_string (value, self->object_labels);
      break;
    case PROP_MIN_OBJECT_SIZE:
      g_value_set_double (value, self->min_object_size);
      break;
    case PROP_OBJECT_ORDER:
      g_value_set_enum (value, self->object_order);
      break;
    case PROP_USE_HIGH_RES:
      g_value_set_boolean (value, self->use_high_res);
      break;
    case PROP_EXACT_LATENCY:
      g_value_set_uint64 (value, self->exact_latency);
      break;
    case PROP_TEXT_DURATION:
      g_value_set_uint64 (value, self->text_duration);
      break;
    case PROP_THREADS:
      g_value_set_int (value, self->threads);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_mgllava_filter_finalize (GObject * object)
{
  GstMgllavaFilter *self = GST_MGLLAVA_FILTER (object);

  g_free (self->model_path);
  g_free (self->prompt);
  g_free (self->object_labels);
  g_mutex_clear (&self->lock);
  g_mutex_clear (&self->text_lock);
  g_cond_clear (&self->cond);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_mgllava_filter_init (GstMgllavaFilter * self)
{
  GstBaseTransform *trans = GST_BASE_TRANSFORM (self);

  self->text_src = gst_pad_new_from_static_template (&text_src_template,
      "text_src");
  gst_pad_use_fixed_caps (self->text_src);
  gst_element_add_pad (GST_ELEMENT (self), self->text_src);

  self->prompt = g_strdup (DEFAULT_PROMPT);
  self->max_new_tokens = DEFAULT_MAX_NEW_TOKENS;
  self->temperature = DEFAULT_TEMPERATURE;
  self->top_p = DEFAULT_TOP_P;
  self->top_k = DEFAULT_TOP_K;
  self->seed = DEFAULT_SEED;
  self->interval = DEFAULT_INTERVAL;
  self->interval_time = DEFAULT_INTERVAL_TIME;
  self->device = DEFAULT_DEVICE;
  self->gpu_id = DEFAULT_GPU_ID;
  self->attach_mode = DEFAULT_ATTACH_MODE;
  self->max_pending = DEFAULT_MAX_PENDING;
  self->drop_policy = DEFAULT_DROP_POLICY;
  self->use_objects = DEFAULT_USE_OBJECTS;
  self->max_objects = DEFAULT_MAX_OBJECTS;
  self->min_object_size = DEFAULT_MIN_OBJECT_SIZE;
  self->use_high_res = DEFAULT_USE_HIGH_RES;
  self->object_order = DEFAULT_OBJECT_ORDER;
  self->exact_latency = DEFAULT_EXACT_LATENCY;
  self->text_duration = DEFAULT_TEXT_DURATION;
  self->threads = DEFAULT_THREADS;
  self->qos_earliest = GST_CLOCK_TIME_NONE;
  g_mutex_init (&self->lock);
  g_mutex_init (&self->text_lock);
  g_cond_init (&self->cond);
  g_queue_init (&self->jobs);
  g_queue_init (&self->results);

  /* metadata only: in place, never passthrough (meta is added) */
  gst_base_transform_set_in_place (trans, TRUE);
  gst_base_transform_set_passthrough (trans, FALSE);
  /* QoS is handled here: late frames are not sampled, but never dropped */
  gst_base_transform_set_qos_enabled (trans, FALSE);
}

static void
gst_mgllava_filter_class_init (GstMgllavaFilterClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);
  const GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS;
  const GParamFlags mut = rw | GST_PARAM_MUTABLE_PLAYING;

  GST_DEBUG_CATEGORY_INIT (gst_mgllava_filter_debug, "mgllavafilter", 0,
      "MG-LLaVA filter");

  gobject_class->set_property = gst_mgllava_filter_set_property;
  gobject_class->get_property = gst_mgllava_filter_get_property;
  gobject_class->finalize = gst_mgllava_filter_finalize;

  g_object_class_install_property (gobject_class, PROP_MODEL,
      g_param_spec_string ("model", "Model",
          "MG-LLaVA model folder (holding mgllava.json) or manifest file; read "
          "when the element starts", NULL, rw | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_PROMPT,
      g_param_spec_string ("prompt", "Prompt",
          "Question asked about each sampled frame (the template and image "
          "slot are added)", DEFAULT_PROMPT, mut));
  g_object_class_install_property (gobject_class, PROP_MAX_NEW_TOKENS,
      g_param_spec_uint ("max-new-tokens", "Max new tokens",
          "Longest answer in tokens (0 = the model's default)", 0, 100000,
          DEFAULT_MAX_NEW_TOKENS, mut));
  g_object_class_install_property (gobject_class, PROP_TEMPERATURE,
      g_param_spec_float ("temperature", "Temperature",
          "Sampling temperature (0 = greedy, as MG-LLaVA's evaluation)", 0.0f,
          100.0f, DEFAULT_TEMPERATURE, mut));
  g_object_class_install_property (gobject_class, PROP_TOP_P,
      g_param_spec_float ("top-p", "Top-p", "Nucleus sampling mass (1 = off)",
          0.000001f, 1.0f, DEFAULT_TOP_P, mut));
  g_object_class_install_property (gobject_class, PROP_TOP_K,
      g_param_spec_uint ("top-k", "Top-k", "Top-k sampling (0 = off)", 0,
          G_MAXINT, DEFAULT_TOP_K, mut));
  g_object_class_install_property (gobject_class, PROP_SEED,
      g_param_spec_uint64 ("seed", "Seed",
          "Sampling seed (the frame number is added per request)", 0,
          G_MAXUINT64, DEFAULT_SEED, mut));
  g_object_class_install_property (gobject_class, PROP_INTERVAL,
      g_param_spec_uint ("interval", "Interval",
          "Sample every N-th frame (0 = never; ignored when interval-time is set)",
          0, G_MAXINT, DEFAULT_INTERVAL, mut));
  g_object_class_install_property (gobject_class, PROP_INTERVAL_TIME,
      g_param_spec_uint64 ("interval-time", "Interval time",
          "Sample one frame per this many nanoseconds of running time (0 = use "
          "interval)", 0, G_MAXUINT64, DEFAULT_INTERVAL_TIME, mut));
  g_object_class_install_property (gobject_class, PROP_DEVICE,
      g_param_spec_enum ("device", "Device", "Where the model runs",
          GST_TYPE_MGLLAVA_DEVICE, DEFAULT_DEVICE,
          rw | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_GPU_ID,
      g_param_spec_int ("gpu-id", "GPU id", "CUDA device ordinal", 0, 64,
          DEFAULT_GPU_ID, rw | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_ATTACH_MODE,
      g_param_spec_enum ("attach-mode", "Attach mode",
          "Where answers are attached", GST_TYPE_MGLLAVA_ATTACH_MODE,
          DEFAULT_ATTACH_MODE, rw | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_MAX_PENDING,
      g_param_spec_uint ("max-pending", "Max pending",
          "Sampled frames that may wait for the model", 1, 1024,
          DEFAULT_MAX_PENDING, mut));
  g_object_class_install_property (gobject_class, PROP_DROP_POLICY,
      g_param_spec_enum ("drop-policy", "Drop policy",
          "What happens to a sampled frame when max-pending are waiting "
          "(latest mode)", GST_TYPE_MGLLAVA_DROP_POLICY, DEFAULT_DROP_POLICY,
          mut));
  g_object_class_install_property (gobject_class, PROP_USE_OBJECTS,
      g_param_spec_boolean ("use-objects", "Use objects",
          "Give the model object tokens from upstream region-of-interest metas",
          DEFAULT_USE_OBJECTS, mut));
  g_object_class_install_property (gobject_class, PROP_MAX_OBJECTS,
      g_param_spec_uint ("max-objects", "Max objects",
          "Keep at most this many (most confident) detections (0 = all)", 0,
          100000, DEFAULT_MAX_OBJECTS, mut));
  g_object_class_install_property (gobject_class, PROP_OBJECT_LABELS,
      g_param_spec_string ("object-labels", "Object labels",
          "Comma-separated detection labels to use (empty = all)", NULL, mut));
  g_object_class_install_property (gobject_class, PROP_MIN_OBJECT_SIZE,
      g_param_spec_double ("min-object-size", "Min object size",
          "Ignore detections narrower or shorter than this many pixels", 0.0,
          100000.0, DEFAULT_MIN_OBJECT_SIZE, mut));
  g_object_class_install_property (gobject_class, PROP_USE_HIGH_RES,
      g_param_spec_boolean ("use-high-res", "Use high resolution",
          "Run the 768 px ConvNeXt branch (false: CLIP features only, no "
          "objects; an ablation)", DEFAULT_USE_HIGH_RES, mut));
  g_object_class_install_property (gobject_class, PROP_OBJECT_ORDER,
      g_param_spec_enum ("object-order", "Object order",
          "Order of the object tokens (the model's: what it was trained on)",
          GST_TYPE_MGLLAVA_OBJECT_ORDER, DEFAULT_OBJECT_ORDER, mut));
  g_object_class_install_property (gobject_class, PROP_EXACT_LATENCY,
      g_param_spec_uint64 ("exact-latency", "Exact latency",
          "attach-mode=exact: longest a sampled frame is held for its answer "
          "(ns); reported in the LATENCY query", 0, G_MAXUINT64,
          DEFAULT_EXACT_LATENCY, rw | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_TEXT_DURATION,
      g_param_spec_uint64 ("text-duration", "Text duration",
          "How long each answer on text_src lasts (ns; 0 = the sampling "
          "period: interval-time, or interval frames)", 0, G_MAXUINT64,
          DEFAULT_TEXT_DURATION, mut));
  g_object_class_install_property (gobject_class, PROP_THREADS,
      g_param_spec_int ("threads", "Threads",
          "CPU threads for the CPU backend (0 = all cores)", 0, 1024,
          DEFAULT_THREADS, rw | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_STATS,
      g_param_spec_boxed ("stats", "Statistics",
          "sampled, results, dropped, failed, late, pending",
          GST_TYPE_STRUCTURE, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_add_static_pad_template (element_class,
      &text_src_template);
  gst_element_class_set_static_metadata (element_class, "MG-LLaVA filter",
      "Filter/Analyzer/Video",
      "Answers a question about sampled frames with MG-LLaVA and attaches "
      "the answer as metadata", "mgllava developers");

  trans_class->start = GST_DEBUG_FUNCPTR (gst_mgllava_filter_start);
  trans_class->stop = GST_DEBUG_FUNCPTR (gst_mgllava_filter_stop);
  trans_class->set_caps = GST_DEBUG_FUNCPTR (gst_mgllava_filter_set_caps);
  trans_class->sink_event = GST_DEBUG_FUNCPTR (gst_mgllava_filter_sink_event);
  trans_class->src_event = GST_DEBUG_FUNCPTR (gst_mgllava_filter_src_event);
  trans_class->query = GST_DEBUG_FUNCPTR (gst_mgllava_filter_query);
  trans_class->propose_allocation =
      GST_DEBUG_FUNCPTR (gst_mgllava_filter_propose_allocation);
  trans_class->transform_ip =
      GST_DEBUG_FUNCPTR (gst_mgllava_filter_transform_ip);

  gst_type_mark_as_plugin_api (GST_TYPE_MGLLAVA_ATTACH_MODE, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_MGLLAVA_DROP_POLICY, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_MGLLAVA_OBJECT_ORDER, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_MGLLAVA_DEVICE, 0);
}
