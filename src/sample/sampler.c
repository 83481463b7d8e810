/* sampler.c - the public sampler: parameters, the chain built from them in llama.cpp's common
 * order (common/sampling.cpp), the per-token loop and the log-probabilities.
 *
 * Chain: logit bias, grammar, penalties, [DRY, top-k, typical, top-p, min-p, XTC, temperature
 * (+dynatemp), dist] or, with mirostat 1 or 2, [temperature, mirostat v1 or v2]. Stages
 * that are off are not in the chain. Greedy (temp <= 0) without typical sampling or XTC skips the
 * truncation stages: each of them keeps the highest-logit token, so the pick is the same and
 * costs one scan (XTC removes that token, so with it on they all run).
 *
 * The grammar stage (src/grammar/grammar_stage.c) masks lazily: it installs a token filter
 * that gathering honours, so greedy and top-k test only the best tokens; masking commutes with
 * the bias, so this is llama.cpp's grammar-first order. It advances only with the picked token.
 *
 * Log-probabilities come from the full softmax over the whole vocabulary of the logits after
 * logit bias and before every other stage (penalties, truncation, temperature), as OpenAI's
 * logprobs report the model's distribution rather than the sampler's. */
#include "sample/sample_internal.h"

#include <math.h>
#include <stdlib.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define MAX_STAGES 12

/* The --quality preset (see the "Sampler" section of bench/README.md): entropy-adaptive
 * temperature 0.7 +- 0.3 (exponent 1), top-p 0.95, min-p 0.05, and a frequency-weighted
 * penalty 0.1 per occurrence over the last 256 tokens instead of the multiplicative repeat
 * penalty (which punishes a token seen once as hard as one seen ten times). top_k, typical_p,
 * the seed, logit bias and n_probs are kept from the caller's parameters. */
static void apply_quality_preset(qr_sampler_params *p) {
    p->temp = 0.7f;
    p->dynatemp_range = 0.3f;
    p->dynatemp_exp = 1.0f;
    p->top_p = 0.95f;
    p->min_p = 0.05f;
    p->repeat_penalty = 1.0f;
    p->frequency_penalty = 0.1f;
    p->presence_penalty = 0.0f;
    p->repeat_last_n = 256;
}

struct qr_sampler {
    qr_sampler_params params; /* effective (after the preset); logit_bias not owned */
    int32_t n_vocab;
    uint64_t seed;
    qr_rng rng;
    qr_stage *stages[MAX_STAGES];
    int n_stages;
    int n_before_logprobs; /* stages that run before the log-probabilities are taken */
    float *work;           /* dense logits, n_vocab */
    float *lp_work;        /* copy for the chosen token's log-probability, n_vocab */
    qr_candidate *cand;    /* n_vocab */
    qr_stage *grammar;     /* the grammar stage (also in stages), advanced on picked tokens */
    bool ends_in_dist;     /* the last stage is the plain draw (not mirostat) */
};

static const char *const default_breakers[4] = {"\n", ":", "\"", "*"}; /* llama.cpp's */

qr_sampler_params qr_sampler_default_params(void) {
    qr_sampler_params p;
    memset(&p, 0, sizeof p);
    p.seed = QR_SEED_RANDOM;
    p.temp = 0.8f;
    p.top_k = 40;
    p.top_p = 0.95f;
    p.min_p = 0.05f;
    p.typical_p = 1.0f;
    p.xtc_probability = 0.0f;
    p.xtc_threshold = 0.1f;
    p.dry_multiplier = 0.0f;
    p.dry_base = 1.75f;
    p.dry_allowed_length = 2;
    p.dry_penalty_last_n = 64;
    p.dry_sequence_breakers = default_breakers;
    p.n_dry_sequence_breakers = 4;
    p.repeat_penalty = 1.0f;
    p.repeat_last_n = 64;
    p.presence_penalty = 0.0f;
    p.frequency_penalty = 0.0f;
    p.dynatemp_range = 0.0f;
    p.dynatemp_exp = 1.0f;
    p.mirostat = 0;
    p.mirostat_tau = 5.0f;
    p.mirostat_eta = 0.1f;
    p.quality = false;
    p.n_logit_bias = 0;
    p.logit_bias = NULL;
    p.n_probs = 0;
    return p;
}

