/* test_choice.c - multiple choice: task-file parsing and its errors (each naming the line), the
 * Wilson interval on hand-worked cases, a choice's log-likelihood equal to the sum of
 * log-softmax values computed here from qr_get_logits, the cache-reusing evaluation equal to
 * scoring each choice alone, and stories260K on tasks_stories.jsonl (questions whose answer a
 * TinyStories model should clearly prefer). */
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

static void expect_parse_error(const char *text, const char *needle) {
    qr_mc_task *t = NULL;
    int32_t n = -1;
    assert_int_equal(qr_mc_parse(text, strlen(text), &t, &n), QR_ERR_FORMAT);
    assert_null(t);
    assert_int_equal(n, 0);
    if (!strstr(qr_last_error(), needle))
        fail_msg("error '%s' does not mention '%s'", qr_last_error(), needle);
}

#define OK_LINE "{\"context\": \"a\", \"choices\": [\"b\", \"c\"], \"answer\": 1}\n"

static void test_parse_errors(void **state) {
    (void)state;
    expect_parse_error(OK_LINE "{\"context\": \"a\", \"choices\": [\"b\", \"c\"], \"answer\": 1",
                       "line 2: invalid JSON near column");
    expect_parse_error(OK_LINE "\n[1, 2]\n", "line 3: expected a JSON object");
    expect_parse_error("{\"choices\": [\"b\", \"c\"], \"answer\": 0}",
                       "line 1: \"context\" is missing or not a string");
    expect_parse_error("{\"context\": 5, \"choices\": [\"b\", \"c\"], \"answer\": 0}",
                       "line 1: \"context\" is missing");
    expect_parse_error(OK_LINE OK_LINE "{\"context\": \"a\", \"choices\": \"b\", \"answer\": 0}",
                       "line 3: \"choices\" must be an array of at least 2 strings");
    expect_parse_error("{\"context\": \"a\", \"choices\": [\"b\"], \"answer\": 0}",
                       "line 1: \"choices\" must be an array of at least 2");
    expect_parse_error("{\"context\": \"a\", \"choices\": [\"b\", 3], \"answer\": 0}",
                       "line 1: choice 1 is not a string");
    expect_parse_error("{\"context\": \"a\", \"choices\": [\"\", \"c\"], \"answer\": 0}",
                       "line 1: choice 0 is empty");
    expect_parse_error("{\"context\": \"a\", \"choices\": [\"b\", \"c\"], \"answer\": 2}",
                       "line 1: \"answer\" must be an integer index from 0 to 1");
    expect_parse_error("{\"context\": \"a\", \"choices\": [\"b\", \"c\"], \"answer\": -1}",
                       "line 1: \"answer\" must be an integer");
    expect_parse_error("{\"context\": \"a\", \"choices\": [\"b\", \"c\"], \"answer\": 0.5}",
                       "line 1: \"answer\" must be an integer");
    expect_parse_error("{\"context\": \"a\", \"choices\": [\"b\", \"c\"]}",
                       "line 1: \"answer\" must be an integer");
    expect_parse_error("\n  \n\t\n", "no tasks");
    expect_parse_error("", "no tasks");
    const char nul[] = OK_LINE "{\"context\": \"a\0\"}";
    qr_mc_task *t;
    int32_t n;
    assert_int_equal(qr_mc_parse(nul, sizeof nul - 1, &t, &n), QR_ERR_FORMAT);
    assert_non_null(strstr(qr_last_error(), "line 2: contains a NUL byte"));
}

static void test_parse_ok(void **state) {
    (void)state;
    const char *text =
        "\n{\"context\": \"Once upon a\", \"choices\": [\"time\", \"x\", \"y\"], "
        "\"answer\": 0, \"extra\": true}\r\n\n"
        "{\"answer\": 1, \"choices\": [\"\\u00e9t\\u00e9\", \"b\"], \"context\": \"\"}";
    qr_mc_task *t;
    int32_t n;
    assert_int_equal(qr_mc_parse(text, strlen(text), &t, &n), QR_OK);
    assert_int_equal(n, 2);
    assert_int_equal(t[0].line, 2);
    assert_string_equal(t[0].context, "Once upon a");
    assert_int_equal(t[0].n_choices, 3);
    assert_string_equal(t[0].choices[2], "y");
    assert_int_equal(t[0].answer, 0);
    assert_int_equal(t[1].line, 4);
    assert_string_equal(t[1].choices[0], "\xc3\xa9t\xc3\xa9");
    assert_int_equal(t[1].answer, 1);
    qr_mc_tasks_free(t, n);
}

/* Wilson score interval, worked by hand:
 * 18/20, z = 1.96: center = (0.9 + 3.8416/40) / (1 + 3.8416/20) = 0.99604 / 1.19208 = 0.835548;
 * half = 1.96 / 1.19208 * sqrt(0.09/20 + 3.8416/1600) = 1.644185 * 0.0830723 = 0.136586.
 * 0/10: lo = 0, hi = (z^2/n) / (1 + z^2/n) = 0.38416 / 1.38416 = 0.277540. */
