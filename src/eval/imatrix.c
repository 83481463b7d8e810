/* imatrix.c - the importance matrix as llama-imatrix computes it (tools/imatrix/imatrix.cpp:
 * compute_imatrix and IMatrixCollector::collect_imatrix), written by quantize/imatrix_write.c.
 * The text's tokens are cut into chunks of n_ctx; chunks are evaluated from an empty cache,
 * several at once (as llama-imatrix: n_seq = 2048 / n_ctx chunks a batch, at least 1), the first
 * token of each replaced by BOS when the vocabulary adds one. Each batch is evaluated in steps
 * as llama.cpp's non-unified cache splits it (split_equal: every sequence of the batch advances
 * by the same 512 / n_seq tokens a step; one sequence: 512 tokens a step), because which
 * products count depends on the step: the matrix observer (qr_matmul_fn) sums x[j]^2 over the
 * input rows of every blk.* weight's product with at least 16 rows, and counts the rows.
 * The perplexity llama-imatrix prints along the way is the second halves' as in perplexity.c.
 * Uses the public API and the forward pass's observer. */
#include "eval/eval_internal.h"
#include "quantize/imatrix_internal.h"
#include "util/util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define IMATRIX_BATCH 2048  /* llama-imatrix's logical batch (common_params.n_batch) */
#define IMATRIX_STEP 512    /* its physical batch (n_ubatch) */
#define IMATRIX_MAX_SEQ 256 /* llama.cpp's LLAMA_MAX_SEQ */
#define MIN_ROWS 16         /* products of fewer input rows are not collected */

/* ---- the collector ---- */

typedef struct collector {
    qr_imatrix_stats *entries;
    int64_t n, cap;
    int64_t next; /* where the next lookup starts: products come in the same order each step */
    qr_status st; /* the first failure (the observer cannot return one) */
} collector;

static void collector_free(collector *c) {
    for (int64_t i = 0; i < c->n; i++) {
        free(c->entries[i].sums);
        free(c->entries[i].counts);
    }
    free(c->entries);
}

/* name's entry (n_mat matrices of n_cols: an expert tensor's experts, or 1), made if new */
static qr_imatrix_stats *find_entry(collector *c, const char *name, int64_t n_cols, int64_t n_mat) {
    /* an expert's rows come one at a time: the entry found last, first */
    if (c->n && !strcmp(c->entries[(c->next + c->n - 1) % c->n].name, name))
        return &c->entries[(c->next + c->n - 1) % c->n];
    for (int64_t k = 0; k < c->n; k++) {
        qr_imatrix_stats *e = &c->entries[(c->next + k) % c->n];
        if (!strcmp(e->name, name)) {
            c->next = (c->next + k + 1) % c->n;
            return e;
        }
    }
    if (strlen(name) >= QR_IMATRIX_MAX_NAME) {
        c->st = qr_error(QR_ERR_FORMAT, "tensor name '%s' is too long for an imatrix entry", name);
        return NULL;
    }
    if (c->n == c->cap) {
        const int64_t cap = c->cap ? 2 * c->cap : 64;
        qr_imatrix_stats *grown = realloc(c->entries, (size_t)cap * sizeof *grown);
        if (!grown) {
            c->st =
                qr_error(QR_ERR_NOMEM, "out of memory for %lld imatrix entries", (long long)cap);
            return NULL;
        }
        c->entries = grown;
        c->cap = cap;
    }
    qr_imatrix_stats *e = &c->entries[c->n];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    e->n_cols = n_cols;
    e->n_mat = n_mat; /* one sum per column and one count per matrix */
    e->sums = qr_calloc((size_t)(n_cols * n_mat), sizeof *e->sums);
    e->counts = qr_calloc((size_t)n_mat, sizeof *e->counts);
    if (!e->sums || !e->counts) {
        free(e->sums);
        free(e->counts);
        c->st = QR_ERR_NOMEM;
        return NULL;
    }
    c->n++;
    c->next = 0;
    return e;
}

/* qr_matmul_fn: the statistics of one product's input (collect_imatrix's dense branch; an
 * expert's rows, its MUL_MAT_ID branch: every row, into the expert's slice and count) */
