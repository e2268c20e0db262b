/* test_boxes.c: mgllavaboxes on each file layout, and on bad files.
 *
 * Copyright (C) 2026 mgllava authors
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include <glib/gstdio.h>
#include <gst/check/gstcheck.h>

#include "dettest.h"
#include <gst/check/gstharness.h>
#include <gst/video/video.h>

#include "gstmgllavadetmeta.h"
#include "gstmgllavaroi.h"
#include "mgl-detections.h"

#define W 640
#define H 480
#define FRAME_NS ((GstClockTime)33333333)

static gchar* tmpdir;

static gchar* write_file(const gchar* name, const gchar* content) {
    gchar* path = g_build_filename(tmpdir, name, NULL);

    fail_unless(g_file_set_contents(path, content, -1, NULL));
    return path;
}

/* Pushes @n frames through mgllavaboxes and returns, per frame, the boxes
 * the adapter reads (a GPtrArray of GArray of MglBox). */
static GPtrArray* run_frames(const gchar* path, const gchar* extra, guint n) {
    gchar* launch = g_strdup_printf("mgllavaboxes location=\"%s\" %s", path, extra ? extra : "");
    GstHarness* h = gst_harness_new_parse(launch);
    GPtrArray* frames = g_ptr_array_new_with_free_func((GDestroyNotify)g_array_unref);
    guint i;

    gst_harness_set_src_caps_str(h, "video/x-raw,format=RGB,width=640,"
                                    "height=480,framerate=30/1");
    for (i = 0; i < n; i++) {
        GstBuffer* buf = gst_harness_create_buffer(h, W * H * 3);
        GArray* boxes = g_array_new(FALSE, FALSE, sizeof(MglBox));
        GstBuffer* out;

        GST_BUFFER_PTS(buf) = i * FRAME_NS;
        GST_BUFFER_DURATION(buf) = FRAME_NS;
        out = gst_harness_push_and_pull(h, buf);
        fail_unless(out != NULL, "frame %u", i);
        gst_mgllava_roi_collect(out, W, H, NULL, boxes);
        gst_mgllava_roi_boxes_copy_labels(boxes, 0); /* they outlive the buffer */
        g_ptr_array_add(frames, boxes);
        gst_buffer_unref(out);
    }
    gst_harness_teardown(h);
    g_free(launch);
    return frames;
}

#define FRAME(f, i) ((GArray*)g_ptr_array_index((f), (i)))
#define BOX(a, i) (&g_array_index((a), MglBox, (i)))

static void check_box(const MglBox* b, const gchar* label, gfloat x1, gfloat y1, gfloat x2, gfloat y2, gfloat score) {
    fail_unless_equals_string(b->label, label);
    fail_unless_equals_float(b->x1, x1);
    fail_unless_equals_float(b->y1, y1);
    fail_unless_equals_float(b->x2, x2);
    fail_unless_equals_float(b->y2, y2);
    fail_unless(fabsf(b->score - score) < 1e-5, "%s: score %f, expected %f", label, b->score, score);
}

/* Brings a fresh element with @path to PAUSED, expecting failure, and
 * returns the error message's debug text (g_free). */
static gchar* expect_start_error(const gchar* path, const gchar* match, GQuark domain) {
    GstElement* e = gst_element_factory_make("mgllavaboxes", NULL);
    GstBus* bus = gst_bus_new();
    GstMessage* msg;
    GError* err = NULL;
    gchar* debug = NULL;

    fail_unless(e != NULL);
    gst_element_set_bus(e, bus);
    if (path != NULL) g_object_set(e, "location", path, NULL);
    if (match != NULL) gst_util_set_object_arg(G_OBJECT(e), "match", match);
    fail_unless_equals_int(gst_element_set_state(e, GST_STATE_PAUSED), GST_STATE_CHANGE_FAILURE);
    msg = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
    fail_unless(msg != NULL, "no error message for %s", path);
    gst_message_parse_error(msg, &err, &debug);
    fail_unless(err->domain == domain, "error domain %s", g_quark_to_string(err->domain));
    GST_INFO("error: %s / %s", err->message, debug);
    g_clear_error(&err);
    gst_message_unref(msg);
    gst_element_set_state(e, GST_STATE_NULL);
    gst_element_set_bus(e, NULL);
    gst_object_unref(bus);
    gst_object_unref(e);
    return debug;
}

