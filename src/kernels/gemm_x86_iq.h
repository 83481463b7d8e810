/* gemm_x86_iq.h - x86 tiles for the grid types (iq2_xxs, iq2_xs, iq2_s, iq3_xxs, iq3_s,
 * iq1_s, iq1_m), the ternary types (tq1_0, tq2_0) and mxfp4, included by gemm_x86.h (so
 * compiled once for AVX2 and once for AVX512-VNNI) after its helpers and DEFINE_GEMM.
 *
 * Every tile takes one weight row and NT <= 4 tokens: a weight sub-block (32 values) is
 * decoded once into bytes (grid entries looked up, signs spread to bytes) and dotted with the
 * NT activation sub-blocks. The activations are those of the scalar reference
 * (tensor/vec_dot_iq.c): q8_K rows, q8_0 for mxfp4. Prompts (8+ tokens) of the iq2/iq3 types
 * decode a whole row once per call instead (on VNNI, 16 rows into a panel from 12 tokens);
 * iq4_nl prompts on VNNI take gemm_x86.h's interleaved panel (when the model has not
 * repacked them: the same results as the tile); and a q2_K tile sits at the end (llama.cpp's
 * IQ2 files carry q2_K).
 *
 * Exactness (all but q2_K): the reference sums integers over a super-block
 * (or block) and then adds one float term per super-block in order. These tiles compute the same
 * integers (in another order, which integers do not see) and then evaluate the very same float
 * expressions in the same order, so their results equal the reference's bit for bit. Clang would
 * contract those expressions into FMAs in these files (built with -mfma) but not in the scalar
 * file, hence FP_CONTRACT OFF; GCC in ISO C mode (-std=c11) does not contract. */

#include "tensor/iq_tables.h"

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

/* ---- helpers ---- */

/* the sums of the 8 i32 lanes of v[0..NT) into s[0..NT) (v[NT..3] are read as zero) */
static inline void iq_hsum_epi32_x4(const __m256i v[4], const int NT, int32_t s[4]) {
    const __m256i z = _mm256_setzero_si256();
    const __m256i h01 = _mm256_hadd_epi32(v[0], NT > 1 ? v[1] : z);
    const __m256i h23 = _mm256_hadd_epi32(NT > 2 ? v[2] : z, NT > 3 ? v[3] : z);
    const __m256i h = _mm256_hadd_epi32(h01, h23);
    _mm_storeu_si128((__m128i *)s,
                     _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1)));
}

/* +1 / -1 bytes from 32 sign bits (bit j set: byte j is -1) */
static inline __m256i iq_signs_pm1(uint32_t bits) {
#if QR_VNNI
    return _mm256_mask_blend_epi8(_cvtu32_mask32(bits), _mm256_set1_epi8(1), _mm256_set1_epi8(-1));
#else
    return _mm256_or_si256(bits_to_bytes(bits), _mm256_set1_epi8(1));
#endif
}

/* qr_iq_ksigns[v] spread to 8 bytes of +1 / -1 (bit j set: byte j is -1), as a constant
 * table: 7 sign bits, the eighth making the number of minus signs even */
#define IQ_SB(v, j) ((((v) >> (j)) & 1) ? 0xFFull : 0x01ull)
#define IQ_PAR(v) (((v) ^ (v) >> 1 ^ (v) >> 2 ^ (v) >> 3 ^ (v) >> 4 ^ (v) >> 5 ^ (v) >> 6) & 1)
#define IQ_S1(v)                                                                                   \
    (IQ_SB(v, 0) | IQ_SB(v, 1) << 8 | IQ_SB(v, 2) << 16 | IQ_SB(v, 3) << 24 | IQ_SB(v, 4) << 32 |  \
     IQ_SB(v, 5) << 40 | IQ_SB(v, 6) << 48 | (IQ_PAR(v) ? 0xFFull : 0x01ull) << 56)
#define IQ_S4(v) IQ_S1(v), IQ_S1((v) + 1), IQ_S1((v) + 2), IQ_S1((v) + 3)
#define IQ_S16(v) IQ_S4(v), IQ_S4((v) + 4), IQ_S4((v) + 8), IQ_S4((v) + 12)
#define IQ_S64(v) IQ_S16(v), IQ_S16((v) + 16), IQ_S16((v) + 32), IQ_S16((v) + 48)
static const uint64_t iq_ksigns_pm1[128] = {IQ_S64(0u), IQ_S64(64u)};
#undef IQ_S64
#undef IQ_S16
#undef IQ_S4
#undef IQ_S1
#undef IQ_PAR
#undef IQ_SB

/* the signs of 4 groups of 8 from 4 7-bit ksigns indices at bits 0, 7, 14, 21 of aux */
static inline __m256i iq_ksigns32(uint32_t aux) {
    return _mm256_setr_epi64x(
        (long long)iq_ksigns_pm1[aux & 127], (long long)iq_ksigns_pm1[(aux >> 7) & 127],
        (long long)iq_ksigns_pm1[(aux >> 14) & 127], (long long)iq_ksigns_pm1[(aux >> 21) & 127]);
}

/* 16-bit scales: lo in the first 16 values of a sub-block, hi in the last 16 */
static inline __m256i iq_scales16(int lo, int hi) {
    return _mm256_set_m128i(_mm_set1_epi16((short)hi), _mm_set1_epi16((short)lo));
}

static inline const block_q8_K *iq_act(const char *a, size_t as, int t, int64_t i) {
    return (const block_q8_K *)(a + (size_t)t * as) + i;
}

/* ---- iq4_nl prompts on VNNI ----
 * gemm_x86.h's iq4_nl kernel is the 4-token tile at every batch size; from IL_MIN_TOKENS
 * tokens on VNNI, 8-row groups go through the interleaved panel of q4_0 / q5_0 / q8_0
 * (DEFINE_IL_GEMM) instead, with the levels + 128 as unsigned bytes (decode_u_iq4_nl) and
 * q8_0's offset correction. The remaining rows, and every row on AVX2, keep the tile. */
