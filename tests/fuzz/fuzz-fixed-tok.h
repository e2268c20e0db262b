/* fuzz-fixed-tok.h: the fixed tokenizers of the encode and detok harnesses,
 * loaded once per process from the fixtures and never freed. */
#ifndef MGL_FUZZ_FIXED_TOK_H
#define MGL_FUZZ_FIXED_TOK_H

#include "fuzz-common.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct {
    const char* rel;
    const char* kind;
    MglTokenizer* tok;
} FixedTok;

static FixedTok g_fixed[] = {
    {"tokenizer/tiny_gpt2/tokenizer.json", "byte-level BPE (GPT-2)", NULL},
    {"models/tiny-llama3/llm", "byte-level BPE (Llama 3 style) + tokenizer_config.json", NULL},
    {"tokenizer/tiny_metaspace/tokenizer.json", "SentencePiece-style tokenizer.json (Metaspace)", NULL},
    {"models/tiny-vicuna/llm", "SentencePiece-style tokenizer.json (Llama/Vicuna) + tokenizer_config.json", NULL},
    {"tokenizer/spm_bpe.model", "SentencePiece tokenizer.model", NULL},
};
#define N_FIXED (sizeof g_fixed / sizeof g_fixed[0])

static void fixed_tok_init(void) {
    static bool done;
    if (done) return;
    done = true;
    for (size_t i = 0; i < N_FIXED; i++) {
        MglErr err = {0};
        if (mgl_tokenizer_load(fuzz_fixture(g_fixed[i].rel), &g_fixed[i].tok, &err) != MGL_OK) {
            /* A missing fixture would silently shrink what is fuzzed: refuse. */
            fprintf(stderr, "fuzz harness: cannot load %s (%s): %s\n", g_fixed[i].rel, g_fixed[i].kind, err.msg);
            abort();
        }
    }
}

#endif
