/* tok-json.c: tokenizer.json and tokenizer_config.json.
 *
 * A small arena-backed JSON parser is used instead of json-glib: the Llama-3
 * tokenizer.json is 9 MB with 128k vocabulary entries and 280k merges, and a
 * GObject tree of that costs most of a second; this parser reads it in tens
 * of milliseconds. It is strict (RFC 8259), depth-limited and bounds-checked,
 * since tokenizer files are untrusted input. */
#include "tok-internal.h"
#include "mgl-json.h"   /* MGL_JSON_MAX_DEPTH: one nesting limit for every JSON the project reads */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- JSON DOM ------------------------------------------------------------ */

typedef enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } JType;

typedef struct JVal JVal;
struct JVal {
    uint8_t  type;
    bool     b;
    uint32_t n;                /* array: items; object: members (items holds 2n: key, value) */
    union {
        double num;
        struct { const char* s; size_t len; } str;
        JVal* items;
    } u;
};

typedef struct {
    const char* s;
    size_t      n, pos;
    TokArena*   arena;
    JVal*       stack;
    size_t      sn, scap;
    int         depth;
    const char* path;
    MglErr*     err;
    char        emsg[160];
} JParser;

static bool jfail(JParser* p, const char* what) {
    if (!p->emsg[0]) snprintf(p->emsg, sizeof p->emsg, "%s at byte %zu", what, p->pos);
    return false;
}

static void jws(JParser* p) {
    while (p->pos < p->n) {
        char c = p->s[p->pos];
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t') p->pos++;
        else break;
    }
}

static bool jpush(JParser* p, const JVal* v) {
    if (p->sn == p->scap) {
        size_t nc = p->scap ? p->scap * 2 : 1024;
        JVal* ns = realloc(p->stack, nc * sizeof *ns);
        if (!ns) return jfail(p, "out of memory");
        p->stack = ns;
        p->scap = nc;
    }
    p->stack[p->sn++] = *v;
    return true;
}

static int jhex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool jhex4(JParser* p, uint32_t* v) {
    if (p->n - p->pos < 4) return jfail(p, "truncated \\u escape");
    uint32_t r = 0;
    for (int i = 0; i < 4; i++) {
        int h = jhex(p->s[p->pos + (size_t)i]);
        if (h < 0) return jfail(p, "bad \\u escape");
        r = r * 16 + (uint32_t)h;
    }
    p->pos += 4;
    *v = r;
    return true;
}

