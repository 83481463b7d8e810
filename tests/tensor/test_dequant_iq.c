/* test_dequant_iq.c - the IQ family, ternary and mxfp4: each tensor <type> of
 * ../shared/reference/alltypes-iq.gguf dequantises to <type>.expected (ggml's) bit for bit,
 * block sizes are ggml's, and corrupt blocks (random bytes, NaN/inf scales) never crash the
 * dequantiser (the suite runs under ASan+UBSan). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "quarrel.h"

static const struct {
    const char *name;
    int type;
    int64_t block_size;
    size_t block_bytes; /* ggml's type_size */
} iq_types[] = {
    {"iq2_xxs", QR_TYPE_IQ2_XXS, 256, 66}, {"iq2_xs", QR_TYPE_IQ2_XS, 256, 74},
    {"iq3_xxs", QR_TYPE_IQ3_XXS, 256, 98}, {"iq1_s", QR_TYPE_IQ1_S, 256, 50},
    {"iq4_nl", QR_TYPE_IQ4_NL, 32, 18},    {"iq3_s", QR_TYPE_IQ3_S, 256, 110},
    {"iq2_s", QR_TYPE_IQ2_S, 256, 82},     {"iq4_xs", QR_TYPE_IQ4_XS, 256, 136},
    {"iq1_m", QR_TYPE_IQ1_M, 256, 56},     {"tq1_0", QR_TYPE_TQ1_0, 256, 54},
    {"tq2_0", QR_TYPE_TQ2_0, 256, 66},     {"mxfp4", QR_TYPE_MXFP4, 32, 17},
};
#define N_IQ (sizeof iq_types / sizeof iq_types[0])

static void test_ids_names_sizes(void **state) {
    (void)state;
    /* ggml's numbering (ggml.h) */
    const int ids[N_IQ] = {16, 17, 18, 19, 20, 21, 22, 23, 29, 34, 35, 39};
    for (size_t i = 0; i < N_IQ; i++) {
        assert_int_equal(iq_types[i].type, ids[i]);
        assert_string_equal(qr_type_name(iq_types[i].type), iq_types[i].name);
        assert_int_equal(qr_type_from_name(iq_types[i].name), iq_types[i].type);
        assert_int_equal(qr_type_block_size(iq_types[i].type), iq_types[i].block_size);
        assert_int_equal(qr_type_block_bytes(iq_types[i].type), iq_types[i].block_bytes);
    }
    assert_int_equal(qr_type_from_name("IQ4_XS"), QR_TYPE_IQ4_XS);
}

static void test_alltypes_iq_bit_exact(void **state) {
    (void)state;
    qr_gguf *g;
    if (qr_gguf_open(QR_SHARED_DIR "/reference/alltypes-iq.gguf", &g) != QR_OK)
        fail_msg("%s", qr_last_error());
    for (size_t i = 0; i < N_IQ; i++) {
        const char *type = iq_types[i].name;
        const qr_gguf_tensor *t = qr_gguf_find_tensor(g, type);
        char name[64];
        snprintf(name, sizeof name, "%s.expected", type);
        const qr_gguf_tensor *e = qr_gguf_find_tensor(g, name);
        if (!t || !e) fail_msg("%s: tensor or its .expected missing", type);
        assert_int_equal(e->type, QR_TYPE_F32);
        assert_int_equal(t->type, iq_types[i].type);
        assert_int_equal(t->ne[0], e->ne[0]);
        assert_int_equal(t->ne[1], e->ne[1]);
        const int64_t n = t->ne[0] * t->ne[1];
        assert_true(n == 12 * 512);
        float *out = malloc((size_t)n * sizeof(float));
        assert_non_null(out);
        if (qr_dequantize(t->type, t->data, out, n) != QR_OK)
            fail_msg("%s: %s", type, qr_last_error());
        /* bitwise, so -0.0 against 0.0 counts too */
        for (int64_t j = 0; j < n; j++) {
            float want;
            memcpy(&want, (const char *)e->data + j * 4, 4);
            if (memcmp(&out[j], &want, 4) != 0)
                fail_msg("%s element %lld (row %lld): %.9g, ggml %.9g", type, (long long)j,
                         (long long)(j / t->ne[0]), out[j], want);
        }
        free(out);
    }
    qr_gguf_free(g);
}

/* xorshift64*: the same bytes on every run */
static uint64_t next_random(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1Dull;
}

/* where the f16 (or e8m0) scale of each block lives, to plant NaN and inf there */
static void plant_scale(int type, uint8_t *block, size_t bytes, uint16_t half) {
    switch (type) {
    case QR_TYPE_TQ1_0:
    case QR_TYPE_TQ2_0: /* d last */
        block[bytes - 2] = (uint8_t)half;
        block[bytes - 1] = (uint8_t)(half >> 8);
        break;
    case QR_TYPE_IQ1_M: /* top nibbles of the four u16 scales */
        for (int k = 0; k < 4; k++)
            block[48 + 2 * k + 1] =
                (uint8_t)((block[48 + 2 * k + 1] & 0x0f) | (((half >> (4 * k)) & 15) << 4));
        break;
    case QR_TYPE_MXFP4: /* e8m0: 255 is the largest */
        block[0] = half >> 8 == 0x7c ? 0xff : 0xfe;
        break;
    default: /* d first */
        block[0] = (uint8_t)half;
        block[1] = (uint8_t)(half >> 8);
    }
}

