/* tool_calls.c - tool-call formats: detection from the template source (the substrings
 * llama.cpp's common/chat.cpp looks for) and parsing of generated text. Parsing is strict: a
 * call must be complete JSON with a string name, or the whole text is returned as content, so
 * a malformed or truncated output never turns into a half call. */
#include "chat/tool_calls.h"
#include "util/util.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

qr_tool_format qr_tool_format_detect(const char *tmpl) {
    if (!tmpl) return QR_TOOL_FORMAT_GENERIC;
#define HAS(s) (strstr(tmpl, (s)) != NULL)
    /* XML-argument formats (Qwen3-Coder, functionary, GLM) are not among ours: generic */
    if (HAS("<function=") || HAS("<arg_key>")) return QR_TOOL_FORMAT_GENERIC;
    if (HAS("<tool_call>")) return QR_TOOL_FORMAT_HERMES;
    if (HAS("[TOOL_CALLS]")) return HAS("[ARGS]") ? QR_TOOL_FORMAT_MISTRAL_ARGS : QR_TOOL_FORMAT_MISTRAL;
    if (HAS("<|start_header_id|>") && HAS("ipython")) return QR_TOOL_FORMAT_LLAMA3;
    return QR_TOOL_FORMAT_GENERIC;
#undef HAS
}

const char *qr_tool_format_name(qr_tool_format f) {
    switch (f) {
    case QR_TOOL_FORMAT_HERMES:
        return "hermes";
    case QR_TOOL_FORMAT_LLAMA3:
        return "llama3";
    case QR_TOOL_FORMAT_MISTRAL:
        return "mistral";
    case QR_TOOL_FORMAT_MISTRAL_ARGS:
        return "mistral-args";
    case QR_TOOL_FORMAT_GENERIC:
        break;
    }
    return "generic";
}

void qr_tool_parse_free(qr_tool_parse *p) {
    if (!p) return;
    for (int i = 0; i < p->n_calls; i++) {
        free(p->calls[i].id);
        free(p->calls[i].name);
        free(p->calls[i].arguments);
    }
    free(p->calls);
    free(p->content);
    memset(p, 0, sizeof *p);
}

/* ---- small scanning helpers over text[0..n) ---- */

static size_t skip_ws(const char *s, size_t i, size_t n) {
    while (i < n && isspace((unsigned char)s[i]))
        i++;
    return i;
}

static bool starts_at(const char *s, size_t i, size_t n, const char *lit) {
    size_t k = strlen(lit);
    return i + k <= n && memcmp(s + i, lit, k) == 0;
}

/* First occurrence of lit in s[from..n), or n. */
static size_t find_at(const char *s, size_t from, size_t n, const char *lit) {
    for (size_t i = from; i < n; i++)
        if (starts_at(s, i, n, lit)) return i;
    return n;
}

static size_t trim_end(const char *s, size_t n) {
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        n--;
    return n;
}

/* Parse one JSON value at s[*i..n) (cJSON needs a NUL-terminated copy); *i moves past it. */
static cJSON *json_at(const char *s, size_t *i, size_t n) {
    char *copy = qr_malloc(n - *i + 1);
    if (!copy) return NULL;
    memcpy(copy, s + *i, n - *i);
    copy[n - *i] = '\0';
    const char *end = NULL;
    cJSON *v = cJSON_ParseWithOpts(copy, &end, false);
    if (v) *i += (size_t)(end - copy);
    free(copy);
    return v;
}

/* ---- building the result ---- */

typedef struct parse_state {
    qr_tool_parse *out;
    int cap;
    bool oom;
} parse_state;

/* Add a call from its name and arguments (an object, or a string holding one). false: the
 * call is malformed (or memory ran out: st->oom). */
static bool add_call(parse_state *st, const char *name, size_t n_name, const cJSON *args,
                     const char *id) {
    if (n_name == 0) return false;
    char *arguments = NULL;
    if (cJSON_IsObject(args)) {
        arguments = cJSON_PrintUnformatted(args);
    } else if (cJSON_IsString(args)) {
        cJSON *inner = cJSON_Parse(args->valuestring);
        bool ok = cJSON_IsObject(inner);
        if (ok) arguments = cJSON_PrintUnformatted(inner);
        cJSON_Delete(inner);
        if (!ok) return false;
    } else {
        return false;
    }
    qr_tool_parse *p = st->out;
    if (p->n_calls == st->cap) {
        int cap = st->cap ? 2 * st->cap : 4;
        qr_tool_call *c = realloc(p->calls, (size_t)cap * sizeof *c);
        if (!c) {
            free(arguments);
            st->oom = true;
            return false;
        }
        p->calls = c;
        st->cap = cap;
    }
    qr_tool_call *c = &p->calls[p->n_calls];
    c->name = qr_malloc(n_name + 1);
    c->id = id ? qr_strdup(id) : NULL;
    c->arguments = arguments;
    if (!c->name || !arguments || (id && !c->id)) {
        free(c->name);
        free(c->id);
        free(arguments);
        st->oom = true;
        return false;
    }
    memcpy(c->name, name, n_name);
    c->name[n_name] = '\0';
    p->n_calls++;
    return true;
}

