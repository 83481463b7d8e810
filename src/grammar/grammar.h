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

#endif
