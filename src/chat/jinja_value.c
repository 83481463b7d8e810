/* jinja_value.c - the render arena, values, and their Python-compatible printing: str() as
 * Python prints it (None, True, ['a', 1], {'k': 0.5}) and json.dumps() for the tojson filter. */
#include "chat/jinja_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- arena ---- */

struct jblock {
    jblock *next;
    size_t size, used;
    max_align_t data[];
};

void *ja_alloc(jctx *c, size_t n) {
    jarena *a = &c->arena;
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    if (n == 0) n = sizeof(max_align_t);
    if (a->used + n > a->limit || a->used + n < a->used)
        jfail(c, 0, "template needs more than %zu MiB of memory", a->limit >> 20);
    jblock *b = a->head;
    if (!b || b->size - b->used < n) {
        size_t size = n > 65536 ? n : 65536;
        b = malloc(sizeof *b + size);
        if (!b) jfail(c, 0, "out of memory while rendering a template");
        b->size = size;
        b->used = 0;
        b->next = a->head;
        a->head = b;
    }
    void *p = (char *)b->data + b->used;
    b->used += n;
    a->used += n;
    memset(p, 0, n);
    return p;
}

char *ja_strndup(jctx *c, const char *s, size_t n) {
    char *p = ja_alloc(c, n + 1);
    if (n) memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void ja_free_all(jarena *a) {
    jblock *b = a->head;
    while (b) {
        jblock *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
    a->used = 0;
}

_Noreturn void jfail(jctx *c, int line, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (line > 0)
        qr_error(QR_ERR_TEMPLATE, "chat template, line %d: %s", line, msg);
    else
        qr_error(QR_ERR_TEMPLATE, "chat template: %s", msg);
    longjmp(c->fail, 1);
}

/* ---- buffers ---- */

void jb_put(jctx *c, jbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = ja_alloc(c, cap);
        if (b->n) memcpy(p, b->p, b->n);
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

void jb_puts(jctx *c, jbuf *b, const char *s) {
    jb_put(c, b, s, strlen(s));
}

void jb_putc(jctx *c, jbuf *b, char ch) {
    jb_put(c, b, &ch, 1);
}

/* ---- constructors ---- */

jv jv_undef(const char *name) {
    return (jv){.k = JV_UNDEF, .u.undef_name = name};
}
jv jv_none(void) {
    return (jv){.k = JV_NONE};
}
jv jv_bool(bool b) {
    return (jv){.k = JV_BOOL, .u.b = b};
}
jv jv_int(int64_t i) {
    return (jv){.k = JV_INT, .u.i = i};
}
jv jv_float(double f) {
    return (jv){.k = JV_FLOAT, .u.f = f};
}
jv jv_str(jctx *c, const char *s, size_t n) {
    jv v = {.k = JV_STR};
    v.u.s.p = ja_strndup(c, s, n);
    v.u.s.n = n;
    return v;
}
jv jv_cstr(const char *s) {
    jv v = {.k = JV_STR};
    v.u.s.p = s;
    v.u.s.n = strlen(s);
    return v;
}
jv jv_strbuf(jbuf *b) {
    jv v = {.k = JV_STR};
    v.u.s.p = b->p ? b->p : "";
    v.u.s.n = b->n;
    return v;
}
jv jv_list(jctx *c) {
    jv v = {.k = JV_LIST};
    v.u.l = ja_alloc(c, sizeof *v.u.l);
    return v;
}
jv jv_dict(jctx *c) {
    jv v = {.k = JV_DICT};
    v.u.d = ja_alloc(c, sizeof *v.u.d);
    return v;
}

void jl_push(jctx *c, jlist *l, jv v) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        jv *items = ja_alloc(c, cap * sizeof *items);
        if (l->n) memcpy(items, l->items, l->n * sizeof *items);
        l->items = items;
        l->cap = cap;
    }
    l->items[l->n++] = v;
}

jv *jd_get(jdict *d, jv key) {
    for (size_t i = 0; i < d->n; i++)
        if (jv_equal(d->keys[i], key)) return &d->vals[i];
    return NULL;
}

jv *jd_gets(jdict *d, const char *key) {
    for (size_t i = 0; i < d->n; i++)
        if (jv_is_str(d->keys[i], key)) return &d->vals[i];
    return NULL;
}

void jd_set(jctx *c, jdict *d, jv key, jv val) {
    jv *slot = jd_get(d, key);
    if (slot) {
        *slot = val;
        return;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8;
        jv *keys = ja_alloc(c, cap * sizeof *keys);
        jv *vals = ja_alloc(c, cap * sizeof *vals);
        if (d->n) {
            memcpy(keys, d->keys, d->n * sizeof *keys);
            memcpy(vals, d->vals, d->n * sizeof *vals);
        }
        d->keys = keys;
        d->vals = vals;
        d->cap = cap;
    }
    d->keys[d->n] = key;
    d->vals[d->n] = val;
    d->n++;
}

/* ---- predicates ---- */

bool jv_truthy(jv v) {
    switch (v.k) {
    case JV_UNDEF:
    case JV_NONE:
        return false;
    case JV_BOOL:
        return v.u.b;
    case JV_INT:
        return v.u.i != 0;
    case JV_FLOAT:
        return v.u.f != 0.0;
    case JV_STR:
        return v.u.s.n > 0;
    case JV_LIST:
        return v.u.l->n > 0;
    case JV_DICT:
        return v.u.d->n > 0;
    case JV_FUNC:
        return true;
    }
    return false;
}

bool jv_is_str(jv v, const char *s) {
    size_t n = strlen(s);
    return v.k == JV_STR && v.u.s.n == n && memcmp(v.u.s.p, s, n) == 0;
}

static bool is_num(jv v) {
    return v.k == JV_INT || v.k == JV_FLOAT || v.k == JV_BOOL;
}
static double num_of(jv v) {
    return v.k == JV_FLOAT ? v.u.f : v.k == JV_INT ? (double)v.u.i : (double)v.u.b;
}

bool jv_equal(jv a, jv b) {
    if (is_num(a) && is_num(b)) {
        if (a.k != JV_FLOAT && b.k != JV_FLOAT) {
            int64_t x = a.k == JV_INT ? a.u.i : a.u.b, y = b.k == JV_INT ? b.u.i : b.u.b;
            return x == y;
        }
        return num_of(a) == num_of(b);
    }
    if (a.k != b.k) return false;
    switch (a.k) {
    case JV_UNDEF:
    case JV_NONE:
        return true;
    case JV_STR:
        return a.u.s.n == b.u.s.n && memcmp(a.u.s.p, b.u.s.p, a.u.s.n) == 0;
    case JV_LIST:
        if (a.u.l->n != b.u.l->n) return false;
        for (size_t i = 0; i < a.u.l->n; i++)
            if (!jv_equal(a.u.l->items[i], b.u.l->items[i])) return false;
        return true;
    case JV_DICT:
        if (a.u.d->n != b.u.d->n) return false;
        for (size_t i = 0; i < a.u.d->n; i++) {
            jv *o = jd_get(b.u.d, a.u.d->keys[i]);
            if (!o || !jv_equal(a.u.d->vals[i], *o)) return false;
        }
        return true;
    case JV_FUNC:
        return a.u.fn == b.u.fn;
    default:
        return false;
    }
}

int jv_compare(jctx *c, int line, jv a, jv b) {
    if (is_num(a) && is_num(b)) {
        double x = num_of(a), y = num_of(b);
        return x < y ? -1 : x > y ? 1 : 0;
    }
    if (a.k == JV_STR && b.k == JV_STR) {
        size_t n = a.u.s.n < b.u.s.n ? a.u.s.n : b.u.s.n;
        int r = memcmp(a.u.s.p, b.u.s.p, n);
        if (r) return r < 0 ? -1 : 1;
        return a.u.s.n < b.u.s.n ? -1 : a.u.s.n > b.u.s.n ? 1 : 0;
    }
    if (a.k == JV_LIST && b.k == JV_LIST) {
        for (size_t i = 0; i < a.u.l->n && i < b.u.l->n; i++) {
            int r = jv_compare(c, line, a.u.l->items[i], b.u.l->items[i]);
            if (r) return r;
        }
        return a.u.l->n < b.u.l->n ? -1 : a.u.l->n > b.u.l->n ? 1 : 0;
    }
    jfail(c, line, "cannot compare %s with %s", jv_type_name(a), jv_type_name(b));
}

const char *jv_type_name(jv v) {
    switch (v.k) {
    case JV_UNDEF:
        return "undefined";
    case JV_NONE:
        return "NoneType";
    case JV_BOOL:
        return "bool";
    case JV_INT:
        return "int";
    case JV_FLOAT:
        return "float";
    case JV_STR:
        return "str";
    case JV_LIST:
        return "list";
    case JV_DICT:
        return "dict";
    case JV_FUNC:
        return "function";
    }
    return "?";
}

/* ---- printing ---- */

/* Python's repr(float): the shortest digits that round-trip, "1.0" for integral values,
 * exponent form below 1e-4 and from 1e16. */
static void put_float(jctx *c, jbuf *b, double f) {
    if (isnan(f)) {
        jb_puts(c, b, "nan");
        return;
    }
    if (isinf(f)) {
        jb_puts(c, b, f < 0 ? "-inf" : "inf");
        return;
    }
    char t[64];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(t, sizeof t, "%.*e", prec - 1, f);
        if (strtod(t, NULL) == f) break;
    }
    /* t is d.ddde[+-]XX: rebuild Python-style */
    char mant[32];
    int exp10 = 0;
    char *e = strchr(t, 'e');
    size_t ml = (size_t)(e - t);
    memcpy(mant, t, ml);
    mant[ml] = '\0';
    exp10 = atoi(e + 1);
    bool neg = mant[0] == '-';
    char digits[32];
    size_t nd = 0;
    for (char *p = mant + neg; *p; p++)
        if (*p != '.') digits[nd++] = *p;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = '\0';
    if (neg) jb_putc(c, b, '-');
    if (exp10 < -4 || exp10 >= 16) {
        jb_putc(c, b, digits[0]);
        if (nd > 1) {
            jb_putc(c, b, '.');
            jb_put(c, b, digits + 1, nd - 1);
        }
        snprintf(t, sizeof t, "e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
        jb_puts(c, b, t);
    } else if (exp10 < 0) {
        jb_puts(c, b, "0.");
        for (int k = 0; k < -exp10 - 1; k++)
            jb_putc(c, b, '0');
        jb_put(c, b, digits, nd);
    } else {
        size_t ip = (size_t)exp10 + 1;
        for (size_t k = 0; k < ip; k++)
            jb_putc(c, b, k < nd ? digits[k] : '0');
        jb_putc(c, b, '.');
        if (nd > ip)
            jb_put(c, b, digits + ip, nd - ip);
        else
            jb_putc(c, b, '0');
    }
}

static void put_repr_str(jctx *c, jbuf *b, const char *s, size_t n) {
    bool has_sq = memchr(s, '\'', n) != NULL, has_dq = memchr(s, '"', n) != NULL;
    char q = has_sq && !has_dq ? '"' : '\'';
    jb_putc(c, b, q);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        char t[8];
        if (ch == (unsigned char)q || ch == '\\') {
            jb_putc(c, b, '\\');
            jb_putc(c, b, (char)ch);
        } else if (ch == '\n') {
            jb_puts(c, b, "\\n");
        } else if (ch == '\r') {
            jb_puts(c, b, "\\r");
        } else if (ch == '\t') {
            jb_puts(c, b, "\\t");
        } else if (ch < 0x20 || ch == 0x7f) {
            snprintf(t, sizeof t, "\\x%02x", ch);
            jb_puts(c, b, t);
        } else {
            jb_putc(c, b, (char)ch);
        }
    }
    jb_putc(c, b, q);
}

