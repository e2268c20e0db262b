/* gram-schema.c: a JSON Schema subset -> grammar text (docs/structured-output.md).
 *
 * Supported: "type" (object, array, string, integer, number, boolean, null,
 * or a list of them), "properties", "required", "additionalProperties"
 * (accepted; only the listed properties are ever written), "items",
 * "minItems", "maxItems", "minLength", "maxLength", "enum", "const",
 * "anyOf", and the annotations (title, description, $schema, $id,
 * $comment, default, examples, deprecated, readOnly, writeOnly). Any other
 * keyword is an error naming it and where it is.
 *
 * The output is compact JSON with at most one space between two tokens
 * (ws ::= " "?), properties in the order the schema lists them, the
 * optional ones skippable. Numbers are bounded (16 integer digits, 16
 * fraction digits, 3 exponent digits) so that no rule repeats for ever
 * except unbounded strings and arrays, which the token budget ends. */
#include "grammar/mgl-grammar-internal.h"
#include "mgl-json.h"

#include <glib.h>
#include <json-glib/json-glib.h>
#include <string.h>

typedef struct {
    GString* rules;    /* the rules made so far */
    GHashTable* names; /* rule names in use */
    MglErr* err;
    bool failed;
    bool need[9]; /* shared rules used */
    int depth;
} S;

enum { N_WS, N_CHAR, N_STRING, N_INTEGER, N_NUMBER, N_BOOLEAN, N_NULL, N_VALUE, N_COUNT };
static const char* const k_shared[N_COUNT] = {"ws", "char", "string", "integer", "number", "boolean", "null", "value"};

static const char* const k_shared_text =
    "ws ::= \" \"?\n"
    "char ::= [^\"\\\\\\x00-\\x1F] | \"\\\\\" ([\"\\\\/bfnrt] | \"u\" ([0-9a-cA-Ce-fE-F] [0-9a-fA-F]{3} | [dD] [0-7] "
    "[0-9a-fA-F]{2}))\n"
    "string ::= \"\\\"\" char* \"\\\"\"\n"
    "integer ::= \"-\"? (\"0\" | [1-9] [0-9]{0,15})\n"
    "number ::= integer (\".\" [0-9]{1,16})? ([eE] [-+]? [0-9]{1,3})?\n"
    "boolean ::= \"true\" | \"false\"\n"
    "null ::= \"null\"\n"
    "value ::= object | array | string | number | boolean | null\n"
    "object ::= \"{\" ws (string ws \":\" ws value (ws \",\" ws string ws \":\" ws value)* ws)? \"}\"\n"
    "array ::= \"[\" ws (value (ws \",\" ws value)* ws)? \"]\"\n";

static bool sfail(S* s, const char* path, const char* fmt, ...) G_GNUC_PRINTF(3, 4);
static bool sfail(S* s, const char* path, const char* fmt, ...) {
    if (s->failed) return false;
    s->failed = true;
    char buf[400];
    va_list ap;
    va_start(ap, fmt);
    g_vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    mgl_err(s->err, MGL_E_INVALID, "schema: %s (at %s)", buf, *path ? path : "the root");
    return false;
}

static char* use_shared(S* s, int which) {
    s->need[which] = true;
    if (which == N_STRING) s->need[N_CHAR] = true;
    if (which == N_NUMBER) s->need[N_INTEGER] = true;
    if (which == N_VALUE) {
        for (int k = 0; k < N_COUNT; k++) s->need[k] = true;
    }
    return g_strdup(k_shared[which]);
}

/* A new rule name below `base` (letters, digits and '-' only, unique). */
static char* rule_name(S* s, const char* base, const char* part) {
    GString* n = g_string_new(base);
    if (part) {
        g_string_append_c(n, '-');
        for (const char* c = part; *c && n->len < 48; c++) g_string_append_c(n, g_ascii_isalnum(*c) ? *c : '-');
    }
    if (n->len > 48) g_string_truncate(n, 48);
    char* name = g_strdup(n->str);
    for (int k = 2; g_hash_table_contains(s->names, name) || strcmp(name, "object") == 0 || strcmp(name, "array") == 0;
         k++) {
        g_free(name);
        name = g_strdup_printf("%s-%d", n->str, k);
    }
    g_string_free(n, TRUE);
    g_hash_table_add(s->names, g_strdup(name));
    return name;
}

