/* jinja_eval.c - runs the AST: scopes, statements, expressions, and the filters, tests, global
 * functions and str/dict/list methods real chat templates use, each behaving as Jinja2 3.1 in
 * transformers' ImmutableSandboxedEnvironment (undefined values are falsy and print as "",
 * methods that mutate lists or dicts are refused). */
#include "chat/jinja_internal.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* ---- scopes ---- */

struct jframe {
    jframe *parent;
    const char **names;
    jv *vals;
    size_t n, cap;
};

typedef struct jfunc_impl {
    int kind;
    const char *name;  /* global or method name */
    jv self;           /* method receiver */
    const jnode *node; /* macro or call block */
    jframe *closure;
    jv caller; /* macro invoked from a call block: the caller() function */
} jfunc_impl;
struct jfunc {
    jfunc_impl f;
};
enum { F_GLOBAL, F_METHOD, F_MACRO, F_CALLER, F_UNSAFE };

typedef struct jargs {
    jv *pos;
    size_t npos;
    const char **kwn;
    jv *kwv;
    size_t nkw;
} jargs;

static jframe *frame_new(jctx *c, jframe *parent) {
    jframe *f = ja_alloc(c, sizeof *f);
    f->parent = parent;
    return f;
}

static void frame_set(jctx *c, jframe *f, const char *name, jv v) {
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->names[i], name) == 0) {
            f->vals[i] = v;
            return;
        }
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 8;
        const char **names = ja_alloc(c, cap * sizeof *names);
        jv *vals = ja_alloc(c, cap * sizeof *vals);
        if (f->n) {
            memcpy(names, f->names, f->n * sizeof *names);
            memcpy(vals, f->vals, f->n * sizeof *vals);
        }
        f->names = names;
        f->vals = vals;
        f->cap = cap;
    }
    f->names[f->n] = name;
    f->vals[f->n] = v;
    f->n++;
}

static jv *frame_lookup(jframe *f, const char *name) {
    for (; f; f = f->parent)
        for (size_t i = f->n; i-- > 0;)
            if (strcmp(f->names[i], name) == 0) return &f->vals[i];
    return NULL;
}

static jv mkfunc(jctx *c, int kind, const char *name) {
    jv v = {.k = JV_FUNC};
    v.u.fn = ja_alloc(c, sizeof *v.u.fn);
    v.u.fn->f.kind = kind;
    v.u.fn->f.name = name;
    return v;
}

/* ---- helpers ---- */

static const char *undef_desc(jctx *c, jv v) {
    if (v.u.undef_name) {
        size_t n = strlen(v.u.undef_name);
        char *s = ja_alloc(c, n + 20);
        snprintf(s, n + 20, "'%s' is undefined", v.u.undef_name);
        return s;
    }
    return "value is undefined";
}

static void need_defined(jctx *c, int line, jv v) {
    if (v.k == JV_UNDEF) jfail(c, line, "%s", undef_desc(c, v));
}

static bool is_intlike(jv v) {
    return v.k == JV_INT || v.k == JV_BOOL;
}
static int64_t int_of(jv v) {
    return v.k == JV_INT ? v.u.i : (int64_t)v.u.b;
}
static bool is_number(jv v) {
    return v.k == JV_INT || v.k == JV_FLOAT || v.k == JV_BOOL;
}
static double float_of(jv v) {
    return v.k == JV_FLOAT ? v.u.f : (double)int_of(v);
}

static size_t utf8_len(const char *s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) k++;
    return k;
}

/* byte offsets of each code point, plus n at the end */
static size_t *utf8_offsets(jctx *c, const char *s, size_t n, size_t *count) {
    size_t k = utf8_len(s, n);
    size_t *off = ja_alloc(c, (k + 1) * sizeof *off);
    size_t j = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) off[j++] = i;
    off[k] = n;
    *count = k;
    return off;
}

static jv list_from_iterable(jctx *c, int line, jv v, const char *what) {
    jv out = jv_list(c);
    switch (v.k) {
    case JV_UNDEF:
        return out;
    case JV_LIST:
        for (size_t i = 0; i < v.u.l->n; i++)
            jl_push(c, out.u.l, v.u.l->items[i]);
        return out;
    case JV_DICT:
        for (size_t i = 0; i < v.u.d->n; i++)
            jl_push(c, out.u.l, v.u.d->keys[i]);
        return out;
    case JV_STR: {
        size_t k;
        size_t *off = utf8_offsets(c, v.u.s.p, v.u.s.n, &k);
        for (size_t i = 0; i < k; i++)
            jl_push(c, out.u.l, jv_str(c, v.u.s.p + off[i], off[i + 1] - off[i]));
        return out;
    }
    default:
        jfail(c, line, "%s: '%s' object is not iterable", what, jv_type_name(v));
    }
}

static bool is_ws(char ch) {
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
}

static jv str_strip(jctx *c, jv s, jv chars, bool left, bool right) {
    const char *p = s.u.s.p;
    size_t a = 0, b = s.u.s.n;
    bool ws = chars.k != JV_STR;
#define STRIPPABLE(ch) (ws ? is_ws(ch) : memchr(chars.u.s.p, (ch), chars.u.s.n) != NULL)
    if (left)
        while (a < b && STRIPPABLE(p[a]))
            a++;
    if (right)
        while (b > a && STRIPPABLE(p[b - 1]))
            b--;
#undef STRIPPABLE
    (void)c;
    jv r = s;
    r.u.s.p = p + a;
    r.u.s.n = b - a;
    return r;
}

static const char *find_sub(const char *h, size_t hn, const char *nd, size_t nn) {
    if (nn == 0) return h;
    if (nn > hn) return NULL;
    for (size_t i = 0; i + nn <= hn; i++)
        if (h[i] == nd[0] && memcmp(h + i, nd, nn) == 0) return h + i;
    return NULL;
}

static jv str_replace(jctx *c, jv s, jv old, jv new, int64_t count) {
    jbuf b = {0};
    const char *p = s.u.s.p, *end = p + s.u.s.n;
    if (old.u.s.n == 0) { /* Python inserts `new` between every character */
        size_t k;
        size_t *off = utf8_offsets(c, p, s.u.s.n, &k);
        int64_t done = 0;
        for (size_t i = 0; i <= k; i++) {
            if (count < 0 || done < count) {
                jb_put(c, &b, new.u.s.p, new.u.s.n);
                done++;
            }
            if (i < k) jb_put(c, &b, p + off[i], off[i + 1] - off[i]);
        }
        return jv_strbuf(&b);
    }
    int64_t done = 0;
    while (p < end) {
        const char *q = (count < 0 || done < count)
                            ? find_sub(p, (size_t)(end - p), old.u.s.p, old.u.s.n)
                            : NULL;
        if (!q) {
            jb_put(c, &b, p, (size_t)(end - p));
            break;
        }
        jb_put(c, &b, p, (size_t)(q - p));
        jb_put(c, &b, new.u.s.p, new.u.s.n);
        p = q + old.u.s.n;
        done++;
    }
    return jv_strbuf(&b);
}

static jv str_case(jctx *c, jv s, int mode) { /* 0 upper, 1 lower, 2 capitalize, 3 title */
    char *p = ja_strndup(c, s.u.s.p, s.u.s.n);
    bool word_start = true;
    for (size_t i = 0; i < s.u.s.n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (mode == 0)
            p[i] = (char)toupper(ch);
        else if (mode == 1)
            p[i] = (char)tolower(ch);
        else if (mode == 2)
            p[i] = (char)(i == 0 ? toupper(ch) : tolower(ch));
        else {
            /* Jinja's title: words begin after '-', whitespace, '(', '{', '[', '<' */
            if (is_ws((char)ch) || strchr("-({[<", ch) != NULL) {
                word_start = true;
            } else {
                p[i] = (char)(word_start ? toupper(ch) : tolower(ch));
                word_start = false;
            }
        }
    }
    jv r = {.k = JV_STR};
    r.u.s.p = p;
    r.u.s.n = s.u.s.n;
    return r;
}

static jv str_split(jctx *c, jv s, jv sep, int64_t maxsplit) {
    jv out = jv_list(c);
    const char *p = s.u.s.p, *end = p + s.u.s.n;
    int64_t done = 0;
    if (sep.k != JV_STR) { /* whitespace runs, no empty strings */
        for (;;) {
            while (p < end && is_ws(*p))
                p++;
            if (p >= end) break;
            if (maxsplit >= 0 && done >= maxsplit) {
                const char *e = end;
                while (e > p && is_ws(e[-1]))
                    e--;
                jl_push(c, out.u.l, jv_str(c, p, (size_t)(e - p)));
                break;
            }
            const char *q = p;
            while (q < end && !is_ws(*q))
                q++;
            jl_push(c, out.u.l, jv_str(c, p, (size_t)(q - p)));
            done++;
            p = q;
        }
        return out;
    }
    for (;;) {
        const char *q = (maxsplit < 0 || done < maxsplit)
                            ? find_sub(p, (size_t)(end - p), sep.u.s.p, sep.u.s.n)
                            : NULL;
        if (!q) {
            jl_push(c, out.u.l, jv_str(c, p, (size_t)(end - p)));
            break;
        }
        jl_push(c, out.u.l, jv_str(c, p, (size_t)(q - p)));
        p = q + sep.u.s.n;
        done++;
    }
    return out;
}

