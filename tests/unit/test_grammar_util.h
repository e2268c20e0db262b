/* test_grammar_util.h: what the grammar tests share: a validator for the JSON
 * Schema subset (json-glib), a random schema generator, and a driver that
 * generates under a grammar state with random choices (random logits) and
 * checks every step. */
#ifndef TEST_GRAMMAR_UTIL_H
#define TEST_GRAMMAR_UTIL_H

#include "mgl-test.h"
#include "mgllava.h"
#include "grammar/mgl-grammar-internal.h"

#include <glib.h>
#include <json-glib/json-glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* ---- validation ----------------------------------------------------------- */

static bool gt_is_integer(JsonNode* v) {
    if (!JSON_NODE_HOLDS_VALUE(v)) return false;
    GType t = json_node_get_value_type(v);
    if (t == G_TYPE_INT64) return true;
    if (t == G_TYPE_DOUBLE) {
        double d = json_node_get_double(v);
        return d == (double)(int64_t)d;
    }
    return false;
}

static bool gt_has_type(JsonNode* v, const char* t) {
    if (!strcmp(t, "object")) return JSON_NODE_HOLDS_OBJECT(v);
    if (!strcmp(t, "array")) return JSON_NODE_HOLDS_ARRAY(v);
    if (!strcmp(t, "null")) return JSON_NODE_HOLDS_NULL(v);
    if (!JSON_NODE_HOLDS_VALUE(v)) return false;
    GType vt = json_node_get_value_type(v);
    if (!strcmp(t, "string")) return vt == G_TYPE_STRING;
    if (!strcmp(t, "boolean")) return vt == G_TYPE_BOOLEAN;
    if (!strcmp(t, "number")) return vt == G_TYPE_INT64 || vt == G_TYPE_DOUBLE;
    if (!strcmp(t, "integer")) return gt_is_integer(v);
    return false;
}

static bool gt_equal(JsonNode* a, JsonNode* b) {
    if (JSON_NODE_HOLDS_VALUE(a) && JSON_NODE_HOLDS_VALUE(b)) {
        GType ta = json_node_get_value_type(a), tb = json_node_get_value_type(b);
        bool na = ta == G_TYPE_INT64 || ta == G_TYPE_DOUBLE, nb = tb == G_TYPE_INT64 || tb == G_TYPE_DOUBLE;
        if (na && nb) return json_node_get_double(a) == json_node_get_double(b);
    }
    return json_node_equal(a, b);
}

