/* mgllavafilter with GstHarness on the tiny models: the attach modes (auto
 * on a live and a non-live upstream), sampling (interval=0), drop policies,
 * ROI metas in, label filters, caps changes, flushing and the stats
 * invariant, EOS delivery (the late-results event), state cycles, the text
 * pad, latency, and errors. */
#include "gst-asan.h"
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>
#include <unistd.h>

#include "gstmgllavameta.h"

static gchar* model_dir;

/* The model loads on a thread once the element starts: the harness's
 * upstream is live, so in latest mode the first frames would pass
 * unanswered. Waits (at most 30 s: a model that fails to load never is). */
static void wait_loaded(GstElement* e) {
    gint64 end = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;
    gboolean loaded = FALSE;

    while (g_get_monotonic_time() < end) {
        g_object_get(e, "model-loaded", &loaded, NULL);
        if (loaded) return;
        g_usleep(1000);
    }
}

/* A harness around a bare mgllavafilter; `props` is "name=value ..." */
static GstHarness* make_harness(const gchar* props, gint w, gint h, const gchar* format) {
    GstElement* e = gst_element_factory_make("mgllavafilter", NULL);
    gchar **kv = g_strsplit(props, " ", -1), **p;
    GstHarness* hh;
    gchar* caps;

    g_object_set(e, "model", model_dir, "max-new-tokens", 3, NULL);
    for (p = kv; *p; p++) {
        gchar* eq = strchr(*p, '=');
        if (!eq) continue;
        *eq = 0;
        gst_util_set_object_arg(G_OBJECT(e), *p, eq + 1);
    }
    g_strfreev(kv);
    hh = gst_harness_new_with_element(e, "sink", "src");
    gst_object_unref(e);
    caps = g_strdup_printf("video/x-raw,format=%s,width=%d,height=%d,"
                           "framerate=30/1",
                           format, w, h);
    gst_harness_set_src_caps_str(hh, caps);
    g_free(caps);
    wait_loaded(hh->element);
    return hh;
}

static GstBuffer* make_frame(gint w, gint h, guint64 i) {
    gsize size = (gsize)w * h * 3;
    GstBuffer* b = gst_buffer_new_allocate(NULL, size, NULL);
    GstMapInfo map;
    gsize k;

    gst_buffer_map(b, &map, GST_MAP_WRITE);
    for (k = 0; k < size; k++) map.data[k] = (guint8)((k * 7 + i * 13) & 0xff);
    gst_buffer_unmap(b, &map);
    GST_BUFFER_PTS(b) = i * GST_SECOND / 30;
    GST_BUFFER_DURATION(b) = GST_SECOND / 30;
    return b;
}

static guint count_results(GstBuffer* b, GstMgllavaResultMeta** first) {
    gpointer state = NULL;
    GstMgllavaResultMeta* m;
    guint n = 0;

    while ((m = gst_buffer_iterate_mgllava_result_meta(b, &state))) {
        if (first && n == 0) *first = m;
        n++;
    }
    return n;
}

static GstStructure* stats(GstHarness* hh) {
    GstStructure* s = NULL;
    g_object_get(hh->element, "stats", &s, NULL);
    return s;
}

static guint64 stat(GstHarness* hh, const gchar* field) {
    GstStructure* s = stats(hh);
    guint64 v = 0;
    gst_structure_get_uint64(s, field, &v);
    gst_structure_free(s);
    return v;
}

static guint64 stat_of(GstElement* e, const gchar* field) {
    GstStructure* s = NULL;
    guint64 v = 0;

    g_object_get(e, "stats", &s, NULL);
    gst_structure_get_uint64(s, field, &v);
    gst_structure_free(s);
    return v;
}

/* sampled = results + dropped + failed + aborted + pending, from one snapshot */
static void check_invariant(GstElement* e) {
    GstStructure* s = NULL;
    guint64 sampled, results, dropped, failed, aborted;
    guint pending;

    g_object_get(e, "stats", &s, NULL);
    fail_unless(gst_structure_get(s, "sampled", G_TYPE_UINT64, &sampled, "results", G_TYPE_UINT64, &results, "dropped",
                                  G_TYPE_UINT64, &dropped, "failed", G_TYPE_UINT64, &failed, "aborted", G_TYPE_UINT64,
                                  &aborted, "pending", G_TYPE_UINT, &pending, NULL));
    fail_unless(sampled == results + dropped + failed + aborted + pending, "%" GST_PTR_FORMAT, s);
    gst_structure_free(s);
}

GST_START_TEST(test_properties) {
    GstElement* e = gst_element_factory_make("mgllavafilter", NULL);
    gchar *prompt, *labels;
    guint interval, pending;
    gint mode, policy;
    gfloat temp;

    fail_unless(e != NULL);
    g_object_set(e, "prompt", "How many objects?", "interval", 7, "max-pending", 3, "temperature", 0.5f,
                 "object-labels", "red,blue", NULL);
    gst_util_set_object_arg(G_OBJECT(e), "attach-mode", "exact");
    gst_util_set_object_arg(G_OBJECT(e), "drop-policy", "block");
    g_object_get(e, "prompt", &prompt, "interval", &interval, "max-pending", &pending, "temperature", &temp,
                 "object-labels", &labels, "attach-mode", &mode, "drop-policy", &policy, NULL);
    fail_unless_equals_string(prompt, "How many objects?");
    fail_unless_equals_string(labels, "red,blue");
    fail_unless_equals_int(interval, 7);
    fail_unless_equals_int(pending, 3);
    fail_unless_equals_int(mode, 1);
    fail_unless_equals_int(policy, 2);
    fail_unless(temp == 0.5f);
    g_free(prompt);
    g_free(labels);
    /* the defaults: attach-mode=auto, max-batch 0 (from memory); interval 0
     * is accepted (every frame) */
    {
        GstElement* d = gst_element_factory_make("mgllavafilter", NULL);
        guint mb = 1;
        g_object_set(d, "interval", 0, NULL);
        g_object_get(d, "attach-mode", &mode, "interval", &interval, "max-batch", &mb, NULL);
        fail_unless_equals_int(mode, 2);
        fail_unless_equals_int(interval, 0);
        fail_unless_equals_int(mb, 0);
        gst_object_unref(d);
    }
    /* every property is documented */
    {
        guint n, i;
        GParamSpec** ps = g_object_class_list_properties(G_OBJECT_GET_CLASS(e), &n);
        for (i = 0; i < n; i++)
            fail_unless(g_param_spec_get_blurb(ps[i]) != NULL && strlen(g_param_spec_get_blurb(ps[i])) > 5, "%s",
                        g_param_spec_get_name(ps[i]));
        g_free(ps);
    }
    gst_object_unref(e);
}