#if QR_VNNI
DEFINE_IL_GEMM(il_gemm_iq4_nl, block_iq4_nl, decode_u_iq4_nl, Q8_0_OFFSET_SHIFT)
#endif
static void gemm_iq4_nl_prompt(int64_t n, const void *w, size_t w_stride, const void *act,
                               size_t act_stride, float *y, int64_t y_stride, int64_t nr,
                               int64_t nt) {
    int64_t r0 = 0;
#if QR_VNNI
    if (nt >= IL_MIN_TOKENS)
        for (; r0 + IL_ROWS <= nr; r0 += IL_ROWS)
            il_gemm_iq4_nl(n, (const char *)w + (size_t)r0 * w_stride, w_stride, act, act_stride,
                           y + r0, y_stride, nt);
#endif
    if (r0 < nr)
        gemm_iq4_nl(n, (const char *)w + (size_t)r0 * w_stride, w_stride, act, act_stride, y + r0,
                    y_stride, nr - r0, nt);
}

/* ---- the grid types with sign bits: iq2_xxs, iq2_xs, iq2_s, iq3_xxs, iq3_s ----
 * A sub-block decodes to g, the grid values (unsigned, 4..62: never 0), s, the signs as +1 /
 * -1 bytes, and sc, its odd scales (one or two) as 16-bit lanes. Per token: y with the
 * weights' signs (psignb), times g in maddubs (pair sums <= 2 * 62 * 128, exact in 16 bits),
 * times the scale and widened in one pmaddwd / vpdpwssd. */

static inline void decode_iq2_xxs(const block_iq2_xxs *x, int ib, __m256i *g, __m256i *s,
                                  __m256i *sc) {
    const uint8_t *q = (const uint8_t *)x->qs + 8 * ib; /* 4 grid indices, then aux */
    const uint32_t aux = qr_rd_u32(q + 4);
    *g = _mm256_setr_epi64x((long long)qr_iq2xxs_grid[q[0]], (long long)qr_iq2xxs_grid[q[1]],
                            (long long)qr_iq2xxs_grid[q[2]], (long long)qr_iq2xxs_grid[q[3]]);
    *s = iq_ksigns32(aux);
    *sc = _mm256_set1_epi16((short)(2 * (aux >> 28) + 1));
}

static inline void decode_iq2_xs(const block_iq2_xs *x, int ib, __m256i *g, __m256i *s,
                                 __m256i *sc) {
    const uint8_t *q = (const uint8_t *)x->qs + 8 * ib; /* 4 u16: 9-bit index, 7 sign bits */
    unsigned v[4];
    for (int l = 0; l < 4; l++)
        v[l] = qr_rd_u16(q + 2 * l);
    *g = _mm256_setr_epi64x(
        (long long)qr_iq2xs_grid[v[0] & 511], (long long)qr_iq2xs_grid[v[1] & 511],
        (long long)qr_iq2xs_grid[v[2] & 511], (long long)qr_iq2xs_grid[v[3] & 511]);
    *s = _mm256_setr_epi64x(
        (long long)iq_ksigns_pm1[v[0] >> 9], (long long)iq_ksigns_pm1[v[1] >> 9],
        (long long)iq_ksigns_pm1[v[2] >> 9], (long long)iq_ksigns_pm1[v[3] >> 9]);
    const unsigned b = x->scales[ib];
    *sc = iq_scales16(2 * (int)(b & 15) + 1, 2 * (int)(b >> 4) + 1);
}

static inline void decode_iq2_s(const block_iq2_s *x, int ib, __m256i *g, __m256i *s, __m256i *sc) {
    const uint8_t *qs = x->qs + 4 * ib;
    const unsigned qh = x->qh[ib];
    *g = _mm256_setr_epi64x((long long)qr_iq2s_grid[qs[0] | ((qh << 8) & 0x300)],
                            (long long)qr_iq2s_grid[qs[1] | ((qh << 6) & 0x300)],
                            (long long)qr_iq2s_grid[qs[2] | ((qh << 4) & 0x300)],
                            (long long)qr_iq2s_grid[qs[3] | ((qh << 2) & 0x300)]);
    *s = iq_signs_pm1(qr_rd_u32(x->qs + QK_K / 8 + 4 * ib));
    const unsigned b = x->scales[ib];
    *sc = iq_scales16(2 * (int)(b & 15) + 1, 2 * (int)(b >> 4) + 1);
}

static inline void decode_iq3_xxs(const block_iq3_xxs *x, int ib, __m256i *g, __m256i *s,
                                  __m256i *sc) {
    const uint8_t *q = x->qs + 8 * ib;
    const uint32_t aux = qr_rd_u32(x->qs + QK_K / 4 + 4 * ib);
    *g = _mm256_setr_epi32((int)qr_iq3xxs_grid[q[0]], (int)qr_iq3xxs_grid[q[1]],
                           (int)qr_iq3xxs_grid[q[2]], (int)qr_iq3xxs_grid[q[3]],
                           (int)qr_iq3xxs_grid[q[4]], (int)qr_iq3xxs_grid[q[5]],
                           (int)qr_iq3xxs_grid[q[6]], (int)qr_iq3xxs_grid[q[7]]);
    *s = iq_ksigns32(aux);
    *sc = _mm256_set1_epi16((short)(2 * (aux >> 28) + 1));
}

static inline void decode_iq3_s(const block_iq3_s *x, int ib, __m256i *g, __m256i *s, __m256i *sc) {
    const uint8_t *q = x->qs + 8 * ib;
    const unsigned qh = x->qh[ib]; /* bit k: the ninth bit of index k */
    *g = _mm256_setr_epi32(
        (int)qr_iq3s_grid[q[0] | ((qh << 8) & 256)], (int)qr_iq3s_grid[q[1] | ((qh << 7) & 256)],
        (int)qr_iq3s_grid[q[2] | ((qh << 6) & 256)], (int)qr_iq3s_grid[q[3] | ((qh << 5) & 256)],
        (int)qr_iq3s_grid[q[4] | ((qh << 4) & 256)], (int)qr_iq3s_grid[q[5] | ((qh << 3) & 256)],
        (int)qr_iq3s_grid[q[6] | ((qh << 2) & 256)], (int)qr_iq3s_grid[q[7] | ((qh << 1) & 256)]);
    *s = iq_signs_pm1(qr_rd_u32(x->signs + 4 * ib));
    *sc = _mm256_set1_epi16((short)(2 * ((x->scales[ib / 2] >> (4 * (ib % 2))) & 15) + 1));
}

