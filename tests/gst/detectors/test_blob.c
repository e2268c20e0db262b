/* test_blob.c: mgllavablobdetect accuracy on rendered frames with known
 * boxes, and its formats and properties.
 *
 * Copyright (C) 2026 mgllava authors
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include <gst/check/gstcheck.h>

#include "dettest.h"
#include <gst/check/gstharness.h>
#include <gst/video/video.h>

#include "gstmgllavaroi.h"
#include "gstmgllavablob.h"
#include "scene.h"

#define W 640
#define H 480
#define N_SCENES 120

/* the frame source; swap for another generator with the same signature */
static MglSceneFunc scene_func = mgl_scene_shapes;

static gdouble iou(const MglBox* b, const MglSceneObject* o) {
    gdouble ix = MIN(b->x2, o->x2) - MAX(b->x1, o->x1);
    gdouble iy = MIN(b->y2, o->y2) - MAX(b->y1, o->y1);
    gdouble inter, uni;

    if (ix <= 0 || iy <= 0) return 0.0;
    inter = ix * iy;
    uni = (b->x2 - b->x1) * (b->y2 - b->y1) + (gdouble)(o->x2 - o->x1) * (o->y2 - o->y1) - inter;
    return inter / uni;
}

/* Renders scene @seed as RGB, pushes it through @h (which converts as it
 * likes) and returns the adapter's boxes. */
static GArray* detect_scene(GstHarness* h, guint seed, GArray* objects) {
    GstBuffer* buf = gst_buffer_new_allocate(NULL, W * H * 3, NULL);
    GArray* boxes = g_array_new(FALSE, FALSE, sizeof(MglBox));
    GstMapInfo map;
    GstBuffer* out;

    gst_buffer_map(buf, &map, GST_MAP_WRITE);
    g_array_set_size(objects, 0);
    scene_func(seed, map.data, W, H, W * 3, objects);
    gst_buffer_unmap(buf, &map);

    out = gst_harness_push_and_pull(h, buf);
    fail_unless(out != NULL);
    gst_mgllava_roi_collect(out, W, H, NULL, boxes);
    gst_mgllava_roi_boxes_copy_labels(boxes, 0); /* they outlive the buffer */
    gst_buffer_unref(out);
    return boxes;
}

typedef struct {
    guint objects, hits, labels_ok, detections, false_pos;
    gdouble iou_sum, iou_min;
} Score;

static void score_scene(GArray* boxes, GArray* objects, Score* s) {
    guint i, j;

    for (i = 0; i < objects->len; i++) {
        const MglSceneObject* o = &g_array_index(objects, MglSceneObject, i);
        gdouble best = 0.0;
        const MglBox* bb = NULL;

        for (j = 0; j < boxes->len; j++) {
            gdouble v = iou(&g_array_index(boxes, MglBox, j), o);

            if (v > best) {
                best = v;
                bb = &g_array_index(boxes, MglBox, j);
            }
        }
        s->objects++;
        s->iou_sum += best;
        s->iou_min = MIN(s->iou_min, best);
        if (best >= 0.9)
            s->hits++;
        else if (bb != NULL)
            GST_INFO("missed %s %s [%d %d %d %d], best IoU %.3f with %s [%g %g %g "
                     "%g]",
                     o->colour, o->shape, o->x1, o->y1, o->x2, o->y2, best, bb->label, bb->x1, bb->y1, bb->x2, bb->y2);
        else
            GST_INFO("missed %s %s [%d %d %d %d]", o->colour, o->shape, o->x1, o->y1, o->x2, o->y2);
        if (bb != NULL && strcmp(bb->label, o->colour) == 0)
            s->labels_ok++;
        else if (bb != NULL)
            GST_INFO("%s %s labelled %s", o->colour, o->shape, bb->label);
    }
    for (j = 0; j < boxes->len; j++) {
        gdouble best = 0.0;

        for (i = 0; i < objects->len; i++)
            best = MAX(best, iou(&g_array_index(boxes, MglBox, j), &g_array_index(objects, MglSceneObject, i)));
        s->detections++;
        if (best < 0.5) s->false_pos++;
    }
}

