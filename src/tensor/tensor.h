/* tensor.h - one traits table per tensor type: block geometry, conversion to and from f32,
 * and the scalar reference dot product against the type's activation format (vec_dot_type),
 * as ggml's type_traits / type_traits_cpu. */
#ifndef QR_TENSOR_H
#define QR_TENSOR_H

#include "quarrel.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef void (*qr_to_float_fn)(const void *src, float *dst, int64_t n);
typedef void (*qr_from_float_fn)(const float *src, void *dst, int64_t n);
/* dot product of n elements: x is a row of this type (weights), y a row of vec_dot_type */
typedef void (*qr_vec_dot_fn)(int64_t n, float *out, const void *x, const void *y);
/* n_rows rows of n_per_row elements, with imatrix (n_per_row importances, one per column) or
 * NULL: ggml's quantize_<type> as ggml_quantize_chunk calls it */
typedef void (*qr_quantize_fn)(const float *src, void *dst, int64_t n_rows, int64_t n_per_row,
                               const float *imatrix);

typedef struct qr_type_traits {
    const char *name;   /* ggml's name: "f32", "q4_K", ... */
    int64_t block_size; /* elements per block */
    size_t block_bytes;
    bool is_quantized;
    qr_to_float_fn to_float;
    qr_from_float_fn from_float; /* reference quantizer; NULL where Quarrel has none yet */
    qr_vec_dot_fn vec_dot;       /* scalar reference dot product; NULL for activation-only types */
    int vec_dot_type;            /* what activations are converted to before vec_dot */
} qr_type_traits;

/* NULL if Quarrel does not know the type. */
const qr_type_traits *qr_type_traits_get(int type);
/* Whether qr_quantize_rows can make the type (some types only with an importance matrix). */
bool qr_type_can_quantize(int type);
/* What qr_quantize_rows would refuse for rows of n_per_row values of this type, with or
 * without an importance matrix (the same status and message), without quantizing anything;
 * builds the type's search tables if it has any. */
qr_status qr_quantize_check(int type, int64_t n_per_row, bool with_importance);

/* Conversions and dot products, by type (dequant.c, quant_act.c, vec_dot.c). */
void qr_dequant_f16(const void *src, float *dst, int64_t n);
void qr_dequant_bf16(const void *src, float *dst, int64_t n);
void qr_dequant_q4_0(const void *src, float *dst, int64_t n);
void qr_dequant_q4_1(const void *src, float *dst, int64_t n);
void qr_dequant_q5_0(const void *src, float *dst, int64_t n);
void qr_dequant_q5_1(const void *src, float *dst, int64_t n);
void qr_dequant_q8_0(const void *src, float *dst, int64_t n);
void qr_dequant_q2_K(const void *src, float *dst, int64_t n);
void qr_dequant_q3_K(const void *src, float *dst, int64_t n);
void qr_dequant_q4_K(const void *src, float *dst, int64_t n);
void qr_dequant_q5_K(const void *src, float *dst, int64_t n);
void qr_dequant_q6_K(const void *src, float *dst, int64_t n);
void qr_dequant_q8_K(const void *src, float *dst, int64_t n);
/* dequant_iq.c: the IQ family, ternary and mxfp4 */
void qr_dequant_iq2_xxs(const void *src, float *dst, int64_t n);
void qr_dequant_iq2_xs(const void *src, float *dst, int64_t n);
void qr_dequant_iq2_s(const void *src, float *dst, int64_t n);
void qr_dequant_iq3_xxs(const void *src, float *dst, int64_t n);
void qr_dequant_iq3_s(const void *src, float *dst, int64_t n);
void qr_dequant_iq1_s(const void *src, float *dst, int64_t n);
void qr_dequant_iq1_m(const void *src, float *dst, int64_t n);
void qr_dequant_iq4_nl(const void *src, float *dst, int64_t n);
void qr_dequant_iq4_xs(const void *src, float *dst, int64_t n);
void qr_dequant_tq1_0(const void *src, float *dst, int64_t n);
void qr_dequant_tq2_0(const void *src, float *dst, int64_t n);
void qr_dequant_mxfp4(const void *src, float *dst, int64_t n);