static void observe(const char *weight, int32_t expert, int32_t n_expert, const float *x,
                    int64_t n_cols, int32_t n_rows, void *user) {
    collector *c = user;
    if (c->st || strncmp(weight, "blk.", 4) != 0) return;
    if (expert < 0 && n_rows < MIN_ROWS) return;
    const int64_t n_mat = expert < 0 ? 1 : n_expert;
    qr_imatrix_stats *e = find_entry(c, weight, n_cols, n_mat);
    if (!e) return;
    if (e->n_cols != n_cols || e->n_mat != n_mat) {
        c->st = qr_error(QR_ERR_FORMAT, "'%s': inputs of %lld x %lld and %lld x %lld values",
                         weight, (long long)e->n_cols, (long long)e->n_mat, (long long)n_cols,
                         (long long)n_mat);
        return;
    }
    const int64_t m = expert < 0 ? 0 : expert;
    float *sums = e->sums + m * n_cols; /* summed in float, as llama-imatrix does */
    for (int32_t r = 0; r < n_rows; r++) {
        const float *row = x + (int64_t)r * n_cols;
        for (int64_t j = 0; j < n_cols; j++)
            sums[j] += row[j] * row[j];
    }
    e->counts[m] += n_rows;
    for (int64_t j = 0; j < n_cols; j++)
        if (!isfinite(sums[j])) {
            c->st = qr_error(QR_ERR_NUMERIC, "non-finite activations at the input of '%s'", weight);
            return;
        }
}

/* ---- the output file ---- */

