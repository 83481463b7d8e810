/* spm.c - the SentencePiece tokenizer of llama.cpp (llm_tokenizer_spm_session): split into
 * UTF-8 characters, then repeatedly merge the adjacent pair whose concatenation is the token
 * with the highest score; characters that end up in no token fall back to byte tokens. */
#include "tokenizer/merge_queue.h"
#include "tokenizer/utf8.h"
#include "tokenizer/vocab_internal.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>

static int try_add_pair(const qr_vocab *v, const char *text, const qr_symbol *sym, int32_t left,
                        qr_merge_queue *q) {
    if (left < 0) return 0;
    int32_t right = sym[left].next;
    if (right < 0) return 0;
    uint32_t size = sym[left].n + sym[right].n;
    int32_t id = qr_vocab_find(v, text + sym[left].start, size);
    if (id < 0) return 0;
    qr_merge m = {v->tokens[id].score, left, size};
    return qr_merge_push(q, m);
}

/* byte_to_token for SPM: "<0xNN>", else the byte itself as a token, else <unk>. */
static qr_status push_byte(const qr_vocab *v, unsigned char c, qr_tokbuf *out) {
    char hex[7];
    snprintf(hex, sizeof(hex), "<0x%02X>", c);
    int32_t id = qr_vocab_find(v, hex, 6);
    if (id < 0) id = qr_vocab_find(v, (const char *)&c, 1);
    if (id < 0) id = v->unk; /* llama.cpp throws here; Quarrel falls back to <unk> */
    if (id < 0)
        return qr_error(QR_ERR_UNSUPPORTED,
                        "SPM tokenizer: byte 0x%02X has no token (no <0x%02X>, no <unk>)", c, c);
    return qr_tokbuf_push(out, id);
}

qr_status qr_spm_tokenize(const qr_vocab *v, const char *text, size_t len, qr_tokbuf *out) {
    if (len == 0) return QR_OK;
    if (len > INT32_MAX) return qr_error(QR_ERR_INVALID_ARG, "SPM tokenizer: text too long");
    qr_symbol *sym = malloc(len * sizeof(*sym));
    qr_merge_queue q = {0};
    qr_status st = QR_OK;
    if (!sym) return qr_error(QR_ERR_NOMEM, "SPM tokenizer: out of memory for %zu bytes", len);
    int32_t n_sym = qr_symbols_from_utf8(text, len, sym);
    for (int32_t i = 0; i + 1 < n_sym; i++) {
        if (try_add_pair(v, text, sym, i, &q)) goto nomem;
    }
    while (q.n > 0) {
        qr_merge m = qr_merge_pop(&q);
        qr_symbol *l = &sym[m.left];
        if (l->n == 0 || l->next < 0) continue;
        qr_symbol *r = &sym[l->next];
        if (r->n == 0 || l->n + r->n != m.size) continue; /* stale: a side changed */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = m.left;
        if (try_add_pair(v, text, sym, l->prev, &q)) goto nomem;
        if (try_add_pair(v, text, sym, m.left, &q)) goto nomem;
    }
    for (int32_t i = 0; i != -1 && st == QR_OK; i = sym[i].next) {
        int32_t id = qr_vocab_find(v, text + sym[i].start, sym[i].n);
        if (id >= 0) {
            st = qr_tokbuf_push(out, id);
        } else {
            for (uint32_t j = 0; j < sym[i].n && st == QR_OK; j++)
                st = push_byte(v, (unsigned char)text[sym[i].start + j], out);
        }
    }
    free(sym);
    free(q.data);
    return st;
nomem:
    free(sym);
    free(q.data);
    return qr_error(QR_ERR_NOMEM, "SPM tokenizer: out of memory");
}
