/* request.c - parsing and validating request bodies of the OpenAI routes and of llama.cpp's
 * /tokenize and /detokenize. Field names, types and ranges follow the OpenAI API reference;
 * unknown fields are ignored as OpenAI does. Every error names the offending field. */
#include "server/server_internal.h"
#include "util/util.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static qr_status parse_object(const char *body, size_t len, cJSON **out) {
    *out = NULL;
    if (!body || len == 0) return qr_error(QR_ERR_INVALID_ARG, "the request body is empty");
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = at && at >= body && at <= body + len ? (size_t)(at - body) : 0;
        return qr_error(QR_ERR_INVALID_ARG,
                        "the request body is not valid JSON (error near byte %zu)", off);
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return qr_error(QR_ERR_INVALID_ARG, "the request body must be a JSON object");
    }
    *out = root;
    return QR_OK;
}

qr_status srv_json_parse_object(const char *body, size_t len, cJSON **out) {
    return parse_object(body, len, out);
}

/* A field that is absent or null counts as not given. */
static const cJSON *field(const cJSON *obj, const char *name) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(obj, name);
    return f && !cJSON_IsNull(f) ? f : NULL;
}

const cJSON *srv_json_field(const cJSON *obj, const char *name) {
    return field(obj, name);
}

qr_status srv_json_number(const cJSON *obj, const char *name, const char *label, double lo,
                          double hi, float *out) {
    const cJSON *f = field(obj, name);
    if (!f) return QR_OK;
    if (!cJSON_IsNumber(f)) return qr_error(QR_ERR_INVALID_ARG, "'%s' must be a number", label);
    double v = f->valuedouble;
    if (!(v >= lo && v <= hi))
        return qr_error(QR_ERR_INVALID_ARG, "'%s' must be between %g and %g, not %g", label, lo, hi,
                        v);
    *out = (float)v;
    return QR_OK;
}

static qr_status get_number(const cJSON *obj, const char *name, double lo, double hi, float *out) {
    return srv_json_number(obj, name, name, lo, hi, out);
}

static bool is_integer(const cJSON *f) {
    return cJSON_IsNumber(f) && isfinite(f->valuedouble) && f->valuedouble == floor(f->valuedouble);
}

qr_status srv_json_int(const cJSON *obj, const char *name, const char *label, int64_t lo,
                       int64_t hi, int64_t *out, bool *given) {
    const cJSON *f = field(obj, name);
    if (given) *given = f != NULL;
    if (!f) return QR_OK;
    if (!is_integer(f)) return qr_error(QR_ERR_INVALID_ARG, "'%s' must be an integer", label);
    double v = f->valuedouble;
    if (v < (double)lo || v > (double)hi)
        return qr_error(QR_ERR_INVALID_ARG, "'%s' must be between %lld and %lld, not %.0f", label,
                        (long long)lo, (long long)hi, v);
    *out = (int64_t)v;
    return QR_OK;
}

static qr_status get_int(const cJSON *obj, const char *name, int64_t lo, int64_t hi, int64_t *out,
                         bool *given) {
    return srv_json_int(obj, name, name, lo, hi, out, given);
}

qr_status srv_json_bool(const cJSON *obj, const char *name, const char *label, bool *out) {
    const cJSON *f = field(obj, name);
    if (!f) return QR_OK;
    if (!cJSON_IsBool(f)) return qr_error(QR_ERR_INVALID_ARG, "'%s' must be a boolean", label);
    *out = cJSON_IsTrue(f);
    return QR_OK;
}

static qr_status get_bool(const cJSON *obj, const char *name, bool *out) {
    return srv_json_bool(obj, name, name, out);
}

/* A message's content: a string, or an array of {"type": "text", "text": ...} parts. */
static qr_status message_content(const cJSON *msg, size_t i, char **out) {
    const cJSON *c = field(msg, "content");
    if (!c) return qr_error(QR_ERR_INVALID_ARG, "'messages[%zu].content' is missing", i);
    if (cJSON_IsString(c)) {
        *out = qr_strdup(c->valuestring);
        return *out ? QR_OK : QR_ERR_NOMEM;
    }
    if (!cJSON_IsArray(c))
        return qr_error(QR_ERR_INVALID_ARG,
                        "'messages[%zu].content' must be a string or an array of parts", i);
    srv_buf b = {0};
    int j = 0;
    const cJSON *part;
    cJSON_ArrayForEach(part, c) {
        const cJSON *type = field(part, "type"), *text = field(part, "text");
        if (!cJSON_IsObject(part) || !cJSON_IsString(type) || strcmp(type->valuestring, "text")) {
            srv_buf_free(&b);
            return qr_error(
                QR_ERR_INVALID_ARG,
                "'messages[%zu].content[%d]' must be a part of type \"text\" (only text "
                "is supported)",
                i, j);
        }
        if (!cJSON_IsString(text)) {
            srv_buf_free(&b);
            return qr_error(QR_ERR_INVALID_ARG, "'messages[%zu].content[%d].text' must be a string",
                            i, j);
        }
        if (!srv_buf_append(&b, text->valuestring, strlen(text->valuestring))) {
            srv_buf_free(&b);
            return QR_ERR_NOMEM;
        }
        j++;
    }
    if (!b.data && !srv_buf_append(&b, "", 0)) return QR_ERR_NOMEM;
    *out = b.data;
    return QR_OK;
}

