/* mgl-json.h: checked JSON helpers over json-glib (common/: GLib + json-glib
 * only), shared by the engine, the `mgllava` tool, the GStreamer plugins and
 * the detections reader (mgl-detections.h).
 *
 * Errors are reported GLib-style: a function returns true on success, and on
 * failure false with `error` (may be NULL) set in the MGL_JSON_ERROR domain.
 * Each message is one line naming `what` (a file path, or what the input is)
 * and the problem. */
#ifndef MGL_JSON_H
#define MGL_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* The one nesting limit for every JSON document the project parses with
 * json-glib (model configs, manifests, safetensors headers, detection files,
 * token id lists). json-glib parses recursively, so a hostile file nested a
 * hundred thousand levels deep would exhaust the stack: the depth is checked
 * before parsing. 64 is far above any real file (HF configs, OpenCLIP configs
 * and MG-LLaVA detection records nest fewer than 8 levels) and keeps the
 * parser's recursion small on any thread, GStreamer streaming threads and
 * small-stack threads included. */
#define MGL_JSON_MAX_DEPTH 64

#define MGL_JSON_ERROR (mgl_json_error_quark())
GQuark mgl_json_error_quark(void);

typedef enum {
    MGL_JSON_ERROR_IO,     /* cannot open or read the file */
    MGL_JSON_ERROR_NOMEM,  /* out of memory while reading it */
    MGL_JSON_ERROR_FORMAT, /* too large, not JSON, nested too deep, a member missing or of the wrong type */
} MglJsonError;

/* False when brackets/braces (outside strings) nest deeper than
 * MGL_JSON_MAX_DEPTH within the `len` bytes of `data`. */
bool mgl_json_depth_ok(const char* data, size_t len);

/* Opens `path` for reading only when it is a regular file (a FIFO, device
 * or folder is refused at once instead of blocking); -1 and *error on failure. */
int mgl_open_regular(const char* path, GError** error);

/* Read a whole file (at most max_size bytes) into a NUL-terminated buffer
 * (free() it); *len excludes the NUL. */
bool mgl_json_read_file(const char* path, size_t max_size, char** data, size_t* len, GError** error);

/* Parse a JSON file (at most max_size bytes) whose root must be an object.
 * On success *root is owned by *parser (unref the parser when done). */
bool mgl_json_load_object(const char* path, size_t max_size, JsonParser** parser, JsonObject** root, GError** error);
bool mgl_json_parse_object(const char* what, const char* data, size_t len, JsonParser** parser, JsonObject** root,
                           GError** error);

/* Optional lookups: return true and leave *out unchanged when the member is
 * absent or null; false naming `what` and the key on a wrong type. */
bool mgl_json_opt_int(JsonObject* o, const char* key, int64_t* out, const char* what, GError** error);
bool mgl_json_opt_double(JsonObject* o, const char* key, double* out, const char* what, GError** error);
bool mgl_json_opt_bool(JsonObject* o, const char* key, bool* out, const char* what, GError** error);
/* *out points into the JSON tree (valid while the parser lives). */
bool mgl_json_opt_str(JsonObject* o, const char* key, const char** out, const char* what, GError** error);
bool mgl_json_opt_object(JsonObject* o, const char* key, JsonObject** out, const char* what, GError** error);
/* Required versions: absent is an error. */
bool mgl_json_req_int(JsonObject* o, const char* key, int64_t* out, const char* what, GError** error);
bool mgl_json_req_str(JsonObject* o, const char* key, const char** out, const char* what, GError** error);

/* Append `s` as a JSON string literal (quoted, escaped) to `out`: the one JSON
 * string escaper of the project. '"', '\\' and the control characters
 * U+0000..U+001F are escaped (\n \r \t \b \f by name, the others as \u00XX).
 * Every other byte is copied as it is: UTF-8 text stays readable, and bytes
 * that are not valid UTF-8 are copied unchanged as well (nothing is dropped
 * or replaced; callers pass UTF-8). NULL is written as "". */
void mgl_json_append_string(GString* out, const char* s);

G_END_DECLS

#endif
