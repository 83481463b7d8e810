/* sampler_model.c - qr_sampler_create_for_model: the sampler given the model's vocabulary, whose
 * token texts and tokenizer turn DRY's sequence-breaker strings into token sequences and feed
 * the grammar stage (the sampler module itself knows no model). */
#include "quarrel.h"
#include "sample/sample_internal.h"

/* a token's text as llama.cpp's detokenize of that one token, special tokens rendered */
static int32_t model_piece(void *user, qr_token t, char *buf, int32_t len) {
    return qr_detokenize(user, &t, 1, buf, len, false, true);
}

static int32_t model_tokenize(void *user, const char *text, size_t len, qr_token *out,
                              int32_t n_max) {
    int32_t n = 0;
    qr_status st = qr_tokenize(user, text, len, false, false, out, n_max, &n);
    return st == QR_OK ? n : -1;
}

static bool model_is_eog(void *user, qr_token t) {
    return qr_token_is_eog(user, t);
}

/* a token's text as llama.cpp's token_to_piece(special = true): what the grammar matches */
static int32_t model_token_piece(void *user, qr_token t, char *buf, int32_t len) {
    return qr_token_to_piece(user, t, buf, len, true);
}

qr_status qr_sampler_create_for_model(const qr_sampler_params *params, const qr_model *model,
                                      qr_sampler **out) {
    if (!model) {
        if (out) *out = NULL;
        return qr_error(QR_ERR_INVALID_ARG, "qr_sampler_create_for_model: model is NULL");
    }
    qr_dry_vocab v = {.n_vocab = qr_model_n_vocab(model),
                      .user = (void *)model,
                      .piece = model_piece,
                      .tokenize = model_tokenize,
                      .is_eog = model_is_eog,
                      .token_piece = model_token_piece};
    return qr_sampler_create_vocab(params, &v, v.n_vocab, out);
}
