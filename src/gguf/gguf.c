/* gguf.c - GGUF v2/v3 reader: maps a file read-only and parses it from (pointer, length),
 * checking every count, length, offset and size against the bytes that are really there.
 *
 * Layout (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md):
 *   "GGUF" u32 version, u64 n_tensors, u64 n_kv
 *   n_kv x { string key, u32 type, value }
 *   n_tensors x { string name, u32 n_dims, u64 ne[n_dims], u32 type, u64 offset }
 *   padding to general.alignment (default 32), then the data section.
 * Strings are u64 length + bytes (no NUL). Arrays are u32 element type + u64 count + items.
 */
#include "gguf/gguf_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_MAX_DIMS 4
#define GGUF_MAX_NESTING 8
#define GGUF_DEFAULT_ALIGNMENT 32

/* ---- arena: every parsed string and value array lives here, freed at once ---- */

typedef struct arena_block {
    struct arena_block *next;
    size_t used, size;
    _Alignas(16) unsigned char data[];
} arena_block;

static void *arena_alloc(qr_gguf *g, size_t n) {
    n = (n + 15) & ~(size_t)15;
    arena_block *b = g->arena;
    if (!b || b->size - b->used < n) {
        size_t size = n > (1u << 20) ? n : (1u << 20);
        b = malloc(sizeof *b + size);
        if (!b) {
            qr_error(QR_ERR_NOMEM, "out of memory parsing GGUF metadata");
            return NULL;
        }
        b->size = size;
        b->used = 0;
        b->next = g->arena;
        g->arena = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    return p;
}

/* ---- hash index of names (keys, tensor names) for lookup and duplicate detection ---- */

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

typedef qr_name_index name_index;

static qr_status index_init(name_index *ix, int64_t n) {
    uint64_t cap = 16;
    while (cap < (uint64_t)n * 2)
        cap <<= 1;
    ix->slots = calloc(cap, sizeof *ix->slots);
    ix->mask = cap - 1;
    return ix->slots ? QR_OK : qr_error(QR_ERR_NOMEM, "out of memory indexing GGUF names");
}

/* Finds name; if absent and insert >= 0, inserts it with that index. Returns the index found
 * or -1. */
static int64_t index_lookup(const name_index *ix, const char *name,
                            const char *(*name_of)(const qr_gguf *, int64_t), const qr_gguf *g,
                            int64_t insert) {
    if (!ix->slots) return -1;
    for (uint64_t h = hash_str(name) & ix->mask;; h = (h + 1) & ix->mask) {
        int64_t e = ix->slots[h];
        if (e == 0) {
            if (insert >= 0) ix->slots[h] = insert + 1;
            return -1;
        }
        if (!strcmp(name_of(g, e - 1), name)) return e - 1;
    }
}

static const char *kv_name(const qr_gguf *g, int64_t i) {
    return g->kvs[i].key;
}
static const char *tensor_name(const qr_gguf *g, int64_t i) {
    return g->tensors[i].name;
}

/* ---- cursor over the image ---- */

typedef struct cursor {
    const unsigned char *p;
    size_t size, pos;
    qr_gguf *g;
} cursor;

static size_t remaining(const cursor *c) {
    return c->size - c->pos;
}

static qr_status need(const cursor *c, uint64_t n, const char *what) {
    if (n > remaining(c))
        return qr_error(QR_ERR_FORMAT,
                        "truncated file: %s needs %llu bytes at offset %zu but only %zu remain",
                        what, (unsigned long long)n, c->pos, remaining(c));
    return QR_OK;
}

static qr_status read_u32(cursor *c, uint32_t *v, const char *what) {
    qr_status st = need(c, 4, what);
    if (st) return st;
    *v = qr_rd_u32(c->p + c->pos);
    c->pos += 4;
    return QR_OK;
}

static qr_status read_u64(cursor *c, uint64_t *v, const char *what) {
    qr_status st = need(c, 8, what);
    if (st) return st;
    *v = qr_rd_u64(c->p + c->pos);
    c->pos += 8;
    return QR_OK;
}

/* A string as a NUL-terminated arena copy. */
static qr_status read_string(cursor *c, const char **out, uint64_t *len_out, const char *what) {
    uint64_t len;
    size_t at = c->pos;
    qr_status st = read_u64(c, &len, what);
    if (st) return st;
    if (len > remaining(c))
        return qr_error(
            QR_ERR_FORMAT,
            "%s at offset %zu: string length %llu exceeds the %zu bytes left in the file", what, at,
            (unsigned long long)len, remaining(c));
    char *s = arena_alloc(c->g, len + 1);
    if (!s) return QR_ERR_NOMEM;
    memcpy(s, c->p + c->pos, len);
    s[len] = '\0';
    c->pos += len;
    *out = s;
    if (len_out) *len_out = len;
    return QR_OK;
}

size_t qr_gguf_type_size(qr_gguf_type t) {
    switch (t) {
    case QR_GGUF_UINT8:
    case QR_GGUF_INT8:
    case QR_GGUF_BOOL:
        return 1;
    case QR_GGUF_UINT16:
    case QR_GGUF_INT16:
        return 2;
    case QR_GGUF_UINT32:
    case QR_GGUF_INT32:
    case QR_GGUF_FLOAT32:
        return 4;
    case QR_GGUF_UINT64:
    case QR_GGUF_INT64:
    case QR_GGUF_FLOAT64:
        return 8;
    case QR_GGUF_STRING:
    case QR_GGUF_ARRAY:
        return 0;
    }
    return 0;
}

const char *qr_gguf_type_name(qr_gguf_type t) {
    static const char *names[] = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                  "bool", "string", "array", "u64", "i64", "f64"};
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "?";
}