static void test_corrupt_blocks(void **state) {
    (void)state;
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < N_IQ; i++) {
        const int64_t n = 16 * 256; /* 16 super-blocks, 128 of the 32-element types */
        const size_t bytes = (size_t)(n / iq_types[i].block_size) * iq_types[i].block_bytes;
        const size_t bb = iq_types[i].block_bytes;
        uint8_t *src = malloc(bytes);
        float *out = malloc((size_t)n * sizeof(float));
        assert_non_null(src);
        assert_non_null(out);
        for (int round = 0; round < 64; round++) {
            for (size_t k = 0; k < bytes; k++)
                src[k] = (uint8_t)(next_random(&seed) >> 56);
            /* every other block gets a NaN, +inf or -inf scale or keeps its random one */
            const uint16_t specials[] = {0x7e00, 0x7c00, 0xfc00, 0x7fff};
            for (size_t blk = 0; blk < bytes / bb; blk += 2)
                plant_scale(iq_types[i].type, src + blk * bb, bb, specials[(blk / 2 + round) % 4]);
            if (qr_dequantize(iq_types[i].type, src, out, n) != QR_OK)
                fail_msg("%s: %s", iq_types[i].name, qr_last_error());
        }
        /* a 0 scale gives only zeros (or -0); an all-0xff block must stay in the tables */
        memset(src, 0xff, bytes);
        assert_int_equal(qr_dequantize(iq_types[i].type, src, out, n), QR_OK);
        memset(src, 0, bytes);
        assert_int_equal(qr_dequantize(iq_types[i].type, src, out, n), QR_OK);
        if (iq_types[i].type != QR_TYPE_MXFP4) /* e8m0 0 is 2^-127, not 0 */
            for (int64_t j = 0; j < n; j++)
                if (out[j] != 0.0f) fail_msg("%s: zero block gives %g", iq_types[i].name, out[j]);
        free(src);
        free(out);
    }
}

/* mxfp4's e8m0 scale by hand: ggml halves it (the table holds doubled e2m1 values) and reads
 * e = 0, 1 as the subnormals 2^-128, 2^-127 and e = 255 as 2^127, not NaN */
static void test_mxfp4_scale(void **state) {
    (void)state;
    uint8_t block[17] = {0};
    float out[32];
    block[1] = 0x71; /* element 0: code 1 (0.5, stored 1); element 16: code 7 (6, stored 12) */
    const struct {
        uint8_t e;
        float d;
    } cases[] = {{127, 0.5f},    {128, 1.0f},    {0, 0x1p-128f},
                 {1, 0x1p-127f}, {2, 0x1p-126f}, {255, 0x1p127f}};
    for (int c = 0; c < 6; c++) {
        block[0] = cases[c].e;
        assert_int_equal(qr_dequantize(QR_TYPE_MXFP4, block, out, 32), QR_OK);
        if (out[0] != cases[c].d || out[16] != 12 * cases[c].d)
            fail_msg("e=%d: %a %a, want %a %a", cases[c].e, out[0], out[16], cases[c].d,
                     12 * cases[c].d);
    }
}

/* tq1_0 by hand: a qs byte holding digits (2, 0, 1, 1, 0) base 3 as the fraction
 * ceil(sum(digit_k * 3^(4-k)) * 256 / 243) gives values (1, -1, 0, 0, -1) times d */
static void test_tq1_0_digits(void **state) {
    (void)state;
    uint8_t block[54] = {0};
    const int digits[5] = {2, 0, 1, 1, 0};
    int v = 0;
    for (int k = 0; k < 5; k++)
        v = v * 3 + digits[k];
    block[0] = (uint8_t)((v * 256 + 242) / 243);
    for (size_t j = 1; j < 48; j++)
        block[j] = (uint8_t)((121 * 256 + 242) / 243); /* 11111 base 3: all zeros */
    block[52] = 0x00;
    block[53] = 0x40; /* d = 2.0 */
    float out[256];
    assert_int_equal(qr_dequantize(QR_TYPE_TQ1_0, block, out, 256), QR_OK);
    for (int k = 0; k < 5; k++)
        if (out[32 * k] != 2.0f * (digits[k] - 1))
            fail_msg("digit %d: %g, want %g", k, out[32 * k], 2.0f * (digits[k] - 1));
    for (int j = 5 * 32; j < 240; j++) /* the other qs bytes: digit 1 everywhere */
        if (out[j] != 0.0f) fail_msg("element %d: %g, want 0", j, out[j]);
    /* qh bytes 0: each digit 0, i.e. -d */
    for (int j = 240; j < 256; j++)
        assert_true(out[j] == -2.0f);
}

/* every type quantizes without an importance (test_quantize_iq.c checks the bytes) except the
 * three ggml quantizes only with one, which say so, naming the type */
static void test_quantize_without_importance(void **state) {
    (void)state;
    float x[256] = {0};
    uint8_t y[256];
    for (size_t i = 0; i < N_IQ; i++) {
        const int t = iq_types[i].type;
        if (t != QR_TYPE_IQ2_XXS && t != QR_TYPE_IQ2_XS && t != QR_TYPE_IQ1_S) {
            assert_int_equal(qr_quantize(t, x, y, 256), QR_OK);
            continue;
        }
        assert_int_equal(qr_quantize(t, x, y, 256), QR_ERR_INVALID_ARG);
        assert_non_null(strstr(qr_last_error(), iq_types[i].name));
        assert_non_null(strstr(qr_last_error(), "needs an importance matrix"));
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_names_sizes), cmocka_unit_test(test_alltypes_iq_bit_exact),
        cmocka_unit_test(test_corrupt_blocks),  cmocka_unit_test(test_mxfp4_scale),
        cmocka_unit_test(test_tq1_0_digits),    cmocka_unit_test(test_quantize_without_importance),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