#define BAD(cond, ...)                                                                             \
    do {                                                                                           \
        if (cond) return qr_error(QR_ERR_INVALID_ARG, "sampler: " __VA_ARGS__);                    \
    } while (0)

static qr_status validate(const qr_sampler_params *p, int32_t n_vocab) {
    BAD(n_vocab <= 0, "n_vocab must be positive (got %d)", (int)n_vocab);
    BAD(isnan(p->temp) || isinf(p->temp), "temp must be finite (got %g)", (double)p->temp);
    BAD(!(p->top_p > 0.0f && p->top_p <= 1.0f), "top_p must be in (0, 1] (got %g)",
        (double)p->top_p);
    BAD(!(p->min_p >= 0.0f && p->min_p <= 1.0f), "min_p must be in [0, 1] (got %g)",
        (double)p->min_p);
    BAD(!(p->typical_p > 0.0f && p->typical_p <= 1.0f), "typical_p must be in (0, 1] (got %g)",
        (double)p->typical_p);
    BAD(!(p->xtc_probability >= 0.0f && p->xtc_probability <= 1.0f),
        "xtc_probability must be in [0, 1] (got %g)", (double)p->xtc_probability);
    BAD(!(p->xtc_threshold >= 0.0f && p->xtc_threshold <= 1.0f),
        "xtc_threshold must be in [0, 1] (got %g)", (double)p->xtc_threshold);
    BAD(!isfinite(p->dry_multiplier) || p->dry_multiplier < 0.0f,
        "dry_multiplier must be finite and >= 0 (got %g)", (double)p->dry_multiplier);
    BAD(isnan(p->dry_base) || isinf(p->dry_base), "dry_base must be finite (got %g)",
        (double)p->dry_base);
    BAD(p->dry_allowed_length < 0, "dry_allowed_length must be >= 0 (got %d)",
        (int)p->dry_allowed_length);
    BAD(p->dry_penalty_last_n < -1,
        "dry_penalty_last_n must be -1 (all), 0 (off) or positive (got %d)",
        (int)p->dry_penalty_last_n);
    BAD(p->n_dry_sequence_breakers < 0, "n_dry_sequence_breakers must be >= 0 (got %d)",
        (int)p->n_dry_sequence_breakers);
    BAD(p->n_dry_sequence_breakers > 0 && !p->dry_sequence_breakers,
        "dry_sequence_breakers is NULL but n_dry_sequence_breakers is %d",
        (int)p->n_dry_sequence_breakers);
    BAD(!(p->repeat_penalty > 0.0f) || isinf(p->repeat_penalty),
        "repeat_penalty must be positive and finite (got %g)", (double)p->repeat_penalty);
    BAD(p->repeat_last_n < -1, "repeat_last_n must be -1 (all), 0 (off) or positive (got %d)",
        (int)p->repeat_last_n);
    BAD(!isfinite(p->presence_penalty), "presence_penalty must be finite (got %g)",
        (double)p->presence_penalty);
    BAD(!isfinite(p->frequency_penalty), "frequency_penalty must be finite (got %g)",
        (double)p->frequency_penalty);
    BAD(!(p->dynatemp_range >= 0.0f) || isinf(p->dynatemp_range),
        "dynatemp_range must be finite and >= 0 (got %g)", (double)p->dynatemp_range);
    BAD(!(p->dynatemp_exp >= 0.0f) || isinf(p->dynatemp_exp),
        "dynatemp_exp must be finite and >= 0 (got %g)", (double)p->dynatemp_exp);
    BAD(p->mirostat < 0 || p->mirostat > 2,
        "mirostat must be 0 (off), 1 (mirostat) or 2 (mirostat v2) (got %d)", (int)p->mirostat);
    BAD(!(p->mirostat_tau >= 0.0f) || isinf(p->mirostat_tau),
        "mirostat_tau must be finite and >= 0 (got %g)", (double)p->mirostat_tau);
    BAD(!(p->mirostat_eta >= 0.0f) || isinf(p->mirostat_eta),
        "mirostat_eta must be finite and >= 0 (got %g)", (double)p->mirostat_eta);
    BAD(p->quality && p->mirostat != 0, "the quality preset cannot be combined with mirostat");
    BAD(p->n_probs < 0 || p->n_probs > QR_MAX_TOP_LOGPROBS, "n_probs must be in [0, %d] (got %d)",
        QR_MAX_TOP_LOGPROBS, (int)p->n_probs);
    BAD(p->n_grammar_trigger_words < 0 || p->n_grammar_trigger_patterns < 0,
        "n_grammar_trigger_words and n_grammar_trigger_patterns must be >= 0");
    BAD((p->n_grammar_trigger_words > 0 && !p->grammar_trigger_words) ||
            (p->n_grammar_trigger_patterns > 0 && !p->grammar_trigger_patterns),
        "grammar trigger words or patterns are NULL but their count is not 0");
    BAD(p->n_logit_bias < 0, "n_logit_bias must be >= 0 (got %d)", (int)p->n_logit_bias);
    BAD(p->n_logit_bias > 0 && !p->logit_bias, "logit_bias is NULL but n_logit_bias is %d",
        (int)p->n_logit_bias);
    for (int32_t i = 0; i < p->n_logit_bias; i++) {
        const qr_logit_bias *b = &p->logit_bias[i];
        BAD(b->token < 0 || b->token >= n_vocab,
            "logit_bias[%d]: token %d is outside the vocabulary [0, %d)", (int)i, (int)b->token,
            (int)n_vocab);
        BAD(isnan(b->bias) || b->bias == INFINITY,
            "logit_bias[%d] for token %d must be finite or -inf (got %g)", (int)i, (int)b->token,
            (double)b->bias);
    }
    return QR_OK;
}

