/* mgllavafilter's clip mode (clip-frames, clip-duration, clip-partial) with
 * GstHarness on the tiny models: exactly N frames per window, the answer on
 * the window's last frame with the window's first and last PTS (meta, bus
 * message, JSON line), windows over running time (clip-duration), a flushing
 * seek discarding the open window, a partial window at EOS answered or
 * dropped, the stats invariant, and the context check at start. */
#include "gst-asan.h"
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>
#include <glib/gstdio.h>

#include "gstmgllavameta.h"

static gchar* models_dir;

static GstHarness* make_harness(const gchar* model, const gchar* props) {
    GstElement* e = gst_element_factory_make("mgllavafilter", NULL);
    gchar **kv = g_strsplit(props, " ", -1), **p;
    gchar* path = g_build_filename(models_dir, model, NULL);
    GstHarness* hh;

    g_object_set(e, "model", path, "max-new-tokens", 2, "prompt", "What happens in the video?", NULL);
    g_free(path);
    for (p = kv; *p; p++) {
        gchar* eq = strchr(*p, '=');
        if (!eq) continue;
        *eq = 0;
        gst_util_set_object_arg(G_OBJECT(e), *p, eq + 1);
    }
    g_strfreev(kv);
    hh = gst_harness_new_with_element(e, "sink", "src");
    gst_object_unref(e);
    gst_harness_set_src_caps_str(hh, "video/x-raw,format=RGB,width=64,height=48,framerate=30/1");
    return hh;
}

static GstClockTime pts_of(guint64 i) { return i * GST_SECOND / 30; }

static GstBuffer* make_frame(guint64 i) {
    GstBuffer* b = gst_buffer_new_allocate(NULL, 64 * 48 * 3, NULL);
    GstMapInfo map;
    gsize k;

    gst_buffer_map(b, &map, GST_MAP_WRITE);
    for (k = 0; k < map.size; k++) map.data[k] = (guint8)((k * 5 + i * 29) & 0xff);
    gst_buffer_unmap(b, &map);
    GST_BUFFER_PTS(b) = pts_of(i);
    GST_BUFFER_DURATION(b) = GST_SECOND / 30;
    return b;
}

static guint64 stat_u64(GstHarness* hh, const gchar* field) {
    GstStructure* s = NULL;
    guint64 v = G_MAXUINT64;

    g_object_get(hh->element, "stats", &s, NULL);
    fail_unless(gst_structure_get_uint64(s, field, &v), "no %s in stats", field);
    gst_structure_free(s);
    return v;
}

/* sampled = results + dropped + failed + aborted + pending */
static void check_invariant(GstHarness* hh) {
    GstStructure* s = NULL;
    guint64 sampled, results, dropped, failed, aborted;
    guint pending;

    g_object_get(hh->element, "stats", &s, NULL);
    fail_unless(gst_structure_get(s, "sampled", G_TYPE_UINT64, &sampled, "results", G_TYPE_UINT64, &results, "dropped",
                                  G_TYPE_UINT64, &dropped, "failed", G_TYPE_UINT64, &failed, "aborted", G_TYPE_UINT64,
                                  &aborted, "pending", G_TYPE_UINT, &pending, NULL));
    fail_unless(sampled == results + dropped + failed + aborted + pending, "%" GST_PTR_FORMAT, s);
    gst_structure_free(s);
}

/* Pushes frame @i and returns how many answers the output carries; the first in *m (a copy of its fields). */
static guint push_pull(GstHarness* hh, guint64 i, GstMgllavaResultMeta* m) {
    GstBuffer* out;
    GstMgllavaResultMeta* r;
    gpointer state = NULL;
    guint n = 0;

    fail_unless_equals_int(gst_harness_push(hh, make_frame(i)), GST_FLOW_OK);
    out = gst_harness_pull(hh);
    fail_unless(out != NULL);
    while ((r = gst_buffer_iterate_mgllava_result_meta(out, &state))) {
        if (n++ == 0 && m) {
            *m = *r;
            m->text = m->prompt = NULL; /* owned by the buffer */
        }
    }
    gst_buffer_unref(out);
    return n;
}

