/* test-tok-cleanup: answer text as transformers decodes it, clean-up of
 * tokenization spaces included (" ." -> "." and the nine other rules).
 *
 * 1. tests/fixtures/tokenizer/cleanup_hf.jsonl (tools/tokenizer/hf_cleanup_goldens.py, run with
 *    the transformers the official MG-LLaVA code ran on): for every tokenizer family here
 *    (SentencePiece-style Vicuna/Phi-3, byte-level Llama-3), with its own tokenizer_config.json or
 *    one that flips the flag, the resolved flag and decode() and the streaming detokenizer on ids
 *    of texts with punctuation after spaces: with specials kept and skipped, with the default
 *    clean-up and with it forced on and off.
 * 2. The default when tokenizer_config.json does not set the flag: the tokenizer class it names,
 *    else config.json's, else its model_type's, else the kind of tokenizer file. */
#include "tok-test.h"

#include <glib/gstdio.h>

static char* tmp_root;

/* A folder holding a copy of `tok_file` (as `as`) and, when non-NULL, the
 * given tokenizer_config.json and config.json texts. */
static char* make_folder(const char* tok_file, const char* as, const char* tok_cfg, const char* model_cfg) {
    static int n = 0;
    char* name = g_strdup_printf("t%d", n++);
    char* dir = g_build_filename(tmp_root, name, NULL);
    g_free(name);
    g_mkdir(dir, 0700);
    gchar* data = NULL;
    gsize len = 0;
    if (!g_file_get_contents(tok_file, &data, &len, NULL)) {
        CHECK(false, "cannot read %s", tok_file);
        return dir;
    }
    char* p = g_build_filename(dir, as, NULL);
    g_file_set_contents(p, data, (gssize)len, NULL);
    g_free(p);
    g_free(data);
    if (tok_cfg) {
        p = g_build_filename(dir, "tokenizer_config.json", NULL);
        g_file_set_contents(p, tok_cfg, -1, NULL);
        g_free(p);
    }
    if (model_cfg) {
        p = g_build_filename(dir, "config.json", NULL);
        g_file_set_contents(p, model_cfg, -1, NULL);
        g_free(p);
    }
    return dir;
}

static void rm_tree(const char* dir) {
    GDir* d = g_dir_open(dir, 0, NULL);
    if (!d) return;
    const char* e;
    while ((e = g_dir_read_name(d))) {
        char* p = g_build_filename(dir, e, NULL);
        if (g_file_test(p, G_FILE_TEST_IS_DIR))
            rm_tree(p);
        else
            g_unlink(p);
        g_free(p);
    }
    g_dir_close(d);
    g_rmdir(dir);
}

static MglTokenizer* load(const char* dir) {
    MglTokenizer* t = NULL;
    MglErr err = {0};
    if (mgl_tokenizer_load(dir, &t, &err) != MGL_OK) {
        CHECK(false, "load %s: %s", dir, err.msg);
        return NULL;
    }
    return t;
}

static void check_text(MglTokenizer* t, JsonObject* o, const char* key, bool skip, int clean, const char* what) {
    const char* want = json_object_get_string_member(o, key);
    GArray* ids = json_ids(o, "ids");
    bool saved = mgl_tokenizer_clean_up_spaces(t);
    if (clean >= 0) mgl_tokenizer_set_clean_up_spaces(t, clean != 0);
    char* got = check_decode(t, (const int32_t*)ids->data, ids->len, skip, what); /* decode == stream */
    CHECK(strcmp(got, want) == 0, "%s %s\n  text '%s'\n  got  '%s'\n  want '%s'", what, key,
          json_object_get_string_member(o, "text"), got, want);
    mgl_tokenizer_set_clean_up_spaces(t, saved);
    g_free(got);
    g_array_free(ids, TRUE);
}

