/* vocab.c - loading a vocabulary from tokenizer.ggml.* metadata and llama.cpp's
 * (llama-vocab.cpp, llama_vocab::impl) tokenize / token_to_piece / detokenize on top of the
 * SPM (spm.c) and BPE (bpe.c) tokenizers. */
#include "tokenizer/utf8.h"
#include "tokenizer/vocab_internal.h"
#include "util/util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SPACE_ESC "\xe2\x96\x81" /* U+2581, SentencePiece's escaped space */

/* tokenizer.ggml.token_type values */
enum { TT_UNDEFINED, TT_NORMAL, TT_UNKNOWN, TT_CONTROL, TT_USER_DEFINED, TT_UNUSED, TT_BYTE };

qr_status qr_tokbuf_push(qr_tokbuf *b, qr_token t) {
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        qr_token *d = realloc(b->data, cap * sizeof(*d));
        if (!d) return qr_error(QR_ERR_NOMEM, "tokenizer: out of memory for %zu tokens", cap);
        b->data = d;
        b->cap = cap;
    }
    b->data[b->n++] = t;
    return QR_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* loading                                                                                  */

void qr_vocab_free(qr_vocab *v) {
    if (!v) return;
    free(v->tokens);
    free(v->text_buf);
    free(v->piece_buf);
    qr_strmap_free(&v->token_map);
    qr_strmap_free(&v->merge_map);
    free(v->merge_buf);
    qr_pretok_free(v->pretok);
    free(v->eog);
    free(v->special);
    free(v);
}

static const qr_gguf_value *get_array(const qr_gguf *g, const char *key, qr_gguf_type elem,
                                      bool required, qr_status *st) {
    int64_t i = qr_gguf_find_key(g, key);
    *st = QR_OK;
    if (i < 0) {
        if (required) *st = qr_error(QR_ERR_FORMAT, "vocabulary: missing key %s", key);
        return NULL;
    }
    const qr_gguf_value *a = qr_gguf_value_at(g, i);
    if (a->type != QR_GGUF_ARRAY || a->arr.type != elem) {
        *st = qr_error(QR_ERR_FORMAT, "vocabulary: %s must be an array of %s", key,
                       qr_gguf_type_name(elem));
        return NULL;
    }
    return a;
}

/* A special token id from the metadata: absent, or 0xFFFFFFFF (written by some converters to
 * mean "none"), keeps the default like llama.cpp; another id past the vocabulary is an error. */
static qr_status read_special(const qr_gguf *g, const char *key, int32_t n_tokens, qr_token *id) {
    if (*id >= n_tokens) *id = -1;
    int64_t i = qr_gguf_find_key(g, key);
    if (i < 0) return QR_OK;
    const qr_gguf_value *val = qr_gguf_value_at(g, i);
    long long x;
    switch (val->type) {
    case QR_GGUF_UINT8:
    case QR_GGUF_UINT16:
    case QR_GGUF_UINT32:
    case QR_GGUF_UINT64:
        if (val->u64 == UINT32_MAX || val->u64 == UINT64_MAX) return QR_OK;
        x = val->u64 > (uint64_t)INT64_MAX ? -2 : (long long)val->u64;
        break;
    case QR_GGUF_INT8:
    case QR_GGUF_INT16:
    case QR_GGUF_INT32:
    case QR_GGUF_INT64:
        if (val->i64 == -1) return QR_OK;
        x = val->i64;
        break;
    default:
        return qr_error(QR_ERR_FORMAT, "vocabulary: %s must be an integer, not %s", key,
                        qr_gguf_type_name(val->type));
    }
    if (x < 0 || x >= n_tokens)
        return qr_error(QR_ERR_FORMAT, "vocabulary: %s = %lld is out of range (%d tokens)", key, x,
                        n_tokens);
    *id = (qr_token)x;
    return QR_OK;
}

static void read_bool(const qr_gguf *g, const char *key, bool *out) {
    bool b;
    if (qr_gguf_get_bool(g, key, &b)) *out = b;
}

/* The byte a BYTE token "<0xNN>" stands for (llama.cpp: strtol of text[3..5)), -1 if malformed. */
static int token_byte(const qr_token_data *t) {
    if (t->len < 5) return -1;
    char hex[3] = {t->text[3], t->text[4], 0};
    char *end;
    long b = strtol(hex, &end, 16);
    if (end == hex) return -1;
    return (int)(b & 0xff);
}

typedef struct strbuf {
    char *data;
    size_t n, cap;
} strbuf;