/* An assistant message's tool_calls: [{id, type: "function", function: {name, arguments}}],
 * copied into the template's message; arguments stay the JSON string the client sent. */
static qr_status message_tool_calls(const cJSON *calls, size_t i, cJSON *msg) {
    if (!cJSON_IsArray(calls))
        return qr_error(QR_ERR_INVALID_ARG, "'messages[%zu].tool_calls' must be an array", i);
    cJSON *copy = cJSON_AddArrayToObject(msg, "tool_calls");
    int j = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, calls) {
        const cJSON *fn = field(c, "function"), *id = field(c, "id");
        const cJSON *name = field(fn, "name"), *args = field(fn, "arguments");
        if (!cJSON_IsObject(c) || !cJSON_IsObject(fn) || !cJSON_IsString(name))
            return qr_error(QR_ERR_INVALID_ARG,
                            "'messages[%zu].tool_calls[%d]' must be {\"type\": \"function\", "
                            "\"function\": {\"name\": ..., \"arguments\": ...}}",
                            i, j);
        if (args && !cJSON_IsString(args) && !cJSON_IsObject(args))
            return qr_error(QR_ERR_INVALID_ARG,
                            "'messages[%zu].tool_calls[%d].function.arguments' must be a JSON "
                            "string",
                            i, j);
        if (cJSON_IsString(args)) {
            cJSON *parsed = cJSON_Parse(args->valuestring);
            bool object = cJSON_IsObject(parsed);
            cJSON_Delete(parsed);
            if (!object)
                return qr_error(QR_ERR_INVALID_ARG,
                                "'messages[%zu].tool_calls[%d].function.arguments' is not a "
                                "JSON object",
                                i, j);
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(copy, o);
        if (cJSON_IsString(id)) cJSON_AddStringToObject(o, "id", id->valuestring);
        cJSON_AddStringToObject(o, "type", "function");
        cJSON *f = cJSON_AddObjectToObject(o, "function");
        cJSON_AddStringToObject(f, "name", name->valuestring);
        if (cJSON_IsString(args))
            cJSON_AddStringToObject(f, "arguments", args->valuestring);
        else if (args)
            cJSON_AddItemToObject(f, "arguments", cJSON_Duplicate(args, true));
        else
            cJSON_AddStringToObject(f, "arguments", "{}");
        j++;
    }
    return QR_OK;
}

/* One message: role/content for the built-in templates and its template copy (OpenAI's
 * fields: content as one string or null, name, tool_call_id, tool_calls). */
static qr_status parse_message(const cJSON *m, size_t i, qr_chat_message *out, cJSON *arr) {
    if (!cJSON_IsObject(m))
        return qr_error(QR_ERR_INVALID_ARG, "'messages[%zu]' must be an object", i);
    const cJSON *role = field(m, "role");
    if (!role) return qr_error(QR_ERR_INVALID_ARG, "'messages[%zu].role' is missing", i);
    if (!cJSON_IsString(role))
        return qr_error(QR_ERR_INVALID_ARG, "'messages[%zu].role' must be a string", i);
    const cJSON *calls = field(m, "tool_calls");
    if (calls && strcmp(role->valuestring, "assistant"))
        return qr_error(QR_ERR_INVALID_ARG,
                        "'messages[%zu].tool_calls' is only allowed in assistant messages", i);
    char *content = NULL;
    bool null_content = calls && !field(m, "content"); /* OpenAI: content may be null here */
    qr_status st = null_content ? QR_OK : message_content(m, i, &content);
    if (st) return st;
    out->content = content ? content : qr_strdup("");
    out->role = qr_strdup(role->valuestring);
    if (!out->role || !out->content) return QR_ERR_NOMEM;
    cJSON *msg = cJSON_CreateObject();
    cJSON_AddItemToArray(arr, msg);
    cJSON_AddStringToObject(msg, "role", role->valuestring);
    if (null_content)
        cJSON_AddNullToObject(msg, "content");
    else
        cJSON_AddStringToObject(msg, "content", content);
    /* tool_name: ollama's name of the tool whose result a tool message holds */
    static const char *const strings[] = {"name", "tool_call_id", "tool_name"};
    for (size_t k = 0; k < 3; k++) {
        const cJSON *f = field(m, strings[k]);
        if (f && !cJSON_IsString(f))
            return qr_error(QR_ERR_INVALID_ARG, "'messages[%zu].%s' must be a string", i,
                            strings[k]);
        if (f) cJSON_AddStringToObject(msg, strings[k], f->valuestring);
    }
    return calls ? message_tool_calls(calls, i, msg) : QR_OK;
}

