/* test_quantize_file.c - qr_quantize_file on small hand-made GGUF files: metadata copied and
 * file type set, 1-D tensors kept, threads not changing the bytes, and every bad input (unknown
 * type, missing file, quantized input, NaN weights, no architecture for a mix, unwritable
 * output) refused with a message naming it and no output file left behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <math.h>
#include <unistd.h>

#include <cmocka.h>

#include "quarrel.h"

static char in_path[256], out_path[256], out2_path[256];

static int setup(void **state) {
    (void)state;
    snprintf(in_path, sizeof in_path, "quantize-file-in.%ld.gguf", (long)getpid());
    snprintf(out_path, sizeof out_path, "quantize-file-out.%ld.gguf", (long)getpid());
    snprintf(out2_path, sizeof out2_path, "quantize-file-out2.%ld.gguf", (long)getpid());
    return 0;
}

static int teardown(void **state) {
    (void)state;
    unlink(in_path);
    unlink(out_path);
    unlink(out2_path);
    return 0;
}

static bool exists(const char *path) {
    return access(path, F_OK) == 0;
}

/* A tiny llama-like file: a 256 x 8 matrix of type `type` (from a smooth pattern, with one
 * value replaced by `poison` at row 1, column 5 when poison is not 0), a 1-D norm, metadata. */
static void write_input(int type, float poison, bool with_arch) {
    enum { NE0 = 256, NE1 = 8 };
    static float x[NE0 * NE1];
    static uint8_t q[NE0 * NE1 * 4];
    for (int i = 0; i < NE0 * NE1; i++)
        x[i] = sinf(0.37f * (float)i) * (1.0f + (float)(i % 7));
    if (poison != 0.0f) x[1 * NE0 + 5] = poison;
    static float norm[NE0];
    for (int i = 0; i < NE0; i++)
        norm[i] = 1.0f + 0.01f * (float)i;
    if (type != QR_TYPE_F32) assert_int_equal(qr_quantize(type, x, q, NE0 * NE1), QR_OK);
    qr_gguf_writer *w = qr_gguf_writer_create();
    assert_non_null(w);
    if (with_arch) {
        assert_int_equal(qr_gguf_writer_set_str(w, "general.architecture", "llama"), QR_OK);
        assert_int_equal(qr_gguf_writer_set_u32(w, "llama.block_count", 1), QR_OK);
    }
    assert_int_equal(qr_gguf_writer_set_str(w, "general.name", "tiny"), QR_OK);
    assert_int_equal(qr_gguf_writer_set_u32(w, "general.file_type", 0), QR_OK);
    assert_int_equal(qr_gguf_writer_set_f32(w, "test.value", 1.5f), QR_OK);
    const int64_t ne[2] = {NE0, NE1}, ne_norm[1] = {NE0};
    assert_int_equal(qr_gguf_writer_add_tensor(w, "blk.0.attn_norm.weight", QR_TYPE_F32, 1, ne_norm,
                                               norm, sizeof norm),
                     QR_OK);
    assert_int_equal(qr_gguf_writer_add_tensor(w, "blk.0.attn_q.weight", type, 2, ne,
                                               type == QR_TYPE_F32 ? (void *)x : (void *)q,
                                               qr_type_row_bytes(type, NE0) * NE1),
                     QR_OK);
    assert_int_equal(qr_gguf_writer_write(w, in_path), QR_OK);
    qr_gguf_writer_free(w);
}

