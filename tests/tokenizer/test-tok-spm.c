/* test-tok-spm: SentencePiece tokenizer.model (BPE, byte_fallback) built by
 * tools/tokenizer/make_spm_fixture.py; ids must equal spm_encode's, decode
 * must equal spm_decode's, the stream must equal decode. */
#include "tok-test.h"

static int32_t* enc(const MglTokenizer* tok, const char* text, bool special, size_t* n) {
    int32_t* ids = NULL;
    MglErr err = {0};
    MglStatus st = mgl_tokenizer_encode(tok, text, -1, special, &ids, n, &err);
    CHECK(st == MGL_OK, "encode '%s': %s", text, err.msg);
    return ids;
}

int main(void) {
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
        if (ids && !ids_equal(ids, n, want)) {
            char* a = ids_str(ids, n);
            char* b = ids_str((const int32_t*)want->data, want->len);
            CHECK(false, "%s:%u '%s'\n  got  %s\n  want %s", gpath, i + 1, text, a, b);
            g_free(a);
            g_free(b);
        }
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
        char* got = check_decode(tok, (const int32_t*)ids->data, ids->len, true, what);
        CHECK(strcmp(got, want) == 0, "%s: decode\n  got  '%s'\n  want '%s'", what, got, want);
        g_free(got);
        g_free(what);
        g_array_free(ids, TRUE);
    }
    if (dec) g_ptr_array_unref(dec);
    g_free(dpath);

    /* Newlines (spm_encode is line based, so checked here): "\n" has no piece
     * and falls back to <0x0A>; the text survives a round trip. */
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
