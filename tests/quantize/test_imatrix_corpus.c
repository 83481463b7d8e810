/* test_imatrix_corpus.c - replays every file of the importance matrix fuzz corpus
 * (tests/fuzz/corpus_imatrix) through qr_imatrix_load_memory: each must load or fail with a
 * message (under ASan in CI: no overruns). */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "quarrel.h"

static void test_corpus(void **state) {
    (void)state;
    const char *dir = QR_TEST_DIR "/fuzz/corpus_imatrix";
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n_files = 0, n_ok = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        /* an exact-size copy, so a read past the end is caught by ASan */
        unsigned char *buf = malloc(n ? (size_t)n : 1);
        assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
        fclose(f);
        qr_imatrix *im;
        if (qr_imatrix_load_memory(buf, (size_t)n, &im) == QR_OK) {
            n_ok++;
            qr_imatrix_free(im);
        } else if (!qr_last_error()[0]) {
            fail_msg("%s: failed without a message", e->d_name);
        }
        free(buf);
        n_files++;
    }
    closedir(d);
    print_message("%d corpus files, %d parsed, %d rejected with a message\n", n_files, n_ok,
                  n_files - n_ok);
    assert_true(n_files >= 10);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_corpus)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
