/* test_lora_api.c - the LoRA C API: qr_lora_load / qr_set_loras / qr_set_lora_scale_seq.
 * An adapter written here (rank 4, every matrix of the model, deterministic values; one in
 * F32 and one in F16) on stories260K and smol135-q4_k_m:
 *   - scale 0 gives the base model's logits bit for bit, and detaching restores them;
 *   - batch invariance with adapters (issue 22's rule): the logits of every position are the
 *     same bits token by token, in one batch, on 1 and 2 threads;
 *   - per-sequence scales: three sequences at scales 1, 0.5 and 0 decoded in one batch give
 *     the bits of three contexts each at its scale alone;
 *   - two adapters at once equal one adapter of the concatenated rank to float precision
 *     (B1 A1 + B2 A2 = [B1 B2] [A1; A2]), a hand-worked identity;
 *   - bad calls: another model's adapter, too many adapters, indices out of range. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "quarrel.h"

#define N_TOK 12
static const qr_token prompt[N_TOK] = {1, 403, 407, 261, 378, 260, 290, 341, 300, 270, 380, 262};

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static float rnd(void) { /* xorshift64, uniform in [-1, 1) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((double)(rng_state >> 11) / (double)(1ull << 53) * 2.0 - 1.0);
}

/* An adapter for every attention and FFN matrix of model's GGUF: rank r, lora_a values
 * rnd() / sqrt(n_in), lora_b rnd() * gain, in F32 or F16; alpha (0: no key). */
static void write_adapter(const qr_model *model, const char *path, int r, bool f16, float alpha,
                          float gain, const char *arch) {
    const qr_gguf *g = qr_model_gguf(model);
    qr_gguf_writer *w = qr_gguf_writer_create();
    assert_non_null(w);
    assert_int_equal(qr_gguf_writer_set_str(w, "general.type", "adapter"), QR_OK);
    assert_int_equal(qr_gguf_writer_set_str(w, "general.architecture", arch), QR_OK);
    assert_int_equal(qr_gguf_writer_set_str(w, "adapter.type", "lora"), QR_OK);
    if (alpha != 0.0f)
        assert_int_equal(qr_gguf_writer_set_f32(w, "adapter.lora.alpha", alpha), QR_OK);
    void *bufs[1024];
    int n_bufs = 0;
    char names[1024][96];
    for (int64_t i = 0; i < qr_gguf_n_tensors(g); i++) {
        const qr_gguf_tensor *t = qr_gguf_tensor_at(g, i);
        const char *s = strstr(t->name, ".attn_");
        if (!s) s = strstr(t->name, ".ffn_");
        if (!s || strstr(t->name, "norm") || t->n_dims != 2) continue;
        const int64_t n_in = t->ne[0], n_out = t->ne[1];
        for (int half = 0; half < 2; half++) {
            const int64_t n = half == 0 ? n_in * r : n_out * r;
            const float scale = half == 0 ? 1.0f / sqrtf((float)n_in) : gain;
            void *buf = malloc((size_t)n * (f16 ? 2 : 4));
            assert_non_null(buf);
            for (int64_t k = 0; k < n; k++) {
                const float v = rnd() * scale;
                if (f16)
                    assert_int_equal(qr_quantize(QR_TYPE_F16, &v, (uint16_t *)buf + k, 1), QR_OK);
                else
                    ((float *)buf)[k] = v;
            }
            snprintf(names[n_bufs], sizeof names[n_bufs], "%s.%s", t->name,
                     half == 0 ? "lora_a" : "lora_b");
            const int64_t ne[2] = {half == 0 ? n_in : r, half == 0 ? r : n_out};
            assert_int_equal(qr_gguf_writer_add_tensor(w, names[n_bufs],
                                                       f16 ? QR_TYPE_F16 : QR_TYPE_F32, 2, ne, buf,
                                                       (size_t)n * (f16 ? 2 : 4)),
                             QR_OK);
            bufs[n_bufs++] = buf;
        }
    }
    assert_int_equal(qr_gguf_writer_write(w, path), QR_OK);
    qr_gguf_writer_free(w);
    for (int i = 0; i < n_bufs; i++)
        free(bufs[i]);
}

