/* fuzz_grammar: the grammar notation and the JSON Schema compiler on
 * arbitrary text, then the matcher on what compiles.
 *
 * Input: byte 0 picks the mode (bit 0: JSON Schema, else grammar text; bit 1:
 * compile against a fixed tokenizer, bits 2-4: which one) and, for the mask
 * run, seeds the token choices; the rest, up to a NUL, is the text.
 *
 * Checked properties: a refusal leaves no grammar and a one-line message; a
 * grammar matches probe texts without crashing; with a tokenizer, every mask
 * allows some token (an end token at least) and following the mask never
 * leaves the grammar (finish() is never "invalid"). */
#include "fuzz-fixed-tok.h"

#include <string.h>

static void check(bool ok, const char* what) {
    if (ok) return;
    fprintf(stderr, "fuzz_grammar: %s\n", what);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    fixed_tok_init();
    if (size < 1) return 0;
    const uint8_t mode = data[0];
    size_t n = 0;
    while (1 + n < size && data[1 + n]) n++;
    char* text = malloc(n + 1);
    if (!text) return 0;
    memcpy(text, data + 1, n);
    text[n] = 0;
    const MglTokenizer* tok = (mode & 2) ? g_fixed[((mode >> 2) & 7) % N_FIXED].tok : NULL;
    MglGrammar* g = NULL;
    MglErr err = {0};
    MglStatus st =
        (mode & 1) ? mgl_grammar_from_schema(tok, text, &g, &err) : mgl_grammar_from_gbnf(tok, text, &g, &err);
    if (st != MGL_OK) {
        check(g == NULL, "a refused grammar was returned");
        check(err.msg[0] != 0 && strchr(err.msg, '\n') == NULL, "a refusal without a one-line message");
        free(text);
        return 0;
    }
    check(g != NULL && mgl_grammar_source(g) != NULL, "no grammar");
    static const char* const probes[] = {"",    " ", "{}",     "{\"a\":1}", "[true, null]", "\"x\"",
                                         "abc", "0", "-1.5e3", "\xc3\xa9",  "\xe4\xb8",     "\xff"};
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
        MglGrammarResult r = mgl_grammar_match_text(g, probes[i], -1);
        check(r == MGL_GRAMMAR_COMPLETE || r == MGL_GRAMMAR_INCOMPLETE || r == MGL_GRAMMAR_INVALID, "bad result");
    }
    (void)mgl_grammar_match_text(g, text, (ptrdiff_t)n);
    if (tok) {
        MglGrammarState* gs = NULL;
        check(mgl_grammar_state_new(g, &gs, &err) == MGL_OK, "no state for a grammar with a tokenizer");
        const int32_t V = mgl_tokenizer_n_vocab(tok);
        uint32_t* allow = malloc(sizeof(uint32_t) * (size_t)((V + 31) / 32));
        int32_t ids[24];
        size_t k = 0;
        uint32_t pick = (uint32_t)mode * 2654435761u + (uint32_t)n;
        bool ended = false;
        while (k < 24 && !ended) {
            memset(allow, 0xff, sizeof(uint32_t) * (size_t)((V + 31) / 32));
            mgl_grammar_token_mask(ids, k, allow, V, gs);
            int32_t count = 0;
            for (int32_t i = 0; i < V; i++) count += (allow[i >> 5] >> (i & 31)) & 1u;
            if (!count) break; /* no end token in this vocabulary and nothing to continue */
            /* the (pick % count)-th allowed token */
            int32_t want = (int32_t)(pick % (uint32_t)count), id = -1;
            for (int32_t i = 0; i < V && id < 0; i++)
                if ((allow[i >> 5] >> (i & 31)) & 1u && want-- == 0) id = i;
            ids[k++] = id;
            ended = id == mgl_tokenizer_eos(tok);
            pick = pick * 1103515245u + 12345u;
        }
        const char* t = NULL;
        MglGrammarResult r = mgl_grammar_state_finish(gs, ids, k, &t);
        check(t != NULL, "finish gave no text");
        (void)r;
        free(allow);
        mgl_grammar_state_free(gs);
    }
    mgl_grammar_free(g);
    free(text);
    return 0;
}
