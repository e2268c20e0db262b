/* test_pipeline.c: detector metas through a real pipeline with scaling.
 *
 * Copyright (C) 2026 mgllava authors
 * SPDX-License-Identifier: MIT
 */
#include <gst/check/gstcheck.h>

#include "dettest.h"
#include <gst/video/video.h>

#include "gstmgllavaroi.h"

typedef struct {
    gint width, height;
    GPtrArray* frames; /* GArray of MglBox per buffer */
} Probe;

static GstPadProbeReturn collect_probe(GstPad* pad, GstPadProbeInfo* info, gpointer user_data) {
    Probe* p = user_data;
    GArray* boxes = g_array_new(FALSE, FALSE, sizeof(MglBox));

    gst_mgllava_roi_collect(GST_PAD_PROBE_INFO_BUFFER(info), p->width, p->height, NULL, boxes);
    gst_mgllava_roi_boxes_copy_labels(boxes, 0); /* they outlive the buffer */
    g_ptr_array_add(p->frames, boxes);
    return GST_PAD_PROBE_OK;
}

static void probe_init(Probe* p, GstElement* pipeline, const gchar* element, const gchar* pad_name, gint width,
                       gint height) {
    GstElement* e = gst_bin_get_by_name(GST_BIN(pipeline), element);
    GstPad* pad = gst_element_get_static_pad(e, pad_name);

    p->width = width;
    p->height = height;
    p->frames = g_ptr_array_new_with_free_func((GDestroyNotify)g_array_unref);
    gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, collect_probe, p, NULL);
    gst_object_unref(pad);
    gst_object_unref(e);
}

static void run_to_eos(GstElement* pipeline) {
    GstBus* bus = gst_element_get_bus(pipeline);
    GstMessage* msg;

    fail_unless(gst_element_set_state(pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
    msg = gst_bus_timed_pop_filtered(bus, 30 * GST_SECOND, GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
    fail_unless(msg != NULL, "timeout");
    if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR) {
        GError* err = NULL;
        gchar* debug = NULL;

        gst_message_parse_error(msg, &err, &debug);
        fail("pipeline error: %s (%s)", err->message, debug);
    }
    gst_message_unref(msg);
    gst_element_set_state(pipeline, GST_STATE_NULL);
    gst_object_unref(bus);
}

#define BOX(a, i) (&g_array_index((a), MglBox, (i)))

/* mgllavablobdetect on colour bars, then videoscale to half size: the
 * adapter reads the same detections, scaled, with the same labels, in the
 * same order. */
GST_START_TEST(test_blobdetect_then_videoscale) {
    GstElement* pipeline = gst_parse_launch("videotestsrc num-buffers=3 "
                                            "pattern=smpte ! video/x-raw,format=RGBx,width=640,height=480 ! "
                                            "mgllavablobdetect max-objects=0 ! videoscale name=scale ! "
                                            "video/x-raw,width=320,height=240 ! fakesink name=sink",
                                            NULL);
    Probe before, after;
    guint f, i, total = 0;

    fail_unless(pipeline != NULL);
    probe_init(&before, pipeline, "scale", "sink", 640, 480);
    probe_init(&after, pipeline, "sink", "sink", 320, 240);
    run_to_eos(pipeline);

    fail_unless_equals_int(before.frames->len, 3);
    fail_unless_equals_int(after.frames->len, 3);
    for (f = 0; f < 3; f++) {
        GArray* a = g_ptr_array_index(before.frames, f);
        GArray* b = g_ptr_array_index(after.frames, f);

        fail_unless(a->len >= 5, "only %u blobs on colour bars", a->len);
        fail_unless_equals_int(a->len, b->len);
        for (i = 0; i < a->len; i++) {
            fail_unless_equals_string(BOX(a, i)->label, BOX(b, i)->label);
            /* GStreamer 1.22's scale transform drops the param structures, so
             * the confidence reads 1.0 after videoscale; the detector attached
             * its boxes best first, and equal confidences keep that order */
            fail_unless(BOX(b, i)->score == BOX(a, i)->score || BOX(b, i)->score == 1.0f);
            fail_unless(fabsf(BOX(a, i)->x1 / 2 - BOX(b, i)->x1) <= 1.0f);
            fail_unless(fabsf(BOX(a, i)->y1 / 2 - BOX(b, i)->y1) <= 1.0f);
            fail_unless(fabsf(BOX(a, i)->x2 / 2 - BOX(b, i)->x2) <= 1.0f);
            fail_unless(fabsf(BOX(a, i)->y2 / 2 - BOX(b, i)->y2) <= 1.0f);
        }
        total += a->len;
    }
    GST_INFO("%u boxes compared", total);
    g_ptr_array_unref(before.frames);
    g_ptr_array_unref(after.frames);
    gst_object_unref(pipeline);
}

GST_END_TEST;

static Suite* pipeline_suite(void) {
    Suite* s = suite_create("detectors-pipeline");
    TCase* tc = tcase_create("general");

    suite_add_tcase(s, tc);
    tcase_set_timeout(tc, 120); /* slow under AddressSanitizer */
    tcase_add_test(tc, test_blobdetect_then_videoscale);
    return s;
}

MGL_DET_CHECK_MAIN(pipeline);
