/* http.c - qr_server_run: the HTTP side of the server on libmicrohttpd (a thread per
 * connection, so a handler may wait for its task), the routes, API-key check, body size limit,
 * and streaming through MHD_create_response_from_callback (Server-Sent Events here, NDJSON for
 * ollama's routes in ollama.c). A client that goes away (a failed write, or a hang-up seen
 * while waiting) cancels its task at once. The routes table lists every route of every file. */
#include "server/http_internal.h"
#include "server/page_asset.h"
#include "util/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

static void conn_unref(conn *cs) {
    if (atomic_fetch_sub(&cs->refs, 1) != 1) return;
    srv_buf_free(&cs->body);
    srv_buf_free(&cs->out);
    free(cs);
}

/* ---- responses ---- */

/* Count an answer's status in the metrics (once the scheduler, which holds them, runs). */
static void count_status(server *srv, int status) {
    if (!atomic_load(&srv->ready)) return;
    srv_scheduler_lock(srv->sched);
    srv_metrics_count_status(srv_scheduler_metrics(srv->sched), status);
    srv_scheduler_unlock(srv->sched);
}

static enum MHD_Result send_text(server *srv, struct MHD_Connection *c, int status,
                                 const char *content_type, char *text /* malloc'd, taken */) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", content_type);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    count_status(srv, status);
    return ret;
}

enum MHD_Result srv_send_json(server *srv, struct MHD_Connection *c, int status, cJSON *json) {
    char *s = json ? cJSON_PrintUnformatted(json) : NULL;
    cJSON_Delete(json);
    if (!s) return MHD_NO;
    return send_text(srv, c, status, "application/json", s);
}

/* OpenAI's {"error": {"message", "type", ...}} or ollama's {"error": "..."} */
static enum MHD_Result send_error_v(server *srv, struct MHD_Connection *c, int status, bool ollama,
                                    const char *fmt, va_list ap) {
    char msg[1200];
    vsnprintf(msg, sizeof msg, fmt, ap);
    cJSON *o = ollama ? cJSON_CreateObject() : srv_error_json(status, msg);
    if (ollama) cJSON_AddStringToObject(o, "error", msg);
    return srv_send_json(srv, c, status, o);
}

enum MHD_Result srv_send_error(server *srv, struct MHD_Connection *c, int status, const char *fmt,
                               ...) {
    va_list ap;
    va_start(ap, fmt);
    enum MHD_Result ret = send_error_v(srv, c, status, false, fmt, ap);
    va_end(ap);
    return ret;
}

enum MHD_Result srv_send_ollama_error(server *srv, struct MHD_Connection *c, int status,
                                      const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    enum MHD_Result ret = send_error_v(srv, c, status, true, fmt, ap);
    va_end(ap);
    return ret;
}

enum MHD_Result srv_send_stream(server *srv, struct MHD_Connection *c, const char *content_type,
                                MHD_ContentReaderCallback reader, void *cls,
                                MHD_ContentReaderFreeCallback free_cls) {
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, reader, cls, free_cls);
    if (!r) {
        free_cls(cls);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", content_type);
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    count_status(srv, 200);
    return ret;
}

/* ---- helpers ---- */

/* The peer closed its end (checked without blocking). */
static bool client_gone(const conn *cs) {
    if (cs->fd < 0) return false;
    struct pollfd pfd = {.fd = cs->fd, .events = POLLRDHUP};
    return poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

static bool authorized(const server *srv, struct MHD_Connection *c) {
    if (!srv->p.api_key) return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncmp(h, "Bearer ", 7) != 0) return false;
    const char *given = h + 7, *key = srv->p.api_key;
    size_t ng = strlen(given), nk = strlen(key);
    unsigned diff = ng != nk; /* compare every byte: no early exit to time */
    for (size_t i = 0; i < nk; i++)
        diff |= (unsigned)(key[i] ^ (i < ng ? given[i] : 0));
    return diff == 0;
}

static void new_id(server *srv, conn *cs, const char *prefix) {
    unsigned long n = atomic_fetch_add(&srv->next_id, 1);
    cs->created = (int64_t)time(NULL);
    snprintf(cs->id, sizeof cs->id, "%s%llx%04lx", prefix, (unsigned long long)cs->created, n);
}

/* Tokenize text (add_special, parse_special), malloc'd. */
qr_status srv_tokenize(const qr_model *m, const char *text, bool add_special, bool parse_special,
                       qr_token **out, int32_t *n_out) {
    *out = NULL;
    size_t len = strlen(text);
    int32_t n = 0;
    qr_status st = qr_tokenize(m, text, len, add_special, parse_special, NULL, 0, &n);
    if (st && st != QR_ERR_BUFFER_SMALL) return st;
    qr_token *t = qr_malloc(((size_t)n + 1) * sizeof *t);
    if (!t) return QR_ERR_NOMEM;
    st = qr_tokenize(m, text, len, add_special, parse_special, t, n + 1, &n);
    if (st) {
        free(t);
        return st;
    }
    *out = t;
    *n_out = n;
    return QR_OK;
}

/* The prompt of a request as tokens: the chat template applied to the messages, the prompt
 * text, or the prompt's token ids. */
