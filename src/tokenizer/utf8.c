/* utf8.c - UTF-8 decoding/encoding for the tokenizers and the streaming output helper
 * (qr_utf8_stream_push / qr_utf8_stream_flush of quarrel.h). */
#include "tokenizer/utf8.h"

#include "quarrel.h"

#include <string.h>

uint32_t qr_utf8_decode(const char *str, size_t n, size_t *off) {
    const unsigned char *s = (const unsigned char *)str + *off;
    size_t left = n - *off;
    unsigned char c = s[0];
    if (c < 0x80) {
        *off += 1;
        return c;
    }
    size_t len = 0;
    uint32_t cp = 0;
    if ((c & 0x40) == 0) {
        len = 0; /* stray continuation byte */
    } else if ((c & 0x20) == 0) {
        len = 2;
        cp = c & 0x1f;
    } else if ((c & 0x10) == 0) {
        len = 3;
        cp = c & 0x0f;
    } else if ((c & 0x08) == 0) {
        len = 4;
        cp = c & 0x07;
    }
    if (len == 0 || len > left) {
        *off += 1;
        return QR_UTF8_REPLACEMENT;
    }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            *off += 1;
            return QR_UTF8_REPLACEMENT;
        }
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    *off += len;
    return cp;
}

int qr_utf8_encode(uint32_t cp, char out[4]) {
    if (cp <= 0x7f) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp <= 0x7ff) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp <= 0xffff) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    if (cp <= 0x10ffff) {
        out[0] = (char)(0xf0 | (cp >> 18));
        out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[3] = (char)(0x80 | (cp & 0x3f));
        return 4;
    }
    return 0;
}

size_t qr_utf8_valid_seq(const unsigned char *s, size_t n, int *incomplete) {
    *incomplete = 0;
    if (n == 0) return 0;
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0) lo = 0xa0; /* no overlong */
        if (c == 0xed) hi = 0x9f; /* no surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0) lo = 0x90; /* no overlong */
        if (c == 0xf4) hi = 0x8f; /* <= U+10FFFF */
    } else {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if (i >= n) {
            *incomplete = 1;
            return 0;
        }
        unsigned char b = s[i];
        unsigned char l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xbf;
        if (b < l || b > h) return 0;
    }
    return len;
}

/* The stream keeps at most 3 bytes of an unfinished character between calls. Each maximal
 * invalid subpart (a byte that cannot start or continue a valid sequence) becomes one U+FFFD,
 * as Python's errors="replace" and the WHATWG decoder do. */
static size_t stream_emit(const unsigned char *in, size_t n, char *out, size_t *consumed,
                          int final) {
    size_t o = 0, i = 0;
    while (i < n) {
        int incomplete;
        size_t len = qr_utf8_valid_seq(in + i, n - i, &incomplete);
        if (len > 0) {
            memcpy(out + o, in + i, len);
            o += len;
            i += len;
            continue;
        }
        if (incomplete && !final) break; /* wait for more bytes */
        /* invalid: skip the lead byte and the continuation bytes that were valid so far */
        size_t skip = 1;
        if (incomplete) {
            skip = n - i;
        } else {
            while (skip < 4 && i + skip < n) {
                int inc2;
                /* extend over bytes that keep the prefix a valid incomplete sequence */
                if (qr_utf8_valid_seq(in + i, skip + 1, &inc2) == 0 && inc2) {
                    skip++;
                } else {
                    break;
                }
            }
        }
        memcpy(out + o, "\xEF\xBF\xBD", 3);
        o += 3;
        i += skip;
    }
    *consumed = i;
    return o;
}

size_t qr_utf8_stream_push(qr_utf8_stream *s, const char *in, size_t n, char *out) {
    size_t o = 0;
    /* first complete the pending character, byte by byte, so only a small buffer is needed */
    size_t used = 0;
    while (s->n_pending > 0 && used < n) {
        unsigned char buf[4];
        memcpy(buf, s->pending, (size_t)s->n_pending);
        buf[s->n_pending] = (unsigned char)in[used];
        size_t consumed;
        size_t w = stream_emit(buf, (size_t)s->n_pending + 1, out + o, &consumed, 0);
        o += w;
        used++;
        size_t rest = (size_t)s->n_pending + 1 - consumed;
        memmove(s->pending, buf + consumed, rest);
        s->n_pending = (int)rest;
        if (rest == 0) break;
    }
    if (s->n_pending > 0) return o; /* all input went into the pending character */
    size_t consumed;
    o += stream_emit((const unsigned char *)in + used, n - used, out + o, &consumed, 0);
    size_t rest = n - used - consumed;
    memcpy(s->pending, in + used + consumed, rest);
    s->n_pending = (int)rest;
    return o;
}

size_t qr_utf8_stream_flush(qr_utf8_stream *s, char *out) {
    size_t consumed;
    size_t o =
        stream_emit((const unsigned char *)s->pending, (size_t)s->n_pending, out, &consumed, 1);
    s->n_pending = 0;
    return o;
}
