/* state.c - saving a sequence's state (its tokens and KV rows) to a file and restoring it into
 * a sequence of a context: what `quarrel run --prompt-cache` and the server's slot save/restore
 * use. The file format is Quarrel's own (described in quarrel.h at qr_state_save_seq). The
 * reader treats the file as untrusted: every header field, the size and a checksum over the
 * whole file are checked against the context before a single cell changes.
 *
 * The KV rows are copied as the cache holds them, by the cache type's row size, so a cache
 * type added later (quantized ones) needs nothing here beyond cache_type() and row_bytes(). */
#include "runtime/context.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#define HEADER_BYTES 128
#define CHECKSUM_BYTES 8

/* ---- what the cache stores (the one place that knows the cache's types) ---- */

/* the tensor type (qr_type) of the K (v = false) or V rows */
static int cache_type(const qr_context *ctx, bool v) {
    return v ? ctx->v_type : ctx->k_type;
}

/* bytes of one KV head's row of one position */
static size_t row_bytes(const qr_context *ctx, bool v) {
    return v ? ctx->v_row_bytes : ctx->k_row_bytes;
}

/* the row of head h at position p of sequence s, in the head-major layout forward.c keeps */
static char *cache_row(const qr_context *ctx, bool v, int32_t layer, int32_t s, int32_t h,
                       int32_t p) {
    const int64_t row = ((int64_t)s * ctx->model->hp.n_head_kv + h) * ctx->n_ctx_seq + p;
    char *base = v ? ctx->v_cache[layer] : ctx->k_cache[layer];
    return base + row * (int64_t)row_bytes(ctx, v);
}

/* ---- hashing: corruption and identity checks, not cryptography ---- */

#define HASH_SEED 0x6a09e667f3bcc909ULL
#define HASH_MUL 0x9e3779b97f4a7c15ULL

