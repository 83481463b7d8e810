/* test_quantize_iq.c - quantisation to the 12 IQ, ternary and mxfp4 types against ggml, on
 * ../shared/reference/alltypes-iq.gguf: quantizing `source` (12 rows x 512) with the `imatrix`
 * tensor gives `<type>` (ggml_quantize_chunk's bytes) byte for byte, also as 6 rows of 1024 and
 * one row of 6144 (the importance repeated), and from threads that race to build the grid
 * searches; without it `<type>.noimatrix` where the importance matters (iq2_xxs, iq2_xs and
 * iq1_s need one: refused), `<type>` again where ggml ignores it; the round-trip RMSE equals
 * ggml's (quarrel.source_rmse.<type>). Plus hand-worked blocks, non-finite input and the
 * bad-input errors of qr_quantize_rows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <float.h>
#include <math.h>
#include <pthread.h>

#include <cmocka.h>

#include "quarrel.h"

/* uses_importance: the bytes depend on it (a <type>.noimatrix reference, unless
 * needs_importance: ggml_quantize_chunk asserts without one, Quarrel refuses) */
static const struct {
    const char *name;
    int type;
    int uses_importance, needs_importance;
} types[] = {
    {"iq4_nl", QR_TYPE_IQ4_NL, 1, 0},   {"iq4_xs", QR_TYPE_IQ4_XS, 1, 0},
    {"iq3_xxs", QR_TYPE_IQ3_XXS, 1, 0}, {"iq3_s", QR_TYPE_IQ3_S, 1, 0},
    {"iq2_xxs", QR_TYPE_IQ2_XXS, 1, 1}, {"iq2_xs", QR_TYPE_IQ2_XS, 1, 1},
    {"iq2_s", QR_TYPE_IQ2_S, 1, 0},     {"iq1_s", QR_TYPE_IQ1_S, 1, 1},
    {"iq1_m", QR_TYPE_IQ1_M, 1, 0},     {"tq1_0", QR_TYPE_TQ1_0, 0, 0},
    {"tq2_0", QR_TYPE_TQ2_0, 0, 0},     {"mxfp4", QR_TYPE_MXFP4, 0, 0},
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

        /* the same rows as 6 of 1024 and 1 of 6144 elements with the importance repeated:
         * several super-blocks a row, each weighed by its own columns */
        const int64_t widths[2] = {2 * f->ne0, f->ne0 * f->ne1};
        for (int w = 0; w < 2; w++) {
            float *im = malloc((size_t)widths[w] * sizeof(float));
            assert_non_null(im);
            for (int64_t j = 0; j < widths[w]; j++)
                im[j] = f->imatrix[j % f->ne0];
            memset(q_rows, 0xa5, (size_t)n * 4);
            if (qr_quantize_rows(type, f->x, q_rows, n / widths[w], widths[w], im) != QR_OK)
                fail_msg("%s: %s", types[i].name, qr_last_error());
            free(im);
            if (memcmp(q, q_rows, row_bytes * (size_t)f->ne1)) {
                printf("  %-17s rows of %lld DIFFER\n", types[i].name, (long long)widths[w]);
                n_failed++;
            }
        }

        /* without: <type>.noimatrix where the importance matters, <type> where it does not;
         * qr_quantize_rows(NULL) and qr_quantize row by row must agree */
        if (types[i].needs_importance) {
            assert_int_equal(qr_quantize_rows(type, f->x, q, f->ne1, f->ne0, NULL),
                             QR_ERR_INVALID_ARG);
            snprintf(name, sizeof name, "%s needs an importance matrix", types[i].name);
            assert_string_equal(qr_last_error(), name);
            assert_int_equal(qr_quantize(type, f->x, q, f->ne0), QR_ERR_INVALID_ARG);
            assert_string_equal(qr_last_error(), name);
            continue;
        }
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

/* Non-finite and extreme values, with normal, zero, negative and non-finite importances: every
 * type returns (no abort, no out-of-range index, no endless loop; ASan and UBSan watch) and
 * rows without such values in their super-block come out as they would alone. */
static void test_non_finite(void **state) {
    (void)state;
    enum { N_ROWS = 8, N = 512 };
    static float x[N_ROWS * N], back[N_ROWS * N];
    static uint8_t q[N_ROWS * N], q_alone[N];
    for (int j = 0; j < N_ROWS * N; j++)
        x[j] = sinf(0.37f * (float)j) * (1.0f + (float)(j % 7));
    float *r = x;
    r[3] = NAN; /* row 0: one NaN in the first super-block only */
    r += N;
    r[0] = INFINITY, r[300] = -INFINITY; /* row 1: infinities */
    r += N;
    for (int j = 0; j < N; j++) /* row 2: all NaN */
        r[j] = NAN;
    r += N;
    for (int j = 0; j < N; j++) /* row 3: the largest floats, alternating in sign */
        r[j] = j % 2 ? FLT_MAX : -FLT_MAX;
    r += N;
    for (int j = 0; j < N; j++) /* row 4: large enough that squares overflow */
        r[j] = (j % 3 - 1) * 1e30f;
    r += N;
    for (int j = 0; j < N; j++) /* row 5: subnormals */
        r[j] = (float)(j % 5 - 2) * 1e-41f;
    /* rows 6 and 7 stay finite and ordinary */
    float w_sets[4][N];
    for (int j = 0; j < N; j++) {
        w_sets[0][j] = 1.0f + (float)(j % 11);
        w_sets[1][j] = 0.0f;
        w_sets[2][j] = j % 2 ? -1.0f : 2.0f;
        w_sets[3][j] = j % 17 ? 1.0f : (j % 2 ? NAN : INFINITY);
    }
    for (size_t i = 0; i < N_TYPES; i++) {
        const int type = types[i].type;
        const size_t row_bytes = qr_type_row_bytes(type, N);
        for (int s = -1; s < 4; s++) {
            const float *w = s < 0 ? NULL : w_sets[s];
            if (!w && types[i].needs_importance) continue;
            if (qr_quantize_rows(type, x, q, N_ROWS, N, w) != QR_OK)
                fail_msg("%s: %s", types[i].name, qr_last_error());
            assert_int_equal(qr_dequantize(type, q, back, N_ROWS * N), QR_OK);
            /* row 6 and row 0's second super-block do not see the bad values */
            assert_int_equal(qr_quantize_rows(type, x + 6 * N, q_alone, 1, N, w), QR_OK);
            assert_memory_equal(q + 6 * row_bytes, q_alone, row_bytes);
            assert_int_equal(
                qr_quantize_rows(type, x + N / 2, q_alone, 1, N / 2, w ? w + N / 2 : w), QR_OK);
            assert_memory_equal(q + row_bytes / 2, q_alone, row_bytes / 2);
        }
    }
}

/* Threads that all start with a type's first quantisation (so they race to build its grid
 * search) get ggml's bytes. */
typedef struct race_arg {
    const fixture *f;
    int type;
    uint8_t *q;
    qr_status st;
} race_arg;

static void *race_quantize(void *p) {
    race_arg *a = p;
    a->st = qr_quantize_rows(a->type, a->f->x, a->q, a->f->ne1, a->f->ne0, a->f->imatrix);
    return NULL;
}

static void test_threads_first_use(void **state) {
    const fixture *f = *state;
    enum { N_THREADS = 4 };
    const int race_types[] = {QR_TYPE_IQ1_S, QR_TYPE_IQ2_S, QR_TYPE_IQ3_XXS};
    for (size_t t = 0; t < sizeof race_types / sizeof race_types[0]; t++) {
        pthread_t th[N_THREADS];
        race_arg args[N_THREADS];
        for (int k = 0; k < N_THREADS; k++) {
            args[k] = (race_arg){f, race_types[t], malloc((size_t)(f->ne0 * f->ne1)), QR_OK};
            assert_non_null(args[k].q);
            assert_int_equal(pthread_create(&th[k], NULL, race_quantize, &args[k]), 0);
        }
        for (int k = 0; k < N_THREADS; k++) {
            assert_int_equal(pthread_join(th[k], NULL), 0);
            assert_int_equal(args[k].st, QR_OK);
            assert_int_equal(
                compare_bytes(f, qr_type_name(race_types[t]), race_types[t], args[k].q), 0);
            free(args[k].q);
        }
    }
}

static void test_refusals_and_bad_input(void **state) {
    (void)state;
    float x[512] = {0}, w[256] = {0};
    uint8_t q[2048];
    /* ggml_quantize_chunk asserts for these three without an importance; Quarrel refuses */
    const int need[] = {QR_TYPE_IQ2_XXS, QR_TYPE_IQ2_XS, QR_TYPE_IQ1_S};
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++) {
        char want[64];
        snprintf(want, sizeof want, "%s needs an importance matrix", qr_type_name(need[i]));
        assert_int_equal(qr_quantize_rows(need[i], x, q, 1, 256, NULL), QR_ERR_INVALID_ARG);
        assert_string_equal(qr_last_error(), want);
        assert_int_equal(qr_quantize(need[i], x, q, 256), QR_ERR_INVALID_ARG);
        assert_string_equal(qr_last_error(), want);
        assert_int_equal(qr_quantize_rows(need[i], x, q, 1, 256, w), QR_OK);
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
    /* the threads test first: it is the first use of its types' grid searches */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_first_use), cmocka_unit_test(test_bytes_and_rmse),
        cmocka_unit_test(test_mxfp4_by_hand),     cmocka_unit_test(test_tq2_0_by_hand),
        cmocka_unit_test(test_iq4_nl_levels),     cmocka_unit_test(test_zeros),
        cmocka_unit_test(test_non_finite),        cmocka_unit_test(test_refusals_and_bad_input),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
