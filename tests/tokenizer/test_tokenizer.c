/* test_tokenizer.c - unit tests of the tokenizer on tiny hand-made vocabularies (expected ids
 * worked out by hand in the comments), bad metadata and bad text, and a few cases checked
 * against llama.cpp v0.5.0 on the shared vocabularies (values from the peer's libllama.py,
 * commands in the comments). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tokenizer/vocab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- building GGUF vocabularies ---- */

typedef struct tok_spec {
    const char *text;
    float score;
    int type; /* 1 normal, 2 unknown, 3 control, 4 user-defined, 6 byte */
} tok_spec;

static void set_str_array(qr_gguf_writer *w, const char *key, const char *const *s, size_t n) {
    qr_gguf_value *items = calloc(n ? n : 1, sizeof(*items));
    for (size_t i = 0; i < n; i++) {
        items[i].type = QR_GGUF_STRING;
        items[i].str.ptr = s[i];
        items[i].str.len = strlen(s[i]);
    }
    qr_gguf_value v = {.type = QR_GGUF_ARRAY};
    v.arr.type = QR_GGUF_STRING;
    v.arr.n = n;
    v.arr.items = items;
    assert_int_equal(qr_gguf_writer_set(w, key, &v), QR_OK);
    free(items);
}

static void set_num_array(qr_gguf_writer *w, const char *key, qr_gguf_type t, const void *data,
                          size_t n) {
    qr_gguf_value v = {.type = QR_GGUF_ARRAY};
    v.arr.type = t;
    v.arr.n = n;
    v.arr.data = data;
    assert_int_equal(qr_gguf_writer_set(w, key, &v), QR_OK);
}

static void add_tokens(qr_gguf_writer *w, const tok_spec *t, size_t n) {
    const char **texts = calloc(n, sizeof(*texts));
    float *scores = calloc(n, sizeof(*scores));
    int32_t *types = calloc(n, sizeof(*types));
    for (size_t i = 0; i < n; i++) {
        texts[i] = t[i].text;
        scores[i] = t[i].score;
        types[i] = t[i].type;
    }
    set_str_array(w, "tokenizer.ggml.tokens", texts, n);
    set_num_array(w, "tokenizer.ggml.scores", QR_GGUF_FLOAT32, scores, n);
    set_num_array(w, "tokenizer.ggml.token_type", QR_GGUF_INT32, types, n);
    free(texts);
    free(scores);
    free(types);
}

/* Write w to a temporary file and open it; the file is removed at once (the mapping stays). */
static qr_gguf *write_and_open(qr_gguf_writer *w) {
    char path[] = "/tmp/qr_tok_test_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(qr_gguf_writer_write(w, path), QR_OK);
    qr_gguf_writer_free(w);
    qr_gguf *g = NULL;
    assert_int_equal(qr_gguf_open(path, &g), QR_OK);
    unlink(path);
    return g;
}

/* The SPM test vocabulary. "\xe2\x96\x81" is U+2581, SentencePiece's space. */
static const tok_spec spm_tokens[] = {
    {"<unk>", 0, 2},            /* 0 */
    {"<s>", 0, 3},              /* 1 */
    {"</s>", 0, 3},             /* 2 */
    {"<0x0A>", 0, 6},           /* 3 */
    {"<0xC3>", 0, 6},           /* 4 */
    {"<0xA9>", 0, 6},           /* 5 */
    {"\xe2\x96\x81", -1.0f, 1}, /* 6 */
    {"a", -2.0f, 1},            /* 7 */
    {"b", -3.0f, 1},            /* 8 */
    {"ab", -0.5f, 1},           /* 9 */
    {"\xe2\x96\x81"
     "a",
     -0.8f, 1}, /* 10 */
    {"\xe2\x96\x81"
     "ab",
     -0.2f, 1},             /* 11 */
    {"<|im_start|>", 0, 3}, /* 12 */
    {"ba", -0.1f, 1},       /* 13 */
    {"<tool>", 0, 4},       /* 14: user-defined */
};

static qr_vocab *spm_vocab(void) {
    qr_gguf_writer *w = qr_gguf_writer_create();
    qr_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    add_tokens(w, spm_tokens, sizeof(spm_tokens) / sizeof(spm_tokens[0]));
    qr_gguf *g = write_and_open(w);
    qr_vocab *v = NULL;
    assert_int_equal(qr_vocab_load(g, &v), QR_OK);
    qr_gguf_free(g); /* the vocab keeps its own copies */
    return v;
}

