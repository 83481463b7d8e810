/* response.c - the JSON the OpenAI routes answer with (completion objects, streamed chunks,
 * error objects, logprobs in both the chat and the legacy completions shape) and the
 * Server-Sent-Events framing, as in the OpenAI API reference. */
#include "server/server_internal.h"
#include "util/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

bool srv_buf_append(srv_buf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) return false;
        b->data = d;
        b->cap = cap;
    }
    if (n) memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return true;
}

bool srv_buf_printf(srv_buf *b, const char *fmt, ...) {
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return false;
    if ((size_t)n < sizeof small) return srv_buf_append(b, small, (size_t)n);
    char *big = malloc((size_t)n + 1);
    if (!big) return false;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    bool ok = srv_buf_append(b, big, (size_t)n);
    free(big);
    return ok;
}

void srv_buf_free(srv_buf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

bool srv_sse_append(srv_buf *b, const cJSON *json) {
    if (!json) return srv_buf_append(b, "data: [DONE]\n\n", 14);
    char *s = cJSON_PrintUnformatted(json);
    if (!s) return false;
    bool ok = srv_buf_append(b, "data: ", 6) && srv_buf_append(b, s, strlen(s)) &&
              srv_buf_append(b, "\n\n", 2);
    free(s);
    return ok;
}

char *srv_utf8_sanitize(const char *s, size_t n) {
    /* qr_utf8_stream_push needs room for n + 4 bytes; each invalid byte may grow to 3 */
    char *out = malloc(3 * n + 8);
    if (!out) return NULL;
    qr_utf8_stream st = {0};
    size_t m = qr_utf8_stream_push(&st, s, n, out);
    m += qr_utf8_stream_flush(&st, out + m);
    out[m] = '\0';
    return out;
}

void srv_token_out_free(srv_token_out *t) {
    free(t->piece);
    for (int32_t i = 0; i < t->n_top; i++)
        free(t->top_pieces[i]);
    memset(t, 0, sizeof *t);
}

const char *srv_error_type(int http_status) {
    switch (http_status) {
    case 401:
        return "authentication_error";
    case 404:
        return "not_found_error";
    case 429:
        return "rate_limit_error";
    case 501:
        return "not_supported_error";
    case 503:
        return "unavailable_error";
    default:
        return http_status >= 500 ? "server_error" : "invalid_request_error";
    }
}

cJSON *srv_error_json(int http_status, const char *message) {
    cJSON *root = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(e, "message", message);
    cJSON_AddStringToObject(e, "type", srv_error_type(http_status));
    cJSON_AddNullToObject(e, "param");
    cJSON_AddNumberToObject(e, "code", http_status);
    return root;
}

static cJSON *bytes_array(const char *s, int32_t n) {
    cJSON *a = cJSON_CreateArray();
    for (int32_t i = 0; i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber((unsigned char)s[i]));
    return a;
}

static void add_sanitized(cJSON *obj, const char *name, const char *s, size_t n) {
    char *clean = srv_utf8_sanitize(s, n);
    cJSON_AddStringToObject(obj, name, clean ? clean : "");
    free(clean);
}

/* chat: {"content": [{"token", "logprob", "bytes", "top_logprobs": [...]}], "refusal": null} */
static cJSON *chat_logprobs(const srv_reply *r) {
    cJSON *lp = cJSON_CreateObject();
    cJSON *content = cJSON_AddArrayToObject(lp, "content");
    for (int32_t i = 0; i < r->n_tokens; i++) {
        const srv_token_out *t = &r->tokens[i];
        cJSON *o = cJSON_CreateObject();
        add_sanitized(o, "token", t->piece, (size_t)t->n_piece);
        cJSON_AddNumberToObject(o, "logprob", t->logprob);
        cJSON_AddItemToObject(o, "bytes", bytes_array(t->piece, t->n_piece));
        cJSON *top = cJSON_AddArrayToObject(o, "top_logprobs");
        for (int32_t j = 0; j < t->n_top; j++) {
            cJSON *a = cJSON_CreateObject();
            add_sanitized(a, "token", t->top_pieces[j], (size_t)t->top_n_piece[j]);
            cJSON_AddNumberToObject(a, "logprob", t->top_logprobs[j]);
            cJSON_AddItemToObject(a, "bytes", bytes_array(t->top_pieces[j], t->top_n_piece[j]));
            cJSON_AddItemToArray(top, a);
        }
        cJSON_AddItemToArray(content, o);
    }
    cJSON_AddNullToObject(lp, "refusal");
    return lp;
}

/* legacy completions: {"tokens", "token_logprobs", "top_logprobs": [{piece: lp}], "text_offset"}
 * text_offset counts bytes of the pieces from the start of this reply's text. */
static cJSON *completion_logprobs(const srv_reply *r, size_t offset0) {
    cJSON *lp = cJSON_CreateObject();
    cJSON *tokens = cJSON_AddArrayToObject(lp, "tokens");
    cJSON *token_lp = cJSON_AddArrayToObject(lp, "token_logprobs");
    cJSON *top = cJSON_AddArrayToObject(lp, "top_logprobs");
    cJSON *offsets = cJSON_AddArrayToObject(lp, "text_offset");
    size_t off = offset0;
    for (int32_t i = 0; i < r->n_tokens; i++) {
        const srv_token_out *t = &r->tokens[i];
        char *clean = srv_utf8_sanitize(t->piece, (size_t)t->n_piece);
        cJSON_AddItemToArray(tokens, cJSON_CreateString(clean ? clean : ""));
        free(clean);
        cJSON_AddItemToArray(token_lp, cJSON_CreateNumber(t->logprob));
        cJSON *alts = cJSON_CreateObject();
        for (int32_t j = 0; j < t->n_top; j++) {
            char *k = srv_utf8_sanitize(t->top_pieces[j], (size_t)t->top_n_piece[j]);
            if (k && !cJSON_GetObjectItemCaseSensitive(alts, k))
                cJSON_AddNumberToObject(alts, k, t->top_logprobs[j]);
            free(k);
        }
        cJSON_AddItemToArray(top, alts);
        cJSON_AddItemToArray(offsets, cJSON_CreateNumber((double)off));
        off += (size_t)t->n_piece;
    }
    return lp;
}

static cJSON *usage_json(const srv_reply *r) {
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", r->prompt_tokens);
    cJSON_AddNumberToObject(u, "completion_tokens", r->completion_tokens);
    cJSON_AddNumberToObject(u, "total_tokens", r->prompt_tokens + r->completion_tokens);
    return u;
}

static void add_timings(cJSON *root, const srv_reply *r) {
    if (!r->has_timings) return;
    cJSON *t = cJSON_AddObjectToObject(root, "timings");
    cJSON_AddNumberToObject(t, "prompt_n", r->prompt_n);
    cJSON_AddNumberToObject(t, "prompt_ms", r->prompt_ms);
    cJSON_AddNumberToObject(t, "prompt_per_token_ms", r->prompt_n ? r->prompt_ms / r->prompt_n : 0);
    cJSON_AddNumberToObject(t, "prompt_per_second",
                            r->prompt_ms > 0 ? 1e3 * r->prompt_n / r->prompt_ms : 0);
    cJSON_AddNumberToObject(t, "predicted_n", r->predicted_n);
    cJSON_AddNumberToObject(t, "predicted_ms", r->predicted_ms);
    cJSON_AddNumberToObject(t, "predicted_per_token_ms",
                            r->predicted_n ? r->predicted_ms / r->predicted_n : 0);
    cJSON_AddNumberToObject(t, "predicted_per_second",
                            r->predicted_ms > 0 ? 1e3 * r->predicted_n / r->predicted_ms : 0);
    if (r->has_draft) {
        cJSON_AddNumberToObject(t, "draft_n", r->draft_n);
        cJSON_AddNumberToObject(t, "draft_n_accepted", r->draft_n_accepted);
    }
}

static cJSON *envelope(const srv_reply *r, const char *object) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "id", r->id);
    cJSON_AddStringToObject(root, "object", object);
    cJSON_AddNumberToObject(root, "created", (double)r->created);
    cJSON_AddStringToObject(root, "model", r->model);
    cJSON_AddStringToObject(root, "system_fingerprint", "quarrel");
    return root;
}

