/* test-tok-spm: SentencePiece tokenizer.model files built by
 * tools/tokenizer/make_spm_fixture.py, read as AutoTokenizer reads a folder
 * with no tokenizer.json (transformers' Llama conversion). Ids and decoded
 * text must equal AutoTokenizer's under each tokenizer_config.json variant
 * (spm_hf.jsonl), and the stream must equal decode. */
#include "tok-test.h"

static int32_t* enc(const MglTokenizer* tok, const char* text, bool special, size_t* n) {
    int32_t* ids = NULL;
    MglErr err = {0};
    MglStatus st = mgl_tokenizer_encode(tok, text, -1, special, &ids, n, &err);
    CHECK(st == MGL_OK, "encode '%s': %s", text, err.msg);
    return ids;
}

/* A folder holding `file` (a fixture under tokenizer/, copied as `as`) and a
 * tokenizer_config.json of `config` (plus "tokenizer_class": "LlamaTokenizer"
 * when `llama`), loaded; NULL on failure. */
static MglTokenizer* load_variant(const char* root, const char* file, const char* as, JsonObject* config, bool llama,
                                  const char* key) {
    char* dir = g_build_filename(root, key, NULL);
    g_mkdir_with_parents(dir, 0755);
    char* src = g_build_filename(fixtures_dir(), "tokenizer", file, NULL);
    char* dst = g_build_filename(dir, as, NULL);
    char* data = NULL;
    gsize len = 0;
    bool ok = g_file_get_contents(src, &data, &len, NULL) && g_file_set_contents(dst, data, (gssize)len, NULL);
    g_free(data);
    JsonObject* c = json_object_new();
    if (llama) json_object_set_string_member(c, "tokenizer_class", "LlamaTokenizer");
    GList* members = json_object_get_members(config);
    for (GList* m = members; m; m = m->next)
        json_object_set_member(c, m->data, json_node_copy(json_object_get_member(config, m->data)));
    g_list_free(members);
    JsonNode* node = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(node, c);
    char* text = json_to_string(node, FALSE);
    json_node_unref(node);
    char* cfg = g_build_filename(dir, "tokenizer_config.json", NULL);
    ok = ok && g_file_set_contents(cfg, text, -1, NULL);
    MglTokenizer* tok = NULL;
    MglErr err = {0};
    if (ok && mgl_tokenizer_load(dir, &tok, &err) != MGL_OK) CHECK(false, "load %s (%s): %s", file, text, err.msg);
    CHECK(ok, "cannot write %s", dir);
    g_free(text);
    g_free(cfg);
    g_free(src);
    g_free(dst);
    g_free(dir);
    return tok;
}

static void remove_dir(char* dir) {
    if (dir) {
        char* cmd = g_strdup_printf("rm -rf '%s'", dir);
        CHECK(system(cmd) == 0, "rm %s", dir);
        g_free(cmd);
    }
    g_free(dir);
}

/* The tokenizer of a golden line's file (member `member`) and config, loaded
 * once per pair into `toks`; *key names the pair (g_free). */
static MglTokenizer* variant_for(GHashTable* toks, const char* root, JsonObject* o, const char* member, const char* as,
                                 bool llama, char** key) {
    const char* file = json_object_get_string_member(o, member);
    JsonNode* cn = json_object_get_member(o, "config");
    char* cs = json_to_string(cn, FALSE);
    *key = g_strdup_printf("%s %s", file, cs);
    g_free(cs);
    if (!g_hash_table_contains(toks, *key)) {
        char* sub = g_strdup_printf("v%u", g_hash_table_size(toks));
        g_hash_table_insert(toks, g_strdup(*key), load_variant(root, file, as, json_node_get_object(cn), llama, sub));
        g_free(sub);
    }
    return g_hash_table_lookup(toks, *key);
}

/* A golden line's text encoded (with or without special tokens) and checked against its ids in
 * `member`; the expected ids are returned (g_array_free) for the decode checks. */
static GArray* check_line_ids(MglTokenizer* tok, JsonObject* o, const char* member, bool special, const char* what) {
    const char* text = json_object_get_string_member(o, "text");
    GArray* want = json_ids(o, member);
    size_t n;
    int32_t* ids = enc(tok, text, special, &n);
    if (ids) check_ids(ids, n, want, what, text);
    free(ids);
    return want;
}

