/* mgllava: command-line tool of libmgllava.
 *
 *   mgllava tokenize   --tokenizer PATH [--special]      stdin text -> JSON ids
 *   mgllava detokenize --tokenizer PATH [--skip-special] [--clean-up-spaces=yes|no]
 *                                                        stdin JSON ids -> text
 *   mgllava inspect    --model PATH                      validate + summarise a model, or list a weights file
 *   mgllava convert    --model PATH --out DIR [--dtype f16|bf16|f32|q8|q4] [--group N] [--keep-head] ...
 *   mgllava run        --model PATH --image FILE [--boxes FILE] --prompt TEXT [--max-new-tokens N]
 *                      [--temperature T] [--top-p P] [--top-k K] [--seed S] [--device auto|cpu|cuda] [--json]
 *                      [--schema FILE | --grammar FILE]   the answer constrained (docs/structured-output.md)
 *   mgllava run --video F0 F1 ... --model PATH --prompt TEXT [--frames N] [--boxes FILE]   a clip
 *   mgllava dump       (run's options) --stage NAME --out FILE.safetensors
 *   mgllava eval-scenes --model PATH --count N [--seed S] [...]   accuracy on the synthetic scenes (JSON)
 *
 * Errors: one line on stderr naming the file and the problem, exit status 1. */
#include "mgllava.h"
#include "mgl-json.h"
#include "mgl-detections.h"
#include "mgl-scenes.h"
#include "mgl-eval-scenes.h"
#include "mgl-cli.h"
#include "mgl-image.h"
#include "mgl-dev.h"
#include "mgl-video-cli.h"

#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_STDIN (256u << 20)

static void usage(FILE* f) {
    fputs(
        "usage: mgllava COMMAND [OPTIONS]\n"
        "  tokenize   --tokenizer PATH [--special]       read UTF-8 text on stdin, print a JSON array of ids\n"
        "  detokenize --tokenizer PATH [--skip-special] [--clean-up-spaces=yes|no]\n"
        "                                                read a JSON array of ids on stdin, print the text\n"
        "                                                (spaces before punctuation cleaned up as the\n"
        "                                                tokenizer's config says, unless overridden)\n"
        "  inspect    --model PATH                       validate and summarise a model folder (mgllava.json),\n"
        "                                                or list the tensors of a .safetensors/.pth/.bin file\n"
        "  convert    --model PATH --out DIR [--dtype f16|bf16|f32|q8|q4] [--group N] [--keep-head]\n"
        "             [--quant-projectors] [--float f16|bf16|f32]\n"
        "                                                pack a model into one folder of safetensors (mmap-loadable)\n"
        "  run        --model PATH --image FILE [--boxes FILE] --prompt TEXT [--max-new-tokens N]\n"
        "             [--temperature T] [--top-p P] [--top-k K] [--seed S] [--device auto|cpu|cuda] [--json]\n"
        "             [--object-order model|score|reading] [--schema FILE | --grammar FILE]\n"
        "                                                answer a question about an image (PNG, JPEG, WebP,\n"
        "                                                BMP, GIF, TIFF, JPEG 2000, ICO, PPM, TGA and the\n"
        "                                                other kinds Pillow reads: docs/engine.md);\n"
        "                                                --schema/--grammar: the answer follows a JSON Schema or\n"
        "                                                a grammar (docs/structured-output.md)\n"
        "  run        --video F0 F1 ... --model PATH --prompt TEXT [--frames N] [--boxes FILE] [--json] ...\n"
        "                                                answer a question about a clip of images in time order\n"
        "                                                (the video path: N frames taken as np.linspace, default\n"
        "                                                all, at most 8; --boxes keyed by image number)\n"
        "  dump       (run's options) --stage NAME --out FILE.safetensors\n"
        "                                                write one stage's tensor: x768 x336 boxes768 clip\n"
        "                                                cnx0..cnx3 fused vimg obj_pooled vobj embeds logits\n"
        "  bench      [--preset NAME] [--dtype f32|f16|bf16|q8|q4] [--prompt-tokens N] [--gen-tokens N] [--reps N]\n"
        "             [--device cpu|cuda|auto] [--precision f16|bf16|f32] [--kv f16|bf16|f32] [--threads N]\n"
        "                                                (CUDA: weights in that precision; CPU: bf16 = bf16 products\n"
        "                                                and KV cache, else f32; --kv: the KV cache's own precision)\n"
        "                                                real-shape random-weight timings (one JSON line); presets:\n"
        "                                                clip-l-336 convnext-l-768 vision-l llama-110m vicuna-7b\n"
        "                                                phi3-mini llama3-8b mgllava-7b\n"
        "             --preset NAME --save DIR [--tokenizer DIR]   write the preset as a packed model folder\n"
        "             --model PATH [--gen-tokens N]          load from disk, time one frame, peak RSS vs file size\n"
        "             --preset NAME --batch 1,2,4,8              decode throughput at each batch size\n"
        "             --model PATH --streams 1,2,4,8 [--frames N] [--prompt TEXT] [--schema FILE] [--device D]\n"
        "                                                N streams of scene frames on one server: answered\n"
        "                                                frames/s, latency; --schema: every answer constrained,\n"
        "                                                and the masks' time after each step\n"
        "  scenes     --count N --out DIR [--seed S] [--width W] [--height H] [--min-objects N] [--max-objects N]\n"
        "                                                synthetic scenes: PNG + ground-truth JSON per scene\n"
        "  eval-scenes --model PATH --count N [--seed S] [--min-objects N] [--max-objects N]\n"
        "             [--use-high-res true|false] [--use-objects true|false] [--device auto|cpu|cuda]\n"
        "             [--precision f16|bf16|f32] [--threads N]\n"
        "             [--max-questions-per-scene K] [--max-new-tokens N] [--object-order model|score|reading]\n"
        "             [--dump DIR] [--verbose]\n"
        "             [--per-object [--object-color-prompt T] [--object-shape-prompt T] [--object-digit-prompt T]]\n"
        "                                                score a model on the scenes `scenes` writes (one JSON "
        "object)\n"
        "  version\n",
        f);
}

