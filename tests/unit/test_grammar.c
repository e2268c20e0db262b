/* test_grammar: the grammar notation and the JSON Schema compiler, on text
 * (no tokenizer): what each construct matches, what each error says. */
#include "test_grammar_util.h"

static MglGrammar* gbnf(const char* text) {
    MglGrammar* g = NULL;
    MglErr err = {0};
    MglStatus st = mgl_grammar_from_gbnf(NULL, text, &g, &err);
    CHECK_MSG(st == MGL_OK, "%s: %s", text, err.msg);
    return g;
}

static MglGrammar* schema(const char* text) {
    MglGrammar* g = NULL;
    MglErr err = {0};
    MglStatus st = mgl_grammar_from_schema(NULL, text, &g, &err);
    CHECK_MSG(st == MGL_OK, "%s: %s", text, err.msg);
    return g;
}

#define C MGL_GRAMMAR_COMPLETE
#define I MGL_GRAMMAR_INCOMPLETE
#define X MGL_GRAMMAR_INVALID

static void expect(MglGrammar* g, const char* text, MglGrammarResult want) {
    if (!g) return;
    MglGrammarResult r = mgl_grammar_match_text(g, text, -1);
    CHECK_MSG(r == want, "\"%s\": %s, expected %s (grammar:\n%s)", text, mgl_grammar_result_name(r),
              mgl_grammar_result_name(want), mgl_grammar_source(g));
}

static void expect_error(bool is_schema, const char* text, const char* needle) {
    MglGrammar* g = NULL;
    MglErr err = {0};
    MglStatus st =
        is_schema ? mgl_grammar_from_schema(NULL, text, &g, &err) : mgl_grammar_from_gbnf(NULL, text, &g, &err);
    CHECK_MSG(st == MGL_E_INVALID && g == NULL, "accepted: %s", text);
    CHECK_MSG(strstr(err.msg, needle) != NULL, "%s: message \"%s\" lacks \"%s\"", text, err.msg, needle);
    mgl_grammar_free(g);
}

static void test_notation(void) {
    MglGrammar* g = gbnf("# a comment\nroot ::= \"ab\" | \"c\" d # trailing\nd ::= \"d\"+\n");
    expect(g, "ab", C);
    expect(g, "a", I);
    expect(g, "cd", C);
    expect(g, "cddd", C);
    expect(g, "c", I);
    expect(g, "abd", X);
    expect(g, "", I);
    expect(g, " ab", C); /* one leading space is allowed */
    expect(g, "  ab", X);
    mgl_grammar_free(g);

    /* repetition: * + ? {m} {m,} {m,n} {,n} on literals, classes and groups */
    g = gbnf("root ::= \"x\"{2} [0-9]{1,3} (\"ab\" | \"c\"){,2} \"y\"{2,} \"z\"? \"!\"* \"e\"+\n");
    expect(g, "xx1yye", C);
    expect(g, "xx123abcyyyz!!!eee", C);
    expect(g, "xx1234yye", X);
    expect(g, "xx1ababcyye", X);
    expect(g, "x1yye", X);
    expect(g, "xx1ye", X);
    expect(g, "xx1yy", I);
    mgl_grammar_free(g);

    /* a rule spanning lines; recursion (balanced brackets) */
    g = gbnf("root ::= item\n   (\",\" item)*\nitem ::= \"[\" item? \"]\" | [a-z]\n");
    expect(g, "[[a]],b,[]", C);
    expect(g, "[[a]", I);
    expect(g, "[[a]]]", X);
    mgl_grammar_free(g);

    /* classes: ranges, negation, escapes, UTF-8 ranges, any character */
    g = gbnf("root ::= [^a-c\\n] [\\x41-\\x43\\]] [α-ω] [^\\u0000-\\u00FF] . \"\\u00e9\\t\\\"\"\n");
    expect(g, "dBβ中x\xc3\xa9\t\"", C);
    expect(g, "d]ω\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xc3\xa9\t\"", C);
    expect(g, "aBβ中xé\t\"", X);
    expect(g, "\nBβ中xé\t\"", X);
    expect(g, "dDβ中xé\t\"", X);
    expect(g, "dBa中xé\t\"", X);
    expect(g, "dBβéxé\t\"", X);
    expect(g, "dBβ\xe4", I);         /* inside a character */
    expect(g, "dBβ\xe4\x41", X);     /* not UTF-8 */
    expect(g, "dBβ\xed\xa0\x80", X); /* a surrogate is never a character */
    mgl_grammar_free(g);

    g = gbnf("root ::= [^\"]*\n");
    expect(g, "\xc0\x80", X);         /* overlong */
    expect(g, "\xf4\x90\x80\x80", X); /* above U+10FFFF */
    expect(g, "h\xc3\xa9llo \xf0\x9f\x98\x80", C);
    mgl_grammar_free(g);

    /* empty literal, nullable rules inside repetition, right recursion */
    g = gbnf("root ::= a* \"\" b\na ::= \"a\" | \"\"  \nb ::= \"b\" b | \"\"\n");
    expect(g, "aab", C);
    expect(g, "aabbbb", C);
    expect(g, "", C);
    expect(g, "ba", X);
    mgl_grammar_free(g);
}

