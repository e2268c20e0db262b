/* gstmgllavaclip.c: mgllavafilter's clip mode.
 *
 * With clip-frames=N the sampled frames are not questions of their own: they
 * gather into a window, and each full window of N frames becomes one request
 * about the clip, answered by the official MG-LLaVA video path
 * (mgl_stream_submit_clip: each frame with its own preprocessing and boxes,
 * the frames' tokens in time order at the prompt's <video> slot). Which frames
 * are gathered is the usual sampling (interval, interval-time, triggers); with
 * clip-duration=D the frames are D/N apart in running time, so a window spans
 * D. A window holds exactly N frames: a flushing seek or a new stream
 * discards the open one (counted as an aborted request, clip-reset), and at
 * EOS a partial window is answered with the frames it has (clip-partial=true,
 * the default; clip-partial counts them) or dropped (counted as a dropped
 * request, clip-partial-dropped). The answer is about the window's last
 * frame (source-pts, source-frame; in attach-mode=exact that frame carries
 * it) and carries the window's first and last PTS and its frame count
 * (clip-start-pts, clip-end-pts, clip-frames) in the result meta, the bus
 * message and JSON ("clip"). A partial window's answer at EOS comes after
 * the last frame: in the late-results event.
 *
 * The number of frames is checked against the model's context once the model
 * is loaded (each frame is 576 image tokens and at least one object token):
 * too many is an element error naming both numbers. */
#include "gstmgllavafilter-private.h"

enum {
    PROP_CLIP_FRAMES = GST_MGLLAVA_CLIP_PROP_BASE,
    PROP_CLIP_DURATION,
    PROP_CLIP_PARTIAL,
};

void gst_mgllava_clip_settings_init(GstMgllavaClipSettings* s) {
    s->frames = 0;
    s->duration = 0;
    s->partial = TRUE;
}

