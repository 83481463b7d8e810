/* pull.c - `pull`: a model's manifest and blobs from an OCI distribution registry (ollama's
 * registry.ollama.ai, a mirror of it, or a name's own host such as hf.co) into the ollama store.
 *
 * The order makes an interrupted or failed pull harmless: each blob is streamed into
 * blobs/sha256-HEX-partial (ollama's name for it) while its sha256 is computed, renamed into
 * place only when the digest matches, and the manifest, which is what makes a model visible to
 * ollama and `quarrel run`, is written last through a rename. A partial file left by an earlier
 * pull is resumed with an HTTP Range request; one in ollama's own format (preallocated, with
 * sha256-HEX-partial-N part files beside it) is started over. */
#include "registry/registry.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* ollama's Accept header (server/images.go); an OCI manifest in reply is accepted too */
#define ACCEPT_MANIFEST "Accept: application/vnd.docker.distribution.manifest.v2+json"
#define ERROR_BODY_MAX 4096

typedef struct pull {
    const qr_pull_params *params;
    const char *name; /* as the caller spelled it, for messages */
    qr_model_name n;
    char store[4096];
    char base_url[2048]; /* scheme://host[/prefix], no trailing '/' */
    CURL *curl;
    char curl_error[CURL_ERROR_SIZE];
    qr_pull_progress progress;
    bool cancelled;
} pull;

/* Where a response goes: 2xx bodies into file (hashed) or mem; others into mem for the
 * error message. */
typedef struct sink {
    pull *p;
    FILE *file;
    EVP_MD_CTX *sha;
    int64_t written, limit; /* bytes this response wrote to file; the most it may write */
    int64_t size;           /* the whole blob's */
    int64_t resume_from;    /* the Range start asked for (0: none) */
    qr_strbuf mem;
    size_t mem_max;
    long status;
    bool too_big, range_ignored, range_wrong, write_failed;
} sink;

static bool progress(pull *p) {
    if (p->params->progress && !p->params->progress(&p->progress, p->params->user))
        p->cancelled = true;
    return !p->cancelled;
}

/* A header of the last response (after redirects), through libcurl's header API; NULL if
 * absent. */
static const char *response_header(CURL *c, const char *name) {
    struct curl_header *h;
    return curl_easy_header(c, name, 0, CURLH_HEADER, -1, &h) == CURLHE_OK ? h->value : NULL;
}

static size_t on_body(char *data, size_t size, size_t n, void *user) {
    sink *s = user;
    const size_t len = size * n;
    if (!s->status) { /* the first bytes of the final response: its status and range */
        curl_easy_getinfo(s->p->curl, CURLINFO_RESPONSE_CODE, &s->status);
        const char *range = response_header(s->p->curl, "Content-Range");
        long long start = -1;
        if (s->status == 206 &&
            (!range || sscanf(range, "bytes %lld-", &start) != 1 || start != s->resume_from))
            s->range_wrong = true;
    }
    if (s->file && (s->status == 200 || s->status == 206)) {
        if (s->status == 200 && s->resume_from && !s->range_ignored) {
            /* the server sent the whole blob instead of the range: start the file over */
            s->range_ignored = true;
            if (fflush(s->file) || ftruncate(fileno(s->file), 0) || fseek(s->file, 0, SEEK_SET)) {
                s->write_failed = true;
                return 0;
            }
            EVP_DigestInit_ex(s->sha, EVP_sha256(), NULL);
            s->limit = s->size;
            s->p->progress.all_completed -= s->p->progress.completed;
            s->p->progress.completed = 0;
        }
        if (s->status == 206 && s->range_wrong) return 0;
        if (s->written + (int64_t)len > s->limit) {
            s->too_big = true;
            return 0;
        }
        if (fwrite(data, 1, len, s->file) != len) {
            s->write_failed = true;
            return 0;
        }
        EVP_DigestUpdate(s->sha, data, len);
        s->written += (int64_t)len;
        s->p->progress.event = QR_PULL_BLOB_DATA;
        s->p->progress.completed += (int64_t)len;
        s->p->progress.all_completed += (int64_t)len;
        return progress(s->p) ? len : 0;
    }
    if (s->mem.n + len > s->mem_max) {
        s->too_big = true;
        return 0;
    }
    qr_strbuf_append(&s->mem, data, len);
    return s->mem.oom ? 0 : len;
}

/* The registry's own words from an error body ({"errors":[{"code":..,"message":..}]}),
 * printable ASCII only, or "". */
