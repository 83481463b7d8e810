/* bpe.c - the byte-level BPE tokenizer of llama.cpp (llm_tokenizer_bpe_session): pre-tokenize
 * into words, map each byte to its GPT-2 code point, then within each word repeatedly merge the
 * adjacent pair with the lowest merge rank. */
#include "tokenizer/merge_queue.h"
#include "tokenizer/utf8.h"
#include "tokenizer/vocab_internal.h"
#include "util/util.h"

#include <stdlib.h>
#include <string.h>

typedef struct bpe_work {
    char *enc; /* the byte-encoded word */
    size_t enc_cap;
    qr_symbol *sym;
    size_t sym_cap;
    qr_merge_queue q;
} bpe_work;

static int add_pair(const qr_vocab *v, const char *enc, const qr_symbol *sym, int32_t left,
                    qr_merge_queue *q) {
    if (left < 0) return 0;
    int32_t right = sym[left].next;
    if (right < 0) return 0;
    /* adjacent symbols are contiguous, so the pair's text is one run of bytes */
    uint32_t size = sym[left].n + sym[right].n;
    int32_t rank = qr_strmap_get(&v->merge_map, enc + sym[left].start, size, sym[left].n);
    if (rank < 0) return 0;
    qr_merge m = {-(float)rank, left, size};
    return qr_merge_push(q, m);
}

static qr_status bpe_word(const qr_vocab *v, const char *word, size_t wlen, bpe_work *w,
                          qr_tokbuf *out) {
    /* byte-encode */
    if (wlen > (SIZE_MAX / 2) || wlen * 2 > UINT32_MAX)
        return qr_error(QR_ERR_INVALID_ARG, "BPE tokenizer: word too long");
    if (w->enc_cap < wlen * 2) {
        char *e = realloc(w->enc, wlen * 2);
        if (!e) return qr_error(QR_ERR_NOMEM, "BPE tokenizer: out of memory");
        w->enc = e;
        w->enc_cap = wlen * 2;
    }
    size_t elen = 0;
    for (size_t i = 0; i < wlen; i++) {
        unsigned char b = (unsigned char)word[i];
        memcpy(w->enc + elen, v->byte_enc[b], v->byte_enc_len[b]);
        elen += v->byte_enc_len[b];
    }
    const char *enc = w->enc;
    if (v->ignore_merges) {
        int32_t id = qr_vocab_find(v, enc, elen);
        if (id >= 0) return qr_tokbuf_push(out, id);
    }
    if (w->sym_cap < wlen) {
        qr_symbol *s = realloc(w->sym, wlen * sizeof(*s));
        if (!s) return qr_error(QR_ERR_NOMEM, "BPE tokenizer: out of memory");
        w->sym = s;
        w->sym_cap = wlen;
    }
    qr_symbol *sym = w->sym;
    int32_t n_sym = qr_symbols_from_utf8(enc, elen, sym);
    qr_merge_queue *q = &w->q;
    q->n = 0;
    for (int32_t i = 0; i + 1 < n_sym; i++) {
        if (add_pair(v, enc, sym, i, q)) goto nomem;
    }
    while (q->n > 0) {
        qr_merge m = qr_merge_pop(q);
        qr_symbol *l = &sym[m.left];
        if (l->n == 0 || l->next < 0) continue;
        qr_symbol *r = &sym[l->next];
        if (r->n == 0 || l->n + r->n != m.size) continue; /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = m.left;
        if (add_pair(v, enc, sym, l->prev, q)) goto nomem;
        if (add_pair(v, enc, sym, m.left, q)) goto nomem;
    }
    for (int32_t i = 0; i != -1; i = sym[i].next) {
        int32_t id = qr_vocab_find(v, enc + sym[i].start, sym[i].n);
        qr_status st;
        if (id >= 0) {
            if ((st = qr_tokbuf_push(out, id)) != QR_OK) return st;
            continue;
        }
        /* llama.cpp looks each byte of the symbol's text up as a one-byte token and drops
         * the bytes that have none */
        for (uint32_t j = 0; j < sym[i].n; j++) {
            int32_t b = qr_vocab_find(v, enc + sym[i].start + j, 1);
            if (b >= 0 && (st = qr_tokbuf_push(out, b)) != QR_OK) return st;
        }
    }
    return QR_OK;
nomem:
    return qr_error(QR_ERR_NOMEM, "BPE tokenizer: out of memory");
}

qr_status qr_bpe_tokenize(const qr_vocab *v, const char *text, size_t len, qr_tokbuf *out) {
    if (len == 0) return QR_OK;
    /* llama.cpp decodes the text to code points first (bad bytes become U+FFFD) and
     * re-encodes every word; doing it once up front gives the regexes valid UTF-8 */
    char *clean = NULL, *masked = NULL;
    size_t clean_len = 0, n_surrogates = 0;
    {
        size_t cap = len, off = 0;
        clean = malloc(cap + 1);
        if (!clean) return qr_error(QR_ERR_NOMEM, "BPE tokenizer: out of memory");
        while (off < len) {
            uint32_t cp = qr_utf8_decode(text, len, &off);
            char buf[4];
            int n = qr_utf8_encode(cp, buf);
            /* past U+10FFFF: llama.cpp throws (and aborts); Quarrel uses U+FFFD */
            if (n == 0) n = qr_utf8_encode(QR_UTF8_REPLACEMENT, buf);
            n_surrogates += cp >= 0xD800 && cp <= 0xDFFF;
            if (clean_len + (size_t)n > cap) {
                cap = cap * 2 + 4;
                char *c = realloc(clean, cap + 1);
                if (!c) {
                    free(clean);
                    return qr_error(QR_ERR_NOMEM, "BPE tokenizer: out of memory");
                }
                clean = c;
            }
            memcpy(clean + clean_len, buf, (size_t)n);
            clean_len += (size_t)n;
        }
    }
    /* llama.cpp keeps surrogate code points (from bytes like ED A0 80), which PCRE2 cannot
     * take: the regexes see U+E000 instead (also 3 bytes, and like a surrogate in no \p{..}
     * class and not a space), the words keep the original bytes */
    if (n_surrogates > 0) {
        masked = malloc(clean_len + 1);
        if (!masked) {
            free(clean);
            return qr_error(QR_ERR_NOMEM, "BPE tokenizer: out of memory");
        }
        memcpy(masked, clean, clean_len);
        for (size_t i = 0; i + 2 < clean_len; i++) {
            unsigned char c0 = (unsigned char)masked[i], c1 = (unsigned char)masked[i + 1];
            if (c0 == 0xED && c1 >= 0xA0) {
                memcpy(masked + i, "\xEE\x80\x80", 3);
                i += 2;
            }
        }
    }
    size_t *bounds = NULL, n_words = 0;
    qr_status st =
        qr_pretok_split(v->pretok, masked ? masked : clean, clean_len, &bounds, &n_words);
    free(masked);
    bpe_work w = {0};
    for (size_t i = 0; st == QR_OK && i < n_words; i++)
        st = bpe_word(v, clean + bounds[i], bounds[i + 1] - bounds[i], &w, out);
    free(w.enc);
    free(w.sym);
    free(w.q.data);
    free(bounds);
    free(clean);
    return st;
}
