/* generate.c - the generation loop behind qr_generate: evaluate the prompt in one batch, then
 * sample a token, stream its text through the UTF-8 and stop-string filters, and evaluate it,
 * until an end-of-generation token, a stop string, n_predict, a full context or the caller. */
#include "runtime/context.h"

#include <stdlib.h>

#define PIECE_CHUNK 256

typedef struct streamer {
    qr_utf8_stream utf8;
    qr_stop_matcher *stop;
    qr_strbuf text; /* the text shown for one token */
    bool stopped;
} streamer;

/* Feed token bytes; what may be shown now goes to s->text. */
static void feed(streamer *s, const char *piece, size_t n) {
    char out[3 * PIECE_CHUNK + 9]; /* qr_utf8_stream_push's bound for one chunk */
    for (size_t off = 0; off < n && !s->stopped; off += PIECE_CHUNK) {
        size_t chunk = n - off < PIECE_CHUNK ? n - off : PIECE_CHUNK;
        size_t m = qr_utf8_stream_push(&s->utf8, piece + off, chunk, out);
        const char *emit;
        size_t n_emit;
        s->stopped = qr_stop_matcher_push(s->stop, out, m, &emit, &n_emit);
        qr_strbuf_append(&s->text, emit, n_emit);
    }
}

/* At the end: an incomplete character and text held back for a possible stop string. */
static void flush(streamer *s) {
    char out[16];
    size_t m = qr_utf8_stream_flush(&s->utf8, out);
    const char *emit;
    size_t n_emit;
    if (s->stopped) return;
    s->stopped = qr_stop_matcher_push(s->stop, out, m, &emit, &n_emit);
    qr_strbuf_append(&s->text, emit, n_emit);
    if (!s->stopped) {
        qr_stop_matcher_flush(s->stop, &emit, &n_emit);
        qr_strbuf_append(&s->text, emit, n_emit);
    }
}

qr_status qr_generate(qr_context *ctx, qr_sampler *sampler, const qr_token *prompt,
                      int32_t n_prompt, const qr_generate_params *params, qr_token_fn on_token,
                      void *user, qr_stop_reason *reason) {
    const qr_model *model = ctx->model;
    const int32_t seq = params->seq_id;
    if (seq < 0 || seq >= ctx->n_seq)
        return qr_error(QR_ERR_INVALID_ARG, "sequence %d out of range", seq);
    if (n_prompt <= 0) return qr_error(QR_ERR_INVALID_ARG, "qr_generate: empty prompt");
    int32_t pos = ctx->seq_len[seq];
    if (pos + n_prompt > ctx->n_ctx_seq)
        return qr_error(QR_ERR_CONTEXT_FULL,
                        "the prompt is %d tokens but the context has room for %d more", n_prompt,
                        ctx->n_ctx_seq - pos);

    streamer s = {0};
    qr_status st = qr_stop_matcher_create(params->stops, params->n_stops, &s.stop);
    if (st) return st;
    qr_batch batch;
    char *big = NULL;
    if ((st = qr_batch_init(&batch, n_prompt))) goto done;
    for (int32_t i = 0; i < n_prompt; i++) {
        qr_sampler_accept(sampler, prompt[i]);
        qr_batch_add(&batch, prompt[i], pos + i, seq, i == n_prompt - 1);
    }
    if ((st = qr_decode_timed(ctx, &batch, true))) goto done;
    pos += n_prompt;

    qr_stop_reason why = QR_STOP_LENGTH;
    for (int32_t n_gen = 0; params->n_predict < 0 || n_gen < params->n_predict; n_gen++) {
        const float *logits = qr_get_logits(ctx, -1);
        qr_token id;
        qr_token_logprobs lp;
        if ((st = qr_sampler_sample(sampler, logits, &id, params->want_logprobs ? &lp : NULL)))
            goto done;
        const bool eog = qr_token_is_eog(model, id) && !params->ignore_eos;

        s.text.n = 0;
        char small[PIECE_CHUNK];
        const char *piece = small;
        int32_t n = eog ? 0 : qr_token_to_piece(model, id, small, sizeof small, params->special);
        if (n < 0) { /* longer than a chunk: fetch it whole */
            free(big);
            big = malloc((size_t)-n);
            n = big ? qr_token_to_piece(model, id, big, -n, params->special) : 0;
            piece = big;
        }
        feed(&s, piece, n > 0 ? (size_t)n : 0);
        if (eog) flush(&s);
        if (s.text.oom) {
            st = qr_error(QR_ERR_NOMEM, "out of memory");
            goto done;
        }
        if (!on_token(id, s.text.p ? s.text.p : "", s.text.n, logits,
                      params->want_logprobs ? &lp : NULL, user)) {
            why = QR_STOP_CALLBACK;
            break;
        }
        if (s.stopped || eog) {
            why = s.stopped ? QR_STOP_STRING : QR_STOP_EOG;
            break;
        }
        if (pos >= ctx->n_ctx_seq) {
            why = QR_STOP_CONTEXT;
            break;
        }
        batch.n_tokens = 0;
        qr_batch_add(&batch, id, pos++, seq, true);
        if ((st = qr_decode_timed(ctx, &batch, false))) goto done;
    }
    if (why == QR_STOP_LENGTH || why == QR_STOP_CONTEXT) { /* show what was held back */
        s.text.n = 0;
        flush(&s);
        if (s.text.n) on_token(-1, s.text.p, s.text.n, NULL, NULL, user);
    }
    if (reason) *reason = why;
done:
    free(big);
    free(s.text.p);
    qr_batch_free(&batch);
    qr_stop_matcher_free(s.stop);
    return st;
}
