/* gstmgllavafilter-private.h: what the files of mgllavafilter share.
 *
 *   gstmgllavafilter.c      the class: properties, enums, start/stop/caps
 *                           and the GstBaseTransform vfuncs that chain up
 *   gstmgllavastream.c      the streaming thread: sampling frames into
 *                           requests, attaching answers, sink events, latency
 *   gstmgllavaworker.c      the request queue and its drop policies, the
 *                           worker thread that submits to the model's
 *                           scheduler (MglServer) through this element's
 *                           MglStream
 *   gstmgllavatext.c        the text_src pad (captions and gaps) and QoS
 *   gstmgllavaframe.c       sampled frames to packed RGB
 *   gstmgllavaconstraint.c  response-schema / response-grammar: structured
 *                           answers
 *   gstmgllavatrigger.c     triggers, track ids, per-object selection (own
 *                           header for the types)
 *   gstmgllavaobjects.c     per-object questions: one batch per frame, the
 *                           answers on the objects' ROI metas
 *   gstmgllavaclip.c        clip mode: windows of frames asked about as a
 *                           clip (the video path; own header for the types)
 *   gstmgllavamodelcache.c  the process-wide model cache (own header)
 *
 * Locking: properties and qos_earliest with the OBJECT_LOCK; the request
 * and result queues, the worker's flags and the counters with `lock`; the
 * text pad's state with `text_lock`. Fields marked "streaming thread only"
 * need no lock. */
#ifndef __GST_MGLLAVA_FILTER_PRIVATE_H__
#define __GST_MGLLAVA_FILTER_PRIVATE_H__

#include "gstmgllavafilter.h"
#include "gstmgllavameta.h"
#include "gstmgllavamodelcache.h"
#include "gstmgllavatrigger.h"
#include "gstmgllavaclip.h"

G_BEGIN_DECLS

GST_DEBUG_CATEGORY_EXTERN(gst_mgllava_filter_debug);
#define GST_CAT_DEFAULT gst_mgllava_filter_debug

/* A sampled frame waiting for the worker: owns its pixels and boxes. */
typedef struct {
    guint8* rgb;
    gint width, height;
    GArray* boxes; /* MglBox, owning copies of the labels */
    gchar* prompt;
    MglGenParams gen;
    GstClockTime pts;
    guint64 frame;
    gint64 t_sampled; /* monotonic us */
    guint64 seq;
    GArray* objects;             /* GstMgllavaObjectQuestion: object-mode's questions (then
                                  * prompt and boxes are unused); NULL: one about the frame */
    GPtrArray* clip;             /* GstMgllavaJob*: clip mode's frames in time order (then rgb
                                  * and boxes are unused); NULL: one frame */
    GstClockTime clip_start_pts; /* a clip: its first frame's PTS */
} GstMgllavaJob;

/* What the scheduler's callback hands the worker (it runs on the server's
 * thread: it only copies this and signals). */
typedef struct {
    MglStatus status;
    gchar* text;
    gchar* error;
    MglTimings timings;
    gint batch;
    gint64 t_done; /* monotonic us */
    gint32* ids;   /* the generated ids */
    gsize n_ids;
} GstMgllavaDone;

/* A finished request: the answer's fields as the meta and the bus message
 * carry them (the GstMeta header unused; text and prompt owned), filled once
 * from the engine's output. fields.source_frame == GST_MGLLAVA_NO_ANSWER
 * marks a request that produced no answer: it only completes its sequence
 * number. */
typedef struct {
    GstMgllavaResultMeta fields;
    guint64 seq;
} GstMgllavaResult;

#define GST_MGLLAVA_NO_ANSWER G_MAXUINT64

struct _GstMgllavaFilter {
    GstBaseTransform parent;

    GstPad* text_src;

