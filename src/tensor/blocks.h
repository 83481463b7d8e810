/* blocks.h - the packed blocks of ggml's quantised tensor types, declared once. Layouts are
 * ggml's (ggml-common.h), so GGUF files are read in place. Half floats are stored as uint16_t.
 *
 * Legacy 32-element blocks: element j of the block is
 *   q4_0: (qs[j%16] >> 4*(j/16) & 15) - 8, times d
 *   q4_1: (qs[j%16] >> 4*(j/16) & 15) * d + m
 *   q5_0/q5_1: as q4_x with a fifth bit, bit j of the 32-bit qh; q5_0 subtracts 16
 *   q8_0: qs[j] * d
 *
 * K-quants: 256-element super-blocks of 16 sub-blocks of 16 (or 8 of 32) elements, each with
 * its own small scale (and min), scaled again by the super-block's d (and dmin).
 */
#ifndef QR_TENSOR_BLOCKS_H
#define QR_TENSOR_BLOCKS_H

#include <stdint.h>
#include <string.h>

#define QK4_0 32
#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK8_0 32
#define QK8_1 32
#define QK_K 256

typedef struct block_q4_0 {
    uint16_t d;            /* scale (f16) */
    uint8_t qs[QK4_0 / 2]; /* nibbles: low = elements 0..15, high = 16..31 */
} block_q4_0;
_Static_assert(sizeof(block_q4_0) == 18, "block_q4_0 size");

typedef struct block_q4_1 {
    uint16_t d, m; /* scale and minimum (f16) */
    uint8_t qs[QK4_1 / 2];
} block_q4_1;
_Static_assert(sizeof(block_q4_1) == 20, "block_q4_1 size");

typedef struct block_q5_0 {
    uint16_t d;
    uint8_t qh[4]; /* fifth bits, bit j of the little-endian u32 for element j */
    uint8_t qs[QK5_0 / 2];
} block_q5_0;
_Static_assert(sizeof(block_q5_0) == 22, "block_q5_0 size");

typedef struct block_q5_1 {
    uint16_t d, m;
    uint8_t qh[4];
    uint8_t qs[QK5_1 / 2];
} block_q5_1;
_Static_assert(sizeof(block_q5_1) == 24, "block_q5_1 size");

typedef struct block_q8_0 {
    uint16_t d;
    int8_t qs[QK8_0];
} block_q8_0;
_Static_assert(sizeof(block_q8_0) == 34, "block_q8_0 size");

/* activations for q4_1/q5_1: s = d * sum(qs) */
typedef struct block_q8_1 {
    uint16_t d, s;
    int8_t qs[QK8_1];
} block_q8_1;
_Static_assert(sizeof(block_q8_1) == 36, "block_q8_1 size");

/* q2_K: 16 sub-blocks of 16; scales[i] = min4 << 4 | scale4.
 * qs: 2-bit values; byte qs[32*h + l] holds elements 128*h + 32*s + l (s = 0..3) in bits 2s..2s+1
 * for l < 32 (sub-blocks alternate between l in 0..15 and 16..31).
 * x = d * (scales & 15) * q - dmin * (scales >> 4) */
typedef struct block_q2_K {
    uint8_t scales[QK_K / 16];
    uint8_t qs[QK_K / 4];
    uint16_t d, dmin;
} block_q2_K;
_Static_assert(sizeof(block_q2_K) == 84, "block_q2_K size");

/* q3_K: 16 sub-blocks of 16, 6-bit signed scales (offset 32) packed in 12 bytes:
 *   bytes 0..7  : low 4 bits of scales 0..7 (low nibble) and 8..15 (high nibble)
 *   bytes 8..11 : high 2 bits, byte 8+i holds scales i, i+4, i+8, i+12 in bits 0-1, 2-3, 4-5, 6-7
 *        scale j = (low4(j) | high2(j) << 4) - 32
 * values: 2 low bits in qs (as q2_K), third bit in hmask[l] bit (element / 32); a clear bit
 * subtracts 4.  x = d * scale * q */
typedef struct block_q3_K {
    uint8_t hmask[QK_K / 8];
    uint8_t qs[QK_K / 4];
    uint8_t scales[12];
    uint16_t d;
} block_q3_K;
_Static_assert(sizeof(block_q3_K) == 110, "block_q3_K size");

/* q4_K / q5_K: 8 sub-blocks of 32, 6-bit scale and 6-bit min each, packed in 12 bytes:
 *   j < 4:  scale = scales[j] & 63,            min = scales[j+4] & 63
 *   j >= 4: scale = (scales[j+4] & 15) | (scales[j-4] >> 6) << 4,
 *           min   = (scales[j+4] >> 4) | (scales[j] >> 6) << 4
 *   byte:    7 6 | 5 4 3 2 1 0
 *   0..3    s4..7 hi | scale 0..3        4..7   m4..7 hi | min 0..3
 *   8..11   min 4..7 lo (high nibble) | scale 4..7 lo (low nibble)
 * values: nibbles, qs[32*p + l] low = element 64p + l, high = 64p + 32 + l; q5_K adds the
 * fifth bit from qh[l] bit 2p (low half) / 2p+1 (high half).
 * x = d * scale * q - dmin * min */
