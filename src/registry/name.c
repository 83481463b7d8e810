/* name.c - ollama model names ([HOST/][NAMESPACE/]MODEL[:TAG]) parsed, checked and shown the
 * way ollama does (types/model/name.go), since each part becomes a directory of the store. */
#include "registry/registry.h"

#include <stdio.h>
#include <strings.h>

enum part { PART_HOST, PART_NAMESPACE, PART_MODEL, PART_TAG };
static const char *const part_names[] = {"host", "namespace", "model", "tag"};

static bool is_word_byte(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* ollama's isValidPart: the first byte a letter, digit or '_' (so never "." or ".."), then
 * also '-' and '.', except '.' in a namespace; ':' only in a host (its port) */
static bool valid_part(enum part kind, const char *s, size_t n) {
    if (n == 0 || n > (kind == PART_HOST ? 350u : 80u) || !is_word_byte(s[0])) return false;
    for (size_t i = 1; i < n; i++) {
        const char c = s[i];
        if (is_word_byte(c) || c == '-') continue;
        if (c == '.' && kind != PART_NAMESPACE) continue;
        if (c == ':' && kind == PART_HOST) continue;
        return false;
    }
    return true;
}

static qr_status set_part(enum part kind, const char *text, const char *s, size_t n, char *dst,
                          size_t dst_size) {
    if (!valid_part(kind, s, n))
        return qr_error(QR_ERR_INVALID_ARG,
                        "invalid model name '%s': bad %s '%.*s' (letters, digits, '_', '-'%s; "
                        "starting with a letter, digit or '_'; at most %d bytes)",
                        text, part_names[kind], (int)(n > 400 ? 400 : n), s,
                        kind == PART_NAMESPACE ? ""
                        : kind == PART_HOST    ? ", '.', ':'"
                                               : ", '.'",
                        kind == PART_HOST ? 350 : 80);
    if (n >= dst_size) return qr_error(QR_ERR_INVALID_ARG, "invalid model name: too long");
    memcpy(dst, s, n);
    dst[n] = '\0';
    return QR_OK;
}

qr_status qr_model_name_parse(const char *text, qr_model_name *out) {
    memset(out, 0, sizeof *out);
    if (!text || !*text) return qr_error(QR_ERR_INVALID_ARG, "empty model name");
    const size_t len = strlen(text);
    if (len > 600) return qr_error(QR_ERR_INVALID_ARG, "model name too long (%zu bytes)", len);
    /* the tag follows the last ':' after the last '/' (a ':' before it is the host's port) */
    const char *slash = strrchr(text, '/');
    const char *colon = strrchr(slash ? slash : text, ':');
    const size_t path_len = colon ? (size_t)(colon - text) : len;
    qr_status st;
    if (colon) {
        st = set_part(PART_TAG, text, colon + 1, len - path_len - 1, out->tag, sizeof out->tag);
        if (st != QR_OK) return st;
    } else {
        snprintf(out->tag, sizeof out->tag, "%s", QR_REGISTRY_DEFAULT_TAG);
    }
    /* split the rest at '/': MODEL, NAMESPACE/MODEL or HOST/NAMESPACE/MODEL */
    const char *seg[4];
    size_t seg_len[4];
    int n_seg = 0;
    const char *p = text;
    while (n_seg < 4) {
        const char *end = memchr(p, '/', path_len - (size_t)(p - text));
        seg[n_seg] = p;
        seg_len[n_seg] = end ? (size_t)(end - p) : path_len - (size_t)(p - text);
        n_seg++;
        if (!end) break;
        p = end + 1;
    }
    if (n_seg > 3)
        return qr_error(QR_ERR_INVALID_ARG,
                        "invalid model name '%s': expected [HOST/][NAMESPACE/]MODEL[:TAG]", text);
    const int m = n_seg - 1;
    st = set_part(PART_MODEL, text, seg[m], seg_len[m], out->model, sizeof out->model);
    if (st == QR_OK && n_seg >= 2)
        st = set_part(PART_NAMESPACE, text, seg[m - 1], seg_len[m - 1], out->namespace_,
                      sizeof out->namespace_);
    else if (st == QR_OK)
        snprintf(out->namespace_, sizeof out->namespace_, "%s", QR_REGISTRY_DEFAULT_NAMESPACE);
    if (st == QR_OK && n_seg == 3)
        st = set_part(PART_HOST, text, seg[0], seg_len[0], out->host, sizeof out->host);
    else if (st == QR_OK)
        snprintf(out->host, sizeof out->host, "%s", QR_REGISTRY_DEFAULT_HOST);
    out->has_host = n_seg == 3;
    return st;
}

void qr_model_name_display(const qr_model_name *n, char *buf, size_t size) {
    /* ollama compares the default parts case-insensitively */
    if (strcasecmp(n->host, QR_REGISTRY_DEFAULT_HOST))
        snprintf(buf, size, "%s/%s/%s:%s", n->host, n->namespace_, n->model, n->tag);
    else if (strcasecmp(n->namespace_, QR_REGISTRY_DEFAULT_NAMESPACE))
        snprintf(buf, size, "%s/%s:%s", n->namespace_, n->model, n->tag);
    else
        snprintf(buf, size, "%s:%s", n->model, n->tag);
}
