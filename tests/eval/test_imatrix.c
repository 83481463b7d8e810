/* test_imatrix.c - qr_imatrix_compute through the C API on stories260K (the values themselves
 * are compared with llama-imatrix's in tests/quantize/test_imatrix_cli.sh): the GGUF and the
 * legacy .dat file of one run read back by qr_imatrix_load to the same importances, 7 entries
 * a layer; the progress callback once a chunk; no_ppl; the weight observer's calls (every
 * product by a weight, q, k and v on one shared input); and every bad parameter refused with a
 * message and no file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>
#include <unistd.h>

#include "quarrel.h"
#include "test_util.h"

#define MODEL QR_SHARED_DIR "/models/stories260K.gguf"
#define TEXT QR_SHARED_DIR "/reference/text/gpl-3.txt"

static qr_model *model;
static qr_token *tokens;
static int32_t n_tokens;
static char dir[] = "/tmp/quarrel-imatrix-api.XXXXXX";

static int setup(void **state) {
    (void)state;
    if (!mkdtemp(dir) || qr_model_load(MODEL, NULL, &model) != QR_OK) return -1;
    size_t len = 0;
    char *text = qr_test_read_file(TEXT, &len);
    if (!text) return -1;
    qr_status st = qr_eval_tokenize(model, text, len, &tokens, &n_tokens);
    free(text);
    return st == QR_OK ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    free(tokens);
    qr_model_free(model);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd);
}

typedef struct progress_log {
    int calls;
    int32_t last_chunk, n_chunk;
    double last_ppl;
} progress_log;

static void on_chunk(const qr_imatrix_chunk *c, void *user) {
    progress_log *p = user;
    assert_int_equal(c->chunk, p->calls);
    p->calls++;
    p->last_chunk = c->chunk;
    p->n_chunk = c->n_chunk;
    p->last_ppl = c->ppl_running;
}

static void test_formats_agree(void **state) {
    (void)state;
    char gguf[256], dat[256];
    snprintf(gguf, sizeof gguf, "%s/a.gguf", dir);
    snprintf(dat, sizeof dat, "%s/a.dat", dir);
    progress_log log = {0};
    qr_imatrix_params p = {.n_ctx = 64,
                           .n_chunks = 4,
                           .n_threads = 2,
                           .dataset = "gpl-3.txt",
                           .progress = on_chunk,
                           .progress_user = &log};
    qr_imatrix_result r;
    assert_int_equal(qr_imatrix_compute(model, tokens, n_tokens, &p, gguf, &r), QR_OK);
    assert_int_equal(log.calls, 4);
    assert_int_equal(log.n_chunk, 4);
    assert_int_equal(r.n_chunk, 4);
    assert_int_equal(r.n_ctx, 64);
    assert_int_equal(r.n_entries, 7 * qr_model_n_layer(model));
    assert_true(r.ppl > 1 && r.ppl < 1e4 && r.ppl_uncertainty > 0);
    assert_float_equal(log.last_ppl, r.ppl, 1e-9 * r.ppl);

    p.format = QR_IMATRIX_DAT;
    p.no_ppl = true;
    p.progress = NULL;
    qr_imatrix_result r2;
    assert_int_equal(qr_imatrix_compute(model, tokens, n_tokens, &p, dat, &r2), QR_OK);
    assert_true(r2.ppl == 0);
    assert_int_equal(r2.n_entries, r.n_entries);

    qr_imatrix *a, *b;
    assert_int_equal(qr_imatrix_load(gguf, &a), QR_OK);
    assert_int_equal(qr_imatrix_load(dat, &b), QR_OK);
    assert_int_equal(qr_imatrix_n_entries(a), r.n_entries);
    assert_int_equal(qr_imatrix_n_entries(b), r.n_entries);
    for (int64_t i = 0; i < qr_imatrix_n_entries(a); i++) {
        const float *va, *vb;
        int64_t na, nb;
        const char *name = qr_imatrix_entry(a, i, &va, &na);
        assert_string_equal(qr_imatrix_entry(b, i, &vb, &nb), name);
        assert_int_equal(na, nb);
        assert_int_equal(strncmp(name, "blk.", 4), 0);
        /* the .dat stores (sum / count) * ncall and the reader divides by ncall again */
        for (int64_t j = 0; j < na; j++)
            if (fabsf(va[j] - vb[j]) > 1e-6f * va[j])
                fail_msg("%s[%lld]: GGUF %g, .dat %g", name, (long long)j, (double)va[j],
                         (double)vb[j]);
    }
    /* q, k and v share their input, and so do gate and up */
    int64_t n;
    const float *q = qr_imatrix_find(a, "blk.2.attn_q.weight", &n);
    const float *v = qr_imatrix_find(a, "blk.2.attn_v.weight", NULL);
    assert_non_null(q);
    assert_non_null(v);
    assert_memory_equal(q, v, (size_t)n * sizeof *q);
    qr_imatrix_free(a);
    qr_imatrix_free(b);
}

