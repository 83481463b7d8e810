/* test_sampler.c - the public sampler API: the empirical distribution of many draws against
 * the one worked out here from each sampler's formula (chi-square, fixed seeds), greedy and
 * "off" settings, penalties and logit bias by hand-worked greedy flips, log-probabilities,
 * the quality preset, seeds, and every bad-input error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "quarrel.h"
#include "sample_test_util.h"

#define N_DRAWS 20000

static qr_sampler_params plain(float temp) {
    qr_sampler_params p = qr_sampler_default_params();
    p.seed = 1234;
    p.temp = temp;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    return p;
}

static qr_sampler *make(const qr_sampler_params *p, int n_vocab) {
    qr_sampler *s = NULL;
    qr_status st = qr_sampler_create(p, n_vocab, &s);
    if (st != QR_OK) fprintf(stderr, "create: %s\n", qr_last_error());
    assert_int_equal(st, QR_OK);
    assert_non_null(s);
    return s;
}

/* Draw N_DRAWS tokens and check them against probs by chi-square. */
static void check_distribution(const qr_sampler_params *p, const float *logits, int n,
                               const double *probs) {
    qr_sampler *s = make(p, n);
    long counts[64] = {0};
    assert_true(n <= 64);
    for (int i = 0; i < N_DRAWS; i++) {
        qr_token t = -1;
        assert_int_equal(qr_sampler_sample(s, logits, &t, NULL), QR_OK);
        assert_true(t >= 0 && t < n);
        counts[t]++;
    }
    qr_sampler_free(s);
    int df = 0;
    double stat = chi2_stat(counts, probs, n, N_DRAWS, &df);
    if (stat > chi2_critical(df)) {
        for (int i = 0; i < n; i++)
            fprintf(stderr, "  token %d: got %ld, expected %.1f\n", i, counts[i],
                    probs[i] * N_DRAWS);
    }
    assert_true(stat <= chi2_critical(df));
}

static const float five[5] = {1.0f, 2.0f, 0.5f, -1.0f, 3.0f};

static void test_defaults(void **state) {
    (void)state;
    qr_sampler_params p = qr_sampler_default_params();
    assert_true(p.seed == QR_SEED_RANDOM);
    assert_true(p.temp == 0.8f && p.top_k == 40 && p.top_p == 0.95f && p.min_p == 0.05f);
    assert_true(p.typical_p == 1.0f && p.repeat_penalty == 1.0f && p.repeat_last_n == 64);
    assert_true(p.presence_penalty == 0.0f && p.frequency_penalty == 0.0f);
    assert_true(p.dynatemp_range == 0.0f && p.dynatemp_exp == 1.0f);
    assert_true(p.mirostat == 0 && p.mirostat_tau == 5.0f && p.mirostat_eta == 0.1f);
    assert_false(p.quality);
    assert_int_equal(p.n_logit_bias, 0);
    assert_int_equal(p.n_probs, 0);
}

/* temperature alone: softmax(l / T) */
static void test_dist_temperature(void **state) {
    (void)state;
    const double x[5] = {1.0, 2.0, 0.5, -1.0, 3.0};
    double probs[5];
    qr_sampler_params p = plain(0.8f);
    softmax_t(x, 5, 0.8, probs);
    check_distribution(&p, five, 5, probs);
    p = plain(1.7f);
    softmax_t(x, 5, 1.7, probs);
    check_distribution(&p, five, 5, probs);
}

/* The check has power: the T = 1.7 draws must fail against the T = 0.8 distribution. */
static void test_chi2_rejects_wrong_distribution(void **state) {
    (void)state;
    const double x[5] = {1.0, 2.0, 0.5, -1.0, 3.0};
    double wrong[5];
    softmax_t(x, 5, 0.8, wrong);
    qr_sampler_params p = plain(1.7f);
    qr_sampler *s = make(&p, 5);
    long counts[5] = {0};
    for (int i = 0; i < N_DRAWS; i++) {
        qr_token t;
        assert_int_equal(qr_sampler_sample(s, five, &t, NULL), QR_OK);
        counts[t]++;
    }
    qr_sampler_free(s);
    int df;
    assert_true(chi2_stat(counts, wrong, 5, N_DRAWS, &df) > 10 * chi2_critical(df));
}

