/* grammar_stage.c - the grammar sampler stage: llama.cpp's grammar sampler
 * (llama_grammar_apply_impl / llama_grammar_accept_impl in src/llama-grammar.cpp) as a filter
 * on the sample state.
 *
 * Which tokens are allowed, as llama.cpp: an end-of-generation token only where the grammar may
 * end; a token whose text (token_to_piece with special tokens rendered) is empty or starts with
 * a NUL byte never; any other token when the grammar accepts its bytes from the current state
 * (a token may end inside a UTF-8 character, the next one finishes it). The grammar advances
 * with the tokens the sampler picks (qr_stage_grammar_advance), not with prompt tokens.
 *
 * Speed: masking the whole vocabulary costs a walk over every token's text, but a sampler
 * mostly needs the best few tokens only. So the stage does not mask: it installs a filter that
 * gathering consults in descending logit order (qr_token_filter in sample_internal.h), and the
 * whole-vocabulary mask (one walk over the texts sorted as a trie, qr_grammar_matcher_mask) runs
 * only when a later stage needs every token. The texts are decoded once, at creation.
 *
 * Lazy grammars (tool calls), as llama.cpp's: until a trigger word appears in the generated
 * text, or a trigger pattern (PCRE2) matches it, nothing is constrained and the text is
 * buffered; then the grammar is fed the buffered text from the trigger on (the pattern's first
 * non-empty capture group, else the match start), token by token as they were generated. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "grammar/grammar.h"
#include "sample/sample_internal.h"

#include <math.h>
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

enum { KIND_TEXT = 0, KIND_EOG = 1, KIND_NEVER = 2 };

typedef struct buffered_token {
    qr_token token;
    size_t start, end; /* its bytes in the trigger buffer */
} buffered_token;

/* Whole-vocabulary masks by grammar state: a JSON document comes back to the same few states
 * (inside a string, after a comma, ...), so most full masks are a copy. */
#define N_CACHED 32
#define MAX_KEY 64 /* states with more stacks are not cached */
typedef struct cached_mask {
    uint32_t ids[MAX_KEY]; /* sorted */
    size_t n;              /* 0: empty slot */
    qr_utf8_partial partial;
    uint64_t last_use;
    int64_t n_allowed;
    uint8_t *allowed; /* n_vocab */
    int32_t *list;    /* the n_allowed ids */
    int64_t list_cap;
} cached_mask;

typedef struct grammar_stage {
    qr_stage base;
    qr_grammar *grammar;
    qr_grammar_matcher *m;
    qr_grammar_tokens *tokens; /* decoded texts; bytes of every token */
    int32_t n_vocab;
    uint8_t *kind;
    uint8_t *allowed; /* the full mask's scratch */
    int32_t *list;    /* the allowed ids' scratch (every testable token and every EOG) */
    int32_t *eog;     /* the end-of-generation tokens */
    int32_t n_eog;
    qr_token_filter filter;
    bool broken; /* a token the grammar cannot accept was accepted: refuse to go on */
    cached_mask cache[N_CACHED];
    uint64_t clock;
    cached_mask *hit; /* the current state's cached mask, or NULL */
    uint32_t key[MAX_KEY];
    size_t key_n;
    qr_utf8_partial key_partial;
    /* lazy */
    bool lazy, awaiting;
    char **words;
    int32_t n_words;
    pcre2_code **patterns;
    int32_t n_patterns;
    pcre2_match_data *match;
    char *buf;
    size_t buf_n, buf_cap;
    buffered_token *buffered;
    size_t n_buffered, cap_buffered;
} grammar_stage;

static const char *piece_of(const grammar_stage *s, qr_token t, size_t *n) {
    const qr_grammar_tokens *tk = s->tokens;
    *n = tk->byte_off[t + 1] - tk->byte_off[t];
    return tk->bytes + tk->byte_off[t];
}

