/* quantize_legacy.c - f32 to the 32-element legacy types q4_0, q4_1, q5_0, q5_1, following
 * ggml's quantizers step for step, so that the bytes equal llama-quantize's. Without an
 * importance matrix, the reference quantizers (quantize_row_q4_0_ref ... q5_1_ref):
 *   q4_0/q5_0: d = (signed value of largest magnitude) / -8 (-16); q = trunc(x/d + 8.5 (16.5))
 *   q4_1/q5_1: d = (max - min) / 15 (31), m = min;    q = trunc((x - min)/d + 0.5)
 * With one, weighted least-squares fits per block (at the end of the file).
 */
#include "tensor/blocks.h"
#include "tensor/quantize_fit.h"
#include "tensor/tensor.h"
#include "util/util.h"

#include <float.h>
#include <limits.h>
#include <math.h>

/* The element of largest magnitude, with its sign (the first one on ties). */
static float signed_absmax(const float *x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++) {
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    return max;
}

static void min_max(const float *x, int n, float *min, float *max) {
    *min = FLT_MAX;
    *max = -FLT_MAX;
    for (int j = 0; j < n; j++) {
        if (x[j] < *min) *min = x[j];
        if (x[j] > *max) *max = x[j];
    }
}

/* (int)v, except that NaN and values outside int's range (from NaN or infinite weights) give
 * INT_MIN, what ggml's conversion gives on x86, instead of undefined behaviour. */
static inline int trunc_int(float v) {
    return v > -2147483648.0f && v < 2147483648.0f ? (int)v : INT_MIN;
}

/* ggml truncates toward zero after adding the offset (+ 0.5 rounds); the result is clamped to
 * 4 or 5 bits except for q5_1, which ggml leaves unclamped (its range cannot exceed 31.5).
 * Products are kept in their own variables so no compiler fuses them with the offset. */
static inline uint8_t trunc_clamp(float v, int qmax) {
    const int q = trunc_int(v);
    return (uint8_t)(q < qmax ? q : qmax);
}

void qr_quant_q4_0(const float *src, void *dst, int64_t n) {
    block_q4_0 *y = dst;
    for (int64_t i = 0; i < n / QK4_0; i++) {
        const float *x = src + i * QK4_0;
        const float d = signed_absmax(x, QK4_0) / -8;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = qr_fp32_to_fp16(d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            const float v0 = x[j] * id, v1 = x[j + QK4_0 / 2] * id;
            const uint8_t lo = trunc_clamp(v0 + 8.5f, 15), hi = trunc_clamp(v1 + 8.5f, 15);
            y[i].qs[j] = (uint8_t)(lo | hi << 4);
        }
    }
}

void qr_quant_q4_1(const float *src, void *dst, int64_t n) {
    block_q4_1 *y = dst;
    for (int64_t i = 0; i < n / QK4_1; i++) {
        const float *x = src + i * QK4_1;
        float min, max;
        min_max(x, QK4_1, &min, &max);
        const float d = (max - min) / 15;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = qr_fp32_to_fp16(d);
        y[i].m = qr_fp32_to_fp16(min);
        for (int j = 0; j < QK4_1 / 2; j++) {
            const float v0 = (x[j] - min) * id, v1 = (x[j + QK4_1 / 2] - min) * id;
            const uint8_t lo = trunc_clamp(v0 + 0.5f, 15), hi = trunc_clamp(v1 + 0.5f, 15);
            y[i].qs[j] = (uint8_t)(lo | hi << 4);
        }
    }
}

/* 5-bit values: low nibbles in qs, fifth bits in qh (bit j for element j). */
static void pack_5bit(const uint8_t q[32], uint8_t qs[16], uint8_t qh[4]) {
    uint32_t h = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((q[j] & 15) | (q[j + 16] & 15) << 4);
        h |= (uint32_t)(q[j] >> 4 & 1) << j;
        h |= (uint32_t)(q[j + 16] >> 4 & 1) << (j + 16);
    }
    memcpy(qh, &h, 4);
}

void qr_quant_q5_0(const float *src, void *dst, int64_t n) {
    block_q5_0 *y = dst;
    for (int64_t i = 0; i < n / QK5_0; i++) {
        const float *x = src + i * QK5_0;
        const float d = signed_absmax(x, QK5_0) / -16;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = qr_fp32_to_fp16(d);
        uint8_t q[QK5_0];
        for (int j = 0; j < QK5_0; j++) {
            const float v = x[j] * id;
            q[j] = trunc_clamp(v + 16.5f, 31);
        }
        pack_5bit(q, y[i].qs, y[i].qh);
    }
}

