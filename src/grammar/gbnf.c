/* gbnf.c - the GBNF parser: llama.cpp's grammar syntax (grammars/README.md) into the rule
 * elements of grammar.h, with the same rewriting of groups and repetitions into generated
 * rules as llama.cpp's llama_grammar_parser (src/llama-grammar.cpp), so a grammar accepts
 * exactly the strings it accepts there. Checks: undefined rules, the root, left recursion.
 *
 * Refused on purpose: token references (<[id]>, <token>, !<...>), which match token ids
 * rather than text and need the vocabulary at parse time. Bounds: groups nest at most
 * MAX_DEPTH deep (the parser recurses through them), repetitions as llama.cpp's
 * MAX_REPETITION_THRESHOLD, and rule references at most MAX_DEPTH deep for the left-recursion
 * check; beyond them the grammar is refused with a message, never a stack overflow. */
#include "grammar/grammar.h"
#include "util/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_REPETITION_THRESHOLD 2000 /* llama.cpp's */
#define MAX_DEPTH 1000

typedef struct elem_vec {
    qr_gelem *v;
    size_t n, cap;
} elem_vec;

typedef struct symbol {
    char *name;
    const char *first_ref; /* where it was first referenced (for "undefined rule") */
    bool defined;
    elem_vec rule;
} symbol;

typedef struct parser {
    const char *text;
    symbol *syms;
    uint32_t n_syms, cap_syms;
    uint32_t *map; /* open addressing over user names: symbol id + 1, 0 empty */
    uint32_t map_cap;
    int depth;
    bool failed;
} parser;

static bool is_digit(char c) {
    return c >= '0' && c <= '9';
}
static bool is_word(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || is_digit(c);
}

/* Record the first error, at pos's line and column (bytes, from 1). */
__attribute__((format(printf, 3, 4))) static const char *fail(parser *p, const char *pos,
                                                              const char *fmt, ...) {
    if (p->failed) return NULL;
    p->failed = true;
    int line = 1;
    const char *line_start = p->text;
    for (const char *c = p->text; c < pos && *c; c++)
        if (*c == '\n') {
            line++;
            line_start = c + 1;
        }
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    qr_error(QR_ERR_INVALID_ARG, "grammar: line %d, column %d: %s", line,
             (int)(pos - line_start) + 1, what);
    return NULL;
}

static bool push(parser *p, elem_vec *r, uint32_t type, uint32_t value) {
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        qr_gelem *v = realloc(r->v, cap * sizeof *v);
        if (!v) {
            if (!p->failed) qr_error(QR_ERR_NOMEM, "grammar: out of memory");
            p->failed = true;
            return false;
        }
        r->v = v;
        r->cap = cap;
    }
    r->v[r->n++] = (qr_gelem){type, value};
    return true;
}

static uint32_t hash_name(const char *s, size_t n) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

/* A new symbol id named name[0..n); UINT32_MAX on allocation failure. */
static uint32_t new_symbol(parser *p, const char *name, size_t n) {
    if (p->n_syms == p->cap_syms) {
        uint32_t cap = p->cap_syms ? p->cap_syms * 2 : 32;
        symbol *s = realloc(p->syms, cap * sizeof *s);
        if (!s) goto nomem;
        p->syms = s;
        p->cap_syms = cap;
    }
    symbol *s = &p->syms[p->n_syms];
    memset(s, 0, sizeof *s);
    s->name = malloc(n + 1);
    if (!s->name) goto nomem;
    memcpy(s->name, name, n);
    s->name[n] = '\0';
    return p->n_syms++;
nomem:
    if (!p->failed) qr_error(QR_ERR_NOMEM, "grammar: out of memory");
    p->failed = true;
    return UINT32_MAX;
}

