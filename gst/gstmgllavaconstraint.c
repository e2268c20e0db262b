/* gstmgllavaconstraint.c: mgllavafilter's structured answers.
 *
 * `response-schema` (a JSON Schema of the subset in docs/structured-output.md)
 * or `response-grammar` (the GBNF-like notation there) constrains every answer
 * of the element: the engine masks, at each decoding step, the tokens that
 * would leave the grammar, so a complete answer always parses (and, for a
 * schema, validates). The value of either property is the text itself or the
 * path of a file holding it: a schema whose first non-blank character is `{`
 * is inline, a grammar that contains `::=` is inline; anything else is read
 * as a file (at most 1 MiB).
 *
 * The property is checked when it is set (a warning in the debug log naming
 * what is wrong) and compiled against the model's tokenizer once the model is
 * loaded: an invalid or unsupported schema or grammar is then an element
 * error naming the keyword or rule. The element's worker runs one request at
 * a time, so one matcher state serves every request (reset before each);
 * per-object questions, which go to the scheduler together, get one matcher
 * each (made as many as the largest batch needs, kept until stop).
 *
 * A finished answer carries `constraint` ("complete", "incomplete" when the
 * token budget ended inside the structure, "invalid") and, for a complete
 * answer under a schema, `json`: the parsed value as compact JSON. The bus
 * message also carries it as a value: "answer", a GstStructure named "answer"
 * for an object (nested objects as structures, arrays as GstValueArray,
 * integers as gint64, numbers as gdouble, booleans, strings; null members are
 * left out). */
#include "gstmgllavafilter-private.h"
#include "mgl-json.h"

#include <json-glib/json-glib.h>
#include <string.h>

#define GST_MGLLAVA_CONSTRAINT_MAX_FILE (1u << 20)

static gboolean is_inline(const gchar* value, gboolean schema) {
    const gchar* p = value;

    if (!schema) return strstr(value, "::=") != NULL;
    while (g_ascii_isspace(*p)) p++;
    return *p == '{';
}

gchar* gst_mgllava_constraint_load_text(const gchar* value, gboolean schema, GError** error) {
    char* data = NULL;
    size_t len = 0;

    if (is_inline(value, schema)) return g_strdup(value);
    if (!mgl_json_read_file(value, GST_MGLLAVA_CONSTRAINT_MAX_FILE, &data, &len, error)) return NULL;
    if (memchr(data, '\0', len)) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL, "%s: holds a NUL byte (not a text file)", value);
        g_free(data);
        return NULL;
    }
    return data;
}

void gst_mgllava_constraint_check_property(GstMgllavaFilter* self, const gchar* value, gboolean schema) {
    GError* gerr = NULL;
    MglGrammar* g = NULL;
    MglErr err = {0};
    gchar* text;
    const gchar* what = schema ? "response-schema" : "response-grammar";

    if (!value || !*value) return;
    text = gst_mgllava_constraint_load_text(value, schema, &gerr);
    if (!text) {
        GST_WARNING_OBJECT(self, "%s: %s (the element will not start)", what, gerr->message);
        g_error_free(gerr);
        return;
    }
    if ((schema ? mgl_grammar_from_schema(NULL, text, &g, &err) : mgl_grammar_from_gbnf(NULL, text, &g, &err)) !=
        MGL_OK)
        GST_WARNING_OBJECT(self, "%s: %s (the element will not start)", what, err.msg);
    mgl_grammar_free(g);
    g_free(text);
}