void qr_quant_q5_1(const float *src, void *dst, int64_t n) {
    block_q5_1 *y = dst;
    for (int64_t i = 0; i < n / QK5_1; i++) {
        const float *x = src + i * QK5_1;
        float min, max;
        min_max(x, QK5_1, &min, &max);
        const float d = (max - min) / 31;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = qr_fp32_to_fp16(d);
        y[i].m = qr_fp32_to_fp16(min);
        uint8_t q[QK5_1];
        for (int j = 0; j < QK5_1; j++) {
            const float v = (x[j] - min) * id;
            q[j] = (uint8_t)trunc_int(v + 0.5f);
        }
        pack_5bit(q, y[i].qs, y[i].qh);
    }
}

/* ggml's quantize_q4_0 ... q5_1 with an importance (quantize_row_q4_0_impl etc.): per block of
 * 32 the weights imatrix[j] * sqrt(sigma2 + x[j]^2), sigma2 the mean square of the whole row;
 * q4_0/q5_0 take the weighted symmetric fit (make_qx_quants), q4_1/q5_1 the weighted
 * asymmetric one (make_qkx3_quants: rmin -0.9, 36 steps of 0.05). Without an importance ggml
 * uses the reference quantizers above, and so does Quarrel. */
static void legacy_weights(const float *x, const float *qw, float sigma2, float *w) {
    for (int j = 0; j < 32; j++) {
        const float sq = x[j] * x[j];
        const float s = sigma2 + sq;
        w[j] = qw[j] * sqrtf(s);
    }
}

static float row_sigma2(const float *x, int64_t n) {
    float sum = 0;
    for (int64_t j = 0; j < n; j++) {
        const float sq = x[j] * x[j];
        sum += sq;
    }
    return sum / (float)n;
}

/* The weighted fits of one block, for each type: fill y[ib] from x (32 values). */
static void block_q4_0_weighted(const float *x, const float *w, block_q4_0 *y) {
    int8_t L[QK4_0];
    y->d = qr_fp32_to_fp16(qr_fit_scale_sym(QK4_0, 8, x, L, w));
    for (int j = 0; j < QK4_0 / 2; j++)
        y->qs[j] = (uint8_t)(L[j] | L[j + QK4_0 / 2] << 4);
}

static void block_q5_0_weighted(const float *x, const float *w, block_q5_0 *y) {
    int8_t L[QK5_0];
    y->d = qr_fp32_to_fp16(qr_fit_scale_sym(QK5_0, 16, x, L, w));
    uint8_t q[QK5_0];
    for (int j = 0; j < QK5_0; j++)
        q[j] = (uint8_t)L[j];
    pack_5bit(q, y->qs, y->qh);
}

/* q4_1 and q5_1 (32 values, levels 0..nmax): the asymmetric fit, d and m as stored */
static void fit_block_min(const float *x, const float *w, int nmax, uint8_t L[32], uint16_t *d,
                          uint16_t *m) {
    uint8_t Laux[32];
    float neg_min;
    const float scale =
        qr_fit_scale_min(32, nmax, x, w, L, &neg_min, Laux, -0.9f, 0.05f, 36, false);
    *d = qr_fp32_to_fp16(scale);
    *m = qr_fp32_to_fp16(-neg_min);
}

static void block_q4_1_weighted(const float *x, const float *w, block_q4_1 *y) {
    uint8_t L[QK4_1];
    fit_block_min(x, w, 15, L, &y->d, &y->m);
    for (int j = 0; j < QK4_1 / 2; j++)
        y->qs[j] = (uint8_t)(L[j] | L[j + QK4_1 / 2] << 4);
}

static void block_q5_1_weighted(const float *x, const float *w, block_q5_1 *y) {
    uint8_t L[QK5_1];
    fit_block_min(x, w, 31, L, &y->d, &y->m);
    pack_5bit(L, y->qs, y->qh);
}

#define QUANTIZE_LEGACY_WITH_IMPORTANCE(type, block_size)                                          \
    void qr_quantize_##type(const float *src, void *dst, int64_t n_rows, int64_t n_per_row,        \
                            const float *imatrix) {                                                \
        if (!imatrix) {                                                                            \
            qr_quant_##type(src, dst, n_rows *n_per_row);                                          \
            return;                                                                                \
        }                                                                                          \
        block_##type *y = dst;                                                                     \
        float w[32];                                                                               \
        for (int64_t r = 0; r < n_rows; r++) {                                                     \
            const float *x = src + r * n_per_row;                                                  \
            const float sigma2 = row_sigma2(x, n_per_row);                                         \
            for (int64_t b = 0; b < n_per_row / (block_size); b++, y++) {                          \
                legacy_weights(x + b * (block_size), imatrix + b * (block_size), sigma2, w);       \
                block_##type##_weighted(x + b * (block_size), w, y);                               \
            }                                                                                      \
        }                                                                                          \
    }
QUANTIZE_LEGACY_WITH_IMPORTANCE(q4_0, QK4_0)
QUANTIZE_LEGACY_WITH_IMPORTANCE(q4_1, QK4_1)
QUANTIZE_LEGACY_WITH_IMPORTANCE(q5_0, QK5_0)
QUANTIZE_LEGACY_WITH_IMPORTANCE(q5_1, QK5_1)