    /* with OBJECT_LOCK */
    gchar* model_path;
    gchar* prompt;
    guint max_new_tokens;
    gfloat temperature;
    gfloat top_p;
    guint top_k;
    guint64 seed;
    guint interval;
    guint64 interval_time;
    GstMgllavaDevice device;
    GstMgllavaPrecision precision;
    gint gpu_id;
    GstMgllavaAttachMode attach_mode;
    guint max_pending;
    GstMgllavaDropPolicy drop_policy;
    gboolean use_objects;
    guint max_objects;
    gchar* object_labels;
    gdouble min_object_size;
    gboolean use_high_res;
    GstMgllavaObjectOrder object_order;
    guint64 exact_latency;
    guint64 text_duration;
    gint threads;
    guint max_batch;
    gchar* response_schema;    /* inline JSON Schema or a file; NULL = none */
    gchar* response_grammar;   /* inline grammar or a file; NULL = none */
    GstClockTime qos_earliest; /* running time; NONE = no QoS info */

    /* streaming thread only */
    GstVideoInfo info;
    gboolean have_info;
    GstVideoConverter* conv;
    guint64 frame_count;
    GstClockTime last_sample_rt;
    gboolean text_started;
    gboolean text_segment_pending;
    GstClockTime last_text_pts;
    GstClockTime text_pos; /* how far text_src went: the start of the
                            * last caption, the end of the last gap */
    /* attach-mode=auto: the mode this stream runs in, decided at its first
     * buffer (LATEST when upstream is live, else EXACT), -1 until then;
     * written by the streaming thread, read atomically elsewhere */
    gint auto_mode;

    /* engine: created in start(), freed in stop() */
    GstMgllavaCachedModel* cached;  /* holds the model and its server */
    MglModel* model;                /* the cached entry's */
    MglServer* server;              /* the cached entry's, shared */
    MglStream* stream;              /* this element's; the worker submits */
    MglGrammar* grammar;            /* response-schema/-grammar, compiled */
    MglGrammarState* grammar_state; /* the worker's (one request at a time) */
    GPtrArray* grammar_states;      /* MglGrammarState*: per-object batches' others */
    gboolean grammar_is_schema;
    gboolean grammar_budget_warned; /* the work-budget warning was posted (once per start) */

    /* with lock */
    GMutex lock;
    GCond cond;
    GQueue jobs;
    GQueue results;
    gboolean running;
    gboolean busy;        /* a request submitted, not yet called back */
    GstMgllavaDone* done; /* its callback's result, for the worker */
    gint max_batch_seen;  /* the largest batch an answer decoded in */
    gboolean flushing;
    volatile int abort_flag;
    guint64 next_seq;
    guint64 n_sampled, n_results, n_dropped, n_failed, n_aborted, n_late;
    guint64 n_incomplete; /* constrained answers that did not complete */
    guint64 n_unloaded;   /* live frames that passed while the model loaded */
    gint load_state;      /* GstMgllavaModelState: LOADING from start() until the load thread ends */
    gint load_cancel;     /* atomic: stop or going to READY gives the load up */
    GThread* loader;      /* the load thread (start() to stop()) */
    GThread* worker;
    GstMgllavaTriggerStats trig_stats;

    /* triggers and object-mode: the properties with OBJECT_LOCK, the state
     * streaming thread only */
    GstMgllavaTriggerSettings trig;
    GstMgllavaTriggerState trig_state;

    /* clip mode (gstmgllavaclip.c): the properties with OBJECT_LOCK, the
     * window streaming thread only, the counters with lock */
    GstMgllavaClipSettings clip;
    GstMgllavaClipState clip_state;

    GMutex text_lock;
};

/* ---- gstmgllavaworker.c ------------------------------------------------ */

void gst_mgllava_job_free(GstMgllavaJob* job);
void gst_mgllava_result_free(GstMgllavaResult* result);

/* Acquires the model named by the properties and its scheduler (shared
 * through the model cache; the element that loads the model starts the
 * scheduler with its max-batch) and opens this element's stream; posts the
 * error and returns FALSE when that fails. */
gboolean gst_mgllava_filter_open_model(GstMgllavaFilter* self);
/* The model loads on a thread of its own (start() returns at once): it
 * acquires the model (progress on the bus), compiles the response
 * constraint, then sets load_state READY or FAILED (the error posted). */
void gst_mgllava_filter_load_start(GstMgllavaFilter* self);
/* Gives the load up (going to READY): a waiting streaming thread returns,
 * and the load stops unless another element waits for the same model. */
