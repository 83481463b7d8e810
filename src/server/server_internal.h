/* server_internal.h - the pieces of the OpenAI-compatible server: request parsing and
 * validation (request.c), response and Server-Sent-Event formatting (response.c), Prometheus
 * metrics (metrics.c), the continuous-batching scheduler (scheduler.c) and the HTTP routes
 * (http.c). Only http.c knows libmicrohttpd; only the scheduler touches the qr_context. */
#ifndef QR_SERVER_INTERNAL_H
#define QR_SERVER_INTERNAL_H

#include "chat/tool_calls.h"
#include "quarrel.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ---- requests (request.c) ---- */

typedef enum srv_kind { SRV_CHAT, SRV_COMPLETION } srv_kind;

typedef enum srv_tool_choice {
    SRV_TOOLS_NONE,     /* no tools, or tool_choice "none": plain content */
    SRV_TOOLS_AUTO,     /* content or calls: the grammar waits for the format's trigger */
    SRV_TOOLS_REQUIRED, /* at least one call, from the first token */
    SRV_TOOLS_NAMED,    /* a call of one named function, from the first token */
} srv_tool_choice;

#define SRV_MAX_STOPS 16
#define SRV_MAX_DRY_BREAKERS 64

/* A validated /v1/chat/completions or /v1/completions request. Everything is owned (free with
 * srv_request_free). */
typedef struct srv_request {
    srv_kind kind;
    /* chat: the messages (role/content copies); completion: prompt text or prompt tokens */
    qr_chat_message *messages;
    size_t n_messages;
    char *prompt;
    qr_token *prompt_tokens;
    int32_t n_prompt_tokens; /* > 0 when the prompt was given as token ids */
    int32_t max_tokens;      /* -1: until the slot's context is full */
    qr_sampler_params sp;    /* sp.logit_bias points into bias[], sp.dry_sequence_breakers
                                into dry_breakers[] when the request gave them */
    qr_logit_bias *bias;
    char **dry_breakers;
    int n_dry_breakers;
    char *stops[SRV_MAX_STOPS];
    int n_stops;
    bool logprobs;
    int32_t top_logprobs;
    bool stream;
    bool include_usage; /* stream_options.include_usage */
    /* chat: the messages as the template gets them (OpenAI's shape, content parts joined) */
    char *messages_json;
    /* structured output: the GBNF the sampler follows (from 'grammar', 'json_schema' or
     * 'response_format'; for tools, built by srv_tools_prepare); sp.grammar points here */
    char *grammar;
    /* tools: the 'tools' array as given (NULL: none), each function's parameters converted
     * to GBNF (tool_grammars[i], root rule "root"), the choice and its function */
    char *tools_json;
    int n_tools;
    char **tool_names;
    char **tool_grammars;
    srv_tool_choice tool_choice;
    int tool_named; /* SRV_TOOLS_NAMED: index into tool_names */
    bool parallel_tool_calls;
    /* set by srv_tools_prepare: how the output is parsed, lazy-grammar triggers */
    bool parse_tools;
    qr_tool_format tool_format;
    char *trigger_words[4], *trigger_patterns[4];
    bool render_special; /* control tokens ([TOOL_CALLS], <|python_tag|>) appear in the text */
    int32_t n_ctx_limit; /* > 0: prompt and output stop at this many cells (ollama's num_ctx,
                            when below the slot's context) */
    /* speculative decoding where the server has it: "speculative": false turns it off;
     * llama.cpp's "speculative.n_max" (at most the server's), "speculative.n_min",
     * "speculative.p_min" (-1: the server's) */
    bool spec_off;
    int32_t spec_n_max, spec_n_min;
    float spec_p_min;
    /* context shift where the server has it: llama.cpp's "n_keep" (n_keep_given; -1: the
     * whole prompt) and "n_discard" (0: half of what follows the kept tokens) */
    bool n_keep_given;
    int32_t n_keep, n_discard;
    /* llama.cpp's "lora": [{"id", "scale"}] (has_lora): the scales of this request, the
     * adapters it leaves out at 0; without it the server's global scales apply */
    bool has_lora;
    int32_t n_lora_items;
    int32_t lora_id[QR_MAX_LORAS];
    float lora_item_scale[QR_MAX_LORAS];
    float lora[QR_MAX_LORAS]; /* by adapter id, filled by srv_lora_scales */
} srv_request;

