/* cmd_synth.c - `quarrel synth`: a random-weight model of a known architecture and shape, so
 * tests can compare Quarrel with llama.cpp on every architecture without downloads, and
 * benchmarks can run on models far larger than the caches. Architectures: llama, qwen2, qwen3,
 * gemma2, gemma3, phi3, olmo2, granite, smollm3, and the mixtures of experts mixtral (a llama
 * file with experts, as Mixtral is stored), qwen3moe and gpt-oss (attention sinks, biases
 * everywhere, YaRN, every other layer windowed); each has a tiny test shape (`--arch NAME`)
 * and some have real shapes (`--shape qwen3-0.6b`, ...). The tokenizer (every tokenizer.* key) is
 * copied from a vocabulary GGUF. Keys and tensors are exactly those llama.cpp (v0.5.0) reads
 * for the architecture (src/models/<arch>.cpp), under its GGUF names.
 *
 * Weights are seeded and deterministic and scaled as /work/shared/models/synth/mk_synth.py
 * scales them, so activations stay like a trained model's: matrices fed by a normed input have
 * std 1/sqrt(fan_in); residual outputs (attn_output, ffn_down) another 2/sqrt(2 n_layer); norm
 * gains 1 + N(0, 0.05); embedding rows with lognormal(0, 0.2) norms; the output norm gain set
 * for final logits of std ~4. (Same recipe, not the same numbers: the generator differs.)
 * Architectures that scale things in the graph get the inverse scale in the weights, so the
 * numerics stay the recipe's: post-norms (gemma, olmo2) carry the residual gain themselves;
 * granite's residual_scale, attention.scale and logit_scale are undone in attn_output/ffn_down,
 * attn_q and output_norm; gemma2's q is made larger so its attention soft-cap bites.
 *
 * Mixtures of experts are routed by a code, so that no token's k-th and (k+1)-th experts are
 * near a tie (where llama.cpp's own configurations would choose differently): the last n_expert
 * embedding dimensions carry a per-token code (two of them set, CODE_FIRST and CODE_SECOND, the
 * rest 0), which no block writes (attn_output's and ffn_down_exps' rows there are zero) so it
 * reaches every layer unchanged; layer l's router reads mostly that code (expert e gains
 * ROUTER_GAIN from code dimension (e + l) % n_expert, plus weak noise), so each token's two
 * experts win by a clear margin and differ from layer to layer, and tokens spread over all of
 * them. gpt-oss's router bias, expert biases and attention output bias leave the code alone
 * too (their entries in the code dimensions are zero), and its routers read the code more
 * weakly (ROUTER_GAIN_OAI): its weights are a softmax over the chosen two's logits alone, and
 * the second expert should keep a visible share.
 *
 * Tensors are generated into a scratch file mapped shared (unlinked at once), so even a 7B
 * model does not need its size in RAM. A plain type (F32, F16, Q8_0, Q4_K, ...) is produced
 * tensor by tensor with qr_quantize; a mix (Q4_K_M, ...) goes through an F16 temporary file and
 * qr_quantize_file, so it is exactly what `quarrel quantize` makes of the F16 model. */
#include "cli.h"
#include "options.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- architectures and shapes ---- */

typedef enum qk_norm_kind { QKN_NONE, QKN_HEAD, QKN_FULL } qk_norm_kind;
typedef enum tie_rule { TIE_SHAPE, TIE_ALWAYS, TIE_NEVER } tie_rule;

/* What an architecture's GGUF holds beyond llama's tensors and keys. */
typedef struct synth_arch {
    const char *name;
    bool pre_norms;       /* attn_norm and ffn_norm before each block (olmo2 has none) */
    bool post_norms;      /* post_attention_norm and post_ffw_norm on each block's output */
    qk_norm_kind qk_norm; /* attn_q_norm / attn_k_norm: per head [head_dim] or whole width */
    bool fused;           /* attn_qkv = [q|k|v], ffn_up = [gate|up] and no ffn_gate (phi3) */
    bool qkv_bias;        /* attn_q/k/v.bias (qwen2) */
    bool emb_sqrt;        /* the graph multiplies embeddings by sqrt(n_embd) (gemma) */
    bool head_keys;       /* always write attention.key_length and value_length */
    tie_rule tie;         /* gemma2 has no output.weight; olmo2 requires one */
    const char *tiny;     /* the shape `--arch NAME` alone picks */
    const char *gguf;     /* general.architecture, when it is not the name (mixtral: llama) */
    bool oai; /* gpt-oss: attention sinks, output, router and expert biases, the FFN norm stored
                 as post_attention_norm */
} synth_arch;

static const synth_arch archs[] = {
    {"llama", true, false, QKN_NONE, false, false, false, false, TIE_SHAPE, "tiny", NULL, false},
    {"qwen2", true, false, QKN_NONE, false, true, false, false, TIE_SHAPE, "qwen2-tiny", NULL,
     false},
    {"qwen3", true, false, QKN_HEAD, false, false, false, true, TIE_SHAPE, "qwen3-tiny", NULL,
     false},
    {"gemma2", true, true, QKN_NONE, false, false, true, true, TIE_ALWAYS, "gemma2-tiny", NULL,
     false},
    {"gemma3", true, true, QKN_HEAD, false, false, true, true, TIE_SHAPE, "gemma3-tiny", NULL,
     false},
    {"phi3", true, false, QKN_NONE, true, false, false, false, TIE_SHAPE, "phi3-tiny", NULL, false},
    {"olmo2", false, true, QKN_FULL, false, false, false, false, TIE_NEVER, "olmo2-tiny", NULL,
     false},
    {"granite", true, false, QKN_NONE, false, false, false, false, TIE_SHAPE, "granite-tiny", NULL,
     false},
    {"smollm3", true, false, QKN_NONE, false, false, false, false, TIE_SHAPE, "smollm3-tiny", NULL,
     false},
    {"mixtral", true, false, QKN_NONE, false, false, false, false, TIE_SHAPE, "mixtral-tiny",
     "llama", false},
    {"qwen3moe", true, false, QKN_HEAD, false, false, false, true, TIE_SHAPE, "qwen3moe-tiny", NULL,
     false},
    {"gpt-oss", true, false, QKN_NONE, false, true, false, true, TIE_NEVER, "gpt-oss-tiny", NULL,
     true},
};
#define N_ARCHS (sizeof archs / sizeof archs[0])

typedef struct synth_shape {
    const char *name, *arch, *what;
    int32_t n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx;
    int32_t head_dim, n_rot; /* 0: n_embd / n_head, head_dim */
    float rope_base, eps;
    bool tied;
    const char *vocab;   /* default vocabulary, under the shared tokenizer-vectors folder */
    float rope_base_swa; /* rope.freq_base_swa (gemma3), 0: not written */
    int32_t window;      /* attention.sliding_window, 0: not written */
    float attn_softcap, final_softcap;                   /* gemma2; 0: not written */
    float emb_scale, res_scale, attn_scale, logit_scale; /* granite; 0: not written */
    const char *rope_scaling; /* the default: NULL (none), "linear", "yarn" or "longrope" */
    float rope_factor;        /* rope.scaling.factor (linear, yarn), 0: 4 */
    int32_t orig_ctx;         /* rope.scaling.original_context_length, 0: n_ctx / factor */
    float rope_attn_factor;   /* rope.scaling.attn_factor (longrope), 0: not written */
    int32_t n_expert, n_expert_used; /* a mixture of experts; 0: dense */
    int32_t n_ff_exp; /* expert_feed_forward_length (qwen3moe), 0: n_ff (and not written) */
} synth_shape;

