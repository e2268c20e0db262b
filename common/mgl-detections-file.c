/* mgl-detections-file.c: the detections file layouts (LIST and VIDEO loaded
 * whole, at most MGL_DETECTIONS_MAX_FILE_SIZE, checked before reading; JSONL
 * streamed a line at a time, each at most MGL_DETECTIONS_MAX_LINE_SIZE) over
 * the record rules of mgl-detections.c.
 *
 * Copyright (C) 2026 mgllava authors
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "mgl-detections.h"
#include "mgl-detections-private.h"
#include "mgl-json.h"

static gboolean mgl_load_whole(MglDetectionsFile* f, GPtrArray* warnings, GError** error) {
    JsonParser* parser = json_parser_new();
    JsonNode* root;
    JsonArray* arr;
    gboolean ok = FALSE;
    guint i, n;

    if (!mgl_detections_load_json_file(parser, f->path, MGL_DETECTIONS_MAX_FILE_SIZE,
                                       " of the list and video layouts, "
                                       "which are read whole (MGL_DETECTIONS_MAX_FILE_SIZE); JSON Lines "
                                       "(one record per line) are streamed and have no size limit",
                                       NULL, warnings, error))
        goto out;
    root = json_parser_get_root(parser);

    if (f->format == MGL_DETECTIONS_FORMAT_LIST) {
        if (root == NULL || !JSON_NODE_HOLDS_ARRAY(root)) {
            g_set_error(error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT,
                        "top level must be an array of {\"id\", \"boxes\", ...} records");
            goto out;
        }
        arr = json_node_get_array(root);
    } else {
        JsonNode* frames;

        if (root == NULL || !JSON_NODE_HOLDS_OBJECT(root)) {
            g_set_error(error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT,
                        "top level must be a {\"video\", \"frames\": [...]} object");
            goto out;
        }
        frames = json_object_get_member(json_node_get_object(root), "frames");
        if (frames == NULL || !JSON_NODE_HOLDS_ARRAY(frames)) {
            g_set_error(error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT,
                        "field \"frames\" is missing or not an array");
            goto out;
        }
        arr = json_node_get_array(frames);
    }

    n = json_array_get_length(arr);
    for (i = 0; i < n; i++) {
        JsonNode* rn = json_array_get_element(arr, i);
        MglRecord r;
        gchar where[64];

        if (f->format == MGL_DETECTIONS_FORMAT_LIST)
            g_snprintf(where, sizeof(where), "record %u", i);
        else
            g_snprintf(where, sizeof(where), "frames[%u]", i);

        if (!JSON_NODE_HOLDS_OBJECT(rn)) {
            g_set_error(error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT, "%s: must be an object", where);
            goto out;
        }
        if (f->format == MGL_DETECTIONS_FORMAT_LIST) {
            JsonNode* id = json_object_get_member(json_node_get_object(rn), "id");

            if (id == NULL) {
                g_set_error(error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT,
                            "%s: missing field \"id\" (the frame number)", where);
                goto out;
            }
            if (!mgl_detections_node_get_key(id, &r.key)) {
                g_set_error(error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT,
                            "%s: field \"id\" must be an integer frame number", where);
                goto out;
            }
        } else {
            r.key = i;
        }
        r.first = f->all->boxes->len;
        if (!mgl_detections_parse_record(json_node_get_object(rn), where, f->all, warnings, error)) goto out;
        r.n = f->all->boxes->len - r.first;
        g_array_append_val(f->records, r);
    }
    g_array_sort(f->records, mgl_detections_record_compare);
    ok = TRUE;

out:
    g_object_unref(parser);
    return ok;
}

/* Reads the next line (without its newline) into f->line: 1; 0 at end of
 * file; -1 and @error on a read error or a line longer than
 * MGL_DETECTIONS_MAX_LINE_SIZE, whose rest is then not read: a file of
 * gigabytes without a newline costs at most the limit. A UTF-8 byte order
 * mark opening the first line is dropped. */
