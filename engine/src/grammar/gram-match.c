/* gram-match.c: matching bytes against the rules with a set of parser stacks.
 *
 * A stack is a hash-consed node (pos, parent): elements pos.. of one
 * alternative, then the stack `parent`; node 0 is the empty stack. A
 * reference at pos pushes each alternative of its rule with the continuation
 * (pos + 1, parent) -- or just `parent` when the reference is the last
 * element (a tail call, so x* and other right recursion keep the stack
 * flat). A state is the sorted set of the stacks whose top is a byte set,
 * interned so that equal states share one id and one row of 256 cached
 * transitions: once a walk has met a state and a byte, the next time is one
 * array read. */
#include "grammar/mgl-grammar-internal.h"

#include <glib.h>
#include <stdlib.h>
#include <string.h>

/* Past these the tables are rebuilt around the current state (between steps). */
#define COMPACT_NODES (1u << 20)
#define COMPACT_SETS (1u << 16)
#define COMPACT_ROWS (1u << 14)

static inline uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static bool grow(void** p, uint32_t* cap, size_t need, size_t elem) {
    if (need <= *cap) return true;
    size_t nc = *cap ? *cap : 64;
    while (nc < need) nc *= 2;
    if (nc > UINT32_MAX) return false;
    void* q = realloc(*p, nc * elem);
    if (!q) return false;
    *p = q;
    *cap = (uint32_t)nc;
    return true;
}

static bool grow_sz(void** p, size_t* cap, size_t need, size_t elem) {
    if (need <= *cap) return true;
    size_t nc = *cap ? *cap : 64;
    while (nc < need) nc *= 2;
    void* q = realloc(*p, nc * elem);
    if (!q) return false;
    *p = q;
    *cap = nc;
    return true;
}

/* ---- nodes -------------------------------------------------------------- */

static bool node_ht_rehash(GMatch* m, uint32_t cap) {
    uint32_t* ht = calloc(cap, sizeof(uint32_t));
    if (!ht) return false;
    for (uint32_t id = 1; id < m->n_nodes; id++) {
        uint64_t h = mix64(((uint64_t)(uint32_t)m->nodes[id].pos << 32) | (uint32_t)m->nodes[id].parent);
        uint32_t i = (uint32_t)h & (cap - 1);
        while (ht[i]) i = (i + 1) & (cap - 1);
        ht[i] = id + 1;
    }
    free(m->node_ht);
    m->node_ht = ht;
    m->node_ht_cap = cap;
    return true;
}

/* The node (pos, parent), made when new; -1 when too deep or out of memory. */
static int32_t node_get(GMatch* m, int32_t pos, int32_t parent) {
    uint64_t h = mix64(((uint64_t)(uint32_t)pos << 32) | (uint32_t)parent);
    uint32_t mask = m->node_ht_cap - 1;
    uint32_t i = (uint32_t)h & mask;
    for (uint32_t v; (v = m->node_ht[i]); i = (i + 1) & mask) {
        const GmNode* n = &m->nodes[v - 1];
        if (n->pos == pos && n->parent == parent) return (int32_t)(v - 1);
    }
    uint32_t depth = m->nodes[parent].depth + 1;
    if (depth > GRAM_MAX_DEPTH) return -1;
    if (!grow((void**)&m->nodes, &m->cap_nodes, (size_t)m->n_nodes + 1, sizeof(GmNode))) {
        m->oom = true;
        return -1;
    }
    int32_t id = (int32_t)m->n_nodes++;
    m->nodes[id] = (GmNode){pos, parent, depth};
    m->node_ht[i] = (uint32_t)id + 1;
    if ((uint64_t)m->n_nodes * 2 > m->node_ht_cap && !node_ht_rehash(m, m->node_ht_cap * 2)) m->oom = true;
    return id;
}

/* ---- sets --------------------------------------------------------------- */

static uint64_t set_hash(const int32_t* ids, size_t n) {
    uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
    for (size_t k = 0; k < n; k++) h = mix64(h ^ (uint32_t)ids[k]) + k;
    return h;
}

