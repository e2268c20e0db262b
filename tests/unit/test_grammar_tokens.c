/* test_grammar_tokens: the vocabulary side of constrained decoding, on real
 * tokenizers (the demo model's, the fixtures, the 32k SentencePiece-style and
 * the 128k Llama-3 byte-level ones of the shared test data).
 *
 *  - each token's bytes: round trips of the tokenizer goldens (the bytes of
 *    the ids are the text), byte-fallback pieces, '▁' as a space, byte-level
 *    pieces;
 *  - the trie walk equals the brute force (every token's bytes tried one by
 *    one from the state's text) at many states of several grammars;
 *  - corner cases: tokens spanning several grammar symbols, byte-fallback
 *    pieces where the vocabulary has no piece, a multi-byte character split
 *    across tokens, EOS only where the text is complete, other special tokens
 *    never;
 *  - a grammar whose states are all new stops at the work budget of one mask,
 *    and what it allows still stays inside the grammar;
 *  - the mask's cost per step (printed). */
#include "test_grammar_util.h"

#include <math.h>

typedef struct {
    const char* env;
    const char* rel;
    const char* golden; /* jsonl with text + ids_no_special, or NULL */
    bool exact;         /* the bytes of the ids are exactly the text (or " " + text) */
    MglTokenizer* tok;
} Tok;

static Tok k_toks[] = {
    {"MGL_FIXTURES", "../../models/mgllava-demo/llm", NULL, false, NULL},
    {"MGL_FIXTURES", "models/tiny-vicuna/llm", NULL, false, NULL},
    {"MGL_FIXTURES", "models/tiny-llama3/llm", NULL, false, NULL},
    {"MGL_FIXTURES", "tokenizer/tiny_gpt2/tokenizer.json", "tokenizer/tiny_gpt2/golden.jsonl", true, NULL},
    {"MGL_FIXTURES", "tokenizer/tiny_metaspace/tokenizer.json", "tokenizer/tiny_metaspace/golden.jsonl", false, NULL},
    {"MGL_FIXTURES", "tokenizer/spm_bpe.model", "tokenizer/spm_bpe_golden.jsonl", false, NULL},
    {"MGL_SHARED_TESTDATA", "tokenizers/sp32k", "tokenizers/sp32k/golden.jsonl", true, NULL},
    {"MGL_SHARED_TESTDATA", "tokenizers/llama3", "tokenizers/llama3/golden.jsonl", true, NULL},
};
enum { T_DEMO, T_VICUNA, T_LLAMA3TINY, T_GPT2, T_METASPACE, T_SPM, T_SP32K, T_LLAMA3 };

static char* token_text(const MglTokenizer* tok, const int32_t* ids, size_t n) {
    GString* s = g_string_new(NULL);
    uint8_t b[4096];
    for (size_t i = 0; i < n; i++) {
        int k = gram_token_bytes(tok, ids[i], b, sizeof b);
        if (k > 0) g_string_append_len(s, (const char*)b, k);
    }
    return g_string_free(s, FALSE);
}

static char* no_spaces(const char* s) {
    GString* o = g_string_new(NULL);
    for (; *s; s++)
        if (*s != ' ') g_string_append_c(o, *s);
    return g_string_free(o, FALSE);
}

