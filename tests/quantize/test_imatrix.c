/* test_imatrix.c - qr_imatrix_load on hand-made files of both of llama.cpp's formats: the
 * legacy imatrix.dat (importance = sums / ncall, sums as stored for ncall 0) and the GGUF one
 * (in_sum2 / counts per matrix, 1 for a count of 0), and every malformed input refused with a
 * message saying what is wrong. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include <cmocka.h>

#include "quarrel.h"

/* ---- legacy files, built byte by byte ---- */

typedef struct buf {
    uint8_t b[4096];
    size_t n;
} buf;

static void put_i32(buf *b, int32_t v) {
    memcpy(b->b + b->n, &v, 4);
    b->n += 4;
}
static void put_f32(buf *b, float v) {
    memcpy(b->b + b->n, &v, 4);
    b->n += 4;
}
static void put_bytes(buf *b, const void *p, size_t n) {
    memcpy(b->b + b->n, p, n);
    b->n += n;
}
static void put_entry(buf *b, const char *name, int32_t ncall, int32_t nval, const float *v) {
    put_i32(b, (int32_t)strlen(name));
    put_bytes(b, name, strlen(name));
    put_i32(b, ncall);
    put_i32(b, nval);
    for (int32_t i = 0; i < nval; i++)
        put_f32(b, v[i]);
}

/* expect a refusal whose message contains want */
static void expect_error(const buf *b, const char *want) {
    qr_imatrix *im = (qr_imatrix *)1;
    qr_status st = qr_imatrix_load_memory(b->b, b->n, &im);
    if (st == QR_OK || !strstr(qr_last_error(), want))
        fail_msg("want an error with '%s', got status %d: '%s'", want, (int)st, qr_last_error());
    assert_null(im);
}

static void test_legacy(void **state) {
    (void)state;
    buf b = {.n = 0};
    const float q[3] = {2, 4, 6}, k[2] = {1.5f, 3};
    put_i32(&b, 2);
    put_entry(&b, "blk.0.attn_q.weight", 2, 3, q);
    put_entry(&b, "blk.0.attn_k.weight", 0, 2, k);
    qr_imatrix *im;
    assert_int_equal(qr_imatrix_load_memory(b.b, b.n, &im), QR_OK);
    assert_int_equal(qr_imatrix_n_entries(im), 2);
    /* sorted by name */
    assert_string_equal(qr_imatrix_entry(im, 0, NULL, NULL), "blk.0.attn_k.weight");
    int64_t n;
    const float *v = qr_imatrix_find(im, "blk.0.attn_q.weight", &n);
    assert_non_null(v);
    assert_int_equal(n, 3);
    assert_true(v[0] == 1 && v[1] == 2 && v[2] == 3); /* sums / ncall */
    v = qr_imatrix_find(im, "blk.0.attn_k.weight", &n);
    assert_int_equal(n, 2);
    assert_true(v[0] == 1.5f && v[1] == 3); /* ncall 0: as stored */
    assert_null(qr_imatrix_find(im, "blk.1.attn_q.weight", &n));
    assert_null(qr_imatrix_entry(im, 2, NULL, NULL));
    qr_imatrix_free(im);

    /* with the trailer llama-imatrix writes: chunk count and dataset name */
    put_i32(&b, 10);
    put_i32(&b, 8);
    put_bytes(&b, "wiki.txt", 8);
    assert_int_equal(qr_imatrix_load_memory(b.b, b.n, &im), QR_OK);
    assert_int_equal(qr_imatrix_n_entries(im), 2);
    qr_imatrix_free(im);
}

