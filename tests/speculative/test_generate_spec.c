/* test_generate_spec.c - qr_generate with speculative decoding through the C API on stories260K
 * (F32): greedy tokens, text and log-probabilities equal
 * those without speculation, with a draft model and with ngram-simple, over two turns of one
 * sequence; n_predict, stop strings, the callback and a grammar end or steer generation as
 * without; the counts land in qr_timings; sampled tokens with speculation follow the same
 * distribution as without (a two-sample chi-square over thousands of seeded runs); bad
 * parameters and a draft with another vocabulary are clear errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "quarrel.h"
#include "sample/sample_test_util.h"

#define MAX_TOK 512
/* Tokens, text and log-probabilities must be identical: the log-probabilities come from
 * logits evaluated alone without speculation and in a k + 1 batch with it, which are
 * bit-identical (batch invariance, tests/runtime/test_batch_invariance.c). */

typedef struct run {
    char text[8192];
    size_t n;
    qr_token ids[MAX_TOK];
    float logprob[MAX_TOK];
    int n_tokens, stop_after;
} run;

static bool collect(qr_token id, const char *text, size_t n, const float *logits,
                    const qr_token_logprobs *lp, void *user) {
    run *r = user;
    if (id >= 0) {
        assert_non_null(logits);
        assert_true(r->n_tokens < MAX_TOK);
        r->logprob[r->n_tokens] = lp ? lp->logprob : 0.0f;
        r->ids[r->n_tokens++] = id;
    }
    assert_true(r->n + n < sizeof r->text);
    memcpy(r->text + r->n, text, n);
    r->n += n;
    r->text[r->n] = '\0';
    return r->stop_after == 0 || r->n_tokens < r->stop_after;
}

typedef struct fixture {
    qr_model *model, *draft_model;
    qr_context *ctx, *draft;
} fixture;

static qr_context *make_ctx(qr_model *m) {
    qr_context_params cp = qr_context_default_params();
    cp.n_ctx = 1024;
    cp.n_threads = 1;
    qr_context *c;
    if (qr_context_create(m, &cp, &c) != QR_OK) fail_msg("%s", qr_last_error());
    return c;
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    const char *path = QR_SHARED_DIR "/models/stories260K.gguf";
    if (qr_model_load(path, NULL, &f->model) || qr_model_load(path, NULL, &f->draft_model))
        fail_msg("%s", qr_last_error());
    f->ctx = make_ctx(f->model);
    f->draft = make_ctx(f->draft_model);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    qr_context_free(f->ctx);
    qr_context_free(f->draft);
    qr_model_free(f->model);
    qr_model_free(f->draft_model);
    free(f);
    return 0;
}

static qr_sampler *greedy(const qr_model *m, const char *grammar) {
    qr_sampler_params sp = qr_sampler_default_params();
    sp.temp = 0;
    sp.seed = 1;
    sp.n_probs = 3;
    sp.grammar = grammar;
    qr_sampler *s;
    if (qr_sampler_create_for_model(&sp, m, &s) != QR_OK) fail_msg("%s", qr_last_error());
    return s;
}

static int32_t tokenize(const qr_model *m, const char *text, bool bos, qr_token *out) {
    int32_t n;
    assert_int_equal(qr_tokenize(m, text, strlen(text), bos, false, out, 64, &n), QR_OK);
    return n;
}

/* Two turns of generation on a fresh cache with the given speculation (type NONE: without). */
static void two_turns(fixture *f, qr_generate_params gp, run *r1, run *r2, qr_stop_reason *why) {
    qr_kv_clear(f->ctx);
    qr_kv_clear(f->draft);
    qr_sampler *s = greedy(f->model, NULL);
    qr_token p[64];
    int32_t n = tokenize(f->model, "Once upon a time", true, p);
    assert_int_equal(qr_generate(f->ctx, s, p, n, &gp, collect, r1, why), QR_OK);
    n = tokenize(f->model, " Then the dog said", false, p);
    assert_int_equal(qr_generate(f->ctx, s, p, n, &gp, collect, r2, why), QR_OK);
    qr_sampler_free(s);
}

