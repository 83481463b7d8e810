/* test_attn_quant.c - the attention row kernels for KV caches of any type (kernels/
 * attn_quant.h): each SIMD set against the scalar reference set, which is built on the types'
 * reference dot products and dequantisations. Rows of random values quantized by the types'
 * reference quantizers, queries converted to each K type's dot partner as the forward pass
 * does; head sizes 32 to 256 (1 to 8 blocks), 7 rows (the kernels' four-row groups and a
 * remainder), 1 to 3 queries sharing the rows; V rows added into several heads' accumulators;
 * the Walsh-Hadamard rotation. */
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

#include "kernels/attn_quant.h"
#include "tensor/tensor.h"
#include "util/util.h"

/* dot products: |simd - reference| <= DOT_REL_TOL * sum_i |k_i| |q_i| (dequantized values): the
 * integer block sums are exact in both, the float sum of the blocks runs in another order */
#define DOT_REL_TOL 1e-5
/* to_float and the f32 accumulators are exact (one rounding each, as the scalar fmaf); the f16
 * accumulator rounds the same fused result to f16 in both */

static const int kv_types[] = {QR_TYPE_F32,  QR_TYPE_F16,  QR_TYPE_BF16,
                               QR_TYPE_Q8_0, QR_TYPE_Q4_0, QR_TYPE_Q4_1,
                               QR_TYPE_Q5_0, QR_TYPE_Q5_1, QR_TYPE_IQ4_NL};

static float frand(void) {
    return (float)rand() / (float)RAND_MAX * 2.0f - 1.0f;
}

