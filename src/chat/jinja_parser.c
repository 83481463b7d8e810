/* jinja_parser.c - tokens to an AST by recursive descent, with Jinja2's operator precedence:
 * cond-expr < or < and < not < compare/in < + - < ~ < * / // % < ** < unary - + < postfix
 * (.attr, [sub], (call)) < filters and tests. */
#include "chat/jinja_internal.h"

static jtoken *peek(jctx *c) {
    return &c->toks[c->pos];
}
static jtoken *peek2(jctx *c) {
    return c->pos + 1 < c->n_toks ? &c->toks[c->pos + 1] : &c->toks[c->n_toks - 1];
}
static jtoken *next_tok(jctx *c) {
    jtoken *t = &c->toks[c->pos];
    if (t->kind != T_EOF) c->pos++;
    return t;
}
static bool tok_is_op(jtoken *t, const char *op) {
    return t->kind == T_OP && t->n == strlen(op) && memcmp(t->s, op, t->n) == 0;
}
static bool tok_is_name(jtoken *t, const char *name) {
    return t->kind == T_NAME && t->n == strlen(name) && memcmp(t->s, name, t->n) == 0;
}
static bool accept_op(jctx *c, const char *op) {
    if (tok_is_op(peek(c), op)) {
        c->pos++;
        return true;
    }
    return false;
}
static bool accept_name(jctx *c, const char *name) {
    if (tok_is_name(peek(c), name)) {
        c->pos++;
        return true;
    }
    return false;
}
static const char *tok_desc(jctx *c, jtoken *t) {
    switch (t->kind) {
    case T_EOF:
        return "end of template";
    case T_TEXT:
        return "text";
    case T_VAR_BEGIN:
        return "'{{'";
    case T_VAR_END:
        return "'}}'";
    case T_BLOCK_BEGIN:
        return "'{%'";
    case T_BLOCK_END:
        return "'%}'";
    case T_STRING:
        return "a string";
    case T_INT:
    case T_FLOAT:
        return "a number";
    case T_NAME:
    case T_OP: {
        char *s = ja_alloc(c, t->n + 3);
        s[0] = '\'';
        memcpy(s + 1, t->s, t->n);
        s[t->n + 1] = '\'';
        return s;
    }
    }
    return "?";
}
static void expect_op(jctx *c, const char *op) {
    if (!accept_op(c, op))
        jfail(c, peek(c)->line, "expected '%s', found %s", op, tok_desc(c, peek(c)));
}
static const char *expect_ident(jctx *c, const char *what) {
    jtoken *t = peek(c);
    if (t->kind != T_NAME) jfail(c, t->line, "expected %s, found %s", what, tok_desc(c, t));
    c->pos++;
    return ja_strndup(c, t->s, t->n);
}
static void expect_block_end(jctx *c, const char *tag) {
    jtoken *t = peek(c);
    if (t->kind != T_BLOCK_END)
        jfail(c, t->line, "expected '%%}' to end '%s', found %s", tag, tok_desc(c, t));
    c->pos++;
}

void jn_push(jctx *c, jnodes *l, jnode *n) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        jnode **v = ja_alloc(c, cap * sizeof *v);
        if (l->n) memcpy(v, l->v, l->n * sizeof *v);
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = n;
}

static jnode *mk(jctx *c, jn_kind kind, int line) {
    jnode *n = ja_alloc(c, sizeof *n);
    n->kind = kind;
    n->line = line;
    return n;
}

static void push_name(jctx *c, jnode *n, const char *name) {
    const char **v = ja_alloc(c, (n->n_names + 1) * sizeof *v);
    if (n->n_names) memcpy(v, n->names, n->n_names * sizeof *v);
    v[n->n_names++] = name;
    n->names = v;
}

/* ---- expressions ---- */

static jnode *parse_expr(jctx *c);
static jnode *parse_or(jctx *c);
static jnode *parse_unary(jctx *c, bool with_filter);

