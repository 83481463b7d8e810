/* fuzz_gguf.c - libFuzzer target for the GGUF parser: any byte string must parse or fail with
 * a message, never crash or read out of bounds. Build with -DQR_FUZZ=ON (clang); the corpus in
 * tests/fuzz/corpus_gguf is replayed by tests/gguf/test_fuzz_corpus.c in every test run. */
#include "quarrel.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    qr_gguf *g;
    if (qr_gguf_open_memory(data, size, &g) != QR_OK) {
        if (!qr_last_error()[0]) abort(); /* every failure says why */
        return 0;
    }
    /* walk everything the parser produced */
    size_t sum = 0;
    for (int64_t i = 0; i < qr_gguf_n_kv(g); i++) {
        const qr_gguf_value *v = qr_gguf_value_at(g, i);
        sum += strlen(qr_gguf_key(g, i));
        if (v->type == QR_GGUF_ARRAY && v->arr.data)
            for (uint64_t j = 0; j < v->arr.n; j++)
                sum += (size_t)qr_gguf_arr_i64(v, j);
    }
    for (int64_t i = 0; i < qr_gguf_n_tensors(g); i++) {
        const qr_gguf_tensor *t = qr_gguf_tensor_at(g, i);
        if (t->nbytes) sum += ((const unsigned char *)t->data)[t->nbytes - 1];
    }
    qr_gguf_free(g);
    return (int)(sum & 0);
}
