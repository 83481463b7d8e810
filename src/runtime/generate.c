/* generate.c - the generation loop behind qr_generate: evaluate the prompt in one batch, then
 * sample a token, stream its text through the UTF-8 and stop-string filters, and evaluate it,
 * until an end-of-generation token, a stop string, n_predict, a full context or the caller.
 *
 * With speculative decoding a drafter (speculative.c) guesses the next k tokens; the target
 * evaluates the last sampled token and the k guesses in one batch (k + 1 rows of logits) and the
 * sampler checks the guesses in order (qr_sampler_sample_draft: the greedy pick, or Leviathan et
 * al.'s rejection rule when sampling). The first token that differs from its guess is the
 * sampler's own pick and ends the round; if all k hold, row k gives one more. Every emitted token
 * went through the sampler exactly as without speculation, so streaming, stops, logprobs and the
 * grammar see the same sequence of events. The cache is cut back past the rejected guesses. */
#include "runtime/speculative.h"

#include <stdlib.h>
#include <string.h>

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

typedef struct generator {
    const qr_model *model;
    const qr_generate_params *params;
    qr_token_fn on_token;
    void *user;
    streamer s;
    char *big;          /* a piece longer than a chunk */
    int32_t prompt_end; /* the position after this call's prompt (n_keep < 0 keeps that far) */
} generator;

/* Stream one sampled token and call the callback. *stop: a reason to end here, or -1. */
static qr_status emit_token(generator *g, qr_token id, const float *logits,
                            const qr_token_logprobs *lp, int *stop) {
    const qr_generate_params *params = g->params;
    const bool eog = qr_token_is_eog(g->model, id) && !params->ignore_eos;
    streamer *s = &g->s;
    s->text.n = 0;
    char small[PIECE_CHUNK];
    const char *piece = small;
    int32_t n = eog ? 0 : qr_token_to_piece(g->model, id, small, sizeof small, params->special);
    if (n < 0) { /* longer than a chunk: fetch it whole */
        free(g->big);
        g->big = malloc((size_t)-n);
        n = g->big ? qr_token_to_piece(g->model, id, g->big, -n, params->special) : 0;
        piece = g->big;
    }
    feed(s, piece, n > 0 ? (size_t)n : 0);
    if (eog) flush(s);
    if (s->text.oom) return qr_error(QR_ERR_NOMEM, "out of memory");
    *stop = -1;
    if (!g->on_token(id, s->text.p ? s->text.p : "", s->text.n, logits, lp, g->user))
        *stop = QR_STOP_CALLBACK;
    else if (s->stopped || eog)
        *stop = s->stopped ? QR_STOP_STRING : QR_STOP_EOG;
    return QR_OK;
}

/* llama.cpp's context shift (completion.cpp) before a token is evaluated at *pos, the cache
 * holding positions 0 .. *pos - 1: when it would leave no spare cell, keep n_keep positions,
 * drop half of the rest and move the others back. *full: a shift was due and nothing could be
 * dropped. */
static qr_status shift_context(qr_context *ctx, const generator *g, int32_t *pos, bool *full) {
    const qr_generate_params *params = g->params;
    *full = false;
    if (!params->context_shift || *pos + 1 < ctx->n_ctx_seq) return QR_OK;
    int32_t n_keep = params->n_keep < 0 ? g->prompt_end : params->n_keep;
    if (n_keep > *pos) n_keep = *pos;
    const int32_t n_discard = (*pos - n_keep) / 2;
    if (n_discard < 1) {
        *full = true;
        return QR_OK;
    }
    qr_status st = qr_kv_shift(ctx, params->seq_id, n_keep + n_discard, -1, -n_discard);
    if (st) return st;
    *pos -= n_discard;
    ctx->timings.n_ctx_shifts++;
    return QR_OK;
}

/* The loop without speculation: sample, emit, evaluate. pending >= 0: a token already sampled
 * and shown (speculation ended at a context shift) to evaluate first. */
