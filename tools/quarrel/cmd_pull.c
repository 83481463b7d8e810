/* cmd_pull.c - `quarrel pull NAME[:TAG] [--registry URL] [--insecure]`: a model from an ollama
 * registry into the ollama store, with a progress bar on a terminal and plain lines otherwise.
 * Also the byte and age formats `list` shares (ollama's format.HumanBytes and HumanTime). */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int usage(FILE *f, int code) {
    fprintf(f,
            "usage: quarrel pull NAME[:TAG] [--registry URL] [--insecure]\n"
            "  NAME            [HOST/][NAMESPACE/]MODEL, e.g. smollm2:135m or\n"
            "                  hf.co/USER/REPO:QUANT (HOST registry.ollama.ai, NAMESPACE library,\n"
            "                  TAG latest by default)\n"
            "  --registry URL  a mirror of registry.ollama.ai (default $QUARREL_REGISTRY); the\n"
            "                  model is stored as if pulled from registry.ollama.ai\n"
            "  --insecure      allow plain http\n"
            "The store is $OLLAMA_MODELS, else ~/.ollama/models; an interrupted pull resumes.\n");
    return code;
}

void cli_format_bytes(int64_t b, char *buf, size_t size) {
    static const char *const units[] = {"TB", "GB", "MB", "KB"};
    static const double scale[] = {1e12, 1e9, 1e6, 1e3};
    for (int i = 0; i < 4; i++) {
        if ((double)b < scale[i]) continue;
        const double v = (double)b / scale[i];
        if (v >= 10 || v == (double)(int64_t)v)
            snprintf(buf, size, "%lld %s", (long long)v, units[i]);
        else
            snprintf(buf, size, "%.1f %s", v, units[i]);
        return;
    }
    snprintf(buf, size, "%lld B", (long long)b);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct bar {
    bool tty;
    double start, last_draw;
    int64_t start_bytes; /* resumed from: not counted in the rate */
} bar;

/* a blob is shown by its digest's first 12 hex digits, as ollama does */
static void draw(bar *b, const qr_pull_progress *p, bool final) {
    char done[32], total[32], rate_s[32] = "", eta[32] = "";
    cli_format_bytes(p->completed, done, sizeof done);
    cli_format_bytes(p->total, total, sizeof total);
    const double dt = now() - b->start;
    const double rate = dt > 0 ? (double)(p->completed - b->start_bytes) / dt : 0;
    if (rate > 0) {
        cli_format_bytes((int64_t)rate, rate_s, sizeof rate_s);
        strcat(rate_s, "/s");
        if (!final) snprintf(eta, sizeof eta, "%.0fs", (double)(p->total - p->completed) / rate);
    }
    const int pct = p->total ? (int)(100.0 * (double)p->completed / (double)p->total) : 100;
    char fill[31];
    const int n = pct * 30 / 100;
    memset(fill, '#', (size_t)n);
    memset(fill + n, ' ', (size_t)(30 - n));
    fill[30] = '\0';
    fprintf(stderr, "\rpulling %.12s %3d%% [%s] %s/%s %s %s\033[K", p->digest + 7, pct, fill, done,
            total, rate_s, eta);
    if (final) fputc('\n', stderr);
    fflush(stderr);
}

static bool on_progress(const qr_pull_progress *p, void *user) {
    bar *b = user;
    char size[32], have[32];
    switch (p->event) {
    case QR_PULL_MANIFEST:
        break;
    case QR_PULL_BLOB_START:
        b->start = b->last_draw = now();
        b->start_bytes = p->completed;
        if (b->tty) {
            draw(b, p, false);
            break;
        }
        cli_format_bytes(p->total, size, sizeof size);
        cli_format_bytes(p->completed, have, sizeof have);
        fprintf(stderr, "pulling %.12s (%d/%d): %s%s%s\n", p->digest + 7, p->index + 1, p->count,
                size, p->completed ? ", resuming at " : "", p->completed ? have : "");
        break;
    case QR_PULL_BLOB_DATA:
        if (b->tty && now() - b->last_draw >= 0.1) {
            b->last_draw = now();
            draw(b, p, false);
        }
        break;
    case QR_PULL_BLOB_DONE:
        if (b->tty) {
            draw(b, p, true);
            break;
        }
        cli_format_bytes(p->total, size, sizeof size);
        fprintf(stderr, "pulling %.12s: %s in %.1f s, sha256 verified\n", p->digest + 7, size,
                now() - b->start);
        break;
    case QR_PULL_BLOB_CACHED:
        cli_format_bytes(p->total, size, sizeof size);
        fprintf(stderr, "pulling %.12s (%d/%d): %s, already present\n", p->digest + 7, p->index + 1,
                p->count, size);
        break;
    case QR_PULL_WRITE_MANIFEST:
        fprintf(stderr, "writing manifest\n");
        break;
    }
    return true;
}

int cmd_pull(int argc, char **argv) {
    const char *name = NULL;
    qr_pull_params params = qr_pull_default_params();
    params.registry = getenv("QUARREL_REGISTRY");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--registry")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "quarrel pull: --registry needs a URL\n");
                return 2;
            }
            params.registry = argv[++i];
        } else if (!strcmp(a, "--insecure")) {
            params.insecure = true;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            return usage(stdout, 0);
        } else if (a[0] == '-') {
            fprintf(stderr, "quarrel pull: unknown option '%s'\n", a);
            return usage(stderr, 2);
        } else if (name) {
            fprintf(stderr, "quarrel pull: one model at a time ('%s' and '%s')\n", name, a);
            return 2;
        } else {
            name = a;
        }
    }
    if (!name) {
        fprintf(stderr, "quarrel pull: which model?\n");
        return usage(stderr, 2);
    }
    bar b = {.tty = isatty(STDERR_FILENO) != 0};
    params.progress = on_progress;
    params.user = &b;
    fprintf(stderr, "pulling manifest\n");
    const qr_status st = qr_registry_pull(name, &params);
    if (st != QR_OK) {
        if (b.tty) fputc('\n', stderr);
        return cli_fail_status("pull", st);
    }
    fprintf(stderr, "success\n");
    return 0;
}
