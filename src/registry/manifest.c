/* manifest.c - strict validation of an OCI / Docker v2 image manifest as ollama's registry
 * serves it. The manifest comes from the network and its digests become file names in the
 * store, so everything is checked before any of it is used. */
#include "registry/registry.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static const char *const manifest_media_types[] = {
    "application/vnd.docker.distribution.manifest.v2+json", /* what ollama's registry sends */
    "application/vnd.oci.image.manifest.v1+json",
};

bool qr_digest_valid(const char *s) {
    if (strncmp(s, "sha256:", 7)) return false;
    for (int i = 0; i < 64; i++) {
        const char c = s[7 + i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    }
    return s[71] == '\0';
}

/* printable ASCII only: the media type is shown in messages and compared, never a path */
static bool printable(const char *s) {
    for (; *s; s++)
        if (*s < 0x20 || *s > 0x7e) return false;
    return true;
}

static qr_status parse_blob(const cJSON *obj, const char *where, qr_blob_ref *out) {
    if (!cJSON_IsObject(obj))
        return qr_error(QR_ERR_FORMAT, "manifest: %s is not an object", where);
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(obj, "mediaType");
    const cJSON *dg = cJSON_GetObjectItemCaseSensitive(obj, "digest");
    const cJSON *sz = cJSON_GetObjectItemCaseSensitive(obj, "size");
    if (!cJSON_IsString(mt) || !mt->valuestring[0])
        return qr_error(QR_ERR_FORMAT, "manifest: %s.mediaType is missing or not a string", where);
    if (strlen(mt->valuestring) >= sizeof out->media_type || !printable(mt->valuestring))
        return qr_error(QR_ERR_FORMAT, "manifest: %s.mediaType is too long or not printable",
                        where);
    if (!cJSON_IsString(dg))
        return qr_error(QR_ERR_FORMAT, "manifest: %s.digest is missing or not a string", where);
    if (!qr_digest_valid(dg->valuestring))
        return qr_error(QR_ERR_FORMAT, "manifest: %s.digest '%.80s' is not sha256:<64 hex digits>",
                        where, dg->valuestring);
    /* a JSON number is a double: sizes are exact up to 2^53 */
    if (!cJSON_IsNumber(sz) || !isfinite(sz->valuedouble) || sz->valuedouble < 0 ||
        sz->valuedouble > 9007199254740992.0 || sz->valuedouble != floor(sz->valuedouble))
        return qr_error(QR_ERR_FORMAT,
                        "manifest: %s.size is missing or not a whole number of bytes", where);
    snprintf(out->media_type, sizeof out->media_type, "%s", mt->valuestring);
    snprintf(out->digest, sizeof out->digest, "%s", dg->valuestring);
    out->size = (int64_t)sz->valuedouble;
    return QR_OK;
}

static qr_status parse_root(const cJSON *root, qr_manifest *out) {
    if (!cJSON_IsObject(root)) return qr_error(QR_ERR_FORMAT, "manifest: not a JSON object");
    const cJSON *version = cJSON_GetObjectItemCaseSensitive(root, "schemaVersion");
    if (!cJSON_IsNumber(version) || version->valuedouble != 2.0)
        return qr_error(QR_ERR_FORMAT, "manifest: schemaVersion is not 2");
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "mediaType");
    if (!cJSON_IsString(mt)) return qr_error(QR_ERR_FORMAT, "manifest: mediaType is missing");
    bool known = false;
    for (size_t i = 0; i < sizeof manifest_media_types / sizeof *manifest_media_types; i++)
        known |= !strcmp(mt->valuestring, manifest_media_types[i]);
    if (!known)
        return qr_error(QR_ERR_FORMAT, "manifest: mediaType '%.100s' is not an image manifest",
                        printable(mt->valuestring) ? mt->valuestring : "?");
    qr_status st =
        parse_blob(cJSON_GetObjectItemCaseSensitive(root, "config"), "config", &out->config);
    if (st != QR_OK) return st;
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(root, "layers");
    if (!cJSON_IsArray(layers)) return qr_error(QR_ERR_FORMAT, "manifest: layers is not an array");
    const int n = cJSON_GetArraySize(layers);
    if (n < 1 || n > QR_MANIFEST_MAX_LAYERS)
        return qr_error(QR_ERR_FORMAT, "manifest: %d layers (expected 1 to %d)", n,
                        QR_MANIFEST_MAX_LAYERS);
    out->layers = qr_calloc((size_t)n, sizeof *out->layers);
    if (!out->layers) return QR_ERR_NOMEM;
    out->total_size = out->config.size;
    const cJSON *layer;
    cJSON_ArrayForEach(layer, layers) {
        char where[32];
        snprintf(where, sizeof where, "layers[%d]", out->n_layers);
        qr_blob_ref *b = &out->layers[out->n_layers];
        if ((st = parse_blob(layer, where, b)) != QR_OK) return st;
        out->n_layers++;
        /* at most 1025 sizes of 2^53 each: the sum cannot overflow int64 */
        out->total_size += b->size;
    }
    return QR_OK;
}

qr_status qr_manifest_parse(const char *text, size_t len, qr_manifest *out) {
    memset(out, 0, sizeof *out);
    if (len > QR_MANIFEST_MAX_BYTES)
        return qr_error(QR_ERR_FORMAT, "manifest: %zu bytes, more than a manifest can be", len);
    if (memchr(text, '\0', len)) return qr_error(QR_ERR_FORMAT, "manifest: contains a NUL byte");
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (!root) return qr_error(QR_ERR_FORMAT, "manifest: not valid JSON");
    qr_status st = QR_OK;
    /* nothing but whitespace may follow the object */
    for (const char *p = end; p < text + len; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            st = qr_error(QR_ERR_FORMAT, "manifest: data after the JSON object");
            break;
        }
    if (st == QR_OK) st = parse_root(root, out);
    cJSON_Delete(root);
    if (st != QR_OK) qr_manifest_free(out);
    return st;
}

void qr_manifest_free(qr_manifest *m) {
    free(m->layers);
    m->layers = NULL;
    m->n_layers = 0;
}
