/* load.c - opening a model: hyperparameters from GGUF keys (with the defaults llama.cpp uses
 * for absent keys), weights bound on the read-only mapping with their shapes and types
 * checked, then (on CPUs whose kernels have a repacked layout) moved into one allocation in
 * that layout (repack), and the vocabulary. */
#include "kernels/matmul.h"
#include "model/model.h"
#include "runtime/threadpool.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

qr_model_params qr_model_default_params(void) {
    return (qr_model_params){.vocab_only = false};
}

static qr_status key_i32(const qr_model *m, const char *suffix, bool required, int32_t def,
                         int32_t *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", m->arch_name, suffix);
    int64_t v;
    if (qr_gguf_find_key(m->gguf, key) < 0) {
        if (required) return qr_error(QR_ERR_FORMAT, "missing metadata key '%s'", key);
        *out = def;
        return QR_OK;
    }
    if (!qr_gguf_get_i64(m->gguf, key, &v) || v < 0 || v > INT32_MAX)
        return qr_error(QR_ERR_FORMAT, "metadata key '%s' is not a non-negative 32-bit integer",
                        key);
    *out = (int32_t)v;
    return QR_OK;
}

static qr_status key_f32(const qr_model *m, const char *suffix, float def, float *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", m->arch_name, suffix);
    if (qr_gguf_find_key(m->gguf, key) < 0) {
        *out = def;
        return QR_OK;
    }
    if (!qr_gguf_get_f32(m->gguf, key, out) || !isfinite(*out))
        return qr_error(QR_ERR_FORMAT, "metadata key '%s' is not a finite float", key);
    return QR_OK;
}

static bool has_key(const qr_model *m, const char *suffix) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", m->arch_name, suffix);
    return qr_gguf_find_key(m->gguf, key) >= 0;
}

/* A positive float key (scales, factors): absent -> def */
static qr_status key_pos_f32(const qr_model *m, const char *suffix, bool required, float def,
                             float *out) {
    if (required && !has_key(m, suffix))
        return qr_error(QR_ERR_FORMAT, "missing metadata key '%s.%s'", m->arch_name, suffix);
    qr_status st = key_f32(m, suffix, def, out);
    if (st) return st;
    if (!(*out > 0.0f))
        return qr_error(QR_ERR_FORMAT, "metadata key '%s.%s' must be positive (is %g)",
                        m->arch_name, suffix, (double)*out);
    return QR_OK;
}

/* Which layers are windowed: attention.sliding_window_pattern as a bool array (one per layer)
 * or a period n (layers with il % n < n - 1; 0: all), else the architecture's period. */
static qr_status load_swa_layers(qr_model *m) {
    const qr_hparams *hp = &m->hp;
    char key[128];
    snprintf(key, sizeof key, "%s.attention.sliding_window_pattern", m->arch_name);
    const qr_gguf_value *arr = qr_gguf_get_arr(m->gguf, key);
    if (arr) {
        if (arr->arr.n < (uint64_t)hp->n_layer)
            return qr_error(QR_ERR_FORMAT, "'%s' has %llu entries for %d layers", key,
                            (unsigned long long)arr->arr.n, hp->n_layer);
        for (int32_t l = 0; l < hp->n_layer; l++)
            m->layers[l].swa = qr_gguf_arr_i64(arr, (uint64_t)l) != 0;
        return QR_OK;
    }
    int32_t period;
    qr_status st =
        key_i32(m, "attention.sliding_window_pattern", false, m->arch->swa_pattern, &period);
    if (st) return st;
    for (int32_t l = 0; l < hp->n_layer; l++)
        m->layers[l].swa = period == 0 || l % period < period - 1;
    return QR_OK;
}

/* Mixture of experts (llama_model::load_hparams, then qwen3moe's): expert_count experts, of
 * which expert_used_count (1 to expert_count, as llama.cpp asserts) run per token; an expert is
 * expert_feed_forward_length wide (qwen3moe; default feed_forward_length / expert_used_count)
 * or feed_forward_length (llama). A llama file without expert_count, or with 0, is dense. */
static qr_status load_experts(qr_model *m) {
    qr_hparams *hp = &m->hp;
    const uint32_t fl = m->arch->flags;
    hp->n_expert = hp->n_expert_used = 0;
    hp->n_ff_exp = hp->n_ff;
    if (!(fl & (QR_ARCH_EXPERTS | QR_ARCH_EXPERTS_IF_COUNTED))) return QR_OK;
    qr_status st;
    if ((st = key_i32(m, "expert_count", fl & QR_ARCH_EXPERTS, 0, &hp->n_expert))) return st;
    if (hp->n_expert == 0) {
        if (fl & QR_ARCH_EXPERTS)
            return qr_error(QR_ERR_FORMAT, "metadata key '%s.expert_count' must be positive",
                            m->arch_name);
        return QR_OK;
    }
    if (hp->n_expert > QR_MAX_EXPERTS)
        return qr_error(QR_ERR_UNSUPPORTED,
                        "metadata key '%s.expert_count' is %d: at most %d experts are supported",
                        m->arch_name, hp->n_expert, QR_MAX_EXPERTS);
    if ((st = key_i32(m, "expert_used_count", true, 0, &hp->n_expert_used))) return st;
    if (hp->n_expert_used < 1 || hp->n_expert_used > hp->n_expert)
        return qr_error(QR_ERR_FORMAT,
                        "metadata key '%s.expert_used_count' is %d: it must be 1 to "
                        "expert_count (%d)",
                        m->arch_name, hp->n_expert_used, hp->n_expert);
    if ((fl & QR_ARCH_EXPERTS) && (st = key_i32(m, "expert_feed_forward_length", false,
                                                hp->n_ff / hp->n_expert_used, &hp->n_ff_exp)))
        return st;
    if (hp->n_ff_exp <= 0)
        return qr_error(QR_ERR_FORMAT,
                        "metadata key '%s.expert_feed_forward_length' must be positive",
                        m->arch_name);
    return QR_OK;
}

