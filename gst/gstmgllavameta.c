/* gstmgllavameta.c: GstMgllavaResultMeta. Tagged "video" only (it holds no
 * coordinates), so videoconvert, videoscale and tee copy it. */
#include "gstmgllavameta.h"

#include <gst/video/video.h>
#include <string.h>

static gboolean gst_mgllava_result_meta_init(GstMeta* meta, gpointer params, GstBuffer* buffer) {
    GstMgllavaResultMeta* m = (GstMgllavaResultMeta*)meta;

    m->text = NULL;
    m->prompt = NULL;
    m->source_pts = GST_CLOCK_TIME_NONE;
    m->source_frame = 0;
    m->n_tokens = 0;
    m->n_objects = 0;
    m->latency_ms = m->preprocess_ms = m->vision_ms = m->prefill_ms = m->decode_ms = 0.0;
    m->json = NULL;
    m->constraint = NULL;
    m->object_id = 0;
    m->object_label = NULL;
    m->object_x = m->object_y = m->object_w = m->object_h = 0;
    m->clip_frames = 0;
    m->clip_start_pts = m->clip_end_pts = GST_CLOCK_TIME_NONE;
    return TRUE;
}

static void gst_mgllava_result_meta_free(GstMeta* meta, GstBuffer* buffer) {
    GstMgllavaResultMeta* m = (GstMgllavaResultMeta*)meta;

    g_free(m->text);
    g_free(m->prompt);
    g_free(m->json);
    g_free(m->constraint);
    g_free(m->object_label);
}

static gboolean gst_mgllava_result_meta_transform(GstBuffer* dest, GstMeta* meta, GstBuffer* buffer, GQuark type,
                                                  gpointer data) {
    GstMgllavaResultMeta* src = (GstMgllavaResultMeta*)meta;
    GstMgllavaResultMeta* dst;

    /* the answer is about the whole frame: copies, scaling and conversions keep it */
    if (!GST_META_TRANSFORM_IS_COPY(type) && type != gst_video_meta_transform_scale_get_quark()) return FALSE;

    dst = gst_buffer_add_mgllava_result_meta_full(dest, src);
    if (dst) gst_mgllava_result_meta_set_constraint(dst, src->json, src->constraint);
    /* a per-object box is in the source frame's pixels: kept as it is (the
     * ROI metas carry the scaled boxes) */
    if (dst)
        gst_mgllava_result_meta_set_object(dst, src->object_id, src->object_label, src->object_x, src->object_y,
                                           src->object_w, src->object_h);
    if (dst) gst_mgllava_result_meta_set_clip(dst, src->clip_frames, src->clip_start_pts, src->clip_end_pts);
    return dst != NULL;
}

GType gst_mgllava_result_meta_api_get_type(void) {
    static GType type = 0;
    static const gchar* tags[] = {GST_META_TAG_VIDEO_STR, NULL};

    if (g_once_init_enter(&type)) {
        GType t = gst_meta_api_type_register("GstMgllavaResultMetaAPI", tags);
        g_once_init_leave(&type, t);
    }
    return type;
}

const GstMetaInfo* gst_mgllava_result_meta_get_info(void) {
    static const GstMetaInfo* info = NULL;

    if (g_once_init_enter((GstMetaInfo**)&info)) {
        const GstMetaInfo* mi = gst_meta_register(GST_MGLLAVA_RESULT_META_API_TYPE, "GstMgllavaResultMeta",
                                                  sizeof(GstMgllavaResultMeta), gst_mgllava_result_meta_init,
                                                  gst_mgllava_result_meta_free, gst_mgllava_result_meta_transform);
        g_once_init_leave((GstMetaInfo**)&info, (GstMetaInfo*)mi);
    }
    return info;
}

