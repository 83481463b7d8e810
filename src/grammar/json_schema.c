/* json_schema.c - JSON schema to GBNF: a grammar accepting the language of llama.cpp's
 * converter (common/json-schema-to-grammar.cpp with the schema reading of common/json-schema.cpp):
 * its whitespace ("space"), number digit limits, integer range rules, object property order and
 * date/time/uuid rules. Where llama.cpp quietly drops a keyword (or accepts any string for a
 * pattern it cannot convert) this converter fails instead, naming the keyword and its JSON path.
 * Patterns are in json_schema_pattern.c. */
#include "grammar/grammar.h"
#include "grammar/json_schema_int.h"

#include <cjson/cJSON.h>

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- strings ---- */

char *qr_schema_strf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!s) {
        qr_error(QR_ERR_NOMEM, "json schema: out of memory");
        return NULL;
    }
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

bool qr_schema_grow(void *items, size_t *cap, size_t n, size_t elem) {
    if (n < *cap) return true;
    size_t new_cap = *cap ? 2 * *cap : 8;
    void *p = realloc(*(void **)items, new_cap * elem);
    if (!p) {
        qr_error(QR_ERR_NOMEM, "json schema: out of memory");
        return false;
    }
    *(void **)items = p;
    *cap = new_cap;
    return true;
}

static void sb_puts(qr_strbuf *b, const char *s) { qr_strbuf_append(b, s, strlen(s)); }

static void sb_putc(qr_strbuf *b, char c) { qr_strbuf_append(b, &c, 1); }

/* the buffer's string (owned by the caller), or NULL with qr_error set when it ran out */
static char *sb_take(qr_strbuf *b) {
    if (b->oom || !b->p) {
        bool oom = b->oom;
        free(b->p);
        memset(b, 0, sizeof *b);
        if (oom) {
            qr_error(QR_ERR_NOMEM, "json schema: out of memory");
            return NULL;
        }
        return qr_schema_strf("%s", "");
    }
    char *s = b->p;
    memset(b, 0, sizeof *b);
    return s;
}

char *qr_gbnf_literal(const char *s, size_t n) {
    qr_strbuf b = {0};
    sb_putc(&b, '"');
    for (size_t i = 0; i < n; i++) {
        switch (s[i]) {
        case '\r': sb_puts(&b, "\\r"); break;
        case '\n': sb_puts(&b, "\\n"); break;
        case '"': sb_puts(&b, "\\\""); break;
        case '\\': sb_puts(&b, "\\\\"); break;
        default: sb_putc(&b, s[i]);
        }
    }
    sb_putc(&b, '"');
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* s as a JSON string, escaped as nlohmann's dump() (the property keys of llama.cpp's rules) */
static void json_quote(qr_strbuf *b, const char *s) {
    sb_putc(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char tmp[8];
        switch (*p) {
        case '"': sb_puts(b, "\\\""); break;
        case '\\': sb_puts(b, "\\\\"); break;
        case '\b': sb_puts(b, "\\b"); break;
        case '\f': sb_puts(b, "\\f"); break;
        case '\n': sb_puts(b, "\\n"); break;
        case '\r': sb_puts(b, "\\r"); break;
        case '\t': sb_puts(b, "\\t"); break;
        default:
            if (*p < 0x20) {
                snprintf(tmp, sizeof tmp, "\\u%04x", *p);
                sb_puts(b, tmp);
            } else {
                sb_putc(b, (char)*p);
            }
        }
    }
    sb_putc(b, '"');
}

/* the GBNF literal of a JSON value's compact text (llama.cpp's _generate_constant_rule) */
static char *constant_literal(const cJSON *v) {
    char *text = cJSON_PrintUnformatted(v);
    if (!text) {
        qr_error(QR_ERR_NOMEM, "json schema: out of memory");
        return NULL;
    }
    char *lit = qr_gbnf_literal(text, strlen(text));
    cJSON_free(text);
    if (!lit) qr_error(QR_ERR_NOMEM, "json schema: out of memory");
    return lit;
}

/* ---- the rule set ---- */

