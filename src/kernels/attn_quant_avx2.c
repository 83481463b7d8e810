/* attn_quant_avx2.c - AVX2 + FMA + F16C forms of the attention row kernels (attn_quant.h) for
 * q8_0, q4_0, q5_0, iq4_nl, q4_1 and q5_1 caches (K dot products against q8_0 / q8_1 queries,
 * V rows added into the accumulators), the f32 and f16 accumulators and the rotation. The dot
 * products sum each block's integer products exactly and add the blocks as ggml's AVX2
 * ggml_vec_dot_q8_0_q8_0 / q4_0_q8_0 do (eight float lanes, one FMA per block, summed across lanes
 * at the end); dequantisation is exact, as the scalar one. */
#include "kernels/attn_quant.h"
#include "tensor/blocks.h"
#include "tensor/iq_tables.h"
#include "util/util.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#include <math.h>

static inline float fp16_to_fp32(uint16_t h) {
    return _cvtsh_ss(h);
}

static inline float hsum_8(__m256 x) {
    __m128 r = _mm_add_ps(_mm256_extractf128_ps(x, 1), _mm256_castps256_ps128(x));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

/* hsum_8 of a, b, c and d at once, the same additions in the same tree (lanes i + (i + 4),
 * then 0 + 2 and 1 + 3, then those two), so a row's sum does not depend on its neighbours */
static inline void hsum_8x4(__m256 a, __m256 b, __m256 c, __m256 d, float *out, int64_t stride) {
    const __m256 ab = _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20),
                                    _mm256_permute2f128_ps(a, b, 0x31)); /* a 4 | b 4 */
    const __m256 cd = _mm256_add_ps(_mm256_permute2f128_ps(c, d, 0x20),
                                    _mm256_permute2f128_ps(c, d, 0x31)); /* c 4 | d 4 */
    /* per 128-bit half: [x0 + x2, x1 + x3] of the first, then of the second row */
    const __m256 v = _mm256_add_ps(_mm256_shuffle_ps(ab, cd, _MM_SHUFFLE(1, 0, 1, 0)),
                                   _mm256_shuffle_ps(ab, cd, _MM_SHUFFLE(3, 2, 3, 2)));
    const __m256 t = _mm256_add_ps(_mm256_shuffle_ps(v, v, _MM_SHUFFLE(2, 0, 2, 0)),
                                   _mm256_shuffle_ps(v, v, _MM_SHUFFLE(3, 1, 3, 1)));
    float f[8]; /* a, c, a, c, b, d, b, d */
    _mm256_storeu_ps(f, t);
    out[0] = f[0];
    out[stride] = f[4];
    out[2 * stride] = f[1];
    out[3 * stride] = f[5];
}

/* the 8 lane sums of x[i] * y[i] over 32 signed bytes, as floats */
static inline __m256 mul_sum_i8(__m256i x, __m256i y) {
    const __m256i ax = _mm256_sign_epi8(x, x);
    const __m256i sy = _mm256_sign_epi8(y, x);
    const __m256i dot = _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), _mm256_set1_epi16(1));
    return _mm256_cvtepi32_ps(dot);
}

/* q4_0's 32 values (nibble - 8) as bytes: low nibbles are elements 0..15, high ones 16..31 */
static inline __m256i unpack_q4_0(const uint8_t *qs) {
    const __m128i t = _mm_loadu_si128((const __m128i *)qs);
    const __m256i b = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
    return _mm256_sub_epi8(_mm256_and_si256(b, _mm256_set1_epi8(0x0F)), _mm256_set1_epi8(8));
}

/* ---- q5_0, iq4_nl (against q8_0 queries), q4_1, q5_1 (against q8_1): each block unpacked
 * to 32 bytes, signed values for the first two, unsigned (0..31) for the others ---- */

