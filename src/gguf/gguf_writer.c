/* gguf_writer.c - writes GGUF v3 files: metadata (deep copies of the values given), tensor
 * infos with aligned offsets, then the data. The file appears under its name only once it is
 * complete (written to "<path>.tmp.<pid>" and renamed), so a failed write loses nothing. */
#include "gguf/gguf_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct writer_kv {
    char *key;
    qr_gguf_value value; /* owned deep copy */
} writer_kv;

typedef struct writer_tensor {
    char *name;
    int type;
    uint32_t n_dims;
    int64_t ne[4];
    const void *data;
    size_t nbytes;
} writer_tensor;

struct qr_gguf_writer {
    writer_kv *kvs;
    size_t n_kv, cap_kv;
    writer_tensor *tensors;
    size_t n_tensors, cap_tensors;
};

qr_gguf_writer *qr_gguf_writer_create(void) {
    qr_gguf_writer *w = calloc(1, sizeof *w);
    if (!w) qr_error(QR_ERR_NOMEM, "out of memory");
    return w;
}

static void value_free(qr_gguf_value *v) {
    if (v->type == QR_GGUF_STRING) {
        free((char *)v->str.ptr);
    } else if (v->type == QR_GGUF_ARRAY) {
        if (v->arr.items) {
            for (uint64_t j = 0; j < v->arr.n; j++)
                value_free((qr_gguf_value *)&v->arr.items[j]);
            free((void *)v->arr.items);
        }
        free((void *)v->arr.data);
    }
}

void qr_gguf_writer_free(qr_gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kvs[i].key);
        value_free(&w->kvs[i].value);
    }
    for (size_t i = 0; i < w->n_tensors; i++)
        free(w->tensors[i].name);
    free(w->kvs);
    free(w->tensors);
    free(w);
}

static qr_status value_copy(qr_gguf_value *dst, const qr_gguf_value *src) {
    *dst = *src;
    if (src->type == QR_GGUF_STRING) {
        char *s = qr_malloc(src->str.len + 1);
        if (!s) return QR_ERR_NOMEM;
        memcpy(s, src->str.ptr, src->str.len);
        s[src->str.len] = '\0';
        dst->str.ptr = s;
    } else if (src->type == QR_GGUF_ARRAY) {
        dst->arr.data = NULL;
        dst->arr.items = NULL;
        size_t es = qr_gguf_type_size(src->arr.type);
        if (es) {
            void *d = qr_malloc(es * src->arr.n);
            if (!d) return QR_ERR_NOMEM;
            if (src->arr.n) memcpy(d, src->arr.data, es * src->arr.n);
            dst->arr.data = d;
        } else {
            qr_gguf_value *items = qr_calloc(src->arr.n, sizeof *items);
            if (!items) return QR_ERR_NOMEM;
            dst->arr.items = items;
            for (uint64_t j = 0; j < src->arr.n; j++) {
                qr_status st = value_copy(&items[j], &src->arr.items[j]);
                if (st) {
                    dst->arr.n = j; /* free only what was copied */
                    return st;
                }
            }
        }
    }
    return QR_OK;
}

qr_status qr_gguf_writer_set(qr_gguf_writer *w, const char *key, const qr_gguf_value *value) {
    if (!key || !*key) return qr_error(QR_ERR_INVALID_ARG, "GGUF writer: empty key");
    if ((unsigned)value->type > QR_GGUF_FLOAT64)
        return qr_error(QR_ERR_INVALID_ARG, "GGUF writer: key '%s' has unknown type %d", key,
                        value->type);
    qr_gguf_value copy;
    qr_status st = value_copy(&copy, value);
    if (st) {
        value_free(&copy);
        return st;
    }
    for (size_t i = 0; i < w->n_kv; i++) {
        if (!strcmp(w->kvs[i].key, key)) {
            value_free(&w->kvs[i].value);
            w->kvs[i].value = copy;
            return QR_OK;
        }
    }
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? w->cap_kv * 2 : 32;
        writer_kv *kvs = realloc(w->kvs, cap * sizeof *kvs);
        if (!kvs) {
            value_free(&copy);
            return qr_error(QR_ERR_NOMEM, "out of memory");
        }
        w->kvs = kvs;
        w->cap_kv = cap;
    }
    char *k = qr_strdup(key);
    if (!k) {
        value_free(&copy);
        return QR_ERR_NOMEM;
    }
    w->kvs[w->n_kv++] = (writer_kv){k, copy};
    return QR_OK;
}

