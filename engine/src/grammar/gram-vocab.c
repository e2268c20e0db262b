/* gram-vocab.c: what each token adds to the text, as bytes, and the byte
 * trie of the vocabulary.
 *
 * A token's bytes are what the tokenizer's decoder makes of it in the middle
 * of a sequence (engine/src/tokenizer/tok-core.c, push_piece): byte-level BPE
 * maps each character of the piece back to its byte (GPT-2's table);
 * SentencePiece-style decoders replace '▁' by a space and turn a <0xNN>
 * piece into that one byte; Metaspace gives its replacement character a
 * space. Only the decoder's strip of the whole text's first space is left
 * out: the grammar's start rule allows one leading space instead.
 *
 * The trie holds every token that is not special and adds at least one
 * byte, in preorder: node i, its byte and depth, the index after its subtree
 * (for skipping a dead branch) and the tokens that end there. */
#include "grammar/mgl-grammar-internal.h"
#include "tokenizer/tok-internal.h"

#include <stdlib.h>
#include <string.h>

#define MAX_TOKEN_BYTES 4096

/* replace_all of tok-core.c, in place */
static void replace_in(GString* s, const char* pat, size_t plen, const char* rep, size_t rlen) {
    GString* o = g_string_sized_new(s->len);
    tok_replace_all(o, s->str, s->len, pat, plen, rep, rlen);
    g_string_assign(s, "");
    g_string_append_len(s, o->str, (gssize)o->len);
    g_string_free(o, TRUE);
}

/* The decoder ops [i0, i1) on one token's text, not the first of a sequence. */
static void apply_ops(const MglTokenizer* t, GString* s, size_t i0, size_t i1) {
    for (size_t k = i0; k < i1 && k < t->n_dec; k++) {
        const TokDecOp* op = &t->dec[k];
        if (op->type == DEC_REPLACE) {
            replace_in(s, op->a, op->alen, op->b, op->blen);
        } else if (op->type == DEC_METASPACE) {
            char rep[8];
            int rl = 0;
            GString* tmp = g_string_new(NULL);
            tok_utf8_append(tmp, op->content);
            rl = (int)tmp->len < 8 ? (int)tmp->len : 0;
            memcpy(rep, tmp->str, (size_t)rl);
            g_string_free(tmp, TRUE);
            if (rl) replace_in(s, rep, (size_t)rl, " ", 1);
        } else if (op->type == DEC_STRIP) {
            tok_strip_chars(s, op->content, op->start, op->stop);
        }
    }
}

int gram_token_bytes(const MglTokenizer* t, int32_t id, uint8_t* out, int cap) {
    if (!t || id < 0 || id >= t->n_vocab || !t->pieces[id]) return -1;
    if (t->flags[id] & TOKF_SPECIAL) return -1;
    const char* p = t->pieces[id];
    size_t n = t->piece_len[id];
    GString* s = g_string_new(NULL);
    switch (t->dec_kind) {
    case DECODER_NONE:
        g_string_append_c(s, ' '); /* tokens are joined with spaces */
        g_string_append_len(s, p, (gssize)n);
        break;
    case DECODER_BYTELEVEL: {
        size_t i = 0;
        bool ok = true;
        while (i < n) {
            uint32_t cp;
            int l = tok_utf8_next(p + i, n - i, &cp);
            int v = l > 0 ? tok_bytelevel_byte(cp) : -1;
            if (v < 0) {
                ok = false;
                break;
            }
            g_string_append_c(s, (char)v);
            i += (size_t)l;
        }
        if (!ok) {
            g_string_truncate(s, 0);
            g_string_append_len(s, p, (gssize)n);
        }
        break;
    }
    case DECODER_CHAIN: {
        size_t bf = t->n_dec, fuse = t->n_dec;
        for (size_t k = 0; k < t->n_dec; k++) {
            if (t->dec[k].type == DEC_BYTEFALLBACK && bf == t->n_dec) bf = k;
            if (t->dec[k].type == DEC_FUSE && fuse == t->n_dec) fuse = k;
        }
        g_string_append_len(s, p, (gssize)n);
        apply_ops(t, s, 0, bf < t->n_dec ? bf : fuse);
        if (bf < t->n_dec) {
            int v = tok_byte_piece(s->str, s->len);
            if (v >= 0) {
                g_string_truncate(s, 0);
                g_string_append_c(s, (char)v);
            } else {
                apply_ops(t, s, bf + 1, fuse);
            }
        }
        break;
    }
    }
    int len = (int)(s->len < (size_t)cap ? s->len : (size_t)cap);
    if (out) memcpy(out, s->str, (size_t)len);
    int full = (int)(s->len > (size_t)INT32_MAX ? INT32_MAX : s->len);
    g_string_free(s, TRUE);
    return full > cap ? full : len;
}

/* ---- the trie ----------------------------------------------------------- */

typedef struct {
    const uint8_t* tb;
    const uint32_t* off;
} SortCtx;