static void error_detail(const sink *s, char *out, size_t size) {
    out[0] = '\0';
    cJSON *root = s->mem.p ? cJSON_ParseWithLength(s->mem.p, s->mem.n) : NULL;
    const cJSON *errors = cJSON_GetObjectItemCaseSensitive(root, "errors");
    const cJSON *message =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(errors, 0), "message");
    if (cJSON_IsString(message)) {
        size_t j = 0;
        for (const char *m = message->valuestring; *m && j + 1 < size; m++)
            if (*m >= 0x20 && *m < 0x7f) out[j++] = *m;
        out[j] = '\0';
    }
    cJSON_Delete(root);
}

/* GET url into s; QR_OK when the transfer ran to its end (the status is for the caller) */
static qr_status http_get(pull *p, const char *url, const char *accept, sink *s) {
    CURL *c = p->curl;
    struct curl_slist *headers = accept ? curl_slist_append(NULL, accept) : NULL;
    curl_easy_reset(c);
    p->curl_error[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, p->curl_error);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "quarrel (ollama registry client)");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
    /* blobs redirect to a CDN; never from https down to http unless --insecure */
    const char *protocols = p->params->insecure ? "http,https" : "https";
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, protocols);
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, protocols);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    /* a stalled transfer fails (and is resumed by the next pull) instead of hanging */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    /* CURLOPT_RANGE rather than RESUME_FROM: a server that ignores the range and sends the
     * whole blob (200) is then not an error; on_body starts the file over */
    char range[32];
    snprintf(range, sizeof range, "%lld-", (long long)s->resume_from);
    if (s->resume_from) curl_easy_setopt(c, CURLOPT_RANGE, range);
    const CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(headers);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    s->status = status;
    if (rc == CURLE_OK) return QR_OK;
    if (p->cancelled) return qr_error(QR_ERR_CANCELLED, "pull of '%s' cancelled", p->name);
    if (s->write_failed)
        return qr_error(QR_ERR_IO, "cannot write to the store %s: %s", p->store, strerror(errno));
    if (s->too_big) return QR_OK; /* the caller says what was too big */
    if (s->range_wrong)
        return qr_error(QR_ERR_FORMAT, "%s answered a different range than asked for", url);
    if (s->mem.oom) return qr_error(QR_ERR_NOMEM, "out of memory reading %s", url);
    const char *why = p->curl_error[0] ? p->curl_error : curl_easy_strerror(rc);
    if (rc == CURLE_UNSUPPORTED_PROTOCOL)
        return qr_error(QR_ERR_INVALID_ARG, "%s: %s (plain http needs --insecure)", url, why);
    if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
        rc == CURLE_OPERATION_TIMEDOUT)
        return qr_error(QR_ERR_IO, "cannot reach registry %s: %s", p->base_url, why);
    return qr_error(QR_ERR_IO, "download of %s failed: %s", url, why);
}

/* The message for a status other than the one wanted. */
static qr_status http_status_error(pull *p, const sink *s, const char *what) {
    char detail[512];
    error_detail(s, detail, sizeof detail);
    const char *sep = detail[0] ? ": " : "";
    if (s->status == 401 || s->status == 403)
        return qr_error(QR_ERR_IO, "registry %s refused access to %s (HTTP %ld%s%s)", p->base_url,
                        what, s->status, sep, detail);
    if (s->status >= 500)
        return qr_error(QR_ERR_IO, "registry %s failed on %s (HTTP %ld server error%s%s)",
                        p->base_url, what, s->status, sep, detail);
    return qr_error(QR_ERR_IO, "registry %s answered HTTP %ld for %s%s%s", p->base_url, s->status,
                    what, sep, detail);
}

