/* top_p.c - nucleus sampling (Holtzman et al. 2019), as llama.cpp's llama_sampler_top_p: keep
 * the most likely tokens until their probability sum reaches p (at least one is kept). */
#include "sample/sample_internal.h"

typedef struct top_p_stage {
    qr_stage base;
    float p;
} top_p_stage;

static void swap(qr_candidate *a, qr_candidate *b) {
    qr_candidate t = *a;
    *a = *b;
    *b = t;
}

#define N_BUCKETS 1024
#define BUCKET_SPAN 32.0f /* logits this far below the max weigh < 1e-13: lumped together */

static inline int bucket_of(float logit, float lo, float scale) {
    float f = (logit - lo) * scale;
    int b = f <= 0.0f ? 0 : (int)f;
    return b >= N_BUCKETS ? N_BUCKETS - 1 : b;
}

/* Move the nucleus of an unsorted list (p already normalised) to its front and return its
 * size, without sorting the vocabulary: the probability mass is histogrammed over logit
 * buckets, the bucket where the running mass from the top reaches p is found, everything
 * above it is kept and only that bucket's few members are sorted to place the cut. */
static size_t nucleus_front(qr_candidate *d, size_t n, float p) {
    float max_l = d[0].logit;
    for (size_t i = 1; i < n; i++)
        if (d[i].logit > max_l) max_l = d[i].logit;
    const float lo = max_l - BUCKET_SPAN, scale = (float)N_BUCKETS / BUCKET_SPAN;
    float mass[N_BUCKETS] = {0};
    for (size_t i = 0; i < n; i++)
        mass[bucket_of(d[i].logit, lo, scale)] += d[i].p;
    float acc = 0.0f;
    int cut = -1;
    for (int b = N_BUCKETS - 1; b >= 0; b--) {
        if (acc + mass[b] >= p) {
            cut = b;
            break;
        }
        acc += mass[b];
    }
    if (cut < 0) return n; /* float rounding: the mass never quite reached p */
    size_t above = 0;
    for (size_t i = 0; i < n; i++)
        if (bucket_of(d[i].logit, lo, scale) > cut) swap(&d[above++], &d[i]);
    size_t end = above;
    for (size_t i = above; i < n; i++)
        if (bucket_of(d[i].logit, lo, scale) == cut) swap(&d[end++], &d[i]);
    qr_sample_state part = {.data = d + above, .size = end - above, .sorted = false};
    qr_cand_sort(&part);
    for (size_t k = above; k < end; k++) {
        acc += d[k].p;
        if (acc >= p) return k + 1;
    }
    return end;
}

static qr_status top_p_apply(qr_stage *self, qr_sample_state *st) {
    float p = ((const top_p_stage *)self)->p;
    if (p >= 1.0f) return QR_OK;
    qr_cand_gather_all(st);
    if (st->size == 0) return QR_OK;
    if (!st->sorted && st->size > 1024) { /* no top-k before: avoid sorting the vocabulary */
        qr_cand_softmax(st);
        st->size = nucleus_front(st->data, st->size, p);
        st->sorted = false; /* later stages need the set, not its order */
        return QR_OK;
    }
    qr_cand_sort(st); /* small, or already sorted by top-k */
    qr_cand_softmax(st);
    float cum = 0.0f;
    size_t last = st->size;
    for (size_t i = 0; i < st->size; i++) {
        cum += st->data[i].p;
        if (cum >= p) { /* min_keep = 1, always met here */
            last = i + 1;
            break;
        }
    }
    st->size = last;
    return QR_OK;
}

static const qr_stage_vtable top_p_vt = {"top-p", top_p_apply, NULL, NULL};

qr_stage *qr_stage_top_p(float p) {
    top_p_stage *s = qr_malloc(sizeof *s);
    if (!s) return NULL;
    s->base.vt = &top_p_vt;
    s->base.free_fn = NULL;
    s->p = p;
    return &s->base;
}
