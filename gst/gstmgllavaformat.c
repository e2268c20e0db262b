/* gstmgllavaformat.c: see gstmgllavaformat.h. */
#include "gstmgllavaformat.h"
#include "gstmgllavameta.h"
#include "gstmgllavaroi.h"
#include "gstmgllavatrigger.h"
#include "mgl-json.h"

#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>

GType gst_mgllava_format_get_type(void) {
    static GType type = 0;
    static const GEnumValue values[] = {
        {GST_MGLLAVA_FORMAT_MGLLAVA, "The project's schema (docs/mgllava-frame.schema.json)", "mgllava"},
        {GST_MGLLAVA_FORMAT_DLSTREAMER, "DL Streamer gvametaconvert layout (docs/dlstreamer-frame.schema.json)",
         "dlstreamer"},
        {0, NULL, NULL},
    };

    if (g_once_init_enter(&type)) {
        GType t = g_enum_register_static("GstMgllavaFormat", values);
        g_once_init_leave(&type, t);
    }
    return type;
}

void gst_mgllava_format_settings_copy(GstMgllavaFormatSettings* dst, const GstMgllavaFormatSettings* src) {
    dst->format = src->format;
    dst->timings = src->timings;
    dst->source = g_strdup(src->source);
    dst->tags = g_strdup(src->tags);
}

void gst_mgllava_format_settings_clear(GstMgllavaFormatSettings* s) {
    g_clear_pointer(&s->source, g_free);
    g_clear_pointer(&s->tags, g_free);
}

gboolean gst_mgllava_format_tags_valid(const gchar* tags) {
    JsonParser* p;
    gboolean ok;

    if (tags == NULL || *tags == '\0') return TRUE;
    if (!mgl_json_depth_ok(tags, strlen(tags))) return FALSE;
    p = json_parser_new();
    ok = json_parser_load_from_data(p, tags, -1, NULL) && json_parser_get_root(p) != NULL &&
         JSON_NODE_HOLDS_OBJECT(json_parser_get_root(p));
    g_object_unref(p);
    return ok;
}

static void append_time(GString* s, GstClockTime t) {
    if (GST_CLOCK_TIME_IS_VALID(t))
        g_string_append_printf(s, "%" G_GUINT64_FORMAT, (guint64)t);
    else
        g_string_append(s, "null");
}

static void append_double(GString* s, const gchar* fmt, gdouble v) {
    gchar num[G_ASCII_DTOSTR_BUF_SIZE];

    if (!isfinite(v)) v = 0.0;
    g_string_append(s, g_ascii_formatd(num, sizeof num, fmt, v));
}

/* Tags as given (validated when the property was set), without the
 * surrounding whitespace. */
static void append_tags(GString* s, const gchar* tags) {
    gchar* t = g_strstrip(g_strdup(tags));

    g_string_append(s, t);
    g_free(t);
}

static gboolean have_tags(const GstMgllavaFormatSettings* st) { return st->tags && *st->tags; }

/* A constrained answer's JSON embedded as a value (not as an escaped
 * string), written again by json-glib so that the line stays valid JSON
 * whatever the field holds; null when it does not parse. */
static void append_json_value(GString* s, const gchar* json) {
    JsonNode* node = json ? json_from_string(json, NULL) : NULL;
    gchar* out;

    if (!node) {
        g_string_append(s, "null");
        return;
    }
    out = json_to_string(node, FALSE);
    g_string_append(s, out);
    g_free(out);
    json_node_unref(node);
}

/* "answer" (the parsed object) and "constraint" of an answer constrained by
 * a schema or grammar; nothing for a free-text answer. */
static void append_constraint(GString* s, const GstMgllavaResultMeta* m) {
    if (!m->constraint) return;
    g_string_append(s, ", \"constraint\": ");
    mgl_json_append_string(s, m->constraint);
    g_string_append(s, ", \"answer\": ");
    append_json_value(s, m->json);
}

/* "object" of a per-object answer (mgllavafilter object-mode): the track id,
 * label and box (source frame pixels) of the object it is about. */
