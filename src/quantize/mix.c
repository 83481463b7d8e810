/* mix.c - which type each tensor of a model gets, for a file type (ftype): llama.cpp's rules
 * (src/llama-quant.cpp: tensor_allows_quantization, llama_tensor_get_type_impl,
 * tensor_type_fallback), reduced to the ftypes Quarrel offers. */
#include "quantize/quantize_internal.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

/* llama.cpp's LLAMA_FTYPE_* values (include/llama.h) */
enum {
    FTYPE_F16 = 1,
    FTYPE_Q4_0 = 2,
    FTYPE_Q4_1 = 3,
    FTYPE_Q8_0 = 7,
    FTYPE_Q5_0 = 8,
    FTYPE_Q5_1 = 9,
    FTYPE_Q2_K = 10,
    FTYPE_Q3_K_S = 11,
    FTYPE_Q3_K_M = 12,
    FTYPE_Q3_K_L = 13,
    FTYPE_Q4_K_S = 14,
    FTYPE_Q4_K_M = 15,
    FTYPE_Q5_K_S = 16,
    FTYPE_Q5_K_M = 17,
    FTYPE_Q6_K = 18,
    FTYPE_IQ4_NL = 25,
    FTYPE_IQ4_XS = 30,
    FTYPE_BF16 = 32,
};

/* Bare Q3_K/Q4_K/Q5_K are no llama.cpp ftype: every weight matrix gets that type (as
 * llama-quantize --pure) and the file says Q3_K_S/Q4_K_S/Q5_K_S, the closest mix. */
static const qr_quant_ftype ftypes[] = {
    {"F16", FTYPE_F16, QR_TYPE_F16, QR_MIX_NONE},
    {"BF16", FTYPE_BF16, QR_TYPE_BF16, QR_MIX_NONE},
    {"Q8_0", FTYPE_Q8_0, QR_TYPE_Q8_0, QR_MIX_NONE},
    {"Q4_0", FTYPE_Q4_0, QR_TYPE_Q4_0, QR_MIX_NONE},
    {"Q4_1", FTYPE_Q4_1, QR_TYPE_Q4_1, QR_MIX_NONE},
    {"Q5_0", FTYPE_Q5_0, QR_TYPE_Q5_0, QR_MIX_NONE},
    {"Q5_1", FTYPE_Q5_1, QR_TYPE_Q5_1, QR_MIX_NONE},
    {"Q6_K", FTYPE_Q6_K, QR_TYPE_Q6_K, QR_MIX_NONE},
    {"Q3_K", FTYPE_Q3_K_S, QR_TYPE_Q3_K, QR_MIX_PURE},
    {"Q4_K", FTYPE_Q4_K_S, QR_TYPE_Q4_K, QR_MIX_PURE},
    {"Q5_K", FTYPE_Q5_K_S, QR_TYPE_Q5_K, QR_MIX_PURE},
    {"Q2_K", FTYPE_Q2_K, QR_TYPE_Q2_K, QR_MIX_Q2_K},
    {"Q3_K_S", FTYPE_Q3_K_S, QR_TYPE_Q3_K, QR_MIX_Q3_K_S},
    {"Q3_K_M", FTYPE_Q3_K_M, QR_TYPE_Q3_K, QR_MIX_Q3_K_M},
    {"Q3_K_L", FTYPE_Q3_K_L, QR_TYPE_Q3_K, QR_MIX_Q3_K_L},
    {"Q4_K_S", FTYPE_Q4_K_S, QR_TYPE_Q4_K, QR_MIX_Q4_K_S},
    {"Q4_K_M", FTYPE_Q4_K_M, QR_TYPE_Q4_K, QR_MIX_Q4_K_M},
    {"Q5_K_S", FTYPE_Q5_K_S, QR_TYPE_Q5_K, QR_MIX_Q5_K_S},
    {"Q5_K_M", FTYPE_Q5_K_M, QR_TYPE_Q5_K, QR_MIX_Q5_K_M},
    {"IQ4_NL", FTYPE_IQ4_NL, QR_TYPE_IQ4_NL, QR_MIX_IQ4_NL},
    {"IQ4_XS", FTYPE_IQ4_XS, QR_TYPE_IQ4_XS, QR_MIX_IQ4_XS},
};

const qr_quant_ftype *qr_quant_ftype_find(const char *name) {
    if (!name) return NULL;
    for (size_t i = 0; i < sizeof ftypes / sizeof ftypes[0]; i++)
        if (!strcasecmp(ftypes[i].name, name)) return &ftypes[i];
    return NULL;
}

