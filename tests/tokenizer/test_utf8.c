/* test_utf8.c - qr_utf8_stream_push / qr_utf8_stream_flush (quarrel.h) and the decoder the
 * tokenizers use; expected bytes worked out by hand (U+FFFD is EF BF BD; invalid input gives one
 * U+FFFD per maximal invalid subpart, as Python's errors="replace"). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "quarrel.h"
#include "tokenizer/utf8.h"

#include <string.h>

#define FFFD "\xef\xbf\xbd"

/* Push s, expect exactly want out. The buffer is sized 3 * (n + 3): the worst case. */
static void push(qr_utf8_stream *s, const char *in, size_t n, const char *want, size_t want_n) {
    char out[256];
    memset(out, 0x55, sizeof(out));
    size_t got = qr_utf8_stream_push(s, in, n, out);
    assert_int_equal(got, want_n);
    assert_memory_equal(out, want, want_n);
    assert_true(got <= 3 * (n + 3));
}

static void test_stream_split_chars(void **state) {
    (void)state;
    qr_utf8_stream s = {0};
    push(&s, "h\xc3", 2, "h", 1);
    assert_int_equal(s.n_pending, 1);
    push(&s, "\xa9!", 2, "\xc3\xa9!", 3);
    assert_int_equal(s.n_pending, 0);
    /* a 4-byte character in three pieces */
    push(&s, "\xf0\x9f", 2, "", 0);
    push(&s, "\xa6", 1, "", 0);
    push(&s, "\x99", 1, "\xf0\x9f\xa6\x99", 4);
    /* nothing pending: flush writes nothing */
    char out[16];
    assert_int_equal(qr_utf8_stream_flush(&s, out), 0);
    /* empty push */
    push(&s, "", 0, "", 0);
}

static void test_stream_invalid(void **state) {
    (void)state;
    qr_utf8_stream s = {0};
    push(&s, "\xff", 1, FFFD, 3);
    push(&s,
         "a\x80"
         "b",
         3, "a" FFFD "b", 5);
    /* overlong C0 AF: two invalid bytes */
    push(&s, "\xc0\xaf", 2, FFFD FFFD, 6);
    /* surrogate ED A0 80: ED cannot be followed by A0, so three U+FFFD */
    push(&s, "\xed\xa0\x80", 3, FFFD FFFD FFFD, 9);
    /* a truncated 3-byte prefix followed by ASCII: one U+FFFD for the prefix */
    push(&s, "\xe4\xbd", 2, "", 0);
    push(&s, "a", 1, FFFD "a", 4);
    assert_int_equal(s.n_pending, 0);
    /* flush of an unfinished character */
    push(&s, "x\xe4\xbd", 3, "x", 1);
    char out[16];
    assert_int_equal(qr_utf8_stream_flush(&s, out), 3);
    assert_memory_equal(out, FFFD, 3);
    assert_int_equal(s.n_pending, 0);
}

static void test_decode_like_llama_cpp(void **state) {
    (void)state;
    /* llama.cpp's unicode_cpts_from_utf8: a bad byte is U+FFFD and one byte long */
    const char *s = "a\xe4\xbd"
                    "b\xc3\xa9";
    size_t off = 0, n = strlen(s);
    assert_int_equal(qr_utf8_decode(s, n, &off), 'a');
    assert_int_equal(qr_utf8_decode(s, n, &off), 0xFFFD); /* E4 BD then 'b': bad */
    assert_int_equal(off, 2);
    assert_int_equal(qr_utf8_decode(s, n, &off), 0xFFFD); /* lone BD */
    assert_int_equal(qr_utf8_decode(s, n, &off), 'b');
    assert_int_equal(qr_utf8_decode(s, n, &off), 0xE9);
    assert_int_equal(off, n);
    char out[4];
    assert_int_equal(qr_utf8_encode(0x1F999, out), 4);
    assert_memory_equal(out, "\xf0\x9f\xa6\x99", 4);
    assert_int_equal(qr_utf8_encode(0x110000, out), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_split_chars),
        cmocka_unit_test(test_stream_invalid),
        cmocka_unit_test(test_decode_like_llama_cpp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
