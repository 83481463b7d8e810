/* quantize_fit.h - the per-sub-block scale searches of ggml's quantizers, shared by the k-quants
 * and the importance-weighted legacy types (defined in quantize_k.c). Internal to src/tensor. */
#ifndef QR_QUANTIZE_FIT_H
#define QR_QUANTIZE_FIT_H

#include <stdbool.h>
#include <stdint.h>

/* Asymmetric fit x ~ scale * L + min, L in [0, nmax], with weights w (ggml's make_qkx2_quants,
 * and make_qkx3_quants given weights): returns scale, *neg_min = -min (>= 0). Laux: n bytes of
 * scratch. */
float qr_fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L, float *neg_min,
                       uint8_t *Laux, float rmin, float rdelta, int nstep, bool use_mad);

/* Symmetric fit x ~ scale * l, l in [-nmax, nmax-1], L = l + nmax (ggml's make_qx_quants with
 * rmse_type 1): weights qw, or x^2 where qw is NULL. */
float qr_fit_scale_sym(int n, int nmax, const float *x, int8_t *L, const float *qw);

#endif
