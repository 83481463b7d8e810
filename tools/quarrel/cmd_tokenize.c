/* cmd_tokenize.c - `quarrel tokenize -m MODEL [--no-bos] [--special] [--ids] (TEXT | -f FILE)`:
 * the token ids of a text, one `id 'piece'` per line, or all ids on one line with --ids. */
#include "cli.h"
#include "options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(FILE *f, int code) {
    fprintf(f,
            "usage: quarrel tokenize [-m MODEL] [--no-bos] [--special] [--ids] (TEXT | -f FILE)\n"
            "  --no-bos    do not add the vocabulary's BOS token\n"
            "  --special   parse special tokens in the text (\"<|im_start|>\" becomes one token)\n"
            "  --ids       print the ids on one line, separated by spaces\n");
    return code;
}

static void print_piece(FILE *f, const char *s, int32_t n) {
    fputc('\'', f);
    for (int32_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n')
            fputs("\\n", f);
        else if (c == '\t')
            fputs("\\t", f);
        else if (c == '\'' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            fprintf(f, "\\x%02x", c);
        else
            fputc(c, f);
    }
    fputc('\'', f);
}

int cmd_tokenize(int argc, char **argv) {
    const char *model_name = NULL, *text = NULL, *file = NULL;
    bool no_bos = false, special = false, ids = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((!strcmp(a, "-m") || !strcmp(a, "--model") || !strcmp(a, "-f") ||
             !strcmp(a, "--file")) &&
            i + 1 >= argc) {
            fprintf(stderr, "quarrel tokenize: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "-m") || !strcmp(a, "--model"))
            model_name = argv[++i];
        else if (!strcmp(a, "-f") || !strcmp(a, "--file"))
            file = argv[++i];
        else if (!strcmp(a, "--no-bos"))
            no_bos = true;
        else if (!strcmp(a, "--special"))
            special = true;
        else if (!strcmp(a, "--ids"))
            ids = true;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help"))
            return usage(stdout, 0);
        else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "quarrel tokenize: unknown option '%s'\n", a);
            return usage(stderr, 2);
        } else if (text) {
            fprintf(stderr, "quarrel tokenize: give the text as one argument (quote it)\n");
            return 2;
        } else
            text = a;
    }
    if (!!text == !!file) {
        fprintf(stderr, "quarrel tokenize: give either TEXT or -f FILE\n");
        return usage(stderr, 2);
    }
    char *buf = NULL;
    size_t len;
    if (file) {
        if (read_file(file, &buf, &len)) return 1;
        text = buf;
    } else {
        len = strlen(text);
    }
    char path[4096];
    qr_model *model = NULL;
    qr_token *toks = NULL;
    int rc = 1;
    qr_model_params mp = qr_model_default_params();
    mp.vocab_only = true;
    if (qr_model_resolve(model_name, QR_MODELS_DIR, path, sizeof path) != QR_OK ||
        qr_model_load(path, &mp, &model) != QR_OK) {
        cli_fail("model");
        goto done;
    }
    int32_t n = 0;
    qr_status st = qr_tokenize(model, text, len, !no_bos, special, NULL, 0, &n);
    if (st != QR_OK && st != QR_ERR_BUFFER_SMALL) {
        cli_fail("tokenize");
        goto done;
    }
    toks = malloc(((size_t)n + 1) * sizeof *toks);
    if (!toks || qr_tokenize(model, text, len, !no_bos, special, toks, n, &n) != QR_OK) {
        cli_fail("tokenize");
        goto done;
    }
    if (ids) {
        for (int32_t i = 0; i < n; i++)
            printf(i ? " %d" : "%d", toks[i]);
        putchar('\n');
    } else {
        char piece[512];
        for (int32_t i = 0; i < n; i++) {
            int32_t m = qr_token_to_piece(model, toks[i], piece, sizeof piece, true);
            printf("%6d ", toks[i]);
            print_piece(stdout, piece, m < 0 ? 0 : m);
            putchar('\n');
        }
    }
    rc = 0;
done:
    free(toks);
    free(buf);
    qr_model_free(model);
    return rc;
}
