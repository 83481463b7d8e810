/* gemm_x86.h - the x86 SIMD kernels, written once on 256-bit vectors and compiled twice: by
 * gemm_avx2.c (AVX2 + FMA + F16C) and by gemm_avx512.c, where AVX512-VNNI turns each
 * "multiply bytes, widen, add" sequence into one vpdpbusd / vpdpwssd. Include only from those
 * two files; QR_X86_FILL and QR_X86_NAME name the fill function they define and its set.
 *
 * Each tile function takes one weight row and NT <= 4 activation rows: a weight block is
 * decoded once (nibbles and high bits into bytes, scales into 16-bit lanes) and then dotted
 * with the NT activation blocks, so prompt processing pays the decoding once per 4 tokens.
 * Prompts of 16+ tokens on VNNI take q4_0/q5_0/q8_0 through an 8-row interleaved panel
 * instead (DEFINE_IL_GEMM), with the tile's results. Every kernel computes a token's outputs
 * in the same order whatever the number of tokens and the token's place among them (batch
 * invariance, issue 22: a position's logits do not depend on the batch it is evaluated in;
 * tests/kernels/test_gemm_invariance.c). With VNNI,
 * the model normally loads q4_0/q5_0/q8_0/q4_K/q6_K/iq4_nl/iq4_xs weights repacked into
 * 16-row interleaved blocks instead (pack_*, pk_gemm_*: every token count goes through them);
 * the file-layout kernels then serve the rest (other types, row counts not a multiple of 16,
 * QR_KERNELS=avx2, qr_model_params.no_repack). The activation quantizers
 * (q8_0, q8_K), attention rows and elementwise helpers are at the end. iq4_nl and iq4_xs
 * (table lookups by pshufb) follow the q4_0/q5_0/q8_0 tiles.
 * The arithmetic is ggml's (ggml_vec_dot_*_q8_*): integer sums within a block, the block's
 * float scales outside, so the results match the scalar reference up to float rounding order.
 */
#include "kernels/kernels.h"
#include "tensor/blocks.h"
#include "tensor/iq_tables.h"
#include "tensor/tensor.h"
#include "util/util.h"

#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TILE static inline __attribute__((always_inline))
/* tile loops run over compile-time RM, NT and block counts: unroll them so the partial sums
 * stay in registers */
#define UNROLL _Pragma("GCC unroll 8")

#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
#define QR_VNNI 1
#else
#define QR_VNNI 0
#endif

/* acc + sums of 4 adjacent u8 * s8 products in each i32 lane */
static inline __m256i dot_u8s8(__m256i acc, __m256i u, __m256i s) {
#if QR_VNNI
    return _mm256_dpbusd_epi32(acc, u, s);
#else
    const __m256i p = _mm256_maddubs_epi16(u, s); /* |pair| <= 2 * 128 * 127: no saturation here */
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
#endif
}

/* acc + sums of 2 adjacent i16 * i16 products in each i32 lane */
static inline __m256i dot_i16(__m256i acc, __m256i a, __m256i b) {
#if QR_VNNI
    return _mm256_dpwssd_epi32(acc, a, b);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b));
#endif
}

static inline float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float f16(uint16_t h) {
    return _cvtsh_ss(h);
}

static inline __m256i load256(const void *p) {
    return _mm256_loadu_si256((const __m256i *)p);
}

/* byte j = 0xFF where bit j of x is set, else 0 */
static inline __m256i bits_to_bytes(uint32_t x) {
    const __m256i spread =
        _mm256_setr_epi64x(0, 0x0101010101010101, 0x0202020202020202, 0x0303030303030303);
    const __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)x), spread);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
}

/* the 32 nibbles of a legacy block in element order: low nibbles of qs[0..15], then high */
static inline __m256i nibbles32(const uint8_t *qs) {
    const __m128i q = _mm_loadu_si128((const __m128i *)qs);
    const __m128i m = _mm_set1_epi8(0x0F);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), m), _mm_and_si128(q, m));
}

/* Runs tile(n, weight row, activations, act_stride, y, y_stride, NT) over nr rows and nt tokens
 * in groups of 4 tokens. */
#define DEFINE_GEMM(name, tile)                                                                    \
    static void name(int64_t n, const void *w, size_t w_stride, const void *act,                   \
                     size_t act_stride, float *y, int64_t y_stride, int64_t nr, int64_t nt) {      \
        for (int64_t r = 0; r < nr; r++) {                                                         \
            const char *wr = (const char *)w + (size_t)r * w_stride;                               \
            int64_t t = 0;                                                                         \
            for (; t + 4 <= nt; t += 4)                                                            \
                tile(n, wr, (const char *)act + (size_t)t * act_stride, act_stride,                \
                     y + t * y_stride + r, y_stride, 4);                                           \
            const char *a = (const char *)act + (size_t)t * act_stride;                            \
            float *yt = y + t * y_stride + r;                                                      \
            switch (nt - t) {                                                                      \
            case 3:                                                                                \
                tile(n, wr, a, act_stride, yt, y_stride, 3);                                       \
                break;                                                                             \
            case 2:                                                                                \
                tile(n, wr, a, act_stride, yt, y_stride, 2);                                       \
                break;                                                                             \
            case 1:                                                                                \
                tile(n, wr, a, act_stride, yt, y_stride, 1);                                       \
                break;                                                                             \
            default:                                                                               \
                break;                                                                             \
            }                                                                                      \
        }                                                                                          \
    }

/* ---- f32, f16, bf16 weights (activations of the same type) ---- */

/* f32: products rounded to float and summed in double, as the reference (qr_vec_dot_f32). An
 * all-f32 model quantises nothing, so every rounding shows in its outputs; a float-accumulated
 * sum drifted past the 1e-5 agreement with llama.cpp's stories260K dumps (the f16 KV cache
 * rounds differently), the double sum does not. */
static inline double hsum_pd(__m256d v) {
    const __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

TILE void tile_f32(int64_t n, const char *wr, const char *a, size_t as, float *y, int64_t ys,
                   const int nt) {
    const float *w = (const float *)wr;
    __m256d acc[4][2];
    for (int t = 0; t < nt; t++)
        acc[t][0] = acc[t][1] = _mm256_setzero_pd();
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        const __m256 w0 = _mm256_loadu_ps(w + j);
        for (int t = 0; t < nt; t++) {
            const __m256 p =
                _mm256_mul_ps(w0, _mm256_loadu_ps((const float *)(a + (size_t)t * as) + j));
            acc[t][0] = _mm256_add_pd(acc[t][0], _mm256_cvtps_pd(_mm256_castps256_ps128(p)));
            acc[t][1] = _mm256_add_pd(acc[t][1], _mm256_cvtps_pd(_mm256_extractf128_ps(p, 1)));
        }
    }
    for (int t = 0; t < nt; t++) {
        const float *x = (const float *)(a + (size_t)t * as);
        double s = hsum_pd(_mm256_add_pd(acc[t][0], acc[t][1]));
        for (int64_t k = j; k < n; k++)
            s += (double)(w[k] * x[k]);
        y[t * ys] = (float)s;
    }
}
DEFINE_GEMM(gemm_f32, tile_f32)

static inline __m256 load_f16x8(const uint16_t *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

static inline __m256 load_bf16x8(const uint16_t *p) {
    const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

/* HALF_CHAINS independent sums per token, whatever the number of tokens (so that a token's
 * sum is rounded the same alone and in a batch): one multiply-add chain would wait on the
 * previous one's latency. The activations are read as floats (the row's f32 copy, kernels.h),
 * so only the weights are converted. */
#define HALF_CHAINS 2
#define DEFINE_HALF_TILE(name, load8, to_f32)                                                      \
    TILE void name(int64_t n, const char *wr, const char *a, size_t as, float *y, int64_t ys,      \
                   const int nt) {                                                                 \
        const uint16_t *w = (const uint16_t *)wr;                                                  \
        const size_t xo = qr_act_half_f32_offset(n);                                               \
        const int U = HALF_CHAINS;                                                                 \
        __m256 acc[4][HALF_CHAINS];                                                                \
        UNROLL for (int t = 0; t < nt; t++) UNROLL for (int u = 0; u < U; u++) acc[t][u] =         \
            _mm256_setzero_ps();                                                                   \
        int64_t j = 0;                                                                             \
        for (; j + 8 * U <= n; j += 8 * U)                                                         \
            UNROLL for (int u = 0; u < U; u++) {                                                   \
                const __m256 w0 = load8(w + j + 8 * u);                                            \
                UNROLL for (int t = 0; t < nt; t++) acc[t][u] = _mm256_fmadd_ps(                   \
                    w0, _mm256_loadu_ps((const float *)(a + (size_t)t * as + xo) + j + 8 * u),     \
                    acc[t][u]);                                                                    \
            }                                                                                      \
        for (; j + 8 <= n; j += 8) {                                                               \
            const __m256 w0 = load8(w + j);                                                        \
            UNROLL for (int t = 0; t < nt; t++) acc[t][0] = _mm256_fmadd_ps(                       \
                w0, _mm256_loadu_ps((const float *)(a + (size_t)t * as + xo) + j), acc[t][0]);     \
        }                                                                                          \
        for (int t = 0; t < nt; t++) {                                                             \
            const float *x = (const float *)(a + (size_t)t * as + xo);                             \
            for (int u = 1; u < U; u++)                                                            \
                acc[t][0] = _mm256_add_ps(acc[t][0], acc[t][u]);                                   \
            float s = hsum_ps(acc[t][0]);                                                          \
            for (int64_t k = j; k < n; k++)                                                        \
                s += to_f32(w[k]) * x[k];                                                          \
            y[t * ys] = s;                                                                         \
        }                                                                                          \
    }
/* One token against two rows side by side (wr and wr + ws): each row's sums are the tile's,
 * but 4 chains are in flight instead of 2 (f16 576 x 1536 from L2, one token: 65 us one row at
 * a time, 50 with the 4 chains before issue 22) */
#define DEFINE_HALF_TILE_X2(name, load8, to_f32)                                                   \
    TILE void name(int64_t n, const char *wr, size_t ws, const char *a, float *y) {                \
        const uint16_t *w[2] = {(const uint16_t *)wr, (const uint16_t *)(wr + ws)};                \
        const float *x = (const float *)(a + qr_act_half_f32_offset(n));                           \
        const int U = HALF_CHAINS;                                                                 \
        __m256 acc[2][HALF_CHAINS];                                                                \
        UNROLL for (int r = 0; r < 2; r++) UNROLL for (int u = 0; u < U; u++) acc[r][u] =          \
            _mm256_setzero_ps();                                                                   \
        int64_t j = 0;                                                                             \
        for (; j + 8 * U <= n; j += 8 * U)                                                         \
            UNROLL for (int u = 0; u < U; u++) {                                                   \
                const __m256 xv = _mm256_loadu_ps(x + j + 8 * u);                                  \
                UNROLL for (int r = 0; r < 2; r++) acc[r][u] =                                     \
                    _mm256_fmadd_ps(load8(w[r] + j + 8 * u), xv, acc[r][u]);                       \
            }                                                                                      \
        for (; j + 8 <= n; j += 8) {                                                               \
            const __m256 xv = _mm256_loadu_ps(x + j);                                              \
            UNROLL for (int r = 0; r < 2; r++) acc[r][0] =                                         \
                _mm256_fmadd_ps(load8(w[r] + j), xv, acc[r][0]);                                   \
        }                                                                                          \
        for (int r = 0; r < 2; r++) {                                                              \
            for (int u = 1; u < U; u++)                                                            \
                acc[r][0] = _mm256_add_ps(acc[r][0], acc[r][u]);                                   \
            float s = hsum_ps(acc[r][0]);                                                          \
            for (int64_t k = j; k < n; k++)                                                        \
                s += to_f32(w[r][k]) * x[k];                                                       \
            y[r] = s;                                                                              \
        }                                                                                          \
    }
/* one token: the rows two at a time (tile2); otherwise, and an odd last row, gemm_rows */
#define DEFINE_HALF_GEMM(name, gemm_rows, tile2)                                                   \
    static void name(int64_t n, const void *w, size_t w_stride, const void *act,                   \
                     size_t act_stride, float *y, int64_t y_stride, int64_t nr, int64_t nt) {      \
        int64_t r = 0;                                                                             \
        if (nt == 1)                                                                               \
            for (; r + 2 <= nr; r += 2)                                                            \
                tile2(n, (const char *)w + (size_t)r * w_stride, w_stride, act, y + r);            \
        if (r < nr)                                                                                \
            gemm_rows(n, (const char *)w + (size_t)r * w_stride, w_stride, act, act_stride, y + r, \
                      y_stride, nr - r, nt);                                                       \
    }
DEFINE_HALF_TILE(tile_f16, load_f16x8, f16)
DEFINE_HALF_TILE(tile_bf16, load_bf16x8, qr_bf16_to_fp32)
DEFINE_HALF_TILE_X2(tile_f16_x2, load_f16x8, f16)
DEFINE_HALF_TILE_X2(tile_bf16_x2, load_bf16x8, qr_bf16_to_fp32)
DEFINE_GEMM(gemm_f16_rows, tile_f16)
DEFINE_GEMM(gemm_bf16_rows, tile_bf16)
DEFINE_HALF_GEMM(gemm_f16, gemm_f16_rows, tile_f16_x2)
DEFINE_HALF_GEMM(gemm_bf16, gemm_bf16_rows, tile_bf16_x2)

/* ---- legacy 32-element blocks against q8_0 / q8_1 activations ---- */

/* The 32 nibbles of a legacy block as unsigned bytes in element order (low nibbles of
 * qs[0..15], then the high ones): the 16 bytes go to both halves, the upper half shifted by 4. */
static inline __m256i nibbles32_u(const uint8_t *qs) {
    const __m256i q = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
    return _mm256_and_si256(_mm256_srlv_epi64(q, _mm256_setr_epi64x(0, 0, 4, 4)),
                            _mm256_set1_epi8(0x0F));
}

/* iq4_nl / iq4_xs: the 16 levels of kvalues_iq4nl (iq_tables.c) in both lanes, as an
 * immediate so it stays in a register */
static inline __m256i iq4nl_levels(void) {
    return _mm256_setr_epi8(-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89,
                            113, -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69,
                            89, 113);
}

/* Weight blocks decoded to unsigned bytes u = w + OFFSET, so that sum(w * y) = sum(u * y) -
 * OFFSET * sum(y): one u8 x s8 dot product per block, the offset paid once per 8 blocks with
 * the activation's block sums. */
static inline __m256i decode_u_q4_0(const block_q4_0 *b) {
    return nibbles32_u(b->qs); /* w = q - 8 */
}
static inline __m256i decode_u_q5_0(const block_q5_0 *b) {
    /* w = (q | fifth bit << 4) - 16 */
    const __m256i q = nibbles32_u(b->qs);
#if QR_VNNI
    return _mm256_mask_add_epi8(q, _cvtu32_mask32(qr_rd_u32(b->qh)), q, _mm256_set1_epi8(0x10));
#else
    return _mm256_or_si256(
        q, _mm256_and_si256(bits_to_bytes(qr_rd_u32(b->qh)), _mm256_set1_epi8(0x10)));
#endif
}
/* q8_0: w + 128 as a byte is w with its top bit flipped. Without VNNI, maddubs's 16-bit pair
 * sums of 255 * 127 would saturate, so q8_0 takes the sign route there (OFFSET 0). */
static inline __m256i decode_u_q8_0(const block_q8_0 *b) {
#if QR_VNNI
    return _mm256_xor_si256(load256(b->qs), _mm256_set1_epi8((char)0x80));
#else
    return load256(b->qs);
#endif
}
#define Q4_0_OFFSET_SHIFT 3 /* offset 8 */
#define Q5_0_OFFSET_SHIFT 4 /* offset 16 */
#if QR_VNNI
#define Q8_0_OFFSET_SHIFT 7 /* offset 128 */
#else
#define Q8_0_OFFSET_SHIFT (-1) /* signed weights: |w| . (y with w's sign) */
#endif

/* one block's integer dot product, 8 partial sums in the i32 lanes */
static inline __m256i block_dot(__m256i u, const int8_t *yqs, const int offset_shift) {
    const __m256i y = load256(yqs);
    if (offset_shift < 0)
        return dot_u8s8(_mm256_setzero_si256(), _mm256_sign_epi8(u, u), _mm256_sign_epi8(y, u));
    return dot_u8s8(_mm256_setzero_si256(), u, y);
}

/* The 8 f16 scales of 8 consecutive blocks (the first field of each), as floats (inserts:
 * a gather of the same was slower on the EPYC dev machine). */
#define LOAD_D8(x)                                                                                 \
    _mm256_cvtph_ps(_mm_setr_epi16((short)x[0].d, (short)x[1].d, (short)x[2].d, (short)x[3].d,     \
                                   (short)x[4].d, (short)x[5].d, (short)x[6].d, (short)x[7].d))

/* The float terms of the legacy tiles and of the interleaved panel go into LEGACY_CHAINS
 * chains of sums, block b into chain b mod 4, by fused multiply-adds in block order, each
 * chain from 0 in every run of LEGACY_PANEL blocks; a run's sum is (c0 + c2) + (c1 + c3), and
 * the runs' sums are added in order. Both kernels follow this exactly, so a token's outputs
 * do not depend on which one its batch takes (batch invariance). */
#define LEGACY_CHAINS 4
#define LEGACY_PANEL 64
/* the 4 chains (lanes of c) of a run: (c0 + c2) + (c1 + c3) */
static inline float legacy_run_sum(__m128 c) {
    const __m128 h = _mm_add_ps(c, _mm_movehl_ps(c, c));
    return _mm_cvtss_f32(_mm_add_ss(h, _mm_movehdup_ps(h)));
}

/* at the start of each run of LEGACY_PANEL blocks after the first: the finished run's chains
 * summed into the totals, the chains back to 0 */
#define LEGACY_RUN_END()                                                                           \
    do {                                                                                           \
        if (i > 0 && i % LEGACY_PANEL == 0)                                                        \
            UNROLL for (int r = 0; r < RM; r++) UNROLL for (int t = 0; t < NT; t++) {              \
                const float run = legacy_run_sum(pan[r][t]);                                       \
                tot[r][t] = i == LEGACY_PANEL ? run : tot[r][t] + run;                             \
                pan[r][t] = _mm_setzero_ps();                                                      \
            }                                                                                      \
    } while (0)

/* Signed 32-element weight blocks (q4_0, q5_0, q8_0) against q8_0 activations, RM rows x NT
 * tokens. Per 8 blocks: each weight block is decoded once and dotted with the NT activation
 * blocks; the 8 blocks' integer sums are folded (hadd tree) into one vector whose lane b is
 * block b's sum, as soon as each pair and quad is done so few vectors stay live; then the
 * offset correction and one int->float conversion for all 8. Activation rows carry float
 * scales and integer block sums after their blocks (kernels.h). The float terms
 * float(sum) * (xd * yd) go into the 4 chains above (lanes of one vector: blocks i..i+3, then
 * i+4..i+7, two fused multiply-adds per 8 blocks), exactly as the interleaved panel
 * (DEFINE_IL_GEMM) adds them. The tail (K < 8 blocks) takes the same step with the missing
 * blocks' lanes zero: 0 * 0 added to a chain leaves it as it is (a chain that starts at +0 is
 * never -0), so each tail block still lands in its own chain alone. */
#define LEGACY_STEP(block_t, decode, SHIFT, K)                                                     \
    do {                                                                                           \
        LEGACY_RUN_END();                                                                          \
        __m256i half[2][4][4];                                                                     \
        UNROLL for (int hq = 0; hq < 2; hq++) {                                                    \
            __m256i pair[2][4][4];                                                                 \
            UNROLL for (int hp = 0; hp < 2; hp++) {                                                \
                __m256i dd[2][4][4];                                                               \
                UNROLL for (int hb = 0; hb < 2; hb++) {                                            \
                    const int k = 4 * hq + 2 * hp + hb;                                            \
                    UNROLL for (int r = 0; r < RM; r++) {                                          \
                        if (k < (K)) {                                                             \
                            const __m256i u =                                                      \
                                decode((const block_t *)(w + (size_t)r * ws) + i + k);             \
                            UNROLL for (int t = 0; t < NT; t++) dd[hb][r][t] = block_dot(          \
                                u, ((const block_q8_0 *)(a + (size_t)t * as) + i + k)->qs, SHIFT); \
                        } else {                                                                   \
                            UNROLL for (int t = 0; t < NT; t++) dd[hb][r][t] =                     \
                                _mm256_setzero_si256();                                            \
                        }                                                                          \
                    }                                                                              \
                }                                                                                  \
                UNROLL for (int r = 0; r < RM; r++) UNROLL for (int t = 0; t < NT; t++)            \
                    pair[hp][r][t] = _mm256_hadd_epi32(dd[0][r][t], dd[1][r][t]);                  \
            }                                                                                      \
            UNROLL for (int r = 0; r < RM; r++) UNROLL for (int t = 0; t < NT; t++)                \
                half[hq][r][t] = _mm256_hadd_epi32(pair[0][r][t], pair[1][r][t]);                  \
        }                                                                                          \
        __m256 xd[4];                                                                              \
        UNROLL for (int r = 0; r < RM; r++) {                                                      \
            const block_t *x = (const block_t *)(w + (size_t)r * ws) + i;                          \
            if ((K) == 8) {                                                                        \
                xd[r] = LOAD_D8(x);                                                                \
            } else {                                                                               \
                uint16_t dh[8] = {0};                                                              \
                for (int k = 0; k < (K); k++)                                                      \
                    dh[k] = x[k].d;                                                                \
                xd[r] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)dh));                     \
            }                                                                                      \
        }                                                                                          \
        /* the tail's lanes k >= K: no activation scale or sum read (they are not there) */        \
        const __m256i lanes =                                                                      \
            _mm256_cmpgt_epi32(_mm256_set1_epi32(K), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));   \
        UNROLL for (int t = 0; t < NT; t++) {                                                      \
            const float *ydp = (const float *)(a + (size_t)t * as + yd_off) + i;                   \
            const int32_t *ysp = (const int32_t *)(a + (size_t)t * as + ysum_off) + i;             \
            const __m256 yd = (K) == 8 ? _mm256_loadu_ps(ydp) : _mm256_maskload_ps(ydp, lanes);    \
            __m256i off = _mm256_setzero_si256();                                                  \
            if (SHIFT >= 0)                                                                        \
                off = _mm256_slli_epi32((K) == 8 ? _mm256_loadu_si256((const __m256i *)ysp)        \
                                                 : _mm256_maskload_epi32((const int *)ysp, lanes), \
                                        SHIFT < 0 ? 0 : SHIFT);                                    \
            UNROLL for (int r = 0; r < RM; r++) {                                                  \
                const __m256i h0 = half[0][r][t], h1 = half[1][r][t];                              \
                __m256i s = _mm256_add_epi32(_mm256_permute2x128_si256(h0, h1, 0x20),              \
                                             _mm256_permute2x128_si256(h0, h1, 0x31));             \
                if (SHIFT >= 0) s = _mm256_sub_epi32(s, off);                                      \
                const __m256 v = _mm256_cvtepi32_ps(s), d = _mm256_mul_ps(xd[r], yd);              \
                pan[r][t] =                                                                        \
                    _mm_fmadd_ps(_mm256_castps256_ps128(v), _mm256_castps256_ps128(d), pan[r][t]); \
                if ((K) > 4)                                                                       \
                    pan[r][t] = _mm_fmadd_ps(_mm256_extractf128_ps(v, 1),                          \
                                             _mm256_extractf128_ps(d, 1), pan[r][t]);              \
            }                                                                                      \
        }                                                                                          \
    } while (0)

