/* test_state.c - saving and restoring a sequence's state (qr_state_save_seq / qr_state_load_seq,
 * src/runtime/state.c). Quarrel's logits are batch-invariant, so a context that restores the
 * state of a prompt's first k tokens and evaluates the rest must give logits memcmp-equal to
 * one that evaluates the whole prompt, and greedy generation after it the same tokens; with
 * an f16 and an f32 cache, on stories260K and smol135, restored into another sequence of a
 * context of another size. Bad files: of another model, of another cache type or RoPE,
 * truncated at every length, every byte of the header and a byte of each part flipped, a
 * trailing byte, tokens past the context or the caller's buffer: each is refused with a
 * message and leaves the sequence untouched (its next logits unchanged). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "quarrel.h"
#include "test_util.h"

#define STORIES QR_SHARED_DIR "/models/stories260K.gguf"
#define SMOL QR_SHARED_DIR "/models/smol135-q4_k_m.gguf"
#define FILE_A "test_state_a.bin"
#define FILE_B "test_state_b.bin"
#define N_GEN 24

static qr_model *load(const char *path) {
    qr_model *m = NULL;
    if (qr_model_load(path, NULL, &m) != QR_OK) fail_msg("%s: %s", path, qr_last_error());
    return m;
}

static qr_context *make_ctx(qr_model *m, int32_t n_ctx, int32_t n_seq, qr_kv_type kv) {
    qr_context_params cp = qr_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_seq_max = n_seq;
    cp.n_threads = 2;
    cp.type_k = cp.type_v = kv;
    qr_context *ctx = NULL;
    if (qr_context_create(m, &cp, &ctx) != QR_OK) fail_msg("context: %s", qr_last_error());
    return ctx;
}

static void tokenize(const qr_model *m, const char *text, qr_token *t, int32_t *n) {
    assert_int_equal(qr_tokenize(m, text, strlen(text), true, false, t, 512, n), QR_OK);
}

/* evaluate tokens[0..n) at positions from..from+n of seq; the last token's logits copied out */
static void eval(qr_context *ctx, int32_t seq, const qr_token *t, int32_t from, int32_t n,
                 float *logits) {
    qr_batch b;
    assert_int_equal(qr_batch_init(&b, n), QR_OK);
    for (int32_t i = 0; i < n; i++)
        qr_batch_add(&b, t[i], from + i, seq, i == n - 1);
    if (qr_decode(ctx, &b) != QR_OK) fail_msg("decode: %s", qr_last_error());
    qr_batch_free(&b);
    if (logits) {
        const float *l = qr_get_logits(ctx, -1);
        memcpy(logits, l, (size_t)qr_model_n_vocab(qr_context_model(ctx)) * sizeof *l);
    }
}

/* greedy continuation of seq from its last logits, N_GEN tokens (the last not evaluated) */
static void greedy(qr_context *ctx, int32_t seq, float *logits, qr_token *out) {
    const int32_t nv = qr_model_n_vocab(qr_context_model(ctx));
    int32_t pos = qr_kv_seq_pos_max(ctx, seq) + 1;
    for (int i = 0; i < N_GEN; i++) {
        qr_token best = 0;
        for (qr_token t = 1; t < nv; t++)
            if (logits[t] > logits[best]) best = t;
        out[i] = best;
        if (i + 1 < N_GEN) eval(ctx, seq, &best, pos++, 1, logits);
    }
}

/* For one model and cache type: uninterrupted run vs. save after k tokens, restore elsewhere
 * and continue. */