static int32_t tok(const qr_vocab *v, const char *text, bool add_special, bool parse_special,
                   qr_token *out) {
    int32_t n = 0;
    qr_status st =
        qr_vocab_tokenize(v, text, strlen(text), add_special, parse_special, out, 256, &n);
    assert_int_equal(st, QR_OK);
    return n;
}

#define ASSERT_IDS(got, n, ...)                                                                    \
    do {                                                                                           \
        const qr_token want_[] = {__VA_ARGS__};                                                    \
        assert_int_equal((n), (int32_t)(sizeof(want_) / sizeof(want_[0])));                        \
        for (size_t k_ = 0; k_ < sizeof(want_) / sizeof(want_[0]); k_++)                           \
            assert_int_equal((got)[k_], want_[k_]);                                                \
    } while (0)

static void test_spm_merges(void **state) {
    (void)state;
    qr_vocab *v = spm_vocab();
    qr_token t[256];
    int32_t n;
    /* "ab" -> "▁ab": pairs "▁a" (-0.8) and "ab" (-0.5); "ab" wins, then "▁"+"ab" = "▁ab" */
    n = tok(v, "ab", false, false, t);
    ASSERT_IDS(t, n, 11);
    /* add_special: SPM adds BOS by default */
    n = tok(v, "ab", true, false, t);
    ASSERT_IDS(t, n, 1, 11);
    /* "bab" -> "▁bab": "ba" (-0.1) beats "ab" (-0.5) although it is not leftmost; then no
     * pair of "▁", "ba", "b" is a token */
    n = tok(v, "bab", false, false, t);
    ASSERT_IDS(t, n, 6, 13, 8);
    /* "é" (C3 A9) is no token: byte fallback <0xC3> <0xA9>; "\n" -> <0x0A> */
    n = tok(v, "\xc3\xa9\n", false, false, t);
    ASSERT_IDS(t, n, 6, 4, 5, 3);
    /* "z" has neither a token nor a byte token: <unk> (llama.cpp throws here) */
    n = tok(v, "z", false, false, t);
    ASSERT_IDS(t, n, 6, 0);
    /* empty text: nothing, or just BOS */
    n = tok(v, "", false, false, t);
    assert_int_equal(n, 0);
    n = tok(v, "", true, false, t);
    ASSERT_IDS(t, n, 1);
    qr_vocab_free(v);
}

static void test_spm_special(void **state) {
    (void)state;
    qr_vocab *v = spm_vocab();
    qr_token t[256];
    int32_t n;
    /* parse_special: the control token is cut out; the text after it gets the space prefix */
    n = tok(v, "<|im_start|>ab", false, true, t);
    ASSERT_IDS(t, n, 12, 11);
    /* without parse_special the control token's text is plain text: "<" "|" ... have no
     * tokens and no byte tokens, so they become <unk>; never token 12 */
    n = tok(v, "<|im_start|>ab", false, false, t);
    for (int32_t i = 0; i < n; i++)
        assert_int_not_equal(t[i], 12);
    /* user-defined tokens are cut out even without parse_special */
    n = tok(v, "ab<tool>ab", false, false, t);
    ASSERT_IDS(t, n, 11, 14, 11);
    qr_vocab_free(v);
}

