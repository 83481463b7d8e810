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
 *         lit = qr_gbnf_literal(json of the tool's name, e.g. ""get_weather"")
 *         body = ""{" space "\"name\"" space ":" space " lit " "," space "
 *                ""\"arguments\"" space ":" space " args " space "}""
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
/* The GBNF literal matching exactly the n bytes s (""..."", with \ " \r \n escaped),
 * malloc'd; NULL when out of memory. */
char *qr_gbnf_literal(const char *s, size_t n);
/* qr_json_schema_to_grammar for a parsed schema (no re-serialising): root rule "root". */
qr_status qr_json_schema_to_grammar_cjson(const struct cJSON *schema, char **out);

#endif