int srv_request_prompt(server *srv, srv_request *req, qr_token **tokens, int32_t *n) {
    const qr_model *m = srv->model;
    if (req->n_prompt_tokens > 0) {
        *tokens = req->prompt_tokens;
        *n = req->n_prompt_tokens;
        req->prompt_tokens = NULL;
        req->n_prompt_tokens = 0;
        return 0;
    }
    char *rendered = NULL;
    const char *text = req->prompt;
    if (req->kind == SRV_CHAT) {
        qr_token bos = qr_token_bos(m), eos = qr_token_eos(m);
        const char *bos_text = bos >= 0 ? qr_token_text(m, bos) : "";
        const char *eos_text = eos >= 0 ? qr_token_text(m, eos) : "";
        qr_status st = srv_tools_prepare(req, srv->tmpl);
        if (!st)
            st = qr_chat_apply_template_json(
                srv->tmpl, req->messages_json,
                req->tool_choice != SRV_TOOLS_NONE ? req->tools_json : NULL, true,
                bos_text ? bos_text : "", eos_text ? eos_text : "", &rendered);
        if (st) return st == QR_ERR_NOMEM ? 500 : 400;
        text = rendered;
    }
    qr_status st = srv_tokenize(m, text, true, true, tokens, n);
    free(rendered);
    if (st) return st == QR_ERR_NOMEM ? 500 : 400;
    /* a template that writes the BOS token itself, tokenized with add_special: keep one */
    qr_token bos = qr_token_bos(m);
    if (*n >= 2 && bos >= 0 && (*tokens)[0] == bos && (*tokens)[1] == bos) {
        memmove(*tokens, *tokens + 1, (size_t)(*n - 1) * sizeof **tokens);
        (*n)--;
    }
    return 0;
}

/* Give the calls that came without one an id: 9 letters and digits for the Mistral formats
 * (their templates refuse others), else "call_" and 24 (OpenAI's look). */
