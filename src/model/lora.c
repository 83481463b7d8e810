/* lora.c - LoRA adapters: loading and checking a GGUF adapter against the base model it is
 * for (the facts of llama.cpp's llama_adapter_lora_init: general.type "adapter", adapter.type
 * "lora", adapter.lora.alpha, the base's architecture, pairs <weight>.lora_a [n_in, r] and
 * <weight>.lora_b [r, n_out], tensors ending in _norm.weight skipped). The pairs stay on the
 * adapter's read-only mapping; forward.c applies them after the base product. */
#include "model/model.h"
#include "tensor/tensor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void qr_lora_targets(const qr_model *m, const qr_weight **out, int64_t *n) {
    int64_t k = 0;
    if (m->output.data && m->output.name && strcmp(m->output.name, "output.weight") == 0)
        out[k++] = &m->output;
    for (int32_t l = 0; l < m->hp.n_layer; l++) {
        const qr_layer *L = &m->layers[l];
        const qr_weight *ws[] = {&L->wq,       &L->wk,     &L->wv,       &L->wo,
                                 &L->ffn_gate, &L->ffn_up, &L->ffn_down, &L->ffn_gate_inp};
        for (size_t i = 0; i < sizeof ws / sizeof *ws; i++)
            if (ws[i]->data) out[k++] = ws[i];
    }
    *n = k;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* the first NaN or infinity of an F32 or F16 tensor, or -1 */
static int64_t first_non_finite(const qr_gguf_tensor *t) {
    const int64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    for (int64_t i = 0; i < n; i++) {
        if (t->type == QR_TYPE_F32) {
            float v;
            memcpy(&v, (const char *)t->data + i * 4, 4);
            if (!isfinite(v)) return i;
        } else {
            uint16_t h;
            memcpy(&h, (const char *)t->data + i * 2, 2);
            if ((h & 0x7C00) == 0x7C00) return i; /* exponent all ones: inf or NaN */
        }
    }
    return -1;
}

/* one half of a pair, checked: F32 or F16, a matrix */
static qr_status check_half(const char *path, const qr_gguf_tensor *t) {
    if (t->type != QR_TYPE_F32 && t->type != QR_TYPE_F16)
        return qr_error(QR_ERR_UNSUPPORTED,
                        "%s: tensor '%s' is %s; LoRA tensors must be F32 or F16", path, t->name,
                        qr_type_name(t->type));
    if (t->ne[2] != 1 || t->ne[3] != 1)
        return qr_error(QR_ERR_UNSUPPORTED,
                        "%s: tensor '%s' has shape [%lld, %lld, %lld, %lld]: LoRA on expert "
                        "tensors (3-D) is not supported",
                        path, t->name, (long long)t->ne[0], (long long)t->ne[1],
                        (long long)t->ne[2], (long long)t->ne[3]);
    const int64_t bad = first_non_finite(t);
    if (bad >= 0)
        return qr_error(QR_ERR_FORMAT, "%s: tensor '%s' has a NaN or infinite value (element %lld)",
                        path, t->name, (long long)bad);
    return QR_OK;
}

static qr_weight half_weight(const qr_gguf_tensor *t) {
    return (qr_weight){.data = t->data,
                       .name = t->name,
                       .type = t->type,
                       .n_cols = t->ne[0],
                       .n_rows = t->ne[1],
                       .row_bytes = qr_type_row_bytes(t->type, t->ne[0])};
}

/* the base name of a .lora_a / .lora_b tensor in buf, or NULL if it is neither */
static const char *base_name(const char *name, char *buf, size_t size, bool *is_a) {
    const bool a = ends_with(name, ".lora_a"), b = ends_with(name, ".lora_b");
    if (!a && !b) return NULL;
    const size_t len = strlen(name) - strlen(".lora_a");
    if (len + 1 > size) return NULL;
    memcpy(buf, name, len);
    buf[len] = '\0';
    *is_a = a;
    return buf;
}

