/* fuzz_json_schema.c - libFuzzer target for the JSON schema converter: any byte string must
 * convert or fail with a message, never crash, hang or grow without bound (nesting, $ref cycles
 * and output size are limited). Build with -DQR_FUZZ=ON (clang); the corpus in
 * tests/fuzz/corpus_json_schema is replayed by tests/grammar/test_fuzz_corpus_schema.c. */
#include "quarrel.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *g = NULL;
    if (qr_json_schema_to_grammar((const char *)data, size, &g) != QR_OK) {
        if (!qr_last_error()[0] || g) abort(); /* every failure says why, and gives nothing */
        return 0;
    }
    if (!g || !strstr(g, "root ::= ")) abort(); /* a grammar always has its root */
    free(g);
    return 0;
}
