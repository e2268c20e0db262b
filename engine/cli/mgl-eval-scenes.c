/* mgl-eval-scenes.c: `mgllava eval-scenes`, the accuracy of a model on the
 * synthetic scenes (engine/scenes).
 *
 * Scene i of the seed is rendered exactly as `mgllava scenes` renders it (same
 * frame of its motion, 640x480, same PNG bytes with --dump). The model sees
 * the truth boxes (one per object, label = colour name, score 1.0) and answers
 * the caption prompt and every question of the truth "qa" list, greedily,
 * through the public API. An answer is right when it equals the truth after
 * trimming whitespace (Python's str.strip() set), dropping one trailing "."
 * and lower-casing.
 *
 * Categories (the "category" of a dumped item and a key of the summary):
 *   caption   "Describe the image."          counting  "How many ..."
 *   color     "What colour ..."              shape     "What shape ..."
 *   position  "Where is ..."                 digit     "What digit ..." (truth flags "digit": true)
 *   other     any other question (none today; the key appears only when used)
 * "questions" totals every category but caption and digit.
 *
 * --per-object: mgllavafilter's object-mode on the same scenes. Each object
 * is asked about alone: the model gets that object's truth box only (its
 * object tokens), and one question per attribute from a template:
 *   object_color  --object-color-prompt  (default "What colour is the {shape}?")
 *   object_shape  --object-shape-prompt  (default "What shape is the {label} object?")
 *   object_digit  --object-digit-prompt  (default "What digit is on the {label} {shape}?"),
 *                 asked of the objects that carry a digit
 * {label} is the box label (the colour name, as mgllavablobdetect labels),
 * {position} the object's place in the caption's words, {shape} the truth
 * shape (not known to the element: an evaluation-only placeholder). */
#include "mgl-eval-scenes.h"
#include "mgl-cli.h"
#include "mgl-json.h"
#include "mgl-scenes.h"

#include <glib.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CAPTION_PROMPT "Describe the image."

enum { CAT_CAPTION, CAT_COUNTING, CAT_COLOR, CAT_SHAPE, CAT_POSITION, CAT_DIGIT, CAT_OTHER, CAT_N };
static const char* const k_cat_name[CAT_N] = {"caption", "counting", "color", "shape", "position", "digit", "other"};

typedef struct {
    long n, correct;
} Tally;

enum {
    E_MODEL,
    E_COUNT,
    E_SEED,
    E_MINOBJ,
    E_MAXOBJ,
    E_HIGHRES,
    E_OBJECTS,
    E_DEVICE,
    E_THREADS,
    E_DUMP,
    E_MAXQ,
    E_MAXNEW,
    E_VERBOSE,
    E_ORDER,
    E_PRECISION,
    E_PER_OBJECT,
    E_OCOLOR,
    E_OSHAPE,
    E_ODIGIT,
    E_N
};

enum { OBJ_COLOR, OBJ_SHAPE, OBJ_DIGIT, OBJ_N };
static const char* const k_obj_name[OBJ_N] = {"object_color", "object_shape", "object_digit"};
static const char* const k_obj_default[OBJ_N] = {"What colour is the {shape}?", "What shape is the {label} object?",
                                                 "What digit is on the {label} {shape}?"};

static bool ev_bool(const char* s, bool* out) {
    if (!s) return false;
    if (!strcmp(s, "true") || !strcmp(s, "1") || !strcmp(s, "yes"))
        *out = true;
    else if (!strcmp(s, "false") || !strcmp(s, "0") || !strcmp(s, "no"))
        *out = false;
    else
        return false;
    return true;
}

/* trim, drop one trailing ".", trim again, lower-case; g_free() the result */
static char* normalize(const char* s) {
    if (!s || !g_utf8_validate(s, -1, NULL)) return g_ascii_strdown(g_strstrip(g_strdup(s ? s : "")), -1);
    char* t = g_strdup(s);
    mgl_text_strip(t);
    size_t n = strlen(t);
    if (n && t[n - 1] == '.') t[n - 1] = 0;
    mgl_text_strip(t);
    char* low = g_utf8_strdown(t, -1);
    g_free(t);
    return low;
}

