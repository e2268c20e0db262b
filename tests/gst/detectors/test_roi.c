/* test_roi.c: gst_mgllava_roi_collect() on hand-made ROI metas.
 *
 * Copyright (C) 2026 mgllava authors
 * SPDX-License-Identifier: MIT
 */
#include <math.h>

#include <gst/check/gstcheck.h>

#include "dettest.h"
#include <gst/check/gstharness.h>
#include <gst/video/video.h>

#include "gstmgllavaroi.h"

static GstVideoRegionOfInterestMeta* add_roi(GstBuffer* buf, const gchar* type, guint x, guint y, guint w, guint h,
                                             GstStructure* param) {
    GstVideoRegionOfInterestMeta* roi = gst_buffer_add_video_region_of_interest_meta(buf, type, x, y, w, h);

    if (param != NULL) gst_video_region_of_interest_meta_add_param(roi, param);
    return roi;
}

static GArray* collect(GstBuffer* buf, gint w, gint h, const GstMgllavaRoiFilter* filter) {
    GArray* boxes = g_array_new(FALSE, FALSE, sizeof(MglBox));

    gst_mgllava_roi_collect(buf, w, h, filter, boxes);
    return boxes;
}

#define BOX(a, i) (&g_array_index((a), MglBox, (i)))

GST_START_TEST(test_label_and_box) {
    GstBuffer* buf = gst_buffer_new();
    GArray* boxes;
    MglBox* b;

    add_roi(buf, "person", 10, 20, 30, 40, NULL);
    boxes = collect(buf, 640, 480, NULL);
    fail_unless_equals_int(boxes->len, 1);
    b = BOX(boxes, 0);
    fail_unless_equals_string(b->label, "person");
    /* the roi_type's own string: nothing new interned */
    fail_unless(b->label == g_quark_to_string(g_quark_from_string("person")));
    fail_unless_equals_float(b->x1, 10);
    fail_unless_equals_float(b->y1, 20);
    fail_unless_equals_float(b->x2, 40);
    fail_unless_equals_float(b->y2, 60);
    fail_unless_equals_float(b->score, 1.0); /* no confidence: 1.0 */
    g_array_free(boxes, TRUE);
    gst_buffer_unref(buf);
}

GST_END_TEST;

GST_START_TEST(test_confidence_spellings) {
    GstBuffer* buf = gst_buffer_new();
    GArray* boxes;
    guint i;
    /* expected scores, in the order they come out (descending) */
    static const gfloat expect[] = {1.0f, 1.0f, 1.0f, 0.9f, 0.8f, 0.7f, 0.6f, 0.5f, 0.4f, 0.3f, 0.0f};

    /* DL Streamer */
    add_roi(buf, "a", 0, 0, 10, 10,
            gst_structure_new("detection", "confidence", G_TYPE_DOUBLE, 0.9, "label_id", G_TYPE_INT, 3, NULL));
    /* onnxobjectdetector (GStreamer 1.20-1.22) */
    add_roi(buf, "b", 0, 0, 10, 10,
            gst_structure_new("extra-data", "label", G_TYPE_STRING, "b", "score", G_TYPE_DOUBLE, 0.8, NULL));
    /* other spellings and types */
    add_roi(buf, "c", 0, 0, 10, 10, gst_structure_new("object", "probability", G_TYPE_FLOAT, 0.7f, NULL));
    add_roi(buf, "d", 0, 0, 10, 10, gst_structure_new("meta", "prob", G_TYPE_DOUBLE, 0.6, NULL));
    add_roi(buf, "e", 0, 0, 10, 10, gst_structure_new("x", "conf", G_TYPE_DOUBLE, 0.5, NULL));
    add_roi(buf, "f", 0, 0, 10, 10, gst_structure_new("y", "score", G_TYPE_FLOAT, 0.4f, NULL));
    add_roi(buf, "g", 0, 0, 10, 10, gst_structure_new("z", "confidence", G_TYPE_DOUBLE, 0.3, NULL));
    /* clamped */
    add_roi(buf, "h", 0, 0, 10, 10, gst_structure_new("detection", "confidence", G_TYPE_DOUBLE, 7.0, NULL));
    add_roi(buf, "i", 0, 0, 10, 10, gst_structure_new("detection", "confidence", G_TYPE_DOUBLE, -2.0, NULL));
    /* unusable: NaN, a string, no number -> 1.0 */
    add_roi(buf, "j", 0, 0, 10, 10, gst_structure_new("detection", "confidence", G_TYPE_DOUBLE, NAN, NULL));
    add_roi(buf, "k", 0, 0, 10, 10, gst_structure_new("detection", "confidence", G_TYPE_STRING, "high", NULL));

    boxes = collect(buf, 640, 480, NULL);
    fail_unless_equals_int(boxes->len, G_N_ELEMENTS(expect));
    for (i = 0; i < boxes->len; i++)
        fail_unless(fabsf(BOX(boxes, i)->score - expect[i]) < 1e-6, "box %u (%s): score %f, expected %f", i,
                    BOX(boxes, i)->label, BOX(boxes, i)->score, expect[i]);
    /* the three 1.0s keep their meta order: h (clamped), j, k */
    fail_unless_equals_string(BOX(boxes, 0)->label, "h");
    fail_unless_equals_string(BOX(boxes, 1)->label, "j");
    fail_unless_equals_string(BOX(boxes, 2)->label, "k");
    fail_unless_equals_string(BOX(boxes, 10)->label, "i");
    g_array_free(boxes, TRUE);
    gst_buffer_unref(buf);
}

