/* tok-core.c: the tokenizer's public API, shared tables, added-token
 * splitting, normalizers, pre-tokenizers, the HF BPE model, post-processing
 * and the (streaming) decoder. Semantics follow HF `tokenizers` 0.20. */
#include "tok-internal.h"
#include "mgl-json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

/* ---- arena ---------------------------------------------------------------- */

struct TokArenaBlock {
    TokArenaBlock* next;
    size_t used, cap;
    max_align_t data[];
};

void* tok_arena_alloc(TokArena* a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    TokArenaBlock* b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > (1u << 20) ? n : (1u << 20);
        b = malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->next = a->head;
        b->used = 0;
        b->cap = cap;
        a->head = b;
    }
    void* p = (char*)b->data + b->used;
    b->used += n;
    return p;
}

char* tok_arena_strndup(TokArena* a, const char* s, size_t n) {
    char* p = tok_arena_alloc(a, n + 1);
    if (!p) return NULL;
    if (n) memcpy(p, s, n);
    p[n] = 0;
    return p;
}

void tok_arena_clear(TokArena* a) {
    TokArenaBlock* b = a->head;
    while (b) {
        TokArenaBlock* nx = b->next;
        free(b);
        b = nx;
    }
    a->head = NULL;
}

/* ---- string map ------------------------------------------------------------ */

static uint64_t hash_bytes(const char* s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

bool tok_strmap_init(TokStrMap* m, size_t expected) {
    size_t cap = 16;
    while (cap < expected * 2 + 16) cap <<= 1;
    m->keys = calloc(cap, sizeof *m->keys);
    m->lens = calloc(cap, sizeof *m->lens);
    m->vals = calloc(cap, sizeof *m->vals);
    m->cap = cap;
    m->n = 0;
    if (!m->keys || !m->lens || !m->vals) {
        tok_strmap_free(m);
        return false;
    }
    return true;
}

void tok_strmap_free(TokStrMap* m) {
    free(m->keys);
    free(m->lens);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

int32_t tok_strmap_get(const TokStrMap* m, const char* s, size_t len) {
    if (!m->cap) return -1;
    size_t mask = m->cap - 1;
    for (size_t i = hash_bytes(s, len) & mask;; i = (i + 1) & mask) {
        if (!m->keys[i]) return -1;
        if (m->lens[i] == len && memcmp(m->keys[i], s, len) == 0) return m->vals[i];
    }
}

static bool strmap_grow(TokStrMap* m) {
    TokStrMap nm;
    if (!tok_strmap_init(&nm, m->cap)) return false;
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i]) tok_strmap_put(&nm, m->keys[i], m->lens[i], m->vals[i]);
    tok_strmap_free(m);
    *m = nm;
    return true;
}

bool tok_strmap_put(TokStrMap* m, const char* s, size_t len, int32_t val) {
    if (len > UINT32_MAX) return false;
    if (!m->cap && !tok_strmap_init(m, 16)) return false;
    if ((m->n + 1) * 2 > m->cap && !strmap_grow(m)) return false;
    size_t mask = m->cap - 1;
    for (size_t i = hash_bytes(s, len) & mask;; i = (i + 1) & mask) {
        if (!m->keys[i]) {
            m->keys[i] = s;
            m->lens[i] = (uint32_t)len;
            m->vals[i] = val;
            m->n++;
            return true;
        }
        if (m->lens[i] == len && memcmp(m->keys[i], s, len) == 0) {
            m->vals[i] = val;
            return true;
        }
    }
}

/* ---- pair map ------------------------------------------------------------- */

static uint64_t pair_key(int32_t a, int32_t b) { return (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1; }

static size_t pair_hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ull;
    k ^= k >> 33;
    return (size_t)k;
}

bool tok_pairmap_init(TokPairMap* m, size_t expected) {
    size_t cap = 16;
    while (cap < expected * 2 + 16) cap <<= 1;
    m->keys = calloc(cap, sizeof *m->keys);
    m->ranks = calloc(cap, sizeof *m->ranks);
    m->merged = calloc(cap, sizeof *m->merged);
    m->cap = cap;
    m->n = 0;
    if (!m->keys || !m->ranks || !m->merged) {
        tok_pairmap_free(m);
        return false;
    }
    return true;
}

void tok_pairmap_free(TokPairMap* m) {
    free(m->keys);
    free(m->ranks);
    free(m->merged);
    memset(m, 0, sizeof *m);
}

bool tok_pairmap_get(const TokPairMap* m, int32_t a, int32_t b, uint32_t* rank, int32_t* merged) {
    if (!m->cap) return false;
    uint64_t k = pair_key(a, b);
    size_t mask = m->cap - 1;
    for (size_t i = pair_hash(k) & mask;; i = (i + 1) & mask) {
        if (!m->keys[i]) return false;
        if (m->keys[i] == k) {
            *rank = m->ranks[i];
            *merged = m->merged[i];
            return true;
        }
    }
}

bool tok_pairmap_put(TokPairMap* m, int32_t a, int32_t b, uint32_t rank, int32_t merged) {
    if (!m->cap && !tok_pairmap_init(m, 16)) return false;
    if ((m->n + 1) * 2 > m->cap) {
        TokPairMap nm;
        if (!tok_pairmap_init(&nm, m->cap)) return false;
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->keys[i]) continue;
            size_t mask = nm.cap - 1, j = pair_hash(m->keys[i]) & mask;
            while (nm.keys[j]) j = (j + 1) & mask;
            nm.keys[j] = m->keys[i];
            nm.ranks[j] = m->ranks[i];
            nm.merged[j] = m->merged[i];
            nm.n++;
        }
        tok_pairmap_free(m);
        *m = nm;
    }
    uint64_t k = pair_key(a, b);
    size_t mask = m->cap - 1;
    for (size_t i = pair_hash(k) & mask;; i = (i + 1) & mask) {
        if (!m->keys[i] || m->keys[i] == k) {
            if (!m->keys[i]) m->n++;
            m->keys[i] = k;
            m->ranks[i] = rank;
            m->merged[i] = merged;
            return true;
        }
    }
}

/* ---- piece lists ---------------------------------------------------------- */

void tok_pieces_init(TokPieces* p) {
    memset(p, 0, sizeof *p);
    p->buf = g_string_new(NULL);
}

void tok_pieces_reset(TokPieces* p) {
    g_string_truncate(p->buf, 0);
    p->n = 0;
}

void tok_pieces_free(TokPieces* p) {
    if (p->buf) g_string_free(p->buf, TRUE);
    g_free(p->off);
    g_free(p->len);
    memset(p, 0, sizeof *p);
}

void tok_pieces_add(TokPieces* p, const char* s, size_t len) {
    if (len == 0) return; /* HF drops empty splits */
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 16;
        p->off = g_renew(size_t, p->off, p->cap);
        p->len = g_renew(size_t, p->len, p->cap);
    }
    p->off[p->n] = p->buf->len;
    p->len[p->n] = len;
    p->n++;
    g_string_append_len(p->buf, s, (gssize)len);
}

/* ---- vocabulary ------------------------------------------------------------ */

static MglStatus ensure_vocab(MglTokenizer* t, int32_t n, MglErr* err) {
    if (n <= t->n_vocab) return MGL_OK;
    if (n > (1 << 24)) return mgl_err(err, MGL_E_FORMAT, "%s: vocabulary id %d too large", t->path, n - 1);
    char** p = realloc(t->pieces, (size_t)n * sizeof *p);
    if (p) t->pieces = p;
    uint32_t* l = realloc(t->piece_len, (size_t)n * sizeof *l);
    if (l) t->piece_len = l;
    uint8_t* f = realloc(t->flags, (size_t)n);
    if (f) t->flags = f;
    if (!p || !l || !f) return mgl_err(err, MGL_E_NOMEM, "%s: out of memory", t->path);
    for (int32_t i = t->n_vocab; i < n; i++) {
        t->pieces[i] = NULL;
        t->piece_len[i] = 0;
        t->flags[i] = 0;
    }
    t->n_vocab = n;
    return MGL_OK;
}