static qr_status set_call_ids(server *srv, qr_tool_format f, qr_tool_parse *p) {
    static const char alnum[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    bool mistral = f == QR_TOOL_FORMAT_MISTRAL || f == QR_TOOL_FORMAT_MISTRAL_ARGS;
    uint64_t x =
        (uint64_t)(qr_time_now() * 1e9) ^ ((uint64_t)atomic_fetch_add(&srv->next_id, 1) << 32);
    for (int i = 0; i < p->n_calls; i++) {
        if (p->calls[i].id) continue;
        char id[40];
        size_t k = 0, len = mistral ? 9 : 24;
        if (!mistral) k = (size_t)snprintf(id, sizeof id, "call_");
        for (size_t j = 0; j < len; j++) { /* splitmix64 */
            uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
            id[k++] = alnum[(z ^ (z >> 31)) % (sizeof alnum - 1)];
        }
        id[k] = '\0';
        if (!(p->calls[i].id = qr_strdup(id))) return QR_ERR_NOMEM;
    }
    return QR_OK;
}

/* The finished output of a tool request split into content and calls (ids set). */
qr_status srv_parse_output(server *srv, const srv_task *t, qr_tool_parse *p) {
    qr_status st =
        qr_tool_calls_parse(t->req.tool_format, t->text.data ? t->text.data : "", t->text.len, p);
    if (!st) st = set_call_ids(srv, t->req.tool_format, p);
    return st;
}

static srv_reply make_reply(const server *srv, const conn *cs, const srv_task *t) {
    srv_reply r = {
        .kind = t->req.kind,
        .id = cs->id,
        .model = srv->model_name,
        .created = cs->created,
        .logprobs = t->req.logprobs,
        .prompt_tokens = t->n_prompt,
        .completion_tokens = t->n_generated,
    };
    if (t->finished && !t->error) {
        const double first = t->t_first > 0 ? t->t_first : t->t_end;
        r.has_timings = true;
        r.prompt_n = t->n_prompt - t->n_cached;
        r.prompt_ms = t->t_start > 0 ? 1e3 * (first - t->t_start) : 0;
        r.predicted_n = t->n_generated;
        r.predicted_ms = 1e3 * (t->t_end - first);
        r.has_draft = srv->spec;
        r.draft_n = t->n_drafted;
        r.draft_n_accepted = t->n_draft_accepted;
    }
    return r;
}

/* ---- streaming ---- */

/* The end of a tool request's stream: the content not sent yet, then each call as OpenAI
 * streams it (a head delta with id, type and name, then the arguments). */
static bool stream_tool_calls(server *srv, conn *cs, const srv_task *t, srv_reply *r) {
    qr_tool_parse p;
    if (srv_parse_output(srv, t, &p)) return false;
    bool ok = true;
    size_t n = strlen(p.content);
    /* what went out is a prefix of the content (qr_tool_calls_content_prefix's promise) */
    if (n > cs->text_sent && !memcmp(p.content, t->text.data, cs->text_sent)) {
        srv_reply c = *r;
        c.text = p.content + cs->text_sent;
        c.n_text = n - cs->text_sent;
        c.n_tokens = 0;
        cJSON *j = srv_chunk_json(&c, false, false);
        ok = j && srv_sse_append(&cs->out, j);
        cJSON_Delete(j);
    }
    for (int i = 0; ok && i < p.n_calls; i++)
        for (int head = 1; ok && head >= 0; head--) {
            cJSON *j = srv_tool_chunk_json(r, i, &p.calls[i], head);
            ok = j && srv_sse_append(&cs->out, j);
            cJSON_Delete(j);
        }
    if (p.n_calls > 0) r->finish_reason = "tool_calls";
    qr_tool_parse_free(&p);
    return ok;
}

size_t srv_stream_ready(conn *cs, const srv_task *t) {
    /* with tools, text that may belong to a call waits for the end */
    size_t ready = t->req.parse_tools
                       ? qr_tool_calls_content_prefix(t->req.tool_format, t->text.data, t->text.len)
                       : t->text.len;
    cs->text_seen = t->text.len;
    return ready < cs->text_sent ? cs->text_sent : ready;
}

/* Turn what the task produced since the last call into SSE events (lock held). */
static bool stream_collect_locked(server *srv, conn *cs, const srv_task *t) {
    srv_reply r = make_reply(srv, cs, t);
    bool ok = true;
    bool tools = t->req.parse_tools;
    size_t ready = srv_stream_ready(cs, t);
    bool new_output = ready > cs->text_sent || (!tools && t->n_tokens > cs->tokens_sent);
    if (new_output || (!cs->first_sent && !t->error)) {
        r.text = t->text.data ? t->text.data + cs->text_sent : "";
        r.n_text = ready - cs->text_sent;
        r.tokens = t->tokens && !tools ? t->tokens + cs->tokens_sent : NULL;
        r.n_tokens = tools ? 0 : t->n_tokens - cs->tokens_sent;
        cJSON *j = srv_chunk_json(&r, !cs->first_sent, false);
        ok = j && srv_sse_append(&cs->out, j);
        cJSON_Delete(j);
        cs->first_sent = true;
        cs->text_sent = ready;
        cs->tokens_sent = t->n_tokens;
    }
    if (t->finished && ok) {
        r.text = "";
        r.n_text = 0;
        r.n_tokens = 0;
        r.tokens = NULL;
        if (t->error) {
            cJSON *j = srv_error_json(t->error_status ? t->error_status : 500, t->error);
            ok = srv_sse_append(&cs->out, j);
            cJSON_Delete(j);
        } else {
            r.finish_reason = t->finish_reason ? t->finish_reason : "stop";
            if (tools) ok = stream_tool_calls(srv, cs, t, &r);
            cJSON *j = ok ? srv_chunk_json(&r, false, false) : NULL;
            ok = j && srv_sse_append(&cs->out, j);
            cJSON_Delete(j);
            if (ok && t->req.include_usage) {
                j = srv_chunk_json(&r, false, true);
                ok = j && srv_sse_append(&cs->out, j);
                cJSON_Delete(j);
            }
        }
        ok = ok && srv_sse_append(&cs->out, NULL);
        cs->ended = true;
    }
    return ok;
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    conn *cs = cls;
    srv_scheduler *s = cs->srv->sched;
    for (;;) {
        if (cs->out_pos < cs->out.len) {
            size_t n = cs->out.len - cs->out_pos;
            if (n > max) n = max;
            memcpy(buf, cs->out.data + cs->out_pos, n);
            cs->out_pos += n;
            if (cs->out_pos == cs->out.len) cs->out_pos = cs->out.len = 0;
            return (ssize_t)n;
        }
        if (cs->ended || !cs->task) return MHD_CONTENT_READER_END_OF_STREAM;
        srv_task *t = cs->task;
        srv_scheduler_lock(s);
        if (!t->finished && t->text.len == cs->text_seen && t->n_tokens == cs->tokens_sent &&
            cs->first_sent)
            srv_task_wait(s, t, WAIT_SLICE);
        bool ok = cs->collect(cs->srv, cs, t);
        srv_scheduler_unlock(s);
        if (!ok) return MHD_CONTENT_READER_END_WITH_ERROR;
        if (cs->out.len == 0 && client_gone(cs)) return MHD_CONTENT_READER_END_WITH_ERROR;
    }
}

static void stream_free(void *cls) {
    conn_unref(cls);
}

/* ---- routes ---- */

int srv_submit_generation(server *srv, srv_request *req, qr_token *tokens, int32_t n,
                          srv_task **out) {
    *out = NULL;
    int32_t n_ctx = srv_scheduler_n_ctx_slot(srv->sched);
    if (req->n_ctx_limit > 0 && req->n_ctx_limit < n_ctx) n_ctx = req->n_ctx_limit;
    if (n == 0 || n >= n_ctx) {
        free(tokens);
        srv_request_free(req);
        if (n == 0) return qr_error(QR_ERR_INVALID_ARG, "the prompt is empty"), 400;
        qr_error(QR_ERR_INVALID_ARG,
                 "the prompt is %d tokens but a slot's context holds %d (the prompt and at least "
                 "one generated token must fit); shorten the prompt or start the server with a "
                 "larger -c or fewer --parallel slots",
                 n, n_ctx);
        return 400;
    }
    srv_task *t = srv_task_create(req, tokens, n);
    if (!t) {
        free(tokens);
        srv_request_free(req);
        return qr_error(QR_ERR_NOMEM, "out of memory"), 500;
    }
    qr_status st = srv_scheduler_submit(srv->sched, t);
    if (st) {
        srv_task_release(srv->sched, t);
        return st == QR_ERR_CONTEXT_FULL ? 429 : 503;
    }
    *out = t;
    return 0;
}

bool srv_wait_finished(server *srv, conn *cs, srv_task *t) {
    srv_scheduler *s = srv->sched;
    srv_scheduler_lock(s);
    while (!t->finished) {
        srv_task_wait(s, t, WAIT_SLICE);
        if (t->finished) break;
        srv_scheduler_unlock(s);
        bool gone = client_gone(cs);
        if (gone) return false; /* the request-completed callback cancels the task */
        srv_scheduler_lock(s);
    }
    return true;
}

enum MHD_Result srv_stream(server *srv, conn *cs, struct MHD_Connection *c,
                           const char *content_type, srv_collect_fn collect) {
    cs->collect = collect;
    atomic_fetch_add(&cs->refs, 1); /* the response's, dropped by stream_free */
    return srv_send_stream(srv, c, content_type, stream_reader, cs, stream_free);
}

/* GET /lora-adapters (llama.cpp's server): [{"id", "path", "scale"}], the global scales */
static enum MHD_Result handle_lora_get(server *srv, conn *cs, struct MHD_Connection *c) {
    (void)cs;
    float scales[QR_MAX_LORAS];
    srv_scheduler_lora_get(srv->sched, scales);
    cJSON *arr = cJSON_CreateArray();
    for (int32_t i = 0; i < srv->n_lora; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "id", i);
        cJSON_AddStringToObject(o, "path", srv->p.lora_paths[i]);
        cJSON_AddNumberToObject(o, "scale", scales[i]);
        cJSON_AddItemToArray(arr, o);
    }
    return srv_send_json(srv, c, 200, arr);
}