static int mgl_jsonl_read_line(MglDetectionsFile* f, GError** error) {
    gsize len = 0;
    gboolean any = FALSE;
    int c;

    for (;;) {
        c = getc_unlocked(f->fp);
        if (c == EOF || c == '\n') {
            any |= c == '\n';
            break;
        }
        any = TRUE;
        if (len == MGL_DETECTIONS_MAX_LINE_SIZE) {
            g_set_error(error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_PARSE,
                        "line %" G_GUINT64_FORMAT ": longer than the %" G_GSIZE_FORMAT "-byte (%" G_GSIZE_FORMAT
                        " MiB) limit of one JSON Lines record "
                        "(MGL_DETECTIONS_MAX_LINE_SIZE)",
                        f->lineno + 1, (gsize)MGL_DETECTIONS_MAX_LINE_SIZE, (gsize)MGL_DETECTIONS_MAX_LINE_SIZE >> 20);
            return -1;
        }
        if (len + 1 >= f->line_cap) {
            gsize cap = MIN(MAX(f->line_cap * 2, 256), (gsize)MGL_DETECTIONS_MAX_LINE_SIZE + 1);
            gchar* nl = g_try_realloc(f->line, cap);

            if (nl == NULL) {
                g_set_error(error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_IO,
                            "line %" G_GUINT64_FORMAT ": out of memory", f->lineno + 1);
                return -1;
            }
            f->line = nl;
            f->line_cap = cap;
        }
        f->line[len++] = (gchar)c;
    }
    if (ferror(f->fp)) {
        g_set_error(error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_IO, "line %" G_GUINT64_FORMAT ": read error: %s",
                    f->lineno + 1, g_strerror(errno));
        return -1;
    }
    if (!any) return 0;
    if (f->line == NULL) {
        f->line = g_malloc(256);
        f->line_cap = 256;
    }
    f->line[len] = '\0';
    f->lineno++;
    if (f->lineno == 1 && len >= 3 && memcmp(f->line, MGL_UTF8_BOM, 3) == 0) {
        len -= 3;
        memmove(f->line, f->line + 3, len + 1);
    }
    f->line_len = len;
    return 1;
}

/* Parses f->line into f->pending. */
static gboolean mgl_jsonl_parse_line(MglDetectionsFile* f, GPtrArray* warnings, GError** error) {
    JsonParser* parser = json_parser_new();
    const gchar* keyname = f->match == MGL_DETECTIONS_MATCH_PTS ? "pts" : "frame";
    JsonNode *root, *key;
    JsonObject* obj;
    gboolean ok = FALSE;
    gchar where[64];

    g_snprintf(where, sizeof(where), "line %" G_GUINT64_FORMAT, f->lineno);

    if (!mgl_detections_parse_json(parser, f->line, (gssize)f->line_len, where, warnings, error)) goto out;
    root = json_parser_get_root(parser);
    if (root == NULL || !JSON_NODE_HOLDS_OBJECT(root)) {
        g_set_error(error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT, "%s: must be a JSON object", where);
        goto out;
    }
    obj = json_node_get_object(root);
    key = json_object_get_member(obj, keyname);
    if (key == NULL) {
        g_set_error(error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT, "%s: missing field \"%s\" (match=%s)",
                    where, keyname, keyname);
        goto out;
    }
    if (!mgl_detections_node_get_key(key, &f->pending.key)) {
        g_set_error(error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT, "%s: field \"%s\" must be an integer%s",
                    where, keyname, f->match == MGL_DETECTIONS_MATCH_PTS ? " (nanoseconds)" : "");
        goto out;
    }
    mgl_detections_clear(f->pending_boxes);
    if (!mgl_detections_parse_record(obj, where, f->pending_boxes, warnings, error)) goto out;
    f->pending.first = 0;
    f->pending.n = f->pending_boxes->boxes->len;
    ok = TRUE;

out:
    g_object_unref(parser);
    return ok;
}

static gboolean mgl_line_is_blank(const MglDetectionsFile* f) {
    gsize i;

    for (i = 0; i < f->line_len; i++) {
        if (!g_ascii_isspace(f->line[i])) return FALSE;
    }
    return TRUE;
}

