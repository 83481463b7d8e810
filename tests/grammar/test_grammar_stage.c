/* test_grammar_stage.c - the grammar sampler stage on a small hand-made vocabulary: which tokens
 * it allows (EOG, empty and NUL texts, tokens cut inside a UTF-8 character), lazy triggers,
 * reset, the sampler wiring (prompt tokens do not advance the grammar), and the lazy filter's
 * greedy and top-k results against masking the whole vocabulary first, on random logits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "grammar/grammar.h"
#include "quarrel.h"
#include "sample/sample_internal.h"
#include "test_util.h"

/* The fixed tokens; more random ones follow them in the big vocabulary. */
static const char *const fixed[] = {
    "<eos>",        /* 0: end of generation */
    "",             /* 1: empty text */
    "\0x",          /* 2: starts with NUL */
    "{",            /* 3 */
    "}",            /* 4 */
    "a",            /* 5 */
    "ab",           /* 6 */
    "\xe2\x82",     /* 7: the first 2 bytes of the euro sign */
    "\xac",         /* 8: its last byte */
    "\xe2\x82\xac", /* 9: the euro sign */
    "x",            /* 10 */
    "<to",          /* 11 */
    "ol>{",         /* 12 */
    "b}",           /* 13 */
    "{a",           /* 14 */
};
enum { EOS = 0, EMPTY = 1, NUL = 2, LB = 3, RB = 4, A = 5, AB = 6, EU1 = 7, EU2 = 8, EURO = 9 };
enum { X = 10, TO = 11, OL = 12, BRB = 13, LBA = 14, N_FIXED = 15 };

#define MAX_TOKENS 600
static char texts[MAX_TOKENS][16];
static int32_t text_len[MAX_TOKENS];
static int32_t n_tokens;

static void make_vocab(int32_t n) {
    static const char *const parts[] = {"a", "b", "{", "}", "x", " ", "\xe2\x82", "\xac", "\""};
    n_tokens = n;
    for (int32_t t = 0; t < n; t++) {
        if (t < N_FIXED) {
            text_len[t] = t == NUL ? 2 : (int32_t)strlen(fixed[t]);
            memcpy(texts[t], fixed[t], (size_t)text_len[t]);
            continue;
        }
        int parts_n = 1 + (int)((qr_test_frand() + 1.0f) * 2.0f); /* 1..4 */
        text_len[t] = 0;
        for (int k = 0; k < parts_n; k++) {
            const char *p = parts[(int)((qr_test_frand() + 1.0f) * 4.5f) % 9];
            memcpy(texts[t] + text_len[t], p, strlen(p));
            text_len[t] += (int32_t)strlen(p);
        }
    }
}

static int32_t fake_piece(void *user, qr_token t, char *buf, int32_t len) {
    (void)user;
    if (text_len[t] > len) return -text_len[t];
    memcpy(buf, texts[t], (size_t)text_len[t]);
    return text_len[t];
}
static int32_t fake_tokenize(void *user, const char *text, size_t len, qr_token *out, int32_t n) {
    (void)user, (void)text, (void)len, (void)out, (void)n;
    return -1;
}
static bool fake_is_eog(void *user, qr_token t) {
    (void)user;
    return t == EOS;
}

static qr_dry_vocab vocab(void) {
    return (qr_dry_vocab){
        .n_vocab = n_tokens, .piece = fake_piece, .tokenize = fake_tokenize, .is_eog = fake_is_eog};
}

static qr_stage *stage(const char *gbnf) {
    qr_sampler_params p = qr_sampler_default_params();
    p.grammar = gbnf;
    qr_dry_vocab v = vocab();
    qr_stage *s = qr_stage_grammar(&p, &v);
    if (!s) fail_msg("stage: %s", qr_last_error());
    return s;
}

static float logits[MAX_TOKENS];
static qr_candidate cand[MAX_TOKENS];
static qr_rng rng;

static qr_sample_state fresh_state(void) {
    return (qr_sample_state){
        .logits = logits, .n_vocab = n_tokens, .data = cand, .rng = &rng, .selected = -1};
}

/* The allowed tokens as a sorted, -1-terminated list, through the full mask. */
static void allowed(qr_stage *s, int32_t *out) {
    for (int32_t t = 0; t < n_tokens; t++)
        logits[t] = 0.0f;
    qr_sample_state st = fresh_state();
    assert_int_equal(s->vt->apply(s, &st), QR_OK);
    qr_cand_gather_all(&st);
    for (size_t i = 0; i < st.size; i++)
        out[i] = st.data[i].id;
    out[st.size] = -1;
}

