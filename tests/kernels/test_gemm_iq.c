/* test_gemm_iq.c - the SIMD gemm kernels of iq2_xxs, iq2_xs, iq2_s, iq3_xxs, iq3_s, iq1_s,
 * iq1_m, tq1_0, tq2_0 and mxfp4 (kernels/gemm_x86_iq.h) against the scalar set (the reference
 * dot products of tensor/vec_dot_iq.c), for each SIMD set this CPU has.
 *
 * Tolerance: none. Both sum the same integers within a super-block (mxfp4: a block), in
 * different orders, which integers do not see, then evaluate the same float expressions in the
 * same order, so the outputs must be equal bit for bit.
 *
 * Data: random blocks (every byte random, so every grid index, sign pattern and scale occurs;
 * the float scale set to a finite random value of either sign) and extreme blocks (every
 * byte 0x00, every byte 0xFF: the largest grid indices and scales, alternating 0x00 / 0xFF /
 * 0x55 / 0xAA), against random activations and against activations at the q8 extremes
 * (+-127 everywhere). Sizes: 1, 2, 3, 7 and 33 super-blocks (33: longer than the prompt
 * path's scratch row, IQ_ROW_MAX) (mxfp4: 1, 3, 4, 5, 8 and 17 blocks,
 * its 4-block fold and tail), 1, 2 and 5 rows, 1..9 and 17 tokens (4-token tiles and the
 * leftovers; 8 and more: the prompt path that decodes a row once for all tokens). */
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
#include "tensor/blocks.h"
#include "tensor/tensor.h"
#include "test_util.h"

static const int iq_types[] = {QR_TYPE_IQ2_XXS, QR_TYPE_IQ2_XS, QR_TYPE_IQ2_S, QR_TYPE_IQ3_XXS,
                               QR_TYPE_IQ3_S,   QR_TYPE_IQ1_S,  QR_TYPE_IQ1_M, QR_TYPE_TQ1_0,
                               QR_TYPE_TQ2_0,   QR_TYPE_MXFP4};
#define N_TYPES (sizeof iq_types / sizeof iq_types[0])

enum { FILL_RANDOM, FILL_ZERO, FILL_ONES, FILL_ALTERNATE, N_FILLS };

/* Sets the block's float scale to the f16 `d` (mxfp4: the exponent byte to e), wherever the
 * type keeps it. */
static void set_scale(int type, unsigned char *blk, uint16_t d, uint8_t e) {
    switch (type) {
    case QR_TYPE_TQ1_0:
        memcpy(blk + offsetof(block_tq1_0, d), &d, 2);
        break;
    case QR_TYPE_TQ2_0:
        memcpy(blk + offsetof(block_tq2_0, d), &d, 2);
        break;
    case QR_TYPE_MXFP4:
        blk[0] = e;
        break;
    case QR_TYPE_IQ1_M: /* the top nibble of scale u16 k holds bits 4k..4k+3 of d */
        for (int k = 0; k < 4; k++) {
            unsigned char *s = blk + offsetof(block_iq1_m, scales) + 2 * k;
            s[1] = (unsigned char)((s[1] & 0x0F) | (((d >> (4 * k)) & 15) << 4));
        }
        break;
    default: /* d first */
        memcpy(blk, &d, 2);
        break;
    }
}

static void fill_weights(int type, unsigned char *w, size_t bytes, int fill) {
    const size_t bsize = qr_type_traits_get(type)->block_bytes;
    for (size_t i = 0; i < bytes; i++)
        w[i] = fill == FILL_RANDOM ? (unsigned char)(qr_test_frand() * 128.0f + 128.0f)
               : fill == FILL_ZERO ? 0x00
               : fill == FILL_ONES ? 0xFF
                                   : (unsigned char[]){0x00, 0xFF, 0x55, 0xAA}[(i / 7) % 4];
    for (size_t b = 0; b < bytes / bsize; b++) {
        const float d = fill == FILL_RANDOM ? qr_test_frand() * (b % 5 == 0 ? 0.001f : 0.05f)
                                            : (b % 2 ? -0.03f : 0.03f);
        const uint8_t e = fill == FILL_RANDOM ? (uint8_t)(112 + (int)(qr_test_frand() * 12.0f))
                          : fill == FILL_ZERO ? (uint8_t)(b % 3) /* subnormal scales */
                                              : (uint8_t)(120 + b % 16);
        set_scale(type, w + b * bsize, qr_fp32_to_fp16(d), e);
    }
}

