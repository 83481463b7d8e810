/* dry.c - DRY, "don't repeat yourself" (pi6am's sampler from koboldcpp PR 982), as llama.cpp's
 * llama_sampler_dry. Over the last n accepted tokens, each earlier place where the text matches
 * the most recent L tokens (its longest repeated suffix there) marks the token that followed
 * it: emitting that token again would extend the repetition to L + 1. Such a token loses
 *   multiplier * base^(L - allowed_length)   from its logit, for its largest L >= allowed_length
 * (the exponent clamped so the power stays a finite float). Sequence breakers cut repetitions:
 * a match never reaches back across the most recent breaker, and a token that alone is a
 * breaker is never penalised.
 *
 * Breakers are strings; llama.cpp's get_overlapping_token_sequences turns them into token
 * sequences: every token whose text contains the string is a breaker by itself, and every token
 * whose text ends with a proper prefix of the string is a breaker "head" followed by the
 * tokenization of the rest (its "tail", at most QR_DRY_MAX_TAIL tokens; strings are cut at
 * QR_DRY_MAX_CHARS bytes). qr_dry_breakers_build does that against any vocabulary given as two
 * callbacks, so the sampler module needs no tokenizer and the tests can use a made-up one.
 *
 * The suffix matches are the Z-array of the reversed window (z[k] = how far the tokens k back
 * agree with the most recent ones), linear in the window. */
#include "sample/sample_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- breakers ---- */

static bool same_tail(const qr_dry_breaker *b, qr_token head, const qr_token *tail, int32_t n) {
    return b->head == head && b->n_tail == n &&
           (n == 0 || !memcmp(b->tail, tail, (size_t)n * sizeof *tail));
}

static qr_status add_breaker(qr_dry_breaker **list, int32_t *n, int32_t *cap, qr_token head,
                             const qr_token *tail, int32_t n_tail) {
    for (int32_t i = *n - 1; i >= 0 && (*list)[i].head == head; i--) /* heads come in order */
        if (same_tail(&(*list)[i], head, tail, n_tail)) return QR_OK;
    if (*n == *cap) {
        int32_t c = *cap ? *cap * 2 : 64;
        qr_dry_breaker *l = realloc(*list, (size_t)c * sizeof *l);
        if (!l) return qr_error(QR_ERR_NOMEM, "DRY: out of memory for the sequence breakers");
        *list = l;
        *cap = c;
    }
    qr_dry_breaker *b = &(*list)[(*n)++];
    memset(b, 0, sizeof *b);
    b->head = head;
    b->n_tail = n_tail;
    if (n_tail > 0) memcpy(b->tail, tail, (size_t)n_tail * sizeof *tail);
    return QR_OK;
}

/* One breaker string against one token text. tails[i] caches the tokenization of str + i
 * (n_tails[i] < 0: not yet done). */
static qr_status match_text(const qr_dry_vocab *v, qr_token t, const char *word, size_t wlen,
                            const char *str, size_t slen, qr_token (*tails)[QR_DRY_MAX_TAIL],
                            int32_t *n_tails, qr_dry_breaker **list, int32_t *n, int32_t *cap) {
    for (size_t pos = 0; pos < wlen; pos++) { /* (a text holding str was handled before) */
        if (word[pos] != str[0]) continue;
        size_t i = 1;
        while (i < slen && pos + i < wlen && word[pos + i] == str[i])
            i++;
        if (pos + i < wlen) continue; /* a mismatch before the text's end */
        /* the text ends with str[0..i): the head of a breaker whose tail spells str[i..] */
        if (n_tails[i] < 0) {
            qr_token buf[2 * QR_DRY_MAX_CHARS];
            int32_t m = v->tokenize(v->user, str + i, slen - i, buf, 2 * QR_DRY_MAX_CHARS);
            if (m < 0)
                return qr_error(QR_ERR_INVALID_ARG,
                                "DRY: cannot tokenize the rest of sequence breaker '%s'", str);
            n_tails[i] = m < QR_DRY_MAX_TAIL ? m : QR_DRY_MAX_TAIL;
            memcpy(tails[i], buf, (size_t)n_tails[i] * sizeof *buf);
        }
        qr_status st = add_breaker(list, n, cap, t, tails[i], n_tails[i]);
        if (st) return st;
    }
    return QR_OK;
}