static int categorize(const char* q, bool digit) {
    if (digit || g_str_has_prefix(q, "What digit")) return CAT_DIGIT;
    if (g_str_has_prefix(q, "How many")) return CAT_COUNTING;
    if (g_str_has_prefix(q, "What colour") || g_str_has_prefix(q, "What color")) return CAT_COLOR;
    if (g_str_has_prefix(q, "What shape")) return CAT_SHAPE;
    if (g_str_has_prefix(q, "Where is")) return CAT_POSITION;
    return CAT_OTHER;
}

static void append_tally(GString* j, const char* key, const Tally* t) {
    g_string_append_printf(j, ", \"%s\": {\"n\": %ld, \"correct\": %ld, \"accuracy\": ", key, t->n, t->correct);
    if (t->n)
        g_string_append_printf(j, "%.6f}", (double)t->correct / (double)t->n);
    else
        g_string_append(j, "null}");
}

/* One scene's truth, parsed from mgl_scene_truth_json (the training contract). */
typedef struct {
    JsonParser* parser;
    const char* caption;
    JsonArray* qa;
    MglBox boxes[MGL_SCENE_MAX_OBJECTS];
    size_t n_boxes;
    /* per object, for --per-object */
    const char* color[MGL_SCENE_MAX_OBJECTS];
    const char* shape[MGL_SCENE_MAX_OBJECTS];
    const char* position[MGL_SCENE_MAX_OBJECTS];
    int digit[MGL_SCENE_MAX_OBJECTS]; /* -1: none */
} Truth;

static MglStatus truth_parse(const char* json, Truth* t, MglErr* err) {
    JsonObject* root = NULL;
    GError* ge = NULL;
    memset(t, 0, sizeof *t);
    if (!mgl_json_parse_object("scene truth", json, strlen(json), &t->parser, &root, &ge) ||
        !mgl_json_req_str(root, "caption", &t->caption, "scene truth", &ge))
        return cli_err_json(err, ge);
    JsonNode* qa = json_object_get_member(root, "qa");
    JsonNode* ob = json_object_get_member(root, "objects");
    if (!qa || !JSON_NODE_HOLDS_ARRAY(qa) || !ob || !JSON_NODE_HOLDS_ARRAY(ob))
        return cli_err(err, MGL_E_FORMAT, "scene truth: \"qa\" and \"objects\" must be lists");
    t->qa = json_node_get_array(qa);
    JsonArray* oa = json_node_get_array(ob);
    for (guint i = 0; i < json_array_get_length(oa) && i < MGL_SCENE_MAX_OBJECTS; i++) {
        JsonNode* on = json_array_get_element(oa, i);
        JsonObject* o = JSON_NODE_HOLDS_OBJECT(on) ? json_node_get_object(on) : NULL;
        JsonNode* bn = o ? json_object_get_member(o, "box") : NULL;
        JsonArray* b = bn && JSON_NODE_HOLDS_ARRAY(bn) ? json_node_get_array(bn) : NULL;
        const char* label = NULL;
        if (!b || json_array_get_length(b) != 4)
            return cli_err(err, MGL_E_FORMAT, "scene truth: object %u has no box", i);
        if (!mgl_json_req_str(o, "label", &label, "scene truth object", &ge)) return cli_err_json(err, ge);
        JsonNode* dn = json_object_get_member(o, "digit");
        t->color[t->n_boxes] = json_object_get_string_member_with_default(o, "color", "");
        t->shape[t->n_boxes] = json_object_get_string_member_with_default(o, "shape", "");
        t->position[t->n_boxes] = json_object_get_string_member_with_default(o, "position", "");
        t->digit[t->n_boxes] = dn && JSON_NODE_HOLDS_VALUE(dn) ? (int)json_node_get_int(dn) : -1;
        MglBox* x = &t->boxes[t->n_boxes++];
        x->x1 = (float)json_array_get_int_element(b, 0);
        x->y1 = (float)json_array_get_int_element(b, 1);
        x->x2 = (float)json_array_get_int_element(b, 2);
        x->y2 = (float)json_array_get_int_element(b, 3);
        x->score = 1.0f;
        x->label = label;
    }
    return MGL_OK;
}

static void truth_clear(Truth* t) {
    if (t->parser) g_object_unref(t->parser);
    memset(t, 0, sizeof *t);
}

