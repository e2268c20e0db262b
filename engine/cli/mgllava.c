/* mgllava: command-line tool of libmgllava.
 *
 *   mgllava tokenize   --tokenizer PATH [--special]      stdin text -> JSON ids
 *   mgllava detokenize --tokenizer PATH [--skip-special] stdin JSON ids -> text
 *   mgllava inspect    --model PATH                      validate + summarise a model, or list a weights file
 *   mgllava convert    --model PATH --out DIR [--dtype f16|bf16|f32]
 *
 * Errors: one line on stderr naming the file and the problem, exit status 1. */
#include "mgl-internal.h"
#include "mgl-json.h"
#include "mgl-model-files.h"

#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_STDIN (256u << 20)

static int fail(const MglErr* e) {
    fprintf(stderr, "mgllava: %s\n", e->msg[0] ? e->msg : mgl_status_to_string(e->code));
    return 1;
}

static int usage_error(const char* fmt, const char* arg) {
    fprintf(stderr, "mgllava: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (try 'mgllava help')\n");
    return 1;
}

static void usage(FILE* f) {
    fputs("usage: mgllava COMMAND [OPTIONS]\n"
          "  tokenize   --tokenizer PATH [--special]       read UTF-8 text on stdin, print a JSON array of ids\n"
          "  detokenize --tokenizer PATH [--skip-special]  read a JSON array of ids on stdin, print the text\n"
          "  inspect    --model PATH                       validate and summarise a model folder (mgllava.json),\n"
          "                                                or list the tensors of a .safetensors/.pth/.bin file\n"
          "  convert    --model PATH --out DIR [--dtype f16|bf16|f32]\n"
          "                                                pack a model into one folder of safetensors (mmap-loadable)\n"
          "  version\n",
          f);
}

/* Tiny option parser: "--name value" and "--flag". */
typedef struct { const char* name; bool has_value; const char* value; bool seen; } Opt;

static int parse_opts(int argc, char** argv, Opt* opts, size_t n) {
    for (int i = 0; i < argc; i++) {
        size_t k = 0;
        for (; k < n; k++) {
            size_t l = strlen(opts[k].name);
            if (strncmp(argv[i], opts[k].name, l) == 0 && (argv[i][l] == 0 || argv[i][l] == '=')) break;
        }
        if (k == n) return usage_error("unknown option '%s'", argv[i]);
        opts[k].seen = true;
        if (opts[k].has_value) {
            const char* eq = strchr(argv[i], '=');
            if (eq) opts[k].value = eq + 1;
            else if (i + 1 < argc) opts[k].value = argv[++i];
            else return usage_error("option '%s' needs a value", opts[k].name);
        }
    }
    return 0;
}