GstMgllavaResultMeta* gst_buffer_add_mgllava_result_meta(GstBuffer* buffer, const gchar* text, const gchar* prompt,
                                                         GstClockTime source_pts, guint64 source_frame) {
    GstMgllavaResultMeta fields;

    memset(&fields, 0, sizeof fields);
    fields.text = (gchar*)text;
    fields.prompt = (gchar*)prompt;
    fields.source_pts = source_pts;
    fields.source_frame = source_frame;
    return gst_buffer_add_mgllava_result_meta_full(buffer, &fields);
}

/* The one place a result's fields are copied (those up to decode_ms: @fields
 * may be a struct of a program built before json and constraint existed). */
GstMgllavaResultMeta* gst_buffer_add_mgllava_result_meta_full(GstBuffer* buffer, const GstMgllavaResultMeta* fields) {
    GstMgllavaResultMeta* m;

    g_return_val_if_fail(GST_IS_BUFFER(buffer), NULL);
    g_return_val_if_fail(gst_buffer_is_writable(buffer), NULL);
    g_return_val_if_fail(fields != NULL, NULL);

    m = (GstMgllavaResultMeta*)gst_buffer_add_meta(buffer, GST_MGLLAVA_RESULT_META_INFO, NULL);
    if (!m) return NULL;
    m->text = g_strdup(fields->text ? fields->text : "");
    m->prompt = g_strdup(fields->prompt ? fields->prompt : "");
    m->source_pts = fields->source_pts;
    m->source_frame = fields->source_frame;
    m->n_tokens = fields->n_tokens;
    m->n_objects = fields->n_objects;
    m->latency_ms = fields->latency_ms;
    m->preprocess_ms = fields->preprocess_ms;
    m->vision_ms = fields->vision_ms;
    m->prefill_ms = fields->prefill_ms;
    m->decode_ms = fields->decode_ms;
    return m;
}

void gst_mgllava_result_meta_set_constraint(GstMgllavaResultMeta* meta, const gchar* json, const gchar* constraint) {
    gchar *j, *c;

    g_return_if_fail(meta != NULL);
    j = g_strdup(json);
    c = g_strdup(constraint);
    g_free(meta->json);
    g_free(meta->constraint);
    meta->json = j;
    meta->constraint = c;
}

void gst_mgllava_result_meta_set_object(GstMgllavaResultMeta* meta, gint id, const gchar* label, gint x, gint y, gint w,
                                        gint h) {
    gchar* l;

    g_return_if_fail(meta != NULL);
    l = g_strdup(label);
    g_free(meta->object_label);
    meta->object_label = l;
    meta->object_id = id;
    meta->object_x = x;
    meta->object_y = y;
    meta->object_w = w;
    meta->object_h = h;
}

void gst_mgllava_result_meta_set_clip(GstMgllavaResultMeta* meta, guint n_frames, GstClockTime start_pts,
                                      GstClockTime end_pts) {
    g_return_if_fail(meta != NULL);
    meta->clip_frames = n_frames;
    meta->clip_start_pts = start_pts;
    meta->clip_end_pts = end_pts;
}

GstMgllavaResultMeta* gst_buffer_get_mgllava_result_meta(GstBuffer* buffer) {
    return (GstMgllavaResultMeta*)gst_buffer_get_meta(buffer, GST_MGLLAVA_RESULT_META_API_TYPE);
}

GstMgllavaResultMeta* gst_buffer_iterate_mgllava_result_meta(GstBuffer* buffer, gpointer* state) {
    return (GstMgllavaResultMeta*)gst_buffer_iterate_meta_filtered(buffer, state, GST_MGLLAVA_RESULT_META_API_TYPE);
}