qr_status srv_parse_messages(const cJSON *root, srv_request *r) {
    const cJSON *msgs = field(root, "messages");
    if (!msgs) return qr_error(QR_ERR_INVALID_ARG, "'messages' is required");
    if (!cJSON_IsArray(msgs)) return qr_error(QR_ERR_INVALID_ARG, "'messages' must be an array");
    int n = cJSON_GetArraySize(msgs);
    if (n == 0) return qr_error(QR_ERR_INVALID_ARG, "'messages' must not be empty");
    r->messages = qr_calloc((size_t)n, sizeof *r->messages);
    if (!r->messages) return QR_ERR_NOMEM;
    cJSON *arr = cJSON_CreateArray();
    if (!arr) return QR_ERR_NOMEM;
    size_t i = 0;
    qr_status st = QR_OK;
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs) {
        st = parse_message(m, i, &r->messages[i], arr);
        r->n_messages = ++i;
        if (st) break;
    }
    if (!st && !(r->messages_json = cJSON_PrintUnformatted(arr))) st = QR_ERR_NOMEM;
    cJSON_Delete(arr);
    return st;
}

/* ---- structured output ---- */

/* qr_error formats into the buffer qr_last_error() reads: quote a message through a copy */
static const char *last_error_copy(char *buf, size_t size) {
    snprintf(buf, size, "%s", qr_last_error());
    return buf;
}

/* A JSON schema (an object, or true) converted to GBNF; errors name the field it came from. */
qr_status srv_schema_grammar(const cJSON *schema, const char *name, char **out) {
    if (!cJSON_IsObject(schema) && !cJSON_IsTrue(schema))
        return qr_error(QR_ERR_INVALID_ARG, "'%s' must be a JSON schema object", name);
    char *text = cJSON_PrintUnformatted(schema), msg[1024];
    if (!text) return QR_ERR_NOMEM;
    qr_status st = qr_json_schema_to_grammar(text, strlen(text), out);
    free(text);
    if (st == QR_ERR_NOMEM) return st;
    if (st)
        return qr_error(QR_ERR_INVALID_ARG, "'%s' is not a usable JSON schema: %s", name,
                        last_error_copy(msg, sizeof msg));
    return QR_OK;
}

/* OpenAI's response_format {type: text | json_object | json_schema}, llama.cpp's 'json_schema'
 * (a schema) and 'grammar' (GBNF): at most one of them; each becomes r->grammar. */
static qr_status parse_structured(const cJSON *root, srv_request *r) {
    const cJSON *rf = field(root, "response_format"), *js = field(root, "json_schema");
    const cJSON *gr = field(root, "grammar");
    const char *given[3];
    int n_given = 0;
    if (rf) {
        if (!cJSON_IsObject(rf))
            return qr_error(QR_ERR_INVALID_ARG, "'response_format' must be an object");
        const cJSON *type = field(rf, "type");
        if (!cJSON_IsString(type))
            return qr_error(QR_ERR_INVALID_ARG,
                            "'response_format.type' must be \"text\", \"json_object\" or "
                            "\"json_schema\"");
        if (!strcmp(type->valuestring, "text")) {
            rf = NULL; /* the default: nothing to follow */
        } else if (strcmp(type->valuestring, "json_object") &&
                   strcmp(type->valuestring, "json_schema")) {
            return qr_error(QR_ERR_INVALID_ARG,
                            "'response_format.type' must be \"text\", \"json_object\" or "
                            "\"json_schema\", not \"%s\"",
                            type->valuestring);
        }
        if (rf) given[n_given++] = "'response_format'";
    }
    if (js) given[n_given++] = "'json_schema'";
    if (gr) given[n_given++] = "'grammar'";
    if (n_given > 1)
        return qr_error(QR_ERR_INVALID_ARG, "%s and %s cannot be combined: give one of them",
                        given[0], given[1]);
    if (gr) {
        if (!cJSON_IsString(gr)) return qr_error(QR_ERR_INVALID_ARG, "'grammar' must be a string");
        if (!gr->valuestring[0]) return QR_OK;
        qr_status st = qr_grammar_check(gr->valuestring, NULL);
        if (st == QR_ERR_NOMEM) return st;
        char msg[1024];
        if (st)
            return qr_error(QR_ERR_INVALID_ARG, "'grammar' does not parse: %s",
                            last_error_copy(msg, sizeof msg));
        r->grammar = qr_strdup(gr->valuestring);
        return r->grammar ? QR_OK : QR_ERR_NOMEM;
    }
    if (js) return srv_schema_grammar(js, "json_schema", &r->grammar);
    if (!rf) return QR_OK;
    if (!strcmp(field(rf, "type")->valuestring, "json_object")) {
        /* any JSON object: the schema {"type": "object"}, as llama.cpp's server converts it */
        cJSON *any = cJSON_CreateObject();
        if (!any) return QR_ERR_NOMEM;
        cJSON_AddStringToObject(any, "type", "object");
        qr_status st = srv_schema_grammar(any, "response_format", &r->grammar);
        cJSON_Delete(any);
        return st;
    }
    const cJSON *def = field(rf, "json_schema");
    if (!cJSON_IsObject(def))
        return qr_error(QR_ERR_INVALID_ARG,
                        "'response_format.json_schema' must be an object {name, schema, strict}");
    const cJSON *name = field(def, "name"), *strict = field(def, "strict");
    if (name && !cJSON_IsString(name))
        return qr_error(QR_ERR_INVALID_ARG, "'response_format.json_schema.name' must be a string");
    if (strict && !cJSON_IsBool(strict))
        return qr_error(QR_ERR_INVALID_ARG,
                        "'response_format.json_schema.strict' must be a boolean");
    const cJSON *schema = field(def, "schema");
    if (!schema)
        return qr_error(QR_ERR_INVALID_ARG, "'response_format.json_schema.schema' is required");
    return srv_schema_grammar(schema, "response_format.json_schema.schema", &r->grammar);
}

