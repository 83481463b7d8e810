/* json_schema_pattern.c - a string schema's "pattern" (an ECMAScript regex anchored with ^ and $)
 * as GBNF, in the language of llama.cpp's _visit_pattern (common/json-schema-to-grammar.cpp):
 * literals, ".", [classes] copied as GBNF classes, groups (also (?:...)), "|", and the quantifiers
 * * + ? {m} {m,} {m,n}. Where llama.cpp gives up and accepts any string (no anchors, \d \w \s
 * and other escapes GBNF lacks, lookarounds, ...) this fails with a message instead. */
#include "grammar/json_schema_int.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct item {
    char *text;
    bool literal; /* text is the inside of a "..." literal (may merge with its neighbours) */
} item;

typedef struct seq {
    item *items;
    size_t n, cap;
} seq;

typedef struct sub_rule {
    char *body;
    char *name;
} sub_rule;

typedef struct pat {
    struct qr_schema_rules *r;
    const char *p; /* the pattern without its anchors */
    size_t i, n;
    int depth;
    const char *name, *path, *pattern;
    sub_rule *subs; /* the rules made for repeated groups and classes, by body */
    size_t n_subs, cap_subs;
    bool failed;
} pat;

static void fail(pat *ps, bool invalid, const char *why) {
    if (ps->failed) return;
    ps->failed = true;
    qr_error(QR_ERR_INVALID_ARG, "json schema: %s pattern \"%s\" at %s (%s)",
             invalid ? "invalid" : "unsupported", ps->pattern, ps->path, why);
}

static void oom(pat *ps) {
    if (ps->failed) return;
    ps->failed = true;
    qr_error(QR_ERR_NOMEM, "json schema: out of memory");
}

static void sb_str(qr_strbuf *b, const char *s) { qr_strbuf_append(b, s, strlen(s)); }

static char *take(pat *ps, qr_strbuf *b) {
    if (b->oom || !b->p) {
        if (b->oom) oom(ps);
        free(b->p);
        char *e = b->oom ? NULL : calloc(1, 1);
        if (!e && !b->oom) oom(ps);
        return e;
    }
    return b->p;
}

static bool seq_push(pat *ps, seq *s, char *text, bool literal) {
    if (!text) {
        oom(ps);
        return false;
    }
    if (!qr_schema_grow(&s->items, &s->cap, s->n, sizeof *s->items)) {
        free(text);
        ps->failed = true;
        return false;
    }
    s->items[s->n++] = (item){text, literal};
    return true;
}

static void seq_free(seq *s) {
    for (size_t i = 0; i < s->n; i++)
        free(s->items[i].text);
    free(s->items);
}