static void append_answer_object(GString* s, const GstMgllavaResultMeta* m) {
    if (m->object_id == 0) return;
    g_string_append_printf(s, ", \"object\": {\"id\": %d, \"label\": ", m->object_id);
    mgl_json_append_string(s, m->object_label ? m->object_label : "");
    g_string_append_printf(s, ", \"x\": %d, \"y\": %d, \"w\": %d, \"h\": %d}", m->object_x, m->object_y, m->object_w,
                           m->object_h);
}

/* "clip" of an answer about a clip (mgllavafilter clip-frames): its frames
 * and the PTS of the window's first and last frame. */
static void append_answer_clip(GString* s, const GstMgllavaResultMeta* m) {
    if (m->clip_frames == 0) return;
    g_string_append_printf(s, ", \"clip\": {\"frames\": %u, \"start_pts\": ", m->clip_frames);
    append_time(s, m->clip_start_pts);
    g_string_append(s, ", \"end_pts\": ");
    append_time(s, m->clip_end_pts);
    g_string_append_c(s, '}');
}

/* The answers about the whole frame among @r (per-object ones are on their
 * objects); returns how many went to @out. */
static guint frame_answers_only(const GstMgllavaResultMeta* const* r, guint n, const GstMgllavaResultMeta** out) {
    guint i, k = 0;

    for (i = 0; i < n; i++)
        if (r[i]->object_id == 0) out[k++] = r[i];
    return k;
}

/* The same for a per-object answer's ROI param structure (its "constraint"
 * and "json" fields, set under response-schema/response-grammar). */
static void append_param_constraint(GString* s, const GstStructure* p) {
    GstMgllavaResultMeta m = {.constraint = (gchar*)gst_structure_get_string(p, "constraint"),
                              .json = (gchar*)gst_structure_get_string(p, "json")};

    append_constraint(s, &m);
}

/* One answer, in the mgllava layout (also the elements of the dlstreamer
 * layout's "mgllava.results"). */
static void append_result(GString* s, const GstMgllavaFormatSettings* st, const GstMgllavaResultMeta* m,
                          gboolean comma) {
    g_string_append(s, comma ? ", {\"text\": " : "{\"text\": ");
    mgl_json_append_string(s, m->text ? m->text : "");
    g_string_append(s, ", \"prompt\": ");
    mgl_json_append_string(s, m->prompt ? m->prompt : "");
    append_constraint(s, m);
    append_answer_object(s, m);
    append_answer_clip(s, m);
    g_string_append(s, ", \"source_pts\": ");
    append_time(s, m->source_pts);
    g_string_append_printf(
        s, ", \"source_frame\": %" G_GUINT64_FORMAT ", \"n_tokens\": %u, \"n_objects\": %u, \"latency_ms\": ",
        m->source_frame, m->n_tokens, m->n_objects);
    append_double(s, "%.1f", m->latency_ms);
    if (st->timings) {
        g_string_append(s, ", \"timings_ms\": {\"preprocess\": ");
        append_double(s, "%.3f", m->preprocess_ms);
        g_string_append(s, ", \"vision\": ");
        append_double(s, "%.3f", m->vision_ms);
        g_string_append(s, ", \"prefill\": ");
        append_double(s, "%.3f", m->prefill_ms);
        g_string_append(s, ", \"decode\": ");
        append_double(s, "%.3f", m->decode_ms);
        g_string_append_c(s, '}');
    }
    g_string_append_c(s, '}');
}

/* The answers as DL Streamer writes a full-frame classification: one object
 * covering the frame, each answer an attribute {"label", "model"}; the first
 * is "mgllava", later ones "mgllava_2", "mgllava_3", ... */
static void append_frame_answers(GString* s, const GstMgllavaResultMeta* const* r, guint n, gint w, gint h,
                                 gboolean comma) {
    guint i;

    if (n == 0) return;
    g_string_append_printf(s, "%s{\"x\": 0, \"y\": 0, \"w\": %d, \"h\": %d", comma ? ", " : "", w, h);
    for (i = 0; i < n; i++) {
        if (i == 0)
            g_string_append(s, ", \"mgllava\": {\"label\": ");
        else
            g_string_append_printf(s, ", \"mgllava_%u\": {\"label\": ", i + 1);
        mgl_json_append_string(s, r[i]->text ? r[i]->text : "");
        append_constraint(s, r[i]);
        g_string_append(s, ", \"model\": {\"name\": \"mgllava\"}}");
    }
    g_string_append_c(s, '}');
}