/* Detects the layout from the first bytes (after a UTF-8 byte order mark):
 * '[' is LIST; '{' is JSONL when the first line alone is a complete object
 * without "frames", else VIDEO. Reads at most one line of
 * MGL_DETECTIONS_MAX_LINE_SIZE. */
static gboolean mgl_detect_format(MglDetectionsFile* f, GError** error) {
    JsonParser* parser;
    gboolean jsonl = FALSE;
    int c, rc;

    c = fgetc(f->fp);
    if (c == 0xef) {
        int c2 = fgetc(f->fp), c3 = fgetc(f->fp);

        if (c2 == 0xbb && c3 == 0xbf) c = fgetc(f->fp);
    }
    while (c != EOF && g_ascii_isspace(c)) c = fgetc(f->fp);

    if (c == EOF) {
        g_set_error(error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_PARSE, "%s: empty file", f->path);
        return FALSE;
    }
    if (c == '[') {
        f->format = MGL_DETECTIONS_FORMAT_LIST;
        return TRUE;
    }
    if (c != '{') {
        g_set_error(error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_PARSE,
                    "malformed JSON: %s does not start with '[' or '{'", f->path);
        return FALSE;
    }

    rewind(f->fp);
    do {
        rc = mgl_jsonl_read_line(f, NULL);
    } while (rc == 1 && mgl_line_is_blank(f));

    parser = json_parser_new();
    if (rc == 1 && mgl_detections_parse_json(parser, f->line, (gssize)f->line_len, NULL, NULL, NULL)) {
        JsonNode* root = json_parser_get_root(parser);

        jsonl = root != NULL && JSON_NODE_HOLDS_OBJECT(root) &&
                !json_object_has_member(json_node_get_object(root), "frames");
    }
    g_object_unref(parser);

    f->format = jsonl ? MGL_DETECTIONS_FORMAT_JSONL : MGL_DETECTIONS_FORMAT_VIDEO;
    return TRUE;
}

gboolean mgl_detections_file_rewind(MglDetectionsFile* f, GError** error) {
    g_return_val_if_fail(f != NULL, FALSE);

    if (f->format != MGL_DETECTIONS_FORMAT_JSONL) return TRUE;

    if (fseek(f->fp, 0, SEEK_SET) != 0) {
        g_set_error(error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_IO, "%s: cannot rewind: %s", f->path,
                    g_strerror(errno));
        return FALSE;
    }
    clearerr(f->fp);
    g_string_chunk_clear(f->lookup_labels);
    mgl_detections_clear(f->pending_boxes);
    f->lineno = 0;
    f->have_pending = FALSE;
    f->have_last = FALSE;
    f->broken = FALSE;
    return TRUE;
}

MglDetectionsFile* mgl_detections_file_open(const gchar* path, MglDetectionsMatch match, GPtrArray* warnings,
                                            GError** error) {
    MglDetectionsFile* f;
    guint64 size = 0;
    int fd;

    g_return_val_if_fail(path != NULL, NULL);

    f = g_new0(MglDetectionsFile, 1);
    f->path = g_strdup(path);
    f->match = match;
    f->records = g_array_new(FALSE, FALSE, sizeof(MglRecord));
    f->all = mgl_detections_new();
    f->pending_boxes = mgl_detections_new();
    f->lookup_labels = g_string_chunk_new(1024);

    fd = mgl_detections_open(path, &size, error);
    if (fd < 0) goto fail;
    f->fp = fdopen(fd, "rb");
    if (f->fp == NULL) {
        g_set_error(error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_IO, "%s: cannot open: %s", path,
                    g_strerror(errno));
        close(fd);
        goto fail;
    }
    if (!mgl_detect_format(f, error)) goto fail;

    if (f->format == MGL_DETECTIONS_FORMAT_JSONL) {
        if (!mgl_detections_file_rewind(f, error)) goto fail;
        return f;
    }

    fclose(f->fp);
    f->fp = NULL;
    if (match == MGL_DETECTIONS_MATCH_PTS) {
        g_set_error(error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT,
                    "%s: the %s layout has no timestamps; use match=frame, or JSON Lines "
                    "records with a \"pts\" field",
                    path, mgl_detections_format_to_string(f->format));
        goto fail;
    }
    if (!mgl_load_whole(f, warnings, error)) goto fail;
    return f;

fail:
    mgl_detections_file_free(f);
    return NULL;
}

