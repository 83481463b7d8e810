/* test_matmul_iq.c - the dot products and matrix products of the IQ family, ternary and mxfp4
 * (tensor/vec_dot_iq.c): over the 12 rows of each `<type>` tensor of
 * ../shared/reference/alltypes-iq.gguf (ggml's quantisation; see reference/README.md) and
 * random activation rows converted as the forward pass does (qr_act_convert: q8_K, or q8_0 for
 * iq4_nl and mxfp4), the dot product equals the double-precision dot of the dequantised weight
 * row with the dequantised activation row within DOT_REL_TOL; the scalar set's gemm equals the
 * dot exactly; qr_matmul_rows on a 3-token batch over odd row ranges agrees with it; nothing
 * offers to repack these types. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <float.h>
#include <math.h>

#include <cmocka.h>

#include "kernels/kernels.h"
#include "kernels/matmul.h"
#include "quarrel.h"
#include "test_util.h"
#include "tensor/tensor.h"

/* |dot - exact| <= DOT_REL_TOL(n_blocks) * sum_i |w_i| |x_i|, w and x dequantised. The
 * integer sums within a block are exact in both, so the difference is float rounding only
 * (unit roundoff u = FLT_EPSILON / 2): the dequantised weights carry up to 4 roundings each
 * (e.g. iq2's (d * (0.5 + s)) * 0.25 * grid), the activations 1 (d * q), the dot's block term
 * up to 3 (d_w * d_x, * scale, * sum) and its float accumulation one per block. So the error
 * is at most about (8 + n_blocks) u of the magnitude; the tolerance allows twice that. */
#define DOT_REL_TOL(n_blocks) ((8.0 + (double)(n_blocks)) * FLT_EPSILON)
/* qr_matmul_rows runs the chosen set's kernel: iq4_nl's and iq4_xs's SIMD ones add float block
 * terms in another order (the other types' are exact, test_gemm_iq.c) */
#define GEMM_REL_TOL 1e-5

static const struct {
    const char *name;
    int type;
    int act_type; /* ggml's vec_dot_type (ggml-cpu.c type_traits_cpu) */
} iq_types[] = {
    {"iq2_xxs", QR_TYPE_IQ2_XXS, QR_TYPE_Q8_K}, {"iq2_xs", QR_TYPE_IQ2_XS, QR_TYPE_Q8_K},
    {"iq2_s", QR_TYPE_IQ2_S, QR_TYPE_Q8_K},     {"iq3_xxs", QR_TYPE_IQ3_XXS, QR_TYPE_Q8_K},
    {"iq3_s", QR_TYPE_IQ3_S, QR_TYPE_Q8_K},     {"iq1_s", QR_TYPE_IQ1_S, QR_TYPE_Q8_K},
    {"iq1_m", QR_TYPE_IQ1_M, QR_TYPE_Q8_K},     {"iq4_nl", QR_TYPE_IQ4_NL, QR_TYPE_Q8_0},
    {"iq4_xs", QR_TYPE_IQ4_XS, QR_TYPE_Q8_K},   {"tq1_0", QR_TYPE_TQ1_0, QR_TYPE_Q8_K},
    {"tq2_0", QR_TYPE_TQ2_0, QR_TYPE_Q8_K},     {"mxfp4", QR_TYPE_MXFP4, QR_TYPE_Q8_0},
};
#define N_IQ (sizeof iq_types / sizeof iq_types[0])
#define N_TOKENS 3

static void test_traits(void **state) {
    (void)state;
    for (size_t k = 0; k < N_IQ; k++) {
        const qr_type_traits *tr = qr_type_traits_get(iq_types[k].type);
        assert_non_null(tr);
        assert_non_null(tr->vec_dot);
        assert_int_equal(tr->vec_dot_type, iq_types[k].act_type);
        assert_true(qr_matmul_supports(iq_types[k].type));
        /* iq4_nl and mxfp4 have a repacked layout in both SIMD sets, iq4_xs with VNNI (the
         * avx512 set); the others none: the loader must keep their rows as they are */
        const int t = iq_types[k].type;
        const char *best = qr_kernels_best()->name;
        const bool packs =
            ((t == QR_TYPE_IQ4_NL || t == QR_TYPE_MXFP4) && strcmp(best, "scalar") != 0) ||
            (t == QR_TYPE_IQ4_XS && strcmp(best, "avx512") == 0);
        assert_int_equal(qr_matmul_can_pack(t, 512, 64), packs);
    }
}

