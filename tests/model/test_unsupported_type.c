/* test_unsupported_type.c - a model holding a type Quarrel reads but cannot multiply (q8_1,
 * an activation-only type) is refused at load, saying which matrix and which type, instead of
 * crashing at the first decode; the IQ family, ternary and mxfp4 types, which have dot
 * products, load and run as matrices; as a token embedding (only dequantised) any readable
 * type Quarrel can dequantise works. The model is stories260K with one tensor replaced by zero
 * blocks of the type. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "quarrel.h"

/* stories260K with tensor `name` as zero blocks of `type` */
static void write_with(const char *name, int type, const char *path) {
    qr_gguf *g;
    if (qr_gguf_open(QR_SHARED_DIR "/models/stories260K.gguf", &g) != QR_OK)
        fail_msg("%s", qr_last_error());
    qr_gguf_writer *w = qr_gguf_writer_create();
    assert_non_null(w);
    for (int64_t i = 0; i < qr_gguf_n_kv(g); i++) {
        if (!strcmp(qr_gguf_key(g, i), "general.alignment")) continue;
        assert_int_equal(qr_gguf_writer_set(w, qr_gguf_key(g, i), qr_gguf_value_at(g, i)), QR_OK);
    }
    void *zeros = NULL;
    for (int64_t i = 0; i < qr_gguf_n_tensors(g); i++) {
        const qr_gguf_tensor *t = qr_gguf_tensor_at(g, i);
        if (strcmp(t->name, name)) {
            assert_int_equal(qr_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne,
                                                       t->data, t->nbytes),
                             QR_OK);
            continue;
        }
        const size_t bytes = qr_type_row_bytes(type, t->ne[0]) * (size_t)t->ne[1];
        assert_true(bytes > 0);
        zeros = calloc(1, bytes);
        assert_non_null(zeros);
        assert_int_equal(
            qr_gguf_writer_add_tensor(w, t->name, type, t->n_dims, t->ne, zeros, bytes), QR_OK);
    }
    assert_non_null(zeros);
    assert_int_equal(qr_gguf_writer_write(w, path), QR_OK);
    qr_gguf_writer_free(w);
    free(zeros);
    qr_gguf_free(g);
}

static void expect_load_error(const char *path, const char *needle) {
    qr_model *m = NULL;
    assert_int_equal(qr_model_load(path, NULL, &m), QR_ERR_UNSUPPORTED);
    assert_null(m);
    if (!strstr(qr_last_error(), needle))
        fail_msg("message '%s' does not contain '%s'", qr_last_error(), needle);
}

static void test_matrix_without_kernel(void **state) {
    (void)state;
    write_with("blk.0.attn_q.weight", QR_TYPE_Q8_1, "unsupported-q8_1.gguf");
    expect_load_error("unsupported-q8_1.gguf",
                      "layer 0 attn_q is q8_1: matrix products of q8_1 weights are not "
                      "supported yet");
    remove("unsupported-q8_1.gguf");
}

/* a 3-token decode of the model in path: loads, runs, and gives finite logits */
static void expect_decodes(const char *path) {
    qr_model *m;
    if (qr_model_load(path, NULL, &m) != QR_OK) fail_msg("%s: %s", path, qr_last_error());
    qr_context_params cp = qr_context_default_params();
    cp.n_ctx = 64;
    cp.n_threads = 1;
    qr_context *ctx;
    if (qr_context_create(m, &cp, &ctx) != QR_OK) fail_msg("%s", qr_last_error());
    qr_batch b;
    assert_int_equal(qr_batch_init(&b, 4), QR_OK);
    for (int i = 0; i < 3; i++)
        qr_batch_add(&b, i + 1, i, 0, i == 2);
    if (qr_decode(ctx, &b) != QR_OK) fail_msg("%s", qr_last_error());
    qr_batch_free(&b);
    qr_context_free(ctx);
    qr_model_free(m);
}

/* iq4_nl and mxfp4 blocks (32) fit stories260K's rows of 64 */
static void test_iq_matrices_run(void **state) {
    (void)state;
    write_with("blk.0.attn_q.weight", QR_TYPE_IQ4_NL, "matrix-iq4_nl.gguf");
    expect_decodes("matrix-iq4_nl.gguf");
    remove("matrix-iq4_nl.gguf");
    write_with("output.weight", QR_TYPE_MXFP4, "matrix-mxfp4.gguf");
    expect_decodes("matrix-mxfp4.gguf");
    remove("matrix-mxfp4.gguf");
}

/* the embedding table is only dequantised, one row per token: zero rows give a finite pass */
static void test_embedding_dequantised(void **state) {
    (void)state;
    write_with("token_embd.weight", QR_TYPE_IQ4_NL, "embd-iq4_nl.gguf");
    qr_model *m;
    if (qr_model_load("embd-iq4_nl.gguf", NULL, &m) != QR_OK) fail_msg("%s", qr_last_error());
    qr_context_params cp = qr_context_default_params();
    cp.n_ctx = 64;
    cp.n_threads = 1;
    qr_context *ctx;
    if (qr_context_create(m, &cp, &ctx) != QR_OK) fail_msg("%s", qr_last_error());
    qr_batch b;
    assert_int_equal(qr_batch_init(&b, 4), QR_OK);
    for (int i = 0; i < 3; i++)
        qr_batch_add(&b, i + 1, i, 0, i == 2);
    if (qr_decode(ctx, &b) != QR_OK) fail_msg("%s", qr_last_error());
    qr_batch_free(&b);
    qr_context_free(ctx);
    qr_model_free(m);
    remove("embd-iq4_nl.gguf");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matrix_without_kernel),
        cmocka_unit_test(test_iq_matrices_run),
        cmocka_unit_test(test_embedding_dequantised),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
