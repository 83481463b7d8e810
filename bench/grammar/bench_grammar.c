/* bench_grammar.c - per-token cost of the grammar stage: qr_sampler_sample with a grammar minus
 * the same sampler without one, on the same logits, advancing through a realistic document.
 *
 * Usage: bench_grammar MODEL.gguf json|arithmetic GRAMMAR.gbnf
 * Build: see bench/README.md ("Grammar").
 *
 * The document (a JSON object, or arithmetic lines) is tokenized with the model's tokenizer;
 * at each step the logits are Gaussian noise (sd 3) with the document's next token raised by
 * 30, as a model that follows the grammar would put it first, so every configuration picks the
 * document's token and the grammar walks through real states. At the document's end the
 * sampler is reset. Configurations: greedy; top-k 40 (llama.cpp's default chain: top-k 40,
 * top-p 0.95, min-p 0.05, temperature 0.8); and the full mask (top-k off, top-p 1, min-p 0:
 * every token's logit is needed, so the whole vocabulary is masked each step). Each runs
 * 3 rounds; the median round's time per token is printed. */
#include "quarrel.h"
#include "../bench_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const json_doc =
    "{\n  \"id\": 4417,\n  \"name\": \"Quarrel inference engine\",\n  \"version\": \"0.5.0\",\n"
    "  \"tags\": [\"llm\", \"gguf\", \"c11\", \"cpu\"],\n  \"active\": true,\n"
    "  \"score\": 98.25,\n  \"owner\": {\"login\": \"lead\", \"email\": \"lead@example.org\", "
    "\"since\": 2024},\n  \"models\": [\n    {\"file\": \"smol135-q4_k_m.gguf\", \"params\": "
    "135000000, \"vocab\": 49152, \"quant\": \"Q4_K_M\"},\n    {\"file\": "
    "\"qwen2-tiny-q8_0.gguf\", \"params\": 1200000, \"vocab\": 151936, \"quant\": \"Q8_0\"}\n"
    "  ],\n  \"notes\": \"Greedy decoding with a JSON grammar \\u2014 every token is checked.\",\n"
    "  \"limits\": {\"ctx\": 8192, \"batch\": 512, \"threads\": null, \"ratio\": -0.5e-3}\n}";

static const char *const arithmetic_doc = /* expr "=" term per line (arithmetic.gbnf) */
    "a*(b+c)-42 = x1\n12*(x1-3)/4 = y\n(1+2)*(3+4)/5 = (z)\nw*x1+y-100 = total\n"
    "(a+(b*(c-d)))/e = f\n";

#define ROUNDS 3

static float gaussian(void) {
    double u = bench_uniform() + 1e-12, v = bench_uniform();
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Seconds per token of n_steps samples through the document (median of ROUNDS). */
static double run(qr_sampler *s, const qr_token *doc, int n_doc, float *const *logits, int n_arrays,
                  int n_steps) {
    double t[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        qr_sampler_reset(s);
        int pos = 0;
        double t0 = bench_now();
        for (int i = 0; i < n_steps; i++) {
            float *l = logits[i % n_arrays];
            l[doc[pos]] += 30.0f;
            qr_token tok;
            qr_status st = qr_sampler_sample(s, l, &tok, NULL);
            l[doc[pos]] -= 30.0f;
            if (st != QR_OK) {
                fprintf(stderr, "sample: %s\n", qr_last_error());
                exit(1);
            }
            if (tok != doc[pos]) {
                fprintf(stderr, "step %d: picked %d, the document has %d\n", i, tok, doc[pos]);
                exit(1);
            }
            if (++pos == n_doc) {
                pos = 0;
                qr_sampler_reset(s);
            }
        }
        t[r] = (bench_now() - t0) / n_steps;
    }
    qsort(t, ROUNDS, sizeof *t, cmp_double);
    return t[ROUNDS / 2];
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL.gguf json|arithmetic GRAMMAR.gbnf\n", argv[0]);
        return 2;
    }
    const char *text = strcmp(argv[2], "json") == 0 ? json_doc : arithmetic_doc;
    FILE *f = fopen(argv[3], "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", argv[3]);
        return 1;
    }
    static char gbnf[1 << 16];
    gbnf[fread(gbnf, 1, sizeof gbnf - 1, f)] = '\0';
    fclose(f);

    qr_model_params mp = qr_model_default_params();
    mp.vocab_only = true;
    qr_model *model;
    if (qr_model_load(argv[1], &mp, &model) != QR_OK) {
        fprintf(stderr, "load: %s\n", qr_last_error());
        return 1;
    }
    const int32_t n_vocab = qr_model_n_vocab(model);
    qr_token doc[4096];
    int32_t n_doc = 0;
    if (qr_tokenize(model, text, strlen(text), false, false, doc, 4096, &n_doc) != QR_OK) {
        fprintf(stderr, "tokenize: %s\n", qr_last_error());
        return 1;
    }
    enum { N_ARRAYS = 8 };
    float *logits[N_ARRAYS];
    for (int a = 0; a < N_ARRAYS; a++) {
        logits[a] = malloc((size_t)n_vocab * sizeof(float));
        for (int32_t i = 0; i < n_vocab; i++)
            logits[a][i] = 3.0f * gaussian();
    }
    printf("model %s: vocab %d, document %s: %zu bytes, %d tokens\n", argv[1], (int)n_vocab,
           argv[2], strlen(text), (int)n_doc);

    static const struct {
        const char *name;
        float temp;
        int32_t top_k;
        float top_p, min_p;
        int steps;
    } configs[] = {{"greedy", 0.0f, 40, 0.95f, 0.05f, 2000},
                   {"top-k 40 (default chain)", 0.8f, 40, 0.95f, 0.05f, 2000},
                   {"full mask (top-k off)", 1.0f, 0, 1.0f, 0.0f, 600}};
    for (size_t c = 0; c < sizeof configs / sizeof *configs; c++) {
        qr_sampler_params p = qr_sampler_default_params();
        p.seed = 7;
        p.temp = configs[c].temp;
        p.top_k = configs[c].top_k;
        p.top_p = configs[c].top_p;
        p.min_p = configs[c].min_p;
        qr_sampler *plain, *constrained;
        if (qr_sampler_create_for_model(&p, model, &plain) != QR_OK) return 1;
        p.grammar = gbnf;
        double t0 = bench_now();
        if (qr_sampler_create_for_model(&p, model, &constrained) != QR_OK) {
            fprintf(stderr, "grammar: %s\n", qr_last_error());
            return 1;
        }
        double t_create = bench_now() - t0;
        int steps = configs[c].steps;
        double base = run(plain, doc, n_doc, logits, N_ARRAYS, steps);
        double with = run(constrained, doc, n_doc, logits, N_ARRAYS, steps);
        printf("%-26s sampler %8.1f us/token, with grammar %8.1f: grammar %8.1f us/token "
               "(sampler creation with grammar %.0f ms)\n",
               configs[c].name, base * 1e6, with * 1e6, (with - base) * 1e6, t_create * 1e3);
        qr_sampler_free(plain);
        qr_sampler_free(constrained);
    }
    for (int a = 0; a < N_ARRAYS; a++)
        free(logits[a]);
    qr_model_free(model);
    return 0;
}