static void put_repr(jctx *c, jbuf *b, jv v, int level) {
    if (level > 100) jfail(c, 0, "value nested too deeply to print");
    if (v.k == JV_STR) {
        put_repr_str(c, b, v.u.s.p, v.u.s.n);
    } else if (v.k == JV_LIST) {
        jb_putc(c, b, '[');
        for (size_t i = 0; i < v.u.l->n; i++) {
            if (i) jb_puts(c, b, ", ");
            put_repr(c, b, v.u.l->items[i], level + 1);
        }
        jb_putc(c, b, ']');
    } else if (v.k == JV_DICT) {
        if (v.u.d->is_namespace) {
            jb_puts(c, b, "<Namespace>");
            return;
        }
        jb_putc(c, b, '{');
        for (size_t i = 0; i < v.u.d->n; i++) {
            if (i) jb_puts(c, b, ", ");
            put_repr(c, b, v.u.d->keys[i], level + 1);
            jb_puts(c, b, ": ");
            put_repr(c, b, v.u.d->vals[i], level + 1);
        }
        jb_putc(c, b, '}');
    } else {
        jv_to_str(c, b, v);
    }
}

void jv_to_str(jctx *c, jbuf *b, jv v) {
    char t[32];
    switch (v.k) {
    case JV_UNDEF:
        break;
    case JV_NONE:
        jb_puts(c, b, "None");
        break;
    case JV_BOOL:
        jb_puts(c, b, v.u.b ? "True" : "False");
        break;
    case JV_INT:
        snprintf(t, sizeof t, "%lld", (long long)v.u.i);
        jb_puts(c, b, t);
        break;
    case JV_FLOAT:
        put_float(c, b, v.u.f);
        break;
    case JV_STR:
        jb_put(c, b, v.u.s.p, v.u.s.n);
        break;
    case JV_LIST:
    case JV_DICT:
        put_repr(c, b, v, 0);
        break;
    case JV_FUNC:
        jb_puts(c, b, "<function>");
        break;
    }
}

