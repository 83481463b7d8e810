/* logit_bias.c - adds fixed biases to chosen tokens' logits (-INFINITY bans a token), as
 * llama.cpp's llama_sampler_logit_bias; several entries for one token add up. */
#include "sample/sample_internal.h"

#include <math.h>
#include <stdlib.h>

typedef struct logit_bias_stage {
    qr_stage base;
    int32_t n;
    qr_logit_bias bias[]; /* a private copy */
} logit_bias_stage;

static qr_status check(float v, qr_token token) {
    if (isnan(v) || v == INFINITY)
        return qr_error(QR_ERR_NUMERIC, "logit of token %d is %s after logit bias", (int)token,
                        isnan(v) ? "NaN" : "+inf");
    return QR_OK;
}

static qr_status lb_apply(qr_stage *self, qr_sample_state *st) {
    const logit_bias_stage *s = (const logit_bias_stage *)self;
    for (int32_t b = 0; b < s->n; b++) {
        qr_token t = s->bias[b].token;
        if (!st->gathered) {
            st->logits[t] += s->bias[b].bias;
            if (check(st->logits[t], t) != QR_OK) return QR_ERR_NUMERIC;
            continue;
        }
        for (size_t i = 0; i < st->size; i++) {
            if (st->data[i].id != t) continue;
            st->data[i].logit += s->bias[b].bias;
            if (check(st->data[i].logit, t) != QR_OK) return QR_ERR_NUMERIC;
            st->sorted = false;
            break;
        }
    }
    return QR_OK;
}

static const qr_stage_vtable lb_vt = {"logit-bias", lb_apply, NULL, NULL};

qr_stage *qr_stage_logit_bias(const qr_logit_bias *bias, int32_t n_bias) {
    logit_bias_stage *s = qr_malloc(sizeof *s + (size_t)n_bias * sizeof *bias);
    if (!s) return NULL;
    s->base.vt = &lb_vt;
    s->base.free_fn = NULL;
    s->n = n_bias;
    memcpy(s->bias, bias, (size_t)n_bias * sizeof *bias);
    return &s->base;
}
