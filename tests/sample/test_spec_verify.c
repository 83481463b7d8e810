/* test_spec_verify.c - speculative sampling's acceptance rule (Leviathan et al. 2023, Chen et al.
 * 2023) keeps the target's distribution: hand-made distributions over 8 tokens, a draft token
 * drawn from a good draft (close to the target), a bad one (mass where the target has little)
 * and a greedy one (a point mass), many draws through qr_spec_verify and through the whole
 * sampler (qr_sampler_sample_draft), and a chi-square goodness-of-fit test against the target.
 * The same test rejects the draft's own proposals, so it has the power to see a wrong rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sample/sample_internal.h"
#include "sample_test_util.h"

#define N 8
#define DRAWS 200000

static const double TARGET[N] = {0.30, 0.20, 0.15, 0.12, 0.10, 0.07, 0.04, 0.02};
static const float GOOD[N] = {0.28f, 0.22f, 0.14f, 0.12f, 0.09f, 0.08f, 0.05f, 0.02f};
static const float BAD[N] = {0.02f, 0.03f, 0.05f, 0.05f, 0.10f, 0.15f, 0.25f, 0.35f};

/* a token drawn from q */
static int draw(const float *q, qr_rng *r) {
    double u = qr_rng_uniform(r), run = 0.0;
    for (int i = 0; i < N; i++) {
        run += q[i];
        if (u < run) return i;
    }
    return N - 1;
}

static void check_fit(const long *counts, const double *p, const char *what, bool expect_fit) {
    int df;
    double stat = chi2_stat(counts, p, N, DRAWS, &df);
    double crit = chi2_critical(df);
    if (expect_fit && !(stat < crit))
        fail_msg("%s: chi-square %.1f >= %.1f (df %d): not the target's distribution", what, stat,
                 crit, df);
    if (!expect_fit && !(stat > crit))
        fail_msg("%s: chi-square %.1f <= %.1f (df %d): the test cannot tell it apart", what, stat,
                 crit, df);
}

/* Draws through the rule with draft distribution q (NULL: greedy, always token `greedy`). */
static void run_rule(const float *q, int greedy, long *counts, long *accepted, uint64_t seed) {
    qr_candidate cand[N];
    for (int i = 0; i < N; i++)
        cand[i] = (qr_candidate){.id = i, .logit = 0.0f, .p = (float)TARGET[i]};
    qr_rng r, rd;
    qr_rng_seed(&r, seed);
    qr_rng_seed(&rd, seed + 1000);
    memset(counts, 0, N * sizeof *counts);
    *accepted = 0;
    for (long k = 0; k < DRAWS; k++) {
        const int d = q ? draw(q, &rd) : greedy;
        bool acc;
        qr_token t = qr_spec_verify(cand, N, d, q, &r, &acc);
        assert_true(t >= 0 && t < N);
        if (acc) assert_int_equal(t, d);
        *accepted += acc;
        counts[t]++;
    }
}

static void test_rule_keeps_the_target_distribution(void **state) {
    (void)state;
    long counts[N], acc;
    run_rule(GOOD, -1, counts, &acc, 11);
    check_fit(counts, TARGET, "good draft", true);
    /* acceptance is sum min(p, q): 0.95 here */
    double want = 0.0;
    for (int i = 0; i < N; i++)
        want += fmin(TARGET[i], GOOD[i]);
    assert_true(fabs((double)acc / DRAWS - want) < 0.005);

    run_rule(BAD, -1, counts, &acc, 12);
    check_fit(counts, TARGET, "bad draft", true);
    want = 0.0;
    for (int i = 0; i < N; i++)
        want += fmin(TARGET[i], BAD[i]);
    assert_true(fabs((double)acc / DRAWS - want) < 0.005);

    for (int g = 0; g < N; g += 7) { /* greedy drafts of the likeliest and the least likely */
        run_rule(NULL, g, counts, &acc, 13 + (uint64_t)g);
        check_fit(counts, TARGET, "greedy draft", true);
        assert_true(fabs((double)acc / DRAWS - TARGET[g]) < 0.005);
    }
}

