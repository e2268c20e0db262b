/* tok-internal.h: private structures of the tokenizer (tok-*.c only).
 *
 * One MglTokenizer serves two families:
 *  - TOK_HF: a Hugging Face tokenizer.json with a BPE model (merge ranks),
 *    driven by its normalizer / pre-tokenizer / decoder / post-processor;
 *  - TOK_SPM: a SentencePiece tokenizer.model, converted on load into the
 *    same kind of BPE tokenizer as transformers converts it (tok-spm.c).
 * Both share the vocabulary tables, the added-token splitter, the BPE and
 * the streaming decoder, so that decode() and MglDetok agree by construction. */
#ifndef TOK_INTERNAL_H
#define TOK_INTERNAL_H

#include "mgl-internal.h"

#include <glib.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stddef.h>

/* ---- small containers ------------------------------------------------- */

/* Bump allocator: every string of a tokenizer lives here and dies with it. */
typedef struct TokArenaBlock TokArenaBlock;
typedef struct {
    TokArenaBlock* head;
} TokArena;

void* tok_arena_alloc(TokArena* a, size_t n);
char* tok_arena_strndup(TokArena* a, const char* s, size_t n); /* NUL-terminated copy */
void tok_arena_clear(TokArena* a);

/* Open-addressing map from byte strings (not owned) to int32 ids. */
typedef struct {
    const char** keys;
    uint32_t* lens;
    int32_t* vals;
    size_t cap, n; /* cap is a power of two; slot empty when keys[i] == NULL */
} TokStrMap;

bool tok_strmap_init(TokStrMap* m, size_t expected);
void tok_strmap_free(TokStrMap* m);
int32_t tok_strmap_get(const TokStrMap* m, const char* s, size_t len); /* -1 if absent */
/* Inserts or overwrites; returns false on allocation failure. */
bool tok_strmap_put(TokStrMap* m, const char* s, size_t len, int32_t val);

/* Map from an id pair (left, right) to (rank, merged id): the BPE merges. */
typedef struct {
    uint64_t* keys; /* (left << 32 | right) + 1; 0 marks an empty slot */
    uint32_t* ranks;
    int32_t* merged;
    size_t cap, n;
} TokPairMap;

bool tok_pairmap_init(TokPairMap* m, size_t expected);
void tok_pairmap_free(TokPairMap* m);
bool tok_pairmap_get(const TokPairMap* m, int32_t a, int32_t b, uint32_t* rank, int32_t* merged);
bool tok_pairmap_put(TokPairMap* m, int32_t a, int32_t b, uint32_t rank, int32_t merged);

/* A list of strings sharing one buffer (pre-tokenizer output). */
typedef struct {
    GString* buf;
    size_t* off;
    size_t* len;
    size_t n, cap;
} TokPieces;

void tok_pieces_init(TokPieces* p);
void tok_pieces_reset(TokPieces* p);
void tok_pieces_free(TokPieces* p);
void tok_pieces_add(TokPieces* p, const char* s, size_t len); /* empty strings are dropped */
static inline const char* tok_piece(const TokPieces* p, size_t i) { return p->buf->str + p->off[i]; }

/* ---- UTF-8 and Unicode (tok-pretok.c) ---------------------------------- */

/* Decodes one scalar at s[0..n); returns its length (1..4) or 0 when the
 * bytes there are not well-formed UTF-8 (overlong, surrogate, truncated). */
int tok_utf8_next(const char* s, size_t n, uint32_t* cp);
bool tok_utf8_valid(const char* s, size_t n);
void tok_utf8_append(GString* out, uint32_t cp);

bool tok_is_letter(uint32_t cp); /* \p{L} */
bool tok_is_number(uint32_t cp); /* \p{N} */
bool tok_is_space(uint32_t cp);  /* \s as Oniguruma/Rust White_Space see it */

/* Incremental, lossy UTF-8 decoding: well-formed characters pass, every
 * maximal ill-formed subpart becomes one U+FFFD (as Rust's from_utf8_lossy). */
typedef struct {
    uint8_t pend[4];
    int npend, need;
} TokUtf8Lossy;

void tok_lossy_feed(TokUtf8Lossy* st, const uint8_t* b, size_t n, GString* out);
void tok_lossy_flush(TokUtf8Lossy* st, GString* out);

