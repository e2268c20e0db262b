/* Many streams, one model: four mgllavascenesrc streams (different seeds)
 * through four mgllavafilter elements sharing the demo model's scheduler, in
 * exact mode.
 *
 *   batched_equals_alone  the four in one pipeline: every answer equals the
 *                         answer for that frame when its stream runs alone
 *                         (one stream samples with a seed), the requests were
 *                         batched, and each element's stats balance
 *   stop_one_stream       four pipelines in one process: stopping one mid-run
 *                         leaves the other three's answers unchanged
 *   flush_one_stream      the same with a flushing seek on one of them
 *
 * Usage: test_streams MODEL_DIR (the demo model; skipped without it). */
#include "gst-asan.h"
#include <gst/check/gstcheck.h>

#include "gstmgllavameta.h"

#define N_STREAMS 4
#define FRAMES 20
#define INTERVAL 5 /* and scene-frames: every sample a new scene */
#define N_ANSWERS (FRAMES / INTERVAL)

static gchar* model_dir;
static const guint seeds[N_STREAMS] = {11, 12, 13, 14};

/* one stream's settings: the last one samples (seeded) instead of greedy */
static const gchar* const gen[N_STREAMS] = {"", "prompt=\"How many objects are there?\"", "",
                                            "temperature=0.8 top-k=20 seed=5"};

typedef struct {
    gchar* text[FRAMES];
    guint n;
} Answers;

static void answers_clear(Answers* a) {
    guint i;
    for (i = 0; i < FRAMES; i++) g_clear_pointer(&a->text[i], g_free);
    a->n = 0;
}

static GstElement* launch(const gchar* desc) {
    GError* e = NULL;
    GstElement* p = gst_parse_launch(desc, &e);

    fail_unless(p != NULL && e == NULL, "%s: %s", desc, e ? e->message : "");
    fail_unless(GST_IS_PIPELINE(p));
    return p;
}

/* "mgllavascenesrc ! mgllavafilter name=fI ! fakesink" for stream @i */
static gchar* branch(guint i, const gchar* src) {
    return g_strdup_printf("%s num-buffers=%d ! mgllavafilter name=f%u model=%s "
                           "attach-mode=exact interval=%d %s ! fakesink",
                           src ? src : "mgllavascenesrc", FRAMES, i, model_dir, INTERVAL, gen[i]);
}

static gchar* scene_src(guint i) {
    return g_strdup_printf("mgllavascenesrc seed=%u scene-frames=%d", seeds[i], INTERVAL);
}

static GstElement* pipeline_for(guint i) {
    gchar *src = scene_src(i), *d = branch(i, src);
    GstElement* p = launch(d);

    g_free(src);
    g_free(d);
    return p;
}

/* Records an mgllava-result message in @a (indexed by the stream the
 * element's name fI gives; streams below @lenient_below are only counted:
 * the disturbed one); TRUE at EOS, fails on an error. */
static gboolean handle(GstMessage* m, Answers* a, guint lenient_below) {
    switch (GST_MESSAGE_TYPE(m)) {
    case GST_MESSAGE_EOS: return TRUE;
    case GST_MESSAGE_ERROR: {
        GError* e = NULL;
        gst_message_parse_error(m, &e, NULL);
        fail("pipeline error: %s", e->message);
        g_error_free(e);
        return TRUE;
    }
    case GST_MESSAGE_ELEMENT: {
        const GstStructure* s = gst_message_get_structure(m);
        const gchar* name = GST_OBJECT_NAME(GST_MESSAGE_SRC(m));
        GstMgllavaResultMeta r;
        guint i;

        if (!gst_mgllava_result_meta_from_structure(s, &r)) return FALSE;
        fail_unless(name[0] == 'f');
        i = atoi(name + 1);
        fail_unless(i < N_STREAMS);
        if (i < lenient_below) {
            a[i].n++;
            return FALSE;
        }
        fail_unless(r.source_frame < FRAMES);
        fail_unless(a[i].text[r.source_frame] == NULL, "two answers for frame %" G_GUINT64_FORMAT, r.source_frame);
        a[i].text[r.source_frame] = g_strdup(r.text);
        a[i].n++;
        return FALSE;
    }
    default: return FALSE;
    }
}