/* `text` (UTF-8) as a grammar literal. */
static void append_literal(GString* o, const char* text, size_t len) {
    g_string_append_c(o, '"');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '"' || c == '\\') {
            g_string_append_c(o, '\\');
            g_string_append_c(o, (char)c);
        } else if (c < 0x20 || c == 0x7f) {
            g_string_append_printf(o, "\\x%02X", c);
        } else {
            g_string_append_c(o, (char)c);
        }
    }
    g_string_append_c(o, '"');
}

static char* json_compact(JsonNode* n) {
    JsonGenerator* g = json_generator_new();
    json_generator_set_root(g, n);
    json_generator_set_pretty(g, FALSE);
    char* t = json_generator_to_data(g, NULL);
    g_object_unref(g);
    return t;
}

static bool is_annotation(const char* k) {
    static const char* const a[] = {"title",    "description", "$schema",  "$id",       "$comment", "default",
                                    "examples", "deprecated",  "readOnly", "writeOnly", NULL};
    for (int i = 0; a[i]; i++)
        if (!strcmp(k, a[i])) return true;
    return false;
}

static bool is_supported(const char* k) {
    static const char* const a[] = {"type",  "enum",     "const",    "properties", "required",  "additionalProperties",
                                    "items", "minItems", "maxItems", "minLength",  "maxLength", "anyOf",
                                    NULL};
    for (int i = 0; a[i]; i++)
        if (!strcmp(k, a[i])) return true;
    return false;
}

enum { T_OBJECT = 1, T_ARRAY = 2, T_STRING = 4, T_INTEGER = 8, T_NUMBER = 16, T_BOOLEAN = 32, T_NULL = 64 };

static int type_bit(const char* t) {
    static const char* const names[] = {"object", "array", "string", "integer", "number", "boolean", "null"};
    for (int i = 0; i < 7; i++)
        if (!strcmp(t, names[i])) return 1 << i;
    return 0;
}

/* Does a JSON value have one of the types in `mask`? */
static bool value_has_type(JsonNode* v, int mask) {
    switch (json_node_get_node_type(v)) {
    case JSON_NODE_OBJECT: return mask & T_OBJECT;
    case JSON_NODE_ARRAY: return mask & T_ARRAY;
    case JSON_NODE_NULL: return mask & T_NULL;
    case JSON_NODE_VALUE: {
        GType t = json_node_get_value_type(v);
        if (t == G_TYPE_STRING) return mask & T_STRING;
        if (t == G_TYPE_BOOLEAN) return mask & T_BOOLEAN;
        if (t == G_TYPE_INT64) return mask & (T_INTEGER | T_NUMBER);
        if (t == G_TYPE_DOUBLE) {
            double d = json_node_get_double(v);
            return (mask & T_NUMBER) || ((mask & T_INTEGER) && d == (double)(int64_t)d);
        }
        return false;
    }
    }
    return false;
}

static bool get_count(S* s, JsonObject* o, const char* key, const char* path, int64_t* out) {
    JsonNode* n = json_object_get_member(o, key);
    if (!n) return true;
    if (JSON_NODE_HOLDS_VALUE(n)) {
        GType t = json_node_get_value_type(n);
        if (t == G_TYPE_INT64 && json_node_get_int(n) >= 0) {
            *out = json_node_get_int(n);
            return true;
        }
        if (t == G_TYPE_DOUBLE) {
            double d = json_node_get_double(n);
            if (d >= 0 && d <= 1e15 && d == (double)(int64_t)d) {
                *out = (int64_t)d;
                return true;
            }
        }
    }
    return sfail(s, path, "\"%s\" must be a non-negative integer", key);
}

