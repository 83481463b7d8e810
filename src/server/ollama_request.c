/* ollama_request.c - parsing and validating the bodies of ollama's REST routes (/api/generate,
 * /api/chat, and the {"model"} of /api/show, /api/delete, /api/pull) into the same srv_request
 * the OpenAI routes produce, with ollama's defaults for the sampler options (its api/types.go
 * DefaultOptions). As ollama does, unknown fields and options are ignored; a known field of
 * the wrong type is a 400 naming it. */
#include "server/server_internal.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* {"type": "object"}: ollama's format "json" is its json grammar, whose root is an object */
static qr_status json_object_grammar(char **out) {
    cJSON *any = cJSON_CreateObject();
    if (!any) return QR_ERR_NOMEM;
    cJSON_AddStringToObject(any, "type", "object");
    qr_status st = srv_schema_grammar(any, "format", out);
    cJSON_Delete(any);
    return st;
}

/* format: "json", a JSON schema object, or "" / null (none) */
static qr_status parse_format(const cJSON *root, srv_request *r) {
    const cJSON *f = srv_json_field(root, "format");
    if (!f || (cJSON_IsString(f) && !f->valuestring[0])) return QR_OK;
    qr_status st;
    if (cJSON_IsString(f) && !strcmp(f->valuestring, "json"))
        st = json_object_grammar(&r->grammar);
    else if (cJSON_IsObject(f))
        st = srv_schema_grammar(f, "format", &r->grammar);
    else
        return qr_error(QR_ERR_INVALID_ARG,
                        "invalid format: 'format' must be \"json\" or a JSON schema object");
    r->sp.grammar = r->grammar;
    return st;
}

/* options: the Modelfile parameters ollama's runner honours; the rest (num_gpu, num_thread,
 * use_mmap, ...) only tune ollama's own runner and are accepted without effect. */
static qr_status parse_options(const cJSON *root, srv_request *r) {
    qr_sampler_params *sp = &r->sp;
    *sp = qr_sampler_default_params();
    sp->temp = 0.8f;
    sp->top_k = 40;
    sp->top_p = 0.9f;
    sp->min_p = 0.0f;
    sp->repeat_penalty = 1.0f;
    sp->repeat_last_n = 64;
    sp->seed = QR_SEED_RANDOM;
    r->max_tokens = -1;
    r->spec_n_min = -1; /* speculation as the server's */
    r->spec_p_min = -1.0f;
    const cJSON *o = srv_json_field(root, "options");
    if (!o) return QR_OK;
    if (!cJSON_IsObject(o)) return qr_error(QR_ERR_INVALID_ARG, "'options' must be an object");
    static const struct {
        const char *name;
        double lo, hi;
        size_t offset;
    } floats[] = {
        {"temperature", 0, 1e6, offsetof(qr_sampler_params, temp)},
        {"top_p", 0, 1, offsetof(qr_sampler_params, top_p)},
        {"min_p", 0, 1, offsetof(qr_sampler_params, min_p)},
        {"typical_p", 0, 1, offsetof(qr_sampler_params, typical_p)},
        {"repeat_penalty", 0, 1e6, offsetof(qr_sampler_params, repeat_penalty)},
        {"presence_penalty", -1e6, 1e6, offsetof(qr_sampler_params, presence_penalty)},
        {"frequency_penalty", -1e6, 1e6, offsetof(qr_sampler_params, frequency_penalty)},
        {"mirostat_tau", 0, 1e6, offsetof(qr_sampler_params, mirostat_tau)},
        {"mirostat_eta", 0, 1e6, offsetof(qr_sampler_params, mirostat_eta)},
    };
    char label[64];
    qr_status st;
    for (size_t i = 0; i < sizeof floats / sizeof floats[0]; i++) {
        snprintf(label, sizeof label, "options.%s", floats[i].name);
        float *dst = (float *)((char *)sp + floats[i].offset);
        if ((st = srv_json_number(o, floats[i].name, label, floats[i].lo, floats[i].hi, dst)))
            return st;
    }
    int64_t v;
    bool given;
    if ((st = srv_json_int(o, "top_k", "options.top_k", INT32_MIN, INT32_MAX, &v, &given)))
        return st;
    if (given) sp->top_k = v > 0 ? (int32_t)v : 0; /* 0 or less: off */
    if ((st = srv_json_int(o, "repeat_last_n", "options.repeat_last_n", -1, INT32_MAX, &v, &given)))
        return st;
    if (given) sp->repeat_last_n = (int32_t)v;
    if ((st = srv_json_int(o, "mirostat", "options.mirostat", 0, 2, &v, &given))) return st;
    if (given) sp->mirostat = (int32_t)v;
    /* seed: a negative one asks for a random seed, as ollama's -1 */
    if ((st = srv_json_int(o, "seed", "options.seed", INT64_MIN / 2, INT64_MAX / 2, &v, &given)))
        return st;
    if (given) sp->seed = v < 0 ? QR_SEED_RANDOM : (uint64_t)v;
    /* num_predict: > 0 a limit; -1 (and 0, as ollama's runner) none; -2 until the context is
     * full, which is where an unlimited generation stops here too */
    if ((st = srv_json_int(o, "num_predict", "options.num_predict", INT32_MIN, INT32_MAX, &v,
                           &given)))
        return st;
    if (given) r->max_tokens = v > 0 ? (int32_t)v : -1;
    if ((st = srv_json_int(o, "num_ctx", "options.num_ctx", 1, INT32_MAX, &v, &given))) return st;
    if (given) r->n_ctx_limit = (int32_t)v;
    const cJSON *stop = srv_json_field(o, "stop");
    if (stop && !cJSON_IsString(stop) && !cJSON_IsArray(stop))
        return qr_error(QR_ERR_INVALID_ARG,
                        "'options.stop' must be a string or an array of strings");
    return srv_parse_stop(o, r);
}

