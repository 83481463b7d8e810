/* test_fuzz_corpus_state.c - replays every file of the state-file fuzz corpus
 * (tests/fuzz/corpus_state, made by tests/fuzz/mk_state_corpus.py for stories260K) through
 * qr_state_load_seq_memory as fuzz_state.c does: each is restored or refused with a message,
 * a refusal leaving the sequence untouched (under ASan in CI: no overruns). Exactly the three
 * well-formed files of the corpus are accepted ("one", "five" and the empty sequence). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "quarrel.h"
#include "test_util.h"

static qr_model *model;
static qr_context *ctx;

static int parse(const void *buf, size_t n) {
    /* a sequence of 3 tokens before each file: a refusal must leave it so */
    qr_kv_clear(ctx);
    qr_batch b;
    if (qr_batch_init(&b, 3)) return -1;
    for (int i = 0; i < 3; i++)
        qr_batch_add(&b, 1 + i, i, 0, i == 2);
    qr_status st = qr_decode(ctx, &b);
    qr_batch_free(&b);
    if (st) return -1;
    qr_token tokens[64];
    int32_t n_tokens = -1;
    if (qr_state_load_seq_memory(ctx, 0, buf, n, tokens, 64, &n_tokens) == QR_OK)
        return qr_kv_seq_pos_max(ctx, 0) == n_tokens - 1 ? 1 : -1;
    if (qr_kv_seq_pos_max(ctx, 0) != 2) return -1;
    print_message("  refused: %s\n", qr_last_error());
    return qr_last_error()[0] ? 0 : -1;
}

static void test_corpus(void **state) {
    (void)state;
    qr_context_params cp = qr_context_default_params();
    cp.n_ctx = 64;
    cp.n_threads = 1;
    assert_int_equal(qr_model_load(QR_SHARED_DIR "/models/stories260K.gguf", NULL, &model), QR_OK);
    assert_int_equal(qr_context_create(model, &cp, &ctx), QR_OK);
    int n_ok = 0;
    char bad[256];
    const int n_files = qr_test_replay_corpus(QR_TEST_DIR "/fuzz/corpus_state", parse, &n_ok, bad);
    if (n_files < 0)
        fail_msg("%s: unreadable, refused without a message or changed the sequence", bad);
    print_message("%d corpus files, %d restored, %d rejected with a message\n", n_files, n_ok,
                  n_files - n_ok);
    assert_true(n_files >= 15);
    assert_int_equal(n_ok, 3);
    qr_context_free(ctx);
    qr_model_free(model);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_corpus)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