static uint64_t hash_bytes(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) { /* a word at a time: state files reach hundreds of MB */
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * HASH_MUL;
        h ^= h >> 29;
    }
    for (; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

/* The file's checksum: hash_bytes over the stream, whatever pieces it comes in (whole words
 * are mixed as they complete; the tail at the end). */
typedef struct hasher {
    uint64_t h;
    unsigned char word[8];
    size_t n_word;
} hasher;

static void hasher_add(hasher *hs, const void *data, size_t n) {
    const unsigned char *p = data;
    while (n > 0 && hs->n_word > 0) {
        hs->word[hs->n_word++] = *p++;
        n--;
        if (hs->n_word == 8) {
            hs->h = hash_bytes(hs->h, hs->word, 8);
            hs->n_word = 0;
        }
    }
    const size_t whole = n & ~(size_t)7;
    hs->h = hash_bytes(hs->h, p, whole);
    memcpy(hs->word, p + whole, n - whole);
    hs->n_word = n - whole;
}

static uint64_t hasher_end(const hasher *hs) {
    return hash_bytes(hs->h, hs->word, hs->n_word);
}

static uint64_t hash_u64(uint64_t h, uint64_t v) {
    return hash_bytes(h, &v, sizeof v);
}

static uint64_t hash_f32(uint64_t h, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return hash_u64(h, u);
}

static uint64_t hash_str(uint64_t h, const char *s) {
    s = s ? s : "";
    return hash_bytes(hash_u64(h, strlen(s)), s, strlen(s));
}

/* The model's identity beyond its architecture and shape: every tensor's name, type and
 * dimensions, every token's text and the hyperparameters the cache depends on. */
static uint64_t model_hash(const qr_model *m) {
    const qr_hparams *hp = &m->hp;
    uint64_t h = hash_str(HASH_SEED, m->arch_name);
    const int64_t hp_ints[] = {hp->n_vocab,    hp->n_embd,      hp->n_layer,  hp->n_head,
                               hp->n_head_kv,  hp->n_ff,        hp->n_expert, hp->n_expert_used,
                               hp->n_ff_exp,   hp->head_dim,    hp->n_rot,    hp->n_swa,
                               hp->n_ctx_orig, hp->rope_scaling};
    for (size_t i = 0; i < sizeof hp_ints / sizeof hp_ints[0]; i++)
        h = hash_u64(h, (uint64_t)hp_ints[i]);
    const float hp_floats[] = {hp->norm_eps,
                               hp->rope_freq_base,
                               hp->rope_freq_scale,
                               hp->rope_freq_base_swa,
                               hp->rope_freq_scale_swa,
                               hp->embd_scale,
                               hp->residual_scale,
                               hp->kq_scale,
                               hp->q_scale};
    for (size_t i = 0; i < sizeof hp_floats / sizeof hp_floats[0]; i++)
        h = hash_f32(h, hp_floats[i]);
    const qr_gguf *g = m->gguf;
    for (int64_t i = 0; g && i < qr_gguf_n_tensors(g); i++) {
        const qr_gguf_tensor *t = qr_gguf_tensor_at(g, i);
        h = hash_str(h, t->name);
        h = hash_u64(h, (uint64_t)t->type);
        for (int d = 0; d < 4; d++)
            h = hash_u64(h, (uint64_t)t->ne[d]);
    }
    for (qr_token t = 0; t < hp->n_vocab; t++)
        h = hash_str(h, qr_token_text(m, t));
    return h;
}

/* The context's RoPE: the cached keys are rotated with it, so a context that turns keys
 * differently (--rope-freq-base, YaRN, ...) cannot use them. */
static uint64_t rope_hash(const qr_context *ctx) {
    uint64_t h = HASH_SEED;
    for (int k = 0; k < 2; k++) {
        const qr_rope *r = &ctx->rope[k];
        h = hash_u64(h, (uint64_t)r->n_rot);
        h = hash_u64(h, (uint64_t)r->type);
        h = hash_u64(h, (uint64_t)r->n_ctx_orig);
        const float f[] = {r->freq_base,  r->freq_scale,   r->theta_scale,
                           r->ext_factor, r->attn_factor,  r->beta_fast,
                           r->beta_slow,  r->corr_dims[0], r->corr_dims[1]};
        for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
            h = hash_f32(h, f[i]);
        h = hash_u64(h, r->factors != NULL);
        for (int32_t i = 0; r->factors && i < r->n_rot / 2; i++)
            h = hash_f32(h, r->factors[i]);
    }
    return h;
}

/* ---- the header ---- */

typedef struct state_header {
    char arch[32];
    uint64_t model_hash, rope_hash;
    uint32_t n_tensors, n_vocab, n_layer, n_head_kv, head_dim, n_embd;
    uint32_t k_type, v_type, n_tokens;
    uint64_t k_row_bytes, v_row_bytes;
} state_header;

/* what this context's sequences would write */
static state_header header_of(const qr_context *ctx, int32_t n_tokens) {
    const qr_model *m = ctx->model;
    state_header h = {0};
    snprintf(h.arch, sizeof h.arch, "%s", m->arch_name);
    h.model_hash = model_hash(m);
    h.rope_hash = rope_hash(ctx);
    h.n_tensors = m->gguf ? (uint32_t)qr_gguf_n_tensors(m->gguf) : 0;
    h.n_vocab = (uint32_t)m->hp.n_vocab;
    h.n_layer = (uint32_t)m->hp.n_layer;
    h.n_head_kv = (uint32_t)m->hp.n_head_kv;
    h.head_dim = (uint32_t)m->hp.head_dim;
    h.n_embd = (uint32_t)m->hp.n_embd;
    h.k_type = (uint32_t)cache_type(ctx, false);
    h.v_type = (uint32_t)cache_type(ctx, true);
    h.n_tokens = (uint32_t)n_tokens;
    h.k_row_bytes = row_bytes(ctx, false);
    h.v_row_bytes = row_bytes(ctx, true);
    return h;
}

static void put_u32(unsigned char *p, uint32_t v) {
    memcpy(p, &v, 4);
}
static void put_u64(unsigned char *p, uint64_t v) {
    memcpy(p, &v, 8);
}

static void encode_header(const state_header *h, unsigned char out[HEADER_BYTES]) {
    memset(out, 0, HEADER_BYTES);
    memcpy(out, QR_STATE_MAGIC, 8);
    put_u32(out + 8, QR_STATE_VERSION);
    put_u32(out + 12, HEADER_BYTES);
    memcpy(out + 16, h->arch, 32);
    put_u64(out + 48, h->model_hash);
    put_u64(out + 56, h->rope_hash);
    put_u32(out + 64, h->n_tensors);
    put_u32(out + 68, h->n_vocab);
    put_u32(out + 72, h->n_layer);
    put_u32(out + 76, h->n_head_kv);
    put_u32(out + 80, h->head_dim);
    put_u32(out + 84, h->n_embd);
    put_u32(out + 88, h->k_type);
    put_u32(out + 92, h->v_type);
    put_u32(out + 96, h->n_tokens);
    /* 100: four bytes of zeros */
    put_u64(out + 104, h->k_row_bytes);
    put_u64(out + 112, h->v_row_bytes);
    /* 120: eight bytes of zeros */
}

static const char *type_name(uint32_t t) {
    const char *n = t < QR_TYPE_COUNT ? qr_type_name((int)t) : NULL;
    return n ? n : "an unknown type";
}

/* Check a file's header (its first HEADER_BYTES bytes) against what ctx writes; *out gets the
 * file's fields. */
static qr_status check_header(const qr_context *ctx, const unsigned char *p, state_header *out) {
    if (memcmp(p, QR_STATE_MAGIC, 8))
        return qr_error(QR_ERR_FORMAT, "not a Quarrel state file (its first bytes are not \"%s\")",
                        QR_STATE_MAGIC);
    const uint32_t version = qr_rd_u32(p + 8), header_bytes = qr_rd_u32(p + 12);
    if (version != QR_STATE_VERSION)
        return qr_error(QR_ERR_UNSUPPORTED, "state file version %u; this build reads version %d",
                        version, QR_STATE_VERSION);
    if (header_bytes != HEADER_BYTES || qr_rd_u32(p + 100) != 0 || qr_rd_u64(p + 120) != 0 ||
        p[16 + 31] != '\0')
        return qr_error(QR_ERR_FORMAT, "malformed state file header");
    state_header f = {0};
    memcpy(f.arch, p + 16, 32);
    f.model_hash = qr_rd_u64(p + 48);
    f.rope_hash = qr_rd_u64(p + 56);
    f.n_tensors = qr_rd_u32(p + 64);
    f.n_vocab = qr_rd_u32(p + 68);
    f.n_layer = qr_rd_u32(p + 72);
    f.n_head_kv = qr_rd_u32(p + 76);
    f.head_dim = qr_rd_u32(p + 80);
    f.n_embd = qr_rd_u32(p + 84);
    f.k_type = qr_rd_u32(p + 88);
    f.v_type = qr_rd_u32(p + 92);
    f.n_tokens = qr_rd_u32(p + 96);
    f.k_row_bytes = qr_rd_u64(p + 104);
    f.v_row_bytes = qr_rd_u64(p + 112);
    *out = f;

    const state_header c = header_of(ctx, 0);
    if (strcmp(f.arch, c.arch))
        return qr_error(QR_ERR_INVALID_ARG,
                        "the state file is of another model: a '%s' model saved it, this one is "
                        "'%s'",
                        f.arch, c.arch);
    if (f.n_tensors != c.n_tensors || f.n_vocab != c.n_vocab || f.n_layer != c.n_layer ||
        f.n_head_kv != c.n_head_kv || f.head_dim != c.head_dim || f.n_embd != c.n_embd)
        return qr_error(QR_ERR_INVALID_ARG,
                        "the state file is of another model: %u tensors, %u tokens, %u layers, "
                        "%u KV heads of %u, n_embd %u; this model has %u, %u, %u, %u of %u, %u",
                        f.n_tensors, f.n_vocab, f.n_layer, f.n_head_kv, f.head_dim, f.n_embd,
                        c.n_tensors, c.n_vocab, c.n_layer, c.n_head_kv, c.head_dim, c.n_embd);
    if (f.model_hash != c.model_hash)
        return qr_error(QR_ERR_INVALID_ARG,
                        "the state file is of another model: the same shape, but its tensors, "
                        "vocabulary or hyperparameters differ");
    if (f.k_type != c.k_type || f.v_type != c.v_type)
        return qr_error(QR_ERR_INVALID_ARG,
                        "the state file's KV cache types are K %s, V %s; this context's are K %s, "
                        "V %s",
                        type_name(f.k_type), type_name(f.v_type), type_name(c.k_type),
                        type_name(c.v_type));
    if (f.k_row_bytes != c.k_row_bytes || f.v_row_bytes != c.v_row_bytes)
        return qr_error(QR_ERR_FORMAT,
                        "malformed state file: rows of %llu and %llu bytes, the cache types "
                        "make %llu and %llu",
                        (unsigned long long)f.k_row_bytes, (unsigned long long)f.v_row_bytes,
                        (unsigned long long)c.k_row_bytes, (unsigned long long)c.v_row_bytes);
    if (f.rope_hash != c.rope_hash)
        return qr_error(QR_ERR_INVALID_ARG,
                        "the state file's keys were rotated with other RoPE settings (rope "
                        "scaling, base, scale or YaRN parameters) than this context's");
    if ((int64_t)f.n_tokens > ctx->n_ctx_seq)
        return qr_error(QR_ERR_CONTEXT_FULL,
                        "the state file holds %u tokens but a sequence of this context holds %d",
                        f.n_tokens, ctx->n_ctx_seq);
    return QR_OK;
}

/* bytes of a whole file of n tokens (the header's row sizes are checked and small) */
static uint64_t file_bytes(const qr_context *ctx, uint64_t n) {
    const uint64_t rows = (uint64_t)ctx->model->hp.n_layer * (uint64_t)ctx->model->hp.n_head_kv;
    return HEADER_BYTES + n * sizeof(qr_token) +
           rows * n * (row_bytes(ctx, false) + row_bytes(ctx, true)) + CHECKSUM_BYTES;
}

/* ---- saving ---- */

typedef struct writer {
    FILE *f;
    hasher hash;
    uint64_t n;
    bool failed;
} writer;

static void write_bytes(writer *w, const void *p, size_t n) {
    if (w->failed || n == 0) return;
    hasher_add(&w->hash, p, n);
    w->n += n;
    if (fwrite(p, 1, n, w->f) != n) w->failed = true;
}

qr_status qr_state_save_seq(qr_context *ctx, int32_t seq_id, const qr_token *tokens,
                            int32_t n_tokens, const char *path, size_t *n_written) {
    if (n_written) *n_written = 0;
    if (seq_id < 0 || seq_id >= ctx->n_seq)
        return qr_error(QR_ERR_INVALID_ARG,
                        "saving state: sequence %d out of range (context has "
                        "%d)",
                        seq_id, ctx->n_seq);
    if (n_tokens < 0 || n_tokens > ctx->seq_len[seq_id] || (n_tokens > 0 && !tokens))
        return qr_error(QR_ERR_INVALID_ARG,
                        "saving state: %d tokens given, but sequence %d holds %d", n_tokens, seq_id,
                        ctx->seq_len[seq_id]);
    for (int32_t i = 0; i < n_tokens; i++)
        if (tokens[i] < 0 || tokens[i] >= ctx->model->hp.n_vocab)
            return qr_error(QR_ERR_INVALID_ARG,
                            "saving state: token %d is %d, not in the vocabulary", i, tokens[i]);
    /* written beside the target and renamed over it: the file is whole or absent */
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return qr_error(QR_ERR_INVALID_ARG, "saving state: the path is too long");
    writer w = {.f = fopen(tmp, "wb"), .hash = {.h = HASH_SEED}};
    if (!w.f) return qr_error(QR_ERR_IO, "saving state to %s: %s", path, strerror(errno));
    unsigned char head[HEADER_BYTES];
    const state_header h = header_of(ctx, n_tokens);
    encode_header(&h, head);
    write_bytes(&w, head, sizeof head);
    write_bytes(&w, tokens, (size_t)n_tokens * sizeof *tokens);
    for (int32_t l = 0; l < ctx->model->hp.n_layer; l++)
        for (int v = 0; v < 2; v++)
            for (int32_t hd = 0; hd < ctx->model->hp.n_head_kv; hd++)
                write_bytes(&w, cache_row(ctx, v, l, seq_id, hd, 0),
                            (size_t)n_tokens * row_bytes(ctx, v));
    const uint64_t sum = hasher_end(&w.hash);
    unsigned char tail[CHECKSUM_BYTES];
    put_u64(tail, sum);
    write_bytes(&w, tail, sizeof tail);
    const int err = w.failed ? errno : 0;
    if (fclose(w.f) != 0 && !w.failed) w.failed = true;
    if (w.failed || rename(tmp, path) != 0) {
        const int e = err ? err : errno;
        remove(tmp);
        return qr_error(QR_ERR_IO, "saving state to %s: %s", path, strerror(e));
    }
    if (n_written) *n_written = (size_t)w.n;
    return QR_OK;
}

/* ---- restoring ---- */

qr_status qr_state_load_seq_memory(qr_context *ctx, int32_t seq_id, const void *data, size_t size,
                                   qr_token *tokens, int32_t n_max, int32_t *n_tokens) {
    *n_tokens = 0;
    if (seq_id < 0 || seq_id >= ctx->n_seq)
        return qr_error(QR_ERR_INVALID_ARG,
                        "restoring state: sequence %d out of range (context has %d)", seq_id,
                        ctx->n_seq);
    const unsigned char *p = data;
    if (size < HEADER_BYTES)
        return qr_error(QR_ERR_FORMAT,
                        "the state file is truncated: %zu bytes, shorter than its %d-byte header",
                        size, HEADER_BYTES);
    state_header h;
    qr_status st = check_header(ctx, p, &h);
    if (st) return st;
    const uint64_t want = file_bytes(ctx, h.n_tokens);
    if (size < want)
        return qr_error(QR_ERR_FORMAT,
                        "the state file is truncated: %zu bytes, %u tokens need %llu", size,
                        h.n_tokens, (unsigned long long)want);
    if (size > want)
        return qr_error(QR_ERR_FORMAT,
                        "malformed state file: %zu bytes, %u tokens need %llu (%llu bytes too "
                        "many)",
                        size, h.n_tokens, (unsigned long long)want,
                        (unsigned long long)(size - want));
    if (hash_bytes(HASH_SEED, p, size - CHECKSUM_BYTES) != qr_rd_u64(p + size - CHECKSUM_BYTES))
        return qr_error(QR_ERR_FORMAT,
                        "the state file is corrupt: its checksum does not match its contents");
    if ((int64_t)h.n_tokens > n_max) {
        *n_tokens = (int32_t)h.n_tokens;
        return qr_error(QR_ERR_BUFFER_SMALL,
                        "the state file holds %u tokens, more than the %d the caller has room for",
                        h.n_tokens, n_max);
    }
    const int32_t n = (int32_t)h.n_tokens;
    const unsigned char *tok = p + HEADER_BYTES;
    for (int32_t i = 0; i < n; i++) {
        const int32_t t = (int32_t)qr_rd_u32(tok + (size_t)i * 4);
        if (t < 0 || t >= ctx->model->hp.n_vocab)
            return qr_error(QR_ERR_FORMAT,
                            "malformed state file: token %d is %d, not in the vocabulary of %d", i,
                            t, ctx->model->hp.n_vocab);
    }
    /* every check passed: the sequence becomes the file's */
    for (int32_t i = 0; i < n; i++)
        tokens[i] = (qr_token)qr_rd_u32(tok + (size_t)i * 4);
    const unsigned char *row = tok + (size_t)n * sizeof(qr_token);
    for (int32_t l = 0; l < ctx->model->hp.n_layer; l++)
        for (int v = 0; v < 2; v++)
            for (int32_t hd = 0; hd < ctx->model->hp.n_head_kv; hd++) {
                const size_t bytes = (size_t)n * row_bytes(ctx, v);
                if (bytes) memcpy(cache_row(ctx, v, l, seq_id, hd, 0), row, bytes);
                row += bytes;
            }
    ctx->seq_len[seq_id] = n;
    *n_tokens = n;
    return QR_OK;
}

qr_status qr_state_load_seq(qr_context *ctx, int32_t seq_id, const char *path, qr_token *tokens,
                            int32_t n_max, int32_t *n_tokens, size_t *n_read) {
    *n_tokens = 0;
    if (n_read) *n_read = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return qr_error(QR_ERR_IO, "cannot open the state file %s: %s", path, strerror(errno));
    struct stat sb;
    unsigned char head[HEADER_BYTES];
    qr_status st = QR_OK;
    unsigned char *buf = NULL;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st = qr_error(QR_ERR_IO, "the state file %s is not a regular file", path);
        goto done;
    }
    const size_t size = (size_t)sb.st_size;
    /* the header first: a file of another model is refused before anything large is read */
    const size_t n_head = size < HEADER_BYTES ? size : HEADER_BYTES;
    if (fread(head, 1, n_head, f) != n_head) {
        st = qr_error(QR_ERR_IO, "reading the state file %s: %s", path, strerror(errno));
        goto done;
    }
    state_header h;
    if (size < HEADER_BYTES) {
        st = qr_state_load_seq_memory(ctx, seq_id, head, size, tokens, n_max, n_tokens);
        goto done;
    }
    if ((st = check_header(ctx, head, &h))) goto done;
    const uint64_t want = file_bytes(ctx, h.n_tokens);
    if (size != want) {
        st = qr_error(QR_ERR_FORMAT,
                      size < want ? "the state file is truncated: %zu bytes, %u tokens need %llu"
                                  : "malformed state file: %zu bytes, %u tokens need %llu",
                      size, h.n_tokens, (unsigned long long)want);
        goto done;
    }
    buf = malloc(size);
    if (!buf) {
        st = qr_error(QR_ERR_NOMEM, "out of memory reading the state file %s (%zu bytes)", path,
                      size);
        goto done;
    }
    memcpy(buf, head, HEADER_BYTES);
    if (fread(buf + HEADER_BYTES, 1, size - HEADER_BYTES, f) != size - HEADER_BYTES) {
        st = qr_error(QR_ERR_IO, "reading the state file %s: it changed while being read", path);
        goto done;
    }
    st = qr_state_load_seq_memory(ctx, seq_id, buf, size, tokens, n_max, n_tokens);
    if (!st && n_read) *n_read = size;
done:
    if (st) qr_error_prefix("%s", path);
    free(buf);
    fclose(f);
    return st;
}
