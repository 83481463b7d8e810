/* dequant_iq.c - the IQ family, ternary and mxfp4 types to f32, bit for bit as ggml's
 * dequantize_row_* (ggml-quants.c): the same float operations in the same order, e.g.
 * iq2_xxs's (d * (0.5f + scale)) * 0.25f before the grid value. Every index is masked to its
 * table's size by construction, so no block, however corrupt, reads outside a table; a NaN or
 * infinite scale gives NaN or infinite values, as ggml's. Multi-byte fields are read byte by
 * byte (little-endian) so blocks need no alignment. */
#include "tensor/blocks.h"
#include "tensor/iq_tables.h"
#include "tensor/tensor.h"
#include "util/util.h"

static inline float sign_of(unsigned signs, int j) {
    return signs & qr_iq_kmask[j] ? -1.f : 1.f;
}

void qr_dequant_iq2_xxs(const void *src, float *dst, int64_t n) {
    const block_iq2_xxs *b = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = qr_fp16_to_fp32(qr_rd_u16(&b[i].d));
        const uint8_t *q = (const uint8_t *)b[i].qs;
        for (int ib = 0; ib < QK_K / 32; ib++, q += 8) {
            const uint32_t aux = qr_rd_u32(q + 4);
            const float db = d * (0.5f + (float)(aux >> 28)) * 0.25f;
            for (int l = 0; l < 4; l++, dst += 8) {
                const uint64_t g = qr_iq2xxs_grid[q[l]];
                const unsigned signs = qr_iq_ksigns[(aux >> (7 * l)) & 127];
                for (int j = 0; j < 8; j++)
                    dst[j] = db * (float)qr_iq_grid8(g, j) * sign_of(signs, j);
            }
        }
    }
}

void qr_dequant_iq2_xs(const void *src, float *dst, int64_t n) {
    const block_iq2_xs *b = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = qr_fp16_to_fp32(qr_rd_u16(&b[i].d));
        const uint8_t *q = (const uint8_t *)b[i].qs;
        for (int ib = 0; ib < QK_K / 32; ib++) {
            const float db[2] = {d * (0.5f + (float)(b[i].scales[ib] & 15)) * 0.25f,
                                 d * (0.5f + (float)(b[i].scales[ib] >> 4)) * 0.25f};
            for (int l = 0; l < 4; l++, dst += 8) {
                const unsigned v = qr_rd_u16(q + 2 * (4 * ib + l));
                const uint64_t g = qr_iq2xs_grid[v & 511];
                const unsigned signs = qr_iq_ksigns[v >> 9];
                for (int j = 0; j < 8; j++)
                    dst[j] = db[l / 2] * (float)qr_iq_grid8(g, j) * sign_of(signs, j);
            }
        }
    }
}

void qr_dequant_iq2_s(const void *src, float *dst, int64_t n) {
    const block_iq2_s *b = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = qr_fp16_to_fp32(qr_rd_u16(&b[i].d));
        const uint8_t *qs = b[i].qs, *signs = b[i].qs + QK_K / 8;
        for (int ib = 0; ib < QK_K / 32; ib++, qs += 4, signs += 4) {
            const float db[2] = {d * (0.5f + (float)(b[i].scales[ib] & 15)) * 0.25f,
                                 d * (0.5f + (float)(b[i].scales[ib] >> 4)) * 0.25f};
            for (int l = 0; l < 4; l++, dst += 8) {
                const unsigned idx = qs[l] | ((unsigned)b[i].qh[ib] << (8 - 2 * l) & 0x300);
                const uint64_t g = qr_iq2s_grid[idx];
                for (int j = 0; j < 8; j++)
                    dst[j] = db[l / 2] * (float)qr_iq_grid8(g, j) * sign_of(signs[l], j);
            }
        }
    }
}