/* The bytes of the golden ids are the golden text. */
static void test_round_trips(Tok* t) {
    if (!t->golden) return;
    char* path = gt_path(t->env, t->golden);
    char* data = NULL;
    gsize len = 0;
    REQUIRE(g_file_get_contents(path, &data, &len, NULL));
    gchar** lines = g_strsplit(data, "\n", -1);
    int n = 0;
    for (int i = 0; lines[i]; i++) {
        if (!*lines[i]) continue;
        JsonParser* p = json_parser_new();
        REQUIRE(json_parser_load_from_data(p, lines[i], -1, NULL));
        JsonObject* o = json_node_get_object(json_parser_get_root(p));
        const char* text = json_object_has_member(o, "decoded_skip") ? json_object_get_string_member(o, "decoded_skip")
                                                                     : json_object_get_string_member(o, "text");
        JsonArray* a =
            json_object_get_array_member(o, json_object_has_member(o, "ids_no_special") ? "ids_no_special" : "ids");
        size_t m = json_array_get_length(a);
        int32_t* ids = g_new(int32_t, m + 1);
        bool special = false;
        for (size_t k = 0; k < m; k++) {
            ids[k] = (int32_t)json_array_get_int_element(a, k);
            special |= mgl_tokenizer_is_special(t->tok, ids[k]);
        }
        if (special ||
            strstr(text, "\xe2\x96\x81")) { /* special tokens, or a literal '▁' the decoder turns into a space */
            g_free(ids);
            g_object_unref(p);
            continue;
        }
        char* mine = token_text(t->tok, ids, m);
        if (t->exact) {
            bool same = !strcmp(mine, text) || (mine[0] == ' ' && !strcmp(mine + 1, text));
            CHECK_MSG(same, "%s: ids of \"%s\" give \"%s\"", t->rel, text, mine);
        } else {
            char *a1 = no_spaces(mine), *b1 = no_spaces(text);
            CHECK_MSG(!strcmp(a1, b1) || !g_utf8_validate(text, -1, NULL), "%s: ids of \"%s\" give \"%s\"", t->rel,
                      text, mine);
            g_free(a1);
            g_free(b1);
        }
        g_free(mine);
        g_free(ids);
        g_object_unref(p);
        n++;
    }
    CHECK(n > 10);
    g_strfreev(lines);
    g_free(data);
    g_free(path);
}

/* Every token against the real decoder: decode([x, id]) is decode([x]) + the
 * token's bytes, for tokens whose bytes are whole UTF-8 (spaces ignored where
 * clean-up could remove one); byte pieces are their byte. */
static void test_token_bytes_vs_decode(Tok* t) {
    const MglTokenizer* tok = t->tok;
    int32_t V = mgl_tokenizer_n_vocab(tok);
    int32_t* xs = NULL;
    size_t nx = 0;
    REQUIRE(mgl_tokenizer_encode(tok, "x", -1, false, &xs, &nx, NULL) == MGL_OK && nx >= 1);
    int32_t x = xs[nx - 1];
    free(xs);
    char* base = NULL;
    REQUIRE(mgl_tokenizer_decode(tok, &x, 1, false, &base, NULL) == MGL_OK);
    uint8_t b[4096];
    int checked = 0, bytes = 0, step = V > 40000 ? 3 : 1;
    for (int32_t id = 0; id < V; id += step) {
        int k = gram_token_bytes(tok, id, b, sizeof b);
        const char* piece = mgl_tokenizer_id_to_piece(tok, id);
        if (mgl_tokenizer_is_special(tok, id) || !piece) {
            CHECK_MSG(k < 0, "%s: special token %d has bytes", t->rel, id);
            continue;
        }
        if (k < 0) continue;
        if (strlen(piece) == 6 && !strncmp(piece, "<0x", 3) && k == 1) {
            CHECK_MSG(b[0] == (uint8_t)strtol(piece + 3, NULL, 16), "%s: %s gives byte %02x", t->rel, piece, b[0]);
            bytes++;
            continue;
        }
        if (!g_utf8_validate((const char*)b, k, NULL)) continue;
        int32_t pair[2] = {x, id};
        char* dec = NULL;
        REQUIRE(mgl_tokenizer_decode(tok, pair, 2, false, &dec, NULL) == MGL_OK);
        GString* want = g_string_new(base);
        g_string_append_len(want, (const char*)b, k);
        char *d1 = no_spaces(dec), *w1 = no_spaces(want->str);
        bool cleanup_space = k >= 2 && b[0] == ' ' && strchr(".?!,'n", b[1]);
        CHECK_MSG(!strcmp(dec, want->str) || (cleanup_space && !strcmp(d1, w1)),
                  "%s: token %d (%s): decode gives \"%s\", the bytes \"%s\"", t->rel, id, piece, dec, want->str);
        g_free(d1);
        g_free(w1);
        g_string_free(want, TRUE);
        free(dec);
        checked++;
    }
    free(base);
    CHECK(checked + bytes > V / (2 * step));
    printf("%-40s vocab %6d: %d tokens checked against decode, %d byte pieces\n", t->rel, V, checked, bytes);
}

/* ---- the walk against the brute force ------------------------------------------ */

static bool allowed(const uint32_t* a, int32_t id) { return (a[id >> 5] >> (id & 31)) & 1u; }

/* At each state along `path` (token ids fed one by one), the mask equals:
 * token allowed <=> text + its bytes is not invalid; EOS <=> text complete. */