static int cmp_tok(int32_t x, int32_t y, const SortCtx* c) {
    uint32_t lx = c->off[x + 1] - c->off[x], ly = c->off[y + 1] - c->off[y];
    int r = memcmp(c->tb + c->off[x], c->tb + c->off[y], lx < ly ? lx : ly);
    if (r) return r;
    if (lx != ly) return lx < ly ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* Bottom-up merge sort of ids by their bytes (stable, no global state). */
static bool sort_ids(int32_t* a, size_t n, const SortCtx* c) {
    int32_t* tmp = malloc(sizeof(int32_t) * (n ? n : 1));
    if (!tmp) return false;
    int32_t *src = a, *dst = tmp;
    for (size_t w = 1; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) dst[k++] = cmp_tok(src[j], src[i], c) < 0 ? src[j++] : src[i++];
            while (i < mid) dst[k++] = src[i++];
            while (j < hi) dst[k++] = src[j++];
        }
        int32_t* t = src;
        src = dst;
        dst = t;
    }
    if (src != a) memcpy(a, src, sizeof(int32_t) * n);
    free(tmp);
    return true;
}

/* Printable ASCII other than the quote and the backslash: the bytes a JSON
 * string or a free-text rule takes as they are. */
static inline bool plain_byte(uint8_t b) { return b >= 0x20 && b < 0x7f && b != '"' && b != '\\'; }

static bool plain_token(const GVocab* v, int32_t id) {
    for (uint32_t i = v->tb_off[id]; i < v->tb_off[id + 1]; i++)
        if (!plain_byte(v->tb[i])) return false;
    return true;
}

/* The trie of the tokens order[0..m) (sorted by their bytes): preorder
 * nodes, each string adding nodes below its common prefix with the
 * previous one; max_depth grows to the longest. */
static bool build_trie(GVocab* v, const int32_t* order, int32_t m, GTrie* out) {
    memset(out, 0, sizeof *out);
    GArray* nodes = g_array_new(FALSE, FALSE, sizeof(GTrieNode));
    out->toks = malloc(sizeof(int32_t) * (size_t)(m ? m : 1));
    if (!out->toks) {
        g_array_free(nodes, TRUE);
        return false;
    }
    const uint8_t* prev = NULL;
    uint32_t prev_len = 0;
    for (int32_t k = 0; k < m; k++) {
        int32_t id = order[k];
        const uint8_t* s = v->tb + v->tb_off[id];
        uint32_t len = v->tb_off[id + 1] - v->tb_off[id];
        uint32_t lcp = 0;
        while (prev && lcp < len && lcp < prev_len && s[lcp] == prev[lcp]) lcp++;
        for (uint32_t d = lcp + 1; d <= len; d++) {
            GTrieNode nd = {.byte = s[d - 1], .depth = (uint16_t)d, .skip = 0, .tok_begin = (uint32_t)k};
            g_array_append_val(nodes, nd);
        }
        out->toks[k] = id;
        if (len > v->max_depth) v->max_depth = len;
        prev = s;
        prev_len = len;
    }
    /* tok ranges: a node's tokens are [tok_begin, next node's tok_begin) -- tokens were only ever
     * attached to the node made last; skip: the first later node no deeper */
    GTrieNode end = {.tok_begin = (uint32_t)m};
    g_array_append_val(nodes, end);
    out->n_nodes = nodes->len - 1;
    out->nodes = (GTrieNode*)g_array_free(nodes, FALSE);
    uint32_t* open = malloc(sizeof(uint32_t) * (v->max_depth + 2));
    if (!open) {
        free(out->nodes);
        free(out->toks);
        memset(out, 0, sizeof *out);
        return false;
    }
    uint32_t top = 0;
    for (uint32_t i = 0; i < out->n_nodes; i++) {
        while (top && out->nodes[open[top - 1]].depth >= out->nodes[i].depth) out->nodes[open[--top]].skip = i;
        open[top++] = i;
    }
    while (top) out->nodes[open[--top]].skip = out->n_nodes;
    free(open);
    return true;
}