/* A {"name": ..., <args_key>: {...}, "id"?: ...} object as one call. */
static bool add_object_call(parse_state *st, const cJSON *obj, const char *args_key) {
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(obj, "name");
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(obj, args_key);
    if (!args && strcmp(args_key, "arguments")) args = cJSON_GetObjectItemCaseSensitive(obj, "arguments");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(obj, "id");
    if (!cJSON_IsObject(obj) || !cJSON_IsString(name)) return false;
    return add_call(st, name->valuestring, strlen(name->valuestring), args,
                    cJSON_IsString(id) ? id->valuestring : NULL);
}

static bool set_content(qr_tool_parse *p, const char *s, size_t n) {
    free(p->content);
    p->content = qr_malloc(n + 1);
    if (!p->content) return false;
    memcpy(p->content, s, n);
    p->content[n] = '\0';
    return true;
}

/* ---- the formats: each returns false when the text does not follow it ---- */

/* <tool_call> {json} </tool_call>, repeated, after the content */
static bool parse_hermes(parse_state *st, const char *s, size_t n) {
    size_t at = find_at(s, 0, n, "<tool_call>");
    if (at == n) return false;
    if (!set_content(st->out, s, trim_end(s, at))) return !(st->oom = true);
    size_t i = at;
    while (i < n) {
        if (!starts_at(s, i, n, "<tool_call>")) return false;
        i = skip_ws(s, i + strlen("<tool_call>"), n);
        cJSON *obj = json_at(s, &i, n);
        bool ok = obj && add_object_call(st, obj, "arguments");
        cJSON_Delete(obj);
        if (!ok) return false;
        i = skip_ws(s, i, n);
        if (!starts_at(s, i, n, "</tool_call>")) return false;
        i = skip_ws(s, i + strlen("</tool_call>"), n);
    }
    return true;
}

/* [<|python_tag|>] {"name": ..., "parameters": {...}} as the whole output */
static bool parse_llama3(parse_state *st, const char *s, size_t n) {
    size_t i = skip_ws(s, 0, n);
    if (starts_at(s, i, n, "<|python_tag|>")) i = skip_ws(s, i + strlen("<|python_tag|>"), n);
    if (i >= n || s[i] != '{') return false;
    cJSON *obj = json_at(s, &i, n);
    bool ok = obj && add_object_call(st, obj, "parameters");
    cJSON_Delete(obj);
    return ok && skip_ws(s, i, n) == n && set_content(st->out, "", 0);
}

/* [TOOL_CALLS] [{"name", "arguments", "id"}, ...] after the content */
static bool parse_mistral(parse_state *st, const char *s, size_t n) {
    size_t at = find_at(s, 0, n, "[TOOL_CALLS]");
    if (at == n) return false;
    if (!set_content(st->out, s, trim_end(s, at))) return !(st->oom = true);
    size_t i = skip_ws(s, at + strlen("[TOOL_CALLS]"), n);
    cJSON *arr = json_at(s, &i, n);
    bool ok = cJSON_IsArray(arr) && cJSON_GetArraySize(arr) > 0;
    const cJSON *e;
    if (ok) cJSON_ArrayForEach(e, arr) ok = ok && add_object_call(st, e, "arguments");
    cJSON_Delete(arr);
    return ok && skip_ws(s, i, n) == n;
}

/* [TOOL_CALLS]name[CALL_ID]id[ARGS]{...}, repeated, after the content */
static bool parse_mistral_args(parse_state *st, const char *s, size_t n) {
    size_t at = find_at(s, 0, n, "[TOOL_CALLS]");
    if (at == n) return false;
    if (!set_content(st->out, s, trim_end(s, at))) return !(st->oom = true);
    size_t i = at;
    while (i < n) {
        if (!starts_at(s, i, n, "[TOOL_CALLS]")) return false;
        size_t name0 = i + strlen("[TOOL_CALLS]");
        size_t args = find_at(s, name0, n, "[ARGS]");
        if (args == n) return false;
        size_t name1 = find_at(s, name0, args, "[CALL_ID]");
        char id[64] = "";
        if (name1 < args) {
            size_t id0 = name1 + strlen("[CALL_ID]");
            if (args - id0 >= sizeof id) return false;
            memcpy(id, s + id0, args - id0);
            id[args - id0] = '\0';
        }
        i = args + strlen("[ARGS]");
        cJSON *obj = json_at(s, &i, n);
        bool ok = cJSON_IsObject(obj) && add_call(st, s + name0, name1 - name0, obj, id[0] ? id : NULL);
        cJSON_Delete(obj);
        if (!ok) return false;
        i = skip_ws(s, i, n);
    }
    return true;
}