static void check_bad_file(const gchar* name, const gchar* content, const gchar* match, const gchar* expect) {
    gchar* path = write_file(name, content);
    gchar* debug = expect_start_error(path, match, GST_STREAM_ERROR);

    fail_unless(debug != NULL && strstr(debug, expect) != NULL, "%s: expected \"%s\" in \"%s\"", name, expect, debug);
    g_free(debug);
    g_unlink(path);
    g_free(path);
}

static const gchar list_json[] = "[\n"
                                 "  {\"id\": 0, \"boxes\": [[10, 20, 110, 220]], \"scores\": [0.9],"
                                 "   \"labels\": [\"cat\"]},\n"
                                 "  {\"id\": 2, \"boxes\": [[-5, -5, 50, 50], [0.4, 0, 700.2, 500]],"
                                 "   \"scores\": [0.4, 0.8], \"labels\": [\"dog\", \"sky\"]},\n"
                                 "  {\"id\": \"4\", \"boxes\": [[1, 1, 9, 9]]},\n"
                                 "  {\"id\": 3, \"boxes\": [[30, 30, 20, 40]], \"scores\": [0.7],"
                                 "   \"labels\": [\"inverted\"]}\n"
                                 "]\n";

GST_START_TEST(test_list_layout) {
    gchar* path = write_file("list.json", list_json);
    GPtrArray* f = run_frames(path, NULL, 6);

    fail_unless_equals_int(FRAME(f, 0)->len, 1);
    check_box(BOX(FRAME(f, 0), 0), "cat", 10, 20, 110, 220, 0.9f);
    fail_unless_equals_int(FRAME(f, 1)->len, 0);
    fail_unless_equals_int(FRAME(f, 2)->len, 2);
    /* clipped to the frame, rounded to whole pixels */
    check_box(BOX(FRAME(f, 2), 0), "sky", 0, 0, 640, 480, 0.8f);
    check_box(BOX(FRAME(f, 2), 1), "dog", 0, 0, 50, 50, 0.4f);
    fail_unless_equals_int(FRAME(f, 3)->len, 0); /* inverted: dropped */
    fail_unless_equals_int(FRAME(f, 4)->len, 1);
    check_box(BOX(FRAME(f, 4), 0), "object", 1, 1, 9, 9, 1.0f);
    fail_unless_equals_int(FRAME(f, 5)->len, 0);
    g_ptr_array_unref(f);

    /* score-threshold */
    f = run_frames(path, "score-threshold=0.5", 3);
    fail_unless_equals_int(FRAME(f, 2)->len, 1);
    fail_unless_equals_string(BOX(FRAME(f, 2), 0)->label, "sky");
    g_ptr_array_unref(f);
    g_unlink(path);
    g_free(path);
}

GST_END_TEST;

GST_START_TEST(test_param_structure) {
    gchar* path = write_file("list1.json", list_json);
    GstHarness* h;
    GstBuffer* out;
    GstVideoRegionOfInterestMeta* roi;
    GstStructure* s;
    gchar* launch = g_strdup_printf("mgllavaboxes location=%s", path);
    gdouble v;

    h = gst_harness_new_parse(launch);
    g_free(launch);
    gst_harness_set_src_caps_str(h, "video/x-raw,format=RGB,width=640,"
                                    "height=480,framerate=30/1");
    out = gst_harness_push_and_pull(h, gst_harness_create_buffer(h, W * H * 3));
    roi = gst_buffer_get_video_region_of_interest_meta_id(out, 0);
    fail_unless(roi != NULL);
    fail_unless_equals_string(g_quark_to_string(roi->roi_type), "cat");
    s = gst_video_region_of_interest_meta_get_param(roi, "detection");
    fail_unless(s != NULL);
    fail_unless(gst_structure_get_double(s, "confidence", &v));
    fail_unless(fabs(v - 0.9) < 1e-6);
    fail_unless(gst_structure_get_double(s, "x_max", &v));
    fail_unless(fabs(v - 110.0 / 640) < 1e-9);
    fail_unless_equals_string(gst_structure_get_string(s, "label"), "cat");
    gst_buffer_unref(out);
    gst_harness_teardown(h);
    g_unlink(path);
    g_free(path);
}

GST_END_TEST;

