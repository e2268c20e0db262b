/* mgl-detections.c: the offline detections reader (see mgl-detections.h).
 *
 * Copyright (C) 2026 mgllava authors
 * SPDX-License-Identifier: MIT
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "mgl-detections.h"
#include "mgl-json.h"

GQuark
mgl_detections_error_quark (void)
{
  return g_quark_from_static_string ("mgl-detections-error-quark");
}

typedef struct
{
  gint64 key;
  guint first;                  /* of its first box in MglDetectionsFile.all */
  guint n;
} MglRecord;

struct _MglDetectionsFile
{
  gchar *path;
  MglDetectionsFormat format;
  MglDetectionsMatch match;

  /* LIST and VIDEO: every record, sorted by key */
  GArray *records;              /* MglRecord */
  MglDetections *all;           /* their boxes and labels */

  /* JSONL */
  FILE *fp;
  gchar *line;
  size_t line_cap;
  guint64 lineno;               /* of the last line read, 1-based */
  gboolean have_pending;
  MglRecord pending;            /* boxes in pending_boxes */
  MglDetections *pending_boxes;
  GStringChunk *lookup_labels;  /* labels of the last lookup's boxes */
  gboolean have_last;
  gint64 last_key;
  gboolean broken;              /* a malformed line was met */
};

const gchar *
mgl_detections_format_to_string (MglDetectionsFormat format)
{
  switch (format) {
    case MGL_DETECTIONS_FORMAT_LIST:
      return "list";
    case MGL_DETECTIONS_FORMAT_VIDEO:
      return "video";
    case MGL_DETECTIONS_FORMAT_JSONL:
      return "jsonl";
  }
  return "unknown";
}

MglDetections *
mgl_detections_new (void)
{
  MglDetections *d = g_new0 (MglDetections, 1);

  d->boxes = g_array_new (FALSE, FALSE, sizeof (MglDetectionsBox));
  d->labels = g_string_chunk_new (1024);
  return d;
}

void
mgl_detections_clear (MglDetections * d)
{
  g_array_set_size (d->boxes, 0);
  g_string_chunk_clear (d->labels);
}

void
mgl_detections_free (MglDetections * d)
{
  if (d == NULL)
    return;
  g_array_free (d->boxes, TRUE);
  g_string_chunk_free (d->labels);
  g_free (d);
}

/* *INDENT-OFF* */
static void mgl_warn (GPtrArray * warnings, const gchar * format, ...)
    G_GNUC_PRINTF (2, 3);
/* *INDENT-ON* */

static void
mgl_warn (GPtrArray * warnings, const gchar * format, ...)
{
  va_list args;

  if (warnings == NULL)
    return;
  va_start (args, format);
  g_ptr_array_add (warnings, g_strdup_vprintf (format, args));
  va_end (args);
}

static gboolean
mgl_node_get_number (JsonNode * node, gdouble * out)
{
  GType t;

  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node))
    return FALSE;
  t = json_node_get_value_type (node);
  if (t == G_TYPE_INT64)
    *out = (gdouble) json_node_get_int (node);
  else if (t == G_TYPE_DOUBLE)
    *out = json_node_get_double (node);
  else
    return FALSE;
  return isfinite (*out);
}

/* An integer key: a JSON integer, an integral number, or a string holding a
 * decimal integer ("12"). */
static gboolean
mgl_node_get_key (JsonNode * node, gint64 * out)
{
  GType t;

  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node))
    return FALSE;
  t = json_node_get_value_type (node);
  if (t == G_TYPE_INT64) {
    *out = json_node_get_int (node);
    return TRUE;
  }
  if (t == G_TYPE_DOUBLE) {
    gdouble d = json_node_get_double (node);

    if (!isfinite (d) || d != floor (d) || fabs (d) > 9.0e15)
      return FALSE;
    *out = (gint64) d;
    return TRUE;
  }
  if (t == G_TYPE_STRING) {
    const gchar *s = json_node_get_string (node);
    gchar *end = NULL;

    if (s == NULL || *s == '\0')
      return FALSE;
    errno = 0;
    *out = g_ascii_strtoll (s, &end, 10);
    return errno == 0 && end != NULL && *end == '\0';
  }
  return FALSE;
}

