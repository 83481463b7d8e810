/* bench_decode.c - the cost of one decode step with 1, 2, 4 and 8 sequences (the server's
 * continuous batching: one token of each active request per step), through the public API.
 * Each sequence first gets a 32-token prompt; then 64 steps of one token per sequence; prints
 * the best step time. Usage: bench_decode MODEL.gguf [THREADS]. Build: see bench/README.md. */
#define _POSIX_C_SOURCE 200809L
#include "quarrel.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf [THREADS]\n", argv[0]);
        return 2;
    }
    qr_model *model;
    if (qr_model_load(argv[1], NULL, &model) != QR_OK) {
        fprintf(stderr, "%s\n", qr_last_error());
        return 1;
    }
    const int threads = argc > 2 ? atoi(argv[2]) : 1;
    double one = 0.0;
    for (int n_seq = 1; n_seq <= 8; n_seq *= 2) {
        qr_context_params cp = qr_context_default_params();
        cp.n_ctx = 4096;
        cp.n_threads = threads;
        cp.n_seq_max = 8;
        qr_context *ctx;
        qr_batch b;
        if (qr_context_create(model, &cp, &ctx) != QR_OK || qr_batch_init(&b, 512) != QR_OK) {
            fprintf(stderr, "%s\n", qr_last_error());
            return 1;
        }
        for (int s = 0; s < n_seq; s++)
            for (int i = 0; i < 32; i++)
                qr_batch_add(&b, 100 + i, i, s, i == 31);
        if (qr_decode(ctx, &b) != QR_OK) {
            fprintf(stderr, "%s\n", qr_last_error());
            return 1;
        }
        double best = 1e30;
        for (int step = 0; step < 64; step++) {
            b.n_tokens = 0;
            for (int s = 0; s < n_seq; s++)
                qr_batch_add(&b, 5 + step, 32 + step, s, true);
            const double t0 = now_s();
            if (qr_decode(ctx, &b) != QR_OK) {
                fprintf(stderr, "%s\n", qr_last_error());
                return 1;
            }
            const double dt = now_s() - t0;
            if (dt < best) best = dt;
        }
        if (n_seq == 1) one = best;
        printf("%d sequence(s), %d thread(s): one step %.2f ms (%.1fx one sequence's), %.0f tok/s\n",
               n_seq, threads, best * 1e3, best / one, n_seq / best);
        qr_batch_free(&b);
        qr_context_free(ctx);
    }
    qr_model_free(model);
    return 0;
}