/* spm_hf.jsonl: both models under every tokenizer_config.json variant. */
static void test_hf_variants(void) {
    char* path = g_build_filename(fixtures_dir(), "tokenizer", "spm_hf.jsonl", NULL);
    GPtrArray* gold = read_jsonl(path);
    CHECK(gold && gold->len > 500, "cannot read %s", path);
    char* root = g_dir_make_tmp("tok-spm-XXXXXX", NULL);
    GHashTable* toks = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)mgl_tokenizer_free);
    size_t checked = 0;
    for (guint i = 0; gold && root && i < gold->len; i++) {
        JsonObject* o = json_node_get_object(gold->pdata[i]);
        char* key = NULL;
        MglTokenizer* tok = variant_for(toks, root, o, "model", "tokenizer.model", true, &key);
        if (!tok) {
            g_free(key);
            continue;
        }
        char* what = g_strdup_printf("%s:%u %s", path, i + 1, key);
        GArray* want = check_line_ids(tok, o, "ids", false, what);
        for (int skip = 0; skip < 2; skip++)
            check_decoded(tok, want, skip, json_object_get_string_member(o, skip ? "decoded_skip" : "decoded"), what);
        g_free(what);
        g_array_free(want, TRUE);
        g_free(key);
        checked++;
    }
    printf("spm: %zu lines of %s over %u tokenizers\n", checked, path, g_hash_table_size(toks));
    CHECK(g_hash_table_size(toks) == 12, "expected 2 models x 6 configs, got %u", g_hash_table_size(toks));
    g_hash_table_destroy(toks);
    remove_dir(root);
    if (gold) g_ptr_array_unref(gold);
    g_free(path);
}

/* post_hf.jsonl: ids with special tokens of a tokenizer.json folder. The
 * Llama-style classes build BOS/EOS from add_bos_token / add_eos_token and
 * drop tokenizer.json's post-processor; other classes keep it. */
static void test_post_variants(void) {
    char* path = g_build_filename(fixtures_dir(), "tokenizer", "post_hf.jsonl", NULL);
    GPtrArray* gold = read_jsonl(path);
    CHECK(gold && gold->len >= 80, "cannot read %s", path);
    char* root = g_dir_make_tmp("tok-post-XXXXXX", NULL);
    GHashTable* toks = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)mgl_tokenizer_free);
    for (guint i = 0; gold && root && i < gold->len; i++) {
        JsonObject* o = json_node_get_object(gold->pdata[i]);
        char* key = NULL;
        MglTokenizer* tok = variant_for(toks, root, o, "tokenizer", "tokenizer.json", false, &key);
        if (tok) {
            char* what = g_strdup_printf("%s:%u %s (with specials)", path, i + 1, key);
            g_array_free(check_line_ids(tok, o, "ids", true, what), TRUE);
            g_free(what);
            what = g_strdup_printf("%s:%u %s", path, i + 1, key);
            GArray* want = check_line_ids(tok, o, "ids_plain", false, what);
            check_decoded(tok, want, true, json_object_get_string_member(o, "decoded_skip"), what);
            g_free(what);
            g_array_free(want, TRUE);
        }
        g_free(key);
    }
    CHECK(g_hash_table_size(toks) == 16, "expected 2 tokenizers x 8 configs, got %u", g_hash_table_size(toks));
    g_hash_table_destroy(toks);
    remove_dir(root);
    if (gold) g_ptr_array_unref(gold);
    g_free(path);
}

/* A folder with both tokenizer.json and tokenizer.model: AutoTokenizer reads
 * tokenizer.json unless the config sets add_prefix_space (not null) or
 * from_slow, when LlamaTokenizerFast converts tokenizer.model in __init__,
 * where an absent add_prefix_space is None. The ids are AutoTokenizer's
 * (transformers 4.45.2) for " hello world" in such a folder holding
 * spm_bpe.model and tiny_metaspace/tokenizer.json. */