/* The record rules and defaults of mgl-detections.h, in one place. */
gboolean
mgl_detections_parse_record (JsonObject * obj, const gchar * where,
    MglDetections * out, GPtrArray * warnings, GError ** error)
{
  JsonNode *bnode = json_object_get_member (obj, "boxes");
  JsonNode *snode = json_object_get_member (obj, "scores");
  JsonNode *lnode = json_object_get_member (obj, "labels");
  JsonArray *barr, *sarr = NULL, *larr = NULL;
  guint n, i;

  if (bnode == NULL) {
    g_set_error (error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT,
        "%s: missing field \"boxes\"", where);
    return FALSE;
  }
  if (!JSON_NODE_HOLDS_ARRAY (bnode)) {
    g_set_error (error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT,
        "%s: field \"boxes\" must be an array of [x1, y1, x2, y2] arrays",
        where);
    return FALSE;
  }
  barr = json_node_get_array (bnode);
  n = json_array_get_length (barr);

  if (snode != NULL && !JSON_NODE_HOLDS_NULL (snode)) {
    if (!JSON_NODE_HOLDS_ARRAY (snode)) {
      g_set_error (error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT,
          "%s: field \"scores\" must be an array of numbers", where);
      return FALSE;
    }
    sarr = json_node_get_array (snode);
    if (json_array_get_length (sarr) != n) {
      g_set_error (error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT,
          "%s: field \"scores\" has %u entries but \"boxes\" has %u", where,
          json_array_get_length (sarr), n);
      return FALSE;
    }
  }
  if (lnode != NULL && !JSON_NODE_HOLDS_NULL (lnode)) {
    if (!JSON_NODE_HOLDS_ARRAY (lnode)) {
      g_set_error (error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT,
          "%s: field \"labels\" must be an array of strings", where);
      return FALSE;
    }
    larr = json_node_get_array (lnode);
    if (json_array_get_length (larr) != n) {
      g_set_error (error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT,
          "%s: field \"labels\" has %u entries but \"boxes\" has %u", where,
          json_array_get_length (larr), n);
      return FALSE;
    }
  }

  for (i = 0; i < n; i++) {
    JsonNode *bn = json_array_get_element (barr, i);
    JsonArray *c;
    MglDetectionsBox b;
    const gchar *label;
    gchar idbuf[32];
    gdouble v[4], score = MGL_DETECTIONS_DEFAULT_SCORE;
    guint k;

    if (!JSON_NODE_HOLDS_ARRAY (bn)
        || json_array_get_length (json_node_get_array (bn)) != 4) {
      g_set_error (error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT,
          "%s: field \"boxes\"[%u] must be an array of 4 numbers "
          "[x1, y1, x2, y2]", where, i);
      return FALSE;
    }
    c = json_node_get_array (bn);
    for (k = 0; k < 4; k++) {
      if (!mgl_node_get_number (json_array_get_element (c, k), &v[k])) {
        g_set_error (error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT,
            "%s: field \"boxes\"[%u][%u] must be a number", where, i, k);
        return FALSE;
      }
      /* a pixel coordinate (the engine's bound): also keeps every value
       * finite as a float */
      if (fabs (v[k]) > MGL_DETECTIONS_MAX_COORD) {
        g_set_error (error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT,
            "%s: field \"boxes\"[%u][%u] = %g is not a pixel coordinate "
            "(beyond 1e6)", where, i, k, v[k]);
        return FALSE;
      }
    }

    if (sarr != NULL) {
      if (!mgl_node_get_number (json_array_get_element (sarr, i), &score)) {
        g_set_error (error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT,
            "%s: field \"scores\"[%u] must be a number", where, i);
        return FALSE;
      }
      /* a confidence, finite also as a float (the engine refuses
       * non-finite scores) */
      if (fabs (score) > MGL_DETECTIONS_MAX_SCORE) {
        g_set_error (error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT,
            "%s: field \"scores\"[%u] = %g is not a confidence", where, i,
            score);
        return FALSE;
      }
    }

    label = MGL_DETECTIONS_DEFAULT_LABEL;
    if (larr != NULL) {
      JsonNode *ln = json_array_get_element (larr, i);

      if (JSON_NODE_HOLDS_VALUE (ln)
          && json_node_get_value_type (ln) == G_TYPE_STRING) {
        label = json_node_get_string (ln);
      } else if (JSON_NODE_HOLDS_VALUE (ln)
          && json_node_get_value_type (ln) == G_TYPE_INT64) {
        g_snprintf (idbuf, sizeof (idbuf), "%" G_GINT64_FORMAT,
            (gint64) json_node_get_int (ln));
        label = idbuf;
      } else {
        g_set_error (error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT,
            "%s: field \"labels\"[%u] must be a string", where, i);
        return FALSE;
      }
    }

    if (v[2] < v[0] || v[3] < v[1]) {
      mgl_warn (warnings, "%s: field \"boxes\"[%u] is inverted "
          "([%g, %g, %g, %g]: x2 < x1 or y2 < y1), box dropped", where, i,
          v[0], v[1], v[2], v[3]);
      continue;
    }
    if (v[0] < 0 || v[1] < 0 || v[2] < 0 || v[3] < 0) {
      mgl_warn (warnings, "%s: field \"boxes\"[%u] has a negative "
          "coordinate ([%g, %g, %g, %g]), clipped to the frame", where, i,
          v[0], v[1], v[2], v[3]);
    }
    b.x1 = v[0];
    b.y1 = v[1];
    b.x2 = v[2];
    b.y2 = v[3];
    b.score = score;
    b.label = g_string_chunk_insert_const (out->labels, label);
    g_array_append_val (out->boxes, b);
  }
  return TRUE;
}

