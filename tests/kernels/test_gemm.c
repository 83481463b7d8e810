/* test_gemm.c - every SIMD kernel set against the scalar reference (the traits table's
 * vec_dot, tensor/vec_dot.c), on random data for every weight type, at sizes that exercise
 * every tile shape and remainder: 1..9 rows (4-row tiles plus leftovers), 1..9 tokens (4-token
 * tiles plus leftovers), rows of 1 to 17 blocks (the 8-block fold of the legacy kernels and
 * its tail), odd lengths for the float types; then prompt sizes (16+ tokens, 8+ rows, rows of
 * more than one 64-block panel) for the interleaved path. Activations go through
 * qr_act_convert, as in the forward pass. iq4_nl and iq4_xs on random blocks (check_iq4).
 * Also each set's activation quantizers against the reference bytes, the attention row
 * helpers, the dispatcher and its bad names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <math.h>

#include <cmocka.h>

#include "kernels/kernels.h"
#include "kernels/matmul.h"
#include "tensor/tensor.h"
#include "util/util.h"
#include "test_util.h"

/* |simd - reference| <= GEMM_REL_TOL * sum_i |w_i| |x_i| (w dequantized, x the float input).
 * Integer block sums are exact in both; what differs is the order of float additions of the
 * block results (and f32 sums: double in both), so a few float epsilons of the magnitude. */
#define GEMM_REL_TOL 1e-5
/* attention rows: float sums in a different order than the reference's */
#define ROW_REL_TOL 1e-5

static const int weight_types[] = {QR_TYPE_F32,  QR_TYPE_F16,  QR_TYPE_BF16, QR_TYPE_Q4_0,
                                   QR_TYPE_Q4_1, QR_TYPE_Q5_0, QR_TYPE_Q5_1, QR_TYPE_Q8_0,
                                   QR_TYPE_Q2_K, QR_TYPE_Q3_K, QR_TYPE_Q4_K, QR_TYPE_Q5_K,
                                   QR_TYPE_Q6_K};

/* One weight type, one set: nr rows x nt tokens of n columns; packed: through the set's
 * repacked layout (pack, gemm_packed), whose rows must also read back (packed_row) exactly as
 * the original rows dequantize. */
static void check_gemm_as(const qr_kernels *set, int type, int64_t n, int64_t nr, int64_t nt,
                          bool packed) {
    const qr_type_traits *tr = qr_type_traits_get(type);
    const qr_kernels *ref = qr_kernels_named("scalar");
    assert_non_null(ref);
    const size_t row_bytes = qr_type_row_bytes(type, n);
    float *wf = malloc((size_t)(nr * n) * sizeof(float));
    float *wd = malloc((size_t)(nr * n) * sizeof(float));
    float *x = malloc((size_t)(nt * n) * sizeof(float));
    char *w = malloc(row_bytes * (size_t)nr);
    char *act = malloc(qr_act_bytes(type, n, nt));
    float *y = malloc((size_t)(nr * nt) * sizeof(float)),
          *y_ref = malloc((size_t)(nr * nt) * sizeof(float));
    assert_true(wf && wd && x && w && act && y && y_ref);
    qr_test_fill_random(wf, nr * n);
    qr_test_fill_random(x, nt * n);
    for (int64_t r = 0; r < nr; r++) {
        tr->from_float(wf + r * n, w + (size_t)r * row_bytes, n);
        tr->to_float(w + (size_t)r * row_bytes, wd + r * n, n);
    }
    const size_t stride = qr_act_convert(type, x, n, nt, act);
    if (packed) {
        const size_t prb = set->packed_row_bytes(type, n);
        char *pw = malloc(prb * (size_t)nr);
        float *row = malloc((size_t)n * sizeof(float));
        assert_true(pw && row);
        set->pack(type, w, n, nr, pw);
        for (int64_t r = 0; r < nr; r++) {
            set->packed_row(type, pw, n, r, row);
            assert_memory_equal(row, wd + r * n, (size_t)n * sizeof(float));
        }
        set->gemm_packed[type](n, pw, prb, act, stride, y, nr, nr, nt);
        free(pw);
        free(row);
    } else {
        set->gemm[type](n, w, row_bytes, act, stride, y, nr, nr, nt);
    }
    ref->gemm[type](n, w, row_bytes, act, stride, y_ref, nr, nr, nt);
    for (int64_t t = 0; t < nt; t++)
        for (int64_t r = 0; r < nr; r++) {
            double mag = 0.0;
            for (int64_t i = 0; i < n; i++)
                mag += fabs((double)wd[r * n + i] * (double)x[t * n + i]);
            const double diff = fabs((double)y[t * nr + r] - (double)y_ref[t * nr + r]);
            if (!(diff <= GEMM_REL_TOL * mag + 1e-30))
                fail_msg("%s %s: n=%lld rows=%lld tokens=%lld: y[%lld][%lld] = %.9g, reference "
                         "%.9g (|w||x| %.3g)",
                         set->name, tr->name, (long long)n, (long long)nr, (long long)nt,
                         (long long)t, (long long)r, (double)y[t * nr + r],
                         (double)y_ref[t * nr + r], mag);
        }
    free(wf);
    free(wd);
    free(x);
    free(w);
    free(act);
    free(y);
    free(y_ref);
}

