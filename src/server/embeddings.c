/* embeddings.c - the embedding routes: OpenAI's /v1/embeddings, ollama's /api/embed and its
 * older /api/embeddings. Each input becomes a scheduler task that a slot evaluates with
 * qr_embed as its own sequence of the shared context (never on the HTTP thread); the vectors
 * are pooled as the server was told (--pooling, else the GGUF's pooling_type, else mean) and
 * L2-normalised (OpenAI as llama.cpp's server does, /api/embed as ollama does), except on
 * /api/embeddings, whose vectors ollama returns as the model gives them. */
#include "server/http_internal.h"
#include "util/util.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The outcome of running every input: vectors[i] of n_embd floats, the tokens evaluated. */
typedef struct embed_result {
    float **vectors;
    int32_t n, n_embd;
    int64_t prompt_tokens;
    double seconds;
} embed_result;

static void result_free(embed_result *r) {
    for (int32_t i = 0; r->vectors && i < r->n; i++)
        free(r->vectors[i]);
    free(r->vectors);
}

/* Tokenize (or take) every input, check it fits a slot (ollama cuts it when truncate), run
 * one task per input and wait for all. 0, or the HTTP status with its message in msg. */
static int run_inputs(server *srv, conn *cs, srv_embed_request *er, embed_result *res, char *msg,
                      size_t msg_size) {
    memset(res, 0, sizeof *res);
    double t0 = qr_time_now();
    int32_t n = er->n_inputs, n_ctx = srv_scheduler_n_ctx_slot(srv->sched);
    res->n_embd = qr_model_n_embd(srv->model);
    res->n = n;
    srv_task **tasks = qr_calloc((size_t)(n > 0 ? n : 1), sizeof *tasks);
    res->vectors = qr_calloc((size_t)(n > 0 ? n : 1), sizeof *res->vectors);
    if (!tasks || !res->vectors) {
        free(tasks);
        snprintf(msg, msg_size, "out of memory");
        return 500;
    }
    int status = 0;
    for (int32_t i = 0; i < n && !status; i++) {
        srv_embed_input *in = &er->inputs[i];
        qr_token *tokens = in->tokens;
        int32_t nt = in->n_tokens;
        in->tokens = NULL; /* the task takes them */
        if (!tokens && srv_tokenize(srv->model, in->text, true, true, &tokens, &nt)) {
            snprintf(msg, msg_size, "input %d: %s", i, qr_last_error());
            status = 400;
            break;
        }
        if (nt == 0) {
            free(tokens);
            snprintf(msg, msg_size, "input %d is empty after tokenization", i);
            status = 400;
            break;
        }
        if (nt > n_ctx && er->truncate && er->api != SRV_EMBED_OPENAI) {
            nt = n_ctx; /* ollama keeps the beginning */
        } else if (nt > n_ctx) {
            free(tokens);
            snprintf(msg, msg_size,
                     "input %d is %d tokens but a slot's context holds %d: the input length "
                     "exceeds the context length",
                     i, nt, n_ctx);
            status = 400;
            break;
        }
        srv_request none;
        memset(&none, 0, sizeof none);
        float *vec = qr_malloc((size_t)res->n_embd * sizeof *vec);
        srv_task *t = vec ? srv_task_create(&none, tokens, nt) : NULL;
        if (!t) {
            free(vec);
            free(tokens);
            snprintf(msg, msg_size, "out of memory");
            status = 500;
            break;
        }
        t->embed = true;
        t->pooling = srv->pooling;
        t->embedding = vec;
        qr_status st = srv_scheduler_submit(srv->sched, t);
        if (st) {
            srv_task_release(srv->sched, t);
            snprintf(msg, msg_size, "%s", qr_last_error());
            status = st == QR_ERR_CONTEXT_FULL ? 429 : 503;
            break;
        }
        tasks[i] = t;
        res->prompt_tokens += nt;
    }
    for (int32_t i = 0; i < n && tasks[i]; i++) {
        srv_task *t = tasks[i];
        if (!status) {
            cs->task = t; /* a client that goes away cancels the one waited for */
            bool here = srv_wait_finished(srv, cs, t);
            cs->task = NULL;
            if (!here) {
                status = -1;
            } else {
                if (t->error) {
                    status = t->error_status ? t->error_status : 500;
                    snprintf(msg, msg_size, "%s", t->error);
                } else {
                    res->vectors[i] = t->embedding;
                    t->embedding = NULL;
                }
                srv_scheduler_unlock(srv->sched);
            }
        }
        srv_task_release(srv->sched, t); /* cancels what is still queued after a failure */
    }
    free(tasks);
    res->seconds = qr_time_now() - t0;
    return status;
}

/* Normalise (L2, as ollama's normalize: a zero vector stays zero), after keeping the first
 * `dimensions` values when asked. */
static void finish_vectors(const srv_embed_request *er, embed_result *res) {
    if (er->dimensions > 0 && er->dimensions < res->n_embd) res->n_embd = er->dimensions;
    if (er->api == SRV_EMBED_OLLAMA_LEGACY) return;
    for (int32_t i = 0; i < res->n; i++)
        qr_embd_normalize(res->vectors[i], res->vectors[i], res->n_embd, 2);
}