/* Stacked repetition operators and groups of one repeated atom are one
 * repetition where that is exact (x+++ as x+, ((x)+)+ as x+, x?+ as x*,
 * (x+){2,} as x{2,}); where it is not ((x{2,})*: no single x), the
 * operators nest. Each against the lengths the stacking allows, and deep
 * stacking stays cheap to match (the fuzzer once took 20 s over x++++...). */
static void test_stacked_repeats(void) {
    static const struct {
        const char* g;
        const char* allowed; /* lengths 0..6 of "a" before "!": '1' allowed */
    } k[] = {
        {"root ::= \"a\"+++ \"!\"\n", "0111111"},      {"root ::= ((((\"a\")+)+)+)+ \"!\"\n", "0111111"},
        {"root ::= \"a\"?+ \"!\"\n", "1111111"},       {"root ::= \"a\"+? \"!\"\n", "1111111"},
        {"root ::= \"a\"*+* \"!\"\n", "1111111"},      {"root ::= (\"a\"+){2,} \"!\"\n", "0011111"},
        {"root ::= (\"a\"{2,})* \"!\"\n", "1011111"},  {"root ::= (\"a\"{2})+ \"!\"\n", "0010101"},
        {"root ::= (\"a\"?){2,3} \"!\"\n", "1111000"}, {"root ::= (\"a\"{3})? \"!\"\n", "1001000"},
        {"root ::= \"a\"{2}{2} \"!\"\n", "0000100"},   {"root ::= \"a\"+{0} \"!\"\n", "1000000"},
        {"root ::= ((\"a\")?)+ \"!\"\n", "1111111"},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        MglGrammar* g = gbnf(k[i].g);
        char text[16];
        for (int n = 0; n <= 6; n++) {
            memset(text, 'a', (size_t)n);
            text[n] = '!';
            text[n + 1] = 0;
            expect(g, text, k[i].allowed[n] == '1' ? C : X);
        }
        mgl_grammar_free(g);
    }
    /* 40 stacked operators and 40 nested groups: one loop each */
    GString* s = g_string_new("root ::= \"a\"");
    for (int i = 0; i < 40; i++) g_string_append(s, i % 7 == 3 ? "?" : "+");
    g_string_append(s, " \"!\"\n");
    MglGrammar* g = gbnf(s->str);
    expect(g, "!", C);
    expect(g, "aaaa!", C);
    mgl_grammar_free(g);
    g_string_assign(s, "root ::= ");
    for (int i = 0; i < 40; i++) g_string_append_c(s, '(');
    g_string_append(s, "[a-c]");
    for (int i = 0; i < 40; i++) g_string_append(s, ")+");
    g_string_append(s, " \"!\"\n");
    g = gbnf(s->str);
    expect(g, "abcab!", C);
    expect(g, "!", X);
    mgl_grammar_free(g);
    g_string_free(s, TRUE);
}