static bool allow(void *ctx, int32_t id) {
    grammar_stage *s = ctx;
    if (s->hit) return s->hit->allowed[id];
    switch (s->kind[id]) {
    case KIND_EOG:
        return qr_grammar_matcher_can_end(s->m);
    case KIND_NEVER:
        return false;
    default:
        return qr_grammar_matcher_allows_token(s->m, s->tokens, id);
    }
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Look the current state up in the cache: s->hit is its entry or NULL; s->key holds the
 * state (s->key_n stacks, MAX_KEY + 1: too many to cache). */
static void look_up(grammar_stage *s) {
    s->hit = NULL;
    s->key_n = qr_grammar_matcher_state(s->m, s->key, MAX_KEY, &s->key_partial);
    if (s->key_n > MAX_KEY) return;
    qsort(s->key, s->key_n, sizeof *s->key, cmp_u32);
    for (int i = 0; i < N_CACHED; i++) {
        cached_mask *c = &s->cache[i];
        if (c->n == s->key_n && c->partial.value == s->key_partial.value &&
            c->partial.n_remain == s->key_partial.n_remain &&
            memcmp(c->ids, s->key, s->key_n * sizeof *s->key) == 0) {
            c->last_use = ++s->clock;
            s->hit = c;
            return;
        }
    }
}

/* The current state's allowed tokens, a byte per token and the list of their ids, from the
 * cache or computed (one trie walk, qr_grammar_matcher_allowed) and cached; false on failure. */
static bool state_allowed(grammar_stage *s, const uint8_t **mask, const int32_t **ids,
                          int64_t *n_allowed) {
    cached_mask *slot = s->hit;
    if (!slot) {
        int32_t *list = s->list;
        int64_t k = qr_grammar_matcher_allowed(s->m, s->tokens, list);
        if (k < 0) return false;
        if (qr_grammar_matcher_can_end(s->m))
            for (int32_t i = 0; i < s->n_eog; i++)
                list[k++] = s->eog[i];
        uint8_t *allowed = s->allowed;
        if (s->key_n <= MAX_KEY) { /* cache it in the least recently used slot */
            cached_mask *oldest = &s->cache[0];
            for (int i = 1; i < N_CACHED; i++)
                if (s->cache[i].last_use < oldest->last_use) oldest = &s->cache[i];
            if (!oldest->allowed) oldest->allowed = malloc((size_t)s->n_vocab);
            if (oldest->allowed && (!oldest->list || oldest->list_cap < k)) {
                int32_t *l = realloc(oldest->list, (size_t)(k + 1) * sizeof *l);
                if (l) oldest->list = l, oldest->list_cap = k;
            }
            if (oldest->allowed && oldest->list && oldest->list_cap >= k) {
                slot = oldest;
                memcpy(slot->list, list, (size_t)k * sizeof *list);
                memcpy(slot->ids, s->key, s->key_n * sizeof *s->key);
                slot->n = s->key_n;
                slot->partial = s->key_partial;
                slot->n_allowed = k;
                allowed = slot->allowed;
                s->hit = slot;
            }
        }
        memset(allowed, 0, (size_t)s->n_vocab);
        for (int64_t i = 0; i < k; i++)
            allowed[list[i]] = 1;
        if (!slot) {
            *mask = allowed;
            *ids = list;
            *n_allowed = k;
            return true;
        }
    }
    slot->last_use = ++s->clock;
    *mask = slot->allowed;
    *ids = slot->list;
    *n_allowed = slot->n_allowed;
    return true;
}

static int64_t mask_all(void *ctx, float *logits, int32_t n_vocab) {
    grammar_stage *s = ctx;
    const uint8_t *allowed;
    const int32_t *ids;
    int64_t n;
    if (!state_allowed(s, &allowed, &ids, &n)) return -1;
    for (int32_t t = 0; t < n_vocab; t++)
        if (!allowed[t]) logits[t] = -INFINITY;
    return n;
}

static bool ids_ready(void *ctx) {
    return ((grammar_stage *)ctx)->hit != NULL;
}

static int64_t allowed_ids(void *ctx, const int32_t **ids) {
    grammar_stage *s = ctx;
    const uint8_t *allowed;
    int64_t n;
    return state_allowed(s, &allowed, ids, &n) ? n : -1;
}

static qr_status grammar_apply(qr_stage *self, qr_sample_state *st) {
    grammar_stage *s = (grammar_stage *)self;
    if (s->awaiting) return QR_OK;
    if (s->broken)
        return qr_error(QR_ERR_INVALID_ARG,
                        "grammar: a token the grammar does not accept was accepted into the "
                        "sampler, so the grammar cannot go on (reset the sampler)");
    look_up(s);
    if (!st->gathered) {
        st->filter = &s->filter;
        return QR_OK;
    }
    size_t m = 0; /* a list already gathered (not in the chains built today): filter it */
    for (size_t i = 0; i < st->size; i++)
        if (allow(s, st->data[i].id)) st->data[m++] = st->data[i];
    st->size = m;
    return qr_cand_check_nonempty(st);
}

/* llama_grammar_accept_token: feed the bytes; a mismatch breaks the stage. */
static void feed(grammar_stage *s, const char *bytes, size_t n) {
    if (!s->broken && !qr_grammar_matcher_accept(s->m, bytes, n)) s->broken = true;
}

/* Where a trigger starts in the buffer, or SIZE_MAX. */
static size_t find_trigger(grammar_stage *s) {
    for (int32_t i = 0; i < s->n_words; i++) {
        const char *hit = memmem(s->buf, s->buf_n, s->words[i], strlen(s->words[i]));
        if (hit) return (size_t)(hit - s->buf);
    }
    for (int32_t i = 0; i < s->n_patterns; i++) {
        int rc = pcre2_match(s->patterns[i], (PCRE2_SPTR)s->buf, s->buf_n, 0, 0, s->match, NULL);
        if (rc < 0) continue;
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(s->match);
        uint32_t n_pairs = pcre2_get_ovector_count(s->match);
        for (uint32_t g = 1; g < n_pairs && g < (uint32_t)rc; g++)
            if (ov[2 * g] != PCRE2_UNSET && ov[2 * g + 1] > ov[2 * g]) return ov[2 * g];
        return ov[0];
    }
    return SIZE_MAX;
}

static void buffer_token(grammar_stage *s, qr_token token, const char *piece, size_t n) {
    if (s->buf_n + n + 1 > s->buf_cap) {
        size_t cap = (s->buf_n + n + 1) * 2;
        char *b = realloc(s->buf, cap);
        if (!b) {
            s->broken = true;
            return;
        }
        s->buf = b;
        s->buf_cap = cap;
    }
    if (s->n_buffered == s->cap_buffered) {
        size_t cap = s->cap_buffered ? s->cap_buffered * 2 : 64;
        buffered_token *b = realloc(s->buffered, cap * sizeof *b);
        if (!b) {
            s->broken = true;
            return;
        }
        s->buffered = b;
        s->cap_buffered = cap;
    }
    s->buffered[s->n_buffered++] = (buffered_token){token, s->buf_n, s->buf_n + n};
    memcpy(s->buf + s->buf_n, piece, n);
    s->buf_n += n;
}

void qr_stage_grammar_advance(qr_stage *self, qr_token token) {
    grammar_stage *s = (grammar_stage *)self;
    if (token < 0 || token >= s->n_vocab) return;
    size_t n;
    const char *piece = piece_of(s, token, &n);
    if (s->awaiting) {
        buffer_token(s, token, piece, n);
        if (s->broken) return;
        size_t start = find_trigger(s);
        if (start == SIZE_MAX) return;
        s->awaiting = false;
        /* replay the buffered tokens from the trigger on (the first one possibly cut) */
        for (size_t i = 0; i < s->n_buffered; i++) {
            const buffered_token *b = &s->buffered[i];
            if (b->end <= start) continue;
            size_t from = b->start < start ? start : b->start;
            feed(s, s->buf + from, b->end - from);
        }
        s->buf_n = 0;
        s->n_buffered = 0;
        return;
    }
    if (s->kind[token] == KIND_EOG) return;
    feed(s, piece, n);
}

static void grammar_reset(qr_stage *self) {
    grammar_stage *s = (grammar_stage *)self;
    qr_grammar_matcher_reset(s->m);
    s->awaiting = s->lazy;
    s->broken = false;
    s->buf_n = 0;
    s->n_buffered = 0;
}

static void grammar_free(qr_stage *self) {
    grammar_stage *s = (grammar_stage *)self;
    qr_grammar_matcher_free(s->m);
    qr_grammar_free(s->grammar);
    qr_grammar_tokens_free(s->tokens);
    free(s->kind);
    free(s->allowed);
    free(s->list);
    free(s->eog);
    for (int i = 0; i < N_CACHED; i++)
        free(s->cache[i].allowed), free(s->cache[i].list);
    for (int32_t i = 0; i < s->n_words; i++)
        free(s->words[i]);
    free(s->words);
    for (int32_t i = 0; i < s->n_patterns; i++)
        pcre2_code_free(s->patterns[i]);
    free(s->patterns);
    pcre2_match_data_free(s->match);
    free(s->buf);
    free(s->buffered);
    free(s);
}

static const qr_stage_vtable grammar_vt = {"grammar", grammar_apply, NULL, grammar_reset};

/* Every token's text, decoded once; kind[] as llama_grammar_apply_impl sorts them. */
static qr_status load_vocab(grammar_stage *s, const qr_dry_vocab *v) {
    int32_t (*piece)(void *, qr_token, char *, int32_t) =
        v->token_piece ? v->token_piece : v->piece;
    const int32_t n = s->n_vocab;
    char **pieces = qr_calloc((size_t)n, sizeof *pieces);
    int32_t *len = qr_calloc((size_t)n, sizeof *len);
    bool *testable = qr_calloc((size_t)n, sizeof *testable);
    s->kind = qr_calloc((size_t)n, 1);
    s->allowed = qr_calloc((size_t)n, 1);
    qr_status rc = pieces && len && testable && s->kind && s->allowed ? QR_OK : QR_ERR_NOMEM;
    char small[256];
    for (int32_t t = 0; t < n && rc == QR_OK; t++) {
        int32_t k = piece(v->user, t, small, (int32_t)sizeof small);
        char *big = NULL;
        if (k < 0) { /* a long text: ask again with the room it needs */
            big = malloc((size_t)-k);
            k = big ? piece(v->user, t, big, -k) : -1;
            if (k < 0) {
                free(big);
                rc = qr_error(QR_ERR_NOMEM, "grammar: cannot read the text of token %d", (int)t);
                break;
            }
        }
        pieces[t] = big ? big : malloc((size_t)k + 1);
        if (!pieces[t]) {
            rc = qr_error(QR_ERR_NOMEM, "grammar: out of memory");
            break;
        }
        if (!big) memcpy(pieces[t], small, (size_t)k);
        len[t] = k;
        s->kind[t] = v->is_eog(v->user, t)         ? KIND_EOG
                     : k == 0 || pieces[t][0] == 0 ? KIND_NEVER
                                                   : KIND_TEXT;
        testable[t] = s->kind[t] == KIND_TEXT;
    }
    if (rc == QR_OK) {
        s->tokens = qr_grammar_tokens_create(n, (const char *const *)pieces, len, testable);
        if (!s->tokens) rc = QR_ERR_NOMEM;
    }
    if (rc == QR_OK) {
        for (int32_t t = 0; t < n; t++)
            s->n_eog += s->kind[t] == KIND_EOG;
        s->eog = qr_malloc(((size_t)s->n_eog + 1) * sizeof *s->eog);
        s->list = qr_malloc(((size_t)s->tokens->n_order + (size_t)s->n_eog + 1) * sizeof *s->list);
        if (!s->eog || !s->list) rc = QR_ERR_NOMEM;
        for (int32_t t = 0, k = 0; t < n && rc == QR_OK; t++)
            if (s->kind[t] == KIND_EOG) s->eog[k++] = t;
    }
    if (pieces)
        for (int32_t t = 0; t < n; t++)
            free(pieces[t]);
    free(pieces);
    free(len);
    free(testable);
    return rc;
}

static qr_status load_triggers(grammar_stage *s, const qr_sampler_params *p) {
    s->words = qr_calloc((size_t)p->n_grammar_trigger_words + 1, sizeof *s->words);
    s->patterns = qr_calloc((size_t)p->n_grammar_trigger_patterns + 1, sizeof *s->patterns);
    if (!s->words || !s->patterns) return QR_ERR_NOMEM;
    for (int32_t i = 0; i < p->n_grammar_trigger_words; i++) {
        const char *w = p->grammar_trigger_words[i];
        if (!w || !w[0]) continue;
        if (!(s->words[s->n_words] = strdup(w)))
            return qr_error(QR_ERR_NOMEM, "grammar: out of memory");
        s->n_words++;
    }
    for (int32_t i = 0; i < p->n_grammar_trigger_patterns; i++) {
        const char *pat = p->grammar_trigger_patterns[i];
        if (!pat) continue;
        int err;
        PCRE2_SIZE at;
        /* $ only at the very end, as ECMAScript's (llama.cpp uses std::regex) */
        pcre2_code *c = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_DOLLAR_ENDONLY,
                                      &err, &at, NULL);
        if (!c) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(err, msg, sizeof msg);
            return qr_error(QR_ERR_INVALID_ARG,
                            "grammar: trigger pattern %d (\"%s\"), offset %zu: %s", (int)i, pat,
                            (size_t)at, (const char *)msg);
        }
        s->patterns[s->n_patterns++] = c;
    }
    if (s->lazy && s->n_words == 0 && s->n_patterns == 0)
        return qr_error(QR_ERR_INVALID_ARG,
                        "grammar: a lazy grammar needs trigger words or patterns");
    s->match = pcre2_match_data_create(64, NULL);
    return s->match ? QR_OK : qr_error(QR_ERR_NOMEM, "grammar: out of memory");
}

qr_stage *qr_stage_grammar(const qr_sampler_params *p, const qr_dry_vocab *vocab) {
    grammar_stage *s = qr_calloc(1, sizeof *s);
    if (!s) return NULL;
    s->base.vt = &grammar_vt;
    s->base.free_fn = grammar_free;
    s->n_vocab = vocab->n_vocab;
    s->filter = (qr_token_filter){s, allow, mask_all, allowed_ids, ids_ready};
    s->lazy = p->grammar_lazy;
    s->awaiting = s->lazy;
    qr_status rc = qr_grammar_parse(p->grammar, p->grammar_root, &s->grammar);
    if (rc == QR_OK) rc = qr_grammar_matcher_create(s->grammar, &s->m);
    if (rc == QR_OK) rc = load_triggers(s, p);
    if (rc == QR_OK) rc = load_vocab(s, vocab);
    if (rc != QR_OK) {
        grammar_free(&s->base);
        return NULL;
    }
    return &s->base;
}