static void append_extension(GString* s, const GstMgllavaFormatSettings* st, const GstMgllavaResultMeta* const* r,
                             guint n, gboolean have_frame, guint64 frame, GstClockTime pts) {
    guint i;

    g_string_append(s, ", \"mgllava\": {\"frame\": ");
    if (have_frame)
        g_string_append_printf(s, "%" G_GUINT64_FORMAT, frame);
    else
        g_string_append(s, "null");
    g_string_append(s, ", \"pts\": ");
    append_time(s, pts);
    g_string_append(s, ", \"results\": [");
    for (i = 0; i < n; i++) append_result(s, st, r[i], i > 0);
    g_string_append(s, "]}");
}

static void append_dls_header(GString* s, const GstMgllavaFormatSettings* st, GstClockTime timestamp, gint w, gint h) {
    g_string_append_c(s, '{');
    if (GST_CLOCK_TIME_IS_VALID(timestamp))
        g_string_append_printf(s, "\"timestamp\": %" G_GUINT64_FORMAT ", ", (guint64)timestamp);
    g_string_append_printf(s, "\"resolution\": {\"width\": %d, \"height\": %d}", w, h);
    if (st->source) {
        g_string_append(s, ", \"source\": ");
        mgl_json_append_string(s, st->source);
    }
    if (have_tags(st)) {
        g_string_append(s, ", \"tags\": ");
        append_tags(s, st->tags);
    }
}

/* One ROI meta as gvametaconvert writes an object. Returns TRUE when written. */
static void append_dls_object(GString* s, GstVideoRegionOfInterestMeta* roi, guint region_id, gint w, gint h,
                              gboolean comma) {
    const gchar* label = roi->roi_type ? g_quark_to_string(roi->roi_type) : NULL;
    GstStructure* det = gst_video_region_of_interest_meta_get_param(roi, "detection");
    gdouble x1, y1, x2, y2, conf;
    gboolean have_conf;
    gint track = gst_mgllava_roi_meta_get_track_id(roi), label_id;
    GList* l;

    g_string_append_printf(s,
                           "%s{\"x\": %u, \"y\": %u, \"w\": %u, \"h\": %u, "
                           "\"region_id\": %u",
                           comma ? ", " : "", roi->x, roi->y, roi->w, roi->h, region_id);
    if (track != 0) g_string_append_printf(s, ", \"id\": %d", track);
    if (label && *label) {
        g_string_append(s, ", \"roi_type\": ");
        mgl_json_append_string(s, label);
    }

    /* normalised box: the detector's own when it wrote one (as gvadetect and
     * mgllavablobdetect do), else the pixel box over the frame, clipped */
    if (!(det && gst_structure_get_double(det, "x_min", &x1) && gst_structure_get_double(det, "y_min", &y1) &&
          gst_structure_get_double(det, "x_max", &x2) && gst_structure_get_double(det, "y_max", &y2))) {
        gdouble fw = w > 0 ? w : 1, fh = h > 0 ? h : 1;
        x1 = roi->x / fw;
        y1 = roi->y / fh;
        x2 = (roi->x + (gdouble)roi->w) / fw;
        y2 = (roi->y + (gdouble)roi->h) / fh;
    }
    x1 = CLAMP(x1, 0.0, 1.0);
    y1 = CLAMP(y1, 0.0, 1.0);
    x2 = CLAMP(x2, 0.0, 1.0);
    y2 = CLAMP(y2, 0.0, 1.0);
    g_string_append(s, ", \"detection\": {\"bounding_box\": {\"x_min\": ");
    append_double(s, "%.6g", x1);
    g_string_append(s, ", \"y_min\": ");
    append_double(s, "%.6g", y1);
    g_string_append(s, ", \"x_max\": ");
    append_double(s, "%.6g", x2);
    g_string_append(s, ", \"y_max\": ");
    append_double(s, "%.6g", y2);
    g_string_append_c(s, '}');
    have_conf = gst_mgllava_roi_meta_get_confidence(roi, &conf);
    if (have_conf) {
        g_string_append(s, ", \"confidence\": ");
        append_double(s, "%.6g", conf);
    }
    if (det && gst_structure_get_int(det, "label_id", &label_id))
        g_string_append_printf(s, ", \"label_id\": %d", label_id);
    if (label && *label) {
        g_string_append(s, ", \"label\": ");
        mgl_json_append_string(s, label);
    }
    g_string_append_c(s, '}');

    /* classification results on the ROI (a classifier's, or a per-object
     * answer): every other param with a "label" and a "model_name", under its
     * "attribute_name" (else the structure's name), as gvametaconvert does */
    for (l = roi->params; l; l = l->next) {
        GstStructure* p = l->data;
        const gchar *name = gst_structure_get_name(p), *plabel, *model, *attr;
        gdouble c;
        gint lid;

        if (g_str_equal(name, "detection") || g_str_equal(name, "object_id")) continue;
        plabel = gst_structure_get_string(p, "label");
        model = gst_structure_get_string(p, "model_name");
        if (!plabel || !model) continue;
        attr = gst_structure_get_string(p, "attribute_name");
        if (!attr || !*attr) attr = name;
        if (g_str_equal(attr, "detection") || g_str_equal(attr, "x") || g_str_equal(attr, "y") ||
            g_str_equal(attr, "w") || g_str_equal(attr, "h") || g_str_equal(attr, "id") ||
            g_str_equal(attr, "region_id") || g_str_equal(attr, "roi_type"))
            continue;
        g_string_append(s, ", ");
        mgl_json_append_string(s, attr);
        g_string_append(s, ": {\"label\": ");
        mgl_json_append_string(s, plabel);
        g_string_append(s, ", \"model\": {\"name\": ");
        mgl_json_append_string(s, model);
        g_string_append_c(s, '}');
        if (gst_structure_get_double(p, "confidence", &c)) {
            g_string_append(s, ", \"confidence\": ");
            append_double(s, "%.6g", c);
        }
        if (gst_structure_get_int(p, "label_id", &lid)) g_string_append_printf(s, ", \"label_id\": %d", lid);
        append_param_constraint(s, p);
        g_string_append_c(s, '}');
    }
    g_string_append_c(s, '}');
}

