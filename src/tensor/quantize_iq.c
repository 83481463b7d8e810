/* quantize_iq.c - f32 to iq4_nl, iq4_xs, tq1_0, tq2_0 and mxfp4, following ggml's quantizers
 * (ggml-quants.c) operation for operation so the bytes equal ggml_quantize_chunk's:
 *   iq4_nl / iq4_xs: quantize_iq4_nl, quantize_iq4_xs and quantize_row_iq4_nl_impl (ntry 7):
 *       per 32 values a weighted least-squares scale over the 16 non-linear levels, trying 15
 *       starting scales; iq4_xs then stores the 8 scales as 6-bit multiples of a super-block d.
 *       The weights are x^2 without importance, imatrix[j] * sqrt(sigma2 + x^2) with it.
 *   tq1_0 / tq2_0: quantize_row_tq1_0_ref, quantize_row_tq2_0_ref: d = absmax, q = round(x/d).
 *   mxfp4: quantize_row_mxfp4_ref: e = floor(log2(absmax)) - 2 + 127, nearest e2m1 level.
 * The ternary and mxfp4 quantizers ignore the importance, as ggml's do. Float expressions are
 * written in ggml's order (products that ggml sums are not fused: no FMA in this build). */
#include "tensor/blocks.h"
#include "tensor/iq_tables.h"
#include "tensor/quantize_fit.h"
#include "tensor/tensor.h"
#include "util/util.h"

#include <float.h>
#include <math.h>

/* sub-blocks whose largest magnitude is below this are all zero (ggml's GROUP_MAX_EPS) */
#define GROUP_MAX_EPS 1e-15f
/* ggml's ntry for quantize_iq4_nl / quantize_iq4_xs: the scales tried are (values[0] + t)/max
 * for t in -7..7 */
#define IQ4_NTRY 7

/* Index of the level of the sorted table val[0..n-1] nearest x (the upper one on ties), as
 * ggml's best_index_int8. */
static inline int best_index_int8(int n, const int8_t *val, float x) {
    if (x <= val[0]) return 0;
    if (x >= val[n - 1]) return n - 1;
    int ml = 0, mu = n - 1;
    while (mu - ml > 1) {
        const int mav = (ml + mu) / 2;
        if (x < val[mav])
            mu = mav;
        else
            ml = mav;
    }
    return x - val[mu - 1] < val[mu] - x ? mu - 1 : mu;
}

/* One super-block of n (32 for iq4_nl, 256 for iq4_xs) values in sub-blocks of 32 (ggml's
 * quantize_row_iq4_nl_impl with ntry 7). Writes *dh, q4 (n/2 bytes) and, when there are
 * several sub-blocks, the 6-bit sub-block scales (scales_h, scales_l). qw: the importance of
 * these n columns, or NULL. */
