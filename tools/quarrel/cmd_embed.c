/* cmd_embed.c - `quarrel embed -m MODEL (-p TEXT | -f FILE) [--pooling P] [--embd-normalize N]
 * [--embd-output-format json|array]`: the embedding of each input line (llama-embedding's names
 * and defaults: inputs separated by newlines, Euclidean normalisation, the model's pooling or
 * mean), printed as `embedding I: v v v ...`, as one JSON array of arrays, or as an OpenAI-style
 * JSON list. */
#include "cli.h"
#include "options.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(FILE *f, int code) {
    fprintf(f,
            "usage: quarrel embed [-m MODEL] (-p TEXT | -f FILE) [options]\n"
            "  -p, --prompt TEXT          the input; each line is embedded on its own\n"
            "  -f, --file FILE            the input from a file\n"
            "  --pooling none|mean|cls|last   pooling (default: the model's, else mean)\n"
            "  --embd-normalize N         -1 none, 0 max-abs (int16 range), 1 taxicab,\n"
            "                             2 Euclidean (default), N > 2 the p-norm\n"
            "  --embd-output-format F     json (OpenAI-style list) or array (arrays of numbers);\n"
            "                             default: one line 'embedding I: ...' per input\n"
            "  -c, --ctx-size N           context size (default: the model's, at most 4096)\n"
            "  -t, --threads N            threads (default: all CPUs)\n");
    return code;
}

typedef struct embed_opts {
    const char *model, *prompt, *file, *format;
    qr_pooling pooling;
    int32_t norm, n_ctx, n_threads;
} embed_opts;

static int parse(int argc, char **argv, embed_opts *o) {
    o->pooling = QR_POOLING_MODEL;
    o->norm = 2;
    o->format = "";
    static const char *const with_value[] = {
        "-m", "--model", "-p", "--prompt", "-f", "--file", "--pooling", "--embd-normalize",
        "--embd-output-format", "-c", "--ctx-size", "-t", "--threads"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return usage(stdout, -1);
        if (value_option("embed", a, v, with_value, sizeof with_value / sizeof *with_value))
            return 2;
        i++;
        if (!strcmp(a, "-m") || !strcmp(a, "--model"))
            o->model = v;
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt"))
            o->prompt = v;
        else if (!strcmp(a, "-f") || !strcmp(a, "--file"))
            o->file = v;
        else if (!strcmp(a, "--pooling")) {
            static const char *const names[] = {"none", "mean", "cls", "last"};
            int k = 0;
            while (k < 4 && strcmp(v, names[k]))
                k++;
            if (k == 4) {
                fprintf(stderr, "quarrel embed: --pooling expects none, mean, cls or last, got "
                                "'%s'\n",
                        v);
                return 2;
            }
            o->pooling = (qr_pooling)k;
        } else if (!strcmp(a, "--embd-normalize")) {
            if (parse_int(a, v, -1, 64, &o->norm)) return 2;
        } else if (!strcmp(a, "--embd-output-format")) {
            if (strcmp(v, "json") && strcmp(v, "array")) {
                fprintf(stderr, "quarrel embed: --embd-output-format expects json or array, got "
                                "'%s'\n",
                        v);
                return 2;
            }
            o->format = v;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
            if (parse_int(a, v, 0, 1 << 24, &o->n_ctx)) return 2;
        } else if (parse_int(a, v, 1, 512, &o->n_threads)) { /* -t, --threads */
            return 2;
        }
    }
    if (!!o->prompt == !!o->file) {
        fprintf(stderr, "quarrel embed: give either -p TEXT or -f FILE\n");
        return 2;
    }
    return 0;
}

/* one input's vectors (n_rows of d) in the chosen format */
static void print_rows(const embed_opts *o, cJSON *list, int index, const float *v, int n_rows,
                       int d) {
    for (int r = 0; r < n_rows; r++) {
        const float *row = v + (size_t)r * (size_t)d;
        if (!*o->format) {
            printf("embedding %d:", index + r);
            for (int j = 0; j < d; j++)
                printf(" %9.6f", row[j]);
            putchar('\n');
            continue;
        }
        cJSON *arr = cJSON_CreateArray();
        for (int j = 0; j < d; j++)
            cJSON_AddItemToArray(arr, cJSON_CreateNumber(row[j]));
        if (!strcmp(o->format, "array")) {
            cJSON_AddItemToArray(list, arr);
        } else {
            cJSON *item = cJSON_CreateObject();
            cJSON_AddStringToObject(item, "object", "embedding");
            cJSON_AddNumberToObject(item, "index", index + r);
            cJSON_AddItemToObject(item, "embedding", arr);
            cJSON_AddItemToArray(list, item);
        }
    }
}

