/* mgl-grammar-internal.h: the parts of constrained decoding (engine/src/grammar/).
 *
 *   gram-gbnf.c    the grammar notation -> GRules (rules of byte-set elements)
 *   gram-schema.c  a JSON Schema subset -> grammar text (then gram-gbnf.c)
 *   gram-match.c   the matcher: parser stacks, interned stack sets, byte transitions
 *   gram-vocab.c   token ids -> the bytes they add to the text, the byte trie, the mask walk
 *   gram-api.c     the public API (mgllava.h, "structured output")
 *
 * The automaton works on bytes. A character class over code points is
 * compiled to UTF-8 byte sequences, so everything it matches is valid UTF-8
 * and a token that ends inside a character is just a state in the middle of
 * one. */
#ifndef MGL_GRAMMAR_INTERNAL_H
#define MGL_GRAMMAR_INTERNAL_H

#include "mgl-internal.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits that keep a hostile grammar from costing unbounded memory or time. */
#define GRAM_MAX_TEXT (1u << 20)  /* grammar or schema text, bytes */
#define GRAM_MAX_ELEMS (1u << 20) /* elements of all rules together */
#define GRAM_MAX_RULES (1u << 18)
#define GRAM_MAX_REPEAT 10000       /* the n of x{m,n} (and m) */
#define GRAM_MAX_NEST 128           /* parentheses, and schema nesting */
#define GRAM_MAX_DEPTH 1024         /* parser stack depth at run time */
#define GRAM_MAX_CLOSURE (1u << 16) /* expansion work items per transition */
#define GRAM_MAX_STACKS 4096        /* parser stacks in one state */
/* Expansion work (elements visited) of the new transitions one token mask
 * may compute. A grammar whose ambiguity makes every state new and every
 * state thousands of stacks would otherwise cost one transition of up to
 * GRAM_MAX_CLOSURE per trie node: seconds per token with a large vocabulary.
 * Past this budget the walk skips what it has not computed yet (those tokens
 * are left out of the mask). The grammars of the tests need at most ~80,000. */
#define GRAM_MAX_MASK_WORK (1u << 19)

/* ---- compiled rules --------------------------------------------------- */

enum { GE_BYTES = 0, GE_REF = 1, GE_END = 2 };

typedef struct {
    uint32_t type; /* GE_* */
    uint32_t val;  /* GE_BYTES: index into sets; GE_REF: rule id */
} GElem;

typedef struct {
    uint32_t w[8]; /* bit b of w[b >> 5]: byte b matches */
} GByteSet;

static inline bool gram_set_has(const GByteSet* s, uint8_t b) { return (s->w[b >> 5] >> (b & 31)) & 1u; }

/* Every alternative is a run of elements ending with GE_END; alternative a of
 * rule r starts at elems[alts[alt_begin[r] + a]]. */
typedef struct {
    GElem* elems;
    uint32_t n_elems;
    GByteSet* sets;
    uint32_t n_sets;
    uint32_t* alts; /* element index of each alternative's first element */
    uint32_t n_alts;
    uint32_t* alt_begin; /* n_rules + 1 */
    uint32_t n_rules;
    char** names;   /* rule names (generated ones have a '#' suffix) */
    uint32_t start; /* the start rule: an optional space, then root */
    uint32_t root;
} GRules;

/* Parses grammar text into rules (root rule "root"). `what` names the input in
 * messages ("grammar", "schema"). */
MglStatus gram_parse(const char* text, size_t len, const char* what, GRules** out, MglErr* err);
void gram_rules_free(GRules* r);

/* A JSON Schema (text) to grammar text (g_free). */
MglStatus gram_schema_to_gbnf(const char* schema, size_t len, char** gbnf, MglErr* err);

/* ---- the matcher ---------------------------------------------------------
 *
 * A parser stack is a node (pos, parent): "match elements from pos to the end
 * of their alternative, then continue with the stack `parent`"; node 0 is the
 * empty stack (the start rule finished). Nodes are hash-consed, so equal
 * stacks are equal ids and stacks share their tails. A matcher state is a set
 * of stacks whose top element is a byte set (plus node 0 when the text so far
 * is a complete sentence), kept sorted and interned: equal states are equal
 * ids, and each state id has a lazily filled 256-entry transition row. */

#define GRAM_DEAD (-1)
#define GRAM_UNKNOWN (-2)

typedef struct {
    int32_t pos;
    int32_t parent;
    uint32_t depth;
} GmNode;

typedef struct {
    uint32_t off, n; /* node ids in GMatch.pool */
    int32_t row;     /* transition row index, -1 until needed */
    bool accept;
} GmSet;

