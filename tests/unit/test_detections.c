/* common/mgl-detections.c: the one reader of offline detection records, for
 * `mgllava run --boxes` (mgl_detections_load_record) and mgllavaboxes
 * (mgl_detections_file_*): one set of defaults (score 1.0, label "object"),
 * one validation, messages naming the record and the field, the nesting
 * limit, and labels owned by the result (never interned); lone surrogates,
 * integers beyond 64 bits, a byte order mark, huge files and FIFOs. */
#include "mgl-detections.h"
#include "mgl-json.h"
#include "mgl-test.h"

#include <fcntl.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <math.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static char* tmpdir;

static char* write_tmp(const char* name, const char* text) {
    char* p = g_build_filename(tmpdir, name, NULL);
    REQUIRE(g_file_set_contents(p, text, -1, NULL));
    return p;
}

static const MglDetectionsBox* box(const MglDetections* d, guint i) {
    return &g_array_index(d->boxes, MglDetectionsBox, i);
}

/* Parses `json` (one record object) with mgl_detections_parse_record. */
static MglDetections* parse(const char* json, GPtrArray* warnings, GError** error) {
    JsonParser* p = json_parser_new();
    REQUIRE(json_parser_load_from_data(p, json, -1, NULL));
    REQUIRE(JSON_NODE_HOLDS_OBJECT(json_parser_get_root(p)));
    MglDetections* d = mgl_detections_new();
    if (!mgl_detections_parse_record(json_node_get_object(json_parser_get_root(p)), "rec", d, warnings, error))
        g_clear_pointer(&d, mgl_detections_free);
    g_object_unref(p);
    return d;
}

static void expect_bad(const char* json, const char* needle) {
    GError* e = NULL;
    MglDetections* d = parse(json, NULL, &e);
    CHECK_MSG(d == NULL, "accepted: %s", json);
    CHECK_MSG(e && g_error_matches(e, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT), "%s: wrong error", json);
    CHECK_MSG(e && strstr(e->message, needle), "%s: message lacks '%s': %s", json, needle, e ? e->message : "(none)");
    if (e) printf("  expected error: %s\n", e->message);
    mgl_detections_free(d);
    g_clear_error(&e);
}

static void records(void) {
    GError* e = NULL;
    /* a full record: MG-LLaVA's detector output */
    MglDetections* d = parse("{\"boxes\": [[10, 20, 110, 220], [0.5, 1.5, 2.5, 3.5]], \"scores\": [0.9, 1], "
                             "\"labels\": [\"cat\", \"red car\"]}",
                             NULL, &e);
    REQUIRE(d);
    CHECK(d->boxes->len == 2);
    CHECK(box(d, 0)->x1 == 10 && box(d, 0)->y1 == 20 && box(d, 0)->x2 == 110 && box(d, 0)->y2 == 220);
    CHECK(fabsf(box(d, 0)->score - 0.9f) < 1e-7f && box(d, 1)->score == 1.0f);
    CHECK(strcmp(box(d, 0)->label, "cat") == 0 && strcmp(box(d, 1)->label, "red car") == 0);
    CHECK(box(d, 1)->x1 == 0.5f && box(d, 1)->y2 == 3.5f);
    mgl_detections_free(d);

    /* no scores: 1.0; no labels: "object" (absent or null alike) */
    const char* defaults[] = {"{\"boxes\": [[1, 2, 3, 4]]}", "{\"boxes\": [[1, 2, 3, 4]], \"scores\": null}",
                              "{\"boxes\": [[1, 2, 3, 4]], \"labels\": null, \"scores\": null}"};
    for (size_t i = 0; i < G_N_ELEMENTS(defaults); i++) {
        d = parse(defaults[i], NULL, &e);
        REQUIRE(d && d->boxes->len == 1);
        CHECK(box(d, 0)->score == (float)MGL_DETECTIONS_DEFAULT_SCORE && box(d, 0)->score == 1.0f);
        CHECK(strcmp(box(d, 0)->label, MGL_DETECTIONS_DEFAULT_LABEL) == 0 && strcmp(box(d, 0)->label, "object") == 0);
        mgl_detections_free(d);
    }
    d = parse("{\"boxes\": [[1, 2, 3, 4]], \"labels\": [\"dog\"]}", NULL, &e);
    REQUIRE(d);
    CHECK(box(d, 0)->score == 1.0f && strcmp(box(d, 0)->label, "dog") == 0);
    mgl_detections_free(d);
    d = parse("{\"boxes\": [[1, 2, 3, 4]], \"scores\": [0.25]}", NULL, &e);
    REQUIRE(d);
    CHECK(box(d, 0)->score == 0.25f && strcmp(box(d, 0)->label, "object") == 0);
    mgl_detections_free(d);
    /* an integer class id becomes its decimal string; an empty record is fine */
    d = parse("{\"boxes\": [[1, 2, 3, 4]], \"labels\": [7]}", NULL, &e);
    REQUIRE(d);
    CHECK(strcmp(box(d, 0)->label, "7") == 0);
    mgl_detections_free(d);
    d = parse("{\"boxes\": [], \"scores\": [], \"labels\": []}", NULL, &e);
    REQUIRE(d);
    CHECK(d->boxes->len == 0);
    mgl_detections_free(d);

    /* problems that cost one box are warnings */
    GPtrArray* w = g_ptr_array_new_with_free_func(g_free);
    d = parse("{\"boxes\": [[5, 5, 1, 9], [-5, -5, 50, 50], [1, 1, 1, 1]]}", w, &e);
    REQUIRE(d);
    CHECK(d->boxes->len == 2); /* inverted dropped; the negative and the empty one kept */
    CHECK(box(d, 0)->x1 == -5.0f && box(d, 1)->x2 == 1.0f);
    CHECK(w->len == 2);
    if (w->len == 2) {
        CHECK_MSG(strstr(g_ptr_array_index(w, 0), "rec: field \"boxes\"[0] is inverted"), "%s",
                  (char*)g_ptr_array_index(w, 0));
        CHECK_MSG(strstr(g_ptr_array_index(w, 1), "rec: field \"boxes\"[1] has a negative coordinate"), "%s",
                  (char*)g_ptr_array_index(w, 1));
    }
    g_ptr_array_unref(w);
    mgl_detections_free(d);

    /* bad records name the record, the field and the problem */
    expect_bad("{\"scores\": [1]}", "rec: missing field \"boxes\"");
    expect_bad("{\"boxes\": {\"a\": 1}}", "rec: field \"boxes\" must be an array");
    expect_bad("{\"boxes\": [[1, 2, 3]]}", "rec: field \"boxes\"[0] must be an array of 4 numbers");
    expect_bad("{\"boxes\": [[1, 2, 3, 4], 5]}", "rec: field \"boxes\"[1] must be an array of 4 numbers");
    expect_bad("{\"boxes\": [[1, 2, \"x\", 4]]}", "rec: field \"boxes\"[0][2] must be a number");
    expect_bad("{\"boxes\": [[1, 2, null, 4]]}", "rec: field \"boxes\"[0][2] must be a number");
    expect_bad("{\"boxes\": [[0, 0, 1e12, 2]]}",
               "rec: field \"boxes\"[0][2] = 1e+12 is not a pixel coordinate (beyond 1e6)");
    expect_bad("{\"boxes\": [[0, 0, 1000001, 2]]}", "beyond 1e6");
    expect_bad("{\"boxes\": [[1, 2, 3, 4]], \"scores\": [0.5, 0.6]}",
               "rec: field \"scores\" has 2 entries but \"boxes\" has 1");
    expect_bad("{\"boxes\": [[1, 2, 3, 4]], \"scores\": \"high\"}",
               "rec: field \"scores\" must be an array of numbers");
    expect_bad("{\"boxes\": [[1, 2, 3, 4]], \"scores\": [true]}", "rec: field \"scores\"[0] must be a number");
    expect_bad("{\"boxes\": [[1, 2, 3, 4]], \"scores\": [null]}", "rec: field \"scores\"[0] must be a number");
    expect_bad("{\"boxes\": [[1, 2, 3, 4]], \"scores\": [1e300]}",
               "rec: field \"scores\"[0] = 1e+300 is not a confidence");
    expect_bad("{\"boxes\": [[1, 2, 3, 4]], \"labels\": []}",
               "rec: field \"labels\" has 0 entries but \"boxes\" has 1");
    expect_bad("{\"boxes\": [[1, 2, 3, 4]], \"labels\": \"cat\"}", "rec: field \"labels\" must be an array of strings");
    expect_bad("{\"boxes\": [[1, 2, 3, 4]], \"labels\": [3.5]}", "rec: field \"labels\"[0] must be a string");
    expect_bad("{\"boxes\": [[1, 2, 3, 4]], \"labels\": [null]}", "rec: field \"labels\"[0] must be a string");
    expect_bad("{\"boxes\": [[1, 2, 3, 4]], \"labels\": [[\"a\"]]}", "rec: field \"labels\"[0] must be a string");
}

