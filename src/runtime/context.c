/* context.c - contexts: creating the KV cache, pool and scratch once; qr_decode splitting a
 * batch into n_batch pieces after checking every token's sequence and position; logits and KV
 * bookkeeping. */
#include "runtime/context.h"
#include "kernels/matmul.h"
#include "tensor/tensor.h"

#include <math.h>
#include <stdlib.h>
#include <strings.h>

/* the tensor type of each KV cache type, llama.cpp's names */
static const int kv_tensor_type[QR_KV_TYPE_COUNT] = {
    [QR_KV_F16] = QR_TYPE_F16,   [QR_KV_F32] = QR_TYPE_F32,   [QR_KV_BF16] = QR_TYPE_BF16,
    [QR_KV_Q8_0] = QR_TYPE_Q8_0, [QR_KV_Q4_0] = QR_TYPE_Q4_0, [QR_KV_Q4_1] = QR_TYPE_Q4_1,
    [QR_KV_Q5_0] = QR_TYPE_Q5_0, [QR_KV_Q5_1] = QR_TYPE_Q5_1, [QR_KV_IQ4_NL] = QR_TYPE_IQ4_NL};

const char *qr_kv_type_name(qr_kv_type type) {
    if ((int)type < 0 || type >= QR_KV_TYPE_COUNT) return NULL;
    return qr_type_traits_get(kv_tensor_type[type])->name;
}

qr_status qr_kv_type_parse(const char *name, qr_kv_type *out) {
    for (int t = 0; t < QR_KV_TYPE_COUNT; t++)
        if (name && !strcasecmp(name, qr_kv_type_name((qr_kv_type)t))) {
            *out = (qr_kv_type)t;
            return QR_OK;
        }
    return qr_error(QR_ERR_INVALID_ARG,
                    "unknown KV cache type '%s' (allowed: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, "
                    "q5_1, iq4_nl)",
                    name ? name : "(null)");
}

/* A cache type whose block does not divide the head size cannot hold a head's row (llama.cpp
 * refuses it in llama_init_from_model). */
static qr_status check_kv_type(qr_kv_type type, const char *which, int64_t head_dim) {
    if ((int)type < 0 || type >= QR_KV_TYPE_COUNT)
        return qr_error(QR_ERR_INVALID_ARG, "unknown %s cache type %d", which, (int)type);
    const qr_type_traits *tt = qr_type_traits_get(kv_tensor_type[type]);
    if (head_dim % tt->block_size != 0)
        return qr_error(QR_ERR_UNSUPPORTED,
                        "%s cache type %s with block size %lld does not divide the head size %lld "
                        "(llama.cpp refuses it too): use f16, bf16 or f32",
                        which, tt->name, (long long)tt->block_size, (long long)head_dim);
    return QR_OK;
}

qr_context_params qr_context_default_params(void) {
    return (qr_context_params){.n_ctx = 0,
                               .n_batch = 512,
                               .n_threads = 0,
                               .n_seq_max = 1,
                               .type_k = QR_KV_F16,
                               .type_v = QR_KV_F16,
                               .flash_attn = QR_FLASH_ATTN_AUTO,
                               .rope_scaling = QR_ROPE_SCALING_DEFAULT,
                               .yarn_ext_factor = -1.0f,
                               .yarn_attn_factor = -1.0f,
                               .yarn_beta_fast = -1.0f,
                               .yarn_beta_slow = -1.0f};
}

static size_t max_size(size_t a, size_t b) {
    return a > b ? a : b;
}

