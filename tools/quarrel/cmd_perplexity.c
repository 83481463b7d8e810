/* cmd_perplexity.c - `quarrel perplexity`: llama-perplexity's perplexity of a text file, saving
 * the scored log-probabilities (--save-logits) and the KL divergence from a saved file
 * (--kl-divergence), with progress on stderr and the result on stdout. */
#include "cli.h"
#include "options.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct ppl_opts {
    const char *model, *file, *save, *kl_base;
    bool kl_flag;
    qr_ppl_params p;
    qr_context_params cp; /* the RoPE overrides, through p.context */
    lora_opts lora;
} ppl_opts;

static void usage(FILE *f) {
    fprintf(f,
            "usage: quarrel perplexity -m MODEL -f TEXT [options]\n"
            "  -m, --model NAME        GGUF path or model name (default: stories260K)\n"
            "  -f, --file TEXT         the text to evaluate (read verbatim, one final newline "
            "dropped)\n"
            "  -c, --ctx-size N        tokens per chunk (default 512); the second half is scored\n"
            "  -b, --batch-size N      tokens per decode (default 512); b/c chunks go together\n"
            "  -t, --threads N         threads (default: all CPUs)\n"
            "  --chunks N              evaluate at most N chunks (default: all)\n"
            "  --save-logits FILE      save the log-probabilities of every scored position\n"
            "  --kl-divergence FILE    compare with a saved file: KL divergence, same top token,\n"
            "                          PPL ratio (the tokens come from FILE; -f is not needed)\n"
            "  --kl-divergence-base FILE   llama-perplexity's spelling: alone it saves to FILE,\n"
            "                          with a bare --kl-divergence it compares with FILE\n"
            "Output: progress on stderr, then `PPL = X +/- Y` on stdout (X = exp(mean NLL),\n"
            "Y = X*sqrt(var(NLL)/(N-1)), as llama-perplexity).\n");
    rope_options_usage(f);
    kv_cache_options_usage(f);
    lora_options_usage(f);
}

static int parse(int argc, char **argv, ppl_opts *o) {
    o->cp = qr_context_default_params();
    o->p.context = &o->cp;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        }
        int used = rope_option(a, v, &o->cp);
        if (used == 0) used = kv_cache_option(a, v, &o->cp);
        if (used == 0) used = lora_option(a, v, &o->lora);
        if (used < 0) return 2;
        if (used > 0) {
            i += used - 1;
            continue;
        }
        if (!strcmp(a, "--kl-divergence")) {
            o->kl_flag = true;
            if (v && v[0] != '-') {
                o->kl_base = v;
                i++;
            }
            continue;
        }
        static const char *const with_value[] = {"-m",
                                                 "--model",
                                                 "-f",
                                                 "--file",
                                                 "-c",
                                                 "--ctx-size",
                                                 "-b",
                                                 "--batch-size",
                                                 "-t",
                                                 "--threads",
                                                 "--chunks",
                                                 "--save-logits",
                                                 "--kl-divergence-base"};
        if (value_option("perplexity", a, v, with_value, sizeof with_value / sizeof with_value[0]))
            return 2;
        i++;
        if (!strcmp(a, "-m") || !strcmp(a, "--model"))
            o->model = v;
        else if (!strcmp(a, "-f") || !strcmp(a, "--file"))
            o->file = v;
        else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
            if (parse_int(a, v, 3, 1 << 24, &o->p.n_ctx)) return 2;
        } else if (!strcmp(a, "-b") || !strcmp(a, "--batch-size")) {
            if (parse_int(a, v, 1, 1 << 20, &o->p.n_batch)) return 2;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (parse_int(a, v, 1, 512, &o->p.n_threads)) return 2;
        } else if (!strcmp(a, "--chunks")) {
            if (parse_int(a, v, 1, INT32_MAX, &o->p.n_chunks)) return 2;
        } else if (!strcmp(a, "--save-logits"))
            o->save = v;
        else if (!strcmp(a, "--kl-divergence-base")) {
            if (o->kl_base && o->kl_flag) {
                fprintf(stderr, "quarrel perplexity: give the base file once\n");
                return 2;
            }
            o->kl_base = v;
        }
    }
    /* llama-perplexity: --kl-divergence-base FILE alone saves, with --kl-divergence compares */
    if (o->kl_base && !o->kl_flag) {
        if (o->save) {
            fprintf(stderr, "quarrel perplexity: give either --save-logits or "
                            "--kl-divergence-base, not both\n");
            return 2;
        }
        o->save = o->kl_base;
        o->kl_base = NULL;
    }
    if (o->kl_flag && !o->kl_base) {
        fprintf(stderr, "quarrel perplexity: --kl-divergence needs the saved file "
                        "(--kl-divergence FILE or --kl-divergence-base FILE)\n");
        return 2;
    }
    if (o->kl_base && o->save) {
        fprintf(stderr,
                "quarrel perplexity: save the log-probabilities (--save-logits) and compare "
                "with them (--kl-divergence) in separate runs\n");
        return 2;
    }
    if (!o->kl_base && !o->file) {
        fprintf(stderr, "quarrel perplexity: give the text with -f FILE (see --help)\n");
        return 2;
    }
    return 0;
}

