/* quantize_k.c - f32 to the k-quants q2_K, q3_K, q4_K, q5_K, q6_K, following ggml's quantizers
 * (ggml-quants.c) operation for operation, so the bytes equal llama.cpp's. Without an
 * importance matrix, the reference quantizers (quantize_row_q*_K_ref); with one, the weighted
 * ones llama-quantize --imatrix takes (quantize_row_q*_K_impl). Both go:
 *   1. each sub-block (16 or 32 values) gets a float scale (and min) from a small search that
 *      minimises a weighted squared (or absolute) error: qr_fit_scale_min (ggml's
 *      make_qkx2_quants / make_qkx3_quants), fit_scale_q3 (make_q3_quants), qr_fit_scale_sym
 *      (make_qx_quants, type 1); the weights are x^2, |x| or similar without importance,
 *      imatrix[j] * sqrt(sigma2 + x^2) with it (q6_K: imatrix[j] alone);
 *   2. the sub-block scales are themselves quantised against the super-block's d (and dmin):
 *      from their largest value without importance, by a weighted fit with it (qr_fit_scale_pos,
 *      ggml's make_qp_quants; q3_K: qr_fit_scale_sym);
 *   3. the values are re-quantised with the scales as stored, then bit-packed.
 * Float expressions are written in ggml's order; products that ggml sums are kept unfused.
 */
#include "tensor/blocks.h"
#include "tensor/quantize_fit.h"
#include "tensor/tensor.h"
#include "util/util.h"

#include <math.h>

/* sub-blocks whose largest magnitude is below this are all zero (ggml's GROUP_MAX_EPS) */
#define GROUP_MAX_EPS 1e-15f

/* Asymmetric fit x ~ scale * L + min over n values, L in [0, nmax], weights w (ggml's
 * make_qkx2_quants): start from the min/max grid, then try nstep+1 grid widths
 * (nmax + rmin + rdelta*is) and keep the weighted least-squares (scale, min) of the
 * best one. Returns scale; *neg_min = -min (>= 0). ggml's make_qkx3_quants with weights is the
 * same search: its "max <= min" test differs from "max == min" only where max < min, and
 * after min = min(min, 0) that cannot happen (with a NaN both tests are false). */