/* llama.cpp's get_symbol_id: the id of a user name, made on first sight. */
static uint32_t symbol_id(parser *p, const char *name, size_t n) {
    if (2 * (p->n_syms + 1) > p->map_cap) { /* grow and rehash the user names */
        uint32_t cap = p->map_cap ? p->map_cap * 2 : 64;
        uint32_t *map = calloc(cap, sizeof *map);
        if (!map) {
            if (!p->failed) qr_error(QR_ERR_NOMEM, "grammar: out of memory");
            p->failed = true;
            return UINT32_MAX;
        }
        for (uint32_t i = 0; i < p->map_cap; i++) {
            if (!p->map[i]) continue;
            const char *nm = p->syms[p->map[i] - 1].name;
            uint32_t h = hash_name(nm, strlen(nm)) & (cap - 1);
            while (map[h])
                h = (h + 1) & (cap - 1);
            map[h] = p->map[i];
        }
        free(p->map);
        p->map = map;
        p->map_cap = cap;
    }
    uint32_t h = hash_name(name, n) & (p->map_cap - 1);
    for (; p->map[h]; h = (h + 1) & (p->map_cap - 1)) {
        const char *nm = p->syms[p->map[h] - 1].name;
        if (strlen(nm) == n && memcmp(nm, name, n) == 0) return p->map[h] - 1;
    }
    uint32_t id = new_symbol(p, name, n);
    if (id != UINT32_MAX) p->map[h] = id + 1;
    return id;
}

/* llama.cpp's generate_symbol_id: base_N, N the new id ('_' is no name character, so these
 * never collide with the user's names). */
static uint32_t generated_symbol(parser *p, const char *base) {
    char name[160];
    snprintf(name, sizeof name, "%.120s_%u", base, (unsigned)p->n_syms);
    return new_symbol(p, name, strlen(name));
}

static void set_rule(parser *p, uint32_t id, elem_vec *r) {
    free(p->syms[id].rule.v);
    p->syms[id].rule = *r;
    p->syms[id].defined = true;
    memset(r, 0, sizeof *r);
}

static const char *parse_space(const char *s, bool newline_ok) {
    while (*s == ' ' || *s == '\t' || *s == '#' || (newline_ok && (*s == '\r' || *s == '\n'))) {
        if (*s == '#')
            while (*s && *s != '\r' && *s != '\n')
                s++;
        else
            s++;
    }
    return s;
}

/* One UTF-8 character as llama.cpp's first decode_utf8 (lenient; stops at NUL). */
static const char *decode_one(const char *s, uint32_t *cp) {
    static const int lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    uint8_t first = (uint8_t)*s;
    int len = lookup[first >> 4];
    uint32_t value = first & ((1u << (8 - len)) - 1);
    const char *pos = s + 1;
    for (; pos < s + len && *pos; pos++)
        value = (value << 6) + ((uint8_t)*pos & 0x3F);
    *cp = value;
    return pos;
}

static const char *parse_hex(parser *p, const char *s, int size, uint32_t *cp) {
    uint32_t v = 0;
    for (int i = 0; i < size; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) return fail(p, s + i, "expecting %d hex digits after the escape", size);
        v = (v << 4) | (uint32_t)d;
    }
    *cp = v;
    return s + size;
}

/* A character of a literal or class: an escape or one UTF-8 character. */
static const char *parse_char(parser *p, const char *s, uint32_t *cp) {
    if (*s == '\\') {
        switch (s[1]) {
        case 'x':
            return parse_hex(p, s + 2, 2, cp);
        case 'u':
            return parse_hex(p, s + 2, 4, cp);
        case 'U':
            return parse_hex(p, s + 2, 8, cp);
        case 't':
            *cp = '\t';
            return s + 2;
        case 'r':
            *cp = '\r';
            return s + 2;
        case 'n':
            *cp = '\n';
            return s + 2;
        case '\\':
        case '"':
        case '[':
        case ']':
        case '-':
            *cp = (uint8_t)s[1];
            return s + 2;
        case '\0':
            return fail(p, s, "unexpected end of input after '\\'");
        default:
            return fail(p, s, "unknown escape '\\%c'", s[1]);
        }
    }
    if (!*s) return fail(p, s, "unexpected end of input");
    return decode_one(s, cp);
}