static void test_legacy_errors(void **state) {
    (void)state;
    const float v[2] = {1, 2};
    buf b = {.n = 0};
    expect_error(&b, "no entry count");
    put_i32(&b, 0);
    expect_error(&b, "entry count 0");
    b.n = 0;
    put_i32(&b, -3);
    expect_error(&b, "entry count -3");

    b.n = 0; /* fewer entries than announced */
    put_i32(&b, 2);
    put_entry(&b, "a.weight", 1, 2, v);
    expect_error(&b, "entry 2 of 2 is missing");

    b.n = 0; /* truncated inside the values */
    put_i32(&b, 1);
    put_entry(&b, "a.weight", 1, 2, v);
    b.n -= 2;
    expect_error(&b, "truncated: 2 values need 8 bytes");

    b.n = 0; /* truncated inside the name */
    put_i32(&b, 1);
    put_i32(&b, 20);
    put_bytes(&b, "short", 5);
    expect_error(&b, "truncated name");

    b.n = 0;
    put_i32(&b, 1);
    put_entry(&b, "a.weight", -1, 2, v);
    expect_error(&b, "negative call count -1");

    b.n = 0;
    put_i32(&b, 1);
    put_entry(&b, "a.weight", 1, 0, v);
    expect_error(&b, "0 values (at least 1 needed)");

    b.n = 0;
    put_i32(&b, 1);
    put_entry(&b, "a.weight", 1, -5, v);
    expect_error(&b, "-5 values");

    b.n = 0;
    put_i32(&b, 1);
    put_i32(&b, -4);
    expect_error(&b, "negative name length -4");

    b.n = 0;
    put_i32(&b, 1);
    put_i32(&b, 0x7fffffff);
    expect_error(&b, "too long");

    char long_name[80];
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    b.n = 0;
    put_i32(&b, 1);
    put_entry(&b, long_name, 1, 2, v);
    expect_error(&b, "name of 79 bytes is too long (at most 63)");

    b.n = 0;
    put_i32(&b, 1);
    put_entry(&b, "", 1, 2, v);
    expect_error(&b, "empty name");

    b.n = 0;
    put_i32(&b, 1);
    put_i32(&b, 3);
    put_bytes(&b, "a\0b", 3);
    put_i32(&b, 1);
    put_i32(&b, 1);
    put_f32(&b, 1);
    expect_error(&b, "NUL");

    b.n = 0;
    put_i32(&b, 2);
    put_entry(&b, "a.weight", 1, 2, v);
    put_entry(&b, "a.weight", 1, 2, v);
    expect_error(&b, "'a.weight' appears twice");

    const float bad[2] = {1, -2};
    b.n = 0;
    put_i32(&b, 1);
    put_entry(&b, "a.weight", 1, 2, bad);
    expect_error(&b, "value 1 is -2");

    b.n = 0; /* a trailer cut short */
    put_i32(&b, 1);
    put_entry(&b, "a.weight", 1, 2, v);
    put_i32(&b, 10);
    expect_error(&b, "truncated trailer");
    put_i32(&b, 8);
    put_bytes(&b, "wiki", 4);
    expect_error(&b, "dataset name of 8 bytes but 4 left");
}

/* ---- GGUF files, through the writer ---- */

static char path[256];

static int setup(void **state) {
    (void)state;
    snprintf(path, sizeof path, "imatrix-test.%ld.gguf", (long)getpid());
    return 0;
}
static int teardown(void **state) {
    (void)state;
    unlink(path);
    return 0;
}

enum { WITH_TYPE = 1, WITH_DATASETS = 2, WITH_COUNT = 4, WITH_SIZE = 8, ALL_KEYS = 15 };

static qr_gguf_writer *gguf_start(int keys, const char *general_type) {
    qr_gguf_writer *w = qr_gguf_writer_create();
    assert_non_null(w);
    if (keys & WITH_TYPE)
        assert_int_equal(qr_gguf_writer_set_str(w, "general.type", general_type), QR_OK);
    if (keys & WITH_DATASETS) {
        qr_gguf_value item = {.type = QR_GGUF_STRING, .str = {"wiki.txt", 8}};
        qr_gguf_value arr = {.type = QR_GGUF_ARRAY,
                             .arr = {.type = QR_GGUF_STRING, .n = 1, .items = &item}};
        assert_int_equal(qr_gguf_writer_set(w, "imatrix.datasets", &arr), QR_OK);
    }
    if (keys & WITH_COUNT)
        assert_int_equal(qr_gguf_writer_set_u32(w, "imatrix.chunk_count", 4), QR_OK);
    if (keys & WITH_SIZE)
        assert_int_equal(qr_gguf_writer_set_u32(w, "imatrix.chunk_size", 512), QR_OK);
    return w;
}