qr_status qr_context_create(qr_model *model, const qr_context_params *params, qr_context **out) {
    *out = NULL;
    if (model->vocab_only)
        return qr_error(QR_ERR_INVALID_ARG,
                        "the model was loaded vocabulary-only; it cannot be evaluated");
    qr_context_params p = params ? *params : qr_context_default_params();
    const qr_hparams *hp = &model->hp;
    if (p.n_ctx < 0 || p.n_batch < 0 || p.n_threads < 0 || p.n_seq_max < 0)
        return qr_error(QR_ERR_INVALID_ARG, "context parameters must not be negative");
    if (p.n_ctx == 0) p.n_ctx = hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096;
    if (p.n_batch == 0) p.n_batch = 512;
    if (p.n_threads == 0) p.n_threads = qr_cpu_count();
    if (p.share_pool) p.n_threads = p.share_pool->params.n_threads; /* the pool's */
    if (p.n_seq_max == 0) p.n_seq_max = 1;
    if (p.n_threads > 512)
        return qr_error(QR_ERR_INVALID_ARG, "too many threads (%d)", p.n_threads);
    qr_status kst = check_kv_type(p.type_k, "K", hp->head_dim);
    if (kst == QR_OK) kst = check_kv_type(p.type_v, "V", hp->head_dim);
    if (kst != QR_OK) return kst;
    if (p.flash_attn < QR_FLASH_ATTN_AUTO || p.flash_attn > QR_FLASH_ATTN_ON)
        return qr_error(QR_ERR_INVALID_ARG, "unknown flash attention setting %d",
                        (int)p.flash_attn);
    const bool plain_k = p.type_k == QR_KV_F16 || p.type_k == QR_KV_F32;
    const bool plain_v = p.type_v == QR_KV_F16 || p.type_v == QR_KV_F32;
    if (p.flash_attn == QR_FLASH_ATTN_OFF && p.type_v != QR_KV_BF16 && !plain_v)
        return qr_error(QR_ERR_UNSUPPORTED,
                        "V cache type %s needs flash attention (llama.cpp: \"quantized V cache "
                        "was requested, but this requires Flash Attention\"): use -fa on or auto, "
                        "or an f16 or f32 V cache",
                        qr_kv_type_name(p.type_v));
    if (p.flash_attn == QR_FLASH_ATTN_OFF && p.type_v == QR_KV_BF16)
        return qr_error(QR_ERR_UNSUPPORTED,
                        "a bf16 V cache needs flash attention in Quarrel (its attention without "
                        "it takes f16 or f32 V rows): use -fa on or auto");
    if (p.n_ctx < p.n_seq_max)
        return qr_error(QR_ERR_INVALID_ARG, "context of %d cells cannot hold %d sequences", p.n_ctx,
                        p.n_seq_max);
    if (p.rope_scaling < QR_ROPE_SCALING_DEFAULT || p.rope_scaling > QR_ROPE_SCALING_LONGROPE)
        return qr_error(QR_ERR_INVALID_ARG, "unknown rope scaling type %d", (int)p.rope_scaling);
    if (!isfinite(p.rope_freq_base) || p.rope_freq_base < 0 || !isfinite(p.rope_freq_scale) ||
        p.rope_freq_scale < 0 || !isfinite(p.yarn_ext_factor) || !isfinite(p.yarn_attn_factor) ||
        !isfinite(p.yarn_beta_fast) || !isfinite(p.yarn_beta_slow) || p.yarn_orig_ctx < 0)
        return qr_error(QR_ERR_INVALID_ARG,
                        "rope parameters must be finite and the base, scale and original "
                        "context not negative");
    if (p.n_ctx > (1 << 24))
        return qr_error(QR_ERR_INVALID_ARG, "context size %d is too large", p.n_ctx);

    qr_context *ctx = qr_calloc(1, sizeof *ctx);
    if (!ctx) return QR_ERR_NOMEM;
    ctx->model = model;
    ctx->params = p;
    ctx->n_seq = p.n_seq_max;
    ctx->n_ctx_seq = p.n_ctx / p.n_seq_max;
    ctx->n_ctx = ctx->n_ctx_seq * ctx->n_seq;
    ctx->n_batch = p.n_batch;
    qr_rope_init(model, &p, ctx->n_ctx_seq, ctx->rope);
    qr_status st = QR_OK;
    if (p.share_pool) {
        ctx->pool = p.share_pool->pool;
    } else {
        if ((st = qr_pool_create(p.n_threads, &ctx->pool))) goto fail;
        ctx->owns_pool = true;
    }

    const int64_t kv_dim = (int64_t)hp->n_head_kv * hp->head_dim,
                  q_dim = (int64_t)hp->n_head * hp->head_dim;
    ctx->k_type = kv_tensor_type[p.type_k];
    ctx->v_type = kv_tensor_type[p.type_v];
    const qr_type_traits *kt = qr_type_traits_get(ctx->k_type),
                         *vt = qr_type_traits_get(ctx->v_type);
    ctx->k_row_bytes = (size_t)(hp->head_dim / kt->block_size) * kt->block_bytes;
    ctx->v_row_bytes = (size_t)(hp->head_dim / vt->block_size) * vt->block_bytes;
    ctx->flash = p.flash_attn == QR_FLASH_ATTN_ON ||
                 (p.flash_attn == QR_FLASH_ATTN_AUTO && !(plain_k && plain_v));
    /* rotations as llama.cpp (llama_kv_cache's constructor, build_input_k_rot / _v_rot) */
    if (kt->is_quantized && hp->head_dim % 64 == 0) {
        ctx->k_rot = 64;
        while (hp->head_dim % (2 * ctx->k_rot) == 0)
            ctx->k_rot *= 2;
    }
    if (vt->is_quantized && hp->head_dim % 64 == 0) ctx->v_rot = 64;
    ctx->k_cache = qr_calloc((size_t)hp->n_layer, sizeof(void *));
    ctx->v_cache = qr_calloc((size_t)hp->n_layer, sizeof(void *));
    ctx->seq_len = qr_calloc((size_t)ctx->n_seq, sizeof(int32_t));
    if (!ctx->k_cache || !ctx->v_cache || !ctx->seq_len) goto nomem;
    for (int32_t l = 0; l < hp->n_layer; l++) {
        const size_t rows = (size_t)ctx->n_ctx * (size_t)hp->n_head_kv;
        ctx->k_cache[l] = qr_calloc(rows, ctx->k_row_bytes);
        ctx->v_cache[l] = qr_calloc(rows, ctx->v_row_bytes);
        if (!ctx->k_cache[l] || !ctx->v_cache[l]) goto nomem;
    }

    const size_t nb = (size_t)p.n_batch;
    const size_t d = (size_t)hp->n_embd, ff = max_size((size_t)hp->n_ff, (size_t)hp->n_ff_exp);
    ctx->x = qr_malloc(nb * d * sizeof(float));
    ctx->xb = qr_malloc(nb * max_size(d, (size_t)q_dim) * sizeof(float));
    ctx->q = qr_malloc(nb * (size_t)q_dim * sizeof(float));
    ctx->k = qr_malloc(nb * (size_t)kv_dim * sizeof(float));
    ctx->v = qr_malloc(nb * (size_t)kv_dim * sizeof(float));
    ctx->att_out = qr_malloc(nb * (size_t)q_dim * sizeof(float));
    ctx->hb = qr_malloc(nb * ff * sizeof(float));
    ctx->hb2 = qr_malloc(nb * ff * sizeof(float));
    /* per thread, for the query heads that share a KV head: their f16-rounded q, then a row of
     * scores each */
    const int64_t group = hp->n_head / hp->n_head_kv;
    ctx->scores_per_thread = group * ((int64_t)hp->head_dim + ctx->n_ctx_seq);
    /* the flash-attention arithmetic (and a quantized K) also keeps per thread the queries
     * converted to the K
     * type's dot partner (at most 4 bytes a value), f16 accumulators (or the rotated queries)
     * and per head its running maximum and sum and a tile's row weights and rescales
     * (forward.c, attend_flash) */
    if (ctx->flash || !plain_k)
        ctx->scores_per_thread += group * ((int64_t)hp->head_dim * 2 + 2 + 2 * QR_FLASH_TILE);
    /* and one range's partial result and the merged maxima and sums (forward.c, flash_range) */
    if (ctx->flash) ctx->scores_per_thread += group * ((int64_t)hp->head_dim + 4);
    /* one token's ranges on several threads: attention() does it for fewer than 4 * n_threads
     * (token, KV head) pairs */
    if (ctx->flash && p.n_threads > 1) {
        const int64_t ranges = (ctx->n_ctx_seq + QR_FLASH_RANGE - 1) / QR_FLASH_RANGE;
        ctx->flash_parts_tokens = (4 * p.n_threads + hp->n_head_kv - 1) / hp->n_head_kv;
        ctx->flash_parts = qr_malloc((size_t)ctx->flash_parts_tokens * (size_t)hp->n_head *
                                     (size_t)ranges * (size_t)(hp->head_dim + 2) * sizeof(float));
        if (!ctx->flash_parts) goto nomem;
    }
    ctx->scores = qr_malloc((size_t)p.n_threads * (size_t)ctx->scores_per_thread * sizeof(float));
    /* the largest converted activation: any weight's input (n_embd, q_dim or n_ff columns) */
    size_t act = 0;
    const qr_weight *ws[] = {&model->output};
    act = max_size(act, qr_act_bytes(ws[0]->type, d, (int64_t)nb));
    for (int32_t l = 0; l < hp->n_layer; l++) {
        const qr_layer *L = &model->layers[l];
        const qr_weight *lw[] = {&L->wq,       &L->wk,     &L->wv,      &L->wo,
                                 &L->ffn_gate, &L->ffn_up, &L->ffn_down};
        for (size_t i = 0; i < sizeof lw / sizeof lw[0]; i++)
            act = max_size(act, qr_act_bytes(lw[i]->type, lw[i]->n_cols, (int64_t)nb));
    }
    if (hp->n_expert > 0) {
        const size_t ne = (size_t)hp->n_expert, k = (size_t)hp->n_expert_used;
        ctx->moe_probs = qr_malloc(nb * ne * sizeof(float));
        ctx->moe_weight = qr_malloc(nb * k * sizeof(float));
        ctx->moe_choice = qr_malloc(nb * k * sizeof(int32_t));
        ctx->moe_pairs = qr_malloc(nb * k * sizeof(int32_t));
        ctx->moe_first = qr_malloc((ne + 1) * sizeof(int32_t));
        const size_t ff = (size_t)hp->n_ff_exp;
        ctx->moe_pos = qr_malloc(nb * k * sizeof(int32_t));
        ctx->moe_g = qr_malloc(nb * k * ff * sizeof(float));
        ctx->moe_u = qr_malloc(nb * k * ff * sizeof(float));
        ctx->moe_out = qr_malloc(nb * k * d * sizeof(float));
        /* the pairs' inputs for gate and up (two conversions when their types differ), later
         * for down */
        size_t moe_act = 0;
        for (int32_t l = 0; l < hp->n_layer; l++) {
            const qr_layer *L = &model->layers[l];
            if (!L->experts) continue;
            const qr_expert *x = &L->experts[0];
            moe_act = max_size(moe_act, qr_act_bytes(x->gate.type, d, (int64_t)(nb * k)) +
                                            qr_act_bytes(x->up.type, d, (int64_t)(nb * k)));
            moe_act = max_size(moe_act, qr_act_bytes(x->down.type, (int64_t)ff, (int64_t)(nb * k)));
        }
        ctx->moe_act = qr_malloc(moe_act);
        if (!ctx->moe_probs || !ctx->moe_weight || !ctx->moe_choice || !ctx->moe_pairs ||
            !ctx->moe_first || !ctx->moe_pos || !ctx->moe_g || !ctx->moe_u || !ctx->moe_out ||
            !ctx->moe_act)
            goto nomem;
        for (int32_t l = 0; l < hp->n_layer; l++) {
            const qr_layer *L = &model->layers[l];
            if (!L->experts) continue;
            const qr_weight *ew[] = {&L->ffn_gate_inp, &L->experts[0].gate, &L->experts[0].down};
            for (size_t i = 0; i < sizeof ew / sizeof ew[0]; i++)
                act = max_size(act, qr_act_bytes(ew[i]->type, ew[i]->n_cols, (int64_t)nb));
        }
    }
    ctx->act_q_bytes = act;
    ctx->act_q = qr_malloc(act);
    if (!ctx->x || !ctx->xb || !ctx->q || !ctx->k || !ctx->v || !ctx->att_out || !ctx->hb ||
        !ctx->hb2 || !ctx->scores || !ctx->act_q)
        goto nomem;
    *out = ctx;
    return QR_OK;
nomem:
    st = qr_error(QR_ERR_NOMEM, "out of memory creating a context of %d cells", p.n_ctx);
fail:
    qr_context_free(ctx);
    return st;
}