static int sb_add(strbuf *s, const void *p, size_t n) {
    if (s->n + n > s->cap) {
        size_t cap = s->cap ? s->cap : 1024;
        while (cap < s->n + n)
            cap *= 2;
        char *d = realloc(s->data, cap);
        if (!d) return -1;
        s->data = d;
        s->cap = cap;
    }
    if (n) memcpy(s->data + s->n, p, n);
    s->n += n;
    return 0;
}

/* token_to_piece(special = true), llama.cpp's token_to_piece_for_cache. */
static int render_piece(const qr_vocab *v, const qr_token_data *t, strbuf *out) {
    const uint32_t special = QR_ATTR_UNKNOWN | QR_ATTR_CONTROL | QR_ATTR_USER_DEFINED;
    if (t->attr & special) return sb_add(out, t->text, t->len);
    if (t->attr & QR_ATTR_NORMAL) {
        if (v->type == QR_VOCAB_SPM) {
            for (uint32_t i = 0; i < t->len;) {
                if (i + 3 <= t->len && memcmp(t->text + i, SPACE_ESC, 3) == 0) {
                    if (sb_add(out, " ", 1)) return -1;
                    i += 3;
                } else {
                    if (sb_add(out, t->text + i, 1)) return -1;
                    i++;
                }
            }
            return 0;
        }
        /* BPE: every code point back to its byte (llama_decode_text) */
        for (size_t off = 0; off < t->len;) {
            size_t start = off;
            uint32_t cp = qr_utf8_decode(t->text, t->len, &off);
            int b = qr_cp_to_byte(cp);
            if (b >= 0) {
                unsigned char c = (unsigned char)b;
                if (sb_add(out, &c, 1)) return -1;
                continue;
            }
            char enc[4];
            int n = qr_utf8_encode(cp, enc);
            (void)start;
            if (sb_add(out, "[UNK_BYTE_0x", 12)) return -1;
            for (int k = 0; k < n; k++) {
                char hex[3];
                snprintf(hex, sizeof(hex), "%02x", (unsigned char)enc[k]);
                if (sb_add(out, hex, 2)) return -1;
            }
            if (sb_add(out, t->text, t->len) || sb_add(out, "]", 1)) return -1;
        }
        return 0;
    }
    if (t->attr & QR_ATTR_BYTE) {
        int b = token_byte(t);
        if (b < 0) return 0;
        unsigned char c = (unsigned char)b;
        return sb_add(out, &c, 1);
    }
    return 0; /* UNUSED / UNDEFINED render as nothing */
}

static bool text_is(const qr_token_data *t, const char *s) {
    size_t n = strlen(s);
    return t->len == n && memcmp(t->text, s, n) == 0;
}

/* The first of the candidate texts present in the vocabulary, -1 if none. llama.cpp scans its
 * hash map in no defined order; taking the list order makes the choice deterministic. */
static qr_token find_first(const qr_vocab *v, const char *const *texts) {
    for (int i = 0; texts[i]; i++) {
        int32_t id = qr_vocab_find(v, texts[i], strlen(texts[i]));
        if (id >= 0) return id;
    }
    return -1;
}

static void detect_special(qr_vocab *v, qr_token *id, const char *const *texts) {
    if (*id >= 0) return;
    *id = find_first(v, texts);
    if (*id >= 0) v->tokens[*id].attr |= QR_ATTR_CONTROL;
}

static int cmp_special(const void *a, const void *b, void *ctx) {
    const qr_vocab *v = ctx;
    qr_token x = *(const qr_token *)a, y = *(const qr_token *)b;
    uint32_t lx = v->tokens[x].len, ly = v->tokens[y].len;
    if (lx != ly) return lx > ly ? -1 : 1;
    return x < y ? -1 : x > y;
}

static qr_status add_eog(qr_vocab *v, qr_token id) {
    if (id < 0) return QR_OK;
    for (int32_t i = 0; i < v->n_eog; i++)
        if (v->eog[i] == id) return QR_OK;
    qr_token *e = realloc(v->eog, (size_t)(v->n_eog + 1) * sizeof(*e));
    if (!e) return qr_error(QR_ERR_NOMEM, "vocabulary: out of memory");
    v->eog = e;
    v->eog[v->n_eog++] = id;
    return QR_OK;
}

static void remove_eog(qr_vocab *v, qr_token id) {
    for (int32_t i = 0; i < v->n_eog; i++) {
        if (v->eog[i] == id) {
            v->eog[i] = v->eog[--v->n_eog];
            return;
        }
    }
}