/* 0xFF in byte i where bit i of bits is set */
static inline __m256i bits_to_bytes(uint32_t bits) {
    const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2,
                                          2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x(0x8040201008040201LL);
    const __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), shuf);
    return _mm256_cmpeq_epi8(_mm256_and_si256(b, bit), bit);
}
static inline __m256i nibbles(const uint8_t *qs) { /* low nibbles: 0..15, high: 16..31 */
    const __m128i t = _mm_loadu_si128((const __m128i *)qs);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), _mm256_set1_epi8(0x0F));
}
static inline __m256i unpack_q5(const uint8_t *qs, const uint8_t *qh) { /* 0..31 */
    const __m256i hi = _mm256_and_si256(bits_to_bytes(qr_rd_u32(qh)), _mm256_set1_epi8(0x10));
    return _mm256_or_si256(nibbles(qs), hi);
}
static inline __m256i unpack_iq4_nl(const uint8_t *qs) {
    const __m128i t = _mm_loadu_si128((const __m128i *)qr_kvalues_iq4nl);
    return _mm256_shuffle_epi8(_mm256_set_m128i(t, t), nibbles(qs));
}

/* one block's values as bytes, its scale d and (the _1 types) minimum m */
#define UNPACK_Q5_0(x) _mm256_sub_epi8(unpack_q5((x)->qs, (x)->qh), _mm256_set1_epi8(16))
#define UNPACK_IQ4_NL(x) unpack_iq4_nl((x)->qs)
#define UNPACK_Q4_1(x) nibbles((x)->qs)
#define UNPACK_Q5_1(x) unpack_q5((x)->qs, (x)->qh)

/* against q8_0 queries: sum over blocks of d_k * d_q * (integer dot) in eight float lanes, one
 * FMA per block, as ggml's AVX2 ggml_vec_dot_q8_0_q8_0; four rows at a time */
#define DOT_SIGNED(name, block_t, UNPACK)                                                          \
    static inline __m256 name##_acc(const block_t *x, const block_q8_0 *y, int64_t nb) {           \
        __m256 acc = _mm256_setzero_ps();                                                          \
        for (int64_t i = 0; i < nb; i++) {                                                         \
            const __m256 d = _mm256_set1_ps(fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d));          \
            const __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);                       \
            acc = _mm256_fmadd_ps(d, mul_sum_i8(UNPACK(&x[i]), qy), acc);                          \
        }                                                                                          \
        return acc;                                                                                \
    }                                                                                              \
    static void name(int64_t n, int ng, const void *q, size_t q_stride, const void *k,             \
                     size_t k_stride, int64_t rows, float *out, int64_t out_stride) {              \
        const int64_t nb = n / 32;                                                                 \
        int64_t r = 0;                                                                             \
        for (; r + 4 <= rows; r += 4) {                                                            \
            const block_t *x = (const block_t *)((const char *)k + r * k_stride);                  \
            const int64_t xs = (int64_t)(k_stride / sizeof(block_t));                              \
            /* the rows 16 ahead (the prefetchers alone leave the loads waiting) */                \
            for (size_t o = 0; o < 4 * k_stride; o += 64)                                          \
                _mm_prefetch((const char *)x + 16 * k_stride + o, _MM_HINT_T0);                    \
            for (int h = 0; h < ng; h++) {                                                         \
                const block_q8_0 *y = (const block_q8_0 *)((const char *)q + h * q_stride);        \
                hsum_8x4(name##_acc(x, y, nb), name##_acc(x + xs, y, nb),                          \
                         name##_acc(x + 2 * xs, y, nb), name##_acc(x + 3 * xs, y, nb),             \
                         out + h * out_stride + r, 1);                                             \
            }                                                                                      \
        }                                                                                          \
        for (; r < rows; r++) {                                                                    \
            const block_t *x = (const block_t *)((const char *)k + r * k_stride);                  \
            for (int h = 0; h < ng; h++) {                                                         \
                const block_q8_0 *y = (const block_q8_0 *)((const char *)q + h * q_stride);        \
                out[h * out_stride + r] = hsum_8(name##_acc(x, y, nb));                            \
            }                                                                                      \
        }                                                                                          \
    }
/* against q8_1 queries: d_k * d_q * (integer dot) + m_k * s_q per block, as ggml's AVX2
 * ggml_vec_dot_q4_1_q8_1: the products in eight float lanes, the minimum terms apart */
#define DOT_UNSIGNED(name, block_t, UNPACK)                                                        \
    static void name(int64_t n, int ng, const void *q, size_t q_stride, const void *k,             \
                     size_t k_stride, int64_t rows, float *out, int64_t out_stride) {              \
        const int64_t nb = n / 32;                                                                 \
        for (int64_t r = 0; r < rows; r++) {                                                       \
            const block_t *x = (const block_t *)((const char *)k + r * k_stride);                  \
            for (int h = 0; h < ng; h++) {                                                         \
                const block_q8_1 *y = (const block_q8_1 *)((const char *)q + h * q_stride);        \
                __m256 acc = _mm256_setzero_ps();                                                  \
                float summs = 0.0f;                                                                \
                for (int64_t i = 0; i < nb; i++) {                                                 \
                    summs += fp16_to_fp32(x[i].m) * fp16_to_fp32(y[i].s);                          \
                    const __m256 d = _mm256_set1_ps(fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d));  \
                    const __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);               \
                    const __m256i dot = _mm256_madd_epi16(_mm256_maddubs_epi16(UNPACK(&x[i]), qy), \
                                                          _mm256_set1_epi16(1));                   \
                    acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot), acc);                        \
                }                                                                                  \
                out[h * out_stride + r] = hsum_8(acc) + summs;                                     \
            }                                                                                      \
        }                                                                                          \
    }
