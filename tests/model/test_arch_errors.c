/* test_arch_errors.c - bad models of every architecture fail cleanly, naming the problem:
 * each architecture's synthetic model (`quarrel synth --arch NAME`) is rewritten without one of
 * its tensors (the globals and layer 0's), without one of its keys (a required one must be
 * named; an optional one's default may make a tensor misfit, which must be named instead), with a
 * tensor of the wrong shape, and cut short at many points. A model that still loads (an optional
 * tensor or key was removed) must evaluate a few tokens; one that does not must say which tensor or
 * key. An unknown architecture is refused with the list of supported ones. The mixtures of
 * experts (mixtral: a llama file with experts; qwen3moe) also get bad expert counts, expert
 * tensors of inconsistent shapes and routers of the wrong width, each refused naming the key
 * or tensor; gpt-oss also attention sinks, router and expert biases of the wrong shape. */
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

/* synth's architecture names; mixtral writes general.architecture llama (with experts) */
static const char *const archs[] = {"llama",   "qwen2",   "qwen3",    "gemma2", "gemma3", "phi3",
                                    "olmo2",   "granite", "smollm3",  "mixtral", "qwen3moe",
                                    "gpt-oss"};

static const char *gguf_arch(const char *arch) {
    return strcmp(arch, "mixtral") ? arch : "llama";
}

/* tensors a model may lack: the output head (tied), biases (gpt-oss: only q, k and v's, as
 * llama.cpp binds them), RoPE factors */
static bool optional_tensor(const char *arch, const char *name) {
    if (!strcmp(arch, "gpt-oss"))
        return strstr(name, "attn_q.bias") || strstr(name, "attn_k.bias") ||
               strstr(name, "attn_v.bias");
    return !strcmp(name, "output.weight") || strstr(name, ".bias") || strstr(name, "rope_");
}

/* keys llama.cpp requires of every architecture here (and Quarrel too); moe: the model has
 * experts (then expert_used_count is required, and expert_count where experts are the only FFN;
 * a llama file without it is dense, and misses its dense tensors) */
