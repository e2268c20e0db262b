/* Bounded, self-stopping stress runs of mgllavafilter (tests/stress/README):
 *
 *   stress soak MODEL FRAMES        frames through the filter with sampling: resident memory after
 *                                   warm-up must not grow by more than 2 MB; every sampled frame ends
 *                                   as exactly one result or one counted drop
 *   stress states MODEL CYCLES      NULL -> PLAYING -> NULL with a generation in flight
 *   stress seeks MODEL SEEKS        flushing seeks while a generation is in flight, in
 *                                   attach-mode=latest and auto: after every 10th seek and at
 *                                   the end, sampled = results + dropped + failed + aborted +
 *                                   pending (a request a flush aborts is counted)
 *   stress props MODEL SECONDS      prompt/interval changed from another thread during playback,
 *                                   caps change every 50 frames
 *   stress badinput MODEL           1 MB and invalid-UTF-8 prompts, 10000 ROI metas, a model swapped
 *                                   for garbage between runs: warnings or errors, never a crash
 *
 * Each prints one JSON line with its figures and exits 1 when a check fails. */
#include "../gst/gst-asan.h"
#include <gst/gst.h>
#include <gst/app/gstappsrc.h>
#include <gst/video/video.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Resident memory in use: malloc_trim first hands cached free pages back to
 * the kernel, so allocator caching (glibc raises its mmap threshold after the
 * first large frees) is not mistaken for growth; a leak still shows. */
static long rss_kb(void) {
    FILE* f;
    char line[256];
    long v = -1;

    malloc_trim(0);
    f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &v) == 1) break;
    if (f) fclose(f);
    return v;
}

static guint64 stat_u64(GstElement* f, const gchar* name) {
    GstStructure* s = NULL;
    guint64 v = 0;
    g_object_get(f, "stats", &s, NULL);
    gst_structure_get_uint64(s, name, &v);
    gst_structure_free(s);
    return v;
}

/* Run until EOS or error; returns FALSE on error. Counts warnings. */
static gboolean run_to_eos(GstElement* pipe, guint* warnings, gchar** error) {
    GstBus* bus = gst_element_get_bus(pipe);
    gboolean ok = TRUE, done = FALSE;

    while (!done) {
        GstMessage* m = gst_bus_timed_pop(bus, 300 * GST_SECOND);
        if (!m) {
            ok = FALSE;
            *error = g_strdup("timeout");
            break;
        }
        switch (GST_MESSAGE_TYPE(m)) {
        case GST_MESSAGE_EOS: done = TRUE; break;
        case GST_MESSAGE_ERROR: {
            GError* e = NULL;
            gst_message_parse_error(m, &e, NULL);
            if (error) *error = g_strdup(e->message);
            g_error_free(e);
            ok = FALSE;
            done = TRUE;
            break;
        }
        case GST_MESSAGE_WARNING:
            if (warnings) (*warnings)++;
            break;
        default: break;
        }
        gst_message_unref(m);
    }
    gst_object_unref(bus);
    return ok;
}

/* ---- soak -------------------------------------------------------------- */

static long rss_warm = -1, rss_max = 0;
static guint64 frames_seen = 0, warm_frames = 0;
/* RSS every 100 frames after the warm-up: a request holds a few MB of image
 * views from its submission to its answer, so single readings differ by
 * that much with what is in flight; the growth is the median of the last
 * five readings over the median of the first five, which a leak of even a
 * few kB per request moves and in-flight buffers do not */
static long rss_samples[1024];
static guint n_rss_samples = 0;

static GstPadProbeReturn soak_probe(GstPad* pad, GstPadProbeInfo* info, gpointer ud) {
    frames_seen++;
    if (frames_seen == warm_frames) rss_warm = rss_kb();
    if (frames_seen > warm_frames && frames_seen % 100 == 0) {
        long r = rss_kb();
        if (r > rss_max) rss_max = r;
        if (n_rss_samples < G_N_ELEMENTS(rss_samples)) rss_samples[n_rss_samples++] = r;
        if (g_getenv("MGL_STRESS_TRACE") && frames_seen % 1000 == 0)
            fprintf(stderr, "frame %" G_GUINT64_FORMAT ": rss %ld kB\n", frames_seen, r);
    }
    return GST_PAD_PROBE_OK;
}