/* One row x NT tokens of a signed grid type; FACTOR is the reference's final constant. */
#define IQ_GRID_TILE(name, block_t, decode, FACTOR)                                                \
    TILE void name(int64_t n, const char *wr, const char *a, size_t as, float *y, int64_t ys,      \
                   const int NT) {                                                                 \
        float sumf[4] = {0.0f, 0.0f, 0.0f, 0.0f};                                                  \
        for (int64_t i = 0; i < n / QK_K; i++) {                                                   \
            const block_t *x = (const block_t *)wr + i;                                            \
            __m256i isum[4];                                                                       \
            UNROLL for (int t = 0; t < 4; t++) isum[t] = _mm256_setzero_si256();                   \
            UNROLL for (int ib = 0; ib < QK_K / 32; ib++) {                                        \
                __m256i g, s, sc;                                                                  \
                decode(x, ib, &g, &s, &sc);                                                        \
                UNROLL for (int t = 0; t < NT; t++) {                                              \
                    const __m256i yq = load256(iq_act(a, as, t, i)->qs + 32 * ib);                 \
                    isum[t] =                                                                      \
                        dot_i16(isum[t], _mm256_maddubs_epi16(g, _mm256_sign_epi8(yq, s)), sc);    \
                }                                                                                  \
            }                                                                                      \
            int32_t bsum[4];                                                                       \
            iq_hsum_epi32_x4(isum, NT, bsum);                                                      \
            const float dx = f16(qr_rd_u16(&x->d));                                                \
            UNROLL for (int t = 0; t < NT; t++) {                                                  \
                const float d = dx * iq_act(a, as, t, i)->d;                                       \
                sumf[t] += d * (float)bsum[t];                                                     \
            }                                                                                      \
        }                                                                                          \
        UNROLL for (int t = 0; t < NT; t++) y[t * ys] = FACTOR * sumf[t];                          \
    }

IQ_GRID_TILE(tile_iq2_xxs, block_iq2_xxs, decode_iq2_xxs, 0.125f)
IQ_GRID_TILE(tile_iq2_xs, block_iq2_xs, decode_iq2_xs, 0.125f)
IQ_GRID_TILE(tile_iq2_s, block_iq2_s, decode_iq2_s, 0.125f)
IQ_GRID_TILE(tile_iq3_xxs, block_iq3_xxs, decode_iq3_xxs, 0.25f)
IQ_GRID_TILE(tile_iq3_s, block_iq3_s, decode_iq3_s, 1.0f)
DEFINE_GEMM(gemm_tiles_iq2_xxs, tile_iq2_xxs)
DEFINE_GEMM(gemm_tiles_iq2_xs, tile_iq2_xs)
DEFINE_GEMM(gemm_tiles_iq2_s, tile_iq2_s)
DEFINE_GEMM(gemm_tiles_iq3_xxs, tile_iq3_xxs)
DEFINE_GEMM(gemm_tiles_iq3_s, tile_iq3_s)

/* Prompts (IQ_ROW_MIN_TOKENS or more): the decoding (grid lookups, signs, scales) costs about
 * three times the per-token work, so a weight row is decoded once per call into a scratch row
 * (per sub-block: g, s and sc as three vectors, 3 bytes per weight, in L1) that all the
 * tokens then read 4 at a time. Rows longer than IQ_ROW_MAX take the 4-token tiles alone. */
#define IQ_ROW_MAX 8192
#define IQ_ROW_MIN_TOKENS 8

TILE void iq_grid_row_tokens(const __m256i *dec, const float *dx, int64_t n, const char *a,
                             size_t as, float factor, float *y, int64_t ys, const int NT) {
    float sumf[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int64_t i = 0; i < n / QK_K; i++) {
        __m256i isum[4];
        UNROLL for (int t = 0; t < 4; t++) isum[t] = _mm256_setzero_si256();
        UNROLL for (int ib = 0; ib < QK_K / 32; ib++) {
            const __m256i *v = dec + 3 * (i * (QK_K / 32) + ib);
            const __m256i g = _mm256_load_si256(v), s = _mm256_load_si256(v + 1);
            const __m256i sc = _mm256_load_si256(v + 2);
            UNROLL for (int t = 0; t < NT; t++) {
                const __m256i yq = load256(iq_act(a, as, t, i)->qs + 32 * ib);
                isum[t] = dot_i16(isum[t], _mm256_maddubs_epi16(g, _mm256_sign_epi8(yq, s)), sc);
            }
        }
        int32_t bsum[4];
        iq_hsum_epi32_x4(isum, NT, bsum);
        UNROLL for (int t = 0; t < NT; t++) {
            const float d = dx[i] * iq_act(a, as, t, i)->d;
            sumf[t] += d * (float)bsum[t];
        }
    }
    UNROLL for (int t = 0; t < NT; t++) y[t * ys] = factor * sumf[t];
}