static qr_status load_hparams(qr_model *m) {
    qr_hparams *hp = &m->hp;
    const uint32_t fl = m->arch->flags;
    qr_status st;
    if ((st = key_i32(m, "embedding_length", true, 0, &hp->n_embd)) ||
        (st = key_i32(m, "block_count", true, 0, &hp->n_layer)) ||
        (st = key_i32(m, "attention.head_count", true, 0, &hp->n_head)) ||
        (st = key_i32(m, "attention.head_count_kv", false, hp->n_head, &hp->n_head_kv)) ||
        (st = key_i32(m, "feed_forward_length", true, 0, &hp->n_ff)) ||
        (st = key_i32(m, "context_length", false, 2048, &hp->n_ctx_train)) ||
        (st = key_i32(m, "pooling_type", false, -1, &hp->pooling_type)))
        return st;
    if (hp->pooling_type > QR_POOLING_LAST) /* rank (4) pools through a classifier head */
        return qr_error(QR_ERR_UNSUPPORTED,
                        "%s.pooling_type %d is not supported (none 0, mean 1, cls 2, last 3)",
                        m->arch_name, (int)hp->pooling_type);
    if (hp->n_embd <= 0 || hp->n_layer <= 0 || hp->n_head <= 0 || hp->n_head_kv <= 0 ||
        hp->n_ff <= 0)
        return qr_error(QR_ERR_FORMAT,
                        "%s: embedding_length, block_count, head counts and feed_forward_length "
                        "must be positive",
                        m->arch_name);
    if (hp->n_layer > 4096)
        return qr_error(QR_ERR_FORMAT, "%s: block_count %d is too large", m->arch_name,
                        hp->n_layer);
    if (hp->n_head % hp->n_head_kv)
        return qr_error(QR_ERR_FORMAT,
                        "%s.attention.head_count %d is not a multiple of head_count_kv %d",
                        m->arch_name, hp->n_head, hp->n_head_kv);
    if ((st = load_experts(m))) return st;
    if ((st = key_i32(m, "attention.key_length", false, hp->n_embd / hp->n_head, &hp->head_dim)))
        return st;
    if ((st = key_i32(m, "rope.dimension_count", false, hp->head_dim, &hp->n_rot))) return st;
    if (hp->head_dim <= 0 || hp->head_dim > 512)
        return qr_error(QR_ERR_UNSUPPORTED, "%s: head size %d is not supported (1 to 512)",
                        m->arch_name, hp->head_dim);
    int32_t v_len;
    if ((st = key_i32(m, "attention.value_length", false, hp->head_dim, &v_len))) return st;
    if (v_len != hp->head_dim)
        return qr_error(QR_ERR_UNSUPPORTED,
                        "%s: value length %d differs from key length %d (not supported)",
                        m->arch_name, v_len, hp->head_dim);
    if (hp->n_rot > hp->head_dim || hp->n_rot % 2)
        return qr_error(QR_ERR_FORMAT, "%s: rope.dimension_count %d does not fit head size %d",
                        m->arch_name, hp->n_rot, hp->head_dim);
    /* llama.cpp requires the epsilon of every architecture here but llama (default 1e-5) */
    if (strcmp(m->arch->name, "llama") && !has_key(m, "attention.layer_norm_rms_epsilon"))
        return qr_error(QR_ERR_FORMAT, "missing metadata key '%s.attention.layer_norm_rms_epsilon'",
                        m->arch_name);
    if ((st = key_f32(m, "attention.layer_norm_rms_epsilon", 1e-5f, &hp->norm_eps))) return st;

    /* RoPE, as llama_model::load_hparams reads it */
    if ((st = key_f32(m, "rope.freq_base", 10000.0f, &hp->rope_freq_base))) return st;
    float factor = 0.0f;
    if (has_key(m, "rope.scaling.factor")) {
        if ((st = key_f32(m, "rope.scaling.factor", 0.0f, &factor))) return st;
    } else if ((st = key_f32(m, "rope.scale_linear", 0.0f, &factor))) {
        return st;
    }
    if (factor < 0.0f)
        return qr_error(QR_ERR_FORMAT, "%s: the rope scaling factor must not be negative",
                        m->arch_name);
    hp->rope_freq_scale = factor == 0.0f ? 1.0f : 1.0f / factor;
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", m->arch_name);
    const char *type = qr_gguf_get_str(m->gguf, key);
    if (!type && qr_gguf_find_key(m->gguf, key) >= 0)
        return qr_error(QR_ERR_FORMAT, "metadata key '%s' is not a string", key);
    if (!type || !strcmp(type, "linear"))
        hp->rope_scaling = QR_ROPE_SCALING_LINEAR;
    else if (!strcmp(type, "none"))
        hp->rope_scaling = QR_ROPE_SCALING_NONE;
    else if (!strcmp(type, "yarn"))
        hp->rope_scaling = QR_ROPE_SCALING_YARN;
    else if (!strcmp(type, "longrope"))
        hp->rope_scaling = QR_ROPE_SCALING_LONGROPE;
    else
        return qr_error(QR_ERR_UNSUPPORTED,
                        "%s: rope scaling type '%s' is not supported (none, linear, yarn, "
                        "longrope are)",
                        m->arch_name, type);
    if ((st = key_i32(m, "rope.scaling.original_context_length", false, hp->n_ctx_train,
                      &hp->n_ctx_orig)) ||
        (st = key_pos_f32(m, "rope.scaling.attn_factor", false, 1.0f, &hp->rope_attn_factor)))
        return st;

    /* sliding window: gemma2 defaults it, gemma3 and olmo2 window only when it is declared;
     * llama.cpp reads but ignores phi3's, and no other architecture here has one */
    hp->n_swa = 0;
    const int32_t swa_default = m->arch->swa_default;
    if (m->arch->swa_pattern && (st = key_i32(m, "attention.sliding_window", swa_default < 0,
                                              swa_default < 0 ? 0 : swa_default, &hp->n_swa)))
        return st;
    hp->rope_freq_base_swa = hp->rope_freq_base;
    hp->rope_freq_scale_swa = 1.0f;
    if (!strcmp(m->arch->name, "gemma2") || !strcmp(m->arch->name, "gpt-oss"))
        hp->rope_freq_scale_swa = hp->rope_freq_scale;
    if (!strcmp(m->arch->name, "gemma3")) hp->rope_freq_base_swa = 10000.0f;
    if (hp->n_swa > 0 &&
        (st = key_f32(m, "rope.freq_base_swa", hp->rope_freq_base_swa, &hp->rope_freq_base_swa)))
        return st;

    /* multipliers, caps and the attention scale */
    hp->embd_scale = 1.0f;
    hp->residual_scale = 1.0f;
    hp->logit_mult = 1.0f;
    hp->q_scale = 1.0f;
    hp->kq_scale = 1.0f / sqrtf((float)hp->head_dim);
    hp->attn_softcap = hp->final_softcap = 0.0f;
    if (fl & QR_ARCH_EMBD_SCALE_SQRT) hp->embd_scale = sqrtf((float)hp->n_embd);
    if (fl & QR_ARCH_Q_PRESCALE) {
        /* gemma's 27B sizes scale by n_embd / n_head instead of the key length */
        const bool big = (!strcmp(m->arch->name, "gemma2") && hp->n_layer == 46) ||
                         (!strcmp(m->arch->name, "gemma3") && hp->n_layer == 62);
        hp->q_scale = big ? 1.0f / sqrtf((float)(hp->n_embd / hp->n_head)) : hp->kq_scale;
        hp->kq_scale = 1.0f;
    }
    if (fl & QR_ARCH_SOFTCAP) {
        hp->attn_softcap = 50.0f;
        hp->final_softcap = 30.0f;
        if ((st = key_pos_f32(m, "attn_logit_softcapping", false, 50.0f, &hp->attn_softcap)) ||
            (st = key_pos_f32(m, "final_logit_softcapping", false, 30.0f, &hp->final_softcap)))
            return st;
    } else if (!strcmp(m->arch->name, "gemma3") &&
               (st = key_f32(m, "final_logit_softcapping", 0.0f, &hp->final_softcap))) {
        return st;
    }
    if (fl & QR_ARCH_MULTIPLIERS) { /* granite: logit_scale required, 0 elsewhere = none */
        float logit = 0.0f, residual = 0.0f, embd = 0.0f, attn = 0.0f;
        if (!has_key(m, "logit_scale"))
            return qr_error(QR_ERR_FORMAT, "missing metadata key '%s.logit_scale'", m->arch_name);
        if ((st = key_f32(m, "logit_scale", 0.0f, &logit)) ||
            (st = key_f32(m, "residual_scale", 0.0f, &residual)) ||
            (st = key_f32(m, "embedding_scale", 0.0f, &embd)) ||
            (st = key_f32(m, "attention.scale", 0.0f, &attn)))
            return st;
        if (logit == 0.0f)
            return qr_error(QR_ERR_FORMAT, "metadata key '%s.logit_scale' must not be 0",
                            m->arch_name);
        hp->logit_mult = 1.0f / logit;
        if (residual != 0.0f) hp->residual_scale = residual;
        if (embd != 0.0f) hp->embd_scale = embd;
        if (attn != 0.0f) hp->kq_scale = attn;
    }
    return QR_OK;
}

