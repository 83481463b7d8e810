/* attn_quant.h - the row kernels of attention over a KV cache of any type (quantized, bf16,
 * f16, f32), for the flash-attention arithmetic of llama.cpp's CPU path
 * (ggml_compute_forward_flash_attn_ext_f16_one_chunk): the query converted to the K type's
 * dot partner (vec_dot_type), one dot product per K row, the V rows added into an f32
 * accumulator (to_float then mad_f32) or, for an f16 V, into an f16 one (mad_f16, each sum
 * rounded to f16 as ggml_vec_mad_f16 does). One set per instruction-set variant, the set
 * following qr_kernels_best()'s choice. Kept apart from the gemm kernels (gemm_x86.h). */
#ifndef QR_ATTN_QUANT_H
#define QR_ATTN_QUANT_H

#include "quarrel.h"

#include <stddef.h>
#include <stdint.h>

/* out[h * out_stride + r] = dot(K row r, query h) for r < rows, h < ng: K row r at k + r *
 * k_stride (n values of the K type), query h at q + h * q_stride (n values of its
 * vec_dot_type); each K row read once for the ng queries */
typedef void (*qr_attn_dot_fn)(int64_t n, int ng, const void *q, size_t q_stride, const void *k,
                               size_t k_stride, int64_t rows, float *out, int64_t out_stride);
typedef void (*qr_attn_to_float_fn)(const void *v, float *out, int64_t n);
typedef void (*qr_attn_from_float_fn)(const float *x, void *out, int64_t n);

typedef struct qr_attn_kernels {
    const char *name;                            /* "scalar", "avx2" */
    qr_attn_dot_fn dot[QR_TYPE_COUNT];           /* NULL: not a KV cache type */
    qr_attn_to_float_fn to_float[QR_TYPE_COUNT]; /* a V row to floats, as ggml's to_float */
    /* a row into a cache type or a query into a dot partner, as llama.cpp's x86 CPU backends
     * do (type_traits_cpu from_float): q8_0 and q8_1 by ggml's x86 quantize_row_q8_0/q8_1
     * (id = 127 / amax, rounding half to even), the other types by their reference quantizer */
    qr_attn_from_float_fn from_float[QR_TYPE_COUNT];
    /* rows V rows (row r at v + r * v_stride) added into ng heads' f32 accumulators, in row
     * order, as the online softmax does row by row: for row r and head h, first acc_h *= m if
     * m = ms[h * w_stride + r] is not 1 (a new maximum; ms NULL: none in these rows), then acc_h[i]
     * = fma(x[i], w[h * w_stride + r], acc_h[i]) with x = to_float(row r); acc_h at acc + h *
     * acc_stride. Exact: the same operations on every element whatever the set (the SIMD forms keep
     * a group of columns in registers across the rows) */
    void (*v_mad_rows[QR_TYPE_COUNT])(int64_t n, int ng, const void *v, size_t v_stride,
                                      int64_t rows, const float *w, const float *ms,
                                      int64_t w_stride, float *acc, int64_t acc_stride);
    /* y[i] += x[i] * v (one rounding: ggml's AVX2 vectors use FMA); y[i] *= v */
    void (*mad_f32)(int64_t n, float *y, const float *x, float v);
    void (*scale_f32)(int64_t n, float *y, float v);
    /* the same on an f16 accumulator: y[i] = f16(fma(x[i], v, y[i])), y[i] = f16(y[i] * v) */
    void (*mad_f16)(int64_t n, uint16_t *y, const uint16_t *x, float v);
    void (*scale_f16)(int64_t n, uint16_t *y, float v);
    void (*fwht)(float *x, int64_t n, int64_t len); /* qr_attn_fwht */
} qr_attn_kernels;

/* x = H x for each of the n / len chunks of len values (len a power of two): the orthonormal
 * Walsh-Hadamard rotation as ggml's CPU backend computes a product by llama.cpp's rotation
 * matrix (ggml_compute_forward_fwht): x scaled by 1 / sqrt(len) first, then the butterflies
 * (u + v, u - v) at distances 1, 2, 4, ... Exact in the same float operations, so any set. */
void qr_attn_fwht(float *x, int64_t n, int64_t len);
/* the same with the butterflies at distances 8 and more as AVX2 vectors (ggml's SIMD passes);
 * equal to qr_attn_fwht bit for bit; qr_attn_kernels_best()->fwht picks */
void qr_attn_fwht_avx2(float *x, int64_t n, int64_t len);

/* The set matching qr_kernels_best() (its AVX2 kernels for the avx512 set too). */
const qr_attn_kernels *qr_attn_kernels_best(void);
/* "scalar" or "avx2", or NULL if this CPU (or build) lacks it (for tests). */
const qr_attn_kernels *qr_attn_kernels_named(const char *name);

void qr_attn_kernels_fill_scalar(qr_attn_kernels *k);
/* overrides the scalar set's kernels it has SIMD forms of */
void qr_attn_kernels_fill_avx2(qr_attn_kernels *k);

#endif