static bool valid_type(uint32_t t) {
    return t <= QR_GGUF_FLOAT64;
}

/* Scalar of type t at p, into v. */
static void decode_scalar(qr_gguf_type t, const unsigned char *p, qr_gguf_value *v) {
    v->type = t;
    switch (t) {
    case QR_GGUF_UINT8:
        v->u64 = p[0];
        break;
    case QR_GGUF_INT8:
        v->i64 = (int8_t)p[0];
        break;
    case QR_GGUF_UINT16:
        v->u64 = qr_rd_u16(p);
        break;
    case QR_GGUF_INT16:
        v->i64 = (int16_t)qr_rd_u16(p);
        break;
    case QR_GGUF_UINT32:
        v->u64 = qr_rd_u32(p);
        break;
    case QR_GGUF_INT32:
        v->i64 = (int32_t)qr_rd_u32(p);
        break;
    case QR_GGUF_UINT64:
        v->u64 = qr_rd_u64(p);
        break;
    case QR_GGUF_INT64:
        v->i64 = (int64_t)qr_rd_u64(p);
        break;
    case QR_GGUF_FLOAT32: {
        float f;
        memcpy(&f, p, 4);
        v->f64 = f;
        break;
    }
    case QR_GGUF_FLOAT64:
        memcpy(&v->f64, p, 8);
        break;
    case QR_GGUF_BOOL:
        v->b = p[0] != 0;
        break;
    default:
        break;
    }
}

