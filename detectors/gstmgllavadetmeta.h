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

/* Adds a GstVideoRegionOfInterestMeta with roi_type @label and a
 * "detection" param structure (DL Streamer's layout: "confidence", and the
 * box normalised to the frame in "x_min", "y_min", "x_max", "y_max", plus
 * "label"). The box (pixels, x2/y2 exclusive) is clipped to the
 * @width x @height frame and rounded to whole pixels. Returns NULL, adding
 * nothing, when the clipped box is empty. @buf must be writable. */
GstVideoRegionOfInterestMeta *gst_mgllava_det_attach (GstBuffer * buf,
    gint width, gint height, gdouble x1, gdouble y1, gdouble x2, gdouble y2,
    gdouble confidence, GQuark label);

G_END_DECLS

#endif