void gst_mgllava_filter_load_cancel(GstMgllavaFilter* self);
/* stop(): cancels and joins the load thread. */
void gst_mgllava_filter_load_join(GstMgllavaFilter* self);
/* Streaming thread, while the model is not READY: with @wait (the stream is
 * not live) blocks until it is, or fails, or a flush or stop comes; without,
 * counts the frame as unloaded. TRUE when ready; else *ret is what the
 * buffer returns (OK: it passes unanswered, ERROR: the load failed,
 * FLUSHING). */
gboolean gst_mgllava_filter_load_wait(GstMgllavaFilter* self, gboolean wait, GstFlowReturn* ret);
/* Resets the counters and starts the worker thread (after open_model). */
void gst_mgllava_filter_worker_start(GstMgllavaFilter* self);
/* Aborts the request in flight, drops the queued ones (counted as aborted),
 * joins the worker, closes the stream and releases the model. */
void gst_mgllava_filter_worker_stop(GstMgllavaFilter* self);
/* FLUSH_START: queued requests are discarded and the one in flight is
 * aborted (all counted as aborted). FLUSH_STOP: waits for the worker to be
 * idle, then accepts requests again. */
void gst_mgllava_filter_worker_flush_start(GstMgllavaFilter* self);
void gst_mgllava_filter_worker_flush_stop(GstMgllavaFilter* self);
/* EOS: waits for every pending request (unless a flush or stop comes), then
 * moves the answers that no frame will carry to @late, in order. */
void gst_mgllava_filter_worker_drain(GstMgllavaFilter* self, GQueue* late);
/* The "stats" property's structure. */
GstStructure* gst_mgllava_filter_worker_stats(GstMgllavaFilter* self);

/* Queues @job under the drop policy (@mode, the effective attach mode: exact
 * and drop-policy=block wait for a slot); returns its sequence number, or 0
 * when it was dropped (and freed). */
guint64 gst_mgllava_filter_submit(GstMgllavaFilter* self, GstMgllavaJob* job, GstMgllavaAttachMode mode,
                                  GstMgllavaDropPolicy policy, guint max_pending);
/* Moves every finished result to @ready, in order. In attach-mode=exact with
 * @seq set, first waits for that request's result, at most @exact_latency
 * (GST_CLOCK_TIME_NONE: no deadline). */
void gst_mgllava_filter_take_results(GstMgllavaFilter* self, guint64 seq, GstMgllavaAttachMode mode,
                                     guint64 exact_latency, guint64 frame, GQueue* ready);

/* A copy of the scheduler's result (on its thread); freed with done_free. */
GstMgllavaDone* gst_mgllava_done_new(const MglResult* res);
void gst_mgllava_done_free(GstMgllavaDone* d);
/* The answer to @job from the scheduler's result @d (the frame's prompt). */
GstMgllavaResult* gst_mgllava_result_new(const GstMgllavaJob* job, const GstMgllavaDone* d);

/* ---- gstmgllavatrigger.c / gstmgllavaobjects.c ------------------------- */

/* Properties from this id up are the trigger and object-mode ones. */
#define GST_MGLLAVA_TRIGGER_PROP_BASE 100
void gst_mgllava_filter_trigger_install_properties(GObjectClass* klass);
/* With OBJECT_LOCK; FALSE when @prop_id is not one of them. */
gboolean gst_mgllava_filter_trigger_set_property(GstMgllavaFilter* self, guint prop_id, const GValue* value);
gboolean gst_mgllava_filter_trigger_get_property(GstMgllavaFilter* self, guint prop_id, GValue* value);
/* Streaming thread, every frame: whether it is sampled, given whether it is
 * @late (QoS) and whether interval sampling is @interval_due; counts why. */
gboolean gst_mgllava_filter_trigger_decide(GstMgllavaFilter* self, GstBuffer* buf, GstClockTime rt, gboolean late,
                                           gboolean interval_due);
/* The per-object questions decided for this frame (NULL: none); the caller owns them. */
GArray* gst_mgllava_filter_trigger_take_questions(GstMgllavaFilter* self);
/* With lock: the trigger counters into the stats structure. */
void gst_mgllava_filter_trigger_add_stats(GstMgllavaFilter* self, GstStructure* s);
/* The worker: submits @job's per-object questions as one batch sharing the
 * frame, waits for every answer, posts, counts and queues them (the lock not
 * held on entry; busy cleared on return). */
