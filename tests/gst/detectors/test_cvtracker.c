/* test_cvtracker.c: ROI metas written by Debian's cvtracker (opencv plugin,
 * gstreamer1.0-opencv) are read by the adapter. Skipped (exit 77) when
 * cvtracker is not installed.
 *
 * Copyright (C) 2026 mgllava authors
 * SPDX-License-Identifier: MIT
 */
#include <math.h>

#include <gst/check/gstcheck.h>

#include "dettest.h"
#include <gst/video/video.h>

#include "gstmgllavaroi.h"

#define W 320
#define H 240
#define N_FRAMES 60

typedef struct {
    guint frames, with_box;
    guint near; /* box centre within 20 px of the ball */
} Stats;

/* videotestsrc pattern=ball (motion=wavy): radius 20, centre at
 * r + (0.5 + 0.5 sin (2 pi t / 200)) (w - 2r), likewise y with sqrt (2) t */
static void ball_centre(guint t, gdouble* x, gdouble* y) {
    gdouble r = 20.0;

    *x = r + (0.5 + 0.5 * sin(2 * G_PI * t / 200.0)) * (W - 2 * r);
    *y = r + (0.5 + 0.5 * sin(2 * G_PI * sqrt(2.0) * t / 200.0)) * (H - 2 * r);
}

static GstPadProbeReturn probe_cb(GstPad* pad, GstPadProbeInfo* info, gpointer user_data) {
    Stats* s = user_data;
    GstBuffer* buf = GST_PAD_PROBE_INFO_BUFFER(info);
    GArray* boxes = g_array_new(FALSE, FALSE, sizeof(MglBox));
    GstMgllavaRoiFilter filter = {0, 0.0, NULL};
    gchar* object_only[] = {(gchar*)"object", NULL};

    filter.labels = object_only;
    gst_mgllava_roi_collect(buf, W, H, &filter, boxes);
    if (boxes->len > 0) {
        const MglBox* b = &g_array_index(boxes, MglBox, 0);
        gdouble bx, by;

        fail_unless_equals_int(boxes->len, 1);
        fail_unless_equals_string(b->label, "object");
        fail_unless_equals_float(b->score, 1.0f); /* cvtracker has no confidence */
        fail_unless(b->x1 >= 0 && b->y1 >= 0 && b->x2 <= W && b->y2 <= H);
        fail_unless(b->x2 > b->x1 && b->y2 > b->y1);
        ball_centre(s->frames, &bx, &by);
        if (fabs((b->x1 + b->x2) / 2 - bx) <= 20 && fabs((b->y1 + b->y2) / 2 - by) <= 20) s->near++;
        s->with_box++;
    }
    s->frames++;
    g_array_free(boxes, TRUE);
    return GST_PAD_PROBE_OK;
}

GST_START_TEST(test_cvtracker_ball) {
    gchar* launch = g_strdup_printf("videotestsrc pattern=ball num-buffers=%d ! "
                                    "video/x-raw,format=RGB,width=%d,height=%d,framerate=30/1 ! "
                                    "cvtracker object-initial-x=%d object-initial-y=%d "
                                    "object-initial-width=40 object-initial-height=40 ! fakesink name=sink",
                                    N_FRAMES, W, H, W / 2 - 20, H / 2 - 20);
    Stats s = {0, 0, 0};

    mgl_det_run_probed(launch, "sink", probe_cb, &s, 60);
    g_free(launch);

    g_print("cvtracker: %u frames, %u with a box, %u within 20 px of the "
            "ball\n",
            s.frames, s.with_box, s.near);
    fail_unless_equals_int(s.frames, N_FRAMES);
    fail_unless(s.with_box >= N_FRAMES * 8 / 10);
    fail_unless(s.near >= s.with_box * 8 / 10);
}

GST_END_TEST;

static Suite* cvtracker_suite(void) {
    Suite* s = suite_create("cvtracker");
    TCase* tc = tcase_create("general");

    suite_add_tcase(s, tc);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_cvtracker_ball);
    return s;
}

int main(int argc, char** argv) {
    GstElementFactory* f;

    mgl_det_check_init(&argc, &argv);
    f = gst_element_factory_find("cvtracker");
    if (f == NULL) {
        g_print("SKIP: cvtracker not installed (Debian: gstreamer1.0-opencv)\n");
        return 77;
    }
    gst_object_unref(f);
    return gst_check_run_suite(cvtracker_suite(), "cvtracker", __FILE__);
}
