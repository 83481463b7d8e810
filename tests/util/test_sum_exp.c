/* test_sum_exp.c - qr_sum_exp against libm: each lane's exp within 2 ulp of expf over the
 * normaliser's range and beyond, underflow and -inf giving 0, and whole rows (every length
 * through the vector and scalar paths, a vocabulary-sized one with banned tokens) within 1e-6
 * of a double-precision sum. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "util/util.h"

/* float ulps between a and b (both finite, same sign) */
static double ulps(float a, float b) {
    int32_t ia, ib;
    memcpy(&ia, &a, 4);
    memcpy(&ib, &b, 4);
    return fabs((double)ia - (double)ib);
}

/* one lane's value: four equal lanes sum exactly to 4 e in double */
static float lane_exp(float v) {
    const float x[4] = {v, v, v, v};
    return (float)(qr_sum_exp(x, 4, 0.0f) / 4.0);
}

static void test_lanes(void **state) {
    (void)state;
    double worst = 0;
    for (double v = -87.0; v <= 88.0; v += 0.00731) {
        const float f = (float)v, got = lane_exp(f), want = expf(f);
        const double u = ulps(got, want);
        if (u > worst) worst = u;
        if (!(u <= 2.0)) fail_msg("exp(%.9g): %.9g, expf %.9g (%g ulp)", (double)f, (double)got, (double)want, u);
    }
    print_message("worst lane error %.0f ulp\n", worst);
    /* small arguments and exact points */
    assert_true(lane_exp(0.0f) == 1.0f);
    assert_true(ulps(lane_exp(-1e-7f), expf(-1e-7f)) <= 2.0);
    /* below the normal range and -inf: 0 */
    assert_true(lane_exp(-90.0f) == 0.0f);
    assert_true(lane_exp(-1e30f) == 0.0f);
    assert_true(lane_exp(-INFINITY) == 0.0f);
}

static void test_rows(void **state) {
    (void)state;
    enum { N = 49157 };
    float *x = malloc(N * sizeof *x);
    assert_non_null(x);
    uint32_t r = 12345;
    float mx = -INFINITY;
    for (int i = 0; i < N; i++) {
        r = r * 1664525u + 1013904223u;
        x[i] = (float)((double)(r >> 8) / 16777216.0 * 30.0 - 20.0);
        if (i % 97 == 0) x[i] = -INFINITY; /* banned tokens */
        if (x[i] > mx) mx = x[i];
    }
    const int64_t lens[] = {0, 1, 2, 3, 4, 5, 7, 8, 9, 31, 37, 1000, N};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        const int64_t n = lens[li];
        double want = 0.0;
        for (int64_t i = 0; i < n; i++)
            want += exp((double)x[i] - (double)mx);
        const double got = qr_sum_exp(x, n, mx);
        if (n == 0) {
            assert_true(got == 0.0);
            continue;
        }
        if (!(fabs(got - want) <= 1e-6 * want))
            fail_msg("n=%lld: %.12g, double reference %.12g", (long long)n, got, want);
    }
    free(x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lanes),
        cmocka_unit_test(test_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