static char* compile(S* s, JsonNode* node, const char* name, const char* path);

/* The rule `name` exists when this returns it. */
static char* emit_rule(S* s, char* name, const char* body) {
    g_string_append_printf(s->rules, "%s ::= %s\n", name, body);
    return name;
}

static char* compile_enum(S* s, JsonArray* vals, int mask, const char* kw, const char* name, const char* path) {
    GString* body = g_string_new(NULL);
    guint n = json_array_get_length(vals);
    int used = 0;
    for (guint i = 0; i < n; i++) {
        JsonNode* v = json_array_get_element(vals, i);
        if (mask && !value_has_type(v, mask)) continue;
        char* t = json_compact(v);
        if (used++) g_string_append(body, " | ");
        append_literal(body, t, strlen(t));
        g_free(t);
    }
    if (!used) {
        g_string_free(body, TRUE);
        sfail(s, path, "\"%s\" has no value of the schema's \"type\"", kw);
        return NULL;
    }
    char* r = emit_rule(s, rule_name(s, name, NULL), body->str);
    g_string_free(body, TRUE);
    return r;
}

static char* compile_string(S* s, JsonObject* o, const char* name, const char* path) {
    int64_t mn = 0, mx = -1;
    if (!get_count(s, o, "minLength", path, &mn) || !get_count(s, o, "maxLength", path, &mx)) return NULL;
    if (mn == 0 && mx < 0) return use_shared(s, N_STRING);
    if (mx >= 0 && mx < mn)
        return sfail(s, path, "\"maxLength\" %lld is below \"minLength\" %lld", (long long)mx, (long long)mn), NULL;
    if (mn > GRAM_MAX_REPEAT || mx > GRAM_MAX_REPEAT)
        return sfail(s, path, "string lengths above %d are not supported", GRAM_MAX_REPEAT), NULL;
    s->need[N_CHAR] = true;
    char* body = mx < 0 ? g_strdup_printf("\"\\\"\" char{%lld,} \"\\\"\"", (long long)mn)
                        : g_strdup_printf("\"\\\"\" char{%lld,%lld} \"\\\"\"", (long long)mn, (long long)mx);
    char* r = emit_rule(s, rule_name(s, name, NULL), body);
    g_free(body);
    return r;
}

static char* compile_array(S* s, JsonObject* o, const char* name, const char* path) {
    int64_t mn = 0, mx = -1;
    if (!get_count(s, o, "minItems", path, &mn) || !get_count(s, o, "maxItems", path, &mx)) return NULL;
    if (mx >= 0 && mx < mn)
        return sfail(s, path, "\"maxItems\" %lld is below \"minItems\" %lld", (long long)mx, (long long)mn), NULL;
    if (mn > GRAM_MAX_REPEAT || mx > GRAM_MAX_REPEAT)
        return sfail(s, path, "array lengths above %d are not supported", GRAM_MAX_REPEAT), NULL;
    s->need[N_WS] = true;
    if (mx == 0) return emit_rule(s, rule_name(s, name, NULL), "\"[\" ws \"]\"");
    char* item;
    JsonNode* items = json_object_get_member(o, "items");
    char* ipath = g_strdup_printf("%s/items", path);
    char* iname = g_strdup_printf("%s-item", name);
    if (items)
        item = compile(s, items, iname, ipath);
    else
        item = use_shared(s, N_VALUE);
    g_free(iname);
    g_free(ipath);
    if (!item) return NULL;
    int64_t rmin = mn > 0 ? mn - 1 : 0;
    char* rep = mx < 0 ? g_strdup_printf("{%lld,}", (long long)rmin)
                       : g_strdup_printf("{%lld,%lld}", (long long)rmin, (long long)(mx - 1));
    char* body = g_strdup_printf("\"[\" ws %s (ws \",\" ws %s)%s ws \"]\"%s", item, item, rep,
                                 mn == 0 ? " | \"[\" ws \"]\"" : "");
    char* r = emit_rule(s, rule_name(s, name, NULL), body);
    g_free(body);
    g_free(rep);
    g_free(item);
    return r;
}