qr_status qr_dry_breakers_build(const qr_dry_vocab *v, const char *const *strings,
                                int32_t n_strings, qr_dry_breaker **out, int32_t *n_out) {
    *out = NULL;
    *n_out = 0;
    int32_t n = 0, cap = 0;
    qr_dry_breaker *list = NULL;
    /* the strings, cut to QR_DRY_MAX_CHARS bytes; empty ones are skipped as in llama.cpp */
    char(*strs)[QR_DRY_MAX_CHARS + 1] = qr_calloc((size_t)n_strings + 1, sizeof *strs);
    qr_token(*tails)[QR_DRY_MAX_CHARS][QR_DRY_MAX_TAIL] =
        qr_malloc(((size_t)n_strings + 1) * sizeof *tails);
    int32_t(*n_tails)[QR_DRY_MAX_CHARS] = qr_malloc(((size_t)n_strings + 1) * sizeof *n_tails);
    size_t wcap = 256;
    char *word = qr_malloc(wcap);
    qr_status st = strs && tails && n_tails && word ? QR_OK : QR_ERR_NOMEM;
    for (int32_t s = 0; st == QR_OK && s < n_strings; s++) {
        if (strings[s]) snprintf(strs[s], sizeof strs[s], "%s", strings[s]);
        for (int32_t i = 0; i < QR_DRY_MAX_CHARS; i++)
            n_tails[s][i] = -1;
    }
    for (qr_token t = 0; st == QR_OK && t < v->n_vocab; t++) {
        int32_t len = v->piece(v->user, t, word, (int32_t)wcap);
        if (len < 0) { /* -(needed) */
            char *w = realloc(word, (size_t)-len);
            if (!w) {
                st = qr_error(QR_ERR_NOMEM, "DRY: out of memory for a token's text");
                break;
            }
            word = w;
            wcap = (size_t)-len;
            len = v->piece(v->user, t, word, (int32_t)wcap);
            if (len < 0) len = 0;
        }
        for (int32_t s = 0; st == QR_OK && s < n_strings; s++) {
            size_t slen = strlen(strs[s]);
            if (slen == 0) continue;
            const char *hit = NULL;
            for (size_t p = 0; !hit && p + slen <= (size_t)len; p++)
                if (!memcmp(word + p, strs[s], slen)) hit = word + p;
            if (hit)
                st = add_breaker(&list, &n, &cap, t, NULL, 0);
            else
                st = match_text(v, t, word, (size_t)len, strs[s], slen, tails[s], n_tails[s], &list,
                                &n, &cap);
        }
    }
    free(strs);
    free(tails);
    free(n_tails);
    free(word);
    if (st != QR_OK) {
        free(list);
        return st;
    }
    *out = list;
    *n_out = n;
    return QR_OK;
}

/* ---- the stage ---- */

typedef struct dry_stage {
    qr_stage base;
    int32_t n_vocab;
    float multiplier, base_;
    int32_t allowed, last_n;  /* last_n -1: the whole history */
    qr_dry_breaker *breakers; /* sorted by head */
    int32_t n_breakers;
    int32_t *first; /* per token: index of its first breaker, -1 if none; n_vocab entries */
    qr_token *hist; /* the window, oldest first: hist[0..len) */
    size_t len, cap;
    int32_t *z;        /* Z-array of the reversed window, cap entries */
    int32_t *max_rep;  /* per token: the longest repetition it would extend, + 1 (0: none) */
    qr_token *touched; /* the tokens with max_rep set, cap entries */
} dry_stage;

/* the token i places before the most recent one */
static inline qr_token rat(const dry_stage *s, size_t i) {
    return s->hist[s->len - 1 - i];
}

/* How many of the most recent n tokens a repetition may reach back: up to the newest complete
 * breaker (the longest one ending there). */
static int32_t repeat_limit(const dry_stage *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        qr_token t = rat(s, i);
        int32_t b = s->first[t], longest = -1;
        if (b < 0) continue;
        for (; b < s->n_breakers && s->breakers[b].head == t; b++) {
            const qr_dry_breaker *br = &s->breakers[b];
            if (br->n_tail <= longest || (size_t)br->n_tail > i) continue;
            int32_t o = 0; /* the tail lies after the head: towards the most recent end */
            while (o < br->n_tail && br->tail[o] == rat(s, i - (size_t)o - 1))
                o++;
            if (o == br->n_tail) longest = br->n_tail;
        }
        if (longest >= 0) return (int32_t)i - longest;
    }
    return (int32_t)n;
}

static bool alone_breaks(const dry_stage *s, qr_token t) {
    for (int32_t b = s->first[t]; b >= 0 && b < s->n_breakers && s->breakers[b].head == t; b++)
        if (s->breakers[b].n_tail == 0) return true;
    return false;
}

