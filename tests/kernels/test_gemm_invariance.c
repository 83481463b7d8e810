/* test_gemm_invariance.c - batch invariance of the matrix products (issue 22): for every kernel
 * set this CPU runs and every weight type it has a gemm for (file layout and, where the set has
 * one, the repacked layout), the output row of a token computed alone (n_tokens = 1, the
 * generation path) is bit-identical to the same row computed inside a batch of 2..40 tokens (and
 * one of 67, past qr_matmul_rows' token block) at every place in that batch. The sizes cross
 * every tile and panel threshold: 4-token tiles, 8-token repacked groups, the 16-token
 * interleaved panel of the legacy types, rows of more than one 64-block panel and of several
 * k-quant superblocks, 16-row groups plus leftover rows. Types that are not invariant yet are
 * listed in known_variant below; the test fails if that list is wrong either way. Also the
 * attention rows of an f16 cache: a head's results do not depend on how many heads share the
 * call. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kernels/kernels.h"
#include "kernels/matmul.h"
#include "quarrel.h"
#include "tensor/tensor.h"
#include "test_util.h"

/* 9 k-quant superblocks, 72 legacy blocks (more than one 64-block panel) */
#define N_COLS 2304
/* 2 groups of 16 rows plus 3 (file layout: 8-row panels, then 4-row tiles and leftovers) */
#define N_ROWS 35
#define N_ROWS_PACKED 32
#define MAX_TOKENS 67

/* (set, type, layout) combinations whose batched rows still differ from the single-token row:
 * TODO(issue 22) make them invariant, then remove them here (every one is, for now). */
typedef struct variant {
    const char *set;
    int type;
    bool packed;
} variant;
static const variant known_variant[] = {
    {"", -1, false}, /* none: a placeholder, so that the array is never empty */
};

static bool is_known_variant(const char *set, int type, bool packed) {
    for (size_t i = 0; i < sizeof known_variant / sizeof known_variant[0]; i++)
        if (strcmp(known_variant[i].set, set) == 0 && known_variant[i].type == type &&
            known_variant[i].packed == packed)
            return true;
    return false;
}

/* Whether the rows of a batch of every size up to MAX_TOKENS equal the single-token rows; on
 * a difference, *what says the first one. */
static bool invariant(const qr_kernels *set, int type, bool packed, char *what, size_t what_n) {
    const int64_t n = N_COLS, nr = packed ? N_ROWS_PACKED : N_ROWS;
    const size_t row_bytes = qr_type_row_bytes(type, n);
    float *wf = malloc((size_t)(nr * n) * sizeof(float));
    float *x = malloc((size_t)(MAX_TOKENS * n) * sizeof(float));
    float *imatrix = malloc((size_t)n * sizeof(float));
    char *w = malloc(row_bytes * (size_t)nr);
    char *act = malloc(qr_act_bytes(type, n, MAX_TOKENS));
    float *alone = malloc((size_t)(nr * MAX_TOKENS) * sizeof(float));
    float *batch = malloc((size_t)(nr * MAX_TOKENS) * sizeof(float));
    assert_true(wf && x && imatrix && w && act && alone && batch);
    qr_test_fill_random(wf, nr * n);
    qr_test_fill_random(x, MAX_TOKENS * n);
    for (int64_t i = 0; i < n; i++)
        imatrix[i] = 1.0f + (float)(i % 7);
    if (qr_quantize_rows(type, wf, w, nr, n, imatrix) != QR_OK)
        fail_msg("quantizing %s: %s", qr_type_traits_get(type)->name, qr_last_error());
    char *wk = w;
    size_t wk_stride = row_bytes;
    if (packed) {
        wk_stride = set->packed_row_bytes(type, n);
        wk = malloc(wk_stride * (size_t)nr);
        assert_non_null(wk);
        set->pack(type, w, n, nr, wk);
    }
    const qr_gemm_fn gemm = packed ? set->gemm_packed[type] : set->gemm[type];
    const size_t stride = qr_act_convert(type, x, n, MAX_TOKENS, act);
    for (int64_t t = 0; t < MAX_TOKENS; t++)
        gemm(n, wk, wk_stride, act + (size_t)t * stride, stride, alone + t * nr, nr, nr, 1);
    bool same = true;
    for (int64_t nt = 2; nt <= MAX_TOKENS && same; nt = nt == 40 ? MAX_TOKENS : nt + 1) {
        /* batches starting at different tokens, so each token sits at several places */
        for (int64_t t0 = 0; t0 + nt <= MAX_TOKENS && same; t0 += nt < 20 ? 7 : 27) {
            /* as qr_matmul_rows does: blocks of at most 64 tokens */
            for (int64_t b = 0; b < nt; b += 64) {
                const int64_t nb = nt - b < 64 ? nt - b : 64;
                gemm(n, wk, wk_stride, act + (size_t)(t0 + b) * stride, stride,
                     batch + (t0 + b) * nr, nr, nr, nb);
            }
            for (int64_t t = t0; t < t0 + nt && same; t++)
                if (memcmp(batch + t * nr, alone + t * nr, (size_t)nr * sizeof(float)) != 0) {
                    int64_t r = 0;
                    while (batch[t * nr + r] == alone[t * nr + r])
                        r++;
                    snprintf(what, what_n,
                             "%s %s%s: token %lld of a %lld-token batch, row %lld: %.9g alone, "
                             "%.9g in the batch",
                             set->name, qr_type_traits_get(type)->name, packed ? " (packed)" : "",
                             (long long)(t - t0), (long long)nt, (long long)r,
                             (double)alone[t * nr + r], (double)batch[t * nr + r]);
                    same = false;
                }
        }
    }
    if (packed) free(wk);
    free(wf);
    free(x);
    free(imatrix);
    free(w);
    free(act);
    free(alone);
    free(batch);
    return same;
}

