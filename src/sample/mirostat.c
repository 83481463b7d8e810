/* mirostat.c - Mirostat (Basu et al. 2021, "Mirostat: a neural text decoding algorithm that
 * directly controls perplexity"), versions 1 and 2 as llama.cpp's llama_sampler_mirostat and
 * llama_sampler_mirostat_v2. Both truncate the candidates, draw from the renormalised rest and
 * then steer mu towards the target surprise tau:
 *   mu <- mu - eta * (-log2 p_chosen - tau),   mu starts (and resets) at 2 tau,
 * with p_chosen the chosen token's probability after renormalisation, as in llama.cpp.
 * v1 estimates the Zipf exponent s_hat from the m most likely tokens (least squares through
 * the origin of b_i = log(p_i / p_i+1) against t_i = log((i + 2) / (i + 1))) and keeps the top
 *   k = (eps 2^mu / (1 - N^-eps))^(1 / s_hat),   eps = s_hat - 1,   N = the vocabulary size.
 * v2 drops the tokens whose surprise -log2 p exceeds mu (keeping the most likely one if none
 * is left). */
#include "sample/sample_internal.h"

#include <math.h>

typedef struct mirostat_stage {
    qr_stage base;
    float tau, eta, mu;
    int32_t m, n_vocab; /* v1 only */
} mirostat_stage;

/* The draw and the mu update both versions end with. */
static void draw_and_steer(mirostat_stage *s, qr_sample_state *st) {
    size_t idx = qr_cand_draw(st);
    st->selected = (int32_t)idx;
    float surprise = -log2f(st->data[idx].p);
    s->mu -= s->eta * (surprise - s->tau);
}

static qr_status mirostat_v1_apply(qr_stage *self, qr_sample_state *st) {
    mirostat_stage *s = (mirostat_stage *)self;
    qr_cand_gather_all(st);
    if (qr_cand_check_nonempty(st) != QR_OK) return QR_ERR_NUMERIC;
    qr_cand_softmax(st);
    /* only the m most likely need sorting for s_hat (a whole-vocabulary sort cost 6-24 ms a
     * token at vocab 49152-151936) */
    qr_cand_sort_top(st, (size_t)s->m);
    float sum_tb = 0.0f, sum_tt = 0.0f;
    for (size_t i = 0; i + 1 < (size_t)s->m && i + 1 < st->size; i++) {
        float t = logf((float)(i + 2) / (float)(i + 1));
        float b = logf(st->data[i].p / st->data[i + 1].p);
        sum_tb += t * b;
        sum_tt += t * t;
    }
    float s_hat = sum_tb / sum_tt;
    float eps = s_hat - 1.0f;
    float k = powf(eps * exp2f(s->mu) / (1.0f - powf((float)s->n_vocab, -eps)), 1.0f / s_hat);
    /* llama.cpp keeps max(int(k), 1); k can be NaN (one candidate: s_hat = 0/0) or beyond an
     * int, which this clamps instead of converting */
    size_t keep = 1;
    if (k >= (float)st->size)
        keep = st->size;
    else if (k >= 1.0f)
        keep = (size_t)k;
    if (keep > (size_t)s->m) qr_cand_sort_top(st, keep); /* the kept ones in order, as a sort */
    st->size = keep;
    st->sorted = true;
    draw_and_steer(s, st);
    return QR_OK;
}

static qr_status mirostat_v2_apply(qr_stage *self, qr_sample_state *st) {
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
    draw_and_steer(s, st);
    return QR_OK;
}

static void mirostat_reset(qr_stage *self) {
    mirostat_stage *s = (mirostat_stage *)self;
    s->mu = 2.0f * s->tau;
}

static const qr_stage_vtable mirostat_v1_vt = {"mirostat", mirostat_v1_apply, NULL, mirostat_reset};
static const qr_stage_vtable mirostat_v2_vt = {"mirostat-v2", mirostat_v2_apply, NULL,
                                               mirostat_reset};

static qr_stage *mirostat_new(const qr_stage_vtable *vt, float tau, float eta, int32_t m,
                              int32_t n_vocab) {
    mirostat_stage *s = qr_malloc(sizeof *s);
    if (!s) return NULL;
    s->base.vt = vt;
    s->base.free_fn = NULL;
    s->tau = tau;
    s->eta = eta;
    s->mu = 2.0f * tau;
    s->m = m;
    s->n_vocab = n_vocab;
    return &s->base;
}

qr_stage *qr_stage_mirostat_v1(int32_t n_vocab, float tau, float eta, int32_t m) {
    return mirostat_new(&mirostat_v1_vt, tau, eta, m, n_vocab);
}

qr_stage *qr_stage_mirostat_v2(float tau, float eta) {
    return mirostat_new(&mirostat_v2_vt, tau, eta, 0, 0);
}

float qr_stage_mirostat_mu(const qr_stage *s) {
    bool ours = s->vt == &mirostat_v1_vt || s->vt == &mirostat_v2_vt;
    return ours ? ((const mirostat_stage *)s)->mu : NAN;
}
