/* test_dry.c - DRY ("don't repeat yourself") on hand-worked histories: all logits start at 0,
 * so after the stage each logit is minus its penalty multiplier * base^(L - allowed), where L
 * is the length of the repeated suffix the token would continue. Also the sequence-breaker
 * strings turned into token sequences against a made-up vocabulary, and the public sampler. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "quarrel.h"
#include "sample/sample_internal.h"

enum { V = 24 };

typedef struct fixture {
    float logits[V];
    qr_candidate data[V];
    qr_rng rng;
    qr_sample_state st;
} fixture;

/* Run a DRY stage with the history hist[0..n) over zero logits; the resulting logits in out. */
static void run_dry(float mult, float base, int32_t allowed, int32_t last_n,
                    const qr_dry_breaker *br, int32_t n_br, const qr_token *hist, size_t n,
                    bool gathered, float *out) {
    qr_stage *s = qr_stage_dry(V, mult, base, allowed, last_n, br, n_br);
    assert_non_null(s);
    for (size_t i = 0; i < n; i++)
        s->vt->accept(s, hist[i]);
    fixture f;
    memset(f.logits, 0, sizeof f.logits);
    qr_rng_seed(&f.rng, 1);
    f.st = (qr_sample_state){
        .logits = f.logits, .n_vocab = V, .data = f.data, .selected = -1, .rng = &f.rng};
    if (gathered) qr_cand_gather_all(&f.st);
    assert_int_equal(s->vt->apply(s, &f.st), QR_OK);
    if (gathered) {
        assert_int_equal(f.st.size, V);
        for (size_t i = 0; i < f.st.size; i++)
            out[f.st.data[i].id] = f.st.data[i].logit;
    } else {
        memcpy(out, f.logits, sizeof f.logits);
    }
    qr_stage_free(s);
}

/* every logit 0 except the listed ones */
static void expect(const float *got, const qr_token *ids, const float *want, int n) {
    for (int t = 0; t < V; t++) {
        float w = 0.0f;
        for (int i = 0; i < n; i++)
            if (ids[i] == t) w = want[i];
        if (fabsf(got[t] - w) > 1e-5f * (1.0f + fabsf(w)))
            fail_msg("token %d: %g, want %g", t, (double)got[t], (double)w);
    }
}

#define LEN(a) (sizeof(a) / sizeof((a)[0]))

static void test_dry_repeated_suffix(void **state) {
    (void)state;
    float got[V];
    /* 1 2 3 4 1 2 3: the suffix "1 2 3" (L = 3) was followed by 4: 1 * 2^(3 - 2) = 2 */
    const qr_token h1[] = {1, 2, 3, 4, 1, 2, 3};
    const qr_token id4[] = {4};
    for (int g = 0; g < 2; g++) {
        run_dry(1.0f, 2.0f, 2, -1, NULL, 0, h1, LEN(h1), g, got);
        expect(got, id4, (const float[]){-2.0f}, 1);
    }
    /* 3 9 1 2 3 7 1 2 3: "1 2 3" (L = 3) before 7 and "3" (L = 1) before 9; allowed 1,
     * multiplier 0.5, base 3: 7 loses 0.5 * 3^2 = 4.5, 9 loses 0.5 * 3^0 = 0.5 */
    const qr_token h2[] = {3, 9, 1, 2, 3, 7, 1, 2, 3};
    run_dry(0.5f, 3.0f, 1, -1, NULL, 0, h2, LEN(h2), false, got);
    expect(got, (const qr_token[]){7, 9}, (const float[]){-4.5f, -0.5f}, 2);
    /* allowed 2: the L = 1 repeat before 9 is allowed, 7 loses 0.5 * 3^1 */
    run_dry(0.5f, 3.0f, 2, -1, NULL, 0, h2, LEN(h2), false, got);
    expect(got, (const qr_token[]){7}, (const float[]){-1.5f}, 1);
    /* a token following two repeats is penalised for the longer one: 5 1 2 5 2 5 1 2 ->
     * "5 1 2" (L = 3) before 5 at the start and "2" (L = 1) before 5 in the middle: 2^(3 - 1) */
    const qr_token h3[] = {5, 1, 2, 5, 2, 5, 1, 2};
    run_dry(1.0f, 2.0f, 1, -1, NULL, 0, h3, LEN(h3), false, got);
    expect(got, (const qr_token[]){5}, (const float[]){-4.0f}, 1);
}