static char *dupn(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* an item as GBNF: a literal in quotes */
static char *item_rule(const item *it) {
    return it->literal ? qr_schema_strf("\"%s\"", it->text) : qr_schema_strf("%s", it->text);
}

/* the items joined by spaces, neighbouring literals merged into one */
static char *join_seq(pat *ps, seq *s) {
    qr_strbuf b = {0};
    bool first = true, in_literal = false;
    for (size_t i = 0; i < s->n; i++) {
        const item *it = &s->items[i];
        if (it->literal) {
            if (!in_literal) {
                if (!first) sb_str(&b, " ");
                sb_str(&b, "\"");
                in_literal = true;
            }
            sb_str(&b, it->text);
        } else {
            if (in_literal) sb_str(&b, "\"");
            in_literal = false;
            if (!first) sb_str(&b, " ");
            sb_str(&b, it->text);
        }
        first = false;
    }
    if (in_literal) sb_str(&b, "\"");
    return take(ps, &b);
}

/* the length of a GBNF-compatible escape at p[i] (\x.. \u.... \U........ \t \r \n \\ \" \[ \]
 * \-), 0 for anything else (llama.cpp's gbnf_escape_length) */
static size_t escape_length(const char *p, size_t i, size_t n) {
    if (i + 1 >= n || p[i] != '\\') return 0;
    size_t n_hex;
    switch (p[i + 1]) {
    case 'x': n_hex = 2; break;
    case 'u': n_hex = 4; break;
    case 'U': n_hex = 8; break;
    case 't': case 'r': case 'n': case '\\': case '"': case '[': case ']': case '-': return 2;
    default: return 0;
    }
    if (i + 2 + n_hex > n) return 0;
    for (size_t k = i + 2; k < i + 2 + n_hex; k++) {
        char h = p[k];
        if (!((h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') || (h >= 'A' && h <= 'F'))) return 0;
    }
    return 2 + n_hex;
}

static bool is_special(char c) { return c && strchr("|.()[]{}*+?^$", c) != NULL; }

/* one count of {m,n}: std::stoi's reading (spaces, a sign, digits, anything after ignored) */
static bool parse_count(const char *s, size_t n, int *out) {
    char *tmp = dupn(s, n), *end;
    if (!tmp) return false;
    errno = 0;
    long v = strtol(tmp, &end, 10);
    bool ok = end != tmp && errno == 0 && v >= 0 && v <= INT_MAX;
    free(tmp);
    *out = (int)v;
    return ok;
}

/* x{min,max} with max INT_MAX for none (llama.cpp's build_repetition without a separator) */
static char *repeat(const char *x, int min, int max) {
    if (max == 0) return qr_schema_strf("%s", "");
    if (min == 0 && max == 1) return qr_schema_strf("%s?", x);
    if (max == INT_MAX) {
        if (min == 1) return qr_schema_strf("%s+", x);
        if (min == 0) return qr_schema_strf("%s*", x);
        return qr_schema_strf("%s{%d,}", x, min);
    }
    return qr_schema_strf("%s{%d,%d}", x, min, max);
}

/* the rule named name-N for a repeated non-literal item, once per body */
static char *sub_rule_for(pat *ps, const char *body) {
    for (size_t i = 0; i < ps->n_subs; i++)
        if (!strcmp(ps->subs[i].body, body)) return qr_schema_strf("%s", ps->subs[i].name);
    if (!qr_schema_grow(&ps->subs, &ps->cap_subs, ps->n_subs, sizeof *ps->subs)) {
        ps->failed = true;
        return NULL;
    }
    char *want = qr_schema_strf("%s-%zu", ps->name, ps->n_subs + 1);
    const char *got = want ? qr_schema_rules_put(ps->r, want, body) : NULL;
    free(want);
    char *name = got ? qr_schema_strf("%s", got) : NULL;
    char *body_copy = name ? qr_schema_strf("%s", body) : NULL;
    if (!body_copy) {
        free(name);
        ps->failed = true; /* qr_error already set */
        return NULL;
    }
    ps->subs[ps->n_subs++] = (sub_rule){body_copy, name};
    return qr_schema_strf("%s", name);
}

/* the {m,n} at p[i] applied to the last item */
static bool apply_braces(pat *ps, seq *s) {
    size_t start = ++ps->i;
    while (ps->i < ps->n && ps->p[ps->i] != '}')
        ps->i++;
    if (ps->i >= ps->n) {
        fail(ps, false, "unterminated curly brackets");
        return false;
    }
    const char *body = ps->p + start;
    size_t len = ps->i - start;
    ps->i++;
    const char *comma = memchr(body, ',', len);
    int min = 0, max = INT_MAX;
    if (comma && memchr(comma + 1, ',', len - (size_t)(comma + 1 - body))) {
        fail(ps, false, "wrong number of values in curly brackets");
        return false;
    }
    bool ok;
    if (!comma) {
        ok = parse_count(body, len, &min);
        max = min;
    } else {
        size_t n1 = (size_t)(comma - body), n2 = len - n1 - 1;
        ok = (n1 == 0 || parse_count(body, n1, &min)) && (n2 == 0 || parse_count(comma + 1, n2, &max));
    }
    if (!ok) {
        fail(ps, false, "invalid number in curly brackets");
        return false;
    }
    if (max < min) {
        fail(ps, true, "numbers out of order in curly brackets");
        return false;
    }
    if (!s->n || (!s->items[s->n - 1].literal && !strcmp(s->items[s->n - 1].text, "|"))) {
        fail(ps, true, "nothing to repeat");
        return false;
    }
    item *last = &s->items[s->n - 1];
    char *x;
    if (last->literal) x = qr_schema_strf("\"%s\"", last->text);
    else x = sub_rule_for(ps, last->text);
    char *rep = x ? repeat(x, min, max) : NULL;
    free(x);
    if (!rep) {
        oom(ps);
        return false;
    }
    free(last->text);
    last->text = rep;
    last->literal = false;
    return true;
}

/* a [...] class, copied with its escapes checked */
static char *char_class(pat *ps) {
    qr_strbuf b = {0};
    qr_strbuf_append(&b, "[", 1);
    ps->i++;
    while (ps->i < ps->n && ps->p[ps->i] != ']') {
        if (ps->p[ps->i] == '\\') {
            size_t len = escape_length(ps->p, ps->i, ps->n);
            if (!len) {
                char why[64];
                snprintf(why, sizeof why, "unsupported escape in character class: \\%c",
                         ps->i + 1 < ps->n ? ps->p[ps->i + 1] : '?');
                fail(ps, false, why);
                free(b.p);
                return NULL;
            }
            qr_strbuf_append(&b, ps->p + ps->i, len);
            ps->i += len;
        } else {
            qr_strbuf_append(&b, ps->p + ps->i, 1);
            ps->i++;
        }
    }
    if (ps->i >= ps->n) {
        fail(ps, true, "unterminated character class");
        free(b.p);
        return NULL;
    }
    ps->i++;
    qr_strbuf_append(&b, "]", 1);
    return take(ps, &b);
}

/* the bytes of the UTF-8 character at p[i] (1 for a byte that does not start a whole one) */
static size_t utf8_width(const char *p, size_t i, size_t n) {
    unsigned char c = (unsigned char)p[i];
    size_t w = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
    if (i + w > n) return 1;
    for (size_t k = 1; k < w; k++)
        if (((unsigned char)p[i + k] & 0xc0) != 0x80) return 1;
    return w;
}

/* a run of literal characters; a character a quantifier follows stands alone (so the
 * quantifier applies to it), as llama.cpp's literal scan */
static char *literal_run(pat *ps) {
    qr_strbuf b = {0};
    size_t w;
    const char *p = ps->p;
    while (ps->i < ps->n) {
        size_t i = ps->i;
        if (p[i] == '\\') {
            if (i == ps->n - 1) {
                fail(ps, true, "trailing backslash");
                free(b.p);
                return NULL;
            }
            char next = p[i + 1];
            if (is_special(next)) {
                qr_strbuf_append(&b, &next, 1);
                ps->i += 2;
            } else {
                size_t len = escape_length(p, i, ps->n);
                if (!len) {
                    char why[64];
                    snprintf(why, sizeof why, "unsupported escape: \\%c", next);
                    fail(ps, false, why);
                    free(b.p);
                    return NULL;
                }
                qr_strbuf_append(&b, p + i, len);
                ps->i += len;
            }
        } else if (p[i] == '"') {
            qr_strbuf_append(&b, "\\\"", 2);
            ps->i++;
        } else if (!is_special(p[i]) && (i + (w = utf8_width(p, i, ps->n)) >= ps->n || b.n == 0 ||
                                         p[i + w] == '.' || !is_special(p[i + w]))) {
            /* a UTF-8 character is one unit (llama.cpp splits it, and its grammar then fails) */
            if (p[i] == '\n') qr_strbuf_append(&b, "\\n", 2);
            else if (p[i] == '\r') qr_strbuf_append(&b, "\\r", 2);
            else qr_strbuf_append(&b, p + i, w);
            ps->i += w;
        } else {
            break;
        }
    }
    if (!b.n && !b.oom) {
        char why[64];
        snprintf(why, sizeof why, "unsupported character: %c", p[ps->i]);
        fail(ps, false, why);
        free(b.p);
        return NULL;
    }
    return take(ps, &b);
}

/* a sequence up to the ')' that closes the current group (or the end), as one rule text */
static char *transform(pat *ps) {
    seq s = {0};
    const char *p = ps->p;
    while (ps->i < ps->n && !ps->failed) {
        char c = p[ps->i];
        if (c == '.') {
            const char *dot = qr_schema_rules_put(ps->r, "dot", "[^\\x0A\\x0D]");
            if (!dot) ps->failed = true;
            else seq_push(ps, &s, qr_schema_strf("%s", dot), false);
            ps->i++;
        } else if (c == '(') {
            ps->i++;
            if (ps->i < ps->n && p[ps->i] == '?') {
                if (ps->i + 1 < ps->n && p[ps->i + 1] == ':') ps->i += 2;
                else {
                    fail(ps, false, "unsupported group syntax");
                    break;
                }
            }
            if (++ps->depth > QR_SCHEMA_MAX_PATTERN_DEPTH) {
                fail(ps, false, "pattern nesting too deep");
                break;
            }
            char *inner = transform(ps);
            if (!inner) break;
            seq_push(ps, &s, qr_schema_strf("(%s)", inner), false);
            free(inner);
        } else if (c == ')') {
            ps->i++;
            if (ps->depth == 0) {
                fail(ps, true, "unbalanced parentheses");
                break;
            }
            ps->depth--;
            char *res = join_seq(ps, &s);
            seq_free(&s);
            return res;
        } else if (c == '^' || c == '$') {
            fail(ps, false, "anchor inside the pattern");
        } else if (c == '[') {
            char *cls = char_class(ps);
            if (cls) seq_push(ps, &s, cls, false);
        } else if (c == '|') {
            seq_push(ps, &s, qr_schema_strf("|"), false);
            ps->i++;
        } else if (c == '*' || c == '+' || c == '?') {
            if (!s.n || (!s.items[s.n - 1].literal && !strcmp(s.items[s.n - 1].text, "|"))) {
                fail(ps, true, "nothing to repeat");
                break;
            }
            item *last = &s.items[s.n - 1];
            char *rule = item_rule(last);
            char *q = rule ? qr_schema_strf("%s%c", rule, c) : NULL;
            free(rule);
            if (!q) {
                oom(ps);
                break;
            }
            free(last->text);
            last->text = q;
            last->literal = false;
            ps->i++;
        } else if (c == '{') {
            apply_braces(ps, &s);
        } else {
            char *lit = literal_run(ps);
            if (lit) seq_push(ps, &s, lit, true);
        }
    }
    char *res = ps->failed ? NULL : join_seq(ps, &s);
    seq_free(&s);
    return res;
}

char *qr_schema_pattern_rule(struct qr_schema_rules *r, const char *pattern, const char *name,
                             const char *path) {
    size_t len = strlen(pattern);
    pat ps = {.r = r, .name = name, .path = path, .pattern = pattern};
    if (len < 2 || pattern[0] != '^' || pattern[len - 1] != '$') {
        fail(&ps, false, "not anchored with '^' and '$'");
        return NULL;
    }
    ps.p = pattern + 1;
    ps.n = len - 2;
    char *rule = transform(&ps);
    if (rule && ps.depth != 0) {
        fail(&ps, true, "unbalanced parentheses");
        free(rule);
        rule = NULL;
    }
    char *res = NULL;
    if (rule) {
        char *body = qr_schema_strf("\"\\\"\" (%s) \"\\\"\"", rule);
        const char *got = body ? qr_schema_rules_put(r, name, body) : NULL;
        res = got ? qr_schema_strf("%s", got) : NULL;
        free(body);
    }
    free(rule);
    for (size_t i = 0; i < ps.n_subs; i++) {
        free(ps.subs[i].body);
        free(ps.subs[i].name);
    }
    free(ps.subs);
    return res;
}