static qr_status plain_loop(qr_context *ctx, qr_sampler *sampler, generator *g, qr_batch *batch,
                            int32_t pos, qr_token pending, int32_t *n_gen, qr_stop_reason *why) {
    const qr_generate_params *params = g->params;
    const int32_t seq = params->seq_id;
    qr_token_logprobs lp;
    qr_token_logprobs *lpp = params->want_logprobs ? &lp : NULL;
    *why = QR_STOP_LENGTH;
    for (; pending >= 0 || params->n_predict < 0 || *n_gen < params->n_predict;) {
        qr_token id = pending;
        qr_status st;
        if (pending >= 0) {
            pending = -1;
        } else {
            const float *logits = qr_get_logits(ctx, -1);
            if ((st = qr_sampler_sample(sampler, logits, &id, lpp))) return st;
            ++*n_gen;
            int stop;
            if ((st = emit_token(g, id, logits, lpp, &stop))) return st;
            if (stop >= 0) {
                *why = (qr_stop_reason)stop;
                return QR_OK;
            }
        }
        bool full;
        if ((st = shift_context(ctx, g, &pos, &full))) return st;
        if (full || pos >= ctx->n_ctx_seq) {
            *why = QR_STOP_CONTEXT;
            return QR_OK;
        }
        batch->n_tokens = 0;
        qr_batch_add(batch, id, pos++, seq, true);
        if ((st = qr_decode_timed(ctx, batch, false))) return st;
    }
    return QR_OK;
}

/* The loop with speculation. hist holds the prompt (n_hist tokens) and room for what is
 * generated. */
static qr_status spec_loop(qr_context *ctx, qr_sampler *sampler, generator *g, qr_drafter *d,
                           qr_token *hist, int32_t n_hist, int32_t pos, int32_t *n_gen,
                           qr_stop_reason *why, qr_token *pending) {
    const qr_generate_params *params = g->params;
    const int32_t seq = params->seq_id;
    qr_token_logprobs lp;
    qr_token_logprobs *lpp = params->want_logprobs ? &lp : NULL;
    qr_token *guess = malloc((size_t)d->n_max * sizeof *guess);
    qr_batch batch;
    qr_status st =
        guess ? qr_batch_init(&batch, d->n_max + 1) : qr_error(QR_ERR_NOMEM, "out of memory");
    if (st) {
        free(guess);
        return st;
    }
    /* the first token comes from the prompt's last row */
    const int32_t base = pos - n_hist; /* the target's position of hist[0] */
    const float *logits = qr_get_logits(ctx, -1);
    qr_token id;
    int stop = -1;
    *why = QR_STOP_LENGTH;
    if (params->n_predict == 0) goto done;
    if ((st = qr_sampler_sample(sampler, logits, &id, lpp))) goto done;
    hist[n_hist++] = id;
    ++*n_gen;
    if ((st = emit_token(g, id, logits, lpp, &stop)) || stop >= 0) goto done;
    for (;;) {
        /* id is sampled and shown but not evaluated; it sits at pos */
        if (params->context_shift && pos + 1 >= ctx->n_ctx_seq) {
            /* a shift is due: the plain loop goes on from id; the draft's cache, no longer the
             * target's history, is cleared at the end */
            *pending = id;
            break;
        }
        if (pos >= ctx->n_ctx_seq) {
            *why = QR_STOP_CONTEXT;
            break;
        }
        if (params->n_predict >= 0 && *n_gen >= params->n_predict) {
            /* evaluated, as without speculation: the cache ends holding every token */
            batch.n_tokens = 0;
            qr_batch_add(&batch, id, pos, seq, true);
            st = qr_decode_timed(ctx, &batch, false);
            break;
        }
        /* the guesses must fit the context; with context shift they leave its last cell free,
         * so the shift comes where it comes without speculation (at n_ctx - 1 cells) */
        int32_t want = ctx->n_ctx_seq - pos - 1 - (params->context_shift ? 1 : 0);
        if (params->n_predict >= 0 && params->n_predict - *n_gen - 1 < want)
            want = params->n_predict - *n_gen - 1; /* a round emits up to k + 1 tokens */
        int32_t k = 0;
        if (want > 0 && (st = qr_drafter_propose(d, hist, n_hist, want, guess, &k))) goto done;
        batch.n_tokens = 0;
        qr_batch_add(&batch, id, pos, seq, true);
        for (int32_t j = 0; j < k; j++)
            qr_batch_add(&batch, guess[j], pos + 1 + j, seq, true);
        if ((st = qr_decode_timed(ctx, &batch, false))) goto done;
        ctx->timings.n_spec_passes++;
        ctx->timings.n_draft_tokens += k;
        int32_t i = 0;
        for (;; i++) {
            logits = qr_get_logits(ctx, i);
            st = i < k ? qr_sampler_sample_draft(sampler, logits, guess[i], NULL, &id, lpp)
                       : qr_sampler_sample(sampler, logits, &id, lpp);
            if (st) goto done;
            hist[n_hist++] = id;
            ++*n_gen;
            if ((st = emit_token(g, id, logits, lpp, &stop))) goto done;
            const bool kept = i < k && id == guess[i];
            ctx->timings.n_draft_accepted += kept;
            if (stop >= 0 || !kept) break;
        }
        /* the cache keeps the round's first token and the guesses before row i */
        pos += 1 + i;
        if ((st = qr_kv_remove(ctx, seq, pos, -1))) goto done;
        if (stop >= 0) break;
    }
done:
    if (!st && stop >= 0) *why = (qr_stop_reason)stop;
    /* the draft's cache ends as the target's: hist up to the last token evaluated */
    if (!st && d->type == QR_SPEC_DRAFT_SIMPLE)
        st = *pending >= 0 ? qr_kv_remove(d->draft, d->seq, 0, -1)
                           : qr_drafter_finish(d, hist, ctx->seq_len[seq] - base);
    qr_batch_free(&batch);
    free(guess);
    return st;
}