/* A "lora" list ([{"id": N, "scale": X}], at most QR_MAX_LORAS items; label names it in
 * errors) into ids and scales; srv_lora_scales turns them into a scale per adapter id (those
 * not listed 0, as llama.cpp's construct_lora_list), refusing ids outside 0 .. n_lora - 1. */
qr_status srv_parse_lora(const cJSON *arr, const char *label, int32_t *ids, float *scales,
                         int32_t *n);
qr_status srv_lora_scales(const int32_t *ids, const float *scales, int32_t n, int32_t n_lora,
                          const char *label, float *out);

/* Prepare a tool request for the template's format (tmpl: its source or family name): the
 * grammar from the tools' parameters (lazy with the format's triggers for "auto"), the
 * generic format's system prompt (and the tools in it when the template ignores `tools`).
 * Does nothing when the request has no tools or tool_choice is "none". */
qr_status srv_tools_prepare(srv_request *r, const char *tmpl);

/* The GBNF of the calls in format f (root rule "root"): names[i] and grammars[i] (each with
 * its own root rule "root", as qr_json_schema_to_grammar writes them) are the functions
 * allowed; parallel: one or more calls, else one; with_response: the generic format's
 * {"response": "..."} is allowed too. *out is malloc'd. */
qr_status srv_tools_grammar(qr_tool_format f, char *const *names, char *const *grammars, int n,
                            bool parallel, bool with_response, char **out);

/* Parse and validate a request body. n_vocab bounds token ids (logit_bias keys, prompt tokens).
 * On error returns QR_ERR_INVALID_ARG with a message naming the field. */
qr_status srv_parse_request(const char *body, size_t len, srv_kind kind, int32_t n_vocab,
                            srv_request *out);
void srv_request_free(srv_request *r);

/* The JSON helpers the request parsers share (request.c). A field that is absent or null
 * counts as not given and leaves *out alone; label names the field in error messages. */
qr_status srv_json_parse_object(const char *body, size_t len, cJSON **out);
const cJSON *srv_json_field(const cJSON *obj, const char *name);
qr_status srv_json_number(const cJSON *obj, const char *name, const char *label, double lo,
                          double hi, float *out);
qr_status srv_json_int(const cJSON *obj, const char *name, const char *label, int64_t lo,
                       int64_t hi, int64_t *out, bool *given);
qr_status srv_json_bool(const cJSON *obj, const char *name, const char *label, bool *out);
/* Pieces of srv_parse_request reused by the ollama routes: 'messages' (required, non-empty),
 * 'tools', 'stop' (of obj, a string or an array of strings), and a JSON schema into GBNF
 * (errors name the field `name`). */
qr_status srv_parse_messages(const cJSON *root, srv_request *r);
qr_status srv_parse_tools(const cJSON *root, srv_request *r);
qr_status srv_parse_stop(const cJSON *obj, srv_request *r);
qr_status srv_schema_grammar(const cJSON *schema, const char *name, char **out);

/* ---- ollama requests (ollama_request.c) ---- */

/* A validated /api/generate (req.kind SRV_COMPLETION) or /api/chat (SRV_CHAT) request, with
 * ollama's defaults for the options (temperature 0.8, top_k 40, top_p 0.9, min_p 0,
 * repeat_penalty 1, repeat_last_n 64, num_predict -1, seed -1 = random). Owned. */
typedef struct srv_ollama_request {
    srv_request req;
    char *model;
    char *system;   /* /api/generate's system message (NULL: none) */
    bool raw;       /* /api/generate: the prompt as is, no template */
    bool load_only; /* no prompt (generate) or no messages (chat): ollama just loads the model */
    bool unload;    /* load_only with keep_alive 0 */
} srv_ollama_request;

qr_status srv_parse_ollama(const char *body, size_t len, srv_kind kind, srv_ollama_request *out);
void srv_ollama_request_free(srv_ollama_request *r);