static uint64_t hash_name(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

long qr_schema_rules_find(const struct qr_schema_rules *r, const char *name) {
    if (!r->n_index) return -1;
    for (size_t k = hash_name(name) & (r->n_index - 1);; k = (k + 1) & (r->n_index - 1)) {
        size_t slot = r->index[k];
        if (!slot) return -1;
        if (!strcmp(r->rules[slot - 1].name, name)) return (long)(slot - 1);
    }
}

static bool index_add(struct qr_schema_rules *r, size_t i) {
    if (2 * (r->n + 1) > r->n_index) {
        size_t n_index = r->n_index ? 2 * r->n_index : 64;
        size_t *index = calloc(n_index, sizeof *index);
        if (!index) return false;
        free(r->index);
        r->index = index;
        r->n_index = n_index;
        for (size_t j = 0; j < r->n; j++)
            if (j != i) index_add(r, j);
    }
    size_t k = hash_name(r->rules[i].name) & (r->n_index - 1);
    while (r->index[k])
        k = (k + 1) & (r->n_index - 1);
    r->index[k] = i + 1;
    return true;
}

static bool count_bytes(struct qr_schema_rules *r, size_t n) {
    if (r->n_bytes + n > QR_SCHEMA_MAX_GRAMMAR) {
        qr_error(QR_ERR_INVALID_ARG, "json schema: the grammar would exceed %u bytes",
                 QR_SCHEMA_MAX_GRAMMAR);
        return false;
    }
    r->n_bytes += n;
    return true;
}

/* a new rule; takes name and body (body may be NULL) */
static const char *rules_insert(struct qr_schema_rules *r, char *name, char *body,
                                const void *owner) {
    if (!count_bytes(r, strlen(name) + (body ? strlen(body) : 0) + 6)) goto fail;
    if (!qr_schema_grow(&r->rules, &r->cap, r->n, sizeof *r->rules)) goto fail;
    r->rules[r->n] = (qr_schema_rule){name, body, owner};
    if (!index_add(r, r->n)) goto oom;
    return r->rules[r->n++].name;
oom:
    qr_error(QR_ERR_NOMEM, "json schema: out of memory");
fail:
    free(name);
    free(body);
    return NULL;
}

/* name with every run of characters outside [a-zA-Z0-9-] replaced by one '-' */
static char *rule_name_of(const char *name) {
    qr_strbuf b = {0};
    bool in_run = false;
    for (const char *p = name; *p; p++) {
        char ch = *p;
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                  ch == '-';
        if (ok) sb_putc(&b, ch);
        else if (!in_run) sb_putc(&b, '-');
        in_run = !ok;
    }
    return sb_take(&b);
}

static const char *rules_set(struct qr_schema_rules *r, long i, const char *body) {
    char *copy = qr_schema_strf("%s", body);
    if (!copy || !count_bytes(r, strlen(body))) {
        free(copy);
        return NULL;
    }
    r->rules[i].body = copy;
    return r->rules[i].name;
}

const char *qr_schema_rules_put_owned(struct qr_schema_rules *r, const char *name,
                                      const char *body, const void *owner) {
    char *base = rule_name_of(name);
    if (!base) return NULL;
    const char *res = NULL;
    for (long k = -1;; k++) {
        char *key = k < 0 ? qr_schema_strf("%s", base) : qr_schema_strf("%s%ld", base, k);
        if (!key) break;
        long i = qr_schema_rules_find(r, key);
        if (i < 0) {
            char *copy = qr_schema_strf("%s", body);
            res = copy ? rules_insert(r, key, copy, NULL) : NULL;
            if (!copy) free(key);
            break;
        }
        free(key);
        const qr_schema_rule *e = &r->rules[i];
        if (e->body ? !strcmp(e->body, body) : (owner && e->owner == owner)) {
            res = e->body ? e->name : rules_set(r, i, body);
            break;
        }
    }
    free(base);
    return res;
}

const char *qr_schema_rules_put(struct qr_schema_rules *r, const char *name, const char *body) {
    return qr_schema_rules_put_owned(r, name, body, NULL);
}

const char *qr_schema_rules_reserve(struct qr_schema_rules *r, const char *name,
                                    const void *owner) {
    char *base = rule_name_of(name);
    if (!base) return NULL;
    const char *res = NULL;
    for (long k = -1;; k++) {
        char *key = k < 0 ? qr_schema_strf("%s", base) : qr_schema_strf("%s%ld", base, k);
        if (!key) break;
        if (qr_schema_rules_find(r, key) < 0) {
            res = rules_insert(r, key, NULL, owner);
            break;
        }
        free(key);
    }
    free(base);
    return res;
}

/* The fixed rules, from llama.cpp's PRIMITIVE_RULES and STRING_FORMAT_RULES (the language the
 * converter's output must match exactly). */
typedef struct primitive {
    const char *name, *body, *deps[6];
} primitive;
static const primitive primitives[] = {
    {"boolean", "(\"true\" | \"false\")", {0}},
    {"decimal-part", "[0-9]{1,16}", {0}},
    {"integral-part", "[0] | [1-9] [0-9]{0,15}", {0}},
    {"number", "(\"-\"? integral-part) (\".\" decimal-part)? ([eE] [-+]? integral-part)?",
     {"integral-part", "decimal-part"}},
    {"integer", "(\"-\"? integral-part)", {"integral-part"}},
    {"value", "object | array | string | number | boolean | null",
     {"object", "array", "string", "number", "boolean", "null"}},
    {"object",
     "\"{\" space ( string \":\" space value (\",\" space string \":\" space value)* )? space \"}\"",
     {"string", "value"}},
    {"array", "\"[\" space ( value (\",\" space value)* )? space \"]\"", {"value"}},
    {"uuid",
     "\"\\\"\" [0-9a-fA-F]{8} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{4} "
     "\"-\" [0-9a-fA-F]{12} \"\\\"\"",
     {0}},
    {"char", "[^\"\\\\\\x7F\\x00-\\x1F] | [\\\\] ([\"\\\\bfnrt] | \"u\" [0-9a-fA-F]{4})", {0}},
    {"string", "\"\\\"\" char* \"\\\"\"", {"char"}},
    {"null", "\"null\"", {0}},
    {"date",
     "[0-9]{4} \"-\" ( \"0\" [1-9] | \"1\" [0-2] ) \"-\" ( \"0\" [1-9] | [1-2] [0-9] | \"3\" [0-1] )",
     {0}},
    {"time",
     "([01] [0-9] | \"2\" [0-3]) \":\" [0-5] [0-9] \":\" [0-5] [0-9] ( \".\" [0-9]{3} )? ( \"Z\" | "
     "( \"+\" | \"-\" ) ( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] )",
     {0}},
    {"date-time", "date \"T\" time", {"date", "time"}},
    {"date-string", "\"\\\"\" date \"\\\"\"", {"date"}},
    {"time-string", "\"\\\"\" time \"\\\"\"", {"time"}},
    {"date-time-string", "\"\\\"\" date-time \"\\\"\"", {"date-time"}},
};
#define N_PRIMITIVES (sizeof primitives / sizeof primitives[0])

static const primitive *primitive_of(const char *name) {
    for (size_t i = 0; i < N_PRIMITIVES; i++)
        if (!strcmp(primitives[i].name, name)) return &primitives[i];
    return NULL;
}

static bool is_reserved_name(const char *name) {
    return !strcmp(name, "root") || primitive_of(name) != NULL;
}

/* the primitive `which` under rule name (its own name, or "root"), with the primitives it uses */
static const char *add_primitive(struct qr_schema_rules *r, const char *name, const char *which) {
    const primitive *p = primitive_of(which);
    const char *res = qr_schema_rules_put(r, name, p->body);
    if (!res) return NULL;
    for (int i = 0; i < 6 && p->deps[i]; i++)
        if (qr_schema_rules_find(r, p->deps[i]) < 0 && !add_primitive(r, p->deps[i], p->deps[i]))
            return NULL;
    return res;
}

qr_schema_rules *qr_schema_rules_create(void) {
    qr_schema_rules *r = calloc(1, sizeof *r);
    if (!r) {
        qr_error(QR_ERR_NOMEM, "json schema: out of memory");
        return NULL;
    }
    if (!qr_schema_rules_put(r, "space", "| \" \" | \"\\n\"{1,2} [ \\t]{0,20}")) {
        qr_schema_rules_free(r);
        return NULL;
    }
    return r;
}

void qr_schema_rules_free(qr_schema_rules *r) {
    if (!r) return;
    for (size_t i = 0; i < r->n; i++) {
        free(r->rules[i].name);
        free(r->rules[i].body);
    }
    free(r->rules);
    free(r->index);
    free(r);
}

qr_status qr_schema_rules_add(qr_schema_rules *r, const char *name, const char *body,
                              const char **rule) {
    if (!r || !name || !body) return qr_error(QR_ERR_INVALID_ARG, "json schema: NULL argument");
    const char *res = qr_schema_rules_put(r, name, body);
    if (!res) return QR_ERR_INVALID_ARG;
    if (rule) *rule = res;
    return QR_OK;
}

static int cmp_rule_name(const void *a, const void *b) {
    return strcmp((*(const qr_schema_rule *const *)a)->name, (*(const qr_schema_rule *const *)b)->name);
}

qr_status qr_schema_rules_text(const qr_schema_rules *r, char **out) {
    if (!r || !out) return qr_error(QR_ERR_INVALID_ARG, "json schema: NULL argument");
    *out = NULL;
    const qr_schema_rule **sorted = malloc((r->n ? r->n : 1) * sizeof *sorted);
    if (!sorted) return qr_error(QR_ERR_NOMEM, "json schema: out of memory");
    for (size_t i = 0; i < r->n; i++)
        sorted[i] = &r->rules[i];
    qsort(sorted, r->n, sizeof *sorted, cmp_rule_name);
    qr_strbuf b = {0};
    for (size_t i = 0; i < r->n; i++) {
        if (!sorted[i]->body) continue;
        sb_puts(&b, sorted[i]->name);
        sb_puts(&b, " ::= ");
        sb_puts(&b, sorted[i]->body);
        sb_putc(&b, '\n');
    }
    free(sorted);
    *out = sb_take(&b);
    return *out ? QR_OK : QR_ERR_NOMEM;
}

/* ---- repetitions and integer ranges (llama.cpp's build_repetition / build_min_max_int) ---- */

#define UNBOUNDED INT_MAX

/* item repeated min..max times (max UNBOUNDED), separated by sep when sep is not NULL */
static void repetition(qr_strbuf *b, const char *item, int min, int max, const char *sep) {
    bool has_max = max != UNBOUNDED;
    if (max == 0) return;
    if (min == 0 && max == 1) {
        sb_puts(b, item);
        sb_putc(b, '?');
        return;
    }
    char tmp[48];
    if (!sep) {
        sb_puts(b, item);
        if (min == 1 && !has_max) sb_putc(b, '+');
        else if (min == 0 && !has_max) sb_putc(b, '*');
        else {
            if (has_max) snprintf(tmp, sizeof tmp, "{%d,%d}", min, max);
            else snprintf(tmp, sizeof tmp, "{%d,}", min);
            sb_puts(b, tmp);
        }
        return;
    }
    qr_strbuf group = {0};
    sb_putc(&group, '(');
    sb_puts(&group, sep);
    sb_putc(&group, ' ');
    sb_puts(&group, item);
    sb_putc(&group, ')');
    if (group.oom) {
        b->oom = true;
        free(group.p);
        return;
    }
    if (min == 0) sb_putc(b, '(');
    sb_puts(b, item);
    sb_putc(b, ' ');
    repetition(b, group.p, min == 0 ? 0 : min - 1, has_max ? max - 1 : max, NULL);
    if (min == 0) sb_puts(b, ")?");
    free(group.p);
}

static void digit_range(qr_strbuf *b, char from, char to) {
    sb_putc(b, '[');
    sb_putc(b, from);
    if (from != to) {
        sb_putc(b, '-');
        sb_putc(b, to);
    }
    sb_putc(b, ']');
}

static void more_digits(qr_strbuf *b, int min, int max) {
    sb_puts(b, "[0-9]");
    if (min == max && min == 1) return;
    char tmp[48];
    if (max == min) snprintf(tmp, sizeof tmp, "{%d}", min);
    else if (max != UNBOUNDED) snprintf(tmp, sizeof tmp, "{%d,%d}", min, max);
    else snprintf(tmp, sizeof tmp, "{%d,}", min);
    sb_puts(b, tmp);
}

static bool all_digit(const char *s, size_t n, char d) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != d) return false;
    return true;
}

/* every digit string from..to of the same length n, digit by digit */
static void uniform_range(qr_strbuf *b, const char *from, const char *to, size_t n) {
    size_t i = 0;
    while (i < n && from[i] == to[i])
        i++;
    if (i > 0) {
        sb_putc(b, '"');
        qr_strbuf_append(b, from, i);
        sb_putc(b, '"');
    }
    if (i >= n) return;
    if (i > 0) sb_putc(b, ' ');
    size_t sub = n - i - 1;
    if (sub == 0) {
        digit_range(b, from[i], to[i]);
        return;
    }
    char nines[24], zeros[24];
    memset(nines, '9', sub);
    memset(zeros, '0', sub);
    const char *from_sub = from + i + 1, *to_sub = to + i + 1;
    bool to_reached = false;
    sb_putc(b, '(');
    if (all_digit(from_sub, sub, '0')) {
        digit_range(b, from[i], (char)(to[i] - 1));
        sb_putc(b, ' ');
        more_digits(b, (int)sub, (int)sub);
    } else {
        sb_putc(b, '[');
        sb_putc(b, from[i]);
        sb_puts(b, "] (");
        uniform_range(b, from_sub, nines, sub);
        sb_putc(b, ')');
        if (from[i] < to[i] - 1) {
            sb_puts(b, " | ");
            if (all_digit(to_sub, sub, '9')) {
                digit_range(b, (char)(from[i] + 1), to[i]);
                to_reached = true;
            } else {
                digit_range(b, (char)(from[i] + 1), (char)(to[i] - 1));
            }
            sb_putc(b, ' ');
            more_digits(b, (int)sub, (int)sub);
        }
    }
    if (!to_reached) {
        sb_puts(b, " | ");
        digit_range(b, to[i], to[i]);
        sb_putc(b, ' ');
        uniform_range(b, zeros, to_sub, sub);
    }
    sb_putc(b, ')');
}

/* The integers min..max as digits; INT64_MIN / INT64_MAX: no bound. decimals bounds the digits
 * of an open range (16, as llama.cpp's integral-part). */