static void check_roundtrip(const char *path, qr_kv_type kv) {
    qr_model *m = load(path);
    const int32_t nv = qr_model_n_vocab(m);
    qr_token t[512];
    int32_t n = 0;
    tokenize(m,
             "Once upon a time, there was a little girl named Lily. She loved to play outside "
             "in the park with her friends.",
             t, &n);
    assert_true(n > 12);
    float *full = malloc((size_t)nv * sizeof *full), *rest = malloc((size_t)nv * sizeof *rest);
    qr_token gen_full[N_GEN], gen_rest[N_GEN];

    /* the uninterrupted run: the whole prompt at once, sequence 0 of a one-sequence context */
    qr_context *a = make_ctx(m, 128, 1, kv);
    eval(a, 0, t, 0, n, full);
    qr_context_reset_timings(a);

    for (int32_t k = 1; k < n; k += 5) {
        /* save the first k tokens' state from sequence 1 of a two-sequence context */
        qr_context *s = make_ctx(m, 256, 2, kv);
        eval(s, 1, t, 0, k, NULL);
        size_t written = 0;
        if (qr_state_save_seq(s, 1, t, k, FILE_A, &written) != QR_OK)
            fail_msg("save: %s", qr_last_error());
        assert_true(written > (size_t)k * 4);
        qr_context_free(s);

        /* restore into sequence 2 of a three-sequence context of another size; evaluate the
         * rest: only n - k prompt tokens */
        qr_context *r = make_ctx(m, 3 * 100, 3, kv);
        qr_token back[512];
        int32_t n_back = -1;
        size_t n_read = 0;
        if (qr_state_load_seq(r, 2, FILE_A, back, 512, &n_back, &n_read) != QR_OK)
            fail_msg("load: %s", qr_last_error());
        assert_int_equal(n_back, k);
        assert_int_equal(n_read, written);
        assert_memory_equal(back, t, (size_t)k * sizeof *t);
        assert_int_equal(qr_kv_seq_pos_max(r, 2), k - 1);
        assert_int_equal(qr_kv_seq_pos_max(r, 0), -1);
        eval(r, 2, t + k, k, n - k, rest);
        assert_int_equal(qr_context_timings(r).n_prompt_tokens + qr_context_timings(r).n_gen_tokens,
                         n - k);
        if (memcmp(full, rest, (size_t)nv * sizeof *full))
            fail_msg("%s kv %d: restored after %d of %d tokens, the logits differ", path, kv, k, n);
        if (k == 1 || k + 5 >= n) { /* the greedy continuations too */
            qr_context *a2 = make_ctx(m, 128, 1, kv);
            float *l = malloc((size_t)nv * sizeof *l);
            eval(a2, 0, t, 0, n, l);
            greedy(a2, 0, l, gen_full);
            memcpy(l, rest, (size_t)nv * sizeof *l);
            greedy(r, 2, l, gen_rest);
            assert_memory_equal(gen_full, gen_rest, sizeof gen_full);
            free(l);
            qr_context_free(a2);
        }
        qr_context_free(r);
    }
    qr_context_free(a);
    free(full);
    free(rest);
    qr_model_free(m);
    remove(FILE_A);
}

static void test_roundtrip_stories_f16(void **state) {
    (void)state;
    check_roundtrip(STORIES, QR_KV_F16);
}
static void test_roundtrip_stories_f32(void **state) {
    (void)state;
    check_roundtrip(STORIES, QR_KV_F32);
}
static void test_roundtrip_smol(void **state) {
    (void)state;
    check_roundtrip(SMOL, QR_KV_F16);
}
/* quantized K and V rows (and their Walsh-Hadamard rotation) saved and restored as cached */
static void test_roundtrip_smol_q8_0(void **state) {
    (void)state;
    check_roundtrip(SMOL, QR_KV_Q8_0);
}

/* A sequence's next logits after a refused load: the same as before it. */
typedef struct probe {
    qr_context *ctx;
    qr_token t[64];
    int32_t n;
    float *before;
    int32_t nv;
} probe;

static void expect_refused(probe *p, const void *data, size_t size, qr_status want,
                           const char *needle, const char *what) {
    qr_token back[64];
    int32_t n_back = 0;
    qr_status st = qr_state_load_seq_memory(p->ctx, 0, data, size, back, 64, &n_back);
    if (st == QR_OK) fail_msg("%s: accepted", what);
    if (want != (qr_status)-1 && st != want)
        fail_msg("%s: status %s (%s), expected %s", what, qr_status_name(st), qr_last_error(),
                 qr_status_name(want));
    const char *msg = qr_last_error();
    if (!msg[0]) fail_msg("%s: refused without a message", what);
    if (needle && !strstr(msg, needle)) fail_msg("%s: message '%s' lacks '%s'", what, msg, needle);
    /* untouched: still p->n - 1 positions, and the last token gives the same logits */
    assert_int_equal(qr_kv_seq_pos_max(p->ctx, 0), p->n - 2);
    float *l = malloc((size_t)p->nv * sizeof *l);
    eval(p->ctx, 0, p->t + p->n - 1, p->n - 1, 1, l);
    assert_memory_equal(l, p->before, (size_t)p->nv * sizeof *l);
    assert_int_equal(qr_kv_remove(p->ctx, 0, p->n - 1, -1), QR_OK);
    free(l);
}

