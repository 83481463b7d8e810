/* quantize.c - qr_quantize_file: read a GGUF model, give each tensor the type the file type
 * asks for (mix.c, llama.cpp's rules), quantize the rows on n_threads threads and write a new
 * GGUF with all the input's metadata, general.file_type and general.quantization_version set
 * as llama-quantize sets them. Tensors are written in llama.cpp's order (by layer, then name).
 *
 * Inputs: F32, F16 and BF16 tensors are converted; a tensor that keeps its type is copied as
 * is (whatever its type). Re-quantizing an already quantized tensor to another type is refused
 * unless params->allow_requantize (as llama-quantize: errors compound); then it is dequantized
 * first, which is also how file type F32 (llama.cpp's ALL_F32) turns a quantized model back
 * into floats. Weights that are NaN or infinite are refused, naming the tensor and the element.
 *
 * With an importance matrix (params->imatrix) the entry named as the tensor goes to the row
 * quantizer, which uses it where ggml does (every quantized type but q8_0 and the ternary and
 * mxfp4 ones). Tensors that llama-quantize will not make without an importance are refused
 * before anything is written, as are the ones the row quantizer would refuse.
 *
 * Memory: the quantized tensors are held until the file is written (the GGUF writer takes
 * the data at the end); copied tensors are read from the input's mapping. */
#include "quantize/quantize_internal.h"
#include "tensor/tensor.h"
#include "util/util.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#define GGML_QNT_VERSION 2        /* general.quantization_version of ggml's current block formats */
#define CHUNK_ELEMENTS (32 * 512) /* rows handed to a thread at a time: about this many values */

typedef struct tensor_job {
    const qr_gguf_tensor *t;
    int type;     /* target qr_type */
    uint8_t *dst; /* n_rows * dst_row_bytes */
    /* importance: NULL, or ne0 values per matrix of rows_per_matrix rows (an expert each) */
    const float *imatrix;
    int64_t rows_per_matrix, n_matrices;
    size_t src_row_bytes, dst_row_bytes;
    int64_t n_rows, rows_per_chunk;
    atomic_llong next_row;
    /* the first non-finite input found (row * ne0 + column), or -1; workers cannot call
     * qr_error (its message is per thread), so the main thread reports it */
    atomic_llong bad_element;
    atomic_int failed; /* a conversion call failed (a programming error: types are checked) */
} tensor_job;

static void *quantize_worker(void *arg) {
    tensor_job *job = arg;
    const int64_t ne0 = job->t->ne[0];
    float *row = malloc((size_t)ne0 * sizeof(float));
    if (!row) {
        atomic_store(&job->failed, 1);
        return NULL;
    }
    for (;;) {
        const int64_t first = atomic_fetch_add(&job->next_row, job->rows_per_chunk);
        if (first >= job->n_rows || atomic_load(&job->bad_element) >= 0 ||
            atomic_load(&job->failed))
            break;
        const int64_t last =
            first + job->rows_per_chunk < job->n_rows ? first + job->rows_per_chunk : job->n_rows;
        for (int64_t r = first; r < last; r++) {
            const uint8_t *src = (const uint8_t *)job->t->data + (size_t)r * job->src_row_bytes;
            if (qr_dequantize(job->t->type, src, row, ne0) != QR_OK) {
                atomic_store(&job->failed, 1);
                break;
            }
            for (int64_t j = 0; j < ne0; j++) {
                if (!isfinite(row[j])) {
                    long long want = r * ne0 + j, cur = atomic_load(&job->bad_element);
                    while ((cur < 0 || want < cur) &&
                           !atomic_compare_exchange_weak(&job->bad_element, &cur, want)) {
                    }
                    goto done;
                }
            }
            uint8_t *dst = job->dst + (size_t)r * job->dst_row_bytes;
            const float *importance =
                job->imatrix
                    ? job->imatrix + (r / job->rows_per_matrix % job->n_matrices) * ne0
                    : NULL;
            const qr_status st = qr_quantize_rows(job->type, row, dst, 1, ne0, importance);
            if (st != QR_OK) {
                atomic_store(&job->failed, 1);
                break;
            }
        }
    }
done:
    free(row);
    return NULL;
}