GST_END_TEST;

GST_START_TEST(test_exact_mode) {
    GstHarness* hh = make_harness("attach-mode=exact interval=3", 64, 48, "RGB");
    guint64 i;

    for (i = 0; i < 10; i++) {
        GstBuffer* out;
        GstMgllavaResultMeta* m = NULL;
        guint n;

        fail_unless_equals_int(gst_harness_push(hh, make_frame(64, 48, i)), GST_FLOW_OK);
        out = gst_harness_pull(hh);
        n = count_results(out, &m);
        if (i % 3 == 0) {
            fail_unless_equals_int(n, 1);
            fail_unless_equals_uint64(m->source_frame, i);
            fail_unless_equals_uint64(m->source_pts, GST_BUFFER_PTS(out));
            fail_unless_equals_string(m->prompt, "Describe the image.");
            fail_unless(m->n_tokens >= 1 && m->n_tokens <= 3);
            fail_unless_equals_int(m->n_objects, 1); /* the dummy box */
            fail_unless(m->latency_ms > 0 && m->vision_ms > 0);
        } else {
            fail_unless_equals_int(n, 0);
        }
        gst_buffer_unref(out);
    }
    fail_unless_equals_uint64(stat(hh, "sampled"), 4);
    fail_unless_equals_uint64(stat(hh, "results"), 4);
    gst_harness_teardown(hh);
}

GST_END_TEST;

GST_START_TEST(test_latest_mode) {
    GstHarness* hh = make_harness("attach-mode=latest interval=1 max-pending=1", 64, 48, "RGB");
    guint64 i, got = 0, last_src = 0;
    gint64 t0 = g_get_monotonic_time();
    gboolean first_result = TRUE;

    /* frames pass at once although inference is far slower than the push rate */
    for (i = 0; i < 200 && got < 3; i++) {
        GstBuffer* out;
        GstMgllavaResultMeta* m = NULL;
        gpointer state = NULL;

        fail_unless_equals_int(gst_harness_push(hh, make_frame(64, 48, i)), GST_FLOW_OK);
        out = gst_harness_pull(hh);
        while ((m = gst_buffer_iterate_mgllava_result_meta(out, &state))) {
            /* attached to a later frame, carrying its own frame's PTS */
            fail_unless(m->source_frame < i);
            fail_unless_equals_uint64(m->source_pts, m->source_frame * GST_SECOND / 30);
            fail_unless(first_result || m->source_frame > last_src);
            last_src = m->source_frame;
            first_result = FALSE;
            got++;
        }
        gst_buffer_unref(out);
        /* the first ten frames come back to back: requests arrive faster than any model answers
         * them, so max-pending=1 must drop some; then a frame every 20 ms lets answers arrive */
        if (i >= 10) g_usleep(20000);
    }
    fail_unless(got >= 3, "only %" G_GUINT64_FORMAT " results", got);
    /* every sampled frame ends as exactly one result, one counted drop, or pending */
    {
        GstStructure* s = stats(hh);
        guint64 sampled, results, dropped, failed;
        guint pending;
        gst_structure_get(s, "sampled", G_TYPE_UINT64, &sampled, "results", G_TYPE_UINT64, &results, "dropped",
                          G_TYPE_UINT64, &dropped, "failed", G_TYPE_UINT64, &failed, "pending", G_TYPE_UINT, &pending,
                          NULL);
        fail_unless(sampled == results + dropped + failed + pending, "%" GST_PTR_FORMAT, s);
        fail_unless(dropped > 0); /* max-pending=1, drop-policy=oldest */
        gst_structure_free(s);
    }
    GST_INFO("latest mode: %" G_GUINT64_FORMAT " frames in %.2f s", i, (g_get_monotonic_time() - t0) / 1e6);
    gst_harness_teardown(hh);
}

GST_END_TEST;

static void check_policy(const gchar* policy, gboolean expect_drops) {
    gchar* props = g_strdup_printf("interval=1 max-pending=2 drop-policy=%s", policy);
    GstHarness* hh = make_harness(props, 64, 48, "RGB");
    GstStructure* s;
    guint64 i, sampled, results, dropped, failed;
    guint pending;

    for (i = 0; i < 12; i++) {
        gst_harness_push(hh, make_frame(64, 48, i));
        gst_buffer_unref(gst_harness_pull(hh));
    }
    gst_harness_push_event(hh, gst_event_new_eos()); /* drains (not live) */
    s = stats(hh);
    gst_structure_get(s, "sampled", G_TYPE_UINT64, &sampled, "results", G_TYPE_UINT64, &results, "dropped",
                      G_TYPE_UINT64, &dropped, "failed", G_TYPE_UINT64, &failed, "pending", G_TYPE_UINT, &pending,
                      NULL);
    fail_unless_equals_uint64(sampled, 12);
    fail_unless_equals_int(pending, 0);
    fail_unless(sampled == results + dropped + failed, "%" GST_PTR_FORMAT, s);
    if (expect_drops)
        fail_unless(dropped > 0, "%s: no drops: %" GST_PTR_FORMAT, policy, s);
    else
        fail_unless_equals_uint64(dropped, 0);
    gst_structure_free(s);
    gst_harness_teardown(hh);
    g_free(props);
}

