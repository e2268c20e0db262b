/* gstmgllavatrack.h: a simple IoU tracker (no GStreamer).
 *
 * Gives each detection of a frame a track id that stays the same while the
 * object moves: a detection continues the track whose last box overlaps it
 * most (intersection over union at least iou_min; with match_labels only a
 * track of the same label), pairs taken greedily from the highest IoU down,
 * so each track and each detection is paired at most once. A detection left
 * unpaired starts a new track (ids 1, 2, 3, ...; never 0, which DL Streamer
 * and GstVideoRegionOfInterestMeta read as "no track"). A track left unpaired
 * survives max_age frames without a detection (a missed detection or a short
 * occlusion), then is forgotten; its id is never given again.
 *
 * Used by mgllavablobdetect (track=true) and by mgllavafilter for ROI metas
 * that carry no track id of their own (cvtracker's).
 *
 * Copyright (C) 2026 mgllava authors
 * SPDX-License-Identifier: MIT
 */
#ifndef GST_MGLLAVA_TRACK_H
#define GST_MGLLAVA_TRACK_H

#include <glib.h>

G_BEGIN_DECLS

typedef struct {
    gdouble x1, y1, x2, y2; /* pixels, x2/y2 exclusive */
    const gchar* label;     /* may be NULL (matches only NULL with match_labels) */
} GstMgllavaTrackBox;

typedef struct {
    gdouble iou_min;       /* (0, 1]: the least overlap that continues a track */
    guint max_age;         /* frames a track survives without a detection */
    gboolean match_labels; /* a track continues only with its own label */
} GstMgllavaTrackParams;

#define GST_MGLLAVA_TRACK_PARAMS_INIT                                                                                  \
    { 0.3, 5, TRUE }

typedef struct _GstMgllavaTracker GstMgllavaTracker;

GstMgllavaTracker* gst_mgllava_tracker_new(void);
/* NULL is a no-op */
void gst_mgllava_tracker_free(GstMgllavaTracker* t);
/* Forgets every track (a new stream, a flush); ids keep counting up. */
void gst_mgllava_tracker_reset(GstMgllavaTracker* t);

/* One frame: @ids[i] gets the track id of @boxes[i], @is_new[i] (may be
 * NULL) whether that track starts at this frame. Returns the number of new
 * tracks. */
guint gst_mgllava_tracker_update(GstMgllavaTracker* t, const GstMgllavaTrackParams* p, const GstMgllavaTrackBox* boxes,
                                 guint n, gint* ids, gboolean* is_new);

/* Tracks alive (seen within max_age frames). */
guint gst_mgllava_tracker_n_tracks(const GstMgllavaTracker* t);

/* Intersection over union of two boxes (0 when either is empty). */
gdouble gst_mgllava_track_iou(const GstMgllavaTrackBox* a, const GstMgllavaTrackBox* b);

G_END_DECLS

#endif