static void test_wilson(void **state) {
    (void)state;
    double lo, hi;
    qr_wilson_interval(18, 20, 1.96, &lo, &hi);
    assert_true(fabs(lo - 0.698962) < 1e-5);
    assert_true(fabs(hi - 0.972134) < 1e-5);
    qr_wilson_interval(0, 10, 1.96, &lo, &hi);
    assert_true(fabs(lo) < 1e-12);
    assert_true(fabs(hi - 0.277540) < 1e-5);
    qr_wilson_interval(10, 10, 1.96, &lo, &hi);
    assert_true(fabs(lo - (1 - 0.277540)) < 1e-5);
    assert_true(fabs(hi - 1) < 1e-12);
    qr_wilson_interval(0, 0, 1.96, &lo, &hi);
    assert_true(lo == 0 && hi == 1);
}

/* ---- with stories260K ---- */

typedef struct fixture {
    qr_model *model;
    qr_context *ctx;
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    if (qr_model_load(QR_SHARED_DIR "/models/stories260K.gguf", NULL, &f->model)) return -1;
    qr_context_params cp = qr_context_default_params();
    cp.n_ctx = 256;
    cp.n_threads = 2;
    if (qr_context_create(f->model, &cp, &f->ctx)) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    qr_context_free(f->ctx);
    qr_model_free(f->model);
    free(f);
    return 0;
}

static int32_t tokenize(const qr_model *m, const char *s, qr_token *out, int32_t cap) {
    int32_t n;
    assert_int_equal(qr_tokenize(m, s, strlen(s), true, false, out, cap, &n), QR_OK);
    return n;
}

/* ln softmax(l)[tok] written out here: log(exp(l[tok]) / sum exp(l)), shifted by the max */
static double ref_log_softmax(const float *l, int n, int tok) {
    double mx = l[0];
    for (int i = 1; i < n; i++)
        mx = l[i] > mx ? l[i] : mx;
    double s = 0;
    for (int i = 0; i < n; i++)
        s += exp(l[i] - mx);
    return l[tok] - mx - log(s);
}

/* The reported log-likelihood of " girl" after the context is the sum, over the tokens that
 * tokenize(context + " girl") has beyond tokenize(context), of ln softmax computed here from
 * the logits of one plain decode of the whole text. */
static void test_score_is_sum_of_log_softmax(void **state) {
    fixture *f = *state;
    const char *context = "Once upon a time, there was a little";
    qr_token ct[64], ft[64];
    int32_t nc = tokenize(f->model, context, ct, 64);
    int32_t nf = tokenize(f->model, "Once upon a time, there was a little girl", ft, 64);
    int32_t common = 0;
    while (common < nc && ct[common] == ft[common])
        common++;
    assert_true(common >= 1 && nf > common);

    qr_kv_clear(f->ctx);
    qr_batch b;
    assert_int_equal(qr_batch_init(&b, nf), QR_OK);
    for (int32_t i = 0; i < nf; i++)
        qr_batch_add(&b, ft[i], i, 0, true);
    assert_int_equal(qr_decode(f->ctx, &b), QR_OK);
    double want = 0;
    for (int32_t i = common; i < nf; i++)
        want += ref_log_softmax(qr_get_logits(f->ctx, i - 1), qr_model_n_vocab(f->model), ft[i]);
    qr_batch_free(&b);

    double lp;
    int32_t n;
    assert_int_equal(qr_mc_score_choice(f->ctx, context, "girl", &lp, &n), QR_OK);
    assert_int_equal(n, nf - common);
    printf("# ln p(\"girl\" | context) = %.6f over %d token(s), recomputed %.6f\n", lp, n, want);
    /* the scorer decodes in pieces of another size: allow rounding of the forward pass */
    assert_true(fabs(lp - want) < 1e-3);
    assert_true(lp < 0);

    /* the separator: a choice that brings its own space is the same text */
    double lp2;
    int32_t n2;
    assert_int_equal(qr_mc_score_choice(f->ctx, context, " girl", &lp2, &n2), QR_OK);
    assert_int_equal(n2, n);
    assert_true(fabs(lp2 - lp) < 1e-9);
}

typedef struct captured {
    int n;
    double lp[8][4];
    int32_t nt[8][4];
} captured;

static void capture(int32_t index, const qr_mc_task *t, const double *lp, const int32_t *nt,
                    void *user) {
    captured *c = user;
    assert_int_equal(index, c->n);
    for (int32_t i = 0; i < t->n_choices; i++) {
        c->lp[index][i] = lp[i];
        c->nt[index][i] = nt[i];
    }
    c->n++;
}

/* qr_mc_evaluate reuses the cached context between choices; each value must equal scoring the
 * choice from an empty cache. */
