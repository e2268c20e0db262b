/* test_grammar_props: property tests of schema-constrained generation with
 * random logits (no model), on the demo model's tokenizer (byte-fallback
 * pieces for most of JSON), the 32k SentencePiece-style and the 128k Llama-3
 * byte-level vocabularies.
 *
 * For many random schemas of the subset (test_grammar_util.h) and random
 * token choices under the mask, every step:
 *  - some token is allowed;
 *  - the text so far still has a completion to a whole answer (the mask never
 *    leads out of the automaton's live part);
 * and at the end:
 *  - a complete answer parses (json-glib) and validates against its schema;
 *  - an incomplete one (the budget ran out) is reported as such, and the text
 *    plus the shortest completion parses and validates;
 *  - the tokenizer's own decode of the ids gives the same text (spaces
 *    aside, which a decoder's clean-up may drop before punctuation).
 * MGL_GRAMMAR_PROP_RUNS scales the number of schemas (default 120 per
 * tokenizer). */
#include "test_grammar_util.h"

static char* no_spaces(const char* s) {
    GString* o = g_string_new(NULL);
    for (; *s; s++)
        if (*s != ' ') g_string_append_c(o, *s);
    return g_string_free(o, FALSE);
}

static void run_tokenizer(const char* env, const char* rel, int runs, uint32_t seed) {
    char* path = gt_path(env, rel);
    MglTokenizer* tok = NULL;
    MglErr err = {0};
    REQUIRE(mgl_tokenizer_load(path, &tok, &err) == MGL_OK);
    GRand* r = g_rand_new_with_seed(seed);
    int complete = 0, incomplete = 0, steps = 0, failures = 0;
    double mask_ms = 0;
    for (int i = 0; i < runs && failures < 5; i++) {
        GString* sch = g_string_new(NULL);
        gt_rand_top_schema(r, sch);
        MglGrammar* g = NULL;
        if (mgl_grammar_from_schema(tok, sch->str, &g, &err) != MGL_OK) {
            CHECK_MSG(0, "%s: %s", sch->str, err.msg);
            failures++;
            g_string_free(sch, TRUE);
            continue;
        }
        MglGrammarState* st = NULL;
        REQUIRE(mgl_grammar_state_new(g, &st, NULL) == MGL_OK);
        /* budgets from tight (often incomplete) to roomy; steering from none (pure random logits) up */
        int budget = (int)g_rand_int_range(r, 4, 120);
        double steer = (double)g_rand_int_range(r, 0, 5) / 4.0;
        GtRun run;
        bool ok = gt_drive(tok, st, r, budget, steer, &run);
        steps += run.steps;
        mask_ms += run.mask_ms;
        GString* why = g_string_new(NULL);
        if (!ok) {
            CHECK_MSG(0, "%s: the drive failed (schema %s)", rel, sch->str);
            failures++;
        } else if (run.result == MGL_GRAMMAR_COMPLETE) {
            complete++;
            if (!gt_check_json(sch->str, run.text, why)) {
                CHECK_MSG(0, "%s: complete answer %s does not validate against %s: %s", rel, run.text, sch->str,
                          why->str);
                failures++;
            }
        } else if (run.result == MGL_GRAMMAR_INCOMPLETE) {
            incomplete++;
            CHECK_MSG(run.completed != NULL, "%s: incomplete without a completion: %s", rel, run.text);
            if (run.completed && !gt_check_json(sch->str, run.completed, why)) {
                CHECK_MSG(0, "%s: completed answer %s does not validate against %s: %s", rel, run.completed, sch->str,
                          why->str);
                failures++;
            }
            /* incomplete means the budget ran out: no end token came */
            CHECK(run.n_ids == (size_t)budget);
        } else {
            CHECK_MSG(0, "%s: invalid result under the mask: %s (schema %s)", rel, run.text, sch->str);
            failures++;
        }
        if (ok && run.result != MGL_GRAMMAR_INVALID) {
            char* dec = NULL;
            REQUIRE(mgl_tokenizer_decode(tok, run.ids, run.n_ids, true, &dec, NULL) == MGL_OK);
            if (g_utf8_validate(run.text, -1, NULL) && !strstr(dec, "\xef\xbf\xbd")) {
                char *a = no_spaces(dec), *b = no_spaces(run.text);
                CHECK_MSG(!strcmp(a, b), "%s: decode \"%s\" vs the grammar's text \"%s\"", rel, dec, run.text);
                g_free(a);
                g_free(b);
            }
            free(dec);
        }
        if (getenv("MGL_GRAMMAR_PROP_VERBOSE"))
            printf("  [%s, budget %d, steer %.2f] %s\n    -> %s\n", mgl_grammar_result_name(run.result), budget, steer,
                   sch->str, run.text);
        g_string_free(why, TRUE);
        gt_run_clear(&run);
        mgl_grammar_state_free(st);
        mgl_grammar_free(g);
        g_string_free(sch, TRUE);
    }
    printf("%-36s %d schemas: %d complete, %d incomplete, %d steps, mask %.3f ms/step on average\n", rel, runs,
           complete, incomplete, steps, steps ? mask_ms / steps : 0.0);
    CHECK(complete > runs / 5);
    CHECK(incomplete > 0);
    g_rand_free(r);
    gt_bytes_forget();
    mgl_tokenizer_free(tok);
    g_free(path);
}