/* Does value v satisfy the schema s (the subset's keywords, JSON Schema semantics)? */
G_GNUC_UNUSED static bool gt_validate(JsonNode* s, JsonNode* v, GString* why) {
    if (JSON_NODE_HOLDS_VALUE(s) && json_node_get_value_type(s) == G_TYPE_BOOLEAN) {
        if (!json_node_get_boolean(s)) g_string_append(why, "schema false");
        return json_node_get_boolean(s);
    }
    JsonObject* o = json_node_get_object(s);
    JsonNode* t = json_object_get_member(o, "type");
    if (t) {
        bool ok = false;
        if (JSON_NODE_HOLDS_ARRAY(t)) {
            JsonArray* a = json_node_get_array(t);
            for (guint i = 0; i < json_array_get_length(a); i++)
                ok |= gt_has_type(v, json_node_get_string(json_array_get_element(a, i)));
        } else {
            ok = gt_has_type(v, json_node_get_string(t));
        }
        if (!ok) {
            g_string_append(why, "wrong type");
            return false;
        }
    }
    JsonNode* e = json_object_get_member(o, "enum");
    if (e) {
        bool ok = false;
        JsonArray* a = json_node_get_array(e);
        for (guint i = 0; i < json_array_get_length(a); i++) ok |= gt_equal(json_array_get_element(a, i), v);
        if (!ok) {
            g_string_append(why, "not in enum");
            return false;
        }
    }
    JsonNode* c = json_object_get_member(o, "const");
    if (c && !gt_equal(c, v)) {
        g_string_append(why, "not the const");
        return false;
    }
    JsonNode* any = json_object_get_member(o, "anyOf");
    if (any) {
        bool ok = false;
        JsonArray* a = json_node_get_array(any);
        for (guint i = 0; i < json_array_get_length(a) && !ok; i++) {
            GString* w = g_string_new(NULL);
            ok = gt_validate(json_array_get_element(a, i), v, w);
            g_string_free(w, TRUE);
        }
        if (!ok) {
            g_string_append(why, "no anyOf branch");
            return false;
        }
    }
    if (JSON_NODE_HOLDS_OBJECT(v)) {
        JsonObject* vo = json_node_get_object(v);
        JsonNode* req = json_object_get_member(o, "required");
        for (guint i = 0; req && i < json_array_get_length(json_node_get_array(req)); i++) {
            const char* k = json_node_get_string(json_array_get_element(json_node_get_array(req), i));
            if (!json_object_has_member(vo, k)) {
                g_string_append_printf(why, "missing required \"%s\"", k);
                return false;
            }
        }
        JsonNode* props = json_object_get_member(o, "properties");
        if (props) {
            GList* ms = json_object_get_members(vo);
            for (GList* l = ms; l; l = l->next) {
                JsonNode* ps = json_object_get_member(json_node_get_object(props), l->data);
                if (ps && !gt_validate(ps, json_object_get_member(vo, l->data), why)) {
                    g_string_append_printf(why, " in \"%s\"", (const char*)l->data);
                    g_list_free(ms);
                    return false;
                }
            }
            g_list_free(ms);
        }
    }
    if (JSON_NODE_HOLDS_ARRAY(v)) {
        JsonArray* va = json_node_get_array(v);
        guint n = json_array_get_length(va);
        JsonNode* mn = json_object_get_member(o, "minItems");
        JsonNode* mx = json_object_get_member(o, "maxItems");
        if (mn && n < (guint)json_node_get_int(mn)) {
            g_string_append(why, "too few items");
            return false;
        }
        if (mx && n > (guint)json_node_get_int(mx)) {
            g_string_append(why, "too many items");
            return false;
        }
        JsonNode* items = json_object_get_member(o, "items");
        for (guint i = 0; items && i < n; i++)
            if (!gt_validate(items, json_array_get_element(va, i), why)) {
                g_string_append_printf(why, " in item %u", i);
                return false;
            }
    }
    if (JSON_NODE_HOLDS_VALUE(v) && json_node_get_value_type(v) == G_TYPE_STRING) {
        glong n = g_utf8_strlen(json_node_get_string(v), -1);
        JsonNode* mn = json_object_get_member(o, "minLength");
        JsonNode* mx = json_object_get_member(o, "maxLength");
        if (mn && n < json_node_get_int(mn)) {
            g_string_append(why, "string too short");
            return false;
        }
        if (mx && n > json_node_get_int(mx)) {
            g_string_append(why, "string too long");
            return false;
        }
    }
    return true;
}

/* Parses `text` and validates it against `schema_text`; on failure the reason goes to why. */
G_GNUC_UNUSED static bool gt_check_json(const char* schema_text, const char* text, GString* why) {
    JsonParser* ps = json_parser_new();
    JsonParser* pv = json_parser_new();
    GError* ge = NULL;
    bool ok = json_parser_load_from_data(ps, schema_text, -1, NULL);
    if (!ok) g_string_append(why, "the schema does not parse");
    if (ok && !(ok = json_parser_load_from_data(pv, text, -1, &ge)))
        g_string_append_printf(why, "does not parse: %s", ge ? ge->message : "?");
    g_clear_error(&ge);
    if (ok && !json_parser_get_root(pv)) {
        ok = false;
        g_string_append(why, "empty");
    }
    if (ok) ok = gt_validate(json_parser_get_root(ps), json_parser_get_root(pv), why);
    g_object_unref(ps);
    g_object_unref(pv);
    return ok;
}

/* ---- random schemas --------------------------------------------------------- */

static void gt_rand_string_value(GRand* r, GString* o) {
    static const char* const words[] = {"red",  "car", "a b", "x\\\"y", "\\u00e9t\\u00e9",
                                        "中文", "",    "ok,", "n\\n",   "\\\\"};
    g_string_append_printf(o, "\"%s\"", words[g_rand_int_range(r, 0, G_N_ELEMENTS(words))]);
}