static void test_notation_errors(void) {
    expect_error(false, "root ::= a\n", "rule \"a\" is used but never defined");
    expect_error(false, "x ::= \"a\"\n", "no rule named \"root\"");
    expect_error(false, "root ::= root \"a\" | \"b\"\n", "left-recursive");
    expect_error(false, "root ::= x? root \"a\" | \"b\"\nx ::= \"c\"\n", "left-recursive");
    expect_error(false, "root ::= x\nx ::= \"a\" x\n", "can never finish");
    expect_error(false, "root ::= \"a\n", "string literal runs past the end of the line");
    expect_error(false, "root ::= \"a", "unterminated string literal");
    expect_error(false, "root ::= [z-a]\n", "reversed range");
    expect_error(false, "root ::= []\n", "empty character class");
    expect_error(false, "root ::= [abc\n", "unterminated character class");
    expect_error(false, "root ::= \"a\"{3,2}\n", "maximum is below the minimum");
    expect_error(false, "root ::= \"a\"{100000}\n", "repetition count above");
    expect_error(false, "root ::= \"a\"{}\n", "needs a count");
    expect_error(false, "root ::= \"\\q\"\n", "unknown escape '\\q'");
    expect_error(false, "root ::= \"\\x4\"\n", "hexadecimal digits");
    expect_error(false, "root ::= \"\\ud800\"\n", "surrogate");
    expect_error(false, "root ::= \"\\U00110000\"\n", "above U+10FFFF");
    expect_error(false, "root ::= (\"a\"\n", "missing ')'");
    expect_error(false, "root ::= \"a\")\n", "unbalanced ')'");
    expect_error(false, "root ::= \"a\"\nroot ::= \"b\"\n", "defined twice");
    expect_error(false, "root ::= \"a\" @\n", "unexpected '@'");
    expect_error(false, "::= \"a\"\n", "expected a rule definition");
    expect_error(false, "root ::= \"\xff\"\n", "invalid UTF-8");
    GString* big = g_string_new("root ::= ");
    for (int i = 0; i < 40; i++) g_string_append(big, "\"a\"{0,10000} ");
    expect_error(false, big->str, "more than");
    g_string_free(big, TRUE);
    GString* deep = g_string_new("root ::= ");
    for (int i = 0; i < 200; i++) g_string_append_c(deep, '(');
    g_string_append(deep, "\"a\"");
    for (int i = 0; i < 200; i++) g_string_append_c(deep, ')');
    expect_error(false, deep->str, "nested deeper");
    g_string_free(deep, TRUE);
    /* line numbers */
    expect_error(false, "root ::= a\n\n\na ::= [b-a]\n", "line 4");
}