static const synth_shape shapes[] = {
    /* llama: the tiny test model and real shapes */
    {.name = "tiny",
     .arch = "llama",
     .what = "test-sized llama (256 wide, 2 layers)",
     .n_embd = 256,
     .n_layer = 2,
     .n_head = 4,
     .n_head_kv = 2,
     .n_ff = 512,
     .n_ctx = 512,
     .rope_base = 10000,
     .eps = 1e-5f,
     .vocab = "ggml-vocab-llama-spm.gguf"},
    {.name = "smol135",
     .arch = "llama",
     .what = "SmolLM2-135M",
     .n_embd = 576,
     .n_layer = 30,
     .n_head = 9,
     .n_head_kv = 3,
     .n_ff = 1536,
     .n_ctx = 8192,
     .rope_base = 100000,
     .eps = 1e-5f,
     .tied = true,
     .vocab = "ggml-vocab-starcoder.gguf"},
    {.name = "tinyllama",
     .arch = "llama",
     .what = "TinyLlama-1.1B",
     .n_embd = 2048,
     .n_layer = 22,
     .n_head = 32,
     .n_head_kv = 4,
     .n_ff = 5632,
     .n_ctx = 2048,
     .rope_base = 10000,
     .eps = 1e-5f,
     .vocab = "ggml-vocab-llama-spm.gguf"},
    {.name = "llama7b",
     .arch = "llama",
     .what = "Llama-2-7B",
     .n_embd = 4096,
     .n_layer = 32,
     .n_head = 32,
     .n_head_kv = 32,
     .n_ff = 11008,
     .n_ctx = 4096,
     .rope_base = 10000,
     .eps = 1e-5f,
     .vocab = "ggml-vocab-llama-spm.gguf"},
    /* qwen2: q/k/v biases */
    {.name = "qwen2-tiny",
     .arch = "qwen2",
     .what = "test-sized qwen2 (64 wide, 2 layers)",
     .n_embd = 64,
     .n_layer = 2,
     .n_head = 4,
     .n_head_kv = 2,
     .n_ff = 192,
     .n_ctx = 4096,
     .rope_base = 1e6f,
     .eps = 1e-6f,
     .tied = true,
     .vocab = "ggml-vocab-qwen2.gguf"},
    /* qwen3: per-head q/k norms, head_dim apart from n_embd / n_head */
    {.name = "qwen3-tiny",
     .arch = "qwen3",
     .what = "test-sized qwen3 (64 wide, 2 layers, head_dim 32)",
     .n_embd = 64,
     .n_layer = 2,
     .n_head = 4,
     .n_head_kv = 2,
     .n_ff = 192,
     .n_ctx = 512,
     .head_dim = 32,
     .rope_base = 1e6f,
     .eps = 1e-6f,
     .tied = true,
     .vocab = "ggml-vocab-qwen2.gguf"},
    {.name = "qwen3-0.6b",
     .arch = "qwen3",
     .what = "Qwen3-0.6B",
     .n_embd = 1024,
     .n_layer = 28,
     .n_head = 16,
     .n_head_kv = 8,
     .n_ff = 3072,
     .n_ctx = 40960,
     .head_dim = 128,
     .rope_base = 1e6f,
     .eps = 1e-6f,
     .tied = true,
     .vocab = "ggml-vocab-qwen2.gguf"},
    /* gemma2: post-norms, GeGLU, soft-caps, sliding window on every other layer */
    {.name = "gemma2-tiny",
     .arch = "gemma2",
     .what = "test-sized gemma2 (64 wide, 4 layers, window 8, soft-caps 5 / 15)",
     .n_embd = 64,
     .n_layer = 4,
     .n_head = 4,
     .n_head_kv = 2,
     .n_ff = 192,
     .n_ctx = 2048,
     .head_dim = 32,
     .rope_base = 10000,
     .eps = 1e-6f,
     .tied = true,
     .vocab = "ggml-vocab-llama-spm.gguf",
     .window = 8,
     .attn_softcap = 5.0f,
     .final_softcap = 15.0f},
    /* gemma3: q/k norms, post-norms, 5 local layers (own rope base) per global one */
    {.name = "gemma3-tiny",
     .arch = "gemma3",
     .what = "test-sized gemma3 (64 wide, 6 layers, window 8)",
     .n_embd = 64,
     .n_layer = 6,
     .n_head = 4,
     .n_head_kv = 1,
     .n_ff = 192,
     .n_ctx = 2048,
     .head_dim = 32,
     .rope_base = 1e6f,
     .eps = 1e-6f,
     .tied = true,
     .vocab = "ggml-vocab-llama-spm.gguf",
     .rope_base_swa = 10000,
     .window = 8},
    {.name = "gemma3-1b",
     .arch = "gemma3",
     .what = "Gemma-3-1B",
     .n_embd = 1152,
     .n_layer = 26,
     .n_head = 4,
     .n_head_kv = 1,
     .n_ff = 6912,
     .n_ctx = 32768,
     .head_dim = 256,
     .rope_base = 1e6f,
     .eps = 1e-6f,
     .tied = true,
     .vocab = "ggml-vocab-llama-spm.gguf",
     .rope_base_swa = 10000,
     .window = 512},
    /* phi3: fused attn_qkv and gate|up, LongRoPE factors; its sliding_window is ignored */
    {.name = "phi3-tiny",
     .arch = "phi3",
     .what = "test-sized phi3 (64 wide, 2 layers, fused, LongRoPE from 256)",
     .n_embd = 64,
     .n_layer = 2,
     .n_head = 4,
     .n_head_kv = 2,
     .n_ff = 192,
     .n_ctx = 1024,
     .rope_base = 10000,
     .eps = 1e-5f,
     .vocab = "ggml-vocab-phi-3.gguf",
     .window = 8,
     .rope_scaling = "longrope",
     .orig_ctx = 256,
     .rope_attn_factor = 1.19f},
    {.name = "phi4-mini",
     .arch = "phi3",
     .what = "Phi-4-mini (3.8B)",
     .n_embd = 3072,
     .n_layer = 32,
     .n_head = 24,
     .n_head_kv = 8,
     .n_ff = 8192,
     .n_ctx = 131072,
     .n_rot = 96,
     .rope_base = 10000,
     .eps = 1e-5f,
     .tied = true,
     .vocab = "ggml-vocab-phi-3.gguf",
     .rope_scaling = "longrope",
     .orig_ctx = 4096,
     .rope_attn_factor = 1.1902f},
    /* olmo2: no pre-norms, full-width q/k norms, post-norms, untied */
    {.name = "olmo2-tiny",
     .arch = "olmo2",
     .what = "test-sized olmo2 (64 wide, 2 layers)",
     .n_embd = 64,
     .n_layer = 2,
     .n_head = 4,
     .n_head_kv = 2,
     .n_ff = 192,
     .n_ctx = 4096,
     .rope_base = 500000,
     .eps = 1e-6f,
     .vocab = "ggml-vocab-gpt-2.gguf"},
    /* granite: embedding, residual, attention and logit multipliers */
    {.name = "granite-tiny",
     .arch = "granite",
     .what = "test-sized granite (64 wide, 2 layers, Granite-3 multipliers)",
     .n_embd = 64,
     .n_layer = 2,
     .n_head = 4,
     .n_head_kv = 2,
     .n_ff = 192,
     .n_ctx = 4096,
     .rope_base = 10000,
     .eps = 1e-5f,
     .tied = true,
     .vocab = "ggml-vocab-starcoder.gguf",
     .emb_scale = 12.0f,
     .res_scale = 0.22f,
     .attn_scale = 0.0078125f,
     .logit_scale = 8.0f},
    {.name = "granite3-2b",
     .arch = "granite",
     .what = "Granite-3.x-2B",
     .n_embd = 2048,
     .n_layer = 40,
     .n_head = 32,
     .n_head_kv = 8,
     .n_ff = 8192,
     .n_ctx = 4096,
     .rope_base = 10000,
     .eps = 1e-5f,
     .tied = true,
     .vocab = "ggml-vocab-starcoder.gguf",
     .emb_scale = 12.0f,
     .res_scale = 0.22f,
     .attn_scale = 0.015625f,
     .logit_scale = 8.0f},
    /* smollm3: every fourth layer without RoPE (llama.cpp's fixed rule, no key) */
    {.name = "smollm3-tiny",
     .arch = "smollm3",
     .what = "test-sized smollm3 (64 wide, 4 layers, layer 3 NoPE)",
     .n_embd = 64,
     .n_layer = 4,
     .n_head = 4,
     .n_head_kv = 2,
     .n_ff = 192,
     .n_ctx = 4096,
     .rope_base = 5e6f,
     .eps = 1e-6f,
     .tied = true,
     .vocab = "ggml-vocab-starcoder.gguf"},
    /* mixtures of experts: 8 experts, 2 per token */
    {.name = "mixtral-tiny",
     .arch = "mixtral",
     .what = "test-sized Mixtral-style llama (64 wide, 2 layers, 8 experts, 2 used)",
     .n_embd = 64,
     .n_layer = 2,
     .n_head = 4,
     .n_head_kv = 2,
     .n_ff = 128,
     .n_ctx = 512,
     .rope_base = 1e6f,
     .eps = 1e-5f,
     .vocab = "ggml-vocab-llama-spm.gguf",
     .n_expert = 8,
     .n_expert_used = 2},
    /* gpt-oss: 64 heads of 64 over 2880 scaled down (head_dim 32 apart from n_embd / n_head),
     * YaRN as it ships (factor 32, base 150000) over a scaled-down original context, a window
     * of 8 on the even layers */
    {.name = "gpt-oss-tiny",
     .arch = "gpt-oss",
     .what = "test-sized gpt-oss (64 wide, 4 layers, head_dim 32, window 8, YaRN 32, 8 experts "
             "of 64, 2 used)",
     .n_embd = 64,
     .n_layer = 4,
     .n_head = 4,
     .n_head_kv = 2,
     .n_ff = 64,
     .n_ctx = 4096,
     .head_dim = 32,
     .rope_base = 150000,
     .eps = 1e-5f,
     .vocab = "ggml-vocab-llama-spm.gguf",
     .window = 8,
     .rope_scaling = "yarn",
     .rope_factor = 32.0f,
     .orig_ctx = 128,
     .n_expert = 8,
     .n_expert_used = 2,
     .n_ff_exp = 64},
    {.name = "gpt-oss-20b",
     .arch = "gpt-oss",
     .what = "gpt-oss-20b (24 layers, 32 experts of 2880, 4 used; qwen2's vocabulary)",
     .n_embd = 2880,
     .n_layer = 24,
     .n_head = 64,
     .n_head_kv = 8,
     .n_ff = 2880,
     .n_ctx = 131072,
     .head_dim = 64,
     .rope_base = 150000,
     .eps = 1e-5f,
     .vocab = "ggml-vocab-qwen2.gguf",
     .window = 128,
     .rope_scaling = "yarn",
     .rope_factor = 32.0f,
     .orig_ctx = 4096,
     .n_expert = 32,
     .n_expert_used = 4,
     .n_ff_exp = 2880},
    {.name = "qwen3moe-tiny",
     .arch = "qwen3moe",
     .what = "test-sized qwen3moe (64 wide, 3 layers, head_dim 32, 8 experts of 64, 2 used)",
     .n_embd = 64,
     .n_layer = 3,
     .n_head = 4,
     .n_head_kv = 2,
     .n_ff = 192,
     .n_ctx = 512,
     .head_dim = 32,
     .rope_base = 1e6f,
     .eps = 1e-6f,
     .vocab = "ggml-vocab-qwen2.gguf",
     .n_expert = 8,
     .n_expert_used = 2,
     .n_ff_exp = 64},
    {.name = "mixtral-8x7b",
     .arch = "mixtral",
     .what = "Mixtral-8x7B (8 experts, 2 used)",
     .n_embd = 4096,
     .n_layer = 32,
     .n_head = 32,
     .n_head_kv = 8,
     .n_ff = 14336,
     .n_ctx = 32768,
     .rope_base = 1e6f,
     .eps = 1e-5f,
     .vocab = "ggml-vocab-llama-spm.gguf",
     .n_expert = 8,
     .n_expert_used = 2},
    {.name = "qwen3-30b-a3b",
     .arch = "qwen3moe",
     .what = "Qwen3-30B-A3B (128 experts of 768, 8 used)",
     .n_embd = 2048,
     .n_layer = 48,
     .n_head = 32,
     .n_head_kv = 4,
     .n_ff = 6144,
     .n_ctx = 40960,
     .head_dim = 128,
     .rope_base = 1e6f,
     .eps = 1e-6f,
     .vocab = "ggml-vocab-qwen2.gguf",
     .n_expert = 128,
     .n_expert_used = 8,
     .n_ff_exp = 768},
    /* quantizer mixes: 256 wide with 512-long ffn rows, so every matrix takes the k-quants
     * (no fallback) and llama.cpp's per-tensor rules show (tests/quantize/mk_mix_refs.py).
     * One small vocabulary: only token_embd's row count depends on it. */
    {.name = "qwen3-mix",
     .arch = "qwen3",
     .what = "quantizer test qwen3 (256 wide, 4 layers, tied)",
     .n_embd = 256,
     .n_layer = 4,
     .n_head = 4,
     .n_head_kv = 2,
     .n_ff = 512,
     .n_ctx = 512,
     .rope_base = 1e6f,
     .eps = 1e-6f,
     .tied = true,
     .vocab = "ggml-vocab-llama-spm.gguf"},
    {.name = "gemma2-mix",
     .arch = "gemma2",
     .what = "quantizer test gemma2 (256 wide, 4 layers)",
     .n_embd = 256,
     .n_layer = 4,
     .n_head = 4,
     .n_head_kv = 2,
     .n_ff = 512,
     .n_ctx = 512,
     .rope_base = 10000,
     .eps = 1e-6f,
     .tied = true,
     .vocab = "ggml-vocab-llama-spm.gguf",
     .window = 8,
     .attn_softcap = 50.0f,
     .final_softcap = 30.0f},
    {.name = "gemma3-mix",
     .arch = "gemma3",
     .what = "quantizer test gemma3 (256 wide, 6 layers, 4 q heads per kv head)",
     .n_embd = 256,
     .n_layer = 6,
     .n_head = 4,
     .n_head_kv = 1,
     .n_ff = 512,
     .n_ctx = 512,
     .rope_base = 1e6f,
     .eps = 1e-6f,
     .tied = true,
     .vocab = "ggml-vocab-llama-spm.gguf",
     .rope_base_swa = 10000,
     .window = 8},
    {.name = "phi3-mix",
     .arch = "phi3",
     .what = "quantizer test phi3 (256 wide, 4 layers, fused, LongRoPE)",
     .n_embd = 256,
     .n_layer = 4,
     .n_head = 4,
     .n_head_kv = 2,
     .n_ff = 512,
     .n_ctx = 1024,
     .rope_base = 10000,
     .eps = 1e-5f,
     .vocab = "ggml-vocab-phi-3.gguf",
     .rope_scaling = "longrope",
     .orig_ctx = 256,
     .rope_attn_factor = 1.19f},
    {.name = "olmo2-mix",
     .arch = "olmo2",
     .what = "quantizer test olmo2 (256 wide, 2 layers)",
     .n_embd = 256,
     .n_layer = 2,
     .n_head = 4,
     .n_head_kv = 2,
     .n_ff = 512,
     .n_ctx = 512,
     .rope_base = 500000,
     .eps = 1e-6f,
     .vocab = "ggml-vocab-llama-spm.gguf"},
    {.name = "granite-mix",
     .arch = "granite",
     .what = "quantizer test granite (256 wide, 8 layers, tied)",
     .n_embd = 256,
     .n_layer = 8,
     .n_head = 4,
     .n_head_kv = 2,
     .n_ff = 512,
     .n_ctx = 512,
     .rope_base = 10000,
     .eps = 1e-5f,
     .tied = true,
     .vocab = "ggml-vocab-llama-spm.gguf",
     .emb_scale = 12.0f,
     .res_scale = 0.22f,
     .attn_scale = 0.015625f,
     .logit_scale = 8.0f},
    {.name = "qwen3moe-mix",
     .arch = "qwen3moe",
     .what = "quantizer test qwen3moe (256 wide, 2 layers, 4 experts of 256, 2 used)",
     .n_embd = 256,
     .n_layer = 2,
     .n_head = 4,
     .n_head_kv = 2,
     .n_ff = 512,
     .n_ctx = 512,
     .rope_base = 1e6f,
     .eps = 1e-6f,
     .vocab = "ggml-vocab-llama-spm.gguf",
     .n_expert = 4,
     .n_expert_used = 2,
     .n_ff_exp = 256},
    {.name = "smollm3-mix",
     .arch = "smollm3",
     .what = "quantizer test smollm3 (256 wide, 4 layers, untied)",
     .n_embd = 256,
     .n_layer = 4,
     .n_head = 4,
     .n_head_kv = 2,
     .n_ff = 512,
     .n_ctx = 512,
     .rope_base = 5e6f,
     .eps = 1e-6f,
     .vocab = "ggml-vocab-llama-spm.gguf"},
};
#define N_SHAPES (sizeof shapes / sizeof shapes[0])