static void add(qr_gguf_writer *w, const char *name, int type, int64_t ne0, int64_t ne1,
                const void *data) {
    const int64_t ne[2] = {ne0, ne1};
    const size_t es = type == QR_TYPE_F16 ? 2 : 4;
    assert_int_equal(
        qr_gguf_writer_add_tensor(w, name, type, 2, ne, data, (size_t)(ne0 * ne1) * es), QR_OK);
}

static qr_status gguf_load(qr_gguf_writer *w, qr_imatrix **im) {
    assert_int_equal(qr_gguf_writer_write(w, path), QR_OK);
    qr_gguf_writer_free(w);
    return qr_imatrix_load(path, im);
}

static void gguf_expect_error(qr_gguf_writer *w, const char *want) {
    qr_imatrix *im = (qr_imatrix *)1;
    qr_status st = gguf_load(w, &im);
    if (st == QR_OK || !strstr(qr_last_error(), want))
        fail_msg("want an error with '%s', got status %d: '%s'", want, (int)st, qr_last_error());
    assert_null(im);
}

static void test_gguf(void **state) {
    (void)state;
    /* two experts of 3 columns: counts 4 and 0 */
    const float sums[6] = {4, 8, 12, 5, 6, 7}, counts[2] = {4, 0};
    const float q[2] = {3, 6}, qc[1] = {3};
    qr_gguf_writer *w = gguf_start(ALL_KEYS, "imatrix");
    add(w, "blk.0.ffn_up_exps.weight.in_sum2", QR_TYPE_F32, 3, 2, sums);
    add(w, "blk.0.ffn_up_exps.weight.counts", QR_TYPE_F32, 1, 2, counts);
    add(w, "blk.0.attn_q.weight.in_sum2", QR_TYPE_F32, 2, 1, q);
    add(w, "blk.0.attn_q.weight.counts", QR_TYPE_F32, 1, 1, qc);
    add(w, "something.else", QR_TYPE_F32, 2, 1, q); /* ignored, as llama.cpp does */
    qr_imatrix *im;
    assert_int_equal(gguf_load(w, &im), QR_OK);
    assert_int_equal(qr_imatrix_n_entries(im), 2);
    int64_t n;
    const float *v = qr_imatrix_find(im, "blk.0.ffn_up_exps.weight", &n);
    assert_non_null(v);
    assert_int_equal(n, 6);
    assert_true(v[0] == 1 && v[1] == 2 && v[2] == 3);
    assert_true(v[3] == 1 && v[4] == 1 && v[5] == 1); /* count 0: importance 1 */
    v = qr_imatrix_find(im, "blk.0.attn_q.weight", &n);
    assert_int_equal(n, 2);
    assert_true(v[0] == 1 && v[1] == 2);
    qr_imatrix_free(im);

    /* general.type is optional (llama.cpp does not look at it) */
    w = gguf_start(WITH_DATASETS | WITH_COUNT | WITH_SIZE, NULL);
    add(w, "a.weight.in_sum2", QR_TYPE_F32, 2, 1, q);
    add(w, "a.weight.counts", QR_TYPE_F32, 1, 1, qc);
    assert_int_equal(gguf_load(w, &im), QR_OK);
    qr_imatrix_free(im);
}

