/* test_track.c: the IoU tracker (detectors/gstmgllavatrack.c) and
 * mgllavablobdetect's track ids on mgllavascenesrc against the scene truth.
 *
 * Copyright (C) 2026 mgllava authors
 * SPDX-License-Identifier: MIT
 */
#include <gst/check/gstcheck.h>
#include <gst/video/video.h>

#include "dettest.h"
#include "gstmgllavatrack.h"
#include "mgl-scenes.h"

/* ---- the core --------------------------------------------------------- */

static GstMgllavaTrackBox box(gdouble x, gdouble y, gdouble w, gdouble h, const gchar* label) {
    GstMgllavaTrackBox b = {x, y, x + w, y + h, label};
    return b;
}

GST_START_TEST(test_core_moving) {
    GstMgllavaTracker* t = gst_mgllava_tracker_new();
    GstMgllavaTrackParams p = GST_MGLLAVA_TRACK_PARAMS_INIT;
    GstMgllavaTrackBox b[3];
    gint ids[3], id0[2];
    gboolean is_new[3];
    gint f;

    /* two objects moving 3 px a frame keep their ids, in either order */
    b[0] = box(10, 10, 40, 40, "red");
    b[1] = box(200, 100, 40, 40, "blue");
    fail_unless_equals_int(gst_mgllava_tracker_update(t, &p, b, 2, ids, is_new), 2);
    fail_unless(is_new[0] && is_new[1]);
    fail_unless(ids[0] != 0 && ids[1] != 0 && ids[0] != ids[1]);
    id0[0] = ids[0];
    id0[1] = ids[1];
    for (f = 1; f < 20; f++) {
        b[1] = box(10 + 3 * f, 10 + 2 * f, 40, 40, "red");
        b[0] = box(200 - 3 * f, 100, 40, 40, "blue");
        fail_unless_equals_int(gst_mgllava_tracker_update(t, &p, b, 2, ids, is_new), 0);
        fail_unless_equals_int(ids[1], id0[0]);
        fail_unless_equals_int(ids[0], id0[1]);
        fail_if(is_new[0] || is_new[1]);
    }
    /* the same place, another label: a new track (match_labels) */
    b[0] = box(200 - 3 * f, 100, 40, 40, "green");
    b[1] = box(10 + 3 * f, 10 + 2 * f, 40, 40, "red");
    fail_unless_equals_int(gst_mgllava_tracker_update(t, &p, b, 2, ids, is_new), 1);
    fail_unless(is_new[0] && !is_new[1]);
    fail_unless(ids[0] != id0[0] && ids[0] != id0[1]);
    fail_unless_equals_int(ids[1], id0[0]);
    gst_mgllava_tracker_free(t);
}

GST_END_TEST;

GST_START_TEST(test_core_max_age) {
    GstMgllavaTracker* t = gst_mgllava_tracker_new();
    GstMgllavaTrackParams p = GST_MGLLAVA_TRACK_PARAMS_INIT;
    GstMgllavaTrackBox b = box(50, 50, 30, 30, NULL);
    gint id, id0;
    guint f;

    p.max_age = 3;
    gst_mgllava_tracker_update(t, &p, &b, 1, &id0, NULL);
    /* missed for max_age frames: the track survives */
    for (f = 0; f < 3; f++) gst_mgllava_tracker_update(t, &p, NULL, 0, NULL, NULL);
    fail_unless_equals_int(gst_mgllava_tracker_n_tracks(t), 1);
    gst_mgllava_tracker_update(t, &p, &b, 1, &id, NULL);
    fail_unless_equals_int(id, id0);
    /* missed one frame more than max_age: it ends, and its id is not reused */
    for (f = 0; f < 4; f++) gst_mgllava_tracker_update(t, &p, NULL, 0, NULL, NULL);
    fail_unless_equals_int(gst_mgllava_tracker_n_tracks(t), 0);
    gst_mgllava_tracker_update(t, &p, &b, 1, &id, NULL);
    fail_unless(id != id0 && id != 0);
    /* a reset forgets the tracks, ids keep counting */
    gst_mgllava_tracker_reset(t);
    gst_mgllava_tracker_update(t, &p, &b, 1, &id0, NULL);
    fail_unless(id0 != id);
    /* below iou_min: a new track */
    b = box(70, 50, 30, 30, NULL); /* IoU with the last box 10/50 = 0.2 */
    gst_mgllava_tracker_update(t, &p, &b, 1, &id, NULL);
    fail_unless(id != id0);
    fail_unless(gst_mgllava_track_iou(&b, &b) == 1.0);
    gst_mgllava_tracker_free(t);
}

GST_END_TEST;

/* ---- mgllavablobdetect on the scene source ---------------------------- */

#define SEED 4242
#define SCENE_FRAMES 20
#define N_SCENES 6
#define W 640
#define H 480

typedef struct {
    guint frames, matched, objects;
    gint ids[N_SCENES][MGL_SCENE_MAX_OBJECTS]; /* each truth object's track id (0 = not seen yet) */
    guint consistent_errors;
    guint param_errors;
    guint extra_rois;
} TrackRun;

static gdouble iou_px(const int* a, guint x, guint y, guint w, guint h) {
    GstMgllavaTrackBox ta = {a[0], a[1], a[2], a[3], NULL}, tb = {x, y, x + (gdouble)w, y + (gdouble)h, NULL};
    return gst_mgllava_track_iou(&ta, &tb);
}

