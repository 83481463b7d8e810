/* matmul.c - the portable matrix product over the traits table's vec_dot (the scalar
 * reference); SIMD variants plug in here. */
#include "kernels/matmul.h"
#include "tensor/tensor.h"

static int act_type(int type) {
    return qr_type_traits_get(type)->vec_dot_type;
}

size_t qr_act_bytes(int type, int64_t n_cols, int64_t n_tokens) {
    return qr_type_row_bytes(act_type(type), n_cols) * (size_t)n_tokens;
}

size_t qr_act_convert(int type, const float *x, int64_t n_cols, int64_t n_tokens, void *out) {
    int at = act_type(type);
    size_t stride = qr_type_row_bytes(at, n_cols);
    const qr_type_traits *tr = qr_type_traits_get(at);
    for (int64_t t = 0; t < n_tokens; t++)
        tr->from_float(x + t * n_cols, (char *)out + (size_t)t * stride, n_cols);
    return stride;
}

void qr_matmul_rows(int type, const void *w, size_t w_row_bytes, int64_t n_cols, const void *act, size_t act_stride,
                    int64_t n_tokens, float *y, int64_t y_stride, int64_t r0, int64_t r1) {
    qr_vec_dot_fn dot = qr_type_traits_get(type)->vec_dot;
    /* a few rows at a time against every token: each weight row is read from memory once */
    for (int64_t r = r0; r < r1; r++) {
        const char *wr = (const char *)w + (size_t)r * w_row_bytes;
        for (int64_t t = 0; t < n_tokens; t++)
            dot(n_cols, &y[t * y_stride + r], wr, (const char *)act + (size_t)t * act_stride);
    }
}
