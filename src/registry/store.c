/* store.c - the ollama store on disk: where it is, its paths, and `list` and `rm` over it.
 * Layout (ollama's server/modelpath.go): manifests/HOST/NAMESPACE/MODEL/TAG holds a manifest,
 * blobs/sha256-HEX each blob it names. */
#include "registry/registry.h"

#include <dirent.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

qr_status qr_registry_store_dir(char *buf, size_t size) {
    const char *env = getenv("OLLAMA_MODELS");
    const char *home = getenv("HOME");
    int n;
    if (env && *env)
        n = snprintf(buf, size, "%s", env);
    else if (home && *home)
        n = snprintf(buf, size, "%s/.ollama/models", home);
    else
        return qr_error(QR_ERR_INVALID_ARG,
                        "no model store: neither OLLAMA_MODELS nor HOME is set");
    if (n < 0 || (size_t)n >= size) return qr_error(QR_ERR_INVALID_ARG, "store path too long");
    return QR_OK;
}

qr_status qr_store_resolve(const char *store_dir, char *buf, size_t size) {
    if (!store_dir || !*store_dir) return qr_registry_store_dir(buf, size);
    if (snprintf(buf, size, "%s", store_dir) >= (int)size)
        return qr_error(QR_ERR_INVALID_ARG, "store path too long");
    return QR_OK;
}

bool qr_store_manifest_path(const char *store, const qr_model_name *n, char *buf, size_t size) {
    return snprintf(buf, size, "%s/manifests/%s/%s/%s/%s", store, n->host, n->namespace_, n->model,
                    n->tag) < (int)size;
}

bool qr_store_blob_path(const char *store, const char *digest, const char *suffix, char *buf,
                        size_t size) {
    /* "sha256:HEX" is stored as "sha256-HEX" (a ':' is not allowed in Windows file names) */
    return snprintf(buf, size, "%s/blobs/sha256-%s%s", store, digest + 7, suffix) < (int)size;
}

qr_status qr_mkdirs(const char *path) {
    char p[4096];
    if (snprintf(p, sizeof p, "%s", path) >= (int)sizeof p)
        return qr_error(QR_ERR_INVALID_ARG, "path too long: %s", path);
    for (char *s = p + 1;; s++) {
        const bool last = *s == '\0';
        if (*s != '/' && !last) continue;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            return qr_error(QR_ERR_IO, "cannot create directory %s: %s", p, strerror(errno));
        if (last) break;
        *s = '/';
    }
    struct stat sb;
    if (stat(p, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return qr_error(QR_ERR_IO, "%s is not a directory", p);
    return QR_OK;
}

qr_status qr_read_small_file(const char *path, size_t max, char **out, size_t *len) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return qr_error(QR_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    char *buf = qr_malloc(max + 1);
    size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
    const bool failed = ferror(f);
    fclose(f);
    if (!buf) return QR_ERR_NOMEM;
    if (failed || n > max) {
        free(buf);
        return failed ? qr_error(QR_ERR_IO, "cannot read %s", path)
                      : qr_error(QR_ERR_FORMAT, "%s: larger than %zu bytes", path, max);
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return QR_OK;
}

/* Calls fn on each manifests/HOST/NAMESPACE/MODEL/TAG file whose parts form a valid name
 * (dot files, a pull's temporary manifest among them, are skipped). */
typedef void (*manifest_fn)(const char *path, const qr_model_name *name, void *user);

static void walk(const char *dir, int depth, char parts[4][352], manifest_fn fn, void *user) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || strlen(e->d_name) >= sizeof parts[0]) continue;
        char path[4096];
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path) continue;
        struct stat sb;
        if (stat(path, &sb) != 0) continue;
        snprintf(parts[depth], sizeof parts[0], "%s", e->d_name);
        if (depth < 3) {
            if (S_ISDIR(sb.st_mode)) walk(path, depth + 1, parts, fn, user);
            continue;
        }
        if (!S_ISREG(sb.st_mode)) continue;
        char text[1500];
        snprintf(text, sizeof text, "%s/%s/%s:%s", parts[0], parts[1], parts[2], parts[3]);
        qr_model_name name;
        qr_status st = qr_model_name_parse(text, &name);
        if (st == QR_OK && !strcmp(name.host, parts[0])) fn(path, &name, user);
    }
    closedir(d);
}

static void walk_manifests(const char *store, manifest_fn fn, void *user) {
    char root[4096], parts[4][352];
    snprintf(root, sizeof root, "%s/manifests", store);
    walk(root, 0, parts, fn, user);
}

typedef struct list_state {
    qr_registry_model *models;
    int32_t n, cap;
    bool oom;
} list_state;

static void list_one(const char *path, const qr_model_name *name, void *user) {
    list_state *ls = user;
    char *text;
    size_t len;
    struct stat sb;
    if (ls->oom || stat(path, &sb) != 0) return;
    if (qr_read_small_file(path, QR_MANIFEST_MAX_BYTES, &text, &len) != QR_OK) return;
    qr_manifest m;
    if (qr_manifest_parse(text, len, &m) != QR_OK) { /* not a model; skipped as ollama does */
        free(text);
        return;
    }
    if (ls->n == ls->cap) {
        const int32_t cap = ls->cap ? 2 * ls->cap : 16;
        qr_registry_model *grown = realloc(ls->models, (size_t)cap * sizeof *grown);
        if (!grown) {
            ls->oom = true;
            free(text);
            qr_manifest_free(&m);
            return;
        }
        ls->models = grown;
        ls->cap = cap;
    }
    qr_registry_model *out = &ls->models[ls->n++];
    memset(out, 0, sizeof *out);
    qr_model_name_display(name, out->name, sizeof out->name);
    /* ollama's ID: the manifest file's sha256, shortened */
    unsigned char md[32];
    unsigned int md_len = 0;
    EVP_Digest(text, len, md, &md_len, EVP_sha256(), NULL);
    for (int i = 0; i < 6; i++)
        snprintf(out->id + 2 * i, 3, "%02x", md[i]);
    out->size = m.total_size;
    out->modified = (int64_t)sb.st_mtime;
    qr_manifest_free(&m);
    free(text);
}