static void assert_same(const run *a, const run *b, const char *what) {
    if (strcmp(a->text, b->text))
        fail_msg("%s: text differs:\n  without: %s\n  with:    %s", what, a->text, b->text);
    assert_int_equal(a->n_tokens, b->n_tokens);
    for (int i = 0; i < a->n_tokens; i++) {
        assert_int_equal(a->ids[i], b->ids[i]);
        if (a->logprob[i] != b->logprob[i])
            fail_msg("%s: token %d's logprob %.9g vs %.9g", what, i, (double)a->logprob[i],
                     (double)b->logprob[i]);
    }
}

static void test_greedy_identity(void **state) {
    fixture *f = *state;
    qr_generate_params base = {.n_predict = 150, .want_logprobs = true};
    static run a1, a2;
    memset(&a1, 0, sizeof a1);
    memset(&a2, 0, sizeof a2);
    qr_stop_reason why;
    two_turns(f, base, &a1, &a2, &why);
    assert_int_equal(a1.n_tokens, 150);

    const qr_spec_type types[2] = {QR_SPEC_DRAFT_SIMPLE, QR_SPEC_NGRAM_SIMPLE};
    for (int t = 0; t < 2; t++)
        for (int32_t n_max = 1; n_max <= 8; n_max *= 2) {
            qr_generate_params gp = base;
            gp.spec_type = types[t];
            gp.spec_draft = types[t] == QR_SPEC_DRAFT_SIMPLE ? f->draft : NULL;
            gp.spec_n_max = n_max;
            static run b1, b2;
            memset(&b1, 0, sizeof b1);
            memset(&b2, 0, sizeof b2);
            qr_context_reset_timings(f->ctx);
            two_turns(f, gp, &b1, &b2, &why);
            char what[64];
            snprintf(what, sizeof what, "%s n_max %d", t ? "ngram-simple" : "draft-simple",
                     (int)n_max);
            assert_same(&a1, &b1, what);
            assert_same(&a2, &b2, what);
            qr_timings tm = qr_context_timings(f->ctx);
            assert_int_equal(tm.n_gen_tokens, 300);
            assert_true(tm.n_draft_accepted <= tm.n_draft_tokens);
            assert_true(tm.n_spec_passes > 0 && tm.n_spec_passes < 300);
            /* each pass gives its accepted guesses and one token, the first token of a turn
             * comes from the prompt's pass */
            assert_int_equal(tm.n_spec_passes + tm.n_draft_accepted + 2, 300);
            if (t == 0) /* the draft is the target: every guess holds */
                assert_int_equal(tm.n_draft_accepted, tm.n_draft_tokens);
        }
}

static void test_stops_as_without(void **state) {
    fixture *f = *state;
    qr_generate_params plain = {.n_predict = 200};
    const char *stops[1] = {"Lily"};
    for (int c = 0; c < 3; c++) {
        qr_generate_params gp = plain;
        int stop_after = 0;
        if (c == 0) gp.n_predict = 13;
        if (c == 1) {
            gp.stops = stops;
            gp.n_stops = 1;
        }
        if (c == 2) stop_after = 9;
        static run a1, a2, b1, b2;
        memset(&a1, 0, sizeof a1);
        memset(&a2, 0, sizeof a2);
        a1.stop_after = a2.stop_after = stop_after;
        b1 = a1;
        b2 = a2;
        qr_stop_reason wa, wb;
        two_turns(f, gp, &a1, &a2, &wa);
        gp.spec_type = QR_SPEC_DRAFT_SIMPLE;
        gp.spec_draft = f->draft;
        gp.spec_n_max = 4;
        two_turns(f, gp, &b1, &b2, &wb);
        assert_same(&a1, &b1, "stops");
        assert_same(&a2, &b2, "stops");
        assert_int_equal(wa, wb);
        assert_int_equal(wa, c == 0 ? QR_STOP_LENGTH : c == 1 ? QR_STOP_STRING : QR_STOP_CALLBACK);
    }
}