static void check_walk_along(const MglTokenizer* tok, MglGrammar* g, const int32_t* path, size_t n_path,
                             const char* what) {
    MglGrammarState* st = NULL;
    REQUIRE(mgl_grammar_state_new(g, &st, NULL) == MGL_OK);
    int32_t V = mgl_tokenizer_n_vocab(tok);
    int32_t eos = mgl_tokenizer_eos(tok);
    uint32_t* allow = g_new(uint32_t, (V + 31) / 32);
    uint8_t b[4096];
    GString* text = g_string_new(NULL);
    int bad = 0;
    for (size_t step = 0; step <= n_path; step++) {
        memset(allow, 0xff, sizeof(uint32_t) * ((V + 31) / 32));
        mgl_grammar_token_mask(path, step, allow, V, st);
        /* large vocabularies: a different sample of the tokens at each step (small ones: all) */
        int stride = V > 100000 ? 13 : V > 10000 ? 3 : 1;
        for (int32_t id = (int32_t)(step % stride); id < V; id += stride) {
            bool want;
            if (id == eos) {
                want = mgl_grammar_match_text(g, text->str, (ptrdiff_t)text->len) == MGL_GRAMMAR_COMPLETE;
            } else {
                int k = gram_token_bytes(tok, id, b, sizeof b);
                if (k <= 0) {
                    want = false;
                } else {
                    GString* t2 = g_string_new_len(text->str, (gssize)text->len);
                    g_string_append_len(t2, (const char*)b, k);
                    want = mgl_grammar_match_text(g, t2->str, (ptrdiff_t)t2->len) != MGL_GRAMMAR_INVALID;
                    g_string_free(t2, TRUE);
                }
            }
            if (want != allowed(allow, id) && bad++ < 5)
                CHECK_MSG(0, "%s: after \"%s\": token %d (%s) %s by the mask, %s by brute force", what, text->str, id,
                          mgl_tokenizer_id_to_piece(tok, id), allowed(allow, id) ? "allowed" : "refused",
                          want ? "allowed" : "refused");
        }
        if (step < n_path) {
            int k = gram_token_bytes(tok, path[step], b, sizeof b);
            if (k > 0) g_string_append_len(text, (const char*)b, k);
            REQUIRE(allowed(allow, path[step]));
        }
    }
    CHECK(bad == 0);
    g_string_free(text, TRUE);
    g_free(allow);
    mgl_grammar_state_free(st);
}

/* A token path for `text` under the grammar: greedily the longest allowed
 * token that is a prefix of what remains. */
static const char* g_walk_name = "";

static size_t greedy_path(const MglTokenizer* tok, MglGrammar* g, const char* text, int32_t* path, size_t cap) {
    const GtBytes* tb = gt_bytes(tok);
    MglGrammarState* st = NULL;
    REQUIRE(mgl_grammar_state_new(g, &st, NULL) == MGL_OK);
    int32_t V = mgl_tokenizer_n_vocab(tok);
    uint32_t* allow = g_new(uint32_t, (V + 31) / 32);
    size_t n = 0, at = 0, len = strlen(text);
    while (at < len && n < cap) {
        mgl_grammar_token_mask(path, n, allow, V, st);
        int32_t best = -1;
        int best_len = 0;
        for (int32_t id = 0; id < V; id++) {
            if (!allowed(allow, id)) continue;
            int k = tb->len[id];
            if (k > best_len && (size_t)k <= len - at && !memcmp(tb->data->data + tb->off[id], text + at, (size_t)k)) {
                best = id;
                best_len = k;
            }
        }
        if (best < 0) break;
        path[n++] = best;
        at += (size_t)best_len;
    }
    CHECK_MSG(at == len, "%s: no token path for \"%s\" (stuck at %zu)", g_walk_name, text, at);
    g_free(allow);
    mgl_grammar_state_free(st);
    return n;
}

static const char* const k_schema_obj =
    "{\"type\":\"object\",\"properties\":{\"count\":{\"type\":\"integer\"},\"label\":{\"type\":\"string\","
    "\"maxLength\":6},"
    "\"colors\":{\"type\":\"array\",\"items\":{\"enum\":[\"red\",\"green\",\"blue\"]},\"maxItems\":3},"
    "\"alert\":{\"type\":\"boolean\"}},\"required\":[\"count\",\"alert\"]}";

