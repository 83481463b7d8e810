/* imatrix_write.c - writing importance matrices in llama.cpp's two formats, as llama-imatrix
 * saves them (tools/imatrix/imatrix.cpp, save_imatrix and save_imatrix_legacy), entries in
 * name order:
 *   GGUF: general.type = "imatrix", imatrix.datasets [str], imatrix.chunk_count u32,
 *     imatrix.chunk_size u32; per entry <name>.in_sum2 F32 [n_cols, n_mat] (the raw sums) and
 *     <name>.counts F32 [1, n_mat] (the raw row counts).
 *   legacy imatrix.dat: int32 n_entries; per entry int32 name length, name, int32 ncall,
 *     int32 nval, float32[nval]; then int32 chunk count, int32 length, dataset name. The sums
 *     are not stored raw: ncall = ceil(max count / chunk_size) and each value is
 *     (sum / count) * ncall in float, so a reader's value / ncall is the mean square; a matrix
 *     that saw no rows stores 1 * ncall, and an entry that saw none at all is left out.
 * The reader of both is imatrix.c. */
#include "quantize/imatrix_internal.h"
#include "util/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int cmp_name(const void *a, const void *b) {
    return strcmp((*(const qr_imatrix_stats *const *)a)->name,
                  (*(const qr_imatrix_stats *const *)b)->name);
}

/* the entries in name order (a malloc'd array of pointers); NULL on failure */
static const qr_imatrix_stats **name_order(const qr_imatrix_stats *entries, int64_t n) {
    const qr_imatrix_stats **order = qr_malloc((size_t)n * sizeof *order);
    if (!order) return NULL;
    for (int64_t i = 0; i < n; i++)
        order[i] = &entries[i];
    qsort(order, (size_t)n, sizeof *order, cmp_name);
    return order;
}

qr_status qr_imatrix_write_gguf(const char *path, const qr_imatrix_stats *entries, int64_t n,
                                const qr_imatrix_meta *meta) {
    qr_gguf_writer *w = qr_gguf_writer_create();
    const qr_imatrix_stats **order = name_order(entries, n);
    float *counts = NULL;
    qr_status st = QR_OK;
    if (!w || !order) {
        st = QR_ERR_NOMEM;
        goto done;
    }
    int64_t n_counts = 0;
    for (int64_t i = 0; i < n; i++)
        n_counts += entries[i].n_mat;
    counts = qr_malloc((size_t)n_counts * sizeof *counts); /* F32 copies of the counts */
    if (!counts) {
        st = QR_ERR_NOMEM;
        goto done;
    }
    const bool has_dataset = meta->dataset && meta->dataset[0];
    const qr_gguf_value dataset = {.type = QR_GGUF_STRING,
                                   .str = {meta->dataset, has_dataset ? strlen(meta->dataset) : 0}};
    const qr_gguf_value datasets = {
        .type = QR_GGUF_ARRAY,
        .arr = {.type = QR_GGUF_STRING, .n = has_dataset ? 1 : 0, .items = &dataset}};
    if ((st = qr_gguf_writer_set_str(w, "general.type", "imatrix")) ||
        (st = qr_gguf_writer_set(w, "imatrix.datasets", &datasets)) ||
        (st = qr_gguf_writer_set_u32(w, "imatrix.chunk_count", meta->chunk_count)) ||
        (st = qr_gguf_writer_set_u32(w, "imatrix.chunk_size", meta->chunk_size)))
        goto done;
    float *c = counts;
    for (int64_t k = 0; k < n; k++) {
        const qr_imatrix_stats *e = order[k];
        char name[QR_IMATRIX_MAX_NAME + 16];
        const int64_t sums_ne[2] = {e->n_cols, e->n_mat}, counts_ne[2] = {1, e->n_mat};
        for (int64_t m = 0; m < e->n_mat; m++)
            c[m] = (float)e->counts[m];
        snprintf(name, sizeof name, "%s.in_sum2", e->name);
        if ((st = qr_gguf_writer_add_tensor(w, name, QR_TYPE_F32, 2, sums_ne, e->sums,
                                            (size_t)(e->n_cols * e->n_mat) * sizeof(float))))
            goto done;
        snprintf(name, sizeof name, "%s.counts", e->name);
        if ((st = qr_gguf_writer_add_tensor(w, name, QR_TYPE_F32, 2, counts_ne, c,
                                            (size_t)e->n_mat * sizeof(float))))
            goto done;
        c += e->n_mat;
    }
    st = qr_gguf_writer_write(w, path);
done:
    free(counts);
    free((void *)order);
    qr_gguf_writer_free(w);
    return st;
}