static void check_gemm(const qr_kernels *set, int type, int64_t n, int64_t nr, int64_t nt) {
    check_gemm_as(set, type, n, nr, nt, false);
}

/* The repacked layout of the sets that have one: every type it takes, one and three row
 * groups, every token count of a tile (1..8) and beyond it, rows of 1 to 70 blocks. */
static void check_set_packed(const qr_kernels *set) {
    const int64_t rows[] = {set->pack_rows, 3 * set->pack_rows};
    static const int64_t tokens[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 17};
    static const int64_t blocks[] = {1, 3, 17, 70}; /* k-quants: superblocks, up to 17 */
    int n_types = 0;
    for (int type = 0; type < QR_TYPE_COUNT; type++) {
        if (!set->gemm_packed[type]) continue;
        n_types++;
        assert_non_null(set->pack);
        assert_non_null(set->packed_row);
        for (size_t bi = 0; bi < sizeof blocks / sizeof blocks[0] - (qr_type_block_size(type) > 32); bi++)
            for (size_t ri = 0; ri < sizeof rows / sizeof rows[0]; ri++)
                for (size_t ki = 0; ki < sizeof tokens / sizeof tokens[0]; ki++)
                    check_gemm_as(set, type, blocks[bi] * qr_type_block_size(type), rows[ri],
                                  tokens[ki], true);
    }
    if (!set->pack) print_message("%s kernels: no repacked layout\n", set->name);
    else /* f16, bf16, q4_0, q5_0, q8_0, q4_K, iq4_nl, mxfp4; with VNNI also q6_K, iq4_xs */
        assert_int_equal(n_types, strcmp(set->name, "avx512") == 0 ? 10 : 8);
}

static void check_set(const qr_kernels *set) {
    static const int64_t rows[] = {1, 3, 4, 5, 9};
    static const int64_t tokens[] = {1, 2, 3, 4, 5, 9};
    for (size_t ti = 0; ti < sizeof weight_types / sizeof weight_types[0]; ti++) {
        const int type = weight_types[ti];
        assert_non_null(set->gemm[type]);
        const int64_t bs = qr_type_block_size(type);
        /* blocks per row: 1, a few, 8 (one full fold), 17 (two folds and a tail); odd lengths
         * for the float types */
        const int64_t lengths_q[] = {bs, 3 * bs, 8 * bs, 17 * bs};
        const int64_t lengths_f[] = {1, 7, 13, 64, 172, 301};
        const int64_t *lengths = bs == 1 ? lengths_f : lengths_q;
        const size_t n_lengths = bs == 1 ? 6 : 4;
        for (size_t li = 0; li < n_lengths; li++)
            for (size_t ri = 0; ri < sizeof rows / sizeof rows[0]; ri++)
                for (size_t ki = 0; ki < sizeof tokens / sizeof tokens[0]; ki++)
                    check_gemm(set, type, lengths[li], rows[ri], tokens[ki]);
    }
}

/* Prompt-sized products: the interleaved 8-row path of the legacy types (16+ tokens, rows in
 * groups of 8 plus leftovers, rows longer than one 64-block panel) and every other type's
 * tiles at the same sizes. */
static void check_set_prompt(const qr_kernels *set) {
    static const int64_t rows[] = {8, 19};
    static const int64_t tokens[] = {16, 23};
    for (size_t ti = 0; ti < sizeof weight_types / sizeof weight_types[0]; ti++) {
        const int type = weight_types[ti];
        const int64_t bs = qr_type_block_size(type);
        const int64_t lengths[] = {bs == 1 ? 301 : 9 * bs,
                                   bs == 1 ? 2240 : (bs == 32 ? 70 : 9) * bs};
        for (size_t li = 0; li < 2; li++)
            for (size_t ri = 0; ri < sizeof rows / sizeof rows[0]; ri++)
                for (size_t ki = 0; ki < sizeof tokens / sizeof tokens[0]; ki++)
                    check_gemm(set, type, lengths[li], rows[ri], tokens[ki]);
    }
}

