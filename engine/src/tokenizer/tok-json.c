/* tok-json.c: tokenizer.json and tokenizer_config.json, read through the
 * arena-backed JSON DOM of tok-jdom.c rather than json-glib: the Llama-3
 * tokenizer.json is 9 MB with 128k vocabulary entries and 280k merges, and a
 * GObject tree of that costs most of a second. Tokenizer files are untrusted
 * input: the parser is strict and bounded, and every section is checked. */
#include "tok-internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- tokenizer.json sections ----------------------------------------------------- */

static MglStatus bad(MglTokenizer* t, MglErr* err, const char* what) {
    return mgl_err(err, MGL_E_FORMAT, "%s: %s", t->path, what);
}

static MglStatus unsupported(MglTokenizer* t, MglErr* err, const char* section, const JVal* type) {
    char name[64] = "?";
    if (type && type->type == J_STR)
        snprintf(name, sizeof name, "%.*s", (int)(type->u.str.len > 60 ? 60 : type->u.str.len), type->u.str.s);
    return mgl_err(err, MGL_E_UNSUPPORTED, "%s: %s type \"%s\" is not supported", t->path, section, name);
}

/* Flattens nested Sequence nodes into one list of leaf nodes. */
static MglStatus flatten(MglTokenizer* t, const JVal* node, const char* list_key, GPtrArray* out, int depth,
                         MglErr* err) {
    if (depth > 16) return bad(t, err, "Sequence nested too deeply");
    if (node->type != J_OBJ) return bad(t, err, "pipeline step is not an object");
    const JVal* type = tok_jget(node, "type");
    if (tok_jstr_eq(type, "Sequence")) {
        const JVal* list = tok_jget(node, list_key);
        if (!list || list->type != J_ARR)
            return mgl_err(err, MGL_E_FORMAT, "%s: Sequence without \"%s\"", t->path, list_key);
        for (uint32_t i = 0; i < list->n; i++) MGL_TRY(flatten(t, &list->u.items[i], list_key, out, depth + 1, err));
        return MGL_OK;
    }
    g_ptr_array_add(out, (gpointer)node);
    return MGL_OK;
}

/* {"String": "x"} pattern; a {"Regex": ...} is returned through *regex. */
static bool pattern_string(const JVal* pat, const JVal** str, const JVal** regex) {
    *str = tok_jopt(pat, "String");
    *regex = tok_jopt(pat, "Regex");
    return (*str && (*str)->type == J_STR) || (*regex && (*regex)->type == J_STR);
}