/* keep_alive: a duration string ("5m", "-1") or a number of seconds; the model never unloads
 * here, so only its type is checked, and whether it is 0 (ollama's "unload"). */
static qr_status parse_keep_alive(const cJSON *root, bool *zero) {
    const cJSON *k = srv_json_field(root, "keep_alive");
    *zero = false;
    if (!k) return QR_OK;
    if (cJSON_IsNumber(k)) {
        *zero = k->valuedouble == 0;
        return QR_OK;
    }
    if (cJSON_IsString(k)) {
        char *end;
        double d = strtod(k->valuestring, &end);
        *zero = end != k->valuestring && d == 0;
        return QR_OK;
    }
    return qr_error(QR_ERR_INVALID_ARG,
                    "'keep_alive' must be a duration string (\"5m\") or a number of seconds");
}

static qr_status get_string(const cJSON *root, const char *name, char **out) {
    const cJSON *f = srv_json_field(root, name);
    if (!f) return QR_OK;
    if (!cJSON_IsString(f)) return qr_error(QR_ERR_INVALID_ARG, "'%s' must be a string", name);
    *out = qr_strdup(f->valuestring);
    return *out ? QR_OK : QR_ERR_NOMEM;
}

/* images and thinking need a vision projector or a thinking model: refuse them rather than
 * answer as if they had been seen */
static qr_status refuse_unsupported(const cJSON *root) {
    const cJSON *images = srv_json_field(root, "images");
    if (images && (!cJSON_IsArray(images) || cJSON_GetArraySize(images) > 0))
        return qr_error(QR_ERR_INVALID_ARG, "'images': the model does not support images");
    const cJSON *think = srv_json_field(root, "think");
    if (think && !cJSON_IsFalse(think))
        return qr_error(QR_ERR_INVALID_ARG, "'think': the model does not support thinking");
    const cJSON *suffix = srv_json_field(root, "suffix");
    if (suffix && (!cJSON_IsString(suffix) || suffix->valuestring[0]))
        return qr_error(QR_ERR_INVALID_ARG, "'suffix': the model does not support insert");
    return QR_OK;
}

static qr_status parse_chat(const cJSON *root, srv_ollama_request *o) {
    const cJSON *msgs = srv_json_field(root, "messages");
    if (msgs && !cJSON_IsArray(msgs))
        return qr_error(QR_ERR_INVALID_ARG, "'messages' must be an array");
    int i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs) {
        const cJSON *images = cJSON_IsObject(m) ? srv_json_field(m, "images") : NULL;
        if (cJSON_IsArray(images) && cJSON_GetArraySize(images) > 0)
            return qr_error(QR_ERR_INVALID_ARG,
                            "'messages[%d].images': the model does not support images", i);
        i++;
    }
    if (i == 0) { /* no messages: ollama loads the model and answers at once */
        o->load_only = true;
        return QR_OK;
    }
    qr_status st = srv_parse_messages(root, &o->req);
    if (!st) st = srv_parse_tools(root, &o->req);
    return st;
}