static bool jstring(JParser* p, JVal* out) {
    /* p->s[p->pos] == '"' */
    size_t start = ++p->pos;
    bool esc = false;
    while (p->pos < p->n) {
        uint8_t c = (uint8_t)p->s[p->pos];
        if (c == '"') break;
        if (c < 0x20) return jfail(p, "control character in string");
        if (c == '\\') {
            esc = true;
            p->pos++;
        }
        p->pos++;
    }
    if (p->pos >= p->n) return jfail(p, "unterminated string");
    size_t end = p->pos++;
    out->type = J_STR;
    if (!esc) {
        out->u.str.s = p->s + start;
        out->u.str.len = end - start;
        return true;
    }
    /* Unescaped text is never longer than the escaped source. */
    char* d = tok_arena_alloc(p->arena, end - start + 1);
    if (!d) return jfail(p, "out of memory");
    size_t o = 0;
    size_t save = p->pos;
    p->pos = start;
    while (p->pos < end) {
        char c = p->s[p->pos++];
        if (c != '\\') { d[o++] = c; continue; }
        if (p->pos >= end) return jfail(p, "bad escape");
        char e = p->s[p->pos++];
        switch (e) {
        case '"': d[o++] = '"'; break;
        case '\\': d[o++] = '\\'; break;
        case '/': d[o++] = '/'; break;
        case 'b': d[o++] = '\b'; break;
        case 'f': d[o++] = '\f'; break;
        case 'n': d[o++] = '\n'; break;
        case 'r': d[o++] = '\r'; break;
        case 't': d[o++] = '\t'; break;
        case 'u': {
            uint32_t v;
            if (p->pos + 4 > end || !jhex4(p, &v)) return jfail(p, "bad \\u escape");
            if (v >= 0xD800 && v <= 0xDBFF) {
                uint32_t lo;
                if (p->pos + 6 > end || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u')
                    return jfail(p, "lone surrogate in \\u escape");
                p->pos += 2;
                if (!jhex4(p, &lo) || lo < 0xDC00 || lo > 0xDFFF) return jfail(p, "lone surrogate in \\u escape");
                v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
            } else if (v >= 0xDC00 && v <= 0xDFFF) {
                return jfail(p, "lone surrogate in \\u escape");
            }
            char b[8];
            int l = g_unichar_to_utf8(v, b);
            memcpy(d + o, b, (size_t)l);   /* \uXXXX is 6 bytes: room for up to 4 */
            o += (size_t)l;
            break;
        }
        default:
            return jfail(p, "bad escape");
        }
    }
    d[o] = 0;
    p->pos = save;
    out->u.str.s = d;
    out->u.str.len = o;
    return true;
}

static bool jnumber(JParser* p, JVal* out) {
    size_t st = p->pos;
    if (p->pos < p->n && p->s[p->pos] == '-') p->pos++;
    if (p->pos >= p->n) return jfail(p, "bad number");
    if (p->s[p->pos] == '0') p->pos++;
    else if (p->s[p->pos] >= '1' && p->s[p->pos] <= '9')
        while (p->pos < p->n && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') p->pos++;
    else return jfail(p, "bad number");
    if (p->pos < p->n && p->s[p->pos] == '.') {
        p->pos++;
        size_t d0 = p->pos;
        while (p->pos < p->n && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') p->pos++;
        if (p->pos == d0) return jfail(p, "bad number");
    }
    if (p->pos < p->n && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
        p->pos++;
        if (p->pos < p->n && (p->s[p->pos] == '+' || p->s[p->pos] == '-')) p->pos++;
        size_t d0 = p->pos;
        while (p->pos < p->n && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') p->pos++;
        if (p->pos == d0) return jfail(p, "bad number");
    }
    char buf[64];
    size_t l = p->pos - st;
    if (l >= sizeof buf) {
        /* very long literal: only its magnitude matters here */
        out->type = J_NUM;
        out->u.num = HUGE_VAL;
        return true;
    }
    memcpy(buf, p->s + st, l);
    buf[l] = 0;
    out->type = J_NUM;
    out->u.num = g_ascii_strtod(buf, NULL);   /* not locale-dependent */
    return true;
}

static bool jvalue(JParser* p, JVal* out);

static bool jcontainer(JParser* p, JVal* out, bool obj) {
    if (++p->depth > MGL_JSON_MAX_DEPTH) return jfail(p, "nesting too deep");
    p->pos++;
    size_t base = p->sn;
    jws(p);
    char close = obj ? '}' : ']';
    if (p->pos < p->n && p->s[p->pos] == close) {
        p->pos++;
    } else {
        for (;;) {
            JVal v;
            jws(p);
            if (obj) {
                if (p->pos >= p->n || p->s[p->pos] != '"') return jfail(p, "expected a member name");
                if (!jstring(p, &v) || !jpush(p, &v)) return false;
                jws(p);
                if (p->pos >= p->n || p->s[p->pos] != ':') return jfail(p, "expected ':'");
                p->pos++;
            }
            if (!jvalue(p, &v) || !jpush(p, &v)) return false;
            jws(p);
            if (p->pos >= p->n) return jfail(p, "unexpected end");
            if (p->s[p->pos] == ',') { p->pos++; continue; }
            if (p->s[p->pos] == close) { p->pos++; break; }
            return jfail(p, obj ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    }
    size_t cnt = p->sn - base;
    if (cnt > UINT32_MAX) return jfail(p, "container too large");
    out->type = obj ? J_OBJ : J_ARR;
    out->n = (uint32_t)(obj ? cnt / 2 : cnt);
    out->u.items = NULL;
    if (cnt) {
        out->u.items = tok_arena_alloc(p->arena, cnt * sizeof(JVal));
        if (!out->u.items) return jfail(p, "out of memory");
        memcpy(out->u.items, p->stack + base, cnt * sizeof(JVal));
    }
    p->sn = base;
    p->depth--;
    return true;
}

static bool jlit(JParser* p, const char* lit) {
    size_t l = strlen(lit);
    if (p->n - p->pos < l || memcmp(p->s + p->pos, lit, l) != 0) return jfail(p, "invalid literal");
    p->pos += l;
    return true;
}

static bool jvalue(JParser* p, JVal* out) {
    jws(p);
    memset(out, 0, sizeof *out);
    if (p->pos >= p->n) return jfail(p, "unexpected end");
    char c = p->s[p->pos];
    switch (c) {
    case '{': return jcontainer(p, out, true);
    case '[': return jcontainer(p, out, false);
    case '"': return jstring(p, out);
    case 't': out->type = J_BOOL; out->b = true; return jlit(p, "true");
    case 'f': out->type = J_BOOL; out->b = false; return jlit(p, "false");
    case 'n': out->type = J_NULL; return jlit(p, "null");
    default:
        if (c == '-' || (c >= '0' && c <= '9')) return jnumber(p, out);
        return jfail(p, "unexpected character");
    }
}

/* Parses a whole document; strings may point into `s`, which must outlive the DOM. */
static MglStatus jparse(const char* path, const char* s, size_t n, TokArena* arena, JVal* root, MglErr* err) {
    if (!tok_utf8_valid(s, n)) return mgl_err(err, MGL_E_FORMAT, "%s: not valid UTF-8", path);
    JParser p = {.s = s, .n = n, .arena = arena, .path = path, .err = err};
    bool ok = jvalue(&p, root);
    if (ok) {
        jws(&p);
        if (p.pos != p.n) ok = jfail(&p, "trailing data after the JSON value");
    }
    free(p.stack);
    if (!ok) {
        bool oom = strcmp(p.emsg, "out of memory") == 0;
        return mgl_err(err, oom ? MGL_E_NOMEM : MGL_E_FORMAT, "%s: invalid JSON: %s", path, p.emsg);
    }
    return MGL_OK;
}

static bool jstr_eq(const JVal* v, const char* s) {
    return v && v->type == J_STR && v->u.str.len == strlen(s) && memcmp(v->u.str.s, s, v->u.str.len) == 0;
}

static const JVal* jget(const JVal* o, const char* key) {
    if (!o || o->type != J_OBJ) return NULL;
    for (uint32_t i = 0; i < o->n; i++)
        if (jstr_eq(&o->u.items[2 * i], key)) return &o->u.items[2 * i + 1];
    return NULL;
}

/* A member that is absent or null reads as NULL. */
static const JVal* jopt(const JVal* o, const char* key) {
    const JVal* v = jget(o, key);
    return v && v->type != J_NULL ? v : NULL;
}

static bool jbool(const JVal* o, const char* key, bool def) {
    const JVal* v = jopt(o, key);
    return v && v->type == J_BOOL ? v->b : def;
}

static bool jint(const JVal* v, int64_t lo, int64_t hi, int64_t* out) {
    if (!v || v->type != J_NUM) return false;
    double d = v->u.num;
    if (!(d >= (double)lo && d <= (double)hi) || d != floor(d)) return false;
    *out = (int64_t)d;
    return true;
}

/* NUL-terminated copy into the tokenizer's arena. */
static char* jdup(MglTokenizer* t, const JVal* v) {
    if (!v || v->type != J_STR) return NULL;
    return tok_arena_strndup(&t->arena, v->u.str.s, v->u.str.len);
}

/* ---- tokenizer.json sections ----------------------------------------------------- */

static MglStatus bad(MglTokenizer* t, MglErr* err, const char* what) {
    return mgl_err(err, MGL_E_FORMAT, "%s: %s", t->path, what);
}

static MglStatus unsupported(MglTokenizer* t, MglErr* err, const char* section, const JVal* type) {
    char name[64] = "?";
    if (type && type->type == J_STR) snprintf(name, sizeof name, "%.*s", (int)(type->u.str.len > 60 ? 60 : type->u.str.len), type->u.str.s);
    return mgl_err(err, MGL_E_UNSUPPORTED, "%s: %s type \"%s\" is not supported", t->path, section, name);
}

/* Flattens nested Sequence nodes into one list of leaf nodes. */
static MglStatus flatten(MglTokenizer* t, const JVal* node, const char* list_key, GPtrArray* out, int depth, MglErr* err) {
    if (depth > 16) return bad(t, err, "Sequence nested too deeply");
    if (node->type != J_OBJ) return bad(t, err, "pipeline step is not an object");
    const JVal* type = jget(node, "type");
    if (jstr_eq(type, "Sequence")) {
        const JVal* list = jget(node, list_key);
        if (!list || list->type != J_ARR) return mgl_err(err, MGL_E_FORMAT, "%s: Sequence without \"%s\"", t->path, list_key);
        for (uint32_t i = 0; i < list->n; i++) MGL_TRY(flatten(t, &list->u.items[i], list_key, out, depth + 1, err));
        return MGL_OK;
    }
    g_ptr_array_add(out, (gpointer)node);
    return MGL_OK;
}

/* {"String": "x"} pattern; a {"Regex": ...} is returned through *regex. */
static bool pattern_string(const JVal* pat, const JVal** str, const JVal** regex) {
    *str = jopt(pat, "String");
    *regex = jopt(pat, "Regex");
    return (*str && (*str)->type == J_STR) || (*regex && (*regex)->type == J_STR);
}

static MglStatus load_normalizer(MglTokenizer* t, const JVal* root, MglErr* err) {
    const JVal* n = jopt(root, "normalizer");
    if (!n) return MGL_OK;
    GPtrArray* list = g_ptr_array_new();
    MglStatus st = flatten(t, n, "normalizers", list, 0, err);
    if (st == MGL_OK && list->len) {
        t->norm = tok_arena_alloc(&t->arena, list->len * sizeof *t->norm);
        if (!t->norm) st = mgl_err(err, MGL_E_NOMEM, "%s: out of memory", t->path);
    }
    for (guint i = 0; i < list->len && st == MGL_OK; i++) {
        const JVal* o = list->pdata[i];
        const JVal* type = jget(o, "type");
        TokNormOp op = {0};
        if (jstr_eq(type, "Prepend")) {
            const JVal* pre = jget(o, "prepend");
            if (!pre || pre->type != J_STR) { st = bad(t, err, "Prepend normalizer without a string"); break; }
            op.type = NORM_PREPEND;
            op.a = jdup(t, pre);
            op.alen = pre->u.str.len;
        } else if (jstr_eq(type, "Replace")) {
            const JVal *s, *re, *content = jget(o, "content");
            if (!pattern_string(jget(o, "pattern"), &s, &re) || !content || content->type != J_STR) {
                st = bad(t, err, "Replace normalizer needs a pattern and a content");
                break;
            }
            if (!s) { st = mgl_err(err, MGL_E_UNSUPPORTED, "%s: Replace normalizer with a Regex pattern is not supported", t->path); break; }
            op.type = NORM_REPLACE;
            op.a = jdup(t, s);
            op.alen = s->u.str.len;
            op.b = jdup(t, content);
            op.blen = content->u.str.len;
        } else if (jstr_eq(type, "NFC")) op.type = NORM_NFC;
        else if (jstr_eq(type, "NFD")) op.type = NORM_NFD;
        else if (jstr_eq(type, "NFKC")) op.type = NORM_NFKC;
        else if (jstr_eq(type, "NFKD")) op.type = NORM_NFKD;
        else if (jstr_eq(type, "Lowercase")) op.type = NORM_LOWERCASE;
        else if (jstr_eq(type, "Strip")) {
            op.type = NORM_STRIP;
            op.left = jbool(o, "strip_left", true);
            op.right = jbool(o, "strip_right", true);
        } else {
            st = unsupported(t, err, "normalizer", type);
            break;
        }
        if ((op.type == NORM_PREPEND && !op.a) || (op.type == NORM_REPLACE && (!op.a || !op.b))) {
            st = mgl_err(err, MGL_E_NOMEM, "%s: out of memory", t->path);
            break;
        }
        t->norm[t->n_norm++] = op;
    }
    g_ptr_array_free(list, TRUE);
    return st;
}

/* Metaspace replacement char and prepend scheme (new or legacy fields). */
static MglStatus metaspace_fields(MglTokenizer* t, const JVal* o, uint32_t* cp, char repl[8], int* repl_len,
                                  TokPrepend* prepend, MglErr* err) {
    const JVal* r = jget(o, "replacement");
    uint32_t c = 0x2581;
    if (r) {
        if (r->type != J_STR || r->u.str.len == 0) return bad(t, err, "Metaspace replacement is not a character");
        int l = tok_utf8_next(r->u.str.s, r->u.str.len, &c);
        if (l <= 0 || (size_t)l != r->u.str.len) return bad(t, err, "Metaspace replacement must be one character");
    }
    *cp = c;
    *repl_len = g_unichar_to_utf8(c, repl);
    const JVal* ps = jopt(o, "prepend_scheme");
    if (ps) {
        if (jstr_eq(ps, "always")) *prepend = PREPEND_ALWAYS;
        else if (jstr_eq(ps, "first")) *prepend = PREPEND_FIRST;
        else if (jstr_eq(ps, "never")) *prepend = PREPEND_NEVER;
        else return bad(t, err, "Metaspace prepend_scheme must be always, first or never");
    } else {
        *prepend = jbool(o, "add_prefix_space", true) ? PREPEND_ALWAYS : PREPEND_NEVER;
    }
    return MGL_OK;
}

static MglStatus load_pretokenizer(MglTokenizer* t, const JVal* root, MglErr* err) {
    const JVal* n = jopt(root, "pre_tokenizer");
    if (!n) return MGL_OK;
    GPtrArray* list = g_ptr_array_new();
    MglStatus st = flatten(t, n, "pretokenizers", list, 0, err);
    if (st == MGL_OK && list->len) {
        t->pre = tok_arena_alloc(&t->arena, list->len * sizeof *t->pre);
        if (!t->pre) st = mgl_err(err, MGL_E_NOMEM, "%s: out of memory", t->path);
    }
    for (guint i = 0; i < list->len && st == MGL_OK; i++) {
        const JVal* o = list->pdata[i];
        const JVal* type = jget(o, "type");
        TokPreOp op = {0};
        if (jstr_eq(type, "Metaspace")) {
            op.type = PRE_METASPACE;
            st = metaspace_fields(t, o, &op.repl_cp, op.repl, &op.repl_len, &op.prepend, err);
            op.split = jbool(o, "split", true);
        } else if (jstr_eq(type, "ByteLevel")) {
            op.type = PRE_BYTELEVEL;
            op.add_prefix_space = jbool(o, "add_prefix_space", true);
            op.use_regex = jbool(o, "use_regex", true);
        } else if (jstr_eq(type, "Split")) {
            op.type = PRE_SPLIT;
            const JVal *s, *re;
            if (!pattern_string(jget(o, "pattern"), &s, &re)) { st = bad(t, err, "Split pre-tokenizer without a pattern"); break; }
            if (jbool(o, "invert", false)) {
                st = mgl_err(err, MGL_E_UNSUPPORTED, "%s: Split pre-tokenizer with invert=true is not supported", t->path);
                break;
            }
            const JVal* b = jget(o, "behavior");
            if (jstr_eq(b, "Isolated")) op.behavior = SPLIT_ISOLATED;
            else if (jstr_eq(b, "Removed")) op.behavior = SPLIT_REMOVED;
            else if (jstr_eq(b, "MergedWithPrevious")) op.behavior = SPLIT_MERGED_PREV;
            else if (jstr_eq(b, "MergedWithNext")) op.behavior = SPLIT_MERGED_NEXT;
            else if (jstr_eq(b, "Contiguous")) op.behavior = SPLIT_CONTIGUOUS;
            else { st = bad(t, err, "Split pre-tokenizer with an unknown behavior"); break; }
            if (s) {
                op.literal = jdup(t, s);
                op.literal_len = s->u.str.len;
                if (!op.literal) { st = mgl_err(err, MGL_E_NOMEM, "%s: out of memory", t->path); break; }
            } else {
                char* pat = g_strndup(re->u.str.s, re->u.str.len);
                op.regex = tok_regex_from_pattern(pat);
                if (op.regex == TOK_RE_NONE) {
                    st = mgl_err(err, MGL_E_UNSUPPORTED, "%s: Split pre-tokenizer regex is not one this build knows "
                                 "(GPT-2, Llama-3, Qwen2): %.120s", t->path, pat);
                    g_free(pat);
                    break;
                }
                g_free(pat);
            }
        } else {
            st = unsupported(t, err, "pre_tokenizer", type);
            break;
        }
        if (st == MGL_OK) t->pre[t->n_pre++] = op;
    }
    g_ptr_array_free(list, TRUE);
    return st;
}

static MglStatus load_decoder(MglTokenizer* t, const JVal* root, MglErr* err) {
    const JVal* n = jopt(root, "decoder");
    t->dec_kind = DECODER_NONE;
    if (!n) return MGL_OK;
    GPtrArray* list = g_ptr_array_new();
    MglStatus st = flatten(t, n, "decoders", list, 0, err);
    if (st == MGL_OK && list->len == 1 && jstr_eq(jget(list->pdata[0], "type"), "ByteLevel")) {
        t->dec_kind = DECODER_BYTELEVEL;
        g_ptr_array_free(list, TRUE);
        return MGL_OK;
    }
    if (st == MGL_OK && list->len) {
        t->dec = tok_arena_alloc(&t->arena, list->len * sizeof *t->dec);
        if (!t->dec) st = mgl_err(err, MGL_E_NOMEM, "%s: out of memory", t->path);
    }
    bool seen_bf = false, seen_fuse = false;
    int global_strips = 0;
    for (guint i = 0; i < list->len && st == MGL_OK; i++) {
        const JVal* o = list->pdata[i];
        const JVal* type = jget(o, "type");
        TokDecOp op = {0};
        if (jstr_eq(type, "Replace")) {
            const JVal *s, *re, *content = jget(o, "content");
            if (!pattern_string(jget(o, "pattern"), &s, &re) || !content || content->type != J_STR) {
                st = bad(t, err, "Replace decoder needs a pattern and a content");
                break;
            }
            if (!s) { st = mgl_err(err, MGL_E_UNSUPPORTED, "%s: Replace decoder with a Regex pattern is not supported", t->path); break; }
            op.type = DEC_REPLACE;
            op.a = jdup(t, s);
            op.alen = s->u.str.len;
            op.b = jdup(t, content);
            op.blen = content->u.str.len;
            if (!op.a || !op.b) { st = mgl_err(err, MGL_E_NOMEM, "%s: out of memory", t->path); break; }
        } else if (jstr_eq(type, "ByteFallback")) {
            if (seen_bf || seen_fuse) { st = mgl_err(err, MGL_E_UNSUPPORTED, "%s: ByteFallback decoder after Fuse or twice is not supported", t->path); break; }
            op.type = DEC_BYTEFALLBACK;
            seen_bf = true;
        } else if (jstr_eq(type, "Fuse")) {
            op.type = DEC_FUSE;
            seen_fuse = true;   /* a second Fuse is a no-op */
        } else if (jstr_eq(type, "Strip")) {
            op.type = DEC_STRIP;
            const JVal* c = jget(o, "content");
            int64_t a = 0, b = 0;
            if (!c || c->type != J_STR || tok_utf8_next(c->u.str.s, c->u.str.len, &op.content) != (int)c->u.str.len ||
                !jint(jget(o, "start"), 0, 1 << 20, &a) || !jint(jget(o, "stop"), 0, 1 << 20, &b)) {
                st = bad(t, err, "Strip decoder needs a one-character content and start/stop counts");
                break;
            }
            op.start = (int)a;
            op.stop = (int)b;
            if (seen_fuse) global_strips++;
        } else if (jstr_eq(type, "Metaspace")) {
            op.type = DEC_METASPACE;
            char repl[8];
            int rl;
            TokPrepend pp;
            st = metaspace_fields(t, o, &op.content, repl, &rl, &pp, err);
            op.prepend_first = pp != PREPEND_NEVER;
        } else if (jstr_eq(type, "ByteLevel")) {
            st = mgl_err(err, MGL_E_UNSUPPORTED, "%s: ByteLevel decoder combined with other decoders is not supported", t->path);
            break;
        } else {
            st = unsupported(t, err, "decoder", type);
            break;
        }
        if (st != MGL_OK) break;
        if (seen_fuse && op.type != DEC_FUSE && op.type != DEC_STRIP) {
            st = mgl_err(err, MGL_E_UNSUPPORTED, "%s: only Strip may follow Fuse in the decoder chain", t->path);
            break;
        }
        if (global_strips > 1) {
            st = mgl_err(err, MGL_E_UNSUPPORTED, "%s: more than one Strip after Fuse is not supported", t->path);
            break;
        }
        t->dec[t->n_dec++] = op;
    }
    if (st == MGL_OK) t->dec_kind = DECODER_CHAIN;
    g_ptr_array_free(list, TRUE);
    return st;
}

static MglStatus load_added(MglTokenizer* t, const JVal* root, MglErr* err) {
    const JVal* a = jopt(root, "added_tokens");
    if (!a) return MGL_OK;
    if (a->type != J_ARR) return bad(t, err, "added_tokens is not an array");
    for (uint32_t i = 0; i < a->n; i++) {
        const JVal* o = &a->u.items[i];
        const JVal* c = jget(o, "content");
        int64_t id;
        if (o->type != J_OBJ || !c || c->type != J_STR || !jint(jget(o, "id"), 0, (1 << 24) - 1, &id))
            return mgl_err(err, MGL_E_FORMAT, "%s: added_tokens[%u] needs an id and a content", t->path, i);
        /* HF ignores the stored id: a content already in the model vocabulary
         * takes that id, a repeated content keeps its first id, anything else
         * gets the next id after the model vocabulary and earlier added tokens
         * (AddedVocabulary::add_tokens). Consistent files give the same ids. */
        int32_t vid = tok_strmap_get(&t->vocab, c->u.str.s, c->u.str.len);
        for (size_t k = 0; vid < 0 && k < t->n_added; k++)
            if (t->added[k].len == c->u.str.len && memcmp(t->added[k].content, c->u.str.s, c->u.str.len) == 0)
                vid = t->added[k].id;
        if (vid < 0) {
            int64_t vsize = (int64_t)t->vocab.n, max_added = -1;
            for (size_t k = 0; k < t->n_added; k++)
                if (t->added[k].id > max_added) max_added = t->added[k].id;
            vid = (int32_t)(max_added < 0 ? vsize : (max_added >= vsize || vsize == 0) ? max_added + 1 : vsize);
        }
        id = vid;
        TokAdded ad = {
            .content = (char*)c->u.str.s, .len = c->u.str.len, .id = (int32_t)id,
            .special = jbool(o, "special", false), .lstrip = jbool(o, "lstrip", false),
            .rstrip = jbool(o, "rstrip", false), .single_word = jbool(o, "single_word", false),
            .normalized = jbool(o, "normalized", true),
        };
        MGL_TRY(tok_add_added(t, &ad, err));
    }
    return MGL_OK;
}

static MglStatus load_model(MglTokenizer* t, const JVal* root, MglErr* err) {
    const JVal* m = jopt(root, "model");
    if (!m || m->type != J_OBJ) return bad(t, err, "no \"model\" object");
    const JVal* type = jopt(m, "type");
    const JVal* vocab = jget(m, "vocab");
    const JVal* merges = jget(m, "merges");
    if (type && !jstr_eq(type, "BPE")) return unsupported(t, err, "model", type);
    if (!vocab || vocab->type != J_OBJ) return bad(t, err, "model.vocab is not an object");
    if (!merges || merges->type != J_ARR) return bad(t, err, "model.merges is not an array");

    int64_t max_id = -1;
    for (uint32_t i = 0; i < vocab->n; i++) {
        int64_t id;
        if (!jint(&vocab->u.items[2 * i + 1], 0, (1 << 24) - 1, &id))
            return mgl_err(err, MGL_E_FORMAT, "%s: model.vocab entry %u has a bad id", t->path, i);
        if (id > max_id) max_id = id;
    }
    /* tables are sized by the largest id: a sparse vocabulary (a few entries
     * with huge ids) would cost memory out of all proportion to the file.
     * Real vocabularies are dense; added tokens sit just above them. */
    if (max_id + 1 > 2 * (int64_t)vocab->n + 65536)
        return mgl_err(err, MGL_E_FORMAT, "%s: model.vocab has %u entries but ids up to %lld (too sparse)", t->path,
                       vocab->n, (long long)max_id);
    MGL_TRY(tok_alloc_vocab(t, (int32_t)(max_id + 1), err));
    if (!tok_strmap_init(&t->vocab, vocab->n)) return mgl_err(err, MGL_E_NOMEM, "%s: out of memory", t->path);
    for (uint32_t i = 0; i < vocab->n; i++) {
        const JVal* k = &vocab->u.items[2 * i];
        int64_t id = 0;
        jint(&vocab->u.items[2 * i + 1], 0, (1 << 24) - 1, &id);
        MGL_TRY(tok_set_piece(t, (int32_t)id, k->u.str.s, k->u.str.len, err));
        if (!tok_strmap_put(&t->vocab, t->pieces[id], k->u.str.len, (int32_t)id))
            return mgl_err(err, MGL_E_NOMEM, "%s: out of memory", t->path);
    }

    t->byte_fallback = jbool(m, "byte_fallback", false);
    t->fuse_unk = jbool(m, "fuse_unk", false);
    t->ignore_merges = jbool(m, "ignore_merges", false);
    const JVal* unk = jopt(m, "unk_token");
    if (unk && unk->type == J_STR) t->unk_id = tok_strmap_get(&t->vocab, unk->u.str.s, unk->u.str.len);
    const JVal* cp = jopt(m, "continuing_subword_prefix");
    if (cp && cp->type == J_STR) t->cont_prefix = jdup(t, cp);
    const JVal* ew = jopt(m, "end_of_word_suffix");
    if (ew && ew->type == J_STR) t->eow_suffix = jdup(t, ew);
    for (int b = 0; b < 256; b++) {
        char key[8];
        snprintf(key, sizeof key, "<0x%02X>", b);
        t->byte_ids[b] = tok_strmap_get(&t->vocab, key, 6);
    }

    if (!tok_pairmap_init(&t->merges, merges->n)) return mgl_err(err, MGL_E_NOMEM, "%s: out of memory", t->path);
    GString* cat = g_string_new(NULL);
    size_t plen = t->cont_prefix ? strlen(t->cont_prefix) : 0;
    MglStatus st = MGL_OK;
    for (uint32_t i = 0; i < merges->n && st == MGL_OK; i++) {
        const JVal* e = &merges->u.items[i];
        const char *a, *b;
        size_t al, bl;
        if (e->type == J_STR) {
            /* "a b": split at the first space, as tokenizers does */
            const char* sp = memchr(e->u.str.s, ' ', e->u.str.len);
            if (!sp) { st = mgl_err(err, MGL_E_FORMAT, "%s: merge %u has no space", t->path, i); break; }
            a = e->u.str.s;
            al = (size_t)(sp - a);
            b = sp + 1;
            bl = e->u.str.len - al - 1;
        } else if (e->type == J_ARR && e->n == 2 && e->u.items[0].type == J_STR && e->u.items[1].type == J_STR) {
            a = e->u.items[0].u.str.s;
            al = e->u.items[0].u.str.len;
            b = e->u.items[1].u.str.s;
            bl = e->u.items[1].u.str.len;
        } else {
            st = mgl_err(err, MGL_E_FORMAT, "%s: merge %u is neither \"a b\" nor [a, b]", t->path, i);
            break;
        }
        int32_t ia = tok_strmap_get(&t->vocab, a, al), ib = tok_strmap_get(&t->vocab, b, bl);
        g_string_truncate(cat, 0);
        g_string_append_len(cat, a, (gssize)al);
        if (plen && bl >= plen && memcmp(b, t->cont_prefix, plen) == 0) g_string_append_len(cat, b + plen, (gssize)(bl - plen));
        else g_string_append_len(cat, b, (gssize)bl);
        int32_t im = tok_strmap_get(&t->vocab, cat->str, cat->len);
        if (ia < 0 || ib < 0 || im < 0) {
            st = mgl_err(err, MGL_E_FORMAT, "%s: merge %u uses a token that is not in the vocabulary", t->path, i);
            break;
        }
        if (!tok_pairmap_put(&t->merges, ia, ib, i, im)) st = mgl_err(err, MGL_E_NOMEM, "%s: out of memory", t->path);
    }
    g_string_free(cat, TRUE);
    return st;
}

static MglStatus load_post(MglTokenizer* t, const JVal* root, MglErr* err) {
    const JVal* n = jopt(root, "post_processor");
    if (!n) return MGL_OK;
    GPtrArray* list = g_ptr_array_new();
    MglStatus st = flatten(t, n, "processors", list, 0, err);
    GArray* pre = g_array_new(FALSE, FALSE, sizeof(int32_t));
    GArray* post = g_array_new(FALSE, FALSE, sizeof(int32_t));
    for (guint i = 0; i < list->len && st == MGL_OK; i++) {
        const JVal* o = list->pdata[i];
        const JVal* type = jget(o, "type");
        if (jstr_eq(type, "ByteLevel")) continue;   /* only trims offsets */
        if (jstr_eq(type, "TemplateProcessing")) {
            const JVal* single = jget(o, "single");
            const JVal* specials = jget(o, "special_tokens");
            if (!single || single->type != J_ARR) { st = bad(t, err, "TemplateProcessing without \"single\""); break; }
            bool after = false;
            for (uint32_t k = 0; k < single->n && st == MGL_OK; k++) {
                const JVal* it = &single->u.items[k];
                const JVal* sp = jget(it, "SpecialToken");
                if (jget(it, "Sequence")) { after = true; continue; }
                if (!sp) { st = bad(t, err, "TemplateProcessing item is neither Sequence nor SpecialToken"); break; }
                const JVal* name = jget(sp, "id");
                const JVal* def = NULL;
                if (name && name->type == J_STR && specials && specials->type == J_OBJ)
                    for (uint32_t q = 0; q < specials->n; q++)
                        if (specials->u.items[2 * q].u.str.len == name->u.str.len &&
                            memcmp(specials->u.items[2 * q].u.str.s, name->u.str.s, name->u.str.len) == 0)
                            def = &specials->u.items[2 * q + 1];
                const JVal* ids = jget(def, "ids");
                if (!ids || ids->type != J_ARR) { st = bad(t, err, "TemplateProcessing special token without ids"); break; }
                for (uint32_t q = 0; q < ids->n; q++) {
                    int64_t v;
                    if (!jint(&ids->u.items[q], 0, (1 << 24) - 1, &v)) { st = bad(t, err, "TemplateProcessing id out of range"); break; }
                    int32_t id = (int32_t)v;
                    g_array_append_val(after ? post : pre, id);
                }
            }
        } else if (jstr_eq(type, "BertProcessing") || jstr_eq(type, "RobertaProcessing")) {
            const JVal* cls = jget(o, "cls");
            const JVal* sep = jget(o, "sep");
            int64_t c, s;
            if (!cls || cls->type != J_ARR || cls->n != 2 || !jint(&cls->u.items[1], 0, (1 << 24) - 1, &c) ||
                !sep || sep->type != J_ARR || sep->n != 2 || !jint(&sep->u.items[1], 0, (1 << 24) - 1, &s)) {
                st = bad(t, err, "Bert/RobertaProcessing needs cls and sep");
                break;
            }
            int32_t ci = (int32_t)c, si = (int32_t)s;
            g_array_prepend_val(pre, ci);
            g_array_append_val(post, si);
        } else {
            st = unsupported(t, err, "post_processor", type);
        }
    }
    if (st == MGL_OK) {
        t->n_post_pre = pre->len;
        t->n_post_post = post->len;
        t->post_pre = tok_arena_alloc(&t->arena, (pre->len + 1) * sizeof(int32_t));
        t->post_post = tok_arena_alloc(&t->arena, (post->len + 1) * sizeof(int32_t));
        if (!t->post_pre || !t->post_post) st = mgl_err(err, MGL_E_NOMEM, "%s: out of memory", t->path);
        else {
            if (pre->len) memcpy(t->post_pre, pre->data, pre->len * sizeof(int32_t));
            if (post->len) memcpy(t->post_post, post->data, post->len * sizeof(int32_t));
            /* Defaults for bos/eos when tokenizer_config.json does not name them. */
            if (pre->len) t->bos = g_array_index(pre, int32_t, 0);
            if (post->len) t->eos = g_array_index(post, int32_t, post->len - 1);
        }
    }
    g_array_free(pre, TRUE);
    g_array_free(post, TRUE);
    g_ptr_array_free(list, TRUE);
    return st;
}

MglStatus tok_load_hf_json(MglTokenizer* t, const char* path, MglErr* err) {
    char* data = NULL;
    size_t len = 0;
    MGL_TRY(mgl_read_file(path, (size_t)512 << 20, &data, &len, err));
    TokArena dom = {0};
    JVal root;
    MglStatus st = jparse(path, data, len, &dom, &root, err);
    if (st == MGL_OK && root.type != J_OBJ) st = bad(t, err, "top-level JSON value is not an object");
    if (st == MGL_OK) st = load_model(t, &root, err);
    if (st == MGL_OK) st = load_added(t, &root, err);
    if (st == MGL_OK) st = load_normalizer(t, &root, err);
    if (st == MGL_OK) st = tok_finish_added(t, err);
    if (st == MGL_OK) st = load_pretokenizer(t, &root, err);
    if (st == MGL_OK) st = load_post(t, &root, err);
    if (st == MGL_OK) st = load_decoder(t, &root, err);
    /* Post-processor ids must name real tokens. */
    for (size_t i = 0; st == MGL_OK && i < t->n_post_pre + t->n_post_post; i++) {
        int32_t id = i < t->n_post_pre ? t->post_pre[i] : t->post_post[i - t->n_post_pre];
        if (id >= t->n_vocab || !t->pieces[id]) st = mgl_err(err, MGL_E_FORMAT, "%s: post_processor id %d is not in the vocabulary", path, id);
    }
    tok_arena_clear(&dom);
    free(data);
    return st;
}

/* ---- tokenizer_config.json -------------------------------------------------------- */

static char* token_name(const JVal* v) {
    if (v && v->type == J_OBJ) v = jget(v, "content");
    if (!v || v->type != J_STR) return NULL;
    return g_strndup(v->u.str.s, v->u.str.len);
}

MglStatus tok_read_config(const char* path, TokConfig* cfg, MglErr* err) {
    memset(cfg, 0, sizeof *cfg);
    if (!g_file_test(path, G_FILE_TEST_IS_REGULAR)) return MGL_OK;
    char* data = NULL;
    size_t len = 0;
    MGL_TRY(mgl_read_file(path, (size_t)64 << 20, &data, &len, err));
    TokArena dom = {0};
    JVal root;
    MglStatus st = jparse(path, data, len, &dom, &root, err);
    if (st == MGL_OK && root.type != J_OBJ) st = mgl_err(err, MGL_E_FORMAT, "%s: top-level JSON value is not an object", path);
    if (st == MGL_OK) {
        const JVal* v;
        if ((v = jopt(&root, "add_bos_token")) && v->type == J_BOOL) { cfg->has_add_bos = true; cfg->add_bos = v->b; }
        if ((v = jopt(&root, "add_eos_token")) && v->type == J_BOOL) { cfg->has_add_eos = true; cfg->add_eos = v->b; }
        cfg->bos_name = token_name(jopt(&root, "bos_token"));
        cfg->eos_name = token_name(jopt(&root, "eos_token"));
        const JVal* ad = jopt(&root, "added_tokens_decoder");
        if (ad && ad->type == J_OBJ && ad->n) {
            cfg->added = g_new0(TokAdded, ad->n);
            for (uint32_t i = 0; i < ad->n; i++) {
                const JVal* k = &ad->u.items[2 * i];
                const JVal* o = &ad->u.items[2 * i + 1];
                char* ks = g_strndup(k->u.str.s, k->u.str.len);
                char* endp = NULL;
                long id = strtol(ks, &endp, 10);
                bool id_ok = ks[0] && endp && *endp == 0 && id >= 0 && id < (1 << 24);
                g_free(ks);
                const JVal* c = jget(o, "content");
                if (!id_ok || !c || c->type != J_STR || c->u.str.len == 0) {
                    st = mgl_err(err, MGL_E_FORMAT, "%s: added_tokens_decoder entry %u is malformed", path, i);
                    break;
                }
                TokAdded* a = &cfg->added[cfg->n_added++];
                a->id = (int32_t)id;
                a->content = g_strndup(c->u.str.s, c->u.str.len);
                a->len = c->u.str.len;
                a->special = jbool(o, "special", false);
                a->lstrip = jbool(o, "lstrip", false);
                a->rstrip = jbool(o, "rstrip", false);
                a->single_word = jbool(o, "single_word", false);
                a->normalized = jbool(o, "normalized", false);
            }
        }
    }
    tok_arena_clear(&dom);
    free(data);
    if (st != MGL_OK) tok_config_clear(cfg);
    return st;
}

void tok_config_clear(TokConfig* cfg) {
    g_free(cfg->bos_name);
    g_free(cfg->eos_name);
    for (size_t i = 0; i < cfg->n_added; i++) g_free(cfg->added[i].content);
    g_free(cfg->added);
    memset(cfg, 0, sizeof *cfg);
}
