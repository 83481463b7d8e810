/* gemm_scalar.c - the portable kernel set: every tile is one scalar reference vec_dot
 * (tensor/vec_dot.c) per output, and attention rows in plain loops. The SIMD sets are tested
 * against this one. */
#include "kernels/kernels.h"

#include <math.h>
#include "tensor/blocks.h"
#include "tensor/tensor.h"
#include "util/util.h"

#define SCALAR_GEMM(type_name)                                                                     \
    static void gemm_##type_name(int64_t n, const void *w, size_t w_stride, const void *act,       \
                                 size_t act_stride, float *y, int64_t y_stride, int64_t nr,        \
                                 int64_t nt) {                                                     \
        for (int64_t r = 0; r < nr; r++)                                                           \
            for (int64_t t = 0; t < nt; t++)                                                       \
                qr_vec_dot_##type_name(n, &y[t * y_stride + r],                                    \
                                       (const char *)w + (size_t)r * w_stride,                     \
                                       (const char *)act + (size_t)t * act_stride);                \
    }
SCALAR_GEMM(f32)
SCALAR_GEMM(f16)
SCALAR_GEMM(bf16)
SCALAR_GEMM(q4_0)
SCALAR_GEMM(q4_1)
SCALAR_GEMM(q5_0)
SCALAR_GEMM(q5_1)
SCALAR_GEMM(q8_0)
SCALAR_GEMM(q2_K)
SCALAR_GEMM(q3_K)
SCALAR_GEMM(q4_K)
SCALAR_GEMM(q5_K)
SCALAR_GEMM(q6_K)
SCALAR_GEMM(iq2_xxs)
SCALAR_GEMM(iq2_xs)
SCALAR_GEMM(iq2_s)
SCALAR_GEMM(iq3_xxs)
SCALAR_GEMM(iq3_s)
SCALAR_GEMM(iq1_s)
SCALAR_GEMM(iq1_m)
SCALAR_GEMM(iq4_nl)
SCALAR_GEMM(iq4_xs)
SCALAR_GEMM(tq1_0)
SCALAR_GEMM(tq2_0)
SCALAR_GEMM(mxfp4)

/* summed in double: with q rounded to f16 each product is exact, the sum nearly so */
static void dot_f16(int64_t n, const float *q, const uint16_t *k, int64_t stride, int64_t rows,
                    float *out) {
    for (int64_t r = 0; r < rows; r++) {
        double s = 0.0;
        for (int64_t i = 0; i < n; i++)
            s += (double)(q[i] * qr_fp16_to_fp32(k[r * stride + i]));
        out[r] = (float)s;
    }
}

static void axpy_f16(int64_t n, const float *a, const uint16_t *v, int64_t stride, int64_t rows,
                     float *out) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < n; i++)
            out[i] += a[r] * qr_fp16_to_fp32(v[r * stride + i]);
}

static void dot_f16_heads(int64_t n, int ng, const float *q, const uint16_t *k, int64_t stride,
                          int64_t rows, float *out, int64_t out_stride) {
    for (int h = 0; h < ng; h++)
        dot_f16(n, q + h * n, k, stride, rows, out + h * out_stride);
}

static void axpy_f16_heads(int64_t n, int ng, const float *a, int64_t a_stride,
                           const uint16_t *v, int64_t stride, int64_t rows, float *out) {
    for (int h = 0; h < ng; h++)
        axpy_f16(n, a + h * a_stride, v, stride, rows, out + h * n);
}

static void dot_f32(int64_t n, const float *q, const float *k, int64_t stride, int64_t rows,
                    float *out) {
    for (int64_t r = 0; r < rows; r++) {
        float s = 0.0f;
        for (int64_t i = 0; i < n; i++)
            s += q[i] * k[r * stride + i];
        out[r] = s;
    }
}

static void axpy_f32(int64_t n, const float *a, const float *v, int64_t stride, int64_t rows,
                     float *out) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < n; i++)
            out[i] += a[r] * v[r * stride + i];
}