static void quantize_iq4_superblock(int n, const float *x, uint16_t *dh, uint8_t *q4,
                                    uint16_t *scales_h, uint8_t *scales_l, const float *qw) {
    const int8_t *values = qr_kvalues_iq4nl;
    uint8_t L[QK_K];
    float scales[QK_K / 32], weight[32];

    float sigma2 = 0;
    for (int j = 0; j < n; j++)
        sigma2 += x[j] * x[j];
    sigma2 *= 2.f / n;

    memset(q4, 0, (size_t)n / 2);
    *dh = qr_fp32_to_fp16(0.f);

    float max_scale = 0, amax_scale = 0;
    for (int ib = 0; ib < n / 32; ib++) {
        const float *xb = x + ib * 32;
        uint8_t *Lb = L + ib * 32;
        if (qw) {
            for (int j = 0; j < 32; j++) {
                const float s = sigma2 + xb[j] * xb[j];
                weight[j] = qw[ib * 32 + j] * sqrtf(s);
            }
        } else {
            for (int j = 0; j < 32; j++)
                weight[j] = xb[j] * xb[j];
        }
        float amax = 0, max = 0;
        for (int j = 0; j < 32; j++) {
            const float ax = fabsf(xb[j]);
            if (ax > amax) {
                amax = ax;
                max = xb[j];
            }
        }
        if (amax < GROUP_MAX_EPS) {
            scales[ib] = 0;
            continue;
        }
        float d = -max / values[0];
        float id = 1 / d;
        float sumqx = 0, sumq2 = 0;
        for (int j = 0; j < 32; j++) {
            const float al = id * xb[j];
            const int l = best_index_int8(16, values, al);
            Lb[j] = (uint8_t)l;
            const float q = values[l], w = weight[j];
            const float wq = w * q;
            const float wqx = wq * xb[j], wqq = wq * q;
            sumqx += wqx;
            sumq2 += wqq;
        }
        d = sumq2 > 0 ? sumqx / sumq2 : 0.f;
        float best = d * sumqx;
        for (int itry = -IQ4_NTRY; itry <= IQ4_NTRY; itry++) {
            id = (float)(itry + values[0]) / max;
            sumqx = sumq2 = 0;
            for (int j = 0; j < 32; j++) {
                const float al = id * xb[j];
                const int l = best_index_int8(16, values, al);
                const float q = values[l], w = weight[j];
                const float wq = w * q;
                const float wqx = wq * xb[j], wqq = wq * q;
                sumqx += wqx;
                sumq2 += wqq;
            }
            const float lhs = sumqx * sumqx, rhs = best * sumq2;
            if (sumq2 > 0 && lhs > rhs) {
                d = sumqx / sumq2;
                best = d * sumqx;
            }
        }
        scales[ib] = d;
        const float abs_d = fabsf(d);
        if (abs_d > amax_scale) {
            amax_scale = abs_d;
            max_scale = d;
        }
    }

    if (n > 32) {
        /* the sub-block scales as 6-bit multiples (-32..31) of d; values re-fit to them */
        *scales_h = 0;
        const float d = -max_scale / 32;
        *dh = qr_fp32_to_fp16(d);
        const float id = d ? 1 / d : 0.f;
        for (int ib = 0; ib < n / 32; ib++) {
            int l = nearest_int(id * scales[ib]);
            l = l < -32 ? -32 : l > 31 ? 31 : l;
            const float dl = d * (float)l;
            const float idl = dl ? 1 / dl : 0.f;
            uint8_t *Lb = L + ib * 32;
            const float *xb = x + ib * 32;
            for (int j = 0; j < 32; j++)
                Lb[j] = (uint8_t)best_index_int8(16, values, idl * xb[j]);
            l += 32;
            const uint8_t l_l = (uint8_t)(l & 0xf), l_h = (uint8_t)(l >> 4);
            if (ib % 2 == 0)
                scales_l[ib / 2] = l_l;
            else
                scales_l[ib / 2] |= (uint8_t)(l_l << 4);
            *scales_h |= (uint16_t)(l_h << 2 * (ib % 8));
        }
    } else {
        *dh = qr_fp32_to_fp16(scales[0]);
        const float id = scales[0] ? 1 / scales[0] : 0;
        for (int j = 0; j < 32; j++)
            L[j] = (uint8_t)best_index_int8(16, values, id * x[j]);
    }

    for (int i = 0; i < n / 32; i++)
        for (int j = 0; j < 16; j++)
            q4[16 * i + j] = (uint8_t)(L[32 * i + j] | L[32 * i + 16 + j] << 4);
}

void qr_quantize_iq4_nl(const float *src, void *dst, int64_t n_rows, int64_t n_per_row,
                        const float *imatrix) {
    block_iq4_nl *y = dst;
    for (int64_t r = 0; r < n_rows; r++) {
        for (int64_t ib = 0; ib < n_per_row / QK4_NL; ib++, y++) {
            const float *qw = imatrix ? imatrix + QK4_NL * ib : NULL;
            quantize_iq4_superblock(QK4_NL, src + r * n_per_row + QK4_NL * ib, &y->d, y->qs, NULL,
                                    NULL, qw);
        }
    }
}

void qr_quantize_iq4_xs(const float *src, void *dst, int64_t n_rows, int64_t n_per_row,
                        const float *imatrix) {
    block_iq4_xs *y = dst;
    for (int64_t r = 0; r < n_rows; r++) {
        for (int64_t ib = 0; ib < n_per_row / QK_K; ib++, y++) {
            const float *qw = imatrix ? imatrix + QK_K * ib : NULL;
            quantize_iq4_superblock(QK_K, src + r * n_per_row + QK_K * ib, &y->d, y->qs,
                                    &y->scales_h, y->scales_l, qw);
        }
    }
}

void qr_quant_iq4_nl(const float *src, void *dst, int64_t n) {
    qr_quantize_iq4_nl(src, dst, 1, n, NULL);
}

void qr_quant_iq4_xs(const float *src, void *dst, int64_t n) {
    qr_quantize_iq4_xs(src, dst, 1, n, NULL);
}

static float absmax(const float *x, int n) {
    float amax = 0.0f;
    for (int j = 0; j < n; j++)
        amax = fmaxf(amax, fabsf(x[j]));
    return amax;
}

/* round(x * id) + 1: -1, 0, 1 -> 0, 1, 2 (lroundf: halves away from zero, as ggml) */
static inline int ternary(float x, float id) {
    return (int)lroundf(x * id) + 1;
}