/* GPT-2 byte <-> unicode mapping used by ByteLevel. */
const char* tok_bytelevel_char(uint8_t b, int* len); /* UTF-8 of the mapped char */
int tok_bytelevel_byte(uint32_t cp);                 /* -1 if cp is not a mapped char */

/* Regex pre-tokenizers, hand-written. */
typedef enum {
    TOK_RE_NONE = 0,
    TOK_RE_GPT2,   /* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
    TOK_RE_LLAMA3, /* (?i:'s|...)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|... */
    TOK_RE_QWEN2,  /* as LLAMA3 with \p{N} single digits */
} TokRegex;

TokRegex tok_regex_from_pattern(const char* pattern);
/* Finds the next match at or after `from` in s[0..n): returns true and the
 * byte range [*ms, *me). Matches are never empty. */
bool tok_regex_find(TokRegex re, const char* s, size_t n, size_t from, size_t* ms, size_t* me);

/* ---- the tokenizer ----------------------------------------------------- */

typedef enum { TOK_HF = 1, TOK_SPM = 2 } TokKind;

typedef enum {
    NORM_PREPEND,
    NORM_REPLACE,
    NORM_NFC,
    NORM_NFD,
    NORM_NFKC,
    NORM_NFKD,
    NORM_LOWERCASE,
    NORM_STRIP,
} TokNormType;

typedef struct {
    TokNormType type;
    char* a;
    size_t alen; /* prepend text / replace pattern */
    char* b;
    size_t blen;      /* replace content */
    bool left, right; /* strip */
} TokNormOp;

typedef enum { PRE_METASPACE, PRE_BYTELEVEL, PRE_SPLIT } TokPreType;
typedef enum { SPLIT_ISOLATED, SPLIT_REMOVED, SPLIT_MERGED_PREV, SPLIT_MERGED_NEXT, SPLIT_CONTIGUOUS } TokSplitBehavior;
typedef enum { PREPEND_ALWAYS, PREPEND_FIRST, PREPEND_NEVER } TokPrepend;

typedef struct {
    TokPreType type;
    /* metaspace */
    char repl[8];
    int repl_len;
    uint32_t repl_cp;
    TokPrepend prepend;
    bool split;
    /* bytelevel */
    bool add_prefix_space;
    bool use_regex;
    /* split */
    TokRegex regex;
    char* literal;
    size_t literal_len; /* Split with a String pattern */
    TokSplitBehavior behavior;
} TokPreOp;

typedef enum { DEC_REPLACE, DEC_BYTEFALLBACK, DEC_FUSE, DEC_STRIP, DEC_METASPACE } TokDecType;

typedef struct {
    TokDecType type;
    char* a;
    size_t alen; /* replace pattern */
    char* b;
    size_t blen;        /* replace content */
    uint32_t content;   /* strip char / metaspace replacement */
    int start, stop;    /* strip counts */
    bool prepend_first; /* metaspace: drop replacement chars in the first token */
} TokDecOp;

typedef enum { DECODER_NONE, DECODER_BYTELEVEL, DECODER_CHAIN } TokDecoderKind;

typedef struct {
    char* content;
    size_t len;
    int32_t id;
    bool special, lstrip, rstrip, single_word, normalized;
    char* match; /* what is searched for: content, or its normalized form */
    size_t match_len;
} TokAdded;

/* Per-id flags. */
enum { TOKF_SPECIAL = 1, TOKF_ADDED = 2 };

/* SentencePiece piece types (sentencepiece_model.proto). */
enum { SPM_NORMAL = 1, SPM_UNKNOWN = 2, SPM_CONTROL = 3, SPM_USER_DEFINED = 4, SPM_UNUSED = 5, SPM_BYTE = 6 };

struct MglTokenizer {
    char* path;
    TokKind kind;
    TokArena arena;

    int32_t n_vocab; /* max id + 1 over model and added tokens */
    char** pieces;   /* id -> NUL-terminated piece (NULL for holes) */
    uint32_t* piece_len;
    uint8_t* flags;
    TokStrMap vocab; /* model vocabulary only: piece -> id */

