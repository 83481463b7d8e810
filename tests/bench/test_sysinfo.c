/* test_sysinfo.c - peak RSS and the read-bandwidth probe behind `quarrel bench`: the peak grows
 * when memory is touched, the probe measures something and rejects bad arguments by name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "quarrel.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void test_peak_rss_grows(void **state) {
    (void)state;
    uint64_t before = qr_peak_rss_bytes();
    assert_true(before > 0);
    const size_t n = (size_t)64 << 20;
    char *p = malloc(n);
    assert_non_null(p);
    memset(p, 1, n); /* 64 MiB resident at once */
    uint64_t after = qr_peak_rss_bytes();
    volatile char sink = p[n / 2];
    (void)sink;
    free(p);
    assert_true(after >= before);
    assert_true(after >= (uint64_t)n); /* the peak holds at least the buffer */
}

static void test_bandwidth_measures(void **state) {
    (void)state;
    for (int t = 1; t <= 2; t++) {
        double gbps = -1;
        assert_int_equal(qr_measure_read_bandwidth((size_t)16 << 20, t, 2, &gbps), QR_OK);
        assert_true(gbps > 0 && isfinite(gbps)); /* a speed, not a bound on it */
    }
}

static void expect_error(qr_status got, qr_status want, const char *needle) {
    assert_int_equal(got, want);
    assert_non_null(strstr(qr_last_error(), needle));
}

static void test_bandwidth_bad_args(void **state) {
    (void)state;
    double gbps = 0;
    expect_error(qr_measure_read_bandwidth(1 << 20, 0, 1, &gbps), QR_ERR_INVALID_ARG,
                 "n_threads must be 1..1024, got 0");
    expect_error(qr_measure_read_bandwidth(1 << 20, 2000, 1, &gbps), QR_ERR_INVALID_ARG,
                 "n_threads must be 1..1024, got 2000");
    expect_error(qr_measure_read_bandwidth(1 << 20, 1, 0, &gbps), QR_ERR_INVALID_ARG,
                 "passes must be >= 1");
    expect_error(qr_measure_read_bandwidth(100, 2, 1, &gbps), QR_ERR_INVALID_ARG,
                 "a buffer of 100 bytes is too small for 2 threads");
    expect_error(qr_measure_read_bandwidth(1 << 20, 1, 1, NULL), QR_ERR_INVALID_ARG,
                 "no output pointer");
    assert_true(gbps == 0); /* untouched on error */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_peak_rss_grows),
        cmocka_unit_test(test_bandwidth_measures),
        cmocka_unit_test(test_bandwidth_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
