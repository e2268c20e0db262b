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
 * The model loads on a thread started in start() (READY to PAUSED; progress
 * on the bus, `model-loaded` when done; a non-live stream waits for it, a
 * live one in latest mode passes unanswered meanwhile), with its scheduler (an
 * MglServer, started by the element that loads the model, with its
 * `max-batch`): every mgllavafilter in the process that names the same model
 * submits to it, and it batches their requests (continuous batching), so N
 * streams cost far less than N times one. Each element keeps its own prompt,
 * sampling settings, interval, queue and stats; its worker thread submits
 * one request at a time. In `attach-mode=latest` the streaming thread
 * never waits: a sampled frame is copied (as RGB) into a request and the
 * frame goes on at once; each answer is attached to the next outgoing buffer
 * and carries the PTS and number of the frame it is about. In
 * `attach-mode=exact` the sampled frame is held until its answer (at most
 * `exact-latency`), and the element adds that bound to the LATENCY query.
 * `attach-mode=auto` (the default) asks upstream for its latency at the
 * first buffer: when upstream is live it runs as `latest`; otherwise (files)
 * as `exact` with no deadline and no QoS skipping, so every sampled frame
 * carries its own answer.
 *
 * At EOS every pending answer is delivered before the EOS goes on; answers
 * that no video buffer can carry any more go downstream in one custom event
 * (#GST_MGLLAVA_LATE_RESULTS_EVENT, which mgllavajson writes as a line with
 * `"pts": null`), on the bus and on `text_src`.
 *
 * Detections come from GstVideoRegionOfInterestMeta on the buffer (any
 * detector, tracker or mgllavaboxes/mgllavablobdetect upstream).
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 videotestsrc num-buffers=100 ! mgllavafilter model=models/mgllava-demo \
 *     prompt="Describe the image." interval=25 ! mgllavajson location=- ! fakesink
 * gst-launch-1.0 filesrc location=in.mp4 ! decodebin ! videoconvert ! \
 *     mgllavafilter name=f model=/models/mgllava-7b ! videoconvert ! autovideosink \
 *     f.text_src ! queue ! fakesink
 * ]|
 */
#include "gstmgllavafilter-private.h"
#include "gstmgllavaframe.h"
#include "gstmgllavameta.h"

GST_DEBUG_CATEGORY(gst_mgllava_filter_debug);

/* every one is converted to RGB as videoconvert would (gstmgllavaframe.h) */
#define VIDEO_FORMATS GST_MGLLAVA_FRAME_FORMATS

#define DEFAULT_PROMPT "Describe the image."
#define DEFAULT_MAX_NEW_TOKENS 0
#define DEFAULT_TEMPERATURE 0.0f
#define DEFAULT_TOP_P 1.0f
#define DEFAULT_TOP_K 0
#define DEFAULT_SEED 0
#define DEFAULT_INTERVAL 30
#define DEFAULT_INTERVAL_TIME 0
#define DEFAULT_DEVICE GST_MGLLAVA_DEVICE_AUTO
#define DEFAULT_PRECISION GST_MGLLAVA_PRECISION_DEFAULT
#define DEFAULT_GPU_ID 0
#define DEFAULT_ATTACH_MODE GST_MGLLAVA_ATTACH_AUTO
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
#define DEFAULT_MAX_BATCH 0

enum {
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
    PROP_PRECISION,
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
    PROP_MAX_BATCH,
    PROP_RESPONSE_SCHEMA,
    PROP_RESPONSE_GRAMMAR,
    PROP_MODEL_LOADED,
    PROP_STATS,
};

#define gst_mgllava_filter_parent_class parent_class
G_DEFINE_TYPE(GstMgllavaFilter, gst_mgllava_filter, GST_TYPE_BASE_TRANSFORM);
GST_ELEMENT_REGISTER_DEFINE(mgllavafilter, "mgllavafilter", GST_RANK_NONE, GST_TYPE_MGLLAVA_FILTER);

static GstStaticPadTemplate sink_template =
    GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS(GST_VIDEO_CAPS_MAKE(VIDEO_FORMATS)));
static GstStaticPadTemplate src_template =
    GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS(GST_VIDEO_CAPS_MAKE(VIDEO_FORMATS)));

/* ---- enums ------------------------------------------------------------- */

