/* mgl-video-cli.c: `mgllava run --video FRAME...`, a question about a clip
 * (the official MG-LLaVA video path, mgl_generate_clip).
 *
 *   mgllava run --video F0 F1 ... --model PATH --prompt TEXT [--frames N] [--boxes FILE]
 *               [--max-new-tokens N] [--temperature T] [--top-p P] [--top-k K] [--seed S]
 *               [--device auto|cpu|cuda] [--threads N] [--json]
 *
 * The images after --video are the clip's source frames in time order. N
 * frames (default: all of them, at most 8) are taken as the official decord
 * loader does, np.linspace(0, n-1, N) truncated (a frame repeats when N
 * exceeds the images given). --boxes is a detections file keyed by frame
 * number, frame i being the i-th image given: the MG-LLaVA video record
 * {"video", "frames": [record per image]}, a list of {"id": i, ...} records
 * or JSON Lines with "frame"; each sampled frame takes its own image's boxes. */
#include "mgllava.h"
#include "mgl-cli.h"
#include "mgl-detections.h"
#include "mgl-image.h"
#include "mgl-json.h"

#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FRAMES 256

enum {
    V_MODEL,
    V_PROMPT,
    V_FRAMES,
    V_BOXES,
    V_MAXNEW,
    V_TEMP,
    V_TOPP,
    V_TOPK,
    V_SEED,
    V_DEVICE,
    V_THREADS,
    V_JSON,
    V_N
};

/* Per-image boxes from a detections file keyed by frame number. */
static MglStatus load_frame_boxes(const char* path, size_t n_images, GArray** boxes, GStringChunk* labels,
                                  MglErr* err) {
    GPtrArray* warnings = g_ptr_array_new_with_free_func(g_free);
    GError* ge = NULL;
    MglDetectionsFile* f = mgl_detections_file_open(path, MGL_DETECTIONS_MATCH_FRAME, warnings, &ge);
    GArray* tmp = g_array_new(FALSE, FALSE, sizeof(MglDetectionsBox));
    MglStatus st = MGL_OK;
    for (size_t k = 0; f && k < n_images && st == MGL_OK; k++) {
        g_array_set_size(tmp, 0);
        if (!mgl_detections_file_lookup(f, (gint64)k, (gint64)k, tmp, warnings, &ge)) break;
        boxes[k] = g_array_new(FALSE, FALSE, sizeof(MglBox));
        for (guint i = 0; i < tmp->len; i++) {
            const MglDetectionsBox* b = &g_array_index(tmp, MglDetectionsBox, i);
            MglBox mb = {b->x1, b->y1, b->x2, b->y2, b->score, g_string_chunk_insert_const(labels, b->label)};
            g_array_append_val(boxes[k], mb);
        }
    }
    if (ge) {
        st = cli_err(err, g_error_matches(ge, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_IO) ? MGL_E_IO : MGL_E_FORMAT,
                     "%s%s%s", g_str_has_prefix(ge->message, path) ? "" : path,
                     g_str_has_prefix(ge->message, path) ? "" : ": ", ge->message);
        g_error_free(ge);
    }
    for (guint i = 0; i < warnings->len; i++)
        fprintf(stderr, "mgllava: warning: %s\n", (const char*)g_ptr_array_index(warnings, i));
    g_ptr_array_unref(warnings);
    g_array_unref(tmp);
    mgl_detections_file_free(f);
    return st;
}

