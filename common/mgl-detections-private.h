/* mgl-detections-private.h: what mgl-detections.c shares with the file
 * layouts of mgl-detections-file.c. */
#ifndef MGL_DETECTIONS_PRIVATE_H
#define MGL_DETECTIONS_PRIVATE_H

#include <json-glib/json-glib.h>

#include "mgl-detections.h"

G_BEGIN_DECLS

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

void mgl_detections_warn (GPtrArray * warnings, const gchar * format, ...)
    G_GNUC_PRINTF (2, 3);
/* A record key: a non-negative integer (frame number or PTS in ns). */
gboolean mgl_detections_node_get_key (JsonNode * node, gint64 * out);
gint mgl_detections_record_compare (gconstpointer a, gconstpointer b);
/* Parses @len bytes of @text (-1: up to the NUL) into @parser: UTF-8 JSON
 * nested at most MGL_JSON_MAX_DEPTH deep. Messages start with "@prefix: ". */
gboolean mgl_detections_parse_json (JsonParser * parser, const gchar * text,
    gssize len, const gchar * prefix, GError ** error);
/* Reads a whole file (at most @max_size bytes) and parses it. */
gboolean mgl_detections_load_json_file (JsonParser * parser,
    const gchar * path, gsize max_size, const gchar * prefix, GError ** error);

G_END_DECLS

#endif