static int cmp_long(const void* a, const void* b);

/* median of n readings starting at from */
static long rss_median(guint from, guint n) {
    long v[8];
    for (guint i = 0; i < n; i++) v[i] = rss_samples[from + i];
    qsort(v, n, sizeof(long), cmp_long);
    return v[n / 2];
}

static int soak(const gchar* model, guint frames) {
    gchar* d = g_strdup_printf(
        "videotestsrc num-buffers=%u pattern=ball ! "
        "video/x-raw,width=160,height=120 ! mgllavafilter name=f model=%s "
        "interval=10 max-new-tokens=4 max-pending=2 drop-policy=block ! mgllavajson location=/dev/null ! "
        "fakesink name=s",
        frames, model);
    GstElement *pipe = gst_parse_launch(d, NULL), *f, *s;
    GstPad* pad;
    gchar* err = NULL;
    gboolean ok;
    guint64 sampled, results, dropped, failed, aborted;

    g_free(d);
    f = gst_bin_get_by_name(GST_BIN(pipe), "f");
    s = gst_bin_get_by_name(GST_BIN(pipe), "s");
    pad = gst_element_get_static_pad(s, "sink");
    warm_frames = frames / 10;
    gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, soak_probe, NULL, NULL);
    gst_element_set_state(pipe, GST_STATE_PLAYING);
    ok = run_to_eos(pipe, NULL, &err);
    sampled = stat_u64(f, "sampled");
    results = stat_u64(f, "results");
    dropped = stat_u64(f, "dropped");
    failed = stat_u64(f, "failed");
    aborted = stat_u64(f, "aborted");
    printf("{\"test\": \"soak\", \"frames\": %u, \"sampled\": %" G_GUINT64_FORMAT ", \"results\": %" G_GUINT64_FORMAT
           ", \"dropped\": %" G_GUINT64_FORMAT ", \"failed\": %" G_GUINT64_FORMAT ", \"rss_after_warmup_kb\": %ld, "
           "\"rss_max_kb\": %ld, \"rss_growth_kb\": %ld}\n",
           frames, sampled, results, dropped, failed, rss_warm, rss_max, rss_max - rss_warm);
    gst_element_set_state(pipe, GST_STATE_NULL);
    gst_object_unref(pad);
    gst_object_unref(s);
    gst_object_unref(f);
    gst_object_unref(pipe);
    if (!ok) {
        fprintf(stderr, "soak: %s\n", err);
        return 1;
    }
    if (sampled != results + dropped + failed + aborted || failed != 0) return 1;
    if (n_rss_samples >= 10) {
        long growth = rss_median(n_rss_samples - 5, 5) - rss_median(0, 5);
        printf("{\"rss_median_growth_kb\": %ld}\n", growth);
        return growth > 2048 ? 1 : 0;
    }
    return rss_max - rss_warm > 2048 ? 1 : 0;
}

/* ---- state cycles and seeks -------------------------------------------- */

static int cmp_long(const void* a, const void* b) {
    long x = *(const long*)a, y = *(const long*)b;

    return (x > y) - (x < y);
}