G_GNUC_UNUSED static void gt_rand_schema(GRand* r, int depth, GString* o) {
    int k = g_rand_int_range(r, 0, depth > 0 ? 13 : 9);
    switch (k) {
    case 0: g_string_append(o, "{\"type\":\"integer\"}"); break;
    case 1: g_string_append(o, "{\"type\":\"number\"}"); break;
    case 2: g_string_append(o, "{\"type\":\"boolean\"}"); break;
    case 3: g_string_append(o, "{\"type\":\"null\"}"); break;
    case 4: {
        int mx = g_rand_int_range(r, -1, 9);
        if (mx < 0)
            g_string_append(o, "{\"type\":\"string\"}");
        else
            g_string_append_printf(o, "{\"type\":\"string\",\"minLength\":%d,\"maxLength\":%d}",
                                   g_rand_int_range(r, 0, mx + 1), mx);
        break;
    }
    case 5: {
        g_string_append(o, "{\"enum\":[");
        int n = g_rand_int_range(r, 1, 5);
        for (int i = 0; i < n; i++) {
            if (i) g_string_append_c(o, ',');
            int w = g_rand_int_range(r, 0, 4);
            if (w == 0)
                g_string_append_printf(o, "%d", g_rand_int_range(r, -20, 200));
            else if (w == 1)
                g_string_append(o, g_rand_boolean(r) ? "true" : "null");
            else
                gt_rand_string_value(r, o);
        }
        g_string_append(o, "]}");
        break;
    }
    case 6: g_string_append(o, "{\"type\":[\"string\",\"null\"],\"maxLength\":4}"); break;
    case 7: {
        g_string_append(o, "{\"const\":");
        gt_rand_string_value(r, o);
        g_string_append(o, "}");
        break;
    }
    case 8:
        g_string_append(o, "{\"type\":\"string\",\"enum\":[\"yes\",\"no\",\"maybe\"],\"description\":\"d\"}");
        break;
    case 9:
    case 10: {
        static const char* const names[] = {"count", "name", "a", "is_ok", "x y", "é", "tags", "items", "q\\\"k"};
        int n = g_rand_int_range(r, 1, 5);
        g_string_append(o, "{\"type\":\"object\",\"properties\":{");
        bool used[G_N_ELEMENTS(names)] = {0};
        GString* req = g_string_new(NULL);
        int m = 0;
        for (int i = 0; i < n; i++) {
            int w = g_rand_int_range(r, 0, G_N_ELEMENTS(names));
            if (used[w]) continue;
            used[w] = true;
            if (m++) g_string_append_c(o, ',');
            g_string_append_printf(o, "\"%s\":", names[w]);
            gt_rand_schema(r, depth - 1, o);
            if (g_rand_int_range(r, 0, 3)) g_string_append_printf(req, "%s\"%s\"", req->len ? "," : "", names[w]);
        }
        g_string_append_printf(o, "},\"required\":[%s]", req->str);
        if (g_rand_boolean(r)) g_string_append(o, ",\"additionalProperties\":false");
        g_string_append(o, "}");
        g_string_free(req, TRUE);
        break;
    }
    case 11: {
        int mn = g_rand_int_range(r, 0, 3), mx = g_rand_int_range(r, -1, 4);
        g_string_append(o, "{\"type\":\"array\",\"items\":");
        gt_rand_schema(r, depth - 1, o);
        g_string_append_printf(o, ",\"minItems\":%d", mn);
        if (mx >= 0) g_string_append_printf(o, ",\"maxItems\":%d", mn + mx);
        g_string_append(o, "}");
        break;
    }
    case 12: {
        g_string_append(o, "{\"anyOf\":[");
        gt_rand_schema(r, depth - 1, o);
        g_string_append_c(o, ',');
        gt_rand_schema(r, depth - 1, o);
        g_string_append(o, "]}");
        break;
    }
    }
}

/* A random schema whose root is an object two times in three (the dashboard case). */
G_GNUC_UNUSED static void gt_rand_top_schema(GRand* r, GString* o) {
    if (g_rand_int_range(r, 0, 3)) {
        GString* t = g_string_new(NULL);
        do {
            g_string_truncate(t, 0);
            gt_rand_schema(r, 3, t);
        } while (!g_str_has_prefix(t->str, "{\"type\":\"object\""));
        g_string_append(o, t->str);
        g_string_free(t, TRUE);
    } else {
        gt_rand_schema(r, 3, o);
    }
}

/* ---- driving a state with random choices ------------------------------------ */

typedef struct {
    int steps, max_allowed, min_allowed;
    MglGrammarResult result;
    char* text;      /* the grammar's text (g_free) */
    char* completed; /* text + the shortest completion (g_free) */
    int32_t* ids;    /* g_free */
    size_t n_ids;
    double mask_ms;
} GtRun;

/* Each token's bytes, once per tokenizer (the last one asked for). */
typedef struct {
    const MglTokenizer* tok;
    int32_t* len; /* -1: special */
    uint32_t* off;
    GByteArray* data;
} GtBytes;

static GtBytes g_gt_bytes;

/* Call before freeing the tokenizer the table was made for. */
G_GNUC_UNUSED static void gt_bytes_forget(void) {
    GtBytes* b = &g_gt_bytes;
    if (b->data) {
        g_free(b->len);
        g_free(b->off);
        g_byte_array_free(b->data, TRUE);
    }
    memset(b, 0, sizeof *b);
}

