/* kernels.h - the table of CPU kernels, one set per instruction-set variant (scalar reference,
 * AVX2, AVX-512 with VNNI), picked once at run time from the CPU's features.
 *
 * A gemm kernel computes a tile of a matrix product: y[t * y_stride + r] = dot(weight row r,
 * activation row t) for r < nr, t < nt, where weight rows have the weight type and activation
 * rows its vec_dot_type (see tensor.h). SIMD kernels decode each weight block once and use it
 * for several tokens. */
#ifndef QR_KERNELS_H
#define QR_KERNELS_H

#include "quarrel.h"

#include <stddef.h>
#include <stdint.h>

typedef void (*qr_gemm_fn)(int64_t n, const void *w, size_t w_stride, const void *act,
                           size_t act_stride, float *y, int64_t y_stride, int64_t nr, int64_t nt);

typedef struct qr_kernels {
    const char *name;               /* "scalar", "avx2", "avx512" */
    qr_gemm_fn gemm[QR_TYPE_COUNT]; /* NULL: no kernel for that weight type */
    /* attention over `rows` rows of the KV cache, f16 (ggml's fp16 bits) or f32, row r at
     * k + r * stride: dot writes out[r] = sum_i q[i] * k[r][i]; axpy does out[i] += sum_r
     * a[r] * v[r][i], adding the rows in order. The f16 forms take ng query heads sharing the
     * rows (grouped-query attention), each row read once for all of them: q and out of head h
     * at q + h * n and out + h * out_stride; a of head h at a + h * a_stride, its sum into
     * out + h * n. */
    void (*dot_f16_heads)(int64_t n, int ng, const float *q, const uint16_t *k, int64_t stride,
                          int64_t rows, float *out, int64_t out_stride);
    void (*axpy_f16_heads)(int64_t n, int ng, const float *a, int64_t a_stride,
                           const uint16_t *v, int64_t stride, int64_t rows, float *out);
    void (*dot_f32)(int64_t n, const float *q, const float *k, int64_t stride, int64_t rows,
                    float *out);
    void (*axpy_f32)(int64_t n, const float *a, const float *v, int64_t stride, int64_t rows,
                     float *out);
    /* f16 rows, rounding to nearest even as qr_fp32_to_fp16: to_f16 converts n floats to f16
     * bits; round_f16 rounds n floats to f16 precision in place (what llama.cpp's f16 KV cache
     * does to q and to the attention weights before its products) */
    void (*to_f16)(const float *x, uint16_t *y, int64_t n);
    void (*round_f16)(float *x, int64_t n);
    /* elementwise: softmax replaces x[0..n) by softmax(scale * x) (s = x * scale rounded to
     * float, e = exp(s - max s), summed in double, times (float)(1 / sum)); sink: one more
     * logit (already scaled) that joins the max and the sum but has no output, as ggml's
     * soft_max with sinks (gpt-oss's attention); -INFINITY for none; silu_mul sets
     * g[i] = g[i] / (1 + exp(-g[i])) * u[i] (SwiGLU). The SIMD exp is within 2 ulp of libm's,
     * as ggml's vectorised one is. */
    void (*softmax)(float *x, int64_t n, float scale, float sink);
    void (*silu_mul)(float *g, const float *u, int64_t n);
    /* activation quantizers, bit-identical to the reference (tensor/quant_act.c):
     * quant_q8_0 writes a whole q8_0 activation row (blocks, then float scales and integer
     * block sums, see below); quant_q8_K a row of q8_K blocks */
    void (*quant_q8_0)(const float *x, void *row, int64_t n);
    void (*quant_q8_K)(const float *x, void *row, int64_t n);
    /* Weights repacked for this set (the model does it once, at load): pack converts n_rows
     * (a multiple of pack_rows) rows of n_cols weights of a type that has a gemm_packed kernel
     * into that kernel's layout, packed_row_bytes(type, n_cols) * n_rows bytes, where rows r0..
     * (r0 a multiple of pack_rows) start at r0 * packed_row_bytes; gemm_packed takes that as
     * its w_stride and nr a multiple of pack_rows. NULL: none. */
    int pack_rows;
    size_t (*packed_row_bytes)(int type, int64_t n_cols);
    void (*pack)(int type, const void *w, int64_t n_cols, int64_t n_rows, void *out);
    /* row `row` of a packed tensor w, dequantized exactly as the original row would be */
    void (*packed_row)(int type, const void *w, int64_t n_cols, int64_t row, float *out);
    qr_gemm_fn gemm_packed[QR_TYPE_COUNT];
} qr_kernels;

/* Activation rows for q8_0 (weights q4_0, q5_0, q8_0) carry, after their q8_0 blocks at this
 * 32-byte aligned offset, every block's scale again as a float, then every block's sum of
 * quants as an int32 (the quant_q8_0 kernels write them), so that kernels load the scales and
 * sums of 8 blocks at once. Scalar kernels read only the blocks. */
static inline size_t qr_act_q8_0_scales_offset(int64_t n) {
    return ((size_t)(n / 32) * 34 + 31) & ~(size_t)31;
}
static inline size_t qr_act_q8_0_sums_offset(int64_t n) {
    return qr_act_q8_0_scales_offset(n) + (size_t)(n / 32) * 4;
}
/* bytes of one such row, a multiple of 32 */
static inline size_t qr_act_q8_0_row_bytes(int64_t n) {
    return (qr_act_q8_0_sums_offset(n) + (size_t)(n / 32) * 4 + 31) & ~(size_t)31;
}

/* Activation rows for f16 and bf16 weights carry, after their half-precision values, at this
 * 64-byte aligned offset, the same values as floats (converted back from the halves, so
 * exactly equal), so that the SIMD kernels convert only the weights (one conversion per
 * multiply-add instead of two). Scalar kernels read only the halves. */
static inline size_t qr_act_half_f32_offset(int64_t n) {
    return ((size_t)n * 2 + 63) & ~(size_t)63;
}
/* bytes of one such row, a multiple of 64 */
static inline size_t qr_act_half_row_bytes(int64_t n) {
    return qr_act_half_f32_offset(n) + (((size_t)n * 4 + 63) & ~(size_t)63);
}

/* The fastest set this CPU runs, chosen on the first call. */
const qr_kernels *qr_kernels_best(void);
/* A named set ("scalar", "avx2", "avx512"), or NULL if this CPU (or this build) lacks it. */
const qr_kernels *qr_kernels_named(const char *name);

/* Filled by each variant's file; the avx files are compiled with their ISA flags. */
void qr_kernels_fill_scalar(qr_kernels *k);
void qr_kernels_fill_avx2(qr_kernels *k);
void qr_kernels_fill_avx512(qr_kernels *k);
/* On an AVX-512 set whose CPU also has AVX512-BF16: bf16 products through vdpbf16ps. */
void qr_kernels_use_avx512_bf16(qr_kernels *k);

#endif