MglStatus tok_alloc_vocab(MglTokenizer* t, int32_t n, MglErr* err) { return ensure_vocab(t, n, err); }

MglStatus tok_set_piece(MglTokenizer* t, int32_t id, const char* s, size_t len, MglErr* err) {
    if (id < 0) return mgl_err(err, MGL_E_FORMAT, "%s: negative token id %d", t->path, id);
    if (len > UINT32_MAX) return mgl_err(err, MGL_E_FORMAT, "%s: token too long", t->path);
    MGL_TRY(ensure_vocab(t, id + 1, err));
    char* c = tok_arena_strndup(&t->arena, s, len);
    if (!c) return mgl_err(err, MGL_E_NOMEM, "%s: out of memory", t->path);
    t->pieces[id] = c;
    t->piece_len[id] = (uint32_t)len;
    return MGL_OK;
}

MglStatus tok_add_added(MglTokenizer* t, const TokAdded* a, MglErr* err) {
    if (a->len == 0) return mgl_err(err, MGL_E_FORMAT, "%s: empty added token (id %d)", t->path, a->id);
    if (!tok_utf8_valid(a->content, a->len))
        return mgl_err(err, MGL_E_FORMAT, "%s: added token %d is not valid UTF-8", t->path, a->id);
    /* An id seen again replaces the earlier entry (later definitions win). */
    size_t slot = t->n_added;
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].id == a->id) {
            slot = i;
            break;
        }
    if (slot == t->n_added) {
        TokAdded* na = realloc(t->added, (t->n_added + 1) * sizeof *na);
        if (!na) return mgl_err(err, MGL_E_NOMEM, "%s: out of memory", t->path);
        t->added = na;
        t->n_added++;
    }
    TokAdded c = *a;
    c.content = tok_arena_strndup(&t->arena, a->content, a->len);
    if (!c.content) return mgl_err(err, MGL_E_NOMEM, "%s: out of memory", t->path);
    c.match = c.content;
    c.match_len = c.len;
    t->added[slot] = c;
    return tok_set_piece(t, a->id, a->content, a->len, err);
}

static int cmp_added(const void* pa, const void* pb) {
    const TokAdded* a = pa;
    const TokAdded* b = pb;
    if (a->match_len != b->match_len) return a->match_len > b->match_len ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

static MglStatus normalize(const MglTokenizer* t, const char* s, size_t n, GString* out, MglErr* err);

MglStatus tok_finish_added(MglTokenizer* t, MglErr* err) {
    /* HF looks for normalized tokens in the normalized text by their
     * normalized content (e.g. with a Prepend normalizer, "▁<tok>"). */
    GString* tmp = g_string_new(NULL);
    for (size_t i = 0; i < t->n_added; i++) {
        TokAdded* a = &t->added[i];
        a->match = a->content;
        a->match_len = a->len;
        if (!a->normalized || t->kind != TOK_HF || !t->n_norm) continue;
        MglStatus st = normalize(t, a->content, a->len, tmp, err);
        if (st == MGL_OK && tmp->len == 0)
            st = mgl_err(err, MGL_E_FORMAT, "%s: added token %d normalizes to nothing", t->path, a->id);
        if (st == MGL_OK && !(a->match = tok_arena_strndup(&t->arena, tmp->str, tmp->len)))
            st = mgl_err(err, MGL_E_NOMEM, "%s: out of memory", t->path);
        if (st != MGL_OK) {
            g_string_free(tmp, TRUE);
            return st;
        }
        a->match_len = tmp->len;
    }
    g_string_free(tmp, TRUE);
    /* Longest first, so that the first candidate that matches at a position
     * is the leftmost-longest match HF's Aho-Corasick automaton finds. */
    if (t->n_added) qsort(t->added, t->n_added, sizeof *t->added, cmp_added);
    t->any_normalized_added = false;
    memset(t->added_first, 0, sizeof t->added_first);
    for (size_t i = 0; i < t->n_added; i++) {
        const TokAdded* a = &t->added[i];
        t->added_first[(uint8_t)a->match[0]] |= a->normalized ? 2 : 1;
        MGL_TRY(ensure_vocab(t, a->id + 1, err));
        t->flags[a->id] |= TOKF_ADDED;
        if (a->special)
            t->flags[a->id] |= TOKF_SPECIAL;
        else
            t->flags[a->id] &= (uint8_t)~TOKF_SPECIAL;
        if (a->normalized) t->any_normalized_added = true;
    }
    return MGL_OK;
}

void tok_find_byte_pieces(MglTokenizer* t) {
    for (int b = 0; b < 256; b++) {
        char key[8];
        snprintf(key, sizeof key, "<0x%02X>", b);
        t->byte_ids[b] = tok_strmap_get(&t->vocab, key, 6);
    }
}

/* ---- loading -------------------------------------------------------------- */

static bool is_dir(const char* p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool is_file(const char* p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static bool ends_with(const char* s, const char* suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

static int32_t lookup_any(const MglTokenizer* t, const char* s, size_t len) {
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].len == len && memcmp(t->added[i].content, s, len) == 0) return t->added[i].id;
    return tok_strmap_get(&t->vocab, s, len);
}

static MglStatus set_post(MglTokenizer* t, bool add_bos, bool add_eos, MglErr* err) {
    t->n_post_pre = t->n_post_post = 0;
    if (add_bos && t->bos >= 0) {
        t->post_pre = tok_arena_alloc(&t->arena, sizeof(int32_t));
        if (!t->post_pre) return mgl_err(err, MGL_E_NOMEM, "%s: out of memory", t->path);
        t->post_pre[0] = t->bos;
        t->n_post_pre = 1;
    }
    if (add_eos && t->eos >= 0) {
        t->post_post = tok_arena_alloc(&t->arena, sizeof(int32_t));
        if (!t->post_post) return mgl_err(err, MGL_E_NOMEM, "%s: out of memory", t->path);
        t->post_post[0] = t->eos;
        t->n_post_post = 1;
    }
    return MGL_OK;
}

static int cmp_added_id(const void* pa, const void* pb) {
    const TokAdded* a = pa;
    const TokAdded* b = pb;
    return (a->id > b->id) - (a->id < b->id);
}

static bool is_added(const MglTokenizer* t, const char* s, size_t len) {
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].len == len && memcmp(t->added[i].content, s, len) == 0) return true;
    return false;
}

/* What PreTrainedTokenizerFast's constructor adds to a tokenizer.json: the
 * config's added tokens (by id order) and its BOS/EOS names that are not
 * added tokens yet. tokenizers gives each the id of its text in the model
 * vocabulary, else the next free id (not the id the config names). */
static MglStatus add_config_tokens(MglTokenizer* t, TokConfig* cfg, MglErr* err) {
    if (cfg->n_added) qsort(cfg->added, cfg->n_added, sizeof *cfg->added, cmp_added_id);
    const char* names[2] = {cfg->bos_name, cfg->eos_name};
    MglStatus st = MGL_OK;
    bool any = false;
    for (size_t i = 0; i < cfg->n_added + 2 && st == MGL_OK; i++) {
        TokAdded a;
        if (i < cfg->n_added) {
            a = cfg->added[i];
        } else {
            const char* nm = names[i - cfg->n_added];
            if (!nm || !*nm) continue;
            a = (TokAdded){.content = (char*)nm, .len = strlen(nm), .special = true};
        }
        if (is_added(t, a.content, a.len)) continue;
        for (int k = 0; k < 2; k++)
            if (names[k] && strlen(names[k]) == a.len && !memcmp(names[k], a.content, a.len)) a.special = true;
        int32_t id = tok_strmap_get(&t->vocab, a.content, a.len);
        a.id = id >= 0 ? id : t->n_vocab;
        st = tok_add_added(t, &a, err);
        any = true;
    }
    if (st == MGL_OK && any) st = tok_finish_added(t, err);
    return st;
}

