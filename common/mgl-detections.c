/* mgl-detections.c: the offline detections reader (see mgl-detections.h):
 * one record's rules and defaults, and the single-record file of `mgllava
 * run --boxes`; the file layouts are in mgl-detections-file.c.
 *
 * Copyright (C) 2026 mgllava authors
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "mgl-detections.h"
#include "mgl-detections-private.h"
#include "mgl-json.h"

GQuark mgl_detections_error_quark(void) { return g_quark_from_static_string("mgl-detections-error-quark"); }

const gchar* mgl_detections_format_to_string(MglDetectionsFormat format) {
    switch (format) {
    case MGL_DETECTIONS_FORMAT_LIST: return "list";
    case MGL_DETECTIONS_FORMAT_VIDEO: return "video";
    case MGL_DETECTIONS_FORMAT_JSONL: return "jsonl";
    }
    return "unknown";
}

MglDetections* mgl_detections_new(void) {
    MglDetections* d = g_new0(MglDetections, 1);

    d->boxes = g_array_new(FALSE, FALSE, sizeof(MglDetectionsBox));
    d->labels = g_string_chunk_new(1024);
    return d;
}

void mgl_detections_clear(MglDetections* d) {
    g_array_set_size(d->boxes, 0);
    g_string_chunk_clear(d->labels);
}

void mgl_detections_free(MglDetections* d) {
    if (d == NULL) return;
    g_array_free(d->boxes, TRUE);
    g_string_chunk_free(d->labels);
    g_free(d);
}


void mgl_detections_warn(GPtrArray* warnings, const gchar* format, ...) {
    va_list args;

    if (warnings == NULL) return;
    va_start(args, format);
    g_ptr_array_add(warnings, g_strdup_vprintf(format, args));
    va_end(args);
}

static gboolean mgl_node_get_number(JsonNode* node, gdouble* out) {
    GType t;

    if (node == NULL || !JSON_NODE_HOLDS_VALUE(node)) return FALSE;
    t = json_node_get_value_type(node);
    if (t == G_TYPE_INT64)
        *out = (gdouble)json_node_get_int(node);
    else if (t == G_TYPE_DOUBLE)
        *out = json_node_get_double(node);
    else
        return FALSE;
    return isfinite(*out);
}

/* A JSON integer literal: -?(0|[1-9][0-9]*), nothing else. */
static gboolean mgl_is_int_literal(const gchar* s, gsize n) {
    gsize i = 0;

    if (i < n && s[i] == '-') i++;
    if (i >= n || !g_ascii_isdigit(s[i]) || (s[i] == '0' && i + 1 < n)) return FALSE;
    for (; i < n; i++) {
        if (!g_ascii_isdigit(s[i])) return FALSE;
    }
    return TRUE;
}

/* An integer literal beyond gint64 (json-glib would wrap it). */
static gboolean mgl_is_big_int_literal(const gchar* s, gsize n) {
    gboolean neg = n > 0 && s[0] == '-';
    const gchar* d = s + neg;
    gsize nd = n - neg;

    if (!mgl_is_int_literal(s, n)) return FALSE;
    if (nd != 19) return nd > 19;
    return memcmp(d, neg ? "9223372036854775808" : "9223372036854775807", 19) > 0;
}

/* The text of an integer too large for a number node: mgl_detections_parse_json
 * turns such literals into strings holding their exact decimal text. NULL for
 * anything else. */
static const gchar* mgl_node_big_int_text(JsonNode* node) {
    const gchar* s;

    if (node == NULL || !JSON_NODE_HOLDS_VALUE(node) || json_node_get_value_type(node) != G_TYPE_STRING) return NULL;
    s = json_node_get_string(node);
    return s != NULL && mgl_is_big_int_literal(s, strlen(s)) ? s : NULL;
}

/* A label as valid UTF-8. json-glib decodes a lone UTF-16 surrogate escape
 * ("\ud800") to the 3 bytes ED A0 80, which are not UTF-8; records parsed by
 * mgl_detections_parse_json never hold one (it rewrites the escape to
 * \ufffd), but a JsonObject from elsewhere may. Each such sequence, and
 * each other invalid byte, becomes U+FFFD. Returns NULL when @s is valid;
 * else a new string (g_free) and a warning. */
