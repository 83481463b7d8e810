/* embed_request.c - parsing and validating the bodies of the embedding routes: OpenAI's
 * /v1/embeddings (input: a string, an array of strings, a token array or an array of token
 * arrays; encoding_format float or base64), ollama's /api/embed (input: a string or an array of
 * strings; truncate) and its older /api/embeddings ({prompt}); and the base64 encoder the
 * OpenAI route answers with. */
#include "server/server_internal.h"
#include "util/util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static qr_status add_text(srv_embed_request *r, const char *text) {
    srv_embed_input *in = &r->inputs[r->n_inputs];
    if (!(in->text = qr_strdup(text))) return QR_ERR_NOMEM;
    r->n_inputs++;
    return QR_OK;
}

/* A token array (OpenAI): every element a token id below n_vocab. */
static qr_status add_tokens(srv_embed_request *r, const cJSON *arr, const char *label,
                            int32_t n_vocab) {
    int n = cJSON_GetArraySize(arr);
    if (n == 0) return qr_error(QR_ERR_INVALID_ARG, "'%s' must not be empty", label);
    srv_embed_input *in = &r->inputs[r->n_inputs];
    if (!(in->tokens = qr_malloc((size_t)n * sizeof *in->tokens))) return QR_ERR_NOMEM;
    r->n_inputs++;
    int i = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, arr) {
        if (!cJSON_IsNumber(t) || t->valuedouble != floor(t->valuedouble) || t->valuedouble < 0 ||
            t->valuedouble >= n_vocab)
            return qr_error(QR_ERR_INVALID_ARG, "'%s[%d]' must be a token id between 0 and %d",
                            label, i, n_vocab - 1);
        in->tokens[i++] = (qr_token)t->valuedouble;
    }
    in->n_tokens = n;
    return QR_OK;
}

/* OpenAI's input: "text" | ["a", "b"] | [1, 2] | [[1, 2], [3]] */
static qr_status openai_input(const cJSON *input, srv_embed_request *r, int32_t n_vocab) {
    if (cJSON_IsString(input)) {
        if (!input->valuestring[0])
            return qr_error(QR_ERR_INVALID_ARG, "'input' must not be an empty string");
        return add_text(r, input->valuestring);
    }
    if (!cJSON_IsArray(input) || cJSON_GetArraySize(input) == 0)
        return qr_error(QR_ERR_INVALID_ARG,
                        "'input' must be a string, an array of strings, an array of token ids "
                        "or an array of token id arrays, and not empty");
    const cJSON *first = cJSON_GetArrayItem(input, 0);
    if (cJSON_IsNumber(first)) return add_tokens(r, input, "input", n_vocab);
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, input) {
        char label[32];
        snprintf(label, sizeof label, "input[%d]", i);
        qr_status st;
        if (cJSON_IsString(e) && e->valuestring[0])
            st = add_text(r, e->valuestring);
        else if (cJSON_IsArray(e))
            st = add_tokens(r, e, label, n_vocab);
        else
            st = qr_error(QR_ERR_INVALID_ARG,
                          "'%s' must be a non-empty string or an array of token ids", label);
        if (st) return st;
        i++;
    }
    return QR_OK;
}

/* ollama's input: "text" (empty: nothing to embed) or ["a", "b"] */
static qr_status ollama_input(const cJSON *input, srv_embed_request *r) {
    if (!input) return QR_OK;
    if (cJSON_IsString(input))
        return input->valuestring[0] ? add_text(r, input->valuestring) : QR_OK;
    if (!cJSON_IsArray(input))
        return qr_error(QR_ERR_INVALID_ARG,
                        "invalid input type: 'input' must be a string or an array of strings");
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, input) {
        if (!cJSON_IsString(e))
            return qr_error(QR_ERR_INVALID_ARG, "invalid input type: 'input[%d]' must be a string",
                            i);
        qr_status st = add_text(r, e->valuestring);
        if (st) return st;
        i++;
    }
    return QR_OK;
}