static void test_bad_files(void **state) {
    (void)state;
    qr_model *m = load(STORIES), *other = load(SMOL);
    probe p = {.nv = qr_model_n_vocab(m)};
    tokenize(m, "One day a cat sat on the mat and looked at the sky.", p.t, &p.n);
    p.before = malloc((size_t)p.nv * sizeof(float));
    /* the probe's sequence: n - 1 tokens, whose next token's logits are known */
    p.ctx = make_ctx(m, 64, 1, QR_KV_F16);
    eval(p.ctx, 0, p.t, 0, p.n, p.before);
    assert_int_equal(qr_kv_remove(p.ctx, 0, p.n - 1, -1), QR_OK);

    /* a good file of 6 tokens */
    qr_context *s = make_ctx(m, 64, 1, QR_KV_F16);
    eval(s, 0, p.t, 0, 6, NULL);
    assert_int_equal(qr_state_save_seq(s, 0, p.t, 6, FILE_A, NULL), QR_OK);
    size_t size = 0;
    unsigned char *good = (unsigned char *)qr_test_read_file(FILE_A, &size);
    assert_non_null(good);
    unsigned char *buf = malloc(size + 1);

    /* every truncation, from empty to one byte short */
    for (size_t len = 0; len < size; len++) {
        memcpy(buf, good, len);
        expect_refused(&p, buf, len, QR_ERR_FORMAT, NULL, "truncated");
    }
    memcpy(buf, good, 100);
    expect_refused(&p, buf, 100, QR_ERR_FORMAT, "truncated", "truncated header");
    expect_refused(&p, good, size - 1, QR_ERR_FORMAT, "truncated", "one byte short");
    /* one byte too many */
    memcpy(buf, good, size);
    buf[size] = 0;
    expect_refused(&p, buf, size + 1, QR_ERR_FORMAT, "too many", "trailing byte");
    /* every header byte flipped, and a byte of the tokens, the rows and the checksum */
    for (size_t i = 0; i < size; i += i < 128 ? 1 : 37) {
        memcpy(buf, good, size);
        buf[i] ^= 0x41;
        expect_refused(&p, buf, size, (qr_status)-1, NULL, "a flipped byte");
    }
    memcpy(buf, good, size);
    buf[size - 20] ^= 1; /* a KV row: only the checksum tells */
    expect_refused(&p, buf, size, QR_ERR_FORMAT, "checksum", "a flipped KV bit");
    memcpy(buf, good, size);
    buf[0] = 'X';
    expect_refused(&p, buf, size, QR_ERR_FORMAT, "not a Quarrel state file", "magic");
    memcpy(buf, good, size);
    buf[8] = 9;
    expect_refused(&p, buf, size, QR_ERR_UNSUPPORTED, "version 9", "version");

    /* the caller's buffer too small: QR_ERR_BUFFER_SMALL with the count */
    {
        qr_token back[4];
        int32_t n_back = 0;
        assert_int_equal(qr_state_load_seq_memory(p.ctx, 0, good, size, back, 4, &n_back),
                         QR_ERR_BUFFER_SMALL);
        assert_int_equal(n_back, 6);
        assert_int_equal(qr_kv_seq_pos_max(p.ctx, 0), p.n - 2);
    }
    /* more tokens than a sequence of the context holds */
    {
        qr_context *small = make_ctx(m, 4, 1, QR_KV_F16);
        qr_token back[64];
        int32_t n_back = 0;
        assert_int_equal(qr_state_load_seq_memory(small, 0, good, size, back, 64, &n_back),
                         QR_ERR_CONTEXT_FULL);
        assert_non_null(strstr(qr_last_error(), "holds 6 tokens"));
        qr_context_free(small);
    }
    /* another cache type */
    {
        qr_context *f32 = make_ctx(m, 64, 1, QR_KV_F32);
        qr_token back[64];
        int32_t n_back = 0;
        assert_int_equal(qr_state_load_seq_memory(f32, 0, good, size, back, 64, &n_back),
                         QR_ERR_INVALID_ARG);
        assert_non_null(strstr(qr_last_error(), "KV cache types are K f16, V f16"));
        qr_context_free(f32);
    }
    /* other RoPE settings */
    {
        qr_context_params cp = qr_context_default_params();
        cp.n_ctx = 64;
        cp.rope_freq_base = 5000.0f;
        qr_context *r = NULL;
        assert_int_equal(qr_context_create(m, &cp, &r), QR_OK);
        qr_token back[64];
        int32_t n_back = 0;
        assert_int_equal(qr_state_load_seq_memory(r, 0, good, size, back, 64, &n_back),
                         QR_ERR_INVALID_ARG);
        assert_non_null(strstr(qr_last_error(), "RoPE"));
        qr_context_free(r);
    }
    /* another model's file, both ways */
    {
        qr_context *o = make_ctx(other, 64, 1, QR_KV_F16);
        qr_token ot[64];
        int32_t on = 0;
        tokenize(other, "Hello there", ot, &on);
        eval(o, 0, ot, 0, on, NULL);
        assert_int_equal(qr_state_save_seq(o, 0, ot, on, FILE_B, NULL), QR_OK);
        size_t osize = 0;
        char *obytes = qr_test_read_file(FILE_B, &osize);
        expect_refused(&p, obytes, osize, QR_ERR_INVALID_ARG, "another model", "smol135's file");
        qr_token back[64];
        int32_t n_back = 0;
        assert_int_equal(qr_state_load_seq_memory(o, 0, good, size, back, 64, &n_back),
                         QR_ERR_INVALID_ARG);
        assert_non_null(strstr(qr_last_error(), "another model"));
        free(obytes);
        qr_context_free(o);
    }
    /* the same shape, another vocabulary: the identity hash tells (the header's hash field) */
    memcpy(buf, good, size);
    buf[48] ^= 1;
    expect_refused(&p, buf, size, QR_ERR_INVALID_ARG, "another model", "model hash");
    /* a token id out of the vocabulary, the checksum made to match: still refused */
    /* (covered by the fuzz corpus replay; a valid checksum needs the writer's hash) */

    /* the file API: a missing file, a truncated file on disk */
    {
        qr_token back[64];
        int32_t n_back = 0;
        assert_int_equal(qr_state_load_seq(p.ctx, 0, "no/such/state.bin", back, 64, &n_back, NULL),
                         QR_ERR_IO);
        assert_non_null(strstr(qr_last_error(), "no/such/state.bin"));
        FILE *f = fopen(FILE_B, "wb");
        fwrite(good, 1, size / 2, f);
        fclose(f);
        assert_int_equal(qr_state_load_seq(p.ctx, 0, FILE_B, back, 64, &n_back, NULL),
                         QR_ERR_FORMAT);
        assert_non_null(strstr(qr_last_error(), "truncated"));
        assert_int_equal(qr_kv_seq_pos_max(p.ctx, 0), p.n - 2);
    }
    /* saving: more tokens than the sequence holds, a sequence out of range, an unwritable path */
    assert_int_equal(qr_state_save_seq(s, 0, p.t, 7, FILE_B, NULL), QR_ERR_INVALID_ARG);
    assert_int_equal(qr_state_save_seq(s, 1, p.t, 1, FILE_B, NULL), QR_ERR_INVALID_ARG);
    assert_int_equal(qr_state_save_seq(s, 0, p.t, 6, "no/such/dir/state.bin", NULL), QR_ERR_IO);
    assert_non_null(strstr(qr_last_error(), "no/such/dir/state.bin"));

    free(buf);
    free(good);
    free(p.before);
    qr_context_free(s);
    qr_context_free(p.ctx);
    qr_model_free(m);
    qr_model_free(other);
    remove(FILE_A);
    remove(FILE_B);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_stories_f16),
        cmocka_unit_test(test_roundtrip_stories_f32),
        cmocka_unit_test(test_roundtrip_smol),
        cmocka_unit_test(test_roundtrip_smol_q8_0),
        cmocka_unit_test(test_bad_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
