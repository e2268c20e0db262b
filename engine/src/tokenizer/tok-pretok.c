/* tok-pretok.c: UTF-8 helpers, Unicode classes, the GPT-2 byte mapping and
 * hand-written matchers for the pre-tokenizer regexes of GPT-2, Llama-3 and
 * Qwen2 (no regex library: the patterns are fixed and small, and a matcher
 * written for them is linear and cannot blow up on hostile input). */
#include "tok-internal.h"

#include <string.h>

/* ---- UTF-8 -------------------------------------------------------------- */

int tok_utf8_next(const char* str, size_t n, uint32_t* cp) {
    const uint8_t* s = (const uint8_t*)str;
    if (n == 0) return 0;
    uint8_t c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int len;
    uint32_t v;
    uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        v = c & 0x0F;
        if (c == 0xE0) lo = 0xA0; /* no overlongs */
        if (c == 0xED) hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        v = c & 0x07;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F; /* <= U+10FFFF */
    } else
        return 0;
    if ((size_t)len > n) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    v = (v << 6) | (s[1] & 0x3F);
    for (int i = 2; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    *cp = v;
    return len;
}

bool tok_utf8_valid(const char* s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if ((uint8_t)s[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        int l = tok_utf8_next(s + i, n - i, &cp);
        if (l == 0) return false;
        i += (size_t)l;
    }
    return true;
}

void tok_utf8_append(GString* out, uint32_t cp) {
    char b[8];
    int l = g_unichar_to_utf8(cp, b);
    g_string_append_len(out, b, l);
}

/* Lossy decoding byte by byte. A lead byte starts a candidate sequence; a
 * byte that cannot continue it ends the maximal subpart (one U+FFFD) and is
 * then looked at again as a new start, exactly as Rust's Utf8Chunks does. */
static void lossy_byte(TokUtf8Lossy* st, uint8_t b, GString* out) {
    static const char fffd[] = "\xEF\xBF\xBD";
    for (;;) {
        if (st->npend == 0) {
            if (b < 0x80) {
                g_string_append_c(out, (char)b);
                return;
            }
            if (b >= 0xC2 && b <= 0xDF)
                st->need = 2;
            else if (b >= 0xE0 && b <= 0xEF)
                st->need = 3;
            else if (b >= 0xF0 && b <= 0xF4)
                st->need = 4;
            else {
                g_string_append_len(out, fffd, 3);
                return;
            }
            st->pend[st->npend++] = b;
            return;
        }
        uint8_t lo = 0x80, hi = 0xBF;
        if (st->npend == 1) {
            uint8_t c = st->pend[0];
            if (c == 0xE0)
                lo = 0xA0;
            else if (c == 0xED)
                hi = 0x9F;
            else if (c == 0xF0)
                lo = 0x90;
            else if (c == 0xF4)
                hi = 0x8F;
        }
        if (b >= lo && b <= hi) {
            st->pend[st->npend++] = b;
            if (st->npend == st->need) {
                g_string_append_len(out, (const char*)st->pend, st->npend);
                st->npend = 0;
            }
            return;
        }
        g_string_append_len(out, fffd, 3);
        st->npend = 0;
        /* look at b again as a fresh start */
    }
}

void tok_lossy_feed(TokUtf8Lossy* st, const uint8_t* b, size_t n, GString* out) {
    for (size_t i = 0; i < n; i++) lossy_byte(st, b[i], out);
}

void tok_lossy_flush(TokUtf8Lossy* st, GString* out) {
    if (st->npend > 0) g_string_append(out, "\xEF\xBF\xBD");
    st->npend = 0;
}

/* ---- Unicode classes ------------------------------------------------------ */

bool tok_is_letter(uint32_t cp) {
    if (cp < 0x80) return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
    switch (g_unichar_type(cp)) {
    case G_UNICODE_LOWERCASE_LETTER:
    case G_UNICODE_MODIFIER_LETTER:
    case G_UNICODE_OTHER_LETTER:
    case G_UNICODE_TITLECASE_LETTER:
    case G_UNICODE_UPPERCASE_LETTER: return true;
    default: return false;
    }
}

bool tok_is_number(uint32_t cp) {
    if (cp < 0x80) return cp >= '0' && cp <= '9';
    switch (g_unichar_type(cp)) {
    case G_UNICODE_DECIMAL_NUMBER:
    case G_UNICODE_LETTER_NUMBER:
    case G_UNICODE_OTHER_NUMBER: return true;
    default: return false;
    }
}

/* Oniguruma's Unicode \s: U+0009..U+000D, U+0085 and the Zs/Zl/Zp categories
 * (the same set as the White_Space property Rust's char::is_whitespace uses). */
bool tok_is_space(uint32_t cp) {
    if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
    if (cp == 0x85) return true;
    switch (g_unichar_type(cp)) {
    case G_UNICODE_SPACE_SEPARATOR:
    case G_UNICODE_LINE_SEPARATOR:
    case G_UNICODE_PARAGRAPH_SEPARATOR: return true;
    default: return false;
    }
}

/* ---- GPT-2 bytes_to_unicode ---------------------------------------------- */

static char bl_utf8[256][3];
static int bl_len[256];
static int16_t bl_rev[512];
static gsize bl_once = 0;

static void bytelevel_init(void) {
    if (g_once_init_enter(&bl_once)) {
        for (int i = 0; i < 512; i++) bl_rev[i] = -1;
        int n = 0;
        for (int b = 0; b < 256; b++) {
            uint32_t cp;
            if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))
                cp = (uint32_t)b;
            else
                cp = 256u + (uint32_t)n++;
            bl_len[b] = g_unichar_to_utf8(cp, bl_utf8[b]);
            bl_rev[cp] = (int16_t)b;
        }
        g_once_init_leave(&bl_once, 1);
    }
}