GST_END_TEST;

GST_START_TEST(test_generic_roi_type_uses_param_label) {
    GstBuffer* buf = gst_buffer_new();
    GArray* boxes;

    add_roi(buf, "onnx-object_detector", 1, 2, 3, 4,
            gst_structure_new("extra-data", "label", G_TYPE_STRING, "dog", "score", G_TYPE_DOUBLE, 0.25, NULL));
    boxes = collect(buf, 640, 480, NULL);
    fail_unless_equals_int(boxes->len, 1);
    fail_unless_equals_string(BOX(boxes, 0)->label, "dog");
    /* not interned: the param structure's own string */
    fail_unless(g_quark_try_string("dog") == 0);
    fail_unless_equals_float(BOX(boxes, 0)->score, 0.25f);
    g_array_free(boxes, TRUE);
    gst_buffer_unref(buf);
}

GST_END_TEST;

/* A fresh quark's value: GLib numbers quarks in creation order, so the
 * difference of two probes counts the quarks made in between. */
static GQuark quark_probe(void) {
    static guint n;
    gchar* name = g_strdup_printf("test-roi-quark-probe-%u-%p", n++, &n);
    GQuark q = g_quark_from_string(name);

    g_free(name);
    return q;
}

/* Labels are data: 200k distinct labels (in a "detection" param under the
 * detectors' overflow roi_type, and in an onnxobjectdetector-style
 * "extra-data" param under its generic roi_type) intern nothing, and each
 * box carries its own label, also in an owning copy. */
