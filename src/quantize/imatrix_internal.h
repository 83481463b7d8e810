/* imatrix_internal.h - writing importance matrix files (imatrix_write.c) from the statistics
 * qr_imatrix_compute (eval/imatrix.c) collects: per weight matrix the sums of the squared
 * activations each column met and the number of activation rows. */
#ifndef QR_IMATRIX_INTERNAL_H
#define QR_IMATRIX_INTERNAL_H

#include "quarrel.h"

#include <stdint.h>

#define QR_IMATRIX_MAX_NAME 64 /* GGML_MAX_NAME, with the NUL */

typedef struct qr_imatrix_stats {
    char name[QR_IMATRIX_MAX_NAME]; /* the weight's tensor name */
    int64_t n_cols, n_mat;          /* values per matrix (the weight's ne0), matrices (1) */
    float *sums;                    /* [n_mat][n_cols]: sum of x[j]^2 over the rows seen */
    int64_t *counts;                /* [n_mat]: rows seen */
} qr_imatrix_stats;

/* What the file says about its making. */
typedef struct qr_imatrix_meta {
    const char *dataset;  /* the text's name ("" or NULL: none) */
    uint32_t chunk_count; /* chunks evaluated (llama-imatrix: the largest count / chunk_size) */
    uint32_t chunk_size;  /* tokens per chunk */
} qr_imatrix_meta;

/* Write entries[0..n) as llama-imatrix does, in name order (the array is left as it is):
 * GGUF (save_imatrix): general.type, imatrix.datasets, imatrix.chunk_count, imatrix.chunk_size
 * and per entry <name>.in_sum2 F32 [n_cols, n_mat], <name>.counts F32 [1, n_mat];
 * legacy .dat (save_imatrix_legacy): see imatrix_write.c. The file appears whole or not at
 * all. */
qr_status qr_imatrix_write_gguf(const char *path, const qr_imatrix_stats *entries, int64_t n,
                                const qr_imatrix_meta *meta);
qr_status qr_imatrix_write_dat(const char *path, const qr_imatrix_stats *entries, int64_t n,
                               const qr_imatrix_meta *meta);

#endif
