/* ollama.c - ollama's REST API (its docs/api.md) on the same scheduler, slots, auth and metrics
 * as the OpenAI routes: /api/generate and /api/chat (NDJSON streams by default, the last
 * object with done_reason and durations in nanoseconds), /api/tags, /api/ps, /api/show,
 * /api/version, /api/delete and /api/pull. The one model served is the only one these routes
 * know: a request naming another gets ollama's 404. Errors are ollama's {"error": "..."}. */
#include "server/http_internal.h"
#include "util/util.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* Quarrel's version, as /api/version reports it (ollama reports its own there) */
#define QUARREL_VERSION "0.1.0"

/* RFC 3339 in UTC with nanoseconds, as Go's time.Time marshals ("2023-08-04T19:22:45.4991Z") */
static void rfc3339(const struct timespec *ts, char out[48]) {
    struct tm tm;
    gmtime_r(&ts->tv_sec, &tm);
    size_t n = strftime(out, 48, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 48 - n, ".%09ldZ", ts->tv_nsec);
}

static void add_time(cJSON *o, const char *name, const struct timespec *ts) {
    char buf[48];
    rfc3339(ts, buf);
    cJSON_AddStringToObject(o, name, buf);
}

static void add_now(cJSON *o, const char *name) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    add_time(o, name, &ts);
}

static void add_ns(cJSON *o, const char *name, double seconds) {
    cJSON_AddNumberToObject(o, name, seconds > 0 ? floor(seconds * 1e9) : 0);
}

/* ---- the served model as ollama describes models ---- */

/* The name /api/tags lists: ollama's NAME:TAG, the tag "latest" when the name has none */
static void display_name(const server *srv, char *out, size_t size) {
    const char *slash = strrchr(srv->model_name, '/');
    bool tagged = strchr(slash ? slash : srv->model_name, ':') != NULL;
    snprintf(out, size, "%s%s", srv->model_name, tagged ? "" : ":latest");
}

/* llama.cpp's file types (general.file_type) by the names ollama shows */
static const char *file_type_name(uint32_t t) {
    static const char *const names[] = {
        [0] = "F32",      [1] = "F16",      [2] = "Q4_0",    [3] = "Q4_1",    [7] = "Q8_0",
        [8] = "Q5_0",     [9] = "Q5_1",     [10] = "Q2_K",   [11] = "Q3_K_S", [12] = "Q3_K_M",
        [13] = "Q3_K_L",  [14] = "Q4_K_S",  [15] = "Q4_K_M", [16] = "Q5_K_S", [17] = "Q5_K_M",
        [18] = "Q6_K",    [19] = "IQ2_XXS", [20] = "IQ2_XS", [21] = "Q2_K_S", [22] = "IQ3_XS",
        [23] = "IQ3_XXS", [24] = "IQ1_S",   [25] = "IQ4_NL", [26] = "IQ3_S",  [27] = "IQ3_M",
        [28] = "IQ2_S",   [29] = "IQ2_M",   [30] = "IQ4_XS", [31] = "IQ1_M",  [32] = "BF16",
        [36] = "TQ1_0",   [37] = "TQ2_0",
    };
    return t < sizeof names / sizeof names[0] && names[t] ? names[t] : "unknown";
}

/* ollama's format.HumanNumber: 8.0B, 135.00M, 260K */
static void human_number(uint64_t n, char out[32]) {
    double v = (double)n;
    if (n >= 1000000000ULL)
        snprintf(out, 32, v / 1e9 == floor(v / 1e9) ? "%.0fB" : "%.1fB", v / 1e9);
    else if (n >= 1000000ULL)
        snprintf(out, 32, v / 1e6 == floor(v / 1e6) ? "%.0fM" : "%.2fM", v / 1e6);
    else if (n >= 1000ULL)
        snprintf(out, 32, "%.0fK", v / 1e3);
    else
        snprintf(out, 32, "%llu", (unsigned long long)n);
}