typedef struct block_q4_K {
    uint16_t d, dmin;
    uint8_t scales[12];
    uint8_t qs[QK_K / 2];
} block_q4_K;
_Static_assert(sizeof(block_q4_K) == 144, "block_q4_K size");

typedef struct block_q5_K {
    uint16_t d, dmin;
    uint8_t scales[12];
    uint8_t qh[QK_K / 8];
    uint8_t qs[QK_K / 2];
} block_q5_K;
_Static_assert(sizeof(block_q5_K) == 176, "block_q5_K size");

/* q6_K: 16 sub-blocks of 16 with int8 scales; 6-bit values, offset 32:
 * low 4 bits in ql, high 2 bits in qh. For half h (128 elements) and l < 32:
 *   element 128h + l      = ql[64h + l] & 15      | (qh[32h + l] >> 0 & 3) << 4
 *   element 128h + 32 + l = ql[64h + 32 + l] & 15 | (qh[32h + l] >> 2 & 3) << 4
 *   element 128h + 64 + l = ql[64h + l] >> 4      | (qh[32h + l] >> 4 & 3) << 4
 *   element 128h + 96 + l = ql[64h + 32 + l] >> 4 | (qh[32h + l] >> 6 & 3) << 4
 * x = d * scales[element / 16] * (q - 32) */
typedef struct block_q6_K {
    uint8_t ql[QK_K / 2];
    uint8_t qh[QK_K / 4];
    int8_t scales[QK_K / 16];
    uint16_t d;
} block_q6_K;
_Static_assert(sizeof(block_q6_K) == 210, "block_q6_K size");

/* activations for k-quants: f32 scale, int8 values, and the sums of each 16 values */
typedef struct block_q8_K {
    float d;
    int8_t qs[QK_K];
    int16_t bsums[QK_K / 16];
} block_q8_K;
_Static_assert(sizeof(block_q8_K) == 292, "block_q8_K size");

/* ---- the IQ family, ternary and mxfp4 (ggml-common.h). All but iq4_nl and mxfp4 are
 * 256-element super-blocks. "Grid" types store indices into fixed tables (iq_tables.h) of 8
 * (iq2, iq1) or 4 (iq3) values; sign bits come 7 to a group of 8 values, the eighth making
 * the number of minus signs even (ksigns). All uint16_t fields are little-endian. */

/* iq2_xxs: per 32 elements 8 bytes = two u32: the first holds 4 grid indices (iq2xxs_grid,
 * one byte each), the second 4 x 7 sign bits (bits 7l..7l+6) and a 4-bit scale (bits 28..31).
 * x = d * (0.5 + scale) * 0.25 * grid * sign */
typedef struct block_iq2_xxs {
    uint16_t d;
    uint16_t qs[QK_K / 8];
} block_iq2_xxs;
_Static_assert(sizeof(block_iq2_xxs) == 66, "block_iq2_xxs size");

/* iq2_xs: per 8 elements a u16: 9-bit index into iq2xs_grid, 7 sign bits above it; per 32
 * elements a byte of two 4-bit scales (low nibble: first 16 elements).
 * x = d * (0.5 + scale) * 0.25 * grid * sign */
typedef struct block_iq2_xs {
    uint16_t d;
    uint16_t qs[QK_K / 8];
    uint8_t scales[QK_K / 32];
} block_iq2_xs;
_Static_assert(sizeof(block_iq2_xs) == 74, "block_iq2_xs size");

/* iq2_s: qs[0..31] low 8 bits of the 10-bit indices into iq2s_grid (one per 8 elements),
 * qs[32..63] 8 explicit sign bits per 8 elements; qh[ib32] the top 2 bits of the 4 indices
 * of 32 elements (bits 2l, 2l+1); scales as iq2_xs. */
typedef struct block_iq2_s {
    uint16_t d;
    uint8_t qs[QK_K / 4];
    uint8_t qh[QK_K / 32];
    uint8_t scales[QK_K / 32];
} block_iq2_s;
_Static_assert(sizeof(block_iq2_s) == 82, "block_iq2_s size");

/* iq3_xxs: qs[0..63] indices into iq3xxs_grid (4 values each); then per 32 elements a u32
 * of 4 x 7 sign bits and a 4-bit scale (bits 28..31). x = d * (0.5 + scale) * 0.5 * grid * sign */
typedef struct block_iq3_xxs {
    uint16_t d;
    uint8_t qs[3 * QK_K / 8];
} block_iq3_xxs;
_Static_assert(sizeof(block_iq3_xxs) == 98, "block_iq3_xxs size");

/* iq3_s: 9-bit indices into iq3s_grid (4 values each): low 8 bits in qs, the ninth in qh
 * (bit k of qh[ib32] for index k of those 32 elements); 8 explicit sign bits per 8 elements;
 * per 64 elements a byte of two 4-bit scales. x = d * (1 + 2 * scale) * grid * sign */
