/* grammar.c - the matcher: llama.cpp's pushdown semantics (llama_grammar_advance_stack,
 * llama_grammar_accept_chr, llama_grammar_match_partial_char in src/llama-grammar.cpp) over
 * sets of stacks of element positions, and the token-level queries the sampler stage uses.
 *
 * Stacks are persistent: a stack is a node {top position, parent stack}, hash-consed in a pool
 * per matcher, so equal stacks are equal ids. Pushing and popping copy nothing, a set of stacks
 * is an array of ids, and de-duplicating a set (as llama.cpp does) is a mark per id. Bounds:
 * MAX_STACKS stacks in one set and MAX_NODES nodes in the pool; an ambiguous grammar that
 * grows past them fails with a message instead of taking the memory. */
#include "grammar/grammar.h"
#include "util/util.h"

#include <stdlib.h>
#include <string.h>

#define MAX_STACKS 10000
#define MAX_NODES (1u << 22)
#define MAX_ADVANCE (1u << 16) /* stacks one expansion may visit */
#define EMPTY_STACK 0u
#define UNKNOWN UINT32_MAX
#define MAX_MEMO (1u << 24) /* entries of expansion memos kept before they are dropped */

typedef struct snode {
    uint32_t pos, parent;
} snode;

typedef struct u32vec {
    uint32_t *v;
    size_t n, cap;
} u32vec;

struct qr_grammar_matcher {
    const qr_grammar *g;
    snode *nodes; /* nodes[0]: the empty stack */
    uint32_t n_nodes, cap_nodes;
    uint32_t *table; /* open addressing: node id, 0 empty */
    uint32_t table_cap;
    uint32_t *seen, *in_out; /* per node: marks for advance's seen set and the output set */
    uint32_t seen_epoch, out_epoch;
    /* Memos per node (stacks never change, so neither do these): succ[s], the stack after s's
     * top character class matched; expansion of a stack b (advance's result) at
     * memo[exp_off[b]..][0..exp_n[b]). They make a step a lookup per stack. */
    uint32_t *succ, *exp_off, *exp_n, *memo_mark;
    uint32_t memo_epoch;
    u32vec memo;
    u32vec stacks, init; /* the current set and the start set */
    qr_utf8_partial partial;
    /* scratch */
    u32vec arena, todo;
    uint32_t *lv_off, *lv_n; /* per depth of the mask walk */
    size_t lv_cap;
    uint32_t *cps;
    size_t cps_cap;
    bool overflow;
};

static bool vec_reserve(u32vec *v, size_t n) {
    if (n <= v->cap) return true;
    size_t cap = v->cap ? v->cap : 64;
    while (cap < n)
        cap *= 2;
    uint32_t *p = realloc(v->v, cap * sizeof *p);
    if (!p) return false;
    v->v = p;
    v->cap = cap;
    return true;
}

static bool vec_push(u32vec *v, uint32_t x) {
    if (v->n == v->cap && !vec_reserve(v, v->n + 1)) return false;
    v->v[v->n++] = x;
    return true;
}

static bool is_eos(const qr_gelem *e) {
    return e->type == QR_GE_END || e->type == QR_GE_ALT;
}

/* ---- UTF-8 ---- */

size_t qr_utf8_decode_partial(const char *bytes, size_t n, qr_utf8_partial *partial,
                              uint32_t *cps) {
    static const int lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 2, 2, 3, 4};
    const uint8_t *b = (const uint8_t *)bytes;
    size_t i = 0, k = 0;
    uint32_t value = partial->value;
    int n_remain = partial->n_remain;
    while (i < n && b[i] && n_remain > 0) { /* finish a character cut at the last boundary */
        if ((b[i] >> 6) != 2) {
            *partial = (qr_utf8_partial){0, -1};
            return 0;
        }
        value = (value << 6) + (b[i] & 0x3F);
        i++;
        n_remain--;
    }
    if (partial->n_remain > 0 && n_remain == 0) cps[k++] = value;
    while (i < n && b[i]) {
        n_remain = lookup[b[i] >> 4] - 1;
        if (n_remain < 0) { /* a continuation byte where a character should start */
            *partial = (qr_utf8_partial){0, -1};
            return 0;
        }
        value = b[i] & ((1u << (7 - n_remain)) - 1);
        i++;
        /* as llama.cpp: the following bytes are taken as continuations unchecked */
        while (i < n && b[i] && n_remain > 0) {
            value = (value << 6) + (b[i] & 0x3F);
            i++;
            n_remain--;
        }
        if (n_remain == 0) cps[k++] = value;
    }
    *partial = (qr_utf8_partial){value, n_remain};
    return k;
}