static qr_status read_value(cursor *c, qr_gguf_type t, qr_gguf_value *v, const char *key,
                            int depth) {
    size_t at = c->pos;
    if (t == QR_GGUF_STRING) {
        v->type = t;
        return read_string(c, &v->str.ptr, &v->str.len, key);
    }
    if (t != QR_GGUF_ARRAY) {
        size_t n = qr_gguf_type_size(t);
        qr_status st = need(c, n, key);
        if (st) return st;
        decode_scalar(t, c->p + c->pos, v);
        c->pos += n;
        return QR_OK;
    }
    if (depth >= GGUF_MAX_NESTING)
        return qr_error(QR_ERR_FORMAT, "key '%s' at offset %zu: arrays nested deeper than %d", key,
                        at, GGUF_MAX_NESTING);
    uint32_t et;
    uint64_t n;
    qr_status st = read_u32(c, &et, key);
    if (!st) st = read_u64(c, &n, key);
    if (st) return st;
    if (!valid_type(et))
        return qr_error(QR_ERR_FORMAT, "key '%s' at offset %zu: unknown array element type %u", key,
                        at, et);
    v->type = QR_GGUF_ARRAY;
    v->arr.type = (qr_gguf_type)et;
    v->arr.n = n;
    v->arr.data = NULL;
    v->arr.items = NULL;
    size_t es = qr_gguf_type_size((qr_gguf_type)et);
    /* the smallest encoding of one element bounds the count: a string or array takes >= 8 bytes */
    uint64_t min_bytes;
    if (qr_mul_overflows(n, es ? es : 8, &min_bytes) || min_bytes > remaining(c))
        return qr_error(
            QR_ERR_FORMAT,
            "key '%s' at offset %zu: array of %llu %s elements does not fit in the %zu bytes left",
            key, at, (unsigned long long)n, qr_gguf_type_name((qr_gguf_type)et), remaining(c));
    if (es) {
        v->arr.data = c->p + c->pos;
        c->pos += (size_t)min_bytes;
        if (et == QR_GGUF_BOOL)
            for (uint64_t j = 0; j < n; j++)
                if (((const unsigned char *)v->arr.data)[j] > 1)
                    return qr_error(QR_ERR_FORMAT,
                                    "key '%s': bool array element %llu is %u, not 0 or 1", key,
                                    (unsigned long long)j, ((const unsigned char *)v->arr.data)[j]);
        return QR_OK;
    }
    qr_gguf_value *items = arena_alloc(c->g, (size_t)n * sizeof *items);
    if (!items && n) return QR_ERR_NOMEM;
    for (uint64_t j = 0; j < n; j++) {
        st = read_value(c, (qr_gguf_type)et, &items[j], key, depth + 1);
        if (st) return st;
    }
    v->arr.items = items;
    return QR_OK;
}

