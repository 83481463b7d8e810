/* typical.c - locally typical sampling (Meister et al. 2022), as llama.cpp's
 * llama_sampler_typical: with H the entropy of the candidates, order them by |-log p - H|
 * ascending and keep them until their probability sum exceeds p (at least one is kept). */
#include "sample/sample_internal.h"

#include <math.h>
#include <stdlib.h>

typedef struct typical_stage {
    qr_stage base;
    float p;
    size_t cap; /* scratch, grown on demand and kept */
    qr_candidate *tmp;
    struct score {
        float score;
        uint32_t idx;
    } * scores;
} typical_stage;

static int cmp_score(const void *a, const void *b) {
    const struct score *x = a, *y = b;
    if (x->score != y->score) return x->score < y->score ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx); /* deterministic order on ties */
}

static qr_status typical_apply(qr_stage *self, qr_sample_state *st) {
    typical_stage *s = (typical_stage *)self;
    if (s->p >= 1.0f) return QR_OK;
    qr_cand_gather_all(st);
    if (st->size == 0) return QR_OK;
    if (st->size > s->cap) {
        qr_candidate *t = realloc(s->tmp, st->size * sizeof *t);
        if (t) s->tmp = t;
        struct score *sc = realloc(s->scores, st->size * sizeof *sc);
        if (sc) s->scores = sc;
        if (!t || !sc)
            return qr_error(QR_ERR_NOMEM, "typical sampling: out of memory for %zu candidates",
                            st->size);
        s->cap = st->size;
    }
    qr_cand_softmax(st);
    float entropy = 0.0f;
    for (size_t i = 0; i < st->size; i++) {
        float p = st->data[i].p;
        if (p > 0.0f) entropy -= p * logf(p); /* p log p -> 0 as p -> 0 */
    }
    for (size_t i = 0; i < st->size; i++) {
        s->scores[i].score = fabsf(-logf(st->data[i].p) - entropy);
        s->scores[i].idx = (uint32_t)i;
    }
    qsort(s->scores, st->size, sizeof *s->scores, cmp_score);
    float cum = 0.0f;
    size_t last = st->size;
    for (size_t i = 0; i < st->size; i++) {
        cum += st->data[s->scores[i].idx].p;
        if (cum > s->p) {
            last = i + 1;
            break;
        }
    }
    for (size_t i = 0; i < last; i++)
        s->tmp[i] = st->data[s->scores[i].idx];
    memcpy(st->data, s->tmp, last * sizeof *st->data);
    st->size = last;
    st->sorted = false;
    return QR_OK;
}

static void typical_free(qr_stage *self) {
    typical_stage *s = (typical_stage *)self;
    free(s->tmp);
    free(s->scores);
    free(s);
}

static const qr_stage_vtable typical_vt = {"typical", typical_apply, NULL, NULL};

qr_stage *qr_stage_typical(float p) {
    typical_stage *s = qr_calloc(1, sizeof *s);
    if (!s) return NULL;
    s->base.vt = &typical_vt;
    s->base.free_fn = typical_free;
    s->p = p;
    return &s->base;
}
