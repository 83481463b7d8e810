/* model.h - a loaded model: hyperparameters, weights bound to the read-only mapping, the
 * vocabulary; and the forward pass over a batch (forward.c). */
#ifndef QR_MODEL_H
#define QR_MODEL_H

#include "quarrel.h"
#include "tokenizer/vocab.h"
#include "util/util.h"

/* What an architecture is, as data (arch.c holds one row per GGUF architecture): which
 * optional steps of the one forward pass it takes, which tensors it must have and which keys
 * it reads. Adding an architecture is a row there plus any genuinely new step. */
typedef enum qr_rope_type { QR_ROPE_NORM, QR_ROPE_NEOX } qr_rope_type;
/* the FFN's gated activation: SwiGLU, GeGLU, or gpt-oss's clamped SwiGLU (ggml_swiglu_oai:
 * x = min(g, 7), x sigmoid(1.702 x) (clamp(u, -7, 7) + 1)) */
typedef enum qr_act { QR_ACT_SILU, QR_ACT_GELU, QR_ACT_SWIGLU_OAI } qr_act;

enum {
    QR_ARCH_QKV_BIAS = 1 << 0,        /* q, k, v biases required (qwen2) */
    QR_ARCH_QK_NORM = 1 << 1,         /* RMS norm of each q and k head before RoPE */
    QR_ARCH_QK_NORM_FULL = 1 << 2,    /* ... over the whole q and k width instead (olmo2) */
    QR_ARCH_POST_NORMS = 1 << 3,      /* norms on the attention and FFN outputs (gemma, olmo2) */
    QR_ARCH_NO_PRE_NORMS = 1 << 4,    /* no attn_norm / ffn_norm before the steps (olmo2) */
    QR_ARCH_EMBD_SCALE_SQRT = 1 << 5, /* embeddings times sqrt(n_embd) (gemma) */
    QR_ARCH_TIED = 1 << 6,            /* the output head is always token_embd (gemma2) */
    QR_ARCH_SOFTCAP = 1 << 7,         /* attention and final logit soft-capping (gemma2) */
    QR_ARCH_MULTIPLIERS = 1 << 8,     /* embedding/residual/attention/logit multipliers (granite) */
    QR_ARCH_Q_PRESCALE = 1 << 9,    /* q scaled before attention, softmax unscaled (gemma, phi3) */
    QR_ARCH_NOPE_EVERY_4 = 1 << 10, /* no RoPE on layers with (il + 1) % 4 == 0 (smollm3) */
    QR_ARCH_GATE_IN_UP = 1 << 11,   /* ffn_up holds [gate | up], no ffn_gate (phi3) */
    QR_ARCH_UNTIED = 1 << 12,       /* output.weight required (olmo2) */
    /* the FFN is a mixture of experts (qwen3moe); ..._IF_COUNTED: when expert_count > 0 (llama,
     * as Mixtral is stored) */
    QR_ARCH_EXPERTS = 1 << 13,
    QR_ARCH_EXPERTS_IF_COUNTED = 1 << 14,
    QR_ARCH_ATTN_SINKS = 1 << 15,     /* attn_sinks: one more logit per head in the softmax */
    QR_ARCH_OUT_BIAS = 1 << 16,       /* attn_output.bias required (gpt-oss) */
    QR_ARCH_EXPERT_BIASES = 1 << 17,  /* router and experts' gate/up/down biases required */
    QR_ARCH_ROUTE_TOPK_SOFTMAX = 1 << 18, /* top k of the raw router logits, softmax over those
                                            k (llama.cpp's SOFTMAX_WEIGHT gating, gpt-oss) */
    QR_ARCH_FFN_NORM_POST_ATTN = 1 << 19, /* the FFN's pre-norm is stored as
                                            post_attention_norm (gpt-oss) */
};

/* the most experts a layer may have (llama.cpp's LLAMA_MAX_EXPERTS) */
#define QR_MAX_EXPERTS 1024