GST_START_TEST(test_drop_policies) {
    check_policy("oldest", TRUE);
    check_policy("newest", TRUE);
    check_policy("block", FALSE);
}

GST_END_TEST;

static void add_roi(GstBuffer* b, const gchar* label, guint x, guint y, guint w, guint h, gdouble conf) {
    GstVideoRegionOfInterestMeta* r = gst_buffer_add_video_region_of_interest_meta(b, label, x, y, w, h);
    gst_video_region_of_interest_meta_add_param(
        r, gst_structure_new("detection", "confidence", G_TYPE_DOUBLE, conf, NULL));
}

GST_START_TEST(test_objects) {
    struct {
        const gchar* props;
        guint want;
    } cases[] = {
        {"", 3},
        {"object-labels=red", 2},
        {"object-labels=blue,green", 1},
        {"max-objects=1", 1},
        {"min-object-size=15", 2},
        {"use-objects=false", 0},
        {"use-high-res=false", 0},
        {"object-order=reading", 3},
        {"object-order=score max-objects=2", 2},
    };
    guint c;

    for (c = 0; c < G_N_ELEMENTS(cases); c++) {
        gchar* props = g_strdup_printf("attach-mode=exact interval=1 %s", cases[c].props);
        GstHarness* hh = make_harness(props, 96, 64, "RGB");
        GstBuffer *in = make_frame(96, 64, 0), *out;
        GstMgllavaResultMeta* m = NULL;

        add_roi(in, "red", 2, 2, 20, 20, 0.9);
        add_roi(in, "red", 60, 30, 30, 30, 0.8);
        add_roi(in, "blue", 30, 10, 10, 40, 0.7);
        gst_harness_push(hh, in);
        out = gst_harness_pull(hh);
        fail_unless_equals_int(count_results(out, &m), 1);
        fail_unless_equals_int(m->n_objects, cases[c].want);
        gst_buffer_unref(out);
        gst_harness_teardown(hh);
        g_free(props);
    }
}

GST_END_TEST;

GST_START_TEST(test_formats_and_caps_change) {
    const gchar* formats[] = {"RGBx", "BGRx", "RGBA", "BGRA", "I420", "NV12"};
    guint f;

    for (f = 0; f < G_N_ELEMENTS(formats); f++) {
        GstHarness* hh = make_harness("attach-mode=exact interval=1", 64, 48, formats[f]);
        GstVideoInfo info;
        GstBuffer* out;

        gst_video_info_set_format(&info, gst_video_format_from_string(formats[f]), 64, 48);
        gst_harness_push(hh, gst_buffer_new_allocate(NULL, info.size, NULL));
        out = gst_harness_pull(hh);
        fail_unless_equals_int(count_results(out, NULL), 1);
        gst_buffer_unref(out);
        /* resolution switch mid-stream */
        gst_harness_set_src_caps_str(hh, "video/x-raw,format=RGB,width=80,"
                                         "height=120,framerate=30/1");
        gst_harness_push(hh, make_frame(80, 120, 1));
        out = gst_harness_pull(hh);
        fail_unless_equals_int(count_results(out, NULL), 1);
        gst_buffer_unref(out);
        gst_harness_teardown(hh);
    }
}

GST_END_TEST;

GST_START_TEST(test_flush) {
    GstHarness* hh = make_harness("interval=1 max-pending=4 drop-policy=block", 64, 48, "RGB");
    guint64 i, stale = 0;

    for (i = 0; i < 4; i++) {
        gst_harness_push(hh, make_frame(64, 48, i));
        gst_buffer_unref(gst_harness_pull(hh));
    }
    /* a flush drops what is pending and aborts the request in flight */
    fail_unless(gst_harness_push_event(hh, gst_event_new_flush_start()));
    fail_unless(gst_harness_push_event(hh, gst_event_new_flush_stop(TRUE)));
    {
        GstSegment seg;
        gst_segment_init(&seg, GST_FORMAT_TIME);
        gst_harness_push_event(hh, gst_event_new_segment(&seg));
    }
    /* what was pending is counted as aborted, not lost from the stats */
    fail_unless(stat(hh, "aborted") > 0);
    fail_unless_equals_uint64(stat(hh, "dropped"), 0);
    check_invariant(hh->element);
    for (i = 100; i < 110; i++) {
        GstBuffer* out;
        GstMgllavaResultMeta* m;
        gpointer state = NULL;

        gst_harness_push(hh, make_frame(64, 48, i));
        out = gst_harness_pull(hh);
        while ((m = gst_buffer_iterate_mgllava_result_meta(out, &state)))
            if (m->source_frame < 4) stale++;
        gst_buffer_unref(out);
        g_usleep(30000);
    }
    fail_unless_equals_uint64(stale, 0);
    check_invariant(hh->element);
    gst_harness_teardown(hh);
}

GST_END_TEST;

/* the harness's upstream answers the LATENCY query as live: this probe on the
 * filter's sink pad makes it a non-live one (a file) */
static GstPadProbeReturn not_live_probe(GstPad* pad, GstPadProbeInfo* info, gpointer ud) {
    GstQuery* q = GST_PAD_PROBE_INFO_QUERY(info);

    if (GST_QUERY_TYPE(q) == GST_QUERY_LATENCY) gst_query_set_latency(q, FALSE, 0, GST_CLOCK_TIME_NONE);
    return GST_PAD_PROBE_OK;
}

static void make_not_live(GstHarness* hh) {
    GstPad* pad = gst_element_get_static_pad(hh->element, "sink");
    gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_QUERY_UPSTREAM | GST_PAD_PROBE_TYPE_PULL, not_live_probe, NULL, NULL);
    gst_object_unref(pad);
}

