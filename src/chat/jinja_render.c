/* jinja_render.c - qr_jinja_render: lex, parse and run a template in one arena. */
#include "chat/jinja.h"
#include "chat/jinja_internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>

#define JINJA_ARENA_LIMIT ((size_t)256 << 20)

/* A JSON value as the Python object json.loads makes (what transformers hands the template);
 * integers stay integers so `tojson` writes them back unchanged. */
static jv from_json(jctx *c, const cJSON *j, int depth) {
    if (depth > 64) jfail(c, 0, "a message or tool is nested too deeply");
    if (cJSON_IsNull(j) || !j) return jv_none();
    if (cJSON_IsBool(j)) return jv_bool(cJSON_IsTrue(j));
    if (cJSON_IsNumber(j)) {
        double d = j->valuedouble;
        if (isfinite(d) && d == floor(d) && fabs(d) < 9e15) return jv_int((int64_t)d);
        return jv_float(d);
    }
    if (cJSON_IsString(j)) return jv_str(c, j->valuestring, strlen(j->valuestring));
    if (cJSON_IsArray(j)) {
        jv l = jv_list(c);
        const cJSON *e;
        cJSON_ArrayForEach(e, j) jl_push(c, l.u.l, from_json(c, e, depth + 1));
        return l;
    }
    jv d = jv_dict(c);
    const cJSON *e;
    cJSON_ArrayForEach(e, j) {
        jd_set(c, d.u.d, jv_str(c, e->string, strlen(e->string)), from_json(c, e, depth + 1));
    }
    return d;
}

/* The parts that may longjmp live here; qr_jinja_render only sees the result. */
static void render(jctx *c, const char *src, size_t n, const qr_jinja_vars *vars, jbuf *out) {
    jinja_lex(c, src, n);
    jnodes body = jinja_parse(c);

    c->globals = jinja_globals(c);
    jv msgs = jv_list(c);
    if (vars->messages_json) msgs = from_json(c, vars->messages_json, 0);
    for (size_t i = 0; !vars->messages_json && i < vars->n_messages; i++) {
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
    jinja_set_var(c, c->globals, "tools",
                  vars->tools_json ? from_json(c, vars->tools_json, 0) : jv_none());
    jinja_set_var(c, c->globals, "documents", jv_none());
    c->date = vars->date;
    jinja_exec_root(c, &body, out);
}

qr_status qr_jinja_render(const char *src, size_t n, const qr_jinja_vars *vars, char **out) {
    if (!src || !vars || !out)
        return qr_error(QR_ERR_INVALID_ARG, "qr_jinja_render: NULL argument");
    *out = NULL;
    for (size_t i = 0; !vars->messages_json && i < vars->n_messages; i++)
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
