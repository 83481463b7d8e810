/* test_fuzz_corpus_schema.c - replays every file of the JSON schema fuzz corpus
 * (tests/fuzz/corpus_json_schema) through the converter: each must convert or fail with a
 * message (under ASan in CI: no overruns), and a converted one must parse as GBNF. */
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

static int n_unparsed;

static int convert(const void *buf, size_t n) {
    char *g = NULL;
    if (qr_json_schema_to_grammar(buf, n, &g) != QR_OK) return qr_last_error()[0] && !g ? 0 : -1;
    qr_grammar *gr = NULL;
    /* llama.cpp's converter makes grammars its parser refuses from some schemas: left-recursive
     * ones (a $ref to itself as the first thing it matches) and repetitions above its limit
     * (maxLength 5000); Quarrel's parser refuses those too, with a message */
    if (qr_grammar_parse(g, NULL, &gr) != QR_OK) {
        if (!strstr(qr_last_error(), "left recursion") && !strstr(qr_last_error(), "repetition count")) {
            print_error("%s\n%s\n", qr_last_error(), g);
            free(g);
            return -1;
        }
        n_unparsed++;
    }
    qr_grammar_free(gr);
    free(g);
    return 1;
}

static void test_corpus(void **state) {
    (void)state;
    int n_ok = 0;
    char bad[256];
    const int n_files =
        qr_test_replay_corpus(QR_TEST_DIR "/fuzz/corpus_json_schema", convert, &n_ok, bad);
    if (n_files < 0) fail_msg("%s: unreadable, refused without a message, or a bad grammar", bad);
    print_message("%d corpus files, %d converted (%d refused by the GBNF parser), %d rejected with a message\n",
                  n_files, n_ok, n_unparsed, n_files - n_ok);
    assert_true(n_files >= 50);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_corpus)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
