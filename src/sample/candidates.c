/* candidates.c - the candidate list shared by the stages: gathering it from the dense logits
 * (all of them, or only the top k by a heap scan), softmax and sorting. */
#include "sample/sample_internal.h"

#include <math.h>
#include <stdlib.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

void qr_cand_apply_filter(qr_sample_state *st) {
    if (!st->filter || st->gathered) return;
    const qr_token_filter *f = st->filter;
    st->filter = NULL;
    int64_t n = f->mask_all(f->ctx, st->logits, st->n_vocab);
    if (n < 0) st->filter_failed = true;
    if (n == 0) st->filter_empty = true;
}

void qr_cand_gather_all(qr_sample_state *st) {
    if (st->gathered) return;
    qr_cand_apply_filter(st);
    size_t m = 0;
    for (int32_t i = 0; i < st->n_vocab; i++) {
        float l = st->logits[i];
        if (l == -INFINITY) continue; /* banned by logit bias */
        st->data[m].id = i;
        st->data[m].logit = l;
        st->data[m].p = 0.0f;
        m++;
    }
    st->size = m;
    st->sorted = false;
    st->gathered = true;
}

/* a ranks below b: lower logit, or the same logit and a higher id (ties go to the lower id,
 * so the top k are one well-defined set whether or not a filter thinned the list first) */
static inline bool worse(const qr_candidate *a, const qr_candidate *b) {
    return a->logit < b->logit || (a->logit == b->logit && a->id > b->id);
}

