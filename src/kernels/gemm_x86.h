/* gemm_x86.h - the x86 SIMD kernels, written once on 256-bit vectors and compiled twice: by
 * gemm_avx2.c (AVX2 + FMA + F16C) and by gemm_avx512.c, where AVX512-VNNI turns each
 * "multiply bytes, widen, add" sequence into one vpdpbusd / vpdpwssd. Include only from those
 * two files; QR_X86_FILL and QR_X86_NAME name the fill function they define and its set.
 *
 * Each tile function takes one weight row and NT <= 4 activation rows: a weight block is
 * decoded once (nibbles and high bits into bytes, scales into 16-bit lanes) and then dotted
 * with the NT activation blocks, so prompt processing pays the decoding once per 4 tokens.
 * The arithmetic is ggml's (ggml_vec_dot_*_q8_*): integer sums within a block, the block's
 * float scales outside, so the results match the scalar reference up to float rounding order.
 */
#include "kernels/kernels.h"
#include "tensor/blocks.h"
#include "util/util.h"

#include <immintrin.h>

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

#define DEFINE_HALF_TILE(name, load8, to_f32)                                                      \
    TILE void name(int64_t n, const char *wr, const char *a, size_t as, float *y, int64_t ys,      \
                   const int nt) {                                                                 \
        const uint16_t *w = (const uint16_t *)wr;                                                  \
        __m256 acc[4];                                                                             \
        for (int t = 0; t < nt; t++)                                                               \
            acc[t] = _mm256_setzero_ps();                                                          \
        int64_t j = 0;                                                                             \
        for (; j + 8 <= n; j += 8) {                                                               \
            const __m256 w0 = load8(w + j);                                                        \
            for (int t = 0; t < nt; t++)                                                           \
                acc[t] = _mm256_fmadd_ps(w0, load8((const uint16_t *)(a + (size_t)t * as) + j),    \
                                         acc[t]);                                                  \
        }                                                                                          \
        for (int t = 0; t < nt; t++) {                                                             \
            const uint16_t *x = (const uint16_t *)(a + (size_t)t * as);                            \
            float s = hsum_ps(acc[t]);                                                             \
            for (int64_t k = j; k < n; k++)                                                        \
                s += to_f32(w[k]) * to_f32(x[k]);                                                  \
            y[t * ys] = s;                                                                         \
        }                                                                                          \
    }
DEFINE_HALF_TILE(tile_f16, load_f16x8, f16)
DEFINE_HALF_TILE(tile_bf16, load_bf16x8, qr_bf16_to_fp32)
DEFINE_GEMM(gemm_f16, tile_f16)
DEFINE_GEMM(gemm_bf16, tile_bf16)

/* ---- legacy 32-element blocks against q8_0 / q8_1 activations ---- */

static inline __m256i decode_q4_0(const block_q4_0 *b) {
    return _mm256_sub_epi8(nibbles32(b->qs), _mm256_set1_epi8(8));
}
static inline __m256i decode_q5_0(const block_q5_0 *b) {
    /* a clear fifth bit means value - 16: set the byte's high nibble */
    const __m256i hi =
        _mm256_andnot_si256(bits_to_bytes(qr_rd_u32(b->qh)), _mm256_set1_epi8((char)0xF0));
    return _mm256_or_si256(nibbles32(b->qs), hi);
}
static inline __m256i decode_q8_0(const block_q8_0 *b) {
    return load256(b->qs);
}

/* sum of the 8 i32 lanes of each of v[0..7], as one vector (lane b = sum of v[b]) */
static inline __m256i hsum8_epi32(__m256i v0, __m256i v1, __m256i v2, __m256i v3, __m256i v4,
                                  __m256i v5, __m256i v6, __m256i v7) {
    const __m256i a = _mm256_hadd_epi32(_mm256_hadd_epi32(v0, v1), _mm256_hadd_epi32(v2, v3));
    const __m256i b = _mm256_hadd_epi32(_mm256_hadd_epi32(v4, v5), _mm256_hadd_epi32(v6, v7));
    return _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20),
                            _mm256_permute2x128_si256(a, b, 0x31));
}

/* Signed 32-element weight blocks (q4_0, q5_0, q8_0) against q8_0 activations, RM rows x NT
 * tokens (RM * NT <= 4). Per block and pair: |v| . (y with v's sign), an integer sum. Eight
 * blocks' sums are folded into one vector whose lane b is block b's sum, then scaled by
 * xd[b] * yd[b] in one multiply: the float work is per 8 blocks, not per block. The tail
 * (fewer than 8 blocks) is scaled block by block. */