GST_START_TEST(test_video_layout) {
    gchar* path = write_file("video.json", "{\"video\": \"clip.mp4\", \"frames\": [\n"
                                           " {\"boxes\": [[1, 2, 3, 4]], \"scores\": [0.5], \"labels\": [\"a\"]},\n"
                                           " {\"boxes\": [], \"scores\": [], \"labels\": []},\n"
                                           " {\"boxes\": [[5, 6, 70, 80]], \"labels\": [\"b\"]}\n"
                                           "]}\n");
    GPtrArray* f = run_frames(path, NULL, 4);

    fail_unless_equals_int(FRAME(f, 0)->len, 1);
    check_box(BOX(FRAME(f, 0), 0), "a", 1, 2, 3, 4, 0.5f);
    fail_unless_equals_int(FRAME(f, 1)->len, 0);
    fail_unless_equals_int(FRAME(f, 2)->len, 1);
    check_box(BOX(FRAME(f, 2), 0), "b", 5, 6, 70, 80, 1.0f);
    fail_unless_equals_int(FRAME(f, 3)->len, 0);
    g_ptr_array_unref(f);

    /* on one line it is still the video layout, not JSON Lines */
    g_unlink(path);
    g_free(path);
    path = write_file("video1.json", "{\"video\": \"v\", \"frames\": "
                                     "[{\"boxes\": [[1, 2, 3, 4]]}]}");
    f = run_frames(path, NULL, 1);
    fail_unless_equals_int(FRAME(f, 0)->len, 1);
    g_ptr_array_unref(f);
    g_unlink(path);
    g_free(path);
}

GST_END_TEST;

GST_START_TEST(test_jsonl_frame) {
    gchar* path = write_file("frames.jsonl", "{\"frame\": 0, \"boxes\": [[0, 0, 10, 10]], \"scores\": [0.3], "
                                             "\"labels\": [\"x\"]}\n"
                                             "\n"
                                             "{\"frame\": 2, \"boxes\": [[1, 1, 5, 5]], \"labels\": [\"y\"]}\n"
                                             "{\"frame\": 2, \"boxes\": [[2, 2, 6, 6]], \"labels\": [\"z\"]}\n"
                                             "{\"frame\": 5, \"boxes\": [[3, 3, 7, 7]], \"labels\": [7]}");
    GPtrArray* f = run_frames(path, "match=frame", 7);

    fail_unless_equals_int(FRAME(f, 0)->len, 1);
    check_box(BOX(FRAME(f, 0), 0), "x", 0, 0, 10, 10, 0.3f);
    fail_unless_equals_int(FRAME(f, 1)->len, 0);
    fail_unless_equals_int(FRAME(f, 2)->len, 2); /* two lines, one frame */
    check_box(BOX(FRAME(f, 2), 0), "y", 1, 1, 5, 5, 1.0f);
    check_box(BOX(FRAME(f, 2), 1), "z", 2, 2, 6, 6, 1.0f);
    fail_unless_equals_int(FRAME(f, 3)->len, 0);
    fail_unless_equals_int(FRAME(f, 4)->len, 0);
    fail_unless_equals_int(FRAME(f, 5)->len, 1);
    check_box(BOX(FRAME(f, 5), 0), "7", 3, 3, 7, 7, 1.0f); /* class id */
    fail_unless_equals_int(FRAME(f, 6)->len, 0);
    g_ptr_array_unref(f);
    g_unlink(path);
    g_free(path);
}

GST_END_TEST;

GST_START_TEST(test_jsonl_pts) {
    /* frame i has pts i * 33333333 ns; a record matches within half a frame */
    gchar* path = write_file("pts.jsonl", "{\"pts\": 0, \"boxes\": [[0, 0, 10, 10]]}\n"
                                          "{\"pts\": 66667000, \"boxes\": [[0, 0, 20, 20]]}\n"
                                          "{\"pts\": 116666666, \"boxes\": [[0, 0, 30, 30]]}\n"
                                          "{\"pts\": 133333333, \"boxes\": [[0, 0, 40, 40]]}\n");
    GPtrArray* f = run_frames(path, "match=pts", 5);

    fail_unless_equals_int(FRAME(f, 0)->len, 1);
    fail_unless_equals_int(FRAME(f, 1)->len, 0);
    fail_unless_equals_int(FRAME(f, 2)->len, 1);
    fail_unless_equals_float(BOX(FRAME(f, 2), 0)->x2, 20);
    /* 116666666 is frame 3 (100000000 +- 16666666) until 116666665 */
    fail_unless_equals_int(FRAME(f, 3)->len, 0);
    fail_unless_equals_int(FRAME(f, 4)->len, 2);
    g_ptr_array_unref(f);
    g_unlink(path);
    g_free(path);
}