static GstPadProbeReturn track_probe(GstPad* pad, GstPadProbeInfo* info, gpointer user_data) {
    TrackRun* r = user_data;
    GstBuffer* buf = GST_PAD_PROBE_INFO_BUFFER(info);
    guint n = r->frames++, scene = n / SCENE_FRAMES, i, n_roi = 0;
    MglScene s;
    guint8* scratch = g_malloc(W * H * 3);
    GstMeta* meta;
    gpointer state = NULL;

    mgl_scene_make(&s, W, H, SEED, (gint)scene, 1, 6);
    mgl_scene_render(&s, (gint)(n % SCENE_FRAMES), scratch, W * 3, 3, FALSE);
    g_free(scratch);
    while ((meta = gst_buffer_iterate_meta_filtered(buf, &state, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))) {
        GstVideoRegionOfInterestMeta* roi = (GstVideoRegionOfInterestMeta*)meta;
        GstStructure* p = gst_video_region_of_interest_meta_get_param(roi, "object_id");
        gint pid = 0;
        gboolean found = FALSE;

        n_roi++;
        /* both places carry the same non-zero id */
        if (!p || !gst_structure_get_int(p, "id", &pid) || pid != roi->id || pid == 0) r->param_errors++;
        for (i = 0; i < (guint)s.n; i++) {
            if (iou_px(s.obj[i].box, roi->x, roi->y, roi->w, roi->h) < 0.5) continue;
            found = TRUE;
            r->matched++;
            if (r->ids[scene][i] == 0)
                r->ids[scene][i] = roi->id;
            else if (r->ids[scene][i] != roi->id)
                r->consistent_errors++;
        }
        if (!found) r->extra_rois++;
    }
    r->objects += (guint)s.n;
    return GST_PAD_PROBE_OK;
}

GST_START_TEST(test_blobdetect_ids_on_scenes) {
    gchar* launch =
        g_strdup_printf("mgllavascenesrc seed=%d scene-frames=%d num-buffers=%d ! "
                        "video/x-raw,format=RGB,width=%d,height=%d ! mgllavablobdetect ! fakesink name=sink",
                        SEED, SCENE_FRAMES, SCENE_FRAMES * N_SCENES, W, H);
    TrackRun* r = g_new0(TrackRun, 1);
    guint sc, i, j, k, kept = 0, expected_kept = 0;

    mgl_det_run_probed(launch, "sink", track_probe, r, 120);
    g_free(launch);

    g_print("blob tracks: %u frames, %u/%u truth objects matched, %u id changes, %u param errors, %u extra\n",
            r->frames, r->matched, r->objects, r->consistent_errors, r->param_errors, r->extra_rois);
    fail_unless_equals_int(r->frames, SCENE_FRAMES * N_SCENES);
    fail_unless_equals_int(r->matched, r->objects); /* every object, every frame */
    fail_unless_equals_int(r->extra_rois, 0);
    fail_unless_equals_int(r->param_errors, 0);
    /* an object keeps its id for its whole scene */
    fail_unless_equals_int(r->consistent_errors, 0);
    /* objects of one scene have distinct ids; an object of a new scene takes
     * an id of the scene before only where it is drawn in that object's
     * colour over it (IoU >= track-iou at the cut: the tracker cannot tell) */
    for (sc = 0; sc < N_SCENES; sc++) {
        MglScene s, prev;
        guint8* scratch = g_malloc(W * H * 3);

        mgl_scene_make(&s, W, H, SEED, (gint)sc, 1, 6);
        mgl_scene_render(&s, 0, scratch, W * 3, 3, FALSE);
        if (sc > 0) {
            mgl_scene_make(&prev, W, H, SEED, (gint)sc - 1, 1, 6);
            mgl_scene_render(&prev, SCENE_FRAMES - 1, scratch, W * 3, 3, FALSE);
        }
        g_free(scratch);
        for (i = 0; i < (guint)s.n; i++) {
            gboolean old = FALSE, may_keep = FALSE;

            fail_if(r->ids[sc][i] == 0);
            for (j = 0; j < i; j++) fail_if(r->ids[sc][i] == r->ids[sc][j]);
            if (sc == 0) continue;
            for (k = 0; k < (guint)prev.n; k++) {
                if (r->ids[sc][i] == r->ids[sc - 1][k]) old = TRUE;
                if (prev.obj[k].color == s.obj[i].color &&
                    iou_px(prev.obj[k].box, s.obj[i].box[0], s.obj[i].box[1], s.obj[i].box[2] - s.obj[i].box[0],
                           s.obj[i].box[3] - s.obj[i].box[1]) >= 0.3)
                    may_keep = TRUE;
            }
            kept += old;
            expected_kept += may_keep;
            fail_unless(!old || may_keep, "scene %u object %u kept an id of the scene before", sc, i);
        }
    }
    g_print("blob tracks: %u object(s) continued a track across a scene cut (%u could)\n", kept, expected_kept);
    fail_unless_equals_int(kept, expected_kept);
    g_free(r);
}

GST_END_TEST;

static Suite* track_suite(void) {
    Suite* s = suite_create("track");
    TCase* tc = tcase_create("general");

    suite_add_tcase(s, tc);
    tcase_set_timeout(tc, 200);
    tcase_add_test(tc, test_core_moving);
    tcase_add_test(tc, test_core_max_age);
    tcase_add_test(tc, test_blobdetect_ids_on_scenes);
    return s;
}

MGL_DET_CHECK_MAIN(track)
