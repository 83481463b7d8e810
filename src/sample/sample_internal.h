/* sample_internal.h - the sampler chain's inner interface: the per-token working state, the
 * stage vtable every sampler implements (one file per sampler), the PRNG and shared helpers.
 *
 * A token is picked in two phases. While state->gathered is false the state holds the dense
 * logits (indexed by token id, a private copy of the caller's): logit bias and penalties edit
 * single entries of it, which costs nothing per vocabulary entry. The first stage that needs a
 * candidate list gathers one: top-k selects its k best straight from the dense array (no sort
 * of the vocabulary), any other stage takes every token whose logit is not -inf. From then on
 * stages work on the candidate list {id, logit, p}, as llama.cpp's llama_token_data_array. */
#ifndef QR_SAMPLE_INTERNAL_H
#define QR_SAMPLE_INTERNAL_H

#include "util/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- PRNG: xoshiro256** seeded through splitmix64 (Blackman & Vigna) ---- */
typedef struct qr_rng {
    uint64_t s[4];
} qr_rng;
void qr_rng_seed(qr_rng *r, uint64_t seed);
uint64_t qr_rng_next(qr_rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double qr_rng_uniform(qr_rng *r);
/* A seed from /dev/urandom, or from the clock if that cannot be read; never QR_SEED_RANDOM. */
uint64_t qr_rng_random_seed(void);

/* ---- candidates and the per-token state ---- */
typedef struct qr_candidate {
    int32_t id;
    float logit;
    float p;
} qr_candidate;

/* An optional token filter (the grammar stage): a token it refuses counts as if its logit were
 * -inf. Gathering honours it lazily, testing tokens in descending logit order only until it has
 * what it needs (top-k: k allowed tokens; greedy: one), and falls back to mask_all, which sets
 * every refused token's dense logit to -inf at once, when it needs them all. Either way the
 * result is that of masking first: ties are broken by token id (lower first) everywhere. */
typedef struct qr_token_filter {
    void *ctx;
    bool (*allow)(void *ctx, int32_t id);
    /* returns how many tokens are allowed, or -1 on failure (qr_error set) */
    int64_t (*mask_all)(void *ctx, float *logits, int32_t n_vocab);
    /* every allowed token's id into *ids (valid until the state changes); returns how many, or
     * -1 on failure (qr_error set). What top-k and greedy gather from when testing the best
     * tokens one by one did not settle: its cost is the allowed set's, not the vocabulary's. */
    int64_t (*allowed_ids)(void *ctx, const int32_t **ids);
    /* allowed_ids would answer from a cache (no walk): worth taking before a second round */
    bool (*ids_ready)(void *ctx);
} qr_token_filter;

typedef struct qr_sample_state {
    float *logits; /* dense, n_vocab entries, valid while !gathered (scratch afterwards) */
    int32_t n_vocab;
    bool gathered;
    qr_candidate *data; /* capacity n_vocab */
    size_t size;
    bool sorted;      /* data is in descending logit order */
    int32_t selected; /* index into data chosen by the final stage, -1 before */
    qr_rng *rng;
    const qr_token_filter *filter; /* NULL: none; cleared once applied to the dense logits */
    bool filter_empty;             /* the filter allowed no token at all */
    bool filter_failed;            /* mask_all failed (qr_error holds why) */
} qr_sample_state;

/* Apply the filter to the dense logits now (before a stage reads them all); no-op without one
 * or once gathered. */
void qr_cand_apply_filter(qr_sample_state *st);
/* The greedy pick honouring the filter: the highest-logit allowed token (lowest id on ties) as
 * the only candidate; size 0 if none. */
void qr_cand_gather_max(qr_sample_state *st);

/* Gather every token whose logit is not -inf into the candidate list (no-op once gathered). */
void qr_cand_gather_all(qr_sample_state *st);
/* Keep the k best of the dense logits (k >= 1), sorted descending; -inf entries dropped. */
void qr_cand_gather_top_k(qr_sample_state *st, int32_t k);
/* p = softmax(logit) over the candidates (max-subtracted, as llama.cpp's softmax; from 64
 * candidates on through qr_exp_shift, summed in double, with the dense logits as scratch). */
void qr_cand_softmax(qr_sample_state *st);
/* Normalised softmax into p, then one draw from it (double running sum against u * sum, so a
 * token whose p underflowed to 0 is never picked); returns the chosen index. size >= 1. */
size_t qr_cand_draw(qr_sample_state *st);
/* QR_ERR_NUMERIC "no candidate left" when the list is empty (every token banned). */
qr_status qr_cand_check_nonempty(const qr_sample_state *st);
/* Sort the candidates by descending logit (no-op if already sorted). */
void qr_cand_sort(qr_sample_state *st);
/* Only the n largest candidates, sorted descending at the front (the rest after them in any
 * order; the list counts as sorted only when n covers it). A selection, then a sort of n. */
void qr_cand_sort_top(qr_sample_state *st, size_t n);
/* Select the n largest values of x[0..len) into out[0..n) as {index, value, 0}, descending;
 * returns how many (min(n, len)). A linear scan against a size-n min-heap: no sort of the
 * whole array. x must hold no NaN. */
int32_t qr_select_top(const float *x, int32_t len, int32_t n, qr_candidate *out);

/* ---- the stage interface ---- */
typedef struct qr_stage qr_stage;
typedef struct qr_stage_vtable {
    const char *name;
    /* Edit the state: dense logits or candidates. Fails only on numeric trouble. */
    qr_status (*apply)(qr_stage *self, qr_sample_state *st);
    void (*accept)(qr_stage *self, qr_token token); /* may be NULL */
    void (*reset)(qr_stage *self);                  /* may be NULL */
} qr_stage_vtable;

struct qr_stage {
    const qr_stage_vtable *vt;
    void (*free_fn)(qr_stage *self); /* NULL: free(self) */
};

/* Constructors (NULL on allocation failure, with qr_error set). Parameters are validated by
 * qr_sampler_create before these are called. */
qr_stage *qr_stage_logit_bias(const qr_logit_bias *bias, int32_t n_bias);
qr_stage *qr_stage_penalties(int32_t n_vocab, int32_t last_n, float repeat, float freq,
                             float present);
qr_stage *qr_stage_top_k(int32_t k);
qr_stage *qr_stage_typical(float p);
qr_stage *qr_stage_top_p(float p);
qr_stage *qr_stage_min_p(float p);
qr_stage *qr_stage_xtc(float probability, float threshold, size_t min_keep);
qr_stage *qr_stage_temperature(float temp, float dyn_range, float dyn_exp);
qr_stage *qr_stage_dist(void);
/* m: how many of the most likely tokens estimate the Zipf exponent (llama.cpp passes 100) */
qr_stage *qr_stage_mirostat_v1(int32_t n_vocab, float tau, float eta, int32_t m);
qr_stage *qr_stage_mirostat_v2(float tau, float eta);
/* DRY (dry.c): breakers are strings turned into token sequences against the vocabulary. */
#define QR_DRY_MAX_CHARS 40 /* a breaker string is cut to this many bytes */
#define QR_DRY_MAX_TAIL 20  /* and its tail to this many tokens */
typedef struct qr_dry_breaker {
    qr_token head;  /* a token whose text contains the string, or ends with a start of it */
    int32_t n_tail; /* 0: the head alone breaks; else the tokens that must follow it */
    qr_token tail[QR_DRY_MAX_TAIL];
} qr_dry_breaker;
/* The vocabulary as breaker matching needs it. piece: token t's text (as llama.cpp's
 * detokenize of the one token, special tokens rendered), returning its length or -(needed) if
 * len is too small. tokenize: text without special tokens, at most n_max tokens, returning the
 * count or a negative value on failure. */
typedef struct qr_dry_vocab {
    int32_t n_vocab;
    void *user;
    int32_t (*piece)(void *user, qr_token t, char *buf, int32_t len);
    int32_t (*tokenize)(void *user, const char *text, size_t len, qr_token *out, int32_t n_max);
    /* for the grammar stage (NULL: no grammar possible): end-of-generation tokens, and the
     * token's text as llama.cpp's token_to_piece(special = true) (NULL: piece) */
    bool (*is_eog)(void *user, qr_token t);
    int32_t (*token_piece)(void *user, qr_token t, char *buf, int32_t len);
} qr_dry_vocab;
/* *out is malloc'd (caller frees; NULL when *n_out is 0). NULL or empty strings are skipped. */
qr_status qr_dry_breakers_build(const qr_dry_vocab *v, const char *const *strings,
                                int32_t n_strings, qr_dry_breaker **out, int32_t *n_out);
/* last_n > 0 tokens of history, or -1 for all of it; breakers are copied. */
qr_stage *qr_stage_dry(int32_t n_vocab, float multiplier, float base, int32_t allowed_length,
                       int32_t last_n, const qr_dry_breaker *breakers, int32_t n_breakers);
void qr_stage_free(qr_stage *s);

/* qr_sampler_create with the vocabulary DRY's sequence breakers are matched against (NULL:
 * none, and then DRY with breakers is refused); qr_sampler_create_for_model passes the
 * model's. */
qr_status qr_sampler_create_vocab(const qr_sampler_params *params, const qr_dry_vocab *vocab,
                                  int32_t n_vocab, qr_sampler **out);

/* The grammar stage (src/grammar/grammar_stage.c): parses params->grammar and decodes the
 * vocabulary's texts once. NULL with qr_error set on a bad grammar or pattern. */
qr_stage *qr_stage_grammar(const qr_sampler_params *params, const qr_dry_vocab *vocab);
/* Advance the grammar with a token the sampler picked (never with prompt tokens). */
void qr_stage_grammar_advance(qr_stage *s, qr_token token);

/* Speculative sampling's acceptance rule (speculative.c): cand[0..n) the target's final
 * distribution (p normalised), draft the drafted token, q the draft's distribution indexed by
 * token id (NULL: a point mass on draft, a greedy draft). Returns the token to emit; *accepted
 * says whether it is the draft. The result is distributed as p whatever q is. */
qr_token qr_spec_verify(const qr_candidate *cand, size_t n, qr_token draft, const float *q,
                        qr_rng *rng, bool *accepted);

/* Mirostat's current mu (v1 or v2; for tests). */
float qr_stage_mirostat_mu(const qr_stage *s);

#endif
