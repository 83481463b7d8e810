/* scheduler.c - continuous batching. One thread owns the qr_context. Each slot is a sequence
 * id of the context. Every step builds one batch holding the next token of every generating
 * slot plus prompt chunks of newly admitted ones, calls qr_decode once, and samples for every
 * slot whose logits came out. New requests join between steps; a slot whose client went away is
 * freed at the next step. A request reuses the longest prefix a free slot still holds in its
 * KV cache (qr_kv_remove of the rest), as llama.cpp's server does with cache_prompt. An
 * embedding task takes a slot too: its sequence evaluates the input with qr_embed between two
 * steps (on this thread, which alone touches the context), and the slot's cache is gone.
 *
 * Speculative decoding (a draft model, or n-gram lookup): before a step, each generating slot
 * whose request allows it drafts up to n_max guesses after its pending token (the draft
 * model's sequence of the same id follows the slot's cache); the step evaluates the pending
 * token and the guesses together with everything else, and the slot's sampler checks the
 * guesses row by row (qr_sampler_sample_draft), emitting every token it accepts plus its own
 * pick at the first miss, as qr_generate does. The cache is cut back past the rejected
 * guesses. Batch-invariant logits make a greedy slot's text the same with or without.
 *
 * Context shift (--context-shift), llama.cpp's server (server_context::pre_decode): before a
 * step, a generating slot whose cache is full (n_cache + 1 >= its context) keeps its first
 * n_keep tokens, drops the n_discard after them and moves the rest back (qr_kv_shift); its
 * token list follows, and its drafter forgets all but the kept tokens.
 *
 * Slot actions (POST /slots/{id}?action=save|restore|erase, llama.cpp's): queued apart from
 * the requests, each waits until its slot is idle and runs between two steps, before queued
 * requests are given slots (so a restored cache is there for the request that follows). Save
 * writes the tokens the slot's cells exactly hold (qr_state_save_seq), restore replaces them
 * with a file's (checked whole before the cells change), erase forgets them. */
#include "runtime/speculative.h"
#include "server/server_internal.h"
#include "util/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define STEP_TOKENS 512 /* most tokens per decode step (prompt chunks fill what is left) */

typedef enum slot_state { SLOT_IDLE, SLOT_PROMPT, SLOT_GEN } slot_state;

typedef struct srv_slot {
    int32_t id;
    slot_state state;
    bool fresh;      /* admitted, not started yet */
    srv_task *task;  /* NULL when idle (set and cleared under the lock) */
    qr_token *cache; /* the tokens in this sequence's KV cells, n_cache of them */
    int32_t n_cache;
    /* the first n_exact cells hold what evaluating cache[] afresh would give: after a context
     * shift only the kept ones do (the moved cells saw the dropped tokens), so a new request
     * reuses no more than those */
    int32_t n_exact;
    int32_t i_prompt; /* next prompt token to evaluate */
    int32_t i_batch;  /* index of this slot's logits in the current batch, -1 if none */
    int32_t n_added;  /* tokens this slot put in the current batch */
    qr_token last;    /* the sampled token to feed next */
    int32_t n_gen;
    double t_last;
    uint64_t last_used;
    /* speculation: the drafter following this sequence, the guesses of the current step */
    qr_drafter drafter;
    bool spec;       /* this task speculates */
    int32_t spec_n;  /* its most guesses per step */
    qr_token *guess; /* n_max of them */
    int32_t n_guess; /* guesses in the current batch, after the pending token */
    qr_sampler *sampler;
    qr_stop_matcher *stop;
    qr_utf8_stream utf8;
    float lora[QR_MAX_LORAS]; /* the LoRA scales its cache was computed with */
} srv_slot;

struct srv_scheduler {
    qr_context *ctx;
    const qr_model *model;
    int32_t n_slots, n_ctx_slot, max_queue, n_vocab;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    bool stopping, thread_started;
    pthread_t thread;
    srv_task **queue; /* ring buffer of max_queue */
    int32_t q_head, q_len;
    srv_task **actions; /* slot actions waiting, in arrival order (max_queue of them) */
    int32_t n_actions;
    srv_slot *slots;
    uint64_t use_counter;
    qr_batch batch;
    srv_metrics metrics;
    srv_spec_params spec; /* spec.type QR_SPEC_NONE: off */
    /* draft_all's lists, a place per slot */
    qr_drafter **d_list;
    qr_token **d_hist, **d_out;
    int32_t *d_n_hist, *d_want, *d_n_out, *d_slot;
    bool ctx_shift;
    int32_t n_keep; /* the server's, for requests without "n_keep" */
    bool add_bos;   /* the vocabulary's BOS starts every prompt: n_keep counts after it */
    int32_t n_lora;                   /* LoRA adapters attached to ctx */
    float lora_global[QR_MAX_LORAS]; /* their global scales (lock held) */
};

/* ---- tasks ---- */

srv_task *srv_task_create(srv_request *req, qr_token *prompt, int32_t n_prompt) {
    srv_task *t = qr_calloc(1, sizeof *t);
    if (!t) return NULL;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cond, &ca);
    pthread_condattr_destroy(&ca);
    t->req = *req;
    memset(req, 0, sizeof *req);
    /* the trigger lists live inside the request: point at the moved copy */
    if (t->req.sp.n_grammar_trigger_words)
        t->req.sp.grammar_trigger_words = (const char *const *)t->req.trigger_words;
    if (t->req.sp.n_grammar_trigger_patterns)
        t->req.sp.grammar_trigger_patterns = (const char *const *)t->req.trigger_patterns;
    t->prompt = prompt;
    t->n_prompt = n_prompt;
    t->t_arrival = qr_time_now();
    t->refs = 1;
    return t;
}