static void test_grammar(void **state) {
    fixture *f = *state;
    const char *g = "root ::= [a-z ]+ \".\"";
    run *r[2];
    for (int k = 0; k < 2; k++) {
        r[k] = calloc(1, sizeof(run));
        qr_kv_clear(f->ctx);
        qr_kv_clear(f->draft);
        qr_sampler *s = greedy(f->model, g);
        qr_token p[64];
        int32_t n = tokenize(f->model, "Once upon a time", true, p);
        qr_generate_params gp = {.n_predict = 80};
        if (k) {
            gp.spec_type = QR_SPEC_DRAFT_SIMPLE;
            gp.spec_draft = f->draft;
            gp.spec_n_max = 3;
        }
        qr_stop_reason why;
        assert_int_equal(qr_generate(f->ctx, s, p, n, &gp, collect, r[k], &why), QR_OK);
        qr_sampler_free(s);
    }
    assert_same(r[0], r[1], "grammar");
    assert_non_null(strchr(r[0]->text, '.'));
    free(r[0]);
    free(r[1]);
}

/* Sampling (top-k 40, min-p 0.02, temperature 1.5 so the tokens spread out): with
 * n_predict 3 the second token is the target's check of one greedy guess (Leviathan et al.'s
 * rule) and the third the next check or the bonus token; over many seeds each must be
 * distributed as without speculation. Two-sample chi-square, categories with fewer than 10
 * draws pooled, threshold at a tail of ~3e-7 (sample_test_util.h): fixed seeds, not flaky. */
static void test_sampled_distribution(void **state) {
    fixture *f = *state;
    enum { RUNS = 6000 };
    const int32_t n_vocab = qr_model_n_vocab(f->model);
    long *count = calloc((size_t)4 * (size_t)n_vocab, sizeof *count); /* [mode][pos][token] */
    qr_token p[64];
    const int32_t n = tokenize(f->model, "Lily and Tom were playing with a", true, p);
    qr_sampler_params sp = qr_sampler_default_params();
    sp.temp = 1.5f;
    sp.top_p = 1.0f;
    sp.min_p = 0.02f;
    long accepted = 0;
    for (int mode = 0; mode < 2; mode++)
        for (int r = 0; r < RUNS; r++) {
            sp.seed = (uint64_t)(2 * r + mode) + 1000; /* independent runs */
            qr_sampler *s;
            assert_int_equal(qr_sampler_create_for_model(&sp, f->model, &s), QR_OK);
            qr_kv_clear(f->ctx);
            qr_kv_clear(f->draft);
            qr_generate_params gp = {.n_predict = 3, .ignore_eos = true};
            if (mode) {
                gp.spec_type = QR_SPEC_DRAFT_SIMPLE;
                gp.spec_draft = f->draft;
                gp.spec_n_max = 2;
            }
            static run rr;
            memset(&rr, 0, sizeof rr);
            qr_context_reset_timings(f->ctx);
            assert_int_equal(qr_generate(f->ctx, s, p, n, &gp, collect, &rr, NULL), QR_OK);
            assert_int_equal(rr.n_tokens, 3);
            accepted += qr_context_timings(f->ctx).n_draft_accepted;
            count[(size_t)(mode * 2 + 0) * (size_t)n_vocab + (size_t)rr.ids[1]]++;
            count[(size_t)(mode * 2 + 1) * (size_t)n_vocab + (size_t)rr.ids[2]]++;
            qr_sampler_free(s);
        }
    for (int pos = 0; pos < 2; pos++) {
        const long *a = count + (size_t)pos * (size_t)n_vocab;
        const long *b = count + (size_t)(2 + pos) * (size_t)n_vocab;
        double stat = 0.0;
        long pool_a = 0, pool_b = 0;
        int cats = 0;
        for (int32_t t = 0; t < n_vocab; t++) {
            if (a[t] + b[t] == 0) continue;
            if (a[t] + b[t] < 10) {
                pool_a += a[t];
                pool_b += b[t];
                continue;
            }
            stat += (double)(a[t] - b[t]) * (double)(a[t] - b[t]) / (double)(a[t] + b[t]);
            cats++;
        }
        if (pool_a + pool_b > 0) {
            stat +=
                (double)(pool_a - pool_b) * (double)(pool_a - pool_b) / (double)(pool_a + pool_b);
            cats++;
        }
        const int df = cats > 1 ? cats - 1 : 1;
        if (!(stat < chi2_critical(df)))
            fail_msg("token %d: sampled with speculation vs without: chi-square %.1f >= %.1f "
                     "(df %d)",
                     pos + 2, stat, chi2_critical(df), df);
        print_message("token %d: chi-square %.1f over %d categories (critical %.1f)\n", pos + 2,
                      stat, cats, chi2_critical(df));
        assert_true(cats >= 5); /* a spread-out distribution, not one token */
    }
    free(count);
    /* the guesses were sometimes kept and sometimes not: the rule was exercised both ways */
    assert_true(accepted > RUNS / 10 && accepted < RUNS);
}

