/* test-tok-golden: one shared tokenizer.json (argv[1]: sp32k or llama3)
 * against the shared golden.jsonl (ids with and without specials) and the
 * HF-made goldens in tests/fixtures/tokenizer/<name>_hf.jsonl (ids, decode
 * with and without skip_special, decode of hand-picked id sequences); the
 * streaming detokenizer must agree with decode() on all of them. */
#include "tok-test.h"

static void check_encode_len(const MglTokenizer* tok, const char* text, size_t len, bool special, const GArray* want,
                             const char* src, int line) {
    int32_t* ids = NULL;
    size_t n = 0;
    MglErr err = {0};
    MglStatus st = mgl_tokenizer_encode(tok, text, (ptrdiff_t)len, special, &ids, &n, &err);
    CHECK(st == MGL_OK, "%s:%d encode failed: %s", src, line, err.msg);
    if (st != MGL_OK) return;
    char* what = g_strdup_printf("%s:%d special=%d text", src, line, special);
    check_ids(ids, n, want, what, text);
    g_free(what);
    free(ids);
}

static void check_encode(const MglTokenizer* tok, const char* text, bool special, const GArray* want, const char* src,
                         int line) {
    check_encode_len(tok, text, strlen(text), special, want, src, line);
}

int main(int argc, char** argv) {
    if (argc < 2) return 2;
    const char* name = argv[1];
    const char* shared = shared_testdata();
    if (!shared) {
        fprintf(stderr, "SKIP: no shared test data\n");
        return 77;
    }
    char* folder = g_build_filename(shared, "tokenizers", name, NULL);
    if (!path_exists(folder)) {
        fprintf(stderr, "SKIP: %s missing\n", folder);
        g_free(folder);
        return 77;
    }
    MglTokenizer* tok = NULL;
    MglErr err = {0};
    double t0 = now_s();
    MglStatus st = mgl_tokenizer_load(folder, &tok, &err);
    double dt = now_s() - t0;
    if (st != MGL_OK) {
        fprintf(stderr, "FAIL: load %s: %s\n", folder, err.msg);
        return 1;
    }
    printf("%s: loaded in %.3f s, n_vocab %d, bos %d, eos %d\n", name, dt, mgl_tokenizer_n_vocab(tok),
           mgl_tokenizer_bos(tok), mgl_tokenizer_eos(tok));
    /* tokenizer_config.json: sp32k sets clean_up_tokenization_spaces false, llama3 true. The
     * goldens below come from HF tokenizers, which has no clean-up step (transformers adds it:
     * test-tok-cleanup checks that), so it is off here. */
    CHECK(mgl_tokenizer_clean_up_spaces(tok) == (strcmp(name, "llama3") == 0), "%s: clean-up flag", name);
    mgl_tokenizer_set_clean_up_spaces(tok, false);
    /* The budget is for optimized builds; sanitizers and -O0 are several times slower. */
#if defined(__OPTIMIZE__) && !defined(__SANITIZE_ADDRESS__)
    const double load_budget = 1.0;
#else
    const double load_budget = 10.0;
#endif
    CHECK(dt < load_budget, "%s: loading took %.3f s (budget %.1f s)", name, dt, load_budget);

    /* accessors */
    if (strcmp(name, "sp32k") == 0) {
        CHECK(mgl_tokenizer_n_vocab(tok) == 32000, "n_vocab %d", mgl_tokenizer_n_vocab(tok));
        CHECK(mgl_tokenizer_bos(tok) == 1 && mgl_tokenizer_eos(tok) == 2, "bos/eos");
        CHECK(mgl_tokenizer_token_id(tok, "<s>") == 1, "token_id <s>");
        CHECK(mgl_tokenizer_token_id(tok, "\xE2\x96\x81Hello") == 22557, "token_id ▁Hello");
        CHECK(mgl_tokenizer_token_id(tok, "<0x0A>") == 13, "token_id <0x0A>");
        CHECK(mgl_tokenizer_is_special(tok, 1) && !mgl_tokenizer_is_special(tok, 22557), "is_special");
        CHECK(strcmp(mgl_tokenizer_id_to_piece(tok, 22557), "\xE2\x96\x81Hello") == 0, "id_to_piece");
    } else {
        CHECK(mgl_tokenizer_n_vocab(tok) == 128256, "n_vocab %d", mgl_tokenizer_n_vocab(tok));
        CHECK(mgl_tokenizer_bos(tok) == 128000 && mgl_tokenizer_eos(tok) == 128001, "bos/eos");
        CHECK(mgl_tokenizer_token_id(tok, "<|eot_id|>") == 128009, "token_id eot");
        CHECK(mgl_tokenizer_token_id(tok, "Hello") == 9906, "token_id Hello");
        CHECK(mgl_tokenizer_is_special(tok, 128009) && !mgl_tokenizer_is_special(tok, 9906), "is_special");
        CHECK(strcmp(mgl_tokenizer_id_to_piece(tok, 128000), "<|begin_of_text|>") == 0, "id_to_piece");
    }
    CHECK(mgl_tokenizer_id_to_piece(tok, -1) == NULL && mgl_tokenizer_id_to_piece(tok, 1 << 30) == NULL, "oob piece");
    CHECK(mgl_tokenizer_token_id(tok, "definitely-not-a-token-\xE2\x96\x81\xE2\x96\x81") == -1, "absent token");

    /* 1. shared goldens (made with transformers.js; HF agrees on these) */
    char* gpath = g_build_filename(folder, "golden.jsonl", NULL);
    GPtrArray* gold = read_jsonl(gpath);
    CHECK(gold && gold->len > 0, "cannot read %s", gpath);
    size_t n_checked = 0;
    for (guint i = 0; gold && i < gold->len; i++) {
        JsonObject* o = json_node_get_object(gold->pdata[i]);
        const char* text = json_object_get_string_member(o, "text");
        GArray* ids = json_ids(o, "ids");
        GArray* ns = json_ids(o, "ids_no_special");
        check_encode(tok, text, true, ids, gpath, (int)i + 1);
        check_encode(tok, text, false, ns, gpath, (int)i + 1);
        /* round trip: decode(ids_no_special, skip) through both decoders */
        char* what = g_strdup_printf("%s:%u", gpath, i + 1);
        g_free(check_decode(tok, (const int32_t*)ids->data, ids->len, false, what));
        g_free(check_decode(tok, (const int32_t*)ids->data, ids->len, true, what));
        g_free(what);
        g_array_free(ids, TRUE);
        g_array_free(ns, TRUE);
        n_checked++;
    }
    if (gold) g_ptr_array_unref(gold);
    g_free(gpath);

    /* 2. HF-made goldens (tools/tokenizer/hf_goldens.py) */
    char* hname = g_strdup_printf("%s_hf.jsonl", name);
    char* hpath = g_build_filename(fixtures_dir(), "tokenizer", hname, NULL);
    GPtrArray* hf = read_jsonl(hpath);
    CHECK(hf && hf->len > 0, "cannot read %s", hpath);
    for (guint i = 0; hf && i < hf->len; i++) {
        JsonObject* o = json_node_get_object(hf->pdata[i]);
        char* what = g_strdup_printf("%s:%u", hpath, i + 1);
        GArray* ids = json_ids(o, "decode_ids");
        if (!ids) {
            const char* text = json_object_get_string_member(o, "text");
            ids = json_ids(o, "ids");
            GArray* ns = json_ids(o, "ids_no_special");
            if (json_object_has_member(o, "text_hex")) {
                /* embedded NUL: encode the exact bytes; decoded text cannot be a C string */
                const char* hx = json_object_get_string_member(o, "text_hex");
                size_t bl = strlen(hx) / 2;
                char* raw = g_malloc(bl + 1);
                for (size_t k = 0; k < bl; k++)
                    raw[k] = (char)g_ascii_xdigit_value(hx[2 * k]) * 16 + (char)g_ascii_xdigit_value(hx[2 * k + 1]);
                check_encode_len(tok, raw, bl, true, ids, hpath, (int)i + 1);
                check_encode_len(tok, raw, bl, false, ns, hpath, (int)i + 1);
                g_free(raw);
                g_array_free(ns, TRUE);
                g_array_free(ids, TRUE);
                g_free(what);
                n_checked++;
                continue;
            }
            check_encode(tok, text, true, ids, hpath, (int)i + 1);
            check_encode(tok, text, false, ns, hpath, (int)i + 1);
            g_array_free(ns, TRUE);
        }
        const char* want = json_object_get_string_member(o, "decoded");
        const char* want_skip = json_object_get_string_member(o, "decoded_skip");
        check_decoded(tok, ids, false, want, what);
        check_decoded(tok, ids, true, want_skip, what);
        g_array_free(ids, TRUE);
        g_free(what);
        n_checked++;
    }
    if (hf) g_ptr_array_unref(hf);
    g_free(hpath);
    g_free(hname);

    /* 3. empty text, invalid UTF-8, out-of-range ids */
    int32_t* ids = NULL;
    size_t n = 0;
    st = mgl_tokenizer_encode(tok, "", 0, false, &ids, &n, &err);
    CHECK(st == MGL_OK && n == 0, "empty text");
    free(ids);
    st = mgl_tokenizer_encode(tok, "", 0, true, &ids, &n, &err);
    if (strcmp(name, "sp32k") == 0)
        CHECK(st == MGL_OK && n == 1 && ids[0] == 1, "empty text with specials -> [BOS]");
    else
        CHECK(st == MGL_OK && n == 0, "empty text with specials -> [] (ByteLevel post-processor)");
    free(ids);
    st = mgl_tokenizer_encode(tok, "ab\xC3(", -1, false, &ids, &n, &err);
    CHECK(st == MGL_E_INVALID && ids == NULL, "invalid UTF-8 must be an error");
    int32_t bad[2] = {5, mgl_tokenizer_n_vocab(tok)};
    char* text = NULL;
    st = mgl_tokenizer_decode(tok, bad, 2, false, &text, &err);
    CHECK(st == MGL_E_INVALID && text == NULL, "out-of-range id must be an error");
    bad[1] = -3;
    st = mgl_tokenizer_decode(tok, bad, 2, false, &text, &err);
    CHECK(st == MGL_E_INVALID, "negative id must be an error");

    /* 4. speed: a long text encodes quickly (no quadratic blow-up) */
    GString* big = g_string_new(NULL);
    for (int i = 0; i < 4000; i++) g_string_append(big, "The quick brown fox jumps over the lazy dog. 12345 ");
    for (int i = 0; i < 20000; i++) g_string_append_c(big, 'a'); /* one huge word */
    t0 = now_s();
    st = mgl_tokenizer_encode(tok, big->str, (ptrdiff_t)big->len, true, &ids, &n, &err);
    dt = now_s() - t0;
    printf("%s: encoded %zu bytes into %zu ids in %.3f s\n", name, big->len, n, dt);
    CHECK(st == MGL_OK && dt < 5 * load_budget, "long text: %s, %.3f s", err.msg, dt);
    if (st == MGL_OK) {
        t0 = now_s();
        char* back = check_decode(tok, ids, n, true, "long text");
        printf("%s: decoded in %.3f s\n", name, now_s() - t0);
        /* sp32k strips one leading space; llama3 keeps everything */
        CHECK(strcmp(back, big->str) == 0, "long text round trip");
        g_free(back);
    }
    free(ids);
    g_string_free(big, TRUE);

    mgl_tokenizer_free(tok);
    g_free(folder);
    printf("%s: %zu golden lines checked, %d failures\n", name, n_checked, g_failures);
    return g_failures ? 1 : 0;
}
