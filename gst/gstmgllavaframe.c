/* gstmgllavaframe.c: mgllavafilter's sampled frames to packed RGB, the
 * engine's image format. The converter is set up per caps; RGB input is
 * copied row by row. */
#include "gstmgllavafilter-private.h"

#include <string.h>

gboolean
gst_mgllava_filter_frame_set_info (GstMgllavaFilter * self,
    const GstVideoInfo * info)
{
  /* in-flight requests own copies of their pixels: a resolution switch is safe */
  g_clear_pointer (&self->conv, gst_video_converter_free);
  if (GST_VIDEO_INFO_FORMAT (info) != GST_VIDEO_FORMAT_RGB) {
    GstVideoInfo out;

    gst_video_info_set_format (&out, GST_VIDEO_FORMAT_RGB,
        GST_VIDEO_INFO_WIDTH (info), GST_VIDEO_INFO_HEIGHT (info));
    /* the converter insists on equal rates and interlacing */
    GST_VIDEO_INFO_FPS_N (&out) = GST_VIDEO_INFO_FPS_N (info);
    GST_VIDEO_INFO_FPS_D (&out) = GST_VIDEO_INFO_FPS_D (info);
    GST_VIDEO_INFO_INTERLACE_MODE (&out) = GST_VIDEO_INFO_INTERLACE_MODE (info);
    self->conv = gst_video_converter_new (info, &out,
        gst_structure_new ("options",
            GST_VIDEO_CONVERTER_OPT_THREADS, G_TYPE_UINT, 1, NULL));
    if (!self->conv) {
      GST_ERROR_OBJECT (self, "cannot convert %s to RGB",
          gst_video_format_to_string (GST_VIDEO_INFO_FORMAT (info)));
      return FALSE;
    }
  }
  self->info = *info;
  self->have_info = TRUE;
  return TRUE;
}

void
gst_mgllava_filter_frame_clear (GstMgllavaFilter * self)
{
  g_clear_pointer (&self->conv, gst_video_converter_free);
  self->have_info = FALSE;
}

guint8 *
gst_mgllava_filter_frame_to_rgb (GstMgllavaFilter * self, GstBuffer * buf)
{
  GstVideoFrame in;
  gint w = GST_VIDEO_INFO_WIDTH (&self->info);
  gint h = GST_VIDEO_INFO_HEIGHT (&self->info);
  guint8 *rgb;

  if (!gst_video_frame_map (&in, &self->info, buf, GST_MAP_READ))
    return NULL;
  rgb = g_malloc ((gsize) w * h * 3);
  if (!self->conv) {
    const guint8 *src = GST_VIDEO_FRAME_PLANE_DATA (&in, 0);
    gint stride = GST_VIDEO_FRAME_PLANE_STRIDE (&in, 0);
    gint y;

    for (y = 0; y < h; y++)
      memcpy (rgb + (gsize) y * w * 3, src + (gsize) y * stride, (gsize) w * 3);
  } else {
    GstVideoInfo oi;
    GstVideoFrame out;
    GstBuffer *ob;

    gst_video_info_set_format (&oi, GST_VIDEO_FORMAT_RGB, w, h);
    GST_VIDEO_INFO_FPS_N (&oi) = GST_VIDEO_INFO_FPS_N (&self->info);
    GST_VIDEO_INFO_FPS_D (&oi) = GST_VIDEO_INFO_FPS_D (&self->info);
    GST_VIDEO_INFO_INTERLACE_MODE (&oi) =
        GST_VIDEO_INFO_INTERLACE_MODE (&self->info);
    ob = gst_buffer_new_wrapped_full (0, rgb, (gsize) w * h * 3, 0,
        (gsize) w * h * 3, NULL, NULL);
    /* a tightly packed RGB frame: stride 3*w, no padding */
    oi.stride[0] = w * 3;
    oi.size = (gsize) w * h * 3;
    if (gst_video_frame_map (&out, &oi, ob, GST_MAP_WRITE)) {
      gst_video_converter_frame (self->conv, &in, &out);
      gst_video_frame_unmap (&out);
    }
    gst_buffer_unref (ob);
  }
  gst_video_frame_unmap (&in);
  return rgb;
}
