/* test_arch_errors.c - bad models of every architecture fail cleanly, naming the problem:
 * each architecture's synthetic model (`quarrel synth --arch NAME`) is rewritten without one of
 * its tensors (the globals and layer 0's), without one of its keys (a required one must be
 * named; an optional one's default may make a tensor misfit, which must be named instead), with a
 * tensor of the wrong shape, and cut short at many points. A model that still loads (an optional
 * tensor or key was removed) must evaluate a few tokens; one that does not must say which tensor or
 * key. An unknown architecture is refused with the list of supported ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "quarrel.h"
#include "test_util.h"

static const char *const archs[] = {"llama", "qwen2", "qwen3",   "gemma2", "gemma3",
                                    "phi3",  "olmo2", "granite", "smollm3"};

/* tensors a model may lack: the output head (tied), biases, RoPE factors */
static bool optional_tensor(const char *name) {
    return !strcmp(name, "output.weight") || strstr(name, ".bias") || strstr(name, "rope_");
}

/* keys llama.cpp requires of every architecture here (and Quarrel too) */
static bool required_key(const char *arch, const char *key) {
    static const char *const always[] = {"embedding_length", "block_count", "attention.head_count",
                                         "feed_forward_length"};
    const size_t n = strlen(arch);
    if (strncmp(key, arch, n) || key[n] != '.') return false;
    const char *suffix = key + n + 1;
    for (size_t i = 0; i < sizeof always / sizeof *always; i++)
        if (!strcmp(suffix, always[i])) return true;
    if (!strcmp(suffix, "attention.layer_norm_rms_epsilon")) return strcmp(arch, "llama") != 0;
    if (!strcmp(suffix, "logit_scale")) return !strcmp(arch, "granite");
    return false;
}

static void synth(const char *arch, const char *path) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s synth --arch %s -o %s 2>/dev/null", QR_CLI, arch, path);
    if (system(cmd) != 0) fail_msg("'%s' failed", cmd);
}

/* Write g to path leaving out key `skip_key` and tensor `skip_tensor` (either may be -1); the
 * tensor `reshape` (or -1) gets its first two dimensions swapped. */
static void rewrite(const qr_gguf *g, int64_t skip_key, int64_t skip_tensor, int64_t reshape,
                    const char *path) {
    qr_gguf_writer *w = qr_gguf_writer_create();
    assert_non_null(w);
    for (int64_t i = 0; i < qr_gguf_n_kv(g); i++) {
        if (i == skip_key || !strcmp(qr_gguf_key(g, i), "general.alignment")) continue;
        assert_int_equal(qr_gguf_writer_set(w, qr_gguf_key(g, i), qr_gguf_value_at(g, i)), QR_OK);
    }
    for (int64_t i = 0; i < qr_gguf_n_tensors(g); i++) {
        if (i == skip_tensor) continue;
        const qr_gguf_tensor *t = qr_gguf_tensor_at(g, i);
        int64_t ne[4] = {t->ne[0], t->ne[1], t->ne[2], t->ne[3]};
        uint32_t n_dims = t->n_dims;
        if (i == reshape) { /* [a, b] -> [b, a] keeps the byte size only for f32/f16 rows */
            ne[0] = t->ne[1];
            ne[1] = t->ne[0];
            if (n_dims < 2) n_dims = 2;
        }
        assert_int_equal(
            qr_gguf_writer_add_tensor(w, t->name, t->type, n_dims, ne, t->data, t->nbytes), QR_OK);
    }
    assert_int_equal(qr_gguf_writer_write(w, path), QR_OK);
    qr_gguf_writer_free(w);
}

/* Load path: on success evaluate three tokens and return true; on failure return false with
 * the error in qr_last_error(). */
static bool load_and_run(const char *path) {
    qr_model *m;
    if (qr_model_load(path, NULL, &m) != QR_OK) {
        assert_true(qr_last_error()[0] != '\0');
        return false;
    }
    qr_context_params cp = qr_context_default_params();
    cp.n_ctx = 64;
    cp.n_threads = 1;
    qr_context *ctx;
    assert_int_equal(qr_context_create(m, &cp, &ctx), QR_OK);
    qr_batch b;
    assert_int_equal(qr_batch_init(&b, 4), QR_OK);
    for (int i = 0; i < 3; i++)
        qr_batch_add(&b, i + 1, i, 0, i == 2);
    assert_int_equal(qr_decode(ctx, &b), QR_OK);
    qr_batch_free(&b);
    qr_context_free(ctx);
    qr_model_free(m);
    return true;
}