/* ---- element matching (llama_grammar_match_char / _match_partial_char) ---- */

/* chr matches the class at pos; *after: the element following the class. */
static bool match_char(const qr_gelem *e, uint32_t pos, uint32_t chr, uint32_t *after) {
    bool found = false;
    bool positive = e[pos].type == QR_GE_CHAR || e[pos].type == QR_GE_CHAR_ANY;
    do {
        if (e[pos + 1].type == QR_GE_CHAR_RNG_UPPER) {
            found = found || (e[pos].value <= chr && chr <= e[pos + 1].value);
            pos += 2;
        } else if (e[pos].type == QR_GE_CHAR_ANY) {
            found = true;
            pos += 1;
        } else {
            found = found || e[pos].value == chr;
            pos += 1;
        }
    } while (e[pos].type == QR_GE_CHAR_ALT);
    *after = pos;
    return found == positive;
}

/* Some completion of the partial character could match the class at pos. */
static bool match_partial(const qr_gelem *e, uint32_t pos, qr_utf8_partial p) {
    bool positive = e[pos].type == QR_GE_CHAR || e[pos].type == QR_GE_CHAR_ANY;
    if (p.n_remain < 0 || (p.n_remain == 1 && p.value < 2)) return false; /* invalid, overlong */
    uint32_t low = p.value << (p.n_remain * 6);
    uint32_t high = low | ((1u << (p.n_remain * 6)) - 1);
    if (low == 0) {
        if (p.n_remain == 2)
            low = 1u << 11;
        else if (p.n_remain == 3)
            low = 1u << 16;
    }
    do {
        if (e[pos + 1].type == QR_GE_CHAR_RNG_UPPER) {
            if (e[pos].value <= high && low <= e[pos + 1].value) return positive;
            pos += 2;
        } else if (e[pos].type == QR_GE_CHAR_ANY) {
            return true;
        } else {
            if (low <= e[pos].value && e[pos].value <= high) return positive;
            pos += 1;
        }
    } while (e[pos].type == QR_GE_CHAR_ALT);
    return !positive;
}

/* ---- the stack pool ---- */

static uint32_t node_hash(uint32_t pos, uint32_t parent) {
    uint32_t h = pos * 0x9E3779B1u ^ parent * 0x85EBCA77u;
    return h ^ (h >> 15);
}

/* Grow one per-node array to cap entries, the new ones set to fill (0 or UNKNOWN bytes). */
static bool grow_array(uint32_t **a, uint32_t old_cap, uint32_t cap, int fill) {
    uint32_t *p = realloc(*a, cap * sizeof *p);
    if (!p) return false;
    memset(p + old_cap, fill, (cap - old_cap) * sizeof *p);
    *a = p;
    return true;
}

static bool grow_nodes(qr_grammar_matcher *m) {
    uint32_t cap = m->cap_nodes * 2, old = m->cap_nodes;
    snode *nodes = realloc(m->nodes, cap * sizeof *nodes);
    if (!nodes) return false;
    m->nodes = nodes;
    if (!grow_array(&m->seen, old, cap, 0) || !grow_array(&m->in_out, old, cap, 0) ||
        !grow_array(&m->memo_mark, old, cap, 0) || !grow_array(&m->succ, old, cap, 0xff) ||
        !grow_array(&m->exp_off, old, cap, 0xff) || !grow_array(&m->exp_n, old, cap, 0xff))
        return false;
    m->cap_nodes = cap;
    /* rehash into a table twice the node capacity */
    uint32_t tcap = cap * 2;
    uint32_t *table = calloc(tcap, sizeof *table);
    if (!table) return false;
    for (uint32_t id = 1; id < m->n_nodes; id++) {
        uint32_t h = node_hash(m->nodes[id].pos, m->nodes[id].parent) & (tcap - 1);
        while (table[h])
            h = (h + 1) & (tcap - 1);
        table[h] = id;
    }
    free(m->table);
    m->table = table;
    m->table_cap = tcap;
    return true;
}

/* The stack {pos on top of parent}; UINT32_MAX when the pool is full (overflow set). */
static uint32_t intern(qr_grammar_matcher *m, uint32_t pos, uint32_t parent) {
    uint32_t h = node_hash(pos, parent) & (m->table_cap - 1);
    for (uint32_t id; (id = m->table[h]); h = (h + 1) & (m->table_cap - 1))
        if (m->nodes[id].pos == pos && m->nodes[id].parent == parent) return id;
    if (m->n_nodes == m->cap_nodes) {
        if (m->n_nodes >= MAX_NODES || !grow_nodes(m)) {
            m->overflow = true;
            return UINT32_MAX;
        }
        h = node_hash(pos, parent) & (m->table_cap - 1);
        while (m->table[h])
            h = (h + 1) & (m->table_cap - 1);
    }
    uint32_t id = m->n_nodes++;
    m->nodes[id] = (snode){pos, parent};
    m->table[h] = id;
    return id;
}

