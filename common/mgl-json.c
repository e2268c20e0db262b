/* mgl-json.c: checked JSON helpers over json-glib (see mgl-json.h). */
#include "mgl-json.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

GQuark mgl_json_error_quark(void) { return g_quark_from_static_string("mgl-json-error-quark"); }

static bool fail(GError** error, MglJsonError code, const char* fmt, ...) G_GNUC_PRINTF(3, 4);
static bool fail(GError** error, MglJsonError code, const char* fmt, ...) {
    if (error) {
        va_list ap;
        va_start(ap, fmt);
        char* msg = g_strdup_vprintf(fmt, ap);
        va_end(ap);
        g_set_error_literal(error, MGL_JSON_ERROR, (gint)code, msg);
        g_free(msg);
    }
    return false;
}

bool mgl_json_depth_ok(const char* data, size_t len) {
    int depth = 0;
    bool in_str = false;
    for (size_t i = 0; i < len; i++) {
        char c = data[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
        } else if (c == '"')
            in_str = true;
        else if (c == '[' || c == '{') {
            if (++depth > MGL_JSON_MAX_DEPTH) return false;
        } else if (c == ']' || c == '}')
            depth--;
    }
    return true;
}

bool mgl_json_parse_object(const char* what, const char* data, size_t len, JsonParser** parser, JsonObject** root,
                           GError** error) {
    *parser = NULL;
    *root = NULL;
    if (len > (size_t)G_MAXSSIZE) return fail(error, MGL_JSON_ERROR_FORMAT, "%s: too large", what);
    /* json-glib parses recursively: refuse nesting a hostile file could use to exhaust the stack */
    if (!mgl_json_depth_ok(data, len))
        return fail(error, MGL_JSON_ERROR_FORMAT, "%s: JSON nested deeper than %d levels", what, MGL_JSON_MAX_DEPTH);
    if (!g_utf8_validate(data, (gssize)len, NULL))
        return fail(error, MGL_JSON_ERROR_FORMAT, "%s: not valid UTF-8 JSON", what);
    JsonParser* p = json_parser_new_immutable();
    GError* gerr = NULL;
    if (!json_parser_load_from_data(p, data, (gssize)len, &gerr)) {
        fail(error, MGL_JSON_ERROR_FORMAT, "%s: invalid JSON: %s", what, gerr ? gerr->message : "?");
        g_clear_error(&gerr);
        g_object_unref(p);
        return false;
    }
    JsonNode* n = json_parser_get_root(p);
    if (!n || !JSON_NODE_HOLDS_OBJECT(n)) {
        g_object_unref(p);
        return fail(error, MGL_JSON_ERROR_FORMAT, "%s: top-level JSON value is not an object", what);
    }
    *parser = p;
    *root = json_node_get_object(n);
    return true;
}