static void test_walk(Tok* t) {
    const MglTokenizer* tok = t->tok;
    /* only where the vocabulary can spell every byte (byte fallback or byte-level) */
    bool have[256] = {0};
    uint8_t one[8];
    for (int32_t id = 0; id < mgl_tokenizer_n_vocab(tok); id++)
        if (gram_token_bytes(tok, id, one, sizeof one) == 1) have[one[0]] = true;
    int n_have = 0;
    for (int b = 0; b < 256; b++) n_have += have[b];
    if (n_have < 256) {
        printf("%-40s walk check skipped: %d of 256 bytes have a one-byte token\n", t->rel, n_have);
        return;
    }
    g_walk_name = t->rel;
    MglGrammar* g = NULL;
    MglErr err = {0};
    REQUIRE(mgl_grammar_from_schema(tok, k_schema_obj, &g, &err) == MGL_OK);
    int32_t path[256];
    size_t n = greedy_path(
        tok, g, " {\"count\": 12, \"label\":\"é中 x\",\"colors\":[\"red\", \"blue\"],\"alert\":true}", path, 256);
    check_walk_along(tok, g, path, n, t->rel);
    mgl_grammar_free(g);

    /* an unbounded string and a free-text rule: the states the plain-text fast path takes (every
     * printable ASCII byte but the quote and the backslash loops back), with escapes, quotes,
     * non-ASCII and control bytes in and around them */
    REQUIRE(mgl_grammar_from_schema(tok,
                                    "{\"type\":\"object\",\"properties\":{\"note\":{\"type\":\"string\"}},"
                                    "\"required\":[\"note\"]}",
                                    &g, &err) == MGL_OK);
    n = greedy_path(tok, g, "{\"note\": \"a {b} \\\"q\\\" \\n é中 x!\"}", path, 256);
    check_walk_along(tok, g, path, n, t->rel);
    mgl_grammar_free(g);
    REQUIRE(mgl_grammar_from_gbnf(tok, "root ::= [^\\n]* \"\\n\"\n", &g, &err) == MGL_OK);
    n = greedy_path(tok, g, "free text, \"quoted\" \\ é\n", path, 256);
    check_walk_along(tok, g, path, n, t->rel);
    mgl_grammar_free(g);

    REQUIRE(mgl_grammar_from_gbnf(tok, "root ::= [α-ω]+ (\" \" [0-9]{2,3})* \"!\" | \"中文\" [^a-z]?\n", &g, &err) ==
            MGL_OK);
    n = greedy_path(tok, g, "αβγ 12 345!", path, 256);
    check_walk_along(tok, g, path, n, t->rel);
    n = greedy_path(tok, g, "中文😀", path, 256);
    check_walk_along(tok, g, path, n, t->rel);
    mgl_grammar_free(g);
}

/* ---- corner cases ---------------------------------------------------------------- */

static int32_t id_of(const MglTokenizer* tok, const char* piece) {
    int32_t id = mgl_tokenizer_token_id(tok, piece);
    REQUIRE(id >= 0);
    return id;
}