static void load_record(void) {
    GError* e = NULL;
    GPtrArray* w = g_ptr_array_new_with_free_func(g_free);
    /* the object and the one-element list (the batch file form) */
    const char* forms[] = {"{\"boxes\": [[0, 0, 2, 2]], \"scores\": [0.9], \"labels\": [\"dot\"]}\n",
                           "[{\"id\": 3, \"boxes\": [[0, 0, 2, 2]], \"scores\": [0.9], \"labels\": [\"dot\"]}]"};
    for (size_t i = 0; i < G_N_ELEMENTS(forms); i++) {
        char* p = write_tmp("rec.json", forms[i]);
        MglDetections* d = mgl_detections_load_record(p, 1 << 20, w, &e);
        CHECK_MSG(d != NULL, "%s", e ? e->message : "");
        if (d) {
            CHECK(d->boxes->len == 1 && box(d, 0)->x2 == 2.0f && fabsf(box(d, 0)->score - 0.9f) < 1e-7f);
            CHECK(strcmp(box(d, 0)->label, "dot") == 0);
        }
        mgl_detections_free(d);
        g_clear_error(&e);
        g_free(p);
    }
    CHECK(w->len == 0);
    /* warnings name the file */
    char* p = write_tmp("inv.json", "{\"boxes\": [[3, 3, 1, 1]]}");
    MglDetections* d = mgl_detections_load_record(p, 1 << 20, w, &e);
    CHECK(d && d->boxes->len == 0 && w->len == 1);
    if (w->len == 1) CHECK(g_str_has_prefix(g_ptr_array_index(w, 0), p));
    mgl_detections_free(d);
    g_free(p);

    /* every error starts with the path */
    struct {
        const char* text;
        int code;
        const char* needle;
    } bad[] = {
        {"[]", MGL_DETECTIONS_ERROR_FORMAT, "expected an object {\"boxes\", \"scores\", \"labels\"}"},
        {"[{\"boxes\": []}, {\"boxes\": []}]", MGL_DETECTIONS_ERROR_FORMAT, "expected an object"},
        {"7", MGL_DETECTIONS_ERROR_FORMAT, "expected an object"},
        {"{\"boxes\": [[1, 2, 3]]}", MGL_DETECTIONS_ERROR_FORMAT, "field \"boxes\"[0] must be an array of 4 numbers"},
        {"{\"boxes\": [[0, 0, 2, 2]], \"scores\": [0.9, 0.1]}", MGL_DETECTIONS_ERROR_FORMAT,
         "\"scores\" has 2 entries"},
        {"{\"boxes\": [[0, 0, 2, 2]]", MGL_DETECTIONS_ERROR_PARSE, "malformed JSON"},
        {"{\"boxes\": [], \"x\": \"\xff\"}", MGL_DETECTIONS_ERROR_PARSE, "malformed JSON: not valid UTF-8"},
        {"", MGL_DETECTIONS_ERROR_FORMAT, "expected an object"},
        {"  \n", MGL_DETECTIONS_ERROR_FORMAT, "expected an object"},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        p = write_tmp("bad.json", bad[i].text);
        d = mgl_detections_load_record(p, 1 << 20, NULL, &e);
        CHECK_MSG(d == NULL, "accepted %s", bad[i].text);
        CHECK_MSG(e && e->domain == MGL_DETECTIONS_ERROR && e->code == bad[i].code, "%s: code %d", bad[i].text,
                  e ? e->code : -1);
        CHECK_MSG(e && g_str_has_prefix(e->message, p) && strstr(e->message, bad[i].needle), "%s: %s", bad[i].text,
                  e ? e->message : "(none)");
        if (e) printf("  expected error: %s\n", e->message);
        mgl_detections_free(d);
        g_clear_error(&e);
        g_free(p);
    }
    p = g_build_filename(tmpdir, "missing.json", NULL);
    CHECK(mgl_detections_load_record(p, 1 << 20, NULL, &e) == NULL);
    CHECK(e && g_error_matches(e, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_IO) && g_str_has_prefix(e->message, p));
    g_clear_error(&e);
    g_free(p);
    GString* big = g_string_new("{\"boxes\": [");
    for (int i = 0; i < 2000; i++) g_string_append(big, i ? ", [0, 0, 2, 2]" : "[0, 0, 2, 2]");
    g_string_append(big, "]}");
    p = write_tmp("big.json", big->str);
    g_string_free(big, TRUE);
    CHECK(mgl_detections_load_record(p, 5000, NULL, &e) == NULL);
    CHECK_MSG(e && strstr(e->message, "file of 28011 bytes is larger than the 5000-byte limit"), "%s",
              e ? e->message : "");
    g_clear_error(&e);
    d = mgl_detections_load_record(p, 1 << 20, NULL, &e);
    CHECK(d && d->boxes->len == 2000);
    mgl_detections_free(d);
    g_clear_error(&e);
    g_free(p);
    g_ptr_array_unref(w);
}

