/* test_quantize_iq.c - quantisation to iq4_nl, iq4_xs, tq1_0, tq2_0 and mxfp4 against ggml, on
 * ../shared/reference/alltypes-iq.gguf: quantizing `source` (12 rows x 512) with the `imatrix`
 * tensor gives `<type>` (ggml_quantize_chunk's bytes) byte for byte, without it
 * `<type>.noimatrix` for iq4_nl and iq4_xs (the others ignore the importance: `<type>` again),
 * and the round-trip RMSE equals ggml's (quarrel.source_rmse.<type>). Plus hand-worked blocks,
 * the grid types' refusal and the bad-input errors of qr_quantize_rows. */
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

static const struct {
    const char *name;
    int type;
    int uses_importance;
} types[] = {
    {"iq4_nl", QR_TYPE_IQ4_NL, 1}, {"iq4_xs", QR_TYPE_IQ4_XS, 1}, {"tq1_0", QR_TYPE_TQ1_0, 0},
    {"tq2_0", QR_TYPE_TQ2_0, 0},   {"mxfp4", QR_TYPE_MXFP4, 0},
};
#define N_TYPES (sizeof types / sizeof types[0])

/* the quantizers follow ggml's step for step, so the ratio is 1; the slack only absorbs the
 * last bits of summing the squared errors (double here, numpy in the generator) */
#define RMSE_RATIO_SLACK 1.0001

typedef struct fixture {
    qr_gguf *g;
    const float *x, *imatrix;
    int64_t ne0, ne1;
} fixture;

static int setup(void **state) {
    static fixture f;
    if (qr_gguf_open(QR_SHARED_DIR "/reference/alltypes-iq.gguf", &f.g) != QR_OK) {
        fprintf(stderr, "%s\n", qr_last_error());
        return -1;
    }
    const qr_gguf_tensor *src = qr_gguf_find_tensor(f.g, "source");
    const qr_gguf_tensor *im = qr_gguf_find_tensor(f.g, "imatrix");
    if (!src || !im || src->type != QR_TYPE_F32 || im->type != QR_TYPE_F32 ||
        im->ne[0] != src->ne[0])
        return -1;
    f.x = src->data;
    f.imatrix = im->data;
    f.ne0 = src->ne[0];
    f.ne1 = src->ne[1];
    *state = &f;
    return 0;
}

static int teardown(void **state) {
    qr_gguf_free(((fixture *)*state)->g);
    return 0;
}

/* bytes differing from the reference tensor `name`, with a line of output; -1 if absent */
static long compare_bytes(const fixture *f, const char *name, int type, const void *q) {
    const qr_gguf_tensor *ref = qr_gguf_find_tensor(f->g, name);
    if (!ref) return -1;
    assert_int_equal(ref->type, type);
    assert_int_equal(ref->nbytes, qr_type_row_bytes(type, f->ne0) * (size_t)f->ne1);
    long n_diff = 0;
    size_t first = 0;
    for (size_t b = ref->nbytes; b-- > 0;)
        if (((const uint8_t *)q)[b] != ((const uint8_t *)ref->data)[b]) n_diff++, first = b;
    printf("  %-17s bytes %s", name, n_diff ? "DIFFER" : "identical");
    if (n_diff) printf(" (%ld of %zu, first at %zu)", n_diff, ref->nbytes, first);
    printf("\n");
    return n_diff;
}