static void test_sets(void **state) {
    (void)state;
    static const char *const set_names[] = {"scalar", "avx2", "avx512"};
    int n_checked = 0, n_failed = 0;
    for (size_t s = 0; s < sizeof set_names / sizeof set_names[0]; s++) {
        const qr_kernels *set = qr_kernels_named(set_names[s]);
        if (!set) continue;
        for (int type = 0; type < QR_TYPE_COUNT; type++) {
            if (!set->gemm[type] || !qr_type_traits_get(type) || !qr_type_can_quantize(type))
                continue;
            for (int packed = 0; packed < 2; packed++) {
                if (packed && !(set->pack && set->gemm_packed[type])) continue;
                char what[256] = "";
                const bool same = invariant(set, type, packed, what, sizeof what);
                const bool expected = !is_known_variant(set->name, type, packed);
                n_checked++;
                if (same != expected) {
                    n_failed++;
                    if (same)
                        printf("now invariant, remove from known_variant: %s %s%s\n", set->name,
                               qr_type_traits_get(type)->name, packed ? " (packed)" : "");
                    else
                        printf("not batch-invariant: %s\n", what);
                } else if (!same) {
                    printf("known variant (TODO issue 22): %s\n", what);
                }
            }
        }
    }
    printf("%d products checked, %d unexpected\n", n_checked, n_failed);
    assert_int_equal(n_failed, 0);
}

/* Attention with an f16 cache: a head's scores and weighted sum are the same whether its
 * query group's heads go through dot_f16_heads / axpy_f16_heads together or one by one (the
 * forward pass splits a group over the threads when a step has few tokens). */
static void test_attention_heads(void **state) {
    (void)state;
    enum { MAXH = 6, ROWS = 37, MAXN = 128 };
    static float q[MAXH * MAXN], a[MAXH * ROWS], together[MAXH * MAXN], alone[MAXH * MAXN];
    static float kf[ROWS * MAXN];
    static uint16_t kh[ROWS * MAXN];
    qr_test_fill_random(q, MAXH * MAXN);
    qr_test_fill_random(a, MAXH * ROWS);
    qr_test_fill_random(kf, ROWS * MAXN);
    for (int i = 0; i < ROWS * MAXN; i++)
        kh[i] = qr_fp32_to_fp16(kf[i]);
    static const char *const set_names[] = {"scalar", "avx2", "avx512"};
    static const int64_t sizes[] = {64, 100, 128};
    for (size_t s = 0; s < sizeof set_names / sizeof set_names[0]; s++) {
        const qr_kernels *set = qr_kernels_named(set_names[s]);
        if (!set) continue;
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            const int64_t n = sizes[k];
            for (int ng = 2; ng <= MAXH; ng++) {
                for (int64_t rows = 1; rows <= ROWS; rows += 6) {
                    set->dot_f16_heads(n, ng, q, kh, n, rows, together, ROWS);
                    for (int h = 0; h < ng; h++)
                        set->dot_f16_heads(n, 1, q + h * n, kh, n, rows, alone + h * ROWS, ROWS);
                    for (int h = 0; h < ng; h++)
                        if (memcmp(together + h * ROWS, alone + h * ROWS,
                                   (size_t)rows * sizeof(float)) != 0)
                            fail_msg("%s dot_f16_heads: head %d of %d, n %lld, %lld rows differs "
                                     "from the head alone",
                                     set->name, h, ng, (long long)n, (long long)rows);
                    memset(together, 0, sizeof together);
                    memset(alone, 0, sizeof alone);
                    set->axpy_f16_heads(n, ng, a, ROWS, kh, n, rows, together);
                    for (int h = 0; h < ng; h++)
                        set->axpy_f16_heads(n, 1, a + h * ROWS, ROWS, kh, n, rows, alone + h * n);
                    if (memcmp(together, alone, (size_t)(ng * n) * sizeof(float)) != 0)
                        fail_msg("%s axpy_f16_heads: %d heads, n %lld, %lld rows differ from the "
                                 "heads alone",
                                 set->name, ng, (long long)n, (long long)rows);
                }
            }
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sets),
        cmocka_unit_test(test_attention_heads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
