/* test_stages.c - the samplers one at a time through the internal stage interface, on
 * hand-made states with hand-worked expected values: the top-k heap selection, penalties
 * (exact logits), top-p / min-p / typical sets, temperature and dynatemp scaling, and the
 * mirostat v2 mu update. */
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

typedef struct fixture {
    float logits[64];
    qr_candidate data[64];
    qr_rng rng;
    qr_sample_state st;
} fixture;

static void setup_dense(fixture *f, const float *l, int n) {
    memcpy(f->logits, l, (size_t)n * sizeof *l);
    qr_rng_seed(&f->rng, 5);
    f->st = (qr_sample_state){.logits = f->logits,
                              .n_vocab = n,
                              .gathered = false,
                              .data = f->data,
                              .size = 0,
                              .sorted = false,
                              .selected = -1,
                              .rng = &f->rng};
}

static void apply_ok(qr_stage *s, fixture *f) {
    assert_non_null(s);
    assert_int_equal(s->vt->apply(s, &f->st), QR_OK);
}

static bool has_id(const fixture *f, int32_t id) {
    for (size_t i = 0; i < f->st.size; i++)
        if (f->st.data[i].id == id) return true;
    return false;
}

static int cmp_float_desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

static void test_select_top(void **state) {
    (void)state;
    enum { N = 5003 };
    float *x = malloc(N * sizeof *x), *sorted = malloc(N * sizeof *x);
    qr_candidate *out = malloc(N * sizeof *out);
    uint32_t r = 7;
    for (int i = 0; i < N; i++) {
        r = r * 1664525u + 1013904223u;
        x[i] = (float)(int32_t)r * 1e-6f; /* distinct with overwhelming likelihood */
    }
    memcpy(sorted, x, N * sizeof *x);
    qsort(sorted, N, sizeof *sorted, cmp_float_desc);
    const int ns[] = {1, 2, 16, 40, 1000, N};
    const int lens[] = {N, 15, 17, 3};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        int len = lens[li];
        float *ref = malloc((size_t)len * sizeof *ref);
        memcpy(ref, x, (size_t)len * sizeof *x);
        qsort(ref, (size_t)len, sizeof *ref, cmp_float_desc);
        for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
            int32_t m = qr_select_top(x, len, ns[k], out);
            assert_int_equal(m, ns[k] < len ? ns[k] : len);
            for (int32_t i = 0; i < m; i++) {
                assert_true(out[i].logit == ref[i]);
                assert_true(x[out[i].id] == out[i].logit);
            }
        }
        free(ref);
    }
    assert_int_equal(qr_select_top(x, N, 0, out), 0);
    free(x);
    free(sorted);
    free(out);
}

/* qr_cand_sort_top: the n largest in descending order at the front, every candidate kept
 * (ids intact), against a full sort; with many ties, small lists and n beyond the size */
static void test_sort_top(void **state) {
    (void)state;
    enum { N = 3001 };
    qr_candidate *data = malloc(N * sizeof *data);
    float *ref = malloc(N * sizeof *ref), *orig = malloc(N * sizeof *orig);
    const int sizes[] = {N, 2, 3, 16, 17, 100};
    const int ns[] = {1, 2, 3, 15, 16, 17, 100, 2999, N, N + 5};
    uint32_t r = 11;
    for (int tie = 0; tie < 2; tie++)
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
            for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
                const int size = sizes[si];
                long id_sum = 0;
                for (int i = 0; i < size; i++) {
                    r = r * 1664525u + 1013904223u;
                    /* with ties: 7 distinct values */
                    data[i].logit = tie ? (float)(r >> 29) : (float)(int32_t)r * 1e-6f;
                    data[i].id = i;
                    ref[i] = orig[i] = data[i].logit;
                    id_sum += i;
                }
                qsort(ref, (size_t)size, sizeof *ref, cmp_float_desc);
                qr_sample_state st = {.data = data, .size = (size_t)size};
                qr_cand_sort_top(&st, (size_t)ns[ni]);
                const int n = ns[ni] < size ? ns[ni] : size;
                for (int i = 0; i < n; i++)
                    assert_true(data[i].logit == ref[i]);
                assert_int_equal(st.sorted, ns[ni] >= size);
                long got = 0;
                for (int i = 0; i < size; i++) {
                    got += data[i].id;
                    assert_true(data[i].logit == orig[data[i].id]); /* moved whole */
                }
                assert_int_equal(got, id_sum); /* a permutation: nothing lost or doubled */
            }
    free(data);
    free(ref);
    free(orig);
}

