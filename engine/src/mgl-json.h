/* mgl-json.h: typed, checked lookups over json-glib for config files. */
#ifndef MGL_JSON_H
#define MGL_JSON_H

#include "mgl-internal.h"
#include <json-glib/json-glib.h>

#define MGL_JSON_MAX_DEPTH 256

/* False when brackets/braces (outside strings) nest deeper than max_depth. */
bool mgl_json_depth_ok(const char* data, size_t len, int max_depth);

/* Parse a JSON file (at most max_size bytes) whose root must be an object.
 * On success *root is owned by *parser (unref the parser when done). */
MglStatus mgl_json_load_object(const char* path, size_t max_size, JsonParser** parser,
                               JsonObject** root, MglErr* err);
MglStatus mgl_json_parse_object(const char* what, const char* data, size_t len, JsonParser** parser,
                                JsonObject** root, MglErr* err);

/* Optional lookups: return MGL_OK and leave *out unchanged when the member is
 * absent or null; MGL_E_FORMAT naming `what` and the key on a wrong type. */
MglStatus mgl_json_opt_int(JsonObject* o, const char* key, int64_t* out, const char* what, MglErr* err);
MglStatus mgl_json_opt_double(JsonObject* o, const char* key, double* out, const char* what, MglErr* err);
MglStatus mgl_json_opt_bool(JsonObject* o, const char* key, bool* out, const char* what, MglErr* err);
/* *out points into the JSON tree (valid while the parser lives). */
MglStatus mgl_json_opt_str(JsonObject* o, const char* key, const char** out, const char* what, MglErr* err);
MglStatus mgl_json_opt_object(JsonObject* o, const char* key, JsonObject** out, const char* what, MglErr* err);
/* Required versions: absent is an error. */
MglStatus mgl_json_req_int(JsonObject* o, const char* key, int64_t* out, const char* what, MglErr* err);
MglStatus mgl_json_req_str(JsonObject* o, const char* key, const char** out, const char* what, MglErr* err);

/* Append `s` as a JSON string literal (quoted, escaped) to `out`. */
void mgl_json_append_string(GString* out, const char* s);

#endif
