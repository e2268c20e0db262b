/* common/mgl-json.c: the one JSON string escaper (mgl_json_append_string),
 * the one nesting limit (mgl_json_depth_ok, MGL_JSON_MAX_DEPTH) and the
 * GError reports of the checked lookups. */
#include "mgl-json.h"
#include "mgl-test.h"

#include <glib.h>
#include <glib/gstdio.h>

static char* esc(const char* s) {
    GString* g = g_string_new(NULL);
    mgl_json_append_string(g, s);
    return g_string_free(g, FALSE);
}

static void check_esc(const char* in, const char* want) {
    char* got = esc(in);
    CHECK_MSG(strcmp(got, want) == 0, "escape: got %s, want %s", got, want);
    g_free(got);
}

/* json-glib reads the escaped text back as the input */
static void check_roundtrip(const char* in) {
    GString* g = g_string_new("{\"s\": ");
    mgl_json_append_string(g, in);
    g_string_append(g, "}");
    JsonParser* p = NULL;
    JsonObject* o = NULL;
    GError* e = NULL;
    CHECK_MSG(mgl_json_parse_object("roundtrip", g->str, g->len, &p, &o, &e), "%s: %s", g->str, e ? e->message : "");
    if (o) CHECK_MSG(strcmp(json_object_get_string_member(o, "s"), in) == 0, "round trip of %s", g->str);
    if (p) g_object_unref(p);
    g_clear_error(&e);
    g_string_free(g, TRUE);
}

static void escaper(void) {
    check_esc("", "\"\"");
    check_esc(NULL, "\"\"");
    check_esc("plain text", "\"plain text\"");
    /* quotes and backslash */
    check_esc("say \"hi\"", "\"say \\\"hi\\\"\"");
    check_esc("a\\b", "\"a\\\\b\"");
    check_esc("\\\"", "\"\\\\\\\"\"");
    /* control characters: by name where JSON has one, else \u00XX */
    check_esc("\n\r\t\b\f", "\"\\n\\r\\t\\b\\f\"");
    check_esc("\x01\x02\x1b\x1f", "\"\\u0001\\u0002\\u001b\\u001f\"");
    check_esc("a\x7f"
              "b",
              "\"a\x7f"
              "b\""); /* DEL is not a JSON control character */
    check_esc("/", "\"/\"");
    /* non-ASCII UTF-8 is kept as it is */
    check_esc("caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x90\x88",
              "\"caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x90\x88\"");
    /* invalid UTF-8 is copied byte for byte (the engine function always did:
     * nothing dropped or replaced) */
    check_esc("x\xff\xfey", "\"x\xff\xfey\"");
    check_esc("\xe6\x97", "\"\xe6\x97\"");         /* truncated sequence */
    check_esc("\xc0\xaf", "\"\xc0\xaf\"");         /* overlong '/' */
    check_esc("\xed\xa0\x80", "\"\xed\xa0\x80\""); /* a surrogate */
    /* appends: the string already in the buffer stays */
    GString* g = g_string_new("[");
    mgl_json_append_string(g, "a");
    g_string_append_c(g, ',');
    mgl_json_append_string(g, "b\n");
    g_string_append_c(g, ']');
    CHECK(strcmp(g->str, "[\"a\",\"b\\n\"]") == 0);
    g_string_free(g, TRUE);

    char all[128];
    for (int i = 1; i < 128; i++) all[i - 1] = (char)i;
    all[127] = 0;
    check_roundtrip(all);
    check_roundtrip("caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x90\x88 \"q\" \\ \t");
}

static char* nest(int depth, const char* inner) {
    GString* g = g_string_new(NULL);
    for (int i = 0; i < depth; i++) g_string_append_c(g, '[');
    g_string_append(g, inner);
    for (int i = 0; i < depth; i++) g_string_append_c(g, ']');
    return g_string_free(g, FALSE);
}

