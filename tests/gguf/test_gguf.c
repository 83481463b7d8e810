/* test_gguf.c - GGUF reader and writer: real files from ../shared, every metadata type,
 * a write/read round trip, and hand-made corrupt images that must fail with a clear error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "quarrel.h"

/* ---- a little byte builder for hand-made GGUF images ---- */

typedef struct buf {
    unsigned char *p;
    size_t n, cap;
} buf;

static void b_put(buf *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}
static void b_u32(buf *b, uint32_t v) {
    b_put(b, &v, 4);
}
static void b_u64(buf *b, uint64_t v) {
    b_put(b, &v, 8);
}
static void b_str(buf *b, const char *s) {
    b_u64(b, strlen(s));
    b_put(b, s, strlen(s));
}
static void b_pad(buf *b, size_t a) {
    while (b->n % a)
        b_put(b, "", 1);
}

/* magic, version, tensor count, KV count */
static buf header(uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    buf b = {0};
    b_put(&b, "GGUF", 4);
    b_u32(&b, version);
    b_u64(&b, n_tensors);
    b_u64(&b, n_kv);
    return b;
}

/* header + one u32 KV "a.b" = 7 + one F32 tensor "t" of 8 elements at offset 0 */
static buf good_image(void) {
    buf b = header(3, 1, 1);
    b_str(&b, "a.b");
    b_u32(&b, 4);
    b_u32(&b, 7);
    b_str(&b, "t");
    b_u32(&b, 1);
    b_u64(&b, 8);
    b_u32(&b, 0);
    b_u64(&b, 0);
    b_pad(&b, 32);
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    b_put(&b, x, sizeof x);
    return b;
}

static void expect_error(const buf *b, qr_status want, const char *needle) {
    qr_gguf *g = (qr_gguf *)1;
    qr_status st = qr_gguf_open_memory(b->p, b->n, &g);
    if (st != want || !strstr(qr_last_error(), needle))
        fail_msg("status %d (want %d), message '%s' (want '%s')", st, want, qr_last_error(),
                 needle);
    assert_null(g);
}

static void test_good_image(void **state) {
    (void)state;
    buf b = good_image();
    qr_gguf *g;
    assert_int_equal(qr_gguf_open_memory(b.p, b.n, &g), QR_OK);
    assert_int_equal(qr_gguf_version(g), 3);
    uint32_t v;
    assert_true(qr_gguf_get_u32(g, "a.b", &v));
    assert_int_equal(v, 7);
    const qr_gguf_tensor *t = qr_gguf_find_tensor(g, "t");
    assert_non_null(t);
    assert_int_equal(t->nbytes, 32);
    assert_int_equal(qr_gguf_data_offset(g), 96); /* 76 header bytes, aligned to 32 */
    float f;
    memcpy(&f, (const char *)t->data + 28, 4);
    assert_true(f == 8.0f);
    assert_null(qr_gguf_find_tensor(g, "u"));
    assert_int_equal(qr_gguf_find_key(g, "a.c"), -1);
    qr_gguf_free(g);
    free(b.p);
}

static void test_bad_magic_and_version(void **state) {
    (void)state;
    buf b = good_image();
    memcpy(b.p, "GGUX", 4);
    expect_error(&b, QR_ERR_FORMAT, "bad magic");
    memcpy(b.p, "GGUF", 4);
    uint32_t one = 1;
    memcpy(b.p + 4, &one, 4);
    expect_error(&b, QR_ERR_UNSUPPORTED, "unsupported GGUF version 1");
    uint32_t nine = 9;
    memcpy(b.p + 4, &nine, 4);
    expect_error(&b, QR_ERR_UNSUPPORTED, "version 9");
    free(b.p);
    buf e = {0};
    expect_error(&e, QR_ERR_FORMAT, "too short");
}