/* Decimal repetition count, saturating (anything above the threshold is refused or means
 * "no maximum" anyway). */
static const char *parse_count(const char *s, uint64_t *out) {
    uint64_t v = 0;
    for (; is_digit(*s); s++)
        v = v > 100000000ull ? v : v * 10 + (uint64_t)(*s - '0');
    *out = v;
    return s;
}

static const char *parse_alternates(parser *p, const char *s, uint32_t rule_name, uint32_t id,
                                    bool nested);

typedef struct seq_state {
    elem_vec *rule;
    size_t last_sym_start;
    uint64_t n_prev_rules;
    uint32_t rule_name; /* symbol whose name generated rules are named after */
} seq_state;

/* llama.cpp's handle_repetitions: S{m,n} becomes S repeated m times then n - m nested optional
 * rules (S{m,}: one right-recursive rule), the same rules llama.cpp generates. */
static const char *repeat(parser *p, seq_state *q, const char *at, uint64_t min, uint64_t max,
                          bool no_max) {
    elem_vec *rule = q->rule;
    if (q->last_sym_start == rule->n) return fail(p, at, "expecting an item before */+/?/{");
    uint64_t total = 1;
    if (!no_max && max > 0)
        total = max;
    else if (min > 0)
        total = min;
    if (q->n_prev_rules * total > MAX_REPETITION_THRESHOLD)
        return fail(p, at,
                    "the repetition makes more than %d rules (repeated rules multiplied by the "
                    "count); reduce the counts or the nesting",
                    MAX_REPETITION_THRESHOLD);
    size_t n_prev = rule->n - q->last_sym_start;
    qr_gelem *prev = malloc((n_prev + 3) * sizeof *prev);
    if (!prev) return fail(p, at, "out of memory");
    memcpy(prev, rule->v + q->last_sym_start, n_prev * sizeof *prev);
    if (min == 0) rule->n = q->last_sym_start;
    for (uint64_t i = 1; i < min; i++)
        for (size_t j = 0; j < n_prev; j++)
            if (!push(p, rule, prev[j].type, prev[j].value)) goto out;
    uint32_t last_rec = 0;
    uint64_t n_opt = no_max ? 1 : max - min;
    for (uint64_t i = 0; i < n_opt; i++) {
        uint32_t rec = generated_symbol(p, p->syms[q->rule_name].name);
        if (rec == UINT32_MAX) goto out;
        elem_vec r = {0};
        for (size_t j = 0; j < n_prev; j++)
            if (!push(p, &r, prev[j].type, prev[j].value)) break;
        if (i > 0 || no_max) push(p, &r, QR_GE_RULE_REF, no_max ? rec : last_rec);
        push(p, &r, QR_GE_ALT, 0);
        push(p, &r, QR_GE_END, 0);
        set_rule(p, rec, &r);
        free(r.v);
        if (p->failed) goto out;
        last_rec = rec;
    }
    if (n_opt > 0) push(p, rule, QR_GE_RULE_REF, last_rec);
    q->n_prev_rules *= total;
out:
    free(prev);
    return p->failed ? NULL : at;
}

