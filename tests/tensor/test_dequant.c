/* test_dequant.c - dequantisation of every type equals ggml's bit for bit: each tensor <type>
 * of ../shared/reference/alltypes.gguf against <type>.expected (llama.cpp's dequantisation). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "quarrel.h"

static const char *types[] = {"f32",  "f16",  "bf16", "q8_0", "q4_0", "q4_1", "q5_0",
                              "q5_1", "q2_K", "q3_K", "q4_K", "q5_K", "q6_K"};

static void test_alltypes_bit_exact(void **state) {
    (void)state;
    qr_gguf *g;
    if (qr_gguf_open(QR_SHARED_DIR "/reference/alltypes.gguf", &g) != QR_OK)
        fail_msg("%s", qr_last_error());
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        const qr_gguf_tensor *t = qr_gguf_find_tensor(g, types[i]);
        char name[64];
        snprintf(name, sizeof name, "%s.expected", types[i]);
        const qr_gguf_tensor *e = qr_gguf_find_tensor(g, name);
        assert_non_null(t);
        assert_non_null(e);
        assert_int_equal(e->type, QR_TYPE_F32);
        assert_string_equal(qr_type_name(t->type), types[i]);
        int64_t n = t->ne[0] * t->ne[1];
        float *out = malloc((size_t)n * sizeof(float));
        if (qr_dequantize(t->type, t->data, out, n) != QR_OK)
            fail_msg("%s: %s", types[i], qr_last_error());
        /* bitwise: memcmp, so -0.0 vs 0.0 or NaN payloads would count too */
        for (int64_t j = 0; j < n; j++) {
            float want;
            memcpy(&want, (const char *)e->data + j * 4, 4);
            if (memcmp(&out[j], &want, 4) != 0)
                fail_msg("%s element %lld: %.9g, ggml %.9g", types[i], (long long)j, out[j], want);
        }
        free(out);
    }
    qr_gguf_free(g);
}

static void test_type_table(void **state) {
    (void)state;
    assert_int_equal(qr_type_from_name("Q4_K"), QR_TYPE_Q4_K);
    assert_int_equal(qr_type_from_name("bf16"), QR_TYPE_BF16);
    assert_int_equal(qr_type_from_name("q9_9"), -1);
    assert_int_equal(qr_type_block_bytes(QR_TYPE_Q6_K), 210);
    assert_int_equal(qr_type_row_bytes(QR_TYPE_Q4_0, 64), 36);
    assert_int_equal(qr_type_row_bytes(QR_TYPE_Q4_0, 33), 0);
    assert_null(qr_type_name(77));
    float x[32] = {0};
    assert_int_equal(qr_dequantize(77, x, x, 32), QR_ERR_UNSUPPORTED);
    assert_int_equal(qr_dequantize(QR_TYPE_Q8_0, x, x, 31), QR_ERR_INVALID_ARG);
    assert_non_null(strstr(qr_last_error(), "block size 32"));
}

/* f16: every half converts to float and back to itself; rounding cases by hand */
static void test_fp16_round_trip(void **state) {
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue; /* NaN payloads */
        float f;
        uint16_t hh = (uint16_t)h, back;
        assert_int_equal(qr_dequantize(QR_TYPE_F16, &hh, &f, 1), QR_OK);
        assert_int_equal(qr_quantize(QR_TYPE_F16, &f, &back, 1), QR_OK);
        if (back != hh) fail_msg("half 0x%04x -> %g -> 0x%04x", h, f, back);
    }
    /* halfway cases round to even: 1 + 2^-11 -> 1.0 (0x3c00); 1 + 3*2^-11 -> 0x3c02 */
    float cases[] = {1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, 65520.0f, 0x1p-25f, 0x1.8p-25f, -0.0f};
    uint16_t want[] = {0x3c00, 0x3c02, 0x7c00, 0x0000, 0x0001, 0x8000};
    for (int i = 0; i < 6; i++) {
        uint16_t h;
        qr_quantize(QR_TYPE_F16, &cases[i], &h, 1);
        if (h != want[i]) fail_msg("%a -> 0x%04x, want 0x%04x", cases[i], h, want[i]);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alltypes_bit_exact),
        cmocka_unit_test(test_type_table),
        cmocka_unit_test(test_fp16_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