/* a tail of K <= 4 blocks (the model's 576-wide rows end in 2): LEGACY_STEP's first half on
 * 128 bits, 3 hadds instead of 7 (the tail went block by block into a chain held in memory
 * before, 20% of q8_0 576 x 1536 at one token from L2) */
#define LEGACY_TAIL4(block_t, decode, SHIFT, K)                                                    \
    do {                                                                                           \
        LEGACY_RUN_END();                                                                          \
        const __m128i lanes = _mm_cmpgt_epi32(_mm_set1_epi32(K), _mm_setr_epi32(0, 1, 2, 3));      \
        UNROLL for (int r = 0; r < RM; r++) {                                                      \
            const block_t *x = (const block_t *)(w + (size_t)r * ws) + i;                          \
            __m256i dd[4][4];                                                                      \
            UNROLL for (int k = 0; k < 4; k++) {                                                   \
                if (k < (K)) {                                                                     \
                    const __m256i u = decode(x + k);                                               \
                    UNROLL for (int t = 0; t < NT; t++) dd[k][t] = block_dot(                      \
                        u, ((const block_q8_0 *)(a + (size_t)t * as) + i + k)->qs, SHIFT);         \
                } else {                                                                           \
                    UNROLL for (int t = 0; t < NT; t++) dd[k][t] = _mm256_setzero_si256();         \
                }                                                                                  \
            }                                                                                      \
            const __m128 xd = _mm_cvtph_ps(_mm_setr_epi16(                                         \
                (short)x[0].d, (short)((K) > 1 ? x[1].d : 0), (short)((K) > 2 ? x[2].d : 0),       \
                (short)((K) > 3 ? x[3].d : 0), 0, 0, 0, 0));                                       \
            UNROLL for (int t = 0; t < NT; t++) {                                                  \
                const __m256i q = _mm256_hadd_epi32(_mm256_hadd_epi32(dd[0][t], dd[1][t]),         \
                                                    _mm256_hadd_epi32(dd[2][t], dd[3][t]));        \
                __m128i s =                                                                        \
                    _mm_add_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));      \
                const char *at = a + (size_t)t * as;                                               \
                if (SHIFT >= 0)                                                                    \
                    s = _mm_sub_epi32(                                                             \
                        s, _mm_slli_epi32(                                                         \
                               _mm_maskload_epi32((const int *)(at + ysum_off) + i, lanes),        \
                               SHIFT < 0 ? 0 : SHIFT));                                            \
                const __m128 yd = _mm_maskload_ps((const float *)(at + yd_off) + i, lanes);        \
                pan[r][t] = _mm_fmadd_ps(_mm_cvtepi32_ps(s), _mm_mul_ps(xd, yd), pan[r][t]);       \
            }                                                                                      \
        }                                                                                          \
    } while (0)

#define LEGACY_SIGNED_TILE(name, block_t, decode, SHIFT)                                           \
    TILE void name(int64_t n, const char *w, size_t ws, const char *a, size_t as, float *y,        \
                   int64_t ys, const int RM, const int NT) {                                       \
        const int64_t nb = n / QK8_0;                                                              \
        const size_t yd_off = qr_act_q8_0_scales_offset(n), ysum_off = qr_act_q8_0_sums_offset(n); \
        __m128 pan[4][4];                                                                          \
        float tot[4][4];                                                                           \
        UNROLL for (int r = 0; r < RM; r++) UNROLL for (int t = 0; t < NT; t++) {                  \
            pan[r][t] = _mm_setzero_ps();                                                          \
            tot[r][t] = 0.0f;                                                                      \
        }                                                                                          \
        int64_t i = 0;                                                                             \
        for (; i + 8 <= nb; i += 8)                                                                \
            LEGACY_STEP(block_t, decode, SHIFT, 8);                                                \
        /* a tail of up to 4 blocks takes its count as a constant: the unrolled step then    \
         * keeps its sums in registers (a run-time count left them in memory: 4 tokens 2x      \
         * slower); 5..7 share one body (compile time) */                                     \
        switch (nb - i) {                                                                          \
        case 7: case 6: case 5: LEGACY_STEP(block_t, decode, SHIFT, (int)(nb - i)); break;         \
        case 4: LEGACY_TAIL4(block_t, decode, SHIFT, 4); break;                                    \
        case 3: LEGACY_TAIL4(block_t, decode, SHIFT, 3); break;                                    \
        case 2: LEGACY_TAIL4(block_t, decode, SHIFT, 2); break;                                    \
        case 1: LEGACY_TAIL4(block_t, decode, SHIFT, 1); break;                                    \
        default: break;                                                                            \
        }                                                                                          \
        UNROLL for (int r = 0; r < RM; r++) UNROLL for (int t = 0; t < NT; t++) y[t * ys + r] =    \
            nb > LEGACY_PANEL ? tot[r][t] + legacy_run_sum(pan[r][t]) : legacy_run_sum(pan[r][t]); \
    }

/* v[g] <- the dwords g of v[0..7]: a transpose of the 8 x 8 matrix of 32-bit lanes */
static inline void transpose8_epi32(__m256i v[8]) {
    __m256i t[8], u[8];
    for (int k = 0; k < 4; k++) {
        t[2 * k] = _mm256_unpacklo_epi32(v[2 * k], v[2 * k + 1]);
        t[2 * k + 1] = _mm256_unpackhi_epi32(v[2 * k], v[2 * k + 1]);
    }
    for (int k = 0; k < 2; k++) {
        u[4 * k + 0] = _mm256_unpacklo_epi64(t[4 * k], t[4 * k + 2]);
        u[4 * k + 1] = _mm256_unpackhi_epi64(t[4 * k], t[4 * k + 2]);
        u[4 * k + 2] = _mm256_unpacklo_epi64(t[4 * k + 1], t[4 * k + 3]);
        u[4 * k + 3] = _mm256_unpackhi_epi64(t[4 * k + 1], t[4 * k + 3]);
    }
    for (int k = 0; k < 4; k++) {
        v[k] = _mm256_permute2x128_si256(u[k], u[k + 4], 0x20);
        v[k + 4] = _mm256_permute2x128_si256(u[k], u[k + 4], 0x31);
    }
}

#if QR_VNNI
/* Prompts (many tokens) on VNNI: 8 weight rows are decoded once into a scratch panel with
 * their bytes interleaved, vector g of a block holding bytes 4g..4g+3 of each of the 8 rows
 * (a dword transpose of the 8 decoded blocks). A token's 4 activation bytes broadcast against
 * it give, in one vpdpbusd, lane r = the partial dot product of row r: 8 of them finish a
 * block for 8 rows at once, with no horizontal sums; then one offset subtraction, one int to
 * float conversion and one multiply-add by the 8 rows' scales times the token's. The packing
 * costs about one decode per row and block, paid once for all the tokens of the call. A
 * token's outputs equal the tile's bit for bit (the same float terms added in the same order,
 * LEGACY_SIGNED_TILE), so a batch may take either. */
#define IL_ROWS 8
#define IL_PANEL LEGACY_PANEL /* blocks per scratch panel: 16 KiB of bytes + 2 KiB of scales */
#define IL_MIN_TOKENS 16      /* below this the packing costs more than it saves */

/* NT tokens against one packed panel of np blocks (first block b0 of the row): y += ... */
/* block b of the panel for NT tokens: its term into chain (b mod 4) of each token */
TILE void il_block(const uint8_t *pw, const float *pd, int64_t b0, int64_t b, const char *a,
                   size_t as, size_t yd_off, size_t ysum_off, __m256 acc[4][LEGACY_CHAINS],
                   const int j, const int shift, const int NT) {
    __m256i s[4];
    const block_q8_0 *yb[4];
    UNROLL for (int t = 0; t < NT; t++) {
        s[t] = _mm256_setzero_si256();
        yb[t] = (const block_q8_0 *)(a + (size_t)t * as) + b0 + b;
    }
    UNROLL for (int g = 0; g < 8; g++) {
        const __m256i wv = _mm256_load_si256((const __m256i *)(pw + (b * 8 + g) * 32));
        UNROLL for (int t = 0; t < NT; t++) s[t] =
            _mm256_dpbusd_epi32(s[t], wv, _mm256_set1_epi32((int)qr_rd_u32(yb[t]->qs + 4 * g)));
    }
    const __m256 xd = _mm256_load_ps(pd + b * 8);
    UNROLL for (int t = 0; t < NT; t++) {
        const char *at = a + (size_t)t * as;
        const int32_t off = ((const int32_t *)(at + ysum_off))[b0 + b] * (1 << shift);
        const float yd = ((const float *)(at + yd_off))[b0 + b];
        acc[t][j] =
            _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(s[t], _mm256_set1_epi32(off))),
                            _mm256_mul_ps(xd, _mm256_set1_ps(yd)), acc[t][j]);
    }
}

/* NT tokens against one packed panel of np blocks (first block b0 of the row): y += ...,
 * each token's terms in LEGACY_CHAINS chains (block b into chain b mod 4) summed as
 * (c0 + c2) + (c1 + c3), as the tile does */
TILE void il_tokens(const uint8_t *pw, const float *pd, int64_t b0, int64_t np, const char *a,
                    size_t as, size_t yd_off, size_t ysum_off, float *y, int64_t ys,
                    const int shift, const int NT) {
    __m256 acc[4][LEGACY_CHAINS];
    UNROLL for (int t = 0; t < NT; t++) UNROLL for (int j = 0; j < LEGACY_CHAINS; j++) acc[t][j] =
        _mm256_setzero_ps();
    int64_t b = 0;
    for (; b + LEGACY_CHAINS <= np; b += LEGACY_CHAINS)
        UNROLL for (int j = 0; j < LEGACY_CHAINS; j++)
            il_block(pw, pd, b0, b + j, a, as, yd_off, ysum_off, acc, j, shift, NT);
    for (; b < np; b++)
        switch (b & 3) {
        case 0: il_block(pw, pd, b0, b, a, as, yd_off, ysum_off, acc, 0, shift, NT); break;
        case 1: il_block(pw, pd, b0, b, a, as, yd_off, ysum_off, acc, 1, shift, NT); break;
        case 2: il_block(pw, pd, b0, b, a, as, yd_off, ysum_off, acc, 2, shift, NT); break;
        default: il_block(pw, pd, b0, b, a, as, yd_off, ysum_off, acc, 3, shift, NT); break;
        }
    UNROLL for (int t = 0; t < NT; t++) {
        float *yt = y + t * ys;
        const __m256 p = _mm256_add_ps(_mm256_add_ps(acc[t][0], acc[t][2]),
                                       _mm256_add_ps(acc[t][1], acc[t][3]));
        _mm256_storeu_ps(yt, b0 == 0 ? p : _mm256_add_ps(_mm256_loadu_ps(yt), p));
    }
}

/* 8 rows (multiple of IL_ROWS) x nt tokens through packed panels */
#define DEFINE_IL_GEMM(name, block_t, decode, SHIFT)                                               \
    static void name(int64_t n, const char *w, size_t ws, const char *a, size_t as, float *y,      \
                     int64_t ys, int64_t nt) {                                                     \
        _Alignas(32) uint8_t pw[IL_PANEL * 8 * 32];                                                \
        _Alignas(32) float pd[IL_PANEL * 8];                                                       \
        const int64_t nb = n / QK8_0;                                                              \
        const size_t yd_off = qr_act_q8_0_scales_offset(n), ysum_off = qr_act_q8_0_sums_offset(n); \
        for (int64_t b0 = 0; b0 < nb; b0 += IL_PANEL) {                                            \
            const int64_t np = nb - b0 < IL_PANEL ? nb - b0 : IL_PANEL;                            \
            for (int64_t b = 0; b < np; b++) {                                                     \
                __m256i v[8];                                                                      \
                for (int r = 0; r < IL_ROWS; r++) {                                                \
                    const block_t *x = (const block_t *)(w + (size_t)r * ws) + b0 + b;             \
                    v[r] = decode(x);                                                              \
                    pd[b * 8 + r] = f16(x->d);                                                     \
                }                                                                                  \
                transpose8_epi32(v);                                                               \
                for (int g = 0; g < 8; g++)                                                        \
                    _mm256_store_si256((__m256i *)(pw + (b * 8 + g) * 32), v[g]);                  \
            }                                                                                      \
            int64_t t = 0;                                                                         \
            for (; t + 4 <= nt; t += 4)                                                            \
                il_tokens(pw, pd, b0, np, a + (size_t)t * as, as, yd_off, ysum_off, y + t * ys,    \
                          ys, SHIFT, 4);                                                           \
            const char *at = a + (size_t)t * as;                                                   \
            switch (nt - t) {                                                                      \
            case 3:                                                                                \
                il_tokens(pw, pd, b0, np, at, as, yd_off, ysum_off, y + t * ys, ys, SHIFT, 3);     \
                break;                                                                             \
            case 2:                                                                                \
                il_tokens(pw, pd, b0, np, at, as, yd_off, ysum_off, y + t * ys, ys, SHIFT, 2);     \
                break;                                                                             \
            case 1:                                                                                \
                il_tokens(pw, pd, b0, np, at, as, yd_off, ysum_off, y + t * ys, ys, SHIFT, 1);     \
                break;                                                                             \
            default:                                                                               \
                break;                                                                             \
            }                                                                                      \
        }                                                                                          \
    }
