/* dequant.c - every type to f32, bit for bit as ggml's dequantize_row_* (the same float
 * operations in the same order: (d * scale) * q - (dmin * min)). K-quant blocks are first
 * unpacked into a qr_kblock, which the reference dot products reuse. */
#include "tensor/blocks.h"
#include "tensor/tensor.h"
#include "util/util.h"

void qr_dequant_f16(const void *src, float *dst, int64_t n) {
    const uint16_t *h = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = qr_fp16_to_fp32(h[i]);
}

void qr_dequant_bf16(const void *src, float *dst, int64_t n) {
    const uint16_t *h = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = qr_bf16_to_fp32(h[i]);
}

void qr_dequant_q4_0(const void *src, float *dst, int64_t n) {
    const block_q4_0 *b = src;
    for (int64_t i = 0; i < n / QK4_0; i++, dst += QK4_0) {
        const float d = qr_fp16_to_fp32(b[i].d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            dst[j] = (float)((b[i].qs[j] & 0x0F) - 8) * d;
            dst[j + QK4_0 / 2] = (float)((b[i].qs[j] >> 4) - 8) * d;
        }
    }
}

void qr_dequant_q4_1(const void *src, float *dst, int64_t n) {
    const block_q4_1 *b = src;
    for (int64_t i = 0; i < n / QK4_1; i++, dst += QK4_1) {
        const float d = qr_fp16_to_fp32(b[i].d), m = qr_fp16_to_fp32(b[i].m);
        for (int j = 0; j < QK4_1 / 2; j++) {
            dst[j] = (float)(b[i].qs[j] & 0x0F) * d + m;
            dst[j + QK4_1 / 2] = (float)(b[i].qs[j] >> 4) * d + m;
        }
    }
}

void qr_dequant_q5_0(const void *src, float *dst, int64_t n) {
    const block_q5_0 *b = src;
    for (int64_t i = 0; i < n / QK5_0; i++, dst += QK5_0) {
        const float d = qr_fp16_to_fp32(b[i].d);
        const uint32_t qh = qr_rd_u32(b[i].qh);
        for (int j = 0; j < QK5_0 / 2; j++) {
            const int lo = (b[i].qs[j] & 0x0F) | (int)(((qh >> j) << 4) & 0x10);
            const int hi = (b[i].qs[j] >> 4) | (int)((qh >> (j + 12)) & 0x10);
            dst[j] = (float)(lo - 16) * d;
            dst[j + QK5_0 / 2] = (float)(hi - 16) * d;
        }
    }
}

void qr_dequant_q5_1(const void *src, float *dst, int64_t n) {
    const block_q5_1 *b = src;
    for (int64_t i = 0; i < n / QK5_1; i++, dst += QK5_1) {
        const float d = qr_fp16_to_fp32(b[i].d), m = qr_fp16_to_fp32(b[i].m);
        const uint32_t qh = qr_rd_u32(b[i].qh);
        for (int j = 0; j < QK5_1 / 2; j++) {
            const int lo = (b[i].qs[j] & 0x0F) | (int)(((qh >> j) << 4) & 0x10);
            const int hi = (b[i].qs[j] >> 4) | (int)((qh >> (j + 12)) & 0x10);
            dst[j] = (float)lo * d + m;
            dst[j + QK5_1 / 2] = (float)hi * d + m;
        }
    }
}

void qr_dequant_q8_0(const void *src, float *dst, int64_t n) {
    const block_q8_0 *b = src;
    for (int64_t i = 0; i < n / QK8_0; i++, dst += QK8_0) {
        const float d = qr_fp16_to_fp32(b[i].d);
        for (int j = 0; j < QK8_0; j++)
            dst[j] = (float)b[i].qs[j] * d;
    }
}

void qr_dequant_q8_K(const void *src, float *dst, int64_t n) {
    const block_q8_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K)
        for (int j = 0; j < QK_K; j++)
            dst[j] = b[i].d * (float)b[i].qs[j];
}

/* ---- k-quants ---- */

void qr_unpack_q2_K(const void *block, qr_kblock *k) {
    const block_q2_K *b = block;
    k->d = qr_fp16_to_fp32(b->d);
    k->dmin = qr_fp16_to_fp32(b->dmin);
    for (int s = 0; s < 16; s++) {
        k->scale[s] = b->scales[s] & 0xF;
        k->min[s] = b->scales[s] >> 4;
    }
    for (int h = 0; h < 2; h++)                 /* halves of 128 */
        for (int shift = 0; shift < 4; shift++) /* 4 groups of 32 per half */
            for (int l = 0; l < 32; l++)
                k->q[128 * h + 32 * shift + l] = (int8_t)((b->qs[32 * h + l] >> (2 * shift)) & 3);
}