static qr_status fetch_manifest(pull *p, char **text, size_t *len) {
    char url[4096];
    snprintf(url, sizeof url, "%s/v2/%s/%s/manifests/%s", p->base_url, p->n.namespace_, p->n.model,
             p->n.tag);
    sink s = {.p = p, .mem_max = QR_MANIFEST_MAX_BYTES};
    qr_status st = http_get(p, url, ACCEPT_MANIFEST, &s);
    if (st == QR_OK && s.status == 404)
        st = qr_error(QR_ERR_IO, "model '%s' not found in registry %s", p->name, p->base_url);
    else if (st == QR_OK && s.status != 200)
        st = http_status_error(p, &s, "the manifest");
    else if (st == QR_OK && s.too_big)
        st = qr_error(QR_ERR_FORMAT, "manifest of '%s' is larger than %u bytes", p->name,
                      QR_MANIFEST_MAX_BYTES);
    const char *content_digest = response_header(p->curl, "Docker-Content-Digest");
    if (st == QR_OK && content_digest && !strncmp(content_digest, "sha256:", 7)) {
        /* the registry names the manifest's digest: hold it to that */
        unsigned char md[32];
        char hex[72] = "sha256:";
        EVP_Digest(s.mem.p ? s.mem.p : "", s.mem.n, md, NULL, EVP_sha256(), NULL);
        for (int i = 0; i < 32; i++)
            snprintf(hex + 7 + 2 * i, 3, "%02x", md[i]);
        if (strcmp(hex, content_digest))
            st = qr_error(QR_ERR_FORMAT, "manifest of '%s' does not match its digest %s", p->name,
                          content_digest);
    }
    if (st != QR_OK) {
        free(s.mem.p);
        return st;
    }
    *text = s.mem.p ? s.mem.p : qr_strdup("");
    *len = s.mem.n;
    return *text ? QR_OK : QR_ERR_NOMEM;
}

/* Hashes the first `bytes` bytes of f into sha; false on a read error */
static bool hash_file(FILE *f, int64_t bytes, EVP_MD_CTX *sha) {
    static _Thread_local unsigned char buf[1 << 16];
    while (bytes > 0) {
        const size_t want = bytes < (int64_t)sizeof buf ? (size_t)bytes : sizeof buf;
        if (fread(buf, 1, want, f) != want) return false;
        EVP_DigestUpdate(sha, buf, want);
        bytes -= (int64_t)want;
    }
    return true;
}

static bool digest_matches(EVP_MD_CTX *sha, const char *digest, char *got, size_t got_size) {
    unsigned char md[32];
    EVP_DigestFinal_ex(sha, md, NULL);
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    snprintf(got, got_size, "sha256:%s", hex);
    return !strcmp(hex, digest + 7);
}

/* true when path holds exactly the blob (its size and sha256) */
static bool stored_blob_ok(const char *path, const qr_blob_ref *b) {
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size != b->size) return false;
    FILE *f = fopen(path, "rb");
    EVP_MD_CTX *sha = EVP_MD_CTX_new();
    char got[80];
    bool ok = f && sha && EVP_DigestInit_ex(sha, EVP_sha256(), NULL) &&
              hash_file(f, b->size, sha) && digest_matches(sha, b->digest, got, sizeof got);
    if (f) fclose(f);
    EVP_MD_CTX_free(sha);
    return ok;
}

/* ollama's partial download keeps sha256-HEX-partial-N part files; its partial file is
 * preallocated to full size, so its length says nothing about what arrived */
static void drop_ollama_parts(const char *partial, bool *had) {
    *had = false;
    for (int i = 0; i < 64; i++) {
        char part[4200];
        snprintf(part, sizeof part, "%s-%d", partial, i);
        if (unlink(part) == 0) *had = true;
    }
}

