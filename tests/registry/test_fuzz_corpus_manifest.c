/* test_fuzz_corpus_manifest.c - replays every file of the manifest fuzz corpus
 * (tests/fuzz/corpus_manifest) through the manifest parser: each must parse or fail with a
 * message (under ASan in CI: no overruns), and what parses has only valid digests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "registry/registry.h"
#include "test_util.h"

static int parse(const void *buf, size_t n) {
    qr_manifest m;
    qr_error_clear();
    if (qr_manifest_parse(buf, n, &m) != QR_OK) return qr_last_error()[0] ? 0 : -1;
    bool ok = qr_digest_valid(m.config.digest) && m.n_layers >= 1;
    for (int32_t i = 0; i < m.n_layers; i++)
        ok = ok && qr_digest_valid(m.layers[i].digest) && m.layers[i].size >= 0;
    qr_manifest_free(&m);
    return ok ? 1 : -1;
}

static void test_corpus(void **state) {
    (void)state;
    int n_ok = 0;
    char bad[256];
    const int n_files =
        qr_test_replay_corpus(QR_TEST_DIR "/fuzz/corpus_manifest", parse, &n_ok, bad);
    if (n_files < 0) fail_msg("%s: unreadable, refused without a message, or a bad digest", bad);
    print_message("%d corpus files, %d parsed, %d rejected with a message\n", n_files, n_ok,
                  n_files - n_ok);
    assert_true(n_files >= 10);
    assert_true(n_ok >= 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_corpus)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