/* logits of every position of prompt on sequence seq of ctx (cache cleared first), in batches
 * of `step` tokens; out: N_TOK rows of n_vocab */
static void eval(qr_context *ctx, int step, float *out) {
    const int32_t n_vocab = qr_model_n_vocab(qr_context_model(ctx));
    qr_kv_clear(ctx);
    qr_batch b;
    assert_int_equal(qr_batch_init(&b, N_TOK), QR_OK);
    for (int i0 = 0; i0 < N_TOK; i0 += step) {
        b.n_tokens = 0;
        for (int i = i0; i < i0 + step && i < N_TOK; i++)
            qr_batch_add(&b, prompt[i], i, 0, true);
        assert_int_equal(qr_decode(ctx, &b), QR_OK);
        for (int i = 0; i < b.n_tokens; i++)
            memcpy(out + (size_t)(i0 + i) * n_vocab, qr_get_logits(ctx, i),
                   (size_t)n_vocab * sizeof *out);
    }
    qr_batch_free(&b);
}

static qr_context *make_ctx(qr_model *m, int threads, int n_seq) {
    qr_context_params cp = qr_context_default_params();
    cp.n_ctx = 64 * n_seq;
    cp.n_seq_max = n_seq;
    cp.n_threads = threads;
    qr_context *ctx;
    assert_int_equal(qr_context_create(m, &cp, &ctx), QR_OK);
    return ctx;
}

static void check_model(const char *path, const char *adapter_path, bool f16) {
    qr_model *m;
    assert_int_equal(qr_model_load(path, NULL, &m), QR_OK);
    const int32_t nv = qr_model_n_vocab(m);
    const size_t bytes = (size_t)N_TOK * (size_t)nv * sizeof(float);
    write_adapter(m, adapter_path, 4, f16, 8.0f, 0.2f, qr_model_arch(m));
    qr_lora *lo;
    assert_int_equal(qr_lora_load(m, adapter_path, &lo), QR_OK);
    assert_true(qr_lora_n_pairs(lo) > 0);
    assert_true(qr_lora_alpha(lo) == 8.0f);
    float *base = malloc(bytes), *ref = malloc(bytes), *got = malloc(bytes), *half = malloc(bytes);
    assert_non_null(base && ref && got && half);

    qr_context *ctx = make_ctx(m, 1, 1);
    eval(ctx, 1, base);
    float s0 = 0.0f, s1 = 1.0f, sh = 0.5f;
    assert_int_equal(qr_set_loras(ctx, &lo, &s0, 1), QR_OK); /* scale 0: the base's bits */
    eval(ctx, N_TOK, got);
    assert_memory_equal(got, base, bytes);
    assert_int_equal(qr_set_loras(ctx, &lo, &s1, 1), QR_OK);
    eval(ctx, 1, ref); /* token by token, one thread: the reference */
    double diff = 0;
    for (size_t i = 0; i < (size_t)N_TOK * nv; i++)
        diff = fmax(diff, fabs((double)ref[i] - base[i]));
    assert_true(diff > 0.1); /* the adapter matters */
    eval(ctx, N_TOK, got);
    assert_memory_equal(got, ref, bytes);
    eval(ctx, 5, got);
    assert_memory_equal(got, ref, bytes);
    assert_int_equal(qr_set_loras(ctx, &lo, &sh, 1), QR_OK);
    eval(ctx, 1, half);
    assert_int_equal(qr_set_loras(ctx, NULL, NULL, 0), QR_OK); /* detached: the base again */
    eval(ctx, 3, got);
    assert_memory_equal(got, base, bytes);
    qr_context_free(ctx);

    ctx = make_ctx(m, 2, 1); /* two threads */
    assert_int_equal(qr_set_loras(ctx, &lo, &s1, 1), QR_OK);
    eval(ctx, N_TOK, got);
    assert_memory_equal(got, ref, bytes);
    eval(ctx, 1, got);
    assert_memory_equal(got, ref, bytes);
    qr_context_free(ctx);

    /* three sequences at scales 1, 0.5, 0 in one batch, token by token interleaved */
    ctx = make_ctx(m, 2, 3);
    assert_int_equal(qr_set_loras(ctx, &lo, &s1, 1), QR_OK);
    assert_int_equal(qr_set_lora_scale_seq(ctx, 1, 0, 0.5f), QR_OK);
    assert_int_equal(qr_set_lora_scale_seq(ctx, 2, 0, 0.0f), QR_OK);
    qr_batch b;
    assert_int_equal(qr_batch_init(&b, 3 * N_TOK), QR_OK);
    for (int i = 0; i < N_TOK; i++)
        for (int s = 0; s < 3; s++)
            qr_batch_add(&b, prompt[i], i, s, true);
    assert_int_equal(qr_decode(ctx, &b), QR_OK);
    const float *want[3] = {ref, half, base};
    for (int i = 0; i < N_TOK; i++)
        for (int s = 0; s < 3; s++)
            assert_memory_equal(qr_get_logits(ctx, i * 3 + s), want[s] + (size_t)i * nv,
                                (size_t)nv * sizeof(float));
    qr_batch_free(&b);
    /* bad calls */
    assert_int_equal(qr_set_lora_scale_seq(ctx, 3, 0, 1.0f), QR_ERR_INVALID_ARG);
    assert_int_equal(qr_set_lora_scale_seq(ctx, 0, 1, 1.0f), QR_ERR_INVALID_ARG);
    qr_lora *many[QR_MAX_LORAS + 1];
    float scales[QR_MAX_LORAS + 1];
    for (int i = 0; i <= QR_MAX_LORAS; i++) {
        many[i] = lo;
        scales[i] = 1.0f;
    }
    assert_int_equal(qr_set_loras(ctx, many, scales, QR_MAX_LORAS + 1), QR_ERR_INVALID_ARG);
    float nan_scale = NAN;
    assert_int_equal(qr_set_loras(ctx, &lo, &nan_scale, 1), QR_ERR_INVALID_ARG);
    assert_non_null(strstr(qr_last_error(), "scale"));
    qr_context_free(ctx);

    free(base);
    free(ref);
    free(got);
    free(half);
    qr_lora_free(lo);
    qr_model_free(m);
}