/* the softmax of a long candidate list (the vector exp, in the dense array the gathered list
 * no longer needs) against a double-precision softmax of a copy of the logits */
static void test_softmax_long(void **state) {
    (void)state;
    enum { N = 1003 };
    float *dense = malloc(N * sizeof *dense), *copy = malloc(N * sizeof *copy);
    qr_candidate *data = malloc(N * sizeof *data);
    assert_true(dense && copy && data);
    uint32_t r = 99;
    for (int i = 0; i < N; i++) {
        r = r * 1664525u + 1013904223u;
        dense[i] = copy[i] = (float)((double)(r >> 8) / 16777216.0 * 24.0 - 12.0);
    }
    dense[5] = copy[5] = -INFINITY; /* a banned token is not gathered */
    qr_sample_state st = {.logits = dense, .n_vocab = N, .data = data};
    qr_cand_gather_all(&st);
    assert_int_equal(st.size, N - 1);
    qr_cand_softmax(&st);
    double mx = -INFINITY, sum = 0.0;
    for (int i = 0; i < N; i++)
        if (copy[i] > mx) mx = copy[i];
    for (int i = 0; i < N; i++)
        sum += exp((double)copy[i] - mx);
    double total = 0.0;
    for (size_t i = 0; i < st.size; i++) {
        const double want = exp((double)copy[data[i].id] - mx) / sum;
        if (!(fabs(data[i].p - want) <= 2e-6 * want))
            fail_msg("p[%d] = %.9g, double softmax %.9g", data[i].id, (double)data[i].p, want);
        total += data[i].p;
    }
    assert_true(fabs(total - 1.0) < 1e-5);
    free(dense);
    free(copy);
    free(data);
}

static void test_top_k_gather(void **state) {
    (void)state;
    fixture f;
    const float l[6] = {0.5f, -INFINITY, 2.0f, 1.0f, -INFINITY, -3.0f};
    setup_dense(&f, l, 6);
    qr_stage *s = qr_stage_top_k(3);
    apply_ok(s, &f);
    assert_true(f.st.gathered && f.st.sorted);
    assert_int_equal(f.st.size, 3);
    assert_int_equal(f.st.data[0].id, 2);
    assert_int_equal(f.st.data[1].id, 3);
    assert_int_equal(f.st.data[2].id, 0);
    /* k = 5 > the 4 unbanned tokens: banned ones are dropped, not kept */
    setup_dense(&f, l, 6);
    qr_stage_free(s);
    s = qr_stage_top_k(5);
    apply_ok(s, &f);
    assert_int_equal(f.st.size, 4);
    assert_false(has_id(&f, 1) || has_id(&f, 4));
    /* on an already gathered list it cuts to the k best */
    qr_stage *two = qr_stage_top_k(2);
    apply_ok(two, &f);
    assert_int_equal(f.st.size, 2);
    assert_true(has_id(&f, 2) && has_id(&f, 3));
    qr_stage_free(two);
    /* k <= 0 is off */
    setup_dense(&f, l, 6);
    qr_stage_free(s);
    s = qr_stage_top_k(0);
    apply_ok(s, &f);
    assert_false(f.st.gathered);
    qr_stage_free(s);
}

/* logits 3, -2, 0.5, 1; repeat 2, freq 0.5, presence 0.25; history 0, 0, 1:
 *   token 0 (c = 2): 3 / 2 - 2 * 0.5 - 0.25 = 0.25
 *   token 1 (c = 1): -2 * 2 - 0.5 - 0.25 = -4.75 */