/* A folder's tokenizer_config.json and, when that names no class,
 * config.json's tokenizer_class and model_type: read once per load. */
typedef struct {
    TokConfig cfg;
    char* mcls; /* g_free */
    char* mtype;
} FolderConfig;

static MglStatus folder_config_read(const char* dir, FolderConfig* fc, MglErr* err) {
    fc->mcls = fc->mtype = NULL;
    char* cfg_path = g_build_filename(dir, "tokenizer_config.json", NULL);
    MglStatus st = tok_read_config(cfg_path, &fc->cfg, err);
    g_free(cfg_path);
    if (st == MGL_OK && !fc->cfg.tokenizer_class) {
        char* mpath = g_build_filename(dir, "config.json", NULL);
        tok_read_model_config(mpath, &fc->mcls, &fc->mtype);
        g_free(mpath);
    }
    return st;
}

static void folder_config_clear(FolderConfig* fc) {
    tok_config_clear(&fc->cfg);
    g_free(fc->mcls);
    g_free(fc->mtype);
}

/* The class named by the folder (tokenizer_config.json, else config.json), or NULL */
static const char* folder_class(const FolderConfig* fc) {
    return fc->cfg.tokenizer_class ? fc->cfg.tokenizer_class : fc->mcls;
}

/* `in_init`: the fast class converts tokenizer.model inside its __init__
 * (tokenizer.json is there but the config asks for the slow one), where the
 * slow tokenizer gets add_prefix_space from the config only: absent is None. */
static MglStatus apply_config(MglTokenizer* t, FolderConfig* fc, bool in_init, MglErr* err) {
    TokConfig* cfg = &fc->cfg;
    MglStatus st = MGL_OK;
    const char* cls_in = folder_class(fc);
    t->clean_up = cfg->has_clean_up ? cfg->clean_up : tok_clean_up_default(cls_in, fc->mtype, t->kind == TOK_SPM);
    /* The fast classes that build their post-processor from add_bos_token /
     * add_eos_token (update_post_processor), whatever tokenizer.json says. */
    size_t cn;
    const char* cls = tok_auto_class(cls_in, fc->mtype, t->kind == TOK_SPM, &cn);
    /* with the BOS / EOS names their constructors default to */
    static const char* const bos_eos_classes[][3] = {{"LlamaTokenizer", "<s>", "</s>"},
                                                     {"CodeLlamaTokenizer", "<s>", "</s>"},
                                                     {"GemmaTokenizer", "<bos>", "<eos>"},
                                                     {"CohereTokenizer", "<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>"},
                                                     {NULL, NULL, NULL}};
    bool bos_eos_template = false;
    const char *def_bos = NULL, *def_eos = NULL;
    for (int i = 0; bos_eos_classes[i][0]; i++)
        if (strlen(bos_eos_classes[i][0]) == cn && !strncmp(cls, bos_eos_classes[i][0], cn)) {
            bos_eos_template = true;
            def_bos = bos_eos_classes[i][1];
            def_eos = bos_eos_classes[i][2];
        }
    bos_eos_template |= t->kind == TOK_SPM; /* read as the Llama conversion whatever the class */
    if (t->kind == TOK_SPM) {
        bool aps = in_init ? cfg->has_add_prefix_space && cfg->add_prefix_space : cfg->add_prefix_space;
        st = tok_spm_pipeline(t, cfg->legacy, aps, err);
        /* The converted (fast) Llama tokenizer treats these as added tokens,
         * matched on the raw text. */
        for (size_t i = 0; i < cfg->n_added && st == MGL_OK; i++) {
            cfg->added[i].normalized = false;
            st = tok_add_added(t, &cfg->added[i], err);
        }
        if (st == MGL_OK) st = tok_finish_added(t, err);
    } else {
        st = add_config_tokens(t, cfg, err);
    }
    const char* bos_name = cfg->bos_name ? cfg->bos_name : def_bos;
    const char* eos_name = cfg->eos_name ? cfg->eos_name : def_eos;
    if (st == MGL_OK && bos_name) {
        int32_t id = lookup_any(t, bos_name, strlen(bos_name));
        if (id >= 0) t->bos = id;
    }
    if (st == MGL_OK && eos_name) {
        int32_t id = lookup_any(t, eos_name, strlen(eos_name));
        if (id >= 0) t->eos = id;
    }
    if (st == MGL_OK && bos_eos_template) {
        /* these classes' defaults: BOS yes, EOS no */
        bool add_bos = cfg->has_add_bos ? cfg->add_bos : true;
        bool add_eos = cfg->has_add_eos ? cfg->add_eos : false;
        st = set_post(t, add_bos, add_eos, err);
    }
    return st;
}

/* Whether AutoTokenizer builds this folder's Llama tokenizer from
 * tokenizer.model although tokenizer.json is there: LlamaTokenizerFast does
 * when tokenizer_config.json sets add_prefix_space (not null) or from_slow. */
static bool converts_slow(const FolderConfig* fc) {
    if (!fc->cfg.has_add_prefix_space && !fc->cfg.from_slow) return false;
    size_t n;
    const char* cls = tok_auto_class(folder_class(fc), fc->mtype, false, &n);
    return n == 14 && !strncmp(cls, "LlamaTokenizer", 14);
}

MglStatus mgl_tokenizer_load(const char* path, MglTokenizer** out, MglErr* err) {
    if (!out) return mgl_err(err, MGL_E_INVALID, "mgl_tokenizer_load: out is NULL");
    *out = NULL;
    if (!path) return mgl_err(err, MGL_E_INVALID, "mgl_tokenizer_load: path is NULL");
    char* file = NULL;
    bool in_init = false;
    FolderConfig fc;
    if (is_dir(path)) {
        char* j = g_build_filename(path, "tokenizer.json", NULL);
        char* m = g_build_filename(path, "tokenizer.model", NULL);
        if (!is_file(j) && !is_file(m)) {
            g_free(j);
            g_free(m);
            return mgl_err(err, MGL_E_IO, "%s: no tokenizer.json or tokenizer.model in this folder", path);
        }
        MglStatus cs = folder_config_read(path, &fc, err);
        if (cs != MGL_OK) {
            g_free(j);
            g_free(m);
            return cs;
        }
        in_init = is_file(j) && is_file(m) && converts_slow(&fc);
        file = is_file(j) && !in_init ? j : m;
        g_free(file == j ? m : j);
    } else {
        if (!is_file(path))
            return mgl_err(err, MGL_E_IO, "%s: %s", path,
                           g_file_test(path, G_FILE_TEST_EXISTS) ? "not a regular file" : "no such tokenizer file");
        char* dir = g_path_get_dirname(path);
        MglStatus cs = folder_config_read(dir, &fc, err);
        g_free(dir);
        if (cs != MGL_OK) return cs;
        file = g_strdup(path);
    }
    bool json = ends_with(file, ".json");
    if (!json && !ends_with(file, ".model")) {
        /* Unknown name: sniff the first byte (JSON starts with '{'). */
        int fd = mgl_open_regular(file, NULL);
        FILE* f = fd >= 0 ? fdopen(fd, "rb") : NULL;
        if (fd >= 0 && !f) close(fd);
        int c = f ? fgetc(f) : EOF;
        while (c == ' ' || c == '\n' || c == '\r' || c == '\t') c = fgetc(f);
        if (f) fclose(f);
        json = c == '{';
    }
    MglTokenizer* t = calloc(1, sizeof *t);
    if (!t) {
        g_free(file);
        folder_config_clear(&fc);
        return mgl_err(err, MGL_E_NOMEM, "%s: out of memory", path);
    }
    t->path = strdup(file);
    t->unk_id = -1;
    t->bos = t->eos = -1;
    for (int i = 0; i < 256; i++) t->byte_ids[i] = -1;
    MglStatus st = t->path ? MGL_OK : mgl_err(err, MGL_E_NOMEM, "%s: out of memory", path);
    if (st == MGL_OK) {
        t->kind = json ? TOK_HF : TOK_SPM;
        st = json ? tok_load_hf_json(t, file, err) : tok_load_spm(t, file, err);
    }
    if (st == MGL_OK) st = apply_config(t, &fc, in_init, err);
    g_free(file);
    folder_config_clear(&fc);
    if (st != MGL_OK) {
        mgl_tokenizer_free(t);
        return st;
    }
    *out = t;
    return MGL_OK;
}