void qr_context_free(qr_context *ctx) {
    if (!ctx) return;
    if (ctx->owns_pool) qr_pool_free(ctx->pool);
    if (ctx->k_cache)
        for (int32_t l = 0; l < ctx->model->hp.n_layer; l++)
            free(ctx->k_cache[l]);
    if (ctx->v_cache)
        for (int32_t l = 0; l < ctx->model->hp.n_layer; l++)
            free(ctx->v_cache[l]);
    free(ctx->k_cache);
    free(ctx->v_cache);
    free(ctx->seq_len);
    free(ctx->x);
    free(ctx->xb);
    free(ctx->q);
    free(ctx->k);
    free(ctx->v);
    free(ctx->att_out);
    free(ctx->hb);
    free(ctx->hb2);
    free(ctx->scores);
    free(ctx->flash_parts);
    free(ctx->act_q);
    free(ctx->moe_probs);
    free(ctx->moe_weight);
    free(ctx->moe_choice);
    free(ctx->moe_pairs);
    free(ctx->moe_first);
    free(ctx->moe_pos);
    free(ctx->moe_g);
    free(ctx->moe_u);
    free(ctx->moe_out);
    free(ctx->moe_act);
    free(ctx->logits);
    free(ctx->logits_row);
    qr_context_free_loras(ctx);
    free(ctx);
}