static gint
mgl_record_compare (gconstpointer a, gconstpointer b)
{
  const MglRecord *ra = a, *rb = b;

  if (ra->key != rb->key)
    return ra->key < rb->key ? -1 : 1;
  return (ra->first > rb->first) - (ra->first < rb->first);
}

/* Parses @len bytes of @text (-1: up to the NUL) into @parser: UTF-8 JSON
 * nested at most MGL_JSON_MAX_DEPTH deep (json-glib parses recursively, so a
 * hostile file nested a hundred thousand levels deep would exhaust the
 * stack). Messages start with "@prefix: " when @prefix is not NULL. */
static gboolean
mgl_parse_json (JsonParser * parser, const gchar * text, gssize len,
    const gchar * prefix, GError ** error)
{
  const gchar *sep = prefix != NULL ? ": " : "";
  gsize n = len < 0 ? strlen (text) : (gsize) len;
  GError *err = NULL;

  if (prefix == NULL)
    prefix = "";
  if (!mgl_json_depth_ok (text, n)) {
    g_set_error (error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_PARSE,
        "%s%smalformed JSON: nested deeper than %d levels", prefix, sep,
        MGL_JSON_MAX_DEPTH);
    return FALSE;
  }
  if (!g_utf8_validate (text, (gssize) n, NULL)) {
    g_set_error (error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_PARSE,
        "%s%smalformed JSON: not valid UTF-8", prefix, sep);
    return FALSE;
  }
  if (!json_parser_load_from_data (parser, text, (gssize) n, &err)) {
    g_set_error (error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_PARSE,
        "%s%smalformed JSON: %s", prefix, sep, err->message);
    g_clear_error (&err);
    return FALSE;
  }
  return TRUE;
}

/* Reads a whole file (at most @max_size bytes) and parses it. */
static gboolean
mgl_load_json_file (JsonParser * parser, const gchar * path, gsize max_size,
    const gchar * prefix, GError ** error)
{
  GError *err = NULL;
  gchar *text = NULL;
  gsize len = 0;
  gboolean ok;

  if (!mgl_json_read_file (path, max_size, &text, &len, &err)) {
    g_set_error_literal (error, MGL_DETECTIONS_ERROR,
        err->code == MGL_JSON_ERROR_FORMAT ? MGL_DETECTIONS_ERROR_PARSE :
        MGL_DETECTIONS_ERROR_IO, err->message);
    g_clear_error (&err);
    return FALSE;
  }
  ok = mgl_parse_json (parser, text, (gssize) len, prefix, error);
  free (text);
  return ok;
}

