/* gstmgllavatext.c: mgllavafilter's text_src pad and QoS.
 *
 * Each answer goes out as a text/x-raw buffer starting at the video frame
 * that carries it, lasting the text duration, so textoverlay and subtitle
 * consumers show it. Every other frame sends a gap event for its time span,
 * also while a caption shows: a sparse-stream consumer that orders its
 * inputs by time (matroskamux and other muxers, which must see data on every
 * pad before they write) learns that the text stream has advanced past the
 * frame, and textoverlay keeps showing the caption until its end (a gap does
 * not end a buffer's duration). An untimestamped frame sends a gap at the
 * text stream's position, so a sink on text_src prerolls. QOS events from
 * downstream mark frames that are already late: those are not sampled (but
 * never dropped). */
#include "gstmgllavafilter-private.h"

#include <string.h>

static GstStaticPadTemplate text_src_template = GST_STATIC_PAD_TEMPLATE(
    "text_src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS("text/x-raw, format=(string)utf8"));

void gst_mgllava_filter_text_class_init(GstElementClass* element_class) {
    gst_element_class_add_static_pad_template(element_class, &text_src_template);
}

void gst_mgllava_filter_text_init(GstMgllavaFilter* self) {
    self->text_src = gst_pad_new_from_static_template(&text_src_template, "text_src");
    gst_pad_use_fixed_caps(self->text_src);
    gst_element_add_pad(GST_ELEMENT(self), self->text_src);
}

void gst_mgllava_filter_text_reset(GstMgllavaFilter* self) {
    self->text_started = FALSE;
    self->last_text_pts = GST_CLOCK_TIME_NONE;
    self->text_pos = GST_CLOCK_TIME_NONE;
}

void gst_mgllava_filter_text_flush(GstMgllavaFilter* self) {
    g_mutex_lock(&self->text_lock);
    self->last_text_pts = GST_CLOCK_TIME_NONE;
    self->text_pos = GST_CLOCK_TIME_NONE;
    self->text_segment_pending = TRUE;
    g_mutex_unlock(&self->text_lock);
}

void gst_mgllava_filter_text_new_segment(GstMgllavaFilter* self) {
    g_mutex_lock(&self->text_lock);
    self->text_segment_pending = TRUE;
    g_mutex_unlock(&self->text_lock);
}

static void gst_mgllava_filter_text_prepare(GstMgllavaFilter* self);

void gst_mgllava_filter_text_eos(GstMgllavaFilter* self) {
    /* a stream with no frame still ends on text_src: a muxer with a subtitle
     * pad waits for data or EOS on every pad */
    g_mutex_lock(&self->text_lock);
    if (!self->text_started && gst_pad_is_linked(self->text_src)) gst_mgllava_filter_text_prepare(self);
    g_mutex_unlock(&self->text_lock);
    if (self->text_started) gst_pad_push_event(self->text_src, gst_event_new_eos());
}

static void gst_mgllava_filter_text_prepare(GstMgllavaFilter* self) {
    /* with text_lock */
    if (!self->text_started) {
        gchar* id = gst_pad_create_stream_id(self->text_src, GST_ELEMENT(self), "text");
        GstCaps* caps = gst_static_pad_template_get_caps(&text_src_template);

        gst_pad_push_event(self->text_src, gst_event_new_stream_start(id));
        gst_pad_push_event(self->text_src, gst_event_new_caps(caps));
        gst_caps_unref(caps);
        g_free(id);
        self->text_started = TRUE;
        self->text_segment_pending = TRUE;
    }
    if (self->text_segment_pending) {
        GstSegment seg = GST_BASE_TRANSFORM(self)->segment;

        gst_pad_push_event(self->text_src, gst_event_new_segment(&seg));
        self->text_segment_pending = FALSE;
    }
}

/* How long a caption stays on text_src: the text-duration property, else the
 * sampling period (interval-time, or interval frames), at least one frame. */
static GstClockTime gst_mgllava_filter_text_duration(GstMgllavaFilter* self, GstBuffer* video) {
    GstClockTime frame = GST_CLOCK_TIME_NONE, d;
    guint64 text_duration, interval_time;
    guint interval;

    /* properties may change from the application thread at any time */
    GST_OBJECT_LOCK(self);
    text_duration = self->text_duration;
    interval_time = self->interval_time;
    interval = self->interval;
    GST_OBJECT_UNLOCK(self);
    if (text_duration > 0) return text_duration;
    if (video && GST_BUFFER_DURATION_IS_VALID(video))
        frame = GST_BUFFER_DURATION(video);
    else if (self->have_info && GST_VIDEO_INFO_FPS_N(&self->info) > 0)
        frame =
            gst_util_uint64_scale_int(GST_SECOND, GST_VIDEO_INFO_FPS_D(&self->info), GST_VIDEO_INFO_FPS_N(&self->info));
    if (!GST_CLOCK_TIME_IS_VALID(frame) || frame == 0) frame = GST_SECOND / 30;
    d = interval_time > 0 ? interval_time : frame * MAX(interval, 1);
    return MAX(d, frame);
}

/* A text buffer for the answer, starting at the video frame that carries it
 * (or, with none, at its source frame), kept monotonic, lasting
 * gst_mgllava_filter_text_duration(): textoverlay shows it for that long. */
void gst_mgllava_filter_push_text(GstMgllavaFilter* self, const GstMgllavaResult* r, GstBuffer* video) {
    GstBuffer* buf;
    gsize len = strlen(r->fields.text);
    GstClockTime pts = video ? GST_BUFFER_PTS(video) : r->fields.source_pts, dur;

    if (!GST_CLOCK_TIME_IS_VALID(pts)) pts = r->fields.source_pts;
    if (!gst_pad_is_linked(self->text_src)) return;
    g_mutex_lock(&self->text_lock);
    gst_mgllava_filter_text_prepare(self);
    if (GST_CLOCK_TIME_IS_VALID(self->last_text_pts) && (!GST_CLOCK_TIME_IS_VALID(pts) || pts < self->last_text_pts))
        pts = self->last_text_pts;
    dur = gst_mgllava_filter_text_duration(self, video);
    buf = gst_buffer_new_memdup(r->fields.text, len);
    GST_BUFFER_PTS(buf) = pts;
    GST_BUFFER_DURATION(buf) = dur;
    self->last_text_pts = pts;
    if (GST_CLOCK_TIME_IS_VALID(pts) && (!GST_CLOCK_TIME_IS_VALID(self->text_pos) || pts > self->text_pos))
        self->text_pos = pts;
    gst_pad_push(self->text_src, buf);
    g_mutex_unlock(&self->text_lock);
}

/* The text stream's position for an untimestamped frame: where the last
 * caption or gap went, else the start of the segment. With text_lock. */
static GstClockTime gst_mgllava_filter_text_position(GstMgllavaFilter* self) {
    const GstSegment* seg = &GST_BASE_TRANSFORM(self)->segment;

    if (GST_CLOCK_TIME_IS_VALID(self->text_pos)) return self->text_pos;
    if (seg->format == GST_FORMAT_TIME && GST_CLOCK_TIME_IS_VALID(seg->start)) return seg->start;
    return 0;
}

/* A frame that starts no caption: a gap event for its time span, so
 * textoverlay, subtitle muxers and sinks on text_src keep running (and
 * preroll); a caption showing goes on showing until its end. */
void gst_mgllava_filter_push_gap(GstMgllavaFilter* self, GstBuffer* video) {
    GstClockTime pts = GST_BUFFER_PTS(video), dur = GST_BUFFER_DURATION(video);

    if (!gst_pad_is_linked(self->text_src)) return;
    g_mutex_lock(&self->text_lock);
    gst_mgllava_filter_text_prepare(self);
    if (!GST_CLOCK_TIME_IS_VALID(pts)) {
        /* no time to give: the stream's position, so a sink there prerolls */
        gst_pad_push_event(self->text_src,
                           gst_event_new_gap(gst_mgllava_filter_text_position(self), GST_CLOCK_TIME_NONE));
    } else if (!GST_CLOCK_TIME_IS_VALID(self->last_text_pts) || pts >= self->last_text_pts) {
        /* (a frame before the last caption's start, which was kept monotonic,
         * has been covered by it) */
        gst_pad_push_event(self->text_src, gst_event_new_gap(pts, dur));
        pts = GST_CLOCK_TIME_IS_VALID(dur) ? pts + dur : pts;
        if (!GST_CLOCK_TIME_IS_VALID(self->text_pos) || pts > self->text_pos) self->text_pos = pts;
    }
    g_mutex_unlock(&self->text_lock);
}

/* ---- QoS --------------------------------------------------------------- */

void gst_mgllava_filter_qos_update(GstMgllavaFilter* self, GstEvent* event) {
    GstQOSType type;
    gdouble proportion;
    GstClockTimeDiff diff;
    GstClockTime ts;

    gst_event_parse_qos(event, &type, &proportion, &diff, &ts);
    GST_OBJECT_LOCK(self);
    /* as GstBaseTransform computes it: frames before this running time are late */
    if (diff > 0)
        self->qos_earliest = ts + 2 * diff;
    else
        self->qos_earliest = ts + diff;
    GST_OBJECT_UNLOCK(self);
}

void gst_mgllava_filter_qos_reset(GstMgllavaFilter* self) {
    GST_OBJECT_LOCK(self);
    self->qos_earliest = GST_CLOCK_TIME_NONE;
    GST_OBJECT_UNLOCK(self);
}

gboolean gst_mgllava_filter_qos_is_late(GstMgllavaFilter* self, GstClockTime rt, GstClockTime earliest) {
    /* a frame that is already late is not worth a request */
    if (GST_CLOCK_TIME_IS_VALID(earliest) && GST_CLOCK_TIME_IS_VALID(rt) && rt < earliest) {
        g_mutex_lock(&self->lock);
        self->n_late++;
        g_mutex_unlock(&self->lock);
        return TRUE;
    }
    return FALSE;
}