/* Little-endian float32 bytes, base64: what OpenAI's clients decode */
static cJSON *base64_vector(const float *v, int32_t n) {
    unsigned char *bytes = malloc((size_t)n * 4);
    if (!bytes) return NULL;
    for (int32_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        for (int k = 0; k < 4; k++)
            bytes[4 * i + k] = (unsigned char)(u >> (8 * k));
    }
    char *s = srv_base64(bytes, (size_t)n * 4);
    free(bytes);
    cJSON *j = s ? cJSON_CreateString(s) : NULL;
    free(s);
    return j;
}

typedef enum MHD_Result (*error_fn)(server *, struct MHD_Connection *, int, const char *, ...);

/* Parse, check the model and the pooling, run: 0 and res, or an answer already sent (*ret). */
static bool prepare(server *srv, conn *cs, struct MHD_Connection *c, srv_embed_api api,
                    srv_embed_request *er, embed_result *res, enum MHD_Result *ret) {
    error_fn fail = api == SRV_EMBED_OPENAI ? srv_send_error : srv_send_ollama_error;
    if (srv_parse_embed_request(cs->body.data, cs->body.len, api, srv->n_vocab, er)) {
        *ret = fail(srv, c, 400, "%s", qr_last_error());
        return false;
    }
    /* OpenAI's clients send any model id (as on the other /v1/ routes); ollama's name it */
    if (api != SRV_EMBED_OPENAI && !srv_ollama_name_matches(srv->model_name, er->model)) {
        *ret = fail(srv, c, 404, "model '%s' not found", er->model);
        srv_embed_request_free(er);
        return false;
    }
    if (srv->pooling == QR_POOLING_NONE) {
        *ret = fail(srv, c, 400,
                    "the server runs with --pooling none, which gives a vector per token; these "
                    "routes need one per input (restart with --pooling mean, cls or last)");
        srv_embed_request_free(er);
        return false;
    }
    char msg[1200];
    int status = run_inputs(srv, cs, er, res, msg, sizeof msg);
    if (status) {
        result_free(res);
        srv_embed_request_free(er);
        *ret = status < 0 ? MHD_NO : fail(srv, c, status, "%s", msg);
        return false;
    }
    finish_vectors(er, res);
    return true;
}

enum MHD_Result srv_handle_openai_embeddings(server *srv, conn *cs, struct MHD_Connection *c) {
    srv_embed_request er;
    embed_result res;
    enum MHD_Result ret;
    if (!prepare(srv, cs, c, SRV_EMBED_OPENAI, &er, &res, &ret)) return ret;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(root, "data");
    bool ok = true;
    for (int32_t i = 0; i < res.n && ok; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "object", "embedding");
        cJSON_AddNumberToObject(e, "index", i);
        cJSON *v = er.base64 ? base64_vector(res.vectors[i], res.n_embd)
                             : cJSON_CreateFloatArray(res.vectors[i], res.n_embd);
        ok = v != NULL;
        cJSON_AddItemToObject(e, "embedding", v);
        cJSON_AddItemToArray(data, e);
    }
    cJSON_AddStringToObject(root, "model", er.model ? er.model : srv->model_name);
    cJSON *usage = cJSON_AddObjectToObject(root, "usage");
    cJSON_AddNumberToObject(usage, "prompt_tokens", (double)res.prompt_tokens);
    cJSON_AddNumberToObject(usage, "total_tokens", (double)res.prompt_tokens);
    result_free(&res);
    srv_embed_request_free(&er);
    if (!ok) {
        cJSON_Delete(root);
        return srv_send_error(srv, c, 500, "out of memory");
    }
    return srv_send_json(srv, c, 200, root);
}

enum MHD_Result srv_handle_ollama_embed(server *srv, conn *cs, struct MHD_Connection *c) {
    srv_embed_request er;
    embed_result res;
    enum MHD_Result ret;
    if (!prepare(srv, cs, c, SRV_EMBED_OLLAMA, &er, &res, &ret)) return ret;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", er.model);
    cJSON *all = cJSON_AddArrayToObject(root, "embeddings");
    for (int32_t i = 0; i < res.n; i++)
        cJSON_AddItemToArray(all, cJSON_CreateFloatArray(res.vectors[i], res.n_embd));
    cJSON_AddNumberToObject(root, "total_duration", floor(res.seconds * 1e9));
    cJSON_AddNumberToObject(root, "load_duration", 0);
    cJSON_AddNumberToObject(root, "prompt_eval_count", (double)res.prompt_tokens);
    result_free(&res);
    srv_embed_request_free(&er);
    return srv_send_json(srv, c, 200, root);
}

enum MHD_Result srv_handle_ollama_embeddings(server *srv, conn *cs, struct MHD_Connection *c) {
    srv_embed_request er;
    embed_result res;
    enum MHD_Result ret;
    if (!prepare(srv, cs, c, SRV_EMBED_OLLAMA_LEGACY, &er, &res, &ret)) return ret;
    cJSON *root = cJSON_CreateObject();
    cJSON *v = cJSON_AddArrayToObject(root, "embedding");
    for (int32_t i = 0; i < res.n; i++) /* one input at most */
        for (int32_t j = 0; j < res.n_embd; j++)
            cJSON_AddItemToArray(v, cJSON_CreateNumber(res.vectors[i][j]));
    result_free(&res);
    srv_embed_request_free(&er);
    return srv_send_json(srv, c, 200, root);
}