GST_END_TEST;

/* A long JSON Lines file is read as frames arrive: the reader never parses
 * more than one record ahead of the current frame. */
GST_START_TEST(test_jsonl_streamed) {
    gchar* path = g_build_filename(tmpdir, "long.jsonl", NULL);
    FILE* fp = g_fopen(path, "w");
    GArray* out = g_array_new(FALSE, FALSE, sizeof(MglDetectionsBox));
    MglDetectionsFile* bf;
    GError* err = NULL;
    guint i;

    for (i = 0; i < 10000; i++)
        fprintf(fp, "{\"frame\": %u, \"boxes\": [[%u, 0, %u, 10]]}\n", i, i % 600, i % 600 + 10);
    fprintf(fp, "{\"frame\": 10000, \"boxes\": []}\n");
    /* a broken line far away: reaching it is the only way to fail */
    fprintf(fp, "{\"frame\": 10001, \"boxes\": [[0, 0, 1\n");
    fclose(fp);

    bf = mgl_detections_file_open(path, MGL_DETECTIONS_MATCH_FRAME, NULL, &err);
    fail_unless(bf != NULL, "%s", err ? err->message : "");
    fail_unless_equals_int(mgl_detections_file_get_format(bf), MGL_DETECTIONS_FORMAT_JSONL);
    for (i = 0; i < 100; i++) {
        g_array_set_size(out, 0);
        fail_unless(mgl_detections_file_lookup(bf, i, i, out, NULL, &err));
        fail_unless_equals_int(out->len, 1);
    }
    /* jump ahead, then hit the broken line */
    g_array_set_size(out, 0);
    fail_unless(mgl_detections_file_lookup(bf, 9999, 9999, out, NULL, &err));
    fail_unless_equals_int(out->len, 1);
    /* frame 10000 reads one record ahead, into the broken line */
    fail_unless(!mgl_detections_file_lookup(bf, 10000, 10000, out, NULL, &err));
    fail_unless(strstr(err->message, "line 10002: malformed JSON") != NULL, "%s", err->message);
    g_clear_error(&err);
    /* stays failed until rewound */
    fail_unless(!mgl_detections_file_lookup(bf, 10001, 10001, out, NULL, &err));
    g_clear_error(&err);
    fail_unless(mgl_detections_file_rewind(bf, NULL));
    g_array_set_size(out, 0);
    fail_unless(mgl_detections_file_lookup(bf, 5, 5, out, NULL, &err));
    fail_unless_equals_int(out->len, 1);
    fail_unless_equals_float(g_array_index(out, MglDetectionsBox, 0).x1, 5);

    mgl_detections_file_free(bf);
    g_array_free(out, TRUE);
    g_unlink(path);
    g_free(path);
}

GST_END_TEST;

