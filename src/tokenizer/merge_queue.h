/* merge_queue.h - what the SPM and BPE tokenizers share: the symbol list they merge and the
 * binary heap of candidate merges (llama.cpp's std::priority_queue of llm_bigram_spm /
 * llm_bigram_bpe). The best entry has the highest key; ties go to the leftmost pair, as
 * llama.cpp's comparators order them. */
#ifndef QR_TOKENIZER_MERGE_QUEUE_H
#define QR_TOKENIZER_MERGE_QUEUE_H

#include "tokenizer/utf8.h"

#include <stdint.h>
#include <stdlib.h>

typedef struct qr_merge {
    float key;     /* SPM: the merged token's score; BPE: -rank */
    int32_t left;  /* symbol index of the left half */
    uint32_t size; /* bytes of the merged text when queued (stale entries are skipped) */
} qr_merge;

typedef struct qr_merge_queue {
    qr_merge *data;
    size_t n, cap;
} qr_merge_queue;

static inline int qr_merge_better(const qr_merge *a, const qr_merge *b) {
    return a->key > b->key || (a->key == b->key && a->left < b->left);
}

/* 0 on success, -1 when out of memory. */
static inline int qr_merge_push(qr_merge_queue *q, qr_merge m) {
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 256;
        qr_merge *d = (qr_merge *)realloc(q->data, cap * sizeof(*d));
        if (!d) return -1;
        q->data = d;
        q->cap = cap;
    }
    size_t i = q->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!qr_merge_better(&m, &q->data[parent])) break;
        q->data[i] = q->data[parent];
        i = parent;
    }
    q->data[i] = m;
    return 0;
}

static inline qr_merge qr_merge_pop(qr_merge_queue *q) {
    qr_merge top = q->data[0];
    qr_merge last = q->data[--q->n];
    size_t i = 0, n = q->n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && qr_merge_better(&q->data[c + 1], &q->data[c])) c++;
        if (!qr_merge_better(&q->data[c], &last)) break;
        q->data[i] = q->data[c];
        i = c;
    }
    if (n > 0) q->data[i] = last;
    return top;
}

/* A symbol of the text being merged: bytes [start, start + n) of it; n = 0 once merged away. */
typedef struct qr_symbol {
    int32_t prev, next;
    uint32_t start, n;
} qr_symbol;

/* Split text[0..len) into one linked symbol per UTF-8 character (a truncated sequence at the
 * end is one symbol); sym has room for len. Returns the number of symbols. */
static inline int32_t qr_symbols_from_utf8(const char *text, size_t len, qr_symbol *sym) {
    int32_t n_sym = 0;
    for (size_t off = 0; off < len;) {
        size_t n = qr_utf8_seq_len((unsigned char)text[off]);
        if (n > len - off) n = len - off;
        sym[n_sym].start = (uint32_t)off;
        sym[n_sym].n = (uint32_t)n;
        sym[n_sym].prev = n_sym - 1;
        off += n;
        sym[n_sym].next = off == len ? -1 : n_sym + 1;
        n_sym++;
    }
    return n_sym;
}

#endif