static void task_free(srv_task *t) {
    srv_request_free(&t->req);
    free(t->prompt);
    srv_buf_free(&t->text);
    for (int32_t i = 0; i < t->n_tokens; i++)
        srv_token_out_free(&t->tokens[i]);
    free(t->tokens);
    free(t->error);
    free(t->embedding);
    free(t->action_path);
    pthread_cond_destroy(&t->cond);
    free(t);
}

static void unref_locked(srv_task *t) {
    if (--t->refs == 0) task_free(t);
}

/* Mark a task done (lock held) and drop the scheduler's reference. */
static void finish_locked(srv_scheduler *s, srv_task *t, const char *reason, int status,
                          const char *error) {
    if (!t->finished) {
        t->finished = true;
        t->finish_reason = reason;
        t->t_end = qr_time_now();
        if (error) {
            t->error = qr_strdup(error);
            t->error_status = status;
        } else if (t->cancelled) {
            s->metrics.cancelled++;
        } else {
            srv_histogram_observe(&s->metrics.duration, qr_time_now() - t->t_arrival);
        }
        pthread_cond_broadcast(&t->cond);
    }
    unref_locked(t);
}

void srv_task_release(srv_scheduler *s, srv_task *t) {
    if (!t) return;
    pthread_mutex_lock(&s->mu);
    if (!t->finished) {
        t->cancelled = true;
        pthread_cond_signal(&s->wake);
    }
    unref_locked(t);
    pthread_mutex_unlock(&s->mu);
}

void srv_scheduler_lock(srv_scheduler *s) {
    pthread_mutex_lock(&s->mu);
}
void srv_scheduler_unlock(srv_scheduler *s) {
    pthread_mutex_unlock(&s->mu);
}

void srv_task_wait(srv_scheduler *s, srv_task *t, double seconds) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long ns = (long)(seconds * 1e9);
    ts.tv_sec += ns / 1000000000L;
    ts.tv_nsec += ns % 1000000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&t->cond, &s->mu, &ts);
}

srv_metrics *srv_scheduler_metrics(srv_scheduler *s) {
    return &s->metrics;
}

int32_t srv_scheduler_n_ctx_slot(const srv_scheduler *s) {
    return s->n_ctx_slot;
}

qr_status srv_scheduler_submit(srv_scheduler *s, srv_task *t) {
    pthread_mutex_lock(&s->mu);
    qr_status st = QR_OK;
    if (s->stopping) {
        st = qr_error(QR_ERR_CANCELLED, "the server is shutting down");
    } else if (s->q_len >= s->max_queue) {
        st = qr_error(QR_ERR_CONTEXT_FULL,
                      "the server is busy: %d requests are already waiting for a slot; retry later",
                      s->q_len);
    } else {
        t->refs++;
        s->queue[(s->q_head + s->q_len) % s->max_queue] = t;
        s->q_len++;
        s->metrics.queue_depth = s->q_len;
        pthread_cond_signal(&s->wake);
    }
    pthread_mutex_unlock(&s->mu);
    return st;
}

qr_status srv_scheduler_submit_action(srv_scheduler *s, srv_task *t) {
    pthread_mutex_lock(&s->mu);
    qr_status st = QR_OK;
    if (s->stopping) {
        st = qr_error(QR_ERR_CANCELLED, "the server is shutting down");
    } else if (t->action_slot < 0 || t->action_slot >= s->n_slots) {
        st = qr_error(QR_ERR_INVALID_ARG, "Invalid slot ID %d: the server has %d slots",
                      t->action_slot, s->n_slots);
    } else if (s->n_actions >= s->max_queue) {
        st = qr_error(QR_ERR_CONTEXT_FULL,
                      "the server is busy: %d slot actions are already waiting; retry later",
                      s->n_actions);
    } else {
        t->refs++;
        s->actions[s->n_actions++] = t;
        pthread_cond_signal(&s->wake);
    }
    pthread_mutex_unlock(&s->mu);
    return st;
}

/* ---- slots ---- */

static int32_t common_prefix(const qr_token *a, int32_t na, const qr_token *b, int32_t nb) {
    /* a: a slot's cache, of which only the first n_exact cells may be reused (callers pass
     * na = min(n_cache, n_exact)) */
    int32_t n = 0;
    while (n < na && n < nb && a[n] == b[n])
        n++;
    return n;
}

static int32_t reusable(const srv_slot *sl) {
    return sl->n_cache < sl->n_exact ? sl->n_cache : sl->n_exact;
}

/* Give queued tasks free slots (lock held): the slot with the longest cached prefix of the
 * prompt, else the least recently used one. */
static void admit_locked(srv_scheduler *s) {
    while (s->q_len > 0) {
        srv_task *t = s->queue[s->q_head];
        if (t->cancelled) {
            s->q_head = (s->q_head + 1) % s->max_queue;
            s->q_len--;
            finish_locked(s, t, NULL, 0, NULL);
            continue;
        }
        srv_slot *best = NULL;
        int32_t best_common = INT32_MIN;
        for (int32_t i = 0; i < s->n_slots; i++) {
            srv_slot *sl = &s->slots[i];
            if (sl->task) continue;
            /* an embedding reuses nothing and clears the sequence: take the emptiest slot */
            int32_t c = t->embed ? -sl->n_cache
                                 : common_prefix(sl->cache, reusable(sl), t->prompt, t->n_prompt);
            if (!best || c > best_common || (c == best_common && sl->last_used < best->last_used)) {
                best = sl;
                best_common = c;
            }
        }
        if (!best) break;
        s->q_head = (s->q_head + 1) % s->max_queue;
        s->q_len--;
        best->task = t;
        best->fresh = true;
        best->state = SLOT_PROMPT;
        best->last_used = ++s->use_counter;
    }
    s->metrics.queue_depth = s->q_len;
}