DEFINE_IL_GEMM(il_gemm_q4_0, block_q4_0, decode_u_q4_0, Q4_0_OFFSET_SHIFT)
DEFINE_IL_GEMM(il_gemm_q5_0, block_q5_0, decode_u_q5_0, Q5_0_OFFSET_SHIFT)
DEFINE_IL_GEMM(il_gemm_q8_0, block_q8_0, decode_u_q8_0, Q8_0_OFFSET_SHIFT)
#endif

/* ---- Weights repacked at load (VNNI): q4_0, q5_0, q8_0, iq4_nl, mxfp4 in 16-row groups ----
 * 16 rows' bytes interleaved (transpose8_epi32 above), made once when the model loads, as
 * compact as the file's, and 512 bits wide: a group of 16 rows is a run of "x16 blocks", one
 * per 32 columns, each the 16 rows' f16 scales (32 bytes) then their 512 weights as unsigned
 * bytes u = w + offset in 8 vectors of 64 bytes: byte 4r+k of vector g is row r's weight
 * 4g+k (the dword transpose of the rows' blocks, rows 0-7 in the low 32 bytes, 8-15 in the
 * high):
 *   q8_0: the 8 vectors (w ^ 0x80)                                  32 + 512      = 16 x 34
 *   q4_0: 4 vectors of nibble pairs, low nibble vector p, high p + 4 32 + 256      = 16 x 18
 *   q5_0: the q4_0 nibbles, then per vector a 64-bit mask of fifth bits 32 + 256 + 64 = 16 x 22
 *   iq4_nl: the q4_0 nibbles (indices; levels + 128 looked up by vpshufb) 32 + 256 = 16 x 18
 *   mxfp4: the 16 rows' e8m0 exponents (bytes), then as iq4_nl          16 + 256 = 16 x 17
 * so a group is 16 rows' bytes exactly, and rows r0.. (r0 a multiple of 16) start at
 * r0 * row_bytes as in the file. One sequential stream per group (separate row streams read
 * memory at a third of the speed here), no packing per call, and every token count takes the
 * same path: one vpdpbusd of a broadcast activation dword gives 16 rows' partial sums, and
 * each x16 block is decoded once for up to 8 tokens. */
#define PK_ROWS 16
#if QR_VNNI
#define PK_MAX_TOKENS 8
#else
#define PK_MAX_TOKENS 4 /* 16 vector registers */
#endif

/* f16 / bf16 repacked: one token takes the groups two at a time (pair: pk_group_half_x2 of
 * each ISA section, pk_group_bf16dp_x2), the rest goes through gemm_groups. ATTR: function
 * attributes (a target the set's flags lack) */
#define DEFINE_PK_HALF_GEMM(ATTR, name, gemm_groups, pair, TYPE)                                   \
    ATTR static void name(int64_t n, const void *w, size_t w_stride, const void *act,              \
                          size_t act_stride, float *y, int64_t y_stride, int64_t nr, int64_t nt) { \
        int64_t r = 0;                                                                             \
        if (nt == 1)                                                                               \
            for (; r + 2 * PK_ROWS <= nr; r += 2 * PK_ROWS)                                        \
                pair((const uint8_t *)w + (size_t)r * w_stride, PK_ROWS * w_stride, n, TYPE, act,  \
                     y + r);                                                                       \
        if (r < nr)                                                                                \
            gemm_groups(n, (const char *)w + (size_t)r * w_stride, w_stride, act, act_stride,      \
                        y + r, y_stride, nr - r, nt);                                              \
    }

/* each ISA section's pk_group_half (f16 / bf16 weights) with the type fixed */
#define PK_HALF_GROUP(name, TYPE)                                                                  \
    TILE void name(const uint8_t *xw, int64_t n, const char *a, size_t as, float *y, int64_t ys,  \
                   const int NT) {                                                                 \
        pk_group_half(xw, n, TYPE, a, as, y, ys, NT);                                              \
    }

static inline size_t pk_block_bytes(int type) {
    return type == QR_TYPE_Q8_0                                 ? 32 + 512
           : type == QR_TYPE_Q4_0 || type == QR_TYPE_IQ4_NL ? 32 + 256
           : type == QR_TYPE_MXFP4                          ? 16 + 256
                                                                : 32 + 256 + 64;
}
/* bytes of an x16 block before its weight vectors: 16 f16 scales, or 16 e8m0 exponents */
static inline size_t pk_head_bytes(int type) {
    return type == QR_TYPE_MXFP4 ? 16 : 32;
}

/* block b of row `row` of a file-layout tensor as unsigned bytes (w + offset); its f16 scale
 * (mxfp4: its exponent byte) */
static inline __m256i pk_decode_row(int type, const char *row, int64_t b, uint16_t *d) {
    if (type == QR_TYPE_MXFP4) { /* the indices, as q4_0's nibbles */
        const block_mxfp4 *x = (const block_mxfp4 *)row + b;
        *d = x->e;
        return nibbles32_u(x->qs);
    }
    if (type == QR_TYPE_Q8_0) {
        const block_q8_0 *x = (const block_q8_0 *)row + b;
        *d = x->d;
        return _mm256_xor_si256(load256(x->qs), _mm256_set1_epi8((char)0x80));
    }
    if (type == QR_TYPE_Q4_0) {
        const block_q4_0 *x = (const block_q4_0 *)row + b;
        *d = x->d;
        return decode_u_q4_0(x);
    }
    if (type == QR_TYPE_IQ4_NL) { /* the indices, as q4_0's nibbles */
        const block_iq4_nl *x = (const block_iq4_nl *)row + b;
        *d = x->d;
        return nibbles32_u(x->qs);
    }
    const block_q5_0 *x = (const block_q5_0 *)row + b;
    *d = x->d;
    return decode_u_q5_0(x);
}

static void pack_x16(int type, const void *w, int64_t n, int64_t n_rows, void *out) {
    const size_t rb = qr_type_row_bytes(type, n), xb = pk_block_bytes(type);
    const size_t hb = pk_head_bytes(type);
    const int64_t nb = n / QK8_0;
    const __m256i lo = _mm256_set1_epi8(0x0F);
    for (int64_t r0 = 0; r0 + PK_ROWS <= n_rows; r0 += PK_ROWS) {
        uint8_t *o = (uint8_t *)out + (size_t)r0 * rb;
        for (int64_t b = 0; b < nb; b++, o += xb) {
            __m256i v[16];
            for (int r = 0; r < PK_ROWS; r++) {
                uint16_t d;
                v[r] = pk_decode_row(type, (const char *)w + (size_t)(r0 + r) * rb, b, &d);
                if (type == QR_TYPE_MXFP4)
                    o[r] = (uint8_t)d;
                else
                    memcpy(o + 2 * r, &d, 2);
            }
            transpose8_epi32(v);
            transpose8_epi32(v + 8);
            for (int h = 0; h < 2; h++) { /* h: rows 8h..8h+7, the half of each vector */
                const __m256i *u = v + 8 * h;
                if (type == QR_TYPE_Q8_0) {
                    for (int g = 0; g < 8; g++)
                        _mm256_storeu_si256((__m256i *)(o + 32 + 64 * g + 32 * h), u[g]);
                    continue;
                }
                for (int p = 0; p < 4; p++)
                    _mm256_storeu_si256(
                        (__m256i *)(o + hb + 64 * p + 32 * h),
                        _mm256_or_si256(_mm256_and_si256(u[p], lo),
                                        _mm256_slli_epi16(_mm256_and_si256(u[p + 4], lo), 4)));
                if (type == QR_TYPE_Q5_0)
                    for (int g = 0; g < 8; g++) {
                        const uint32_t m =
                            (uint32_t)_mm256_movemask_epi8(_mm256_slli_epi16(u[g], 3));
                        memcpy(o + 32 + 256 + 8 * g + 4 * h, &m, 4);
                    }
            }
        }
    }
}

/* row `row` of a packed tensor of n columns, dequantized as the file's row would be (d * w) */
static void packed_row_x16(int type, const void *w, int64_t n, int64_t row, float *out) {
    const size_t xb = pk_block_bytes(type);
    const int rr = (int)(row % PK_ROWS);
    const int offset = type == QR_TYPE_Q8_0 ? 128 : type == QR_TYPE_Q4_0 ? 8 : 16;
    const size_t hb = pk_head_bytes(type);
    const uint8_t *o = (const uint8_t *)w + (size_t)(row - rr) * qr_type_row_bytes(type, n);
    for (int64_t b = 0; b < n / QK8_0; b++, o += xb) {
        uint16_t dh;
        memcpy(&dh, o + 2 * rr, 2);
        const float d = type == QR_TYPE_MXFP4 ? qr_e8m0_to_fp32_half(o[rr]) : f16(dh);
        for (int g = 0; g < 8; g++)
            for (int k = 0; k < 4; k++) {
                const int lane = 4 * rr + k;
                int u;
                if (type == QR_TYPE_Q8_0) {
                    u = o[32 + 64 * g + lane];
                } else {
                    const uint8_t q = o[hb + 64 * (g & 3) + lane];
                    u = g < 4 ? q & 0x0F : q >> 4;
                    if (type == QR_TYPE_Q5_0) {
                        uint64_t m;
                        memcpy(&m, o + 32 + 256 + 8 * g, 8);
                        u |= (int)((m >> lane) & 1) << 4;
                    }
                }
                out[b * QK8_0 + 4 * g + k] = type == QR_TYPE_IQ4_NL ? d * (float)qr_kvalues_iq4nl[u]
                                             : type == QR_TYPE_MXFP4 ? (float)qr_kvalues_mxfp4[u] * d
                                                                     : (float)(u - offset) * d;
            }
    }
}

/* nr (a multiple of 16) packed rows x nt tokens, blocks of BS columns: per group, tokens 8 at
 * a time while the group's bytes stay in L1 */
#define PK_CASE(k, group)                                                                          \
    case k:                                                                                        \
        group(xw, nb, at, act_stride, yt, y_stride, k);                                            \
        break;