static MglStatus load_normalizer(MglTokenizer* t, const JVal* root, MglErr* err) {
    const JVal* n = tok_jopt(root, "normalizer");
    if (!n) return MGL_OK;
    GPtrArray* list = g_ptr_array_new();
    MglStatus st = flatten(t, n, "normalizers", list, 0, err);
    if (st == MGL_OK && list->len) {
        t->norm = tok_arena_alloc(&t->arena, list->len * sizeof *t->norm);
        if (!t->norm) st = mgl_err(err, MGL_E_NOMEM, "%s: out of memory", t->path);
    }
    for (guint i = 0; i < list->len && st == MGL_OK; i++) {
        const JVal* o = list->pdata[i];
        const JVal* type = tok_jget(o, "type");
        TokNormOp op = {0};
        if (tok_jstr_eq(type, "Prepend")) {
            const JVal* pre = tok_jget(o, "prepend");
            if (!pre || pre->type != J_STR) {
                st = bad(t, err, "Prepend normalizer without a string");
                break;
            }
            op.type = NORM_PREPEND;
            op.a = tok_jdup(t, pre);
            op.alen = pre->u.str.len;
        } else if (tok_jstr_eq(type, "Replace")) {
            const JVal *s, *re, *content = tok_jget(o, "content");
            if (!pattern_string(tok_jget(o, "pattern"), &s, &re) || !content || content->type != J_STR) {
                st = bad(t, err, "Replace normalizer needs a pattern and a content");
                break;
            }
            if (!s) {
                st = mgl_err(err, MGL_E_UNSUPPORTED, "%s: Replace normalizer with a Regex pattern is not supported",
                             t->path);
                break;
            }
            op.type = NORM_REPLACE;
            op.a = tok_jdup(t, s);
            op.alen = s->u.str.len;
            op.b = tok_jdup(t, content);
            op.blen = content->u.str.len;
        } else if (tok_jstr_eq(type, "NFC"))
            op.type = NORM_NFC;
        else if (tok_jstr_eq(type, "NFD"))
            op.type = NORM_NFD;
        else if (tok_jstr_eq(type, "NFKC"))
            op.type = NORM_NFKC;
        else if (tok_jstr_eq(type, "NFKD"))
            op.type = NORM_NFKD;
        else if (tok_jstr_eq(type, "Lowercase"))
            op.type = NORM_LOWERCASE;
        else if (tok_jstr_eq(type, "Strip")) {
            op.type = NORM_STRIP;
            op.left = tok_jbool(o, "strip_left", true);
            op.right = tok_jbool(o, "strip_right", true);
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
    const JVal* r = tok_jget(o, "replacement");
    uint32_t c = 0x2581;
    if (r) {
        if (r->type != J_STR || r->u.str.len == 0) return bad(t, err, "Metaspace replacement is not a character");
        int l = tok_utf8_next(r->u.str.s, r->u.str.len, &c);
        if (l <= 0 || (size_t)l != r->u.str.len) return bad(t, err, "Metaspace replacement must be one character");
    }
    *cp = c;
    *repl_len = g_unichar_to_utf8(c, repl);
    const JVal* ps = tok_jopt(o, "prepend_scheme");
    if (ps) {
        if (tok_jstr_eq(ps, "always"))
            *prepend = PREPEND_ALWAYS;
        else if (tok_jstr_eq(ps, "first"))
            *prepend = PREPEND_FIRST;
        else if (tok_jstr_eq(ps, "never"))
            *prepend = PREPEND_NEVER;
        else
            return bad(t, err, "Metaspace prepend_scheme must be always, first or never");
    } else {
        *prepend = tok_jbool(o, "add_prefix_space", true) ? PREPEND_ALWAYS : PREPEND_NEVER;
    }
    return MGL_OK;
}

static MglStatus load_pretokenizer(MglTokenizer* t, const JVal* root, MglErr* err) {
    const JVal* n = tok_jopt(root, "pre_tokenizer");
    if (!n) return MGL_OK;
    GPtrArray* list = g_ptr_array_new();
    MglStatus st = flatten(t, n, "pretokenizers", list, 0, err);
    if (st == MGL_OK && list->len) {
        t->pre = tok_arena_alloc(&t->arena, list->len * sizeof *t->pre);
        if (!t->pre) st = mgl_err(err, MGL_E_NOMEM, "%s: out of memory", t->path);
    }
    for (guint i = 0; i < list->len && st == MGL_OK; i++) {
        const JVal* o = list->pdata[i];
        const JVal* type = tok_jget(o, "type");
        TokPreOp op = {0};
        if (tok_jstr_eq(type, "Metaspace")) {
            op.type = PRE_METASPACE;
            st = metaspace_fields(t, o, &op.repl_cp, op.repl, &op.repl_len, &op.prepend, err);
            op.split = tok_jbool(o, "split", true);
        } else if (tok_jstr_eq(type, "ByteLevel")) {
            op.type = PRE_BYTELEVEL;
            op.add_prefix_space = tok_jbool(o, "add_prefix_space", true);
            op.use_regex = tok_jbool(o, "use_regex", true);
        } else if (tok_jstr_eq(type, "Split")) {
            op.type = PRE_SPLIT;
            const JVal *s, *re;
            if (!pattern_string(tok_jget(o, "pattern"), &s, &re)) {
                st = bad(t, err, "Split pre-tokenizer without a pattern");
                break;
            }
            if (tok_jbool(o, "invert", false)) {
                st = mgl_err(err, MGL_E_UNSUPPORTED, "%s: Split pre-tokenizer with invert=true is not supported",
                             t->path);
                break;
            }
            const JVal* b = tok_jget(o, "behavior");
            if (tok_jstr_eq(b, "Isolated"))
                op.behavior = SPLIT_ISOLATED;
            else if (tok_jstr_eq(b, "Removed"))
                op.behavior = SPLIT_REMOVED;
            else if (tok_jstr_eq(b, "MergedWithPrevious"))
                op.behavior = SPLIT_MERGED_PREV;
            else if (tok_jstr_eq(b, "MergedWithNext"))
                op.behavior = SPLIT_MERGED_NEXT;
            else if (tok_jstr_eq(b, "Contiguous"))
                op.behavior = SPLIT_CONTIGUOUS;
            else {
                st = bad(t, err, "Split pre-tokenizer with an unknown behavior");
                break;
            }
            if (s) {
                op.literal = tok_jdup(t, s);
                op.literal_len = s->u.str.len;
                if (!op.literal) {
                    st = mgl_err(err, MGL_E_NOMEM, "%s: out of memory", t->path);
                    break;
                }
            } else {
                char* pat = g_strndup(re->u.str.s, re->u.str.len);
                op.regex = tok_regex_from_pattern(pat);
                if (op.regex == TOK_RE_NONE) {
                    st = mgl_err(err, MGL_E_UNSUPPORTED,
                                 "%s: Split pre-tokenizer regex is not one this build knows "
                                 "(GPT-2, Llama-3, Qwen2): %.120s",
                                 t->path, pat);
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
    const JVal* n = tok_jopt(root, "decoder");
    t->dec_kind = DECODER_NONE;
    if (!n) return MGL_OK;
    GPtrArray* list = g_ptr_array_new();
    MglStatus st = flatten(t, n, "decoders", list, 0, err);
    if (st == MGL_OK && list->len == 1 && tok_jstr_eq(tok_jget(list->pdata[0], "type"), "ByteLevel")) {
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
        const JVal* type = tok_jget(o, "type");
        TokDecOp op = {0};
        if (tok_jstr_eq(type, "Replace")) {
            const JVal *s, *re, *content = tok_jget(o, "content");
            if (!pattern_string(tok_jget(o, "pattern"), &s, &re) || !content || content->type != J_STR) {
                st = bad(t, err, "Replace decoder needs a pattern and a content");
                break;
            }
            if (!s) {
                st = mgl_err(err, MGL_E_UNSUPPORTED, "%s: Replace decoder with a Regex pattern is not supported",
                             t->path);
                break;
            }
            op.type = DEC_REPLACE;
            op.a = tok_jdup(t, s);
            op.alen = s->u.str.len;
            op.b = tok_jdup(t, content);
            op.blen = content->u.str.len;
            if (!op.a || !op.b) {
                st = mgl_err(err, MGL_E_NOMEM, "%s: out of memory", t->path);
                break;
            }
        } else if (tok_jstr_eq(type, "ByteFallback")) {
            if (seen_bf || seen_fuse) {
                st = mgl_err(err, MGL_E_UNSUPPORTED, "%s: ByteFallback decoder after Fuse or twice is not supported",
                             t->path);
                break;
            }
            op.type = DEC_BYTEFALLBACK;
            seen_bf = true;
        } else if (tok_jstr_eq(type, "Fuse")) {
            op.type = DEC_FUSE;
            seen_fuse = true; /* a second Fuse is a no-op */
        } else if (tok_jstr_eq(type, "Strip")) {
            op.type = DEC_STRIP;
            const JVal* c = tok_jget(o, "content");
            int64_t a = 0, b = 0;
            if (!c || c->type != J_STR || tok_utf8_next(c->u.str.s, c->u.str.len, &op.content) != (int)c->u.str.len ||
                !tok_jint(tok_jget(o, "start"), 0, 1 << 20, &a) || !tok_jint(tok_jget(o, "stop"), 0, 1 << 20, &b)) {
                st = bad(t, err, "Strip decoder needs a one-character content and start/stop counts");
                break;
            }
            op.start = (int)a;
            op.stop = (int)b;
            if (seen_fuse) global_strips++;
        } else if (tok_jstr_eq(type, "Metaspace")) {
            op.type = DEC_METASPACE;
            char repl[8];
            int rl;
            TokPrepend pp;
            st = metaspace_fields(t, o, &op.content, repl, &rl, &pp, err);
            op.prepend_first = pp != PREPEND_NEVER;
        } else if (tok_jstr_eq(type, "ByteLevel")) {
            st = mgl_err(err, MGL_E_UNSUPPORTED, "%s: ByteLevel decoder combined with other decoders is not supported",
                         t->path);
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
    const JVal* a = tok_jopt(root, "added_tokens");
    if (!a) return MGL_OK;
    if (a->type != J_ARR) return bad(t, err, "added_tokens is not an array");
    for (uint32_t i = 0; i < a->n; i++) {
        const JVal* o = &a->u.items[i];
        const JVal* c = tok_jget(o, "content");
        int64_t id;
        if (o->type != J_OBJ || !c || c->type != J_STR || !tok_jint(tok_jget(o, "id"), 0, (1 << 24) - 1, &id))
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
            .content = (char*)c->u.str.s,
            .len = c->u.str.len,
            .id = (int32_t)id,
            .special = tok_jbool(o, "special", false),
            .lstrip = tok_jbool(o, "lstrip", false),
            .rstrip = tok_jbool(o, "rstrip", false),
            .single_word = tok_jbool(o, "single_word", false),
            .normalized = tok_jbool(o, "normalized", true),
        };
        MGL_TRY(tok_add_added(t, &ad, err));
    }
    return MGL_OK;
}

static MglStatus load_model(MglTokenizer* t, const JVal* root, MglErr* err) {
    const JVal* m = tok_jopt(root, "model");
    if (!m || m->type != J_OBJ) return bad(t, err, "no \"model\" object");
    const JVal* type = tok_jopt(m, "type");
    const JVal* vocab = tok_jget(m, "vocab");
    const JVal* merges = tok_jget(m, "merges");
    if (type && !tok_jstr_eq(type, "BPE")) return unsupported(t, err, "model", type);
    if (!vocab || vocab->type != J_OBJ) return bad(t, err, "model.vocab is not an object");
    if (!merges || merges->type != J_ARR) return bad(t, err, "model.merges is not an array");

    int64_t max_id = -1;
    for (uint32_t i = 0; i < vocab->n; i++) {
        int64_t id;
        if (!tok_jint(&vocab->u.items[2 * i + 1], 0, (1 << 24) - 1, &id))
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
        tok_jint(&vocab->u.items[2 * i + 1], 0, (1 << 24) - 1, &id);
        MGL_TRY(tok_set_piece(t, (int32_t)id, k->u.str.s, k->u.str.len, err));
        if (!tok_strmap_put(&t->vocab, t->pieces[id], k->u.str.len, (int32_t)id))
            return mgl_err(err, MGL_E_NOMEM, "%s: out of memory", t->path);
    }

    t->byte_fallback = tok_jbool(m, "byte_fallback", false);
    t->fuse_unk = tok_jbool(m, "fuse_unk", false);
    t->ignore_merges = tok_jbool(m, "ignore_merges", false);
    const JVal* unk = tok_jopt(m, "unk_token");
    if (unk && unk->type == J_STR) t->unk_id = tok_strmap_get(&t->vocab, unk->u.str.s, unk->u.str.len);
    const JVal* cp = tok_jopt(m, "continuing_subword_prefix");
    if (cp && cp->type == J_STR) t->cont_prefix = tok_jdup(t, cp);
    const JVal* ew = tok_jopt(m, "end_of_word_suffix");
    if (ew && ew->type == J_STR) t->eow_suffix = tok_jdup(t, ew);
    tok_find_byte_pieces(t);

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
            if (!sp) {
                st = mgl_err(err, MGL_E_FORMAT, "%s: merge %u has no space", t->path, i);
                break;
            }
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
        if (plen && bl >= plen && memcmp(b, t->cont_prefix, plen) == 0)
            g_string_append_len(cat, b + plen, (gssize)(bl - plen));
        else
            g_string_append_len(cat, b, (gssize)bl);
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
    const JVal* n = tok_jopt(root, "post_processor");
    if (!n) return MGL_OK;
    GPtrArray* list = g_ptr_array_new();
    MglStatus st = flatten(t, n, "processors", list, 0, err);
    GArray* pre = g_array_new(FALSE, FALSE, sizeof(int32_t));
    GArray* post = g_array_new(FALSE, FALSE, sizeof(int32_t));
    for (guint i = 0; i < list->len && st == MGL_OK; i++) {
        const JVal* o = list->pdata[i];
        const JVal* type = tok_jget(o, "type");
        if (tok_jstr_eq(type, "ByteLevel")) continue; /* only trims offsets */
        if (tok_jstr_eq(type, "TemplateProcessing")) {
            const JVal* single = tok_jget(o, "single");
            const JVal* specials = tok_jget(o, "special_tokens");
            if (!single || single->type != J_ARR) {
                st = bad(t, err, "TemplateProcessing without \"single\"");
                break;
            }
            bool after = false;
            for (uint32_t k = 0; k < single->n && st == MGL_OK; k++) {
                const JVal* it = &single->u.items[k];
                const JVal* sp = tok_jget(it, "SpecialToken");
                if (tok_jget(it, "Sequence")) {
                    after = true;
                    continue;
                }
                if (!sp) {
                    st = bad(t, err, "TemplateProcessing item is neither Sequence nor SpecialToken");
                    break;
                }
                const JVal* name = tok_jget(sp, "id");
                const JVal* def = NULL;
                if (name && name->type == J_STR && specials && specials->type == J_OBJ)
                    for (uint32_t q = 0; q < specials->n; q++)
                        if (specials->u.items[2 * q].u.str.len == name->u.str.len &&
                            memcmp(specials->u.items[2 * q].u.str.s, name->u.str.s, name->u.str.len) == 0)
                            def = &specials->u.items[2 * q + 1];
                const JVal* ids = tok_jget(def, "ids");
                if (!ids || ids->type != J_ARR) {
                    st = bad(t, err, "TemplateProcessing special token without ids");
                    break;
                }
                for (uint32_t q = 0; q < ids->n; q++) {
                    int64_t v;
                    if (!tok_jint(&ids->u.items[q], 0, (1 << 24) - 1, &v)) {
                        st = bad(t, err, "TemplateProcessing id out of range");
                        break;
                    }
                    int32_t id = (int32_t)v;
                    g_array_append_val(after ? post : pre, id);
                }
            }
        } else if (tok_jstr_eq(type, "BertProcessing") || tok_jstr_eq(type, "RobertaProcessing")) {
            const JVal* cls = tok_jget(o, "cls");
            const JVal* sep = tok_jget(o, "sep");
            int64_t c, s;
            if (!cls || cls->type != J_ARR || cls->n != 2 || !tok_jint(&cls->u.items[1], 0, (1 << 24) - 1, &c) ||
                !sep || sep->type != J_ARR || sep->n != 2 || !tok_jint(&sep->u.items[1], 0, (1 << 24) - 1, &s)) {
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
        if (!t->post_pre || !t->post_post)
            st = mgl_err(err, MGL_E_NOMEM, "%s: out of memory", t->path);
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
    MglStatus st = tok_jparse(path, data, len, &dom, &root, err);
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
        if (id >= t->n_vocab || !t->pieces[id])
            st = mgl_err(err, MGL_E_FORMAT, "%s: post_processor id %d is not in the vocabulary", path, id);
    }
    tok_arena_clear(&dom);
    free(data);
    return st;
}

/* ---- tokenizer_config.json -------------------------------------------------------- */

static char* token_name(const JVal* v) {
    if (v && v->type == J_OBJ) v = tok_jget(v, "content");
    if (!v || v->type != J_STR) return NULL;
    return g_strndup(v->u.str.s, v->u.str.len);
}

/* A JSON value's truth as Python tests it once json.load has read it. */
static bool py_truth(const JVal* v) {
    switch (v->type) {
    case J_BOOL: return v->b;
    case J_NUM: return v->u.num != 0;
    case J_STR: return v->u.str.len > 0;
    case J_ARR:
    case J_OBJ: return v->n > 0;
    default: return false; /* null */
    }
}

MglStatus tok_read_config(const char* path, TokConfig* cfg, MglErr* err) {
    memset(cfg, 0, sizeof *cfg);
    cfg->legacy = cfg->add_prefix_space = true; /* LlamaTokenizer's defaults */
    if (!g_file_test(path, G_FILE_TEST_IS_REGULAR)) return MGL_OK;
    char* data = NULL;
    size_t len = 0;
    MGL_TRY(mgl_read_file(path, (size_t)64 << 20, &data, &len, err));
    TokArena dom = {0};
    JVal root;
    MglStatus st = tok_jparse(path, data, len, &dom, &root, err);
    if (st == MGL_OK && root.type != J_OBJ)
        st = mgl_err(err, MGL_E_FORMAT, "%s: top-level JSON value is not an object", path);
    if (st == MGL_OK) {
        const JVal* v;
        if ((v = tok_jopt(&root, "add_bos_token")) && v->type == J_BOOL) {
            cfg->has_add_bos = true;
            cfg->add_bos = v->b;
        }
        if ((v = tok_jopt(&root, "add_eos_token")) && v->type == J_BOOL) {
            cfg->has_add_eos = true;
            cfg->add_eos = v->b;
        }
        if ((v = tok_jget(&root, "clean_up_tokenization_spaces"))) {
            /* transformers keeps whatever value is there and tests its truth */
            cfg->has_clean_up = true;
            cfg->clean_up = py_truth(v);
        }
        cfg->legacy = (v = tok_jopt(&root, "legacy")) ? py_truth(v) : true; /* None means legacy */
        if ((v = tok_jget(&root, "add_prefix_space"))) {
            cfg->add_prefix_space = py_truth(v);
            cfg->has_add_prefix_space = v->type != J_NULL;
        }
        cfg->from_slow = (v = tok_jopt(&root, "from_slow")) && py_truth(v);
        if ((v = tok_jopt(&root, "tokenizer_class")) && v->type == J_STR)
            cfg->tokenizer_class = g_strndup(v->u.str.s, v->u.str.len);
        cfg->bos_name = token_name(tok_jopt(&root, "bos_token"));
        cfg->eos_name = token_name(tok_jopt(&root, "eos_token"));
        const JVal* ad = tok_jopt(&root, "added_tokens_decoder");
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
                const JVal* c = tok_jget(o, "content");
                if (!id_ok || !c || c->type != J_STR || c->u.str.len == 0) {
                    st = mgl_err(err, MGL_E_FORMAT, "%s: added_tokens_decoder entry %u is malformed", path, i);
                    break;
                }
                TokAdded* a = &cfg->added[cfg->n_added++];
                a->id = (int32_t)id;
                a->content = g_strndup(c->u.str.s, c->u.str.len);
                a->len = c->u.str.len;
                a->special = tok_jbool(o, "special", false);
                a->lstrip = tok_jbool(o, "lstrip", false);
                a->rstrip = tok_jbool(o, "rstrip", false);
                a->single_word = tok_jbool(o, "single_word", false);
                a->normalized = tok_jbool(o, "normalized", false);
            }
        }
    }
    tok_arena_clear(&dom);
    free(data);
    if (st != MGL_OK) tok_config_clear(cfg);
    return st;
}

void tok_read_model_config(const char* path, char** tokenizer_class, char** model_type) {
    *tokenizer_class = *model_type = NULL;
    if (!g_file_test(path, G_FILE_TEST_IS_REGULAR)) return;
    char* data = NULL;
    size_t len = 0;
    if (mgl_read_file(path, (size_t)64 << 20, &data, &len, NULL) != MGL_OK) return;
    TokArena dom = {0};
    JVal root;
    if (tok_jparse(path, data, len, &dom, &root, NULL) == MGL_OK && root.type == J_OBJ) {
        const JVal* v;
        if ((v = tok_jopt(&root, "tokenizer_class")) && v->type == J_STR)
            *tokenizer_class = g_strndup(v->u.str.s, v->u.str.len);
        if ((v = tok_jopt(&root, "model_type")) && v->type == J_STR) *model_type = g_strndup(v->u.str.s, v->u.str.len);
    }
    tok_arena_clear(&dom);
    free(data);
}

const char* tok_auto_class(const char* cls, const char* model_type, bool spm_only, size_t* len) {
    /* AutoTokenizer's model_type -> tokenizer class, for the ones that matter here */
    static const char* const by_type[][2] = {{"llama", "LlamaTokenizer"},
                                             {"mistral", "LlamaTokenizer"},
                                             {"mixtral", "LlamaTokenizer"},
                                             {"phi3", "LlamaTokenizer"},
                                             {"gemma", "GemmaTokenizer"},
                                             {"gemma2", "GemmaTokenizer"},
                                             {"cohere", "CohereTokenizer"},
                                             {"bloom", "BloomTokenizer"},
                                             {"qwen2", "Qwen2Tokenizer"},
                                             {"qwen2_moe", "Qwen2Tokenizer"},
                                             {NULL, NULL}};
    if (!cls && model_type)
        for (int i = 0; by_type[i][0]; i++)
            if (!strcmp(model_type, by_type[i][0])) cls = by_type[i][1];
    if (!cls) cls = spm_only ? "LlamaTokenizer" : "PreTrainedTokenizerFast";
    size_t n = strlen(cls);
    if (n > 4 && !strcmp(cls + n - 4, "Fast")) n -= 4; /* AutoTokenizer loads the Fast twin either way */
    *len = n;
    return cls;
}

bool tok_clean_up_default(const char* cls, const char* model_type, bool spm_only) {
    /* Fast classes whose __init__ defaults clean_up_tokenization_spaces to
     * False in transformers 4.36-4.44; every other class takes
     * PreTrainedTokenizerBase's default, True (False only from 4.45). */
    static const char* const no_clean[] = {"LlamaTokenizer",
                                           "CodeLlamaTokenizer",
                                           "GemmaTokenizer",
                                           "CohereTokenizer",
                                           "BloomTokenizer",
                                           "NougatTokenizer",
                                           NULL};
    size_t n;
    cls = tok_auto_class(cls, model_type, spm_only, &n);
    for (int i = 0; no_clean[i]; i++)
        if (strlen(no_clean[i]) == n && !strncmp(cls, no_clean[i], n)) return false;
    return true;
}

void tok_config_clear(TokConfig* cfg) {
    g_free(cfg->tokenizer_class);
    g_free(cfg->bos_name);
    g_free(cfg->eos_name);
    for (size_t i = 0; i < cfg->n_added; i++) g_free(cfg->added[i].content);
    g_free(cfg->added);
    memset(cfg, 0, sizeof *cfg);
}
