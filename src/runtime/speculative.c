/* speculative.c - drafting for speculative decoding (generate.c verifies).
 *
 * draft-simple: a small model with the target's vocabulary runs greedily, as llama.cpp's
 * common_speculative draft (common/speculative.cpp): up to n_max tokens, stopping where its top
 * probability falls below p_min. Its cache follows the target's tokens; what it drafted and the
 * target rejected is removed before the next round.
 *
 * ngram-simple (prompt lookup decoding): no model; the continuation of the latest earlier
 * occurrence of the context's last n-gram (n = 3, else 2) is the guess. Code edits, summaries and
 * retrieval answers repeat their input. */
#include "runtime/speculative.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NGRAM_MAX 3
#define NGRAM_MIN 2

/* FNV-1a over every token's text (with its terminator, so "ab","c" differs from "a","bc") */
static uint64_t vocab_hash(const qr_model *m, int32_t n_vocab) {
    uint64_t h = 1469598103934665603ull;
    for (int32_t t = 0; t < n_vocab; t++) {
        const char *s = qr_token_text(m, t);
        for (const unsigned char *c = (const unsigned char *)(s ? s : "");; c++) {
            h = (h ^ *c) * 1099511628211ull;
            if (!*c) break;
        }
    }
    return h;
}

qr_status qr_spec_check_vocab(const qr_model *target, const qr_model *draft) {
    const int32_t nt = qr_model_n_vocab(target), nd = qr_model_n_vocab(draft);
    if (nt != nd)
        return qr_error(QR_ERR_INVALID_ARG,
                        "speculative decoding: the draft model's vocabulary has %d tokens, the "
                        "target's %d: the draft must share the target's vocabulary",
                        (int)nd, (int)nt);
    if (vocab_hash(target, nt) == vocab_hash(draft, nd)) return QR_OK;
    for (int32_t t = 0; t < nt; t++) { /* name the first difference */
        const char *a = qr_token_text(target, t), *b = qr_token_text(draft, t);
        if (strcmp(a ? a : "", b ? b : ""))
            return qr_error(QR_ERR_INVALID_ARG,
                            "speculative decoding: the draft model's vocabulary differs from the "
                            "target's (token %d is '%.40s' in the target, '%.40s' in the draft)",
                            (int)t, a ? a : "", b ? b : "");
    }
    return qr_error(QR_ERR_INVALID_ARG,
                    "speculative decoding: the draft model's vocabulary differs from the target's");
}

qr_status qr_drafter_init(qr_drafter *d, const qr_context *target, const qr_generate_params *p) {
    memset(d, 0, sizeof *d);
    if (p->spec_type != QR_SPEC_DRAFT_SIMPLE && p->spec_type != QR_SPEC_NGRAM_SIMPLE)
        return qr_error(QR_ERR_INVALID_ARG, "speculative decoding: unknown spec_type %d",
                        (int)p->spec_type);
    if (p->spec_n_max < 1)
        return qr_error(QR_ERR_INVALID_ARG,
                        "speculative decoding: spec_n_max must be at least 1 (got %d)",
                        (int)p->spec_n_max);
    if (p->spec_n_min < 0 || p->spec_n_min > p->spec_n_max)
        return qr_error(QR_ERR_INVALID_ARG,
                        "speculative decoding: spec_n_min must be from 0 to spec_n_max = %d (got "
                        "%d)",
                        (int)p->spec_n_max, (int)p->spec_n_min);
    if (!(p->spec_p_min >= 0.0f && p->spec_p_min <= 1.0f))
        return qr_error(QR_ERR_INVALID_ARG,
                        "speculative decoding: spec_p_min must be in [0, 1] (got %g)",
                        (double)p->spec_p_min);
    d->type = p->spec_type;
    d->n_max = p->spec_n_max;
    d->n_min = p->spec_n_min;
    d->p_min = p->spec_p_min;
    if (d->type == QR_SPEC_NGRAM_SIMPLE) return QR_OK;

    qr_context *dc = p->spec_draft;
    if (!dc)
        return qr_error(QR_ERR_INVALID_ARG,
                        "speculative decoding: draft-simple needs a draft context (spec_draft)");
    if (dc == target)
        return qr_error(QR_ERR_INVALID_ARG,
                        "speculative decoding: the draft context is the target context itself");
    if (dc->embd_only)
        return qr_error(QR_ERR_INVALID_ARG,
                        "speculative decoding: the draft context computes embeddings, not logits");
    qr_status st = qr_spec_check_vocab(target->model, dc->model);
    if (st) return st;
    if (p->seq_id >= dc->n_seq)
        return qr_error(QR_ERR_INVALID_ARG,
                        "speculative decoding: sequence %d is out of the draft context's range "
                        "(%d sequences)",
                        (int)p->seq_id, (int)dc->n_seq);
    d->draft = dc;
    d->seq = p->seq_id;
    /* in step with the target: a longer draft cache is cut to the target's length; a shorter
     * one (the caller removed from both, or never used this draft) restarts from the prompt */
    const int32_t t_len = target->seq_len[d->seq], d_len = dc->seq_len[d->seq];
    d->pos0 = d_len >= t_len ? t_len : 0;
    if ((st = qr_kv_remove(dc, d->seq, d->pos0, -1))) return st;
    d->extra = malloc((size_t)d->n_max * sizeof *d->extra);
    if (!d->extra) return qr_error(QR_ERR_NOMEM, "out of memory");
    return QR_OK;
}