static void test_metadata_and_types(void **state) {
    (void)state;
    write_input(QR_TYPE_F32, 0.0f, true);
    qr_quantize_params p = {.n_threads = 1};
    if (qr_quantize_file(in_path, out_path, "q4_0", &p)) fail_msg("%s", qr_last_error());
    qr_gguf *in, *out;
    assert_int_equal(qr_gguf_open(in_path, &in), QR_OK);
    assert_int_equal(qr_gguf_open(out_path, &out), QR_OK);
    uint32_t v;
    assert_true(qr_gguf_get_u32(out, "general.file_type", &v));
    assert_int_equal(v, 2); /* LLAMA_FTYPE_MOSTLY_Q4_0 */
    assert_true(qr_gguf_get_u32(out, "general.quantization_version", &v));
    assert_int_equal(v, 2);
    assert_string_equal(qr_gguf_get_str(out, "general.name"), "tiny");
    float f;
    assert_true(qr_gguf_get_f32(out, "test.value", &f));
    assert_true(f == 1.5f);
    const qr_gguf_tensor *norm = qr_gguf_find_tensor(out, "blk.0.attn_norm.weight");
    const qr_gguf_tensor *norm_in = qr_gguf_find_tensor(in, "blk.0.attn_norm.weight");
    assert_int_equal(norm->type, QR_TYPE_F32);
    assert_memory_equal(norm->data, norm_in->data, norm_in->nbytes);
    const qr_gguf_tensor *m = qr_gguf_find_tensor(out, "blk.0.attn_q.weight");
    assert_int_equal(m->type, QR_TYPE_Q4_0);
    assert_int_equal(m->ne[0], 256);
    assert_int_equal(m->ne[1], 8);
    assert_int_equal(m->nbytes, 8 * 8 * 18);

    /* 4 threads write the same bytes as 1 */
    p.n_threads = 4;
    if (qr_quantize_file(in_path, out2_path, "Q4_0", &p)) fail_msg("%s", qr_last_error());
    qr_gguf *out2;
    assert_int_equal(qr_gguf_open(out2_path, &out2), QR_OK);
    const qr_gguf_tensor *m2 = qr_gguf_find_tensor(out2, "blk.0.attn_q.weight");
    assert_memory_equal(m->data, m2->data, m->nbytes);
    qr_gguf_free(out2);
    qr_gguf_free(in);
    qr_gguf_free(out);
}

/* a tensor already of the target type is copied byte for byte (here q8_0 into Q8_0) */
static void test_same_type_copied(void **state) {
    (void)state;
    write_input(QR_TYPE_Q8_0, 0.0f, true);
    qr_quantize_params p = {.n_threads = 2};
    if (qr_quantize_file(in_path, out_path, "Q8_0", &p)) fail_msg("%s", qr_last_error());
    qr_gguf *in, *out;
    assert_int_equal(qr_gguf_open(in_path, &in), QR_OK);
    assert_int_equal(qr_gguf_open(out_path, &out), QR_OK);
    const qr_gguf_tensor *a = qr_gguf_find_tensor(in, "blk.0.attn_q.weight");
    const qr_gguf_tensor *b = qr_gguf_find_tensor(out, "blk.0.attn_q.weight");
    assert_int_equal(b->type, QR_TYPE_Q8_0);
    assert_int_equal(a->nbytes, b->nbytes);
    assert_memory_equal(a->data, b->data, a->nbytes);
    qr_gguf_free(in);
    qr_gguf_free(out);
}

static void expect_error(const char *in, const char *out, const char *ftype, qr_status code,
                         const char *needle) {
    qr_quantize_params p = {.n_threads = 2};
    const qr_status st = qr_quantize_file(in, out, ftype, &p);
    if (st != code)
        fail_msg("%s -> %s: status %s, want %s (%s)", ftype, out, qr_status_name(st),
                 qr_status_name(code), qr_last_error());
    if (!strstr(qr_last_error(), needle))
        fail_msg("message '%s' does not contain '%s'", qr_last_error(), needle);
    if (out && exists(out)) fail_msg("%s was left behind", out);
}

static void test_bad_type_and_paths(void **state) {
    (void)state;
    write_input(QR_TYPE_F32, 0.0f, true);
    expect_error(in_path, out_path, "Q9_9", QR_ERR_INVALID_ARG, "unknown file type 'Q9_9'");
    expect_error(in_path, out_path, "q8_1", QR_ERR_INVALID_ARG, "unknown file type");
    /* the IQ grid, ternary and mxfp4 types: a tensor quantizer but no file mix yet (iq2_xxs
     * only with an importance matrix) */
    expect_error(in_path, out_path, "IQ3_XS", QR_ERR_UNSUPPORTED,
                 "file type 'IQ3_XS' is not supported yet: Quarrel quantizes single iq3_s "
                 "tensors but not yet llama.cpp's IQ3_XS file");
    expect_error(in_path, out_path, "iq2_m", QR_ERR_UNSUPPORTED, "single iq2_s tensors");
    expect_error(in_path, out_path, "IQ2_XXS", QR_ERR_UNSUPPORTED, "single iq2_xxs tensors");
    expect_error(in_path, out_path, "TQ1_0", QR_ERR_UNSUPPORTED, "single tq1_0 tensors");
    expect_error(in_path, out_path, "tq2_0", QR_ERR_UNSUPPORTED, "single tq2_0 tensors");
    expect_error(in_path, out_path, "MXFP4_MOE", QR_ERR_UNSUPPORTED,
                 "single mxfp4 tensors but not yet llama.cpp's MXFP4_MOE file");
    expect_error(in_path, out_path, NULL, QR_ERR_INVALID_ARG, "NULL file type");
    expect_error(NULL, out_path, "Q8_0", QR_ERR_INVALID_ARG, "NULL input path");
    expect_error("/nonexistent/model.gguf", out_path, "Q8_0", QR_ERR_IO,
                 "input '/nonexistent/model.gguf'");
    expect_error(in_path, "/nonexistent-dir/out.gguf", "Q8_0", QR_ERR_IO,
                 "output '/nonexistent-dir/out.gguf'");
}