static qr_status finish_special(qr_vocab *v, const qr_gguf *g) {
    qr_status st;
    static const char *const eot_texts[] = {
        "<|eot_id|>",         "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
        "<|end_of_text|>",    "<EOT>",      "_<EOT>",  "[EOT]",         "<｜end▁of▁sentence｜>",
        "<end_of_utterance>", NULL};
    static const char *const eom_texts[] = {"<|eom_id|>", NULL};
    static const char *const fim_pad_texts[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>",
                                                "<PAD>",       "[PAD]",     NULL};
    static const char *const fim_rep_texts[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>",
                                                "<REPO>",       "<reponame>",    NULL};
    static const char *const fim_sep_texts[] = {"<|file_sep|>", NULL};
    static const char *const eog_texts[] = {
        "<|eot_id|>", "<|im_end|>", "<|end|>",       "<|return|>",    "<|call|>",
        "<|flush|>",  "<|calls|>",  "<end_of_turn>", "<|endoftext|>", "</s>",
        "<|eom_id|>", "<EOT>",      "_<EOT>",        "[EOT]",         NULL};
    detect_special(v, &v->eot, eot_texts);
    detect_special(v, &v->eom, eom_texts);
    detect_special(v, &v->fim_pad, fim_pad_texts);
    detect_special(v, &v->fim_rep, fim_rep_texts);
    detect_special(v, &v->fim_sep, fim_sep_texts);

    for (int32_t i = 0; i < v->n_tokens; i++) {
        qr_token_data *t = &v->tokens[i];
        if ((t->attr & QR_ATTR_CONTROL) && t->len >= 6 && memmem(t->text, t->len, "unused", 6))
            t->attr |= QR_ATTR_UNUSED;
    }
    if ((st = add_eog(v, v->fim_pad)) || (st = add_eog(v, v->fim_rep)) ||
        (st = add_eog(v, v->fim_sep)))
        return st;
    for (int k = 0; eog_texts[k]; k++) {
        /* llama.cpp marks every token with such a text (its map keeps the last duplicate) */
        int32_t id = qr_vocab_find(v, eog_texts[k], strlen(eog_texts[k]));
        if (id < 0) continue;
        if ((st = add_eog(v, id))) return st;
        v->tokens[id].attr |= QR_ATTR_CONTROL;
    }
    static const char *const gpt_oss[] = {"<|channel|>", "<|message|>", "<|start|>",
                                          "<|constrain|>", NULL};
    for (int k = 0; gpt_oss[k]; k++) {
        int32_t id = qr_vocab_find(v, gpt_oss[k], strlen(gpt_oss[k]));
        if (id >= 0) v->tokens[id].attr = QR_ATTR_USER_DEFINED;
    }
    if ((st = add_eog(v, v->eos)) || (st = add_eog(v, v->eot)) || (st = add_eog(v, v->eom)))
        return st;
    /* o200k_harmony / solar-open: "<|end|>" is not an end of generation there */
    bool has_return = false, has_call = false, has_flush = false, has_tool_response = false;
    qr_token end_id = -1, s_id = -1;
    for (int32_t i = 0; i < v->n_eog; i++) {
        const qr_token_data *t = &v->tokens[v->eog[i]];
        if (text_is(t, "<|return|>")) has_return = true;
        if (text_is(t, "<|call|>") || text_is(t, "<|calls|>")) has_call = true;
        if (text_is(t, "<|flush|>")) has_flush = true;
        if (text_is(t, "<|end|>")) end_id = v->eog[i];
        if (text_is(t, "<|tool_response>")) has_tool_response = true;
        if (text_is(t, "</s>")) s_id = v->eog[i];
    }
    if (end_id >= 0 && ((has_return && has_call) || (has_call && has_flush))) {
        remove_eog(v, end_id);
        v->tokens[end_id].attr = QR_ATTR_USER_DEFINED;
    }
    if (has_tool_response && s_id >= 0) {
        remove_eog(v, s_id);
        v->tokens[s_id].attr = QR_ATTR_NORMAL;
    }

    /* tokens matched inside the text before tokenizing: longest first */
    v->special = malloc((size_t)v->n_tokens * sizeof(*v->special));
    if (!v->special) return qr_error(QR_ERR_NOMEM, "vocabulary: out of memory");
    for (int32_t i = 0; i < v->n_tokens; i++) {
        if (v->tokens[i].attr & (QR_ATTR_CONTROL | QR_ATTR_USER_DEFINED | QR_ATTR_UNKNOWN))
            v->special[v->n_special++] = i;
    }
    qsort_r(v->special, (size_t)v->n_special, sizeof(*v->special), cmp_special, v);

    /* pieces, rendered once (llama.cpp's cache_token_to_piece) */
    strbuf pieces = {0};
    for (int32_t i = 0; i < v->n_tokens; i++) {
        v->tokens[i].piece_off = (uint32_t)pieces.n;
        if (render_piece(v, &v->tokens[i], &pieces) || pieces.n > UINT32_MAX) {
            free(pieces.data);
            return qr_error(QR_ERR_NOMEM, "vocabulary: out of memory for token pieces");
        }
        v->tokens[i].piece_len = (uint32_t)(pieces.n - v->tokens[i].piece_off);
    }
    v->piece_buf = pieces.data;

    /* Phi-3 (by general.name, as llama.cpp): special tokens eat the spaces after them */
    const char *name = qr_gguf_get_str(g, "general.name");
    if (name) {
        char lower[256];
        size_t n = strlen(name) < sizeof(lower) - 1 ? strlen(name) : sizeof(lower) - 1;
        for (size_t i = 0; i < n; i++)
            lower[i] = (char)tolower((unsigned char)name[i]);
        lower[n] = 0;
        if (strstr(lower, "phi-3") || strstr(lower, "phi3")) {
            for (int32_t i = 0; i < v->n_special; i++)
                v->tokens[v->special[i]].attr |= QR_ATTR_RSTRIP;
            const char *on[] = {"</s>"}, *off[] = {"<unk>", "<s>", "<|endoftext|>"};
            int32_t id = qr_vocab_find(v, on[0], strlen(on[0]));
            if (id >= 0) v->tokens[id].attr |= QR_ATTR_RSTRIP;
            for (int k = 0; k < 3; k++) {
                id = qr_vocab_find(v, off[k], strlen(off[k]));
                if (id >= 0) v->tokens[id].attr &= ~(uint32_t)QR_ATTR_RSTRIP;
            }
        }
    }
    return QR_OK;
}