static gboolean
mgl_load_whole (MglDetectionsFile * f, GPtrArray * warnings, GError ** error)
{
  JsonParser *parser = json_parser_new ();
  JsonNode *root;
  JsonArray *arr;
  gboolean ok = FALSE;
  guint i, n;

  if (!mgl_load_json_file (parser, f->path, G_MAXSSIZE, NULL, error))
    goto out;
  root = json_parser_get_root (parser);

  if (f->format == MGL_DETECTIONS_FORMAT_LIST) {
    if (root == NULL || !JSON_NODE_HOLDS_ARRAY (root)) {
      g_set_error (error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT,
          "top level must be an array of {\"id\", \"boxes\", ...} records");
      goto out;
    }
    arr = json_node_get_array (root);
  } else {
    JsonNode *frames;

    if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root)) {
      g_set_error (error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT,
          "top level must be a {\"video\", \"frames\": [...]} object");
      goto out;
    }
    frames = json_object_get_member (json_node_get_object (root), "frames");
    if (frames == NULL || !JSON_NODE_HOLDS_ARRAY (frames)) {
      g_set_error (error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT,
          "field \"frames\" is missing or not an array");
      goto out;
    }
    arr = json_node_get_array (frames);
  }

  n = json_array_get_length (arr);
  for (i = 0; i < n; i++) {
    JsonNode *rn = json_array_get_element (arr, i);
    MglRecord r;
    gchar where[64];

    if (f->format == MGL_DETECTIONS_FORMAT_LIST)
      g_snprintf (where, sizeof (where), "record %u", i);
    else
      g_snprintf (where, sizeof (where), "frames[%u]", i);

    if (!JSON_NODE_HOLDS_OBJECT (rn)) {
      g_set_error (error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT,
          "%s: must be an object", where);
      goto out;
    }
    if (f->format == MGL_DETECTIONS_FORMAT_LIST) {
      JsonNode *id = json_object_get_member (json_node_get_object (rn), "id");

      if (id == NULL) {
        g_set_error (error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT,
            "%s: missing field \"id\" (the frame number)", where);
        goto out;
      }
      if (!mgl_node_get_key (id, &r.key)) {
        g_set_error (error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT,
            "%s: field \"id\" must be an integer frame number", where);
        goto out;
      }
    } else {
      r.key = i;
    }
    r.first = f->all->boxes->len;
    if (!mgl_detections_parse_record (json_node_get_object (rn), where,
            f->all, warnings, error))
      goto out;
    r.n = f->all->boxes->len - r.first;
    g_array_append_val (f->records, r);
  }
  g_array_sort (f->records, mgl_record_compare);
  ok = TRUE;

out:
  g_object_unref (parser);
  return ok;
}

/* Reads the next line; FALSE at end of file (or on a read error, in @error). */
static gboolean
mgl_jsonl_read_line (MglDetectionsFile * f, GError ** error)
{
  ssize_t len;

  errno = 0;
  len = getline (&f->line, &f->line_cap, f->fp);
  if (len < 0) {
    if (ferror (f->fp))
      g_set_error (error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_IO,
          "line %" G_GUINT64_FORMAT ": read error: %s", f->lineno + 1,
          g_strerror (errno));
    return FALSE;
  }
  f->lineno++;
  return TRUE;
}

/* Parses f->line into f->pending. */
static gboolean
mgl_jsonl_parse_line (MglDetectionsFile * f, GPtrArray * warnings,
    GError ** error)
{
  JsonParser *parser = json_parser_new ();
  const gchar *keyname = f->match == MGL_DETECTIONS_MATCH_PTS ? "pts" : "frame";
  JsonNode *root, *key;
  JsonObject *obj;
  gboolean ok = FALSE;
  gchar where[64];

  g_snprintf (where, sizeof (where), "line %" G_GUINT64_FORMAT, f->lineno);

  if (!mgl_parse_json (parser, f->line, -1, where, error))
    goto out;
  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root)) {
    g_set_error (error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT,
        "%s: must be a JSON object", where);
    goto out;
  }
  obj = json_node_get_object (root);
  key = json_object_get_member (obj, keyname);
  if (key == NULL) {
    g_set_error (error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT,
        "%s: missing field \"%s\" (match=%s)", where, keyname, keyname);
    goto out;
  }
  if (!mgl_node_get_key (key, &f->pending.key)) {
    g_set_error (error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT,
        "%s: field \"%s\" must be an integer%s", where, keyname,
        f->match == MGL_DETECTIONS_MATCH_PTS ? " (nanoseconds)" : "");
    goto out;
  }
  mgl_detections_clear (f->pending_boxes);
  if (!mgl_detections_parse_record (obj, where, f->pending_boxes, warnings,
          error))
    goto out;
  f->pending.first = 0;
  f->pending.n = f->pending_boxes->boxes->len;
  ok = TRUE;

out:
  g_object_unref (parser);
  return ok;
}

static gboolean
mgl_line_is_blank (const gchar * s)
{
  for (; *s != '\0'; s++) {
    if (!g_ascii_isspace (*s))
      return FALSE;
  }
  return TRUE;
}