static void test_penalties_exact(void **state) {
    (void)state;
    const float l[4] = {3.0f, -2.0f, 0.5f, 1.0f};
    fixture f;
    qr_stage *s = qr_stage_penalties(4, 64, 2.0f, 0.5f, 0.25f);
    assert_non_null(s);
    s->vt->accept(s, 0);
    s->vt->accept(s, 0);
    s->vt->accept(s, 1);
    setup_dense(&f, l, 4);
    apply_ok(s, &f);
    assert_float_equal(f.logits[0], 0.25f, 1e-6);
    assert_float_equal(f.logits[1], -4.75f, 1e-6);
    assert_float_equal(f.logits[2], 0.5f, 0);
    assert_float_equal(f.logits[3], 1.0f, 0);
    /* applying twice from fresh logits gives the same (the counts are restored) */
    setup_dense(&f, l, 4);
    apply_ok(s, &f);
    assert_float_equal(f.logits[0], 0.25f, 1e-6);
    /* the same on a gathered candidate list */
    setup_dense(&f, l, 4);
    qr_cand_gather_all(&f.st);
    apply_ok(s, &f);
    for (size_t i = 0; i < f.st.size; i++) {
        const float want[4] = {0.25f, -4.75f, 0.5f, 1.0f};
        assert_float_equal(f.st.data[i].logit, want[f.st.data[i].id], 1e-6);
    }
    s->vt->reset(s);
    setup_dense(&f, l, 4);
    apply_ok(s, &f);
    assert_memory_equal(f.logits, l, sizeof l);
    qr_stage_free(s);

    /* window of 2 after 0, 0, 1: the first 0 has left; token 0 c = 1: 1.5 - 0.5 - 0.25 */
    s = qr_stage_penalties(4, 2, 2.0f, 0.5f, 0.25f);
    s->vt->accept(s, 0);
    s->vt->accept(s, 0);
    s->vt->accept(s, 1);
    setup_dense(&f, l, 4);
    apply_ok(s, &f);
    assert_float_equal(f.logits[0], 0.75f, 1e-6);
    assert_float_equal(f.logits[1], -4.75f, 1e-6);
    qr_stage_free(s);

    /* unbounded history (-1) grows past its first allocation: 300 x token 3, freq 0.01 */
    s = qr_stage_penalties(4, -1, 1.0f, 0.01f, 0.0f);
    for (int i = 0; i < 300; i++)
        s->vt->accept(s, 3);
    setup_dense(&f, l, 4);
    apply_ok(s, &f);
    assert_float_equal(f.logits[3], 1.0f - 3.0f, 1e-4);
    qr_stage_free(s);
}

static void test_top_p_min_p_sets(void **state) {
    (void)state;
    /* probabilities 0.4, 0.3, 0.2, 0.1 (shuffled), unsorted gather: top-p sorts */
    const float l[4] = {logf(0.2f), logf(0.4f), logf(0.1f), logf(0.3f)};
    fixture f;
    qr_stage *tp = qr_stage_top_p(0.65f); /* 0.4, 0.7 >= 0.65 */
    setup_dense(&f, l, 4);
    apply_ok(tp, &f);
    assert_int_equal(f.st.size, 2);
    assert_int_equal(f.st.data[0].id, 1);
    assert_int_equal(f.st.data[1].id, 3);
    qr_stage_free(tp);
    tp = qr_stage_top_p(0.9f); /* 0.4, 0.7, 0.9 >= 0.9 (float sum rounds either side) */
    setup_dense(&f, l, 4);
    apply_ok(tp, &f);
    assert_true(f.st.size == 3 || f.st.size == 4);
    qr_stage_free(tp);

    qr_stage *mp = qr_stage_min_p(0.6f); /* >= 0.24: 0.4, 0.3 */
    setup_dense(&f, l, 4);
    apply_ok(mp, &f); /* dense path */
    assert_int_equal(f.st.size, 2);
    assert_true(has_id(&f, 1) && has_id(&f, 3));
    setup_dense(&f, l, 4);
    qr_cand_gather_all(&f.st); /* unsorted candidate path */
    apply_ok(mp, &f);
    assert_int_equal(f.st.size, 2);
    assert_true(has_id(&f, 1) && has_id(&f, 3));
    setup_dense(&f, l, 4);
    qr_cand_gather_all(&f.st);
    qr_cand_sort(&f.st); /* sorted path keeps the order */
    apply_ok(mp, &f);
    assert_int_equal(f.st.size, 2);
    assert_int_equal(f.st.data[0].id, 1);
    assert_int_equal(f.st.data[1].id, 3);
    qr_stage_free(mp);
}

/* top-p on a large unsorted list takes the quickselect path: the kept set must be the most
 * likely tokens, as many as a sequential sum over the sorted list keeps (+-1 for float
 * rounding at the boundary). */