static qr_status parse(qr_gguf *g) {
    cursor c = {.p = g->data, .size = g->size, .pos = 0, .g = g};
    qr_status st = need(&c, 4, "magic");
    if (st)
        return qr_error(QR_ERR_FORMAT, "not a GGUF file: %zu bytes, too short for the magic",
                        g->size);
    if (memcmp(c.p, "GGUF", 4) != 0) {
        if (!memcmp(c.p, "FUGG", 4))
            return qr_error(QR_ERR_UNSUPPORTED, "big-endian GGUF files are not supported");
        return qr_error(
            QR_ERR_FORMAT,
            "not a GGUF file: bad magic %02x %02x %02x %02x at offset 0 (expected \"GGUF\")",
            c.p[0], c.p[1], c.p[2], c.p[3]);
    }
    c.pos = 4;
    if ((st = read_u32(&c, &g->version, "version"))) return st;
    if (g->version == 1)
        return qr_error(QR_ERR_UNSUPPORTED,
                        "unsupported GGUF version 1 (only versions 2 and 3 are read; "
                        "convert the file with a newer llama.cpp)");
    if (g->version != 2 && g->version != 3)
        return qr_error(QR_ERR_UNSUPPORTED, "unsupported GGUF version %u (expected 2 or 3)",
                        g->version);
    uint64_t n_tensors, n_kv;
    if ((st = read_u64(&c, &n_tensors, "tensor count"))) return st;
    if ((st = read_u64(&c, &n_kv, "metadata count"))) return st;
    /* each KV takes at least 8 (key length) + 4 (type) + 1 bytes, each tensor info 8+4+4+8 */
    if (n_kv > remaining(&c) / 13)
        return qr_error(QR_ERR_FORMAT,
                        "absurd metadata count %llu at offset 16: the file has only %zu bytes left",
                        (unsigned long long)n_kv, remaining(&c));
    if (n_tensors > remaining(&c) / 24)
        return qr_error(QR_ERR_FORMAT,
                        "absurd tensor count %llu at offset 8: the file has only %zu bytes left",
                        (unsigned long long)n_tensors, remaining(&c));
    g->n_kv = (int64_t)n_kv;
    g->n_tensors = (int64_t)n_tensors;
    g->kvs = calloc(n_kv ? n_kv : 1, sizeof *g->kvs);
    g->tensors = calloc(n_tensors ? n_tensors : 1, sizeof *g->tensors);
    if (!g->kvs || !g->tensors) return qr_error(QR_ERR_NOMEM, "out of memory reading GGUF header");
    if ((st = index_init(&g->kv_index, g->n_kv))) return st;
    if ((st = index_init(&g->tensor_index, g->n_tensors))) return st;

    for (int64_t i = 0; i < g->n_kv; i++) {
        qr_gguf_kv *kv = &g->kvs[i];
        size_t at = c.pos;
        if ((st = read_string(&c, &kv->key, NULL, "metadata key"))) return st;
        if (index_lookup(&g->kv_index, kv->key, kv_name, g, i) >= 0)
            return qr_error(QR_ERR_FORMAT, "duplicate metadata key '%s' at offset %zu", kv->key,
                            at);
        uint32_t t;
        if ((st = read_u32(&c, &t, kv->key))) return st;
        if (!valid_type(t))
            return qr_error(QR_ERR_FORMAT, "key '%s' at offset %zu: unknown value type %u", kv->key,
                            at, t);
        if ((st = read_value(&c, (qr_gguf_type)t, &kv->value, kv->key, 0))) return st;
    }

    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    int64_t ai = qr_gguf_find_key(g, "general.alignment");
    if (ai >= 0) {
        const qr_gguf_value *v = &g->kvs[ai].value;
        if (v->type != QR_GGUF_UINT32)
            return qr_error(QR_ERR_FORMAT, "general.alignment has type %s, expected u32",
                            qr_gguf_type_name(v->type));
        if (v->u64 == 0 || (v->u64 & (v->u64 - 1)))
            return qr_error(QR_ERR_FORMAT, "general.alignment is %llu, not a power of two",
                            (unsigned long long)v->u64);
        g->alignment = (size_t)v->u64;
    }

    for (int64_t i = 0; i < g->n_tensors; i++) {
        qr_gguf_tensor *t = &g->tensors[i];
        size_t at = c.pos;
        if ((st = read_string(&c, &t->name, NULL, "tensor name"))) return st;
        if (index_lookup(&g->tensor_index, t->name, tensor_name, g, i) >= 0)
            return qr_error(QR_ERR_FORMAT, "duplicate tensor name '%s' at offset %zu", t->name, at);
        if ((st = read_u32(&c, &t->n_dims, t->name))) return st;
        if (t->n_dims == 0 || t->n_dims > GGUF_MAX_DIMS)
            return qr_error(QR_ERR_FORMAT,
                            "tensor '%s' at offset %zu: %u dimensions (expected 1 to %d)", t->name,
                            at, t->n_dims, GGUF_MAX_DIMS);
        uint64_t n_elem = 1;
        for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
            uint64_t ne = 1;
            if (d < t->n_dims && (st = read_u64(&c, &ne, t->name))) return st;
            if (ne > (uint64_t)INT64_MAX || qr_mul_overflows(n_elem, ne, &n_elem) ||
                n_elem > (uint64_t)INT64_MAX)
                return qr_error(QR_ERR_FORMAT, "tensor '%s' at offset %zu: dimensions overflow",
                                t->name, at);
            t->ne[d] = (int64_t)ne;
        }
        uint32_t type;
        if ((st = read_u32(&c, &type, t->name))) return st;
        t->type = (int)type;
        if (!qr_type_name((int)type))
            return qr_error(QR_ERR_UNSUPPORTED, "tensor '%s': unknown tensor type %u", t->name,
                            type);
        int64_t bs = qr_type_block_size((int)type);
        if (t->ne[0] % bs)
            return qr_error(
                QR_ERR_FORMAT,
                "tensor '%s': row length %lld is not a multiple of the %s block size %lld", t->name,
                (long long)t->ne[0], qr_type_name((int)type), (long long)bs);
        uint64_t bytes = (uint64_t)(t->ne[0] / bs) * qr_type_block_bytes((int)type);
        for (int d = 1; d < GGUF_MAX_DIMS; d++)
            if (qr_mul_overflows(bytes, (uint64_t)t->ne[d], &bytes))
                return qr_error(QR_ERR_FORMAT, "tensor '%s': size overflows", t->name);
        t->nbytes = (size_t)bytes;
        if ((st = read_u64(&c, &t->offset, t->name))) return st;
        if (t->offset % g->alignment)
            return qr_error(QR_ERR_FORMAT,
                            "tensor '%s': data offset %llu is not a multiple of the alignment %zu",
                            t->name, (unsigned long long)t->offset, g->alignment);
    }

    uint64_t data_start = ((uint64_t)c.pos + g->alignment - 1) / g->alignment * g->alignment;
    g->data_offset = (size_t)data_start;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        qr_gguf_tensor *t = &g->tensors[i];
        uint64_t end;
        if (qr_add_overflows(data_start, t->offset, &end) ||
            qr_add_overflows(end, t->nbytes, &end) || end > g->size)
            return qr_error(QR_ERR_FORMAT,
                            "tensor '%s': data [%llu, +%zu) lies past the end of the file (%zu "
                            "bytes; data section at %llu)",
                            t->name, (unsigned long long)t->offset, t->nbytes, g->size,
                            (unsigned long long)data_start);
        t->data = g->data + data_start + t->offset;
    }
    return QR_OK;
}

