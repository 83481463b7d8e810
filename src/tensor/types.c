/* types.c - the traits table (one entry per tensor type) and the public type functions. */
#include "tensor/blocks.h"
#include "tensor/tensor.h"
#include "util/util.h"

#include <strings.h>

static void copy_f32(const void *src, float *dst, int64_t n) {
    memcpy(dst, src, (size_t)n * sizeof(float));
}
static void copy_to_f32(const float *src, void *dst, int64_t n) {
    memcpy(dst, src, (size_t)n * sizeof(float));
}

/* from_float is NULL where Quarrel has no quantizer for the type yet (qr_quantize says so) and
 * for iq2_xxs, iq2_xs and iq1_s, which ggml quantizes only with an importance;
 * vec_dot is NULL where it has no dot product yet (qr_context_create refuses such a matrix).
 * The vec_dot_type of the IQ, ternary and mxfp4 types is ggml's (q8_K; q8_0 for iq4_nl and
 * mxfp4); their dot products are in vec_dot_iq.c. */
static const qr_type_traits traits[QR_TYPE_COUNT] = {
    [QR_TYPE_F32] = {"f32", 1, 4, false, copy_f32, copy_to_f32, qr_vec_dot_f32, QR_TYPE_F32},
    [QR_TYPE_F16] = {"f16", 1, 2, false, qr_dequant_f16, qr_quant_f16, qr_vec_dot_f16, QR_TYPE_F16},
    [QR_TYPE_BF16] = {"bf16", 1, 2, false, qr_dequant_bf16, qr_quant_bf16, qr_vec_dot_bf16,
                      QR_TYPE_BF16},
    [QR_TYPE_Q4_0] = {"q4_0", QK4_0, sizeof(block_q4_0), true, qr_dequant_q4_0, qr_quant_q4_0,
                      qr_vec_dot_q4_0, QR_TYPE_Q8_0},
    [QR_TYPE_Q4_1] = {"q4_1", QK4_1, sizeof(block_q4_1), true, qr_dequant_q4_1, qr_quant_q4_1,
                      qr_vec_dot_q4_1, QR_TYPE_Q8_1},
    [QR_TYPE_Q5_0] = {"q5_0", QK5_0, sizeof(block_q5_0), true, qr_dequant_q5_0, qr_quant_q5_0,
                      qr_vec_dot_q5_0, QR_TYPE_Q8_0},
    [QR_TYPE_Q5_1] = {"q5_1", QK5_1, sizeof(block_q5_1), true, qr_dequant_q5_1, qr_quant_q5_1,
                      qr_vec_dot_q5_1, QR_TYPE_Q8_1},
    [QR_TYPE_Q8_0] = {"q8_0", QK8_0, sizeof(block_q8_0), true, qr_dequant_q8_0, qr_quant_q8_0,
                      qr_vec_dot_q8_0, QR_TYPE_Q8_0},
    [QR_TYPE_Q8_1] = {"q8_1", QK8_1, sizeof(block_q8_1), true, NULL, qr_quant_q8_1, NULL,
                      QR_TYPE_Q8_1},
    [QR_TYPE_Q2_K] = {"q2_K", QK_K, sizeof(block_q2_K), true, qr_dequant_q2_K, qr_quant_q2_K,
                      qr_vec_dot_q2_K, QR_TYPE_Q8_K},
    [QR_TYPE_Q3_K] = {"q3_K", QK_K, sizeof(block_q3_K), true, qr_dequant_q3_K, qr_quant_q3_K,
                      qr_vec_dot_q3_K, QR_TYPE_Q8_K},
    [QR_TYPE_Q4_K] = {"q4_K", QK_K, sizeof(block_q4_K), true, qr_dequant_q4_K, qr_quant_q4_K,
                      qr_vec_dot_q4_K, QR_TYPE_Q8_K},
    [QR_TYPE_Q5_K] = {"q5_K", QK_K, sizeof(block_q5_K), true, qr_dequant_q5_K, qr_quant_q5_K,
                      qr_vec_dot_q5_K, QR_TYPE_Q8_K},
    [QR_TYPE_Q6_K] = {"q6_K", QK_K, sizeof(block_q6_K), true, qr_dequant_q6_K, qr_quant_q6_K,
                      qr_vec_dot_q6_K, QR_TYPE_Q8_K},
    [QR_TYPE_Q8_K] = {"q8_K", QK_K, sizeof(block_q8_K), true, qr_dequant_q8_K, qr_quant_q8_K, NULL,
                      QR_TYPE_Q8_K},
    [QR_TYPE_IQ2_XXS] = {"iq2_xxs", QK_K, sizeof(block_iq2_xxs), true, qr_dequant_iq2_xxs, NULL,
                         qr_vec_dot_iq2_xxs, QR_TYPE_Q8_K},
    [QR_TYPE_IQ2_XS] = {"iq2_xs", QK_K, sizeof(block_iq2_xs), true, qr_dequant_iq2_xs, NULL,
                        qr_vec_dot_iq2_xs, QR_TYPE_Q8_K},
    [QR_TYPE_IQ3_XXS] = {"iq3_xxs", QK_K, sizeof(block_iq3_xxs), true, qr_dequant_iq3_xxs,
                         qr_quant_iq3_xxs, qr_vec_dot_iq3_xxs, QR_TYPE_Q8_K},
    [QR_TYPE_IQ1_S] = {"iq1_s", QK_K, sizeof(block_iq1_s), true, qr_dequant_iq1_s, NULL,
                       qr_vec_dot_iq1_s, QR_TYPE_Q8_K},
    [QR_TYPE_IQ4_NL] = {"iq4_nl", QK4_NL, sizeof(block_iq4_nl), true, qr_dequant_iq4_nl,
                        qr_quant_iq4_nl, qr_vec_dot_iq4_nl, QR_TYPE_Q8_0},
    [QR_TYPE_IQ3_S] = {"iq3_s", QK_K, sizeof(block_iq3_s), true, qr_dequant_iq3_s, qr_quant_iq3_s,
                       qr_vec_dot_iq3_s, QR_TYPE_Q8_K},
    [QR_TYPE_IQ2_S] = {"iq2_s", QK_K, sizeof(block_iq2_s), true, qr_dequant_iq2_s, qr_quant_iq2_s,
                       qr_vec_dot_iq2_s, QR_TYPE_Q8_K},
    [QR_TYPE_IQ4_XS] = {"iq4_xs", QK_K, sizeof(block_iq4_xs), true, qr_dequant_iq4_xs,
                        qr_quant_iq4_xs, qr_vec_dot_iq4_xs, QR_TYPE_Q8_K},
    [QR_TYPE_IQ1_M] = {"iq1_m", QK_K, sizeof(block_iq1_m), true, qr_dequant_iq1_m, qr_quant_iq1_m,
                       qr_vec_dot_iq1_m, QR_TYPE_Q8_K},
    [QR_TYPE_TQ1_0] = {"tq1_0", QK_K, sizeof(block_tq1_0), true, qr_dequant_tq1_0, qr_quant_tq1_0,
                       qr_vec_dot_tq1_0, QR_TYPE_Q8_K},
    [QR_TYPE_TQ2_0] = {"tq2_0", QK_K, sizeof(block_tq2_0), true, qr_dequant_tq2_0, qr_quant_tq2_0,
                       qr_vec_dot_tq2_0, QR_TYPE_Q8_K},
    [QR_TYPE_MXFP4] = {"mxfp4", QK_MXFP4, sizeof(block_mxfp4), true, qr_dequant_mxfp4,
                       qr_quant_mxfp4, qr_vec_dot_mxfp4, QR_TYPE_Q8_0},
};