/* The end of a dumped item: question, truth, answer, category, verdict. */
static void append_item_tail(GString* line, const char* q, const char* want, const char* answer, const char* cat,
                             bool correct) {
    g_string_append(line, "], \"question\": ");
    mgl_json_append_string(line, q);
    g_string_append(line, ", \"truth\": ");
    mgl_json_append_string(line, want);
    g_string_append(line, ", \"answer\": ");
    mgl_json_append_string(line, answer);
    g_string_append_printf(line, ", \"category\": \"%s\", \"correct\": %s}\n", cat, correct ? "true" : "false");
}

/* @tmpl with {label}, {shape} and {position} of object @b; g_free() */
static char* object_prompt(const char* tmpl, const Truth* t, size_t b) {
    GString* s = g_string_new(NULL);
    for (const char* p = tmpl; *p;) {
        if (g_str_has_prefix(p, "{label}")) {
            g_string_append(s, t->boxes[b].label);
            p += 7;
        } else if (g_str_has_prefix(p, "{shape}")) {
            g_string_append(s, t->shape[b]);
            p += 7;
        } else if (g_str_has_prefix(p, "{position}")) {
            g_string_append(s, t->position[b]);
            p += 10;
        } else {
            g_string_append_c(s, *p++);
        }
    }
    return g_string_free(s, FALSE);
}

/* --per-object: each object alone (its box the only one), one question per
 * attribute; tallies into @tally, items into @items. */
static MglStatus eval_objects(MglCtx* c, const MglImage* img, const Truth* truth, const MglGenParams* gp,
                              const char* const* tmpl, Tally* tally, FILE* items, GString* line, const char* image_name,
                              long scene, int frame, long* asked, long* right, MglErr* err) {
    for (size_t b = 0; b < truth->n_boxes; b++) {
        for (int k = 0; k < OBJ_N; k++) {
            char digit[8];
            const char* want = k == OBJ_COLOR ? truth->color[b] : k == OBJ_SHAPE ? truth->shape[b] : digit;
            if (k == OBJ_DIGIT) {
                if (truth->digit[b] < 0) continue;
                snprintf(digit, sizeof digit, "%d", truth->digit[b]);
            }
            char* q = object_prompt(tmpl[k], truth, b);
            char* answer = NULL;
            if (mgl_generate(c, img, &truth->boxes[b], 1, q, gp, &answer, NULL, NULL, NULL, err) != MGL_OK) {
                cli_err_prefix(err, image_name);
                g_free(q);
                return err->code;
            }
            char *na = normalize(answer), *nt = normalize(want);
            bool correct = strcmp(na, nt) == 0;
            g_free(na);
            g_free(nt);
            tally[k].n++;
            tally[k].correct += correct;
            (*asked)++;
            *right += correct;
            if (items) {
                const MglBox* x = &truth->boxes[b];
                g_string_assign(line, "{\"image\": ");
                mgl_json_append_string(line, image_name);
                g_string_append_printf(
                    line,
                    ", \"scene\": %ld, \"frame\": %d, \"object\": %zu, \"boxes\": [[%g, %g, %g, %g]], \"labels\": [",
                    scene, frame, b, x->x1, x->y1, x->x2, x->y2);
                mgl_json_append_string(line, x->label);
                append_item_tail(line, q, want, answer, k_obj_name[k], correct);
                fputs(line->str, items);
            }
            free(answer);
            g_free(q);
        }
    }
    return MGL_OK;
}