static void test_spm_decode(void **state) {
    (void)state;
    qr_vocab *v = spm_vocab();
    char buf[64];
    /* control tokens render only with special */
    assert_int_equal(qr_vocab_token_to_piece(v, 1, buf, sizeof(buf), false), 0);
    assert_int_equal(qr_vocab_token_to_piece(v, 1, buf, sizeof(buf), true), 3);
    assert_memory_equal(buf, "<s>", 3);
    /* "▁ab" renders as " ab"; a byte token as its byte */
    assert_int_equal(qr_vocab_token_to_piece(v, 11, buf, sizeof(buf), false), 3);
    assert_memory_equal(buf, " ab", 3);
    assert_int_equal(qr_vocab_token_to_piece(v, 4, buf, sizeof(buf), false), 1);
    assert_int_equal((unsigned char)buf[0], 0xC3);
    /* too small: -(needed) */
    assert_int_equal(qr_vocab_token_to_piece(v, 11, buf, 2, false), -3);
    /* out of range: nothing */
    assert_int_equal(qr_vocab_token_to_piece(v, 99, buf, sizeof(buf), true), 0);
    assert_int_equal(qr_vocab_token_to_piece(v, -1, buf, sizeof(buf), true), 0);

    /* detokenize: the first token loses one leading space (add_space_prefix) */
    const qr_token a[] = {11, 6, 4, 5};
    int32_t n = qr_vocab_detokenize(v, a, 4, buf, sizeof(buf), false, false);
    assert_int_equal(n, 5);
    assert_memory_equal(buf, "ab \xc3\xa9", 5);
    /* with BOS first (llama.cpp): the BOS piece takes the strip, so " ab" keeps its space;
     * remove_special drops BOS and then strips nothing either */
    const qr_token b[] = {1, 11};
    n = qr_vocab_detokenize(v, b, 2, buf, sizeof(buf), false, false);
    assert_int_equal(n, 3);
    assert_memory_equal(buf, " ab", 3);
    n = qr_vocab_detokenize(v, b, 2, buf, sizeof(buf), true, false);
    assert_int_equal(n, 3);
    assert_memory_equal(buf, " ab", 3);
    n = qr_vocab_detokenize(v, b, 2, buf, sizeof(buf), false, true);
    assert_int_equal(n, 6);
    assert_memory_equal(buf, "<s> ab", 6);
    /* buffer too small */
    assert_int_equal(qr_vocab_detokenize(v, b, 2, buf, 2, false, true), -6);
    assert_int_equal(qr_vocab_detokenize(v, b, 2, NULL, 0, false, true), -6);
    /* the vocabulary facts */
    assert_int_equal(qr_vocab_n_tokens(v), 15);
    assert_int_equal(qr_vocab_bos(v), 1);
    assert_int_equal(qr_vocab_eos(v), 2);
    assert_int_equal(qr_vocab_eot(v), -1);
    assert_true(qr_vocab_is_eog(v, 2));
    assert_false(qr_vocab_is_eog(v, 1));
    assert_true(qr_vocab_is_control(v, 12));
    assert_false(qr_vocab_is_control(v, 11));
    assert_true(qr_vocab_add_bos(v));
    assert_false(qr_vocab_add_eos(v));
    assert_string_equal(qr_vocab_token_text(v, 13), "ba");
    assert_null(qr_vocab_token_text(v, 15));
    qr_vocab_free(v);
}

/* A byte-level BPE vocabulary: "Ġ" (U+0120) stands for the space byte. */
static qr_vocab *bpe_vocab(const char *pre, bool with_merges, qr_status *st_out) {
    static const tok_spec toks[] = {
        {"a", 0, 1},
        {"b", 0, 1},
        {"c", 0, 1},
        {"\xc4\xa0", 0, 1}, /* 0..3 */
        {"ab", 0, 1},
        {"abc", 0, 1},
        {"\xc4\xa0"
         "a",
         0, 1}, /* 4..6 */
        {"<|endoftext|>", 0, 3},
        {"<|im_end|>", 0, 3}, /* 7, 8 */
    };
    static const char *const merges[] = {"a b", "ab c", "\xc4\xa0 a"};
    qr_gguf_writer *w = qr_gguf_writer_create();
    qr_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    if (pre) qr_gguf_writer_set_str(w, "tokenizer.ggml.pre", pre);
    add_tokens(w, toks, sizeof(toks) / sizeof(toks[0]));
    if (with_merges) set_str_array(w, "tokenizer.ggml.merges", merges, 3);
    qr_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 7);
    qr_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 7);
    qr_gguf *g = write_and_open(w);
    qr_vocab *v = NULL;
    *st_out = qr_vocab_load(g, &v);
    qr_gguf_free(g);
    return v;
}

