/* cmd_eval.c - `quarrel eval`: multiple-choice accuracy of a model on a JSONL task file, each
 * choice scored by its log-likelihood given the context; accuracy by mean log-likelihood per
 * token (acc_norm) and by total (acc), each with a Wilson score 95% interval. */
#include "cli.h"
#include "options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f, "usage: quarrel eval -m MODEL -f TASKS.jsonl [options]\n"
               "  -m, --model NAME   GGUF path or model name (default: stories260K)\n"
               "  -f, --file FILE    tasks, one JSON object a line:\n"
               "                     {\"context\": \"...\", \"choices\": [\"...\", ...], "
               "\"answer\": INDEX}\n"
               "                     (a choice follows its context after one space unless either\n"
               "                     side already has whitespace there)\n"
               "  -c, --ctx-size N   context size (default: the model's, at most 4096)\n"
               "  -t, --threads N    threads (default: all CPUs)\n"
               "  -v, --verbose      one line per task with each choice's log-likelihood\n");
    rope_options_usage(f);
    kv_cache_options_usage(f);
}

typedef struct eval_progress {
    bool verbose;
} eval_progress;

static void progress(int32_t index, const qr_mc_task *t, const double *lp, const int32_t *nt,
                     void *user) {
    const eval_progress *ep = user;
    if (!ep->verbose) return;
    printf("task %d (line %d), answer %d:", index, t->line, t->answer);
    for (int32_t c = 0; c < t->n_choices; c++)
        printf(" [%d] %.4f/%d=%.4f", c, lp[c], nt[c], lp[c] / nt[c]);
    printf("\n");
}

int cmd_eval(int argc, char **argv) {
    const char *model_name = NULL, *file = NULL;
    eval_progress ep = {false};
    qr_context_params cp = qr_context_default_params();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            ep.verbose = true;
            continue;
        }
        int used = rope_option(a, v, &cp);
        if (used == 0) used = kv_cache_option(a, v, &cp);
        if (used < 0) return 2;
        if (used > 0) {
            i += used - 1;
            continue;
        }
        bool m = !strcmp(a, "-m") || !strcmp(a, "--model"),
             f = !strcmp(a, "-f") || !strcmp(a, "--file");
        bool c = !strcmp(a, "-c") || !strcmp(a, "--ctx-size"),
             t = !strcmp(a, "-t") || !strcmp(a, "--threads");
        if (!m && !f && !c && !t) {
            fprintf(stderr, "quarrel eval: unknown option '%s' (see quarrel eval --help)\n", a);
            return 2;
        }
        if (!v) {
            fprintf(stderr, "quarrel eval: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (m) model_name = v;
        if (f) file = v;
        if (c && parse_int(a, v, 2, 1 << 24, &cp.n_ctx)) return 2;
        if (t && parse_int(a, v, 1, 512, &cp.n_threads)) return 2;
    }
    if (!file) {
        fprintf(stderr, "quarrel eval: give the tasks with -f TASKS.jsonl (see --help)\n");
        return 2;
    }
    char *text;
    size_t len;
    if (read_file(file, &text, &len)) return 1;
    qr_mc_task *tasks;
    int32_t n_tasks;
    qr_status st = qr_mc_parse(text, len, &tasks, &n_tasks);
    free(text);
    if (st) return cli_fail(file);
    char path[4096];
    qr_model *model = NULL;
    qr_context *ctx = NULL;
    if (qr_model_resolve(model_name, QR_MODELS_DIR, path, sizeof path) != QR_OK) {
        qr_mc_tasks_free(tasks, n_tasks);
        return cli_fail("model");
    }
    int rc = 0;
    qr_mc_result r;
    if ((rc = cli_load_model(path, NULL, &model)))
        ;
    else if (qr_context_create(model, &cp, &ctx) != QR_OK)
        rc = cli_fail("creating context");
    else if (qr_mc_evaluate(ctx, tasks, n_tasks, progress, &ep, &r) != QR_OK)
        rc = cli_fail(file);
    if (!rc) {
        printf("tasks: %d\n", r.n_tasks);
        printf("acc_norm (mean log-likelihood per token): %.4f (%d/%d), 95%% CI [%.4f, %.4f] "
               "(Wilson)\n",
               r.acc_norm, r.n_correct_norm, r.n_tasks, r.acc_norm_lo, r.acc_norm_hi);
        printf("acc      (total log-likelihood):          %.4f (%d/%d), 95%% CI [%.4f, %.4f] "
               "(Wilson)\n",
               r.acc, r.n_correct, r.n_tasks, r.acc_lo, r.acc_hi);
    }
    qr_context_free(ctx);
    qr_model_free(model);
    qr_mc_tasks_free(tasks, n_tasks);
    return rc;
}
