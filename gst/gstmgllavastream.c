/* gstmgllavastream.c: mgllavafilter on the streaming thread.
 *
 * Which frames are sampled (interval or interval-time, never a frame QoS
 * marks late) and how a frame becomes a request: its pixels as RGB, its ROI
 * metas as boxes (object-labels, min-object-size and max-objects applied),
 * and a snapshot of the prompt and generation settings. Every buffer then
 * carries the answers finished so far, as metas and on text_src. Sink events
 * reach the worker and the text pad from here, and the LATENCY query gets
 * exact-latency added in attach-mode=exact.
 *
 * attach-mode=auto asks upstream for its latency at the first buffer of a
 * stream: a live upstream runs the stream as latest, anything else (a file,
 * a non-live test source, or an upstream that does not answer) as exact with
 * no deadline and no QoS skipping, so no sampled frame goes unanswered. At
 * EOS every pending answer is delivered before the EOS goes on: the ones no
 * frame carried leave as one GST_MGLLAVA_LATE_RESULTS_EVENT on the src pad
 * (and on text_src). */
#include "gstmgllavafilter-private.h"
#include "gstmgllavaroi.h"

/* ---- sampling ---------------------------------------------------------- */

/* Whether frame @buf is due (interval or interval-time), unless QoS says it
 * is already late. */
static gboolean gst_mgllava_filter_should_sample(GstMgllavaFilter* self, GstBuffer* buf, guint interval,
                                                 guint64 interval_time, GstClockTime earliest) {
    GstBaseTransform* trans = GST_BASE_TRANSFORM(self);
    GstClockTime rt = gst_segment_to_running_time(&trans->segment, GST_FORMAT_TIME, GST_BUFFER_PTS(buf));
    gboolean late = gst_mgllava_filter_qos_is_late(self, rt, earliest), due = FALSE;

    /* interval-time counts running time; interval 0 and 1 both mean every
     * frame (with a trigger set, interval 0 means none: gstmgllavatrigger.c) */
    if (late) {
        due = FALSE;
    } else if (interval_time > 0 && GST_CLOCK_TIME_IS_VALID(rt)) {
        if (!GST_CLOCK_TIME_IS_VALID(self->last_sample_rt) || rt >= self->last_sample_rt + interval_time) {
            self->last_sample_rt = rt;
            due = TRUE;
        }
    } else {
        due = interval <= 1 || self->frame_count % interval == 0;
    }
    /* triggers and object-mode (which read every frame's objects) */
    return gst_mgllava_filter_trigger_decide(self, buf, rt, late, due);
}

/* A request for frame @buf; its rgb is NULL when the frame cannot be mapped. */
static GstMgllavaJob* gst_mgllava_filter_make_job(GstMgllavaFilter* self, GstBuffer* buf, guint64 frame,
                                                  gboolean use_objects, guint max_objects) {
    GstMgllavaJob* job = g_new0(GstMgllavaJob, 1);
    GstMgllavaRoiFilter f = {0};

    job->rgb = gst_mgllava_filter_frame_to_rgb(self, buf);
    job->width = GST_VIDEO_INFO_WIDTH(&self->info);
    job->height = GST_VIDEO_INFO_HEIGHT(&self->info);
    job->boxes = g_array_new(FALSE, FALSE, sizeof(MglBox));
    job->gen = mgl_gen_default_params();
    GST_OBJECT_LOCK(self);
    job->prompt = g_strdup(self->prompt);
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
    f.labels = self->object_labels && *self->object_labels ? g_strsplit(self->object_labels, ",", -1) : NULL;
    GST_OBJECT_UNLOCK(self);
    if (f.labels) {
        gchar** l;
        for (l = f.labels; *l; l++) g_strstrip(*l);
    }
    if (use_objects) {
        gst_mgllava_roi_collect(buf, job->width, job->height, &f, job->boxes);
        /* the labels point into the buffer's metas: the request outlives them */
        gst_mgllava_roi_boxes_copy_labels(job->boxes, 0);
    }
    g_strfreev(f.labels);
    job->objects = gst_mgllava_filter_trigger_take_questions(self);
    job->pts = GST_BUFFER_PTS(buf);
    job->frame = frame;
    job->t_sampled = g_get_monotonic_time();
    return job;
}

/* Makes a request of frame @buf and queues it; returns its sequence number,
 * 0 when it was not queued. */
static guint64 gst_mgllava_filter_sample(GstMgllavaFilter* self, GstBuffer* buf, guint64 frame,
                                         GstMgllavaAttachMode mode, GstMgllavaDropPolicy policy, guint max_pending,
                                         gboolean use_objects, guint max_objects) {
    GstMgllavaJob* job = gst_mgllava_filter_make_job(self, buf, frame, use_objects, max_objects);
    guint clip_frames = gst_mgllava_filter_clip_frames(self);

    if (!job->rgb) {
        GST_ELEMENT_WARNING(self, STREAM, FAILED, ("Could not map frame %" G_GUINT64_FORMAT ".", frame), (NULL));
        gst_mgllava_job_free(job);
        return 0;
    }
    /* clip mode: the frame joins the window (gstmgllavaclip.c) */
    if (clip_frames > 0) return gst_mgllava_filter_clip_take(self, job, clip_frames, mode, policy, max_pending);
    return gst_mgllava_filter_submit(self, job, mode, policy, max_pending);
}