#define LEGACY_SIGNED_TILE(name, block_t, decode)                                                  \
    TILE void name(int64_t n, const char *w, size_t ws, const char *a, size_t as, float *y,        \
                   int64_t ys, const int RM, const int NT) {                                       \
        const int64_t nb = n / QK8_0;                                                              \
        const size_t yd_off = qr_act_q8_0_scales_offset(n);                                        \
        __m256 acc[4][4];                                                                          \
        UNROLL for (int r = 0; r < RM; r++) UNROLL for (int t = 0; t < NT; t++) acc[r][t] =        \
            _mm256_setzero_ps();                                                                   \
        int64_t i = 0;                                                                             \
        for (; i + 8 <= nb; i += 8) {                                                              \
            __m256i d[8][4][4];                                                                    \
            UNROLL for (int b = 0; b < 8; b++) UNROLL for (int r = 0; r < RM; r++) {               \
                const __m256i v = decode((const block_t *)(w + (size_t)r * ws) + i + b);           \
                const __m256i av = _mm256_sign_epi8(v, v);                                         \
                UNROLL for (int t = 0; t < NT; t++) {                                              \
                    const block_q8_0 *yb = (const block_q8_0 *)(a + (size_t)t * as) + i + b;       \
                    d[b][r][t] = dot_u8s8(_mm256_setzero_si256(), av,                              \
                                          _mm256_sign_epi8(load256(yb->qs), v));                   \
                }                                                                                  \
            }                                                                                      \
            UNROLL for (int r = 0; r < RM; r++) {                                                  \
                const block_t *x = (const block_t *)(w + (size_t)r * ws) + i;                      \
                const __m128i xh =                                                                 \
                    _mm_setr_epi16((short)x[0].d, (short)x[1].d, (short)x[2].d, (short)x[3].d,     \
                                   (short)x[4].d, (short)x[5].d, (short)x[6].d, (short)x[7].d);    \
                const __m256 xd = _mm256_cvtph_ps(xh);                                             \
                UNROLL for (int t = 0; t < NT; t++) {                                              \
                    const __m256 yd =                                                              \
                        _mm256_loadu_ps((const float *)(a + (size_t)t * as + yd_off) + i);         \
                    const __m256i s = hsum8_epi32(d[0][r][t], d[1][r][t], d[2][r][t], d[3][r][t],  \
                                                  d[4][r][t], d[5][r][t], d[6][r][t], d[7][r][t]); \
                    acc[r][t] =                                                                    \
                        _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(xd, yd), acc[r][t]);  \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        for (; i < nb; i++)                                                                        \
            UNROLL for (int r = 0; r < RM; r++) {                                                  \
                const block_t *x = (const block_t *)(w + (size_t)r * ws) + i;                      \
                const __m256i v = decode(x);                                                       \
                const __m256i av = _mm256_sign_epi8(v, v);                                         \
                UNROLL for (int t = 0; t < NT; t++) {                                              \
                    const block_q8_0 *yb = (const block_q8_0 *)(a + (size_t)t * as) + i;           \
                    const __m256i s = dot_u8s8(_mm256_setzero_si256(), av,                         \
                                               _mm256_sign_epi8(load256(yb->qs), v));              \
                    acc[r][t] = _mm256_fmadd_ps(                                                   \
                        _mm256_cvtepi32_ps(s), _mm256_set1_ps(f16(x->d) * f16(yb->d)), acc[r][t]); \
                }                                                                                  \
            }                                                                                      \
        UNROLL for (int r = 0; r < RM; r++) UNROLL for (int t = 0; t < NT; t++) y[t * ys + r] =    \
            hsum_ps(acc[r][t]);                                                                    \
    }

/* Runs an (RM, NT) tile over nr rows and nt tokens: 4 rows x 1 token for generation (four
 * independent sums in flight, the activation block loaded once for four rows), 1 row x 4
 * tokens for prompts (each weight block decoded once for four tokens). */
#define DEFINE_GEMM2(name, tile)                                                                   \
    static void name(int64_t n, const void *w, size_t w_stride, const void *act,                   \
                     size_t act_stride, float *y, int64_t y_stride, int64_t nr, int64_t nt) {      \
        const char *wc = w, *ac = act;                                                             \
        if (nt == 1) {                                                                             \
            int64_t r = 0;                                                                         \
            for (; r + 4 <= nr; r += 4)                                                            \
                tile(n, wc + (size_t)r * w_stride, w_stride, ac, act_stride, y + r, y_stride, 4,   \
                     1);                                                                           \
            for (; r < nr; r++)                                                                    \
                tile(n, wc + (size_t)r * w_stride, w_stride, ac, act_stride, y + r, y_stride, 1,   \
                     1);                                                                           \
            return;                                                                                \
        }                                                                                          \
        for (int64_t r = 0; r < nr; r++) {                                                         \
            const char *wr = wc + (size_t)r * w_stride;                                            \
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

LEGACY_SIGNED_TILE(tile_q4_0, block_q4_0, decode_q4_0)
LEGACY_SIGNED_TILE(tile_q5_0, block_q5_0, decode_q5_0)
LEGACY_SIGNED_TILE(tile_q8_0, block_q8_0, decode_q8_0)
DEFINE_GEMM2(gemm_q4_0, tile_q4_0)
DEFINE_GEMM2(gemm_q5_0, tile_q5_0)
DEFINE_GEMM2(gemm_q8_0, tile_q8_0)

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

/* q4_K / q5_K 6-bit scales and mins of the 8 sub-blocks (layout in blocks.h) */
static inline void k_scales_mins(const uint8_t *s, uint8_t sc[8], uint8_t mn[8]) {
    for (int j = 0; j < 4; j++) {
        sc[j] = s[j] & 63;
        mn[j] = s[j + 4] & 63;
        sc[j + 4] = (uint8_t)((s[j + 8] & 15) | (s[j] >> 6) << 4);
        mn[j + 4] = (uint8_t)((s[j + 8] >> 4) | (s[j + 4] >> 6) << 4);
    }
}

/* q4_K (HAS_QH 0) and q5_K (HAS_QH 1): 8 vectors of 32 unsigned values, vector k is sub-block
 * k with scale sc[k]; the mins pair with the activation's bsums (two per sub-block). */
#define K4_TILE(name, block_t, HIGH_BITS)                                                          \
    TILE void name(int64_t n, const char *wr, const char *a, size_t as, float *y, int64_t ys,      \
                   const int nt) {                                                                 \
        const block_t *x = (const block_t *)wr;                                                    \
        const __m256i m4 = _mm256_set1_epi8(0x0F);                                                 \
        __m256 acc[4], accm[4];                                                                    \
        for (int t = 0; t < nt; t++)                                                               \
            acc[t] = accm[t] = _mm256_setzero_ps();                                                \
        for (int64_t i = 0; i < n / QK_K; i++) {                                                   \
            uint8_t sc[8], mn[8];                                                                  \
            k_scales_mins(x[i].scales, sc, mn);                                                    \
            const __m128i mn8 = _mm_loadl_epi64((const __m128i *)mn);                              \
            const __m256i mins = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mn8, mn8));                \
            __m256i q[8], scv[8];                                                                  \
            for (int p = 0; p < 4; p++) {                                                          \
                const __m256i b = load256(x[i].qs + 32 * p);                                       \
                q[2 * p] = _mm256_and_si256(b, m4);                                                \
                q[2 * p + 1] = _mm256_and_si256(_mm256_srli_epi16(b, 4), m4);                      \
                scv[2 * p] = _mm256_set1_epi16(sc[2 * p]);                                         \
                scv[2 * p + 1] = _mm256_set1_epi16(sc[2 * p + 1]);                                 \
            }                                                                                      \
            HIGH_BITS(x[i], q);                                                                    \
            const float xd = f16(x[i].d), xmin = f16(x[i].dmin);                                   \
            for (int t = 0; t < nt; t++) {                                                         \
                const block_q8_K *yb = (const block_q8_K *)(a + (size_t)t * as) + i;               \
                __m256i isum = _mm256_setzero_si256();                                             \
                for (int k = 0; k < 8; k++)                                                        \
                    isum = dot_i16(isum, _mm256_maddubs_epi16(q[k], load256(yb->qs + 32 * k)),     \
                                   scv[k]);                                                        \
                const __m256i msum = _mm256_madd_epi16(load256(yb->bsums), mins);                  \
                acc[t] =                                                                           \
                    _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(xd * yb->d), acc[t]); \
                accm[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(msum), _mm256_set1_ps(xmin * yb->d),  \
                                          accm[t]);                                                \
            }                                                                                      \
        }                                                                                          \
        for (int t = 0; t < nt; t++)                                                               \
            y[t * ys] = hsum_ps(acc[t]) - hsum_ps(accm[t]);                                        \
    }

#define NO_HIGH_BITS(blk, q) ((void)0)
K4_TILE(tile_q4_K, block_q4_K, NO_HIGH_BITS)
DEFINE_GEMM(gemm_q4_K, tile_q4_K)

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
DEFINE_GEMM(gemm_q5_K, tile_q5_K)

/* q6_K: values 0..63 (the -32 offset goes through bsums), 16 int8 scales, one per 16 values. */
TILE void tile_q6_K(int64_t n, const char *wr, const char *a, size_t as, float *y, int64_t ys,
                    const int nt) {
    const block_q6_K *x = (const block_q6_K *)wr;
    const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    __m256 acc[4];
    for (int t = 0; t < nt; t++)
        acc[t] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        __m256i q[8], scv[8];
        for (int h = 0; h < 2; h++) {
            const __m256i la = load256(x[i].ql + 64 * h), lb = load256(x[i].ql + 64 * h + 32);
            const __m256i hv = load256(x[i].qh + 32 * h);
            q[4 * h + 0] = _mm256_or_si256(_mm256_and_si256(la, m4),
                                           _mm256_and_si256(_mm256_slli_epi16(hv, 4), m30));
            q[4 * h + 1] = _mm256_or_si256(_mm256_and_si256(lb, m4),
                                           _mm256_and_si256(_mm256_slli_epi16(hv, 2), m30));
            q[4 * h + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(la, 4), m4),
                                           _mm256_and_si256(hv, m30));
            q[4 * h + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(lb, 4), m4),
                                           _mm256_and_si256(_mm256_srli_epi16(hv, 2), m30));
        }
        for (int k = 0; k < 8; k++)
            scv[k] = _mm256_set_m128i(_mm_set1_epi16(x[i].scales[2 * k + 1]),
                                      _mm_set1_epi16(x[i].scales[2 * k]));
        const __m256i scales = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x[i].scales));
        const float xd = f16(x[i].d);
        for (int t = 0; t < nt; t++) {
            const block_q8_K *yb = (const block_q8_K *)(a + (size_t)t * as) + i;
            __m256i isum = _mm256_setzero_si256();
            for (int k = 0; k < 8; k++)
                isum = dot_i16(isum, _mm256_maddubs_epi16(q[k], load256(yb->qs + 32 * k)), scv[k]);
            const __m256i off =
                _mm256_madd_epi16(load256(yb->bsums), scales); /* sum scale * bsum */
            isum = _mm256_sub_epi32(isum, _mm256_slli_epi32(off, 5));
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(xd * yb->d), acc[t]);
        }
    }
    for (int t = 0; t < nt; t++)
        y[t * ys] = hsum_ps(acc[t]);
}
DEFINE_GEMM(gemm_q6_K, tile_q6_K)