static void test_dot_and_gemm(void **state) {
    (void)state;
    qr_gguf *g;
    if (qr_gguf_open(QR_SHARED_DIR "/reference/alltypes-iq.gguf", &g) != QR_OK)
        fail_msg("%s", qr_last_error());
    const qr_kernels *scalar = qr_kernels_named("scalar");
    assert_non_null(scalar);
    for (size_t k = 0; k < N_IQ; k++) {
        const int type = iq_types[k].type;
        const qr_type_traits *tr = qr_type_traits_get(type);
        const qr_gguf_tensor *t = qr_gguf_find_tensor(g, iq_types[k].name);
        if (!t) fail_msg("%s: tensor missing", iq_types[k].name);
        assert_int_equal(t->type, type);
        const int64_t n = t->ne[0], nr = t->ne[1];
        const size_t rb = qr_type_row_bytes(type, n);
        const int64_t n_blocks = n / qr_type_block_size(type);
        float *wd = malloc(sizeof(float) * (size_t)(n * nr));
        float *x = malloc(sizeof(float) * (size_t)(n * N_TOKENS));
        float *xd = malloc(sizeof(float) * (size_t)(n * N_TOKENS));
        char *act = malloc(qr_act_bytes(type, n, N_TOKENS));
        float *dots = malloc(sizeof(float) * (size_t)(nr * N_TOKENS));
        float *y = malloc(sizeof(float) * (size_t)(nr * N_TOKENS));
        assert_true(wd && x && xd && act && dots && y);
        if (qr_dequantize(type, t->data, wd, n * nr) != QR_OK) fail_msg("%s", qr_last_error());
        qr_test_fill_random(x, n * N_TOKENS);
        const size_t stride = qr_act_convert(type, x, n, N_TOKENS, act);
        for (int64_t tk = 0; tk < N_TOKENS; tk++)
            if (qr_dequantize(iq_types[k].act_type, act + (size_t)tk * stride, xd + tk * n, n))
                fail_msg("%s", qr_last_error());

        /* the dot product against the exact dot of what the two rows hold */
        for (int64_t r = 0; r < nr; r++)
            for (int64_t tk = 0; tk < N_TOKENS; tk++) {
                const float *w_row = wd + r * n, *x_row = xd + tk * n;
                double exact = 0.0, mag = 0.0;
                for (int64_t i = 0; i < n; i++) {
                    exact += (double)w_row[i] * (double)x_row[i];
                    mag += fabs((double)w_row[i] * (double)x_row[i]);
                }
                float got;
                tr->vec_dot(n, &got, (const char *)t->data + (size_t)r * rb,
                            act + (size_t)tk * stride);
                dots[tk * nr + r] = got;
                const double tol = DOT_REL_TOL(n_blocks) * mag;
                if (!(fabs((double)got - exact) <= tol))
                    fail_msg("%s row %lld token %lld: dot %.9g, exact %.9g (diff %.3g > %.3g)",
                             iq_types[k].name, (long long)r, (long long)tk, (double)got, exact,
                             fabs((double)got - exact), tol);
            }

        /* the scalar set's gemm is the dot, bit for bit, over all rows and tokens */
        scalar->gemm[type](n, t->data, rb, act, stride, y, nr, nr, N_TOKENS);
        assert_memory_equal(y, dots, sizeof(float) * (size_t)(nr * N_TOKENS));

        /* qr_matmul_rows (the chosen set) over odd row ranges writes those rows only */
        static const int64_t ranges[][2] = {{0, 12}, {1, 6}, {3, 4}, {0, 11}};
        for (size_t q = 0; q < sizeof ranges / sizeof ranges[0]; q++) {
            const int64_t r0 = ranges[q][0], r1 = ranges[q][1];
            for (int64_t i = 0; i < nr * N_TOKENS; i++)
                y[i] = -12345.0f;
            qr_matmul_rows(type, t->data, false, rb, n, act, stride, N_TOKENS, y, nr, r0, r1);
            for (int64_t tk = 0; tk < N_TOKENS; tk++)
                for (int64_t r = 0; r < nr; r++) {
                    const float got = y[tk * nr + r], want = dots[tk * nr + r];
                    if (r < r0 || r >= r1) {
                        assert_true(got == -12345.0f);
                        continue;
                    }
                    double mag = 0.0;
                    for (int64_t i = 0; i < n; i++)
                        mag += fabs((double)wd[r * n + i] * (double)xd[tk * n + i]);
                    if (!(fabs((double)got - (double)want) <= GEMM_REL_TOL * mag))
                        fail_msg("%s rows [%lld, %lld) row %lld token %lld: %.9g, dot %.9g",
                                 iq_types[k].name, (long long)r0, (long long)r1, (long long)r,
                                 (long long)tk, (double)got, (double)want);
                }
        }
        free(wd);
        free(x);
        free(xd);
        free(act);
        free(dots);
        free(y);
    }
    qr_gguf_free(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_traits),
        cmocka_unit_test(test_dot_and_gemm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