/* (args...) after '(' has been consumed: positional into list, kwargs into names/kwargs */
static void parse_call_args(jctx *c, jnode *n) {
    while (!accept_op(c, ")")) {
        if (n->list.n || n->kwargs.n) expect_op(c, ",");
        if (accept_op(c, ")")) break; /* trailing comma */
        if (peek(c)->kind == T_NAME && tok_is_op(peek2(c), "=")) {
            push_name(c, n, expect_ident(c, "an argument name"));
            c->pos++;
            jn_push(c, &n->kwargs, parse_expr(c));
        } else {
            if (n->kwargs.n) jfail(c, peek(c)->line, "positional argument after keyword argument");
            jn_push(c, &n->list, parse_expr(c));
        }
    }
}

static jnode *parse_primary(jctx *c) {
    jtoken *t = next_tok(c);
    jnode *n;
    switch (t->kind) {
    case T_NAME:
        if (tok_is_name(t, "true") || tok_is_name(t, "True")) {
            n = mk(c, E_LIT, t->line);
            n->lit = jv_bool(true);
        } else if (tok_is_name(t, "false") || tok_is_name(t, "False")) {
            n = mk(c, E_LIT, t->line);
            n->lit = jv_bool(false);
        } else if (tok_is_name(t, "none") || tok_is_name(t, "None")) {
            n = mk(c, E_LIT, t->line);
            n->lit = jv_none();
        } else {
            n = mk(c, E_NAME, t->line);
            n->name = ja_strndup(c, t->s, t->n);
        }
        return n;
    case T_STRING: {
        n = mk(c, E_LIT, t->line);
        /* adjacent literals concatenate, as in Python */
        if (peek(c)->kind == T_STRING) {
            jbuf b = {0};
            jb_put(c, &b, t->s, t->n);
            while (peek(c)->kind == T_STRING) {
                jtoken *u = next_tok(c);
                jb_put(c, &b, u->s, u->n);
            }
            n->lit = jv_strbuf(&b);
        } else {
            n->lit.k = JV_STR;
            n->lit.u.s.p = t->s;
            n->lit.u.s.n = t->n;
        }
        return n;
    }
    case T_INT:
        n = mk(c, E_LIT, t->line);
        n->lit = jv_int(t->i);
        return n;
    case T_FLOAT:
        n = mk(c, E_LIT, t->line);
        n->lit = jv_float(t->f);
        return n;
    case T_OP:
        if (tok_is_op(t, "(")) {
            if (accept_op(c, ")")) return mk(c, E_TUPLE, t->line);
            jnode *e = parse_expr(c);
            if (tok_is_op(peek(c), ",")) {
                n = mk(c, E_TUPLE, t->line);
                jn_push(c, &n->list, e);
                while (accept_op(c, ",")) {
                    if (tok_is_op(peek(c), ")")) break;
                    jn_push(c, &n->list, parse_expr(c));
                }
                expect_op(c, ")");
                return n;
            }
            expect_op(c, ")");
            return e;
        }
        if (tok_is_op(t, "[")) {
            n = mk(c, E_LIST, t->line);
            while (!accept_op(c, "]")) {
                if (n->list.n) expect_op(c, ",");
                if (accept_op(c, "]")) break;
                jn_push(c, &n->list, parse_expr(c));
            }
            return n;
        }
        if (tok_is_op(t, "{")) {
            n = mk(c, E_DICT, t->line);
            while (!accept_op(c, "}")) {
                if (n->list.n) expect_op(c, ",");
                if (accept_op(c, "}")) break;
                jn_push(c, &n->list, parse_expr(c));
                expect_op(c, ":");
                jn_push(c, &n->list2, parse_expr(c));
            }
            return n;
        }
        break;
    default:
        break;
    }
    jfail(c, t->line, "unexpected %s in expression", tok_desc(c, t));
}