int cmd_embed(int argc, char **argv) {
    embed_opts o = {0};
    int rc = parse(argc, argv, &o);
    if (rc) return rc < 0 ? 0 : rc;
    char *buf = NULL;
    size_t len;
    if (o.file) {
        if (read_file(o.file, &buf, &len)) return 1;
    } else {
        buf = strdup(o.prompt);
        if (!buf) return cli_fail("out of memory");
        len = strlen(buf);
    }
    char path[4096];
    qr_model *model = NULL;
    qr_context *ctx = NULL;
    qr_token *toks = NULL;
    float *vec = NULL;
    cJSON *list = cJSON_CreateArray();
    rc = 1;
    if (qr_model_resolve(o.model, QR_MODELS_DIR, path, sizeof path) != QR_OK) {
        cli_fail("model");
        goto done;
    }
    int load_rc = cli_load_model(path, NULL, &model);
    if (load_rc) {
        rc = load_rc;
        goto done;
    }
    qr_context_params cp = qr_context_default_params();
    cp.n_ctx = o.n_ctx;
    cp.n_threads = o.n_threads;
    if (qr_context_create(model, &cp, &ctx) != QR_OK) {
        cli_fail("creating context");
        goto done;
    }
    const int32_t n_ctx = qr_context_n_ctx(ctx), d = qr_model_n_embd(model);
    if (o.pooling == QR_POOLING_MODEL) o.pooling = qr_model_pooling(model); /* resolved once */
    toks = malloc((size_t)n_ctx * sizeof *toks);
    vec = malloc((size_t)n_ctx * (size_t)d * sizeof *vec);
    if (!toks || !vec || !list) {
        cli_fail("out of memory");
        goto done;
    }
    /* each line one input, as llama-embedding's default separator */
    int index = 0, line_no = 0;
    for (char *line = buf, *next; line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        line_no++;
        if (!*line && next == NULL && index > 0) break; /* the file's final newline */
        int32_t n = 0;
        qr_status st = qr_tokenize(model, line, strlen(line), true, false, toks, n_ctx, &n);
        if (st == QR_ERR_BUFFER_SMALL) {
            fprintf(stderr,
                    "quarrel embed: input %d is %d tokens but the context holds %d; use a larger "
                    "-c\n",
                    line_no, n, n_ctx);
            goto done;
        }
        if (st != QR_OK) {
            cli_fail("tokenizing");
            goto done;
        }
        if (n == 0) {
            fprintf(stderr, "quarrel embed: input %d is empty (and the model adds no BOS)\n",
                    line_no);
            goto done;
        }
        if (qr_embed(ctx, 0, toks, n, o.pooling, vec) != QR_OK) {
            cli_fail("embedding");
            goto done;
        }
        const int n_rows = o.pooling == QR_POOLING_NONE ? n : 1;
        for (int r = 0; r < n_rows; r++)
            qr_embd_normalize(vec + (size_t)r * (size_t)d, vec + (size_t)r * (size_t)d, d, o.norm);
        print_rows(&o, list, index, vec, n_rows, d);
        index += n_rows;
    }
    if (*o.format) {
        cJSON *root = list;
        if (!strcmp(o.format, "json")) {
            root = cJSON_CreateObject();
            cJSON_AddStringToObject(root, "object", "list");
            cJSON_AddItemToObject(root, "data", list);
        }
        char *s = cJSON_PrintUnformatted(root);
        if (s) puts(s);
        free(s);
        if (root != list) { /* the object owns the list now */
            cJSON_Delete(root);
            list = NULL;
        }
    }
    rc = 0;
done:
    cJSON_Delete(list);
    free(vec);
    free(toks);
    free(buf);
    qr_context_free(ctx);
    qr_model_free(model);
    return rc;
}