static void add_finish(cJSON *choice, const char *finish_reason) {
    if (finish_reason)
        cJSON_AddStringToObject(choice, "finish_reason", finish_reason);
    else
        cJSON_AddNullToObject(choice, "finish_reason");
}

cJSON *srv_completion_json(const srv_reply *r) {
    bool chat = r->kind == SRV_CHAT;
    cJSON *root = envelope(r, chat ? "chat.completion" : "text_completion");
    cJSON *choices = cJSON_AddArrayToObject(root, "choices");
    cJSON *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "index", 0);
    if (chat) {
        cJSON *m = cJSON_AddObjectToObject(c, "message");
        cJSON_AddStringToObject(m, "role", "assistant");
        const qr_tool_parse *p = r->parsed;
        if (p && p->n_calls > 0 && !p->content[0])
            cJSON_AddNullToObject(m, "content"); /* only calls: OpenAI's content is null */
        else if (p)
            add_sanitized(m, "content", p->content, strlen(p->content));
        else
            add_sanitized(m, "content", r->text ? r->text : "", r->n_text);
        cJSON_AddNullToObject(m, "refusal");
        if (p && p->n_calls > 0) {
            cJSON *calls = cJSON_AddArrayToObject(m, "tool_calls");
            for (int i = 0; i < p->n_calls; i++) {
                cJSON *o = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "id", p->calls[i].id ? p->calls[i].id : "");
                cJSON_AddStringToObject(o, "type", "function");
                cJSON *fn = cJSON_AddObjectToObject(o, "function");
                add_sanitized(fn, "name", p->calls[i].name, strlen(p->calls[i].name));
                add_sanitized(fn, "arguments", p->calls[i].arguments,
                              strlen(p->calls[i].arguments));
                cJSON_AddItemToArray(calls, o);
            }
        }
    } else {
        add_sanitized(c, "text", r->text ? r->text : "", r->n_text);
    }
    if (r->logprobs)
        cJSON_AddItemToObject(c, "logprobs", chat ? chat_logprobs(r) : completion_logprobs(r, 0));
    else
        cJSON_AddNullToObject(c, "logprobs");
    add_finish(c, r->finish_reason);
    cJSON_AddItemToArray(choices, c);
    cJSON_AddItemToObject(root, "usage", usage_json(r));
    add_timings(root, r);
    return root;
}