int32_t qr_context_n_ctx(const qr_context *ctx) {
    return ctx->n_ctx_seq;
}
const qr_model *qr_context_model(const qr_context *ctx) {
    return ctx->model;
}

/* ---- batches ---- */

qr_status qr_batch_init(qr_batch *b, int32_t n_max) {
    memset(b, 0, sizeof *b);
    if (n_max <= 0) return qr_error(QR_ERR_INVALID_ARG, "batch size must be positive");
    b->token = qr_malloc((size_t)n_max * sizeof *b->token);
    b->pos = qr_malloc((size_t)n_max * sizeof *b->pos);
    b->seq_id = qr_malloc((size_t)n_max * sizeof *b->seq_id);
    b->logits = qr_malloc((size_t)n_max * sizeof *b->logits);
    if (!b->token || !b->pos || !b->seq_id || !b->logits) {
        qr_batch_free(b);
        return QR_ERR_NOMEM;
    }
    return QR_OK;
}

void qr_batch_free(qr_batch *b) {
    free(b->token);
    free(b->pos);
    free(b->seq_id);
    free(b->logits);
    memset(b, 0, sizeof *b);
}

void qr_batch_add(qr_batch *b, qr_token token, int32_t pos, int32_t seq_id, bool logits) {
    b->token[b->n_tokens] = token;
    b->pos[b->n_tokens] = pos;
    b->seq_id[b->n_tokens] = seq_id;
    b->logits[b->n_tokens] = logits;
    b->n_tokens++;
}

