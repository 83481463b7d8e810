/* test_quantize.c - quantisation from f32 against llama.cpp, on ../shared/reference/alltypes.gguf:
 * for each of the 13 types, quantize `source`, dequantize, and compare
 *   - the round-trip RMSE with ggml's (metadata quarrel.source_rmse.<type>): ratio <= 1 + slack;
 *   - the quantized bytes with the `<type>` tensor (ggml's own quantisation): identical.
 * Plus hand-worked small cases and the bad-input errors of qr_quantize. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <math.h>

#include <cmocka.h>

#include "quarrel.h"

static const char *types[] = {"f32",  "f16",  "bf16", "q8_0", "q4_0", "q4_1", "q5_0",
                              "q5_1", "q2_K", "q3_K", "q4_K", "q5_K", "q6_K"};

/* Our RMSE may exceed ggml's by at most this factor: the quantizers follow ggml's reference
 * algorithms, so the ratio is exactly 1; the slack only absorbs last-bit differences in
 * summing the squared errors (double here, and in the generator's numpy). */
#define RMSE_RATIO_SLACK 1.0001

static qr_gguf *open_alltypes(void) {
    qr_gguf *g;
    if (qr_gguf_open(QR_SHARED_DIR "/reference/alltypes.gguf", &g) != QR_OK)
        fail_msg("%s", qr_last_error());
    return g;
}

static void test_alltypes_rmse_and_bytes(void **state) {
    (void)state;
    qr_gguf *g = open_alltypes();
    const qr_gguf_tensor *src = qr_gguf_find_tensor(g, "source");
    assert_non_null(src);
    assert_int_equal(src->type, QR_TYPE_F32);
    const int64_t n = src->ne[0] * src->ne[1];
    float *x = malloc((size_t)n * sizeof(float)), *back = malloc((size_t)n * sizeof(float));
    void *q = malloc((size_t)n * 4);
    assert_non_null(x);
    assert_non_null(back);
    assert_non_null(q);
    memcpy(x, src->data, (size_t)n * sizeof(float));
    int n_failed = 0;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        const int type = qr_type_from_name(types[i]);
        const qr_gguf_tensor *ref = qr_gguf_find_tensor(g, types[i]);
        assert_non_null(ref);
        assert_int_equal(ref->type, type);
        char key[96];
        snprintf(key, sizeof key, "quarrel.source_rmse.%s", types[i]);
        float ref_rmse;
        assert_true(qr_gguf_get_f32(g, key, &ref_rmse));

        /* quantize row by row, as a model file is */
        const size_t row_bytes = qr_type_row_bytes(type, src->ne[0]);
        assert_int_equal(row_bytes * (size_t)src->ne[1], ref->nbytes);
        for (int64_t r = 0; r < src->ne[1]; r++) {
            if (qr_quantize(type, x + r * src->ne[0], (char *)q + r * row_bytes, src->ne[0]))
                fail_msg("%s: %s", types[i], qr_last_error());
        }
        if (qr_dequantize(type, q, back, n) != QR_OK) fail_msg("%s: %s", types[i], qr_last_error());
        double se = 0;
        for (int64_t j = 0; j < n; j++)
            se += ((double)back[j] - x[j]) * ((double)back[j] - x[j]);
        const double rmse = sqrt(se / (double)n);
        const double ratio = ref_rmse > 0 ? rmse / ref_rmse : (rmse == 0 ? 1.0 : INFINITY);

        size_t n_diff = 0, first = 0;
        for (size_t b = ref->nbytes; b-- > 0;)
            if (((const uint8_t *)q)[b] != ((const uint8_t *)ref->data)[b]) n_diff++, first = b;
        printf("  %-5s rmse %.6g  ggml %.6g  ratio %.6f  bytes %s", types[i], rmse, ref_rmse, ratio,
               n_diff ? "DIFFER" : "identical");
        if (n_diff) printf(" (%zu of %zu, first at %zu)", n_diff, ref->nbytes, first);
        printf("\n");
        if (!(ratio <= RMSE_RATIO_SLACK) || n_diff) n_failed++;
    }
    free(x);
    free(back);
    free(q);
    qr_gguf_free(g);
    assert_int_equal(n_failed, 0);
}

/* Hand-worked q4_0 block: values -8..7 times 0.5 with the most negative -4 as the absmax:
 * d = -4 / -8 = 0.5, q = x/0.5 + 8 -> 0..15 exactly, and the round trip is exact. */