/* mk_synth.py's knobs */
#define LOGIT_STD 4.0
#define EMB_STD 0.01
#define NORM_SIGMA 0.2
#define RES_GAIN 2.0
/* gemma2: q scaled up so attention scores have std ~3 and its soft-cap (5) bites */
#define SOFTCAP_Q_GAIN 3.0
/* mixtures of experts: each token's routing code and the routers' reading of it (above) */
#define CODE_FIRST 1.0
#define CODE_SECOND 0.6
#define ROUTER_GAIN 8.0
#define ROUTER_NOISE 0.1 /* the std of a router's logits from the rest of the residual */
#define ROUTER_GAIN_OAI 3.0
/* gpt-oss: its experts' gate and up are this much larger (pre-activations of std ~4, so its
 * activation's clamps at 7 bite for some), their down as much smaller twice */
#define OAI_EXPERT_GAIN 4.0
/* gpt-oss: the attention sinks' mean and std (logits next to scores of std ~1) */
#define SINK_MEAN 1.0
#define SINK_STD 1.0

static const synth_arch *find_arch(const char *name) {
    for (size_t i = 0; i < N_ARCHS; i++)
        if (!strcmp(name, archs[i].name)) return &archs[i];
    return NULL;
}

static const synth_shape *find_shape(const char *name) {
    for (size_t i = 0; i < N_SHAPES; i++)
        if (!strcmp(name, shapes[i].name)) return &shapes[i];
    return NULL;
}