static void test_truncated_everywhere(void **state) {
    (void)state;
    buf b = good_image();
    for (size_t cut = 0; cut < b.n; cut++) {
        qr_gguf *g;
        /* a copy of exactly `cut` bytes, so ASan sees any read past the end */
        unsigned char *p = malloc(cut ? cut : 1);
        memcpy(p, b.p, cut);
        qr_status st = qr_gguf_open_memory(p, cut, &g);
        if (st == QR_OK) fail_msg("truncation at %zu accepted", cut);
        assert_true(strlen(qr_last_error()) > 0);
        free(p);
    }
    free(b.p);
}

static void test_absurd_counts(void **state) {
    (void)state;
    buf b = good_image();
    uint64_t huge = UINT64_MAX / 2;
    memcpy(b.p + 16, &huge, 8);
    expect_error(&b, QR_ERR_FORMAT, "absurd metadata count");
    free(b.p);
    b = good_image();
    memcpy(b.p + 8, &huge, 8);
    expect_error(&b, QR_ERR_FORMAT, "absurd tensor count");
    free(b.p);
    /* a string length larger than the file */
    b = good_image();
    memcpy(b.p + 24, &huge, 8);
    expect_error(&b, QR_ERR_FORMAT, "string length");
    free(b.p);
}

static void test_bad_tensors(void **state) {
    (void)state;
    /* offsets relative to good_image(): tensor info starts at 24+8+3+4+4 = 43 */
    const size_t ti = 43, ndims_at = ti + 8 + 1, ne0_at = ndims_at + 4, type_at = ne0_at + 8,
                 off_at = type_at + 4;
    buf b = good_image();
    uint32_t bad_type = 77;
    memcpy(b.p + type_at, &bad_type, 4);
    expect_error(&b, QR_ERR_UNSUPPORTED, "tensor 't': unknown tensor type 77");
    free(b.p);

    b = good_image();
    uint64_t off = 64;
    memcpy(b.p + off_at, &off, 8);
    expect_error(&b, QR_ERR_FORMAT, "past the end of the file");
    free(b.p);

    b = good_image();
    off = 4;
    memcpy(b.p + off_at, &off, 8);
    expect_error(&b, QR_ERR_FORMAT, "not a multiple of the alignment");
    free(b.p);

    b = good_image();
    uint32_t dims = 5;
    memcpy(b.p + ndims_at, &dims, 4);
    expect_error(&b, QR_ERR_FORMAT, "5 dimensions");
    free(b.p);

    b = good_image();
    uint64_t ne = UINT64_MAX;
    memcpy(b.p + ne0_at, &ne, 8);
    expect_error(&b, QR_ERR_FORMAT, "overflow");
    free(b.p);

    b = good_image();
    uint32_t q40 = 2; /* Q4_0 needs rows of 32 */
    memcpy(b.p + type_at, &q40, 4);
    expect_error(&b, QR_ERR_FORMAT, "not a multiple of the q4_0 block size");
    free(b.p);
}

static void test_duplicates_and_types(void **state) {
    (void)state;
    buf b = header(3, 0, 2);
    b_str(&b, "k");
    b_u32(&b, 4);
    b_u32(&b, 1);
    b_str(&b, "k");
    b_u32(&b, 4);
    b_u32(&b, 2);
    expect_error(&b, QR_ERR_FORMAT, "duplicate metadata key 'k'");
    free(b.p);

    b = header(3, 2, 0);
    for (int i = 0; i < 2; i++) {
        b_str(&b, "w");
        b_u32(&b, 1);
        b_u64(&b, 4);
        b_u32(&b, 0);
        b_u64(&b, 0);
    }
    b_pad(&b, 32);
    b_put(&b, "0123456789abcdef", 16);
    expect_error(&b, QR_ERR_FORMAT, "duplicate tensor name 'w'");
    free(b.p);

    b = header(2, 0, 1);
    b_str(&b, "x");
    b_u32(&b, 13);
    b_u32(&b, 0);
    expect_error(&b, QR_ERR_FORMAT, "key 'x' at offset 24: unknown value type 13");
    free(b.p);

    b = header(3, 0, 1);
    b_str(&b, "general.alignment");
    b_u32(&b, 4);
    b_u32(&b, 48);
    expect_error(&b, QR_ERR_FORMAT, "general.alignment is 48, not a power of two");
    free(b.p);

    /* arrays nested too deep */
    b = header(3, 0, 1);
    b_str(&b, "deep");
    b_u32(&b, 9);
    for (int i = 0; i < 20; i++) {
        b_u32(&b, 9);
        b_u64(&b, 1);
    }
    b_u32(&b, 4);
    b_u64(&b, 1);
    b_u32(&b, 0);
    expect_error(&b, QR_ERR_FORMAT, "nested deeper");
    free(b.p);
}