gboolean gst_mgllava_filter_constraint_open(GstMgllavaFilter* self) {
    gchar *schema, *grammar, *text;
    const gchar* what;
    GError* gerr = NULL;
    MglErr err = {0};
    MglStatus st;

    GST_OBJECT_LOCK(self);
    schema = g_strdup(self->response_schema);
    grammar = g_strdup(self->response_grammar);
    GST_OBJECT_UNLOCK(self);
    if (schema && !*schema) g_clear_pointer(&schema, g_free);
    if (grammar && !*grammar) g_clear_pointer(&grammar, g_free);

    self->grammar_is_schema = schema != NULL;
    self->grammar_budget_warned = FALSE;
    if (!schema && !grammar) return TRUE;
    if (schema && grammar) {
        GST_ELEMENT_ERROR(self, LIBRARY, SETTINGS,
                          ("Both response-schema and response-grammar are set: set one of them."), (NULL));
        g_free(schema);
        g_free(grammar);
        return FALSE;
    }
    what = schema ? "response-schema" : "response-grammar";
    text = gst_mgllava_constraint_load_text(schema ? schema : grammar, schema != NULL, &gerr);
    g_free(schema);
    g_free(grammar);
    if (!text) {
        GST_ELEMENT_ERROR(self, RESOURCE, OPEN_READ, ("Could not read %s: %s", what, gerr->message), (NULL));
        g_error_free(gerr);
        return FALSE;
    }
    st = self->grammar_is_schema ? mgl_grammar_from_schema(mgl_model_tokenizer(self->model), text, &self->grammar, &err)
                                 : mgl_grammar_from_gbnf(mgl_model_tokenizer(self->model), text, &self->grammar, &err);
    g_free(text);
    if (st == MGL_OK) st = mgl_grammar_state_new(self->grammar, &self->grammar_state, &err);
    if (st != MGL_OK) {
        GST_ELEMENT_ERROR(self, LIBRARY, SETTINGS, ("Invalid %s: %s", what, err.msg),
                          ("%s", mgl_status_to_string(err.code)));
        gst_mgllava_filter_constraint_close(self);
        return FALSE;
    }
    GST_INFO_OBJECT(self, "answers constrained by the %s", what);
    return TRUE;
}

void gst_mgllava_filter_constraint_close(GstMgllavaFilter* self) {
    g_clear_pointer(&self->grammar_state, mgl_grammar_state_free);
    g_clear_pointer(&self->grammar_states, g_ptr_array_unref);
    g_clear_pointer(&self->grammar, mgl_grammar_free);
}

/* Request @i's matcher: the first one, or one of the extra ones (made on
 * first use; NULL when that fails, and the request goes unconstrained). */
static MglGrammarState* constraint_state(GstMgllavaFilter* self, guint i) {
    MglErr err = {0};

    if (!self->grammar_state) return NULL;
    if (i == 0) return self->grammar_state;
    if (!self->grammar_states)
        self->grammar_states = g_ptr_array_new_with_free_func((GDestroyNotify)mgl_grammar_state_free);
    while (self->grammar_states->len < i) {
        MglGrammarState* st = NULL;

        if (mgl_grammar_state_new(self->grammar, &st, &err) != MGL_OK) {
            GST_WARNING_OBJECT(self, "no matcher for request %u of a batch: %s", i, err.msg);
            return NULL;
        }
        g_ptr_array_add(self->grammar_states, st);
    }
    return g_ptr_array_index(self->grammar_states, i - 1);
}

void gst_mgllava_filter_constraint_bind(GstMgllavaFilter* self, MglGenParams* gen) {
    gst_mgllava_filter_constraint_bind_index(self, 0, gen);
}

void gst_mgllava_filter_constraint_bind_index(GstMgllavaFilter* self, guint i, MglGenParams* gen) {
    MglGrammarState* st = constraint_state(self, i);

    if (!st) return;
    mgl_grammar_state_reset(st);
    mgl_grammar_state_bind(st, gen);
}

gboolean gst_mgllava_filter_constraint_finish(GstMgllavaFilter* self, const gint32* ids, gsize n_ids,
                                              GstMgllavaResult* r) {
    return gst_mgllava_filter_constraint_finish_index(self, 0, ids, n_ids, r);
}