static int states(const gchar* model, guint cycles) {
    gchar* d = g_strdup_printf("videotestsrc is-live=true ! "
                               "video/x-raw,width=96,height=64,framerate=30/1 ! mgllavafilter name=f model=%s "
                               "interval=1 max-new-tokens=8 ! fakesink",
                               model);
    GstElement* pipe = gst_parse_launch(d, NULL);
    guint c, stuck = 0;
    /* the median resident size over cycles 10-14 and over the last five: a
     * leak raises both cycle after cycle, while what the allocator happens to
     * hold at one reading (model buffers of ~10 MB freed and reused each cycle
     * make single readings jump by that much, either way) does not move a
     * median */
    long first[5], last[5], rss0 = -1, rss_end = -1, rss = -1;
    guint n_first = 0, n_last = 0;
    g_free(d);
    for (c = 0; c < cycles; c++) {
        GstStateChangeReturn r = gst_element_set_state(pipe, GST_STATE_PLAYING);
        if (r == GST_STATE_CHANGE_FAILURE) {
            fprintf(stderr, "cycle %u: cannot go to PLAYING\n", c);
            return 1;
        }
        g_usleep(g_random_int_range(5, 60) * 1000); /* a generation is in flight */
        if (gst_element_set_state(pipe, GST_STATE_NULL) != GST_STATE_CHANGE_SUCCESS) stuck++;
        /* measured (and trimmed) every cycle: cached free pages that a later
         * cycle would reuse are handed back each time instead of piling up
         * between two distant measurements */
        rss = rss_kb();
        if (c >= 10 && c < 15)
            first[n_first++] = rss;
        else if (c >= 15 && c + 5 >= cycles)
            last[n_last++] = rss;
        if (g_getenv("MGL_STRESS_TRACE")) fprintf(stderr, "cycle %u: rss %ld kB\n", c, rss);
    }
    if (n_first == 5 && n_last == 5) {
        qsort(first, 5, sizeof(long), cmp_long);
        qsort(last, 5, sizeof(long), cmp_long);
        rss0 = first[2];
        rss_end = last[2];
    }
    long growth = rss0 > 0 && rss_end > 0 ? rss_end - rss0 : 0;
    printf("{\"test\": \"states\", \"cycles\": %u, \"failed_to_stop\": %u, "
           "\"rss_growth_after_10_cycles_kb\": %ld}\n",
           cycles, stuck, growth);
    gst_object_unref(pipe);
    /* each cycle loads and frees the model: memory must not ratchet up.
     * Under AddressSanitizer freed memory sits in its quarantine (up to 256 MB)
     * and malloc_trim does not reach its allocator, so the resident size says
     * nothing about leaks there: LeakSanitizer checks them at exit instead */
#if defined(__SANITIZE_ADDRESS__)
    return stuck ? 1 : 0;
#else
    return stuck || growth > 8192 ? 1 : 0;
#endif
}

/* The stats invariant from one snapshot; prints the structure when it fails. */
static gboolean stats_balance(GstElement* f, const gchar* when) {
    GstStructure* s = NULL;
    guint64 sampled = 0, results = 0, dropped = 0, failed = 0, aborted = 0;
    guint pending = 0;
    gboolean ok;

    g_object_get(f, "stats", &s, NULL);
    ok = gst_structure_get(s, "sampled", G_TYPE_UINT64, &sampled, "results", G_TYPE_UINT64, &results, "dropped",
                           G_TYPE_UINT64, &dropped, "failed", G_TYPE_UINT64, &failed, "aborted", G_TYPE_UINT64,
                           &aborted, "pending", G_TYPE_UINT, &pending, NULL) &&
         sampled == results + dropped + failed + aborted + pending;
    if (!ok) {
        gchar* str = gst_structure_to_string(s);
        fprintf(stderr, "%s: stats do not balance: %s\n", when, str);
        g_free(str);
    }
    gst_structure_free(s);
    return ok;
}