/* {"tool_call": {...}} / {"tool_calls": [...]} / {"response": ...} as the whole output */
static bool parse_generic(parse_state *st, const char *s, size_t n) {
    size_t i = skip_ws(s, 0, n);
    if (i >= n || s[i] != '{') return false;
    cJSON *obj = json_at(s, &i, n);
    bool ok = cJSON_IsObject(obj) && skip_ws(s, i, n) == n;
    const cJSON *one = cJSON_GetObjectItemCaseSensitive(obj, "tool_call");
    const cJSON *many = cJSON_GetObjectItemCaseSensitive(obj, "tool_calls");
    const cJSON *resp = cJSON_GetObjectItemCaseSensitive(obj, "response");
    if (!ok) {
    } else if (one) {
        ok = add_object_call(st, one, "arguments") && set_content(st->out, "", 0);
    } else if (cJSON_IsArray(many) && cJSON_GetArraySize(many) > 0) {
        const cJSON *e;
        cJSON_ArrayForEach(e, many) ok = ok && add_object_call(st, e, "arguments");
        ok = ok && set_content(st->out, "", 0);
    } else if (cJSON_IsString(resp)) {
        ok = set_content(st->out, resp->valuestring, strlen(resp->valuestring));
    } else if (resp) { /* a structured response (response_format with tools): its JSON */
        char *text = cJSON_PrintUnformatted(resp);
        ok = text && set_content(st->out, text, strlen(text));
        free(text);
    } else {
        ok = false;
    }
    cJSON_Delete(obj);
    return ok;
}

qr_status qr_tool_calls_parse(qr_tool_format f, const char *text, size_t n, qr_tool_parse *out) {
    memset(out, 0, sizeof *out);
    if (!text) n = 0;
    parse_state st = {.out = out};
    bool ok = false;
    switch (f) {
    case QR_TOOL_FORMAT_HERMES:
        ok = parse_hermes(&st, text, n);
        break;
    case QR_TOOL_FORMAT_LLAMA3:
        ok = parse_llama3(&st, text, n);
        break;
    case QR_TOOL_FORMAT_MISTRAL:
        ok = parse_mistral(&st, text, n);
        break;
    case QR_TOOL_FORMAT_MISTRAL_ARGS:
        ok = parse_mistral_args(&st, text, n);
        break;
    case QR_TOOL_FORMAT_GENERIC:
        ok = parse_generic(&st, text, n);
        break;
    }
    if (st.oom) {
        qr_tool_parse_free(out);
        return qr_error(QR_ERR_NOMEM, "out of memory parsing tool calls");
    }
    if (!ok) { /* not this format: all of it is content */
        qr_tool_parse_free(out);
        if (!set_content(out, text ? text : "", n))
            return qr_error(QR_ERR_NOMEM, "out of memory parsing tool calls");
    }
    return QR_OK;
}

/* The marker that starts the calls of a format that lets content come first, or NULL. */
static const char *call_marker(qr_tool_format f) {
    switch (f) {
    case QR_TOOL_FORMAT_HERMES:
        return "<tool_call>";
    case QR_TOOL_FORMAT_MISTRAL:
    case QR_TOOL_FORMAT_MISTRAL_ARGS:
        return "[TOOL_CALLS]";
    case QR_TOOL_FORMAT_LLAMA3:
    case QR_TOOL_FORMAT_GENERIC:
        break;
    }
    return NULL;
}

size_t qr_tool_calls_content_prefix(qr_tool_format f, const char *text, size_t n) {
    if (!text) return 0;
    if (f == QR_TOOL_FORMAT_GENERIC) return 0; /* the content is inside the JSON */
    if (f == QR_TOOL_FORMAT_LLAMA3) {
        /* a call is the whole output: text that may still become one is held back */
        size_t i = skip_ws(text, 0, n);
        const char *tag = "<|python_tag|>";
        size_t k = n - i < strlen(tag) ? n - i : strlen(tag);
        if (i == n || text[i] == '{' || memcmp(text + i, tag, k) == 0) return 0;
        return n;
    }
    const char *marker = call_marker(f);
    size_t m = strlen(marker);
    size_t at = find_at(text, 0, n, marker);
    if (at == n) /* hold back a tail that may be the start of the marker */
        for (size_t k = m - 1; k > 0; k--)
            if (k <= n && memcmp(text + n - k, marker, k) == 0) {
                at = n - k;
                break;
            }
    return trim_end(text, at);
}