static void slot_release_sampling(srv_slot *sl) {
    qr_sampler_free(sl->sampler);
    qr_stop_matcher_free(sl->stop);
    sl->sampler = NULL;
    sl->stop = NULL;
    sl->state = SLOT_IDLE;
}

/* Finish a slot's task (lock held). */
static void slot_finish_locked(srv_scheduler *s, srv_slot *sl, const char *reason, int status,
                               const char *error) {
    srv_task *t = sl->task;
    sl->task = NULL;
    sl->fresh = false;
    slot_release_sampling(sl);
    if (t) finish_locked(s, t, reason, status, error);
}

/* Forget a slot's cache after a failed decode: what the context holds is unknown. */
static void slot_forget(srv_scheduler *s, srv_slot *sl) {
    qr_kv_remove(s->ctx, sl->id, 0, -1);
    sl->n_cache = 0;
    if (s->spec.type != QR_SPEC_NONE) qr_drafter_truncate(&sl->drafter, 0);
}

/* Set up a newly admitted slot (scheduler thread, no lock): reuse the cached prefix, create the
 * sampler and stop matcher. */
static qr_status slot_start(srv_scheduler *s, srv_slot *sl) {
    srv_task *t = sl->task;
    int32_t n_common = common_prefix(sl->cache, reusable(sl), t->prompt, t->n_prompt);
    if (n_common >= t->n_prompt) n_common = t->n_prompt - 1; /* evaluate one for its logits */
    if (s->n_lora > 0) {
        /* the request's LoRA scales, else the global ones; a cache computed with other scales
         * is not reused (llama.cpp's server clears it too) */
        float want[QR_MAX_LORAS];
        if (t->req.has_lora) {
            memcpy(want, t->req.lora, sizeof want);
        } else {
            pthread_mutex_lock(&s->mu);
            memcpy(want, s->lora_global, sizeof want);
            pthread_mutex_unlock(&s->mu);
        }
        if (memcmp(want, sl->lora, (size_t)s->n_lora * sizeof *want) != 0) {
            n_common = 0;
            memcpy(sl->lora, want, sizeof want);
            for (int32_t i = 0; i < s->n_lora; i++)
                qr_set_lora_scale_seq(s->ctx, sl->id, i, want[i]);
        }
    }
    qr_status st = qr_kv_remove(s->ctx, sl->id, n_common, -1);
    if (st) return st;
    sl->n_cache = n_common;
    sl->n_exact = INT32_MAX;
    sl->spec = false;
    if (s->spec.type != QR_SPEC_NONE) {
        /* the draft's cache keeps what it shares with the new prompt */
        if ((st = qr_drafter_truncate(&sl->drafter, n_common))) return st;
        const srv_request *r = &t->req;
        sl->spec = !r->spec_off && !t->embed;
        sl->spec_n = r->spec_n_max > 0 ? r->spec_n_max : s->spec.n_max;
        sl->drafter.n_min = r->spec_n_min >= 0 ? r->spec_n_min : s->spec.n_min;
        sl->drafter.p_min = r->spec_p_min >= 0 ? r->spec_p_min : s->spec.p_min;
        if (sl->drafter.n_min > sl->spec_n) sl->drafter.n_min = sl->spec_n;
    }
    sl->i_prompt = n_common;
    sl->n_gen = 0;
    sl->fresh = false;
    memset(&sl->utf8, 0, sizeof sl->utf8);
    st = qr_sampler_create_for_model(&t->req.sp, s->model, &sl->sampler);
    if (!st)
        st = qr_stop_matcher_create((const char *const *)t->req.stops, t->req.n_stops, &sl->stop);
    if (st) return st;
    for (int32_t i = 0; i < t->n_prompt; i++)
        qr_sampler_accept(sl->sampler, t->prompt[i]);
    pthread_mutex_lock(&s->mu);
    t->t_start = qr_time_now();
    t->n_cached = n_common;
    s->metrics.prompt_tokens += (uint64_t)t->n_prompt;
    s->metrics.prompt_tokens_reused += (uint64_t)n_common;
    pthread_mutex_unlock(&s->mu);
    return QR_OK;
}

static bool fill_token_out(const qr_model *model, qr_token id, const qr_token_logprobs *lp,
                           int32_t n_top, srv_token_out *o) {
    memset(o, 0, sizeof *o);
    o->id = id;
    o->logprob = lp->logprob;
    char buf[512];
    int32_t n = qr_token_to_piece(model, id, buf, sizeof buf, false);
    if (n < 0) n = 0;
    o->piece = malloc((size_t)n + 1);
    if (!o->piece) return false;
    memcpy(o->piece, buf, (size_t)n);
    o->piece[n] = '\0';
    o->n_piece = n;
    if (n_top > lp->n_top) n_top = lp->n_top;
    for (int32_t j = 0; j < n_top; j++) {
        int32_t m = qr_token_to_piece(model, lp->top_ids[j], buf, sizeof buf, false);
        if (m < 0) m = 0;
        o->top_pieces[j] = malloc((size_t)m + 1);
        if (!o->top_pieces[j]) return false;
        memcpy(o->top_pieces[j], buf, (size_t)m);
        o->top_pieces[j][m] = '\0';
        o->top_n_piece[j] = m;
        o->top_logprobs[j] = lp->top_logprobs[j];
        o->n_top = j + 1;
    }
    return true;
}