/* Quantizers that take an importance matrix (ggml's quantize_<type>, which may ignore it), by
 * type; a type without one is quantized with an importance only where ggml ignores it too. */
static const qr_quantize_fn quantize_with_importance[QR_TYPE_COUNT] = {
    [QR_TYPE_Q4_0] = qr_quantize_q4_0,       [QR_TYPE_Q4_1] = qr_quantize_q4_1,
    [QR_TYPE_Q5_0] = qr_quantize_q5_0,       [QR_TYPE_Q5_1] = qr_quantize_q5_1,
    [QR_TYPE_Q2_K] = qr_quantize_q2_K,       [QR_TYPE_Q3_K] = qr_quantize_q3_K,
    [QR_TYPE_Q4_K] = qr_quantize_q4_K,       [QR_TYPE_Q5_K] = qr_quantize_q5_K,
    [QR_TYPE_Q6_K] = qr_quantize_q6_K,       [QR_TYPE_IQ4_NL] = qr_quantize_iq4_nl,
    [QR_TYPE_IQ4_XS] = qr_quantize_iq4_xs,   [QR_TYPE_TQ1_0] = qr_quantize_tq1_0,
    [QR_TYPE_TQ2_0] = qr_quantize_tq2_0,     [QR_TYPE_MXFP4] = qr_quantize_mxfp4,
    [QR_TYPE_IQ2_XXS] = qr_quantize_iq2_xxs, [QR_TYPE_IQ2_XS] = qr_quantize_iq2_xs,
    [QR_TYPE_IQ2_S] = qr_quantize_iq2_s,     [QR_TYPE_IQ3_XXS] = qr_quantize_iq3_xxs,
    [QR_TYPE_IQ3_S] = qr_quantize_iq3_s,     [QR_TYPE_IQ1_S] = qr_quantize_iq1_s,
    [QR_TYPE_IQ1_M] = qr_quantize_iq1_m,
};