static void check_type(const qr_kernels *set, const qr_kernels *ref, int type) {
    static const int64_t sbs[] = {1, 2, 3, 7, 33}; /* 33: past the row scratch */
    static const int64_t mx_blocks[] = {1, 3, 4, 5, 8, 17};
    static const int64_t rows[] = {1, 2, 5, 16, 35};
    static const int64_t tokens[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 17};
    const qr_type_traits *tr = qr_type_traits_get(type);
    assert_non_null(set->gemm[type]);
    assert_true(set->gemm[type] != ref->gemm[type]); /* a SIMD kernel, not the inherited one */
    const bool mx = type == QR_TYPE_MXFP4;
    const size_t n_sizes = mx ? sizeof mx_blocks / sizeof mx_blocks[0] : sizeof sbs / sizeof sbs[0];
    for (size_t si = 0; si < n_sizes; si++)
        for (size_t ri = 0; ri < sizeof rows / sizeof rows[0]; ri++)
            for (int fill = 0; fill < N_FILLS; fill++) {
                const int64_t n = mx ? mx_blocks[si] * 32 : sbs[si] * 256, nr = rows[ri];
                const size_t row_bytes = qr_type_row_bytes(type, n);
                unsigned char *w = malloc(row_bytes * (size_t)nr);
                assert_non_null(w);
                fill_weights(type, w, row_bytes * (size_t)nr, fill);
                for (size_t ki = 0; ki < sizeof tokens / sizeof tokens[0]; ki++)
                    for (int act_extreme = 0; act_extreme < 2; act_extreme++) {
                        const int64_t nt = tokens[ki];
                        float *x = malloc((size_t)(nt * n) * sizeof(float));
                        char *act = malloc(qr_act_bytes(type, n, nt));
                        float *y = malloc((size_t)(nr * nt) * sizeof(float));
                        float *y_ref = malloc((size_t)(nr * nt) * sizeof(float));
                        assert_true(x && act && y && y_ref);
                        qr_test_fill_random(x, nt * n);
                        if (act_extreme) /* every quant +-127 */
                            for (int64_t i = 0; i < nt * n; i++)
                                x[i] = x[i] < 0.0f ? -1.0f : 1.0f;
                        const size_t stride = qr_act_convert(type, x, n, nt, act);
                        set->gemm[type](n, w, row_bytes, act, stride, y, nr, nr, nt);
                        ref->gemm[type](n, w, row_bytes, act, stride, y_ref, nr, nr, nt);
                        for (int64_t i = 0; i < nr * nt; i++)
                            if (memcmp(&y[i], &y_ref[i], sizeof(float)) != 0 || isnan(y[i]))
                                fail_msg("%s %s: n=%lld rows=%lld tokens=%lld fill %d act %d: "
                                         "y[%lld][%lld] = %.9g, reference %.9g",
                                         set->name, tr->name, (long long)n, (long long)nr,
                                         (long long)nt, fill, act_extreme, (long long)(i / nr),
                                         (long long)(i % nr), (double)y[i], (double)y_ref[i]);
                        free(x);
                        free(act);
                        free(y);
                        free(y_ref);
                    }
                free(w);
            }
}

static void check_named_set(const char *name, const char *lacks) {
    const qr_kernels *set = qr_kernels_named(name);
    if (!set) {
        print_message("%s kernels: this CPU lacks %s, skipped\n", name, lacks);
        skip();
    }
    const qr_kernels *ref = qr_kernels_named("scalar");
    assert_non_null(ref);
    for (size_t k = 0; k < N_TYPES; k++)
        check_type(set, ref, iq_types[k]);
}

static void test_avx2(void **state) {
    (void)state;
    check_named_set("avx2", "AVX2/FMA/F16C");
}

static void test_avx512(void **state) {
    (void)state;
    check_named_set("avx512", "AVX512-VNNI");
}

/* the test itself can fail: a weight byte changed after the reference run shows */
static void test_detects_difference(void **state) {
    (void)state;
    const qr_kernels *set = qr_kernels_best();
    const qr_kernels *ref = qr_kernels_named("scalar");
    const int type = QR_TYPE_IQ3_S;
    const int64_t n = 256;
    const size_t rb = qr_type_row_bytes(type, n);
    unsigned char w[256];
    float x[256], y, y_ref;
    char act[2048];
    assert_true(rb <= sizeof w && qr_act_bytes(type, n, 1) <= sizeof act);
    fill_weights(type, w, rb, FILL_RANDOM);
    qr_test_fill_random(x, n);
    x[0] = 8.0f; /* the largest: its quant is 127 */
    qr_act_convert(type, x, n, 1, act);
    ref->gemm[type](n, w, rb, act, 0, &y_ref, 1, 1, 1);
    w[offsetof(block_iq3_s, signs)] ^= 1; /* flip one weight's sign */
    set->gemm[type](n, w, rb, act, 0, &y, 1, 1, 1);
    assert_true(memcmp(&y, &y_ref, sizeof y) != 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_avx2),
        cmocka_unit_test(test_avx512),
        cmocka_unit_test(test_detects_difference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