void qr_dequant_iq3_xxs(const void *src, float *dst, int64_t n) {
    const block_iq3_xxs *b = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = qr_fp16_to_fp32(qr_rd_u16(&b[i].d));
        const uint8_t *qs = b[i].qs, *scales_signs = b[i].qs + QK_K / 4;
        for (int ib = 0; ib < QK_K / 32; ib++, qs += 8) {
            const uint32_t aux = qr_rd_u32(scales_signs + 4 * ib);
            const float db = d * (0.5f + (float)(aux >> 28)) * 0.5f;
            for (int l = 0; l < 4; l++, dst += 8) {
                const unsigned signs = qr_iq_ksigns[(aux >> (7 * l)) & 127];
                const uint32_t g1 = qr_iq3xxs_grid[qs[2 * l]], g2 = qr_iq3xxs_grid[qs[2 * l + 1]];
                for (int j = 0; j < 4; j++) {
                    dst[j] = db * (float)qr_iq_grid4(g1, j) * sign_of(signs, j);
                    dst[j + 4] = db * (float)qr_iq_grid4(g2, j) * sign_of(signs, j + 4);
                }
            }
        }
    }
}

void qr_dequant_iq3_s(const void *src, float *dst, int64_t n) {
    const block_iq3_s *b = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = qr_fp16_to_fp32(qr_rd_u16(&b[i].d));
        const uint8_t *qs = b[i].qs, *signs = b[i].signs;
        for (int ib = 0; ib < QK_K / 32; ib++, qs += 8, signs += 4) {
            /* one scale byte per 64 elements: low nibble for the first 32 */
            const unsigned sc = (b[i].scales[ib / 2] >> (4 * (ib % 2))) & 15;
            const float db = d * (float)(1 + 2 * (int)sc);
            const unsigned qh = b[i].qh[ib];
            for (int l = 0; l < 4; l++, dst += 8) {
                const uint32_t g1 = qr_iq3s_grid[qs[2 * l] | ((qh << (8 - 2 * l)) & 256)];
                const uint32_t g2 = qr_iq3s_grid[qs[2 * l + 1] | ((qh << (7 - 2 * l)) & 256)];
                for (int j = 0; j < 4; j++) {
                    dst[j] = db * (float)qr_iq_grid4(g1, j) * sign_of(signs[l], j);
                    dst[j + 4] = db * (float)qr_iq_grid4(g2, j) * sign_of(signs[l], j + 4);
                }
            }
        }
    }
}

void qr_dequant_iq1_s(const void *src, float *dst, int64_t n) {
    const block_iq1_s *b = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = qr_fp16_to_fp32(qr_rd_u16(&b[i].d));
        const uint8_t *qs = b[i].qs;
        for (int ib = 0; ib < QK_K / 32; ib++, qs += 4) {
            const unsigned qh = qr_rd_u16(&b[i].qh[ib]);
            const float dl = d * (float)(2 * (int)((qh >> 12) & 7) + 1);
            const float delta = qh & 0x8000 ? -QR_IQ1S_DELTA : QR_IQ1S_DELTA;
            for (int l = 0; l < 4; l++, dst += 8) {
                const uint64_t g = qr_iq1s_grid[qs[l] | (((qh >> (3 * l)) & 7) << 8)];
                for (int j = 0; j < 8; j++)
                    dst[j] = dl * ((float)qr_iq_grid8_signed(g, j) + delta);
            }
        }
    }
}

void qr_dequant_iq1_m(const void *src, float *dst, int64_t n) {
    const block_iq1_m *b = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        unsigned sc[4];
        for (int k = 0; k < 4; k++)
            sc[k] = qr_rd_u16(b[i].scales + 2 * k);
        /* the f16 super-block scale is spread over the top nibbles of the four u16 */
        const uint16_t d16 = (uint16_t)((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) |
                                        ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000));
        const float d = qr_fp16_to_fp32(d16);
        const uint8_t *qs = b[i].qs, *qh = b[i].qh;
        for (int ib = 0; ib < QK_K / 32; ib++, qs += 4, qh += 2) {
            const unsigned s = sc[ib / 2] >> (6 * (ib % 2));
            const float dl[2] = {d * (float)(2 * (int)(s & 7) + 1),
                                 d * (float)(2 * (int)((s >> 3) & 7) + 1)};
            for (int l = 0; l < 4; l++, dst += 8) {
                const unsigned h = qh[l / 2] >> (4 * (l % 2)); /* this group's nibble */
                const unsigned idx = qs[l] | ((h & 7) << 8);
                const float delta = h & 8 ? -QR_IQ1S_DELTA : QR_IQ1S_DELTA;
                const uint64_t g = qr_iq1s_grid[idx];
                for (int j = 0; j < 8; j++)
                    dst[j] = dl[l / 2] * ((float)qr_iq_grid8_signed(g, j) + delta);
            }
        }
    }
}