/* Each set's activation quantizers give the reference's bytes exactly (tensor/quant_act.c, plus
 * the float scales and block sums of q8_0 rows), on random rows, rows with ties (x * id exactly
 * k + 0.5), all-zero blocks and a block whose largest magnitude appears with both signs. */
static void check_quant(const qr_kernels *set) {
    const qr_kernels *ref = qr_kernels_named("scalar");
    enum { N = 1024 };
    static float x[N];
    static char out[2][N * 2];
    for (int pattern = 0; pattern < 4; pattern++) {
        qr_test_fill_random(x, N);
        if (pattern == 1) /* ties: amax 127 gives id 1, so halves stay halves */
            for (int i = 0; i < N; i++)
                x[i] = i % 32 == 0 ? 127.0f : (float)((i * 7) % 255 - 127) + 0.5f * (i % 3 == 0);
        if (pattern == 2)
            for (int i = 0; i < 256; i++)
                x[i] = 0.0f; /* a zero q8_K block and 8 zero q8_0 blocks */
        if (pattern == 3) {
            x[5] = 3.0f;
            x[9] = -3.0f; /* q8_K: the first of equal magnitudes sets the sign */
            x[300] = -2.5f;
            x[301] = 2.5f;
        }
        memset(out, 0x5A, sizeof out);
        assert_true(qr_act_q8_0_row_bytes(N) <= sizeof out[0]);
        set->quant_q8_0(x, out[0], N);
        ref->quant_q8_0(x, out[1], N);
        assert_memory_equal(out[0], out[1],
                            qr_act_q8_0_row_bytes(N)); /* padding included: 0x5A in both */
        memset(out, 0x5A, sizeof out);
        set->quant_q8_K(x, out[0], N);
        ref->quant_q8_K(x, out[1], N);
        assert_memory_equal(out[0], out[1], qr_type_row_bytes(QR_TYPE_Q8_K, N));
    }
}

/* f16 conversions give the reference's bits exactly: random values, halfway cases between two
 * f16 values (round to even), subnormals, overflow to infinity, lengths with scalar tails. */
static void check_f16(const qr_kernels *set) {
    const qr_kernels *ref = qr_kernels_named("scalar");
    enum { N = 203 };
    static float x[N], r0[N], r1[N];
    static uint16_t h0[N], h1[N];
    qr_test_fill_random(x, N);
    for (int i = 0; i < N; i += 5) /* halfway between 1 + k/1024 and its successor */
        x[i] = 1.0f + ((float)(i % 1024) + 0.5f) / 1024.0f;
    x[3] = 1e-6f;    /* subnormal in f16 */
    x[7] = -7e-8f;   /* rounds to a tiny subnormal */
    x[11] = 70000.f; /* beyond f16: infinity */
    x[13] = -0.0f;
    for (int64_t n = 1; n <= N; n += 101) {
        set->to_f16(x, h0, n);
        ref->to_f16(x, h1, n);
        assert_memory_equal(h0, h1, (size_t)n * sizeof *h0);
        memcpy(r0, x, sizeof x);
        memcpy(r1, x, sizeof x);
        set->round_f16(r0, n);
        ref->round_f16(r1, n);
        assert_memory_equal(r0, r1, (size_t)n * sizeof *r0);
    }
}

/* The SIMD exp (softmax, SwiGLU) within EXP_ULP float ulps of libm's expf over the range that
 * matters, through the softmax and SwiGLU helpers. */
