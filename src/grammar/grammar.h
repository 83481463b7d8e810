/* grammar.h - the grammar module's inner interface: GBNF parsed into rules (gbnf.c), a matcher
 * that advances through the rules byte by byte (grammar.c, llama.cpp's pushdown semantics:
 * src/llama-grammar.cpp), the sampler stage built on it (grammar_stage.c) and the JSON schema
 * converter (json_schema.c, common/json-schema-to-grammar.cpp's language).
 *
 * Ownership: a qr_grammar is immutable once parsed and may be shared by any number of
 * matchers; each matcher is one parse state (one generation) and is freed by its owner. */
#ifndef QR_GRAMMAR_H
#define QR_GRAMMAR_H

#include "quarrel.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct qr_grammar qr_grammar;
typedef struct qr_grammar_matcher qr_grammar_matcher;

/* Parse GBNF text; root NULL: "root". Errors: QR_ERR_INVALID_ARG, "grammar: line L, column C:
 * what" (undefined rule, missing root, unterminated literal, left recursion, ...). */
qr_status qr_grammar_parse(const char *text, const char *root, qr_grammar **out);
void qr_grammar_free(qr_grammar *g);

qr_status qr_grammar_matcher_create(const qr_grammar *g, qr_grammar_matcher **out);
void qr_grammar_matcher_free(qr_grammar_matcher *m);
qr_grammar_matcher *qr_grammar_matcher_clone(const qr_grammar_matcher *m);
/* Advance by n bytes (UTF-8, possibly ending inside a character). false: the grammar cannot
 * accept them from this state, and the state is left unchanged. */
bool qr_grammar_matcher_accept(qr_grammar_matcher *m, const char *bytes, size_t n);
/* The grammar may end here (some stack is empty): end-of-generation is allowed. */
bool qr_grammar_matcher_can_end(const qr_grammar_matcher *m);
/* Nothing more can be accepted (every stack is empty): only end-of-generation is allowed. */
bool qr_grammar_matcher_done(const qr_grammar_matcher *m);

/* The whole string matches the grammar (accepted from the start and may end after it). */
bool qr_grammar_accepts(const qr_grammar *g, const char *s, size_t n);

/* ---- the parsed form (gbnf.c builds it, grammar.c walks it) ----
 * Element kinds and layout as llama.cpp's llama_grammar_element: each rule is a run of
 * elements, alternatives separated by ALT, ended by END; a char class is CHAR or CHAR_NOT
 * followed by CHAR_ALT / CHAR_RNG_UPPER elements. All rules live in one array; a parse
 * position is an index into it. */
typedef enum qr_gelem_type {
    QR_GE_END = 0,
    QR_GE_ALT,
    QR_GE_RULE_REF,       /* value: rule id */
    QR_GE_CHAR,           /* value: code point */
    QR_GE_CHAR_NOT,       /* [^...] */
    QR_GE_CHAR_RNG_UPPER, /* the upper end of a range begun by the previous element */
    QR_GE_CHAR_ALT,       /* another char of the same class */
    QR_GE_CHAR_ANY,       /* . */
} qr_gelem_type;

typedef struct qr_gelem {
    uint32_t type; /* qr_gelem_type */
    uint32_t value;
} qr_gelem;

struct qr_grammar {
    qr_gelem *elems;
    uint32_t n_elems;
    uint32_t *rule_start; /* n_rules: index of each rule's first element */
    uint32_t n_rules;
    uint32_t root; /* rule id */
};

/* UTF-8 decoding as llama.cpp's decode_utf8 (llama-grammar.cpp), including its handling of
 * invalid input, with the state of a character cut at a token boundary. */
typedef struct qr_utf8_partial {
    uint32_t value;   /* bits so far */
    int32_t n_remain; /* continuation bytes still expected; -1: invalid sequence */
} qr_utf8_partial;
/* Decode bytes[0..n) (stopping at a NUL byte, as llama.cpp's C string) continuing from
 * *partial; code points go to cps (room for n + 1) and *partial becomes the end state.
 * Returns the number of complete code points (0 with n_remain -1 if invalid). */
size_t qr_utf8_decode_partial(const char *bytes, size_t n, qr_utf8_partial *partial, uint32_t *cps);

/* ---- token-level queries for the sampler stage ----
 * A vocabulary decoded once (from a fresh UTF-8 state) and sorted by code points, so that a
 * full mask walks the shared prefixes once (a trie laid out as a sorted list: each token's
 * longest common prefix with the one before it). */
typedef struct qr_grammar_tokens {
    int32_t n_vocab;
    uint32_t *cps;        /* all tokens' code points */
    uint32_t *cp_off;     /* n_vocab + 1 */
    qr_utf8_partial *end; /* state after each token (n_remain -1: invalid UTF-8) */
    char *bytes;          /* all tokens' bytes (for decoding from a partial character) */
    uint32_t *byte_off;   /* n_vocab + 1 */
    int32_t *order;       /* n_order tokens (the ones to test) sorted by code points */
    uint32_t *lcp;        /* lcp[i]: common prefix of order[i - 1] and order[i] (0 for i = 0) */
    int32_t n_order;
    uint32_t max_len; /* longest token in code points */
    /* The same texts as a trie laid out in preorder, so that a refused prefix skips its whole
     * subtree in one jump: node n has code point node_cp[n] at depth node_depth[n] (its parent
     * is the last node before it one level up), its subtree ends before node_end[n], and the
     * tokens whose texts end at it are order[node_tok[n] .. node_tok[n + 1]). Tokens with no
     * complete code point (a lone lead byte) end at the root: order[0 .. n_root_tok). */
    uint32_t n_nodes;
    uint32_t *node_cp, *node_depth, *node_end, *node_tok; /* node_tok: n_nodes + 1 */
    int32_t n_root_tok;
} qr_grammar_tokens;

