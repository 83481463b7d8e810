/* jinja_render.c - qr_jinja_render: lex, parse and run a template in one arena. */
#include "chat/jinja.h"
#include "chat/jinja_internal.h"

#include <stdlib.h>

#define JINJA_ARENA_LIMIT ((size_t)256 << 20)

/* The parts that may longjmp live here; qr_jinja_render only sees the result. */
static void render(jctx *c, const char *src, size_t n, const qr_jinja_vars *vars, jbuf *out) {
    jinja_lex(c, src, n);
    jnodes body = jinja_parse(c);

    c->globals = jinja_globals(c);
    jv msgs = jv_list(c);
    for (size_t i = 0; i < vars->n_messages; i++) {
        const qr_chat_message *m = &vars->messages[i];
        jv d = jv_dict(c);
        jd_set(c, d.u.d, jv_cstr("role"), jv_cstr(m->role ? m->role : ""));
        jd_set(c, d.u.d, jv_cstr("content"), m->content ? jv_cstr(m->content) : jv_none());
        jl_push(c, msgs.u.l, d);
    }
    jinja_set_var(c, c->globals, "messages", msgs);
    jinja_set_var(c, c->globals, "add_generation_prompt", jv_bool(vars->add_generation_prompt));
    jinja_set_var(c, c->globals, "bos_token", jv_cstr(vars->bos_token ? vars->bos_token : ""));
    jinja_set_var(c, c->globals, "eos_token", jv_cstr(vars->eos_token ? vars->eos_token : ""));
    jinja_set_var(c, c->globals, "tools", jv_none());
    jinja_set_var(c, c->globals, "documents", jv_none());
    c->date = vars->date;
    jinja_exec_root(c, &body, out);
}

qr_status qr_jinja_render(const char *src, size_t n, const qr_jinja_vars *vars, char **out) {
    if (!src || !vars || !out)
        return qr_error(QR_ERR_INVALID_ARG, "qr_jinja_render: NULL argument");
    *out = NULL;
    for (size_t i = 0; i < vars->n_messages; i++)
        if (!vars->messages[i].role)
            return qr_error(QR_ERR_INVALID_ARG, "chat message %zu has no role", i);
    jctx *c = calloc(1, sizeof *c);
    if (!c) return qr_error(QR_ERR_NOMEM, "out of memory rendering a chat template");
    c->arena.limit = JINJA_ARENA_LIMIT;
    jbuf res = {0};
    qr_status st = QR_OK;
    if (setjmp(c->fail) == 0) {
        render(c, src, n, vars, &res);
        *out = malloc(res.n + 1);
        if (!*out) {
            st = qr_error(QR_ERR_NOMEM, "out of memory rendering a chat template");
        } else {
            if (res.n) memcpy(*out, res.p, res.n);
            (*out)[res.n] = '\0';
        }
    } else {
        st = QR_ERR_TEMPLATE; /* the message was recorded by jfail */
    }
    ja_free_all(&c->arena);
    free(c);
    return st;
}