static void depth(void) {
    CHECK(MGL_JSON_MAX_DEPTH == 64);
    char* ok = nest(MGL_JSON_MAX_DEPTH, "1");
    char* deep = nest(MGL_JSON_MAX_DEPTH + 1, "1");
    CHECK(mgl_json_depth_ok(ok, strlen(ok)));
    CHECK(!mgl_json_depth_ok(deep, strlen(deep)));
    /* only the first len bytes count */
    CHECK(mgl_json_depth_ok(deep, MGL_JSON_MAX_DEPTH));
    /* brackets inside strings, escaped quotes included, do not nest */
    GString* g = g_string_new("[\"");
    for (int i = 0; i < 1000; i++) g_string_append(g, "[{\\\"");
    g_string_append(g, "\"]");
    CHECK(mgl_json_depth_ok(g->str, g->len));
    g_string_free(g, TRUE);
    /* siblings do not add up */
    g = g_string_new("[");
    for (int i = 0; i < 1000; i++) g_string_append(g, i ? ",[[]]" : "[[]]");
    g_string_append(g, "]");
    CHECK(mgl_json_depth_ok(g->str, g->len));
    g_string_free(g, TRUE);

    /* the parser refuses past the limit, naming what and the limit */
    char* obj = g_strdup_printf("{\"a\": %s}", deep);
    JsonParser* p = NULL;
    JsonObject* o = NULL;
    GError* e = NULL;
    CHECK(!mgl_json_parse_object("deep.json", obj, strlen(obj), &p, &o, &e));
    CHECK(e && g_error_matches(e, MGL_JSON_ERROR, MGL_JSON_ERROR_FORMAT));
    CHECK_MSG(e && strstr(e->message, "deep.json: JSON nested deeper than 64 levels"), "%s", e ? e->message : "");
    CHECK(p == NULL && o == NULL);
    g_clear_error(&e);
    g_free(obj);
    char* inner = nest(MGL_JSON_MAX_DEPTH - 1, "1");
    obj = g_strdup_printf("{\"a\": %s}", inner);
    CHECK_MSG(mgl_json_parse_object("ok.json", obj, strlen(obj), &p, &o, &e), "%s", e ? e->message : "");
    if (p) g_object_unref(p);
    g_clear_error(&e);
    g_free(obj);
    g_free(inner);
    g_free(ok);
    g_free(deep);
}

static void errors(void) {
    JsonParser* p = NULL;
    JsonObject* o = NULL;
    GError* e = NULL;
    const char* bad = "{\"a\": 1,";
    CHECK(!mgl_json_parse_object("cfg", bad, strlen(bad), &p, &o, &e));
    CHECK(e && e->domain == MGL_JSON_ERROR && e->code == MGL_JSON_ERROR_FORMAT &&
          strstr(e->message, "cfg: invalid JSON"));
    g_clear_error(&e);
    CHECK(!mgl_json_parse_object("arr", "[1]", 3, &p, &o, &e));
    CHECK(e && strstr(e->message, "arr: top-level JSON value is not an object"));
    g_clear_error(&e);
    CHECK(!mgl_json_parse_object("utf", "{\"a\": \"\xff\"}", 10, &p, &o, &e));
    CHECK(e && strstr(e->message, "utf: not valid UTF-8 JSON"));
    g_clear_error(&e);
    CHECK(!mgl_json_parse_object("x", bad, strlen(bad), &p, &o, NULL)); /* error may be NULL */

    char* dir = g_dir_make_tmp("mgl-json-XXXXXX", NULL);
    char* missing = g_build_filename(dir, "missing.json", NULL);
    CHECK(!mgl_json_load_object(missing, 1024, &p, &o, &e));
    CHECK(e && g_error_matches(e, MGL_JSON_ERROR, MGL_JSON_ERROR_IO) && strstr(e->message, missing) &&
          strstr(e->message, "cannot open"));
    g_clear_error(&e);
    char* big = g_build_filename(dir, "big.json", NULL);
    GString* text = g_string_new("{\"a\": \"0123456789\", \"pad\": \"");
    for (int k = 0; k < 10000; k++) g_string_append_c(text, 'x');
    g_string_append(text, "\"}");
    REQUIRE(g_file_set_contents(big, text->str, -1, NULL));
    g_string_free(text, TRUE);
    CHECK(!mgl_json_load_object(big, 5000, &p, &o, &e));
    CHECK(e && e->code == MGL_JSON_ERROR_FORMAT && strstr(e->message, "file larger than the 5000-byte limit"));
    g_clear_error(&e);
    CHECK(mgl_json_load_object(big, 1 << 20, &p, &o, &e));
    const char* s = NULL;
    int64_t i = 5;
    bool b = false;
    CHECK(mgl_json_opt_str(o, "a", &s, "big.json", &e) && s && strcmp(s, "0123456789") == 0);
    CHECK(mgl_json_opt_int(o, "none", &i, "big.json", &e) && i == 5);
    CHECK(!mgl_json_opt_int(o, "a", &i, "big.json", &e));
    CHECK(e && strstr(e->message, "big.json: \"a\" must be an integer"));
    g_clear_error(&e);
    CHECK(!mgl_json_opt_bool(o, "a", &b, "big.json", &e));
    CHECK(e && strstr(e->message, "\"a\" must be true or false"));
    g_clear_error(&e);
    CHECK(!mgl_json_req_str(o, "b", &s, "big.json", &e));
    CHECK(e && strstr(e->message, "big.json: missing required \"b\""));
    g_clear_error(&e);
    g_object_unref(p);
    g_unlink(big);
    g_rmdir(dir);
    g_free(big);
    g_free(missing);
    g_free(dir);
}

int main(void) {
    escaper();
    depth();
    errors();
    TEST_DONE();
}