static qr_status add(qr_sampler *s, qr_stage *st) {
    if (!st) return QR_ERR_NOMEM; /* the constructor has set the message */
    s->stages[s->n_stages++] = st;
    return QR_OK;
}

static bool dry_on(const qr_sampler_params *p) {
    return p->dry_multiplier != 0.0f && p->dry_base >= 1.0f && p->dry_penalty_last_n != 0;
}

static qr_status add_dry(qr_sampler *s, const qr_dry_vocab *vocab) {
    const qr_sampler_params *p = &s->params;
    qr_dry_breaker *br = NULL;
    int32_t n_br = 0;
    if (p->n_dry_sequence_breakers > 0) {
        qr_status st = qr_dry_breakers_build(vocab, p->dry_sequence_breakers,
                                             p->n_dry_sequence_breakers, &br, &n_br);
        if (st != QR_OK) return st;
    }
    qr_status st = add(s, qr_stage_dry(s->n_vocab, p->dry_multiplier, p->dry_base,
                                       p->dry_allowed_length, p->dry_penalty_last_n, br, n_br));
    free(br);
    return st;
}

static bool grammar_on(const qr_sampler_params *p) {
    return p->grammar && p->grammar[0];
}

static qr_status build_chain(qr_sampler *s, const qr_dry_vocab *vocab) {
    const qr_sampler_params *p = &s->params;
    if (p->n_logit_bias > 0 && add(s, qr_stage_logit_bias(p->logit_bias, p->n_logit_bias)))
        return QR_ERR_NOMEM;
    s->n_before_logprobs = s->n_stages;
    if (grammar_on(p)) { /* masking commutes with the bias: as if it ran first, llama.cpp's way */
        qr_stage *g = qr_stage_grammar(p, vocab);
        if (!g)
            return qr_last_error()[0] && !strstr(qr_last_error(), "out of memory")
                       ? QR_ERR_INVALID_ARG
                       : QR_ERR_NOMEM;
        s->grammar = g;
        s->stages[s->n_stages++] = g;
    }
    bool penalties =
        p->repeat_last_n != 0 &&
        (p->repeat_penalty != 1.0f || p->frequency_penalty != 0.0f || p->presence_penalty != 0.0f);
    if (penalties && add(s, qr_stage_penalties(s->n_vocab, p->repeat_last_n, p->repeat_penalty,
                                               p->frequency_penalty, p->presence_penalty)))
        return QR_ERR_NOMEM;
    if (p->mirostat != 0) { /* m = 100 for v1, as llama.cpp's common_sampler; no DRY */
        if (add(s, qr_stage_temperature(p->temp, 0.0f, 1.0f))) return QR_ERR_NOMEM;
        return add(s, p->mirostat == 1
                          ? qr_stage_mirostat_v1(s->n_vocab, p->mirostat_tau, p->mirostat_eta, 100)
                          : qr_stage_mirostat_v2(p->mirostat_tau, p->mirostat_eta));
    }
    if (dry_on(p)) {
        qr_status st = add_dry(s, vocab);
        if (st != QR_OK) return st;
    }
    bool greedy = p->temp <= 0.0f;
    bool xtc = p->xtc_probability > 0.0f && p->xtc_threshold <= 0.5f;
    if (!greedy || p->typical_p < 1.0f || xtc) { /* greedy: see the file comment */
        if (p->top_k > 0 && add(s, qr_stage_top_k(p->top_k))) return QR_ERR_NOMEM;
        if (p->typical_p < 1.0f && add(s, qr_stage_typical(p->typical_p))) return QR_ERR_NOMEM;
        if (p->top_p < 1.0f && add(s, qr_stage_top_p(p->top_p))) return QR_ERR_NOMEM;
        if (p->min_p > 0.0f && add(s, qr_stage_min_p(p->min_p))) return QR_ERR_NOMEM;
        /* min_keep 1: llama.cpp's default min_keep is 0, the same cut */
        if (xtc && add(s, qr_stage_xtc(p->xtc_probability, p->xtc_threshold, 1)))
            return QR_ERR_NOMEM;
    }
    if (add(s, qr_stage_temperature(p->temp, p->dynatemp_range, p->dynatemp_exp)))
        return QR_ERR_NOMEM;
    s->ends_in_dist = true;
    return add(s, qr_stage_dist());
}