static void expect_allowed(qr_stage *s, const int32_t *want) {
    int32_t got[MAX_TOKENS + 1];
    allowed(s, got);
    size_t i = 0;
    for (; want[i] >= 0; i++)
        if (got[i] != want[i]) fail_msg("allowed[%zu] = %d, want %d", i, got[i], want[i]);
    if (got[i] != -1) fail_msg("token %d allowed too", got[i]);
}

#define W(...) ((const int32_t[]){__VA_ARGS__, -1})

static void test_masking_and_eog(void **state) {
    (void)state;
    make_vocab(N_FIXED);
    qr_stage *s = stage("root ::= \"{\" (\"a\" | \"b\")* \"}\"");
    expect_allowed(s, W(LB, LBA)); /* not EOG, empty, NUL */
    qr_stage_grammar_advance(s, LB);
    expect_allowed(s, W(RB, A, AB, BRB));
    qr_stage_grammar_advance(s, AB);
    expect_allowed(s, W(RB, A, AB, BRB));
    qr_stage_grammar_advance(s, BRB);
    expect_allowed(s, W(EOS)); /* done: only end of generation */
    s->vt->reset(s);
    expect_allowed(s, W(LB, LBA));
    qr_stage_free(s);

    /* may end, or go on */
    s = stage("root ::= \"a\" \"x\"?");
    qr_stage_grammar_advance(s, A);
    expect_allowed(s, W(EOS, X));
    qr_stage_free(s);
}

static void test_partial_utf8_tokens(void **state) {
    (void)state;
    make_vocab(N_FIXED);
    qr_stage *s = stage("root ::= \"\xe2\x82\xac\" \"x\"");
    expect_allowed(s, W(EU1, EURO));
    qr_stage_grammar_advance(s, EU1); /* inside the character */
    expect_allowed(s, W(EU2));
    qr_stage_grammar_advance(s, EU2);
    expect_allowed(s, W(X));
    qr_stage_free(s);
    /* a class that cannot hold the euro sign refuses its first half */
    s = stage("root ::= [\\u0000-\\u00ff]+");
    int32_t got[MAX_TOKENS + 1];
    allowed(s, got);
    for (int i = 0; got[i] >= 0; i++) {
        assert_int_not_equal(got[i], EU1);
        assert_int_not_equal(got[i], EU2); /* a lone continuation byte is invalid */
    }
    qr_stage_free(s);
}

static qr_stage *lazy_stage(const char *gbnf, const char *word, const char *pattern) {
    qr_sampler_params p = qr_sampler_default_params();
    p.grammar = gbnf;
    p.grammar_lazy = true;
    const char *const words[1] = {word}, *const patterns[1] = {pattern};
    p.grammar_trigger_words = words;
    p.n_grammar_trigger_words = word ? 1 : 0;
    p.grammar_trigger_patterns = patterns;
    p.n_grammar_trigger_patterns = pattern ? 1 : 0;
    qr_dry_vocab v = vocab();
    qr_stage *s = qr_stage_grammar(&p, &v);
    if (!s) fail_msg("stage: %s", qr_last_error());
    return s;
}

static void test_lazy_triggers(void **state) {
    (void)state;
    make_vocab(N_FIXED);
    int32_t all[N_FIXED + 1];
    for (int32_t t = 0; t < N_FIXED; t++)
        all[t] = t;
    all[N_FIXED] = -1;
    /* a word: the grammar is fed from the word's start, so it begins with it */
    qr_stage *s = lazy_stage("root ::= \"<tool>{\" \"a\"+ \"}\"", "<tool>", NULL);
    expect_allowed(s, all); /* nothing constrained before the trigger */
    qr_stage_grammar_advance(s, X);
    qr_stage_grammar_advance(s, TO);
    expect_allowed(s, all);
    qr_stage_grammar_advance(s, OL); /* "x<tool>{": triggered, "<to" "ol>{" replayed */
    expect_allowed(s, W(A));
    s->vt->reset(s);
    expect_allowed(s, all);
    qr_stage_free(s);

    /* a pattern: fed from its first capture group */
    s = lazy_stage("root ::= \"{\" \"a\"+ \"}\"", NULL, "x+(\\{)");
    qr_stage_grammar_advance(s, A);
    expect_allowed(s, all);
    qr_stage_grammar_advance(s, X);
    qr_stage_grammar_advance(s, LBA); /* "ax{a": the group starts at "{", then "a" */
    expect_allowed(s, W(RB, A));
    qr_stage_free(s);

    /* a bad pattern and a lazy grammar without triggers are refused */
    qr_sampler_params p = qr_sampler_default_params();
    p.grammar = "root ::= \"a\"";
    p.grammar_lazy = true;
    qr_dry_vocab v = vocab();
    assert_null(qr_stage_grammar(&p, &v));
    assert_non_null(strstr(qr_last_error(), "needs trigger words or patterns"));
    p.grammar_trigger_patterns = (const char *const[]){"(unclosed"};
    p.n_grammar_trigger_patterns = 1;
    assert_null(qr_stage_grammar(&p, &v));
    assert_non_null(strstr(qr_last_error(), "trigger pattern 0"));
}

