/* gstmgllavafilter.h: MG-LLaVA on sampled video frames. */
#ifndef __GST_MGLLAVA_FILTER_H__
#define __GST_MGLLAVA_FILTER_H__

#include <gst/gst.h>
#include <gst/base/gstbasetransform.h>
#include <gst/video/video.h>

#include "mgllava.h"

G_BEGIN_DECLS

#define GST_TYPE_MGLLAVA_FILTER (gst_mgllava_filter_get_type())
G_DECLARE_FINAL_TYPE(GstMgllavaFilter, gst_mgllava_filter, GST, MGLLAVA_FILTER, GstBaseTransform)

/* AUTO: EXACT with no deadline and no QoS skipping when upstream is not live,
 * LATEST when it is (decided at the first buffer of a stream) */
typedef enum {
    GST_MGLLAVA_ATTACH_LATEST,
    GST_MGLLAVA_ATTACH_EXACT,
    GST_MGLLAVA_ATTACH_AUTO,
} GstMgllavaAttachMode;

typedef enum {
    GST_MGLLAVA_DROP_OLDEST,
    GST_MGLLAVA_DROP_NEWEST,
    GST_MGLLAVA_DROP_BLOCK,
} GstMgllavaDropPolicy;

/* the engine's MglObjectOrder values, so the property goes to MglGenParams as is */
typedef enum {
    GST_MGLLAVA_OBJECT_ORDER_MODEL = MGL_OBJECT_ORDER_MODEL,
    GST_MGLLAVA_OBJECT_ORDER_SCORE = MGL_OBJECT_ORDER_SCORE,
    GST_MGLLAVA_OBJECT_ORDER_READING = MGL_OBJECT_ORDER_READING,
} GstMgllavaObjectOrder;

typedef enum {
    GST_MGLLAVA_DEVICE_AUTO,
    GST_MGLLAVA_DEVICE_CPU,
    GST_MGLLAVA_DEVICE_CUDA,
} GstMgllavaDevice;

/* MglModelParams.precision: the device's default (f16 on a GPU, f32 on the CPU) or one named */
typedef enum {
    GST_MGLLAVA_PRECISION_DEFAULT,
    GST_MGLLAVA_PRECISION_F32,
    GST_MGLLAVA_PRECISION_F16,
    GST_MGLLAVA_PRECISION_BF16,
} GstMgllavaPrecision;

GST_ELEMENT_REGISTER_DECLARE(mgllavafilter);

G_END_DECLS

#endif