static bool set_ht_rehash(GMatch* m, uint32_t cap) {
    uint32_t* ht = calloc(cap, sizeof(uint32_t));
    if (!ht) return false;
    for (uint32_t s = 0; s < m->n_sets; s++) {
        uint32_t i = (uint32_t)set_hash(m->pool + m->sets[s].off, m->sets[s].n) & (cap - 1);
        while (ht[i]) i = (i + 1) & (cap - 1);
        ht[i] = s + 1;
    }
    free(m->set_ht);
    m->set_ht = ht;
    m->set_ht_cap = cap;
    return true;
}

/* The state holding ids[0..n) (sorted, unique), made when new. */
static int32_t set_get(GMatch* m, const int32_t* ids, size_t n) {
    uint64_t h = set_hash(ids, n);
    uint32_t mask = m->set_ht_cap - 1;
    uint32_t i = (uint32_t)h & mask;
    for (uint32_t v; (v = m->set_ht[i]); i = (i + 1) & mask) {
        const GmSet* s = &m->sets[v - 1];
        if (s->n == n && !memcmp(m->pool + s->off, ids, n * sizeof(int32_t))) return (int32_t)(v - 1);
    }
    if (!grow((void**)&m->sets, &m->cap_sets, (size_t)m->n_sets + 1, sizeof(GmSet)) ||
        !grow_sz((void**)&m->pool, &m->cap_pool, m->n_pool + n, sizeof(int32_t))) {
        m->oom = true;
        return GRAM_DEAD;
    }
    memcpy(m->pool + m->n_pool, ids, n * sizeof(int32_t));
    int32_t id = (int32_t)m->n_sets++;
    m->sets[id] = (GmSet){(uint32_t)m->n_pool, (uint32_t)n, -1, n > 0 && ids[0] == 0};
    m->n_pool += n;
    m->set_ht[i] = (uint32_t)id + 1;
    if ((uint64_t)m->n_sets * 2 > m->set_ht_cap && !set_ht_rehash(m, m->set_ht_cap * 2)) m->oom = true;
    return id;
}

/* ---- closure ------------------------------------------------------------ */

static bool seen_add(GMatch* m, int32_t pos, int32_t parent) {
    if ((m->n_seen + 1) * 2 > m->seen_cap) {
        uint32_t nc = m->seen_cap * 2;
        uint64_t* ns = calloc(nc, sizeof(uint64_t));
        if (!ns) {
            m->oom = true;
            return false;
        }
        for (uint32_t k = 0; k < m->seen_cap; k++) {
            uint64_t v = m->seen[k];
            if (!v) continue;
            uint32_t i = (uint32_t)mix64(v) & (nc - 1);
            while (ns[i]) i = (i + 1) & (nc - 1);
            ns[i] = v;
        }
        free(m->seen);
        m->seen = ns;
        m->seen_cap = nc;
    }
    uint64_t key = (((uint64_t)(uint32_t)pos << 32) | (uint32_t)parent) + 1; /* never 0 */
    uint32_t mask = m->seen_cap - 1;
    uint32_t i = (uint32_t)mix64(key) & mask;
    for (; m->seen[i]; i = (i + 1) & mask)
        if (m->seen[i] == key) return false;
    m->seen[i] = key;
    m->n_seen++;
    return true;
}

static bool work_push(GMatch* m, int32_t pos, int32_t parent) {
    if (!grow_sz((void**)&m->work, &m->cap_work, m->n_work + 1, sizeof(int64_t))) {
        m->oom = true;
        return false;
    }
    m->work[m->n_work++] = ((int64_t)pos << 32) | (uint32_t)parent;
    return true;
}

static void out_push(GMatch* m, int32_t id) {
    if (!grow_sz((void**)&m->out, &m->cap_out, m->n_out + 1, sizeof(int32_t))) {
        m->oom = true;
        return;
    }
    m->out[m->n_out++] = id;
}

/* Expands the queued (pos, parent) items until every stack's top is a byte
 * set or the stack is empty; the stacks go to m->out. */