static void test_bpe_merges(void **state) {
    (void)state;
    qr_status st;
    qr_vocab *v = bpe_vocab("gpt-2", true, &st);
    assert_int_equal(st, QR_OK);
    qr_token t[256];
    int32_t n;
    /* words "abc", " ab". "abc": a+b (rank 0), ab+c (rank 1) -> abc. " ab" = Ġ a b: a+b
     * (rank 0) beats Ġ+a (rank 2), and no merge "Ġ ab" exists -> Ġ, ab */
    n = tok(v, "abc ab", false, false, t);
    ASSERT_IDS(t, n, 5, 3, 4);
    /* " a": Ġ+a (rank 2) -> "Ġa" */
    n = tok(v, " a", false, false, t);
    ASSERT_IDS(t, n, 6);
    /* BPE adds no BOS unless the vocabulary asks */
    n = tok(v, "a", true, false, t);
    ASSERT_IDS(t, n, 0);
    /* a byte with no token ("d") is dropped, as llama.cpp does */
    n = tok(v, "ad", false, false, t);
    ASSERT_IDS(t, n, 0);
    /* special tokens: only with parse_special */
    n = tok(v, "a<|im_end|>b", false, true, t);
    ASSERT_IDS(t, n, 0, 8, 1);
    /* EOT detected by its text, both end generation */
    assert_int_equal(qr_vocab_eot(v), 8);
    assert_true(qr_vocab_is_eog(v, 7));
    assert_true(qr_vocab_is_eog(v, 8));
    /* pieces: Ġ is a space; detokenize with clean_spaces (gpt-2): " ," loses its space */
    char buf[64];
    assert_int_equal(qr_vocab_token_to_piece(v, 6, buf, sizeof(buf), false), 2);
    assert_memory_equal(buf, " a", 2);
    const qr_token d[] = {5, 6, 7};
    n = qr_vocab_detokenize(v, d, 3, buf, sizeof(buf), false, true);
    assert_int_equal(n, 18);
    assert_memory_equal(buf, "abc a<|endoftext|>", 18);
    qr_vocab_free(v);
}

static void test_bpe_unknown_pre(void **state) {
    (void)state;
    qr_status st;
    /* unknown pre-tokenizer: a warning on stderr and the default preset */
    qr_vocab *v = bpe_vocab("no-such-pre", true, &st);
    assert_int_equal(st, QR_OK);
    qr_token t[256];
    int32_t n = tok(v, "abc ab", false, false, t);
    ASSERT_IDS(t, n, 5, 3, 4);
    qr_vocab_free(v);
}

/* ---- bad metadata ---- */

static void expect_load_error(qr_gguf_writer *w, qr_status code, const char *msg) {
    qr_gguf *g = write_and_open(w);
    qr_vocab *v = NULL;
    assert_int_equal(qr_vocab_load(g, &v), code);
    assert_null(v);
    if (!strstr(qr_last_error(), msg)) fail_msg("error '%s' lacks '%s'", qr_last_error(), msg);
    qr_gguf_free(g);
}

static void test_bad_metadata(void **state) {
    (void)state;
    qr_gguf_writer *w = qr_gguf_writer_create();
    expect_load_error(w, QR_ERR_FORMAT, "missing tokenizer.ggml.model");

    w = qr_gguf_writer_create();
    qr_gguf_writer_set_str(w, "tokenizer.ggml.model", "bert");
    expect_load_error(w, QR_ERR_UNSUPPORTED, "'bert' is not supported");

    w = qr_gguf_writer_create();
    qr_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    expect_load_error(w, QR_ERR_FORMAT, "missing key tokenizer.ggml.tokens");

    w = qr_gguf_writer_create();
    qr_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    qr_gguf_writer_set_u32(w, "tokenizer.ggml.tokens", 5);
    expect_load_error(w, QR_ERR_FORMAT, "tokenizer.ggml.tokens must be an array of string");

    w = qr_gguf_writer_create();
    qr_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    set_str_array(w, "tokenizer.ggml.tokens", NULL, 0);
    expect_load_error(w, QR_ERR_FORMAT, "tokenizer.ggml.tokens has 0 entries");

    const char *texts[] = {"<unk>", "<s>", "</s>"};
    float scores[2] = {0, 0};
    w = qr_gguf_writer_create();
    qr_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    set_str_array(w, "tokenizer.ggml.tokens", texts, 3);
    set_num_array(w, "tokenizer.ggml.scores", QR_GGUF_FLOAT32, scores, 2);
    expect_load_error(w, QR_ERR_FORMAT, "tokenizer.ggml.scores has 2 entries for 3 tokens");

    int32_t types[2] = {1, 1};
    w = qr_gguf_writer_create();
    qr_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    set_str_array(w, "tokenizer.ggml.tokens", texts, 3);
    set_num_array(w, "tokenizer.ggml.token_type", QR_GGUF_INT32, types, 2);
    expect_load_error(w, QR_ERR_FORMAT, "tokenizer.ggml.token_type has 2 entries for 3 tokens");

    w = qr_gguf_writer_create();
    qr_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    set_str_array(w, "tokenizer.ggml.tokens", texts, 3);
    set_num_array(w, "tokenizer.ggml.scores", QR_GGUF_INT8, "\0\0\0", 3);
    expect_load_error(w, QR_ERR_FORMAT, "tokenizer.ggml.scores must be an array of float32");

    w = qr_gguf_writer_create();
    qr_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    set_str_array(w, "tokenizer.ggml.tokens", texts, 3);
    qr_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 3);
    expect_load_error(w, QR_ERR_FORMAT,
                      "tokenizer.ggml.eos_token_id = 3 is out of range (3 tokens)");

    w = qr_gguf_writer_create();
    qr_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    set_str_array(w, "tokenizer.ggml.tokens", texts, 3);
    qr_gguf_writer_set_str(w, "tokenizer.ggml.bos_token_id", "1");
    expect_load_error(w, QR_ERR_FORMAT, "tokenizer.ggml.bos_token_id must be an integer");

    qr_status st;
    qr_vocab *v = bpe_vocab("gpt-2", false, &st);
    assert_int_equal(st, QR_ERR_FORMAT);
    assert_null(v);
    assert_non_null(strstr(qr_last_error(), "missing key tokenizer.ggml.merges"));
}