jv jv_stringify(jctx *c, jv v) {
    if (v.k == JV_STR) return v;
    jbuf b = {0};
    jv_to_str(c, &b, v);
    return jv_strbuf(&b);
}

static void put_json_str(jctx *c, jbuf *b, const char *s, size_t n) {
    jb_putc(c, b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        char t[8];
        switch (ch) {
        case '"':
            jb_puts(c, b, "\\\"");
            break;
        case '\\':
            jb_puts(c, b, "\\\\");
            break;
        case '\n':
            jb_puts(c, b, "\\n");
            break;
        case '\r':
            jb_puts(c, b, "\\r");
            break;
        case '\t':
            jb_puts(c, b, "\\t");
            break;
        case '\b':
            jb_puts(c, b, "\\b");
            break;
        case '\f':
            jb_puts(c, b, "\\f");
            break;
        default:
            if (ch < 0x20) {
                snprintf(t, sizeof t, "\\u%04x", ch);
                jb_puts(c, b, t);
            } else {
                jb_putc(c, b, (char)ch);
            }
        }
    }
    jb_putc(c, b, '"');
}

static void json_newline(jctx *c, jbuf *b, int indent, int level) {
    jb_putc(c, b, '\n');
    for (int k = 0; k < indent * level; k++)
        jb_putc(c, b, ' ');
}