static char* compile_object(S* s, JsonObject* o, const char* name, const char* path) {
    JsonNode* pn = json_object_get_member(o, "properties");
    JsonNode* rn = json_object_get_member(o, "required");
    JsonNode* an = json_object_get_member(o, "additionalProperties");
    if (pn && !JSON_NODE_HOLDS_OBJECT(pn)) return sfail(s, path, "\"properties\" must be an object"), NULL;
    if (rn && !JSON_NODE_HOLDS_ARRAY(rn)) return sfail(s, path, "\"required\" must be an array of names"), NULL;
    if (an && !JSON_NODE_HOLDS_OBJECT(an) &&
        !(JSON_NODE_HOLDS_VALUE(an) && json_node_get_value_type(an) == G_TYPE_BOOLEAN))
        return sfail(s, path, "\"additionalProperties\" must be a boolean or a schema"), NULL;
    JsonObject* props = pn ? json_node_get_object(pn) : NULL;
    JsonArray* req = rn ? json_node_get_array(rn) : NULL;
    GHashTable* required = g_hash_table_new(g_str_hash, g_str_equal);
    GPtrArray* keys = g_ptr_array_new(); /* property names, listed order, then required ones not listed */
    for (guint i = 0; req && i < json_array_get_length(req); i++) {
        JsonNode* e = json_array_get_element(req, i);
        if (!JSON_NODE_HOLDS_VALUE(e) || json_node_get_value_type(e) != G_TYPE_STRING) {
            g_ptr_array_unref(keys);
            g_hash_table_unref(required);
            return sfail(s, path, "\"required\" must be an array of names"), NULL;
        }
        g_hash_table_add(required, (gpointer)json_node_get_string(e));
    }
    GList* members = props ? json_object_get_members(props) : NULL;
    for (GList* l = members; l; l = l->next) g_ptr_array_add(keys, l->data);
    g_list_free(members);
    for (guint i = 0; req && i < json_array_get_length(req); i++) {
        const char* k = json_node_get_string(json_array_get_element(req, i));
        bool listed = false;
        for (guint j = 0; j < keys->len && !listed; j++) listed = !strcmp(k, g_ptr_array_index(keys, j));
        if (!listed) g_ptr_array_add(keys, (gpointer)k);
    }
    s->need[N_WS] = true;
    char* result = NULL;
    if (!keys->len) {
        /* no properties named: any object */
        use_shared(s, N_VALUE);
        result = g_strdup("object");
        goto done;
    }
    guint n = keys->len;
    char** kv = g_new0(char*, n);
    bool* opt = g_new0(bool, n);
    bool ok = true;
    for (guint i = 0; i < n && ok; i++) {
        const char* k = g_ptr_array_index(keys, i);
        opt[i] = !g_hash_table_contains(required, k);
        JsonNode* ps = props ? json_object_get_member(props, k) : NULL;
        char* ppath = g_strdup_printf("%s/properties/%s", path, k);
        char* pname = rule_name(s, name, k);
        g_hash_table_remove(s->names, pname); /* a hint: compile() picks the final name */
        char* v = ps ? compile(s, ps, pname, ppath) : use_shared(s, N_VALUE);
        g_free(pname);
        g_free(ppath);
        if (!v) {
            ok = false;
            break;
        }
        JsonNode* kn = json_node_new(JSON_NODE_VALUE);
        json_node_set_string(kn, k);
        char* kj = json_compact(kn);
        json_node_unref(kn);
        GString* t = g_string_new(NULL);
        append_literal(t, kj, strlen(kj));
        g_string_append_printf(t, " ws \":\" ws %s", v);
        g_free(kj);
        g_free(v);
        kv[i] = g_string_free(t, FALSE);
    }
    if (ok) {
        bool all_required = true;
        for (guint i = 0; i < n; i++) all_required &= !opt[i];
        GString* body = g_string_new("\"{\" ws ");
        if (all_required) {
            for (guint i = 0; i < n; i++) g_string_append_printf(body, i ? " ws \",\" ws %s" : "%s", kv[i]);
            g_string_append(body, " ws \"}\"");
        } else {
            /* F_i: nothing written yet, from property i on; A_i: something written */
            char** fa = g_new0(char*, n + 1);
            char** aa = g_new0(char*, n + 1);
            for (guint i = 0; i <= n; i++) {
                char part[24];
                g_snprintf(part, sizeof part, "f%u", i);
                fa[i] = rule_name(s, name, part);
                g_snprintf(part, sizeof part, "a%u", i);
                aa[i] = rule_name(s, name, part);
            }
            emit_rule(s, aa[n], "ws");
            emit_rule(s, fa[n], "\"\"");
            for (guint i = n; i-- > 0;) {
                char* a = g_strdup_printf("ws \",\" ws %s %s%s%s", kv[i], aa[i + 1], opt[i] ? " | " : "",
                                          opt[i] ? aa[i + 1] : "");
                emit_rule(s, aa[i], a);
                g_free(a);
                char* f = g_strdup_printf("%s %s%s%s", kv[i], aa[i + 1], opt[i] ? " | " : "", opt[i] ? fa[i + 1] : "");
                emit_rule(s, fa[i], f);
                g_free(f);
            }
            g_string_append_printf(body, "%s \"}\"", fa[0]);
            for (guint i = 0; i <= n; i++) {
                g_free(fa[i]);
                g_free(aa[i]);
            }
            g_free(fa);
            g_free(aa);
        }
        result = emit_rule(s, rule_name(s, name, NULL), body->str);
        g_string_free(body, TRUE);
    }
    for (guint i = 0; i < n; i++) g_free(kv[i]);
    g_free(kv);
    g_free(opt);
done:
    g_ptr_array_unref(keys);
    g_hash_table_unref(required);
    return result;
}