static guint format_dlstreamer(GString* s, const GstMgllavaFormatSettings* st, GstBuffer* buf, gint w, gint h,
                               const GstSegment* segment, guint64 frame) {
    GPtrArray* results = g_ptr_array_new();
    GstMgllavaResultMeta* m;
    GstMeta* meta;
    gpointer state = NULL;
    GstClockTime ts = GST_BUFFER_PTS(buf);
    guint n_roi = 0, n;

    if (segment && segment->format == GST_FORMAT_TIME && GST_CLOCK_TIME_IS_VALID(ts))
        ts = gst_segment_to_stream_time(segment, GST_FORMAT_TIME, ts);
    while ((m = gst_buffer_iterate_mgllava_result_meta(buf, &state))) g_ptr_array_add(results, m);
    n = results->len;

    append_dls_header(s, st, ts, w, h);
    state = NULL;
    while ((meta = gst_buffer_iterate_meta_filtered(buf, &state, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))) {
        if (n_roi == 0) g_string_append(s, ", \"objects\": [");
        append_dls_object(s, (GstVideoRegionOfInterestMeta*)meta, n_roi, w, h, n_roi > 0);
        n_roi++;
    }
    {
        const GstMgllavaResultMeta** fa = g_new0(const GstMgllavaResultMeta*, n + 1);
        guint nf = frame_answers_only((const GstMgllavaResultMeta* const*)results->pdata, n, fa);

        if (nf > 0) {
            if (n_roi == 0) g_string_append(s, ", \"objects\": [");
            append_frame_answers(s, fa, nf, w, h, n_roi > 0);
        }
        if (n_roi > 0 || nf > 0) g_string_append_c(s, ']');
        g_free(fa);
    }
    append_extension(s, st, (const GstMgllavaResultMeta* const*)results->pdata, n, TRUE, frame, GST_BUFFER_PTS(buf));
    g_string_append(s, "}\n");
    g_ptr_array_free(results, TRUE);
    return n;
}