void qr_stage_free(qr_stage *s) {
    if (!s) return;
    if (s->free_fn)
        s->free_fn(s);
    else
        free(s);
}

qr_status qr_sampler_create(const qr_sampler_params *params, int32_t n_vocab, qr_sampler **out) {
    return qr_sampler_create_vocab(params, NULL, n_vocab, out);
}

qr_status qr_sampler_create_vocab(const qr_sampler_params *params, const qr_dry_vocab *vocab,
                                  int32_t n_vocab, qr_sampler **out) {
    if (!out) return qr_error(QR_ERR_INVALID_ARG, "qr_sampler_create: out is NULL");
    *out = NULL;
    if (!params) return qr_error(QR_ERR_INVALID_ARG, "qr_sampler_create: params is NULL");
    qr_status st = validate(params, n_vocab);
    if (st != QR_OK) return st;
    if (dry_on(params) && params->n_dry_sequence_breakers > 0 && !vocab)
        return qr_error(QR_ERR_INVALID_ARG,
                        "sampler: DRY's sequence breakers are matched against the token texts: "
                        "create the sampler with qr_sampler_create_for_model (or pass no "
                        "breakers)");
    if (grammar_on(params) &&
        (!vocab || !vocab->is_eog || !vocab->piece || vocab->n_vocab != n_vocab))
        return qr_error(QR_ERR_INVALID_ARG,
                        "sampler: a grammar needs the token texts: create the sampler with "
                        "qr_sampler_create_for_model");
    qr_sampler *s = qr_calloc(1, sizeof *s);
    if (!s) return QR_ERR_NOMEM;
    s->params = *params;
    if (s->params.quality) apply_quality_preset(&s->params);
    s->n_vocab = n_vocab;
    s->seed = params->seed == QR_SEED_RANDOM ? qr_rng_random_seed() : params->seed;
    qr_rng_seed(&s->rng, s->seed);
    s->work = qr_malloc((size_t)n_vocab * sizeof *s->work);
    s->lp_work = s->work ? qr_malloc((size_t)n_vocab * sizeof *s->lp_work) : NULL;
    s->cand = s->lp_work ? qr_malloc((size_t)n_vocab * sizeof *s->cand) : NULL;
    st = s->cand ? build_chain(s, vocab) : QR_ERR_NOMEM;
    if (st != QR_OK) {
        qr_sampler_free(s);
        return st;
    }
    *out = s;
    return QR_OK;
}