static gchar* mgl_label_make_valid(const gchar* s, const gchar* where, guint i, GPtrArray* warnings) {
    GString* g;
    const gchar* end;

    if (g_utf8_validate(s, -1, &end)) return NULL;
    g = g_string_new(NULL);
    while (!g_utf8_validate(s, -1, &end)) {
        const guchar* b = (const guchar*)end;

        g_string_append_len(g, s, end - s);
        g_string_append(g, "\357\277\275"); /* U+FFFD */
        if (b[0] == 0xed && b[1] >= 0xa0 && b[1] <= 0xbf && b[2] >= 0x80 && b[2] <= 0xbf)
            s = end + 3;
        else
            s = end + 1;
    }
    g_string_append(g, s);
    mgl_detections_warn(warnings,
                        "%s: field \"labels\"[%u] is not valid "
                        "UTF-8 (a lone UTF-16 surrogate?); replaced with U+FFFD",
                        where, i);
    return g_string_free(g, FALSE);
}

/* An integer key: a JSON integer, an integral number, or a string holding a
 * decimal integer ("12"). */
gboolean mgl_detections_node_get_key(JsonNode* node, gint64* out) {
    GType t;

    if (node == NULL || !JSON_NODE_HOLDS_VALUE(node)) return FALSE;
    t = json_node_get_value_type(node);
    if (t == G_TYPE_INT64) {
        *out = json_node_get_int(node);
        return TRUE;
    }
    if (t == G_TYPE_DOUBLE) {
        gdouble d = json_node_get_double(node);

        if (!isfinite(d) || d != floor(d) || fabs(d) > 9.0e15) return FALSE;
        *out = (gint64)d;
        return TRUE;
    }
    if (t == G_TYPE_STRING) {
        const gchar* s = json_node_get_string(node);
        gchar* end = NULL;

        if (s == NULL || *s == '\0') return FALSE;
        errno = 0;
        *out = g_ascii_strtoll(s, &end, 10);
        return errno == 0 && end != NULL && *end == '\0';
    }
    return FALSE;
}

