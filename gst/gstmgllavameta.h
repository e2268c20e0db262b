/* gstmgllavameta.h: the result of one MG-LLaVA inference, attached to a video
 * buffer by mgllavafilter. Link with libgstmgllavameta-1.0 (pkg-config
 * gstreamer-mgllava-meta-1.0). */
#ifndef __GST_MGLLAVA_META_H__
#define __GST_MGLLAVA_META_H__

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_MGLLAVA_RESULT_META_API_TYPE (gst_mgllava_result_meta_api_get_type ())
#define GST_MGLLAVA_RESULT_META_INFO (gst_mgllava_result_meta_get_info ())

typedef struct _GstMgllavaResultMeta GstMgllavaResultMeta;

/**
 * GstMgllavaResultMeta:
 * @meta: parent #GstMeta
 * @text: the generated answer (UTF-8, stripped)
 * @prompt: the question it answers
 * @source_pts: PTS of the frame the answer is about (in `latest` mode this is
 *   an earlier frame than the one carrying the meta)
 * @source_frame: index of that frame in the stream (0-based, counted by mgllavafilter)
 * @n_tokens: number of generated tokens
 * @n_objects: number of object tokens the model saw (>= 1 when objects are used)
 * @latency_ms: wall time from sampling the frame to the finished answer
 * @preprocess_ms, @vision_ms, @prefill_ms, @decode_ms: engine stage timings
 */
struct _GstMgllavaResultMeta
{
  GstMeta meta;

  gchar *text;
  gchar *prompt;
  GstClockTime source_pts;
  guint64 source_frame;
  guint n_tokens;
  guint n_objects;
  gdouble latency_ms;
  gdouble preprocess_ms;
  gdouble vision_ms;
  gdouble prefill_ms;
  gdouble decode_ms;
};

GType gst_mgllava_result_meta_api_get_type (void);
const GstMetaInfo *gst_mgllava_result_meta_get_info (void);

/* Adds a meta; text and prompt are copied. */
GstMgllavaResultMeta *gst_buffer_add_mgllava_result_meta (GstBuffer * buffer,
    const gchar * text, const gchar * prompt, GstClockTime source_pts,
    guint64 source_frame);

/* Adds a meta with every field of @fields (another meta, or a value the
 * caller filled; its GstMeta header is not read); text and prompt are
 * copied, NULL ones as "". */
GstMgllavaResultMeta *gst_buffer_add_mgllava_result_meta_full (GstBuffer *
    buffer, const GstMgllavaResultMeta * fields);

/* The first result meta of @buffer, or NULL. */
GstMgllavaResultMeta *gst_buffer_get_mgllava_result_meta (GstBuffer * buffer);

/* Iterate all result metas: pass a NULL-initialised gpointer state. */
GstMgllavaResultMeta *gst_buffer_iterate_mgllava_result_meta (GstBuffer *
    buffer, gpointer * state);

/* The same fields as a GstStructure named "mgllava-result" (the bus message body). */
GstStructure *gst_mgllava_result_meta_to_structure (const GstMgllavaResultMeta * meta);

G_END_DECLS

#endif
