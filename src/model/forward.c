/* forward.c - the transformer forward pass over a batch of tokens, one pass for every
 * architecture, readable top to bottom like llama2.c's run.c. An architecture is data
 * (model.h, arch.c): its optional steps below run where its description has them. The
 * arithmetic follows llama.cpp's graphs (src/models/<arch>.cpp) so the logits match:
 *   x = embd(token) * embd_scale
 *   per layer: h = rmsnorm(x) * attn_norm (if any); q,k,v = Wq h (+bq), Wk h (+bk), Wv h (+bv)
 *              q, k = rmsnorm(q) * q_norm, rmsnorm(k) * k_norm (per head or whole; if any)
 *              rope(q, k) (if the layer has it); q *= q_scale; cache k, v
 *              o = Wo attention(q, K, V) (+bo), windowed on windowed layers, soft-capped,
 *                  with a sink logit per head (if any)
 *              x += rmsnorm(o) * attn_post_norm (if any) * residual_scale
 *              h = rmsnorm(x) * ffn_norm (if any); f = Wdown (act(Wgate h) * Wup h), or
 *              for a mixture f = sum over the router's top k experts e of w_e FFN_e(h)
 *              (the router's and the experts' biases, if any, added to their products)
 *              x += rmsnorm(f) * ffn_post_norm (if any) * residual_scale
 *   logits = softcap(Wout (rmsnorm(x) * output_norm) * logit_mult)
 * Matrix products go through kernels/matmul, split over the context's threads by rows; an
 * optional observer sees each product's input first (qr_imatrix_compute collects with it). */
#include "kernels/attn_quant.h"
#include "kernels/kernels.h"
#include "kernels/matmul.h"
#include "runtime/context.h"
#include "tensor/tensor.h"

#include <math.h>
#include <stdio.h>

/* ---- debug hook ---- */

static void dump(const qr_context *ctx, const char *name, int layer, const float *data, int64_t ne0, int32_t n) {
    if (!ctx->params.debug_fn) return;
    char full[64];
    if (layer >= 0) {
        /* "Qcur-3.rope": the layer goes before any ".suffix" */
        const char *dot = strchr(name, '.');
        int base = dot ? (int)(dot - name) : (int)strlen(name);
        snprintf(full, sizeof full, "%.*s-%d%s", base, name, layer, dot ? dot : "");
    } else {
        snprintf(full, sizeof full, "%s", name);
    }
    ctx->params.debug_fn(full, data, ne0, n, ctx->params.debug_user);
}

/* ---- parallel matrix product ---- */

/* Several products run as one parallel task, so the threads meet once instead of once per
 * product (a decode step is ~200 products of a few microseconds each, where each meeting
 * costs a good part of one): those of one input (q, k, v; gate, up: the input converted
 * once), and a mixture's expert products, each on its own tokens. */
#define MAX_ITEMS 64

/* one product of a task: y[n][w.n_rows] = act[n] w^T, act already converted (rows act_stride
 * bytes apart) */
typedef struct matmul_item {
    const qr_weight *w;
    const void *act;
    size_t act_stride;
    int32_t n_tokens;
    float *y;
} matmul_item;

typedef struct matmul_task {
    int n_items;
    matmul_item it[MAX_ITEMS];
    int64_t chunk_rows[MAX_ITEMS];
    int64_t first_chunk[MAX_ITEMS + 1]; /* chunks of item i: [first_chunk[i], first_chunk[i+1]) */
} matmul_task;

static void matmul_worker(void *arg, int64_t chunk, int ith) {
    (void)ith;
    const matmul_task *t = arg;
    int i = 0;
    while (chunk >= t->first_chunk[i + 1])
        i++;
    const matmul_item *it = &t->it[i];
    const qr_weight *w = it->w;
    const int64_t rows = w->n_rows, r0 = (chunk - t->first_chunk[i]) * t->chunk_rows[i];
    const int64_t r1 = r0 + t->chunk_rows[i] < rows ? r0 + t->chunk_rows[i] : rows;
    qr_matmul_rows(w->type, w->data, w->packed, w->row_bytes, w->n_cols, it->act, it->act_stride,
                   it->n_tokens, it->y, rows, r0, r1);
}

/* the items, MAX_ITEMS at a time, each a parallel task split by rows */
static void run_items(qr_context *ctx, const matmul_item *items, int count) {
    for (int b = 0; b < count; b += MAX_ITEMS) {
        matmul_task t;
        t.n_items = count - b < MAX_ITEMS ? count - b : MAX_ITEMS;
        int64_t task_macs = 0;
        for (int i = 0; i < t.n_items; i++)
            task_macs += items[b + i].w->n_rows * items[b + i].w->n_cols * items[b + i].n_tokens;
        t.first_chunk[0] = 0;
        for (int i = 0; i < t.n_items; i++) {
            const matmul_item *it = &items[b + i];
            t.it[i] = *it;
            t.chunk_rows[i] = qr_matmul_chunk_rows(it->w->n_rows, it->w->n_cols, it->n_tokens,
                                                   qr_pool_size(ctx->pool), task_macs);
            t.first_chunk[i + 1] =
                t.first_chunk[i] + (it->w->n_rows + t.chunk_rows[i] - 1) / t.chunk_rows[i];
        }
        qr_pool_run(ctx->pool, matmul_worker, &t, t.first_chunk[t.n_items]);
    }
}

typedef struct convert_task {
    const qr_weight *w;
    const float *x;
    int32_t n_tokens, per_chunk;
    void *out;
    size_t stride;
} convert_task;

static void convert_worker(void *arg, int64_t chunk, int ith) {
    (void)ith;
    const convert_task *c = arg;
    const int64_t t0 = chunk * c->per_chunk;
    const int64_t nt = c->n_tokens - t0 < c->per_chunk ? c->n_tokens - t0 : c->per_chunk;
    qr_act_convert(c->w->type, c->x + t0 * c->w->n_cols, c->w->n_cols, nt,
                   (char *)c->out + (size_t)t0 * c->stride);
}

/* x converted to w's activation format in ctx->act_q (a prompt's rows split over the threads);
 * returns the row stride */
static size_t convert_into(qr_context *ctx, const qr_weight *w, const float *x, int32_t n,
                           void *out) {
    const int nth = qr_pool_size(ctx->pool);
    if (nth == 1 || n < 16) return qr_act_convert(w->type, x, w->n_cols, n, out);
    convert_task c = {.w = w,
                      .x = x,
                      .n_tokens = n,
                      .out = out,
                      .stride = qr_act_bytes(w->type, w->n_cols, 1)};
    c.per_chunk = (n + 2 * nth - 1) / (2 * nth);
    qr_pool_run(ctx->pool, convert_worker, &c, (n + c.per_chunk - 1) / c.per_chunk);
    return c.stride;
}
static size_t convert(qr_context *ctx, const qr_weight *w, const float *x, int32_t n) {
    return convert_into(ctx, w, x, n, ctx->act_q);
}

/* y[i][n][w[i].n_rows] = x[n][n_cols] w[i]^T for i < count; small products stay on this thread */
static void products(qr_context *ctx, const qr_weight *const *w, float *const *y, int count,
                     const float *x, int32_t n) {
    const int vdt = qr_type_traits_get(w[0]->type)->vec_dot_type;
    for (int i = 1; i < count; i++)
        if (qr_type_traits_get(w[i]->type)->vec_dot_type != vdt) { /* inputs differ: one by one */
            for (int k = 0; k < count; k++)
                products(ctx, &w[k], &y[k], 1, x, n);
            return;
        }
    const size_t stride = convert(ctx, w[0], x, n);
    matmul_item items[MAX_ITEMS];
    for (int i = 0; i < count; i++)
        items[i] = (matmul_item){w[i], ctx->act_q, stride, n, y[i]};
    run_items(ctx, items, count);
}

/* ---- LoRA adapters ---- */

