/* test_imatrix_write.c - the importance matrix writers (imatrix_write.c) on a hand-worked case:
 * the legacy imatrix.dat byte for byte as llama-imatrix's save_imatrix_legacy lays it out
 * (entries in name order, ncall = ceil(max count / chunk size), values (sum / count) * ncall,
 * 1 * ncall for a matrix that saw nothing, an entry that saw nothing left out, then the chunk
 * count and the dataset), the GGUF one key by key and tensor by tensor as save_imatrix writes
 * it, both read back by qr_imatrix_load to the same importances, and a write that cannot
 * happen refused with no file left. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include <cmocka.h>

#include "quantize/imatrix_internal.h"
#include "test_util.h"

static char dir[] = "/tmp/quarrel-imatrix-write.XXXXXX";

static int setup(void **state) {
    (void)state;
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd);
}

/* four entries, not in name order; chunk size 4 */
static float q_sums[] = {3, 6}, down_sums[] = {8, 2, 0}, exps_sums[] = {1, 2, 4, 8},
             none_sums[] = {5, 5};
static int64_t q_counts[] = {6}, down_counts[] = {8}, exps_counts[] = {0, 4}, none_counts[] = {0};
static const qr_imatrix_stats entries[] = {
    {"blk.1.ffn_down.weight", 3, 1, down_sums, down_counts},
    {"blk.2.unused.weight", 2, 1, none_sums, none_counts},
    {"blk.0.attn_q.weight", 2, 1, q_sums, q_counts},
    {"blk.0.exps.weight", 2, 2, exps_sums, exps_counts},
};
static const qr_imatrix_meta meta = {"data.txt", 3, 4};

typedef struct buf {
    uint8_t b[1024];
    size_t n;
} buf;

static void put(buf *b, const void *p, size_t n) {
    memcpy(b->b + b->n, p, n);
    b->n += n;
}
static void put_i32(buf *b, int32_t v) {
    put(b, &v, 4);
}
static void put_entry(buf *b, const char *name, int32_t ncall, int32_t nval, const float *v) {
    put_i32(b, (int32_t)strlen(name));
    put(b, name, strlen(name));
    put_i32(b, ncall);
    put_i32(b, nval);
    put(b, v, (size_t)nval * 4);
}

static void test_dat(void **state) {
    (void)state;
    char path[256];
    snprintf(path, sizeof path, "%s/im.dat", dir);
    assert_int_equal(qr_imatrix_write_dat(path, entries, 4, &meta), QR_OK);
    buf want = {.n = 0};
    put_i32(&want, 3); /* blk.2.unused.weight saw no rows: left out */
    /* q: ncall ceil(6/4) = 2; 3/6*2, 6/6*2 */
    put_entry(&want, "blk.0.attn_q.weight", 2, 2, (const float[]){1, 2});
    /* exps: ncall ceil(4/4) = 1; matrix 0 saw nothing: 1 * 1; matrix 1: 4/4, 8/4 */
    put_entry(&want, "blk.0.exps.weight", 1, 4, (const float[]){1, 1, 1, 2});
    /* down: ncall ceil(8/4) = 2; 8/8*2, 2/8*2, 0 */
    put_entry(&want, "blk.1.ffn_down.weight", 2, 3, (const float[]){2, 0.5f, 0});
    put_i32(&want, 3);
    put_i32(&want, 8);
    put(&want, "data.txt", 8);
    size_t len = 0;
    char *got = qr_test_read_file(path, &len);
    assert_non_null(got);
    assert_int_equal(len, want.n);
    assert_memory_equal(got, want.b, want.n);
    free(got);
}

static void test_gguf(void **state) {
    (void)state;
    char path[256];
    snprintf(path, sizeof path, "%s/im.gguf", dir);
    assert_int_equal(qr_imatrix_write_gguf(path, entries, 4, &meta), QR_OK);
    qr_gguf *g;
    assert_int_equal(qr_gguf_open(path, &g), QR_OK);
    assert_int_equal(qr_gguf_n_kv(g), 4);
    assert_string_equal(qr_gguf_key(g, 0), "general.type");
    assert_string_equal(qr_gguf_get_str(g, "general.type"), "imatrix");
    assert_string_equal(qr_gguf_key(g, 1), "imatrix.datasets");
    const qr_gguf_value *ds = qr_gguf_get_arr(g, "imatrix.datasets");
    assert_non_null(ds);
    assert_int_equal(ds->arr.type, QR_GGUF_STRING);
    assert_int_equal(ds->arr.n, 1);
    assert_string_equal(ds->arr.items[0].str.ptr, "data.txt");
    assert_string_equal(qr_gguf_key(g, 2), "imatrix.chunk_count");
    assert_int_equal(qr_gguf_value_at(g, 2)->type, QR_GGUF_UINT32);
    assert_int_equal(qr_gguf_value_at(g, 2)->u64, 3);
    assert_string_equal(qr_gguf_key(g, 3), "imatrix.chunk_size");
    assert_int_equal(qr_gguf_value_at(g, 3)->type, QR_GGUF_UINT32);
    assert_int_equal(qr_gguf_value_at(g, 3)->u64, 4);

    static const struct {
        const char *name;
        int64_t ne0, ne1;
        float v[4];
    } want[] = {
        {"blk.0.attn_q.weight.in_sum2", 2, 1, {3, 6}},
        {"blk.0.attn_q.weight.counts", 1, 1, {6}},
        {"blk.0.exps.weight.in_sum2", 2, 2, {1, 2, 4, 8}},
        {"blk.0.exps.weight.counts", 1, 2, {0, 4}},
        {"blk.1.ffn_down.weight.in_sum2", 3, 1, {8, 2, 0}},
        {"blk.1.ffn_down.weight.counts", 1, 1, {8}},
        {"blk.2.unused.weight.in_sum2", 2, 1, {5, 5}}, /* written even with no rows */
        {"blk.2.unused.weight.counts", 1, 1, {0}},
    };
    assert_int_equal(qr_gguf_n_tensors(g), 8);
    for (int i = 0; i < 8; i++) {
        const qr_gguf_tensor *t = qr_gguf_tensor_at(g, i);
        assert_string_equal(t->name, want[i].name);
        assert_int_equal(t->type, QR_TYPE_F32);
        assert_int_equal(t->n_dims, 2);
        assert_int_equal(t->ne[0], want[i].ne0);
        assert_int_equal(t->ne[1], want[i].ne1);
        assert_memory_equal(t->data, want[i].v, (size_t)(want[i].ne0 * want[i].ne1) * 4);
    }
    qr_gguf_free(g);
}

