/* eval_internal.h - what perplexity.c and choice.c share: the log-softmax of one row of logits
 * computed as llama.cpp's perplexity tool does (tools/perplexity/perplexity.cpp, log_softmax):
 * the maximum in float, the sum of exp(l - max) in double (qr_sum_exp: within 2 ulp of expf). */
#ifndef QR_EVAL_INTERNAL_H
#define QR_EVAL_INTERNAL_H

#include "util/util.h"
#include "quarrel.h"

#include <math.h>

typedef struct qr_softmax_row {
    float max;
    int32_t argmax; /* first index of the maximum */
    double lse;     /* ln sum exp(l - max) */
} qr_softmax_row;

static inline qr_softmax_row qr_softmax_stats(const float *l, int32_t n) {
    qr_softmax_row r = {l[0], 0, 0};
    for (int32_t i = 1; i < n; i++)
        if (l[i] > r.max) {
            r.max = l[i];
            r.argmax = i;
        }
    r.lse = log(qr_sum_exp(l, n, r.max));
    return r;
}

/* ln p(i) = (l[i] - max) - lse */
static inline double qr_log_prob(const float *l, const qr_softmax_row *r, int32_t i) {
    return (double)(l[i] - r->max) - r->lse;
}

#endif
