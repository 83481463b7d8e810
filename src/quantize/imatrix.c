/* imatrix.c - reading importance matrix files, both of llama.cpp's formats
 * (common/imatrix-loader.cpp, normalised as tools/quantize/quantize.cpp's load_imatrix):
 *   legacy imatrix.dat: int32 n_entries; per entry int32 name length, name, int32 ncall,
 *     int32 nval, float32[nval] sums; then optionally int32 chunk count, int32 length and a
 *     dataset name. importance = sums / ncall (the sums as stored when ncall is 0).
 *   GGUF: general.type "imatrix", imatrix.datasets [str], imatrix.chunk_count and
 *     imatrix.chunk_size u32 (llama-quantize refuses a file without them); per matrix
 *     <name>.in_sum2 F32 [ne0, n_mat] and <name>.counts F32 [1, n_mat]; importance = in_sum2 /
 *     counts per matrix (counts rounded as llama.cpp's lround; 1 where a count is 0).
 * The parser is stricter than llama.cpp where llama.cpp would crash, abort or silently keep
 * garbage: negative counts, names that are empty, too long or hold a NUL, duplicate entries,
 * importances that are negative or not finite, sizes that do not match are all refused. */
#include "quarrel.h"
#include "util/util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NAME 64 /* GGML_MAX_NAME: a tensor name is at most 63 bytes */

typedef struct entry {
    char name[MAX_NAME];
    float *values;
    int64_t n;
} entry;

struct qr_imatrix {
    entry *entries;
    int64_t n, cap;
};

void qr_imatrix_free(qr_imatrix *im) {
    if (!im) return;
    for (int64_t i = 0; i < im->n; i++)
        free(im->entries[i].values);
    free(im->entries);
    free(im);
}

int64_t qr_imatrix_n_entries(const qr_imatrix *im) {
    return im ? im->n : 0;
}

const char *qr_imatrix_entry(const qr_imatrix *im, int64_t i, const float **values,
                             int64_t *n_values) {
    if (!im || i < 0 || i >= im->n) return NULL;
    if (values) *values = im->entries[i].values;
    if (n_values) *n_values = im->entries[i].n;
    return im->entries[i].name;
}

static int cmp_entry(const void *a, const void *b) {
    return strcmp(((const entry *)a)->name, ((const entry *)b)->name);
}

const float *qr_imatrix_find(const qr_imatrix *im, const char *name, int64_t *n_values) {
    if (!im || !name || strlen(name) >= MAX_NAME) return NULL;
    entry key;
    strcpy(key.name, name);
    const entry *e = bsearch(&key, im->entries, (size_t)im->n, sizeof *im->entries, cmp_entry);
    if (!e) return NULL;
    if (n_values) *n_values = e->n;
    return e->values;
}

/* A new entry with room for n values (the caller fills them). */
static qr_status add_entry(qr_imatrix *im, const char *name, size_t name_len, int64_t n,
                           entry **out) {
    if (name_len == 0)
        return qr_error(QR_ERR_FORMAT, "entry %lld has an empty name", (long long)im->n + 1);
    if (name_len >= MAX_NAME)
        return qr_error(QR_ERR_FORMAT, "entry %lld: name of %zu bytes is too long (at most %d)",
                        (long long)im->n + 1, name_len, MAX_NAME - 1);
    if (memchr(name, '\0', name_len))
        return qr_error(QR_ERR_FORMAT, "entry %lld: name holds a NUL byte", (long long)im->n + 1);
    if (im->n == im->cap) {
        const int64_t cap = im->cap ? im->cap * 2 : 16;
        entry *grown = realloc(im->entries, (size_t)cap * sizeof *grown);
        if (!grown) return qr_error(QR_ERR_NOMEM, "out of memory for %lld entries", (long long)cap);
        im->entries = grown;
        im->cap = cap;
    }
    entry *e = &im->entries[im->n];
    memcpy(e->name, name, name_len);
    e->name[name_len] = '\0';
    e->n = n;
    e->values = malloc((size_t)n * sizeof(float));
    if (!e->values)
        return qr_error(QR_ERR_NOMEM, "entry '%s': out of memory for %lld values", e->name,
                        (long long)n);
    im->n++;
    *out = e;
    return QR_OK;
}