typedef struct {
    const GRules* r;
    /* nodes (hash-consed) */
    GmNode* nodes;
    uint32_t n_nodes, cap_nodes;
    uint32_t* node_ht; /* open addressing, node id + 1, 0 = empty */
    uint32_t node_ht_cap;
    /* stack sets (interned) */
    GmSet* sets;
    uint32_t n_sets, cap_sets;
    int32_t* pool;
    size_t n_pool, cap_pool;
    uint32_t* set_ht;
    uint32_t set_ht_cap;
    /* transition rows: 256 int32 per row */
    int32_t* rows;
    uint32_t n_rows, cap_rows;
    /* scratch of one transition */
    int32_t* out;
    size_t n_out, cap_out;
    int64_t* work; /* (pos, parent) pairs */
    size_t n_work, cap_work;
    uint64_t* seen; /* visited (pos, parent) of one closure: open addressing */
    uint32_t seen_cap, n_seen;
    bool oom;
    uint64_t generation; /* bumped by gmatch_compact: state ids change */
    /* expansion work done, all transitions so far; a new transition is refused
     * (GRAM_DEAD, not cached, `cut` set) once work_done reaches work_limit
     * (0 = no limit) */
    uint64_t work_done, work_limit;
    bool cut;
} GMatch;

bool gmatch_init(GMatch* m, const GRules* r);
void gmatch_clear(GMatch* m);
/* The state before any byte (-1 when out of memory). */
int32_t gmatch_initial(GMatch* m);
/* The state after `b` from state `s` (GRAM_DEAD when b cannot come next, or
 * when the transition is new and the work limit is reached: then m->cut). */
int32_t gmatch_step_slow(GMatch* m, int32_t s, uint8_t b);
static inline int32_t gmatch_step(GMatch* m, int32_t s, uint8_t b) {
    int32_t row = m->sets[s].row;
    if (row >= 0) {
        int32_t t = m->rows[(size_t)row * 256 + b];
        if (t != GRAM_UNKNOWN) return t;
    }
    return gmatch_step_slow(m, s, b);
}
static inline bool gmatch_accepting(const GMatch* m, int32_t s) { return s >= 0 && m->sets[s].accept; }
/* Keeps only state `*s` (renumbered) when the tables have grown past their
 * budget; returns true when it compacted. */
bool gmatch_compact_if_large(GMatch* m, int32_t* s);
/* Fewest bytes that take state s to an accepting state (breadth-first over
 * states; for tests): the bytes go to `out` (cap bytes), the count is
 * returned, -1 when none is found within `cap` bytes. */
int gmatch_shortest_completion(GMatch* m, int32_t s, uint8_t* out, int cap);

/* ---- the vocabulary side ---------------------------------------------- */

/* Each token's bytes in a trie laid out in preorder: node i has its byte,
 * depth (1 = child of the root), the index after its subtree, and the tokens
 * whose bytes end there (toks[tok_begin of i .. tok_begin of i + 1); a last
 * sentinel node closes the range). */
typedef struct {
    uint32_t skip;
    uint32_t tok_begin;
    uint16_t depth;
    uint8_t byte;
} GTrieNode;

/* One trie over a set of tokens. */
typedef struct {
    uint32_t n_nodes;
    GTrieNode* nodes; /* n_nodes + 1 */
    int32_t* toks;
} GTrie;

typedef struct {
    int32_t n_vocab;
    uint32_t n_nodes;
    GTrieNode* nodes; /* n_nodes + 1 */
    int32_t* toks;
    uint32_t max_depth;
    /* The plain-text fast path: the tokens made only of printable ASCII
     * other than '"' and '\\' (most of a vocabulary) as a bitset, and a trie
     * of all the others. A state that every such byte leads back to itself
     * (the inside of a JSON string, a free-text rule) allows all the former
     * at once, and only the latter are walked. */
    uint32_t* plain_bits; /* (n_vocab + 31) / 32 words */
    size_t n_plain;
    GTrie rest;
    /* token id -> bytes (for advancing the state by a sampled token) */
    uint32_t* tb_off; /* n_vocab + 1 */
    uint8_t* tb;
    uint8_t* kind; /* GT_* per id */
} GVocab;

enum { GT_TEXT = 0, GT_EMPTY = 1, GT_SPECIAL = 2 };

MglStatus gvocab_build(GVocab* v, const MglTokenizer* tok, MglErr* err);
void gvocab_clear(GVocab* v);
/* Sets the bits (below n_vocab) of the tokens whose bytes can follow state s;
 * `allow` must be cleared before; `sstack` holds max_depth + 1 states.
 * Returns how many tokens it allowed. */
size_t gvocab_walk(const GVocab* v, GMatch* m, int32_t s, uint32_t* allow, int32_t n_vocab, int32_t* sstack);
/* gvocab_walk without the plain-text fast path: the whole trie (tests). */
size_t gvocab_walk_full(const GVocab* v, GMatch* m, int32_t s, uint32_t* allow, int32_t n_vocab, int32_t* sstack);
/* The bytes a token adds to the text in the middle of a sequence (internal:
 * for tests). Returns the count written (up to cap); -1 for special tokens. */
int gram_token_bytes(const MglTokenizer* tok, int32_t id, uint8_t* out, int cap);

/* ---- for tests ---------------------------------------------------------- */

/* The fewest bytes that complete the state's text to a whole sentence
 * (written to out, up to cap); 0 when complete, -1 when there is none (the
 * state is invalid) or none within cap bytes. */
int gram_state_completion(MglGrammarState* st, uint8_t* out, int cap);
/* Turns the state's cache of recent masks on (the default) or off, so that
 * every mask walks the trie (for measuring the walk). */
void gram_state_set_mask_cache(MglGrammarState* st, bool on);

#endif
