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

#endif