static void append_mgllava_trailer(GString* s, const GstMgllavaFormatSettings* st) {
    if (st->source) {
        g_string_append(s, ", \"source\": ");
        mgl_json_append_string(s, st->source);
    }
    if (have_tags(st)) {
        g_string_append(s, ", \"tags\": ");
        append_tags(s, st->tags);
    }
    g_string_append(s, "}\n");
}

/* The ROI meta of @buf that gst_mgllava_roi_collect() made box @b of: the
 * label is that meta's own string, the box its clipped corner. */
static GstVideoRegionOfInterestMeta* roi_of_box(GstBuffer* buf, const MglBox* b) {
    GstMeta* meta;
    gpointer state = NULL;

    while ((meta = gst_buffer_iterate_meta_filtered(buf, &state, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))) {
        GstVideoRegionOfInterestMeta* roi = (GstVideoRegionOfInterestMeta*)meta;

        if (gst_mgllava_roi_meta_get_label(roi) == b->label && fabs(b->x1 - (gdouble)roi->x) < 0.5 &&
            fabs(b->y1 - (gdouble)roi->y) < 0.5)
            return roi;
    }
    return NULL;
}

/* An object's track id ("id", when it has one) and the per-object answers on
 * its ROI meta ("answers": each mgllava-answer param, in the order added). */
static void append_track_and_answers(GString* s, GstBuffer* buf, const MglBox* b) {
    GstVideoRegionOfInterestMeta* roi = roi_of_box(buf, b);
    gint id;
    guint n = 0;
    GList* l;

    if (!roi) return;
    id = gst_mgllava_roi_meta_get_track_id(roi);
    if (id != 0) g_string_append_printf(s, ", \"id\": %d", id);
    for (l = roi->params; l; l = l->next) {
        GstStructure* p = l->data;
        guint64 frame = 0;

        if (!gst_structure_has_name(p, GST_MGLLAVA_OBJECT_ANSWER_PARAM)) continue;
        g_string_append(s, n++ ? ", {\"text\": " : ", \"answers\": [{\"text\": ");
        mgl_json_append_string(s, gst_structure_get_string(p, "text") ? gst_structure_get_string(p, "text") : "");
        g_string_append(s, ", \"prompt\": ");
        mgl_json_append_string(s, gst_structure_get_string(p, "prompt") ? gst_structure_get_string(p, "prompt") : "");
        g_string_append(s, ", \"attribute\": ");
        mgl_json_append_string(
            s, gst_structure_get_string(p, "attribute_name") ? gst_structure_get_string(p, "attribute_name") : "");
        append_param_constraint(s, p);
        gst_structure_get_uint64(p, "source_frame", &frame);
        g_string_append_printf(s, ", \"source_frame\": %" G_GUINT64_FORMAT "}", frame);
    }
    if (n > 0) g_string_append_c(s, ']');
}

static guint format_mgllava(GString* s, const GstMgllavaFormatSettings* st, GstBuffer* buf, gint w, gint h,
                            guint64 frame) {
    GArray* boxes = g_array_new(FALSE, FALSE, sizeof(MglBox));
    GstMgllavaResultMeta* m;
    gpointer state = NULL;
    guint i, n = 0;

    g_string_append(s, "{\"pts\": ");
    append_time(s, GST_BUFFER_PTS(buf));
    g_string_append_printf(s, ", \"frame\": %" G_GUINT64_FORMAT ", \"width\": %d, \"height\": %d, \"objects\": [",
                           frame, w, h);
    gst_mgllava_roi_collect(buf, w > 0 ? w : G_MAXINT, h > 0 ? h : G_MAXINT, NULL, boxes);
    for (i = 0; i < boxes->len; i++) {
        const MglBox* b = &g_array_index(boxes, MglBox, i);

        g_string_append_printf(s,
                               "%s{\"x\": %d, \"y\": %d, \"w\": %d, \"h\": %d, "
                               "\"label\": ",
                               i ? ", " : "", (gint)b->x1, (gint)b->y1, (gint)(b->x2 - b->x1), (gint)(b->y2 - b->y1));
        mgl_json_append_string(s, b->label);
        g_string_append(s, ", \"confidence\": ");
        append_double(s, "%.4g", b->score);
        append_track_and_answers(s, buf, b);
        g_string_append_c(s, '}');
    }
    g_string_append(s, "], \"results\": [");
    while ((m = gst_buffer_iterate_mgllava_result_meta(buf, &state))) append_result(s, st, m, n++ > 0);
    g_string_append_c(s, ']');
    append_mgllava_trailer(s, st);
    g_array_unref(boxes);
    return n;
}