void qr_drafter_free(qr_drafter *d) {
    free(d->extra);
    if (d->batch_cap) qr_batch_free(&d->batch);
    memset(d, 0, sizeof *d);
}

static qr_status reserve(qr_drafter *d, int32_t n) {
    if (n <= d->batch_cap) return QR_OK;
    if (d->batch_cap) qr_batch_free(&d->batch);
    d->batch_cap = 0;
    int32_t cap = n < 64 ? 64 : n;
    qr_status st = qr_batch_init(&d->batch, cap);
    if (st) return st;
    d->batch_cap = cap;
    return QR_OK;
}

/* The draft cache holds hist[0..n_done) then extra[0..n_extra): keep what hist still agrees
 * with, drop the rest. */
static qr_status resync(qr_drafter *d, const qr_token *hist, int32_t n_hist) {
    int32_t valid = d->n_done > n_hist ? n_hist : d->n_done;
    for (int32_t j = 0; j < d->n_extra && valid == d->n_done + j && valid < n_hist; j++)
        if (hist[valid] == d->extra[j]) valid++;
    d->n_done = valid;
    d->n_extra = 0;
    return qr_kv_remove(d->draft, d->seq, d->pos0 + valid, -1);
}

/* The draft's greedy pick from its logits; false where its probability is below p_min. */
static bool draft_pick(const qr_drafter *d, const float *logits, int32_t n_vocab, qr_token *out) {
    int32_t best = 0;
    for (int32_t i = 1; i < n_vocab; i++)
        if (logits[i] > logits[best]) best = i;
    *out = best;
    if (d->p_min <= 0.0f) return true;
    double sum = 0.0; /* p(best) = 1 / sum exp(l - l_best) */
    for (int32_t i = 0; i < n_vocab; i++)
        sum += exp((double)logits[i] - (double)logits[best]);
    return 1.0 / sum >= (double)d->p_min;
}

static qr_status propose_draft(qr_drafter *d, const qr_token *hist, int32_t n_hist, int32_t n_want,
                               qr_token *out, int32_t *n_out) {
    qr_context *dc = d->draft;
    qr_status st = resync(d, hist, n_hist);
    if (st) return st;
    if (d->n_done == n_hist) { /* nothing new to evaluate: redo the last for its logits */
        d->n_done--;
        if ((st = qr_kv_remove(dc, d->seq, d->pos0 + d->n_done, -1))) return st;
    }
    /* room: the new history, then n_want - 1 drafted tokens evaluated */
    const int32_t room = dc->n_ctx_seq - (d->pos0 + n_hist);
    if (room < 1) {
        d->off = true;
        return QR_OK;
    }
    if (n_want > room) n_want = room;
    const int32_t n_new = n_hist - d->n_done;
    if ((st = reserve(d, n_new))) return st;
    d->batch.n_tokens = 0;
    for (int32_t i = d->n_done; i < n_hist; i++)
        qr_batch_add(&d->batch, hist[i], d->pos0 + i, d->seq, i == n_hist - 1);
    if ((st = qr_decode_timed(dc, &d->batch, n_new > 1))) return st;
    d->n_done = n_hist;
    const int32_t n_vocab = dc->model->hp.n_vocab;
    for (int32_t k = 0; k < n_want; k++) {
        qr_token t;
        if (!draft_pick(d, qr_get_logits(dc, -1), n_vocab, &t)) break;
        out[(*n_out)++] = t;
        if (k + 1 == n_want) break;
        d->batch.n_tokens = 0;
        qr_batch_add(&d->batch, t, d->pos0 + n_hist + k, d->seq, true);
        if ((st = qr_decode_timed(dc, &d->batch, false))) return st;
        d->extra[d->n_extra++] = t;
    }
    return QR_OK;
}