void mgl_tokenizer_free(MglTokenizer* t) {
    if (!t) return;
    free(t->path);
    free(t->pieces);
    free(t->piece_len);
    free(t->flags);
    tok_strmap_free(&t->vocab);
    free(t->added);
    tok_pairmap_free(&t->merges);
    tok_arena_clear(&t->arena);
    free(t);
}

/* ---- accessors ------------------------------------------------------------ */

int32_t mgl_tokenizer_n_vocab(const MglTokenizer* t) { return t ? t->n_vocab : 0; }
int32_t mgl_tokenizer_bos(const MglTokenizer* t) { return t ? t->bos : -1; }
int32_t mgl_tokenizer_eos(const MglTokenizer* t) { return t ? t->eos : -1; }

int32_t mgl_tokenizer_token_id(const MglTokenizer* t, const char* piece) {
    if (!t || !piece) return -1;
    return lookup_any(t, piece, strlen(piece));
}

const char* mgl_tokenizer_id_to_piece(const MglTokenizer* t, int32_t id) {
    if (!t || id < 0 || id >= t->n_vocab) return NULL;
    return t->pieces[id];
}

bool mgl_tokenizer_clean_up_spaces(const MglTokenizer* t) { return t && t->clean_up; }

void mgl_tokenizer_set_clean_up_spaces(MglTokenizer* t, bool on) {
    if (t) t->clean_up = on;
}

bool mgl_tokenizer_is_special(const MglTokenizer* t, int32_t id) {
    if (!t || id < 0 || id >= t->n_vocab) return false;
    return (t->flags[id] & TOKF_SPECIAL) != 0;
}

/* ---- normalizers ------------------------------------------------------------ */

void tok_replace_all(GString* dst, const char* s, size_t n, const char* pat, size_t plen, const char* rep,
                     size_t rlen) {
    size_t i = 0;
    while (i < n) {
        if (plen && plen <= n - i && memcmp(s + i, pat, plen) == 0) {
            g_string_append_len(dst, rep, (gssize)rlen);
            i += plen;
        } else {
            g_string_append_c(dst, s[i]);
            i++;
        }
    }
}

/* Applies the normalizer chain to s[0..n) into `out`. */
static MglStatus normalize(const MglTokenizer* t, const char* s, size_t n, GString* out, MglErr* err) {
    g_string_truncate(out, 0);
    g_string_append_len(out, s, (gssize)n);
    GString* tmp = NULL;
    for (size_t k = 0; k < t->n_norm; k++) {
        const TokNormOp* op = &t->norm[k];
        switch (op->type) {
        case NORM_PREPEND:
            if (out->len) g_string_prepend_len(out, op->a, (gssize)op->alen);
            break;
        case NORM_REPLACE:
            if (!tmp) tmp = g_string_new(NULL);
            g_string_truncate(tmp, 0);
            tok_replace_all(tmp, out->str, out->len, op->a, op->alen, op->b, op->blen);
            g_string_truncate(out, 0);
            g_string_append_len(out, tmp->str, (gssize)tmp->len);
            break;
        case NORM_NFC:
        case NORM_NFD:
        case NORM_NFKC:
        case NORM_NFKD: {
            GNormalizeMode mode = op->type == NORM_NFC    ? G_NORMALIZE_NFC
                                  : op->type == NORM_NFD  ? G_NORMALIZE_NFD
                                  : op->type == NORM_NFKC ? G_NORMALIZE_NFKC
                                                          : G_NORMALIZE_NFKD;
            char* r = g_utf8_normalize(out->str, (gssize)out->len, mode);
            if (!r) {
                if (tmp) g_string_free(tmp, TRUE);
                return mgl_err(err, MGL_E_INVALID, "%s: text cannot be normalized", t->path);
            }
            g_string_assign(out, r);
            g_free(r);
            break;
        }
        case NORM_LOWERCASE: {
            char* r = g_utf8_strdown(out->str, (gssize)out->len);
            g_string_assign(out, r);
            g_free(r);
            break;
        }
        case NORM_STRIP: {
            size_t a = 0, b = out->len;
            uint32_t cp;
            int l;
            if (op->left)
                while (a < b && (l = tok_utf8_next(out->str + a, b - a, &cp)) > 0 && tok_is_space(cp)) a += (size_t)l;
            if (op->right)
                while (b > a) {
                    size_t q = b - 1;
                    while (q > a && ((uint8_t)out->str[q] & 0xC0) == 0x80) q--;
                    if ((l = tok_utf8_next(out->str + q, b - q, &cp)) > 0 && tok_is_space(cp))
                        b = q;
                    else
                        break;
                }
            g_string_truncate(out, b);
            g_string_erase(out, 0, (gssize)a);
            break;
        }
        }
    }
    if (tmp) g_string_free(tmp, TRUE);
    return MGL_OK;
}

/* ---- pre-tokenizers --------------------------------------------------------- */

/* Splits s[0..n) by the match ranges of `find` with the given behavior. */
typedef bool (*FindFn)(const void* ctx, const char* s, size_t n, size_t from, size_t* ms, size_t* me);

static void split_by(TokPieces* out, const char* s, size_t n, FindFn find, const void* ctx, TokSplitBehavior beh) {
    size_t pos = 0, ms, me;
    size_t pend_start = 0; /* start of a piece still growing (merged behaviors) */
    bool pend = false;
    size_t last_match_end = (size_t)-1;
    while (pos <= n && find(ctx, s, n, pos, &ms, &me)) {
        switch (beh) {
        case SPLIT_ISOLATED:
            tok_pieces_add(out, s + pos, ms - pos);
            tok_pieces_add(out, s + ms, me - ms);
            break;
        case SPLIT_REMOVED: tok_pieces_add(out, s + pos, ms - pos); break;
        case SPLIT_MERGED_PREV: tok_pieces_add(out, s + pos, me - pos); break;
        case SPLIT_MERGED_NEXT:
            if (pend)
                tok_pieces_add(out, s + pend_start, ms - pend_start);
            else
                tok_pieces_add(out, s + pos, ms - pos);
            pend = true;
            pend_start = ms;
            break;
        case SPLIT_CONTIGUOUS:
            if (pend && last_match_end == ms) {
                /* extend the previous match */
            } else {
                if (pend) tok_pieces_add(out, s + pend_start, last_match_end - pend_start);
                tok_pieces_add(out, s + pos, ms - pos);
                pend_start = ms;
                pend = true;
            }
            last_match_end = me;
            break;
        }
        pos = me;
    }
    if (beh == SPLIT_MERGED_NEXT && pend)
        tok_pieces_add(out, s + pend_start, n - pend_start);
    else {
        if (beh == SPLIT_CONTIGUOUS && pend) tok_pieces_add(out, s + pend_start, last_match_end - pend_start);
        tok_pieces_add(out, s + pos, n - pos);
    }
}

static bool find_regex(const void* ctx, const char* s, size_t n, size_t from, size_t* ms, size_t* me) {
    return tok_regex_find(*(const TokRegex*)ctx, s, n, from, ms, me);
}

typedef struct {
    const char* lit;
    size_t len;
} Lit;