static char* read_stdin(size_t* len, MglErr* err) {
    size_t cap = 1 << 16, n = 0;
    char* buf = malloc(cap + 1);
    for (;;) {
        if (n == cap) {
            if (cap >= MAX_STDIN) {
                free(buf);
                mgl_err(err, MGL_E_INVALID, "stdin: input larger than %u bytes", MAX_STDIN);
                return NULL;
            }
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
        ssize_t r = read(0, buf + n, cap - n);
        if (r < 0) {
            free(buf);
            mgl_err(err, MGL_E_IO, "stdin: read error");
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
    Opt o[] = {{"--tokenizer", true}, {"--special", false}};
    if (parse_opts(argc, argv, o, 2)) return 1;
    if (!o[0].value) return usage_error("%s: --tokenizer PATH is required", "tokenize");
    MglErr err = {0};
    MglTokenizer* tok = NULL;
    if (mgl_tokenizer_load(o[0].value, &tok, &err) != MGL_OK) return fail(&err);
    size_t len = 0;
    char* text = read_stdin(&len, &err);
    if (!text) {
        mgl_tokenizer_free(tok);
        return fail(&err);
    }
    int32_t* ids = NULL;
    size_t n = 0;
    MglStatus st = mgl_tokenizer_encode(tok, text, (ptrdiff_t)len, o[1].seen, &ids, &n, &err);
    free(text);
    mgl_tokenizer_free(tok);
    if (st != MGL_OK) {
        mgl_err_prefix(&err, "stdin");
        return fail(&err);
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
    Opt o[] = {{"--tokenizer", true}, {"--skip-special", false}};
    if (parse_opts(argc, argv, o, 2)) return 1;
    if (!o[0].value) return usage_error("%s: --tokenizer PATH is required", "detokenize");
    MglErr err = {0};
    size_t len = 0;
    char* text = read_stdin(&len, &err);
    if (!text) return fail(&err);
    JsonParser* p = json_parser_new_immutable();
    GError* ge = NULL;
    int rc = 1;
    int32_t* ids = NULL;
    MglTokenizer* tok = NULL;
    if (!g_utf8_validate(text, (gssize)len, NULL) || !json_parser_load_from_data(p, text, (gssize)len, &ge)) {
        mgl_err(&err, MGL_E_INVALID, "stdin: not a JSON array of token ids%s%s", ge ? ": " : "", ge ? ge->message : "");
        g_clear_error(&ge);
        goto out;
    }
    JsonNode* root = json_parser_get_root(p);
    if (!root || !JSON_NODE_HOLDS_ARRAY(root)) {
        mgl_err(&err, MGL_E_INVALID, "stdin: expected a JSON array of token ids");
        goto out;
    }
    JsonArray* a = json_node_get_array(root);
    guint n = json_array_get_length(a);
    ids = malloc((n ? n : 1) * sizeof *ids);
    for (guint i = 0; i < n; i++) {
        JsonNode* e = json_array_get_element(a, i);
        if (!JSON_NODE_HOLDS_VALUE(e) || json_node_get_value_type(e) != G_TYPE_INT64 || json_node_get_int(e) < 0 ||
            json_node_get_int(e) > INT32_MAX) {
            mgl_err(&err, MGL_E_INVALID, "stdin: element %u is not a token id", i);
            goto out;
        }
        ids[i] = (int32_t)json_node_get_int(e);
    }
    if (mgl_tokenizer_load(o[0].value, &tok, &err) != MGL_OK) goto out;
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
    return rc ? fail(&err) : 0;
}

static int list_weights(const char* path) {
    MglErr err = {0};
    MglTensorSet* set = mgl_tset_new();
    if (mgl_weights_load(path, set, &err) != MGL_OK) {
        mgl_tset_free(set);
        return fail(&err);
    }
    uint64_t total = 0;
    size_t count[MGL_DT_COUNT] = {0};
    for (size_t i = 0; i < set->n; i++) {
        const MglTensor* t = &set->items[i];
        char shape[160] = "";
        size_t k = 0;
        for (int d = 0; d < t->ndim; d++)
            k += (size_t)snprintf(shape + k, sizeof shape - k, d ? ", %lld" : "%lld", (long long)t->shape[d]);
        printf("%-64s %-5s [%s] %zu bytes%s\n", t->name, mgl_dtype_name(t->dtype), shape, mgl_tensor_nbytes(t),
               mgl_tensor_is_contiguous(t) ? "" : " (strided view)");
        total += mgl_tensor_nbytes(t);
        count[t->dtype]++;
    }
    printf("%zu tensors, %llu bytes (", set->n, (unsigned long long)total);
    bool first = true;
    for (int d = 0; d < MGL_DT_COUNT; d++)
        if (count[d]) {
            printf("%s%s x%zu", first ? "" : ", ", mgl_dtype_name((MglDType)d), count[d]);
            first = false;
        }
    printf(")\n");
    mgl_tset_free(set);
    return 0;
}

static int cmd_inspect(int argc, char** argv) {
    Opt o[] = {{"--model", true}};
    if (parse_opts(argc, argv, o, 1)) return 1;
    if (!o[0].value) return usage_error("%s: --model PATH is required", "inspect");
    const char* path = o[0].value;
    bool model = g_file_test(path, G_FILE_TEST_IS_DIR) || g_str_has_suffix(path, "mgllava.json");
    if (!model) {
        if (!g_file_test(path, G_FILE_TEST_EXISTS)) {
            MglErr e;
            mgl_err(&e, MGL_E_IO, "%s: no such file or folder", path);
            return fail(&e);
        }
        return list_weights(path);
    }
    MglErr err = {0};
    MglModelFiles* mf = NULL;
    if (mgl_model_files_open(path, &mf, &err) != MGL_OK) return fail(&err);
    MglStatus st = mgl_model_files_validate(mf, &err);
    char* d = mgl_model_files_describe(mf);
    fputs(d, stdout);
    g_free(d);
    if (st == MGL_OK) {
        MglTokenizer* tok = NULL;
        st = mgl_tokenizer_load(mf->tokenizer_path, &tok, &err);
        if (st == MGL_OK) {
            printf("              %d tokens, bos %d, eos %d\n", mgl_tokenizer_n_vocab(tok), mgl_tokenizer_bos(tok),
                   mgl_tokenizer_eos(tok));
            if (mgl_tokenizer_n_vocab(tok) > mf->llm.vocab) {
                st = mgl_err(&err, MGL_E_FORMAT, "%s: tokenizer has %d tokens but the LLM vocab is %d",
                             mf->tokenizer_path, mgl_tokenizer_n_vocab(tok), mf->llm.vocab);
            }
            mgl_tokenizer_free(tok);
        }
    }
    mgl_model_files_free(mf);
    if (st != MGL_OK) return fail(&err);
    printf("status        OK\n");
    return 0;
}

static int cmd_convert(int argc, char** argv) {
    Opt o[] = {{"--model", true}, {"--out", true}, {"--dtype", true}};
    if (parse_opts(argc, argv, o, 3)) return 1;
    if (!o[0].value || !o[1].value) return usage_error("%s: --model PATH and --out DIR are required", "convert");
    const char* ds = o[2].value ? o[2].value : "f16";
    MglDType dt;
    if (!strcmp(ds, "f16")) dt = MGL_DT_F16;
    else if (!strcmp(ds, "bf16")) dt = MGL_DT_BF16;
    else if (!strcmp(ds, "f32")) dt = MGL_DT_F32;
    else return usage_error("--dtype '%s': expected f16, bf16 or f32", ds);
    MglErr err = {0};
    if (mgl_model_convert(o[0].value, o[1].value, dt, &err) != MGL_OK) return fail(&err);
    printf("wrote %s (%s)\n", o[1].value, ds);
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
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("mgllava %s\n", mgl_version());
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    return usage_error("unknown command '%s'", cmd);
}