/* n '[' then n ']' */
static char* brackets(int n) {
    GString* g = g_string_new(NULL);
    for (int i = 0; i < n; i++) g_string_append_c(g, '[');
    for (int i = 0; i < n; i++) g_string_append_c(g, ']');
    return g_string_free(g, FALSE);
}

/* a record nested `depth` levels deep in all */
static char* nested(int depth) {
    char* b = brackets(depth - 1);
    char* r = g_strdup_printf("{\"boxes\": [], \"extra\": %s}", b);
    g_free(b);
    return r;
}

/* The limit of mgl-json.h, in every layout. */
static void depth_limit(void) {
    GError* e = NULL;
    char* ok = nested(MGL_JSON_MAX_DEPTH);
    char* deep = nested(MGL_JSON_MAX_DEPTH + 1);
    char* p = write_tmp("ok.json", ok);
    MglDetections* d = mgl_detections_load_record(p, 1 << 20, NULL, &e);
    CHECK_MSG(d != NULL, "%s", e ? e->message : "");
    mgl_detections_free(d);
    g_clear_error(&e);
    g_free(p);
    p = write_tmp("deep.json", deep);
    CHECK(mgl_detections_load_record(p, 1 << 20, NULL, &e) == NULL);
    CHECK_MSG(e && e->code == MGL_DETECTIONS_ERROR_PARSE && strstr(e->message, "nested deeper than 64 levels"), "%s",
              e ? e->message : "");
    g_clear_error(&e);
    g_free(p);

    /* LIST (one level more: the list), VIDEO (two: object and frames) and JSONL */
    char* list_ok = g_strdup_printf("[{\"id\": 0, \"boxes\": [], \"x\": %s}]", "[]");
    char* list_deep = nested(MGL_JSON_MAX_DEPTH); /* inside a list: one level too deep */
    char* list_text = g_strdup_printf("[%s]", list_deep);
    p = write_tmp("list.json", list_ok);
    MglDetectionsFile* f = mgl_detections_file_open(p, MGL_DETECTIONS_MATCH_FRAME, NULL, &e);
    CHECK_MSG(f != NULL, "%s", e ? e->message : "");
    mgl_detections_file_free(f);
    g_clear_error(&e);
    g_free(p);
    p = write_tmp("list-deep.json", list_text);
    CHECK(mgl_detections_file_open(p, MGL_DETECTIONS_MATCH_FRAME, NULL, &e) == NULL);
    CHECK_MSG(e && strstr(e->message, "malformed JSON: nested deeper than 64 levels"), "%s", e ? e->message : "");
    g_clear_error(&e);
    g_free(p);
    char* b = brackets(MGL_JSON_MAX_DEPTH);
    char* line = g_strdup_printf("{\"frame\": 0, \"boxes\": []}\n{\"frame\": 1, \"boxes\": [], \"x\": %s}\n", b);
    g_free(b);
    p = write_tmp("deep.jsonl", line);
    f = mgl_detections_file_open(p, MGL_DETECTIONS_MATCH_FRAME, NULL, &e);
    REQUIRE(f);
    GArray* out = g_array_new(FALSE, FALSE, sizeof(MglDetectionsBox));
    CHECK(!mgl_detections_file_lookup(f, 0, 0, out, NULL, &e)); /* reads one record ahead */
    CHECK_MSG(e && strstr(e->message, "line 2: malformed JSON: nested deeper than 64 levels"), "%s",
              e ? e->message : "");
    g_clear_error(&e);
    g_array_unref(out);
    mgl_detections_file_free(f);
    g_free(p);
    g_free(line);
    g_free(list_ok);
    g_free(list_deep);
    g_free(list_text);
    g_free(ok);
    g_free(deep);
}