static qr_gguf *gguf_new(const void *data, size_t size) {
    qr_gguf *g = calloc(1, sizeof *g);
    if (!g) {
        qr_error(QR_ERR_NOMEM, "out of memory");
        return NULL;
    }
    g->data = data;
    g->size = size;
    return g;
}

qr_status qr_gguf_open_memory(const void *data, size_t size, qr_gguf **out) {
    *out = NULL;
    if (!data && size) return qr_error(QR_ERR_INVALID_ARG, "qr_gguf_open_memory: NULL data");
    qr_gguf *g = gguf_new(data, size);
    if (!g) return QR_ERR_NOMEM;
    qr_status st = parse(g);
    if (st) {
        qr_gguf_free(g);
        return st;
    }
    *out = g;
    return QR_OK;
}

qr_status qr_gguf_open(const char *path, qr_gguf **out) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return qr_error(QR_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return qr_error(QR_ERR_IO, "'%s' is not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    void *map = NULL;
    if (size > 0) {
        map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int e = errno;
            close(fd);
            return qr_error(QR_ERR_IO, "cannot map '%s': %s", path, strerror(e));
        }
    }
    close(fd);
    qr_gguf *g = gguf_new(map, size);
    if (!g) {
        if (map) munmap(map, size);
        return QR_ERR_NOMEM;
    }
    g->mapped = map != NULL;
    qr_status st = parse(g);
    if (st) {
        qr_error_prefix("%s", path);
        qr_gguf_free(g);
        return st;
    }
    *out = g;
    return QR_OK;
}