#define GST_TYPE_MGLLAVA_ATTACH_MODE (gst_mgllava_attach_mode_get_type())
static GType gst_mgllava_attach_mode_get_type(void) {
    static GType t = 0;
    static const GEnumValue values[] = {
        {GST_MGLLAVA_ATTACH_LATEST, "Frames pass at once; answers attach to a later frame", "latest"},
        {GST_MGLLAVA_ATTACH_EXACT, "Sampled frames wait for their own answer (bounded by exact-latency)", "exact"},
        {GST_MGLLAVA_ATTACH_AUTO,
         "exact (no deadline, no QoS skipping) when upstream is not live, "
         "latest when it is",
         "auto"},
        {0, NULL, NULL}};
    if (g_once_init_enter(&t)) g_once_init_leave(&t, g_enum_register_static("GstMgllavaAttachMode", values));
    return t;
}

#define GST_TYPE_MGLLAVA_DROP_POLICY (gst_mgllava_drop_policy_get_type())
static GType gst_mgllava_drop_policy_get_type(void) {
    static GType t = 0;
    static const GEnumValue values[] = {
        {GST_MGLLAVA_DROP_OLDEST, "Drop the oldest waiting request", "oldest"},
        {GST_MGLLAVA_DROP_NEWEST, "Drop the new request", "newest"},
        {GST_MGLLAVA_DROP_BLOCK, "Block the streaming thread until a request slot frees", "block"},
        {0, NULL, NULL}};
    if (g_once_init_enter(&t)) g_once_init_leave(&t, g_enum_register_static("GstMgllavaDropPolicy", values));
    return t;
}

#define GST_TYPE_MGLLAVA_OBJECT_ORDER (gst_mgllava_object_order_get_type())
static GType gst_mgllava_object_order_get_type(void) {
    static GType t = 0;
    static const GEnumValue values[] = {
        {GST_MGLLAVA_OBJECT_ORDER_MODEL, "The model's own (its manifest's object_order; default score)", "model"},
        {GST_MGLLAVA_OBJECT_ORDER_SCORE, "Most confident first, as the official code orders them", "score"},
        {GST_MGLLAVA_OBJECT_ORDER_READING,
         "Reading order: top, middle, bottom third of the frame, each left to "
         "right",
         "reading"},
        {0, NULL, NULL}};
    if (g_once_init_enter(&t)) g_once_init_leave(&t, g_enum_register_static("GstMgllavaObjectOrder", values));
    return t;
}

#define GST_TYPE_MGLLAVA_PRECISION (gst_mgllava_precision_get_type())
static GType gst_mgllava_precision_get_type(void) {
    static GType t = 0;
    static const GEnumValue values[] = {
        {GST_MGLLAVA_PRECISION_DEFAULT, "The device's default: f16 on a GPU, f32 on the CPU", "default"},
        {GST_MGLLAVA_PRECISION_F32, "f32", "f32"},
        {GST_MGLLAVA_PRECISION_F16, "f16 (GPU weights and KV cache; the CPU computes in f32)", "f16"},
        {GST_MGLLAVA_PRECISION_BF16, "bf16 (GPU weights and KV cache; CPU: bf16 products and KV cache)", "bf16"},
        {0, NULL, NULL}};
    if (g_once_init_enter(&t)) g_once_init_leave(&t, g_enum_register_static("GstMgllavaPrecision", values));
    return t;
}

#define GST_TYPE_MGLLAVA_DEVICE (gst_mgllava_device_get_type())
static GType gst_mgllava_device_get_type(void) {
    static GType t = 0;
    static const GEnumValue values[] = {{GST_MGLLAVA_DEVICE_AUTO, "GPU when usable, else CPU", "auto"},
                                        {GST_MGLLAVA_DEVICE_CPU, "CPU", "cpu"},
                                        {GST_MGLLAVA_DEVICE_CUDA, "CUDA GPU (error when unusable)", "cuda"},
                                        {0, NULL, NULL}};
    if (g_once_init_enter(&t)) g_once_init_leave(&t, g_enum_register_static("GstMgllavaDevice", values));
    return t;
}

/* ---- lifecycle --------------------------------------------------------- */

static gboolean gst_mgllava_filter_start(GstBaseTransform* trans) {
    GstMgllavaFilter* self = GST_MGLLAVA_FILTER(trans);

    /* the model loads on its own thread: frames of a live stream pass
     * unanswered meanwhile, other streams wait for it (load_wait) */
    gst_mgllava_filter_load_start(self);
    self->frame_count = 0;
    self->last_sample_rt = GST_CLOCK_TIME_NONE;
    gst_mgllava_filter_text_reset(self);
    self->auto_mode = -1;
    gst_mgllava_filter_worker_start(self);
    return TRUE;
}

