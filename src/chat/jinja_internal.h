/* jinja_internal.h - the Jinja subset interpreter shared by jinja_lexer.c, jinja_parser.c,
 * jinja_value.c and jinja_eval.c.
 *
 * Ownership: everything a render allocates (tokens, AST, values, output) lives in one arena
 * (jctx.arena) freed in one go at the end, so values are plain structs copied freely and no
 * code path has to free anything. Errors unwind with longjmp to the entry point after
 * recording the message with qr_error(QR_ERR_TEMPLATE, ...); the arena makes that leak-free. */
#ifndef QR_JINJA_INTERNAL_H
#define QR_JINJA_INTERNAL_H

#include "util/util.h"

#include <setjmp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- arena ---- */
typedef struct jblock jblock;
typedef struct jarena {
    jblock *head;
    size_t used;  /* bytes handed out so far */
    size_t limit; /* a render that needs more fails cleanly instead of exhausting memory */
} jarena;

/* ---- values ---- */
typedef enum jv_kind {
    JV_UNDEF,
    JV_NONE,
    JV_BOOL,
    JV_INT,
    JV_FLOAT,
    JV_STR,
    JV_LIST,
    JV_DICT,
    JV_FUNC,
} jv_kind;

typedef struct jlist jlist;
typedef struct jdict jdict;
typedef struct jfunc jfunc;

typedef struct jv {
    jv_kind k;
    union {
        bool b;
        int64_t i;
        double f;
        struct {
            const char *p;
            size_t n;
        } s;
        jlist *l;
        jdict *d;
        jfunc *fn;
        const char *undef_name; /* JV_UNDEF: the name that was missing (or NULL) */
    } u;
} jv;

struct jlist {
    jv *items;
    size_t n, cap;
};

struct jdict {
    jv *keys, *vals; /* insertion-ordered; keys are usually strings */
    size_t n, cap;
    bool is_namespace; /* namespace(): attributes can be assigned with {% set ns.x = ... %} */
};

/* ---- AST ---- */
typedef enum jn_kind {
    /* statements */
    N_TEXT,
    N_OUTPUT,
    N_IF,
    N_FOR,
    N_SET,
    N_SET_BLOCK,
    N_MACRO,
    N_BREAK,
    N_CONTINUE,
    N_FILTER_BLOCK,
    N_CALL_BLOCK,
    /* expressions */
    E_LIT,
    E_NAME,
    E_LIST,
    E_TUPLE,
    E_DICT,
    E_ATTR,
    E_INDEX,
    E_SLICE,
    E_CALL,
    E_FILTER,
    E_TEST,
    E_UNARY,
    E_BINARY,
    E_AND,
    E_OR,
    E_NOT,
    E_COND,
} jn_kind;

typedef struct jnode jnode;
typedef struct jnodes {
    jnode **v;
    size_t n, cap;
} jnodes;

struct jnode {
    jn_kind kind;
    int line;
    const char *name; /* E_NAME, E_ATTR, E_FILTER, E_TEST, N_MACRO, N_SET attr target */
    size_t len;       /* N_TEXT: length of name */
    int op;           /* E_UNARY, E_BINARY: operator code; E_TEST: negated */
    jv lit;           /* E_LIT */
    jnode *a, *b, *c, *d;
    jnodes list;        /* args / items / keys / body / params' defaults */
    jnodes list2;       /* dict values / else body */
    const char **names; /* kwarg names (parallel to kwargs), for/set targets, macro params */
    size_t n_names;
    jnodes kwargs;
};

/* binary operators */
enum {
    OP_ADD = 1,
    OP_SUB,
    OP_MUL,
    OP_DIV,
    OP_FLOORDIV,
    OP_MOD,
    OP_POW,
    OP_CONCAT,
    OP_EQ,
    OP_NE,
    OP_LT,
    OP_LE,
    OP_GT,
    OP_GE,
    OP_IN,
    OP_NOTIN,
    OP_NEG,
    OP_POS,
};