/* Quantize one tensor into job->dst on up to n_threads threads (this one included). */
static qr_status run_job(tensor_job *job, int n_threads) {
    const int64_t ne0 = job->t->ne[0];
    job->rows_per_chunk = ne0 >= CHUNK_ELEMENTS ? 1 : (CHUNK_ELEMENTS + ne0 - 1) / ne0;
    atomic_init(&job->next_row, 0);
    atomic_init(&job->bad_element, -1);
    atomic_init(&job->failed, 0);
    const int64_t n_chunks = (job->n_rows + job->rows_per_chunk - 1) / job->rows_per_chunk;
    int n_extra = n_threads - 1;
    if (n_extra > n_chunks - 1) n_extra = (int)(n_chunks > 0 ? n_chunks - 1 : 0);
    pthread_t threads[256]; /* more threads than this would not help a row-chunked job */
    if (n_extra > 256) n_extra = 256;
    int started = 0;
    for (; started < n_extra; started++)
        if (pthread_create(&threads[started], NULL, quantize_worker, job) != 0)
            break; /* fewer threads: the rest of the work is shared by those running */
    quantize_worker(job);
    for (int i = 0; i < started; i++)
        pthread_join(threads[i], NULL);

    const long long bad = atomic_load(&job->bad_element);
    if (bad >= 0)
        return qr_error(QR_ERR_NUMERIC, "tensor '%s': element %lld of row %lld is not finite",
                        job->t->name, bad % ne0, bad / ne0);
    if (atomic_load(&job->failed))
        return qr_error(QR_ERR_NOMEM, "tensor '%s': converting %s to %s failed", job->t->name,
                        qr_type_name(job->t->type), qr_type_name(job->type));
    return QR_OK;
}

static int cmp_tensor_ptr(const void *a, const void *b) {
    const qr_gguf_tensor *const *x = a, *const *y = b;
    return qr_quant_tensor_cmp((*x)->name, (*y)->name);
}

static bool is_split_key(const char *key) {
    return !strcmp(key, "split.no") || !strcmp(key, "split.count") ||
           !strcmp(key, "split.tensors.count");
}

static bool get_arch_u32(const qr_gguf *g, const char *arch, const char *suffix, int *out) {
    char key[256];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    uint32_t v;
    if (!qr_gguf_get_u32(g, key, &v) || v > INT32_MAX) return false;
    *out = (int)v;
    return true;
}

static void shape_str(const qr_gguf_tensor *t, char *buf, size_t size) {
    int len = snprintf(buf, size, "%lld", (long long)t->ne[0]);
    for (uint32_t d = 1; d < t->n_dims && len > 0 && (size_t)len < size; d++)
        len += snprintf(buf + len, size - (size_t)len, ", %lld", (long long)t->ne[d]);
}

typedef struct state {
    qr_gguf *in;
    qr_gguf_writer *w;
    const qr_gguf_tensor **order;
    qr_quant_tensor *infos;
    int *types;
    uint8_t **buffers; /* one per tensor, NULL for copied tensors */
    int64_t n;
} state;

static void state_free(state *s) {
    if (s->buffers)
        for (int64_t i = 0; i < s->n; i++)
            free(s->buffers[i]);
    free(s->buffers);
    free(s->types);
    free(s->infos);
    free(s->order);
    qr_gguf_writer_free(s->w);
    qr_gguf_free(s->in);
}