/* The record rules and defaults of mgl-detections.h, in one place. */
gboolean mgl_detections_parse_record(JsonObject* obj, const gchar* where, MglDetections* out, GPtrArray* warnings,
                                     GError** error) {
    JsonNode* bnode = json_object_get_member(obj, "boxes");
    JsonNode* snode = json_object_get_member(obj, "scores");
    JsonNode* lnode = json_object_get_member(obj, "labels");
    JsonArray *barr, *sarr = NULL, *larr = NULL;
    guint n, i;

    if (bnode == NULL) {
        g_set_error(error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT, "%s: missing field \"boxes\"", where);
        return FALSE;
    }
    if (!JSON_NODE_HOLDS_ARRAY(bnode)) {
        g_set_error(error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT,
                    "%s: field \"boxes\" must be an array of [x1, y1, x2, y2] arrays", where);
        return FALSE;
    }
    barr = json_node_get_array(bnode);
    n = json_array_get_length(barr);

    if (snode != NULL && !JSON_NODE_HOLDS_NULL(snode)) {
        if (!JSON_NODE_HOLDS_ARRAY(snode)) {
            g_set_error(error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT,
                        "%s: field \"scores\" must be an array of numbers", where);
            return FALSE;
        }
        sarr = json_node_get_array(snode);
        if (json_array_get_length(sarr) != n) {
            g_set_error(error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT,
                        "%s: field \"scores\" has %u entries but \"boxes\" has %u", where, json_array_get_length(sarr),
                        n);
            return FALSE;
        }
    }
    if (lnode != NULL && !JSON_NODE_HOLDS_NULL(lnode)) {
        if (!JSON_NODE_HOLDS_ARRAY(lnode)) {
            g_set_error(error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT,
                        "%s: field \"labels\" must be an array of strings", where);
            return FALSE;
        }
        larr = json_node_get_array(lnode);
        if (json_array_get_length(larr) != n) {
            g_set_error(error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT,
                        "%s: field \"labels\" has %u entries but \"boxes\" has %u", where, json_array_get_length(larr),
                        n);
            return FALSE;
        }
    }

    for (i = 0; i < n; i++) {
        JsonNode* bn = json_array_get_element(barr, i);
        JsonArray* c;
        MglDetectionsBox b;
        const gchar* label;
        gchar* fixed;
        gchar idbuf[32];
        gdouble v[4], score = MGL_DETECTIONS_DEFAULT_SCORE;
        guint k;

        if (!JSON_NODE_HOLDS_ARRAY(bn) || json_array_get_length(json_node_get_array(bn)) != 4) {
            g_set_error(error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT,
                        "%s: field \"boxes\"[%u] must be an array of 4 numbers "
                        "[x1, y1, x2, y2]",
                        where, i);
            return FALSE;
        }
        c = json_node_get_array(bn);
        for (k = 0; k < 4; k++) {
            if (!mgl_node_get_number(json_array_get_element(c, k), &v[k])) {
                const gchar* big = mgl_node_big_int_text(json_array_get_element(c, k));

                if (big != NULL)
                    g_set_error(error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT,
                                "%s: field \"boxes\"[%u][%u] = %s "
                                "is not a pixel coordinate (beyond 1e6)",
                                where, i, k, big);
                else
                    g_set_error(error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT,
                                "%s: field \"boxes\"[%u][%u] must be a number", where, i, k);
                return FALSE;
            }
            /* a pixel coordinate (the engine's bound): also keeps every value
             * finite as a float */
            if (fabs(v[k]) > MGL_DETECTIONS_MAX_COORD) {
                g_set_error(error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT,
                            "%s: field \"boxes\"[%u][%u] = %g is not a pixel coordinate "
                            "(beyond 1e6)",
                            where, i, k, v[k]);
                return FALSE;
            }
        }

        if (sarr != NULL) {
            if (!mgl_node_get_number(json_array_get_element(sarr, i), &score)) {
                const gchar* big = mgl_node_big_int_text(json_array_get_element(sarr, i));

                if (big != NULL)
                    g_set_error(error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT,
                                "%s: field \"scores\"[%u] = %s is not a confidence", where, i, big);
                else
                    g_set_error(error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT,
                                "%s: field \"scores\"[%u] must be a number", where, i);
                return FALSE;
            }
            /* a confidence, finite also as a float (the engine refuses
             * non-finite scores) */
            if (fabs(score) > MGL_DETECTIONS_MAX_SCORE) {
                g_set_error(error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT,
                            "%s: field \"scores\"[%u] = %g is not a confidence", where, i, score);
                return FALSE;
            }
        }

        label = MGL_DETECTIONS_DEFAULT_LABEL;
        if (larr != NULL) {
            JsonNode* ln = json_array_get_element(larr, i);

            if (JSON_NODE_HOLDS_VALUE(ln) && json_node_get_value_type(ln) == G_TYPE_STRING) {
                label = json_node_get_string(ln);
            } else if (JSON_NODE_HOLDS_VALUE(ln) && json_node_get_value_type(ln) == G_TYPE_INT64) {
                g_snprintf(idbuf, sizeof(idbuf), "%" G_GINT64_FORMAT, (gint64)json_node_get_int(ln));
                label = idbuf;
            } else {
                g_set_error(error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT,
                            "%s: field \"labels\"[%u] must be a string", where, i);
                return FALSE;
            }
        }

        if (v[2] < v[0] || v[3] < v[1]) {
            mgl_detections_warn(warnings,
                                "%s: field \"boxes\"[%u] is inverted "
                                "([%g, %g, %g, %g]: x2 < x1 or y2 < y1), box dropped",
                                where, i, v[0], v[1], v[2], v[3]);
            continue;
        }
        if (v[0] < 0 || v[1] < 0 || v[2] < 0 || v[3] < 0) {
            mgl_detections_warn(warnings,
                                "%s: field \"boxes\"[%u] has a negative "
                                "coordinate ([%g, %g, %g, %g]), clipped to the frame",
                                where, i, v[0], v[1], v[2], v[3]);
        }
        b.x1 = v[0];
        b.y1 = v[1];
        b.x2 = v[2];
        b.y2 = v[3];
        b.score = score;
        fixed = mgl_label_make_valid(label, where, i, warnings);
        b.label = g_string_chunk_insert_const(out->labels, fixed != NULL ? fixed : label);
        g_free(fixed);
        g_array_append_val(out->boxes, b);
    }
    return TRUE;
}