static bool str_affix(jv s, jv affix, bool at_end) {
    if (affix.k != JV_STR) return false;
    if (affix.u.s.n > s.u.s.n) return false;
    const char *start = at_end ? s.u.s.p + s.u.s.n - affix.u.s.n : s.u.s.p;
    return memcmp(start, affix.u.s.p, affix.u.s.n) == 0;
}

/* ---- argument access ---- */

static jv arg(const jargs *a, size_t i, const char *name) {
    if (i < a->npos) return a->pos[i];
    for (size_t k = 0; k < a->nkw; k++)
        if (strcmp(a->kwn[k], name) == 0) return a->kwv[k];
    return jv_undef(NULL);
}

static jv arg_str(jctx *c, int line, const jargs *a, size_t i, const char *name, const char *what) {
    jv v = arg(a, i, name);
    if (v.k != JV_STR)
        jfail(c, line, "%s: argument '%s' must be a string, not %s", what, name, jv_type_name(v));
    return v;
}

static int64_t arg_int(jctx *c, int line, const jargs *a, size_t i, const char *name, int64_t dflt,
                       const char *what) {
    jv v = arg(a, i, name);
    if (v.k == JV_UNDEF || v.k == JV_NONE) return dflt;
    if (!is_intlike(v))
        jfail(c, line, "%s: argument '%s' must be an integer, not %s", what, name, jv_type_name(v));
    return int_of(v);
}

static void max_args(jctx *c, int line, const jargs *a, size_t n, const char *what) {
    if (a->npos > n)
        jfail(c, line, "%s takes at most %zu positional argument(s), %zu given", what, n, a->npos);
}

/* ---- forward declarations ---- */

static jv eval(jctx *c, jframe *f, const jnode *n);
static int exec_body(jctx *c, jframe *f, const jnodes *body, jbuf *out);
static jv call_value(jctx *c, int line, jv fn, jargs *a);
static jv apply_filter(jctx *c, int line, const char *name, jv in, jargs *a, jframe *f);
static bool apply_test(jctx *c, int line, const char *name, jv in, jargs *a);

/* ---- attribute and item access ---- */

static const char *const str_methods[] = {
    "strip",   "lstrip",  "rstrip",     "split",   "rsplit",     "startswith", "endswith",
    "replace", "upper",   "lower",      "title",   "capitalize", "format",     "join",
    "find",    "count",   "splitlines", "isdigit", "isalpha",    "isalnum",    "isspace",
    "islower", "isupper", "index",      "rfind",   NULL};
static const char *const dict_methods[] = {"get", "items", "keys", "values", "copy", NULL};
static const char *const dict_unsafe[] = {"pop", "popitem", "update", "setdefault", "clear", NULL};
static const char *const list_methods[] = {"index", "count", "copy", NULL};
static const char *const list_unsafe[] = {"append",  "extend", "insert", "pop", "remove",
                                          "reverse", "sort",   "clear",  NULL};

static bool in_names(const char *const *names, const char *s) {
    for (; *names; names++)
        if (strcmp(*names, s) == 0) return true;
    return false;
}

static jv bound(jctx *c, int kind, jv self, const char *name) {
    jv m = mkfunc(c, kind, name);
    m.u.fn->f.self = self;
    return m;
}

/* obj.name: methods first (as Python getattr), then the item */
static jv get_attr(jctx *c, int line, jv obj, const char *name) {
    switch (obj.k) {
    case JV_UNDEF:
        jfail(c, line, "%s (reading its attribute '%s')", undef_desc(c, obj), name);
    case JV_DICT: {
        if (!obj.u.d->is_namespace) {
            if (in_names(dict_methods, name)) return bound(c, F_METHOD, obj, name);
            if (in_names(dict_unsafe, name)) return bound(c, F_UNSAFE, obj, name);
        }
        jv *v = jd_gets(obj.u.d, name);
        return v ? *v : jv_undef(name);
    }
    case JV_STR:
        if (in_names(str_methods, name)) return bound(c, F_METHOD, obj, name);
        return jv_undef(name);
    case JV_LIST:
        if (in_names(list_methods, name)) return bound(c, F_METHOD, obj, name);
        if (in_names(list_unsafe, name)) return bound(c, F_UNSAFE, obj, name);
        return jv_undef(name);
    default:
        return jv_undef(name);
    }
}

static bool norm_index(int64_t *i, size_t n) {
    if (*i < 0) *i += (int64_t)n;
    return *i >= 0 && (uint64_t)*i < n;
}

/* obj[key]: the item first, then (for a string key) the attribute */
static jv get_item(jctx *c, int line, jv obj, jv key) {
    if (obj.k == JV_UNDEF) jfail(c, line, "%s (subscripted)", undef_desc(c, obj));
    if (obj.k == JV_DICT) {
        jv *v = jd_get(obj.u.d, key);
        if (v) return *v;
    } else if (obj.k == JV_LIST && is_intlike(key)) {
        int64_t i = int_of(key);
        if (norm_index(&i, obj.u.l->n)) return obj.u.l->items[i];
        return jv_undef(NULL);
    } else if (obj.k == JV_STR && is_intlike(key)) {
        size_t k;
        size_t *off = utf8_offsets(c, obj.u.s.p, obj.u.s.n, &k);
        int64_t i = int_of(key);
        if (norm_index(&i, k)) return jv_str(c, obj.u.s.p + off[i], off[i + 1] - off[i]);
        return jv_undef(NULL);
    }
    if (key.k == JV_STR) {
        const char *name = ja_strndup(c, key.u.s.p, key.u.s.n);
        return get_attr(c, line, obj, name);
    }
    return jv_undef(NULL);
}

static jv slice(jctx *c, int line, jv obj, jv start, jv stop, jv step) {
    int64_t st = 1;
    if (step.k != JV_NONE && step.k != JV_UNDEF) {
        if (!is_intlike(step)) jfail(c, line, "slice step must be an integer");
        st = int_of(step);
        if (st == 0) jfail(c, line, "slice step cannot be zero");
    }
    size_t n;
    size_t *off = NULL;
    if (obj.k == JV_LIST)
        n = obj.u.l->n;
    else if (obj.k == JV_STR)
        off = utf8_offsets(c, obj.u.s.p, obj.u.s.n, &n);
    else if (obj.k == JV_UNDEF)
        jfail(c, line, "%s (sliced)", undef_desc(c, obj));
    else
        jfail(c, line, "'%s' object cannot be sliced", jv_type_name(obj));
    int64_t len = (int64_t)n;
    int64_t lo, hi;
    /* Python's slice.indices */
    if (start.k == JV_NONE || start.k == JV_UNDEF) {
        lo = st > 0 ? 0 : len - 1;
    } else {
        if (!is_intlike(start)) jfail(c, line, "slice indices must be integers");
        lo = int_of(start);
        if (lo < 0) lo += len;
        if (lo < 0) lo = st > 0 ? 0 : -1;
        if (lo >= len) lo = st > 0 ? len : len - 1;
    }
    if (stop.k == JV_NONE || stop.k == JV_UNDEF) {
        hi = st > 0 ? len : -1;
    } else {
        if (!is_intlike(stop)) jfail(c, line, "slice indices must be integers");
        hi = int_of(stop);
        if (hi < 0) hi += len;
        if (hi < 0) hi = st > 0 ? 0 : -1;
        if (hi >= len) hi = st > 0 ? len : len - 1;
    }
    jv out;
    jbuf b = {0};
    if (obj.k == JV_LIST) out = jv_list(c);
    for (int64_t i = lo; st > 0 ? i < hi : i > hi; i += st) {
        if (obj.k == JV_LIST)
            jl_push(c, out.u.l, obj.u.l->items[i]);
        else
            jb_put(c, &b, obj.u.s.p + off[i], off[i + 1] - off[i]);
    }
    if (obj.k == JV_STR) {
        if (!b.p) return jv_cstr("");
        return jv_strbuf(&b);
    }
    return out;
}

/* ---- operators ---- */