#define DEFINE_PK_GEMM(name, group, BS) DEFINE_PK_GEMM_AS(, name, group, BS)
/* ATTR: function attributes (a target the set's flags lack) */
#define DEFINE_PK_GEMM_AS(ATTR, name, group, BS)                                                   \
    ATTR static void name(int64_t n, const void *w, size_t w_stride, const void *act,              \
                          size_t act_stride, float *y, int64_t y_stride, int64_t nr, int64_t nt) { \
        const int64_t nb = n / (BS);                                                               \
        for (int64_t r = 0; r + PK_ROWS <= nr; r += PK_ROWS) {                                     \
            const uint8_t *xw = (const uint8_t *)w + (size_t)r * w_stride;                         \
            for (int64_t t = 0; t < nt; t += PK_MAX_TOKENS) {                                      \
                const char *at = (const char *)act + (size_t)t * act_stride;                       \
                float *yt = y + t * y_stride + r;                                                  \
                switch (nt - t < PK_MAX_TOKENS ? nt - t : PK_MAX_TOKENS) {                         \
                    PK_CASES(group)                                                                \
                default:                                                                           \
                    group(xw, nb, at, act_stride, yt, y_stride, 1);                                \
                    break;                                                                         \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

/* ---- q4_K and q6_K repacked: 16-row groups, one x16 superblock per 256 columns ----
 * The same dword-interleaved vectors (byte 4r+k of vector g = row r's element 4g+k; 64
 * vectors per superblock, vectors 8j..8j+7 the 32 elements of q4_K sub-block j, vectors
 * 4k..4k+3 the 16 of q6_K sub-block k), the scales unpacked to bytes so that 16 rows' scales of
 * a sub-block are one 16-byte load:
 *   q4_K: d[16], dmin[16] (f16) | scales [j][r] | mins [j/2][r][j%2] | per sub-block j four
 *         vectors of nibble pairs (low: vector 8j+i, high: 8j+i+4)         2368 = 16 x 148
 *   q6_K: d[16] (f16) | per sub-block pair m (vectors 8m..8m+7): four vectors of nibble
 *         pairs (low: vector 8m+i, high 8m+i+4), two vectors of top-two bits (bits 2i..2i+1
 *         of a byte: vector 8m+4h+i's), the two sub-blocks' scales [k][r] (int8)
 *                                                                          3360 = 16 x 210
 * each superblock one forward stream (three interleaved streams, as a first q6_K layout had,
 * ran at a third of the speed from memory)
 * q4_K grows by 4 bytes per row and superblock (its 6-bit scales would cost more to unpack per
 * use than they save in bytes). A sub-block's integer dot product (vpdpbusd of the unsigned
 * values with the activation bytes) is scaled by the rows' scales in 32-bit lanes (vpmulld);
 * q4_K's mins pair with the activation's block sums (vpdpwssd), q6_K's offset 32 starts each
 * sub-block's sum at -32 times them. */
#define PK_KQ4_BYTES 2368
#define PK_KQ6_BYTES 3360
/* software prefetch distance of the q4_K / q6_K groups (where pk_prefetch_always) */
#define PK_PREFETCH_K 4096

/* the vectors of 16 rows' superblock sb (values 0..63 as unsigned bytes): vec[g][4r+k] */
static void pk_k_vectors(int type, const void *w, size_t rb, int64_t sb, qr_kblock kb[16],
                         uint8_t vec[64][64]) {
    for (int r = 0; r < PK_ROWS; r++) {
        const char *blk = (const char *)w + (size_t)r * rb;
        if (type == QR_TYPE_Q4_K)
            qr_unpack_q4_K((const block_q4_K *)blk + sb, &kb[r]);
        else
            qr_unpack_q6_K((const block_q6_K *)blk + sb, &kb[r]);
        uint8_t q[QK_K];
        const int off = type == QR_TYPE_Q6_K ? 32 : 0;
        for (int e = 0; e < QK_K; e++)
            q[e] = (uint8_t)(kb[r].q[e] + off);
        for (int g = 0; g < 64; g++) /* the dword transpose */
            memcpy(&vec[g][4 * r], q + 4 * g, 4);
    }
}

/* the activation's sums of q4_K's 8 sub-blocks of 32 (q8_K keeps them per 16), as 16-bit
 * pairs: dword jp holds sub-blocks 2jp and 2jp+1, for vpdpwssd / vpmaddwd with the mins */
static inline void q8K_sub_sums(const block_q8_K *yb, int32_t bsp[4]) {
    _mm_storeu_si128((__m128i *)bsp,
                     _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)yb->bsums),
                                    _mm_loadu_si128((const __m128i *)(yb->bsums + 8))));
}

static void pack_k_x16(int type, const void *w, int64_t n, int64_t n_rows, void *out) {
    const size_t rb = qr_type_row_bytes(type, n);
    const size_t xb = type == QR_TYPE_Q4_K ? PK_KQ4_BYTES : PK_KQ6_BYTES;
    const int64_t nsb = n / QK_K;
    qr_kblock kb[16];
    uint8_t vec[64][64];
    for (int64_t r0 = 0; r0 + PK_ROWS <= n_rows; r0 += PK_ROWS) {
        uint8_t *o = (uint8_t *)out + (size_t)(r0 / PK_ROWS) * xb * (size_t)nsb;
        for (int64_t sb = 0; sb < nsb; sb++, o += xb) {
            const char *rows = (const char *)w + (size_t)r0 * rb;
            pk_k_vectors(type, rows, rb, sb, kb, vec);
            for (int r = 0; r < PK_ROWS; r++) {
                const char *row = rows + (size_t)r * rb;
                if (type == QR_TYPE_Q4_K) {
                    const block_q4_K *b = (const block_q4_K *)row + sb;
                    memcpy(o + 2 * r, &b->d, 2);
                    memcpy(o + 32 + 2 * r, &b->dmin, 2);
                    for (int j = 0; j < 8; j++) {
                        o[64 + 16 * j + r] = (uint8_t)kb[r].scale[2 * j];
                        o[192 + 32 * (j / 2) + 2 * r + j % 2] = (uint8_t)kb[r].min[2 * j];
                    }
                } else {
                    const block_q6_K *b = (const block_q6_K *)row + sb;
                    memcpy(o + 2 * r, &b->d, 2);
                    for (int k = 0; k < 16; k++)
                        o[32 + 416 * (k / 2) + 384 + 16 * (k % 2) + r] = (uint8_t)kb[r].scale[k];
                }
            }
            if (type == QR_TYPE_Q4_K) {
                for (int j = 0; j < 8; j++)
                    for (int i = 0; i < 4; i++)
                        for (int b = 0; b < 64; b++)
                            o[320 + 256 * j + 64 * i + b] =
                                (uint8_t)(vec[8 * j + i][b] | vec[8 * j + i + 4][b] << 4);
            } else {
                for (int m = 0; m < 8; m++) {
                    uint8_t *c = o + 32 + 416 * m;
                    for (int i = 0; i < 4; i++)
                        for (int b = 0; b < 64; b++)
                            c[64 * i + b] = (uint8_t)((vec[8 * m + i][b] & 0xF) |
                                                      (vec[8 * m + i + 4][b] & 0xF) << 4);
                    for (int h = 0; h < 2; h++)
                        for (int b = 0; b < 64; b++) {
                            int bits = 0;
                            for (int i = 0; i < 4; i++)
                                bits |= (vec[8 * m + 4 * h + i][b] >> 4 & 3) << (2 * i);
                            c[256 + 64 * h + b] = (uint8_t)bits;
                        }
                }
            }
        }
    }
}

/* row `row` of a packed q4_K / q6_K tensor, dequantized as the file's row would be */
static void packed_row_k_x16(int type, const void *w, int64_t n, int64_t row, float *out) {
    const size_t xb = type == QR_TYPE_Q4_K ? PK_KQ4_BYTES : PK_KQ6_BYTES;
    const int64_t nsb = n / QK_K;
    const int rr = (int)(row % PK_ROWS);
    const uint8_t *o = (const uint8_t *)w + (size_t)(row / PK_ROWS) * xb * (size_t)nsb;
    for (int64_t sb = 0; sb < nsb; sb++, o += xb, out += QK_K) {
        qr_kblock k;
        uint16_t h;
        memcpy(&h, o + 2 * rr, 2);
        k.d = f16(h);
        if (type == QR_TYPE_Q4_K) {
            memcpy(&h, o + 32 + 2 * rr, 2);
            k.dmin = f16(h);
            for (int j = 0; j < 8; j++) {
                k.scale[2 * j] = k.scale[2 * j + 1] = o[64 + 16 * j + rr];
                k.min[2 * j] = k.min[2 * j + 1] = o[192 + 32 * (j / 2) + 2 * rr + j % 2];
            }
        } else {
            k.dmin = 0.0f;
            for (int s = 0; s < 16; s++) {
                k.scale[s] = (int8_t)o[32 + 416 * (s / 2) + 384 + 16 * (s % 2) + rr];
                k.min[s] = 0;
            }
        }
        for (int e = 0; e < QK_K; e++) {
            const int g = e / 4, lane = 4 * rr + e % 4;
            int q;
            if (type == QR_TYPE_Q4_K) {
                const uint8_t b = o[320 + 256 * (g / 8) + 64 * (g % 4) + lane];
                q = g % 8 < 4 ? b & 0xF : b >> 4;
            } else {
                const uint8_t *c = o + 32 + 416 * (g / 8);
                const uint8_t b = c[64 * (g % 4) + lane];
                q = (g % 8 < 4 ? b & 0xF : b >> 4) |
                    ((c[256 + 64 * (g % 8 / 4) + lane] >> (2 * (g % 4))) & 3) << 4;
                q -= 32;
            }
            const float dl = k.d * (float)k.scale[e / 16], ml = k.dmin * (float)k.min[e / 16];
            out[e] = dl * (float)q - ml;
        }
    }
}

/* ---- iq4_xs repacked: 16-row groups, one x16 superblock per 256 columns, as q4_K's ----
 *   d[16] (f16) | scales - 32 [j][r] (int8) | per sub-block j four vectors of nibble pairs
 *   (the indices; low: vector 8j+i, high: 8j+i+4)                     2208 = 16 x 138
 * (2 bytes per row and superblock more than the file: the scales as bytes). The kernel looks
 * the indices up as levels + 128 (vpshufb) and starts each half sub-block's sum at -128 times
 * the activation's sum of it. */
#define PK_IQ4XS_BYTES 2208

static void pack_iq4xs_x16(const void *w, int64_t n, int64_t n_rows, void *out) {
    const size_t rb = qr_type_row_bytes(QR_TYPE_IQ4_XS, n);
    const int64_t nsb = n / QK_K;
    uint8_t vec[64][64];
    for (int64_t r0 = 0; r0 + PK_ROWS <= n_rows; r0 += PK_ROWS) {
        uint8_t *o = (uint8_t *)out + (size_t)(r0 / PK_ROWS) * PK_IQ4XS_BYTES * (size_t)nsb;
        for (int64_t sb = 0; sb < nsb; sb++, o += PK_IQ4XS_BYTES) {
            for (int r = 0; r < PK_ROWS; r++) {
                const block_iq4_xs *b = (const block_iq4_xs *)((const char *)w + (size_t)(r0 + r) * rb) + sb;
                const unsigned sh = qr_rd_u16(&b->scales_h);
                memcpy(o + 2 * r, &b->d, 2);
                uint8_t q[QK_K];
                for (int j = 0; j < 8; j++) {
                    const int ls = ((b->scales_l[j / 2] >> (4 * (j % 2))) & 15) | (((sh >> (2 * j)) & 3) << 4);
                    o[32 + 16 * j + r] = (uint8_t)(int8_t)(ls - 32);
                    for (int e = 0; e < 16; e++) {
                        q[32 * j + e] = b->qs[16 * j + e] & 15;
                        q[32 * j + e + 16] = b->qs[16 * j + e] >> 4;
                    }
                }
                for (int g = 0; g < 64; g++) /* the dword transpose */
                    memcpy(&vec[g][4 * r], q + 4 * g, 4);
            }
            for (int j = 0; j < 8; j++)
                for (int i = 0; i < 4; i++)
                    for (int b = 0; b < 64; b++)
                        o[160 + 256 * j + 64 * i + b] =
                            (uint8_t)(vec[8 * j + i][b] | vec[8 * j + i + 4][b] << 4);
        }
    }
}

/* row `row` of a packed iq4_xs tensor, dequantized as the file's row would be */
static void packed_row_iq4xs_x16(const void *w, int64_t n, int64_t row, float *out) {
    const int64_t nsb = n / QK_K;
    const int rr = (int)(row % PK_ROWS);
    const uint8_t *o = (const uint8_t *)w + (size_t)(row / PK_ROWS) * PK_IQ4XS_BYTES * (size_t)nsb;
    for (int64_t sb = 0; sb < nsb; sb++, o += PK_IQ4XS_BYTES, out += QK_K) {
        uint16_t h;
        memcpy(&h, o + 2 * rr, 2);
        const float d = f16(h);
        for (int j = 0; j < 8; j++) {
            const float dl = d * (float)(int8_t)o[32 + 16 * j + rr];
            for (int e = 0; e < 32; e++) {
                const int g = 8 * j + e / 4, lane = 4 * rr + e % 4;
                const uint8_t b = o[160 + 256 * j + 64 * (g % 4) + lane];
                out[32 * j + e] = dl * (float)qr_kvalues_iq4nl[g % 8 < 4 ? b & 0xF : b >> 4];
            }
        }
    }
}

/* ---- f16 and bf16 repacked: 16-row groups, column-major within a group ----
 * Column c of a group is 32 bytes, its 16 rows' halves in row order, so one 256-bit load
 * converted to floats is 16 rows' weights of one column: a multiply-add with the broadcast
 * activation adds it into 16 rows' sums at once (no horizontal sums per row, and the row's
 * activation is read once per 16 rows), each group one forward stream. Same size as the file. */
static void pack_half_x16(const void *w, int64_t n, int64_t n_rows, void *out) {
    const uint16_t *src = w;
    uint16_t *o = out;
    for (int64_t r0 = 0; r0 + PK_ROWS <= n_rows; r0 += PK_ROWS)
        for (int64_t c = 0; c < n; c++, o += PK_ROWS)
            for (int r = 0; r < PK_ROWS; r++)
                o[r] = src[(r0 + r) * n + c];
}
static void packed_row_half_x16(int type, const void *w, int64_t n, int64_t row, float *out) {
    const uint16_t *g = (const uint16_t *)w + (row - row % PK_ROWS) * n + row % PK_ROWS;
    for (int64_t c = 0; c < n; c++)
        out[c] = type == QR_TYPE_F16 ? f16(g[c * PK_ROWS]) : qr_bf16_to_fp32(g[c * PK_ROWS]);
}
static inline bool is_half(int type) {
    return type == QR_TYPE_F16 || type == QR_TYPE_BF16;
}

/* the kernel set's entry points, by type */
static void pack_any_x16(int type, const void *w, int64_t n, int64_t n_rows, void *out) {
    if (type == QR_TYPE_Q4_K || type == QR_TYPE_Q6_K)
        pack_k_x16(type, w, n, n_rows, out);
    else if (type == QR_TYPE_IQ4_XS)
        pack_iq4xs_x16(w, n, n_rows, out);
    else if (is_half(type))
        pack_half_x16(w, n, n_rows, out);
    else
        pack_x16(type, w, n, n_rows, out);
}
static void packed_row_any_x16(int type, const void *w, int64_t n, int64_t row, float *out) {
    if (type == QR_TYPE_Q4_K || type == QR_TYPE_Q6_K)
        packed_row_k_x16(type, w, n, row, out);
    else if (type == QR_TYPE_IQ4_XS)
        packed_row_iq4xs_x16(w, n, row, out);
    else if (is_half(type))
        packed_row_half_x16(type, w, n, row, out);
    else
        packed_row_x16(type, w, n, row, out);
}
/* bytes per row of the packed layout (whole groups: a group is PK_ROWS times this) */
static size_t packed_row_bytes_x16(int type, int64_t n) {
    if (type == QR_TYPE_Q4_K) return (size_t)(n / QK_K) * (PK_KQ4_BYTES / PK_ROWS);
    if (type == QR_TYPE_IQ4_XS) return (size_t)(n / QK_K) * (PK_IQ4XS_BYTES / PK_ROWS);
    return qr_type_row_bytes(type, n);
}

#if QR_VNNI
/* 4 vectors of nibble pairs at p as 8 vectors of bytes: v[i] the low nibbles of vector i,
 * v[i + 4] the high ones */
TILE void pk_nibbles(const uint8_t *p, __m512i v[8]) {
    const __m512i lo = _mm512_set1_epi8(0x0F);
    UNROLL for (int i = 0; i < 4; i++) {
        const __m512i q = _mm512_loadu_si512(p + 64 * i);
        v[i] = _mm512_and_si512(q, lo);
        v[i + 4] = _mm512_and_si512(_mm512_srli_epi16(q, 4), lo);
    }
}

/* iq4_nl's 16 levels + 128 (unsigned, 1..241) in every 128-bit lane, for vpshufb */
static inline __m512i pk_iq4_levels_u(void) {
    return _mm512_broadcast_i32x4(_mm_xor_si128(_mm256_castsi256_si128(iq4nl_levels()),
                                                _mm_set1_epi8((char)0x80)));
}

/* mxfp4's 16 doubled e2m1 levels + 128, likewise */
static inline __m512i pk_mxfp4_levels_u(void) {
    return _mm512_broadcast_i32x4(_mm_xor_si128(_mm_loadu_si128((const __m128i *)qr_kvalues_mxfp4),
                                                _mm_set1_epi8((char)0x80)));
}

/* 16 e8m0 exponents to 2^(e - 128) (e = 0, 1: the subnormals, as qr_e8m0_to_fp32_half) */
static inline __m512 pk_e8m0_half(const uint8_t *e) {
    const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)e));
    const __m512i normal = _mm512_slli_epi32(_mm512_sub_epi32(v, _mm512_set1_epi32(1)), 23);
    const __m512i sub = _mm512_sllv_epi32(_mm512_set1_epi32(0x00200000), v);
    return _mm512_castsi512_ps(
        _mm512_mask_blend_epi32(_mm512_cmplt_epu32_mask(v, _mm512_set1_epi32(2)), normal, sub));
}

/* the 8 weight vectors of one x16 block */
TILE void pk_decode(const uint8_t *xb, const int type, __m512i v[8]) {
    if (type == QR_TYPE_Q8_0) {
        UNROLL for (int g = 0; g < 8; g++) v[g] = _mm512_loadu_si512(xb + 32 + 64 * g);
        return;
    }
    pk_nibbles(xb + pk_head_bytes(type), v);
    if (type == QR_TYPE_IQ4_NL)
        UNROLL for (int g = 0; g < 8; g++) v[g] = _mm512_shuffle_epi8(pk_iq4_levels_u(), v[g]);
    if (type == QR_TYPE_MXFP4)
        UNROLL for (int g = 0; g < 8; g++) v[g] = _mm512_shuffle_epi8(pk_mxfp4_levels_u(), v[g]);
    if (type == QR_TYPE_Q5_0)
        UNROLL for (int g = 0; g < 8; g++) {
            uint64_t m;
            memcpy(&m, xb + 32 + 256 + 8 * g, 8);
            v[g] = _mm512_mask_add_epi8(v[g], _cvtu64_mask64(m), v[g], _mm512_set1_epi8(0x10));
        }
}

/* Software prefetch of the repacked weights at every token count. On the Intel Xeon of
 * 2026-12-07 (260 MiB L3, ~14 GB/s one-thread streaming) one token's products read weights
 * from memory 25-30% faster with it (bench_gemm, 1 GiB cycled: q4_K 10.4 -> 13.3 GB/s, q6_K
 * 10.3 -> 13.5, q5_0 10.7 -> 13.9, q8_0 14.5 -> 16.2); on the Zen 4 of round 3 it got in the
 * way at one token. Set once by the fill function (CPU vendor; QR_PREFETCH=0/1 overrides),
 * read-only afterwards. */
static bool pk_prefetch_always;

/* one 16-row group times NT <= 8 tokens: y[t * ys + r] for r < 16 */
TILE void pk_group(const uint8_t *xw, int64_t nb, const int type, const char *a, size_t as,
                   size_t yd_off, size_t ysum_off, float *y, int64_t ys, const int NT) {
    const size_t xbytes = pk_block_bytes(type);
    const int shift = type == QR_TYPE_Q8_0 || type == QR_TYPE_IQ4_NL || type == QR_TYPE_MXFP4 ? 7
                      : type == QR_TYPE_Q4_0                                                   ? 3
                                                                                               : 4;
    __m512 acc[PK_MAX_TOKENS];
    UNROLL for (int t = 0; t < NT; t++) acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++, xw += xbytes) {
        __m512i v[8];
        /* With several tokens per block the decoding no longer hides the memory latency:
         * software prefetch, 2 KiB ahead (with one token it only got in the way on Zen 4; on
         * Intel it pays at one token too: pk_prefetch_always) */
        if (NT >= 4 || pk_prefetch_always)
            for (size_t c = 0; c < xbytes; c += 64)
                _mm_prefetch((const char *)xw + 2048 + c, _MM_HINT_T0);
        pk_decode(xw, type, v);
        const __m512 xd = type == QR_TYPE_MXFP4 ? pk_e8m0_half(xw)
                                                : _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)xw));
        /* the tokens' chains of 8 multiply-adds side by side, so their latencies overlap */
        __m512i s[PK_MAX_TOKENS];
        UNROLL for (int t = 0; t < NT; t++) s[t] = _mm512_set1_epi32(
            -((const int32_t *)(a + (size_t)t * as + ysum_off))[b] * (1 << shift));
        UNROLL for (int g = 0; g < 8; g++) UNROLL for (int t = 0; t < NT; t++) s[t] =
            _mm512_dpbusd_epi32(s[t], v[g],
                                _mm512_set1_epi32((int)qr_rd_u32(
                                    ((const block_q8_0 *)(a + (size_t)t * as) + b)->qs + 4 * g)));
        UNROLL for (int t = 0; t < NT; t++) acc[t] = _mm512_fmadd_ps(
            _mm512_cvtepi32_ps(s[t]),
            _mm512_mul_ps(xd, _mm512_set1_ps(((const float *)(a + (size_t)t * as + yd_off))[b])),
            acc[t]);
    }
    UNROLL for (int t = 0; t < NT; t++) _mm512_storeu_ps(y + t * ys, acc[t]);
}

/* the legacy types' groups with the k-quants' signature (n = nb * 32 columns) */
#define PK_LEGACY_GROUP(name, TYPE)                                                                \
    TILE void name(const uint8_t *xw, int64_t nb, const char *a, size_t as, float *y, int64_t ys, \
                   const int NT) {                                                                 \
        pk_group(xw, nb, TYPE, a, as, qr_act_q8_0_scales_offset(nb * QK8_0),                       \
                 qr_act_q8_0_sums_offset(nb * QK8_0), y, ys, NT);                                  \
    }
PK_LEGACY_GROUP(pk_group_q4_0, QR_TYPE_Q4_0)
PK_LEGACY_GROUP(pk_group_q5_0, QR_TYPE_Q5_0)
PK_LEGACY_GROUP(pk_group_q8_0, QR_TYPE_Q8_0)
PK_LEGACY_GROUP(pk_group_iq4_nl, QR_TYPE_IQ4_NL)
PK_LEGACY_GROUP(pk_group_mxfp4, QR_TYPE_MXFP4)
#define PK_CASES(group)                                                                            \
    PK_CASE(8, group) PK_CASE(7, group) PK_CASE(6, group) PK_CASE(5, group) PK_CASE(4, group)      \
    PK_CASE(3, group) PK_CASE(2, group)
DEFINE_PK_GEMM(pk_gemm_q4_0, pk_group_q4_0, QK8_0)
DEFINE_PK_GEMM(pk_gemm_q5_0, pk_group_q5_0, QK8_0)
DEFINE_PK_GEMM(pk_gemm_q8_0, pk_group_q8_0, QK8_0)
DEFINE_PK_GEMM(pk_gemm_iq4_nl, pk_group_iq4_nl, QK8_0)
DEFINE_PK_GEMM(pk_gemm_mxfp4, pk_group_mxfp4, QK8_0)

/* one 16-row group of f16 / bf16 times NT <= 8 tokens: per column one conversion, NT
 * multiply-adds; each token keeps HALF_CHAINS chains of sums (columns c mod HALF_CHAINS) */
