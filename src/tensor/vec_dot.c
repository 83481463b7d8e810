/* vec_dot.c - the scalar reference dot products, one per weight type, against activations in
 * the type's vec_dot_type (ggml_vec_dot_* without SIMD). Integer sums per block, then the
 * block's float scales; SIMD kernels in src/kernels are tested against these. */
#include "tensor/blocks.h"
#include "tensor/tensor.h"
#include "util/util.h"

void qr_vec_dot_f32(int64_t n, float *out, const void *x, const void *y) {
    const float *a = x, *b = y;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)(a[i] * b[i]);
    *out = (float)sum;
}

void qr_vec_dot_f16(int64_t n, float *out, const void *x, const void *y) {
    const uint16_t *a = x, *b = y;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)(qr_fp16_to_fp32(a[i]) * qr_fp16_to_fp32(b[i]));
    *out = (float)sum;
}

void qr_vec_dot_bf16(int64_t n, float *out, const void *x, const void *y) {
    const uint16_t *a = x, *b = y;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)(qr_bf16_to_fp32(a[i]) * qr_bf16_to_fp32(b[i]));
    *out = (float)sum;
}

void qr_vec_dot_q4_0(int64_t n, float *out, const void *vx, const void *vy) {
    const block_q4_0 *x = vx;
    const block_q8_0 *y = vy;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        int sumi = 0;
        for (int j = 0; j < QK4_0 / 2; j++)
            sumi +=
                ((x[i].qs[j] & 0xF) - 8) * y[i].qs[j] + ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + 16];
        sum += (float)sumi * qr_fp16_to_fp32(x[i].d) * qr_fp16_to_fp32(y[i].d);
    }
    *out = sum;
}

void qr_vec_dot_q4_1(int64_t n, float *out, const void *vx, const void *vy) {
    const block_q4_1 *x = vx;
    const block_q8_1 *y = vy;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        int sumi = 0;
        for (int j = 0; j < QK4_1 / 2; j++)
            sumi += (x[i].qs[j] & 0xF) * y[i].qs[j] + (x[i].qs[j] >> 4) * y[i].qs[j + 16];
        sum += (qr_fp16_to_fp32(x[i].d) * qr_fp16_to_fp32(y[i].d)) * (float)sumi +
               qr_fp16_to_fp32(x[i].m) * qr_fp16_to_fp32(y[i].s);
    }
    *out = sum;
}

void qr_vec_dot_q5_0(int64_t n, float *out, const void *vx, const void *vy) {
    const block_q5_0 *x = vx;
    const block_q8_0 *y = vy;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        const uint32_t qh = qr_rd_u32(x[i].qh);
        int sumi = 0;
        for (int j = 0; j < QK5_0 / 2; j++) {
            const int lo = ((x[i].qs[j] & 0xF) | (int)(((qh >> j) << 4) & 0x10)) - 16;
            const int hi = ((x[i].qs[j] >> 4) | (int)((qh >> (j + 12)) & 0x10)) - 16;
            sumi += lo * y[i].qs[j] + hi * y[i].qs[j + 16];
        }
        sum += (float)sumi * qr_fp16_to_fp32(x[i].d) * qr_fp16_to_fp32(y[i].d);
    }
    *out = sum;
}

void qr_vec_dot_q5_1(int64_t n, float *out, const void *vx, const void *vy) {
    const block_q5_1 *x = vx;
    const block_q8_1 *y = vy;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        const uint32_t qh = qr_rd_u32(x[i].qh);
        int sumi = 0;
        for (int j = 0; j < QK5_1 / 2; j++) {
            const int lo = (x[i].qs[j] & 0xF) | (int)(((qh >> j) << 4) & 0x10);
            const int hi = (x[i].qs[j] >> 4) | (int)((qh >> (j + 12)) & 0x10);
            sumi += lo * y[i].qs[j] + hi * y[i].qs[j + 16];
        }
        sum += (qr_fp16_to_fp32(x[i].d) * qr_fp16_to_fp32(y[i].d)) * (float)sumi +
               qr_fp16_to_fp32(x[i].m) * qr_fp16_to_fp32(y[i].s);
    }
    *out = sum;
}

void qr_vec_dot_q8_0(int64_t n, float *out, const void *vx, const void *vy) {
    const block_q8_0 *x = vx;
    const block_q8_0 *y = vy;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        int sumi = 0;
        for (int j = 0; j < QK8_0; j++)
            sumi += x[i].qs[j] * y[i].qs[j];
        sum += (float)sumi * (qr_fp16_to_fp32(x[i].d) * qr_fp16_to_fp32(y[i].d));
    }
    *out = sum;
}

/* sum over super-blocks of d*yd * sum_s scale[s]*<q, y>_s - dmin*yd * sum_s min[s]*bsums[s] */
static float vec_dot_k(int64_t n, const void *vx, size_t block_bytes,
                       void (*unpack)(const void *, qr_kblock *), const void *vy) {
    const block_q8_K *y = vy;
    qr_kblock k;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        unpack((const char *)vx + (size_t)i * block_bytes, &k);
        int32_t isum = 0, msum = 0;
        for (int s = 0; s < 16; s++) {
            int32_t dot = 0;
            for (int l = 0; l < 16; l++)
                dot += k.q[16 * s + l] * y[i].qs[16 * s + l];
            isum += k.scale[s] * dot;
            msum += k.min[s] * y[i].bsums[s];
        }
        sum += k.d * y[i].d * (float)isum - k.dmin * y[i].d * (float)msum;
    }
    return sum;
}

void qr_vec_dot_q2_K(int64_t n, float *out, const void *x, const void *y) {
    *out = vec_dot_k(n, x, sizeof(block_q2_K), qr_unpack_q2_K, y);
}
void qr_vec_dot_q3_K(int64_t n, float *out, const void *x, const void *y) {
    *out = vec_dot_k(n, x, sizeof(block_q3_K), qr_unpack_q3_K, y);
}
void qr_vec_dot_q4_K(int64_t n, float *out, const void *x, const void *y) {
    *out = vec_dot_k(n, x, sizeof(block_q4_K), qr_unpack_q4_K, y);
}
void qr_vec_dot_q5_K(int64_t n, float *out, const void *x, const void *y) {
    *out = vec_dot_k(n, x, sizeof(block_q5_K), qr_unpack_q5_K, y);
}
void qr_vec_dot_q6_K(int64_t n, float *out, const void *x, const void *y) {
    *out = vec_dot_k(n, x, sizeof(block_q6_K), qr_unpack_q6_K, y);
}