static void test_dry_allowed_length(void **state) {
    (void)state;
    float got[V];
    /* 5 1 2 6 1 2: "1 2" (L = 2) before 6 */
    const qr_token h[] = {5, 1, 2, 6, 1, 2};
    run_dry(0.8f, 1.75f, 2, -1, NULL, 0, h, LEN(h), false, got);
    expect(got, (const qr_token[]){6}, (const float[]){-0.8f}, 1); /* 0.8 * 1.75^0 */
    run_dry(0.8f, 1.75f, 3, -1, NULL, 0, h, LEN(h), false, got);
    expect(got, NULL, NULL, 0);
    /* a history no longer than allowed_length: nothing */
    run_dry(0.8f, 1.75f, 2, -1, NULL, 0, (const qr_token[]){1, 1}, 2, false, got);
    expect(got, NULL, NULL, 0);
}

static void test_dry_breakers(void **state) {
    (void)state;
    float got[V];
    const qr_token h[] = {1, 2, 3, 4, 1, 2, 3};
    /* token 2 alone breaks: the repetition may reach back 1 token (the 3 after it) */
    qr_dry_breaker two = {.head = 2, .n_tail = 0};
    run_dry(1.0f, 2.0f, 2, -1, &two, 1, h, LEN(h), false, got);
    expect(got, NULL, NULL, 0); /* limit 1 < allowed 2 */
    run_dry(1.0f, 2.0f, 1, -1, &two, 1, h, LEN(h), false, got);
    expect(got, (const qr_token[]){4}, (const float[]){-1.0f}, 1); /* L capped at 1: 2^0 */
    /* head 1 with tail {2}: "1 2" two back breaks, the limit is the 3 after it */
    qr_dry_breaker one_two = {.head = 1, .n_tail = 1, .tail = {2}};
    run_dry(1.0f, 2.0f, 1, -1, &one_two, 1, h, LEN(h), false, got);
    expect(got, (const qr_token[]){4}, (const float[]){-1.0f}, 1);
    /* head 1 with tail {9}: "1 2" is not "1 9", nothing breaks: 2^(3 - 1) */
    qr_dry_breaker one_nine = {.head = 1, .n_tail = 1, .tail = {9}};
    run_dry(1.0f, 2.0f, 1, -1, &one_nine, 1, h, LEN(h), false, got);
    expect(got, (const qr_token[]){4}, (const float[]){-4.0f}, 1);
    /* a token that alone is a breaker is never penalised: 1 2 8 1 2 would hit 8 */
    const qr_token h2[] = {1, 2, 8, 1, 2};
    run_dry(1.0f, 2.0f, 2, -1, NULL, 0, h2, LEN(h2), false, got);
    expect(got, (const qr_token[]){8}, (const float[]){-1.0f}, 1);
    qr_dry_breaker eight = {.head = 8, .n_tail = 0};
    run_dry(1.0f, 2.0f, 2, -1, &eight, 1, h2, LEN(h2), false, got);
    expect(got, NULL, NULL, 0);
}