static qr_status check_meta(const qr_model *m, const char *path, const qr_gguf *g, float *alpha) {
    const char *type = qr_gguf_get_str(g, "general.type");
    if (!type || strcmp(type, "adapter") != 0)
        return qr_error(QR_ERR_FORMAT,
                        "%s: general.type is %s%s%s, expected 'adapter' (not a LoRA "
                        "adapter)",
                        path, type ? "'" : "", type ? type : "missing", type ? "'" : "");
    const char *atype = qr_gguf_get_str(g, "adapter.type");
    if (!atype || strcmp(atype, "lora") != 0)
        return qr_error(QR_ERR_UNSUPPORTED, "%s: adapter.type is %s%s%s, expected 'lora'", path,
                        atype ? "'" : "", atype ? atype : "missing", atype ? "'" : "");
    const char *arch = qr_gguf_get_str(g, "general.architecture");
    if (!arch || strcmp(arch, m->arch_name) != 0)
        return qr_error(QR_ERR_INVALID_ARG,
                        "%s: the adapter's architecture is %s%s%s but the model's is '%s' (an "
                        "adapter for another base model)",
                        path, arch ? "'" : "", arch ? arch : "missing", arch ? "'" : "",
                        m->arch_name);
    *alpha = 0.0f;
    if (qr_gguf_find_key(g, "adapter.lora.alpha") >= 0) {
        if (!qr_gguf_get_f32(g, "adapter.lora.alpha", alpha))
            return qr_error(QR_ERR_FORMAT, "%s: adapter.lora.alpha is not a float", path);
        if (!isfinite(*alpha))
            return qr_error(QR_ERR_FORMAT, "%s: adapter.lora.alpha is %g", path, (double)*alpha);
    }
    return QR_OK;
}

/* pair p (its halves set) checked against the base model's tensor of its name */
static qr_status check_pair(const qr_model *m, const char *path, const qr_lora_pair *p,
                            const qr_weight *const *targets, int64_t n_targets) {
    const qr_gguf_tensor *base = qr_gguf_find_tensor(m->gguf, p->name);
    if (!base)
        return qr_error(QR_ERR_INVALID_ARG,
                        "%s: the adapter has tensor '%s', which the model does not have (an "
                        "adapter for another base model?)",
                        path, p->name);
    bool used = false;
    for (int64_t i = 0; i < n_targets && !used; i++)
        used = strcmp(targets[i]->name, p->name) == 0;
    if (!used)
        return qr_error(QR_ERR_UNSUPPORTED,
                        "%s: LoRA on tensor '%s' is not supported (the attention and FFN "
                        "matrices, the router and an untied output head are)",
                        path, p->name);
    if (p->a.n_cols != base->ne[0] || p->b.n_rows != base->ne[1])
        return qr_error(QR_ERR_INVALID_ARG,
                        "%s: tensor '%s': the adapter's pair maps %lld inputs to %lld outputs "
                        "but the model's tensor is [%lld, %lld] (an adapter for another base "
                        "model)",
                        path, p->name, (long long)p->a.n_cols, (long long)p->b.n_rows,
                        (long long)base->ne[0], (long long)base->ne[1]);
    if (p->a.n_rows != p->b.n_cols)
        return qr_error(QR_ERR_FORMAT,
                        "%s: tensor '%s': rank mismatch: lora_a has rank %lld (ne[1]) but "
                        "lora_b has %lld (ne[0])",
                        path, p->name, (long long)p->a.n_rows, (long long)p->b.n_cols);
    if (p->a.n_rows <= 0 || p->a.n_rows > 65536)
        return qr_error(QR_ERR_FORMAT, "%s: tensor '%s': rank %lld out of range", path, p->name,
                        (long long)p->a.n_rows);
    return QR_OK;
}

static qr_status transpose_b(qr_lora_pair *p) {
    const int64_t r = p->b.n_cols, n_out = p->b.n_rows;
    const size_t es = p->b.type == QR_TYPE_F16 ? 2 : 4;
    char *bt = qr_malloc((size_t)(r * n_out) * es);
    if (!bt) return QR_ERR_NOMEM;
    const char *b = p->b.data;
    for (int64_t o = 0; o < n_out; o++)
        for (int64_t j = 0; j < r; j++)
            memcpy(bt + (size_t)(j * n_out + o) * es, b + (size_t)(o * r + j) * es, es);
    p->bt = bt;
    return QR_OK;
}

