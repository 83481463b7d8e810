/* test_embed.c - embeddings (qr_embed) equal llama.cpp's: embed_refs.json (mk_embed_refs.py,
 * the peer with embeddings on) holds, for stories260K, smol135 and qwen2-tiny, three texts and
 * the four pooling types, llama.cpp's vectors; every value must be within the model's
 * tolerance, measured as ../shared/reference measures tolerances (twice llama.cpp's own spread
 * across its configurations). The normalisations are checked on hand-worked vectors. */
#include <setjmp.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "quarrel.h"
#include "test_util.h"

static qr_pooling pooling_of(const char *name) {
    if (!strcmp(name, "none")) return QR_POOLING_NONE;
    if (!strcmp(name, "mean")) return QR_POOLING_MEAN;
    if (!strcmp(name, "cls")) return QR_POOLING_CLS;
    assert_string_equal(name, "last");
    return QR_POOLING_LAST;
}

static double max_diff(const cJSON *row, const float *v, int n) {
    double m = 0;
    assert_int_equal(cJSON_GetArraySize(row), n);
    for (int j = 0; j < n; j++) {
        double d = fabs(cJSON_GetArrayItem(row, j)->valuedouble - (double)v[j]);
        if (d > m) m = d;
    }
    return m;
}

static void test_embed_refs(void **state) {
    (void)state;
    size_t len;
    char *text = qr_test_read_file(QR_TEST_DIR "/runtime/embed_refs.json", &len);
    assert_non_null(text);
    cJSON *refs = cJSON_Parse(text);
    free(text);
    assert_non_null(refs);
    cJSON *tol = cJSON_GetObjectItem(refs, "tolerance");
    const char *loaded = NULL;
    qr_model *model = NULL;
    qr_context *ctx = NULL;
    int n_checked = 0;
    cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(refs, "cases")) {
        const char *mfile = cJSON_GetObjectItem(c, "model")->valuestring;
        if (!loaded || strcmp(loaded, mfile)) {
            qr_context_free(ctx);
            qr_model_free(model);
            char path[512];
            snprintf(path, sizeof path, "%s/models/%s", QR_SHARED_DIR, mfile);
            qr_model_params mp = qr_model_default_params();
            assert_int_equal(qr_model_load(path, &mp, &model), QR_OK);
            qr_context_params cp = qr_context_default_params();
            cp.n_ctx = 256;
            cp.n_threads = 2;
            assert_int_equal(qr_context_create(model, &cp, &ctx), QR_OK);
            loaded = mfile;
        }
        const double t = cJSON_GetObjectItem(cJSON_GetObjectItem(tol, mfile), "abs")->valuedouble;
        const char *txt = cJSON_GetObjectItem(c, "text")->valuestring;
        const char *pname = cJSON_GetObjectItem(c, "pooling")->valuestring;
        qr_token toks[256];
        int32_t n = 0;
        assert_int_equal(qr_tokenize(model, txt, strlen(txt), true, false, toks, 256, &n), QR_OK);
        cJSON *rt = cJSON_GetObjectItem(c, "tokens");
        assert_int_equal(n, cJSON_GetArraySize(rt));
        for (int i = 0; i < n; i++)
            assert_int_equal(toks[i], cJSON_GetArrayItem(rt, i)->valueint);
        const int d = qr_model_n_embd(model);
        float *out = malloc((size_t)n * (size_t)d * sizeof *out);
        assert_non_null(out);
        if (qr_embed(ctx, 0, toks, n, pooling_of(pname), out) != QR_OK)
            fail_msg("%s %s: %s", mfile, pname, qr_last_error());
        cJSON *rows = cJSON_GetObjectItem(c, "rows");
        double worst = 0;
        for (int r = 0; r < cJSON_GetArraySize(rows); r++) {
            double md = max_diff(cJSON_GetArrayItem(rows, r), out + (size_t)r * (size_t)d, d);
            if (md > t)
                fail_msg("%s, pooling %s, '%s', row %d: differs from llama.cpp by %g > %g",
                         mfile, pname, txt, r, md, t);
            worst = md > worst ? md : worst;
            n_checked++;
        }
        printf("%-22s %-5s %2d tokens: max difference %.5f (tolerance %.5f)\n", mfile, pname, n,
               worst, t);
        free(out);
        /* the cache is left empty: a generation after an embedding starts clean */
        assert_int_equal(qr_kv_seq_pos_max(ctx, 0), -1);
    }
    qr_context_free(ctx);
    qr_model_free(model);
    cJSON_Delete(refs);
    assert_true(n_checked >= 36);
}