gint mgl_detections_record_compare(gconstpointer a, gconstpointer b) {
    const MglRecord *ra = a, *rb = b;

    if (ra->key != rb->key) return ra->key < rb->key ? -1 : 1;
    return (ra->first > rb->first) - (ra->first < rb->first);
}

/* One pass over JSON text (valid UTF-8, nesting already checked) for what
 * json-glib gets wrong, rewriting into *out (NULL when nothing changed):
 *   - a lone UTF-16 surrogate escape (\ud800 not followed by \udc00-\udfff, or
 *     a \udc00-\udfff not after one) becomes \ufffd: json-glib would decode
 *     it to bytes that are not UTF-8, or refuse the string;
 *   - an integer literal beyond gint64 in a value position (after '[', ':',
 *     or ',' in an array) becomes a string of its exact decimal text:
 *     json-glib would wrap it (12345678901234567890 to -6101065172474983726).
 *     Only value positions, so no object key is made of a number.
 * *n_surrogates counts the escapes replaced; @first gets the first one. */
static void mgl_json_rewrite(const gchar* t, gsize n, GString** out, guint* n_surrogates, gchar first[7]) {
    gchar stack[MGL_JSON_MAX_DEPTH + 2];
    gint depth = 0;
    gchar prev = 0; /* last structural character outside strings */
    gboolean in_str = FALSE;
    gsize i = 0, last = 0;

    *out = NULL;
    *n_surrogates = 0;
    while (i < n) {
        gchar c = t[i];

        if (in_str) {
            if (c == '"') {
                in_str = FALSE;
                prev = 'v';
                i++;
            } else if (c == '\\' && i + 5 < n && t[i + 1] == 'u' && g_ascii_isxdigit(t[i + 2]) &&
                       g_ascii_isxdigit(t[i + 3]) && g_ascii_isxdigit(t[i + 4]) && g_ascii_isxdigit(t[i + 5])) {
                guint v = (g_ascii_xdigit_value(t[i + 2]) << 12) | (g_ascii_xdigit_value(t[i + 3]) << 8) |
                          (g_ascii_xdigit_value(t[i + 4]) << 4) | g_ascii_xdigit_value(t[i + 5]);

                if (v >= 0xd800 && v <= 0xdbff && i + 11 < n && t[i + 6] == '\\' && t[i + 7] == 'u' &&
                    (t[i + 8] == 'd' || t[i + 8] == 'D') && g_ascii_isxdigit(t[i + 9]) &&
                    g_ascii_xdigit_value(t[i + 9]) >= 0xc && g_ascii_isxdigit(t[i + 10]) &&
                    g_ascii_isxdigit(t[i + 11])) {
                    i += 12; /* a pair */
                } else if (v >= 0xd800 && v <= 0xdfff) {
                    if (*out == NULL) *out = g_string_sized_new(n + 16);
                    g_string_append_len(*out, t + last, i - last);
                    g_string_append(*out, "\\ufffd");
                    if ((*n_surrogates)++ == 0) {
                        memcpy(first, t + i, 6);
                        first[6] = '\0';
                    }
                    i += 6;
                    last = i;
                } else {
                    i += 6;
                }
            } else {
                i += c == '\\' ? 2 : 1;
            }
            continue;
        }

        if (c == '"') {
            in_str = TRUE;
            i++;
        } else if (c == '[' || c == '{') {
            if (depth < (gint)sizeof(stack)) stack[depth] = c;
            depth++;
            prev = c;
            i++;
        } else if (c == ']' || c == '}') {
            if (depth > 0) depth--;
            prev = c;
            i++;
        } else if (c == ',' || c == ':') {
            prev = c;
            i++;
        } else if (c == '-' || g_ascii_isdigit(c)) {
            gsize j = i;
            gchar top = depth > 0 && depth <= (gint)sizeof(stack) ? stack[depth - 1] : 0;

            while (j < n &&
                   (g_ascii_isdigit(t[j]) || t[j] == '+' || t[j] == '-' || t[j] == '.' || t[j] == 'e' || t[j] == 'E'))
                j++;
            if ((prev == '[' || prev == ':' || (prev == ',' && top == '[')) && mgl_is_big_int_literal(t + i, j - i)) {
                if (*out == NULL) *out = g_string_sized_new(n + 16);
                g_string_append_len(*out, t + last, i - last);
                g_string_append_c(*out, '"');
                g_string_append_len(*out, t + i, j - i);
                g_string_append_c(*out, '"');
                last = j;
            }
            prev = 'v';
            i = j;
        } else {
            if (!g_ascii_isspace(c)) prev = 'v';
            i++;
        }
    }
    if (*out != NULL) g_string_append_len(*out, t + last, n - last);
}

