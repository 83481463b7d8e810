/* choice.c - multiple-choice scoring: each choice's log-likelihood given its context, the pick
 * by mean log-likelihood per token (acc_norm) and by total (acc), accuracy with a Wilson score
 * interval. Parsing of the JSONL task files, with errors naming the line. Public API only. */
#include "eval/eval_internal.h"
#include "util/util.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* ---- task files ---- */

void qr_mc_tasks_free(qr_mc_task *tasks, int32_t n_tasks) {
    if (!tasks) return;
    for (int32_t i = 0; i < n_tasks; i++) {
        free(tasks[i].context);
        for (int32_t c = 0; c < tasks[i].n_choices; c++)
            free(tasks[i].choices[c]);
        free(tasks[i].choices);
    }
    free(tasks);
}

static bool is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isspace((unsigned char)s[i])) return false;
    return true;
}

/* One line's object into *t (t zeroed by the caller; filled parts freed by the caller). */
static qr_status parse_task(const cJSON *o, int32_t line, qr_mc_task *t) {
    t->line = line;
    if (!cJSON_IsObject(o))
        return qr_error(QR_ERR_FORMAT,
                        "line %d: expected a JSON object {\"context\", \"choices\", "
                        "\"answer\"}",
                        line);
    const cJSON *ctx = cJSON_GetObjectItemCaseSensitive(o, "context");
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(o, "choices");
    const cJSON *answer = cJSON_GetObjectItemCaseSensitive(o, "answer");
    if (!cJSON_IsString(ctx))
        return qr_error(QR_ERR_FORMAT, "line %d: \"context\" is missing or not a string", line);
    if (!cJSON_IsArray(choices) || cJSON_GetArraySize(choices) < 2)
        return qr_error(QR_ERR_FORMAT,
                        "line %d: \"choices\" must be an array of at least 2 strings", line);
    int n = cJSON_GetArraySize(choices);
    if (!cJSON_IsNumber(answer) || answer->valuedouble != (double)(int)answer->valuedouble ||
        answer->valueint < 0 || answer->valueint >= n)
        return qr_error(QR_ERR_FORMAT,
                        "line %d: \"answer\" must be an integer index from 0 to %d (the choices)",
                        line, n - 1);
    t->context = qr_strdup(ctx->valuestring);
    t->choices = qr_calloc((size_t)n, sizeof *t->choices);
    if (!t->context || !t->choices) return QR_ERR_NOMEM;
    int c = 0;
    for (const cJSON *e = choices->child; e; e = e->next, c++) {
        if (!cJSON_IsString(e))
            return qr_error(QR_ERR_FORMAT, "line %d: choice %d is not a string", line, c);
        if (!e->valuestring[0])
            return qr_error(QR_ERR_FORMAT, "line %d: choice %d is empty", line, c);
        t->choices[c] = qr_strdup(e->valuestring);
        if (!t->choices[c]) return QR_ERR_NOMEM;
        t->n_choices = c + 1;
    }
    t->answer = answer->valueint;
    return QR_OK;
}

qr_status qr_mc_parse(const char *text, size_t len, qr_mc_task **tasks, int32_t *n_tasks) {
    *tasks = NULL;
    *n_tasks = 0;
    if (!text && len) return qr_error(QR_ERR_INVALID_ARG, "no text");
    qr_mc_task *v = NULL;
    int32_t n = 0, cap = 0, line = 0;
    qr_status st = QR_OK;
    char *buf = NULL;
    for (size_t pos = 0; pos < len && !st;) {
        const char *s = text + pos, *nl = memchr(s, '\n', len - pos);
        size_t n_line = nl ? (size_t)(nl - s) : len - pos;
        pos += n_line + (nl ? 1 : 0);
        line++;
        if (is_blank(s, n_line)) continue;
        if (memchr(s, '\0', n_line)) {
            st = qr_error(QR_ERR_FORMAT, "line %d: contains a NUL byte", line);
            break;
        }
        free(buf);
        buf = qr_malloc(n_line + 1);
        if (!buf) {
            st = QR_ERR_NOMEM;
            break;
        }
        memcpy(buf, s, n_line);
        buf[n_line] = '\0';
        cJSON *o = cJSON_Parse(buf);
        if (!o) {
            const char *at = cJSON_GetErrorPtr();
            size_t off = at && at >= buf && at <= buf + n_line ? (size_t)(at - buf) : 0;
            st = qr_error(QR_ERR_FORMAT, "line %d: invalid JSON near column %zu", line, off + 1);
            break;
        }
        if (n == cap) {
            int32_t nc = cap ? cap * 2 : 64;
            qr_mc_task *nv = realloc(v, (size_t)nc * sizeof *nv);
            if (!nv) {
                cJSON_Delete(o);
                st = qr_error(QR_ERR_NOMEM, "out of memory for %d tasks", nc);
                break;
            }
            v = nv;
            cap = nc;
        }
        memset(&v[n], 0, sizeof v[n]);
        st = parse_task(o, line, &v[n]);
        n++; /* freed with the rest, complete or not */
        cJSON_Delete(o);
    }
    free(buf);
    if (!st && n == 0) st = qr_error(QR_ERR_FORMAT, "no tasks (every line is empty)");
    if (st) {
        qr_mc_tasks_free(v, n);
        return st;
    }
    *tasks = v;
    *n_tasks = n;
    return QR_OK;
}

