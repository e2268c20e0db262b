/* gram-api.c: the public API of constrained decoding (mgllava.h, "structured
 * output"): grammars, per-request states, the token mask callback. */
#include "grammar/mgl-grammar-internal.h"

#include <glib.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct MglGrammar {
    GRules* rules;
    char* source;
    bool has_vocab;
    GVocab vocab;
    int32_t* end;
    size_t n_end;
};

#define MASK_CACHE 16

struct MglGrammarState {
    const MglGrammar* g;
    GMatch m;
    int32_t cur;
    size_t n_seen;
    bool ended;   /* an end token came where the text was complete */
    bool invalid; /* a token left the grammar, or no token could continue */
    GByteArray* text;
    char* text_out;
    int32_t* sstack;
    struct {
        int32_t state;
        uint64_t generation;
        int32_t n_vocab;
        uint32_t* bits;
    } cache[MASK_CACHE];
    int cache_next;
    bool no_cache;      /* tests: every mask walks */
    uint64_t mask_work; /* the work budget of one mask (GRAM_MAX_MASK_WORK, or MGL_GRAMMAR_MASK_WORK) */
    MglGrammarStats stats;
};

/* The work budget of one mask: MGL_GRAMMAR_MASK_WORK (a positive number of expansion
 * items) where it is set, else GRAM_MAX_MASK_WORK. */
