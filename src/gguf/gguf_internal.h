/* gguf_internal.h - the parsed form of a GGUF file, shared by the reader's files. */
#ifndef QR_GGUF_INTERNAL_H
#define QR_GGUF_INTERNAL_H

#include "quarrel.h"
#include "util/util.h"

typedef struct qr_gguf_kv {
    const char *key;
    qr_gguf_value value;
} qr_gguf_kv;

struct arena_block;

/* open-addressing hash of names: slots hold entry index + 1, 0 = empty */
typedef struct qr_name_index {
    int64_t *slots;
    uint64_t mask;
} qr_name_index;

struct qr_gguf {
    const unsigned char *data; /* the whole image */
    size_t size;
    bool mapped; /* data is our own mmap */
    uint32_t version;
    size_t alignment, data_offset;
    int64_t n_kv, n_tensors;
    qr_gguf_kv *kvs;
    qr_gguf_tensor *tensors;
    qr_name_index kv_index, tensor_index;
    struct arena_block *arena;
};

#endif