static qr_status load_merges(qr_vocab *v, const qr_gguf_value *merges) {
    uint64_t n = merges->arr.n;
    if (n > INT32_MAX)
        return qr_error(QR_ERR_FORMAT, "vocabulary: too many merges (%llu)", (unsigned long long)n);
    size_t total = 0;
    for (uint64_t i = 0; i < n; i++) {
        const qr_gguf_value *s = &merges->arr.items[i];
        if (s->str.len > UINT32_MAX)
            return qr_error(QR_ERR_FORMAT, "vocabulary: merge %llu is too long",
                            (unsigned long long)i);
        total += s->str.len;
    }
    v->merge_buf = malloc(total + 1);
    qr_status st = qr_strmap_init(&v->merge_map, n);
    if (!v->merge_buf || st != QR_OK)
        return st != QR_OK ? st : qr_error(QR_ERR_NOMEM, "vocabulary: out of memory");
    size_t off = 0;
    for (uint64_t i = 0; i < n; i++) {
        const qr_gguf_value *s = &merges->arr.items[i];
        const char *w = s->str.ptr;
        size_t len = s->str.len;
        /* "first second", split at the first space after position 0 (llama.cpp); a merge with
         * no space maps the empty pair, which never matches */
        const char *sp = len > 1 ? memchr(w + 1, ' ', len - 1) : NULL;
        char *key = v->merge_buf + off;
        uint32_t first = 0, klen = 0;
        if (sp) {
            first = (uint32_t)(sp - w);
            memcpy(key, w, first);
            memcpy(key + first, sp + 1, len - first - 1);
            klen = (uint32_t)(len - 1);
        }
        off += klen;
        if (qr_strmap_get(&v->merge_map, key, klen, first) < 0) /* first rank wins */
            qr_strmap_put(&v->merge_map, key, klen, first, (int32_t)i);
    }
    return QR_OK;
}