/* Fail now, not after the evaluation, when path cannot be written; leaves no file behind. */
static qr_status check_writable(const char *path) {
    const bool existed = access(path, F_OK) == 0;
    FILE *f = fopen(path, "ab"); /* neither truncates nor moves anything */
    if (!f) return qr_error(QR_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
    fclose(f);
    if (!existed) remove(path);
    return QR_OK;
}

/* ---- the evaluation ---- */

qr_status qr_imatrix_compute(qr_model *model, const qr_token *tokens, int32_t n_tokens,
                             const qr_imatrix_params *params, const char *out_path,
                             qr_imatrix_result *out) {
    qr_imatrix_result result = {0};
    if (out) *out = result;
    qr_imatrix_params p = {0};
    if (params) p = *params;
    if (!model || !out_path || !*out_path)
        return qr_error(QR_ERR_INVALID_ARG, "qr_imatrix_compute: no model or no output path");
    if (p.n_ctx < 0 || p.n_chunks < 0 || p.n_threads < 0)
        return qr_error(QR_ERR_INVALID_ARG, "imatrix parameters must not be negative");
    if (p.format != QR_IMATRIX_GGUF && p.format != QR_IMATRIX_DAT)
        return qr_error(QR_ERR_INVALID_ARG, "unknown imatrix format %d", (int)p.format);
    const int32_t n_ctx = p.n_ctx ? p.n_ctx : 512, n_ctx_train = qr_model_n_ctx_train(model);
    if (n_ctx < 2)
        return qr_error(QR_ERR_INVALID_ARG, "context of %d tokens: chunks need at least 2", n_ctx);
    if (n_ctx_train > 0 && n_ctx > n_ctx_train)
        return qr_error(QR_ERR_INVALID_ARG,
                        "context of %d tokens: the model was trained on at most %d", n_ctx,
                        n_ctx_train);
    if (!tokens || n_tokens / 2 < n_ctx)
        return qr_error(QR_ERR_INVALID_ARG,
                        "the text has %d tokens; a context of %d needs at least %lld (2 chunks; "
                        "use a smaller -c or a longer text)",
                        tokens ? n_tokens : 0, n_ctx, 2ll * n_ctx);
    int32_t n_chunk = n_tokens / n_ctx;
    if (p.n_chunks > 0 && p.n_chunks < n_chunk) n_chunk = p.n_chunks;
    const int32_t n_vocab = qr_model_n_vocab(model);
    for (int64_t i = 0; i < (int64_t)n_chunk * n_ctx; i++)
        if (tokens[i] < 0 || tokens[i] >= n_vocab)
            return qr_error(QR_ERR_INVALID_ARG, "token %lld is %d, outside the vocabulary of %d",
                            (long long)i, tokens[i], n_vocab);
    const bool add_bos = qr_model_adds_bos(model);
    const qr_token bos = qr_token_bos(model);
    if (add_bos && bos < 0)
        return qr_error(QR_ERR_FORMAT, "the vocabulary adds BOS but has no BOS token");
    qr_status st = check_writable(out_path);
    if (st) return st;

    /* llama-imatrix's grouping: n_seq chunks a batch of at most 2048 tokens */
    int32_t n_seq = IMATRIX_BATCH / n_ctx;
    if (n_seq < 1) n_seq = 1;
    if (n_seq > IMATRIX_MAX_SEQ) n_seq = IMATRIX_MAX_SEQ;
    const int32_t batch_len = n_seq * n_ctx < IMATRIX_BATCH ? n_seq * n_ctx : IMATRIX_BATCH;
    if (n_seq > n_chunk) n_seq = n_chunk; /* cells for more would stay empty */
    const int32_t first = n_ctx / 2, n_score = n_ctx - 1 - first;

    collector col = {0};
    qr_context *ctx = NULL;
    qr_batch batch = {0};
    double *chunk_nll = qr_calloc((size_t)n_seq, sizeof *chunk_nll);
    if (!chunk_nll) return QR_ERR_NOMEM;
    qr_context_params cp = p.context ? *p.context : qr_context_default_params();
    cp.n_ctx = n_seq * n_ctx;
    cp.n_seq_max = n_seq;
    cp.n_batch = IMATRIX_STEP < cp.n_ctx ? IMATRIX_STEP : cp.n_ctx;
    cp.n_threads = p.n_threads;
    cp.matmul_observer = observe;
    cp.matmul_user = &col;
    if ((st = qr_context_create(model, &cp, &ctx))) goto done;
    if ((st = qr_batch_init(&batch, cp.n_batch))) goto done;

    double nll = 0, nll2 = 0, t0 = qr_time_now();
    int64_t count = 0;
    for (int32_t c0 = 0; c0 < n_chunk; c0 += n_seq) {
        const int32_t ns = n_chunk - c0 < n_seq ? n_chunk - c0 : n_seq;
        /* split_equal's step: each of the ns sequences advances by `per` tokens */
        const int32_t per = IMATRIX_STEP / ns > 1 ? IMATRIX_STEP / ns : 1;
        qr_kv_clear(ctx);
        memset(chunk_nll, 0, (size_t)ns * sizeof *chunk_nll);
        for (int32_t b0 = 0; b0 < n_ctx; b0 += batch_len) {
            const int32_t b1 = b0 + batch_len < n_ctx ? b0 + batch_len : n_ctx;
            for (int32_t k0 = b0; k0 < b1; k0 += per) {
                const int32_t k1 = k0 + per < b1 ? k0 + per : b1;
                batch.n_tokens = 0;
                for (int32_t s = 0; s < ns; s++) {
                    const qr_token *t = tokens + (int64_t)(c0 + s) * n_ctx;
                    for (int32_t k = k0; k < k1; k++)
                        qr_batch_add(&batch, k == 0 && add_bos ? bos : t[k], k, s,
                                     !p.no_ppl && k >= first && k <= n_ctx - 2);
                }
                if ((st = qr_decode(ctx, &batch))) {
                    qr_error_prefix("chunk %d", c0 + 1);
                    goto done;
                }
                if (col.st) {
                    st = col.st;
                    goto done;
                }
                for (int32_t i = 0; i < batch.n_tokens && !p.no_ppl; i++) {
                    if (!batch.logits[i]) continue;
                    const float *l = qr_get_logits(ctx, i);
                    if (!l) {
                        st = QR_ERR_INVALID_ARG;
                        goto done;
                    }
                    const int32_t s = batch.seq_id[i];
                    const qr_token next = tokens[(int64_t)(c0 + s) * n_ctx + batch.pos[i] + 1];
                    const qr_softmax_row r = qr_softmax_stats(l, n_vocab);
                    const double v = -qr_log_prob(l, &r, next);
                    chunk_nll[s] += v;
                    nll2 += v * v;
                }
            }
        }
        for (int32_t s = 0; s < ns; s++) {
            nll += chunk_nll[s];
            count += n_score;
            if (p.progress) {
                qr_imatrix_chunk c = {c0 + s, n_chunk, p.no_ppl ? 0 : exp(nll / (double)count),
                                      qr_time_now() - t0};
                p.progress(&c, p.progress_user);
            }
        }
    }
    result.seconds = qr_time_now() - t0;
    if (col.n == 0) {
        st = qr_error(QR_ERR_INVALID_ARG,
                      "no weight product had %d or more input rows (chunks of %d tokens, %d at a "
                      "time): nothing to write; use a larger -c",
                      MIN_ROWS, n_ctx, n_seq);
        goto done;
    }
    int64_t max_count = 0;
    for (int64_t i = 0; i < col.n; i++)
        if (col.entries[i].counts[0] > max_count) max_count = col.entries[i].counts[0];
    const qr_imatrix_meta meta = {p.dataset, (uint32_t)(max_count / n_ctx), (uint32_t)n_ctx};
    st = p.format == QR_IMATRIX_DAT ? qr_imatrix_write_dat(out_path, col.entries, col.n, &meta)
                                    : qr_imatrix_write_gguf(out_path, col.entries, col.n, &meta);
    if (st) goto done;
    result.n_ctx = n_ctx;
    result.n_chunk = n_chunk;
    result.n_entries = col.n;
    if (!p.no_ppl && count > 0) {
        const double mean = nll / (double)count, var = nll2 / (double)count - mean * mean;
        result.ppl = exp(mean);
        result.ppl_uncertainty =
            var > 0 && count > 1 ? result.ppl * sqrt(var / (double)(count - 1)) : 0;
    }
    if (out) *out = result;

done:
    free(chunk_nll);
    qr_batch_free(&batch);
    qr_context_free(ctx);
    collector_free(&col);
    return st;
}
