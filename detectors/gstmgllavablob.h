/* gstmgllavablob.h: coloured-blob detector core (no GStreamer).
 *
 * Per pixel: HSV from 8-bit RGB; a pixel is foreground when its saturation
 * and value reach the thresholds. Foreground pixels whose hues are within
 * hue_tolerance of each other are joined with 8-connectivity (run-length
 * labelling with union-find over the runs). One box per component.
 *
 * Feed a frame row by row: gst_mgllava_blob_detector_begin(), then
 * gst_mgllava_blob_detector_add_row() for every row top to bottom, then
 * gst_mgllava_blob_detector_end(). The detector keeps its scratch memory
 * between frames; one detector per thread.
 *
 * Copyright (C) 2026 mgllava authors
 * SPDX-License-Identifier: MIT
 */
#ifndef GST_MGLLAVA_BLOB_H
#define GST_MGLLAVA_BLOB_H

#include <glib.h>

G_BEGIN_DECLS

typedef struct {
    guint saturation_min;  /* 0-255: HSV S of a foreground pixel, scaled to 255 */
    guint value_min;       /* 0-255: HSV V of a foreground pixel */
    guint hue_tolerance;   /* degrees: neighbours join when their hues differ by at most this */
    guint min_area;        /* pixels; smaller components are dropped */
    guint max_objects;     /* 0 = no limit; keeps the highest confidences */
    gboolean achromatic;   /* also report white, grey and black components */
    guint white_value_min; /* achromatic: V at or above this is white */
} GstMgllavaBlobParams;

#define GST_MGLLAVA_BLOB_PARAMS_INIT                                                                                   \
    { 80, 60, 24, 64, 32, FALSE, 200 }

typedef struct {
    gint x1, y1, x2, y2; /* pixels, x2/y2 exclusive */
    guint area;          /* pixels in the component */
    gfloat hue;          /* mean hue in degrees (circular mean); -1 for achromatic */
    gfloat saturation;   /* mean saturation, 0-1 */
    gfloat confidence;   /* 0-1, from size and saturation */
    const gchar* label;  /* static string: a colour name */
} GstMgllavaBlob;

typedef struct _GstMgllavaBlobDetector GstMgllavaBlobDetector;

GstMgllavaBlobDetector* gst_mgllava_blob_detector_new(void);
/* NULL is a no-op */
void gst_mgllava_blob_detector_free(GstMgllavaBlobDetector* d);

void gst_mgllava_blob_detector_begin(GstMgllavaBlobDetector* d, const GstMgllavaBlobParams* p, gint width, gint height);
/* One row of @width pixels: @pstride bytes per pixel, R, G and B at byte
 * offsets @r, @g, @b inside a pixel. */
void gst_mgllava_blob_detector_add_row(GstMgllavaBlobDetector* d, const guint8* row, gint pstride, gint r, gint g,
                                       gint b);
/* Appends the components (GstMgllavaBlob) to @out, highest confidence
 * first, and returns how many. */
guint gst_mgllava_blob_detector_end(GstMgllavaBlobDetector* d, GArray* out);

/* Colour name of a hue in degrees: red, orange, yellow, green, cyan, blue,
 * purple or magenta. */
const gchar* gst_mgllava_blob_hue_name(gdouble hue);

G_END_DECLS

#endif