static void test_both_files(void) {
    static const struct {
        const char* config;
        int n_vocab;
        int n;
        int32_t ids[8];
    } cases[] = {
        {"{\"tokenizer_class\": \"LlamaTokenizer\"}", 857, 6, {502, 203, 56, 287, 59, 286}},
        {"{\"tokenizer_class\": \"LlamaTokenizer\", \"add_prefix_space\": null}", 857, 6, {502, 203, 56, 287, 59, 286}},
        {"{\"tokenizer_class\": \"LlamaTokenizer\", \"add_prefix_space\": true}",
         1200,
         7,
         {1064, 503, 314, 1071, 395, 1069, 394}},
        {"{\"tokenizer_class\": \"LlamaTokenizer\", \"add_prefix_space\": false}",
         1200,
         6,
         {503, 314, 1071, 395, 1069, 394}},
        {"{\"tokenizer_class\": \"LlamaTokenizer\", \"from_slow\": true}", 1200, 6, {503, 314, 1071, 395, 1069, 394}},
        {"{\"tokenizer_class\": \"PreTrainedTokenizerFast\", \"add_prefix_space\": true}",
         857,
         6,
         {502, 203, 56, 287, 59, 286}},
    };
    char* dir = g_dir_make_tmp("tok-both-XXXXXX", NULL);
    CHECK(dir, "tmp dir");
    if (!dir) return;
    const char* files[][2] = {{"spm_bpe.model", "tokenizer.model"},
                              {"tiny_metaspace/tokenizer.json", "tokenizer.json"}};
    for (int f = 0; f < 2; f++) {
        char* src = g_build_filename(fixtures_dir(), "tokenizer", files[f][0], NULL);
        char* dst = g_build_filename(dir, files[f][1], NULL);
        char* data = NULL;
        gsize len = 0;
        CHECK(g_file_get_contents(src, &data, &len, NULL) && g_file_set_contents(dst, data, (gssize)len, NULL),
              "copy %s", src);
        g_free(data);
        g_free(src);
        g_free(dst);
    }
    char* cfg = g_build_filename(dir, "tokenizer_config.json", NULL);
    for (size_t k = 0; k < G_N_ELEMENTS(cases); k++) {
        CHECK(g_file_set_contents(cfg, cases[k].config, -1, NULL), "write %s", cfg);
        MglTokenizer* tok = NULL;
        MglErr err = {0};
        if (mgl_tokenizer_load(dir, &tok, &err) != MGL_OK) {
            CHECK(false, "load with %s: %s", cases[k].config, err.msg);
            continue;
        }
        CHECK(mgl_tokenizer_n_vocab(tok) == cases[k].n_vocab, "%s: n_vocab %d, want %d", cases[k].config,
              mgl_tokenizer_n_vocab(tok), cases[k].n_vocab);
        size_t n;
        int32_t* ids = enc(tok, " hello world", false, &n);
        bool same = ids && n == (size_t)cases[k].n && !memcmp(ids, cases[k].ids, n * sizeof *ids);
        char* got = ids ? ids_str(ids, n) : g_strdup("(none)");
        CHECK(same, "%s: ids %s", cases[k].config, got);
        g_free(got);
        free(ids);
        mgl_tokenizer_free(tok);
    }
    g_free(cfg);
    remove_dir(dir);
}

