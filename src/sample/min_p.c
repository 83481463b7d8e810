/* min_p.c - min-p sampling, as llama.cpp's llama_sampler_min_p: keep the tokens whose
 * probability is at least p times the largest, i.e. logit >= max_logit + log(p). On the dense
 * logits it gathers only the survivors. */
#include "sample/sample_internal.h"

#include <math.h>

typedef struct min_p_stage {
    qr_stage base;
    float p;
} min_p_stage;

static qr_status min_p_apply(qr_stage *self, qr_sample_state *st) {
    float p = ((const min_p_stage *)self)->p;
    if (p <= 0.0f) return QR_OK;
    if (!st->gathered) {
        qr_cand_apply_filter(st); /* reads every dense logit */
        float max_l = -INFINITY;
        for (int32_t i = 0; i < st->n_vocab; i++)
            if (st->logits[i] > max_l) max_l = st->logits[i];
        float min_l = max_l + logf(p);
        size_t m = 0;
        for (int32_t i = 0; i < st->n_vocab; i++) {
            float l = st->logits[i];
            if (l >= min_l && l != -INFINITY) st->data[m++] = (qr_candidate){i, l, 0.0f};
        }
        st->size = m;
        st->sorted = false;
        st->gathered = true;
        return QR_OK;
    }
    if (st->size == 0) return QR_OK;
    float max_l = st->data[0].logit;
    if (!st->sorted)
        for (size_t i = 1; i < st->size; i++)
            if (st->data[i].logit > max_l) max_l = st->data[i].logit;
    float min_l = max_l + logf(p);
    size_t m = 0; /* in-place filter keeps the order, so a sorted list stays sorted */
    for (size_t i = 0; i < st->size; i++)
        if (st->data[i].logit >= min_l) st->data[m++] = st->data[i];
    st->size = m;
    return QR_OK;
}

static const qr_stage_vtable min_p_vt = {"min-p", min_p_apply, NULL, NULL};

qr_stage *qr_stage_min_p(float p) {
    min_p_stage *s = qr_malloc(sizeof *s);
    if (!s) return NULL;
    s->base.vt = &min_p_vt;
    s->base.free_fn = NULL;
    s->p = p;
    return &s->base;
}