/* Sort by name, refuse duplicates and values that cannot be importances. */
static qr_status finish(qr_imatrix *im) {
    if (im->n == 0) return qr_error(QR_ERR_FORMAT, "no entries: the file holds no data");
    for (int64_t i = 0; i < im->n; i++)
        for (int64_t j = 0; j < im->entries[i].n; j++) {
            const float v = im->entries[i].values[j];
            if (!isfinite(v) || v < 0)
                return qr_error(QR_ERR_FORMAT,
                                "entry '%s': value %lld is %g (importances are finite and >= 0)",
                                im->entries[i].name, (long long)j, (double)v);
        }
    qsort(im->entries, (size_t)im->n, sizeof *im->entries, cmp_entry);
    for (int64_t i = 1; i < im->n; i++)
        if (!strcmp(im->entries[i - 1].name, im->entries[i].name))
            return qr_error(QR_ERR_FORMAT, "entry '%s' appears twice", im->entries[i].name);
    return QR_OK;
}

typedef struct reader {
    const uint8_t *p;
    size_t left;
} reader;

static bool read_i32(reader *r, int32_t *v) {
    if (r->left < 4) return false;
    memcpy(v, r->p, 4);
    r->p += 4;
    r->left -= 4;
    return true;
}

static qr_status load_legacy(qr_imatrix *im, const uint8_t *data, size_t size) {
    reader r = {data, size};
    int32_t n_entries;
    if (!read_i32(&r, &n_entries))
        return qr_error(QR_ERR_FORMAT, "legacy imatrix: truncated: %zu bytes, no entry count",
                        size);
    if (n_entries < 1)
        return qr_error(QR_ERR_FORMAT, "legacy imatrix: entry count %d (at least 1 needed)",
                        (int)n_entries);
    for (int32_t i = 0; i < n_entries; i++) {
        const size_t at = (size_t)(r.p - data);
        int32_t len, ncall, nval;
        if (!read_i32(&r, &len))
            return qr_error(QR_ERR_FORMAT,
                            "legacy imatrix: truncated at byte %zu: entry %d of %d is missing", at,
                            (int)i + 1, (int)n_entries);
        if (len < 0)
            return qr_error(QR_ERR_FORMAT, "legacy imatrix: entry %d: negative name length %d",
                            (int)i + 1, (int)len);
        if (len >= MAX_NAME)
            return qr_error(QR_ERR_FORMAT,
                            "legacy imatrix: entry %d: name of %d bytes is too long (at most %d)",
                            (int)i + 1, (int)len, MAX_NAME - 1);
        if (r.left < (size_t)len)
            return qr_error(QR_ERR_FORMAT, "legacy imatrix: entry %d: truncated name", (int)i + 1);
        const char *name = (const char *)r.p;
        r.p += len;
        r.left -= (size_t)len;
        if (!read_i32(&r, &ncall) || !read_i32(&r, &nval))
            return qr_error(QR_ERR_FORMAT, "legacy imatrix: entry %d ('%.*s'): truncated counts",
                            (int)i + 1, (int)len, name);
        if (ncall < 0)
            return qr_error(QR_ERR_FORMAT, "legacy imatrix: entry '%.*s': negative call count %d",
                            (int)len, name, (int)ncall);
        if (nval < 1)
            return qr_error(QR_ERR_FORMAT,
                            "legacy imatrix: entry '%.*s': %d values (at least 1 needed)", (int)len,
                            name, (int)nval);
        if (r.left / 4 < (size_t)nval)
            return qr_error(QR_ERR_FORMAT,
                            "legacy imatrix: entry '%.*s': truncated: %d values need %lld "
                            "bytes, %zu left",
                            (int)len, name, (int)nval, 4LL * nval, r.left);
        entry *e;
        qr_status st = add_entry(im, name, (size_t)len, nval, &e);
        if (st) {
            qr_error_prefix("legacy imatrix");
            return st;
        }
        memcpy(e->values, r.p, (size_t)nval * 4);
        r.p += (size_t)nval * 4;
        r.left -= (size_t)nval * 4;
        if (ncall > 0)
            for (int32_t j = 0; j < nval; j++)
                e->values[j] /= (float)ncall;
    }
    if (r.left > 0) { /* the optional trailer: chunk count and dataset name */
        int32_t n_chunks, len;
        if (!read_i32(&r, &n_chunks) || !read_i32(&r, &len))
            return qr_error(QR_ERR_FORMAT,
                            "legacy imatrix: truncated trailer after the entries (chunk count "
                            "and dataset name length need 8 bytes)");
        if (n_chunks < 0 || len < 0)
            return qr_error(QR_ERR_FORMAT, "legacy imatrix: trailer: negative %s (%d)",
                            n_chunks < 0 ? "chunk count" : "dataset name length",
                            (int)(n_chunks < 0 ? n_chunks : len));
        if (r.left != (size_t)len)
            return qr_error(QR_ERR_FORMAT,
                            "legacy imatrix: trailer: dataset name of %d bytes but %zu left",
                            (int)len, r.left);
    }
    return QR_OK;
}

