/* fuzz_state.c - libFuzzer target for the sequence-state reader (qr_state_load_seq_memory,
 * src/runtime/state.c): any byte string is restored into a sequence of a stories260K context or
 * refused with a message, never a crash or a read out of bounds; a refusal leaves the sequence
 * as it was. Build with -DQR_FUZZ=ON (clang); the model is $QR_FUZZ_MODEL, else the shared
 * stories260K. The corpus in tests/fuzz/corpus_state (made by mk_state_corpus.py) is replayed
 * by tests/runtime/test_fuzz_corpus_state.c in every test run. */
#include "quarrel.h"

#include <stdio.h>
#include <stdlib.h>

#ifndef QR_SHARED_DIR
#define QR_SHARED_DIR "../shared"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static qr_model *model;
static qr_context *ctx;

static void setup(void) {
    const char *path = getenv("QR_FUZZ_MODEL");
    if (!path) path = QR_SHARED_DIR "/models/stories260K.gguf";
    qr_context_params cp = qr_context_default_params();
    cp.n_ctx = 64;
    cp.n_threads = 1;
    if (qr_model_load(path, NULL, &model) || qr_context_create(model, &cp, &ctx)) {
        fprintf(stderr, "fuzz_state: %s: %s\n", path, qr_last_error());
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!ctx) setup();
    qr_kv_clear(ctx);
    qr_token tokens[64];
    int32_t n = -1;
    if (qr_state_load_seq_memory(ctx, 0, data, size, tokens, 64, &n) != QR_OK) {
        if (!qr_last_error()[0]) abort();             /* every failure says why */
        if (qr_kv_seq_pos_max(ctx, 0) != -1) abort(); /* and leaves the sequence alone */
        return 0;
    }
    if (n < 0 || n > 64 || qr_kv_seq_pos_max(ctx, 0) != n - 1) abort();
    for (int32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= qr_model_n_vocab(model)) abort();
    return 0;
}