static void test_special_id_none(void **state) {
    (void)state;
    /* 0xFFFFFFFF means "none" (stories260K has such a padding id): the default stays */
    const char *texts[] = {"<unk>", "<s>", "</s>"};
    qr_gguf_writer *w = qr_gguf_writer_create();
    qr_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    set_str_array(w, "tokenizer.ggml.tokens", texts, 3);
    qr_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 0xFFFFFFFFu);
    qr_gguf *g = write_and_open(w);
    qr_vocab *v = NULL;
    assert_int_equal(qr_vocab_load(g, &v), QR_OK);
    assert_int_equal(qr_vocab_bos(v), 1);
    qr_vocab_free(v);
    qr_gguf_free(g);
}

/* ---- bad calls and bad text ---- */

static void test_bad_calls(void **state) {
    (void)state;
    qr_vocab *v = spm_vocab();
    qr_token t[2];
    int32_t n = 0;
    /* too small: the count needed */
    assert_int_equal(qr_vocab_tokenize(v, "bab", 3, true, false, t, 2, &n), QR_ERR_BUFFER_SMALL);
    assert_int_equal(n, 4);
    assert_non_null(strstr(qr_last_error(), "4 tokens do not fit a buffer of 2"));
    assert_int_equal(qr_vocab_tokenize(v, "bab", 3, true, false, NULL, 0, &n), QR_ERR_BUFFER_SMALL);
    assert_int_equal(n, 4);
    assert_int_equal(qr_vocab_tokenize(v, NULL, 3, true, false, t, 2, &n), QR_ERR_INVALID_ARG);
    assert_non_null(strstr(qr_last_error(), "text is NULL"));
    assert_int_equal(qr_vocab_tokenize(v, "a", 1, true, false, NULL, 5, &n), QR_ERR_INVALID_ARG);
    assert_non_null(strstr(qr_last_error(), "bad output buffer"));
    qr_vocab_free(v);
}

static qr_vocab *shared_vocab(const char *name, qr_gguf **g) {
    char path[1024];
    snprintf(path, sizeof(path), "%s/tokenizer-vectors/ggml-vocab-%s.gguf", QR_SHARED_DIR, name);
    assert_int_equal(qr_gguf_open(path, g), QR_OK);
    qr_vocab *v = NULL;
    assert_int_equal(qr_vocab_load(*g, &v), QR_OK);
    return v;
}

/* Expected ids from llama.cpp v0.5.0 (the peer), made with
 *   m = libllama.Model(".../ggml-vocab-<name>.gguf", vocab_only=True); m.tokenize(text, ...)
 * Invalid UTF-8 becomes U+FFFD per bad byte for BPE; SPM byte-falls-back the raw bytes. */
typedef struct ref_case {
    const char *vocab;
    const char *text;
    size_t len;
    bool add_special, parse_special;
    int n;
    qr_token ids[24];
} ref_case;