static jv arith(jctx *c, int line, int op, jv a, jv b) {
    static const char *names[] = {
        [OP_ADD] = "+",       [OP_SUB] = "-", [OP_MUL] = "*", [OP_DIV] = "/",
        [OP_FLOORDIV] = "//", [OP_MOD] = "%", [OP_POW] = "**"};
    if (a.k == JV_UNDEF) need_defined(c, line, a);
    if (b.k == JV_UNDEF) need_defined(c, line, b);
    if (is_intlike(a) && is_intlike(b)) {
        int64_t x = int_of(a), y = int_of(b), r;
        switch (op) {
        case OP_ADD:
            if (__builtin_add_overflow(x, y, &r)) break;
            return jv_int(r);
        case OP_SUB:
            if (__builtin_sub_overflow(x, y, &r)) break;
            return jv_int(r);
        case OP_MUL:
            if (__builtin_mul_overflow(x, y, &r)) break;
            return jv_int(r);
        case OP_DIV:
            if (y == 0) jfail(c, line, "division by zero");
            return jv_float((double)x / (double)y);
        case OP_FLOORDIV:
        case OP_MOD: {
            if (y == 0) jfail(c, line, "integer division or modulo by zero");
            if (x == INT64_MIN && y == -1) break;
            int64_t q = x / y, m = x % y;
            if (m != 0 && ((m < 0) != (y < 0))) {
                q--;
                m += y;
            }
            return jv_int(op == OP_MOD ? m : q);
        }
        case OP_POW:
            if (y >= 0) {
                int64_t acc = 1;
                bool ovf = false;
                for (int64_t k = 0; k < y && !ovf; k++)
                    ovf = __builtin_mul_overflow(acc, x, &acc);
                if (!ovf) return jv_int(acc);
                break;
            }
            return jv_float(pow((double)x, (double)y));
        }
        jfail(c, line, "integer overflow in '%s'", names[op]);
    }
    if (is_number(a) && is_number(b)) {
        double x = float_of(a), y = float_of(b);
        switch (op) {
        case OP_ADD:
            return jv_float(x + y);
        case OP_SUB:
            return jv_float(x - y);
        case OP_MUL:
            return jv_float(x * y);
        case OP_DIV:
            if (y == 0) jfail(c, line, "float division by zero");
            return jv_float(x / y);
        case OP_FLOORDIV:
            if (y == 0) jfail(c, line, "float floor division by zero");
            return jv_float(floor(x / y));
        case OP_MOD: {
            if (y == 0) jfail(c, line, "float modulo by zero");
            double m = fmod(x, y);
            if (m != 0 && ((m < 0) != (y < 0))) m += y;
            return jv_float(m);
        }
        case OP_POW:
            return jv_float(pow(x, y));
        }
    }
    if (op == OP_ADD && a.k == JV_STR && b.k == JV_STR) {
        jbuf buf = {0};
        jb_put(c, &buf, a.u.s.p, a.u.s.n);
        jb_put(c, &buf, b.u.s.p, b.u.s.n);
        return jv_strbuf(&buf);
    }
    if (op == OP_ADD && a.k == JV_LIST && b.k == JV_LIST) {
        jv out = jv_list(c);
        for (size_t i = 0; i < a.u.l->n; i++)
            jl_push(c, out.u.l, a.u.l->items[i]);
        for (size_t i = 0; i < b.u.l->n; i++)
            jl_push(c, out.u.l, b.u.l->items[i]);
        return out;
    }
    if (op == OP_MUL && ((a.k == JV_STR || a.k == JV_LIST) && is_intlike(b))) {
        int64_t k = int_of(b);
        if (a.k == JV_STR) {
            jbuf buf = {0};
            for (int64_t i = 0; i < k; i++)
                jb_put(c, &buf, a.u.s.p, a.u.s.n);
            return buf.p ? jv_strbuf(&buf) : jv_cstr("");
        }
        jv out = jv_list(c);
        for (int64_t i = 0; i < k; i++)
            for (size_t j = 0; j < a.u.l->n; j++)
                jl_push(c, out.u.l, a.u.l->items[j]);
        return out;
    }
    if (op == OP_MUL && is_intlike(a) && (b.k == JV_STR || b.k == JV_LIST))
        return arith(c, line, op, b, a);
    jfail(c, line, "unsupported operand type(s) for %s: '%s' and '%s'", names[op], jv_type_name(a),
          jv_type_name(b));
}

static bool contains(jctx *c, int line, jv container, jv item) {
    switch (container.k) {
    case JV_UNDEF:
        return false;
    case JV_STR:
        if (item.k != JV_STR)
            jfail(c, line, "'in <string>' requires string as left operand, not %s",
                  jv_type_name(item));
        return find_sub(container.u.s.p, container.u.s.n, item.u.s.p, item.u.s.n) != NULL;
    case JV_LIST:
        for (size_t i = 0; i < container.u.l->n; i++)
            if (jv_equal(container.u.l->items[i], item)) return true;
        return false;
    case JV_DICT:
        return jd_get(container.u.d, item) != NULL;
    default:
        jfail(c, line, "argument of type '%s' is not iterable", jv_type_name(container));
    }
}

static jv binary_op(jctx *c, int line, int op, jv a, jv b) {
    switch (op) {
    case OP_CONCAT: {
        jbuf buf = {0};
        jv_to_str(c, &buf, a);
        jv_to_str(c, &buf, b);
        return buf.p ? jv_strbuf(&buf) : jv_cstr("");
    }
    case OP_EQ:
        return jv_bool(jv_equal(a, b));
    case OP_NE:
        return jv_bool(!jv_equal(a, b));
    case OP_LT:
    case OP_LE:
    case OP_GT:
    case OP_GE: {
        need_defined(c, line, a);
        need_defined(c, line, b);
        int r = jv_compare(c, line, a, b);
        return jv_bool(op == OP_LT ? r < 0 : op == OP_LE ? r <= 0 : op == OP_GT ? r > 0 : r >= 0);
    }
    case OP_IN:
        return jv_bool(contains(c, line, b, a));
    case OP_NOTIN:
        return jv_bool(!contains(c, line, b, a));
    default:
        return arith(c, line, op, a, b);
    }
}

/* ---- expressions ---- */

static void eval_args(jctx *c, jframe *f, const jnode *n, jargs *a) {
    a->npos = n->list.n;
    a->pos = ja_alloc(c, (a->npos + 1) * sizeof *a->pos);
    for (size_t i = 0; i < a->npos; i++)
        a->pos[i] = eval(c, f, n->list.v[i]);
    a->nkw = n->kwargs.n;
    a->kwn = n->names;
    a->kwv = ja_alloc(c, (a->nkw + 1) * sizeof *a->kwv);
    for (size_t i = 0; i < a->nkw; i++)
        a->kwv[i] = eval(c, f, n->kwargs.v[i]);
}

static jv eval_filter_chain(jctx *c, jframe *f, const jnode *n, jv input) {
    jv in = n->a ? (n->a->kind == E_FILTER || n->a->kind == E_TEST
                        ? eval_filter_chain(c, f, n->a, input)
                        : eval(c, f, n->a))
                 : input;
    jargs a;
    eval_args(c, f, n, &a);
    if (n->kind == E_TEST) return jv_bool(apply_test(c, n->line, n->name, in, &a) != n->op);
    return apply_filter(c, n->line, n->name, in, &a, f);
}

static jv eval(jctx *c, jframe *f, const jnode *n) {
    if (++c->depth > 1000) jfail(c, n->line, "template recursion too deep");
    jv r;
    switch (n->kind) {
    case E_LIT:
        r = n->lit;
        break;
    case E_NAME: {
        jv *v = frame_lookup(f, n->name);
        r = v ? *v : jv_undef(n->name);
        break;
    }
    case E_LIST:
    case E_TUPLE:
        r = jv_list(c);
        for (size_t i = 0; i < n->list.n; i++)
            jl_push(c, r.u.l, eval(c, f, n->list.v[i]));
        break;
    case E_DICT:
        r = jv_dict(c);
        for (size_t i = 0; i < n->list.n; i++) {
            jv k = eval(c, f, n->list.v[i]);
            jd_set(c, r.u.d, k, eval(c, f, n->list2.v[i]));
        }
        break;
    case E_ATTR:
        r = get_attr(c, n->line, eval(c, f, n->a), n->name);
        break;
    case E_INDEX: {
        jv obj = eval(c, f, n->a);
        r = get_item(c, n->line, obj, eval(c, f, n->b));
        break;
    }
    case E_SLICE: {
        jv obj = eval(c, f, n->a);
        jv lo = n->b ? eval(c, f, n->b) : jv_none();
        jv hi = n->c ? eval(c, f, n->c) : jv_none();
        jv st = n->d ? eval(c, f, n->d) : jv_none();
        r = slice(c, n->line, obj, lo, hi, st);
        break;
    }
    case E_CALL: {
        jv fn = eval(c, f, n->a);
        jargs a;
        eval_args(c, f, n, &a);
        if (fn.k == JV_UNDEF) {
            if (n->a->kind == E_NAME)
                jfail(c, n->line, "'%s' is undefined (called as a function)", n->a->name);
            jfail(c, n->line, "%s (called as a function)", undef_desc(c, fn));
        }
        r = call_value(c, n->line, fn, &a);
        break;
    }
    case E_FILTER:
    case E_TEST:
        r = eval_filter_chain(c, f, n, jv_undef(NULL));
        break;
    case E_UNARY: {
        jv v = eval(c, f, n->a);
        need_defined(c, n->line, v);
        if (!is_number(v))
            jfail(c, n->line, "bad operand type for unary %s: '%s'", n->op == OP_NEG ? "-" : "+",
                  jv_type_name(v));
        if (n->op == OP_POS)
            r = v.k == JV_BOOL ? jv_int(v.u.b) : v;
        else if (v.k == JV_FLOAT)
            r = jv_float(-v.u.f);
        else if (int_of(v) == INT64_MIN)
            jfail(c, n->line, "integer overflow in unary '-'");
        else
            r = jv_int(-int_of(v));
        break;
    }
    case E_BINARY: {
        jv a = eval(c, f, n->a);
        jv b = eval(c, f, n->b);
        r = binary_op(c, n->line, n->op, a, b);
        break;
    }
    case E_AND: {
        jv a = eval(c, f, n->a);
        r = jv_truthy(a) ? eval(c, f, n->b) : a;
        break;
    }
    case E_OR: {
        jv a = eval(c, f, n->a);
        r = jv_truthy(a) ? a : eval(c, f, n->b);
        break;
    }
    case E_NOT:
        r = jv_bool(!jv_truthy(eval(c, f, n->a)));
        break;
    case E_COND:
        if (jv_truthy(eval(c, f, n->b)))
            r = eval(c, f, n->a);
        else
            r = n->c ? eval(c, f, n->c) : jv_undef(NULL);
        break;
    default:
        jfail(c, n->line, "statement used as an expression");
    }
    c->depth--;
    return r;
}

