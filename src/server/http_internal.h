/* http_internal.h - what the route files share with http.c: the server and per-request state,
 * the answer helpers, prompt building, task submission and waiting, and streaming through a
 * route's own collector (SSE for the OpenAI routes, NDJSON for ollama's). Only the route files
 * (http.c, ollama.c, embeddings.c) include it: it is the libmicrohttpd side of the server. */
#ifndef QR_SERVER_HTTP_INTERNAL_H
#define QR_SERVER_HTTP_INTERNAL_H

#include "server/server_internal.h"

#include <microhttpd.h>
#include <stdatomic.h>

#define WAIT_SLICE 0.05 /* seconds between checks for a hung-up client while waiting */

typedef struct server {
    qr_server_params p;
    char model_name[256];
    struct MHD_Daemon *daemon;
    atomic_int ready; /* 0 while loading, 1 once the scheduler runs */
    atomic_ulong next_id;
    qr_model *model;
    qr_context *ctx;
    srv_scheduler *sched;
    int32_t n_vocab;
    const char *tmpl;   /* the chat template: params.chat_template, the model's, or "chatml" */
    bool has_template;  /* tmpl came from the model or the command line (not the fallback) */
    qr_pooling pooling; /* for the embedding routes: --pooling, else the model's */
    double t_loaded, load_seconds;
    /* speculative decoding (params.spec_type): the draft model and its context, if any */
    bool spec;
    qr_model *draft_model;
    qr_context *draft_ctx;
    /* LoRA adapters (params.lora_paths), attached to ctx */
    qr_lora *lora[QR_MAX_LORAS];
    int32_t n_lora;
} server;

typedef struct conn conn;

/* Turns what the task produced since the last call into bytes of cs->out (lock held); sets
 * cs->ended after the last. false: out of memory. */
typedef bool (*srv_collect_fn)(server *srv, conn *cs, const srv_task *t);

/* One HTTP request. Streaming responses hold a second reference (freed by MHD's
 * response-free callback, which may come before or after the request-completed one). */
struct conn {
    server *srv;
    atomic_int refs;
    srv_buf body;
    bool too_large;
    int fd;
    srv_task *task;
    char id[48];
    int64_t created;
    /* streaming */
    srv_collect_fn collect;
    srv_buf out;
    size_t out_pos, text_sent;
    size_t text_seen; /* text examined so far (with tools, text_sent may stay behind it) */
    int32_t tokens_sent;
    bool first_sent, ended;
    /* ollama: the model name as the request gave it (echoed back), the answer's shape */
    char model[256];
    bool chat;
};

typedef enum MHD_Result (*srv_handler)(server *srv, conn *cs, struct MHD_Connection *c);

/* Answers: JSON (json taken, may be NULL for out of memory), OpenAI's error shape, ollama's
 * {"error": "..."}; the status is counted in the metrics. */
enum MHD_Result srv_send_json(server *srv, struct MHD_Connection *c, int status, cJSON *json);
enum MHD_Result srv_send_error(server *srv, struct MHD_Connection *c, int status, const char *fmt,
                               ...) __attribute__((format(printf, 4, 5)));
enum MHD_Result srv_send_ollama_error(server *srv, struct MHD_Connection *c, int status,
                                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* A 200 answer whose body reader produces (a stream of unknown length); free_cls(cls) is
 * called when the response is done with, also when it cannot be created. */
enum MHD_Result srv_send_stream(server *srv, struct MHD_Connection *c, const char *content_type,
                                MHD_ContentReaderCallback reader, void *cls,
                                MHD_ContentReaderFreeCallback free_cls);

/* Tokenize text; *out is malloc'd. */
qr_status srv_tokenize(const qr_model *m, const char *text, bool add_special, bool parse_special,
                       qr_token **out, int32_t *n_out);
/* The request's prompt as tokens (the chat template for SRV_CHAT); 0 or the HTTP status of the
 * failure, its message in qr_last_error(). */
int srv_request_prompt(server *srv, srv_request *req, qr_token **tokens, int32_t *n);
/* Check the prompt fits a slot, then queue a generation task owning req (moved) and tokens
 * (taken); 0 and *out, or the HTTP status with the message in qr_last_error(). */
int srv_submit_generation(server *srv, srv_request *req, qr_token *tokens, int32_t n,
                          srv_task **out);
/* Wait for the task to finish; true with the scheduler lock held, false (lock not held) when
 * the client went away. */
bool srv_wait_finished(server *srv, conn *cs, srv_task *t);
/* The finished output of a tool request split into content and calls (ids set). */
qr_status srv_parse_output(server *srv, const srv_task *t, qr_tool_parse *p);
/* How much of the task's text a stream may send now (lock held): all of it, or with tools the
 * part that cannot be the start of a call; notes the text seen. */
size_t srv_stream_ready(conn *cs, const srv_task *t);
/* Answer with a stream of cs->task's output formatted by collect. */
enum MHD_Result srv_stream(server *srv, conn *cs, struct MHD_Connection *c,
                           const char *content_type, srv_collect_fn collect);

/* The routes of other files. */
enum MHD_Result srv_handle_ollama_generate(server *srv, conn *cs, struct MHD_Connection *c);
enum MHD_Result srv_handle_ollama_chat(server *srv, conn *cs, struct MHD_Connection *c);
enum MHD_Result srv_handle_ollama_tags(server *srv, conn *cs, struct MHD_Connection *c);
enum MHD_Result srv_handle_ollama_ps(server *srv, conn *cs, struct MHD_Connection *c);
enum MHD_Result srv_handle_ollama_show(server *srv, conn *cs, struct MHD_Connection *c);
enum MHD_Result srv_handle_ollama_version(server *srv, conn *cs, struct MHD_Connection *c);
enum MHD_Result srv_handle_ollama_delete(server *srv, conn *cs, struct MHD_Connection *c);
enum MHD_Result srv_handle_ollama_pull(server *srv, conn *cs, struct MHD_Connection *c);
enum MHD_Result srv_handle_openai_embeddings(server *srv, conn *cs, struct MHD_Connection *c);
enum MHD_Result srv_handle_ollama_embed(server *srv, conn *cs, struct MHD_Connection *c);
enum MHD_Result srv_handle_ollama_embeddings(server *srv, conn *cs, struct MHD_Connection *c);

#endif