GST_START_TEST(test_bad_files) {
    check_bad_file("trunc.json", "[{\"id\": 0, \"boxes\": [[1, 2, 3, 4]]", NULL, "malformed JSON");
    check_bad_file("garbage.json", "hello", NULL, "does not start with");
    check_bad_file("number.json", "42", NULL, "does not start with");
    check_bad_file("empty.json", "  \n", NULL, "empty file");
    check_bad_file("nan.json", "[{\"id\": 0, \"boxes\": [[1, 2, \"x\", 4]]}]", NULL,
                   "record 0: field \"boxes\"[0][2] must be a number");
    check_bad_file("nobox.json", "[{\"id\": 0, \"boxes\": []}, {\"id\": 1}]", NULL,
                   "record 1: missing field \"boxes\"");
    check_bad_file("noid.json", "[{\"boxes\": []}]", NULL, "record 0: missing field \"id\"");
    check_bad_file("strid.json", "[{\"id\": \"abc\", \"boxes\": []}]", NULL,
                   "record 0: field \"id\" must be an integer");
    check_bad_file("fracid.json", "[{\"id\": 1.5, \"boxes\": []}]", NULL, "record 0: field \"id\" must be an integer");
    check_bad_file("three.json", "[{\"id\": 0, \"boxes\": [[1, 2, 3]]}]", NULL,
                   "record 0: field \"boxes\"[0] must be an array of 4 numbers");
    check_bad_file("boxobj.json", "[{\"id\": 0, \"boxes\": {\"a\": 1}}]", NULL,
                   "record 0: field \"boxes\" must be an array");
    check_bad_file("scores.json",
                   "[{\"id\": 0, \"boxes\": [], \"scores\": []},"
                   " {\"id\": 1, \"boxes\": [[1, 2, 3, 4]], \"scores\": [0.5, 0.6]}]",
                   NULL, "record 1: field \"scores\" has 2 entries but \"boxes\" has 1");
    check_bad_file("scoretype.json",
                   "[{\"id\": 0, \"boxes\": [[1, 2, 3, 4]],"
                   " \"scores\": [true]}]",
                   NULL, "record 0: field \"scores\"[0] must be a number");
    check_bad_file("labels.json",
                   "[{\"id\": 0, \"boxes\": [[1, 2, 3, 4]],"
                   " \"labels\": [3.5]}]",
                   NULL, "record 0: field \"labels\"[0] must be a string");
    check_bad_file("labelslen.json",
                   "[{\"id\": 0, \"boxes\": [[1, 2, 3, 4]],"
                   " \"labels\": \"cat\"}]",
                   NULL, "record 0: field \"labels\" must be an array of strings");
    check_bad_file("recnum.json", "[{\"id\": 0, \"boxes\": []}, 7]", NULL, "record 1: must be an object");
    check_bad_file("frames.json", "{\"video\": \"v\",\n \"frames\": {}}", NULL,
                   "field \"frames\" is missing or not an array");
    check_bad_file("frames2.json",
                   "{\"video\": \"v\",\n \"frames\": [{\"boxes\":"
                   " []}, {\"boxes\": [[0, 0, 1, 1]], \"scores\": \"high\"}]}",
                   NULL, "frames[1]: field \"scores\" must be an array of numbers");
    check_bad_file("ptslist.json", "[{\"id\": 0, \"boxes\": []}]", "pts", "has no timestamps; use match=frame");
}

GST_END_TEST;

GST_START_TEST(test_missing_file_and_location) {
    gchar* path = g_build_filename(tmpdir, "does-not-exist.json", NULL);
    gchar* debug = expect_start_error(path, NULL, GST_RESOURCE_ERROR);

    fail_unless(strstr(debug, "cannot open") != NULL, "%s", debug);
    g_free(debug);
    g_free(path);

    debug = expect_start_error(NULL, NULL, GST_RESOURCE_ERROR);
    fail_unless(strstr(debug, "location") != NULL, "%s", debug);
    g_free(debug);
}

GST_END_TEST;

/* Pushes frames until the element fails; returns the error's debug text. */
static gchar* expect_stream_error(const gchar* path, const gchar* match, guint* frame) {
    gchar* launch = g_strdup_printf("mgllavaboxes location=\"%s\" match=%s", path, match);
    GstHarness* h = gst_harness_new_parse(launch);
    GstBus* bus = gst_bus_new();
    GstMessage* msg;
    GstFlowReturn ret = GST_FLOW_OK;
    gchar* debug = NULL;
    guint i;

    gst_element_set_bus(h->element, bus);
    gst_harness_set_src_caps_str(h, "video/x-raw,format=RGB,width=640,"
                                    "height=480,framerate=30/1");
    for (i = 0; i < 10 && ret == GST_FLOW_OK; i++) {
        GstBuffer* buf = gst_harness_create_buffer(h, W * H * 3);

        GST_BUFFER_PTS(buf) = i * FRAME_NS;
        GST_BUFFER_DURATION(buf) = FRAME_NS;
        ret = gst_harness_push(h, buf);
        if (ret == GST_FLOW_OK) gst_buffer_unref(gst_harness_pull(h));
    }
    fail_unless_equals_int(ret, GST_FLOW_ERROR);
    *frame = i - 1;
    msg = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
    fail_unless(msg != NULL);
    gst_message_parse_error(msg, NULL, &debug);
    gst_message_unref(msg);
    gst_element_set_bus(h->element, NULL);
    gst_object_unref(bus);
    gst_harness_teardown(h);
    g_free(launch);
    return debug;
}