static int newest_first(const void *a, const void *b) {
    const qr_registry_model *x = a, *y = b;
    if (x->modified != y->modified) return x->modified < y->modified ? 1 : -1;
    return strcmp(x->name, y->name);
}

qr_status qr_registry_list(const char *store_dir, qr_registry_model **models, int32_t *n_models) {
    *models = NULL;
    *n_models = 0;
    char store[4096];
    qr_status st = qr_store_resolve(store_dir, store, sizeof store);
    if (st != QR_OK) return st;
    list_state ls = {0};
    walk_manifests(store, list_one, &ls);
    if (ls.oom) {
        free(ls.models);
        return qr_error(QR_ERR_NOMEM, "out of memory listing %s", store);
    }
    if (ls.n) qsort(ls.models, (size_t)ls.n, sizeof *ls.models, newest_first);
    *models = ls.models;
    *n_models = ls.n;
    return QR_OK;
}

/* ---- rm ---- */

typedef struct use_state {
    const qr_manifest *removed;
    bool *used; /* per blob of removed: config, then layers */
} use_state;

/* Marks the removed model's blobs that another manifest names. The text is searched rather
 * than parsed, so a manifest this parser would refuse still keeps its blobs. */
static void mark_used(const char *path, const qr_model_name *name, void *user) {
    (void)name;
    use_state *us = user;
    char *text;
    size_t len;
    if (qr_read_small_file(path, QR_MANIFEST_MAX_BYTES, &text, &len) != QR_OK) return;
    for (int32_t i = -1; i < us->removed->n_layers; i++) {
        const qr_blob_ref *b = i < 0 ? &us->removed->config : &us->removed->layers[i];
        if (strstr(text, b->digest + 7)) us->used[i + 1] = true;
    }
    free(text);
}

/* ollama's PruneDirectory: drop the emptied MODEL, NAMESPACE and HOST folders */
static void prune_dirs(const char *store, const qr_model_name *n) {
    char p[4096];
    snprintf(p, sizeof p, "%s/manifests/%s/%s/%s", store, n->host, n->namespace_, n->model);
    for (int i = 0; i < 3; i++) {
        if (rmdir(p) != 0) return;
        *strrchr(p, '/') = '\0';
    }
}

qr_status qr_registry_remove(const char *store_dir, const char *name, int32_t *n_blobs_removed) {
    if (n_blobs_removed) *n_blobs_removed = 0;
    qr_model_name n;
    char store[4096], path[4096];
    qr_status st = qr_model_name_parse(name, &n);
    if (st == QR_OK) st = qr_store_resolve(store_dir, store, sizeof store);
    if (st != QR_OK) return st;
    if (!qr_store_manifest_path(store, &n, path, sizeof path))
        return qr_error(QR_ERR_INVALID_ARG, "model path too long");
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
        return qr_error(QR_ERR_IO, "model '%s' not found in %s (no manifest %s)", name, store,
                        path);
    char *text;
    size_t len;
    if ((st = qr_read_small_file(path, QR_MANIFEST_MAX_BYTES, &text, &len)) != QR_OK) return st;
    qr_manifest m;
    /* a manifest that does not parse is still removed; its blobs are left alone */
    const bool parsed = qr_manifest_parse(text, len, &m) == QR_OK;
    free(text);
    if (unlink(path) != 0) {
        if (parsed) qr_manifest_free(&m);
        return qr_error(QR_ERR_IO, "cannot remove %s: %s", path, strerror(errno));
    }
    prune_dirs(store, &n);
    if (!parsed) return QR_OK;
    bool *used = qr_calloc((size_t)m.n_layers + 1, sizeof *used);
    if (!used) {
        qr_manifest_free(&m);
        return QR_ERR_NOMEM;
    }
    use_state us = {&m, used};
    walk_manifests(store, mark_used, &us);
    st = QR_OK;
    for (int32_t i = -1; i < m.n_layers; i++) {
        const qr_blob_ref *b = i < 0 ? &m.config : &m.layers[i];
        char blob[4096];
        if (used[i + 1] || !qr_store_blob_path(store, b->digest, "", blob, sizeof blob)) continue;
        used[i + 1] = true; /* a digest listed twice is removed once */
        for (int32_t j = i + 1; j < m.n_layers; j++)
            if (!strcmp(m.layers[j].digest, b->digest)) used[j + 1] = true;
        if (unlink(blob) == 0) {
            if (n_blobs_removed) (*n_blobs_removed)++;
        } else if (errno != ENOENT && st == QR_OK) {
            st = qr_error(QR_ERR_IO, "removed the manifest but not blob %s: %s", blob,
                          strerror(errno));
        }
    }
    free(used);
    qr_manifest_free(&m);
    return st;
}