static uint32_t next_epoch(uint32_t *epoch, uint32_t *marks, uint32_t n) {
    if (++*epoch == 0) { /* wrapped: clear the marks once */
        memset(marks, 0, n * sizeof *marks);
        *epoch = 1;
    }
    return *epoch;
}

/* Add a stack to the output set being built at arena[out_start..) unless already there (marks
 * hold epoch for the stacks in it; passed by address, as a new node reallocates them). */
static bool add_out(qr_grammar_matcher *m, uint32_t s, size_t out_start, uint32_t *const *marks,
                    uint32_t epoch) {
    if ((*marks)[s] == epoch) return true;
    (*marks)[s] = epoch;
    if (m->arena.n - out_start >= MAX_STACKS) {
        m->overflow = true;
        return false;
    }
    return vec_push(&m->arena, s) || (m->overflow = true, false);
}

/* llama_grammar_advance_stack: expand rule references on top of stack until every resulting
 * stack has a character class on top (or is empty); add those to the output set. */
static bool advance(qr_grammar_matcher *m, uint32_t stack, size_t out_start, uint32_t *const *marks,
                    uint32_t out_epoch) {
    const qr_gelem *e = m->g->elems;
    uint32_t epoch = next_epoch(&m->seen_epoch, m->seen, m->cap_nodes);
    m->todo.n = 0;
    if (!vec_push(&m->todo, stack)) return (m->overflow = true, false);
    /* a rule that reaches itself through rules that may be empty (left recursion llama.cpp's
     * check does not see) grows the stack forever: bound the work */
    for (uint32_t work = 0; m->todo.n; work++) {
        if (work > MAX_ADVANCE) return (m->overflow = true, false);
        uint32_t s = m->todo.v[--m->todo.n];
        if (m->seen[s] == epoch) continue;
        m->seen[s] = epoch;
        if (s == EMPTY_STACK) {
            if (!add_out(m, s, out_start, marks, out_epoch)) return false;
            continue;
        }
        uint32_t pos = m->nodes[s].pos;
        if (e[pos].type != QR_GE_RULE_REF) { /* a character class */
            if (!add_out(m, s, out_start, marks, out_epoch)) return false;
            continue;
        }
        /* the rest of this sequence stays below each alternative of the referenced rule */
        uint32_t base = m->nodes[s].parent;
        if (!is_eos(&e[pos + 1]) && (base = intern(m, pos + 1, base)) == UINT32_MAX) return false;
        uint32_t sub = m->g->rule_start[e[pos].value];
        for (;;) {
            uint32_t next = base;
            if (!is_eos(&e[sub]) && (next = intern(m, sub, base)) == UINT32_MAX) return false;
            if (!vec_push(&m->todo, next)) return (m->overflow = true, false);
            while (!is_eos(&e[sub]))
                sub++;
            if (e[sub].type != QR_GE_ALT) break;
            sub++;
        }
    }
    return true;
}

/* The expansion of stack b, memoised; false on overflow. */
static bool expansion(qr_grammar_matcher *m, uint32_t b) {
    if (m->exp_n[b] != UNKNOWN) return true;
    if (m->memo.n > MAX_MEMO) { /* drop them all (ids stay valid, only the memos go) */
        memset(m->exp_n, 0xff, m->cap_nodes * sizeof *m->exp_n);
        m->memo.n = 0;
    }
    size_t p0 = m->arena.n;
    uint32_t epoch = next_epoch(&m->memo_epoch, m->memo_mark, m->cap_nodes);
    if (!advance(m, b, p0, &m->memo_mark, epoch)) return false;
    size_t n = m->arena.n - p0;
    if (!vec_reserve(&m->memo, m->memo.n + n)) return (m->overflow = true, false);
    memcpy(m->memo.v + m->memo.n, m->arena.v + p0, n * sizeof *m->arena.v);
    m->exp_off[b] = (uint32_t)m->memo.n;
    m->exp_n[b] = (uint32_t)n;
    m->memo.n += n;
    m->arena.n = p0;
    return true;
}

/* Accept one code point: every stack of the set at arena[in_off..in_off+in_n) whose top matches
 * it moves on; the new set is appended to the arena. Returns its size, -1 on overflow. */