static void test_dry_window(void **state) {
    (void)state;
    float got[V];
    const qr_token h[] = {1, 2, 3, 4, 1, 2, 3};
    run_dry(1.0f, 2.0f, 2, 7, NULL, 0, h, LEN(h), false, got); /* all of it: L = 3 */
    expect(got, (const qr_token[]){4}, (const float[]){-2.0f}, 1);
    run_dry(1.0f, 2.0f, 2, 6, NULL, 0, h, LEN(h), false, got); /* 2 3 4 1 2 3: L = 2 */
    expect(got, (const qr_token[]){4}, (const float[]){-1.0f}, 1);
    run_dry(1.0f, 2.0f, 2, 3, NULL, 0, h, LEN(h), false, got); /* 1 2 3: no repeat */
    expect(got, NULL, NULL, 0);
    /* a long history through a small window (the buffer compacts): only the last 5 count */
    const qr_token h2[] = {1, 2, 6, 10, 11, 12, 13, 14, 15, 16, 17, 18, 1, 2, 4, 1, 2};
    run_dry(1.0f, 2.0f, 2, 5, NULL, 0, h2, LEN(h2), false, got);
    expect(got, (const qr_token[]){4}, (const float[]){-1.0f}, 1);
    run_dry(1.0f, 2.0f, 2, -1, NULL, 0, h2, LEN(h2), false, got);
    expect(got, (const qr_token[]){4, 6}, (const float[]){-1.0f, -1.0f}, 2);
    /* reset forgets the history */
    qr_stage *s = qr_stage_dry(V, 1.0f, 2.0f, 2, -1, NULL, 0);
    for (size_t i = 0; i < LEN(h); i++)
        s->vt->accept(s, h[i]);
    s->vt->reset(s);
    fixture f;
    memset(f.logits, 0, sizeof f.logits);
    f.st = (qr_sample_state){.logits = f.logits, .n_vocab = V, .data = f.data, .selected = -1};
    assert_int_equal(s->vt->apply(s, &f.st), QR_OK);
    expect(f.logits, NULL, NULL, 0);
    qr_stage_free(s);
}

/* ---- breaker strings against a made-up vocabulary ---- */

static const char *const TEXTS[] = {"a",  "b",  "\n",   "x\ny", "ab:", "#", "c#",
                                    "d#", "##", "a#b#", "zzz",  "z",   "#x"};
#define N_TEXTS ((int32_t)LEN(TEXTS))

static int32_t fake_piece(void *user, qr_token t, char *buf, int32_t len) {
    (void)user;
    int32_t n = (int32_t)strlen(TEXTS[t]);
    if (n > len) return -n;
    memcpy(buf, TEXTS[t], (size_t)n);
    return n;
}

/* greedy longest match over the texts */
static int32_t fake_tokenize(void *user, const char *text, size_t len, qr_token *out,
                             int32_t n_max) {
    (void)user;
    int32_t n = 0;
    for (size_t i = 0; i < len;) {
        int32_t best = -1;
        size_t best_len = 0;
        for (int32_t t = 0; t < N_TEXTS; t++) {
            size_t l = strlen(TEXTS[t]);
            if (l > best_len && l <= len - i && !memcmp(text + i, TEXTS[t], l)) {
                best = t;
                best_len = l;
            }
        }
        if (best < 0 || n == n_max) return -1;
        out[n++] = best;
        i += best_len;
    }
    return n;
}

static const qr_dry_breaker *find(const qr_dry_breaker *b, int32_t n, qr_token head,
                                  const qr_token *tail, int32_t n_tail) {
    for (int32_t i = 0; i < n; i++)
        if (b[i].head == head && b[i].n_tail == n_tail &&
            (n_tail == 0 || !memcmp(b[i].tail, tail, (size_t)n_tail * sizeof *tail)))
            return &b[i];
    return NULL;
}

static void test_dry_breaker_strings(void **state) {
    (void)state;
    qr_dry_vocab v = {.n_vocab = N_TEXTS, .piece = fake_piece, .tokenize = fake_tokenize};
    char z45[46];
    memset(z45, 'z', 45);
    z45[45] = '\0';
    const char *strings[] = {"\n", "##", "", NULL, z45};
    qr_dry_breaker *b;
    int32_t n;
    assert_int_equal(qr_dry_breakers_build(&v, strings, 5, &b, &n), QR_OK);
    const qr_token hash[1] = {5};
    /* "\n": the texts holding it; "##": "##" holds it, texts ending in "#" are heads of "#" */
    assert_non_null(find(b, n, 2, NULL, 0));
    assert_non_null(find(b, n, 3, NULL, 0));
    assert_non_null(find(b, n, 8, NULL, 0));
    assert_non_null(find(b, n, 5, hash, 1));
    assert_non_null(find(b, n, 6, hash, 1));
    assert_non_null(find(b, n, 7, hash, 1));
    assert_non_null(find(b, n, 9, hash, 1));
    /* the z string is cut to 40: "zzz" ends with 3, 2 or 1 of its z, leaving 37, 38 or 39 to
     * spell (12 "zzz" + "z"; 12 "zzz" + "z" "z"; 13 "zzz"); "z" leaves 39 */
    qr_token t37[13], t38[14], t39[13];
    for (int i = 0; i < 12; i++)
        t37[i] = t38[i] = 10;
    t37[12] = t38[12] = t38[13] = 11;
    for (int i = 0; i < 13; i++)
        t39[i] = 10;
    assert_non_null(find(b, n, 10, t37, 13));
    assert_non_null(find(b, n, 10, t38, 14));
    assert_non_null(find(b, n, 10, t39, 13));
    assert_non_null(find(b, n, 11, t39, 13));
    /* nothing else: "a", "b", "ab:" and "#x" hold no breaker and end with no start of one */
    assert_int_equal(n, 11);
    free(b);

    /* a tail longer than QR_DRY_MAX_TAIL tokens is cut: "a" * 30 after "a" as the head */
    char a30[31];
    memset(a30, 'a', 30);
    a30[30] = '\0';
    const char *s2[] = {a30};
    assert_int_equal(qr_dry_breakers_build(&v, s2, 1, &b, &n), QR_OK);
    qr_token as[QR_DRY_MAX_TAIL] = {0};
    assert_non_null(find(b, n, 0, as, QR_DRY_MAX_TAIL));
    free(b);
}

