/* vocab.h - the tokenizer: a vocabulary loaded from a GGUF file's tokenizer.ggml.* metadata,
 * with llama.cpp's SentencePiece (tokenizer.ggml.model = "llama") and byte-level BPE ("gpt2")
 * tokenizers. The public qr_tokenize/qr_token_to_piece/... of quarrel.h wrap these. */
#ifndef QR_TOKENIZER_VOCAB_H
#define QR_TOKENIZER_VOCAB_H

#include "quarrel.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct qr_vocab qr_vocab;

/* Load from tokenizer.ggml.* metadata; the vocab copies what it needs (the GGUF may be freed
 * afterwards). */
qr_status qr_vocab_load(const qr_gguf *gguf, qr_vocab **out);
void qr_vocab_free(qr_vocab *v);
int32_t qr_vocab_n_tokens(const qr_vocab *v);

/* Tokenize text[0..len) as llama_tokenize. QR_ERR_BUFFER_SMALL with *n_tokens = the number
 * needed when n_max is too small (tokens may be NULL then). */
qr_status qr_vocab_tokenize(const qr_vocab *v, const char *text, size_t len, bool add_special,
                            bool parse_special, qr_token *tokens, int32_t n_max, int32_t *n_tokens);
/* The bytes of one token (no NUL); the length, or -(needed) if len is too small. Control and
 * unknown tokens give 0 bytes unless special. Out-of-range ids give 0. */
int32_t qr_vocab_token_to_piece(const qr_vocab *v, qr_token t, char *buf, int32_t len,
                                bool special);
/* llama_detokenize: the length, or -(needed). */
int32_t qr_vocab_detokenize(const qr_vocab *v, const qr_token *t, int32_t n, char *buf, int32_t len,
                            bool remove_special, bool unparse_special);
/* The vocabulary string of a token, NULL if out of range. */
const char *qr_vocab_token_text(const qr_vocab *v, qr_token t);
qr_token qr_vocab_bos(const qr_vocab *v); /* -1 if none */
qr_token qr_vocab_eos(const qr_vocab *v);
qr_token qr_vocab_eot(const qr_vocab *v);
bool qr_vocab_is_eog(const qr_vocab *v, qr_token t);
bool qr_vocab_is_control(const qr_vocab *v, qr_token t);
bool qr_vocab_add_bos(const qr_vocab *v);
bool qr_vocab_add_eos(const qr_vocab *v);

#endif
