/* mgllavafilter's triggers and per-object questions on mgllavascenesrc,
 * whose scenes are known: mgllavascenesrc ! mgllavablobdetect (track ids) !
 * mgllavafilter attach-mode=exact interval=0 trigger=... ! fakesink, a pad
 * probe on the sink reading the result metas and the ROI metas' params.
 *
 *   new_track        trigger=new-track: sampled exactly at the frames where the
 *                    truth's object set changes (each new scene), at no other;
 *                    the stats count them as new-track samples
 *   count            trigger=count: exactly where the truth's object count changes
 *   label            trigger=label trigger-labels=red: exactly at the scenes
 *                    that bring a red object
 *   cooldown         trigger=new-track with a cooldown of 1.5 scenes: every
 *                    other scene start, the others counted as cooled
 *   with_interval    interval=25 and trigger=new-track together: the union,
 *                    each reason counted
 *   per_object       object-mode=new-track (the demo model): one answer per
 *                    track, on the ROI meta with that track id (read here
 *                    from its mgllava-answer param), in the result meta with
 *                    the same id and box, the shape right against the truth;
 *                    in JSON under the object with that id
 *   per_object_latest  attach-mode=latest: an answer is on the ROI with its
 *                    track id in the frame that carries it, or that object is
 *                    not in that frame
 *
 * Usage: test_triggers TINY_MODEL_DIR DEMO_MODEL_DIR (per_object* skip
 * without the demo model). */
#include "gst-asan.h"
#include <gst/check/gstcheck.h>
#include <gst/video/video.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "gstmgllavameta.h"
#include "mgl-scenes.h"

#define SEED 4242
#define COUNT_SEED 2 /* scene counts 4 6 3 3 4 4 1 1: equal neighbours */
#define SF 10        /* scene-frames */
#define N_FRAMES 80
#define W 640
#define H 480

static gchar* tiny_model;
static gchar* demo_model;
static guint seed = SEED;
static const gchar* src_props = "";  /* more mgllavascenesrc properties */
static const gchar* caps_extra = ""; /* more fields of its caps (",framerate=...") */
static const gchar* source = NULL;   /* another source and detector than the scenes' */

/* ---- the truth --------------------------------------------------------- */

static void scene_of_frame(guint n, MglScene* s) { mgl_scene_make(s, W, H, seed, (gint)(n / SF), 1, 6); }

/* whether the objects (colour, shape, digit, cell) of two scenes differ */
static gboolean sets_differ(const MglScene* a, const MglScene* b) {
    gint i;

    if (a->n != b->n) return TRUE;
    for (i = 0; i < a->n; i++) {
        const MglSceneObject *x = &a->obj[i], *y = &b->obj[i];
        if (x->color != y->color || x->shape != y->shape || x->digit != y->digit || x->cell_x0 != y->cell_x0 ||
            x->cell_y0 != y->cell_y0)
            return TRUE;
    }
    return FALSE;
}

static gboolean has_colour(const MglScene* s, const gchar* colour) {
    gint i;

    for (i = 0; i < s->n; i++)
        if (g_str_equal(mgl_scene_color_name(s->obj[i].color), colour)) return TRUE;
    return FALSE;
}

/* ---- running a pipeline ------------------------------------------------ */

typedef struct {
    gboolean sampled[N_FRAMES]; /* a frame answer about this frame was seen */
    guint n_frame_answers;
    guint frames;
    /* per-object */
    guint n_object_results;         /* result metas with an object id */
    guint n_on_roi;                 /* ... whose answer param is on that ROI of the frame */
    guint n_not_on_frame;           /* ... whose object is not on the carrying frame */
    guint n_param_mismatch;         /* a param on a ROI whose id differs from its object_id */
    guint n_params;                 /* mgllava-answer params seen */
    guint n_shape_right;            /* exact mode: answer == the truth shape of that object */
    GHashTable* answered_tracks;    /* id -> count */
    gint first_roi_frame;           /* the first frame with a ROI meta, + 1 (0: none yet) */
    guint n_chained, n_chain_wrong; /* "digit" questions built from the ROI's "shape" answer */
} Seen;