GST_START_TEST(test_auto_mode) {
    guint64 i;

    /* not live: every sampled frame carries its own answer, with no deadline
     * (exact-latency=1 ns is not used) and no QoS skipping; QoS events stay
     * here (a decoder upstream would skip frames for the delay we make) */
    {
        GstHarness* hh = make_harness("interval=2 exact-latency=1", 64, 48, "RGB");
        GstEvent* ev;

        make_not_live(hh);
        for (i = 0; i < 8; i++) {
            if (i == 1) {
                fail_unless(gst_harness_push_upstream_event(
                    hh, gst_event_new_qos(GST_QOS_TYPE_UNDERFLOW, 2.0, GST_SECOND, 9 * GST_SECOND)));
                while ((ev = gst_harness_try_pull_upstream_event(hh))) {
                    fail_if(GST_EVENT_TYPE(ev) == GST_EVENT_QOS);
                    gst_event_unref(ev);
                }
            }
            GstBuffer* out;
            GstMgllavaResultMeta* m = NULL;

            fail_unless_equals_int(gst_harness_push(hh, make_frame(64, 48, i)), GST_FLOW_OK);
            out = gst_harness_pull(hh);
            if (i % 2 == 0) {
                fail_unless_equals_int(count_results(out, &m), 1);
                fail_unless_equals_uint64(m->source_frame, i);
            } else {
                fail_unless_equals_int(count_results(out, NULL), 0);
            }
            gst_buffer_unref(out);
        }
        fail_unless_equals_uint64(stat(hh, "sampled"), 4);
        fail_unless_equals_uint64(stat(hh, "results"), 4);
        fail_unless_equals_uint64(stat(hh, "late"), 0);
        gst_harness_teardown(hh);
    }
    /* live: latest; frames pass at once, so frames pushed back to back cannot
     * all carry their own answer (one request at a time, the oldest dropped) */
    {
        GstHarness* hh = make_harness("interval=1 max-pending=1", 64, 48, "RGB");
        guint own = 0;

        for (i = 0; i < 30; i++) {
            GstBuffer* out;
            GstMgllavaResultMeta* m;
            gpointer state = NULL;

            gst_harness_push(hh, make_frame(64, 48, i));
            out = gst_harness_pull(hh);
            while ((m = gst_buffer_iterate_mgllava_result_meta(out, &state)))
                if (m->source_frame == i) own++;
            gst_buffer_unref(out);
        }
        fail_unless(own < 30, "every frame carried its own answer: not latest");
        check_invariant(hh->element);
        gst_harness_teardown(hh);
    }
}

GST_END_TEST;

/* Every answer reaches downstream: on the frames, then the rest in one
 * late-results event before the EOS. */
GST_START_TEST(test_eos_delivers_every_answer) {
    GstHarness* hh = make_harness("attach-mode=latest interval=1 "
                                  "max-pending=8 drop-policy=block",
                                  64, 48, "RGB");
    gboolean seen[6] = {FALSE};
    guint64 i, n = 0, late = 0;
    GstEvent* ev;
    gboolean eos = FALSE;

    for (i = 0; i < 6; i++) {
        GstBuffer* out;
        GstMgllavaResultMeta* m;
        gpointer state = NULL;

        gst_harness_push(hh, make_frame(64, 48, i));
        out = gst_harness_pull(hh);
        while ((m = gst_buffer_iterate_mgllava_result_meta(out, &state))) {
            fail_unless(m->source_frame < 6 && !seen[m->source_frame]);
            seen[m->source_frame] = TRUE;
            n++;
        }
        gst_buffer_unref(out);
    }
    fail_unless(gst_harness_push_event(hh, gst_event_new_eos()));
    while (!eos && (ev = gst_harness_try_pull_event(hh))) {
        guint k, size = gst_mgllava_late_results_event_get_size(ev);

        for (k = 0; k < size; k++) {
            GstMgllavaResultMeta f;
            fail_unless(gst_mgllava_late_results_event_get(ev, k, &f));
            fail_unless(f.source_frame < 6 && !seen[f.source_frame]);
            fail_unless_equals_uint64(f.source_pts, f.source_frame * GST_SECOND / 30);
            fail_unless(f.text != NULL && f.n_tokens >= 1);
            fail_unless_equals_string(f.prompt, "Describe the image.");
            seen[f.source_frame] = TRUE;
            late++;
        }
        if (size) fail_unless(GST_EVENT_IS_SERIALIZED(ev) && GST_EVENT_IS_DOWNSTREAM(ev));
        eos = GST_EVENT_TYPE(ev) == GST_EVENT_EOS;
        gst_event_unref(ev);
    }
    fail_unless(eos);
    fail_unless_equals_uint64(n + late, 6);
    fail_unless(late >= 1);                        /* the last frame's answer came after it */
    fail_unless(gst_harness_try_pull(hh) == NULL); /* never a buffer */
    fail_unless_equals_uint64(stat(hh, "results"), 6);
    check_invariant(hh->element);
    gst_harness_teardown(hh);
}

GST_END_TEST;

GST_START_TEST(test_interval_zero) {
    /* interval=0 samples every frame, as interval=1 */
    GstHarness* hh = make_harness("attach-mode=exact interval=0", 64, 48, "RGB");
    guint64 i;

    for (i = 0; i < 5; i++) {
        GstBuffer* out;
        GstMgllavaResultMeta* m = NULL;

        gst_harness_push(hh, make_frame(64, 48, i));
        out = gst_harness_pull(hh);
        fail_unless_equals_int(count_results(out, &m), 1);
        fail_unless_equals_uint64(m->source_frame, i);
        gst_buffer_unref(out);
    }
    fail_unless_equals_uint64(stat(hh, "sampled"), 5);
    gst_harness_teardown(hh);
}

GST_END_TEST;

