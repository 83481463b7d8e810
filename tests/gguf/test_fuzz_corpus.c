/* test_fuzz_corpus.c - replays every file of the GGUF fuzz corpus (tests/fuzz/corpus_gguf)
 * through the parser: each must parse or fail with a message (under ASan in CI: no overruns). */
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

static int parse(const void *buf, size_t n) {
    qr_gguf *g;
    if (qr_gguf_open_memory(buf, n, &g) == QR_OK) {
        qr_gguf_free(g);
        return 1;
    }
    return qr_last_error()[0] ? 0 : -1;
}

static void test_corpus(void **state) {
    (void)state;
    int n_ok = 0;
    char bad[256];
    const int n_files = qr_test_replay_corpus(QR_TEST_DIR "/fuzz/corpus_gguf", parse, &n_ok, bad);
    if (n_files < 0) fail_msg("%s: unreadable, or refused without a message", bad);
    print_message("%d corpus files, %d parsed, %d rejected with a message\n", n_files, n_ok,
                  n_files - n_ok);
    assert_true(n_files >= 10);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_corpus)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