/* ---- streaming --------------------------------------------------------- */

/* attach-mode=auto: the mode of this stream, from a LATENCY query upstream
 * at its first buffer (then kept until the next STREAM_START or start()). */
static GstMgllavaAttachMode gst_mgllava_filter_auto_mode(GstMgllavaFilter* self) {
    GstQuery* q;
    gboolean live = FALSE, answered;

    gint decided = g_atomic_int_get(&self->auto_mode);

    if (decided >= 0) return decided;
    q = gst_query_new_latency();
    answered = gst_pad_peer_query(GST_BASE_TRANSFORM_SINK_PAD(self), q);
    if (answered) gst_query_parse_latency(q, &live, NULL, NULL);
    gst_query_unref(q);
    g_atomic_int_set(&self->auto_mode, live ? GST_MGLLAVA_ATTACH_LATEST : GST_MGLLAVA_ATTACH_EXACT);
    GST_INFO_OBJECT(self, "attach-mode=auto: upstream is %s%s, running as %s", live ? "live" : "not live",
                    answered ? "" : " (no latency answer)", live ? "latest" : "exact (no deadline, no QoS skipping)");
    return live ? GST_MGLLAVA_ATTACH_LATEST : GST_MGLLAVA_ATTACH_EXACT;
}

static void gst_mgllava_filter_attach(GstMgllavaFilter* self, GstBuffer* buf, GstMgllavaResult* r) {
    GstMgllavaResultMeta* m = gst_buffer_add_mgllava_result_meta_full(buf, &r->fields);

    if (m && r->fields.constraint) gst_mgllava_result_meta_set_constraint(m, r->fields.json, r->fields.constraint);
    if (m && r->fields.clip_frames > 0)
        gst_mgllava_result_meta_set_clip(m, r->fields.clip_frames, r->fields.clip_start_pts, r->fields.clip_end_pts);
    if (m && r->fields.object_id != 0) {
        gst_mgllava_result_meta_set_object(m, r->fields.object_id, r->fields.object_label, r->fields.object_x,
                                           r->fields.object_y, r->fields.object_w, r->fields.object_h);
        gst_mgllava_filter_attach_object_answer(self, buf, &r->fields);
    }
}

/* Samples the frame into a request (see gstmgllavaworker.c), then attaches
 * every answer finished so far and sends it on text_src, or a gap. */
GstFlowReturn gst_mgllava_filter_transform_ip(GstBaseTransform* trans, GstBuffer* buf) {
    GstMgllavaFilter* self = GST_MGLLAVA_FILTER(trans);
    guint interval, max_pending, max_objects;
    guint64 interval_time, exact_latency;
    GstMgllavaAttachMode mode;
    GstMgllavaDropPolicy policy;
    GstClockTime earliest;
    gboolean use_objects, sampled;
    guint64 frame = self->frame_count;
    guint64 seq = 0;
    GQueue ready = G_QUEUE_INIT;
    GstMgllavaResult* r;

    if (G_UNLIKELY(!self->have_info)) return GST_FLOW_NOT_NEGOTIATED;

    GST_OBJECT_LOCK(self);
    interval = self->interval;
    interval_time = gst_mgllava_filter_clip_interval_time(self, self->interval_time);
    mode = self->attach_mode;
    policy = self->drop_policy;
    max_pending = MAX(self->max_pending, 1);
    exact_latency = self->exact_latency;
    earliest = self->qos_earliest;
    use_objects = self->use_objects;
    max_objects = self->max_objects;
    GST_OBJECT_UNLOCK(self);

    if (mode == GST_MGLLAVA_ATTACH_AUTO) {
        mode = gst_mgllava_filter_auto_mode(self);
        if (mode == GST_MGLLAVA_ATTACH_EXACT) {
            /* not live: nothing is late and every answer is worth its wait */
            exact_latency = GST_CLOCK_TIME_NONE;
            earliest = GST_CLOCK_TIME_NONE;
        }
    }

    /* the model loads asynchronously: a stream that is not live, or held in
     * attach-mode=exact, waits for it (no answer lost); a live one in latest
     * mode passes unanswered (counted as unloaded) */
    if (G_UNLIKELY(g_atomic_int_get(&self->load_state) != GST_MGLLAVA_MODEL_READY)) {
        GstFlowReturn ret;
        gboolean pass =
            mode == GST_MGLLAVA_ATTACH_LATEST && gst_mgllava_filter_auto_mode(self) == GST_MGLLAVA_ATTACH_LATEST;

        if (!gst_mgllava_filter_load_wait(self, !pass, &ret)) {
            if (ret == GST_FLOW_OK) {
                self->frame_count++;
                gst_mgllava_filter_push_gap(self, buf);
            }
            return ret;
        }
    }

    sampled = gst_mgllava_filter_should_sample(self, buf, interval, interval_time, earliest);
    self->frame_count++;
    if (sampled) seq = gst_mgllava_filter_sample(self, buf, frame, mode, policy, max_pending, use_objects, max_objects);
    gst_mgllava_filter_take_results(self, seq, mode, exact_latency, frame, &ready);

    if (g_queue_is_empty(&ready)) {
        gst_mgllava_filter_push_gap(self, buf);
    } else {
        while ((r = g_queue_pop_head(&ready))) {
            if (r->fields.source_frame != GST_MGLLAVA_NO_ANSWER) {
                gst_mgllava_filter_attach(self, buf, r);
                gst_mgllava_filter_push_text(self, r, buf);
            }
            gst_mgllava_result_free(r);
        }
    }
    return GST_FLOW_OK;
}