int mgl_cmd_eval_scenes(int argc, char** argv) {
    CliOpt o[E_N] = {{"--model", true},
                     {"--count", true},
                     {"--seed", true},
                     {"--min-objects", true},
                     {"--max-objects", true},
                     {"--use-high-res", true},
                     {"--use-objects", true},
                     {"--device", true},
                     {"--threads", true},
                     {"--dump", true},
                     {"--max-questions-per-scene", true},
                     {"--max-new-tokens", true},
                     {"--verbose", false},
                     {"--object-order", true},
                     {"--precision", true},
                     {"--per-object", false},
                     {"--object-color-prompt", true},
                     {"--object-shape-prompt", true},
                     {"--object-digit-prompt", true}};
    if (cli_parse_opts(argc, argv, o, E_N)) return 1;
    if (!o[E_MODEL].value || !o[E_COUNT].value)
        return cli_usage_error("eval-scenes", "%s", "--model PATH and --count N are required");
    double count, seed = 0, mn = 1, mx = MGL_SCENE_MAX_OBJECTS, v;
    long max_q = -1;
    MglGenParams gp = mgl_gen_default_params();
    MglModelParams mp = mgl_model_default_params();
    /* count, seed and object limits are read exactly as `mgllava scenes` reads them */
    if (!cli_num(o[E_COUNT].value, 1, 1e7, &count))
        return cli_usage_error("eval-scenes", "--count '%s': expected 1..10000000", o[E_COUNT].value);
    if (o[E_SEED].value && !cli_num(o[E_SEED].value, 0, 1.8e19, &seed))
        return cli_usage_error("eval-scenes", "--seed '%s': expected a non-negative integer", o[E_SEED].value);
    if (o[E_MINOBJ].value && !cli_num(o[E_MINOBJ].value, 1, MGL_SCENE_MAX_OBJECTS, &mn))
        return cli_usage_error("eval-scenes", "--min-objects '%s': expected 1..6", o[E_MINOBJ].value);
    if (o[E_MAXOBJ].value && !cli_num(o[E_MAXOBJ].value, mn, MGL_SCENE_MAX_OBJECTS, &mx))
        return cli_usage_error("eval-scenes", "--max-objects '%s': expected min-objects..6", o[E_MAXOBJ].value);
    if (o[E_HIGHRES].value && !ev_bool(o[E_HIGHRES].value, &gp.use_high_res))
        return cli_usage_error("eval-scenes", "--use-high-res '%s': expected true or false", o[E_HIGHRES].value);
    if (o[E_OBJECTS].value && !ev_bool(o[E_OBJECTS].value, &gp.use_objects))
        return cli_usage_error("eval-scenes", "--use-objects '%s': expected true or false", o[E_OBJECTS].value);
    if (o[E_THREADS].value) {
        if (!cli_num(o[E_THREADS].value, 1, 1024, &v))
            return cli_usage_error("eval-scenes", "--threads '%s': expected 1..1024", o[E_THREADS].value);
        mp.n_threads = (int)v;
    }
    if (o[E_MAXQ].value) {
        if (!cli_num(o[E_MAXQ].value, 0, 1e6, &v))
            return cli_usage_error("eval-scenes", "--max-questions-per-scene '%s': expected 0..1000000",
                                   o[E_MAXQ].value);
        max_q = (long)v;
    }
    if (o[E_MAXNEW].value) {
        if (!cli_num(o[E_MAXNEW].value, 1, 1e6, &v))
            return cli_usage_error("eval-scenes", "--max-new-tokens '%s': expected 1..1000000", o[E_MAXNEW].value);
        gp.max_new_tokens = (int)v;
    }
    if (o[E_ORDER].value && mgl_object_order_parse(o[E_ORDER].value, &gp.object_order) != MGL_OK)
        return cli_usage_error("eval-scenes", "--object-order '%s': expected model, score or reading",
                               o[E_ORDER].value);
    if (o[E_DEVICE].value) mp.device = o[E_DEVICE].value;
    if (o[E_PRECISION].value && !cli_dtype(o[E_PRECISION].value))
        return cli_usage_error("eval-scenes", "--precision '%s': expected f16, bf16 or f32", o[E_PRECISION].value);
    mp.precision = o[E_PRECISION].value; /* CUDA weights and KV cache (NULL: f16); the CPU: bf16 or f32 */
    const bool per_object = o[E_PER_OBJECT].seen;
    const char* obj_tmpl[OBJ_N];
    for (int k = 0; k < OBJ_N; k++) {
        obj_tmpl[k] = o[E_OCOLOR + k].value ? o[E_OCOLOR + k].value : k_obj_default[k];
        if (o[E_OCOLOR + k].value && !per_object)
            return cli_usage_error("eval-scenes", "%s needs --per-object", o[E_OCOLOR + k].name);
    }
    Tally obj_tally[OBJ_N] = {{0}};
    const char* dump = o[E_DUMP].value;
    const bool progress = o[E_VERBOSE].seen || isatty(2);
    const int W = MGL_SCENE_STILL_WIDTH, H = MGL_SCENE_STILL_HEIGHT;

    MglErr err = {0};
    FILE* items = NULL;
    char* items_path = NULL;
    if (dump) {
        if (g_mkdir_with_parents(dump, 0755) != 0) {
            cli_err(&err, MGL_E_IO, "%s: cannot create folder", dump);
            return cli_fail(&err);
        }
        items_path = g_build_filename(dump, "items.jsonl", NULL);
        items = fopen(items_path, "w");
        if (!items) {
            cli_err(&err, MGL_E_IO, "%s: cannot write", items_path);
            g_free(items_path);
            return cli_fail(&err);
        }
    }

    gint64 t0 = g_get_monotonic_time();
    MglModel* m = NULL;
    MglCtx* c = NULL;
    uint8_t* px = malloc((size_t)W * H * 3);
    Tally tally[CAT_N] = {{0}}, questions = {0};
    Truth truth = {0};
    GString* line = g_string_new(NULL);
    int rc = 1;
    cli_progress_attach(&mp);
    if (mgl_model_load(o[E_MODEL].value, &mp, &m, &err) != MGL_OK) goto out;
    if (mgl_ctx_new(m, &c, &err) != MGL_OK) goto out;

    for (long i = 0; i < (long)count; i++) {
        MglScene sc;
        mgl_scene_make(&sc, W, H, (uint64_t)seed, (int)i, (int)mn, (int)mx);
        const int t = mgl_scene_still_frame(i);
        mgl_scene_render(&sc, t, px, W * 3, 3, false);
        char image_name[64];
        snprintf(image_name, sizeof image_name, "scene_%06ld.png", i);
        if (dump) {
            char* png = g_build_filename(dump, image_name, NULL);
            bool ok = cli_write_png_rgb(png, px, W, H);
            if (!ok) cli_err(&err, MGL_E_IO, "%s: cannot write", png);
            g_free(png);
            if (!ok) goto out;
        }
        char* tj = mgl_scene_truth_json(&sc, t, -1);
        truth_clear(&truth);
        MglStatus st = truth_parse(tj, &truth, &err);
        free(tj);
        if (st != MGL_OK) goto out;

        const MglImage img = {px, W, H, W * 3};
        guint nqa = json_array_get_length(truth.qa);
        long asked = 0, right = 0;
        if (per_object) {
            if (eval_objects(c, &img, &truth, &gp, obj_tmpl, obj_tally, items, line, image_name, i, t, &asked, &right,
                             &err) != MGL_OK)
                goto out;
            nqa = 0; /* the frame's own questions are not asked */
        }
        /* item -1 is the caption, then the truth's questions in order */
        for (long k = per_object ? (long)nqa : -1; k < (long)nqa; k++) {
            const char* q = CAPTION_PROMPT;
            const char* want = truth.caption;
            int cat = CAT_CAPTION;
            if (k >= 0) {
                if (max_q >= 0 && k >= max_q) break;
                JsonNode* en = json_array_get_element(truth.qa, (guint)k);
                JsonObject* e = JSON_NODE_HOLDS_OBJECT(en) ? json_node_get_object(en) : NULL;
                bool digit = false;
                GError* ge = NULL;
                if (!e || !mgl_json_req_str(e, "q", &q, "scene truth qa", &ge) ||
                    !mgl_json_req_str(e, "a", &want, "scene truth qa", &ge) ||
                    !mgl_json_opt_bool(e, "digit", &digit, "scene truth qa", &ge)) {
                    if (!e)
                        cli_err(&err, MGL_E_FORMAT, "scene truth: qa[%ld] is not an object", k);
                    else
                        cli_err_json(&err, ge);
                    goto out;
                }
                cat = categorize(q, digit);
            }
            char* answer = NULL;
            if (mgl_generate(c, &img, truth.boxes, truth.n_boxes, q, &gp, &answer, NULL, NULL, NULL, &err) != MGL_OK) {
                cli_err_prefix(&err, image_name);
                goto out;
            }
            char *na = normalize(answer), *nt = normalize(want);
            bool correct = strcmp(na, nt) == 0;
            g_free(na);
            g_free(nt);
            tally[cat].n++;
            tally[cat].correct += correct;
            if (cat != CAT_CAPTION && cat != CAT_DIGIT) {
                questions.n++;
                questions.correct += correct;
            }
            asked++;
            right += correct;
            if (items) {
                g_string_assign(line, "{\"image\": ");
                mgl_json_append_string(line, image_name);
                g_string_append_printf(line, ", \"scene\": %ld, \"frame\": %d, \"boxes\": [", i, t);
                for (size_t b = 0; b < truth.n_boxes; b++)
                    g_string_append_printf(line, "%s[%g, %g, %g, %g]", b ? ", " : "", truth.boxes[b].x1,
                                           truth.boxes[b].y1, truth.boxes[b].x2, truth.boxes[b].y2);
                g_string_append(line, "], \"labels\": [");
                for (size_t b = 0; b < truth.n_boxes; b++) {
                    if (b) g_string_append(line, ", ");
                    mgl_json_append_string(line, truth.boxes[b].label);
                }
                append_item_tail(line, q, want, answer, k_cat_name[cat], correct);
                fputs(line->str, items);
            }
            free(answer);
        }
        if (progress)
            fprintf(stderr, "eval-scenes: scene %ld/%ld: %ld/%ld right (%.1f s)\n", i + 1, (long)count, right, asked,
                    (double)(g_get_monotonic_time() - t0) / 1e6);
    }

    GString* j = g_string_new("{\"model\": ");
    mgl_json_append_string(j, o[E_MODEL].value);
    g_string_append_printf(j,
                           ", \"seed\": %llu, \"count\": %ld, \"min_objects\": %d, \"max_objects\": %d, "
                           "\"use_high_res\": %s, \"use_objects\": %s",
                           (unsigned long long)(uint64_t)seed, (long)count, (int)mn, (int)mx,
                           gp.use_high_res ? "true" : "false", gp.use_objects ? "true" : "false");
    if (max_q >= 0) g_string_append_printf(j, ", \"max_questions_per_scene\": %ld", max_q);
    if (gp.object_order >= 0)
        g_string_append_printf(j, ", \"object_order\": \"%s\"",
                               gp.object_order == MGL_OBJECT_ORDER_READING ? "reading" : "score");
    if (per_object) {
        Tally all = {0};
        g_string_append(j, ", \"per_object\": true");
        for (int k = 0; k < OBJ_N; k++) {
            g_string_append_printf(j, ", \"%s_prompt\": ", k_obj_name[k]);
            mgl_json_append_string(j, obj_tmpl[k]);
            all.n += obj_tally[k].n;
            all.correct += obj_tally[k].correct;
        }
        append_tally(j, "objects", &all);
        for (int k = 0; k < OBJ_N; k++) append_tally(j, k_obj_name[k], &obj_tally[k]);
    } else {
        append_tally(j, "caption", &tally[CAT_CAPTION]);
        append_tally(j, "questions", &questions);
        for (int k = CAT_COUNTING; k < CAT_N; k++)
            if (k != CAT_OTHER || tally[k].n) append_tally(j, k_cat_name[k], &tally[k]);
    }
    g_string_append_printf(j, ", \"seconds\": %.3f}\n", (double)(g_get_monotonic_time() - t0) / 1e6);
    fputs(j->str, stdout);
    fflush(stdout);
    if (dump) {
        char* sp = g_build_filename(dump, "summary.json", NULL);
        if (!g_file_set_contents(sp, j->str, (gssize)j->len, NULL))
            cli_err(&err, MGL_E_IO, "%s: cannot write", sp);
        else
            rc = 0;
        g_free(sp);
    } else {
        rc = 0;
    }
    g_string_free(j, TRUE);
    if (rc == 0) goto done;
out:
    rc = cli_fail(&err);
done:
    if (items && fclose(items) != 0 && rc == 0) {
        cli_err(&err, MGL_E_IO, "%s: write error", items_path);
        rc = cli_fail(&err);
    }
    g_free(items_path);
    truth_clear(&truth);
    g_string_free(line, TRUE);
    free(px);
    mgl_ctx_free(c);
    mgl_model_free(m);
    return rc;
}
