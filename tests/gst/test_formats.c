/* mgllavafilter's raw frames to RGB, against videoconvert.
 *
 *   rgb_matches_videoconvert  every accepted format (gstmgllavaframe.h), odd
 *                             and even sizes, several colorimetries and chroma
 *                             sites, progressive and interlaced: the element's
 *                             RGB (gst/gstmgllavaframe.c, compiled in) equals
 *                             `videoconvert ! video/x-raw,format=RGB` byte for
 *                             byte, and so does the negotiated range and
 *                             matrix of the output
 *   answers_match             the demo model (models/mgllava-demo): the
 *                             answers of mgllavafilter on NV12, I420, BGR and
 *                             RGB frames of a scene equal its answers on the
 *                             same frames through videoconvert to RGB, and on
 *                             GRAY8 those through GRAY8-to-RGB
 *
 * Usage: test_formats MODEL_DIR (answers_match is skipped without it). */
#include "gst-asan.h"
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>

#include "gstmgllavaframe.h"
#include "gstmgllavameta.h"

/* gstmgllavaframe.c is compiled into this program; its filter part logs
 * to the element's category */
GST_DEBUG_CATEGORY(gst_mgllava_filter_debug);

static gchar* model_dir;

/* A frame with @caps, filled with bytes from a seeded generator: every byte
 * pattern is a valid 8-bit frame, and random chroma exercises every path. */
static GstBuffer* random_frame(const GstVideoInfo* info, guint32 seed) {
    GstBuffer* b = gst_buffer_new_allocate(NULL, info->size, NULL);
    GRand* r = g_rand_new_with_seed(seed);
    GstMapInfo map;
    gsize i;

    gst_buffer_map(b, &map, GST_MAP_WRITE);
    for (i = 0; i < map.size; i++) map.data[i] = (guint8)g_rand_int_range(r, 0, 256);
    gst_buffer_unmap(b, &map);
    g_rand_free(r);
    GST_BUFFER_PTS(b) = 0;
    GST_BUFFER_DURATION(b) = GST_SECOND / 30;
    return b;
}

/* @in through videoconvert to RGB; *@out_info gets the negotiated caps.
 * Returns the packed RGB (g_free). */
static guint8* videoconvert_rgb(const gchar* caps, GstBuffer* in, GstVideoInfo* out_info) {
    GstHarness* h = gst_harness_new("videoconvert");
    GstBuffer* out;
    GstCaps* oc;
    GstVideoFrame f;
    guint8* rgb;
    gint y, w, hh;

    gst_harness_set_src_caps_str(h, caps);
    gst_harness_set_sink_caps_str(h, "video/x-raw,format=RGB");
    fail_unless_equals_int(gst_harness_push(h, gst_buffer_ref(in)), GST_FLOW_OK);
    out = gst_harness_pull(h);
    fail_unless(out != NULL);
    oc = gst_pad_get_current_caps(h->sinkpad);
    fail_unless(gst_video_info_from_caps(out_info, oc));
    gst_caps_unref(oc);
    fail_unless(gst_video_frame_map(&f, out_info, out, GST_MAP_READ));
    w = GST_VIDEO_INFO_WIDTH(out_info);
    hh = GST_VIDEO_INFO_HEIGHT(out_info);
    rgb = g_malloc((gsize)w * hh * 3);
    for (y = 0; y < hh; y++)
        memcpy(rgb + (gsize)y * w * 3,
               (guint8*)GST_VIDEO_FRAME_PLANE_DATA(&f, 0) + (gsize)y * GST_VIDEO_FRAME_PLANE_STRIDE(&f, 0),
               (gsize)w * 3);
    gst_video_frame_unmap(&f);
    gst_buffer_unref(out);
    gst_harness_teardown(h);
    return rgb;
}