static long step(qr_grammar_matcher *m, size_t in_off, size_t in_n, uint32_t cp) {
    const qr_gelem *e = m->g->elems;
    size_t out_start = m->arena.n;
    uint32_t epoch = next_epoch(&m->out_epoch, m->in_out, m->cap_nodes);
    for (size_t k = 0; k < in_n; k++) {
        uint32_t s = m->arena.v[in_off + k];
        if (s == EMPTY_STACK) continue;
        uint32_t after;
        if (!match_char(e, m->nodes[s].pos, cp, &after)) continue;
        if (m->succ[s] == UNKNOWN) { /* pop the class, push what follows it */
            uint32_t base = m->nodes[s].parent;
            if (!is_eos(&e[after]) && (base = intern(m, after, base)) == UNKNOWN) return -1;
            m->succ[s] = base;
        }
        uint32_t b = m->succ[s];
        if (!expansion(m, b)) return -1;
        for (uint32_t j = 0; j < m->exp_n[b]; j++)
            if (!add_out(m, m->memo.v[m->exp_off[b] + j], out_start, &m->in_out, epoch)) return -1;
    }
    return (long)(m->arena.n - out_start);
}

static qr_status overflow_error(void) {
    return qr_error(QR_ERR_INVALID_ARG,
                    "grammar: the parse grew past %u stacks, %u states or %u steps of one "
                    "expansion (the grammar is too "
                    "ambiguous)",
                    MAX_STACKS, MAX_NODES, MAX_ADVANCE);
}

/* ---- the matcher ---- */

void qr_grammar_matcher_reset(qr_grammar_matcher *m) {
    if (!m) return;
    memcpy(m->stacks.v, m->init.v, m->init.n * sizeof *m->init.v);
    m->stacks.n = m->init.n;
    m->partial = (qr_utf8_partial){0, 0};
    m->overflow = false;
}

qr_status qr_grammar_matcher_create(const qr_grammar *g, qr_grammar_matcher **out) {
    if (out) *out = NULL;
    if (!g || !out) return qr_error(QR_ERR_INVALID_ARG, "grammar matcher: argument is NULL");
    qr_grammar_matcher *m = qr_calloc(1, sizeof *m);
    if (!m) return QR_ERR_NOMEM;
    m->g = g;
    m->cap_nodes = 256;
    m->table_cap = 512;
    m->nodes = malloc(m->cap_nodes * sizeof *m->nodes);
    m->seen = calloc(m->cap_nodes, sizeof *m->seen);
    m->in_out = calloc(m->cap_nodes, sizeof *m->in_out);
    m->table = calloc(m->table_cap, sizeof *m->table);
    if (!m->nodes || !m->seen || !m->in_out || !m->table ||
        !grow_array(&m->memo_mark, 0, m->cap_nodes, 0) ||
        !grow_array(&m->succ, 0, m->cap_nodes, 0xff) ||
        !grow_array(&m->exp_off, 0, m->cap_nodes, 0xff) ||
        !grow_array(&m->exp_n, 0, m->cap_nodes, 0xff))
        goto nomem;
    m->nodes[0] = (snode){UINT32_MAX, 0};
    m->n_nodes = 1;
    /* the start set: each alternative of the root rule, advanced */
    const qr_gelem *e = g->elems;
    next_epoch(&m->out_epoch, m->in_out, m->cap_nodes);
    for (uint32_t pos = g->rule_start[g->root];;) {
        uint32_t s = EMPTY_STACK;
        if (!is_eos(&e[pos]) && (s = intern(m, pos, EMPTY_STACK)) == UINT32_MAX) break;
        if (!advance(m, s, 0, &m->in_out, m->out_epoch)) break;
        while (!is_eos(&e[pos]))
            pos++;
        if (e[pos].type != QR_GE_ALT) break;
        pos++;
    }
    if (m->overflow) {
        qr_grammar_matcher_free(m);
        return overflow_error();
    }
    if (!vec_reserve(&m->init, m->arena.n) || !vec_reserve(&m->stacks, m->arena.n)) goto nomem;
    memcpy(m->init.v, m->arena.v, m->arena.n * sizeof *m->arena.v);
    m->init.n = m->arena.n;
    qr_grammar_matcher_reset(m);
    *out = m;
    return QR_OK;
nomem:
    qr_grammar_matcher_free(m);
    return qr_error(QR_ERR_NOMEM, "grammar matcher: out of memory");
}

