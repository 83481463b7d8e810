/* mirostat.c - Mirostat 2.0 (Basu et al. 2021), as llama.cpp's llama_sampler_mirostat_v2: drop
 * the tokens whose surprise -log2 p exceeds mu (keeping the most likely one if none is left),
 * draw from the renormalised rest, then steer mu towards the target surprise tau:
 *   mu <- mu - eta * (-log2 p_chosen - tau),   mu starts (and resets) at 2 tau.
 * p_chosen is the chosen token's probability after renormalisation, as in llama.cpp. */
#include "sample/sample_internal.h"

#include <math.h>

typedef struct mirostat_stage {
    qr_stage base;
    float tau, eta, mu;
} mirostat_stage;

static qr_status mirostat_apply(qr_stage *self, qr_sample_state *st) {
    mirostat_stage *s = (mirostat_stage *)self;
    qr_cand_gather_all(st);
    if (qr_cand_check_nonempty(st) != QR_OK) return QR_ERR_NUMERIC;
    qr_cand_softmax(st);
    /* In descending order the survivors are a prefix; filtering in place keeps the same set
     * without sorting the vocabulary. */
    float min_p = exp2f(-s->mu); /* -log2 p > mu  <=>  p < 2^-mu, without a log per token */
    size_t m = 0, best = 0;
    for (size_t i = 0; i < st->size; i++) {
        if (st->data[i].logit > st->data[best].logit) best = i;
        if (st->data[i].p >= min_p) st->data[m++] = st->data[i];
    }
    if (m == 0) {
        st->data[0] = st->data[best];
        m = 1;
    }
    st->size = m;
    size_t idx = qr_cand_draw(st);
    st->selected = (int32_t)idx;
    float surprise = -log2f(st->data[idx].p);
    s->mu -= s->eta * (surprise - s->tau);
    return QR_OK;
}

static void mirostat_reset(qr_stage *self) {
    mirostat_stage *s = (mirostat_stage *)self;
    s->mu = 2.0f * s->tau;
}

static const qr_stage_vtable mirostat_vt = {"mirostat-v2", mirostat_apply, NULL, mirostat_reset};

qr_stage *qr_stage_mirostat_v2(float tau, float eta) {
    mirostat_stage *s = qr_malloc(sizeof *s);
    if (!s) return NULL;
    s->base.vt = &mirostat_vt;
    s->base.free_fn = NULL;
    s->tau = tau;
    s->eta = eta;
    s->mu = 2.0f * tau;
    return &s->base;
}

float qr_stage_mirostat_mu(const qr_stage *s) {
    return s->vt == &mirostat_vt ? ((const mirostat_stage *)s)->mu : NAN;
}
