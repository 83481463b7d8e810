/* resolve.c - model names to files, the way ollama users expect (../shared/models/README.md):
 * an existing path; $QUARREL_MODELS/NAME(.gguf); the ollama store's manifest for NAME[:TAG];
 * with no name, stories260K through the same lookup and then the configured default folder. */
#include "model/model.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#define DEFAULT_MODEL "stories260K"

static bool is_file(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

static char *slurp(const char *path, size_t max) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = malloc(max + 1);
    size_t n = buf ? fread(buf, 1, max, f) : 0;
    fclose(f);
    if (buf) buf[n] = '\0';
    return buf;
}

static void note(char *looked, size_t lsize, const char *path) {
    size_t len = strlen(looked);
    snprintf(looked + len, lsize - len, "\n  %s", path);
}

/* The GGUF blob named by an ollama manifest, or false. */
static bool from_ollama(const char *store, const char *name, char *out, size_t out_size,
                        char *looked, size_t lsize) {
    char model[256], tag[128] = "latest";
    /* the tag follows the last ':' after the last '/' (an earlier ':' is a host's port) */
    const char *last_slash = strrchr(name, '/');
    const char *colon = strrchr(last_slash ? last_slash : name, ':');
    int n_slash = 0;
    for (const char *c = name; *c; c++)
        n_slash += *c == '/';
    size_t n = colon ? (size_t)(colon - name) : strlen(name);
    if (n == 0 || n >= sizeof model) return false;
    memcpy(model, name, n);
    model[n] = '\0';
    if (colon && snprintf(tag, sizeof tag, "%s", colon + 1) >= (int)sizeof tag) return false;
    if (strstr(model, "..") || strstr(tag, "..") || strchr(tag, '/')) return false;
    char manifest[4096];
    /* a bare name lives in the "library" namespace of registry.ollama.ai; HOST/NS/MODEL
     * (hf.co/USER/REPO) under its own host, as `quarrel pull` and ollama store it */
    snprintf(manifest, sizeof manifest, "%s/manifests/%s%s/%s", store,
             n_slash == 2   ? ""
             : n_slash == 1 ? "registry.ollama.ai/"
                            : "registry.ollama.ai/library/",
             model, tag);
    note(looked, lsize, manifest);
    char *text = slurp(manifest, 1 << 20);
    if (!text) return false;
    cJSON *root = cJSON_Parse(text);
    free(text);
    bool found = false;
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(root, "layers");
    const cJSON *layer;
    cJSON_ArrayForEach(layer, layers) {
        const cJSON *mt = cJSON_GetObjectItemCaseSensitive(layer, "mediaType");
        const cJSON *dg = cJSON_GetObjectItemCaseSensitive(layer, "digest");
        if (cJSON_IsString(mt) && !strcmp(mt->valuestring, "application/vnd.ollama.image.model") &&
            cJSON_IsString(dg) && !strncmp(dg->valuestring, "sha256:", 7) &&
            !strchr(dg->valuestring, '/')) {
            snprintf(out, out_size, "%s/blobs/sha256-%s", store, dg->valuestring + 7);
            found = is_file(out);
            break;
        }
    }
    cJSON_Delete(root);
    return found;
}

/* $DIR/NAME.gguf, then $DIR/NAME */
static bool in_dir(const char *dir, const char *name, char *path, size_t path_size, char *looked,
                   size_t lsize) {
    if (!dir || !*dir) return false;
    const char *fmt[] = {"%s/%s.gguf", "%s/%s"};
    for (int f = 0; f < 2; f++) {
        snprintf(path, path_size, fmt[f], dir, name);
        note(looked, lsize, path);
        if (is_file(path)) return true;
    }
    return false;
}

qr_status qr_model_resolve(const char *name, const char *default_dir, char *path,
                           size_t path_size) {
    bool named = name && *name;
    const char *want = named ? name : DEFAULT_MODEL;
    char looked[4096] = "";
    if (named) {
        note(looked, sizeof looked, name);
        if (is_file(name)) {
            if (snprintf(path, path_size, "%s", name) >= (int)path_size)
                return qr_error(QR_ERR_INVALID_ARG, "model path too long");
            return QR_OK;
        }
    }
    if (in_dir(getenv("QUARREL_MODELS"), want, path, path_size, looked, sizeof looked))
        return QR_OK;
    const char *ollama = getenv("OLLAMA_MODELS");
    char store[2048];
    if (ollama && *ollama)
        snprintf(store, sizeof store, "%s", ollama);
    else
        snprintf(store, sizeof store, "%s/.ollama/models", getenv("HOME") ? getenv("HOME") : "");
    if (from_ollama(store, want, path, path_size, looked, sizeof looked)) return QR_OK;
    /* the models folder the build was configured with (../shared/models) */
    if (!strchr(want, '/') && in_dir(default_dir, want, path, path_size, looked, sizeof looked))
        return QR_OK;
    return qr_error(QR_ERR_IO, "model '%s' not found; looked at:%s", want, looked);
}
