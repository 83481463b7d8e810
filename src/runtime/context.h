/* context.h - a context: the KV cache, the thread pool and the scratch buffers of one model
 * being evaluated. Sequences (server slots) own equal, fixed ranges of KV cells. */
#ifndef QR_CONTEXT_H
#define QR_CONTEXT_H

#include "model/model.h"
#include "runtime/threadpool.h"

/* rows per tile of the flash-attention arithmetic (forward.c, attend_flash) */
#define QR_FLASH_TILE 64
/* rows per range of the flash-attention arithmetic (flash-decoding): a query's visible cells
 * are cut into ranges of this many from its first, each range's softmax and values summed on
 * their own, the ranges then merged in order; fixed, so the arithmetic of a position does not
 * depend on the thread count or the batch (a multiple of QR_FLASH_TILE) */
#define QR_FLASH_RANGE 256
/* One adapter pair applied to one weight of the model (a fused tensor's views each have
 * theirs): attached adapter `slot`, B's rows [w->row0, w->row0 + w->n_rows) */
typedef struct qr_lora_entry {
    const qr_weight *w;
    const qr_lora_pair *pair;
    int32_t slot;
} qr_lora_entry;

/* tokens whose adapter products are computed at once (bounds the scratch below) */
#define QR_LORA_CHUNK 32

struct qr_context {
    qr_model *model;
    qr_context_params params;
    qr_pool *pool;
    bool owns_pool;    /* false: params.share_pool's */
    int32_t n_ctx;     /* cells in all */
    int32_t n_seq;     /* sequences */
    int32_t n_ctx_seq; /* cells per sequence: seq s uses cells [s*n_ctx_seq, (s+1)*n_ctx_seq) */
    int32_t n_batch;
    qr_rope rope[2]; /* RoPE of the full-attention and the windowed layers (model/rope.c) */

    /* KV cache: per layer, n_ctx * n_head_kv rows of head_dim values (forward.c's kv_row) of
     * the tensor types k_type and v_type, k_row_bytes and v_row_bytes each */
    void **k_cache, **v_cache;
    int k_type, v_type;
    size_t k_row_bytes, v_row_bytes;
    bool flash; /* attention with llama.cpp's flash-attention arithmetic (params.flash_attn) */
    /* llama.cpp's attention rotation (llama_kv_cache: attn_rot_k, attn_rot_v): with a quantized
     * K cache and a head size 64 divides, q and k are rotated by a Walsh-Hadamard matrix of
     * k_rot values (the largest power of two dividing the head size) before k is cached;
     * likewise v by one of v_rot = 64 values, and the attention's output back by it. 0: none */
    int32_t k_rot, v_rot;
    int32_t *seq_len; /* per sequence: positions 0..seq_len-1 are filled */

    /* scratch for n_batch tokens, allocated once */
    float *x, *xb, *q, *k, *v, *att_out, *hb, *hb2;
    /* mixture-of-experts layers (NULL for a dense model): per token the router's
     * probabilities (n_expert), its chosen experts and their weights (n_expert_used, best
     * first); the (token, slot) pairs grouped by expert (moe_first[e] .. moe_first[e + 1] of
     * moe_pairs) and each pair's place in that order (moe_pos); in that order, the pairs'
     * converted inputs (moe_act), gate and up outputs (n_ff_exp each) and down outputs
     * (n_embd) */
    float *moe_probs, *moe_weight, *moe_g, *moe_u, *moe_out;
    int32_t *moe_choice, *moe_pairs, *moe_first, *moe_pos;
    char *moe_act;
    void *act_q; /* activations converted to a weight's vec_dot type */
    size_t act_q_bytes;
    float *scores;             /* attention scratch, scores_per_thread floats per thread */
    /* the flash arithmetic's partial results of each (token, KV head, range) when one token's
     * ranges run on several threads: per query head of the group its maximum and sum, then
     * the group's head_dim-value sums; flash_parts_tokens tokens at most (NULL: not flash) */
    float *flash_parts;
    int32_t flash_parts_tokens;
    int64_t scores_per_thread; /* (n_head / n_head_kv) * (head_dim + n_ctx_seq) */

    /* embeddings instead of logits (qr_embed): the forward pass stops after the output norm
     * and the rows below are n_embd wide */
    bool embd_only;
    /* logits of the last batch: one row per token that asked for them */
    float *logits;
    int32_t n_logits;
    size_t cap_logits;   /* floats allocated at logits */
    int32_t *logits_row; /* batch index -> logits row, -1 if none */
    int32_t cap_batch_index;

    /* LoRA adapters attached (qr_set_loras), their scales per sequence ([n_seq][n_lora]),
     * the entries sorted by weight, and scratch for QR_LORA_CHUNK tokens: inputs converted
     * for A or B (lora_act), A x (lora_t), B (A x) (lora_y); seq of the batch being evaluated */
    int32_t n_lora;
    qr_lora *lora[QR_MAX_LORAS];
    float *lora_scale;
    qr_lora_entry *lora_entries;
    int64_t n_lora_entries;
    void *lora_act;
    float *lora_t, *lora_y;
    const int32_t *cur_seq;

    qr_timings timings;
};

/* free what qr_set_loras allocated (qr_context_free) */
void qr_context_free_loras(qr_context *ctx);

/* Evaluate n tokens (n <= n_batch) whose cells are already validated; writes the logits rows of
 * the tokens with want_logits[i] into out (row after row). */
qr_status qr_forward(qr_context *ctx, const qr_token *tokens, const int32_t *pos,
                     const int32_t *seq, int32_t n, const int8_t *want_logits, float *out);

/* Move positions [from, from + n) of sequence seq by delta in every layer's K and V rows, the
 * keys of the RoPE layers turned by delta positions (forward.c, which owns the cache layout).
 * The caller checked the ranges. */
void qr_kv_move(qr_context *ctx, int32_t seq, int32_t from, int32_t n, int32_t delta);

/* qr_decode, its time counted as prompt processing or generation as the caller says
 * (qr_decode itself counts batches of one token as generation) */
qr_status qr_decode_timed(qr_context *ctx, const qr_batch *b, bool prompt);

#endif
