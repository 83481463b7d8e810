/* registry.h - the registry module's inner interface: model names, manifests and store paths,
 * shared by pull.c and store.c and reachable from the tests and the manifest fuzzer. */
#ifndef QR_REGISTRY_H
#define QR_REGISTRY_H

#include "util/util.h"

#define QR_REGISTRY_DEFAULT_HOST "registry.ollama.ai"
#define QR_REGISTRY_DEFAULT_NAMESPACE "library"
#define QR_REGISTRY_DEFAULT_TAG "latest"
/* a manifest is a few hundred bytes; anything past this is not one */
#define QR_MANIFEST_MAX_BYTES (4u << 20)
#define QR_MANIFEST_MAX_LAYERS 1024

/* A model name split into ollama's parts, each checked against ollama's rules
 * (types/model/name.go): host up to 350 bytes, the others up to 80; the first byte a letter,
 * digit or '_', the rest also '-' and '.', ':' only in the host (a port), no '.' in the
 * namespace. So no part can be "." or ".." or hold a '/': each is a safe path component. */
typedef struct qr_model_name {
    char host[352];
    char namespace_[84];
    char model[84];
    char tag[84];
    bool has_host; /* the name spelled out its host */
} qr_model_name;

/* Parses [HOST/][NAMESPACE/]MODEL[:TAG], filling the defaults. QR_ERR_INVALID_ARG says which
 * part is wrong. */
qr_status qr_model_name_parse(const char *text, qr_model_name *out);
/* ollama's DisplayShortest: "model:tag", "ns/model:tag" or "host/ns/model:tag". */
void qr_model_name_display(const qr_model_name *n, char *buf, size_t size);

/* One blob of a manifest: its media type, "sha256:<64 lowercase hex>" and size in bytes. */
typedef struct qr_blob_ref {
    char media_type[128];
    char digest[72];
    int64_t size;
} qr_blob_ref;

typedef struct qr_manifest {
    qr_blob_ref config;
    qr_blob_ref *layers; /* n_layers of them, owned */
    int32_t n_layers;
    int64_t total_size; /* config + layers */
} qr_manifest;

/* Validates a manifest as it came from a registry or the store: a JSON object, nothing after
 * it, schemaVersion 2, a Docker v2 or OCI manifest mediaType, a config and 1 to
 * QR_MANIFEST_MAX_LAYERS layers, each with a mediaType, a digest sha256:<64 lowercase hex> and
 * an integer size in [0, 2^53]. QR_ERR_FORMAT names the offending field. *out to free with
 * qr_manifest_free (also safe after a failure). */
qr_status qr_manifest_parse(const char *text, size_t len, qr_manifest *out);
void qr_manifest_free(qr_manifest *m);

/* true when s is "sha256:" and 64 lowercase hex digits */
bool qr_digest_valid(const char *s);

/* store/manifests/HOST/NAMESPACE/MODEL/TAG and store/blobs/sha256-HEX; false if too long */
bool qr_store_manifest_path(const char *store, const qr_model_name *n, char *buf, size_t size);
bool qr_store_blob_path(const char *store, const char *digest, const char *suffix, char *buf,
                        size_t size);
/* The store directory of params (store_dir or qr_registry_store_dir) into buf. */
qr_status qr_store_resolve(const char *store_dir, char *buf, size_t size);
/* mkdir -p */
qr_status qr_mkdirs(const char *path);
/* The whole file (at most max bytes, else QR_ERR_FORMAT), NUL-terminated; *len without it. */
qr_status qr_read_small_file(const char *path, size_t max, char **out, size_t *len);

#endif