static void usage(FILE *f) {
    fprintf(f, "usage: quarrel synth (--arch NAME | --shape NAME) -o OUT.gguf [--type TYPE]\n"
               "                     [--expert-type TYPE] [--rope-scaling KIND] [--vocab FILE]\n"
               "                     [--seed N] [--layers N]\n"
               "  --arch NAME    an architecture, alone its test-sized shape below; one of\n"
               "                ");
    for (size_t i = 0; i < N_ARCHS; i++)
        fprintf(f, "%s %s", i ? "," : "", archs[i].name);
    fprintf(f, "\n  --shape NAME   a named shape (its architecture is implied):\n");
    for (size_t i = 0; i < N_SHAPES; i++)
        fprintf(f, "                   %-13s %-8s %s\n", shapes[i].name, shapes[i].arch,
                shapes[i].what);
    fprintf(f, "  -o, --output FILE  the GGUF file to write\n"
               "  --type TYPE    F16 (default), F32, a tensor type (Q8_0, Q4_K, ...) or a mix\n"
               "                 (Q4_K_M, Q5_K_M, ...: written as F16, then quantized)\n"
               "  --expert-type TYPE  the experts' matrices (a mixture's ffn_*_exps) in this\n"
               "                 tensor type instead (MXFP4, as gpt-oss ships them, ...)\n"
               "  --rope-scaling KIND  none, linear (factor 4), yarn (factor 4, trained on\n"
               "                 n_ctx / 4) or longrope (phi3 only: rope_factors_long/short);\n"
               "                 default: the shape's (longrope for phi3, else none)\n"
               "  --vocab FILE   copy tokenizer.* from this GGUF; a bare name not found here is\n"
               "                 looked up in the shared tokenizer-vectors folder (default: the\n"
               "                 shape's usual vocabulary from there)\n"
               "  --seed N       random seed (default 1)\n"
               "  --layers N     the first N of the shape's layers only (benchmark files of big\n"
               "                 shapes: the widths and experts stay the real ones)\n"
               "  -t, --threads N  quantizer threads for mixes (default 2)\n");
}

/* ---- deterministic normals: splitmix64 + Box-Muller ---- */

typedef struct rng {
    uint64_t s;
    bool has_spare;
    double spare;
} rng;