static void test_corners(void) {
    MglErr err = {0};
    uint32_t* allow;
    /* Llama-3 byte-level: one token for '{"' (two grammar symbols), '":' after a key, 'Ġ{' at the start
     * (the leading space), EOS only at the end, <|begin_of_text|> never */
    {
        const MglTokenizer* tok = k_toks[T_LLAMA3].tok;
        int32_t V = mgl_tokenizer_n_vocab(tok);
        allow = g_new(uint32_t, (V + 31) / 32);
        MglGrammar* g = NULL;
        REQUIRE(mgl_grammar_from_schema(tok,
                                        "{\"type\":\"object\",\"properties\":{\"count\":{\"type\":\"integer\"}},"
                                        "\"required\":[\"count\"]}",
                                        &g, &err) == MGL_OK);
        MglGrammarState* st = NULL;
        REQUIRE(mgl_grammar_state_new(g, &st, NULL) == MGL_OK);
        int32_t gen[16];
        mgl_grammar_token_mask(gen, 0, allow, V, st);
        CHECK(allowed(allow, id_of(tok, "{\"")));
        CHECK(allowed(allow, id_of(tok, "Ġ{")));
        CHECK(allowed(allow, id_of(tok, "{")));
        CHECK(!allowed(allow, id_of(tok, "\"}")));
        CHECK(!allowed(allow, mgl_tokenizer_eos(tok)));
        CHECK(!allowed(allow, id_of(tok, "<|begin_of_text|>")));
        gen[0] = id_of(tok, "{\"");
        gen[1] = id_of(tok, "count");
        mgl_grammar_token_mask(gen, 2, allow, V, st);
        CHECK(allowed(allow, id_of(tok, "\":")));
        CHECK(!allowed(allow, id_of(tok, "\",\"")));
        gen[2] = id_of(tok, "\":");
        gen[3] = id_of(tok, "Ġ");
        mgl_grammar_token_mask(gen, 4, allow, V, st);
        CHECK(allowed(allow, id_of(tok, "12")));
        CHECK(!allowed(allow, id_of(tok, "Ġ"))); /* at most one space */
        CHECK(!allowed(allow, id_of(tok, "01")));
        gen[4] = id_of(tok, "12");
        gen[5] = id_of(tok, "}");
        mgl_grammar_token_mask(gen, 6, allow, V, st);
        int n_allowed = 0;
        for (int32_t i = 0; i < V; i++) n_allowed += allowed(allow, i);
        CHECK(n_allowed == 1 && allowed(allow, mgl_tokenizer_eos(tok)));
        gen[6] = mgl_tokenizer_eos(tok);
        const char* text = NULL;
        CHECK(mgl_grammar_state_finish(st, gen, 7, &text) == MGL_GRAMMAR_COMPLETE);
        CHECK(!strcmp(text, "{\"count\": 12}"));
        /* the budget ends inside: incomplete, with the text so far */
        mgl_grammar_state_reset(st);
        CHECK(mgl_grammar_state_finish(st, gen, 4, &text) == MGL_GRAMMAR_INCOMPLETE);
        CHECK(!strcmp(text, "{\"count\": "));
        /* a token the mask would refuse: invalid */
        mgl_grammar_state_reset(st);
        int32_t badp[2] = {id_of(tok, "\"}"), mgl_tokenizer_eos(tok)};
        CHECK(mgl_grammar_state_finish(st, badp, 2, NULL) == MGL_GRAMMAR_INVALID);
        mgl_grammar_state_free(st);
        mgl_grammar_free(g);

        /* a character split across byte-level tokens: é = C3 A9 ('Ã' '©'), 中 = E4 B8 AD ('ä¸' '\xad') */
        REQUIRE(mgl_grammar_from_gbnf(tok, "root ::= \"é\" | \"中文\"\n", &g, &err) == MGL_OK);
        REQUIRE(mgl_grammar_state_new(g, &st, NULL) == MGL_OK);
        mgl_grammar_token_mask(gen, 0, allow, V, st);
        CHECK(allowed(allow, id_of(tok, "Ã")));
        CHECK(allowed(allow, id_of(tok, "ä¸")));
        CHECK(allowed(allow, id_of(tok, "Ã©")));
        CHECK(!allowed(allow, id_of(tok, "©")));
        gen[0] = id_of(tok, "Ã");
        mgl_grammar_token_mask(gen, 1, allow, V, st);
        n_allowed = 0;
        for (int32_t i = 0; i < V; i++) n_allowed += allowed(allow, i);
        CHECK(allowed(allow, id_of(tok, "©")) && n_allowed == 1);
        gen[1] = id_of(tok, "©");
        CHECK(mgl_grammar_state_finish(st, gen, 2, &text) == MGL_GRAMMAR_COMPLETE && !strcmp(text, "é"));
        mgl_grammar_state_free(st);
        mgl_grammar_free(g);
        g_free(allow);
    }
    /* SentencePiece 32k: byte-fallback pieces for a split character, '▁' as the leading space */
    {
        const MglTokenizer* tok = k_toks[T_SP32K].tok;
        int32_t V = mgl_tokenizer_n_vocab(tok);
        allow = g_new(uint32_t, (V + 31) / 32);
        MglGrammar* g = NULL;
        REQUIRE(mgl_grammar_from_gbnf(tok, "root ::= \"é!\" | \"{\\\"a\\\":1}\"\n", &g, &err) == MGL_OK);
        MglGrammarState* st = NULL;
        REQUIRE(mgl_grammar_state_new(g, &st, NULL) == MGL_OK);
        int32_t gen[8];
        mgl_grammar_token_mask(gen, 0, allow, V, st);
        CHECK(allowed(allow, id_of(tok, "<0xC3>")));
        CHECK(allowed(allow, id_of(tok, "é")));
        CHECK(allowed(allow, id_of(tok, "▁{")));
        CHECK(allowed(allow, id_of(tok, "▁")));
        CHECK(!allowed(allow, id_of(tok, "<0xA9>")));
        CHECK(!allowed(allow, id_of(tok, "<s>")));
        CHECK(!allowed(allow, mgl_tokenizer_eos(tok)));
        gen[0] = id_of(tok, "<0xC3>");
        mgl_grammar_token_mask(gen, 1, allow, V, st);
        int n_allowed = 0;
        for (int32_t i = 0; i < V; i++) n_allowed += allowed(allow, i);
        CHECK(n_allowed == 1 && allowed(allow, id_of(tok, "<0xA9>")));
        gen[1] = id_of(tok, "<0xA9>");
        gen[2] = id_of(tok, "!");
        const char* text = NULL;
        CHECK(mgl_grammar_state_finish(st, gen, 3, &text) == MGL_GRAMMAR_COMPLETE && !strcmp(text, "é!"));
        /* the same text decodes to the same characters */
        char* dec = NULL;
        REQUIRE(mgl_tokenizer_decode(tok, gen, 3, true, &dec, NULL) == MGL_OK);
        CHECK(!strcmp(dec, "é!"));
        free(dec);
        mgl_grammar_state_reset(st);
        gen[0] = id_of(tok, "▁{");
        gen[1] = id_of(tok, "\":");
        mgl_grammar_token_mask(gen, 1, allow, V, st);
        CHECK(allowed(allow, id_of(tok, "\"")));
        CHECK(!allowed(allow, id_of(tok, "\":")));
        mgl_grammar_state_free(st);
        mgl_grammar_free(g);
        g_free(allow);
    }
    /* the demo model's 619 pieces: no '{' piece, so byte-fallback tokens spell the structure */
    {
        const MglTokenizer* tok = k_toks[T_DEMO].tok;
        int32_t V = mgl_tokenizer_n_vocab(tok);
        CHECK(mgl_tokenizer_token_id(tok, "{") < 0);
        allow = g_new(uint32_t, (V + 31) / 32);
        MglGrammar* g = NULL;
        REQUIRE(mgl_grammar_from_schema(tok,
                                        "{\"type\":\"object\",\"properties\":{\"count\":{\"type\":\"integer\"}},"
                                        "\"required\":[\"count\"]}",
                                        &g, &err) == MGL_OK);
        int32_t path[64];
        size_t n = greedy_path(tok, g, "{\"count\": 7}", path, 64);
        CHECK(n >= 5 && path[0] == id_of(tok, "<0x7B>"));
        MglGrammarState* st = NULL;
        REQUIRE(mgl_grammar_state_new(g, &st, NULL) == MGL_OK);
        path[n] = mgl_tokenizer_eos(tok);
        const char* text = NULL;
        CHECK(mgl_grammar_state_finish(st, path, n + 1, &text) == MGL_GRAMMAR_COMPLETE);
        CHECK(!strcmp(text, "{\"count\": 7}"));
        char* dec = NULL;
        REQUIRE(mgl_tokenizer_decode(tok, path, n + 1, true, &dec, NULL) == MGL_OK);
        mgl_text_strip(dec);
        CHECK_MSG(!strcmp(dec, text), "decode \"%s\" vs \"%s\"", dec, text);
        free(dec);
        mgl_grammar_state_free(st);
        mgl_grammar_free(g);
        g_free(allow);
    }
}

