/* test_vec_dot.c - the traits table's activation quantizers and scalar reference dot products
 * against llama.cpp's own, recorded by mk_ggml_vec_dot.py in data/ggml_vec_dot.ref from the
 * rows of ../shared/reference/alltypes.gguf:
 *   - block geometry and vec_dot_type of every type equal ggml's type traits;
 *   - f16/bf16/q8_0/q8_1/q8_K activations of `source` are byte-identical to ggml's reference
 *     quantizers (quantize_row_q8_*_ref, ggml_fp32_to_fp16_row, ggml_fp32_to_bf16_row_ref);
 *   - vec_dot of each weight row with each activation row is within a named tolerance of
 *     ggml's scalar (_generic) and haswell (AVX2) dot products.
 * Plus hand-worked q8_0/q8_1/q8_K blocks. */
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
#include "tensor/blocks.h"
#include "tensor/tensor.h"
#include "util/util.h"

#define FIXTURE QR_TEST_DIR "/tensor/data/ggml_vec_dot.ref"

/* |ours - ggml| <= VEC_DOT_TOL * sum_k (|x_k| + |off_k|) * |y_k| (x, y dequantized; off_k the
 * block minimum of types with one, so the bound covers both the scale and the minimum term of
 * the dot product, which may cancel). Both sides sum the same exact integer block products;
 * only the order and width of the float additions of the per-block terms differ (ggml: 8-lane
 * float partial sums, FMA), a few float roundings of terms no larger than that sum. */
#define VEC_DOT_TOL 1e-6

static const char *weight_types[] = {"f32",  "f16",  "bf16", "q8_0", "q4_0", "q4_1", "q5_0",
                                     "q5_1", "q2_K", "q3_K", "q4_K", "q5_K", "q6_K"};
static const char *all_types[] = {"f32",  "f16",  "bf16", "q8_0", "q8_1", "q8_K", "q4_0", "q4_1",
                                  "q5_0", "q5_1", "q2_K", "q3_K", "q4_K", "q5_K", "q6_K"};
#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

