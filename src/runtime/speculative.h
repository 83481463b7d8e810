/* speculative.h - the proposing half of speculative decoding (speculative.c): a drafter guesses
 * the tokens that follow the context; generate.c has the target check them. */
#ifndef QR_SPECULATIVE_H
#define QR_SPECULATIVE_H

#include "runtime/context.h"

typedef struct qr_drafter {
    qr_spec_type type;
    int32_t n_max, n_min;
    float p_min;
    /* DRAFT_SIMPLE: the draft context's sequence holds hist[0..n_done) at positions pos0 + i,
     * then the drafted tokens extra[0..n_extra) it evaluated while drafting */
    qr_context *draft;
    int32_t seq;
    int32_t pos0, n_done, n_extra;
    qr_token *extra; /* n_max */
    qr_batch batch;
    int32_t batch_cap;
    bool off; /* the draft's context is full: propose nothing more */
} qr_drafter;

/* Check the parameters (and the draft's vocabulary against the target's) and get ready to draft
 * after the target's sequence as it is before the prompt. */
qr_status qr_drafter_init(qr_drafter *d, const qr_context *target, const qr_generate_params *p);
/* Propose up to n_want (>= 1) tokens to follow hist[0..n_hist) (the prompt and what was
 * generated; the last one not yet in the target's cache) into out; *n_out how many. */
qr_status qr_drafter_propose(qr_drafter *d, const qr_token *hist, int32_t n_hist, int32_t n_want,
                             qr_token *out, int32_t *n_out);
/* qr_drafter_propose for n drafters at once (hists[i], n_hists[i], n_wants[i] -> outs[i],
 * n_outs[i]); those with a draft model must share one draft context (a sequence each), whose
 * evaluations are batched across them: one decode for all their new history, then one per
 * guess. */
qr_status qr_drafters_propose(qr_drafter *const *ds, int32_t n, const qr_token *const *hists,
                              const int32_t *n_hists, const int32_t *n_wants, qr_token *const *outs,
                              int32_t *n_outs);
/* Forget all but the first n tokens of the history the draft's cache follows (a new request
 * that shares only that prefix, or n = 0 after the target's cache was lost): the next
 * proposal evaluates the rest. */
qr_status qr_drafter_truncate(qr_drafter *d, int32_t n);
/* At the end: leave the draft's cache holding hist[0..n_kept), as the target's does. */
qr_status qr_drafter_finish(qr_drafter *d, const qr_token *hist, int32_t n_kept);
void qr_drafter_free(qr_drafter *d);

#endif
