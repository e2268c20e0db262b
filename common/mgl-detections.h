/* mgl-detections.h: the one reader of offline detection files (common/:
 * GLib + json-glib, no GStreamer), used by `mgllava run --boxes` and by the
 * mgllavaboxes element.
 *
 * A record is the MG-LLaVA offline-detector record
 *   {"boxes": [[x1,y1,x2,y2],...], "scores": [...], "labels": [...]}
 * with boxes in image/frame pixels, x2/y2 exclusive. Every record, in every
 * layout, is validated by the same rules and gets the same defaults:
 *   - "boxes" is required: an array of 4-number arrays, each |value| <= 1e6
 *     (MGL_DETECTIONS_MAX_COORD, the engine's own bound);
 *   - "scores" is optional (absent or null): every box gets 1.0
 *     (MGL_DETECTIONS_DEFAULT_SCORE); when present, one finite number per
 *     box, |score| <= 1e6;
 *   - "labels" is optional (absent or null): every box gets "object"
 *     (MGL_DETECTIONS_DEFAULT_LABEL); when present, one string per box (an
 *     integer class id becomes its decimal string, exactly, also beyond
 *     64 bits: 12345678901234567890 is "12345678901234567890").
 *   MG-LLaVA's own detector (OWLv2 queried with RAM++ tags) always writes a
 *   score and a tag per box, and the model uses them only for class-aware NMS
 *   and the per-category cap: labels and scores never reach the LLM. A record
 *   without labels therefore puts all its boxes in one class (any one string
 *   gives the official result; "object" is also what the box shows as in ROI
 *   metas), and one without scores ranks them all equal (1.0, the confidence
 *   the ROI adapter gives a box that has none).
 *   - A box with x2 < x1 or y2 < y1 is dropped with a warning; a negative
 *     coordinate is kept (clipped later) with a warning.
 *
 * File layouts (docs/detectors.md):
 *   LIST  [{"id": frame, "boxes", "scores", "labels"}, ...]
 *         (the MG-LLaVA offline detector output), loaded whole;
 *   VIDEO {"video": ..., "frames": [{"boxes", "scores", "labels"}, ...]}
 *         (the MG-LLaVA video record; frame i = frames[i]), loaded whole;
 *   JSONL one {"frame" | "pts", "boxes", "scores", "labels"} object per
 *         line, streamed: only the current line is in memory.
 * mgl_detections_load_record() reads a file holding one record (or a list of
 * exactly one record), the form `mgllava run --boxes` takes.
 *
 * Reading (every layout):
 *   - only regular files are read (a FIFO or folder is refused at once);
 *   - a UTF-8 byte order mark at the start of the file is skipped;
 *   - text must be UTF-8; a lone UTF-16 surrogate escape ("\ud800x": a high
 *     surrogate not followed by a low one, or a low one alone) is read as
 *     U+FFFD, with one warning per record text (line, or whole file), so
 *     a label never holds invalid UTF-8; a pair is one character as usual;
 *   - an integer literal beyond 64 bits is kept as its exact decimal text:
 *     a label gets that text, a coordinate or score is refused as out of
 *     range (json-glib alone would wrap it to a wrong number);
 *   - sizes are bounded before memory is spent: LIST and VIDEO files (and
 *     the single-record file) are refused from their size, before anything
 *     is read, above MGL_DETECTIONS_MAX_FILE_SIZE (the load_record caller's
 *     @max_size), and a JSONL line longer than MGL_DETECTIONS_MAX_LINE_SIZE
 *     is an error after reading at most that much; each message names the
 *     limit.
 *
 * Labels are data, not interned: they are owned strings (a GStringChunk) of
 * the MglDetections or MglDetectionsFile that returned them, so a file with
 * many distinct labels grows no process-wide table.
 *
 * Copyright (C) 2026 mgllava authors
 * SPDX-License-Identifier: MIT
 */
#ifndef MGL_DETECTIONS_H
#define MGL_DETECTIONS_H

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

#define MGL_DETECTIONS_DEFAULT_SCORE 1.0
#define MGL_DETECTIONS_DEFAULT_LABEL "object"
#define MGL_DETECTIONS_MAX_COORD 1e6
#define MGL_DETECTIONS_MAX_SCORE 1e6
/* LIST and VIDEO files are parsed whole (a DOM about 10-20 times the text):
 * above 256 MiB use JSON Lines, which is streamed a line at a time. */