/* EOS, then the late-results event's answers (their clip fields) until the EOS. */
static guint eos_late(GstHarness* hh, guint* frames, GstClockTime* start, GstClockTime* end, guint64* source_frame) {
    GstEvent* ev;
    gboolean eos = FALSE;
    guint late = 0;

    fail_unless(gst_harness_push_event(hh, gst_event_new_eos()));
    while (!eos && (ev = gst_harness_try_pull_event(hh))) {
        guint k, size = gst_mgllava_late_results_event_get_size(ev);

        for (k = 0; k < size; k++, late++) {
            GstMgllavaResultMeta f;
            fail_unless(gst_mgllava_late_results_event_get(ev, k, &f));
            fail_unless(gst_mgllava_result_structure_get_clip(gst_mgllava_late_results_event_get_structure(ev, k),
                                                              frames, start, end));
            *source_frame = f.source_frame;
        }
        eos = GST_EVENT_TYPE(ev) == GST_EVENT_EOS;
        gst_event_unref(ev);
    }
    fail_unless(eos);
    return late;
}

/* exactly N frames a window, the answer on its last frame, a partial window answered at EOS */
GST_START_TEST(test_clip_windows) {
    GstHarness* hh = make_harness("tiny-llama3", "attach-mode=exact interval=1 clip-frames=3");
    GstBus* bus = gst_bus_new();
    GstMessage* msg;
    guint64 i, sf = 0;
    guint frames = 0, n_msgs = 0;
    GstClockTime start, end;

    gst_element_set_bus(hh->element, bus);
    for (i = 0; i < 10; i++) {
        GstMgllavaResultMeta m;
        guint n = push_pull(hh, i, &m);

        if (i % 3 == 2) {
            fail_unless_equals_int(n, 1);
            fail_unless_equals_int(m.clip_frames, 3);
            fail_unless_equals_uint64(m.source_frame, i);
            fail_unless_equals_uint64(m.source_pts, pts_of(i));
            fail_unless_equals_uint64(m.clip_start_pts, pts_of(i - 2));
            fail_unless_equals_uint64(m.clip_end_pts, pts_of(i));
            fail_unless_equals_int(m.n_objects, 3); /* one (dummy) object token a frame */
            fail_unless(m.n_tokens >= 1 && m.n_tokens <= 2);
        } else {
            fail_unless_equals_int(n, 0);
        }
    }
    /* frame 9 is a partial window: answered with its one frame after the last buffer */
    fail_unless_equals_int(eos_late(hh, &frames, &start, &end, &sf), 1);
    fail_unless_equals_int(frames, 1);
    fail_unless_equals_uint64(start, pts_of(9));
    fail_unless_equals_uint64(end, pts_of(9));
    fail_unless_equals_uint64(sf, 9);
    /* the bus messages carry the clip too */
    while ((msg = gst_bus_pop_filtered(bus, GST_MESSAGE_ELEMENT))) {
        const GstStructure* s = gst_message_get_structure(msg);
        if (gst_structure_has_name(s, "mgllava-result")) {
            fail_unless(gst_mgllava_result_structure_get_clip(s, &frames, &start, &end));
            fail_unless(frames == 3 || frames == 1);
            n_msgs++;
        }
        gst_message_unref(msg);
    }
    fail_unless_equals_int(n_msgs, 4);
    fail_unless_equals_uint64(stat_u64(hh, "clips"), 4);
    fail_unless_equals_uint64(stat_u64(hh, "clip-partial"), 1);
    fail_unless_equals_uint64(stat_u64(hh, "clip-frames-gathered"), 10);
    fail_unless_equals_uint64(stat_u64(hh, "sampled"), 4);
    fail_unless_equals_uint64(stat_u64(hh, "results"), 4);
    check_invariant(hh);
    gst_element_set_bus(hh->element, NULL);
    gst_object_unref(bus);
    gst_harness_teardown(hh);
}

GST_END_TEST;

