/* model.h - a loaded model: hyperparameters, weights bound to the read-only mapping, the
 * vocabulary; and the forward pass over a batch (forward.c). */
#ifndef QR_MODEL_H
#define QR_MODEL_H

#include "quarrel.h"
#include "tokenizer/vocab.h"
#include "util/util.h"

typedef enum qr_arch { QR_ARCH_LLAMA, QR_ARCH_QWEN2 } qr_arch;
typedef enum qr_rope_type { QR_ROPE_NORM, QR_ROPE_NEOX } qr_rope_type;

typedef struct qr_hparams {
    int32_t n_vocab;
    int32_t n_ctx_train;
    int32_t n_embd;
    int32_t n_layer;
    int32_t n_head;
    int32_t n_head_kv;
    int32_t n_ff;
    int32_t head_dim; /* attention.key_length, default n_embd / n_head */
    int32_t n_rot;    /* rope.dimension_count, default head_dim */
    float rope_freq_base;
    float rope_freq_scale;
    float norm_eps;
    int32_t sliding_window; /* 0: none */
    qr_rope_type rope_type;
} qr_hparams;

/* A weight matrix of n_rows rows of n_cols elements (or a vector: n_rows = 1), in place on the
 * mapping or repacked for the kernels (load.c). */
typedef struct qr_weight {
    const void *data; /* NULL: absent (optional tensors) */
    bool packed;      /* data is the kernels' repacked layout (model.pack), not the file's */
    int type;
    int64_t n_cols, n_rows;
    size_t row_bytes;
} qr_weight;

typedef struct qr_layer {
    qr_weight attn_norm;
    qr_weight wq, wk, wv, wo;
    qr_weight bq, bk, bv; /* qwen2 only */
    qr_weight ffn_norm;
    qr_weight ffn_gate, ffn_up, ffn_down;
} qr_layer;

struct qr_model {
    qr_gguf *gguf;
    qr_arch arch;
    char arch_name[32];
    qr_hparams hp;
    qr_vocab *vocab;
    bool vocab_only;
    qr_weight tok_embd, output_norm, output;
    qr_weight rope_freqs; /* optional per-dimension frequency factors (Llama 3.1) */
    qr_layer *layers;
    uint64_t n_params, weight_bytes;
    void *pack; /* the repacked matrices (qr_model_params.no_repack), or NULL */
};

#endif