static void test_requantize_refused(void **state) {
    (void)state;
    write_input(QR_TYPE_Q8_0, 0.0f, true);
    expect_error(in_path, out_path, "Q4_0", QR_ERR_UNSUPPORTED,
                 "tensor 'blk.0.attn_q.weight' is already q8_0");
}

static void test_non_finite_refused(void **state) {
    (void)state;
    write_input(QR_TYPE_F32, NAN, true);
    expect_error(in_path, out_path, "Q4_K", QR_ERR_NUMERIC,
                 "tensor 'blk.0.attn_q.weight': element 5 of row 1 is not finite");
    write_input(QR_TYPE_F32, INFINITY, true);
    expect_error(in_path, out_path, "Q8_0", QR_ERR_NUMERIC, "element 5 of row 1 is not finite");
}

static void test_mix_needs_architecture(void **state) {
    (void)state;
    write_input(QR_TYPE_F32, 0.0f, false);
    expect_error(in_path, out_path, "Q4_K_M", QR_ERR_FORMAT, "no general.architecture");
    /* plain types do not need it */
    qr_quantize_params p = {.n_threads = 1};
    if (qr_quantize_file(in_path, out_path, "Q6_K", &p)) fail_msg("%s", qr_last_error());
}

/* an importance matrix of one entry for blk.0.attn_q.weight with n values (2 i + 1) / 2 */
static qr_imatrix *one_entry_imatrix(int n) {
    static uint8_t b[4096];
    size_t len = 0;
    const char *name = "blk.0.attn_q.weight";
    const int32_t head[2] = {1, (int32_t)strlen(name)}, counts[2] = {2, n};
    memcpy(b, head, 8);
    len += 8;
    memcpy(b + len, name, strlen(name));
    len += strlen(name);
    memcpy(b + len, counts, 8);
    len += 8;
    for (int i = 0; i < n; i++, len += 4) {
        const float v = (float)(2 * i + 1);
        memcpy(b + len, &v, 4);
    }
    qr_imatrix *im;
    if (qr_imatrix_load_memory(b, len, &im)) fail_msg("%s", qr_last_error());
    return im;
}

/* IQ4_NL and IQ4_XS files with an importance: the entry named as the tensor is used (the bytes
 * are qr_quantize_rows' with it); a tensor of a type without an importance path is refused, as
 * is an entry of the wrong length; types that ggml quantizes without importance ignore it. */