/* ---- scoring ---- */

static qr_status tokenize_alloc(const qr_model *model, const char *text, qr_token **out,
                                int32_t *n_out) {
    size_t len = strlen(text);
    if (len > (size_t)INT32_MAX / 2) return qr_error(QR_ERR_INVALID_ARG, "text is too long");
    int32_t cap = (int32_t)len + 8, n = 0;
    qr_token *t = qr_malloc((size_t)cap * sizeof *t);
    if (!t) return QR_ERR_NOMEM;
    qr_status st = qr_tokenize(model, text, len, true, false, t, cap, &n);
    if (st == QR_ERR_BUFFER_SMALL && n > cap) {
        free(t);
        cap = n;
        t = qr_malloc((size_t)cap * sizeof *t);
        if (!t) return QR_ERR_NOMEM;
        st = qr_tokenize(model, text, len, true, false, t, cap, &n);
    }
    if (st) {
        free(t);
        return st;
    }
    *out = t;
    *n_out = n;
    return QR_OK;
}

/* context + separator + choice, the separator one space where the two would otherwise touch. */
static char *join(const char *context, const char *choice) {
    size_t a = strlen(context), b = strlen(choice);
    bool space = a > 0 && !isspace((unsigned char)context[a - 1]) && b > 0 &&
                 !isspace((unsigned char)choice[0]);
    char *s = qr_malloc(a + b + 2);
    if (!s) return NULL;
    memcpy(s, context, a);
    if (space) s[a++] = ' ';
    memcpy(s + a, choice, b + 1);
    return s;
}

/* What sequence 0 of the cache holds, so a task's choices reuse the context's entries. */
typedef struct kv_track {
    qr_token *tokens;
    int32_t n, cap;
} kv_track;

/* ln p of full[first..n_full) each given the tokens before it (first >= 1). */
static qr_status score_tokens(qr_context *ctx, kv_track *kv, const qr_token *full, int32_t n_full,
                              int32_t first, double *logprob) {
    const int32_t n_vocab = qr_model_n_vocab(qr_context_model(ctx));
    if (n_full > qr_context_n_ctx(ctx))
        return qr_error(QR_ERR_CONTEXT_FULL,
                        "context and choice are %d tokens; the model context holds %d", n_full,
                        qr_context_n_ctx(ctx));
    int32_t common = 0;
    while (common < kv->n && common < n_full && kv->tokens[common] == full[common])
        common++;
    int32_t keep = common < first - 1 ? common : first - 1; /* re-evaluate first-1 for its logits */
    qr_status st = qr_kv_remove(ctx, 0, keep, -1);
    if (st) return st;
    kv->n = keep;
    if (n_full > kv->cap) {
        qr_token *t = realloc(kv->tokens, (size_t)n_full * sizeof *t);
        if (!t) return qr_error(QR_ERR_NOMEM, "out of memory");
        kv->tokens = t;
        kv->cap = n_full;
    }
    qr_batch batch;
    if ((st = qr_batch_init(&batch, n_full - keep))) return st;
    for (int32_t i = keep; i < n_full; i++)
        qr_batch_add(&batch, full[i], i, 0, i >= first - 1 && i <= n_full - 2);
    st = qr_decode(ctx, &batch);
    qr_batch_free(&batch);
    if (st) {
        qr_kv_remove(ctx, 0, 0, -1);
        kv->n = 0;
        return st;
    }
    memcpy(kv->tokens, full, (size_t)n_full * sizeof *full);
    kv->n = n_full;
    double sum = 0;
    for (int32_t i = first; i < n_full; i++) {
        const float *l = qr_get_logits(ctx, i - 1 - keep);
        if (!l) return QR_ERR_INVALID_ARG;
        qr_softmax_row r = qr_softmax_stats(l, n_vocab);
        sum += qr_log_prob(l, &r, full[i]);
    }
    if (!isfinite(sum))
        return qr_error(QR_ERR_NUMERIC, "non-finite log-likelihood (logits NaN/inf)");
    *logprob = sum;
    return QR_OK;
}

