/* tok-spm.c: a SentencePiece tokenizer.model (protobuf ModelProto, parsed by
 * hand), turned into the tokenizer AutoTokenizer makes of it when a folder
 * has no tokenizer.json: transformers' Llama conversion (4.42 to 4.45), a
 * BPE model with merges ranked from the piece scores, byte fallback and
 * fused unknowns, control and user-defined pieces as added tokens, and the
 * normalizer / pre-tokenizer / decoder that tokenizer_config.json's `legacy`
 * and `add_prefix_space` choose (tok_spm_pipeline). The proto's own
 * normalizer flags (add_dummy_prefix, remove_extra_whitespaces) play no part
 * there, so they play none here. */
#include "tok-internal.h"

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

/* One candidate merge: a piece that splits into two pieces (at a character
 * boundary). transformers ranks them by the joined piece's score, then the
 * left part's length and the right part's length in characters, all
 * descending; equal keys keep the order of the joined piece's id, then the
 * left part's id, then the right part's. */
typedef struct {
    float score;
    uint32_t len_l, len_r; /* characters */
    int32_t joined, left, right;
} SpmMerge;

static int cmp_merge(const void* pa, const void* pb) {
    const SpmMerge* a = pa;
    const SpmMerge* b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    if (a->len_l != b->len_l) return a->len_l > b->len_l ? -1 : 1;
    if (a->len_r != b->len_r) return a->len_r > b->len_r ? -1 : 1;
    if (a->joined != b->joined) return a->joined < b->joined ? -1 : 1;
    if (a->left != b->left) return a->left < b->left ? -1 : 1;
    return (a->right > b->right) - (a->right < b->right);
}

/* Joined pieces longer than this take part in no merge: every split of a
 * piece is two hash lookups of its length, so a hostile file of long pieces
 * would cost its length squared. SentencePiece's trainer makes pieces of at
 * most 16 characters by default (max_sentencepiece_length). */
#define SPM_MAX_MERGE_PIECE 1024
/* and the bytes hashed in all, at most (a 256k vocabulary needs ~20 M) */
#define SPM_MAX_MERGE_WORK (1ull << 30)

static MglStatus build_merges(MglTokenizer* t, const float* scores, MglErr* err) {
    GArray* m = g_array_new(FALSE, FALSE, sizeof(SpmMerge));
    uint64_t work = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        const char* s = t->pieces[id];
        size_t n = t->piece_len[id];
        if (n > SPM_MAX_MERGE_PIECE) continue;
        work += (uint64_t)n * n;
        if (work > SPM_MAX_MERGE_WORK) {
            g_array_free(m, TRUE);
            return mgl_err(err, MGL_E_FORMAT, "%s: pieces too long to derive the merges from", t->path);
        }
        /* the conversion gives the first three pieces score 0 */
        float sc = id < 3 ? 0.0f : scores[id];
        /* pieces are valid UTF-8 (parse_piece) */
        uint32_t chars = (uint32_t)g_utf8_strlen(s, (gssize)n), left_chars = 0;
        for (size_t i = 0; i < n;) {
            i = (size_t)(g_utf8_next_char(s + i) - s);
            left_chars++;
            if (i >= n) break;
            int32_t a = tok_strmap_get(&t->vocab, s, i), b = tok_strmap_get(&t->vocab, s + i, n - i);
            if (a < 0 || b < 0) continue;
            SpmMerge e = {sc, left_chars, chars - left_chars, id, a, b};
            g_array_append_val(m, e);
        }
    }
    if (m->len) qsort(m->data, m->len, sizeof(SpmMerge), cmp_merge);
    MglStatus st = MGL_OK;
    if (!tok_pairmap_init(&t->merges, m->len ? m->len : 1))
        st = mgl_err(err, MGL_E_NOMEM, "%s: out of memory", t->path);
    for (guint r = 0; r < m->len && st == MGL_OK; r++) {
        const SpmMerge* e = &g_array_index(m, SpmMerge, r); /* a pair joins to one piece: no pair twice */
        if (!tok_pairmap_put(&t->merges, e->left, e->right, r, e->joined))
            st = mgl_err(err, MGL_E_NOMEM, "%s: out of memory", t->path);
    }
    g_array_free(m, TRUE);
    return st;
}

