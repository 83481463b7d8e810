/* matmul.h - matrix products of weights (any tensor type) with activations. Activations are
 * first converted to the weight type's vec_dot_type (as ggml does: Q8_0 for q4_0/q5_0/q8_0,
 * Q8_1 for q4_1/q5_1, Q8_K for k-quants, F16 for f16, ...), then the products run in the
 * fastest kernel set of this CPU (kernels.h), tiled so that a block of activation rows stays in
 * cache while the weight rows stream past it. */
#ifndef QR_MATMUL_H
#define QR_MATMUL_H

#include "util/util.h"

/* Whether this CPU's kernels can multiply weights of `type` at all (Quarrel reads some types,
 * e.g. the IQ family, before it has their dot products). */
bool qr_matmul_supports(int type);

/* Bytes needed to hold n_tokens rows of n_cols activations converted for weight type `type`. */
size_t qr_act_bytes(int type, int64_t n_cols, int64_t n_tokens);
/* Convert n_tokens rows of n_cols floats (row stride n_cols) for weights of `type`. Returns the
 * stride in bytes of a converted row. */
size_t qr_act_convert(int type, const float *x, int64_t n_cols, int64_t n_tokens, void *out);

/* y[t * y_stride + r] = dot(w row r, activation row t) for r in [r0, r1), t in [0, n_tokens).
 * packed: w is in the layout of qr_matmul_pack (r0 and r1 - r0 then multiples of 16). */
void qr_matmul_rows(int type, const void *w, bool packed, size_t w_row_bytes, int64_t n_cols,
                    const void *act,
                    size_t act_stride, int64_t n_tokens, float *y, int64_t y_stride, int64_t r0,
                    int64_t r1);

/* Whether this CPU's kernels have a repacked layout for n_rows x n_cols weights of `type`;
 * its bytes per row (rows r0.. of packed weights, r0 a multiple of 16, start at r0 times
 * this); and the conversion into it (out: n_rows rows of those bytes, 64-byte aligned). */
bool qr_matmul_can_pack(int type, int64_t n_cols, int64_t n_rows);
size_t qr_matmul_packed_row_bytes(int type, int64_t n_cols);
void qr_matmul_pack(int type, const void *w, int64_t n_cols, int64_t n_rows, void *out);
/* one row of packed weights w (the whole tensor), dequantized as the file's row would be */
void qr_matmul_packed_row(int type, const void *w, int64_t n_cols, int64_t row, float *out);

/* How many rows one parallel chunk of an n_rows x n_cols by n_tokens product should take on
 * n_threads threads, when it is part of a task of task_macs multiply-adds in all (the products
 * of one input run as one task): all of them (one chunk, no thread hand-off) when the task is
 * too small to be worth splitting, else enough chunks for every thread to take several. */
int64_t qr_matmul_chunk_rows(int64_t n_rows, int64_t n_cols, int64_t n_tokens, int n_threads,
                             int64_t task_macs);

#endif