static int check_goldens(void) {
    char* path = g_build_filename(fixtures_dir(), "tokenizer", "cleanup_hf.jsonl", NULL);
    GPtrArray* lines = read_jsonl(path);
    CHECK(lines && lines->len > 1, "cannot read %s", path);
    const char* shared = shared_testdata();
    MglTokenizer* t = NULL;
    char* tdir = NULL;
    bool skip_tok = false;
    int cases = 0, tokenizers = 0, skipped = 0;
    for (guint i = 0; lines && i < lines->len; i++) {
        JsonObject* o = json_node_get_object(lines->pdata[i]);
        if (json_object_has_member(o, "generator")) {
            printf("goldens from transformers %s (tokenizers %s)\n", json_object_get_string_member(o, "transformers"),
                   json_object_get_string_member(o, "tokenizers"));
            continue;
        }
        char* what = g_strdup_printf("%s:%u", path, i + 1);
        if (json_object_has_member(o, "tokenizer")) {
            mgl_tokenizer_free(t);
            t = NULL;
            g_free(tdir);
            tdir = NULL;
            const char* name = json_object_get_string_member(o, "tokenizer");
            const char* folder = json_object_get_string_member(o, "folder");
            bool is_shared = g_str_has_prefix(folder, "shared:");
            skip_tok = is_shared && !shared;
            if (skip_tok) {
                printf("skip %s (no shared test data)\n", name);
                skipped++;
                g_free(what);
                continue;
            }
            char* src = g_build_filename(is_shared ? shared : fixtures_dir(), strchr(folder, ':') + 1, NULL);
            JsonNode* cfg = json_object_get_member(o, "tokenizer_config");
            if (cfg && !JSON_NODE_HOLDS_NULL(cfg)) {
                char* cfg_text = json_to_string(cfg, FALSE);
                char* tj = g_build_filename(src, "tokenizer.json", NULL);
                tdir = make_folder(tj, "tokenizer.json", cfg_text, NULL);
                g_free(tj);
                g_free(cfg_text);
                t = load(tdir);
            } else {
                t = load(src);
            }
            g_free(src);
            bool want = json_object_get_boolean_member(o, "clean_up");
            if (t)
                CHECK(mgl_tokenizer_clean_up_spaces(t) == want, "%s: %s (%s) resolves clean-up %d, transformers %d",
                      what, name, json_object_get_string_member(o, "class"), mgl_tokenizer_clean_up_spaces(t), want);
            printf("%-26s %-24s clean_up_tokenization_spaces=%s\n", name, json_object_get_string_member(o, "class"),
                   want ? "true" : "false");
            tokenizers++;
        } else if (t && !skip_tok) {
            check_text(t, o, "decoded", false, -1, what);
            check_text(t, o, "decoded_skip", true, -1, what);
            check_text(t, o, "decoded_skip_clean", true, 1, what);
            check_text(t, o, "decoded_skip_raw", true, 0, what);
            cases++;
        }
        g_free(what);
    }
    mgl_tokenizer_free(t);
    if (tdir) g_free(tdir);
    if (lines) g_ptr_array_unref(lines);
    g_free(path);
    printf("%d tokenizers (%d skipped), %d cases\n", tokenizers, skipped, cases);
    return cases;
}