static qr_status load_pairs(const qr_model *m, qr_lora *lo) {
    const qr_gguf *g = lo->gguf;
    const int64_t nt = qr_gguf_n_tensors(g);
    lo->pairs = qr_calloc((size_t)(nt > 0 ? nt : 1), sizeof *lo->pairs);
    if (!lo->pairs) return QR_ERR_NOMEM;
    /* pair the halves by base name */
    for (int64_t i = 0; i < nt; i++) {
        const qr_gguf_tensor *t = qr_gguf_tensor_at(g, i);
        char buf[256];
        bool is_a;
        const char *name = base_name(t->name, buf, sizeof buf, &is_a);
        if (!name) {
            if (ends_with(t->name, "_norm.weight")) continue; /* skipped, as llama.cpp does */
            return qr_error(QR_ERR_FORMAT,
                            "%s: unexpected tensor '%s' (LoRA tensors end in .lora_a or .lora_b)",
                            lo->path, t->name);
        }
        qr_status st = check_half(lo->path, t);
        if (st) return st;
        qr_lora_pair *p = NULL;
        for (int32_t j = 0; j < lo->n_pairs && !p; j++)
            if (strcmp(lo->pairs[j].name, name) == 0) p = &lo->pairs[j];
        if (!p) {
            p = &lo->pairs[lo->n_pairs++];
            p->name = qr_strdup(name);
            if (!p->name) return QR_ERR_NOMEM;
        }
        qr_weight *half = is_a ? &p->a : &p->b;
        if (half->data)
            return qr_error(QR_ERR_FORMAT, "%s: tensor '%s' appears twice", lo->path, t->name);
        *half = half_weight(t);
    }
    const int64_t cap = QR_LORA_MAX_TARGETS(m->hp);
    const qr_weight **targets = qr_malloc((size_t)cap * sizeof *targets);
    if (!targets) return QR_ERR_NOMEM;
    int64_t n_targets;
    qr_lora_targets(m, targets, &n_targets);
    qr_status st = QR_OK;
    for (int32_t j = 0; j < lo->n_pairs && !st; j++) {
        qr_lora_pair *p = &lo->pairs[j];
        if (!p->a.data || !p->b.data)
            st = qr_error(QR_ERR_FORMAT, "%s: the LoRA pair of tensor '%s' has no %s", lo->path,
                          p->name, p->a.data ? "lora_b" : "lora_a");
        else
            st = check_pair(m, lo->path, p, targets, n_targets);
        p->rank = (int32_t)p->a.n_rows;
        if (!st) st = transpose_b(p);
    }
    free(targets);
    if (!st && lo->n_pairs == 0)
        st = qr_error(QR_ERR_FORMAT, "%s: the adapter has no LoRA tensor pairs", lo->path);
    return st;
}

qr_status qr_lora_load(const qr_model *model, const char *path, qr_lora **out) {
    *out = NULL;
    if (!model || !path) return qr_error(QR_ERR_INVALID_ARG, "qr_lora_load: no model or path");
    if (model->vocab_only)
        return qr_error(QR_ERR_INVALID_ARG, "qr_lora_load: the model was loaded vocabulary only");
    qr_lora *lo = qr_calloc(1, sizeof *lo);
    if (!lo) return QR_ERR_NOMEM;
    lo->model = model;
    lo->path = qr_strdup(path);
    qr_status st = lo->path ? qr_gguf_open(path, &lo->gguf) : QR_ERR_NOMEM;
    if (st) {
        qr_error_prefix("LoRA adapter");
    } else if (!(st = check_meta(model, path, lo->gguf, &lo->alpha))) {
        st = load_pairs(model, lo);
    }
    if (st) {
        qr_lora_free(lo);
        return st;
    }
    *out = lo;
    return QR_OK;
}

void qr_lora_free(qr_lora *lo) {
    if (!lo) return;
    for (int32_t i = 0; i < lo->n_pairs; i++) {
        free((char *)lo->pairs[i].name);
        free(lo->pairs[i].bt);
    }
    free(lo->pairs);
    qr_gguf_free(lo->gguf);
    free(lo->path);
    free(lo);
}

float qr_lora_alpha(const qr_lora *lo) {
    return lo->alpha;
}
int32_t qr_lora_n_pairs(const qr_lora *lo) {
    return lo->n_pairs;
}
const char *qr_lora_path(const qr_lora *lo) {
    return lo->path;
}

/* ---- merging (llama-export-lora) ---- */

/* W + sum_i s_i B_i A_i for one base tensor, as llama-export-lora's merge_tensor: the base
 * dequantized to f32, each adapter's delta[o][c] = sum_j B[o][j] A[j][c] in f32 (j ascending),
 * times s, added in the adapters' order; stored F32 where the base is F32, else F16. */