#define EXP_ULP 2
static void check_exp(const qr_kernels *set) {
    enum { N = 4099 };
    static float x[N], g[N], u[N];
    for (int i = 0; i < N; i++) {
        x[i] = -100.0f + 190.0f * (float)i / (float)(N - 1); /* -100 .. 90 */
        g[i] = x[i] * 0.25f;
        u[i] = 1.0f - (float)(i % 7) * 0.3f;
    }
    memcpy(g + N - 8, (float[]){-120.0f, -90.0f, -0.0f, 0.0f, 1e-8f, 60.0f, 100.0f, -60.0f},
           8 * sizeof(float));
    static float e[N], r[N], s[N];
    /* softmax of a scaled row (scores of -100..90 times 0.125: exp over -23.75..0) against the
     * reference's, at lengths with and without vector tails */
    for (int64_t n = 1; n <= N; n += 1366) {
        memcpy(e, x, sizeof x);
        memcpy(r, x, sizeof x);
        set->softmax(e, n, 0.125f, -INFINITY);
        qr_kernels_named("scalar")->softmax(r, n, 0.125f, -INFINITY);
        for (int64_t i = 0; i < n; i++)
            if (!(fabsf(e[i] - r[i]) <= EXP_ULP * 2 * (nextafterf(r[i], INFINITY) - r[i]) + 1e-30f))
                fail_msg("%s softmax n=%lld [%lld] = %.9g, reference %.9g", set->name, (long long)n,
                         (long long)i, (double)e[i], (double)r[i]);
    }
    /* the exp itself: a one-element softmax of {x} is 1; two elements {x, 0} give 1 / (1 +
     * exp(-x)) and exp(-x) / (1 + exp(-x)), checked against libm over -87..88 */
    for (int i = 0; i < N; i += 7) {
        const float xi = x[i] * 0.9f;
        float pair[2] = {xi, 0.0f};
        set->softmax(pair, 2, 1.0f, -INFINITY);
        const double t = (double)xi;
        const double want0 = t >= 0 ? 1.0 / (1.0 + exp(-t)) : exp(t) / (exp(t) + 1.0);
        if (!(fabs(pair[0] - want0) <= 4e-7 * want0 + 1e-37))
            fail_msg("%s softmax{%.9g, 0}[0] = %.9g, want %.9g", set->name, t, (double)pair[0], want0);
        /* a sink: {x} with a sink logit of 0 is the same 1 / (1 + exp(-x)), the sink's share
         * not written anywhere */
        float one = xi;
        set->softmax(&one, 1, 1.0f, 0.0f);
        if (!(fabs(one - want0) <= 4e-7 * want0 + 1e-37))
            fail_msg("%s softmax{%.9g} with sink 0 = %.9g, want %.9g", set->name, t, (double)one,
                     want0);
    }
    /* sinks above and below the row's max, at lengths with vector tails, against the
     * reference: scale, then the sink joins the max and the sum (ggml's soft_max) */
    for (int64_t n = 3; n <= 40; n += 37)
        for (int k = 0; k < 3; k++) {
            const float sink = (float[]){-3.0f, 0.5f, 20.0f}[k];
            memcpy(e, x + 2000, (size_t)n * sizeof *x);
            memcpy(r, x + 2000, (size_t)n * sizeof *x);
            set->softmax(e, n, 0.125f, sink);
            qr_kernels_named("scalar")->softmax(r, n, 0.125f, sink);
            double max = sink, sum = 0.0;
            for (int64_t i = 0; i < n; i++)
                max = fmax(max, (double)(x[2000 + i] * 0.125f));
            for (int64_t i = 0; i < n; i++)
                sum += exp((double)(x[2000 + i] * 0.125f) - max);
            sum += exp((double)sink - max);
            for (int64_t i = 0; i < n; i++) {
                const double want = exp((double)(x[2000 + i] * 0.125f) - max) / sum;
                if (!(fabs(e[i] - r[i]) <= EXP_ULP * 2 * (nextafterf(r[i], INFINITY) - r[i]) +
                                               1e-30f) ||
                    !(fabs(r[i] - want) <= 4e-6 * want + 1e-37)) /* float s - max */
                    fail_msg("%s softmax n=%lld sink %g [%lld] = %.9g, reference %.9g, want %.9g",
                             set->name, (long long)n, (double)sink, (long long)i, (double)e[i],
                             (double)r[i], want);
            }
        }
    memcpy(s, g, sizeof g);
    set->silu_mul(s, u, N);
    for (int i = 0; i < N; i++) {
        const float want = g[i] / (1.0f + expf(-g[i])) * u[i];
        /* a few ulps of the result, or of exp's tiny contribution near 0 */
        if (!(fabsf(s[i] - want) <= 4e-7f * fabsf(want) + 1e-30f))
            fail_msg("%s silu(%.9g) * %.9g = %.9g, libm %.9g", set->name, (double)g[i],
                     (double)u[i], (double)s[i], (double)want);
    }
}

/* The attention row helpers against the reference: rows 1..11 (4-row groups plus leftovers)
 * of lengths 1..300 (64-column blocks, 8-column vectors, scalar tails), rows `stride` apart. */