static qr_status parse_fields(const cJSON *root, srv_embed_api api, int32_t n_vocab,
                              srv_embed_request *r) {
    const cJSON *model = srv_json_field(root, "model");
    if (model && !cJSON_IsString(model))
        return qr_error(QR_ERR_INVALID_ARG, "'model' must be a string");
    if (!model && api != SRV_EMBED_OPENAI)
        return qr_error(QR_ERR_INVALID_ARG, "'model' is required");
    if (model && !(r->model = qr_strdup(model->valuestring))) return QR_ERR_NOMEM;
    const cJSON *opts = srv_json_field(root, "options"), *ka = srv_json_field(root, "keep_alive");
    if (opts && !cJSON_IsObject(opts))
        return qr_error(QR_ERR_INVALID_ARG, "'options' must be an object");
    if (ka && !cJSON_IsString(ka) && !cJSON_IsNumber(ka))
        return qr_error(QR_ERR_INVALID_ARG,
                        "'keep_alive' must be a duration string (\"5m\") or a number of seconds");
    const char *name = api == SRV_EMBED_OLLAMA_LEGACY ? "prompt" : "input";
    const cJSON *input = srv_json_field(root, name);
    if (!input && api == SRV_EMBED_OPENAI)
        return qr_error(QR_ERR_INVALID_ARG, "'input' is required");
    int n = cJSON_IsArray(input) ? cJSON_GetArraySize(input) : 1;
    if (!(r->inputs = qr_calloc((size_t)(n > 0 ? n : 1), sizeof *r->inputs))) return QR_ERR_NOMEM;
    qr_status st;
    if (api == SRV_EMBED_OPENAI) {
        st = openai_input(input, r, n_vocab);
    } else if (api == SRV_EMBED_OLLAMA) {
        st = ollama_input(input, r);
    } else {
        if (input && !cJSON_IsString(input))
            return qr_error(QR_ERR_INVALID_ARG, "'prompt' must be a string");
        st = input && input->valuestring[0] ? add_text(r, input->valuestring) : QR_OK;
    }
    if (st) return st;
    int64_t v = 0;
    if ((st = srv_json_int(root, "dimensions", "dimensions", 1, INT32_MAX, &v, NULL))) return st;
    r->dimensions = (int32_t)v;
    r->truncate = true;
    if (api == SRV_EMBED_OLLAMA && (st = srv_json_bool(root, "truncate", "truncate", &r->truncate)))
        return st;
    const cJSON *ef = srv_json_field(root, "encoding_format");
    if (api == SRV_EMBED_OPENAI && ef) {
        if (!cJSON_IsString(ef) ||
            (strcmp(ef->valuestring, "float") && strcmp(ef->valuestring, "base64")))
            return qr_error(QR_ERR_INVALID_ARG,
                            "'encoding_format' must be \"float\" or \"base64\"");
        r->base64 = !strcmp(ef->valuestring, "base64");
    }
    return QR_OK;
}

qr_status srv_parse_embed_request(const char *body, size_t len, srv_embed_api api, int32_t n_vocab,
                                  srv_embed_request *out) {
    memset(out, 0, sizeof *out);
    out->api = api;
    cJSON *root;
    qr_status st = srv_json_parse_object(body, len, &root);
    if (st) return st;
    st = parse_fields(root, api, n_vocab, out);
    cJSON_Delete(root);
    if (st) srv_embed_request_free(out);
    return st;
}

void srv_embed_request_free(srv_embed_request *r) {
    for (int32_t i = 0; i < r->n_inputs; i++) {
        free(r->inputs[i].text);
        free(r->inputs[i].tokens);
    }
    free(r->inputs);
    free(r->model);
    memset(r, 0, sizeof *r);
}

char *srv_base64(const unsigned char *data, size_t n) {
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
    if (!out) return NULL;
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
        *o++ = alphabet[v >> 18];
        *o++ = alphabet[(v >> 12) & 63];
        *o++ = alphabet[(v >> 6) & 63];
        *o++ = alphabet[v & 63];
    }
    if (i < n) { /* one or two bytes left: pad to four characters */
        uint32_t v = (uint32_t)data[i] << 16 | (i + 1 < n ? (uint32_t)data[i + 1] << 8 : 0);
        *o++ = alphabet[v >> 18];
        *o++ = alphabet[(v >> 12) & 63];
        *o++ = i + 1 < n ? alphabet[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    *o = '\0';
    return out;
}