cJSON *srv_chunk_json(const srv_reply *r, bool first, bool usage_only) {
    bool chat = r->kind == SRV_CHAT;
    cJSON *root = envelope(r, chat ? "chat.completion.chunk" : "text_completion");
    cJSON *choices = cJSON_AddArrayToObject(root, "choices");
    if (usage_only) {
        cJSON_AddItemToObject(root, "usage", usage_json(r));
        return root;
    }
    cJSON *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "index", 0);
    if (chat) {
        cJSON *d = cJSON_AddObjectToObject(c, "delta");
        if (first) cJSON_AddStringToObject(d, "role", "assistant");
        if (r->n_text || (first && !r->finish_reason))
            add_sanitized(d, "content", r->text ? r->text : "", r->n_text);
    } else {
        add_sanitized(c, "text", r->text ? r->text : "", r->n_text);
    }
    if (r->logprobs && r->n_tokens > 0)
        cJSON_AddItemToObject(c, "logprobs", chat ? chat_logprobs(r) : completion_logprobs(r, 0));
    else
        cJSON_AddNullToObject(c, "logprobs");
    add_finish(c, r->finish_reason);
    cJSON_AddItemToArray(choices, c);
    if (r->finish_reason) add_timings(root, r);
    return root;
}

cJSON *srv_tool_chunk_json(const srv_reply *r, int index, const qr_tool_call *call, bool head) {
    cJSON *root = envelope(r, "chat.completion.chunk");
    cJSON *choices = cJSON_AddArrayToObject(root, "choices");
    cJSON *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "index", 0);
    cJSON *d = cJSON_AddObjectToObject(c, "delta");
    cJSON *calls = cJSON_AddArrayToObject(d, "tool_calls");
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "index", index);
    if (head) {
        cJSON_AddStringToObject(o, "id", call->id ? call->id : "");
        cJSON_AddStringToObject(o, "type", "function");
    }
    cJSON *fn = cJSON_AddObjectToObject(o, "function");
    if (head) add_sanitized(fn, "name", call->name, strlen(call->name));
    if (head)
        cJSON_AddStringToObject(fn, "arguments", "");
    else
        add_sanitized(fn, "arguments", call->arguments, strlen(call->arguments));
    cJSON_AddItemToArray(calls, o);
    cJSON_AddNullToObject(c, "logprobs");
    add_finish(c, NULL);
    cJSON_AddItemToArray(choices, c);
    return root;
}