static gdouble iou(const int* a, gint x, gint y, gint w, gint h) {
    gdouble ix = MIN(a[2], x + w) - MAX(a[0], x), iy = MIN(a[3], y + h) - MAX(a[1], y), inter;

    if (ix <= 0 || iy <= 0) return 0;
    inter = ix * iy;
    return inter / ((a[2] - a[0]) * (gdouble)(a[3] - a[1]) + (gdouble)w * h - inter);
}

static gint roi_track(GstVideoRegionOfInterestMeta* roi) {
    GstStructure* p = gst_video_region_of_interest_meta_get_param(roi, "object_id");
    gint id = 0;

    if (p && gst_structure_get_int(p, "id", &id) && id != 0) return id;
    return roi->id;
}

/* the truth shape of the object at box (x, y, w, h) of frame @n */
static const gchar* truth_shape(guint64 n, gint x, gint y, gint w, gint h) {
    MglScene s;
    guint8* scratch = g_malloc((gsize)W * H * 3);
    const gchar* shape = NULL;
    gint i;

    scene_of_frame((guint)n, &s);
    mgl_scene_render(&s, (gint)(n % SF), scratch, W * 3, 3, FALSE);
    g_free(scratch);
    for (i = 0; i < s.n; i++)
        if (iou(s.obj[i].box, x, y, w, h) >= 0.5) shape = mgl_scene_shape_name(s.obj[i].shape);
    return shape;
}

static GstPadProbeReturn probe(GstPad* pad, GstPadProbeInfo* info, gpointer data) {
    Seen* seen = data;
    GstBuffer* buf = GST_PAD_PROBE_INFO_BUFFER(info);
    GstMgllavaResultMeta* m;
    GstMeta* meta;
    gpointer state = NULL;

    seen->frames++;
    if (!seen->first_roi_frame && gst_buffer_get_meta(buf, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))
        seen->first_roi_frame = (gint)seen->frames;
    /* the answers on the ROI metas, read from their params */
    while ((meta = gst_buffer_iterate_meta_filtered(buf, &state, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))) {
        GstVideoRegionOfInterestMeta* roi = (GstVideoRegionOfInterestMeta*)meta;
        GList* l;

        for (l = roi->params; l; l = l->next) {
            GstStructure* p = l->data;
            const gchar* attr = gst_structure_get_string(p, "attribute_name");
            gint oid = 0;

            if (!gst_structure_has_name(p, "mgllava-answer")) continue;
            seen->n_params++;
            fail_unless(gst_structure_get_string(p, "label") && gst_structure_get_string(p, "model_name") && attr &&
                        gst_structure_get_string(p, "text"));
            if (!gst_structure_get_int(p, "object_id", &oid) || oid != roi_track(roi)) seen->n_param_mismatch++;
            if (g_str_equal(attr, "digit")) {
                /* a second filter's question, its {shape} the first filter's answer on this ROI */
                GstStructure* shape_p = gst_video_region_of_interest_meta_get_param(roi, "mgllava-answer");
                gchar* want = g_strdup_printf("What digit is on the %s %s?", g_quark_to_string(roi->roi_type),
                                              gst_structure_get_string(shape_p, "label"));
                fail_unless_equals_string(gst_structure_get_string(shape_p, "attribute_name"), "shape");
                if (g_str_equal(gst_structure_get_string(p, "prompt"), want))
                    seen->n_chained++;
                else
                    seen->n_chain_wrong++;
                g_free(want);
            } else {
                fail_unless_equals_string(attr, "shape");
            }
        }
    }
    state = NULL;
    while ((m = gst_buffer_iterate_mgllava_result_meta(buf, &state))) {
        if (m->object_id == 0) {
            fail_unless(m->source_frame < N_FRAMES);
            fail_if(seen->sampled[m->source_frame], "frame %" G_GUINT64_FORMAT " answered twice", m->source_frame);
            seen->sampled[m->source_frame] = TRUE;
            seen->n_frame_answers++;
        } else {
            gpointer st2 = NULL;
            gboolean on_frame = FALSE, on_roi = FALSE;
            const gchar* shape;

            seen->n_object_results++;
            g_hash_table_insert(
                seen->answered_tracks, GINT_TO_POINTER(m->object_id),
                GINT_TO_POINTER(
                    GPOINTER_TO_INT(g_hash_table_lookup(seen->answered_tracks, GINT_TO_POINTER(m->object_id))) + 1));
            while ((meta = gst_buffer_iterate_meta_filtered(buf, &st2, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))) {
                GstVideoRegionOfInterestMeta* roi = (GstVideoRegionOfInterestMeta*)meta;
                GList* l;

                if (roi_track(roi) != m->object_id) continue;
                on_frame = TRUE;
                for (l = roi->params; l; l = l->next) {
                    GstStructure* p = l->data;
                    guint64 sf = G_MAXUINT64;

                    if (gst_structure_has_name(p, "mgllava-answer") &&
                        g_str_equal(gst_structure_get_string(p, "text"), m->text) &&
                        gst_structure_get_uint64(p, "source_frame", &sf) && sf == m->source_frame)
                        on_roi = TRUE;
                }
            }
            if (on_roi) seen->n_on_roi++;
            if (!on_frame) seen->n_not_on_frame++;
            shape = truth_shape(m->source_frame, m->object_x, m->object_y, m->object_w, m->object_h);
            if (shape && g_str_equal(shape, m->text)) seen->n_shape_right++;
        }
    }
    return GST_PAD_PROBE_OK;
}