void qr_unpack_q3_K(const void *block, qr_kblock *k) {
    const block_q3_K *b = block;
    k->d = qr_fp16_to_fp32(b->d);
    k->dmin = 0.0f;
    for (int j = 0; j < 16; j++) {
        int low = j < 8 ? b->scales[j] & 0xF : b->scales[j - 8] >> 4;
        int high = (b->scales[8 + j % 4] >> (2 * (j / 4))) & 3;
        k->scale[j] = (int16_t)((low | high << 4) - 32);
        k->min[j] = 0;
    }
    for (int h = 0; h < 2; h++)
        for (int shift = 0; shift < 4; shift++)
            for (int l = 0; l < 32; l++) {
                int e = 128 * h + 32 * shift + l;
                int q = (b->qs[32 * h + l] >> (2 * shift)) & 3;
                int hbit = (b->hmask[l] >> (4 * h + shift)) & 1;
                k->q[e] = (int8_t)(q - (hbit ? 0 : 4));
            }
}

/* the 6-bit scale and min of sub-block j (of 32) of q4_K/q5_K */
static void scale_min_k4(int j, const uint8_t *q, int *sc, int *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

static void unpack_k4_scales(const uint8_t *scales, qr_kblock *k) {
    for (int j = 0; j < 8; j++) {
        int sc, m;
        scale_min_k4(j, scales, &sc, &m);
        k->scale[2 * j] = k->scale[2 * j + 1] = (int16_t)sc;
        k->min[2 * j] = k->min[2 * j + 1] = (int16_t)m;
    }
}

void qr_unpack_q4_K(const void *block, qr_kblock *k) {
    const block_q4_K *b = block;
    k->d = qr_fp16_to_fp32(b->d);
    k->dmin = qr_fp16_to_fp32(b->dmin);
    unpack_k4_scales(b->scales, k);
    for (int p = 0; p < 4; p++)
        for (int l = 0; l < 32; l++) {
            k->q[64 * p + l] = (int8_t)(b->qs[32 * p + l] & 0xF);
            k->q[64 * p + 32 + l] = (int8_t)(b->qs[32 * p + l] >> 4);
        }
}

void qr_unpack_q5_K(const void *block, qr_kblock *k) {
    const block_q5_K *b = block;
    k->d = qr_fp16_to_fp32(b->d);
    k->dmin = qr_fp16_to_fp32(b->dmin);
    unpack_k4_scales(b->scales, k);
    for (int p = 0; p < 4; p++)
        for (int l = 0; l < 32; l++) {
            int h0 = (b->qh[l] >> (2 * p)) & 1, h1 = (b->qh[l] >> (2 * p + 1)) & 1;
            k->q[64 * p + l] = (int8_t)((b->qs[32 * p + l] & 0xF) | h0 << 4);
            k->q[64 * p + 32 + l] = (int8_t)((b->qs[32 * p + l] >> 4) | h1 << 4);
        }
}

void qr_unpack_q6_K(const void *block, qr_kblock *k) {
    const block_q6_K *b = block;
    k->d = qr_fp16_to_fp32(b->d);
    k->dmin = 0.0f;
    for (int j = 0; j < 16; j++) {
        k->scale[j] = b->scales[j];
        k->min[j] = 0;
    }
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
        int8_t *q = k->q + 128 * h;
        for (int l = 0; l < 32; l++) {
            q[l] = (int8_t)(((ql[l] & 0xF) | ((qh[l] >> 0) & 3) << 4) - 32);
            q[l + 32] = (int8_t)(((ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4) - 32);
            q[l + 64] = (int8_t)(((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32);
            q[l + 96] = (int8_t)(((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32);
        }
    }
}

static void dequant_k(const void *src, float *dst, int64_t n, size_t block_bytes,
                      void (*unpack)(const void *, qr_kblock *)) {
    qr_kblock k;
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        unpack((const char *)src + (size_t)i * block_bytes, &k);
        for (int s = 0; s < 16; s++) {
            const float dl = k.d * (float)k.scale[s], ml = k.dmin * (float)k.min[s];
            for (int l = 0; l < 16; l++)
                dst[16 * s + l] = dl * (float)k.q[16 * s + l] - ml;
        }
    }
}

void qr_dequant_q2_K(const void *src, float *dst, int64_t n) {
    dequant_k(src, dst, n, sizeof(block_q2_K), qr_unpack_q2_K);
}
void qr_dequant_q3_K(const void *src, float *dst, int64_t n) {
    dequant_k(src, dst, n, sizeof(block_q3_K), qr_unpack_q3_K);
}
void qr_dequant_q4_K(const void *src, float *dst, int64_t n) {
    dequant_k(src, dst, n, sizeof(block_q4_K), qr_unpack_q4_K);
}
void qr_dequant_q5_K(const void *src, float *dst, int64_t n) {
    dequant_k(src, dst, n, sizeof(block_q5_K), qr_unpack_q5_K);
}
void qr_dequant_q6_K(const void *src, float *dst, int64_t n) {
    dequant_k(src, dst, n, sizeof(block_q6_K), qr_unpack_q6_K);
}