static const GtBytes* gt_bytes(const MglTokenizer* tok) {
    GtBytes* bp = &g_gt_bytes;
    if (bp->tok == tok) return bp;
    gt_bytes_forget();
    GtBytes b = {0};
    int32_t V = mgl_tokenizer_n_vocab(tok);
    b.tok = tok;
    b.len = g_new(int32_t, V);
    b.off = g_new(uint32_t, V);
    b.data = g_byte_array_new();
    uint8_t buf[4096];
    for (int32_t id = 0; id < V; id++) {
        b.len[id] = gram_token_bytes(tok, id, buf, sizeof buf);
        b.off[id] = b.data->len;
        if (b.len[id] > 0) g_byte_array_append(b.data, buf, (guint)b.len[id]);
    }
    *bp = b;
    return bp;
}

/* Generates up to `budget` tokens: each step takes the mask, checks that some
 * token is allowed and that the text so far still has a completion, then picks
 * either a uniformly random allowed token (random logits) or, with probability
 * `steer`, the longest allowed token that follows the shortest completion
 * (so that many runs finish), or the end token where allowed. */
G_GNUC_UNUSED static bool gt_drive(const MglTokenizer* tok, MglGrammarState* st, GRand* r, int budget, double steer,
                                   GtRun* out) {
    memset(out, 0, sizeof *out);
    const int32_t V = mgl_tokenizer_n_vocab(tok);
    const int32_t eos = mgl_tokenizer_eos(tok);
    uint32_t* allow = g_new(uint32_t, (V + 31) / 32);
    int32_t* ids = g_new0(int32_t, budget + 1);
    int32_t* cand = g_new(int32_t, V);
    uint8_t comp[4096];
    const GtBytes* tbs = gt_bytes(tok);
    size_t n = 0;
    bool ok = true;
    out->min_allowed = V + 1;
    mgl_grammar_state_reset(st);
    while ((int)n < budget) {
        memset(allow, 0xff, sizeof(uint32_t) * ((V + 31) / 32));
        double t0 = g_get_monotonic_time() / 1e3;
        mgl_grammar_token_mask(ids, n, allow, V, st);
        out->mask_ms += g_get_monotonic_time() / 1e3 - t0;
        int nc = 0;
        for (int32_t i = 0; i < V; i++)
            if ((allow[i >> 5] >> (i & 31)) & 1u) cand[nc++] = i;
        if (nc > out->max_allowed) out->max_allowed = nc;
        if (nc < out->min_allowed) out->min_allowed = nc;
        if (!nc) {
            fprintf(stderr, "no token allowed after %zu tokens\n", n);
            ok = false;
            break;
        }
        int clen = gram_state_completion(st, comp, (int)sizeof comp);
        if (clen < 0) {
            fprintf(stderr, "no completion after %zu tokens\n", n);
            ok = false;
            break;
        }
        int32_t pick = -1;
        bool eos_ok = eos >= 0 && eos < V && ((allow[eos >> 5] >> (eos & 31)) & 1u);
        if (g_rand_double(r) < steer) {
            if (clen == 0 && eos_ok) {
                pick = eos;
            } else {
                int best = 0;
                for (int k = 0; k < nc; k++) {
                    int len = tbs->len[cand[k]];
                    if (len > best && len <= clen && !memcmp(tbs->data->data + tbs->off[cand[k]], comp, (size_t)len)) {
                        best = len;
                        pick = cand[k];
                    }
                }
            }
        }
        if (pick < 0) pick = cand[g_rand_int_range(r, 0, nc)];
        ids[n++] = pick;
        if (pick == eos) break;
    }
    out->steps = (int)n;
    const char* text = NULL;
    out->result = mgl_grammar_state_finish(st, ids, n, &text);
    out->text = g_strdup(text);
    int clen = out->result == MGL_GRAMMAR_INVALID ? -1 : gram_state_completion(st, comp, (int)sizeof comp - 1);
    if (clen >= 0) out->completed = g_strdup_printf("%s%.*s", text, clen, (const char*)comp);
    out->ids = ids;
    out->n_ids = n;
    g_free(cand);
    g_free(allow);
    return ok;
}

G_GNUC_UNUSED static void gt_run_clear(GtRun* r) {
    g_free(r->text);
    g_free(r->completed);
    g_free(r->ids);
    memset(r, 0, sizeof *r);
}

/* The fixture or shared-testdata path of a tokenizer (g_free). */
G_GNUC_UNUSED static char* gt_path(const char* env, const char* rel) {
    const char* base = getenv(env);
    if (!base || !*base) return NULL;
    return g_build_filename(base, rel, NULL);
}

#endif