static void check_rows(const qr_kernels *set) {
    const qr_kernels *ref = qr_kernels_named("scalar");
    enum { N = 300, ROWS = 11, STRIDE = 307 };
    static float q[N], kf[ROWS * STRIDE], a[ROWS], out[N], out_ref[N], d[ROWS], d_ref[ROWS];
    static uint16_t kh[ROWS * STRIDE];
    for (int64_t n = 1; n <= N; n += 37)
        for (int64_t rows = 1; rows <= ROWS; rows += 2) {
            qr_test_fill_random(q, n);
            qr_test_fill_random(kf, ROWS * STRIDE);
            qr_test_fill_random(a, rows);
            for (int64_t i = 0; i < ROWS * STRIDE; i++)
                kh[i] = qr_fp32_to_fp16(kf[i]);
            for (int64_t i = 0; i < n; i++) /* as the forward pass rounds q */
                q[i] = qr_fp16_to_fp32(qr_fp32_to_fp16(q[i]));
            for (int half = 0; half < 2; half++) {
                if (half) { /* one head: the grouped forms' single-head path */
                    set->dot_f16_heads(n, 1, q, kh, STRIDE, rows, d, ROWS);
                    ref->dot_f16_heads(n, 1, q, kh, STRIDE, rows, d_ref, ROWS);
                } else {
                    set->dot_f32(n, q, kf, STRIDE, rows, d);
                    ref->dot_f32(n, q, kf, STRIDE, rows, d_ref);
                }
                for (int64_t r = 0; r < rows; r++) {
                    double mag = 0.0;
                    for (int64_t i = 0; i < n; i++)
                        mag += fabs((double)q[i] * kf[r * STRIDE + i]);
                    if (!(fabs(d[r] - d_ref[r]) <= ROW_REL_TOL * mag + 1e-30))
                        fail_msg("%s dot_%s n=%lld rows=%lld: row %lld = %.9g, reference %.9g",
                                 set->name, half ? "f16" : "f32", (long long)n, (long long)rows,
                                 (long long)r, (double)d[r], (double)d_ref[r]);
                }
                for (int64_t i = 0; i < n; i++)
                    out[i] = out_ref[i] = q[i];
                if (half) {
                    set->axpy_f16_heads(n, 1, a, ROWS, kh, STRIDE, rows, out);
                    ref->axpy_f16_heads(n, 1, a, ROWS, kh, STRIDE, rows, out_ref);
                } else {
                    set->axpy_f32(n, a, kf, STRIDE, rows, out);
                    ref->axpy_f32(n, a, kf, STRIDE, rows, out_ref);
                }
                /* both add the rows in order with one multiply-add each: float rounding of a
                 * fused against a separate multiply at most */
                for (int64_t i = 0; i < n; i++)
                    if (!(fabsf(out[i] - out_ref[i]) <= 1e-6f * (2.0f + fabsf(out_ref[i]))))
                        fail_msg("%s axpy_%s n=%lld rows=%lld: out[%lld] = %.9g, reference %.9g",
                                 set->name, half ? "f16" : "f32", (long long)n, (long long)rows,
                                 (long long)i, (double)out[i], (double)out_ref[i]);
            }
        }
}

/* The grouped-query forms against the reference: 2..9 heads (blocks of 4 and 3 plus
 * leftovers), head sizes with 32-column blocks and tails, rows `stride` apart. */
static void check_heads(const qr_kernels *set) {
    const qr_kernels *ref = qr_kernels_named("scalar");
    enum { MAXN = 160, MAXH = 9, ROWS = 7, STRIDE = 1000, SS = 11 };
    static float q[MAXH * MAXN], kf[ROWS * STRIDE], a[MAXH * SS], out[MAXH * MAXN],
        out_ref[MAXH * MAXN], d[MAXH * SS], d_ref[MAXH * SS];
    static uint16_t kh[ROWS * STRIDE];
    static const int64_t sizes[] = {64, 128, 100, 37, 160};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
        for (int ng = 1; ng <= MAXH; ng++)
            for (int64_t rows = 1; rows <= ROWS; rows += 3) {
                const int64_t n = sizes[si];
                qr_test_fill_random(q, ng * n);
                qr_test_fill_random(kf, ROWS * STRIDE);
                qr_test_fill_random(a, MAXH * SS);
                for (int64_t i = 0; i < ROWS * STRIDE; i++)
                    kh[i] = qr_fp32_to_fp16(kf[i]);
                for (int64_t i = 0; i < ng * n; i++)
                    q[i] = qr_fp16_to_fp32(qr_fp32_to_fp16(q[i]));
                set->dot_f16_heads(n, ng, q, kh, STRIDE, rows, d, SS);
                ref->dot_f16_heads(n, ng, q, kh, STRIDE, rows, d_ref, SS);
                for (int h = 0; h < ng; h++)
                    for (int64_t r = 0; r < rows; r++) {
                        double mag = 0.0;
                        for (int64_t i = 0; i < n; i++)
                            mag += fabs((double)q[h * n + i] * qr_fp16_to_fp32(kh[r * STRIDE + i]));
                        if (!(fabs(d[h * SS + r] - d_ref[h * SS + r]) <= ROW_REL_TOL * mag + 1e-30))
                            fail_msg("%s dot_f16_heads n=%lld ng=%d rows=%lld: [%d][%lld] = %.9g, "
                                     "reference %.9g", set->name, (long long)n, ng, (long long)rows,
                                     h, (long long)r, (double)d[h * SS + r], (double)d_ref[h * SS + r]);
                    }
                for (int64_t i = 0; i < ng * n; i++)
                    out[i] = out_ref[i] = q[i];
                set->axpy_f16_heads(n, ng, a, SS, kh, STRIDE, rows, out);
                ref->axpy_f16_heads(n, ng, a, SS, kh, STRIDE, rows, out_ref);
                for (int64_t i = 0; i < ng * n; i++)
                    if (!(fabsf(out[i] - out_ref[i]) <= 1e-6f * (2.0f + fabsf(out_ref[i]))))
                        fail_msg("%s axpy_f16_heads n=%lld ng=%d rows=%lld: out[%lld] = %.9g, "
                                 "reference %.9g", set->name, (long long)n, ng, (long long)rows,
                                 (long long)i, (double)out[i], (double)out_ref[i]);
            }
}