/* Runs @pipe to EOS, its answers into @a. */
static void run_to_eos(GstElement* pipe, Answers* a) {
    GstBus* bus = gst_element_get_bus(pipe);
    gboolean eos = FALSE;

    fail_unless(gst_element_set_state(pipe, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
    while (!eos) {
        GstMessage* m = gst_bus_timed_pop(bus, 120 * GST_SECOND);
        fail_unless(m != NULL, "timeout");
        eos = handle(m, a, 0);
        gst_message_unref(m);
    }
    gst_object_unref(bus);
}

static void stats_of(GstElement* f, guint64* sampled, guint64* results, guint64* balance, gint* batch) {
    GstStructure* s = NULL;
    guint64 dropped, failed, aborted;
    guint pending;

    g_object_get(f, "stats", &s, NULL);
    fail_unless(gst_structure_get(s, "sampled", G_TYPE_UINT64, sampled, "results", G_TYPE_UINT64, results, "dropped",
                                  G_TYPE_UINT64, &dropped, "failed", G_TYPE_UINT64, &failed, "aborted", G_TYPE_UINT64,
                                  &aborted, "pending", G_TYPE_UINT, &pending, "largest-batch", G_TYPE_INT, batch,
                                  NULL));
    /* 0 when sampled = results + dropped + failed + aborted + pending */
    *balance = *sampled - (*results + dropped + failed + aborted + pending);
    GST_INFO("%s: %" GST_PTR_FORMAT, GST_OBJECT_NAME(f), s);
    gst_structure_free(s);
}

static void check_balance(GstElement* pipe, guint i) {
    gchar* name = g_strdup_printf("f%u", i);
    GstElement* f = gst_bin_get_by_name(GST_BIN(pipe), name);
    guint64 sampled, results, balance;
    gint batch;

    stats_of(f, &sampled, &results, &balance, &batch);
    fail_unless_equals_uint64(balance, 0);
    gst_object_unref(f);
    g_free(name);
}

static guint pending_of(GstElement* f) {
    GstStructure* s = NULL;
    guint pending = 0;

    g_object_get(f, "stats", &s, NULL);
    gst_structure_get_uint(s, "pending", &pending);
    gst_structure_free(s);
    return pending;
}

/* Each stream alone (one pipeline at a time): the answers to compare with. */
static Answers reference[N_STREAMS];

static void ensure_reference(void) {
    guint i;

    if (reference[0].n) return;
    for (i = 0; i < N_STREAMS; i++) {
        GstElement* p = pipeline_for(i);
        run_to_eos(p, reference);
        gst_element_set_state(p, GST_STATE_NULL);
        gst_object_unref(p);
        fail_unless_equals_int(reference[i].n, N_ANSWERS);
    }
}

static void expect_reference(Answers* a, guint i) {
    guint k;

    fail_unless_equals_int(a[i].n, N_ANSWERS);
    for (k = 0; k < FRAMES; k += INTERVAL) {
        fail_unless(a[i].text[k] != NULL, "stream %u: no answer for frame %u", i, k);
        fail_unless_equals_string(a[i].text[k], reference[i].text[k]);
    }
}

GST_START_TEST(test_batched_equals_alone) {
    GString* d = g_string_new(NULL);
    Answers got[N_STREAMS] = {{{0}}};
    GstElement* pipe;
    gint largest = 0;
    guint i;

    ensure_reference();
    for (i = 0; i < N_STREAMS; i++) {
        gchar *src = scene_src(i), *b = branch(i, src);
        g_string_append_printf(d, "%s ", b);
        g_free(src);
        g_free(b);
    }
    pipe = launch(d->str);
    run_to_eos(pipe, got);
    for (i = 0; i < N_STREAMS; i++) {
        gchar* name = g_strdup_printf("f%u", i);
        GstElement* f = gst_bin_get_by_name(GST_BIN(pipe), name);
        guint64 sampled, results, balance;
        gint batch;

        expect_reference(got, i);
        stats_of(f, &sampled, &results, &balance, &batch);
        fail_unless_equals_uint64(sampled, N_ANSWERS);
        fail_unless_equals_uint64(results, N_ANSWERS);
        fail_unless_equals_uint64(balance, 0);
        largest = MAX(largest, batch);
        gst_object_unref(f);
        g_free(name);
    }
    /* the four streams' requests ran together */
    fail_unless(largest >= 2, "largest batch %d", largest);
    gst_element_set_state(pipe, GST_STATE_NULL);
    gst_object_unref(pipe);
    for (i = 0; i < N_STREAMS; i++) answers_clear(&got[i]);
    g_string_free(d, TRUE);
}

GST_END_TEST;

/* Four pipelines in one process (one model, one scheduler); once stream 0
 * has an answer, @disturb stops or flushes it; the other three run to EOS
 * and must answer as they do alone. */
static void disturb_one(gboolean stop) {
    GstElement *pipes[N_STREAMS], *f0;
    GstBus* buses[N_STREAMS];
    Answers got[N_STREAMS] = {{{0}}};
    gboolean eos[N_STREAMS] = {FALSE}, disturbed = FALSE;
    guint i, running = N_STREAMS - 1;
    gint64 end = g_get_monotonic_time() + 120 * G_USEC_PER_SEC;

    ensure_reference();
    for (i = 0; i < N_STREAMS; i++) {
        if (i == 0 && !stop) {
            /* a seekable source for the stream that is flushed */
            gchar* d = branch(0, "videotestsrc is-live=false");
            pipes[0] = launch(d);
            g_free(d);
        } else {
            pipes[i] = pipeline_for(i);
        }
        buses[i] = gst_element_get_bus(pipes[i]);
    }
    f0 = gst_bin_get_by_name(GST_BIN(pipes[0]), "f0");
    for (i = 0; i < N_STREAMS; i++)
        fail_unless(gst_element_set_state(pipes[i], GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);

    while (running > 0) {
        fail_unless(g_get_monotonic_time() < end, "timeout");
        for (i = 0; i < N_STREAMS; i++) {
            GstMessage* m;
            while (!eos[i] && (m = gst_bus_pop(buses[i]))) {
                if (handle(m, got, 1) && i > 0) {
                    eos[i] = TRUE;
                    running--;
                }
                gst_message_unref(m);
            }
        }
        if (!disturbed && got[0].n >= 1 && pending_of(f0) > 0) {
            /* stream 0 answered once and has a request at the model again */
            if (stop) {
                fail_unless(gst_element_set_state(pipes[0], GST_STATE_NULL) == GST_STATE_CHANGE_SUCCESS);
            } else {
                fail_unless(gst_element_seek_simple(pipes[0], GST_FORMAT_TIME, GST_SEEK_FLAG_FLUSH, 0));
            }
            disturbed = TRUE;
        }
        g_usleep(2000);
    }
    fail_unless(disturbed);
    for (i = 1; i < N_STREAMS; i++) {
        expect_reference(got, i);
        check_balance(pipes[i], i);
    }
    {
        guint64 sampled, results, balance;
        gint batch;
        stats_of(f0, &sampled, &results, &balance, &batch);
        fail_unless_equals_uint64(balance, 0);
    }
    for (i = 0; i < N_STREAMS; i++) {
        gst_element_set_state(pipes[i], GST_STATE_NULL);
        gst_object_unref(buses[i]);
        gst_object_unref(pipes[i]);
        answers_clear(&got[i]);
    }
    /* stopped, the element still balances (what was pending is aborted) */
    {
        guint64 sampled, results, balance;
        gint batch;
        stats_of(f0, &sampled, &results, &balance, &batch);
        fail_unless_equals_uint64(balance, 0);
    }
    gst_object_unref(f0);
}

GST_START_TEST(test_stop_one_stream) { disturb_one(TRUE); }

GST_END_TEST;

GST_START_TEST(test_flush_one_stream) { disturb_one(FALSE); }

GST_END_TEST;

static Suite* streams_suite(void) {
    Suite* s = suite_create("streams");
    TCase* tc = tcase_create("general");

    tcase_set_timeout(tc, 300);
    suite_add_tcase(s, tc);
    tcase_add_test(tc, test_batched_equals_alone);
    tcase_add_test(tc, test_stop_one_stream);
    tcase_add_test(tc, test_flush_one_stream);
    return s;
}

int main(int argc, char** argv) {
    gchar* manifest;
    int ret;
    guint i;

    gst_check_init(&argc, &argv);
    model_dir = g_strdup(argc > 1 ? argv[1] : "models/mgllava-demo");
    manifest = g_build_filename(model_dir, "mgllava.json", NULL);
    if (!g_file_test(manifest, G_FILE_TEST_IS_REGULAR)) {
        g_print("SKIP: no demo model at %s\n", model_dir);
        g_free(manifest);
        return 77;
    }
    g_free(manifest);
    /* one process: the alone-run answers are computed once for all tests */
    g_setenv("CK_FORK", "no", FALSE);
    ret = gst_check_run_suite(streams_suite(), "streams", __FILE__);
    for (i = 0; i < N_STREAMS; i++) answers_clear(&reference[i]);
    g_free(model_dir);
    return ret;
}