/* k base-3 digits, most significant first, as a fixed-point fraction of 3^5 rounded up (so
 * that the dequantizer's ((uint8_t)(q * 3^k) * 3) >> 8 reads digit k back) */
static inline uint8_t pack_trits(int q) {
    return (uint8_t)(((uint16_t)q * 256 + (243 - 1)) / 243);
}

void qr_quant_tq1_0(const float *src, void *dst, int64_t n) {
    block_tq1_0 *y = dst;
    const float *x = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = absmax(x, QK_K);
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = qr_fp32_to_fp16(d);
        const int n_qs = (int)sizeof y[i].qs, n_qh = (int)sizeof y[i].qh;
        /* five elements a byte: first 32 bytes at a time, then 16 */
        for (int j = 0; j < n_qs; j += (j < n_qs - n_qs % 32 ? 32 : 16)) {
            const int span = j < n_qs - n_qs % 32 ? 32 : 16;
            for (int m = 0; m < span; m++) {
                uint8_t q = 0;
                for (int k = 0; k < 5; k++)
                    q = (uint8_t)(q * 3 + ternary(x[m + k * span], id));
                y[i].qs[j + m] = pack_trits(q);
            }
            x += 5 * span;
        }
        /* four elements a byte, the first in the most significant trit of five */
        for (int j = 0; j < n_qh; j++) {
            uint8_t q = 0;
            for (int m = 0; m < 4; m++)
                q = (uint8_t)(q * 3 + ternary(x[j + m * n_qh], id));
            y[i].qh[j] = pack_trits(q * 3);
        }
        x += 4 * n_qh;
    }
}

void qr_quant_tq2_0(const float *src, void *dst, int64_t n) {
    block_tq2_0 *y = dst;
    const float *x = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = absmax(x, QK_K);
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = qr_fp32_to_fp16(d);
        for (int j = 0; j < (int)sizeof y[i].qs; j += 32) {
            for (int m = 0; m < 32; m++) {
                uint8_t q = 0;
                for (int k = 0; k < 4; k++)
                    q = (uint8_t)(q + ((ternary(x[m + k * 32], id) & 3) << (2 * k)));
                y[i].qs[j + m] = q;
            }
            x += 4 * 32;
        }
    }
}


/* the e2m1 level nearest x at scale d (the first on ties), as ggml's best_index_mxfp4 */
static int best_index_mxfp4(float x, float d) {
    int best = 0;
    float best_err = fabsf(qr_kvalues_mxfp4[0] * d - x);
    for (int i = 1; i < 16; i++) {
        const float err = fabsf(qr_kvalues_mxfp4[i] * d - x);
        if (err < best_err) {
            best = i;
            best_err = err;
        }
    }
    return best;
}

void qr_quant_mxfp4(const float *src, void *dst, int64_t n) {
    block_mxfp4 *y = dst;
    for (int64_t i = 0; i < n / QK_MXFP4; i++) {
        const float *x = src + i * QK_MXFP4;
        float amax = 0.0f;
        for (int j = 0; j < QK_MXFP4; j++)
            if (amax < fabsf(x[j])) amax = fabsf(x[j]);
        /* ggml converts the float straight to uint8_t; via int gives the same byte without
         * undefined behaviour for absmax below 2^-125. An infinite absmax gives 0, the byte
         * x86 makes of ggml's out-of-range conversion (0x80000000). */
        const uint8_t e =
            amax > 0.0f && amax <= FLT_MAX ? (uint8_t)(int)(floorf(log2f(amax)) - 2 + 127) : 0;
        const float d = qr_e8m0_to_fp32_half(e);
        y[i].e = e;
        for (int j = 0; j < QK_MXFP4 / 2; j++) {
            const int lo = best_index_mxfp4(x[j], d), hi = best_index_mxfp4(x[j + QK_MXFP4 / 2], d);
            y[i].qs[j] = (uint8_t)(lo | hi << 4);
        }
    }
}

/* The types whose ggml quantizer ignores the importance: all rows at once through from_float. */
void qr_quantize_tq1_0(const float *src, void *dst, int64_t n_rows, int64_t n_per_row,
                       const float *imatrix) {
    (void)imatrix;
    qr_quant_tq1_0(src, dst, n_rows * n_per_row);
}

void qr_quantize_tq2_0(const float *src, void *dst, int64_t n_rows, int64_t n_per_row,
                       const float *imatrix) {
    (void)imatrix;
    qr_quant_tq2_0(src, dst, n_rows * n_per_row);
}

void qr_quantize_mxfp4(const float *src, void *dst, int64_t n_rows, int64_t n_per_row,
                       const float *imatrix) {
    (void)imatrix;
    qr_quant_mxfp4(src, dst, n_rows * n_per_row);
}