/* iq4_nl and iq4_xs on random blocks (every nibble, every 6-bit scale, both signs of d) rather
 * than quantised ones: 1, 3, 8 and 17 blocks per row (the 8-block fold of the q8_0 tile and
 * its tail), odd row counts, 1..9 and 17 tokens. The SIMD sets sum each block's (iq4_xs: each
 * superblock's) integer products exactly and add float block terms in another order than the
 * reference, hence GEMM_REL_TOL of the magnitude. */
static void check_iq4(const qr_kernels *set) {
    static const int types[] = {QR_TYPE_IQ4_NL, QR_TYPE_IQ4_XS};
    static const int64_t blocks[] = {1, 3, 8, 17};
    static const int64_t rows[] = {1, 3, 5, 9};
    static const int64_t tokens[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 17};
    const qr_kernels *ref = qr_kernels_named("scalar");
    assert_non_null(ref);
    for (size_t ti = 0; ti < 2; ti++) {
        const int type = types[ti];
        const qr_type_traits *tr = qr_type_traits_get(type);
        assert_non_null(set->gemm[type]);
        assert_true(set->gemm[type] != ref->gemm[type]); /* a SIMD kernel, not the inherited one */
        for (size_t bi = 0; bi < 4; bi++)
            for (size_t ri = 0; ri < 4; ri++) {
                const int64_t n = blocks[bi] * qr_type_block_size(type), nr = rows[ri];
                const size_t row_bytes = qr_type_row_bytes(type, n);
                const size_t bsize = tr->block_bytes;
                const int64_t nblk = nr * (n / qr_type_block_size(type));
                unsigned char *w = malloc(row_bytes * (size_t)nr);
                float *wd = malloc((size_t)(nr * n) * sizeof(float));
                assert_true(w && wd);
                for (size_t i = 0; i < row_bytes * (size_t)nr; i++)
                    w[i] = (unsigned char)(qr_test_frand() * 128.0f + 128.0f);
                for (int64_t b = 0; b < nblk; b++) { /* d first in both block types */
                    const uint16_t d = qr_fp32_to_fp16(qr_test_frand() * (b % 5 == 0 ? 0.001f : 0.05f));
                    memcpy(w + (size_t)b * bsize, &d, sizeof d);
                }
                for (int64_t r = 0; r < nr; r++)
                    tr->to_float(w + (size_t)r * row_bytes, wd + r * n, n);
                for (size_t ki = 0; ki < sizeof tokens / sizeof tokens[0]; ki++) {
                    const int64_t nt = tokens[ki];
                    float *x = malloc((size_t)(nt * n) * sizeof(float));
                    char *act = malloc(qr_act_bytes(type, n, nt));
                    float *y = malloc((size_t)(nr * nt) * sizeof(float));
                    float *y_ref = malloc((size_t)(nr * nt) * sizeof(float));
                    assert_true(x && act && y && y_ref);
                    qr_test_fill_random(x, nt * n);
                    const size_t stride = qr_act_convert(type, x, n, nt, act);
                    set->gemm[type](n, w, row_bytes, act, stride, y, nr, nr, nt);
                    ref->gemm[type](n, w, row_bytes, act, stride, y_ref, nr, nr, nt);
                    for (int64_t t = 0; t < nt; t++)
                        for (int64_t r = 0; r < nr; r++) {
                            double mag = 0.0;
                            for (int64_t i = 0; i < n; i++)
                                mag += fabs((double)wd[r * n + i] * (double)x[t * n + i]);
                            const double diff =
                                fabs((double)y[t * nr + r] - (double)y_ref[t * nr + r]);
                            if (!(diff <= GEMM_REL_TOL * mag + 1e-30))
                                fail_msg("%s %s: n=%lld rows=%lld tokens=%lld: y[%lld][%lld] = "
                                         "%.9g, reference %.9g (|w||x| %.3g)",
                                         set->name, tr->name, (long long)n, (long long)nr,
                                         (long long)nt, (long long)t, (long long)r,
                                         (double)y[t * nr + r], (double)y_ref[t * nr + r], mag);
                        }
                    free(x);
                    free(act);
                    free(y);
                    free(y_ref);
                }
                free(w);
                free(wd);
            }
    }
}