static qr_status try_params(fixture *f, qr_generate_params gp) {
    qr_kv_clear(f->ctx);
    qr_sampler *s = greedy(f->model, NULL);
    qr_token p[64];
    int32_t n = tokenize(f->model, "Once", true, p);
    static run r;
    memset(&r, 0, sizeof r);
    qr_status st = qr_generate(f->ctx, s, p, n, &gp, collect, &r, NULL);
    qr_sampler_free(s);
    return st;
}

static void expect_error(fixture *f, qr_generate_params gp, const char *msg) {
    assert_int_equal(try_params(f, gp), QR_ERR_INVALID_ARG);
    if (!strstr(qr_last_error(), msg)) fail_msg("message '%s' lacks '%s'", qr_last_error(), msg);
}

static void test_bad_input(void **state) {
    fixture *f = *state;
    qr_generate_params gp = {
        .n_predict = 5, .spec_type = QR_SPEC_DRAFT_SIMPLE, .spec_draft = f->draft};
    expect_error(f, gp, "spec_n_max must be at least 1 (got 0)");
    gp.spec_n_max = -2;
    expect_error(f, gp, "spec_n_max must be at least 1 (got -2)");
    gp.spec_n_max = 3;
    gp.spec_n_min = 4;
    expect_error(f, gp, "spec_n_min must be from 0 to spec_n_max");
    gp.spec_n_min = 0;
    gp.spec_p_min = 1.5f;
    expect_error(f, gp, "spec_p_min must be in [0, 1]");
    gp.spec_p_min = 0;
    gp.spec_draft = NULL;
    expect_error(f, gp, "needs a draft context");
    gp.spec_draft = f->ctx;
    expect_error(f, gp, "the draft context is the target context itself");
    gp.spec_type = (qr_spec_type)7;
    expect_error(f, gp, "unknown spec_type 7");

    /* a draft with another vocabulary */
    qr_model *other;
    if (qr_model_load(QR_SHARED_DIR "/models/qwen2-tiny-q8_0.gguf", NULL, &other) != QR_OK)
        fail_msg("%s", qr_last_error());
    qr_context *oc = make_ctx(other);
    gp.spec_type = QR_SPEC_DRAFT_SIMPLE;
    gp.spec_draft = oc;
    expect_error(f, gp, "the draft must share the target's vocabulary");
    assert_int_equal(qr_spec_check_vocab(f->model, other), QR_ERR_INVALID_ARG);
    assert_int_equal(qr_spec_check_vocab(f->model, f->draft_model), QR_OK);
    qr_context_free(oc);
    qr_model_free(other);
    gp.spec_draft = f->draft; /* and still fine afterwards */
    assert_int_equal(try_params(f, gp), QR_OK);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_identity), cmocka_unit_test(test_stops_as_without),
        cmocka_unit_test(test_grammar),         cmocka_unit_test(test_sampled_distribution),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
