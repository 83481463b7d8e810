/* vec_dot_iq.c - the scalar reference dot products of the IQ family, ternary and mxfp4 types,
 * as ggml's ggml_vec_dot_<type>_<q8_K|q8_0>_generic (ggml-cpu/quants.c): integer sums over a
 * block's sub-blocks weighted by their integer scales, then one float multiply by the weight
 * and activation scales per block, and ggml's constant factor (0.125 for iq2, 0.25 for
 * iq3_xxs) at the end. The activations are q8_K rows (q8_0 for iq4_nl and mxfp4). Multi-byte
 * weight fields are read byte by byte (little-endian), as in dequant_iq.c. */
#include "tensor/blocks.h"
#include "tensor/iq_tables.h"
#include "tensor/tensor.h"
#include "util/util.h"

/* sum over 8 values of grid * sign * q8 */
static inline int dot8_signed(uint64_t g, unsigned signs, const int8_t *q8) {
    int s = 0;
    for (int j = 0; j < 8; j++)
        s += qr_iq_grid8(g, j) * q8[j] * (signs & qr_iq_kmask[j] ? -1 : 1);
    return s;
}
/* the same for two 4-byte grid entries (values 0..3 and 4..7) */
static inline int dot4x2_signed(uint32_t g1, uint32_t g2, unsigned signs, const int8_t *q8) {
    int s = 0;
    for (int j = 0; j < 4; j++) {
        s += qr_iq_grid4(g1, j) * q8[j] * (signs & qr_iq_kmask[j] ? -1 : 1);
        s += qr_iq_grid4(g2, j) * q8[j + 4] * (signs & qr_iq_kmask[j + 4] ? -1 : 1);
    }
    return s;
}

void qr_vec_dot_iq2_xxs(int64_t n, float *out, const void *vx, const void *vy) {
    const block_iq2_xxs *x = vx;
    const block_q8_K *y = vy;
    float sumf = 0.f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = qr_fp16_to_fp32(qr_rd_u16(&x[i].d)) * y[i].d;
        const uint8_t *q = (const uint8_t *)x[i].qs;
        const int8_t *q8 = y[i].qs;
        int32_t bsum = 0;
        for (int ib = 0; ib < QK_K / 32; ib++, q += 8) {
            const uint32_t aux = qr_rd_u32(q + 4);
            int32_t sumi = 0;
            for (int l = 0; l < 4; l++, q8 += 8)
                sumi += dot8_signed(qr_iq2xxs_grid[q[l]], qr_iq_ksigns[(aux >> (7 * l)) & 127], q8);
            bsum += sumi * (int32_t)(2 * (aux >> 28) + 1);
        }
        sumf += d * (float)bsum;
    }
    *out = 0.125f * sumf;
}

void qr_vec_dot_iq2_xs(int64_t n, float *out, const void *vx, const void *vy) {
    const block_iq2_xs *x = vx;
    const block_q8_K *y = vy;
    float sumf = 0.f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = qr_fp16_to_fp32(qr_rd_u16(&x[i].d)) * y[i].d;
        const uint8_t *q = (const uint8_t *)x[i].qs;
        const int8_t *q8 = y[i].qs;
        int32_t bsum = 0;
        for (int ib = 0; ib < QK_K / 32; ib++, q += 8) {
            const int ls[2] = {2 * (x[i].scales[ib] & 15) + 1, 2 * (x[i].scales[ib] >> 4) + 1};
            for (int half = 0; half < 2; half++) {
                int32_t sumi = 0;
                for (int l = 2 * half; l < 2 * half + 2; l++, q8 += 8) {
                    const unsigned v = qr_rd_u16(q + 2 * l);
                    sumi += dot8_signed(qr_iq2xs_grid[v & 511], qr_iq_ksigns[v >> 9], q8);
                }
                bsum += sumi * ls[half];
            }
        }
        sumf += d * (float)bsum;
    }
    *out = 0.125f * sumf;
}

