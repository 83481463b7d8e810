/* penalties.c - repetition, frequency and presence penalties over the last n accepted tokens,
 * as llama.cpp's llama_sampler_penalties: for each token seen c > 0 times in the window,
 *   logit = logit <= 0 ? logit * repeat : logit / repeat;
 *   logit -= c * freq + present;
 * The window is a ring of the last n tokens (n = -1: the whole history, growing) with a count
 * per vocabulary entry, so applying costs O(window), not O(vocabulary). */
#include "sample/sample_internal.h"

#include <stdlib.h>

typedef struct penalties_stage {
    qr_stage base;
    int32_t n_vocab, last_n;
    float repeat, freq, present;
    int32_t *count; /* per token id, occurrences in the window */
    qr_token *ring;
    size_t cap, len, head; /* ring capacity, tokens held, index of the oldest */
} penalties_stage;

static float penalise(const penalties_stage *s, float logit, int32_t c) {
    logit = logit <= 0.0f ? logit * s->repeat : logit / s->repeat;
    return logit - (float)c * s->freq - (float)(c > 0) * s->present;
}

static qr_status pen_apply(qr_stage *self, qr_sample_state *st) {
    penalties_stage *s = (penalties_stage *)self;
    if (s->len == 0) return QR_OK;
    if (st->gathered) {
        for (size_t i = 0; i < st->size; i++) {
            int32_t c = s->count[st->data[i].id];
            if (c > 0) st->data[i].logit = penalise(s, st->data[i].logit, c);
        }
        st->sorted = false;
        return QR_OK;
    }
    /* Each distinct token once: its count is negated when done and restored after. */
    for (size_t k = 0; k < s->len; k++) {
        qr_token t = s->ring[(s->head + k) % s->cap];
        int32_t c = s->count[t];
        if (c <= 0) continue;
        st->logits[t] = penalise(s, st->logits[t], c);
        s->count[t] = -c;
    }
    for (size_t k = 0; k < s->len; k++) {
        qr_token t = s->ring[(s->head + k) % s->cap];
        if (s->count[t] < 0) s->count[t] = -s->count[t];
    }
    return QR_OK;
}

static void pen_accept(qr_stage *self, qr_token token) {
    penalties_stage *s = (penalties_stage *)self;
    if (token < 0 || token >= s->n_vocab) return; /* not a vocabulary token: nothing to count */
    if (s->last_n > 0 && s->len == s->cap) {      /* full window: the oldest leaves */
        s->count[s->ring[s->head]]--;
        s->ring[s->head] = token;
        s->head = (s->head + 1) % s->cap;
        s->count[token]++;
        return;
    }
    if (s->len == s->cap) { /* unbounded history (-1): grow; head stays 0 */
        size_t cap = s->cap * 2;
        qr_token *r = realloc(s->ring, cap * sizeof *r);
        if (!r) return; /* out of memory: the oldest history is simply not extended */
        s->ring = r;
        s->cap = cap;
    }
    s->ring[(s->head + s->len) % s->cap] = token;
    s->len++;
    s->count[token]++;
}

static void pen_reset(qr_stage *self) {
    penalties_stage *s = (penalties_stage *)self;
    for (size_t k = 0; k < s->len; k++)
        s->count[s->ring[(s->head + k) % s->cap]] = 0;
    s->len = 0;
    s->head = 0;
}

static void pen_free(qr_stage *self) {
    penalties_stage *s = (penalties_stage *)self;
    free(s->count);
    free(s->ring);
    free(s);
}

static const qr_stage_vtable pen_vt = {"penalties", pen_apply, pen_accept, pen_reset};

qr_stage *qr_stage_penalties(int32_t n_vocab, int32_t last_n, float repeat, float freq,
                             float present) {
    penalties_stage *s = qr_calloc(1, sizeof *s);
    if (!s) return NULL;
    s->base.vt = &pen_vt;
    s->base.free_fn = pen_free;
    s->n_vocab = n_vocab;
    s->last_n = last_n;
    s->repeat = repeat;
    s->freq = freq;
    s->present = present;
    s->cap = last_n > 0 ? (size_t)last_n : 256;
    s->count = qr_calloc((size_t)n_vocab, sizeof *s->count);
    s->ring = qr_malloc(s->cap * sizeof *s->ring);
    if (!s->count || !s->ring) {
        pen_free(&s->base);
        return NULL;
    }
    return &s->base;
}