qr_status qr_generate(qr_context *ctx, qr_sampler *sampler, const qr_token *prompt,
                      int32_t n_prompt, const qr_generate_params *params, qr_token_fn on_token,
                      void *user, qr_stop_reason *reason) {
    const int32_t seq = params->seq_id;
    if (seq < 0 || seq >= ctx->n_seq)
        return qr_error(QR_ERR_INVALID_ARG, "sequence %d out of range", seq);
    if (n_prompt <= 0) return qr_error(QR_ERR_INVALID_ARG, "qr_generate: empty prompt");
    int32_t pos = ctx->seq_len[seq];
    if (pos + n_prompt > ctx->n_ctx_seq)
        return qr_error(QR_ERR_CONTEXT_FULL,
                        "the prompt is %d tokens but the context has room for %d more", n_prompt,
                        ctx->n_ctx_seq - pos);
    const bool spec = params->spec_type != QR_SPEC_NONE;
    qr_drafter d = {0};
    qr_status st;
    if (spec && (st = qr_drafter_init(&d, ctx, params))) return st;

    generator g = {.model = ctx->model,
                   .params = params,
                   .on_token = on_token,
                   .user = user,
                   .prompt_end = pos + n_prompt};
    qr_token *hist = NULL;
    qr_batch batch = {0};
    if ((st = qr_stop_matcher_create(params->stops, params->n_stops, &g.s.stop))) goto done;
    if ((st = qr_batch_init(&batch, n_prompt))) goto done;
    if (spec) { /* the prompt and everything the context can still take */
        hist = malloc(((size_t)ctx->n_ctx_seq - (size_t)pos + 1) * sizeof *hist);
        if (!hist) {
            st = qr_error(QR_ERR_NOMEM, "out of memory");
            goto done;
        }
        memcpy(hist, prompt, (size_t)n_prompt * sizeof *hist);
    }
    for (int32_t i = 0; i < n_prompt; i++) {
        qr_sampler_accept(sampler, prompt[i]);
        qr_batch_add(&batch, prompt[i], pos + i, seq, i == n_prompt - 1);
    }
    if ((st = qr_decode_timed(ctx, &batch, true))) goto done;
    pos += n_prompt;

    /* generation's timing: the tokens sampled over the wall time, drafting included */
    const qr_timings before = ctx->timings;
    const double t0 = qr_time_now();
    int32_t n_gen = 0;
    qr_stop_reason why = QR_STOP_LENGTH;
    qr_token pending = -1; /* speculation ended at a context shift with this token to go */
    st = spec ? spec_loop(ctx, sampler, &g, &d, hist, n_prompt, pos, &n_gen, &why, &pending)
              : plain_loop(ctx, sampler, &g, &batch, pos, -1, &n_gen, &why);
    if (!st && pending >= 0)
        st = plain_loop(ctx, sampler, &g, &batch, ctx->seq_len[seq], pending, &n_gen, &why);
    ctx->timings.n_gen_tokens = before.n_gen_tokens + n_gen;
    ctx->timings.gen_seconds = before.gen_seconds + (qr_time_now() - t0);
    if (st) goto done;
    if (why == QR_STOP_LENGTH || why == QR_STOP_CONTEXT) { /* show what was held back */
        g.s.text.n = 0;
        flush(&g.s);
        if (g.s.text.n) on_token(-1, g.s.text.p, g.s.text.n, NULL, NULL, user);
    }
    if (reason) *reason = why;
done:
    free(g.big);
    free(g.s.text.p);
    free(hist);
    qr_batch_free(&batch);
    qr_stop_matcher_free(g.s.stop);
    qr_drafter_free(&d);
    return st;
}