    TokAdded* added; /* sorted by match length, longest first */
    size_t n_added;
    uint8_t added_first[256]; /* bit 0/1: some raw/normalized added token starts with this byte */
    bool any_normalized_added;

    TokNormOp* norm;
    size_t n_norm;
    TokPreOp* pre;
    size_t n_pre;

    /* HF BPE model */
    TokPairMap merges;
    int32_t unk_id; /* -1 if none */
    bool byte_fallback, fuse_unk, ignore_merges;
    char* cont_prefix;     /* continuing_subword_prefix, NULL if none */
    char* eow_suffix;      /* end_of_word_suffix, NULL if none */
    int32_t byte_ids[256]; /* <0xNN> pieces, -1 if absent */

    /* post-processing: ids around the sequence when add_special */
    int32_t* post_pre;
    size_t n_post_pre;
    int32_t* post_post;
    size_t n_post_post;

    TokDecoderKind dec_kind;
    TokDecOp* dec;
    size_t n_dec;

    int32_t bos, eos;

    /* transformers' clean_up_tokenization on decoded text (" ." -> "." ...):
     * tokenizer_config.json's clean_up_tokenization_spaces, else the default
     * of the tokenizer class (tok_clean_up_default) */
    bool clean_up;
};

/* tok-core.c */
MglStatus tok_alloc_vocab(MglTokenizer* t, int32_t n, MglErr* err);
MglStatus tok_set_piece(MglTokenizer* t, int32_t id, const char* s, size_t len, MglErr* err);
/* Sorts added tokens, marks flags, and normalizes the match text of
 * normalized tokens (so call it after the normalizer is loaded). */
MglStatus tok_finish_added(MglTokenizer* t, MglErr* err);
MglStatus tok_add_added(MglTokenizer* t, const TokAdded* a, MglErr* err);
/* byte_ids from the vocabulary's <0xNN> pieces (byte fallback) */
void tok_find_byte_pieces(MglTokenizer* t);

/* tok-json.c: the tokenizer.json loader and the tokenizer_config.json reader. */
MglStatus tok_load_hf_json(MglTokenizer* t, const char* path, MglErr* err);
typedef struct {
    bool has_add_bos, add_bos, has_add_eos, add_eos;
    char* bos_name; /* g_free */
    char* eos_name;
    TokAdded* added; /* g_free, with contents g_free'd */
    size_t n_added;
    bool has_clean_up, clean_up; /* clean_up_tokenization_spaces */
    char* tokenizer_class;       /* g_free; NULL when absent */
    /* LlamaTokenizer's `legacy` (absent or null: true) and `add_prefix_space`
     * (absent: true; present, its Python truth, null false) */
    bool legacy, add_prefix_space;
    bool has_add_prefix_space; /* present and not null: the fast class converts tokenizer.model */
    bool from_slow;
} TokConfig;
/* Missing file: the defaults (nothing present, legacy and add_prefix_space true) and MGL_OK. */
MglStatus tok_read_config(const char* path, TokConfig* cfg, MglErr* err);
void tok_config_clear(TokConfig* cfg);
/* config.json beside the tokenizer: its tokenizer_class and model_type
 * (g_free; NULL when absent, also when the file is missing or unreadable). */
void tok_read_model_config(const char* path, char** tokenizer_class, char** model_type);
/* The clean_up_tokenization_spaces default of the class AutoTokenizer loads
 * (transformers 4.36-4.44, the versions the official MG-LLaVA code ran on):
 * `cls` from tokenizer_config.json, else config.json's tokenizer_class, else
 * the class of config.json's model_type, else PreTrainedTokenizerFast for a
 * tokenizer.json and LlamaTokenizer for a lone tokenizer.model. */
bool tok_clean_up_default(const char* cls, const char* model_type, bool spm_only);
/* The class AutoTokenizer loads, resolved the same way, without its "Fast"
 * suffix: the returned name's first *len bytes. */
const char* tok_auto_class(const char* cls, const char* model_type, bool spm_only, size_t* len);

/* tok-spm.c: the vocabulary, merges and added tokens of a tokenizer.model */
MglStatus tok_load_spm(MglTokenizer* t, const char* path, MglErr* err);
/* The normalizer, pre-tokenizer and decoder of the conversion, chosen by
 * tokenizer_config.json's legacy and add_prefix_space. */