static void run_accuracy(const gchar* launch, const gchar* what, guint n_scenes, gdouble min_hit_rate) {
    GstHarness* h = gst_harness_new_parse(launch);
    GArray* objects = g_array_new(FALSE, FALSE, sizeof(MglSceneObject));
    Score s = {0, 0, 0, 0, 0, 0.0, 1.0};
    guint seed;

    gst_harness_set_src_caps_str(h, "video/x-raw,format=RGB,width=640,"
                                    "height=480,framerate=30/1");
    for (seed = 0; seed < n_scenes; seed++) {
        GArray* boxes = detect_scene(h, seed, objects);

        GST_INFO("scene %u (%s)", seed, what);
        score_scene(boxes, objects, &s);
        if (g_getenv("MGL_BLOB_DUMP") != NULL) {
            guint j;

            for (j = 0; j < boxes->len; j++) {
                const MglBox* b = &g_array_index(boxes, MglBox, j);

                g_print("scene %u det %s [%g %g %g %g] %.3f\n", seed, b->label, b->x1, b->y1, b->x2, b->y2, b->score);
            }
        }
        g_array_free(boxes, TRUE);
    }
    g_print("blob accuracy (%s): %u objects in %u scenes, IoU >= 0.9 on %u "
            "(%.1f%%), mean IoU %.4f, min IoU %.3f, colour label right on %u "
            "(%.1f%%), %u detections, %u false positives\n",
            what, s.objects, n_scenes, s.hits, 100.0 * s.hits / s.objects, s.iou_sum / s.objects, s.iou_min,
            s.labels_ok, 100.0 * s.labels_ok / s.objects, s.detections, s.false_pos);
    fail_unless(s.objects >= 5 * n_scenes / 2);
    fail_unless(s.hits >= min_hit_rate * s.objects, "IoU >= 0.9 on only %u of %u objects", s.hits, s.objects);
    fail_unless(s.labels_ok >= min_hit_rate * s.objects, "colour right on only %u of %u objects", s.labels_ok,
                s.objects);
    g_array_free(objects, TRUE);
    gst_harness_teardown(h);
}

GST_START_TEST(test_accuracy_rgbx) {
    run_accuracy("videoconvert ! video/x-raw,format=RGBx ! "
                 "mgllavablobdetect min-area=40 max-objects=0",
                 "RGBx", N_SCENES, 0.98);
}

GST_END_TEST;

GST_START_TEST(test_accuracy_packed_formats) {
    static const gchar* const formats[] = {"RGB", "BGR", "BGRx", "xRGB", "RGBA", "BGRA", "ABGR"};
    guint i;

    for (i = 0; i < G_N_ELEMENTS(formats); i++) {
        gchar* launch = g_strdup_printf("videoconvert ! video/x-raw,format=%s ! "
                                        "mgllavablobdetect min-area=40 max-objects=0",
                                        formats[i]);

        run_accuracy(launch, formats[i], 12, 0.98);
        g_free(launch);
    }
}

GST_END_TEST;

/* 4:2:0 chroma blurs edges by a pixel: the same bar, lower tolerance for the
 * smallest shapes */
GST_START_TEST(test_accuracy_yuv) {
    run_accuracy("videoconvert ! video/x-raw,format=I420 ! "
                 "mgllavablobdetect min-area=40 max-objects=0",
                 "I420", 40, 0.93);
    run_accuracy("videoconvert ! video/x-raw,format=NV12 ! "
                 "mgllavablobdetect min-area=40 max-objects=0",
                 "NV12", 40, 0.93);
}

GST_END_TEST;

static void fill_rect(guint8* rgb, gint x1, gint y1, gint x2, gint y2, guint8 r, guint8 g, guint8 b) {
    gint x, y;

    for (y = y1; y < y2; y++) {
        for (x = x1; x < x2; x++) {
            guint8* p = rgb + (y * W + x) * 3;

            p[0] = r;
            p[1] = g;
            p[2] = b;
        }
    }
}