/* Grammars of the notation, driven the same way: every complete text is a
 * sentence of the grammar (checked on text), every incomplete one a prefix. */
static void run_gbnf(const char* env, const char* rel) {
    static const char* const grammars[] = {
        "root ::= item (\", \" item){0,4}\nitem ::= [a-z]{1,6} | [0-9]+ | \"(\" root \")\"\n",
        "root ::= [^\\x00-\\x1f]{0,12} \"!\"\n",
        "root ::= (\"é\" | \"中文\" | [α-ω] | [\\U0001F600-\\U0001F64F])+ \".\"\n",
        "root ::= \"yes\" | \"no\" | \"maybe \" [0-9] \"%\"\n",
    };
    char* path = gt_path(env, rel);
    MglTokenizer* tok = NULL;
    REQUIRE(mgl_tokenizer_load(path, &tok, NULL) == MGL_OK);
    GRand* r = g_rand_new_with_seed(11);
    int complete = 0;
    for (size_t gi = 0; gi < G_N_ELEMENTS(grammars); gi++) {
        MglGrammar* g = NULL;
        MglErr err = {0};
        REQUIRE(mgl_grammar_from_gbnf(tok, grammars[gi], &g, &err) == MGL_OK);
        for (int i = 0; i < 25; i++) {
            MglGrammarState* st = NULL;
            REQUIRE(mgl_grammar_state_new(g, &st, NULL) == MGL_OK);
            GtRun run;
            CHECK(gt_drive(tok, st, r, g_rand_int_range(r, 3, 60), i % 3 ? 0.7 : 0.0, &run));
            MglGrammarResult m = mgl_grammar_match_text(g, run.text, -1);
            CHECK_MSG(run.result != MGL_GRAMMAR_INVALID &&
                          (m == run.result || (run.result == MGL_GRAMMAR_COMPLETE && m == MGL_GRAMMAR_COMPLETE)),
                      "%s: \"%s\" reported %s, the text matches as %s", rel, run.text,
                      mgl_grammar_result_name(run.result), mgl_grammar_result_name(m));
            CHECK(g_utf8_validate(run.text, -1, NULL) || run.result == MGL_GRAMMAR_INCOMPLETE);
            complete += run.result == MGL_GRAMMAR_COMPLETE;
            CHECK(run.completed && mgl_grammar_match_text(g, run.completed, -1) == MGL_GRAMMAR_COMPLETE);
            gt_run_clear(&run);
            mgl_grammar_state_free(st);
        }
        mgl_grammar_free(g);
    }
    CHECK(complete > 10);
    g_rand_free(r);
    gt_bytes_forget();
    mgl_tokenizer_free(tok);
    g_free(path);
}

int main(void) {
    int runs = 120;
    const char* e = getenv("MGL_GRAMMAR_PROP_RUNS");
    if (e && atoi(e) > 0) runs = atoi(e);
    run_tokenizer("MGL_FIXTURES", "../../models/mgllava-demo/llm", runs, 1);
    run_tokenizer("MGL_SHARED_TESTDATA", "tokenizers/sp32k", runs, 2);
    run_tokenizer("MGL_SHARED_TESTDATA", "tokenizers/llama3", runs / 2, 3);
    run_tokenizer("MGL_FIXTURES", "models/tiny-llama3/llm", runs, 4);
    run_gbnf("MGL_SHARED_TESTDATA", "tokenizers/sp32k");
    run_gbnf("MGL_SHARED_TESTDATA", "tokenizers/llama3");
    TEST_DONE();
}