/* top-k 2 keeps tokens 4 (3.0) and 1 (2.0); k = 0 is off (all five) */
static void test_dist_top_k(void **state) {
    (void)state;
    qr_sampler_params p = plain(1.0f);
    p.top_k = 2;
    double e = exp(1.0);
    double probs[5] = {0, 1 / (1 + e), 0, 0, e / (1 + e)};
    check_distribution(&p, five, 5, probs);
    p.top_k = 0;
    const double x[5] = {1.0, 2.0, 0.5, -1.0, 3.0};
    softmax_t(x, 5, 1.0, probs);
    check_distribution(&p, five, 5, probs);
    p.top_k = 99; /* more than the vocabulary: no cut */
    check_distribution(&p, five, 5, probs);
}

/* probabilities 0.5, 0.25, 0.15, 0.1 (logits are their logs) */
static const float four[4] = {-0.69314718f, -1.38629436f, -1.89711998f, -2.30258509f};

static void test_dist_top_p(void **state) {
    (void)state;
    qr_sampler_params p = plain(1.0f);
    p.top_p = 0.7f; /* 0.5 < 0.7 <= 0.75: the first two */
    double a[4] = {2.0 / 3, 1.0 / 3, 0, 0};
    check_distribution(&p, four, 4, a);
    p.top_p = 0.4f; /* the first alone already reaches it */
    double b[4] = {1, 0, 0, 0};
    check_distribution(&p, four, 4, b);
    p.top_p = 1.0f; /* off */
    double c[4] = {0.5, 0.25, 0.15, 0.1};
    check_distribution(&p, four, 4, c);
}

static void test_dist_min_p(void **state) {
    (void)state;
    qr_sampler_params p = plain(1.0f);
    p.min_p = 0.25f; /* keep p >= 0.125: 0.5, 0.25, 0.15 */
    double a[4] = {0.5 / 0.9, 0.25 / 0.9, 0.15 / 0.9, 0};
    check_distribution(&p, four, 4, a);
    p.min_p = 1.0f; /* only the top one */
    double b[4] = {1, 0, 0, 0};
    check_distribution(&p, four, 4, b);
}