GST_START_TEST(test_state_cycles) {
    guint c;

    for (c = 0; c < 10; c++) {
        GstHarness* hh = make_harness("interval=1 max-pending=2", 64, 48, "RGB");
        guint64 i;

        for (i = 0; i < 3; i++) {
            gst_harness_push(hh, make_frame(64, 48, i));
            gst_buffer_unref(gst_harness_pull(hh));
        }
        /* teardown goes to NULL with a request in flight */
        gst_harness_teardown(hh);
    }
}

GST_END_TEST;

GST_START_TEST(test_text_pad) {
    /* a caption on every sampled frame (automatic duration: the sampling
     * period, 2 frames; or one frame), and a gap for each frame in between,
     * also while the caption shows: a muxer learns that the text stream went
     * past the frame (test_matroska_subtitles) */
    /* exact-latency long enough for a slow (sanitized, loaded) machine */
    const gchar* props[2] = {"attach-mode=exact interval=2 exact-latency=60000000000",
                             "attach-mode=exact interval=2 exact-latency=60000000000 text-duration=33333333"};
    const guint64 durs[2] = {2 * GST_SECOND / 30, 33333333};
    const gint want_gaps[2] = {3, 3};
    gint k;

    for (k = 0; k < 2; k++) {
        GstHarness* hh = make_harness(props[k], 64, 48, "RGB");
        GstHarness* th = gst_harness_new_with_element(hh->element, NULL, "text_src");
        guint64 i;
        guint texts = 0, gaps = 0;
        GstEvent* ev;
        GstBuffer* tb;

        for (i = 0; i < 6; i++) {
            gst_harness_push(hh, make_frame(64, 48, i));
            gst_buffer_unref(gst_harness_pull(hh));
        }
        while ((tb = gst_harness_try_pull(th))) {
            fail_unless_equals_uint64(GST_BUFFER_PTS(tb), (texts * 2) * GST_SECOND / 30);
            fail_unless_equals_uint64(GST_BUFFER_DURATION(tb), durs[k]);
            fail_unless(gst_buffer_get_size(tb) > 0);
            texts++;
            gst_buffer_unref(tb);
        }
        while ((ev = gst_harness_try_pull_event(th))) {
            if (GST_EVENT_TYPE(ev) == GST_EVENT_GAP) gaps++;
            if (GST_EVENT_TYPE(ev) == GST_EVENT_CAPS) {
                GstCaps *caps, *want = gst_caps_from_string("text/x-raw,format=utf8");
                gst_event_parse_caps(ev, &caps);
                fail_unless(gst_caps_is_equal(caps, want));
                gst_caps_unref(want);
            }
            gst_event_unref(ev);
        }
        fail_unless_equals_int(texts, 3);
        fail_unless_equals_int(gaps, want_gaps[k]);
        gst_harness_teardown(th);
        gst_harness_teardown(hh);
    }
}

GST_END_TEST;

GST_START_TEST(test_latency_query) {
    GstHarness* hh = make_harness("attach-mode=exact exact-latency=2000000000", 64, 48, "RGB");
    GstQuery* q = gst_query_new_latency();
    gboolean live;
    GstClockTime min, max;

    gst_harness_set_upstream_latency(hh, 10 * GST_MSECOND);
    fail_unless(gst_pad_peer_query(hh->sinkpad, q));
    gst_query_parse_latency(q, &live, &min, &max);
    fail_unless_equals_uint64(min, 10 * GST_MSECOND + 2 * GST_SECOND);
    fail_unless(max >= min);
    gst_query_unref(q);
    gst_harness_teardown(hh);
}

GST_END_TEST;

static void expect_start_error(const gchar* props, const gchar* needle) {
    GstElement* pipe;
    GstBus* bus;
    GstMessage* msg;
    GError* err = NULL;
    gchar* dbg = NULL;
    gchar* desc = g_strdup_printf("videotestsrc num-buffers=1 ! mgllavafilter "
                                  "%s ! fakesink",
                                  props);

    pipe = gst_parse_launch(desc, NULL);
    g_free(desc);
    gst_element_set_state(pipe, GST_STATE_PAUSED);
    bus = gst_element_get_bus(pipe);
    msg = gst_bus_timed_pop_filtered(bus, 10 * GST_SECOND, GST_MESSAGE_ERROR);
    fail_unless(msg != NULL);
    gst_message_parse_error(msg, &err, &dbg);
    fail_unless(strstr(err->message, needle) != NULL, "%s", err->message);
    GST_INFO("error as expected: %s", err->message);
    g_error_free(err);
    g_free(dbg);
    gst_message_unref(msg);
    gst_element_set_state(pipe, GST_STATE_NULL);
    gst_object_unref(bus);
    gst_object_unref(pipe);
}

GST_START_TEST(test_errors) {
    gchar* p = g_strdup_printf("model=%s device=cuda", model_dir);

    expect_start_error("", "No model set");
    expect_start_error("model=/nonexistent/model", "/nonexistent/model");
    expect_start_error(p, "cuda");
    g_free(p);
}

GST_END_TEST;

GST_START_TEST(test_prompt_change_while_playing) {
    GstHarness* hh = make_harness("attach-mode=exact interval=1", 64, 48, "RGB");
    GstBuffer* out;
    GstMgllavaResultMeta* m = NULL;

    gst_harness_push(hh, make_frame(64, 48, 0));
    out = gst_harness_pull(hh);
    count_results(out, &m);
    fail_unless_equals_string(m->prompt, "Describe the image.");
    gst_buffer_unref(out);
    g_object_set(hh->element, "prompt", "How many objects are there?", NULL);
    gst_harness_push(hh, make_frame(64, 48, 1));
    out = gst_harness_pull(hh);
    m = NULL;
    count_results(out, &m);
    fail_unless_equals_string(m->prompt, "How many objects are there?");
    gst_buffer_unref(out);
    gst_harness_teardown(hh);
}

GST_END_TEST;

