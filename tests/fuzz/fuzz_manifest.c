/* fuzz_manifest.c - libFuzzer target for the registry's manifest parser (the manifest comes from
 * the network and its digests become file names): any byte string must parse or fail with a
 * message, never crash, and every accepted digest must be sha256:<64 lowercase hex>. Build with
 * -DQR_FUZZ=ON (clang); tests/fuzz/corpus_manifest is replayed by
 * tests/registry/test_fuzz_corpus_manifest.c in every test run. */
#include "registry/registry.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    qr_error_clear();
    qr_manifest m;
    if (qr_manifest_parse((const char *)data, size, &m) != QR_OK) {
        if (!qr_last_error()[0]) abort(); /* every failure says why */
        return 0;
    }
    /* what the store will use as paths must be safe whatever the input */
    if (!qr_digest_valid(m.config.digest) || m.n_layers < 1 || m.config.size < 0) abort();
    for (int32_t i = 0; i < m.n_layers; i++)
        if (!qr_digest_valid(m.layers[i].digest) || m.layers[i].size < 0) abort();
    qr_manifest_free(&m);
    return 0;
}