/* Append text to a task (lock held). */
static bool task_emit_locked(srv_task *t, const char *text, size_t n) {
    return n == 0 || srv_buf_append(&t->text, text, n);
}

/* A token was sampled for a slot: turn it into text, check the stop conditions, hand the
 * output to the connection. */
static void slot_on_token(srv_scheduler *s, srv_slot *sl, qr_token tok,
                          const qr_token_logprobs *lp) {
    srv_task *t = sl->task;
    double now = qr_time_now();
    sl->n_gen++;
    bool eog = qr_token_is_eog(s->model, tok);
    char piece[512], text[512 + 8];
    const char *emit = NULL, *emit2 = NULL;
    size_t n_emit = 0, n_emit2 = 0;
    bool stopped = false;
    if (!eog) {
        int32_t n = qr_token_to_piece(s->model, tok, piece, sizeof piece, t->req.render_special);
        if (n > 0) {
            size_t m = qr_utf8_stream_push(&sl->utf8, piece, (size_t)n, text);
            stopped = qr_stop_matcher_push(sl->stop, text, m, &emit, &n_emit);
        }
    }
    const char *reason = NULL;
    if (eog || stopped)
        reason = "stop";
    else if (t->req.max_tokens > 0 && sl->n_gen >= t->req.max_tokens)
        reason = "length";
    else if (!s->ctx_shift && (sl->n_cache >= s->n_ctx_slot ||
                               (t->req.n_ctx_limit > 0 && sl->n_cache >= t->req.n_ctx_limit)))
        reason = "length";
    srv_token_out out;
    bool have_out = false;
    if (t->req.logprobs && !eog && lp)
        have_out = fill_token_out(s->model, tok, lp, t->req.top_logprobs, &out);

    pthread_mutex_lock(&s->mu);
    bool ok = task_emit_locked(t, emit, n_emit);
    if (reason && !stopped && ok) {
        /* the end: whatever the UTF-8 stream and the stop matcher held back goes out too */
        size_t m = qr_utf8_stream_flush(&sl->utf8, text);
        if (qr_stop_matcher_push(sl->stop, text, m, &emit2, &n_emit2)) reason = "stop";
        ok = task_emit_locked(t, emit2, n_emit2);
        if (ok && !strcmp(reason, "length")) {
            qr_stop_matcher_flush(sl->stop, &emit2, &n_emit2);
            ok = task_emit_locked(t, emit2, n_emit2);
        }
    }
    if (have_out) {
        if (t->n_tokens == t->cap_tokens) {
            int32_t cap = t->cap_tokens ? 2 * t->cap_tokens : 16;
            srv_token_out *nt = realloc(t->tokens, (size_t)cap * sizeof *nt);
            if (nt) {
                t->tokens = nt;
                t->cap_tokens = cap;
            }
        }
        if (t->n_tokens < t->cap_tokens)
            t->tokens[t->n_tokens++] = out;
        else
            srv_token_out_free(&out);
    }
    t->n_generated = sl->n_gen;
    s->metrics.generated_tokens++;
    if (sl->n_gen == 1) {
        t->t_first = now;
        srv_histogram_observe(&s->metrics.ttft, now - t->t_arrival);
    } else
        srv_histogram_observe(&s->metrics.itl, now - sl->t_last);
    sl->t_last = now;
    if (!ok)
        slot_finish_locked(s, sl, NULL, 500, "out of memory");
    else if (reason)
        slot_finish_locked(s, sl, reason, 0, NULL);
    else
        pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&s->mu);
    if (!reason && ok) {
        sl->last = tok;
        sl->state = SLOT_GEN;
    }
}

/* Run a newly admitted embedding task (scheduler thread, no lock): qr_embed evaluates the
 * input as the slot's sequence, whose cache it clears before and after. */
static void slot_embed(srv_scheduler *s, srv_slot *sl) {
    srv_task *t = sl->task;
    double t0 = qr_time_now();
    qr_status st = qr_embed(s->ctx, sl->id, t->prompt, t->n_prompt, t->pooling, t->embedding);
    double dt = qr_time_now() - t0;
    sl->n_cache = 0;
    sl->fresh = false;
    char msg[1024];
    if (st) snprintf(msg, sizeof msg, "embedding failed: %s", qr_last_error());
    pthread_mutex_lock(&s->mu);
    t->t_start = t0;
    t->t_first = t0 + dt;
    s->metrics.prompt_tokens += (uint64_t)t->n_prompt;
    s->metrics.prompt_seconds += dt;
    s->metrics.decode_steps++;
    s->metrics.decode_tokens += (uint64_t)t->n_prompt;
    if (st)
        slot_finish_locked(s, sl, NULL, st == QR_ERR_CONTEXT_FULL ? 400 : 500, msg);
    else
        slot_finish_locked(s, sl, "stop", 0, NULL);
    pthread_mutex_unlock(&s->mu);
}

/* The context a slot's task may fill: the slot's, or less with ollama's num_ctx. */
static int32_t slot_n_ctx(const srv_scheduler *s, const srv_slot *sl) {
    const int32_t lim = sl->task->req.n_ctx_limit;
    return lim > 0 && lim < s->n_ctx_slot ? lim : s->n_ctx_slot;
}