/* ---- tools ---- */

/* OpenAI's function names: letters, digits, '_' and '-', at most 64 */
static bool valid_function_name(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > 64) return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-') return false;
    return true;
}

static qr_status parse_tool(const cJSON *t, int i, srv_request *r) {
    const cJSON *type = field(t, "type"), *fn = field(t, "function");
    if (!cJSON_IsObject(t) || !cJSON_IsString(type) || strcmp(type->valuestring, "function"))
        return qr_error(QR_ERR_INVALID_ARG,
                        "'tools[%d]' must be {\"type\": \"function\", \"function\": {...}}", i);
    if (!cJSON_IsObject(fn))
        return qr_error(QR_ERR_INVALID_ARG, "'tools[%d].function' must be an object", i);
    const cJSON *name = field(fn, "name"), *desc = field(fn, "description");
    if (!cJSON_IsString(name) || !valid_function_name(name->valuestring))
        return qr_error(QR_ERR_INVALID_ARG,
                        "'tools[%d].function.name' must be a string of 1 to 64 letters, digits, "
                        "'_' or '-'",
                        i);
    for (int k = 0; k < i; k++)
        if (!strcmp(r->tool_names[k], name->valuestring))
            return qr_error(QR_ERR_INVALID_ARG, "'tools[%d].function.name': '%s' is given twice", i,
                            name->valuestring);
    if (desc && !cJSON_IsString(desc))
        return qr_error(QR_ERR_INVALID_ARG, "'tools[%d].function.description' must be a string", i);
    if (!(r->tool_names[i] = qr_strdup(name->valuestring))) return QR_ERR_NOMEM;
    r->n_tools = i + 1;
    const cJSON *params = field(fn, "parameters");
    char where[64];
    snprintf(where, sizeof where, "tools[%d].function.parameters", i);
    if (params) return srv_schema_grammar(params, where, &r->tool_grammars[i]);
    /* no parameters: a function without arguments takes the empty object */
    cJSON *empty = cJSON_CreateObject();
    if (!empty) return QR_ERR_NOMEM;
    cJSON_AddStringToObject(empty, "type", "object");
    cJSON_AddItemToObject(empty, "properties", cJSON_CreateObject());
    qr_status st = srv_schema_grammar(empty, where, &r->tool_grammars[i]);
    cJSON_Delete(empty);
    return st;
}

/* tools, tool_choice ("none" | "auto" | "required" | {type: "function", function: {name}})
 * and parallel_tool_calls (default true) */
qr_status srv_parse_tools(const cJSON *root, srv_request *r) {
    const cJSON *tools = field(root, "tools"), *choice = field(root, "tool_choice");
    r->parallel_tool_calls = true;
    qr_status st = get_bool(root, "parallel_tool_calls", &r->parallel_tool_calls);
    if (st) return st;
    int n = 0;
    if (tools) {
        if (!cJSON_IsArray(tools))
            return qr_error(QR_ERR_INVALID_ARG, "'tools' must be an array of functions");
        n = cJSON_GetArraySize(tools);
    }
    if (n > 0) {
        r->tool_names = qr_calloc((size_t)n, sizeof *r->tool_names);
        r->tool_grammars = qr_calloc((size_t)n, sizeof *r->tool_grammars);
        if (!r->tool_names || !r->tool_grammars) return QR_ERR_NOMEM;
        int i = 0;
        const cJSON *t;
        cJSON_ArrayForEach(t, tools) {
            if ((st = parse_tool(t, i++, r))) return st;
        }
        if (!(r->tools_json = cJSON_PrintUnformatted(tools))) return QR_ERR_NOMEM;
    }
    r->tool_choice = n > 0 ? SRV_TOOLS_AUTO : SRV_TOOLS_NONE;
    if (!choice) return QR_OK;
    if (cJSON_IsString(choice)) {
        const char *c = choice->valuestring;
        if (!strcmp(c, "none")) {
            r->tool_choice = SRV_TOOLS_NONE;
            return QR_OK;
        }
        if (strcmp(c, "auto") && strcmp(c, "required"))
            return qr_error(QR_ERR_INVALID_ARG,
                            "'tool_choice' must be \"none\", \"auto\", \"required\" or "
                            "{\"type\": \"function\", \"function\": {\"name\": ...}}, not "
                            "\"%s\"",
                            c);
        if (n == 0)
            return qr_error(QR_ERR_INVALID_ARG, "'tool_choice' is \"%s\" but 'tools' is empty", c);
        r->tool_choice = strcmp(c, "auto") ? SRV_TOOLS_REQUIRED : SRV_TOOLS_AUTO;
        return QR_OK;
    }
    const cJSON *type = field(choice, "type"), *fn = field(choice, "function");
    const cJSON *name = field(fn, "name");
    if (!cJSON_IsObject(choice) || !cJSON_IsString(type) || strcmp(type->valuestring, "function") ||
        !cJSON_IsString(name))
        return qr_error(QR_ERR_INVALID_ARG,
                        "'tool_choice' must be \"none\", \"auto\", \"required\" or "
                        "{\"type\": \"function\", \"function\": {\"name\": ...}}");
    for (int i = 0; i < n; i++)
        if (!strcmp(r->tool_names[i], name->valuestring)) {
            r->tool_choice = SRV_TOOLS_NAMED;
            r->tool_named = i;
            return QR_OK;
        }
    return qr_error(QR_ERR_INVALID_ARG,
                    "'tool_choice' names the function '%s', which is not in 'tools'",
                    name->valuestring);
}