int mgl_cmd_run_video(int argc, char** argv) {
    /* the frame files: every argument after --video up to the next option */
    const char** files = g_new0(const char*, (size_t)argc + 1);
    char** rest = g_new0(char*, (size_t)argc + 1);
    int nf = 0, nr = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--video")) {
            while (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) files[nf++] = argv[++i];
            continue;
        }
        rest[nr++] = argv[i];
    }
    CliOpt o[V_N] = {{"--model", true},          {"--prompt", true},      {"--frames", true},  {"--boxes", true},
                     {"--max-new-tokens", true}, {"--temperature", true}, {"--top-p", true},   {"--top-k", true},
                     {"--seed", true},           {"--device", true},      {"--threads", true}, {"--json", false}};
    int rc = 1;
    MglErr err = {0};
    MglGenParams gp = mgl_gen_default_params();
    MglModelParams mp = mgl_model_default_params();
    size_t T = 0;
    double v;
    GArray* fboxes[MAX_FRAMES] = {0};
    uint8_t* rgb[MAX_FRAMES] = {0};
    int w[MAX_FRAMES] = {0}, h[MAX_FRAMES] = {0};
    GStringChunk* labels = g_string_chunk_new(256);
    MglModel* m = NULL;
    MglCtx* c = NULL;
    if (cli_parse_opts(nr, rest, o, V_N)) goto cleanup;
    if (nf == 0) {
        rc = cli_usage_error("run", "%s: give the clip's images after --video", "--video");
        goto cleanup;
    }
    if (nf > MAX_FRAMES) {
        rc = cli_usage_error("run", "--video: more than %s images", "256");
        goto cleanup;
    }
    if (!o[V_MODEL].value || !o[V_PROMPT].value) {
        rc = cli_usage_error(NULL, "%s: --model PATH and --prompt TEXT are required", "run --video");
        goto cleanup;
    }
    T = nf < 8 ? (size_t)nf : 8;
    if (o[V_FRAMES].value) {
        if (!cli_num(o[V_FRAMES].value, 1, MAX_FRAMES, &v)) {
            rc = cli_usage_error(NULL, "--frames '%s': expected 1..256", o[V_FRAMES].value);
            goto cleanup;
        }
        T = (size_t)v;
    }
    if (o[V_MAXNEW].value) {
        if (!cli_num(o[V_MAXNEW].value, 1, 1e6, &v)) {
            rc = cli_usage_error(NULL, "--max-new-tokens '%s': expected 1..1000000", o[V_MAXNEW].value);
            goto cleanup;
        }
        gp.max_new_tokens = (int)v;
    }
    if (o[V_TEMP].value) {
        if (!cli_num(o[V_TEMP].value, 0, 100, &v)) {
            rc = cli_usage_error(NULL, "--temperature '%s': expected 0..100", o[V_TEMP].value);
            goto cleanup;
        }
        gp.temperature = (float)v;
    }
    if (o[V_TOPP].value) {
        if (!cli_num(o[V_TOPP].value, 1e-6, 1, &v)) {
            rc = cli_usage_error(NULL, "--top-p '%s': expected (0, 1]", o[V_TOPP].value);
            goto cleanup;
        }
        gp.top_p = (float)v;
    }
    if (o[V_TOPK].value) {
        if (!cli_num(o[V_TOPK].value, 0, 1e9, &v)) {
            rc = cli_usage_error(NULL, "--top-k '%s': expected >= 0", o[V_TOPK].value);
            goto cleanup;
        }
        gp.top_k = (int)v;
    }
    if (o[V_SEED].value) {
        if (!cli_num(o[V_SEED].value, 0, 1.8e19, &v)) {
            rc = cli_usage_error(NULL, "--seed '%s': expected a non-negative integer", o[V_SEED].value);
            goto cleanup;
        }
        gp.seed = (uint64_t)v;
    }
    if (o[V_THREADS].value) {
        if (!cli_num(o[V_THREADS].value, 1, 1024, &v)) {
            rc = cli_usage_error(NULL, "--threads '%s': expected 1..1024", o[V_THREADS].value);
            goto cleanup;
        }
        mp.n_threads = (int)v;
    }
    if (o[V_DEVICE].value) mp.device = o[V_DEVICE].value;
    size_t idx[MAX_FRAMES];
    mgl_clip_sample_indices((size_t)nf, T, idx);
    if (o[V_BOXES].value && load_frame_boxes(o[V_BOXES].value, (size_t)nf, fboxes, labels, &err) != MGL_OK) goto fail;
    if (mgl_model_load(o[V_MODEL].value, &mp, &m, &err) != MGL_OK) goto fail;
    /* before any frame is read: does the clip fit the context? */
    if (mgl_clip_check(m, 0, (int)T, o[V_PROMPT].value, &err) != MGL_OK) goto fail;
    MglClipFrame fr[MAX_FRAMES];
    for (size_t j = 0; j < T; j++) {
        const size_t k = idx[j];
        if (!rgb[k] && mgl_image_load(files[k], &rgb[k], &w[k], &h[k], &err) != MGL_OK) goto fail;
        fr[j] = (MglClipFrame){.image = {rgb[k], w[k], h[k], 3 * w[k]},
                               .boxes = fboxes[k] ? (const MglBox*)(void*)fboxes[k]->data : NULL,
                               .n_boxes = fboxes[k] ? fboxes[k]->len : 0};
    }
    if (mgl_ctx_new(m, &c, &err) != MGL_OK) goto fail;
    char* text = NULL;
    int32_t* ids = NULL;
    size_t nid = 0;
    MglTimings tm;
    if (mgl_generate_clip(c, fr, T, o[V_PROMPT].value, &gp, &text, &ids, &nid, &tm, &err) != MGL_OK) goto fail;
    if (o[V_JSON].seen) {
        GString* j = g_string_new("{\"text\": ");
        mgl_json_append_string(j, text);
        g_string_append(j, ", \"token_ids\": [");
        for (size_t i = 0; i < nid; i++) g_string_append_printf(j, i ? ", %d" : "%d", ids[i]);
        g_string_append(j, "], \"frames\": [");
        for (size_t i = 0; i < T; i++) {
            if (i) g_string_append(j, ", ");
            g_string_append_printf(j, "{\"index\": %zu, \"file\": ", idx[i]);
            mgl_json_append_string(j, files[idx[i]]);
            g_string_append_printf(j, ", \"boxes\": %u}", fboxes[idx[i]] ? fboxes[idx[i]]->len : 0);
        }
        g_string_append_printf(j,
                               "], \"n_prompt_tokens\": %d, \"n_objects\": %d, \"timings_ms\": {\"preprocess\": %.3f, "
                               "\"vision\": %.3f, \"prefill\": %.3f, \"decode\": %.3f}}\n",
                               tm.n_prompt_tokens, tm.n_objects, tm.preprocess_ms, tm.vision_ms, tm.prefill_ms,
                               tm.decode_ms);
        fputs(j->str, stdout);
        g_string_free(j, TRUE);
    } else {
        printf("%s\n", text);
    }
    free(text);
    free(ids);
    rc = 0;
    goto cleanup;
fail:
    rc = cli_fail(&err);
cleanup:
    mgl_ctx_free(c);
    mgl_model_free(m);
    for (int k = 0; k < nf && k < MAX_FRAMES; k++) {
        free(rgb[k]);
        if (fboxes[k]) g_array_unref(fboxes[k]);
    }
    g_string_chunk_free(labels);
    g_free(files);
    g_free(rest);
    return rc;
}