static void min_max_int(qr_strbuf *b, int64_t min, int64_t max, int decimals, bool top) {
    bool has_min = min != INT64_MIN, has_max = max != INT64_MAX;
    char min_s[24], max_s[24];
    if (has_min && has_max) {
        if (min < 0 && max < 0) {
            sb_puts(b, "\"-\" (");
            min_max_int(b, -max, -min, decimals, true);
            sb_putc(b, ')');
            return;
        }
        if (min < 0) {
            sb_puts(b, "\"-\" (");
            min_max_int(b, 0, -min, decimals, true);
            sb_puts(b, ") | ");
            min = 0;
        }
        snprintf(min_s, sizeof min_s, "%lld", (long long)min);
        snprintf(max_s, sizeof max_s, "%lld", (long long)max);
        size_t min_digits = strlen(min_s), max_digits = strlen(max_s);
        for (size_t digits = min_digits; digits < max_digits; digits++) {
            char nines[24];
            memset(nines, '9', digits);
            uniform_range(b, min_s, nines, digits);
            min_s[0] = '1';
            memset(min_s + 1, '0', digits);
            min_s[digits + 1] = '\0';
            sb_puts(b, " | ");
        }
        uniform_range(b, min_s, max_s, max_digits);
        return;
    }
    int less = decimals - 1 > 1 ? decimals - 1 : 1;
    if (has_min) {
        if (min < 0) {
            sb_puts(b, "\"-\" (");
            min_max_int(b, INT64_MIN, -min, decimals, false);
            sb_puts(b, ") | [0] | [1-9] ");
            more_digits(b, 0, decimals - 1);
        } else if (min == 0) {
            if (top) {
                sb_puts(b, "[0] | [1-9] ");
                more_digits(b, 0, less);
            } else {
                more_digits(b, 1, decimals);
            }
        } else if (min <= 9) {
            char c = (char)('0' + min), start = top ? '1' : '0';
            if (c > start) {
                digit_range(b, start, (char)(c - 1));
                sb_putc(b, ' ');
                more_digits(b, 1, less);
                sb_puts(b, " | ");
            }
            digit_range(b, c, '9');
            sb_putc(b, ' ');
            more_digits(b, 0, less);
        } else {
            snprintf(min_s, sizeof min_s, "%lld", (long long)min);
            int len = (int)strlen(min_s);
            char c = min_s[0];
            if (c > '1') {
                digit_range(b, top ? '1' : '0', (char)(c - 1));
                sb_putc(b, ' ');
                more_digits(b, len, less);
                sb_puts(b, " | ");
            }
            digit_range(b, c, c);
            sb_puts(b, " (");
            min_max_int(b, strtoll(min_s + 1, NULL, 10), INT64_MAX, less, false);
            sb_putc(b, ')');
            if (c < '9') {
                sb_puts(b, " | ");
                digit_range(b, (char)(c + 1), '9');
                sb_putc(b, ' ');
                more_digits(b, len - 1, less);
            }
        }
        return;
    }
    /* has_max only (the caller never passes neither) */
    if (max >= 0) {
        if (top) {
            sb_puts(b, "\"-\" [1-9] ");
            more_digits(b, 0, less);
            sb_puts(b, " | ");
        }
        min_max_int(b, 0, max, decimals, true);
    } else {
        sb_puts(b, "\"-\" (");
        min_max_int(b, -max, INT64_MAX, decimals, false);
        sb_putc(b, ')');
    }
}

/* ---- keywords ---- */

enum {
    KW_TYPE, KW_PROPERTIES, KW_REQUIRED, KW_ADDITIONAL, KW_ENUM, KW_CONST, KW_ITEMS,
    KW_PREFIX_ITEMS, KW_MIN_ITEMS, KW_MAX_ITEMS, KW_MIN_LENGTH, KW_MAX_LENGTH, KW_PATTERN,
    KW_FORMAT, KW_MINIMUM, KW_MAXIMUM, KW_EXCL_MIN, KW_EXCL_MAX, KW_ANY_OF, KW_ONE_OF, KW_ALL_OF,
    KW_REF, KW_DEFS, KW_DEFINITIONS, KW_COUNT
};
static const char *const keywords[KW_COUNT] = {
    "type", "properties", "required", "additionalProperties", "enum", "const", "items",
    "prefixItems", "minItems", "maxItems", "minLength", "maxLength", "pattern", "format",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "anyOf", "oneOf", "allOf",
    "$ref", "$defs", "definitions"};
/* annotations change nothing a grammar could check; accepted anywhere */
static const char *const annotations[] = {"$schema", "$id", "title", "description", "examples",
                                          "default", "$comment", "readOnly", "writeOnly",
                                          "deprecated", "strict"};
#define KW(k) (1u << (k))
/* keywords that are fine wherever they are: containers of $ref targets, and format, which is an
 * annotation where the converter has no rule for it (as in JSON schema itself) */
#define KW_ALWAYS (KW(KW_DEFS) | KW(KW_DEFINITIONS) | KW(KW_FORMAT))

static int keyword_index(const char *key) {
    for (int i = 0; i < KW_COUNT; i++)
        if (!strcmp(keywords[i], key)) return i;
    return -1;
}

static bool is_annotation(const char *key) {
    for (size_t i = 0; i < sizeof annotations / sizeof annotations[0]; i++)
        if (!strcmp(annotations[i], key)) return true;
    return false;
}

/* Every key of s is an annotation or a keyword in used; what is a schema (ctx) says why not. */
static bool check_keywords(const cJSON *s, uint32_t used, const char *ctx, const char *path) {
    used |= KW_ALWAYS;
    for (const cJSON *k = s->child; k; k = k->next) {
        if (is_annotation(k->string)) continue;
        int i = keyword_index(k->string);
        if (i < 0) {
            qr_error(QR_ERR_INVALID_ARG, "json schema: unsupported keyword \"%s\" at %s", k->string,
                     path);
            return false;
        }
        if (!(used & KW(i))) {
            qr_error(QR_ERR_INVALID_ARG,
                     "json schema: keyword \"%s\" at %s is not supported %s (llama.cpp's "
                     "converter would ignore it)",
                     k->string, path, ctx);
            return false;
        }
    }
    return true;
}

static const cJSON *get(const cJSON *s, int kw) {
    return cJSON_GetObjectItemCaseSensitive(s, keywords[kw]);
}

static bool has(const cJSON *s, int kw) { return get(s, kw) != NULL; }

/* cJSON keeps both of a duplicated key where llama.cpp's reader keeps one */
static bool check_duplicates(const cJSON *obj, const char *path) {
    int n = 0;
    for (const cJSON *a = obj->child; a; a = a->next, n++) {
        if (n > 100000) break;
        for (const cJSON *b = a->next; b; b = b->next)
            if (!strcmp(a->string, b->string)) {
                qr_error(QR_ERR_INVALID_ARG, "json schema: duplicate key \"%s\" at %s", a->string,
                         path);
                return false;
            }
    }
    return true;
}

/* JSON pointer of a child: path + "/" + key with ~ and / escaped */
static char *child_path(const char *path, const char *key) {
    qr_strbuf b = {0};
    sb_puts(&b, path);
    sb_putc(&b, '/');
    for (const char *p = key; *p; p++) {
        if (*p == '~') sb_puts(&b, "~0");
        else if (*p == '/') sb_puts(&b, "~1");
        else sb_putc(&b, *p);
    }
    return sb_take(&b);
}

static char *index_path(const char *path, const char *key, int i) {
    return qr_schema_strf("%s/%s/%d", path, key, i);
}

/* minItems and the like: a non-negative integer (def when absent) */
static bool get_count(const cJSON *s, int kw, const char *path, int def, int *out) {
    const cJSON *v = get(s, kw);
    *out = def;
    if (!v) return true;
    double d = cJSON_IsNumber(v) ? v->valuedouble : -1;
    if (d < 0 || d != floor(d) || d > INT_MAX - 1) {
        qr_error(QR_ERR_INVALID_ARG, "json schema: %s at %s must be a non-negative integer%s",
                 keywords[kw], path, d > INT_MAX - 1 ? " below 2^31" : "");
        return false;
    }
    *out = (int)d;
    return true;
}

/* an integer bound; a fractional one is rounded inwards (llama.cpp's get_bound) */
static bool get_bound(const cJSON *v, const char *key, const char *path, bool round_up,
                      int64_t *out) {
    if (!cJSON_IsNumber(v)) {
        qr_error(QR_ERR_INVALID_ARG, "json schema: %s at %s must be a number", key, path);
        return false;
    }
    double d = round_up ? ceil(v->valuedouble) : floor(v->valuedouble);
    if (!(fabs(d) <= 9007199254740992.0)) {
        qr_error(QR_ERR_INVALID_ARG, "json schema: %s at %s is beyond +-2^53", key, path);
        return false;
    }
    *out = (int64_t)d;
    return true;
}

typedef enum { FMT_NONE, FMT_UUID, FMT_DATE, FMT_TIME, FMT_DATE_TIME } string_format;

/* a format the converter has a rule for; any other is an annotation */
static bool get_format(const cJSON *s, const char *path, string_format *out) {
    const cJSON *v = get(s, KW_FORMAT);
    *out = FMT_NONE;
    if (!v) return true;
    if (!cJSON_IsString(v)) {
        qr_error(QR_ERR_INVALID_ARG, "json schema: format at %s must be a string", path);
        return false;
    }
    const char *f = v->valuestring;
    if (!strcmp(f, "date")) *out = FMT_DATE;
    else if (!strcmp(f, "time")) *out = FMT_TIME;
    else if (!strcmp(f, "date-time")) *out = FMT_DATE_TIME;
    else if (!strcmp(f, "uuid") ||
             (strlen(f) == 5 && !strncmp(f, "uuid", 4) && f[4] >= '1' && f[4] <= '5'))
        *out = FMT_UUID;
    return true;
}

static const char *const type_names[] = {"null", "boolean", "number", "integer",
                                         "string", "array", "object"};

static bool type_known(const char *t) {
    for (size_t i = 0; i < sizeof type_names / sizeof type_names[0]; i++)
        if (!strcmp(type_names[i], t)) return true;
    return false;
}

static bool value_has_type(const cJSON *v, const char *t) {
    if (!strcmp(t, "null")) return cJSON_IsNull(v);
    if (!strcmp(t, "boolean")) return cJSON_IsBool(v);
    if (!strcmp(t, "number")) return cJSON_IsNumber(v);
    if (!strcmp(t, "integer")) return cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble);
    if (!strcmp(t, "string")) return cJSON_IsString(v);
    if (!strcmp(t, "array")) return cJSON_IsArray(v);
    return cJSON_IsObject(v);
}

/* const / enum next to type: every value must have one of the types (llama.cpp ignores the
 * type and would accept the value anyway) */