/* The tolerance must tell the poolings apart, or the comparison above could not fail. */
static void test_refs_discriminate(void **state) {
    (void)state;
    size_t len;
    char *text = qr_test_read_file(QR_TEST_DIR "/runtime/embed_refs.json", &len);
    cJSON *refs = cJSON_Parse(text);
    free(text);
    assert_non_null(refs);
    const cJSON *mean = NULL, *last = NULL, *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(refs, "cases")) {
        if (strcmp(cJSON_GetObjectItem(c, "model")->valuestring, "stories260K.gguf") ||
            strcmp(cJSON_GetObjectItem(c, "text")->valuestring, "Once upon a time"))
            continue;
        const char *p = cJSON_GetObjectItem(c, "pooling")->valuestring;
        if (!strcmp(p, "mean")) mean = cJSON_GetArrayItem(cJSON_GetObjectItem(c, "rows"), 0);
        if (!strcmp(p, "last")) last = cJSON_GetArrayItem(cJSON_GetObjectItem(c, "rows"), 0);
    }
    assert_non_null(mean);
    assert_non_null(last);
    float v[64];
    for (int j = 0; j < 64; j++)
        v[j] = (float)cJSON_GetArrayItem(last, j)->valuedouble;
    const double t = cJSON_GetObjectItem(
                         cJSON_GetObjectItem(cJSON_GetObjectItem(refs, "tolerance"), "stories260K.gguf"),
                         "abs")
                         ->valuedouble;
    assert_true(max_diff(mean, v, 64) > 20 * t);
    cJSON_Delete(refs);
}

static void test_normalize(void **state) {
    (void)state;
    const float in[2] = {3.0f, -4.0f};
    float out[2];
    qr_embd_normalize(in, out, 2, 2); /* |(3,-4)| = 5 */
    assert_float_equal(out[0], 0.6f, 1e-7);
    assert_float_equal(out[1], -0.8f, 1e-7);
    qr_embd_normalize(in, out, 2, 1); /* taxicab: 7 */
    assert_float_equal(out[0], 3.0f / 7.0f, 1e-7);
    qr_embd_normalize(in, out, 2, 0); /* max-abs 4 -> 32760 */
    assert_float_equal(out[1], -32760.0f, 1e-2);
    assert_float_equal(out[0], 24570.0f, 1e-2);
    qr_embd_normalize(in, out, 2, -1);
    assert_float_equal(out[0], 3.0f, 0);
    qr_embd_normalize(in, out, 2, 3); /* (27 + 64)^(1/3) = 4.4979 */
    assert_float_equal(out[0], 3.0f / 4.497941f, 1e-6);
    const float zero[2] = {0, 0};
    qr_embd_normalize(zero, out, 2, 2);
    assert_float_equal(out[0], 0.0f, 0);
}

static void test_errors(void **state) {
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/models/stories260K.gguf", QR_SHARED_DIR);
    qr_model_params mp = qr_model_default_params();
    qr_model *model = NULL;
    assert_int_equal(qr_model_load(path, &mp, &model), QR_OK);
    assert_int_equal(qr_model_pooling(model), QR_POOLING_MEAN); /* no pooling_type key */
    qr_context_params cp = qr_context_default_params();
    cp.n_ctx = 16;
    cp.n_threads = 1;
    qr_context *ctx = NULL;
    assert_int_equal(qr_context_create(model, &cp, &ctx), QR_OK);
    qr_token toks[32] = {1};
    float out[64 * 32];
    assert_int_equal(qr_embed(ctx, 0, toks, 0, QR_POOLING_MEAN, out), QR_ERR_INVALID_ARG);
    assert_non_null(strstr(qr_last_error(), "no tokens"));
    assert_int_equal(qr_embed(ctx, 0, toks, 32, QR_POOLING_MEAN, out), QR_ERR_CONTEXT_FULL);
    assert_non_null(strstr(qr_last_error(), "32 tokens"));
    assert_int_equal(qr_embed(ctx, 0, toks, 2, (qr_pooling)7, out), QR_ERR_INVALID_ARG);
    toks[1] = 100000;
    assert_int_not_equal(qr_embed(ctx, 0, toks, 2, QR_POOLING_MEAN, out), QR_OK);
    assert_non_null(strstr(qr_last_error(), "100000"));
    /* logits after an embedding: the embedding rows are never handed out as logits */
    assert_null(qr_get_logits(ctx, -1));
    qr_context_free(ctx);
    qr_model_free(model);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_embed_refs), cmocka_unit_test(test_refs_discriminate),
        cmocka_unit_test(test_normalize), cmocka_unit_test(test_errors)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