GST_START_TEST(test_qos_skips_late_frames) {
    GstHarness* hh = make_harness("attach-mode=exact interval=1", 64, 48, "RGB");
    GstBuffer* out;
    guint64 i;

    gst_harness_push(hh, make_frame(64, 48, 0));
    gst_buffer_unref(gst_harness_pull(hh));
    /* downstream says: everything before 10 s is late */
    fail_unless(gst_harness_push_upstream_event(
        hh, gst_event_new_qos(GST_QOS_TYPE_UNDERFLOW, 2.0, GST_SECOND, 9 * GST_SECOND)));
    for (i = 1; i < 5; i++) {
        gst_harness_push(hh, make_frame(64, 48, i)); /* pts < 1 s: late */
        out = gst_harness_pull(hh);                  /* passed on, not dropped */
        fail_unless_equals_int(count_results(out, NULL), 0);
        gst_buffer_unref(out);
    }
    fail_unless_equals_uint64(stat(hh, "late"), 4);
    fail_unless_equals_uint64(stat(hh, "sampled"), 1);
    gst_harness_teardown(hh);
}

GST_END_TEST;

GST_START_TEST(test_bad_frames) {
    GstHarness* hh = make_harness("attach-mode=exact interval=1", 64, 48, "RGB");
    GstBuffer* out;

    /* a buffer too small for its caps: a warning, the frame still flows */
    fail_unless_equals_int(gst_harness_push(hh, gst_buffer_new_allocate(NULL, 10, NULL)), GST_FLOW_OK);
    out = gst_harness_pull(hh);
    fail_unless_equals_int(count_results(out, NULL), 0);
    gst_buffer_unref(out);
    fail_unless_equals_int(gst_harness_push(hh, make_frame(64, 48, 1)), GST_FLOW_OK);
    out = gst_harness_pull(hh);
    fail_unless_equals_int(count_results(out, NULL), 1);
    gst_buffer_unref(out);
    gst_harness_teardown(hh);

    /* zero-sized frames are refused at negotiation, not crashed on */
    hh = make_harness("interval=1", 64, 48, "RGB");
    gst_harness_set_src_caps_str(hh, "video/x-raw,format=RGB,width=0,height=0,framerate=30/1");
    fail_if(gst_harness_push(hh, gst_buffer_new()) == GST_FLOW_OK);
    gst_harness_teardown(hh);
}

GST_END_TEST;

GST_START_TEST(test_interval_time_and_sampling) {
    /* one sample per 100 ms of running time at 30 fps: frames 0, 3, 6, 9 (100 ms = 3 frames) */
    GstHarness* hh = make_harness("attach-mode=exact interval=1000 "
                                  "interval-time=100000000 max-new-tokens=1",
                                  64, 48, "RGB");
    guint64 i, answered = 0;

    for (i = 0; i < 10; i++) {
        GstBuffer* out;
        GstMgllavaResultMeta* m = NULL;

        gst_harness_push(hh, make_frame(64, 48, i));
        out = gst_harness_pull(hh);
        if (count_results(out, &m)) {
            fail_unless_equals_uint64(m->source_frame, answered * 3);
            fail_unless_equals_int(m->n_tokens, 1); /* max-new-tokens */
            answered++;
        }
        gst_buffer_unref(out);
    }
    fail_unless_equals_uint64(answered, 4);
    gst_harness_teardown(hh);

    /* seeded sampling is reproducible: two elements, same seed, same frame, same text */
    {
        gchar* texts[2];
        gint k;
        for (k = 0; k < 2; k++) {
            GstHarness* h2 = make_harness("attach-mode=exact interval=1 temperature=1.5 "
                                          "top-p=0.9 top-k=50 seed=7",
                                          64, 48, "RGB");
            GstBuffer* out;
            GstMgllavaResultMeta* m = NULL;

            gst_harness_push(h2, make_frame(64, 48, 3));
            out = gst_harness_pull(h2);
            fail_unless_equals_int(count_results(out, &m), 1);
            texts[k] = g_strdup(m->text);
            gst_buffer_unref(out);
            gst_harness_teardown(h2);
        }
        fail_unless_equals_string(texts[0], texts[1]);
        g_free(texts[0]);
        g_free(texts[1]);
    }
}

GST_END_TEST;

/* A pipeline videotestsrc ! mgllavafilter max-batch=@mb ! fakesink taken to
 * PAUSED; the warnings on its bus go to @warnings (newline-separated). */
static GstElement* paused_with_max_batch(guint mb, GString* warnings) {
    gchar* d = g_strdup_printf("videotestsrc num-buffers=1 ! mgllavafilter "
                               "model=%s max-batch=%u ! fakesink",
                               model_dir, mb);
    GstElement* pipe = gst_parse_launch(d, NULL);
    GstBus* bus = gst_element_get_bus(pipe);
    GstMessage* m;

    g_free(d);
    fail_unless(gst_element_set_state(pipe, GST_STATE_PAUSED) != GST_STATE_CHANGE_FAILURE);
    fail_unless(gst_element_get_state(pipe, NULL, NULL, 30 * GST_SECOND) == GST_STATE_CHANGE_SUCCESS);
    while ((m = gst_bus_pop_filtered(bus, GST_MESSAGE_WARNING))) {
        GError* e = NULL;
        gst_message_parse_warning(m, &e, NULL);
        g_string_append_printf(warnings, "%s\n", e->message);
        g_error_free(e);
        gst_message_unref(m);
    }
    gst_object_unref(bus);
    return pipe;
}