/* Labels are data: owned strings of the result, never interned. */
static void labels_owned(void) {
    GError* e = NULL;
    char* nonce = g_strdup_printf("label-%08x-%08x", g_random_int(), g_random_int());
    char* json =
        g_strdup_printf("{\"boxes\": [[1, 2, 3, 4], [1, 2, 3, 4]], \"labels\": [\"%s-a\", \"%s-b\"]}", nonce, nonce);
    MglDetections* d = parse(json, NULL, &e);
    REQUIRE(d && d->boxes->len == 2);
    char* a = g_strdup_printf("%s-a", nonce);
    CHECK(strcmp(box(d, 0)->label, a) == 0);
    CHECK(g_quark_try_string(a) == 0);
    mgl_detections_clear(d);
    CHECK(d->boxes->len == 0);
    mgl_detections_free(d);
    g_free(json);

    /* a LIST with 2000 distinct labels and a JSON Lines file with one per line */
    GString* list = g_string_new("[");
    GString* jsonl = g_string_new(NULL);
    for (int i = 0; i < 2000; i++) {
        g_string_append_printf(list, "%s{\"id\": %d, \"boxes\": [[%d, 0, %d, 10]], \"labels\": [\"%s-%d\"]}",
                               i ? ", " : "", i, i, i + 5, nonce, i);
        g_string_append_printf(jsonl, "{\"frame\": %d, \"boxes\": [[%d, 0, %d, 10]], \"labels\": [\"%s-j%d\"]}\n", i, i,
                               i + 5, nonce, i);
    }
    g_string_append(list, "]");
    const char* texts[] = {list->str, jsonl->str};
    const char* fmt[] = {"%s-%d", "%s-j%d"};
    for (int t = 0; t < 2; t++) {
        char* p = write_tmp(t ? "labels.jsonl" : "labels.json", texts[t]);
        MglDetectionsFile* f = mgl_detections_file_open(p, MGL_DETECTIONS_MATCH_FRAME, NULL, &e);
        REQUIRE(f);
        CHECK(mgl_detections_file_get_format(f) == (t ? MGL_DETECTIONS_FORMAT_JSONL : MGL_DETECTIONS_FORMAT_LIST));
        GArray* out = g_array_new(FALSE, FALSE, sizeof(MglDetectionsBox));
        for (int i = 0; i < 2000; i++) {
            g_array_set_size(out, 0);
            CHECK(mgl_detections_file_lookup(f, i, i, out, NULL, &e));
            REQUIRE(out->len == 1);
            const MglDetectionsBox* b = &g_array_index(out, MglDetectionsBox, 0);
            char* want = g_strdup_printf(fmt[t], nonce, i);
            /* still valid although the reader has parsed the next line */
            CHECK_MSG(strcmp(b->label, want) == 0, "%s != %s", b->label, want);
            CHECK(b->x1 == (float)i && b->score == 1.0f);
            CHECK(g_quark_try_string(want) == 0);
            g_free(want);
        }
        g_array_unref(out);
        mgl_detections_file_free(f);
        g_free(p);
    }
    /* two records on one frame: both labels stay valid in one lookup */
    char* p = write_tmp("two.jsonl", "{\"frame\": 1, \"boxes\": [[0, 0, 1, 1]], \"labels\": [\"first\"]}\n"
                                     "{\"frame\": 1, \"boxes\": [[0, 0, 2, 2]]}\n"
                                     "{\"frame\": 2, \"boxes\": [[0, 0, 3, 3]], \"labels\": [\"third\"]}\n");
    MglDetectionsFile* f = mgl_detections_file_open(p, MGL_DETECTIONS_MATCH_FRAME, NULL, &e);
    REQUIRE(f);
    GArray* out = g_array_new(FALSE, FALSE, sizeof(MglDetectionsBox));
    CHECK(mgl_detections_file_lookup(f, 0, 1, out, NULL, &e));
    REQUIRE(out->len == 2);
    CHECK(strcmp(g_array_index(out, MglDetectionsBox, 0).label, "first") == 0);
    CHECK(strcmp(g_array_index(out, MglDetectionsBox, 1).label, "object") == 0);
    CHECK(mgl_detections_file_rewind(f, &e));
    g_array_set_size(out, 0);
    CHECK(mgl_detections_file_lookup(f, 2, 2, out, NULL, &e));
    CHECK(out->len == 1 && strcmp(g_array_index(out, MglDetectionsBox, 0).label, "third") == 0);
    g_array_unref(out);
    mgl_detections_file_free(f);
    g_free(p);
    g_string_free(list, TRUE);
    g_string_free(jsonl, TRUE);
    g_free(a);
    g_free(nonce);
}

/* The same record gives the same boxes in every layout and through
 * load_record: one set of rules. */