float qr_fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L, float *neg_min,
                       uint8_t *Laux, float rmin, float rdelta, int nstep, bool use_mad) {
    float min = x[0], max = x[0];
    float sum_w = w[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += w[i];
        const float wx = w[i] * x[i];
        sum_x += wx;
    }
    if (min > 0) min = 0;
    if (max == min) {
        for (int i = 0; i < n; i++)
            L[i] = 0;
        *neg_min = -min;
        return 0.0f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; i++) {
        const float t = iscale * (x[i] - min);
        L[i] = (uint8_t)clamp_int(nearest_int(t), 0, nmax);
        const float sl = scale * L[i];
        float diff = sl + min - x[i];
        if (use_mad) {
            diff = fabsf(diff);
        } else {
            diff = diff * diff;
        }
        const float wd = w[i] * diff;
        best_error += wd;
    }
    if (nstep < 1) {
        *neg_min = -min;
        return scale;
    }
    for (int is = 0; is <= nstep; is++) {
        const float step = rdelta * is;
        iscale = (rmin + step + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            const float t = iscale * (x[i] - min);
            const int l = clamp_int(nearest_int(t), 0, nmax);
            Laux[i] = (uint8_t)l;
            const float wl = w[i] * l;
            const float wll = wl * l;
            const float wlx = wl * x[i];
            sum_l += wl;
            sum_l2 += wll;
            sum_xl += wlx;
        }
        const float a = sum_w * sum_l2, b = sum_l * sum_l;
        const float D = a - b;
        if (D > 0) {
            const float s1 = sum_w * sum_xl, s2 = sum_x * sum_l;
            const float m1 = sum_l2 * sum_x, m2 = sum_l * sum_xl;
            float this_scale = (s1 - s2) / D;
            float this_min = (m1 - m2) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; i++) {
                const float sl = this_scale * Laux[i];
                float diff = sl + this_min - x[i];
                if (use_mad) {
                    diff = fabsf(diff);
                } else {
                    diff = diff * diff;
                }
                const float wd = w[i] * diff;
                cur_error += wd;
            }
            if (cur_error < best_error) {
                for (int i = 0; i < n; i++)
                    L[i] = Laux[i];
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *neg_min = -min;
    return scale;
}

/* Adds w x l to *sumlx and w l^2 to *suml2, with ggml's products and rounding: (w x) l and
 * (w l) l, each rounded to float before the sum. */
static inline void add_weighted(float w, float x, int l, float *sumlx, float *suml2) {
    const float wx = w * x;
    const float wxl = wx * l;
    const float wl = w * l;
    const float wll = wl * l;
    *sumlx += wxl;
    *suml2 += wll;
}

/* The largest-magnitude value, signed, and its magnitude. */
static float signed_absmax(const float *x, int n, float *amax_out) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        const float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    *amax_out = amax;
    return max;
}

/* Symmetric fit for q3_K (ggml's make_q3_quants with do_rmse): x ~ scale * l, l in
 * [-nmax, nmax-1], weights x^2, improved by coordinate moves of single values that raise
 * (sum w x l)^2 / (sum w l^2). L gets l + nmax. */
static float fit_scale_q3(int n, int nmax, const float *x, int8_t *L) {
    float amax;
    const float max = signed_absmax(x, n, &amax);
    if (amax < GROUP_MAX_EPS) {
        for (int i = 0; i < n; i++)
            L[i] = 0;
        return 0.0f;
    }
    const float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        const float t = iscale * x[i];
        const int l = clamp_int(nearest_int(t), -nmax, nmax - 1);
        L[i] = (int8_t)l;
        add_weighted(x[i] * x[i], x[i], l, &sumlx, &suml2);
    }
    for (int itry = 0; itry < 5; itry++) {
        int n_changed = 0;
        for (int i = 0; i < n; i++) {
            const float w = x[i] * x[i];
            const float wx = w * x[i];
            const float wxl = wx * L[i];
            float slx = sumlx - wxl;
            if (slx > 0) {
                const float wl = w * L[i];
                const float wll = wl * L[i];
                float sl2 = suml2 - wll;
                const float xs = x[i] * sl2;
                int new_l = clamp_int(nearest_int(xs / slx), -nmax, nmax - 1);
                if (new_l != L[i]) {
                    add_weighted(w, x[i], new_l, &slx, &sl2);
                    const float ss = slx * slx, lhs = ss * suml2;
                    const float tt = sumlx * sumlx, rhs = tt * sl2;
                    if (sl2 > 0 && lhs > rhs) {
                        L[i] = (int8_t)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed++;
                    }
                }
            }
        }
        if (!n_changed) break;
    }
    for (int i = 0; i < n; i++)
        L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* Symmetric fit (ggml's make_qx_quants, rmse_type 1): weights qw, or x^2 without; try 19 grid
 * widths nmax + 0.1*is and keep the one maximising (sum w x l)^2 / sum w l^2. L gets l + nmax,
 * l in [-nmax, nmax-1]. */
float qr_fit_scale_sym(int n, int nmax, const float *x, int8_t *L, const float *qw) {
    float amax;
    const float max = signed_absmax(x, n, &amax);
    if (amax < GROUP_MAX_EPS) {
        for (int i = 0; i < n; i++)
            L[i] = 0;
        return 0.0f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        const float t = iscale * x[i];
        const int l = clamp_int(nearest_int(t), -nmax, nmax - 1);
        L[i] = (int8_t)(l + nmax);
        add_weighted(qw ? qw[i] : x[i] * x[i], x[i], l, &sumlx, &suml2);
    }
    float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        const float step = 0.1f * is;
        iscale = -(nmax + step) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            const float t = iscale * x[i];
            const int l = clamp_int(nearest_int(t), -nmax, nmax - 1);
            add_weighted(qw ? qw[i] : x[i] * x[i], x[i], l, &sumlx, &suml2);
        }
        const float lhs = sumlx * sumlx, rhs = best * suml2;
        if (suml2 > 0 && lhs > rhs) {
            for (int i = 0; i < n; i++) {
                const float t = iscale * x[i];
                L[i] = (int8_t)(nmax + clamp_int(nearest_int(t), -nmax, nmax - 1));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* Fit of non-negative values (the sub-block scales or mins of q2_K, q4_K, q5_K; iq2_xxs's
 * magnitudes) by d * L, L in [0, nmax], with weights qw: ggml's make_qp_quants. Tries nine grid
 * widths nmax + 0.1*is by weighted squared error, then moves single values while
 * (sum w x l)^2 / sum w l^2 grows. L is bytes as in ggml: a negative level (from a negative x)
 * is stored modulo 256, and the later steps read it back that way. */
float qr_fit_scale_pos(int n, int nmax, const float *x, uint8_t *L, const float *qw) {
    float max = 0;
    for (int i = 0; i < n; i++)
        max = max > x[i] ? max : x[i];
    if (max < GROUP_MAX_EPS) {
        for (int i = 0; i < n; i++)
            L[i] = 0;
        return 0.0f;
    }
    float iscale = nmax / max;
    for (int i = 0; i < n; i++) {
        const float t = iscale * x[i];
        L[i] = (uint8_t)nearest_int(t);
    }
    const float scale = 1 / iscale;
    float best_mse = 0;
    for (int i = 0; i < n; i++) {
        const float sl = scale * L[i];
        const float diff = x[i] - sl;
        const float wd = qw[i] * diff;
        const float wdd = wd * diff;
        best_mse += wdd;
    }
    for (int is = -4; is <= 4; is++) {
        if (is == 0) continue;
        const float step = 0.1f * is;
        const float iscale_is = (step + nmax) / max;
        const float scale_is = 1 / iscale_is;
        float mse = 0;
        for (int i = 0; i < n; i++) {
            const float t = iscale_is * x[i];
            int l = nearest_int(t);
            if (l > nmax) l = nmax;
            const float sl = scale_is * l;
            const float diff = x[i] - sl;
            const float wd = qw[i] * diff;
            const float wdd = wd * diff;
            mse += wdd;
        }
        if (mse < best_mse) {
            best_mse = mse;
            iscale = iscale_is;
        }
    }
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        const float t = iscale * x[i];
        int l = nearest_int(t);
        if (l > nmax) l = nmax;
        L[i] = (uint8_t)l;
        add_weighted(qw[i], x[i], l, &sumlx, &suml2);
    }
    for (int itry = 0; itry < 5; itry++) {
        int n_changed = 0;
        for (int i = 0; i < n; i++) {
            const float w = qw[i];
            const float wx = w * x[i];
            const float wxl = wx * L[i];
            const float wl = w * L[i];
            const float wll = wl * L[i];
            float slx = sumlx - wxl, sl2 = suml2 - wll;
            if (slx > 0 && sl2 > 0) {
                const float xs = x[i] * sl2;
                int new_l = nearest_int(xs / slx);
                if (new_l > nmax) new_l = nmax;
                if (new_l != L[i]) {
                    add_weighted(w, x[i], new_l, &slx, &sl2);
                    const float ss = slx * slx, lhs = ss * suml2;
                    const float tt = sumlx * sumlx, rhs = tt * sl2;
                    if (lhs > rhs) {
                        L[i] = (uint8_t)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed++;
                    }
                }
            }
        }
        if (!n_changed) break;
    }
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* The weights of the importance paths: imatrix[j] * sqrt(sigma2 + x[j]^2), where sigma2 is a
 * multiple of the super-block's mean square (ggml's quantize_row_q*_K_impl). Also returns the
 * weights' sum. */
static float importance_weights(int n, const float *x, const float *qw, float sigma2, float *w) {
    for (int l = 0; l < n; l++) {
        const float sq = x[l] * x[l];
        const float s = sigma2 + sq;
        w[l] = qw[l] * sqrtf(s);
    }
    float sum = 0;
    for (int l = 0; l < n; l++)
        sum += w[l];
    return sum;
}

static float sum_squares(const float *x, int64_t n) {
    float sum = 0;
    for (int64_t j = 0; j < n; j++) {
        const float sq = x[j] * x[j];
        sum += sq;
    }
    return sum;
}

/* 2-bit packing shared by q2_K and q3_K: byte 32h + l holds elements 128h + 32s + l in bits
 * 2s..2s+1. */
static void pack_2bit(const uint8_t *L, uint8_t *qs) {
    for (int h = 0; h < QK_K / 128; h++)
        for (int l = 0; l < 32; l++) {
            const uint8_t *p = L + 128 * h + l;
            qs[32 * h + l] = (uint8_t)(p[0] | p[32] << 2 | p[64] << 4 | p[96] << 6);
        }
}

/* One q2_K super-block; qw: the importance of its 256 columns, or NULL for ggml's
 * quantize_row_q2_K_ref. */
static void quantize_q2_K_block(const float *x, block_q2_K *y, const float *qw) {
    uint8_t L[QK_K], Laux[16];
    float w[16], scales[QK_K / 16], mins[QK_K / 16];
    if (qw) {
        /* importance: weights from sigma2 = mean square; the scales and mins quantized to 4
         * bits by their own weighted fits (weights: each sub-block's total) */
        const float sigma2 = sum_squares(x, QK_K) / QK_K;
        float sw[QK_K / 16];
        uint8_t Ls[QK_K / 16], Lm[QK_K / 16];
        for (int j = 0; j < QK_K / 16; j++) {
            sw[j] = importance_weights(16, x + 16 * j, qw + 16 * j, sigma2, w);
            scales[j] = qr_fit_scale_min(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], Laux, -0.9f,
                                         0.05f, 36, false);
        }
        const float dm = qr_fit_scale_pos(QK_K / 16, 15, scales, Ls, sw);
        const float mm = qr_fit_scale_pos(QK_K / 16, 15, mins, Lm, sw);
        y->d = qr_fp32_to_fp16(dm);
        y->dmin = qr_fp32_to_fp16(mm);
        for (int j = 0; j < QK_K / 16; j++)
            y->scales[j] = (uint8_t)(Ls[j] | Lm[j] << 4);
    } else {
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < QK_K / 16; j++) {
            for (int l = 0; l < 16; l++)
                w[l] = fabsf(x[16 * j + l]);
            scales[j] = qr_fit_scale_min(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], Laux, -0.5f,
                                         0.1f, 15, true);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        /* 4-bit scales and mins against d = max_scale/15, dmin = max_min/15 */
        if (max_scale > 0) {
            const float iscale = 15.f / max_scale;
            for (int j = 0; j < QK_K / 16; j++) {
                const float t = iscale * scales[j];
                y->scales[j] = (uint8_t)nearest_int(t);
            }
            y->d = qr_fp32_to_fp16(max_scale / 15.f);
        } else {
            memset(y->scales, 0, sizeof y->scales);
            y->d = qr_fp32_to_fp16(0.0f);
        }
        if (max_min > 0) {
            const float iscale = 15.f / max_min;
            for (int j = 0; j < QK_K / 16; j++) {
                const float t = iscale * mins[j];
                y->scales[j] |= (uint8_t)(nearest_int(t) << 4);
            }
            y->dmin = qr_fp32_to_fp16(max_min / 15.f);
        } else {
            y->dmin = qr_fp32_to_fp16(0.0f);
        }
    }
    /* the values again, against the scales and mins as stored */
    const float d_all = qr_fp16_to_fp32(y->d), dmin_all = qr_fp16_to_fp32(y->dmin);
    for (int j = 0; j < QK_K / 16; j++) {
        const float d = d_all * (y->scales[j] & 0xF);
        if (d == 0.0f) continue;
        const float dm = dmin_all * (y->scales[j] >> 4);
        for (int l = 0; l < 16; l++) {
            const float t = (x[16 * j + l] + dm) / d;
            L[16 * j + l] = (uint8_t)clamp_int(nearest_int(t), 0, 3);
        }
    }
    pack_2bit(L, y->qs);
}

void qr_quant_q2_K(const float *src, void *dst, int64_t n) {
    block_q2_K *y = dst;
    for (int64_t i = 0; i < n / QK_K; i++)
        quantize_q2_K_block(src + i * QK_K, &y[i], NULL);
}

/* One q3_K super-block; qw as for q2_K (NULL: quantize_row_q3_K_ref). */
static void quantize_q3_K_block(const float *x, block_q3_K *y, const float *qw) {
    int8_t L[QK_K], Ls[QK_K / 16];
    float scales[QK_K / 16];
    float d_block;
    if (qw) {
        /* importance: weighted symmetric fits with sigma2 = 2 * mean square; the 6-bit scales
         * from a fit of the scales themselves, weighted by each sub-block's total weight */
        const float sigma2 = 2 * sum_squares(x, QK_K) / QK_K;
        float w[16], sw[QK_K / 16];
        for (int j = 0; j < QK_K / 16; j++) {
            sw[j] = importance_weights(16, x + 16 * j, qw + 16 * j, sigma2, w);
            scales[j] = qr_fit_scale_sym(16, 4, x + 16 * j, L + 16 * j, w);
        }
        d_block = qr_fit_scale_sym(QK_K / 16, 32, scales, Ls, sw);
    } else {
        float max_scale = 0, amax = 0;
        for (int j = 0; j < QK_K / 16; j++) {
            scales[j] = fit_scale_q3(16, 4, x + 16 * j, L + 16 * j);
            const float a = fabsf(scales[j]);
            if (a > amax) {
                amax = a;
                max_scale = scales[j];
            }
        }
        /* 6-bit signed scales (offset 32) against d = max_scale / -32 */
        if (max_scale != 0.0f) {
            const float iscale = -32.f / max_scale;
            for (int j = 0; j < QK_K / 16; j++) {
                const float t = iscale * scales[j];
                Ls[j] = (int8_t)(clamp_int((int8_t)nearest_int(t), -32, 31) + 32);
            }
            d_block = 1 / iscale;
        } else {
            memset(Ls, 0, sizeof Ls);
            d_block = 0.0f;
        }
    }
    /* 6-bit scales: low nibbles in scales[0..7], the top two bits in scales[8..11] */
    memset(y->scales, 0, sizeof y->scales);
    for (int j = 0; j < QK_K / 16; j++) {
        const int l = Ls[j];
        if (j < 8)
            y->scales[j] = (uint8_t)(l & 0xF);
        else
            y->scales[j - 8] |= (uint8_t)((l & 0xF) << 4);
        y->scales[j % 4 + 8] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
    }
    y->d = qr_fp32_to_fp16(d_block);
    const float d_all = qr_fp16_to_fp32(y->d);
    for (int j = 0; j < QK_K / 16; j++) {
        const int lo = j < 8 ? y->scales[j] & 0xF : y->scales[j - 8] >> 4;
        const int hi = (y->scales[8 + j % 4] >> (2 * (j / 4))) & 3;
        const float d = d_all * (float)((lo | hi << 4) - 32);
        if (d == 0.0f) continue;
        for (int l = 0; l < 16; l++) {
            const float t = x[16 * j + l] / d;
            L[16 * j + l] = (int8_t)(clamp_int(nearest_int(t), -4, 3) + 4);
        }
    }
    /* third bit of element j in hmask[j % 32], bit j / 32; the low two bits in qs */
    uint8_t low[QK_K];
    memset(y->hmask, 0, sizeof y->hmask);
    for (int j = 0; j < QK_K; j++) {
        int l = L[j];
        if (l > 3) {
            y->hmask[j % 32] |= (uint8_t)(1 << (j / 32));
            l -= 4;
        }
        low[j] = (uint8_t)l;
    }
    pack_2bit(low, y->qs);
}

void qr_quant_q3_K(const float *src, void *dst, int64_t n) {
    block_q3_K *y = dst;
    for (int64_t i = 0; i < n / QK_K; i++)
        quantize_q3_K_block(src + i * QK_K, &y[i], NULL);
}

/* q4_K and q5_K share everything but the value width (nmax 15 or 31), the search grid of the
 * reference path, and whether the importance path clamps the 6-bit levels (q5_K does; q4_K's
 * cannot exceed 63 but for a negative sub-block scale, which ggml packs unclamped).
 * qw: the importance of the 256 columns, or NULL for quantize_row_q4_K_ref / q5_K_ref. */
static void quant_q45_K_block(const float *x, int nmax, float rmin, int nstep, const float *qw,
                              bool clamp_levels, uint16_t *d_out, uint16_t *dmin_out,
                              uint8_t packed_scales[12], uint8_t L[QK_K]) {
    uint8_t Laux[32], Ls[QK_K / 32], Lm[QK_K / 32];
    float w[32], scales[QK_K / 32], mins[QK_K / 32];
    float d_block, m_block;
    if (qw) {
        /* importance: sigma2 = 2 * mean square; the scales and mins quantized to 6 bits by
         * their own weighted fits (weights: each sub-block's total) */
        const float sigma2 = 2 * sum_squares(x, QK_K) / QK_K;
        float sw[QK_K / 32];
        for (int j = 0; j < QK_K / 32; j++) {
            sw[j] = importance_weights(32, x + 32 * j, qw + 32 * j, sigma2, w);
            scales[j] = qr_fit_scale_min(32, nmax, x + 32 * j, w, L + 32 * j, &mins[j], Laux, -0.9f,
                                         0.05f, 36, false);
        }
        d_block = qr_fit_scale_pos(QK_K / 32, 63, scales, Ls, sw);
        m_block = qr_fit_scale_pos(QK_K / 32, 63, mins, Lm, sw);
        if (clamp_levels)
            for (int j = 0; j < QK_K / 32; j++) {
                if (Ls[j] > 63) Ls[j] = 63;
                if (Lm[j] > 63) Lm[j] = 63;
            }
    } else {
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < QK_K / 32; j++) {
            const float *xs = x + 32 * j;
            float sum_x2 = 0;
            for (int l = 0; l < 32; l++) {
                const float sq = xs[l] * xs[l];
                sum_x2 += sq;
            }
            const float av_x = sqrtf(sum_x2 / 32);
            for (int l = 0; l < 32; l++)
                w[l] = av_x + fabsf(xs[l]);
            scales[j] = qr_fit_scale_min(32, nmax, xs, w, L + 32 * j, &mins[j], Laux, rmin, 0.1f,
                                         nstep, false);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        /* 6-bit scales and mins against d = max_scale/63, dmin = max_min/63 */
        const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
        const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
        for (int j = 0; j < QK_K / 32; j++) {
            const float ts = inv_scale * scales[j], tm = inv_min * mins[j];
            Ls[j] = (uint8_t)nearest_int(ts);
            Lm[j] = (uint8_t)nearest_int(tm);
            if (Ls[j] > 63) Ls[j] = 63;
            if (Lm[j] > 63) Lm[j] = 63;
        }
        d_block = max_scale / 63.f;
        m_block = max_min / 63.f;
    }
    /* see blocks.h: scales 0..3 and mins 0..3 whole, 4..7 split into nibbles and top bits */
    for (int j = 0; j < QK_K / 32; j++) {
        const uint8_t ls = Ls[j], lm = Lm[j];
        if (j < 4) {
            packed_scales[j] = ls;
            packed_scales[j + 4] = lm;
        } else {
            packed_scales[j + 4] = (uint8_t)((ls & 0xF) | (lm & 0xF) << 4);
            packed_scales[j - 4] |= (uint8_t)((ls >> 4) << 6);
            packed_scales[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    *d_out = qr_fp32_to_fp16(d_block);
    *dmin_out = qr_fp32_to_fp16(m_block);
    const float d_all = qr_fp16_to_fp32(*d_out), dmin_all = qr_fp16_to_fp32(*dmin_out);
    for (int j = 0; j < QK_K / 32; j++) {
        int sc, m;
        if (j < 4) {
            sc = packed_scales[j] & 63;
            m = packed_scales[j + 4] & 63;
        } else {
            sc = (packed_scales[j + 4] & 0xF) | (packed_scales[j - 4] >> 6) << 4;
            m = (packed_scales[j + 4] >> 4) | (packed_scales[j] >> 6) << 4;
        }
        const float d = d_all * (float)sc;
        if (d == 0.0f) continue;
        const float dm = dmin_all * (float)m;
        for (int l = 0; l < 32; l++) {
            const float t = (x[32 * j + l] + dm) / d;
            L[32 * j + l] = (uint8_t)clamp_int(nearest_int(t), 0, nmax);
        }
    }
}

static void quantize_q4_K_block(const float *x, block_q4_K *y, const float *qw) {
    uint8_t L[QK_K];
    quant_q45_K_block(x, 15, -1.f, 20, qw, false, &y->d, &y->dmin, y->scales, L);
    for (int p = 0; p < QK_K / 64; p++)
        for (int l = 0; l < 32; l++)
            y->qs[32 * p + l] = (uint8_t)(L[64 * p + l] | L[64 * p + 32 + l] << 4);
}

void qr_quant_q4_K(const float *src, void *dst, int64_t n) {
    block_q4_K *y = dst;
    for (int64_t i = 0; i < n / QK_K; i++)
        quantize_q4_K_block(src + i * QK_K, &y[i], NULL);
}

static void quantize_q5_K_block(const float *x, block_q5_K *y, const float *qw) {
    uint8_t L[QK_K];
    quant_q45_K_block(x, 31, -0.5f, 15, qw, true, &y->d, &y->dmin, y->scales, L);
    memset(y->qh, 0, sizeof y->qh);
    for (int p = 0; p < QK_K / 64; p++)
        for (int l = 0; l < 32; l++) {
            const int lo = L[64 * p + l], hi = L[64 * p + 32 + l];
            y->qs[32 * p + l] = (uint8_t)((lo & 15) | (hi & 15) << 4);
            y->qh[l] |= (uint8_t)((lo >> 4) << (2 * p) | (hi >> 4) << (2 * p + 1));
        }
}

void qr_quant_q5_K(const float *src, void *dst, int64_t n) {
    block_q5_K *y = dst;
    for (int64_t i = 0; i < n / QK_K; i++)
        quantize_q5_K_block(src + i * QK_K, &y[i], NULL);
}

/* One q6_K super-block. ggml's importance path fits each sub-block with the importance itself
 * as the weights (no sigma2 term, unlike the other k-quants); without, the weights are x^2. */
static void quantize_q6_K_block(const float *x, block_q6_K *y, const float *qw) {
    int8_t L[QK_K];
    float scales[QK_K / 16];
    float max_scale = 0, max_abs_scale = 0;
    for (int j = 0; j < QK_K / 16; j++) {
        scales[j] = qr_fit_scale_sym(16, 32, x + 16 * j, L + 16 * j, qw ? qw + 16 * j : NULL);
        const float a = fabsf(scales[j]);
        if (a > max_abs_scale) {
            max_abs_scale = a;
            max_scale = scales[j];
        }
    }
    if (max_abs_scale < GROUP_MAX_EPS) {
        memset(y, 0, sizeof *y);
        return;
    }
    /* int8 scales against d = max_scale / -128 */
    const float iscale = -128.f / max_scale;
    y->d = qr_fp32_to_fp16(1 / iscale);
    for (int j = 0; j < QK_K / 16; j++) {
        const float t = iscale * scales[j];
        const int s = nearest_int(t);
        y->scales[j] = (int8_t)(s < 127 ? s : 127);
    }
    const float d_all = qr_fp16_to_fp32(y->d);
    for (int j = 0; j < QK_K / 16; j++) {
        const float d = d_all * (float)y->scales[j];
        if (d == 0.0f) continue;
        for (int l = 0; l < 16; l++) {
            const float t = x[16 * j + l] / d;
            L[16 * j + l] = (int8_t)(clamp_int(nearest_int(t), -32, 31) + 32);
        }
    }
    for (int h = 0; h < QK_K / 128; h++) {
        const int8_t *q = L + 128 * h;
        uint8_t *ql = y->ql + 64 * h, *qh = y->qh + 32 * h;
        for (int l = 0; l < 32; l++) {
            ql[l] = (uint8_t)((q[l] & 0xF) | (q[l + 64] & 0xF) << 4);
            ql[l + 32] = (uint8_t)((q[l + 32] & 0xF) | (q[l + 96] & 0xF) << 4);
            qh[l] = (uint8_t)((q[l] >> 4) | (q[l + 32] >> 4) << 2 | (q[l + 64] >> 4) << 4 |
                              (q[l + 96] >> 4) << 6);
        }
    }
}

void qr_quant_q6_K(const float *src, void *dst, int64_t n) {
    block_q6_K *y = dst;
    for (int64_t i = 0; i < n / QK_K; i++)
        quantize_q6_K_block(src + i * QK_K, &y[i], NULL);
}

/* ggml's quantize_q*_K: without an importance the reference quantizer over all rows; with one,
 * row by row, super-block b of every row weighted by imatrix[256b .. 256b + 255]. */
#define QUANTIZE_K_WITH_IMPORTANCE(type)                                                           \
    void qr_quantize_##type(const float *src, void *dst, int64_t n_rows, int64_t n_per_row,        \
                            const float *imatrix) {                                                \
        if (!imatrix) {                                                                            \
            qr_quant_##type(src, dst, n_rows *n_per_row);                                          \
            return;                                                                                \
        }                                                                                          \
        block_##type *y = dst;                                                                     \
        for (int64_t r = 0; r < n_rows; r++)                                                       \
            for (int64_t b = 0; b < n_per_row / QK_K; b++, y++)                                    \
                quantize_##type##_block(src + r * n_per_row + b * QK_K, y, imatrix + b * QK_K);    \
    }
QUANTIZE_K_WITH_IMPORTANCE(q2_K)
QUANTIZE_K_WITH_IMPORTANCE(q3_K)
QUANTIZE_K_WITH_IMPORTANCE(q4_K)
QUANTIZE_K_WITH_IMPORTANCE(q5_K)
QUANTIZE_K_WITH_IMPORTANCE(q6_K)