static const ref_case ref_cases[] = {
    {"llama-spm",
     "a\xff"
     "b",
     3,
     false,
     false,
     3,
     {263, 258, 101}},
    {"llama-spm", "\xe4\xbd", 2, false, false, 3, {29871, 231, 192}},
    {"llama-spm", "x\xc3", 2, false, false, 2, {921, 198}},
    {"llama-spm", "a\0b", 3, false, false, 3, {263, 3, 29890}},
    {"llama-spm", "\xed\xa0\x80z", 4, false, false, 5, {29871, 240, 163, 131, 29920}},
    {"llama-spm", "\xc0\xafq", 3, false, false, 4, {29871, 195, 178, 29939}},
    {"llama-spm", "<s>hi</s>", 9, true, true, 4, {1, 1, 7251, 2}},
    {"llama-spm", "<s>hi</s>", 9, true, false, 8, {1, 529, 29879, 29958, 2918, 829, 29879, 29958}},
    {"llama-bpe",
     "a\xff"
     "b",
     3,
     false,
     false,
     3,
     {64, 5809, 65}},
    {"llama-bpe", "\xe4\xbd", 2, false, false, 1, {10178}},
    {"llama-bpe", "x\xc3", 2, false, false, 2, {87, 5809}},
    {"llama-bpe", "a\0b", 3, false, false, 3, {64, 188, 65}},
    {"llama-bpe", "\xed\xa0\x80z", 4, false, false, 3, {169, 64319, 89}},
    {"llama-bpe", "\xc0\xafq", 3, false, false, 1, {34994}},
    {"llama-bpe",
     "<|begin_of_text|>hi<|eot_id|>",
     29,
     true,
     true,
     4,
     {128000, 128000, 6151, 128009}},
    {"llama-bpe",
     "<|begin_of_text|>hi<|eot_id|>",
     29,
     true,
     false,
     16,
     {128000, 27, 91, 7413, 3659, 4424, 91, 29, 6151, 27, 91, 68, 354, 851, 91, 29}},
    {"qwen2",
     "a\xff"
     "b",
     3,
     false,
     false,
     3,
     {64, 5691, 65}},
    {"qwen2", "\xe4\xbd", 2, false, false, 1, {9973}},
    {"qwen2", "\xed\xa0\x80z", 4, false, false, 3, {169, 63219, 89}},
    {"qwen2",
     "<|im_start|>user\nhi<|im_end|>",
     29,
     true,
     true,
     5,
     {151644, 872, 198, 6023, 151645}},
    {"qwen2",
     "<|im_start|>user\nhi<|im_end|>",
     29,
     true,
     false,
     15,
     {27, 91, 318, 4906, 91, 29, 872, 198, 6023, 27, 91, 318, 6213, 91, 29}},
    {"qwen2", "Hello <|endoftext|>", 19, true, true, 3, {9707, 220, 151643}},
    /* Phi-3: special tokens eat the spaces after them (rstrip) */
    {"phi-3", "<|user|>\n hi <|end|>\nok", 23, true, true, 6, {1, 32010, 7251, 29871, 32007, 3431}},
    {"phi-3", "Hello <|endoftext|>", 19, true, true, 4, {1, 15043, 29871, 32000}},
};

static void test_llama_cpp_cases(void **state) {
    (void)state;
    const char *loaded = NULL;
    qr_gguf *g = NULL;
    qr_vocab *v = NULL;
    for (size_t i = 0; i < sizeof(ref_cases) / sizeof(ref_cases[0]); i++) {
        const ref_case *c = &ref_cases[i];
        if (!loaded || strcmp(loaded, c->vocab) != 0) {
            qr_vocab_free(v);
            qr_gguf_free(g);
            v = shared_vocab(c->vocab, &g);
            loaded = c->vocab;
        }
        qr_token t[64];
        int32_t n = 0;
        assert_int_equal(
            qr_vocab_tokenize(v, c->text, c->len, c->add_special, c->parse_special, t, 64, &n),
            QR_OK);
        if (n != c->n || memcmp(t, c->ids, (size_t)n * sizeof(qr_token)) != 0) {
            printf("case %zu (%s): got", i, c->vocab);
            for (int32_t k = 0; k < n; k++)
                printf(" %d", t[k]);
            printf("\n");
            fail();
        }
    }
    qr_vocab_free(v);
    qr_gguf_free(g);
}

/* Decoding, from the peer: tokenize("Hello world", add_special) then
 * detokenize(remove_special, unparse_special). */