qr_status qr_gguf_writer_set_str(qr_gguf_writer *w, const char *key, const char *s) {
    qr_gguf_value v = {.type = QR_GGUF_STRING, .str = {s, strlen(s)}};
    return qr_gguf_writer_set(w, key, &v);
}
qr_status qr_gguf_writer_set_u32(qr_gguf_writer *w, const char *key, uint32_t x) {
    qr_gguf_value v = {.type = QR_GGUF_UINT32, .u64 = x};
    return qr_gguf_writer_set(w, key, &v);
}
qr_status qr_gguf_writer_set_f32(qr_gguf_writer *w, const char *key, float x) {
    qr_gguf_value v = {.type = QR_GGUF_FLOAT32, .f64 = x};
    return qr_gguf_writer_set(w, key, &v);
}
qr_status qr_gguf_writer_set_bool(qr_gguf_writer *w, const char *key, bool x) {
    qr_gguf_value v = {.type = QR_GGUF_BOOL, .b = x};
    return qr_gguf_writer_set(w, key, &v);
}

qr_status qr_gguf_writer_add_tensor(qr_gguf_writer *w, const char *name, int type, uint32_t n_dims,
                                    const int64_t *ne, const void *data, size_t nbytes) {
    if (!qr_type_name(type))
        return qr_error(QR_ERR_INVALID_ARG, "tensor '%s': unknown type %d", name, type);
    if (n_dims < 1 || n_dims > 4)
        return qr_error(QR_ERR_INVALID_ARG, "tensor '%s': %u dimensions (expected 1 to 4)", name,
                        n_dims);
    writer_tensor t = {
        .type = type, .n_dims = n_dims, .ne = {1, 1, 1, 1}, .data = data, .nbytes = nbytes};
    uint64_t rows = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] < 0) return qr_error(QR_ERR_INVALID_ARG, "tensor '%s': negative dimension", name);
        t.ne[d] = ne[d];
        if (d > 0) rows *= (uint64_t)ne[d];
    }
    size_t row = qr_type_row_bytes(type, t.ne[0]);
    if (row == 0 && t.ne[0] != 0)
        return qr_error(QR_ERR_INVALID_ARG,
                        "tensor '%s': row length %lld is not a multiple of the %s block size", name,
                        (long long)t.ne[0], qr_type_name(type));
    if ((uint64_t)row * rows != nbytes)
        return qr_error(QR_ERR_INVALID_ARG, "tensor '%s': %zu bytes given, its shape needs %llu",
                        name, nbytes, (unsigned long long)((uint64_t)row * rows));
    for (size_t i = 0; i < w->n_tensors; i++)
        if (!strcmp(w->tensors[i].name, name))
            return qr_error(QR_ERR_INVALID_ARG, "duplicate tensor name '%s'", name);
    if (w->n_tensors == w->cap_tensors) {
        size_t cap = w->cap_tensors ? w->cap_tensors * 2 : 64;
        writer_tensor *ts = realloc(w->tensors, cap * sizeof *ts);
        if (!ts) return qr_error(QR_ERR_NOMEM, "out of memory");
        w->tensors = ts;
        w->cap_tensors = cap;
    }
    if (!(t.name = qr_strdup(name))) return QR_ERR_NOMEM;
    w->tensors[w->n_tensors++] = t;
    return QR_OK;
}

/* ---- serialisation ---- */

typedef struct out {
    FILE *f;
    uint64_t pos;
    bool failed;
} out;

