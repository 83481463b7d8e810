/* vocab_internal.h - the vocabulary struct shared by the tokenizer files (vocab.c loads it,
 * spm.c and bpe.c tokenize with it, pretok.c splits text for BPE). */
#ifndef QR_TOKENIZER_VOCAB_INTERNAL_H
#define QR_TOKENIZER_VOCAB_INTERNAL_H

#include "tokenizer/vocab.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Token attributes, as llama.cpp's llama_token_attr bits. */
enum {
    QR_ATTR_UNKNOWN = 1 << 0,
    QR_ATTR_UNUSED = 1 << 1,
    QR_ATTR_NORMAL = 1 << 2,
    QR_ATTR_CONTROL = 1 << 3,
    QR_ATTR_USER_DEFINED = 1 << 4,
    QR_ATTR_BYTE = 1 << 5,
    QR_ATTR_LSTRIP = 1 << 7,
    QR_ATTR_RSTRIP = 1 << 8,
};

typedef enum qr_vocab_type { QR_VOCAB_SPM, QR_VOCAB_BPE } qr_vocab_type;

/* Open-addressing hash table from byte strings to int32 values; keys point into storage that
 * outlives the table. */
typedef struct qr_strmap {
    uint64_t mask; /* capacity - 1 (a power of two) */
    uint64_t n;
    const char **key;
    uint32_t *key_len;
    int32_t *value;
    uint32_t *aux; /* BPE merges: the length of the first half of the key */
} qr_strmap;

qr_status qr_strmap_init(qr_strmap *m, uint64_t n_expected);
void qr_strmap_free(qr_strmap *m);
/* Insert or overwrite (a later duplicate wins, as in llama.cpp's token_to_id[word] = i). */
void qr_strmap_put(qr_strmap *m, const char *key, uint32_t len, uint32_t aux, int32_t value);
/* -1 when absent. aux must match too (pass 0 for maps that do not use it). */
int32_t qr_strmap_get(const qr_strmap *m, const char *key, uint32_t len, uint32_t aux);

typedef struct qr_pretok qr_pretok; /* compiled pre-tokenizer regexes (pretok.c) */

typedef struct qr_token_data {
    const char *text; /* NUL-terminated, in the vocab's arena */
    uint32_t len;
    float score;
    uint32_t attr;
    uint32_t piece_off, piece_len; /* token_to_piece(special = true) in piece_buf */
} qr_token_data;

struct qr_vocab {
    qr_vocab_type type;
    int32_t n_tokens;
    qr_token_data *tokens;
    char *text_buf;  /* token texts */
    char *piece_buf; /* rendered pieces */
    qr_strmap token_map;
    qr_strmap merge_map; /* BPE: (first, second) -> rank; key = first+second, aux = len(first) */
    char *merge_buf;
    qr_pretok *pretok;
    char byte_enc[256][2]; /* GPT-2 byte-to-unicode, UTF-8 encoded (1 or 2 bytes) */
    uint8_t byte_enc_len[256];
    char pre_name[64];

    qr_token bos, eos, eot, eom, unk, sep, pad, mask;
    qr_token fim_pad, fim_rep, fim_sep;
    qr_token *eog;
    int32_t n_eog;

    bool add_bos, add_eos, add_space_prefix, ignore_merges, clean_spaces;

    qr_token *special; /* CONTROL | USER_DEFINED | UNKNOWN tokens, longest text first */
    int32_t n_special;
};

/* A growable token array. */
typedef struct qr_tokbuf {
    qr_token *data;
    size_t n, cap;
} qr_tokbuf;
qr_status qr_tokbuf_push(qr_tokbuf *b, qr_token t);

static inline int32_t qr_vocab_find(const qr_vocab *v, const char *text, size_t len) {
    if (len > UINT32_MAX) return -1;
    return qr_strmap_get(&v->token_map, text, (uint32_t)len, 0);
}

/* SPM (llm_tokenizer_spm): text already has spaces escaped as U+2581. */
qr_status qr_spm_tokenize(const qr_vocab *v, const char *text, size_t len, qr_tokbuf *out);
/* BPE (llm_tokenizer_bpe): pre-tokenize with v->pretok, byte-encode, merge by rank. */
qr_status qr_bpe_tokenize(const qr_vocab *v, const char *text, size_t len, qr_tokbuf *out);

/* What a pre-tokenizer preset implies for the vocabulary (llama.cpp sets these per preset). */
typedef struct qr_pretok_opts {
    bool clean_spaces, ignore_merges, add_bos;
} qr_pretok_opts;
/* Pre-tokenizer presets by tokenizer.ggml.pre name (NULL: default). *known is false when the
 * name is not one Quarrel knows (the default preset is used then). */
qr_status qr_pretok_create(const char *pre_name, qr_pretok **out, qr_pretok_opts *opts,
                           bool *known);
void qr_pretok_free(qr_pretok *p);
/* Split valid UTF-8 text into words: *bounds gets n_words + 1 byte offsets (malloc'd). */
qr_status qr_pretok_split(const qr_pretok *p, const char *text, size_t len, size_t **bounds,
                          size_t *n_words);

/* GPT-2 byte-to-unicode mapping: the code point that stands for a byte, and back (-1 if a code
 * point stands for no byte). */
uint32_t qr_byte_to_cp(uint8_t byte);
int qr_cp_to_byte(uint32_t cp);

#endif