static jnode *parse_postfix(jctx *c, jnode *n) {
    for (;;) {
        jtoken *t = peek(c);
        if (tok_is_op(t, ".")) {
            c->pos++;
            jtoken *a = next_tok(c);
            jnode *m;
            if (a->kind == T_NAME) {
                m = mk(c, E_ATTR, a->line);
                m->name = ja_strndup(c, a->s, a->n);
            } else if (a->kind == T_INT) { /* x.0 is x[0] */
                m = mk(c, E_INDEX, a->line);
                m->b = mk(c, E_LIT, a->line);
                m->b->lit = jv_int(a->i);
            } else {
                jfail(c, a->line, "expected an attribute name after '.', found %s", tok_desc(c, a));
            }
            m->a = n;
            n = m;
        } else if (tok_is_op(t, "[")) {
            c->pos++;
            jnode *parts[3] = {NULL, NULL, NULL};
            int np = 0;
            bool is_slice = false;
            for (;;) {
                if (tok_is_op(peek(c), ":")) {
                    c->pos++;
                    is_slice = true;
                    if (++np > 2) jfail(c, t->line, "too many ':' in slice");
                    continue;
                }
                if (tok_is_op(peek(c), "]")) break;
                if (parts[np]) jfail(c, peek(c)->line, "expected ']' or ':' in subscript");
                parts[np] = parse_expr(c);
            }
            expect_op(c, "]");
            jnode *m;
            if (is_slice) {
                m = mk(c, E_SLICE, t->line);
                m->b = parts[0];
                m->c = parts[1];
                m->d = parts[2];
            } else {
                if (!parts[0]) jfail(c, t->line, "empty subscript '[]'");
                m = mk(c, E_INDEX, t->line);
                m->b = parts[0];
            }
            m->a = n;
            n = m;
        } else if (tok_is_op(t, "(")) {
            c->pos++;
            jnode *m = mk(c, E_CALL, t->line);
            m->a = n;
            parse_call_args(c, m);
            n = m;
        } else {
            return n;
        }
    }
}

static jnode *parse_filters_tests(jctx *c, jnode *n) {
    for (;;) {
        jtoken *t = peek(c);
        if (tok_is_op(t, "|")) {
            c->pos++;
            jnode *m = mk(c, E_FILTER, t->line);
            m->name = expect_ident(c, "a filter name after '|'");
            while (accept_op(c, ".")) { /* dotted filter names */
                const char *more = expect_ident(c, "a filter name");
                size_t l1 = strlen(m->name), l2 = strlen(more);
                char *s = ja_alloc(c, l1 + l2 + 2);
                memcpy(s, m->name, l1);
                s[l1] = '.';
                memcpy(s + l1 + 1, more, l2);
                m->name = s;
            }
            if (accept_op(c, "(")) parse_call_args(c, m);
            m->a = n;
            n = m;
        } else if (tok_is_name(t, "is")) {
            c->pos++;
            jnode *m = mk(c, E_TEST, t->line);
            if (accept_name(c, "not")) m->op = 1;
            jtoken *nt = peek(c);
            if (nt->kind == T_NAME) {
                m->name = expect_ident(c, "a test name");
            } else if (tok_is_op(nt, "==") || tok_is_op(nt, "!=") || tok_is_op(nt, "<") ||
                       tok_is_op(nt, ">") || tok_is_op(nt, "<=") || tok_is_op(nt, ">=")) {
                c->pos++;
                m->name = ja_strndup(c, nt->s, nt->n);
            } else {
                jfail(c, nt->line, "expected a test name after 'is', found %s", tok_desc(c, nt));
            }
            if (accept_op(c, "(")) {
                parse_call_args(c, m);
            } else {
                /* one bare argument: `is divisibleby 3`, `is sameas none` */
                jtoken *a = peek(c);
                if (a->kind == T_STRING || a->kind == T_INT || a->kind == T_FLOAT ||
                    (a->kind == T_NAME && !tok_is_name(a, "and") && !tok_is_name(a, "or") &&
                     !tok_is_name(a, "else") && !tok_is_name(a, "if") && !tok_is_name(a, "in") &&
                     !tok_is_name(a, "is") && !tok_is_name(a, "not") &&
                     !tok_is_name(a, "recursive")))
                    jn_push(c, &m->list, parse_unary(c, false));
            }
            m->a = n;
            n = m;
        } else if (tok_is_op(t, "(")) {
            c->pos++;
            jnode *m = mk(c, E_CALL, t->line);
            m->a = n;
            parse_call_args(c, m);
            n = m;
        } else {
            return n;
        }
    }
}