guint gst_mgllava_format_buffer(GString* s, const GstMgllavaFormatSettings* st, GstBuffer* buf,
                                const GstVideoInfo* info, const GstSegment* segment, guint64 frame) {
    gint w = info ? GST_VIDEO_INFO_WIDTH(info) : 0;
    gint h = info ? GST_VIDEO_INFO_HEIGHT(info) : 0;

    g_string_truncate(s, 0);
    if (st->format == GST_MGLLAVA_FORMAT_DLSTREAMER) return format_dlstreamer(s, st, buf, w, h, segment, frame);
    return format_mgllava(s, st, buf, w, h, frame);
}

guint gst_mgllava_format_late_results(GString* s, const GstMgllavaFormatSettings* st, GstEvent* event,
                                      const GstVideoInfo* info) {
    guint n = gst_mgllava_late_results_event_get_size(event), i, k = 0;
    gint w = info ? GST_VIDEO_INFO_WIDTH(info) : 0;
    gint h = info ? GST_VIDEO_INFO_HEIGHT(info) : 0;
    GstMgllavaResultMeta* fields;
    const GstMgllavaResultMeta** ptrs;

    g_string_truncate(s, 0);
    if (n == 0) return 0;
    fields = g_new0(GstMgllavaResultMeta, n);
    ptrs = g_new0(const GstMgllavaResultMeta*, n);
    for (i = 0; i < n; i++) {
        const gchar *json, *constraint;

        if (!gst_mgllava_late_results_event_get(event, i, &fields[k])) continue;
        /* borrowed from the event, which outlives this call */
        gst_mgllava_result_structure_get_constraint(gst_mgllava_late_results_event_get_structure(event, i), &json,
                                                    &constraint);
        fields[k].json = (gchar*)json;
        fields[k].constraint = (gchar*)constraint;
        gst_mgllava_result_structure_get_object(gst_mgllava_late_results_event_get_structure(event, i),
                                                &fields[k].object_id, (const gchar**)&fields[k].object_label,
                                                &fields[k].object_x, &fields[k].object_y, &fields[k].object_w,
                                                &fields[k].object_h);
        gst_mgllava_result_structure_get_clip(gst_mgllava_late_results_event_get_structure(event, i),
                                              &fields[k].clip_frames, &fields[k].clip_start_pts,
                                              &fields[k].clip_end_pts);
        ptrs[k] = &fields[k], k++;
    }

    if (st->format == GST_MGLLAVA_FORMAT_DLSTREAMER) {
        append_dls_header(s, st, GST_CLOCK_TIME_NONE, w, h);
        const GstMgllavaResultMeta** fa = g_new0(const GstMgllavaResultMeta*, k + 1);
        guint nf = frame_answers_only(ptrs, k, fa);

        if (nf > 0) {
            g_string_append(s, ", \"objects\": [");
            append_frame_answers(s, fa, nf, w, h, FALSE);
            g_string_append_c(s, ']');
        }
        g_free(fa);
        append_extension(s, st, ptrs, k, FALSE, 0, GST_CLOCK_TIME_NONE);
        g_string_append(s, "}\n");
    } else {
        g_string_append_printf(s,
                               "{\"pts\": null, \"frame\": null, "
                               "\"width\": %d, \"height\": %d, \"objects\": [], \"results\": [",
                               w, h);
        for (i = 0; i < k; i++) append_result(s, st, ptrs[i], i > 0);
        g_string_append_c(s, ']');
        append_mgllava_trailer(s, st);
    }
    g_free(ptrs);
    g_free(fields);
    return k;
}