/* Every token of a batch: a known sequence, the next position of it, room in its cells. */
static qr_status check_batch(const qr_context *ctx, const qr_batch *b) {
    int32_t *next = qr_malloc((size_t)ctx->n_seq * sizeof *next);
    if (!next) return QR_ERR_NOMEM;
    memcpy(next, ctx->seq_len, (size_t)ctx->n_seq * sizeof *next);
    qr_status st = QR_OK;
    for (int32_t i = 0; i < b->n_tokens && !st; i++) {
        int32_t s = b->seq_id[i], p = b->pos[i];
        if (s < 0 || s >= ctx->n_seq)
            st = qr_error(QR_ERR_INVALID_ARG,
                          "batch token %d: sequence %d out of range (context has %d)", i, s,
                          ctx->n_seq);
        else if (p >= ctx->n_ctx_seq)
            st = qr_error(
                QR_ERR_CONTEXT_FULL,
                "context full: position %d of sequence %d does not fit the context of %d tokens", p,
                s, ctx->n_ctx_seq);
        else if (p != next[s])
            st = qr_error(QR_ERR_INVALID_ARG,
                          "batch token %d: position %d of sequence %d, expected %d", i, p, s,
                          next[s]);
        else if (b->token[i] < 0 || b->token[i] >= ctx->model->hp.n_vocab)
            st = qr_error(QR_ERR_INVALID_ARG,
                          "batch token %d: id %d out of range (vocabulary has %d)", i, b->token[i],
                          ctx->model->hp.n_vocab);
        else
            next[s]++;
    }
    free(next);
    return st;
}