static jnode *parse_unary(jctx *c, bool with_filter) {
    jtoken *t = peek(c);
    jnode *n;
    if (tok_is_op(t, "-") || tok_is_op(t, "+")) {
        c->pos++;
        n = mk(c, E_UNARY, t->line);
        n->op = tok_is_op(t, "-") ? OP_NEG : OP_POS;
        n->a = parse_unary(c, false);
    } else {
        n = parse_postfix(c, parse_primary(c));
    }
    if (with_filter) n = parse_filters_tests(c, n);
    return n;
}

static jnode *binary(jctx *c, int op, int line, jnode *a, jnode *b) {
    jnode *n = mk(c, E_BINARY, line);
    n->op = op;
    n->a = a;
    n->b = b;
    return n;
}

static jnode *parse_pow(jctx *c) {
    jnode *n = parse_unary(c, true);
    while (tok_is_op(peek(c), "**")) {
        int line = next_tok(c)->line;
        n = binary(c, OP_POW, line, n, parse_unary(c, true));
    }
    return n;
}

static jnode *parse_math2(jctx *c) {
    jnode *n = parse_pow(c);
    for (;;) {
        jtoken *t = peek(c);
        int op = tok_is_op(t, "*")    ? OP_MUL
                 : tok_is_op(t, "/")  ? OP_DIV
                 : tok_is_op(t, "//") ? OP_FLOORDIV
                 : tok_is_op(t, "%")  ? OP_MOD
                                      : 0;
        if (!op) return n;
        c->pos++;
        n = binary(c, op, t->line, n, parse_pow(c));
    }
}

static jnode *parse_concat(jctx *c) {
    jnode *n = parse_math2(c);
    while (tok_is_op(peek(c), "~")) {
        int line = next_tok(c)->line;
        n = binary(c, OP_CONCAT, line, n, parse_math2(c));
    }
    return n;
}

static jnode *parse_math1(jctx *c) {
    jnode *n = parse_concat(c);
    for (;;) {
        jtoken *t = peek(c);
        int op = tok_is_op(t, "+") ? OP_ADD : tok_is_op(t, "-") ? OP_SUB : 0;
        if (!op) return n;
        c->pos++;
        n = binary(c, op, t->line, n, parse_concat(c));
    }
}

static jnode *parse_compare(jctx *c) {
    jnode *n = parse_math1(c);
    for (;;) {
        jtoken *t = peek(c);
        int op = tok_is_op(t, "==")     ? OP_EQ
                 : tok_is_op(t, "!=")   ? OP_NE
                 : tok_is_op(t, "<")    ? OP_LT
                 : tok_is_op(t, "<=")   ? OP_LE
                 : tok_is_op(t, ">")    ? OP_GT
                 : tok_is_op(t, ">=")   ? OP_GE
                 : tok_is_name(t, "in") ? OP_IN
                                        : 0;
        if (!op && tok_is_name(t, "not") && tok_is_name(peek2(c), "in")) {
            c->pos++;
            op = OP_NOTIN;
        }
        if (!op) return n;
        c->pos++;
        /* chained comparisons (a < b < c) are rare in templates: treated left to right */
        n = binary(c, op, t->line, n, parse_math1(c));
    }
}

