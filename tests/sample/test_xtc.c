/* test_xtc.c - XTC ("exclude top choices") through the stage interface and the public sampler,
 * on hand-worked distributions: p = 0.4, 0.3, 0.2, 0.1 (logits log p), so the tokens at or
 * above a threshold and the one XTC keeps can be read off. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "quarrel.h"
#include "sample/sample_internal.h"

typedef struct fixture {
    float logits[8];
    qr_candidate data[8];
    qr_rng rng;
    qr_sample_state st;
} fixture;

/* token i has probability probs[i]; the list is gathered unsorted (reversed) when `gathered` */
static void setup(fixture *f, const double *probs, int n, bool gathered) {
    for (int i = 0; i < n; i++)
        f->logits[i] = (float)log(probs[i]);
    qr_rng_seed(&f->rng, 11);
    f->st = (qr_sample_state){
        .logits = f->logits, .n_vocab = n, .data = f->data, .selected = -1, .rng = &f->rng};
    if (gathered) {
        for (int i = 0; i < n; i++)
            f->data[i] = (qr_candidate){n - 1 - i, f->logits[n - 1 - i], 0.0f};
        f->st.size = (size_t)n;
        f->st.gathered = true;
    }
}

static const double P4[4] = {0.4, 0.3, 0.2, 0.1};

static void run_xtc(fixture *f, float prob, float thr, size_t min_keep) {
    qr_stage *s = qr_stage_xtc(prob, thr, min_keep);
    assert_non_null(s);
    assert_int_equal(s->vt->apply(s, &f->st), QR_OK);
    qr_stage_free(s);
}

static void assert_ids(const fixture *f, const int32_t *ids, size_t n) {
    assert_int_equal(f->st.size, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(f->st.data[i].id, ids[i]);
}

static void test_xtc_cuts_top_choices(void **state) {
    (void)state;
    for (int g = 0; g < 2; g++) {
        fixture f;
        setup(&f, P4, 4, g);
        /* 0.4, 0.3, 0.2 reach 0.15: the first two go, 0.2 (the least likely of them) stays */
        run_xtc(&f, 1.0f, 0.15f, 1);
        const int32_t want[2] = {2, 3};
        assert_ids(&f, want, 2);
        assert_true(fabsf(f.st.data[0].p - 0.2f) < 1e-6f);
        /* 0.25: only 0.4 and 0.3 reach it; 0.3 stays */
        setup(&f, P4, 4, g);
        run_xtc(&f, 1.0f, 0.25f, 0);
        const int32_t want2[3] = {1, 2, 3};
        assert_ids(&f, want2, 3);
    }
}

static void test_xtc_does_nothing(void **state) {
    (void)state;
    fixture f;
    const int32_t all[4] = {3, 2, 1, 0}; /* untouched: the gathered (reversed) order */
    /* probability 0: off, and the PRNG is not drawn */
    setup(&f, P4, 4, true);
    qr_rng before = f.rng;
    run_xtc(&f, 0.0f, 0.15f, 1);
    assert_ids(&f, all, 4);
    assert_memory_equal(&before, &f.rng, sizeof before);
    /* threshold above 0.5: off */
    setup(&f, P4, 4, true);
    run_xtc(&f, 1.0f, 0.55f, 1);
    assert_ids(&f, all, 4);
    /* only 0.4 reaches 0.35: fewer than two above the threshold, nothing is cut */
    setup(&f, P4, 4, true);
    run_xtc(&f, 1.0f, 0.35f, 1);
    assert_int_equal(f.st.size, 4);
    assert_int_equal(f.st.data[0].id, 0);
    /* a single candidate */
    setup(&f, P4, 1, true);
    run_xtc(&f, 1.0f, 0.05f, 1);
    assert_int_equal(f.st.size, 1);
    assert_int_equal(f.st.data[0].id, 0);
}

static void test_xtc_min_keep(void **state) {
    (void)state;
    fixture f;
    /* threshold 0.15 would leave 2 candidates: min_keep 3 forbids the cut, 2 allows it */
    setup(&f, P4, 4, true);
    run_xtc(&f, 1.0f, 0.15f, 3);
    assert_int_equal(f.st.size, 4);
    setup(&f, P4, 4, true);
    run_xtc(&f, 1.0f, 0.15f, 2);
    const int32_t want[2] = {2, 3};
    assert_ids(&f, want, 2);
}

/* With probability 0.5 the cut happens exactly when the PRNG's draw is <= 0.5. */
static void test_xtc_probability_draw(void **state) {
    (void)state;
    int cut = 0, kept = 0;
    for (uint64_t seed = 1; seed <= 64; seed++) {
        fixture f;
        setup(&f, P4, 4, true);
        qr_rng_seed(&f.rng, seed);
        qr_rng copy = f.rng;
        bool expect_cut = qr_rng_uniform(&copy) <= 0.5;
        run_xtc(&f, 0.5f, 0.15f, 1);
        assert_int_equal(f.st.size, expect_cut ? 2 : 4);
        assert_memory_equal(&copy, &f.rng, sizeof copy); /* exactly one draw */
        if (expect_cut)
            cut++;
        else
            kept++;
    }
    assert_true(cut > 10 && kept > 10);
}

/* The public chain: greedy with XTC picks the least likely token above the threshold (XTC
 * runs before temperature, as in llama.cpp), and bad parameters are refused by name. */
static void test_xtc_in_sampler(void **state) {
    (void)state;
    float l[4];
    for (int i = 0; i < 4; i++)
        l[i] = (float)log(P4[i]);
    qr_sampler_params p = qr_sampler_default_params();
    p.seed = 3;
    p.temp = 0.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    qr_sampler *s;
    qr_token t;
    assert_int_equal(qr_sampler_create(&p, 4, &s), QR_OK);
    assert_int_equal(qr_sampler_sample(s, l, &t, NULL), QR_OK);
    assert_int_equal(t, 0);
    qr_sampler_free(s);
    p.xtc_probability = 1.0f;
    p.xtc_threshold = 0.15f;
    assert_int_equal(qr_sampler_create(&p, 4, &s), QR_OK);
    assert_int_equal(qr_sampler_sample(s, l, &t, NULL), QR_OK);
    assert_int_equal(t, 2);
    qr_sampler_free(s);

    p.xtc_probability = 1.5f;
    assert_int_equal(qr_sampler_create(&p, 4, &s), QR_ERR_INVALID_ARG);
    assert_non_null(strstr(qr_last_error(), "xtc_probability must be in [0, 1]"));
    p.xtc_probability = 0.5f;
    p.xtc_threshold = NAN;
    assert_int_equal(qr_sampler_create(&p, 4, &s), QR_ERR_INVALID_ARG);
    assert_non_null(strstr(qr_last_error(), "xtc_threshold"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xtc_cuts_top_choices), cmocka_unit_test(test_xtc_does_nothing),
        cmocka_unit_test(test_xtc_min_keep),         cmocka_unit_test(test_xtc_probability_draw),
        cmocka_unit_test(test_xtc_in_sampler),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