/* Bind tensor `name` with the expected shape [n_rows][n_cols] (n_rows = 0: a vector). */
static qr_status bind(qr_model *m, qr_weight *w, const char *name, int64_t n_cols, int64_t n_rows,
                      bool required) {
    const qr_gguf_tensor *t = qr_gguf_find_tensor(m->gguf, name);
    memset(w, 0, sizeof *w);
    if (!t) return required ? qr_error(QR_ERR_FORMAT, "missing tensor '%s'", name) : QR_OK;
    int64_t want_rows = n_rows ? n_rows : 1;
    if (t->ne[0] != n_cols || t->ne[1] != want_rows || t->ne[2] != 1 || t->ne[3] != 1)
        return qr_error(QR_ERR_FORMAT,
                        "tensor '%s' has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld]",
                        name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                        (long long)t->ne[3], (long long)n_cols, (long long)want_rows);
    if (!n_rows && t->type != QR_TYPE_F32)
        return qr_error(QR_ERR_UNSUPPORTED,
                        "tensor '%s' is %s; norm weights and biases must be f32", name,
                        qr_type_name(t->type));
    w->data = t->data;
    w->name = t->name;
    w->type = t->type;
    w->n_cols = n_cols;
    w->n_rows = want_rows;
    w->row_bytes = qr_type_row_bytes(t->type, n_cols);
    m->n_params += (uint64_t)(n_cols * want_rows);
    m->weight_bytes += t->nbytes;
    return QR_OK;
}

/* Bind a fused tensor (phi3's attn_qkv, [q | k | v], and ffn_up, [gate | up]) as views of its
 * parts: part i is rows[i] consecutive rows (for a vector, rows[i] consecutive values). Only
 * the first view counts the tensor's parameters and bytes. */
static qr_status bind_fused(qr_model *m, qr_weight *const *parts, const int64_t *rows, int n,
                            const char *name, int64_t n_cols, bool vector) {
    int64_t total = 0;
    for (int i = 0; i < n; i++)
        total += rows[i];
    qr_weight whole;
    qr_status st =
        vector ? bind(m, &whole, name, total, 0, true) : bind(m, &whole, name, n_cols, total, true);
    if (st) return st;
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        qr_weight *w = parts[i];
        *w = whole;
        w->data = (const char *)whole.data + off;
        w->row0 = vector ? 0 : (int64_t)(off / whole.row_bytes);
        if (vector) {
            w->n_cols = rows[i];
            w->row_bytes = (size_t)rows[i] * sizeof(float);
            off += w->row_bytes;
        } else {
            w->n_rows = rows[i];
            off += (size_t)rows[i] * whole.row_bytes;
        }
    }
    return QR_OK;
}

/* Bind a 3-D expert tensor [n_cols, n_rows, n_expert] (llama.cpp's ffn_*_exps) as its first
 * expert's n_rows x n_cols matrix (expert_slice gives the others); dims: what the expected
 * shape is made of, for the message. */