int mgl_open_regular(const char* path, GError** error) {
    /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        fail(error, MGL_JSON_ERROR_IO, "%s: cannot open: %s", path, g_strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        fail(error, MGL_JSON_ERROR_IO, "%s: cannot stat: %s", path, g_strerror(e));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        fail(error, MGL_JSON_ERROR_IO, "%s: not a regular file", path);
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    return fd;
}

/* max_size guards against huge or endless inputs. */
bool mgl_json_read_file(const char* path, size_t max_size, char** out, size_t* out_len, GError** error) {
    *out = NULL;
    int fd = mgl_open_regular(path, error);
    if (fd < 0) return false;
    FILE* f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return fail(error, MGL_JSON_ERROR_IO, "%s: cannot open: %s", path, g_strerror(errno));
    }
    size_t cap = 4096, len = 0;
    char* buf = malloc(cap + 1);
    if (!buf) {
        fclose(f);
        return fail(error, MGL_JSON_ERROR_NOMEM, "%s: out of memory", path);
    }
    for (;;) {
        if (len == cap) {
            if (cap >= max_size) {
                free(buf);
                fclose(f);
                return fail(error, MGL_JSON_ERROR_FORMAT, "%s: file larger than the %zu-byte limit", path, max_size);
            }
            cap = cap * 2 > max_size ? max_size : cap * 2;
            char* nb = realloc(buf, cap + 1);
            if (!nb) {
                free(buf);
                fclose(f);
                return fail(error, MGL_JSON_ERROR_NOMEM, "%s: out of memory", path);
            }
            buf = nb;
        }
        size_t r = fread(buf + len, 1, cap - len, f);
        len += r;
        if (r == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return fail(error, MGL_JSON_ERROR_IO, "%s: read error", path);
    }
    buf[len] = 0;
    *out = buf;
    if (out_len) *out_len = len;
    return true;
}

bool mgl_json_load_object(const char* path, size_t max_size, JsonParser** parser, JsonObject** root, GError** error) {
    char* data = NULL;
    size_t len = 0;
    *parser = NULL;
    *root = NULL;
    if (!mgl_json_read_file(path, max_size, &data, &len, error)) return false;
    bool ok = mgl_json_parse_object(path, data, len, parser, root, error);
    free(data);
    return ok;
}

static JsonNode* member(JsonObject* o, const char* key) {
    JsonNode* n = json_object_get_member(o, key);
    if (!n || JSON_NODE_HOLDS_NULL(n)) return NULL;
    return n;
}

static bool node_is_number(JsonNode* n) {
    if (!JSON_NODE_HOLDS_VALUE(n)) return false;
    GType t = json_node_get_value_type(n);
    return t == G_TYPE_INT64 || t == G_TYPE_DOUBLE;
}

bool mgl_json_opt_int(JsonObject* o, const char* key, int64_t* out, const char* what, GError** error) {
    JsonNode* n = member(o, key);
    if (!n) return true;
    if (!node_is_number(n)) return fail(error, MGL_JSON_ERROR_FORMAT, "%s: \"%s\" must be an integer", what, key);
    if (json_node_get_value_type(n) == G_TYPE_DOUBLE) {
        double d = json_node_get_double(n);
        if (!(d == floor(d)) || fabs(d) > 9.0e15)
            return fail(error, MGL_JSON_ERROR_FORMAT, "%s: \"%s\" must be an integer, got %g", what, key, d);
        *out = (int64_t)d;
    } else
        *out = json_node_get_int(n);
    return true;
}

bool mgl_json_opt_double(JsonObject* o, const char* key, double* out, const char* what, GError** error) {
    JsonNode* n = member(o, key);
    if (!n) return true;
    if (!node_is_number(n)) return fail(error, MGL_JSON_ERROR_FORMAT, "%s: \"%s\" must be a number", what, key);
    *out = json_node_get_value_type(n) == G_TYPE_DOUBLE ? json_node_get_double(n) : (double)json_node_get_int(n);
    return true;
}

bool mgl_json_opt_bool(JsonObject* o, const char* key, bool* out, const char* what, GError** error) {
    JsonNode* n = member(o, key);
    if (!n) return true;
    if (!JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_BOOLEAN)
        return fail(error, MGL_JSON_ERROR_FORMAT, "%s: \"%s\" must be true or false", what, key);
    *out = json_node_get_boolean(n);
    return true;
}

bool mgl_json_opt_str(JsonObject* o, const char* key, const char** out, const char* what, GError** error) {
    JsonNode* n = member(o, key);
    if (!n) return true;
    if (!JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_STRING)
        return fail(error, MGL_JSON_ERROR_FORMAT, "%s: \"%s\" must be a string", what, key);
    *out = json_node_get_string(n);
    return true;
}

bool mgl_json_opt_object(JsonObject* o, const char* key, JsonObject** out, const char* what, GError** error) {
    JsonNode* n = member(o, key);
    if (!n) return true;
    if (!JSON_NODE_HOLDS_OBJECT(n))
        return fail(error, MGL_JSON_ERROR_FORMAT, "%s: \"%s\" must be an object", what, key);
    *out = json_node_get_object(n);
    return true;
}

bool mgl_json_req_int(JsonObject* o, const char* key, int64_t* out, const char* what, GError** error) {
    if (!member(o, key)) return fail(error, MGL_JSON_ERROR_FORMAT, "%s: missing required \"%s\"", what, key);
    return mgl_json_opt_int(o, key, out, what, error);
}

bool mgl_json_req_str(JsonObject* o, const char* key, const char** out, const char* what, GError** error) {
    if (!member(o, key)) return fail(error, MGL_JSON_ERROR_FORMAT, "%s: missing required \"%s\"", what, key);
    return mgl_json_opt_str(o, key, out, what, error);
}

void mgl_json_append_string(GString* out, const char* s) {
    g_string_append_c(out, '"');
    for (const unsigned char* p = (const unsigned char*)(s ? s : ""); *p; p++) {
        switch (*p) {
        case '"': g_string_append(out, "\\\""); break;
        case '\\': g_string_append(out, "\\\\"); break;
        case '\n': g_string_append(out, "\\n"); break;
        case '\r': g_string_append(out, "\\r"); break;
        case '\t': g_string_append(out, "\\t"); break;
        case '\b': g_string_append(out, "\\b"); break;
        case '\f': g_string_append(out, "\\f"); break;
        default:
            if (*p < 0x20)
                g_string_append_printf(out, "\\u%04x", *p);
            else
                g_string_append_c(out, (char)*p);
        }
    }
    g_string_append_c(out, '"');
}