/* Parses @len bytes of @text (-1: up to the NUL) into @parser: UTF-8 JSON
 * nested at most MGL_JSON_MAX_DEPTH deep (json-glib parses recursively, so a
 * hostile file nested a hundred thousand levels deep would exhaust the
 * stack), lone surrogate escapes replaced and big integers kept exact
 * (mgl_json_rewrite). Messages start with "@prefix: " when @prefix is not
 * NULL. */
gboolean mgl_detections_parse_json(JsonParser* parser, const gchar* text, gssize len, const gchar* prefix,
                                   GPtrArray* warnings, GError** error) {
    const gchar* sep = prefix != NULL ? ": " : "";
    gsize n = len < 0 ? strlen(text) : (gsize)len;
    GError* err = NULL;
    GString* fixed = NULL;
    guint n_surrogates = 0;
    gchar first[7];
    gboolean ok;

    if (prefix == NULL) prefix = "";
    if (!mgl_json_depth_ok(text, n)) {
        g_set_error(error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_PARSE,
                    "%s%smalformed JSON: nested deeper than %d levels", prefix, sep, MGL_JSON_MAX_DEPTH);
        return FALSE;
    }
    if (!g_utf8_validate(text, (gssize)n, NULL)) {
        g_set_error(error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_PARSE, "%s%smalformed JSON: not valid UTF-8",
                    prefix, sep);
        return FALSE;
    }
    mgl_json_rewrite(text, n, &fixed, &n_surrogates, first);
    if (fixed != NULL) {
        text = fixed->str;
        n = fixed->len;
    }
    ok = json_parser_load_from_data(parser, text, (gssize)n, &err);
    if (fixed != NULL) g_string_free(fixed, TRUE);
    if (!ok) {
        g_set_error(error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_PARSE, "%s%smalformed JSON: %s", prefix, sep,
                    err->message);
        g_clear_error(&err);
        return FALSE;
    }
    if (n_surrogates > 0)
        mgl_detections_warn(warnings,
                            "%s%s%u lone UTF-16 surrogate escape%s "
                            "(%s%s) replaced with U+FFFD",
                            prefix, sep, n_surrogates, n_surrogates == 1 ? "" : "s", n_surrogates == 1 ? "" : "first ",
                            first);
    return TRUE;
}

/* Opens @path when it is a regular file (never blocks on a FIFO); -1 and
 * @error (MGL_DETECTIONS_ERROR_IO, message starting with the path) else. */
int mgl_detections_open(const gchar* path, guint64* size, GError** error) {
    GError* err = NULL;
    struct stat st;
    int fd = mgl_open_regular(path, &err);

    if (fd < 0) {
        g_set_error_literal(error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_IO, err->message);
        g_clear_error(&err);
        return -1;
    }
    if (fstat(fd, &st) != 0) {
        int e = errno;

        close(fd);
        g_set_error(error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_IO, "%s: cannot stat: %s", path, g_strerror(e));
        return -1;
    }
    *size = (guint64)st.st_size;
    return fd;
}

