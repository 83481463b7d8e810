/* bench_gemm.c - one weight type's matmul kernel in isolation: n_rows x n_cols weights
 * (copies cycled so the set exceeds the caches, as in a forward pass) times n_tokens
 * activation rows, one thread, the best of 15 passes. Prints weight GB/s and GMAC/s.
 * Usage: bench_gemm TYPE N_COLS N_ROWS N_TOKENS [MB of weights, default 256] [packed]
 * (packed: the weights in the kernel set's repacked layout, as the model loads them; the
 * weights sit in transparent huge pages, as the model's copy does)
 * Types without a quantizer (iq2_*, iq3_*, iq1_*) get random blocks with a fixed scale.
 * (QR_KERNELS=scalar|avx2|avx512 picks the kernel set.) Build: see bench/README.md. */
#include "kernels/kernels.h"
#include "kernels/matmul.h"
#include "tensor/tensor.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Random bytes with a normal f16 scale 0.01 in every block (iq1_m keeps it in the top nibbles
 * of its 4 scale words): timing then sees no NaN or subnormal floats. */
static void fill_random_blocks(int type, char *w, size_t bytes) {
    const size_t bs = qr_type_traits_get(type)->block_bytes;
    const uint16_t d = qr_fp32_to_fp16(0.01f);
    for (size_t i = 0; i < bytes; i++)
        w[i] = (char)(rand() & 0xFF);
    for (size_t b = 0; b + bs <= bytes; b += bs) {
        unsigned char *blk = (unsigned char *)w + b;
        if (type == QR_TYPE_IQ1_M) {
            for (int k = 0; k < 4; k++) /* after qs[32] and qh[16] */
                blk[48 + 2 * k + 1] =
                    (unsigned char)((blk[48 + 2 * k + 1] & 0x0F) | (((d >> (4 * k)) & 15) << 4));
        } else {
            memcpy(blk, &d, sizeof d);
        }
    }
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s TYPE N_COLS N_ROWS N_TOKENS [MB]\n", argv[0]);
        return 2;
    }
    int type = -1;
    for (int t = 0; t < QR_TYPE_COUNT; t++)
        if (qr_type_traits_get(t) && strcasecmp(qr_type_traits_get(t)->name, argv[1]) == 0)
            type = t;
    if (type < 0) {
        fprintf(stderr, "unknown type %s\n", argv[1]);
        return 2;
    }
    const int64_t n = atoll(argv[2]), rows = atoll(argv[3]), nt = atoll(argv[4]);
    const double mb = argc > 5 ? atof(argv[5]) : 256.0;
    const bool packed = argc > 6 && !strcmp(argv[6], "packed");
    /* the repacked layout may take a few more bytes per row (q4_K) */
    const size_t rb = packed && qr_matmul_can_pack(type, n, rows)
                          ? qr_matmul_packed_row_bytes(type, n)
                          : qr_type_row_bytes(type, n);
    const size_t file_rb = qr_type_row_bytes(type, n), mat = rb * (size_t)rows;
    int copies = (int)(mb * 1e6 / (double)mat) + 1;
    /* in transparent huge pages, as the model's weight copy (model/load.c) */
    const size_t huge = (size_t)2 << 20, wbytes = (mat * (size_t)copies + huge - 1) / huge * huge;
    char *w = aligned_alloc(huge, wbytes);
    if (w) madvise(w, wbytes, MADV_HUGEPAGE);
    float *wf = malloc(sizeof(float) * (size_t)n), *x = malloc(sizeof(float) * (size_t)(n * nt));
    void *act = malloc(qr_act_bytes(type, n, nt));
    float *y = malloc(sizeof(float) * (size_t)(rows * nt));
    if (!w || !wf || !x || !act || !y) return 1;
    srand(1);
    const qr_type_traits *tr = qr_type_traits_get(type);
    if (tr->from_float) {
        for (int64_t r = 0; r < rows; r++) {
            for (int64_t i = 0; i < n; i++)
                wf[i] = (float)((double)rand() / RAND_MAX) - 0.5f;
            tr->from_float(wf, w + (size_t)r * file_rb, n);
        }
    } else { /* no quantizer (the IQ grid types): random blocks, every index as likely */
        fill_random_blocks(type, w, file_rb * (size_t)rows);
    }
    if (packed) {
        if (!qr_matmul_can_pack(type, n, rows)) {
            fprintf(stderr, "no repacked layout for %s %lldx%lld here\n", argv[1], (long long)n,
                    (long long)rows);
            return 2;
        }
        char *pw = malloc(mat);
        if (!pw) return 1;
        qr_matmul_pack(type, w, n, rows, pw);
        memcpy(w, pw, mat);
        free(pw);
    }
    for (int c = 1; c < copies; c++)
        memcpy(w + (size_t)c * mat, w, mat);
    for (int64_t i = 0; i < n * nt; i++)
        x[i] = (float)((double)rand() / RAND_MAX) - 0.5f;
    const size_t stride = qr_act_convert(type, x, n, nt, act);
    double best = 1e30;
    for (int pass = 0; pass < 15; pass++) {
        const double t0 = now_s();
        for (int c = 0; c < copies; c++)
            qr_matmul_rows(type, w + (size_t)c * mat, packed, rb, n, act, stride, nt, y, rows, 0, rows);
        const double dt = (now_s() - t0) / copies;
        if (dt < best) best = dt;
    }
    printf("%s %s%s n=%lld rows=%lld tokens=%lld: %.1f us/matmul, %.2f GB/s weights, %.2f GMAC/s\n",
           qr_kernels_best()->name, argv[1], packed ? " packed" : "", (long long)n, (long long)rows, (long long)nt,
           best * 1e6, (double)mat / best / 1e9, (double)(n * rows * nt) / best / 1e9);
    return 0;
}
