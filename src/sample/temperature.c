/* temperature.c - temperature scaling with optional entropy-adaptive temperature, as llama.cpp's
 * llama_sampler_temp_ext. temp <= 0 is greedy: only the highest-logit token survives.
 * Dynamic temperature ("dynatemp", range r > 0, exponent e): with the candidates' softmax
 * entropy H over the maximum log(n),
 *   T = max(0, temp - r) + (temp + r - max(0, temp - r)) * (H / log n)^e
 * and the logits are divided by T (T <= 0 again means greedy). Unlike llama.cpp, temp <= 0
 * is greedy even with a dynatemp range (quarrel.h: "temp <= 0: greedy"). */
#include "sample/sample_internal.h"

#include <math.h>

typedef struct temp_stage {
    qr_stage base;
    float temp, range, exponent;
} temp_stage;

/* Keep only the highest-logit candidate (the first one on ties). */
static void keep_max(qr_sample_state *st) {
    if (!st->gathered) {
        qr_cand_gather_max(st);
        return;
    }
    if (st->size == 0) return;
    size_t best = 0;
    for (size_t i = 1; i < st->size; i++) /* the lower id on ties, as qr_select_top */
        if (st->data[i].logit > st->data[best].logit ||
            (st->data[i].logit == st->data[best].logit && st->data[i].id < st->data[best].id))
            best = i;
    st->data[0] = st->data[best];
    st->size = 1;
    st->sorted = true;
}

static void scale(qr_sample_state *st, float t) {
    for (size_t i = 0; i < st->size; i++)
        st->data[i].logit /= t;
}

static qr_status temp_apply(qr_stage *self, qr_sample_state *st) {
    const temp_stage *s = (const temp_stage *)self;
    if (s->temp <= 0.0f) {
        keep_max(st);
        return QR_OK;
    }
    qr_cand_gather_all(st);
    if (s->range <= 0.0f) {
        scale(st, s->temp);
        return QR_OK;
    }
    if (st->size <= 1) return QR_OK;
    float min_t = fmaxf(0.0f, s->temp - s->range), max_t = s->temp + s->range;
    float max_entropy = logf((float)st->size);
    qr_cand_softmax(st);
    float entropy = 0.0f;
    for (size_t i = 0; i < st->size; i++) {
        float p = st->data[i].p;
        if (p > 0.0f) entropy -= p * logf(p);
    }
    float t = min_t + (max_t - min_t) * powf(entropy / max_entropy, s->exponent);
    if (t <= 0.0f)
        keep_max(st);
    else
        scale(st, t);
    return QR_OK;
}

static const qr_stage_vtable temp_vt = {"temperature", temp_apply, NULL, NULL};

qr_stage *qr_stage_temperature(float temp, float dyn_range, float dyn_exp) {
    temp_stage *s = qr_malloc(sizeof *s);
    if (!s) return NULL;
    s->base.vt = &temp_vt;
    s->base.free_fn = NULL;
    s->temp = temp;
    s->range = dyn_range;
    s->exponent = dyn_exp;
    return &s->base;
}