static void test_top_p_large(void **state) {
    (void)state;
    enum { N = 6000 };
    float *l = malloc(N * sizeof *l), *ref = malloc(N * sizeof *ref);
    qr_candidate *data = malloc(N * sizeof *data);
    qr_rng rng;
    qr_rng_seed(&rng, 3);
    for (int i = 0; i < N; i++)
        l[i] = (float)(qr_rng_uniform(&rng) * 12.0);
    l[17] = l[18] = l[19] = 11.999f; /* a few ties */
    const float ps[] = {0.05f, 0.5f, 0.9f, 0.999f};
    for (size_t k = 0; k < sizeof ps / sizeof ps[0]; k++) {
        memcpy(ref, l, N * sizeof *l);
        qsort(ref, N, sizeof *ref, cmp_float_desc);
        double mx = ref[0], sum = 0, cum = 0;
        for (int i = 0; i < N; i++)
            sum += exp(ref[i] - mx);
        int want = N;
        for (int i = 0; i < N; i++) {
            cum += exp(ref[i] - mx) / sum;
            if (cum >= ps[k]) {
                want = i + 1;
                break;
            }
        }
        float *dense = malloc(N * sizeof *dense);
        memcpy(dense, l, N * sizeof *l);
        qr_sample_state st = {.logits = dense, .n_vocab = N, .data = data, .rng = &rng};
        qr_stage *s = qr_stage_top_p(ps[k]);
        assert_int_equal(s->vt->apply(s, &st), QR_OK);
        assert_false(st.sorted); /* the set is left unsorted: sort it here to compare */
        qr_cand_sort(&st);
        assert_true((int)st.size >= want - 1 && (int)st.size <= want + 1);
        for (size_t i = 0; i < st.size; i++)
            assert_true(st.data[i].logit == ref[i]);
        qr_stage_free(s);
        free(dense);
    }
    free(l);
    free(ref);
    free(data);
}

static void test_typical_set(void **state) {
    (void)state;
    /* p = 0.5, 0.25, 0.15, 0.1: H = 1.208; |-ln p - H| = 0.515, 0.178, 0.689, 1.095 */
    const float l[4] = {logf(0.5f), logf(0.25f), logf(0.15f), logf(0.1f)};
    fixture f;
    qr_stage *s = qr_stage_typical(0.8f); /* 0.25, 0.75, 0.9 > 0.8: tokens 1, 0, 2 */
    setup_dense(&f, l, 4);
    apply_ok(s, &f);
    assert_int_equal(f.st.size, 3);
    assert_int_equal(f.st.data[0].id, 1);
    assert_int_equal(f.st.data[1].id, 0);
    assert_int_equal(f.st.data[2].id, 2);
    assert_false(f.st.sorted);
    qr_stage_free(s);
}

static void test_temperature_stage(void **state) {
    (void)state;
    const float l[4] = {1.0f, 3.0f, -2.0f, 3.0f};
    fixture f;
    qr_stage *s = qr_stage_temperature(0.5f, 0.0f, 1.0f);
    setup_dense(&f, l, 4);
    apply_ok(s, &f);
    assert_int_equal(f.st.size, 4);
    for (size_t i = 0; i < 4; i++)
        assert_float_equal(f.st.data[i].logit, l[f.st.data[i].id] / 0.5f, 1e-6);
    qr_stage_free(s);
    /* temp 0: only the max survives (the first of a tie) */
    s = qr_stage_temperature(0.0f, 0.0f, 1.0f);
    setup_dense(&f, l, 4);
    apply_ok(s, &f);
    assert_int_equal(f.st.size, 1);
    assert_true(f.st.data[0].id == 1 || f.st.data[0].id == 3);
    setup_dense(&f, l, 4);
    qr_cand_gather_all(&f.st);
    apply_ok(s, &f);
    assert_int_equal(f.st.size, 1);
    assert_int_equal(f.st.data[0].id, 1);
    qr_stage_free(s);
    /* dynatemp 1 +- 0.5, exponent 2: T = 0.5 + 1.0 * (H / ln 4)^2 */
    double x[4] = {1.0, 3.0, -2.0, 3.0}, q[4], h = 0;
    softmax_t(x, 4, 1.0, q);
    for (int i = 0; i < 4; i++)
        h -= q[i] * log(q[i]);
    double t = 0.5 + pow(h / log(4.0), 2.0);
    s = qr_stage_temperature(1.0f, 0.5f, 2.0f);
    setup_dense(&f, l, 4);
    apply_ok(s, &f);
    for (size_t i = 0; i < 4; i++)
        assert_float_equal(f.st.data[i].logit, l[f.st.data[i].id] / t, 1e-5);
    qr_stage_free(s);
    /* dynatemp range reaching 0 at zero entropy: a single confident candidate is untouched,
     * and temp 0.2 - 0.5 clamps the low end at 0 */
    s = qr_stage_temperature(0.2f, 0.5f, 1.0f);
    const float one[2] = {5.0f, -INFINITY};
    setup_dense(&f, one, 2);
    apply_ok(s, &f);
    assert_int_equal(f.st.size, 1);
    assert_float_equal(f.st.data[0].logit, 5.0f, 0);
    qr_stage_free(s);
}