#define DEFINE_IQ_GRID_GEMM(name, block_t, decode, FACTOR, PAIR)                                   \
    IQ_PANEL_GEMM(name, block_t, decode, FACTOR, PAIR)                                             \
    static void gemm_rows_##name(int64_t n, const void *w, size_t w_stride, const void *act,            \
                            size_t act_stride, float *y, int64_t y_stride, int64_t nr,             \
                            int64_t nt) {                                                          \
        if (nt < IQ_ROW_MIN_TOKENS || n > IQ_ROW_MAX) {                                            \
            gemm_tiles_##name(n, w, w_stride, act, act_stride, y, y_stride, nr, nt);               \
            return;                                                                                \
        }                                                                                          \
        _Alignas(32) __m256i dec[3 * IQ_ROW_MAX / 32];                                             \
        float dx[IQ_ROW_MAX / QK_K];                                                               \
        const char *ac = act;                                                                      \
        for (int64_t r = 0; r < nr; r++) {                                                         \
            const block_t *x = (const block_t *)((const char *)w + (size_t)r * w_stride);          \
            for (int64_t i = 0; i < n / QK_K; i++) {                                               \
                dx[i] = f16(qr_rd_u16(&x[i].d));                                                   \
                for (int ib = 0; ib < QK_K / 32; ib++) {                                           \
                    __m256i *v = dec + 3 * (i * (QK_K / 32) + ib);                                 \
                    decode(&x[i], ib, &v[0], &v[1], &v[2]);                                        \
                }                                                                                  \
            }                                                                                      \
            int64_t t = 0;                                                                         \
            for (; t + 4 <= nt; t += 4)                                                            \
                iq_grid_row_tokens(dec, dx, n, ac + (size_t)t * act_stride, act_stride, FACTOR,    \
                                   y + t * y_stride + r, y_stride, 4);                             \
            const char *at = ac + (size_t)t * act_stride;                                          \
            float *yt = y + t * y_stride + r;                                                      \
            switch (nt - t) {                                                                      \
            case 3:                                                                                \
                iq_grid_row_tokens(dec, dx, n, at, act_stride, FACTOR, yt, y_stride, 3);           \
                break;                                                                             \
            case 2:                                                                                \
                iq_grid_row_tokens(dec, dx, n, at, act_stride, FACTOR, yt, y_stride, 2);           \
                break;                                                                             \
            case 1:                                                                                \
                iq_grid_row_tokens(dec, dx, n, at, act_stride, FACTOR, yt, y_stride, 1);           \
                break;                                                                             \
            default:                                                                               \
                break;                                                                             \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    static void gemm_##name(int64_t n, const void *w, size_t w_stride, const void *act,            \
                            size_t act_stride, float *y, int64_t y_stride, int64_t nr,             \
                            int64_t nt) {                                                          \
        const int64_t r0 = gemm_panel_##name(n, w, w_stride, act, act_stride, y, y_stride, nr, nt); \
        if (r0 < nr)                                                                               \
            gemm_rows_##name(n, (const char *)w + (size_t)r0 * w_stride, w_stride, act,           \
                             act_stride, y + r0, y_stride, nr - r0, nt);                           \
    }

/* Prompts on VNNI: 16 rows at a time decoded once per call into a panel of q4_K-style x16
 * superblocks (IQP_SB bytes each): the rows' d as floats (64 bytes), the odd scales as bytes
 * [half h][row] (16 halves of 16 values; 256), then per half four vectors of the weights
 * g * s + 128 as unsigned bytes, byte 4r + k of vector q the row r's value 16h + 4q + k (4096).
 * One vpdpbusd of a broadcast activation dword then adds 16 rows' products; each half's sum
 * starts at -128 times q8_K's bsum of it and is multiplied by the rows' scales (vpmulld; once
 * per sub-block where both halves share one scale: PAIR). The integer sum of a row and
 * superblock is the reference's, and the float steps (d = dx * dy, sumf += d * sum, FACTOR *
 * sumf) are its too, in its order: the same bits as the tiles, 8 tokens per pass instead of 4,
 * with no per-token sign or scale work. Rows beyond the last group of 16 take the row path. */
#if QR_VNNI
#define IQP_SB (64 + 256 + 4096)

TILE void iqp_group(const uint8_t *P, int64_t nsb, const char *a, size_t as, float factor,
                    float *y, int64_t ys, const int NT, const int PAIR) {
    __m512 acc[8];
    UNROLL for (int t = 0; t < NT; t++) acc[t] = _mm512_setzero_ps();
    for (int64_t i = 0; i < nsb; i++, P += IQP_SB) {
        __m512i isum[8];
        UNROLL for (int t = 0; t < NT; t++) isum[t] = _mm512_setzero_si512();
        for (int h = 0; h < 16; h += 1 + PAIR) {
            __m512i v[8];
            UNROLL for (int q = 0; q < 4 * (1 + PAIR); q++) v[q] =
                _mm512_load_si512(P + 320 + 256 * h + 64 * q);
            const __m512i sc = _mm512_cvtepi8_epi32(_mm_load_si128((const __m128i *)(P + 64 + 16 * h)));
            UNROLL for (int t = 0; t < NT; t++) {
                const block_q8_K *yb = iq_act(a, as, t, i);
                const int8_t *yq = yb->qs + 16 * h;
                __m512i s0 = _mm512_set1_epi32(-128 * yb->bsums[h]);
                UNROLL for (int q = 0; q < 4; q++) s0 =
                    _mm512_dpbusd_epi32(s0, v[q], _mm512_set1_epi32((int)qr_rd_u32(yq + 4 * q)));
                if (PAIR) {
                    __m512i s1 = _mm512_set1_epi32(-128 * yb->bsums[h + 1]);
                    UNROLL for (int q = 0; q < 4; q++) s1 = _mm512_dpbusd_epi32(
                        s1, v[4 + q], _mm512_set1_epi32((int)qr_rd_u32(yq + 16 + 4 * q)));
                    s0 = _mm512_add_epi32(s0, s1);
                }
                isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(s0, sc));
            }
        }
        const __m512 dx = _mm512_load_ps((const float *)P);
        UNROLL for (int t = 0; t < NT; t++) {
            const __m512 d = _mm512_mul_ps(dx, _mm512_set1_ps(iq_act(a, as, t, i)->d));
            acc[t] = _mm512_add_ps(acc[t], _mm512_mul_ps(d, _mm512_cvtepi32_ps(isum[t])));
        }
    }
    UNROLL for (int t = 0; t < NT; t++)
        _mm512_storeu_ps(y + t * ys, _mm512_mul_ps(_mm512_set1_ps(factor), acc[t]));
}

/* the panel's row r of superblock i from a sub-block decoder's g, s, sc (sub-block ib) */
static inline void iqp_store(uint8_t *P, int r, int ib, __m256i g, __m256i s, __m256i sc) {
    uint8_t tmp[32];
    _mm256_storeu_si256((__m256i *)tmp,
                        _mm256_xor_si256(_mm256_sign_epi8(g, s), _mm256_set1_epi8((char)0x80)));
    P[64 + 16 * (2 * ib) + r] = (uint8_t)_mm256_extract_epi16(sc, 0);
    P[64 + 16 * (2 * ib + 1) + r] = (uint8_t)_mm256_extract_epi16(sc, 8);
    for (int k = 0; k < 8; k++) /* dword k: half 2ib + k/4, vector k%4 */
        memcpy(P + 320 + 256 * (2 * ib + k / 4) + 64 * (k % 4) + 4 * r, tmp + 4 * k, 4);
}

#define IQ_PANEL_CASE(k, F, PR)                                                                    \
    case k:                                                                                        \
        iqp_group(P, nsb, at, act_stride, F, yt, y_stride, k, PR);                                 \
        break;