/* How many guesses a speculating slot may have this step, after its pending token: as many as
 * the context, the request's limits and its n_max allow (0: none). */
static int32_t slot_spec_want(const srv_scheduler *s, const srv_slot *sl) {
    if (!sl->spec) return 0;
    const srv_request *r = &sl->task->req;
    /* the guesses sit at n_cache + 1 ...: within the context (with context shift, short of
     * its last cell, so the shift comes where it would without speculation); a step emits up
     * to k + 1 */
    int32_t want = slot_n_ctx(s, sl) - sl->n_cache - 1 - (s->ctx_shift ? 1 : 0);
    if (r->max_tokens > 0 && r->max_tokens - sl->n_gen - 1 < want)
        want = r->max_tokens - sl->n_gen - 1;
    return want < sl->spec_n ? want : sl->spec_n;
}

/* Every generating slot's guesses for this step (sl->guess[0..n_guess)), the draft model's
 * evaluations batched across the slots. A drafter that fails (the draft model's evaluation)
 * turns speculation off for those tasks, which go on without. */
static void draft_all(srv_scheduler *s) {
    int32_t n = 0;
    for (int32_t i = 0; i < s->n_slots; i++) {
        srv_slot *sl = &s->slots[i];
        sl->n_guess = 0;
        if (sl->state != SLOT_GEN || !sl->task) continue;
        int32_t w = slot_spec_want(s, sl);
        if (w < 1) continue;
        sl->cache[sl->n_cache] = sl->last; /* the history: the cache, then the pending token */
        s->d_list[n] = &sl->drafter;
        s->d_hist[n] = sl->cache;
        s->d_n_hist[n] = sl->n_cache + 1;
        s->d_want[n] = w;
        s->d_out[n] = sl->guess;
        s->d_slot[n++] = i;
    }
    if (n == 0) return;
    if (qr_drafters_propose(s->d_list, n, (const qr_token *const *)s->d_hist, s->d_n_hist,
                            s->d_want, s->d_out, s->d_n_out) != QR_OK) {
        fprintf(stderr, "quarrel serve: drafting failed, the slots go on without: %s\n",
                qr_last_error());
        for (int32_t j = 0; j < n; j++) {
            srv_slot *sl = &s->slots[s->d_slot[j]];
            sl->spec = false;
            qr_drafter_truncate(&sl->drafter, 0);
        }
        return;
    }
    for (int32_t j = 0; j < n; j++)
        s->slots[s->d_slot[j]].n_guess = s->d_n_out[j];
}

/* llama.cpp's slot context shift for a generating slot whose pending token would leave no
 * spare cell. A slot with nothing to drop finishes with "length" (lock taken here). */
static void slot_shift(srv_scheduler *s, srv_slot *sl) {
    const int32_t n_ctx = slot_n_ctx(s, sl);
    if (sl->n_cache + 1 < n_ctx) return;
    const srv_request *r = &sl->task->req;
    int32_t n_keep = r->n_keep_given ? r->n_keep : s->n_keep;
    if (n_keep < 0) n_keep = sl->task->n_prompt;
    if (s->add_bos) n_keep += 1;
    if (n_keep > n_ctx - 4) n_keep = n_ctx - 4;
    if (n_keep < 0) n_keep = 0;
    const int32_t n_left = sl->n_cache - n_keep;
    int32_t n_discard = r->n_discard ? r->n_discard : n_left / 2;
    if (n_discard > n_left - 1) n_discard = n_left - 1;
    qr_status st = QR_OK;
    if (n_discard > 0)
        st = qr_kv_shift(s->ctx, sl->id, n_keep + n_discard, -1, -n_discard);
    if (n_discard <= 0 || st) {
        char msg[1024];
        if (st) snprintf(msg, sizeof msg, "context shift failed: %s", qr_last_error());
        pthread_mutex_lock(&s->mu);
        slot_finish_locked(s, sl, st ? NULL : "length", st ? 500 : 0, st ? msg : NULL);
        pthread_mutex_unlock(&s->mu);
        if (st) slot_forget(s, sl);
        return;
    }
    memmove(sl->cache + n_keep, sl->cache + n_keep + n_discard,
            (size_t)(sl->n_cache - n_keep - n_discard) * sizeof *sl->cache);
    sl->n_cache -= n_discard;
    if (sl->n_exact > n_keep) sl->n_exact = n_keep;
    if (sl->spec) qr_drafter_truncate(&sl->drafter, n_keep);
    pthread_mutex_lock(&s->mu);
    sl->task->n_ctx_shifts++;
    s->metrics.ctx_shifts++;
    pthread_mutex_unlock(&s->mu);
}