/* The model name of an ollama request without a generation ({"model"} or {"name"}: /api/show,
 * /api/delete, /api/pull), with its 'verbose', 'insecure' and 'stream' flags (stream defaults
 * to true). *model is malloc'd. */
typedef struct srv_ollama_model_request {
    char *model;
    bool verbose, insecure, stream;
} srv_ollama_model_request;
qr_status srv_parse_ollama_model(const char *body, size_t len, srv_ollama_model_request *out);

/* Whether an ollama model name names the served model `served` ("NAME" and "NAME:latest" are
 * the same model, as in ollama). */
bool srv_ollama_name_matches(const char *served, const char *name);

/* ---- embedding requests (embed_request.c) ---- */

typedef enum srv_embed_api {
    SRV_EMBED_OPENAI,        /* POST /v1/embeddings */
    SRV_EMBED_OLLAMA,        /* POST /api/embed */
    SRV_EMBED_OLLAMA_LEGACY, /* POST /api/embeddings: {prompt} -> {embedding}, not normalised */
} srv_embed_api;

/* One input: its text, or its token ids (OpenAI's token arrays). */
typedef struct srv_embed_input {
    char *text;
    qr_token *tokens;
    int32_t n_tokens;
} srv_embed_input;

typedef struct srv_embed_request {
    srv_embed_api api;
    char *model; /* NULL when not given (OpenAI's routes do not require it) */
    srv_embed_input *inputs;
    int32_t n_inputs;
    bool base64;        /* OpenAI's encoding_format "base64" */
    bool truncate;      /* ollama: cut inputs longer than the context (default true) */
    int32_t dimensions; /* > 0: keep the first this many values, then normalise again */
} srv_embed_request;

qr_status srv_parse_embed_request(const char *body, size_t len, srv_embed_api api, int32_t n_vocab,
                                  srv_embed_request *out);
void srv_embed_request_free(srv_embed_request *r);
/* Standard base64 (RFC 4648, with padding) of n bytes; malloc'd, NUL-terminated. */
char *srv_base64(const unsigned char *data, size_t n);

/* /tokenize {"content", "add_special", "parse_special", "with_pieces"} */
typedef struct srv_tokenize_request {
    char *content;
    bool add_special, parse_special, with_pieces;
} srv_tokenize_request;
qr_status srv_parse_tokenize(const char *body, size_t len, srv_tokenize_request *out);
/* /detokenize {"tokens": [ids]}; *tokens is malloc'd */
qr_status srv_parse_detokenize(const char *body, size_t len, int32_t n_vocab, qr_token **tokens,
                               int32_t *n_tokens);

/* ---- responses (response.c) ---- */

/* One generated token with what logprobs need. */
typedef struct srv_token_out {
    qr_token id;
    char *piece; /* the token's bytes, NUL-terminated (may be an incomplete UTF-8 sequence) */
    int32_t n_piece;
    float logprob;
    int32_t n_top;
    char *top_pieces[QR_MAX_TOP_LOGPROBS];
    int32_t top_n_piece[QR_MAX_TOP_LOGPROBS];
    float top_logprobs[QR_MAX_TOP_LOGPROBS];
} srv_token_out;
void srv_token_out_free(srv_token_out *t);

/* What the response builders need to know about the request and its outcome. */
typedef struct srv_reply {
    srv_kind kind;
    const char *id; /* "chatcmpl-..." / "cmpl-..." */
    const char *model;
    int64_t created;
    const char *text;
    size_t n_text;
    const srv_token_out *tokens; /* with logprobs: the tokens of this piece */
    int32_t n_tokens;
    bool logprobs;
    const char *finish_reason; /* NULL while streaming */
    int32_t prompt_tokens, completion_tokens;
    /* chat with tools: the output split into content and calls (ids set) */
    const qr_tool_parse *parsed;
    /* llama.cpp's "timings" object, in the final object (the whole reply, the last chunk):
     * prompt tokens evaluated (not reused) and their milliseconds, generated tokens and theirs,
     * and with speculation the tokens drafted and accepted */
    bool has_timings, has_draft;
    int32_t prompt_n, predicted_n, draft_n, draft_n_accepted;
    double prompt_ms, predicted_ms;
} srv_reply;