static void layouts_agree(void) {
    const char* rec = "\"boxes\": [[1, 2, 30, 40], [5, 5, 6, 6]], \"scores\": [0.5, 0.75], \"labels\": [\"a\", 9]";
    char* texts[4];
    texts[0] = g_strdup_printf("{%s}", rec);
    texts[1] = g_strdup_printf("[{\"id\": 0, %s}]", rec);
    texts[2] = g_strdup_printf("{\"video\": \"v\",\n \"frames\": [{%s}]}", rec);
    texts[3] = g_strdup_printf("{\"frame\": 0, %s}\n", rec);
    for (int t = 0; t < 4; t++) {
        GError* e = NULL;
        char* p = write_tmp("agree.json", texts[t]);
        GArray* out = g_array_new(FALSE, FALSE, sizeof(MglDetectionsBox));
        MglDetections* d = NULL;
        MglDetectionsFile* f = NULL;
        if (t == 0) {
            d = mgl_detections_load_record(p, 1 << 20, NULL, &e);
            REQUIRE(d);
            g_array_append_vals(out, d->boxes->data, d->boxes->len);
        } else {
            f = mgl_detections_file_open(p, MGL_DETECTIONS_MATCH_FRAME, NULL, &e);
            REQUIRE(f);
            CHECK(mgl_detections_file_lookup(f, 0, 0, out, NULL, &e));
        }
        CHECK(out->len == 2);
        if (out->len == 2) {
            const MglDetectionsBox* b = (const MglDetectionsBox*)out->data;
            CHECK(b[0].x1 == 1 && b[0].y1 == 2 && b[0].x2 == 30 && b[0].y2 == 40 && b[0].score == 0.5f);
            CHECK(b[1].score == 0.75f && strcmp(b[0].label, "a") == 0 && strcmp(b[1].label, "9") == 0);
        }
        g_array_unref(out);
        mgl_detections_free(d);
        mgl_detections_file_free(f);
        g_free(p);
        g_free(texts[t]);
    }
}

/* Writes `len` bytes of `text` (may hold NULs). */
static char* write_tmp_len(const char* name, const char* text, gssize len) {
    char* p = g_build_filename(tmpdir, name, NULL);
    REQUIRE(g_file_set_contents(p, text, len, NULL));
    return p;
}

static gboolean all_valid_utf8(const GArray* boxes) {
    for (guint i = 0; i < boxes->len; i++)
        if (!g_utf8_validate(g_array_index(boxes, MglDetectionsBox, i).label, -1, NULL)) return FALSE;
    return TRUE;
}

/* Reads `text` as every layout can: the single record (load_record) when
 * `single`, else mgl_detections_file_open + lookup of frame 0. */
static GArray* read_boxes(const char* text, gssize len, gboolean single, GPtrArray* w, GError** e) {
    char* p = write_tmp_len(single ? "r.json" : "r.jsonl", text, len);
    GArray* out = g_array_new(FALSE, FALSE, sizeof(MglDetectionsBox));
    if (single) {
        MglDetections* d = mgl_detections_load_record(p, 1 << 20, w, e);
        if (d) {
            for (guint i = 0; i < d->boxes->len; i++) {
                MglDetectionsBox b = g_array_index(d->boxes, MglDetectionsBox, i);
                b.label = g_intern_string(b.label); /* the test's copy outlives d */
                g_array_append_val(out, b);
            }
        } else
            g_clear_pointer(&out, g_array_unref);
        mgl_detections_free(d);
    } else {
        MglDetectionsFile* f = mgl_detections_file_open(p, MGL_DETECTIONS_MATCH_FRAME, w, e);
        if (!f || !mgl_detections_file_lookup(f, 0, 0, out, w, e)) g_clear_pointer(&out, g_array_unref);
        for (guint i = 0; out && i < out->len; i++)
            g_array_index(out, MglDetectionsBox, i).label =
                g_intern_string(g_array_index(out, MglDetectionsBox, i).label);
        mgl_detections_file_free(f);
    }
    g_free(p);
    return out;
}

static const char* label(const GArray* a, guint i) { return g_array_index(a, MglDetectionsBox, i).label; }

/* A lone UTF-16 surrogate escape in a label is read as U+FFFD (one warning
 * per record text): the label is valid UTF-8 in every layout. A pair stays
 * one character; an escaped backslash before "ud800" is no escape. */
static void lone_surrogates(void) {
    GError* e = NULL;
    GPtrArray* w = g_ptr_array_new_with_free_func(g_free);
    const char* rec =
        "\"boxes\": [[0, 0, 1, 1], [0, 0, 2, 2], [0, 0, 3, 3], [0, 0, 4, 4], [0, 0, 5, 5], [0, 0, 6, 6]], "
        "\"labels\": [\"\\ud800x\", \"a\\uD800\", \"\\ud800\\ud800\", \"\\udc00\", \"\\ud83d\\ude00\", "
        "\"\\\\ud800\"]";
    char* texts[3] = {g_strdup_printf("{%s}", rec), g_strdup_printf("[{\"id\": 0, %s}]", rec),
                      g_strdup_printf("{\"frame\": 0, %s}\n", rec)};
    const char* names[3] = {"record", "list", "jsonl"};
    for (int t = 0; t < 3; t++) {
        g_ptr_array_set_size(w, 0);
        GArray* out = read_boxes(texts[t], -1, t == 0, w, &e);
        CHECK_MSG(out != NULL, "%s: %s", names[t], e ? e->message : "");
        g_clear_error(&e);
        if (!out) continue;
        REQUIRE(out->len == 6);
        CHECK(all_valid_utf8(out));
        CHECK_MSG(strcmp(label(out, 0), "\xef\xbf\xbdx") == 0, "%s: %s", names[t], label(out, 0));
        CHECK(strcmp(label(out, 1), "a\xef\xbf\xbd") == 0);
        CHECK(strcmp(label(out, 2), "\xef\xbf\xbd\xef\xbf\xbd") == 0);
        CHECK(strcmp(label(out, 3), "\xef\xbf\xbd") == 0);
        CHECK(strcmp(label(out, 4), "\xf0\x9f\x98\x80") == 0); /* U+1F600 from its pair */
        CHECK(strcmp(label(out, 5), "\\ud800") == 0);
        CHECK_MSG(w->len == 1 && strstr(g_ptr_array_index(w, 0), "5 lone UTF-16 surrogate escapes (first \\ud800) "
                                                                 "replaced with U+FFFD"),
                  "%s: %u warnings: %s", names[t], w->len, w->len ? (char*)g_ptr_array_index(w, 0) : "");
        if (w->len) printf("  expected warning: %s\n", (char*)g_ptr_array_index(w, 0));
        if (t == 2) CHECK(w->len && g_str_has_prefix(g_ptr_array_index(w, 0), "line 1: "));
        g_array_unref(out);
    }
    for (int t = 0; t < 3; t++) g_free(texts[t]);

    /* a JsonObject parsed elsewhere (json-glib 1.6 decodes "\ud800x" to
     * ED A0 80, not UTF-8, and loses the x): parse_record itself never lets
     * invalid UTF-8 through */
    g_ptr_array_set_size(w, 0);
    MglDetections* d = parse("{\"boxes\": [[1, 2, 3, 4], [1, 2, 3, 4]], \"labels\": [\"\\ud800x\", \"ok\"]}", w, &e);
    REQUIRE(d && d->boxes->len == 2);
    CHECK(g_utf8_validate(box(d, 0)->label, -1, NULL) && g_str_has_prefix(box(d, 0)->label, "\xef\xbf\xbd"));
    CHECK(strcmp(box(d, 1)->label, "ok") == 0);
    CHECK_MSG(w->len == 1 && strstr(g_ptr_array_index(w, 0), "rec: field \"labels\"[0] is not valid UTF-8"), "%s",
              w->len ? (char*)g_ptr_array_index(w, 0) : "(none)");
    mgl_detections_free(d);
    g_ptr_array_unref(w);
}