static int seeks_in_mode(const gchar* model, guint n, const gchar* mode) {
    gchar* d = g_strdup_printf("videotestsrc ! video/x-raw,width=96,height=64,"
                               "framerate=30/1 ! mgllavafilter name=f model=%s interval=1 max-new-tokens=8 "
                               "max-pending=2 attach-mode=%s ! fakesink sync=false",
                               model, mode);
    GstElement *pipe = gst_parse_launch(d, NULL), *f;
    guint i, failed = 0, unbalanced = 0;
    GstBus* bus = gst_element_get_bus(pipe);
    GstMessage* m;

    g_free(d);
    f = gst_bin_get_by_name(GST_BIN(pipe), "f");
    gst_element_set_state(pipe, GST_STATE_PLAYING);
    gst_element_get_state(pipe, NULL, NULL, 10 * GST_SECOND);
    for (i = 0; i < n; i++) {
        g_usleep(g_random_int_range(2, 30) * 1000);
        if (!gst_element_seek_simple(pipe, GST_FORMAT_TIME, GST_SEEK_FLAG_FLUSH,
                                     (gint64)g_random_int_range(0, 100) * GST_SECOND))
            failed++;
        if ((m = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR))) {
            failed++;
            gst_message_unref(m);
        }
        if ((i + 1) % 10 == 0) {
            gchar* when = g_strdup_printf("%s, after seek %u", mode, i + 1);
            if (!stats_balance(f, when)) unbalanced++;
            g_free(when);
        }
    }
    {
        /* after the last seek, answers must come again */
        guint64 before = stat_u64(f, "results");
        gint waited = 0;
        while (stat_u64(f, "results") == before && waited++ < 100) g_usleep(50000);
        if (stat_u64(f, "results") == before) failed++;
    }
    if (!stats_balance(f, mode)) unbalanced++;
    printf("{\"test\": \"seeks\", \"attach_mode\": \"%s\", \"seeks\": %u, "
           "\"failed\": %u, \"unbalanced\": %u, \"sampled\": %" G_GUINT64_FORMAT ", \"results\": %" G_GUINT64_FORMAT
           ", \"dropped\": %" G_GUINT64_FORMAT ", \"aborted\": %" G_GUINT64_FORMAT "}\n",
           mode, n, failed, unbalanced, stat_u64(f, "sampled"), stat_u64(f, "results"), stat_u64(f, "dropped"),
           stat_u64(f, "aborted"));
    gst_element_set_state(pipe, GST_STATE_NULL);
    /* stopped: whatever was pending is aborted, and it still balances */
    if (!stats_balance(f, "stopped")) unbalanced++;
    gst_object_unref(bus);
    gst_object_unref(f);
    gst_object_unref(pipe);
    return failed || unbalanced ? 1 : 0;
}

static int seeks(const gchar* model, guint n) {
    int latest = seeks_in_mode(model, n, "latest");
    int autom = seeks_in_mode(model, n, "auto");
    return latest || autom;
}

/* ---- property changes from another thread, caps changes ----------------- */

static volatile gboolean props_stop;

static gpointer props_thread(gpointer data) {
    GstElement* f = data;
    guint i = 0;
    const gchar* prompts[] = {"Describe the image.", "How many objects?", "What colour is the ball?"};
    while (!props_stop) {
        g_object_set(f, "prompt", prompts[i % 3], "interval", 1 + i % 4, "max-new-tokens", 2 + i % 5, NULL);
        i++;
        g_usleep(3000);
    }
    return GUINT_TO_POINTER(i);
}

static guint caps_frame;

static GstPadProbeReturn caps_probe(GstPad* pad, GstPadProbeInfo* info, gpointer ud) {
    GstElement* capsf = ud;
    if (++caps_frame % 50 == 0) {
        gchar* c =
            g_strdup_printf("video/x-raw,width=%d,height=%d", caps_frame % 100 ? 96 : 128, caps_frame % 100 ? 64 : 72);
        GstCaps* caps = gst_caps_from_string(c);
        g_object_set(capsf, "caps", caps, NULL);
        gst_caps_unref(caps);
        g_free(c);
    }
    return GST_PAD_PROBE_OK;
}