static bool find_literal(const void* ctx, const char* s, size_t n, size_t from, size_t* ms, size_t* me) {
    const Lit* l = ctx;
    if (!l->len) return false;
    for (size_t i = from; i + l->len <= n; i++)
        if (memcmp(s + i, l->lit, l->len) == 0) {
            *ms = i;
            *me = i + l->len;
            return true;
        }
    return false;
}

/* Runs the pre-tokenizer chain over one normalized segment; `first` says
 * whether the segment starts the original text (Metaspace prepend "first"). */
static void pretokenize(const MglTokenizer* t, const char* s, size_t n, bool first, TokPieces* a, TokPieces* b) {
    tok_pieces_reset(a);
    tok_pieces_add(a, s, n);
    GString* tmp = g_string_new(NULL);
    for (size_t k = 0; k < t->n_pre; k++) {
        const TokPreOp* op = &t->pre[k];
        tok_pieces_reset(b);
        for (size_t i = 0; i < a->n; i++) {
            const char* p = tok_piece(a, i);
            size_t pl = a->len[i];
            switch (op->type) {
            case PRE_METASPACE: {
                g_string_truncate(tmp, 0);
                tok_replace_all(tmp, p, pl, " ", 1, op->repl, (size_t)op->repl_len);
                bool starts = tmp->len >= (size_t)op->repl_len && memcmp(tmp->str, op->repl, (size_t)op->repl_len) == 0;
                if (!starts && (op->prepend == PREPEND_ALWAYS || (op->prepend == PREPEND_FIRST && first && i == 0)))
                    g_string_prepend_len(tmp, op->repl, op->repl_len);
                if (op->split) {
                    Lit lit = {op->repl, (size_t)op->repl_len};
                    split_by(b, tmp->str, tmp->len, find_literal, &lit, SPLIT_MERGED_NEXT);
                } else {
                    tok_pieces_add(b, tmp->str, tmp->len);
                }
                break;
            }
            case PRE_BYTELEVEL: {
                g_string_truncate(tmp, 0);
                if (op->add_prefix_space && (pl == 0 || p[0] != ' ')) g_string_append_c(tmp, ' ');
                g_string_append_len(tmp, p, (gssize)pl);
                TokPieces parts;
                tok_pieces_init(&parts);
                if (op->use_regex) {
                    TokRegex re = TOK_RE_GPT2;
                    split_by(&parts, tmp->str, tmp->len, find_regex, &re, SPLIT_ISOLATED);
                } else {
                    tok_pieces_add(&parts, tmp->str, tmp->len);
                }
                GString* mapped = g_string_new(NULL);
                for (size_t j = 0; j < parts.n; j++) {
                    g_string_truncate(mapped, 0);
                    const uint8_t* q = (const uint8_t*)tok_piece(&parts, j);
                    for (size_t x = 0; x < parts.len[j]; x++) {
                        int l;
                        const char* c = tok_bytelevel_char(q[x], &l);
                        g_string_append_len(mapped, c, l);
                    }
                    tok_pieces_add(b, mapped->str, mapped->len);
                }
                g_string_free(mapped, TRUE);
                tok_pieces_free(&parts);
                break;
            }
            case PRE_SPLIT:
                if (op->literal) {
                    Lit lit = {op->literal, op->literal_len};
                    split_by(b, p, pl, find_literal, &lit, op->behavior);
                } else {
                    split_by(b, p, pl, find_regex, &op->regex, op->behavior);
                }
                break;
            }
        }
        TokPieces sw = *a;
        *a = *b;
        *b = sw;
    }
    g_string_free(tmp, TRUE);
}

/* ---- HF BPE model ---------------------------------------------------------------- */

typedef struct {
    int32_t id;
    int32_t prev, next;
    uint32_t len;
} Sym;

typedef struct {
    uint32_t rank;
    uint32_t pos;
    int32_t merged;
} MergeItem;