void qr_sampler_free(qr_sampler *s) {
    if (!s) return;
    for (int i = 0; i < s->n_stages; i++)
        qr_stage_free(s->stages[i]);
    free(s->work);
    free(s->lp_work);
    free(s->cand);
    free(s);
}

uint64_t qr_sampler_seed(const qr_sampler *s) {
    return s ? s->seed : 0;
}

/* Copy the logits into dst; false if any is NaN or infinite (all exponent bits set). */
static bool copy_finite(float *dst, const float *src, int32_t n) {
    int32_t i = 0;
    uint32_t bad = 0;
#ifdef __SSE2__
    const __m128i expo = _mm_set1_epi32(0x7f800000);
    __m128i acc = _mm_setzero_si128();
    for (; i + 4 <= n; i += 4) {
        __m128i v = _mm_loadu_si128((const __m128i *)(src + i));
        _mm_storeu_si128((__m128i *)(dst + i), v);
        acc = _mm_or_si128(acc, _mm_cmpeq_epi32(_mm_and_si128(v, expo), expo));
    }
    bad = (uint32_t)_mm_movemask_epi8(acc);
#endif
    for (; i < n; i++) {
        uint32_t u;
        memcpy(&u, &src[i], 4);
        dst[i] = src[i];
        bad |= (u & 0x7f800000u) == 0x7f800000u;
    }
    return bad == 0;
}

static qr_status bad_logit(const float *logits, int32_t n) {
    for (int32_t i = 0; i < n; i++)
        if (!isfinite(logits[i]))
            return qr_error(QR_ERR_NUMERIC,
                            "sampling: the model's logit for token %d is %s (the forward pass "
                            "produced a non-finite value)",
                            (int)i,
                            isnan(logits[i]) ? "NaN"
                            : logits[i] > 0  ? "+inf"
                                             : "-inf");
    return qr_error(QR_ERR_NUMERIC, "sampling: non-finite logit");
}

/* Log-probabilities of the top n_probs tokens from the whole-vocabulary softmax of s->work;
 * returns the log-sum-exp and keeps a copy of s->work for the chosen token's. */
static float top_logprobs(qr_sampler *s, qr_token_logprobs *lp) {
    const float *x = s->work; /* finite, or -inf where a bias banned the token */
    float max_l = -INFINITY;
    int32_t i = 0;
#ifdef __SSE2__
    __m128 m4 = _mm_set1_ps(-INFINITY);
    for (; i + 4 <= s->n_vocab; i += 4)
        m4 = _mm_max_ps(m4, _mm_loadu_ps(x + i));
    float m[4];
    _mm_storeu_ps(m, m4);
    for (int j = 0; j < 4; j++)
        if (m[j] > max_l) max_l = m[j];
#endif
    for (; i < s->n_vocab; i++)
        if (x[i] > max_l) max_l = x[i];
    const double sum = max_l != -INFINITY ? qr_sum_exp(x, s->n_vocab, max_l) : 0.0;
    /* log-sum-exp; logprob(i) = x[i] - lse, -inf for banned tokens */
    float lse = max_l + (float)log(sum);
    qr_candidate top[QR_MAX_TOP_LOGPROBS];
    int32_t n = qr_select_top(x, s->n_vocab, s->params.n_probs, top);
    lp->n_top = 0;
    for (int32_t i = 0; i < n && top[i].logit != -INFINITY; i++) {
        lp->top_ids[i] = top[i].id;
        lp->top_logprobs[i] = top[i].logit - lse;
        lp->n_top = i + 1;
    }
    memcpy(s->lp_work, x, (size_t)s->n_vocab * sizeof *x);
    return lse;
}

/* Run the chain's first n_run stages on logits into *st (the log-probabilities' softmax on
 * the way when logprobs is set; *lse its log-sum-exp). */