qr_status qr_decode(qr_context *ctx, const qr_batch *b) {
    return qr_decode_timed(ctx, b, b->n_tokens > 1);
}

qr_status qr_decode_timed(qr_context *ctx, const qr_batch *b, bool prompt) {
    if (b->n_tokens <= 0) return qr_error(QR_ERR_INVALID_ARG, "empty batch");
    qr_status st = check_batch(ctx, b);
    if (st) return st;
    int32_t n_out = 0;
    for (int32_t i = 0; i < b->n_tokens; i++)
        n_out += b->logits[i] != 0;
    /* a row is the logits, or the hidden state when embeddings are wanted (never wider) */
    const int64_t n_vocab = ctx->embd_only ? ctx->model->hp.n_embd : ctx->model->hp.n_vocab;
    if ((size_t)n_out * (size_t)n_vocab > ctx->cap_logits) {
        float *l = realloc(ctx->logits, (size_t)n_out * (size_t)n_vocab * sizeof(float));
        if (!l) return qr_error(QR_ERR_NOMEM, "out of memory for %d rows of logits", n_out);
        ctx->logits = l;
        ctx->cap_logits = (size_t)n_out * (size_t)n_vocab;
    }
    if (b->n_tokens > ctx->cap_batch_index) {
        int32_t *r = realloc(ctx->logits_row, (size_t)b->n_tokens * sizeof *r);
        if (!r) return qr_error(QR_ERR_NOMEM, "out of memory");
        ctx->logits_row = r;
        ctx->cap_batch_index = b->n_tokens;
    }
    int32_t row = 0;
    for (int32_t i = 0; i < b->n_tokens; i++)
        ctx->logits_row[i] = b->logits[i] ? row++ : -1;
    ctx->n_logits = n_out;

    double t0 = qr_time_now();
    int32_t done_rows = 0;
    for (int32_t i0 = 0; i0 < b->n_tokens; i0 += ctx->n_batch) {
        int32_t n = b->n_tokens - i0 < ctx->n_batch ? b->n_tokens - i0 : ctx->n_batch;
        /* no logits buffer when no row asks for one (imatrix without perplexity) */
        float *out = ctx->logits ? ctx->logits + (size_t)done_rows * (size_t)n_vocab : NULL;
        st = qr_forward(ctx, b->token + i0, b->pos + i0, b->seq_id + i0, n, b->logits + i0, out);
        if (st) return st;
        for (int32_t i = i0; i < i0 + n; i++) {
            ctx->seq_len[b->seq_id[i]] = b->pos[i] + 1;
            done_rows += b->logits[i] != 0;
        }
    }
    double dt = qr_time_now() - t0;
    if (!prompt) {
        ctx->timings.n_gen_tokens += b->n_tokens;
        ctx->timings.gen_seconds += dt;
    } else {
        ctx->timings.n_prompt_tokens += b->n_tokens;
        ctx->timings.prompt_seconds += dt;
    }
    return QR_OK;
}

