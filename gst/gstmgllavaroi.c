/* gstmgllavaroi.c: upstream detections -> engine boxes (see
 * gstmgllavaroi.h).
 *
 * Copyright (C) 2026 mgllava authors
 * SPDX-License-Identifier: MIT
 */
#include <math.h>
#include <string.h>

#include "gstmgllavaroi.h"

/* Param structures that carry the detector's confidence, most specific
 * first. DL Streamer: "detection" / "confidence" (double). GStreamer's
 * onnxobjectdetector (1.20-1.22): "extra-data" / "score" (double). Any other
 * param structure is searched for the field names in confidence_fields. */
static const gchar* const confidence_structs[][2] = {
    {"detection", "confidence"},
    {"extra-data", "score"},
};

static const gchar* const confidence_fields[] = {"confidence", "score", "probability", "prob", "conf", NULL};

/* roi_type values that name the producer rather than the object class; for
 * these a string "label" field in a param structure names the class. The
 * last one is what mgllavaboxes and mgllavablobdetect write for a label past
 * their cap on interned labels (detectors/gstmgllavadetmeta.h). */
static const gchar* const generic_roi_types[] = {"onnx-object_detector", "mgllava-labelled", NULL};

static gboolean gst_mgllava_roi_field_to_double(const GstStructure* s, const gchar* field, gdouble* out) {
    const GValue* v = gst_structure_get_value(s, field);
    gdouble d;

    if (v == NULL) return FALSE;

    if (G_VALUE_HOLDS_DOUBLE(v))
        d = g_value_get_double(v);
    else if (G_VALUE_HOLDS_FLOAT(v))
        d = g_value_get_float(v);
    else if (G_VALUE_HOLDS_INT(v))
        d = g_value_get_int(v);
    else if (G_VALUE_HOLDS_UINT(v))
        d = g_value_get_uint(v);
    else if (G_VALUE_HOLDS_INT64(v))
        d = g_value_get_int64(v);
    else
        return FALSE;

    if (!isfinite(d)) return FALSE;

    *out = CLAMP(d, 0.0, 1.0);
    return TRUE;
}

/**
 * gst_mgllava_roi_meta_get_confidence:
 * @roi: a #GstVideoRegionOfInterestMeta
 * @confidence: (out): the confidence in [0, 1]
 *
 * Looks for the confidence in @roi's param structures: "detection" with
 * "confidence" (DL Streamer), "extra-data" with "score" (onnxobjectdetector),
 * then any structure with a "confidence", "score", "probability", "prob" or
 * "conf" field holding a number. Values are clamped to [0, 1]; NaN and
 * infinities are ignored.
 *
 * Returns: %TRUE if a confidence was found.
 */
gboolean gst_mgllava_roi_meta_get_confidence(GstVideoRegionOfInterestMeta* roi, gdouble* confidence) {
    GList* l;
    guint i;

    g_return_val_if_fail(roi != NULL && confidence != NULL, FALSE);

    for (i = 0; i < G_N_ELEMENTS(confidence_structs); i++) {
        GstStructure* s = gst_video_region_of_interest_meta_get_param(roi, confidence_structs[i][0]);

        if (s != NULL && gst_mgllava_roi_field_to_double(s, confidence_structs[i][1], confidence)) return TRUE;
    }

    for (l = roi->params; l != NULL; l = l->next) {
        const GstStructure* s = l->data;

        for (i = 0; confidence_fields[i] != NULL; i++) {
            if (gst_mgllava_roi_field_to_double(s, confidence_fields[i], confidence)) return TRUE;
        }
    }

    return FALSE;
}

/**
 * gst_mgllava_roi_meta_get_label:
 * @roi: a #GstVideoRegionOfInterestMeta
 *
 * The object class of @roi: the string "label" of its "detection" param
 * structure when there is one (DL Streamer's layout, and where our detectors
 * put a label they do not intern), else the roi_type, unless that is empty
 * or names the producer rather than a class ("onnx-object_detector",
 * "mgllava-labelled"); then the first string "label" field of any param
 * structure, else the roi_type (possibly "").
 *
 * Nothing is interned: labels are data. The string belongs to @roi (a param
 * structure's) or is the roi_type quark's.
 *
 * Returns: (transfer none): the label, valid while @roi and its params live.
 */
const gchar* gst_mgllava_roi_meta_get_label(GstVideoRegionOfInterestMeta* roi) {
    const gchar *type, *label;
    GstStructure* det;
    gboolean generic;
    GList* l;
    guint i;

    g_return_val_if_fail(roi != NULL, "");

    det = gst_video_region_of_interest_meta_get_param(roi, "detection");
    label = det ? gst_structure_get_string(det, "label") : NULL;
    if (label != NULL && label[0] != '\0') return label;

    type = roi->roi_type ? g_quark_to_string(roi->roi_type) : NULL;
    generic = (type == NULL || type[0] == '\0');
    for (i = 0; !generic && generic_roi_types[i] != NULL; i++) generic = (strcmp(type, generic_roi_types[i]) == 0);
    if (!generic) return type;

    for (l = roi->params; l != NULL; l = l->next) {
        label = gst_structure_get_string(l->data, "label");
        if (label != NULL && label[0] != '\0') return label;
    }

    return type != NULL ? type : "";
}