/* The public sampler: DRY turns a greedy pick away from the repeating token; breakers need the
 * vocabulary (qr_sampler_create_for_model), and bad parameters are refused by name. */
static void test_dry_in_sampler(void **state) {
    (void)state;
    float l[V] = {0};
    l[4] = 1.0f; /* the best token, unless DRY's penalty (2) pushes it below token 0 */
    const qr_token h[] = {1, 2, 3, 4, 1, 2, 3};
    qr_sampler_params p = qr_sampler_default_params();
    p.seed = 1;
    p.temp = 0.0f;
    p.dry_multiplier = 1.0f;
    p.dry_base = 2.0f;
    qr_sampler *s;
    assert_int_equal(qr_sampler_create(&p, V, &s), QR_ERR_INVALID_ARG);
    assert_non_null(strstr(qr_last_error(), "qr_sampler_create_for_model"));
    p.n_dry_sequence_breakers = 0;
    assert_int_equal(qr_sampler_create(&p, V, &s), QR_OK);
    for (size_t i = 0; i < LEN(h); i++)
        qr_sampler_accept(s, h[i]);
    qr_token t;
    assert_int_equal(qr_sampler_sample(s, l, &t, NULL), QR_OK);
    assert_int_equal(t, 0); /* 4 went to 1 - 2 = -1 */
    qr_sampler_free(s);
    p.dry_multiplier = 0.0f; /* off: 4 again */
    assert_int_equal(qr_sampler_create(&p, V, &s), QR_OK);
    for (size_t i = 0; i < LEN(h); i++)
        qr_sampler_accept(s, h[i]);
    assert_int_equal(qr_sampler_sample(s, l, &t, NULL), QR_OK);
    assert_int_equal(t, 4);
    qr_sampler_free(s);

    const struct {
        const char *msg;
        float mult, base;
        int32_t allowed, last_n;
    } bad[] = {
        {"dry_multiplier must be finite and >= 0 (got -1)", -1.0f, 1.75f, 2, 64},
        {"dry_base must be finite", 1.0f, INFINITY, 2, 64},
        {"dry_allowed_length must be >= 0 (got -1)", 1.0f, 1.75f, -1, 64},
        {"dry_penalty_last_n must be -1 (all), 0 (off) or positive (got -2)", 1.0f, 1.75f, 2, -2},
    };
    for (size_t i = 0; i < LEN(bad); i++) {
        p.dry_multiplier = bad[i].mult;
        p.dry_base = bad[i].base;
        p.dry_allowed_length = bad[i].allowed;
        p.dry_penalty_last_n = bad[i].last_n;
        assert_int_equal(qr_sampler_create(&p, V, &s), QR_ERR_INVALID_ARG);
        assert_non_null(strstr(qr_last_error(), bad[i].msg));
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dry_repeated_suffix), cmocka_unit_test(test_dry_allowed_length),
        cmocka_unit_test(test_dry_breakers),        cmocka_unit_test(test_dry_window),
        cmocka_unit_test(test_dry_breaker_strings), cmocka_unit_test(test_dry_in_sampler),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