GST_START_TEST(test_bad_jsonl) {
    gchar *path, *debug;
    guint frame;

    path = write_file("bad1.jsonl", "{\"frame\": 0, \"boxes\": []}\n"
                                    "{\"frame\": 1, \"boxes\": []}\n"
                                    "{\"frame\": 2, \"boxes\": [[1,\n");
    debug = expect_stream_error(path, "frame", &frame);
    fail_unless(strstr(debug, "line 3: malformed JSON") != NULL, "%s", debug);
    fail_unless_equals_int(frame, 1); /* frame 1 looks one record ahead */
    g_free(debug);
    g_free(path);

    path = write_file("bad2.jsonl", "{\"pts\": 0, \"boxes\": []}\n");
    debug = expect_stream_error(path, "frame", &frame);
    fail_unless(strstr(debug, "line 1: missing field \"frame\"") != NULL, "%s", debug);
    g_free(debug);
    g_free(path);

    path = write_file("bad3.jsonl", "{\"frame\": 0, \"boxes\": []}\n"
                                    "{\"frame\": 1, \"boxes\": [[0, 0, 1, 1]], \"labels\": [null]}\n");
    debug = expect_stream_error(path, "frame", &frame);
    fail_unless(strstr(debug, "line 2: field \"labels\"[0] must be a string") != NULL, "%s", debug);
    g_free(debug);
    g_free(path);

    path = write_file("bad4.jsonl", "{\"pts\": \"soon\", \"boxes\": []}\n"
                                    "{\"pts\": 0, \"boxes\": []}\n");
    debug = expect_stream_error(path, "pts", &frame);
    fail_unless(strstr(debug, "line 1: field \"pts\" must be an integer") != NULL, "%s", debug);
    g_free(debug);
    g_free(path);

    path = write_file("bad5.jsonl", "{\"frame\": 0, \"boxes\": []}\n[1, 2]\n");
    debug = expect_stream_error(path, "frame", &frame);
    fail_unless(strstr(debug, "line 2: must be a JSON object") != NULL, "%s", debug);
    g_free(debug);
    g_free(path);
}

GST_END_TEST;

static guint count_warnings(GstBus* bus, const gchar* expect) {
    GstMessage* msg;
    guint found = 0;

    while ((msg = gst_bus_pop_filtered(bus, GST_MESSAGE_WARNING)) != NULL) {
        gchar* debug = NULL;

        gst_message_parse_warning(msg, NULL, &debug);
        if (debug != NULL && strstr(debug, expect) != NULL) found++;
        g_free(debug);
        gst_message_unref(msg);
    }
    return found;
}

GST_START_TEST(test_warnings) {
    gchar* path = write_file("warn.json", list_json);
    GstElement* e = gst_element_factory_make("mgllavaboxes", NULL);
    GstBus* bus = gst_bus_new();
    GstHarness* h;
    gchar* launch;

    gst_element_set_bus(e, bus);
    g_object_set(e, "location", path, NULL);
    fail_unless_equals_int(gst_element_set_state(e, GST_STATE_PAUSED), GST_STATE_CHANGE_SUCCESS);
    fail_unless_equals_int(count_warnings(bus, "record 1: field \"boxes\"[0] has a negative coordinate"), 1);
    gst_element_set_state(e, GST_STATE_NULL);
    fail_unless_equals_int(gst_element_set_state(e, GST_STATE_PAUSED), GST_STATE_CHANGE_SUCCESS);
    fail_unless_equals_int(count_warnings(bus, "record 3: field \"boxes\"[0] is inverted"), 1);
    gst_element_set_state(e, GST_STATE_NULL);
    gst_element_set_bus(e, NULL);
    gst_object_unref(e);
    g_unlink(path);
    g_free(path);

    /* JSON Lines going backwards: skipped with a warning */
    path = write_file("order.jsonl", "{\"frame\": 0, \"boxes\": [[0, 0, 5, 5]]}\n"
                                     "{\"frame\": 3, \"boxes\": [[0, 0, 6, 6]]}\n"
                                     "{\"frame\": 1, \"boxes\": [[0, 0, 7, 7]]}\n"
                                     "{\"frame\": 4, \"boxes\": [[0, 0, 8, 8]]}\n");
    launch = g_strdup_printf("mgllavaboxes location=%s", path);
    h = gst_harness_new_parse(launch);
    g_free(launch);
    gst_element_set_bus(h->element, bus);
    gst_harness_set_src_caps_str(h, "video/x-raw,format=RGB,width=640,"
                                    "height=480,framerate=30/1");
    {
        guint i, counts[5] = {0};

        for (i = 0; i < 5; i++) {
            GstBuffer* out = gst_harness_push_and_pull(h, gst_harness_create_buffer(h, W * H * 3));
            gpointer state = NULL;

            while (gst_buffer_iterate_meta_filtered(out, &state, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))
                counts[i]++;
            gst_buffer_unref(out);
        }
        fail_unless_equals_int(counts[0], 1);
        fail_unless_equals_int(counts[1], 0);
        fail_unless_equals_int(counts[3], 1);
        fail_unless_equals_int(counts[4], 1);
    }
    fail_unless_equals_int(count_warnings(bus, "line 3: frame 1 comes after 3"), 1);
    gst_element_set_bus(h->element, NULL);
    gst_harness_teardown(h);
    gst_object_unref(bus);
    g_unlink(path);
    g_free(path);
}