void qr_grammar_matcher_free(qr_grammar_matcher *m) {
    if (!m) return;
    free(m->nodes);
    free(m->table);
    free(m->seen);
    free(m->in_out);
    free(m->succ);
    free(m->exp_off);
    free(m->exp_n);
    free(m->memo_mark);
    free(m->memo.v);
    free(m->stacks.v);
    free(m->init.v);
    free(m->arena.v);
    free(m->todo.v);
    free(m->lv_off);
    free(m->lv_n);
    free(m->cps);
    free(m);
}

static void *dup(const void *p, size_t n) {
    void *q = malloc(n ? n : 1);
    if (q && n) memcpy(q, p, n);
    return q;
}

qr_grammar_matcher *qr_grammar_matcher_clone(const qr_grammar_matcher *m) {
    if (!m) return NULL;
    qr_grammar_matcher *c = qr_calloc(1, sizeof *c);
    if (!c) return NULL;
    c->g = m->g;
    c->n_nodes = m->n_nodes;
    c->cap_nodes = m->cap_nodes;
    c->table_cap = m->table_cap;
    c->seen_epoch = m->seen_epoch;
    c->out_epoch = m->out_epoch;
    c->partial = m->partial;
    c->nodes = dup(m->nodes, m->cap_nodes * sizeof *m->nodes);
    c->table = dup(m->table, m->table_cap * sizeof *m->table);
    c->seen = dup(m->seen, m->cap_nodes * sizeof *m->seen);
    c->in_out = dup(m->in_out, m->cap_nodes * sizeof *m->in_out);
    c->memo_epoch = m->memo_epoch;
    c->succ = dup(m->succ, m->cap_nodes * sizeof *m->succ);
    c->exp_off = dup(m->exp_off, m->cap_nodes * sizeof *m->exp_off);
    c->exp_n = dup(m->exp_n, m->cap_nodes * sizeof *m->exp_n);
    c->memo_mark = dup(m->memo_mark, m->cap_nodes * sizeof *m->memo_mark);
    bool ok = c->nodes && c->table && c->seen && c->in_out && c->succ && c->exp_off && c->exp_n &&
              c->memo_mark && vec_reserve(&c->memo, m->memo.n) &&
              vec_reserve(&c->stacks, m->stacks.n) && vec_reserve(&c->init, m->init.n);
    if (!ok) {
        qr_grammar_matcher_free(c);
        qr_error(QR_ERR_NOMEM, "grammar matcher: out of memory");
        return NULL;
    }
    memcpy(c->memo.v, m->memo.v, m->memo.n * sizeof *m->memo.v);
    c->memo.n = m->memo.n;
    memcpy(c->stacks.v, m->stacks.v, m->stacks.n * sizeof *m->stacks.v);
    c->stacks.n = m->stacks.n;
    memcpy(c->init.v, m->init.v, m->init.n * sizeof *m->init.v);
    c->init.n = m->init.n;
    return c;
}

/* Run the current set through cps[0..n) in the arena; returns the final set's size (0: some
 * code point was rejected, -1: overflow) and its offset in *off. */
static long run(qr_grammar_matcher *m, const uint32_t *cps, size_t n, size_t *off) {
    m->arena.n = 0;
    if (!vec_reserve(&m->arena, m->stacks.n)) return (m->overflow = true, -1);
    memcpy(m->arena.v, m->stacks.v, m->stacks.n * sizeof *m->stacks.v);
    m->arena.n = m->stacks.n;
    size_t o = 0;
    long c = (long)m->stacks.n;
    for (size_t i = 0; i < n && c > 0; i++) {
        size_t next = m->arena.n;
        c = step(m, o, (size_t)c, cps[i]);
        o = next;
    }
    *off = o;
    return c;
}

/* The set at arena[off..off+n), reached after a token's complete code points, accepts its end
 * state: no partial character, or one some stack's class could still match. */
static bool end_ok(const qr_grammar_matcher *m, size_t off, size_t n, qr_utf8_partial end) {
    if (end.n_remain == 0) return n > 0;
    if (end.n_remain < 0) return false;
    for (size_t k = 0; k < n; k++) {
        uint32_t s = m->arena.v[off + k];
        if (s != EMPTY_STACK && match_partial(m->g->elems, m->nodes[s].pos, end)) return true;
    }
    return false;
}

static bool cps_room(qr_grammar_matcher *m, size_t n) {
    if (n + 1 <= m->cps_cap) return true;
    uint32_t *p = realloc(m->cps, (n + 1) * sizeof *p);
    if (!p) return false;
    m->cps = p;
    m->cps_cap = n + 1;
    return true;
}