static gboolean gst_mgllava_filter_stop(GstBaseTransform* trans) {
    GstMgllavaFilter* self = GST_MGLLAVA_FILTER(trans);
    gboolean was_loaded;

    gst_mgllava_filter_load_join(self);
    gst_mgllava_filter_worker_stop(self);
    gst_mgllava_filter_constraint_close(self);
    g_mutex_lock(&self->lock);
    was_loaded = self->load_state == GST_MGLLAVA_MODEL_READY;
    g_atomic_int_set(&self->load_state, -1); /* no model */
    g_mutex_unlock(&self->lock);
    if (was_loaded) g_object_notify(G_OBJECT(self), "model-loaded");
    gst_mgllava_filter_frame_clear(self);
    gst_mgllava_filter_clip_clear(self);
    return TRUE;
}

/* Going to READY: a streaming thread waiting for the model must return
 * before the pads can deactivate (stop() then joins the load). */
static GstStateChangeReturn gst_mgllava_filter_change_state(GstElement* element, GstStateChange transition) {
    if (transition == GST_STATE_CHANGE_PAUSED_TO_READY) gst_mgllava_filter_load_cancel(GST_MGLLAVA_FILTER(element));
    return GST_ELEMENT_CLASS(parent_class)->change_state(element, transition);
}

static gboolean gst_mgllava_filter_set_caps(GstBaseTransform* trans, GstCaps* incaps, GstCaps* outcaps) {
    GstMgllavaFilter* self = GST_MGLLAVA_FILTER(trans);
    GstVideoInfo info;

    if (!gst_video_info_from_caps(&info, incaps)) {
        GST_ERROR_OBJECT(self, "invalid caps %" GST_PTR_FORMAT, incaps);
        return FALSE;
    }
    if (!gst_mgllava_filter_frame_set_info(self, &info)) return FALSE;
    GST_DEBUG_OBJECT(self, "caps %" GST_PTR_FORMAT, incaps);
    return TRUE;
}

/* ---- events and queries ------------------------------------------------ */

static gboolean gst_mgllava_filter_sink_event(GstBaseTransform* trans, GstEvent* event) {
    gst_mgllava_filter_handle_sink_event(GST_MGLLAVA_FILTER(trans), event);
    return GST_BASE_TRANSFORM_CLASS(parent_class)->sink_event(trans, event);
}

static gboolean gst_mgllava_filter_src_event(GstBaseTransform* trans, GstEvent* event) {
    GstMgllavaFilter* self = GST_MGLLAVA_FILTER(trans);

    if (GST_EVENT_TYPE(event) == GST_EVENT_QOS) {
        gst_mgllava_filter_qos_update(self, event);
        /* attach-mode=auto on a non-live stream holds frames on purpose: a
         * decoder upstream must not skip frames for the lateness it causes */
        if (gst_mgllava_filter_auto_holds_frames(self)) {
            gst_event_unref(event);
            return TRUE;
        }
    }
    return GST_BASE_TRANSFORM_CLASS(parent_class)->src_event(trans, event);
}

static gboolean gst_mgllava_filter_query(GstBaseTransform* trans, GstPadDirection direction, GstQuery* query) {
    gboolean ret;

    ret = GST_BASE_TRANSFORM_CLASS(parent_class)->query(trans, direction, query);
    if (ret && direction == GST_PAD_SRC && GST_QUERY_TYPE(query) == GST_QUERY_LATENCY)
        gst_mgllava_filter_add_latency(GST_MGLLAVA_FILTER(trans), query);
    return ret;
}

static gboolean gst_mgllava_filter_propose_allocation(GstBaseTransform* trans, GstQuery* decide_query,
                                                      GstQuery* query) {
    gst_query_add_allocation_meta(query, GST_MGLLAVA_RESULT_META_API_TYPE, NULL);
    return GST_BASE_TRANSFORM_CLASS(parent_class)->propose_allocation(trans, decide_query, query);
}

/* ---- properties -------------------------------------------------------- */