static bool required_key(const char *arch, bool moe, const char *key) {
    static const char *const always[] = {"embedding_length", "block_count", "attention.head_count",
                                         "feed_forward_length"};
    const size_t n = strlen(arch);
    if (strncmp(key, arch, n) || key[n] != '.') return false;
    const char *suffix = key + n + 1;
    for (size_t i = 0; i < sizeof always / sizeof *always; i++)
        if (!strcmp(suffix, always[i])) return true;
    if (!strcmp(suffix, "attention.layer_norm_rms_epsilon")) return strcmp(arch, "llama") != 0;
    if (!strcmp(suffix, "logit_scale")) return !strcmp(arch, "granite");
    if (!strcmp(suffix, "expert_used_count")) return moe;
    if (!strcmp(suffix, "expert_count"))
        return !strcmp(arch, "qwen3moe") || !strcmp(arch, "gpt-oss");
    if (!strcmp(suffix, "attention.sliding_window")) return !strcmp(arch, "gpt-oss");
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

static void check_arch(const char *synth_arch) {
    char path[256], bad[256];
    snprintf(path, sizeof path, "arch-errors-%s.gguf", synth_arch);
    snprintf(bad, sizeof bad, "arch-errors-%s.bad.gguf", synth_arch);
    synth(synth_arch, path);
    assert_true(load_and_run(path));
    qr_gguf *g;
    assert_int_equal(qr_gguf_open(path, &g), QR_OK);
    const char *arch = gguf_arch(synth_arch);
    assert_string_equal(qr_gguf_get_str(g, "general.architecture"), arch);
    const bool moe = qr_gguf_find_tensor(g, "blk.0.ffn_gate_inp.weight") != NULL;

    int n_missing_t = 0, n_missing_k = 0;
    for (int64_t i = 0; i < qr_gguf_n_tensors(g); i++) {
        const char *name = qr_gguf_tensor_at(g, i)->name;
        if (!strncmp(name, "blk.", 4) && strncmp(name, "blk.0.", 6)) continue;
        rewrite(g, -1, i, -1, bad);
        if (load_and_run(bad)) {
            if (!optional_tensor(arch, name)) fail_msg("%s without '%s' loaded", arch, name);
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
            if (required_key(arch, moe, key)) fail_msg("%s without '%s' loaded", arch, key);
        } else if (required_key(arch, moe, key)) {
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

/* Write g to path with key `key` (u32) set to v, or tensor `tensor`'s shape made ne (its
 * data the first bytes of the original's, which must be at least as large). */
static void rewrite_with(const qr_gguf *g, const char *key, uint32_t v, const char *tensor,
                         const int64_t *ne, const char *path) {
    qr_gguf_writer *w = qr_gguf_writer_create();
    assert_non_null(w);
    for (int64_t i = 0; i < qr_gguf_n_kv(g); i++)
        if (strcmp(qr_gguf_key(g, i), "general.alignment"))
            assert_int_equal(qr_gguf_writer_set(w, qr_gguf_key(g, i), qr_gguf_value_at(g, i)),
                             QR_OK);
    if (key) assert_int_equal(qr_gguf_writer_set_u32(w, key, v), QR_OK);
    for (int64_t i = 0; i < qr_gguf_n_tensors(g); i++) {
        const qr_gguf_tensor *t = qr_gguf_tensor_at(g, i);
        if (tensor && !strcmp(t->name, tensor)) {
            const size_t nbytes =
                qr_type_row_bytes(t->type, ne[0]) * (size_t)(ne[1] * ne[2] * ne[3]);
            assert_true(nbytes <= t->nbytes);
            uint32_t n_dims = ne[3] > 1 ? 4 : ne[2] > 1 ? 3 : 2;
            assert_int_equal(qr_gguf_writer_add_tensor(w, t->name, t->type, n_dims, ne, t->data,
                                                       nbytes),
                             QR_OK);
        } else {
            assert_int_equal(qr_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne,
                                                       t->data, t->nbytes),
                             QR_OK);
        }
    }
    assert_int_equal(qr_gguf_writer_write(w, path), QR_OK);
    qr_gguf_writer_free(w);
}

/* path must fail to load with an error naming `what` */
static void refused(const char *path, const char *what, const char *why) {
    qr_model *m;
    if (qr_model_load(path, NULL, &m) == QR_OK) fail_msg("a model with %s loaded", why);
    if (!strstr(qr_last_error(), what))
        fail_msg("a model with %s: the error does not name '%s': %s", why, what, qr_last_error());
    print_message("%s: %s\n", why, qr_last_error());
}

/* Bad mixtures of experts: expert_used_count 0 or above expert_count, expert_count 0 (qwen3moe:
 * experts are its only FFN), expert tensors of inconsistent shapes (fewer experts, another
 * width), a router of the wrong width. */
static void check_moe(const char *synth_arch) {
    const char *arch = gguf_arch(synth_arch);
    const char *path = "arch-errors-moe.gguf", *bad = "arch-errors-moe.bad.gguf";
    synth(synth_arch, path);
    qr_gguf *g;
    assert_int_equal(qr_gguf_open(path, &g), QR_OK);
    char used[64], count[64];
    snprintf(used, sizeof used, "%s.expert_used_count", arch);
    snprintf(count, sizeof count, "%s.expert_count", arch);
    const qr_gguf_tensor *gate = qr_gguf_find_tensor(g, "blk.0.ffn_gate_exps.weight");
    const qr_gguf_tensor *down = qr_gguf_find_tensor(g, "blk.1.ffn_down_exps.weight");
    const qr_gguf_tensor *router = qr_gguf_find_tensor(g, "blk.0.ffn_gate_inp.weight");
    assert_non_null(gate);
    assert_non_null(down);
    assert_non_null(router);
    const int64_t n_embd = gate->ne[0], n_ff = gate->ne[1], n_expert = gate->ne[2];

    rewrite_with(g, used, 0, NULL, NULL, bad);
    refused(bad, used, "expert_used_count 0");
    rewrite_with(g, used, (uint32_t)n_expert + 1, NULL, NULL, bad);
    refused(bad, used, "expert_used_count above expert_count");
    if (strcmp(arch, "llama")) { /* experts are the only FFN */
        rewrite_with(g, count, 0, NULL, NULL, bad);
        refused(bad, count, "expert_count 0");
    }
    /* expert_count 2 fewer than the tensors hold: every expert tensor misfits, the first named */
    rewrite_with(g, count, (uint32_t)n_expert - 2, NULL, NULL, bad);
    refused(bad, "blk.0.ffn_gate_inp.weight", "expert_count below the tensors' experts");
    rewrite_with(g, NULL, 0, "blk.1.ffn_down_exps.weight",
                 (int64_t[]){n_ff, n_embd, n_expert / 2, 1}, bad);
    refused(bad, "blk.1.ffn_down_exps.weight", "an expert tensor with fewer experts");
    rewrite_with(g, NULL, 0, "blk.0.ffn_gate_exps.weight",
                 (int64_t[]){n_embd, n_ff / 2, n_expert, 1}, bad);
    refused(bad, "blk.0.ffn_gate_exps.weight", "an expert tensor narrower than the others");
    rewrite_with(g, NULL, 0, "blk.0.ffn_gate_inp.weight", (int64_t[]){n_embd, n_expert / 2, 1, 1},
                 bad);
    refused(bad, "blk.0.ffn_gate_inp.weight", "a router of fewer experts");
    rewrite_with(g, NULL, 0, "blk.0.ffn_gate_inp.weight",
                 (int64_t[]){n_embd / 2, n_expert, 1, 1}, bad);
    refused(bad, "blk.0.ffn_gate_inp.weight", "a router narrower than the embedding");
    qr_gguf_free(g);
    remove(bad);
    remove(path);
}

static void test_moe(void **state) {
    (void)state;
    check_moe("mixtral");
    check_moe("qwen3moe");
    check_moe("gpt-oss");
}

/* gpt-oss's own tensors of the wrong shape: attention sinks of another length than the head
 * count, a router bias of fewer experts, expert biases of fewer experts or another width */
static void test_gpt_oss(void **state) {
    (void)state;
    const char *path = "arch-errors-oai.gguf", *bad = "arch-errors-oai.bad.gguf";
    synth("gpt-oss", path);
    qr_gguf *g;
    assert_int_equal(qr_gguf_open(path, &g), QR_OK);
    const qr_gguf_tensor *sinks = qr_gguf_find_tensor(g, "blk.1.attn_sinks.weight");
    const qr_gguf_tensor *gate_b = qr_gguf_find_tensor(g, "blk.0.ffn_gate_exps.bias");
    const qr_gguf_tensor *down_b = qr_gguf_find_tensor(g, "blk.0.ffn_down_exps.bias");
    assert_non_null(sinks);
    assert_non_null(gate_b);
    assert_non_null(down_b);
    const int64_t n_head = sinks->ne[0], n_ff = gate_b->ne[0], n_expert = gate_b->ne[1];
    const int64_t n_embd = down_b->ne[0];

    rewrite_with(g, NULL, 0, "blk.1.attn_sinks.weight", (int64_t[]){n_head - 1, 1, 1, 1}, bad);
    refused(bad, "blk.1.attn_sinks.weight", "attention sinks shorter than the head count");
    rewrite_with(g, NULL, 0, "blk.0.ffn_gate_inp.bias", (int64_t[]){n_expert / 2, 1, 1, 1}, bad);
    refused(bad, "blk.0.ffn_gate_inp.bias", "a router bias of fewer experts");
    rewrite_with(g, NULL, 0, "blk.0.ffn_gate_exps.bias", (int64_t[]){n_ff, n_expert / 2, 1, 1},
                 bad);
    refused(bad, "blk.0.ffn_gate_exps.bias", "an expert gate bias of fewer experts");
    rewrite_with(g, NULL, 0, "blk.0.ffn_up_exps.bias", (int64_t[]){n_ff / 2, n_expert, 1, 1},
                 bad);
    refused(bad, "blk.0.ffn_up_exps.bias", "an expert up bias narrower than the experts");
    rewrite_with(g, NULL, 0, "blk.0.ffn_down_exps.bias", (int64_t[]){n_embd / 2, n_expert, 1, 1},
                 bad);
    refused(bad, "blk.0.ffn_down_exps.bias", "an expert down bias narrower than the embedding");
    rewrite_with(g, NULL, 0, "blk.0.ffn_down_exps.bias", (int64_t[]){n_embd, n_expert / 2, 2, 1},
                 bad);
    refused(bad, "blk.0.ffn_down_exps.bias", "a 3-D expert down bias");
    qr_gguf_free(g);
    remove(bad);
    remove(path);
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
        cmocka_unit_test(test_moe),
        cmocka_unit_test(test_gpt_oss),
        cmocka_unit_test(test_unknown_architecture),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