static void test_alltypes_kv(void **state) {
    (void)state;
    qr_gguf *g;
    if (qr_gguf_open(QR_SHARED_DIR "/reference/alltypes.gguf", &g) != QR_OK)
        fail_msg("%s", qr_last_error());
    int64_t i;
    const qr_gguf_value *v;
    v = qr_gguf_value_at(g, qr_gguf_find_key(g, "quarrel.kvtest.u8"));
    assert_int_equal(v->type, QR_GGUF_UINT8);
    assert_int_equal(v->u64, 200);
    v = qr_gguf_value_at(g, qr_gguf_find_key(g, "quarrel.kvtest.i8"));
    assert_int_equal(v->i64, -100);
    v = qr_gguf_value_at(g, qr_gguf_find_key(g, "quarrel.kvtest.u16"));
    assert_int_equal(v->u64, 60000);
    v = qr_gguf_value_at(g, qr_gguf_find_key(g, "quarrel.kvtest.i16"));
    assert_int_equal(v->i64, -30000);
    v = qr_gguf_value_at(g, qr_gguf_find_key(g, "quarrel.kvtest.u32"));
    assert_int_equal(v->u64, 4000000000u);
    v = qr_gguf_value_at(g, qr_gguf_find_key(g, "quarrel.kvtest.i32"));
    assert_int_equal(v->i64, -2000000000);
    float f;
    assert_true(qr_gguf_get_f32(g, "quarrel.kvtest.f32", &f));
    assert_true(f == 0.1f);
    bool bv;
    assert_true(qr_gguf_get_bool(g, "quarrel.kvtest.bool", &bv) && bv);
    assert_string_equal(qr_gguf_get_str(g, "quarrel.kvtest.str"),
                        "h\xc3\xa9llo \xe4\xb8\x96\xe7\x95\x8c");
    v = qr_gguf_value_at(g, qr_gguf_find_key(g, "quarrel.kvtest.u64"));
    assert_true(v->u64 == 9223372036854775813ull);
    v = qr_gguf_value_at(g, qr_gguf_find_key(g, "quarrel.kvtest.i64"));
    assert_true(v->i64 == -4611686018427387904ll);
    v = qr_gguf_value_at(g, qr_gguf_find_key(g, "quarrel.kvtest.f64"));
    assert_true(v->f64 == 1.0 / 3.0);
    v = qr_gguf_get_arr(g, "quarrel.kvtest.arr_i32");
    assert_int_equal(v->arr.n, 3);
    assert_int_equal(qr_gguf_arr_i64(v, 1), -2);
    v = qr_gguf_get_arr(g, "quarrel.kvtest.arr_f32");
    assert_true(qr_gguf_arr_f64(v, 1) == -1.5);
    v = qr_gguf_get_arr(g, "quarrel.kvtest.arr_str");
    assert_int_equal(v->arr.n, 3);
    assert_string_equal(v->arr.items[0].str.ptr, "a");
    assert_int_equal(v->arr.items[1].str.len, 0);
    assert_string_equal(v->arr.items[2].str.ptr, "\xc3\x9f\xc3\x9f");
    v = qr_gguf_get_arr(g, "quarrel.kvtest.arr_empty");
    assert_int_equal(v->arr.n, 0);
    /* an integer key of another width converts when in range, and refuses otherwise */
    uint32_t u;
    assert_true(qr_gguf_get_u32(g, "quarrel.kvtest.u8", &u) && u == 200);
    assert_false(qr_gguf_get_u32(g, "quarrel.kvtest.i8", &u));
    assert_false(qr_gguf_get_u32(g, "quarrel.kvtest.str", &u));
    i = qr_gguf_find_key(g, "general.alignment");
    assert_true(i >= 0);
    assert_int_equal(qr_gguf_alignment(g), 32);
    qr_gguf_free(g);
}