/* Runs @props on the filter to EOS; returns the filter's stats. */
static GstStructure* run(const gchar* model, const gchar* props, const gchar* tail, Seen* seen) {
    gchar* src = source ? g_strdup(source)
                        : g_strdup_printf("mgllavascenesrc seed=%d scene-frames=%d num-buffers=%d %s ! "
                                          "video/x-raw,width=%d,height=%d%s ! mgllavablobdetect",
                                          seed, SF, N_FRAMES, src_props, W, H, caps_extra);
    gchar* desc = g_strdup_printf("%s ! mgllavafilter name=f model=%s max-new-tokens=4 %s ! %s fakesink name=sink", src,
                                  model, props, tail ? tail : "");
    GError* err = NULL;
    GstElement* p = gst_parse_launch(desc, &err);
    GstElement *sink, *f;
    GstPad* pad;
    GstBus* bus;
    GstMessage* msg;
    GstStructure* stats = NULL;

    fail_unless(p != NULL && err == NULL, "%s: %s", desc, err ? err->message : "");
    seen->answered_tracks = g_hash_table_new(NULL, NULL);
    sink = gst_bin_get_by_name(GST_BIN(p), "sink");
    pad = gst_element_get_static_pad(sink, "sink");
    gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, probe, seen, NULL);
    gst_object_unref(pad);
    gst_object_unref(sink);
    bus = gst_element_get_bus(p);
    fail_unless(gst_element_set_state(p, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
    msg = gst_bus_timed_pop_filtered(bus, 300 * GST_SECOND, GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
    fail_unless(msg != NULL && GST_MESSAGE_TYPE(msg) == GST_MESSAGE_EOS, "no EOS: %s", desc);
    gst_message_unref(msg);
    f = gst_bin_get_by_name(GST_BIN(p), "f");
    g_object_get(f, "stats", &stats, NULL);
    gst_object_unref(f);
    gst_element_set_state(p, GST_STATE_NULL);
    gst_object_unref(bus);
    gst_object_unref(p);
    g_free(desc);
    g_free(src);
    fail_unless_equals_int(seen->frames, N_FRAMES);
    return stats;
}

static guint64 stat_of(const GstStructure* s, const gchar* name) {
    guint64 v = G_MAXUINT64;

    fail_unless(gst_structure_get_uint64(s, name, &v), "no %s in stats", name);
    return v;
}

/* sampled = results + dropped + failed + aborted + pending, and every frame answered */
static void check_balance(const GstStructure* s) {
    guint pending = 1;

    fail_unless(gst_structure_get_uint(s, "pending", &pending));
    fail_unless_equals_int(pending, 0);
    fail_unless_equals_uint64(stat_of(s, "sampled"), stat_of(s, "results") + stat_of(s, "dropped") +
                                                         stat_of(s, "failed") + stat_of(s, "aborted"));
    fail_unless_equals_uint64(stat_of(s, "failed") + stat_of(s, "dropped") + stat_of(s, "aborted"), 0);
}

/* the expected frames against what was sampled */
static void check_frames(const Seen* seen, const gboolean* expected, const gchar* what) {
    guint n, k = 0;

    for (n = 0; n < N_FRAMES; n++) {
        fail_unless(seen->sampled[n] == expected[n], "%s: frame %u %s", what, n,
                    expected[n] ? "not sampled, the truth changed" : "sampled, the truth did not change");
        k += expected[n];
    }
    fail_unless_equals_int(seen->n_frame_answers, k);
    g_print("%s: %u frames sampled, as the truth says\n", what, k);
}

GST_START_TEST(test_new_track) {
    Seen seen = {0};
    gboolean expected[N_FRAMES] = {0};
    MglScene prev = {0}, cur;
    GstStructure* s;
    guint n, k = 0;

    for (n = 0; n < N_FRAMES; n++) {
        scene_of_frame(n, &cur);
        expected[n] = n == 0 ? cur.n > 0 : sets_differ(&prev, &cur);
        k += expected[n];
        prev = cur;
    }
    fail_unless_equals_int(k, N_FRAMES / SF); /* every scene differs from the one before */
    s = run(tiny_model, "attach-mode=exact interval=0 trigger=new-track", NULL, &seen);
    check_frames(&seen, expected, "new-track");
    check_balance(s);
    fail_unless_equals_uint64(stat_of(s, "sampled"), k);
    fail_unless_equals_uint64(stat_of(s, "sampled-new-track"), k);
    fail_unless_equals_uint64(stat_of(s, "sampled-interval"), 0);
    fail_unless_equals_uint64(stat_of(s, "sampled-count"), 0);
    gst_structure_free(s);
    g_hash_table_unref(seen.answered_tracks);
}

GST_END_TEST;

GST_START_TEST(test_count) {
    Seen seen = {0};
    gboolean expected[N_FRAMES] = {0};
    MglScene cur;
    GstStructure* s;
    gint last = 0;
    guint n, k = 0;

    seed = COUNT_SEED;
    for (n = 0; n < N_FRAMES; n++) {
        scene_of_frame(n, &cur);
        expected[n] = cur.n != last;
        last = cur.n;
        k += expected[n];
    }
    /* the seed has scenes of equal counts in a row: the trigger must skip them */
    fail_unless(k > 1 && k < N_FRAMES / SF, "the seed does not test the count trigger (%u)", k);
    s = run(tiny_model, "attach-mode=exact interval=0 trigger=count", NULL, &seen);
    check_frames(&seen, expected, "count");
    check_balance(s);
    fail_unless_equals_uint64(stat_of(s, "sampled-count"), k);
    fail_unless_equals_uint64(stat_of(s, "sampled"), k);
    gst_structure_free(s);
    seed = SEED;
    g_hash_table_unref(seen.answered_tracks);
}

GST_END_TEST;

GST_START_TEST(test_label) {
    Seen seen = {0};
    gboolean expected[N_FRAMES] = {0};
    MglScene cur;
    GstStructure* s;
    guint n, k = 0;

    for (n = 0; n < N_FRAMES; n += SF) {
        scene_of_frame(n, &cur);
        expected[n] = has_colour(&cur, "red");
        k += expected[n];
    }
    fail_unless(k > 0 && k < N_FRAMES / SF, "the seed does not test the label trigger (%u)", k);
    s = run(tiny_model, "attach-mode=exact interval=0 trigger=label trigger-labels=\"purple, red\"", NULL, &seen);
    /* purple too: expected again with either colour */
    for (n = 0; n < N_FRAMES; n += SF) {
        scene_of_frame(n, &cur);
        expected[n] = has_colour(&cur, "red") || has_colour(&cur, "purple");
    }
    check_frames(&seen, expected, "label");
    check_balance(s);
    fail_unless_equals_uint64(stat_of(s, "sampled-label"), seen.n_frame_answers);
    gst_structure_free(s);
    g_hash_table_unref(seen.answered_tracks);
}

GST_END_TEST;

GST_START_TEST(test_cooldown) {
    Seen seen = {0};
    gboolean expected[N_FRAMES] = {0};
    GstStructure* s;
    gchar* props;
    guint n;

    /* 1.5 scenes at 30 fps: the scene starts 0, 20, 40, 60 fire, 10, 30, 50, 70 are cooled */
    props = g_strdup_printf("attach-mode=exact interval=0 trigger=new-track trigger-cooldown=%" G_GUINT64_FORMAT,
                            (guint64)(GST_SECOND * SF * 3 / 2 / 30));
    for (n = 0; n < N_FRAMES; n += 2 * SF) expected[n] = TRUE;
    s = run(tiny_model, props, NULL, &seen);
    check_frames(&seen, expected, "cooldown");
    check_balance(s);
    fail_unless_equals_uint64(stat_of(s, "trigger-cooldown-skipped"), N_FRAMES / SF / 2);
    gst_structure_free(s);
    g_free(props);
    g_hash_table_unref(seen.answered_tracks);
}

GST_END_TEST;

GST_START_TEST(test_with_interval) {
    Seen seen = {0};
    gboolean expected[N_FRAMES] = {0};
    GstStructure* s;
    guint n, k = 0, by_interval = 0;

    for (n = 0; n < N_FRAMES; n++) {
        expected[n] = n % SF == 0 || n % 25 == 0;
        k += expected[n];
        by_interval += n % 25 == 0;
    }
    s = run(tiny_model, "attach-mode=exact interval=25 trigger=new-track", NULL, &seen);
    check_frames(&seen, expected, "interval+new-track");
    check_balance(s);
    fail_unless_equals_uint64(stat_of(s, "sampled"), k);
    fail_unless_equals_uint64(stat_of(s, "sampled-interval"), by_interval);
    fail_unless_equals_uint64(stat_of(s, "sampled-new-track"), N_FRAMES / SF);
    gst_structure_free(s);
    g_hash_table_unref(seen.answered_tracks);
}

GST_END_TEST;

/* ---- per-object -------------------------------------------------------- */

#define OBJ_PROPS                                                                                                      \
    "interval=0 object-mode=new-track object-attribute=shape object-prompt=\"What shape is the {label} object?\""

static guint n_truth_objects(void) {
    MglScene s;
    guint n, k = 0;

    for (n = 0; n < N_FRAMES; n += SF) {
        scene_of_frame(n, &s);
        k += (guint)s.n;
    }
    return k;
}

/* the JSON lines: every answer under objects[] belongs to the object with
 * the id of a results[] entry about it */
static void check_json(const gchar* path, guint expected_answers) {
    gchar* text = NULL;
    gchar** lines;
    guint i, n_answers = 0;

    fail_unless(g_file_get_contents(path, &text, NULL, NULL));
    lines = g_strsplit(text, "\n", -1);
    for (i = 0; lines[i] && *lines[i]; i++) {
        JsonParser* jp = json_parser_new();
        JsonObject* o;
        JsonArray *objects, *results;
        guint j, r;

        fail_unless(json_parser_load_from_data(jp, lines[i], -1, NULL));
        o = json_node_get_object(json_parser_get_root(jp));
        objects = json_object_get_array_member(o, "objects");
        results = json_object_get_array_member(o, "results");
        for (j = 0; j < json_array_get_length(objects); j++) {
            JsonObject* ob = json_array_get_object_element(objects, j);
            JsonArray* ans;
            gint64 id;

            if (!json_object_has_member(ob, "answers")) continue;
            fail_unless(json_object_has_member(ob, "id"));
            id = json_object_get_int_member(ob, "id");
            ans = json_object_get_array_member(ob, "answers");
            fail_unless_equals_int(json_array_get_length(ans), 1);
            n_answers++;
            /* the same answer in results[], naming this object */
            for (r = 0; r < json_array_get_length(results); r++) {
                JsonObject* res = json_array_get_object_element(results, r);
                JsonObject* obj =
                    json_object_has_member(res, "object") ? json_object_get_object_member(res, "object") : NULL;

                if (obj && json_object_get_int_member(obj, "id") == id) {
                    fail_unless_equals_string(
                        json_object_get_string_member(res, "text"),
                        json_object_get_string_member(json_array_get_object_element(ans, 0), "text"));
                    fail_unless_equals_string(json_object_get_string_member(obj, "label"),
                                              json_object_get_string_member(ob, "label"));
                    break;
                }
            }
            fail_unless(r < json_array_get_length(results),
                        "line %u: the answer of object %" G_GINT64_FORMAT " has no result naming it", i, id);
        }
        g_object_unref(jp);
    }
    fail_unless_equals_int(n_answers, expected_answers);
    g_strfreev(lines);
    g_free(text);
}

/* format=dlstreamer: each answer as a classification result of its object
 * ("shape": {"label", "model"}), no full-frame answer object */
static void check_dlstreamer_json(const gchar* path, guint expected_answers) {
    gchar* text = NULL;
    gchar** lines;
    guint i, n = 0;

    fail_unless(g_file_get_contents(path, &text, NULL, NULL));
    lines = g_strsplit(text, "\n", -1);
    for (i = 0; lines[i] && *lines[i]; i++) {
        JsonParser* jp = json_parser_new();
        JsonObject* o;
        JsonArray* objects;
        guint j;

        fail_unless(json_parser_load_from_data(jp, lines[i], -1, NULL));
        o = json_node_get_object(json_parser_get_root(jp));
        objects = json_object_has_member(o, "objects") ? json_object_get_array_member(o, "objects") : NULL;
        for (j = 0; objects && j < json_array_get_length(objects); j++) {
            JsonObject* ob = json_array_get_object_element(objects, j);

            fail_if(json_object_has_member(ob, "mgllava"), "line %u: a full-frame answer object", i);
            if (!json_object_has_member(ob, "shape")) continue;
            fail_unless(json_object_has_member(ob, "id"));
            fail_unless(json_object_has_member(json_object_get_object_member(ob, "shape"), "label"));
            n++;
        }
        g_object_unref(jp);
    }
    fail_unless_equals_int(n, expected_answers);
    g_strfreev(lines);
    g_free(text);
}

GST_START_TEST(test_per_object) {
    Seen seen = {0};
    GstStructure* s;
    gchar* dir = g_dir_make_tmp("mgltrig-XXXXXX", NULL);
    gchar* json = g_build_filename(dir, "out.jsonl", NULL);
    gchar* dls = g_build_filename(dir, "dls.jsonl", NULL);
    gchar* tail = g_strdup_printf("mgllavajson location=%s ! mgllavajson format=dlstreamer location=%s !", json, dls);
    guint n_truth = n_truth_objects();
    GHashTableIter it;
    gpointer k, v;

    s = run(demo_model, "attach-mode=exact " OBJ_PROPS, tail, &seen);
    g_print("per-object: %u answers for %u objects, %u on their ROI, shape right %u\n", seen.n_object_results, n_truth,
            seen.n_on_roi, seen.n_shape_right);
    /* one question per track, each scene's objects new tracks */
    fail_unless_equals_int(seen.n_object_results, n_truth);
    fail_unless_equals_int(g_hash_table_size(seen.answered_tracks), n_truth);
    g_hash_table_iter_init(&it, seen.answered_tracks);
    while (g_hash_table_iter_next(&it, &k, &v)) fail_unless_equals_int(GPOINTER_TO_INT(v), 1);
    /* exact mode: every answer on its own object's ROI of its own frame */
    fail_unless_equals_int(seen.n_on_roi, n_truth);
    fail_unless_equals_int(seen.n_params, n_truth);
    fail_unless_equals_int(seen.n_param_mismatch, 0);
    /* the demo model answers shapes right (docs/demo-model.md); 0.9 is a floor */
    fail_unless(seen.n_shape_right * 10 >= n_truth * 9, "shape right on %u of %u", seen.n_shape_right, n_truth);
    check_balance(s);
    fail_unless_equals_uint64(stat_of(s, "sampled"), N_FRAMES / SF);
    fail_unless_equals_uint64(stat_of(s, "sampled-objects"), N_FRAMES / SF);
    fail_unless_equals_uint64(stat_of(s, "object-questions"), n_truth);
    fail_unless_equals_uint64(stat_of(s, "object-answers"), n_truth);
    {
        gint largest = 0;

        /* a frame's objects decode together (one batch sharing the frame) */
        fail_unless(gst_structure_get_int(s, "largest-batch", &largest));
        g_print("per-object: largest batch %d\n", largest);
        fail_unless(largest >= 2);
    }
    check_json(json, n_truth);
    check_dlstreamer_json(dls, n_truth);
    gst_structure_free(s);
    g_hash_table_unref(seen.answered_tracks);
    g_unlink(json);
    g_unlink(dls);
    g_free(dls);
    g_rmdir(dir);
    g_free(json);
    g_free(dir);
    g_free(tail);
}

GST_END_TEST;

GST_START_TEST(test_per_object_latest) {
    Seen seen = {0};
    GstStructure* s;
    MglScene a, b;
    guint n_truth;

    /* a live source with two scenes of 40 frames at 8 frames/s (5 s each, so
     * that a slow build, e.g. under a sanitizer, still answers while the
     * objects are there): answers come some frames later, most while their
     * objects are still there */
    mgl_scene_make(&a, W, H, seed, 0, 1, 6);
    mgl_scene_make(&b, W, H, seed, 1, 1, 6);
    n_truth = (guint)(a.n + b.n);
    src_props = "is-live=true scene-frames=40";
    caps_extra = ",framerate=8/1";
    s = run(demo_model, "attach-mode=latest drop-policy=block max-pending=4 " OBJ_PROPS, "", &seen);
    src_props = "";
    caps_extra = "";
    g_print("per-object latest: %u answers, %u on their object's ROI, %u whose object had gone\n",
            seen.n_object_results, seen.n_on_roi, seen.n_not_on_frame);
    /* every answer arrives (on a frame or in the late-results event) */
    fail_unless_equals_uint64(stat_of(s, "object-answers"), n_truth);
    fail_unless(seen.n_object_results <= n_truth);
    /* each answer carried by a frame: on the ROI with its id, or that object is gone */
    fail_unless_equals_int(seen.n_on_roi + seen.n_not_on_frame, seen.n_object_results);
    fail_unless(seen.n_on_roi > 0, "no answer reached its object");
    fail_unless_equals_int(seen.n_param_mismatch, 0);
    fail_unless_equals_int(seen.n_params, seen.n_on_roi);
    check_balance(s);
    gst_structure_free(s);
    g_hash_table_unref(seen.answered_tracks);
}

GST_END_TEST;

/* object-mode=interval every 4.5 frames: each track is asked at its first
 * frame and again 5 frames later (the scene lasts 10): two questions per
 * object, two sampled frames per scene (the tiny model: answers are noise) */
GST_START_TEST(test_per_object_interval) {
    Seen seen = {0};
    GstStructure* s;
    guint n_truth = n_truth_objects(), n;

    s = run(tiny_model,
            "attach-mode=exact interval=0 object-mode=interval object-interval=150000000 object-attribute=shape", NULL,
            &seen);
    for (n = 0; n < N_FRAMES; n++) fail_unless(seen.sampled[n] == FALSE); /* no frame answers, only objects */
    fail_unless_equals_int(seen.n_object_results, 2 * n_truth);
    fail_unless_equals_int(seen.n_on_roi, 2 * n_truth);
    fail_unless_equals_uint64(stat_of(s, "sampled"), 2 * N_FRAMES / SF);
    fail_unless_equals_uint64(stat_of(s, "object-questions"), 2 * n_truth);
    check_balance(s);
    gst_structure_free(s);
    g_hash_table_unref(seen.answered_tracks);
}

GST_END_TEST;

/* two filters in a row: the second's object-prompt names the first's answer
 * on the same ROI ({shape}: its param with attribute_name "shape") */
GST_START_TEST(test_per_object_chain) {
    Seen seen = {0};
    GstStructure* s;
    guint n_truth = n_truth_objects();
    gchar* tail = g_strdup_printf("mgllavafilter model=%s max-new-tokens=4 attach-mode=exact interval=0 "
                                  "object-mode=new-track object-attribute=digit "
                                  "object-prompt=\"What digit is on the {label} {shape}?\" !",
                                  tiny_model);

    s = run(tiny_model, "attach-mode=exact " OBJ_PROPS, tail, &seen);
    g_print("chain: %u digit questions built from the shape answers, %u not\n", seen.n_chained, seen.n_chain_wrong);
    fail_unless_equals_int(seen.n_chained, n_truth);
    fail_unless_equals_int(seen.n_chain_wrong, 0);
    fail_unless_equals_int(seen.n_params, 2 * n_truth);
    gst_structure_free(s);
    g_hash_table_unref(seen.answered_tracks);
    g_free(tail);
}

GST_END_TEST;

/* cvtracker's ROI metas carry no track id: the filter gives one (from 2^30
 * + 1) with its own IoU tracker and writes it onto each frame's meta, so the
 * ball is one track: one new-track sample, one per-object answer on it */
GST_START_TEST(test_cvtracker_input) {
    Seen seen = {0};
    GstStructure* s;
    gchar* src = g_strdup_printf("videotestsrc pattern=ball num-buffers=%d ! "
                                 "video/x-raw,format=RGB,width=320,height=240,framerate=30/1 ! "
                                 "cvtracker object-initial-x=140 object-initial-y=100 object-initial-width=40 "
                                 "object-initial-height=40",
                                 N_FRAMES);

    if (!gst_registry_check_feature_version(gst_registry_get(), "cvtracker", 1, 0, 0)) {
        g_print("cvtracker not installed (gstreamer1.0-opencv): skipped\n");
        g_free(src);
        return;
    }
    source = src;
    s = run(tiny_model, "attach-mode=exact interval=0 trigger=new-track", NULL, &seen);
    fail_unless_equals_uint64(stat_of(s, "sampled"), 1);
    fail_unless(seen.first_roi_frame > 0 && seen.sampled[seen.first_roi_frame - 1],
                "the first frame with the ball (%d) is not the one sampled", seen.first_roi_frame - 1);
    gst_structure_free(s);
    g_hash_table_unref(seen.answered_tracks);

    memset(&seen, 0, sizeof seen);
    s = run(tiny_model, "attach-mode=exact " OBJ_PROPS, NULL, &seen);
    g_print("cvtracker: %u per-object answer(s), %u on the ball's ROI meta\n", seen.n_object_results, seen.n_on_roi);
    fail_unless_equals_int(seen.n_object_results, 1);
    fail_unless_equals_int(seen.n_on_roi, 1);
    fail_unless_equals_int(seen.n_param_mismatch, 0);
    {
        gpointer* ids = g_hash_table_get_keys_as_array(seen.answered_tracks, NULL);

        fail_unless(GPOINTER_TO_INT(ids[0]) > (1 << 30)); /* the filter's own id */
        g_free(ids);
    }
    gst_structure_free(s);
    g_hash_table_unref(seen.answered_tracks);
    source = NULL;
    g_free(src);
}

GST_END_TEST;

static Suite* triggers_suite(gboolean have_demo) {
    Suite* s = suite_create("triggers");
    TCase* tc = tcase_create("general");

    suite_add_tcase(s, tc);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_new_track);
    tcase_add_test(tc, test_count);
    tcase_add_test(tc, test_label);
    tcase_add_test(tc, test_cooldown);
    tcase_add_test(tc, test_with_interval);
    tcase_add_test(tc, test_cvtracker_input);
    tcase_add_test(tc, test_per_object_interval);
    tcase_add_test(tc, test_per_object_chain);
    if (have_demo) {
        tcase_add_test(tc, test_per_object);
        tcase_add_test(tc, test_per_object_latest);
    }
    return s;
}

static gboolean have_model(const gchar* dir) {
    gchar* manifest = g_build_filename(dir, "mgllava.json", NULL);
    gboolean ok = g_file_test(manifest, G_FILE_TEST_IS_REGULAR);

    g_free(manifest);
    return ok;
}

int main(int argc, char** argv) {
    gboolean have_demo;
    int ret;

    gst_check_init(&argc, &argv);
    tiny_model = g_strdup(argc > 1 ? argv[1] : "tests/fixtures/models/tiny-vicuna");
    demo_model = g_strdup(argc > 2 ? argv[2] : "models/mgllava-demo");
    if (!have_model(tiny_model)) {
        g_print("SKIP: no model at %s\n", tiny_model);
        return 77;
    }
    have_demo = have_model(demo_model);
    if (!have_demo) g_print("no demo model at %s: the per-object tests are skipped\n", demo_model);
    ret = gst_check_run_suite(triggers_suite(have_demo), "triggers", __FILE__);
    g_free(tiny_model);
    g_free(demo_model);
    return ret;
}