static bool merge_less(const MergeItem* a, const MergeItem* b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

TOK_DEFINE_HEAP(Heap, MergeItem, heap_push, heap_pop, merge_less)

typedef struct {
    Sym* v;
    size_t n, cap;
} SymVec;

static bool sym_add(SymVec* w, int32_t id, uint32_t len) {
    if (w->n == w->cap) {
        size_t nc = w->cap ? w->cap * 2 : 64;
        Sym* nv = realloc(w->v, nc * sizeof *nv);
        if (!nv) return false;
        w->v = nv;
        w->cap = nc;
    }
    int32_t i = (int32_t)w->n;
    w->v[i] = (Sym){id, i - 1, -1, len};
    if (i > 0) w->v[i - 1].next = i;
    w->n++;
    return true;
}

/* BPE of one pre-token, as tokenizers' BPE::merge_word + Word::merge_all. */
static MglStatus bpe_word(const MglTokenizer* t, const char* s, size_t n, GArray* ids, MglErr* err) {
    if (n == 0) return MGL_OK;
    if (t->ignore_merges) {
        int32_t id = tok_strmap_get(&t->vocab, s, n);
        if (id >= 0) {
            g_array_append_val(ids, id);
            return MGL_OK;
        }
    }
    SymVec w = {0};
    Heap h = {0};
    GString* tmp = NULL;
    bool oom = false;
    bool have_unk = false;
    int32_t unk_id = -1;
    uint32_t unk_len = 0;
    size_t i = 0;
    while (i < n && !oom) {
        uint32_t cp;
        int l = tok_utf8_next(s + i, n - i, &cp);
        size_t cl = l > 0 ? (size_t)l : 1;
        bool is_first = i == 0, is_last = i + cl >= n;
        const char* key = s + i;
        size_t klen = cl;
        if ((t->cont_prefix && !is_first) || (t->eow_suffix && is_last)) {
            if (!tmp) tmp = g_string_new(NULL);
            g_string_truncate(tmp, 0);
            if (t->cont_prefix && !is_first) g_string_append(tmp, t->cont_prefix);
            g_string_append_len(tmp, s + i, (gssize)cl);
            if (t->eow_suffix && is_last) g_string_append(tmp, t->eow_suffix);
            key = tmp->str;
            klen = tmp->len;
        }
        int32_t id = tok_strmap_get(&t->vocab, key, klen);
        if (id >= 0) {
            if (have_unk) {
                oom |= !sym_add(&w, unk_id, unk_len);
                have_unk = false;
            }
            oom |= !sym_add(&w, id, (uint32_t)cl);
        } else {
            bool done = false;
            if (t->byte_fallback) {
                bool all = true;
                for (size_t k = 0; k < klen; k++)
                    if (t->byte_ids[(uint8_t)key[k]] < 0) {
                        all = false;
                        break;
                    }
                if (all) {
                    /* As HF: a pending unk is not flushed before byte pieces. */
                    for (size_t k = 0; k < klen; k++) oom |= !sym_add(&w, t->byte_ids[(uint8_t)key[k]], 1);
                    done = true;
                }
            }
            if (!done && t->unk_id >= 0) {
                if (have_unk && t->fuse_unk) {
                    unk_len += (uint32_t)cl;
                } else {
                    if (have_unk) oom |= !sym_add(&w, unk_id, unk_len);
                    have_unk = true;
                    unk_id = t->unk_id;
                    unk_len = (uint32_t)cl;
                }
            }
            /* No unk token: the character is dropped, as HF does. */
        }
        i += cl;
    }
    if (have_unk && !oom) oom |= !sym_add(&w, unk_id, unk_len);
    if (tmp) g_string_free(tmp, TRUE);

    for (size_t k = 0; k + 1 < w.n && !oom; k++) {
        uint32_t rank;
        int32_t m;
        if (tok_pairmap_get(&t->merges, w.v[k].id, w.v[k + 1].id, &rank, &m))
            oom |= !heap_push(&h, (MergeItem){rank, (uint32_t)k, m});
    }
    while (h.n > 0 && !oom) {
        MergeItem top = heap_pop(&h);
        Sym* cur = &w.v[top.pos];
        if (cur->len == 0 || cur->next < 0) continue;
        int32_t nx = cur->next;
        Sym right = w.v[nx];
        uint32_t rank;
        int32_t m;
        /* Stale entry: the pair at this position changed since it was queued. */
        if (!tok_pairmap_get(&t->merges, cur->id, right.id, &rank, &m) || m != top.merged) continue;
        cur->id = top.merged;
        cur->len += right.len;
        cur->next = right.next;
        w.v[nx].len = 0;
        if (right.next >= 0 && (size_t)right.next < w.n) w.v[right.next].prev = (int32_t)top.pos;
        if (cur->prev >= 0) {
            const Sym* pv = &w.v[cur->prev];
            if (tok_pairmap_get(&t->merges, pv->id, cur->id, &rank, &m))
                oom |= !heap_push(&h, (MergeItem){rank, (uint32_t)cur->prev, m});
        }
        if (cur->next >= 0 && (size_t)cur->next < w.n) {
            const Sym* ns = &w.v[cur->next];
            if (tok_pairmap_get(&t->merges, cur->id, ns->id, &rank, &m))
                oom |= !heap_push(&h, (MergeItem){rank, top.pos, m});
        }
    }
    if (!oom)
        for (size_t k = 0; k < w.n; k++)
            if (w.v[k].len) g_array_append_val(ids, w.v[k].id);
    free(w.v);
    free(h.v);
    if (oom) return mgl_err(err, MGL_E_NOMEM, "%s: out of memory while encoding", t->path);
    return MGL_OK;
}

/* ---- added tokens ------------------------------------------------------------ */

static uint32_t last_char(const char* s, size_t n) {
    if (n == 0) return 0;
    size_t q = n - 1;
    while (q > 0 && ((uint8_t)s[q] & 0xC0) == 0x80) q--;
    uint32_t cp = 0;
    return tok_utf8_next(s + q, n - q, &cp) > 0 ? cp : 0;
}

/* Rust regex's Unicode \w, which tokenizers uses for single_word: letters,
 * marks, decimal digits, letter numbers, connector punctuation, ZWNJ/ZWJ. */
static bool is_word_char(uint32_t cp) {
    if (cp < 0x80) return g_ascii_isalnum((char)cp) || cp == '_';
    if (cp == 0x200C || cp == 0x200D) return true;
    switch (g_unichar_type(cp)) {
    case G_UNICODE_LOWERCASE_LETTER:
    case G_UNICODE_MODIFIER_LETTER:
    case G_UNICODE_OTHER_LETTER:
    case G_UNICODE_TITLECASE_LETTER:
    case G_UNICODE_UPPERCASE_LETTER:
    case G_UNICODE_SPACING_MARK:
    case G_UNICODE_ENCLOSING_MARK:
    case G_UNICODE_NON_SPACING_MARK:
    case G_UNICODE_DECIMAL_NUMBER:
    case G_UNICODE_LETTER_NUMBER:
    case G_UNICODE_CONNECT_PUNCTUATION: return true;
    default: return false;
    }
}

typedef struct {
    size_t start, end;
    int32_t id; /* -1: plain text */
} Seg;

/* Splits s[0..n) on the added tokens with normalized == `normalized`,
 * following AddedVocabulary::find_matches (leftmost-longest, then the
 * single_word / lstrip / rstrip rules). */
static void split_added(const MglTokenizer* t, const char* s, size_t n, bool normalized, GArray* segs) {
    size_t start_offset = 0;
    size_t pos = 0;
    while (pos < n) {
        /* next leftmost-longest match at or after pos */
        size_t ms = 0, me = 0;
        const TokAdded* hit = NULL;
        const uint8_t bit = normalized ? 2 : 1;
        for (size_t i = pos; i < n && !hit; i++) {
            if (!(t->added_first[(uint8_t)s[i]] & bit)) continue;
            for (size_t k = 0; k < t->n_added; k++) {
                const TokAdded* a = &t->added[k];
                if (a->normalized != normalized || a->match_len > n - i) continue;
                if ((uint8_t)a->match[0] != (uint8_t)s[i]) continue;
                if (memcmp(a->match, s + i, a->match_len) == 0) {
                    hit = a;
                    ms = i;
                    me = i + a->match_len;
                    break;
                }
            }
        }
        if (!hit) break;
        pos = me;
        size_t start = ms, stop = me;
        if (hit->single_word) {
            bool start_space = start == 0 || !is_word_char(last_char(s, start));
            uint32_t nc = 0;
            bool stop_space = stop == n || (tok_utf8_next(s + stop, n - stop, &nc) > 0 && !is_word_char(nc));
            if (!start_space || !stop_space) continue;
        }
        if (hit->lstrip) {
            size_t ns = start;
            while (ns > 0) {
                size_t q = ns - 1;
                while (q > 0 && ((uint8_t)s[q] & 0xC0) == 0x80) q--;
                uint32_t cp;
                if (tok_utf8_next(s + q, ns - q, &cp) > 0 && tok_is_space(cp))
                    ns = q;
                else
                    break;
            }
            start = ns > start_offset ? ns : start_offset;
        }
        if (hit->rstrip) {
            uint32_t cp;
            int l;
            while (stop < n && (l = tok_utf8_next(s + stop, n - stop, &cp)) > 0 && tok_is_space(cp)) stop += (size_t)l;
        }
        if (start_offset < start) {
            Seg g = {start_offset, start, -1};
            g_array_append_val(segs, g);
        }
        Seg g = {start, stop, hit->id};
        g_array_append_val(segs, g);
        start_offset = stop;
    }
    if (start_offset < n) {
        Seg g = {start_offset, n, -1};
        g_array_append_val(segs, g);
    }
}

/* ---- encode ---------------------------------------------------------------------- */

static MglStatus encode_model(const MglTokenizer* t, const char* s, size_t n, bool first, TokPieces* pa, TokPieces* pb,
                              GArray* ids, MglErr* err) {
    if (n == 0) return MGL_OK;
    pretokenize(t, s, n, first, pa, pb);
    for (size_t i = 0; i < pa->n; i++) MGL_TRY(bpe_word(t, tok_piece(pa, i), pa->len[i], ids, err));
    return MGL_OK;
}

static MglStatus encode_ids(const MglTokenizer* t, const char* text, size_t len, GArray* ids, MglErr* err) {
    GArray* segs = g_array_new(FALSE, FALSE, sizeof(Seg));
    GArray* sub = g_array_new(FALSE, FALSE, sizeof(Seg));
    GString* norm = g_string_new(NULL);
    TokPieces pa, pb;
    tok_pieces_init(&pa);
    tok_pieces_init(&pb);
    MglStatus st = MGL_OK;
    split_added(t, text, len, false, segs);
    for (size_t i = 0; i < segs->len && st == MGL_OK; i++) {
        const Seg* g = &g_array_index(segs, Seg, i);
        if (g->id >= 0) {
            g_array_append_val(ids, g->id);
            continue;
        }
        const char* s = text + g->start;
        size_t n = g->end - g->start;
        st = normalize(t, s, n, norm, err);
        if (st != MGL_OK) break;
        if (!t->any_normalized_added) {
            st = encode_model(t, norm->str, norm->len, g->start == 0, &pa, &pb, ids, err);
            continue;
        }
        g_array_set_size(sub, 0);
        split_added(t, norm->str, norm->len, true, sub);
        for (size_t k = 0; k < sub->len && st == MGL_OK; k++) {
            const Seg* h = &g_array_index(sub, Seg, k);
            if (h->id >= 0)
                g_array_append_val(ids, h->id);
            else
                st = encode_model(t, norm->str + h->start, h->end - h->start, g->start == 0 && h->start == 0, &pa, &pb,
                                  ids, err);
        }
    }
    tok_pieces_free(&pa);
    tok_pieces_free(&pb);
    g_string_free(norm, TRUE);
    g_array_free(sub, TRUE);
    g_array_free(segs, TRUE);
    return st;
}

MglStatus mgl_tokenizer_encode(const MglTokenizer* t, const char* text, ptrdiff_t len, bool add_special,
                               int32_t** out_ids, size_t* n_ids, MglErr* err) {
    if (out_ids) *out_ids = NULL;
    if (n_ids) *n_ids = 0;
    if (!t || !out_ids || !n_ids || (!text && len != 0))
        return mgl_err(err, MGL_E_INVALID, "mgl_tokenizer_encode: NULL argument");
    size_t n = len < 0 ? strlen(text) : (size_t)len;
    if (n && !tok_utf8_valid(text, n)) return mgl_err(err, MGL_E_INVALID, "%s: input text is not valid UTF-8", t->path);
    GArray* ids = g_array_new(FALSE, FALSE, sizeof(int32_t));
    if (add_special) g_array_append_vals(ids, t->post_pre, (guint)t->n_post_pre);
    MglStatus st = n ? encode_ids(t, text, n, ids, err) : MGL_OK;
    if (st == MGL_OK && add_special) g_array_append_vals(ids, t->post_post, (guint)t->n_post_post);
    if (st != MGL_OK) {
        g_array_free(ids, TRUE);
        return st;
    }
    size_t cnt = ids->len;
    int32_t* r = malloc(cnt ? cnt * sizeof *r : 1);
    if (!r) {
        g_array_free(ids, TRUE);
        return mgl_err(err, MGL_E_NOMEM, "%s: out of memory", t->path);
    }
    if (cnt) memcpy(r, ids->data, cnt * sizeof *r);
    g_array_free(ids, TRUE);
    *out_ids = r;
    *n_ids = cnt;
    return MGL_OK;
}

/* ---- decoding -------------------------------------------------------------------- */

/* The decoder runs as a stream; mgl_tokenizer_decode is push-all + flush, so
 * the two always agree. For a decoder chain (SentencePiece style) the ops
 * split in three stages: per token (before ByteFallback), per element (after
 * ByteFallback, before Fuse: a byte run decodes to one element, or to one
 * U+FFFD element per byte when it is not valid UTF-8) and on the fused text
 * (only Strip is allowed there: it is applied as text streams out). */
/* transformers' PreTrainedTokenizerBase.clean_up_tokenization: ten
 * str.replace calls, one after the other, each over the whole text. */
static const struct {
    const char* pat;
    const char* rep;
} clean_rules[] = {{" .", "."},     {" ?", "?"},   {" !", "!"},   {" ,", ","},     {" ' ", "'"},
                   {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
#define N_CLEAN (sizeof clean_rules / sizeof clean_rules[0])

struct MglDetok {
    const MglTokenizer* tok;
    bool skip;
    bool clean;
    GString* cpend[N_CLEAN]; /* per rule: text that may still start a match */
    GString* cbuf[2];
    GString* out;
    GString* t1;
    GString* t2;
    uint64_t n_tok;
    uint64_t n_elem;
    TokUtf8Lossy lossy;
    GByteArray* run;
    size_t bf, fuse;        /* op indices, n_dec when absent */
    const TokDecOp* gstrip; /* strip on the fused text, or NULL */
    int strip_left;
    int held; /* trailing strip chars held back */
};

/* One rule as a stream: str.replace scans left to right and replaces
 * non-overlapping matches, so text is final up to the first position whose
 * remainder is a proper prefix of the pattern; that remainder waits for more
 * text (or the end). */
static void clean_stage(GString* pend, const char* pat, const char* rep, const char* s, size_t n, bool end,
                        GString* out) {
    g_string_append_len(pend, s, (gssize)n);
    size_t pl = strlen(pat), rl = strlen(rep), p = 0, L = pend->len;
    const char* b = pend->str;
    while (p < L) {
        if (L - p >= pl) {
            if (memcmp(b + p, pat, pl) == 0) {
                g_string_append_len(out, rep, (gssize)rl);
                p += pl;
                continue;
            }
        } else if (!end && memcmp(b + p, pat, L - p) == 0) {
            break;
        }
        g_string_append_c(out, b[p]);
        p++;
    }
    g_string_erase(pend, 0, (gssize)p);
}

/* New raw text in d->out becomes cleaned text in d->out; `end` flushes. */
static void clean_stream(MglDetok* d, bool end) {
    if (!d->clean) return;
    GString* in = d->out;
    for (size_t k = 0; k < N_CLEAN; k++) {
        GString* o = d->cbuf[k & 1] == in ? d->cbuf[(k + 1) & 1] : d->cbuf[k & 1];
        g_string_truncate(o, 0);
        clean_stage(d->cpend[k], clean_rules[k].pat, clean_rules[k].rep, in->str, in->len, end, o);
        in = o;
    }
    g_string_assign(d->out, in->str);
}

void tok_strip_chars(GString* s, uint32_t content, int start, int stop) {
    size_t a = 0, b = s->len;
    uint32_t cp;
    int l;
    for (int k = 0; k < start && a < b; k++) {
        if ((l = tok_utf8_next(s->str + a, b - a, &cp)) > 0 && cp == content)
            a += (size_t)l;
        else
            break;
    }
    for (int k = 0; k < stop && b > a; k++) {
        size_t q = b - 1;
        while (q > a && ((uint8_t)s->str[q] & 0xC0) == 0x80) q--;
        if ((l = tok_utf8_next(s->str + q, b - q, &cp)) > 0 && cp == content)
            b = q;
        else
            break;
    }
    g_string_truncate(s, b);
    g_string_erase(s, 0, (gssize)a);
}

/* Applies ops [i0, i1) to the string in d->t1 (`index`: its position in the
 * list at this stage, for Metaspace's first-token rule). */
static void apply_ops(MglDetok* d, size_t i0, size_t i1, uint64_t index) {
    const MglTokenizer* t = d->tok;
    for (size_t k = i0; k < i1; k++) {
        const TokDecOp* op = &t->dec[k];
        switch (op->type) {
        case DEC_REPLACE:
            g_string_truncate(d->t2, 0);
            tok_replace_all(d->t2, d->t1->str, d->t1->len, op->a, op->alen, op->b, op->blen);
            g_string_assign(d->t1, "");
            g_string_append_len(d->t1, d->t2->str, (gssize)d->t2->len);
            break;
        case DEC_METASPACE: {
            g_string_truncate(d->t2, 0);
            size_t i = 0;
            while (i < d->t1->len) {
                uint32_t cp;
                int l = tok_utf8_next(d->t1->str + i, d->t1->len - i, &cp);
                if (l <= 0) {
                    g_string_append_c(d->t2, d->t1->str[i]);
                    i++;
                    continue;
                }
                if (cp == op->content) {
                    if (!(index == 0 && op->prepend_first)) g_string_append_c(d->t2, ' ');
                } else {
                    g_string_append_len(d->t2, d->t1->str + i, l);
                }
                i += (size_t)l;
            }
            g_string_assign(d->t1, "");
            g_string_append_len(d->t1, d->t2->str, (gssize)d->t2->len);
            break;
        }
        case DEC_STRIP: tok_strip_chars(d->t1, op->content, op->start, op->stop); break;
        default: break;
        }
    }
}

/* Text of the fused output: applies the global strip while streaming. */
static void emit_global(MglDetok* d, const char* s, size_t n) {
    const TokDecOp* g = d->gstrip;
    if (!g) {
        g_string_append_len(d->out, s, (gssize)n);
        return;
    }
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        int l = tok_utf8_next(s + i, n - i, &cp);
        size_t cl = l > 0 ? (size_t)l : 1;
        if (l <= 0) cp = 0xFFFFFFFFu;
        if (d->strip_left > 0) {
            if (cp == g->content) {
                d->strip_left--;
                i += cl;
                continue;
            }
            d->strip_left = 0;
        }
        if (g->stop > 0) {
            if (cp == g->content) {
                /* hold back: may be trailing; all held chars are `content` */
                d->held++;
                if (d->held > g->stop) {
                    tok_utf8_append(d->out, g->content);
                    d->held--;
                }
                i += cl;
                continue;
            }
            for (; d->held > 0; d->held--) tok_utf8_append(d->out, g->content);
        }
        g_string_append_len(d->out, s + i, (gssize)cl);
        i += cl;
    }
}

static void emit_element(MglDetok* d, const char* s, size_t n) {
    g_string_truncate(d->t1, 0);
    g_string_append_len(d->t1, s, (gssize)n);
    if (d->bf < d->tok->n_dec) apply_ops(d, d->bf + 1, d->fuse, d->n_elem);
    d->n_elem++;
    emit_global(d, d->t1->str, d->t1->len);
}

static void flush_run(MglDetok* d) {
    if (!d->run->len) return;
    if (tok_utf8_valid((const char*)d->run->data, d->run->len)) {
        GString* s = g_string_new_len((const char*)d->run->data, (gssize)d->run->len);
        emit_element(d, s->str, s->len);
        g_string_free(s, TRUE);
    } else {
        for (guint i = 0; i < d->run->len; i++) emit_element(d, "\xEF\xBF\xBD", 3);
    }
    g_byte_array_set_size(d->run, 0);
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* "<0xNN>" -> byte, as ByteFallback (u8::from_str_radix(.., 16), which also takes a '+' sign). */
int tok_byte_piece(const char* s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    if (s[3] == '+') {
        int v = hexval(s[4]);
        return v;
    }
    int hi = hexval(s[3]), lo = hexval(s[4]);
    if (hi < 0 || lo < 0) return -1;
    return hi * 16 + lo;
}

MglDetok* mgl_detok_new(const MglTokenizer* tok, bool skip_special) {
    if (!tok) return NULL;
    MglDetok* d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->tok = tok;
    d->skip = skip_special;
    d->clean = tok->clean_up;
    for (size_t k = 0; k < N_CLEAN; k++) d->cpend[k] = g_string_new(NULL);
    d->cbuf[0] = g_string_new(NULL);
    d->cbuf[1] = g_string_new(NULL);
    d->out = g_string_new(NULL);
    d->t1 = g_string_new(NULL);
    d->t2 = g_string_new(NULL);
    d->run = g_byte_array_new();
    d->bf = d->fuse = tok->n_dec;
    for (size_t k = 0; k < tok->n_dec; k++) {
        if (tok->dec[k].type == DEC_BYTEFALLBACK && d->bf == tok->n_dec) d->bf = k;
        if (tok->dec[k].type == DEC_FUSE && d->fuse == tok->n_dec) d->fuse = k;
    }
    for (size_t k = d->fuse + 1; k < tok->n_dec; k++)
        if (tok->dec[k].type == DEC_STRIP) d->gstrip = &tok->dec[k];
    if (d->gstrip) d->strip_left = d->gstrip->start;
    return d;
}

void mgl_detok_free(MglDetok* d) {
    if (!d) return;
    for (size_t k = 0; k < N_CLEAN; k++) g_string_free(d->cpend[k], TRUE);
    g_string_free(d->cbuf[0], TRUE);
    g_string_free(d->cbuf[1], TRUE);
    g_string_free(d->out, TRUE);
    g_string_free(d->t1, TRUE);
    g_string_free(d->t2, TRUE);
    g_byte_array_free(d->run, TRUE);
    free(d);
}

static void push_piece(MglDetok* d, const char* p, size_t n) {
    const MglTokenizer* t = d->tok;
    switch (t->dec_kind) {
    case DECODER_NONE:
        if (d->n_tok > 0) g_string_append_c(d->out, ' ');
        g_string_append_len(d->out, p, (gssize)n);
        break;
    case DECODER_BYTELEVEL: {
        /* All chars mapped back to bytes, else the token's own UTF-8. */
        GByteArray* b = d->run;
        g_byte_array_set_size(b, 0);
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
            uint8_t c = (uint8_t)v;
            g_byte_array_append(b, &c, 1);
            i += (size_t)l;
        }
        if (ok)
            tok_lossy_feed(&d->lossy, b->data, b->len, d->out);
        else
            tok_lossy_feed(&d->lossy, (const uint8_t*)p, n, d->out);
        g_byte_array_set_size(b, 0);
        break;
    }
    case DECODER_CHAIN: {
        g_string_truncate(d->t1, 0);
        g_string_append_len(d->t1, p, (gssize)n);
        size_t end = d->bf < t->n_dec ? d->bf : d->fuse;
        apply_ops(d, 0, end, d->n_tok);
        if (d->bf < t->n_dec) {
            int v = tok_byte_piece(d->t1->str, d->t1->len);
            if (v >= 0) {
                uint8_t c = (uint8_t)v;
                g_byte_array_append(d->run, &c, 1);
                break;
            }
            /* flush_run reuses t1: keep this token's text aside first */
            GString* s = g_string_new_len(d->t1->str, (gssize)d->t1->len);
            flush_run(d);
            emit_element(d, s->str, s->len);
            g_string_free(s, TRUE);
        } else {
            d->n_elem++;
            emit_global(d, d->t1->str, d->t1->len);
        }
        break;
    }
    }
    d->n_tok++;
}

const char* mgl_detok_push(MglDetok* d, int32_t id) {
    if (!d) return "";
    g_string_truncate(d->out, 0);
    const MglTokenizer* t = d->tok;
    /* An id with no piece has nothing to show (decode reports it as an error). */
    if (id < 0 || id >= t->n_vocab || !t->pieces[id]) return d->out->str;
    if (d->skip && (t->flags[id] & TOKF_SPECIAL)) return d->out->str;
    push_piece(d, t->pieces[id], t->piece_len[id]);
    clean_stream(d, false);
    return d->out->str;
}

const char* mgl_detok_flush(MglDetok* d) {
    if (!d) return "";
    g_string_truncate(d->out, 0);
    if (d->tok->dec_kind == DECODER_BYTELEVEL) tok_lossy_flush(&d->lossy, d->out);
    if (d->tok->dec_kind == DECODER_CHAIN) {
        if (d->bf < d->tok->n_dec) flush_run(d);
        d->held = 0; /* trailing strip chars are dropped */
    }
    clean_stream(d, true);
    return d->out->str;
}

MglStatus mgl_tokenizer_decode(const MglTokenizer* t, const int32_t* ids, size_t n_ids, bool skip_special, char** text,
                               MglErr* err) {
    if (text) *text = NULL;
    if (!t || !text || (!ids && n_ids)) return mgl_err(err, MGL_E_INVALID, "mgl_tokenizer_decode: NULL argument");
    for (size_t i = 0; i < n_ids; i++)
        if (ids[i] < 0 || ids[i] >= t->n_vocab || !t->pieces[ids[i]])
            return mgl_err(err, MGL_E_INVALID, "%s: token id %d (at %zu) is out of range (vocabulary %d)", t->path,
                           ids[i], i, t->n_vocab);
    MglDetok* d = mgl_detok_new(t, skip_special);
    if (!d) return mgl_err(err, MGL_E_NOMEM, "%s: out of memory", t->path);
    GString* all = g_string_new(NULL);
    for (size_t i = 0; i < n_ids; i++) g_string_append(all, mgl_detok_push(d, ids[i]));
    g_string_append(all, mgl_detok_flush(d));
    mgl_detok_free(d);
    /* Hand back malloc'ed memory: callers free() it. */
    char* r = malloc(all->len + 1);
    if (!r) {
        g_string_free(all, TRUE);
        return mgl_err(err, MGL_E_NOMEM, "%s: out of memory", t->path);
    }
    memcpy(r, all->str, all->len + 1);
    g_string_free(all, TRUE);
    *text = r;
    return MGL_OK;
}