static inline __m512 pk_load_half16(const uint16_t *p, const int type) {
    const __m256i h = _mm256_loadu_si256((const __m256i *)p);
    if (type == QR_TYPE_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
/* the columns [c, n) one at a time, as floats, into the first chain; then each token's U
 * chains summed into y */
TILE void pk_half_finish(const uint16_t *w, int64_t c, int64_t n, const int type, const char *a,
                         size_t as, __m512 (*acc)[4], const int U, float *y, int64_t ys,
                         const int NT) {
    const size_t xo = qr_act_half_f32_offset(n);
    for (; c < n; c++) {
        const __m512 wv = pk_load_half16(w + c * PK_ROWS, type);
        UNROLL for (int t = 0; t < NT; t++) acc[t][0] = _mm512_fmadd_ps(
            wv, _mm512_set1_ps(((const float *)(a + (size_t)t * as + xo))[c]), acc[t][0]);
    }
    UNROLL for (int t = 0; t < NT; t++) {
        UNROLL for (int u = 1; u < U; u++) acc[t][0] = _mm512_add_ps(acc[t][0], acc[t][u]);
        _mm512_storeu_ps(y + t * ys, acc[t][0]);
    }
}
/* software prefetch distance for 3+ tokens: 4 KiB (2 KiB ahead gave 46-54 GMAC/s at 8 tokens,
 * none 30: `bench_gemm f16 576 1536 8 64 packed`) */
#define HALF_PF 4096
TILE void pk_group_half(const uint8_t *xw, int64_t n, const int type, const char *a, size_t as,
                        float *y, int64_t ys, const int NT) {
    const uint16_t *w = (const uint16_t *)xw;
    const size_t xo = qr_act_half_f32_offset(n);
    const int U = HALF_CHAINS, S = HALF_CHAINS; /* chains per token, columns per step */
    __m512 acc[PK_MAX_TOKENS][4];
    UNROLL for (int t = 0; t < NT; t++) UNROLL for (int u = 0; u < U; u++) acc[t][u] =
        _mm512_setzero_ps();
    int64_t c = 0;
    for (; c + S <= n; c += S) {
        /* with 3+ tokens a column takes long enough that the stream prefetchers fall behind */
        if (NT >= 3) _mm_prefetch((const char *)(w + c * PK_ROWS) + HALF_PF, _MM_HINT_T0);
        UNROLL for (int u = 0; u < S; u++) {
            const __m512 wv = pk_load_half16(w + (c + u) * PK_ROWS, type);
            UNROLL for (int t = 0; t < NT; t++) acc[t][u % U] = _mm512_fmadd_ps(
                wv, _mm512_set1_ps(((const float *)(a + (size_t)t * as + xo))[c + u]),
                acc[t][u % U]);
        }
    }
    pk_half_finish(w, c, n, type, a, as, acc, U, y, ys, NT);
}
/* One token against two groups side by side (rows r..r+15 at xw, r+16..r+31 at xw + gs): each
 * group's chains are pk_group_half's, so its results are too, but 4 chains in flight (2 per
 * group) hide the multiply-add latency that one token's 2 alone wait on (f16 576 x 1536 from
 * L2, one token: 44 us one group at a time, 34 two; 35 with the 4 chains before issue 22) */
TILE void pk_group_half_x2(const uint8_t *xw, size_t gs, int64_t n, const int type, const char *a,
                           float *y) {
    const uint16_t *w0 = (const uint16_t *)xw, *w1 = (const uint16_t *)(xw + gs);
    const float *x = (const float *)(a + qr_act_half_f32_offset(n));
    const int U = HALF_CHAINS, S = 2 * HALF_CHAINS; /* chains per group, columns per step */
    __m512 acc[2][1][4];
    UNROLL for (int g = 0; g < 2; g++) UNROLL for (int u = 0; u < U; u++) acc[g][0][u] =
        _mm512_setzero_ps();
    int64_t c = 0;
    for (; c + S <= n; c += S)
        UNROLL for (int u = 0; u < S; u++) {
            const __m512 xv = _mm512_set1_ps(x[c + u]);
            acc[0][0][u % U] =
                _mm512_fmadd_ps(pk_load_half16(w0 + (c + u) * PK_ROWS, type), xv, acc[0][0][u % U]);
            acc[1][0][u % U] =
                _mm512_fmadd_ps(pk_load_half16(w1 + (c + u) * PK_ROWS, type), xv, acc[1][0][u % U]);
        }
    /* then, as pk_group_half: U columns into the U chains while there are U, and the last
     * column (odd n) into chain 0 */
    for (; c + U <= n; c += U)
        UNROLL for (int u = 0; u < U; u++) {
            const __m512 xv = _mm512_set1_ps(x[c + u]);
            acc[0][0][u] =
                _mm512_fmadd_ps(pk_load_half16(w0 + (c + u) * PK_ROWS, type), xv, acc[0][0][u]);
            acc[1][0][u] =
                _mm512_fmadd_ps(pk_load_half16(w1 + (c + u) * PK_ROWS, type), xv, acc[1][0][u]);
        }
    pk_half_finish(w0, c, n, type, a, 0, acc[0], U, y, 0, 1);
    pk_half_finish(w1, c, n, type, a, 0, acc[1], U, y + PK_ROWS, 0, 1);
}
PK_HALF_GROUP(pk_group_f16, QR_TYPE_F16)
PK_HALF_GROUP(pk_group_bf16, QR_TYPE_BF16)
DEFINE_PK_GEMM(pk_gemm_f16_groups, pk_group_f16, 1)
DEFINE_PK_GEMM(pk_gemm_bf16_groups, pk_group_bf16, 1)
DEFINE_PK_HALF_GEMM(, pk_gemm_f16, pk_gemm_f16_groups, pk_group_half_x2, QR_TYPE_F16)
DEFINE_PK_HALF_GEMM(, pk_gemm_bf16, pk_gemm_bf16_groups, pk_group_half_x2, QR_TYPE_BF16)

/* bf16 on CPUs with AVX512-BF16: the same column-major groups, two columns at a time: one
 * vpermw interleaves their 16 rows into (column c, c + 1) pairs, and one vdpbf16ps per token
 * adds both columns' products (exact in float, as in the multiply-add path; the sums are
 * rounded in a different order, and subnormal inputs count as zero, as ggml's bf16 dot
 * product does with the same instruction) against the activation's own bf16 pair. Half the
 * instructions of the conversion path per multiply-add: prompts. Compiled for the instruction
 * set by attribute, used only where CPUID reports it (qr_kernels_use_avx512_bf16). */
#define BF16_FN static inline __attribute__((always_inline, target("avx512bf16")))
BF16_FN void pk_group_bf16dp(const uint8_t *xw, int64_t n, const char *a, size_t as, float *y,
                             int64_t ys, const int NT) {
    const uint16_t *w = (const uint16_t *)xw;
    const int U = HALF_CHAINS; /* chains per token */
    /* word 2r + e of the result: row r of column c + e (word 16e + r of the two columns) */
    const __m512i pairs = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9,
                                           24, 8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1,
                                           16, 0);
    __m512 acc[PK_MAX_TOKENS][4];
    UNROLL for (int t = 0; t < NT; t++) UNROLL for (int u = 0; u < U; u++) acc[t][u] =
        _mm512_setzero_ps();
    int64_t c = 0;
    for (; c + 2 * U <= n; c += 2 * U)
        UNROLL for (int u = 0; u < U; u++) {
            const int64_t cc = c + 2 * u;
            if (NT >= 3) _mm_prefetch((const char *)(w + cc * PK_ROWS) + HALF_PF, _MM_HINT_T0);
            const __m512i wv =
                _mm512_permutexvar_epi16(pairs, _mm512_loadu_si512(w + cc * PK_ROWS));
            UNROLL for (int t = 0; t < NT; t++) acc[t][u] = _mm512_dpbf16_ps(
                acc[t][u], (__m512bh)wv,
                (__m512bh)_mm512_set1_epi32((int)qr_rd_u32((const uint16_t *)(a + (size_t)t * as) + cc)));
        }
    pk_half_finish(w, c, n, QR_TYPE_BF16, a, as, acc, U, y, ys, NT); /* odd n: the last column */
}
/* one token against two groups side by side, as pk_group_half_x2 (type: QR_TYPE_BF16) */
BF16_FN void pk_group_bf16dp_x2(const uint8_t *xw, size_t gs, int64_t n, const int type,
                                const char *a, float *y) {
    (void)type;
    const uint16_t *w0 = (const uint16_t *)xw, *w1 = (const uint16_t *)(xw + gs);
    const int U = HALF_CHAINS;
    const __m512i pairs =
        _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                         21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    __m512 acc[2][1][4];
    UNROLL for (int g = 0; g < 2; g++) UNROLL for (int u = 0; u < U; u++) acc[g][0][u] =
        _mm512_setzero_ps();
    int64_t c = 0;
    for (; c + 2 * U <= n; c += 2 * U)
        UNROLL for (int u = 0; u < U; u++) {
            const int64_t cc = c + 2 * u;
            const __m512bh xv =
                (__m512bh)_mm512_set1_epi32((int)qr_rd_u32((const uint16_t *)a + cc));
            acc[0][0][u] = _mm512_dpbf16_ps(
                acc[0][0][u],
                (__m512bh)_mm512_permutexvar_epi16(pairs, _mm512_loadu_si512(w0 + cc * PK_ROWS)),
                xv);
            acc[1][0][u] = _mm512_dpbf16_ps(
                acc[1][0][u],
                (__m512bh)_mm512_permutexvar_epi16(pairs, _mm512_loadu_si512(w1 + cc * PK_ROWS)),
                xv);
        }
    pk_half_finish(w0, c, n, QR_TYPE_BF16, a, 0, acc[0], U, y, 0, 1);
    pk_half_finish(w1, c, n, QR_TYPE_BF16, a, 0, acc[1], U, y + PK_ROWS, 0, 1);
}
DEFINE_PK_GEMM_AS(__attribute__((target("avx512bf16"))), pk_gemm_bf16dp_groups, pk_group_bf16dp, 1)
DEFINE_PK_HALF_GEMM(__attribute__((target("avx512bf16"))), pk_gemm_bf16dp, pk_gemm_bf16dp_groups,
                    pk_group_bf16dp_x2, QR_TYPE_BF16)

void qr_kernels_use_avx512_bf16(qr_kernels *k) {
    k->gemm_packed[QR_TYPE_BF16] = pk_gemm_bf16dp;
}

/* the start of a packed superblock of `bytes` at xw: its prefetch (where
 * pk_prefetch_always) and NT zeroed integer sums */
TILE void pk_superblock_start(const uint8_t *xw, int bytes, __m512i *isum, const int NT) {
    if (pk_prefetch_always)
        for (int c = 0; c < bytes; c += 64)
            _mm_prefetch((const char *)xw + PK_PREFETCH_K + c, _MM_HINT_T0);
    UNROLL for (int t = 0; t < NT; t++) isum[t] = _mm512_setzero_si512();
}

/* the two half sums of 32-value sub-block j (q8_K's bsums 2j and 2j + 1) of token yb against
 * the sub-block's 8 vectors of unsigned values u = w + off: each started at -off times its
 * half's activation sum, so that they are the sums of w * y */
TILE void pk_sub_dots(const __m512i v[8], const block_q8_K *yb, int j, int off, __m512i *s0,
                      __m512i *s1) {
    const int8_t *yq = yb->qs + 32 * j;
    __m512i h0 = _mm512_set1_epi32(-off * yb->bsums[2 * j]);
    __m512i h1 = _mm512_set1_epi32(-off * yb->bsums[2 * j + 1]);
    UNROLL for (int g = 0; g < 4; g++) {
        h0 = _mm512_dpbusd_epi32(h0, v[g], _mm512_set1_epi32((int)qr_rd_u32(yq + 4 * g)));
        h1 = _mm512_dpbusd_epi32(h1, v[g + 4], _mm512_set1_epi32((int)qr_rd_u32(yq + 16 + 4 * g)));
    }
    *s0 = h0;
    *s1 = h1;
}

/* the end of a packed superblock sb whose 16 rows' f16 d start it: acc[t] += isum[t] * (d *
 * token t's d) */
TILE void pk_superblock_finish(const uint8_t *xw, const char *a, size_t as, int64_t sb,
                               const __m512i *isum, __m512 *acc, const int NT) {
    const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)xw));
    UNROLL for (int t = 0; t < NT; t++) {
        const block_q8_K *yb = (const block_q8_K *)(a + (size_t)t * as) + sb;
        acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[t]),
                                 _mm512_mul_ps(d, _mm512_set1_ps(yb->d)), acc[t]);
    }
}

/* one 16-row group of q4_K times NT <= 8 tokens */
TILE void pk_group_q4_K(const uint8_t *xw, int64_t nsb, const char *a, size_t as, float *y,
                        int64_t ys, const int NT) {
    __m512 acc[PK_MAX_TOKENS];
    UNROLL for (int t = 0; t < NT; t++) acc[t] = _mm512_setzero_ps();
    for (int64_t sb = 0; sb < nsb; sb++, xw += PK_KQ4_BYTES) {
        __m512i isum[PK_MAX_TOKENS];
        pk_superblock_start(xw, PK_KQ4_BYTES, isum, NT);
        for (int j = 0; j < 8; j++) {
            __m512i v[8];
            pk_nibbles(xw + 320 + 256 * j, v);
            const __m512i sc =
                _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(xw + 64 + 16 * j)));
            UNROLL for (int t = 0; t < NT; t++) {
                const int8_t *yq = ((const block_q8_K *)(a + (size_t)t * as) + sb)->qs + 32 * j;
                __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
                UNROLL for (int g = 0; g < 8; g += 2) {
                    s0 = _mm512_dpbusd_epi32(s0, v[g], _mm512_set1_epi32((int)qr_rd_u32(yq + 4 * g)));
                    s1 = _mm512_dpbusd_epi32(s1, v[g + 1],
                                             _mm512_set1_epi32((int)qr_rd_u32(yq + 4 * g + 4)));
                }
                isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(_mm512_add_epi32(s0, s1), sc));
            }
        }
        const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)xw));
        const __m512 dmin = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(xw + 32)));
        UNROLL for (int t = 0; t < NT; t++) {
            const block_q8_K *yb = (const block_q8_K *)(a + (size_t)t * as) + sb;
            int32_t bsp[4];
            q8K_sub_sums(yb, bsp);
            __m512i msum = _mm512_setzero_si512();
            UNROLL for (int jp = 0; jp < 4; jp++) msum = _mm512_dpwssd_epi32(
                msum, _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(xw + 192 + 32 * jp))),
                _mm512_set1_epi32(bsp[jp]));
            const __m512 dy = _mm512_set1_ps(yb->d);
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[t]), _mm512_mul_ps(d, dy), acc[t]);
            acc[t] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(msum), _mm512_mul_ps(dmin, dy), acc[t]);
        }
    }
    UNROLL for (int t = 0; t < NT; t++) _mm512_storeu_ps(y + t * ys, acc[t]);
}

/* one 16-row group of q6_K times NT <= 8 tokens */
TILE void pk_group_q6_K(const uint8_t *xw, int64_t nsb, const char *a, size_t as, float *y,
                        int64_t ys, const int NT) {
    const __m512i hi2 = _mm512_set1_epi8(0x30);
    __m512 acc[PK_MAX_TOKENS];
    UNROLL for (int t = 0; t < NT; t++) acc[t] = _mm512_setzero_ps();
    for (int64_t sb = 0; sb < nsb; sb++, xw += PK_KQ6_BYTES) {
        __m512i isum[PK_MAX_TOKENS];
        pk_superblock_start(xw, PK_KQ6_BYTES, isum, NT);
        for (int m = 0; m < 8; m++) {
            const uint8_t *c = xw + 32 + 416 * m;
            __m512i v[8];
            pk_nibbles(c, v);
            UNROLL for (int hh = 0; hh < 2; hh++) {
                const __m512i h = _mm512_loadu_si512(c + 256 + 64 * hh);
                /* bits 2i..2i+1 to bits 4..5: v | (shifted & 0x30) */
                v[4 * hh + 0] = _mm512_ternarylogic_epi32(v[4 * hh + 0], _mm512_slli_epi16(h, 4), hi2, 0xF8);
                v[4 * hh + 1] = _mm512_ternarylogic_epi32(v[4 * hh + 1], _mm512_slli_epi16(h, 2), hi2, 0xF8);
                v[4 * hh + 2] = _mm512_ternarylogic_epi32(v[4 * hh + 2], h, hi2, 0xF8);
                v[4 * hh + 3] = _mm512_ternarylogic_epi32(v[4 * hh + 3], _mm512_srli_epi16(h, 2), hi2, 0xF8);
            }
            const __m512i sc0 = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(c + 384)));
            const __m512i sc1 = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(c + 400)));
            UNROLL for (int t = 0; t < NT; t++) {
                __m512i s0, s1;
                pk_sub_dots(v, (const block_q8_K *)(a + (size_t)t * as) + sb, m, 32, &s0, &s1);
                isum[t] = _mm512_add_epi32(
                    isum[t], _mm512_add_epi32(_mm512_mullo_epi32(s0, sc0), _mm512_mullo_epi32(s1, sc1)));
            }
        }
        pk_superblock_finish(xw, a, as, sb, isum, acc, NT);
    }
    UNROLL for (int t = 0; t < NT; t++) _mm512_storeu_ps(y + t * ys, acc[t]);
}

/* one 16-row group of iq4_xs times NT <= 8 tokens */
TILE void pk_group_iq4_xs(const uint8_t *xw, int64_t nsb, const char *a, size_t as, float *y,
                          int64_t ys, const int NT) {
    const __m512i levels = pk_iq4_levels_u();
    __m512 acc[PK_MAX_TOKENS];
    UNROLL for (int t = 0; t < NT; t++) acc[t] = _mm512_setzero_ps();
    for (int64_t sb = 0; sb < nsb; sb++, xw += PK_IQ4XS_BYTES) {
        __m512i isum[PK_MAX_TOKENS];
        pk_superblock_start(xw, PK_IQ4XS_BYTES, isum, NT);
        for (int j = 0; j < 8; j++) {
            __m512i v[8];
            pk_nibbles(xw + 160 + 256 * j, v);
            UNROLL for (int g = 0; g < 8; g++) v[g] = _mm512_shuffle_epi8(levels, v[g]);
            const __m512i sc =
                _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(xw + 32 + 16 * j)));
            UNROLL for (int t = 0; t < NT; t++) {
                __m512i s0, s1;
                pk_sub_dots(v, (const block_q8_K *)(a + (size_t)t * as) + sb, j, 128, &s0, &s1);
                isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(_mm512_add_epi32(s0, s1), sc));
            }
        }
        pk_superblock_finish(xw, a, as, sb, isum, acc, NT);
    }
    UNROLL for (int t = 0; t < NT; t++) _mm512_storeu_ps(y + t * ys, acc[t]);
}

DEFINE_PK_GEMM(pk_gemm_q4_K, pk_group_q4_K, QK_K)
DEFINE_PK_GEMM(pk_gemm_q6_K, pk_group_q6_K, QK_K)
DEFINE_PK_GEMM(pk_gemm_iq4_xs, pk_group_iq4_xs, QK_K)

#define IL_PREFIX(il, nr_var)                                                                      \
    if (nt >= IL_MIN_TOKENS)                                                                       \
        for (; r0 + IL_ROWS <= nr_var; r0 += IL_ROWS)                                              \
            il(n, (const char *)w + (size_t)r0 * w_stride, w_stride, act, act_stride, y + r0,      \
               y_stride, nt);
#else
/* AVX2 (no VNNI): the same 16-row layout in two passes of 8 rows (the 32-byte halves of each
 * vector), u8 x s8 products by vpmaddubsw + vpmaddwd; q8_0, iq4_nl and mxfp4 through the sign
 * trick (|w| . y with w's sign, the levels looked up signed), since 255 x 127 pairs would
 * saturate 16 bits. */
