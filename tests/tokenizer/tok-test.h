/* tok-test.h: small helpers shared by the tokenizer tests. */
#ifndef TOK_TEST_H
#define TOK_TEST_H

#include "mgllava.h"

#include <glib.h>
#include <json-glib/json-glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static int g_failures = 0;

#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            g_failures++;                                                                                              \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                                       \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fprintf(stderr, "\n");                                                                                     \
        }                                                                                                              \
    } while (0)

static inline double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static inline bool path_exists(const char* p) {
    struct stat st;
    return stat(p, &st) == 0;
}

/* Shared test data folder (…/testdata) or NULL: callers exit 77 (skip). */
static inline const char* shared_testdata(void) {
    const char* s = getenv("MGL_SHARED_TESTDATA");
    return s && path_exists(s) ? s : NULL;
}

static inline const char* fixtures_dir(void) {
    const char* s = getenv("MGL_FIXTURES");
    return s ? s : "tests/fixtures";
}

/* Reads a JSONL file: one JsonNode (object) per line; free with g_ptr_array_unref. */
static inline GPtrArray* read_jsonl(const char* path) {
    char* data = NULL;
    gsize len = 0;
    if (!g_file_get_contents(path, &data, &len, NULL)) return NULL;
    GPtrArray* out = g_ptr_array_new_with_free_func((GDestroyNotify)json_node_unref);
    char** lines = g_strsplit(data, "\n", -1);
    for (char** l = lines; *l; l++) {
        if (!**l) continue;
        JsonParser* p = json_parser_new();
        if (json_parser_load_from_data(p, *l, -1, NULL)) g_ptr_array_add(out, json_node_copy(json_parser_get_root(p)));
        g_object_unref(p);
    }
    g_strfreev(lines);
    g_free(data);
    return out;
}

static inline GArray* json_ids(JsonObject* o, const char* key) {
    if (!json_object_has_member(o, key)) return NULL;
    JsonArray* a = json_object_get_array_member(o, key);
    GArray* r = g_array_new(FALSE, FALSE, sizeof(int32_t));
    for (guint i = 0; i < json_array_get_length(a); i++) {
        int32_t v = (int32_t)json_array_get_int_element(a, i);
        g_array_append_val(r, v);
    }
    return r;
}

static inline bool ids_equal(const int32_t* a, size_t na, const GArray* b) {
    if (na != b->len) return false;
    for (size_t i = 0; i < na; i++)
        if (a[i] != g_array_index(b, int32_t, i)) return false;
    return true;
}

static inline char* ids_str(const int32_t* a, size_t n) {
    GString* s = g_string_new("[");
    for (size_t i = 0; i < n && i < 64; i++) g_string_append_printf(s, "%s%d", i ? "," : "", a[i]);
    if (n > 64) g_string_append(s, ",...");
    g_string_append(s, "]");
    return g_string_free(s, FALSE);
}

/* The ids must equal the golden ones; `what` and `text` name the case. */
static inline void check_ids(const int32_t* ids, size_t n, const GArray* want, const char* what, const char* text) {
    if (ids_equal(ids, n, want)) return;
    char* a = ids_str(ids, n);
    char* b = ids_str((const int32_t*)want->data, want->len);
    CHECK(false, "%s '%s'\n  got  %s\n  want %s", what, text, a, b);
    g_free(a);
    g_free(b);
}

/* Decodes with MglDetok one id at a time; checks every push is whole UTF-8. */
static inline char* stream_decode(const MglTokenizer* tok, const int32_t* ids, size_t n, bool skip) {
    MglDetok* d = mgl_detok_new(tok, skip);
    GString* s = g_string_new(NULL);
    for (size_t i = 0; i < n; i++) {
        const char* piece = mgl_detok_push(d, ids[i]);
        CHECK(g_utf8_validate(piece, -1, NULL), "detok push %zu emitted invalid UTF-8", i);
        g_string_append(s, piece);
    }
    const char* tail = mgl_detok_flush(d);
    CHECK(g_utf8_validate(tail, -1, NULL), "detok flush emitted invalid UTF-8");
    g_string_append(s, tail);
    mgl_detok_free(d);
    return g_string_free(s, FALSE);
}

/* decode() and the stream must agree; returns decode()'s text (g_free). */
static inline char* check_decode(const MglTokenizer* tok, const int32_t* ids, size_t n, bool skip, const char* what) {
    char* text = NULL;
    MglErr err = {0};
    MglStatus st = mgl_tokenizer_decode(tok, ids, n, skip, &text, &err);
    CHECK(st == MGL_OK, "%s: decode failed: %s", what, err.msg);
    if (st != MGL_OK) return g_strdup("");
    char* streamed = stream_decode(tok, ids, n, skip);
    CHECK(strcmp(streamed, text) == 0, "%s: stream decode differs:\n  stream '%s'\n  decode '%s'", what, streamed,
          text);
    g_free(streamed);
    char* r = g_strdup(text);
    free(text);
    return r;
}

/* decode() (checked against the stream) must give `want`. */
static inline void check_decoded(const MglTokenizer* tok, const GArray* ids, bool skip, const char* want,
                                 const char* what) {
    char* got = check_decode(tok, (const int32_t*)ids->data, ids->len, skip, what);
    CHECK(strcmp(got, want) == 0, "%s: decode%s\n  got  '%s'\n  want '%s'", what, skip ? " skip" : "", got, want);
    g_free(got);
}

#endif /* TOK_TEST_H */
