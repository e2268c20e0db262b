/* json_emit: pushes buffers with known metas through mgllavajson and writes
 * its lines, for tests/gst/json_formats.sh to validate against the schemas.
 *
 *   json_emit FORMAT TIMINGS OUT      FORMAT mgllava|dlstreamer, TIMINGS 0|1
 *
 * Frame 0: two ROI metas (the first with a "detection" param with label_id,
 * an "object_id" param as DL Streamer's trackers write it, and a per-object
 * classification param with attribute_name; the second with no params and a
 * box past the frame's edge) and one answer with stage timings. Frame 1: no
 * metas, no PTS. Frame 2: two answers. Then a late-results event with two
 * answers, and EOS. */
#include <gst/check/gstharness.h>
#include <gst/video/video.h>
#include <stdlib.h>
#include <string.h>

#include "gstmgllavameta.h"

static void add_result(GstBuffer* buf, const gchar* text, guint64 frame) {
    GstMgllavaResultMeta f;

    memset(&f, 0, sizeof f);
    f.text = (gchar*)text;
    f.prompt = (gchar*)"Describe the image.";
    f.source_pts = frame * 33333333;
    f.source_frame = frame;
    f.n_tokens = 7;
    f.n_objects = 2;
    f.latency_ms = 123.45;
    f.preprocess_ms = 1.5;
    f.vision_ms = 20.25;
    f.prefill_ms = 30.125;
    f.decode_ms = 70.0;
    gst_buffer_add_mgllava_result_meta_full(buf, &f);
}

int main(int argc, char** argv) {
    GstHarness* h;
    GstBuffer* buf;
    GstVideoRegionOfInterestMeta* roi;
    GstMgllavaResultMeta a, b;
    const GstMgllavaResultMeta* late[2] = {&a, &b};
    gchar* desc;

    if (argc != 4) {
        g_printerr("usage: %s mgllava|dlstreamer 0|1 OUT\n", argv[0]);
        return 2;
    }
    gst_init(NULL, NULL);
    desc = g_strdup_printf("mgllavajson format=%s timings=%s location=\"%s\" "
                           "source=cam-7 tags=\"{\\\"site\\\": \\\"lab\\\"}\"",
                           argv[1], atoi(argv[2]) ? "true" : "false", argv[3]);
    h = gst_harness_new_parse(desc);
    g_free(desc);
    gst_harness_set_src_caps_str(h, "video/x-raw,format=RGB,width=640,height=480,framerate=30/1");

    buf = gst_harness_create_buffer(h, 640 * 480 * 3);
    GST_BUFFER_PTS(buf) = 0;
    roi = gst_buffer_add_video_region_of_interest_meta(buf, "person", 64, 48, 128, 96);
    gst_video_region_of_interest_meta_add_param(
        roi, gst_structure_new("detection", "x_min", G_TYPE_DOUBLE, 0.1, "y_min", G_TYPE_DOUBLE, 0.1, "x_max",
                               G_TYPE_DOUBLE, 0.3, "y_max", G_TYPE_DOUBLE, 0.3, "confidence", G_TYPE_DOUBLE, 0.9,
                               "label_id", G_TYPE_INT, 3, NULL));
    gst_video_region_of_interest_meta_add_param(roi, gst_structure_new("object_id", "id", G_TYPE_INT, 7, NULL));
    gst_video_region_of_interest_meta_add_param(
        roi,
        gst_structure_new("mgllava-answer", "label", G_TYPE_STRING, "a person holding a \"red\" umbrella", "model_name",
                          G_TYPE_STRING, "mgllava", "attribute_name", G_TYPE_STRING, "answer", NULL));
    gst_buffer_add_video_region_of_interest_meta(buf, "car", 600, 400, 100, 100);
    add_result(buf, "a person \u00e9 \"quoted\"\n\ttab", 0);
    gst_buffer_unref(gst_harness_push_and_pull(h, buf));

    buf = gst_harness_create_buffer(h, 640 * 480 * 3);
    GST_BUFFER_PTS(buf) = GST_CLOCK_TIME_NONE;
    gst_buffer_unref(gst_harness_push_and_pull(h, buf));

    buf = gst_harness_create_buffer(h, 640 * 480 * 3);
    GST_BUFFER_PTS(buf) = 66666666;
    add_result(buf, "first answer", 1);
    add_result(buf, "second answer", 2);
    gst_buffer_unref(gst_harness_push_and_pull(h, buf));

    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    a.text = (gchar*)"late one";
    a.prompt = b.prompt = (gchar*)"Describe the image.";
    a.source_pts = 100000000;
    a.source_frame = 3;
    b.text = (gchar*)"late two";
    b.source_pts = 133333333;
    b.source_frame = 4;
    gst_harness_push_event(h, gst_mgllava_late_results_event_new(late, 2));
    gst_harness_push_event(h, gst_event_new_eos());
    gst_harness_teardown(h);
    return 0;
}