void gst_mgllava_filter_run_objects(GstMgllavaFilter* self, GstMgllavaJob* job);
/* Streaming thread: a per-object answer onto the ROI meta of @buf with its
 * track id (nothing when that object is not on @buf). */
void gst_mgllava_filter_attach_object_answer(GstMgllavaFilter* self, GstBuffer* buf, const GstMgllavaResultMeta* r);

/* ---- gstmgllavaclip.c -------------------------------------------------- */

/* Properties from this id up are the clip-mode ones. */
#define GST_MGLLAVA_CLIP_PROP_BASE 200
void gst_mgllava_filter_clip_install_properties(GObjectClass* klass);
/* With OBJECT_LOCK; FALSE when @prop_id is not one of them. */
gboolean gst_mgllava_filter_clip_set_property(GstMgllavaFilter* self, guint prop_id, const GValue* value);
gboolean gst_mgllava_filter_clip_get_property(GstMgllavaFilter* self, guint prop_id, GValue* value);
/* With OBJECT_LOCK: the sampling interval-time, clip-duration/clip-frames in
 * clip mode with a duration, else @interval_time. */
guint64 gst_mgllava_filter_clip_interval_time(GstMgllavaFilter* self, guint64 interval_time);
/* clip-frames (0: clip mode off). */
guint gst_mgllava_filter_clip_frames(GstMgllavaFilter* self);
/* Once the model is loaded: resets the counters and checks clip-frames
 * against the context; posts the error and returns FALSE when it does not fit. */
gboolean gst_mgllava_filter_clip_open(GstMgllavaFilter* self);
/* Streaming thread: the sampled @frame (taken) joins the window; when that
 * makes @n frames the clip is queued (as gst_mgllava_filter_submit) and its
 * sequence number returned, else 0. */
guint64 gst_mgllava_filter_clip_take(GstMgllavaFilter* self, GstMgllavaJob* frame, guint n, GstMgllavaAttachMode mode,
                                     GstMgllavaDropPolicy policy, guint max_pending);
/* Flush or new stream: the open window is discarded (an aborted request). */
void gst_mgllava_filter_clip_reset(GstMgllavaFilter* self);
/* EOS: the open window is queued (clip-partial) or dropped, counted. */
void gst_mgllava_filter_clip_eos(GstMgllavaFilter* self);
/* stop(): forgets the open window. */
void gst_mgllava_filter_clip_clear(GstMgllavaFilter* self);
/* The worker: submits a clip request (as mgl_stream_submit, user data self). */
MglStatus gst_mgllava_filter_clip_submit(GstMgllavaFilter* self, GstMgllavaJob* job, MglResultFunc done, uint64_t* id,
                                         MglErr* err);
/* A clip's answer: its clip fields. */
void gst_mgllava_filter_clip_result(const GstMgllavaJob* job, GstMgllavaResult* r);
/* With lock: the clip counters into the stats structure. */
void gst_mgllava_filter_clip_add_stats(GstMgllavaFilter* self, GstStructure* s);

/* ---- gstmgllavastream.c ------------------------------------------------ */

/* Samples @buf into a request when due, then attaches every finished
 * answer to it (or sends a gap on text_src). */
GstFlowReturn gst_mgllava_filter_transform_ip(GstBaseTransform* trans, GstBuffer* buf);
/* A sink event's effect on the worker, the text pad and sampling (before
 * the base class handles it). */
void gst_mgllava_filter_handle_sink_event(GstMgllavaFilter* self, GstEvent* event);
/* Whether the element runs attach-mode=auto as exact (upstream not live):
 * it then keeps QOS events from upstream. Any thread. */
gboolean gst_mgllava_filter_auto_holds_frames(GstMgllavaFilter* self);
/* An answered upstream LATENCY query: adds exact-latency
 * in attach-mode=exact (auto adds nothing: when live it runs as latest). */
void gst_mgllava_filter_add_latency(GstMgllavaFilter* self, GstQuery* query);

/* ---- gstmgllavaconstraint.c ------------------------------------------- */

