/* matmul.c - matrix products through the kernel set chosen for this CPU (kernels.h). */
#include "kernels/matmul.h"
#include "kernels/kernels.h"
#include "tensor/blocks.h"
#include "tensor/tensor.h"

#include <string.h>

/* Activation rows per pass: 64 rows of the widest converted activation (q8_K of a few thousand
 * columns) stay in the 1 MiB L2 while each weight row is dotted with all of them. */
#define TOKEN_BLOCK 64
/* Products below this many multiply-adds run on one thread: handing them to another costs
 * more than it saves (a few microseconds of wake-up against a few microseconds of work). */
#define MIN_PARALLEL_MACS (256 * 1024)
/* Rows per chunk are a multiple of this (whole tiles, whole cache lines of y, whole groups of
 * repacked rows: a multiple of every set's pack_rows). */
#define ROW_ALIGN 16

static int act_type(int type) {
    return qr_type_traits_get(type)->vec_dot_type;
}

bool qr_matmul_supports(int type) {
    return qr_type_traits_get(type) != NULL && qr_kernels_best()->gemm[type] != NULL;
}

/* bytes of one converted row: the vec_dot_type row, plus the scales and sums of q8_0 rows */
static size_t act_stride(int type, int64_t n_cols) {
    const int at = act_type(type);
    if (at == QR_TYPE_Q8_0) return qr_act_q8_0_row_bytes(n_cols);
    if (at == QR_TYPE_F16 || at == QR_TYPE_BF16) return qr_act_half_row_bytes(n_cols);
    return qr_type_row_bytes(at, n_cols);
}

size_t qr_act_bytes(int type, int64_t n_cols, int64_t n_tokens) {
    return act_stride(type, n_cols) * (size_t)n_tokens;
}

size_t qr_act_convert(int type, const float *x, int64_t n_cols, int64_t n_tokens, void *out) {
    const int at = act_type(type);
    const size_t stride = act_stride(type, n_cols);
    const qr_kernels *kn = qr_kernels_best();
    const qr_from_float_fn quant = at == QR_TYPE_Q8_0   ? kn->quant_q8_0
                                   : at == QR_TYPE_Q8_K ? kn->quant_q8_K
                                                        : qr_type_traits_get(at)->from_float;
    for (int64_t t = 0; t < n_tokens; t++) {
        char *row = (char *)out + (size_t)t * stride;
        if (at == QR_TYPE_F16) { /* the halves, then the floats they hold */
            kn->to_f16(x + t * n_cols, (uint16_t *)row, n_cols);
            float *f = (float *)(row + qr_act_half_f32_offset(n_cols));
            memcpy(f, x + t * n_cols, (size_t)n_cols * sizeof(float));
            kn->round_f16(f, n_cols);
            continue;
        }
        quant(x + t * n_cols, row, n_cols);
        if (at == QR_TYPE_BF16)
            qr_type_traits_get(at)->to_float(row, (float *)(row + qr_act_half_f32_offset(n_cols)),
                                             n_cols);
    }
    return stride;
}

void qr_matmul_rows(int type, const void *w, bool packed, size_t w_row_bytes, int64_t n_cols,
                    const void *act, size_t act_stride, int64_t n_tokens, float *y,
                    int64_t y_stride, int64_t r0, int64_t r1) {
    const qr_kernels *kn = qr_kernels_best();
    qr_gemm_fn gemm = packed ? kn->gemm_packed[type] : kn->gemm[type];
    const char *wr = (const char *)w + (size_t)r0 * w_row_bytes;
    for (int64_t t0 = 0; t0 < n_tokens; t0 += TOKEN_BLOCK) {
        int64_t nt = n_tokens - t0 < TOKEN_BLOCK ? n_tokens - t0 : TOKEN_BLOCK;
        gemm(n_cols, wr, w_row_bytes, (const char *)act + (size_t)t0 * act_stride, act_stride,
             y + t0 * y_stride + r0, y_stride, r1 - r0, nt);
    }
}

int64_t qr_matmul_chunk_rows(int64_t n_rows, int64_t n_cols, int64_t n_tokens, int n_threads,
                             int64_t task_macs) {
    if (n_threads <= 1 || task_macs < MIN_PARALLEL_MACS) return n_rows;
    /* one chunk per thread: each thread streams one contiguous run of rows (with 4 or 16
     * chunks per thread, decode steps of smol135 at 2 threads took 10-30% longer: every chunk
     * restarts the memory stream; bench/README.md, round 3). Chunks are still claimed, so a
     * thread that has not woken up yet leaves its chunk to the others. No chunk below a
     * quarter of the threshold, where handing it over would cost a good part of it. */
    int64_t rows = n_rows / (int64_t)n_threads;
    const int64_t min_rows = MIN_PARALLEL_MACS / 4 / (n_cols * n_tokens) + 1;
    if (rows < min_rows) rows = min_rows;
    rows = (rows + ROW_ALIGN - 1) / ROW_ALIGN * ROW_ALIGN;
    return rows < n_rows ? rows : n_rows;
}

bool qr_matmul_can_pack(int type, int64_t n_cols, int64_t n_rows) {
    const qr_kernels *kn = qr_kernels_best();
    return type >= 0 && type < QR_TYPE_COUNT && kn->pack && kn->gemm_packed[type] &&
           n_rows % kn->pack_rows == 0 && n_cols % qr_type_block_size(type) == 0;
}

size_t qr_matmul_packed_row_bytes(int type, int64_t n_cols) {
    return qr_kernels_best()->packed_row_bytes(type, n_cols);
}

void qr_matmul_pack(int type, const void *w, int64_t n_cols, int64_t n_rows, void *out) {
    qr_kernels_best()->pack(type, w, n_cols, n_rows, out);
}

void qr_matmul_packed_row(int type, const void *w, int64_t n_cols, int64_t row, float *out) {
    qr_kernels_best()->packed_row(type, w, n_cols, row, out);
}