GST_START_TEST(test_labels_not_interned) {
    const guint n_labels = 200000, per_buffer = 100;
    GQuark labelled = g_quark_from_static_string("mgllava-labelled");
    GQuark onnx = g_quark_from_static_string("onnx-object_detector");
    GArray* boxes = g_array_new(FALSE, FALSE, sizeof(MglBox));
    GQuark before, after;
    guint i, j;

    /* the types, the structure names and fields exist before the probe */
    {
        GstBuffer* warm = gst_buffer_new();
        GstVideoRegionOfInterestMeta* r = gst_buffer_add_video_region_of_interest_meta_id(warm, labelled, 0, 0, 4, 4);
        gst_video_region_of_interest_meta_add_param(
            r, gst_structure_new("detection", "confidence", G_TYPE_DOUBLE, 0.5, "label", G_TYPE_STRING, "warm", NULL));
        gst_video_region_of_interest_meta_add_param(
            r, gst_structure_new("extra-data", "label", G_TYPE_STRING, "warm", "score", G_TYPE_DOUBLE, 0.5, NULL));
        gst_mgllava_roi_collect(warm, 64, 64, NULL, boxes);
        g_array_set_size(boxes, 0);
        gst_buffer_unref(warm);
    }
    before = quark_probe();
    for (i = 0; i < n_labels; i += per_buffer) {
        GstBuffer* buf = gst_buffer_new();
        GArray* owned = g_array_new(FALSE, FALSE, sizeof(MglBox));

        for (j = 0; j < per_buffer; j++) {
            gchar label[32];
            gboolean det = ((i + j) & 1) == 0;
            GstVideoRegionOfInterestMeta* r =
                gst_buffer_add_video_region_of_interest_meta_id(buf, det ? labelled : onnx, j, j, 8, 8);

            g_snprintf(label, sizeof label, "label-%u", i + j);
            gst_video_region_of_interest_meta_add_param(
                r, det ? gst_structure_new("detection", "confidence", G_TYPE_DOUBLE, 1.0 - j * 0.001, "label",
                                           G_TYPE_STRING, label, NULL)
                       : gst_structure_new("extra-data", "label", G_TYPE_STRING, label, "score", G_TYPE_DOUBLE,
                                           1.0 - j * 0.001, NULL));
        }
        g_array_set_size(boxes, 0);
        fail_unless_equals_int(gst_mgllava_roi_collect(buf, 640, 480, NULL, boxes), per_buffer);
        gst_mgllava_roi_collect(buf, 640, 480, NULL, owned);
        gst_mgllava_roi_boxes_copy_labels(owned, 0);
        gst_buffer_unref(buf);
        /* descending confidence = meta order; the copies outlive the buffer */
        for (j = 0; j < per_buffer; j += 37) {
            gchar label[32];

            g_snprintf(label, sizeof label, "label-%u", i + j);
            fail_unless_equals_string(BOX(owned, j)->label, label);
        }
        g_array_unref(owned);
    }
    after = quark_probe();
    /* before the adapter stopped interning: 100000 (every generic-type label) */
    fail_unless(after - before <= 1, "%u quarks made for %u labels", after - before - 1, n_labels);
    g_array_unref(boxes);
}

GST_END_TEST;

GST_START_TEST(test_clipping_and_degenerate) {
    GstBuffer* buf = gst_buffer_new();
    GArray* boxes;

    add_roi(buf, "right", 600, 400, 100, 100, NULL);        /* clipped to 640x480 */
    add_roi(buf, "outside", 700, 10, 10, 10, NULL);         /* wholly outside: dropped */
    add_roi(buf, "below", 10, 480, 10, 10, NULL);           /* starts at the edge: dropped */
    add_roi(buf, "empty-w", 10, 10, 0, 10, NULL);           /* dropped */
    add_roi(buf, "empty-h", 10, 10, 10, 0, NULL);           /* dropped */
    add_roi(buf, "huge", 5, 6, G_MAXUINT, G_MAXUINT, NULL); /* no overflow */
    boxes = collect(buf, 640, 480, NULL);
    fail_unless_equals_int(boxes->len, 2);
    fail_unless_equals_string(BOX(boxes, 0)->label, "right");
    fail_unless_equals_float(BOX(boxes, 0)->x1, 600);
    fail_unless_equals_float(BOX(boxes, 0)->y1, 400);
    fail_unless_equals_float(BOX(boxes, 0)->x2, 640);
    fail_unless_equals_float(BOX(boxes, 0)->y2, 480);
    fail_unless_equals_string(BOX(boxes, 1)->label, "huge");
    fail_unless_equals_float(BOX(boxes, 1)->x1, 5);
    fail_unless_equals_float(BOX(boxes, 1)->y1, 6);
    fail_unless_equals_float(BOX(boxes, 1)->x2, 640);
    fail_unless_equals_float(BOX(boxes, 1)->y2, 480);
    g_array_free(boxes, TRUE);

    /* a frame with no size gives nothing */
    boxes = collect(buf, 0, 480, NULL);
    fail_unless_equals_int(boxes->len, 0);
    g_array_free(boxes, TRUE);
    gst_buffer_unref(buf);
}