static cJSON *model_details(const server *srv) {
    const qr_gguf *g = qr_model_gguf(srv->model);
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "parent_model", "");
    cJSON_AddStringToObject(d, "format", "gguf");
    cJSON_AddStringToObject(d, "family", qr_model_arch(srv->model));
    cJSON *fam = cJSON_AddArrayToObject(d, "families");
    cJSON_AddItemToArray(fam, cJSON_CreateString(qr_model_arch(srv->model)));
    char size[32];
    human_number(qr_model_n_params(srv->model), size);
    cJSON_AddStringToObject(d, "parameter_size", size);
    uint32_t ft = 0;
    cJSON_AddStringToObject(d, "quantization_level",
                            qr_gguf_get_u32(g, "general.file_type", &ft) ? file_type_name(ft)
                                                                         : "unknown");
    return d;
}

/* name, model, size, digest, details (and modified_at for /api/tags). A model from ollama's
 * store is the blob sha256-HEX: its digest is that of the GGUF layer (ollama's is the
 * manifest's, which the served file does not know); another file has none. */
static cJSON *model_entry(const server *srv, bool modified) {
    cJSON *m = cJSON_CreateObject();
    char name[300];
    display_name(srv, name, sizeof name);
    cJSON_AddStringToObject(m, "name", name);
    cJSON_AddStringToObject(m, "model", name);
    struct stat sb;
    bool have_stat = stat(srv->p.model_path, &sb) == 0;
    if (modified && have_stat) add_time(m, "modified_at", &sb.st_mtim);
    cJSON_AddNumberToObject(m, "size", have_stat ? (double)sb.st_size : 0);
    const char *base = strrchr(srv->p.model_path, '/');
    base = base ? base + 1 : srv->p.model_path;
    bool blob = !strncmp(base, "sha256-", 7) && strlen(base) == 7 + 64;
    cJSON_AddStringToObject(m, "digest", blob ? base + 7 : "");
    cJSON_AddItemToObject(m, "details", model_details(srv));
    return m;
}

enum MHD_Result srv_handle_ollama_tags(server *srv, conn *cs, struct MHD_Connection *c) {
    (void)cs;
    cJSON *root = cJSON_CreateObject();
    cJSON *models = cJSON_AddArrayToObject(root, "models");
    cJSON_AddItemToArray(models, model_entry(srv, true));
    return srv_send_json(srv, c, 200, root);
}

enum MHD_Result srv_handle_ollama_ps(server *srv, conn *cs, struct MHD_Connection *c) {
    (void)cs;
    cJSON *root = cJSON_CreateObject();
    cJSON *models = cJSON_AddArrayToObject(root, "models");
    cJSON *m = model_entry(srv, false);
    /* the model stays loaded while the server runs: ollama's keep_alive -1 answer */
    struct timespec never = {.tv_sec = 253402300799}; /* 9999-12-31T23:59:59Z */
    add_time(m, "expires_at", &never);
    cJSON_AddNumberToObject(m, "size_vram", 0);
    cJSON_AddNumberToObject(m, "context_length", srv_scheduler_n_ctx_slot(srv->sched));
    cJSON_AddItemToArray(models, m);
    return srv_send_json(srv, c, 200, root);
}

enum MHD_Result srv_handle_ollama_version(server *srv, conn *cs, struct MHD_Connection *c) {
    (void)cs;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "version", QUARREL_VERSION);
    return srv_send_json(srv, c, 200, o);
}

/* A GGUF metadata value as JSON; arrays past `limit` elements come out empty, as ollama's
 * token lists do unless verbose. */