/* ---- methods ---- */

static jv str_format(jctx *c, int line, jv fmt, jargs *a) {
    jbuf b = {0};
    const char *p = fmt.u.s.p, *end = p + fmt.u.s.n;
    size_t auto_idx = 0;
    while (p < end) {
        if (*p == '{' && p + 1 < end && p[1] == '{') {
            jb_putc(c, &b, '{');
            p += 2;
        } else if (*p == '}' && p + 1 < end && p[1] == '}') {
            jb_putc(c, &b, '}');
            p += 2;
        } else if (*p == '{') {
            const char *q = memchr(p, '}', (size_t)(end - p));
            if (!q) jfail(c, line, "format: single '{' encountered in format string");
            const char *field = p + 1;
            size_t fl = (size_t)(q - field);
            if (memchr(field, ':', fl) || memchr(field, '!', fl))
                jfail(c, line, "format: format specs and conversions are not supported");
            jv v;
            if (fl == 0) {
                if (auto_idx >= a->npos) jfail(c, line, "format: not enough arguments");
                v = a->pos[auto_idx++];
            } else if (isdigit((unsigned char)field[0])) {
                size_t idx = (size_t)strtoul(field, NULL, 10);
                if (idx >= a->npos) jfail(c, line, "format: index %zu out of range", idx);
                v = a->pos[idx];
            } else {
                v = jv_undef(NULL);
                bool found = false;
                for (size_t k = 0; k < a->nkw; k++)
                    if (strlen(a->kwn[k]) == fl && memcmp(a->kwn[k], field, fl) == 0) {
                        v = a->kwv[k];
                        found = true;
                    }
                if (!found) jfail(c, line, "format: no argument named '%.*s'", (int)fl, field);
            }
            jv_to_str(c, &b, v);
            p = q + 1;
        } else if (*p == '}') {
            jfail(c, line, "format: single '}' encountered in format string");
        } else {
            jb_putc(c, &b, *p++);
        }
    }
    return b.p ? jv_strbuf(&b) : jv_cstr("");
}

static jv call_method(jctx *c, int line, jv self, const char *m, jargs *a) {
    char what[64];
    snprintf(what, sizeof what, "%s.%s()", jv_type_name(self), m);
    if (self.k == JV_STR) {
        if (!strcmp(m, "strip") || !strcmp(m, "lstrip") || !strcmp(m, "rstrip")) {
            max_args(c, line, a, 1, what);
            jv chars = arg(a, 0, "chars");
            if (chars.k != JV_STR && chars.k != JV_NONE && chars.k != JV_UNDEF)
                jfail(c, line, "%s: argument must be a string or None", what);
            return str_strip(c, self, chars, m[0] != 'r', m[0] != 'l');
        }
        if (!strcmp(m, "split") || !strcmp(m, "rsplit")) {
            jv sep = arg(a, 0, "sep");
            if (sep.k == JV_STR && sep.u.s.n == 0) jfail(c, line, "%s: empty separator", what);
            int64_t maxsplit = arg_int(c, line, a, 1, "maxsplit", -1, what);
            if (m[0] == 'r' && maxsplit >= 0) {
                /* rsplit with a limit: split fully, then rejoin the head */
                jv parts = str_split(c, self, sep, -1);
                jlist *l = parts.u.l;
                if ((int64_t)l->n - 1 <= maxsplit || sep.k != JV_STR) return parts;
                size_t head = l->n - (size_t)maxsplit;
                jbuf b = {0};
                for (size_t i = 0; i < head; i++) {
                    if (i) jb_put(c, &b, sep.u.s.p, sep.u.s.n);
                    jb_put(c, &b, l->items[i].u.s.p, l->items[i].u.s.n);
                }
                jv out = jv_list(c);
                jl_push(c, out.u.l, b.p ? jv_strbuf(&b) : jv_cstr(""));
                for (size_t i = head; i < l->n; i++)
                    jl_push(c, out.u.l, l->items[i]);
                return out;
            }
            return str_split(c, self, sep, maxsplit);
        }
        if (!strcmp(m, "startswith") || !strcmp(m, "endswith")) {
            jv x = arg(a, 0, "prefix");
            bool at_end = m[0] == 'e';
            if (x.k == JV_LIST) {
                for (size_t i = 0; i < x.u.l->n; i++)
                    if (str_affix(self, x.u.l->items[i], at_end)) return jv_bool(true);
                return jv_bool(false);
            }
            if (x.k != JV_STR) jfail(c, line, "%s: argument must be a string", what);
            return jv_bool(str_affix(self, x, at_end));
        }
        if (!strcmp(m, "replace")) {
            jv old = arg_str(c, line, a, 0, "old", what), new = arg_str(c, line, a, 1, "new", what);
            return str_replace(c, self, old, new, arg_int(c, line, a, 2, "count", -1, what));
        }
        if (!strcmp(m, "upper")) return str_case(c, self, 0);
        if (!strcmp(m, "lower")) return str_case(c, self, 1);
        if (!strcmp(m, "capitalize")) return str_case(c, self, 2);
        if (!strcmp(m, "title")) return str_case(c, self, 3);
        if (!strcmp(m, "format")) return str_format(c, line, self, a);
        if (!strcmp(m, "join")) {
            jv items = list_from_iterable(c, line, arg(a, 0, "iterable"), what);
            jbuf b = {0};
            for (size_t i = 0; i < items.u.l->n; i++) {
                jv it = items.u.l->items[i];
                if (it.k != JV_STR)
                    jfail(c, line, "%s: sequence item %zu: expected str, %s found", what, i,
                          jv_type_name(it));
                if (i) jb_put(c, &b, self.u.s.p, self.u.s.n);
                jb_put(c, &b, it.u.s.p, it.u.s.n);
            }
            return b.p ? jv_strbuf(&b) : jv_cstr("");
        }
        if (!strcmp(m, "find") || !strcmp(m, "index") || !strcmp(m, "rfind")) {
            jv sub = arg_str(c, line, a, 0, "sub", what);
            const char *hit = NULL;
            if (m[0] == 'r') {
                for (size_t i = self.u.s.n + 1; i-- > 0;)
                    if (i + sub.u.s.n <= self.u.s.n &&
                        memcmp(self.u.s.p + i, sub.u.s.p, sub.u.s.n) == 0) {
                        hit = self.u.s.p + i;
                        break;
                    }
            } else {
                hit = find_sub(self.u.s.p, self.u.s.n, sub.u.s.p, sub.u.s.n);
            }
            if (!hit && m[0] == 'i') jfail(c, line, "%s: substring not found", what);
            return jv_int(hit ? (int64_t)utf8_len(self.u.s.p, (size_t)(hit - self.u.s.p)) : -1);
        }
        if (!strcmp(m, "count")) {
            jv sub = arg_str(c, line, a, 0, "sub", what);
            if (sub.u.s.n == 0) return jv_int((int64_t)utf8_len(self.u.s.p, self.u.s.n) + 1);
            int64_t k = 0;
            const char *p = self.u.s.p, *end = p + self.u.s.n, *q;
            while ((q = find_sub(p, (size_t)(end - p), sub.u.s.p, sub.u.s.n))) {
                k++;
                p = q + sub.u.s.n;
            }
            return jv_int(k);
        }
        if (!strcmp(m, "splitlines")) {
            jv out = jv_list(c);
            const char *p = self.u.s.p, *end = p + self.u.s.n;
            while (p < end) {
                const char *q = p;
                while (q < end && *q != '\n' && *q != '\r')
                    q++;
                jl_push(c, out.u.l, jv_str(c, p, (size_t)(q - p)));
                if (q < end && *q == '\r' && q + 1 < end && q[1] == '\n') q++;
                p = q + 1;
            }
            return out;
        }
        if (!strncmp(m, "is", 2)) {
            if (self.u.s.n == 0) return jv_bool(false);
            bool ok = true, any_cased = false;
            for (size_t i = 0; i < self.u.s.n; i++) {
                unsigned char ch = (unsigned char)self.u.s.p[i];
                if (!strcmp(m, "isdigit")) ok &= isdigit(ch) != 0;
                if (!strcmp(m, "isalpha")) ok &= isalpha(ch) != 0;
                if (!strcmp(m, "isalnum")) ok &= isalnum(ch) != 0;
                if (!strcmp(m, "isspace")) ok &= is_ws((char)ch);
                if (!strcmp(m, "islower")) ok &= !isupper(ch), any_cased |= islower(ch) != 0;
                if (!strcmp(m, "isupper")) ok &= !islower(ch), any_cased |= isupper(ch) != 0;
            }
            if (!strcmp(m, "islower") || !strcmp(m, "isupper")) ok = ok && any_cased;
            return jv_bool(ok);
        }
    } else if (self.k == JV_DICT) {
        jdict *d = self.u.d;
        if (!strcmp(m, "get")) {
            max_args(c, line, a, 2, what);
            jv *v = jd_get(d, arg(a, 0, "key"));
            if (v) return *v;
            jv dflt = arg(a, 1, "default");
            return dflt.k == JV_UNDEF ? jv_none() : dflt;
        }
        if (!strcmp(m, "items") || !strcmp(m, "keys") || !strcmp(m, "values")) {
            jv out = jv_list(c);
            for (size_t i = 0; i < d->n; i++) {
                if (m[0] == 'k') {
                    jl_push(c, out.u.l, d->keys[i]);
                } else if (m[0] == 'v') {
                    jl_push(c, out.u.l, d->vals[i]);
                } else {
                    jv pair = jv_list(c);
                    jl_push(c, pair.u.l, d->keys[i]);
                    jl_push(c, pair.u.l, d->vals[i]);
                    jl_push(c, out.u.l, pair);
                }
            }
            return out;
        }
        if (!strcmp(m, "copy")) {
            jv out = jv_dict(c);
            for (size_t i = 0; i < d->n; i++)
                jd_set(c, out.u.d, d->keys[i], d->vals[i]);
            return out;
        }
    } else if (self.k == JV_LIST) {
        jlist *l = self.u.l;
        if (!strcmp(m, "index") || !strcmp(m, "count")) {
            jv x = arg(a, 0, "value");
            int64_t k = 0;
            for (size_t i = 0; i < l->n; i++)
                if (jv_equal(l->items[i], x)) {
                    if (m[0] == 'i') return jv_int((int64_t)i);
                    k++;
                }
            if (m[0] == 'i') jfail(c, line, "%s: value is not in list", what);
            return jv_int(k);
        }
        if (!strcmp(m, "copy")) return list_from_iterable(c, line, self, what);
    }
    jfail(c, line, "unknown method %s", what);
}