static guint compare_case(const gchar* format, gint w, gint h, const gchar* extra, guint32 seed) {
    gchar* caps = g_strdup_printf("video/x-raw,format=%s,width=%d,height=%d,"
                                  "framerate=30/1%s%s",
                                  format, w, h, extra ? "," : "", extra ? extra : "");
    GstCaps* c = gst_caps_from_string(caps);
    GstVideoInfo info, ref_info, our_info;
    GstVideoConverter* conv = NULL;
    GstBuffer* in;
    guint8 *ref, *ours;
    gsize i, n = (gsize)w * h * 3;

    fail_unless(c != NULL, "%s", caps);
    if (!gst_video_info_from_caps(&info, c)) {
        /* a colorimetry this format cannot carry */
        gst_caps_unref(c);
        g_free(caps);
        return 0;
    }
    gst_caps_unref(c);
    in = random_frame(&info, seed);
    ref = videoconvert_rgb(caps, in, &ref_info);
    fail_unless(gst_mgllava_frame_rgb_converter(&info, &conv), "%s", caps);
    ours = gst_mgllava_frame_rgb(conv, &info, in);
    fail_unless(ours != NULL, "%s", caps);
    for (i = 0; i < n && ours[i] == ref[i]; i++)
        ;
    fail_unless(i == n, "%s: pixel %d,%d channel %d: %u, videoconvert %u", caps, (gint)((i / 3) % w), (gint)(i / 3 / w),
                (gint)(i % 3), ours[i], ref[i]);
    /* the output videoconvert negotiated is the one we convert to */
    gst_mgllava_frame_rgb_info(&info, &our_info);
    fail_unless(our_info.colorimetry.range == ref_info.colorimetry.range &&
                    our_info.colorimetry.matrix == ref_info.colorimetry.matrix,
                "%s: RGB range %d matrix %d, videoconvert's %d %d", caps, our_info.colorimetry.range,
                our_info.colorimetry.matrix, ref_info.colorimetry.range, ref_info.colorimetry.matrix);
    if (conv) gst_video_converter_free(conv);
    g_free(ours);
    g_free(ref);
    gst_buffer_unref(in);
    g_free(caps);
    return 1;
}

GST_START_TEST(test_rgb_matches_videoconvert) {
    gchar** formats;
    const gchar* list = GST_MGLLAVA_FRAME_FORMATS;
    /* NULL: the format's default colorimetry */
    static const gchar* const extras[] = {
        NULL,
        "colorimetry=bt709",
        "colorimetry=bt601",
        "colorimetry=jpeg",
        "colorimetry=sRGB",
        "colorimetry=2:1:0:0",
        "colorimetry=bt2020",
        "chroma-site=jpeg",
        "chroma-site=mpeg2",
        "colorimetry=bt709,chroma-site=dv",
        "interlace-mode=interleaved",
        "interlace-mode=interleaved,colorimetry=jpeg",
    };
    static const gint sizes[][2] = {{64, 48}, {63, 47}, {320, 240}, {2, 2}};
    guint f, e, s, cases = 0;
    gchar* trimmed;

    /* "{ RGB, BGR, ... }" -> names */
    trimmed = g_strdup(list);
    g_strdelimit(trimmed, "{}", ' ');
    formats = g_strsplit(trimmed, ",", -1);
    for (f = 0; formats[f]; f++) {
        g_strstrip(formats[f]);
        for (s = 0; s < G_N_ELEMENTS(sizes); s++)
            for (e = 0; e < G_N_ELEMENTS(extras); e++)
                cases += compare_case(formats[f], sizes[s][0], sizes[s][1], extras[e], f * 1000 + s * 100 + e);
    }
    GST_INFO("%u cases, %u formats", cases, f);
    fail_unless_equals_int(f, 18);
    fail_unless(cases > f * G_N_ELEMENTS(sizes) * 6, "%u cases", cases);
    g_strfreev(formats);
    g_free(trimmed);
}

GST_END_TEST;

/* ---- answers of the demo model ----------------------------------------- */

/* The first frame of a scene (RGB, 640x480) */
static GstBuffer* scene_frame(guint seed) {
    gchar* d = g_strdup_printf("mgllavascenesrc seed=%u num-buffers=1 ! "
                               "video/x-raw,format=RGB,width=640,height=480 ! appsink name=s",
                               seed);
    GstElement *p = gst_parse_launch(d, NULL), *sink;
    GstSample* sample;
    GstBuffer* b;

    fail_unless(p != NULL);
    sink = gst_bin_get_by_name(GST_BIN(p), "s");
    gst_element_set_state(p, GST_STATE_PLAYING);
    g_signal_emit_by_name(sink, "pull-sample", &sample);
    fail_unless(sample != NULL);
    b = gst_buffer_ref(gst_sample_get_buffer(sample));
    gst_sample_unref(sample);
    gst_element_set_state(p, GST_STATE_NULL);
    gst_object_unref(sink);
    gst_object_unref(p);
    g_free(d);
    return b;
}