GstStructure* gst_mgllava_result_meta_to_structure(const GstMgllavaResultMeta* m) {
    GstStructure* s = gst_structure_new(
        "mgllava-result", "text", G_TYPE_STRING, m->text, "prompt", G_TYPE_STRING, m->prompt, "source-pts",
        G_TYPE_UINT64, (guint64)m->source_pts, "source-frame", G_TYPE_UINT64, m->source_frame, "n-tokens", G_TYPE_UINT,
        m->n_tokens, "n-objects", G_TYPE_UINT, m->n_objects, "latency-ms", G_TYPE_DOUBLE, m->latency_ms,
        "preprocess-ms", G_TYPE_DOUBLE, m->preprocess_ms, "vision-ms", G_TYPE_DOUBLE, m->vision_ms, "prefill-ms",
        G_TYPE_DOUBLE, m->prefill_ms, "decode-ms", G_TYPE_DOUBLE, m->decode_ms, NULL);
    if (m->json) gst_structure_set(s, "json", G_TYPE_STRING, m->json, NULL);
    if (m->constraint) gst_structure_set(s, "constraint", G_TYPE_STRING, m->constraint, NULL);
    if (m->object_id != 0)
        gst_structure_set(s, "object-id", G_TYPE_INT, m->object_id, "object-label", G_TYPE_STRING,
                          m->object_label ? m->object_label : "", "object-x", G_TYPE_INT, m->object_x, "object-y",
                          G_TYPE_INT, m->object_y, "object-w", G_TYPE_INT, m->object_w, "object-h", G_TYPE_INT,
                          m->object_h, NULL);
    if (m->clip_frames > 0)
        gst_structure_set(s, "clip-frames", G_TYPE_UINT, m->clip_frames, "clip-start-pts", G_TYPE_UINT64,
                          (guint64)m->clip_start_pts, "clip-end-pts", G_TYPE_UINT64, (guint64)m->clip_end_pts, NULL);
    return s;
}

gboolean gst_mgllava_result_structure_get_clip(const GstStructure* s, guint* n_frames, GstClockTime* start_pts,
                                               GstClockTime* end_pts) {
    guint n = 0;
    guint64 a = GST_CLOCK_TIME_NONE, b = GST_CLOCK_TIME_NONE;
    gboolean ok = s && gst_structure_has_name(s, "mgllava-result") && gst_structure_get_uint(s, "clip-frames", &n);

    if (ok) {
        gst_structure_get_uint64(s, "clip-start-pts", &a);
        gst_structure_get_uint64(s, "clip-end-pts", &b);
    }
    if (n_frames) *n_frames = ok ? n : 0;
    if (start_pts) *start_pts = ok ? a : GST_CLOCK_TIME_NONE;
    if (end_pts) *end_pts = ok ? b : GST_CLOCK_TIME_NONE;
    return ok;
}

gboolean gst_mgllava_result_meta_from_structure(const GstStructure* s, GstMgllavaResultMeta* f) {
    guint64 pts = GST_CLOCK_TIME_NONE;

    g_return_val_if_fail(f != NULL, FALSE);
    /* only the fields every version of the struct has */
    memset(f, 0, G_STRUCT_OFFSET(GstMgllavaResultMeta, json));
    f->source_pts = GST_CLOCK_TIME_NONE;
    if (!s || !gst_structure_has_name(s, "mgllava-result")) return FALSE;
    f->text = (gchar*)gst_structure_get_string(s, "text");
    f->prompt = (gchar*)gst_structure_get_string(s, "prompt");
    if (!f->text) f->text = (gchar*)"";
    if (!f->prompt) f->prompt = (gchar*)"";
    gst_structure_get_uint64(s, "source-pts", &pts);
    f->source_pts = pts;
    gst_structure_get_uint64(s, "source-frame", &f->source_frame);
    gst_structure_get_uint(s, "n-tokens", &f->n_tokens);
    gst_structure_get_uint(s, "n-objects", &f->n_objects);
    gst_structure_get_double(s, "latency-ms", &f->latency_ms);
    gst_structure_get_double(s, "preprocess-ms", &f->preprocess_ms);
    gst_structure_get_double(s, "vision-ms", &f->vision_ms);
    gst_structure_get_double(s, "prefill-ms", &f->prefill_ms);
    gst_structure_get_double(s, "decode-ms", &f->decode_ms);
    return TRUE;
}

