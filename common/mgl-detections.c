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

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "mgl-detections.h"
#include "mgl-detections-private.h"
#include "mgl-json.h"

GQuark
mgl_detections_error_quark (void)
{
  return g_quark_from_static_string ("mgl-detections-error-quark");
}

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


void
mgl_detections_warn (GPtrArray * warnings, const gchar * format, ...)
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
gboolean
mgl_detections_node_get_key (JsonNode * node, gint64 * out)
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
      mgl_detections_warn (warnings, "%s: field \"boxes\"[%u] is inverted "
          "([%g, %g, %g, %g]: x2 < x1 or y2 < y1), box dropped", where, i,
          v[0], v[1], v[2], v[3]);
      continue;
    }
    if (v[0] < 0 || v[1] < 0 || v[2] < 0 || v[3] < 0) {
      mgl_detections_warn (warnings, "%s: field \"boxes\"[%u] has a negative "
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

gint
mgl_detections_record_compare (gconstpointer a, gconstpointer b)
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
gboolean
mgl_detections_parse_json (JsonParser * parser, const gchar * text, gssize len,
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
gboolean
mgl_detections_load_json_file (JsonParser * parser, const gchar * path, gsize max_size,
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
  ok = mgl_detections_parse_json (parser, text, (gssize) len, prefix, error);
  free (text);
  return ok;
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
  if (!mgl_detections_load_json_file (parser, path, max_size, path, error))
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