/* mirostat v2 on p = 0.5, 0.25, 0.125, 0.125 (surprise 1, 2, 3, 3 bits), tau 1.25: mu starts
 * at 2.5, so only tokens 0 and 1 survive, renormalised to 2/3 and 1/3; the chosen token's
 * surprise is log2(3/2) or log2(3) and mu <- 2.5 - eta (surprise - 1.25). */
/* Mirostat v1 on hand-worked cases. Zipf with exponent 2 over 4 tokens (p ~ 1, 1/4, 1/9, 1/16)
 * gives s_hat = 2 exactly, eps = 1, so with N = 4, k = sqrt(2^mu / (3/4)): tau 1 (mu 2) gives
 * k = 2.31 -> the top 2 (renormalised 0.8, 0.2), tau 1.5 (mu 3) gives 3.27 -> the top 3. */
static void check_mirostat_v1(const float *l, int32_t m, float tau, size_t want_k,
                              const double *kept_p) {
    const float eta = 0.1f;
    qr_stage *s = qr_stage_mirostat_v1(4, tau, eta, m);
    assert_non_null(s);
    assert_float_equal(qr_stage_mirostat_mu(s), 2.0f * tau, 0);
    long counts[4] = {0};
    fixture f;
    for (int i = 0; i < 20000; i++) {
        s->vt->reset(s);
        setup_dense(&f, l, 4);
        qr_rng_seed(&f.rng, (uint64_t)i);
        apply_ok(s, &f);
        assert_int_equal(f.st.size, want_k);
        int32_t id = f.st.data[f.st.selected].id;
        assert_true(id >= 0 && (size_t)id < want_k); /* the top k are ids 0..k-1 */
        counts[id]++;
        double surprise = -log2(kept_p[id]);
        assert_float_equal(qr_stage_mirostat_mu(s), 2.0 * tau - eta * (surprise - tau), 1e-5);
    }
    int df;
    assert_true(chi2_stat(counts, kept_p, 4, 20000, &df) <= chi2_critical(df));
    qr_stage_free(s);
}

static void test_mirostat_v1(void **state) {
    (void)state;
    const float zipf[4] = {0.0f, -2.0f * logf(2.0f), -2.0f * logf(3.0f), -2.0f * logf(4.0f)};
    const double top2[4] = {0.8, 0.2, 0, 0};
    check_mirostat_v1(zipf, 100, 1.0f, 2, top2);
    const double z3 = 1.0 + 1.0 / 4 + 1.0 / 9;
    const double top3[4] = {1 / z3, 0.25 / z3, 1.0 / 9 / z3, 0};
    check_mirostat_v1(zipf, 100, 1.5f, 3, top3);
    /* p ~ 1, 1/4, 1/4, 1/4: from the first pair alone (m = 2) s_hat = log 4 / log 2 = 2 and
     * tau 1.5 keeps 3 again; over all pairs s_hat = log 2 log 4 / (log^2 2 + log^2 1.5 +
     * log^2 4/3) = 1.3206, eps = 0.3206, k = (0.3206 * 8 / (1 - 4^-0.3206))^(1/1.3206) = 4.43:
     * all 4 */
    const float flat[4] = {0.0f, -logf(4.0f), -logf(4.0f), -logf(4.0f)};
    const double flat3[4] = {4.0 / 6, 1.0 / 6, 1.0 / 6, 0};
    check_mirostat_v1(flat, 2, 1.5f, 3, flat3);
    const double flat4[4] = {4.0 / 7, 1.0 / 7, 1.0 / 7, 1.0 / 7};
    check_mirostat_v1(flat, 100, 1.5f, 4, flat4);
}

