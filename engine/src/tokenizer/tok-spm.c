/* tok-spm.c: SentencePiece tokenizer.model (protobuf ModelProto, parsed by
 * hand) and its BPE encoding, which merges the adjacent pair whose joined
 * piece has the highest score (leftmost on ties), as bpe_model.cc does, then
 * splits pieces that are unknown into <0xNN> byte pieces (byte_fallback). */
#include "tok-internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- protobuf wire format ------------------------------------------------- */

typedef struct {
    const uint8_t* p;
    const uint8_t* end;
} Pb;

static bool pb_varint(Pb* b, uint64_t* v) {
    uint64_t r = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (b->p >= b->end) return false;
        uint8_t c = *b->p++;
        if (shift == 63 && c > 1) return false;
        r |= (uint64_t)(c & 0x7F) << shift;
        if (!(c & 0x80)) {
            *v = r;
            return true;
        }
    }
    return false;
}

/* Reads one field header and, for length-delimited fields, the payload. */
typedef struct {
    uint32_t field;
    int wire;
    uint64_t v;          /* varint / fixed value */
    const uint8_t* data; /* wire 2 payload */
    size_t len;
} PbField;

static bool pb_next(Pb* b, PbField* f) {
    uint64_t key;
    if (!pb_varint(b, &key)) return false;
    f->field = (uint32_t)(key >> 3);
    f->wire = (int)(key & 7);
    if (f->field == 0) return false;
    switch (f->wire) {
    case 0: return pb_varint(b, &f->v);
    case 1:
        if (b->end - b->p < 8) return false;
        f->v = 0;
        for (int i = 7; i >= 0; i--) f->v = (f->v << 8) | b->p[i];
        b->p += 8;
        return true;
    case 2: {
        uint64_t l;
        if (!pb_varint(b, &l) || l > (uint64_t)(b->end - b->p)) return false;
        f->data = b->p;
        f->len = (size_t)l;
        b->p += l;
        return true;
    }
    case 5:
        if (b->end - b->p < 4) return false;
        f->v = (uint64_t)b->p[0] | (uint64_t)b->p[1] << 8 | (uint64_t)b->p[2] << 16 | (uint64_t)b->p[3] << 24;
        b->p += 4;
        return true;
    default: return false; /* groups (3/4) and reserved types */
    }
}

/* ---- loading ---------------------------------------------------------------- */

typedef struct {
    const uint8_t* piece;
    size_t len;
    float score;
    int type;
} RawPiece;

static MglStatus parse_piece(const char* path, const uint8_t* d, size_t n, RawPiece* rp, size_t idx, MglErr* err) {
    Pb b = {d, d + n};
    rp->piece = NULL;
    rp->len = 0;
    rp->score = 0;
    rp->type = SPM_NORMAL;
    bool has_piece = false;
    while (b.p < b.end) {
        PbField f;
        if (!pb_next(&b, &f)) return mgl_err(err, MGL_E_FORMAT, "%s: piece %zu: malformed protobuf", path, idx);
        if (f.field == 1 && f.wire == 2) {
            rp->piece = f.data;
            rp->len = f.len;
            has_piece = true;
        } else if (f.field == 2 && f.wire == 5) {
            uint32_t u = (uint32_t)f.v;
            memcpy(&rp->score, &u, 4);
        } else if (f.field == 3 && f.wire == 0)
            rp->type = (int)f.v;
    }
    if (!has_piece) return mgl_err(err, MGL_E_FORMAT, "%s: piece %zu has no text", path, idx);
    if (rp->type < SPM_NORMAL || rp->type > SPM_BYTE)
        return mgl_err(err, MGL_E_FORMAT, "%s: piece %zu has unknown type %d", path, idx, rp->type);
    if (!tok_utf8_valid((const char*)rp->piece, rp->len))
        return mgl_err(err, MGL_E_FORMAT, "%s: piece %zu is not valid UTF-8", path, idx);
    return MGL_OK;
}