MglStatus tok_spm_pipeline(MglTokenizer* t, bool legacy, bool add_prefix_space, MglErr* err);


/* A binary min-heap of `Item` ordered by `before(a, b)` (true when a pops
 * first), with push (false on out of memory) and pop (heap not empty).
 * BPE merging uses one, ordered by merge rank. */
#define TOK_DEFINE_HEAP(Heap, Item, push, pop, before)                                                                 \
    typedef struct {                                                                                                   \
        Item* v;                                                                                                       \
        size_t n, cap;                                                                                                 \
    } Heap;                                                                                                            \
    static bool push(Heap* h, Item it) {                                                                               \
        if (h->n == h->cap) {                                                                                          \
            size_t nc = h->cap ? h->cap * 2 : 64;                                                                      \
            Item* nv = realloc(h->v, nc * sizeof *nv);                                                                 \
            if (!nv) return false;                                                                                     \
            h->v = nv;                                                                                                 \
            h->cap = nc;                                                                                               \
        }                                                                                                              \
        size_t i = h->n++;                                                                                             \
        while (i > 0) {                                                                                                \
            size_t p = (i - 1) / 2;                                                                                    \
            if (!before(&it, &h->v[p])) break;                                                                         \
            h->v[i] = h->v[p];                                                                                         \
            i = p;                                                                                                     \
        }                                                                                                              \
        h->v[i] = it;                                                                                                  \
        return true;                                                                                                   \
    }                                                                                                                  \
    static Item pop(Heap* h) {                                                                                         \
        Item top = h->v[0];                                                                                            \
        Item last = h->v[--h->n];                                                                                      \
        size_t i = 0;                                                                                                  \
        for (;;) {                                                                                                     \
            size_t l = 2 * i + 1, r = l + 1, m = i;                                                                    \
            const Item* best = &last;                                                                                  \
            if (l < h->n && before(&h->v[l], best)) {                                                                  \
                m = l;                                                                                                 \
                best = &h->v[l];                                                                                       \
            }                                                                                                          \
            if (r < h->n && before(&h->v[r], best)) m = r;                                                             \
            if (m == i) break;                                                                                         \
            h->v[i] = h->v[m];                                                                                         \
            i = m;                                                                                                     \
        }                                                                                                              \
        if (h->n > 0) h->v[i] = last;                                                                                  \
        return top;                                                                                                    \
    }


/* ---- the JSON DOM of tokenizer.json (tok-jdom.c) ---- */

typedef enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } JType;

typedef struct JVal JVal;
struct JVal {
    uint8_t type;
    bool b;
    uint32_t n; /* array: items; object: members (items holds 2n: key, value) */
    union {
        double num;
        struct {
            const char* s;
            size_t len;
        } str;
        JVal* items;
    } u;
};

/* Parses a whole document; strings may point into `s`, which must outlive the DOM. */
MglStatus tok_jparse(const char* path, const char* s, size_t n, TokArena* arena, JVal* root, MglErr* err);
bool tok_jstr_eq(const JVal* v, const char* s);
const JVal* tok_jget(const JVal* o, const char* key);
/* A member that is absent or null reads as NULL. */
const JVal* tok_jopt(const JVal* o, const char* key);
bool tok_jbool(const JVal* o, const char* key, bool def);
bool tok_jint(const JVal* v, int64_t lo, int64_t hi, int64_t* out);
/* NUL-terminated copy into the tokenizer's arena. */
char* tok_jdup(MglTokenizer* t, const JVal* v);

/* ---- decoder helpers shared with the grammar's token bytes (tok-core.c) ---- */

/* s[0..n) with every `pat` replaced by `rep`, appended to dst (plen 0: a copy). */
void tok_replace_all(GString* dst, const char* s, size_t n, const char* pat, size_t plen, const char* rep, size_t rlen);
/* The Strip decoder: up to `start` leading and `stop` trailing `content` characters removed. */
void tok_strip_chars(GString* s, uint32_t content, int start, int stop);
/* "<0xNN>" -> that byte, as the ByteFallback decoder reads it; -1 for any other piece. */
int tok_byte_piece(const char* s, size_t n);

#endif /* TOK_INTERNAL_H */