static void test_gguf_errors(void **state) {
    (void)state;
    const float q[4] = {3, 6, 9, 12}, qc[2] = {3, 3}, neg[1] = {-1};
    const int keys[3] = {WITH_DATASETS, WITH_COUNT, WITH_SIZE};
    const char *names[3] = {"imatrix.datasets", "imatrix.chunk_count", "imatrix.chunk_size"};
    for (int i = 0; i < 3; i++) {
        qr_gguf_writer *w = gguf_start(ALL_KEYS & ~keys[i], "imatrix");
        add(w, "a.weight.in_sum2", QR_TYPE_F32, 2, 1, q);
        add(w, "a.weight.counts", QR_TYPE_F32, 1, 1, qc);
        gguf_expect_error(w, names[i]);
    }
    qr_gguf_writer *w = gguf_start(ALL_KEYS, "model");
    add(w, "a.weight.in_sum2", QR_TYPE_F32, 2, 1, q);
    add(w, "a.weight.counts", QR_TYPE_F32, 1, 1, qc);
    gguf_expect_error(w, "general.type is 'model', not 'imatrix'");

    w = gguf_start(ALL_KEYS, "imatrix");
    gguf_expect_error(w, "no entries");

    w = gguf_start(ALL_KEYS, "imatrix");
    add(w, "a.weight.in_sum2", QR_TYPE_F32, 2, 1, q);
    gguf_expect_error(w, "'a.weight.in_sum2' has no matching 'a.weight.counts'");

    w = gguf_start(ALL_KEYS, "imatrix");
    add(w, "a.weight.counts", QR_TYPE_F32, 1, 1, qc);
    gguf_expect_error(w, "'a.weight.counts' has no matching 'a.weight.in_sum2'");

    w = gguf_start(ALL_KEYS, "imatrix"); /* 2 matrices of sums, 1 count */
    add(w, "a.weight.in_sum2", QR_TYPE_F32, 2, 2, q);
    add(w, "a.weight.counts", QR_TYPE_F32, 1, 1, qc);
    gguf_expect_error(w, "do not match");

    w = gguf_start(ALL_KEYS, "imatrix"); /* counts laid out [2, 1] */
    add(w, "a.weight.in_sum2", QR_TYPE_F32, 2, 2, q);
    add(w, "a.weight.counts", QR_TYPE_F32, 2, 1, qc);
    gguf_expect_error(w, "do not match");

    const uint16_t h[2] = {0x3c00, 0x3c00};
    w = gguf_start(ALL_KEYS, "imatrix");
    add(w, "a.weight.in_sum2", QR_TYPE_F16, 2, 1, h);
    add(w, "a.weight.counts", QR_TYPE_F32, 1, 1, qc);
    gguf_expect_error(w, "must be F32");

    w = gguf_start(ALL_KEYS, "imatrix");
    add(w, "a.weight.in_sum2", QR_TYPE_F32, 2, 1, q);
    add(w, "a.weight.counts", QR_TYPE_F32, 1, 1, neg);
    gguf_expect_error(w, "count 0 is -1");

    /* a truncated GGUF: the GGUF reader's message, marked as the imatrix's */
    w = gguf_start(ALL_KEYS, "imatrix");
    add(w, "a.weight.in_sum2", QR_TYPE_F32, 2, 1, q);
    add(w, "a.weight.counts", QR_TYPE_F32, 1, 1, qc);
    assert_int_equal(qr_gguf_writer_write(w, path), QR_OK);
    qr_gguf_writer_free(w);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static uint8_t bytes[8192];
    size_t n = fread(bytes, 1, sizeof bytes, f);
    fclose(f);
    qr_imatrix *im = (qr_imatrix *)1;
    assert_int_not_equal(qr_imatrix_load_memory(bytes, n / 2, &im), QR_OK);
    assert_non_null(strstr(qr_last_error(), "GGUF imatrix"));
    assert_null(im);
    assert_int_not_equal(qr_imatrix_load_memory(bytes, 40, &im), QR_OK);
    assert_non_null(strstr(qr_last_error(), "GGUF imatrix"));

    assert_int_equal(qr_imatrix_load("/nonexistent/imatrix.dat", &im), QR_ERR_IO);
    assert_non_null(strstr(qr_last_error(), "/nonexistent/imatrix.dat"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_legacy),
        cmocka_unit_test(test_legacy_errors),
        cmocka_unit_test_setup_teardown(test_gguf, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gguf_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