static qr_status bind_experts(qr_model *m, qr_weight *w, const char *name, int64_t n_cols,
                              int64_t n_rows, const char *dims) {
    const qr_gguf_tensor *t = qr_gguf_find_tensor(m->gguf, name);
    const int64_t n_expert = m->hp.n_expert;
    memset(w, 0, sizeof *w);
    if (!t) return qr_error(QR_ERR_FORMAT, "missing tensor '%s'", name);
    if (t->ne[0] != n_cols || t->ne[1] != n_rows || t->ne[2] != n_expert || t->ne[3] != 1)
        return qr_error(QR_ERR_FORMAT,
                        "expert tensor '%s' has shape [%lld, %lld, %lld, %lld], expected [%lld, "
                        "%lld, %lld] (%s, expert_count)",
                        name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                        (long long)t->ne[3], (long long)n_cols, (long long)n_rows,
                        (long long)n_expert, dims);
    w->data = t->data;
    w->name = t->name;
    w->type = t->type;
    w->n_cols = n_cols;
    w->n_rows = n_rows;
    w->row_bytes = qr_type_row_bytes(t->type, n_cols);
    m->n_params += (uint64_t)(n_cols * n_rows * n_expert);
    m->weight_bytes += t->nbytes;
    return QR_OK;
}

/* expert e of a 3-D tensor bound by bind_experts: the e-th slice, e slices' bytes on */
static qr_weight expert_slice(const qr_weight *first, int64_t e) {
    qr_weight w = *first;
    w.data = (const char *)first->data + (size_t)e * (size_t)first->n_rows * first->row_bytes;
    return w;
}

/* A 2-D expert bias [n_cols, n_expert] (gpt-oss's ffn_*_exps.bias), f32: bound as its first
 * expert's row (n_cols values; expert_slice gives the others); dim: what n_cols is. */
static qr_status bind_expert_bias(qr_model *m, qr_weight *w, const char *name, int64_t n_cols,
                                  const char *dim) {
    const qr_gguf_tensor *t = qr_gguf_find_tensor(m->gguf, name);
    const int64_t n_expert = m->hp.n_expert;
    memset(w, 0, sizeof *w);
    if (!t) return qr_error(QR_ERR_FORMAT, "missing tensor '%s'", name);
    if (t->ne[0] != n_cols || t->ne[1] != n_expert || t->ne[2] != 1 || t->ne[3] != 1)
        return qr_error(QR_ERR_FORMAT,
                        "expert bias '%s' has shape [%lld, %lld, %lld, %lld], expected [%lld, "
                        "%lld] (%s, expert_count)",
                        name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                        (long long)t->ne[3], (long long)n_cols, (long long)n_expert, dim);
    if (t->type != QR_TYPE_F32)
        return qr_error(QR_ERR_UNSUPPORTED, "expert bias '%s' is %s; biases must be f32", name,
                        qr_type_name(t->type));
    w->data = t->data;
    w->name = t->name;
    w->type = t->type;
    w->n_cols = n_cols;
    w->n_rows = 1;
    w->row_bytes = (size_t)n_cols * sizeof(float);
    m->n_params += (uint64_t)(n_cols * n_expert);
    m->weight_bytes += t->nbytes;
    return QR_OK;
}

/* Layer l's mixture of experts: the router ffn_gate_inp [n_embd, n_expert] and the experts'
 * gate, up [n_embd, n_ff_exp, n_expert] and down [n_ff_exp, n_embd, n_expert]; with
 * EXPERT_BIASES also the router's bias [n_expert] and the experts' biases [n_ff_exp, n_expert]
 * (gate, up) and [n_embd, n_expert] (down) */
static qr_status bind_mixture(qr_model *m, int32_t l) {
    const qr_hparams *hp = &m->hp;
    qr_layer *L = &m->layers[l];
    const int64_t d = hp->n_embd, ff = hp->n_ff_exp;
    const char *width =
        m->arch->flags & QR_ARCH_EXPERTS ? "expert_feed_forward_length" : "feed_forward_length";
    char name[96], in_dims[64], out_dims[64];
    snprintf(in_dims, sizeof in_dims, "embedding_length, %s", width);
    snprintf(out_dims, sizeof out_dims, "%s, embedding_length", width);
#define NAME(tname) (snprintf(name, sizeof name, "blk.%d." tname, (int)l), name)
    const qr_gguf_tensor *router = qr_gguf_find_tensor(m->gguf, NAME("ffn_gate_inp.weight"));
    if (router && (router->ne[0] != d || router->ne[1] != hp->n_expert || router->ne[2] != 1 ||
                   router->ne[3] != 1))
        return qr_error(QR_ERR_FORMAT,
                        "router '%s' has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld] "
                        "(embedding_length, expert_count)",
                        name, (long long)router->ne[0], (long long)router->ne[1],
                        (long long)router->ne[2], (long long)router->ne[3], (long long)d,
                        (long long)hp->n_expert);
    qr_weight gate, up, down;
    qr_status st;
    if ((st = bind(m, &L->ffn_gate_inp, name, d, hp->n_expert, true)) ||
        (st = bind_experts(m, &gate, NAME("ffn_gate_exps.weight"), d, ff, in_dims)) ||
        (st = bind_experts(m, &up, NAME("ffn_up_exps.weight"), d, ff, in_dims)) ||
        (st = bind_experts(m, &down, NAME("ffn_down_exps.weight"), ff, d, out_dims)))
        return st;
    qr_weight gate_b = {0}, up_b = {0}, down_b = {0};
    if (m->arch->flags & QR_ARCH_EXPERT_BIASES) {
        const qr_gguf_tensor *rb = qr_gguf_find_tensor(m->gguf, NAME("ffn_gate_inp.bias"));
        if (rb && (rb->ne[0] != hp->n_expert || rb->ne[1] != 1 || rb->ne[2] != 1 || rb->ne[3] != 1))
            return qr_error(QR_ERR_FORMAT,
                            "router bias '%s' has shape [%lld, %lld, %lld, %lld], expected [%lld] "
                            "(expert_count)",
                            name, (long long)rb->ne[0], (long long)rb->ne[1], (long long)rb->ne[2],
                            (long long)rb->ne[3], (long long)hp->n_expert);
        if ((st = bind(m, &L->ffn_gate_inp_b, name, hp->n_expert, 0, true)) ||
            (st = bind_expert_bias(m, &gate_b, NAME("ffn_gate_exps.bias"), ff, width)) ||
            (st = bind_expert_bias(m, &up_b, NAME("ffn_up_exps.bias"), ff, width)) ||
            (st = bind_expert_bias(m, &down_b, NAME("ffn_down_exps.bias"), d, "embedding_length")))
            return st;
    }
#undef NAME
    L->experts = m->experts + (size_t)l * (size_t)hp->n_expert;
    for (int32_t e = 0; e < hp->n_expert; e++) {
        qr_expert *x = &L->experts[e];
        *x = (qr_expert){.gate = expert_slice(&gate, e),
                         .up = expert_slice(&up, e),
                         .down = expert_slice(&down, e)};
        if (gate_b.data) {
            x->gate_b = expert_slice(&gate_b, e);
            x->up_b = expert_slice(&up_b, e);
            x->down_b = expert_slice(&down_b, e);
        }
    }
    return QR_OK;
}