static const char *parse_sequence(parser *p, const char *s, uint32_t rule_name, elem_vec *rule,
                                  bool nested) {
    seq_state q = {rule, rule->n, 1, rule_name};
    while (*s && !p->failed) {
        const char *at = s;
        if (*s == '"') { /* literal */
            s++;
            q.last_sym_start = rule->n;
            q.n_prev_rules = 1;
            while (*s != '"') {
                if (!*s) return fail(p, at, "unterminated string literal");
                uint32_t cp;
                if (!(s = parse_char(p, s, &cp)) || !push(p, rule, QR_GE_CHAR, cp)) return NULL;
            }
            s = parse_space(s + 1, nested);
        } else if (*s == '[') { /* class */
            s++;
            uint32_t start_type = QR_GE_CHAR;
            if (*s == '^') {
                s++;
                start_type = QR_GE_CHAR_NOT;
            }
            q.last_sym_start = rule->n;
            q.n_prev_rules = 1;
            while (*s != ']') {
                if (!*s) return fail(p, at, "unterminated character class");
                uint32_t cp;
                if (!(s = parse_char(p, s, &cp))) return NULL;
                uint32_t type = q.last_sym_start < rule->n ? QR_GE_CHAR_ALT : start_type;
                if (!push(p, rule, type, cp)) return NULL;
                if (s[0] == '-' && s[1] != ']') {
                    if (!s[1]) return fail(p, at, "unterminated character class");
                    if (!(s = parse_char(p, s + 1, &cp)) ||
                        !push(p, rule, QR_GE_CHAR_RNG_UPPER, cp))
                        return NULL;
                }
            }
            s = parse_space(s + 1, nested);
        } else if (*s == '<' || *s == '!') {
            return fail(p, s, "token references (<[id]>, <token>, !<...>) are not supported");
        } else if (is_word(*s)) { /* rule reference */
            const char *end = s;
            while (is_word(*end))
                end++;
            uint32_t id = symbol_id(p, s, (size_t)(end - s));
            if (id == UINT32_MAX) return NULL;
            if (!p->syms[id].first_ref) p->syms[id].first_ref = s;
            s = parse_space(end, nested);
            q.last_sym_start = rule->n;
            q.n_prev_rules = 1;
            if (!push(p, rule, QR_GE_RULE_REF, id)) return NULL;
        } else if (*s == '(') { /* group: a generated rule */
            if (++p->depth > MAX_DEPTH)
                return fail(p, s, "groups nested more than %d deep", MAX_DEPTH);
            s = parse_space(s + 1, true);
            uint32_t n_before = p->n_syms;
            uint32_t sub = generated_symbol(p, p->syms[rule_name].name);
            if (sub == UINT32_MAX) return NULL;
            if (!(s = parse_alternates(p, s, rule_name, sub, true))) return NULL;
            p->depth--;
            q.n_prev_rules = p->n_syms - n_before > 1 ? p->n_syms - n_before : 1;
            q.last_sym_start = rule->n;
            if (!push(p, rule, QR_GE_RULE_REF, sub)) return NULL;
            if (*s != ')') return fail(p, s, "expecting ')' to close the group");
            s = parse_space(s + 1, nested);
        } else if (*s == '.') {
            q.last_sym_start = rule->n;
            q.n_prev_rules = 1;
            if (!push(p, rule, QR_GE_CHAR_ANY, 0)) return NULL;
            s = parse_space(s + 1, nested);
        } else if (*s == '*' || *s == '+' || *s == '?') {
            char op = *s;
            s = parse_space(s + 1, nested);
            if (!repeat(p, &q, at, op == '+' ? 1 : 0, op == '?' ? 1 : 0, op != '?')) return NULL;
        } else if (*s == '{') {
            s = parse_space(s + 1, nested);
            if (!is_digit(*s)) return fail(p, s, "expecting an integer after '{'");
            uint64_t min, max = 0;
            bool no_max = true;
            s = parse_space(parse_count(s, &min), nested);
            if (*s == '}') {
                max = min;
                no_max = false;
                s = parse_space(s + 1, nested);
            } else if (*s == ',') {
                s = parse_space(s + 1, nested);
                if (is_digit(*s)) {
                    s = parse_space(parse_count(s, &max), nested);
                    no_max = false;
                }
                if (*s != '}') return fail(p, s, "expecting '}' to end the repetition");
                s = parse_space(s + 1, nested);
            } else {
                return fail(p, s, "expecting ',' or '}' in the repetition");
            }
            if (min > MAX_REPETITION_THRESHOLD)
                return fail(p, at, "repetition count %llu is larger than %d",
                            (unsigned long long)min, MAX_REPETITION_THRESHOLD);
            if (!no_max && max > MAX_REPETITION_THRESHOLD) no_max = true; /* as llama.cpp */
            if (!no_max && max < min)
                return fail(p, at, "repetition {%llu,%llu}: the maximum is below the minimum",
                            (unsigned long long)min, (unsigned long long)max);
            if (!repeat(p, &q, at, min, max, no_max)) return NULL;
        } else {
            break;
        }
    }
    return p->failed ? NULL : s;
}