/* The whole (non-streamed) completion object. */
cJSON *srv_completion_json(const srv_reply *r);
/* One streamed chunk; first: carries the assistant role (chat). usage_only: the final
 * usage chunk (choices empty) of stream_options.include_usage. */
cJSON *srv_chunk_json(const srv_reply *r, bool first, bool usage_only);
/* A streamed tool-call delta: head: {index, id, type, function: {name, arguments: ""}};
 * else {index, function: {arguments}}. */
cJSON *srv_tool_chunk_json(const srv_reply *r, int index, const qr_tool_call *call, bool head);
/* {"error": {"message", "type", "param", "code"}}; param may be NULL. */
cJSON *srv_error_json(int http_status, const char *message);
const char *srv_error_type(int http_status);

/* Append "data: <json>\n\n" (or "data: [DONE]\n\n" for json == NULL) to a growable buffer. */
typedef struct srv_buf {
    char *data;
    size_t len, cap;
} srv_buf;
bool srv_buf_append(srv_buf *b, const char *s, size_t n);
bool srv_buf_printf(srv_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void srv_buf_free(srv_buf *b);
bool srv_sse_append(srv_buf *b, const cJSON *json);

/* Copy of s[0..n) as valid UTF-8 (invalid bytes become U+FFFD), NUL-terminated; malloc'd. */
char *srv_utf8_sanitize(const char *s, size_t n);

/* ---- metrics (metrics.c) ---- */

#define SRV_HIST_BUCKETS 14

typedef struct srv_histogram {
    const double *bounds;                  /* SRV_HIST_BUCKETS upper bounds, seconds */
    uint64_t counts[SRV_HIST_BUCKETS + 1]; /* last: above every bound (+Inf only) */
    double sum;
    uint64_t count;
} srv_histogram;

#define SRV_N_STATUS 12

typedef struct srv_metrics {
    int status_code[SRV_N_STATUS];
    uint64_t status_count[SRV_N_STATUS];
    uint64_t prompt_tokens, prompt_tokens_reused, generated_tokens;
    uint64_t cancelled;                    /* requests whose client went away before the end */
    uint64_t decode_steps, decode_tokens;  /* qr_decode calls and the tokens they evaluated */
    uint64_t draft_tokens, draft_accepted; /* speculative decoding's guesses, those kept */
    uint64_t ctx_shifts;                   /* slots' context shifts (--context-shift) */
    double prompt_seconds, gen_seconds;    /* wall time of decode steps that evaluated them */
    int64_t queue_depth, slots_busy, n_slots;
    int64_t kv_used, kv_total;
    srv_histogram ttft, itl, duration;
} srv_metrics;

void srv_metrics_init(srv_metrics *m);
void srv_metrics_count_status(srv_metrics *m, int http_status);
void srv_histogram_observe(srv_histogram *h, double seconds);
/* The Prometheus text exposition (version 0.0.4) of the metrics. */
bool srv_metrics_format(const srv_metrics *m, srv_buf *out);

/* ---- scheduler (scheduler.c) ---- */

typedef enum srv_slot_action {
    SRV_ACTION_NONE = 0,
    SRV_ACTION_SAVE,    /* the slot's cached tokens and KV rows to a file (qr_state_save_seq) */
    SRV_ACTION_RESTORE, /* the slot's cache from such a file */
    SRV_ACTION_ERASE,   /* the slot's cache forgotten */
} srv_slot_action;

/* A request handed to the scheduler, shared by the HTTP connection and the scheduler thread;
 * every field below `mutable` is guarded by the scheduler's mutex. Freed when both let go. */
typedef struct srv_task {
    srv_request req;
    qr_token *prompt; /* tokenized prompt (owned) */
    int32_t n_prompt;
    double t_arrival;
    pthread_cond_t cond; /* signalled when output grows or the task ends */
    /* mutable */
    int refs;
    bool cancelled; /* the client went away: the scheduler drops the task */
    bool finished;
    const char *finish_reason; /* "stop" / "length" */
    char *error;               /* set when the task failed (finished too) */
    int error_status;
    srv_buf text;          /* emitted text so far */
    srv_token_out *tokens; /* with logprobs: every generated token */
    int32_t n_tokens, cap_tokens;
    int32_t n_generated;
    int32_t n_cached;                    /* prompt tokens reused from the slot's cache */
    int32_t n_drafted, n_draft_accepted; /* speculative decoding's guesses, those kept */
    int32_t n_ctx_shifts;                /* context shifts of its slot (--context-shift) */
    /* times (qr_time_now): a slot took the task, its first token was sampled, it ended */
    double t_start, t_first, t_end;
    /* an embedding task: no generation; the slot's sequence evaluates the prompt with qr_embed
     * and writes n_embd pooled floats to embedding (owned) */
    bool embed;
    qr_pooling pooling;
    float *embedding;
    /* a slot action (POST /slots/{id}?action=...): no generation; the scheduler runs it on
     * slot action_slot once that slot is idle, and sets the counts */
    srv_slot_action action;
    int32_t action_slot;
    char *action_path;       /* save and restore: the file (owned) */
    int32_t action_n_tokens; /* tokens saved, restored or erased */
    size_t action_n_bytes;   /* bytes written or read */
    double action_ms;
} srv_task;

typedef struct srv_scheduler srv_scheduler;

/* Speculative decoding for every slot (type QR_SPEC_NONE: off). */
typedef struct srv_spec_params {
    qr_spec_type type;
    qr_context *draft; /* DRAFT_SIMPLE: the draft model's context, a sequence per slot and the
                          target's cells per sequence, its vocabulary checked */
    int32_t n_max, n_min;
    float p_min;
} srv_spec_params;

typedef struct srv_scheduler_params {
    int32_t n_slots;
    int32_t max_queue;
    srv_spec_params spec;
    bool context_shift; /* qr_server_params' */
    int32_t n_keep;
    /* LoRA adapters attached to the context: how many, and their global scales at start */
    int32_t n_lora;
    const float *lora_scales;
} srv_scheduler_params;

/* The global LoRA scales (GET / POST /lora-adapters): requests without a "lora" field that
 * start later use them. */
void srv_scheduler_lora_get(srv_scheduler *s, float *scales);
void srv_scheduler_lora_set(srv_scheduler *s, const float *scales);

/* Takes a context with n_seq_max >= n_slots; starts the scheduler thread. */
qr_status srv_scheduler_create(qr_context *ctx, const srv_scheduler_params *p, srv_scheduler **out);
/* Fail every pending task ("the server is shutting down"), join the thread; later submissions
 * fail. Connections may still release their tasks until srv_scheduler_free. */
void srv_scheduler_stop(srv_scheduler *s);
void srv_scheduler_free(srv_scheduler *s);
int32_t srv_scheduler_n_ctx_slot(const srv_scheduler *s);

/* A new task owning req (moved) and prompt; refs = 1 (the caller). */
srv_task *srv_task_create(srv_request *req, qr_token *prompt, int32_t n_prompt);
/* Queue a task (the scheduler takes a reference). QR_ERR_CONTEXT_FULL when the queue is full. */
qr_status srv_scheduler_submit(srv_scheduler *s, srv_task *t);
/* Queue a slot action task (action, action_slot, action_path set; the scheduler takes a
 * reference). It waits for its slot to be idle; QR_ERR_CONTEXT_FULL when too many wait. */
qr_status srv_scheduler_submit_action(srv_scheduler *s, srv_task *t);
/* Drop the caller's reference; cancels the task if it is still running. */
void srv_task_release(srv_scheduler *s, srv_task *t);
/* The lock guarding every task's mutable fields and the metrics. */
void srv_scheduler_lock(srv_scheduler *s);
void srv_scheduler_unlock(srv_scheduler *s);
/* Wait (lock held) until the task changes or `seconds` pass. */
void srv_task_wait(srv_scheduler *s, srv_task *t, double seconds);
/* The metrics (read or update with the lock held). */
srv_metrics *srv_scheduler_metrics(srv_scheduler *s);

#endif
