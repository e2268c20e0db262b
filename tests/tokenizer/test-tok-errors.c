/* test-tok-errors: bad input never crashes and yields the right status.
 * Hand-written broken tokenizer.json files, truncated/mutated copies of the
 * committed fixtures (tokenizer.json and tokenizer.model; each one that still
 * loads is then used to encode and decode), invalid UTF-8, bad ids. Meant to
 * run under ASan/UBSan too. */
#include "tok-test.h"

#include <glib/gstdio.h>

static char* g_tmp;

static MglStatus load_text(const char* name, const char* data, size_t len, MglErr* err, MglTokenizer** out) {
    char* p = g_build_filename(g_tmp, name, NULL);
    g_file_set_contents(p, data, (gssize)len, NULL);
    MglTokenizer* t = NULL;
    MglStatus st = mgl_tokenizer_load(p, &t, err);
    if (out)
        *out = t;
    else
        mgl_tokenizer_free(t);
    g_unlink(p);
    g_free(p);
    return st;
}

static void expect(const char* json, MglStatus want, const char* what) {
    MglErr err = {0};
    MglStatus st = load_text("t.json", json, strlen(json), &err, NULL);
    CHECK(st == want, "%s: status %d (%s), want %d", what, st, err.msg, want);
    if (st != MGL_OK) CHECK(strstr(err.msg, "t.json") != NULL, "%s: message should name the file: %s", what, err.msg);
}

/* Exercise a tokenizer that loaded from damaged bytes. */
static void exercise(const MglTokenizer* t, uint32_t seed) {
    static const char* texts[] = {
        "Hello world", "", "  x  \n\n", "<s>a</s><mask>", "日本語 🎉 ∑ 123456", "\xE2\x96\x81\xE2\x96\x81"};
    for (size_t i = 0; i < G_N_ELEMENTS(texts); i++) {
        int32_t* ids = NULL;
        size_t n = 0;
        MglErr err;
        if (mgl_tokenizer_encode(t, texts[i], -1, true, &ids, &n, &err) == MGL_OK) {
            char* s = NULL;
            if (mgl_tokenizer_decode(t, ids, n, false, &s, &err) == MGL_OK) free(s);
            free(ids);
        }
    }
    int32_t nv = mgl_tokenizer_n_vocab(t);
    MglDetok* d = mgl_detok_new(t, seed & 1);
    GRand* r = g_rand_new_with_seed(seed);
    for (int i = 0; i < 64; i++) {
        int32_t id = g_rand_int_range(r, -2, nv + 2);
        mgl_detok_push(d, id);
        mgl_tokenizer_id_to_piece(t, id);
        mgl_tokenizer_is_special(t, id);
    }
    mgl_detok_flush(d);
    mgl_detok_free(d);
    g_rand_free(r);
}

static void mutate_file(const char* src, const char* name, int iters, uint32_t seed) {
    char* data = NULL;
    gsize len = 0;
    if (!g_file_get_contents(src, &data, &len, NULL)) {
        CHECK(false, "cannot read %s", src);
        return;
    }
    GRand* r = g_rand_new_with_seed(seed);
    int loaded = 0;
    for (int it = 0; it < iters; it++) {
        GByteArray* b = g_byte_array_new();
        g_byte_array_append(b, (const guint8*)data, (guint)len);
        int kind = g_rand_int_range(r, 0, 6);
        if (kind >= 4) {
            /* change digits only: ids and ranks move, the file stays parseable */
            int nd = g_rand_int_range(r, 1, 4);
            for (int k = 0; k < nd && b->len; k++) {
                guint pos = (guint)g_rand_int_range(r, 0, (gint32)b->len);
                while (pos < b->len && !g_ascii_isdigit(b->data[pos])) pos++;
                if (pos < b->len) b->data[pos] = (guint8)('0' + g_rand_int_range(r, 0, 10));
            }
        } else if (kind == 0) {
            g_byte_array_set_size(b, (guint)g_rand_int_range(r, 0, (gint32)len)); /* truncate */
        } else {
            int nflip = g_rand_int_range(r, 1, 8);
            for (int k = 0; k < nflip && b->len; k++) {
                guint pos = (guint)g_rand_int_range(r, 0, (gint32)b->len);
                if (kind == 1)
                    b->data[pos] ^= (guint8)(1u << g_rand_int_range(r, 0, 8));
                else if (kind == 2)
                    b->data[pos] = (guint8)g_rand_int_range(r, 0, 256);
                else {
                    /* copy a random chunk somewhere else: structure-aware-ish damage */
                    guint from = (guint)g_rand_int_range(r, 0, (gint32)b->len);
                    guint cnt = MIN(b->len - from, (guint)g_rand_int_range(r, 1, 64));
                    guint8* tmp = g_memdup2(b->data + from, cnt);
                    g_byte_array_remove_range(b, pos, MIN(cnt, b->len - pos));
                    guint at = MIN(pos, b->len);
                    GByteArray* nb = g_byte_array_new();
                    g_byte_array_append(nb, b->data, at);
                    g_byte_array_append(nb, tmp, cnt);
                    g_byte_array_append(nb, b->data + at, b->len - at);
                    g_byte_array_free(b, TRUE);
                    b = nb;
                    g_free(tmp);
                }
            }
        }
        MglErr err = {0};
        MglTokenizer* t = NULL;
        MglStatus st = load_text(name, (const char*)b->data, b->len, &err, &t);
        if (st == MGL_OK) {
            loaded++;
            exercise(t, (uint32_t)it);
            mgl_tokenizer_free(t);
        } else {
            CHECK(err.msg[0] != 0, "%s mutation %d: error without a message", name, it);
        }
        g_byte_array_free(b, TRUE);
    }
    printf("%s: %d mutations, %d still loaded\n", src, iters, loaded);
    g_rand_free(r);
    g_free(data);
}