typedef struct observed {
    int calls;
    const float *qkv_input;
    int qkv_same;
    char last[64];
} observed;

static void observer(const char *weight, int32_t expert, int32_t n_expert, const float *x,
                     int64_t n_cols, int32_t n_rows, void *user) {
    observed *o = user;
    o->calls++;
    assert_int_equal(expert, -1); /* a dense model */
    assert_int_equal(n_expert, 0);
    /* the layers multiply every token, the output head only the one whose logits are wanted */
    assert_int_equal(n_rows, strncmp(weight, "blk.", 4) ? 1 : 20);
    assert_true(n_cols == 64 || n_cols == 172);
    if (!strcmp(weight, "blk.0.attn_q.weight")) o->qkv_input = x;
    if ((!strcmp(weight, "blk.0.attn_k.weight") || !strcmp(weight, "blk.0.attn_v.weight")) &&
        x == o->qkv_input)
        o->qkv_same++;
    snprintf(o->last, sizeof o->last, "%s", weight);
}

static void test_observer(void **state) {
    (void)state;
    observed o = {0};
    qr_context_params cp = qr_context_default_params();
    cp.n_ctx = 64;
    cp.matmul_observer = observer;
    cp.matmul_user = &o;
    qr_context *ctx;
    assert_int_equal(qr_context_create(model, &cp, &ctx), QR_OK);
    qr_batch b;
    assert_int_equal(qr_batch_init(&b, 20), QR_OK);
    for (int32_t i = 0; i < 20; i++)
        qr_batch_add(&b, tokens[i], i, 0, i == 19);
    assert_int_equal(qr_decode(ctx, &b), QR_OK);
    /* 7 products a layer, then the output head */
    assert_int_equal(o.calls, 7 * qr_model_n_layer(model) + 1);
    assert_int_equal(o.qkv_same, 2);
    assert_string_equal(o.last, "output.weight");
    qr_batch_free(&b);
    qr_context_free(ctx);
}

static void expect_error(const qr_imatrix_params *p, int32_t n, const char *path, qr_status want,
                         const char *needle) {
    qr_status st = qr_imatrix_compute(model, tokens, n, p, path, NULL);
    if (st != want || !strstr(qr_last_error(), needle))
        fail_msg("want status %d with '%s', got %d: '%s'", (int)want, needle, (int)st,
                 qr_last_error());
    if (path && *path) assert_int_equal(access(path, F_OK), -1);
}

static void test_bad_inputs(void **state) {
    (void)state;
    char out[256], nodir[256];
    snprintf(out, sizeof out, "%s/bad.gguf", dir);
    snprintf(nodir, sizeof nodir, "%s/none/x.gguf", dir);
    qr_imatrix_params p = {.n_ctx = 64};
    expect_error(&p, n_tokens, NULL, QR_ERR_INVALID_ARG, "no model or no output path");
    expect_error(&p, n_tokens, "", QR_ERR_INVALID_ARG, "no model or no output path");
    expect_error(&p, 127, out, QR_ERR_INVALID_ARG,
                 "the text has 127 tokens; a context of 64 needs at least 128");
    expect_error(&(qr_imatrix_params){.n_ctx = 1}, n_tokens, out, QR_ERR_INVALID_ARG,
                 "context of 1 tokens: chunks need at least 2");
    expect_error(&(qr_imatrix_params){.n_ctx = -3}, n_tokens, out, QR_ERR_INVALID_ARG,
                 "must not be negative");
    expect_error(&(qr_imatrix_params){.n_ctx = 4096}, n_tokens, out, QR_ERR_INVALID_ARG,
                 "the model was trained on at most 2048");
    expect_error(&(qr_imatrix_params){.n_ctx = 64, .format = (qr_imatrix_format)7}, n_tokens, out,
                 QR_ERR_INVALID_ARG, "unknown imatrix format 7");
    expect_error(&p, n_tokens, nodir, QR_ERR_IO, "cannot write");
    expect_error(&(qr_imatrix_params){.n_ctx = 4, .n_chunks = 3}, n_tokens, out, QR_ERR_INVALID_ARG,
                 "no weight product had 16 or more input rows");
    qr_token bad[256];
    memcpy(bad, tokens, sizeof bad);
    bad[100] = 999999;
    assert_int_equal(qr_imatrix_compute(model, bad, 256, &p, out, NULL), QR_ERR_INVALID_ARG);
    assert_non_null(strstr(qr_last_error(), "token 100 is 999999, outside the vocabulary"));
    assert_int_equal(qr_imatrix_compute(NULL, tokens, n_tokens, &p, out, NULL), QR_ERR_INVALID_ARG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_formats_agree),
        cmocka_unit_test(test_observer),
        cmocka_unit_test(test_bad_inputs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
