/* test_generate.c - qr_generate on stories260K with greedy sampling: the text streamed equals
 * llama.cpp's greedy text (../shared/reference/stories260K.json, case 0, which has no near-tie in
 * its first 64 steps), stop strings split across tokens end it without being shown, and each
 * stop reason is reported. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "quarrel.h"

/* llama.cpp's greedy continuation of "Once upon a time" (stories260K.json case 0, greedy_text) */
static const char *REF =
    ", there was a little girl named Lily. She loved to play outside in the park. One day, "
    "she saw a big, red ball.";

typedef struct collected {
    char text[4096];
    size_t n;
    int n_tokens, stop_after;
} collected;

static bool collect(qr_token id, const char *text, size_t n, const float *logits,
                    const qr_token_logprobs *lp, void *user) {
    (void)lp;
    collected *c = user;
    if (id >= 0) {
        assert_non_null(logits);
        c->n_tokens++;
    }
    assert_true(c->n + n < sizeof c->text);
    memcpy(c->text + c->n, text, n);
    c->n += n;
    c->text[c->n] = '\0';
    return c->stop_after == 0 || c->n_tokens < c->stop_after;
}

typedef struct fixture {
    qr_model *model;
    qr_context *ctx;
    qr_sampler *sampler;
    qr_token prompt[16];
    int32_t n_prompt;
} fixture;

static void setup(fixture *f, int n_ctx) {
    if (qr_model_load(QR_SHARED_DIR "/models/stories260K.gguf", NULL, &f->model) != QR_OK)
        fail_msg("%s", qr_last_error());
    qr_context_params cp = qr_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_threads = 1;
    if (qr_context_create(f->model, &cp, &f->ctx) != QR_OK) fail_msg("%s", qr_last_error());
    qr_sampler_params sp = qr_sampler_default_params();
    sp.temp = 0;
    sp.seed = 1;
    assert_int_equal(qr_sampler_create(&sp, qr_model_n_vocab(f->model), &f->sampler), QR_OK);
    const char *p = "Once upon a time";
    assert_int_equal(qr_tokenize(f->model, p, strlen(p), true, false, f->prompt, 16, &f->n_prompt),
                     QR_OK);
}

static void teardown(fixture *f) {
    qr_sampler_free(f->sampler);
    qr_context_free(f->ctx);
    qr_model_free(f->model);
}

static void test_length_and_text(void **state) {
    (void)state;
    fixture f;
    setup(&f, 256);
    collected c = {0};
    qr_generate_params gp = {.n_predict = 30};
    qr_stop_reason why;
    assert_int_equal(qr_generate(f.ctx, f.sampler, f.prompt, f.n_prompt, &gp, collect, &c, &why),
                     QR_OK);
    assert_int_equal(why, QR_STOP_LENGTH);
    assert_int_equal(c.n_tokens, 30);
    assert_int_equal(strncmp(c.text, REF, c.n), 0);
    assert_true(c.n > 60);
    teardown(&f);
}

static void test_stop_string(void **state) {
    (void)state;
    fixture f;
    setup(&f, 256);
    collected c = {0};
    const char *stops[] = {"d Lily"}; /* spans the tokens of "named" and "Lily" */
    qr_generate_params gp = {.n_predict = 64, .stops = stops, .n_stops = 1};
    qr_stop_reason why;
    assert_int_equal(qr_generate(f.ctx, f.sampler, f.prompt, f.n_prompt, &gp, collect, &c, &why),
                     QR_OK);
    assert_int_equal(why, QR_STOP_STRING);
    assert_string_equal(c.text, ", there was a little girl name");
    teardown(&f);
}

static void test_callback_and_context(void **state) {
    (void)state;
    fixture f;
    setup(&f, 256);
    collected c = {.stop_after = 3};
    qr_generate_params gp = {.n_predict = 64};
    qr_stop_reason why;
    assert_int_equal(qr_generate(f.ctx, f.sampler, f.prompt, f.n_prompt, &gp, collect, &c, &why),
                     QR_OK);
    assert_int_equal(why, QR_STOP_CALLBACK);
    assert_int_equal(c.n_tokens, 3);
    teardown(&f);

    setup(&f, 12);
    collected d = {0};
    gp.n_predict = -1;
    assert_int_equal(qr_generate(f.ctx, f.sampler, f.prompt, f.n_prompt, &gp, collect, &d, &why),
                     QR_OK);
    assert_int_equal(why, QR_STOP_CONTEXT);
    assert_int_equal(d.n_tokens, 12 - f.n_prompt + 1);
    assert_int_equal(strncmp(d.text, REF, d.n), 0);
    /* the cache is full now: a further prompt is refused with a clear error */
    assert_int_equal(qr_generate(f.ctx, f.sampler, f.prompt, f.n_prompt, &gp, collect, &d, &why),
                     QR_ERR_CONTEXT_FULL);
    assert_non_null(strstr(qr_last_error(), "context has room for 0 more"));
    teardown(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_length_and_text),
        cmocka_unit_test(test_stop_string),
        cmocka_unit_test(test_callback_and_context),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
