/* gstmgllavadetmeta.h: attach one detection the way DL Streamer does.
 *
 * Copyright (C) 2026 mgllava authors
 * SPDX-License-Identifier: MIT
 */
#ifndef GST_MGLLAVA_DET_META_H
#define GST_MGLLAVA_DET_META_H

#include <gst/gst.h>
#include <gst/video/video.h>

G_BEGIN_DECLS

/* GstVideoRegionOfInterestMeta's roi_type is a GQuark, and a quark is never
 * freed: every distinct label a detector writes there stays in the process.
 * Labels are data (a detections file may hold any number of distinct ones),
 * so the detectors intern at most this many distinct labels per process;
 * past that, a new label's meta gets roi_type
 * GST_MGLLAVA_DET_ROI_TYPE_LABELLED and the label only as the "label" string
 * of its "detection" param structure (which the ROI adapter,
 * gst/gstmgllavaroi.h, reads first). Labels that are already quarks (interned
 * by anyone) are used as they are and count nothing. */
#define GST_MGLLAVA_DET_MAX_LABEL_QUARKS 1024

/* The roi_type of a detection whose label is not interned. */
#define GST_MGLLAVA_DET_ROI_TYPE_LABELLED "mgllava-labelled"

/* The roi_type for @label: its quark when it already is one or when fewer
 * than GST_MGLLAVA_DET_MAX_LABEL_QUARKS labels were interned by the
 * detectors so far (then it is interned and counted), else the quark of
 * GST_MGLLAVA_DET_ROI_TYPE_LABELLED. Thread-safe. */
GQuark gst_mgllava_det_label_quark(const gchar* label);

/* How many distinct labels the detectors interned in this process. */
guint gst_mgllava_det_label_quarks_interned(void);

/* Adds a GstVideoRegionOfInterestMeta with roi_type
 * gst_mgllava_det_label_quark (@label) and a "detection" param structure
 * (DL Streamer's layout: "confidence", and the box normalised to the frame in
 * "x_min", "y_min", "x_max", "y_max", plus "label", a copy of @label). The
 * box (pixels, x2/y2 exclusive) is clipped to the @width x @height frame and
 * rounded to whole pixels. Returns NULL, adding nothing, when the clipped box
 * is empty. @buf must be writable. */
GstVideoRegionOfInterestMeta* gst_mgllava_det_attach(GstBuffer* buf, gint width, gint height, gdouble x1, gdouble y1,
                                                     gdouble x2, gdouble y2, gdouble confidence, const gchar* label);

/* Gives @roi the track id @id as DL Streamer's trackers write it: the meta's
 * own `id` and an "object_id" param structure with the int field "id"
 * (replacing one already there). @id 0 means "no track" and adds nothing. */
void gst_mgllava_det_set_track_id(GstVideoRegionOfInterestMeta* roi, gint id);

G_END_DECLS

#endif