void qr_vec_dot_iq2_s(int64_t n, float *out, const void *vx, const void *vy) {
    const block_iq2_s *x = vx;
    const block_q8_K *y = vy;
    float sumf = 0.f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = qr_fp16_to_fp32(qr_rd_u16(&x[i].d)) * y[i].d;
        const uint8_t *qs = x[i].qs, *signs = x[i].qs + QK_K / 8;
        const int8_t *q8 = y[i].qs;
        int32_t bsum = 0;
        for (int ib = 0; ib < QK_K / 32; ib++, qs += 4, signs += 4) {
            const int ls[2] = {2 * (x[i].scales[ib] & 15) + 1, 2 * (x[i].scales[ib] >> 4) + 1};
            for (int half = 0; half < 2; half++) {
                int32_t sumi = 0;
                for (int l = 2 * half; l < 2 * half + 2; l++, q8 += 8) {
                    const unsigned idx = qs[l] | ((unsigned)x[i].qh[ib] << (8 - 2 * l) & 0x300);
                    sumi += dot8_signed(qr_iq2s_grid[idx], signs[l], q8);
                }
                bsum += sumi * ls[half];
            }
        }
        sumf += d * (float)bsum;
    }
    *out = 0.125f * sumf;
}

void qr_vec_dot_iq3_xxs(int64_t n, float *out, const void *vx, const void *vy) {
    const block_iq3_xxs *x = vx;
    const block_q8_K *y = vy;
    float sumf = 0.f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = qr_fp16_to_fp32(qr_rd_u16(&x[i].d)) * y[i].d;
        const uint8_t *qs = x[i].qs, *scales_signs = x[i].qs + QK_K / 4;
        const int8_t *q8 = y[i].qs;
        int32_t bsum = 0;
        for (int ib = 0; ib < QK_K / 32; ib++, qs += 8) {
            const uint32_t aux = qr_rd_u32(scales_signs + 4 * ib);
            int32_t sumi = 0;
            for (int l = 0; l < 4; l++, q8 += 8)
                sumi += dot4x2_signed(qr_iq3xxs_grid[qs[2 * l]], qr_iq3xxs_grid[qs[2 * l + 1]],
                                      qr_iq_ksigns[(aux >> (7 * l)) & 127], q8);
            bsum += sumi * (int32_t)(2 * (aux >> 28) + 1);
        }
        sumf += d * (float)bsum;
    }
    *out = 0.25f * sumf;
}

void qr_vec_dot_iq3_s(int64_t n, float *out, const void *vx, const void *vy) {
    const block_iq3_s *x = vx;
    const block_q8_K *y = vy;
    float sumf = 0.f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = qr_fp16_to_fp32(qr_rd_u16(&x[i].d)) * y[i].d;
        const uint8_t *qs = x[i].qs, *signs = x[i].signs;
        const int8_t *q8 = y[i].qs;
        int32_t bsum = 0;
        for (int ib = 0; ib < QK_K / 32; ib++, qs += 8, signs += 4) {
            /* one scale byte per 64 elements: low nibble for the first 32 */
            const int ls = 2 * ((x[i].scales[ib / 2] >> (4 * (ib % 2))) & 15) + 1;
            const unsigned qh = x[i].qh[ib];
            int32_t sumi = 0;
            for (int l = 0; l < 4; l++, q8 += 8)
                sumi += dot4x2_signed(qr_iq3s_grid[qs[2 * l] | ((qh << (8 - 2 * l)) & 256)],
                                      qr_iq3s_grid[qs[2 * l + 1] | ((qh << (7 - 2 * l)) & 256)],
                                      signs[l], q8);
            bsum += sumi * ls;
        }
        sumf += d * (float)bsum;
    }
    *out = sumf;
}

/* iq1_s and iq1_m: x = dl * (grid + delta), so the dot is dl * (grid . q8 + delta * sum(q8));
 * both sums stay integers (delta = +-1/8 is applied once per block, in float) */