#define UNPACK_Q8_0(x) _mm256_loadu_si256((const __m256i *)(x)->qs)
#define UNPACK_Q4_0(x) unpack_q4_0((x)->qs)
DOT_SIGNED(dot_q8_0, block_q8_0, UNPACK_Q8_0)
DOT_SIGNED(dot_q4_0, block_q4_0, UNPACK_Q4_0)
DOT_SIGNED(dot_q5_0, block_q5_0, UNPACK_Q5_0)
DOT_SIGNED(dot_iq4_nl, block_iq4_nl, UNPACK_IQ4_NL)
DOT_UNSIGNED(dot_q4_1, block_q4_1, UNPACK_Q4_1)
DOT_UNSIGNED(dot_q5_1, block_q5_1, UNPACK_Q5_1)

/* values c .. c + 7 of a row of these types, as to_float makes them: q * d (q4_1, q5_1: q * d
 * + m, two roundings) */
#define LOAD8_BLOCK(name, block_t, UNPACK, PLUS_M)                                                 \
    static inline __m256 name(const char *row, int64_t c) {                                        \
        const block_t *b = (const block_t *)row + c / 32;                                          \
        int8_t v[32];                                                                              \
        _mm256_storeu_si256((__m256i *)v, UNPACK(b));                                              \
        const __m128i q = _mm_loadl_epi64((const __m128i *)(v + c % 32));                          \
        const __m256 x = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)),                \
                                       _mm256_set1_ps(fp16_to_fp32(b->d)));                        \
        return PLUS_M;                                                                             \
    }
LOAD8_BLOCK(load8_q5_0, block_q5_0, UNPACK_Q5_0, x)
LOAD8_BLOCK(load8_iq4_nl, block_iq4_nl, UNPACK_IQ4_NL, x)
LOAD8_BLOCK(load8_q4_1, block_q4_1, UNPACK_Q4_1,
            _mm256_add_ps(x, _mm256_set1_ps(fp16_to_fp32(b->m))))
LOAD8_BLOCK(load8_q5_1, block_q5_1, UNPACK_Q5_1,
            _mm256_add_ps(x, _mm256_set1_ps(fp16_to_fp32(b->m))))

static void to_float_q8_0(const void *v, float *out, int64_t n) {
    const block_q8_0 *x = v;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        const __m256 d = _mm256_set1_ps(fp16_to_fp32(x[i].d));
        for (int j = 0; j < QK8_0; j += 8) {
            const __m128i b = _mm_loadl_epi64((const __m128i *)(x[i].qs + j));
            _mm256_storeu_ps(out + i * QK8_0 + j,
                             _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b)), d));
        }
    }
}