/* ---- global functions ---- */

static jv fn_strftime_now(jctx *c, int line, jargs *a) {
    jv fmt = arg_str(c, line, a, 0, "format", "strftime_now");
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int y, mo, d;
    if (c->date && sscanf(c->date, "%d-%d-%d", &y, &mo, &d) == 3) {
        tm.tm_year = y - 1900;
        tm.tm_mon = mo - 1;
        tm.tm_mday = d;
        tm.tm_hour = 0;
        time_t t = timegm(&tm); /* fills tm_wday and tm_yday */
        gmtime_r(&t, &tm);
    } else {
        time_t t = time(NULL);
        localtime_r(&t, &tm);
    }
    const char *f = ja_strndup(c, fmt.u.s.p, fmt.u.s.n);
    char out[512];
    size_t n = strftime(out, sizeof out, f, &tm);
    if (n == 0 && fmt.u.s.n > 0) jfail(c, line, "strftime_now: format too long or empty result");
    return jv_str(c, out, n);
}

static jv fn_range(jctx *c, int line, jargs *a) {
    int64_t lo = 0, hi, st = 1;
    if (a->npos == 1) {
        hi = arg_int(c, line, a, 0, "stop", 0, "range");
    } else if (a->npos == 2 || a->npos == 3) {
        lo = arg_int(c, line, a, 0, "start", 0, "range");
        hi = arg_int(c, line, a, 1, "stop", 0, "range");
        if (a->npos == 3) st = arg_int(c, line, a, 2, "step", 1, "range");
    } else {
        jfail(c, line, "range expects 1 to 3 integer arguments, got %zu", a->npos);
    }
    if (st == 0) jfail(c, line, "range() step must not be zero");
    jv out = jv_list(c);
    for (int64_t i = lo; st > 0 ? i < hi : i > hi; i += st) {
        if (out.u.l->n >= 1000000) jfail(c, line, "range() too long");
        jl_push(c, out.u.l, jv_int(i));
    }
    return out;
}

static jv call_global(jctx *c, int line, const char *name, jargs *a) {
    if (!strcmp(name, "raise_exception")) {
        jv msg = arg(a, 0, "message");
        jbuf b = {0};
        jv_to_str(c, &b, msg);
        jfail(c, line, "raise_exception: %s", b.p ? b.p : "");
    }
    if (!strcmp(name, "strftime_now")) return fn_strftime_now(c, line, a);
    if (!strcmp(name, "range")) return fn_range(c, line, a);
    if (!strcmp(name, "namespace") || !strcmp(name, "dict")) {
        jv d = jv_dict(c);
        d.u.d->is_namespace = name[0] == 'n';
        for (size_t i = 0; i < a->npos; i++) { /* namespace({'a': 1}) */
            if (a->pos[i].k != JV_DICT) jfail(c, line, "%s() takes keyword arguments", name);
            for (size_t k = 0; k < a->pos[i].u.d->n; k++)
                jd_set(c, d.u.d, a->pos[i].u.d->keys[k], a->pos[i].u.d->vals[k]);
        }
        for (size_t i = 0; i < a->nkw; i++)
            jd_set(c, d.u.d, jv_cstr(a->kwn[i]), a->kwv[i]);
        return d;
    }
    jfail(c, line, "unknown function '%s'", name);
}

/* ---- macros ---- */

static jv call_macro(jctx *c, int line, jfunc_impl *fn, jargs *a) {
    const jnode *m = fn->node;
    if (a->npos > m->n_names)
        jfail(c, line, "macro '%s' takes at most %zu argument(s), %zu given", m->name, m->n_names,
              a->npos);
    jframe *f = frame_new(c, fn->closure);
    for (size_t i = 0; i < a->nkw; i++) {
        bool ok = false;
        for (size_t k = 0; k < m->n_names; k++)
            if (!strcmp(m->names[k], a->kwn[i])) ok = true;
        if (!ok && strcmp(a->kwn[i], "caller") != 0)
            jfail(c, line, "macro '%s' has no parameter named '%s'", m->name, a->kwn[i]);
    }
    for (size_t k = 0; k < m->n_names; k++) {
        jv v = jv_undef(m->names[k]);
        bool given = false;
        if (k < a->npos) {
            v = a->pos[k];
            given = true;
        }
        for (size_t i = 0; i < a->nkw; i++)
            if (!strcmp(m->names[k], a->kwn[i])) {
                v = a->kwv[i];
                given = true;
            }
        if (!given && m->list2.v[k]) v = eval(c, f, m->list2.v[k]);
        frame_set(c, f, m->names[k], v);
    }
    if (fn->caller.k == JV_FUNC) frame_set(c, f, "caller", fn->caller);
    if (++c->depth > 1000) jfail(c, line, "macro recursion too deep in '%s'", m->name);
    jbuf out = {0};
    exec_body(c, f, &m->list, &out);
    c->depth--;
    return out.p ? jv_strbuf(&out) : jv_cstr("");
}

static jv call_value(jctx *c, int line, jv fn, jargs *a) {
    if (fn.k != JV_FUNC) jfail(c, line, "'%s' object is not callable", jv_type_name(fn));
    jfunc_impl *f = &fn.u.fn->f;
    switch (f->kind) {
    case F_GLOBAL:
        return call_global(c, line, f->name, a);
    case F_METHOD:
        return call_method(c, line, f->self, f->name, a);
    case F_UNSAFE:
        jfail(c, line, "access to attribute '%s' of '%s' object is unsafe", f->name,
              jv_type_name(f->self));
    case F_MACRO:
        return call_macro(c, line, f, a);
    case F_CALLER: {
        jfunc_impl tmp = *f;
        return call_macro(c, line, &tmp, a);
    }
    }
    jfail(c, line, "bad function value");
}

/* ---- filters ---- */

static jv attr_path(jctx *c, int line, jv obj, jv path) {
    if (path.k == JV_INT) return get_item(c, line, obj, path);
    if (path.k != JV_STR) jfail(c, line, "attribute name must be a string");
    const char *p = path.u.s.p, *end = p + path.u.s.n;
    while (p <= end) {
        const char *q = memchr(p, '.', (size_t)(end - p));
        if (!q) q = end;
        char *part = ja_strndup(c, p, (size_t)(q - p));
        char *e;
        long idx = strtol(part, &e, 10);
        if (*part && !*e)
            obj = get_item(c, line, obj, jv_int(idx));
        else
            obj = get_item(c, line, obj, jv_cstr(part));
        if (obj.k == JV_UNDEF) return obj;
        p = q + 1;
    }
    return obj;
}

/* sort helper: stable merge-free insertion sort on a list of keys */
static void sort_values(jctx *c, int line, jv *items, jv *keys, size_t n, bool reverse) {
    for (size_t i = 1; i < n; i++) {
        jv it = items[i], k = keys[i];
        size_t j = i;
        while (j > 0) {
            int r = jv_compare(c, line, keys[j - 1], k);
            if (reverse ? r >= 0 : r <= 0) break;
            items[j] = items[j - 1];
            keys[j] = keys[j - 1];
            j--;
        }
        items[j] = it;
        keys[j] = k;
    }
}

static jv sort_key(jctx *c, jv v, bool case_sensitive) {
    if (v.k == JV_STR && !case_sensitive) return str_case(c, v, 1);
    return v;
}