MglStatus tok_load_spm(MglTokenizer* t, const char* path, MglErr* err) {
    MglMap* map = NULL;
    MGL_TRY(mgl_map_open(path, &map, err));
    const uint8_t* d = map->data;
    size_t n = map->size;
    GArray* pieces = g_array_new(FALSE, FALSE, sizeof(RawPiece));
    MglStatus st = MGL_OK;
    /* trainer defaults from sentencepiece_model.proto */
    int64_t model_type = 1, bos_id = 1, eos_id = 2;
    const uint8_t* unk_piece = (const uint8_t*)"<unk>";
    size_t unk_piece_len = 5;
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
                if (g.field == 45 && g.wire == 2) { /* unk_piece */
                    unk_piece = g.data;
                    unk_piece_len = g.len;
                }
                if (g.wire != 0) continue;
                int64_t iv = (int64_t)(int32_t)(uint32_t)g.v; /* int32 fields: negative ids arrive sign-extended */
                switch (g.field) {
                case 3: model_type = iv; break;
                case 41: bos_id = iv; break;
                case 42: eos_id = iv; break;
                default: break;
                }
            }
        }
        /* NormalizerSpec (field 3): the conversion ignores it; see the top. */
    }
    if (st == MGL_OK && model_type != 2)
        st = mgl_err(err, MGL_E_UNSUPPORTED, "%s: SentencePiece model_type %lld is not supported (only BPE = 2)", path,
                     (long long)model_type);
    if (st == MGL_OK && pieces->len == 0) st = mgl_err(err, MGL_E_FORMAT, "%s: no pieces", path);
    if (st == MGL_OK && pieces->len > (1u << 24)) st = mgl_err(err, MGL_E_FORMAT, "%s: too many pieces", path);
    if (st == MGL_OK) st = tok_alloc_vocab(t, (int32_t)pieces->len, err);
    float* scores = NULL;
    if (st == MGL_OK) {
        scores = calloc(pieces->len, sizeof *scores);
        if (!scores || !tok_strmap_init(&t->vocab, pieces->len))
            st = mgl_err(err, MGL_E_NOMEM, "%s: out of memory", path);
    }
    for (guint i = 0; i < pieces->len && st == MGL_OK; i++) {
        const RawPiece* rp = &g_array_index(pieces, RawPiece, i);
        st = tok_set_piece(t, (int32_t)i, (const char*)rp->piece, rp->len, err);
        if (st != MGL_OK) break;
        scores[i] = rp->score;
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
        if (rp->type == SPM_CONTROL || rp->type == SPM_USER_DEFINED || rp->type == SPM_UNKNOWN) {
            /* Control and user-defined pieces become added tokens, matched on
             * the raw text; control ones are special. The unknown piece is
             * the fast tokenizer's unk_token, a special token too. */
            TokAdded a = {
                .content = t->pieces[i], .len = rp->len, .id = (int32_t)i, .special = rp->type != SPM_USER_DEFINED};
            st = tok_add_added(t, &a, err);
        }
    }
    if (st == MGL_OK) tok_find_byte_pieces(t);
    if (st == MGL_OK) {
        t->unk_id = tok_strmap_get(&t->vocab, (const char*)unk_piece, unk_piece_len);
        if (t->unk_id < 0) st = mgl_err(err, MGL_E_FORMAT, "%s: the unknown piece is not in the vocabulary", path);
    }
    if (st == MGL_OK) st = build_merges(t, scores, err);
    if (st == MGL_OK) st = tok_finish_added(t, err);
    if (st == MGL_OK) {
        t->byte_fallback = true; /* the Llama conversion always falls back to bytes */
        t->fuse_unk = true;
        t->bos = bos_id >= 0 && bos_id < t->n_vocab ? (int32_t)bos_id : -1;
        t->eos = eos_id >= 0 && eos_id < t->n_vocab ? (int32_t)eos_id : -1;
    }
    free(scores);
    g_array_free(pieces, TRUE);
    mgl_map_unref(map);
    return st;
}

MglStatus tok_spm_pipeline(MglTokenizer* t, bool legacy, bool add_prefix_space, MglErr* err) {
    static const char meta[] = "\xE2\x96\x81"; /* ▁ */
    char* m = tok_arena_strndup(&t->arena, meta, 3);
    char* sp = tok_arena_strndup(&t->arena, " ", 1);
    t->norm = tok_arena_alloc(&t->arena, 2 * sizeof *t->norm);
    t->pre = tok_arena_alloc(&t->arena, sizeof *t->pre);
    t->dec = tok_arena_alloc(&t->arena, 4 * sizeof *t->dec);
    if (!m || !sp || !t->norm || !t->pre || !t->dec) return mgl_err(err, MGL_E_NOMEM, "%s: out of memory", t->path);
    t->n_norm = t->n_pre = 0;
    if (legacy) {
        /* Prepend("▁") when add_prefix_space, then Replace(" ", "▁") */
        if (add_prefix_space) t->norm[t->n_norm++] = (TokNormOp){.type = NORM_PREPEND, .a = m, .alen = 3};
        t->norm[t->n_norm++] = (TokNormOp){.type = NORM_REPLACE, .a = sp, .alen = 1, .b = m, .blen = 3};
    } else {
        /* Metaspace(▁, prepend first or never, no split) */
        TokPreOp op = {.type = PRE_METASPACE, .repl_cp = 0x2581, .repl_len = 3, .split = false};
        memcpy(op.repl, meta, 3);
        op.prepend = add_prefix_space ? PREPEND_FIRST : PREPEND_NEVER;
        t->pre[t->n_pre++] = op;
    }
    /* Replace("▁", " "), ByteFallback, Fuse, and Strip(" ", 1, 0) when add_prefix_space */
    t->dec[0] = (TokDecOp){.type = DEC_REPLACE, .a = m, .alen = 3, .b = sp, .blen = 1};
    t->dec[1] = (TokDecOp){.type = DEC_BYTEFALLBACK};
    t->dec[2] = (TokDecOp){.type = DEC_FUSE};
    t->dec[3] = (TokDecOp){.type = DEC_STRIP, .content = ' ', .start = 1, .stop = 0};
    t->n_dec = add_prefix_space ? 4 : 3;
    t->dec_kind = DECODER_CHAIN;
    return MGL_OK;
}