/* Through the public sampler: picked tokens advance the grammar, prompt tokens do not; a state
 * no token can continue is an error with the grammar's message. */
static void test_sampler_wiring(void **state) {
    (void)state;
    make_vocab(N_FIXED);
    qr_sampler_params p = qr_sampler_default_params();
    p.grammar = "root ::= \"a\" \"x\"";
    p.temp = 0.0f;
    p.seed = 1;
    qr_dry_vocab v = vocab();
    qr_sampler *s;
    assert_int_equal(qr_sampler_create_vocab(&p, &v, n_tokens, &s), QR_OK);
    for (int32_t t = 0; t < n_tokens; t++)
        logits[t] = (float)t; /* the highest ids are the likeliest */
    qr_sampler_accept(s, A);  /* a prompt token: the grammar stays at its start */
    qr_token tok;
    assert_int_equal(qr_sampler_sample(s, logits, &tok, NULL), QR_OK);
    assert_int_equal(tok, A);
    assert_int_equal(qr_sampler_sample(s, logits, &tok, NULL), QR_OK);
    assert_int_equal(tok, X);
    assert_int_equal(qr_sampler_sample(s, logits, &tok, NULL), QR_OK);
    assert_int_equal(tok, EOS);
    qr_sampler_reset(s);
    assert_int_equal(qr_sampler_sample(s, logits, &tok, NULL), QR_OK);
    assert_int_equal(tok, A);
    qr_sampler_free(s);

    p.grammar = "root ::= \"z\""; /* no token has a z */
    assert_int_equal(qr_sampler_create_vocab(&p, &v, n_tokens, &s), QR_OK);
    assert_int_not_equal(qr_sampler_sample(s, logits, &tok, NULL), QR_OK);
    assert_non_null(strstr(qr_last_error(), "grammar: no token of the vocabulary can continue"));
    qr_sampler_free(s);
    p.top_k = 0;
    p.temp = 1.0f;
    assert_int_equal(qr_sampler_create_vocab(&p, &v, n_tokens, &s), QR_OK);
    assert_int_not_equal(qr_sampler_sample(s, logits, &tok, NULL), QR_OK);
    assert_non_null(strstr(qr_last_error(), "grammar: no token of the vocabulary can continue"));
    qr_sampler_free(s);

    /* a grammar without the vocabulary, and a bad grammar, are refused at creation */
    p.grammar = "root ::= \"a\"";
    assert_int_equal(qr_sampler_create(&p, n_tokens, &s), QR_ERR_INVALID_ARG);
    assert_non_null(strstr(qr_last_error(), "needs the token texts"));
    p.grammar = "root ::= \"a";
    assert_int_equal(qr_sampler_create_vocab(&p, &v, n_tokens, &s), QR_ERR_INVALID_ARG);
    assert_non_null(strstr(qr_last_error(), "grammar: line 1, column 10"));
}

/* Reference: the k best allowed tokens (logit descending, lower id first on ties). */
static int32_t reference_top(const uint8_t *ok, int32_t k, qr_candidate *out) {
    int32_t n = 0;
    for (int32_t t = 0; t < n_tokens; t++)
        if (ok[t] && logits[t] != -INFINITY) out[n++] = (qr_candidate){t, logits[t], 0.0f};
    for (int32_t i = 1; i < n; i++) /* insertion sort */
        for (int32_t j = i; j > 0; j--) {
            qr_candidate *a = &out[j - 1], *b = &out[j];
            if (a->logit > b->logit || (a->logit == b->logit && a->id < b->id)) break;
            qr_candidate tmp = *a;
            *a = *b;
            *b = tmp;
        }
    return n < k ? n : k;
}