static qr_status parse_prompt(const cJSON *root, int32_t n_vocab, srv_request *r) {
    const cJSON *p = field(root, "prompt");
    if (!p) return qr_error(QR_ERR_INVALID_ARG, "'prompt' is required");
    if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1 && cJSON_IsString(cJSON_GetArrayItem(p, 0)))
        p = cJSON_GetArrayItem(p, 0); /* a batch of one prompt */
    if (cJSON_IsString(p)) {
        r->prompt = qr_strdup(p->valuestring);
        return r->prompt ? QR_OK : QR_ERR_NOMEM;
    }
    if (!cJSON_IsArray(p))
        return qr_error(QR_ERR_INVALID_ARG, "'prompt' must be a string or an array of token ids");
    int n = cJSON_GetArraySize(p);
    if (n == 0) return qr_error(QR_ERR_INVALID_ARG, "'prompt' must not be empty");
    r->prompt_tokens = qr_malloc((size_t)n * sizeof *r->prompt_tokens);
    if (!r->prompt_tokens) return QR_ERR_NOMEM;
    int i = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, p) {
        if (cJSON_IsString(t))
            return qr_error(QR_ERR_INVALID_ARG,
                            "'prompt': only one prompt per request is supported");
        if (!is_integer(t) || t->valuedouble < 0 || t->valuedouble >= n_vocab)
            return qr_error(QR_ERR_INVALID_ARG, "'prompt[%d]' must be a token id between 0 and %d",
                            i, n_vocab - 1);
        r->prompt_tokens[i++] = (qr_token)t->valuedouble;
    }
    r->n_prompt_tokens = n;
    return QR_OK;
}

qr_status srv_parse_stop(const cJSON *root, srv_request *r) {
    const cJSON *s = field(root, "stop");
    if (!s) return QR_OK;
    if (cJSON_IsString(s)) {
        if (!s->valuestring[0]) return QR_OK;
        r->stops[0] = qr_strdup(s->valuestring);
        if (!r->stops[0]) return QR_ERR_NOMEM;
        r->n_stops = 1;
        return QR_OK;
    }
    if (!cJSON_IsArray(s))
        return qr_error(QR_ERR_INVALID_ARG, "'stop' must be a string or an array of strings");
    if (cJSON_GetArraySize(s) > SRV_MAX_STOPS)
        return qr_error(QR_ERR_INVALID_ARG, "'stop' has more than %d strings", SRV_MAX_STOPS);
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, s) {
        if (!cJSON_IsString(e))
            return qr_error(QR_ERR_INVALID_ARG, "'stop[%d]' must be a string", i);
        i++;
        if (!e->valuestring[0]) continue;
        r->stops[r->n_stops] = qr_strdup(e->valuestring);
        if (!r->stops[r->n_stops]) return QR_ERR_NOMEM;
        r->n_stops++;
    }
    return QR_OK;
}

/* {"token id": bias in [-100, 100]}; -100 bans the token as OpenAI documents. */
static qr_status parse_logit_bias(const cJSON *root, int32_t n_vocab, srv_request *r) {
    const cJSON *lb = field(root, "logit_bias");
    if (!lb) return QR_OK;
    if (!cJSON_IsObject(lb))
        return qr_error(QR_ERR_INVALID_ARG,
                        "'logit_bias' must be an object mapping token ids to numbers");
    int n = cJSON_GetArraySize(lb);
    if (n == 0) return QR_OK;
    r->bias = qr_malloc((size_t)n * sizeof *r->bias);
    if (!r->bias) return QR_ERR_NOMEM;
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, lb) {
        char *end;
        long id = strtol(e->string, &end, 10);
        if (!e->string[0] || *end || id < 0 || id >= n_vocab)
            return qr_error(QR_ERR_INVALID_ARG,
                            "'logit_bias': key '%s' is not a token id between 0 and %d", e->string,
                            n_vocab - 1);
        if (!cJSON_IsNumber(e) || !(e->valuedouble >= -100 && e->valuedouble <= 100))
            return qr_error(QR_ERR_INVALID_ARG,
                            "'logit_bias[\"%s\"]' must be a number between -100 and 100",
                            e->string);
        r->bias[i].token = (qr_token)id;
        r->bias[i].bias = e->valuedouble <= -100 ? -INFINITY : (float)e->valuedouble;
        i++;
    }
    r->sp.n_logit_bias = i;
    r->sp.logit_bias = r->bias;
    return QR_OK;
}

/* llama.cpp's server: "dry_sequence_breakers" is a non-empty array of strings replacing the
 * default breakers; a dry_base below 1 means the default base, as there. */