static int props(const gchar* model, guint frames) {
    gchar* d = g_strdup_printf("videotestsrc num-buffers=%u ! videoscale ! "
                               "capsfilter name=c caps=video/x-raw,width=96,height=64 ! mgllavafilter name=f "
                               "model=%s ! mgllavajson location=/dev/null ! fakesink",
                               frames, model);
    GstElement *pipe = gst_parse_launch(d, NULL), *f, *c;
    GstPad* pad;
    GThread* t;
    gchar* err = NULL;
    gboolean ok;
    guint changes;

    g_free(d);
    f = gst_bin_get_by_name(GST_BIN(pipe), "f");
    c = gst_bin_get_by_name(GST_BIN(pipe), "c");
    pad = gst_element_get_static_pad(c, "sink");
    gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, caps_probe, c, NULL);
    props_stop = FALSE;
    t = g_thread_new("props", props_thread, f);
    gst_element_set_state(pipe, GST_STATE_PLAYING);
    ok = run_to_eos(pipe, NULL, &err);
    props_stop = TRUE;
    changes = GPOINTER_TO_UINT(g_thread_join(t));
    printf("{\"test\": \"props\", \"frames\": %u, \"property_changes\": %u, "
           "\"caps_changes\": %u, \"sampled\": %" G_GUINT64_FORMAT ", \"results\": %" G_GUINT64_FORMAT
           ", \"ok\": %s}\n",
           frames, changes, caps_frame / 50, stat_u64(f, "sampled"), stat_u64(f, "results"), ok ? "true" : "false");
    if (!ok) fprintf(stderr, "props: %s\n", err);
    if (!stats_balance(f, "props")) ok = FALSE;
    gst_element_set_state(pipe, GST_STATE_NULL);
    gst_object_unref(pad);
    gst_object_unref(c);
    gst_object_unref(f);
    gst_object_unref(pipe);
    return ok ? 0 : 1;
}

/* ---- bad input --------------------------------------------------------- */

static GstPadProbeReturn roi_probe(GstPad* pad, GstPadProbeInfo* info, gpointer ud) {
    GstBuffer* b = gst_buffer_make_writable(GST_PAD_PROBE_INFO_BUFFER(info));
    guint i;
    for (i = 0; i < 10000; i++)
        gst_buffer_add_video_region_of_interest_meta(b, i % 2 ? "a" : "b", (i * 7) % 90, (i * 13) % 60, 1 + i % 30,
                                                     1 + i % 20);
    GST_PAD_PROBE_INFO_DATA(info) = b;
    return GST_PAD_PROBE_OK;
}

static int run_prompt(const gchar* model, const gchar* prompt, guint* warnings, guint64* results, gboolean rois) {
    gchar* d = g_strdup_printf("videotestsrc num-buffers=6 ! video/x-raw,"
                               "width=96,height=64 ! identity name=i ! mgllavafilter name=f model=%s "
                               "interval=2 attach-mode=exact max-new-tokens=2 ! fakesink",
                               model);
    GstElement *pipe = gst_parse_launch(d, NULL), *f, *id;
    gchar* err = NULL;
    gboolean ok;

    g_free(d);
    f = gst_bin_get_by_name(GST_BIN(pipe), "f");
    id = gst_bin_get_by_name(GST_BIN(pipe), "i");
    if (prompt) g_object_set(f, "prompt", prompt, NULL);
    if (rois) {
        GstPad* pad = gst_element_get_static_pad(id, "src");
        gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, roi_probe, NULL, NULL);
        gst_object_unref(pad);
    }
    gst_element_set_state(pipe, GST_STATE_PLAYING);
    ok = run_to_eos(pipe, warnings, &err);
    *results = stat_u64(f, "results");
    if (!ok) fprintf(stderr, "pipeline error: %s\n", err);
    g_free(err);
    gst_element_set_state(pipe, GST_STATE_NULL);
    gst_object_unref(f);
    gst_object_unref(id);
    gst_object_unref(pipe);
    return ok;
}