static void test_llama_cpp_detokenize(void **state) {
    (void)state;
    qr_gguf *g;
    char buf[64];
    qr_vocab *v = shared_vocab("llama-spm", &g);
    const qr_token a[] = {1, 15043, 3186};
    int32_t n = qr_vocab_detokenize(v, a, 3, buf, sizeof(buf), false, true);
    assert_int_equal(n, 15);
    assert_memory_equal(buf, "<s> Hello world", 15);
    n = qr_vocab_detokenize(v, a, 3, buf, sizeof(buf), true, false);
    assert_int_equal(n, 12);
    assert_memory_equal(buf, " Hello world", 12);
    n = qr_vocab_detokenize(v, a, 3, buf, sizeof(buf), false, false);
    assert_int_equal(n, 12);
    assert_memory_equal(buf, " Hello world", 12);
    qr_vocab_free(v);
    qr_gguf_free(g);

    v = shared_vocab("llama-bpe", &g);
    const qr_token b[] = {128000, 9906, 1917};
    n = qr_vocab_detokenize(v, b, 3, buf, sizeof(buf), false, true);
    assert_int_equal(n, 28);
    assert_memory_equal(buf, "<|begin_of_text|>Hello world", 28);
    n = qr_vocab_detokenize(v, b, 3, buf, sizeof(buf), true, false);
    assert_int_equal(n, 11);
    assert_memory_equal(buf, "Hello world", 11);
    qr_vocab_free(v);
    qr_gguf_free(g);
}

/* A 10 MB prompt goes through in reasonable time (no quadratic merging) and decodes back. */
static void big_prompt(const char *name, size_t size) {
    qr_gguf *g;
    qr_vocab *v = shared_vocab(name, &g);
    static const char chunk[] = "The quick brown fox jumps over the lazy dog; \xc3\xa9t\xc3\xa9 "
                                "\xe4\xbd\xa0\xe5\xa5\xbd 12345 (x) -- ok?\n";
    char *text = malloc(size + 1);
    size_t n = 0;
    while (n + sizeof(chunk) - 1 <= size) {
        memcpy(text + n, chunk, sizeof(chunk) - 1);
        n += sizeof(chunk) - 1;
    }
    int32_t n_tok = 0;
    assert_int_equal(qr_vocab_tokenize(v, text, n, false, false, NULL, 0, &n_tok),
                     QR_ERR_BUFFER_SMALL);
    assert_true(n_tok > (int32_t)(n / 16));
    qr_token *t = malloc((size_t)n_tok * sizeof(*t));
    int32_t n2 = 0;
    assert_int_equal(qr_vocab_tokenize(v, text, n, false, false, t, n_tok, &n2), QR_OK);
    assert_int_equal(n2, n_tok);
    char *back = malloc(n + 16);
    int32_t m = qr_vocab_detokenize(v, t, n2, back, (int32_t)n + 16, false, false);
    assert_int_equal(m, (int32_t)n);
    assert_memory_equal(back, text, n);
    free(back);
    free(t);
    free(text);
    qr_vocab_free(v);
    qr_gguf_free(g);
}

static void test_big_prompt(void **state) {
    (void)state;
    big_prompt("llama-spm", 10u << 20);
    big_prompt("qwen2", 10u << 20);
}

/* One 10 MB word: the per-word merge queue must not go quadratic either. */
static void test_big_word(void **state) {
    (void)state;
    qr_gguf *g;
    qr_vocab *v = shared_vocab("qwen2", &g);
    size_t n = 10u << 20;
    char *text = malloc(n);
    memset(text, 'a', n);
    int32_t n_tok = 0;
    assert_int_equal(qr_vocab_tokenize(v, text, n, false, false, NULL, 0, &n_tok),
                     QR_ERR_BUFFER_SMALL);
    assert_true(n_tok > 0 && n_tok < (int32_t)n);
    free(text);
    qr_vocab_free(v);
    qr_gguf_free(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spm_merges),      cmocka_unit_test(test_spm_special),
        cmocka_unit_test(test_spm_decode),      cmocka_unit_test(test_bpe_merges),
        cmocka_unit_test(test_bpe_unknown_pre), cmocka_unit_test(test_bad_metadata),
        cmocka_unit_test(test_special_id_none), cmocka_unit_test(test_bad_calls),
        cmocka_unit_test(test_llama_cpp_cases), cmocka_unit_test(test_llama_cpp_detokenize),
        cmocka_unit_test(test_big_prompt),      cmocka_unit_test(test_big_word),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