GST_END_TEST;

/* Every prefix of a valid file: an error or a result, never a crash. */
GST_START_TEST(test_truncated_prefixes) {
    const gchar* const files[] = {list_json,
                                  "{\"video\": \"v\", \"frames\": [{\"boxes\": [[1, 2, 3, 4]], \"scores\": "
                                  "[0.5], \"labels\": [\"a\"]}]}",
                                  "{\"frame\": 0, \"boxes\": [[1, 2, 3, 4]], \"scores\": [1]}\n"
                                  "{\"frame\": 1, \"boxes\": [[1, 2, 3, 4]], \"labels\": [\"q\"]}\n"};
    gchar* path = g_build_filename(tmpdir, "prefix.json", NULL);
    GArray* out = g_array_new(FALSE, FALSE, sizeof(MglDetectionsBox));
    GPtrArray* warnings = g_ptr_array_new_with_free_func(g_free);
    guint f, len, failures = 0;

    for (f = 0; f < G_N_ELEMENTS(files); f++) {
        for (len = 0; len <= strlen(files[f]); len++) {
            GError* err = NULL;
            MglDetectionsFile* bf;
            gint64 i;

            fail_unless(g_file_set_contents(path, files[f], len, NULL));
            bf = mgl_detections_file_open(path, MGL_DETECTIONS_MATCH_FRAME, warnings, &err);
            if (bf == NULL) {
                fail_unless(err != NULL);
                failures++;
                g_clear_error(&err);
                continue;
            }
            for (i = 0; i < 6; i++) {
                if (!mgl_detections_file_lookup(bf, i, i, out, warnings, &err)) {
                    fail_unless(err != NULL);
                    g_clear_error(&err);
                    failures++;
                    break;
                }
            }
            mgl_detections_file_free(bf);
        }
    }
    fail_unless(failures > 0);
    g_array_free(out, TRUE);
    g_ptr_array_unref(warnings);
    g_unlink(path);
    g_free(path);
}

GST_END_TEST;

static void remove_tmpdir(void) {
    GDir* dir = g_dir_open(tmpdir, 0, NULL);
    const gchar* name;

    while (dir != NULL && (name = g_dir_read_name(dir)) != NULL) {
        gchar* path = g_build_filename(tmpdir, name, NULL);

        g_unlink(path);
        g_free(path);
    }
    if (dir != NULL) g_dir_close(dir);
    g_rmdir(tmpdir);
}

static GQuark quark_probe(void) {
    static guint n;
    gchar* name = g_strdup_printf("test-boxes-quark-probe-%u-%p", n++, &n);
    GQuark q = g_quark_from_string(name);

    g_free(name);
    return q;
}

/* 200k distinct labels (2000 frames of 100 boxes) intern at most
 * GST_MGLLAVA_DET_MAX_LABEL_QUARKS quarks: GLib never frees a quark, so the
 * process would otherwise grow with every new label. Past the cap the meta's
 * roi_type is GST_MGLLAVA_DET_ROI_TYPE_LABELLED and the label sits in the
 * "detection" param, where the adapter reads it: every box keeps its label. */