GST_END_TEST;

GST_START_TEST(test_filters) {
    GstBuffer* buf = gst_buffer_new();
    gchar* labels[] = {(gchar*)"cat", (gchar*)"dog", NULL};
    gchar* no_labels[] = {NULL};
    GstMgllavaRoiFilter filter = {0, 20.0, labels};
    GArray* boxes;

    add_roi(buf, "cat", 0, 0, 20, 20, NULL);     /* kept */
    add_roi(buf, "cat", 0, 0, 19, 40, NULL);     /* too narrow */
    add_roi(buf, "dog", 0, 0, 40, 19, NULL);     /* too short */
    add_roi(buf, "dog", 630, 0, 40, 40, NULL);   /* 10 wide after clipping */
    add_roi(buf, "car", 0, 0, 50, 50, NULL);     /* label not wanted */
    add_roi(buf, "catfish", 0, 0, 50, 50, NULL); /* exact match only */
    add_roi(buf, "dog", 100, 100, 20, 30, NULL);
    boxes = collect(buf, 640, 480, &filter);
    fail_unless_equals_int(boxes->len, 2);
    fail_unless_equals_string(BOX(boxes, 0)->label, "cat");
    fail_unless_equals_string(BOX(boxes, 1)->label, "dog");
    g_array_free(boxes, TRUE);

    /* an empty label list means every label */
    filter.labels = no_labels;
    filter.min_object_size = 0;
    boxes = collect(buf, 640, 480, &filter);
    fail_unless_equals_int(boxes->len, 7);
    g_array_free(boxes, TRUE);
    gst_buffer_unref(buf);
}

GST_END_TEST;

GST_START_TEST(test_max_objects_keeps_highest) {
    GstBuffer* buf = gst_buffer_new();
    GstMgllavaRoiFilter filter = {3, 0.0, NULL};
    static const gdouble conf[] = {0.2, 0.9, 0.5, 0.9, 0.7, 0.1};
    static const gchar* const expect[] = {"o1", "o3", "o4"};
    GArray* boxes;
    guint i;

    for (i = 0; i < G_N_ELEMENTS(conf); i++) {
        gchar name[8];

        g_snprintf(name, sizeof(name), "o%u", i);
        add_roi(buf, name, i, i, 10, 10, gst_structure_new("detection", "confidence", G_TYPE_DOUBLE, conf[i], NULL));
    }

    /* appends to what the array already holds */
    boxes = g_array_new(FALSE, FALSE, sizeof(MglBox));
    g_array_set_size(boxes, 1);
    BOX(boxes, 0)->label = "previous";
    fail_unless_equals_int(gst_mgllava_roi_collect(buf, 640, 480, &filter, boxes), 3);
    fail_unless_equals_int(boxes->len, 4);
    fail_unless_equals_string(BOX(boxes, 0)->label, "previous");
    for (i = 0; i < 3; i++) fail_unless_equals_string(BOX(boxes, i + 1)->label, expect[i]);
    fail_unless_equals_float(BOX(boxes, 1)->x1, 1); /* o1 before o3: meta order */
    g_array_free(boxes, TRUE);

    /* no limit: all, still sorted */
    filter.max_objects = 0;
    boxes = collect(buf, 640, 480, &filter);
    fail_unless_equals_int(boxes->len, 6);
    fail_unless_equals_string(BOX(boxes, 5)->label, "o5");
    g_array_free(boxes, TRUE);
    gst_buffer_unref(buf);
}

GST_END_TEST;

GST_START_TEST(test_other_metas_ignored) {
    GstBuffer* buf = gst_buffer_new_allocate(NULL, 64 * 48 * 3, NULL);
    GArray* boxes;

    gst_buffer_add_video_meta(buf, GST_VIDEO_FRAME_FLAG_NONE, GST_VIDEO_FORMAT_RGB, 64, 48);
    boxes = collect(buf, 64, 48, NULL);
    fail_unless_equals_int(boxes->len, 0);
    g_array_free(boxes, TRUE);
    gst_buffer_unref(buf);
}