/* Detects the layout from the first bytes: '[' is LIST; '{' is JSONL when
 * the first line alone is a complete object without "frames", else VIDEO. */
static gboolean
mgl_detect_format (MglDetectionsFile * f, GError ** error)
{
  JsonParser *parser;
  gboolean jsonl = FALSE;
  int c;

  do {
    c = fgetc (f->fp);
  } while (c != EOF && g_ascii_isspace (c));

  if (c == EOF) {
    g_set_error (error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_PARSE,
        "%s: empty file", f->path);
    return FALSE;
  }
  if (c == '[') {
    f->format = MGL_DETECTIONS_FORMAT_LIST;
    return TRUE;
  }
  if (c != '{') {
    g_set_error (error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_PARSE,
        "malformed JSON: %s does not start with '[' or '{'", f->path);
    return FALSE;
  }

  rewind (f->fp);
  do {
    if (!mgl_jsonl_read_line (f, NULL))
      break;
  } while (mgl_line_is_blank (f->line));

  parser = json_parser_new ();
  if (f->line != NULL && mgl_parse_json (parser, f->line, -1, NULL, NULL)) {
    JsonNode *root = json_parser_get_root (parser);

    jsonl = root != NULL && JSON_NODE_HOLDS_OBJECT (root)
        && !json_object_has_member (json_node_get_object (root), "frames");
  }
  g_object_unref (parser);

  f->format = jsonl ? MGL_DETECTIONS_FORMAT_JSONL : MGL_DETECTIONS_FORMAT_VIDEO;
  return TRUE;
}

gboolean
mgl_detections_file_rewind (MglDetectionsFile * f, GError ** error)
{
  g_return_val_if_fail (f != NULL, FALSE);

  if (f->format != MGL_DETECTIONS_FORMAT_JSONL)
    return TRUE;

  if (fseek (f->fp, 0, SEEK_SET) != 0) {
    g_set_error (error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_IO,
        "%s: cannot rewind: %s", f->path, g_strerror (errno));
    return FALSE;
  }
  clearerr (f->fp);
  g_string_chunk_clear (f->lookup_labels);
  mgl_detections_clear (f->pending_boxes);
  f->lineno = 0;
  f->have_pending = FALSE;
  f->have_last = FALSE;
  f->broken = FALSE;
  return TRUE;
}

MglDetectionsFile *
mgl_detections_file_open (const gchar * path, MglDetectionsMatch match,
    GPtrArray * warnings, GError ** error)
{
  MglDetectionsFile *f;

  g_return_val_if_fail (path != NULL, NULL);

  f = g_new0 (MglDetectionsFile, 1);
  f->path = g_strdup (path);
  f->match = match;
  f->records = g_array_new (FALSE, FALSE, sizeof (MglRecord));
  f->all = mgl_detections_new ();
  f->pending_boxes = mgl_detections_new ();
  f->lookup_labels = g_string_chunk_new (1024);

  f->fp = g_fopen (path, "rb");
  if (f->fp == NULL) {
    g_set_error (error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_IO,
        "cannot open %s: %s", path, g_strerror (errno));
    goto fail;
  }
  if (!mgl_detect_format (f, error))
    goto fail;

  if (f->format == MGL_DETECTIONS_FORMAT_JSONL) {
    if (!mgl_detections_file_rewind (f, error))
      goto fail;
    return f;
  }

  fclose (f->fp);
  f->fp = NULL;
  if (match == MGL_DETECTIONS_MATCH_PTS) {
    g_set_error (error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT,
        "%s: the %s layout has no timestamps; use match=frame, or JSON Lines "
        "records with a \"pts\" field", path,
        mgl_detections_format_to_string (f->format));
    goto fail;
  }
  if (!mgl_load_whole (f, warnings, error))
    goto fail;
  return f;

fail:
  mgl_detections_file_free (f);
  return NULL;
}

void
mgl_detections_file_free (MglDetectionsFile * f)
{
  if (f == NULL)
    return;
  if (f->fp != NULL)
    fclose (f->fp);
  free (f->line);               /* from getline() */
  g_array_free (f->records, TRUE);
  mgl_detections_free (f->all);
  mgl_detections_free (f->pending_boxes);
  g_string_chunk_free (f->lookup_labels);
  g_free (f->path);
  g_free (f);
}

MglDetectionsFormat
mgl_detections_file_get_format (const MglDetectionsFile * f)
{
  return f->format;
}

