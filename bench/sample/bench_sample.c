/* bench_sample.c - time per token of the sampler chain on random logits.
 *
 * Build and run from the repository root (one line):
 *   cc -O2 -D_GNU_SOURCE -Iinclude -Isrc bench/sample/bench_sample.c src/sample/[star].c
 *   src/grammar/[star].c src/util/[star].c -lpcre2-8 -lcjson -lm -o /tmp/bench_sample &&
 *   /tmp/bench_sample
 * where [star] is '*' (it cannot be written inside a C comment).
 *
 * Logits: Gaussian, mean 0, sd 3 (roughly the spread of a real model's logits), 8 different
 * arrays used in turn so one array's top-k is not learned by the caches. Each configuration
 * runs 5 rounds of 400 tokens; the median round's time per token is printed. */
#include "quarrel.h"
#include "../bench_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N_ARRAYS 8
#define ROUNDS 5
#define TOKENS 400


static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void bench(const char *name, qr_sampler_params p, int n_vocab, float **logits,
                  bool with_logprobs) {
    qr_sampler *s;
    p.seed = 1;
    if (qr_sampler_create(&p, n_vocab, &s) != QR_OK) {
        fprintf(stderr, "%s: %s\n", name, qr_last_error());
        exit(1);
    }
    qr_token_logprobs lp;
    double t[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        double t0 = bench_now();
        for (int i = 0; i < TOKENS; i++) {
            qr_token tok;
            if (qr_sampler_sample(s, logits[i % N_ARRAYS], &tok, with_logprobs ? &lp : NULL) !=
                QR_OK) {
                fprintf(stderr, "%s: %s\n", name, qr_last_error());
                exit(1);
            }
        }
        t[r] = (bench_now() - t0) / TOKENS;
    }
    qsort(t, ROUNDS, sizeof *t, cmp_double);
    printf("%-34s vocab %6d  %8.1f us/token\n", name, n_vocab, t[ROUNDS / 2] * 1e6);
    qr_sampler_free(s);
}

int main(void) {
    const int vocabs[2] = {49152, 151936};
    for (int v = 0; v < 2; v++) {
        int n = vocabs[v];
        float *logits[N_ARRAYS];
        for (int a = 0; a < N_ARRAYS; a++) {
            logits[a] = malloc((size_t)n * sizeof(float));
            for (int i = 0; i < n; i++) /* Box-Muller */
                logits[a][i] =
                    (float)(3.0 * sqrt(-2.0 * log(bench_uniform())) * cos(6.283185307179586 * bench_uniform()));
        }
        qr_sampler_params def = qr_sampler_default_params();
        qr_sampler_params greedy = def;
        greedy.temp = 0.0f;
        qr_sampler_params pen = def;
        pen.repeat_penalty = 1.1f;
        pen.frequency_penalty = 0.1f;
        qr_sampler_params quality = def;
        quality.quality = true;
        qr_sampler_params no_top_k = def;
        no_top_k.top_k = 0;
        qr_sampler_params miro = def;
        miro.mirostat = 2;
        qr_sampler_params xtc = def;
        xtc.xtc_probability = 0.5f;
        qr_sampler_params dry = def; /* no breakers: those need a model's vocabulary */
        dry.dry_multiplier = 0.8f;
        dry.n_dry_sequence_breakers = 0;
        qr_sampler_params miro1 = def;
        miro1.mirostat = 1;
        qr_sampler_params lp = def;
        lp.n_probs = 5;
        bench("default chain", def, n, logits, false);
        bench("greedy", greedy, n, logits, false);
        bench("default + penalties (1.1, f0.1)", pen, n, logits, false);
        bench("quality preset", quality, n, logits, false);
        bench("default + logprobs (n_probs 5)", lp, n, logits, true);
        bench("default, top_k 0", no_top_k, n, logits, false);
        bench("mirostat v2", miro, n, logits, false);
        bench("default + XTC (p 0.5, t 0.1)", xtc, n, logits, false);
        bench("default + DRY (0.8, no breakers)", dry, n, logits, false);
        bench("mirostat v1", miro1, n, logits, false);
        for (int a = 0; a < N_ARRAYS; a++)
            free(logits[a]);
    }
    return 0;
}