static int badinput(const gchar* model) {
    GString* big = g_string_new(NULL);
    guint w_big = 0, w_utf = 0, w_roi = 0;
    guint64 r_big = 0, r_utf = 0, r_roi = 0;
    int fails = 0;
    gchar *tmp, *copy, *cmd;
    GstElement* pipe;
    GstBus* bus;
    GstMessage* m;
    GError* e = NULL;

    while (big->len < 1024 * 1024) g_string_append(big, "describe the red ball in detail ");
    /* a 1 MB prompt exceeds the context: each request fails with a warning, frames flow */
    if (!run_prompt(model, big->str, &w_big, &r_big, FALSE) || w_big == 0) fails++;
    if (!run_prompt(model, "caf\xc3\x28 \xff\xfe", &w_utf, &r_utf, FALSE) || w_utf == 0) fails++;
    if (!run_prompt(model, NULL, &w_roi, &r_roi, TRUE) || r_roi != 3) fails++;
    g_string_free(big, TRUE);

    /* a model folder swapped for garbage between runs: the next start fails clearly */
    tmp = g_dir_make_tmp("mgl-stress-XXXXXX", NULL);
    {
        /* the tiny models share ../components: copy their parent folder */
        gchar *parent = g_path_get_dirname(model), *base = g_path_get_basename(model);
        copy = g_build_filename(tmp, base, NULL);
        cmd = g_strdup_printf("cp -r '%s'/. '%s' && head -c 4096 /dev/urandom > '%s'/iter_10.pth", parent, tmp, copy);
        g_free(parent);
        g_free(base);
    }
    if (system(cmd) != 0) fails++;
    g_free(cmd);
    cmd = g_strdup_printf("videotestsrc num-buffers=3 ! mgllavafilter model=%s ! "
                          "fakesink",
                          copy);
    pipe = gst_parse_launch(cmd, NULL);
    gst_element_set_state(pipe, GST_STATE_PLAYING);
    bus = gst_element_get_bus(pipe);
    m = gst_bus_timed_pop_filtered(bus, 30 * GST_SECOND, GST_MESSAGE_ERROR);
    if (!m)
        fails++;
    else {
        gst_message_parse_error(m, &e, NULL);
        if (!strstr(e->message, "iter_10.pth")) fails++;
        printf("{\"test\": \"badinput\", \"garbage_model_error\": \"%s\"}\n", e->message);
        g_error_free(e);
        gst_message_unref(m);
    }
    gst_element_set_state(pipe, GST_STATE_NULL);
    gst_object_unref(bus);
    gst_object_unref(pipe);
    g_free(cmd);
    cmd = g_strdup_printf("rm -rf '%s'", tmp);
    if (system(cmd) != 0) fails++;
    g_free(cmd);
    g_free(copy);
    g_free(tmp);
    printf("{\"test\": \"badinput\", \"prompt_1MB_warnings\": %u, "
           "\"prompt_1MB_results\": %" G_GUINT64_FORMAT ", \"bad_utf8_warnings\": %u, "
           "\"rois_10000_results\": %" G_GUINT64_FORMAT ", \"failures\": %d}\n",
           w_big, r_big, w_utf, r_roi, fails);
    return fails ? 1 : 0;
}

int main(int argc, char** argv) {
    /* One malloc arena for every thread, set before any thread starts: the
     * element starts threads each cycle (the model load, the worker), and
     * glibc gives new threads arenas of their own whose kept pages move the
     * resident size by 8-10 MB either way from one run to the next (measured
     * on states: growth from -5 to +15 MB with arenas per thread, 20-60 kB
     * with one). The memory checks are about leaks, not about the allocator. */
    mallopt(M_ARENA_MAX, 1);
    gst_init(&argc, &argv);
    if (argc < 3) {
        fprintf(stderr, "usage: stress soak|states|seeks|props|badinput MODEL [N]\n");
        return 2;
    }
    guint n = argc > 3 ? (guint)atoi(argv[3]) : 0;
    if (!strcmp(argv[1], "soak")) return soak(argv[2], n ? n : 2000);
    if (!strcmp(argv[1], "states")) return states(argv[2], n ? n : 20);
    if (!strcmp(argv[1], "seeks")) return seeks(argv[2], n ? n : 20);
    if (!strcmp(argv[1], "props")) return props(argv[2], n ? n : 300);
    if (!strcmp(argv[1], "badinput")) return badinput(argv[2]);
    fprintf(stderr, "unknown test %s\n", argv[1]);
    return 2;
}