/* typical: H = -sum p ln p; order by |-ln p - H|; keep until the sum exceeds typical_p */
static void test_dist_typical(void **state) {
    (void)state;
    const double q[4] = {0.5, 0.25, 0.15, 0.1};
    double h = 0;
    for (int i = 0; i < 4; i++)
        h -= q[i] * log(q[i]);
    /* H = 1.2080; scores: 0.515, 0.178, 0.689, 1.095 -> order 1, 0, 2, 3 */
    int order[4] = {0, 1, 2, 3};
    for (int i = 0; i < 4; i++)
        for (int j = i + 1; j < 4; j++)
            if (fabs(-log(q[order[j]]) - h) < fabs(-log(q[order[i]]) - h)) {
                int t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
    assert_int_equal(order[0], 1);
    assert_int_equal(order[1], 0);
    qr_sampler_params p = plain(1.0f);
    p.typical_p = 0.5f; /* 0.25 then 0.75 > 0.5: tokens 1 and 0 */
    double a[4] = {0.5 / 0.75, 0.25 / 0.75, 0, 0};
    check_distribution(&p, four, 4, a);
    p.typical_p = 0.2f; /* token 1 alone: 0.25 > 0.2 */
    double b[4] = {0, 1, 0, 0};
    check_distribution(&p, four, 4, b);
}

/* dynatemp: T = max(0, t - r) + 2r' * (H / ln n)^e over the candidates, then softmax(l / T) */
static void test_dist_dynatemp(void **state) {
    (void)state;
    const double x[5] = {1.0, 2.0, 0.5, -1.0, 3.0};
    const double t = 0.9, r = 0.5, ex = 1.5;
    double q[5], h = 0;
    softmax_t(x, 5, 1.0, q);
    for (int i = 0; i < 5; i++)
        h -= q[i] * log(q[i]);
    double lo = t - r, hi = t + r;
    double temp = lo + (hi - lo) * pow(h / log(5.0), ex);
    assert_true(temp > lo && temp < hi);
    double probs[5];
    softmax_t(x, 5, temp, probs);
    qr_sampler_params p = plain((float)t);
    p.dynatemp_range = (float)r;
    p.dynatemp_exp = (float)ex;
    check_distribution(&p, five, 5, probs);
}

/* The default chain on a small vocabulary: top-k 40 (no cut), top-p 0.95 and min-p 0.05 on
 * the raw softmax, then temperature 0.8 over the survivors. */
static void test_dist_default_chain(void **state) {
    (void)state;
    /* probabilities 0.79, 0.10, 0.035, 0.03, 0.025, 0.02: top-p stops after the fourth
     * (0.955 >= 0.95), min-p drops those below 0.05 * 0.79 = 0.0395 */
    const double q0[6] = {0.79, 0.10, 0.035, 0.03, 0.025, 0.02};
    float l[6];
    double x[6], q[6], keep[6];
    for (int i = 0; i < 6; i++)
        x[i] = l[i] = (float)log(q0[i]);
    softmax_t(x, 6, 1.0, q); /* already in descending order */
    double cum = 0;
    int n_keep = 6;
    for (int i = 0; i < 6; i++) {
        cum += q[i];
        if (cum >= 0.95) {
            n_keep = i + 1;
            break;
        }
    }
    assert_int_equal(n_keep, 4);
    for (int i = 0; i < 6; i++)
        keep[i] = (i < n_keep && q[i] >= 0.05 * q[0]) ? x[i] : -INFINITY;
    double probs[6];
    softmax_t(keep, 6, 0.8, probs);
    assert_true(probs[1] > 0 && probs[2] == 0); /* min-p cut inside what top-p kept */
    qr_sampler_params p = qr_sampler_default_params();
    p.seed = 99;
    check_distribution(&p, l, 6, probs);
    /* with top-k 1 only the best survives */
    p.top_k = 1;
    double one[6] = {1, 0, 0, 0, 0, 0};
    check_distribution(&p, l, 6, one);
}

static void test_greedy(void **state) {
    (void)state;
    const float temps[3] = {0.0f, -1.0f, -0.0f};
    for (int k = 0; k < 3; k++) {
        qr_sampler_params p = qr_sampler_default_params();
        p.temp = temps[k];
        qr_sampler *s = make(&p, 5);
        for (int i = 0; i < 50; i++) {
            qr_token t;
            assert_int_equal(qr_sampler_sample(s, five, &t, NULL), QR_OK);
            assert_int_equal(t, 4);
        }
        qr_sampler_free(s);
    }
    /* greedy with typical sampling on runs the full chain: typical at 0.2 keeps only the
     * most "typical" token 1 of `four`, which is then the greedy pick */
    qr_sampler_params p = plain(0.0f);
    p.typical_p = 0.2f;
    qr_sampler *s = make(&p, 4);
    qr_token t;
    assert_int_equal(qr_sampler_sample(s, four, &t, NULL), QR_OK);
    assert_int_equal(t, 1);
    qr_sampler_free(s);
}

/* Hand-worked penalty flips under greedy decoding. */
static qr_token greedy_after(const qr_sampler_params *p, const float *l, int n,
                             const qr_token *hist, int n_hist) {
    qr_sampler *s = make(p, n);
    for (int i = 0; i < n_hist; i++)
        qr_sampler_accept(s, hist[i]);
    qr_token t = -1;
    assert_int_equal(qr_sampler_sample(s, l, &t, NULL), QR_OK);
    qr_sampler_free(s);
    return t;
}

static void test_penalties_greedy(void **state) {
    (void)state;
    const float l[3] = {2.0f, 1.9f, 0.0f};
    const qr_token once[1] = {0}, twice[2] = {0, 0};
    qr_sampler_params p = plain(0.0f);
    assert_int_equal(greedy_after(&p, l, 3, once, 1), 0); /* no penalty */
    p.repeat_penalty = 1.1f;                              /* 2.0 / 1.1 = 1.818 < 1.9 */
    assert_int_equal(greedy_after(&p, l, 3, once, 1), 1);
    p.repeat_penalty = 1.04f; /* 2.0 / 1.04 = 1.923 > 1.9 */
    assert_int_equal(greedy_after(&p, l, 3, once, 1), 0);
    p = plain(0.0f);
    p.frequency_penalty = 0.06f; /* once: 1.94 > 1.9; twice: 1.88 < 1.9 */
    assert_int_equal(greedy_after(&p, l, 3, once, 1), 0);
    assert_int_equal(greedy_after(&p, l, 3, twice, 2), 1);
    p = plain(0.0f);
    p.presence_penalty = 0.06f; /* presence does not grow with the count: 1.94 */
    assert_int_equal(greedy_after(&p, l, 3, twice, 2), 0);
    p.presence_penalty = 0.2f; /* 1.8 */
    assert_int_equal(greedy_after(&p, l, 3, once, 1), 1);
    /* negative logits are multiplied: -1.0 * 1.1 = -1.1 < -1.05 */
    const float neg[2] = {-1.0f, -1.05f};
    p = plain(0.0f);
    p.repeat_penalty = 1.1f;
    assert_int_equal(greedy_after(&p, neg, 2, once, 1), 1);
    /* the window: with last_n = 2, token 0 three tokens back no longer counts */
    const qr_token old[3] = {0, 2, 2};
    p.repeat_last_n = 2;
    assert_int_equal(greedy_after(&p, l, 3, old, 3), 0);
    p.repeat_last_n = 3;
    assert_int_equal(greedy_after(&p, l, 3, old, 3), 1);
    p.repeat_last_n = -1; /* all history */
    assert_int_equal(greedy_after(&p, l, 3, old, 3), 1);
    p.repeat_last_n = 0; /* off */
    assert_int_equal(greedy_after(&p, l, 3, once, 1), 0);
}

/* sample() records its own picks: greedy with a strong repeat penalty alternates */
static void test_penalties_own_picks(void **state) {
    (void)state;
    const float l[2] = {2.0f, 1.9f};
    qr_sampler_params p = plain(0.0f);
    p.repeat_penalty = 1.5f;
    p.repeat_last_n = 1;
    qr_sampler *s = make(&p, 2);
    qr_token t;
    for (int i = 0; i < 6; i++) {
        assert_int_equal(qr_sampler_sample(s, l, &t, NULL), QR_OK);
        assert_int_equal(t, i % 2); /* 0, then 0 is penalised (1.33) -> 1, then 1 is ... */
    }
    qr_sampler_reset(s); /* history cleared: 0 again */
    assert_int_equal(qr_sampler_sample(s, l, &t, NULL), QR_OK);
    assert_int_equal(t, 0);
    qr_sampler_free(s);
}

static void test_logit_bias(void **state) {
    (void)state;
    qr_logit_bias b[3] = {{2, 1.5f}, {2, 1.5f}, {4, -INFINITY}}; /* entries add up */
    qr_sampler_params p = plain(0.0f);
    p.logit_bias = b;
    p.n_logit_bias = 3;
    qr_sampler *s = make(&p, 5);
    qr_token t;
    assert_int_equal(qr_sampler_sample(s, five, &t, NULL), QR_OK);
    assert_int_equal(t, 2); /* 0.5 + 3.0 = 3.5 beats 2.0; token 4 is banned */
    qr_sampler_free(s);
    /* with sampling: token 4 banned, the rest softmax(l) */
    p = plain(1.0f);
    p.logit_bias = &b[2];
    p.n_logit_bias = 1;
    const double x[5] = {1.0, 2.0, 0.5, -1.0, -INFINITY};
    double probs[5];
    softmax_t(x, 5, 1.0, probs);
    check_distribution(&p, five, 5, probs);
    p.top_k = 4; /* the ban also holds through the top-k gather */
    check_distribution(&p, five, 5, probs);
}

static void test_all_filtered(void **state) {
    (void)state;
    qr_logit_bias b[5];
    for (int i = 0; i < 5; i++)
        b[i] = (qr_logit_bias){i, -INFINITY};
    for (int variant = 0; variant < 5; variant++) {
        qr_sampler_params p = qr_sampler_default_params();
        p.seed = 1;
        if (variant == 1) p.top_k = 0;
        if (variant == 2) p.temp = 0.0f;
        if (variant == 3) p.mirostat = 2;
        if (variant == 4) p.mirostat = 1;
        p.logit_bias = b;
        p.n_logit_bias = 5;
        qr_sampler *s = make(&p, 5);
        qr_token t = 77;
        assert_int_equal(qr_sampler_sample(s, five, &t, NULL), QR_ERR_NUMERIC);
        assert_non_null(strstr(qr_last_error(), "no candidate token left"));
        assert_non_null(strstr(qr_last_error(), "banned"));
        assert_int_equal(t, 77); /* untouched */
        qr_sampler_free(s);
    }
}

static void test_bad_logits(void **state) {
    (void)state;
    qr_sampler_params p = qr_sampler_default_params();
    p.seed = 1;
    qr_sampler *s = make(&p, 37);
    float l[37];
    const float bad[3] = {NAN, INFINITY, -INFINITY};
    const char *names[3] = {"NaN", "+inf", "-inf"};
    for (int k = 0; k < 3; k++) {
        for (int pos = 0; pos < 37; pos += 11) { /* the SIMD body and the scalar tail */
            for (int i = 0; i < 37; i++)
                l[i] = (float)i * 0.1f;
            l[pos] = bad[k];
            qr_token t;
            assert_int_equal(qr_sampler_sample(s, l, &t, NULL), QR_ERR_NUMERIC);
            char want[64];
            snprintf(want, sizeof want, "logit for token %d is %s", pos, names[k]);
            assert_non_null(strstr(qr_last_error(), want));
        }
    }
    for (int i = 0; i < 37; i++)
        l[i] = 3e38f;
    qr_logit_bias b = {5, 3e38f}; /* overflows to +inf */
    qr_sampler_free(s);
    p.logit_bias = &b;
    p.n_logit_bias = 1;
    s = make(&p, 37);
    qr_token t;
    assert_int_equal(qr_sampler_sample(s, l, &t, NULL), QR_ERR_NUMERIC);
    assert_non_null(strstr(qr_last_error(), "token 5 is +inf after logit bias"));
    qr_sampler_free(s);
}

static void test_null_args(void **state) {
    (void)state;
    qr_sampler_params p = qr_sampler_default_params();
    qr_sampler *s = NULL;
    assert_int_equal(qr_sampler_create(NULL, 5, &s), QR_ERR_INVALID_ARG);
    assert_non_null(strstr(qr_last_error(), "params is NULL"));
    assert_int_equal(qr_sampler_create(&p, 5, NULL), QR_ERR_INVALID_ARG);
    assert_non_null(strstr(qr_last_error(), "out is NULL"));
    s = make(&p, 5);
    qr_token t;
    assert_int_equal(qr_sampler_sample(s, NULL, &t, NULL), QR_ERR_INVALID_ARG);
    assert_non_null(strstr(qr_last_error(), "logits is NULL"));
    assert_int_equal(qr_sampler_sample(s, five, NULL, NULL), QR_ERR_INVALID_ARG);
    assert_non_null(strstr(qr_last_error(), "out is NULL"));
    qr_sampler_accept(s, -3); /* out-of-vocabulary history is ignored, not a crash */
    qr_sampler_accept(s, 5);
    qr_sampler_free(s);
    qr_sampler_free(NULL);
}

static void test_invalid_params(void **state) {
    (void)state;
    qr_logit_bias bad_tok = {5, 1.0f}, bad_nan = {1, NAN}, bad_inf = {1, INFINITY};
    struct {
        const char *field, *msg;
        int n_vocab;
    } cases[] = {
        {"n_vocab", "n_vocab must be positive", 0},
        {"temp", "temp must be finite", 5},
        {"top_p0", "top_p must be in (0, 1]", 5},
        {"top_p2", "top_p must be in (0, 1]", 5},
        {"min_p", "min_p must be in [0, 1]", 5},
        {"min_p2", "min_p must be in [0, 1]", 5},
        {"typical_p", "typical_p must be in (0, 1]", 5},
        {"repeat_penalty", "repeat_penalty must be positive", 5},
        {"repeat_last_n", "repeat_last_n must be -1", 5},
        {"presence", "presence_penalty must be finite", 5},
        {"frequency", "frequency_penalty must be finite", 5},
        {"dynatemp_range", "dynatemp_range must be finite and >= 0", 5},
        {"dynatemp_exp", "dynatemp_exp must be finite and >= 0", 5},
        {"mirostat", "mirostat must be 0 (off), 1 (mirostat) or 2 (mirostat v2) (got 3)", 5},
        {"tau", "mirostat_tau must be finite", 5},
        {"eta", "mirostat_eta must be finite", 5},
        {"quality", "quality preset cannot be combined with mirostat", 5},
        {"n_probs", "n_probs must be in [0, 20]", 5},
        {"n_probs2", "n_probs must be in [0, 20]", 5},
        {"n_logit_bias", "n_logit_bias must be >= 0", 5},
        {"bias_null", "logit_bias is NULL but n_logit_bias is 2", 5},
        {"bias_tok", "logit_bias[0]: token 5 is outside the vocabulary [0, 5)", 5},
        {"bias_nan", "logit_bias[0] for token 1 must be finite or -inf", 5},
        {"bias_inf", "logit_bias[0] for token 1 must be finite or -inf", 5},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        qr_sampler_params p = qr_sampler_default_params();
        const char *f = cases[i].field;
        if (!strcmp(f, "temp")) p.temp = NAN;
        if (!strcmp(f, "top_p0")) p.top_p = 0.0f;
        if (!strcmp(f, "top_p2")) p.top_p = 1.5f;
        if (!strcmp(f, "min_p")) p.min_p = -0.1f;
        if (!strcmp(f, "min_p2")) p.min_p = NAN;
        if (!strcmp(f, "typical_p")) p.typical_p = 0.0f;
        if (!strcmp(f, "repeat_penalty")) p.repeat_penalty = 0.0f;
        if (!strcmp(f, "repeat_last_n")) p.repeat_last_n = -2;
        if (!strcmp(f, "presence")) p.presence_penalty = INFINITY;
        if (!strcmp(f, "frequency")) p.frequency_penalty = NAN;
        if (!strcmp(f, "dynatemp_range")) p.dynatemp_range = -0.5f;
        if (!strcmp(f, "dynatemp_exp")) p.dynatemp_exp = INFINITY;
        if (!strcmp(f, "mirostat")) p.mirostat = 3;
        if (!strcmp(f, "tau")) p.mirostat_tau = -1.0f;
        if (!strcmp(f, "eta")) p.mirostat_eta = NAN;
        if (!strcmp(f, "quality")) p.quality = true, p.mirostat = 2;
        if (!strcmp(f, "n_probs")) p.n_probs = -1;
        if (!strcmp(f, "n_probs2")) p.n_probs = 21;
        if (!strcmp(f, "n_logit_bias")) p.n_logit_bias = -1;
        if (!strcmp(f, "bias_null")) p.n_logit_bias = 2;
        if (!strcmp(f, "bias_tok")) p.logit_bias = &bad_tok, p.n_logit_bias = 1;
        if (!strcmp(f, "bias_nan")) p.logit_bias = &bad_nan, p.n_logit_bias = 1;
        if (!strcmp(f, "bias_inf")) p.logit_bias = &bad_inf, p.n_logit_bias = 1;
        qr_sampler *s = (qr_sampler *)&p; /* must be reset to NULL */
        qr_status st = qr_sampler_create(&p, cases[i].n_vocab, &s);
        if (st != QR_ERR_INVALID_ARG || !strstr(qr_last_error(), cases[i].msg))
            fprintf(stderr, "case %s: status %d, message '%s'\n", f, st, qr_last_error());
        assert_int_equal(st, QR_ERR_INVALID_ARG);
        assert_non_null(strstr(qr_last_error(), cases[i].msg));
        assert_null(s);
    }
    /* accepted edge values */
    qr_sampler_params p = qr_sampler_default_params();
    p.temp = -2.0f;
    p.top_p = 1.0f;
    p.min_p = 1.0f;
    p.typical_p = 1.0f;
    p.repeat_last_n = -1;
    p.n_probs = 20;
    qr_sampler *s = make(&p, 5);
    qr_sampler_free(s);
}

static void sequence(qr_sampler *s, const float *l, int n, qr_token *out, int len) {
    (void)n;
    for (int i = 0; i < len; i++)
        assert_int_equal(qr_sampler_sample(s, l, &out[i], NULL), QR_OK);
}

static void test_seeds(void **state) {
    (void)state;
    enum { V = 1000, LEN = 200 };
    float *l = malloc(V * sizeof *l);
    uint32_t x = 12345;
    for (int i = 0; i < V; i++) { /* flat-ish logits so draws vary */
        x = x * 1664525u + 1013904223u;
        l[i] = (float)(x >> 8) / (float)(1u << 24) * 2.0f;
    }
    qr_sampler_params p = qr_sampler_default_params();
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = 42;
    qr_token a[LEN], b[LEN], c[LEN];
    qr_sampler *s1 = make(&p, V), *s2 = make(&p, V);
    assert_true(qr_sampler_seed(s1) == 42);
    sequence(s1, l, V, a, LEN);
    sequence(s2, l, V, b, LEN);
    assert_memory_equal(a, b, sizeof a);
    qr_sampler_reset(s1); /* reset restarts the stream */
    sequence(s1, l, V, c, LEN);
    assert_memory_equal(a, c, sizeof a);
    qr_sampler_free(s1);
    qr_sampler_free(s2);
    p.seed = 43;
    s2 = make(&p, V);
    sequence(s2, l, V, b, LEN);
    int same = 0;
    for (int i = 0; i < LEN; i++)
        same += a[i] == b[i];
    assert_true(same < LEN / 4); /* ~1/1000 chance per position */
    qr_sampler_free(s2);
    /* a random seed is reported and reproduces its stream */
    p.seed = QR_SEED_RANDOM;
    s2 = make(&p, V);
    uint64_t seed = qr_sampler_seed(s2);
    assert_true(seed != QR_SEED_RANDOM);
    sequence(s2, l, V, b, LEN);
    qr_sampler_free(s2);
    p.seed = seed;
    s2 = make(&p, V);
    sequence(s2, l, V, c, LEN);
    assert_memory_equal(b, c, sizeof b);
    qr_sampler_free(s2);
    p.seed = QR_SEED_RANDOM;
    s2 = make(&p, V);
    assert_true(qr_sampler_seed(s2) != seed); /* 2^-64 chance of a false failure */
    qr_sampler_free(s2);
    /* mirostat is reproducible too */
    p.seed = 7;
    p.mirostat = 2;
    p.mirostat_tau = 3.0f;
    s1 = make(&p, V);
    s2 = make(&p, V);
    sequence(s1, l, V, a, LEN);
    sequence(s2, l, V, b, LEN);
    assert_memory_equal(a, b, sizeof a);
    qr_sampler_free(s1);
    qr_sampler_free(s2);
    /* and so is mirostat v1, while another seed gives another stream */
    p.mirostat = 1;
    s1 = make(&p, V);
    s2 = make(&p, V);
    sequence(s1, l, V, a, LEN);
    sequence(s2, l, V, b, LEN);
    assert_memory_equal(a, b, sizeof a);
    qr_sampler_free(s2);
    p.seed = 8;
    s2 = make(&p, V);
    sequence(s2, l, V, b, LEN);
    assert_memory_not_equal(a, b, sizeof a);
    /* reset restores mu and the seed: the same stream again */
    qr_sampler_reset(s1);
    sequence(s1, l, V, c, LEN);
    assert_memory_equal(a, c, sizeof a);
    qr_sampler_free(s1);
    qr_sampler_free(s2);
    free(l);
}

static void test_logprobs(void **state) {
    (void)state;
    qr_logit_bias b = {3, 2.0f}; /* token 3: -1.0 -> 1.0 */
    qr_sampler_params p = plain(0.0f);
    p.logit_bias = &b;
    p.n_logit_bias = 1;
    p.n_probs = 3;
    p.repeat_penalty = 3.0f; /* penalties do not change the reported log-probabilities */
    const double x[5] = {1.0, 2.0, 0.5, 1.0, 3.0};
    double mx = 3.0, sum = 0;
    for (int i = 0; i < 5; i++)
        sum += exp(x[i] - mx);
    double lse = mx + log(sum);
    qr_sampler *s = make(&p, 5);
    qr_sampler_accept(s, 4); /* 3.0 / 3 = 1.0 < 2.0: greedy now picks token 1 */
    qr_token t;
    qr_token_logprobs lp;
    memset(&lp, 0xff, sizeof lp);
    assert_int_equal(qr_sampler_sample(s, five, &t, &lp), QR_OK);
    assert_int_equal(t, 1);
    assert_float_equal(lp.logprob, 2.0 - lse, 1e-5);
    assert_int_equal(lp.n_top, 3);
    assert_int_equal(lp.top_ids[0], 4);
    assert_int_equal(lp.top_ids[1], 1);
    assert_true(lp.top_ids[2] == 0 || lp.top_ids[2] == 3); /* a tie at 1.0 */
    assert_float_equal(lp.top_logprobs[0], 3.0 - lse, 1e-5);
    assert_float_equal(lp.top_logprobs[1], 2.0 - lse, 1e-5);
    assert_float_equal(lp.top_logprobs[2], 1.0 - lse, 1e-5);
    qr_sampler_free(s);
    /* banned tokens are not listed; n_probs 0 gives none */
    qr_logit_bias ban[4] = {{0, -INFINITY}, {1, -INFINITY}, {2, -INFINITY}, {3, -INFINITY}};
    p = plain(1.0f);
    p.logit_bias = ban;
    p.n_logit_bias = 4;
    p.n_probs = 5;
    s = make(&p, 5);
    assert_int_equal(qr_sampler_sample(s, five, &t, &lp), QR_OK);
    assert_int_equal(t, 4);
    assert_int_equal(lp.n_top, 1);
    assert_float_equal(lp.logprob, 0.0, 1e-6);
    qr_sampler_free(s);
    p.n_probs = 0;
    s = make(&p, 5);
    assert_int_equal(qr_sampler_sample(s, five, &t, &lp), QR_OK);
    assert_int_equal(lp.n_top, 0);
    qr_sampler_free(s);
}

/* The quality preset, worked by hand: frequency penalty 0.1 per occurrence, top-p 0.95, min-p
 * 0.05, then dynatemp 0.7 +- 0.3 (exponent 1) over the survivors. History: token 0 five
 * times. A fresh sampler (seed i) per draw keeps the history fixed. */
static void test_quality_preset(void **state) {
    (void)state;
    const float l[6] = {2.0f, 1.8f, 1.0f, 0.0f, -2.0f, -5.0f};
    double x[6];
    for (int i = 0; i < 6; i++)
        x[i] = l[i];
    x[0] -= 5 * 0.1; /* 1.5 */
    double q[6];
    softmax_t(x, 6, 1.0, q);
    int ord[6] = {1, 0, 2, 3, 4, 5}; /* descending after the penalty */
    double keep[6], cum = 0;
    bool cut = false;
    for (int k = 0; k < 6; k++) {
        int i = ord[k];
        keep[i] = (!cut && q[i] >= 0.05 * q[1]) ? x[i] : -INFINITY;
        cum += q[i];
        if (cum >= 0.95) cut = true;
    }
    double qk[6], h = 0;
    int n = 0;
    softmax_t(keep, 6, 1.0, qk);
    for (int i = 0; i < 6; i++)
        if (qk[i] > 0) h -= qk[i] * log(qk[i]), n++;
    assert_int_equal(n, 4); /* tokens 4, 5 cut */
    double temp = 0.4 + 0.6 * (h / log((double)n));
    double probs[6];
    softmax_t(keep, 6, temp, probs);

    qr_sampler_params p = qr_sampler_default_params();
    p.quality = true;
    long counts[6] = {0};
    for (int d = 0; d < N_DRAWS; d++) {
        p.seed = 1000 + (uint64_t)d;
        qr_sampler *s = make(&p, 6);
        for (int r = 0; r < 5; r++)
            qr_sampler_accept(s, 0);
        qr_token t;
        assert_int_equal(qr_sampler_sample(s, l, &t, NULL), QR_OK);
        counts[t]++;
        qr_sampler_free(s);
    }
    int df;
    double stat = chi2_stat(counts, probs, 6, N_DRAWS, &df);
    assert_true(stat <= chi2_critical(df));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_dist_temperature),
        cmocka_unit_test(test_chi2_rejects_wrong_distribution),
        cmocka_unit_test(test_dist_top_k),
        cmocka_unit_test(test_dist_top_p),
        cmocka_unit_test(test_dist_min_p),
        cmocka_unit_test(test_dist_typical),
        cmocka_unit_test(test_dist_dynatemp),
        cmocka_unit_test(test_dist_default_chain),
        cmocka_unit_test(test_greedy),
        cmocka_unit_test(test_penalties_greedy),
        cmocka_unit_test(test_penalties_own_picks),
        cmocka_unit_test(test_logit_bias),
        cmocka_unit_test(test_all_filtered),
        cmocka_unit_test(test_bad_logits),
        cmocka_unit_test(test_null_args),
        cmocka_unit_test(test_invalid_params),
        cmocka_unit_test(test_seeds),
        cmocka_unit_test(test_logprobs),
        cmocka_unit_test(test_quality_preset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