static void gst_mgllava_filter_set_property(GObject* object, guint prop_id, const GValue* value, GParamSpec* pspec) {
    GstMgllavaFilter* self = GST_MGLLAVA_FILTER(object);

    GST_OBJECT_LOCK(self);
    switch (prop_id) {
    case PROP_MODEL:
        if (GST_STATE(self) > GST_STATE_READY) {
            GST_WARNING_OBJECT(self, "model can only change in the NULL or READY state");
            break;
        }
        g_free(self->model_path);
        self->model_path = g_value_dup_string(value);
        break;
    case PROP_PROMPT:
        g_free(self->prompt);
        self->prompt = g_value_dup_string(value);
        if (!self->prompt) self->prompt = g_strdup(DEFAULT_PROMPT);
        break;
    case PROP_MAX_NEW_TOKENS: self->max_new_tokens = g_value_get_uint(value); break;
    case PROP_TEMPERATURE: self->temperature = g_value_get_float(value); break;
    case PROP_TOP_P: self->top_p = g_value_get_float(value); break;
    case PROP_TOP_K: self->top_k = g_value_get_uint(value); break;
    case PROP_SEED: self->seed = g_value_get_uint64(value); break;
    case PROP_INTERVAL: self->interval = g_value_get_uint(value); break;
    case PROP_INTERVAL_TIME: self->interval_time = g_value_get_uint64(value); break;
    case PROP_DEVICE: self->device = g_value_get_enum(value); break;
    case PROP_PRECISION: self->precision = g_value_get_enum(value); break;
    case PROP_GPU_ID: self->gpu_id = g_value_get_int(value); break;
    case PROP_ATTACH_MODE: self->attach_mode = g_value_get_enum(value); break;
    case PROP_MAX_PENDING: self->max_pending = g_value_get_uint(value); break;
    case PROP_DROP_POLICY: self->drop_policy = g_value_get_enum(value); break;
    case PROP_USE_OBJECTS: self->use_objects = g_value_get_boolean(value); break;
    case PROP_MAX_OBJECTS: self->max_objects = g_value_get_uint(value); break;
    case PROP_OBJECT_LABELS:
        g_free(self->object_labels);
        self->object_labels = g_value_dup_string(value);
        break;
    case PROP_MIN_OBJECT_SIZE: self->min_object_size = g_value_get_double(value); break;
    case PROP_OBJECT_ORDER: self->object_order = g_value_get_enum(value); break;
    case PROP_USE_HIGH_RES: self->use_high_res = g_value_get_boolean(value); break;
    case PROP_EXACT_LATENCY: self->exact_latency = g_value_get_uint64(value); break;
    case PROP_TEXT_DURATION: self->text_duration = g_value_get_uint64(value); break;
    case PROP_THREADS: self->threads = g_value_get_int(value); break;
    case PROP_MAX_BATCH: self->max_batch = g_value_get_uint(value); break;
    case PROP_RESPONSE_SCHEMA:
        g_free(self->response_schema);
        self->response_schema = g_value_dup_string(value);
        break;
    case PROP_RESPONSE_GRAMMAR:
        g_free(self->response_grammar);
        self->response_grammar = g_value_dup_string(value);
        break;
    default:
        if (!gst_mgllava_filter_trigger_set_property(self, prop_id, value) &&
            !gst_mgllava_filter_clip_set_property(self, prop_id, value))
            G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
        break;
    }
    GST_OBJECT_UNLOCK(self);
    /* checked now (a warning in the log), compiled against the tokenizer at start */
    if (prop_id == PROP_RESPONSE_SCHEMA || prop_id == PROP_RESPONSE_GRAMMAR)
        gst_mgllava_constraint_check_property(self, g_value_get_string(value), prop_id == PROP_RESPONSE_SCHEMA);
}