static gboolean gst_mgllava_roi_label_allowed(const GstMgllavaRoiFilter* filter, const gchar* label) {
    gchar** l;

    if (filter == NULL || filter->labels == NULL || filter->labels[0] == NULL) return TRUE;

    for (l = filter->labels; *l != NULL; l++) {
        if (strcmp(*l, label) == 0) return TRUE;
    }
    return FALSE;
}

static gint gst_mgllava_roi_compare_score(gconstpointer a, gconstpointer b) {
    const MglBox *ba = a, *bb = b;

    /* descending; g_array_sort is not stable, ties are broken by the caller */
    return (ba->score < bb->score) - (ba->score > bb->score);
}

typedef struct {
    MglBox box;
    guint order; /* position in the buffer's meta list */
} GstMgllavaRoiEntry;

static gint gst_mgllava_roi_compare_entry(gconstpointer a, gconstpointer b) {
    const GstMgllavaRoiEntry *ea = a, *eb = b;
    gint c = gst_mgllava_roi_compare_score(&ea->box, &eb->box);

    if (c != 0) return c;
    return (ea->order > eb->order) - (ea->order < eb->order);
}

guint gst_mgllava_roi_collect(GstBuffer* buf, gint width, gint height, const GstMgllavaRoiFilter* filter,
                              GArray* boxes) {
    GArray* entries;
    gpointer state = NULL;
    GstMeta* meta;
    gdouble min_size = 0.0;
    guint order = 0, n, i;

    g_return_val_if_fail(GST_IS_BUFFER(buf), 0);
    g_return_val_if_fail(boxes != NULL, 0);
    g_return_val_if_fail(g_array_get_element_size(boxes) == sizeof(MglBox), 0);

    if (width <= 0 || height <= 0) return 0;

    if (filter != NULL && filter->min_object_size > 0.0) min_size = filter->min_object_size;

    entries = g_array_new(FALSE, FALSE, sizeof(GstMgllavaRoiEntry));

    while ((meta = gst_buffer_iterate_meta_filtered(buf, &state, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE)) != NULL) {
        GstVideoRegionOfInterestMeta* roi = (GstVideoRegionOfInterestMeta*)meta;
        GstMgllavaRoiEntry e;
        gdouble conf = 1.0;
        /* guint fields: x + w can exceed G_MAXUINT, so work in doubles */
        gdouble x1 = roi->x, y1 = roi->y;
        gdouble x2 = x1 + (gdouble)roi->w, y2 = y1 + (gdouble)roi->h;
        const gchar* label;

        order++;

        x1 = CLAMP(x1, 0.0, (gdouble)width);
        x2 = CLAMP(x2, 0.0, (gdouble)width);
        y1 = CLAMP(y1, 0.0, (gdouble)height);
        y2 = CLAMP(y2, 0.0, (gdouble)height);
        if (x2 <= x1 || y2 <= y1) continue; /* empty or entirely outside the frame */
        if (x2 - x1 < min_size || y2 - y1 < min_size) continue;

        label = gst_mgllava_roi_meta_get_label(roi);
        if (!gst_mgllava_roi_label_allowed(filter, label)) continue;

        gst_mgllava_roi_meta_get_confidence(roi, &conf);

        e.box.x1 = (float)x1;
        e.box.y1 = (float)y1;
        e.box.x2 = (float)x2;
        e.box.y2 = (float)y2;
        e.box.score = (float)conf;
        e.box.label = label;
        e.order = order;
        g_array_append_val(entries, e);
    }

    g_array_sort(entries, gst_mgllava_roi_compare_entry);

    n = entries->len;
    if (filter != NULL && filter->max_objects > 0 && n > (guint)filter->max_objects) n = filter->max_objects;

    for (i = 0; i < n; i++) g_array_append_val(boxes, g_array_index(entries, GstMgllavaRoiEntry, i).box);

    g_array_free(entries, TRUE);
    return n;
}

static void gst_mgllava_roi_box_clear_label(gpointer data) {
    MglBox* b = data;

    g_free((gchar*)b->label);
    b->label = NULL;
}

void gst_mgllava_roi_boxes_copy_labels(GArray* boxes, guint from) {
    guint i;

    g_return_if_fail(boxes != NULL);
    g_return_if_fail(g_array_get_element_size(boxes) == sizeof(MglBox));

    g_array_set_clear_func(boxes, gst_mgllava_roi_box_clear_label);
    for (i = from; i < boxes->len; i++) {
        MglBox* b = &g_array_index(boxes, MglBox, i);

        b->label = g_strdup(b->label);
    }
}