/* Prompt lookup: the latest earlier occurrence of the last n tokens, longest n first. */
static void propose_ngram(const qr_token *hist, int32_t n_hist, int32_t n_want, qr_token *out,
                          int32_t *n_out) {
    for (int32_t n = NGRAM_MAX; n >= NGRAM_MIN; n--) {
        if (n_hist <= n) continue;
        const qr_token *key = hist + n_hist - n;
        for (int32_t start = n_hist - n - 1; start >= 0; start--) {
            if (memcmp(hist + start, key, (size_t)n * sizeof *key)) continue;
            int32_t from = start + n, m = n_hist - from < n_want ? n_hist - from : n_want;
            memcpy(out, hist + from, (size_t)m * sizeof *out);
            *n_out = m;
            return;
        }
    }
}

/* Several drafters on one draft context (a sequence each, the server's slots): what
 * propose_draft does for each, with the draft model's evaluations batched across them: one
 * decode for every drafter's new history, then one per guess with a token of each drafter
 * still guessing. Each drafter's guesses are those it would make alone (the logits are
 * batch-invariant). */
static qr_status propose_draft_batched(qr_drafter *const *ds, int32_t n,
                                       const qr_token *const *hists, const int32_t *n_hists,
                                       const int32_t *n_wants, qr_token *const *outs,
                                       int32_t *n_outs) {
    qr_context *dc = ds[0]->draft;
    int32_t total = 0, most = 0;
    int32_t *want = malloc((size_t)n * 2 * sizeof *want), *row = want ? want + n : NULL;
    if (!want) return qr_error(QR_ERR_NOMEM, "out of memory");
    qr_status st = QR_OK;
    for (int32_t i = 0; i < n && !st; i++) {
        qr_drafter *d = ds[i];
        want[i] = 0;
        if ((st = resync(d, hists[i], n_hists[i]))) break;
        if (d->n_done == n_hists[i]) { /* nothing new: redo the last for its logits */
            d->n_done--;
            if ((st = qr_kv_remove(dc, d->seq, d->pos0 + d->n_done, -1))) break;
        }
        const int32_t room = dc->n_ctx_seq - (d->pos0 + n_hists[i]);
        if (room < 1) {
            d->off = true;
            continue;
        }
        want[i] = n_wants[i] < room ? n_wants[i] : room;
        total += n_hists[i] - d->n_done;
        if (want[i] > most) most = want[i];
    }
    qr_batch b = {0};
    if (!st && total > 0) st = qr_batch_init(&b, total > n ? total : n);
    if (st || total == 0) goto done;
    for (int32_t i = 0; i < n; i++) { /* every drafter's new history, logits for its last */
        if (!want[i]) continue;
        qr_drafter *d = ds[i];
        for (int32_t j = d->n_done; j < n_hists[i]; j++) {
            if (j == n_hists[i] - 1) row[i] = b.n_tokens;
            qr_batch_add(&b, hists[i][j], d->pos0 + j, d->seq, j == n_hists[i] - 1);
        }
        d->n_done = n_hists[i];
    }
    if ((st = qr_decode_timed(dc, &b, total > n))) goto done;
    const int32_t n_vocab = dc->model->hp.n_vocab;
    for (int32_t k = 0; k < most; k++) {
        b.n_tokens = 0;
        for (int32_t i = 0; i < n; i++) {
            if (n_outs[i] != k || k >= want[i]) continue; /* stopped, or done */
            qr_drafter *d = ds[i];
            qr_token t;
            if (!draft_pick(d, qr_get_logits(dc, row[i]), n_vocab, &t)) continue;
            outs[i][n_outs[i]++] = t;
            if (k + 1 == want[i]) continue;
            row[i] = b.n_tokens;
            qr_batch_add(&b, t, d->pos0 + n_hists[i] + k, d->seq, true);
            d->extra[d->n_extra++] = t;
        }
        if (b.n_tokens == 0) break;
        if ((st = qr_decode_timed(dc, &b, false))) goto done;
    }
done:
    if (b.token) qr_batch_free(&b);
    free(want);
    return st;
}