static jv do_select(jctx *c, int line, jv in, jargs *a, bool by_attr, bool keep, jframe *f) {
    (void)f;
    jv out = jv_list(c);
    if (!jv_truthy(in)) return out; /* Jinja: `if value:` before iterating */
    jv items = list_from_iterable(c, line, in, by_attr ? "selectattr" : "select");
    size_t first = by_attr ? 1 : 0;
    jv attr = by_attr ? arg(a, 0, "attribute") : jv_undef(NULL);
    jv test = a->npos > first ? a->pos[first] : jv_undef(NULL);
    if (test.k != JV_UNDEF && test.k != JV_STR) jfail(c, line, "test name must be a string");
    jargs ta = {0};
    if (a->npos > first + 1) {
        ta.pos = a->pos + first + 1;
        ta.npos = a->npos - first - 1;
    }
    const char *tname = test.k == JV_STR ? ja_strndup(c, test.u.s.p, test.u.s.n) : NULL;
    for (size_t i = 0; i < items.u.l->n; i++) {
        jv it = items.u.l->items[i];
        jv v = by_attr ? attr_path(c, line, it, attr) : it;
        bool ok = tname ? apply_test(c, line, tname, v, &ta) : jv_truthy(v);
        if (ok == keep) jl_push(c, out.u.l, it);
    }
    return out;
}

static jv do_indent(jctx *c, jv s, int64_t width, jv width_str, bool first, bool blank) {
    jbuf ind = {0};
    if (width_str.k == JV_STR)
        jb_put(c, &ind, width_str.u.s.p, width_str.u.s.n);
    else
        for (int64_t i = 0; i < width; i++)
            jb_putc(c, &ind, ' ');
    jbuf b = {0};
    const char *p = s.u.s.p, *end = p + s.u.s.n;
    bool first_line = true;
    /* Jinja's indent: lines after the first get the prefix (blank lines too only if blank) */
    while (p <= end) {
        const char *q = memchr(p, '\n', (size_t)(end - p));
        if (!q) q = end;
        size_t len = (size_t)(q - p);
        bool is_blank = true;
        for (size_t i = 0; i < len; i++)
            if (!is_ws(p[i])) is_blank = false;
        if (first_line ? first : (blank || !is_blank)) jb_put(c, &b, ind.p, ind.n);
        jb_put(c, &b, p, len);
        if (q < end) jb_putc(c, &b, '\n');
        first_line = false;
        if (q == end) break;
        p = q + 1;
    }
    return b.p ? jv_strbuf(&b) : jv_cstr("");
}