static void test_bytes_and_rmse(void **state) {
    const fixture *f = *state;
    const int64_t n = f->ne0 * f->ne1;
    float *back = malloc((size_t)n * sizeof(float));
    uint8_t *q = malloc((size_t)n * 4), *q_rows = malloc((size_t)n * 4);
    assert_non_null(back);
    assert_non_null(q);
    assert_non_null(q_rows);
    int n_failed = 0;
    for (size_t i = 0; i < N_TYPES; i++) {
        const int type = types[i].type;
        const size_t row_bytes = qr_type_row_bytes(type, f->ne0);
        char name[64], key[96];

        /* with the importance, all rows at once, as ggml_quantize_chunk */
        if (qr_quantize_rows(type, f->x, q, f->ne1, f->ne0, f->imatrix) != QR_OK)
            fail_msg("%s: %s", types[i].name, qr_last_error());
        if (compare_bytes(f, types[i].name, type, q) != 0) n_failed++;

        if (qr_dequantize(type, q, back, n) != QR_OK)
            fail_msg("%s: %s", types[i].name, qr_last_error());
        double se = 0;
        for (int64_t j = 0; j < n; j++)
            se += ((double)back[j] - f->x[j]) * ((double)back[j] - f->x[j]);
        const double rmse = sqrt(se / (double)n);
        float ref_rmse;
        snprintf(key, sizeof key, "quarrel.source_rmse.%s", types[i].name);
        assert_true(qr_gguf_get_f32(f->g, key, &ref_rmse));
        const double ratio = ref_rmse > 0 ? rmse / ref_rmse : (rmse == 0 ? 1.0 : INFINITY);
        printf("  %-17s rmse %.6g  ggml %.6g  ratio %.6f\n", types[i].name, rmse, ref_rmse, ratio);
        if (!(ratio <= RMSE_RATIO_SLACK && ratio >= 1 / RMSE_RATIO_SLACK)) n_failed++;

        /* without: <type>.noimatrix where the importance matters, <type> where it does not;
         * qr_quantize_rows(NULL) and qr_quantize row by row must agree */
        snprintf(name, sizeof name, "%s%s", types[i].name,
                 types[i].uses_importance ? ".noimatrix" : "");
        if (qr_quantize_rows(type, f->x, q, f->ne1, f->ne0, NULL) != QR_OK)
            fail_msg("%s: %s", types[i].name, qr_last_error());
        for (int64_t r = 0; r < f->ne1; r++)
            if (qr_quantize(type, f->x + r * f->ne0, q_rows + (size_t)r * row_bytes, f->ne0))
                fail_msg("%s: %s", types[i].name, qr_last_error());
        assert_memory_equal(q, q_rows, row_bytes * (size_t)f->ne1);
        if (compare_bytes(f, name, type, q) != 0) n_failed++;
    }
    free(back);
    free(q);
    free(q_rows);
    assert_int_equal(n_failed, 0);
}

/* mxfp4 by hand: absmax 6 gives e = floor(log2 6) - 2 + 127 = 127, d = 2^(127-128) = 0.5, and
 * the doubled e2m1 levels 0,1,2,3,4,6,8,12 times 0.5 are the values 0..6 below: exact. */
static void test_mxfp4_by_hand(void **state) {
    (void)state;
    const float levels[8] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6};
    float x[32], back[32];
    for (int j = 0; j < 32; j++)
        x[j] = (j & 16 ? -1.0f : 1.0f) * levels[j % 8];
    uint8_t q[17];
    assert_int_equal(qr_quantize(QR_TYPE_MXFP4, x, q, 32), QR_OK);
    assert_int_equal(q[0], 127);
    /* low nibble j % 8; high: the negated level 8 + j % 8, except -0, which ties with +0 and
     * takes the first level (0) */
    for (int j = 0; j < 16; j++)
        assert_int_equal(q[1 + j], (j % 8) | (j % 8 ? 8 + j % 8 : 0) << 4);
    assert_int_equal(qr_dequantize(QR_TYPE_MXFP4, q, back, 32), QR_OK);
    for (int j = 0; j < 32; j++)
        assert_true(back[j] == x[j]);
}

/* tq2_0 by hand: values {-0.5, 0, 0.5} give d = 0.5 and codes 0, 1, 2, packed 2 bits each,
 * element 128h + 32l + m in bits 2l of byte 32h + m; the round trip is exact. */
static void test_tq2_0_by_hand(void **state) {
    (void)state;
    float x[256], back[256];
    for (int j = 0; j < 256; j++)
        x[j] = 0.5f * (float)(j % 3 - 1);
    uint8_t q[66];
    assert_int_equal(qr_quantize(QR_TYPE_TQ2_0, x, q, 256), QR_OK);
    assert_int_equal(q[64] | q[65] << 8, 0x3800); /* d = 0.5 as f16 */
    for (int h = 0; h < 2; h++)
        for (int m = 0; m < 32; m++) {
            int want = 0;
            for (int l = 0; l < 4; l++)
                want |= ((128 * h + 32 * l + m) % 3) << (2 * l);
            assert_int_equal(q[32 * h + m], want);
        }
    assert_int_equal(qr_dequantize(QR_TYPE_TQ2_0, q, back, 256), QR_OK);
    for (int j = 0; j < 256; j++)
        assert_true(back[j] == x[j]);
    /* tq1_0 of the same block also round-trips exactly */
    uint8_t q1[54];
    assert_int_equal(qr_quantize(QR_TYPE_TQ1_0, x, q1, 256), QR_OK);
    assert_int_equal(qr_dequantize(QR_TYPE_TQ1_0, q1, back, 256), QR_OK);
    for (int j = 0; j < 256; j++)
        assert_true(back[j] == x[j]);
}

