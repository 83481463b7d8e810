/* strmap.c - the open-addressing hash table from byte strings to ids used for the token and
 * merge lookups (llama.cpp's token_to_id and bpe_ranks). */
#include "tokenizer/vocab_internal.h"
#include "util/util.h"

#include <stdlib.h>
#include <string.h>

static uint64_t hash_bytes(const char *p, uint32_t n, uint32_t aux) {
    uint64_t h = 0x9e3779b97f4a7c15ull ^ ((uint64_t)n << 32) ^ aux;
    while (n >= 8) {
        uint64_t k;
        memcpy(&k, p, 8);
        h = (h ^ k) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
        p += 8;
        n -= 8;
    }
    uint64_t k = 0;
    memcpy(&k, p, n);
    h = (h ^ k) * 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 29;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 32;
    return h;
}

qr_status qr_strmap_init(qr_strmap *m, uint64_t n_expected) {
    memset(m, 0, sizeof(*m));
    uint64_t cap = 16;
    while (cap < n_expected * 2)
        cap *= 2;
    m->mask = cap - 1;
    m->key = calloc(cap, sizeof(*m->key));
    m->key_len = calloc(cap, sizeof(*m->key_len));
    m->value = calloc(cap, sizeof(*m->value));
    m->aux = calloc(cap, sizeof(*m->aux));
    if (!m->key || !m->key_len || !m->value || !m->aux) {
        qr_strmap_free(m);
        return qr_error(QR_ERR_NOMEM, "tokenizer: out of memory for a table of %llu entries",
                        (unsigned long long)n_expected);
    }
    return QR_OK;
}

void qr_strmap_free(qr_strmap *m) {
    free(m->key);
    free(m->key_len);
    free(m->value);
    free(m->aux);
    memset(m, 0, sizeof(*m));
}

static uint64_t find_slot(const qr_strmap *m, const char *key, uint32_t len, uint32_t aux) {
    uint64_t i = hash_bytes(key, len, aux) & m->mask;
    while (m->key[i]) {
        if (m->key_len[i] == len && m->aux[i] == aux && memcmp(m->key[i], key, len) == 0) return i;
        i = (i + 1) & m->mask;
    }
    return i;
}

void qr_strmap_put(qr_strmap *m, const char *key, uint32_t len, uint32_t aux, int32_t value) {
    /* the table is sized for its contents at init; callers never exceed n_expected */
    uint64_t i = find_slot(m, key, len, aux);
    if (!m->key[i]) {
        m->key[i] = key;
        m->key_len[i] = len;
        m->aux[i] = aux;
        m->n++;
    }
    m->value[i] = value;
}

int32_t qr_strmap_get(const qr_strmap *m, const char *key, uint32_t len, uint32_t aux) {
    if (!m->key) return -1;
    uint64_t i = find_slot(m, key, len, aux);
    return m->key[i] ? m->value[i] : -1;
}
