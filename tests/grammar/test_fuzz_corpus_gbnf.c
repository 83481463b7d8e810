/* test_fuzz_corpus_gbnf.c - replays every file of the GBNF fuzz corpus (tests/fuzz/corpus_gbnf)
 * through the parser and, for the grammars that parse, the matcher: each must parse or fail
 * with a message (under ASan in CI: no overruns, no unbounded recursion). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "grammar/grammar.h"
#include "quarrel.h"
#include "test_util.h"

static int parse(const void *buf, size_t n) {
    char *text = malloc(n + 1);
    if (!text) return -1;
    memcpy(text, buf, n);
    text[n] = '\0';
    qr_grammar *g;
    int r = 1;
    if (qr_grammar_parse(text, NULL, &g) == QR_OK) {
        (void)qr_grammar_accepts(g, text, n);
        (void)qr_grammar_accepts(g, "{\"a\": 1}", 8);
        qr_grammar_free(g);
    } else {
        r = qr_last_error()[0] ? 0 : -1;
    }
    free(text);
    return r;
}

static void test_corpus(void **state) {
    (void)state;
    int n_ok = 0;
    char bad[256];
    const int n_files = qr_test_replay_corpus(QR_TEST_DIR "/fuzz/corpus_gbnf", parse, &n_ok, bad);
    if (n_files < 0) fail_msg("%s: unreadable, or refused without a message", bad);
    print_message("%d corpus files, %d parsed, %d rejected with a message\n", n_files, n_ok,
                  n_files - n_ok);
    assert_true(n_files >= 10);
    assert_true(n_ok >= 5);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_corpus)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