static jnode *parse_not(jctx *c) {
    jtoken *t = peek(c);
    if (tok_is_name(t, "not")) {
        c->pos++;
        jnode *n = mk(c, E_NOT, t->line);
        n->a = parse_not(c);
        return n;
    }
    return parse_compare(c);
}

static jnode *parse_and(jctx *c) {
    jnode *n = parse_not(c);
    while (tok_is_name(peek(c), "and")) {
        jnode *m = mk(c, E_AND, next_tok(c)->line);
        m->a = n;
        m->b = parse_not(c);
        n = m;
    }
    return n;
}

static jnode *parse_or(jctx *c) {
    jnode *n = parse_and(c);
    while (tok_is_name(peek(c), "or")) {
        jnode *m = mk(c, E_OR, next_tok(c)->line);
        m->a = n;
        m->b = parse_and(c);
        n = m;
    }
    return n;
}

/* a if cond else b (the else part optional: undefined) */
static jnode *parse_expr(jctx *c) {
    if (++c->depth > 200) jfail(c, peek(c)->line, "expression nested too deeply");
    jnode *n = parse_or(c);
    while (tok_is_name(peek(c), "if")) {
        jnode *m = mk(c, E_COND, next_tok(c)->line);
        m->a = n;
        m->b = parse_or(c);
        if (accept_name(c, "else")) m->c = parse_expr(c);
        n = m;
    }
    c->depth--;
    return n;
}

/* an expression, or an unparenthesised tuple (a, b) where a statement allows one */
static jnode *parse_tuple_expr(jctx *c) {
    int line = peek(c)->line;
    jnode *e = parse_expr(c);
    if (!tok_is_op(peek(c), ",")) return e;
    jnode *n = mk(c, E_TUPLE, line);
    jn_push(c, &n->list, e);
    while (accept_op(c, ",")) {
        if (peek(c)->kind == T_BLOCK_END || peek(c)->kind == T_VAR_END) break;
        jn_push(c, &n->list, parse_expr(c));
    }
    return n;
}

/* ---- statements ---- */

/* Parse statements until a block tag whose name is one of `ends` (NULL-terminated); that tag's
 * name token is left unconsumed (the '{%' before it is consumed). With ends == NULL, parse
 * to the end of the template. */
static jnodes parse_body(jctx *c, const char *const *ends, const char *opener, int open_line);

static void parse_target_names(jctx *c, jnode *n, const char *what) {
    bool paren = accept_op(c, "(");
    do {
        push_name(c, n, expect_ident(c, what));
    } while (accept_op(c, ","));
    if (paren) expect_op(c, ")");
}

static jnode *parse_for(jctx *c, int line) {
    jnode *n = mk(c, N_FOR, line);
    parse_target_names(c, n, "a loop variable");
    if (!accept_name(c, "in"))
        jfail(c, peek(c)->line, "expected 'in' in for loop, found %s", tok_desc(c, peek(c)));
    /* the iterable: no conditional expression here, 'if' starts the loop filter */
    n->a = parse_or(c);
    if (tok_is_op(peek(c), ",")) { /* for x in a, b */
        jnode *t = mk(c, E_TUPLE, line);
        jn_push(c, &t->list, n->a);
        while (accept_op(c, ","))
            jn_push(c, &t->list, parse_or(c));
        n->a = t;
    }
    if (accept_name(c, "if")) n->b = parse_expr(c);
    if (accept_name(c, "recursive")) jfail(c, line, "recursive for loops are not supported");
    expect_block_end(c, "for");
    static const char *const ends[] = {"endfor", "else", NULL};
    n->list = parse_body(c, ends, "for", line);
    if (accept_name(c, "else")) {
        expect_block_end(c, "else");
        static const char *const ends2[] = {"endfor", NULL};
        n->list2 = parse_body(c, ends2, "for", line);
    }
    next_tok(c); /* endfor */
    expect_block_end(c, "endfor");
    return n;
}