/* One type of a schema object (its other keywords apply). */
static char* compile_typed(S* s, JsonObject* o, int type, const char* name, const char* path) {
    switch (type) {
    case T_OBJECT: return compile_object(s, o, name, path);
    case T_ARRAY: return compile_array(s, o, name, path);
    case T_STRING: return compile_string(s, o, name, path);
    case T_INTEGER: return use_shared(s, N_INTEGER);
    case T_NUMBER: return use_shared(s, N_NUMBER);
    case T_BOOLEAN: return use_shared(s, N_BOOLEAN);
    case T_NULL: return use_shared(s, N_NULL);
    }
    return NULL;
}

/* The grammar expression (a rule name) for one schema. */
static char* compile(S* s, JsonNode* node, const char* name, const char* path) {
    if (s->failed) return NULL;
    if (++s->depth > GRAM_MAX_NEST) return sfail(s, path, "nested deeper than %d", GRAM_MAX_NEST), NULL;
    char* r = NULL;
    if (JSON_NODE_HOLDS_VALUE(node) && json_node_get_value_type(node) == G_TYPE_BOOLEAN) {
        if (json_node_get_boolean(node))
            r = use_shared(s, N_VALUE);
        else
            sfail(s, path, "the schema false allows no value");
        goto out;
    }
    if (!JSON_NODE_HOLDS_OBJECT(node)) {
        sfail(s, path, "a schema must be an object or a boolean");
        goto out;
    }
    JsonObject* o = json_node_get_object(node);
    GList* members = json_object_get_members(o);
    for (GList* l = members; l; l = l->next) {
        const char* k = l->data;
        if (!is_supported(k) && !is_annotation(k)) {
            sfail(s, path, "unsupported keyword \"%s\"", k);
            break;
        }
    }
    g_list_free(members);
    if (s->failed) goto out;

    int mask = 0;
    JsonNode* tn = json_object_get_member(o, "type");
    if (tn) {
        if (JSON_NODE_HOLDS_VALUE(tn) && json_node_get_value_type(tn) == G_TYPE_STRING) {
            if (!(mask = type_bit(json_node_get_string(tn)))) {
                sfail(s, path, "unknown \"type\" \"%s\"", json_node_get_string(tn));
                goto out;
            }
        } else if (JSON_NODE_HOLDS_ARRAY(tn) && json_array_get_length(json_node_get_array(tn)) > 0) {
            JsonArray* ta = json_node_get_array(tn);
            for (guint i = 0; i < json_array_get_length(ta); i++) {
                JsonNode* e = json_array_get_element(ta, i);
                int b = JSON_NODE_HOLDS_VALUE(e) && json_node_get_value_type(e) == G_TYPE_STRING
                            ? type_bit(json_node_get_string(e))
                            : 0;
                if (!b) {
                    sfail(s, path, "\"type\" must name object, array, string, integer, number, boolean or null");
                    goto out;
                }
                mask |= b;
            }
        } else {
            sfail(s, path, "\"type\" must be a type name or a non-empty list of them");
            goto out;
        }
    }
    JsonNode* en = json_object_get_member(o, "enum");
    JsonNode* cn = json_object_get_member(o, "const");
    JsonNode* any = json_object_get_member(o, "anyOf");
    if ((en != NULL) + (cn != NULL) + (any != NULL) > 1) {
        sfail(s, path, "use one of \"enum\", \"const\" and \"anyOf\", not several");
        goto out;
    }
    if (en) {
        if (!JSON_NODE_HOLDS_ARRAY(en) || !json_array_get_length(json_node_get_array(en))) {
            sfail(s, path, "\"enum\" must be a non-empty array");
            goto out;
        }
        r = compile_enum(s, json_node_get_array(en), mask, "enum", name, path);
        goto out;
    }
    if (cn) {
        JsonArray* one = json_array_new();
        json_array_add_element(one, json_node_copy(cn));
        r = compile_enum(s, one, mask, "const", name, path);
        json_array_unref(one);
        goto out;
    }
    if (any) {
        static const char* const other[] = {"type",      "properties", "required", "additionalProperties",
                                            "items",     "minItems",   "maxItems", "minLength",
                                            "maxLength", NULL};
        for (int i = 0; other[i]; i++)
            if (json_object_has_member(o, other[i])) {
                sfail(s, path, "\"anyOf\" beside \"%s\" is not supported (put it inside each alternative)", other[i]);
                goto out;
            }
        if (!JSON_NODE_HOLDS_ARRAY(any) || !json_array_get_length(json_node_get_array(any))) {
            sfail(s, path, "\"anyOf\" must be a non-empty array of schemas");
            goto out;
        }
        JsonArray* aa = json_node_get_array(any);
        GString* body = g_string_new(NULL);
        for (guint i = 0; i < json_array_get_length(aa); i++) {
            char* apath = g_strdup_printf("%s/anyOf/%u", path, i);
            char part[16];
            g_snprintf(part, sizeof part, "%u", i);
            char* an = rule_name(s, name, part);
            g_hash_table_remove(s->names, an);
            char* e = compile(s, json_array_get_element(aa, i), an, apath);
            g_free(an);
            g_free(apath);
            if (!e) break;
            g_string_append_printf(body, i ? " | %s" : "%s", e);
            g_free(e);
        }
        if (!s->failed) r = emit_rule(s, rule_name(s, name, NULL), body->str);
        g_string_free(body, TRUE);
        goto out;
    }
    if (!mask) {
        /* no type: inferred from the type-specific keywords, else any value */
        if (json_object_has_member(o, "properties") || json_object_has_member(o, "required") ||
            json_object_has_member(o, "additionalProperties"))
            mask |= T_OBJECT;
        if (json_object_has_member(o, "items") || json_object_has_member(o, "minItems") ||
            json_object_has_member(o, "maxItems"))
            mask |= T_ARRAY;
        if (json_object_has_member(o, "minLength") || json_object_has_member(o, "maxLength")) mask |= T_STRING;
        if (!mask) {
            r = use_shared(s, N_VALUE);
            goto out;
        }
        if (mask & (mask - 1)) {
            sfail(s, path, "keywords of several types and no \"type\": name the \"type\"");
            goto out;
        }
    }
    if (!(mask & (mask - 1))) {
        r = compile_typed(s, o, mask, name, path);
        goto out;
    }
    /* several types: one alternative each */
    GString* body = g_string_new(NULL);
    int used = 0;
    for (int b = 1; b <= T_NULL && !s->failed; b <<= 1) {
        if (!(mask & b)) continue;
        if (b == T_INTEGER && (mask & T_NUMBER)) continue; /* number covers it */
        char part[16];
        g_snprintf(part, sizeof part, "t%d", b);
        char* tname = rule_name(s, name, part);
        g_hash_table_remove(s->names, tname);
        char* e = compile_typed(s, o, b, tname, path);
        g_free(tname);
        if (!e) break;
        g_string_append_printf(body, used++ ? " | %s" : "%s", e);
        g_free(e);
    }
    if (!s->failed) r = emit_rule(s, rule_name(s, name, NULL), body->str);
    g_string_free(body, TRUE);
out:
    s->depth--;
    return r;
}

