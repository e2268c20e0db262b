/* gstmgllavadetmeta.c: attach one detection the way DL Streamer does.
 *
 * Copyright (C) 2026 mgllava authors
 * SPDX-License-Identifier: MIT
 */
#include <math.h>

#include "gstmgllavadetmeta.h"

static GMutex label_lock;
static guint labels_interned;

GQuark gst_mgllava_det_label_quark(const gchar* label) {
    GQuark q;

    if (label == NULL) label = "";
    /* a label that already is a quark costs nothing more */
    q = g_quark_try_string(label);
    if (q != 0) return q;
    g_mutex_lock(&label_lock);
    q = g_quark_try_string(label);
    if (q == 0 && labels_interned < GST_MGLLAVA_DET_MAX_LABEL_QUARKS) {
        q = g_quark_from_string(label);
        labels_interned++;
    }
    g_mutex_unlock(&label_lock);
    if (q == 0) q = g_quark_from_static_string(GST_MGLLAVA_DET_ROI_TYPE_LABELLED);
    return q;
}

guint gst_mgllava_det_label_quarks_interned(void) {
    guint n;

    g_mutex_lock(&label_lock);
    n = labels_interned;
    g_mutex_unlock(&label_lock);
    return n;
}

GstVideoRegionOfInterestMeta* gst_mgllava_det_attach(GstBuffer* buf, gint width, gint height, gdouble x1, gdouble y1,
                                                     gdouble x2, gdouble y2, gdouble confidence, const gchar* label) {
    GstVideoRegionOfInterestMeta* roi;
    gdouble ix1, iy1, ix2, iy2;

    g_return_val_if_fail(GST_IS_BUFFER(buf), NULL);
    g_return_val_if_fail(gst_buffer_is_writable(buf), NULL);

    if (width <= 0 || height <= 0 || !isfinite(x1) || !isfinite(y1) || !isfinite(x2) || !isfinite(y2)) return NULL;

    ix1 = rint(CLAMP(x1, 0.0, (gdouble)width));
    iy1 = rint(CLAMP(y1, 0.0, (gdouble)height));
    ix2 = rint(CLAMP(x2, 0.0, (gdouble)width));
    iy2 = rint(CLAMP(y2, 0.0, (gdouble)height));
    if (ix2 <= ix1 || iy2 <= iy1) return NULL;

    if (label == NULL) label = "";
    roi = gst_buffer_add_video_region_of_interest_meta_id(buf, gst_mgllava_det_label_quark(label), (guint)ix1,
                                                          (guint)iy1, (guint)(ix2 - ix1), (guint)(iy2 - iy1));
    if (roi == NULL) return NULL;

    gst_video_region_of_interest_meta_add_param(
        roi, gst_structure_new("detection", "confidence", G_TYPE_DOUBLE, CLAMP(confidence, 0.0, 1.0), "x_min",
                               G_TYPE_DOUBLE, ix1 / width, "y_min", G_TYPE_DOUBLE, iy1 / height, "x_max", G_TYPE_DOUBLE,
                               ix2 / width, "y_max", G_TYPE_DOUBLE, iy2 / height, "label", G_TYPE_STRING, label, NULL));
    return roi;
}

void gst_mgllava_det_set_track_id(GstVideoRegionOfInterestMeta* roi, gint id) {
    GList* l;

    g_return_if_fail(roi != NULL);
    if (id == 0) return;
    roi->id = id;
    for (l = roi->params; l; l = l->next) {
        if (gst_structure_has_name(l->data, "object_id")) {
            gst_structure_set(l->data, "id", G_TYPE_INT, id, NULL);
            return;
        }
    }
    gst_video_region_of_interest_meta_add_param(roi, gst_structure_new("object_id", "id", G_TYPE_INT, id, NULL));
}