/* The first entry of weight w in the context's sorted table, or NULL */
static const qr_lora_entry *lora_find(const qr_context *ctx, const qr_weight *w) {
    int64_t lo = 0, hi = ctx->n_lora_entries;
    while (lo < hi) {
        const int64_t mid = (lo + hi) / 2;
        if ((uintptr_t)ctx->lora_entries[mid].w < (uintptr_t)w)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < ctx->n_lora_entries && ctx->lora_entries[lo].w == w ? &ctx->lora_entries[lo]
                                                                     : NULL;
}

/* B t for n tokens: out[t] = sum_j t[t][j] B^T[j] over B's rows of the view (row0 ..), the
 * columns multiply-added in j order, each token alone (batch invariance); an F16 B's input
 * rounded to f16 first, as ggml's mul_mat converts it. Chunk c: token c. */
typedef struct lora_b_task {
    const qr_lora_pair *p;
    const qr_weight *w;
    float *t; /* n rows of rank */
    float *out; /* n rows of w->n_rows */
} lora_b_task;

static void lora_b_worker(void *arg, int64_t tok, int ith) {
    (void)ith;
    const lora_b_task *bt = arg;
    const qr_lora_pair *p = bt->p;
    const int64_t n_out = bt->w->n_rows, total = p->b.n_rows, r = p->rank;
    const qr_kernels *kn = qr_kernels_best();
    float *t = bt->t + tok * r, *out = bt->out + tok * n_out;
    memset(out, 0, (size_t)n_out * sizeof *out);
    if (p->b.type == QR_TYPE_F16) {
        kn->round_f16(t, r);
        kn->axpy_f16_heads(n_out, 1, t, 0, (const uint16_t *)p->bt + bt->w->row0, total, r, out);
    } else {
        kn->axpy_f32(n_out, t, (const float *)p->bt + bt->w->row0, total, r, out);
    }
}

/* y += s * B (A x) for each attached adapter's pair of w, as llama.cpp's build_lora_mm: A x
 * through the kernels (an F16 A's input rounded to f16 as ggml's mul_mat does), B times that
 * (lora_b_worker), scaled by s = scale * alpha / rank (scale alone when alpha is 0), then
 * added; each adapter in turn. s is the token's sequence's scale (0: skipped), so a batch may
 * mix scales. QR_LORA_CHUNK tokens at a time: a token's sums are the same whatever the batch. */
static void lora_apply(qr_context *ctx, const qr_weight *w, const float *x, int32_t n, float *y) {
    const qr_lora_entry *e = lora_find(ctx, w);
    for (; e && e < ctx->lora_entries + ctx->n_lora_entries && e->w == w; e++) {
        const qr_lora_pair *p = e->pair;
        const qr_lora *lo = ctx->lora[e->slot];
        const int64_t n_in = w->n_cols, n_out = w->n_rows;
        for (int32_t t0 = 0; t0 < n; t0 += QR_LORA_CHUNK) {
            const int32_t nt = n - t0 < QR_LORA_CHUNK ? n - t0 : QR_LORA_CHUNK;
            bool any = false;
            for (int32_t t = 0; t < nt && !any; t++)
                any = ctx->lora_scale[ctx->cur_seq[t0 + t] * ctx->n_lora + e->slot] != 0.0f;
            if (!any) continue;
            const size_t stride = qr_act_convert(p->a.type, x + t0 * n_in, n_in, nt, ctx->lora_act);
            run_items(ctx, &(matmul_item){&p->a, ctx->lora_act, stride, nt, ctx->lora_t}, 1);
            lora_b_task bt = {.p = p, .w = w, .t = ctx->lora_t, .out = ctx->lora_y};
            /* one token is too little to share (a few thousand multiply-adds) */
            if (nt == 1)
                lora_b_worker(&bt, 0, 0);
            else
                qr_pool_run(ctx->pool, lora_b_worker, &bt, nt);
            for (int32_t t = 0; t < nt; t++) {
                const float scale = ctx->lora_scale[ctx->cur_seq[t0 + t] * ctx->n_lora + e->slot];
                if (scale == 0.0f) continue;
                const float s = lo->alpha != 0.0f ? scale * lo->alpha / (float)p->rank : scale;
                float *yt = y + (int64_t)(t0 + t) * n_out;
                const float *ab = ctx->lora_y + (int64_t)t * n_out;
                for (int64_t o = 0; o < n_out; o++)
                    yt[o] = yt[o] + ab[o] * s;
            }
        }
    }
}

/* The observer (qr_context_params.matmul_observer) sees each weight's input once: the views
 * of one fused tensor (phi3's q, k, v of attn_qkv) are one product in llama.cpp's graph.
 * Attached adapters then add their corrections. */
static void matmul_n(qr_context *ctx, const qr_weight *const *w, float *const *y, int count,
                     const float *x, int32_t n) {
    if (ctx->params.matmul_observer)
        for (int i = 0; i < count; i++)
            if (i == 0 || w[i]->name != w[i - 1]->name)
                ctx->params.matmul_observer(w[i]->name, -1, 0, x, w[i]->n_cols, n,
                                            ctx->params.matmul_user);
    products(ctx, w, y, count, x, n);
    if (ctx->n_lora_entries)
        for (int i = 0; i < count; i++)
            lora_apply(ctx, w[i], x, n, y[i]);
}

static void matmul(qr_context *ctx, const qr_weight *w, const float *x, int32_t n, float *y) {
    matmul_n(ctx, &w, &y, 1, x, n);
}

static void add_bias(const qr_weight *b, float *y, int64_t dim, int32_t n) {
    if (!b->data) return;
    const float *bias = b->data;
    for (int32_t t = 0; t < n; t++)
        for (int64_t i = 0; i < dim; i++) y[t * dim + i] += bias[i];
}

/* ---- elementwise ops ---- */

/* out = x / sqrt(mean(x^2) + eps) * weight, as ggml_rms_norm followed by ggml_mul */
static void rmsnorm(float *out, const float *x, const qr_weight *weight, int64_t dim, float eps, int32_t n) {
    const float *w = weight->data;
    for (int32_t t = 0; t < n; t++) {
        const float *xt = x + t * dim;
        double sum = 0.0; /* ggml sums in ggml_float (double) */
        for (int64_t i = 0; i < dim; i++) sum += (double)(xt[i] * xt[i]);
        float mean = (float)(sum / (double)dim);
        float scale = 1.0f / sqrtf(mean + eps);
        for (int64_t i = 0; i < dim; i++) out[t * dim + i] = (xt[i] * scale) * w[i];
    }
}

/* x[i] *= scale over n values (ggml_scale); scale 1 leaves x as it is */
static void scale(float *x, int64_t n, float by) {
    if (by == 1.0f) return;
    for (int64_t i = 0; i < n; i++) x[i] *= by;
}

/* x += y * by over n values: a residual add of a branch scaled by `by` (granite) */
static void add_scaled(float *x, const float *y, int64_t n, float by) {
    if (by == 1.0f)
        for (int64_t i = 0; i < n; i++) x[i] += y[i];
    else
        for (int64_t i = 0; i < n; i++) x[i] += y[i] * by;
}

/* g = gelu(g) * u (GeGLU) as ggml_vec_geglu_f32 with GGML_GELU_FP16: the gate rounded to f16
 * (the kernels' vector conversion, a chunk at a time) and looked up in the model's GELU table,
 * saturated outside [-10, 10] */
static void gelu_mul(const float *table, float *g, const float *u, int64_t n) {
    uint16_t h[256];
    for (int64_t i0 = 0; i0 < n; i0 += 256) {
        const int64_t len = n - i0 < 256 ? n - i0 : 256;
        qr_kernels_best()->to_f16(g + i0, h, len);
        for (int64_t j = 0; j < len; j++) {
            const float x = g[i0 + j];
            g[i0 + j] = x <= -10.0f ? 0.0f : x >= 10.0f ? x * u[i0 + j] : table[h[j]] * u[i0 + j];
        }
    }
}

/* x = tanh(x / cap) * cap over n values (soft-capping, as llama.cpp's scale-tanh-scale) */
static void softcap(float *x, int64_t n, float cap) {
    const float inv = 1.0f / cap;
    for (int64_t i = 0; i < n; i++) x[i] = tanhf(x[i] * inv) * cap;
}

/* ---- KV cache ---- */

/* The cache of a layer is head-major within each sequence: head h's row for position p of
 * sequence s is row (s * n_head_kv + h) * n_ctx_seq + p, head_dim values. A KV head's rows are
 * then one contiguous run that attention streams through; with the heads of a position side
 * by side, each head's pass read a third of every row span and the hardware prefetchers
 * fetched the rest (smol135: attention took 3x its bytes' time). */
static int64_t kv_row(const qr_context *ctx, int32_t seq, int32_t h, int32_t pos) {
    return ((int64_t)seq * ctx->model->hp.n_head_kv + h) * ctx->n_ctx_seq + pos;
}

/* a head's row as the cache type stores it: f32 copied, f16 rounded, the other types quantized
 * as llama.cpp's set_rows does (its CPU from_float: attn_quant.h), after the rotation by rot
 * values if the cache has one (context.h); src is rotated in place */
static void kv_store(qr_context *ctx, void *cache, int type, size_t row_bytes, int32_t rot,
                     int32_t seq, int32_t pos, float *src) {
    const int64_t hd = ctx->model->hp.head_dim;
    for (int32_t h = 0; h < ctx->model->hp.n_head_kv; h++) {
        char *row = (char *)cache + kv_row(ctx, seq, h, pos) * (int64_t)row_bytes;
        if (rot) qr_attn_kernels_best()->fwht(src + h * hd, hd, rot);
        if (type == QR_TYPE_F32)
            memcpy(row, src + h * hd, (size_t)hd * sizeof(float));
        else if (type == QR_TYPE_F16)
            qr_kernels_best()->to_f16(src + h * hd, (uint16_t *)row, hd);
        else
            qr_attn_kernels_best()->from_float[type](src + h * hd, row, hd);
    }
}

/* Move positions [from, from + n) of a sequence to [from + delta, ...) in every layer's K and
 * V rows (memmove: the ranges may overlap), then turn the moved keys of each RoPE layer by
 * delta positions. The re-rotation is llama.cpp's k-shift (llama_kv_cache::build_rope_shift):
 * the cached, already rotated key is roped again with the position delta and the layer's own
 * RoPE (base, scale, factors, YaRN magnitude and all), in f32; an F16 cache rounds the result
 * to f16 again (ggml's rope on an f16 tensor), a quantized one is dequantized, turned back from
 * the Walsh-Hadamard rotation (k_rot: the matrix is its own inverse), roped, rotated again and
 * quantized as a stored key is (ggml_cast to f32, the rotations, ggml_rope_ext, ggml_cpy). A
 * bf16 cache goes the quantized way without the rotation (llama.cpp's CPU rope has no bf16). */
/* the values of a key that llama.cpp's k-shift writes back: its view holds the first n_rot of
 * each head (a partial RoPE leaves the rest as they were), whole blocks of the type and of
 * the rotation; otherwise the whole row */
static int64_t roped_values(const qr_context *ctx, int swa) {
    const int64_t hd = ctx->model->hp.head_dim, n_rot = ctx->rope[swa].n_rot;
    const int64_t bs = qr_type_traits_get(ctx->k_type)->block_size;
    if (n_rot % bs == 0 && (ctx->k_rot == 0 || n_rot % ctx->k_rot == 0)) return n_rot;
    return hd;
}

void qr_kv_move(qr_context *ctx, int32_t seq, int32_t from, int32_t n, int32_t delta) {
    const qr_hparams *hp = &ctx->model->hp;
    const qr_attn_kernels *ak = qr_attn_kernels_best();
    const int64_t hd = hp->head_dim;
    const int kt = ctx->k_type;
    const size_t kb = ctx->k_row_bytes, vb = ctx->v_row_bytes;
    float cache[2][512]; /* the turn by delta for the two kinds of layer (n_rot <= 512) */
    qr_rope_cache(&ctx->rope[0], delta, cache[0]);
    qr_rope_cache(&ctx->rope[1], delta, cache[1]);
    float row[512]; /* head_dim <= 512 (load.c) */
    for (int32_t l = 0; l < hp->n_layer; l++) {
        const qr_layer *L = &ctx->model->layers[l];
        for (int32_t h = 0; h < hp->n_head_kv; h++) {
            const int64_t src = kv_row(ctx, seq, h, from), dst = src + delta;
            memmove((char *)ctx->k_cache[l] + dst * (int64_t)kb,
                    (char *)ctx->k_cache[l] + src * (int64_t)kb, (size_t)n * kb);
            memmove((char *)ctx->v_cache[l] + dst * (int64_t)vb,
                    (char *)ctx->v_cache[l] + src * (int64_t)vb, (size_t)n * vb);
            if (!L->rope || delta == 0) continue;
            for (int32_t p = 0; p < n; p++) {
                void *k = (char *)ctx->k_cache[l] + (dst + p) * (int64_t)kb;
                if (kt == QR_TYPE_F32) {
                    qr_rope_apply(&ctx->rope[L->swa], cache[L->swa], k, 1, (int32_t)hd);
                } else if (kt == QR_TYPE_F16) {
                    for (int64_t i = 0; i < hd; i++)
                        row[i] = qr_fp16_to_fp32(((uint16_t *)k)[i]);
                    qr_rope_apply(&ctx->rope[L->swa], cache[L->swa], row, 1, (int32_t)hd);
                    for (int64_t i = 0; i < hd; i++)
                        ((uint16_t *)k)[i] = qr_fp32_to_fp16(row[i]);
                } else {
                    ak->to_float[kt](k, row, hd);
                    if (ctx->k_rot) ak->fwht(row, hd, ctx->k_rot);
                    qr_rope_apply(&ctx->rope[L->swa], cache[L->swa], row, 1, (int32_t)hd);
                    if (ctx->k_rot) ak->fwht(row, hd, ctx->k_rot);
                    ak->from_float[kt](row, k, roped_values(ctx, L->swa));
                }
            }
        }
    }
}

/* With an F16 cache llama.cpp's products K.q and V.p convert q and p to f16 first. */
static inline void kv_round(int type, float *x, int64_t n) {
    if (type == QR_TYPE_F16) qr_kernels_best()->round_f16(x, n);
}

/* ---- attention ---- */

typedef struct attn_task {
    qr_context *ctx;
    int layer;
    const int32_t *pos, *seq;
    int32_t n_tokens;
    int split;         /* pieces each group of query heads is cut into (1 or its size) */
    int64_t per_chunk; /* (token, piece) pairs per chunk */
} attn_task;

/* One token and ng of the query heads that share KV head kv_h, from its h_first-th (grouped-
 * query attention), as llama.cpp without flash attention (its graph's mul_mat(k, q), soft_max,
 * mul_mat(v, kq); V f16 or f32, K any type: a quantized one after the query's rotation and
 * conversion to its dot partner, as in attend_flash):
 * softmax(q.K / sqrt(hd) + causal mask) . V over the cells of its sequence,
 * each cache row read once for all of them; a layer with attention sinks has one more logit
 * per head in that softmax (ggml_soft_max_add_sinks). scratch: scores_per_thread floats. */
static void attend(qr_context *ctx, int layer, int32_t t, int32_t kv_h, int h_first, int ng,
                   int32_t pos, int32_t seq, float *scratch) {
    const qr_hparams *hp = &ctx->model->hp;
    const qr_kernels *kn = qr_kernels_best();
    const int64_t hd = hp->head_dim, S = ctx->n_ctx_seq;
    const int64_t q0 = (int64_t)t * hp->n_head * hd +
                       ((int64_t)kv_h * (hp->n_head / hp->n_head_kv) + h_first) * hd;
    float *out = ctx->att_out + q0, *qr = scratch, *scores = scratch + ng * hd;
    const void *kc = ctx->k_cache[layer], *vc = ctx->v_cache[layer];
    /* a windowed layer's query at pos sees pos - n_swa + 1 ... pos */
    const int32_t window = ctx->model->layers[layer].swa ? hp->n_swa : 0;
    const int32_t first = window > 0 && pos >= window ? pos - window + 1 : 0;
    const int64_t rows = pos - first + 1, off = kv_row(ctx, seq, kv_h, first) * hd;
    const bool k16 = ctx->k_type == QR_TYPE_F16, v16 = ctx->v_type == QR_TYPE_F16;

    memcpy(qr, ctx->q + q0, (size_t)(ng * hd) * sizeof *qr);
    kv_round(ctx->k_type, qr, ng * hd);
    if (k16) {
        kn->dot_f16_heads(hd, ng, qr, (const uint16_t *)kc + off, hd, rows, scores + first, S);
    } else if (ctx->k_type == QR_TYPE_F32) {
        for (int h = 0; h < ng; h++)
            kn->dot_f32(hd, qr + h * hd, (const float *)kc + off, hd, rows, scores + h * S + first);
    } else { /* a quantized or bf16 K (flash attention off): llama.cpp's mul_mat(k, q) */
        const qr_attn_kernels *ak = qr_attn_kernels_best();
        if (ctx->k_rot) ak->fwht(qr, ng * hd, ctx->k_rot);
        const int partner = qr_type_traits_get(ctx->k_type)->vec_dot_type;
        const qr_type_traits *pt = qr_type_traits_get(partner);
        const size_t q_bytes = (size_t)(hd / pt->block_size) * pt->block_bytes;
        char *qc = (char *)(scores + ng * S);
        for (int h = 0; h < ng; h++)
            ak->from_float[partner](qr + h * hd, qc + h * q_bytes, hd);
        ak->dot[ctx->k_type](hd, ng, qc, q_bytes,
                             (const char *)kc + off / hd * (int64_t)ctx->k_row_bytes,
                             ctx->k_row_bytes, rows, scores + first, S);
    }
    /* gpt-oss's sinks: one more logit per query head, in the max and the sum, with no value */
    const float *sinks = ctx->model->layers[layer].attn_sinks.data;
    const int h0 = kv_h * (hp->n_head / hp->n_head_kv) + h_first; /* the first query head */
    for (int h = 0; h < ng; h++) {
        if (hp->attn_softcap > 0.0f) softcap(scores + h * S + first, rows, hp->attn_softcap);
        kn->softmax(scores + h * S + first, rows, hp->kq_scale, sinks ? sinks[h0 + h] : -INFINITY);
        kv_round(ctx->v_type, scores + h * S + first, rows);
    }
    memset(out, 0, (size_t)(ng * hd) * sizeof *out);
    if (v16)
        kn->axpy_f16_heads(hd, ng, scores + first, S, (const uint16_t *)vc + off, hd, rows, out);
    else
        for (int h = 0; h < ng; h++)
            kn->axpy_f32(hd, scores + h * S + first, (const float *)vc + off, hd, rows, out + h * hd);
}

/* ---- attention with llama.cpp's flash-attention arithmetic ---- */

/* rows per tile of attend_flash (forward.c and context.c size its scratch) */
#define FLASH_TILE QR_FLASH_TILE

/* attend() for a cache with a type other than f16 or f32 on K or V, as llama.cpp's CPU flash
 * attention (ggml_compute_forward_flash_attn_ext_f16_one_chunk), which llama.cpp needs for a
 * quantized V: each query converted to the K type's dot partner (vec_dot_type: q8_0, q8_1,
 * bf16; f16 and f32 for those K types); per cache row in order, s = (K row . q) * scale, or
 * softcap * tanh(s) with scale / softcap where the model caps; an online softmax: on a new
 * maximum M the accumulator and the sum are scaled by exp(M_old - M) (the row's weight is 1),
 * else the row's weight is exp(s - M); V added with that weight into an f32 accumulator (a
 * quantized or bf16 row through to_float), or an f16 one (each sum rounded) for an f16 V; the
 * sink logit (if any) joins last; out = accumulator * (1 / sum).
 * Flash-decoding: the visible rows are cut into ranges of QR_FLASH_RANGE from the first, each
 * range summed as above on its own (flash_range: its maximum, sum and accumulator), the ranges
 * then merged in order as ggml's ggml_flash_attn_ext_reduce_partials merges its KV chunks
 * (flash_fold); one range gives the unsplit arithmetic exactly. The ranges are fixed, so a
 * position's logits do not depend on the threads or the batch; attention() runs one token's
 * ranges on several threads. */

/* the running merge of a group's ranges: per head its maximum and sum (2 * ng floats at ms),
 * the accumulators at acc (ng * hd) */
static void flash_begin(int ng, int64_t hd, float *ms, float *acc) {
    for (int h = 0; h < ng; h++) {
        ms[h] = -INFINITY;
        ms[ng + h] = 0.0f;
    }
    memset(acc, 0, (size_t)(ng * hd) * sizeof *acc);
}

/* one range's partial result (part: ng maxima, ng sums, ng * hd accumulators) into the merge:
 * M = max(M, m), acc = acc * exp(M_old - M) + acc_r * exp(m - M), likewise the sum */
static void flash_fold(int ng, int64_t hd, float *ms, float *acc, const float *part) {
    for (int h = 0; h < ng; h++) {
        const float m = part[h], m_new = ms[h] > m ? ms[h] : m;
        const float so = expf(ms[h] - m_new), sn = expf(m - m_new);
        const float *a = part + 2 * ng + h * hd;
        float *o = acc + h * hd;
        for (int64_t i = 0; i < hd; i++)
            o[i] = o[i] * so + a[i] * sn;
        ms[ng + h] = ms[ng + h] * so + part[ng + h] * sn;
        ms[h] = m_new;
    }
}

/* the merged accumulators into the output: the sink logit, 1 / sum, back from the V rotation */
static void flash_finish(qr_context *ctx, int layer, int h0, int ng, float *ms, float *out) {
    const qr_attn_kernels *ak = qr_attn_kernels_best();
    const int64_t hd = ctx->model->hp.head_dim;
    const float *sinks = ctx->model->layers[layer].attn_sinks.data;
    for (int h = 0; h < ng; h++) {
        float *o = out + h * hd, *max = ms + h, *sum = ms + ng + h;
        if (sinks) { /* gpt-oss: one more logit with no value */
            const float s = sinks[h0 + h];
            float mscale = 1.0f, vs = 1.0f;
            if (s > *max) {
                mscale = expf(*max - s);
                *max = s;
                ak->scale_f32(hd, o, mscale);
            } else {
                vs = expf(s - *max);
            }
            *sum = *sum * mscale + vs;
        }
        ak->scale_f32(hd, o, *sum == 0.0f ? 0.0f : 1.0f / *sum);
        if (ctx->v_rot) ak->fwht(o, hd, ctx->v_rot); /* back from the rotated values */
    }
}

/* the visible cells of a query at pos: the first and how many */
static int64_t visible_rows(const qr_context *ctx, int layer, int32_t pos, int32_t *first) {
    /* a windowed layer's query at pos sees pos - n_swa + 1 ... pos */
    const int32_t window = ctx->model->layers[layer].swa ? ctx->model->hp.n_swa : 0;
    *first = window > 0 && pos >= window ? pos - window + 1 : 0;
    return pos - *first + 1;
}

/* rows [r0, r1) of the visible ones of one token and ng query heads from the h_first-th of KV
 * head kv_h: part = their maxima, sums and accumulators (2 * ng + ng * hd floats). scratch:
 * scores_per_thread. */
static void flash_range(qr_context *ctx, int layer, int32_t t, int32_t kv_h, int h_first, int ng,
                        int32_t pos, int32_t seq, int64_t r0, int64_t r1, float *scratch,
                        float *part) {
    const qr_hparams *hp = &ctx->model->hp;
    const qr_kernels *kn = qr_kernels_best();
    const qr_attn_kernels *ak = qr_attn_kernels_best();
    const int64_t hd = hp->head_dim, S = ctx->n_ctx_seq;
    const int h0 = kv_h * (hp->n_head / hp->n_head_kv) + h_first; /* the first query head */
    const float *q = ctx->q + (int64_t)t * hp->n_head * hd + (int64_t)h0 * hd;
    float *scores = scratch;
    char *qc = (char *)(scratch + ng * S);      /* the converted queries: ng * hd * 4 bytes */
    /* the f16 accumulators (ng * hd halves in ng * hd floats), a tile's row weights and
     * rescales */
    uint16_t *acc16 = (uint16_t *)(scratch + ng * S + ng * hd);
    float *max = part, *sum = part + ng, *acc = part + 2 * ng;
    float *w = scratch + ng * S + 2 * ng * hd + 2 * ng, *w_max = w + ng * FLASH_TILE;
    int32_t first;
    visible_rows(ctx, layer, pos, &first);
    const int64_t rows = r1 - r0, row0 = kv_row(ctx, seq, kv_h, first) + r0;
    const char *kc = (const char *)ctx->k_cache[layer] + row0 * (int64_t)ctx->k_row_bytes;
    const char *vc = (const char *)ctx->v_cache[layer] + row0 * (int64_t)ctx->v_row_bytes;

    if (ctx->k_rot) { /* the queries rotated as the keys were (in acc16, free until the V pass) */
        float *qr = (float *)acc16;
        memcpy(qr, q, (size_t)(ng * hd) * sizeof *qr);
        ak->fwht(qr, ng * hd, ctx->k_rot);
        q = qr;
    }
    if (ctx->k_type == QR_TYPE_F32) {
        for (int h = 0; h < ng; h++)
            kn->dot_f32(hd, q + h * hd, (const float *)kc, hd, rows, scores + h * S);
    } else if (ctx->k_type == QR_TYPE_F16) {
        float *qr = (float *)qc;
        memcpy(qr, q, (size_t)(ng * hd) * sizeof *qr);
        kn->round_f16(qr, ng * hd);
        kn->dot_f16_heads(hd, ng, qr, (const uint16_t *)kc, hd, rows, scores, S);
    } else {
        const int partner = qr_type_traits_get(ctx->k_type)->vec_dot_type;
        const qr_type_traits *pt = qr_type_traits_get(partner);
        const size_t q_bytes = (size_t)(hd / pt->block_size) * pt->block_bytes;
        for (int h = 0; h < ng; h++)
            ak->from_float[partner](q + h * hd, qc + h * q_bytes, hd);
        ak->dot[ctx->k_type](hd, ng, qc, q_bytes, kc, ctx->k_row_bytes, rows, scores, S);
    }
    const float cap = hp->attn_softcap;
    const float scale = cap > 0.0f ? hp->kq_scale / cap : hp->kq_scale;
    for (int h = 0; h < ng; h++) {
        float *sh = scores + h * S;
        for (int64_t r = 0; r < rows; r++)
            sh[r] *= scale;
        if (cap > 0.0f)
            for (int64_t r = 0; r < rows; r++)
                sh[r] = cap * tanhf(sh[r]);
        max[h] = -INFINITY;
        sum[h] = 0.0f;
    }
    const bool v16 = ctx->v_type == QR_TYPE_F16;
    if (v16)
        memset(acc16, 0, (size_t)(ng * hd) * sizeof *acc16);
    else
        memset(acc, 0, (size_t)(ng * hd) * sizeof *acc);
    if (v16) { /* row by row into the f16 accumulators */
        for (int64_t r = 0; r < rows; r++) {
            const uint16_t *vr = (const uint16_t *)(vc + r * (int64_t)ctx->v_row_bytes);
            for (int h = 0; h < ng; h++) {
                const float s = scores[h * S + r];
                float ms = 1.0f, vs = 1.0f;
                if (s > max[h]) { /* a new maximum: what was summed shrinks by exp(M_old - M) */
                    const float m_old = max[h];
                    max[h] = s;
                    ms = expf(m_old - s);
                    ak->scale_f16(hd, acc16 + h * hd, ms);
                } else {
                    vs = expf(s - max[h]);
                }
                ak->mad_f16(hd, acc16 + h * hd, vr, vs);
                sum[h] = sum[h] * ms + vs;
            }
        }
        for (int h = 0; h < ng; h++)
            qr_dequant_f16(acc16 + h * hd, acc + h * hd, hd);
    } else { /* tiles of rows: each row's weights first, then the rows added in order */
        for (int64_t t0 = 0; t0 < rows; t0 += FLASH_TILE) {
            const int64_t t1 = rows - t0 < FLASH_TILE ? rows : t0 + FLASH_TILE;
            bool rescaled = false;
            /* rows outer: the heads' sums are independent chains the CPU overlaps */
            for (int64_t r = t0; r < t1; r++)
                for (int h = 0; h < ng; h++) {
                    const float s = scores[h * S + r];
                    float ms = 1.0f, vs = 1.0f;
                    if (s > max[h]) { /* a new maximum: the sum so far shrinks by exp(M_old - M) */
                        ms = expf(max[h] - s);
                        max[h] = s;
                        rescaled = true;
                    } else {
                        vs = expf(s - max[h]);
                    }
                    w[h * FLASH_TILE + r - t0] = vs;
                    w_max[h * FLASH_TILE + r - t0] = ms;
                    sum[h] = sum[h] * ms + vs;
                }
            ak->v_mad_rows[ctx->v_type](hd, ng, vc + t0 * (int64_t)ctx->v_row_bytes,
                                        ctx->v_row_bytes, t1 - t0, w, rescaled ? w_max : NULL,
                                        FLASH_TILE, acc, hd);
        }
    }
}

/* all ranges of one token and ng query heads on this thread, merged into the output */
static void attend_flash(qr_context *ctx, int layer, int32_t t, int32_t kv_h, int h_first, int ng,
                         int32_t pos, int32_t seq, float *scratch) {
    const qr_hparams *hp = &ctx->model->hp;
    const int64_t hd = hp->head_dim;
    const int h0 = kv_h * (hp->n_head / hp->n_head_kv) + h_first;
    float *out = ctx->att_out + (int64_t)t * hp->n_head * hd + (int64_t)h0 * hd;
    /* after flash_range's scratch: one range's partial result, then the merged maxima, sums */
    float *part = scratch + ng * ctx->n_ctx_seq + 2 * ng * hd + 2 * ng + 2 * ng * FLASH_TILE;
    float *ms = part + 2 * ng + ng * hd;
    int32_t first;
    const int64_t rows = visible_rows(ctx, layer, pos, &first);
    flash_begin(ng, hd, ms, out);
    for (int64_t r0 = 0; r0 < rows; r0 += QR_FLASH_RANGE) {
        const int64_t r1 = rows - r0 < QR_FLASH_RANGE ? rows : r0 + QR_FLASH_RANGE;
        flash_range(ctx, layer, t, kv_h, h_first, ng, pos, seq, r0, r1, scratch, part);
        flash_fold(ng, hd, ms, out, part);
    }
    flash_finish(ctx, layer, h0, ng, ms, out);
}

/* one token's ranges over the threads: (token, KV head, range) units write their partial
 * results to ctx->flash_parts, then (token, KV head) units merge them in order, as
 * attend_flash does on one thread */
typedef struct flash_task {
    qr_context *ctx;
    int layer;
    const int32_t *pos, *seq;
    int64_t n_ranges; /* per (token, KV head): the most of any token */
} flash_task;

static float *flash_part(const flash_task *f, int64_t unit) {
    const qr_hparams *hp = &f->ctx->model->hp;
    const int ng = hp->n_head / hp->n_head_kv;
    return f->ctx->flash_parts + unit * (int64_t)ng * (hp->head_dim + 2);
}

static void flash_range_worker(void *arg, int64_t unit, int ith) {
    const flash_task *f = arg;
    const qr_hparams *hp = &f->ctx->model->hp;
    const int32_t n_kv = hp->n_head_kv;
    const int32_t t = (int32_t)(unit / (n_kv * f->n_ranges));
    const int32_t kv_h = (int32_t)(unit / f->n_ranges % n_kv);
    const int64_t r0 = unit % f->n_ranges * QR_FLASH_RANGE;
    int32_t first;
    const int64_t rows = visible_rows(f->ctx, f->layer, f->pos[t], &first);
    if (r0 >= rows) return;
    const int64_t r1 = rows - r0 < QR_FLASH_RANGE ? rows : r0 + QR_FLASH_RANGE;
    float *scratch = f->ctx->scores + (int64_t)ith * f->ctx->scores_per_thread;
    flash_range(f->ctx, f->layer, t, kv_h, 0, hp->n_head / n_kv, f->pos[t], f->seq[t], r0, r1,
                scratch, flash_part(f, unit));
}

static void flash_merge_worker(void *arg, int64_t unit, int ith) {
    const flash_task *f = arg;
    qr_context *ctx = f->ctx;
    const qr_hparams *hp = &ctx->model->hp;
    const int ng = hp->n_head / hp->n_head_kv;
    const int64_t hd = hp->head_dim;
    const int32_t t = (int32_t)(unit / hp->n_head_kv), kv_h = (int32_t)(unit % hp->n_head_kv);
    float *out = ctx->att_out + (int64_t)t * hp->n_head * hd + (int64_t)kv_h * ng * hd;
    float *ms = ctx->scores + (int64_t)ith * ctx->scores_per_thread;
    int32_t first;
    const int64_t rows = visible_rows(ctx, f->layer, f->pos[t], &first);
    flash_begin(ng, hd, ms, out);
    for (int64_t r = 0; r * QR_FLASH_RANGE < rows; r++)
        flash_fold(ng, hd, ms, out, flash_part(f, unit * f->n_ranges + r));
    flash_finish(ctx, f->layer, kv_h * ng, ng, ms, out);
}

static void attn_worker(void *arg, int64_t chunk, int ith) {
    const attn_task *a = arg;
    const int32_t n_kv = a->ctx->model->hp.n_head_kv;
    const int ng = a->ctx->model->hp.n_head / n_kv / a->split;
    const int64_t units = (int64_t)n_kv * a->split; /* per token */
    const int64_t total = a->n_tokens * units;
    float *scratch = a->ctx->scores + (int64_t)ith * a->ctx->scores_per_thread;
    const int64_t j1 = (chunk + 1) * a->per_chunk < total ? (chunk + 1) * a->per_chunk : total;
    for (int64_t j = chunk * a->per_chunk; j < j1; j++) {
        const int32_t t = (int32_t)(j / units), u = (int32_t)(j % units);
        (a->ctx->flash ? attend_flash : attend)(a->ctx, a->layer, t, u / a->split,
                                                u % a->split * ng, ng, a->pos[t], a->seq[t],
                                                scratch);
    }
}

/* Runs attention for every token and KV head with the query heads that share it; short
 * contexts stay on this thread. When there are too few tokens to give every thread several
 * pieces (generation: one token), the heads of a group are split over the threads instead. */
static void attention(qr_context *ctx, int layer, const int32_t *pos, const int32_t *seq, int32_t n) {
    const qr_hparams *hp = &ctx->model->hp;
    int64_t span = 0; /* cells attended to, summed over tokens */
    for (int32_t t = 0; t < n; t++) span += pos[t] + 1;
    const int64_t macs = span * hp->n_head * hp->head_dim * 2;
    const int nth = qr_pool_size(ctx->pool);
    const bool parallel = nth > 1 && macs >= 128 * 1024;
    const bool few = parallel && (int64_t)n * hp->n_head_kv < 4 * nth;
    int32_t most = 0; /* the most cells a token sees */
    for (int32_t t = 0; t < n; t++) {
        int32_t first;
        const int64_t rows = visible_rows(ctx, layer, pos[t], &first);
        if (rows > most) most = (int32_t)rows;
    }
    if (few && ctx->flash && most > QR_FLASH_RANGE && n <= ctx->flash_parts_tokens) {
        /* flash-decoding: the ranges over the threads, each KV head's rows read once */
        flash_task f = {.ctx = ctx, .layer = layer, .pos = pos, .seq = seq,
                        .n_ranges = (most + QR_FLASH_RANGE - 1) / QR_FLASH_RANGE};
        qr_pool_run(ctx->pool, flash_range_worker, &f, (int64_t)n * hp->n_head_kv * f.n_ranges);
        qr_pool_run(ctx->pool, flash_merge_worker, &f, (int64_t)n * hp->n_head_kv);
        return;
    }
    attn_task at = {.ctx = ctx, .layer = layer, .pos = pos, .seq = seq, .n_tokens = n, .split = 1};
    if (few) at.split = hp->n_head / hp->n_head_kv;
    const int64_t total = (int64_t)n * hp->n_head_kv * at.split;
    at.per_chunk = parallel ? (total + 4 * nth - 1) / (4 * nth) : total;
    qr_pool_run(ctx->pool, attn_worker, &at, (total + at.per_chunk - 1) / at.per_chunk);
}

/* ---- feed-forward ---- */

/* gpt-oss's clamped SwiGLU, as ggml_swiglu_oai with llama.cpp's alpha 1.702 and limit 7: the
 * gate clamped from above only, the up clamped both ways and shifted by one */
static void swiglu_oai(float *g, const float *u, int64_t n) {
    const float alpha = 1.702f, limit = 7.0f;
    for (int64_t i = 0; i < n; i++) {
        const float x = fminf(g[i], limit);
        const float y = fminf(fmaxf(u[i], -limit), limit);
        g[i] = x / (1.0f + expf(alpha * -x)) * (y + 1.0f);
    }
}

/* g = act(g) * u over n_rows rows of n values: SwiGLU, GeGLU or the clamped SwiGLU, as the
 * architecture says. Row by row: the SIMD kernels take a row's last n % 8 values through libm,
 * so a value must not land in that tail or not depending on the rows before it (batch
 * invariance, issue 22: stories260K's n_ff is 172). */
static void act_mul(const qr_model *m, float *g, const float *u, int64_t n_rows, int64_t n) {
    for (int64_t r = 0; r < n_rows; r++) {
        float *gr = g + r * n;
        const float *ur = u + r * n;
        if (m->arch->act == QR_ACT_GELU)
            gelu_mul(m->gelu, gr, ur, n);
        else if (m->arch->act == QR_ACT_SWIGLU_OAI)
            swiglu_oai(gr, ur, n);
        else
            qr_kernels_best()->silu_mul(gr, ur, n);
    }
}

/* out = Wdown (act(Wgate h + bg) * (Wup h + bu)) + bd for n tokens (out may be h) */
static void ffn_dense(qr_context *ctx, int l, const float *h, int32_t n, float *out) {
    const qr_model *m = ctx->model;
    const qr_layer *L = &m->layers[l];
    const int64_t ff = m->hp.n_ff;
    matmul_n(ctx, (const qr_weight *[]){&L->ffn_gate, &L->ffn_up}, (float *[]){ctx->hb, ctx->hb2},
             2, h, n);
    add_bias(&L->ffn_gate_b, ctx->hb, ff, n);
    add_bias(&L->ffn_up_b, ctx->hb2, ff, n);
    dump(ctx, "ffn_gate", l, ctx->hb, ff, n);
    dump(ctx, "ffn_up", l, ctx->hb2, ff, n);
    act_mul(m, ctx->hb, ctx->hb2, n, ff);
    dump(ctx, "ffn_swiglu", l, ctx->hb, ff, n);
    matmul(ctx, &L->ffn_down, ctx->hb, n, out);
    add_bias(&L->ffn_down_b, out, m->hp.n_embd, n);
    dump(ctx, "ffn_out", l, out, m->hp.n_embd, n);
}

/* One token's routing, as llama.cpp's build_moe_ffn. By default (softmax gating and norm_w, as
 * llama and qwen3moe call it): p = softmax(router logits) over all n_expert experts in place;
 * the k most probable, best first (the lower index on ties); their weights p / sum of the k
 * p's, the sum taken in double and kept at least 2^-14 as ggml_sum_rows and ggml_clamp do.
 * topk_softmax (SOFTMAX_WEIGHT gating, gpt-oss): the k highest raw logits, their weights the
 * softmax over those k alone. */
static void route(float *p, int32_t n_expert, int32_t k, bool topk_softmax, int32_t *choice,
                  float *weight) {
    if (!topk_softmax) qr_kernels_best()->softmax(p, n_expert, 1.0f, -INFINITY);
    double sum = 0.0;
    for (int32_t i = 0; i < k; i++) {
        int32_t best = -1;
        for (int32_t e = 0; e < n_expert; e++) {
            bool taken = false;
            for (int32_t j = 0; j < i && !taken; j++)
                taken = choice[j] == e;
            if (!taken && (best < 0 || p[e] > p[best])) best = e;
        }
        choice[i] = best;
        weight[i] = p[best];
        sum += (double)p[best];
    }
    if (topk_softmax) {
        qr_kernels_best()->softmax(weight, k, 1.0f, -INFINITY);
        return;
    }
    float s = (float)sum;
    if (s < 6.103515625e-5f) s = 6.103515625e-5f;
    for (int32_t i = 0; i < k; i++)
        weight[i] /= s;
}

/* The observer's view of a mixture's products (imatrix): one row at a time, slot by slot, the
 * tokens in order within a slot, as llama-imatrix walks a MUL_MAT_ID's routing. Gate and up
 * (slot_of NULL): each token's input x + t * n_embd; down: the pair's activation, row
 * slot_of[pair] of x. */
static void observe_experts(qr_context *ctx, const qr_layer *L, const float *x,
                           const int32_t *slot_of, int32_t n) {
    if (!ctx->params.matmul_observer) return;
    const int32_t k = ctx->model->hp.n_expert_used, n_expert = ctx->model->hp.n_expert;
    const qr_weight *w0[2] = {slot_of ? &L->experts[0].down : &L->experts[0].gate,
                              &L->experts[0].up};
    for (int wi = 0; wi < (slot_of ? 1 : 2); wi++) {
        const int64_t cols = w0[wi]->n_cols;
        for (int32_t j = 0; j < k; j++)
            for (int32_t t = 0; t < n; t++) {
                const int32_t pair = t * k + j;
                const float *row = x + (slot_of ? (int64_t)slot_of[pair] : (int64_t)t) * cols;
                ctx->params.matmul_observer(w0[wi]->name, ctx->moe_choice[pair], n_expert, row,
                                            cols, 1, ctx->params.matmul_user);
            }
    }
}

/* h's rows converted to w's activation type (in ctx->act_q) and copied in group order into
 * out: row g of out is the token of pair pairs[g]; returns the row stride */
static size_t gather_inputs(qr_context *ctx, const qr_weight *w, const float *h, int32_t n,
                            const int32_t *pairs, int32_t k, char *out) {
    const size_t stride = convert(ctx, w, h, n);
    for (int32_t g = 0; g < n * k; g++)
        memcpy(out + (size_t)g * stride, (const char *)ctx->act_q + (size_t)(pairs[g] / k) * stride,
               stride);
    return stride;
}

/* The mixture-of-experts FFN: each token is routed to hp.n_expert_used experts and gets the
 * weighted sum of their gated FFNs (with their biases, if any). The batch is grouped by
 * expert: an expert's tokens are gathered into one sub-batch that its gate, up and down
 * products run on (so each chosen expert's matrices are read once per batch, split over the
 * threads by rows like any product, and an expert no token chose is not read at all), and its
 * outputs are added into the tokens' sums with their weights. out may be h. */
static void ffn_mixture(qr_context *ctx, int l, const float *h, int32_t n, float *out) {
    const qr_model *m = ctx->model;
    const qr_layer *L = &m->layers[l];
    const int32_t n_expert = m->hp.n_expert, k = m->hp.n_expert_used;
    const int64_t d = m->hp.n_embd, ff = m->hp.n_ff_exp;

    /* route every token */
    const bool topk_softmax = m->arch->flags & QR_ARCH_ROUTE_TOPK_SOFTMAX;
    matmul(ctx, &L->ffn_gate_inp, h, n, ctx->moe_probs);
    dump(ctx, "ffn_moe_logits", l, ctx->moe_probs, n_expert, n);
    if (L->ffn_gate_inp_b.data) {
        add_bias(&L->ffn_gate_inp_b, ctx->moe_probs, n_expert, n);
        dump(ctx, "ffn_moe_logits_biased", l, ctx->moe_probs, n_expert, n);
    }
    for (int32_t t = 0; t < n; t++)
        route(ctx->moe_probs + (int64_t)t * n_expert, n_expert, k, topk_softmax,
              ctx->moe_choice + t * k, ctx->moe_weight + t * k);
    dump(ctx, "ffn_moe_probs", l, ctx->moe_probs, n_expert, n);
    dump(ctx, topk_softmax ? "ffn_moe_weights_softmax" : "ffn_moe_weights_norm", l,
         ctx->moe_weight, k, n);

    /* group the (token, slot) pairs by expert, in token order (a counting sort) */
    int32_t *first = ctx->moe_first, *pairs = ctx->moe_pairs;
    memset(first, 0, (size_t)(n_expert + 1) * sizeof *first);
    for (int32_t i = 0; i < n * k; i++)
        first[ctx->moe_choice[i] + 1]++;
    for (int32_t e = 0; e < n_expert; e++)
        first[e + 1] += first[e];
    for (int32_t i = 0; i < n * k; i++) /* moe_first[e] is the next free place meanwhile */
        pairs[first[ctx->moe_choice[i]]++] = i;
    for (int32_t e = n_expert; e > 0; e--) /* ... and back to each group's start */
        first[e] = first[e - 1];
    first[0] = 0;

    /* where each pair's rows land in the grouped buffers */
    int32_t *slot_of = ctx->moe_pos;
    for (int32_t g = 0; g < n * k; g++)
        slot_of[pairs[g]] = g;

    /* the inputs, converted once per token and gathered in group order (gate and up share
     * them when their activation types agree) */
    const qr_weight *gate0 = &L->experts[0].gate, *up0 = &L->experts[0].up;
    const bool shared = qr_type_traits_get(gate0->type)->vec_dot_type ==
                        qr_type_traits_get(up0->type)->vec_dot_type;
    char *act_g = ctx->moe_act, *act_u = ctx->moe_act;
    const size_t sa = gather_inputs(ctx, gate0, h, n, pairs, k, act_g);
    size_t su = sa;
    if (!shared) {
        act_u = ctx->moe_act + (size_t)(n * k) * sa;
        su = gather_inputs(ctx, up0, h, n, pairs, k, act_u);
    }

    observe_experts(ctx, L, h, NULL, n);

    /* every chosen expert's gate and up products in one task, each on its own tokens */
    matmul_item items[2 * QR_MAX_EXPERTS];
    int n_items = 0;
    for (int32_t e = 0; e < n_expert; e++) {
        const int32_t g0 = first[e], n_e = first[e + 1] - first[e];
        if (n_e == 0) continue;
        items[n_items++] = (matmul_item){&L->experts[e].gate, act_g + (size_t)g0 * sa, sa, n_e,
                                         ctx->moe_g + g0 * ff};
        items[n_items++] = (matmul_item){&L->experts[e].up, act_u + (size_t)g0 * su, su, n_e,
                                         ctx->moe_u + g0 * ff};
    }
    run_items(ctx, items, n_items);
    for (int32_t e = 0; e < n_expert; e++) { /* the experts' biases (gpt-oss), if any */
        const int32_t g0 = first[e], n_e = first[e + 1] - first[e];
        add_bias(&L->experts[e].gate_b, ctx->moe_g + g0 * ff, ff, n_e);
        add_bias(&L->experts[e].up_b, ctx->moe_u + g0 * ff, ff, n_e);
    }
    act_mul(m, ctx->moe_g, ctx->moe_u, (int64_t)n * k, ff);

    observe_experts(ctx, L, ctx->moe_g, slot_of, n);

    /* the down products, on the activations in the same group order */
    const qr_weight *down0 = &L->experts[0].down;
    const size_t sd = convert_into(ctx, down0, ctx->moe_g, n * k, ctx->moe_act);
    n_items = 0;
    for (int32_t e = 0; e < n_expert; e++) {
        const int32_t g0 = first[e], n_e = first[e + 1] - first[e];
        if (n_e == 0) continue;
        items[n_items++] = (matmul_item){&L->experts[e].down, ctx->moe_act + (size_t)g0 * sd, sd,
                                         n_e, ctx->moe_out + g0 * d};
    }
    run_items(ctx, items, n_items);
    for (int32_t e = 0; e < n_expert; e++)
        add_bias(&L->experts[e].down_b, ctx->moe_out + first[e] * d, d, first[e + 1] - first[e]);

    /* each token's weighted sum, in slot order (best expert first), as llama.cpp adds them */
    for (int32_t t = 0; t < n; t++) {
        float *o = out + (int64_t)t * d;
        for (int32_t j = 0; j < k; j++) {
            const float w = ctx->moe_weight[t * k + j];
            const float *y = ctx->moe_out + (int64_t)slot_of[t * k + j] * d;
            if (j == 0)
                for (int64_t c = 0; c < d; c++) o[c] = y[c] * w;
            else
                for (int64_t c = 0; c < d; c++) o[c] += y[c] * w;
        }
    }
    dump(ctx, "ffn_moe_out", l, out, d, n);
}

/* ---- the pass ---- */

qr_status qr_forward(qr_context *ctx, const qr_token *tokens, const int32_t *pos, const int32_t *seq, int32_t n,
                     const int8_t *want_logits, float *out) {
    const qr_model *m = ctx->model;
    const qr_hparams *hp = &m->hp;
    const int64_t d = hp->n_embd, hd = hp->head_dim;
    const int64_t q_dim = (int64_t)hp->n_head * hd, kv_dim = (int64_t)hp->n_head_kv * hd;
    float *x = ctx->x, *xb = ctx->xb;
    ctx->cur_seq = seq; /* the LoRA scales are per sequence */

    /* token embeddings: rows of token_embd, dequantized */
    const qr_type_traits *embd_tr = qr_type_traits_get(m->tok_embd.type);
    for (int32_t t = 0; t < n; t++) {
        if (tokens[t] < 0 || tokens[t] >= hp->n_vocab)
            return qr_error(QR_ERR_INVALID_ARG, "token id %d out of range (vocabulary has %d)", tokens[t], hp->n_vocab);
        if (m->tok_embd.packed)
            qr_matmul_packed_row(m->tok_embd.type, m->tok_embd.data, d, tokens[t], x + t * d);
        else
            embd_tr->to_float((const char *)m->tok_embd.data + (size_t)tokens[t] * m->tok_embd.row_bytes, x + t * d, d);
    }
    scale(x, n * d, hp->embd_scale);
    dump(ctx, "embd", -1, x, d, n);

    for (int32_t l = 0; l < hp->n_layer; l++) {
        const qr_layer *L = &m->layers[l];

        /* attention */
        const float *h = x; /* the steps' input: x normed, or x itself (olmo2) */
        if (L->attn_norm.data) {
            rmsnorm(xb, x, &L->attn_norm, d, hp->norm_eps, n);
            dump(ctx, "attn_norm", l, xb, d, n);
            h = xb;
        }
        matmul_n(ctx, (const qr_weight *[]){&L->wq, &L->wk, &L->wv},
                 (float *[]){ctx->q, ctx->k, ctx->v}, 3, h, n);
        add_bias(&L->bq, ctx->q, q_dim, n);
        dump(ctx, "Qcur.mul_mat", l, ctx->q, q_dim, n);
        add_bias(&L->bk, ctx->k, kv_dim, n);
        dump(ctx, "Kcur.mul_mat", l, ctx->k, kv_dim, n);
        add_bias(&L->bv, ctx->v, kv_dim, n);
        dump(ctx, "Vcur", l, ctx->v, kv_dim, n);
        if (L->q_norm.data) { /* per head (rows of head_dim) or over the whole width */
            const int64_t qn = L->q_norm.n_cols, kn = L->k_norm.n_cols;
            rmsnorm(ctx->q, ctx->q, &L->q_norm, qn, hp->norm_eps, (int32_t)(n * q_dim / qn));
            rmsnorm(ctx->k, ctx->k, &L->k_norm, kn, hp->norm_eps, (int32_t)(n * kv_dim / kn));
            dump(ctx, "Qcur_normed", l, ctx->q, q_dim, n);
            dump(ctx, "Kcur_normed", l, ctx->k, kv_dim, n);
        }
        const qr_rope *rp = &ctx->rope[L->swa];
        for (int32_t t = 0; t < n; t++) {
            if (L->rope) {
                float cache[512]; /* n_rot <= head_dim <= 512 (load.c) */
                qr_rope_cache(rp, pos[t], cache);
                qr_rope_apply(rp, cache, ctx->q + t * q_dim, hp->n_head, hp->head_dim);
                qr_rope_apply(rp, cache, ctx->k + t * kv_dim, hp->n_head_kv, hp->head_dim);
            }
            kv_store(ctx, ctx->k_cache[l], ctx->k_type, ctx->k_row_bytes, ctx->k_rot, seq[t],
                     pos[t], ctx->k + t * kv_dim);
            kv_store(ctx, ctx->v_cache[l], ctx->v_type, ctx->v_row_bytes, ctx->v_rot, seq[t],
                     pos[t], ctx->v + t * kv_dim);
        }
        dump(ctx, "Qcur.rope", l, ctx->q, q_dim, n);
        dump(ctx, "Kcur.rope", l, ctx->k, kv_dim, n);
        scale(ctx->q, n * q_dim, hp->q_scale);
        attention(ctx, l, pos, seq, n);
        dump(ctx, "kqv_out", l, ctx->att_out, q_dim, n);
        matmul(ctx, &L->wo, ctx->att_out, n, xb);
        add_bias(&L->bo, xb, d, n);
        dump(ctx, "attn_out", l, xb, d, n);
        if (L->attn_post_norm.data) {
            rmsnorm(xb, xb, &L->attn_post_norm, d, hp->norm_eps, n);
            dump(ctx, "attn_post_norm", l, xb, d, n);
        }
        add_scaled(x, xb, n * d, hp->residual_scale);
        dump(ctx, "ffn_inp", l, x, d, n);

        /* feed-forward: dense, or a mixture of experts (the layer's description says) */
        h = x;
        if (L->ffn_norm.data) {
            rmsnorm(xb, x, &L->ffn_norm, d, hp->norm_eps, n);
            dump(ctx, "ffn_norm", l, xb, d, n);
            h = xb;
        }
        if (L->experts)
            ffn_mixture(ctx, l, h, n, xb);
        else
            ffn_dense(ctx, l, h, n, xb);
        if (L->ffn_post_norm.data) {
            rmsnorm(xb, xb, &L->ffn_post_norm, d, hp->norm_eps, n);
            dump(ctx, "ffn_post_norm", l, xb, d, n);
        }
        add_scaled(x, xb, n * d, hp->residual_scale);
        dump(ctx, "l_out", l, x, d, n);
    }

    /* output head, only for the tokens whose logits are wanted */
    int32_t n_out = 0;
    for (int32_t t = 0; t < n; t++) {
        if (!want_logits[t]) continue;
        if (n_out != t) memcpy(x + n_out * d, x + t * d, (size_t)d * sizeof(float));
        n_out++;
    }
    if (n_out == 0) return QR_OK;
    rmsnorm(xb, x, &m->output_norm, d, hp->norm_eps, n_out);
    dump(ctx, "result_norm", -1, xb, d, n_out);
    if (ctx->embd_only) { /* qr_embed: the normed hidden state is the result */
        memcpy(out, xb, (size_t)n_out * (size_t)d * sizeof *out);
        return QR_OK;
    }
    matmul(ctx, &m->output, xb, n_out, out);
    scale(out, (int64_t)n_out * hp->n_vocab, hp->logit_mult);
    if (hp->final_softcap > 0.0f) softcap(out, (int64_t)n_out * hp->n_vocab, hp->final_softcap);
    dump(ctx, "result_output", -1, out, hp->n_vocab, n_out);
    return QR_OK;
}