/* ---- tokens ---- */
typedef enum jt_kind {
    T_EOF,
    T_TEXT,
    T_VAR_BEGIN,
    T_VAR_END,
    T_BLOCK_BEGIN,
    T_BLOCK_END,
    T_NAME,
    T_STRING,
    T_INT,
    T_FLOAT,
    T_OP,
} jt_kind;

typedef struct jtoken {
    jt_kind kind;
    int line;
    const char *s; /* T_TEXT / T_NAME / T_STRING (decoded) / T_OP text */
    size_t n;
    int64_t i;
    double f;
} jtoken;

/* ---- render context ---- */
typedef struct jframe jframe;
typedef struct jbuf {
    char *p;
    size_t n, cap;
} jbuf;

typedef struct jctx {
    jarena arena;
    jmp_buf fail;
    /* tokens */
    jtoken *toks;
    size_t n_toks, cap_toks, pos;
    /* evaluation */
    jframe *globals;
    int depth;        /* macro/expression recursion, bounded */
    uint64_t steps;   /* statements executed, bounded (no runaway loops) */
    const char *date; /* "YYYY-MM-DD" for strftime_now, or NULL for today */
} jctx;

/* arena (jinja_value.c) */
void *ja_alloc(jctx *c, size_t n);
char *ja_strndup(jctx *c, const char *s, size_t n);
void ja_free_all(jarena *a);

/* errors: record a QR_ERR_TEMPLATE message ("line N: ...") and unwind */
_Noreturn void jfail(jctx *c, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* growable byte buffer in the arena */
void jb_put(jctx *c, jbuf *b, const char *s, size_t n);
void jb_puts(jctx *c, jbuf *b, const char *s);
void jb_putc(jctx *c, jbuf *b, char ch);

/* values (jinja_value.c) */
jv jv_undef(const char *name);
jv jv_none(void);
jv jv_bool(bool b);
jv jv_int(int64_t i);
jv jv_float(double f);
jv jv_str(jctx *c, const char *s, size_t n); /* copies */
jv jv_cstr(const char *s);                   /* borrows a string that outlives the render */
jv jv_strbuf(jbuf *b);                       /* takes the buffer's bytes */
jv jv_list(jctx *c);
jv jv_dict(jctx *c);
void jl_push(jctx *c, jlist *l, jv v);
void jd_set(jctx *c, jdict *d, jv key, jv val);
jv *jd_get(jdict *d, jv key);
jv *jd_gets(jdict *d, const char *key);
bool jv_truthy(jv v);
bool jv_equal(jv a, jv b);
bool jv_is_str(jv v, const char *s);
const char *jv_type_name(jv v);
/* str(v) as Python prints it: None, True, [1, 'a'], {'k': 'v'}, 0.5 ... */
void jv_to_str(jctx *c, jbuf *b, jv v);
jv jv_stringify(jctx *c, jv v);
/* json.dumps(v, ensure_ascii=False, indent=indent (<0: None), separators, sort_keys) */
void jv_to_json(jctx *c, int line, jbuf *b, jv v, int indent, const char *item_sep,
                const char *key_sep, bool sort_keys, int level);
int jv_compare(jctx *c, int line, jv a, jv b); /* for sort/<; fails on unorderable types */

/* lexer (jinja_lexer.c): fills c->toks */
void jinja_lex(jctx *c, const char *src, size_t n);
/* parser (jinja_parser.c): the template body */
jnodes jinja_parse(jctx *c);
void jn_push(jctx *c, jnodes *l, jnode *n);
/* evaluator (jinja_eval.c) */
void jinja_exec_root(jctx *c, const jnodes *body, jbuf *out);
/* a frame holding the global functions (raise_exception, strftime_now, range, namespace, dict) */
jframe *jinja_globals(jctx *c);
void jinja_set_var(jctx *c, jframe *f, const char *name, jv v);

#endif