static bool has_tensor(const qr_model *m, const char *name) {
    return qr_gguf_find_tensor(m->gguf, name) != NULL;
}

static qr_status load_weights(qr_model *m) {
    const qr_hparams *hp = &m->hp;
    const uint32_t fl = m->arch->flags;
    int64_t d = hp->n_embd, q_dim = (int64_t)hp->n_head * hp->head_dim,
            kv_dim = (int64_t)hp->n_head_kv * hp->head_dim, ff = hp->n_ff;
    qr_status st;
    if ((st = bind(m, &m->tok_embd, "token_embd.weight", d, hp->n_vocab, true))) return st;
    if ((st = bind(m, &m->output_norm, "output_norm.weight", d, 0, true))) return st;
    memset(&m->output, 0, sizeof m->output);
    if (!(fl & QR_ARCH_TIED) &&
        (st = bind(m, &m->output, "output.weight", d, hp->n_vocab, fl & QR_ARCH_UNTIED)))
        return st;
    if (!m->output.data) m->output = m->tok_embd; /* tied embeddings */
    if ((st = bind(m, &m->rope_freqs, "rope_freqs.weight", hp->n_rot / 2, 0, false)) ||
        (st = bind(m, &m->rope_long, "rope_factors_long.weight", hp->n_rot / 2, 0, false)) ||
        (st = bind(m, &m->rope_short, "rope_factors_short.weight", hp->n_rot / 2, 0, false)))
        return st;
    m->layers = qr_calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers) return QR_ERR_NOMEM;
    if (hp->n_expert > 0) {
        m->experts = qr_calloc((size_t)hp->n_layer * (size_t)hp->n_expert, sizeof *m->experts);
        if (!m->experts) return QR_ERR_NOMEM;
    }
    const bool pre_norms = !(fl & QR_ARCH_NO_PRE_NORMS), post_norms = fl & QR_ARCH_POST_NORMS;
    const bool qk_norm = fl & (QR_ARCH_QK_NORM | QR_ARCH_QK_NORM_FULL);
    const int64_t q_norm_dim = fl & QR_ARCH_QK_NORM_FULL ? q_dim : hp->head_dim;
    const int64_t k_norm_dim = fl & QR_ARCH_QK_NORM_FULL ? kv_dim : hp->head_dim;
    bool rope_on = true; /* granite: rope.scaling.finetuned false turns RoPE off */
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.finetuned", m->arch_name);
    if (fl & QR_ARCH_MULTIPLIERS) qr_gguf_get_bool(m->gguf, key, &rope_on);
    for (int32_t l = 0; l < hp->n_layer; l++) {
        qr_layer *L = &m->layers[l];
        char name[96];
#define NAME(tname) (snprintf(name, sizeof name, "blk.%d." tname, (int)l), name)
#define BIND(field, tname, cols, rows, req)                                                        \
    do {                                                                                           \
        if ((st = bind(m, &L->field, NAME(tname), cols, rows, req))) return st;                    \
    } while (0)
        BIND(attn_norm, "attn_norm.weight", d, 0, pre_norms);
        if (has_tensor(m, NAME("attn_qkv.weight"))) {
            qr_weight *parts[] = {&L->wq, &L->wk, &L->wv};
            if ((st = bind_fused(m, parts, (int64_t[]){q_dim, kv_dim, kv_dim}, 3, name, d, false)))
                return st;
        } else {
            if (!has_tensor(m, NAME("attn_q.weight")))
                return qr_error(QR_ERR_FORMAT,
                                "missing tensor '%s' (or a fused 'blk.%d.attn_qkv.weight')", name,
                                (int)l);
            BIND(wq, "attn_q.weight", d, q_dim, true);
            BIND(wk, "attn_k.weight", d, kv_dim, true);
            BIND(wv, "attn_v.weight", d, kv_dim, true);
        }
        if (has_tensor(m, NAME("attn_qkv.bias"))) {
            qr_weight *parts[] = {&L->bq, &L->bk, &L->bv};
            if ((st = bind_fused(m, parts, (int64_t[]){q_dim, kv_dim, kv_dim}, 3, name, 0, true)))
                return st;
        } else {
            BIND(bq, "attn_q.bias", q_dim, 0, fl & QR_ARCH_QKV_BIAS);
            BIND(bk, "attn_k.bias", kv_dim, 0, fl & QR_ARCH_QKV_BIAS);
            BIND(bv, "attn_v.bias", kv_dim, 0, fl & QR_ARCH_QKV_BIAS);
        }
        BIND(wo, "attn_output.weight", q_dim, d, true);
        BIND(bo, "attn_output.bias", d, 0, fl & QR_ARCH_OUT_BIAS);
        if (fl & QR_ARCH_ATTN_SINKS) { /* one logit per query head */
            const qr_gguf_tensor *t = qr_gguf_find_tensor(m->gguf, NAME("attn_sinks.weight"));
            if (t && (t->ne[0] != hp->n_head || t->ne[1] != 1 || t->ne[2] != 1 || t->ne[3] != 1))
                return qr_error(QR_ERR_FORMAT,
                                "attention sinks '%s' have shape [%lld, %lld, %lld, %lld], "
                                "expected [%d] (attention.head_count)",
                                name, (long long)t->ne[0], (long long)t->ne[1],
                                (long long)t->ne[2], (long long)t->ne[3], hp->n_head);
            BIND(attn_sinks, "attn_sinks.weight", hp->n_head, 0, true);
        }
        if (qk_norm) {
            BIND(q_norm, "attn_q_norm.weight", q_norm_dim, 0, true);
            BIND(k_norm, "attn_k_norm.weight", k_norm_dim, 0, true);
        }
        if (post_norms) BIND(attn_post_norm, "post_attention_norm.weight", d, 0, true);
        if (fl & QR_ARCH_FFN_NORM_POST_ATTN)
            BIND(ffn_norm, "post_attention_norm.weight", d, 0, true);
        else
            BIND(ffn_norm, "ffn_norm.weight", d, 0, pre_norms);
        if (hp->n_expert > 0) { /* a mixture: the router and the experts, no dense FFN */
            if ((st = bind_mixture(m, l))) return st;
        } else if (fl & QR_ARCH_GATE_IN_UP) {
            qr_weight *parts[] = {&L->ffn_gate, &L->ffn_up};
            if ((st =
                     bind_fused(m, parts, (int64_t[]){ff, ff}, 2, NAME("ffn_up.weight"), d, false)))
                return st;
        } else {
            BIND(ffn_gate, "ffn_gate.weight", d, ff, true);
            BIND(ffn_up, "ffn_up.weight", d, ff, true);
        }
        if (!L->experts) {
            BIND(ffn_down, "ffn_down.weight", ff, d, true);
            BIND(ffn_gate_b, "ffn_gate.bias", ff, 0, false);
            BIND(ffn_up_b, "ffn_up.bias", ff, 0, false);
            BIND(ffn_down_b, "ffn_down.bias", d, 0, false);
        }
        if (post_norms) BIND(ffn_post_norm, "post_ffw_norm.weight", d, 0, true);
#undef BIND
#undef NAME
        L->rope = rope_on && !((fl & QR_ARCH_NOPE_EVERY_4) && (l + 1) % 4 == 0);
    }
    return hp->n_swa > 0 ? load_swa_layers(m) : QR_OK;
}

