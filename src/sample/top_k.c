/* top_k.c - keep the k most likely tokens (llama.cpp's llama_sampler_top_k; k <= 0: off).
 * As the first truncation stage it gathers the candidates itself with a heap scan over the
 * dense logits, so the vocabulary is never sorted. */
#include "sample/sample_internal.h"

typedef struct top_k_stage {
    qr_stage base;
    int32_t k;
} top_k_stage;

static qr_status top_k_apply(qr_stage *self, qr_sample_state *st) {
    int32_t k = ((const top_k_stage *)self)->k;
    if (k <= 0) return QR_OK;
    if (!st->gathered) {
        qr_cand_gather_top_k(st, k);
        return QR_OK;
    }
    if ((size_t)k < st->size) {
        qr_cand_sort(st);
        st->size = (size_t)k;
    }
    return QR_OK;
}

static const qr_stage_vtable top_k_vt = {"top-k", top_k_apply, NULL, NULL};

qr_stage *qr_stage_top_k(int32_t k) {
    top_k_stage *s = qr_malloc(sizeof *s);
    if (!s) return NULL;
    s->base.vt = &top_k_vt;
    s->base.free_fn = NULL;
    s->k = k;
    return &s->base;
}