static qr_status merge_tensor(const qr_gguf_tensor *t, qr_lora *const *adapters,
                              const float *scales, int32_t n, void **out, int *out_type,
                              size_t *out_bytes) {
    const int64_t n_in = t->ne[0], n_out = t->ne[1], ne = n_in * n_out;
    float *w = qr_malloc((size_t)ne * sizeof *w);
    float *a = NULL;
    qr_status st = w ? qr_dequantize(t->type, t->data, w, ne) : QR_ERR_NOMEM;
    for (int32_t i = 0; i < n && !st; i++) {
        const qr_lora *lo = adapters[i];
        const qr_lora_pair *p = NULL;
        for (int32_t j = 0; j < lo->n_pairs && !p; j++)
            if (strcmp(lo->pairs[j].name, t->name) == 0) p = &lo->pairs[j];
        if (!p) continue;
        const int64_t r = p->rank;
        const float s = lo->alpha != 0.0f ? scales[i] * lo->alpha / (float)r : scales[i];
        /* A transposed: a[c][j], so that each delta entry is one contiguous dot product */
        free(a);
        a = qr_malloc((size_t)(n_in * r) * sizeof *a);
        float *b = qr_malloc((size_t)r * sizeof *b), *ar = qr_malloc((size_t)n_in * sizeof *ar);
        if (!a || !b || !ar) {
            free(b);
            free(ar);
            st = QR_ERR_NOMEM;
            break;
        }
        for (int64_t j = 0; j < r && !st; j++) {
            st = qr_dequantize(p->a.type, (const char *)p->a.data + j * p->a.row_bytes, ar, n_in);
            for (int64_t c = 0; c < n_in; c++)
                a[c * r + j] = ar[c];
        }
        for (int64_t o = 0; o < n_out && !st; o++) {
            st = qr_dequantize(p->b.type, (const char *)p->b.data + o * p->b.row_bytes, b, r);
            float *wo = w + o * n_in;
            for (int64_t c = 0; c < n_in; c++) {
                float d = 0.0f;
                for (int64_t j = 0; j < r; j++)
                    d += b[j] * a[c * r + j];
                wo[c] = d * s + wo[c];
            }
        }
        free(b);
        free(ar);
    }
    free(a);
    if (st) {
        free(w);
        return st;
    }
    if (t->type == QR_TYPE_F32) {
        *out = w;
        *out_type = QR_TYPE_F32;
        *out_bytes = (size_t)ne * sizeof(float);
        return QR_OK;
    }
    uint16_t *h = qr_malloc((size_t)ne * sizeof *h);
    if (!h) {
        free(w);
        return QR_ERR_NOMEM;
    }
    for (int64_t k = 0; k < ne; k++)
        h[k] = qr_fp32_to_fp16(w[k]);
    free(w);
    *out = h;
    *out_type = QR_TYPE_F16;
    *out_bytes = (size_t)ne * sizeof *h;
    return QR_OK;
}

qr_status qr_lora_export(const char *base_path, const char *const *lora_paths, const float *scales,
                         int32_t n, const char *out_path) {
    if (!base_path || !out_path || n < 1 || n > QR_MAX_LORAS || !lora_paths || !scales)
        return qr_error(QR_ERR_INVALID_ARG,
                        "qr_lora_export: a base model, 1 to %d adapters and "
                        "an output file are needed",
                        QR_MAX_LORAS);
    qr_model *m = NULL;
    qr_lora *adapters[QR_MAX_LORAS] = {0};
    qr_gguf_writer *wr = NULL;
    void **merged = NULL;
    int64_t nt = 0;
    qr_model_params mp = qr_model_default_params();
    mp.no_repack = true; /* only the file's tensors are read */
    qr_status st = qr_model_load(base_path, &mp, &m);
    for (int32_t i = 0; i < n && !st; i++)
        st = qr_lora_load(m, lora_paths[i], &adapters[i]);
    if (st) goto done;
    const qr_gguf *g = m->gguf;
    nt = qr_gguf_n_tensors(g);
    merged = qr_calloc((size_t)(nt ? nt : 1), sizeof *merged);
    wr = qr_gguf_writer_create();
    if (!merged || !wr) {
        st = QR_ERR_NOMEM;
        goto done;
    }
    for (int64_t i = 0; i < qr_gguf_n_kv(g) && !st; i++)
        st = qr_gguf_writer_set(wr, qr_gguf_key(g, i), qr_gguf_value_at(g, i));
    /* llama-export-lora marks the output mostly F16 */
    if (!st) st = qr_gguf_writer_set_u32(wr, "general.file_type", 1);
    for (int64_t i = 0; i < nt && !st; i++) {
        const qr_gguf_tensor *t = qr_gguf_tensor_at(g, i);
        bool adapted = false;
        for (int32_t k = 0; k < n && !adapted; k++)
            for (int32_t j = 0; j < adapters[k]->n_pairs && !adapted; j++)
                adapted = strcmp(adapters[k]->pairs[j].name, t->name) == 0;
        if (!adapted) {
            st = qr_gguf_writer_add_tensor(wr, t->name, t->type, t->n_dims, t->ne, t->data,
                                           t->nbytes);
            continue;
        }
        int type;
        size_t bytes;
        st = merge_tensor(t, adapters, scales, n, &merged[i], &type, &bytes);
        if (!st)
            st = qr_gguf_writer_add_tensor(wr, t->name, type, t->n_dims, t->ne, merged[i], bytes);
    }
    if (!st) st = qr_gguf_writer_write(wr, out_path);
done:
    qr_gguf_writer_free(wr);
    for (int64_t i = 0; merged && i < nt; i++)
        free(merged[i]);
    free(merged);
    for (int32_t i = 0; i < n; i++)
        qr_lora_free(adapters[i]);
    qr_model_free(m);
    return st;
}