static qr_status download_blob(pull *p, const qr_blob_ref *b) {
    char final[4200], partial[4200], url[4096];
    if (!qr_store_blob_path(p->store, b->digest, "", final, sizeof final) ||
        !qr_store_blob_path(p->store, b->digest, "-partial", partial, sizeof partial))
        return qr_error(QR_ERR_INVALID_ARG, "store path too long");
    p->progress.digest = b->digest;
    p->progress.total = b->size;
    p->progress.completed = 0;
    if (stored_blob_ok(final, b)) {
        p->progress.event = QR_PULL_BLOB_CACHED;
        p->progress.completed = b->size;
        p->progress.all_completed += b->size;
        return progress(p) ? QR_OK : qr_error(QR_ERR_CANCELLED, "pull cancelled");
    }
    bool had_ollama_parts;
    drop_ollama_parts(partial, &had_ollama_parts);
    FILE *f = fopen(partial, had_ollama_parts ? "w+b" : "a+b");
    if (!f) return qr_error(QR_ERR_IO, "cannot open %s: %s", partial, strerror(errno));
    EVP_MD_CTX *sha = EVP_MD_CTX_new();
    sink s = {.p = p, .file = f, .sha = sha, .mem_max = ERROR_BODY_MAX};
    qr_status st = QR_OK;
    /* two pulls appending to one partial file would interleave their bytes */
    if (flock(fileno(f), LOCK_EX | LOCK_NB) != 0) {
        st = qr_error(QR_ERR_IO, "blob %s is being downloaded by another pull (%s is locked)",
                      b->digest, partial);
        goto done;
    }
    struct stat sb;
    int64_t have = fstat(fileno(f), &sb) == 0 ? (int64_t)sb.st_size : 0;
    if (!sha || !EVP_DigestInit_ex(sha, EVP_sha256(), NULL)) {
        st = qr_error(QR_ERR_NOMEM, "cannot start a sha256");
        goto done;
    }
    /* a partial file longer than the blob is not this blob's beginning */
    if (have > b->size) {
        if (ftruncate(fileno(f), 0) != 0) {
            st = qr_error(QR_ERR_IO, "cannot truncate %s: %s", partial, strerror(errno));
            goto done;
        }
        have = 0;
    }
    rewind(f);
    if (!hash_file(f, have, sha) || fseek(f, 0, SEEK_END) != 0) {
        st = qr_error(QR_ERR_IO, "cannot read %s: %s", partial, strerror(errno));
        goto done;
    }
    p->progress.event = QR_PULL_BLOB_START;
    p->progress.completed = have;
    p->progress.all_completed += have;
    if (!progress(p)) {
        st = qr_error(QR_ERR_CANCELLED, "pull cancelled");
        goto done;
    }
    if (have < b->size) {
        snprintf(url, sizeof url, "%s/v2/%s/%s/blobs/%s", p->base_url, p->n.namespace_, p->n.model,
                 b->digest);
        s.resume_from = have;
        s.limit = b->size - have;
        s.size = b->size;
        st = http_get(p, url, NULL, &s);
        if (st == QR_OK && s.status != 200 && s.status != 206) {
            if (s.status == 404)
                st = qr_error(QR_ERR_IO, "blob %s of '%s' not found in registry %s", b->digest,
                              p->name, p->base_url);
            else
                st = http_status_error(p, &s, b->digest);
            goto done;
        }
        if (st != QR_OK) goto done; /* the partial file stays for the next pull to resume */
        if (s.too_big) {
            st = qr_error(QR_ERR_FORMAT, "blob %s is larger than the manifest's %lld bytes",
                          b->digest, (long long)b->size);
            goto bad;
        }
        if (s.written != s.limit) {
            st = qr_error(QR_ERR_IO, "blob %s: the registry sent %lld of %lld bytes", b->digest,
                          (long long)(b->size - s.limit + s.written), (long long)b->size);
            goto done;
        }
    }
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        st = qr_error(QR_ERR_IO, "cannot write %s: %s", partial, strerror(errno));
        goto done;
    }
    char got[80];
    if (!digest_matches(sha, b->digest, got, sizeof got)) {
        st = qr_error(QR_ERR_FORMAT,
                      "blob %s of '%s' failed its sha256 check (the download's digest is %s); "
                      "removed it, nothing installed",
                      b->digest, p->name, got);
        goto bad;
    }
    fclose(f);
    f = NULL;
    if (rename(partial, final) != 0) {
        st = qr_error(QR_ERR_IO, "cannot move %s into place: %s", partial, strerror(errno));
        goto done;
    }
    p->progress.event = QR_PULL_BLOB_DONE;
    p->progress.completed = b->size;
    if (!progress(p)) st = qr_error(QR_ERR_CANCELLED, "pull cancelled");
    goto done;
bad: /* the bytes on disk are wrong: resuming from them could never succeed */
    unlink(partial);
done:
    if (f) fclose(f);
    EVP_MD_CTX_free(sha);
    free(s.mem.p);
    return st;
}