void qr_vec_dot_iq1_s(int64_t n, float *out, const void *vx, const void *vy) {
    const block_iq1_s *x = vx;
    const block_q8_K *y = vy;
    float sumf = 0.f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const uint8_t *qs = x[i].qs;
        const int8_t *q8 = y[i].qs;
        int sumi = 0, sumi_delta = 0;
        for (int ib = 0; ib < QK_K / 32; ib++, qs += 4) {
            const unsigned qh = qr_rd_u16(&x[i].qh[ib]);
            const int ls = 2 * (int)((qh >> 12) & 7) + 1;
            const int delta = qh & 0x8000 ? -1 : 1;
            int lsum = 0;
            for (int l = 0; l < 4; l++, q8 += 8) {
                const uint64_t g = qr_iq1s_grid[qs[l] | (((qh >> (3 * l)) & 7) << 8)];
                for (int j = 0; j < 8; j++)
                    lsum += q8[j] * qr_iq_grid8_signed(g, j);
            }
            sumi += ls * lsum;
            sumi_delta += ls * delta * (y[i].bsums[2 * ib] + y[i].bsums[2 * ib + 1]);
        }
        sumf += qr_fp16_to_fp32(qr_rd_u16(&x[i].d)) * y[i].d *
                ((float)sumi + QR_IQ1S_DELTA * (float)sumi_delta);
    }
    *out = sumf;
}

void qr_vec_dot_iq1_m(int64_t n, float *out, const void *vx, const void *vy) {
    const block_iq1_m *x = vx;
    const block_q8_K *y = vy;
    float sumf = 0.f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        unsigned sc[4];
        for (int k = 0; k < 4; k++)
            sc[k] = qr_rd_u16(x[i].scales + 2 * k);
        /* the f16 super-block scale is spread over the top nibbles of the four u16 */
        const uint16_t d16 = (uint16_t)((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) |
                                        ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000));
        const uint8_t *qs = x[i].qs, *qh = x[i].qh;
        const int8_t *q8 = y[i].qs;
        int sumi = 0, sumi_delta = 0;
        for (int ib = 0; ib < QK_K / 32; ib++, qs += 4, qh += 2) {
            int sum_grid[2] = {0, 0}, sum_delta[2] = {0, 0};
            for (int l = 0; l < 4; l++, q8 += 8) {
                const unsigned h = qh[l / 2] >> (4 * (l % 2)); /* this group's nibble */
                const uint64_t g = qr_iq1s_grid[qs[l] | ((h & 7) << 8)];
                int lsum = 0, lsum_q8 = 0;
                for (int j = 0; j < 8; j++) {
                    lsum += q8[j] * qr_iq_grid8_signed(g, j);
                    lsum_q8 += q8[j];
                }
                sum_grid[l / 2] += lsum;
                sum_delta[l / 2] += h & 8 ? -lsum_q8 : lsum_q8;
            }
            const unsigned s = sc[ib / 2] >> (6 * (ib % 2));
            const int ls1 = 2 * (int)(s & 7) + 1, ls2 = 2 * (int)((s >> 3) & 7) + 1;
            sumi += sum_grid[0] * ls1 + sum_grid[1] * ls2;
            sumi_delta += sum_delta[0] * ls1 + sum_delta[1] * ls2;
        }
        sumf += qr_fp16_to_fp32(d16) * y[i].d * ((float)sumi + QR_IQ1S_DELTA * (float)sumi_delta);
    }
    *out = sumf;
}

void qr_vec_dot_iq4_nl(int64_t n, float *out, const void *vx, const void *vy) {
    const block_iq4_nl *x = vx;
    const block_q8_0 *y = vy;
    float sumf = 0.f;
    for (int64_t i = 0; i < n / QK4_NL; i++) {
        const float d = qr_fp16_to_fp32(y[i].d) * qr_fp16_to_fp32(qr_rd_u16(&x[i].d));
        int sumi1 = 0, sumi2 = 0;
        for (int j = 0; j < QK4_NL / 2; j++) {
            sumi1 += y[i].qs[j] * qr_kvalues_iq4nl[x[i].qs[j] & 15];
            sumi2 += y[i].qs[j + QK4_NL / 2] * qr_kvalues_iq4nl[x[i].qs[j] >> 4];
        }
        sumf += d * (float)(sumi1 + sumi2);
    }
    *out = sumf;
}