/* Test bytes from the matcher's state without changing it (*end: the UTF-8 state after). */
static long test_bytes(qr_grammar_matcher *m, const char *bytes, size_t n, size_t *off,
                       qr_utf8_partial *end) {
    if (!cps_room(m, n)) return (m->overflow = true, -1);
    *end = m->partial;
    size_t k = qr_utf8_decode_partial(bytes, n, end, m->cps);
    if (end->n_remain < 0) return 0;
    return run(m, m->cps, k, off);
}

bool qr_grammar_matcher_accept(qr_grammar_matcher *m, const char *bytes, size_t n) {
    if (!m || (!bytes && n)) return false;
    m->overflow = false;
    size_t off;
    qr_utf8_partial end;
    long c = test_bytes(m, bytes, n, &off, &end);
    if (c <= 0) return false;
    if (!vec_reserve(&m->stacks, (size_t)c)) return (m->overflow = true, false);
    memcpy(m->stacks.v, m->arena.v + off, (size_t)c * sizeof *m->stacks.v);
    m->stacks.n = (size_t)c;
    m->partial = end;
    return true;
}

bool qr_grammar_matcher_can_end(const qr_grammar_matcher *m) {
    if (!m) return false;
    for (size_t i = 0; i < m->stacks.n; i++)
        if (m->stacks.v[i] == EMPTY_STACK) return true;
    return false;
}

bool qr_grammar_matcher_done(const qr_grammar_matcher *m) {
    if (!m) return true;
    for (size_t i = 0; i < m->stacks.n; i++)
        if (m->stacks.v[i] != EMPTY_STACK) return false;
    return true;
}

size_t qr_grammar_matcher_state(const qr_grammar_matcher *m, uint32_t *ids, size_t cap,
                                qr_utf8_partial *partial) {
    if (m->stacks.n <= cap) memcpy(ids, m->stacks.v, m->stacks.n * sizeof *ids);
    *partial = m->partial;
    return m->stacks.n;
}

bool qr_grammar_matcher_overflowed(const qr_grammar_matcher *m) {
    return m && m->overflow;
}

bool qr_grammar_accepts(const qr_grammar *g, const char *s, size_t n) {
    qr_grammar_matcher *m;
    if (qr_grammar_matcher_create(g, &m) != QR_OK) return false;
    bool ok = qr_grammar_matcher_accept(m, s, n) && m->partial.n_remain == 0 &&
              qr_grammar_matcher_can_end(m);
    qr_grammar_matcher_free(m);
    return ok;
}

/* ---- token-level queries ---- */

bool qr_grammar_matcher_allows_token(qr_grammar_matcher *m, const qr_grammar_tokens *t,
                                     int32_t id) {
    size_t off;
    long c;
    qr_utf8_partial end;
    if (m->partial.n_remain > 0) { /* inside a character: decode this token from there */
        c = test_bytes(m, t->bytes + t->byte_off[id], t->byte_off[id + 1] - t->byte_off[id], &off,
                       &end);
    } else {
        end = t->end[id];
        if (end.n_remain < 0) return false;
        c = run(m, t->cps + t->cp_off[id], t->cp_off[id + 1] - t->cp_off[id], &off);
    }
    return c > 0 && end_ok(m, off, (size_t)c, end);
}

static bool levels_room(qr_grammar_matcher *m, uint32_t depth) {
    if (depth + 1 <= m->lv_cap) return true;
    size_t cap = depth + 1;
    uint32_t *a = realloc(m->lv_off, cap * sizeof *a);
    if (a) m->lv_off = a;
    uint32_t *b = a ? realloc(m->lv_n, cap * sizeof *b) : NULL;
    if (!b) return false;
    m->lv_n = b;
    m->lv_cap = cap;
    return true;
}