static int cmp_len_desc(const void* a, const void* b) {
    size_t la = strlen(*(char*const*)a), lb = strlen(*(char*const*)b);
    return la > lb ? -1 : la < lb;
}

MglStatus tok_load_spm(MglTokenizer* t, const char* path, MglErr* err) {
    MglMap* map = NULL;
    MGL_TRY(mgl_map_open(path, &map, err));
    const uint8_t* d = map->data;
    size_t n = map->size;
    GArray* pieces = g_array_new(FALSE, FALSE, sizeof(RawPiece));
    MglStatus st = MGL_OK;
    /* trainer / normalizer defaults from sentencepiece_model.proto */
    int64_t model_type = 1, unk_id = 0, bos_id = 1, eos_id = 2;
    bool byte_fallback = false, ws_suffix = false;
    bool add_dummy = true, remove_ws = true, escape_ws = true;
    size_t charsmap_len = 0;
    Pb b = {d, n ? d + n : d}; /* an empty file maps to NULL: no arithmetic on it */
    if (n == 0) st = mgl_err(err, MGL_E_FORMAT, "%s: empty file", path);
    while (st == MGL_OK && b.p < b.end) {
        PbField f;
        if (!pb_next(&b, &f)) {
            st = mgl_err(err, MGL_E_FORMAT, "%s: malformed protobuf at byte %zu", path, (size_t)(b.p - d));
            break;
        }
        if (f.field == 1 && f.wire == 2) {
            RawPiece rp;
            st = parse_piece(path, f.data, f.len, &rp, pieces->len, err);
            if (st == MGL_OK) g_array_append_val(pieces, rp);
        } else if (f.field == 2 && f.wire == 2) { /* TrainerSpec */
            Pb s = {f.data, f.data + f.len};
            while (s.p < s.end) {
                PbField g;
                if (!pb_next(&s, &g)) {
                    st = mgl_err(err, MGL_E_FORMAT, "%s: malformed trainer_spec", path);
                    break;
                }
                if (g.wire != 0) continue;
                int64_t iv = (int64_t)(int32_t)(uint32_t)g.v; /* int32 fields: negative ids arrive sign-extended */
                switch (g.field) {
                case 3: model_type = iv; break;
                case 24: ws_suffix = g.v != 0; break;
                case 35: byte_fallback = g.v != 0; break;
                case 40: unk_id = iv; break;
                case 41: bos_id = iv; break;
                case 42: eos_id = iv; break;
                default: break;
                }
            }
        } else if (f.field == 3 && f.wire == 2) { /* NormalizerSpec */
            Pb s = {f.data, f.data + f.len};
            while (s.p < s.end) {
                PbField g;
                if (!pb_next(&s, &g)) {
                    st = mgl_err(err, MGL_E_FORMAT, "%s: malformed normalizer_spec", path);
                    break;
                }
                if (g.field == 2 && g.wire == 2)
                    charsmap_len = g.len;
                else if (g.wire == 0 && g.field == 3)
                    add_dummy = g.v != 0;
                else if (g.wire == 0 && g.field == 4)
                    remove_ws = g.v != 0;
                else if (g.wire == 0 && g.field == 5)
                    escape_ws = g.v != 0;
            }
        }
    }
    if (st == MGL_OK && model_type != 2)
        st = mgl_err(err, MGL_E_UNSUPPORTED, "%s: SentencePiece model_type %lld is not supported (only BPE = 2)", path,
                     (long long)model_type);
    if (st == MGL_OK && charsmap_len > 0)
        st = mgl_err(err, MGL_E_UNSUPPORTED,
                     "%s: SentencePiece normalization rules (precompiled_charsmap) are not supported; "
                     "only the identity normalizer",
                     path);
    if (st == MGL_OK && pieces->len == 0) st = mgl_err(err, MGL_E_FORMAT, "%s: no pieces", path);
    if (st == MGL_OK && pieces->len > (1u << 24)) st = mgl_err(err, MGL_E_FORMAT, "%s: too many pieces", path);
    if (st == MGL_OK) st = tok_alloc_vocab(t, (int32_t)pieces->len, err);
    if (st == MGL_OK) {
        t->scores = calloc(pieces->len, sizeof *t->scores);
        t->spm_type = calloc(pieces->len, 1);
        if (!t->scores || !t->spm_type || !tok_strmap_init(&t->vocab, pieces->len))
            st = mgl_err(err, MGL_E_NOMEM, "%s: out of memory", path);
    }
    GPtrArray* user = g_ptr_array_new();
    for (guint i = 0; i < pieces->len && st == MGL_OK; i++) {
        const RawPiece* rp = &g_array_index(pieces, RawPiece, i);
        st = tok_set_piece(t, (int32_t)i, (const char*)rp->piece, rp->len, err);
        if (st != MGL_OK) break;
        t->scores[i] = rp->score;
        t->spm_type[i] = (uint8_t)rp->type;
        if (rp->len == 0) {
            st = mgl_err(err, MGL_E_FORMAT, "%s: piece %u is empty", path, i);
            break;
        }
        if (tok_strmap_get(&t->vocab, t->pieces[i], rp->len) >= 0) {
            st = mgl_err(err, MGL_E_FORMAT, "%s: piece %u is a duplicate", path, i);
            break;
        }
        if (!tok_strmap_put(&t->vocab, t->pieces[i], rp->len, (int32_t)i)) {
            st = mgl_err(err, MGL_E_NOMEM, "%s: out of memory", path);
            break;
        }
        if (rp->type == SPM_USER_DEFINED) g_ptr_array_add(user, t->pieces[i]);
        if (rp->type == SPM_BYTE) {
            /* "<0xNN>" */
            if (rp->len == 6 && memcmp(rp->piece, "<0x", 3) == 0 && rp->piece[5] == '>') {
                char hx[3] = {(char)rp->piece[3], (char)rp->piece[4], 0};
                char* e = NULL;
                long v = strtol(hx, &e, 16);
                if (e && *e == 0 && v >= 0 && v < 256) t->byte_ids[v] = (int32_t)i;
            }
        }
        if (rp->type == SPM_UNKNOWN) t->unk_id = (int32_t)i;
        if (rp->type == SPM_CONTROL || rp->type == SPM_UNKNOWN) {
            /* The HF conversion makes control and unknown pieces special added tokens. */
            TokAdded a = {.content = t->pieces[i], .len = rp->len, .id = (int32_t)i, .special = true};
            st = tok_add_added(t, &a, err);
        }
    }
    if (st == MGL_OK && t->unk_id < 0) st = mgl_err(err, MGL_E_FORMAT, "%s: no unknown (<unk>) piece", path);
    if (st == MGL_OK && user->len) {
        t->spm_user = tok_arena_alloc(&t->arena, user->len * sizeof(char*));
        if (!t->spm_user)
            st = mgl_err(err, MGL_E_NOMEM, "%s: out of memory", path);
        else {
            memcpy(t->spm_user, user->pdata, user->len * sizeof(char*));
            t->n_spm_user = user->len;
            qsort(t->spm_user, t->n_spm_user, sizeof(char*), cmp_len_desc);
        }
    }
    g_ptr_array_free(user, TRUE);
    if (st == MGL_OK) st = tok_finish_added(t, err);
    if (st == MGL_OK) {
        t->byte_fallback = byte_fallback;
        t->spm_add_dummy_prefix = add_dummy;
        t->spm_remove_extra_ws = remove_ws;
        t->spm_escape_ws = escape_ws;
        t->spm_ws_suffix = ws_suffix;
        t->bos = bos_id >= 0 && bos_id < t->n_vocab ? (int32_t)bos_id : -1;
        t->eos = eos_id >= 0 && eos_id < t->n_vocab ? (int32_t)eos_id : -1;
        (void)unk_id;
        tok_set_sp_decoder(t);
    }
    g_array_free(pieces, TRUE);
    mgl_map_unref(map);
    return st;
}