typedef struct qr_arch_info {
    const char *name; /* general.architecture */
    qr_rope_type rope_type;
    qr_act act;
    uint32_t flags;
    /* sliding-window attention: layers with il % swa_pattern < swa_pattern - 1 are windowed
     * (attention.sliding_window_pattern overrides); swa_default: the window when the key is
     * absent; 0 with a pattern: windowed only when the key is there and positive; -1: the key
     * is required (gpt-oss) */
    int32_t swa_pattern, swa_default;
} qr_arch_info;

/* the row of `name`, or NULL; qr_arch_names lists every supported name for messages */
const qr_arch_info *qr_arch_find(const char *name);
const char *qr_arch_names(void);

/* Hyperparameters, from the GGUF keys with llama.cpp's defaults (load.c) */
typedef struct qr_hparams {
    int32_t n_vocab;
    int32_t n_ctx_train;
    int32_t n_embd;
    int32_t n_layer;
    int32_t n_head;
    int32_t n_head_kv;
    int32_t n_ff;
    int32_t n_expert, n_expert_used; /* 0, 0: a dense FFN */
    int32_t n_ff_exp;                /* an expert's width (expert_feed_forward_length) */
    int32_t pooling_type; /* the GGUF's pooling_type (qr_pooling), -1 when it has none */
    int32_t head_dim; /* attention.key_length, default n_embd / n_head */
    int32_t n_rot;    /* rope.dimension_count, default head_dim */
    float norm_eps;
    /* RoPE as the model declares it (the context applies llama.cpp's overrides: rope.c) */
    float rope_freq_base, rope_freq_scale;         /* scale = 1 / rope.scaling.factor */
    float rope_freq_base_swa, rope_freq_scale_swa; /* the windowed layers' (gemma) */
    qr_rope_scaling rope_scaling;                  /* rope.scaling.type (default linear) */
    int32_t n_ctx_orig;                            /* rope.scaling.original_context_length */
    float rope_attn_factor;                        /* rope.scaling.attn_factor */
    int32_t n_swa;                                 /* window of the windowed layers; 0: none */
    /* multipliers and caps (1 / 0: none) */
    float embd_scale;     /* token embeddings times this */
    float residual_scale; /* each branch's output times this before the residual add */
    float logit_mult;     /* logits times this */
    float q_scale;        /* q times this after RoPE (Q_PRESCALE archs) */
    float kq_scale;       /* attention scores times this in the softmax */
    float attn_softcap, final_softcap;
} qr_hparams;

/* A weight matrix of n_rows rows of n_cols elements (or a vector: n_rows = 1), in place on the
 * mapping or repacked for the kernels (load.c). */
typedef struct qr_weight {
    const void *data; /* NULL: absent (optional tensors) */
    const char *name; /* the GGUF tensor's name (a fused tensor's for its views), NULL if absent */
    bool packed;      /* data is the kernels' repacked layout (model.pack), not the file's */
    int64_t row0;     /* a view of a fused tensor: its first row there (0 otherwise) */
    int type;
    int64_t n_cols, n_rows;
    size_t row_bytes;
} qr_weight;

/* One expert of a mixture-of-experts layer: the e-th 2-D slices of the layer's 3-D
 * ffn_{gate,up,down}_exps tensors, each an ordinary matrix (repacked like any other). */
typedef struct qr_expert {
    qr_weight gate, up, down;
    qr_weight gate_b, up_b, down_b; /* rows of ffn_*_exps.bias (gpt-oss), or absent */
} qr_expert;

/* One layer: its weights (absent optional ones have data NULL; fused tensors are bound as
 * views of their parts) and its attributes. */