static qr_status parse_dry(const cJSON *root, srv_request *r) {
    int64_t v;
    bool given;
    qr_status st;
    if ((st = get_number(root, "dry_multiplier", 0, 1e9, &r->sp.dry_multiplier))) return st;
    float base = r->sp.dry_base;
    if ((st = get_number(root, "dry_base", -1e9, 1e9, &base))) return st;
    if (base >= 1.0f) r->sp.dry_base = base;
    if ((st = get_int(root, "dry_allowed_length", 0, INT32_MAX, &v, &given))) return st;
    if (given) r->sp.dry_allowed_length = (int32_t)v;
    if ((st = get_int(root, "dry_penalty_last_n", -1, INT32_MAX, &v, &given))) return st;
    if (given) r->sp.dry_penalty_last_n = (int32_t)v;
    const cJSON *b = field(root, "dry_sequence_breakers");
    if (!b) return QR_OK;
    int n = cJSON_IsArray(b) ? cJSON_GetArraySize(b) : 0;
    if (n == 0)
        return qr_error(QR_ERR_INVALID_ARG,
                        "'dry_sequence_breakers' must be a non-empty array of strings");
    if (n > SRV_MAX_DRY_BREAKERS)
        return qr_error(QR_ERR_INVALID_ARG, "'dry_sequence_breakers' has more than %d strings",
                        SRV_MAX_DRY_BREAKERS);
    r->dry_breakers = qr_calloc((size_t)n, sizeof *r->dry_breakers);
    if (!r->dry_breakers) return QR_ERR_NOMEM;
    const cJSON *e;
    cJSON_ArrayForEach(e, b) {
        if (!cJSON_IsString(e))
            return qr_error(QR_ERR_INVALID_ARG, "'dry_sequence_breakers[%d]' must be a string",
                            r->n_dry_breakers);
        r->dry_breakers[r->n_dry_breakers] = qr_strdup(e->valuestring);
        if (!r->dry_breakers[r->n_dry_breakers]) return QR_ERR_NOMEM;
        r->n_dry_breakers++;
    }
    r->sp.dry_sequence_breakers = (const char *const *)r->dry_breakers;
    r->sp.n_dry_sequence_breakers = r->n_dry_breakers;
    return QR_OK;
}

static qr_status parse_logprobs(const cJSON *root, srv_request *r) {
    const cJSON *lp = field(root, "logprobs");
    int64_t v = 0;
    if (r->kind == SRV_CHAT) {
        qr_status st = get_bool(root, "logprobs", &r->logprobs);
        if (st) return st;
        bool given = false;
        st = get_int(root, "top_logprobs", 0, QR_MAX_TOP_LOGPROBS, &v, &given);
        if (st) return st;
        if (given && !r->logprobs)
            return qr_error(QR_ERR_INVALID_ARG, "'top_logprobs' requires 'logprobs' to be true");
        r->top_logprobs = (int32_t)v;
        return QR_OK;
    }
    /* legacy completions: logprobs is the number of alternatives (0..20) */
    if (lp && cJSON_IsBool(lp))
        return qr_error(QR_ERR_INVALID_ARG,
                        "'logprobs' must be an integer (the number of alternatives) for "
                        "/v1/completions");
    bool given = false;
    qr_status st = get_int(root, "logprobs", 0, QR_MAX_TOP_LOGPROBS, &v, &given);
    if (st) return st;
    r->logprobs = given;
    r->top_logprobs = (int32_t)v;
    return QR_OK;
}

/* Speculative decoding per request (where the server speculates): "speculative": false turns
 * it off; llama.cpp's "speculative.n_max", "speculative.n_min", "speculative.p_min". */
static qr_status parse_speculative(const cJSON *root, srv_request *r) {
    const cJSON *on = field(root, "speculative");
    if (on && !cJSON_IsBool(on))
        return qr_error(QR_ERR_INVALID_ARG, "'speculative' must be true or false");
    r->spec_off = on && cJSON_IsFalse(on);
    int64_t v;
    bool given;
    qr_status st = get_int(root, "speculative.n_max", 1, 1 << 16, &v, &given);
    if (st) return st;
    if (given) r->spec_n_max = (int32_t)v;
    if ((st = get_int(root, "speculative.n_min", 0, 1 << 16, &v, &given))) return st;
    if (given) r->spec_n_min = (int32_t)v;
    if (given && r->spec_n_max > 0 && r->spec_n_min > r->spec_n_max)
        return qr_error(QR_ERR_INVALID_ARG,
                        "'speculative.n_min' (%d) is more than 'speculative.n_max' (%d)",
                        (int)r->spec_n_min, (int)r->spec_n_max);
    return get_number(root, "speculative.p_min", 0, 1, &r->spec_p_min);
}