GST_END_TEST;

/* Upstream scaled the frame: GStreamer's ROI meta transform scales x, y, w
 * and h (integer arithmetic: each value times new size / old size,
 * truncated), so the adapter reads boxes in the scaled frame's pixels. In
 * GStreamer 1.22 the scale transform does not copy the param structures:
 * the confidence is lost and reads as 1.0, and equal confidences keep the
 * metas' order. */
GST_START_TEST(test_videoscale_scales_roi) {
    GstHarness* h = gst_harness_new("videoscale");
    GstVideoRegionOfInterestMeta* roi;
    GstBuffer *in, *out;
    GArray* boxes;
    gboolean params_kept;
    const MglBox *car, *sign;

    gst_harness_set_src_caps_str(h, "video/x-raw,format=RGB,width=640,height=480,framerate=30/1");
    gst_harness_set_sink_caps_str(h, "video/x-raw,format=RGB,width=320,height=240,framerate=30/1");

    in = gst_harness_create_buffer(h, 640 * 480 * 3);
    gst_buffer_memset(in, 0, 0, 640 * 480 * 3);
    add_roi(in, "car", 100, 50, 201, 101, gst_structure_new("detection", "confidence", G_TYPE_DOUBLE, 0.7, NULL));
    add_roi(in, "sign", 600, 440, 40, 40, NULL);

    out = gst_harness_push_and_pull(h, in);
    fail_unless(out != NULL);
    roi = gst_buffer_get_video_region_of_interest_meta_id(out, 0);
    fail_unless(roi != NULL);
    params_kept = gst_video_region_of_interest_meta_get_param(roi, "detection") != NULL;
    GST_INFO("videoscale %s the ROI params", params_kept ? "kept" : "dropped");
#if !GST_CHECK_VERSION(1, 23, 0)
    fail_if(params_kept, "GStreamer 1.22 now keeps params: update "
                         "docs/detectors.md");
#endif

    boxes = collect(out, 320, 240, NULL);
    fail_unless_equals_int(boxes->len, 2);
    if (params_kept) {
        sign = BOX(boxes, 0);
        car = BOX(boxes, 1);
        fail_unless_equals_float(car->score, 0.7f);
    } else {
        car = BOX(boxes, 0); /* both 1.0: meta order */
        sign = BOX(boxes, 1);
        fail_unless_equals_float(car->score, 1.0f);
    }
    fail_unless_equals_string(sign->label, "sign");
    fail_unless_equals_float(sign->x1, 300);
    fail_unless_equals_float(sign->y1, 220);
    fail_unless_equals_float(sign->x2, 320);
    fail_unless_equals_float(sign->y2, 240);
    fail_unless_equals_string(car->label, "car");
    /* 100,50 201x101 -> 50,25 100x50: each value scaled and truncated */
    fail_unless_equals_float(car->x1, 50);
    fail_unless_equals_float(car->y1, 25);
    fail_unless_equals_float(car->x2, 150);
    fail_unless_equals_float(car->y2, 75);
    g_array_free(boxes, TRUE);
    gst_buffer_unref(out);
    gst_harness_teardown(h);
}

GST_END_TEST;

static Suite* mglroi_suite(void) {
    Suite* s = suite_create("mglroi");
    TCase* tc = tcase_create("general");

    suite_add_tcase(s, tc);
    tcase_set_timeout(tc, 120); /* slow under AddressSanitizer */
    tcase_add_test(tc, test_label_and_box);
    tcase_add_test(tc, test_confidence_spellings);
    tcase_add_test(tc, test_generic_roi_type_uses_param_label);
    tcase_add_test(tc, test_labels_not_interned);
    tcase_add_test(tc, test_clipping_and_degenerate);
    tcase_add_test(tc, test_filters);
    tcase_add_test(tc, test_max_objects_keeps_highest);
    tcase_add_test(tc, test_other_metas_ignored);
    tcase_add_test(tc, test_videoscale_scales_roi);
    return s;
}

MGL_DET_CHECK_MAIN(mglroi);