static void closure(GMatch* m) {
    const GRules* r = m->r;
    size_t budget = GRAM_MAX_CLOSURE;
    while (m->n_work && budget--) {
        int64_t w = m->work[--m->n_work];
        int32_t pos = (int32_t)(w >> 32), parent = (int32_t)(uint32_t)w;
        for (;;) {
            m->work_done++;
            const GElem e = r->elems[pos];
            if (e.type == GE_BYTES) {
                int32_t id = m->n_out < GRAM_MAX_STACKS ? node_get(m, pos, parent) : -1;
                if (id > 0) out_push(m, id);
                break;
            }
            if (e.type == GE_END) {
                if (parent == 0) {
                    out_push(m, 0);
                    break;
                }
                pos = m->nodes[parent].pos;
                parent = m->nodes[parent].parent;
                continue;
            }
            /* a reference */
            if (!seen_add(m, pos, parent)) break;
            int32_t cont = parent;
            if (r->elems[pos + 1].type != GE_END && (cont = node_get(m, pos + 1, parent)) < 0) break;
            for (uint32_t a = r->alt_begin[e.val]; a < r->alt_begin[e.val + 1]; a++)
                if (!work_push(m, (int32_t)r->alts[a], cont)) break;
            break;
        }
    }
    m->n_work = 0;
    if (m->n_seen) {
        memset(m->seen, 0, sizeof(uint64_t) * m->seen_cap);
        m->n_seen = 0;
    }
}

static int cmp_i32(const void* a, const void* b) {
    int32_t x = *(const int32_t*)a, y = *(const int32_t*)b;
    return x < y ? -1 : x > y;
}

/* m->out sorted, duplicates dropped, interned. */
static int32_t out_to_set(GMatch* m) {
    if (!m->n_out) return GRAM_DEAD;
    qsort(m->out, m->n_out, sizeof(int32_t), cmp_i32);
    size_t k = 1;
    for (size_t i = 1; i < m->n_out; i++)
        if (m->out[i] != m->out[k - 1]) m->out[k++] = m->out[i];
    m->n_out = k;
    return set_get(m, m->out, k);
}

bool gmatch_init(GMatch* m, const GRules* r) {
    memset(m, 0, sizeof *m);
    m->r = r;
    m->node_ht_cap = 1024;
    m->set_ht_cap = 256;
    m->seen_cap = 256;
    m->node_ht = calloc(m->node_ht_cap, sizeof(uint32_t));
    m->set_ht = calloc(m->set_ht_cap, sizeof(uint32_t));
    m->seen = calloc(m->seen_cap, sizeof(uint64_t));
    if (!m->node_ht || !m->set_ht || !m->seen || !grow((void**)&m->nodes, &m->cap_nodes, 1, sizeof(GmNode))) {
        gmatch_clear(m);
        return false;
    }
    m->nodes[0] = (GmNode){-1, -1, 0};
    m->n_nodes = 1;
    return true;
}

void gmatch_clear(GMatch* m) {
    free(m->nodes);
    free(m->node_ht);
    free(m->sets);
    free(m->pool);
    free(m->set_ht);
    free(m->rows);
    free(m->out);
    free(m->work);
    free(m->seen);
    memset(m, 0, sizeof *m);
}

int32_t gmatch_initial(GMatch* m) {
    const GRules* r = m->r;
    m->n_out = 0;
    for (uint32_t a = r->alt_begin[r->start]; a < r->alt_begin[r->start + 1]; a++) work_push(m, (int32_t)r->alts[a], 0);
    closure(m);
    int32_t s = out_to_set(m);
    return m->oom ? -1 : s;
}

static int32_t row_for(GMatch* m, int32_t s) {
    if (m->sets[s].row >= 0) return m->sets[s].row;
    if (!grow((void**)&m->rows, &m->cap_rows, ((size_t)m->n_rows + 1) * 256, sizeof(int32_t))) {
        m->oom = true;
        return -1;
    }
    int32_t row = (int32_t)m->n_rows++;
    for (int b = 0; b < 256; b++) m->rows[(size_t)row * 256 + b] = GRAM_UNKNOWN;
    m->sets[s].row = row;
    return row;
}

int32_t gmatch_step_slow(GMatch* m, int32_t s, uint8_t b) {
    if (s < 0) return GRAM_DEAD;
    if (m->work_limit && m->work_done >= m->work_limit) {
        m->cut = true;
        return GRAM_DEAD;
    }
    const GRules* r = m->r;
    m->n_out = 0;
    const uint32_t off = m->sets[s].off, n = m->sets[s].n;
    for (uint32_t k = 0; k < n; k++) {
        int32_t id = m->pool[off + k];
        if (id == 0) continue;
        int32_t pos = m->nodes[id].pos;
        if (gram_set_has(&r->sets[r->elems[pos].val], b)) work_push(m, pos + 1, m->nodes[id].parent);
    }
    closure(m);
    int32_t t = out_to_set(m);
    if (m->oom) return GRAM_DEAD; /* not cached: the state may be incomplete */
    int32_t row = row_for(m, s);
    if (row >= 0) m->rows[(size_t)row * 256 + b] = t;
    return t;
}