void qr_vec_dot_iq4_xs(int64_t n, float *out, const void *vx, const void *vy) {
    const block_iq4_xs *x = vx;
    const block_q8_K *y = vy;
    float sumf = 0.f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d4d8 = qr_fp16_to_fp32(qr_rd_u16(&x[i].d)) * y[i].d;
        const unsigned scales_h = qr_rd_u16(&x[i].scales_h);
        const uint8_t *qs = x[i].qs;
        const int8_t *q8 = y[i].qs;
        /* ggml adds each 32-element sub-block to the float sum on its own */
        for (int ib = 0; ib < QK_K / 32; ib++, qs += 16, q8 += 32) {
            const int ls = (int)(((x[i].scales_l[ib / 2] >> (4 * (ib % 2))) & 15) |
                                 (((scales_h >> (2 * ib)) & 3) << 4));
            int sumi1 = 0, sumi2 = 0;
            for (int j = 0; j < 16; j++) {
                sumi1 += q8[j] * qr_kvalues_iq4nl[qs[j] & 15];
                sumi2 += q8[j + 16] * qr_kvalues_iq4nl[qs[j] >> 4];
            }
            sumf += d4d8 * (float)(ls - 32) * (float)(sumi1 + sumi2);
        }
    }
    *out = sumf;
}

/* base-3 digit k of a tq1_0 byte (see dequant_iq.c) */
static inline int tq1_digit(uint8_t q, int k) {
    static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
    const uint8_t shifted = (uint8_t)(q * pow3[k]);
    return (int)(((unsigned)shifted * 3) >> 8);
}

void qr_vec_dot_tq1_0(int64_t n, float *out, const void *vx, const void *vy) {
    const block_tq1_0 *x = vx;
    const block_q8_K *y = vy;
    const int n_qs = (int)sizeof x->qs, n_qs32 = n_qs - n_qs % 32;
    float sumf = 0.f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const int8_t *q8 = y[i].qs; /* the elements in dequant_iq.c's order */
        int sum = 0;
        for (int j = 0; j < n_qs32; j += 32)
            for (int k = 0; k < 5; k++)
                for (int m = 0; m < 32; m++)
                    sum += (tq1_digit(x[i].qs[j + m], k) - 1) * *q8++;
        for (int j = n_qs32; j < n_qs; j += 16)
            for (int k = 0; k < 5; k++)
                for (int m = 0; m < 16; m++)
                    sum += (tq1_digit(x[i].qs[j + m], k) - 1) * *q8++;
        for (int k = 0; k < 4; k++)
            for (int j = 0; j < (int)sizeof x->qh; j++)
                sum += (tq1_digit(x[i].qh[j], k) - 1) * *q8++;
        sumf += (float)sum * (qr_fp16_to_fp32(qr_rd_u16(&x[i].d)) * y[i].d);
    }
    *out = sumf;
}

void qr_vec_dot_tq2_0(int64_t n, float *out, const void *vx, const void *vy) {
    const block_tq2_0 *x = vx;
    const block_q8_K *y = vy;
    float sumf = 0.f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const int8_t *q8 = y[i].qs;
        int32_t sumi = 0;
        for (int j = 0; j < (int)sizeof x->qs; j += 32)
            for (int l = 0; l < 4; l++)
                for (int m = 0; m < 32; m++)
                    sumi += *q8++ * (((x[i].qs[j + m] >> (2 * l)) & 3) - 1);
        sumf += (float)sumi * (y[i].d * qr_fp16_to_fp32(qr_rd_u16(&x[i].d)));
    }
    *out = sumf;
}

void qr_vec_dot_mxfp4(int64_t n, float *out, const void *vx, const void *vy) {
    const block_mxfp4 *x = vx;
    const block_q8_0 *y = vy;
    float sumf = 0.f;
    for (int64_t i = 0; i < n / QK_MXFP4; i++) {
        const float d = qr_fp16_to_fp32(y[i].d) * qr_e8m0_to_fp32_half(x[i].e);
        int sumi1 = 0, sumi2 = 0;
        for (int j = 0; j < QK_MXFP4 / 2; j++) {
            sumi1 += y[i].qs[j] * qr_kvalues_mxfp4[x[i].qs[j] & 15];
            sumi2 += y[i].qs[j + QK_MXFP4 / 2] * qr_kvalues_mxfp4[x[i].qs[j] >> 4];
        }
        sumf += d * (float)(sumi1 + sumi2);
    }
    *out = sumf;
}