/* POST /lora-adapters: [{"id", "scale"}] sets the global scales, those not listed 0 */
static enum MHD_Result handle_lora_post(server *srv, conn *cs, struct MHD_Connection *c) {
    cJSON *root = cJSON_ParseWithLength(cs->body.data ? cs->body.data : "", cs->body.len);
    if (!root) return srv_send_error(srv, c, 400, "the request body is not valid JSON");
    if (!cJSON_IsArray(root)) {
        cJSON_Delete(root);
        return srv_send_error(srv, c, 400, "Request body must be an array");
    }
    int32_t ids[QR_MAX_LORAS], n = 0;
    float item_scales[QR_MAX_LORAS], scales[QR_MAX_LORAS];
    qr_status st = srv_parse_lora(root, "body", ids, item_scales, &n);
    cJSON_Delete(root);
    if (!st) st = srv_lora_scales(ids, item_scales, n, srv->n_lora, "body", scales);
    if (st) return srv_send_error(srv, c, 400, "%s", qr_last_error());
    srv_scheduler_lora_set(srv->sched, scales);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "success", true);
    return srv_send_json(srv, c, 200, o);
}

static enum MHD_Result handle_generate(server *srv, conn *cs, struct MHD_Connection *c,
                                       srv_kind kind) {
    srv_request req;
    if (srv_parse_request(cs->body.data, cs->body.len, kind, srv->n_vocab, &req))
        return srv_send_error(srv, c, 400, "%s", qr_last_error());
    if (req.has_lora && srv_lora_scales(req.lora_id, req.lora_item_scale, req.n_lora_items,
                                        srv->n_lora, "lora", req.lora)) {
        srv_request_free(&req);
        return srv_send_error(srv, c, 400, "%s", qr_last_error());
    }
    qr_token *tokens = NULL;
    int32_t n = 0;
    int http = srv_request_prompt(srv, &req, &tokens, &n);
    if (http) {
        srv_request_free(&req);
        return srv_send_error(srv, c, http, "%s", qr_last_error());
    }
    bool stream = req.stream;
    srv_task *t;
    if ((http = srv_submit_generation(srv, &req, tokens, n, &t)))
        return srv_send_error(srv, c, http, "%s", qr_last_error());
    cs->task = t;
    new_id(srv, cs, kind == SRV_CHAT ? "chatcmpl-" : "cmpl-");
    if (stream) return srv_stream(srv, cs, c, "text/event-stream", stream_collect_locked);

    if (!srv_wait_finished(srv, cs, t)) return MHD_NO;
    cJSON *j = NULL;
    int status = 200;
    char *error = NULL;
    qr_tool_parse parsed = {0};
    bool tools = t->req.parse_tools && !t->error;
    if (tools && srv_parse_output(srv, t, &parsed)) {
        status = 500;
        error = qr_strdup("out of memory parsing tool calls");
    } else if (t->error) {
        status = t->error_status ? t->error_status : 500;
        error = qr_strdup(t->error);
    } else {
        srv_reply r = make_reply(srv, cs, t);
        r.text = t->text.data ? t->text.data : "";
        r.n_text = t->text.len;
        r.tokens = t->tokens;
        r.n_tokens = t->n_tokens;
        r.finish_reason = t->finish_reason ? t->finish_reason : "stop";
        if (tools) r.parsed = &parsed;
        if (parsed.n_calls > 0) r.finish_reason = "tool_calls";
        j = srv_completion_json(&r);
    }
    srv_scheduler_unlock(srv->sched);
    qr_tool_parse_free(&parsed);
    if (error) {
        enum MHD_Result ret = srv_send_error(srv, c, status, "%s", error);
        free(error);
        return ret;
    }
    return srv_send_json(srv, c, status, j);
}

static enum MHD_Result handle_tokenize(server *srv, conn *cs, struct MHD_Connection *c) {
    srv_tokenize_request tr;
    if (srv_parse_tokenize(cs->body.data, cs->body.len, &tr))
        return srv_send_error(srv, c, 400, "%s", qr_last_error());
    qr_token *tokens;
    int32_t n = 0;
    qr_status st =
        srv_tokenize(srv->model, tr.content, tr.add_special, tr.parse_special, &tokens, &n);
    free(tr.content);
    if (st) return srv_send_error(srv, c, 400, "%s", qr_last_error());
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(root, "tokens");
    for (int32_t i = 0; i < n; i++) {
        if (!tr.with_pieces) {
            cJSON_AddItemToArray(arr, cJSON_CreateNumber(tokens[i]));
            continue;
        }
        char piece[512];
        int32_t m = qr_token_to_piece(srv->model, tokens[i], piece, sizeof piece, true);
        if (m < 0) m = 0;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "id", tokens[i]);
        char *clean = srv_utf8_sanitize(piece, (size_t)m);
        if (clean && strlen(clean) == (size_t)m && !memcmp(clean, piece, (size_t)m)) {
            cJSON_AddStringToObject(o, "piece", clean);
        } else { /* not valid UTF-8 on its own: the bytes, as llama.cpp's server does */
            cJSON *bytes = cJSON_AddArrayToObject(o, "piece");
            for (int32_t k = 0; k < m; k++)
                cJSON_AddItemToArray(bytes, cJSON_CreateNumber((unsigned char)piece[k]));
        }
        free(clean);
        cJSON_AddItemToArray(arr, o);
    }
    free(tokens);
    return srv_send_json(srv, c, 200, root);
}

static enum MHD_Result handle_detokenize(server *srv, conn *cs, struct MHD_Connection *c) {
    qr_token *tokens;
    int32_t n;
    if (srv_parse_detokenize(cs->body.data, cs->body.len, srv->n_vocab, &tokens, &n))
        return srv_send_error(srv, c, 400, "%s", qr_last_error());
    srv_buf text = {0};
    bool ok = srv_buf_append(&text, "", 0);
    for (int32_t i = 0; i < n && ok; i++) {
        char piece[512];
        int32_t m = qr_token_to_piece(srv->model, tokens[i], piece, sizeof piece, true);
        if (m > 0) ok = srv_buf_append(&text, piece, (size_t)m);
    }
    free(tokens);
    cJSON *root = cJSON_CreateObject();
    char *clean = ok ? srv_utf8_sanitize(text.data, text.len) : NULL;
    srv_buf_free(&text);
    if (!clean) {
        cJSON_Delete(root);
        return srv_send_error(srv, c, 500, "out of memory");
    }
    cJSON_AddStringToObject(root, "content", clean);
    free(clean);
    return srv_send_json(srv, c, 200, root);
}