static cJSON *gguf_json(const qr_gguf_value *v, uint64_t limit) {
    switch (v->type) {
    case QR_GGUF_UINT8:
    case QR_GGUF_UINT16:
    case QR_GGUF_UINT32:
    case QR_GGUF_UINT64:
        return cJSON_CreateNumber((double)v->u64);
    case QR_GGUF_INT8:
    case QR_GGUF_INT16:
    case QR_GGUF_INT32:
    case QR_GGUF_INT64:
        return cJSON_CreateNumber((double)v->i64);
    case QR_GGUF_FLOAT32:
    case QR_GGUF_FLOAT64:
        return cJSON_CreateNumber(v->f64);
    case QR_GGUF_BOOL:
        return cJSON_CreateBool(v->b);
    case QR_GGUF_STRING:
        return cJSON_CreateString(v->str.ptr);
    case QR_GGUF_ARRAY:
        break;
    }
    cJSON *a = cJSON_CreateArray();
    if (v->arr.n > limit) return a;
    for (uint64_t j = 0; j < v->arr.n; j++) {
        cJSON *e;
        switch (v->arr.type) {
        case QR_GGUF_STRING:
        case QR_GGUF_ARRAY:
            e = gguf_json(&v->arr.items[j], limit);
            break;
        case QR_GGUF_FLOAT32:
        case QR_GGUF_FLOAT64:
            e = cJSON_CreateNumber(qr_gguf_arr_f64(v, j));
            break;
        case QR_GGUF_BOOL:
            e = cJSON_CreateBool(qr_gguf_arr_i64(v, j) != 0);
            break;
        default:
            e = cJSON_CreateNumber((double)qr_gguf_arr_i64(v, j));
            break;
        }
        cJSON_AddItemToArray(a, e);
    }
    return a;
}

enum MHD_Result srv_handle_ollama_show(server *srv, conn *cs, struct MHD_Connection *c) {
    srv_ollama_model_request mr;
    if (srv_parse_ollama_model(cs->body.data, cs->body.len, &mr))
        return srv_send_ollama_error(srv, c, 400, "%s", qr_last_error());
    bool known = srv_ollama_name_matches(srv->model_name, mr.model);
    enum MHD_Result ret;
    if (!known) {
        ret = srv_send_ollama_error(srv, c, 404, "model '%s' not found", mr.model);
        free(mr.model);
        return ret;
    }
    free(mr.model);
    const qr_gguf *g = qr_model_gguf(srv->model);
    cJSON *root = cJSON_CreateObject();
    srv_buf mf = {0};
    srv_buf_printf(&mf, "# Modelfile generated by quarrel\nFROM %s\n", srv->p.model_path);
    cJSON_AddStringToObject(root, "modelfile", mf.data ? mf.data : "");
    srv_buf_free(&mf);
    char params[64];
    snprintf(params, sizeof params, "num_ctx %d", srv_scheduler_n_ctx_slot(srv->sched));
    cJSON_AddStringToObject(root, "parameters", params);
    cJSON_AddStringToObject(root, "template", srv->has_template ? srv->tmpl : "");
    cJSON_AddItemToObject(root, "details", model_details(srv));
    cJSON *info = cJSON_AddObjectToObject(root, "model_info");
    for (int64_t i = 0; i < qr_gguf_n_kv(g); i++) {
        const char *key = qr_gguf_key(g, i);
        if (!strcmp(key, "tokenizer.chat_template")) continue; /* it is "template" */
        /* the vocabulary's lists come out empty unless verbose, as in ollama */
        bool vocab =
            !strncmp(key, "tokenizer.ggml.", 15) && qr_gguf_value_at(g, i)->type == QR_GGUF_ARRAY;
        uint64_t limit = mr.verbose ? UINT64_MAX : vocab ? 0 : 1024;
        cJSON_AddItemToObject(info, key, gguf_json(qr_gguf_value_at(g, i), limit));
    }
    /* what the model is for, as ollama decides it: a GGUF declaring a pooling type is an
     * embedding model; tools when the chat template renders them */
    char key[128];
    snprintf(key, sizeof key, "%s.pooling_type", qr_model_arch(srv->model));
    bool embedding = qr_gguf_find_key(g, key) >= 0;
    cJSON *caps = cJSON_AddArrayToObject(root, "capabilities");
    cJSON_AddItemToArray(caps, cJSON_CreateString(embedding ? "embedding" : "completion"));
    if (srv->has_template && strstr(srv->tmpl, "tools"))
        cJSON_AddItemToArray(caps, cJSON_CreateString("tools"));
    struct stat sb;
    if (stat(srv->p.model_path, &sb) == 0) add_time(root, "modified_at", &sb.st_mtim);
    return srv_send_json(srv, c, 200, root);
}