static uint64_t rng_next(rng *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double rng_uniform(rng *r) { /* (0, 1] */
    return ((double)(rng_next(r) >> 11) + 1.0) * 0x1p-53;
}

static double rng_normal(rng *r) {
    if (r->has_spare) {
        r->has_spare = false;
        return r->spare;
    }
    double rad = sqrt(-2.0 * log(rng_uniform(r)));
    double th = 2.0 * M_PI * rng_uniform(r);
    r->spare = rad * sin(th);
    r->has_spare = true;
    return rad * cos(th);
}

/* ---- the tensor list ---- */

/* T_ROPE_LONG / T_ROPE_SHORT: LongRoPE's per-frequency divisors, a fixed ramp (not random):
 * long from 1 to 8 geometrically, short from 1 to 2 linearly, so the two differ everywhere
 * but at the highest frequency. */
typedef enum tkind { T_MAT, T_EMB, T_VEC, T_ROPE_LONG, T_ROPE_SHORT, T_ROUTER } tkind;

/* What the routing code (mixtures of experts, above) does to a tensor's values */
typedef enum troute { R_NONE, R_CODE, R_ZERO_CODE_ROWS, R_ZERO_CODE_COLS, R_ROUTER } troute;

typedef struct synth_tensor {
    char name[64];
    tkind kind;
    int64_t n_in, n_out; /* ne[0], ne[1] (n_out = 1 for vectors) */
    int64_t n_mat;       /* ne[2]: experts of a 3-D tensor, else 1 */
    double std, mean;    /* mean: vectors only */
    troute route;        /* token_embd's code, the rows that must not write it, a router */
    int layer;
    int type;
    size_t nbytes, offset; /* in the scratch arena */
} synth_tensor;

typedef struct synth_plan {
    synth_tensor *t;
    int n;
} synth_plan;

#define MAX_TENSORS_PER_LAYER 24

/* the last tensor added: a mixture's 3-D expert tensor, or what the routing code touches */
static void set_last(synth_plan *p, int64_t n_mat, troute route, int layer) {
    p->t[p->n - 1].n_mat = n_mat;
    p->t[p->n - 1].route = route;
    p->t[p->n - 1].layer = layer;
}

static void add(synth_plan *p, const char *name, tkind kind, int64_t n_in, int64_t n_out,
                double std, double mean) {
    synth_tensor *t = &p->t[p->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->kind = kind;
    t->n_in = n_in;
    t->n_out = n_out;
    t->std = std;
    t->mean = mean;
    t->n_mat = 1;
}

/* What the command resolved: the shape, its architecture and the rope scaling chosen. */
typedef struct synth_model {
    const synth_shape *s;
    synth_shape own; /* the shape with --layers applied (s points here then) */
    const synth_arch *a;
    int32_t head_dim, n_rot;
    bool tied;
    const char *rope_scaling; /* NULL, "linear", "yarn", "longrope" */
    float rope_factor, router_gain;
    int32_t orig_ctx;
    int32_t n_ff_exp; /* an expert's width */
    uint64_t seed;
} synth_model;

static void plan_tensors(const synth_model *m, int64_t n_vocab, synth_plan *p) {
    const synth_shape *s = m->s;
    const synth_arch *a = m->a;
    const int64_t E = s->n_embd, L = s->n_layer, FF = s->n_ff, hd = m->head_dim;
    const int64_t nq = s->n_head * hd, nkv = s->n_head_kv * hd;
    const double s_in = 1.0 / sqrt((double)E), s_res = RES_GAIN / sqrt(2.0 * (double)L);
    /* granite scales each block's output by residual_scale and q.k by attention.scale instead
     * of 1/sqrt(head_dim): undo both in the weights */
    const double res_comp = s->res_scale > 0 ? 1.0 / s->res_scale : 1.0;
    double q_gain = s->attn_scale > 0 ? (1.0 / sqrt((double)hd)) / s->attn_scale : 1.0;
    if (s->attn_softcap > 0) q_gain *= SOFTCAP_Q_GAIN;
    /* with q norms the gain goes in the norm's weight, else in attn_q */
    const double q_w_gain = a->qk_norm == QKN_NONE ? q_gain : 1.0;
    /* post-norms set each block's output RMS to their gain: make that the recipe's s_res */
    const double o_std = a->post_norms ? s_in : s_in * s_res * res_comp;
    const double down_std =
        a->post_norms ? 1.0 / sqrt((double)FF) : s_res * res_comp / sqrt((double)FF);
    const double out_std = m->tied ? EMB_STD : LOGIT_STD / sqrt((double)E);
    double g_out = LOGIT_STD / (sqrt((double)E) * out_std);
    if (s->logit_scale > 0) g_out *= s->logit_scale; /* granite divides the logits by it */
    char n[64];
    const bool moe = s->n_expert > 0;
    add(p, "token_embd.weight", T_EMB, E, n_vocab, EMB_STD, 0);
    if (moe) set_last(p, 1, R_CODE, 0);
    for (int64_t l = 0; l < L; l++) {
#define NAME(x) (snprintf(n, sizeof n, "blk.%d." x, (int)l), n)
        if (a->pre_norms) add(p, NAME("attn_norm.weight"), T_VEC, E, 1, 0.05, 1.0);
        if (a->fused) {
            add(p, NAME("attn_qkv.weight"), T_MAT, E, nq + 2 * nkv, s_in, 0); /* [q | k | v] */
        } else {
            add(p, NAME("attn_q.weight"), T_MAT, E, nq, s_in * q_w_gain, 0);
            add(p, NAME("attn_k.weight"), T_MAT, E, nkv, s_in, 0);
            add(p, NAME("attn_v.weight"), T_MAT, E, nkv, s_in, 0);
        }
        if (a->qkv_bias) {
            add(p, NAME("attn_q.bias"), T_VEC, nq, 1, 0.1, 0);
            add(p, NAME("attn_k.bias"), T_VEC, nkv, 1, 0.1, 0);
            add(p, NAME("attn_v.bias"), T_VEC, nkv, 1, 0.1, 0);
        }
        if (a->qk_norm == QKN_HEAD) {
            add(p, NAME("attn_q_norm.weight"), T_VEC, hd, 1, 0.05 * q_gain, q_gain);
            add(p, NAME("attn_k_norm.weight"), T_VEC, hd, 1, 0.05, 1.0);
        } else if (a->qk_norm == QKN_FULL) {
            add(p, NAME("attn_q_norm.weight"), T_VEC, nq, 1, 0.05 * q_gain, q_gain);
            add(p, NAME("attn_k_norm.weight"), T_VEC, nkv, 1, 0.05, 1.0);
        }
        add(p, NAME("attn_output.weight"), T_MAT, nq, E, o_std, 0);
        if (moe) set_last(p, 1, R_ZERO_CODE_ROWS, (int)l);
        if (a->oai) { /* the output's bias, then the sinks: a logit per query head */
            add(p, NAME("attn_output.bias"), T_VEC, E, 1, 0.02, 0);
            set_last(p, 1, R_ZERO_CODE_COLS, (int)l);
            add(p, NAME("attn_sinks.weight"), T_VEC, s->n_head, 1, SINK_STD, SINK_MEAN);
        }
        if (a->post_norms)
            add(p, NAME("post_attention_norm.weight"), T_VEC, E, 1, 0.05 * s_res, s_res);
        if (a->oai) /* gpt-oss's FFN norm, under this name */
            add(p, NAME("post_attention_norm.weight"), T_VEC, E, 1, 0.05, 1.0);
        else if (a->pre_norms)
            add(p, NAME("ffn_norm.weight"), T_VEC, E, 1, 0.05, 1.0);
        if (moe) { /* the router, then the experts as 3-D tensors [n_in, n_out, n_expert] */
            const int64_t X = s->n_expert, FE = m->n_ff_exp;
            const double gain = a->oai ? OAI_EXPERT_GAIN : 1.0;
            const double down_exp_std =
                (a->post_norms ? 1.0 / sqrt((double)FE) : s_res * res_comp / sqrt((double)FE)) /
                (gain * gain);
            add(p, NAME("ffn_gate_inp.weight"), T_ROUTER, E, X, ROUTER_NOISE * s_in, 0);
            set_last(p, 1, R_ROUTER, (int)l);
            if (a->oai) add(p, NAME("ffn_gate_inp.bias"), T_VEC, X, 1, 0.1, 0);
            add(p, NAME("ffn_gate_exps.weight"), T_MAT, E, FE, s_in * gain, 0);
            set_last(p, X, R_NONE, (int)l);
            if (a->oai) add(p, NAME("ffn_gate_exps.bias"), T_VEC, FE, X, 0.1, 0);
            add(p, NAME("ffn_up_exps.weight"), T_MAT, E, FE, s_in * gain, 0);
            set_last(p, X, R_NONE, (int)l);
            if (a->oai) add(p, NAME("ffn_up_exps.bias"), T_VEC, FE, X, 0.1, 0);
            add(p, NAME("ffn_down_exps.weight"), T_MAT, FE, E, down_exp_std, 0);
            set_last(p, X, R_ZERO_CODE_ROWS, (int)l);
            if (a->oai) { /* [n_embd, n_expert]: each expert's row, the code entries 0 */
                add(p, NAME("ffn_down_exps.bias"), T_VEC, E, X,
                    0.1 * down_exp_std * gain * gain * sqrt((double)FE), 0);
                set_last(p, 1, R_ZERO_CODE_COLS, (int)l);
            }
        } else if (a->fused) {
            add(p, NAME("ffn_up.weight"), T_MAT, E, 2 * FF, s_in, 0); /* [gate | up] rows */
        } else {
            add(p, NAME("ffn_gate.weight"), T_MAT, E, FF, s_in, 0);
            add(p, NAME("ffn_up.weight"), T_MAT, E, FF, s_in, 0);
        }
        if (!moe) add(p, NAME("ffn_down.weight"), T_MAT, FF, E, down_std, 0);
        if (a->post_norms) add(p, NAME("post_ffw_norm.weight"), T_VEC, E, 1, 0.05 * s_res, s_res);
#undef NAME
    }
    add(p, "output_norm.weight", T_VEC, E, 1, 0.05 * g_out, g_out);
    if (!m->tied) add(p, "output.weight", T_EMB, E, n_vocab, out_std, 0);
    if (m->rope_scaling && !strcmp(m->rope_scaling, "longrope")) {
        add(p, "rope_factors_long.weight", T_ROPE_LONG, m->n_rot / 2, 1, 0, 0);
        add(p, "rope_factors_short.weight", T_ROPE_SHORT, m->n_rot / 2, 1, 0, 0);
    }
}

/* A token's routing code: its two experts' code dimensions, different (a mixture, above) */
static void token_code(const synth_model *m, int64_t token, int *first, int *second) {
    const int n = m->s->n_expert;
    rng r = {.s = m->seed * 0xD1B54A32D192ED03ull + (uint64_t)token};
    const uint64_t h = rng_next(&r);
    *first = (int)(h % (uint64_t)n);
    *second = (*first + 1 + (int)((h >> 32) % (uint64_t)(n - 1))) % n;
}

/* What the routing code makes of row `row` (counted over all experts) of t: token_embd's code
 * in its last n_expert values; zero rows where a block would write the code; a router row
 * reading its code dimension. */
static void route_row(const synth_model *m, const synth_tensor *t, int64_t row, float *x) {
    const int n = m->s->n_expert;
    const int64_t code0 = m->s->n_embd - n; /* the first code dimension */
    if (t->route == R_CODE) {
        int first, second;
        token_code(m, row, &first, &second);
        for (int j = 0; j < n; j++)
            x[code0 + j] = 0.0f;
        x[code0 + first] = (float)CODE_FIRST;
        x[code0 + second] = (float)CODE_SECOND;
    } else if (t->route == R_ZERO_CODE_ROWS) {
        if (row % t->n_out >= code0)
            for (int64_t j = 0; j < t->n_in; j++)
                x[j] = 0.0f;
    } else if (t->route == R_ZERO_CODE_COLS) { /* a bias (row) over n_embd */
        for (int j = 0; j < n; j++)
            x[code0 + j] = 0.0f;
    } else if (t->route == R_ROUTER) { /* row = expert */
        x[code0 + (row + t->layer) % n] = (float)m->router_gain;
    }
}

/* Fill rows [r0, r0 + n_rows) of tensor t (rows counted over all its experts) as f32 into buf.
 * Each tensor has its own stream (seed, tensor index), so the values do not depend on the
 * chunking. */
static void gen_rows(const synth_model *m, const synth_tensor *t, rng *r, int64_t r0,
                     int64_t n_rows, float *buf) {
    if (t->kind == T_ROPE_LONG || t->kind == T_ROPE_SHORT) {
        for (int64_t j = 0; j < t->n_in; j++) {
            double x = t->n_in > 1 ? (double)j / (double)(t->n_in - 1) : 0.0;
            buf[j] = (float)(t->kind == T_ROPE_LONG ? pow(8.0, x) : 1.0 + x);
        }
        return;
    }
    for (int64_t row = 0; row < n_rows; row++) {
        float *x = buf + row * t->n_in;
        double scale = t->std;
        if (t->kind == T_EMB) /* a row norm ~ lognormal(0, sigma), normalised to RMS 1 */
            scale *= exp(NORM_SIGMA * rng_normal(r) - NORM_SIGMA * NORM_SIGMA);
        for (int64_t j = 0; j < t->n_in; j++)
            x[j] = (float)(t->mean + scale * rng_normal(r));
        if (t->route != R_NONE) route_row(m, t, r0 + row, x);
    }
}

/* ---- scratch arena: a shared mapping of an unlinked file beside the output ---- */

typedef struct arena {
    void *base;
    size_t size;
} arena;

static int arena_create(arena *a, const char *out_path, size_t size) {
    char tmpl[4200];
    snprintf(tmpl, sizeof tmpl, "%s.scratch.XXXXXX", out_path);
    int fd = mkstemp(tmpl);
    if (fd < 0) {
        fprintf(stderr, "quarrel synth: cannot create a scratch file '%s': %s\n", tmpl,
                strerror(errno));
        return 1;
    }
    unlink(tmpl);
    if (size == 0) size = 1;
    int err = posix_fallocate(fd, 0, (off_t)size);
    if (err) {
        fprintf(stderr,
                "quarrel synth: cannot reserve %zu bytes of scratch space beside '%s': %s\n", size,
                out_path, strerror(err));
        close(fd);
        return 1;
    }
    a->base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (a->base == MAP_FAILED) {
        fprintf(stderr, "quarrel synth: cannot map %zu bytes of scratch space: %s\n", size,
                strerror(errno));
        a->base = NULL;
        return 1;
    }
    a->size = size;
    return 0;
}

static void arena_free(arena *a) {
    if (a->base) munmap(a->base, a->size);
    a->base = NULL;
}

/* ---- metadata ---- */

/* llama.cpp's general.file_type for the plain types (llama_ftype), -1 where there is none */
static int file_type_of(int type) {
    switch (type) {
    case QR_TYPE_F32:
        return 0;
    case QR_TYPE_F16:
        return 1;
    case QR_TYPE_Q4_0:
        return 2;
    case QR_TYPE_Q4_1:
        return 3;
    case QR_TYPE_Q8_0:
        return 7;
    case QR_TYPE_Q5_0:
        return 8;
    case QR_TYPE_Q5_1:
        return 9;
    case QR_TYPE_Q6_K:
        return 18;
    case QR_TYPE_BF16:
        return 32;
    default:
        return -1;
    }
}

/* The keys llama.cpp reads for the architecture; optional ones only where the shape sets them
 * (llama.cpp's defaults then apply). */
static qr_status set_metadata(qr_gguf_writer *w, const synth_model *m, const qr_gguf *vocab,
                              int64_t n_vocab, int file_type, uint64_t seed) {
    const synth_shape *s = m->s;
    const char *arch = m->a->gguf ? m->a->gguf : m->a->name;
    char name[160], key[128];
    snprintf(name, sizeof name, "quarrel-synth-%s%s%s-seed%llu", s->name,
             m->rope_scaling ? "-" : "", m->rope_scaling ? m->rope_scaling : "",
             (unsigned long long)seed);
    qr_status st = QR_OK;
#define KEY(x) (snprintf(key, sizeof key, "%s." x, arch), key)
#define U32(k, v) ((st = qr_gguf_writer_set_u32(w, KEY(k), (uint32_t)(v))))
#define F32(k, v) ((st = qr_gguf_writer_set_f32(w, KEY(k), (float)(v))))
    if ((st = qr_gguf_writer_set_str(w, "general.architecture", arch)) ||
        (st = qr_gguf_writer_set_str(w, "general.name", name)) || U32("context_length", s->n_ctx) ||
        U32("embedding_length", s->n_embd) || U32("block_count", s->n_layer) ||
        U32("feed_forward_length", s->n_ff) || U32("attention.head_count", s->n_head) ||
        U32("attention.head_count_kv", s->n_head_kv) || F32("rope.freq_base", s->rope_base) ||
        F32("attention.layer_norm_rms_epsilon", s->eps) || U32("rope.dimension_count", m->n_rot))
        return st;
    if ((m->a->head_keys || m->head_dim * s->n_head != s->n_embd) &&
        (U32("attention.key_length", m->head_dim) || U32("attention.value_length", m->head_dim)))
        return st;
    if (!strcmp(arch, "llama") && U32("vocab_size", n_vocab)) return st;
    if (s->n_expert > 0 &&
        (U32("expert_count", s->n_expert) || U32("expert_used_count", s->n_expert_used)))
        return st;
    if (s->n_ff_exp > 0 && U32("expert_feed_forward_length", s->n_ff_exp)) return st;
    if (s->rope_base_swa > 0 && F32("rope.freq_base_swa", s->rope_base_swa)) return st;
    if (s->window > 0 && U32("attention.sliding_window", s->window)) return st;
    if (s->attn_softcap > 0 && F32("attn_logit_softcapping", s->attn_softcap)) return st;
    if (s->final_softcap > 0 && F32("final_logit_softcapping", s->final_softcap)) return st;
    if (s->logit_scale > 0 && F32("logit_scale", s->logit_scale)) return st;
    if (s->res_scale > 0 && F32("residual_scale", s->res_scale)) return st;
    if (s->emb_scale > 0 && F32("embedding_scale", s->emb_scale)) return st;
    if (s->attn_scale > 0 && F32("attention.scale", s->attn_scale)) return st;
    if (m->rope_scaling) {
        /* LongRoPE is what convert_hf_to_gguf writes for Phi-3: no scaling type or factor
         * (the factors are the tensors), the original context and the attention factor */
        bool longrope = !strcmp(m->rope_scaling, "longrope");
        if (!longrope &&
            ((st = qr_gguf_writer_set_str(w, KEY("rope.scaling.type"), m->rope_scaling)) ||
             F32("rope.scaling.factor", m->rope_factor)))
            return st;
        if ((longrope || !strcmp(m->rope_scaling, "yarn")) &&
            U32("rope.scaling.original_context_length", m->orig_ctx))
            return st;
        if (longrope && s->rope_attn_factor > 0 &&
            F32("rope.scaling.attn_factor", s->rope_attn_factor))
            return st;
    }
#undef F32
#undef U32
#undef KEY
    if (file_type >= 0 &&
        (st = qr_gguf_writer_set_u32(w, "general.file_type", (uint32_t)file_type)))
        return st;
    for (int64_t i = 0; i < qr_gguf_n_kv(vocab); i++) {
        const char *k = qr_gguf_key(vocab, i);
        if (strncmp(k, "tokenizer.", 10) != 0) continue;
        if ((st = qr_gguf_writer_set(w, k, qr_gguf_value_at(vocab, i)))) return st;
    }
    return QR_OK;
}

/* ---- the command ---- */

typedef struct synth_opts {
    const char *arch, *shape, *rope_scaling;
    const char *out, *type_name, *vocab, *expert_type;
    uint64_t seed;
    int32_t threads, layers;
} synth_opts;

static int parse(int argc, char **argv, synth_opts *o) {
    o->type_name = "F16";
    o->seed = 1;
    o->threads = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        }
        bool known = !strcmp(a, "--arch") || !strcmp(a, "--shape") || !strcmp(a, "-o") ||
                     !strcmp(a, "--output") || !strcmp(a, "--type") || !strcmp(a, "--vocab") ||
                     !strcmp(a, "--seed") || !strcmp(a, "--rope-scaling") || !strcmp(a, "-t") ||
                     !strcmp(a, "--threads") || !strcmp(a, "--expert-type") ||
                     !strcmp(a, "--layers");
        if (!known) {
            fprintf(stderr, "quarrel synth: unknown option '%s' (see quarrel synth --help)\n", a);
            return 2;
        }
        if (!v) {
            fprintf(stderr, "quarrel synth: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--arch")) {
            o->arch = v;
        } else if (!strcmp(a, "--shape")) {
            o->shape = v;
        } else if (!strcmp(a, "--rope-scaling")) {
            o->rope_scaling = v;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            o->out = v;
        } else if (!strcmp(a, "--type")) {
            o->type_name = v;
        } else if (!strcmp(a, "--expert-type")) {
            o->expert_type = v;
        } else if (!strcmp(a, "--vocab")) {
            o->vocab = v;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (parse_int(a, v, 1, 512, &o->threads)) return 2;
        } else if (!strcmp(a, "--layers")) {
            if (parse_int(a, v, 1, 4096, &o->layers)) return 2;
        } else { /* --seed */
            char *end;
            errno = 0;
            unsigned long long s = strtoull(v, &end, 10);
            if (errno || end == v || *end || v[0] == '-') {
                fprintf(stderr, "quarrel synth: --seed expects a non-negative integer, got '%s'\n",
                        v);
                return 2;
            }
            o->seed = s;
        }
    }
    if (!o->arch && !o->shape) {
        fprintf(stderr, "quarrel synth: give an architecture with --arch or a shape with --shape "
                        "(see quarrel synth --help)\n");
        return 2;
    }
    if (!o->out) {
        fprintf(stderr, "quarrel synth: give an output file with -o\n");
        return 2;
    }
    return 0;
}

