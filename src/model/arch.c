/* arch.c - the supported architectures as data: one row each, saying which optional steps of
 * the forward pass the architecture takes (model.h's QR_ARCH_* flags), its RoPE pairing, its
 * FFN activation and its sliding-window layout. The facts are llama.cpp's (src/models/<arch>.cpp
 * and llama_model_rope_type): llama, granite and smollm3 rotate adjacent pairs, the others the
 * two halves of a head. A llama file with llama.expert_count (Mixtral) and qwen3moe have a
 * mixture-of-experts FFN in every layer (llama.cpp's build_moe_ffn). gpt-oss (llama.cpp's
 * openai-moe.cpp): attention sinks, biases everywhere, even layers windowed (the window key
 * required), its FFN norm stored as post_attention_norm, routing by softmax over the top k raw
 * logits and the clamped SwiGLU. */
#include "model/model.h"

static const qr_arch_info archs[] = {
    {"llama", QR_ROPE_NORM, QR_ACT_SILU, QR_ARCH_EXPERTS_IF_COUNTED, 0, 0},
    {"qwen2", QR_ROPE_NEOX, QR_ACT_SILU, QR_ARCH_QKV_BIAS, 0, 0},
    {"qwen3", QR_ROPE_NEOX, QR_ACT_SILU, QR_ARCH_QK_NORM, 0, 0},
    {"qwen3moe", QR_ROPE_NEOX, QR_ACT_SILU, QR_ARCH_QK_NORM | QR_ARCH_EXPERTS, 0, 0},
    /* gemma2: even layers windowed (4096 unless declared); gemma3: 5 of every 6 */
    {"gemma2", QR_ROPE_NEOX, QR_ACT_GELU,
     QR_ARCH_POST_NORMS | QR_ARCH_EMBD_SCALE_SQRT | QR_ARCH_TIED | QR_ARCH_SOFTCAP |
         QR_ARCH_Q_PRESCALE,
     2, 4096},
    {"gemma3", QR_ROPE_NEOX, QR_ACT_GELU,
     QR_ARCH_QK_NORM | QR_ARCH_POST_NORMS | QR_ARCH_EMBD_SCALE_SQRT | QR_ARCH_Q_PRESCALE, 6, 0},
    /* phi3: llama.cpp of this release ignores attention.sliding_window ("Phi SWA is currently
     * disabled"), so no pattern here */
    {"phi3", QR_ROPE_NEOX, QR_ACT_SILU, QR_ARCH_Q_PRESCALE | QR_ARCH_GATE_IN_UP, 0, 0},
    /* olmo2: windowed layers only in OLMo 3 files that declare a window (3 of every 4) */
    {"olmo2", QR_ROPE_NEOX, QR_ACT_SILU,
     QR_ARCH_QK_NORM_FULL | QR_ARCH_POST_NORMS | QR_ARCH_NO_PRE_NORMS | QR_ARCH_UNTIED, 4, 0},
    {"granite", QR_ROPE_NORM, QR_ACT_SILU, QR_ARCH_MULTIPLIERS, 0, 0},
    {"smollm3", QR_ROPE_NORM, QR_ACT_SILU, QR_ARCH_NOPE_EVERY_4, 0, 0},
    {"gpt-oss", QR_ROPE_NEOX, QR_ACT_SWIGLU_OAI,
     QR_ARCH_EXPERTS | QR_ARCH_ATTN_SINKS | QR_ARCH_OUT_BIAS | QR_ARCH_EXPERT_BIASES |
         QR_ARCH_ROUTE_TOPK_SOFTMAX | QR_ARCH_FFN_NORM_POST_ATTN | QR_ARCH_UNTIED,
     2, -1},
};

const qr_arch_info *qr_arch_find(const char *name) {
    for (size_t i = 0; i < sizeof archs / sizeof *archs; i++)
        if (!strcmp(archs[i].name, name)) return &archs[i];
    return NULL;
}

const char *qr_arch_names(void) {
    return "llama, qwen2, qwen3, qwen3moe, gemma2, gemma3, phi3, olmo2, granite, smollm3, "
           "gpt-oss";
}