static jv apply_filter(jctx *c, int line, const char *name, jv in, jargs *a, jframe *f) {
    char what[64];
    snprintf(what, sizeof what, "filter '%s'", name);
    if (!strcmp(name, "safe")) return in;
    if (!strcmp(name, "default") || !strcmp(name, "d")) {
        jv dflt = arg(a, 0, "default_value");
        bool boolean = jv_truthy(arg(a, 1, "boolean"));
        if (in.k == JV_UNDEF || (boolean && !jv_truthy(in)))
            return dflt.k == JV_UNDEF ? jv_cstr("") : dflt;
        return in;
    }
    if (!strcmp(name, "length") || !strcmp(name, "count")) {
        switch (in.k) {
        case JV_UNDEF:
            return jv_int(0);
        case JV_STR:
            return jv_int((int64_t)utf8_len(in.u.s.p, in.u.s.n));
        case JV_LIST:
            return jv_int((int64_t)in.u.l->n);
        case JV_DICT:
            return jv_int((int64_t)in.u.d->n);
        default:
            jfail(c, line, "%s: object of type '%s' has no len()", what, jv_type_name(in));
        }
    }
    if (!strcmp(name, "string")) return jv_stringify(c, in);
    if (!strcmp(name, "trim")) {
        jv chars = arg(a, 0, "chars");
        return str_strip(c, jv_stringify(c, in), chars, true, true);
    }
    if (!strcmp(name, "upper")) return str_case(c, jv_stringify(c, in), 0);
    if (!strcmp(name, "lower")) return str_case(c, jv_stringify(c, in), 1);
    if (!strcmp(name, "capitalize")) return str_case(c, jv_stringify(c, in), 2);
    if (!strcmp(name, "title")) return str_case(c, jv_stringify(c, in), 3);
    if (!strcmp(name, "replace")) {
        jv s = jv_stringify(c, in);
        jv old = jv_stringify(c, arg(a, 0, "old")), new = jv_stringify(c, arg(a, 1, "new"));
        return str_replace(c, s, old, new, arg_int(c, line, a, 2, "count", -1, what));
    }
    if (!strcmp(name, "tojson")) {
        /* transformers: tojson(x, ensure_ascii=False, indent=None, separators=None,
         * sort_keys=False) */
        jv indent = arg(a, 1, "indent");
        int ind = -1;
        if (is_intlike(indent)) ind = (int)int_of(indent);
        if (ind > 64) ind = 64;
        const char *item_sep = ind >= 0 ? "," : ", ", *key_sep = ": ";
        jv seps = arg(a, 2, "separators");
        if (seps.k == JV_LIST && seps.u.l->n == 2 && seps.u.l->items[0].k == JV_STR &&
            seps.u.l->items[1].k == JV_STR) {
            item_sep = seps.u.l->items[0].u.s.p;
            key_sep = seps.u.l->items[1].u.s.p;
        }
        bool ensure_ascii = jv_truthy(arg(a, 0, "ensure_ascii"));
        jbuf b = {0};
        jv_to_json(c, line, &b, in, ind, item_sep, key_sep, jv_truthy(arg(a, 3, "sort_keys")), 0);
        if (ensure_ascii) { /* escape non-ASCII as \uXXXX (surrogate pairs above U+FFFF) */
            jbuf e = {0};
            for (size_t i = 0; i < b.n;) {
                unsigned char ch = (unsigned char)b.p[i];
                if (ch < 0x80) {
                    jb_putc(c, &e, (char)ch);
                    i++;
                    continue;
                }
                int len = ch >= 0xF0 ? 4 : ch >= 0xE0 ? 3 : 2;
                uint32_t cp = ch & (len == 4 ? 0x07 : len == 3 ? 0x0F : 0x1F);
                for (int k = 1; k < len && i + (size_t)k < b.n; k++)
                    cp = (cp << 6) | ((unsigned char)b.p[i + (size_t)k] & 0x3F);
                i += (size_t)len;
                char t[16];
                if (cp >= 0x10000) {
                    cp -= 0x10000;
                    snprintf(t, sizeof t, "\\u%04x\\u%04x", 0xD800 + (cp >> 10),
                             0xDC00 + (cp & 0x3FF));
                } else {
                    snprintf(t, sizeof t, "\\u%04x", cp);
                }
                jb_puts(c, &e, t);
            }
            b = e;
        }
        return b.p ? jv_strbuf(&b) : jv_cstr("");
    }
    if (!strcmp(name, "join")) {
        jv items = list_from_iterable(c, line, in, what);
        jv sep = arg(a, 0, "d");
        jv attr = arg(a, 1, "attribute");
        jbuf b = {0};
        for (size_t i = 0; i < items.u.l->n; i++) {
            if (i && sep.k == JV_STR) jb_put(c, &b, sep.u.s.p, sep.u.s.n);
            jv it = items.u.l->items[i];
            if (attr.k != JV_UNDEF) it = attr_path(c, line, it, attr);
            jv_to_str(c, &b, it);
        }
        return b.p ? jv_strbuf(&b) : jv_cstr("");
    }
    if (!strcmp(name, "first") || !strcmp(name, "last")) {
        jv items = list_from_iterable(c, line, in, what);
        if (items.u.l->n == 0) return jv_undef(NULL);
        return items.u.l->items[name[0] == 'f' ? 0 : items.u.l->n - 1];
    }
    if (!strcmp(name, "list")) return list_from_iterable(c, line, in, what);
    if (!strcmp(name, "reverse")) {
        if (in.k == JV_STR) return slice(c, line, in, jv_none(), jv_none(), jv_int(-1));
        jv items = list_from_iterable(c, line, in, what);
        jv out = jv_list(c);
        for (size_t i = items.u.l->n; i-- > 0;)
            jl_push(c, out.u.l, items.u.l->items[i]);
        return out;
    }
    if (!strcmp(name, "items") || !strcmp(name, "dictsort")) {
        if (in.k == JV_UNDEF) return jv_list(c);
        if (in.k != JV_DICT) jfail(c, line, "%s: can only get item pairs from a mapping", what);
        jargs none = {0};
        jv out = call_method(c, line, in, "items", &none);
        if (name[0] == 'd') {
            bool cs = jv_truthy(arg(a, 0, "case_sensitive"));
            jv by = arg(a, 1, "by");
            bool reverse = jv_truthy(arg(a, 2, "reverse"));
            size_t pos = jv_is_str(by, "value") ? 1 : 0;
            size_t n = out.u.l->n;
            jv *keys = ja_alloc(c, (n + 1) * sizeof *keys);
            for (size_t i = 0; i < n; i++)
                keys[i] = sort_key(c, out.u.l->items[i].u.l->items[pos], cs);
            sort_values(c, line, out.u.l->items, keys, n, reverse);
        }
        return out;
    }
    if (!strcmp(name, "sort")) {
        jv items = list_from_iterable(c, line, in, what);
        bool reverse = jv_truthy(arg(a, 0, "reverse"));
        bool cs = jv_truthy(arg(a, 1, "case_sensitive"));
        jv attr = arg(a, 2, "attribute");
        size_t n = items.u.l->n;
        jv *keys = ja_alloc(c, (n + 1) * sizeof *keys);
        for (size_t i = 0; i < n; i++) {
            jv k = items.u.l->items[i];
            if (attr.k != JV_UNDEF) k = attr_path(c, line, k, attr);
            keys[i] = sort_key(c, k, cs);
        }
        sort_values(c, line, items.u.l->items, keys, n, reverse);
        return items;
    }
    if (!strcmp(name, "unique")) {
        jv items = list_from_iterable(c, line, in, what);
        jv out = jv_list(c);
        for (size_t i = 0; i < items.u.l->n; i++) {
            jv it = items.u.l->items[i];
            bool seen = false;
            for (size_t k = 0; k < out.u.l->n && !seen; k++)
                seen = jv_equal(sort_key(c, out.u.l->items[k], false), sort_key(c, it, false));
            if (!seen) jl_push(c, out.u.l, it);
        }
        return out;
    }
    if (!strcmp(name, "min") || !strcmp(name, "max")) {
        jv items = list_from_iterable(c, line, in, what);
        if (items.u.l->n == 0) return jv_undef(NULL);
        jv best = items.u.l->items[0];
        for (size_t i = 1; i < items.u.l->n; i++) {
            int r = jv_compare(c, line, sort_key(c, items.u.l->items[i], false),
                               sort_key(c, best, false));
            if (name[1] == 'i' ? r < 0 : r > 0) best = items.u.l->items[i];
        }
        return best;
    }
    if (!strcmp(name, "sum")) {
        jv items = list_from_iterable(c, line, in, what);
        jv acc = jv_int(0);
        for (size_t i = 0; i < items.u.l->n; i++)
            acc = arith(c, line, OP_ADD, acc, items.u.l->items[i]);
        return acc;
    }
    if (!strcmp(name, "map")) {
        jv out = jv_list(c);
        if (!jv_truthy(in)) return out; /* Jinja: `if value:` before iterating */
        jv items = list_from_iterable(c, line, in, what);
        jv attr = arg(a, 99, "attribute");
        if (attr.k != JV_UNDEF) {
            jv dflt = arg(a, 99, "default");
            for (size_t i = 0; i < items.u.l->n; i++) {
                jv v = attr_path(c, line, items.u.l->items[i], attr);
                if (v.k == JV_UNDEF && dflt.k != JV_UNDEF) v = dflt;
                jl_push(c, out.u.l, v);
            }
            return out;
        }
        if (a->npos == 0 || a->pos[0].k != JV_STR)
            jfail(c, line, "%s needs a filter name or attribute=", what);
        const char *fname = ja_strndup(c, a->pos[0].u.s.p, a->pos[0].u.s.n);
        jargs rest = {
            .pos = a->pos + 1, .npos = a->npos - 1, .kwn = a->kwn, .kwv = a->kwv, .nkw = a->nkw};
        for (size_t i = 0; i < items.u.l->n; i++)
            jl_push(c, out.u.l, apply_filter(c, line, fname, items.u.l->items[i], &rest, f));
        return out;
    }
    if (!strcmp(name, "select")) return do_select(c, line, in, a, false, true, f);
    if (!strcmp(name, "reject")) return do_select(c, line, in, a, false, false, f);
    if (!strcmp(name, "selectattr")) return do_select(c, line, in, a, true, true, f);
    if (!strcmp(name, "rejectattr")) return do_select(c, line, in, a, true, false, f);
    if (!strcmp(name, "attr")) {
        jv n = arg_str(c, line, a, 0, "name", what);
        return get_attr(c, line, in, ja_strndup(c, n.u.s.p, n.u.s.n));
    }
    if (!strcmp(name, "int")) {
        int64_t dflt = arg_int(c, line, a, 0, "default", 0, what);
        if (is_intlike(in)) return jv_int(int_of(in));
        if (in.k == JV_FLOAT) return isfinite(in.u.f) ? jv_int((int64_t)in.u.f) : jv_int(dflt);
        if (in.k == JV_STR) {
            char *s = ja_strndup(c, in.u.s.p, in.u.s.n), *e;
            long long v = strtoll(s, &e, 10);
            while (is_ws(*e))
                e++;
            if (e != s && !*e) return jv_int(v);
            double d = strtod(s, &e);
            while (is_ws(*e))
                e++;
            if (e != s && !*e && isfinite(d)) return jv_int((int64_t)d);
        }
        return jv_int(dflt);
    }
    if (!strcmp(name, "float")) {
        if (is_number(in)) return jv_float(float_of(in));
        if (in.k == JV_STR) {
            char *s = ja_strndup(c, in.u.s.p, in.u.s.n), *e;
            double d = strtod(s, &e);
            if (e != s && !*e) return jv_float(d);
        }
        jv dflt = arg(a, 0, "default");
        return is_number(dflt) ? jv_float(float_of(dflt)) : jv_float(0.0);
    }
    if (!strcmp(name, "abs")) {
        if (in.k == JV_FLOAT) return jv_float(fabs(in.u.f));
        if (is_intlike(in)) return jv_int(int_of(in) < 0 ? -int_of(in) : int_of(in));
        jfail(c, line, "%s: bad operand type '%s'", what, jv_type_name(in));
    }
    if (!strcmp(name, "round")) {
        if (!is_number(in)) jfail(c, line, "%s: bad operand type '%s'", what, jv_type_name(in));
        int64_t prec = arg_int(c, line, a, 0, "precision", 0, what);
        double p10 = pow(10.0, (double)prec), x = float_of(in) * p10;
        jv method = arg(a, 1, "method");
        double r = jv_is_str(method, "floor")  ? floor(x)
                   : jv_is_str(method, "ceil") ? ceil(x)
                                               : round(x);
        return jv_float(r / p10);
    }
    if (!strcmp(name, "indent")) {
        jv w = arg(a, 0, "width");
        int64_t width = is_intlike(w) ? int_of(w) : 4;
        if (width > 1000) width = 1000;
        return do_indent(c, jv_stringify(c, in), width, w, jv_truthy(arg(a, 1, "first")),
                         jv_truthy(arg(a, 2, "blank")));
    }
    if (!strcmp(name, "wordcount")) {
        jv parts = str_split(c, jv_stringify(c, in), jv_undef(NULL), -1);
        return jv_int((int64_t)parts.u.l->n);
    }
    if (!strcmp(name, "e") || !strcmp(name, "escape") || !strcmp(name, "forceescape")) {
        jv s = jv_stringify(c, in);
        jbuf b = {0};
        for (size_t i = 0; i < s.u.s.n; i++) {
            char ch = s.u.s.p[i];
            switch (ch) {
            case '&':
                jb_puts(c, &b, "&amp;");
                break;
            case '<':
                jb_puts(c, &b, "&lt;");
                break;
            case '>':
                jb_puts(c, &b, "&gt;");
                break;
            case '"':
                jb_puts(c, &b, "&#34;");
                break;
            case '\'':
                jb_puts(c, &b, "&#39;");
                break;
            default:
                jb_putc(c, &b, ch);
            }
        }
        return b.p ? jv_strbuf(&b) : jv_cstr("");
    }
    if (!strcmp(name, "batch")) {
        int64_t size = arg_int(c, line, a, 0, "linecount", 1, what);
        if (size <= 0) jfail(c, line, "%s: size must be positive", what);
        jv items = list_from_iterable(c, line, in, what);
        jv out = jv_list(c), cur = jv_list(c);
        for (size_t i = 0; i < items.u.l->n; i++) {
            jl_push(c, cur.u.l, items.u.l->items[i]);
            if ((int64_t)cur.u.l->n == size) {
                jl_push(c, out.u.l, cur);
                cur = jv_list(c);
            }
        }
        if (cur.u.l->n) jl_push(c, out.u.l, cur);
        return out;
    }
    jfail(c, line, "unknown filter '%s'", name);
}

/* ---- tests ---- */

static bool apply_test(jctx *c, int line, const char *name, jv in, jargs *a) {
    if (!strcmp(name, "defined")) return in.k != JV_UNDEF;
    if (!strcmp(name, "undefined")) return in.k == JV_UNDEF;
    if (!strcmp(name, "none")) return in.k == JV_NONE;
    if (!strcmp(name, "boolean")) return in.k == JV_BOOL;
    if (!strcmp(name, "true")) return in.k == JV_BOOL && in.u.b;
    if (!strcmp(name, "false")) return in.k == JV_BOOL && !in.u.b;
    if (!strcmp(name, "integer")) return in.k == JV_INT;
    if (!strcmp(name, "float")) return in.k == JV_FLOAT;
    if (!strcmp(name, "number")) return is_number(in);
    if (!strcmp(name, "string")) return in.k == JV_STR;
    if (!strcmp(name, "mapping")) return in.k == JV_DICT;
    if (!strcmp(name, "iterable"))
        return in.k == JV_STR || in.k == JV_LIST || in.k == JV_DICT || in.k == JV_UNDEF;
    if (!strcmp(name, "sequence"))
        return in.k == JV_STR || in.k == JV_LIST || in.k == JV_DICT || in.k == JV_UNDEF;
    if (!strcmp(name, "callable")) return in.k == JV_FUNC;
    if (!strcmp(name, "odd") || !strcmp(name, "even")) {
        if (!is_intlike(in)) jfail(c, line, "test '%s' needs an integer", name);
        return (int_of(in) % 2 != 0) == (name[0] == 'o');
    }
    if (!strcmp(name, "divisibleby")) {
        int64_t d = arg_int(c, line, a, 0, "num", 0, "test 'divisibleby'");
        if (!is_intlike(in) || d == 0) jfail(c, line, "test 'divisibleby' needs integers");
        return int_of(in) % d == 0;
    }
    if (!strcmp(name, "lower") || !strcmp(name, "upper")) {
        if (in.k != JV_STR) return false;
        jargs none = {0};
        return jv_truthy(call_method(c, line, in, name[0] == 'l' ? "islower" : "isupper", &none));
    }
    static const struct {
        const char *name;
        int op;
    } cmp[] = {{"eq", OP_EQ}, {"equalto", OP_EQ}, {"==", OP_EQ},       {"ne", OP_NE},
               {"!=", OP_NE}, {"lt", OP_LT},      {"lessthan", OP_LT}, {"<", OP_LT},
               {"le", OP_LE}, {"<=", OP_LE},      {"gt", OP_GT},       {"greaterthan", OP_GT},
               {">", OP_GT},  {"ge", OP_GE},      {">=", OP_GE},       {"in", OP_IN}};
    for (size_t i = 0; i < sizeof cmp / sizeof *cmp; i++)
        if (!strcmp(name, cmp[i].name)) {
            if (a->npos < 1) jfail(c, line, "test '%s' needs an argument", name);
            return jv_truthy(binary_op(c, line, cmp[i].op, in, a->pos[0]));
        }
    if (!strcmp(name, "sameas")) {
        if (a->npos < 1) jfail(c, line, "test 'sameas' needs an argument");
        jv o = a->pos[0];
        if (in.k != o.k) return false;
        if (in.k == JV_LIST) return in.u.l == o.u.l;
        if (in.k == JV_DICT) return in.u.d == o.u.d;
        return jv_equal(in, o);
    }
    jfail(c, line, "unknown test '%s'", name);
}