#define MGL_DETECTIONS_MAX_FILE_SIZE ((gsize)256 << 20)
/* One JSON Lines record: 64 MiB holds a million boxes with scores and
 * labels, the most the engine takes for one frame. */
#define MGL_DETECTIONS_MAX_LINE_SIZE ((gsize)64 << 20)

#define MGL_DETECTIONS_ERROR (mgl_detections_error_quark())
GQuark mgl_detections_error_quark(void);

typedef enum {
    MGL_DETECTIONS_ERROR_IO,     /* cannot open or read the file */
    MGL_DETECTIONS_ERROR_PARSE,  /* not JSON */
    MGL_DETECTIONS_ERROR_FORMAT, /* JSON, but a field missing or mistyped */
} MglDetectionsError;

typedef enum {
    MGL_DETECTIONS_FORMAT_LIST,
    MGL_DETECTIONS_FORMAT_VIDEO,
    MGL_DETECTIONS_FORMAT_JSONL,
} MglDetectionsFormat;

typedef enum {
    MGL_DETECTIONS_MATCH_FRAME, /* key = frame number */
    MGL_DETECTIONS_MATCH_PTS,   /* key = presentation time in ns (JSONL only) */
} MglDetectionsMatch;

/* One box in image/frame pixels, x2/y2 exclusive. Not yet clipped to the
 * frame (the file does not know the frame size); never inverted. */
typedef struct {
    gfloat x1, y1, x2, y2;
    gfloat score;
    const gchar* label; /* never NULL; owned by what returned the box */
} MglDetectionsBox;

/* Boxes together with the labels they point to. */
typedef struct {
    GArray* boxes;        /* MglDetectionsBox */
    GStringChunk* labels; /* owns every box's label */
} MglDetections;

MglDetections* mgl_detections_new(void);
void mgl_detections_clear(MglDetections* d); /* no boxes, no labels */
void mgl_detections_free(MglDetections* d);  /* NULL is a no-op */

/* Validates one record object and appends its boxes to @out (labels copied
 * into @out->labels). @where names the record in messages ("record 3",
 * "frames[3]", "line 7", a path). Problems that only cost a box are appended
 * to @warnings (a GPtrArray of strings, g_free) when it is not NULL. On
 * failure returns FALSE, sets @error (MGL_DETECTIONS_ERROR_FORMAT) naming
 * @where and the field, and @out may hold some of the record's boxes. */
gboolean mgl_detections_parse_record(JsonObject* record, const gchar* where, MglDetections* out, GPtrArray* warnings,
                                     GError** error);

/* Reads a file holding one record, or a JSON list of exactly one record. A
 * file larger than @max_size bytes is refused from its size, before it is
 * read (`mgllava run --boxes` passes 256 MiB). Every message starts with
 * @path. Returns NULL and sets @error on failure. */
MglDetections* mgl_detections_load_record(const gchar* path, gsize max_size, GPtrArray* warnings, GError** error);

typedef struct _MglDetectionsFile MglDetectionsFile;

/* Opens @path and detects its layout. LIST and VIDEO files are parsed and
 * validated here, so every malformed record is reported at open; JSONL is
 * validated line by line by mgl_detections_file_lookup(). Warnings as for
 * mgl_detections_parse_record(). Returns NULL and sets @error on failure. */
MglDetectionsFile* mgl_detections_file_open(const gchar* path, MglDetectionsMatch match, GPtrArray* warnings,
                                            GError** error);
void mgl_detections_file_free(MglDetectionsFile* f); /* NULL is a no-op */

MglDetectionsFormat mgl_detections_file_get_format(const MglDetectionsFile* f);
const gchar* mgl_detections_format_to_string(MglDetectionsFormat format);

/* Appends to @out (a GArray of MglDetectionsBox) the boxes of every record
 * whose key is in [@lo, @hi]. Their labels belong to @f and stay valid until
 * the next lookup, rewind or free of @f. JSONL files are read forward only:
 * records with keys below @lo are skipped for good, and keys must increase (a
 * record that goes backwards is skipped with a warning). Returns FALSE and
 * sets @error on a malformed JSONL line; the file stays unusable until
 * mgl_detections_file_rewind(). */
gboolean mgl_detections_file_lookup(MglDetectionsFile* f, gint64 lo, gint64 hi, GArray* out, GPtrArray* warnings,
                                    GError** error);

/* Back to the first record (JSONL: the first line), e.g. after a seek. */
gboolean mgl_detections_file_rewind(MglDetectionsFile* f, GError** error);

G_END_DECLS

#endif