static void test_models_open(void **state) {
    (void)state;
    const char *names[] = {"stories260K", "smol135-q4_k_m", "qwen2-tiny-q8_0"};
    const int64_t n_tensors[] = {48, 272, 26};
    for (int m = 0; m < 3; m++) {
        char path[512];
        snprintf(path, sizeof path, "%s/models/%s.gguf", QR_SHARED_DIR, names[m]);
        qr_gguf *g;
        if (qr_gguf_open(path, &g) != QR_OK) fail_msg("%s", qr_last_error());
        assert_string_equal(qr_gguf_get_str(g, "general.architecture"), m == 2 ? "qwen2" : "llama");
        assert_int_equal(qr_gguf_n_tensors(g), n_tensors[m]);
        assert_non_null(qr_gguf_find_tensor(g, "token_embd.weight"));
        qr_gguf_free(g);
    }
}

static void test_open_errors(void **state) {
    (void)state;
    qr_gguf *g;
    assert_int_equal(qr_gguf_open("/nonexistent/x.gguf", &g), QR_ERR_IO);
    assert_non_null(strstr(qr_last_error(), "/nonexistent/x.gguf"));
    assert_int_equal(qr_gguf_open("/tmp", &g), QR_ERR_IO);
    assert_non_null(strstr(qr_last_error(), "not a regular file"));
}