const float *qr_get_logits(qr_context *ctx, int32_t i) {
    if (ctx->n_logits == 0) {
        qr_error(QR_ERR_INVALID_ARG, "no logits: the last batch asked for none");
        return NULL;
    }
    int32_t row;
    if (i < 0)
        row = ctx->n_logits - 1;
    else if (i < ctx->cap_batch_index && ctx->logits_row[i] >= 0)
        row = ctx->logits_row[i];
    else {
        qr_error(QR_ERR_INVALID_ARG, "no logits for batch token %d", i);
        return NULL;
    }
    return ctx->logits + (size_t)row * (size_t)ctx->model->hp.n_vocab;
}

qr_status qr_kv_remove(qr_context *ctx, int32_t seq_id, int32_t p0, int32_t p1) {
    if (seq_id < -1 || seq_id >= ctx->n_seq)
        return qr_error(QR_ERR_INVALID_ARG, "sequence %d out of range", seq_id);
    if (p0 < 0) p0 = 0;
    for (int32_t s = 0; s < ctx->n_seq; s++) {
        if (seq_id != -1 && s != seq_id) continue;
        if (p1 >= 0 && p1 < ctx->seq_len[s] && p0 < p1)
            return qr_error(QR_ERR_UNSUPPORTED,
                            "removing positions [%d, %d) from the middle of sequence %d", p0, p1,
                            s);
        if (p0 < ctx->seq_len[s]) ctx->seq_len[s] = p0;
    }
    return QR_OK;
}

qr_status qr_kv_shift(qr_context *ctx, int32_t seq_id, int32_t p0, int32_t p1, int32_t delta) {
    if (seq_id < 0 || seq_id >= ctx->n_seq)
        return qr_error(QR_ERR_INVALID_ARG, "kv shift: sequence %d out of range (context has %d)",
                        seq_id, ctx->n_seq);
    const int32_t len = ctx->seq_len[seq_id];
    if (p1 < 0 || p1 > len) p1 = len;
    if (p0 < 0 || p0 > p1)
        return qr_error(QR_ERR_INVALID_ARG, "kv shift: positions [%d, %d) of sequence %d", p0, p1,
                        seq_id);
    if (delta == 0 || p0 == p1) return QR_OK;
    if (delta > 0 || p1 != len)
        return qr_error(QR_ERR_UNSUPPORTED,
                        "kv shift: moving positions [%d, %d) of sequence %d (%d long) by %d would "
                        "leave a hole; only the end of a sequence moves back",
                        p0, p1, seq_id, len, delta);
    if (p0 + delta < 0)
        return qr_error(QR_ERR_INVALID_ARG,
                        "kv shift: positions [%d, %d) moved by %d fall before position 0", p0, p1,
                        delta);
    qr_kv_move(ctx, seq_id, p0, p1 - p0, delta);
    ctx->seq_len[seq_id] = p1 + delta;
    return QR_OK;
}

void qr_kv_clear(qr_context *ctx) {
    memset(ctx->seq_len, 0, (size_t)ctx->n_seq * sizeof *ctx->seq_len);
}

int32_t qr_kv_seq_pos_max(const qr_context *ctx, int32_t seq_id) {
    if (seq_id < 0 || seq_id >= ctx->n_seq) return -1;
    return ctx->seq_len[seq_id] - 1;
}

int32_t qr_kv_used_cells(const qr_context *ctx) {
    int32_t n = 0;
    for (int32_t s = 0; s < ctx->n_seq; s++)
        n += ctx->seq_len[s];
    return n;
}

qr_timings qr_context_timings(const qr_context *ctx) {
    return ctx->timings;
}

void qr_context_reset_timings(qr_context *ctx) {
    memset(&ctx->timings, 0, sizeof ctx->timings);
}