const char *qr_quant_ftype_names(void) {
    return "F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q6_K, Q3_K, Q4_K, Q5_K (pure), "
           "Q2_K, Q3_K_S, Q3_K_M, Q3_K_L, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M, IQ4_NL, IQ4_XS (mixes)";
}

static int layer_of(const char *name) {
    int layer = -1;
    if (sscanf(name, "blk.%d.", &layer) != 1) return -1;
    return layer;
}

int qr_quant_tensor_cmp(const char *a, const char *b) {
    const int la = layer_of(a), lb = layer_of(b);
    if (la != lb) return la < lb ? -1 : 1;
    return strcmp(a, b);
}

typedef enum category {
    CAT_TOKEN_EMBD,
    CAT_ATTN_Q,
    /* attn_v, attn_qkv and attn_kv_b: the value-like tensors. llama.cpp (v0.5.0) also has an
     * ATTENTION_QKV branch (q4_K/q5_K/q6_K for the Q3_K_M/L, Q4_K_M, Q5_K_M mixes), but its
     * attn_v branch, tested first, takes attn_qkv too: phi3's fused tensor follows the attn_v
     * rules and advances the attn_v index (checked on llama.cpp's files: test_mix_arch.sh). */
    CAT_ATTN_V,
    CAT_ATTN_K,
    CAT_ATTN_OUTPUT,
    CAT_FFN_UP,
    CAT_FFN_GATE,
    CAT_FFN_DOWN,
    CAT_OUTPUT,
    CAT_OTHER,
} category;

static category category_of(const char *name) {
    if (!strcmp(name, "output.weight")) return CAT_OUTPUT;
    if (!strcmp(name, "token_embd.weight") || !strcmp(name, "per_layer_token_embd.weight"))
        return CAT_TOKEN_EMBD;
    if (strstr(name, "attn_qkv.weight") || strstr(name, "attn_kv_b.weight") ||
        strstr(name, "attn_v.weight"))
        return CAT_ATTN_V;
    if (strstr(name, "attn_k.weight")) return CAT_ATTN_K;
    if (strstr(name, "attn_q.weight")) return CAT_ATTN_Q;
    if (strstr(name, "attn_output.weight")) return CAT_ATTN_OUTPUT;
    if (strstr(name, "ffn_up")) return CAT_FFN_UP;
    if (strstr(name, "ffn_gate")) return CAT_FFN_GATE;
    if (strstr(name, "ffn_down")) return CAT_FFN_DOWN;
    return CAT_OTHER;
}

/* ggml_n_dims: trailing dimensions of 1 do not count */
static int n_dims(const int64_t ne[4]) {
    int n = 4;
    while (n > 1 && ne[n - 1] == 1)
        n--;
    return n;
}

/* Only weight matrices are quantized; norms, routers, small or positional tensors are not
 * (llama.cpp's tensor_allows_quantization, whose name list this follows). */
static bool allows_quantization(const char *name, const int64_t ne[4]) {
    if (n_dims(ne) < 2) return false;
    const size_t len = strlen(name);
    if (len < 6 || strcmp(name + len - 6, "weight") != 0) return false;
    static const char *never[] = {"_norm.weight",
                                  "ffn_gate_inp.weight",
                                  "ffn_gate_tid2eid.weight",
                                  "altup",
                                  "laurel",
                                  "per_layer_model_proj",
                                  "ssm_conv1d",
                                  "shortconv.conv.weight",
                                  "indexer.k_proj.weight",
                                  "indexer.q_proj.weight",
                                  "time_mix_first.weight",
                                  "time_mix_w0.weight",
                                  "time_mix_w1.weight",
                                  "time_mix_w2.weight",
                                  "time_mix_v0.weight",
                                  "time_mix_v1.weight",
                                  "time_mix_v2.weight",
                                  "time_mix_a0.weight",
                                  "time_mix_a1.weight",
                                  "time_mix_a2.weight",
                                  "time_mix_g1.weight",
                                  "time_mix_g2.weight",
                                  "time_mix_decay_w1.weight",
                                  "time_mix_decay_w2.weight",
                                  "time_mix_lerp_fused.weight",
                                  "attn_rel_b.weight",
                                  ".position_embd",
                                  "sam.pos_embd",
                                  "sam.neck.",
                                  "sam.net_",
                                  ".rel_pos",
                                  ".patch_embd",
                                  ".patch_merger",
                                  "a.rvq.codebook",
                                  "mm.a.code_embd"};
    for (size_t i = 0; i < sizeof never / sizeof never[0]; i++)
        if (strstr(name, never[i])) return false;
    if (!strcmp(name, "position_embd.weight") || !strcmp(name, "token_types.weight")) return false;
    return true;
}

