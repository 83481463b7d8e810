/* bench_tokenize.c - tokenizer throughput: ~1 MB of mixed text (the files of
 * ../shared/reference/text repeated, with non-ASCII lines mixed in) tokenized with the shared
 * test vocabularies; prints MB/s (best of several runs) per vocabulary.
 * Usage: bench_tokenize [SHARED_DIR [DUMP_TEXT_PATH]]. Build: bench/README.md, "Tokenizer". */
#include "tokenizer/vocab.h"
#include "util/util.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t append_file(char *buf, size_t n, size_t cap, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return n;
    n += fread(buf + n, 1, cap - n, f);
    fclose(f);
    return n;
}

int main(int argc, char **argv) {
    const char *shared = argc > 1 ? argv[1] : "../shared";
    size_t target = 1u << 20, cap = target + (1u << 20);
    char *text = malloc(cap);
    size_t n = 0;
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/reference/text", shared);
    static const char mixed[] = "\n\xd0\xbd\xd0\xb5\xd1\x89\xd0\xbe \xd0\xbd\xd0\xb0 "
                                "\xd0\x91\xd1\x8a\xd0\xbb\xd0\xb3\xd0\xb0\xd1\x80\xd1\x81\xd0\xba"
                                "\xd0\xb8 \xe4\xbd\xa0\xe5\xa5\xbd\xef\xbc\x8c\xe4\xb8\x96\xe7\x95"
                                "\x8c\xef\xbc\x81 caf\xc3\xa9 \xf0\x9f\xa6\x99 1234567 x=y+1;\n";
    while (n < target) {
        size_t before = n;
        DIR *d = opendir(dir);
        struct dirent *e;
        while (d && (e = readdir(d)) && n < target) {
            if (e->d_name[0] == '.') continue;
            char path[2048];
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            n = append_file(text, n, target, path);
            if (n + sizeof(mixed) < cap) {
                memcpy(text + n, mixed, sizeof(mixed) - 1);
                n += sizeof(mixed) - 1;
            }
        }
        if (d) closedir(d);
        if (n == before) {
            fprintf(stderr, "no text under %s\n", dir);
            return 1;
        }
    }
    const char *names[] = {"llama-spm", "llama-bpe", "qwen2"};
    printf("text: %.2f MB\n", n / 1e6);
    if (argc > 2) { /* also write the text out, for timing llama.cpp on the same bytes */
        FILE *f = fopen(argv[2], "wb");
        if (!f || fwrite(text, 1, n, f) != n) {
            fprintf(stderr, "cannot write %s\n", argv[2]);
            return 1;
        }
        fclose(f);
    }
    for (int i = 0; i < 3; i++) {
        char path[1024];
        snprintf(path, sizeof(path), "%s/tokenizer-vectors/ggml-vocab-%s.gguf", shared, names[i]);
        qr_gguf *g;
        qr_vocab *v;
        if (qr_gguf_open(path, &g) != QR_OK || qr_vocab_load(g, &v) != QR_OK) {
            fprintf(stderr, "%s: %s\n", path, qr_last_error());
            return 1;
        }
        qr_token *tok = malloc(n * sizeof(*tok));
        double best = 1e30;
        int32_t n_tok = 0;
        for (int r = 0; r < 5; r++) {
            double t0 = qr_time_now();
            if (qr_vocab_tokenize(v, text, n, false, false, tok, (int32_t)n, &n_tok) != QR_OK) {
                fprintf(stderr, "%s: %s\n", names[i], qr_last_error());
                return 1;
            }
            double dt = qr_time_now() - t0;
            if (dt < best) best = dt;
        }
        printf("%-10s %8d tokens  %7.1f ms  %6.2f MB/s\n", names[i], n_tok, best * 1e3,
               n / 1e6 / best);
        free(tok);
        qr_vocab_free(v);
        qr_gguf_free(g);
    }
    free(text);
    return 0;
}