static void check_set(const qr_attn_kernels *set, const qr_attn_kernels *ref) {
    enum { ROWS = 7, MAXN = 256, NG = 3 };
    for (size_t ti = 0; ti < sizeof kv_types / sizeof *kv_types; ti++) {
        const int type = kv_types[ti];
        const qr_type_traits *tt = qr_type_traits_get(type);
        const qr_type_traits *pt = qr_type_traits_get(tt->vec_dot_type);
        for (int64_t n = 32; n <= MAXN; n += 32) {
            const size_t k_bytes = (size_t)(n / tt->block_size) * tt->block_bytes;
            const size_t q_bytes = (size_t)(n / pt->block_size) * pt->block_bytes;
            float x[ROWS][MAXN], qf[NG][MAXN], kf[ROWS][MAXN];
            char *k = malloc(ROWS * k_bytes), *q = malloc(NG * q_bytes);
            assert_true(k && q);
            for (int r = 0; r < ROWS; r++) {
                for (int64_t i = 0; i < n; i++)
                    x[r][i] = frand() * (float)(r + 1);
                tt->from_float(x[r], k + r * k_bytes, n);
                tt->to_float(k + r * k_bytes, kf[r], n);
            }
            for (int h = 0; h < NG; h++) {
                for (int64_t i = 0; i < n; i++)
                    qf[h][i] = frand();
                pt->from_float(qf[h], q + h * q_bytes, n);
            }
            for (int ng = 1; ng <= NG; ng++) {
                float got[NG][ROWS], want[NG][ROWS];
                set->dot[type](n, ng, q, q_bytes, k, k_bytes, ROWS, &got[0][0], ROWS);
                ref->dot[type](n, ng, q, q_bytes, k, k_bytes, ROWS, &want[0][0], ROWS);
                for (int h = 0; h < ng; h++)
                    for (int r = 0; r < ROWS; r++) {
                        double mag = 0.0;
                        for (int64_t i = 0; i < n; i++)
                            mag += fabs(kf[r][i] * qf[h][i]);
                        if (!(fabs(got[h][r] - want[h][r]) <= DOT_REL_TOL * mag + 1e-30))
                            fail_msg("%s dot %s n=%lld ng=%d [%d][%d]: %.9g, reference %.9g",
                                     set->name, tt->name, (long long)n, ng, h, r, got[h][r],
                                     want[h][r]);
                    }
            }
            float vf[MAXN], vref[MAXN];
            set->to_float[type](k, vf, n);
            ref->to_float[type](k, vref, n);
            if (memcmp(vf, vref, (size_t)n * sizeof(float)))
                fail_msg("%s to_float %s n=%lld differs from the reference", set->name, tt->name,
                         (long long)n);
            /* v_mad_rows: exact, the same operations on the same converted values; one row
             * with a new maximum (a rescale) for each head */
            for (int ng = 1; ng <= NG; ng++) {
                float acc[NG][MAXN], acc_ref[NG][MAXN], w[NG][ROWS], ms[NG][ROWS];
                for (int h = 0; h < NG; h++) {
                    for (int64_t i = 0; i < n; i++)
                        acc[h][i] = acc_ref[h][i] = frand();
                    for (int r = 0; r < ROWS; r++) {
                        w[h][r] = frand();
                        ms[h][r] = r == 2 + h ? 0.375f : 1.0f;
                    }
                }
                set->v_mad_rows[type](n, ng, k, k_bytes, ROWS, &w[0][0], &ms[0][0], ROWS,
                                      &acc[0][0], MAXN);
                ref->v_mad_rows[type](n, ng, k, k_bytes, ROWS, &w[0][0], &ms[0][0], ROWS,
                                      &acc_ref[0][0], MAXN);
                if (memcmp(acc, acc_ref, sizeof acc))
                    fail_msg("%s v_mad_rows %s n=%lld ng=%d differs from the reference", set->name,
                             tt->name, (long long)n, ng);
            }
            free(k);
            free(q);
        }
    }
    /* accumulators, with odd lengths for the tails */
    for (int64_t n = 1; n <= 67; n += 11) {
        float y[80], y_ref[80], x[80];
        uint16_t h[80], h_ref[80], hx[80];
        for (int64_t i = 0; i < n; i++) {
            x[i] = frand();
            y[i] = y_ref[i] = frand();
            hx[i] = qr_fp32_to_fp16(frand());
            h[i] = h_ref[i] = qr_fp32_to_fp16(frand());
        }
        set->mad_f32(n, y, x, 0.37f);
        ref->mad_f32(n, y_ref, x, 0.37f);
        set->scale_f32(n, y, 0.91f);
        ref->scale_f32(n, y_ref, 0.91f);
        set->mad_f16(n, h, hx, 0.37f);
        ref->mad_f16(n, h_ref, hx, 0.37f);
        set->scale_f16(n, h, 0.91f);
        ref->scale_f16(n, h_ref, 0.91f);
        if (memcmp(y, y_ref, (size_t)n * sizeof *y) || memcmp(h, h_ref, (size_t)n * sizeof *h))
            fail_msg("%s accumulators n=%lld differ from the reference", set->name, (long long)n);
    }
    /* the Walsh-Hadamard rotation: bit for bit, for every power-of-two length up to 256 */
    for (int64_t len = 1; len <= 256; len *= 2) {
        float x[512], x_ref[512];
        for (int i = 0; i < 512; i++)
            x[i] = x_ref[i] = frand();
        set->fwht(x, 512, len);
        qr_attn_fwht(x_ref, 512, len);
        if (memcmp(x, x_ref, sizeof x))
            fail_msg("%s fwht len %lld differs from the reference", set->name, (long long)len);
    }
}

/* The rotation itself: H * H = I (llama.cpp's matrix is symmetric and orthonormal), and a unit
 * vector goes to the matrix's column: all entries +-1/sqrt(len), the first row all positive. */
static void test_fwht(void **state) {
    (void)state;
    float e[64] = {0}, x[64], y[64];
    e[5] = 1.0f;
    qr_attn_fwht(e, 64, 64);
    for (int i = 0; i < 64; i++)
        assert_float_equal(fabsf(e[i]), 0.125f, 0.0f);
    assert_float_equal(e[0], 0.125f, 0.0f);
    for (int i = 0; i < 64; i++)
        x[i] = y[i] = frand();
    qr_attn_fwht(y, 64, 64);
    qr_attn_fwht(y, 64, 64);
    for (int i = 0; i < 64; i++)
        assert_float_equal(y[i], x[i], 1e-6);
}

static void test_sets(void **state) {
    (void)state;
    srand(23);
    const qr_attn_kernels *ref = qr_attn_kernels_named("scalar");
    assert_non_null(ref);
    const qr_attn_kernels *avx2 = qr_attn_kernels_named("avx2");
    if (avx2)
        check_set(avx2, ref);
    else
        print_message("no AVX2 on this CPU: only the scalar set\n");
    assert_null(qr_attn_kernels_named("neon"));
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_fwht), cmocka_unit_test(test_sets)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