static void test_lazy_equals_full_mask(void **state) {
    (void)state;
    make_vocab(MAX_TOKENS);
    qr_stage *s = stage("root ::= \"{\" ( [ab\"] | \" \" | \"\xe2\x82\xac\" )* \"}\"");
    static const qr_token path[] = {LB, A, AB, EU1, EU2, EURO, RB, EOS};
    int checked = 0;
    for (size_t step = 0; step < sizeof path / sizeof *path; step++) {
        {
            /* what the whole-vocabulary mask allows here */
            uint8_t ok[MAX_TOKENS];
            int32_t list[MAX_TOKENS + 1];
            allowed(s, list);
            memset(ok, 0, sizeof ok);
            for (int i = 0; list[i] >= 0; i++)
                ok[list[i]] = 1;
            for (int round = 0; round < 200; round++) {
                for (int32_t t = 0; t < n_tokens; t++) /* coarse values: many ties */
                    logits[t] = round % 2 ? roundf(qr_test_frand() * 4.0f) : qr_test_frand();
                logits[(int)((qr_test_frand() + 1.0f) * 0.5f * (float)(n_tokens - 1))] = -INFINITY;
                const int32_t k = 1 + round % 7;
                qr_candidate want[MAX_TOKENS];
                int32_t n_want = reference_top(ok, k, want);
                /* lazy top-k */
                qr_sample_state st = fresh_state();
                assert_int_equal(s->vt->apply(s, &st), QR_OK);
                qr_cand_gather_top_k(&st, k);
                assert_int_equal((int32_t)st.size, n_want);
                for (int32_t i = 0; i < n_want; i++)
                    assert_int_equal(st.data[i].id, want[i].id);
                /* greedy */
                st = fresh_state();
                assert_int_equal(s->vt->apply(s, &st), QR_OK);
                qr_cand_gather_max(&st);
                assert_int_equal((int32_t)st.size, n_want > 0 ? 1 : 0);
                if (n_want) assert_int_equal(st.data[0].id, want[0].id);
                /* the full mask first, then top-k */
                st = fresh_state();
                assert_int_equal(s->vt->apply(s, &st), QR_OK);
                qr_cand_apply_filter(&st);
                qr_cand_gather_top_k(&st, k);
                assert_int_equal((int32_t)st.size, n_want);
                for (int32_t i = 0; i < n_want; i++)
                    assert_int_equal(st.data[i].id, want[i].id);
                checked++;
            }
        }
        qr_stage_grammar_advance(s, path[step]);
    }
    assert_true(checked >= 1000);
    qr_stage_free(s);
}

/* The trie walk agrees with testing each token alone, on a JSON grammar. */
static void test_mask_matches_single_tests(void **state) {
    (void)state;
    make_vocab(MAX_TOKENS);
    char path[512];
    snprintf(path, sizeof path, "%s/grammar/gbnf/json.gbnf", QR_TEST_DIR);
    char *gbnf = qr_test_read_file(path, NULL);
    assert_non_null(gbnf);
    qr_grammar *g;
    assert_int_equal(qr_grammar_parse(gbnf, NULL, &g), QR_OK);
    const char *pieces[MAX_TOKENS];
    bool testable[MAX_TOKENS];
    for (int32_t t = 0; t < n_tokens; t++) {
        pieces[t] = texts[t];
        testable[t] = t != EOS && t != EMPTY && t != NUL;
    }
    qr_grammar_tokens *tk = qr_grammar_tokens_create(n_tokens, pieces, text_len, testable);
    assert_non_null(tk);
    qr_grammar_matcher *m;
    assert_int_equal(qr_grammar_matcher_create(g, &m), QR_OK);
    const char *doc = "{\"a\": [1, \"x\xe2\x82\xac\", {\"b\": true}], \"c\": null}";
    for (size_t i = 0; i <= strlen(doc); i++) {
        uint8_t mask[MAX_TOKENS];
        memset(mask, 7, sizeof mask);
        int64_t n = qr_grammar_matcher_mask(m, tk, mask);
        int64_t count = 0;
        for (int32_t t = 0; t < n_tokens; t++) {
            if (!testable[t]) continue;
            bool one = qr_grammar_matcher_allows_token(m, tk, t);
            if (one != (mask[t] == 1))
                fail_msg("offset %zu token %d: %d vs %d", i, t, one, mask[t]);
            count += one;
        }
        assert_int_equal(n, count);
        if (i < strlen(doc)) assert_true(qr_grammar_matcher_accept(m, doc + i, 1));
    }
    assert_true(qr_grammar_matcher_can_end(m));
    qr_grammar_matcher_free(m);
    qr_grammar_tokens_free(tk);
    qr_grammar_free(g);
    free(gbnf);
}

int main(void) {
    qr_rng_seed(&rng, 42);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_masking_and_eog),
        cmocka_unit_test(test_partial_utf8_tokens),
        cmocka_unit_test(test_lazy_triggers),
        cmocka_unit_test(test_sampler_wiring),
        cmocka_unit_test(test_lazy_equals_full_mask),
        cmocka_unit_test(test_mask_matches_single_tests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