static void put(out *o, const void *p, size_t n) {
    if (o->failed || n == 0) return;
    if (fwrite(p, 1, n, o->f) != n) o->failed = true;
    o->pos += n;
}
static void put_u32(out *o, uint32_t v) {
    put(o, &v, 4);
}
static void put_u64(out *o, uint64_t v) {
    put(o, &v, 8);
}
static void put_str(out *o, const char *s, uint64_t len) {
    put_u64(o, len);
    put(o, s, len);
}
static void put_pad(out *o, size_t alignment) {
    static const unsigned char zeros[256];
    size_t pad = (size_t)((alignment - o->pos % alignment) % alignment);
    while (pad) {
        size_t n = pad < sizeof zeros ? pad : sizeof zeros;
        put(o, zeros, n);
        pad -= n;
    }
}

static void put_value(out *o, const qr_gguf_value *v) {
    switch (v->type) {
    case QR_GGUF_STRING:
        put_str(o, v->str.ptr, v->str.len);
        break;
    case QR_GGUF_ARRAY: {
        put_u32(o, (uint32_t)v->arr.type);
        put_u64(o, v->arr.n);
        size_t es = qr_gguf_type_size(v->arr.type);
        if (es)
            put(o, v->arr.data, es * v->arr.n);
        else
            for (uint64_t j = 0; j < v->arr.n; j++)
                put_value(o, &v->arr.items[j]);
        break;
    }
    case QR_GGUF_FLOAT32: {
        float f = (float)v->f64;
        put(o, &f, 4);
        break;
    }
    case QR_GGUF_FLOAT64:
        put(o, &v->f64, 8);
        break;
    case QR_GGUF_BOOL: {
        unsigned char b = v->b;
        put(o, &b, 1);
        break;
    }
    default: { /* integers: the low bytes of the little-endian 64-bit value */
        uint64_t x = v->u64;
        put(o, &x, qr_gguf_type_size(v->type));
        break;
    }
    }
}

static size_t writer_alignment(const qr_gguf_writer *w) {
    for (size_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->kvs[i].key, "general.alignment") && w->kvs[i].value.type == QR_GGUF_UINT32) {
            uint64_t a = w->kvs[i].value.u64;
            if (a && !(a & (a - 1))) return (size_t)a;
        }
    return 32;
}

qr_status qr_gguf_writer_write(qr_gguf_writer *w, const char *path) {
    size_t alignment = writer_alignment(w);
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return qr_error(QR_ERR_INVALID_ARG, "output path too long");
    out o = {.f = fopen(tmp, "wb")};
    if (!o.f) return qr_error(QR_ERR_IO, "cannot create '%s': %s", tmp, strerror(errno));
    put(&o, "GGUF", 4);
    put_u32(&o, 3);
    put_u64(&o, w->n_tensors);
    put_u64(&o, w->n_kv);
    for (size_t i = 0; i < w->n_kv; i++) {
        put_str(&o, w->kvs[i].key, strlen(w->kvs[i].key));
        put_u32(&o, (uint32_t)w->kvs[i].value.type);
        put_value(&o, &w->kvs[i].value);
    }
    uint64_t offset = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        const writer_tensor *t = &w->tensors[i];
        put_str(&o, t->name, strlen(t->name));
        put_u32(&o, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++)
            put_u64(&o, (uint64_t)t->ne[d]);
        put_u32(&o, (uint32_t)t->type);
        put_u64(&o, offset);
        offset += (t->nbytes + alignment - 1) / alignment * alignment;
    }
    put_pad(&o, alignment);
    for (size_t i = 0; i < w->n_tensors; i++) {
        put(&o, w->tensors[i].data, w->tensors[i].nbytes);
        put_pad(&o, alignment);
    }
    int e = o.failed ? errno : 0;
    if (fclose(o.f) != 0 && !o.failed) {
        o.failed = true;
        e = errno;
    }
    if (o.failed) {
        unlink(tmp);
        return qr_error(QR_ERR_IO, "writing '%s' failed: %s", path, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        e = errno;
        unlink(tmp);
        return qr_error(QR_ERR_IO, "cannot rename '%s' to '%s': %s", tmp, path, strerror(e));
    }
    return QR_OK;
}