/* 8 e8m0 exponents to 2^(e - 128) (e = 0, 1: the subnormals, as qr_e8m0_to_fp32_half) */
static inline __m256 pk_e8m0_half8(const uint8_t *e) {
    const __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)e));
    const __m256i normal = _mm256_slli_epi32(_mm256_sub_epi32(v, _mm256_set1_epi32(1)), 23);
    const __m256i sub = _mm256_sllv_epi32(_mm256_set1_epi32(0x00200000), v);
    const __m256i small = _mm256_cmpgt_epi32(_mm256_set1_epi32(2), v);
    return _mm256_castsi256_ps(_mm256_blendv_epi8(normal, sub, small));
}

TILE void pk_group_avx2(const uint8_t *xw, int64_t nb, const int type, const char *a, size_t as,
                        float *y, int64_t ys, const int NT) {
    const size_t xbytes = pk_block_bytes(type);
    const int shift = type == QR_TYPE_Q4_0 ? 3 : 4; /* q8_0, iq4_nl, mxfp4: signed, no offset */
    const bool sign_route =
        type == QR_TYPE_Q8_0 || type == QR_TYPE_IQ4_NL || type == QR_TYPE_MXFP4;
    const size_t yd_off = qr_act_q8_0_scales_offset(nb * QK8_0),
                 ysum_off = qr_act_q8_0_sums_offset(nb * QK8_0), hb = pk_head_bytes(type);
    const __m256i lo = _mm256_set1_epi8(0x0F);
    const __m256i levels =
        type == QR_TYPE_MXFP4
            ? _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qr_kvalues_mxfp4))
            : iq4nl_levels();
    for (int h = 0; h < 2; h++) {
        __m256 acc[PK_MAX_TOKENS];
        UNROLL for (int t = 0; t < NT; t++) acc[t] = _mm256_setzero_ps();
        const uint8_t *xb = xw;
        for (int64_t b = 0; b < nb; b++, xb += xbytes) {
            __m256i v[8];
            if (type == QR_TYPE_Q8_0) {
                UNROLL for (int g = 0; g < 8; g++) v[g] = _mm256_xor_si256(
                    load256(xb + 32 + 64 * g + 32 * h), _mm256_set1_epi8((char)0x80));
            } else {
                UNROLL for (int i = 0; i < 4; i++) {
                    const __m256i q = load256(xb + hb + 64 * i + 32 * h);
                    v[i] = _mm256_and_si256(q, lo);
                    v[i + 4] = _mm256_and_si256(_mm256_srli_epi16(q, 4), lo);
                }
                if (type == QR_TYPE_IQ4_NL || type == QR_TYPE_MXFP4)
                    UNROLL for (int g = 0; g < 8; g++) v[g] = _mm256_shuffle_epi8(levels, v[g]);
                if (type == QR_TYPE_Q5_0)
                    UNROLL for (int g = 0; g < 8; g++) v[g] = _mm256_or_si256(
                        v[g], _mm256_and_si256(bits_to_bytes(qr_rd_u32(xb + 288 + 8 * g + 4 * h)),
                                               _mm256_set1_epi8(0x10)));
            }
            const __m256 xd = type == QR_TYPE_MXFP4
                                  ? pk_e8m0_half8(xb + 8 * h)
                                  : _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(xb + 16 * h)));
            UNROLL for (int t = 0; t < NT; t++) {
                const char *at = a + (size_t)t * as;
                const int8_t *yq = ((const block_q8_0 *)at + b)->qs;
                __m256i s = sign_route
                                ? _mm256_setzero_si256()
                                : _mm256_set1_epi32(-((const int32_t *)(at + ysum_off))[b] * (1 << shift));
                UNROLL for (int g = 0; g < 8; g++) {
                    const __m256i yb = _mm256_set1_epi32((int)qr_rd_u32(yq + 4 * g));
                    s = sign_route ? dot_u8s8(s, _mm256_sign_epi8(v[g], v[g]),
                                              _mm256_sign_epi8(yb, v[g]))
                                   : dot_u8s8(s, v[g], yb);
                }
                acc[t] = _mm256_fmadd_ps(
                    _mm256_cvtepi32_ps(s),
                    _mm256_mul_ps(xd, _mm256_set1_ps(((const float *)(at + yd_off))[b])), acc[t]);
            }
        }
        UNROLL for (int t = 0; t < NT; t++) _mm256_storeu_ps(y + t * ys + 8 * h, acc[t]);
    }
}
#define PK_AVX2_GROUP(name, TYPE)                                                                  \
    TILE void name(const uint8_t *xw, int64_t nb, const char *a, size_t as, float *y, int64_t ys, \
                   const int NT) {                                                                 \
        pk_group_avx2(xw, nb, TYPE, a, as, y, ys, NT);                                             \
    }
PK_AVX2_GROUP(pk_group_q4_0, QR_TYPE_Q4_0)
PK_AVX2_GROUP(pk_group_q5_0, QR_TYPE_Q5_0)
PK_AVX2_GROUP(pk_group_q8_0, QR_TYPE_Q8_0)
PK_AVX2_GROUP(pk_group_iq4_nl, QR_TYPE_IQ4_NL)
PK_AVX2_GROUP(pk_group_mxfp4, QR_TYPE_MXFP4)

/* f16 / bf16 on AVX2: each column's 16 rows as two 8-float halves, both in one pass; NT <= 3
 * tokens of HALF_CHAINS chains each (12 of the 16 registers) */
static inline __m256 pk_load_half8(const uint16_t *p, const int type) {
    return type == QR_TYPE_F16 ? load_f16x8(p) : load_bf16x8(p);
}
TILE void pk_group_half3(const uint8_t *xw, int64_t n, const int type, const char *a, size_t as,
                         float *y, int64_t ys, const int NT) {
    const uint16_t *w = (const uint16_t *)xw;
    const size_t xo = qr_act_half_f32_offset(n);
    const int U = HALF_CHAINS;
    __m256 acc[3][HALF_CHAINS][2];
    UNROLL for (int t = 0; t < NT; t++) UNROLL for (int u = 0; u < U; u++) acc[t][u][0] =
        acc[t][u][1] = _mm256_setzero_ps();
    int64_t c = 0;
    for (; c + U <= n; c += U)
        UNROLL for (int u = 0; u < U; u++) {
            const __m256 w0 = pk_load_half8(w + (c + u) * PK_ROWS, type);
            const __m256 w1 = pk_load_half8(w + (c + u) * PK_ROWS + 8, type);
            UNROLL for (int t = 0; t < NT; t++) {
                const __m256 x =
                    _mm256_broadcast_ss((const float *)(a + (size_t)t * as + xo) + c + u);
                acc[t][u][0] = _mm256_fmadd_ps(w0, x, acc[t][u][0]);
                acc[t][u][1] = _mm256_fmadd_ps(w1, x, acc[t][u][1]);
            }
        }
    for (; c < n; c++) {
        const __m256 w0 = pk_load_half8(w + c * PK_ROWS, type);
        const __m256 w1 = pk_load_half8(w + c * PK_ROWS + 8, type);
        UNROLL for (int t = 0; t < NT; t++) {
            const __m256 x = _mm256_broadcast_ss((const float *)(a + (size_t)t * as + xo) + c);
            acc[t][0][0] = _mm256_fmadd_ps(w0, x, acc[t][0][0]);
            acc[t][0][1] = _mm256_fmadd_ps(w1, x, acc[t][0][1]);
        }
    }
    UNROLL for (int t = 0; t < NT; t++) UNROLL for (int h = 0; h < 2; h++) {
        UNROLL for (int u = 1; u < U; u++) acc[t][0][h] = _mm256_add_ps(acc[t][0][h], acc[t][u][h]);
        _mm256_storeu_ps(y + t * ys + 8 * h, acc[t][0][h]);
    }
}
/* 4 tokens as two passes of 2 (the group's columns come from L1 the second time) */
TILE void pk_group_half(const uint8_t *xw, int64_t n, const int type, const char *a, size_t as,
                        float *y, int64_t ys, const int NT) {
    if (NT <= 3) {
        pk_group_half3(xw, n, type, a, as, y, ys, NT);
        return;
    }
    pk_group_half3(xw, n, type, a, as, y, ys, 2);
    pk_group_half3(xw, n, type, a + 2 * as, as, y + 2 * ys, ys, 2);
}
/* one token against two groups side by side, as the AVX-512 pk_group_half_x2: 8 chains in
 * flight (2 per group and half) instead of 4 */
TILE void pk_group_half_x2(const uint8_t *xw, size_t gs, int64_t n, const int type, const char *a,
                           float *y) {
    const uint16_t *w[2] = {(const uint16_t *)xw, (const uint16_t *)(xw + gs)};
    const float *x = (const float *)(a + qr_act_half_f32_offset(n));
    const int U = HALF_CHAINS;
    __m256 acc[2][HALF_CHAINS][2];
    UNROLL for (int g = 0; g < 2; g++) UNROLL for (int u = 0; u < U; u++) acc[g][u][0] =
        acc[g][u][1] = _mm256_setzero_ps();
    int64_t c = 0;
    for (; c + U <= n; c += U)
        UNROLL for (int u = 0; u < U; u++) {
            const __m256 xv = _mm256_broadcast_ss(x + c + u);
            UNROLL for (int g = 0; g < 2; g++) UNROLL for (int h = 0; h < 2; h++) acc[g][u][h] =
                _mm256_fmadd_ps(pk_load_half8(w[g] + (c + u) * PK_ROWS + 8 * h, type), xv,
                                acc[g][u][h]);
        }
    for (; c < n; c++) {
        const __m256 xv = _mm256_broadcast_ss(x + c);
        UNROLL for (int g = 0; g < 2; g++) UNROLL for (int h = 0; h < 2; h++) acc[g][0][h] =
            _mm256_fmadd_ps(pk_load_half8(w[g] + c * PK_ROWS + 8 * h, type), xv, acc[g][0][h]);
    }
    UNROLL for (int g = 0; g < 2; g++) UNROLL for (int h = 0; h < 2; h++) {
        UNROLL for (int u = 1; u < U; u++) acc[g][0][h] = _mm256_add_ps(acc[g][0][h], acc[g][u][h]);
        _mm256_storeu_ps(y + PK_ROWS * g + 8 * h, acc[g][0][h]);
    }
}
PK_HALF_GROUP(pk_group_f16, QR_TYPE_F16)
PK_HALF_GROUP(pk_group_bf16, QR_TYPE_BF16)

/* q4_K on AVX2: the 16-row superblocks in two 8-row passes, as pk_group_q4_K */
TILE void pk_group_q4_K(const uint8_t *xw, int64_t nsb, const char *a, size_t as, float *y,
                        int64_t ys, const int NT) {
    const __m256i lo = _mm256_set1_epi8(0x0F);
    for (int h = 0; h < 2; h++) {
        __m256 acc[PK_MAX_TOKENS];
        UNROLL for (int t = 0; t < NT; t++) acc[t] = _mm256_setzero_ps();
        const uint8_t *xs = xw;
        for (int64_t sb = 0; sb < nsb; sb++, xs += PK_KQ4_BYTES) {
            __m256i isum[PK_MAX_TOKENS];
            UNROLL for (int t = 0; t < NT; t++) isum[t] = _mm256_setzero_si256();
            for (int j = 0; j < 8; j++) {
                __m256i v[8];
                UNROLL for (int i = 0; i < 4; i++) {
                    const __m256i q = load256(xs + 320 + 256 * j + 64 * i + 32 * h);
                    v[i] = _mm256_and_si256(q, lo);
                    v[i + 4] = _mm256_and_si256(_mm256_srli_epi16(q, 4), lo);
                }
                const __m256i sc = _mm256_cvtepu8_epi32(
                    _mm_loadl_epi64((const __m128i *)(xs + 64 + 16 * j + 8 * h)));
                UNROLL for (int t = 0; t < NT; t++) {
                    const int8_t *yq = ((const block_q8_K *)(a + (size_t)t * as) + sb)->qs + 32 * j;
                    __m256i s = _mm256_setzero_si256();
                    UNROLL for (int g = 0; g < 8; g++) s =
                        dot_u8s8(s, v[g], _mm256_set1_epi32((int)qr_rd_u32(yq + 4 * g)));
                    isum[t] = _mm256_add_epi32(isum[t], _mm256_mullo_epi32(s, sc));
                }
            }
            const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(xs + 16 * h)));
            const __m256 dmin =
                _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(xs + 32 + 16 * h)));
            UNROLL for (int t = 0; t < NT; t++) {
                const block_q8_K *yb = (const block_q8_K *)(a + (size_t)t * as) + sb;
                int32_t bsp[4];
                q8K_sub_sums(yb, bsp);
                __m256i msum = _mm256_setzero_si256();
                UNROLL for (int jp = 0; jp < 4; jp++) msum = _mm256_add_epi32(
                    msum, _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128(
                                                (const __m128i *)(xs + 192 + 32 * jp + 16 * h))),
                                            _mm256_set1_epi32(bsp[jp])));
                const __m256 dy = _mm256_set1_ps(yb->d);
                acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), _mm256_mul_ps(d, dy), acc[t]);
                acc[t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(msum), _mm256_mul_ps(dmin, dy), acc[t]);
            }
        }
        UNROLL for (int t = 0; t < NT; t++) _mm256_storeu_ps(y + t * ys + 8 * h, acc[t]);
    }
}

#define PK_CASES(group) PK_CASE(4, group) PK_CASE(3, group) PK_CASE(2, group)
DEFINE_PK_GEMM(pk_gemm_q4_0, pk_group_q4_0, QK8_0)
DEFINE_PK_GEMM(pk_gemm_q5_0, pk_group_q5_0, QK8_0)
DEFINE_PK_GEMM(pk_gemm_q8_0, pk_group_q8_0, QK8_0)
DEFINE_PK_GEMM(pk_gemm_iq4_nl, pk_group_iq4_nl, QK8_0)
DEFINE_PK_GEMM(pk_gemm_mxfp4, pk_group_mxfp4, QK8_0)
DEFINE_PK_GEMM(pk_gemm_q4_K, pk_group_q4_K, QK_K)
DEFINE_PK_GEMM(pk_gemm_f16_groups, pk_group_f16, 1)
DEFINE_PK_GEMM(pk_gemm_bf16_groups, pk_group_bf16, 1)
DEFINE_PK_HALF_GEMM(, pk_gemm_f16, pk_gemm_f16_groups, pk_group_half_x2, QR_TYPE_F16)
DEFINE_PK_HALF_GEMM(, pk_gemm_bf16, pk_gemm_bf16_groups, pk_group_half_x2, QR_TYPE_BF16)
#define IL_PREFIX(il, nr_var)
#endif

/* Runs a tile over nr rows and nt tokens: one weight row at a time, front to back, with up to
 * 4 tokens per tile call (each weight block decoded once per 4 tokens); the row stays in L1
 * while the token groups pass over it, so every weight byte comes from memory once per call
 * whatever the batch (the server's 2..8 tokens cost one pass over the weights). The tiles can
 * take RM > 1 rows, but on the EPYC dev machine every such shape lost (bench/kernels/
 * bench_gemm.c, 2026-11-24): streaming 2 or 4 rows side by side read memory at a third of the
 * speed of one sequential stream even with software prefetch (q8_0 576 x 1536, one token:
 * 7 GB/s with 2 rows, 22 with 1), and 2 x 4 prompt tiles ran 10-35% slower than 1 x 4 (register
 * spills in the k-quants). */
#define DEFINE_GEMM2(name, tile, PREFIX)                                                           \
    static void name(int64_t n, const void *w, size_t w_stride, const void *act,                   \
                     size_t act_stride, float *y, int64_t y_stride, int64_t nr, int64_t nt) {      \
        const char *ac = act;                                                                      \
        int64_t r0 = 0;                                                                            \
        PREFIX                                                                                     \
        for (int64_t r = r0; r < nr; r++) {                                                        \
            const char *wr = (const char *)w + (size_t)r * w_stride;                               \
            int64_t t = 0;                                                                         \
            for (; t + 4 <= nt; t += 4)                                                            \
                tile(n, wr, w_stride, ac + (size_t)t * act_stride, act_stride,                     \
                     y + t * y_stride + r, y_stride, 1, 4);                                        \
            const char *at = ac + (size_t)t * act_stride;                                          \
            float *yt = y + t * y_stride + r;                                                      \
            switch (nt - t) {                                                                      \
            case 3:                                                                                \
                tile(n, wr, w_stride, at, act_stride, yt, y_stride, 1, 3);                         \
                break;                                                                             \
            case 2:                                                                                \
                tile(n, wr, w_stride, at, act_stride, yt, y_stride, 1, 2);                         \
                break;                                                                             \
            case 1:                                                                                \
                tile(n, wr, w_stride, at, act_stride, yt, y_stride, 1, 1);                         \
                break;                                                                             \
            default:                                                                               \
                break;                                                                             \
            }                                                                                      \
        }                                                                                          \
    }

LEGACY_SIGNED_TILE(tile_q4_0, block_q4_0, decode_u_q4_0, Q4_0_OFFSET_SHIFT)
LEGACY_SIGNED_TILE(tile_q5_0, block_q5_0, decode_u_q5_0, Q5_0_OFFSET_SHIFT)
LEGACY_SIGNED_TILE(tile_q8_0, block_q8_0, decode_u_q8_0, Q8_0_OFFSET_SHIFT)
DEFINE_GEMM2(gemm_q4_0, tile_q4_0, IL_PREFIX(il_gemm_q4_0, nr))
DEFINE_GEMM2(gemm_q5_0, tile_q5_0, IL_PREFIX(il_gemm_q5_0, nr))
DEFINE_GEMM2(gemm_q8_0, tile_q8_0, IL_PREFIX(il_gemm_q8_0, nr))

/* ---- iq4_nl (q8_0 activations) and iq4_xs (q8_K): 4-bit indices into kvalues_iq4nl ----
 * The nibble -> level lookup is one pshufb of the 16 levels (iq_tables.c, repeated here as
 * an immediate so it stays in a register). iq4_nl then goes through the q8_0 tile: with VNNI
 * the levels + 128 (top bit flipped) are unsigned and the offset is paid with the activation's
 * block sums, as q8_0; on AVX2 the sign route (|w| . y with w's sign), since maddubs's pair
 * sums of 241 * 127 would saturate. iq4_xs takes the sign route on both (|w| <= 127, q8_K
 * quants within +-127): maddubs's 16-bit pair sums are exact, and the sub-block's 6-bit scale
 * multiplies them in the same widening step (vpdpwssd / pmaddwd), integer over the superblock
 * as ggml_vec_dot_iq4_xs_q8_K's AVX2 path. */