typedef struct fixture {
    qr_gguf *ref; /* data/ggml_vec_dot.ref */
    qr_gguf *all; /* alltypes.gguf */
    const qr_gguf_tensor *source;
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    if (!f) return -1;
    if (qr_gguf_open(FIXTURE, &f->ref) != QR_OK ||
        qr_gguf_open(QR_SHARED_DIR "/reference/alltypes.gguf", &f->all) != QR_OK) {
        fprintf(stderr, "setup: %s\n", qr_last_error());
        return -1;
    }
    f->source = qr_gguf_find_tensor(f->all, "source");
    if (!f->source || f->source->type != QR_TYPE_F32 || f->source->ne[0] % QK_K) {
        fprintf(stderr, "setup: alltypes.gguf has no usable `source` tensor\n");
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    if (f) {
        qr_gguf_free(f->ref);
        qr_gguf_free(f->all);
        free(f);
    }
    return 0;
}

static const qr_gguf_tensor *must_find(qr_gguf *g, const char *name) {
    const qr_gguf_tensor *t = qr_gguf_find_tensor(g, name);
    if (!t) fail_msg("tensor '%s' missing", name);
    return t;
}

static void test_traits_match_ggml(void **state) {
    fixture *f = *state;
    for (size_t i = 0; i < N_ELEMS(all_types); i++) {
        const int type = qr_type_from_name(all_types[i]);
        const qr_type_traits *t = qr_type_traits_get(type);
        assert_non_null(t);
        assert_string_equal(t->name, all_types[i]);
        char key[96];
        uint32_t blck, size;
        snprintf(key, sizeof key, "ggml.blck_size.%s", all_types[i]);
        assert_true(qr_gguf_get_u32(f->ref, key, &blck));
        snprintf(key, sizeof key, "ggml.type_size.%s", all_types[i]);
        assert_true(qr_gguf_get_u32(f->ref, key, &size));
        if (t->block_size != blck || t->block_bytes != size)
            fail_msg("%s: block %lld x %zu bytes, ggml %u x %u", t->name, (long long)t->block_size,
                     t->block_bytes, blck, size);
        assert_int_equal(t->is_quantized, blck > 1);
    }
    for (size_t i = 0; i < N_ELEMS(weight_types); i++) {
        const qr_type_traits *t = qr_type_traits_get(qr_type_from_name(weight_types[i]));
        char key[96];
        uint32_t vdt;
        snprintf(key, sizeof key, "ggml.vec_dot_type.%s", weight_types[i]);
        assert_true(qr_gguf_get_u32(f->ref, key, &vdt));
        if (t->vec_dot_type != (int)vdt)
            fail_msg("%s: vec_dot_type %d, ggml %u", t->name, t->vec_dot_type, vdt);
        assert_non_null(t->vec_dot);
        assert_non_null(t->to_float);
        assert_non_null(t->from_float);
        assert_non_null(qr_type_traits_get(t->vec_dot_type)->from_float);
    }
}

/* Our activation quantizer on each row of `source` gives ggml's bytes exactly. */
static void test_activation_bytes(void **state) {
    fixture *f = *state;
    static const char *acts[] = {"f16", "bf16", "q8_0", "q8_1", "q8_K"};
    const int64_t n = f->source->ne[0], n_rows = f->source->ne[1];
    for (size_t a = 0; a < N_ELEMS(acts); a++) {
        const int type = qr_type_from_name(acts[a]);
        const qr_type_traits *t = qr_type_traits_get(type);
        char name[64];
        snprintf(name, sizeof name, "act.%s", acts[a]);
        const qr_gguf_tensor *ref = must_find(f->ref, name);
        assert_int_equal(ref->type, type);
        assert_int_equal(ref->ne[0], n);
        assert_int_equal(ref->ne[1], n_rows);
        const size_t row_bytes = qr_type_row_bytes(type, n);
        unsigned char *q = malloc(row_bytes);
        assert_non_null(q);
        for (int64_t r = 0; r < n_rows; r++) {
            t->from_float((const float *)f->source->data + r * n, q, n);
            const unsigned char *want = (const unsigned char *)ref->data + r * row_bytes;
            for (size_t b = 0; b < row_bytes; b++)
                if (q[b] != want[b])
                    fail_msg("%s row %lld: byte %zu (block %zu) is 0x%02x, ggml 0x%02x", acts[a],
                             (long long)r, b, b / t->block_bytes, q[b], want[b]);
        }
        free(q);
        printf("  %-5s activations: %lld rows byte-identical to ggml\n", acts[a],
               (long long)n_rows);
    }
}

/* Activation row to floats (q8_1 has no to_float in the table: it is activation-only). */
static void act_to_float(int type, const void *src, float *dst, int64_t n) {
    if (type == QR_TYPE_Q8_1) {
        const block_q8_1 *b = src;
        for (int64_t i = 0; i < n; i++)
            dst[i] = qr_fp16_to_fp32(b[i / QK8_1].d) * (float)b[i / QK8_1].qs[i % QK8_1];
        return;
    }
    qr_type_traits_get(type)->to_float(src, dst, n);
}

/* |offset| of each element of a weight row: the block minimum subtracted (k-quants) or added
 * (q4_1, q5_1) after scaling; 0 for types without one. */
static void offsets(int type, const void *row, float *off, int64_t n) {
    const qr_type_traits *t = qr_type_traits_get(type);
    for (int64_t b = 0; b < n / t->block_size; b++) {
        const unsigned char *block = (const unsigned char *)row + b * t->block_bytes;
        float *o = off + b * t->block_size;
        if (type == QR_TYPE_Q4_1 || type == QR_TYPE_Q5_1) {
            /* d then m, both f16, lead both block layouts */
            const float m = fabsf(qr_fp16_to_fp32(qr_rd_u16(block + 2)));
            for (int k = 0; k < QK4_1; k++)
                o[k] = m;
        } else if (type == QR_TYPE_Q2_K || type == QR_TYPE_Q4_K || type == QR_TYPE_Q5_K) {
            qr_kblock kb;
            if (type == QR_TYPE_Q2_K) qr_unpack_q2_K(block, &kb);
            if (type == QR_TYPE_Q4_K) qr_unpack_q4_K(block, &kb);
            if (type == QR_TYPE_Q5_K) qr_unpack_q5_K(block, &kb);
            for (int k = 0; k < QK_K; k++)
                o[k] = fabsf(kb.dmin * (float)kb.min[k / 16]);
        } else {
            for (int64_t k = 0; k < t->block_size; k++)
                o[k] = 0.0f;
        }
    }
}

static void test_vec_dot_vs_ggml(void **state) {
    fixture *f = *state;
    const int64_t n = f->source->ne[0], n_rows = f->source->ne[1];
    float *xf = malloc((size_t)n * sizeof(float)), *yf = malloc((size_t)n * sizeof(float));
    float *off = malloc((size_t)n * sizeof(float));
    assert_non_null(xf);
    assert_non_null(yf);
    assert_non_null(off);
    for (size_t w = 0; w < N_ELEMS(weight_types); w++) {
        const int type = qr_type_from_name(weight_types[w]);
        const qr_type_traits *t = qr_type_traits_get(type);
        const qr_gguf_tensor *x = must_find(f->all, weight_types[w]);
        char name[64];
        snprintf(name, sizeof name, "dot.%s", weight_types[w]);
        const qr_gguf_tensor *generic = must_find(f->ref, name);
        snprintf(name, sizeof name, "dot.%s.cpu", weight_types[w]);
        const qr_gguf_tensor *cpu = must_find(f->ref, name);
        const void *y_rows;
        size_t y_row_bytes;
        if (t->vec_dot_type == QR_TYPE_F32) {
            y_rows = f->source->data;
        } else {
            snprintf(name, sizeof name, "act.%s", qr_type_name(t->vec_dot_type));
            y_rows = must_find(f->ref, name)->data;
        }
        y_row_bytes = qr_type_row_bytes(t->vec_dot_type, n);
        const size_t x_row_bytes = qr_type_row_bytes(type, n);
        assert_int_equal(x->type, type);
        assert_int_equal(generic->ne[0] * generic->ne[1], n_rows * n_rows);

        double worst_generic = 0, worst_cpu = 0; /* |diff| / allowed */
        int exact_generic = 0, exact_cpu = 0;
        for (int64_t j = 0; j < n_rows; j++) {
            const void *y = (const char *)y_rows + j * y_row_bytes;
            act_to_float(t->vec_dot_type, y, yf, n);
            for (int64_t i = 0; i < n_rows; i++) {
                const void *xr = (const char *)x->data + i * x_row_bytes;
                t->to_float(xr, xf, n);
                offsets(type, xr, off, n);
                double mag = 0;
                for (int64_t k = 0; k < n; k++)
                    mag += (fabs((double)xf[k]) + off[k]) * fabs((double)yf[k]);
                float ours;
                t->vec_dot(n, &ours, xr, y);
                const float want_generic = ((const float *)generic->data)[j * n_rows + i];
                const float want_cpu = ((const float *)cpu->data)[j * n_rows + i];
                const double allowed = VEC_DOT_TOL * mag + 1e-30;
                const double dg = fabs((double)ours - want_generic);
                const double dc = fabs((double)ours - want_cpu);
                if (dg > allowed || dc > allowed)
                    fail_msg("%s: weight row %lld . activation row %lld = %.9g; ggml scalar %.9g, "
                             "ggml avx2 %.9g (allowed %.3g)",
                             t->name, (long long)i, (long long)j, ours, want_generic, want_cpu,
                             allowed);
                if (dg / allowed > worst_generic) worst_generic = dg / allowed;
                if (dc / allowed > worst_cpu) worst_cpu = dc / allowed;
                exact_generic += ours == want_generic;
                exact_cpu += ours == want_cpu;
            }
        }
        printf("  %-5s vec_dot: identical to ggml scalar %2d/%lld, avx2 %2d/%lld; worst "
               "|diff|/allowed %.3f, %.3f\n",
               t->name, exact_generic, (long long)(n_rows * n_rows), exact_cpu,
               (long long)(n_rows * n_rows), worst_generic, worst_cpu);
    }
    free(xf);
    free(yf);
    free(off);
}

/* Hand-worked blocks. q8_0/q8_1: amax 127 gives d = 1, id = 1, and roundf rounds halves away
 * from zero. q8_K: scaled by -127 / (the element of largest magnitude, with its sign), so that
 * element becomes -127, and nearest_int rounds halves to even. */
static void test_q8_by_hand(void **state) {
    (void)state;
    float x[QK_K] = {127.0f, -63.5f, 2.5f, -0.5f, 0.25f};
    block_q8_0 b0;
    qr_quant_q8_0(x, &b0, QK8_0);
    assert_int_equal(b0.d, 0x3c00); /* 1.0 */
    const int8_t want0[5] = {127, -64, 3, -1, 0};
    assert_memory_equal(b0.qs, want0, 5);
    for (int j = 5; j < QK8_0; j++)
        assert_int_equal(b0.qs[j], 0);

    block_q8_1 b1;
    qr_quant_q8_1(x, &b1, QK8_1);
    assert_int_equal(b1.d, 0x3c00);
    assert_memory_equal(b1.qs, want0, 5);
    assert_int_equal(b1.s, 0x5410); /* 127 - 64 + 3 - 1 = 65 = 0x5410 in f16 */

    float xk[QK_K] = {2.0f, -1.0f, 0.5f};
    xk[17] = -0.25f;
    block_q8_K bk;
    qr_quant_q8_K(xk, &bk, QK_K);
    /* iscale = -63.5: 2 -> -127; -1 -> 63.5 -> 64 (even); 0.5 -> -31.75 -> -32;
     * -0.25 -> 15.875 -> 16 */
    assert_int_equal(bk.qs[0], -127);
    assert_int_equal(bk.qs[1], 64);
    assert_int_equal(bk.qs[2], -32);
    assert_int_equal(bk.qs[17], 16);
    assert_int_equal(bk.bsums[0], -127 + 64 - 32);
    assert_int_equal(bk.bsums[1], 16);
    for (int s = 2; s < QK_K / 16; s++)
        assert_int_equal(bk.bsums[s], 0);
    assert_true(bk.d == 1.0f / -63.5f);

    /* all zeros: d = 0 and every value 0, no division by zero */
    float z[QK_K] = {0};
    memset(&bk, 0x55, sizeof bk);
    qr_quant_q8_K(z, &bk, QK_K);
    assert_true(bk.d == 0.0f);
    for (int j = 0; j < QK_K; j++)
        assert_int_equal(bk.qs[j], 0);
    memset(&b0, 0x55, sizeof b0);
    qr_quant_q8_0(z, &b0, QK8_0);
    assert_int_equal(b0.d, 0);
    for (int j = 0; j < QK8_0; j++)
        assert_int_equal(b0.qs[j], 0);
}

/* q4_0 . q8_0 by hand: one block, weight nibbles 9 (= +1) and 7 (= -1), d = 0.5 and 2. */
static void test_q4_0_dot_by_hand(void **state) {
    (void)state;
    block_q4_0 x = {.d = 0x3800}; /* 0.5 */
    block_q8_0 y = {.d = 0x4000}; /* 2.0 */
    for (int j = 0; j < 16; j++) {
        x.qs[j] = 0x79;    /* low nibble 9 -> +1 (element j), high 7 -> -1 (element j+16) */
        y.qs[j] = 3;       /* elements 0..15 */
        y.qs[j + 16] = -5; /* elements 16..31 */
    }
    float out;
    qr_type_traits_get(QR_TYPE_Q4_0)->vec_dot(QK4_0, &out, &x, &y);
    /* 16 * (1 * 3) + 16 * (-1 * -5) = 128 integer sum, times 0.5 * 2 */
    assert_true(out == 128.0f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_traits_match_ggml), cmocka_unit_test(test_activation_bytes),
        cmocka_unit_test(test_vec_dot_vs_ggml),   cmocka_unit_test(test_q8_by_hand),
        cmocka_unit_test(test_q4_0_dot_by_hand),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
