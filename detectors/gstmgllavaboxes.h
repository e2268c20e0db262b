/* gstmgllavaboxes.h: offline detections -> ROI metas.
 *
 * Copyright (C) 2026 mgllava authors
 * SPDX-License-Identifier: MIT
 */
#ifndef GST_MGLLAVA_BOXES_H
#define GST_MGLLAVA_BOXES_H

#include <gst/gst.h>
#include <gst/base/gstbasetransform.h>
#include <gst/video/video.h>

#include "mgl-detections.h"

G_BEGIN_DECLS

#define GST_TYPE_MGLLAVA_BOXES (gst_mgllava_boxes_get_type())
G_DECLARE_FINAL_TYPE(GstMgllavaBoxes, gst_mgllava_boxes, GST, MGLLAVA_BOXES, GstBaseTransform);

#define GST_TYPE_MGLLAVA_BOXES_MATCH (gst_mgllava_boxes_match_get_type())
GType gst_mgllava_boxes_match_get_type(void);

GST_ELEMENT_REGISTER_DECLARE(mgllavaboxes);

G_END_DECLS

#endif