qr_status srv_parse_lora(const cJSON *arr, const char *label, int32_t *ids, float *scales,
                         int32_t *n) {
    if (!cJSON_IsArray(arr))
        return qr_error(QR_ERR_INVALID_ARG, "'%s' must be an array of objects with 'id' and "
                        "'scale' fields", label);
    *n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        if (*n >= QR_MAX_LORAS)
            return qr_error(QR_ERR_INVALID_ARG, "'%s' has more than %d items", label, QR_MAX_LORAS);
        const cJSON *id = cJSON_IsObject(it) ? cJSON_GetObjectItemCaseSensitive(it, "id") : NULL;
        const cJSON *sc = cJSON_IsObject(it) ? cJSON_GetObjectItemCaseSensitive(it, "scale") : NULL;
        if (!cJSON_IsNumber(id) || id->valuedouble != (double)(int32_t)id->valuedouble)
            return qr_error(QR_ERR_INVALID_ARG, "'%s[%d].id' must be an integer", label, (int)*n);
        if (!cJSON_IsNumber(sc) || !isfinite(sc->valuedouble) || fabs(sc->valuedouble) > 1e6)
            return qr_error(QR_ERR_INVALID_ARG, "'%s[%d].scale' must be a number", label,
                            (int)*n);
        ids[*n] = (int32_t)id->valuedouble;
        scales[*n] = (float)sc->valuedouble;
        (*n)++;
    }
    return QR_OK;
}

qr_status srv_lora_scales(const int32_t *ids, const float *scales, int32_t n, int32_t n_lora,
                          const char *label, float *out) {
    for (int32_t i = 0; i < QR_MAX_LORAS; i++)
        out[i] = 0.0f;
    for (int32_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= n_lora)
            return qr_error(QR_ERR_INVALID_ARG,
                            "'%s[%d].id' is %d, but the server has %d LoRA adapter%s (ids 0 to "
                            "%d)",
                            label, (int)i, (int)ids[i], (int)n_lora, n_lora == 1 ? "" : "s",
                            (int)n_lora - 1);
        out[ids[i]] = scales[i];
    }
    return QR_OK;
}

static qr_status parse_fields(const cJSON *root, srv_kind kind, int32_t n_vocab, srv_request *r) {
    r->kind = kind;
    r->max_tokens = -1;
    r->spec_n_min = -1; /* the server's */
    r->spec_p_min = -1.0f;
    r->sp = qr_sampler_default_params();
    qr_status st = kind == SRV_CHAT ? srv_parse_messages(root, r) : parse_prompt(root, n_vocab, r);
    if (st) return st;

    int64_t v;
    bool given;
    const char *max_name = kind == SRV_CHAT && field(root, "max_completion_tokens")
                               ? "max_completion_tokens"
                               : "max_tokens";
    if ((st = get_int(root, max_name, 1, INT32_MAX, &v, &given))) return st;
    if (given) r->max_tokens = (int32_t)v;
    if ((st = get_int(root, "n", 1, 1, &v, NULL)))
        return qr_error(QR_ERR_INVALID_ARG, "'n' must be 1 (one choice per request)");
    if ((st = get_number(root, "temperature", 0, 2, &r->sp.temp))) return st;
    if ((st = get_number(root, "top_p", 0, 1, &r->sp.top_p))) return st;
    if ((st = get_number(root, "min_p", 0, 1, &r->sp.min_p))) return st;
    if ((st = get_number(root, "presence_penalty", -2, 2, &r->sp.presence_penalty))) return st;
    if ((st = get_number(root, "frequency_penalty", -2, 2, &r->sp.frequency_penalty))) return st;
    if ((st = get_number(root, "repeat_penalty", 0, 10, &r->sp.repeat_penalty))) return st;
    if ((st = get_int(root, "top_k", 0, INT32_MAX, &v, &given))) return st;
    if (given) r->sp.top_k = (int32_t)v;
    /* llama.cpp's server fields for the samplers beyond OpenAI's */
    if ((st = get_number(root, "xtc_probability", 0, 1, &r->sp.xtc_probability))) return st;
    if ((st = get_number(root, "xtc_threshold", 0, 1, &r->sp.xtc_threshold))) return st;
    if ((st = get_int(root, "mirostat", 0, 2, &v, &given))) return st;
    if (given) r->sp.mirostat = (int32_t)v;
    if ((st = get_number(root, "mirostat_tau", 0, 1e9, &r->sp.mirostat_tau))) return st;
    if ((st = get_number(root, "mirostat_eta", 0, 1e9, &r->sp.mirostat_eta))) return st;
    if ((st = parse_dry(root, r))) return st;
    /* JSON numbers are doubles: seeds are exact up to 2^53; -1 asks for a random one */
    if ((st = get_int(root, "seed", INT64_MIN / 2, INT64_MAX / 2, &v, &given))) return st;
    if (given) r->sp.seed = (uint64_t)v;
    if ((st = srv_parse_stop(root, r))) return st;
    if ((st = parse_logit_bias(root, n_vocab, r))) return st;
    if ((st = parse_logprobs(root, r))) return st;
    r->sp.n_probs = r->logprobs ? (r->top_logprobs > 0 ? r->top_logprobs : 1) : 0;
    if ((st = get_bool(root, "stream", &r->stream))) return st;
    const cJSON *so = field(root, "stream_options");
    if (so) {
        if (!cJSON_IsObject(so))
            return qr_error(QR_ERR_INVALID_ARG, "'stream_options' must be an object");
        const cJSON *iu = field(so, "include_usage");
        if (iu && !cJSON_IsBool(iu))
            return qr_error(QR_ERR_INVALID_ARG, "'stream_options.include_usage' must be a boolean");
        r->include_usage = iu && cJSON_IsTrue(iu);
    }
    if ((st = parse_structured(root, r))) return st;
    if ((st = parse_speculative(root, r))) return st;
    if ((st = get_int(root, "n_keep", -1, INT32_MAX, &v, &r->n_keep_given))) return st;
    if (r->n_keep_given) r->n_keep = (int32_t)v;
    if ((st = get_int(root, "n_discard", 0, INT32_MAX, &v, &given))) return st;
    if (given) r->n_discard = (int32_t)v;
    const cJSON *lora = field(root, "lora");
    if (lora) {
        r->has_lora = true;
        if ((st = srv_parse_lora(lora, "lora", r->lora_id, r->lora_item_scale, &r->n_lora_items)))
            return st;
    }
    if (kind == SRV_CHAT && (st = srv_parse_tools(root, r))) return st;
    if (r->grammar && r->tool_choice != SRV_TOOLS_NONE)
        return qr_error(QR_ERR_INVALID_ARG,
                        "'tools' cannot be combined with 'response_format', 'json_schema' or "
                        "'grammar' (unless tool_choice is \"none\")");
    r->sp.grammar = r->grammar;
    const cJSON *model = field(root, "model");
    if (model && !cJSON_IsString(model))
        return qr_error(QR_ERR_INVALID_ARG, "'model' must be a string");
    return QR_OK;
}