static jnode *parse_if(jctx *c, int line) {
    jnode *n = mk(c, N_IF, line);
    n->a = parse_tuple_expr(c);
    expect_block_end(c, "if");
    static const char *const ends[] = {"endif", "elif", "else", NULL};
    n->list = parse_body(c, ends, "if", line);
    jtoken *t = peek(c);
    if (tok_is_name(t, "elif")) {
        c->pos++;
        jn_push(c, &n->list2, parse_if(c, t->line)); /* consumes through endif */
        return n;
    }
    if (accept_name(c, "else")) {
        expect_block_end(c, "else");
        static const char *const ends2[] = {"endif", NULL};
        n->list2 = parse_body(c, ends2, "if", line);
    }
    next_tok(c); /* endif */
    expect_block_end(c, "endif");
    return n;
}

static jnode *parse_set(jctx *c, int line) {
    jnode *n = mk(c, N_SET, line);
    const char *first = expect_ident(c, "a variable name after 'set'");
    if (accept_op(c, ".")) { /* set ns.attr = value */
        n->a = mk(c, E_NAME, line);
        n->a->name = first;
        n->name = expect_ident(c, "an attribute name");
    } else {
        push_name(c, n, first);
        while (accept_op(c, ","))
            push_name(c, n, expect_ident(c, "a variable name"));
    }
    if (accept_op(c, "=")) {
        n->b = parse_tuple_expr(c);
        expect_block_end(c, "set");
        return n;
    }
    /* block set: {% set x %}...{% endset %}, optionally with filters {% set x | trim %} */
    if (n->a || n->n_names != 1) jfail(c, line, "expected '=' after the 'set' target");
    n->kind = N_SET_BLOCK;
    jnode *filters = NULL;
    if (tok_is_op(peek(c), "|")) filters = parse_filters_tests(c, NULL);
    n->b = filters;
    expect_block_end(c, "set");
    static const char *const ends[] = {"endset", NULL};
    n->list = parse_body(c, ends, "set", line);
    next_tok(c);
    expect_block_end(c, "endset");
    return n;
}

static jnode *parse_macro(jctx *c, int line, bool is_call) {
    jnode *n = mk(c, is_call ? N_CALL_BLOCK : N_MACRO, line);
    if (is_call) {
        /* {% call(args) macro(...) %}: caller parameters first */
        if (accept_op(c, "(")) {
            while (!accept_op(c, ")")) {
                if (n->n_names) expect_op(c, ",");
                push_name(c, n, expect_ident(c, "a parameter name"));
                jn_push(c, &n->list2, accept_op(c, "=") ? parse_expr(c) : NULL);
            }
        }
        n->a = parse_expr(c);
        if (n->a->kind != E_CALL) jfail(c, line, "'call' needs a macro call");
        expect_block_end(c, "call");
        static const char *const ends[] = {"endcall", NULL};
        n->list = parse_body(c, ends, "call", line);
        next_tok(c);
        expect_block_end(c, "endcall");
        return n;
    }
    n->name = expect_ident(c, "a macro name");
    expect_op(c, "(");
    while (!accept_op(c, ")")) {
        if (n->n_names) expect_op(c, ",");
        push_name(c, n, expect_ident(c, "a parameter name"));
        jn_push(c, &n->list2, accept_op(c, "=") ? parse_expr(c) : NULL);
    }
    expect_block_end(c, "macro");
    static const char *const ends[] = {"endmacro", NULL};
    n->list = parse_body(c, ends, "macro", line);
    next_tok(c);
    if (peek(c)->kind == T_NAME) c->pos++; /* {% endmacro name %} */
    expect_block_end(c, "endmacro");
    return n;
}