static enum MHD_Result handle_models(server *srv, struct MHD_Connection *c) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(root, "data");
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", srv->model_name);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)time(NULL));
    cJSON_AddStringToObject(m, "owned_by", "quarrel");
    cJSON *meta = cJSON_AddObjectToObject(m, "meta");
    cJSON_AddNumberToObject(meta, "n_vocab", srv->n_vocab);
    cJSON_AddNumberToObject(meta, "n_ctx_train", qr_model_n_ctx_train(srv->model));
    cJSON_AddNumberToObject(meta, "n_ctx_slot", srv_scheduler_n_ctx_slot(srv->sched));
    cJSON_AddNumberToObject(meta, "n_params", (double)qr_model_n_params(srv->model));
    cJSON_AddItemToArray(data, m);
    return srv_send_json(srv, c, 200, root);
}

/* The chat page (src/server/page/), from the binary; HEAD gets the headers alone (libmicrohttpd
 * leaves the body out). The ETag lets a browser revalidate with a 304 instead of a download. */
static enum MHD_Result handle_page(server *srv, struct MHD_Connection *c) {
    const char *inm = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "If-None-Match");
    bool fresh = inm && strstr(inm, srv_page_etag);
    struct MHD_Response *r = MHD_create_response_from_buffer(
        fresh ? 0 : srv_page_html_len, (void *)srv_page_html, MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    if (!fresh) MHD_add_response_header(r, "Content-Type", "text/html; charset=utf-8");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    MHD_add_response_header(r, "ETag", srv_page_etag);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    int status = fresh ? MHD_HTTP_NOT_MODIFIED : MHD_HTTP_OK;
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    count_status(srv, status);
    return ret;
}