/* ---- events and queries ------------------------------------------------ */

gboolean gst_mgllava_filter_auto_holds_frames(GstMgllavaFilter* self) {
    GstMgllavaAttachMode mode;

    GST_OBJECT_LOCK(self);
    mode = self->attach_mode;
    GST_OBJECT_UNLOCK(self);
    return mode == GST_MGLLAVA_ATTACH_AUTO && g_atomic_int_get(&self->auto_mode) == GST_MGLLAVA_ATTACH_EXACT;
}

/* EOS: waits for every pending request, then sends the answers no frame
 * carried downstream in one late-results event (before the EOS, which the
 * base class forwards next) and on text_src. */
static void gst_mgllava_filter_deliver_late(GstMgllavaFilter* self) {
    GQueue late = G_QUEUE_INIT;
    const GstMgllavaResultMeta** fields;
    GstMgllavaResult* r;
    GList* l;
    guint n = 0;

    gst_mgllava_filter_worker_drain(self, &late);
    if (g_queue_is_empty(&late)) return;
    fields = g_new(const GstMgllavaResultMeta*, late.length);
    for (l = late.head; l; l = l->next) {
        r = l->data;
        fields[n++] = &r->fields;
        gst_mgllava_filter_push_text(self, r, NULL);
    }
    GST_DEBUG_OBJECT(self, "%u answer(s) after the last frame: sent in a " GST_MGLLAVA_LATE_RESULTS_EVENT " event", n);
    gst_pad_push_event(GST_BASE_TRANSFORM_SRC_PAD(self), gst_mgllava_late_results_event_new(fields, n));
    g_free(fields);
    g_queue_clear_full(&late, (GDestroyNotify)gst_mgllava_result_free);
}

void gst_mgllava_filter_handle_sink_event(GstMgllavaFilter* self, GstEvent* event) {
    switch (GST_EVENT_TYPE(event)) {
    case GST_EVENT_FLUSH_START:
        gst_mgllava_filter_worker_flush_start(self);
        gst_pad_push_event(self->text_src, gst_event_ref(event));
        break;
    case GST_EVENT_FLUSH_STOP:
        gst_mgllava_filter_worker_flush_stop(self);
        gst_mgllava_filter_text_flush(self);
        self->last_sample_rt = GST_CLOCK_TIME_NONE;
        gst_mgllava_trigger_state_reset(&self->trig_state);
        gst_mgllava_filter_qos_reset(self);
        gst_mgllava_filter_clip_reset(self);
        gst_pad_push_event(self->text_src, gst_event_ref(event));
        break;
    case GST_EVENT_SEGMENT: gst_mgllava_filter_text_new_segment(self); break;
    case GST_EVENT_STREAM_START:
        self->frame_count = 0;
        self->last_sample_rt = GST_CLOCK_TIME_NONE;
        gst_mgllava_trigger_state_reset(&self->trig_state);
        g_atomic_int_set(&self->auto_mode, -1);
        gst_mgllava_filter_clip_reset(self);
        break;
    case GST_EVENT_EOS:
        gst_mgllava_filter_clip_eos(self); /* a partial window: answered (then late) or dropped */
        gst_mgllava_filter_deliver_late(self);
        gst_mgllava_filter_text_eos(self);
        break;
    default: break;
    }
}

void gst_mgllava_filter_add_latency(GstMgllavaFilter* self, GstQuery* query) {
    gboolean live;
    GstClockTime min, max, add = 0;

    gst_query_parse_latency(query, &live, &min, &max);
    GST_OBJECT_LOCK(self);
    /* auto, when live, runs as latest: it holds no frame */
    if (self->attach_mode == GST_MGLLAVA_ATTACH_EXACT) add = self->exact_latency;
    GST_OBJECT_UNLOCK(self);
    min += add;
    if (GST_CLOCK_TIME_IS_VALID(max)) max += add;
    if (GST_CLOCK_TIME_IS_VALID(max) && max < min) max = min;
    GST_DEBUG_OBJECT(self,
                     "latency: live %d, min %" GST_TIME_FORMAT ", max %" GST_TIME_FORMAT " (+%" GST_TIME_FORMAT ")",
                     live, GST_TIME_ARGS(min), GST_TIME_ARGS(max), GST_TIME_ARGS(add));
    gst_query_set_latency(query, live, min, max);
}