static jnode *parse_statement(jctx *c) {
    jtoken *t = next_tok(c);
    int line = t->line;
    if (t->kind != T_NAME) jfail(c, line, "expected a statement name after '{%%'");
    if (tok_is_name(t, "if")) return parse_if(c, line);
    if (tok_is_name(t, "for")) return parse_for(c, line);
    if (tok_is_name(t, "set")) return parse_set(c, line);
    if (tok_is_name(t, "macro")) return parse_macro(c, line, false);
    if (tok_is_name(t, "call")) return parse_macro(c, line, true);
    if (tok_is_name(t, "break") || tok_is_name(t, "continue")) {
        jnode *n = mk(c, tok_is_name(t, "break") ? N_BREAK : N_CONTINUE, line);
        expect_block_end(c, tok_is_name(t, "break") ? "break" : "continue");
        return n;
    }
    if (tok_is_name(t, "filter")) {
        jnode *n = mk(c, N_FILTER_BLOCK, line);
        /* reuse the filter-chain parser: the 'filter' keyword token becomes a '|' */
        c->pos--;
        c->toks[c->pos] = (jtoken){.kind = T_OP, .line = line, .s = "|", .n = 1};
        n->b = parse_filters_tests(c, NULL);
        expect_block_end(c, "filter");
        static const char *const ends[] = {"endfilter", NULL};
        n->list = parse_body(c, ends, "filter", line);
        next_tok(c);
        expect_block_end(c, "endfilter");
        return n;
    }
    if (tok_is_name(t, "generation")) {
        /* transformers' assistant-mask tag: renders its body */
        expect_block_end(c, "generation");
        static const char *const ends[] = {"endgeneration", NULL};
        jnode *n = mk(c, N_IF, line);
        n->a = mk(c, E_LIT, line);
        n->a->lit = jv_bool(true);
        n->list = parse_body(c, ends, "generation", line);
        next_tok(c);
        expect_block_end(c, "endgeneration");
        return n;
    }
    jfail(c, line, "unknown or misplaced tag '%.*s'", (int)t->n, t->s);
}

static jnodes parse_body(jctx *c, const char *const *ends, const char *opener, int open_line) {
    jnodes body = {0};
    if (++c->depth > 200) jfail(c, open_line, "blocks nested too deeply");
    for (;;) {
        jtoken *t = peek(c);
        if (t->kind == T_EOF) {
            if (ends) jfail(c, open_line, "unclosed '%s' block (expected '%s')", opener, ends[0]);
            break;
        }
        if (t->kind == T_TEXT) {
            c->pos++;
            jnode *n = mk(c, N_TEXT, t->line);
            n->name = t->s;
            n->len = t->n;
            jn_push(c, &body, n);
        } else if (t->kind == T_VAR_BEGIN) {
            c->pos++;
            jnode *n = mk(c, N_OUTPUT, t->line);
            n->a = parse_tuple_expr(c);
            if (peek(c)->kind != T_VAR_END)
                jfail(c, peek(c)->line, "expected '}}', found %s", tok_desc(c, peek(c)));
            c->pos++;
            jn_push(c, &body, n);
        } else if (t->kind == T_BLOCK_BEGIN) {
            jtoken *name = peek2(c);
            bool is_end = false;
            for (const char *const *e = ends; e && *e; e++)
                if (tok_is_name(name, *e)) is_end = true;
            if (is_end) {
                c->pos++;
                break;
            }
            if (name->kind == T_NAME && name->n > 3 && memcmp(name->s, "end", 3) == 0)
                jfail(c, name->line, "unexpected '%.*s'%s%s%s", (int)name->n, name->s,
                      opener ? " inside '" : "", opener ? opener : "", opener ? "' block" : "");
            if (tok_is_name(name, "else") || tok_is_name(name, "elif"))
                jfail(c, name->line, "unexpected '%.*s'%s", (int)name->n, name->s,
                      opener ? "" : " outside 'if' or 'for'");
            c->pos++;
            jn_push(c, &body, parse_statement(c));
        } else {
            jfail(c, t->line, "unexpected %s", tok_desc(c, t));
        }
    }
    c->depth--;
    return body;
}

jnodes jinja_parse(jctx *c) {
    c->pos = 0;
    c->depth = 0;
    return parse_body(c, NULL, NULL, 0);
}