/* mxfp4's packed kernel converts the 16 rows' e8m0 exponents with vector ops: every exponent
 * (row r of 240 has e = r, so e = 0 and 1 are the subnormal scales 2^-128, 2^-127; then 2^-1
 * .. 2^111), random indices, against the reference per row with no absolute floor */
static void check_mxfp4_exponents(const qr_kernels *set) {
    if (!set->gemm_packed[QR_TYPE_MXFP4]) return;
    enum { NR = 240, NB = 3, NT = 5 };
    const int64_t n = NB * 32;
    const size_t rb = qr_type_row_bytes(QR_TYPE_MXFP4, n);
    uint8_t *w = malloc(rb * NR), *pw = malloc(set->packed_row_bytes(QR_TYPE_MXFP4, n) * NR);
    float *x = malloc(sizeof(float) * n * NT), *wd = malloc(sizeof(float) * n * NR);
    float *y = malloc(sizeof(float) * NR * NT), *y_ref = malloc(sizeof(float) * NR * NT);
    char *act = malloc(qr_act_bytes(QR_TYPE_MXFP4, n, NT));
    assert_true(w && pw && x && wd && y && y_ref && act);
    for (size_t i = 0; i < rb * NR; i++) w[i] = (uint8_t)(rand() & 0xFF);
    for (int r = 0; r < NR; r++)
        for (int b = 0; b < NB; b++) w[r * rb + 17 * b] = (uint8_t)r; /* the exponent byte */
    assert_int_equal(qr_dequantize(QR_TYPE_MXFP4, w, wd, n * NR), QR_OK);
    qr_test_fill_random(x, n * NT);
    const size_t stride = qr_act_convert(QR_TYPE_MXFP4, x, n, NT, act);
    set->pack(QR_TYPE_MXFP4, w, n, NR, pw);
    set->gemm_packed[QR_TYPE_MXFP4](n, pw, set->packed_row_bytes(QR_TYPE_MXFP4, n), act, stride, y,
                                    NR, NR, NT);
    qr_kernels_named("scalar")->gemm[QR_TYPE_MXFP4](n, w, rb, act, stride, y_ref, NR, NR, NT);
    for (int t = 0; t < NT; t++)
        for (int r = 0; r < NR; r++) {
            double mag = 0.0;
            for (int64_t i = 0; i < n; i++) mag += fabs((double)wd[r * n + i] * (double)x[t * n + i]);
            const double diff = fabs((double)y[t * NR + r] - (double)y_ref[t * NR + r]);
            if (!(diff <= GEMM_REL_TOL * mag))
                fail_msg("%s mxfp4 packed: e = %d, token %d: %.9g, reference %.9g", set->name, r, t,
                         (double)y[t * NR + r], (double)y_ref[t * NR + r]);
        }
    free(w), free(pw), free(x), free(wd), free(y), free(y_ref), free(act);
}

/* every check of one SIMD set, or a skip naming what this CPU lacks */
static void check_named_set(const char *name, const char *lacks) {
    const qr_kernels *set = qr_kernels_named(name);
    if (!set) {
        print_message("%s kernels: this CPU lacks %s, skipped\n", name, lacks);
        skip();
    }
    check_set(set);
    check_iq4(set);
    check_set_prompt(set);
    check_set_packed(set);
    check_mxfp4_exponents(set);
    check_quant(set);
    check_f16(set);
    check_exp(set);
    check_rows(set);
    check_heads(set);
}

static void test_avx2(void **state) {
    (void)state;
    check_named_set("avx2", "AVX2/FMA/F16C");
}

static void test_avx512(void **state) {
    (void)state;
    check_named_set("avx512", "AVX512-VNNI");
}

/* the scalar set must agree with the traits table it wraps, exactly */
static void test_scalar_is_reference(void **state) {
    (void)state;
    const qr_kernels *ref = qr_kernels_named("scalar");
    assert_non_null(ref);
    assert_string_equal(ref->name, "scalar");
    enum { N = 512 };
    float x[N], wf[N], y = 0.0f, want = 0.0f;
    qr_test_fill_random(x, N);
    qr_test_fill_random(wf, N);
    char w[N * 4], act[N * 4 + 1024];
    for (size_t ti = 0; ti < sizeof weight_types / sizeof weight_types[0]; ti++) {
        const int type = weight_types[ti];
        const qr_type_traits *tr = qr_type_traits_get(type);
        tr->from_float(wf, w, N);
        qr_act_convert(type, x, N, 1, act);
        ref->gemm[type](N, w, 0, act, 0, &y, 1, 1, 1);
        tr->vec_dot(N, &want, w, act);
        assert_memory_equal(&y, &want, sizeof y);
    }
}