GST_START_TEST(test_max_batch) {
    GString* w = g_string_new(NULL);
    GstElement *loader, *same, *other;

    /* the element that loads the model sets the scheduler's max-batch ... */
    loader = paused_with_max_batch(2, w);
    fail_unless_equals_string(w->str, "");
    /* ... a later element with the same value shares it quietly ... */
    same = paused_with_max_batch(2, w);
    fail_unless_equals_string(w->str, "");
    /* ... and one with another value gets a warning naming both */
    other = paused_with_max_batch(3, w);
    fail_unless(strstr(w->str, "max-batch=3 is not used") != NULL, "%s", w->str);
    fail_unless(strstr(w->str, "max-batch=2 (2 slots)") != NULL, "%s", w->str);
    gst_element_set_state(other, GST_STATE_NULL);
    gst_element_set_state(same, GST_STATE_NULL);
    gst_element_set_state(loader, GST_STATE_NULL);
    gst_object_unref(other);
    gst_object_unref(same);
    gst_object_unref(loader);
    g_string_free(w, TRUE);
}

GST_END_TEST;

/* A stream that ends before any frame still ends on text_src (stream-start,
 * caps, segment, EOS): a muxer with a subtitle pad waits for data or EOS on
 * every pad. */
GST_START_TEST(test_text_eos_without_frames) {
    GstHarness* hh = make_harness("interval=1", 64, 48, "RGB");
    GstHarness* th = gst_harness_new_with_element(hh->element, NULL, "text_src");
    GstEvent* ev;
    gboolean caps = FALSE, eos = FALSE;

    fail_unless(gst_harness_push_event(hh, gst_event_new_eos()));
    while ((ev = gst_harness_try_pull_event(th))) {
        caps |= GST_EVENT_TYPE(ev) == GST_EVENT_CAPS;
        eos |= GST_EVENT_TYPE(ev) == GST_EVENT_EOS;
        gst_event_unref(ev);
    }
    fail_unless(caps && eos, "caps %d, eos %d", caps, eos);
    gst_harness_teardown(th);
    gst_harness_teardown(hh);
}

GST_END_TEST;

/* Waits up to @timeout for EOS or an error on @pipe's bus; returns the type
 * (0 on timeout). */