static qr_status parse_fields(const cJSON *root, srv_kind kind, srv_ollama_request *o) {
    srv_request *r = &o->req;
    r->kind = kind;
    const cJSON *model = srv_json_field(root, "model");
    if (!model) return qr_error(QR_ERR_INVALID_ARG, "'model' is required");
    if (!cJSON_IsString(model)) return qr_error(QR_ERR_INVALID_ARG, "'model' must be a string");
    if (!(o->model = qr_strdup(model->valuestring))) return QR_ERR_NOMEM;
    qr_status st = refuse_unsupported(root);
    if (!st) st = parse_options(root, r);
    if (!st) st = parse_format(root, r);
    if (st) return st;
    r->stream = true; /* ollama streams unless told not to */
    if ((st = srv_json_bool(root, "stream", "stream", &r->stream))) return st;
    bool zero_keep_alive;
    if ((st = parse_keep_alive(root, &zero_keep_alive))) return st;
    if (kind == SRV_CHAT) {
        st = parse_chat(root, o);
    } else {
        if ((st = srv_json_bool(root, "raw", "raw", &o->raw))) return st;
        if ((st = get_string(root, "system", &o->system))) return st;
        /* a template is Go template source for ollama's engine, which Quarrel does not run:
         * only the identity template "{{ .Prompt }}" is honoured (as raw); others are ignored
         * and the chat template applies */
        char *tmpl = NULL;
        if ((st = get_string(root, "template", &tmpl))) return st;
        if (tmpl && !strcmp(tmpl, "{{ .Prompt }}")) o->raw = true;
        free(tmpl);
        if ((st = get_string(root, "prompt", &r->prompt))) return st;
        const cJSON *ctx = srv_json_field(root, "context");
        if (ctx && !cJSON_IsArray(ctx))
            return qr_error(QR_ERR_INVALID_ARG, "'context' must be an array of token ids");
        o->load_only = !r->prompt || !r->prompt[0];
    }
    if (st) return st;
    o->unload = o->load_only && zero_keep_alive;
    if (r->grammar && r->tool_choice != SRV_TOOLS_NONE)
        return qr_error(QR_ERR_INVALID_ARG, "'tools' cannot be combined with 'format'");
    return QR_OK;
}

qr_status srv_parse_ollama(const char *body, size_t len, srv_kind kind, srv_ollama_request *out) {
    memset(out, 0, sizeof *out);
    cJSON *root;
    qr_status st = srv_json_parse_object(body, len, &root);
    if (st) return st;
    st = parse_fields(root, kind, out);
    cJSON_Delete(root);
    if (st) srv_ollama_request_free(out);
    return st;
}

void srv_ollama_request_free(srv_ollama_request *r) {
    srv_request_free(&r->req);
    free(r->model);
    free(r->system);
    memset(r, 0, sizeof *r);
}

qr_status srv_parse_ollama_model(const char *body, size_t len, srv_ollama_model_request *out) {
    memset(out, 0, sizeof *out);
    out->stream = true;
    cJSON *root;
    qr_status st = srv_json_parse_object(body, len, &root);
    if (st) return st;
    /* ollama's older clients send "name", newer ones "model" */
    const cJSON *m = srv_json_field(root, "model");
    const char *which = "model";
    if (!m || (cJSON_IsString(m) && !m->valuestring[0])) {
        const cJSON *n = srv_json_field(root, "name");
        if (n) {
            m = n;
            which = "name";
        }
    }
    if (!m || (cJSON_IsString(m) && !m->valuestring[0]))
        st = qr_error(QR_ERR_INVALID_ARG, "'model' is required");
    else if (!cJSON_IsString(m))
        st = qr_error(QR_ERR_INVALID_ARG, "'%s' must be a string", which);
    if (!st) st = srv_json_bool(root, "verbose", "verbose", &out->verbose);
    if (!st) st = srv_json_bool(root, "insecure", "insecure", &out->insecure);
    if (!st) st = srv_json_bool(root, "stream", "stream", &out->stream);
    if (!st && !(out->model = qr_strdup(m->valuestring))) st = QR_ERR_NOMEM;
    cJSON_Delete(root);
    return st;
}

bool srv_ollama_name_matches(const char *served, const char *name) {
    if (!strcmp(served, name)) return true;
    static const char latest[] = ":latest";
    size_t ns = strlen(served), nn = strlen(name), nl = sizeof latest - 1;
    /* one of them is the other with ":latest" */
    if (nn == ns + nl && !strncmp(name, served, ns) && !strcmp(name + ns, latest)) return true;
    return ns == nn + nl && !strncmp(served, name, nn) && !strcmp(served + nn, latest);
}