typedef struct block_iq3_s {
    uint16_t d;
    uint8_t qs[QK_K / 4];
    uint8_t qh[QK_K / 32];
    uint8_t signs[QK_K / 8];
    uint8_t scales[QK_K / 64];
} block_iq3_s;
_Static_assert(sizeof(block_iq3_s) == 110, "block_iq3_s size");

/* iq1_s: 11-bit indices into iq1s_grid (values -1, 0, 1): low 8 bits in qs, per 32 elements a
 * u16 qh with the top 3 bits of its 4 indices (bits 3l..3l+2), a 3-bit scale (bits 12..14)
 * and the sign of the delta (bit 15). x = d * (2 * scale + 1) * (grid +- 0.125) */
typedef struct block_iq1_s {
    uint16_t d;
    uint8_t qs[QK_K / 8];
    uint16_t qh[QK_K / 32];
} block_iq1_s;
_Static_assert(sizeof(block_iq1_s) == 50, "block_iq1_s size");

/* iq1_m: indices as iq1_s, the top 3 bits in a nibble of qh (one per 8 elements) whose fourth
 * bit is the delta's sign. The 4 u16 of scales hold 3-bit scales per 16 elements (bits 0..11
 * of each u16: 4 scales) and, in their top nibbles (u16 k gives bits 4k..4k+3), the f16
 * super-block scale. x = d * (2 * scale + 1) * (grid +- 0.125) */
typedef struct block_iq1_m {
    uint8_t qs[QK_K / 8];
    uint8_t qh[QK_K / 16];
    uint8_t scales[QK_K / 32];
} block_iq1_m;
_Static_assert(sizeof(block_iq1_m) == 56, "block_iq1_m size");

/* iq4_nl: as q4_0 (low nibbles elements 0..15, high 16..31) but the nibble picks one of 16
 * non-linear levels: x = d * kvalues_iq4nl[q] */
#define QK4_NL 32
typedef struct block_iq4_nl {
    uint16_t d;
    uint8_t qs[QK4_NL / 2];
} block_iq4_nl;
_Static_assert(sizeof(block_iq4_nl) == 18, "block_iq4_nl size");

/* iq4_xs: 8 sub-blocks of 32 laid out as iq4_nl, each with a 6-bit scale (offset 32): low 4
 * bits in scales_l (nibble j%2 of byte j/2), high 2 bits in scales_h (bits 2j, 2j+1).
 * x = d * (scale - 32) * kvalues_iq4nl[q] */
typedef struct block_iq4_xs {
    uint16_t d;
    uint16_t scales_h;
    uint8_t scales_l[QK_K / 64];
    uint8_t qs[QK_K / 2];
} block_iq4_xs;
_Static_assert(sizeof(block_iq4_xs) == 136, "block_iq4_xs size");

/* tq1_0: ternary values {-1, 0, 1} (stored 0, 1, 2) in base 3, five to a byte in qs and four
 * to a byte in qh, as a fixed-point fraction: the k-th digit of byte q is
 * ((uint8_t)(q * 3^k) * 3) >> 8. Order: qs[0..31] digit 0 (elements 0..31), digit 1 (32..63),
 * ... digit 4; then qs[32..47] likewise for 16 elements at a time; then qh digits 0..3.
 * x = (q - 1) * d */
typedef struct block_tq1_0 {
    uint8_t qs[(QK_K - 4 * QK_K / 64) / 5];
    uint8_t qh[QK_K / 64];
    uint16_t d;
} block_tq1_0;
_Static_assert(sizeof(block_tq1_0) == 54, "block_tq1_0 size");

/* tq2_0: 2 bits per element, qs[32h + m] bits 2l..2l+1 = element 128h + 32l + m;
 * x = (q - 1) * d */
typedef struct block_tq2_0 {
    uint8_t qs[QK_K / 4];
    uint16_t d;
} block_tq2_0;
_Static_assert(sizeof(block_tq2_0) == 66, "block_tq2_0 size");

/* mxfp4 (OCP microscaling): 32 e2m1 values as nibbles (low: 0..15, high: 16..31) and an e8m0
 * shared exponent e. x = kvalues_mxfp4[q] * 2^(e - 128) (the table holds doubled values) */
#define QK_MXFP4 32
typedef struct block_mxfp4 {
    uint8_t e;
    uint8_t qs[QK_MXFP4 / 2];
} block_mxfp4;
_Static_assert(sizeof(block_mxfp4) == 17, "block_mxfp4 size");

/* e8m0 exponent e to 2^(e - 128), half of 2^(e - 127) because kvalues_mxfp4 holds doubled
 * e2m1 values (ggml's GGML_E8M0_TO_FP32_HALF): e = 0 and 1 are the subnormals 2^-128 and
 * 2^-127; e = 255 gives 2^127, not NaN, as ggml's */
static inline float qr_e8m0_to_fp32_half(uint8_t e) {
    const uint32_t bits = e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

#endif