qr_status qr_drafters_propose(qr_drafter *const *ds, int32_t n, const qr_token *const *hists,
                              const int32_t *n_hists, const int32_t *n_wants, qr_token *const *outs,
                              int32_t *n_outs) {
    int32_t n_batched = 0;
    for (int32_t i = 0; i < n; i++) {
        n_outs[i] = 0;
        if (ds[i]->type == QR_SPEC_DRAFT_SIMPLE && ds[i]->draft != ds[0]->draft)
            return qr_error(QR_ERR_INVALID_ARG, "qr_drafters_propose: drafters on other contexts");
    }
    qr_drafter **dd = malloc((size_t)n * sizeof *dd);
    const qr_token **hh = malloc((size_t)n * sizeof *hh);
    int32_t *nh = malloc((size_t)n * 3 * sizeof *nh), *nw = nh ? nh + n : NULL,
            *idx = nh ? nh + 2 * n : NULL;
    qr_token **oo = malloc((size_t)n * sizeof *oo);
    int32_t *no = malloc((size_t)n * sizeof *no);
    qr_status st = dd && hh && nh && oo && no ? QR_OK : qr_error(QR_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; i < n && !st; i++) {
        qr_drafter *d = ds[i];
        int32_t w = n_wants[i] < d->n_max ? n_wants[i] : d->n_max;
        if (w < 1 || d->off) continue;
        if (d->type == QR_SPEC_NGRAM_SIMPLE) {
            propose_ngram(hists[i], n_hists[i], w, outs[i], &n_outs[i]);
            continue;
        }
        dd[n_batched] = d;
        hh[n_batched] = hists[i];
        nh[n_batched] = n_hists[i];
        nw[n_batched] = w;
        oo[n_batched] = outs[i];
        no[n_batched] = 0;
        idx[n_batched++] = i;
    }
    if (!st && n_batched > 0) {
        st = propose_draft_batched(dd, n_batched, hh, nh, nw, oo, no);
        for (int32_t j = 0; !st && j < n_batched; j++)
            n_outs[idx[j]] = no[j];
    }
    for (int32_t i = 0; !st && i < n; i++)
        if (n_outs[i] < ds[i]->n_min) n_outs[i] = 0; /* too short to be worth a check */
    free(dd);
    free(hh);
    free(nh);
    free(oo);
    free(no);
    return st;
}

qr_status qr_drafter_propose(qr_drafter *d, const qr_token *hist, int32_t n_hist, int32_t n_want,
                             qr_token *out, int32_t *n_out) {
    *n_out = 0;
    if (n_want > d->n_max) n_want = d->n_max;
    if (n_want < 1 || d->off) return QR_OK;
    if (d->type == QR_SPEC_NGRAM_SIMPLE) {
        propose_ngram(hist, n_hist, n_want, out, n_out);
    } else {
        qr_status st = propose_draft(d, hist, n_hist, n_want, out, n_out);
        if (st) return st;
    }
    if (*n_out < d->n_min) *n_out = 0; /* too short to be worth a check */
    return QR_OK;
}

qr_status qr_drafter_truncate(qr_drafter *d, int32_t n) {
    d->off = false;
    d->n_extra = 0;
    if (d->type != QR_SPEC_DRAFT_SIMPLE) return QR_OK;
    if (n < d->n_done) d->n_done = n < 0 ? 0 : n;
    return qr_kv_remove(d->draft, d->seq, d->pos0 + d->n_done, -1);
}

qr_status qr_drafter_finish(qr_drafter *d, const qr_token *hist, int32_t n_kept) {
    if (d->type != QR_SPEC_DRAFT_SIMPLE) return QR_OK;
    qr_status st = resync(d, hist, n_kept);
    if (st || d->n_done == n_kept) return st;
    if (d->pos0 + n_kept > d->draft->n_ctx_seq) return QR_OK; /* full: it restarts next time */
    if ((st = reserve(d, n_kept - d->n_done))) return st;
    d->batch.n_tokens = 0;
    for (int32_t i = d->n_done; i < n_kept; i++)
        qr_batch_add(&d->batch, hist[i], d->pos0 + i, d->seq, false);
    if ((st = qr_decode_timed(d->draft, &d->batch, false))) return st;
    d->n_done = n_kept;
    return QR_OK;
}