/* Every truncation of a real model fails cleanly (the file is cut at 200 points). */
static void test_truncated_model(void **state) {
    (void)state;
    FILE *f = fopen(QR_SHARED_DIR "/models/stories260K.gguf", "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *all = malloc((size_t)n);
    assert_int_equal(fread(all, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    qr_gguf *g;
    assert_int_equal(qr_gguf_open_memory(all, (size_t)n, &g), QR_OK);
    size_t data_off = qr_gguf_data_offset(g);
    qr_gguf_free(g);
    for (int k = 0; k < 200; k++) {
        /* dense over the header and metadata, then sparse over the tensor data */
        size_t cut = k < 150 ? (size_t)k * data_off / 150
                             : data_off + (size_t)(k - 150) * ((size_t)n - data_off) / 50;
        if (cut >= (size_t)n) continue;
        unsigned char *p = malloc(cut ? cut : 1);
        memcpy(p, all, cut);
        if (qr_gguf_open_memory(p, cut, &g) == QR_OK)
            fail_msg("cut at %zu of %ld accepted", cut, n);
        free(p);
    }
    free(all);
}

static void test_writer_round_trip(void **state) {
    (void)state;
    qr_gguf_writer *w = qr_gguf_writer_create();
    assert_non_null(w);
    assert_int_equal(qr_gguf_writer_set_str(w, "general.architecture", "llama"), QR_OK);
    assert_int_equal(qr_gguf_writer_set_u32(w, "x.n", 5), QR_OK);
    assert_int_equal(qr_gguf_writer_set_u32(w, "x.n", 6), QR_OK); /* replaces */
    assert_int_equal(qr_gguf_writer_set_f32(w, "x.f", 0.25f), QR_OK);
    assert_int_equal(qr_gguf_writer_set_bool(w, "x.b", true), QR_OK);
    qr_gguf_value items[2] = {{.type = QR_GGUF_STRING, .str = {"ab", 2}},
                              {.type = QR_GGUF_STRING, .str = {"", 0}}};
    qr_gguf_value arr = {.type = QR_GGUF_ARRAY,
                         .arr = {.type = QR_GGUF_STRING, .n = 2, .items = items}};
    assert_int_equal(qr_gguf_writer_set(w, "x.strs", &arr), QR_OK);
    int32_t ints[3] = {-1, 0, 7};
    qr_gguf_value iarr = {.type = QR_GGUF_ARRAY,
                          .arr = {.type = QR_GGUF_INT32, .n = 3, .data = ints}};
    assert_int_equal(qr_gguf_writer_set(w, "x.ints", &iarr), QR_OK);
    float a[5] = {1, 2, 3, 4, 5};
    float b2[64];
    for (int i = 0; i < 64; i++)
        b2[i] = (float)i;
    int64_t ne_a[1] = {5}, ne_b[2] = {32, 2};
    assert_int_equal(qr_gguf_writer_add_tensor(w, "a", QR_TYPE_F32, 1, ne_a, a, sizeof a), QR_OK);
    assert_int_equal(qr_gguf_writer_add_tensor(w, "b", QR_TYPE_F32, 2, ne_b, b2, sizeof b2), QR_OK);
    assert_int_equal(qr_gguf_writer_add_tensor(w, "a", QR_TYPE_F32, 1, ne_a, a, sizeof a),
                     QR_ERR_INVALID_ARG);
    assert_non_null(strstr(qr_last_error(), "duplicate tensor name 'a'"));
    assert_int_equal(qr_gguf_writer_add_tensor(w, "c", QR_TYPE_F32, 1, ne_a, a, 4),
                     QR_ERR_INVALID_ARG);
    assert_non_null(strstr(qr_last_error(), "needs 20"));
    const char *path = "test_gguf_round_trip.gguf";
    assert_int_equal(qr_gguf_writer_write(w, path), QR_OK);
    qr_gguf_writer_free(w);

    qr_gguf *g;
    if (qr_gguf_open(path, &g) != QR_OK) fail_msg("%s", qr_last_error());
    assert_string_equal(qr_gguf_get_str(g, "general.architecture"), "llama");
    uint32_t n;
    assert_true(qr_gguf_get_u32(g, "x.n", &n) && n == 6);
    float f;
    assert_true(qr_gguf_get_f32(g, "x.f", &f) && f == 0.25f);
    const qr_gguf_value *v = qr_gguf_get_arr(g, "x.strs");
    assert_string_equal(v->arr.items[0].str.ptr, "ab");
    v = qr_gguf_get_arr(g, "x.ints");
    assert_int_equal(qr_gguf_arr_i64(v, 0), -1);
    assert_int_equal(qr_gguf_n_kv(g), 6);
    const qr_gguf_tensor *t = qr_gguf_find_tensor(g, "b");
    assert_int_equal(t->ne[0], 32);
    assert_int_equal(t->ne[1], 2);
    assert_int_equal(t->offset % 32, 0);
    assert_memory_equal(t->data, b2, sizeof b2);
    qr_gguf_free(g);

    /* an independent reader (the Python one in ../shared) reads it too */
    char cmd[1024];
    snprintf(
        cmd, sizeof cmd,
        "/usr/bin/python3 -c \"import sys; sys.path.insert(0, '%s/models/synth'); import gguf; "
        "r = gguf.GGUFReader('%s'); assert r.kv['x.n'] == 6, r.kv; "
        "assert list(r.kv['x.strs']) == ['ab', '']; "
        "assert float(r.tensor('b').numpy()[1][31]) == 63.0\" 2>&1",
        QR_SHARED_DIR, path);
    if (system("/usr/bin/python3 -c 'import numpy' 2>/dev/null") == 0)
        assert_int_equal(system(cmd), 0);
    remove(path);
}

static void test_writer_failure_leaves_nothing(void **state) {
    (void)state;
    qr_gguf_writer *w = qr_gguf_writer_create();
    assert_int_equal(qr_gguf_writer_write(w, "/nonexistent-dir/out.gguf"), QR_ERR_IO);
    assert_non_null(strstr(qr_last_error(), "/nonexistent-dir/out.gguf"));
    qr_gguf_writer_free(w);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_image),
        cmocka_unit_test(test_bad_magic_and_version),
        cmocka_unit_test(test_truncated_everywhere),
        cmocka_unit_test(test_absurd_counts),
        cmocka_unit_test(test_bad_tensors),
        cmocka_unit_test(test_duplicates_and_types),
        cmocka_unit_test(test_alltypes_kv),
        cmocka_unit_test(test_models_open),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_truncated_model),
        cmocka_unit_test(test_writer_round_trip),
        cmocka_unit_test(test_writer_failure_leaves_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