typedef struct qr_layer {
    qr_weight attn_norm; /* absent: no pre-norm (olmo2) */
    qr_weight wq, wk, wv, wo;
    qr_weight bq, bk, bv, bo;
    qr_weight q_norm, k_norm; /* per head, or over the whole width (QK_NORM_FULL) */
    qr_weight attn_post_norm;
    qr_weight ffn_norm;
    qr_weight ffn_gate, ffn_up, ffn_down;
    qr_weight ffn_gate_b, ffn_up_b, ffn_down_b;
    qr_weight ffn_post_norm;
    /* the FFN step: dense (experts NULL) or a mixture, routed by ffn_gate_inp
     * ([n_expert][n_embd]) to hp.n_expert_used of hp.n_expert experts */
    qr_weight ffn_gate_inp, ffn_gate_inp_b; /* the router and its bias (if any) */
    qr_expert *experts;
    qr_weight attn_sinks; /* per query head, a logit with no value (gpt-oss), or absent */
    bool swa;  /* windowed attention (hp.n_swa) with the windowed layers' rope */
    bool rope; /* RoPE applied (smollm3 skips some layers) */
} qr_layer;

struct qr_model {
    qr_gguf *gguf;
    const qr_arch_info *arch;
    char arch_name[32];
    qr_hparams hp;
    qr_vocab *vocab;
    bool vocab_only;
    qr_weight tok_embd, output_norm, output;
    qr_weight rope_freqs;            /* optional per-dimension frequency factors (Llama 3.1) */
    qr_weight rope_long, rope_short; /* LongRoPE factors (phi3): long past n_ctx_orig */
    float *gelu; /* GELU archs: ggml's f16 GELU table, one float per f16 value (65536) */
    qr_layer *layers;
    qr_expert *experts; /* every layer's experts, n_layer * n_expert (NULL: dense) */
    uint64_t n_params, weight_bytes;
    void *pack; /* the repacked matrices (qr_model_params.no_repack), or NULL */
};

/* A LoRA adapter (lora.c): pairs of low-rank matrices, each for one weight of the base model
 * it was loaded for, on the adapter file's read-only mapping. Pair i adds
 * s * B (A x) to the product W x, s = scale * alpha / rank (scale alone when alpha is 0). */
typedef struct qr_lora_pair {
    const char *name; /* the base weight's GGUF name */
    qr_weight a;      /* rank rows of n_in (the base's n_cols) */
    qr_weight b;      /* n_out rows (the base tensor's, all parts of a fused one) of rank */
    int32_t rank;
    /* B transposed (rank rows of n_out, B's type: f32 or f16 bits), so that B t is rank
     * column-wise multiply-adds over the outputs (a short dot product per output row cost
     * more in reductions than in arithmetic: smol135 decoded at half speed) */
    void *bt;
} qr_lora_pair;

struct qr_lora {
    qr_gguf *gguf;
    const qr_model *model;
    float alpha;
    int32_t n_pairs;
    qr_lora_pair *pairs;
    char *path;
};

/* The model's matrices that a pair may adapt, in the pass's order: n written to *n (at most
 * QR_LORA_MAX_TARGETS(hp)); a fused tensor's views each appear. */
#define QR_LORA_MAX_TARGETS(hp) (1 + 8 * (int64_t)(hp).n_layer)
void qr_lora_targets(const qr_model *m, const qr_weight **out, int64_t *n);

/* RoPE of one kind of layer in a context (rope.c): llama.cpp's effective settings */
typedef struct qr_rope {
    int32_t n_rot;
    qr_rope_type type;
    float freq_base, freq_scale, theta_scale;
    float ext_factor, attn_factor, beta_fast, beta_slow, corr_dims[2];
    int32_t n_ctx_orig;
    const float *factors; /* per rotated pair, or NULL */
} qr_rope;

/* rope[0]: the full-attention layers', rope[1]: the windowed layers' */
void qr_rope_init(const qr_model *m, const qr_context_params *p, int32_t n_ctx_seq,
                  qr_rope rope[2]);
/* cos, sin of every rotated pair at pos: cache[2i], cache[2i + 1] */
void qr_rope_cache(const qr_rope *r, int32_t pos, float *cache);
/* rotate n_heads heads of head_dim values in place */
void qr_rope_apply(const qr_rope *r, const float *cache, float *x, int32_t n_heads,
                   int32_t head_dim);

#endif