static enum MHD_Result handle_metrics(server *srv, struct MHD_Connection *c) {
    srv_buf b = {0};
    srv_scheduler_lock(srv->sched);
    srv_metrics_count_status(srv_scheduler_metrics(srv->sched), 200); /* this answer */
    bool ok = srv_metrics_format(srv_scheduler_metrics(srv->sched), &b);
    srv_scheduler_unlock(srv->sched);
    if (!ok) {
        srv_buf_free(&b);
        return srv_send_error(srv, c, 500, "out of memory");
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(b.len, b.data, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        srv_buf_free(&b);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4");
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

/* ---- slot actions: POST /slots/{id}?action=save|restore|erase (llama.cpp's) ---- */

/* llama.cpp's fs_validate_filename, the parts that keep a name inside --slot-save-path and
 * portable: not empty, at most 255 bytes, no path separators or characters Windows refuses,
 * no control characters, no leading or trailing dot or space (so not "." or ".."). */
static bool valid_slot_filename(const char *name) {
    const size_t n = strlen(name);
    if (n == 0 || n > 255) return false;
    if (name[0] == '.' || name[0] == ' ' || name[n - 1] == '.' || name[n - 1] == ' ') return false;
    for (size_t i = 0; i < n; i++) {
        const unsigned char ch = (unsigned char)name[i];
        if (ch < 0x20 || ch == 0x7f || strchr("/\\:*?\"<>|", ch)) return false;
    }
    return true;
}

static enum MHD_Result route_slots(server *srv, conn *cs, struct MHD_Connection *c,
                                   const char *url) {
    if (!srv->p.slot_save_path)
        return srv_send_error(srv, c, 501,
                              "This server does not support slots action. Start it with "
                              "`--slot-save-path`");
    const char *id_text = url + strlen("/slots/");
    char *end = NULL;
    errno = 0;
    const long id = strtol(id_text, &end, 10);
    if (!id_text[0] || *end || errno || id < 0 || id >= srv->p.n_parallel || id_text[0] == '+' ||
        id_text[0] == '-')
        return srv_send_error(srv, c, 400,
                              "Invalid slot ID '%s': the server has %d slots (0 .. %d)", id_text,
                              srv->p.n_parallel, srv->p.n_parallel - 1);
    const char *name = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "action");
    srv_slot_action action = !name                      ? SRV_ACTION_NONE
                             : !strcmp(name, "save")    ? SRV_ACTION_SAVE
                             : !strcmp(name, "restore") ? SRV_ACTION_RESTORE
                             : !strcmp(name, "erase")   ? SRV_ACTION_ERASE
                                                        : SRV_ACTION_NONE;
    if (action == SRV_ACTION_NONE)
        return srv_send_error(srv, c, 400, "Invalid action '%s': save, restore or erase",
                              name ? name : "");
    char path[4096], filename[256] = "";
    if (action != SRV_ACTION_ERASE) {
        cJSON *root = NULL;
        if (srv_json_parse_object(cs->body.data, cs->body.len, &root))
            return srv_send_error(srv, c, 400, "%s", qr_last_error());
        const cJSON *f = srv_json_field(root, "filename");
        if (!cJSON_IsString(f)) {
            cJSON_Delete(root);
            return srv_send_error(srv, c, 400, "'filename' (a string) is required");
        }
        bool ok = valid_slot_filename(f->valuestring);
        if (ok) snprintf(filename, sizeof filename, "%s", f->valuestring);
        cJSON_Delete(root);
        if (!ok)
            return srv_send_error(srv, c, 400,
                                  "Invalid filename: a plain file name inside --slot-save-path "
                                  "(no '/', '\\', leading or trailing '.' or space, control "
                                  "characters; at most 255 bytes)");
        const char *dir = srv->p.slot_save_path;
        const size_t nd = strlen(dir);
        snprintf(path, sizeof path, "%s%s%s", dir, nd && dir[nd - 1] == '/' ? "" : "/", filename);
    }
    srv_request empty = {0};
    srv_task *t = srv_task_create(&empty, NULL, 0);
    if (!t) return srv_send_error(srv, c, 500, "out of memory");
    t->action = action;
    t->action_slot = (int32_t)id;
    if (action != SRV_ACTION_ERASE && !(t->action_path = qr_strdup(path))) {
        srv_task_release(srv->sched, t);
        return srv_send_error(srv, c, 500, "out of memory");
    }
    qr_status st = srv_scheduler_submit_action(srv->sched, t);
    if (st) {
        srv_task_release(srv->sched, t);
        return srv_send_error(srv, c,
                              st == QR_ERR_CONTEXT_FULL  ? 429
                              : st == QR_ERR_INVALID_ARG ? 400
                                                         : 503,
                              "%s", qr_last_error());
    }
    cs->task = t;
    if (!srv_wait_finished(srv, cs, t)) return MHD_NO;
    /* lock held */
    if (t->error) {
        const int status = t->error_status ? t->error_status : 500;
        char *error = qr_strdup(t->error);
        srv_scheduler_unlock(srv->sched);
        enum MHD_Result ret = srv_send_error(srv, c, status, "%s", error ? error : "error");
        free(error);
        return ret;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id_slot", (double)id);
    if (action == SRV_ACTION_ERASE) {
        cJSON_AddNumberToObject(o, "n_erased", t->action_n_tokens);
    } else {
        const bool save = action == SRV_ACTION_SAVE;
        cJSON_AddStringToObject(o, "filename", filename);
        cJSON_AddNumberToObject(o, save ? "n_saved" : "n_restored", t->action_n_tokens);
        cJSON_AddNumberToObject(o, save ? "n_written" : "n_read", (double)t->action_n_bytes);
        cJSON *tm = cJSON_AddObjectToObject(o, "timings");
        cJSON_AddNumberToObject(tm, save ? "save_ms" : "restore_ms", t->action_ms);
    }
    srv_scheduler_unlock(srv->sched);
    return srv_send_json(srv, c, 200, o);
}

static enum MHD_Result route_health(server *srv, conn *cs, struct MHD_Connection *c) {
    (void)cs;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "ok");
    return srv_send_json(srv, c, 200, o);
}
static enum MHD_Result route_models(server *srv, conn *cs, struct MHD_Connection *c) {
    (void)cs;
    return handle_models(srv, c);
}
static enum MHD_Result route_metrics(server *srv, conn *cs, struct MHD_Connection *c) {
    (void)cs;
    return handle_metrics(srv, c);
}
static enum MHD_Result route_chat(server *srv, conn *cs, struct MHD_Connection *c) {
    return handle_generate(srv, cs, c, SRV_CHAT);
}
static enum MHD_Result route_completions(server *srv, conn *cs, struct MHD_Connection *c) {
    return handle_generate(srv, cs, c, SRV_COMPLETION);
}
static enum MHD_Result route_page(server *srv, conn *cs, struct MHD_Connection *c) {
    (void)cs;
    return handle_page(srv, c);
}

/* ollama: true for its routes, whose errors are {"error": "..."}; page: the chat page, which
 * needs no key (its requests send the one typed into it) nor the model loaded, and answers HEAD
 * as its GET (libmicrohttpd leaves the body out) */
static const struct {
    const char *path, *method;
    srv_handler handler;
    bool needs_key, ollama, page;
} routes[] = {
    {"/", "GET", route_page, false, false, true},
    {"/health", "GET", route_health, false, false, false},
    {"/v1/health", "GET", route_health, false, false, false},
    {"/v1/models", "GET", route_models, true, false, false},
    {"/models", "GET", route_models, true, false, false},
    {"/metrics", "GET", route_metrics, true, false, false},
    {"/v1/chat/completions", "POST", route_chat, true, false, false},
    {"/chat/completions", "POST", route_chat, true, false, false},
    {"/v1/completions", "POST", route_completions, true, false, false},
    {"/completions", "POST", route_completions, true, false, false},
    {"/v1/embeddings", "POST", srv_handle_openai_embeddings, true, false, false},
    {"/embeddings", "POST", srv_handle_openai_embeddings, true, false, false},
    {"/tokenize", "POST", handle_tokenize, true, false, false},
    {"/detokenize", "POST", handle_detokenize, true, false, false},
    {"/lora-adapters", "GET", handle_lora_get, true, false, false},
    {"/lora-adapters", "POST", handle_lora_post, true, false, false},
    /* ollama's REST API (ollama.c, embeddings.c) */
    {"/api/generate", "POST", srv_handle_ollama_generate, true, true, false},
    {"/api/chat", "POST", srv_handle_ollama_chat, true, true, false},
    {"/api/embed", "POST", srv_handle_ollama_embed, true, true, false},
    {"/api/embeddings", "POST", srv_handle_ollama_embeddings, true, true, false},
    {"/api/tags", "GET", srv_handle_ollama_tags, true, true, false},
    {"/api/ps", "GET", srv_handle_ollama_ps, true, true, false},
    {"/api/show", "POST", srv_handle_ollama_show, true, true, false},
    {"/api/version", "GET", srv_handle_ollama_version, true, true, false},
    {"/api/delete", "DELETE", srv_handle_ollama_delete, true, true, false},
    {"/api/delete", "POST", srv_handle_ollama_delete, true, true, false},
    {"/api/pull", "POST", srv_handle_ollama_pull, true, true, false},
};

static enum MHD_Result route(server *srv, conn *cs, struct MHD_Connection *c, const char *url,
                             const char *method) {
    int found = -1;
    bool path_known = false, ollama = !strncmp(url, "/api/", 5);
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strcmp(url, routes[i].path)) continue;
        path_known = true;
        bool page_head = routes[i].page && !strcmp(method, "HEAD");
        if (!strcmp(method, routes[i].method) || page_head) found = (int)i;
    }
    enum MHD_Result (*reject)(server *, struct MHD_Connection *, int, const char *, ...) =
        ollama ? srv_send_ollama_error : srv_send_error;
    if (!strncmp(url, "/slots/", 7)) { /* /slots/{id}: the id is part of the path */
        if (strcmp(method, "POST"))
            return reject(srv, c, 405, "%s does not accept %s", url, method);
        if (!authorized(srv, c))
            return reject(srv, c, 401,
                          "invalid or missing API key: send the header "
                          "'Authorization: Bearer <key>'");
        if (cs->too_large)
            return reject(srv, c, 413, "the request body is larger than the limit of %zu bytes",
                          srv->p.max_body_bytes);
        if (!atomic_load(&srv->ready)) return reject(srv, c, 503, "Loading model");
        return route_slots(srv, cs, c, url);
    }
    if (!path_known) return reject(srv, c, 404, "no route %s %s", method, url);
    if (found < 0) return reject(srv, c, 405, "%s does not accept %s", url, method);
    if (routes[found].needs_key && !authorized(srv, c))
        return reject(srv, c, 401,
                      "invalid or missing API key: send the header 'Authorization: Bearer <key>'");
    if (cs->too_large)
        return reject(srv, c, 413, "the request body is larger than the limit of %zu bytes",
                      srv->p.max_body_bytes);
    if (!atomic_load(&srv->ready) && !routes[found].page)
        return reject(srv, c, 503, "Loading model");
    return routes[found].handler(srv, cs, c);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *data_size, void **con_cls) {
    (void)version;
    server *srv = cls;
    conn *cs = *con_cls;
    if (!cs) {
        cs = calloc(1, sizeof *cs);
        if (!cs) return MHD_NO;
        cs->srv = srv;
        atomic_init(&cs->refs, 1);
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        cs->fd = ci ? ci->connect_fd : -1;
        *con_cls = cs;
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl) {
            unsigned long long n = strtoull(cl, NULL, 10);
            if (n > srv->p.max_body_bytes) cs->too_large = true;
            /* far too large: answer now rather than read it all */
            if (n / 64 > srv->p.max_body_bytes)
                return srv_send_error(srv, c, 413,
                                      "the request body is larger than the limit of %zu bytes",
                                      srv->p.max_body_bytes);
        }
        return MHD_YES;
    }
    if (*data_size) {
        if (!cs->too_large && cs->body.len + *data_size > srv->p.max_body_bytes) {
            cs->too_large = true;
            srv_buf_free(&cs->body);
        }
        if (!cs->too_large && !srv_buf_append(&cs->body, data, *data_size)) return MHD_NO;
        *data_size = 0;
        return MHD_YES;
    }
    return route(srv, cs, c, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)c;
    (void)toe;
    server *srv = cls;
    conn *cs = *con_cls;
    if (!cs) return;
    *con_cls = NULL;
    if (cs->task) srv_task_release(srv->sched, cs->task); /* cancels it if still running */
    cs->task = NULL;
    conn_unref(cs);
}