/* One decode step over every busy slot. */
static void step(srv_scheduler *s) {
    qr_batch *b = &s->batch;
    b->n_tokens = 0;
    bool any_gen = false;
    double t_draft = qr_time_now();
    if (s->ctx_shift) /* before drafting: the guesses follow the shifted cache */
        for (int32_t i = 0; i < s->n_slots; i++) {
            srv_slot *sl = &s->slots[i];
            if (sl->state == SLOT_GEN && sl->task) slot_shift(s, sl);
        }
    if (s->spec.type != QR_SPEC_NONE) draft_all(s);
    for (int32_t i = 0; i < s->n_slots; i++) {
        srv_slot *sl = &s->slots[i];
        sl->i_batch = -1;
        sl->n_added = 0;
        if (sl->state != SLOT_GEN || !sl->task) {
            sl->n_guess = 0;
            continue;
        }
        sl->i_batch = b->n_tokens;
        sl->n_added = 1 + sl->n_guess;
        qr_batch_add(b, sl->last, sl->n_cache, sl->id, true);
        for (int32_t j = 0; j < sl->n_guess; j++)
            qr_batch_add(b, sl->guess[j], sl->n_cache + 1 + j, sl->id, true);
        any_gen = true;
    }
    t_draft = qr_time_now() - t_draft;
    int32_t budget = STEP_TOKENS - b->n_tokens;
    for (int32_t i = 0; i < s->n_slots && budget > 0; i++) {
        srv_slot *sl = &s->slots[i];
        if (sl->state != SLOT_PROMPT || !sl->task || sl->fresh) continue;
        const srv_task *t = sl->task;
        int32_t n = t->n_prompt - sl->i_prompt;
        if (n > budget) n = budget;
        for (int32_t j = 0; j < n; j++) {
            int32_t k = sl->i_prompt + j;
            bool last = k == t->n_prompt - 1;
            if (last) sl->i_batch = b->n_tokens;
            qr_batch_add(b, t->prompt[k], sl->n_cache + j, sl->id, last);
        }
        sl->n_added = n;
        budget -= n;
    }
    if (b->n_tokens == 0) return;

    double t0 = qr_time_now();
    qr_status st = qr_decode(s->ctx, b);
    double dt = qr_time_now() - t0 + t_draft;
    if (st) {
        char msg[1024];
        snprintf(msg, sizeof msg, "evaluation failed: %s", qr_last_error());
        pthread_mutex_lock(&s->mu);
        for (int32_t i = 0; i < s->n_slots; i++) {
            srv_slot *sl = &s->slots[i];
            if (sl->n_added == 0) continue;
            slot_finish_locked(s, sl, NULL, 500, msg);
            slot_forget(s, sl);
        }
        pthread_mutex_unlock(&s->mu);
        return;
    }
    for (int32_t i = 0; i < s->n_slots; i++) {
        srv_slot *sl = &s->slots[i];
        if (sl->n_added == 0) continue;
        int32_t n = sl->n_added;
        if (sl->state == SLOT_GEN) { /* the pending token; the guesses as they are accepted */
            sl->cache[sl->n_cache] = sl->last;
            n = 1;
        } else {
            memcpy(sl->cache + sl->n_cache, sl->task->prompt + sl->i_prompt,
                   (size_t)n * sizeof(qr_token));
            sl->i_prompt += n;
        }
        sl->n_cache += n;
    }
    pthread_mutex_lock(&s->mu);
    s->metrics.decode_steps++;
    s->metrics.decode_tokens += (uint64_t)b->n_tokens;
    if (any_gen)
        s->metrics.gen_seconds += dt;
    else
        s->metrics.prompt_seconds += dt;
    pthread_mutex_unlock(&s->mu);

    for (int32_t i = 0; i < s->n_slots; i++) {
        srv_slot *sl = &s->slots[i];
        if (sl->i_batch < 0 || !sl->task) continue;
        /* row j checks guess j (a kept guess is in the cache: row j + 1 follows it); the first
         * miss, or the row after the last guess, gives the sampler's own pick */
        const int32_t k = sl->n_guess;
        srv_task *t = sl->task;
        /* counted before the tokens go out: the last one may finish the task and free it */
        if (k > 0) {
            pthread_mutex_lock(&s->mu);
            s->metrics.draft_tokens += (uint64_t)k;
            t->n_drafted += k;
            pthread_mutex_unlock(&s->mu);
        }
        for (int32_t j = 0;; j++) {
            const float *logits = qr_get_logits(s->ctx, sl->i_batch + j);
            qr_token tok;
            qr_token_logprobs lp;
            bool want_lp = t->req.logprobs;
            qr_token_logprobs *lpp = want_lp ? &lp : NULL;
            st = !logits ? QR_ERR_INVALID_ARG
                 : j < k
                     ? qr_sampler_sample_draft(sl->sampler, logits, sl->guess[j], NULL, &tok, lpp)
                     : qr_sampler_sample(sl->sampler, logits, &tok, lpp);
            if (st) {
                char msg[1024];
                snprintf(msg, sizeof msg, "sampling failed: %s", qr_last_error());
                pthread_mutex_lock(&s->mu);
                slot_finish_locked(s, sl, NULL, 500, msg);
                pthread_mutex_unlock(&s->mu);
                break;
            }
            const bool kept = j < k && tok == sl->guess[j];
            if (kept) {
                pthread_mutex_lock(&s->mu);
                s->metrics.draft_accepted++;
                t->n_draft_accepted++;
                pthread_mutex_unlock(&s->mu);
            }
            slot_on_token(s, sl, tok, lpp);
            if (!sl->task || !kept) break;
            sl->cache[sl->n_cache++] = tok;
        }
        /* the rejected guesses leave the cache */
        if (k > 0 && qr_kv_remove(s->ctx, sl->id, sl->n_cache, -1) != QR_OK) slot_forget(s, sl);
    }
    int32_t used = qr_kv_used_cells(s->ctx);
    pthread_mutex_lock(&s->mu);
    s->metrics.kv_used = used;
    pthread_mutex_unlock(&s->mu);
}