void jv_to_json(jctx *c, int line, jbuf *b, jv v, int indent, const char *item_sep,
                const char *key_sep, bool sort_keys, int level) {
    if (level > 100) jfail(c, line, "tojson: value nested too deeply");
    switch (v.k) {
    case JV_UNDEF:
        jfail(c, line, "tojson: Object of type Undefined is not JSON serializable");
    case JV_FUNC:
        jfail(c, line, "tojson: Object of type function is not JSON serializable");
    case JV_NONE:
        jb_puts(c, b, "null");
        break;
    case JV_BOOL:
        jb_puts(c, b, v.u.b ? "true" : "false");
        break;
    case JV_INT:
        jv_to_str(c, b, v);
        break;
    case JV_FLOAT:
        if (isnan(v.u.f))
            jb_puts(c, b, "NaN");
        else if (isinf(v.u.f))
            jb_puts(c, b, v.u.f < 0 ? "-Infinity" : "Infinity");
        else
            put_float(c, b, v.u.f);
        break;
    case JV_STR:
        put_json_str(c, b, v.u.s.p, v.u.s.n);
        break;
    case JV_LIST:
        if (v.u.l->n == 0) {
            jb_puts(c, b, "[]");
            break;
        }
        jb_putc(c, b, '[');
        for (size_t i = 0; i < v.u.l->n; i++) {
            if (i) jb_puts(c, b, item_sep);
            if (indent >= 0) json_newline(c, b, indent, level + 1);
            jv_to_json(c, line, b, v.u.l->items[i], indent, item_sep, key_sep, sort_keys,
                       level + 1);
        }
        if (indent >= 0) json_newline(c, b, indent, level);
        jb_putc(c, b, ']');
        break;
    case JV_DICT: {
        jdict *d = v.u.d;
        if (d->n == 0) {
            jb_puts(c, b, "{}");
            break;
        }
        size_t *order = ja_alloc(c, d->n * sizeof *order);
        for (size_t i = 0; i < d->n; i++)
            order[i] = i;
        if (sort_keys) { /* insertion sort: dicts in templates are small */
            for (size_t i = 1; i < d->n; i++) {
                size_t x = order[i], j = i;
                while (j > 0 && jv_compare(c, line, d->keys[order[j - 1]], d->keys[x]) > 0) {
                    order[j] = order[j - 1];
                    j--;
                }
                order[j] = x;
            }
        }
        jb_putc(c, b, '{');
        for (size_t i = 0; i < d->n; i++) {
            jv key = d->keys[order[i]];
            if (i) jb_puts(c, b, item_sep);
            if (indent >= 0) json_newline(c, b, indent, level + 1);
            if (key.k == JV_STR) {
                put_json_str(c, b, key.u.s.p, key.u.s.n);
            } else if (key.k == JV_INT || key.k == JV_FLOAT || key.k == JV_BOOL ||
                       key.k == JV_NONE) {
                jbuf kb = {0};
                jv_to_json(c, line, &kb, key, -1, ", ", ": ", false, level + 1);
                put_json_str(c, b, kb.p, kb.n);
            } else {
                jfail(c, line, "tojson: keys must be str, int, float, bool or None, not %s",
                      jv_type_name(key));
            }
            jb_puts(c, b, key_sep);
            jv_to_json(c, line, b, d->vals[order[i]], indent, item_sep, key_sep, sort_keys,
                       level + 1);
        }
        if (indent >= 0) json_newline(c, b, indent, level);
        jb_putc(c, b, '}');
        break;
    }
    }
}