qr_status qr_vocab_load(const qr_gguf *g, qr_vocab **out) {
    *out = NULL;
    qr_status st;
    const char *model = qr_gguf_get_str(g, "tokenizer.ggml.model");
    if (!model) return qr_error(QR_ERR_FORMAT, "vocabulary: missing tokenizer.ggml.model");
    qr_vocab *v = qr_calloc(1, sizeof(*v));
    if (!v) return QR_ERR_NOMEM;
    if (strcmp(model, "llama") == 0) {
        v->type = QR_VOCAB_SPM;
        v->bos = 1, v->eos = 2, v->unk = 0;
        v->add_space_prefix = true;
        v->add_bos = true;
    } else if (strcmp(model, "gpt2") == 0) {
        v->type = QR_VOCAB_BPE;
        v->bos = 11, v->eos = 11, v->unk = -1;
    } else {
        qr_vocab_free(v);
        return qr_error(QR_ERR_UNSUPPORTED,
                        "vocabulary: tokenizer.ggml.model '%s' is not supported (llama, gpt2)",
                        model);
    }
    v->eot = v->eom = v->sep = v->pad = v->mask = -1;
    v->fim_pad = v->fim_rep = v->fim_sep = -1;

    const qr_gguf_value *toks = get_array(g, "tokenizer.ggml.tokens", QR_GGUF_STRING, true, &st);
    if (!toks) goto fail;
    if (toks->arr.n == 0 || toks->arr.n > INT32_MAX) {
        st = qr_error(QR_ERR_FORMAT, "vocabulary: tokenizer.ggml.tokens has %llu entries",
                      (unsigned long long)toks->arr.n);
        goto fail;
    }
    int32_t n = (int32_t)toks->arr.n;
    v->n_tokens = n;

    const qr_gguf_value *scores = NULL;
    if (qr_gguf_find_key(g, "tokenizer.ggml.scores") >= 0) {
        const qr_gguf_value *a = qr_gguf_get_arr(g, "tokenizer.ggml.scores");
        if (!a || (a->arr.type != QR_GGUF_FLOAT32 && a->arr.type != QR_GGUF_INT32)) {
            st = qr_error(QR_ERR_FORMAT,
                          "vocabulary: tokenizer.ggml.scores must be an array of float32/int32");
            goto fail;
        }
        scores = a;
    }
    const qr_gguf_value *types =
        get_array(g, "tokenizer.ggml.token_type", QR_GGUF_INT32, false, &st);
    if (st != QR_OK) goto fail;
    if ((scores && scores->arr.n < (uint64_t)n) || (types && types->arr.n < (uint64_t)n)) {
        st = qr_error(QR_ERR_FORMAT, "vocabulary: %s has %llu entries for %d tokens",
                      scores && scores->arr.n < (uint64_t)n ? "tokenizer.ggml.scores"
                                                            : "tokenizer.ggml.token_type",
                      (unsigned long long)(scores && scores->arr.n < (uint64_t)n ? scores->arr.n
                                                                                 : types->arr.n),
                      n);
        goto fail;
    }

    /* token texts */
    v->tokens = calloc((size_t)n, sizeof(*v->tokens));
    size_t text_total = 0;
    for (int32_t i = 0; i < n; i++) {
        uint64_t len = toks->arr.items[i].str.len;
        if (len > INT32_MAX) {
            st = qr_error(QR_ERR_FORMAT, "vocabulary: token %d is too long", i);
            goto fail;
        }
        text_total += (len ? len : 32) + 1;
    }
    v->text_buf = malloc(text_total);
    if (!v->tokens || !v->text_buf) {
        st = qr_error(QR_ERR_NOMEM, "vocabulary: out of memory for %d tokens", n);
        goto fail;
    }
    if ((st = qr_strmap_init(&v->token_map, (uint64_t)n)) != QR_OK) goto fail;
    size_t off = 0;
    for (int32_t i = 0; i < n; i++) {
        qr_token_data *t = &v->tokens[i];
        const qr_gguf_value *s = &toks->arr.items[i];
        char *dst = v->text_buf + off;
        if (s->str.len == 0) { /* llama.cpp renames empty tokens */
            t->len = (uint32_t)snprintf(dst, 32, "[EMPTY_%d]", i);
        } else {
            memcpy(dst, s->str.ptr, s->str.len);
            dst[s->str.len] = 0;
            t->len = (uint32_t)s->str.len;
        }
        t->text = dst;
        off += t->len + 1;
        t->score = scores ? (float)qr_gguf_arr_f64(scores, (uint64_t)i) : 0.0f;
        t->attr = QR_ATTR_NORMAL;
        if (types) {
            switch (qr_gguf_arr_i64(types, (uint64_t)i)) {
            case TT_UNKNOWN:
                t->attr = QR_ATTR_UNKNOWN;
                break;
            case TT_UNUSED:
                t->attr = QR_ATTR_UNUSED;
                break;
            case TT_NORMAL:
                t->attr = QR_ATTR_NORMAL;
                break;
            case TT_CONTROL:
                t->attr = QR_ATTR_CONTROL;
                break;
            case TT_USER_DEFINED:
                t->attr = QR_ATTR_USER_DEFINED;
                break;
            case TT_BYTE:
                t->attr = QR_ATTR_BYTE;
                break;
            default:
                t->attr = 0;
                break;
            }
        }
        qr_strmap_put(&v->token_map, t->text, t->len, 0, i);
    }

    if (v->type == QR_VOCAB_BPE) {
        const qr_gguf_value *merges =
            get_array(g, "tokenizer.ggml.merges", QR_GGUF_STRING, true, &st);
        if (!merges) goto fail;
        if ((st = load_merges(v, merges)) != QR_OK) goto fail;
        const char *pre = qr_gguf_get_str(g, "tokenizer.ggml.pre");
        snprintf(v->pre_name, sizeof(v->pre_name), "%s", pre ? pre : "default");
        qr_pretok_opts opts;
        bool known;
        if ((st = qr_pretok_create(pre, &v->pretok, &opts, &known)) != QR_OK) goto fail;
        if (!pre) {
            fprintf(stderr, "quarrel: warning: the vocabulary has no tokenizer.ggml.pre, using "
                            "the default pre-tokenizer; tokenization quality may suffer\n");
        } else if (!known) {
            /* once per load: a vocabulary is loaded once per model */
            fprintf(stderr,
                    "quarrel: warning: unknown pre-tokenizer '%s', using the default one; "
                    "tokenization may differ from llama.cpp\n",
                    pre);
        }
        v->clean_spaces = opts.clean_spaces;
        v->ignore_merges = opts.ignore_merges;
        v->add_bos = opts.add_bos;
        for (int b = 0; b < 256; b++)
            v->byte_enc_len[b] = (uint8_t)qr_utf8_encode(qr_byte_to_cp((uint8_t)b), v->byte_enc[b]);
    }
    read_bool(g, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix);

    static const struct {
        const char *key;
        size_t field;
    } specials[] = {
        {"tokenizer.ggml.bos_token_id", offsetof(qr_vocab, bos)},
        {"tokenizer.ggml.eos_token_id", offsetof(qr_vocab, eos)},
        {"tokenizer.ggml.eot_token_id", offsetof(qr_vocab, eot)},
        {"tokenizer.ggml.eom_token_id", offsetof(qr_vocab, eom)},
        {"tokenizer.ggml.unknown_token_id", offsetof(qr_vocab, unk)},
        {"tokenizer.ggml.seperator_token_id", offsetof(qr_vocab, sep)},
        {"tokenizer.ggml.padding_token_id", offsetof(qr_vocab, pad)},
        {"tokenizer.ggml.mask_token_id", offsetof(qr_vocab, mask)},
        {"tokenizer.ggml.fim_pad_token_id", offsetof(qr_vocab, fim_pad)},
        {"tokenizer.ggml.fim_rep_token_id", offsetof(qr_vocab, fim_rep)},
        {"tokenizer.ggml.fim_sep_token_id", offsetof(qr_vocab, fim_sep)},
    };
    for (size_t i = 0; i < sizeof(specials) / sizeof(specials[0]); i++) {
        qr_token *id = (qr_token *)((char *)v + specials[i].field);
        if ((st = read_special(g, specials[i].key, n, id)) != QR_OK) goto fail;
    }
    read_bool(g, "tokenizer.ggml.add_bos_token", &v->add_bos);
    read_bool(g, "tokenizer.ggml.add_eos_token", &v->add_eos);

    if ((st = finish_special(v, g)) != QR_OK) goto fail;
    *out = v;
    return QR_OK;
fail:
    qr_vocab_free(v);
    return st;
}

