/* fuzz_imatrix.c - libFuzzer target for the importance matrix reader (both formats): any byte
 * string must load or fail with a message, never crash or read out of bounds. Build with
 * -DQR_FUZZ=ON (clang); the corpus in tests/fuzz/corpus_imatrix is replayed by
 * tests/quantize/test_imatrix_corpus.c in every test run. */
#include "quarrel.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    qr_imatrix *im;
    if (qr_imatrix_load_memory(data, size, &im) != QR_OK) {
        if (!qr_last_error()[0]) abort(); /* every failure says why */
        return 0;
    }
    /* walk everything the reader produced, and look every entry up by its name */
    float sum = 0;
    for (int64_t i = 0; i < qr_imatrix_n_entries(im); i++) {
        const float *v;
        int64_t n;
        const char *name = qr_imatrix_entry(im, i, &v, &n);
        if (!name || n < 1 || qr_imatrix_find(im, name, NULL) != v) abort();
        sum += v[0] + v[n - 1];
    }
    qr_imatrix_free(im);
    return (int)(sum * 0);
}