static void log_mhd(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    (void)fmt;
    (void)ap; /* libmicrohttpd's own messages (client resets, ...) are not errors of ours */
}

/* ---- the server ---- */

qr_server_params qr_server_default_params(void) {
    return (qr_server_params){.host = "127.0.0.1",
                              .n_parallel = 1,
                              .max_queue = 64,
                              .max_body_bytes = 1 << 20,
                              .pooling = QR_POOLING_MODEL};
}

static void set_model_name(server *srv) {
    const char *name = srv->p.model_alias;
    if (!name) {
        const char *slash = strrchr(srv->p.model_path, '/');
        name = slash ? slash + 1 : srv->p.model_path;
    }
    snprintf(srv->model_name, sizeof srv->model_name, "%s", name);
    size_t n = strlen(srv->model_name);
    if (!srv->p.model_alias && n > 5 && !strcmp(srv->model_name + n - 5, ".gguf"))
        srv->model_name[n - 5] = '\0';
}

static qr_status start_daemon(server *srv) {
    const char *host = srv->p.host ? srv->p.host : "127.0.0.1";
    if (!strcmp(host, "localhost")) host = "127.0.0.1";
    struct sockaddr_in a4 = {0};
    struct sockaddr_in6 a6 = {0};
    const struct sockaddr *addr;
    unsigned flags =
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (inet_pton(AF_INET, host, &a4.sin_addr) == 1) {
        a4.sin_family = AF_INET;
        a4.sin_port = htons((uint16_t)srv->p.port);
        addr = (const struct sockaddr *)&a4;
    } else if (inet_pton(AF_INET6, host, &a6.sin6_addr) == 1) {
        a6.sin6_family = AF_INET6;
        a6.sin6_port = htons((uint16_t)srv->p.port);
        addr = (const struct sockaddr *)&a6;
        flags |= MHD_USE_IPv6;
    } else {
        return qr_error(QR_ERR_INVALID_ARG,
                        "host '%s' is not a numeric IPv4 or IPv6 address (or localhost)", host);
    }
    srv->daemon =
        MHD_start_daemon(flags, (uint16_t)srv->p.port, NULL, NULL, on_request, srv,
                         MHD_OPTION_SOCK_ADDR, addr, MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
                         MHD_OPTION_CONNECTION_LIMIT, 512u, MHD_OPTION_CONNECTION_TIMEOUT, 600u,
                         MHD_OPTION_EXTERNAL_LOGGER, log_mhd, NULL, MHD_OPTION_END);
    if (!srv->daemon)
        return qr_error(QR_ERR_IO, "cannot listen on %s port %d: %s", host, srv->p.port,
                        strerror(errno));
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    int port = di ? di->port : srv->p.port;
    if (srv->p.on_listening) srv->p.on_listening(host, port, srv->p.user);
    return QR_OK;
}

static bool stop_requested(const server *srv) {
    return srv->p.stop && *srv->p.stop;
}

/* The draft model of speculative decoding: the target's vocabulary, a context of the same
 * cells and sequences as the target's, on the target's thread pool. */