void qr_quant_f16(const float *src, void *dst, int64_t n);
void qr_quant_bf16(const float *src, void *dst, int64_t n);
void qr_quant_q8_0(const float *src, void *dst, int64_t n);
void qr_quant_q8_1(const float *src, void *dst, int64_t n);
void qr_quant_q8_K(const float *src, void *dst, int64_t n);
/* weight quantizers, byte-exact with ggml's quantize_row_*_ref (quantize_legacy.c,
 * quantize_k.c) */
void qr_quant_q4_0(const float *src, void *dst, int64_t n);
void qr_quant_q4_1(const float *src, void *dst, int64_t n);
void qr_quant_q5_0(const float *src, void *dst, int64_t n);
void qr_quant_q5_1(const float *src, void *dst, int64_t n);
void qr_quant_q2_K(const float *src, void *dst, int64_t n);
void qr_quant_q3_K(const float *src, void *dst, int64_t n);
void qr_quant_q4_K(const float *src, void *dst, int64_t n);
void qr_quant_q5_K(const float *src, void *dst, int64_t n);
void qr_quant_q6_K(const float *src, void *dst, int64_t n);
/* the same with an importance (ggml's quantize_q4_0 ... quantize_q6_K): imatrix NULL gives the
 * reference quantizers' bytes, else ggml's importance-weighted path (quantize_row_*_impl) */
void qr_quantize_q4_0(const float *src, void *dst, int64_t n_rows, int64_t n_per_row,
                      const float *imatrix);
void qr_quantize_q4_1(const float *src, void *dst, int64_t n_rows, int64_t n_per_row,
                      const float *imatrix);
void qr_quantize_q5_0(const float *src, void *dst, int64_t n_rows, int64_t n_per_row,
                      const float *imatrix);
void qr_quantize_q5_1(const float *src, void *dst, int64_t n_rows, int64_t n_per_row,
                      const float *imatrix);
void qr_quantize_q2_K(const float *src, void *dst, int64_t n_rows, int64_t n_per_row,
                      const float *imatrix);
void qr_quantize_q3_K(const float *src, void *dst, int64_t n_rows, int64_t n_per_row,
                      const float *imatrix);
void qr_quantize_q4_K(const float *src, void *dst, int64_t n_rows, int64_t n_per_row,
                      const float *imatrix);
void qr_quantize_q5_K(const float *src, void *dst, int64_t n_rows, int64_t n_per_row,
                      const float *imatrix);
void qr_quantize_q6_K(const float *src, void *dst, int64_t n_rows, int64_t n_per_row,
                      const float *imatrix);
/* quantize_iq.c: iq4_nl, iq4_xs (with or without importance), tq1_0, tq2_0, mxfp4 (ignore it) */
void qr_quant_iq4_nl(const float *src, void *dst, int64_t n);
void qr_quant_iq4_xs(const float *src, void *dst, int64_t n);
void qr_quant_tq1_0(const float *src, void *dst, int64_t n);
void qr_quant_tq2_0(const float *src, void *dst, int64_t n);
void qr_quant_mxfp4(const float *src, void *dst, int64_t n);
void qr_quantize_iq4_nl(const float *src, void *dst, int64_t n_rows, int64_t n_per_row,
                        const float *imatrix);
void qr_quantize_iq4_xs(const float *src, void *dst, int64_t n_rows, int64_t n_per_row,
                        const float *imatrix);
void qr_quantize_tq1_0(const float *src, void *dst, int64_t n_rows, int64_t n_per_row,
                       const float *imatrix);
void qr_quantize_tq2_0(const float *src, void *dst, int64_t n_rows, int64_t n_per_row,
                       const float *imatrix);
void qr_quantize_mxfp4(const float *src, void *dst, int64_t n_rows, int64_t n_per_row,
                       const float *imatrix);
/* quantize_iq_grid.c: the grid IQ types. iq2_xxs, iq2_xs and iq1_s need the importance (their
 * rows come out zero without it: qr_quantize_rows refuses first); the other four take NULL,
 * which qr_quant_<type> passes. qr_quantize_iq_init builds the search structures a type's
 * quantizer needs (ggml_quantize_init), once, thread-safe: QR_OK for every other type,
 * QR_ERR_NOMEM if they cannot be built. */