static void to_float_q4_0(const void *v, float *out, int64_t n) {
    const block_q4_0 *x = v;
    for (int64_t i = 0; i < n / QK4_0; i++) {
        const __m256 d = _mm256_set1_ps(fp16_to_fp32(x[i].d));
        const __m256i b = unpack_q4_0(x[i].qs);
        const __m128i lo = _mm256_castsi256_si128(b), hi = _mm256_extracti128_si256(b, 1);
        const __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
        for (int j = 0; j < 4; j++)
            _mm256_storeu_ps(out + i * QK4_0 + 8 * j,
                             _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(parts[j])), d));
    }
}

static void mad_f32(int64_t n, float *y, const float *x, float v) {
    const __m256 vv = _mm256_set1_ps(v);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i,
                         _mm256_fmadd_ps(_mm256_loadu_ps(x + i), vv, _mm256_loadu_ps(y + i)));
    for (; i < n; i++)
        y[i] = fmaf(x[i], v, y[i]);
}

static void scale_f32(int64_t n, float *y, float v) {
    const __m256 vv = _mm256_set1_ps(v);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(y + i), vv));
    for (; i < n; i++)
        y[i] *= v;
}

static void mad_f16(int64_t n, uint16_t *y, const uint16_t *x, float v) {
    const __m256 vv = _mm256_set1_ps(v);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 xf = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i)));
        const __m256 yf = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(y + i)));
        _mm_storeu_si128((__m128i *)(y + i),
                         _mm256_cvtps_ph(_mm256_fmadd_ps(xf, vv, yf), _MM_FROUND_TO_NEAREST_INT));
    }
    for (; i < n; i++)
        y[i] = qr_fp32_to_fp16(fmaf(qr_fp16_to_fp32(x[i]), v, qr_fp16_to_fp32(y[i])));
}

static void scale_f16(int64_t n, uint16_t *y, float v) {
    const __m256 vv = _mm256_set1_ps(v);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 yf = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(y + i)));
        _mm_storeu_si128((__m128i *)(y + i),
                         _mm256_cvtps_ph(_mm256_mul_ps(yf, vv), _MM_FROUND_TO_NEAREST_INT));
    }
    for (; i < n; i++)
        y[i] = qr_fp32_to_fp16(qr_fp16_to_fp32(y[i]) * v);
}

/* v_mad_rows for q8_0, q4_0 and f32 rows: for each group of 8 columns, up to 4 heads'
 * accumulators stay in registers across all the rows; each row's 8 values are converted once
 * (q * d, as to_float) and added with one FMA per head */
typedef __m256 (*load8_fn)(const char *row, int64_t c);

/* hn (1 to 4, a constant after inlining: the accumulators stay in registers) heads from h0,
 * columns c .. c + 7, all the rows; ms NULL (a constant after inlining too): no rescales */
#define V_STEP(k, a)                                                                               \
    do {                                                                                           \
        if (ms) {                                                                                  \
            const float m = ms[(h0 + k) * w_stride + r];                                           \
            if (m != 1.0f) a = _mm256_mul_ps(a, _mm256_set1_ps(m));                                \
        }                                                                                          \
        a = _mm256_fmadd_ps(x, _mm256_set1_ps(w[(h0 + k) * w_stride + r]), a);                     \
    } while (0)
static inline __attribute__((always_inline)) void
v_mad_group(const int hn, load8_fn load8, int h0, int64_t c, const void *v, size_t v_stride,
            int64_t rows, const float *w, const float *ms, int64_t w_stride, float *acc,
            int64_t acc_stride) {
    float *p0 = acc + h0 * acc_stride + c;
    __m256 a0 = _mm256_loadu_ps(p0), a1 = a0, a2 = a0, a3 = a0;
    if (hn > 1) a1 = _mm256_loadu_ps(p0 + acc_stride);
    if (hn > 2) a2 = _mm256_loadu_ps(p0 + 2 * acc_stride);
    if (hn > 3) a3 = _mm256_loadu_ps(p0 + 3 * acc_stride);
    for (int64_t r = 0; r < rows; r++) {
        if (c == 0) _mm_prefetch((const char *)v + (r + 16) * (int64_t)v_stride, _MM_HINT_T0);
        const __m256 x = load8((const char *)v + r * (int64_t)v_stride, c);
        V_STEP(0, a0);
        if (hn > 1) V_STEP(1, a1);
        if (hn > 2) V_STEP(2, a2);
        if (hn > 3) V_STEP(3, a3);
    }
    _mm256_storeu_ps(p0, a0);
    if (hn > 1) _mm256_storeu_ps(p0 + acc_stride, a1);
    if (hn > 2) _mm256_storeu_ps(p0 + 2 * acc_stride, a2);
    if (hn > 3) _mm256_storeu_ps(p0 + 3 * acc_stride, a3);
}