/* from 12 tokens (1536 x 576 iq3_s / iq2_xs: about even with the row path at 12, 1.2-1.3x at
 * 16, 2.1-2.3x at 64; below 12 the panel's scattered stores cost more than they save) */
#define IQ_PANEL_MIN_TOKENS 12
/* returns the rows done (a multiple of 16; 0 below IQ_PANEL_MIN_TOKENS tokens) */
#define IQ_PANEL_GEMM(name, block_t, decode, FACTOR, PAIR)                                         \
    static int64_t gemm_panel_##name(int64_t n, const void *w, size_t w_stride, const void *act,   \
                                     size_t act_stride, float *y, int64_t y_stride, int64_t nr,    \
                                     int64_t nt) {                                                 \
        if (nt < IQ_PANEL_MIN_TOKENS || nr < 16) return 0;                                           \
        const int64_t nsb = n / QK_K;                                                              \
        uint8_t *P = aligned_alloc(64, (size_t)nsb * IQP_SB);                                      \
        if (!P) return 0;                                                                          \
        int64_t r0 = 0;                                                                            \
        for (; r0 + 16 <= nr; r0 += 16) {                                                          \
            for (int r = 0; r < 16; r++) {                                                         \
                const block_t *x = (const block_t *)((const char *)w + (size_t)(r0 + r) * w_stride); \
                for (int64_t i = 0; i < nsb; i++) {                                                \
                    uint8_t *Pi = P + (size_t)i * IQP_SB;                                          \
                    ((float *)Pi)[r] = f16(qr_rd_u16(&x[i].d));                                    \
                    UNROLL for (int ib = 0; ib < QK_K / 32; ib++) {                                \
                        __m256i g, s, sc;                                                          \
                        decode(&x[i], ib, &g, &s, &sc);                                            \
                        iqp_store(Pi, r, ib, g, s, sc);                                            \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
            for (int64_t t = 0; t < nt; t += 8) {                                                  \
                const char *at = (const char *)act + (size_t)t * act_stride;                       \
                float *yt = y + t * y_stride + r0;                                                 \
                switch (nt - t < 8 ? nt - t : 8) {                                                 \
                    IQ_PANEL_CASE(8, FACTOR, PAIR) IQ_PANEL_CASE(7, FACTOR, PAIR)                  \
                    IQ_PANEL_CASE(6, FACTOR, PAIR) IQ_PANEL_CASE(5, FACTOR, PAIR)                  \
                    IQ_PANEL_CASE(4, FACTOR, PAIR) IQ_PANEL_CASE(3, FACTOR, PAIR)                  \
                    IQ_PANEL_CASE(2, FACTOR, PAIR)                                                 \
                default:                                                                           \
                    iqp_group(P, nsb, at, act_stride, FACTOR, yt, y_stride, 1, PAIR);              \
                    break;                                                                         \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        free(P);                                                                                   \
        return r0;                                                                                 \
    }
#else
#define IQ_PANEL_GEMM(name, block_t, decode, FACTOR, PAIR)                                         \
    static int64_t gemm_panel_##name(int64_t n, const void *w, size_t w_stride, const void *act,   \
                                     size_t act_stride, float *y, int64_t y_stride, int64_t nr,    \
                                     int64_t nt) {                                                 \
        (void)n, (void)w, (void)w_stride, (void)act, (void)act_stride, (void)y, (void)y_stride;    \
        (void)nr, (void)nt;                                                                        \
        return 0;                                                                                  \
    }
#endif

/* PAIR: one scale per sub-block of 32 (iq2_xs and iq2_s have one per 16) */
DEFINE_IQ_GRID_GEMM(iq2_xxs, block_iq2_xxs, decode_iq2_xxs, 0.125f, 1)
DEFINE_IQ_GRID_GEMM(iq2_xs, block_iq2_xs, decode_iq2_xs, 0.125f, 0)
DEFINE_IQ_GRID_GEMM(iq2_s, block_iq2_s, decode_iq2_s, 0.125f, 0)
DEFINE_IQ_GRID_GEMM(iq3_xxs, block_iq3_xxs, decode_iq3_xxs, 0.25f, 1)
DEFINE_IQ_GRID_GEMM(iq3_s, block_iq3_s, decode_iq3_s, 1.0f, 1)

/* ---- iq1_s and iq1_m: grid values -1, 0, 1 plus a delta of +-1/8 ----
 * The grid values are decoded as u = grid + 1 (0..2) for maddubs; sum(grid * y) is then
 * sum(u * y) - sum(y), where sum(y) per 16 values is the activation's bsums. The delta's
 * integer sum (reference: sumi_delta) is kept apart, as the reference applies 1/8 to it in
 * float: iq1_s has one delta per sub-block (through bsums), iq1_m one per 8 values (y with the
 * delta's sign, summed by maddubs against ones). */

static inline __m256i iq1_grid_u(const uint8_t *qs, const unsigned idx_hi[4]) {
    const __m256i g = _mm256_setr_epi64x((long long)qr_iq1s_grid[qs[0] | idx_hi[0] << 8],
                                         (long long)qr_iq1s_grid[qs[1] | idx_hi[1] << 8],
                                         (long long)qr_iq1s_grid[qs[2] | idx_hi[2] << 8],
                                         (long long)qr_iq1s_grid[qs[3] | idx_hi[3] << 8]);
    return _mm256_add_epi8(g, _mm256_set1_epi8(1));
}

TILE void tile_iq1_s(int64_t n, const char *wr, const char *a, size_t as, float *y, int64_t ys,
                     const int NT) {
    float sumf[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int64_t i = 0; i < n / QK_K; i++) {
        const block_iq1_s *x = (const block_iq1_s *)wr + i;
        __m256i isum[4], dsum[4];
        UNROLL for (int t = 0; t < 4; t++) isum[t] = dsum[t] = _mm256_setzero_si256();
        _Alignas(32) int16_t ls16[16], lsd16[16]; /* per 16 values: scale, scale * delta */
        UNROLL for (int ib = 0; ib < QK_K / 32; ib++) {
            const unsigned qh = qr_rd_u16(&x->qh[ib]);
            const unsigned hi[4] = {qh & 7, (qh >> 3) & 7, (qh >> 6) & 7, (qh >> 9) & 7};
            const __m256i u = iq1_grid_u(x->qs + 4 * ib, hi);
            const int ls = 2 * (int)((qh >> 12) & 7) + 1;
            ls16[2 * ib] = ls16[2 * ib + 1] = (int16_t)ls;
            lsd16[2 * ib] = lsd16[2 * ib + 1] = (int16_t)(qh & 0x8000 ? -ls : ls);
            const __m256i sc = _mm256_set1_epi16((short)ls);
            UNROLL for (int t = 0; t < NT; t++) {
                const __m256i yq = load256(iq_act(a, as, t, i)->qs + 32 * ib);
                isum[t] = dot_i16(isum[t], _mm256_maddubs_epi16(u, yq), sc);
            }
        }
        const __m256i ls_v = _mm256_load_si256((const __m256i *)ls16);
        const __m256i lsd_v = _mm256_load_si256((const __m256i *)lsd16);
        UNROLL for (int t = 0; t < NT; t++) {
            const __m256i bs = load256(iq_act(a, as, t, i)->bsums);
            isum[t] = _mm256_sub_epi32(isum[t], _mm256_madd_epi16(bs, ls_v)); /* the +1 of u */
            dsum[t] = _mm256_madd_epi16(bs, lsd_v);
        }
        int32_t sumi[4], sumi_delta[4];
        iq_hsum_epi32_x4(isum, NT, sumi);
        iq_hsum_epi32_x4(dsum, NT, sumi_delta);
        const float dx = f16(qr_rd_u16(&x->d));
        UNROLL for (int t = 0; t < NT; t++) sumf[t] +=
            dx * iq_act(a, as, t, i)->d * ((float)sumi[t] + QR_IQ1S_DELTA * (float)sumi_delta[t]);
    }
    UNROLL for (int t = 0; t < NT; t++) y[t * ys] = sumf[t];
}
DEFINE_GEMM(gemm_iq1_s, tile_iq1_s)

TILE void tile_iq1_m(int64_t n, const char *wr, const char *a, size_t as, float *y, int64_t ys,
                     const int NT) {
    const __m256i ones = _mm256_set1_epi8(1);
    float sumf[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int64_t i = 0; i < n / QK_K; i++) {
        const block_iq1_m *x = (const block_iq1_m *)wr + i;
        unsigned sc4[4];
        for (int k = 0; k < 4; k++)
            sc4[k] = qr_rd_u16(x->scales + 2 * k);
        const uint16_t d16 = (uint16_t)((sc4[0] >> 12) | ((sc4[1] >> 8) & 0x00f0) |
                                        ((sc4[2] >> 4) & 0x0f00) | (sc4[3] & 0xf000));
        __m256i isum[4], dsum[4];
        UNROLL for (int t = 0; t < 4; t++) isum[t] = dsum[t] = _mm256_setzero_si256();
        _Alignas(32) int16_t ls16[16];
        UNROLL for (int ib = 0; ib < QK_K / 32; ib++) {
            const uint8_t *qh = x->qh + 2 * ib; /* a nibble per 8 values: 3 index bits, sign */
            const unsigned h[4] = {qh[0] & 15u, qh[0] >> 4, qh[1] & 15u, qh[1] >> 4};
            const unsigned hi[4] = {h[0] & 7, h[1] & 7, h[2] & 7, h[3] & 7};
            const __m256i u = iq1_grid_u(x->qs + 4 * ib, hi);
            const __m256i delta = _mm256_setr_epi64x(
                h[0] & 8 ? -1LL : 0x0101010101010101LL, h[1] & 8 ? -1LL : 0x0101010101010101LL,
                h[2] & 8 ? -1LL : 0x0101010101010101LL, h[3] & 8 ? -1LL : 0x0101010101010101LL);
            const unsigned s = sc4[ib / 2] >> (6 * (ib % 2));
            const int ls1 = 2 * (int)(s & 7) + 1, ls2 = 2 * (int)((s >> 3) & 7) + 1;
            ls16[2 * ib] = (int16_t)ls1;
            ls16[2 * ib + 1] = (int16_t)ls2;
            const __m256i sc = iq_scales16(ls1, ls2);
            UNROLL for (int t = 0; t < NT; t++) {
                const __m256i yq = load256(iq_act(a, as, t, i)->qs + 32 * ib);
                isum[t] = dot_i16(isum[t], _mm256_maddubs_epi16(u, yq), sc);
                dsum[t] =
                    dot_i16(dsum[t], _mm256_maddubs_epi16(ones, _mm256_sign_epi8(yq, delta)), sc);
            }
        }
        const __m256i ls_v = _mm256_load_si256((const __m256i *)ls16);
        UNROLL for (int t = 0; t < NT; t++) isum[t] =
            _mm256_sub_epi32(isum[t], _mm256_madd_epi16(load256(iq_act(a, as, t, i)->bsums), ls_v));
        int32_t sumi[4], sumi_delta[4];
        iq_hsum_epi32_x4(isum, NT, sumi);
        iq_hsum_epi32_x4(dsum, NT, sumi_delta);
        const float dx = f16(d16);
        UNROLL for (int t = 0; t < NT; t++) sumf[t] +=
            dx * iq_act(a, as, t, i)->d * ((float)sumi[t] + QR_IQ1S_DELTA * (float)sumi_delta[t]);
    }
    UNROLL for (int t = 0; t < NT; t++) y[t * ys] = sumf[t];
}
DEFINE_GEMM(gemm_iq1_m, tile_iq1_m)

/* ---- tq2_0 and tq1_0: ternary, w = q - 1 with q in 0..2 (tq2_0: 0..3) ----
 * q is dotted unsigned (one vpdpbusd on VNNI) and sum(y) (the activation's bsums) subtracted
 * once per super-block. */

/* acc + sum(y) of a q8_K block, spread over the lanes, subtracted */
static inline __m256i tq_minus_sum_y(__m256i acc, const block_q8_K *yb) {
    return _mm256_sub_epi32(acc, _mm256_madd_epi16(load256(yb->bsums), _mm256_set1_epi16(1)));
}

/* the shared end of both ternary tiles: one float term per super-block, as the reference */
#define TQ_FINISH(xd_expr)                                                                         \
    do {                                                                                           \
        int32_t sumi[4];                                                                           \
        UNROLL for (int t = 0; t < NT; t++) isum[t] =                                              \
            tq_minus_sum_y(isum[t], iq_act(a, as, t, i));                                          \
        iq_hsum_epi32_x4(isum, NT, sumi);                                                          \
        const float dx = (xd_expr);                                                                \
        UNROLL for (int t = 0; t < NT; t++) sumf[t] +=                                             \
            TQ_TERM(sumi[t], dx, iq_act(a, as, t, i)->d);                                          \
    } while (0)

TILE void tile_tq2_0(int64_t n, const char *wr, const char *a, size_t as, float *y, int64_t ys,
                     const int NT) {
    const __m256i m3 = _mm256_set1_epi8(3);
    float sumf[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int64_t i = 0; i < n / QK_K; i++) {
        const block_tq2_0 *x = (const block_tq2_0 *)wr + i;
        __m256i isum[4];
        UNROLL for (int t = 0; t < 4; t++) isum[t] = _mm256_setzero_si256();
        UNROLL for (int h = 0; h < 2; h++) {
            const __m256i b = load256(x->qs + 32 * h);
            UNROLL for (int l = 0; l < 4; l++) {
                const __m256i q = _mm256_and_si256(_mm256_srli_epi16(b, 2 * l), m3);
                UNROLL for (int t = 0; t < NT; t++) isum[t] =
                    dot_u8s8(isum[t], q, load256(iq_act(a, as, t, i)->qs + 128 * h + 32 * l));
            }
        }
        /* reference: (float)sumi * (y.d * d) */
#define TQ_TERM(si, dx, yd) ((float)(si) * ((yd) * (dx)))
        TQ_FINISH(f16(qr_rd_u16(&x->d)));
#undef TQ_TERM
    }
    UNROLL for (int t = 0; t < NT; t++) y[t * ys] = sumf[t];
}
DEFINE_GEMM(gemm_tq2_0, tile_tq2_0)

/* tq1_0's base-3 digit k of byte q is ((uint8_t)(q * 3^k) * 3) >> 8, that is
 * [m >= 86] + [m >= 171] with m = (uint8_t)(q * 3^k). The byte products come from two 16-bit
 * multiplies (even bytes, odd bytes); p holds each byte's power of 3. */
static inline __m256i tq1_digits(__m256i q, __m256i p) {
    const __m256i lo8 = _mm256_set1_epi16(0x00FF);
    const __m256i even = _mm256_mullo_epi16(_mm256_and_si256(q, lo8), _mm256_and_si256(p, lo8));
    const __m256i odd = _mm256_mullo_epi16(_mm256_andnot_si256(lo8, q), _mm256_srli_epi16(p, 8));
    const __m256i m = _mm256_or_si256(_mm256_and_si256(even, lo8), odd);
    const __m256i ge86 = _mm256_cmpeq_epi8(_mm256_max_epu8(m, _mm256_set1_epi8(86)), m);
    const __m256i ge171 = _mm256_cmpeq_epi8(_mm256_max_epu8(m, _mm256_set1_epi8((char)171)), m);
    return _mm256_sub_epi8(_mm256_sub_epi8(_mm256_setzero_si256(), ge86), ge171);
}

TILE void tile_tq1_0(int64_t n, const char *wr, const char *a, size_t as, float *y, int64_t ys,
                     const int NT) {
    float sumf[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int64_t i = 0; i < n / QK_K; i++) {
        const block_tq1_0 *x = (const block_tq1_0 *)wr + i;
        __m256i isum[4];
        UNROLL for (int t = 0; t < 4; t++) isum[t] = _mm256_setzero_si256();
        /* elements 0..159: digit k of qs[0..31] is vector k */
        const __m256i q32 = load256(x->qs);
        static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
        UNROLL for (int k = 0; k < 5; k++) {
            const __m256i d = tq1_digits(q32, _mm256_set1_epi8((char)pow3[k]));
            UNROLL for (int t = 0; t < NT; t++) isum[t] =
                dot_u8s8(isum[t], d, load256(iq_act(a, as, t, i)->qs + 32 * k));
        }
        /* elements 160..239: 16 at a time, digit k of qs[32..47]; then 240..255: digit k of
         * qh[0..3] at 240 + 4k */
        const __m128i q16 = _mm_loadu_si128((const __m128i *)(x->qs + 32));
        const __m256i v[3] = {_mm256_set_m128i(q16, q16), _mm256_set_m128i(q16, q16),
                              _mm256_set_m128i(_mm_set1_epi32((int)qr_rd_u32(x->qh)), q16)};
        const __m256i p[3] = {
            _mm256_set_m128i(_mm_set1_epi8(3), _mm_set1_epi8(1)),
            _mm256_set_m128i(_mm_set1_epi8(27), _mm_set1_epi8(9)),
            _mm256_set_m128i(_mm_setr_epi8(1, 1, 1, 1, 3, 3, 3, 3, 9, 9, 9, 9, 27, 27, 27, 27),
                             _mm_set1_epi8(81))};
        UNROLL for (int k = 0; k < 3; k++) {
            const __m256i d = tq1_digits(v[k], p[k]);
            UNROLL for (int t = 0; t < NT; t++) isum[t] =
                dot_u8s8(isum[t], d, load256(iq_act(a, as, t, i)->qs + 160 + 32 * k));
        }
        /* reference: (float)sum * (d * y.d) */
#define TQ_TERM(si, dx, yd) ((float)(si) * ((dx) * (yd)))
        TQ_FINISH(f16(qr_rd_u16(&x->d)));
#undef TQ_TERM
    }
    UNROLL for (int t = 0; t < NT; t++) y[t * ys] = sumf[t];
}
DEFINE_GEMM(gemm_tq1_0, tile_tq1_0)
#undef TQ_FINISH

/* ---- mxfp4 against q8_0: 4-bit indices into doubled e2m1 values, a power-of-two scale ----
 * The values (|w| <= 12) take the sign route (|w| . y with w's sign). Four blocks' integer
 * sums are folded (hadd) into the four lanes of one vector, scaled in float as the reference
 * does (d = y's scale * 2^(e - 128), then d * sum) and added to the token's sum one block at a
 * time, in order. */

static inline __m256i mxfp4_dot(__m256i w, const block_q8_0 *yb) {
    return dot_u8s8(_mm256_setzero_si256(), _mm256_sign_epi8(w, w),
                    _mm256_sign_epi8(load256(yb->qs), w));
}

TILE void tile_mxfp4(int64_t n, const char *wr, const char *a, size_t as, float *y, int64_t ys,
                     const int NT) {
    const __m256i levels =
        _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qr_kvalues_mxfp4));
    const int64_t nb = n / QK_MXFP4;
    const size_t yd_off = qr_act_q8_0_scales_offset(n);
    const block_mxfp4 *x = (const block_mxfp4 *)wr;
    float sumf[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    int64_t i = 0;
    for (; i + 4 <= nb; i += 4) {
        __m256i pair[2][4];
        UNROLL for (int hp = 0; hp < 2; hp++) {
            __m256i dd[2][4];
            UNROLL for (int hb = 0; hb < 2; hb++) {
                const __m256i w = _mm256_shuffle_epi8(levels, nibbles32_u(x[i + 2 * hp + hb].qs));
                UNROLL for (int t = 0; t < NT; t++) dd[hb][t] =
                    mxfp4_dot(w, (const block_q8_0 *)(a + (size_t)t * as) + i + 2 * hp + hb);
            }
            UNROLL for (int t = 0; t < NT; t++) pair[hp][t] = _mm256_hadd_epi32(dd[0][t], dd[1][t]);
        }
        const __m128 xe = _mm_setr_ps(qr_e8m0_to_fp32_half(x[i].e), qr_e8m0_to_fp32_half(x[i + 1].e),
                                      qr_e8m0_to_fp32_half(x[i + 2].e), qr_e8m0_to_fp32_half(x[i + 3].e));
        UNROLL for (int t = 0; t < NT; t++) {
            const __m256i q = _mm256_hadd_epi32(pair[0][t], pair[1][t]); /* lane b: block b */
            const __m128i s =
                _mm_add_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
            const __m128 yd = _mm_loadu_ps((const float *)(a + (size_t)t * as + yd_off) + i);
            _Alignas(16) float term[4];
            _mm_store_ps(term, _mm_mul_ps(_mm_mul_ps(yd, xe), _mm_cvtepi32_ps(s)));
            sumf[t] += term[0];
            sumf[t] += term[1];
            sumf[t] += term[2];
            sumf[t] += term[3];
        }
    }
    for (; i < nb; i++) {
        const __m256i w = _mm256_shuffle_epi8(levels, nibbles32_u(x[i].qs));
        __m256i dd[4];
        UNROLL for (int t = 0; t < 4; t++) dd[t] = _mm256_setzero_si256();
        UNROLL for (int t = 0; t < NT; t++) dd[t] =
            mxfp4_dot(w, (const block_q8_0 *)(a + (size_t)t * as) + i);
        int32_t s[4];
        iq_hsum_epi32_x4(dd, NT, s);
        const float xe = qr_e8m0_to_fp32_half(x[i].e);
        UNROLL for (int t = 0; t < NT; t++) {
            const float d = ((const float *)(a + (size_t)t * as + yd_off))[i] * xe;
            sumf[t] += d * (float)s[t];
        }
    }
    UNROLL for (int t = 0; t < NT; t++) y[t * ys] = sumf[t];
}
DEFINE_GEMM(gemm_mxfp4, tile_mxfp4)

/* ---- q2_K against q8_K ----
 * Not an IQ type, but llama.cpp's IQ2_XXS / IQ2_XS files put a few ffn_down in q2_K, which had
 * only the scalar kernel (a third of smol135-iq2_xxs's prompt time). Layout as tq2_0 (2-bit
 * values, vector k = bits 2(k%4) of qs[32(k/4) ..]); vector k holds sub-blocks 2k and 2k+1
 * (4-bit scales in its two halves); the 4-bit mins pair with the activation's bsums. Float
 * block terms as K4_TILE, so within GEMM_REL_TOL of the reference (test_gemm.c), not exact. */
TILE void tile_q2_K(int64_t n, const char *wr, const char *a, size_t as, float *y, int64_t ys,
                    const int NT) {
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m128i m4 = _mm_set1_epi8(0x0F);
    __m256 acc[4], accm[4];
    UNROLL for (int t = 0; t < NT; t++) acc[t] = accm[t] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        const block_q2_K *x = (const block_q2_K *)wr + i;
        const __m128i sc8 = _mm_loadu_si128((const __m128i *)x->scales);
        const __m256i mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sc8, 4), m4));
        __m256i isum[4];
        UNROLL for (int t = 0; t < 4; t++) isum[t] = _mm256_setzero_si256();
        UNROLL for (int h = 0; h < 2; h++) {
            const __m256i b = load256(x->qs + 32 * h);
            UNROLL for (int l = 0; l < 4; l++) {
                const int k = 4 * h + l;
                const __m256i q = _mm256_and_si256(_mm256_srli_epi16(b, 2 * l), m3);
                const __m256i sc = iq_scales16(x->scales[2 * k] & 15, x->scales[2 * k + 1] & 15);
                UNROLL for (int t = 0; t < NT; t++) isum[t] =
                    dot_i16(isum[t],
                            _mm256_maddubs_epi16(q, load256(iq_act(a, as, t, i)->qs + 32 * k)), sc);
            }
        }
        const float xd = f16(qr_rd_u16(&x->d)), xmin = f16(qr_rd_u16(&x->dmin));
        UNROLL for (int t = 0; t < NT; t++) {
            const block_q8_K *yb = iq_act(a, as, t, i);
            const __m256i msum = _mm256_madd_epi16(load256(yb->bsums), mins);
            acc[t] =
                _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), _mm256_set1_ps(xd * yb->d), acc[t]);
            accm[t] =
                _mm256_fmadd_ps(_mm256_cvtepi32_ps(msum), _mm256_set1_ps(xmin * yb->d), accm[t]);
        }
    }
    UNROLL for (int t = 0; t < NT; t++) y[t * ys] = hsum_ps(acc[t]) - hsum_ps(accm[t]);
}
DEFINE_GEMM(gemm_q2_K, tile_q2_K)

#ifdef __clang__
#pragma STDC FP_CONTRACT ON
#endif