gboolean gst_mgllava_result_structure_get_constraint(const GstStructure* s, const gchar** json,
                                                     const gchar** constraint) {
    if (json) *json = NULL;
    if (constraint) *constraint = NULL;
    if (!s || !gst_structure_has_name(s, "mgllava-result")) return FALSE;
    if (json) *json = gst_structure_get_string(s, "json");
    if (constraint) *constraint = gst_structure_get_string(s, "constraint");
    return TRUE;
}

gboolean gst_mgllava_result_structure_get_object(const GstStructure* s, gint* id, const gchar** label, gint* x, gint* y,
                                                 gint* w, gint* h) {
    gint v[5] = {0, 0, 0, 0, 0};
    gboolean ok =
        s && gst_structure_has_name(s, "mgllava-result") && gst_structure_get_int(s, "object-id", &v[0]) && v[0] != 0;

    if (ok) {
        gst_structure_get_int(s, "object-x", &v[1]);
        gst_structure_get_int(s, "object-y", &v[2]);
        gst_structure_get_int(s, "object-w", &v[3]);
        gst_structure_get_int(s, "object-h", &v[4]);
    } else {
        v[0] = 0;
    }
    if (id) *id = v[0];
    if (label) *label = ok ? gst_structure_get_string(s, "object-label") : NULL;
    if (x) *x = v[1];
    if (y) *y = v[2];
    if (w) *w = v[3];
    if (h) *h = v[4];
    return ok;
}

GstEvent* gst_mgllava_late_results_event_new(const GstMgllavaResultMeta* const* results, guint n) {
    GValue arr = G_VALUE_INIT;
    GstStructure* s;
    guint i;

    g_value_init(&arr, GST_TYPE_ARRAY);
    for (i = 0; i < n; i++) {
        GValue v = G_VALUE_INIT;

        g_value_init(&v, GST_TYPE_STRUCTURE);
        g_value_take_boxed(&v, gst_mgllava_result_meta_to_structure(results[i]));
        gst_value_array_append_and_take_value(&arr, &v);
    }
    s = gst_structure_new_empty(GST_MGLLAVA_LATE_RESULTS_EVENT);
    gst_structure_take_value(s, "results", &arr);
    return gst_event_new_custom(GST_EVENT_CUSTOM_DOWNSTREAM, s);
}

static const GValue* gst_mgllava_late_results(GstEvent* event) {
    const GstStructure* s;
    const GValue* v;

    if (!event || GST_EVENT_TYPE(event) != GST_EVENT_CUSTOM_DOWNSTREAM) return NULL;
    s = gst_event_get_structure(event);
    if (!s || !gst_structure_has_name(s, GST_MGLLAVA_LATE_RESULTS_EVENT)) return NULL;
    v = gst_structure_get_value(s, "results");
    return v && GST_VALUE_HOLDS_ARRAY(v) ? v : NULL;
}

guint gst_mgllava_late_results_event_get_size(GstEvent* event) {
    const GValue* v = gst_mgllava_late_results(event);

    return v ? gst_value_array_get_size(v) : 0;
}

const GstStructure* gst_mgllava_late_results_event_get_structure(GstEvent* event, guint index) {
    const GValue *v = gst_mgllava_late_results(event), *e;

    if (!v || index >= gst_value_array_get_size(v)) return NULL;
    e = gst_value_array_get_value(v, index);
    return GST_VALUE_HOLDS_STRUCTURE(e) ? gst_value_get_structure(e) : NULL;
}

gboolean gst_mgllava_late_results_event_get(GstEvent* event, guint index, GstMgllavaResultMeta* fields) {
    const GstStructure* s = gst_mgllava_late_results_event_get_structure(event, index);

    return s ? gst_mgllava_result_meta_from_structure(s, fields) : FALSE;
}