static inline __m256i decode_u_iq4_nl(const block_iq4_nl *b) {
    const __m256i w = _mm256_shuffle_epi8(iq4nl_levels(), nibbles32_u(b->qs));
#if QR_VNNI
    return _mm256_xor_si256(w, _mm256_set1_epi8((char)0x80));
#else
    return w;
#endif
}
LEGACY_SIGNED_TILE(tile_iq4_nl, block_iq4_nl, decode_u_iq4_nl, Q8_0_OFFSET_SHIFT)
DEFINE_GEMM2(gemm_iq4_nl, tile_iq4_nl, )

/* iq4_xs, one row x NT tokens: per superblock each sub-block's 32 levels are looked up once
 * and dotted with the NT activation sub-blocks; d_w * d_y once per superblock. */
TILE void tile_iq4_xs(int64_t n, const char *wr, const char *a, size_t as, float *y, int64_t ys,
                      const int NT) {
    const int64_t nsb = n / QK_K;
    const __m256i levels = iq4nl_levels();
    __m256 acc[4];
    UNROLL for (int t = 0; t < NT; t++) acc[t] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nsb; i++) {
        const block_iq4_xs *x = (const block_iq4_xs *)wr + i;
        const unsigned sh = qr_rd_u16(&x->scales_h);
        __m256i isum[4];
        UNROLL for (int t = 0; t < NT; t++) isum[t] = _mm256_setzero_si256();
        UNROLL for (int ib = 0; ib < QK_K / 32; ib++) {
            const int ls =
                ((x->scales_l[ib / 2] >> (4 * (ib % 2))) & 15) | (((sh >> (2 * ib)) & 3) << 4);
            const __m256i sc = _mm256_set1_epi16((short)(ls - 32));
            const __m256i w = _mm256_shuffle_epi8(levels, nibbles32_u(x->qs + 16 * ib));
            const __m256i aw = _mm256_sign_epi8(w, w);
            UNROLL for (int t = 0; t < NT; t++) {
                const block_q8_K *yb = (const block_q8_K *)(a + (size_t)t * as) + i;
                const __m256i sy = _mm256_sign_epi8(load256(yb->qs + 32 * ib), w);
                isum[t] = dot_i16(isum[t], _mm256_maddubs_epi16(aw, sy), sc);
            }
        }
        const float dx = f16(qr_rd_u16(&x->d));
        UNROLL for (int t = 0; t < NT; t++) {
            const block_q8_K *yb = (const block_q8_K *)(a + (size_t)t * as) + i;
            acc[t] =
                _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), _mm256_set1_ps(dx * yb->d), acc[t]);
        }
    }
    UNROLL for (int t = 0; t < NT; t++) y[t * ys] = hsum_ps(acc[t]);
}
DEFINE_GEMM(gemm_iq4_xs, tile_iq4_xs)

/* the other IQ types, ternary and mxfp4 */
#include "kernels/gemm_x86_iq.h"

/* Unsigned weights with a minimum (q4_1, q5_1) against q8_1: d*dy*sum(q*y) + m*s. */
#define LEGACY_MIN_TILE(name, block_t, decode)                                                     \
    TILE void name(int64_t n, const char *wr, const char *a, size_t as, float *y, int64_t ys,      \
                   const int nt) {                                                                 \
        const block_t *x = (const block_t *)wr;                                                    \
        __m256 acc[4];                                                                             \
        float summ[4];                                                                             \
        for (int t = 0; t < nt; t++)                                                               \
            acc[t] = _mm256_setzero_ps(), summ[t] = 0.0f;                                          \
        for (int64_t i = 0; i < n / QK8_1; i++) {                                                  \
            const __m256i v = decode(&x[i]);                                                       \
            const float xd = f16(x[i].d), xm = f16(x[i].m);                                        \
            for (int t = 0; t < nt; t++) {                                                         \
                const block_q8_1 *yb = (const block_q8_1 *)(a + (size_t)t * as) + i;               \
                const __m256i s = dot_u8s8(_mm256_setzero_si256(), v, load256(yb->qs));            \
                acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(xd * f16(yb->d)),   \
                                         acc[t]);                                                  \
                summ[t] += xm * f16(yb->s);                                                        \
            }                                                                                      \
        }                                                                                          \
        for (int t = 0; t < nt; t++)                                                               \
            y[t * ys] = hsum_ps(acc[t]) + summ[t];                                                 \
    }

static inline __m256i decode_q4_1(const block_q4_1 *b) {
    return nibbles32(b->qs);
}
static inline __m256i decode_q5_1(const block_q5_1 *b) {
    const __m256i hi = _mm256_and_si256(bits_to_bytes(qr_rd_u32(b->qh)), _mm256_set1_epi8(0x10));
    return _mm256_or_si256(nibbles32(b->qs), hi);
}
LEGACY_MIN_TILE(tile_q4_1, block_q4_1, decode_q4_1)
LEGACY_MIN_TILE(tile_q5_1, block_q5_1, decode_q5_1)
DEFINE_GEMM(gemm_q4_1, tile_q4_1)
DEFINE_GEMM(gemm_q5_1, tile_q5_1)

/* ---- k-quants against q8_K ---- */

/* q4_K / q5_K 6-bit scales and mins of the 8 sub-blocks (layout in blocks.h), unpacked four
 * at a time in 32-bit words: bytes 0..3 of the result are sub-blocks 0..3, bytes 4..7 are 4..7 */
static inline void k_scales_mins(const uint8_t *s, uint64_t *sc, uint64_t *mn) {
    const uint32_t w0 = qr_rd_u32(s), w1 = qr_rd_u32(s + 4), w2 = qr_rd_u32(s + 8);
    const uint32_t lo6 = 0x3f3f3f3fu, lo4 = 0x0f0f0f0fu, lo2 = 0x03030303u;
    *sc = (uint64_t)(w0 & lo6) | (uint64_t)((w2 & lo4) | ((w0 >> 6) & lo2) << 4) << 32;
    *mn = (uint64_t)(w1 & lo6) | (uint64_t)(((w2 >> 4) & lo4) | ((w1 >> 6) & lo2) << 4) << 32;
}

/* pattern for _mm256_shuffle_epi8 that fills each 128-bit half with 16-bit lane k of that half */
static inline __m256i lane16_pattern(int k) {
    return _mm256_set1_epi16((short)(2 * k | (2 * k + 1) << 8));
}

/* q4_K (HAS_QH 0) and q5_K (HAS_QH 1), RM rows x NT tokens: 8 vectors of 32 unsigned values
 * per row, vector k is sub-block k with scale sc[k]; the mins pair with the activation's bsums
 * (two per sub-block). The scales are spread to 16-bit lanes by in-register shuffles, and each
 * product's integer sum is split over two accumulators (even and odd sub-blocks) so the chain
 * of multiply-adds is half as long. */
#define K4_TILE(name, block_t, HIGH_BITS)                                                          \
    TILE void name(int64_t n, const char *w, size_t ws, const char *a, size_t as, float *y,        \
                   int64_t ys, const int RM, const int NT) {                                       \
        const __m256i m4 = _mm256_set1_epi8(0x0F);                                                 \
        __m256 acc[2][4], accm[2][4];                                                              \
        UNROLL for (int r = 0; r < RM; r++) UNROLL for (int t = 0; t < NT; t++) acc[r][t] =        \
            accm[r][t] = _mm256_setzero_ps();                                                      \
        for (int64_t i = 0; i < n / QK_K; i++) {                                                   \
            __m256i q[2][8], scv[2][8], mins[2];                                                   \
            float xd[2], xmin[2];                                                                  \
            UNROLL for (int r = 0; r < RM; r++) {                                                  \
                const block_t *x = (const block_t *)(w + (size_t)r * ws) + i;                      \
                uint64_t sc, mn;                                                                   \
                k_scales_mins(x->scales, &sc, &mn);                                                \
                const __m256i sc16 = _mm256_broadcastsi128_si256(                                  \
                    _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)sc)));                          \
                const __m128i mn8 = _mm_cvtsi64_si128((long long)mn);                              \
                mins[r] = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mn8, mn8));                       \
                UNROLL for (int p = 0; p < 4; p++) {                                               \
                    const __m256i b = load256(x->qs + 32 * p);                                     \
                    q[r][2 * p] = _mm256_and_si256(b, m4);                                         \
                    q[r][2 * p + 1] = _mm256_and_si256(_mm256_srli_epi16(b, 4), m4);               \
                }                                                                                  \
                UNROLL for (int k = 0; k < 8; k++) scv[r][k] =                                     \
                    _mm256_shuffle_epi8(sc16, lane16_pattern(k));                                  \
                HIGH_BITS((*x), q[r]);                                                             \
                xd[r] = f16(x->d);                                                                 \
                xmin[r] = f16(x->dmin);                                                            \
            }                                                                                      \
            UNROLL for (int t = 0; t < NT; t++) {                                                  \
                const block_q8_K *yb = (const block_q8_K *)(a + (size_t)t * as) + i;               \
                __m256i yq[8];                                                                     \
                UNROLL for (int k = 0; k < 8; k++) yq[k] = load256(yb->qs + 32 * k);               \
                const __m256i bsums = load256(yb->bsums);                                          \
                UNROLL for (int r = 0; r < RM; r++) {                                              \
                    __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();              \
                    UNROLL for (int k = 0; k < 8; k += 2) {                                        \
                        s0 = dot_i16(s0, _mm256_maddubs_epi16(q[r][k], yq[k]), scv[r][k]);         \
                        s1 = dot_i16(s1, _mm256_maddubs_epi16(q[r][k + 1], yq[k + 1]),             \
                                     scv[r][k + 1]);                                               \
                    }                                                                              \
                    const __m256i msum = _mm256_madd_epi16(bsums, mins[r]);                        \
                    acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(s0, s1)),      \
                                                _mm256_set1_ps(xd[r] * yb->d), acc[r][t]);         \
                    accm[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(msum),                         \
                                                 _mm256_set1_ps(xmin[r] * yb->d), accm[r][t]);     \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        UNROLL for (int r = 0; r < RM; r++) UNROLL for (int t = 0; t < NT; t++) y[t * ys + r] =    \
            hsum_ps(acc[r][t]) - hsum_ps(accm[r][t]);                                              \
    }

#define NO_HIGH_BITS(blk, q) ((void)0)
K4_TILE(tile_q4_K, block_q4_K, NO_HIGH_BITS)
DEFINE_GEMM2(gemm_q4_K, tile_q4_K, )

/* q5_K's fifth bit: qh[l] bit k belongs to element 32k + l, i.e. to vector k */
#define K5_HIGH_BITS(blk, q)                                                                       \
    do {                                                                                           \
        const __m256i hb = load256((blk).qh);                                                      \
        const __m256i b16 = _mm256_set1_epi8(0x10);                                                \
        q[0] = _mm256_or_si256(q[0], _mm256_and_si256(_mm256_slli_epi16(hb, 4), b16));             \
        q[1] = _mm256_or_si256(q[1], _mm256_and_si256(_mm256_slli_epi16(hb, 3), b16));             \
        q[2] = _mm256_or_si256(q[2], _mm256_and_si256(_mm256_slli_epi16(hb, 2), b16));             \
        q[3] = _mm256_or_si256(q[3], _mm256_and_si256(_mm256_slli_epi16(hb, 1), b16));             \
        q[4] = _mm256_or_si256(q[4], _mm256_and_si256(hb, b16));                                   \
        q[5] = _mm256_or_si256(q[5], _mm256_and_si256(_mm256_srli_epi16(hb, 1), b16));             \
        q[6] = _mm256_or_si256(q[6], _mm256_and_si256(_mm256_srli_epi16(hb, 2), b16));             \
        q[7] = _mm256_or_si256(q[7], _mm256_and_si256(_mm256_srli_epi16(hb, 3), b16));             \
    } while (0)
K4_TILE(tile_q5_K, block_q5_K, K5_HIGH_BITS)
DEFINE_GEMM2(gemm_q5_K, tile_q5_K, )

/* q6_K: values 0..63 (the -32 offset goes through bsums), 16 int8 scales, one per 16 values,
 * RM rows x NT tokens. Vector k (32 values) takes scale 2k in its low half and 2k+1 in its high
 * half: the scales are reordered (even ones, then odd ones), widened to 16 bits, and spread by
 * in-lane shuffles. Two accumulators per product, as in K4_TILE. */
TILE void tile_q6_K(int64_t n, const char *w, size_t ws, const char *a, size_t as, float *y,
                    int64_t ys, const int RM, const int NT) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    const __m128i even_odd = _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
    __m256 acc[2][4];
    UNROLL for (int r = 0; r < RM; r++) UNROLL for (int t = 0; t < NT; t++) acc[r][t] =
        _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        __m256i q[2][8], scv[2][8], scales[2];
        float xd[2];
        UNROLL for (int r = 0; r < RM; r++) {
            const block_q6_K *x = (const block_q6_K *)(w + (size_t)r * ws) + i;
            UNROLL for (int h = 0; h < 2; h++) {
                const __m256i la = load256(x->ql + 64 * h), lb = load256(x->ql + 64 * h + 32);
                const __m256i hv = load256(x->qh + 32 * h);
                q[r][4 * h + 0] = _mm256_or_si256(_mm256_and_si256(la, m4),
                                                  _mm256_and_si256(_mm256_slli_epi16(hv, 4), m30));
                q[r][4 * h + 1] = _mm256_or_si256(_mm256_and_si256(lb, m4),
                                                  _mm256_and_si256(_mm256_slli_epi16(hv, 2), m30));
                q[r][4 * h + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(la, 4), m4),
                                                  _mm256_and_si256(hv, m30));
                q[r][4 * h + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(lb, 4), m4),
                                                  _mm256_and_si256(_mm256_srli_epi16(hv, 2), m30));
            }
            const __m128i s8 = _mm_loadu_si128((const __m128i *)x->scales);
            const __m256i s16 = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(s8, even_odd));
            UNROLL for (int k = 0; k < 8; k++) scv[r][k] =
                _mm256_shuffle_epi8(s16, lane16_pattern(k));
            scales[r] = _mm256_cvtepi8_epi16(s8);
            xd[r] = f16(x->d);
        }
        UNROLL for (int t = 0; t < NT; t++) {
            const block_q8_K *yb = (const block_q8_K *)(a + (size_t)t * as) + i;
            __m256i yq[8];
            UNROLL for (int k = 0; k < 8; k++) yq[k] = load256(yb->qs + 32 * k);
            const __m256i bsums = load256(yb->bsums);
            UNROLL for (int r = 0; r < RM; r++) {
                __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
                UNROLL for (int k = 0; k < 8; k += 2) {
                    s0 = dot_i16(s0, _mm256_maddubs_epi16(q[r][k], yq[k]), scv[r][k]);
                    s1 = dot_i16(s1, _mm256_maddubs_epi16(q[r][k + 1], yq[k + 1]), scv[r][k + 1]);
                }
                const __m256i off = _mm256_madd_epi16(bsums, scales[r]); /* sum scale * bsum */
                const __m256i isum =
                    _mm256_sub_epi32(_mm256_add_epi32(s0, s1), _mm256_slli_epi32(off, 5));
                acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(xd[r] * yb->d),
                                            acc[r][t]);
            }
        }
    }
    UNROLL for (int r = 0; r < RM; r++) UNROLL for (int t = 0; t < NT; t++) y[t * ys + r] =
        hsum_ps(acc[r][t]);
}
DEFINE_GEMM2(gemm_q6_K, tile_q6_K, )

/* ---- attention rows ---- */

/* Attention over KV-cache rows (kernels.h). dot: 4 rows at a time, each row's products (exact
 * in float: q is f16-rounded) summed by multiply-adds into one float accumulator, the 4 rows'
 * sums reduced together; axpy: 64 output columns held in registers while the rows stream
 * past, each column updated in row order with one multiply-add per row, as the reference. */
/* One chain of sums per row (4 rows side by side), reduced in hsum4_ps's order: exactly what
 * dot_heads_row does for each head, so that a head's scores do not depend on how many heads
 * share the call (forward.c splits a query group's heads over the threads when a step has few
 * tokens). */
static inline __m256 dot_f16_acc(const float *q, const uint16_t *k, int64_t n8) {
    __m256 a0 = _mm256_setzero_ps();
    for (int64_t i = 0; i < n8; i += 8)
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), load_f16x8(k + i), a0);
    return a0;
}

/* the lane sums of s0, s1, s2, s3, each reduced in dot_heads_row's order */
static inline __m128 hsum4_ps(__m256 s0, __m256 s1, __m256 s2, __m256 s3) {
    const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(s0, s1), _mm256_hadd_ps(s2, s3));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

static void dot_f16_x86(int64_t n, const float *q, const uint16_t *k, int64_t stride,
                        int64_t rows, float *out) {
    const int64_t n8 = n / 8 * 8;
    int64_t r = 0;
    for (; r + 4 <= rows; r += 4) {
        const uint16_t *k0 = k + r * stride;
        const __m256 s0 = dot_f16_acc(q, k0, n8), s1 = dot_f16_acc(q, k0 + stride, n8);
        const __m256 s2 = dot_f16_acc(q, k0 + 2 * stride, n8),
                     s3 = dot_f16_acc(q, k0 + 3 * stride, n8);
        __m128 sum = hsum4_ps(s0, s1, s2, s3);
        if (n8 < n) {
            float t[4];
            _mm_storeu_ps(t, sum);
            for (int j = 0; j < 4; j++)
                for (int64_t i = n8; i < n; i++)
                    t[j] += q[i] * f16(k0[j * stride + i]);
            sum = _mm_loadu_ps(t);
        }
        _mm_storeu_ps(out + r, sum);
    }
    for (; r < rows; r++) {
        const uint16_t *kr = k + r * stride;
        const __m256 z = _mm256_setzero_ps();
        float s = _mm_cvtss_f32(hsum4_ps(dot_f16_acc(q, kr, n8), z, z, z));
        for (int64_t i = n8; i < n; i++)
            s += q[i] * f16(kr[i]);
        out[r] = s;
    }
}

