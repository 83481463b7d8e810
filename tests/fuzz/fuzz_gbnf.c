/* fuzz_gbnf.c - libFuzzer target for the GBNF parser and matcher: any text must parse or fail
 * with a message, never crash, overrun or recurse without bound; a grammar that parses is run
 * over a few strings (and the input itself) byte by byte. Build with -DQR_FUZZ=ON (clang); the
 * corpus in tests/fuzz/corpus_gbnf is replayed by tests/grammar/test_fuzz_corpus_gbnf.c. */
#include "grammar/grammar.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1); /* the parser takes a C string */
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    qr_grammar *g;
    if (qr_grammar_parse(text, NULL, &g) != QR_OK) {
        if (!qr_last_error()[0]) abort(); /* every failure says why */
        free(text);
        return 0;
    }
    static const char *const probes[] = {"", "a", "{\"a\": 1}", "1+2=3\n", "\xe2\x82\xac", "\xff"};
    for (size_t i = 0; i < sizeof probes / sizeof *probes; i++)
        (void)qr_grammar_accepts(g, probes[i], strlen(probes[i]));
    qr_grammar_matcher *m;
    if (qr_grammar_matcher_create(g, &m) == QR_OK) {
        for (size_t i = 0; i < size && i < 256; i++)
            if (!qr_grammar_matcher_accept(m, text + i, 1)) break;
        (void)qr_grammar_matcher_can_end(m);
        qr_grammar_matcher_free(m);
    }
    qr_grammar_free(g);
    free(text);
    return 0;
}