void gst_mgllava_filter_clip_install_properties(GObjectClass* klass) {
    g_object_class_install_property(
        klass, PROP_CLIP_FRAMES,
        g_param_spec_uint("clip-frames", "Clip frames",
                          "Ask about clips of this many sampled frames (the MG-LLaVA video path; 8 in the official "
                          "code) instead of single frames; 0 = off. Checked against the model's context when it "
                          "loads (576 image tokens and at least one object token a frame)",
                          0, 4096, 0, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
    g_object_class_install_property(
        klass, PROP_CLIP_DURATION,
        g_param_spec_uint64("clip-duration", "Clip duration",
                            "With clip-frames: the span of a window in running time (ns); its frames are "
                            "clip-duration/clip-frames apart (instead of interval/interval-time); 0 = as sampled",
                            0, G_MAXUINT64, 0, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
    g_object_class_install_property(
        klass, PROP_CLIP_PARTIAL,
        g_param_spec_boolean("clip-partial", "Clip partial",
                             "At EOS, answer a window that has fewer than clip-frames frames with the frames it has "
                             "(true) or drop it (false); both are counted in stats",
                             TRUE, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
}

gboolean gst_mgllava_filter_clip_set_property(GstMgllavaFilter* self, guint prop_id, const GValue* value) {
    switch (prop_id) {
    case PROP_CLIP_FRAMES: self->clip.frames = g_value_get_uint(value); return TRUE;
    case PROP_CLIP_DURATION: self->clip.duration = g_value_get_uint64(value); return TRUE;
    case PROP_CLIP_PARTIAL: self->clip.partial = g_value_get_boolean(value); return TRUE;
    default: return FALSE;
    }
}

gboolean gst_mgllava_filter_clip_get_property(GstMgllavaFilter* self, guint prop_id, GValue* value) {
    switch (prop_id) {
    case PROP_CLIP_FRAMES: g_value_set_uint(value, self->clip.frames); return TRUE;
    case PROP_CLIP_DURATION: g_value_set_uint64(value, self->clip.duration); return TRUE;
    case PROP_CLIP_PARTIAL: g_value_set_boolean(value, self->clip.partial); return TRUE;
    default: return FALSE;
    }
}

guint64 gst_mgllava_filter_clip_interval_time(GstMgllavaFilter* self, guint64 interval_time) {
    if (self->clip.frames > 0 && self->clip.duration > 0) return MAX(self->clip.duration / self->clip.frames, 1);
    return interval_time;
}

guint gst_mgllava_filter_clip_frames(GstMgllavaFilter* self) {
    guint n;

    GST_OBJECT_LOCK(self);
    n = self->clip.frames;
    GST_OBJECT_UNLOCK(self);
    return n;
}

gboolean gst_mgllava_filter_clip_open(GstMgllavaFilter* self) {
    guint n;
    gchar* prompt;
    MglErr err = {0};
    gboolean ok = TRUE;

    GST_OBJECT_LOCK(self);
    n = self->clip.frames;
    prompt = g_strdup(self->prompt);
    GST_OBJECT_UNLOCK(self);
    g_mutex_lock(&self->lock);
    self->clip_state.n_frames = self->clip_state.n_clips = self->clip_state.n_partial = 0;
    self->clip_state.n_partial_dropped = self->clip_state.n_reset = 0;
    g_mutex_unlock(&self->lock);
    if (n > 0 && mgl_clip_check(self->model, 0, (int)n, prompt, &err) != MGL_OK) {
        GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS, ("clip-frames=%u does not fit the model's context.", n),
                          ("%s", err.msg));
        ok = FALSE;
    } else if (n > 0) {
        GST_INFO_OBJECT(self, "clip mode: %u frames a window (the model's context holds at most %d)", n,
                        mgl_clip_max_frames(self->model, 0, prompt));
    }
    g_free(prompt);
    return ok;
}

/* The request about the frames of @window (taken): the last frame's prompt
 * and settings, its PTS and index; the first frame's PTS starts the clip. */
static GstMgllavaJob* clip_job_new(GPtrArray* window) {
    GstMgllavaJob* first = g_ptr_array_index(window, 0);
    GstMgllavaJob* last = g_ptr_array_index(window, window->len - 1);
    GstMgllavaJob* job = g_new0(GstMgllavaJob, 1);

    job->width = last->width;
    job->height = last->height;
    job->prompt = g_strdup(last->prompt);
    job->gen = last->gen;
    job->pts = last->pts;
    job->frame = last->frame;
    job->t_sampled = last->t_sampled;
    job->clip = window;
    job->clip_start_pts = first->pts;
    return job;
}

static GPtrArray* window_new(void) { return g_ptr_array_new_with_free_func((GDestroyNotify)gst_mgllava_job_free); }

guint64 gst_mgllava_filter_clip_take(GstMgllavaFilter* self, GstMgllavaJob* frame, guint n, GstMgllavaAttachMode mode,
                                     GstMgllavaDropPolicy policy, guint max_pending) {
    GPtrArray* w;
    guint64 seq;

    if (frame->objects) { /* object-mode does not combine with clips: the frame counts as a whole */
        GST_DEBUG_OBJECT(self, "clip mode: the per-object questions of frame %" G_GUINT64_FORMAT " are not asked",
                         frame->frame);
        g_clear_pointer(&frame->objects, g_array_unref);
    }
    if (!self->clip_state.window) self->clip_state.window = window_new();
    w = self->clip_state.window;
    g_ptr_array_add(w, frame);
    g_mutex_lock(&self->lock);
    self->clip_state.n_frames++;
    g_mutex_unlock(&self->lock);
    if (w->len < n) return 0;
    self->clip_state.window = NULL;
    GST_DEBUG_OBJECT(self, "clip of %u frames, %" GST_TIME_FORMAT " to %" GST_TIME_FORMAT, w->len,
                     GST_TIME_ARGS(((GstMgllavaJob*)g_ptr_array_index(w, 0))->pts), GST_TIME_ARGS(frame->pts));
    seq = gst_mgllava_filter_submit(self, clip_job_new(w), mode, policy, max_pending);
    g_mutex_lock(&self->lock);
    self->clip_state.n_clips++;
    g_mutex_unlock(&self->lock);
    return seq;
}

void gst_mgllava_filter_clip_reset(GstMgllavaFilter* self) {
    GPtrArray* w = self->clip_state.window;

    self->clip_state.window = NULL;
    if (!w) return;
    if (w->len > 0) {
        GST_DEBUG_OBJECT(self, "clip window of %u frame(s) discarded (flush or new stream)", w->len);
        g_mutex_lock(&self->lock);
        /* the window was a request in the making: it ends as an aborted one */
        self->n_sampled++;
        self->n_aborted++;
        self->clip_state.n_reset++;
        g_mutex_unlock(&self->lock);
    }
    g_ptr_array_unref(w);
}

void gst_mgllava_filter_clip_eos(GstMgllavaFilter* self) {
    GPtrArray* w = self->clip_state.window;
    gboolean partial;
    guint max_pending;

    self->clip_state.window = NULL;
    if (!w) return;
    if (w->len == 0) {
        g_ptr_array_unref(w);
        return;
    }
    GST_OBJECT_LOCK(self);
    partial = self->clip.partial;
    max_pending = MAX(self->max_pending, 1);
    GST_OBJECT_UNLOCK(self);
    if (partial) {
        GST_DEBUG_OBJECT(self, "EOS: the partial clip window of %u frame(s) is answered", w->len);
        g_mutex_lock(&self->lock);
        self->clip_state.n_partial++;
        self->clip_state.n_clips++;
        g_mutex_unlock(&self->lock);
        /* never dropped at EOS: waits for a slot */
        gst_mgllava_filter_submit(self, clip_job_new(w), GST_MGLLAVA_ATTACH_EXACT, GST_MGLLAVA_DROP_BLOCK, max_pending);
    } else {
        GST_DEBUG_OBJECT(self, "EOS: the partial clip window of %u frame(s) is dropped (clip-partial=false)", w->len);
        g_mutex_lock(&self->lock);
        self->n_sampled++;
        self->n_dropped++;
        self->clip_state.n_partial_dropped++;
        g_mutex_unlock(&self->lock);
        g_ptr_array_unref(w);
    }
}

void gst_mgllava_filter_clip_clear(GstMgllavaFilter* self) {
    g_clear_pointer(&self->clip_state.window, g_ptr_array_unref);
}

MglStatus gst_mgllava_filter_clip_submit(GstMgllavaFilter* self, GstMgllavaJob* job, MglResultFunc done, uint64_t* id,
                                         MglErr* err) {
    guint n = job->clip->len, i;
    MglClipFrame* frames = g_new0(MglClipFrame, n);
    MglStatus st;

    for (i = 0; i < n; i++) {
        const GstMgllavaJob* f = g_ptr_array_index(job->clip, i);

        frames[i].image.data = f->rgb;
        frames[i].image.width = f->width;
        frames[i].image.height = f->height;
        frames[i].image.stride = f->width * 3;
        frames[i].boxes = (const MglBox*)(gconstpointer)f->boxes->data;
        frames[i].n_boxes = f->boxes->len;
    }
    st = mgl_stream_submit_clip(self->stream, frames, n, job->prompt, &job->gen, done, self, id, err);
    g_free(frames);
    return st;
}

void gst_mgllava_filter_clip_result(const GstMgllavaJob* job, GstMgllavaResult* r) {
    r->fields.clip_frames = job->clip->len;
    r->fields.clip_start_pts = job->clip_start_pts;
    r->fields.clip_end_pts = job->pts;
}

void gst_mgllava_filter_clip_add_stats(GstMgllavaFilter* self, GstStructure* s) {
    const GstMgllavaClipState* c = &self->clip_state;

    gst_structure_set(s, "clip-frames-gathered", G_TYPE_UINT64, c->n_frames, "clips", G_TYPE_UINT64, c->n_clips,
                      "clip-partial", G_TYPE_UINT64, c->n_partial, "clip-partial-dropped", G_TYPE_UINT64,
                      c->n_partial_dropped, "clip-reset", G_TYPE_UINT64, c->n_reset, NULL);
}