/* ---------------------------------------------------------------------------------------- */
/* tokenize                                                                                 */

typedef struct fragment {
    qr_token token; /* -1: raw text [off, off + len) */
    size_t off, len;
} fragment;

typedef struct fragbuf {
    fragment *data;
    size_t n, cap;
} fragbuf;

static qr_status frag_push(fragbuf *b, qr_token token, size_t off, size_t len) {
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        fragment *d = realloc(b->data, cap * sizeof(*d));
        if (!d) return qr_error(QR_ERR_NOMEM, "tokenizer: out of memory");
        b->data = d;
        b->cap = cap;
    }
    b->data[b->n++] = (fragment){token, off, len};
    return QR_OK;
}

static bool c_isspace(char c) {
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/* llama.cpp's tokenizer_st_partition: cut the special tokens out of the text, longest first.
 * Control and unknown tokens only when parse_special; user-defined ones always. */
static qr_status partition(const qr_vocab *v, const char *text, size_t len, bool parse_special,
                           fragbuf *frags) {
    fragbuf other = {0};
    qr_status st = QR_OK;
    frags->n = 0;
    if (len > 0) st = frag_push(frags, -1, 0, len);
    for (int32_t s = 0; st == QR_OK && s < v->n_special; s++) {
        const qr_token_data *t = &v->tokens[v->special[s]];
        if (!parse_special && (t->attr & (QR_ATTR_CONTROL | QR_ATTR_UNKNOWN))) continue;
        bool any = false;
        for (size_t f = 0; f < frags->n && !any; f++) {
            const fragment *fr = &frags->data[f];
            any = fr->token < 0 && memmem(text + fr->off, fr->len, t->text, t->len) != NULL;
        }
        if (!any) continue;
        other.n = 0;
        for (size_t f = 0; st == QR_OK && f < frags->n; f++) {
            fragment fr = frags->data[f];
            if (fr.token >= 0) {
                st = frag_push(&other, fr.token, 0, 0);
                continue;
            }
            size_t off = fr.off, rest = fr.len;
            while (st == QR_OK && rest > 0) {
                const char *m = memmem(text + off, rest, t->text, t->len);
                if (!m) {
                    st = frag_push(&other, -1, off, rest);
                    break;
                }
                size_t mpos = (size_t)(m - text);
                size_t left = mpos - off;
                if (t->attr & QR_ATTR_LSTRIP)
                    while (left > 0 && c_isspace(text[off + left - 1]))
                        left--;
                if (left > 0 && (st = frag_push(&other, -1, off, left)) != QR_OK) break;
                if ((st = frag_push(&other, v->special[s], 0, 0)) != QR_OK) break;
                size_t end = fr.off + fr.len;
                off = mpos + t->len;
                rest = end - off;
                if (t->attr & QR_ATTR_RSTRIP)
                    while (rest > 0 && c_isspace(text[off]))
                        off++, rest--;
            }
        }
        fragbuf tmp = *frags;
        *frags = other;
        other = tmp;
    }
    free(other.data);
    return st;
}

/* SPM text: an optional leading space, then every ' ' escaped as U+2581. */
static qr_status spm_fragment(const qr_vocab *v, const char *text, size_t len, bool prefix,
                              qr_tokbuf *out) {
    size_t n_space = prefix ? 1 : 0;
    for (size_t i = 0; i < len; i++)
        n_space += text[i] == ' ';
    size_t total = len + (prefix ? 1 : 0) + 2 * n_space;
    char *buf = malloc(total ? total : 1);
    if (!buf) return qr_error(QR_ERR_NOMEM, "tokenizer: out of memory for %zu bytes", total);
    size_t o = 0;
    if (prefix) {
        memcpy(buf, SPACE_ESC, 3);
        o = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(buf + o, SPACE_ESC, 3);
            o += 3;
        } else {
            buf[o++] = text[i];
        }
    }
    qr_status st = qr_spm_tokenize(v, buf, o, out);
    free(buf);
    return st;
}