const char* tok_bytelevel_char(uint8_t b, int* len) {
    bytelevel_init();
    *len = bl_len[b];
    return bl_utf8[b];
}

int tok_bytelevel_byte(uint32_t cp) {
    bytelevel_init();
    return cp < 512 ? bl_rev[cp] : -1;
}

/* ---- regex matchers ------------------------------------------------------- */

static const char k_re_gpt2[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char k_re_llama3[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char k_re_qwen2[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

TokRegex tok_regex_from_pattern(const char* p) {
    if (!p) return TOK_RE_NONE;
    if (strcmp(p, k_re_gpt2) == 0) return TOK_RE_GPT2;
    if (strcmp(p, k_re_llama3) == 0) return TOK_RE_LLAMA3;
    if (strcmp(p, k_re_qwen2) == 0) return TOK_RE_QWEN2;
    return TOK_RE_NONE;
}

/* Text is valid UTF-8 here (checked on entry), so decoding cannot fail; a
 * stray byte would still be consumed as one unit and never loop forever. */
typedef struct {
    const char* s;
    size_t n;
} Txt;

static size_t cp_at(const Txt* t, size_t i, uint32_t* cp) {
    if (i >= t->n) {
        *cp = 0;
        return 0;
    }
    int l = tok_utf8_next(t->s + i, t->n - i, cp);
    if (l == 0) {
        *cp = 0xFFFD;
        return 1;
    }
    return (size_t)l;
}

static bool ascii_ieq(uint32_t cp, char c) { return cp < 0x80 && ((cp | 0x20) == (uint32_t)c); }

/* 's|'t|'re|'ve|'m|'ll|'d, optionally case-insensitive. Returns match end or 0. */
static size_t m_contraction(const Txt* t, size_t p, bool icase) {
    uint32_t c0, c1, c2;
    size_t l0 = cp_at(t, p, &c0);
    if (l0 == 0 || c0 != '\'') return 0;
    size_t l1 = cp_at(t, p + l0, &c1);
    if (l1 == 0) return 0;
    size_t l2 = cp_at(t, p + l0 + l1, &c2);
#define EQ(cp, ch) (icase ? ascii_ieq(cp, ch) : (cp) == (uint32_t)(ch))
    /* Oniguruma's case folding also maps U+017F (long s) to 's'. */
    if (EQ(c1, 's') || (icase && c1 == 0x17F)) return p + l0 + l1;
    if (EQ(c1, 't')) return p + l0 + l1;
    if (l2 && EQ(c1, 'r') && EQ(c2, 'e')) return p + l0 + l1 + l2;
    if (l2 && EQ(c1, 'v') && EQ(c2, 'e')) return p + l0 + l1 + l2;
    if (EQ(c1, 'm')) return p + l0 + l1;
    if (l2 && EQ(c1, 'l') && EQ(c2, 'l')) return p + l0 + l1 + l2;
    if (EQ(c1, 'd')) return p + l0 + l1;
#undef EQ
    return 0;
}

static size_t run_letters(const Txt* t, size_t p) {
    uint32_t c;
    size_t l;
    while ((l = cp_at(t, p, &c)) && tok_is_letter(c)) p += l;
    return p;
}

static size_t run_numbers(const Txt* t, size_t p, int max) {
    uint32_t c;
    size_t l;
    int k = 0;
    while ((max < 0 || k < max) && (l = cp_at(t, p, &c)) && tok_is_number(c)) {
        p += l;
        k++;
    }
    return p;
}

static bool is_other(uint32_t c) { return !tok_is_space(c) && !tok_is_letter(c) && !tok_is_number(c); }

static size_t run_other(const Txt* t, size_t p) {
    uint32_t c;
    size_t l;
    while ((l = cp_at(t, p, &c)) && is_other(c)) p += l;
    return p;
}

/* Whitespace run [p, end); also reports the end of the last \r or \n in it. */
static size_t run_space(const Txt* t, size_t p, size_t* last_crlf_end, size_t* last_start) {
    uint32_t c;
    size_t l;
    *last_crlf_end = 0;
    *last_start = p;
    while ((l = cp_at(t, p, &c)) && tok_is_space(c)) {
        *last_start = p;
        if (c == '\r' || c == '\n') *last_crlf_end = p + l;
        p += l;
    }
    return p;
}

/* \s+(?!\S)|\s+ : the whole run when it ends the text or when it is a single
 * char, else the run minus its last char (left for the next token's prefix). */
static size_t m_space_tail(const Txt* t, size_t p, size_t end, size_t last_start) {
    if (end >= t->n) return end;
    if (last_start > p) return last_start;
    return end;
}

/* Match at exactly position p; returns end (> p) or 0. */
static size_t match_gpt2(const Txt* t, size_t p) {
    size_t e = m_contraction(t, p, false);
    if (e) return e;
    uint32_t c0, c1;
    size_t l0 = cp_at(t, p, &c0);
    size_t q = p;
    if (c0 == ' ') {
        size_t l1 = cp_at(t, p + l0, &c1);
        if (l1) q = p + l0;
    }
    /* " ?X+" alternatives: with the space first, then without (backtracking). */
    for (int pass = 0; pass < 2; pass++) {
        size_t s = pass == 0 ? q : p;
        if (pass == 1 && s == q) break;
        uint32_t c;
        if (!cp_at(t, s, &c)) break;
        if (tok_is_letter(c)) return run_letters(t, s);
        if (tok_is_number(c)) return run_numbers(t, s, -1);
        if (is_other(c)) return run_other(t, s);
    }
    size_t crlf, last;
    size_t end = run_space(t, p, &crlf, &last);
    if (end > p) return m_space_tail(t, p, end, last);
    return 0;
}

static size_t match_llama3(const Txt* t, size_t p, int max_digits) {
    size_t e = m_contraction(t, p, true);
    if (e) return e;
    uint32_t c0, c1;
    size_t l0 = cp_at(t, p, &c0);
    if (l0 == 0) return 0;
    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    if (tok_is_letter(c0)) return run_letters(t, p);
    if (c0 != '\r' && c0 != '\n' && !tok_is_number(c0)) {
        size_t l1 = cp_at(t, p + l0, &c1);
        if (l1 && tok_is_letter(c1)) return run_letters(t, p + l0);
    }
    /* \p{N}{1,3} */
    if (tok_is_number(c0)) return run_numbers(t, p, max_digits);
    /* " ?[^\s\p{L}\p{N}]+[\r\n]*" */
    size_t s = p;
    if (c0 == ' ') {
        size_t l1 = cp_at(t, p + l0, &c1);
        if (l1 && is_other(c1)) s = p + l0;
    }
    uint32_t cs;
    cp_at(t, s, &cs);
    if (is_other(cs)) {
        size_t q = run_other(t, s);
        uint32_t c;
        size_t l;
        while ((l = cp_at(t, q, &c)) && (c == '\r' || c == '\n')) q += l;
        return q;
    }
    /* \s*[\r\n]+ | \s+(?!\S) | \s+ */
    size_t crlf, last;
    size_t end = run_space(t, p, &crlf, &last);
    if (end == p) return 0;
    if (crlf) return crlf;
    return m_space_tail(t, p, end, last);
}

bool tok_regex_find(TokRegex re, const char* s, size_t n, size_t from, size_t* ms, size_t* me) {
    Txt t = {s, n};
    size_t p = from;
    while (p < n) {
        size_t e = 0;
        switch (re) {
        case TOK_RE_GPT2: e = match_gpt2(&t, p); break;
        case TOK_RE_LLAMA3: e = match_llama3(&t, p, 3); break;
        case TOK_RE_QWEN2: e = match_llama3(&t, p, 1); break;
        default: return false;
        }
        if (e > p) {
            *ms = p;
            *me = e;
            return true;
        }
        uint32_t c;
        size_t l = cp_at(&t, p, &c);
        p += l ? l : 1;
    }
    return false;
}