/* pieces[t] of len[t] bytes; testable[t]: false for tokens the walk must skip (EOG, empty).
 * NULL with qr_error set on allocation failure. */
qr_grammar_tokens *qr_grammar_tokens_create(int32_t n_vocab, const char *const *pieces,
                                            const int32_t *len, const bool *testable);
void qr_grammar_tokens_free(qr_grammar_tokens *t);
/* Token t (testable) can be accepted from the matcher's state (the state is not changed). */
bool qr_grammar_matcher_allows_token(qr_grammar_matcher *m, const qr_grammar_tokens *t, int32_t id);
/* The testable tokens the matcher can accept, into ids (room for t->n_order), in trie order;
 * returns how many, or -1 when the parse grew past its bounds (qr_error set). The walk costs
 * what the grammar lets through: a refused prefix skips every token that shares it. */
int64_t qr_grammar_matcher_allowed(qr_grammar_matcher *m, const qr_grammar_tokens *t,
                                   int32_t *ids);
/* allowed[t] = 1 for every testable token the matcher can accept, 0 otherwise (untouched for
 * the others); returns how many are allowed, or -1 when the parse grew past its bounds
 * (qr_error set). */
int64_t qr_grammar_matcher_mask(qr_grammar_matcher *m, const qr_grammar_tokens *t,
                                uint8_t *allowed);
/* The matcher stopped on its bounds (too many stacks or states for an ambiguous grammar): its
 * last accept or query failed for that reason, not because the grammar rejects the text. */
bool qr_grammar_matcher_overflowed(const qr_grammar_matcher *m);
/* The current state: its stacks' ids (stable for the matcher's life: equal ids, equal
 * stacks) into ids when n <= cap, and the UTF-8 state; returns the number of stacks. Two equal
 * states allow the same tokens (the stage caches masks by it). */
size_t qr_grammar_matcher_state(const qr_grammar_matcher *m, uint32_t *ids, size_t cap,
                                qr_utf8_partial *partial);
/* Back to the start state. */
void qr_grammar_matcher_reset(qr_grammar_matcher *m);

/* ---- JSON schema to GBNF (json_schema.c), for code that builds larger grammars ----
 * A qr_schema_rules is a growing set of GBNF rules (always holding llama.cpp's "space" rule):
 * schemas and hand-written rules are added under chosen names and share the primitive rules
 * (string, number, value, ...). Names are made of [a-zA-Z0-9-]; a taken name with another body
 * gets a numeric suffix, so always use the name a call returns. Example, the tool-call grammar
 * (root: one of several {"name": "<tool>", "arguments": <its parameters schema>}):
 *
 *     qr_schema_rules *r = qr_schema_rules_create();
 *     for each tool i:
 *         qr_json_schema_rules(r, "tool-args", tool[i].parameters, &args);   // e.g. "tool-args0"
 *         lit = qr_gbnf_literal of the tool's name as JSON text ("get_weather" in quotes)
 *         body = GBNF of {"name": <lit>, "arguments": <args>} in the converter's style:
 *                "{" space "\"name\"" space ":" space LIT "," space
 *                "\"arguments\"" space ":" space ARGS space "}"
 *         qr_schema_rules_add(r, "tool-call", body, &call[i]);
 *     qr_schema_rules_add(r, "root", call[0] " | " call[1] ..., NULL);
 *     qr_schema_rules_text(r, &gbnf); qr_schema_rules_free(r);
 *
 * Errors (QR_ERR_INVALID_ARG unless said): "json schema: ..." with the keyword and its JSON
 * path (JSON pointer from the schema's root, "#/properties/a"). */
struct cJSON; /* <cjson/cJSON.h> */
typedef struct qr_schema_rules qr_schema_rules;

qr_schema_rules *qr_schema_rules_create(void); /* NULL with qr_error set (out of memory) */
void qr_schema_rules_free(qr_schema_rules *r);
/* Add the rules of one schema (a cJSON object; $ref "#/..." resolve inside this schema), its
 * top rule named after name (NULL or "": "root"). *rule (may be NULL): the rule to reference,
 * owned by r until qr_schema_rules_free. On error r may hold some of the schema's rules. */
qr_status qr_json_schema_rules(qr_schema_rules *r, const char *name, const struct cJSON *schema,
                               const char **rule);
/* Add name ::= body (GBNF); *rule (may be NULL) as above. */
qr_status qr_schema_rules_add(qr_schema_rules *r, const char *name, const char *body,
                              const char **rule);
/* All rules as GBNF text, one "name ::= body" line each, sorted by name; malloc'd. */
qr_status qr_schema_rules_text(const qr_schema_rules *r, char **out);
/* The GBNF literal matching exactly the n bytes s (in double quotes, \\ \" \r \n escaped),
 * malloc'd; NULL when out of memory. */
char *qr_gbnf_literal(const char *s, size_t n);
/* qr_json_schema_to_grammar for a parsed schema (no re-serialising): root rule "root". */
qr_status qr_json_schema_to_grammar_cjson(const struct cJSON *schema, char **out);

#endif
