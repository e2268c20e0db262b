/* gstmgllavaframe.c: mgllavafilter's sampled frames to packed RGB, the
 * engine's image format, pixel for pixel as videoconvert makes them (see
 * gstmgllavaframe.h). The converter is set up per caps. */
#include "gstmgllavafilter-private.h"
#include "gstmgllavaframe.h"

#include <string.h>

void gst_mgllava_frame_rgb_info(const GstVideoInfo* in, GstVideoInfo* out) {
    gst_video_info_set_interlaced_format(out, GST_VIDEO_FORMAT_RGB, GST_VIDEO_INFO_INTERLACE_MODE(in),
                                         GST_VIDEO_INFO_WIDTH(in), GST_VIDEO_INFO_HEIGHT(in));
    /* the caps fields videoconvert keeps (it changes the format only) */
    GST_VIDEO_INFO_FPS_N(out) = GST_VIDEO_INFO_FPS_N(in);
    GST_VIDEO_INFO_FPS_D(out) = GST_VIDEO_INFO_FPS_D(in);
    GST_VIDEO_INFO_PAR_N(out) = GST_VIDEO_INFO_PAR_N(in);
    GST_VIDEO_INFO_PAR_D(out) = GST_VIDEO_INFO_PAR_D(in);
    GST_VIDEO_INFO_FIELD_ORDER(out) = GST_VIDEO_INFO_FIELD_ORDER(in);
    /* videoconvert's colorimetry for an RGB output left open downstream: the
     * input's own from RGB; from YUV and grey, RGB's default range and matrix
     * with the input's primaries and transfer (which no pixel depends on
     * without gamma or primaries conversion) */
    if (GST_VIDEO_INFO_IS_RGB(in)) {
        out->colorimetry = in->colorimetry;
    } else {
        out->colorimetry.primaries = in->colorimetry.primaries;
        out->colorimetry.transfer = in->colorimetry.transfer;
    }
    /* a tightly packed RGB frame: stride 3 * width, no padding */
    out->stride[0] = GST_VIDEO_INFO_WIDTH(in) * 3;
    out->size = (gsize)out->stride[0] * GST_VIDEO_INFO_HEIGHT(in);
}

gboolean gst_mgllava_frame_rgb_converter(const GstVideoInfo* in, GstVideoConverter** conv) {
    GstVideoInfo out;

    *conv = NULL;
    /* videoconvert passes RGB through: the rows are copied */
    if (GST_VIDEO_INFO_FORMAT(in) == GST_VIDEO_FORMAT_RGB) return TRUE;
    gst_mgllava_frame_rgb_info(in, &out);
    /* videoconvert's options, each at its default (GStreamer 1.22
     * videoconvertscale's set_info), for a conversion without scaling */
    *conv = gst_video_converter_new(
        (GstVideoInfo*)in, &out,
        gst_structure_new(
            "GstVideoConvertScale", GST_VIDEO_CONVERTER_OPT_RESAMPLER_METHOD, GST_TYPE_VIDEO_RESAMPLER_METHOD,
            GST_VIDEO_RESAMPLER_METHOD_LINEAR, GST_VIDEO_RESAMPLER_OPT_MAX_TAPS, G_TYPE_INT, 2,
            GST_VIDEO_RESAMPLER_OPT_ENVELOPE, G_TYPE_DOUBLE, 2.0, GST_VIDEO_RESAMPLER_OPT_SHARPNESS, G_TYPE_DOUBLE, 1.0,
            GST_VIDEO_RESAMPLER_OPT_SHARPEN, G_TYPE_DOUBLE, 0.0, GST_VIDEO_CONVERTER_OPT_DEST_X, G_TYPE_INT, 0,
            GST_VIDEO_CONVERTER_OPT_DEST_Y, G_TYPE_INT, 0, GST_VIDEO_CONVERTER_OPT_DEST_WIDTH, G_TYPE_INT,
            GST_VIDEO_INFO_WIDTH(&out), GST_VIDEO_CONVERTER_OPT_DEST_HEIGHT, G_TYPE_INT, GST_VIDEO_INFO_HEIGHT(&out),
            GST_VIDEO_CONVERTER_OPT_DITHER_METHOD, GST_TYPE_VIDEO_DITHER_METHOD, GST_VIDEO_DITHER_BAYER,
            GST_VIDEO_CONVERTER_OPT_DITHER_QUANTIZATION, G_TYPE_UINT, 1,
            GST_VIDEO_CONVERTER_OPT_CHROMA_RESAMPLER_METHOD, GST_TYPE_VIDEO_RESAMPLER_METHOD,
            GST_VIDEO_RESAMPLER_METHOD_LINEAR, GST_VIDEO_CONVERTER_OPT_ALPHA_MODE, GST_TYPE_VIDEO_ALPHA_MODE,
            GST_VIDEO_ALPHA_MODE_COPY, GST_VIDEO_CONVERTER_OPT_ALPHA_VALUE, G_TYPE_DOUBLE, 1.0,
            GST_VIDEO_CONVERTER_OPT_CHROMA_MODE, GST_TYPE_VIDEO_CHROMA_MODE, GST_VIDEO_CHROMA_MODE_FULL,
            GST_VIDEO_CONVERTER_OPT_MATRIX_MODE, GST_TYPE_VIDEO_MATRIX_MODE, GST_VIDEO_MATRIX_MODE_FULL,
            GST_VIDEO_CONVERTER_OPT_GAMMA_MODE, GST_TYPE_VIDEO_GAMMA_MODE, GST_VIDEO_GAMMA_MODE_NONE,
            GST_VIDEO_CONVERTER_OPT_PRIMARIES_MODE, GST_TYPE_VIDEO_PRIMARIES_MODE, GST_VIDEO_PRIMARIES_MODE_NONE,
            GST_VIDEO_CONVERTER_OPT_THREADS, G_TYPE_UINT, 1, NULL));
    return *conv != NULL;
}

