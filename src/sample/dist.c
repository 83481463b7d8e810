/* dist.c - the final draw, as llama.cpp's llama_sampler_dist: softmax over what the earlier
 * stages left and one uniform draw from the sampler's PRNG. */
#include "sample/sample_internal.h"

static qr_status dist_apply(qr_stage *self, qr_sample_state *st) {
    (void)self;
    qr_cand_gather_all(st);
    if (qr_cand_check_nonempty(st) != QR_OK) return QR_ERR_NUMERIC;
    st->selected = st->size == 1 ? 0 : (int32_t)qr_cand_draw(st);
    return QR_OK;
}

static const qr_stage_vtable dist_vt = {"dist", dist_apply, NULL, NULL};

qr_stage *qr_stage_dist(void) {
    qr_stage *s = qr_malloc(sizeof *s);
    if (!s) return NULL;
    s->vt = &dist_vt;
    s->free_fn = NULL;
    return s;
}
