/* gstmgllavablobdetect.h: coloured-blob detector element.
 *
 * Copyright (C) 2026 mgllava authors
 * SPDX-License-Identifier: MIT
 */
#ifndef GST_MGLLAVA_BLOB_DETECT_H
#define GST_MGLLAVA_BLOB_DETECT_H

#include <gst/gst.h>
#include <gst/base/gstbasetransform.h>
#include <gst/video/video.h>

G_BEGIN_DECLS

#define GST_TYPE_MGLLAVA_BLOB_DETECT (gst_mgllava_blob_detect_get_type())
G_DECLARE_FINAL_TYPE(GstMgllavaBlobDetect, gst_mgllava_blob_detect, GST, MGLLAVA_BLOB_DETECT, GstBaseTransform);

GST_ELEMENT_REGISTER_DECLARE(mgllavablobdetect);

G_END_DECLS

#endif