static void test_schema(void) {
    MglGrammar* g =
        schema("{\"type\":\"object\",\"properties\":{\"count\":{\"type\":\"integer\"}},\"required\":[\"count\"]}");
    expect(g, "{\"count\":3}", C);
    expect(g, "{\"count\": 3}", C);
    expect(g, "{ \"count\" : -42 }", C);
    expect(g, " {\"count\":0}", C);
    expect(g, "{\"count\":  3}", X); /* at most one space between tokens */
    expect(g, "{\"count\":03}", X);
    expect(g, "{\"count\":3.5}", X);
    expect(g, "{\"count\":\"3\"}", X);
    expect(g, "{}", X);
    expect(g, "{\"count\":12", I);
    expect(g, "{\"count\":12345678901234567}", X); /* 16 digits at most */
    mgl_grammar_free(g);

    g = schema("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"boolean\"},\"b\":{\"type\":\"null\"},"
               "\"c\":{\"type\":\"number\"}},\"required\":[\"b\"]}");
    expect(g, "{\"b\":null}", C);
    expect(g, "{\"a\":true,\"b\":null}", C);
    expect(g, "{\"a\":false, \"b\":null, \"c\":-1.5e+3}", C);
    expect(g, "{\"b\":null,\"c\":0.25}", C);
    expect(g, "{\"a\":true}", X);
    expect(g, "{\"b\":null,\"a\":true}", X); /* the schema's order */
    expect(g, "{\"b\":null,}", X);
    expect(g, "{,\"b\":null}", X);
    mgl_grammar_free(g);

    g = schema("{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"string\"}}}");
    expect(g, "{}", C);
    expect(g, "{ }", C);
    expect(g, "{  }", X);
    expect(g, "{\"x\":\"\"}", C);
    expect(g, "{\"x\":\"a\\\"b\\\\c\\n\\u00e9\\uD7FF\"}", C);
    expect(g, "{\"x\":\"\\uD800\"}", X); /* no lone surrogates */
    expect(g, "{\"x\":\"a\nb\"}", X);    /* raw control character */
    expect(g, "{\"x\":\"\\q\"}", X);
    mgl_grammar_free(g);

    g = schema("{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":3,\"minLength\":1},"
               "\"minItems\":1,\"maxItems\":3}");
    expect(g, "[\"a\"]", C);
    expect(g, "[\"abc\", \"é中文\",\"x\"]", C);
    expect(g, "[]", X);
    expect(g, "[\"\"]", X);
    expect(g, "[\"abcd\"]", X);
    expect(g, "[\"a\",\"b\",\"c\",\"d\"]", X);
    mgl_grammar_free(g);

    g = schema("{\"type\":\"array\",\"maxItems\":0}");
    expect(g, "[]", C);
    expect(g, "[1]", X);
    mgl_grammar_free(g);

    g = schema("{\"enum\":[\"red car\",3,true,null,{\"a\":[1]},\"q\\\"\"],\"title\":\"t\"}");
    expect(g, "\"red car\"", C);
    expect(g, "3", C);
    expect(g, "null", C);
    expect(g, "{\"a\":[1]}", C);
    expect(g, "\"q\\\"\"", C);
    expect(g, "\"red\"", X);
    expect(g, "4", X);
    mgl_grammar_free(g);

    g = schema("{\"type\":\"integer\",\"enum\":[1,\"a\",2.0,2.5]}");
    expect(g, "1", C);
    expect(g, "2.0", C);
    expect(g, "\"a\"", X);
    expect(g, "2.5", X);
    mgl_grammar_free(g);

    g = schema("{\"type\":[\"string\",\"null\"],\"maxLength\":2}");
    expect(g, "null", C);
    expect(g, "\"ab\"", C);
    expect(g, "\"abc\"", X);
    mgl_grammar_free(g);

    g = schema("{\"anyOf\":[{\"type\":\"integer\"},{\"const\":\"none\"}]}");
    expect(g, "12", C);
    expect(g, "\"none\"", C);
    expect(g, "\"x\"", X);
    mgl_grammar_free(g);

    /* nested objects, arrays of objects, required names without a schema */
    g = schema("{\"type\":\"object\",\"properties\":{\"objects\":{\"type\":\"array\",\"items\":{\"type\":\"object\","
               "\"properties\":{\"label\":{\"enum\":[\"red\",\"blue\"]},\"box\":{\"type\":\"array\",\"items\":"
               "{\"type\":\"number\"},\"minItems\":4,\"maxItems\":4}},\"required\":[\"label\",\"box\"]}},"
               "\"alert\":{\"type\":\"boolean\"}},\"required\":[\"objects\",\"alert\",\"extra\"]}");
    expect(g, "{\"objects\":[{\"label\":\"red\",\"box\":[1,2,3.5,4]}],\"alert\":false,\"extra\":{\"k\":[null]}}", C);
    expect(g, "{\"objects\": [], \"alert\": true, \"extra\": 1}", C);
    expect(g, "{\"objects\":[{\"label\":\"red\",\"box\":[1,2,3]}],\"alert\":false,\"extra\":1}", X);
    mgl_grammar_free(g);

    /* true / {} : any JSON value */
    g = schema("true");
    expect(g, "[{\"a\":[1,{}]},\"x\",-0.5e2,null]", C);
    mgl_grammar_free(g);
    g = schema("{}");
    expect(g, "{\"a\" : [ 1 , 2 ] }", C);
    expect(g, "{\"a\"}", X);
    mgl_grammar_free(g);
    /* the type inferred from keywords */
    g = schema("{\"maxLength\":2}");
    expect(g, "\"ab\"", C);
    expect(g, "\"abc\"", X);
    mgl_grammar_free(g);
}

