/* iq_tables.h - fixed tables of the IQ, iq4 and mxfp4 types (ggml-common.h), defined in the
 * generated iq_tables.c. A grid entry packs 8 (uint64_t) or 4 (uint32_t) byte values, value j
 * in bits 8j..8j+7; iq1s_grid's bytes are signed (-1, 0, 1). */
#ifndef QR_TENSOR_IQ_TABLES_H
#define QR_TENSOR_IQ_TABLES_H

#include <stdint.h>

extern const uint8_t qr_iq_kmask[8];    /* bit j: 1 << j */
extern const uint8_t qr_iq_ksigns[128]; /* 7 sign bits plus an eighth making the count even */
extern const uint64_t qr_iq2xxs_grid[256];
extern const uint64_t qr_iq2xs_grid[512];
extern const uint64_t qr_iq2s_grid[1024];
extern const uint32_t qr_iq3xxs_grid[256];
extern const uint32_t qr_iq3s_grid[512];
extern const uint64_t qr_iq1s_grid[2048];
extern const int8_t qr_kvalues_iq4nl[16]; /* iq4_nl and iq4_xs: the 16 non-linear levels */
extern const int8_t qr_kvalues_mxfp4[16]; /* e2m1 values, doubled (ggml's kvalues_mxfp4) */

#define QR_IQ1S_DELTA 0.125f /* iq1_s and iq1_m: the shift added to each grid value */

/* value j of an 8-byte (grid8) or 4-byte (grid4) grid entry; iq1s_grid's bytes are signed */
static inline int qr_iq_grid8(uint64_t g, int j) {
    return (int)((g >> (8 * j)) & 0xff);
}
static inline int qr_iq_grid4(uint32_t g, int j) {
    return (int)((g >> (8 * j)) & 0xff);
}
static inline int qr_iq_grid8_signed(uint64_t g, int j) {
    return (int)(int8_t)(uint8_t)((g >> (8 * j)) & 0xff);
}

#endif