/* the manifest goes into place in one rename, so ollama never sees half of one */
static qr_status write_manifest(pull *p, const char *text, size_t len) {
    char path[4096], dir[4096], tmp[4200];
    if (!qr_store_manifest_path(p->store, &p->n, path, sizeof path))
        return qr_error(QR_ERR_INVALID_ARG, "manifest path too long");
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = '\0';
    qr_status st = qr_mkdirs(dir);
    if (st != QR_OK) return st;
    /* a dot file: `list` (and ollama, whose names start with a letter) pass over it */
    snprintf(tmp, sizeof tmp, "%s/.%s.partial", dir, p->n.tag);
    FILE *f = fopen(tmp, "wb");
    if (!f) return qr_error(QR_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    const bool ok = fwrite(text, 1, len, f) == len && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (fclose(f) != 0 || !ok || rename(tmp, path) != 0) {
        st = qr_error(QR_ERR_IO, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
    }
    return st;
}

/* base_url from the name's host, or the mirror for the default host */
static qr_status choose_url(pull *p) {
    const bool default_host = !strcasecmp(p->n.host, QR_REGISTRY_DEFAULT_HOST);
    const char *mirror = p->params->registry;
    int n;
    if (default_host && mirror && *mirror) {
        const bool http = !strncmp(mirror, "http://", 7);
        if (!http && strncmp(mirror, "https://", 8))
            return qr_error(QR_ERR_INVALID_ARG, "registry URL '%s' is not http:// or https://",
                            mirror);
        if (http && !p->params->insecure)
            return qr_error(QR_ERR_INVALID_ARG,
                            "registry %s is plain http: pass --insecure to allow it", mirror);
        n = snprintf(p->base_url, sizeof p->base_url, "%s", mirror);
    } else {
        /* ollama: https, or http for an --insecure pull */
        n = snprintf(p->base_url, sizeof p->base_url, "%s://%s",
                     p->params->insecure ? "http" : "https", p->n.host);
    }
    if (n < 0 || (size_t)n >= sizeof p->base_url)
        return qr_error(QR_ERR_INVALID_ARG, "registry URL too long");
    while (n > 0 && p->base_url[n - 1] == '/')
        p->base_url[--n] = '\0';
    return QR_OK;
}

qr_pull_params qr_pull_default_params(void) {
    qr_pull_params params = {0};
    return params;
}

/* blob i of a manifest: -1 the config, then the layers */
static const qr_blob_ref *blob_at(const qr_manifest *m, int32_t i) {
    return i < 0 ? &m->config : &m->layers[i];
}

/* a digest named twice is fetched once, at its first place */
static bool named_before(const qr_manifest *m, int32_t i) {
    for (int32_t j = -1; j < i; j++)
        if (!strcmp(blob_at(m, j)->digest, blob_at(m, i)->digest)) return true;
    return false;
}

static qr_status pull_blobs(pull *p, const qr_manifest *m) {
    p->progress.count = 0;
    p->progress.all_total = 0;
    for (int32_t i = -1; i < m->n_layers; i++)
        if (!named_before(m, i)) {
            p->progress.count++;
            p->progress.all_total += blob_at(m, i)->size;
        }
    p->progress.index = 0;
    for (int32_t i = -1; i < m->n_layers; i++) {
        if (named_before(m, i)) continue;
        qr_status st = download_blob(p, blob_at(m, i));
        if (st != QR_OK) return st;
        p->progress.index++;
    }
    return QR_OK;
}

qr_status qr_registry_pull(const char *name, const qr_pull_params *params) {
    qr_pull_params defaults = qr_pull_default_params();
    pull p = {.params = params ? params : &defaults, .name = name ? name : ""};
    qr_status st = qr_model_name_parse(name, &p.n);
    if (st == QR_OK) st = qr_store_resolve(p.params->store_dir, p.store, sizeof p.store);
    if (st == QR_OK) st = choose_url(&p);
    if (st != QR_OK) return st;
    char blobs[4200];
    snprintf(blobs, sizeof blobs, "%s/blobs", p.store);
    if ((st = qr_mkdirs(blobs)) != QR_OK) return st;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return qr_error(QR_ERR_IO, "cannot initialise libcurl");
    p.curl = curl_easy_init();
    char *text = NULL;
    size_t len = 0;
    qr_manifest m = {0};
    if (!p.curl) {
        st = qr_error(QR_ERR_NOMEM, "cannot initialise libcurl");
        goto done;
    }
    if ((st = fetch_manifest(&p, &text, &len)) != QR_OK) goto done;
    if ((st = qr_manifest_parse(text, len, &m)) != QR_OK) {
        qr_error_prefix("'%s' from %s", p.name, p.base_url);
        goto done;
    }
    p.progress.event = QR_PULL_MANIFEST;
    if (!progress(&p)) {
        st = qr_error(QR_ERR_CANCELLED, "pull cancelled");
        goto done;
    }
    if ((st = pull_blobs(&p, &m)) != QR_OK) goto done;
    p.progress.event = QR_PULL_WRITE_MANIFEST;
    p.progress.digest = NULL;
    progress(&p); /* too late to stop: the blobs are in place */
    st = write_manifest(&p, text, len);
done:
    qr_manifest_free(&m);
    free(text);
    if (p.curl) curl_easy_cleanup(p.curl);
    curl_global_cleanup();
    return st;
}