static qr_status load_draft(server *srv, const qr_context_params *cp) {
    if (!srv->p.draft_model_path)
        return qr_error(QR_ERR_INVALID_ARG,
                        "speculative decoding: draft-simple needs a draft model");
    qr_status st = qr_model_load(srv->p.draft_model_path, NULL, &srv->draft_model);
    if (st) return qr_error(st, "draft model %s: %s", srv->p.draft_model_path, qr_last_error());
    if ((st = qr_spec_check_vocab(srv->model, srv->draft_model)))
        return qr_error(st, "draft model %s: %s", srv->p.draft_model_path, qr_last_error());
    if (qr_model_size_bytes(srv->draft_model) >= qr_model_size_bytes(srv->model))
        fprintf(stderr,
                "quarrel serve: warning: the draft model (%llu bytes) is not smaller than the "
                "target (%llu bytes): speculation will be slower than none\n",
                (unsigned long long)qr_model_size_bytes(srv->draft_model),
                (unsigned long long)qr_model_size_bytes(srv->model));
    qr_context_params dcp = *cp;
    dcp.n_ctx = qr_context_n_ctx(srv->ctx) * cp->n_seq_max; /* the same cells per sequence */
    dcp.share_pool = srv->ctx;
    return qr_context_create(srv->draft_model, &dcp, &srv->draft_ctx);
}

qr_status qr_server_run(const qr_server_params *params) {
    if (!params->model_path) return qr_error(QR_ERR_INVALID_ARG, "no model path given");
    if (params->port < 0 || params->port > 65535)
        return qr_error(QR_ERR_INVALID_ARG, "port %d is out of range", params->port);
    server *srv = qr_calloc(1, sizeof *srv);
    if (!srv) return QR_ERR_NOMEM;
    srv->p = *params;
    if (srv->p.n_parallel <= 0) srv->p.n_parallel = 1;
    if (srv->p.max_queue <= 0) srv->p.max_queue = 64;
    if (srv->p.max_body_bytes == 0) srv->p.max_body_bytes = 1 << 20;
    set_model_name(srv);
    atomic_init(&srv->ready, 0);
    atomic_init(&srv->next_id, 1);

    qr_status st = start_daemon(srv);
    double t0 = qr_time_now();
    if (!st) st = qr_model_load(srv->p.model_path, NULL, &srv->model);
    if (!st) {
        qr_context_params cp = srv->p.context ? *srv->p.context : qr_context_default_params();
        cp.n_seq_max = srv->p.n_parallel;
        cp.n_threads = srv->p.n_threads;
        cp.n_ctx = srv->p.n_ctx;
        if (cp.n_ctx == 0) {
            int32_t train = qr_model_n_ctx_train(srv->model);
            cp.n_ctx = train > 0 && train < 4096 ? train : 4096;
            if (cp.n_ctx < srv->p.n_parallel) cp.n_ctx = srv->p.n_parallel;
        }
        st = qr_context_create(srv->model, &cp, &srv->ctx);
        if (!st && srv->p.spec_type == QR_SPEC_DRAFT_SIMPLE) st = load_draft(srv, &cp);
        if (!st && (srv->p.n_loras < 0 || srv->p.n_loras > QR_MAX_LORAS))
            st = qr_error(QR_ERR_INVALID_ARG, "%d LoRA adapters (at most %d)", srv->p.n_loras,
                          QR_MAX_LORAS);
        for (int32_t i = 0; !st && i < srv->p.n_loras; i++)
            if (!(st = qr_lora_load(srv->model, srv->p.lora_paths[i], &srv->lora[i])))
                srv->n_lora = i + 1;
        if (!st && srv->n_lora > 0)
            st = qr_set_loras(srv->ctx, srv->lora, srv->p.lora_scales, srv->n_lora);
    }
    if (!st) {
        srv->tmpl =
            srv->p.chat_template ? srv->p.chat_template : qr_model_chat_template(srv->model);
        srv->has_template = srv->tmpl != NULL;
        if (!srv->tmpl) srv->tmpl = "chatml";
        srv->pooling =
            srv->p.pooling == QR_POOLING_MODEL ? qr_model_pooling(srv->model) : srv->p.pooling;
        srv->n_vocab = qr_model_n_vocab(srv->model);
        srv_scheduler_params sp = {.n_slots = srv->p.n_parallel,
                                   .max_queue = srv->p.max_queue,
                                   .context_shift = srv->p.context_shift,
                                   .n_keep = srv->p.n_keep,
                                   .n_lora = srv->n_lora,
                                   .lora_scales = srv->p.lora_scales};
        srv->spec = srv->p.spec_type != QR_SPEC_NONE;
        if (srv->spec)
            sp.spec = (srv_spec_params){
                .type = srv->p.spec_type,
                .draft = srv->draft_ctx,
                .n_max = srv->p.spec_n_max > 0 ? srv->p.spec_n_max : QR_SPEC_N_MAX_DEFAULT,
                .n_min = srv->p.spec_n_min,
                .p_min = srv->p.spec_p_min,
            };
        st = srv_scheduler_create(srv->ctx, &sp, &srv->sched);
    }
    if (!st) {
        srv->t_loaded = qr_time_now();
        srv->load_seconds = srv->t_loaded - t0;
        atomic_store(&srv->ready, 1);
        while (!stop_requested(srv)) {
            struct timespec ts = {0, 50 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    /* keep the error message of a failure while shutting down */
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", qr_last_error());
    srv_scheduler_stop(srv->sched); /* pending tasks end: their connections finish */
    if (srv->daemon) MHD_stop_daemon(srv->daemon);
    srv_scheduler_free(srv->sched);
    qr_context_free(srv->draft_ctx);
    qr_model_free(srv->draft_model);
    qr_context_free(srv->ctx);
    for (int32_t i = 0; i < srv->n_lora; i++)
        qr_lora_free(srv->lora[i]);
    qr_model_free(srv->model);
    free(srv);
    if (st) qr_error(st, "%s", msg);
    return st;
}