static void to_f16(const float *x, uint16_t *y, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        y[i] = qr_fp32_to_fp16(x[i]);
}

static void round_f16(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        x[i] = qr_fp16_to_fp32(qr_fp32_to_fp16(x[i]));
}

static void softmax(float *x, int64_t n, float scale, float sink) {
    float max = sink;
    for (int64_t i = 0; i < n; i++) {
        x[i] *= scale;
        if (x[i] > max) max = x[i];
    }
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += (double)x[i];
    }
    if (sink != -INFINITY) sum += (double)expf(sink - max);
    const float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++)
        x[i] *= inv;
}

static void silu_mul(float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

/* the reference quantizer, then the float scales and block sums that follow the blocks */
static void quant_q8_0(const float *x, void *row, int64_t n) {
    qr_quant_q8_0(x, row, n);
    const block_q8_0 *b = row;
    float *d = (float *)((char *)row + qr_act_q8_0_scales_offset(n));
    int32_t *sum = (int32_t *)((char *)row + qr_act_q8_0_sums_offset(n));
    for (int64_t i = 0; i < n / QK8_0; i++) {
        d[i] = qr_fp16_to_fp32(b[i].d);
        sum[i] = 0;
        for (int j = 0; j < QK8_0; j++)
            sum[i] += b[i].qs[j];
    }
}

void qr_kernels_fill_scalar(qr_kernels *k) {
    *k = (qr_kernels){.name = "scalar"};
    k->gemm[QR_TYPE_F32] = gemm_f32;
    k->gemm[QR_TYPE_F16] = gemm_f16;
    k->gemm[QR_TYPE_BF16] = gemm_bf16;
    k->gemm[QR_TYPE_Q4_0] = gemm_q4_0;
    k->gemm[QR_TYPE_Q4_1] = gemm_q4_1;
    k->gemm[QR_TYPE_Q5_0] = gemm_q5_0;
    k->gemm[QR_TYPE_Q5_1] = gemm_q5_1;
    k->gemm[QR_TYPE_Q8_0] = gemm_q8_0;
    k->gemm[QR_TYPE_Q2_K] = gemm_q2_K;
    k->gemm[QR_TYPE_Q3_K] = gemm_q3_K;
    k->gemm[QR_TYPE_Q4_K] = gemm_q4_K;
    k->gemm[QR_TYPE_Q5_K] = gemm_q5_K;
    k->gemm[QR_TYPE_Q6_K] = gemm_q6_K;
    k->gemm[QR_TYPE_IQ2_XXS] = gemm_iq2_xxs;
    k->gemm[QR_TYPE_IQ2_XS] = gemm_iq2_xs;
    k->gemm[QR_TYPE_IQ2_S] = gemm_iq2_s;
    k->gemm[QR_TYPE_IQ3_XXS] = gemm_iq3_xxs;
    k->gemm[QR_TYPE_IQ3_S] = gemm_iq3_s;
    k->gemm[QR_TYPE_IQ1_S] = gemm_iq1_s;
    k->gemm[QR_TYPE_IQ1_M] = gemm_iq1_m;
    k->gemm[QR_TYPE_IQ4_NL] = gemm_iq4_nl;
    k->gemm[QR_TYPE_IQ4_XS] = gemm_iq4_xs;
    k->gemm[QR_TYPE_TQ1_0] = gemm_tq1_0;
    k->gemm[QR_TYPE_TQ2_0] = gemm_tq2_0;
    k->gemm[QR_TYPE_MXFP4] = gemm_mxfp4;
    k->dot_f16_heads = dot_f16_heads;
    k->axpy_f16_heads = axpy_f16_heads;
    k->dot_f32 = dot_f32;
    k->axpy_f32 = axpy_f32;
    k->to_f16 = to_f16;
    k->round_f16 = round_f16;
    k->softmax = softmax;
    k->silu_mul = silu_mul;
    k->quant_q8_0 = quant_q8_0;
    k->quant_q8_K = qr_quant_q8_K;
}