/* ---- attention rows ---- */

/* q rounded to f16 times an f16 row: each product is exact in f32, and summing them in double
 * makes the result the exact dot product rounded once, as ggml's double sum for short rows
 * (ggml_vec_dot_f16), so f16 rounding of later softmax weights does not flip against it. */
static float dot_f16_x86(int64_t n, const float *q, const uint16_t *k) {
    __m256d acc0 = _mm256_setzero_pd(), acc1 = _mm256_setzero_pd();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 p = _mm256_mul_ps(_mm256_loadu_ps(q + i), load_f16x8(k + i));
        acc0 = _mm256_add_pd(acc0, _mm256_cvtps_pd(_mm256_castps256_ps128(p)));
        acc1 = _mm256_add_pd(acc1, _mm256_cvtps_pd(_mm256_extractf128_ps(p, 1)));
    }
    double s = hsum_pd(_mm256_add_pd(acc0, acc1));
    for (; i < n; i++)
        s += (double)(q[i] * f16(k[i]));
    return (float)s;
}

static void axpy_f16_x86(int64_t n, float a, const uint16_t *v, float *out) {
    const __m256 av = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, _mm256_fmadd_ps(av, load_f16x8(v + i), _mm256_loadu_ps(out + i)));
    for (; i < n; i++)
        out[i] += a * f16(v[i]);
}

static float dot_f32_x86(int64_t n, const float *q, const float *k) {
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_loadu_ps(k + i), acc);
    float s = hsum_ps(acc);
    for (; i < n; i++)
        s += q[i] * k[i];
    return s;
}

static void axpy_f32_x86(int64_t n, float a, const float *v, float *out) {
    const __m256 av = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i,
                         _mm256_fmadd_ps(av, _mm256_loadu_ps(v + i), _mm256_loadu_ps(out + i)));
    for (; i < n; i++)
        out[i] += a * v[i];
}

void QR_X86_FILL(qr_kernels *k) {
    qr_kernels_fill_scalar(k); /* types without a SIMD kernel keep the reference */
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
    k->dot_f16 = dot_f16_x86;
    k->axpy_f16 = axpy_f16_x86;
    k->dot_f32 = dot_f32_x86;
    k->axpy_f32 = axpy_f32_x86;
}
