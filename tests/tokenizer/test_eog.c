/* test_eog.c - which tokens end generation: for each shared test vocabulary, Quarrel's set
 * equals llama.cpp's (llama_vocab_is_eog over every id; tests/tokenizer/data/eog_sets.txt, made
 * by tests/tokenizer/mk_eog_sets.py): <|eot_id|>, <|im_end|>, <|end|>, <|endoftext|>, </s> and
 * the rest found by their text as llama.cpp finds them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tokenizer/vocab.h"

static void test_eog_sets(void **state) {
    (void)state;
    FILE *f = fopen(QR_TEST_DIR "/tokenizer/data/eog_sets.txt", "r");
    assert_non_null(f);
    char line[4096];
    int n_vocabs = 0;
    while (fgets(line, sizeof line, f)) {
        char *save = NULL, *name = strtok_r(line, " \n", &save);
        if (!name) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/tokenizer-vectors/ggml-vocab-%s.gguf", QR_SHARED_DIR, name);
        qr_gguf *g;
        assert_int_equal(qr_gguf_open(path, &g), QR_OK);
        qr_vocab *v;
        if (qr_vocab_load(g, &v) != QR_OK) fail_msg("%s: %s", name, qr_last_error());
        const int32_t n = qr_vocab_n_tokens(v);
        bool *want = calloc((size_t)n, sizeof *want);
        int n_want = 0;
        for (char *tok; (tok = strtok_r(NULL, " \n", &save));) {
            const long id = strtol(tok, NULL, 10);
            assert_true(id >= 0 && id < n);
            want[id] = true;
            n_want++;
        }
        assert_true(n_want > 0);
        for (int32_t t = 0; t < n; t++)
            if (qr_vocab_is_eog(v, t) != want[t])
                fail_msg("%s: token %d '%s' is%s end-of-generation for Quarrel, %s for llama.cpp",
                         name, t, qr_vocab_token_text(v, t), want[t] ? " not" : "",
                         want[t] ? "is" : "is not");
        free(want);
        qr_vocab_free(v);
        qr_gguf_free(g);
        n_vocabs++;
    }
    fclose(f);
    assert_true(n_vocabs >= 7);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_eog_sets)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