qr_status srv_parse_request(const char *body, size_t len, srv_kind kind, int32_t n_vocab,
                            srv_request *out) {
    memset(out, 0, sizeof *out);
    cJSON *root;
    qr_status st = parse_object(body, len, &root);
    if (st) return st;
    st = parse_fields(root, kind, n_vocab, out);
    cJSON_Delete(root);
    if (st) srv_request_free(out);
    return st;
}

void srv_request_free(srv_request *r) {
    for (size_t i = 0; i < r->n_messages; i++) {
        free((char *)r->messages[i].role);
        free((char *)r->messages[i].content);
    }
    free(r->messages);
    free(r->prompt);
    free(r->prompt_tokens);
    free(r->bias);
    for (int i = 0; i < r->n_dry_breakers; i++)
        free(r->dry_breakers[i]);
    free(r->dry_breakers);
    for (int i = 0; i < r->n_stops; i++)
        free(r->stops[i]);
    free(r->messages_json);
    free(r->grammar);
    free(r->tools_json);
    for (int i = 0; i < r->n_tools; i++) {
        free(r->tool_names[i]);
        free(r->tool_grammars[i]);
    }
    free(r->tool_names);
    free(r->tool_grammars);
    for (int i = 0; i < 4; i++) {
        free(r->trigger_words[i]);
        free(r->trigger_patterns[i]);
    }
    memset(r, 0, sizeof *r);
}

qr_status srv_parse_tokenize(const char *body, size_t len, srv_tokenize_request *out) {
    memset(out, 0, sizeof *out);
    cJSON *root;
    qr_status st = parse_object(body, len, &root);
    if (st) return st;
    const cJSON *c = field(root, "content");
    if (!c)
        st = qr_error(QR_ERR_INVALID_ARG, "'content' is required");
    else if (!cJSON_IsString(c))
        st = qr_error(QR_ERR_INVALID_ARG, "'content' must be a string");
    if (!st) st = get_bool(root, "add_special", &out->add_special);
    out->parse_special = true; /* llama.cpp's server parses special tokens in content */
    if (!st) st = get_bool(root, "parse_special", &out->parse_special);
    if (!st) st = get_bool(root, "with_pieces", &out->with_pieces);
    if (!st && !(out->content = qr_strdup(c->valuestring))) st = QR_ERR_NOMEM;
    cJSON_Delete(root);
    return st;
}

qr_status srv_parse_detokenize(const char *body, size_t len, int32_t n_vocab, qr_token **tokens,
                               int32_t *n_tokens) {
    *tokens = NULL;
    *n_tokens = 0;
    cJSON *root;
    qr_status st = parse_object(body, len, &root);
    if (st) return st;
    const cJSON *a = field(root, "tokens");
    if (!a)
        st = qr_error(QR_ERR_INVALID_ARG, "'tokens' is required");
    else if (!cJSON_IsArray(a))
        st = qr_error(QR_ERR_INVALID_ARG, "'tokens' must be an array of token ids");
    int n = st ? 0 : cJSON_GetArraySize(a);
    qr_token *t = st ? NULL : qr_malloc(((size_t)n + 1) * sizeof *t);
    if (!st && !t) st = QR_ERR_NOMEM;
    int i = 0;
    const cJSON *e;
    if (!st) cJSON_ArrayForEach(e, a) {
            if (!is_integer(e) || e->valuedouble < 0 || e->valuedouble >= n_vocab) {
                st = qr_error(QR_ERR_INVALID_ARG,
                              "'tokens[%d]' must be a token id between 0 and %d", i, n_vocab - 1);
                break;
            }
            t[i++] = (qr_token)e->valuedouble;
        }
    cJSON_Delete(root);
    if (st) {
        free(t);
        return st;
    }
    *tokens = t;
    *n_tokens = n;
    return QR_OK;
}