/* The shape, architecture and rope scaling the options name; 2 (usage error) if they do not
 * fit together. */
static int resolve(const synth_opts *o, synth_model *m) {
    memset(m, 0, sizeof *m);
    if (o->arch && !find_arch(o->arch)) {
        fprintf(stderr, "quarrel synth: unknown architecture '%s' (", o->arch);
        for (size_t i = 0; i < N_ARCHS; i++)
            fprintf(stderr, "%s%s", i ? ", " : "", archs[i].name);
        fprintf(stderr, ")\n");
        return 2;
    }
    if (o->shape) {
        m->s = find_shape(o->shape);
        if (!m->s) {
            fprintf(stderr, "quarrel synth: unknown shape '%s' (", o->shape);
            for (size_t i = 0; i < N_SHAPES; i++)
                fprintf(stderr, "%s%s", i ? ", " : "", shapes[i].name);
            fprintf(stderr, ")\n");
            return 2;
        }
        if (o->arch && strcmp(o->arch, m->s->arch)) {
            fprintf(stderr, "quarrel synth: shape '%s' is a %s model, not %s\n", o->shape,
                    m->s->arch, o->arch);
            return 2;
        }
    } else {
        m->s = find_shape(find_arch(o->arch)->tiny);
    }
    if (o->layers) {
        if (o->layers > m->s->n_layer) {
            fprintf(stderr, "quarrel synth: --layers %d: shape '%s' has %d layers\n", (int)o->layers,
                    m->s->name, (int)m->s->n_layer);
            return 2;
        }
        m->own = *m->s;
        m->own.n_layer = o->layers;
        m->s = &m->own;
    }
    const synth_shape *s = m->s;
    m->a = find_arch(s->arch);
    m->head_dim = s->head_dim ? s->head_dim : s->n_embd / s->n_head;
    m->n_rot = s->n_rot ? s->n_rot : m->head_dim;
    m->tied = m->a->tie == TIE_ALWAYS || (m->a->tie == TIE_SHAPE && s->tied);
    m->rope_scaling = s->rope_scaling;
    if (o->rope_scaling) {
        const char *r = o->rope_scaling;
        if (!strcmp(r, "none")) {
            m->rope_scaling = NULL;
        } else if (!strcmp(r, "linear") || !strcmp(r, "yarn")) {
            m->rope_scaling = !strcmp(r, "linear") ? "linear" : "yarn";
        } else if (!strcmp(r, "longrope")) {
            if (!m->a->fused) { /* only phi3 binds rope_factors_long/short for every model */
                fprintf(stderr,
                        "quarrel synth: --rope-scaling longrope is for phi3 models, not "
                        "%s\n",
                        m->a->name);
                return 2;
            }
            m->rope_scaling = "longrope";
        } else {
            fprintf(stderr,
                    "quarrel synth: unknown --rope-scaling '%s' (none, linear, yarn, longrope)\n",
                    r);
            return 2;
        }
    }
    m->n_ff_exp = s->n_ff_exp ? s->n_ff_exp : s->n_ff;
    m->seed = o->seed;
    m->rope_factor = s->rope_factor > 0 ? s->rope_factor : 4.0f;
    m->router_gain = m->a->oai ? ROUTER_GAIN_OAI : ROUTER_GAIN;
    m->orig_ctx = s->orig_ctx ? s->orig_ctx : (int32_t)(s->n_ctx / m->rope_factor);
    return 0;
}