static void test_the_check_has_power(void **state) {
    (void)state;
    /* the bad draft's own proposals, and "always keep the draft", are not the target's */
    long counts[N] = {0};
    qr_rng rd;
    qr_rng_seed(&rd, 21);
    for (long k = 0; k < DRAWS; k++)
        counts[draw(BAD, &rd)]++;
    check_fit(counts, TARGET, "bad draft's proposals", false);
    memset(counts, 0, sizeof counts);
    for (long k = 0; k < DRAWS; k++)
        counts[draw(GOOD, &rd)]++;
    check_fit(counts, TARGET, "good draft's proposals", false);
}

/* A draft the target gives no mass is always rejected; equal distributions always accept. */
static void test_rule_edges(void **state) {
    (void)state;
    qr_candidate cand[3] = {{.id = 0, .p = 0.5f},
                            {.id = 2, .p = 0.5f}}; /* token 1 not a candidate */
    qr_rng r;
    qr_rng_seed(&r, 3);
    for (int k = 0; k < 1000; k++) {
        bool acc;
        qr_token t = qr_spec_verify(cand, 2, 1, NULL, &r, &acc);
        assert_false(acc);
        assert_true(t == 0 || t == 2);
    }
    const float q[3] = {0.5f, 0.0f, 0.5f};
    for (int k = 0; k < 1000; k++) {
        bool acc;
        qr_token d = k % 2 ? 2 : 0;
        assert_int_equal(qr_spec_verify(cand, 2, d, q, &r, &acc), d);
        assert_true(acc);
    }
}

/* The whole sampler: temperature, top-k and min-p shape the final distribution the rule uses;
 * greedy drafts of every token, the emitted tokens follow that distribution. */
static void test_sampler_sample_draft(void **state) {
    (void)state;
    const float logits[N] = {2.0f, 1.5f, 1.2f, 0.7f, 0.3f, 0.0f, -0.5f, -3.0f};
    qr_sampler_params sp = qr_sampler_default_params();
    sp.seed = 77;
    sp.temp = 0.9f;
    sp.top_k = 6; /* tokens 6, 7 out */
    sp.top_p = 1.0f;
    sp.min_p = 0.0f;
    qr_sampler *s;
    assert_int_equal(qr_sampler_create(&sp, N, &s), QR_OK);
    double x[N], p[N];
    for (int i = 0; i < N; i++)
        x[i] = i < 6 ? logits[i] : -INFINITY;
    softmax_t(x, N, 0.9, p);
    long counts[N] = {0};
    for (long k = 0; k < DRAWS; k++) {
        qr_token t;
        qr_token d = (qr_token)(k % N); /* greedy drafts, some outside top-k */
        assert_int_equal(qr_sampler_sample_draft(s, logits, d, NULL, &t, NULL), QR_OK);
        counts[t]++;
    }
    check_fit(counts, p, "sampler with drafts", true);
    /* a bad draft id is an error, not a crash */
    qr_token t;
    assert_int_equal(qr_sampler_sample_draft(s, logits, N, NULL, &t, NULL), QR_ERR_INVALID_ARG);
    assert_non_null(strstr(qr_last_error(), "outside the vocabulary"));
    qr_sampler_free(s);

    /* greedy: the pick is the argmax whatever the draft */
    sp.temp = 0.0f;
    assert_int_equal(qr_sampler_create(&sp, N, &s), QR_OK);
    for (qr_token d = 0; d < N; d++) {
        assert_int_equal(qr_sampler_sample_draft(s, logits, d, NULL, &t, NULL), QR_OK);
        assert_int_equal(t, 0);
    }
    qr_sampler_free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rule_keeps_the_target_distribution),
        cmocka_unit_test(test_the_check_has_power),
        cmocka_unit_test(test_rule_edges),
        cmocka_unit_test(test_sampler_sample_draft),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
