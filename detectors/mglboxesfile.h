/* mglboxesfile.h: offline detections for mgllavaboxes (no GStreamer).
 *
 * Three layouts (docs/detectors.md):
 *   LIST  [{"id": frame, "boxes": [[x1,y1,x2,y2],...], "scores": [...], "labels": [...]}, ...]
 *         (the MG-LLaVA offline detector output), loaded whole;
 *   VIDEO {"video": ..., "frames": [{"boxes", "scores", "labels"}, ...]}
 *         (the MG-LLaVA video record; frame i = frames[i]), loaded whole;
 *   JSONL one {"frame" | "pts", "boxes", "scores", "labels"} object per
 *         line, streamed: only the current line is in memory.
 *
 * Copyright (C) 2026 mgllava authors
 * SPDX-License-Identifier: MIT
 */
#ifndef MGL_BOXES_FILE_H
#define MGL_BOXES_FILE_H

#include <glib.h>

G_BEGIN_DECLS

#define MGL_BOXES_ERROR (mgl_boxes_error_quark ())
GQuark mgl_boxes_error_quark (void);

typedef enum
{
  MGL_BOXES_ERROR_IO,           /* cannot open or read the file */
  MGL_BOXES_ERROR_PARSE,        /* not JSON */
  MGL_BOXES_ERROR_FORMAT,       /* JSON, but a field is missing or has the wrong type */
} MglBoxesError;

typedef enum
{
  MGL_BOXES_FORMAT_LIST,
  MGL_BOXES_FORMAT_VIDEO,
  MGL_BOXES_FORMAT_JSONL,
} MglBoxesFormat;

typedef enum
{
  MGL_BOXES_MATCH_FRAME,        /* key = frame number */
  MGL_BOXES_MATCH_PTS,          /* key = presentation time in ns (JSONL only) */
} MglBoxesMatch;

/* One box in frame pixels, x2/y2 exclusive. Not yet clipped to the frame
 * (the file does not know the frame size); never inverted. */
typedef struct
{
  gfloat x1, y1, x2, y2;
  gfloat score;                 /* 1.0 when the record has no "scores" */
  GQuark label;                 /* "object" when the record has no "labels" */
} MglDetBox;

typedef struct _MglBoxesFile MglBoxesFile;

/* Opens @path and detects its layout. LIST and VIDEO files are parsed and
 * validated here, so every malformed record is reported at open; JSONL is
 * validated line by line by mgl_boxes_file_lookup(). Problems that only cost
 * a box (negative coordinates: clipped later; inverted boxes: dropped) are
 * appended to @warnings (a GPtrArray of strings, g_free) when it is not
 * NULL. Returns NULL and sets @error on failure. */
MglBoxesFile *mgl_boxes_file_open (const gchar * path, MglBoxesMatch match,
    GPtrArray * warnings, GError ** error);
void mgl_boxes_file_free (MglBoxesFile * f);   /* NULL is a no-op */

MglBoxesFormat mgl_boxes_file_get_format (const MglBoxesFile * f);
const gchar *mgl_boxes_format_to_string (MglBoxesFormat format);

/* Appends to @out (a GArray of MglDetBox) the boxes of every record whose key
 * is in [@lo, @hi]. JSONL files are read forward only: records with keys
 * below @lo are skipped for good, and keys must increase (a record that goes
 * backwards is skipped with a warning). Returns FALSE and sets @error on a
 * malformed JSONL line; the file stays unusable until
 * mgl_boxes_file_rewind(). */
gboolean mgl_boxes_file_lookup (MglBoxesFile * f, gint64 lo, gint64 hi,
    GArray * out, GPtrArray * warnings, GError ** error);

/* Back to the first record (JSONL: the first line), e.g. after a seek. */
gboolean mgl_boxes_file_rewind (MglBoxesFile * f, GError ** error);

G_END_DECLS

#endif