static qr_status run_chain(qr_sampler *s, const float *logits, int n_run,
                           qr_token_logprobs *logprobs, qr_sample_state *st, float *lse) {
    if (!copy_finite(s->work, logits, s->n_vocab)) return bad_logit(logits, s->n_vocab);
    *st = (qr_sample_state){.logits = s->work,
                            .n_vocab = s->n_vocab,
                            .gathered = false,
                            .data = s->cand,
                            .size = 0,
                            .sorted = false,
                            .selected = -1,
                            .rng = &s->rng};
    *lse = 0.0f;
    for (int i = 0; i < n_run; i++) {
        if (i == s->n_before_logprobs && logprobs) *lse = top_logprobs(s, logprobs);
        qr_status rc = s->stages[i]->vt->apply(s->stages[i], st);
        if (rc != QR_OK) return rc;
    }
    return QR_OK;
}

/* Record the picked token: history, grammar, its log-probability. */
static void picked(qr_sampler *s, qr_token tok, qr_token_logprobs *logprobs, float lse) {
    if (logprobs) logprobs->logprob = s->lp_work[tok] - lse;
    qr_sampler_accept(s, tok);
    if (s->grammar) qr_stage_grammar_advance(s->grammar, tok);
}

qr_status qr_sampler_sample(qr_sampler *s, const float *logits, qr_token *out,
                            qr_token_logprobs *logprobs) {
    if (!s || !logits || !out)
        return qr_error(QR_ERR_INVALID_ARG, "qr_sampler_sample: %s is NULL",
                        !s        ? "sampler"
                        : !logits ? "logits"
                                  : "out");
    qr_sample_state st;
    float lse;
    qr_status rc = run_chain(s, logits, s->n_stages, logprobs, &st, &lse);
    if (rc != QR_OK) return rc;
    if (st.selected < 0 || (size_t)st.selected >= st.size) { /* the chain ends in a draw */
        rc = qr_cand_check_nonempty(&st); /* the grammar's message, if it was that */
        return rc != QR_OK ? rc : qr_error(QR_ERR_NUMERIC, "sampling: no token was selected");
    }
    qr_token tok = st.data[st.selected].id;
    picked(s, tok, logprobs, lse);
    *out = tok;
    return QR_OK;
}

qr_status qr_sampler_sample_draft(qr_sampler *s, const float *logits, qr_token draft,
                                  const float *q, qr_token *out, qr_token_logprobs *logprobs) {
    if (!s || !logits || !out)
        return qr_error(QR_ERR_INVALID_ARG, "qr_sampler_sample_draft: %s is NULL",
                        !s        ? "sampler"
                        : !logits ? "logits"
                                  : "out");
    if (draft < 0 || draft >= s->n_vocab)
        return qr_error(QR_ERR_INVALID_ARG,
                        "qr_sampler_sample_draft: drafted token %d is outside the vocabulary "
                        "[0, %d)",
                        (int)draft, (int)s->n_vocab);
    /* mirostat's draw also moves its state: sample as usual, which follows p too */
    if (!s->ends_in_dist) return qr_sampler_sample(s, logits, out, logprobs);
    qr_sample_state st;
    float lse;
    qr_status rc = run_chain(s, logits, s->n_stages - 1, logprobs, &st, &lse);
    if (rc != QR_OK) return rc;
    if (s->n_before_logprobs >= s->n_stages - 1 && logprobs) lse = top_logprobs(s, logprobs);
    qr_cand_gather_all(&st);
    if ((rc = qr_cand_check_nonempty(&st)) != QR_OK) return rc;
    qr_cand_softmax(&st); /* the final distribution, as the dist stage draws from */
    bool accepted;
    qr_token tok = qr_spec_verify(st.data, st.size, draft, q, &s->rng, &accepted);
    picked(s, tok, logprobs, lse);
    *out = tok;
    return QR_OK;
}

void qr_sampler_accept(qr_sampler *s, qr_token token) {
    if (!s) return;
    for (int i = 0; i < s->n_stages; i++)
        if (s->stages[i]->vt->accept) s->stages[i]->vt->accept(s->stages[i], token);
}

void qr_sampler_reset(qr_sampler *s) {
    if (!s) return;
    for (int i = 0; i < s->n_stages; i++)
        if (s->stages[i]->vt->reset) s->stages[i]->vt->reset(s->stages[i]);
    qr_rng_seed(&s->rng, s->seed);
}

void qr_sampler_restart_grammar(qr_sampler *s) {
    if (s && s->grammar) s->grammar->vt->reset(s->grammar);
}