int64_t qr_grammar_matcher_allowed(qr_grammar_matcher *m, const qr_grammar_tokens *t,
                                   int32_t *ids) {
    m->overflow = false;
    int64_t count = 0;
    if (m->partial.n_remain > 0) { /* rare: the last token ended inside a character */
        for (int32_t i = 0; i < t->n_order; i++) {
            int32_t id = t->order[i];
            bool ok = qr_grammar_matcher_allows_token(m, t, id);
            if (m->overflow) return overflow_error(), -1;
            if (ok) ids[count++] = id;
        }
        return count;
    }
    if (!levels_room(m, t->max_len)) return qr_error(QR_ERR_NOMEM, "grammar: out of memory"), -1;
    /* Walk the trie in preorder: level d holds the stack set after the first d code points of
     * the current node's path; a node whose code point no stack accepts skips its subtree. */
    m->arena.n = 0;
    if (!vec_reserve(&m->arena, m->stacks.n))
        return qr_error(QR_ERR_NOMEM, "grammar: out of memory"), -1;
    memcpy(m->arena.v, m->stacks.v, m->stacks.n * sizeof *m->stacks.v);
    m->arena.n = m->stacks.n;
    m->lv_off[0] = 0;
    m->lv_n[0] = (uint32_t)m->stacks.n;
    for (int32_t k = 0; k < t->n_root_tok; k++) /* no complete code point: only a partial end */
        if (end_ok(m, 0, m->lv_n[0], t->end[t->order[k]])) ids[count++] = t->order[k];
    for (uint32_t n = 0; n < t->n_nodes;) {
        const uint32_t d = t->node_depth[n];
        m->arena.n = m->lv_off[d] + m->lv_n[d]; /* drop the levels below a finished sibling */
        const size_t off = m->arena.n;
        long c = step(m, m->lv_off[d], m->lv_n[d], t->node_cp[n]);
        if (c < 0) return overflow_error(), -1;
        if (c == 0) {
            n = t->node_end[n];
            continue;
        }
        m->lv_off[d + 1] = (uint32_t)off;
        m->lv_n[d + 1] = (uint32_t)c;
        for (uint32_t k = t->node_tok[n]; k < t->node_tok[n + 1]; k++)
            if (end_ok(m, off, (size_t)c, t->end[t->order[k]])) ids[count++] = t->order[k];
        n++;
    }
    return count;
}

int64_t qr_grammar_matcher_mask(qr_grammar_matcher *m, const qr_grammar_tokens *t,
                                uint8_t *allowed) {
    int32_t *ids = qr_malloc(((size_t)t->n_order + 1) * sizeof *ids);
    if (!ids) return -1;
    int64_t n = qr_grammar_matcher_allowed(m, t, ids);
    if (n >= 0) {
        for (int32_t i = 0; i < t->n_order; i++)
            allowed[t->order[i]] = 0;
        for (int64_t i = 0; i < n; i++)
            allowed[ids[i]] = 1;
    }
    free(ids);
    return n;
}

/* ---- the decoded vocabulary ---- */

typedef struct sort_key {
    const uint32_t *cps;
    uint32_t n;
    int32_t id;
} sort_key;

static int cmp_cps(const void *a, const void *b) {
    const sort_key *x = a, *y = b;
    for (uint32_t i = 0; i < x->n && i < y->n; i++)
        if (x->cps[i] != y->cps[i]) return x->cps[i] < y->cps[i] ? -1 : 1;
    return x->n != y->n ? (x->n < y->n ? -1 : 1) : (x->id > y->id) - (x->id < y->id);
}

void qr_grammar_tokens_free(qr_grammar_tokens *t) {
    if (!t) return;
    free(t->cps);
    free(t->cp_off);
    free(t->end);
    free(t->bytes);
    free(t->byte_off);
    free(t->order);
    free(t->lcp);
    free(t->node_cp);
    free(t->node_depth);
    free(t->node_end);
    free(t->node_tok);
    free(t);
}

/* The preorder trie from the sorted texts and their common prefixes: token i adds one node
 * per code point past its common prefix with token i - 1; a node's subtree ends where a later
 * token shares less than the node's path. A token ends at its path's last node, and these
 * nodes never decrease along the sorted order (a prefix sorts first; equal texts share a
 * node), so each node's tokens are one run of order[]. */
static qr_status build_trie(qr_grammar_tokens *t) {
    uint32_t n_nodes = 0;
    for (int32_t i = 0; i < t->n_order; i++) {
        int32_t id = t->order[i];
        n_nodes += (t->cp_off[id + 1] - t->cp_off[id]) - t->lcp[i];
    }
    t->node_cp = malloc(((size_t)n_nodes + 1) * sizeof *t->node_cp);
    t->node_depth = malloc(((size_t)n_nodes + 1) * sizeof *t->node_depth);
    t->node_end = malloc(((size_t)n_nodes + 1) * sizeof *t->node_end);
    t->node_tok = malloc(((size_t)n_nodes + 2) * sizeof *t->node_tok);
    uint32_t *path = malloc(((size_t)t->max_len + 1) * sizeof *path); /* open node per depth */
    uint32_t *term = malloc(((size_t)t->n_order + 1) * sizeof *term);   /* each token's node */
    if (!t->node_cp || !t->node_depth || !t->node_end || !t->node_tok || !path || !term) {
        free(path);
        free(term);
        return qr_error(QR_ERR_NOMEM, "grammar: out of memory for the vocabulary's trie");
    }
    uint32_t n = 0, open = 0; /* nodes made; length of the open path */
    int32_t i = 0;
    for (; i < t->n_order && t->cp_off[t->order[i] + 1] == t->cp_off[t->order[i]]; i++)
        ; /* the texts without a complete code point sort first */
    t->n_root_tok = i;
    for (; i < t->n_order; i++) {
        const int32_t id = t->order[i];
        const uint32_t len = t->cp_off[id + 1] - t->cp_off[id];
        const uint32_t l = t->lcp[i] < open ? t->lcp[i] : open;
        for (; open > l; open--) /* close the nodes this token does not share */
            t->node_end[path[open - 1]] = n;
        for (uint32_t d = l; d < len; d++) {
            t->node_cp[n] = t->cps[t->cp_off[id] + d];
            t->node_depth[n] = d;
            path[open++] = n++;
        }
        term[i] = path[len - 1];
    }
    for (; open > 0; open--)
        t->node_end[path[open - 1]] = n;
    t->n_nodes = n;
    int32_t k = t->n_root_tok;
    for (uint32_t v = 0; v < n; v++) {
        t->node_tok[v] = (uint32_t)k;
        while (k < t->n_order && term[k] == v)
            k++;
    }
    t->node_tok[n] = (uint32_t)k;
    free(path);
    free(term);
    return QR_OK;
}