/* @in (with @from caps) through videoconvert into format @to */
static GstBuffer* convert(GstBuffer* in, const gchar* from, const gchar* to) {
    GstHarness* h = gst_harness_new("videoconvert");
    gchar* sc = g_strdup_printf("video/x-raw,format=%s,width=640,height=480,"
                                "framerate=30/1",
                                from);
    gchar* dc = g_strdup_printf("video/x-raw,format=%s", to);
    GstBuffer* out;

    gst_harness_set_src_caps_str(h, sc);
    gst_harness_set_sink_caps_str(h, dc);
    fail_unless_equals_int(gst_harness_push(h, gst_buffer_ref(in)), GST_FLOW_OK);
    out = gst_harness_pull(h);
    fail_unless(out != NULL);
    gst_harness_teardown(h);
    g_free(sc);
    g_free(dc);
    return out;
}

/* The filter's answer on @buf, a 640x480 frame of @format (exact mode: the
 * answer rides on the frame). */
static gchar* answer(GstHarness* h, GstBuffer* buf, const gchar* format) {
    gchar* caps = g_strdup_printf("video/x-raw,format=%s,width=640,height=480,"
                                  "framerate=30/1",
                                  format);
    GstBuffer* out;
    GstMgllavaResultMeta* m;
    gpointer state = NULL;
    gchar* text;

    gst_harness_set_src_caps_str(h, caps);
    fail_unless(gst_harness_push(h, gst_buffer_ref(buf)) == GST_FLOW_OK, "%s not accepted", format);
    out = gst_harness_pull(h);
    m = gst_buffer_iterate_mgllava_result_meta(out, &state);
    fail_unless(m != NULL, "no answer on %s", format);
    text = g_strdup(m->text);
    gst_buffer_unref(out);
    g_free(caps);
    return text;
}

GST_START_TEST(test_answers_match) {
    static const gchar* const formats[] = {"NV12", "I420", "BGR", "RGB", "GRAY8"};
    static const guint seeds[] = {7, 90002};
    gchar* mj = g_build_filename(model_dir, "mgllava.json", NULL);
    GstElement* e;
    GstHarness* h;
    guint s, f;

    if (!g_file_test(mj, G_FILE_TEST_EXISTS)) {
        GST_WARNING("no demo model at %s: skipped", model_dir);
        g_free(mj);
        return;
    }
    g_free(mj);
    e = gst_element_factory_make("mgllavafilter", NULL);
    fail_unless(e != NULL);
    g_object_set(e, "model", model_dir, "interval", 1, NULL);
    gst_util_set_object_arg(G_OBJECT(e), "attach-mode", "exact");
    h = gst_harness_new_with_element(e, "sink", "src");
    gst_object_unref(e);

    for (s = 0; s < G_N_ELEMENTS(seeds); s++) {
        GstBuffer* scene = scene_frame(seeds[s]);

        for (f = 0; f < G_N_ELEMENTS(formats); f++) {
            /* the frame as a camera or decoder would give it in this format */
            GstBuffer* in = convert(scene, "RGB", formats[f]);
            /* ... and what videoconvert makes of it for an RGB-only element */
            GstBuffer* rgb = convert(in, formats[f], "RGB");
            gchar* direct = answer(h, in, formats[f]);
            gchar* via = answer(h, rgb, "RGB");

            GST_INFO("scene %u, %s: \"%s\"", seeds[s], formats[f], direct);
            fail_unless_equals_string(direct, via);
            g_free(direct);
            g_free(via);
            gst_buffer_unref(rgb);
            gst_buffer_unref(in);
        }
        gst_buffer_unref(scene);
    }
    gst_harness_teardown(h);
}

GST_END_TEST;

static Suite* formats_suite(void) {
    Suite* s = suite_create("mgllavaformats");
    TCase* tc = tcase_create("general");

    tcase_set_timeout(tc, 500); /* the model, sanitized, on a loaded machine */
    suite_add_tcase(s, tc);
    tcase_add_test(tc, test_rgb_matches_videoconvert);
    tcase_add_test(tc, test_answers_match);
    return s;
}

int main(int argc, char** argv) {
    int ret;

    gst_check_init(&argc, &argv);
    GST_DEBUG_CATEGORY_INIT(gst_mgllava_filter_debug, "mgllavafilter", 0,
                            "mgllavafilter (frame conversion under test)");
    model_dir = g_strdup(argc > 1 ? argv[1] : "models/mgllava-demo");
    ret = gst_check_run_suite(formats_suite(), "mgllavaformats", __FILE__);
    g_free(model_dir);
    return ret;
}