/* Every matrix the pass multiplies must have a kernel: a model may hold a type Quarrel reads
 * (and can inspect, dequantize) but cannot multiply yet, which must be an error here rather
 * than a NULL kernel at the first decode; checked at load. */
static qr_status check_kernels(const qr_model *m) {
    static const char *const names[] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                        "ffn_gate", "ffn_up", "ffn_down"};
    if (m->output.data && !qr_matmul_supports(m->output.type))
        return qr_error(QR_ERR_UNSUPPORTED,
                        "the output head is %s: matrix products of %s weights are not "
                        "supported yet",
                        qr_type_name(m->output.type), qr_type_name(m->output.type));
    for (int32_t l = 0; l < m->hp.n_layer; l++) {
        const qr_layer *L = &m->layers[l];
        const qr_weight *lw[] = {&L->wq,       &L->wk,     &L->wv,      &L->wo,
                                 &L->ffn_gate, &L->ffn_up, &L->ffn_down};
        for (size_t i = 0; i < sizeof lw / sizeof lw[0]; i++)
            if (lw[i]->data && !qr_matmul_supports(lw[i]->type))
                return qr_error(QR_ERR_UNSUPPORTED,
                                "layer %d %s is %s: matrix products of %s weights are not "
                                "supported yet",
                                (int)l, names[i], qr_type_name(lw[i]->type),
                                qr_type_name(lw[i]->type));
        if (!L->experts) continue;
        const qr_weight *ew[] = {&L->ffn_gate_inp, &L->experts[0].gate, &L->experts[0].up,
                                 &L->experts[0].down}; /* one tensor's slices share a type */
        for (size_t i = 0; i < sizeof ew / sizeof ew[0]; i++)
            if (!qr_matmul_supports(ew[i]->type))
                return qr_error(QR_ERR_UNSUPPORTED,
                                "tensor '%s' is %s: matrix products of %s weights are not "
                                "supported yet",
                                ew[i]->name, qr_type_name(ew[i]->type), qr_type_name(ew[i]->type));
    }
    return QR_OK;
}

/* Every weight the forward pass reads, each once (a tied output head is the embedding table),
 * in the order it reads them: placed so, one token's pass reads the copy front to back, one
 * stream the hardware prefetcher follows from one matrix into the next. */
static int all_weights(qr_model *m, qr_weight **w) {
    int n = 0;
    qr_weight *globals[] = {&m->rope_freqs, &m->rope_long, &m->rope_short};
    for (size_t i = 0; i < sizeof globals / sizeof *globals; i++)
        if (globals[i]->data) w[n++] = globals[i];
    for (int32_t l = 0; l < m->hp.n_layer; l++) {
        qr_layer *L = &m->layers[l];
        qr_weight *ws[] = {&L->attn_norm, &L->wq,       &L->wk,         &L->wv,
                           &L->bq,        &L->bk,       &L->bv,         &L->q_norm,
                           &L->k_norm,    &L->attn_sinks, &L->wo,       &L->bo,
                           &L->attn_post_norm, &L->ffn_norm, &L->ffn_gate, &L->ffn_gate_b,
                           &L->ffn_up,    &L->ffn_up_b, &L->ffn_down,   &L->ffn_down_b,
                           &L->ffn_post_norm};
        for (size_t i = 0; i < sizeof ws / sizeof *ws; i++)
            if (ws[i]->data) w[n++] = ws[i];
        if (!L->experts) continue;
        /* the router, then each expert's three matrices side by side (a token reads those
         * of its chosen experts) */
        w[n++] = &L->ffn_gate_inp;
        if (L->ffn_gate_inp_b.data) w[n++] = &L->ffn_gate_inp_b;
        for (int32_t e = 0; e < m->hp.n_expert; e++) {
            qr_expert *x = &L->experts[e];
            qr_weight *xs[] = {&x->gate, &x->gate_b, &x->up, &x->up_b, &x->down, &x->down_b};
            for (size_t i = 0; i < sizeof xs / sizeof *xs; i++)
                if (xs[i]->data) w[n++] = xs[i];
        }
    }
    w[n++] = &m->output_norm;
    if (m->output.data != m->tok_embd.data) w[n++] = &m->output;
    w[n++] = &m->tok_embd;
    return n;
}
#define MAX_WEIGHTS(hp) (6 + (23 + 6 * (hp).n_expert) * (hp).n_layer)