#define V_MAD_GROUP(hn, load8)                                                                     \
    do {                                                                                           \
        if (ms)                                                                                    \
            v_mad_group(hn, load8, h0, c, v, v_stride, rows, w, ms, w_stride, acc, acc_stride);    \
        else                                                                                       \
            v_mad_group(hn, load8, h0, c, v, v_stride, rows, w, NULL, w_stride, acc, acc_stride);  \
    } while (0)
#define V_MAD_ROWS(name, load8)                                                                    \
    static void name(int64_t n, int ng, const void *v, size_t v_stride, int64_t rows,              \
                     const float *w, const float *ms, int64_t w_stride, float *acc,                \
                     int64_t acc_stride) {                                                         \
        for (int64_t c = 0; c < n; c += 8)                                                         \
            for (int h0 = 0; h0 < ng; h0 += 4) {                                                   \
                switch (ng - h0 < 4 ? ng - h0 : 4) {                                               \
                case 1:                                                                            \
                    V_MAD_GROUP(1, load8);                                                         \
                    break;                                                                         \
                case 2:                                                                            \
                    V_MAD_GROUP(2, load8);                                                         \
                    break;                                                                         \
                case 3:                                                                            \
                    V_MAD_GROUP(3, load8);                                                         \
                    break;                                                                         \
                default:                                                                           \
                    V_MAD_GROUP(4, load8);                                                         \
                }                                                                                  \
            }                                                                                      \
    }

/* values c .. c + 7 of a row, as floats */
static inline __m256 load8_q8_0(const char *row, int64_t c) {
    const block_q8_0 *b = (const block_q8_0 *)row + c / QK8_0;
    const __m128i q = _mm_loadl_epi64((const __m128i *)(b->qs + c % QK8_0));
    return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)),
                         _mm256_set1_ps(fp16_to_fp32(b->d)));
}
static inline __m256 load8_q4_0(const char *row, int64_t c) {
    const block_q4_0 *b = (const block_q4_0 *)row + c / QK4_0;
    const int64_t j = c % QK4_0; /* 0, 8: low nibbles of qs[j..j+8); 16, 24: high of qs[j-16..] */
    const __m128i q = _mm_loadl_epi64((const __m128i *)(b->qs + (j & 15)));
    const __m128i nib = _mm_and_si128(j < 16 ? q : _mm_srli_epi16(q, 4), _mm_set1_epi8(0x0F));
    const __m128i x = _mm_sub_epi8(nib, _mm_set1_epi8(8));
    return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(x)),
                         _mm256_set1_ps(fp16_to_fp32(b->d)));
}
static inline __m256 load8_f32(const char *row, int64_t c) {
    return _mm256_loadu_ps((const float *)row + c);
}
V_MAD_ROWS(v_mad_rows_q8_0, load8_q8_0)
V_MAD_ROWS(v_mad_rows_q4_0, load8_q4_0)
V_MAD_ROWS(v_mad_rows_f32_8, load8_f32)
V_MAD_ROWS(v_mad_rows_q5_0, load8_q5_0)
V_MAD_ROWS(v_mad_rows_iq4_nl, load8_iq4_nl)
V_MAD_ROWS(v_mad_rows_q4_1, load8_q4_1)
V_MAD_ROWS(v_mad_rows_q5_1, load8_q5_1)