/* ---- encoding ---------------------------------------------------------------- */

/* Symbol: a span of the normalized text. */
typedef struct {
    uint32_t start, len;
    int32_t prev, next;
    bool freeze;
} SSym;

typedef struct {
    float score;
    uint32_t left, right;
    uint32_t size; /* byte length of the joined piece when queued */
} SPair;

static bool spair_before(const SPair* a, const SPair* b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

TOK_DEFINE_HEAP(SHeap, SPair, sheap_push, sheap_pop, spair_before)

/* Piece types that take part in merging (sentencepiece's pieces_ map). */
static int32_t merge_piece(const MglTokenizer* t, const char* s, size_t n) {
    int32_t id = tok_strmap_get(&t->vocab, s, n);
    if (id < 0) return -1;
    int ty = t->spm_type[id];
    return (ty == SPM_NORMAL || ty == SPM_USER_DEFINED || ty == SPM_UNUSED) ? id : -1;
}

typedef struct {
    const MglTokenizer* t;
    const char* s;
    SSym* sym;
    SHeap* heap;
    GHashTable* rev; /* UNUSED piece -> its (left, right) split, for resegmenting */
    bool oom;
} SCtx;

static void maybe_add(SCtx* c, int32_t left, int32_t right) {
    if (left < 0 || right < 0 || c->sym[left].freeze || c->sym[right].freeze) return;
    const SSym* l = &c->sym[left];
    const SSym* r = &c->sym[right];
    uint32_t size = l->len + r->len;
    int32_t id = merge_piece(c->t, c->s + l->start, size);
    if (id < 0) return;
    SPair p = {c->t->scores[id], (uint32_t)left, (uint32_t)right, size};
    if (!sheap_push(c->heap, p)) c->oom = true;
    if (c->t->spm_type[id] == SPM_UNUSED) {
        char* key = g_strndup(c->s + l->start, size);
        uint32_t* v = g_new(uint32_t, 2);
        v[0] = l->len; /* split point inside the piece */
        v[1] = size;
        g_hash_table_replace(c->rev, key, v);
    }
}

/* PieceToId as sentencepiece: control/unknown/byte first, then the rest, else unk. */
static int32_t piece_to_id(const MglTokenizer* t, const char* s, size_t n) {
    int32_t id = tok_strmap_get(&t->vocab, s, n);
    return id >= 0 ? id : t->unk_id;
}

static void emit_piece(SCtx* c, const char* s, size_t n, GArray* out_spans, int depth) {
    const MglTokenizer* t = c->t;
    int32_t id = tok_strmap_get(&t->vocab, s, n);
    if (id >= 0 && t->spm_type[id] == SPM_UNUSED && depth < 64) {
        char* key = g_strndup(s, n);
        const uint32_t* v = g_hash_table_lookup(c->rev, key);
        g_free(key);
        if (v && v[0] > 0 && v[0] < n) {
            emit_piece(c, s, v[0], out_spans, depth + 1);
            emit_piece(c, s + v[0], n - v[0], out_spans, depth + 1);
            return;
        }
    }
    uint64_t span = ((uint64_t)(uintptr_t)(s - c->s) << 32) | (uint32_t)n;
    g_array_append_val(out_spans, span);
}

MglStatus tok_spm_encode(const MglTokenizer* t, const char* text, size_t n, GArray* ids, MglErr* err) {
    /* Normalize: identity rules, optional whitespace cleanup, dummy prefix, ▁ for spaces. */
    GString* norm = g_string_new(NULL);
    size_t a = 0, e = n;
    if (t->spm_remove_extra_ws) {
        while (a < e && text[a] == ' ') a++;
        while (e > a && text[e - 1] == ' ') e--;
    }
    if (a < e) {
        const char* ws = t->spm_escape_ws ? "\xE2\x96\x81" : " ";
        if (t->spm_add_dummy_prefix && !t->spm_ws_suffix) g_string_append(norm, ws);
        for (size_t i = a; i < e; i++) {
            if (text[i] == ' ') {
                if (t->spm_remove_extra_ws && i > a && text[i - 1] == ' ') continue;
                g_string_append(norm, ws);
            } else {
                g_string_append_c(norm, text[i]);
            }
        }
        if (t->spm_add_dummy_prefix && t->spm_ws_suffix) g_string_append(norm, ws);
    }
    if (norm->len == 0 || norm->len > UINT32_MAX / 2) {
        bool big = norm->len > 0;
        g_string_free(norm, TRUE);
        return big ? mgl_err(err, MGL_E_INVALID, "%s: text too long", t->path) : MGL_OK;
    }

    /* Split into characters (user-defined symbols stay whole and frozen). */
    size_t cap = norm->len;
    SSym* sym = malloc(cap * sizeof *sym);
    SHeap heap = {0};
    GArray* spans = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    SCtx c = {t, norm->str, sym, &heap, g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free), !sym};
    size_t ns = 0;
    for (size_t i = 0; i < norm->len && !c.oom;) {
        size_t l = 0;
        bool freeze = false;
        for (size_t k = 0; k < t->n_spm_user; k++) {
            size_t ul = strlen(t->spm_user[k]);
            if (ul <= norm->len - i && memcmp(norm->str + i, t->spm_user[k], ul) == 0) {
                l = ul;
                freeze = true;
                break;
            }
        }
        if (!l) {
            uint32_t cp;
            int cl = tok_utf8_next(norm->str + i, norm->len - i, &cp);
            l = cl > 0 ? (size_t)cl : 1;
        }
        sym[ns] = (SSym){(uint32_t)i, (uint32_t)l, (int32_t)ns - 1, -1, freeze};
        if (ns > 0) sym[ns - 1].next = (int32_t)ns;
        ns++;
        i += l;
    }
    for (size_t i = 1; i < ns && !c.oom; i++) maybe_add(&c, (int32_t)i - 1, (int32_t)i);
    while (heap.n > 0 && !c.oom) {
        SPair top = sheap_pop(&heap);
        SSym* l = &sym[top.left];
        SSym* r = &sym[top.right];
        /* stale: one side was merged away or grew since this pair was queued */
        if (l->len == 0 || r->len == 0 || l->len + r->len != top.size || l->next != (int32_t)top.right) continue;
        l->len += r->len;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = (int32_t)top.left;
        r->len = 0;
        maybe_add(&c, l->prev, (int32_t)top.left);
        maybe_add(&c, (int32_t)top.left, l->next);
    }
    if (!c.oom)
        for (int32_t i = ns ? 0 : -1; i >= 0; i = sym[i].next)
            emit_piece(&c, norm->str + sym[i].start, sym[i].len, spans, 0);

    /* Ids: unknown pieces become bytes (byte_fallback) or fuse into one unk. */
    bool prev_unk = false;
    for (guint k = 0; k < spans->len && !c.oom; k++) {
        uint64_t sp = g_array_index(spans, uint64_t, k);
        const char* s = norm->str + (sp >> 32);
        size_t len = (uint32_t)sp;
        int32_t id = piece_to_id(t, s, len);
        bool is_unk = id == t->unk_id;
        if (is_unk && t->byte_fallback) {
            for (size_t q = 0; q < len; q++) {
                int32_t bid = t->byte_ids[(uint8_t)s[q]];
                if (bid < 0) bid = t->unk_id;
                g_array_append_val(ids, bid);
            }
            prev_unk = false;
            continue;
        }
        if (!(is_unk && prev_unk)) g_array_append_val(ids, id);
        prev_unk = is_unk;
    }
    bool oom = c.oom;
    g_hash_table_destroy(c.rev);
    g_array_free(spans, TRUE);
    free(heap.v);
    free(sym);
    g_string_free(norm, TRUE);
    if (oom) return mgl_err(err, MGL_E_NOMEM, "%s: out of memory while encoding", t->path);
    return MGL_OK;
}