gboolean gst_mgllava_filter_constraint_finish_index(GstMgllavaFilter* self, guint i, const gint32* ids, gsize n_ids,
                                                    GstMgllavaResult* r) {
    MglGrammarState* st = self->grammar_state ? constraint_state(self, i) : NULL;
    const char* text = NULL;
    MglGrammarResult how;

    if (!st) return TRUE;
    how = mgl_grammar_state_finish(st, ids, n_ids, &text);
    if (!self->grammar_budget_warned) {
        MglGrammarStats gs;

        mgl_grammar_state_stats(st, &gs);
        if (gs.cut_short) {
            /* a grammar this ambiguous makes masks that miss some allowed tokens: say so once */
            self->grammar_budget_warned = TRUE;
            GST_ELEMENT_WARNING(self, LIBRARY, SETTINGS,
                                ("%s: %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT
                                 " token masks reached the work budget of one mask: the grammar is very ambiguous, "
                                 "and answers may miss texts it allows (docs/structured-output.md)",
                                 self->grammar_is_schema ? "response-schema" : "response-grammar", gs.cut_short,
                                 gs.masks),
                                (NULL));
        }
    }
    r->fields.constraint = g_strdup(mgl_grammar_result_name(how));
    if (how != MGL_GRAMMAR_COMPLETE) return FALSE;
    g_free(r->fields.text);
    r->fields.text = g_strdup(text ? text : "");
    if (self->grammar_is_schema) {
        /* the grammar's text, checked by json-glib and written compactly */
        JsonNode* node = json_from_string(r->fields.text, NULL);

        if (!node) {
            g_free(r->fields.constraint);
            r->fields.constraint = g_strdup(mgl_grammar_result_name(MGL_GRAMMAR_INVALID));
            return FALSE;
        }
        r->fields.json = json_to_string(node, FALSE);
        json_node_unref(node);
    }
    return TRUE;
}

static gboolean json_to_value(JsonNode* node, GValue* out);

static GstStructure* json_object_to_structure(JsonObject* o, const gchar* name) {
    GstStructure* s = gst_structure_new_empty(name);
    JsonObjectIter it;
    const gchar* key;
    JsonNode* member;

    json_object_iter_init(&it, o);
    while (json_object_iter_next(&it, &key, &member)) {
        GValue v = G_VALUE_INIT;

        if (json_to_value(member, &v)) gst_structure_take_value(s, key, &v);
    }
    return s;
}

/* A JSON value as a GValue; FALSE (nothing set) for null. */
static gboolean json_to_value(JsonNode* node, GValue* out) {
    switch (json_node_get_node_type(node)) {
    case JSON_NODE_OBJECT:
        g_value_init(out, GST_TYPE_STRUCTURE);
        g_value_take_boxed(out, json_object_to_structure(json_node_get_object(node), "object"));
        return TRUE;
    case JSON_NODE_ARRAY: {
        JsonArray* a = json_node_get_array(node);
        guint i, n = json_array_get_length(a);

        g_value_init(out, GST_TYPE_ARRAY);
        for (i = 0; i < n; i++) {
            GValue e = G_VALUE_INIT;

            if (json_to_value(json_array_get_element(a, i), &e)) gst_value_array_append_and_take_value(out, &e);
        }
        return TRUE;
    }
    case JSON_NODE_VALUE:
        switch (json_node_get_value_type(node)) {
        case G_TYPE_INT64:
            g_value_init(out, G_TYPE_INT64);
            g_value_set_int64(out, json_node_get_int(node));
            return TRUE;
        case G_TYPE_DOUBLE:
            g_value_init(out, G_TYPE_DOUBLE);
            g_value_set_double(out, json_node_get_double(node));
            return TRUE;
        case G_TYPE_BOOLEAN:
            g_value_init(out, G_TYPE_BOOLEAN);
            g_value_set_boolean(out, json_node_get_boolean(node));
            return TRUE;
        case G_TYPE_STRING:
            g_value_init(out, G_TYPE_STRING);
            g_value_set_string(out, json_node_get_string(node));
            return TRUE;
        default: return FALSE;
        }
    case JSON_NODE_NULL:
    default: return FALSE;
    }
}

void gst_mgllava_constraint_add_answer(GstStructure* s, const gchar* json) {
    JsonNode* node = json ? json_from_string(json, NULL) : NULL;
    GValue v = G_VALUE_INIT;

    if (!node) return;
    if (JSON_NODE_HOLDS_OBJECT(node)) {
        g_value_init(&v, GST_TYPE_STRUCTURE);
        g_value_take_boxed(&v, json_object_to_structure(json_node_get_object(node), "answer"));
        gst_structure_take_value(s, "answer", &v);
    } else if (json_to_value(node, &v)) {
        gst_structure_take_value(s, "answer", &v);
    }
    json_node_unref(node);
}
