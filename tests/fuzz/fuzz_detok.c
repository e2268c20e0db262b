/* fuzz_detok: the streaming detokenizer on arbitrary id sequences.
 *
 * Input: byte 0 picks the tokenizer (and bit 7 skip_special); the rest is a
 * sequence of little-endian int32 ids, each taken modulo (n_vocab + 8) and
 * shifted down by 4, so ids -4..-1 and n_vocab..n_vocab+3 occur.
 *
 * Checked properties: every push/flush returns valid UTF-8 (the API promises
 * complete characters only); for in-range sequences, the concatenation equals
 * mgl_tokenizer_decode's text, and decode refuses sequences with an
 * out-of-range id. */
#include "fuzz-fixed-tok.h"

#include <glib.h>
#include <string.h>

static void check(bool ok, const char* what, const FixedTok* f) {
    if (ok) return;
    fprintf(stderr, "fuzz_detok: %s (%s: %s)\n", what, f->rel, f->kind);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    fixed_tok_init();
    if (size < 1) return 0;
    const FixedTok* f = &g_fixed[(data[0] & 0x7f) % N_FIXED];
    bool skip = data[0] & 0x80;
    int32_t nv = mgl_tokenizer_n_vocab(f->tok);
    size_t n = (size - 1) / 4;
    int32_t* ids = malloc((n ? n : 1) * sizeof *ids);
    if (!ids) return 0;
    bool in_range = true;
    for (size_t i = 0; i < n; i++) {
        uint32_t v;
        memcpy(&v, data + 1 + 4 * i, 4);
        ids[i] = (int32_t)(v % ((uint32_t)nv + 8u)) - 4;
        if (ids[i] < 0 || ids[i] >= nv || !mgl_tokenizer_id_to_piece(f->tok, ids[i])) in_range = false;
    }
    MglDetok* d = mgl_detok_new(f->tok, skip);
    check(d != NULL, "mgl_detok_new failed", f);
    GString* cat = g_string_new(NULL);
    for (size_t i = 0; i <= n; i++) {
        const char* piece = i < n ? mgl_detok_push(d, ids[i]) : mgl_detok_flush(d);
        check(piece != NULL, "detok returned NULL", f);
        check(g_utf8_validate(piece, -1, NULL), "detok emitted invalid UTF-8", f);
        g_string_append(cat, piece);
    }
    mgl_detok_free(d);
    char* dec = NULL;
    MglErr err = {0};
    MglStatus st = mgl_tokenizer_decode(f->tok, ids, n, skip, &dec, &err);
    if (in_range) {
        check(st == MGL_OK, "decode failed on in-range ids", f);
        check(strcmp(cat->str, dec) == 0, "streamed text differs from decode()", f);
    } else {
        check(st != MGL_OK, "decode accepted an out-of-range id", f);
        check(dec == NULL, "failed decode left *text set", f);
    }
    free(dec);
    g_string_free(cat, TRUE);
    free(ids);
    return 0;
}