/* The default when tokenizer_config.json leaves the flag out. */
static void check_defaults(void) {
    char* tj = g_build_filename(fixtures_dir(), "tokenizer", "tiny_gpt2", "tokenizer.json", NULL);
    char* spm = g_build_filename(fixtures_dir(), "tokenizer", "spm_bpe.model", NULL);
    static const struct {
        const char* tok_cfg;
        const char* model_cfg;
        bool spm;
        bool want;
    } cases[] = {
        {"{\"tokenizer_class\": \"LlamaTokenizer\"}", NULL, false, false},
        {"{\"tokenizer_class\": \"LlamaTokenizerFast\"}", NULL, false, false},
        {"{\"tokenizer_class\": \"CodeLlamaTokenizer\"}", NULL, false, false},
        {"{\"tokenizer_class\": \"GemmaTokenizerFast\"}", NULL, false, false},
        {"{\"tokenizer_class\": \"PreTrainedTokenizerFast\"}", NULL, false, true},
        {"{\"tokenizer_class\": \"Qwen2Tokenizer\"}", NULL, false, true}, /* its Fast twin has no own default */
        {"{\"tokenizer_class\": \"GPT2Tokenizer\"}", NULL, false, true},
        {"{}", "{\"model_type\": \"llama\"}", false, false},
        {"{}", "{\"model_type\": \"phi3\"}", false, false},
        {"{}", "{\"model_type\": \"mistral\"}", false, false},
        {"{}", "{\"model_type\": \"qwen2\"}", false, true},
        {"{}", "{\"model_type\": \"gpt2\"}", false, true},
        {"{}", "{\"model_type\": \"gpt2\", \"tokenizer_class\": \"LlamaTokenizer\"}", false, false},
        {"{\"tokenizer_class\": \"PreTrainedTokenizerFast\"}", "{\"model_type\": \"llama\"}", false, true},
        {NULL, NULL, false, true}, /* a bare tokenizer.json: PreTrainedTokenizerFast */
        {NULL, NULL, true, false}, /* a bare tokenizer.model: LlamaTokenizer */
        {"{\"tokenizer_class\": \"LlamaTokenizer\", \"clean_up_tokenization_spaces\": true}", NULL, false, true},
        {"{\"tokenizer_class\": \"GPT2Tokenizer\", \"clean_up_tokenization_spaces\": false}", NULL, false, false},
        /* any other JSON value: Python's truth of it */
        {"{\"clean_up_tokenization_spaces\": null}", NULL, false, false},
        {"{\"tokenizer_class\": \"LlamaTokenizer\", \"clean_up_tokenization_spaces\": \"no\"}", NULL, false, true},
        {"{\"clean_up_tokenization_spaces\": 0}", NULL, false, false},
        {"{\"tokenizer_class\": \"LlamaTokenizer\", \"clean_up_tokenization_spaces\": 1}", NULL, false, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char* dir = make_folder(cases[i].spm ? spm : tj, cases[i].spm ? "tokenizer.model" : "tokenizer.json",
                                cases[i].tok_cfg, cases[i].model_cfg);
        MglTokenizer* t = load(dir);
        if (t)
            CHECK(mgl_tokenizer_clean_up_spaces(t) == cases[i].want, "default %zu: tokenizer_config %s, config %s: %d",
                  i, cases[i].tok_cfg ? cases[i].tok_cfg : "(none)", cases[i].model_cfg ? cases[i].model_cfg : "(none)",
                  mgl_tokenizer_clean_up_spaces(t));
        mgl_tokenizer_free(t);
        g_free(dir);
    }
    /* the rules, in their order, on a byte-level tokenizer that round-trips any text */
    char* dir = make_folder(tj, "tokenizer.json", NULL, NULL);
    MglTokenizer* t = load(dir);
    static const char* const pairs[][2] = {
        {"a ' 's", "a''s"},    /* " ' " first */
        {"x  ' s", "x's"},     /* then " 's" on the output of " ' " */
        {"x ' . y", "x '. y"}, /* " ." first: " ' " no longer matches */
        {"  .", " ."},         /* one pass, no rescan */
        {"do n't , ok", "don't, ok"},
        {"end ' ", "end'"},
        {" ?!", "?!"},
        {"", ""},
        {" ", " "},
        {" '", " '"},
        {" 'v", " 'v"},
        {" n't'", "n't'"},
    };
    for (size_t i = 0; t && i < sizeof pairs / sizeof pairs[0]; i++) {
        int32_t* ids = NULL;
        size_t n = 0;
        MglErr err = {0};
        CHECK(mgl_tokenizer_encode(t, pairs[i][0], -1, false, &ids, &n, &err) == MGL_OK, "encode: %s", err.msg);
        char* got = check_decode(t, ids, n, true, pairs[i][0]);
        CHECK(strcmp(got, pairs[i][1]) == 0, "clean-up of '%s': '%s', want '%s'", pairs[i][0], got, pairs[i][1]);
        g_free(got);
        free(ids);
    }
    mgl_tokenizer_free(t);
    g_free(dir);
    g_free(tj);
    g_free(spm);
}

int main(void) {
    tmp_root = g_dir_make_tmp("mgl-tok-cleanup-XXXXXX", NULL);
    if (!tmp_root) {
        fprintf(stderr, "FAIL: no temporary folder\n");
        return 1;
    }
    int cases = check_goldens();
    CHECK(cases > 100, "only %d golden cases checked", cases);
    check_defaults();
    rm_tree(tmp_root);
    g_free(tmp_root);
    printf("%d failure(s)\n", g_failures);
    return g_failures ? 1 : 0;
}