/* ---- statements ---- */

enum { FLOW_NORMAL, FLOW_BREAK, FLOW_CONTINUE };

/* statements plus loop iterations one render may run: real templates need ~1e5 for a long
 * conversation; a runaway template stops with an error instead of spinning */
#define JINJA_MAX_STEPS 10000000

static void assign_targets(jctx *c, jframe *f, const jnode *n, jv v) {
    if (n->n_names == 1) {
        frame_set(c, f, n->names[0], v);
        return;
    }
    if (v.k != JV_LIST && v.k != JV_STR && v.k != JV_DICT)
        jfail(c, n->line, "cannot unpack non-iterable %s object", jv_type_name(v));
    jv items = list_from_iterable(c, n->line, v, "unpacking");
    if (items.u.l->n != n->n_names)
        jfail(c, n->line, "cannot unpack %zu value(s) into %zu variable(s)", items.u.l->n,
              n->n_names);
    for (size_t i = 0; i < n->n_names; i++)
        frame_set(c, f, n->names[i], items.u.l->items[i]);
}

static void exec_for(jctx *c, jframe *f, const jnode *n, jbuf *out) {
    jv seq = eval(c, f, n->a);
    if (seq.k == JV_NONE) jfail(c, n->line, "'NoneType' object is not iterable (for loop)");
    jv items = list_from_iterable(c, n->line, seq, "for loop");
    if (n->b) { /* {% for x in xs if cond %}: filter first, so loop.length counts kept items */
        jv kept = jv_list(c);
        for (size_t i = 0; i < items.u.l->n; i++) {
            jframe *tf = frame_new(c, f);
            assign_targets(c, tf, n, items.u.l->items[i]);
            if (jv_truthy(eval(c, tf, n->b))) jl_push(c, kept.u.l, items.u.l->items[i]);
        }
        items = kept;
    }
    size_t len = items.u.l->n;
    if (len == 0) {
        exec_body(c, f, &n->list2, out);
        return;
    }
    /* one frame and one loop object reused by every iteration: long loops stay in bounded
     * memory (a macro defined inside a loop body sees the latest iteration) */
    jframe *lf = frame_new(c, f);
    jv loop = jv_dict(c);
    jdict *d = loop.u.d;
    for (size_t i = 0; i < len; i++) {
        if (++c->steps > JINJA_MAX_STEPS) jfail(c, n->line, "template runs too long (step limit)");
        lf->n = 0;
        jd_set(c, d, jv_cstr("index"), jv_int((int64_t)i + 1));
        jd_set(c, d, jv_cstr("index0"), jv_int((int64_t)i));
        jd_set(c, d, jv_cstr("revindex"), jv_int((int64_t)(len - i)));
        jd_set(c, d, jv_cstr("revindex0"), jv_int((int64_t)(len - i - 1)));
        jd_set(c, d, jv_cstr("first"), jv_bool(i == 0));
        jd_set(c, d, jv_cstr("last"), jv_bool(i + 1 == len));
        jd_set(c, d, jv_cstr("length"), jv_int((int64_t)len));
        jd_set(c, d, jv_cstr("depth"), jv_int(1));
        jd_set(c, d, jv_cstr("depth0"), jv_int(0));
        jd_set(c, d, jv_cstr("previtem"), i > 0 ? items.u.l->items[i - 1] : jv_undef("previtem"));
        jd_set(c, d, jv_cstr("nextitem"),
               i + 1 < len ? items.u.l->items[i + 1] : jv_undef("nextitem"));
        frame_set(c, lf, "loop", loop);
        assign_targets(c, lf, n, items.u.l->items[i]);
        if (exec_body(c, lf, &n->list, out) == FLOW_BREAK) break;
    }
}

static int exec_node(jctx *c, jframe *f, const jnode *n, jbuf *out) {
    if (++c->steps > JINJA_MAX_STEPS) jfail(c, n->line, "template runs too long (step limit)");
    switch (n->kind) {
    case N_TEXT:
        jb_put(c, out, n->name, n->len);
        return FLOW_NORMAL;
    case N_OUTPUT:
        jv_to_str(c, out, eval(c, f, n->a));
        return FLOW_NORMAL;
    case N_IF:
        return exec_body(c, f, jv_truthy(eval(c, f, n->a)) ? &n->list : &n->list2, out);
    case N_FOR:
        exec_for(c, f, n, out);
        return FLOW_NORMAL;
    case N_SET:
        if (n->a) { /* ns.attr = value */
            jv ns = eval(c, f, n->a);
            if (ns.k != JV_DICT || !ns.u.d->is_namespace)
                jfail(c, n->line, "cannot assign attribute '%s' on a non-namespace object",
                      n->name);
            jd_set(c, ns.u.d, jv_cstr(n->name), eval(c, f, n->b));
        } else {
            assign_targets(c, f, n, eval(c, f, n->b));
        }
        return FLOW_NORMAL;
    case N_SET_BLOCK: {
        jbuf b = {0};
        exec_body(c, f, &n->list, &b);
        jv v = b.p ? jv_strbuf(&b) : jv_cstr("");
        if (n->b) v = eval_filter_chain(c, f, n->b, v);
        frame_set(c, f, n->names[0], v);
        return FLOW_NORMAL;
    }
    case N_MACRO: {
        jv m = mkfunc(c, F_MACRO, n->name);
        m.u.fn->f.node = n;
        m.u.fn->f.closure = f;
        frame_set(c, f, n->name, m);
        return FLOW_NORMAL;
    }
    case N_CALL_BLOCK: {
        jv caller = mkfunc(c, F_CALLER, "caller");
        caller.u.fn->f.node = n;
        caller.u.fn->f.closure = f;
        const jnode *call = n->a;
        jv fn = eval(c, f, call->a);
        if (fn.k != JV_FUNC || fn.u.fn->f.kind != F_MACRO)
            jfail(c, n->line, "'call' block needs a macro");
        jargs a;
        eval_args(c, f, call, &a);
        jfunc_impl tmp = fn.u.fn->f;
        tmp.caller = caller;
        jv_to_str(c, out, call_macro(c, n->line, &tmp, &a));
        return FLOW_NORMAL;
    }
    case N_FILTER_BLOCK: {
        jbuf b = {0};
        exec_body(c, f, &n->list, &b);
        jv v = eval_filter_chain(c, f, n->b, b.p ? jv_strbuf(&b) : jv_cstr(""));
        jv_to_str(c, out, v);
        return FLOW_NORMAL;
    }
    case N_BREAK:
        return FLOW_BREAK;
    case N_CONTINUE:
        return FLOW_CONTINUE;
    default:
        jfail(c, n->line, "expression used as a statement");
    }
}

static int exec_body(jctx *c, jframe *f, const jnodes *body, jbuf *out) {
    for (size_t i = 0; i < body->n; i++) {
        int flow = exec_node(c, f, body->v[i], out);
        if (flow != FLOW_NORMAL) return flow;
    }
    return FLOW_NORMAL;
}

void jinja_exec_root(jctx *c, const jnodes *body, jbuf *out) {
    jframe *root = frame_new(c, c->globals);
    c->depth = 0;
    exec_body(c, root, body, out);
}

jframe *jinja_globals(jctx *c) {
    jframe *g = frame_new(c, NULL);
    static const char *const fns[] = {"raise_exception", "strftime_now", "range", "namespace",
                                      "dict"};
    for (size_t i = 0; i < sizeof fns / sizeof *fns; i++)
        frame_set(c, g, fns[i], mkfunc(c, F_GLOBAL, fns[i]));
    return g;
}

void jinja_set_var(jctx *c, jframe *f, const char *name, jv v) {
    frame_set(c, f, name, v);
}
