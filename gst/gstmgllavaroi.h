/* gstmgllavaroi.h: upstream detections -> engine boxes.
 *
 * Reads GstVideoRegionOfInterestMeta from a buffer as real elements write it
 * and turns it into MglBox (engine/include/mgllava.h) in the buffer's pixel
 * space: label from the "detection" param's "label" or the roi_type,
 * confidence from a param structure ("detection" with "confidence", as DL
 * Streamer writes it, and other common spellings),
 * clipped to the frame, degenerate boxes dropped, and the filter's
 * object-labels / min-object-size / max-objects applied. mgllavafilter's
 * input adapter; mgllavajson writes the same boxes. */
#ifndef GST_MGLLAVA_ROI_H
#define GST_MGLLAVA_ROI_H

#include <gst/gst.h>
#include <gst/video/video.h>

#include "mgllava.h"

G_BEGIN_DECLS

typedef struct {
    gint max_objects;        /* 0 = no limit; keeps the highest-confidence boxes */
    gdouble min_object_size; /* minimum width and height in pixels */
    gchar** labels;          /* NULL or empty = every label; else only these (exact match) */
} GstMgllavaRoiFilter;

/* Appends MglBox entries to `boxes` (a GArray of MglBox). Labels are never
 * interned (they are data): each points at a string of the buffer's ROI metas
 * (gst_mgllava_roi_meta_get_label()), valid while `buf` and its metas live;
 * copy them (gst_mgllava_roi_boxes_copy_labels()) to keep the boxes longer.
 * Returns the number of boxes appended.
 *
 * The appended boxes are sorted by descending confidence; equal confidences
 * keep the order of the metas on the buffer. `width`/`height` are the
 * buffer's frame size (the ROI metas are in that pixel space); boxes are
 * clipped to [0,width]x[0,height] and dropped when empty after clipping.
 * `filter` may be NULL (no filtering). See docs/detectors.md. */
guint gst_mgllava_roi_collect(GstBuffer* buf, gint width, gint height, const GstMgllavaRoiFilter* filter,
                              GArray* boxes);

/* Replaces the labels of boxes[from..] with copies that `boxes` owns: they
 * are freed with the array (its clear function, set here, frees them;
 * call it only on arrays whose labels all came from this function). */
void gst_mgllava_roi_boxes_copy_labels(GArray* boxes, guint from);

/* The label of one ROI meta as gst_mgllava_roi_collect() reads it (see
 * gstmgllavaroi.c); never NULL, valid while the meta lives. */
const gchar* gst_mgllava_roi_meta_get_label(GstVideoRegionOfInterestMeta* roi);

/* The confidence of one ROI meta as gst_mgllava_roi_collect() reads it, in
 * [0, 1]. Returns FALSE when no param structure carries one. */
gboolean gst_mgllava_roi_meta_get_confidence(GstVideoRegionOfInterestMeta* roi, gdouble* confidence);

G_END_DECLS

#endif