static void test_q4_0_by_hand(void **state) {
    (void)state;
    float x[32], back[32];
    for (int j = 0; j < 32; j++)
        x[j] = 0.5f * (float)((j % 16) - 8);
    uint8_t q[18];
    assert_int_equal(qr_quantize(QR_TYPE_Q4_0, x, q, 32), QR_OK);
    assert_int_equal(q[0] | q[1] << 8, 0x3800); /* 0.5 as f16 */
    for (int j = 0; j < 16; j++)
        assert_int_equal(q[2 + j], j | j << 4);
    assert_int_equal(qr_dequantize(QR_TYPE_Q4_0, q, back, 32), QR_OK);
    for (int j = 0; j < 32; j++)
        assert_true(back[j] == x[j]);
}

/* Hand-worked q4_1 block: 0..15 plus 1: min 1, d = 15/15 = 1, q = x - 1. */
static void test_q4_1_by_hand(void **state) {
    (void)state;
    float x[32];
    for (int j = 0; j < 32; j++)
        x[j] = (float)(j % 16) + 1.0f;
    uint8_t q[20];
    assert_int_equal(qr_quantize(QR_TYPE_Q4_1, x, q, 32), QR_OK);
    assert_int_equal(q[0] | q[1] << 8, 0x3c00); /* d = 1.0 */
    assert_int_equal(q[2] | q[3] << 8, 0x3c00); /* m = 1.0 */
    for (int j = 0; j < 16; j++)
        assert_int_equal(q[4 + j], j | j << 4);
}

/* All-zero input: every type gives a zero block that dequantizes to exact zeros. */
static void test_zeros(void **state) {
    (void)state;
    float x[256] = {0}, back[256];
    uint8_t q[256 * 4];
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        const int type = qr_type_from_name(types[i]);
        assert_int_equal(qr_quantize(type, x, q, 256), QR_OK);
        assert_int_equal(qr_dequantize(type, q, back, 256), QR_OK);
        for (int j = 0; j < 256; j++)
            if (back[j] != 0.0f) fail_msg("%s element %d: %g", types[i], j, back[j]);
    }
}

/* A ramp from -1 to 1 over 256 values (step 2/255): the legacy types round each value to the
 * nearest level of their block grid, so the error bound follows by hand. Blocks of 32 span
 * 0.243: q4_1/q5_1 err <= d/2, d = 0.243/15 (/31) (5% for the f16 d and m); q4_0/q5_0 have
 * d <= 1/8 (1/16) and the clamped top level costs up to d; q8_0 err <= d/2 = 1/254. (The
 * k-quants' weighted scale/min search gives no such simple bound: their bytes are checked
 * against ggml above.) */
static void test_ramp_error_bound(void **state) {
    (void)state;
    struct {
        int type;
        double max_abs_err;
    } cases[] = {
        {QR_TYPE_Q4_0, 0.125},         {QR_TYPE_Q4_1, 0.243 / 15 / 2 * 1.05},
        {QR_TYPE_Q5_0, 0.0625},        {QR_TYPE_Q5_1, 0.243 / 31 / 2 * 1.05},
        {QR_TYPE_Q8_0, 1.0 / 127 / 2},
    };
    float x[256], back[256];
    uint8_t q[256 * 4];
    for (int j = 0; j < 256; j++)
        x[j] = -1.0f + 2.0f * (float)j / 255.0f;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(qr_quantize(cases[i].type, x, q, 256), QR_OK);
        assert_int_equal(qr_dequantize(cases[i].type, q, back, 256), QR_OK);
        double worst = 0;
        for (int j = 0; j < 256; j++)
            worst = fmax(worst, fabs((double)back[j] - x[j]));
        if (worst > cases[i].max_abs_err)
            fail_msg("%s: max error %g > %g", qr_type_name(cases[i].type), worst,
                     cases[i].max_abs_err);
    }
}

static void test_bad_input(void **state) {
    (void)state;
    float x[256] = {0};
    uint8_t q[1024];
    assert_int_equal(qr_quantize(QR_TYPE_Q4_K, x, q, 100), QR_ERR_INVALID_ARG);
    assert_non_null(strstr(qr_last_error(), "block size 256"));
    assert_int_equal(qr_quantize(QR_TYPE_Q5_0, x, q, 33), QR_ERR_INVALID_ARG);
    assert_non_null(strstr(qr_last_error(), "q5_0 block size 32"));
    assert_int_equal(qr_quantize(5, x, q, 32), QR_ERR_UNSUPPORTED);
    assert_non_null(strstr(qr_last_error(), "unknown tensor type 5"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alltypes_rmse_and_bytes),
        cmocka_unit_test(test_q4_0_by_hand),
        cmocka_unit_test(test_q4_1_by_hand),
        cmocka_unit_test(test_zeros),
        cmocka_unit_test(test_ramp_error_bound),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