/* ---- /api/generate and /api/chat ---- */

/* {"model", "created_at"} and the text as generate's "response" or chat's message */
static cJSON *reply_object(const conn *cs, const char *text, size_t n) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", cs->model);
    add_now(o, "created_at");
    char *clean = srv_utf8_sanitize(text ? text : "", text ? n : 0);
    if (cs->chat) {
        cJSON *m = cJSON_AddObjectToObject(o, "message");
        cJSON_AddStringToObject(m, "role", "assistant");
        cJSON_AddStringToObject(m, "content", clean ? clean : "");
    } else {
        cJSON_AddStringToObject(o, "response", clean ? clean : "");
    }
    free(clean);
    return o;
}

/* tool calls in ollama's shape: [{function: {name, arguments: {...}}}], arguments an object */
static void add_tool_calls(cJSON *o, const qr_tool_parse *p) {
    cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "message");
    if (!m || p->n_calls == 0) return;
    cJSON *calls = cJSON_AddArrayToObject(m, "tool_calls");
    for (int i = 0; i < p->n_calls; i++) {
        cJSON *call = cJSON_CreateObject(), *fn = cJSON_AddObjectToObject(call, "function");
        cJSON_AddStringToObject(fn, "name", p->calls[i].name);
        cJSON *args = cJSON_Parse(p->calls[i].arguments);
        cJSON_AddItemToObject(fn, "arguments", args ? args : cJSON_CreateObject());
        cJSON_AddItemToArray(calls, call);
    }
}

/* The last object's fields: done, done_reason and the durations (nanoseconds) */
static void add_done(const server *srv, cJSON *o, const srv_task *t) {
    (void)srv;
    cJSON_AddBoolToObject(o, "done", true);
    cJSON_AddStringToObject(o, "done_reason", t->finish_reason ? t->finish_reason : "stop");
    double start = t->t_start > 0 ? t->t_start : t->t_arrival;
    double first = t->t_first > 0 ? t->t_first : t->t_end;
    add_ns(o, "total_duration", t->t_end - t->t_arrival);
    add_ns(o, "load_duration", 0); /* the model was loaded when the server started */
    cJSON_AddNumberToObject(o, "prompt_eval_count", t->n_prompt);
    add_ns(o, "prompt_eval_duration", first - start);
    cJSON_AddNumberToObject(o, "eval_count", t->n_generated);
    add_ns(o, "eval_duration", t->t_end - first);
}

static bool ndjson_append(srv_buf *b, cJSON *o /* taken */) {
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    bool ok = s && srv_buf_append(b, s, strlen(s)) && srv_buf_append(b, "\n", 1);
    free(s);
    return ok;
}

/* The streamed objects of what the task produced since the last call (lock held). With tools,
 * text that may be a call waits for the end, where the calls come in one object. */
static bool ollama_collect_locked(server *srv, conn *cs, const srv_task *t) {
    bool tools = t->req.parse_tools;
    size_t ready = srv_stream_ready(cs, t);
    cs->tokens_sent = t->n_tokens;
    cs->first_sent = true;
    bool ok = true;
    if (ready > cs->text_sent) {
        cJSON *o = reply_object(cs, t->text.data + cs->text_sent, ready - cs->text_sent);
        cJSON_AddBoolToObject(o, "done", false);
        ok = ndjson_append(&cs->out, o);
        cs->text_sent = ready;
    }
    if (!t->finished || !ok) return ok;
    cs->ended = true;
    if (t->error) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "error", t->error);
        return ndjson_append(&cs->out, o);
    }
    if (tools) {
        qr_tool_parse p;
        if (srv_parse_output(srv, t, &p)) return false;
        size_t n = strlen(p.content);
        const char *rest = n > cs->text_sent ? p.content + cs->text_sent : "";
        if (rest[0] || p.n_calls > 0) {
            cJSON *o = reply_object(cs, rest, strlen(rest));
            add_tool_calls(o, &p);
            cJSON_AddBoolToObject(o, "done", false);
            ok = ndjson_append(&cs->out, o);
        }
        qr_tool_parse_free(&p);
    }
    cJSON *o = reply_object(cs, "", 0);
    add_done(srv, o, t);
    return ok && ndjson_append(&cs->out, o);
}