void qr_gguf_free(qr_gguf *g) {
    if (!g) return;
    if (g->mapped) munmap((void *)g->data, g->size);
    for (arena_block *b = g->arena, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    free(g->kv_index.slots);
    free(g->tensor_index.slots);
    free(g->kvs);
    free(g->tensors);
    free(g);
}

/* ---- accessors ---- */

uint32_t qr_gguf_version(const qr_gguf *g) {
    return g->version;
}
size_t qr_gguf_alignment(const qr_gguf *g) {
    return g->alignment;
}
size_t qr_gguf_data_offset(const qr_gguf *g) {
    return g->data_offset;
}
size_t qr_gguf_file_size(const qr_gguf *g) {
    return g->size;
}
int64_t qr_gguf_n_kv(const qr_gguf *g) {
    return g->n_kv;
}
const char *qr_gguf_key(const qr_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_kv ? g->kvs[i].key : NULL;
}
const qr_gguf_value *qr_gguf_value_at(const qr_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_kv ? &g->kvs[i].value : NULL;
}
int64_t qr_gguf_find_key(const qr_gguf *g, const char *key) {
    return index_lookup(&g->kv_index, key, kv_name, g, -1);
}
int64_t qr_gguf_n_tensors(const qr_gguf *g) {
    return g->n_tensors;
}
const qr_gguf_tensor *qr_gguf_tensor_at(const qr_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_tensors ? &g->tensors[i] : NULL;
}
const qr_gguf_tensor *qr_gguf_find_tensor(const qr_gguf *g, const char *name) {
    int64_t i = index_lookup(&g->tensor_index, name, tensor_name, g, -1);
    return i >= 0 ? &g->tensors[i] : NULL;
}

static const qr_gguf_value *get(const qr_gguf *g, const char *key) {
    return qr_gguf_value_at(g, qr_gguf_find_key(g, key));
}

static bool is_unsigned(qr_gguf_type t) {
    return t == QR_GGUF_UINT8 || t == QR_GGUF_UINT16 || t == QR_GGUF_UINT32 || t == QR_GGUF_UINT64;
}
static bool is_signed(qr_gguf_type t) {
    return t == QR_GGUF_INT8 || t == QR_GGUF_INT16 || t == QR_GGUF_INT32 || t == QR_GGUF_INT64;
}

const char *qr_gguf_get_str(const qr_gguf *g, const char *key) {
    const qr_gguf_value *v = get(g, key);
    return v && v->type == QR_GGUF_STRING ? v->str.ptr : NULL;
}

bool qr_gguf_get_i64(const qr_gguf *g, const char *key, int64_t *out) {
    const qr_gguf_value *v = get(g, key);
    if (!v) return false;
    if (is_signed(v->type)) {
        *out = v->i64;
        return true;
    }
    if (is_unsigned(v->type) && v->u64 <= (uint64_t)INT64_MAX) {
        *out = (int64_t)v->u64;
        return true;
    }
    return false;
}

bool qr_gguf_get_u32(const qr_gguf *g, const char *key, uint32_t *out) {
    int64_t x;
    if (!qr_gguf_get_i64(g, key, &x) || x < 0 || x > (int64_t)UINT32_MAX) return false;
    *out = (uint32_t)x;
    return true;
}

bool qr_gguf_get_f32(const qr_gguf *g, const char *key, float *out) {
    const qr_gguf_value *v = get(g, key);
    if (!v || (v->type != QR_GGUF_FLOAT32 && v->type != QR_GGUF_FLOAT64)) return false;
    *out = (float)v->f64;
    return true;
}

bool qr_gguf_get_bool(const qr_gguf *g, const char *key, bool *out) {
    const qr_gguf_value *v = get(g, key);
    if (!v || v->type != QR_GGUF_BOOL) return false;
    *out = v->b;
    return true;
}

const qr_gguf_value *qr_gguf_get_arr(const qr_gguf *g, const char *key) {
    const qr_gguf_value *v = get(g, key);
    return v && v->type == QR_GGUF_ARRAY ? v : NULL;
}

int64_t qr_gguf_arr_i64(const qr_gguf_value *a, uint64_t j) {
    if (!a || a->type != QR_GGUF_ARRAY || j >= a->arr.n || !a->arr.data) return 0;
    size_t es = qr_gguf_type_size(a->arr.type);
    qr_gguf_value v;
    decode_scalar(a->arr.type, (const unsigned char *)a->arr.data + j * es, &v);
    if (is_signed(v.type)) return v.i64;
    if (is_unsigned(v.type)) return (int64_t)v.u64;
    if (v.type == QR_GGUF_BOOL) return v.b;
    return (int64_t)v.f64;
}

double qr_gguf_arr_f64(const qr_gguf_value *a, uint64_t j) {
    if (!a || a->type != QR_GGUF_ARRAY || j >= a->arr.n || !a->arr.data) return 0;
    size_t es = qr_gguf_type_size(a->arr.type);
    qr_gguf_value v;
    decode_scalar(a->arr.type, (const unsigned char *)a->arr.data + j * es, &v);
    if (is_signed(v.type)) return (double)v.i64;
    if (is_unsigned(v.type)) return (double)v.u64;
    if (v.type == QR_GGUF_BOOL) return v.b;
    return v.f64;
}
