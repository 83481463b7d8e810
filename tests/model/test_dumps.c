/* test_dumps.c - the forward pass's intermediates, through the debug hook, against llama.cpp's
 * activation dumps (../shared/reference/<model>.dump, see DUMPS.md): every tensor Quarrel names
 * the same way is compared at every position with max|a-b| / max|b|. The bounds are the float
 * noise DUMPS.md describes: 1e-5 for the F32 stories260K, 2e-2 for smol135 (Q8 activations,
 * growing with depth). A failure names the first tensor that diverges. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <math.h>

#include "quarrel.h"
#include "test_util.h"

#define MAX_SEEN 256

typedef struct seen {
    char name[64];
    float *data;
    int64_t n;
} seen;

typedef struct capture {
    seen items[MAX_SEEN];
    int n;
} capture;

static void hook(const char *name, const float *data, int64_t ne0, int64_t n_tokens, void *user) {
    capture *c = user;
    if (c->n >= MAX_SEEN) return;
    seen *s = &c->items[c->n++];
    snprintf(s->name, sizeof s->name, "%s", name);
    s->n = ne0 * n_tokens;
    s->data = malloc((size_t)s->n * sizeof(float));
    memcpy(s->data, data, (size_t)s->n * sizeof(float));
}

static float *read_f32(const char *path, int64_t *n) {
    size_t len = 0;
    float *buf = (float *)qr_test_read_file(path, &len);
    *n = (int64_t)(len / sizeof(float));
    return buf;
}

static void compare_dumps(const char *model_name, double bound) {
    char path[512];
    snprintf(path, sizeof path, "%s/reference/%s.dump/index.json", QR_SHARED_DIR, model_name);
    char *text = qr_test_read_file(path, NULL);
    assert_non_null(text);
    cJSON *index = cJSON_Parse(text);
    free(text);
    assert_non_null(index);

    snprintf(path, sizeof path, "%s/models/%s.gguf", QR_SHARED_DIR, model_name);
    qr_model *model;
    if (qr_model_load(path, NULL, &model) != QR_OK) fail_msg("%s", qr_last_error());
    capture *cap = calloc(1, sizeof *cap);
    qr_context_params cp = qr_context_default_params();
    cp.n_ctx = 512;
    cp.n_threads = 1;
    cp.debug_fn = hook;
    cp.debug_user = cap;
    qr_context *ctx;
    if (qr_context_create(model, &cp, &ctx) != QR_OK) fail_msg("%s", qr_last_error());
    qr_batch b;
    qr_batch_init(&b, 64);
    const cJSON *toks = cJSON_GetObjectItem(index, "prompt_tokens");
    for (int i = 0; i < cJSON_GetArraySize(toks); i++)
        qr_batch_add(&b, cJSON_GetArrayItem(toks, i)->valueint, i, 0, true);
    if (qr_decode(ctx, &b) != QR_OK) fail_msg("%s", qr_last_error());

    int n_compared = 0;
    const cJSON *file;
    cJSON_ArrayForEach(file, cJSON_GetObjectItem(index, "files")) {
        const char *fname = cJSON_GetObjectItem(file, "file")->valuestring;
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(strlen(fname) - 4), fname); /* drop ".f32" */
        const seen *ours = NULL;
        for (int i = 0; i < cap->n; i++)
            if (!strcmp(cap->items[i].name, name)) ours = &cap->items[i];
        if (!ours) continue; /* an op Quarrel fuses or does not name (norm-L.1, kq-L, ...) */
        snprintf(path, sizeof path, "%s/reference/%s.dump/%s", QR_SHARED_DIR, model_name, fname);
        int64_t n = 0;
        float *ref = read_f32(path, &n);
        assert_non_null(ref);
        if (n != ours->n)
            fail_msg("%s: %lld values, llama.cpp has %lld", name, (long long)ours->n, (long long)n);
        double max_ref = 0, max_diff = 0;
        for (int64_t i = 0; i < n; i++) {
            max_ref = fmax(max_ref, fabs(ref[i]));
            max_diff = fmax(max_diff, fabs((double)ours->data[i] - ref[i]));
        }
        double rel = max_ref > 0 ? max_diff / max_ref : max_diff;
        if (!(rel <= bound))
            fail_msg("%s: first divergence at '%s': max|a-b|/max|b| = %.3g > %.3g", model_name,
                     name, rel, bound);
        n_compared++;
        free(ref);
    }
    print_message("%s: %d intermediates within %.0e of llama.cpp's\n", model_name, n_compared,
                  bound);
    assert_true(n_compared >= 10);
    for (int i = 0; i < cap->n; i++)
        free(cap->items[i].data);
    free(cap);
    qr_batch_free(&b);
    qr_context_free(ctx);
    qr_model_free(model);
    cJSON_Delete(index);
}

static void test_stories260K_dumps(void **state) {
    (void)state;
    compare_dumps("stories260K", 1e-5);
}

static void test_smol135_dumps(void **state) {
    (void)state;
    compare_dumps("smol135-q4_k_m", 2e-2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stories260K_dumps),
        cmocka_unit_test(test_smol135_dumps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