/* /api/generate with a chat template: the system message and the prompt as a conversation */
static qr_status generate_messages(const srv_ollama_request *o, char **out) {
    cJSON *arr = cJSON_CreateArray();
    if (o->system) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", "system");
        cJSON_AddStringToObject(m, "content", o->system);
        cJSON_AddItemToArray(arr, m);
    }
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "user");
    cJSON_AddStringToObject(m, "content", o->req.prompt);
    cJSON_AddItemToArray(arr, m);
    *out = cJSON_PrintUnformatted(arr);
    cJSON_Delete(arr);
    return *out ? QR_OK : QR_ERR_NOMEM;
}

static enum MHD_Result handle(server *srv, conn *cs, struct MHD_Connection *c, srv_kind kind) {
    srv_ollama_request o;
    if (srv_parse_ollama(cs->body.data, cs->body.len, kind, &o))
        return srv_send_ollama_error(srv, c, 400, "%s", qr_last_error());
    snprintf(cs->model, sizeof cs->model, "%s", o.model);
    cs->chat = kind == SRV_CHAT;
    if (!srv_ollama_name_matches(srv->model_name, o.model)) {
        srv_ollama_request_free(&o);
        return srv_send_ollama_error(srv, c, 404, "model '%s' not found", cs->model);
    }
    if (o.load_only) { /* the model is always loaded: say so at once */
        bool unload = o.unload;
        srv_ollama_request_free(&o);
        cJSON *r = reply_object(cs, "", 0);
        cJSON_AddBoolToObject(r, "done", true);
        cJSON_AddStringToObject(r, "done_reason", unload ? "unload" : "load");
        return srv_send_json(srv, c, 200, r);
    }
    /* /api/generate: the prompt as is when raw or when there is no chat template (ollama's
     * default template is "{{ .Prompt }}", which also drops the system message) */
    if (kind == SRV_COMPLETION && !o.raw && srv->has_template) {
        if (generate_messages(&o, &o.req.messages_json)) {
            srv_ollama_request_free(&o);
            return srv_send_ollama_error(srv, c, 500, "out of memory");
        }
        o.req.kind = SRV_CHAT;
    }
    qr_token *tokens = NULL;
    int32_t n = 0;
    int http = srv_request_prompt(srv, &o.req, &tokens, &n);
    /* num_ctx beyond the slot's context cannot be had: the slot's context is the limit */
    bool stream = o.req.stream;
    srv_task *t = NULL;
    if (!http) http = srv_submit_generation(srv, &o.req, tokens, n, &t);
    srv_ollama_request_free(&o);
    if (http) return srv_send_ollama_error(srv, c, http, "%s", qr_last_error());
    cs->task = t;
    if (stream) return srv_stream(srv, cs, c, "application/x-ndjson", ollama_collect_locked);

    if (!srv_wait_finished(srv, cs, t)) return MHD_NO;
    cJSON *r = NULL;
    int status = 200;
    char *error = NULL;
    if (t->error) {
        status = t->error_status ? t->error_status : 500;
        error = qr_strdup(t->error);
    } else if (t->req.parse_tools) {
        qr_tool_parse p;
        if (srv_parse_output(srv, t, &p)) {
            status = 500;
            error = qr_strdup("out of memory parsing tool calls");
        } else {
            r = reply_object(cs, p.content, strlen(p.content));
            add_tool_calls(r, &p);
            qr_tool_parse_free(&p);
        }
    } else {
        r = reply_object(cs, t->text.data, t->text.len);
    }
    if (r) add_done(srv, r, t);
    srv_scheduler_unlock(srv->sched);
    if (error) {
        enum MHD_Result ret = srv_send_ollama_error(srv, c, status, "%s", error);
        free(error);
        return ret;
    }
    return srv_send_json(srv, c, status, r);
}