/* f32 rows of any length: whole groups of 8 in SIMD, the rest in scalar (the same operations) */
static void v_mad_rows_f32(int64_t n, int ng, const void *v, size_t v_stride, int64_t rows,
                           const float *w, const float *ms, int64_t w_stride, float *acc,
                           int64_t acc_stride) {
    const int64_t n8 = n & ~(int64_t)7;
    if (n8) v_mad_rows_f32_8(n8, ng, v, v_stride, rows, w, ms, w_stride, acc, acc_stride);
    for (int64_t r = 0; r < rows && n8 < n; r++) {
        const float *x = (const float *)((const char *)v + r * (int64_t)v_stride);
        for (int h = 0; h < ng; h++) {
            float *a = acc + h * acc_stride;
            const float m = ms ? ms[h * w_stride + r] : 1.0f, wr = w[h * w_stride + r];
            for (int64_t i = n8; i < n; i++) {
                if (m != 1.0f) a[i] *= m;
                a[i] = fmaf(x[i], wr, a[i]);
            }
        }
    }
}

void qr_attn_fwht_avx2(float *x, int64_t n, int64_t len) {
    const float scale = 1.0f / sqrtf((float)len);
    for (int64_t c = 0; c < n; c += len) {
        float *y = x + c;
        for (int64_t j = 0; j < len; j++)
            y[j] *= scale;
        int64_t d = 1;
        for (; d < 8 && d < len; d <<= 1)
            for (int64_t i = 0; i < len; i += 2 * d)
                for (int64_t j = i; j < i + d; j++) {
                    const float u = y[j], v = y[j + d];
                    y[j] = u + v;
                    y[j + d] = u - v;
                }
        for (; d < len; d <<= 1)
            for (int64_t i = 0; i < len; i += 2 * d)
                for (int64_t j = i; j < i + d; j += 8) {
                    const __m256 u = _mm256_loadu_ps(y + j), v = _mm256_loadu_ps(y + j + d);
                    _mm256_storeu_ps(y + j, _mm256_add_ps(u, v));
                    _mm256_storeu_ps(y + j + d, _mm256_sub_ps(u, v));
                }
    }
}

void qr_attn_kernels_fill_avx2(qr_attn_kernels *k) {
    k->name = "avx2";
    k->v_mad_rows[QR_TYPE_Q8_0] = v_mad_rows_q8_0;
    k->v_mad_rows[QR_TYPE_Q4_0] = v_mad_rows_q4_0;
    k->v_mad_rows[QR_TYPE_F32] = v_mad_rows_f32;
    k->dot[QR_TYPE_Q5_0] = dot_q5_0;
    k->dot[QR_TYPE_IQ4_NL] = dot_iq4_nl;
    k->dot[QR_TYPE_Q4_1] = dot_q4_1;
    k->dot[QR_TYPE_Q5_1] = dot_q5_1;
    k->v_mad_rows[QR_TYPE_Q5_0] = v_mad_rows_q5_0;
    k->v_mad_rows[QR_TYPE_IQ4_NL] = v_mad_rows_iq4_nl;
    k->v_mad_rows[QR_TYPE_Q4_1] = v_mad_rows_q4_1;
    k->v_mad_rows[QR_TYPE_Q5_1] = v_mad_rows_q5_1;
    k->fwht = qr_attn_fwht_avx2;
    k->dot[QR_TYPE_Q8_0] = dot_q8_0;
    k->dot[QR_TYPE_Q4_0] = dot_q4_0;
    k->to_float[QR_TYPE_Q8_0] = to_float_q8_0;
    k->to_float[QR_TYPE_Q4_0] = to_float_q4_0;
    k->mad_f32 = mad_f32;
    k->scale_f32 = scale_f32;
    k->mad_f16 = mad_f16;
    k->scale_f16 = scale_f16;
}
#else
void qr_attn_kernels_fill_avx2(qr_attn_kernels *k) {
    (void)k;
}
void qr_attn_fwht_avx2(float *x, int64_t n, int64_t len) {
    qr_attn_fwht(x, n, len);
}
#endif
