/* test_stop.c - stop strings across token boundaries: held-back prefixes, false starts that
 * are released, the earliest of several stops, flush, and the bad-input errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "quarrel.h"

/* Feed the pieces in order; collect everything emitted (flushed at the end if no stop);
 * return whether a stop matched. */
static bool run(const char *const *stops, int n_stops, const char *const *pieces, int n, char *out,
                size_t cap, const char **emits) {
    qr_stop_matcher *m = NULL;
    assert_int_equal(qr_stop_matcher_create(stops, n_stops, &m), QR_OK);
    size_t len = 0;
    bool stopped = false;
    for (int i = 0; i < n; i++) {
        const char *e;
        size_t ne;
        bool r = qr_stop_matcher_push(m, pieces[i], strlen(pieces[i]), &e, &ne);
        assert_true(len + ne < cap);
        memcpy(out + len, e, ne);
        len += ne;
        if (emits) assert_true(ne == strlen(emits[i]) && memcmp(e, emits[i], ne) == 0);
        if (stopped) assert_true(r && ne == 0); /* nothing after a stop */
        stopped = stopped || r;
    }
    const char *e;
    size_t ne;
    qr_stop_matcher_flush(m, &e, &ne);
    if (stopped) assert_int_equal(ne, 0);
    memcpy(out + len, e, ne);
    len += ne;
    out[len] = '\0';
    qr_stop_matcher_free(m);
    return stopped;
}

static void test_split_stop(void **state) {
    (void)state;
    const char *stops[] = {"</s>"};
    const char *pieces[] = {"Hello <", "/", "s> more", "after"};
    const char *emits[] = {"Hello ", "", "", ""};
    char out[256];
    assert_true(run(stops, 1, pieces, 4, out, sizeof out, emits));
    assert_string_equal(out, "Hello ");
}

static void test_false_start_released(void **state) {
    (void)state;
    const char *stops[] = {"abc"};
    const char *pieces[] = {"xab", "d", "a", "b"};
    const char *emits[] = {"x", "abd", "", ""};
    char out[256];
    assert_false(run(stops, 1, pieces, 4, out, sizeof out, emits));
    assert_string_equal(out, "xabdab"); /* the held "ab" comes out at flush */
}

static void test_overlapping_prefix(void **state) {
    (void)state;
    const char *stops[] = {"aab"};
    const char *pieces[] = {"aa", "ab"}; /* "aaab": the stop starts at the second 'a' */
    const char *emits[] = {"", "a"};
    char out[256];
    assert_true(run(stops, 1, pieces, 2, out, sizeof out, emits));
    assert_string_equal(out, "a");
}

static void test_stop_inside_one_piece(void **state) {
    (void)state;
    const char *stops[] = {"STOP"};
    const char *pieces[] = {"one two STOP three"};
    char out[256];
    assert_true(run(stops, 1, pieces, 1, out, sizeof out, NULL));
    assert_string_equal(out, "one two ");
    const char *at_start[] = {"STOP", "x"};
    assert_true(run(stops, 1, at_start, 2, out, sizeof out, NULL));
    assert_string_equal(out, "");
}

static void test_several_stops(void **state) {
    (void)state;
    const char *stops[] = {"\n\nUser:", "###", "<|end|>"};
    const char *pieces[] = {"The answer", " is 4.", "\n", "\n", "Us", "er", ":", " hi"};
    char out[256];
    assert_true(run(stops, 3, pieces, 8, out, sizeof out, NULL));
    assert_string_equal(out, "The answer is 4.");
    /* the earliest complete match wins, whichever stop it is */
    const char *p2[] = {"a<|end|>b###"};
    assert_true(run(stops, 3, p2, 1, out, sizeof out, NULL));
    assert_string_equal(out, "a");
    const char *p3[] = {"a##", "# <|end|>"};
    assert_true(run(stops, 3, p3, 2, out, sizeof out, NULL));
    assert_string_equal(out, "a");
    /* a held prefix of one stop, broken, followed by another stop */
    const char *p4[] = {"x<|en", "d ###"};
    assert_true(run(stops, 3, p4, 2, out, sizeof out, NULL));
    assert_string_equal(out, "x<|end ");
}

static void test_no_stops_and_byte_pieces(void **state) {
    (void)state;
    const char *pieces[] = {"plain ", "text"};
    char out[256];
    assert_false(run(NULL, 0, pieces, 2, out, sizeof out, pieces));
    assert_string_equal(out, "plain text");
    /* one byte at a time */
    const char *stops[] = {"end"};
    const char *bytes[] = {"w", "e", "n", "t", " ", "e", "n", "d", "!"};
    const char *emits[] = {"w", "", "", "ent", " ", "", "", "", ""};
    assert_true(run(stops, 1, bytes, 9, out, sizeof out, emits));
    assert_string_equal(out, "went ");
    /* empty pushes are fine */
    qr_stop_matcher *m;
    assert_int_equal(qr_stop_matcher_create(stops, 1, &m), QR_OK);
    const char *e;
    size_t ne = 99;
    assert_false(qr_stop_matcher_push(m, "", 0, &e, &ne));
    assert_int_equal(ne, 0);
    qr_stop_matcher_flush(m, &e, &ne);
    assert_int_equal(ne, 0);
    qr_stop_matcher_free(m);
    qr_stop_matcher_free(NULL);
}

static void test_bad_input(void **state) {
    (void)state;
    qr_stop_matcher *m = (qr_stop_matcher *)&m;
    const char *empty[] = {"ok", ""};
    assert_int_equal(qr_stop_matcher_create(empty, 2, &m), QR_ERR_INVALID_ARG);
    assert_non_null(strstr(qr_last_error(), "stop string 1 is empty"));
    assert_null(m);
    const char *null_one[] = {NULL};
    assert_int_equal(qr_stop_matcher_create(null_one, 1, &m), QR_ERR_INVALID_ARG);
    assert_non_null(strstr(qr_last_error(), "stop string 0 is NULL"));
    assert_int_equal(qr_stop_matcher_create(NULL, 2, &m), QR_ERR_INVALID_ARG);
    assert_non_null(strstr(qr_last_error(), "stops is NULL but n_stops is 2"));
    assert_int_equal(qr_stop_matcher_create(empty, -1, &m), QR_ERR_INVALID_ARG);
    assert_non_null(strstr(qr_last_error(), "n_stops must be >= 0"));
    assert_int_equal(qr_stop_matcher_create(empty, 1, NULL), QR_ERR_INVALID_ARG);
    assert_non_null(strstr(qr_last_error(), "out is NULL"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_stop),         cmocka_unit_test(test_false_start_released),
        cmocka_unit_test(test_overlapping_prefix), cmocka_unit_test(test_stop_inside_one_piece),
        cmocka_unit_test(test_several_stops),      cmocka_unit_test(test_no_stops_and_byte_pieces),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