#define AXPY_ROWS(name, elem_t, load8, to_f32)                                                     \
    static void name(int64_t n, const float *a, const elem_t *v, int64_t stride, int64_t rows,     \
                     float *out) {                                                                 \
        int64_t c = 0;                                                                             \
        for (; c + 64 <= n; c += 64) {                                                             \
            __m256 acc[8];                                                                         \
            UNROLL for (int j = 0; j < 8; j++) acc[j] = _mm256_loadu_ps(out + c + 8 * j);          \
            for (int64_t r = 0; r < rows; r++) {                                                   \
                const __m256 ar = _mm256_set1_ps(a[r]);                                            \
                const elem_t *vr = v + r * stride + c;                                             \
                UNROLL for (int j = 0; j < 8; j++) acc[j] =                                        \
                    _mm256_fmadd_ps(ar, load8(vr + 8 * j), acc[j]);                                \
            }                                                                                      \
            UNROLL for (int j = 0; j < 8; j++) _mm256_storeu_ps(out + c + 8 * j, acc[j]);          \
        }                                                                                          \
        for (; c + 8 <= n; c += 8) {                                                               \
            __m256 acc = _mm256_loadu_ps(out + c);                                                 \
            for (int64_t r = 0; r < rows; r++)                                                     \
                acc = _mm256_fmadd_ps(_mm256_set1_ps(a[r]), load8(v + r * stride + c), acc);      \
            _mm256_storeu_ps(out + c, acc);                                                        \
        }                                                                                          \
        for (; c < n; c++)                                                                         \
            for (int64_t r = 0; r < rows; r++)                                                     \
                out[c] += a[r] * to_f32(v[r * stride + c]);                                        \
    }
static inline __m256 load_f32x8(const float *p) {
    return _mm256_loadu_ps(p);
}
static inline float f32_id(float x) {
    return x;
}
AXPY_ROWS(axpy_f16_x86, uint16_t, load_f16x8, f16)
AXPY_ROWS(axpy_f32_x86, float, load_f32x8, f32_id)

/* Grouped-query attention: HB <= 4 heads against one row, the row converted once; their sums
 * reduced together into t[0..HB) */
TILE void dot_heads_row(const float *q, int64_t n, const uint16_t *kr, int64_t n8, float t[4],
                        const int HB) {
    __m256 acc[4];
    UNROLL for (int j = 0; j < 4; j++) acc[j] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n8; i += 8) {
        const __m256 kv = load_f16x8(kr + i);
        UNROLL for (int j = 0; j < HB; j++) acc[j] =
            _mm256_fmadd_ps(_mm256_loadu_ps(q + j * n + i), kv, acc[j]);
    }
    _mm_storeu_ps(t, hsum4_ps(acc[0], acc[1], acc[2], acc[3]));
    for (int j = 0; j < HB; j++)
        for (int64_t i = n8; i < n; i++)
            t[j] += q[j * n + i] * f16(kr[i]);
}

static void dot_f16_heads_x86(int64_t n, int ng, const float *q, const uint16_t *k,
                              int64_t stride, int64_t rows, float *out, int64_t out_stride) {
    if (ng == 1) {
        dot_f16_x86(n, q, k, stride, rows, out);
        return;
    }
    const int64_t n8 = n / 8 * 8;
    for (int h0 = 0; h0 < ng; h0 += 4) {
        const int hb = ng - h0 < 4 ? ng - h0 : 4;
        const float *qh = q + h0 * n;
        for (int64_t r = 0; r < rows; r++) {
            float t[4];
            const uint16_t *kr = k + r * stride;
            switch (hb) {
            case 4: dot_heads_row(qh, n, kr, n8, t, 4); break;
            case 3: dot_heads_row(qh, n, kr, n8, t, 3); break;
            case 2: dot_heads_row(qh, n, kr, n8, t, 2); break;
            default: dot_heads_row(qh, n, kr, n8, t, 1); break;
            }
            for (int j = 0; j < hb; j++)
                out[(h0 + j) * out_stride + r] = t[j];
        }
    }
}

/* HB <= 3 heads' weighted sums of the same rows, 32 columns of each in registers, each row's
 * columns converted once; per column the rows are added in order, as axpy_f16_x86 does */
TILE void axpy_heads_cols(int64_t n, const float *a, int64_t a_stride, const uint16_t *v,
                          int64_t stride, int64_t rows, float *out, int64_t c, const int HB) {
    __m256 acc[3][4];
    UNROLL for (int h = 0; h < HB; h++) UNROLL for (int j = 0; j < 4; j++) acc[h][j] =
        _mm256_loadu_ps(out + h * n + c + 8 * j);
    for (int64_t r = 0; r < rows; r++) {
        __m256 vv[4];
        UNROLL for (int j = 0; j < 4; j++) vv[j] = load_f16x8(v + r * stride + c + 8 * j);
        UNROLL for (int h = 0; h < HB; h++) {
            const __m256 ah = _mm256_set1_ps(a[h * a_stride + r]);
            UNROLL for (int j = 0; j < 4; j++) acc[h][j] = _mm256_fmadd_ps(ah, vv[j], acc[h][j]);
        }
    }
    UNROLL for (int h = 0; h < HB; h++) UNROLL for (int j = 0; j < 4; j++)
        _mm256_storeu_ps(out + h * n + c + 8 * j, acc[h][j]);
}

static void axpy_f16_heads_x86(int64_t n, int ng, const float *a, int64_t a_stride,
                               const uint16_t *v, int64_t stride, int64_t rows, float *out) {
    const int64_t n32 = ng == 1 ? 0 : n / 32 * 32;
    for (int h0 = 0; h0 < ng; h0 += 3) {
        const int hb = ng - h0 < 3 ? ng - h0 : 3;
        const float *ah = a + h0 * a_stride;
        float *oh = out + h0 * n;
        for (int64_t c = 0; c < n32; c += 32)
            switch (hb) {
            case 3: axpy_heads_cols(n, ah, a_stride, v, stride, rows, oh, c, 3); break;
            case 2: axpy_heads_cols(n, ah, a_stride, v, stride, rows, oh, c, 2); break;
            default: axpy_heads_cols(n, ah, a_stride, v, stride, rows, oh, c, 1); break;
            }
        if (n32 < n) /* the remaining columns head by head */
            for (int j = 0; j < hb; j++)
                axpy_f16_x86(n - n32, ah + j * a_stride, v + n32, stride, rows, oh + j * n + n32);
    }
}

static void dot_f32_x86(int64_t n, const float *q, const float *k, int64_t stride, int64_t rows,
                        float *out) {
    for (int64_t r = 0; r < rows; r++) {
        const float *kr = k + r * stride;
        __m256 acc = _mm256_setzero_ps();
        int64_t i = 0;
        for (; i + 8 <= n; i += 8)
            acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_loadu_ps(kr + i), acc);
        float s = hsum_ps(acc);
        for (; i < n; i++)
            s += q[i] * kr[i];
        out[r] = s;
    }
}

static void to_f16_x86(const float *x, uint16_t *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++)
        y[i] = qr_fp32_to_fp16(x[i]);
}

static void round_f16_x86(float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps(x + i),
                                                                _MM_FROUND_TO_NEAREST_INT)));
    for (; i < n; i++)
        x[i] = qr_fp16_to_fp32(qr_fp32_to_fp16(x[i]));
}

static inline float hmax_ps(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

/* exp(x) for x in [-87, 88] (clamped there: below, exp underflows towards 0 as softmax and
 * silu want; above, silu's 1 + exp(-x) only needs to be huge): x = k ln2 + r with |r| <=
 * ln2 / 2 (ln2 split in two for an exact reduction), a degree-6 polynomial for exp(r)
 * (Cephes' expf coefficients) and 2^k built in the exponent bits. */
static inline __m256 exp_ps(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
    const __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* softmax in three vector passes: scale and max; exp and a double sum (two 4-lane
 * accumulators); normalise */
static void softmax_x86(float *x, int64_t n, float scale, float sink) {
    const __m256 sc = _mm256_set1_ps(scale);
    __m256 mv = _mm256_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i), sc);
        _mm256_storeu_ps(x + i, v);
        mv = _mm256_max_ps(mv, v);
    }
    float max = fmaxf(hmax_ps(mv), sink);
    for (; i < n; i++) {
        x[i] *= scale;
        if (x[i] > max) max = x[i];
    }
    const __m256 m8 = _mm256_set1_ps(max);
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    for (i = 0; i + 8 <= n; i += 8) {
        const __m256 e = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), m8));
        _mm256_storeu_ps(x + i, e);
        s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    double sum = hsum_pd(_mm256_add_pd(s0, s1));
    for (; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += (double)x[i];
    }
    if (sink != -INFINITY) sum += (double)expf(sink - max);
    const float inv = (float)(1.0 / sum);
    const __m256 iv = _mm256_set1_ps(inv);
    for (i = 0; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), iv));
    for (; i < n; i++)
        x[i] *= inv;
}

static void silu_mul_x86(float *g, const float *u, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_loadu_ps(g + i);
        const __m256 d = _mm256_add_ps(one, exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), x)));
        _mm256_storeu_ps(g + i, _mm256_mul_ps(_mm256_div_ps(x, d), _mm256_loadu_ps(u + i)));
    }
    for (; i < n; i++)
        g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

/* ---- activation quantizers (bit-identical to tensor/quant_act.c) ---- */

/* sum of the 8 i32 lanes of each of v[0..7], as one vector (lane b = sum of v[b]) */
static inline __m256i hsum8_epi32(__m256i v0, __m256i v1, __m256i v2, __m256i v3, __m256i v4,
                                  __m256i v5, __m256i v6, __m256i v7) {
    const __m256i a = _mm256_hadd_epi32(_mm256_hadd_epi32(v0, v1), _mm256_hadd_epi32(v2, v3));
    const __m256i b = _mm256_hadd_epi32(_mm256_hadd_epi32(v4, v5), _mm256_hadd_epi32(v6, v7));
    return _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20),
                            _mm256_permute2x128_si256(a, b, 0x31));
}


static inline int32_t hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

/* four vectors of 8 int32 in [-128, 127] to 32 int8 in element order */
static inline __m256i pack_i32_to_i8(__m256i a, __m256i b, __m256i c, __m256i d) {
    const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
    /* the packs work per 128-bit half: dwords come out as a0-3 b0-3 c0-3 d0-3 a4-7 b4-7 ... */
    return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* roundf: to nearest, halves away from zero, exact (no 0.5-addition rounding) */
static inline __m256 round_half_away(__m256 v) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 frac = _mm256_andnot_ps(sign, _mm256_sub_ps(v, t));
    const __m256 up = _mm256_or_ps(_mm256_and_ps(v, sign), _mm256_set1_ps(1.0f)); /* +-1 */
    const __m256 need = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    return _mm256_add_ps(t, _mm256_and_ps(need, up));
}

/* qr_quant_q8_0 (amax / 127 scale, roundf), plus the float scales and block sums of the
 * activation row (kernels.h) */
static void quant_q8_0_x86(const float *src, void *row, int64_t n) {
    block_q8_0 *y = row;
    float *yd = (float *)((char *)row + qr_act_q8_0_scales_offset(n));
    int32_t *ysum = (int32_t *)((char *)row + qr_act_q8_0_sums_offset(n));
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t i = 0; i < n / QK8_0; i++) {
        const float *x = src + i * QK8_0;
        __m256 v[4];
        for (int k = 0; k < 4; k++)
            v[k] = _mm256_loadu_ps(x + 8 * k);
        const __m256 m = _mm256_max_ps(
            _mm256_max_ps(_mm256_andnot_ps(sign, v[0]), _mm256_andnot_ps(sign, v[1])),
            _mm256_max_ps(_mm256_andnot_ps(sign, v[2]), _mm256_andnot_ps(sign, v[3])));
        const float d = hmax_ps(m) / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = qr_fp32_to_fp16(d);
        yd[i] = qr_fp16_to_fp32(y[i].d);
        const __m256 idv = _mm256_set1_ps(id);
        __m256i q[4];
        for (int k = 0; k < 4; k++)
            q[k] = _mm256_cvttps_epi32(round_half_away(_mm256_mul_ps(v[k], idv)));
        ysum[i] = hsum_epi32(
            _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
        _mm256_storeu_si256((__m256i *)y[i].qs, pack_i32_to_i8(q[0], q[1], q[2], q[3]));
    }
}

/* qr_quant_q8_K: scale -127 / (the first element of largest magnitude), nearest-even rounding
 * (cvtps under the default MXCSR, as nearest_int), top clamp 127, sums of 16 */
static void quant_q8_K_x86(const float *src, void *row, int64_t n) {
    block_q8_K *y = row;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float *x = src + i * QK_K;
        __m256 m = _mm256_setzero_ps();
        for (int k = 0; k < QK_K / 8; k++)
            m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + 8 * k)));
        const float amax = hmax_ps(m);
        if (amax == 0.0f) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        float max = 0.0f;
        const __m256 am = _mm256_set1_ps(amax);
        for (int k = 0; k < QK_K / 8; k++) {
            const int hit = _mm256_movemask_ps(
                _mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + 8 * k)), am, _CMP_EQ_OQ));
            if (hit) {
                max = x[8 * k + __builtin_ctz((unsigned)hit)];
                break;
            }
        }
        const float iscale = -127.0f / max;
        const __m256 is = _mm256_set1_ps(iscale);
        const __m256i top = _mm256_set1_epi32(127);
        __m256i g[16];
        for (int k = 0; k < QK_K / 32; k++) {
            __m256i q[4];
            for (int j = 0; j < 4; j++)
                q[j] = _mm256_min_epi32(
                    _mm256_cvtps_epi32(_mm256_mul_ps(is, _mm256_loadu_ps(x + 32 * k + 8 * j))),
                    top);
            g[2 * k] = _mm256_add_epi32(q[0], q[1]);
            g[2 * k + 1] = _mm256_add_epi32(q[2], q[3]);
            _mm256_storeu_si256((__m256i *)(y[i].qs + 32 * k),
                                pack_i32_to_i8(q[0], q[1], q[2], q[3]));
        }
        const __m256i s0 = hsum8_epi32(g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7]);
        const __m256i s1 = hsum8_epi32(g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15]);
        const __m256i s16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(s0, s1), 0xD8);
        _mm256_storeu_si256((__m256i *)y[i].bsums, s16);
        y[i].d = 1.0f / iscale;
    }
}

void QR_X86_FILL(qr_kernels *k) {
    qr_kernels_fill_scalar(k); /* types without a SIMD kernel keep the reference */
#if QR_VNNI /* the repacked kernels' */
    const char *pf = getenv("QR_PREFETCH");
    __builtin_cpu_init();
    pk_prefetch_always = pf && *pf ? *pf == '1' : __builtin_cpu_is("intel");
#endif
    k->name = QR_X86_NAME;
    k->gemm[QR_TYPE_F32] = gemm_f32;
    k->gemm[QR_TYPE_F16] = gemm_f16;
    k->gemm[QR_TYPE_BF16] = gemm_bf16;
    k->gemm[QR_TYPE_Q4_0] = gemm_q4_0;
    k->gemm[QR_TYPE_Q4_1] = gemm_q4_1;
    k->gemm[QR_TYPE_Q5_0] = gemm_q5_0;
    k->gemm[QR_TYPE_Q5_1] = gemm_q5_1;
    k->gemm[QR_TYPE_Q8_0] = gemm_q8_0;
    k->gemm[QR_TYPE_Q4_K] = gemm_q4_K;
    k->gemm[QR_TYPE_Q5_K] = gemm_q5_K;
    k->gemm[QR_TYPE_Q6_K] = gemm_q6_K;
    k->gemm[QR_TYPE_IQ4_NL] = gemm_iq4_nl_prompt;
    k->gemm[QR_TYPE_IQ4_XS] = gemm_iq4_xs;
    k->gemm[QR_TYPE_IQ2_XXS] = gemm_iq2_xxs;
    k->gemm[QR_TYPE_IQ2_XS] = gemm_iq2_xs;
    k->gemm[QR_TYPE_IQ2_S] = gemm_iq2_s;
    k->gemm[QR_TYPE_IQ3_XXS] = gemm_iq3_xxs;
    k->gemm[QR_TYPE_IQ3_S] = gemm_iq3_s;
    k->gemm[QR_TYPE_IQ1_S] = gemm_iq1_s;
    k->gemm[QR_TYPE_IQ1_M] = gemm_iq1_m;
    k->gemm[QR_TYPE_TQ1_0] = gemm_tq1_0;
    k->gemm[QR_TYPE_TQ2_0] = gemm_tq2_0;
    k->gemm[QR_TYPE_MXFP4] = gemm_mxfp4;
    k->gemm[QR_TYPE_Q2_K] = gemm_q2_K;
    k->dot_f16_heads = dot_f16_heads_x86;
    k->axpy_f16_heads = axpy_f16_heads_x86;
    k->dot_f32 = dot_f32_x86;
    k->axpy_f32 = axpy_f32_x86;
    k->to_f16 = to_f16_x86;
    k->round_f16 = round_f16_x86;
    k->softmax = softmax_x86;
    k->silu_mul = silu_mul_x86;
    k->quant_q8_0 = quant_q8_0_x86;
    k->quant_q8_K = quant_q8_K_x86;
    k->pack = pack_any_x16;
    k->packed_row = packed_row_any_x16;
    k->packed_row_bytes = packed_row_bytes_x16;
    k->pack_rows = PK_ROWS;
    k->gemm_packed[QR_TYPE_Q4_0] = pk_gemm_q4_0;
    k->gemm_packed[QR_TYPE_Q5_0] = pk_gemm_q5_0;
    k->gemm_packed[QR_TYPE_Q8_0] = pk_gemm_q8_0;
    k->gemm_packed[QR_TYPE_Q4_K] = pk_gemm_q4_K;
    k->gemm_packed[QR_TYPE_F16] = pk_gemm_f16;
    k->gemm_packed[QR_TYPE_BF16] = pk_gemm_bf16;
    k->gemm_packed[QR_TYPE_IQ4_NL] = pk_gemm_iq4_nl;
    k->gemm_packed[QR_TYPE_MXFP4] = pk_gemm_mxfp4;
#if QR_VNNI /* on AVX2, q6_K's file-layout kernel generates faster (21 against 16 GB/s) */
    k->gemm_packed[QR_TYPE_Q6_K] = pk_gemm_q6_K;
    k->gemm_packed[QR_TYPE_IQ4_XS] = pk_gemm_iq4_xs; /* AVX2 keeps iq4_xs's file-layout tile */
#endif
}