/* Integers beyond 64 bits: a label keeps the exact decimal text; a
 * coordinate, score or frame number is refused as out of range, never
 * wrapped. Only value positions are touched. */
static void big_integers(void) {
    GError* e = NULL;
    const char* rec =
        "\"boxes\": [[0, 0, 1, 1], [0, 0, 2, 2], [0, 0, 3, 3], [0, 0, 4, 4], [0, 0, 5, 5], [0, 0, 6, 6]], "
        "\"labels\": [12345678901234567890, -9223372036854775809, 9223372036854775807, "
        "-9223372036854775808, 99999999999999999999999,\n\"12345678901234567890\"]";
    char* texts[3] = {g_strdup_printf("{%s}", rec), g_strdup_printf("[{\"id\": 0, %s}]", rec),
                      g_strdup_printf("{\"frame\": 0, %s}\n", rec)};
    texts[2][strlen(texts[2]) - 1] = '\0'; /* one line: the newline inside the labels goes */
    char* nl = strchr(texts[2], '\n');
    if (nl) *nl = ' ';
    const char* want[] = {"12345678901234567890", "-9223372036854775809",    "9223372036854775807",
                          "-9223372036854775808", "99999999999999999999999", "12345678901234567890"};
    for (int t = 0; t < 3; t++) {
        GArray* out = read_boxes(texts[t], -1, t == 0, NULL, &e);
        CHECK_MSG(out != NULL, "%d: %s", t, e ? e->message : "");
        g_clear_error(&e);
        if (!out) continue;
        REQUIRE(out->len == 6);
        for (guint i = 0; i < 6; i++)
            CHECK_MSG(strcmp(label(out, i), want[i]) == 0, "%d: %s != %s", t, label(out, i), want[i]);
        g_array_unref(out);
        g_free(texts[t]);
    }

    struct {
        const char* text;
        int code;
        const char* needle;
    } bad[] = {
        {"{\"boxes\": [[0, 0, 12345678901234567890, 2]]}", MGL_DETECTIONS_ERROR_FORMAT,
         "field \"boxes\"[0][2] = 12345678901234567890 is not a pixel coordinate (beyond 1e6)"},
        {"{\"boxes\": [[-18446744073709551617, 0, 1, 2]]}", MGL_DETECTIONS_ERROR_FORMAT,
         "field \"boxes\"[0][0] = -18446744073709551617 is not a pixel coordinate"},
        {"{\"boxes\": [[0, 0, 1, 2]], \"scores\": [18446744073709551616]}", MGL_DETECTIONS_ERROR_FORMAT,
         "field \"scores\"[0] = 18446744073709551616 is not a confidence"},
        /* a number is never made into an object key, nor a bad literal into a string */
        {"{\"boxes\": [], 12345678901234567890: 1}", MGL_DETECTIONS_ERROR_PARSE, "malformed JSON"},
        {"{\"boxes\": [], \"x\": [1, 012345678901234567890]}", MGL_DETECTIONS_ERROR_PARSE, "malformed JSON"},
        {"{\"boxes\": [], \"x\": {\"a\": 1, 12345678901234567890: 2}}", MGL_DETECTIONS_ERROR_PARSE, "malformed JSON"},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        char* p = write_tmp("big.json", bad[i].text);
        MglDetections* d = mgl_detections_load_record(p, 1 << 20, NULL, &e);
        CHECK_MSG(d == NULL, "accepted %s", bad[i].text);
        CHECK_MSG(e && e->code == bad[i].code && strstr(e->message, bad[i].needle), "%s: %s", bad[i].text,
                  e ? e->message : "(none)");
        if (e) printf("  expected error: %s\n", e->message);
        mgl_detections_free(d);
        g_clear_error(&e);
        g_free(p);
    }
    /* a frame number beyond 64 bits is not wrapped to another frame */
    char* p = write_tmp("bigkey.jsonl", "{\"frame\": 18446744073709551616, \"boxes\": [[0, 0, 1, 1]]}\n");
    MglDetectionsFile* f = mgl_detections_file_open(p, MGL_DETECTIONS_MATCH_FRAME, NULL, &e);
    REQUIRE(f);
    GArray* out = g_array_new(FALSE, FALSE, sizeof(MglDetectionsBox));
    CHECK(!mgl_detections_file_lookup(f, 0, G_MAXINT64, out, NULL, &e));
    CHECK_MSG(e && strstr(e->message, "line 1: field \"frame\" must be an integer"), "%s", e ? e->message : "(none)");
    CHECK(out->len == 0);
    g_clear_error(&e);
    g_array_unref(out);
    mgl_detections_file_free(f);
    g_free(p);
    p = write_tmp("bigid.json", "[{\"id\": 18446744073709551616, \"boxes\": []}]");
    CHECK(mgl_detections_file_open(p, MGL_DETECTIONS_MATCH_FRAME, NULL, &e) == NULL);
    CHECK_MSG(e && strstr(e->message, "record 0: field \"id\" must be an integer"), "%s", e ? e->message : "(none)");
    g_clear_error(&e);
    g_free(p);
}