/* both files read back to the same importances (the GGUF one also has the empty entry) */
static void test_read_back(void **state) {
    (void)state;
    char dat[256], gguf[256];
    snprintf(dat, sizeof dat, "%s/im.dat", dir);
    snprintf(gguf, sizeof gguf, "%s/im.gguf", dir);
    assert_int_equal(qr_imatrix_write_dat(dat, entries, 4, &meta), QR_OK);
    assert_int_equal(qr_imatrix_write_gguf(gguf, entries, 4, &meta), QR_OK);
    qr_imatrix *a, *b;
    assert_int_equal(qr_imatrix_load(dat, &a), QR_OK);
    assert_int_equal(qr_imatrix_load(gguf, &b), QR_OK);
    assert_int_equal(qr_imatrix_n_entries(a), 3);
    assert_int_equal(qr_imatrix_n_entries(b), 4);
    static const struct {
        const char *name;
        int64_t n;
        float v[4];
    } want[] = {{"blk.0.attn_q.weight", 2, {0.5f, 1}},
                {"blk.0.exps.weight", 4, {1, 1, 1, 2}},
                {"blk.1.ffn_down.weight", 3, {1, 0.25f, 0}}};
    for (int i = 0; i < 3; i++) {
        int64_t na, nb;
        const float *va = qr_imatrix_find(a, want[i].name, &na);
        const float *vb = qr_imatrix_find(b, want[i].name, &nb);
        assert_non_null(va);
        assert_non_null(vb);
        assert_int_equal(na, want[i].n);
        assert_int_equal(nb, want[i].n);
        for (int64_t j = 0; j < na; j++) {
            assert_float_equal(va[j], want[i].v[j], 1e-7);
            assert_float_equal(vb[j], want[i].v[j], 1e-7);
        }
    }
    qr_imatrix_free(a);
    qr_imatrix_free(b);
}

/* no dataset: an empty array in the GGUF file, a name of length 0 in the .dat one */
static void test_no_dataset(void **state) {
    (void)state;
    char path[256];
    const qr_imatrix_meta none = {NULL, 2, 4};
    snprintf(path, sizeof path, "%s/none.gguf", dir);
    assert_int_equal(qr_imatrix_write_gguf(path, entries + 2, 1, &none), QR_OK);
    qr_gguf *g;
    assert_int_equal(qr_gguf_open(path, &g), QR_OK);
    const qr_gguf_value *ds = qr_gguf_get_arr(g, "imatrix.datasets");
    assert_non_null(ds);
    assert_int_equal(ds->arr.n, 0);
    qr_gguf_free(g);
    snprintf(path, sizeof path, "%s/none.dat", dir);
    assert_int_equal(qr_imatrix_write_dat(path, entries + 2, 1, &none), QR_OK);
    size_t len = 0;
    char *got = qr_test_read_file(path, &len);
    assert_non_null(got);
    int32_t tail[2];
    memcpy(tail, got + len - 8, 8);
    assert_int_equal(tail[0], 2);
    assert_int_equal(tail[1], 0);
    free(got);
}

static void test_unwritable(void **state) {
    (void)state;
    char path[256];
    snprintf(path, sizeof path, "%s/no/such/dir/im.dat", dir);
    assert_int_equal(qr_imatrix_write_dat(path, entries, 4, &meta), QR_ERR_IO);
    assert_non_null(strstr(qr_last_error(), "cannot create"));
    snprintf(path, sizeof path, "%s/no/such/dir/im.gguf", dir);
    assert_int_equal(qr_imatrix_write_gguf(path, entries, 4, &meta), QR_ERR_IO);
    assert_non_null(strstr(qr_last_error(), "cannot create"));
    assert_int_equal(access(path, F_OK), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dat),        cmocka_unit_test(test_gguf),
        cmocka_unit_test(test_read_back),  cmocka_unit_test(test_no_dataset),
        cmocka_unit_test(test_unwritable),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