static float read_f32(const void *base, int64_t i) {
    float v;
    memcpy(&v, (const uint8_t *)base + (size_t)i * 4, 4); /* tensor data may be unaligned */
    return v;
}

static qr_status load_gguf(qr_imatrix *im, const qr_gguf *g) {
    const char *type = qr_gguf_get_str(g, "general.type");
    if (qr_gguf_find_key(g, "general.type") >= 0 && (!type || strcmp(type, "imatrix")))
        return qr_error(QR_ERR_FORMAT, "general.type is '%s', not 'imatrix'",
                        type ? type : "(not a string)");
    const qr_gguf_value *datasets = qr_gguf_get_arr(g, "imatrix.datasets");
    uint32_t u;
    if (!datasets || datasets->arr.type != QR_GGUF_STRING)
        return qr_error(QR_ERR_FORMAT, "no imatrix.datasets (an array of strings): not an "
                                       "imatrix file, or one without its metadata");
    if (!qr_gguf_get_u32(g, "imatrix.chunk_count", &u))
        return qr_error(QR_ERR_FORMAT, "no imatrix.chunk_count (u32)");
    if (!qr_gguf_get_u32(g, "imatrix.chunk_size", &u))
        return qr_error(QR_ERR_FORMAT, "no imatrix.chunk_size (u32)");

    static const char sums_suffix[] = ".in_sum2", counts_suffix[] = ".counts";
    const int64_t n = qr_gguf_n_tensors(g);
    for (int64_t i = 0; i < n; i++) {
        const qr_gguf_tensor *sums = qr_gguf_tensor_at(g, i);
        const size_t len = strlen(sums->name);
        if (len >= sizeof counts_suffix - 1 &&
            !strcmp(sums->name + len - (sizeof counts_suffix - 1), counts_suffix)) {
            char base[256];
            snprintf(base, sizeof base, "%.*s%s", (int)(len - (sizeof counts_suffix - 1)),
                     sums->name, sums_suffix);
            if (!qr_gguf_find_tensor(g, base))
                return qr_error(QR_ERR_FORMAT, "tensor '%s' has no matching '%s'", sums->name,
                                base);
            continue;
        }
        if (len < sizeof sums_suffix - 1 ||
            strcmp(sums->name + len - (sizeof sums_suffix - 1), sums_suffix))
            continue; /* other tensors are not importances (llama.cpp skips them too) */
        const size_t base_len = len - (sizeof sums_suffix - 1);
        char cname[256];
        snprintf(cname, sizeof cname, "%.*s%s", (int)base_len, sums->name, counts_suffix);
        const qr_gguf_tensor *counts = qr_gguf_find_tensor(g, cname);
        if (!counts)
            return qr_error(QR_ERR_FORMAT, "tensor '%s' has no matching '%s'", sums->name, cname);
        if (sums->type != QR_TYPE_F32 || counts->type != QR_TYPE_F32)
            return qr_error(QR_ERR_FORMAT, "'%s' and '%s' must be F32 (they are %s and %s)",
                            sums->name, cname,
                            qr_type_name(sums->type) ? qr_type_name(sums->type) : "?",
                            qr_type_name(counts->type) ? qr_type_name(counts->type) : "?");
        const int64_t ne0 = sums->ne[0];
        const int64_t n_mat = sums->ne[1] * sums->ne[2] * sums->ne[3];
        const int64_t n_counts = counts->ne[0] * counts->ne[1] * counts->ne[2] * counts->ne[3];
        if (ne0 < 1 || n_mat < 1 || counts->ne[0] != 1 || n_counts != n_mat)
            return qr_error(QR_ERR_FORMAT,
                            "'%s' [%lld, %lld] and '%s' (%lld values, first dimension %lld) do "
                            "not match: counts must be [1, %lld]",
                            sums->name, (long long)ne0, (long long)n_mat, cname,
                            (long long)n_counts, (long long)counts->ne[0], (long long)n_mat);
        entry *e;
        qr_status st = add_entry(im, sums->name, base_len, ne0 * n_mat, &e);
        if (st) return st;
        for (int64_t m = 0; m < n_mat; m++) {
            const float c = read_f32(counts->data, m);
            if (!isfinite(c) || c < 0)
                return qr_error(QR_ERR_FORMAT, "'%s': count %lld is %g (counts are >= 0)", cname,
                                (long long)m, (double)c);
            const float count = (float)lroundf(c);
            for (int64_t j = 0; j < ne0; j++)
                e->values[m * ne0 + j] =
                    count > 0 ? read_f32(sums->data, m * ne0 + j) / count : 1.0f;
        }
    }
    return QR_OK;
}