/* Generate every tensor of the plan into the arena and register it with the writer. */
static int generate(const synth_opts *o, const synth_model *m, synth_plan *p, arena *a,
                    qr_gguf_writer *w) {
    const int64_t chunk_elems = (int64_t)1 << 22;
    float *buf = malloc((size_t)chunk_elems * sizeof *buf); /* holds >= 1 row of any shape */
    if (!buf) {
        fprintf(stderr, "quarrel synth: out of memory\n");
        return 1;
    }
    int rc = 0;
    for (int i = 0; i < p->n && rc == 0; i++) {
        synth_tensor *t = &p->t[i];
        rng r = {.s = o->seed * 0x100000001B3ull + (uint64_t)i * 0x9E3779B97F4A7C15ull};
        rng_next(&r);
        const int64_t rows_per_chunk = chunk_elems / t->n_in;
        const size_t row_bytes = qr_type_row_bytes(t->type, t->n_in);
        char *dst = (char *)a->base + t->offset;
        const int64_t n_rows = t->n_out * t->n_mat;
        for (int64_t r0 = 0; r0 < n_rows; r0 += rows_per_chunk) {
            int64_t nr = n_rows - r0 < rows_per_chunk ? n_rows - r0 : rows_per_chunk;
            gen_rows(m, t, &r, r0, nr, buf);
            char *d = dst + (size_t)r0 * row_bytes;
            if (t->type == QR_TYPE_F32) {
                memcpy(d, buf, (size_t)(nr * t->n_in) * sizeof(float));
            } else if (qr_quantize(t->type, buf, d, nr * t->n_in) != QR_OK) {
                fprintf(stderr, "quarrel synth: %s as %s: %s\n", t->name, qr_type_name(t->type),
                        qr_last_error());
                rc = 1;
                break;
            }
        }
        if (rc) break;
        int64_t ne[3] = {t->n_in, t->n_out, t->n_mat};
        const uint32_t n_dims = t->n_mat > 1 ? 3 : t->n_out == 1 ? 1 : 2;
        if (qr_gguf_writer_add_tensor(w, t->name, t->type, n_dims, ne, dst, t->nbytes) != QR_OK)
            rc = cli_fail(t->name);
    }
    free(buf);
    return rc;
}