void mgl_detections_file_free(MglDetectionsFile* f) {
    if (f == NULL) return;
    if (f->fp != NULL) fclose(f->fp);
    g_free(f->line);
    g_array_free(f->records, TRUE);
    mgl_detections_free(f->all);
    mgl_detections_free(f->pending_boxes);
    g_string_chunk_free(f->lookup_labels);
    g_free(f->path);
    g_free(f);
}

MglDetectionsFormat mgl_detections_file_get_format(const MglDetectionsFile* f) { return f->format; }

static gboolean mgl_jsonl_lookup(MglDetectionsFile* f, gint64 lo, gint64 hi, GArray* out, GPtrArray* warnings,
                                 GError** error) {
    /* the labels of the previous lookup's boxes */
    g_string_chunk_clear(f->lookup_labels);
    if (f->broken) {
        g_set_error(error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT,
                    "%s: stopped at line %" G_GUINT64_FORMAT " after an earlier error", f->path, f->lineno);
        return FALSE;
    }

    for (;;) {
        if (!f->have_pending) {
            GError* err = NULL;

            int rc = mgl_jsonl_read_line(f, &err);

            if (rc < 0) {
                g_propagate_error(error, err);
                f->broken = TRUE;
                return FALSE;
            }
            if (rc == 0) return TRUE; /* end of file: no more detections */
            if (mgl_line_is_blank(f)) continue;
            if (!mgl_jsonl_parse_line(f, warnings, error)) {
                f->broken = TRUE;
                return FALSE;
            }
            if (f->have_last && f->pending.key < f->last_key) {
                mgl_detections_warn(warnings,
                                    "line %" G_GUINT64_FORMAT ": %s %" G_GINT64_FORMAT " comes after %" G_GINT64_FORMAT
                                    "; records must be in "
                                    "increasing order, record skipped",
                                    f->lineno, f->match == MGL_DETECTIONS_MATCH_PTS ? "pts" : "frame", f->pending.key,
                                    f->last_key);
                continue;
            }
            f->have_last = TRUE;
            f->last_key = f->pending.key;
            f->have_pending = TRUE;
        }

        if (f->pending.key > hi) return TRUE; /* a later frame's: keep it */
        if (f->pending.key >= lo) {
            guint i;

            /* the pending record's labels go with its next line: copy them */
            for (i = 0; i < f->pending.n; i++) {
                MglDetectionsBox b = g_array_index(f->pending_boxes->boxes, MglDetectionsBox, i);

                b.label = g_string_chunk_insert_const(f->lookup_labels, b.label);
                g_array_append_val(out, b);
            }
        }
        f->have_pending = FALSE;
    }
}

gboolean mgl_detections_file_lookup(MglDetectionsFile* f, gint64 lo, gint64 hi, GArray* out, GPtrArray* warnings,
                                    GError** error) {
    guint a, b;

    g_return_val_if_fail(f != NULL && out != NULL, FALSE);

    if (hi < lo) return TRUE;
    if (f->format == MGL_DETECTIONS_FORMAT_JSONL) return mgl_jsonl_lookup(f, lo, hi, out, warnings, error);

    /* first record with key >= lo */
    a = 0;
    b = f->records->len;
    while (a < b) {
        guint mid = a + (b - a) / 2;

        if (g_array_index(f->records, MglRecord, mid).key < lo)
            a = mid + 1;
        else
            b = mid;
    }
    for (; a < f->records->len; a++) {
        const MglRecord* r = &g_array_index(f->records, MglRecord, a);

        if (r->key > hi) break;
        /* a record without boxes may sit on an empty (NULL-data) array */
        if (r->n > 0) g_array_append_vals(out, &g_array_index(f->all->boxes, MglDetectionsBox, r->first), r->n);
    }
    return TRUE;
}