const qr_type_traits *qr_type_traits_get(int type) {
    if (type < 0 || type >= QR_TYPE_COUNT || !traits[type].name) return NULL;
    return &traits[type];
}

bool qr_type_can_quantize(int type) {
    const qr_type_traits *t = qr_type_traits_get(type);
    return t && (t->from_float || quantize_with_importance[type]);
}

const char *qr_type_name(int type) {
    const qr_type_traits *t = qr_type_traits_get(type);
    return t ? t->name : NULL;
}

int qr_type_from_name(const char *name) {
    for (int t = 0; t < QR_TYPE_COUNT; t++)
        if (traits[t].name && !strcasecmp(traits[t].name, name)) return t;
    return -1;
}

int64_t qr_type_block_size(int type) {
    const qr_type_traits *t = qr_type_traits_get(type);
    return t ? t->block_size : 0;
}

size_t qr_type_block_bytes(int type) {
    const qr_type_traits *t = qr_type_traits_get(type);
    return t ? t->block_bytes : 0;
}

size_t qr_type_row_bytes(int type, int64_t n) {
    const qr_type_traits *t = qr_type_traits_get(type);
    if (!t || n < 0 || n % t->block_size) return 0;
    return (size_t)(n / t->block_size) * t->block_bytes;
}

static qr_status check_n(const qr_type_traits *t, int type, int64_t n) {
    if (!t) return qr_error(QR_ERR_UNSUPPORTED, "unknown tensor type %d", type);
    if (n < 0 || n % t->block_size)
        return qr_error(QR_ERR_INVALID_ARG,
                        "%lld elements is not a multiple of the %s block size %lld", (long long)n,
                        t->name, (long long)t->block_size);
    return QR_OK;
}

qr_status qr_dequantize(int type, const void *src, float *dst, int64_t n) {
    const qr_type_traits *t = qr_type_traits_get(type);
    qr_status st = check_n(t, type, n);
    if (st) return st;
    if (!t->to_float) return qr_error(QR_ERR_UNSUPPORTED, "cannot dequantize %s", t->name);
    t->to_float(src, dst, n);
    return QR_OK;
}

qr_status qr_quantize_check(int type, int64_t n_per_row, bool with_importance) {
    const qr_type_traits *t = qr_type_traits_get(type);
    qr_status st = check_n(t, type, n_per_row);
    if (st) return st;
    if (!t->from_float && !quantize_with_importance[type])
        return qr_error(QR_ERR_UNSUPPORTED, "quantizing to %s is not implemented", t->name);
    /* ggml_quantize_chunk asserts here (iq2_xxs, iq2_xs, iq1_s) */
    if (!t->from_float && !with_importance)
        return qr_error(QR_ERR_INVALID_ARG, "%s needs an importance matrix", t->name);
    /* ggml's quantize_q8_0 and the float types ignore the importance; what is left without a
     * quantizer that takes one (the activation types q8_1 and q8_K, which ggml_quantize_chunk
     * does not take) is refused rather than quantized as if there were no importance */
    if (with_importance && !quantize_with_importance[type] && t->is_quantized &&
        type != QR_TYPE_Q8_0)
        return qr_error(QR_ERR_UNSUPPORTED,
                        "quantizing to %s with an importance matrix is not implemented", t->name);
    return qr_quantize_iq_init(type);
}

qr_status qr_quantize(int type, const float *src, void *dst, int64_t n) {
    qr_status st = qr_quantize_check(type, n, false);
    if (st) return st;
    qr_type_traits_get(type)->from_float(src, dst, n);
    return QR_OK;
}

qr_status qr_quantize_rows(int type, const float *src, void *dst, int64_t n_rows, int64_t n_per_row,
                           const float *imatrix) {
    qr_status st = qr_quantize_check(type, n_per_row, imatrix != NULL);
    if (st) return st;
    if (n_rows < 0)
        return qr_error(QR_ERR_INVALID_ARG, "quantizing %lld rows: negative count",
                        (long long)n_rows);
    if (quantize_with_importance[type]) {
        quantize_with_importance[type](src, dst, n_rows, n_per_row, imatrix);
        return QR_OK;
    }
    const qr_type_traits *t = qr_type_traits_get(type);
    const size_t row_bytes = qr_type_row_bytes(type, n_per_row);
    for (int64_t r = 0; r < n_rows; r++)
        t->from_float(src + r * n_per_row, (char *)dst + (size_t)r * row_bytes, n_per_row);
    return QR_OK;
}