static void test_imatrix(void **state) {
    (void)state;
    write_input(QR_TYPE_F32, 0.0f, true);
    enum { NE0 = 256, NE1 = 8 };
    static float x[NE0 * NE1], imp[NE0];
    static uint8_t want[NE0 * NE1], plain[NE0 * NE1];
    for (int i = 0; i < NE0 * NE1; i++)
        x[i] = sinf(0.37f * (float)i) * (1.0f + (float)(i % 7));
    for (int i = 0; i < NE0; i++)
        imp[i] = (float)(2 * i + 1) / 2.0f;
    qr_imatrix *im = one_entry_imatrix(NE0);
    const int types[2] = {QR_TYPE_IQ4_NL, QR_TYPE_IQ4_XS};
    const char *ftypes[2] = {"IQ4_NL", "iq4_xs"};
    for (int k = 0; k < 2; k++) {
        qr_quantize_params p = {.n_threads = 2, .imatrix = im};
        if (qr_quantize_file(in_path, out_path, ftypes[k], &p)) fail_msg("%s", qr_last_error());
        assert_int_equal(qr_quantize_rows(types[k], x, want, NE1, NE0, imp), QR_OK);
        assert_int_equal(qr_quantize_rows(types[k], x, plain, NE1, NE0, NULL), QR_OK);
        qr_gguf *out;
        assert_int_equal(qr_gguf_open(out_path, &out), QR_OK);
        const qr_gguf_tensor *m = qr_gguf_find_tensor(out, "blk.0.attn_q.weight");
        assert_int_equal(m->type, types[k]);
        assert_int_equal(m->nbytes, qr_type_row_bytes(types[k], NE0) * NE1);
        assert_memory_equal(m->data, want, m->nbytes);
        assert_memory_not_equal(m->data, plain, m->nbytes); /* the importance changed them */
        uint32_t v;
        assert_true(qr_gguf_get_u32(out, "general.file_type", &v));
        assert_int_equal(v, k == 0 ? 25 : 30);
        qr_gguf_free(out);
        unlink(out_path);
    }
    /* without an importance: the plain bytes */
    qr_quantize_params p = {.n_threads = 1};
    if (qr_quantize_file(in_path, out_path, "IQ4_XS", &p)) fail_msg("%s", qr_last_error());
    qr_gguf *out;
    assert_int_equal(qr_gguf_open(out_path, &out), QR_OK);
    assert_memory_equal(qr_gguf_find_tensor(out, "blk.0.attn_q.weight")->data, plain,
                        qr_type_row_bytes(QR_TYPE_IQ4_XS, NE0) * NE1);
    qr_gguf_free(out);
    unlink(out_path);

    /* a k-quant (or q4_0) tensor with an entry: refused, not quantized as if without */
    p.imatrix = im;
    const char *refused[3] = {"Q4_K_M", "Q6_K", "Q4_0"};
    for (int k = 0; k < 3; k++) {
        const qr_status st = qr_quantize_file(in_path, out_path, refused[k], &p);
        if (st != QR_ERR_UNSUPPORTED || !strstr(qr_last_error(), "blk.0.attn_q.weight") ||
            !strstr(qr_last_error(), "only iq4_nl and iq4_xs with an importance"))
            fail_msg("%s: status %s: %s", refused[k], qr_status_name(st), qr_last_error());
        assert_false(exists(out_path));
    }
    /* q8_0 and f16 are quantized without one by ggml too */
    if (qr_quantize_file(in_path, out_path, "Q8_0", &p)) fail_msg("%s", qr_last_error());
    unlink(out_path);
    /* --pure keeps IQ4_XS's type where a mix would pick another */
    p.pure = true;
    if (qr_quantize_file(in_path, out_path, "IQ4_XS", &p)) fail_msg("%s", qr_last_error());
    unlink(out_path);
    qr_imatrix_free(im);

    /* an entry of another length: another model's importance matrix */
    im = one_entry_imatrix(128);
    p.imatrix = im;
    const qr_status st = qr_quantize_file(in_path, out_path, "IQ4_NL", &p);
    if (st != QR_ERR_FORMAT || !strstr(qr_last_error(), "its importance has 128 values, not 256"))
        fail_msg("status %s: %s", qr_status_name(st), qr_last_error());
    assert_false(exists(out_path));
    qr_imatrix_free(im);
}

/* IQ4_XS rows that are not whole 256-blocks fall back to iq4_nl (llama.cpp's fallback) */
static void test_iq4_xs_fallback(void **state) {
    (void)state;
    enum { NE0 = 96, NE1 = 4 };
    static float x[NE0 * NE1];
    for (int i = 0; i < NE0 * NE1; i++)
        x[i] = cosf(0.11f * (float)i);
    qr_gguf_writer *w = qr_gguf_writer_create();
    assert_int_equal(qr_gguf_writer_set_str(w, "general.architecture", "llama"), QR_OK);
    assert_int_equal(qr_gguf_writer_set_u32(w, "llama.block_count", 1), QR_OK);
    const int64_t ne[2] = {NE0, NE1};
    assert_int_equal(
        qr_gguf_writer_add_tensor(w, "blk.0.attn_q.weight", QR_TYPE_F32, 2, ne, x, sizeof x),
        QR_OK);
    assert_int_equal(qr_gguf_writer_write(w, in_path), QR_OK);
    qr_gguf_writer_free(w);
    qr_quantize_params p = {.n_threads = 1, .pure = true};
    if (qr_quantize_file(in_path, out_path, "IQ4_XS", &p)) fail_msg("%s", qr_last_error());
    qr_gguf *out;
    assert_int_equal(qr_gguf_open(out_path, &out), QR_OK);
    assert_int_equal(qr_gguf_find_tensor(out, "blk.0.attn_q.weight")->type, QR_TYPE_IQ4_NL);
    qr_gguf_free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_metadata_and_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_type_copied, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_type_and_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_requantize_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_non_finite_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mix_needs_architecture, setup, teardown),
        cmocka_unit_test_setup_teardown(test_imatrix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_iq4_xs_fallback, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
