/* perplexity.c - perplexity as llama-perplexity computes it (tools/perplexity/perplexity.cpp,
 * perplexity()): chunks of n_ctx tokens from an empty cache, BOS substituted at the start of
 * each chunk when the vocabulary adds one, the second half scored with a log-softmax summed in
 * double. Also the log-probabilities file (save_logits) and the KL divergence from it
 * (kl_divergence() there; our file keeps float32 log-probabilities instead of llama.cpp's 16-bit
 * compression, so a model compared with itself gives exactly 0). Uses the public API only. */
#include "eval/eval_internal.h"
#include "util/util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOGPROB_HEADER_BYTES 24

qr_status qr_eval_tokenize(const qr_model *model, const char *text, size_t len, qr_token **tokens,
                           int32_t *n_tokens) {
    *tokens = NULL;
    *n_tokens = 0;
    if (!model || (!text && len)) return qr_error(QR_ERR_INVALID_ARG, "no model or no text");
    if (len > 0 && text[len - 1] == '\n') len--; /* like llama.cpp's -f: one trailing newline */
    if (len > (size_t)INT32_MAX / 2)
        return qr_error(QR_ERR_INVALID_ARG, "text of %zu bytes is too long to evaluate", len);
    int32_t cap = (int32_t)len + 8, n = 0;
    qr_token *t = qr_malloc((size_t)cap * sizeof *t);
    if (!t) return QR_ERR_NOMEM;
    qr_status st = qr_tokenize(model, text ? text : "", len, true, false, t, cap, &n);
    if (st == QR_ERR_BUFFER_SMALL && n > cap) {
        free(t);
        cap = n;
        t = qr_malloc((size_t)cap * sizeof *t);
        if (!t) return QR_ERR_NOMEM;
        st = qr_tokenize(model, text ? text : "", len, true, false, t, cap, &n);
    }
    if (st) {
        free(t);
        qr_error_prefix("tokenizing the text");
        return st;
    }
    *tokens = t;
    *n_tokens = n;
    return QR_OK;
}