void mgl_detections_set_too_large(GError** error, const gchar* path, guint64 size, gsize max_size, const gchar* hint) {
    gchar* mib =
        max_size % (1u << 20) == 0 ? g_strdup_printf(" (%" G_GSIZE_FORMAT " MiB)", max_size >> 20) : g_strdup("");

    g_set_error(error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_PARSE,
                "%s: file of %" G_GUINT64_FORMAT " bytes is larger than the %" G_GSIZE_FORMAT "-byte%s limit%s", path,
                size, max_size, mib, hint != NULL ? hint : "");
    g_free(mib);
}

/* Reads a whole file (at most @max_size bytes, checked against its size
 * before anything is read) and parses it; a UTF-8 byte order mark at the
 * start is skipped. @hint follows the limit in the too-large message. */
gboolean mgl_detections_load_json_file(JsonParser* parser, const gchar* path, gsize max_size, const gchar* hint,
                                       const gchar* prefix, GPtrArray* warnings, GError** error) {
    guint64 size = 0;
    gchar* text;
    gsize len = 0, cap;
    gboolean ok;
    int fd = mgl_detections_open(path, &size, error);

    if (fd < 0) return FALSE;
    if (size > max_size) {
        close(fd);
        mgl_detections_set_too_large(error, path, size, max_size, hint);
        return FALSE;
    }
    /* the size it had, and one byte more to see it grow past the limit */
    cap = (gsize)size + 1;
    text = g_try_malloc(cap + 1);
    if (text == NULL) {
        close(fd);
        g_set_error(error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_IO,
                    "%s: out of memory reading %" G_GUINT64_FORMAT " bytes", path, size);
        return FALSE;
    }
    for (;;) {
        ssize_t r;

        if (len == cap) {
            gchar* nt;

            if (cap > max_size) {
                g_free(text);
                close(fd);
                mgl_detections_set_too_large(error, path, len, max_size, hint);
                return FALSE;
            }
            cap = MIN(cap * 2, max_size + 1);
            nt = g_try_realloc(text, cap + 1);
            if (nt == NULL) {
                g_free(text);
                close(fd);
                g_set_error(error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_IO, "%s: out of memory", path);
                return FALSE;
            }
            text = nt;
        }
        r = read(fd, text + len, cap - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;

            g_free(text);
            close(fd);
            g_set_error(error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_IO, "%s: read error: %s", path,
                        g_strerror(e));
            return FALSE;
        }
        if (r == 0) break;
        len += (gsize)r;
    }
    close(fd);
    if (len > max_size) {
        g_free(text);
        mgl_detections_set_too_large(error, path, len, max_size, hint);
        return FALSE;
    }
    text[len] = '\0';
    if (len >= 3 && memcmp(text, MGL_UTF8_BOM, 3) == 0)
        ok = mgl_detections_parse_json(parser, text + 3, (gssize)len - 3, prefix, warnings, error);
    else
        ok = mgl_detections_parse_json(parser, text, (gssize)len, prefix, warnings, error);
    g_free(text);
    return ok;
}

MglDetections* mgl_detections_load_record(const gchar* path, gsize max_size, GPtrArray* warnings, GError** error) {
    JsonParser* parser;
    MglDetections* d = NULL;
    JsonNode* root;

    g_return_val_if_fail(path != NULL, NULL);

    parser = json_parser_new();
    if (!mgl_detections_load_json_file(parser, path, max_size, NULL, path, warnings, error)) goto out;
    root = json_parser_get_root(parser);
    /* the batch form: a list holding this one record */
    if (root != NULL && JSON_NODE_HOLDS_ARRAY(root) && json_array_get_length(json_node_get_array(root)) == 1)
        root = json_array_get_element(json_node_get_array(root), 0);
    if (root == NULL || !JSON_NODE_HOLDS_OBJECT(root)) {
        g_set_error(error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT,
                    "%s: expected an object {\"boxes\", \"scores\", \"labels\"}", path);
        goto out;
    }
    d = mgl_detections_new();
    if (!mgl_detections_parse_record(json_node_get_object(root), path, d, warnings, error))
        g_clear_pointer(&d, mgl_detections_free);

out:
    g_object_unref(parser);
    return d;
}