static char* read_stdin(size_t* len, MglErr* err) {
    size_t cap = 1 << 16, n = 0;
    char* buf = malloc(cap + 1);
    for (;;) {
        if (n == cap) {
            if (cap >= MAX_STDIN) {
                free(buf);
                cli_err(err, MGL_E_INVALID, "stdin: input larger than %u bytes", MAX_STDIN);
                return NULL;
            }
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
        ssize_t r = read(0, buf + n, cap - n);
        if (r < 0) {
            free(buf);
            cli_err(err, MGL_E_IO, "stdin: read error");
            return NULL;
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

static int cmd_tokenize(int argc, char** argv) {
    CliOpt o[] = {{"--tokenizer", true}, {"--special", false}};
    if (cli_parse_opts(argc, argv, o, 2)) return 1;
    if (!o[0].value) return cli_usage_error(NULL, "%s: --tokenizer PATH is required", "tokenize");
    MglErr err = {0};
    MglTokenizer* tok = NULL;
    if (mgl_tokenizer_load(o[0].value, &tok, &err) != MGL_OK) return cli_fail(&err);
    size_t len = 0;
    char* text = read_stdin(&len, &err);
    if (!text) {
        mgl_tokenizer_free(tok);
        return cli_fail(&err);
    }
    int32_t* ids = NULL;
    size_t n = 0;
    MglStatus st = mgl_tokenizer_encode(tok, text, (ptrdiff_t)len, o[1].seen, &ids, &n, &err);
    free(text);
    mgl_tokenizer_free(tok);
    if (st != MGL_OK) {
        cli_err_prefix(&err, "stdin");
        return cli_fail(&err);
    }
    GString* s = g_string_new("[");
    for (size_t i = 0; i < n; i++) g_string_append_printf(s, i ? ", %d" : "%d", ids[i]);
    g_string_append(s, "]\n");
    fputs(s->str, stdout);
    g_string_free(s, TRUE);
    free(ids);
    return 0;
}

static int cmd_detokenize(int argc, char** argv) {
    CliOpt o[] = {{"--tokenizer", true}, {"--skip-special", false}, {"--clean-up-spaces", true}};
    if (cli_parse_opts(argc, argv, o, 3)) return 1;
    if (!o[0].value) return cli_usage_error(NULL, "%s: --tokenizer PATH is required", "detokenize");
    /* default: as tokenizer_config.json (or its tokenizer class) says */
    const char* cu = o[2].value;
    if (cu && strcmp(cu, "yes") && strcmp(cu, "no"))
        return cli_usage_error("detokenize", "--clean-up-spaces takes yes or no, not '%s'", cu);
    MglErr err = {0};
    size_t len = 0;
    char* text = read_stdin(&len, &err);
    if (!text) return cli_fail(&err);
    JsonParser* p = json_parser_new_immutable();
    GError* ge = NULL;
    int rc = 1;
    int32_t* ids = NULL;
    MglTokenizer* tok = NULL;
    if (!g_utf8_validate(text, (gssize)len, NULL) || !mgl_json_depth_ok(text, len) ||
        !json_parser_load_from_data(p, text, (gssize)len, &ge)) {
        cli_err(&err, MGL_E_INVALID, "stdin: not a JSON array of token ids%s%s", ge ? ": " : "", ge ? ge->message : "");
        g_clear_error(&ge);
        goto out;
    }
    JsonNode* root = json_parser_get_root(p);
    if (!root || !JSON_NODE_HOLDS_ARRAY(root)) {
        cli_err(&err, MGL_E_INVALID, "stdin: expected a JSON array of token ids");
        goto out;
    }
    JsonArray* a = json_node_get_array(root);
    guint n = json_array_get_length(a);
    ids = malloc((n ? n : 1) * sizeof *ids);
    for (guint i = 0; i < n; i++) {
        JsonNode* e = json_array_get_element(a, i);
        if (!JSON_NODE_HOLDS_VALUE(e) || json_node_get_value_type(e) != G_TYPE_INT64 || json_node_get_int(e) < 0 ||
            json_node_get_int(e) > INT32_MAX) {
            cli_err(&err, MGL_E_INVALID, "stdin: element %u is not a token id", i);
            goto out;
        }
        ids[i] = (int32_t)json_node_get_int(e);
    }
    if (mgl_tokenizer_load(o[0].value, &tok, &err) != MGL_OK) goto out;
    if (cu) mgl_tokenizer_set_clean_up_spaces(tok, !strcmp(cu, "yes"));
    char* out = NULL;
    if (mgl_tokenizer_decode(tok, ids, n, o[1].seen, &out, &err) != MGL_OK) goto out;
    fputs(out, stdout);
    fputc('\n', stdout);
    free(out);
    rc = 0;
out:
    g_object_unref(p);
    free(text);
    free(ids);
    mgl_tokenizer_free(tok);
    return rc ? cli_fail(&err) : 0;
}

static int cmd_inspect(int argc, char** argv) {
    CliOpt o[] = {{"--model", true}};
    if (cli_parse_opts(argc, argv, o, 1)) return 1;
    if (!o[0].value) return cli_usage_error(NULL, "%s: --model PATH is required", "inspect");
    MglErr err = {0};
    char* text = NULL;
    /* inspect reads the manifest, configs and tensor headers, not the weights'
     * data: one line says what it is doing on a terminal while it does */
    const bool tty = isatty(2) && !(getenv("MGL_NO_PROGRESS") && *getenv("MGL_NO_PROGRESS"));
    if (tty) fprintf(stderr, "inspecting %s (manifest, configs, tensor headers) ...", o[0].value), fflush(stderr);
    MglStatus st = mgl_inspect(o[0].value, &text, &err);
    if (tty) fputs("\r\033[K", stderr);
    if (text) fputs(text, stdout);
    free(text);
    return st == MGL_OK ? 0 : cli_fail(&err);
}

static int cmd_convert(int argc, char** argv) {
    CliOpt o[] = {{"--model", true}, {"--out", true},        {"--dtype", true},
                  {"--group", true}, {"--keep-head", false}, {"--quant-projectors", false},
                  {"--float", true}};
    if (cli_parse_opts(argc, argv, o, 7)) return 1;
    if (!o[0].value || !o[1].value)
        return cli_usage_error(NULL, "%s: --model PATH and --out DIR are required", "convert");
    const char* ds = o[2].value ? o[2].value : "f16";
    const bool quant = !strcmp(ds, "q8") || !strcmp(ds, "q4");
    if (!cli_dtype(ds) && !quant) return cli_usage_error(NULL, "--dtype '%s': expected f16, bf16, f32, q8 or q4", ds);
    if (!quant && (o[3].value || o[4].seen || o[5].seen || o[6].value))
        return cli_usage_error(NULL, "%s: --group, --keep-head, --quant-projectors and --float go with q8 or q4",
                               "convert");
    if (o[6].value && !cli_dtype(o[6].value))
        return cli_usage_error(NULL, "--float '%s': expected f16, bf16 or f32", o[6].value);
    /* the quantization spec string of mgl_convert (mgl-quant.h) */
    char spec[128];
    snprintf(spec, sizeof spec, "%s%s%s%s%s%s%s", ds, o[3].value ? ",group=" : "", o[3].value ? o[3].value : "",
             o[4].seen ? ",head=keep" : "", o[5].seen ? ",projectors=q" : "", o[6].value ? ",float=" : "",
             o[6].value ? o[6].value : "");
    MglErr err = {0};
    if (mgl_convert(o[0].value, o[1].value, spec, &err) != MGL_OK) return cli_fail(&err);
    printf("wrote %s (%s)\n", o[1].value, spec);
    return 0;
}


/* ---- run / dump ------------------------------------------------------- */

typedef struct {
    MglBox* boxes;
    size_t n;
    MglDetections* det; /* owns the labels */
} Boxes;

static void boxes_clear(Boxes* b) {
    free(b->boxes);
    mgl_detections_free(b->det);
    memset(b, 0, sizeof *b);
}

/* --boxes: the MG-LLaVA offline-detector record {"boxes": [[x1,y1,x2,y2]...], "scores": [...], "labels": [...]}
 * (or a one-element list of such records, the batch file form), read by common/mgl-detections.c with the
 * rules and defaults every detections reader shares. Warnings (a dropped inverted box, a negative coordinate)
 * go to stderr. */
static MglStatus load_boxes(const char* path, Boxes* out, MglErr* err) {
    memset(out, 0, sizeof *out);
    GPtrArray* warnings = g_ptr_array_new_with_free_func(g_free);
    GError* ge = NULL;
    out->det = mgl_detections_load_record(path, 256u << 20, warnings, &ge);
    if (!out->det) {
        MglStatus st =
            cli_err(err, g_error_matches(ge, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_IO) ? MGL_E_IO : MGL_E_FORMAT,
                    "%s", ge->message);
        g_error_free(ge);
        g_ptr_array_unref(warnings);
        return st;
    }
    for (guint i = 0; i < warnings->len; i++)
        fprintf(stderr, "mgllava: warning: %s\n", (const char*)g_ptr_array_index(warnings, i));
    g_ptr_array_unref(warnings);
    GArray* d = out->det->boxes;
    out->n = d->len;
    out->boxes = calloc(out->n ? out->n : 1, sizeof(MglBox));
    for (size_t i = 0; i < out->n; i++) {
        const MglDetectionsBox* b = &g_array_index(d, MglDetectionsBox, i);
        out->boxes[i] = (MglBox){b->x1, b->y1, b->x2, b->y2, b->score, b->label};
    }
    return MGL_OK;
}

typedef struct {
    bool json;
    bool tty; /* stream tokens as they come (an interactive terminal) */
    GString* streamed;
} RunState;

static bool on_token(int32_t id, const char* text, void* ud) {
    RunState* rs = ud;
    if (rs->tty) {
        fputs(text, stdout);
        fflush(stdout);
    }
    g_string_append(rs->streamed, text);
    return true;
}

enum {
    O_MODEL,
    O_IMAGE,
    O_BOXES,
    O_PROMPT,
    O_MAXNEW,
    O_TEMP,
    O_TOPP,
    O_TOPK,
    O_SEED,
    O_DEVICE,
    O_JSON,
    O_STAGE,
    O_OUT,
    O_THREADS,
    O_ORDER,
    O_SCHEMA,
    O_GRAMMAR,
    O_COUNT
};

static int cmd_run(int argc, char** argv, bool dump) {
    for (int i = 0; !dump && i < argc; i++)
        if (!strcmp(argv[i], "--video")) return mgl_cmd_run_video(argc, argv); /* a clip */
    CliOpt o[O_COUNT] = {
        {"--model", true},       {"--image", true},  {"--boxes", true}, {"--prompt", true},  {"--max-new-tokens", true},
        {"--temperature", true}, {"--top-p", true},  {"--top-k", true}, {"--seed", true},    {"--device", true},
        {"--json", false},       {"--stage", true},  {"--out", true},   {"--threads", true}, {"--object-order", true},
        {"--schema", true},      {"--grammar", true}};
    if (cli_parse_opts(argc, argv, o, O_COUNT)) return 1;
    const char* cmd = dump ? "dump" : "run";
    if (!o[O_MODEL].value || !o[O_IMAGE].value || !o[O_PROMPT].value)
        return cli_usage_error(NULL, "%s: --model PATH, --image FILE and --prompt TEXT are required", cmd);
    if (dump && (!o[O_STAGE].value || !o[O_OUT].value))
        return cli_usage_error(NULL, "%s: --stage NAME and --out FILE are required", cmd);
    MglGenParams gp = mgl_gen_default_params();
    MglModelParams mp = mgl_model_default_params();
    double v;
    if (o[O_MAXNEW].value) {
        if (!cli_num(o[O_MAXNEW].value, 1, 1e6, &v))
            return cli_usage_error(NULL, "--max-new-tokens '%s': expected 1..1000000", o[O_MAXNEW].value);
        gp.max_new_tokens = (int)v;
    }
    if (o[O_TEMP].value) {
        if (!cli_num(o[O_TEMP].value, 0, 100, &v))
            return cli_usage_error(NULL, "--temperature '%s': expected 0..100", o[O_TEMP].value);
        gp.temperature = (float)v;
    }
    if (o[O_TOPP].value) {
        if (!cli_num(o[O_TOPP].value, 1e-6, 1, &v))
            return cli_usage_error(NULL, "--top-p '%s': expected (0, 1]", o[O_TOPP].value);
        gp.top_p = (float)v;
    }
    if (o[O_TOPK].value) {
        if (!cli_num(o[O_TOPK].value, 0, 1e9, &v))
            return cli_usage_error(NULL, "--top-k '%s': expected >= 0", o[O_TOPK].value);
        gp.top_k = (int)v;
    }
    if (o[O_SEED].value) {
        if (!cli_num(o[O_SEED].value, 0, 1.8e19, &v))
            return cli_usage_error(NULL, "--seed '%s': expected a non-negative integer", o[O_SEED].value);
        gp.seed = (uint64_t)v;
    }
    if (o[O_THREADS].value) {
        if (!cli_num(o[O_THREADS].value, 1, 1024, &v))
            return cli_usage_error(NULL, "--threads '%s': expected 1..1024", o[O_THREADS].value);
        mp.n_threads = (int)v;
    }
    if (o[O_ORDER].value && mgl_object_order_parse(o[O_ORDER].value, &gp.object_order) != MGL_OK)
        return cli_usage_error(NULL, "--object-order '%s': expected model, score or reading", o[O_ORDER].value);
    if (o[O_DEVICE].value) mp.device = o[O_DEVICE].value;
    if (o[O_SCHEMA].value && o[O_GRAMMAR].value)
        return cli_usage_error(NULL, "%s: give --schema FILE or --grammar FILE, not both", "run");
    MglErr err = {0};
    char* constraint = NULL;
    const char* copt = o[O_SCHEMA].value ? "--schema" : "--grammar";
    const char* cpath = o[O_SCHEMA].value ? o[O_SCHEMA].value : o[O_GRAMMAR].value;
    if (cpath && !dump && !(constraint = cli_read_constraint(cpath, copt, &err))) return cli_fail(&err);
    MglGrammar* grammar = NULL;
    MglGrammarState* gstate = NULL;
    uint8_t* rgb = NULL;
    int w = 0, h = 0;
    Boxes bx = {0};
    MglModel* m = NULL;
    MglCtx* c = NULL;
    int rc = 1;
    if (mgl_image_load(o[O_IMAGE].value, &rgb, &w, &h, &err) != MGL_OK) {
        g_free(constraint);
        return cli_fail(&err);
    }
    if (o[O_BOXES].value && load_boxes(o[O_BOXES].value, &bx, &err) != MGL_OK) {
        g_free(constraint);
        free(rgb);
        return cli_fail(&err);
    }
    cli_progress_attach(&mp);
    if (mgl_model_load(o[O_MODEL].value, &mp, &m, &err) != MGL_OK) goto out;
    if (constraint) {
        MglStatus cst = o[O_SCHEMA].value ? mgl_grammar_from_schema(mgl_model_tokenizer(m), constraint, &grammar, &err)
                                          : mgl_grammar_from_gbnf(mgl_model_tokenizer(m), constraint, &grammar, &err);
        if (cst == MGL_OK) cst = mgl_grammar_state_new(grammar, &gstate, &err);
        if (cst != MGL_OK) {
            cli_err_prefix(&err, "%s (%s)", cpath, copt);
            goto out;
        }
    }
    MglImage img = {rgb, w, h, 3 * w};
    if (dump) {
        rc = mgl_cmd_dump_stage(m, &img, bx.boxes, bx.n, gp.object_order, o[O_PROMPT].value, o[O_STAGE].value,
                                o[O_OUT].value);
        goto done;
    }
    if (mgl_ctx_new(m, &c, &err) != MGL_OK) goto out;
    /* a constrained answer is printed whole once it is known to be complete, never streamed */
    RunState rs = {o[O_JSON].seen, !o[O_JSON].seen && !gstate && isatty(1), g_string_new(NULL)};
    gp.on_token = on_token;
    gp.user_data = &rs;
    if (gstate) mgl_grammar_state_bind(gstate, &gp);
    char* text = NULL;
    int32_t* ids = NULL;
    size_t nid = 0;
    MglTimings tm;
    MglStatus st = mgl_generate(c, &img, bx.boxes, bx.n, o[O_PROMPT].value, &gp, &text, &ids, &nid, &tm, &err);
    if (st != MGL_OK) {
        if (rs.tty) fputc('\n', stdout);
        g_string_free(rs.streamed, TRUE);
        goto out;
    }
    const char* ctext = NULL;
    MglGrammarResult cres = MGL_GRAMMAR_COMPLETE;
    if (gstate) {
        cres = mgl_grammar_state_finish(gstate, ids, nid, &ctext);
        MglGrammarStats gs;
        mgl_grammar_state_stats(gstate, &gs);
        if (gs.cut_short)
            fprintf(stderr,
                    "mgllava: run: warning: %llu of %llu token masks reached the work budget of one mask (a very "
                    "ambiguous %s): tokens it allows may have been left out (docs/structured-output.md)\n",
                    (unsigned long long)gs.cut_short, (unsigned long long)gs.masks,
                    o[O_SCHEMA].value ? "schema" : "grammar");
        if (cres != MGL_GRAMMAR_COMPLETE) {
            const int budget = gp.max_new_tokens > 0 ? gp.max_new_tokens : mgl_model_default_max_new_tokens(m);
            if (cres == MGL_GRAMMAR_INCOMPLETE)
                fprintf(stderr,
                        "mgllava: run: incomplete answer: %d generated tokens ended inside the %s's structure "
                        "(the budget is %d new tokens: raise --max-new-tokens)\n",
                        tm.n_generated, o[O_SCHEMA].value ? "schema" : "grammar", budget);
            else
                fprintf(stderr, "mgllava: run: the answer left the %s after %d tokens (no token could continue it)\n",
                        o[O_SCHEMA].value ? "schema" : "grammar", tm.n_generated);
            g_string_free(rs.streamed, TRUE);
            free(text);
            free(ids);
            rc = 1;
            goto done;
        }
        free(text);
        text = strdup(ctext);
    }
    if (rs.json) {
        GString* j = g_string_new("{\"text\": ");
        mgl_json_append_string(j, text);
        g_string_append(j, ", \"token_ids\": [");
        for (size_t i = 0; i < nid; i++) g_string_append_printf(j, i ? ", %d" : "%d", ids[i]);
        g_string_append_printf(j,
                               "], \"n_prompt_tokens\": %d, \"n_objects\": %d, \"timings_ms\": {\"preprocess\": %.3f, "
                               "\"vision\": %.3f, \"prefill\": %.3f, \"decode\": %.3f}",
                               tm.n_prompt_tokens, tm.n_objects, tm.preprocess_ms, tm.vision_ms, tm.prefill_ms,
                               tm.decode_ms);
        if (gstate) g_string_append_printf(j, ", \"constraint\": \"%s\"", mgl_grammar_result_name(cres));
        g_string_append(j, "}\n");
        fputs(j->str, stdout);
        g_string_free(j, TRUE);
    } else {
        if (rs.tty)
            fputc('\n', stdout); /* the answer was streamed */
        else
            printf("%s\n", text);
    }
    g_string_free(rs.streamed, TRUE);
    free(text);
    free(ids);
    rc = 0;
    goto done;
out:
    rc = cli_fail(&err);
done:
    mgl_grammar_state_free(gstate);
    mgl_grammar_free(grammar);
    g_free(constraint);
    mgl_ctx_free(c);
    mgl_model_free(m);
    boxes_clear(&bx);
    free(rgb);
    return rc;
}

/* `scenes`: the synthetic scene renderer writing PNG + ground-truth JSON. */
static int cmd_scenes(int argc, char** argv) {
    CliOpt o[] = {{"--count", true},  {"--seed", true},        {"--out", true},        {"--width", true},
                  {"--height", true}, {"--min-objects", true}, {"--max-objects", true}};
    if (cli_parse_opts(argc, argv, o, 7)) return 1;
    if (!o[0].value || !o[2].value) return cli_usage_error(NULL, "%s: --count N and --out DIR are required", "scenes");
    double count, seed = 0, w = 640, h = 480, mn = 1, mx = 6;
    if (!cli_num(o[0].value, 1, 1e7, &count)) return cli_usage_error(NULL, "--count '%s'", o[0].value);
    if (o[1].value && !cli_num(o[1].value, 0, 1.8e19, &seed)) return cli_usage_error(NULL, "--seed '%s'", o[1].value);
    if (o[3].value && !cli_num(o[3].value, 64, 8192, &w))
        return cli_usage_error(NULL, "--width '%s': 64..8192", o[3].value);
    if (o[4].value && !cli_num(o[4].value, 64, 8192, &h))
        return cli_usage_error(NULL, "--height '%s': 64..8192", o[4].value);
    if (o[5].value && !cli_num(o[5].value, 1, MGL_SCENE_MAX_OBJECTS, &mn))
        return cli_usage_error(NULL, "--min-objects '%s'", o[5].value);
    if (o[6].value && !cli_num(o[6].value, mn, MGL_SCENE_MAX_OBJECTS, &mx))
        return cli_usage_error(NULL, "--max-objects '%s'", o[6].value);
    if (g_mkdir_with_parents(o[2].value, 0755) != 0) {
        MglErr e;
        cli_err(&e, MGL_E_IO, "%s: cannot create folder", o[2].value);
        return cli_fail(&e);
    }
    int W = (int)w, H = (int)h;
    uint8_t* px = malloc((size_t)W * H * 3);
    for (long i = 0; i < (long)count; i++) {
        MglScene sc;
        mgl_scene_make(&sc, W, H, (uint64_t)seed, (int)i, (int)mn, (int)mx);
        /* a different moment of each scene's motion */
        int t = mgl_scene_still_frame(i);
        mgl_scene_render(&sc, t, px, W * 3, 3, false);
        char* png = g_strdup_printf("%s/scene_%06ld.png", o[2].value, i);
        char* js = g_strdup_printf("%s/scene_%06ld.json", o[2].value, i);
        int ok = cli_write_png_rgb(png, px, W, H);
        char* truth = mgl_scene_truth_json(&sc, t, -1);
        GError* ge = NULL;
        if (ok) ok = g_file_set_contents(js, truth, -1, &ge);
        free(truth);
        if (!ok) {
            MglErr e;
            cli_err(&e, MGL_E_IO, "%s: cannot write%s%s", ge ? js : png, ge ? ": " : "", ge ? ge->message : "");
            g_clear_error(&ge);
            g_free(png);
            g_free(js);
            free(px);
            return cli_fail(&e);
        }
        g_free(png);
        g_free(js);
    }
    free(px);
    printf("wrote %ld scenes to %s\n", (long)count, o[2].value);
    return 0;
}

int main(int argc, char** argv) {
    if (argc < 2) {
        usage(stderr);
        return 1;
    }
    const char* cmd = argv[1];
    if (!strcmp(cmd, "tokenize")) return cmd_tokenize(argc - 2, argv + 2);
    if (!strcmp(cmd, "detokenize")) return cmd_detokenize(argc - 2, argv + 2);
    if (!strcmp(cmd, "inspect")) return cmd_inspect(argc - 2, argv + 2);
    if (!strcmp(cmd, "convert")) return cmd_convert(argc - 2, argv + 2);
    if (!strcmp(cmd, "run")) return cmd_run(argc - 2, argv + 2, false);
    if (!strcmp(cmd, "bench")) return mgl_cmd_bench(argc - 2, argv + 2);
    if (!strcmp(cmd, "scenes")) return cmd_scenes(argc - 2, argv + 2);
    if (!strcmp(cmd, "eval-scenes")) return mgl_cmd_eval_scenes(argc - 2, argv + 2);
    if (!strcmp(cmd, "dump")) return cmd_run(argc - 2, argv + 2, true);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("mgllava %s\n", mgl_version());
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    return cli_usage_error(NULL, "unknown command '%s'", cmd);
}