qr_status qr_imatrix_load_memory(const void *data, size_t size, qr_imatrix **out) {
    if (!out) return qr_error(QR_ERR_INVALID_ARG, "qr_imatrix_load_memory: NULL out");
    *out = NULL;
    if (!data && size) return qr_error(QR_ERR_INVALID_ARG, "qr_imatrix_load_memory: NULL data");
    qr_imatrix *im = qr_calloc(1, sizeof *im);
    if (!im) return QR_ERR_NOMEM;
    qr_status st;
    if (size >= 4 && !memcmp(data, "GGUF", 4)) {
        qr_gguf *g;
        st = qr_gguf_open_memory(data, size, &g);
        if (st) {
            qr_error_prefix("GGUF imatrix");
        } else {
            st = load_gguf(im, g);
            if (st) qr_error_prefix("GGUF imatrix");
            qr_gguf_free(g);
        }
    } else {
        st = load_legacy(im, data, size);
    }
    if (!st) st = finish(im);
    if (st) {
        qr_imatrix_free(im);
        return st;
    }
    *out = im;
    return QR_OK;
}

qr_status qr_imatrix_load(const char *path, qr_imatrix **out) {
    if (!path || !out) return qr_error(QR_ERR_INVALID_ARG, "qr_imatrix_load: NULL argument");
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return qr_error(QR_ERR_IO, "imatrix '%s': cannot open: %s", path, strerror(errno));
    uint8_t *buf = NULL;
    size_t size = 0, cap = 0;
    for (;;) {
        if (size == cap) {
            cap = cap ? cap * 2 : 1 << 16;
            uint8_t *grown = realloc(buf, cap);
            if (!grown) {
                free(buf);
                fclose(f);
                return qr_error(QR_ERR_NOMEM, "imatrix '%s': out of memory reading it", path);
            }
            buf = grown;
        }
        const size_t got = fread(buf + size, 1, cap - size, f);
        size += got;
        if (got == 0) break;
    }
    const bool failed = ferror(f);
    fclose(f);
    if (failed) {
        free(buf);
        return qr_error(QR_ERR_IO, "imatrix '%s': read error", path);
    }
    qr_status st = qr_imatrix_load_memory(buf, size, out);
    free(buf);
    if (st) qr_error_prefix("imatrix '%s'", path);
    return st;
}