static uint64_t mask_work_budget(void) {
    const char* e = g_getenv("MGL_GRAMMAR_MASK_WORK");
    if (e && *e) {
        char* end = NULL;
        const guint64 v = g_ascii_strtoull(e, &end, 10);
        if (end && !*end && v > 0) return v;
        g_warning("MGL_GRAMMAR_MASK_WORK=%s is not a positive number: the default %u applies", e,
                  (unsigned)GRAM_MAX_MASK_WORK);
    }
    return GRAM_MAX_MASK_WORK;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- grammars ------------------------------------------------------------ */

/* Messages are one line: control characters quoted from the input (a schema key, a
 * parser's excerpt) become spaces. */
static MglStatus one_line(MglErr* err, MglStatus st) {
    if (err && st != MGL_OK)
        for (char* c = err->msg; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = ' ';
    return st;
}

static MglStatus grammar_make(const MglTokenizer* tok, const char* what, char* source, MglGrammar** out, MglErr* err) {
    MglGrammar* g = calloc(1, sizeof *g);
    if (!g) {
        g_free(source);
        return mgl_err(err, MGL_E_NOMEM, "%s: out of memory", what);
    }
    g->source = source;
    MglStatus st = gram_parse(source, strlen(source), what, &g->rules, err);
    if (st == MGL_OK && tok) {
        st = gvocab_build(&g->vocab, tok, err);
        g->has_vocab = st == MGL_OK;
        int32_t eos = mgl_tokenizer_eos(tok);
        if (st == MGL_OK && eos >= 0) {
            g->end = malloc(sizeof(int32_t));
            if (g->end) {
                g->end[0] = eos;
                g->n_end = 1;
            }
        }
    }
    if (st != MGL_OK) {
        mgl_grammar_free(g);
        return st;
    }
    *out = g;
    return MGL_OK;
}

MglStatus mgl_grammar_from_gbnf(const MglTokenizer* tok, const char* gbnf, MglGrammar** out, MglErr* err) {
    if (!out) return mgl_err(err, MGL_E_INVALID, "mgl_grammar_from_gbnf: NULL argument");
    *out = NULL;
    if (!gbnf) return mgl_err(err, MGL_E_INVALID, "grammar: no text");
    size_t n = strlen(gbnf);
    if (n > GRAM_MAX_TEXT)
        return mgl_err(err, MGL_E_INVALID, "grammar: %zu bytes, above the %u-byte limit", n, GRAM_MAX_TEXT);
    return one_line(err, grammar_make(tok, "grammar", g_strdup(gbnf), out, err));
}

MglStatus mgl_grammar_from_schema(const MglTokenizer* tok, const char* json_schema, MglGrammar** out, MglErr* err) {
    if (!out) return mgl_err(err, MGL_E_INVALID, "mgl_grammar_from_schema: NULL argument");
    *out = NULL;
    if (!json_schema) return mgl_err(err, MGL_E_INVALID, "schema: no text");
    char* gbnf = NULL;
    MglStatus st = gram_schema_to_gbnf(json_schema, strlen(json_schema), &gbnf, err);
    if (st != MGL_OK) return one_line(err, st);
    return one_line(err, grammar_make(tok, "schema", gbnf, out, err));
}

void mgl_grammar_free(MglGrammar* g) {
    if (!g) return;
    gram_rules_free(g->rules);
    gvocab_clear(&g->vocab);
    free(g->end);
    g_free(g->source);
    free(g);
}

const char* mgl_grammar_source(const MglGrammar* g) { return g ? g->source : NULL; }

MglStatus mgl_grammar_set_end_tokens(MglGrammar* g, const int32_t* ids, size_t n, MglErr* err) {
    if (!g || (!ids && n)) return mgl_err(err, MGL_E_INVALID, "mgl_grammar_set_end_tokens: NULL argument");
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || (g->has_vocab && ids[i] >= g->vocab.n_vocab))
            return mgl_err(err, MGL_E_INVALID, "grammar: end token %d is outside the vocabulary", ids[i]);
    int32_t* e = malloc(sizeof(int32_t) * (n ? n : 1));
    if (!e) return mgl_err(err, MGL_E_NOMEM, "grammar: out of memory");
    if (n) memcpy(e, ids, sizeof(int32_t) * n);
    free(g->end);
    g->end = e;
    g->n_end = n;
    return MGL_OK;
}

static bool is_end(const MglGrammar* g, int32_t id) {
    for (size_t i = 0; i < g->n_end; i++)
        if (g->end[i] == id) return true;
    return false;
}

/* Runs bytes through a matcher from its start: the state after them. */
static int32_t run_bytes(GMatch* m, const uint8_t* s, size_t n) {
    int32_t x = gmatch_initial(m);
    for (size_t i = 0; i < n && x >= 0; i++) x = gmatch_step(m, x, s[i]);
    return x;
}

static MglGrammarResult classify(const GMatch* m, int32_t x) {
    if (x < 0) return MGL_GRAMMAR_INVALID;
    return gmatch_accepting(m, x) ? MGL_GRAMMAR_COMPLETE : MGL_GRAMMAR_INCOMPLETE;
}

MglGrammarResult mgl_grammar_match_text(const MglGrammar* g, const char* text, ptrdiff_t len) {
    if (!g || (!text && len)) return MGL_GRAMMAR_INVALID;
    size_t n = len < 0 ? strlen(text) : (size_t)len;
    GMatch m;
    if (!gmatch_init(&m, g->rules)) return MGL_GRAMMAR_INVALID;
    int32_t x = run_bytes(&m, (const uint8_t*)text, n);
    MglGrammarResult r = m.oom ? MGL_GRAMMAR_INVALID : classify(&m, x);
    gmatch_clear(&m);
    return r;
}

const char* mgl_grammar_result_name(MglGrammarResult r) {
    switch (r) {
    case MGL_GRAMMAR_COMPLETE: return "complete";
    case MGL_GRAMMAR_INCOMPLETE: return "incomplete";
    case MGL_GRAMMAR_INVALID: return "invalid";
    }
    return "invalid";
}

/* ---- states ---------------------------------------------------------------- */

static void cache_clear(MglGrammarState* st) {
    for (int i = 0; i < MASK_CACHE; i++) st->cache[i].state = -1;
}

void mgl_grammar_state_reset(MglGrammarState* st) {
    if (!st) return;
    st->cur = gmatch_initial(&st->m);
    st->n_seen = 0;
    st->ended = false;
    st->invalid = st->cur < 0;
    g_byte_array_set_size(st->text, 0);
}

MglStatus mgl_grammar_state_new(const MglGrammar* g, MglGrammarState** out, MglErr* err) {
    if (!out || !g) return mgl_err(err, MGL_E_INVALID, "mgl_grammar_state_new: NULL argument");
    *out = NULL;
    if (!g->has_vocab)
        return mgl_err(err, MGL_E_INVALID, "grammar: made without a tokenizer, it can check text but not mask tokens");
    MglGrammarState* st = calloc(1, sizeof *st);
    if (!st) return mgl_err(err, MGL_E_NOMEM, "grammar: out of memory");
    st->g = g;
    st->mask_work = mask_work_budget();
    st->text = g_byte_array_new();
    st->sstack = malloc(sizeof(int32_t) * (g->vocab.max_depth + 2));
    if (!st->sstack || !gmatch_init(&st->m, g->rules)) {
        mgl_grammar_state_free(st);
        return mgl_err(err, MGL_E_NOMEM, "grammar: out of memory");
    }
    cache_clear(st);
    mgl_grammar_state_reset(st);
    *out = st;
    return MGL_OK;
}

void mgl_grammar_state_free(MglGrammarState* st) {
    if (!st) return;
    gmatch_clear(&st->m);
    for (int i = 0; i < MASK_CACHE; i++) free(st->cache[i].bits);
    if (st->text) g_byte_array_free(st->text, TRUE);
    g_free(st->text_out);
    free(st->sstack);
    free(st);
}

void mgl_grammar_state_bind(MglGrammarState* st, MglGenParams* params) {
    if (!params) return;
    params->token_mask = st ? mgl_grammar_token_mask : NULL;
    params->token_mask_data = st;
}

static void advance(MglGrammarState* st, int32_t id) {
    const MglGrammar* g = st->g;
    if (st->invalid) return;
    if (st->ended) { /* nothing may follow the end */
        st->invalid = true;
        return;
    }
    if (is_end(g, id)) {
        if (gmatch_accepting(&st->m, st->cur))
            st->ended = true;
        else
            st->invalid = true;
        return;
    }
    if (id < 0 || id >= g->vocab.n_vocab || g->vocab.kind[id] != GT_TEXT) {
        st->invalid = true;
        return;
    }
    const uint8_t* b = g->vocab.tb + g->vocab.tb_off[id];
    const uint32_t n = g->vocab.tb_off[id + 1] - g->vocab.tb_off[id];
    int32_t x = st->cur;
    for (uint32_t i = 0; i < n && x >= 0; i++) x = gmatch_step(&st->m, x, b[i]);
    if (x < 0 || st->m.oom) {
        st->invalid = true;
        return;
    }
    st->cur = x;
    g_byte_array_append(st->text, b, n);
}

static void catch_up(MglGrammarState* st, const int32_t* ids, size_t n) {
    if (n < st->n_seen) mgl_grammar_state_reset(st);
    while (st->n_seen < n) advance(st, ids[st->n_seen++]);
}

static void set_end_bits(const MglGrammar* g, uint32_t* allow, int32_t n_vocab, bool on) {
    for (size_t i = 0; i < g->n_end; i++) {
        int32_t id = g->end[i];
        if (id < 0 || id >= n_vocab) continue;
        if (on)
            allow[id >> 5] |= 1u << (id & 31);
        else
            allow[id >> 5] &= ~(1u << (id & 31));
    }
}

bool mgl_grammar_token_mask(const int32_t* generated, size_t n_generated, uint32_t* allow, int32_t n_vocab,
                            void* state) {
    MglGrammarState* st = state;
    if (!st || !allow || n_vocab <= 0) return false;
    const double t0 = now_ms();
    const MglGrammar* g = st->g;
    catch_up(st, generated, n_generated);
    const size_t words = ((size_t)n_vocab + 31) / 32;
    if (!st->invalid && !st->ended && gmatch_compact_if_large(&st->m, &st->cur)) cache_clear(st);
    if (st->invalid || st->ended) {
        /* nothing more belongs to the answer: only the end */
        memset(allow, 0, words * sizeof(uint32_t));
        set_end_bits(g, allow, n_vocab, true);
    } else {
        int hit = -1;
        for (int i = 0; i < MASK_CACHE && !st->no_cache; i++)
            if (st->cache[i].state == st->cur && st->cache[i].generation == st->m.generation &&
                st->cache[i].n_vocab == n_vocab && st->cache[i].bits)
                hit = i;
        if (hit >= 0) {
            memcpy(allow, st->cache[hit].bits, words * sizeof(uint32_t));
            st->stats.cached++;
        } else {
            memset(allow, 0, words * sizeof(uint32_t));
            st->m.cut = false;
            st->m.work_limit = st->m.work_done + st->mask_work;
            size_t n_ok = gvocab_walk(&g->vocab, &st->m, st->cur, allow, n_vocab, st->sstack);
            st->m.work_limit = 0;
            if (st->m.cut) st->stats.cut_short++;
            set_end_bits(g, allow, n_vocab, false);
            bool accept = gmatch_accepting(&st->m, st->cur);
            if (accept) set_end_bits(g, allow, n_vocab, true);
            if (st->m.oom || (n_ok == 0 && !accept)) {
                /* no token can continue the text (a byte the vocabulary cannot spell, or out of
                 * memory): end it here; finish() reports it invalid */
                st->invalid = true;
                memset(allow, 0, words * sizeof(uint32_t));
                set_end_bits(g, allow, n_vocab, true);
            } else {
                int k = st->cache_next;
                st->cache_next = (k + 1) % MASK_CACHE;
                if (st->cache[k].n_vocab != n_vocab) {
                    free(st->cache[k].bits);
                    st->cache[k].bits = malloc(words * sizeof(uint32_t));
                    st->cache[k].n_vocab = n_vocab;
                }
                if (st->cache[k].bits) {
                    memcpy(st->cache[k].bits, allow, words * sizeof(uint32_t));
                    st->cache[k].state = st->cur;
                    st->cache[k].generation = st->m.generation;
                }
            }
        }
    }
    st->stats.masks++;
    const double dt = now_ms() - t0;
    st->stats.total_ms += dt;
    if (dt > st->stats.max_ms) st->stats.max_ms = dt;
    return true;
}

MglGrammarResult mgl_grammar_state_finish(MglGrammarState* st, const int32_t* ids, size_t n_ids, const char** text) {
    if (text) *text = "";
    if (!st) return MGL_GRAMMAR_INVALID;
    catch_up(st, ids, ids ? n_ids : 0);
    MglGrammarResult r;
    if (st->invalid)
        r = MGL_GRAMMAR_INVALID;
    else if (st->ended)
        r = MGL_GRAMMAR_COMPLETE;
    else
        r = classify(&st->m, st->cur);
    if (text) {
        const uint8_t* b = st->text->data;
        size_t n = st->text->len;
        /* leave out the start rule's optional space: one leading space goes when the text
         * without it is matched the same way (root did not need it) */
        if (n && b[0] == ' ' && r != MGL_GRAMMAR_INVALID) {
            GMatch m;
            if (gmatch_init(&m, st->g->rules)) {
                int32_t x = run_bytes(&m, b + 1, n - 1);
                if (!m.oom && classify(&m, x) == classify(&st->m, st->cur)) {
                    b++;
                    n--;
                }
                gmatch_clear(&m);
            }
        }
        g_free(st->text_out);
        st->text_out = g_strndup(n ? (const char*)b : "", n);
        *text = st->text_out;
    }
    return r;
}

void mgl_grammar_state_stats(const MglGrammarState* st, MglGrammarStats* out) {
    if (!out) return;
    memset(out, 0, sizeof *out);
    if (!st) return;
    *out = st->stats;
    out->n_states = st->m.n_sets;
    out->n_stacks = st->m.n_nodes;
}

int gram_state_completion(MglGrammarState* st, uint8_t* out, int cap) {
    if (!st || st->invalid) return -1;
    if (st->ended) return 0;
    return gmatch_shortest_completion(&st->m, st->cur, out, cap);
}

void gram_state_set_mask_cache(MglGrammarState* st, bool on) {
    if (st) st->no_cache = !on;
}