/* Take the first waiting action whose slot is idle (lock held); cancelled ones end here. */
static srv_task *take_action_locked(srv_scheduler *s) {
    for (int32_t i = 0; i < s->n_actions; i++) {
        srv_task *t = s->actions[i];
        if (!t->cancelled && s->slots[t->action_slot].task) continue; /* busy: it waits */
        memmove(s->actions + i, s->actions + i + 1,
                (size_t)(s->n_actions - i - 1) * sizeof *s->actions);
        s->n_actions--;
        if (!t->cancelled) return t;
        finish_locked(s, t, NULL, 0, NULL);
        i--;
    }
    return NULL;
}

/* Run a slot action on its idle slot (scheduler thread, no lock) and finish its task. */
static void run_action(srv_scheduler *s, srv_task *t) {
    srv_slot *sl = &s->slots[t->action_slot];
    const double t0 = qr_time_now();
    qr_status st = QR_OK;
    int status = 0;
    int32_t n = 0;
    size_t bytes = 0;
    char msg[1200] = "";
    switch (t->action) {
    case SRV_ACTION_SAVE:
        n = reusable(sl); /* what the cells exactly hold (after a context shift, the kept) */
        st = qr_state_save_seq(s->ctx, sl->id, sl->cache, n, t->action_path, &bytes);
        if (st) {
            status = st == QR_ERR_INVALID_ARG ? 400 : 500;
            snprintf(msg, sizeof msg, "Unable to save slot: %s", qr_last_error());
        }
        break;
    case SRV_ACTION_RESTORE:
        st =
            qr_state_load_seq(s->ctx, sl->id, t->action_path, sl->cache, s->n_ctx_slot, &n, &bytes);
        if (st) { /* the slot's cells are as they were */
            status = st == QR_ERR_NOMEM ? 500 : 400;
            snprintf(msg, sizeof msg, "Unable to restore slot: %s", qr_last_error());
            break;
        }
        sl->n_cache = n;
        sl->n_exact = INT32_MAX;
        if (s->spec.type != QR_SPEC_NONE) qr_drafter_truncate(&sl->drafter, 0);
        break;
    case SRV_ACTION_ERASE:
        n = sl->n_cache;
        slot_forget(s, sl);
        sl->n_exact = INT32_MAX;
        break;
    default:
        st = QR_ERR_INVALID_ARG;
        status = 500;
        snprintf(msg, sizeof msg, "unknown slot action");
    }
    const int32_t used = qr_kv_used_cells(s->ctx);
    pthread_mutex_lock(&s->mu);
    t->action_n_tokens = n;
    t->action_n_bytes = bytes;
    t->action_ms = 1e3 * (qr_time_now() - t0);
    s->metrics.kv_used = used;
    finish_locked(s, t, st ? NULL : "stop", status, st ? msg : NULL);
    pthread_mutex_unlock(&s->mu);
}

static void *scheduler_main(void *arg) {
    srv_scheduler *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        bool busy = false;
        srv_task *action = NULL;
        for (;;) {
            for (int32_t i = 0; i < s->n_slots; i++)
                if (s->slots[i].task && s->slots[i].task->cancelled)
                    slot_finish_locked(s, &s->slots[i], NULL, 0, NULL);
            if (s->stopping) break;
            if ((action = take_action_locked(s))) break;
            admit_locked(s);
            busy = false;
            for (int32_t i = 0; i < s->n_slots; i++)
                busy |= s->slots[i].task != NULL;
            if (busy) break;
            s->metrics.slots_busy = 0;
            pthread_cond_wait(&s->wake, &s->mu);
        }
        if (s->stopping) {
            for (int32_t i = 0; i < s->n_slots; i++)
                if (s->slots[i].task)
                    slot_finish_locked(s, &s->slots[i], NULL, 503, "the server is shutting down");
            while (s->q_len > 0) {
                srv_task *t = s->queue[s->q_head];
                s->q_head = (s->q_head + 1) % s->max_queue;
                s->q_len--;
                finish_locked(s, t, NULL, 503, "the server is shutting down");
            }
            for (int32_t i = 0; i < s->n_actions; i++)
                finish_locked(s, s->actions[i], NULL, 503, "the server is shutting down");
            s->n_actions = 0;
            pthread_mutex_unlock(&s->mu);
            return NULL;
        }
        if (action) {
            pthread_mutex_unlock(&s->mu);
            run_action(s, action);
            continue;
        }
        int64_t n_busy = 0;
        for (int32_t i = 0; i < s->n_slots; i++)
            n_busy += s->slots[i].task != NULL;
        s->metrics.slots_busy = n_busy;
        pthread_mutex_unlock(&s->mu);

        for (int32_t i = 0; i < s->n_slots; i++) {
            srv_slot *sl = &s->slots[i];
            if (!sl->fresh) continue;
            if (sl->task->embed) {
                slot_embed(s, sl);
                continue;
            }
            if (slot_start(s, sl) != QR_OK) {
                char msg[1024];
                snprintf(msg, sizeof msg, "%s", qr_last_error());
                pthread_mutex_lock(&s->mu);
                slot_finish_locked(s, sl, NULL, 500, msg);
                pthread_mutex_unlock(&s->mu);
            }
        }
        step(s);
    }
}

