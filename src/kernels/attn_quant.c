/* attn_quant.c - the scalar reference set of the attention row kernels (attn_quant.h), built
 * on the types' reference dot products and dequantisations (tensor/), and the choice of set. */
#include "kernels/attn_quant.h"
#include "kernels/kernels.h"
#include "tensor/blocks.h"
#include "tensor/tensor.h"
#include "util/util.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

/* the KV cache types' dot products through their reference vec_dot */
#define SCALAR_DOT(type_name, fn)                                                                  \
    static void dot_##type_name(int64_t n, int ng, const void *q, size_t q_stride, const void *k,  \
                                size_t k_stride, int64_t rows, float *out, int64_t out_stride) {   \
        for (int64_t r = 0; r < rows; r++)                                                         \
            for (int h = 0; h < ng; h++)                                                           \
                fn(n, out + h * out_stride + r, (const char *)k + r * k_stride,                    \
                   (const char *)q + h * q_stride);                                                \
    }
SCALAR_DOT(f32, qr_vec_dot_f32)
SCALAR_DOT(f16, qr_vec_dot_f16)
SCALAR_DOT(bf16, qr_vec_dot_bf16)
SCALAR_DOT(q8_0, qr_vec_dot_q8_0)
SCALAR_DOT(q4_0, qr_vec_dot_q4_0)
SCALAR_DOT(q4_1, qr_vec_dot_q4_1)
SCALAR_DOT(q5_0, qr_vec_dot_q5_0)
SCALAR_DOT(q5_1, qr_vec_dot_q5_1)
SCALAR_DOT(iq4_nl, qr_vec_dot_iq4_nl)

static void mad_f32(int64_t n, float *y, const float *x, float v) {
    for (int64_t i = 0; i < n; i++)
        y[i] = fmaf(x[i], v, y[i]);
}
static void scale_f32(int64_t n, float *y, float v) {
    for (int64_t i = 0; i < n; i++)
        y[i] *= v;
}
static void mad_f16(int64_t n, uint16_t *y, const uint16_t *x, float v) {
    for (int64_t i = 0; i < n; i++)
        y[i] = qr_fp32_to_fp16(fmaf(qr_fp16_to_fp32(x[i]), v, qr_fp16_to_fp32(y[i])));
}
static void scale_f16(int64_t n, uint16_t *y, float v) {
    for (int64_t i = 0; i < n; i++)
        y[i] = qr_fp32_to_fp16(qr_fp16_to_fp32(y[i]) * v);
}
/* ggml's x86 quantize_row_q8_0 and quantize_row_q8_1 (ggml-cpu/arch/x86/quants.c, the AVX and
 * AVX2 forms every x86 llama.cpp backend but the generic one runs): the reference rule
 * (tensor/quant_act.c) except that the inverse scale is 127 / amax, not 1 / (amax / 127), and
 * x * id rounds half to even (_mm256_round_ps); q8_1's s = f16(d * sum of the quants). Scalar:
 * a few values per token and head. */
static void quant_q8_x86(const float *x, int8_t *qs, uint16_t *d_out, uint16_t *s_out) {
    float amax = 0.0f;
    for (int j = 0; j < QK8_0; j++)
        amax = fmaxf(amax, fabsf(x[j]));
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    int sum = 0;
    for (int j = 0; j < QK8_0; j++) {
        qs[j] = (int8_t)nearbyintf(x[j] * id);
        sum += qs[j];
    }
    *d_out = qr_fp32_to_fp16(d);
    if (s_out) *s_out = qr_fp32_to_fp16(d * (float)sum);
}
static void from_float_q8_0(const float *x, void *out, int64_t n) {
    block_q8_0 *y = out;
    for (int64_t i = 0; i < n / QK8_0; i++)
        quant_q8_x86(x + i * QK8_0, y[i].qs, &y[i].d, NULL);
}
static void from_float_q8_1(const float *x, void *out, int64_t n) {
    block_q8_1 *y = out;
    for (int64_t i = 0; i < n / QK8_1; i++)
        quant_q8_x86(x + i * QK8_1, y[i].qs, &y[i].d, &y[i].s);
}

static void copy_f32(const void *v, float *out, int64_t n) {
    memcpy(out, v, (size_t)n * sizeof(float));
}

/* v_mad_rows through the type's to_float, 256 values of a row at a time (whole blocks) */
static void v_mad_rows_generic(int type, int64_t n, int ng, const void *v, size_t v_stride,
                               int64_t rows, const float *w, const float *ms, int64_t w_stride,
                               float *acc, int64_t acc_stride) {
    const qr_type_traits *tt = qr_type_traits_get(type);
    float x[256];
    for (int64_t r = 0; r < rows; r++) {
        const char *row = (const char *)v + r * (int64_t)v_stride;
        for (int h = 0; h < ng && ms; h++) {
            const float m = ms[h * w_stride + r];
            if (m != 1.0f) scale_f32(n, acc + h * acc_stride, m);
        }
        for (int64_t i0 = 0; i0 < n; i0 += 256) {
            const int64_t len = n - i0 < 256 ? n - i0 : 256;
            tt->to_float(row + i0 / tt->block_size * (int64_t)tt->block_bytes, x, len);
            for (int h = 0; h < ng; h++)
                mad_f32(len, acc + h * acc_stride + i0, x, w[h * w_stride + r]);
        }
    }
}
#define SCALAR_V_MAD(type_name, type)                                                              \
    static void v_mad_rows_##type_name(int64_t n, int ng, const void *v, size_t v_stride,          \
                                       int64_t rows, const float *w, const float *ms,              \
                                       int64_t w_stride, float *acc, int64_t acc_stride) {         \
        v_mad_rows_generic(type, n, ng, v, v_stride, rows, w, ms, w_stride, acc, acc_stride);      \
    }
