/* mgl-detections-private.h: what mgl-detections.c shares with the file
 * layouts of mgl-detections-file.c. */
#ifndef MGL_DETECTIONS_PRIVATE_H
#define MGL_DETECTIONS_PRIVATE_H

#include <json-glib/json-glib.h>

#include "mgl-detections.h"

G_BEGIN_DECLS

typedef struct {
    gint64 key;
    guint first; /* of its first box in MglDetectionsFile.all */
    guint n;
} MglRecord;

struct _MglDetectionsFile {
    gchar* path;
    MglDetectionsFormat format;
    MglDetectionsMatch match;

    /* LIST and VIDEO: every record, sorted by key */
    GArray* records;    /* MglRecord */
    MglDetections* all; /* their boxes and labels */

    /* JSONL */
    FILE* fp;
    gchar* line;    /* the current line, NUL-terminated */
    gsize line_len; /* its length (it may hold NUL bytes) */
    gsize line_cap;
    guint64 lineno; /* of the last line read, 1-based */
    gboolean have_pending;
    MglRecord pending; /* boxes in pending_boxes */
    MglDetections* pending_boxes;
    GStringChunk* lookup_labels; /* labels of the last lookup's boxes */
    gboolean have_last;
    gint64 last_key;
    gboolean broken; /* a malformed line was met */
};

void mgl_detections_warn(GPtrArray* warnings, const gchar* format, ...) G_GNUC_PRINTF(2, 3);
/* A record key: a non-negative integer (frame number or PTS in ns). */
gboolean mgl_detections_node_get_key(JsonNode* node, gint64* out);
gint mgl_detections_record_compare(gconstpointer a, gconstpointer b);
#define MGL_UTF8_BOM "\xef\xbb\xbf"

/* Parses @len bytes of @text (-1: up to the NUL) into @parser: UTF-8 JSON
 * nested at most MGL_JSON_MAX_DEPTH deep, each lone UTF-16 surrogate escape
 * read as U+FFFD (one warning for the text), each integer literal beyond
 * gint64 read as a string of its exact decimal text. Messages start with
 * "@prefix: ". */
gboolean mgl_detections_parse_json(JsonParser* parser, const gchar* text, gssize len, const gchar* prefix,
                                   GPtrArray* warnings, GError** error);
/* Opens @path when it is a regular file, without blocking; *@size is its
 * size. -1 and @error (MGL_DETECTIONS_ERROR_IO) on failure. */
int mgl_detections_open(const gchar* path, guint64* size, GError** error);
/* "@path: file of @size bytes is larger than the @max_size-byte limit@hint" */
void mgl_detections_set_too_large(GError** error, const gchar* path, guint64 size, gsize max_size, const gchar* hint);
/* Reads a whole file and parses it: refused before anything is read when it
 * is larger than @max_size (the message names the limit, then @hint); a
 * UTF-8 byte order mark at its start is skipped. */
gboolean mgl_detections_load_json_file(JsonParser* parser, const gchar* path, gsize max_size, const gchar* hint,
                                       const gchar* prefix, GPtrArray* warnings, GError** error);

G_END_DECLS

#endif