qr_status srv_scheduler_create(qr_context *ctx, const srv_scheduler_params *p,
                               srv_scheduler **out) {
    *out = NULL;
    if (p->n_slots < 1) return qr_error(QR_ERR_INVALID_ARG, "the server needs at least one slot");
    if (p->max_queue < 1)
        return qr_error(QR_ERR_INVALID_ARG, "the queue must hold at least one request");
    srv_scheduler *s = qr_calloc(1, sizeof *s);
    if (!s) return QR_ERR_NOMEM;
    s->ctx = ctx;
    s->model = qr_context_model(ctx);
    s->n_slots = p->n_slots;
    s->n_ctx_slot = qr_context_n_ctx(ctx);
    s->max_queue = p->max_queue;
    s->n_vocab = qr_model_n_vocab(s->model);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->wake, NULL);
    srv_metrics_init(&s->metrics);
    s->metrics.n_slots = p->n_slots;
    s->metrics.kv_total = (int64_t)s->n_ctx_slot * p->n_slots;
    s->queue = qr_calloc((size_t)p->max_queue, sizeof *s->queue);
    s->actions = qr_calloc((size_t)p->max_queue, sizeof *s->actions);
    s->slots = qr_calloc((size_t)p->n_slots, sizeof *s->slots);
    qr_status st = s->queue && s->actions && s->slots ? QR_OK : QR_ERR_NOMEM;
    s->n_lora = p->n_lora;
    for (int32_t i = 0; i < p->n_lora; i++)
        s->lora_global[i] = p->lora_scales[i];
    for (int32_t i = 0; !st && i < p->n_slots; i++) {
        s->slots[i].id = i;
        s->slots[i].n_exact = INT32_MAX;
        memcpy(s->slots[i].lora, s->lora_global, sizeof s->lora_global); /* qr_set_loras' */
        /* the pending token after a full cache too (the drafter's history) */
        s->slots[i].cache = qr_malloc(((size_t)s->n_ctx_slot + 1) * sizeof(qr_token));
        if (!s->slots[i].cache) st = QR_ERR_NOMEM;
    }
    s->spec = p->spec;
    if (!st && s->spec.type != QR_SPEC_NONE) {
        const size_t n = (size_t)p->n_slots;
        s->d_list = qr_calloc(n, sizeof *s->d_list);
        s->d_hist = qr_calloc(n, sizeof *s->d_hist);
        s->d_out = qr_calloc(n, sizeof *s->d_out);
        s->d_n_hist = qr_calloc(4 * n, sizeof *s->d_n_hist);
        if (!s->d_list || !s->d_hist || !s->d_out || !s->d_n_hist) st = QR_ERR_NOMEM;
        if (!st) {
            s->d_want = s->d_n_hist + n;
            s->d_n_out = s->d_n_hist + 2 * n;
            s->d_slot = s->d_n_hist + 3 * n;
        }
    }
    s->ctx_shift = p->context_shift;
    s->n_keep = p->n_keep;
    s->add_bos = qr_model_adds_bos(s->model);
    for (int32_t i = 0; !st && s->spec.type != QR_SPEC_NONE && i < p->n_slots; i++) {
        srv_slot *sl = &s->slots[i];
        const qr_generate_params gp = {.seq_id = i,
                                       .spec_type = p->spec.type,
                                       .spec_draft = p->spec.draft,
                                       .spec_n_max = p->spec.n_max,
                                       .spec_n_min = p->spec.n_min,
                                       .spec_p_min = p->spec.p_min};
        st = qr_drafter_init(&sl->drafter, ctx, &gp);
        sl->guess = st ? NULL : qr_malloc((size_t)p->spec.n_max * sizeof *sl->guess);
        if (!st && !sl->guess) st = QR_ERR_NOMEM;
    }
    /* every slot's pending token and guesses, and the prompt chunks */
    int32_t cap = STEP_TOKENS > p->n_slots ? STEP_TOKENS : p->n_slots;
    if (s->spec.type != QR_SPEC_NONE && p->n_slots * s->spec.n_max > cap)
        cap = p->n_slots * s->spec.n_max;
    if (!st) st = qr_batch_init(&s->batch, cap + p->n_slots);
    if (!st && pthread_create(&s->thread, NULL, scheduler_main, s) != 0)
        st = qr_error(QR_ERR_NOMEM, "cannot start the scheduler thread: %s", strerror(errno));
    if (st) {
        srv_scheduler_free(s);
        return st;
    }
    s->thread_started = true;
    *out = s;
    return QR_OK;
}

void srv_scheduler_stop(srv_scheduler *s) {
    if (!s || !s->thread_started) return;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    s->thread_started = false;
}

void srv_scheduler_free(srv_scheduler *s) {
    if (!s) return;
    srv_scheduler_stop(s);
    if (s->slots)
        for (int32_t i = 0; i < s->n_slots; i++) {
            slot_release_sampling(&s->slots[i]);
            free(s->slots[i].cache);
            free(s->slots[i].guess);
            qr_drafter_free(&s->slots[i].drafter);
        }
    free(s->slots);
    free(s->queue);
    free(s->actions);
    free(s->d_list);
    free(s->d_hist);
    free(s->d_out);
    free(s->d_n_hist);
    qr_batch_free(&s->batch);
    pthread_cond_destroy(&s->wake);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

void srv_scheduler_lora_get(srv_scheduler *s, float *scales) {
    pthread_mutex_lock(&s->mu);
    memcpy(scales, s->lora_global, sizeof s->lora_global);
    pthread_mutex_unlock(&s->mu);
}

void srv_scheduler_lora_set(srv_scheduler *s, const float *scales) {
    pthread_mutex_lock(&s->mu);
    memcpy(s->lora_global, scales, sizeof s->lora_global);
    pthread_mutex_unlock(&s->mu);
}