/* ---- cost per step ------------------------------------------------------------------ */

static double ms_now(void) { return (double)g_get_monotonic_time() / 1000.0; }

/* A grammar whose every state is new: after k letters of root ::= [a-z] root+ | [a-m] the
 * stacks are up to k deep, so each trie node of the letter tokens is a transition never
 * computed before (before the budget: 2 s a mask with the 128k vocabulary). The mask stops
 * at its work budget (stats.cut_short), still allows tokens, and each token it allows keeps
 * the text inside the grammar (checked by matching the text, for a sample of them). */
static void test_work_budget(Tok* t) {
    const MglTokenizer* tok = t->tok;
    MglGrammar* g = NULL;
    MglErr err = {0};
    REQUIRE(mgl_grammar_from_gbnf(tok, "root ::= [a-z] root+ | [a-m]", &g, &err) == MGL_OK);
    MglGrammarState* st = NULL;
    REQUIRE(mgl_grammar_state_new(g, &st, NULL) == MGL_OK);
    const int32_t V = mgl_tokenizer_n_vocab(tok), eos = mgl_tokenizer_eos(tok);
    uint32_t* allow = g_new(uint32_t, (V + 31) / 32);
    int32_t ids[16];
    uint8_t b[256];
    GString* text = g_string_new(NULL);
    size_t n = 0, checked = 0;
    int bad = 0;
    double max_ms = 0;
    for (; n < G_N_ELEMENTS(ids); n++) {
        memset(allow, 0xff, sizeof(uint32_t) * ((V + 31) / 32));
        double t0 = ms_now();
        mgl_grammar_token_mask(ids, n, allow, V, st);
        max_ms = fmax(max_ms, ms_now() - t0);
        int32_t count = 0;
        for (int32_t id = 0; id < V; id++) count += allowed(allow, id) && id != eos;
        CHECK_MSG(count > 0, "%s: no token allowed after \"%s\"", t->rel, text->str);
        if (!count) break;
        /* about 48 of the allowed tokens, spread over the vocabulary */
        int32_t every = count / 48 + 1, seen = 0, next = -1, pick = (int32_t)((n * 7919u) % (uint32_t)count);
        for (int32_t id = 0; id < V; id++) {
            if (!allowed(allow, id) || id == eos) continue;
            if (seen == pick) next = id;
            if (seen++ % every) continue;
            int k = gram_token_bytes(tok, id, b, sizeof b);
            GString* t2 = g_string_new_len(text->str, (gssize)text->len);
            if (k > 0) g_string_append_len(t2, (const char*)b, k);
            bool ok = k > 0 && mgl_grammar_match_text(g, t2->str, (ptrdiff_t)t2->len) != MGL_GRAMMAR_INVALID;
            if (!ok && bad++ < 5)
                CHECK_MSG(0, "%s: after \"%s\": token %d (%s) allowed but leaves the grammar", t->rel, text->str, id,
                          mgl_tokenizer_id_to_piece(tok, id));
            checked++;
            g_string_free(t2, TRUE);
        }
        REQUIRE(next >= 0);
        ids[n] = next;
        int k = gram_token_bytes(tok, next, b, sizeof b);
        if (k > 0) g_string_append_len(text, (const char*)b, k);
    }
    CHECK(bad == 0);
    MglGrammarStats stats;
    mgl_grammar_state_stats(st, &stats);
    CHECK_MSG(stats.cut_short > 0, "%s: no mask reached the work budget", t->rel);
    printf("%-40s vocab %6d: ambiguous grammar, %zu masks: %llu cut short by the work budget, slowest %.1f ms, "
           "%zu allowed tokens checked\n",
           t->rel, V, n, (unsigned long long)stats.cut_short, max_ms, checked);
    g_string_free(text, TRUE);
    g_free(allow);
    mgl_grammar_state_free(st);
    mgl_grammar_free(g);
}