enum MHD_Result srv_handle_ollama_generate(server *srv, conn *cs, struct MHD_Connection *c) {
    return handle(srv, cs, c, SRV_COMPLETION);
}

enum MHD_Result srv_handle_ollama_chat(server *srv, conn *cs, struct MHD_Connection *c) {
    return handle(srv, cs, c, SRV_CHAT);
}

/* ---- /api/delete and /api/pull: the ollama store, through the registry library ---- */

/* The store's entry for an ollama name (NAME and NAME:latest alike), or false. */
static bool in_store(const char *name) {
    qr_registry_model *models = NULL;
    int32_t n = 0;
    if (qr_registry_list(NULL, &models, &n)) return false;
    bool found = false;
    for (int32_t i = 0; i < n && !found; i++)
        found = srv_ollama_name_matches(models[i].name, name);
    free(models);
    return found;
}

/* The served model cannot go from under the server (its file is mapped and in use): 409. Any
 * other model of the store is removed with the blobs no other model uses. */
enum MHD_Result srv_handle_ollama_delete(server *srv, conn *cs, struct MHD_Connection *c) {
    srv_ollama_model_request mr;
    if (srv_parse_ollama_model(cs->body.data, cs->body.len, &mr))
        return srv_send_ollama_error(srv, c, 400, "%s", qr_last_error());
    enum MHD_Result ret;
    if (srv_ollama_name_matches(srv->model_name, mr.model))
        ret = srv_send_ollama_error(srv, c, 409,
                                    "model '%s' is the one this server is serving: stop the "
                                    "server to delete it",
                                    mr.model);
    else if (!in_store(mr.model))
        ret = srv_send_ollama_error(srv, c, 404, "model '%s' not found", mr.model);
    else if (qr_registry_remove(NULL, mr.model, NULL))
        ret = srv_send_ollama_error(srv, c, 500, "%s", qr_last_error());
    else
        ret = srv_send_json(srv, c, 200, cJSON_CreateObject());
    free(mr.model);
    return ret;
}

/* A pull in progress: the pulling thread appends ollama's progress objects to out; the
 * connection's reader drains it. Freed when both let go. */
typedef struct pull_job {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int refs;
    bool done, cancelled; /* cancelled: the client went away; the pull stops (a partial
                             download stays, to resume) */
    srv_buf out;
    size_t pos;
    char *name;
    qr_pull_params params;
    const char *digest; /* the blob whose progress was last sent, and how far */
    int64_t sent;
    qr_status status;
    char error[1024];
} pull_job;

static void pull_unref(pull_job *j) {
    pthread_mutex_lock(&j->mu);
    bool last = --j->refs == 0;
    pthread_mutex_unlock(&j->mu);
    if (!last) return;
    srv_buf_free(&j->out);
    free(j->name);
    pthread_cond_destroy(&j->cond);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

static cJSON *status_object(const char *status) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", status);
    return o;
}

static void pull_emit(pull_job *j, cJSON *o) {
    pthread_mutex_lock(&j->mu);
    ndjson_append(&j->out, o);
    pthread_cond_broadcast(&j->cond);
    pthread_mutex_unlock(&j->mu);
}

/* ollama's objects: "pulling <12 hex>" with digest, total and completed for each blob (a
 * byte-level update at most every 1% of the blob), then "verifying sha256 digest" and
 * "writing manifest" once every blob is in place and checked. */
static bool on_pull_progress(const qr_pull_progress *p, void *user) {
    pull_job *j = user;
    if (p->event == QR_PULL_WRITE_MANIFEST) {
        pull_emit(j, status_object("verifying sha256 digest"));
        pull_emit(j, status_object("writing manifest"));
    } else if (p->digest) {
        bool finished = p->event != QR_PULL_BLOB_DATA;
        int64_t step = p->total / 100 > 0 ? p->total / 100 : 1;
        bool same = j->digest && !strcmp(j->digest, p->digest);
        if (finished || !same || p->completed - j->sent >= step) {
            char status[96];
            snprintf(status, sizeof status, "pulling %.12s",
                     strncmp(p->digest, "sha256:", 7) ? p->digest : p->digest + 7);
            cJSON *o = status_object(status);
            cJSON_AddStringToObject(o, "digest", p->digest);
            cJSON_AddNumberToObject(o, "total", (double)p->total);
            cJSON_AddNumberToObject(
                o, "completed",
                (double)(p->event == QR_PULL_BLOB_CACHED ? p->total : p->completed));
            pull_emit(j, o);
            j->digest = p->digest;
            j->sent = p->completed;
        }
    }
    pthread_mutex_lock(&j->mu);
    bool go_on = !j->cancelled;
    pthread_mutex_unlock(&j->mu);
    return go_on;
}