typedef struct progress_state {
    bool tty;
} progress_state;

static void progress(const qr_ppl_chunk *c, void *user) {
    const progress_state *ps = user;
    if (ps->tty) {
        const int width = 30;
        int fill = (int)((int64_t)(c->chunk + 1) * width / c->n_chunk);
        fprintf(stderr, "\rperplexity [%.*s%*s] %d/%d chunks, PPL %.4f", fill,
                "##############################", width - fill, "", c->chunk + 1, c->n_chunk,
                c->ppl_running);
        if (c->chunk + 1 == c->n_chunk) fputc('\n', stderr);
    } else {
        fprintf(stderr, "[%d/%d] chunk PPL %.4f, running PPL %.4f\n", c->chunk + 1, c->n_chunk,
                exp(c->nll_sum / c->n_scored), c->ppl_running);
    }
    fflush(stderr);
}

static void print_kld(const qr_ppl_result *r) {
    printf("====== Perplexity statistics ======\n");
    printf("Mean PPL(Q)                   : %10.6f\n", r->ppl);
    printf("Mean PPL(base)                : %10.6f\n", r->base_ppl);
    printf("Mean ln(PPL(Q)/PPL(base))     : %10.6f\n", r->ln_ppl_ratio);
    printf("Mean PPL(Q)/PPL(base)         : %10.6f\n", r->ppl_ratio);
    printf("\n====== KL divergence statistics ======\n");
    printf("Mean    KLD: %10.6f +/- %10.6f\n", r->kld_mean, r->kld_uncertainty);
    printf("Maximum KLD: %10.6f\n", r->kld_max);
    printf("99.0%%   KLD: %10.6f\n", r->kld_p99);
    printf("95.0%%   KLD: %10.6f\n", r->kld_p95);
    printf("90.0%%   KLD: %10.6f\n", r->kld_p90);
    printf("Median  KLD: %10.6f\n", r->kld_median);
    printf("Same top p : %7.3f %%\n", 100.0 * r->same_top);
}

int cmd_perplexity(int argc, char **argv) {
    ppl_opts o = {0};
    int rc = parse(argc, argv, &o);
    if (rc) return rc;
    char path[4096];
    if (qr_model_resolve(o.model, QR_MODELS_DIR, path, sizeof path) != QR_OK)
        return cli_fail("model");
    if (o.kl_base && o.file)
        fprintf(stderr,
                "quarrel perplexity: note: -f is not used with --kl-divergence; the "
                "tokens come from '%s'\n",
                o.kl_base);
    qr_model *model = NULL;
    qr_token *tokens = NULL;
    int32_t n_tokens = 0;
    rc = cli_load_model_text(path, o.kl_base ? NULL : o.file, &model, &tokens, &n_tokens);
    if (rc) return rc;
    if ((rc = lora_options_load(&o.lora, model))) {
        lora_options_free(&o.lora);
        free(tokens);
        qr_model_free(model);
        return rc;
    }
    o.p.loras = o.lora.adapter;
    o.p.lora_scales = o.lora.scale;
    o.p.n_loras = o.lora.n;
    progress_state ps = {isatty(STDERR_FILENO) != 0};
    o.p.save_logits = o.save;
    o.p.kl_base = o.kl_base;
    o.p.progress = progress;
    o.p.progress_user = &ps;
    qr_ppl_result r;
    qr_status st = qr_perplexity(model, tokens, n_tokens, &o.p, &r);
    free(tokens);
    lora_options_free(&o.lora);
    qr_model_free(model);
    if (st) return cli_fail("perplexity");
    int64_t n_eval = (int64_t)r.n_chunk * r.n_ctx;
    fprintf(stderr,
            "%lld tokens (%d chunks of %d) in %.2f s: %.1f tokens/s; %lld positions scored\n",
            (long long)n_eval, r.n_chunk, r.n_ctx, r.seconds,
            r.seconds > 0 ? (double)n_eval / r.seconds : 0.0, (long long)r.n_scored);
    if (o.save) fprintf(stderr, "log-probabilities saved to '%s'\n", o.save);
    printf("PPL = %.4f +/- %.5f\n", r.ppl, r.ppl_uncertainty);
    if (r.has_kld) print_kld(&r);
    return 0;
}
