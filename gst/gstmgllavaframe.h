/* gstmgllavaframe.h: raw video frames to the engine's packed RGB, exactly as
 * `videoconvert ! video/x-raw,format=RGB` makes them.
 *
 * The output caps are what videoconvert negotiates for a downstream that asks
 * for RGB and nothing else: the input's size, rate, pixel aspect ratio and
 * interlacing; from RGB input its colorimetry unchanged, from YUV or grey
 * input RGB's default range and matrix (full, RGB) with the input's primaries
 * and transfer function. The converter gets videoconvert's defaults (GStreamer
 * 1.22 videoconvertscale): bilinear resampler (2 taps), envelope 2, sharpness
 * 1, sharpen 0, Bayer dither with quantization 1, linear chroma resampler,
 * alpha copied (alpha value 1), full chroma and matrix conversion, no gamma or
 * primaries conversion, one thread. RGB input, which videoconvert passes
 * through, is copied row by row. */
#ifndef GST_MGLLAVA_FRAME_H
#define GST_MGLLAVA_FRAME_H

#include <gst/gst.h>
#include <gst/video/video.h>

G_BEGIN_DECLS

/* The raw formats mgllavafilter accepts (every one converts as above). */
#define GST_MGLLAVA_FRAME_FORMATS                                                                                      \
    "{ RGB, BGR, RGBx, BGRx, xRGB, xBGR, "                                                                             \
    "RGBA, BGRA, ARGB, ABGR, I420, YV12, NV12, NV21, YUY2, UYVY, Y444, GRAY8 }"

/* The RGB output info for input @in, as videoconvert negotiates it. */
void gst_mgllava_frame_rgb_info(const GstVideoInfo* in, GstVideoInfo* out);

/* Sets *@conv to the converter from @in to RGB, or to NULL for RGB input
 * (copied). FALSE when the conversion cannot be made. */
gboolean gst_mgllava_frame_rgb_converter(const GstVideoInfo* in, GstVideoConverter** conv);

/* A packed RGB copy (stride 3 * width, g_free) of @buf, a frame with @in's
 * caps, through @conv from gst_mgllava_frame_rgb_converter(); NULL when the
 * buffer cannot be mapped as such a frame. */
guint8* gst_mgllava_frame_rgb(GstVideoConverter* conv, const GstVideoInfo* in, GstBuffer* buf);

G_END_DECLS

#endif