static bool check_values_typed(const cJSON *s, const char *path) {
    const cJSON *type = get(s, KW_TYPE);
    if (!type) return true;
    const cJSON *c = get(s, KW_CONST), *e = get(s, KW_ENUM);
    const cJSON *values = c ? NULL : e;
    int i = 0;
    for (const cJSON *v = c ? c : (values ? values->child : NULL); v; v = c ? NULL : v->next, i++) {
        bool ok = false;
        if (cJSON_IsString(type)) ok = !type_known(type->valuestring) || value_has_type(v, type->valuestring);
        for (const cJSON *t = cJSON_IsArray(type) ? type->child : NULL; t && !ok; t = t->next)
            ok = cJSON_IsString(t) && value_has_type(v, t->valuestring);
        if (!ok) {
            if (c) qr_error(QR_ERR_INVALID_ARG, "json schema: const at %s does not have the schema's type", path);
            else qr_error(QR_ERR_INVALID_ARG, "json schema: enum value %d at %s does not have the schema's type", i, path);
            return false;
        }
        if (c) break;
    }
    return true;
}

/* ---- the converter ---- */

typedef struct ref_entry {
    char *ref;
    const char *rule; /* owned by the rule set */
} ref_entry;

typedef struct conv {
    qr_schema_rules *r;
    const cJSON *root;
    ref_entry *refs;
    size_t n_refs, cap_refs;
    int depth;
    long n_visits; /* against QR_SCHEMA_MAX_VISITS: type arrays and allOf visit a schema again */
} conv;

static char *visit(conv *c, const cJSON *s, const char *name, const char *path);

/* a rule name copy the caller owns (NULL passes through) */
static char *dup_name(const char *rule) { return rule ? qr_schema_strf("%s", rule) : NULL; }

static char *put(conv *c, const char *name, char *body, const void *owner) {
    if (!body) return NULL;
    const char *res = qr_schema_rules_put_owned(c->r, name, body, owner);
    free(body);
    return dup_name(res);
}

/* name + "-" + suffix, or suffix when name is empty (llama.cpp's sub_name) */
static char *sub_name(const char *name, const char *suffix) {
    return qr_schema_strf("%s%s%s", name, name[0] ? "-" : "", suffix);
}

/* no keyword that makes the schema anything but "any value" (llama.cpp's KIND_ANY) */
static bool is_any_schema(const cJSON *s) {
    if (!cJSON_IsObject(s)) return false;
    for (const cJSON *k = s->child; k; k = k->next) {
        if (is_annotation(k->string) || !strcmp(k->string, "$defs") ||
            !strcmp(k->string, "definitions"))
            continue;
        if (!strcmp(k->string, "format") && cJSON_IsString(k)) {
            string_format f;
            get_format(s, "", &f);
            if (f == FMT_NONE) continue;
        }
        return false;
    }
    return true;
}

/* the schema a "#/a/b/0" $ref points to; NULL with qr_error set */
static const cJSON *resolve_pointer(conv *c, const char *ref, const char *path) {
    const cJSON *t = c->root;
    const char *p = ref + 1;
    while (*p == '/') {
        p++;
        size_t n = strcspn(p, "/");
        char *sel = qr_schema_strf("%.*s", (int)n, p);
        if (!sel) return NULL;
        const cJSON *next = NULL;
        if (cJSON_IsObject(t)) next = cJSON_GetObjectItemCaseSensitive(t, sel);
        if (!next && cJSON_IsArray(t)) {
            char *end;
            unsigned long long idx = strtoull(sel, &end, 10);
            if (end == sel || sel[0] == '-') idx = ULLONG_MAX;
            next = idx < (unsigned long long)cJSON_GetArraySize(t) ? cJSON_GetArrayItem(t, (int)idx) : NULL;
            if (!next) {
                qr_error(QR_ERR_INVALID_ARG, "json schema: cannot resolve $ref %s at %s, %s is out of range", ref, path, sel);
                free(sel);
                return NULL;
            }
        }
        if (!next) {
            qr_error(QR_ERR_INVALID_ARG, "json schema: cannot resolve $ref %s at %s, %s not found", ref, path, sel);
            free(sel);
            return NULL;
        }
        free(sel);
        t = next;
        p += n;
    }
    return t;
}

static const char *ref_string(const cJSON *s, const char *path) {
    const cJSON *v = get(s, KW_REF);
    if (!cJSON_IsString(v)) {
        qr_error(QR_ERR_INVALID_ARG, "json schema: $ref at %s must be a string", path);
        return NULL;
    }
    if (strncmp(v->valuestring, "#/", 2) != 0) {
        qr_error(QR_ERR_INVALID_ARG,
                 "json schema: unsupported $ref %s at %s, only references into the same document "
                 "(\"#/...\") are supported",
                 v->valuestring, path);
        return NULL;
    }
    return v->valuestring;
}

/* the rule of a $ref: each target once, under "ref-<pointer>" reserved before its visit so a
 * recursive reference finds it */
static char *resolve_ref(conv *c, const cJSON *s, const char *path) {
    const char *ref = ref_string(s, path);
    if (!ref) return NULL;
    for (size_t i = 0; i < c->n_refs; i++)
        if (!strcmp(c->refs[i].ref, ref)) return dup_name(c->refs[i].rule);
    const cJSON *target = resolve_pointer(c, ref, path);
    if (!target) return NULL;
    /* a chain of bare $refs that comes back to itself matches nothing (llama.cpp's grammar
     * would be left-recursive) */
    const cJSON *t = target;
    for (int hops = 0; cJSON_IsObject(t) && has(t, KW_REF); hops++) {
        const char *next = ref_string(t, ref);
        if (!next) return NULL;
        if (!strcmp(next, ref) || hops > QR_SCHEMA_MAX_DEPTH) {
            qr_error(QR_ERR_INVALID_ARG, "json schema: $ref %s at %s is a cycle of $refs", ref, path);
            return NULL;
        }
        bool pending = false;
        for (size_t i = 0; i < c->n_refs; i++)
            pending |= !strcmp(c->refs[i].ref, next);
        if (pending) break;
        if (!(t = resolve_pointer(c, next, ref))) return NULL;
    }
    char *want = qr_schema_strf("ref%s", ref + 1);
    if (!want) return NULL;
    const char *rule = qr_schema_rules_reserve(c->r, want, target);
    free(want);
    if (!rule) return NULL;
    if (!qr_schema_grow(&c->refs, &c->cap_refs, c->n_refs, sizeof *c->refs)) return NULL;
    char *ref_copy = qr_schema_strf("%s", ref);
    if (!ref_copy) return NULL;
    c->refs[c->n_refs++] = (ref_entry){ref_copy, rule};
    char *rule_copy = dup_name(rule);
    char *got = rule_copy ? visit(c, target, rule_copy, ref) : NULL;
    if (got && strcmp(got, rule_copy)) { /* the target is a primitive: rule ::= primitive */
        if (!qr_schema_rules_put_owned(c->r, rule_copy, got, target)) {
            free(got);
            got = NULL;
        }
    }
    free(got);
    if (!got) {
        free(rule_copy);
        return NULL;
    }
    return rule_copy;
}

/* " | "-joined rules of alternatives (anyOf / oneOf) */
static char *union_rule(conv *c, const cJSON *alts, const char *name, const char *path,
                        const char *key) {
    if (!cJSON_IsArray(alts) || !alts->child) {
        qr_error(QR_ERR_INVALID_ARG, "json schema: %s at %s must be a non-empty array of schemas",
                 key, path);
        return NULL;
    }
    qr_strbuf b = {0};
    int i = 0;
    for (const cJSON *a = alts->child; a; a = a->next, i++) {
        char *alt_name = name[0] ? qr_schema_strf("%s-%d", name, i) : qr_schema_strf("alternative-%d", i);
        char *alt_path = index_path(path, key, i);
        char *rule = alt_name && alt_path ? visit(c, a, alt_name, alt_path) : NULL;
        free(alt_name);
        free(alt_path);
        if (!rule) {
            free(b.p);
            return NULL;
        }
        if (i) sb_puts(&b, " | ");
        sb_puts(&b, rule);
        free(rule);
    }
    return sb_take(&b);
}

/* ---- objects ---- */

typedef struct prop {
    const char *key;
    const cJSON *schema;
    char *path;
    bool required;
    char *kv; /* its "key": value rule */
} prop;

typedef struct prop_list {
    prop *p;
    size_t n, cap;
} prop_list;

static void props_free(prop_list *l) {
    for (size_t i = 0; i < l->n; i++) {
        free(l->p[i].path);
        free(l->p[i].kv);
    }
    free(l->p);
}

static bool props_add(prop_list *l, const char *key, const cJSON *schema, const char *path,
                      bool required) {
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->p[i].key, key)) {
            qr_error(QR_ERR_INVALID_ARG, "json schema: property \"%s\" at %s is defined twice",
                     key, path);
            return false;
        }
    if (!qr_schema_grow(&l->p, &l->cap, l->n, sizeof *l->p)) return false;
    char *pp = child_path(path, key);
    if (!pp) return false;
    l->p[l->n++] = (prop){key, schema, pp, required, NULL};
    return true;
}

/* The properties of an object schema with their required flags; required names that are not
 * properties are an error (llama.cpp would drop them). */
static bool collect_properties(const cJSON *s, const char *path, bool all_required, prop_list *l) {
    const cJSON *props = get(s, KW_PROPERTIES), *req = get(s, KW_REQUIRED);
    if (props && !cJSON_IsObject(props)) {
        qr_error(QR_ERR_INVALID_ARG, "json schema: properties at %s must be an object", path);
        return false;
    }
    char *props_path = child_path(path, "properties");
    if (!props_path || (props && !check_duplicates(props, props_path))) {
        free(props_path);
        return false;
    }
    if (req) {
        bool ok = cJSON_IsArray(req);
        for (const cJSON *r = ok ? req->child : NULL; r && ok; r = r->next) {
            ok = cJSON_IsString(r);
            if (ok && !cJSON_GetObjectItemCaseSensitive(props, r->valuestring)) {
                qr_error(QR_ERR_INVALID_ARG,
                         "json schema: required property \"%s\" at %s is not in properties",
                         r->valuestring, path);
                free(props_path);
                return false;
            }
        }
        if (!ok) {
            qr_error(QR_ERR_INVALID_ARG, "json schema: required at %s must be an array of strings",
                     path);
            free(props_path);
            return false;
        }
    }
    for (const cJSON *p = props ? props->child : NULL; p; p = p->next) {
        bool required = all_required;
        for (const cJSON *r = req ? req->child : NULL; r && !required; r = r->next)
            required = !strcmp(r->valuestring, p->string);
        if (!props_add(l, p->string, p, props_path, required)) {
            free(props_path);
            return false;
        }
    }
    free(props_path);
    return true;
}