static qr_status read_model_info(const qr_gguf *g, const qr_quant_ftype *ft, qr_quant_model *m) {
    memset(m, 0, sizeof *m);
    m->arch = qr_gguf_get_str(g, "general.architecture");
    if (!m->arch) {
        if (ft->mix >= QR_MIX_Q2_K)
            return qr_error(QR_ERR_FORMAT,
                            "no general.architecture: the %s mix needs the model's layer count",
                            ft->name);
        return QR_OK;
    }
    bool have_layers = get_arch_u32(g, m->arch, "block_count", &m->n_layer);
    if (!have_layers && ft->mix >= QR_MIX_Q2_K)
        return qr_error(QR_ERR_FORMAT, "no %s.block_count: the %s mix needs the layer count",
                        m->arch, ft->name);
    get_arch_u32(g, m->arch, "attention.head_count", &m->n_head);
    if (!get_arch_u32(g, m->arch, "attention.head_count_kv", &m->n_head_kv))
        m->n_head_kv = m->n_head;
    get_arch_u32(g, m->arch, "expert_count", &m->n_expert);
    return QR_OK;
}

/* The importance entry of a tensor quantized to type, in *out (NULL if none applies). As
 * llama-quantize: an entry of the wrong length is an error (an importance matrix of another
 * model), except for token_embd, which then goes without. */
static qr_status find_importance(const qr_imatrix *im, const qr_gguf_tensor *t, int type,
                                 const float **out) {
    *out = NULL;
    int64_t n;
    const float *v = im ? qr_imatrix_find(im, t->name, &n) : NULL;
    if (!v || type == t->type) return QR_OK;
    if (n != t->ne[0] * t->ne[2]) {
        if (!strcmp(t->name, "token_embd.weight") || !strcmp(t->name, "per_layer_token_embd.weight"))
            return QR_OK;
        return qr_error(QR_ERR_FORMAT,
                        "tensor '%s' [%lld, %lld, %lld]: its importance has %lld values, not "
                        "%lld (ne0 x matrices): an importance matrix of another model?",
                        t->name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                        (long long)n, (long long)(t->ne[0] * t->ne[2]));
    }
    *out = v;
    return QR_OK;
}

static bool is_float_type(int type) {
    return type == QR_TYPE_F32 || type == QR_TYPE_F16 || type == QR_TYPE_BF16;
}

/* Everything llama-quantize checks before it writes: re-quantizing, missing importance, and
 * (Quarrel's own) whether the row quantizer takes this type with or without the importance
 * at hand (qr_quantize_check: the message qr_quantize_rows would give). */
static qr_status check_tensor(const qr_quant_ftype *ft, const qr_quantize_params *params,
                              const qr_gguf_tensor *t, int type, const float *importance) {
    if (type == t->type) return QR_OK;
    if (!is_float_type(t->type) && !(params && params->allow_requantize))
        return qr_error(QR_ERR_UNSUPPORTED,
                        "tensor '%s' is already %s: re-quantizing to %s is refused without "
                        "--allow-requantize (errors compound; quantize from the F32, F16 or "
                        "BF16 model if you have it)",
                        t->name, qr_type_name(t->type) ? qr_type_name(t->type) : "quantized",
                        qr_type_name(type));
    if (!importance && qr_quant_requires_imatrix(ft, t->name, type))
        return qr_error(QR_ERR_INVALID_ARG,
                        "tensor '%s' would be %s, a very low-bit type that llama-quantize "
                        "refuses to make without an importance matrix (the result would be "
                        "garbage): %s",
                        t->name, qr_type_name(type),
                        params && params->imatrix
                            ? "the importance matrix has no entry for it"
                            : "give one with --imatrix FILE (quarrel imatrix makes it)");
    const qr_status st = qr_quantize_check(type, t->ne[0], importance != NULL);
    if (st) qr_error_prefix("tensor '%s'", t->name);
    return st;
}

/* A tensor type name for --output-tensor-type / --token-embedding-type, if given. */
static qr_status user_type(const char *name, const char *option, bool *set, int *out) {
    *set = name != NULL;
    if (!name) return QR_OK;
    *out = qr_type_from_name(name);
    if (*out < 0 || !qr_type_can_quantize(*out))
        return qr_error(QR_ERR_INVALID_ARG,
                        "%s: '%s' is not a tensor type Quarrel can write (f32, f16, bf16, q8_0, "
                        "q4_0, q4_1, q5_0, q5_1, q2_K ... q6_K, iq4_nl, iq4_xs, iq3_s, ...)",
                        option, name);
    return QR_OK;
}

