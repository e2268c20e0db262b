/* gstmgllavablobdetect.h: coloured-blob detector element.
 *
 * Copyright (C) 2026 mgllava authors
 * SPDX-License-Identifier: MIT
 */
#ifndef GST_MG_LLAVA_BLOB_DETECT_H
#define GST_MG_LLAVA_BLOB_DETECT_H

#include <gst/gst.h>
#include <gst/base/gstbasetransform.h>
#include <gst/video/video.h>

G_BEGIN_DECLS

#define GST_TYPE_MG_LLAVA_BLOB_DETECT (gst_mg_llava_blob_detect_get_type ())
G_DECLARE_FINAL_TYPE (GstMgLlavaBlobDetect, gst_mg_llava_blob_detect, GST,
    MG_LLAVA_BLOB_DETECT, GstBaseTransform);

GST_ELEMENT_REGISTER_DECLARE (mgllavablobdetect);

G_END_DECLS

#endif