static GArray* detect_rgb(const gchar* props, const guint8* rgb) {
    gchar* launch = g_strdup_printf("mgllavablobdetect %s", props);
    GstHarness* h = gst_harness_new_parse(launch);
    GstBuffer *buf = gst_buffer_new_memdup(rgb, W * H * 3), *out;
    GArray* boxes = g_array_new(FALSE, FALSE, sizeof(MglBox));

    gst_harness_set_src_caps_str(h, "video/x-raw,format=RGB,width=640,"
                                    "height=480,framerate=30/1");
    out = gst_harness_push_and_pull(h, buf);
    gst_mgllava_roi_collect(out, W, H, NULL, boxes);
    gst_mgllava_roi_boxes_copy_labels(boxes, 0); /* they outlive the buffer */
    gst_buffer_unref(out);
    gst_harness_teardown(h);
    g_free(launch);
    return boxes;
}

#define BOX(a, i) (&g_array_index((a), MglBox, (i)))

GST_START_TEST(test_connectivity_and_properties) {
    guint8* rgb = g_malloc(W * H * 3);
    GArray* boxes;
    gint i;

    memset(rgb, 128, W * H * 3);
    /* two red squares touching only at a corner: 8-connected, one blob */
    fill_rect(rgb, 10, 10, 30, 30, 230, 20, 20);
    fill_rect(rgb, 30, 30, 50, 50, 230, 20, 20);
    /* red next to blue, sharing an edge: different hues, two blobs */
    fill_rect(rgb, 100, 100, 140, 140, 230, 20, 20);
    fill_rect(rgb, 140, 100, 180, 140, 20, 20, 230);
    /* a small green square, 8x8 = 64 pixels */
    fill_rect(rgb, 300, 300, 308, 308, 20, 200, 20);
    /* a white and a black square (achromatic) */
    fill_rect(rgb, 400, 50, 440, 90, 250, 250, 250);
    fill_rect(rgb, 500, 50, 540, 90, 5, 5, 5);
    /* a pale (low saturation) orange square */
    fill_rect(rgb, 400, 300, 440, 340, 180, 160, 140);

    boxes = detect_rgb("min-area=64", rgb);
    fail_unless_equals_int(boxes->len, 4);
    /* sorted by confidence: the big ones first */
    for (i = 0; i < 4; i++)
        GST_INFO("%s [%g %g %g %g] %g", BOX(boxes, i)->label, BOX(boxes, i)->x1, BOX(boxes, i)->y1, BOX(boxes, i)->x2,
                 BOX(boxes, i)->y2, BOX(boxes, i)->score);
    fail_unless_equals_string(BOX(boxes, 3)->label, "green");
    fail_unless_equals_float(BOX(boxes, 3)->x1, 300);
    fail_unless_equals_float(BOX(boxes, 3)->x2, 308);
    for (i = 0; i < 3; i++) {
        const MglBox* b = BOX(boxes, i);

        if (b->x1 == 10) {
            fail_unless_equals_string(b->label, "red");
            fail_unless_equals_float(b->x2, 50);
            fail_unless_equals_float(b->y2, 50);
        } else if (b->x1 == 100) {
            fail_unless_equals_string(b->label, "red");
            fail_unless_equals_float(b->x2, 140);
        } else {
            fail_unless_equals_float(b->x1, 140);
            fail_unless_equals_string(b->label, "blue");
        }
        fail_unless(b->score > 0.0 && b->score <= 1.0);
    }
    g_array_free(boxes, TRUE);

    /* min-area drops the green square; max-objects keeps the two best */
    boxes = detect_rgb("min-area=65 max-objects=2", rgb);
    fail_unless_equals_int(boxes->len, 2);
    g_array_free(boxes, TRUE);

    /* a lower saturation threshold finds the pale square (S = 40/180) */
    boxes = detect_rgb("saturation-min=50", rgb);
    fail_unless_equals_int(boxes->len, 5);
    g_array_free(boxes, TRUE);

    /* achromatic: white, black and the grey background itself */
    boxes = detect_rgb("achromatic=true", rgb);
    {
        guint white = 0, black = 0, grey = 0;

        for (i = 0; i < (gint)boxes->len; i++) {
            const gchar* l = BOX(boxes, i)->label;

            white += strcmp(l, "white") == 0;
            black += strcmp(l, "black") == 0;
            grey += strcmp(l, "grey") == 0;
        }
        fail_unless_equals_int(white, 1);
        fail_unless_equals_int(black, 1);
        fail_unless(grey >= 1);
    }
    g_array_free(boxes, TRUE);
    g_free(rgb);
}