static void test_evaluate_equals_single_scores(void **state) {
    fixture *f = *state;
    const char *text =
        "{\"context\": \"Once upon a time\", \"choices\": [\", there was\", \" dog\", \"x\"], "
        "\"answer\": 0}\n"
        "{\"context\": \"Lily went to the\", \"choices\": [\"park\", \"store\"], \"answer\": 1}\n";
    qr_mc_task *t;
    int32_t n;
    assert_int_equal(qr_mc_parse(text, strlen(text), &t, &n), QR_OK);
    captured c = {0};
    qr_mc_result r;
    assert_int_equal(qr_mc_evaluate(f->ctx, t, n, capture, &c, &r), QR_OK);
    assert_int_equal(c.n, 2);
    assert_int_equal(r.n_tasks, 2);
    int correct = 0, correct_norm = 0;
    for (int i = 0; i < n; i++) {
        int best = 0, best_norm = 0;
        for (int k = 0; k < t[i].n_choices; k++) {
            double lp;
            int32_t nt;
            assert_int_equal(qr_mc_score_choice(f->ctx, t[i].context, t[i].choices[k], &lp, &nt),
                             QR_OK);
            assert_int_equal(nt, c.nt[i][k]);
            assert_true(fabs(lp - c.lp[i][k]) < 1e-3);
            if (c.lp[i][k] > c.lp[i][best]) best = k;
            if (c.lp[i][k] / c.nt[i][k] > c.lp[i][best_norm] / c.nt[i][best_norm]) best_norm = k;
        }
        correct += best == t[i].answer;
        correct_norm += best_norm == t[i].answer;
    }
    assert_int_equal(r.n_correct, correct);
    assert_int_equal(r.n_correct_norm, correct_norm);
    assert_true(fabs(r.acc - correct / 2.0) < 1e-12);
    qr_mc_tasks_free(t, n);
}

static void test_score_errors(void **state) {
    fixture *f = *state;
    double lp;
    int32_t n;
    assert_int_equal(qr_mc_score_choice(f->ctx, "Once", "", &lp, &n), QR_ERR_INVALID_ARG);
    assert_non_null(strstr(qr_last_error(), "adds no token to its context"));

    qr_context *small;
    qr_context_params cp = qr_context_default_params();
    cp.n_ctx = 8;
    cp.n_threads = 1;
    assert_int_equal(qr_context_create(f->model, &cp, &small), QR_OK);
    assert_int_equal(
        qr_mc_score_choice(small, "Once upon a time, there was a little", "girl", &lp, &n),
        QR_ERR_CONTEXT_FULL);
    assert_non_null(strstr(qr_last_error(), "the model context holds 8"));

    /* through qr_mc_evaluate the error names the task's line */
    const char *text = "\n{\"context\": \"Once upon a time, there was a little\", \"choices\": "
                       "[\"girl\", \"boy\"], \"answer\": 0}\n";
    qr_mc_task *t;
    int32_t nt;
    assert_int_equal(qr_mc_parse(text, strlen(text), &t, &nt), QR_OK);
    qr_mc_result r;
    assert_int_equal(qr_mc_evaluate(small, t, nt, NULL, NULL, &r), QR_ERR_CONTEXT_FULL);
    assert_non_null(strstr(qr_last_error(), "task on line 2"));
    qr_mc_tasks_free(t, nt);
    qr_context_free(small);
}

static void test_stories_tasks(void **state) {
    fixture *f = *state;
    FILE *fp = fopen(QR_TEST_DIR "/eval/tasks_stories.jsonl", "rb");
    assert_non_null(fp);
    char buf[1 << 14];
    size_t len = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    qr_mc_task *t;
    int32_t n;
    assert_int_equal(qr_mc_parse(buf, len, &t, &n), QR_OK);
    assert_int_equal(n, 16);
    qr_mc_result r;
    assert_int_equal(qr_mc_evaluate(f->ctx, t, n, NULL, NULL, &r), QR_OK);
    printf("# stories260K on tasks_stories.jsonl: acc_norm %d/%d [%.3f, %.3f], acc %d/%d [%.3f, "
           "%.3f]\n",
           r.n_correct_norm, r.n_tasks, r.acc_norm_lo, r.acc_norm_hi, r.n_correct, r.n_tasks,
           r.acc_lo, r.acc_hi);
    /* each task pits a TinyStories cliche against an out-of-domain word: a working model
     * gets nearly all of them (chance is about 1/2) */
    assert_true(r.n_correct >= 13);
    assert_true(r.n_correct_norm >= 12);
    assert_true(r.acc_lo <= r.acc && r.acc <= r.acc_hi);
    qr_mc_tasks_free(t, n);
}

int main(void) {
    const struct CMUnitTest pure[] = {
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_parse_ok),
        cmocka_unit_test(test_wilson),
    };
    const struct CMUnitTest model[] = {
        cmocka_unit_test(test_score_is_sum_of_log_softmax),
        cmocka_unit_test(test_evaluate_equals_single_scores),
        cmocka_unit_test(test_score_errors),
        cmocka_unit_test(test_stories_tasks),
    };
    int rc = cmocka_run_group_tests_name("parsing", pure, NULL, NULL);
    return rc | cmocka_run_group_tests_name("stories260K", model, setup, teardown);
}