/* A UTF-8 byte order mark at the start of the file is skipped, in every
 * layout and in the single-record file. */
static void byte_order_mark(void) {
    GError* e = NULL;
    const char* rec = "\"boxes\": [[1, 2, 30, 40]], \"labels\": [\"bom\"]";
    char* texts[5] = {g_strdup_printf("\xef\xbb\xbf{%s}", rec), g_strdup_printf("\xef\xbb\xbf[{\"id\": 0, %s}]", rec),
                      g_strdup_printf("\xef\xbb\xbf{\"video\": \"v\",\n \"frames\": [{%s}]}", rec),
                      g_strdup_printf("\xef\xbb\xbf{\"frame\": 0, %s}\n{\"frame\": 1, \"boxes\": []}\n", rec),
                      g_strdup_printf("\xef\xbb\xbf\n  \n{\"frame\": 0, %s}\n", rec)};
    const MglDetectionsFormat fmt[5] = {0, MGL_DETECTIONS_FORMAT_LIST, MGL_DETECTIONS_FORMAT_VIDEO,
                                        MGL_DETECTIONS_FORMAT_JSONL, MGL_DETECTIONS_FORMAT_JSONL};
    for (int t = 0; t < 5; t++) {
        GArray* out = read_boxes(texts[t], -1, t == 0, NULL, &e);
        CHECK_MSG(out && out->len == 1 && strcmp(label(out, 0), "bom") == 0, "%d: %s", t, e ? e->message : "");
        g_clear_error(&e);
        if (out) g_array_unref(out);
        if (t > 0) {
            char* p = write_tmp("bom.json", texts[t]);
            MglDetectionsFile* f = mgl_detections_file_open(p, MGL_DETECTIONS_MATCH_FRAME, NULL, &e);
            CHECK(f && mgl_detections_file_get_format(f) == fmt[t]);
            /* rewound, the first line is read again without its mark */
            if (f && fmt[t] == MGL_DETECTIONS_FORMAT_JSONL) {
                GArray* o = g_array_new(FALSE, FALSE, sizeof(MglDetectionsBox));
                CHECK(mgl_detections_file_rewind(f, &e));
                CHECK(mgl_detections_file_lookup(f, 0, 0, o, NULL, &e) && o->len == 1);
                g_array_unref(o);
            }
            mgl_detections_file_free(f);
            g_clear_error(&e);
            g_free(p);
        }
        g_free(texts[t]);
    }
    /* a mark alone is an empty file; a mark that is not one is not JSON */
    char* p = write_tmp("bom-only.json", "\xef\xbb\xbf");
    CHECK(mgl_detections_file_open(p, MGL_DETECTIONS_MATCH_FRAME, NULL, &e) == NULL);
    CHECK_MSG(e && strstr(e->message, "empty file"), "%s", e ? e->message : "");
    g_clear_error(&e);
    g_free(p);
    p = write_tmp("bom-bad.json", "\xef\xbb{\"frame\": 0, \"boxes\": []}\n");
    CHECK(mgl_detections_file_open(p, MGL_DETECTIONS_MATCH_FRAME, NULL, &e) == NULL);
    CHECK_MSG(e && strstr(e->message, "does not start with '[' or '{'"), "%s", e ? e->message : "");
    g_clear_error(&e);
    g_free(p);
}

static long max_rss_kb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* A sparse file of `size` bytes starting with `head`: no disk is spent. */
static char* sparse(const char* name, const char* head, guint64 size) {
    char* p = g_build_filename(tmpdir, name, NULL);
    int fd = g_open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    REQUIRE(fd >= 0);
    REQUIRE(write(fd, head, strlen(head)) == (ssize_t)strlen(head));
    REQUIRE(ftruncate(fd, (off_t)size) == 0);
    close(fd);
    return p;
}

/* Huge files are refused from their size, before being read: the list and
 * video layouts above MGL_DETECTIONS_MAX_FILE_SIZE, the single record above
 * its max_size, a JSON Lines line after at most MGL_DETECTIONS_MAX_LINE_SIZE.
 * Each message names the limit; memory stays far below the file size. */
