/* tok-jdom.c: the strict JSON parser behind tokenizer.json loading: a DOM in
 * the tokenizer's arena, strings pointing into the document, numbers as
 * doubles; RFC 8259, depth-limited (MGL_JSON_MAX_DEPTH) and bounds-checked.
 * A 9 MB tokenizer.json parses in tens of milliseconds. */
#include "tok-internal.h"
#include "mgl-json.h" /* MGL_JSON_MAX_DEPTH: one nesting limit for every JSON the project reads */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- JSON DOM ------------------------------------------------------------ */

typedef struct {
    const char* s;
    size_t n, pos;
    TokArena* arena;
    JVal* stack;
    size_t sn, scap;
    int depth;
    const char* path;
    MglErr* err;
    char emsg[160];
} JParser;

static bool jfail(JParser* p, const char* what) {
    if (!p->emsg[0]) snprintf(p->emsg, sizeof p->emsg, "%s at byte %zu", what, p->pos);
    return false;
}

static void jws(JParser* p) {
    while (p->pos < p->n) {
        char c = p->s[p->pos];
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
            p->pos++;
        else
            break;
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
        if (c != '\\') {
            d[o++] = c;
            continue;
        }
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
            memcpy(d + o, b, (size_t)l); /* \uXXXX is 6 bytes: room for up to 4 */
            o += (size_t)l;
            break;
        }
        default: return jfail(p, "bad escape");
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
    if (p->s[p->pos] == '0')
        p->pos++;
    else if (p->s[p->pos] >= '1' && p->s[p->pos] <= '9')
        while (p->pos < p->n && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') p->pos++;
    else
        return jfail(p, "bad number");
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
    out->u.num = g_ascii_strtod(buf, NULL); /* not locale-dependent */
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
            if (p->s[p->pos] == ',') {
                p->pos++;
                continue;
            }
            if (p->s[p->pos] == close) {
                p->pos++;
                break;
            }
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
    case 't':
        out->type = J_BOOL;
        out->b = true;
        return jlit(p, "true");
    case 'f':
        out->type = J_BOOL;
        out->b = false;
        return jlit(p, "false");
    case 'n': out->type = J_NULL; return jlit(p, "null");
    default:
        if (c == '-' || (c >= '0' && c <= '9')) return jnumber(p, out);
        return jfail(p, "unexpected character");
    }
}

/* Parses a whole document; strings may point into `s`, which must outlive the DOM. */
MglStatus tok_jparse(const char* path, const char* s, size_t n, TokArena* arena, JVal* root, MglErr* err) {
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

bool tok_jstr_eq(const JVal* v, const char* s) {
    return v && v->type == J_STR && v->u.str.len == strlen(s) && memcmp(v->u.str.s, s, v->u.str.len) == 0;
}

const JVal* tok_jget(const JVal* o, const char* key) {
    if (!o || o->type != J_OBJ) return NULL;
    for (uint32_t i = 0; i < o->n; i++)
        if (tok_jstr_eq(&o->u.items[2 * i], key)) return &o->u.items[2 * i + 1];
    return NULL;
}

/* A member that is absent or null reads as NULL. */
const JVal* tok_jopt(const JVal* o, const char* key) {
    const JVal* v = tok_jget(o, key);
    return v && v->type != J_NULL ? v : NULL;
}

bool tok_jbool(const JVal* o, const char* key, bool def) {
    const JVal* v = tok_jopt(o, key);
    return v && v->type == J_BOOL ? v->b : def;
}

bool tok_jint(const JVal* v, int64_t lo, int64_t hi, int64_t* out) {
    if (!v || v->type != J_NUM) return false;
    double d = v->u.num;
    if (!(d >= (double)lo && d <= (double)hi) || d != floor(d)) return false;
    *out = (int64_t)d;
    return true;
}

/* NUL-terminated copy into the tokenizer's arena. */
char* tok_jdup(MglTokenizer* t, const JVal* v) {
    if (!v || v->type != J_STR) return NULL;
    return tok_arena_strndup(&t->arena, v->u.str.s, v->u.str.len);
}