qr_status qr_vocab_tokenize(const qr_vocab *v, const char *text, size_t len, bool add_special,
                            bool parse_special, qr_token *tokens, int32_t n_max,
                            int32_t *n_tokens) {
    *n_tokens = 0;
    if (!text && len > 0) return qr_error(QR_ERR_INVALID_ARG, "tokenize: text is NULL");
    if (n_max < 0 || (n_max > 0 && !tokens))
        return qr_error(QR_ERR_INVALID_ARG, "tokenize: bad output buffer (n_max = %d)", n_max);
    bool add_bos = add_special && v->add_bos, add_eos = add_special && v->add_eos;
    if ((add_bos && v->bos < 0) || (add_eos && v->eos < 0))
        return qr_error(QR_ERR_UNSUPPORTED,
                        "tokenize: the vocabulary asks for a %s token but has none",
                        add_bos && v->bos < 0 ? "BOS" : "EOS");
    fragbuf frags = {0};
    qr_tokbuf out = {0};
    qr_status st = partition(v, text, len, parse_special, &frags);
    if (st == QR_OK && add_bos) st = qr_tokbuf_push(&out, v->bos);
    bool prev_special = true; /* SPM: the first text gets the space prefix */
    for (size_t f = 0; st == QR_OK && f < frags.n; f++) {
        const fragment *fr = &frags.data[f];
        if (fr->token >= 0) {
            st = qr_tokbuf_push(&out, fr->token);
            prev_special = true;
        } else if (v->type == QR_VOCAB_SPM) {
            st =
                spm_fragment(v, text + fr->off, fr->len, v->add_space_prefix && prev_special, &out);
            prev_special = false;
        } else {
            st = qr_bpe_tokenize(v, text + fr->off, fr->len, &out);
        }
    }
    if (st == QR_OK && add_eos) st = qr_tokbuf_push(&out, v->eos);
    free(frags.data);
    if (st == QR_OK && out.n > (size_t)INT32_MAX)
        st = qr_error(QR_ERR_INVALID_ARG, "tokenize: %zu tokens do not fit an int32_t", out.n);
    if (st == QR_OK) {
        *n_tokens = (int32_t)out.n;
        if (out.n > (size_t)n_max) {
            st = qr_error(QR_ERR_BUFFER_SMALL, "tokenize: %zu tokens do not fit a buffer of %d",
                          out.n, n_max);
        } else if (out.n > 0) {
            memcpy(tokens, out.data, out.n * sizeof(*tokens));
        }
    }
    free(out.data);
    return st;
}