/* Score one choice given the context's tokens. */
static qr_status score_one(qr_context *ctx, kv_track *kv, const char *context,
                           const qr_token *ctx_tokens, int32_t n_ctx_tokens, const char *choice,
                           double *logprob, int32_t *n_tokens) {
    const qr_model *model = qr_context_model(ctx);
    char *text = join(context, choice);
    if (!text) return QR_ERR_NOMEM;
    qr_token *full = NULL;
    int32_t n_full = 0;
    qr_status st = tokenize_alloc(model, text, &full, &n_full);
    free(text);
    if (st) return st;
    int32_t common = 0;
    while (common < n_ctx_tokens && common < n_full && ctx_tokens[common] == full[common])
        common++;
    int32_t first = common > 1 ? common : 1;
    if (first >= n_full)
        st = qr_error(QR_ERR_INVALID_ARG, "choice '%.40s' adds no token to its context to score",
                      choice);
    else
        st = score_tokens(ctx, kv, full, n_full, first, logprob);
    if (!st) *n_tokens = n_full - first;
    free(full);
    return st;
}

qr_status qr_mc_score_choice(qr_context *ctx, const char *context, const char *choice,
                             double *logprob, int32_t *n_tokens) {
    if (!ctx || !context || !choice || !logprob || !n_tokens)
        return qr_error(QR_ERR_INVALID_ARG, "missing argument");
    kv_track kv = {0};
    qr_token *ct = NULL;
    int32_t nc = 0;
    qr_status st = tokenize_alloc(qr_context_model(ctx), context, &ct, &nc);
    if (!st) st = score_one(ctx, &kv, context, ct, nc, choice, logprob, n_tokens);
    free(ct);
    free(kv.tokens);
    return st;
}

void qr_wilson_interval(int64_t k, int64_t n, double z, double *lo, double *hi) {
    if (n <= 0) {
        *lo = 0;
        *hi = 1;
        return;
    }
    double p = (double)k / (double)n, nn = (double)n, z2 = z * z;
    double denom = 1 + z2 / nn;
    double center = (p + z2 / (2 * nn)) / denom;
    double half = z / denom * sqrt(p * (1 - p) / nn + z2 / (4 * nn * nn));
    *lo = center - half < 0 ? 0 : center - half;
    *hi = center + half > 1 ? 1 : center + half;
}

qr_status qr_mc_evaluate(qr_context *ctx, const qr_mc_task *tasks, int32_t n_tasks,
                         qr_mc_progress_fn progress, void *user, qr_mc_result *out) {
    memset(out, 0, sizeof *out);
    if (!ctx || (!tasks && n_tasks) || n_tasks < 0)
        return qr_error(QR_ERR_INVALID_ARG, "missing context or tasks");
    kv_track kv = {0};
    double *lp = NULL;
    int32_t *nt = NULL, max_choices = 0;
    qr_status st = qr_kv_remove(ctx, 0, 0, -1);
    for (int32_t i = 0; i < n_tasks; i++)
        if (tasks[i].n_choices > max_choices) max_choices = tasks[i].n_choices;
    lp = qr_malloc((size_t)(max_choices + 1) * sizeof *lp);
    nt = qr_malloc((size_t)(max_choices + 1) * sizeof *nt);
    if (!lp || !nt) st = QR_ERR_NOMEM;
    for (int32_t i = 0; i < n_tasks && !st; i++) {
        const qr_mc_task *t = &tasks[i];
        if (t->n_choices < 1 || t->answer < 0 || t->answer >= t->n_choices) {
            st = qr_error(QR_ERR_INVALID_ARG, "task %d (line %d): answer %d is not a choice", i,
                          t->line, t->answer);
            break;
        }
        qr_token *ct = NULL;
        int32_t nc = 0;
        st = tokenize_alloc(qr_context_model(ctx), t->context, &ct, &nc);
        int32_t best = 0, best_norm = 0;
        for (int32_t c = 0; c < t->n_choices && !st; c++) {
            st = score_one(ctx, &kv, t->context, ct, nc, t->choices[c], &lp[c], &nt[c]);
            if (st) break;
            if (lp[c] > lp[best]) best = c;
            if (lp[c] / nt[c] > lp[best_norm] / nt[best_norm]) best_norm = c;
        }
        free(ct);
        if (st) {
            qr_error_prefix("task on line %d", t->line);
            break;
        }
        out->n_correct += best == t->answer;
        out->n_correct_norm += best_norm == t->answer;
        out->n_tasks++;
        if (progress) progress(i, t, lp, nt, user);
    }
    free(lp);
    free(nt);
    free(kv.tokens);
    if (st) return st;
    if (out->n_tasks) {
        out->acc = (double)out->n_correct / out->n_tasks;
        out->acc_norm = (double)out->n_correct_norm / out->n_tasks;
    }
    qr_wilson_interval(out->n_correct, out->n_tasks, 1.96, &out->acc_lo, &out->acc_hi);
    qr_wilson_interval(out->n_correct_norm, out->n_tasks, 1.96, &out->acc_norm_lo,
                       &out->acc_norm_hi);
    return QR_OK;
}