static GstMessageType wait_eos(GstElement* pipe, GstClockTime timeout, gchar** error) {
    GstBus* bus = gst_element_get_bus(pipe);
    GstMessage* m = gst_bus_timed_pop_filtered(bus, timeout, GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
    GstMessageType t = m ? GST_MESSAGE_TYPE(m) : 0;

    if (m && t == GST_MESSAGE_ERROR && error) {
        GError* e = NULL;
        gchar* dbg = NULL;
        gst_message_parse_error(m, &e, &dbg);
        *error = g_strdup_printf("%s (%s)", e->message, dbg ? dbg : "");
        g_error_free(e);
        g_free(dbg);
    }
    if (m) gst_message_unref(m);
    gst_object_unref(bus);
    return t;
}

/* appsink's next sample, NULL at EOS (or after 30 s) */
static GstSample* try_pull(GstElement* appsink) {
    GstSample* smp = NULL;

    g_signal_emit_by_name(appsink, "try-pull-sample", 30 * GST_SECOND, &smp);
    return smp;
}

/* Frames without timestamps, text_src linked to its own sink: each frame
 * that starts no caption sends a gap at the text stream's position, so that
 * sink prerolls (with no gap the video sink waited in preroll for the text
 * sink, which waited for data: the pipeline never reached PAUSED). */
GST_START_TEST(test_untimestamped_input) {
    static const gchar* const modes[] = {"latest", "auto", "exact"};
    guint k;

    for (k = 0; k < G_N_ELEMENTS(modes); k++) {
        gchar* d = g_strdup_printf("appsrc name=src format=time "
                                   "caps=video/x-raw,format=RGB,width=64,height=48,framerate=30/1 ! "
                                   "mgllavafilter name=f model=%s attach-mode=%s interval=2 "
                                   "max-new-tokens=2 ! fakesink name=vs f.text_src ! queue ! "
                                   "fakesink name=ts sync=true",
                                   model_dir, modes[k]);
        GstElement *pipe = gst_parse_launch(d, NULL), *src;
        GstStateChangeReturn ret;
        gchar* err = NULL;
        GstMessageType t;
        guint64 i;

        fail_unless(pipe != NULL);
        src = gst_bin_get_by_name(GST_BIN(pipe), "src");
        for (i = 0; i < 6; i++) {
            GstBuffer* b = make_frame(64, 48, i);
            GST_BUFFER_PTS(b) = GST_BUFFER_DTS(b) = GST_CLOCK_TIME_NONE;
            GST_BUFFER_DURATION(b) = GST_CLOCK_TIME_NONE;
            GstFlowReturn fr;
            g_signal_emit_by_name(src, "push-buffer", b, &fr);
            gst_buffer_unref(b);
            fail_unless_equals_int(fr, GST_FLOW_OK);
        }
        {
            GstFlowReturn fr;
            g_signal_emit_by_name(src, "end-of-stream", &fr);
        }
        gst_element_set_state(pipe, GST_STATE_PAUSED);
        ret = gst_element_get_state(pipe, NULL, NULL, 60 * GST_SECOND);
        fail_unless_equals_int(ret, GST_STATE_CHANGE_SUCCESS);
        gst_element_set_state(pipe, GST_STATE_PLAYING);
        t = wait_eos(pipe, 120 * GST_SECOND, &err);
        fail_unless(t == GST_MESSAGE_EOS, "attach-mode=%s: %s", modes[k], t ? err : "no EOS");
        /* the answers made it out on both pads */
        {
            GstElement* f = gst_bin_get_by_name(GST_BIN(pipe), "f");
            check_invariant(f);
            fail_unless(stat_of(f, "results") >= 1);
            gst_object_unref(f);
        }
        gst_element_set_state(pipe, GST_STATE_NULL);
        gst_object_unref(src);
        gst_object_unref(pipe);
        g_free(d);
    }
}

GST_END_TEST;

/* The subtitle pipeline of docs/elements.md with default queues: text_src as
 * matroskamux's subtitle track beside the video. The muxer writes a block
 * only once every pad has data (it orders them by time), and a caption lasts
 * the sampling period (30 frames): before the filter sent a gap for the
 * frames a caption covers, the muxer waited on the subtitle pad while the
 * video queue filled (10 MB: 11 raw 640x480 frames), the filter blocked
 * pushing video before the next caption, and the file stayed empty. */
GST_START_TEST(test_matroska_subtitles) {
    GstElement* mux = gst_element_factory_make("matroskamux", NULL);
    GstElement* enc = gst_element_factory_make("jpegenc", NULL);
    gchar *dir, *path, *d, *err = NULL;
    GstElement* pipe;
    GstMessageType t;
    gchar* bytes = NULL;
    gsize size = 0;

    if (!mux || !enc) {
        GST_WARNING("no matroskamux or jpegenc (gstreamer1.0-plugins-good): "
                    "skipped");
        if (mux) gst_object_unref(mux);
        if (enc) gst_object_unref(enc);
        return;
    }
    gst_object_unref(mux);
    gst_object_unref(enc);
    dir = g_dir_make_tmp("mgllava-mkv-XXXXXX", NULL);
    path = g_build_filename(dir, "captions.mkv", NULL);
    d = g_strdup_printf("videotestsrc num-buffers=90 ! "
                        "video/x-raw,format=RGB,width=640,height=480,framerate=30/1 ! "
                        "mgllavafilter name=f model=%s max-new-tokens=3 ! queue ! jpegenc ! "
                        "matroskamux name=mux ! filesink location=%s  f.text_src ! queue ! "
                        "mux.subtitle_%%u",
                        model_dir, path);
    pipe = gst_parse_launch(d, NULL);
    fail_unless(pipe != NULL);
    gst_element_set_state(pipe, GST_STATE_PLAYING);
    t = wait_eos(pipe, 240 * GST_SECOND, &err);
    gst_element_set_state(pipe, GST_STATE_NULL);
    fail_unless(t == GST_MESSAGE_EOS, "%s", t ? err : "no EOS: deadlocked");
    gst_object_unref(pipe);
    g_free(d);
    fail_unless(g_file_get_contents(path, &bytes, &size, NULL));
    fail_unless(size > 0, "an empty file");
    g_free(bytes);

    /* read back: three captions (frames 0, 30, 60), each lasting its 30 frames,
     * and every video frame */
    {
        GstElement *rd, *ts, *vs;
        GstSample* smp;
        guint n_text = 0, n_video = 0;

        d = g_strdup_printf("filesrc location=%s ! matroskademux name=d "
                            "d.subtitle_0 ! queue ! appsink name=ts sync=false "
                            "d.video_0 ! queue ! appsink name=vs sync=false",
                            path);
        rd = gst_parse_launch(d, NULL);
        fail_unless(rd != NULL);
        ts = gst_bin_get_by_name(GST_BIN(rd), "ts");
        vs = gst_bin_get_by_name(GST_BIN(rd), "vs");
        gst_element_set_state(rd, GST_STATE_PLAYING);
        while ((smp = try_pull(ts))) {
            GstBuffer* b = gst_sample_get_buffer(smp);

            fail_unless(gst_buffer_get_size(b) > 0);
            fail_unless_equals_uint64(GST_BUFFER_PTS(b), n_text * GST_SECOND);
            /* the file keeps milliseconds */
            fail_unless(GST_BUFFER_DURATION(b) >= GST_SECOND - 2 * GST_MSECOND, "caption %u lasts %" GST_TIME_FORMAT,
                        n_text, GST_TIME_ARGS(GST_BUFFER_DURATION(b)));
            n_text++;
            gst_sample_unref(smp);
        }
        while ((smp = try_pull(vs))) {
            n_video++;
            gst_sample_unref(smp);
        }
        fail_unless_equals_int(n_text, 3);
        fail_unless_equals_int(n_video, 90);
        gst_element_set_state(rd, GST_STATE_NULL);
        gst_object_unref(ts);
        gst_object_unref(vs);
        gst_object_unref(rd);
        g_free(d);
    }
    unlink(path);
    rmdir(dir);
    g_free(path);
    g_free(dir);
}

GST_END_TEST;

static Suite* filter_suite(void) {
    Suite* s = suite_create("mgllavafilter");
    TCase* tc = tcase_create("general");

    tcase_set_timeout(tc, 300);
    suite_add_tcase(s, tc);
    tcase_add_test(tc, test_properties);
    tcase_add_test(tc, test_exact_mode);
    tcase_add_test(tc, test_latest_mode);
    tcase_add_test(tc, test_drop_policies);
    tcase_add_test(tc, test_objects);
    tcase_add_test(tc, test_formats_and_caps_change);
    tcase_add_test(tc, test_flush);
    tcase_add_test(tc, test_auto_mode);
    tcase_add_test(tc, test_eos_delivers_every_answer);
    tcase_add_test(tc, test_interval_zero);
    tcase_add_test(tc, test_max_batch);
    tcase_add_test(tc, test_state_cycles);
    tcase_add_test(tc, test_text_pad);
    tcase_add_test(tc, test_latency_query);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_prompt_change_while_playing);
    tcase_add_test(tc, test_qos_skips_late_frames);
    tcase_add_test(tc, test_bad_frames);
    tcase_add_test(tc, test_interval_time_and_sampling);
    tcase_add_test(tc, test_text_eos_without_frames);
    tcase_add_test(tc, test_untimestamped_input);
    tcase_add_test(tc, test_matroska_subtitles);
    return s;
}

int main(int argc, char** argv) {
    int ret;

    gst_check_init(&argc, &argv);
    model_dir = g_build_filename(g_getenv("MGL_FIXTURES"), "models", "tiny-vicuna", NULL);
    ret = gst_check_run_suite(filter_suite(), "mgllavafilter", __FILE__);
    g_free(model_dir);
    return ret;
}