/* iq4_nl on exact multiples of its levels: the scale search finds d = 1 (ties go to the larger
 * candidate scale only when strictly better, and d = 1 is exact), so the round trip is exact. */
static void test_iq4_nl_levels(void **state) {
    (void)state;
    static const int8_t levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                      1,    13,   25,  38,  53,  69,  89,  113};
    float x[32], back[32];
    for (int j = 0; j < 32; j++)
        x[j] = levels[j % 16];
    uint8_t q[18];
    assert_int_equal(qr_quantize(QR_TYPE_IQ4_NL, x, q, 32), QR_OK);
    assert_int_equal(qr_dequantize(QR_TYPE_IQ4_NL, q, back, 32), QR_OK);
    for (int j = 0; j < 32; j++)
        if (back[j] != x[j]) fail_msg("element %d: %g, want %g", j, back[j], x[j]);
}

/* all zero: every type gives blocks that dequantize to zeros, with or without importance */
static void test_zeros(void **state) {
    (void)state;
    float x[512] = {0}, w[256], back[512];
    uint8_t q[512 * 2];
    for (int j = 0; j < 256; j++)
        w[j] = 1.0f + (float)j;
    for (size_t i = 0; i < N_TYPES; i++) {
        assert_int_equal(qr_quantize_rows(types[i].type, x, q, 2, 256, w), QR_OK);
        assert_int_equal(qr_dequantize(types[i].type, q, back, 512), QR_OK);
        for (int j = 0; j < 512; j++)
            if (back[j] != 0.0f) fail_msg("%s element %d: %g", types[i].name, j, back[j]);
    }
}

static void test_refusals_and_bad_input(void **state) {
    (void)state;
    float x[512] = {0}, w[256] = {0};
    uint8_t q[2048];
    /* the seven types that need ggml's grid search */
    const int grid[] = {QR_TYPE_IQ2_XXS, QR_TYPE_IQ2_XS, QR_TYPE_IQ2_S, QR_TYPE_IQ3_XXS,
                        QR_TYPE_IQ3_S,   QR_TYPE_IQ1_S,  QR_TYPE_IQ1_M};
    for (size_t i = 0; i < sizeof grid / sizeof grid[0]; i++) {
        assert_int_equal(qr_quantize_rows(grid[i], x, q, 1, 256, w), QR_ERR_UNSUPPORTED);
        assert_non_null(strstr(qr_last_error(), qr_type_name(grid[i])));
        assert_non_null(strstr(qr_last_error(), "not implemented"));
    }
    /* q8_K is an activation type ggml_quantize_chunk does not take: no importance path
     * (q4_K's is tested in test_quantize_importance.c) */
    assert_int_equal(qr_quantize_rows(QR_TYPE_Q8_K, x, q, 1, 256, w), QR_ERR_UNSUPPORTED);
    assert_non_null(strstr(qr_last_error(), "q8_K with an importance matrix"));
    /* without importance it is the plain quantizer; q8_0 and f16 ignore the importance */
    assert_int_equal(qr_quantize_rows(QR_TYPE_Q4_K, x, q, 2, 256, NULL), QR_OK);
    assert_int_equal(qr_quantize_rows(QR_TYPE_Q8_0, x, q, 2, 256, w), QR_OK);
    assert_int_equal(qr_quantize_rows(QR_TYPE_F16, x, q, 2, 256, w), QR_OK);
    /* row length not a multiple of the block, negative rows, unknown type */
    assert_int_equal(qr_quantize_rows(QR_TYPE_IQ4_XS, x, q, 1, 224, NULL), QR_ERR_INVALID_ARG);
    assert_non_null(strstr(qr_last_error(), "iq4_xs block size 256"));
    assert_int_equal(qr_quantize_rows(QR_TYPE_IQ4_NL, x, q, -1, 32, NULL), QR_ERR_INVALID_ARG);
    assert_non_null(strstr(qr_last_error(), "negative"));
    assert_int_equal(qr_quantize_rows(5, x, q, 1, 32, NULL), QR_ERR_UNSUPPORTED);
    assert_non_null(strstr(qr_last_error(), "unknown tensor type 5"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bytes_and_rmse), cmocka_unit_test(test_mxfp4_by_hand),
        cmocka_unit_test(test_tq2_0_by_hand),  cmocka_unit_test(test_iq4_nl_levels),
        cmocka_unit_test(test_zeros),          cmocka_unit_test(test_refusals_and_bad_input),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
