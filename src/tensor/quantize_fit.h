/* quantize_fit.h - what ggml's quantizers share: its rounding (nearest_int) and clamping, and the
 * per-sub-block scale searches of the k-quants, the importance-weighted legacy types and
 * iq2_xxs (defined in quantize_k.c). Internal to src/tensor. */
#ifndef QR_QUANTIZE_FIT_H
#define QR_QUANTIZE_FIT_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* Round half to even by the float-add trick, exactly as ggml's nearest_int: exact for
 * |x| < 2^22; beyond that (and for NaN) it wraps to some int, never an undefined conversion, and
 * the callers clamp the result. */
static inline int nearest_int(float x) {
    float v = x + 12582912.f;
    int32_t i;
    memcpy(&i, &v, 4);
    return (i & 0x007fffff) - 0x00400000;
}

static inline int clamp_int(int v, int lo, int hi) {
    return v < lo ? lo : v > hi ? hi : v;
}

/* Asymmetric fit x ~ scale * L + min, L in [0, nmax], with weights w (ggml's make_qkx2_quants,
 * and make_qkx3_quants given weights): returns scale, *neg_min = -min (>= 0). Laux: n bytes of
 * scratch. */
float qr_fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L, float *neg_min,
                       uint8_t *Laux, float rmin, float rdelta, int nstep, bool use_mad);

/* Symmetric fit x ~ scale * l, l in [-nmax, nmax-1], L = l + nmax (ggml's make_qx_quants with
 * rmse_type 1): weights qw, or x^2 where qw is NULL. */
float qr_fit_scale_sym(int n, int nmax, const float *x, int8_t *L, const float *qw);

/* Fit of non-negative x ~ scale * L, L in [0, nmax], with weights qw (ggml's make_qp_quants):
 * the k-quants' sub-block scales and mins, iq2_xxs's starting levels. */
float qr_fit_scale_pos(int n, int nmax, const float *x, uint8_t *L, const float *qw);

#endif
