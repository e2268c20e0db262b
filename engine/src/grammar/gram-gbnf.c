/* gram-gbnf.c: the grammar notation (docs/structured-output.md) -> GRules.
 *
 *   name ::= alternative | alternative ...      (a rule; "root" is where matching starts)
 *   "literal"  [a-z0-9_]  [^"\\]  .  name  ( ... )  followed by  *  +  ?  {m}  {m,}  {m,n}
 *   # comment to the end of the line
 *
 * A rule's body runs until the next "name ::=" or the end of the text, so it
 * may span lines. Literals and classes are Unicode text: classes range over
 * code points and are compiled to UTF-8 byte sequences; repetition becomes
 * generated rules (x* = S where S ::= x S | ε; x{0,n} = a chain of n
 * optional rules). At the end the rules are checked: every rule used is
 * defined, each can finish (matches some finite text), and none is left
 * recursive (directly or through rules that can match nothing), which would
 * make the matcher's expansion endless. */
#include "grammar/mgl-grammar-internal.h"

#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char* name;
    GPtrArray* alts; /* GArray of GElem (no GE_END) */
    bool defined;
    int used_line; /* first reference, for "used but never defined" */
} BRule;

typedef struct {
    const char* s;
    size_t n, i;
    int line;
    const char* what;
    MglErr* err;
    bool failed;
    GPtrArray* rules;        /* BRule* */
    GHashTable* by_name;     /* name -> index + 1 */
    GArray* sets;            /* GByteSet */
    GHashTable* set_ids;     /* GBytes -> index + 1 */
    GHashTable* class_rules; /* class key -> element (packed) + 1 */
    size_t n_elems;          /* budget */
    int nest;
    uint32_t gen_count;
    /* what the last parse_sequence held when it was one atom of one element
     * with its repetition (not yet expanded): a parenthesised group of that
     * one alternative stands for the same atom and repetition */
    bool one_atom;
    GElem atom;
    long atom_min, atom_max;
} P;

static void brule_free(gpointer p) {
    BRule* r = p;
    g_free(r->name);
    g_ptr_array_unref(r->alts);
    g_free(r);
}

static bool fail(P* p, const char* fmt, ...) G_GNUC_PRINTF(2, 3);
static bool fail(P* p, const char* fmt, ...) {
    if (p->failed) return false;
    p->failed = true;
    char buf[400];
    va_list ap;
    va_start(ap, fmt);
    g_vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    mgl_err(p->err, MGL_E_INVALID, "%s: line %d: %s", p->what, p->line, buf);
    return false;
}

/* ---- building ----------------------------------------------------------- */

static uint32_t rule_new(P* p, const char* name) {
    BRule* r = g_new0(BRule, 1);
    r->name = g_strdup(name);
    r->alts = g_ptr_array_new_with_free_func((GDestroyNotify)g_array_unref);
    g_ptr_array_add(p->rules, r);
    uint32_t id = p->rules->len - 1;
    g_hash_table_insert(p->by_name, r->name, GUINT_TO_POINTER(id + 1));
    return id;
}

static uint32_t rule_generated(P* p, const char* base) {
    char name[96];
    g_snprintf(name, sizeof name, "%.60s#%u", base ? base : "g", ++p->gen_count);
    return rule_new(p, name);
}

static BRule* rule_at(P* p, uint32_t id) { return g_ptr_array_index(p->rules, id); }

static bool budget(P* p, size_t add) {
    p->n_elems += add;
    if (p->n_elems > GRAM_MAX_ELEMS || p->rules->len > GRAM_MAX_RULES)
        return fail(p, "the grammar expands to more than %u elements or %u rules (large repetition counts?)",
                    GRAM_MAX_ELEMS, GRAM_MAX_RULES);
    return true;
}

static GArray* alt_new(void) { return g_array_new(FALSE, FALSE, sizeof(GElem)); }

static bool push(P* p, GArray* seq, uint32_t type, uint32_t val) {
    if (!budget(p, 1)) return false;
    GElem e = {type, val};
    g_array_append_val(seq, e);
    return true;
}

static uint32_t set_id(P* p, const GByteSet* s) {
    GBytes* key = g_bytes_new(s, sizeof *s);
    gpointer v = g_hash_table_lookup(p->set_ids, key);
    if (v) {
        g_bytes_unref(key);
        return GPOINTER_TO_UINT(v) - 1;
    }
    g_array_append_val(p->sets, *s);
    g_hash_table_insert(p->set_ids, key, GUINT_TO_POINTER(p->sets->len));
    return p->sets->len - 1;
}

static bool push_byte(P* p, GArray* seq, uint8_t b) {
    GByteSet s = {{0}};
    s.w[b >> 5] |= 1u << (b & 31);
    return push(p, seq, GE_BYTES, set_id(p, &s));
}

/* ---- lexing ------------------------------------------------------------- */

static int peek(P* p) { return p->i < p->n ? (unsigned char)p->s[p->i] : -1; }

static void skip_ws(P* p) {
    while (p->i < p->n) {
        char c = p->s[p->i];
        if (c == '\n') {
            p->line++;
            p->i++;
        } else if (c == ' ' || c == '\t' || c == '\r') {
            p->i++;
        } else if (c == '#') {
            while (p->i < p->n && p->s[p->i] != '\n') p->i++;
        } else {
            break;
        }
    }
}