void qr_dequant_iq4_nl(const void *src, float *dst, int64_t n) {
    const block_iq4_nl *b = src;
    for (int64_t i = 0; i < n / QK4_NL; i++, dst += QK4_NL) {
        const float d = qr_fp16_to_fp32(qr_rd_u16(&b[i].d));
        for (int j = 0; j < QK4_NL / 2; j++) {
            dst[j] = d * (float)qr_kvalues_iq4nl[b[i].qs[j] & 15];
            dst[j + QK4_NL / 2] = d * (float)qr_kvalues_iq4nl[b[i].qs[j] >> 4];
        }
    }
}

void qr_dequant_iq4_xs(const void *src, float *dst, int64_t n) {
    const block_iq4_xs *b = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = qr_fp16_to_fp32(qr_rd_u16(&b[i].d));
        const unsigned scales_h = qr_rd_u16(&b[i].scales_h);
        const uint8_t *qs = b[i].qs;
        for (int ib = 0; ib < QK_K / 32; ib++, qs += 16, dst += 32) {
            const int ls = (int)(((b[i].scales_l[ib / 2] >> (4 * (ib % 2))) & 15) |
                                 (((scales_h >> (2 * ib)) & 3) << 4));
            const float dl = d * (float)(ls - 32);
            for (int j = 0; j < 16; j++) {
                dst[j] = dl * (float)qr_kvalues_iq4nl[qs[j] & 15];
                dst[j + 16] = dl * (float)qr_kvalues_iq4nl[qs[j] >> 4];
            }
        }
    }
}

/* base-3 digit k of a tq1_0 byte: the byte is a fixed-point fraction of 3^5 (or 3^4), so
 * multiplying by 3^k (mod 256) shifts digit k to the top and * 3 >> 8 reads it out */
static inline int tq1_digit(uint8_t q, int k) {
    static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
    const uint8_t shifted = (uint8_t)(q * pow3[k]);
    return (int)(((unsigned)shifted * 3) >> 8);
}

void qr_dequant_tq1_0(const void *src, float *dst, int64_t n) {
    const block_tq1_0 *b = src;
    const int n_qs = (int)sizeof b->qs, n_qs32 = n_qs - n_qs % 32;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = qr_fp16_to_fp32(qr_rd_u16(&b[i].d));
        for (int j = 0; j < n_qs32; j += 32)
            for (int k = 0; k < 5; k++)
                for (int m = 0; m < 32; m++)
                    *dst++ = (float)(tq1_digit(b[i].qs[j + m], k) - 1) * d;
        for (int j = n_qs32; j < n_qs; j += 16)
            for (int k = 0; k < 5; k++)
                for (int m = 0; m < 16; m++)
                    *dst++ = (float)(tq1_digit(b[i].qs[j + m], k) - 1) * d;
        for (int k = 0; k < 4; k++)
            for (int j = 0; j < (int)sizeof b->qh; j++)
                *dst++ = (float)(tq1_digit(b[i].qh[j], k) - 1) * d;
    }
}

void qr_dequant_tq2_0(const void *src, float *dst, int64_t n) {
    const block_tq2_0 *b = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = qr_fp16_to_fp32(qr_rd_u16(&b[i].d));
        for (int j = 0; j < (int)sizeof b->qs; j += 32)
            for (int l = 0; l < 4; l++)
                for (int m = 0; m < 32; m++)
                    *dst++ = (float)(((b[i].qs[j + m] >> (2 * l)) & 3) - 1) * d;
    }
}

void qr_dequant_mxfp4(const void *src, float *dst, int64_t n) {
    const block_mxfp4 *b = src;
    for (int64_t i = 0; i < n / QK_MXFP4; i++, dst += QK_MXFP4) {
        const float d = qr_e8m0_to_fp32_half(b[i].e);
        for (int j = 0; j < QK_MXFP4 / 2; j++) {
            dst[j] = (float)qr_kvalues_mxfp4[b[i].qs[j] & 15] * d;
            dst[j + QK_MXFP4 / 2] = (float)qr_kvalues_mxfp4[b[i].qs[j] >> 4] * d;
        }
    }
}