static void gst_mgllava_filter_get_property(GObject* object, guint prop_id, GValue* value, GParamSpec* pspec) {
    GstMgllavaFilter* self = GST_MGLLAVA_FILTER(object);

    if (prop_id == PROP_STATS) {
        g_value_take_boxed(value, gst_mgllava_filter_worker_stats(self));
        return;
    }
    if (prop_id == PROP_MODEL_LOADED) {
        g_value_set_boolean(value, g_atomic_int_get(&self->load_state) == GST_MGLLAVA_MODEL_READY);
        return;
    }
    GST_OBJECT_LOCK(self);
    switch (prop_id) {
    case PROP_MODEL: g_value_set_string(value, self->model_path); break;
    case PROP_PROMPT: g_value_set_string(value, self->prompt); break;
    case PROP_MAX_NEW_TOKENS: g_value_set_uint(value, self->max_new_tokens); break;
    case PROP_TEMPERATURE: g_value_set_float(value, self->temperature); break;
    case PROP_TOP_P: g_value_set_float(value, self->top_p); break;
    case PROP_TOP_K: g_value_set_uint(value, self->top_k); break;
    case PROP_SEED: g_value_set_uint64(value, self->seed); break;
    case PROP_INTERVAL: g_value_set_uint(value, self->interval); break;
    case PROP_INTERVAL_TIME: g_value_set_uint64(value, self->interval_time); break;
    case PROP_DEVICE: g_value_set_enum(value, self->device); break;
    case PROP_PRECISION: g_value_set_enum(value, self->precision); break;
    case PROP_GPU_ID: g_value_set_int(value, self->gpu_id); break;
    case PROP_ATTACH_MODE: g_value_set_enum(value, self->attach_mode); break;
    case PROP_MAX_PENDING: g_value_set_uint(value, self->max_pending); break;
    case PROP_DROP_POLICY: g_value_set_enum(value, self->drop_policy); break;
    case PROP_USE_OBJECTS: g_value_set_boolean(value, self->use_objects); break;
    case PROP_MAX_OBJECTS: g_value_set_uint(value, self->max_objects); break;
    case PROP_OBJECT_LABELS: g_value_set_string(value, self->object_labels); break;
    case PROP_MIN_OBJECT_SIZE: g_value_set_double(value, self->min_object_size); break;
    case PROP_OBJECT_ORDER: g_value_set_enum(value, self->object_order); break;
    case PROP_USE_HIGH_RES: g_value_set_boolean(value, self->use_high_res); break;
    case PROP_EXACT_LATENCY: g_value_set_uint64(value, self->exact_latency); break;
    case PROP_TEXT_DURATION: g_value_set_uint64(value, self->text_duration); break;
    case PROP_THREADS: g_value_set_int(value, self->threads); break;
    case PROP_MAX_BATCH: g_value_set_uint(value, self->max_batch); break;
    case PROP_RESPONSE_SCHEMA: g_value_set_string(value, self->response_schema); break;
    case PROP_RESPONSE_GRAMMAR: g_value_set_string(value, self->response_grammar); break;
    default:
        if (!gst_mgllava_filter_trigger_get_property(self, prop_id, value) &&
            !gst_mgllava_filter_clip_get_property(self, prop_id, value))
            G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
        break;
    }
    GST_OBJECT_UNLOCK(self);
}

static void gst_mgllava_filter_finalize(GObject* object) {
    GstMgllavaFilter* self = GST_MGLLAVA_FILTER(object);

    g_free(self->model_path);
    g_free(self->prompt);
    g_free(self->object_labels);
    g_free(self->response_schema);
    g_free(self->response_grammar);
    gst_mgllava_trigger_settings_clear(&self->trig);
    gst_mgllava_trigger_state_clear(&self->trig_state);
    gst_mgllava_filter_clip_clear(self);
    g_mutex_clear(&self->lock);
    g_mutex_clear(&self->text_lock);
    g_cond_clear(&self->cond);
    G_OBJECT_CLASS(parent_class)->finalize(object);
}

static void gst_mgllava_filter_init(GstMgllavaFilter* self) {
    GstBaseTransform* trans = GST_BASE_TRANSFORM(self);

    gst_mgllava_filter_text_init(self);

    self->prompt = g_strdup(DEFAULT_PROMPT);
    self->max_new_tokens = DEFAULT_MAX_NEW_TOKENS;
    self->temperature = DEFAULT_TEMPERATURE;
    self->top_p = DEFAULT_TOP_P;
    self->top_k = DEFAULT_TOP_K;
    self->seed = DEFAULT_SEED;
    self->interval = DEFAULT_INTERVAL;
    self->interval_time = DEFAULT_INTERVAL_TIME;
    self->device = DEFAULT_DEVICE;
    self->precision = DEFAULT_PRECISION;
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
    self->max_batch = DEFAULT_MAX_BATCH;
    self->qos_earliest = GST_CLOCK_TIME_NONE;
    self->auto_mode = -1;
    self->load_state = -1;
    gst_mgllava_trigger_settings_init(&self->trig);
    gst_mgllava_trigger_state_init(&self->trig_state);
    gst_mgllava_clip_settings_init(&self->clip);
    g_mutex_init(&self->lock);
    g_mutex_init(&self->text_lock);
    g_cond_init(&self->cond);
    g_queue_init(&self->jobs);
    g_queue_init(&self->results);

    /* metadata only: in place, never passthrough (meta is added) */
    gst_base_transform_set_in_place(trans, TRUE);
    gst_base_transform_set_passthrough(trans, FALSE);
    /* QoS is handled here: late frames are not sampled, but never dropped */
    gst_base_transform_set_qos_enabled(trans, FALSE);
}