SCALAR_V_MAD(f32, QR_TYPE_F32)
SCALAR_V_MAD(f16, QR_TYPE_F16)
SCALAR_V_MAD(bf16, QR_TYPE_BF16)
SCALAR_V_MAD(q8_0, QR_TYPE_Q8_0)
SCALAR_V_MAD(q4_0, QR_TYPE_Q4_0)
SCALAR_V_MAD(q4_1, QR_TYPE_Q4_1)
SCALAR_V_MAD(q5_0, QR_TYPE_Q5_0)
SCALAR_V_MAD(q5_1, QR_TYPE_Q5_1)
SCALAR_V_MAD(iq4_nl, QR_TYPE_IQ4_NL)

void qr_attn_kernels_fill_scalar(qr_attn_kernels *k) {
    memset(k, 0, sizeof *k);
    k->name = "scalar";
    k->dot[QR_TYPE_F32] = dot_f32;
    k->dot[QR_TYPE_F16] = dot_f16;
    k->dot[QR_TYPE_BF16] = dot_bf16;
    k->dot[QR_TYPE_Q8_0] = dot_q8_0;
    k->dot[QR_TYPE_Q4_0] = dot_q4_0;
    k->dot[QR_TYPE_Q4_1] = dot_q4_1;
    k->dot[QR_TYPE_Q5_0] = dot_q5_0;
    k->dot[QR_TYPE_Q5_1] = dot_q5_1;
    k->dot[QR_TYPE_IQ4_NL] = dot_iq4_nl;
    const int types[] = {QR_TYPE_F16,  QR_TYPE_BF16, QR_TYPE_Q8_0, QR_TYPE_Q4_0,
                         QR_TYPE_Q4_1, QR_TYPE_Q5_0, QR_TYPE_Q5_1, QR_TYPE_IQ4_NL};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
        k->to_float[types[i]] = qr_type_traits_get(types[i])->to_float;
    k->to_float[QR_TYPE_F32] = copy_f32;
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
        k->from_float[types[i]] = qr_type_traits_get(types[i])->from_float;
    k->from_float[QR_TYPE_Q8_0] = from_float_q8_0;
    k->from_float[QR_TYPE_Q8_1] = from_float_q8_1;
    k->v_mad_rows[QR_TYPE_F32] = v_mad_rows_f32;
    k->v_mad_rows[QR_TYPE_F16] = v_mad_rows_f16;
    k->v_mad_rows[QR_TYPE_BF16] = v_mad_rows_bf16;
    k->v_mad_rows[QR_TYPE_Q8_0] = v_mad_rows_q8_0;
    k->v_mad_rows[QR_TYPE_Q4_0] = v_mad_rows_q4_0;
    k->v_mad_rows[QR_TYPE_Q4_1] = v_mad_rows_q4_1;
    k->v_mad_rows[QR_TYPE_Q5_0] = v_mad_rows_q5_0;
    k->v_mad_rows[QR_TYPE_Q5_1] = v_mad_rows_q5_1;
    k->v_mad_rows[QR_TYPE_IQ4_NL] = v_mad_rows_iq4_nl;
    k->fwht = qr_attn_fwht;
    k->mad_f32 = mad_f32;
    k->scale_f32 = scale_f32;
    k->mad_f16 = mad_f16;
    k->scale_f16 = scale_f16;
}

void qr_attn_fwht(float *x, int64_t n, int64_t len) {
    const float scale = 1.0f / sqrtf((float)len);
    for (int64_t c = 0; c < n; c += len) {
        float *y = x + c;
        for (int64_t j = 0; j < len; j++)
            y[j] *= scale;
        for (int64_t d = 1; d < len; d <<= 1)
            for (int64_t i = 0; i < len; i += 2 * d)
                for (int64_t j = i; j < i + d; j++) {
                    const float u = y[j], v = y[j + d];
                    y[j] = u + v;
                    y[j + d] = u - v;
                }
    }
}

enum { SET_SCALAR, SET_AVX2, SET_COUNT };
/* written once under pthread_once, read-only afterwards */
static qr_attn_kernels sets[SET_COUNT];
static bool has_avx2;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init(void) {
    qr_attn_kernels_fill_scalar(&sets[SET_SCALAR]);
    /* the AVX2 set needs what qr_kernels' avx2 set needs (AVX2, FMA, F16C): present when
     * that set is */
    has_avx2 = qr_kernels_named("avx2") != NULL;
    if (has_avx2) {
        qr_attn_kernels_fill_scalar(&sets[SET_AVX2]);
        qr_attn_kernels_fill_avx2(&sets[SET_AVX2]);
    }
}

const qr_attn_kernels *qr_attn_kernels_best(void) {
    pthread_once(&once, init);
    return has_avx2 && strcmp(qr_kernels_best()->name, "scalar") != 0 ? &sets[SET_AVX2]
                                                                      : &sets[SET_SCALAR];
}

const qr_attn_kernels *qr_attn_kernels_named(const char *name) {
    pthread_once(&once, init);
    if (!strcmp(name, "scalar")) return &sets[SET_SCALAR];
    if (!strcmp(name, "avx2") && has_avx2) return &sets[SET_AVX2];
    return NULL;
}