/* ---- compaction --------------------------------------------------------- */

static int32_t copy_stack(GMatch* dst, const GMatch* src, int32_t id, int32_t* chain) {
    int depth = 0;
    for (int32_t x = id; x != 0; x = src->nodes[x].parent) chain[depth++] = x;
    int32_t parent = 0;
    for (int k = depth - 1; k >= 0; k--) {
        parent = node_get(dst, src->nodes[chain[k]].pos, parent);
        if (parent < 0) return -1;
    }
    return parent;
}

bool gmatch_compact_if_large(GMatch* m, int32_t* s) {
    if (m->n_nodes < COMPACT_NODES && m->n_sets < COMPACT_SETS && m->n_rows < COMPACT_ROWS) return false;
    GMatch fresh;
    if (!gmatch_init(&fresh, m->r)) return false;
    if (*s >= 0) {
        int32_t* chain = malloc(sizeof(int32_t) * (GRAM_MAX_DEPTH + 2));
        const GmSet st = m->sets[*s];
        bool ok = chain != NULL;
        for (uint32_t k = 0; ok && k < st.n; k++) {
            int32_t id = copy_stack(&fresh, m, m->pool[st.off + k], chain);
            if (id < 0)
                ok = false;
            else
                out_push(&fresh, id);
        }
        free(chain);
        int32_t ns = ok ? out_to_set(&fresh) : GRAM_DEAD;
        if (!ok || fresh.oom || ns < 0) {
            gmatch_clear(&fresh);
            return false;
        }
        *s = ns;
    }
    fresh.generation = m->generation + 1;
    fresh.work_done = m->work_done;
    fresh.work_limit = m->work_limit;
    gmatch_clear(m);
    *m = fresh;
    return true;
}

/* ---- shortest completion (tests) ---------------------------------------- */

int gmatch_shortest_completion(GMatch* m, int32_t s, uint8_t* out, int cap) {
    if (s < 0) return -1;
    if (m->sets[s].accept) return 0;
    GHashTable* prev = g_hash_table_new(g_direct_hash, g_direct_equal); /* state+1 -> (parent+1) << 8 | byte */
    GArray* q = g_array_new(FALSE, FALSE, sizeof(int32_t));
    g_array_append_val(q, s);
    g_hash_table_insert(prev, GINT_TO_POINTER(s + 1), GSIZE_TO_POINTER(0));
    int32_t hit = -1;
    for (guint qi = 0; qi < q->len && hit < 0 && qi < 200000; qi++) {
        int32_t x = g_array_index(q, int32_t, qi);
        for (int b = 0; b < 256 && hit < 0; b++) {
            int32_t y = gmatch_step(m, x, (uint8_t)b);
            if (y < 0 || g_hash_table_contains(prev, GINT_TO_POINTER(y + 1))) continue;
            g_hash_table_insert(prev, GINT_TO_POINTER(y + 1), GSIZE_TO_POINTER(((size_t)(x + 1) << 8) | (size_t)b));
            if (m->sets[y].accept)
                hit = y;
            else
                g_array_append_val(q, y);
        }
    }
    int len = -1;
    if (hit >= 0) {
        int n = 0;
        for (int32_t y = hit; y != s;) {
            size_t v = GPOINTER_TO_SIZE(g_hash_table_lookup(prev, GINT_TO_POINTER(y + 1)));
            n++;
            y = (int32_t)(v >> 8) - 1;
        }
        if (n <= cap) {
            len = n;
            for (int32_t y = hit; y != s;) {
                size_t v = GPOINTER_TO_SIZE(g_hash_table_lookup(prev, GINT_TO_POINTER(y + 1)));
                out[--n] = (uint8_t)(v & 0xff);
                y = (int32_t)(v >> 8) - 1;
            }
        }
    }
    g_array_unref(q);
    g_hash_table_unref(prev);
    return len;
}