qr_status qr_quantize_iq_init(int type);
void qr_quant_iq2_s(const float *src, void *dst, int64_t n);
void qr_quant_iq3_xxs(const float *src, void *dst, int64_t n);
void qr_quant_iq3_s(const float *src, void *dst, int64_t n);
void qr_quant_iq1_m(const float *src, void *dst, int64_t n);
void qr_quantize_iq2_xxs(const float *src, void *dst, int64_t n_rows, int64_t n_per_row,
                         const float *imatrix);
void qr_quantize_iq2_xs(const float *src, void *dst, int64_t n_rows, int64_t n_per_row,
                        const float *imatrix);
void qr_quantize_iq2_s(const float *src, void *dst, int64_t n_rows, int64_t n_per_row,
                       const float *imatrix);
void qr_quantize_iq3_xxs(const float *src, void *dst, int64_t n_rows, int64_t n_per_row,
                         const float *imatrix);
void qr_quantize_iq3_s(const float *src, void *dst, int64_t n_rows, int64_t n_per_row,
                       const float *imatrix);
void qr_quantize_iq1_s(const float *src, void *dst, int64_t n_rows, int64_t n_per_row,
                       const float *imatrix);
void qr_quantize_iq1_m(const float *src, void *dst, int64_t n_rows, int64_t n_per_row,
                       const float *imatrix);

void qr_vec_dot_f32(int64_t n, float *out, const void *x, const void *y);
void qr_vec_dot_f16(int64_t n, float *out, const void *x, const void *y);
void qr_vec_dot_bf16(int64_t n, float *out, const void *x, const void *y);
void qr_vec_dot_q4_0(int64_t n, float *out, const void *x, const void *y);
void qr_vec_dot_q4_1(int64_t n, float *out, const void *x, const void *y);
void qr_vec_dot_q5_0(int64_t n, float *out, const void *x, const void *y);
void qr_vec_dot_q5_1(int64_t n, float *out, const void *x, const void *y);
void qr_vec_dot_q8_0(int64_t n, float *out, const void *x, const void *y);
void qr_vec_dot_q2_K(int64_t n, float *out, const void *x, const void *y);
void qr_vec_dot_q3_K(int64_t n, float *out, const void *x, const void *y);
void qr_vec_dot_q4_K(int64_t n, float *out, const void *x, const void *y);
void qr_vec_dot_q5_K(int64_t n, float *out, const void *x, const void *y);
void qr_vec_dot_q6_K(int64_t n, float *out, const void *x, const void *y);
/* vec_dot_iq.c: against q8_K rows, q8_0 rows for iq4_nl and mxfp4 */
void qr_vec_dot_iq2_xxs(int64_t n, float *out, const void *x, const void *y);
void qr_vec_dot_iq2_xs(int64_t n, float *out, const void *x, const void *y);
void qr_vec_dot_iq2_s(int64_t n, float *out, const void *x, const void *y);
void qr_vec_dot_iq3_xxs(int64_t n, float *out, const void *x, const void *y);
void qr_vec_dot_iq3_s(int64_t n, float *out, const void *x, const void *y);
void qr_vec_dot_iq1_s(int64_t n, float *out, const void *x, const void *y);
void qr_vec_dot_iq1_m(int64_t n, float *out, const void *x, const void *y);
void qr_vec_dot_iq4_nl(int64_t n, float *out, const void *x, const void *y);
void qr_vec_dot_iq4_xs(int64_t n, float *out, const void *x, const void *y);
void qr_vec_dot_tq1_0(int64_t n, float *out, const void *x, const void *y);
void qr_vec_dot_tq2_0(int64_t n, float *out, const void *x, const void *y);
void qr_vec_dot_mxfp4(int64_t n, float *out, const void *x, const void *y);

/* A k-quant super-block unpacked: 256 integer values and per-16 scales and mins, so that
 * element i = (d * scale[i/16]) * q[i] - (dmin * min[i/16]). Shared by dequantisation and the
 * reference dot products. */
typedef struct qr_kblock {
    float d, dmin;
    int8_t q[256];
    int16_t scale[16], min[16];
} qr_kblock;
void qr_unpack_q2_K(const void *block, qr_kblock *out);
void qr_unpack_q3_K(const void *block, qr_kblock *out);
void qr_unpack_q4_K(const void *block, qr_kblock *out);
void qr_unpack_q5_K(const void *block, qr_kblock *out);
void qr_unpack_q6_K(const void *block, qr_kblock *out);

#endif