/* The text of a response-schema (@schema) or response-grammar value: the
 * value itself when inline, else the file it names. */
gchar* gst_mgllava_constraint_load_text(const gchar* value, gboolean schema, GError** error);
/* At property set: logs a warning when @value would not compile. */
void gst_mgllava_constraint_check_property(GstMgllavaFilter* self, const gchar* value, gboolean schema);
/* Once the model is loaded: compiles the constraint (none set: nothing to
 * do); posts the error and returns FALSE when it is invalid. */
gboolean gst_mgllava_filter_constraint_open(GstMgllavaFilter* self);
void gst_mgllava_filter_constraint_close(GstMgllavaFilter* self);
/* Before a submission: the matcher reset and bound to @gen. */
void gst_mgllava_filter_constraint_bind(GstMgllavaFilter* self, MglGenParams* gen);
/* After an answer: sets @r's constraint (and text and json when complete);
 * FALSE when a constrained answer did not complete. */
gboolean gst_mgllava_filter_constraint_finish(GstMgllavaFilter* self, const gint32* ids, gsize n_ids,
                                              GstMgllavaResult* r);
/* The same for request @i of a batch submitted together (each its own
 * matcher; 0 is the one of bind/finish). */
void gst_mgllava_filter_constraint_bind_index(GstMgllavaFilter* self, guint i, MglGenParams* gen);
gboolean gst_mgllava_filter_constraint_finish_index(GstMgllavaFilter* self, guint i, const gint32* ids, gsize n_ids,
                                                    GstMgllavaResult* r);
/* The bus message's "answer": @json as a value (objects as GstStructure). */
void gst_mgllava_constraint_add_answer(GstStructure* s, const gchar* json);

/* ---- gstmgllavatext.c -------------------------------------------------- */

void gst_mgllava_filter_text_class_init(GstElementClass* element_class);
void gst_mgllava_filter_text_init(GstMgllavaFilter* self);
/* start(): no stream started on text_src yet. */
void gst_mgllava_filter_text_reset(GstMgllavaFilter* self);
/* FLUSH_STOP: captions start over, and a new segment goes out first. */
void gst_mgllava_filter_text_flush(GstMgllavaFilter* self);
/* SEGMENT on the sink pad: text_src sends it before its next buffer. */
void gst_mgllava_filter_text_new_segment(GstMgllavaFilter* self);
/* EOS on the sink pad: EOS on text_src (which starts its stream first when
 * nothing went out there yet, so a muxer waiting on it finishes). */
void gst_mgllava_filter_text_eos(GstMgllavaFilter* self);
/* The answer on text_src, timed from @video (or, when NULL, its source frame). */
void gst_mgllava_filter_push_text(GstMgllavaFilter* self, const GstMgllavaResult* r, GstBuffer* video);
/* A gap on text_src for @video's time span (it starts no caption); an
 * untimestamped @video gets a gap at the text stream's position. */
void gst_mgllava_filter_push_gap(GstMgllavaFilter* self, GstBuffer* video);
/* A QOS event from downstream: records the running time before which frames
 * are late. */
void gst_mgllava_filter_qos_update(GstMgllavaFilter* self, GstEvent* event);
/* FLUSH_STOP: no QoS information. */
void gst_mgllava_filter_qos_reset(GstMgllavaFilter* self);
/* Whether a frame at running time @rt is late by the QoS information
 * @earliest; a late frame is counted. */
gboolean gst_mgllava_filter_qos_is_late(GstMgllavaFilter* self, GstClockTime rt, GstClockTime earliest);

/* ---- gstmgllavaframe.c ------------------------------------------------- */

/* New caps: sets up the conversion to RGB; FALSE when it cannot be done. */
gboolean gst_mgllava_filter_frame_set_info(GstMgllavaFilter* self, const GstVideoInfo* info);
/* stop(): forgets the caps and the converter. */
void gst_mgllava_filter_frame_clear(GstMgllavaFilter* self);
/* Copies the frame as packed RGB (g_free); NULL when it cannot be mapped. */
guint8* gst_mgllava_filter_frame_to_rgb(GstMgllavaFilter* self, GstBuffer* buf);

G_END_DECLS

#endif