static qr_status quantize_file(state *s, const char *in_path, const char *out_path,
                               const qr_quant_ftype *ft_arg, const qr_quantize_params *params) {
    qr_quant_ftype ft_copy = *ft_arg;
    if (params && params->pure) ft_copy.mix = QR_MIX_PURE; /* llama-quantize --pure */
    const qr_quant_ftype *ft = &ft_copy;
    const qr_imatrix *imatrix = params ? params->imatrix : NULL;
    qr_status st = qr_gguf_open(in_path, &s->in);
    if (st) {
        qr_error_prefix("input '%s'", in_path);
        return st;
    }
    qr_quant_model model;
    st = read_model_info(s->in, ft, &model);
    if (st) {
        qr_error_prefix("'%s'", in_path);
        return st;
    }
    model.has_imatrix = imatrix != NULL;
    model.keep_output = params && params->leave_output_tensor;
    st = user_type(params ? params->output_tensor_type : NULL, "--output-tensor-type",
                   &model.set_output_type, &model.output_type);
    if (!st)
        st = user_type(params ? params->token_embedding_type : NULL, "--token-embedding-type",
                       &model.set_token_embd_type, &model.token_embd_type);
    if (st) return st;

    s->n = qr_gguf_n_tensors(s->in);
    const size_t n = (size_t)s->n;
    s->order = qr_calloc(n ? n : 1, sizeof *s->order);
    s->infos = qr_calloc(n ? n : 1, sizeof *s->infos);
    s->types = qr_calloc(n ? n : 1, sizeof *s->types);
    s->buffers = qr_calloc(n ? n : 1, sizeof *s->buffers);
    s->w = qr_gguf_writer_create();
    if (!s->order || !s->infos || !s->types || !s->buffers || !s->w)
        return qr_error(QR_ERR_NOMEM, "out of memory for %zu tensors", n);
    for (size_t i = 0; i < n; i++)
        s->order[i] = qr_gguf_tensor_at(s->in, (int64_t)i);
    qsort(s->order, n, sizeof *s->order, cmp_tensor_ptr);
    for (size_t i = 0; i < n; i++) {
        s->infos[i].name = s->order[i]->name;
        s->infos[i].type = s->order[i]->type;
        memcpy(s->infos[i].ne, s->order[i]->ne, sizeof s->infos[i].ne);
    }
    int n_fallback = 0;
    st = qr_quant_choose_types(ft, &model, s->infos, s->n, s->types, &n_fallback);
    if (st) return st;
    for (size_t i = 0; i < n; i++) { /* refuse before quantizing anything */
        const float *importance;
        st = find_importance(imatrix, s->order[i], s->types[i], &importance);
        if (!st) st = check_tensor(ft, params, s->order[i], s->types[i], importance);
        if (st) return st;
    }

    /* metadata: all of the input's but split bookkeeping, then the two keys llama-quantize
     * sets, at the end (ggml's gguf_set_val removes and appends, so the headers match) */
    for (int64_t i = 0; i < qr_gguf_n_kv(s->in); i++) {
        const char *key = qr_gguf_key(s->in, i);
        if (is_split_key(key) || !strcmp(key, "general.quantization_version") ||
            !strcmp(key, "general.file_type"))
            continue;
        st = qr_gguf_writer_set(s->w, key, qr_gguf_value_at(s->in, i));
        if (st) return st;
    }
    st = qr_gguf_writer_set_u32(s->w, "general.quantization_version", GGML_QNT_VERSION);
    if (!st) st = qr_gguf_writer_set_u32(s->w, "general.file_type", ft->llama_ftype);
    if (st) return st;

    int n_threads = params && params->n_threads > 0 ? params->n_threads : qr_cpu_count();
    const bool verbose = params && params->verbose;
    size_t total_in = 0, total_out = 0;
    for (size_t i = 0; i < n; i++) {
        const qr_gguf_tensor *t = s->order[i];
        const int type = s->types[i];
        char shape[128];
        shape_str(t, shape, sizeof shape);
        if (verbose)
            fprintf(stderr, "[%4zu/%4zu] %-36s - [%s], type = %6s, ", i + 1, n, t->name, shape,
                    qr_type_name(t->type) ? qr_type_name(t->type) : "?");
        const void *data = t->data;
        size_t nbytes = t->nbytes;
        if (type != t->type) {
            const int64_t ne0 = t->ne[0];
            const int64_t rows = t->ne[1] * t->ne[2] * t->ne[3];
            tensor_job job = {.t = t, .type = type, .n_rows = rows};
            st = find_importance(imatrix, t, type, &job.imatrix);
            if (st) return st;
            job.rows_per_matrix = t->ne[1] > 0 ? t->ne[1] : 1;
            job.n_matrices = t->ne[2] > 0 ? t->ne[2] : 1;
            job.src_row_bytes = qr_type_row_bytes(t->type, ne0);
            job.dst_row_bytes = qr_type_row_bytes(type, ne0);
            uint64_t total;
            if (job.dst_row_bytes == 0 ||
                qr_mul_overflows(job.dst_row_bytes, (uint64_t)rows, &total))
                return qr_error(QR_ERR_INVALID_ARG, "tensor '%s': rows of %lld cannot be %s",
                                t->name, (long long)ne0, qr_type_name(type));
            s->buffers[i] = job.dst = malloc(total ? (size_t)total : 1);
            if (!job.dst)
                return qr_error(QR_ERR_NOMEM, "tensor '%s': cannot allocate %llu bytes", t->name,
                                (unsigned long long)total);
            if (verbose)
                fprintf(stderr, "converting to %s%s .. ", qr_type_name(type),
                        job.imatrix ? " (importance)" : "");
            st = run_job(&job, n_threads);
            if (st) {
                if (verbose) fprintf(stderr, "\n");
                return st;
            }
            data = job.dst;
            nbytes = (size_t)total;
            if (verbose)
                fprintf(stderr, "size = %8.2f MiB -> %8.2f MiB\n", t->nbytes / 1048576.0,
                        nbytes / 1048576.0);
        } else if (verbose) {
            fprintf(stderr, "size = %8.3f MiB\n", t->nbytes / 1048576.0);
        }
        total_in += t->nbytes;
        total_out += nbytes;
        st = qr_gguf_writer_add_tensor(s->w, t->name, type, t->n_dims, t->ne, data, nbytes);
        if (st) return st;
    }
    if (verbose) {
        fprintf(stderr, "model size = %8.2f MiB, quantized size = %8.2f MiB (%s)\n",
                total_in / 1048576.0, total_out / 1048576.0, ft->name);
        if (n_fallback)
            fprintf(stderr, "%d of %zu tensors fell back to another type (row length)\n",
                    n_fallback, n);
    }
    st = qr_gguf_writer_write(s->w, out_path);
    if (st) qr_error_prefix("output '%s'", out_path);
    return st;
}

qr_status qr_quantize_file(const char *in_path, const char *out_path, const char *ftype,
                           const qr_quantize_params *params) {
    if (!in_path || !out_path || !ftype)
        return qr_error(QR_ERR_INVALID_ARG, "qr_quantize_file: NULL %s",
                        !in_path    ? "input path"
                        : !out_path ? "output path"
                                    : "file type");
    const qr_quant_ftype *ft = qr_quant_ftype_find(ftype);
    if (!ft)
        return qr_error(QR_ERR_INVALID_ARG, "unknown file type '%s' (known: %s)", ftype,
                        qr_quant_ftype_names());
    state s = {0};
    qr_status st = quantize_file(&s, in_path, out_path, ft, params);
    state_free(&s);
    return st;
}
