/* gstmgllavaformat.h: the JSON lines that mgllavajson writes and
 * mgllavapublish sends, in one place, in two layouts:
 *
 *   mgllava     the project's own schema (docs/mgllava-frame.schema.json):
 *               {"pts", "frame", "width", "height", "objects", "results"}
 *   dlstreamer  the layout of DL Streamer's gvametaconvert (format=json)
 *               (docs/dlstreamer-frame.schema.json): "timestamp",
 *               "resolution", "objects[].detection.bounding_box" normalised,
 *               "region_id", "roi_type", per-ROI attributes, and the answers
 *               as a full-frame classification object plus an "mgllava"
 *               member with every field.
 *
 * docs/publishing.md describes both. */
#ifndef __GST_MGLLAVA_FORMAT_H__
#define __GST_MGLLAVA_FORMAT_H__

#include <gst/gst.h>
#include <gst/video/video.h>

G_BEGIN_DECLS

typedef enum {
    GST_MGLLAVA_FORMAT_MGLLAVA = 0,
    GST_MGLLAVA_FORMAT_DLSTREAMER = 1,
} GstMgllavaFormat;

#define GST_TYPE_MGLLAVA_FORMAT (gst_mgllava_format_get_type())
GType gst_mgllava_format_get_type(void);

/* What a line holds besides the frame's detections and answers; the element
 * keeps one under its object lock and passes a snapshot. */
typedef struct {
    GstMgllavaFormat format;
    gboolean timings; /* per-stage engine timings of each answer */
    gchar* source;    /* NULL or a name of the stream ("source") */
    gchar* tags;      /* NULL or a JSON object copied as "tags" */
} GstMgllavaFormatSettings;

void gst_mgllava_format_settings_copy(GstMgllavaFormatSettings* dst, const GstMgllavaFormatSettings* src);
void gst_mgllava_format_settings_clear(GstMgllavaFormatSettings* s);

/* TRUE when @tags is NULL, empty, or one JSON object (what the "tags"
 * property accepts). */
gboolean gst_mgllava_format_tags_valid(const gchar* tags);

/* Replaces @s with the line (ending in '\n') for @buf; @info may be NULL
 * (no caps yet: width and height 0); @segment gives the stream time of the
 * dlstreamer "timestamp" (NULL: the PTS). @frame counts the buffers the
 * element has seen. Returns the number of answers on the buffer. */
guint gst_mgllava_format_buffer(GString* s, const GstMgllavaFormatSettings* st, GstBuffer* buf,
                                const GstVideoInfo* info, const GstSegment* segment, guint64 frame);

/* Replaces @s with the line for the answers of an mgllava-late-results event
 * (no frame: "pts": null in the mgllava layout, no "timestamp" in the
 * dlstreamer one). Returns the number of answers (0: not such an event, @s
 * left empty). */
guint gst_mgllava_format_late_results(GString* s, const GstMgllavaFormatSettings* st, GstEvent* event,
                                      const GstVideoInfo* info);

G_END_DECLS

#endif