/* clip-partial=false: the partial window at EOS is dropped, and counted */
GST_START_TEST(test_clip_partial_dropped) {
    GstHarness* hh = make_harness("tiny-llama3", "attach-mode=exact interval=2 clip-frames=2 clip-partial=false");
    guint64 i, sf = 0;
    guint frames = 0;
    GstClockTime start, end;

    /* sampled: frames 0, 2 (a window, answered on frame 2), then 4 (partial) */
    for (i = 0; i < 5; i++) {
        GstMgllavaResultMeta m;
        guint n = push_pull(hh, i, &m);
        fail_unless_equals_int(n, i == 2 ? 1 : 0);
        if (n) {
            fail_unless_equals_uint64(m.clip_start_pts, pts_of(0));
            fail_unless_equals_uint64(m.clip_end_pts, pts_of(2));
        }
    }
    fail_unless_equals_int(eos_late(hh, &frames, &start, &end, &sf), 0);
    fail_unless_equals_uint64(stat_u64(hh, "clip-partial-dropped"), 1);
    fail_unless_equals_uint64(stat_u64(hh, "dropped"), 1);
    fail_unless_equals_uint64(stat_u64(hh, "results"), 1);
    fail_unless_equals_uint64(stat_u64(hh, "sampled"), 2);
    check_invariant(hh);
    gst_harness_teardown(hh);
}

GST_END_TEST;

/* a flushing seek discards the open window: the next window starts after it */
GST_START_TEST(test_clip_flush) {
    GstHarness* hh = make_harness("tiny-llama3", "attach-mode=exact interval=1 clip-frames=3");
    GstSegment seg;
    guint64 i;

    for (i = 0; i < 2; i++) fail_unless_equals_int(push_pull(hh, i, NULL), 0);
    fail_unless(gst_harness_push_event(hh, gst_event_new_flush_start()));
    fail_unless(gst_harness_push_event(hh, gst_event_new_flush_stop(TRUE)));
    gst_segment_init(&seg, GST_FORMAT_TIME);
    fail_unless(gst_harness_push_event(hh, gst_event_new_segment(&seg)));
    for (i = 20; i < 26; i++) {
        GstMgllavaResultMeta m;
        guint n = push_pull(hh, i, &m);

        fail_unless_equals_int(n, i == 22 || i == 25 ? 1 : 0);
        if (n) {
            fail_unless_equals_int(m.clip_frames, 3);
            fail_unless_equals_uint64(m.clip_start_pts, pts_of(i - 2));
            fail_unless_equals_uint64(m.clip_end_pts, pts_of(i));
        }
    }
    fail_unless_equals_uint64(stat_u64(hh, "clip-reset"), 1);
    fail_unless_equals_uint64(stat_u64(hh, "aborted"), 1);
    fail_unless_equals_uint64(stat_u64(hh, "results"), 2);
    check_invariant(hh);
    gst_harness_teardown(hh);
}

GST_END_TEST;

/* clip-duration: frames duration/N apart in running time, a window spans the duration */
GST_START_TEST(test_clip_duration) {
    /* 3 frames over 300 ms at 30 fps: frames 0, 3, 6 then 9, 12, 15 */
    GstHarness* hh = make_harness("tiny-llama3", "attach-mode=exact clip-frames=3 clip-duration=300000000");
    guint64 i;

    for (i = 0; i < 17; i++) {
        GstMgllavaResultMeta m;
        guint n = push_pull(hh, i, &m);

        fail_unless_equals_int(n, i == 6 || i == 15 ? 1 : 0);
        if (n) {
            fail_unless_equals_uint64(m.clip_start_pts, pts_of(i - 6));
            fail_unless_equals_uint64(m.clip_end_pts, pts_of(i));
            fail_unless_equals_int(m.clip_frames, 3);
        }
    }
    fail_unless_equals_uint64(stat_u64(hh, "clip-frames-gathered"), 6);
    check_invariant(hh);
    gst_harness_teardown(hh);
}

GST_END_TEST;

