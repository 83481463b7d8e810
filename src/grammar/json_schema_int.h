/* json_schema_int.h - what json_schema.c and json_schema_pattern.c share: the rule set being
 * built (name -> GBNF body, llama.cpp's converter's _add_rule naming) and string helpers. */
#ifndef QR_JSON_SCHEMA_INT_H
#define QR_JSON_SCHEMA_INT_H

#include "util/util.h"

#include <stdbool.h>
#include <stddef.h>

/* output limits: a schema that needs more fails with a message instead of growing without end */
#define QR_SCHEMA_MAX_DEPTH 64             /* nested schemas (through $refs too) */
#define QR_SCHEMA_MAX_GRAMMAR (4u << 20)   /* bytes of rule bodies */
#define QR_SCHEMA_MAX_PATTERN_DEPTH 100    /* nested groups in a pattern, as llama.cpp */
#define QR_SCHEMA_MAX_VISITS 100000        /* schemas visited (each type of a type array again) */

typedef struct qr_schema_rule {
    char *name;
    char *body;        /* NULL: the name is reserved, its body comes later */
    const void *owner; /* who may fill a reserved name (the schema node a $ref points to) */
} qr_schema_rule;

struct qr_schema_rules {
    qr_schema_rule *rules;
    size_t n, cap;
    size_t *index; /* open addressing over rules by name: slot = rule index + 1, 0 empty */
    size_t n_index;
    size_t n_bytes; /* sum of body lengths, against QR_SCHEMA_MAX_GRAMMAR */
};

/* Add rule name ::= body under name with runs of characters outside [a-zA-Z0-9-] made one '-';
 * an existing name with another body gets the first free suffix 0, 1, ... (a name with the
 * same body is reused). Returns the name used (owned by r), NULL with qr_error set. */
const char *qr_schema_rules_put(struct qr_schema_rules *r, const char *name, const char *body);
/* The same where a name reserved for owner (qr_schema_rules_reserve) takes the body. */
const char *qr_schema_rules_put_owned(struct qr_schema_rules *r, const char *name,
                                      const char *body, const void *owner);
/* Reserve the first free name of name, name0, name1, ... for owner; NULL with qr_error set. */
const char *qr_schema_rules_reserve(struct qr_schema_rules *r, const char *name,
                                    const void *owner);
/* the rule's index, or -1 */
long qr_schema_rules_find(const struct qr_schema_rules *r, const char *name);

/* Room for one more element in *items (n used of *cap, elem bytes each): false with qr_error
 * set when out of memory. */
bool qr_schema_grow(void *items, size_t *cap, size_t n, size_t elem);

/* a malloc'd printf; NULL with qr_error set */
char *qr_schema_strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The rule of a JSON string whose content matches an ECMAScript pattern anchored with ^ and $
 * (llama.cpp's _visit_pattern language; its sub-rules are named after name). Unsupported regex
 * syntax (what llama.cpp would turn into "any string") is an error here. Returns the rule name
 * (malloc'd), NULL with qr_error set; path names the schema for messages. */
char *qr_schema_pattern_rule(struct qr_schema_rules *r, const char *pattern, const char *name,
                             const char *path);

#endif