GST_END_TEST;

GST_START_TEST(test_hue_names) {
    static const struct {
        gdouble hue;
        const gchar* name;
    } t[] = {
        {0, "red"},       {359, "red"},       {14.9, "red"}, {15, "orange"}, {30, "orange"},
        {57, "yellow"},   {120, "green"},     {180, "cyan"}, {240, "blue"},  {275, "purple"},
        {315, "magenta"}, {344.9, "magenta"}, {-10, "red"},  {720, "red"},
    };
    guint i;

    for (i = 0; i < G_N_ELEMENTS(t); i++) fail_unless_equals_string(gst_mgllava_blob_hue_name(t[i].hue), t[i].name);
}

GST_END_TEST;

/* Edge cases of the core: empty, 1x1, all foreground, a frame-filling
 * checkerboard of single pixels (the worst case for run labelling). */
GST_START_TEST(test_core_edge_cases) {
    GstMgllavaBlobParams p = GST_MGLLAVA_BLOB_PARAMS_INIT;
    GstMgllavaBlobDetector* d = gst_mgllava_blob_detector_new();
    GArray* out = g_array_new(FALSE, FALSE, sizeof(GstMgllavaBlob));
    guint8 row[3 * 64];
    gint x, y;

    p.min_area = 1;
    p.max_objects = 0;

    gst_mgllava_blob_detector_begin(d, &p, 0, 0);
    fail_unless_equals_int(gst_mgllava_blob_detector_end(d, out), 0);

    row[0] = 255;
    row[1] = row[2] = 0;
    gst_mgllava_blob_detector_begin(d, &p, 1, 1);
    gst_mgllava_blob_detector_add_row(d, row, 3, 0, 1, 2);
    fail_unless_equals_int(gst_mgllava_blob_detector_end(d, out), 1);
    fail_unless_equals_string(g_array_index(out, GstMgllavaBlob, 0).label, "red");
    g_array_set_size(out, 0);

    /* single-pixel checkerboard: diagonal neighbours join (8-connectivity) */
    gst_mgllava_blob_detector_begin(d, &p, 64, 64);
    for (y = 0; y < 64; y++) {
        for (x = 0; x < 64; x++) {
            gboolean on = ((x + y) & 1) == 0;

            row[3 * x] = on ? 0 : 128;
            row[3 * x + 1] = on ? 0 : 128;
            row[3 * x + 2] = on ? 255 : 128;
        }
        gst_mgllava_blob_detector_add_row(d, row, 3, 0, 1, 2);
    }
    fail_unless_equals_int(gst_mgllava_blob_detector_end(d, out), 1);
    fail_unless_equals_int(g_array_index(out, GstMgllavaBlob, 0).area, 64 * 32);
    fail_unless_equals_int(g_array_index(out, GstMgllavaBlob, 0).x2, 64);
    g_array_set_size(out, 0);

    /* the same frame again reuses the scratch memory */
    gst_mgllava_blob_detector_begin(d, &p, 64, 64);
    for (y = 0; y < 64; y++) gst_mgllava_blob_detector_add_row(d, row, 3, 0, 1, 2);
    /* columns */
    fail_unless_equals_int(gst_mgllava_blob_detector_end(d, out), 32);

    g_array_free(out, TRUE);
    gst_mgllava_blob_detector_free(d);
}

GST_END_TEST;

static Suite* mgllavablobdetect_suite(void) {
    Suite* s = suite_create("mgllavablobdetect");
    TCase* tc = tcase_create("general");

    suite_add_tcase(s, tc);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_accuracy_rgbx);
    tcase_add_test(tc, test_accuracy_packed_formats);
    tcase_add_test(tc, test_accuracy_yuv);
    tcase_add_test(tc, test_connectivity_and_properties);
    tcase_add_test(tc, test_hue_names);
    tcase_add_test(tc, test_core_edge_cases);
    return s;
}

MGL_DET_CHECK_MAIN(mgllavablobdetect);