qr_grammar_tokens *qr_grammar_tokens_create(int32_t n_vocab, const char *const *pieces,
                                            const int32_t *len, const bool *testable) {
    qr_grammar_tokens *t = qr_calloc(1, sizeof *t);
    if (!t) return NULL;
    t->n_vocab = n_vocab;
    size_t n_bytes = 0;
    for (int32_t i = 0; i < n_vocab; i++)
        n_bytes += (size_t)len[i];
    t->cps = malloc((n_bytes + 1) * sizeof *t->cps);
    t->cp_off = malloc(((size_t)n_vocab + 1) * sizeof *t->cp_off);
    t->end = malloc(((size_t)n_vocab + 1) * sizeof *t->end);
    t->bytes = malloc(n_bytes + 1);
    t->byte_off = malloc(((size_t)n_vocab + 1) * sizeof *t->byte_off);
    t->order = malloc(((size_t)n_vocab + 1) * sizeof *t->order);
    t->lcp = malloc(((size_t)n_vocab + 1) * sizeof *t->lcp);
    if (!t->cps || !t->cp_off || !t->end || !t->bytes || !t->byte_off || !t->order || !t->lcp ||
        n_bytes > UINT32_MAX) {
        qr_grammar_tokens_free(t);
        qr_error(QR_ERR_NOMEM, "grammar: out of memory for the vocabulary's code points");
        return NULL;
    }
    uint32_t nb = 0, nc = 0;
    for (int32_t i = 0; i < n_vocab; i++) {
        t->byte_off[i] = nb;
        t->cp_off[i] = nc;
        if (len[i] > 0) memcpy(t->bytes + nb, pieces[i], (size_t)len[i]);
        nb += (uint32_t)len[i];
        qr_utf8_partial p = {0, 0};
        size_t k = qr_utf8_decode_partial(pieces[i], (size_t)len[i], &p, t->cps + nc);
        t->end[i] = p;
        nc += (uint32_t)k;
        if (k > t->max_len) t->max_len = (uint32_t)k;
        if (testable[i]) t->order[t->n_order++] = i;
    }
    t->byte_off[n_vocab] = nb;
    t->cp_off[n_vocab] = nc;
    sort_key *keys = qr_malloc(((size_t)t->n_order + 1) * sizeof *keys);
    if (!keys) {
        qr_grammar_tokens_free(t);
        return NULL;
    }
    for (int32_t i = 0; i < t->n_order; i++) {
        int32_t id = t->order[i];
        keys[i] = (sort_key){t->cps + t->cp_off[id], t->cp_off[id + 1] - t->cp_off[id], id};
    }
    qsort(keys, (size_t)t->n_order, sizeof *keys, cmp_cps);
    for (int32_t i = 0; i < t->n_order; i++)
        t->order[i] = keys[i].id;
    free(keys);
    for (int32_t i = 0; i < t->n_order; i++) {
        uint32_t l = 0;
        if (i > 0) {
            int32_t x = t->order[i - 1], y = t->order[i];
            uint32_t nx = t->cp_off[x + 1] - t->cp_off[x], ny = t->cp_off[y + 1] - t->cp_off[y];
            while (l < nx && l < ny && t->cps[t->cp_off[x] + l] == t->cps[t->cp_off[y] + l])
                l++;
        }
        t->lcp[i] = l;
    }
    if (build_trie(t) != QR_OK) {
        qr_grammar_tokens_free(t);
        return NULL;
    }
    return t;
}