/* mean and llama.cpp's uncertainty of the mean: sqrt(var / (n - 1)), var the population one. */
static void mean_uncertainty(double sum, double sum2, int64_t n, double *mean, double *unc) {
    *mean = n > 0 ? sum / (double)n : 0;
    double var = n > 0 ? sum2 / (double)n - *mean * *mean : 0;
    *unc = var > 0 && n > 1 ? sqrt(var / (double)(n - 1)) : 0;
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* llama.cpp's percentile: linear interpolation between the sorted values around fraction*(n-1). */
static double percentile(const float *v, int64_t n, double fraction) {
    if (fraction <= 0) return v[0];
    if (fraction >= 1) return v[n - 1];
    double p = fraction * (double)(n - 1);
    int64_t ip = (int64_t)p;
    p -= (double)ip;
    int64_t ip1 = ip + 1 < n ? ip + 1 : n - 1;
    return (1 - p) * v[ip] + p * v[ip1];
}

/* ---- the log-probabilities file ---- */

typedef struct logprob_file {
    FILE *f;
    const char *path;
    uint32_t n_vocab, n_ctx, n_chunk;
    qr_token *tokens; /* n_chunk * n_ctx, when reading */
    bool created;     /* we created the file (writing) */
} logprob_file;

static qr_status lp_write_header(logprob_file *lf, int32_t n_vocab, int32_t n_ctx, int32_t n_chunk,
                                 const qr_token *tokens) {
    lf->f = fopen(lf->path, "wb");
    if (!lf->f)
        return qr_error(QR_ERR_IO, "cannot create log-probabilities file '%s': %s", lf->path,
                        strerror(errno));
    lf->created = true;
    uint32_t head[4] = {QR_LOGPROB_VERSION, (uint32_t)n_vocab, (uint32_t)n_ctx, (uint32_t)n_chunk};
    size_t nt = (size_t)n_ctx * (size_t)n_chunk;
    if (fwrite(QR_LOGPROB_MAGIC, 1, 8, lf->f) != 8 || fwrite(head, 4, 4, lf->f) != 4 ||
        fwrite(tokens, sizeof *tokens, nt, lf->f) != nt)
        return qr_error(QR_ERR_IO, "writing '%s': %s", lf->path, strerror(errno));
    return QR_OK;
}

static qr_status lp_read_header(logprob_file *lf, int32_t model_n_vocab) {
    lf->f = fopen(lf->path, "rb");
    if (!lf->f)
        return qr_error(QR_ERR_IO, "cannot open log-probabilities file '%s': %s", lf->path,
                        strerror(errno));
    char magic[8];
    uint32_t head[4];
    if (fread(magic, 1, 8, lf->f) != 8 || memcmp(magic, QR_LOGPROB_MAGIC, 8) != 0)
        return qr_error(QR_ERR_FORMAT,
                        "'%s' is not a log-probabilities file (no " QR_LOGPROB_MAGIC
                        " magic; write one with --save-logits)",
                        lf->path);
    if (fread(head, 4, 4, lf->f) != 4)
        return qr_error(QR_ERR_FORMAT, "'%s': truncated header", lf->path);
    if (head[0] != QR_LOGPROB_VERSION)
        return qr_error(QR_ERR_UNSUPPORTED, "'%s': version %u, this build reads version %d",
                        lf->path, head[0], QR_LOGPROB_VERSION);
    lf->n_vocab = head[1];
    lf->n_ctx = head[2];
    lf->n_chunk = head[3];
    if (lf->n_vocab != (uint32_t)model_n_vocab)
        return qr_error(QR_ERR_INVALID_ARG,
                        "'%s' was saved with a vocabulary of %u tokens, this model has %d",
                        lf->path, lf->n_vocab, model_n_vocab);
    if (lf->n_ctx < 3 || lf->n_ctx > (1u << 24) || lf->n_chunk == 0 ||
        (uint64_t)lf->n_ctx * lf->n_chunk > INT32_MAX)
        return qr_error(QR_ERR_FORMAT, "'%s': bad header (n_ctx %u, n_chunk %u)", lf->path,
                        lf->n_ctx, lf->n_chunk);
    /* the exact size the header promises */
    uint64_t n_score = lf->n_ctx - 1 - lf->n_ctx / 2, rows, bytes, want;
    if (qr_mul_overflows(n_score, lf->n_chunk, &rows) ||
        qr_mul_overflows(rows, (uint64_t)lf->n_vocab * 4, &bytes) ||
        qr_add_overflows(bytes, LOGPROB_HEADER_BYTES + 4ull * lf->n_ctx * lf->n_chunk, &want))
        return qr_error(QR_ERR_FORMAT, "'%s': header sizes overflow", lf->path);
    if (fseeko(lf->f, 0, SEEK_END) != 0)
        return qr_error(QR_ERR_IO, "'%s': cannot seek: %s", lf->path, strerror(errno));
    off_t have = ftello(lf->f);
    if (have < 0 || (uint64_t)have != want)
        return qr_error(QR_ERR_FORMAT,
                        "'%s' has %lld bytes, but n_vocab %u, n_ctx %u, n_chunk %u need %llu "
                        "(truncated or damaged)",
                        lf->path, (long long)have, lf->n_vocab, lf->n_ctx, lf->n_chunk,
                        (unsigned long long)want);
    if (fseeko(lf->f, LOGPROB_HEADER_BYTES, SEEK_SET) != 0)
        return qr_error(QR_ERR_IO, "'%s': cannot seek: %s", lf->path, strerror(errno));
    size_t nt = (size_t)lf->n_ctx * lf->n_chunk;
    lf->tokens = qr_malloc(nt * sizeof *lf->tokens);
    if (!lf->tokens) return QR_ERR_NOMEM;
    if (fread(lf->tokens, sizeof *lf->tokens, nt, lf->f) != nt)
        return qr_error(QR_ERR_IO, "'%s': cannot read the tokens", lf->path);
    return QR_OK;
}

/* ---- the evaluation ---- */

/* Running sums of llama.cpp's kl_divergence_result that we report. */
typedef struct kl_sums {
    double nll_base, nll_base2, kld, kld2;
    int64_t same_top;
    float *values; /* one KLD per scored position */
    int64_t n_values;
} kl_sums;

/* Score the positions first..n_ctx-2 of one chunk whose logits are batch rows row0.. */
typedef struct chunk_job {
    qr_context *ctx;
    int32_t n_vocab, n_ctx, row0;
    const qr_token *tokens; /* the chunk's tokens (targets) */
    float *row;             /* scratch: one row of log-probabilities */
    float *base;            /* scratch: the base row (KL) */
    logprob_file *save, *kl;
    kl_sums *sums;
} chunk_job;

static qr_status score_chunk(const chunk_job *j, double *nll_sum, double *nll2_sum,
                             double *kld_sum) {
    const int32_t first = j->n_ctx / 2, n_vocab = j->n_vocab;
    *nll_sum = *nll2_sum = *kld_sum = 0;
    for (int32_t k = first; k <= j->n_ctx - 2; k++) {
        const float *l = qr_get_logits(j->ctx, j->row0 + k);
        if (!l) return QR_ERR_INVALID_ARG;
        qr_softmax_row r = qr_softmax_stats(l, n_vocab);
        const qr_token next = j->tokens[k + 1];
        double nll = -qr_log_prob(l, &r, next);
        if (!isfinite(nll))
            return qr_error(QR_ERR_NUMERIC,
                            "position %d: non-finite log-likelihood (logits NaN/inf)", k);
        *nll_sum += nll;
        *nll2_sum += nll * nll;
        if (!j->save && !j->kl) continue;
        for (int32_t i = 0; i < n_vocab; i++)
            j->row[i] = (float)qr_log_prob(l, &r, i);
        if (j->save &&
            fwrite(j->row, sizeof(float), (size_t)n_vocab, j->save->f) != (size_t)n_vocab)
            return qr_error(QR_ERR_IO, "writing '%s': %s", j->save->path, strerror(errno));
        if (j->kl) {
            if (fread(j->base, sizeof(float), (size_t)n_vocab, j->kl->f) != (size_t)n_vocab)
                return qr_error(QR_ERR_IO, "'%s': cannot read log-probabilities", j->kl->path);
            /* KL(base || this) = sum p_base (ln p_base - ln p) */
            double kld = 0;
            int32_t base_top = 0;
            for (int32_t i = 0; i < n_vocab; i++) {
                float b = j->base[i];
                if (!(b <= 0)) /* NaN or a positive log-probability */
                    return qr_error(QR_ERR_FORMAT, "'%s': invalid log-probability %g", j->kl->path,
                                    (double)b);
                if (b > j->base[base_top]) base_top = i;
                if (b > -INFINITY) kld += exp((double)b) * ((double)b - (double)j->row[i]);
            }
            kl_sums *s = j->sums;
            double nll_base = -(double)j->base[next];
            s->nll_base += nll_base;
            s->nll_base2 += nll_base * nll_base;
            s->kld += kld;
            s->kld2 += kld * kld;
            s->same_top += base_top == r.argmax;
            s->values[s->n_values++] = (float)kld;
            *kld_sum += kld;
        }
    }
    return QR_OK;
}

static void fill_kl_result(const kl_sums *s, int64_t count, qr_ppl_result *out) {
    double mean_base, unc;
    mean_uncertainty(s->nll_base, s->nll_base2, count, &mean_base, &unc);
    out->has_kld = true;
    out->base_ppl = exp(mean_base);
    out->ln_ppl_ratio = out->mean_nll - mean_base;
    out->ppl_ratio = exp(out->ln_ppl_ratio);
    mean_uncertainty(s->kld, s->kld2, count, &out->kld_mean, &out->kld_uncertainty);
    out->same_top = count ? (double)s->same_top / (double)count : 0;
    int64_t n = s->n_values;
    if (n == 0) return;
    qsort(s->values, (size_t)n, sizeof *s->values, cmp_float);
    out->kld_median = n % 2 ? s->values[n / 2] : 0.5 * (s->values[n / 2] + s->values[n / 2 - 1]);
    out->kld_p90 = percentile(s->values, n, 0.90);
    out->kld_p95 = percentile(s->values, n, 0.95);
    out->kld_p99 = percentile(s->values, n, 0.99);
    out->kld_max = s->values[n - 1];
}

qr_status qr_perplexity(qr_model *model, const qr_token *tokens, int32_t n_tokens,
                        const qr_ppl_params *params, qr_ppl_result *out) {
    memset(out, 0, sizeof *out);
    qr_ppl_params p = {0};
    if (params) p = *params;
    if (!model) return qr_error(QR_ERR_INVALID_ARG, "no model");
    if (p.n_ctx < 0 || p.n_batch < 0 || p.n_threads < 0 || p.n_chunks < 0)
        return qr_error(QR_ERR_INVALID_ARG, "perplexity parameters must not be negative");
    if (p.save_logits && p.kl_base)
        return qr_error(QR_ERR_INVALID_ARG,
                        "save the log-probabilities and compare with them in separate runs");
    const int32_t n_vocab = qr_model_n_vocab(model);
    logprob_file save = {.path = p.save_logits}, kl = {.path = p.kl_base};
    qr_context *ctx = NULL;
    qr_batch batch = {0};
    float *row = NULL, *base = NULL;
    kl_sums sums = {0};
    qr_status st = QR_OK;

    if (p.kl_base) {
        if ((st = lp_read_header(&kl, n_vocab))) goto done;
        if (p.n_ctx && (uint32_t)p.n_ctx != kl.n_ctx) {
            st = qr_error(QR_ERR_INVALID_ARG,
                          "'%s' was saved with a context of %u tokens, not %d (leave -c out)",
                          kl.path, kl.n_ctx, p.n_ctx);
            goto done;
        }
        p.n_ctx = (int32_t)kl.n_ctx;
        tokens = kl.tokens;
        n_tokens = (int32_t)(kl.n_ctx * kl.n_chunk);
    } else {
        if (p.n_ctx == 0) p.n_ctx = 512;
        if (!tokens || n_tokens <= 0) {
            st = qr_error(QR_ERR_INVALID_ARG, "no tokens to evaluate");
            goto done;
        }
    }
    const int32_t n_ctx = p.n_ctx;
    if (n_ctx < 3 || n_ctx > (1 << 24)) {
        st = qr_error(QR_ERR_INVALID_ARG, "context of %d tokens: perplexity needs 3 to %d", n_ctx,
                      1 << 24);
        goto done;
    }
    if (!p.kl_base && n_tokens / 2 < n_ctx) {
        st = qr_error(QR_ERR_INVALID_ARG,
                      "the text has %d tokens; a context of %d needs at least %lld (use a smaller "
                      "-c or a longer text)",
                      n_tokens, n_ctx, 2ll * n_ctx);
        goto done;
    }
    int32_t n_chunk = n_tokens / n_ctx;
    if (p.n_chunks > 0 && p.n_chunks < n_chunk) n_chunk = p.n_chunks;
    const int32_t n_batch = p.n_batch ? p.n_batch : 512;
    int32_t n_seq = n_batch / n_ctx;
    if (n_seq < 1) n_seq = 1;
    if (n_seq > n_chunk) n_seq = n_chunk;
    const int32_t first = n_ctx / 2, n_score = n_ctx - 1 - first;
    const bool add_bos = qr_model_adds_bos(model);
    const qr_token bos = qr_token_bos(model);
    if (add_bos && bos < 0) {
        st = qr_error(QR_ERR_FORMAT, "the vocabulary adds BOS but has no BOS token");
        goto done;
    }
    for (int64_t i = 0; i < (int64_t)n_chunk * n_ctx; i++)
        if (tokens[i] < 0 || tokens[i] >= n_vocab) {
            st = qr_error(QR_ERR_INVALID_ARG, "%s%stoken %lld is %d, outside the vocabulary of %d",
                          kl.path ? kl.path : "", kl.path ? ": " : "", (long long)i, tokens[i],
                          n_vocab);
            goto done;
        }

    qr_context_params cp = p.context ? *p.context : qr_context_default_params();
    cp.n_ctx = n_ctx * n_seq;
    cp.n_seq_max = n_seq;
    cp.n_batch = n_batch < n_ctx * n_seq ? n_batch : n_ctx * n_seq;
    cp.n_threads = p.n_threads;
    if ((st = qr_context_create(model, &cp, &ctx))) goto done;
    if (p.n_loras > 0 && (st = qr_set_loras(ctx, p.loras, p.lora_scales, p.n_loras)))
        goto done;
    if ((st = qr_batch_init(&batch, n_ctx * n_seq))) goto done;
    row = qr_malloc((size_t)n_vocab * sizeof *row);
    base = qr_malloc((size_t)n_vocab * sizeof *base);
    if (!row || !base) {
        st = QR_ERR_NOMEM;
        goto done;
    }
    if (p.kl_base) {
        sums.values = qr_malloc((size_t)n_chunk * (size_t)n_score * sizeof *sums.values);
        if (!sums.values) {
            st = QR_ERR_NOMEM;
            goto done;
        }
    }
    if (p.save_logits && (st = lp_write_header(&save, n_vocab, n_ctx, n_chunk, tokens))) goto done;

    double nll = 0, nll2 = 0, t0 = qr_time_now();
    int64_t count = 0;
    for (int32_t i = 0; i < n_chunk; i += n_seq) {
        const int32_t ns = n_chunk - i < n_seq ? n_chunk - i : n_seq;
        qr_kv_clear(ctx);
        batch.n_tokens = 0;
        for (int32_t s = 0; s < ns; s++) {
            const qr_token *t = tokens + (int64_t)(i + s) * n_ctx;
            for (int32_t k = 0; k < n_ctx; k++)
                qr_batch_add(&batch, k == 0 && add_bos ? bos : t[k], k, s,
                             k >= first && k <= n_ctx - 2);
        }
        if ((st = qr_decode(ctx, &batch))) {
            qr_error_prefix("chunk %d", i);
            goto done;
        }
        for (int32_t s = 0; s < ns; s++) {
            chunk_job job = {.ctx = ctx,
                             .n_vocab = n_vocab,
                             .n_ctx = n_ctx,
                             .row0 = s * n_ctx,
                             .tokens = tokens + (int64_t)(i + s) * n_ctx,
                             .row = row,
                             .base = base,
                             .save = p.save_logits ? &save : NULL,
                             .kl = p.kl_base ? &kl : NULL,
                             .sums = &sums};
            double cs, cs2, ck;
            if ((st = score_chunk(&job, &cs, &cs2, &ck))) {
                qr_error_prefix("chunk %d", i + s);
                goto done;
            }
            nll += cs;
            nll2 += cs2;
            count += n_score;
            if (p.progress) {
                qr_ppl_chunk c = {i + s, n_chunk, n_score, cs, exp(nll / (double)count), ck};
                p.progress(&c, p.progress_user);
            }
        }
    }
    out->seconds = qr_time_now() - t0;
    if (save.f) {
        FILE *f = save.f;
        save.f = NULL;
        if (fclose(f) != 0) {
            st = qr_error(QR_ERR_IO, "writing '%s': %s", save.path, strerror(errno));
            goto done;
        }
    }
    out->n_ctx = n_ctx;
    out->n_chunk = n_chunk;
    out->n_tokens = n_tokens;
    out->n_scored = count;
    double unc;
    mean_uncertainty(nll, nll2, count, &out->mean_nll, &unc);
    out->ppl = exp(out->mean_nll);
    out->ppl_uncertainty = out->ppl * unc;
    if (p.kl_base) fill_kl_result(&sums, count, out);

done:
    if (save.f) fclose(save.f);
    if (st && p.save_logits && save.created) remove(p.save_logits); /* no half-written file */
    if (kl.f) fclose(kl.f);
    free(kl.tokens);
    free(sums.values);
    free(row);
    free(base);
    qr_batch_free(&batch);
    qr_context_free(ctx);
    return st;
}