/* the number of frames against the context, at start: an error naming both */
GST_START_TEST(test_clip_context) {
    gchar* desc = g_strdup_printf("videotestsrc num-buffers=3 ! video/x-raw,width=64,height=48 ! mgllavafilter "
                                  "model=%s/tiny-vicuna clip-frames=8 ! fakesink",
                                  models_dir);
    GstElement* pipe = gst_parse_launch(desc, NULL);
    GstBus* bus = gst_element_get_bus(pipe);
    GstMessage* msg;
    GError* err = NULL;
    gchar* dbg = NULL;

    g_free(desc);
    gst_element_set_state(pipe, GST_STATE_PLAYING);
    msg = gst_bus_timed_pop_filtered(bus, 20 * GST_SECOND, GST_MESSAGE_ERROR | GST_MESSAGE_EOS);
    fail_unless(msg && GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR);
    gst_message_parse_error(msg, &err, &dbg);
    fail_unless(strstr(err->message, "clip-frames=8") != NULL, "%s", err->message);
    fail_unless(dbg && strstr(dbg, "8 frames") && strstr(dbg, "4096-token context") && strstr(dbg, "at most 7"), "%s",
                dbg);
    g_error_free(err);
    g_free(dbg);
    gst_message_unref(msg);
    gst_element_set_state(pipe, GST_STATE_NULL);
    gst_object_unref(bus);
    gst_object_unref(pipe);
}

GST_END_TEST;

/* the JSON line of mgllavajson carries the clip */
GST_START_TEST(test_clip_json) {
    gchar* out = g_build_filename(g_get_tmp_dir(), "mgllava-test-clip.jsonl", NULL);
    gchar* desc = g_strdup_printf(
        "videotestsrc num-buffers=4 ! video/x-raw,width=64,height=48,framerate=30/1 ! mgllavafilter "
        "model=%s/tiny-llama3 max-new-tokens=2 interval=1 clip-frames=2 attach-mode=exact ! mgllavajson "
        "location=%s skip-empty=true ! fakesink",
        models_dir, out);
    GstElement* pipe = gst_parse_launch(desc, NULL);
    GstBus* bus = gst_element_get_bus(pipe);
    GstMessage* msg;
    gchar* text = NULL;

    g_free(desc);
    gst_element_set_state(pipe, GST_STATE_PLAYING);
    msg = gst_bus_timed_pop_filtered(bus, 60 * GST_SECOND, GST_MESSAGE_ERROR | GST_MESSAGE_EOS);
    fail_unless(msg && GST_MESSAGE_TYPE(msg) == GST_MESSAGE_EOS);
    gst_message_unref(msg);
    gst_element_set_state(pipe, GST_STATE_NULL);
    fail_unless(g_file_get_contents(out, &text, NULL, NULL));
    /* frames 1 and 3 end windows of 2 (0-33 ms, 67-100 ms) */
    fail_unless(strstr(text, "\"clip\": {\"frames\": 2, \"start_pts\": 0, \"end_pts\": 33333333}") != NULL, "%s", text);
    fail_unless(strstr(text, "\"clip\": {\"frames\": 2, \"start_pts\": 66666666, \"end_pts\": 100000000}") != NULL,
                "%s", text);
    g_free(text);
    g_unlink(out);
    g_free(out);
    gst_object_unref(bus);
    gst_object_unref(pipe);
}

GST_END_TEST;

static Suite* clip_suite(void) {
    Suite* s = suite_create("mgllavafilter-clip");
    TCase* tc = tcase_create("clip");

    tcase_set_timeout(tc, 300);
    suite_add_tcase(s, tc);
    tcase_add_test(tc, test_clip_windows);
    tcase_add_test(tc, test_clip_partial_dropped);
    tcase_add_test(tc, test_clip_flush);
    tcase_add_test(tc, test_clip_duration);
    tcase_add_test(tc, test_clip_context);
    tcase_add_test(tc, test_clip_json);
    return s;
}

int main(int argc, char** argv) {
    int ret;

    gst_check_init(&argc, &argv);
    models_dir = g_build_filename(g_getenv("MGL_FIXTURES"), "models", NULL);
    ret = gst_check_run_suite(clip_suite(), "mgllavafilter-clip", __FILE__);
    g_free(models_dir);
    return ret;
}