static qr_status dry_apply(qr_stage *self, qr_sample_state *st) {
    dry_stage *s = (dry_stage *)self;
    size_t n = s->len;
    if (s->last_n > 0 && n > (size_t)s->last_n) n = (size_t)s->last_n;
    if ((int64_t)n <= s->allowed) return QR_OK;
    int32_t limit = repeat_limit(s, n);
    if (limit < s->allowed) return QR_OK;

    /* z[k], 1 <= k < n: how many of the most recent tokens agree with those k further back */
    int32_t *z = s->z;
    size_t l = 0, r = 0; /* [l, r): the rightmost match window found so far */
    for (size_t k = 1; k < n; k++) {
        size_t m = 0;
        if (k < r) {
            m = (size_t)z[k - l];
            if (m > r - k) m = r - k;
        }
        while (k + m < n && rat(s, m) == rat(s, k + m))
            m++;
        z[k] = (int32_t)m;
        if (k + m > r) {
            l = k;
            r = k + m;
        }
    }
    /* the token that followed each repeat (k - 1 back) would extend it */
    size_t n_touched = 0;
    for (size_t k = 1; k < n; k++) {
        int32_t rep = z[k] < limit ? z[k] : limit;
        if (rep < s->allowed) continue;
        qr_token t = rat(s, k - 1);
        if (s->max_rep[t] == 0) s->touched[n_touched++] = t;
        if (rep + 1 > s->max_rep[t]) s->max_rep[t] = rep + 1;
    }
    int32_t max_exp = 0; /* keeps base^exp below FLT_MAX: log(FLT_MAX) = 88.7228391 */
    if (s->base_ > 1.000001f) max_exp = (int32_t)(88.7228391f / logf(s->base_));
    for (size_t i = 0; i < n_touched; i++) {
        qr_token t = s->touched[i];
        int32_t e = s->max_rep[t] - 1 - s->allowed;
        s->max_rep[t] = 0;
        if (alone_breaks(s, t)) continue;
        if (max_exp > 0 && e > max_exp) e = max_exp;
        float penalty = s->multiplier * powf(s->base_, (float)e);
        if (!st->gathered) {
            st->logits[t] -= penalty;
            continue;
        }
        for (size_t j = 0; j < st->size; j++)
            if (st->data[j].id == t) st->data[j].logit -= penalty;
        st->sorted = false;
    }
    return QR_OK;
}

static bool reserve(dry_stage *s, size_t cap) {
    qr_token *h = realloc(s->hist, cap * sizeof *h);
    if (h) s->hist = h;
    int32_t *z = h ? realloc(s->z, cap * sizeof *z) : NULL;
    if (z) s->z = z;
    qr_token *t = z ? realloc(s->touched, cap * sizeof *t) : NULL;
    if (t) s->touched = t;
    if (!t) return false;
    s->cap = cap;
    return true;
}

static void dry_accept(qr_stage *self, qr_token token) {
    dry_stage *s = (dry_stage *)self;
    if (token < 0 || token >= s->n_vocab) return;
    if (s->len == s->cap) {
        if (s->last_n > 0) { /* keep the newest last_n - 1 at the front, then append */
            size_t keep = (size_t)s->last_n - 1;
            memmove(s->hist, s->hist + s->len - keep, keep * sizeof *s->hist);
            s->len = keep;
        } else if (!reserve(s, s->cap * 2)) {
            return; /* out of memory: the history simply stops growing */
        }
    }
    s->hist[s->len++] = token;
}

static void dry_reset(qr_stage *self) {
    ((dry_stage *)self)->len = 0;
}

static void dry_free(qr_stage *self) {
    dry_stage *s = (dry_stage *)self;
    free(s->breakers);
    free(s->first);
    free(s->hist);
    free(s->z);
    free(s->max_rep);
    free(s->touched);
    free(s);
}

static const qr_stage_vtable dry_vt = {"dry", dry_apply, dry_accept, dry_reset};

static int cmp_head(const void *a, const void *b) {
    qr_token x = ((const qr_dry_breaker *)a)->head, y = ((const qr_dry_breaker *)b)->head;
    return (x > y) - (x < y);
}

qr_stage *qr_stage_dry(int32_t n_vocab, float multiplier, float base, int32_t allowed_length,
                       int32_t last_n, const qr_dry_breaker *breakers, int32_t n_breakers) {
    dry_stage *s = qr_calloc(1, sizeof *s);
    if (!s) return NULL;
    s->base.vt = &dry_vt;
    s->base.free_fn = dry_free;
    s->n_vocab = n_vocab;
    s->multiplier = multiplier;
    s->base_ = base;
    s->allowed = allowed_length;
    s->last_n = last_n;
    s->first = qr_malloc((size_t)n_vocab * sizeof *s->first);
    s->max_rep = qr_calloc((size_t)n_vocab, sizeof *s->max_rep);
    s->breakers = n_breakers > 0 ? qr_malloc((size_t)n_breakers * sizeof *breakers) : NULL;
    /* a bounded window needs 2 last_n - 1 slots at most between compactions */
    size_t cap = last_n > 0 ? 2 * (size_t)last_n : 256;
    if (!s->first || !s->max_rep || (n_breakers > 0 && !s->breakers) || !reserve(s, cap)) {
        dry_free(&s->base);
        qr_error(QR_ERR_NOMEM, "DRY: out of memory");
        return NULL;
    }
    for (int32_t i = 0; i < n_vocab; i++)
        s->first[i] = -1;
    if (n_breakers > 0) {
        memcpy(s->breakers, breakers, (size_t)n_breakers * sizeof *breakers);
        qsort(s->breakers, (size_t)n_breakers, sizeof *breakers, cmp_head);
    }
    s->n_breakers = n_breakers;
    for (int32_t b = n_breakers - 1; b >= 0; b--) {
        qr_token h = s->breakers[b].head;
        if (h >= 0 && h < n_vocab) s->first[h] = b;
    }
    return &s->base;
}