static bool put_i32(FILE *f, int32_t v) {
    return fwrite(&v, sizeof v, 1, f) == 1;
}

qr_status qr_imatrix_write_dat(const char *path, const qr_imatrix_stats *entries, int64_t n,
                               const qr_imatrix_meta *meta) {
    if (meta->chunk_size == 0) return qr_error(QR_ERR_INVALID_ARG, "imatrix: chunk size 0");
    const qr_imatrix_stats **order = name_order(entries, n);
    if (!order) return QR_ERR_NOMEM;
    int64_t max_vals = 0;
    int32_t n_kept = 0;
    for (int64_t i = 0; i < n; i++) {
        bool seen = false;
        for (int64_t m = 0; m < entries[i].n_mat; m++)
            seen = seen || entries[i].counts[m] > 0;
        n_kept += seen;
        if (entries[i].n_cols * entries[i].n_mat > max_vals)
            max_vals = entries[i].n_cols * entries[i].n_mat;
    }
    float *values = qr_malloc((size_t)max_vals * sizeof *values);
    char tmp[4096];
    FILE *f = NULL;
    qr_status st = QR_OK;
    if (!values) {
        st = QR_ERR_NOMEM;
        goto done;
    }
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp) {
        st = qr_error(QR_ERR_INVALID_ARG, "output path too long");
        goto done;
    }
    if (!(f = fopen(tmp, "wb"))) {
        st = qr_error(QR_ERR_IO, "cannot create '%s': %s", tmp, strerror(errno));
        goto done;
    }
    bool ok = put_i32(f, n_kept);
    for (int64_t k = 0; k < n && ok; k++) {
        const qr_imatrix_stats *e = order[k];
        int64_t max_count = 0;
        for (int64_t m = 0; m < e->n_mat; m++)
            if (e->counts[m] > max_count) max_count = e->counts[m];
        if (max_count == 0) continue;
        const int32_t ncall = (int32_t)((max_count + meta->chunk_size - 1) / meta->chunk_size);
        const int64_t nval = e->n_cols * e->n_mat;
        for (int64_t j = 0; j < nval; j++) {
            const int64_t count = e->counts[j / e->n_cols];
            values[j] = count ? e->sums[j] / (float)count * (float)ncall : (float)ncall;
        }
        const size_t len = strlen(e->name);
        ok = put_i32(f, (int32_t)len) && fwrite(e->name, 1, len, f) == len && put_i32(f, ncall) &&
             put_i32(f, (int32_t)nval) &&
             fwrite(values, sizeof *values, (size_t)nval, f) == (size_t)nval;
    }
    const char *dataset = meta->dataset ? meta->dataset : "";
    const size_t dataset_len = strlen(dataset);
    ok = ok && put_i32(f, (int32_t)meta->chunk_count) && put_i32(f, (int32_t)dataset_len) &&
         fwrite(dataset, 1, dataset_len, f) == dataset_len;
    const int e = errno;
    if (fclose(f) != 0 && ok) ok = false;
    if (!ok) {
        unlink(tmp);
        st = qr_error(QR_ERR_IO, "writing '%s' failed: %s", path, strerror(e ? e : errno));
    } else if (rename(tmp, path) != 0) {
        const int re = errno;
        unlink(tmp);
        st = qr_error(QR_ERR_IO, "cannot rename '%s' to '%s': %s", tmp, path, strerror(re));
    }
done:
    free(values);
    free((void *)order);
    return st;
}