static const char *parse_alternates(parser *p, const char *s, uint32_t rule_name, uint32_t id,
                                    bool nested) {
    elem_vec rule = {0};
    s = parse_sequence(p, s, rule_name, &rule, nested);
    while (s && *s == '|') {
        if (!push(p, &rule, QR_GE_ALT, 0)) break;
        s = parse_space(s + 1, true);
        s = parse_sequence(p, s, rule_name, &rule, nested);
    }
    if (s && push(p, &rule, QR_GE_END, 0)) set_rule(p, id, &rule);
    free(rule.v);
    return p->failed ? NULL : s;
}

static const char *parse_rule(parser *p, const char *s) {
    const char *end = s;
    while (is_word(*end))
        end++;
    if (end == s) return fail(p, s, "expecting a rule name");
    uint32_t id = symbol_id(p, s, (size_t)(end - s));
    if (id == UINT32_MAX) return NULL;
    const char *pos = parse_space(end, false);
    if (!(pos[0] == ':' && pos[1] == ':' && pos[2] == '='))
        return fail(p, pos, "expecting '::=' after the rule name");
    pos = parse_space(pos + 3, true);
    if (!(pos = parse_alternates(p, pos, id, id, false))) return NULL;
    if (*pos == '\r')
        pos += pos[1] == '\n' ? 2 : 1;
    else if (*pos == '\n')
        pos++;
    else if (*pos)
        return fail(p, pos, "expecting a newline or the end after the rule, not '%c'", *pos);
    return parse_space(pos, true);
}

/* ---- checks on the parsed rules ---- */

static bool is_eos(const qr_gelem *e) {
    return e->type == QR_GE_END || e->type == QR_GE_ALT;
}

typedef struct lr_state {
    const qr_grammar *g;
    uint8_t *visited, *in_progress, *may_be_empty;
} lr_state;

/* llama.cpp's llama_grammar_detect_left_recursion; depth-bounded (-1: too deep). */
static int left_recursive(lr_state *st, uint32_t r, int depth) {
    if (depth > MAX_DEPTH) return -1;
    if (st->in_progress[r]) return 1;
    st->in_progress[r] = 1;
    const qr_gelem *e = st->g->elems + st->g->rule_start[r];
    bool at_start = true;
    for (size_t i = 0;; i++) {
        if (is_eos(&e[i])) {
            if (at_start) {
                st->may_be_empty[r] = 1;
                break;
            }
            at_start = true;
            if (e[i].type == QR_GE_END) break;
        } else {
            at_start = false;
        }
    }
    bool recurse = true;
    for (size_t i = 0;; i++) {
        if (e[i].type == QR_GE_RULE_REF && recurse) {
            int rc = left_recursive(st, e[i].value, depth + 1);
            if (rc) return rc;
            if (!st->may_be_empty[e[i].value]) recurse = false;
        } else if (is_eos(&e[i])) {
            recurse = true;
        } else {
            recurse = false;
        }
        if (e[i].type == QR_GE_END) break;
    }
    st->in_progress[r] = 0;
    st->visited[r] = 1;
    return 0;
}

static void parser_free(parser *p) {
    for (uint32_t i = 0; i < p->n_syms; i++) {
        free(p->syms[i].name);
        free(p->syms[i].rule.v);
    }
    free(p->syms);
    free(p->map);
}