static void huge_files(void) {
    GError* e = NULL;
    const guint64 big = (guint64)3 << 30;
    long rss0 = max_rss_kb();
    gint64 t0 = g_get_monotonic_time();
    char* lim =
        g_strdup_printf("larger than the %" G_GSIZE_FORMAT "-byte (256 MiB) limit of the list and video layouts",
                        (gsize)MGL_DETECTIONS_MAX_FILE_SIZE);
    const char* heads[] = {"{", "[", "{\"video\": \"v\",\n \"frames\": ["};
    for (size_t i = 0; i < G_N_ELEMENTS(heads); i++) {
        char* p = sparse("huge.json", heads[i], big);
        CHECK(mgl_detections_file_open(p, MGL_DETECTIONS_MATCH_FRAME, NULL, &e) == NULL);
        CHECK_MSG(e && e->code == MGL_DETECTIONS_ERROR_PARSE && strstr(e->message, lim) &&
                      strstr(e->message, "file of 3221225472 bytes") && g_str_has_prefix(e->message, p),
                  "%s", e ? e->message : "(none)");
        if (e) printf("  expected error: %s\n", e->message);
        g_clear_error(&e);
        g_free(p);
    }
    /* just past the limit is refused too; the single record by its max_size */
    char* p = sparse("over.json", "[", (guint64)MGL_DETECTIONS_MAX_FILE_SIZE + 1);
    CHECK(mgl_detections_file_open(p, MGL_DETECTIONS_MATCH_FRAME, NULL, &e) == NULL);
    CHECK_MSG(e && strstr(e->message, lim), "%s", e ? e->message : "(none)");
    g_clear_error(&e);
    g_free(p);
    p = sparse("huge-record.json", "{", big);
    CHECK(mgl_detections_load_record(p, 256u << 20, NULL, &e) == NULL);
    CHECK_MSG(e && e->code == MGL_DETECTIONS_ERROR_PARSE && g_str_has_prefix(e->message, p) &&
                  strstr(e->message, "file of 3221225472 bytes is larger than the 268435456-byte (256 MiB) limit"),
              "%s", e ? e->message : "(none)");
    if (e) printf("  expected error: %s\n", e->message);
    g_clear_error(&e);
    g_free(p);
    /* JSON Lines are streamed, so a big file opens; a line past the limit
     * is an error naming it, after reading no more than the limit */
    p = sparse("huge.jsonl", "{\"frame\": 0, \"boxes\": [[0, 0, 1, 1]]}\n{", big);
    MglDetectionsFile* f = mgl_detections_file_open(p, MGL_DETECTIONS_MATCH_FRAME, NULL, &e);
    CHECK_MSG(f && mgl_detections_file_get_format(f) == MGL_DETECTIONS_FORMAT_JSONL, "%s", e ? e->message : "");
    if (f) {
        GArray* out = g_array_new(FALSE, FALSE, sizeof(MglDetectionsBox));
        CHECK(!mgl_detections_file_lookup(f, 0, 0, out, NULL, &e)); /* reads one record ahead */
        CHECK_MSG(e && strstr(e->message, "line 2: longer than the 67108864-byte (64 MiB) limit of one JSON Lines "
                                          "record"),
                  "%s", e ? e->message : "(none)");
        if (e) printf("  expected error: %s\n", e->message);
        g_clear_error(&e);
        g_array_unref(out);
    }
    mgl_detections_file_free(f);
    g_free(p);
    long grew = max_rss_kb() - rss0;
    double secs = (double)(g_get_monotonic_time() - t0) / 1e6;
    printf("  huge files: %.2f s, peak RSS grew %ld KiB\n", secs, grew);
    /* about 64 MiB (one line buffer) in a release build, some 400 MiB under
     * ASan (its quarantine keeps freed buffers); reading a file whole would
     * take its 3 GiB */
    CHECK_MSG(grew < 1024 * 1024, "peak RSS grew by %ld KiB reading 3 GiB files", grew);
    CHECK_MSG(secs < 30, "%.1f s", secs);
    g_free(lim);

    /* NUL bytes are not whitespace: such a line is malformed, not skipped */
    static const char nul[] = "{\"frame\": 0, \"boxes\": []}\n\0\n{\"frame\": 1, \"boxes\": []}\n";
    p = write_tmp_len("nul.jsonl", nul, sizeof nul - 1);
    f = mgl_detections_file_open(p, MGL_DETECTIONS_MATCH_FRAME, NULL, &e);
    REQUIRE(f);
    GArray* out = g_array_new(FALSE, FALSE, sizeof(MglDetectionsBox));
    CHECK(!mgl_detections_file_lookup(f, 0, 1, out, NULL, &e));
    CHECK_MSG(e && strstr(e->message, "line 2: malformed JSON: not valid UTF-8"), "%s", e ? e->message : "(none)");
    g_clear_error(&e);
    g_array_unref(out);
    mgl_detections_file_free(f);
    g_free(p);

    /* a FIFO is refused at once, never waited on */
    p = g_build_filename(tmpdir, "pipe.jsonl", NULL);
    REQUIRE(mkfifo(p, 0600) == 0);
    CHECK(mgl_detections_file_open(p, MGL_DETECTIONS_MATCH_FRAME, NULL, &e) == NULL);
    CHECK_MSG(e && e->code == MGL_DETECTIONS_ERROR_IO && strstr(e->message, "not a regular file"), "%s",
              e ? e->message : "(none)");
    g_clear_error(&e);
    CHECK(mgl_detections_load_record(p, 1 << 20, NULL, &e) == NULL);
    CHECK_MSG(e && e->code == MGL_DETECTIONS_ERROR_IO && strstr(e->message, "not a regular file"), "%s",
              e ? e->message : "(none)");
    g_clear_error(&e);
    g_free(p);
}

int main(void) {
    alarm(120); /* a hang (a FIFO waited on) is a failure */
    tmpdir = g_dir_make_tmp("mgl-detections-XXXXXX", NULL);
    REQUIRE(tmpdir);
    records();
    load_record();
    depth_limit();
    labels_owned();
    layouts_agree();
    lone_surrogates();
    big_integers();
    byte_order_mark();
    huge_files();
    char* rm = g_strdup_printf("rm -rf '%s'", tmpdir);
    if (system(rm) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    g_free(rm);
    g_free(tmpdir);
    TEST_DONE();
}