/* the trie of property names, by code point, for the rule of any other key */
typedef struct trie_node {
    uint32_t *cps;
    size_t *kids; /* node indices, parallel to cps, sorted by code point */
    size_t n, cap;
} trie_node;

typedef struct trie {
    trie_node *nodes;
    size_t n, cap;
    bool root_is_key;
} trie;

static uint32_t next_cp(const unsigned char **p) {
    const unsigned char *s = *p;
    int n = s[0] < 0x80 ? 1 : (s[0] >> 5) == 6 ? 2 : (s[0] >> 4) == 14 ? 3 : (s[0] >> 3) == 30 ? 4 : 1;
    uint32_t cp = n == 1 ? s[0] : n == 2 ? (s[0] & 0x1fu) : n == 3 ? (s[0] & 0x0fu) : (s[0] & 0x07u);
    for (int k = 1; k < n; k++) {
        if ((s[k] & 0xc0) != 0x80) { /* not UTF-8: the byte on its own */
            *p = s + 1;
            return s[0];
        }
        cp = (cp << 6) | (s[k] & 0x3fu);
    }
    *p = s + n;
    return cp;
}

static long trie_new_node(trie *t) {
    if (!qr_schema_grow(&t->nodes, &t->cap, t->n, sizeof *t->nodes)) return -1;
    t->nodes[t->n] = (trie_node){0};
    return (long)t->n++;
}

static bool trie_insert(trie *t, const char *key) {
    size_t node = 0;
    const unsigned char *p = (const unsigned char *)key;
    if (!*p) t->root_is_key = true;
    while (*p) {
        uint32_t cp = next_cp(&p);
        trie_node *nd = &t->nodes[node];
        size_t j = 0;
        while (j < nd->n && nd->cps[j] < cp)
            j++;
        if (j < nd->n && nd->cps[j] == cp) {
            node = nd->kids[j];
            continue;
        }
        long kid = trie_new_node(t);
        if (kid < 0) return false;
        nd = &t->nodes[node];
        if (nd->n == nd->cap) {
            size_t cap = nd->cap ? 2 * nd->cap : 4;
            uint32_t *cps = realloc(nd->cps, cap * sizeof *cps);
            if (cps) nd->cps = cps;
            size_t *kids = cps ? realloc(nd->kids, cap * sizeof *kids) : NULL;
            if (!kids) return false;
            nd->kids = kids;
            nd->cap = cap;
        }
        memmove(nd->cps + j + 1, nd->cps + j, (nd->n - j) * sizeof *nd->cps);
        memmove(nd->kids + j + 1, nd->kids + j, (nd->n - j) * sizeof *nd->kids);
        nd->cps[j] = cp;
        nd->kids[j] = (size_t)kid;
        nd->n++;
        node = (size_t)kid;
    }
    return true;
}