/* ---------------------------------------------------------------------------------------- */
/* pieces and detokenize                                                                    */

static int32_t copy_piece(const qr_vocab *v, qr_token t, char *buf, int32_t len, int lstrip,
                          bool special) {
    if (t < 0 || t >= v->n_tokens) return 0;
    const qr_token_data *d = &v->tokens[t];
    if (!special && (d->attr & (QR_ATTR_UNKNOWN | QR_ATTR_CONTROL))) return 0;
    const char *p = v->piece_buf + d->piece_off;
    int32_t n = (int32_t)d->piece_len;
    for (int i = 0; i < lstrip && n > 0 && *p == ' '; i++)
        p++, n--;
    if (len < n) return -n;
    if (n > 0) memcpy(buf, p, (size_t)n);
    return n;
}

int32_t qr_vocab_token_to_piece(const qr_vocab *v, qr_token t, char *buf, int32_t len,
                                bool special) {
    return copy_piece(v, t, buf, len, 0, special);
}

int32_t qr_vocab_detokenize(const qr_vocab *v, const qr_token *tokens, int32_t n, char *text,
                            int32_t len, bool remove_special, bool unparse_special) {
    if (len < 0) len = 0;
    if (n < 0) n = 0;
    int32_t avail = len;
    int64_t total = 0;
    bool remove_space = v->add_space_prefix;
    if (remove_special && v->add_bos && n > 0 && tokens[0] == v->bos) {
        remove_space = false;
        n--;
        tokens++;
    }
    if (remove_special && v->add_eos && n > 0 && tokens[n - 1] == v->eos) n--;
    char *p = text;
    for (int32_t i = 0; i < n; i++) {
        int32_t c = copy_piece(v, tokens[i], p, avail, remove_space ? 1 : 0, unparse_special);
        remove_space = false;
        if (c < 0) {
            avail = 0;
            total -= c;
        } else if (c > 0) {
            avail -= c;
            p += c;
            total += c;
        }
    }
    if (total > INT32_MAX) return INT32_MIN;
    if (total > len) return -(int32_t)total;
    int32_t t = (int32_t)total;
    if (v->clean_spaces && t > 0) {
        /* llama.cpp's three passes: " ?" " !" " ." " ," lose the space; a lone " ' " loses
         * both spaces; " 's" " 'm" " 're" " 've" lose the space */
        int32_t t1 = t;
        t = 1;
        for (int32_t i = 1; i < t1; i++) {
            char x = text[i];
            if (text[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) t--;
            text[t++] = x;
        }
        int32_t t2 = t;
        t = 1;
        for (int32_t i = 1; i < t2; i++) {
            char x = text[i];
            if (x == '\'' && i + 1 < t2 && text[i - 1] == ' ' && text[i + 1] == ' ') {
                t--;
                text[++i] = '\0';
            }
            text[t++] = x;
        }
        int32_t t3 = t;
        t = 1;
        for (int32_t i = 1; i < t3; i++) {
            char x = text[i];
            if (text[i - 1] == ' ' && x == '\'' && i + 1 < t3) {
                char x1 = text[i + 1];
                if (x1 == 's' || x1 == 'm') {
                    t--;
                } else if (i + 2 < t3 && ((x1 == 'r' && text[i + 2] == 'e') ||
                                          (x1 == 'v' && text[i + 2] == 'e'))) {
                    t--;
                }
            }
            text[t++] = x;
        }
    }
    return t;
}

/* ---------------------------------------------------------------------------------------- */
/* accessors                                                                                */

int32_t qr_vocab_n_tokens(const qr_vocab *v) {
    return v->n_tokens;
}
const char *qr_vocab_token_text(const qr_vocab *v, qr_token t) {
    return t >= 0 && t < v->n_tokens ? v->tokens[t].text : NULL;
}
qr_token qr_vocab_bos(const qr_vocab *v) {
    return v->bos;
}
qr_token qr_vocab_eos(const qr_vocab *v) {
    return v->eos;
}
qr_token qr_vocab_eot(const qr_vocab *v) {
    return v->eot;
}
bool qr_vocab_is_eog(const qr_vocab *v, qr_token t) {
    for (int32_t i = 0; t >= 0 && i < v->n_eog; i++)
        if (v->eog[i] == t) return true;
    return false;
}
bool qr_vocab_is_control(const qr_vocab *v, qr_token t) {
    return t >= 0 && t < v->n_tokens && (v->tokens[t].attr & QR_ATTR_CONTROL);
}
bool qr_vocab_add_bos(const qr_vocab *v) {
    return v->add_bos;
}
bool qr_vocab_add_eos(const qr_vocab *v) {
    return v->add_eos;
}