MglStatus gvocab_build(GVocab* v, const MglTokenizer* tok, MglErr* err) {
    memset(v, 0, sizeof *v);
    const int32_t V = mgl_tokenizer_n_vocab(tok);
    if (V <= 0) return mgl_err(err, MGL_E_INVALID, "grammar: the tokenizer has no vocabulary");
    v->n_vocab = V;
    v->tb_off = malloc(sizeof(uint32_t) * ((size_t)V + 1));
    v->kind = malloc((size_t)V);
    GByteArray* all = g_byte_array_new();
    uint8_t* buf = malloc(MAX_TOKEN_BYTES);
    if (!v->tb_off || !v->kind || !buf) {
        free(buf);
        g_byte_array_free(all, TRUE);
        gvocab_clear(v);
        return mgl_err(err, MGL_E_NOMEM, "grammar: out of memory");
    }
    int32_t n_text = 0;
    for (int32_t id = 0; id < V; id++) {
        v->tb_off[id] = all->len;
        int k = gram_token_bytes(tok, id, buf, MAX_TOKEN_BYTES);
        if (k < 0) {
            v->kind[id] = GT_SPECIAL;
        } else if (k == 0 || k > MAX_TOKEN_BYTES) {
            v->kind[id] = GT_EMPTY; /* nothing to add, or absurdly long: never allowed */
        } else {
            v->kind[id] = GT_TEXT;
            g_byte_array_append(all, buf, (guint)k);
            n_text++;
        }
    }
    v->tb_off[V] = all->len;
    free(buf);
    v->tb = (uint8_t*)g_byte_array_free(all, FALSE);

    int32_t* order = malloc(sizeof(int32_t) * (size_t)(n_text ? n_text : 1));
    if (!order) {
        gvocab_clear(v);
        return mgl_err(err, MGL_E_NOMEM, "grammar: out of memory");
    }
    int32_t m = 0;
    for (int32_t id = 0; id < V; id++)
        if (v->kind[id] == GT_TEXT) order[m++] = id;
    SortCtx ctx = {v->tb, v->tb_off};
    if (!sort_ids(order, (size_t)m, &ctx)) {
        free(order);
        gvocab_clear(v);
        return mgl_err(err, MGL_E_NOMEM, "grammar: out of memory");
    }

    GTrie full;
    bool ok = build_trie(v, order, m, &full);
    v->nodes = full.nodes;
    v->n_nodes = full.n_nodes;
    v->toks = full.toks;
    /* the plain-text tokens as a bitset, the others in their own trie (same order) */
    v->plain_bits = ok ? calloc(((size_t)V + 31) / 32, sizeof(uint32_t)) : NULL;
    int32_t n_rest = 0;
    if (v->plain_bits) {
        for (int32_t k = 0; k < m; k++) {
            int32_t id = order[k];
            if (plain_token(v, id)) {
                v->plain_bits[id >> 5] |= 1u << (id & 31);
                v->n_plain++;
            } else {
                order[n_rest++] = id;
            }
        }
        ok = build_trie(v, order, n_rest, &v->rest);
    }
    free(order);
    if (!ok || !v->plain_bits) {
        gvocab_clear(v);
        return mgl_err(err, MGL_E_NOMEM, "grammar: out of memory");
    }
    return MGL_OK;
}

void gvocab_clear(GVocab* v) {
    free(v->nodes);
    free(v->toks);
    free(v->plain_bits);
    free(v->rest.nodes);
    free(v->rest.toks);
    free(v->tb_off);
    g_free(v->tb);
    free(v->kind);
    memset(v, 0, sizeof *v);
}

/* The tokens of one trie whose bytes can follow state s. */
static size_t walk_trie(const GTrieNode* nodes, uint32_t N, const int32_t* toks, GMatch* m, int32_t s, uint32_t* allow,
                        int32_t n_vocab, int32_t* sstack) {
    size_t n_allowed = 0;
    sstack[0] = s;
    uint32_t i = 0;
    while (i < N) {
        const GTrieNode* nd = &nodes[i];
        int32_t t = gmatch_step(m, sstack[nd->depth - 1], nd->byte);
        if (t < 0) {
            i = nd->skip;
            continue;
        }
        sstack[nd->depth] = t;
        for (uint32_t k = nd->tok_begin; k < nd[1].tok_begin; k++) {
            int32_t id = toks[k];
            if (id < n_vocab) {
                allow[id >> 5] |= 1u << (id & 31);
                n_allowed++;
            }
        }
        i++;
    }
    return n_allowed;
}

size_t gvocab_walk_full(const GVocab* v, GMatch* m, int32_t s, uint32_t* allow, int32_t n_vocab, int32_t* sstack) {
    return walk_trie(v->nodes, v->n_nodes, v->toks, m, s, allow, n_vocab, sstack);
}

/* Whether every plain byte leads s back to s: then any plain token can
 * follow (each of its bytes keeps the state where it was). */
static bool plain_loop(GMatch* m, int32_t s) {
    for (int b = 0x20; b < 0x7f; b++)
        if (plain_byte((uint8_t)b) && gmatch_step(m, s, (uint8_t)b) != s) return false;
    return true;
}

size_t gvocab_walk(const GVocab* v, GMatch* m, int32_t s, uint32_t* allow, int32_t n_vocab, int32_t* sstack) {
    if (v->n_plain == 0 || !plain_loop(m, s)) return gvocab_walk_full(v, m, s, allow, n_vocab, sstack);
    /* the plain tokens at once (those below n_vocab), then a walk over the others */
    const size_t words = ((size_t)n_vocab + 31) / 32, have = ((size_t)v->n_vocab + 31) / 32;
    size_t n_allowed = 0;
    for (size_t w = 0; w < words && w < have; w++) {
        uint32_t bits = v->plain_bits[w];
        if (w == words - 1 && (n_vocab & 31)) bits &= (1u << (n_vocab & 31)) - 1u;
        allow[w] |= bits;
        n_allowed += (size_t)__builtin_popcount(bits);
    }
    return n_allowed + walk_trie(v->rest.nodes, v->rest.n_nodes, v->rest.toks, m, s, allow, n_vocab, sstack);
}