static void test_mirostat_v2(void **state) {
    (void)state;
    const float l[4] = {logf(0.5f), logf(0.25f), logf(0.125f), logf(0.125f)};
    const float eta = 0.1f;
    qr_stage *s = qr_stage_mirostat_v2(1.25f, eta);
    assert_non_null(s);
    assert_float_equal(qr_stage_mirostat_mu(s), 2.5f, 0);
    long counts[4] = {0};
    fixture f;
    for (int i = 0; i < 20000; i++) {
        s->vt->reset(s);
        setup_dense(&f, l, 4);
        qr_rng_seed(&f.rng, (uint64_t)i);
        apply_ok(s, &f);
        int32_t id = f.st.data[f.st.selected].id;
        assert_true(id == 0 || id == 1);
        counts[id]++;
        double surprise = id == 0 ? log2(1.5) : log2(3.0);
        assert_float_equal(qr_stage_mirostat_mu(s), 2.5 - eta * (surprise - 1.25), 1e-5);
    }
    double probs[4] = {2.0 / 3, 1.0 / 3, 0, 0};
    int df;
    assert_true(chi2_stat(counts, probs, 4, 20000, &df) <= chi2_critical(df));

    /* a long run stays bounded: mu rises while the picks are less surprising than tau and
     * falls while they are more, so it cannot drift off (the sign of the update) */
    float big[64];
    for (int i = 0; i < 64; i++)
        big[i] = -0.15f * (float)i;
    s->vt->reset(s);
    qr_rng_seed(&f.rng, 11);
    double sum_mu = 0;
    for (int i = 0; i < 5000; i++) {
        qr_rng saved = f.rng;
        setup_dense(&f, big, 64);
        f.rng = saved;
        apply_ok(s, &f);
        float mu = qr_stage_mirostat_mu(s);
        assert_true(mu > 0.0f && mu < 15.0f);
        if (i >= 1000) sum_mu += mu;
    }
    /* Picks among k kept tokens of near-equal p carry about log2 k bits, so a 1.25-bit
     * target keeps 2 or 3 tokens: mu settles just above the top token's surprise -log2 p0
     * (below it only token 0 survives, surprise 0, and mu climbs by eta * tau a step). */
    double x[64], q[64];
    for (int i = 0; i < 64; i++)
        x[i] = big[i];
    softmax_t(x, 64, 1.0, q);
    double edge = -log2(q[0]), mean = sum_mu / 4000;
    assert_true(mean > edge - 0.25 && mean < -log2(q[3]));
    /* if every candidate is more surprising than mu, the most likely one is kept */
    qr_stage_free(s);
    s = qr_stage_mirostat_v2(0.0f, 0.1f); /* mu = 0 */
    setup_dense(&f, l, 4);
    apply_ok(s, &f);
    assert_int_equal(f.st.size, 1);
    assert_int_equal(f.st.data[f.st.selected].id, 0);
    assert_float_equal(qr_stage_mirostat_mu(s), 0.0f, 1e-6); /* p = 1: surprise 0 = tau */
    qr_stage_free(s);
}

static void test_rng(void **state) {
    (void)state;
    qr_rng a, b;
    qr_rng_seed(&a, 1);
    qr_rng_seed(&b, 1);
    for (int i = 0; i < 100; i++)
        assert_true(qr_rng_next(&a) == qr_rng_next(&b));
    /* uniform in [0, 1), mean about 1/2 */
    double sum = 0;
    for (int i = 0; i < 100000; i++) {
        double u = qr_rng_uniform(&a);
        assert_true(u >= 0.0 && u < 1.0);
        sum += u;
    }
    assert_float_equal(sum / 100000, 0.5, 0.01);
    assert_true(qr_rng_random_seed() != QR_SEED_RANDOM);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_select_top),        cmocka_unit_test(test_sort_top),
        cmocka_unit_test(test_softmax_long),
        cmocka_unit_test(test_top_k_gather),
        cmocka_unit_test(test_penalties_exact),   cmocka_unit_test(test_top_p_min_p_sets),
        cmocka_unit_test(test_top_p_large),       cmocka_unit_test(test_typical_set),
        cmocka_unit_test(test_temperature_stage), cmocka_unit_test(test_mirostat_v1),
        cmocka_unit_test(test_mirostat_v2),       cmocka_unit_test(test_rng),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