static void gst_mgllava_filter_class_init(GstMgllavaFilterClass* klass) {
    GObjectClass* gobject_class = G_OBJECT_CLASS(klass);
    GstElementClass* element_class = GST_ELEMENT_CLASS(klass);
    GstBaseTransformClass* trans_class = GST_BASE_TRANSFORM_CLASS(klass);
    const GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS;
    const GParamFlags mut = rw | GST_PARAM_MUTABLE_PLAYING;

    GST_DEBUG_CATEGORY_INIT(gst_mgllava_filter_debug, "mgllavafilter", 0, "MG-LLaVA filter");

    gobject_class->set_property = gst_mgllava_filter_set_property;
    gobject_class->get_property = gst_mgllava_filter_get_property;
    gobject_class->finalize = gst_mgllava_filter_finalize;

    g_object_class_install_property(
        gobject_class, PROP_MODEL,
        g_param_spec_string("model", "Model",
                            "MG-LLaVA model folder (holding mgllava.json) or manifest file; read "
                            "when the element starts",
                            NULL, rw | GST_PARAM_MUTABLE_READY));
    g_object_class_install_property(
        gobject_class, PROP_PROMPT,
        g_param_spec_string("prompt", "Prompt",
                            "Question asked about each sampled frame (the template and image "
                            "slot are added)",
                            DEFAULT_PROMPT, mut));
    g_object_class_install_property(gobject_class, PROP_MAX_NEW_TOKENS,
                                    g_param_spec_uint("max-new-tokens", "Max new tokens",
                                                      "Longest answer in tokens (0 = the model's default)", 0, 100000,
                                                      DEFAULT_MAX_NEW_TOKENS, mut));
    g_object_class_install_property(gobject_class, PROP_TEMPERATURE,
                                    g_param_spec_float("temperature", "Temperature",
                                                       "Sampling temperature (0 = greedy, as MG-LLaVA's evaluation)",
                                                       0.0f, 100.0f, DEFAULT_TEMPERATURE, mut));
    g_object_class_install_property(
        gobject_class, PROP_TOP_P,
        g_param_spec_float("top-p", "Top-p", "Nucleus sampling mass (1 = off)", 0.000001f, 1.0f, DEFAULT_TOP_P, mut));
    g_object_class_install_property(
        gobject_class, PROP_TOP_K,
        g_param_spec_uint("top-k", "Top-k", "Top-k sampling (0 = off)", 0, G_MAXINT, DEFAULT_TOP_K, mut));
    g_object_class_install_property(gobject_class, PROP_SEED,
                                    g_param_spec_uint64("seed", "Seed",
                                                        "Sampling seed (the frame number is added per request)", 0,
                                                        G_MAXUINT64, DEFAULT_SEED, mut));
    g_object_class_install_property(gobject_class, PROP_INTERVAL,
                                    g_param_spec_uint("interval", "Interval",
                                                      "Sample every N-th frame (0 or 1 = every frame; ignored when "
                                                      "interval-time is set)",
                                                      0, G_MAXINT, DEFAULT_INTERVAL, mut));
    g_object_class_install_property(
        gobject_class, PROP_INTERVAL_TIME,
        g_param_spec_uint64("interval-time", "Interval time",
                            "Sample one frame per this many nanoseconds of running time (0 = use "
                            "interval)",
                            0, G_MAXUINT64, DEFAULT_INTERVAL_TIME, mut));
    g_object_class_install_property(gobject_class, PROP_DEVICE,
                                    g_param_spec_enum("device", "Device", "Where the model runs",
                                                      GST_TYPE_MGLLAVA_DEVICE, DEFAULT_DEVICE,
                                                      rw | GST_PARAM_MUTABLE_READY));
    g_object_class_install_property(
        gobject_class, PROP_PRECISION,
        g_param_spec_enum("precision", "Precision",
                          "The model's arithmetic and KV cache: default (f16 on a GPU, f32 on the CPU), f32, f16 "
                          "or bf16 (on the CPU: bf16 matrix products where it has AVX512_BF16, and a bf16 KV cache)",
                          GST_TYPE_MGLLAVA_PRECISION, DEFAULT_PRECISION, rw | GST_PARAM_MUTABLE_READY));
    g_object_class_install_property(gobject_class, PROP_GPU_ID,
                                    g_param_spec_int("gpu-id", "GPU id", "CUDA device ordinal", 0, 64, DEFAULT_GPU_ID,
                                                     rw | GST_PARAM_MUTABLE_READY));
    g_object_class_install_property(
        gobject_class, PROP_ATTACH_MODE,
        g_param_spec_enum("attach-mode", "Attach mode",
                          "Where answers are attached: auto = exact on a non-live upstream "
                          "(files: every sampled frame waits for its answer, none is lost), "
                          "latest on a live one (decided at the first buffer)",
                          GST_TYPE_MGLLAVA_ATTACH_MODE, DEFAULT_ATTACH_MODE, rw | GST_PARAM_MUTABLE_READY));
    g_object_class_install_property(gobject_class, PROP_MAX_PENDING,
                                    g_param_spec_uint("max-pending", "Max pending",
                                                      "Sampled frames that may wait for the model", 1, 1024,
                                                      DEFAULT_MAX_PENDING, mut));
    g_object_class_install_property(gobject_class, PROP_DROP_POLICY,
                                    g_param_spec_enum("drop-policy", "Drop policy",
                                                      "What happens to a sampled frame when max-pending are waiting "
                                                      "(latest mode; exact always waits)",
                                                      GST_TYPE_MGLLAVA_DROP_POLICY, DEFAULT_DROP_POLICY, mut));
    g_object_class_install_property(
        gobject_class, PROP_USE_OBJECTS,
        g_param_spec_boolean("use-objects", "Use objects",
                             "Give the model object tokens from upstream region-of-interest metas", DEFAULT_USE_OBJECTS,
                             mut));
    g_object_class_install_property(gobject_class, PROP_MAX_OBJECTS,
                                    g_param_spec_uint("max-objects", "Max objects",
                                                      "Keep at most this many (most confident) detections (0 = all)", 0,
                                                      100000, DEFAULT_MAX_OBJECTS, mut));
    g_object_class_install_property(gobject_class, PROP_OBJECT_LABELS,
                                    g_param_spec_string("object-labels", "Object labels",
                                                        "Comma-separated detection labels to use (empty = all)", NULL,
                                                        mut));
    g_object_class_install_property(gobject_class, PROP_MIN_OBJECT_SIZE,
                                    g_param_spec_double("min-object-size", "Min object size",
                                                        "Ignore detections narrower or shorter than this many pixels",
                                                        0.0, 100000.0, DEFAULT_MIN_OBJECT_SIZE, mut));
    g_object_class_install_property(
        gobject_class, PROP_USE_HIGH_RES,
        g_param_spec_boolean("use-high-res", "Use high resolution",
                             "Run the 768 px ConvNeXt branch (false: CLIP features only, no "
                             "objects; an ablation)",
                             DEFAULT_USE_HIGH_RES, mut));
    g_object_class_install_property(
        gobject_class, PROP_OBJECT_ORDER,
        g_param_spec_enum("object-order", "Object order",
                          "Order of the object tokens (the model's: what it was trained on)",
                          GST_TYPE_MGLLAVA_OBJECT_ORDER, DEFAULT_OBJECT_ORDER, mut));
    g_object_class_install_property(
        gobject_class, PROP_EXACT_LATENCY,
        g_param_spec_uint64("exact-latency", "Exact latency",
                            "attach-mode=exact: longest a sampled frame is held for its answer "
                            "(ns); reported in the LATENCY query",
                            0, G_MAXUINT64, DEFAULT_EXACT_LATENCY, rw | GST_PARAM_MUTABLE_READY));
    g_object_class_install_property(gobject_class, PROP_TEXT_DURATION,
                                    g_param_spec_uint64("text-duration", "Text duration",
                                                        "How long each answer on text_src lasts (ns; 0 = the sampling "
                                                        "period: interval-time, or interval frames)",
                                                        0, G_MAXUINT64, DEFAULT_TEXT_DURATION, mut));
    g_object_class_install_property(gobject_class, PROP_THREADS,
                                    g_param_spec_int("threads", "Threads",
                                                     "CPU threads for the CPU backend (0 = all cores)", 0, 1024,
                                                     DEFAULT_THREADS, rw | GST_PARAM_MUTABLE_READY));
    g_object_class_install_property(gobject_class, PROP_MAX_BATCH,
                                    g_param_spec_uint("max-batch", "Max batch",
                                                      "Sequences the model's scheduler runs at once, shared by every "
                                                      "mgllavafilter using the model (0 = from free memory and the "
                                                      "context length, at most 8); set by the element that loads the "
                                                      "model: a different value on a later element posts a warning; an "
                                                      "explicit value whose KV caches do not fit is an error at start",
                                                      0, 256, DEFAULT_MAX_BATCH, rw | GST_PARAM_MUTABLE_READY));
    g_object_class_install_property(
        gobject_class, PROP_RESPONSE_SCHEMA,
        g_param_spec_string("response-schema", "Response schema",
                            "Every answer is JSON that validates against this JSON Schema (the subset of "
                            "docs/structured-output.md): the schema itself when it starts with '{', else the "
                            "path of a file holding it; an invalid schema is an error at start. The JSON "
                            "goes into the result meta's json field, the bus message's \"answer\" and the "
                            "JSON lines' \"answer\"",
                            NULL, rw | GST_PARAM_MUTABLE_READY));
    g_object_class_install_property(
        gobject_class, PROP_RESPONSE_GRAMMAR,
        g_param_spec_string("response-grammar", "Response grammar",
                            "Every answer follows this grammar (the GBNF-like notation of "
                            "docs/structured-output.md; rule root first): the grammar itself when it holds "
                            "'::=', else the path of a file holding it; not with response-schema",
                            NULL, rw | GST_PARAM_MUTABLE_READY));
    g_object_class_install_property(
        gobject_class, PROP_MODEL_LOADED,
        g_param_spec_boolean("model-loaded", "Model loaded",
                             "Whether the model is loaded and the element answers (the model loads on a thread "
                             "from READY to PAUSED; notify::model-loaded when it is, or when it goes)",
                             FALSE, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
    g_object_class_install_property(
        gobject_class, PROP_STATS,
        g_param_spec_boxed("stats", "Statistics",
                           "sampled, results, dropped, failed, aborted (by a flush or stop), "
                           "late, pending, largest-batch, incomplete (constrained answers that "
                           "did not complete); sampled = results + dropped + failed + aborted + pending; why "
                           "frames were sampled: sampled-interval, sampled-label, sampled-new-track, "
                           "sampled-count, sampled-objects, trigger-cooldown-skipped; object-questions, "
                           "object-answers; clip mode: clip-frames-gathered, clips, clip-partial, "
                           "clip-partial-dropped, clip-reset (a clip is one request; a window a flush "
                           "discards counts as aborted, a partial one dropped at EOS as dropped)",
                           GST_TYPE_STRUCTURE, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
    gst_mgllava_filter_trigger_install_properties(gobject_class);
    gst_mgllava_filter_clip_install_properties(gobject_class);

    gst_element_class_add_static_pad_template(element_class, &sink_template);
    gst_element_class_add_static_pad_template(element_class, &src_template);
    gst_mgllava_filter_text_class_init(element_class);
    gst_element_class_set_static_metadata(element_class, "MG-LLaVA filter", "Filter/Analyzer/Video",
                                          "Answers a question about sampled frames with MG-LLaVA and attaches "
                                          "the answer as metadata",
                                          "mgllava developers");

    element_class->change_state = GST_DEBUG_FUNCPTR(gst_mgllava_filter_change_state);
    trans_class->start = GST_DEBUG_FUNCPTR(gst_mgllava_filter_start);
    trans_class->stop = GST_DEBUG_FUNCPTR(gst_mgllava_filter_stop);
    trans_class->set_caps = GST_DEBUG_FUNCPTR(gst_mgllava_filter_set_caps);
    trans_class->sink_event = GST_DEBUG_FUNCPTR(gst_mgllava_filter_sink_event);
    trans_class->src_event = GST_DEBUG_FUNCPTR(gst_mgllava_filter_src_event);
    trans_class->query = GST_DEBUG_FUNCPTR(gst_mgllava_filter_query);
    trans_class->propose_allocation = GST_DEBUG_FUNCPTR(gst_mgllava_filter_propose_allocation);
    trans_class->transform_ip = GST_DEBUG_FUNCPTR(gst_mgllava_filter_transform_ip);

    gst_type_mark_as_plugin_api(GST_TYPE_MGLLAVA_ATTACH_MODE, 0);
    gst_type_mark_as_plugin_api(GST_TYPE_MGLLAVA_DROP_POLICY, 0);
    gst_type_mark_as_plugin_api(GST_TYPE_MGLLAVA_OBJECT_ORDER, 0);
    gst_type_mark_as_plugin_api(GST_TYPE_MGLLAVA_DEVICE, 0);
    gst_type_mark_as_plugin_api(GST_TYPE_MGLLAVA_PRECISION, 0);
}
