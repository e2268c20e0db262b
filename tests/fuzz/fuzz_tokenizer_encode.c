/* fuzz_tokenizer_encode: encode arbitrary bytes with fixed tokenizers (two
 * byte-level BPE, two SentencePiece-style tokenizer.json, one real
 * tokenizer.model), with and without special tokens, then decode the ids back
 * (skip_special on and off) and stream them through the detokenizer.
 *
 * Input: byte 0 picks the tokenizer; the rest is the text. Invalid UTF-8 must
 * be refused cleanly; the text is then also encoded after lossy repair so
 * that most inputs reach the tokenizer proper.
 *
 * Checked properties: every id is in range; decode succeeds on encode's
 * output and returns valid UTF-8; the detokenizer output, pushed id by id,
 * is valid UTF-8 at every step and concatenates to decode's output. */
#include "fuzz-fixed-tok.h"

#include <glib.h>
#include <string.h>

static void check(bool ok, const char* what, const FixedTok* f) {
    if (ok) return;
    fprintf(stderr, "fuzz_tokenizer_encode: %s (%s: %s)\n", what, f->rel, f->kind);
    abort();
}

static void roundtrip(const FixedTok* f, const char* text, size_t len) {
    for (int add = 0; add < 2; add++) {
        int32_t* ids = NULL;
        size_t n = 0;
        MglErr err = {0};
        MglStatus st = mgl_tokenizer_encode(f->tok, text, (ptrdiff_t)len, add, &ids, &n, &err);
        if (st != MGL_OK) {
            check(ids == NULL, "failed encode left *ids set", f);
            continue;
        }
        int32_t nv = mgl_tokenizer_n_vocab(f->tok);
        for (size_t i = 0; i < n; i++) check(ids[i] >= 0 && ids[i] < nv, "encode produced an id out of range", f);
        for (int skip = 0; skip < 2; skip++) {
            char* dec = NULL;
            st = mgl_tokenizer_decode(f->tok, ids, n, skip, &dec, &err);
            check(st == MGL_OK, "decode failed on encode's own output", f);
            check(g_utf8_validate(dec, -1, NULL), "decode returned invalid UTF-8", f);
            MglDetok* d = mgl_detok_new(f->tok, skip);
            check(d != NULL, "mgl_detok_new failed", f);
            GString* cat = g_string_new(NULL);
            for (size_t i = 0; i <= n; i++) {
                const char* piece = i < n ? mgl_detok_push(d, ids[i]) : mgl_detok_flush(d);
                check(piece != NULL, "detok returned NULL", f);
                check(g_utf8_validate(piece, -1, NULL), "detok emitted invalid UTF-8", f);
                g_string_append(cat, piece);
            }
            check(strcmp(cat->str, dec) == 0, "streamed text differs from decode()", f);
            g_string_free(cat, TRUE);
            mgl_detok_free(d);
            free(dec);
        }
        free(ids);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    fixed_tok_init();
    if (size < 1) return 0;
    const FixedTok* f = &g_fixed[data[0] % N_FIXED];
    const char* text = (const char*)data + 1;
    size_t len = size - 1;
    roundtrip(f, text, len);
    if (!g_utf8_validate_len(text, (gssize)len, NULL)) {
        char* fixed = g_utf8_make_valid(text, (gssize)len);
        roundtrip(f, fixed, strlen(fixed));
        g_free(fixed);
    }
    return 0;
}