/* Drop the whole pages of [p, p + bytes) from this process (clean pages of the read-only
 * mapping: a later read would fault them back in from the page cache) */
static void release(const void *p, size_t bytes) {
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uintptr_t a = ((uintptr_t)p + page - 1) & ~(page - 1);
    const uintptr_t e = ((uintptr_t)p + bytes) & ~(page - 1);
    if (e > a) madvise((void *)a, e - a, MADV_DONTNEED);
}

/* MemAvailable of /proc/meminfo in bytes (free memory plus what the kernel can reclaim, as
 * the page cache), or 0 where unknown */
static double available_memory(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0.0;
    char line[256];
    double kb = 0.0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %lf kB", &kb) == 1) break;
    fclose(f);
    return kb * 1024.0;
}

/* One slice of the copy: rows [r0, r0 + nr) of weight `w` (about 1 MiB, whole groups of 64
 * rows, a multiple of any kernel set's pack_rows). */
typedef struct copy_slice {
    int w;
    int64_t r0, nr;
} copy_slice;

typedef struct copy_task {
    qr_weight **w;
    const char **src; /* each weight's place on the mapping */
    bool *pack;
    copy_slice *slices;
} copy_task;

static void copy_worker(void *arg, int64_t chunk, int ith) {
    (void)ith;
    const copy_task *c = arg;
    const copy_slice *sl = &c->slices[chunk];
    qr_weight *x = c->w[sl->w];
    const size_t file_rb = qr_type_row_bytes(x->type, x->n_cols);
    const char *src = c->src[sl->w] + (size_t)sl->r0 * file_rb;
    char *dst = (char *)x->data + (size_t)sl->r0 * x->row_bytes;
    if (c->pack[sl->w])
        qr_matmul_pack(x->type, src, x->n_cols, sl->nr, dst);
    else
        memcpy(dst, src, (size_t)sl->nr * file_rb);
    release(src, (size_t)sl->nr * file_rb);
}

/* Every weight moves into one allocation in huge pages (a pass streams the whole model: one
 * page walk per 2 MiB instead of per 4 KiB was worth 15-30% of generation), the matrices this
 * CPU's kernels read faster in their own layout (kernels.h) repacked and the rest copied as
 * they are, and the mapping's pages are released slice by slice as they are copied, so the
 * resident size stays the model's. (Copying everything matters: reading any page of the
 * mapping again would bring back its neighbours, up to a large page cache folio each.) The
 * slices are spread over the CPUs (a 7B model is gigabytes). */
static qr_status repack(qr_model *m) {
    const int max = MAX_WEIGHTS(m->hp);
    qr_weight **w = qr_calloc((size_t)max, sizeof *w);
    const char **src = qr_calloc((size_t)max, sizeof *src);
    bool *pack = qr_calloc((size_t)max, sizeof *pack);
    copy_slice *slices = NULL;
    qr_pool *pool = NULL;
    qr_status st = QR_OK;
    if (!w || !src || !pack) {
        st = QR_ERR_NOMEM;
        goto done;
    }
    const bool tied = m->output.data == m->tok_embd.data;
    const int n = all_weights(m, w);
    size_t total = 0;
    int64_t n_slices = 0;
    for (int i = 0; i < n; i++) {
        pack[i] = qr_matmul_can_pack(w[i]->type, w[i]->n_cols, w[i]->n_rows);
        const size_t rb =
            pack[i] ? qr_matmul_packed_row_bytes(w[i]->type, w[i]->n_cols) : w[i]->row_bytes;
        total += (rb * (size_t)w[i]->n_rows + 63) & ~(size_t)63;
    }
    /* anonymous memory cannot be dropped under pressure as the mapping's clean pages can: a
     * model that would take most of the available memory stays on the mapping */
    const double avail = available_memory();
    if (avail > 0 && (double)total > 0.8 * avail) goto done;
    /* in 2 MiB pages where the kernel gives them (transparent huge pages on request): one
     * page table walk per 2 MiB of a pass instead of per 4 KiB */
    const size_t huge = (size_t)2 << 20;
    total = (total + huge - 1) / huge * huge;
    m->pack = aligned_alloc(huge, total);
#ifdef MADV_HUGEPAGE
    if (m->pack) madvise(m->pack, total, MADV_HUGEPAGE);
#endif
    if (!m->pack) goto done; /* no room for a copy: the weights stay on the mapping */
    /* place each weight, then cut it into slices */
    char *dst = m->pack;
    const char *lo = NULL, *hi = NULL; /* the span of the mapping the weights took */
    int64_t cap = 0;
    for (int i = 0; i < n; i++) {
        qr_weight *x = w[i];
        const size_t bytes = x->row_bytes * (size_t)x->n_rows;
        int64_t slice = (int64_t)((1u << 20) / x->row_bytes) / 64 * 64;
        if (slice < 64) slice = 64;
        src[i] = x->data;
        if (!lo || src[i] < lo) lo = src[i];
        if (!hi || src[i] + bytes > hi) hi = src[i] + bytes;
        x->data = dst;
        x->packed = pack[i];
        if (pack[i]) x->row_bytes = qr_matmul_packed_row_bytes(x->type, x->n_cols);
        dst += (x->row_bytes * (size_t)x->n_rows + 63) & ~(size_t)63;
        for (int64_t r0 = 0; r0 < x->n_rows; r0 += slice) {
            if (n_slices == cap) {
                cap = cap ? 2 * cap : 1024;
                copy_slice *grown = realloc(slices, (size_t)cap * sizeof *slices);
                if (!grown) {
                    st = QR_ERR_NOMEM;
                    goto done;
                }
                slices = grown;
            }
            slices[n_slices++] =
                (copy_slice){i, r0, x->n_rows - r0 < slice ? x->n_rows - r0 : slice};
        }
    }
    long n_cpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (n_cpu < 1) n_cpu = 1;
    if (n_cpu > 8) n_cpu = 8;
    copy_task task = {w, src, pack, slices};
    if (qr_pool_create((int)n_cpu, &pool) != QR_OK) { /* no threads: copy on this one */
        for (int64_t c = 0; c < n_slices; c++)
            copy_worker(&task, c, 0);
    } else {
        qr_pool_run(pool, copy_worker, &task, n_slices);
    }
    release(lo, (size_t)(hi - lo)); /* the pages the tensors shared at their ends */
    if (tied) m->output = m->tok_embd;
done:
    qr_pool_free(pool);
    free(slices);
    free(pack);
    free(src);
    free(w);
    return st;
}