/* Mask time at the states along a JSON answer: the first time a state is seen (a cold walk,
 * transitions computed) and again (warm rows, the mask cache off by alternating states). */
static void measure(Tok* t) {
    const MglTokenizer* tok = t->tok;
    MglGrammar* g = NULL;
    MglErr err = {0};
    REQUIRE(mgl_grammar_from_schema(tok, k_schema_obj, &g, &err) == MGL_OK);
    int32_t path[256];
    const char* answer = "{\"count\": 12, \"label\": \"a red\", \"colors\": [\"red\", \"blue\"], \"alert\": true}";
    size_t n = greedy_path(tok, g, answer, path, 256);
    int32_t V = mgl_tokenizer_n_vocab(tok);
    uint32_t* allow = g_new(uint32_t, (V + 31) / 32);
    double cold = 0, cold_max = 0, warm = 0, warm_max = 0;
    for (int rep = 0; rep < 2; rep++) {
        MglGrammarState* st = NULL;
        REQUIRE(mgl_grammar_state_new(g, &st, NULL) == MGL_OK);
        for (size_t k = 0; k <= n; k++) {
            double t0 = ms_now();
            mgl_grammar_token_mask(path, k, allow, V, st);
            double dt = ms_now() - t0;
            if (rep == 0) {
                cold += dt;
                cold_max = fmax(cold_max, dt);
            }
        }
        if (rep == 1) {
            /* a second request on a warm state: every state's rows are filled; the mask cache off */
            mgl_grammar_state_reset(st);
            gram_state_set_mask_cache(st, false);
            for (size_t k = 0; k <= n; k++) {
                double t0 = ms_now();
                mgl_grammar_token_mask(path, k, allow, V, st);
                double dt = ms_now() - t0;
                warm += dt;
                warm_max = fmax(warm_max, dt);
            }
        }
        MglGrammarStats ost;
        mgl_grammar_state_stats(st, &ost);
        CHECK_MSG(ost.cut_short == 0, "%s: a mask of the object answer reached the work budget", t->rel);
        mgl_grammar_state_free(st);
    }
    /* inside a free string, where nearly every token is allowed: the largest walk */
    MglGrammar* gs = NULL;
    REQUIRE(mgl_grammar_from_schema(tok,
                                    "{\"type\":\"object\",\"properties\":{\"note\":{\"type\":\"string\"}},"
                                    "\"required\":[\"note\"]}",
                                    &gs, &err) == MGL_OK);
    int32_t sp[64];
    size_t ns = greedy_path(tok, gs, "{\"note\": \"", sp, 64);
    MglGrammarState* st = NULL;
    REQUIRE(mgl_grammar_state_new(gs, &st, NULL) == MGL_OK);
    double t0 = ms_now();
    mgl_grammar_token_mask(sp, ns, allow, V, st);
    double s_cold = ms_now() - t0;
    int n_allowed = 0;
    for (int32_t i = 0; i < V; i++) n_allowed += allowed(allow, i);
    /* the same state again: a walk over warm rows (the mask cache off), and a cached mask */
    double s_warm = 1e9, s_cached = 1e9;
    for (int rep = 0; rep < 5; rep++) {
        gram_state_set_mask_cache(st, false);
        t0 = ms_now();
        mgl_grammar_token_mask(sp, ns, allow, V, st);
        s_warm = fmin(s_warm, ms_now() - t0);
        gram_state_set_mask_cache(st, true);
        mgl_grammar_token_mask(sp, ns, allow, V, st);
        t0 = ms_now();
        mgl_grammar_token_mask(sp, ns, allow, V, st);
        s_cached = fmin(s_cached, ms_now() - t0);
    }
    MglGrammarStats stats;
    mgl_grammar_state_stats(st, &stats);
    CHECK_MSG(stats.cut_short == 0, "%s: the mask inside a string reached the work budget", t->rel);
    mgl_grammar_state_free(st);
    mgl_grammar_free(gs);
    printf("%-40s vocab %6d: object answer %zu tokens: mask cold %.3f ms/step (max %.3f), warm %.3f ms/step "
           "(max %.3f); inside a string (%d tokens allowed): cold %.3f ms, warm %.3f ms, cached %.3f ms\n",
           t->rel, V, n, cold / (double)(n + 1), cold_max, warm / (double)(n + 1), warm_max, n_allowed, s_cold, s_warm,
           s_cached);
    g_free(allow);
    mgl_grammar_free(g);
}

int main(void) {
    for (size_t i = 0; i < G_N_ELEMENTS(k_toks); i++) {
        char* p = gt_path(k_toks[i].env, k_toks[i].rel);
        REQUIRE(p);
        MglErr err = {0};
        if (mgl_tokenizer_load(p, &k_toks[i].tok, &err) != MGL_OK) {
            fprintf(stderr, "cannot load %s: %s\n", p, err.msg);
            return 1;
        }
        g_free(p);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(k_toks); i++) {
        test_round_trips(&k_toks[i]);
        test_token_bytes_vs_decode(&k_toks[i]);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(k_toks); i++)
        if (i != T_SPM) test_walk(&k_toks[i]);
    test_corners();
    test_work_budget(&k_toks[T_SPM]);
    test_work_budget(&k_toks[T_LLAMA3]);
    measure(&k_toks[T_DEMO]);
    measure(&k_toks[T_SP32K]);
    measure(&k_toks[T_LLAMA3]);
    gt_bytes_forget();
    for (size_t i = 0; i < G_N_ELEMENTS(k_toks); i++) mgl_tokenizer_free(k_toks[i].tok);
    TEST_DONE();
}