static void test_stories_f32(void **state) {
    (void)state;
    check_model(QR_SHARED_DIR "/models/stories260K.gguf", "lora_api_stories.gguf", false);
}

static void test_smol_f16(void **state) {
    (void)state;
    check_model(QR_SHARED_DIR "/models/smol135-q4_k_m.gguf", "lora_api_smol.gguf", true);
}

/* two adapters of rank 2 each = one adapter of rank 4 holding both (same alpha / rank
 * ratio): the sums differ only in rounding */
static void test_two_equal_concatenated(void **state) {
    (void)state;
    qr_model *m;
    assert_int_equal(qr_model_load(QR_SHARED_DIR "/models/stories260K.gguf", NULL, &m), QR_OK);
    rng_state = 12345;
    write_adapter(m, "lora_api_cat.gguf", 4, false, 0.0f, 0.2f, "llama");
    /* split each pair of the rank-4 file into two rank-2 files */
    qr_gguf *g;
    assert_int_equal(qr_gguf_open("lora_api_cat.gguf", &g), QR_OK);
    qr_gguf_writer *w[2] = {qr_gguf_writer_create(), qr_gguf_writer_create()};
    void *bufs[2048];
    int n_bufs = 0;
    for (int k = 0; k < 2; k++) {
        qr_gguf_writer_set_str(w[k], "general.type", "adapter");
        qr_gguf_writer_set_str(w[k], "general.architecture", "llama");
        qr_gguf_writer_set_str(w[k], "adapter.type", "lora");
    }
    for (int64_t i = 0; i < qr_gguf_n_tensors(g); i++) {
        const qr_gguf_tensor *t = qr_gguf_tensor_at(g, i);
        const bool is_a = strstr(t->name, ".lora_a") != NULL;
        for (int k = 0; k < 2; k++) {
            const int64_t n_in = t->ne[0], n_rows = t->ne[1];
            float *buf = malloc((size_t)(n_in * n_rows) / 2 * sizeof *buf);
            const float *src = t->data;
            int64_t ne[2];
            if (is_a) { /* rows 2k, 2k+1 of A (r rows of n_in) */
                memcpy(buf, src + 2 * k * n_in, (size_t)(2 * n_in) * sizeof *buf);
                ne[0] = n_in;
                ne[1] = 2;
            } else { /* columns 2k, 2k+1 of B (n_out rows of r) */
                for (int64_t o = 0; o < n_rows; o++) {
                    buf[o * 2] = src[o * 4 + 2 * k];
                    buf[o * 2 + 1] = src[o * 4 + 2 * k + 1];
                }
                ne[0] = 2;
                ne[1] = n_rows;
            }
            assert_int_equal(qr_gguf_writer_add_tensor(w[k], t->name, QR_TYPE_F32, 2, ne, buf,
                                                       (size_t)(ne[0] * ne[1]) * sizeof *buf),
                             QR_OK);
            bufs[n_bufs++] = buf;
        }
    }
    assert_int_equal(qr_gguf_writer_write(w[0], "lora_api_cat0.gguf"), QR_OK);
    assert_int_equal(qr_gguf_writer_write(w[1], "lora_api_cat1.gguf"), QR_OK);
    qr_gguf_writer_free(w[0]);
    qr_gguf_writer_free(w[1]);
    for (int i = 0; i < n_bufs; i++)
        free(bufs[i]);
    qr_gguf_free(g);
    qr_lora *whole, *parts[2];
    assert_int_equal(qr_lora_load(m, "lora_api_cat.gguf", &whole), QR_OK);
    assert_int_equal(qr_lora_load(m, "lora_api_cat0.gguf", &parts[0]), QR_OK);
    assert_int_equal(qr_lora_load(m, "lora_api_cat1.gguf", &parts[1]), QR_OK);
    const int32_t nv = qr_model_n_vocab(m);
    const size_t bytes = (size_t)N_TOK * (size_t)nv * sizeof(float);
    float *a = malloc(bytes), *b = malloc(bytes), *base = malloc(bytes);
    qr_context *ctx = make_ctx(m, 1, 1);
    eval(ctx, N_TOK, base);
    const float one[2] = {1.0f, 1.0f};
    assert_int_equal(qr_set_loras(ctx, &whole, one, 1), QR_OK);
    eval(ctx, N_TOK, a);
    assert_int_equal(qr_set_loras(ctx, parts, one, 2), QR_OK);
    eval(ctx, N_TOK, b);
    double diff = 0, moved = 0;
    for (size_t i = 0; i < (size_t)N_TOK * nv; i++) {
        diff = fmax(diff, fabs((double)a[i] - b[i]));
        moved = fmax(moved, fabs((double)a[i] - base[i]));
    }
    print_message("two adapters vs their concatenation: largest difference %g (the adapter moves "
                  "logits by up to %g)\n",
                  diff, moved);
    assert_true(moved > 0.1);
    assert_true(diff < 1e-2); /* rounding, amplified over the layers: 2.2e-3 measured */
    qr_context_free(ctx);
    /* an adapter loaded for another model cannot be attached */
    qr_model *other;
    assert_int_equal(qr_model_load(QR_SHARED_DIR "/models/stories260K.gguf", NULL, &other), QR_OK);
    ctx = make_ctx(other, 1, 1);
    assert_int_equal(qr_set_loras(ctx, &whole, one, 1), QR_ERR_INVALID_ARG);
    assert_non_null(strstr(qr_last_error(), "another model"));
    qr_context_free(ctx);
    qr_model_free(other);
    free(a);
    free(b);
    free(base);
    qr_lora_free(whole);
    qr_lora_free(parts[0]);
    qr_lora_free(parts[1]);
    qr_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stories_f32),
        cmocka_unit_test(test_smol_f16),
        cmocka_unit_test(test_two_equal_concatenated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
