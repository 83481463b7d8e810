/* cmd_imatrix.c - `quarrel imatrix -m MODEL -f TEXT [-o FILE]`: llama-imatrix's importance
 * matrix of a text (the file `quarrel quantize --imatrix` reads), in its GGUF format or the
 * legacy imatrix.dat, with progress and the running perplexity on stderr. */
#include "cli.h"
#include "options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: quarrel imatrix -m MODEL -f TEXT [-o FILE] [options]\n"
            "  -m, --model NAME          GGUF path or model name (default: stories260K)\n"
            "  -f, --file TEXT           the text (read verbatim, one final newline dropped)\n"
            "  -o, --output FILE         where to write it (default: imatrix.gguf)\n"
            "  -c, --ctx-size N          tokens per chunk (default 512; at least 2, at most the\n"
            "                            model's training context); the text needs 2 chunks\n"
            "  --chunks N                use at most N chunks (default: all)\n"
            "  --output-format gguf|dat  llama-imatrix's GGUF format (default) or the legacy\n"
            "                            imatrix.dat\n"
            "  --no-ppl                  do not compute the perplexity (a little faster)\n"
            "  -t, --threads N           threads (default: all CPUs)\n"
            "Computes what llama-imatrix computes: for every blk.* weight matrix, the sum of the\n"
            "squares of each input column over the tokens, and their count. The file records -f\n"
            "as given as its dataset.\n");
    rope_options_usage(f);
}

typedef struct imatrix_opts {
    const char *model, *file, *output;
    qr_imatrix_params p;
    qr_context_params cp; /* the RoPE overrides, through p.context */
} imatrix_opts;

static int parse(int argc, char **argv, imatrix_opts *o) {
    o->output = "imatrix.gguf";
    o->cp = qr_context_default_params();
    o->p.context = &o->cp;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        }
        const int used = rope_option(a, v, &o->cp);
        if (used < 0) return 2;
        if (used > 0) {
            i += used - 1;
            continue;
        }
        if (!strcmp(a, "--no-ppl")) {
            o->p.no_ppl = true;
            continue;
        }
        static const char *const with_value[] = {"-m",       "--model",         "-f", "--file",
                                                 "-o",       "--output",        "-c", "--ctx-size",
                                                 "--chunks", "--output-format", "-t", "--threads"};
        if (value_option("imatrix", a, v, with_value, sizeof with_value / sizeof with_value[0]))
            return 2;
        i++;
        if (!strcmp(a, "-m") || !strcmp(a, "--model"))
            o->model = v;
        else if (!strcmp(a, "-f") || !strcmp(a, "--file"))
            o->file = v;
        else if (!strcmp(a, "-o") || !strcmp(a, "--output"))
            o->output = v;
        else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
            if (parse_int(a, v, 2, 1 << 24, &o->p.n_ctx)) return 2;
        } else if (!strcmp(a, "--chunks")) {
            if (parse_int(a, v, 1, INT32_MAX, &o->p.n_chunks)) return 2;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (parse_int(a, v, 1, 512, &o->p.n_threads)) return 2;
        } else if (!strcmp(a, "--output-format")) {
            if (!strcmp(v, "gguf"))
                o->p.format = QR_IMATRIX_GGUF;
            else if (!strcmp(v, "dat"))
                o->p.format = QR_IMATRIX_DAT;
            else {
                fprintf(stderr, "quarrel imatrix: --output-format is 'gguf' or 'dat', not '%s'\n",
                        v);
                return 2;
            }
        }
    }
    if (!o->file) {
        fprintf(stderr, "quarrel imatrix: give the text with -f FILE (see --help)\n");
        return 2;
    }
    if (!*o->output) {
        fprintf(stderr, "quarrel imatrix: -o needs a file name\n");
        return 2;
    }
    return 0;
}

typedef struct progress_state {
    bool tty, ppl;
} progress_state;

/* On a terminal one line redrawn in place; otherwise a line per chunk. */
static void progress(const qr_imatrix_chunk *c, void *user) {
    const progress_state *ps = user;
    char ppl[48] = "";
    if (ps->ppl) snprintf(ppl, sizeof ppl, ", running PPL %.4f", c->ppl_running);
    if (ps->tty) {
        const int width = 30;
        const int fill = (int)((int64_t)(c->chunk + 1) * width / c->n_chunk);
        fprintf(stderr, "\rimatrix [%.*s%*s] %d/%d chunks%s, %.1f s\033[K", fill,
                "##############################", width - fill, "", c->chunk + 1, c->n_chunk, ppl,
                c->seconds);
        if (c->chunk + 1 == c->n_chunk) fputc('\n', stderr);
    } else {
        fprintf(stderr, "imatrix: chunk %d/%d%s, %.1f s\n", c->chunk + 1, c->n_chunk, ppl,
                c->seconds);
    }
    fflush(stderr);
}

int cmd_imatrix(int argc, char **argv) {
    imatrix_opts o = {0};
    int rc = parse(argc, argv, &o);
    if (rc) return rc;
    char path[4096];
    if (qr_model_resolve(o.model, QR_MODELS_DIR, path, sizeof path) != QR_OK)
        return cli_fail("model");
    qr_model *model = NULL;
    qr_token *tokens = NULL;
    int32_t n_tokens = 0;
    rc = cli_load_model_text(path, o.file, &model, &tokens, &n_tokens);
    if (rc) return rc;
    const size_t out_len = strlen(o.output);
    if (o.p.format == QR_IMATRIX_GGUF && (out_len < 5 || strcmp(o.output + out_len - 5, ".gguf")))
        fprintf(stderr,
                "quarrel imatrix: note: writing the GGUF format to '%s', a name not "
                "ending in .gguf (--output-format dat writes the legacy imatrix.dat)\n",
                o.output);
    progress_state ps = {isatty(STDERR_FILENO) != 0, !o.p.no_ppl};
    o.p.dataset = o.file;
    o.p.progress = progress;
    o.p.progress_user = &ps;
    qr_imatrix_result r;
    qr_status st = qr_imatrix_compute(model, tokens, n_tokens, &o.p, o.output, &r);
    free(tokens);
    qr_model_free(model);
    if (st) return cli_fail("imatrix");
    if (!o.p.no_ppl) printf("Final estimate: PPL = %.4f +/- %.5f\n", r.ppl, r.ppl_uncertainty);
    fprintf(stderr, "imatrix: %lld entries from %d chunks of %d tokens (%.2f s) written to '%s'\n",
            (long long)r.n_entries, r.n_chunk, r.n_ctx, r.seconds, o.output);
    return 0;
}