/* ggml's GELU on the CPU (GGML_GELU_FP16): the tanh form evaluated once per f16 value and
 * stored as f16 (kept here as the float it stands for); activations are rounded to f16 and
 * looked up (ggml_vec_gelu_f32) */
static qr_status gelu_table(qr_model *m) {
    if (m->arch->act != QR_ACT_GELU) return QR_OK;
    m->gelu = qr_malloc(65536 * sizeof *m->gelu);
    if (!m->gelu) return QR_ERR_NOMEM;
    for (uint32_t i = 0; i < 65536; i++) {
        const float x = qr_fp16_to_fp32((uint16_t)i);
        const float g =
            0.5f * x *
            (1.0f + tanhf(0.79788456080286535587989211986876f * x * (1.0f + 0.044715f * x * x)));
        m->gelu[i] = qr_fp16_to_fp32(qr_fp32_to_fp16(g));
    }
    return QR_OK;
}

qr_status qr_model_load(const char *path, const qr_model_params *params, qr_model **out) {
    *out = NULL;
    qr_model_params defaults = qr_model_default_params();
    if (!params) params = &defaults;
    qr_model *m = qr_calloc(1, sizeof *m);
    if (!m) return QR_ERR_NOMEM;
    m->vocab_only = params->vocab_only;
    qr_status st = qr_gguf_open(path, &m->gguf);
    if (st) goto fail;
    if ((st = qr_vocab_load(m->gguf, &m->vocab))) {
        qr_error_prefix("%s: tokenizer", path);
        goto fail;
    }
    m->hp.n_vocab = qr_vocab_n_tokens(m->vocab);
    const char *arch = qr_gguf_get_str(m->gguf, "general.architecture");
    if (!arch) arch = "";
    snprintf(m->arch_name, sizeof m->arch_name, "%s", arch);
    if (!params->vocab_only) {
        m->arch = qr_arch_find(arch);
        if (!m->arch) {
            st = qr_error(QR_ERR_UNSUPPORTED, "%s: unsupported architecture '%s' (supported: %s)",
                          path, *arch ? arch : "(general.architecture missing)", qr_arch_names());
            goto fail;
        }
        if ((st = load_hparams(m)) || (st = load_weights(m)) || (st = check_kernels(m)) ||
            (st = gelu_table(m)) ||
            (!params->no_repack && (st = repack(m)))) {
            qr_error_prefix("%s", path);
            goto fail;
        }
    }
    *out = m;
    return QR_OK;
fail:
    qr_model_free(m);
    return st;
}

void qr_model_free(qr_model *m) {
    if (!m) return;
    qr_vocab_free(m->vocab);
    free(m->layers);
    free(m->experts);
    free(m->pack);
    free(m->gelu);
    qr_gguf_free(m->gguf);
    free(m);
}

const char *qr_model_arch(const qr_model *m) {
    return m->arch_name;
}
const qr_gguf *qr_model_gguf(const qr_model *m) {
    return m->gguf;
}
int32_t qr_model_n_vocab(const qr_model *m) {
    return m->hp.n_vocab;
}
int32_t qr_model_n_ctx_train(const qr_model *m) {
    return m->hp.n_ctx_train;
}
int32_t qr_model_n_embd(const qr_model *m) {
    return m->hp.n_embd;
}
int32_t qr_model_n_layer(const qr_model *m) {
    return m->hp.n_layer;
}
uint64_t qr_model_size_bytes(const qr_model *m) {
    return m->weight_bytes;
}
uint64_t qr_model_n_params(const qr_model *m) {
    return m->n_params;
}
const char *qr_model_chat_template(const qr_model *m) {
    return qr_gguf_get_str(m->gguf, "tokenizer.chat_template");
}

/* ---- the tokenizer, through the model ---- */

qr_status qr_tokenize(const qr_model *m, const char *text, size_t len, bool add_special,
                      bool parse_special, qr_token *tokens, int32_t n_max, int32_t *n_tokens) {
    return qr_vocab_tokenize(m->vocab, text, len, add_special, parse_special, tokens, n_max,
                             n_tokens);
}
int32_t qr_token_to_piece(const qr_model *m, qr_token t, char *buf, int32_t len, bool special) {
    return qr_vocab_token_to_piece(m->vocab, t, buf, len, special);
}
int32_t qr_detokenize(const qr_model *m, const qr_token *tokens, int32_t n, char *buf, int32_t len,
                      bool remove_special, bool unparse_special) {
    return qr_vocab_detokenize(m->vocab, tokens, n, buf, len, remove_special, unparse_special);
}
const char *qr_token_text(const qr_model *m, qr_token t) {
    return qr_vocab_token_text(m->vocab, t);
}
qr_token qr_token_bos(const qr_model *m) {
    return qr_vocab_bos(m->vocab);
}
qr_token qr_token_eos(const qr_model *m) {
    return qr_vocab_eos(m->vocab);
}
bool qr_token_is_eog(const qr_model *m, qr_token t) {
    return qr_vocab_is_eog(m->vocab, t);
}
bool qr_token_is_control(const qr_model *m, qr_token t) {
    return qr_vocab_is_control(m->vocab, t);
}
bool qr_model_adds_bos(const qr_model *m) {
    return qr_vocab_add_bos(m->vocab);
}
