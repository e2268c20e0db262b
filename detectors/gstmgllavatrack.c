/* gstmgllavatrack.c: see gstmgllavatrack.h.
 *
 * Copyright (C) 2026 mgllava authors
 * SPDX-License-Identifier: MIT
 */
#include "gstmgllavatrack.h"

#include <string.h>

typedef struct {
    GstMgllavaTrackBox box; /* the last detection; label owned */
    gint id;
    guint missed; /* frames since the last detection */
} Track;

struct _GstMgllavaTracker {
    GArray* tracks; /* Track */
    gint next_id;
    GArray* pairs; /* Pair: scratch */
};

typedef struct {
    gdouble iou;
    guint det, track;
} Pair;

static void track_clear(gpointer data) { g_free((gchar*)((Track*)data)->box.label); }

GstMgllavaTracker* gst_mgllava_tracker_new(void) {
    GstMgllavaTracker* t = g_new0(GstMgllavaTracker, 1);

    t->tracks = g_array_new(FALSE, FALSE, sizeof(Track));
    g_array_set_clear_func(t->tracks, track_clear);
    t->pairs = g_array_new(FALSE, FALSE, sizeof(Pair));
    t->next_id = 1;
    return t;
}

void gst_mgllava_tracker_free(GstMgllavaTracker* t) {
    if (!t) return;
    g_array_unref(t->tracks);
    g_array_unref(t->pairs);
    g_free(t);
}

void gst_mgllava_tracker_reset(GstMgllavaTracker* t) { g_array_set_size(t->tracks, 0); }

guint gst_mgllava_tracker_n_tracks(const GstMgllavaTracker* t) { return t->tracks->len; }

gdouble gst_mgllava_track_iou(const GstMgllavaTrackBox* a, const GstMgllavaTrackBox* b) {
    gdouble iw = MIN(a->x2, b->x2) - MAX(a->x1, b->x1);
    gdouble ih = MIN(a->y2, b->y2) - MAX(a->y1, b->y1);
    gdouble aa = (a->x2 - a->x1) * (a->y2 - a->y1);
    gdouble ab = (b->x2 - b->x1) * (b->y2 - b->y1);
    gdouble inter;

    if (a->x2 <= a->x1 || a->y2 <= a->y1 || b->x2 <= b->x1 || b->y2 <= b->y1) return 0.0;
    if (iw <= 0 || ih <= 0) return 0.0;
    inter = iw * ih;
    return inter / (aa + ab - inter);
}

/* highest IoU first; ties by detection, then track index (deterministic) */
static gint pair_cmp(gconstpointer pa, gconstpointer pb) {
    const Pair *a = pa, *b = pb;

    if (a->iou != b->iou) return a->iou > b->iou ? -1 : 1;
    if (a->det != b->det) return a->det < b->det ? -1 : 1;
    return a->track < b->track ? -1 : a->track > b->track;
}

static gint tracker_new_id(GstMgllavaTracker* t) {
    gint id = t->next_id;

    t->next_id = t->next_id == G_MAXINT ? 1 : t->next_id + 1;
    return id;
}

guint gst_mgllava_tracker_update(GstMgllavaTracker* t, const GstMgllavaTrackParams* p, const GstMgllavaTrackBox* boxes,
                                 guint n, gint* ids, gboolean* is_new) {
    guint n_tracks = t->tracks->len, i, j, n_new = 0;
    gboolean* track_used = g_new0(gboolean, n_tracks + 1);
    gboolean* det_used = g_new0(gboolean, n + 1);
    gdouble iou_min = p->iou_min > 0 ? p->iou_min : 1e-9;

    /* every (detection, track) pair that may continue the track */
    g_array_set_size(t->pairs, 0);
    for (i = 0; i < n; i++) {
        for (j = 0; j < n_tracks; j++) {
            const Track* tr = &g_array_index(t->tracks, Track, j);
            Pair pr;

            if (p->match_labels && g_strcmp0(boxes[i].label, tr->box.label) != 0) continue;
            pr.iou = gst_mgllava_track_iou(&boxes[i], &tr->box);
            if (pr.iou < iou_min) continue;
            pr.det = i;
            pr.track = j;
            g_array_append_val(t->pairs, pr);
        }
    }
    g_array_sort(t->pairs, pair_cmp);

    for (i = 0; i < t->pairs->len; i++) {
        const Pair* pr = &g_array_index(t->pairs, Pair, i);
        Track* tr;

        if (det_used[pr->det] || track_used[pr->track]) continue;
        det_used[pr->det] = track_used[pr->track] = TRUE;
        tr = &g_array_index(t->tracks, Track, pr->track);
        g_free((gchar*)tr->box.label);
        tr->box = boxes[pr->det];
        tr->box.label = g_strdup(boxes[pr->det].label);
        tr->missed = 0;
        ids[pr->det] = tr->id;
        if (is_new) is_new[pr->det] = FALSE;
    }

    /* tracks not seen: older by one frame, forgotten past max_age */
    for (j = n_tracks; j-- > 0;) {
        Track* tr = &g_array_index(t->tracks, Track, j);

        if (track_used[j]) continue;
        if (++tr->missed > p->max_age) g_array_remove_index(t->tracks, j);
    }

    /* detections not paired: new tracks */
    for (i = 0; i < n; i++) {
        Track tr;

        if (det_used[i]) continue;
        tr.box = boxes[i];
        tr.box.label = g_strdup(boxes[i].label);
        tr.id = tracker_new_id(t);
        tr.missed = 0;
        g_array_append_val(t->tracks, tr);
        ids[i] = tr.id;
        if (is_new) is_new[i] = TRUE;
        n_new++;
    }
    g_free(track_used);
    g_free(det_used);
    return n_new;
}
