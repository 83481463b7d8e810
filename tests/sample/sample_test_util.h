/* sample_test_util.h - helpers for the sampler tests: a chi-square goodness-of-fit check of
 * token counts against a distribution worked out in the test from the formulas. */
#ifndef SAMPLE_TEST_UTIL_H
#define SAMPLE_TEST_UTIL_H

#include <math.h>
#include <stdio.h>

/* Upper critical value of chi-square with df degrees of freedom at a tail of about 3e-7
 * (Wilson-Hilferty, z = 5): generous, so a correct sampler with a fixed seed cannot fail by
 * bad luck, yet a wrong distribution over thousands of draws lands far above it. */
static inline double chi2_critical(int df) {
    double z = 5.0, a = 2.0 / (9.0 * df);
    double c = 1.0 - a + z * sqrt(a);
    return df * c * c * c;
}

/* Pearson's statistic over the categories with expected > 0; *df gets their count - 1.
 * A draw in a category of expected probability 0 makes the statistic infinite. */
static inline double chi2_stat(const long *counts, const double *probs, int n, long total,
                               int *df) {
    double stat = 0.0;
    int cats = 0;
    *df = 1;
    for (int i = 0; i < n; i++) {
        if (probs[i] <= 0.0) {
            if (counts[i] > 0) return INFINITY;
            continue;
        }
        double e = probs[i] * (double)total;
        stat += (counts[i] - e) * (counts[i] - e) / e;
        cats++;
    }
    *df = cats > 1 ? cats - 1 : 1;
    return stat;
}

/* softmax of x[0..n) / t into p (double), entries with x = -inf get 0 */
static inline void softmax_t(const double *x, int n, double t, double *p) {
    double mx = -INFINITY, sum = 0.0;
    for (int i = 0; i < n; i++)
        if (x[i] > mx) mx = x[i];
    for (int i = 0; i < n; i++) {
        p[i] = x[i] == -INFINITY ? 0.0 : exp((x[i] - mx) / t);
        sum += p[i];
    }
    for (int i = 0; i < n; i++)
        p[i] /= sum;
}

#endif