static bool is_name_char(int c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

/* Length of the rule name at i (0 if none). */
static size_t name_len_at(const P* p, size_t i) {
    size_t k = i;
    while (k < p->n && is_name_char((unsigned char)p->s[k])) k++;
    return k - i;
}

/* A "name ::=" starts at the current position (after skip_ws). */
static bool at_rule_start(const P* p) {
    size_t k = name_len_at(p, p->i);
    if (!k) return false;
    size_t j = p->i + k;
    while (j < p->n && (p->s[j] == ' ' || p->s[j] == '\t' || p->s[j] == '\r' || p->s[j] == '\n')) j++;
    return j + 3 <= p->n && memcmp(p->s + j, "::=", 3) == 0;
}

static int hexv(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* One character of a literal or class (escape or UTF-8), as a code point; -1 on error. */
static int32_t read_char(P* p) {
    if (p->i >= p->n) return fail(p, "unexpected end of text"), -1;
    unsigned char c = (unsigned char)p->s[p->i];
    if (c == '\\') {
        p->i++;
        if (p->i >= p->n) return fail(p, "unexpected end of text after '\\'"), -1;
        char e = p->s[p->i++];
        int nhex = 0;
        switch (e) {
        case 'n': return '\n';
        case 'r': return '\r';
        case 't': return '\t';
        case 'f': return '\f';
        case 'b': return '\b';
        case '0': return 0;
        case '\\':
        case '"':
        case '\'':
        case ']':
        case '[':
        case '-':
        case '^':
        case '/': return (unsigned char)e;
        case 'x': nhex = 2; break;
        case 'u': nhex = 4; break;
        case 'U': nhex = 8; break;
        default:
            if ((unsigned char)e >= 0x20 && (unsigned char)e < 0x7f) return fail(p, "unknown escape '\\%c'", e), -1;
            return fail(p, "unknown escape (byte 0x%02x after '\\')", (unsigned char)e), -1;
        }
        uint32_t v = 0;
        for (int k = 0; k < nhex; k++) {
            int h = p->i < p->n ? hexv((unsigned char)p->s[p->i]) : -1;
            if (h < 0) return fail(p, "'\\%c' needs %d hexadecimal digits", e, nhex), -1;
            v = v * 16 + (uint32_t)h;
            p->i++;
        }
        if (v > 0x10FFFF) return fail(p, "code point U+%X is above U+10FFFF", v), -1;
        if (v >= 0xD800 && v <= 0xDFFF) return fail(p, "code point U+%04X is a surrogate", v), -1;
        return (int32_t)v;
    }
    if (c < 0x80) {
        p->i++;
        return c;
    }
    gunichar u = g_utf8_get_char_validated(p->s + p->i, (gssize)(p->n - p->i));
    if (u == (gunichar)-1 || u == (gunichar)-2) return fail(p, "invalid UTF-8 (byte 0x%02x)", c), -1;
    p->i = (size_t)(g_utf8_next_char(p->s + p->i) - p->s);
    return (int32_t)u;
}

static int utf8_encode(uint32_t cp, uint8_t* o) {
    if (cp < 0x80) {
        o[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (uint8_t)(0xC0 | (cp >> 6));
        o[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (uint8_t)(0xE0 | (cp >> 12));
        o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | (cp >> 18));
    o[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* ---- character classes -> UTF-8 byte sequences -------------------------- */

typedef struct {
    uint32_t lo, hi;
} CpRange;

typedef struct {
    GByteSet one; /* one-byte characters */
    bool any_one;
    GArray* multi; /* sequences: uint8_t n, then n (lo, hi) byte pairs, packed as 9 bytes */
} ClassSeqs;

static void seq_emit(ClassSeqs* cs, uint32_t a, uint32_t b, int n) {
    uint8_t ea[4], eb[4];
    utf8_encode(a, ea);
    utf8_encode(b, eb);
    if (n == 1) {
        for (uint32_t x = ea[0]; x <= eb[0]; x++) cs->one.w[x >> 5] |= 1u << (x & 31);
        cs->any_one = true;
        return;
    }
    if (n < 2 || n > 4) return;
    uint8_t rec[9] = {(uint8_t)n};
    for (int k = 0; k < n; k++) {
        rec[1 + 2 * k] = ea[k];
        rec[2 + 2 * k] = eb[k];
    }
    g_array_append_vals(cs->multi, rec, 9);
}

/* Splits [a, b] (all of one encoded length n) until each piece is a
 * product of byte ranges, one range per byte position. */
static void seq_split(ClassSeqs* cs, uint32_t a, uint32_t b, int n) {
    for (int i = 1; i < n; i++) {
        uint32_t m = (1u << (6 * i)) - 1;
        if ((a & ~m) != (b & ~m)) {
            if ((a & m) != 0) {
                seq_split(cs, a, a | m, n);
                seq_split(cs, (a | m) + 1, b, n);
                return;
            }
            if ((b & m) != m) {
                seq_split(cs, a, (b & ~m) - 1, n);
                seq_split(cs, b & ~m, b, n);
                return;
            }
        }
    }
    seq_emit(cs, a, b, n);
}

static void class_to_seqs(const CpRange* r, size_t nr, ClassSeqs* cs) {
    static const uint32_t lim[4] = {0x7F, 0x7FF, 0xFFFF, 0x10FFFF};
    for (size_t k = 0; k < nr; k++)
        for (int len = 1; len <= 4; len++) {
            uint32_t lo = len == 1 ? 0 : lim[len - 2] + 1, hi = lim[len - 1];
            uint32_t a = r[k].lo > lo ? r[k].lo : lo, b = r[k].hi < hi ? r[k].hi : hi;
            if (a <= b) seq_split(cs, a, b, len);
        }
}

static int cmp_range(const void* x, const void* y) {
    const CpRange *a = x, *b = y;
    return a->lo < b->lo ? -1 : a->lo > b->lo;
}

/* Sorted, merged, negated when asked, without surrogates. */
static GArray* class_normalize(GArray* in, bool neg) {
    g_array_sort(in, cmp_range);
    GArray* m = g_array_new(FALSE, FALSE, sizeof(CpRange));
    for (guint k = 0; k < in->len; k++) {
        CpRange c = g_array_index(in, CpRange, k);
        if (m->len) {
            CpRange* last = &g_array_index(m, CpRange, m->len - 1);
            if (c.lo <= last->hi + 1) {
                if (c.hi > last->hi) last->hi = c.hi;
                continue;
            }
        }
        g_array_append_val(m, c);
    }
    if (neg) {
        GArray* n = g_array_new(FALSE, FALSE, sizeof(CpRange));
        uint32_t next = 0;
        bool done = false;
        for (guint k = 0; k < m->len; k++) {
            CpRange c = g_array_index(m, CpRange, k);
            if (c.lo > next) {
                CpRange g = {next, c.lo - 1};
                g_array_append_val(n, g);
            }
            if (c.hi >= 0x10FFFF) {
                done = true;
                break;
            }
            next = c.hi + 1;
        }
        if (!done) {
            CpRange g = {next, 0x10FFFF};
            g_array_append_val(n, g);
        }
        g_array_unref(m);
        m = n;
    }
    /* cut the surrogates out */
    GArray* o = g_array_new(FALSE, FALSE, sizeof(CpRange));
    for (guint k = 0; k < m->len; k++) {
        CpRange c = g_array_index(m, CpRange, k);
        if (c.hi < 0xD800 || c.lo > 0xDFFF) {
            g_array_append_val(o, c);
            continue;
        }
        if (c.lo < 0xD800) {
            CpRange a = {c.lo, 0xD7FF};
            g_array_append_val(o, a);
        }
        if (c.hi > 0xDFFF) {
            CpRange b = {0xE000, c.hi};
            g_array_append_val(o, b);
        }
    }
    g_array_unref(m);
    return o;
}

/* Appends the element matching one character of the class: a byte set when
 * every character is one byte, else a reference to a (cached) rule with one
 * alternative per UTF-8 byte-range sequence. */
static bool emit_class(P* p, GArray* seq, GArray* ranges, bool neg, const char* base) {
    GArray* r = class_normalize(ranges, neg);
    if (!r->len) {
        g_array_unref(r);
        return fail(p, "the character class matches no character");
    }
    GString* key = g_string_new(NULL);
    for (guint k = 0; k < r->len; k++)
        g_string_append_printf(key, "%x-%x,", g_array_index(r, CpRange, k).lo, g_array_index(r, CpRange, k).hi);
    gpointer cached = g_hash_table_lookup(p->class_rules, key->str);
    if (cached) {
        g_array_unref(r);
        uint64_t v = (uint64_t)GPOINTER_TO_SIZE(cached) - 1;
        g_string_free(key, TRUE);
        return push(p, seq, (uint32_t)(v >> 32), (uint32_t)v);
    }
    ClassSeqs cs = {.multi = g_array_new(FALSE, FALSE, 1)};
    class_to_seqs((const CpRange*)r->data, r->len, &cs);
    g_array_unref(r);
    bool ok;
    uint32_t type, val;
    if (!cs.multi->len) {
        type = GE_BYTES;
        val = set_id(p, &cs.one);
        ok = push(p, seq, type, val);
    } else {
        uint32_t rid = rule_generated(p, base);
        BRule* rule = rule_at(p, rid);
        rule->defined = true;
        ok = true;
        if (cs.any_one) {
            GArray* a = alt_new();
            g_ptr_array_add(rule->alts, a);
            ok = push(p, a, GE_BYTES, set_id(p, &cs.one));
        }
        for (guint off = 0; ok && off < cs.multi->len; off += 9) {
            const uint8_t* rec = (const uint8_t*)cs.multi->data + off;
            GArray* a = alt_new();
            g_ptr_array_add(rule->alts, a);
            for (int k = 0; k < rec[0] && ok; k++) {
                GByteSet s = {{0}};
                for (uint32_t x = rec[1 + 2 * k]; x <= rec[2 + 2 * k]; x++) s.w[x >> 5] |= 1u << (x & 31);
                ok = push(p, a, GE_BYTES, set_id(p, &s));
            }
        }
        type = GE_REF;
        val = rid;
        if (ok) ok = push(p, seq, type, val);
    }
    g_array_unref(cs.multi);
    if (ok)
        g_hash_table_insert(p->class_rules, g_string_free(key, FALSE),
                            GSIZE_TO_POINTER((((uint64_t)type << 32) | val) + 1));
    else
        g_string_free(key, TRUE);
    return ok;
}

static bool parse_class(P* p, GArray* seq, const char* base) {
    p->i++; /* [ */
    bool neg = false;
    if (peek(p) == '^') {
        neg = true;
        p->i++;
    }
    GArray* ranges = g_array_new(FALSE, FALSE, sizeof(CpRange));
    bool ok = true;
    for (;;) {
        int c = peek(p);
        if (c < 0) {
            ok = fail(p, "unterminated character class");
            break;
        }
        if (c == ']') {
            p->i++;
            break;
        }
        if (c == '\n') p->line++;
        int32_t lo = read_char(p);
        if (lo < 0) {
            ok = false;
            break;
        }
        int32_t hi = lo;
        if (peek(p) == '-' && p->i + 1 < p->n && p->s[p->i + 1] != ']') {
            p->i++;
            hi = read_char(p);
            if (hi < 0) {
                ok = false;
                break;
            }
            if (hi < lo) {
                ok = fail(p, "reversed range in a character class (U+%04X-U+%04X)", (unsigned)lo, (unsigned)hi);
                break;
            }
        }
        CpRange cr = {(uint32_t)lo, (uint32_t)hi};
        g_array_append_val(ranges, cr);
    }
    if (ok && !ranges->len && !neg) ok = fail(p, "empty character class []");
    if (ok) ok = emit_class(p, seq, ranges, neg, base);
    g_array_unref(ranges);
    return ok;
}

static bool parse_literal(P* p, GArray* seq) {
    p->i++; /* " */
    for (;;) {
        int c = peek(p);
        if (c < 0) return fail(p, "unterminated string literal");
        if (c == '"') {
            p->i++;
            return true;
        }
        if (c == '\n') return fail(p, "string literal runs past the end of the line (write \\n)");
        int32_t cp = read_char(p);
        if (cp < 0) return false;
        uint8_t b[4];
        int k = utf8_encode((uint32_t)cp, b);
        for (int j = 0; j < k; j++)
            if (!push_byte(p, seq, b[j])) return false;
    }
}

/* ---- rules, sequences, repetition --------------------------------------- */

static uint32_t rule_ref(P* p, const char* name) {
    gpointer v = g_hash_table_lookup(p->by_name, name);
    if (v) return GPOINTER_TO_UINT(v) - 1;
    uint32_t id = rule_new(p, name);
    rule_at(p, id)->used_line = p->line;
    return id;
}

static bool parse_alternatives(P* p, uint32_t rule, const char* base);

static bool number(P* p, long* out) {
    size_t s = p->i;
    long v = 0;
    while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') {
        v = v * 10 + (p->s[p->i] - '0');
        if (v > GRAM_MAX_REPEAT) return fail(p, "repetition count above %d", GRAM_MAX_REPEAT);
        p->i++;
    }
    *out = v;
    return p->i > s;
}

/* seq[begin..] is one atom: replace it by `min` copies and then up to
 * max - min optional ones (max < 0: any number more). */
static bool repeat(P* p, GArray* seq, guint begin, long min, long max, const char* base) {
    guint na = seq->len - begin;
    if (!na) return true; /* an empty literal repeated is still empty */
    GElem x;
    if (na > 1) {
        uint32_t rid = rule_generated(p, base);
        BRule* r = rule_at(p, rid);
        r->defined = true;
        GArray* a = alt_new();
        g_array_append_vals(a, &g_array_index(seq, GElem, begin), na);
        g_ptr_array_add(r->alts, a);
        x = (GElem){GE_REF, rid};
    } else {
        x = g_array_index(seq, GElem, begin);
    }
    g_array_set_size(seq, begin);
    size_t add = (size_t)min + (max < 0 ? 3 : 3 * (size_t)(max - min));
    if (p->n_elems + add > GRAM_MAX_ELEMS || p->rules->len + (max < 0 ? 1 : (size_t)(max - min)) > GRAM_MAX_RULES)
        return fail(p, "the grammar expands to more than %u elements or %u rules (large repetition counts?)",
                    GRAM_MAX_ELEMS, GRAM_MAX_RULES);
    for (long k = 0; k < min; k++)
        if (!push(p, seq, x.type, x.val)) return false;
    if (max < 0) {
        uint32_t sid = rule_generated(p, base);
        BRule* s = rule_at(p, sid);
        s->defined = true;
        GArray* a = alt_new();
        g_ptr_array_add(s->alts, a);
        g_ptr_array_add(s->alts, alt_new());
        if (!push(p, a, x.type, x.val) || !push(p, a, GE_REF, sid)) return false;
        return push(p, seq, GE_REF, sid);
    }
    int64_t prev = -1;
    for (long k = 0; k < max - min; k++) {
        uint32_t oid = rule_generated(p, base);
        BRule* o = rule_at(p, oid);
        o->defined = true;
        GArray* a = alt_new();
        g_ptr_array_add(o->alts, a);
        g_ptr_array_add(o->alts, alt_new());
        if (!push(p, a, x.type, x.val)) return false;
        if (prev >= 0 && !push(p, a, GE_REF, (uint32_t)prev)) return false;
        prev = oid;
    }
    if (prev >= 0) return push(p, seq, GE_REF, (uint32_t)prev);
    return true;
}

/* The single repetition equal to e{a,b} repeated {c,d} (b, d < 0: no
 * bound), when there is one: stacked operators (x+*, x?+, (x+)+ ...) become
 * one loop instead of loops nested in loops, which the matcher would carry
 * level by level. FALSE when the lengths they allow are no {min,max}. */
static bool repeat_combine(long a, long b, long c, long d, long* min, long* max) {
    if (a == 1 && b == 1) {
        *min = c, *max = d;
        return true;
    }
    if (c == 1 && d == 1) {
        *min = a, *max = b;
        return true;
    }
    if (b == 0 || d == 0) { /* no copy at all: empty */
        *min = 0, *max = 0;
        return true;
    }
    if (b < 0) { /* e{a,}: k >= c copies of at least a each: any length from a c */
        if (c >= 1) {
            if ((double)a * (double)c > GRAM_MAX_REPEAT) return false;
            *min = a * c, *max = -1;
            return true;
        }
        if (a <= 1) { /* c == 0: 0, or any length from a */
            *min = 0, *max = -1;
            return true;
        }
        return false;
    }
    if (a == 0 && b == 1) { /* e?: up to d copies of zero or one */
        *min = 0, *max = d;
        return true;
    }
    return false;
}

static bool parse_sequence(P* p, GArray* seq, const char* base) {
    int n_atoms = 0;
    p->one_atom = false;
    for (;;) {
        skip_ws(p);
        int c = peek(p);
        if (c < 0 || c == '|' || c == ')' || at_rule_start(p)) return true;
        guint begin = seq->len;
        /* the atom's repetition so far (the group of one quantified atom
         * brings its own) */
        long qmin = 1, qmax = 1;
        n_atoms++;
        if (c == '"') {
            if (!parse_literal(p, seq)) return false;
        } else if (c == '[') {
            if (!parse_class(p, seq, base)) return false;
        } else if (c == '.') {
            p->i++;
            GArray* none = g_array_new(FALSE, FALSE, sizeof(CpRange));
            bool ok = emit_class(p, seq, none, true, base);
            g_array_unref(none);
            if (!ok) return false;
        } else if (c == '(') {
            if (++p->nest > GRAM_MAX_NEST) return fail(p, "parentheses nested deeper than %d", GRAM_MAX_NEST);
            p->i++;
            uint32_t rid = rule_generated(p, base);
            rule_at(p, rid)->defined = true;
            if (!parse_alternatives(p, rid, base)) return false;
            skip_ws(p);
            if (peek(p) != ')') return fail(p, "missing ')'");
            p->i++;
            p->nest--;
            if (rule_at(p, rid)->alts->len == 1 && p->one_atom) {
                /* ( x{m,n} ): the atom itself, its repetition still open
                 * (the generated rule stays unused) */
                if (!push(p, seq, p->atom.type, p->atom.val)) return false;
                qmin = p->atom_min, qmax = p->atom_max;
            } else if (!push(p, seq, GE_REF, rid))
                return false;
        } else if (is_name_char(c)) {
            size_t k = name_len_at(p, p->i);
            if (k > 64) return fail(p, "rule name longer than 64 characters");
            char name[65];
            memcpy(name, p->s + p->i, k);
            name[k] = 0;
            p->i += k;
            if (!push(p, seq, GE_REF, rule_ref(p, name))) return false;
        } else if (c == ':' && p->i + 2 < p->n && !memcmp(p->s + p->i, "::=", 3)) {
            return fail(p, "'::=' without a rule name before it");
        } else if (c >= 0x20 && c < 0x7f) {
            return fail(p, "unexpected '%c'", c);
        } else {
            return fail(p, "unexpected byte 0x%02x", (unsigned)c);
        }
        /* postfix operators */
        for (;;) {
            skip_ws(p);
            c = peek(p);
            long min = 0, max = 0;
            if (c == '*') {
                min = 0;
                max = -1;
                p->i++;
            } else if (c == '+') {
                min = 1;
                max = -1;
                p->i++;
            } else if (c == '?') {
                min = 0;
                max = 1;
                p->i++;
            } else if (c == '{') {
                p->i++;
                skip_ws(p);
                bool has_min = number(p, &min);
                if (p->failed) return false;
                if (!has_min) min = 0;
                skip_ws(p);
                if (peek(p) == ',') {
                    p->i++;
                    skip_ws(p);
                    if (!number(p, &max)) {
                        if (p->failed) return false;
                        max = -1;
                    }
                    skip_ws(p);
                    if (!has_min && max < 0) return fail(p, "'{,}' needs a count");
                } else {
                    if (!has_min) return fail(p, "'{' needs a count: {m}, {m,}, {m,n}");
                    max = min;
                }
                if (peek(p) != '}') return fail(p, "missing '}' after a repetition count");
                p->i++;
                if (max >= 0 && max < min)
                    return fail(p, "repetition {%ld,%ld}: the maximum is below the minimum", min, max);
            } else {
                break;
            }
            /* one repetition for stacked operators where that is exact, else
             * the one so far expanded and this one applied to the result */
            long cmin, cmax;
            if (repeat_combine(qmin, qmax, min, max, &cmin, &cmax)) {
                qmin = cmin, qmax = cmax;
            } else {
                if (!repeat(p, seq, begin, qmin, qmax, base)) return false;
                qmin = min, qmax = max;
            }
        }
        /* this atom alone so far, one element: the group around it may stand for it */
        const bool single = n_atoms == 1 && seq->len == begin + 1;
        const GElem atom = single ? g_array_index(seq, GElem, begin) : (GElem){0};
        if (!(qmin == 1 && qmax == 1) && !repeat(p, seq, begin, qmin, qmax, base)) return false;
        p->one_atom = single;
        if (single) {
            p->atom = atom;
            p->atom_min = qmin, p->atom_max = qmax;
        }
    }
}

static bool parse_alternatives(P* p, uint32_t rule, const char* base) {
    for (;;) {
        GArray* a = alt_new();
        g_ptr_array_add(rule_at(p, rule)->alts, a);
        if (!parse_sequence(p, a, base)) return false;
        skip_ws(p);
        if (peek(p) != '|') return true;
        p->i++;
    }
}

/* ---- checks and flattening ---------------------------------------------- */

/* Marks the rules that satisfy `nullable` (match the empty text) or, when
 * false, `productive` (match some finite text), with a worklist: an
 * alternative counts down the references it still waits for. */
static uint8_t* mark_rules(const GRules* g, bool nullable) {
    uint32_t R = g->n_rules;
    uint8_t* mark = g_malloc0(R ? R : 1);
    uint32_t* need = g_malloc0(sizeof(uint32_t) * (g->n_alts ? g->n_alts : 1));
    uint32_t* alt_rule = g_malloc(sizeof(uint32_t) * (g->n_alts ? g->n_alts : 1));
    /* users: for each rule, the alternatives referencing it (with multiplicity) */
    uint32_t* ucount = g_malloc0(sizeof(uint32_t) * (R + 1));
    for (uint32_t r = 0; r < R; r++)
        for (uint32_t a = g->alt_begin[r]; a < g->alt_begin[r + 1]; a++) {
            alt_rule[a] = r;
            for (uint32_t e = g->alts[a]; g->elems[e].type != GE_END; e++) {
                if (g->elems[e].type == GE_REF) {
                    need[a]++;
                    ucount[g->elems[e].val + 1]++;
                } else if (nullable) {
                    need[a] = UINT32_MAX / 2; /* a byte: never empty */
                }
            }
        }
    for (uint32_t r = 0; r < R; r++) ucount[r + 1] += ucount[r];
    uint32_t* users = g_malloc(sizeof(uint32_t) * (ucount[R] ? ucount[R] : 1));
    uint32_t* fill = g_memdup2(ucount, sizeof(uint32_t) * (R + 1));
    for (uint32_t a = 0; a < g->n_alts; a++)
        for (uint32_t e = g->alts[a]; g->elems[e].type != GE_END; e++)
            if (g->elems[e].type == GE_REF) users[fill[g->elems[e].val]++] = a;
    uint32_t* stack = g_malloc(sizeof(uint32_t) * (R ? R : 1));
    uint32_t top = 0;
    for (uint32_t a = 0; a < g->n_alts; a++)
        if (need[a] == 0 && !mark[alt_rule[a]]) {
            mark[alt_rule[a]] = 1;
            stack[top++] = alt_rule[a];
        }
    while (top) {
        uint32_t s = stack[--top];
        for (uint32_t k = ucount[s]; k < ucount[s + 1]; k++) {
            uint32_t a = users[k];
            if (--need[a] == 0 && !mark[alt_rule[a]]) {
                mark[alt_rule[a]] = 1;
                stack[top++] = alt_rule[a];
            }
        }
    }
    g_free(stack);
    g_free(fill);
    g_free(users);
    g_free(ucount);
    g_free(alt_rule);
    g_free(need);
    return mark;
}

/* Left recursion that would grow the parser stack without end: a cycle of
 * leftmost references (those preceded only by elements that can match
 * nothing) through at least one reference that is not the last element of
 * its alternative. (A cycle of references in last position, as in x* when x
 * can match nothing, keeps the same continuation; the matcher's expansion
 * sees the repeat and stops.) The left-corner graph's strongly connected
 * components (Kosaraju, iterative), then a non-tail edge inside one. Returns
 * the rule, or -1. */
static int64_t find_left_cycle(const GRules* g, const uint8_t* nullable) {
    uint32_t R = g->n_rules;
    uint32_t* off = g_malloc0(sizeof(uint32_t) * (R + 1));
    GArray* to = g_array_new(FALSE, FALSE, sizeof(uint32_t));
    GArray* tail = g_array_new(FALSE, FALSE, 1);
    for (uint32_t r = 0; r < R; r++) {
        off[r] = to->len;
        for (uint32_t a = g->alt_begin[r]; a < g->alt_begin[r + 1]; a++)
            for (uint32_t e = g->alts[a]; g->elems[e].type == GE_REF; e++) {
                uint8_t t = g->elems[e + 1].type == GE_END;
                g_array_append_val(to, g->elems[e].val);
                g_array_append_val(tail, t);
                if (!nullable[g->elems[e].val]) break;
            }
    }
    off[R] = to->len;
    const uint32_t E = to->len;
    const uint32_t* adj = (const uint32_t*)to->data;
    /* reversed graph */
    uint32_t* roff = g_malloc0(sizeof(uint32_t) * (R + 1));
    uint32_t* radj = g_malloc(sizeof(uint32_t) * (E ? E : 1));
    for (uint32_t k = 0; k < E; k++) roff[adj[k] + 1]++;
    for (uint32_t r = 0; r < R; r++) roff[r + 1] += roff[r];
    uint32_t* fill = g_memdup2(roff, sizeof(uint32_t) * (R + 1));
    for (uint32_t r = 0; r < R; r++)
        for (uint32_t k = off[r]; k < off[r + 1]; k++) radj[fill[adj[k]]++] = r;
    g_free(fill);
    /* pass 1: finishing order */
    uint8_t* seen = g_malloc0(R ? R : 1);
    uint32_t* order = g_malloc(sizeof(uint32_t) * (R ? R : 1));
    uint32_t* st_r = g_malloc(sizeof(uint32_t) * (R ? R : 1));
    uint32_t* st_k = g_malloc(sizeof(uint32_t) * (R ? R : 1));
    uint32_t n_order = 0;
    for (uint32_t r0 = 0; r0 < R; r0++) {
        if (seen[r0]) continue;
        uint32_t top = 0;
        st_r[top] = r0;
        st_k[top++] = off[r0];
        seen[r0] = 1;
        while (top) {
            uint32_t r = st_r[top - 1];
            if (st_k[top - 1] < off[r + 1]) {
                uint32_t s2 = adj[st_k[top - 1]++];
                if (!seen[s2]) {
                    seen[s2] = 1;
                    st_r[top] = s2;
                    st_k[top++] = off[s2];
                }
            } else {
                order[n_order++] = r;
                top--;
            }
        }
    }
    /* pass 2: components on the reversed graph, in reverse finishing order */
    uint32_t* comp = g_malloc(sizeof(uint32_t) * (R ? R : 1));
    for (uint32_t r = 0; r < R; r++) comp[r] = UINT32_MAX;
    uint32_t n_comp = 0;
    for (uint32_t i = n_order; i-- > 0;) {
        uint32_t r0 = order[i];
        if (comp[r0] != UINT32_MAX) continue;
        uint32_t top = 0;
        st_r[top++] = r0;
        comp[r0] = n_comp;
        while (top) {
            uint32_t r = st_r[--top];
            for (uint32_t k = roff[r]; k < roff[r + 1]; k++)
                if (comp[radj[k]] == UINT32_MAX) {
                    comp[radj[k]] = n_comp;
                    st_r[top++] = radj[k];
                }
        }
        n_comp++;
    }
    int64_t found = -1;
    for (uint32_t r = 0; r < R && found < 0; r++)
        for (uint32_t k = off[r]; k < off[r + 1]; k++)
            if (!((const uint8_t*)tail->data)[k] && comp[adj[k]] == comp[r]) {
                found = r;
                break;
            }
    g_free(comp);
    g_free(st_k);
    g_free(st_r);
    g_free(order);
    g_free(seen);
    g_free(radj);
    g_free(roff);
    g_array_unref(tail);
    g_array_unref(to);
    g_free(off);
    return found;
}

static MglStatus finish(P* p, GRules** out) {
    MglErr* err = p->err;
    gpointer rootv = g_hash_table_lookup(p->by_name, "root");
    if (!rootv || !rule_at(p, GPOINTER_TO_UINT(rootv) - 1)->defined)
        return mgl_err(err, MGL_E_INVALID, "%s: no rule named \"root\" (where matching starts)", p->what);
    for (guint r = 0; r < p->rules->len; r++) {
        BRule* b = rule_at(p, r);
        if (!b->defined)
            return mgl_err(err, MGL_E_INVALID, "%s: line %d: rule \"%s\" is used but never defined", p->what,
                           b->used_line, b->name);
    }
    /* the start rule: an optional leading space (the answer is stripped, and
     * SentencePiece models begin words with one), then root */
    uint32_t root = GPOINTER_TO_UINT(rootv) - 1;
    uint32_t start = rule_new(p, "start#");
    BRule* s = rule_at(p, start);
    s->defined = true;
    GArray* a1 = alt_new();
    GArray* a2 = alt_new();
    g_ptr_array_add(s->alts, a1);
    g_ptr_array_add(s->alts, a2);
    if (!push_byte(p, a1, ' ') || !push(p, a1, GE_REF, root) || !push(p, a2, GE_REF, root))
        return err ? err->code : MGL_E_INVALID;

    GRules* g = g_new0(GRules, 1);
    g->n_rules = p->rules->len;
    g->alt_begin = g_malloc(sizeof(uint32_t) * (g->n_rules + 1));
    g->names = g_malloc0(sizeof(char*) * g->n_rules);
    size_t n_alts = 0, n_elems = 0;
    for (uint32_t r = 0; r < g->n_rules; r++) {
        BRule* b = rule_at(p, r);
        n_alts += b->alts->len;
        for (guint a = 0; a < b->alts->len; a++) n_elems += ((GArray*)g_ptr_array_index(b->alts, a))->len + 1;
    }
    g->alts = g_malloc(sizeof(uint32_t) * (n_alts ? n_alts : 1));
    g->elems = g_malloc(sizeof(GElem) * (n_elems ? n_elems : 1));
    uint32_t na = 0, ne = 0;
    for (uint32_t r = 0; r < g->n_rules; r++) {
        BRule* b = rule_at(p, r);
        g->names[r] = g_strdup(b->name);
        g->alt_begin[r] = na;
        for (guint a = 0; a < b->alts->len; a++) {
            GArray* seq = g_ptr_array_index(b->alts, a);
            g->alts[na++] = ne;
            if (seq->len) memcpy(g->elems + ne, seq->data, sizeof(GElem) * seq->len);
            ne += seq->len;
            g->elems[ne++] = (GElem){GE_END, 0};
        }
    }
    g->alt_begin[g->n_rules] = na;
    g->n_alts = na;
    g->n_elems = ne;
    g->n_sets = p->sets->len;
    g->sets = g_memdup2(p->sets->data, sizeof(GByteSet) * (p->sets->len ? p->sets->len : 1));
    g->root = root;
    g->start = start;

    uint8_t* productive = mark_rules(g, false);
    MglStatus st = MGL_OK;
    for (uint32_t r = 0; r < g->n_rules && st == MGL_OK; r++)
        if (!productive[r]) {
            const char* nm = g->names[r];
            const char* hash = strchr(nm, '#');
            st = mgl_err(err, MGL_E_INVALID, "%s: rule \"%.*s\"%s can never finish (every alternative needs itself)",
                         p->what, hash ? (int)(hash - nm) : (int)strlen(nm), nm, hash ? " (a part of it)" : "");
        }
    g_free(productive);
    if (st == MGL_OK) {
        uint8_t* nullable = mark_rules(g, true);
        int64_t cyc = find_left_cycle(g, nullable);
        g_free(nullable);
        if (cyc >= 0) {
            const char* nm = g->names[cyc];
            const char* hash = strchr(nm, '#');
            st = mgl_err(err, MGL_E_INVALID,
                         "%s: rule \"%.*s\"%s is left-recursive (it can reach itself before matching any character; "
                         "write the repetition with * or + instead)",
                         p->what, hash ? (int)(hash - nm) : (int)strlen(nm), nm,
                         hash ? " (a group or repetition in it)" : "");
        }
    }
    if (st != MGL_OK) {
        gram_rules_free(g);
        return st;
    }
    *out = g;
    return MGL_OK;
}

MglStatus gram_parse(const char* text, size_t len, const char* what, GRules** out, MglErr* err) {
    *out = NULL;
    if (!text) return mgl_err(err, MGL_E_INVALID, "%s: no text", what);
    if (len > GRAM_MAX_TEXT)
        return mgl_err(err, MGL_E_INVALID, "%s: %zu bytes, above the %u-byte limit", what, len, GRAM_MAX_TEXT);
    P p = {.s = text, .n = len, .line = 1, .what = what, .err = err};
    p.rules = g_ptr_array_new_with_free_func(brule_free);
    p.by_name = g_hash_table_new(g_str_hash, g_str_equal);
    p.sets = g_array_new(FALSE, FALSE, sizeof(GByteSet));
    p.set_ids = g_hash_table_new_full(g_bytes_hash, g_bytes_equal, (GDestroyNotify)g_bytes_unref, NULL);
    p.class_rules = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    MglStatus st = MGL_OK;
    for (;;) {
        skip_ws(&p);
        if (p.i >= p.n) break;
        size_t k = name_len_at(&p, p.i);
        if (!k || !at_rule_start(&p)) {
            fail(&p, "expected a rule definition \"name ::= ...\"");
            break;
        }
        if (k > 64) {
            fail(&p, "rule name longer than 64 characters");
            break;
        }
        char name[65];
        memcpy(name, p.s + p.i, k);
        name[k] = 0;
        p.i += k;
        skip_ws(&p);
        p.i += 3; /* ::= */
        uint32_t rid = rule_ref(&p, name);
        BRule* r = rule_at(&p, rid);
        if (r->defined) {
            fail(&p, "rule \"%s\" is defined twice", name);
            break;
        }
        r->defined = true;
        if (!parse_alternatives(&p, rid, name)) break;
        skip_ws(&p);
        if (p.i < p.n && !at_rule_start(&p)) {
            int c = peek(&p);
            if (c == ')')
                fail(&p, "unbalanced ')'");
            else
                fail(&p, "unexpected '%c'", c);
            break;
        }
    }
    if (p.failed) st = err ? err->code : MGL_E_INVALID;
    if (st == MGL_OK && !p.failed) st = finish(&p, out);
    g_hash_table_unref(p.class_rules);
    g_hash_table_unref(p.set_ids);
    g_array_unref(p.sets);
    g_hash_table_unref(p.by_name);
    g_ptr_array_unref(p.rules);
    if (st == MGL_OK && !*out) st = MGL_E_INVALID;
    return st;
}

void gram_rules_free(GRules* g) {
    if (!g) return;
    for (uint32_t r = 0; r < g->n_rules; r++) g_free(g->names ? g->names[r] : NULL);
    g_free(g->names);
    g_free(g->elems);
    g_free(g->sets);
    g_free(g->alts);
    g_free(g->alt_begin);
    g_free(g);
}