guint8* gst_mgllava_frame_rgb(GstVideoConverter* conv, const GstVideoInfo* in, GstBuffer* buf) {
    GstVideoFrame src, dst;
    GstVideoInfo oi;
    gint w = GST_VIDEO_INFO_WIDTH(in), h = GST_VIDEO_INFO_HEIGHT(in);
    gsize size = (gsize)w * h * 3;
    guint8* rgb;

    if (!gst_video_frame_map(&src, (GstVideoInfo*)in, buf, GST_MAP_READ)) return NULL;
    rgb = g_malloc(size);
    if (conv == NULL) {
        const guint8* p = GST_VIDEO_FRAME_PLANE_DATA(&src, 0);
        gint stride = GST_VIDEO_FRAME_PLANE_STRIDE(&src, 0);
        gint y;

        for (y = 0; y < h; y++) memcpy(rgb + (gsize)y * w * 3, p + (gsize)y * stride, (gsize)w * 3);
    } else {
        GstBuffer* ob = gst_buffer_new_wrapped_full(0, rgb, size, 0, size, NULL, NULL);

        gst_mgllava_frame_rgb_info(in, &oi);
        if (gst_video_frame_map(&dst, &oi, ob, GST_MAP_WRITE)) {
            /* interlaced frames: the converter reads the field flags from both */
            GST_VIDEO_FRAME_FLAGS(&dst) = GST_VIDEO_FRAME_FLAGS(&src);
            gst_video_converter_frame(conv, &src, &dst);
            gst_video_frame_unmap(&dst);
        }
        gst_buffer_unref(ob);
    }
    gst_video_frame_unmap(&src);
    return rgb;
}

/* ---- mgllavafilter ----------------------------------------------------- */

gboolean gst_mgllava_filter_frame_set_info(GstMgllavaFilter* self, const GstVideoInfo* info) {
    GstVideoConverter* conv;

    /* in-flight requests own copies of their pixels: a resolution switch is safe */
    g_clear_pointer(&self->conv, gst_video_converter_free);
    if (!gst_mgllava_frame_rgb_converter(info, &conv)) {
        GST_ERROR_OBJECT(self, "cannot convert %s to RGB", gst_video_format_to_string(GST_VIDEO_INFO_FORMAT(info)));
        return FALSE;
    }
    self->conv = conv;
    self->info = *info;
    self->have_info = TRUE;
    return TRUE;
}

void gst_mgllava_filter_frame_clear(GstMgllavaFilter* self) {
    g_clear_pointer(&self->conv, gst_video_converter_free);
    self->have_info = FALSE;
}

guint8* gst_mgllava_filter_frame_to_rgb(GstMgllavaFilter* self, GstBuffer* buf) {
    return gst_mgllava_frame_rgb(self->conv, &self->info, buf);
}