int cmd_synth(int argc, char **argv) {
    synth_opts o = {0};
    int rc = parse(argc, argv, &o);
    if (rc) return rc;
    synth_model m;
    if ((rc = resolve(&o, &m))) return rc;
    const synth_shape *s = m.s;

    /* what to produce: a plain type directly, a mix via F16 */
    int type = qr_type_from_name(o.type_name);
    bool mix = false;
    if (type < 0) {
        static const char *const mixes[] = {"Q2_K",   "Q3_K_S", "Q3_K_M", "Q3_K_L",
                                            "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M"};
        for (size_t i = 0; i < sizeof mixes / sizeof mixes[0]; i++)
            if (!strcasecmp(o.type_name, mixes[i])) mix = true;
        if (!mix) {
            fprintf(stderr,
                    "quarrel synth: unknown --type '%s' (F32, F16, Q8_0, Q4_K, ... or a "
                    "mix such as Q4_K_M)\n",
                    o.type_name);
            return 2;
        }
        type = QR_TYPE_F16;
    } else if (qr_type_block_size(type) <= 0) {
        fprintf(stderr, "quarrel synth: --type '%s' is not a tensor type Quarrel can write\n",
                o.type_name);
        return 2;
    }

    int expert_type = type;
    if (o.expert_type) {
        expert_type = qr_type_from_name(o.expert_type);
        if (expert_type < 0 || qr_type_block_size(expert_type) <= 0 || mix) {
            fprintf(stderr,
                    "quarrel synth: --expert-type '%s' is not a tensor type Quarrel can write%s\n",
                    o.expert_type, mix ? " (or --type is a mix)" : "");
            return 2;
        }
        if (s->n_expert == 0) {
            fprintf(stderr, "quarrel synth: --expert-type: shape '%s' has no experts\n", s->name);
            return 2;
        }
    }

    /* a bare file name that is not here names a file of the shared vocabulary folder */
    char vocab_path[4096];
    if (o.vocab && (strchr(o.vocab, '/') || access(o.vocab, F_OK) == 0))
        snprintf(vocab_path, sizeof vocab_path, "%s", o.vocab);
    else
        snprintf(vocab_path, sizeof vocab_path, "%s/../tokenizer-vectors/%s", QR_MODELS_DIR,
                 o.vocab ? o.vocab : s->vocab);
    qr_gguf *vocab = NULL;
    if (qr_gguf_open(vocab_path, &vocab) != QR_OK) return cli_fail("vocabulary");
    const qr_gguf_value *tokens = qr_gguf_get_arr(vocab, "tokenizer.ggml.tokens");
    if (!tokens || tokens->arr.type != QR_GGUF_STRING || tokens->arr.n == 0) {
        fprintf(stderr,
                "quarrel synth: '%s' has no tokenizer.ggml.tokens string array: not a "
                "vocabulary\n",
                vocab_path);
        qr_gguf_free(vocab);
        return 1;
    }
    const int64_t n_vocab = (int64_t)tokens->arr.n;

    synth_plan plan = {0};
    plan.t = calloc((size_t)(5 + MAX_TENSORS_PER_LAYER * s->n_layer), sizeof *plan.t);
    qr_gguf_writer *w = qr_gguf_writer_create();
    arena a = {0};
    char tmp_path[4200] = "";
    rc = 1;
    if (!plan.t || !w) {
        fprintf(stderr, "quarrel synth: out of memory\n");
        goto done;
    }
    plan_tensors(&m, n_vocab, &plan);
    size_t total = 0;
    int n_fallback = 0;
    for (int i = 0; i < plan.n; i++) {
        synth_tensor *t = &plan.t[i];
        t->type = t->kind == T_MAT || t->kind == T_EMB ? (t->n_mat > 1 ? expert_type : type)
                                                       : QR_TYPE_F32;
        if (t->n_in % qr_type_block_size(t->type) != 0) { /* rows not whole blocks */
            t->type = QR_TYPE_F16;
            n_fallback++;
        }
        t->nbytes = qr_type_row_bytes(t->type, t->n_in) * (size_t)(t->n_out * t->n_mat);
        t->offset = total;
        total += (t->nbytes + 63) / 64 * 64;
    }
    if (n_fallback)
        fprintf(stderr,
                "quarrel synth: %d tensors have rows of a size %s cannot hold; they are "
                "F16\n",
                n_fallback, qr_type_name(type));
    const int file_type = mix ? 1 : expert_type != type ? -1 : file_type_of(type);
    if (set_metadata(w, &m, vocab, n_vocab, file_type, o.seed) != QR_OK) {
        cli_fail("metadata");
        goto done;
    }
    if (arena_create(&a, o.out, total)) goto done;
    fprintf(stderr, "quarrel synth: %s %s%s%s, %d tensors, %.1f MB as %s...\n", m.a->name, s->what,
            m.rope_scaling ? ", rope scaling " : "", m.rope_scaling ? m.rope_scaling : "", plan.n,
            (double)total / 1e6, mix ? "F16" : qr_type_name(type));
    if (generate(&o, &m, &plan, &a, w)) goto done;

    const char *write_path = o.out;
    if (mix) {
        snprintf(tmp_path, sizeof tmp_path, "%s.f16.tmp", o.out);
        write_path = tmp_path;
    }
    if (qr_gguf_writer_write(w, write_path) != QR_OK) {
        cli_fail("writing");
        goto done;
    }
    arena_free(&a);
    if (mix) {
        fprintf(stderr, "quarrel synth: quantizing to %s...\n", o.type_name);
        qr_quantize_params qp = {.n_threads = o.threads, .verbose = false};
        if (qr_quantize_file(tmp_path, o.out, o.type_name, &qp) != QR_OK) {
            cli_fail("quantizing");
            goto done;
        }
    }
    fprintf(stderr, "quarrel synth: wrote %s\n", o.out);
    rc = 0;
done:
    if (tmp_path[0]) unlink(tmp_path);
    arena_free(&a);
    qr_gguf_writer_free(w);
    free(plan.t);
    qr_gguf_free(vocab);
    return rc;
}