static const char* k_tiny = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2,\"<unk>\":3},\"merges\":["
                            "\"a b\"],\"unk_token\":\"<unk>\"},"
                            "\"added_tokens\":[{\"id\":4,\"content\":\"<x>\",\"special\":true}],"
                            "\"pre_tokenizer\":%s,\"decoder\":%s}";

int main(void) {
    g_tmp = g_dir_make_tmp("mgl-tok-XXXXXX", NULL);
    MglErr err = {0};
    MglTokenizer* t = NULL;

    CHECK(mgl_tokenizer_load("/nonexistent/tokenizer.json", &t, &err) == MGL_E_IO && !t, "missing file");
    CHECK(mgl_tokenizer_load(g_tmp, &t, &err) == MGL_E_IO, "folder without tokenizer files: %s", err.msg);
    CHECK(mgl_tokenizer_load(NULL, &t, &err) == MGL_E_INVALID, "NULL path");

    /* a valid tiny file first, so the failures below are about what they change */
    char* ok = g_strdup_printf(k_tiny, "null", "null");
    expect(ok, MGL_OK, "tiny valid");
    MglStatus st = load_text("t.json", ok, strlen(ok), &err, &t);
    CHECK(st == MGL_OK, "tiny: %s", err.msg);
    if (st == MGL_OK) {
        int32_t* ids = NULL;
        size_t n = 0;
        st = mgl_tokenizer_encode(t, "abba<x>c", -1, true, &ids, &n, &err);
        /* "abba" -> ab, b, a; "<x>" -> 4; "c" -> unk */
        int32_t want[] = {2, 1, 0, 4, 3};
        CHECK(st == MGL_OK && n == 5 && memcmp(ids, want, sizeof want) == 0, "tiny encode");
        free(ids);
        char* s = NULL;
        int32_t dec[] = {2, 4, 1};
        CHECK(mgl_tokenizer_decode(t, dec, 3, true, &s, &err) == MGL_OK && strcmp(s, "ab b") == 0,
              "no decoder: tokens joined by spaces, specials skipped: '%s'", s ? s : "");
        free(s);
        mgl_tokenizer_free(t);
    }
    g_free(ok);

    expect("", MGL_E_FORMAT, "empty file");
    expect("{", MGL_E_FORMAT, "truncated");
    expect("[1,2]", MGL_E_FORMAT, "not an object");
    expect("{\"model\":{\"type\":\"Unigram\",\"vocab\":[]}}", MGL_E_UNSUPPORTED, "Unigram");
    expect("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a b\"]}}", MGL_E_FORMAT,
           "merge with unknown token");
    expect("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-1},\"merges\":[]}}", MGL_E_FORMAT, "negative id");
    expect("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":1e300},\"merges\":[]}}", MGL_E_FORMAT, "huge id");
    expect("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"\\ud800\":0},\"merges\":[]}}", MGL_E_FORMAT, "lone surrogate");
    expect("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"\xff\":0},\"merges\":[]}}", MGL_E_FORMAT, "invalid UTF-8");
    expect("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}} x", MGL_E_FORMAT, "trailing garbage");
    expect("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[[\"a\"]]}}", MGL_E_FORMAT, "bad merge pair");
    {
        GString* deep = g_string_new("{\"x\":");
        for (int i = 0; i < 100000; i++) g_string_append_c(deep, '[');
        expect(deep->str, MGL_E_FORMAT, "deep nesting");
        g_string_free(deep, TRUE);
    }
    char* s1 = g_strdup_printf(
        k_tiny, "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\w+\"},\"behavior\":\"Isolated\",\"invert\":false}",
        "null");
    expect(s1, MGL_E_UNSUPPORTED, "unknown regex");
    MglStatus st2 = load_text("t.json", s1, strlen(s1), &err, NULL);
    CHECK(st2 == MGL_E_UNSUPPORTED && strstr(err.msg, "regex"), "unknown regex message: %s", err.msg);
    g_free(s1);
    s1 = g_strdup_printf(k_tiny, "{\"type\":\"Whitespace\"}", "null");
    expect(s1, MGL_E_UNSUPPORTED, "unknown pre-tokenizer");
    g_free(s1);
    s1 = g_strdup_printf(k_tiny, "null", "{\"type\":\"WordPiece\"}");
    expect(s1, MGL_E_UNSUPPORTED, "unknown decoder");
    g_free(s1);
    s1 = g_strdup_printf(k_tiny, "null",
                         "{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Fuse\"},{\"type\":\"Replace\",\"pattern\":{"
                         "\"String\":\"a\"},\"content\":\"b\"}]}");
    expect(s1, MGL_E_UNSUPPORTED, "Replace after Fuse");
    g_free(s1);

    /* tokenizer.model damage */
    {
        MglStatus sm = load_text("t.model", "\x0a\x05\x0a\x01", 4, &err, NULL);
        CHECK(sm == MGL_E_FORMAT, "truncated protobuf: %d %s", sm, err.msg);
        sm = load_text("t.model", "", 0, &err, NULL);
        CHECK(sm == MGL_E_FORMAT, "empty model: %d %s", sm, err.msg);
        sm = load_text("t.model", "\x0b\x00", 2, &err, NULL);
        CHECK(sm == MGL_E_FORMAT, "group wire type: %d %s", sm, err.msg);
    }

    /* mutation fuzzing of the committed fixtures */
    char* f1 = g_build_filename(fixtures_dir(), "tokenizer", "tiny_gpt2", "tokenizer.json", NULL);
    char* f2 = g_build_filename(fixtures_dir(), "tokenizer", "tiny_metaspace", "tokenizer.json", NULL);
    char* f3 = g_build_filename(fixtures_dir(), "tokenizer", "spm_bpe.model", NULL);
    /* MGL_TOK_FUZZ_SCALE=N runs N times as many mutations (for long ASan runs). */
    const char* scale_env = getenv("MGL_TOK_FUZZ_SCALE");
    int scale = scale_env ? atoi(scale_env) : 1;
    if (scale < 1) scale = 1;
    mutate_file(f1, "m.json", 300 * scale, 11);
    mutate_file(f2, "m.json", 300 * scale, 12);
    mutate_file(f3, "m.model", 600 * scale, 13);
    char* f4 = g_build_filename(fixtures_dir(), "tokenizer", "tiny_prepend", "tokenizer.json", NULL);
    mutate_file(f4, "m.json", 300 * scale, 14);
    g_free(f4);
    g_free(f1);
    g_free(f2);
    g_free(f3);

    /* every prefix of the .model must fail cleanly or load */
    char* data = NULL;
    gsize len = 0;
    char* mp = g_build_filename(fixtures_dir(), "tokenizer", "spm_bpe.model", NULL);
    if (g_file_get_contents(mp, &data, &len, NULL)) {
        for (gsize cut = 0; cut < len; cut += 97) {
            MglTokenizer* tt = NULL;
            if (load_text("p.model", data, cut, &err, &tt) == MGL_OK) {
                exercise(tt, (uint32_t)cut);
                mgl_tokenizer_free(tt);
            }
        }
        g_free(data);
    }
    g_free(mp);

    /* API misuse */
    int32_t* ids = (int32_t*)1;
    size_t n = 5;
    CHECK(mgl_tokenizer_encode(NULL, "x", -1, false, &ids, &n, &err) == MGL_E_INVALID && ids == NULL && n == 0,
          "NULL tok");
    CHECK(mgl_tokenizer_n_vocab(NULL) == 0 && mgl_tokenizer_bos(NULL) == -1 && !mgl_tokenizer_id_to_piece(NULL, 0),
          "NULL accessors");
    mgl_tokenizer_free(NULL);
    mgl_detok_free(NULL);
    CHECK(mgl_detok_new(NULL, false) == NULL, "detok NULL");

    g_rmdir(g_tmp);
    g_free(g_tmp);
    printf("errors: %d failures\n", g_failures);
    return g_failures ? 1 : 0;
}