static gboolean
mgl_jsonl_lookup (MglDetectionsFile * f, gint64 lo, gint64 hi, GArray * out,
    GPtrArray * warnings, GError ** error)
{
  /* the labels of the previous lookup's boxes */
  g_string_chunk_clear (f->lookup_labels);
  if (f->broken) {
    g_set_error (error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT,
        "%s: stopped at line %" G_GUINT64_FORMAT " after an earlier error",
        f->path, f->lineno);
    return FALSE;
  }

  for (;;) {
    if (!f->have_pending) {
      GError *err = NULL;

      if (!mgl_jsonl_read_line (f, &err)) {
        if (err != NULL) {
          g_propagate_error (error, err);
          f->broken = TRUE;
          return FALSE;
        }
        return TRUE;            /* end of file: no more detections */
      }
      if (mgl_line_is_blank (f->line))
        continue;
      if (!mgl_jsonl_parse_line (f, warnings, error)) {
        f->broken = TRUE;
        return FALSE;
      }
      if (f->have_last && f->pending.key < f->last_key) {
        mgl_warn (warnings, "line %" G_GUINT64_FORMAT ": %s %" G_GINT64_FORMAT
            " comes after %" G_GINT64_FORMAT "; records must be in "
            "increasing order, record skipped", f->lineno,
            f->match == MGL_DETECTIONS_MATCH_PTS ? "pts" : "frame",
            f->pending.key, f->last_key);
        continue;
      }
      f->have_last = TRUE;
      f->last_key = f->pending.key;
      f->have_pending = TRUE;
    }

    if (f->pending.key > hi)
      return TRUE;              /* a later frame's: keep it */
    if (f->pending.key >= lo) {
      guint i;

      /* the pending record's labels go with its next line: copy them */
      for (i = 0; i < f->pending.n; i++) {
        MglDetectionsBox b = g_array_index (f->pending_boxes->boxes,
            MglDetectionsBox, i);

        b.label = g_string_chunk_insert_const (f->lookup_labels, b.label);
        g_array_append_val (out, b);
      }
    }
    f->have_pending = FALSE;
  }
}

gboolean
mgl_detections_file_lookup (MglDetectionsFile * f, gint64 lo, gint64 hi,
    GArray * out, GPtrArray * warnings, GError ** error)
{
  guint a, b;

  g_return_val_if_fail (f != NULL && out != NULL, FALSE);

  if (hi < lo)
    return TRUE;
  if (f->format == MGL_DETECTIONS_FORMAT_JSONL)
    return mgl_jsonl_lookup (f, lo, hi, out, warnings, error);

  /* first record with key >= lo */
  a = 0;
  b = f->records->len;
  while (a < b) {
    guint mid = a + (b - a) / 2;

    if (g_array_index (f->records, MglRecord, mid).key < lo)
      a = mid + 1;
    else
      b = mid;
  }
  for (; a < f->records->len; a++) {
    const MglRecord *r = &g_array_index (f->records, MglRecord, a);

    if (r->key > hi)
      break;
    /* a record without boxes may sit on an empty (NULL-data) array */
    if (r->n > 0)
      g_array_append_vals (out, &g_array_index (f->all->boxes,
              MglDetectionsBox, r->first), r->n);
  }
  return TRUE;
}

MglDetections *
mgl_detections_load_record (const gchar * path, gsize max_size,
    GPtrArray * warnings, GError ** error)
{
  JsonParser *parser;
  MglDetections *d = NULL;
  JsonNode *root;

  g_return_val_if_fail (path != NULL, NULL);

  parser = json_parser_new ();
  if (!mgl_load_json_file (parser, path, max_size, path, error))
    goto out;
  root = json_parser_get_root (parser);
  /* the batch form: a list holding this one record */
  if (root != NULL && JSON_NODE_HOLDS_ARRAY (root)
      && json_array_get_length (json_node_get_array (root)) == 1)
    root = json_array_get_element (json_node_get_array (root), 0);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root)) {
    g_set_error (error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_FORMAT,
        "%s: expected an object {\"boxes\", \"scores\", \"labels\"}", path);
    goto out;
  }
  d = mgl_detections_new ();
  if (!mgl_detections_parse_record (json_node_get_object (root), path, d,
          warnings, error))
    g_clear_pointer (&d, mgl_detections_free);

out:
  g_object_unref (parser);
  return d;
}