/* min-heap: the worst candidate on top */
static void sift_down(qr_candidate *h, int32_t n, int32_t i) {
    qr_candidate v = h[i];
    for (;;) {
        int32_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && worse(&h[c + 1], &h[c])) c++;
        if (!worse(&h[c], &v)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = v;
}

/* Replace the heap minimum by (id, v) and return the new minimum. */
static inline float heap_replace(qr_candidate *h, int32_t n, int32_t id, float v) {
    h[0].id = id;
    h[0].logit = v;
    sift_down(h, n, 0);
    return h[0].logit;
}

int32_t qr_select_top(const float *x, int32_t len, int32_t n, qr_candidate *out) {
    if (n > len) n = len;
    if (n <= 0) return 0;
    for (int32_t i = 0; i < n; i++) {
        out[i].id = i;
        out[i].logit = x[i];
        out[i].p = 0.0f;
    }
    for (int32_t i = n / 2 - 1; i >= 0; i--)
        sift_down(out, n, i);
    float thr = out[0].logit;
    int32_t i = n;
#ifdef __SSE2__
    /* Most blocks hold nothing above the current n-th best: test 16 at a time. */
    for (; i + 16 <= len; i += 16) {
        __m128 t = _mm_set1_ps(thr);
        __m128 gt = _mm_or_ps(_mm_or_ps(_mm_cmpgt_ps(_mm_loadu_ps(x + i), t),
                                        _mm_cmpgt_ps(_mm_loadu_ps(x + i + 4), t)),
                              _mm_or_ps(_mm_cmpgt_ps(_mm_loadu_ps(x + i + 8), t),
                                        _mm_cmpgt_ps(_mm_loadu_ps(x + i + 12), t)));
        if (!_mm_movemask_ps(gt)) continue;
        for (int32_t j = i; j < i + 16; j++)
            if (x[j] > thr) thr = heap_replace(out, n, j, x[j]);
    }
#endif
    for (; i < len; i++)
        if (x[i] > thr) thr = heap_replace(out, n, i, x[i]);
    /* heap sort: popping minima to the back leaves the array in descending order */
    for (int32_t m = n - 1; m > 0; m--) {
        qr_candidate tmp = out[0];
        out[0] = out[m];
        out[m] = tmp;
        sift_down(out, m, 0);
    }
    return n;
}

/* The k best allowed tokens through the filter, testing the best m tokens and widening m
 * until k pass or every finite logit was looked at. false: not settled that way (m reached the
 * vocabulary, or nothing passed), the caller masks the whole vocabulary instead. */
static bool gather_filtered(qr_sample_state *st, int32_t k, int32_t m) {
    const qr_token_filter *f = st->filter;
    /* Two rounds at most, the second 8 times wider: past that the filter refuses most tokens
     * here, and the list of all allowed tokens costs less than testing them one by one. With
     * that list at hand (allowed_ids), the second round is only worth it where the first let
     * through enough tokens for 8 times as many to hold k (a permissive state, whose list is
     * long); a restrictive state's list is short and quick to walk. */
    int32_t passed = 0;
    for (int round = 0; round < 2 && m < st->n_vocab; round++, m *= 8) {
        if (round == 1 && f->allowed_ids && (passed * 8 < k || (f->ids_ready && f->ids_ready(f->ctx))))
            break;
        int32_t got = qr_select_top(st->logits, st->n_vocab, m, st->data);
        int32_t n = 0;
        bool all_seen = false;
        for (int32_t j = 0; j < got && n < k; j++) {
            if (st->data[j].logit == -INFINITY) {
                all_seen = true;
                break;
            }
            if (f->allow(f->ctx, st->data[j].id)) st->data[n++] = st->data[j];
        }
        passed = n;
        if (n > 0 && (n == k || all_seen)) {
            st->size = (size_t)n;
            st->sorted = true;
            st->gathered = true;
            st->filter = NULL;
            return true;
        }
        if (all_seen) break;
    }
    return false;
}

/* The k best (descending, ties to the lower id) of the filter's whole allowed list, skipping
 * tokens a bias banned; what the dense mask and a selection would give, in the allowed set's
 * time. */
static void gather_allowed_list(qr_sample_state *st, int32_t k) {
    const qr_token_filter *f = st->filter;
    st->filter = NULL;
    st->gathered = true;
    st->sorted = true;
    st->size = 0;
    const int32_t *ids = NULL;
    const int64_t n = f->allowed_ids(f->ctx, &ids);
    if (n < 0) st->filter_failed = true;
    if (n <= 0) {
        st->filter_empty = n == 0;
        return;
    }
    qr_candidate *h = st->data; /* a min-heap of the best k so far */
    int32_t m = 0;
    for (int64_t i = 0; i < n; i++) {
        const qr_candidate c = {ids[i], st->logits[ids[i]], 0.0f};
        if (c.logit == -INFINITY) continue;
        if (m < k) {
            int32_t j = m++; /* sift up */
            while (j > 0 && worse(&c, &h[(j - 1) / 2])) {
                h[j] = h[(j - 1) / 2];
                j = (j - 1) / 2;
            }
            h[j] = c;
        } else if (worse(&h[0], &c)) {
            h[0] = c;
            sift_down(h, m, 0);
        }
    }
    for (int32_t j = m - 1; j > 0; j--) { /* heap sort: descending */
        qr_candidate tmp = h[0];
        h[0] = h[j];
        h[j] = tmp;
        sift_down(h, j, 0);
    }
    st->size = (size_t)m;
}

void qr_cand_gather_max(qr_sample_state *st) {
    if (st->filter && !st->gathered && gather_filtered(st, 1, 8)) return;
    if (st->filter && !st->gathered && st->filter->allowed_ids) {
        gather_allowed_list(st, 1);
        return;
    }
    qr_cand_apply_filter(st);
    int32_t m = qr_select_top(st->logits, st->n_vocab, 1, st->data);
    st->size = (m == 1 && st->data[0].logit != -INFINITY) ? 1 : 0;
    st->gathered = true;
    st->sorted = true;
}

void qr_cand_gather_top_k(qr_sample_state *st, int32_t k) {
    if (st->gathered || k >= st->n_vocab) { /* nothing to cut: top-k is a no-op */
        qr_cand_gather_all(st);
        return;
    }
    if (st->filter && gather_filtered(st, k, k * 4 > 64 ? k * 4 : 64)) return;
    if (st->filter && st->filter->allowed_ids) {
        gather_allowed_list(st, k);
        return;
    }
    qr_cand_apply_filter(st);
    int32_t m = qr_select_top(st->logits, st->n_vocab, k, st->data);
    while (m > 0 && st->data[m - 1].logit == -INFINITY) /* banned tokens sort last */
        m--;
    st->size = (size_t)m;
    st->sorted = true;
    st->gathered = true;
}

void qr_cand_softmax(qr_sample_state *st) {
    if (st->size == 0) return;
    float max_l = st->data[0].logit;
    if (!st->sorted)
        for (size_t i = 1; i < st->size; i++)
            if (st->data[i].logit > max_l) max_l = st->data[i].logit;
    if (st->gathered && st->logits && st->size >= 64) {
        /* a long list (mirostat, top-k off): the exps in the dense array, free once the
         * candidates are gathered, by qr_sum_exp's vector exp (sum in double) */
        float *e = st->logits;
        for (size_t i = 0; i < st->size; i++)
            e[i] = st->data[i].logit;
        const float inv = (float)(1.0 / qr_exp_shift(e, (int64_t)st->size, max_l));
        for (size_t i = 0; i < st->size; i++)
            st->data[i].p = e[i] * inv;
        return;
    }
    float sum = 0.0f;
    for (size_t i = 0; i < st->size; i++) {
        float p = expf(st->data[i].logit - max_l);
        st->data[i].p = p;
        sum += p;
    }
    for (size_t i = 0; i < st->size; i++)
        st->data[i].p /= sum;
}

static int cmp_desc(const void *a, const void *b) {
    float x = ((const qr_candidate *)a)->logit, y = ((const qr_candidate *)b)->logit;
    return (x < y) - (x > y);
}

void qr_cand_sort(qr_sample_state *st) {
    if (st->sorted) return;
    qsort(st->data, st->size, sizeof *st->data, cmp_desc);
    st->sorted = true;
}

/* Move the n largest (by logit) of data[lo..hi) to its front, in any order (quickselect). */
static void select_front(qr_candidate *d, size_t lo, size_t hi, size_t n) {
    while (n > 0 && n < hi - lo) {
        if (hi - lo <= 16) { /* small: sort it (median of three needs three distinct places) */
            qsort(d + lo, hi - lo, sizeof *d, cmp_desc);
            return;
        }
        /* median of three as the pivot, then Hoare's partition: >= pivot first (every pass
         * leaves at least one element on each side, so the range shrinks) */
        const size_t mid = lo + (hi - lo) / 2;
        float a = d[lo].logit, b = d[mid].logit, c = d[hi - 1].logit;
        const float pivot = a < b ? (b < c ? b : (a < c ? c : a)) : (a < c ? a : (b < c ? c : b));
        size_t i = lo, j = hi - 1;
        for (;;) {
            while (d[i].logit > pivot)
                i++;
            while (d[j].logit < pivot)
                j--;
            if (i >= j) break;
            qr_candidate t = d[i];
            d[i] = d[j];
            d[j] = t;
            i++;
            j--;
        }
        /* d[lo..j] >= pivot >= d[j+1..hi) */
        const size_t left = j + 1 - lo;
        if (n < left)
            hi = j + 1;
        else {
            n -= left;
            lo = j + 1;
        }
    }
}

void qr_cand_sort_top(qr_sample_state *st, size_t n) {
    if (st->sorted) return;
    if (n >= st->size) {
        qr_cand_sort(st);
        return;
    }
    select_front(st->data, 0, st->size, n);
    qsort(st->data, n, sizeof *st->data, cmp_desc);
}

size_t qr_cand_draw(qr_sample_state *st) {
    qr_cand_softmax(st);
    double sum = 0.0;
    for (size_t i = 0; i < st->size; i++)
        sum += st->data[i].p;
    double target = qr_rng_uniform(st->rng) * sum, run = 0.0;
    for (size_t i = 0; i < st->size; i++) {
        run += st->data[i].p;
        if (run > target) return i;
    }
    return st->size - 1; /* not reached: run ends at sum > target */
}

qr_status qr_cand_check_nonempty(const qr_sample_state *st) {
    if (st->filter_failed) return QR_ERR_INVALID_ARG; /* the filter has set the message */
    if (st->filter_empty)
        return qr_error(QR_ERR_NUMERIC, "grammar: no token of the vocabulary can continue the "
                                        "grammar from here (an end-of-generation token is not "
                                        "allowed either: the grammar cannot end here)");
    if (st->gathered && st->size == 0)
        return qr_error(QR_ERR_NUMERIC, "sampling: no candidate token left (every logit is -inf "
                                        "after logit bias: all tokens are banned)");
    return QR_OK;
}
