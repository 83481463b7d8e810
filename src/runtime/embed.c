/* embed.c - embeddings of a sequence (qr_embed): the forward pass's hidden state after the
 * output norm (llama.cpp's t_embd, "result_norm"), pooled over the sequence as llama.cpp's
 * build_pooling does (mean, first token, last token, or none), and the normalisations of
 * llama.cpp's common_embd_normalize. */
#include "runtime/context.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

qr_pooling qr_model_pooling(const qr_model *model) {
    const int32_t p = model ? model->hp.pooling_type : -1;
    return p < 0 ? QR_POOLING_MEAN : (qr_pooling)p;
}

qr_status qr_embed(qr_context *ctx, int32_t seq_id, const qr_token *tokens, int32_t n_tokens,
                   qr_pooling pooling, float *out) {
    if (!ctx || !tokens || !out)
        return qr_error(QR_ERR_INVALID_ARG, "qr_embed: %s is NULL",
                        !ctx ? "ctx" : !tokens ? "tokens" : "out");
    if (n_tokens <= 0) return qr_error(QR_ERR_INVALID_ARG, "qr_embed: no tokens to embed");
    if (pooling == QR_POOLING_MODEL) pooling = qr_model_pooling(ctx->model);
    if (pooling < QR_POOLING_NONE || pooling > QR_POOLING_LAST)
        return qr_error(QR_ERR_INVALID_ARG, "qr_embed: unknown pooling %d", (int)pooling);
    if (n_tokens > ctx->n_ctx_seq)
        return qr_error(QR_ERR_CONTEXT_FULL,
                        "the input is %d tokens but the context holds %d per sequence", n_tokens,
                        ctx->n_ctx_seq);
    qr_status st = qr_kv_remove(ctx, seq_id, 0, -1);
    if (st) return st;
    qr_batch b;
    if ((st = qr_batch_init(&b, n_tokens))) return st;
    /* the rows pooling needs: all of them for none and mean */
    for (int32_t i = 0; i < n_tokens; i++) {
        const bool want = pooling == QR_POOLING_NONE || pooling == QR_POOLING_MEAN ||
                          (pooling == QR_POOLING_CLS && i == 0) ||
                          (pooling == QR_POOLING_LAST && i == n_tokens - 1);
        qr_batch_add(&b, tokens[i], i, seq_id, want);
    }
    ctx->embd_only = true;
    st = qr_decode_timed(ctx, &b, true);
    ctx->embd_only = false;
    qr_batch_free(&b);
    qr_kv_remove(ctx, seq_id, 0, -1);
    const int64_t d = ctx->model->hp.n_embd;
    const float *rows = ctx->logits;
    ctx->n_logits = 0; /* the rows are not logits: qr_get_logits must not hand them out */
    if (st) return st;
    if (pooling == QR_POOLING_NONE) {
        memcpy(out, rows, (size_t)n_tokens * (size_t)d * sizeof *out);
    } else if (pooling == QR_POOLING_MEAN) {
        /* llama.cpp multiplies by a matrix of 1/n (ggml_mul_mat, f32): the same sum of
         * rows each scaled by 1/n */
        const float inv = 1.0f / (float)n_tokens;
        for (int64_t j = 0; j < d; j++) {
            float acc = 0.0f;
            for (int32_t i = 0; i < n_tokens; i++)
                acc += rows[(size_t)i * (size_t)d + (size_t)j] * inv;
            out[j] = acc;
        }
    } else { /* cls, last: the one row asked for */
        memcpy(out, rows, (size_t)d * sizeof *out);
    }
    return QR_OK;
}

void qr_embd_normalize(const float *in, float *out, int64_t n, int norm) {
    double sum = 0.0;
    switch (norm) {
    case -1: sum = 1.0; break;
    case 0: /* max-abs, scaled into int16's range */
        for (int64_t i = 0; i < n; i++)
            if (sum < fabs((double)in[i])) sum = fabs((double)in[i]);
        sum /= 32760.0;
        break;
    case 2:
        for (int64_t i = 0; i < n; i++)
            sum += (double)(in[i] * in[i]); /* the square in float, as llama.cpp */
        sum = sqrt(sum);
        break;
    default: /* 1: taxicab; p > 2: the p-norm */
        for (int64_t i = 0; i < n; i++)
            sum += pow(fabs((double)in[i]), norm);
        sum = pow(sum, 1.0 / norm);
        break;
    }
    const float scale = sum > 0.0 ? (float)(1.0 / sum) : 0.0f;
    for (int64_t i = 0; i < n; i++)
        out[i] = in[i] * scale;
}