static void test_schema_errors(void) {
    expect_error(true, "{\"type\":\"string\",\"pattern\":\"^a\"}", "unsupported keyword \"pattern\" (at the root)");
    expect_error(true, "{\"properties\":{\"a\":{\"type\":\"integer\",\"minimum\":0}}}",
                 "unsupported keyword \"minimum\" (at /properties/a)");
    expect_error(true, "{\"type\":\"array\",\"items\":{\"format\":\"date\"}}",
                 "unsupported keyword \"format\" (at /items)");
    expect_error(true, "{\"$ref\":\"#/$defs/a\"}", "unsupported keyword \"$ref\"");
    expect_error(true, "{\"oneOf\":[{}]}", "unsupported keyword \"oneOf\"");
    expect_error(true, "{\"type\":\"foo\"}", "unknown \"type\" \"foo\"");
    expect_error(true, "{\"type\":[]}", "\"type\" must be");
    expect_error(true, "{\"type\":\"array\",\"minItems\":3,\"maxItems\":2}", "\"maxItems\" 2 is below \"minItems\" 3");
    expect_error(true, "{\"type\":\"string\",\"maxLength\":-1}", "\"maxLength\" must be a non-negative integer");
    expect_error(true, "{\"type\":\"string\",\"maxLength\":100000}", "string lengths above");
    expect_error(true, "{\"enum\":[]}", "\"enum\" must be a non-empty array");
    expect_error(true, "{\"type\":\"integer\",\"enum\":[\"a\"]}", "\"enum\" has no value of the schema's \"type\"");
    expect_error(true, "{\"anyOf\":[{}],\"type\":\"string\"}", "\"anyOf\" beside \"type\"");
    expect_error(true, "{\"required\":\"a\"}", "\"required\" must be an array");
    expect_error(true, "{\"properties\":[]}", "\"properties\" must be an object");
    expect_error(true, "false", "allows no value");
    expect_error(true, "[1]", "must be an object or a boolean");
    expect_error(true, "{\"type\":", "not JSON");
    expect_error(true, "", "empty");
    expect_error(true, "{\"maxLength\":2,\"maxItems\":2}", "name the \"type\"");
    GString* deep = g_string_new(NULL);
    for (int i = 0; i < 200; i++) g_string_append(deep, "{\"type\":\"array\",\"items\":");
    g_string_append(deep, "{}");
    for (int i = 0; i < 200; i++) g_string_append(deep, "}");
    expect_error(true, deep->str, "nested deeper");
    g_string_free(deep, TRUE);
}

/* Random schemas: the compiler takes each, and every value the generator of
 * test_grammar_util.h's schemas allows that we write by hand is matched. */
static void test_schema_random_compiles(void) {
    GRand* r = g_rand_new_with_seed(7);
    for (int i = 0; i < 500; i++) {
        GString* s = g_string_new(NULL);
        gt_rand_schema(r, 3, s);
        MglGrammar* g = NULL;
        MglErr err = {0};
        CHECK_MSG(mgl_grammar_from_schema(NULL, s->str, &g, &err) == MGL_OK, "%s: %s", s->str, err.msg);
        mgl_grammar_free(g);
        g_string_free(s, TRUE);
    }
    g_rand_free(r);
}

int main(void) {
    test_notation();
    test_stacked_repeats();
    test_notation_errors();
    test_schema();
    test_schema_errors();
    test_schema_random_compiles();
    TEST_DONE();
}