/* the chosen set is the widest the CPU has, and names that do not exist give NULL */
static void test_dispatch(void **state) {
    (void)state;
    const qr_kernels *best = qr_kernels_best();
    assert_non_null(best);
    assert_ptr_equal(best, qr_kernels_named(best->name));
    assert_null(qr_kernels_named("avx1024"));
    assert_null(qr_kernels_named(""));
    if (!getenv("QR_KERNELS")) {
        if (qr_kernels_named("avx512"))
            assert_string_equal(best->name, "avx512");
        else if (qr_kernels_named("avx2"))
            assert_string_equal(best->name, "avx2");
        else
            assert_string_equal(best->name, "scalar");
    }
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512vnni")) assert_null(qr_kernels_named("avx512"));
    if (!__builtin_cpu_supports("avx2")) assert_null(qr_kernels_named("avx2"));
#endif
    for (int type = 0; type < QR_TYPE_COUNT; type++)
        if (qr_type_traits_get(type) && qr_type_traits_get(type)->vec_dot)
            assert_non_null(best->gemm[type]);
}

/* qr_matmul_rows over a row range writes exactly those rows, for every token */
static void test_matmul_rows_range(void **state) {
    (void)state;
    enum { N = 256, ROWS = 40, TOKENS = 70 }; /* more tokens than one token block */
    const int type = QR_TYPE_Q4_K;
    const size_t rb = qr_type_row_bytes(type, N);
    float *wf = malloc(sizeof(float) * N * ROWS), *x = malloc(sizeof(float) * N * TOKENS);
    char *w = malloc(rb * ROWS), *act = malloc(qr_act_bytes(type, N, TOKENS));
    float *y = malloc(sizeof(float) * ROWS * TOKENS);
    assert_true(wf && x && w && act && y);
    qr_test_fill_random(wf, N * ROWS);
    qr_test_fill_random(x, N * TOKENS);
    for (int r = 0; r < ROWS; r++)
        qr_type_traits_get(type)->from_float(wf + r * N, w + r * rb, N);
    size_t stride = qr_act_convert(type, x, N, TOKENS, act);
    for (int i = 0; i < ROWS * TOKENS; i++)
        y[i] = NAN;
    qr_matmul_rows(type, w, false, rb, N, act, stride, TOKENS, y, ROWS, 8, 27);
    for (int t = 0; t < TOKENS; t++)
        for (int r = 0; r < ROWS; r++) {
            float v = y[t * ROWS + r];
            if (r < 8 || r >= 27) {
                assert_true(isnan(v));
            } else {
                float want;
                qr_vec_dot_q4_K(N, &want, w + r * rb, act + (size_t)t * stride);
                assert_true(fabsf(v - want) <= 1e-4f * (1.0f + fabsf(want)));
            }
        }
    free(wf);
    free(x);
    free(w);
    free(act);
    free(y);
}

/* chunking: small tasks are not split; large ones give every thread a chunk, and a small
 * product in a large task (k of q, k, v) is split too, but not below a minimum */
static void test_chunk_rows(void **state) {
    (void)state;
    assert_int_equal(qr_matmul_chunk_rows(64, 64, 1, 2, 64 * 64), 64); /* stories260K: one chunk */
    assert_int_equal(qr_matmul_chunk_rows(576, 576, 1, 1, 576 * 576), 576); /* one thread */
    int64_t rows = qr_matmul_chunk_rows(1536, 576, 1, 2, 1536 * 576);
    assert_true(rows % 16 == 0 && (1536 + rows - 1) / rows == 2);
    rows = qr_matmul_chunk_rows(49152, 576, 128, 4, 49152LL * 576 * 128);
    assert_true((49152 + rows - 1) / rows == 4);
    /* smol's k (192 x 576) alone: one chunk; fused with q and v: split, >= 64K MACs a chunk */
    assert_int_equal(qr_matmul_chunk_rows(192, 576, 1, 2, 192 * 576), 192);
    rows = qr_matmul_chunk_rows(192, 576, 1, 2, (576 + 192 + 192) * 576);
    assert_true(rows < 192 && rows % 16 == 0 && rows * 576 >= 64 * 1024);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalar_is_reference),
        cmocka_unit_test(test_dispatch),
        cmocka_unit_test(test_avx2),
        cmocka_unit_test(test_avx512),
        cmocka_unit_test(test_matmul_rows_range),
        cmocka_unit_test(test_chunk_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