GST_START_TEST(test_many_distinct_labels) {
    const guint n_frames = 2000, per_frame = 100;
    GString* json = g_string_new(NULL);
    gchar *path, *launch;
    GstHarness* h;
    GQuark before, after, labelled;
    guint i, j, past_cap = 0;

    for (i = 0; i < n_frames; i++) {
        g_string_append_printf(json, "{\"frame\": %u, \"boxes\": [", i);
        for (j = 0; j < per_frame; j++)
            g_string_append_printf(json, "%s[%u, %u, %u, %u]", j ? ", " : "", (j % 10) * 60, (j / 10) * 45,
                                   (j % 10) * 60 + 50, (j / 10) * 45 + 40);
        g_string_append(json, "], \"labels\": [");
        for (j = 0; j < per_frame; j++) g_string_append_printf(json, "%s\"uniq-%u\"", j ? ", " : "", i * per_frame + j);
        g_string_append(json, "]}\n");
    }
    path = write_file("many-labels.jsonl", json->str);
    g_string_free(json, TRUE);

    launch = g_strdup_printf("mgllavaboxes location=\"%s\"", path);
    h = gst_harness_new_parse(launch);
    g_free(launch);
    gst_harness_set_src_caps_str(h, "video/x-raw,format=RGB,width=640,"
                                    "height=480,framerate=30/1");
    labelled = g_quark_from_static_string(GST_MGLLAVA_DET_ROI_TYPE_LABELLED);
    before = quark_probe();
    for (i = 0; i < n_frames; i++) {
        GstBuffer *buf = gst_harness_create_buffer(h, W * H * 3), *out;
        GArray* boxes = g_array_new(FALSE, FALSE, sizeof(MglBox));
        gpointer state = NULL;
        GstMeta* m;

        GST_BUFFER_PTS(buf) = i * FRAME_NS;
        GST_BUFFER_DURATION(buf) = FRAME_NS;
        out = gst_harness_push_and_pull(h, buf);
        fail_unless(out != NULL, "frame %u", i);
        fail_unless_equals_int(gst_mgllava_roi_collect(out, W, H, NULL, boxes), per_frame);
        /* equal scores keep the file's order */
        for (j = 0; j < per_frame; j++) {
            gchar want[32];

            g_snprintf(want, sizeof want, "uniq-%u", i * per_frame + j);
            fail_unless_equals_string(BOX(boxes, j)->label, want);
        }
        while ((m = gst_buffer_iterate_meta_filtered(out, &state, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE)))
            if (((GstVideoRegionOfInterestMeta*)m)->roi_type == labelled) past_cap++;
        g_array_unref(boxes);
        gst_buffer_unref(out);
    }
    after = quark_probe();
    gst_harness_teardown(h);
    /* the probe itself, the cap, and a little slack for anything else the
     * element may name on the way (before the cap: 200000) */
    fail_unless(after - before <= GST_MGLLAVA_DET_MAX_LABEL_QUARKS + 64, "%u quarks made for %u distinct labels",
                after - before, n_frames * per_frame);
    fail_unless(past_cap >= n_frames * per_frame - GST_MGLLAVA_DET_MAX_LABEL_QUARKS, "%u boxes past the cap", past_cap);
    g_unlink(path);
    g_free(path);
}

GST_END_TEST;

static Suite* mgllavaboxes_suite(void) {
    Suite* s = suite_create("mgllavaboxes");
    TCase* tc = tcase_create("general");

    tmpdir = g_dir_make_tmp("mgllavaboxes-XXXXXX", NULL);
    tcase_add_unchecked_fixture(tc, NULL, remove_tmpdir);
    tcase_set_timeout(tc, 240); /* slow under AddressSanitizer */
    suite_add_tcase(s, tc);
    tcase_add_test(tc, test_list_layout);
    tcase_add_test(tc, test_param_structure);
    tcase_add_test(tc, test_video_layout);
    tcase_add_test(tc, test_jsonl_frame);
    tcase_add_test(tc, test_jsonl_pts);
    tcase_add_test(tc, test_jsonl_streamed);
    tcase_add_test(tc, test_bad_files);
    tcase_add_test(tc, test_missing_file_and_location);
    tcase_add_test(tc, test_bad_jsonl);
    tcase_add_test(tc, test_warnings);
    tcase_add_test(tc, test_truncated_prefixes);
    tcase_add_test(tc, test_many_distinct_labels);
    return s;
}

MGL_DET_CHECK_MAIN(mgllavaboxes);