int main(void) {
    test_hf_variants();
    test_post_variants();
    test_both_files();
    char* model = g_build_filename(fixtures_dir(), "tokenizer", "spm_bpe.model", NULL);
    MglTokenizer* tok = NULL;
    MglErr err = {0};
    MglStatus st = mgl_tokenizer_load(model, &tok, &err);
    if (st != MGL_OK) {
        fprintf(stderr, "FAIL: load %s: %s\n", model, err.msg);
        return 1;
    }
    CHECK(mgl_tokenizer_n_vocab(tok) == 1200, "n_vocab %d", mgl_tokenizer_n_vocab(tok));
    CHECK(mgl_tokenizer_bos(tok) == 1 && mgl_tokenizer_eos(tok) == 2, "bos %d eos %d", mgl_tokenizer_bos(tok),
          mgl_tokenizer_eos(tok));
    CHECK(mgl_tokenizer_token_id(tok, "<unk>") == 0 && mgl_tokenizer_token_id(tok, "<image>") == 3, "token ids");
    CHECK(mgl_tokenizer_is_special(tok, 1) && mgl_tokenizer_is_special(tok, 0) && !mgl_tokenizer_is_special(tok, 3),
          "is_special");
    CHECK(mgl_tokenizer_token_id(tok, "<0x0A>") > 0, "byte pieces present");

    char* gpath = g_build_filename(fixtures_dir(), "tokenizer", "spm_bpe_golden.jsonl", NULL);
    GPtrArray* gold = read_jsonl(gpath);
    CHECK(gold && gold->len > 10, "cannot read %s", gpath);
    for (guint i = 0; gold && i < gold->len; i++) {
        JsonObject* o = json_node_get_object(gold->pdata[i]);
        const char* text = json_object_get_string_member(o, "text");
        GArray* want = json_ids(o, "ids");
        size_t n;
        int32_t* ids = enc(tok, text, false, &n);
        char* what = g_strdup_printf("%s:%u", gpath, i + 1);
        if (ids) check_ids(ids, n, want, what, text);
        g_free(what);
        free(ids);
        /* with specials: BOS first (LlamaTokenizer default add_bos_token) */
        ids = enc(tok, text, true, &n);
        CHECK(ids && n == want->len + 1 && ids[0] == 1, "%s:%u BOS", gpath, i + 1);
        free(ids);
        g_array_free(want, TRUE);
    }
    if (gold) g_ptr_array_unref(gold);
    g_free(gpath);

    char* dpath = g_build_filename(fixtures_dir(), "tokenizer", "spm_bpe_decode.jsonl", NULL);
    GPtrArray* dec = read_jsonl(dpath);
    CHECK(dec && dec->len > 10, "cannot read %s", dpath);
    for (guint i = 0; dec && i < dec->len; i++) {
        JsonObject* o = json_node_get_object(dec->pdata[i]);
        GArray* ids = json_ids(o, "ids");
        const char* want = json_object_get_string_member(o, "text");
        char* what = g_strdup_printf("%s:%u", dpath, i + 1);
        check_decoded(tok, ids, true, want, what);
        g_free(what);
        g_array_free(ids, TRUE);
    }
    if (dec) g_ptr_array_unref(dec);
    g_free(dpath);

    /* Newlines: "\n" has no piece and falls back to <0x0A>; the text survives a round trip. */
    const char* nl_texts[] = {"a\nb", "\n", "\n\n\n", "line one\nline two\r\n", " x \n y "};
    int32_t nl = mgl_tokenizer_token_id(tok, "<0x0A>");
    for (size_t k = 0; k < G_N_ELEMENTS(nl_texts); k++) {
        size_t n;
        int32_t* ids = enc(tok, nl_texts[k], false, &n);
        bool has = false;
        for (size_t q = 0; q < n; q++) has |= ids[q] == nl;
        CHECK(has, "'%s' should use <0x0A>", nl_texts[k]);
        char* back = check_decode(tok, ids, n, true, nl_texts[k]);
        CHECK(strcmp(back, nl_texts[k]) == 0, "round trip '%s' -> '%s'", nl_texts[k], back);
        g_free(back);
        free(ids);
    }

    /* Control pieces in text are special tokens (as the HF Llama tokenizer does). */
    size_t n;
    int32_t* ids = enc(tok, "a<s>b</s>", false, &n);
    bool has_bos = false, has_eos = false;
    for (size_t q = 0; q < n; q++) {
        has_bos |= ids[q] == 1;
        has_eos |= ids[q] == 2;
    }
    CHECK(has_bos && has_eos, "<s> and </s> in text must map to their ids");
    char* back = check_decode(tok, ids, n, false, "specials");
    CHECK(strcmp(back, "a<s> b</s>") == 0, "decode with specials: '%s'", back);
    g_free(back);
    back = check_decode(tok, ids, n, true, "specials skip");
    CHECK(strcmp(back, "a b") == 0, "decode skipping specials: '%s'", back);
    g_free(back);
    free(ids);

    ids = enc(tok, "", true, &n);
    CHECK(n == 1 && ids[0] == 1, "empty text with specials -> [BOS]");
    free(ids);
    ids = enc(tok, "", false, &n);
    CHECK(n == 0, "empty text -> []");
    free(ids);

    mgl_tokenizer_free(tok);
    g_free(model);
    printf("spm: %d failures\n", g_failures);
    return g_failures ? 1 : 0;
}