/* the layers that get more bits: the first and last eighth, and every third in between */
static bool use_more_bits(int i_layer, int n_layers) {
    return i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 ||
           (i_layer - n_layers / 8) % 3 == 2;
}

/* llama.cpp's LLM_TYPE_70B, the one model size its rules look at */
static bool is_70b(const qr_quant_model *m) {
    const char *a = m->arch ? m->arch : "";
    if (!strcmp(a, "llama")) return m->n_layer == 80 && m->n_head != m->n_head_kv;
    if (!strcmp(a, "qwen2") || !strcmp(a, "deci") || !strcmp(a, "olmo")) return m->n_layer == 80;
    if (!strcmp(a, "jais2")) return m->n_layer == 68;
    return false;
}

typedef struct counters {
    int n_attn_v, i_attn_v, i_ffn_down, i_ffn_gate, i_ffn_up;
    bool tied; /* no output.weight: token_embd doubles as the output matrix */
} counters;

/* The layer a per-layer rule uses: the running count of such tensors, or with experts the
 * number in the name (experts are not stored layer by layer). -1 (an error) if unparseable. */
static int rule_layer(const qr_quant_model *m, int counter, const char *name) {
    if (m->n_expert <= 1) return counter;
    const int layer = layer_of(name);
    return layer >= 0 && layer < m->n_layer ? layer : -1;
}

static qr_status mix_type(const qr_quant_ftype *ft, const qr_quant_model *m, counters *c,
                          const qr_quant_tensor *t, category cat, int *type) {
    const qr_mix mix = ft->mix;
    const bool falcon = m->arch && !strcmp(m->arch, "falcon");
    const int n_gqa = m->n_head_kv > 0 ? m->n_head / m->n_head_kv : 0;
    const bool iq4 = mix == QR_MIX_IQ4_NL || mix == QR_MIX_IQ4_XS;
    int nt = *type;
    if (cat == CAT_OUTPUT || (c->tied && cat == CAT_TOKEN_EMBD)) {
        if (falcon || t->ne[0] % qr_type_block_size(nt) != 0)
            nt = QR_TYPE_Q8_0;
        else if (nt != QR_TYPE_Q8_0)
            nt = QR_TYPE_Q6_K;
    } else if (cat == CAT_TOKEN_EMBD) {
        /* only the IQ and ternary ftypes change an untied token_embd */
    } else if (cat == CAT_ATTN_V) {
        if (mix == QR_MIX_Q2_K)
            nt = n_gqa >= 4 ? QR_TYPE_Q4_K : QR_TYPE_Q3_K;
        else if (mix == QR_MIX_Q3_K_M)
            nt = c->i_attn_v < 2 ? QR_TYPE_Q5_K : QR_TYPE_Q4_K;
        else if (mix == QR_MIX_Q3_K_L)
            nt = QR_TYPE_Q5_K;
        else if (iq4 && n_gqa >= 4)
            nt = QR_TYPE_Q5_K;
        else if ((mix == QR_MIX_Q4_K_M || mix == QR_MIX_Q5_K_M) &&
                 use_more_bits(c->i_attn_v, c->n_attn_v))
            nt = QR_TYPE_Q6_K;
        else if (mix == QR_MIX_Q4_K_S && c->i_attn_v < 4)
            nt = QR_TYPE_Q5_K;
        if (is_70b(m) && (nt == QR_TYPE_Q3_K || nt == QR_TYPE_Q4_K)) nt = QR_TYPE_Q5_K;
        if (m->n_expert == 8) nt = QR_TYPE_Q8_0;
        c->i_attn_v++;
    } else if (cat == CAT_ATTN_K) {
        if (m->n_expert == 8) nt = QR_TYPE_Q8_0;
    } else if (cat == CAT_FFN_DOWN) {
        const int i = rule_layer(m, c->i_ffn_down, t->name), n = m->n_layer;
        if (i < 0)
            return qr_error(QR_ERR_FORMAT, "tensor '%s': no layer number in [0, %d) in its name",
                            t->name, n);
        if (mix == QR_MIX_Q2_K)
            nt = QR_TYPE_Q3_K;
        else if (mix == QR_MIX_Q3_K_M)
            nt = i < n / 16                       ? QR_TYPE_Q5_K
                 : !falcon || use_more_bits(i, n) ? QR_TYPE_Q4_K
                                                  : QR_TYPE_Q3_K;
        else if (mix == QR_MIX_Q3_K_L)
            nt = falcon ? QR_TYPE_Q4_K : QR_TYPE_Q5_K;
        else if (mix == QR_MIX_Q4_K_M) {
            if (falcon)
                nt = i < n / 16 ? QR_TYPE_Q6_K : use_more_bits(i, n) ? QR_TYPE_Q5_K : QR_TYPE_Q4_K;
            else if (use_more_bits(i, n))
                nt = QR_TYPE_Q6_K;
        } else if (iq4 && i < n / 8 && !m->has_imatrix)
            nt = QR_TYPE_Q5_K;
        else if (mix == QR_MIX_Q5_K_M && use_more_bits(i, n))
            nt = QR_TYPE_Q6_K;
        else if (mix == QR_MIX_Q4_K_S && !falcon && i < n / 8)
            nt = QR_TYPE_Q5_K;
        else if ((ft->llama_ftype == FTYPE_Q4_0 || ft->llama_ftype == FTYPE_Q5_0) &&
                 m->has_imatrix && i < n / 8)
            /* llama.cpp's guard for the first ffn_down layers, with an importance only */
            nt = ft->llama_ftype == FTYPE_Q4_0 ? QR_TYPE_Q4_1 : QR_TYPE_Q5_1;
        c->i_ffn_down++;
    } else if (cat == CAT_ATTN_OUTPUT) {
        if (falcon) {
            if (mix == QR_MIX_Q3_K_L) nt = QR_TYPE_Q4_K;
        } else if (m->n_expert == 8) {
            if (mix == QR_MIX_Q2_K || mix == QR_MIX_Q3_K_S || mix == QR_MIX_Q3_K_M ||
                mix == QR_MIX_Q4_K_S || mix == QR_MIX_Q4_K_M || iq4)
                nt = QR_TYPE_Q5_K;
        } else if (mix == QR_MIX_Q2_K) {
            nt = QR_TYPE_Q3_K;
        } else if (mix == QR_MIX_Q3_K_M) {
            nt = QR_TYPE_Q4_K;
        } else if (mix == QR_MIX_Q3_K_L) {
            nt = QR_TYPE_Q5_K;
        }
    } else if (cat == CAT_FFN_GATE || cat == CAT_FFN_UP) {
        int *counter = cat == CAT_FFN_GATE ? &c->i_ffn_gate : &c->i_ffn_up;
        if (rule_layer(m, *counter, t->name) < 0)
            return qr_error(QR_ERR_FORMAT, "tensor '%s': no layer number in [0, %d) in its name",
                            t->name, m->n_layer);
        (*counter)++; /* only the IQ3_XS mix changes these */
    }
    *type = nt;
    return QR_OK;
}