MglStatus gram_schema_to_gbnf(const char* schema, size_t len, char** gbnf, MglErr* err) {
    *gbnf = NULL;
    if (!schema) return mgl_err(err, MGL_E_INVALID, "schema: no text");
    if (len > GRAM_MAX_TEXT)
        return mgl_err(err, MGL_E_INVALID, "schema: %zu bytes, above the %u-byte limit", len, GRAM_MAX_TEXT);
    if (!mgl_json_depth_ok(schema, len))
        return mgl_err(err, MGL_E_INVALID, "schema: nested deeper than %d levels", MGL_JSON_MAX_DEPTH);
    JsonParser* p = json_parser_new();
    GError* ge = NULL;
    if (!json_parser_load_from_data(p, schema, (gssize)len, &ge)) {
        MglStatus st = mgl_err(err, MGL_E_INVALID, "schema: not JSON: %s", ge ? ge->message : "parse error");
        g_clear_error(&ge);
        g_object_unref(p);
        return st;
    }
    JsonNode* root = json_parser_get_root(p);
    if (!root) {
        g_object_unref(p);
        return mgl_err(err, MGL_E_INVALID, "schema: empty document");
    }
    S s = {
        .rules = g_string_new(NULL), .names = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL), .err = err};
    for (int k = 0; k < N_COUNT; k++) g_hash_table_add(s.names, g_strdup(k_shared[k]));
    char* top = compile(&s, root, "root", "");
    MglStatus st = MGL_OK;
    if (!top || s.failed) {
        st = err ? err->code : MGL_E_INVALID;
        if (st == MGL_OK) st = MGL_E_INVALID;
    } else {
        GString* out = g_string_new("# generated from a JSON Schema\n");
        if (strcmp(top, "root") != 0) g_string_append_printf(out, "root ::= %s\n", top);
        g_string_append(out, s.rules->str);
        /* the shared rules, each once, those used */
        gchar** lines = g_strsplit(k_shared_text, "\n", -1);
        for (int i = 0; lines[i] && *lines[i]; i++) {
            bool want = false;
            for (int k = 0; k < N_COUNT; k++)
                if (s.need[k] && g_str_has_prefix(lines[i], k_shared[k]) && lines[i][strlen(k_shared[k])] == ' ')
                    want = true;
            if (s.need[N_VALUE] && (g_str_has_prefix(lines[i], "object ") || g_str_has_prefix(lines[i], "array ")))
                want = true;
            if (want) g_string_append_printf(out, "%s\n", lines[i]);
        }
        g_strfreev(lines);
        *gbnf = g_string_free(out, FALSE);
    }
    g_free(top);
    g_string_free(s.rules, TRUE);
    g_hash_table_unref(s.names);
    g_object_unref(p);
    return st;
}
