/* utf8.h - UTF-8 helpers of the tokenizer, with llama.cpp's (unicode.cpp) conventions for
 * invalid input: a bad byte decodes to U+FFFD and consumes one byte. */
#ifndef QR_TOKENIZER_UTF8_H
#define QR_TOKENIZER_UTF8_H

#include <stddef.h>
#include <stdint.h>

#define QR_UTF8_REPLACEMENT 0xFFFDu

/* Length of a UTF-8 sequence from its first byte alone (continuation bytes count as 1), as
 * llama.cpp's unicode_len_utf8: the tokenizers split text into symbols with it. */
static inline size_t qr_utf8_seq_len(unsigned char lead) {
    static const unsigned char lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lookup[lead >> 4];
}

/* Decode one code point at s[*off] (*off < n) and advance *off. Invalid or truncated
 * sequences give U+FFFD and advance by one byte (unicode_cpts_from_utf8). Overlong forms and
 * surrogates are accepted like llama.cpp does. */
uint32_t qr_utf8_decode(const char *s, size_t n, size_t *off);

/* Encode a code point (<= 0x10FFFF) into out; returns the byte count (1..4), 0 if invalid. */
int qr_utf8_encode(uint32_t cp, char out[4]);

/* Length of the longest valid (strict: no overlong, no surrogate) UTF-8 sequence at s, or 0
 * if s[0..n) does not start with one; *incomplete is set when s is a valid but truncated
 * prefix of a sequence. */
size_t qr_utf8_valid_seq(const unsigned char *s, size_t n, int *incomplete);

#endif
