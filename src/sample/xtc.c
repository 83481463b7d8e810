/* xtc.c - XTC, "exclude top choices", as llama.cpp's llama_sampler_xtc: with chance
 * `probability` per token (one draw of the sampler's PRNG, u <= probability), every candidate
 * whose probability is >= threshold is removed except the least likely of them, so the text
 * leaves its most predictable path while a plausible token is always kept. It does nothing
 * (and draws nothing) when probability <= 0, threshold > 0.5 or fewer than two candidates are
 * left; it also does nothing when at most one candidate reaches the threshold, or when the cut
 * would leave fewer than min_keep candidates. Probabilities are the softmax of the current
 * logits (before temperature, which comes after XTC in llama.cpp's chain). */
#include "sample/sample_internal.h"

#include <string.h>

typedef struct xtc_stage {
    qr_stage base;
    float probability, threshold;
    size_t min_keep;
} xtc_stage;

static qr_status xtc_apply(qr_stage *self, qr_sample_state *st) {
    const xtc_stage *s = (const xtc_stage *)self;
    if (s->probability <= 0.0f || s->threshold > 0.5f) return QR_OK;
    qr_cand_gather_all(st);
    if (st->size < 2) return QR_OK;
    if (qr_rng_uniform(st->rng) > (double)s->probability) return QR_OK;
    qr_cand_sort(st);
    qr_cand_softmax(st);
    /* the sorted candidates at or above the threshold are a prefix; `last` is its final one */
    size_t last = 0;
    for (size_t i = 0; i < st->size && st->data[i].p >= s->threshold; i++)
        last = i;
    if (last == 0 || st->size - last < s->min_keep) return QR_OK;
    memmove(st->data, st->data + last, (st->size - last) * sizeof *st->data);
    st->size -= last;
    return QR_OK;
}

static const qr_stage_vtable xtc_vt = {"xtc", xtc_apply, NULL, NULL};

qr_stage *qr_stage_xtc(float probability, float threshold, size_t min_keep) {
    xtc_stage *s = qr_malloc(sizeof *s);
    if (!s) return NULL;
    s->base.vt = &xtc_vt;
    s->base.free_fn = NULL;
    s->probability = probability;
    s->threshold = threshold;
    s->min_keep = min_keep;
    return &s->base;
}