/* A row length that is not a multiple of the block size demotes to a 32-block type, or to
 * f16 when even that does not fit (llama.cpp's tensor_type_fallback). */
static int fallback_type(int64_t ncols, int type, bool *fell_back) {
    *fell_back = false;
    if (ncols % qr_type_block_size(type) == 0) return type;
    *fell_back = true;
    int nt = type;
    switch (type) {
    case QR_TYPE_Q2_K:
    case QR_TYPE_Q3_K:
        nt = QR_TYPE_Q4_0;
        break;
    case QR_TYPE_Q4_K:
        nt = QR_TYPE_Q5_0;
        break;
    case QR_TYPE_Q5_K:
        nt = QR_TYPE_Q5_1;
        break;
    case QR_TYPE_Q6_K:
        nt = QR_TYPE_Q8_0;
        break;
    case QR_TYPE_IQ4_XS:
        nt = QR_TYPE_IQ4_NL;
        break;
    default:
        break; /* already a 32-block type: only f16 is left */
    }
    if (ncols % qr_type_block_size(nt) != 0) nt = QR_TYPE_F16;
    return nt;
}

qr_status qr_quant_choose_types(const qr_quant_ftype *ft, const qr_quant_model *model,
                                const qr_quant_tensor *tensors, int64_t n, int *out_types,
                                int *n_fallback) {
    counters c = {.tied = true};
    for (int64_t i = 0; i < n; i++) {
        const category cat = category_of(tensors[i].name);
        if (cat == CAT_ATTN_V) c.n_attn_v++;
        if (cat == CAT_OUTPUT) c.tied = false;
    }
    const bool quantized = qr_type_block_size(ft->default_type) > 1;
    *n_fallback = 0;
    for (int64_t i = 0; i < n; i++) {
        const qr_quant_tensor *t = &tensors[i];
        out_types[i] = t->type;
        if (!allows_quantization(t->name, t->ne)) continue;
        int type = ft->default_type;
        if (quantized) {
            if (ft->mix != QR_MIX_PURE) {
                qr_status st = mix_type(ft, model, &c, t, category_of(t->name), &type);
                if (st) return st;
            }
            bool fell_back;
            type = fallback_type(t->ne[0], type, &fell_back);
            *n_fallback += fell_back;
        }
        out_types[i] = type;
    }
    return QR_OK;
}