/* Flatten the rules into one array and run the checks llama.cpp runs. */
static qr_status build(parser *p, uint32_t root, qr_grammar **out) {
    for (uint32_t i = 0; i < p->n_syms; i++)
        if (!p->syms[i].defined) {
            fail(p, p->syms[i].first_ref ? p->syms[i].first_ref : p->text,
                 "undefined rule identifier '%s'", p->syms[i].name);
            return QR_ERR_INVALID_ARG;
        }
    qr_grammar *g = qr_calloc(1, sizeof *g);
    if (!g) return QR_ERR_NOMEM;
    size_t n = 0;
    for (uint32_t i = 0; i < p->n_syms; i++)
        n += p->syms[i].rule.n;
    g->elems = qr_malloc(n * sizeof *g->elems);
    g->rule_start = qr_malloc(p->n_syms * sizeof *g->rule_start);
    if (!g->elems || !g->rule_start) {
        qr_grammar_free(g);
        return QR_ERR_NOMEM;
    }
    g->n_rules = p->n_syms;
    g->root = root;
    for (uint32_t i = 0; i < p->n_syms; i++) {
        g->rule_start[i] = g->n_elems;
        memcpy(g->elems + g->n_elems, p->syms[i].rule.v, p->syms[i].rule.n * sizeof *g->elems);
        g->n_elems += (uint32_t)p->syms[i].rule.n;
    }
    lr_state st = {g, calloc(g->n_rules, 1), calloc(g->n_rules, 1), calloc(g->n_rules, 1)};
    qr_status rc = QR_OK;
    if (!st.visited || !st.in_progress || !st.may_be_empty) {
        rc = qr_error(QR_ERR_NOMEM, "grammar: out of memory");
    } else {
        for (uint32_t i = 0; i < g->n_rules && rc == QR_OK; i++) {
            if (st.visited[i]) continue;
            int lr = left_recursive(&st, i, 0);
            if (lr > 0)
                rc = qr_error(QR_ERR_INVALID_ARG,
                              "grammar: left recursion in rule '%s' (unsupported, as in "
                              "llama.cpp): rewrite it so the rule does not start with itself",
                              p->syms[i].name);
            else if (lr < 0)
                rc = qr_error(QR_ERR_INVALID_ARG,
                              "grammar: rule references nested more than %d deep from rule '%s'",
                              MAX_DEPTH, p->syms[i].name);
        }
    }
    free(st.visited);
    free(st.in_progress);
    free(st.may_be_empty);
    if (rc != QR_OK) {
        qr_grammar_free(g);
        return rc;
    }
    *out = g;
    return QR_OK;
}

qr_status qr_grammar_parse(const char *text, const char *root, qr_grammar **out) {
    if (out) *out = NULL;
    if (!text || !out)
        return qr_error(QR_ERR_INVALID_ARG, "grammar: %s is NULL", !text ? "text" : "out");
    if (!root) root = "root";
    parser p = {.text = text};
    const char *s = parse_space(text, true);
    while (s && *s)
        s = parse_rule(&p, s);
    qr_status rc = QR_OK;
    if (p.failed) {
        rc = qr_last_error()[0] && strstr(qr_last_error(), "out of memory") ? QR_ERR_NOMEM
                                                                            : QR_ERR_INVALID_ARG;
    } else if (p.n_syms == 0) {
        rc = qr_error(QR_ERR_INVALID_ARG, "grammar: no rules (the grammar is empty)");
    } else {
        uint32_t root_id = UINT32_MAX;
        size_t n_root = strlen(root);
        for (uint32_t i = 0; i < p.map_cap && root_id == UINT32_MAX; i++)
            if (p.map[i] && strlen(p.syms[p.map[i] - 1].name) == n_root &&
                memcmp(p.syms[p.map[i] - 1].name, root, n_root) == 0)
                root_id = p.map[i] - 1;
        if (root_id == UINT32_MAX)
            rc = qr_error(QR_ERR_INVALID_ARG, "grammar: no rule named '%s' (the start rule)", root);
        else
            rc = build(&p, root_id, out);
    }
    parser_free(&p);
    return rc;
}

void qr_grammar_free(qr_grammar *g) {
    if (!g) return;
    free(g->elems);
    free(g->rule_start);
    free(g);
}

qr_status qr_grammar_check(const char *gbnf, const char *root) {
    qr_grammar *g = NULL;
    qr_status rc = qr_grammar_parse(gbnf, root, &g);
    qr_grammar_free(g);
    return rc;
}