static void pull_run(pull_job *j) {
    pull_emit(j, status_object("pulling manifest"));
    j->status = qr_registry_pull(j->name, &j->params);
    if (j->status) snprintf(j->error, sizeof j->error, "%s", qr_last_error());
    cJSON *o;
    if (j->status) {
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "error", j->error);
    } else {
        o = status_object("success");
    }
    pthread_mutex_lock(&j->mu);
    ndjson_append(&j->out, o);
    j->done = true;
    pthread_cond_broadcast(&j->cond);
    pthread_mutex_unlock(&j->mu);
}

static void *pull_thread(void *arg) {
    pull_run(arg);
    pull_unref(arg);
    return NULL;
}

static ssize_t pull_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    pull_job *j = cls;
    pthread_mutex_lock(&j->mu);
    while (j->pos == j->out.len && !j->done)
        pthread_cond_wait(&j->cond, &j->mu);
    ssize_t n = MHD_CONTENT_READER_END_OF_STREAM;
    if (j->pos < j->out.len) {
        size_t k = j->out.len - j->pos < max ? j->out.len - j->pos : max;
        memcpy(buf, j->out.data + j->pos, k);
        j->pos += k;
        n = (ssize_t)k;
    }
    pthread_mutex_unlock(&j->mu);
    return n;
}

static void pull_response_free(void *cls) {
    pull_job *j = cls;
    pthread_mutex_lock(&j->mu);
    j->cancelled = !j->done; /* the client went away before the end */
    pthread_mutex_unlock(&j->mu);
    pull_unref(j);
}

/* The registry: serve --registry (or $QUARREL_REGISTRY), plain http if --insecure or the
 * request's "insecure" (ollama's flag for one's own registry). Stream: the progress objects
 * as NDJSON; else one object, {"status": "success"} or the error. */
enum MHD_Result srv_handle_ollama_pull(server *srv, conn *cs, struct MHD_Connection *c) {
    srv_ollama_model_request mr;
    if (srv_parse_ollama_model(cs->body.data, cs->body.len, &mr))
        return srv_send_ollama_error(srv, c, 400, "%s", qr_last_error());
    pull_job *j = qr_calloc(1, sizeof *j);
    if (!j) {
        free(mr.model);
        return srv_send_ollama_error(srv, c, 500, "out of memory");
    }
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cond, NULL);
    j->refs = 1;
    j->name = mr.model;
    j->params = qr_pull_default_params();
    j->params.registry = srv->p.registry;
    j->params.insecure = srv->p.insecure || mr.insecure;
    j->params.progress = on_pull_progress;
    j->params.user = j;
    if (!mr.stream) {
        /* the progress goes nowhere; the answer waits for the end */
        pull_run(j);
        enum MHD_Result ret =
            j->status ? srv_send_ollama_error(srv, c, j->status == QR_ERR_INVALID_ARG ? 400 : 500,
                                              "%s", j->error)
                      : srv_send_json(srv, c, 200, status_object("success"));
        pull_unref(j);
        return ret;
    }
    j->refs = 2; /* the thread's and the response's */
    pthread_t th;
    if (pthread_create(&th, NULL, pull_thread, j) != 0) {
        j->refs = 1;
        pull_unref(j);
        return srv_send_ollama_error(srv, c, 500, "cannot start the pull's thread");
    }
    pthread_detach(th);
    return srv_send_stream(srv, c, "application/x-ndjson", pull_reader, j, pull_response_free);
}
