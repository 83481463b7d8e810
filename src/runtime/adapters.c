/* adapters.c - LoRA adapters attached to a context (qr_set_loras): the per-sequence scales, the
 * table of which pairs apply to which weight (looked up by forward.c before each product's
 * correction), and the scratch those corrections use. */
#include "kernels/matmul.h"
#include "runtime/context.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int by_weight(const void *pa, const void *pb) {
    const qr_lora_entry *a = pa, *b = pb;
    if (a->w != b->w) return (uintptr_t)a->w < (uintptr_t)b->w ? -1 : 1;
    return a->slot - b->slot; /* the adapters' order, for a fixed sum order */
}

static void clear(qr_context *ctx) {
    free(ctx->lora_scale);
    free(ctx->lora_entries);
    free(ctx->lora_act);
    free(ctx->lora_t);
    free(ctx->lora_y);
    ctx->lora_scale = NULL;
    ctx->lora_entries = NULL;
    ctx->lora_act = NULL;
    ctx->lora_t = ctx->lora_y = NULL;
    ctx->n_lora_entries = 0;
    ctx->n_lora = 0;
}

void qr_context_free_loras(qr_context *ctx) {
    clear(ctx);
}

qr_status qr_set_loras(qr_context *ctx, qr_lora *const *adapters, const float *scales, int32_t n) {
    if (n < 0 || n > QR_MAX_LORAS || (n > 0 && (!adapters || !scales)))
        return qr_error(QR_ERR_INVALID_ARG, "qr_set_loras: %d adapters (at most %d)", n,
                        QR_MAX_LORAS);
    for (int32_t i = 0; i < n; i++) {
        if (!adapters[i])
            return qr_error(QR_ERR_INVALID_ARG, "qr_set_loras: adapter %d is NULL", i);
        if (!isfinite(scales[i]))
            return qr_error(QR_ERR_INVALID_ARG, "qr_set_loras: adapter %d's scale is %g", i,
                            (double)scales[i]);
        if (adapters[i]->model != ctx->model)
            return qr_error(QR_ERR_INVALID_ARG,
                            "qr_set_loras: adapter %s was loaded for another model",
                            adapters[i]->path);
    }
    clear(ctx);
    if (n == 0) return QR_OK;
    const qr_model *m = ctx->model;
    const qr_weight **targets = qr_malloc((size_t)QR_LORA_MAX_TARGETS(m->hp) * sizeof *targets);
    if (!targets) return QR_ERR_NOMEM;
    int64_t n_targets, n_entries = 0;
    qr_lora_targets(m, targets, &n_targets);
    for (int32_t i = 0; i < n; i++) /* a pair may apply to several views (phi3's attn_qkv) */
        for (int32_t j = 0; j < adapters[i]->n_pairs; j++)
            for (int64_t k = 0; k < n_targets; k++)
                n_entries += strcmp(targets[k]->name, adapters[i]->pairs[j].name) == 0;
    ctx->lora_entries = qr_calloc((size_t)(n_entries ? n_entries : 1), sizeof *ctx->lora_entries);
    ctx->lora_scale = qr_calloc((size_t)ctx->n_seq * (size_t)n, sizeof *ctx->lora_scale);
    if (!ctx->lora_entries || !ctx->lora_scale) goto nomem;
    int64_t max_in = 0, max_rank = 0, max_out = 0;
    for (int32_t i = 0; i < n; i++)
        for (int32_t j = 0; j < adapters[i]->n_pairs; j++) {
            const qr_lora_pair *p = &adapters[i]->pairs[j];
            for (int64_t k = 0; k < n_targets; k++) {
                if (strcmp(targets[k]->name, p->name) != 0) continue;
                ctx->lora_entries[ctx->n_lora_entries++] =
                    (qr_lora_entry){.w = targets[k], .pair = p, .slot = i};
                if (targets[k]->n_rows > max_out) max_out = targets[k]->n_rows;
            }
            if (p->a.n_cols > max_in) max_in = p->a.n_cols;
            if (p->rank > max_rank) max_rank = p->rank;
        }
    qsort(ctx->lora_entries, (size_t)ctx->n_lora_entries, sizeof *ctx->lora_entries, by_weight);
    /* the inputs of A (n_in wide) and of B (rank wide), converted to f32 or f16 rows */
    size_t act = 0;
    const int types[] = {QR_TYPE_F32, QR_TYPE_F16};
    for (int i = 0; i < 2; i++) {
        size_t a = qr_act_bytes(types[i], max_in, QR_LORA_CHUNK);
        size_t b = qr_act_bytes(types[i], max_rank, QR_LORA_CHUNK);
        if (a > act) act = a;
        if (b > act) act = b;
    }
    ctx->lora_act = qr_malloc(act);
    ctx->lora_t = qr_malloc((size_t)(QR_LORA_CHUNK * max_rank) * sizeof(float));
    ctx->lora_y = qr_malloc((size_t)(QR_LORA_CHUNK * max_out) * sizeof(float));
    if (!ctx->lora_act || !ctx->lora_t || !ctx->lora_y) goto nomem;
    free(targets);
    ctx->n_lora = n;
    for (int32_t i = 0; i < n; i++) {
        ctx->lora[i] = adapters[i];
        for (int32_t s = 0; s < ctx->n_seq; s++)
            ctx->lora_scale[s * n + i] = scales[i];
    }
    return QR_OK;
nomem:
    free(targets);
    clear(ctx);
    return qr_error(QR_ERR_NOMEM, "out of memory attaching LoRA adapters");
}

qr_status qr_set_lora_scale_seq(qr_context *ctx, int32_t seq_id, int32_t i, float scale) {
    if (seq_id < 0 || seq_id >= ctx->n_seq)
        return qr_error(QR_ERR_INVALID_ARG, "sequence %d out of range (the context has %d)", seq_id,
                        ctx->n_seq);
    if (!isfinite(scale))
        return qr_error(QR_ERR_INVALID_ARG, "LoRA scale %g is not a finite number", (double)scale);
    if (i < 0 || i >= ctx->n_lora)
        return qr_error(QR_ERR_INVALID_ARG, "LoRA adapter %d out of range (%d attached)", i,
                        ctx->n_lora);
    ctx->lora_scale[seq_id * ctx->n_lora + i] = scale;
    return QR_OK;
}