/* a code point inside [...]: the characters a class gives meaning to as \xNN */
static void class_char(qr_strbuf *b, uint32_t cp) {
    char tmp[8];
    if (cp < 0x20 || cp == '-' || cp == ']' || cp == '[' || cp == '\\' || cp == '^' || cp == '"') {
        snprintf(tmp, sizeof tmp, "\\x%02X", (unsigned)cp);
        sb_puts(b, tmp);
        return;
    }
    int n = 0;
    if (cp < 0x80) tmp[n++] = (char)cp;
    else if (cp < 0x800) {
        tmp[n++] = (char)(0xc0 | (cp >> 6));
        tmp[n++] = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        tmp[n++] = (char)(0xe0 | (cp >> 12));
        tmp[n++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        tmp[n++] = (char)(0x80 | (cp & 0x3f));
    } else {
        tmp[n++] = (char)(0xf0 | (cp >> 18));
        tmp[n++] = (char)(0x80 | ((cp >> 12) & 0x3f));
        tmp[n++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        tmp[n++] = (char)(0x80 | (cp & 0x3f));
    }
    qr_strbuf_append(b, tmp, (size_t)n);
}

/* llama.cpp's _not_strings: a JSON string that is none of the keys, written down the trie (a
 * key that is a prefix of another is not excluded, as there) */
static void not_strings_node(qr_strbuf *b, const trie *t, size_t node, const char *char_rule) {
    const trie_node *nd = &t->nodes[node];
    for (size_t j = 0; j < nd->n; j++) {
        if (j) sb_puts(b, " | ");
        sb_putc(b, '[');
        class_char(b, nd->cps[j]);
        sb_putc(b, ']');
        if (t->nodes[nd->kids[j]].n) {
            sb_puts(b, " (");
            not_strings_node(b, t, nd->kids[j], char_rule);
            sb_putc(b, ')');
        } else {
            sb_putc(b, ' ');
            sb_puts(b, char_rule);
            sb_putc(b, '+');
        }
    }
    if (nd->n) {
        sb_puts(b, " | [^\"");
        for (size_t j = 0; j < nd->n; j++)
            class_char(b, nd->cps[j]);
        sb_puts(b, "] ");
        sb_puts(b, char_rule);
        sb_putc(b, '*');
    }
}

#define MAX_KEY_CHARS 1024 /* the trie recursion's depth */

static char *not_strings(conv *c, const prop_list *l, const char *path) {
    const char *char_rule = add_primitive(c->r, "char", "char");
    if (!char_rule) return NULL;
    trie t = {0};
    char *res = NULL;
    if (trie_new_node(&t) < 0) goto oom;
    for (size_t i = 0; i < l->n; i++) {
        if (strlen(l->p[i].key) > MAX_KEY_CHARS) {
            qr_error(QR_ERR_INVALID_ARG,
                     "json schema: property names longer than %d bytes at %s are not supported "
                     "with additionalProperties",
                     MAX_KEY_CHARS, path);
            goto done;
        }
        if (!trie_insert(&t, l->p[i].key)) goto oom;
    }
    qr_strbuf b = {0};
    sb_puts(&b, "[\"] ( ");
    not_strings_node(&b, &t, 0, char_rule);
    sb_puts(&b, " )");
    if (!t.root_is_key) sb_putc(&b, '?');
    sb_puts(&b, " [\"]");
    res = sb_take(&b);
    goto done;
oom:
    qr_error(QR_ERR_NOMEM, "json schema: out of memory");
done:
    for (size_t i = 0; i < t.n; i++) {
        free(t.nodes[i].cps);
        free(t.nodes[i].kids);
    }
    free(t.nodes);
    return res;
}

/* The alternatives of the optional members (the additional-properties member last, repeated
 * any number of times): alternative i starts with member i, then any of the later ones in
 * order through the "<key>-rest" rules (llama.cpp's get_recursive_refs, built from the end so
 * each rest rule is made once). alt[i] are malloc'd. */
static bool optional_alternatives(conv *c, char **kv, const char **keys, size_t n, bool star_last,
                                  const char *name, char **alt) {
    char *rest = NULL; /* the rest rule after member i */
    bool ok = true;
    for (size_t i = n; i-- > 0 && ok;) {
        bool star = star_last && i == n - 1;
        qr_strbuf b = {0};
        sb_puts(&b, kv[i]);
        if (star) {
            sb_puts(&b, " ( \",\" space ");
            sb_puts(&b, kv[i]);
            sb_puts(&b, " )*");
        }
        if (rest) {
            sb_putc(&b, ' ');
            sb_puts(&b, rest);
        }
        alt[i] = sb_take(&b);
        ok = alt[i] != NULL;
        if (ok && i > 0) { /* the rest after member i - 1: member i optional, then its rest */
            qr_strbuf r = {0};
            sb_puts(&r, "( \",\" space ");
            sb_puts(&r, kv[i]);
            sb_puts(&r, star ? " )*" : " )?");
            if (rest) {
                sb_putc(&r, ' ');
                sb_puts(&r, rest);
            }
            char *suffix = qr_schema_strf("%s-rest", keys[i - 1]);
            char *rest_name = suffix ? sub_name(name, suffix) : NULL;
            free(rest);
            rest = rest_name ? put(c, rest_name, sb_take(&r), NULL) : NULL;
            if (!rest_name) free(r.p);
            free(suffix);
            free(rest_name);
            ok = rest != NULL;
        }
    }
    free(rest);
    return ok;
}

/* llama.cpp's _build_object_rule: required members first in schema order, then any subset of
 * the optional ones in schema order, then the additional ones (when has_additional: values of
 * additional, NULL for any value, at additional_path). */
static char *object_rule(conv *c, prop_list *l, const char *name, bool has_additional,
                         const cJSON *additional, const char *additional_path) {
    for (size_t i = 0; i < l->n; i++) {
        char *pname = sub_name(name, l->p[i].key);
        char *value = pname ? visit(c, l->p[i].schema, pname, l->p[i].path) : NULL;
        char *kv_name = value ? qr_schema_strf("%s-kv", pname) : NULL;
        qr_strbuf b = {0};
        if (kv_name) {
            qr_strbuf key = {0};
            json_quote(&key, l->p[i].key);
            char *lit = key.oom ? NULL : qr_gbnf_literal(key.p, key.n);
            free(key.p);
            if (!lit) b.oom = true;
            else sb_puts(&b, lit);
            free(lit);
            sb_puts(&b, " space \":\" space ");
            sb_puts(&b, value);
        }
        free(value);
        free(pname);
        if (!kv_name) {
            free(b.p);
            return NULL;
        }
        l->p[i].kv = put(c, kv_name, sb_take(&b), NULL);
        free(kv_name);
        if (!l->p[i].kv) return NULL;
    }
    size_t n = l->n + 1, n_opt = 0, n_req = 0;
    char **opt = calloc(n, sizeof *opt), **req = calloc(n, sizeof *req);
    const char **opt_keys = calloc(n, sizeof *opt_keys);
    char *additional_kv = NULL, *res = NULL;
    qr_strbuf b = {0};
    if (!opt || !req || !opt_keys) {
        qr_error(QR_ERR_NOMEM, "json schema: out of memory");
        goto done;
    }
    for (size_t i = 0; i < l->n; i++) {
        if (l->p[i].required) req[n_req++] = l->p[i].kv;
        else {
            opt_keys[n_opt] = l->p[i].key;
            opt[n_opt++] = l->p[i].kv;
        }
    }
    if (has_additional) {
        char *sub = sub_name(name, "additional");
        char *value = NULL, *key = NULL;
        if (sub && !additional) value = dup_name(add_primitive(c->r, "value", "value"));
        else if (sub) {
            char *vname = qr_schema_strf("%s-value", sub);
            value = vname ? visit(c, additional, vname, additional_path) : NULL;
            free(vname);
        }
        if (value && !l->n) key = dup_name(add_primitive(c->r, "string", "string"));
        else if (value) {
            char *kname = qr_schema_strf("%s-k", sub);
            key = kname ? put(c, kname, not_strings(c, l, additional_path), NULL) : NULL;
            free(kname);
        }
        char *kv_name = key ? qr_schema_strf("%s-kv", sub) : NULL;
        char *body = kv_name ? qr_schema_strf("%s \":\" space %s", key, value) : NULL;
        additional_kv = body ? put(c, kv_name, body, NULL) : NULL;
        free(sub);
        free(value);
        free(key);
        free(kv_name);
        if (!additional_kv) goto done;
        opt_keys[n_opt] = "*";
        opt[n_opt++] = additional_kv;
    }
    if (!n_req && !n_opt) {
        res = qr_schema_strf("\"{\" space \"}\"");
        goto done;
    }
    sb_puts(&b, "\"{\" space ");
    for (size_t i = 0; i < n_req; i++) {
        if (i) sb_puts(&b, " \",\" space ");
        sb_puts(&b, req[i]);
    }
    if (n_opt) {
        sb_puts(&b, " (");
        if (n_req) sb_puts(&b, " \",\" space ( ");
        char **alts = calloc(n_opt, sizeof *alts);
        bool ok = alts && optional_alternatives(c, opt, opt_keys, n_opt, has_additional, name, alts);
        for (size_t i = 0; ok && i < n_opt; i++) {
            if (i) sb_puts(&b, " | ");
            sb_puts(&b, alts[i]);
        }
        for (size_t i = 0; alts && i < n_opt; i++)
            free(alts[i]);
        free(alts);
        if (!ok) {
            if (!qr_last_error()[0]) qr_error(QR_ERR_NOMEM, "json schema: out of memory");
            goto done;
        }
        if (n_req) sb_puts(&b, " )");
        sb_puts(&b, " )?");
    }
    sb_puts(&b, " space \"}\"");
    res = sb_take(&b);
done:
    free(b.p);
    free(opt);
    free(req);
    free(opt_keys);
    free(additional_kv);
    return res;
}

static char *visit_object(conv *c, const cJSON *s, const char *name, const char *rule_name,
                          const char *path) {
    const cJSON *add = get(s, KW_ADDITIONAL), *add_schema = NULL;
    bool add_any = false;
    if (add) {
        if (cJSON_IsBool(add)) add_any = cJSON_IsTrue(add);
        else if (!cJSON_IsObject(add)) {
            qr_error(QR_ERR_INVALID_ARG,
                     "json schema: additionalProperties at %s must be a boolean or a schema", path);
            return NULL;
        } else if (is_any_schema(add)) add_any = true;
        else add_schema = add;
    } else if (!has(s, KW_PROPERTIES)) {
        add_any = true; /* {"type": "object"} on its own: any object */
    }
    prop_list l = {0};
    char *res = NULL, *add_path = NULL;
    if (!collect_properties(s, path, false, &l)) goto done;
    if (!l.n && add_any) {
        res = put(c, rule_name, dup_name(add_primitive(c->r, "object", "object")), s);
        goto done;
    }
    if ((add_path = child_path(path, "additionalProperties")))
        res = put(c, rule_name, object_rule(c, &l, name, add_any || add_schema, add_schema, add_path), s);
done:
    free(add_path);
    props_free(&l);
    return res;
}

/* allOf: the properties of object components merged (all required; those of anyOf components
 * optional), or the values common to enum components; llama.cpp's _visit_all_of, failing
 * where it would drop a component */
typedef struct allof_acc {
    prop_list props;
    int n_enum, n_object;
    char **lits; /* the enum literals of each enum component, '\n'-free, counted */
    int *counts;
    size_t n_lits, cap_lits;
} allof_acc;

static bool allof_component(conv *c, const cJSON *comp, const char *path, bool required,
                            allof_acc *a, int hops) {
    if (!cJSON_IsObject(comp)) {
        qr_error(QR_ERR_INVALID_ARG, "json schema: schema at %s must be an object", path);
        return false;
    }
    if (hops > QR_SCHEMA_MAX_DEPTH) {
        qr_error(QR_ERR_INVALID_ARG, "json schema: allOf at %s: $refs nest too deep or cycle", path);
        return false;
    }
    if (!check_duplicates(comp, path)) return false;
    if (has(comp, KW_REF)) {
        const char *ref = ref_string(comp, path);
        const cJSON *t = ref ? resolve_pointer(c, ref, path) : NULL;
        return t && check_keywords(comp, KW(KW_REF), "next to $ref", path) &&
               allof_component(c, t, ref, required, a, hops + 1);
    }
    int alt_kw = has(comp, KW_ONE_OF) ? KW_ONE_OF : KW_ANY_OF;
    if (has(comp, alt_kw)) {
        const cJSON *alts = get(comp, alt_kw);
        if (!required) {
            qr_error(QR_ERR_INVALID_ARG, "json schema: %s inside %s at %s is not supported in allOf",
                     keywords[alt_kw], keywords[alt_kw], path);
            return false;
        }
        if (!check_keywords(comp, KW(alt_kw), "next to anyOf / oneOf", path)) return false;
        if (!cJSON_IsArray(alts) || !alts->child) {
            qr_error(QR_ERR_INVALID_ARG, "json schema: %s at %s must be a non-empty array of schemas",
                     keywords[alt_kw], path);
            return false;
        }
        int i = 0;
        for (const cJSON *alt = alts->child; alt; alt = alt->next, i++) {
            char *p = index_path(path, keywords[alt_kw], i);
            bool ok = p && allof_component(c, alt, p, false, a, hops + 1);
            free(p);
            if (!ok) return false;
        }
        return true;
    }
    const cJSON *type = get(comp, KW_TYPE);
    if (has(comp, KW_ENUM) && !has(comp, KW_CONST) && !cJSON_IsArray(type)) {
        const cJSON *values = get(comp, KW_ENUM);
        if (!required) {
            qr_error(QR_ERR_INVALID_ARG, "json schema: enum inside anyOf in allOf at %s is not supported", path);
            return false;
        }
        if (!check_keywords(comp, KW(KW_ENUM) | KW(KW_TYPE), "next to enum", path) ||
            !check_values_typed(comp, path))
            return false;
        if (!cJSON_IsArray(values) || !values->child) {
            qr_error(QR_ERR_INVALID_ARG, "json schema: enum at %s must be a non-empty array", path);
            return false;
        }
        a->n_enum++;
        size_t first = a->n_lits;
        for (const cJSON *v = values->child; v; v = v->next) {
            char *lit = constant_literal(v);
            if (!lit) return false;
            size_t j = 0;
            while (j < a->n_lits && strcmp(a->lits[j], lit))
                j++;
            if (j < a->n_lits) { /* once per component */
                if (j < first) a->counts[j]++;
                free(lit);
                continue;
            }
            size_t cap_counts = a->cap_lits;
            if (!qr_schema_grow(&a->counts, &cap_counts, a->n_lits, sizeof *a->counts) ||
                !qr_schema_grow(&a->lits, &a->cap_lits, a->n_lits, sizeof *a->lits)) {
                free(lit);
                return false;
            }
            a->lits[a->n_lits] = lit;
            a->counts[a->n_lits++] = 1;
        }
        return true;
    }
    bool is_object = (cJSON_IsString(type) && !strcmp(type->valuestring, "object")) ||
                     (!type && (has(comp, KW_PROPERTIES) || has(comp, KW_ADDITIONAL)));
    if (!is_object || has(comp, KW_ALL_OF) || has(comp, KW_CONST) || has(comp, KW_ENUM)) {
        qr_error(QR_ERR_INVALID_ARG,
                 "json schema: allOf component at %s is not an object or enum schema (llama.cpp's "
                 "converter would drop it)",
                 path);
        return false;
    }
    const cJSON *add = get(comp, KW_ADDITIONAL);
    if (add && !cJSON_IsFalse(add)) {
        qr_error(QR_ERR_INVALID_ARG,
                 "json schema: additionalProperties at %s is not supported in an allOf component",
                 path);
        return false;
    }
    a->n_object++;
    return check_keywords(comp, KW(KW_TYPE) | KW(KW_PROPERTIES) | KW(KW_REQUIRED) | KW(KW_ADDITIONAL),
                          "in an allOf component", path) &&
           collect_properties(comp, path, required, &a->props);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static char *visit_all_of(conv *c, const cJSON *s, const char *name, const char *rule_name,
                          const char *path) {
    const cJSON *comps = get(s, KW_ALL_OF);
    char *all_path = child_path(path, "allOf");
    if (!all_path) return NULL;
    if (!cJSON_IsArray(comps) || !comps->child) {
        qr_error(QR_ERR_INVALID_ARG, "json schema: allOf at %s must be a non-empty array of schemas",
                 path);
        free(all_path);
        return NULL;
    }
    allof_acc a = {0};
    char *res = NULL;
    int n = 0;
    for (const cJSON *comp = comps->child; comp; comp = comp->next, n++) {
        char *p = index_path(path, "allOf", n);
        bool ok = p && allof_component(c, comp, p, true, &a, 0);
        free(p);
        if (!ok) goto done;
    }
    if (a.n_enum && a.n_object) {
        qr_error(QR_ERR_INVALID_ARG, "json schema: allOf at %s mixes enum and object schemas", path);
        goto done;
    }
    if (a.n_enum) {
        size_t m = 0;
        for (size_t i = 0; i < a.n_lits; i++)
            if (a.counts[i] == n) a.lits[m++] = a.lits[i];
            else free(a.lits[i]);
        a.n_lits = m;
        if (!m) {
            qr_error(QR_ERR_INVALID_ARG, "json schema: the enums of allOf at %s have no value in common", path);
            goto done;
        }
        qsort(a.lits, m, sizeof *a.lits, cmp_str);
        qr_strbuf b = {0};
        sb_putc(&b, '(');
        for (size_t i = 0; i < m; i++) {
            if (i) sb_puts(&b, " | ");
            sb_puts(&b, a.lits[i]);
        }
        sb_putc(&b, ')');
        res = put(c, rule_name, sb_take(&b), s);
        goto done;
    }
    res = put(c, rule_name, object_rule(c, &a.props, name, false, NULL, NULL), s);
done:
    for (size_t i = 0; i < a.n_lits; i++)
        free(a.lits[i]);
    free(a.lits);
    free(a.counts);
    props_free(&a.props);
    free(all_path);
    return res;
}

/* ---- strings, arrays, integers ---- */

static char *visit_string(conv *c, const cJSON *s, const char *rule_name, const char *path,
                          uint32_t *used) {
    string_format f;
    if (!get_format(s, path, &f)) return NULL;
    const cJSON *pattern = get(s, KW_PATTERN);
    if (pattern) {
        *used |= KW(KW_PATTERN);
        if (!cJSON_IsString(pattern)) {
            qr_error(QR_ERR_INVALID_ARG, "json schema: pattern at %s must be a string", path);
            return NULL;
        }
        if (f != FMT_NONE) {
            qr_error(QR_ERR_INVALID_ARG,
                     "json schema: format next to pattern at %s is not supported", path);
            return NULL;
        }
        return qr_schema_pattern_rule(c->r, pattern->valuestring, rule_name, path);
    }
    if (f == FMT_UUID) return dup_name(add_primitive(c->r, rule_name, "uuid"));
    if (f != FMT_NONE) {
        const char *which = f == FMT_DATE ? "date-string" : f == FMT_TIME ? "time-string" : "date-time-string";
        return put(c, rule_name, dup_name(add_primitive(c->r, which, which)), s);
    }
    int min, max;
    *used |= KW(KW_MIN_LENGTH) | KW(KW_MAX_LENGTH);
    if (!get_count(s, KW_MIN_LENGTH, path, 0, &min) || !get_count(s, KW_MAX_LENGTH, path, -1, &max))
        return NULL;
    if (max >= 0 && min > max) {
        qr_error(QR_ERR_INVALID_ARG, "json schema: minLength above maxLength at %s", path);
        return NULL;
    }
    if (min > 0 || max >= 0) {
        const char *char_rule = add_primitive(c->r, "char", "char");
        if (!char_rule) return NULL;
        qr_strbuf b = {0};
        sb_puts(&b, "\"\\\"\" ");
        repetition(&b, char_rule, min, max < 0 ? UNBOUNDED : max, NULL);
        sb_puts(&b, " \"\\\"\"");
        return put(c, rule_name, sb_take(&b), s);
    }
    return dup_name(add_primitive(c->r, !strcmp(rule_name, "root") ? "root" : "string", "string"));
}

static char *visit_array(conv *c, const cJSON *s, const char *name, const char *rule_name,
                         const char *path, uint32_t *used) {
    if (has(s, KW_ITEMS) && has(s, KW_PREFIX_ITEMS)) {
        qr_error(QR_ERR_INVALID_ARG,
                 "json schema: prefixItems next to items at %s is not supported", path);
        return NULL;
    }
    int key = has(s, KW_ITEMS) ? KW_ITEMS : KW_PREFIX_ITEMS;
    const cJSON *items = get(s, key);
    *used |= KW(key);
    if (cJSON_IsArray(items)) { /* a tuple: exactly these items */
        qr_strbuf b = {0};
        sb_puts(&b, "\"[\" space ");
        int i = 0;
        for (const cJSON *it = items->child; it; it = it->next, i++) {
            char *suffix = qr_schema_strf("tuple-%d", i);
            char *iname = suffix ? sub_name(name, suffix) : NULL;
            char *ipath = index_path(path, keywords[key], i);
            char *rule = iname && ipath ? visit(c, it, iname, ipath) : NULL;
            free(suffix);
            free(iname);
            free(ipath);
            if (!rule) {
                free(b.p);
                return NULL;
            }
            if (i) sb_puts(&b, " \",\" space ");
            sb_puts(&b, rule);
            free(rule);
        }
        sb_puts(&b, " space \"]\"");
        return put(c, rule_name, sb_take(&b), s);
    }
    int min, max;
    *used |= KW(KW_MIN_ITEMS) | KW(KW_MAX_ITEMS);
    if (!get_count(s, KW_MIN_ITEMS, path, 0, &min) || !get_count(s, KW_MAX_ITEMS, path, -1, &max))
        return NULL;
    if (max >= 0 && min > max) {
        qr_error(QR_ERR_INVALID_ARG, "json schema: minItems above maxItems at %s", path);
        return NULL;
    }
    if ((!items || is_any_schema(items)) && min == 0 && max < 0)
        return dup_name(add_primitive(c->r, !strcmp(rule_name, "root") ? "root" : "array", "array"));
    char *item_rule;
    char *iname = sub_name(name, "item");
    if (!iname) return NULL;
    if (items) {
        char *ipath = child_path(path, keywords[key]);
        item_rule = ipath ? visit(c, items, iname, ipath) : NULL;
        free(ipath);
    } else {
        item_rule = put(c, iname, dup_name(add_primitive(c->r, "value", "value")), NULL);
    }
    free(iname);
    if (!item_rule) return NULL;
    qr_strbuf b = {0};
    sb_puts(&b, "\"[\" space ");
    repetition(&b, item_rule, min, max < 0 ? UNBOUNDED : max, "\",\" space");
    sb_puts(&b, " space \"]\"");
    free(item_rule);
    return put(c, rule_name, sb_take(&b), s);
}

static char *visit_integer(conv *c, const cJSON *s, const char *rule_name, const char *path) {
    int64_t min = INT64_MIN, max = INT64_MAX;
    const cJSON *v;
    if (has(s, KW_MINIMUM) && has(s, KW_EXCL_MIN)) {
        qr_error(QR_ERR_INVALID_ARG, "json schema: both minimum and exclusiveMinimum at %s", path);
        return NULL;
    }
    if (has(s, KW_MAXIMUM) && has(s, KW_EXCL_MAX)) {
        qr_error(QR_ERR_INVALID_ARG, "json schema: both maximum and exclusiveMaximum at %s", path);
        return NULL;
    }
    if ((v = get(s, KW_MINIMUM)) && !get_bound(v, "minimum", path, true, &min)) return NULL;
    if ((v = get(s, KW_EXCL_MIN))) {
        if (!get_bound(v, "exclusiveMinimum", path, false, &min)) return NULL;
        min++;
    }
    if ((v = get(s, KW_MAXIMUM)) && !get_bound(v, "maximum", path, false, &max)) return NULL;
    if ((v = get(s, KW_EXCL_MAX))) {
        if (!get_bound(v, "exclusiveMaximum", path, true, &max)) return NULL;
        max--;
    }
    if (min == INT64_MIN && max == INT64_MAX)
        return dup_name(add_primitive(c->r, !strcmp(rule_name, "root") ? "root" : "integer", "integer"));
    if (min != INT64_MIN && max != INT64_MAX && min > max) {
        qr_error(QR_ERR_INVALID_ARG, "json schema: the integer range at %s is empty (%lld > %lld)",
                 path, (long long)min, (long long)max);
        return NULL;
    }
    qr_strbuf b = {0};
    sb_putc(&b, '(');
    min_max_int(&b, min, max, 16, true);
    sb_putc(&b, ')');
    return put(c, rule_name, sb_take(&b), s);
}

/* ---- one schema ---- */

/* The rule of schema s (with type forced_type when not NULL: one member of a "type" array),
 * named after name; *used gets the keywords it applied, *ctx what kind of schema it was. */
static char *visit_node(conv *c, const cJSON *s, const char *forced_type, const char *name,
                        const char *path, uint32_t *used, const char **ctx) {
    const char *rule_name = name[0] ? name : "root";
    char *reserved = NULL;
    if (is_reserved_name(name)) {
        reserved = qr_schema_strf("%s-", name);
        if (!reserved) return NULL;
        rule_name = reserved;
    }
    char *res = NULL;
    const cJSON *type = forced_type ? NULL : get(s, KW_TYPE);
    int alt_kw = has(s, KW_ONE_OF) ? KW_ONE_OF : KW_ANY_OF;
    if (has(s, KW_REF)) {
        *used = KW(KW_REF);
        *ctx = "next to $ref";
        res = put(c, rule_name, resolve_ref(c, s, path), s);
    } else if (has(s, alt_kw)) {
        *used = KW(alt_kw);
        *ctx = alt_kw == KW_ONE_OF ? "next to oneOf" : "next to anyOf";
        res = put(c, rule_name, union_rule(c, get(s, alt_kw), name, path, keywords[alt_kw]), s);
    } else if (cJSON_IsArray(type)) { /* one alternative per type, each with every keyword */
        *used = KW(KW_TYPE);
        *ctx = "for any of the types";
        if (!type->child) {
            qr_error(QR_ERR_INVALID_ARG, "json schema: type at %s must not be empty", path);
            goto done;
        }
        if ((has(s, KW_CONST) || has(s, KW_ENUM)) && !check_values_typed(s, path)) goto done;
        qr_strbuf b = {0};
        int i = 0;
        for (const cJSON *t = type->child; t; t = t->next, i++) {
            char *alt_name = name[0] ? qr_schema_strf("%s-%d", name, i) : qr_schema_strf("alternative-%d", i);
            char *alt_path = index_path(path, "type", i);
            char *rule = NULL;
            uint32_t alt_used = 0;
            const char *alt_ctx = NULL;
            if (!cJSON_IsString(t))
                qr_error(QR_ERR_INVALID_ARG, "json schema: type at %s must be a string or an array of strings", path);
            else if (alt_name && alt_path)
                rule = visit_node(c, s, t->valuestring, alt_name, alt_path, &alt_used, &alt_ctx);
            *used |= alt_used;
            free(alt_name);
            free(alt_path);
            if (!rule) {
                free(b.p);
                goto done;
            }
            if (i) sb_puts(&b, " | ");
            sb_puts(&b, rule);
            free(rule);
        }
        res = put(c, rule_name, sb_take(&b), s);
    } else if (has(s, KW_CONST) || has(s, KW_ENUM)) {
        *used = KW(KW_CONST) | KW(KW_TYPE);
        *ctx = "next to const";
        if (!forced_type && !check_values_typed(s, path)) goto done;
        if (has(s, KW_CONST)) {
            res = put(c, rule_name, constant_literal(get(s, KW_CONST)), s);
            goto done;
        }
        *used = KW(KW_ENUM) | KW(KW_TYPE);
        *ctx = "next to enum";
        const cJSON *values = get(s, KW_ENUM);
        if (!cJSON_IsArray(values) || !values->child) {
            qr_error(QR_ERR_INVALID_ARG, "json schema: enum at %s must be a non-empty array", path);
            goto done;
        }
        qr_strbuf b = {0};
        sb_putc(&b, '(');
        for (const cJSON *v = values->child; v; v = v->next) {
            char *lit = constant_literal(v);
            if (!lit) {
                free(b.p);
                goto done;
            }
            if (v != values->child) sb_puts(&b, " | ");
            sb_puts(&b, lit);
            free(lit);
        }
        sb_putc(&b, ')');
        res = put(c, rule_name, sb_take(&b), s);
    } else {
        if (type && !cJSON_IsString(type)) {
            qr_error(QR_ERR_INVALID_ARG, "json schema: type at %s must be a string or an array of strings", path);
            goto done;
        }
        const char *t = forced_type ? forced_type : type ? type->valuestring : "";
        const cJSON *add = get(s, KW_ADDITIONAL);
        bool has_properties = has(s, KW_PROPERTIES) || (add && !cJSON_IsTrue(add));
        *used = KW(KW_TYPE);
        if (!t[0]) { /* no type: the structural keywords decide, as llama.cpp */
            string_format f;
            if (has_properties) t = "object";
            else if (has(s, KW_ALL_OF)) t = "allOf";
            else if (has(s, KW_ITEMS) || has(s, KW_PREFIX_ITEMS)) t = "array";
            else if (has(s, KW_PATTERN) || has(s, KW_MIN_LENGTH) || has(s, KW_MAX_LENGTH)) t = "string";
            else if (!get_format(s, path, &f)) goto done;
            else t = f != FMT_NONE ? "string" : "any";
        } else if ((!strcmp(t, "object") && !has_properties && has(s, KW_ALL_OF)) ||
                   (!strcmp(t, "string") && has(s, KW_ALL_OF))) {
            t = "allOf";
        }
        if (!strcmp(t, "allOf")) {
            *used |= KW(KW_ALL_OF);
            *ctx = "next to allOf";
            res = visit_all_of(c, s, name, rule_name, path);
        } else if (!strcmp(t, "object")) {
            *used |= KW(KW_PROPERTIES) | KW(KW_REQUIRED) | KW(KW_ADDITIONAL);
            *ctx = "for type \"object\"";
            res = visit_object(c, s, name, rule_name, path);
        } else if (!strcmp(t, "string")) {
            *ctx = "for type \"string\"";
            res = visit_string(c, s, rule_name, path, used);
        } else if (!strcmp(t, "array")) {
            *ctx = "for type \"array\"";
            res = visit_array(c, s, name, rule_name, path, used);
        } else if (!strcmp(t, "integer")) {
            *used |= KW(KW_MINIMUM) | KW(KW_MAXIMUM) | KW(KW_EXCL_MIN) | KW(KW_EXCL_MAX);
            *ctx = "for type \"integer\"";
            res = visit_integer(c, s, rule_name, path);
        } else if (!strcmp(t, "number") || !strcmp(t, "boolean") || !strcmp(t, "null")) {
            *ctx = !strcmp(t, "number") ? "for type \"number\" (only for \"integer\")"
                   : !strcmp(t, "boolean") ? "for type \"boolean\"" : "for type \"null\"";
            res = dup_name(add_primitive(c->r, !strcmp(rule_name, "root") ? "root" : t, t));
        } else if (!strcmp(t, "any")) {
            *ctx = "in a schema without a type";
            res = put(c, rule_name, dup_name(add_primitive(c->r, "value", "value")), s);
        } else {
            qr_error(QR_ERR_INVALID_ARG, "json schema: unrecognized type \"%s\" at %s", t, path);
        }
    }
done:
    free(reserved);
    return res;
}

static char *visit(conv *c, const cJSON *s, const char *name, const char *path) {
    if (!cJSON_IsObject(s)) {
        qr_error(QR_ERR_INVALID_ARG, "json schema: schema at %s must be an object", path);
        return NULL;
    }
    if (c->depth >= QR_SCHEMA_MAX_DEPTH) {
        qr_error(QR_ERR_INVALID_ARG, "json schema: schemas nest deeper than %d at %s",
                 QR_SCHEMA_MAX_DEPTH, path);
        return NULL;
    }
    if (++c->n_visits > QR_SCHEMA_MAX_VISITS) {
        qr_error(QR_ERR_INVALID_ARG, "json schema: the schema at %s takes more than %d schema visits to convert", path, QR_SCHEMA_MAX_VISITS);
        return NULL;
    }
    if (!check_duplicates(s, path)) return NULL;
    c->depth++;
    uint32_t used = 0;
    const char *ctx = "here";
    char *res = visit_node(c, s, NULL, name, path, &used, &ctx);
    c->depth--;
    if (res && !check_keywords(s, used, ctx, path)) {
        free(res);
        return NULL;
    }
    return res;
}

qr_status qr_json_schema_rules(qr_schema_rules *r, const char *name, const struct cJSON *schema,
                               const char **rule) {
    if (!r || !schema) return qr_error(QR_ERR_INVALID_ARG, "json schema: NULL argument");
    conv c = {.r = r, .root = schema};
    char *res = visit(&c, schema, name ? name : "", "#");
    for (size_t i = 0; i < c.n_refs; i++)
        free(c.refs[i].ref);
    free(c.refs);
    if (!res) return qr_last_error()[0] ? QR_ERR_INVALID_ARG : qr_error(QR_ERR_INVALID_ARG, "json schema: conversion failed");
    long i = qr_schema_rules_find(r, res);
    free(res);
    if (rule) *rule = i >= 0 ? r->rules[i].name : NULL;
    return QR_OK;
}

qr_status qr_json_schema_to_grammar_cjson(const struct cJSON *schema, char **out) {
    if (!out) return qr_error(QR_ERR_INVALID_ARG, "json schema: NULL argument");
    *out = NULL;
    qr_schema_rules *r = qr_schema_rules_create();
    if (!r) return QR_ERR_NOMEM;
    qr_status st = qr_json_schema_rules(r, NULL, schema, NULL);
    if (st == QR_OK) st = qr_schema_rules_text(r, out);
    qr_schema_rules_free(r);
    return st;
}

/* the offset of the first byte that is not well-formed UTF-8, or n */
static size_t utf8_valid_prefix(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t len = c < 0x80 ? 1 : (c >= 0xc2 && c <= 0xdf) ? 2 : (c >> 4) == 0xe ? 3 : (c >= 0xf0 && c <= 0xf4) ? 4 : 0;
        if (!len || i + len > n) return i;
        for (size_t k = 1; k < len; k++)
            if ((s[i + k] & 0xc0) != 0x80) return i;
        if (len == 3 && ((c == 0xe0 && s[i + 1] < 0xa0) || (c == 0xed && s[i + 1] >= 0xa0))) return i;
        if (len == 4 && ((c == 0xf0 && s[i + 1] < 0x90) || (c == 0xf4 && s[i + 1] >= 0x90))) return i;
        i += len;
    }
    return n;
}

qr_status qr_json_schema_to_grammar(const char *schema, size_t n, char **out) {
    qr_error_clear();
    if (!out || (!schema && n)) return qr_error(QR_ERR_INVALID_ARG, "json schema: NULL argument");
    *out = NULL;
    size_t bad = utf8_valid_prefix((const unsigned char *)schema, n);
    if (bad < n)
        return qr_error(QR_ERR_INVALID_ARG, "json schema: not valid UTF-8 at byte %zu", bad);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(schema ? schema : "", n, &end, false);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = at && schema && at >= schema && at <= schema + n ? (size_t)(at - schema) : 0;
        return qr_error(QR_ERR_INVALID_ARG, "json schema: not valid JSON (at byte %zu)", off);
    }
    size_t off = (size_t)(end - schema);
    while (off < n && (schema[off] == ' ' || schema[off] == '\t' || schema[off] == '\n' || schema[off] == '\r'))
        off++;
    qr_status st;
    if (off < n) st = qr_error(QR_ERR_INVALID_ARG, "json schema: not valid JSON (text after the value at byte %zu)", off);
    else st = qr_json_schema_to_grammar_cjson(root, out);
    cJSON_Delete(root);
    return st;
}