static void check_arch(const char *arch) {
    char path[256], bad[256];
    snprintf(path, sizeof path, "arch-errors-%s.gguf", arch);
    snprintf(bad, sizeof bad, "arch-errors-%s.bad.gguf", arch);
    synth(arch, path);
    assert_true(load_and_run(path));
    qr_gguf *g;
    assert_int_equal(qr_gguf_open(path, &g), QR_OK);
    assert_string_equal(qr_gguf_get_str(g, "general.architecture"), arch);

    int n_missing_t = 0, n_missing_k = 0;
    for (int64_t i = 0; i < qr_gguf_n_tensors(g); i++) {
        const char *name = qr_gguf_tensor_at(g, i)->name;
        if (!strncmp(name, "blk.", 4) && strncmp(name, "blk.0.", 6)) continue;
        rewrite(g, -1, i, -1, bad);
        if (load_and_run(bad)) {
            if (!optional_tensor(name)) fail_msg("%s without '%s' loaded", arch, name);
        } else {
            if (!strstr(qr_last_error(), name))
                fail_msg("%s without '%s': the error does not name it: %s", arch, name,
                         qr_last_error());
            n_missing_t++;
        }
        /* the same tensor transposed (non-square matrices and vectors) */
        const qr_gguf_tensor *t = qr_gguf_tensor_at(g, i);
        if (t->ne[0] != t->ne[1] && (t->type == QR_TYPE_F32 || t->type == QR_TYPE_F16)) {
            rewrite(g, -1, -1, i, bad);
            if (load_and_run(bad)) fail_msg("%s with '%s' transposed loaded", arch, name);
            if (!strstr(qr_last_error(), name))
                fail_msg("%s with '%s' transposed: the error does not name it: %s", arch, name,
                         qr_last_error());
        }
    }
    for (int64_t i = 0; i < qr_gguf_n_kv(g); i++) {
        const char *key = qr_gguf_key(g, i);
        if (strncmp(key, arch, strlen(arch))) continue; /* the architecture's own keys */
        rewrite(g, i, -1, -1, bad);
        if (load_and_run(bad)) {
            if (required_key(arch, key)) fail_msg("%s without '%s' loaded", arch, key);
        } else if (required_key(arch, key)) {
            if (!strstr(qr_last_error(), key))
                fail_msg("%s without '%s': the error does not name it: %s", arch, key,
                         qr_last_error());
            n_missing_k++;
        } /* an optional key's default may not fit the tensors: any clean error will do */
    }
    print_message("%s: %d tensors and %d keys are required, each named when missing\n", arch,
                  n_missing_t, n_missing_k);
    assert_true(n_missing_t > 5 && n_missing_k >= 4);

    /* cut short: the header, the metadata, the tensor data */
    size_t len = 0;
    char *all = qr_test_read_file(path, &len);
    assert_non_null(all);
    for (int k = 1; k < 40; k++) {
        const size_t cut = len * (size_t)k / 40;
        FILE *f = fopen(bad, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(all, 1, cut, f), cut);
        fclose(f);
        if (load_and_run(bad)) fail_msg("%s cut at %zu of %zu loaded", arch, cut, len);
    }
    free(all);
    qr_gguf_free(g);
    remove(bad);
    remove(path);
}

static void test_architectures(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof archs / sizeof *archs; i++)
        check_arch(archs[i]);
}

static void test_unknown_architecture(void **state) {
    (void)state;
    synth("llama", "arch-errors-unknown.gguf");
    qr_gguf *g;
    assert_int_equal(qr_gguf_open("arch-errors-unknown.gguf", &g), QR_OK);
    qr_gguf_writer *w = qr_gguf_writer_create();
    for (int64_t i = 0; i < qr_gguf_n_kv(g); i++)
        if (strcmp(qr_gguf_key(g, i), "general.alignment"))
            qr_gguf_writer_set(w, qr_gguf_key(g, i), qr_gguf_value_at(g, i));
    assert_int_equal(qr_gguf_writer_set_str(w, "general.architecture", "mamba9"), QR_OK);
    for (int64_t i = 0; i < qr_gguf_n_tensors(g); i++) {
        const qr_gguf_tensor *t = qr_gguf_tensor_at(g, i);
        qr_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, t->nbytes);
    }
    assert_int_equal(qr_gguf_writer_write(w, "arch-errors-mamba9.gguf"), QR_OK);
    qr_gguf_writer_free(w);
    qr_gguf_free(g);
    qr_model *m;
    assert_int_equal(qr_model_load("arch-errors-mamba9.gguf", NULL, &m), QR_ERR_UNSUPPORTED);
    assert_non_null(strstr(qr_last_error(), "unsupported architecture 'mamba9' (supported: "));
    assert_non_null(strstr(qr_last_error(), "gemma3"));
    /* the CLI: that message and exit status 2 */
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "%s run -m arch-errors-mamba9.gguf -p hi -n 1 2>&1 | grep -q \"unsupported "
             "architecture 'mamba9'\" && { %s run -m arch-errors-mamba9.gguf -p hi -n 1 "
             ">/dev/null 2>&1; test $? -eq 2; }",
             QR_CLI, QR_CLI);
    if (system(cmd) != 0) fail_msg("the CLI does not refuse 'mamba9' with exit status 2");
    remove("arch-errors-unknown.gguf");
    remove("arch-errors-mamba9.gguf");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_architectures),
        cmocka_unit_test(test_unknown_architecture),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
