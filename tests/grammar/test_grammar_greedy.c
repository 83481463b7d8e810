/* test_grammar_greedy.c - greedy generation under a grammar equals llama.cpp's.
 *
 * greedy_refs.json (made by mk_grammar_refs.py with the peer: llama.cpp's grammar sampler, then
 * a greedy pick) holds, for GBNF grammars and for JSON schemas converted by llama.cpp's own
 * converter, the tokens llama.cpp chose on stories260K and smol135 and, per step, the gap
 * between the two best allowed logits. Quarrel generates with the same grammar text at
 * temperature 0; its tokens must equal llama.cpp's up to the first step whose gap is within the
 * model's logit tolerance (../shared/reference/<model>.json: there either choice is right and
 * the runs may part). A case whose reference ends at an end-of-generation token before any
 * near-tie must end there too (Quarrel passes the EOG token to the callback, then stops).
 *
 * The second test checks the grammar engine alone, at every step whatever the logits: along
 * llama.cpp's own token path, the set of tokens Quarrel's matcher allows (a token's text with
 * special tokens rendered, never an empty one or one starting with a NUL byte; end-of-generation
 * tokens where the grammar may end) must be the set llama.cpp's sampler allowed (its size and
 * its FNV-1a hash), both by the whole-vocabulary mask and by the one-token query. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "grammar/grammar.h"
#include "quarrel.h"
#include "test_util.h"

typedef struct collect {
    qr_token ids[256];
    int n;
} collect;

static bool on_token(qr_token token, const char *text, size_t n_text, const float *logits,
                     const qr_token_logprobs *lp, void *user) {
    (void)text, (void)n_text, (void)logits, (void)lp;
    collect *c = user;
    if (token >= 0 && c->n < 256) c->ids[c->n++] = token;
    return true;
}

static double model_tolerance(const char *model_file) {
    char path[512], name[128];
    snprintf(name, sizeof name, "%s", model_file);
    char *dot = strstr(name, ".gguf");
    if (dot) *dot = 0;
    snprintf(path, sizeof path, "%s/reference/%s.json", QR_SHARED_DIR, name);
    size_t len;
    char *text = qr_test_read_file(path, &len);
    assert_non_null(text);
    cJSON *ref = cJSON_Parse(text);
    free(text);
    assert_non_null(ref);
    cJSON *tol = cJSON_GetObjectItem(cJSON_GetObjectItem(ref, "tolerance"), "abs_logit");
    assert_true(cJSON_IsNumber(tol));
    double t = tol->valuedouble;
    cJSON_Delete(ref);
    return t;
}

static cJSON *load_refs(void) {
    size_t len;
    char *text = qr_test_read_file(QR_TEST_DIR "/grammar/greedy_refs.json", &len);
    assert_non_null(text);
    cJSON *refs = cJSON_Parse(text);
    free(text);
    assert_non_null(refs);
    return refs;
}

static qr_model *load_model(const char *file, bool vocab_only) {
    char path[512];
    snprintf(path, sizeof path, "%s/models/%s", QR_SHARED_DIR, file);
    qr_model_params mp = qr_model_default_params();
    mp.vocab_only = vocab_only;
    qr_model *model = NULL;
    assert_int_equal(qr_model_load(path, &mp, &model), QR_OK);
    return model;
}

static void fnv1a_add(uint64_t *h, int32_t id) {
    for (int b = 0; b < 4; b++) {
        *h ^= (uint8_t)((uint32_t)id >> (8 * b));
        *h *= 0x100000001b3ull;
    }
}

static void test_allowed_sets(void **state) {
    (void)state;
    cJSON *refs = load_refs();
    cJSON *c;
    int n_steps = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(refs, "cases")) {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        qr_model *model = load_model(cJSON_GetObjectItem(c, "model")->valuestring, true);
        const int32_t n_vocab = qr_model_n_vocab(model);
        char **piece = calloc((size_t)n_vocab, sizeof *piece);
        int32_t *n_piece = calloc((size_t)n_vocab, sizeof *n_piece);
        assert_non_null(piece);
        assert_non_null(n_piece);
        for (int32_t t = 0; t < n_vocab; t++) {
            char buf[256];
            n_piece[t] = qr_token_to_piece(model, t, buf, sizeof buf, true);
            assert_true(n_piece[t] >= 0);
            piece[t] = malloc((size_t)n_piece[t] + 1);
            memcpy(piece[t], buf, (size_t)n_piece[t]);
        }
        bool *testable = calloc((size_t)n_vocab, sizeof *testable);
        uint8_t *mask = calloc((size_t)n_vocab, 1);
        assert_non_null(testable);
        assert_non_null(mask);
        for (int32_t t = 0; t < n_vocab; t++) /* llama.cpp's rules: EOG aside, no empty text */
            testable[t] = !qr_token_is_eog(model, t) && n_piece[t] > 0 && piece[t][0] != 0;
        qr_grammar_tokens *tt =
            qr_grammar_tokens_create(n_vocab, (const char *const *)piece, n_piece, testable);
        assert_non_null(tt);
        qr_grammar *g = NULL;
        if (qr_grammar_parse(cJSON_GetObjectItem(c, "grammar")->valuestring, NULL, &g) != QR_OK)
            fail_msg("%s: %s", name, qr_last_error());
        qr_grammar_matcher *m = NULL;
        assert_int_equal(qr_grammar_matcher_create(g, &m), QR_OK);
        cJSON *s;
        int step = 0;
        cJSON_ArrayForEach(s, cJSON_GetObjectItem(c, "steps")) {
            /* the whole-vocabulary mask (the trie walk) and the one-token query must both give
             * llama.cpp's set */
            memset(mask, 0, (size_t)n_vocab);
            assert_true(qr_grammar_matcher_mask(m, tt, mask) >= 0);
            for (int way = 0; way < 2; way++) {
                uint64_t h = 0xcbf29ce484222325ull;
                int n_allowed = 0;
                for (int32_t t = 0; t < n_vocab; t++) {
                    bool ok;
                    if (qr_token_is_eog(model, t))
                        ok = qr_grammar_matcher_can_end(m);
                    else if (!testable[t])
                        ok = false;
                    else
                        ok = way == 0 ? mask[t] != 0 : qr_grammar_matcher_allows_token(m, tt, t);
                    if (ok) {
                        fnv1a_add(&h, t);
                        n_allowed++;
                    }
                }
                char hex[17];
                snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
                const int want_n = cJSON_GetObjectItem(s, "n_allowed")->valueint;
                const char *want_h = cJSON_GetObjectItem(s, "allowed_fnv1a")->valuestring;
                if (n_allowed != want_n || strcmp(hex, want_h) != 0)
                    fail_msg("%s: step %d: Quarrel's %s allows %d tokens (hash %s), llama.cpp %d "
                             "(%s)",
                             name, step, way == 0 ? "mask" : "token query", n_allowed, hex, want_n,
                             want_h);
            }
            const int id = cJSON_GetObjectItem(s, "id")->valueint;
            if (!qr_token_is_eog(model, id))
                assert_true(qr_grammar_matcher_accept(m, piece[id], (size_t)n_piece[id]));
            step++;
            n_steps++;
        }
        qr_grammar_matcher_free(m);
        qr_grammar_free(g);
        qr_grammar_tokens_free(tt);
        free(testable);
        free(mask);
        for (int32_t t = 0; t < n_vocab; t++)
            free(piece[t]);
        free(piece);
        free(n_piece);
        qr_model_free(model);
    }
    cJSON_Delete(refs);
    printf("%d steps: allowed sets equal to llama.cpp's\n", n_steps);
    assert_true(n_steps >= 500);
}

static void test_greedy_refs(void **state) {
    (void)state;
    cJSON *refs = load_refs();
    cJSON *cases = cJSON_GetObjectItem(refs, "cases");
    assert_true(cJSON_GetArraySize(cases) >= 20);

    const char *loaded_name = NULL;
    qr_model *model = NULL;
    int total_checked = 0, n_cases = 0, n_full = 0;
    cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        const char *mfile = cJSON_GetObjectItem(c, "model")->valuestring;
        if (!loaded_name || strcmp(loaded_name, mfile) != 0) {
            qr_model_free(model);
            model = load_model(mfile, false);
            loaded_name = mfile;
        }
        const double tol = model_tolerance(mfile);
        const char *prompt = cJSON_GetObjectItem(c, "prompt")->valuestring;
        const char *grammar = cJSON_GetObjectItem(c, "grammar")->valuestring;

        qr_token toks[512];
        int32_t n_toks = 0;
        assert_int_equal(
            qr_tokenize(model, prompt, strlen(prompt), true, false, toks, 512, &n_toks), QR_OK);
        cJSON *pt = cJSON_GetObjectItem(c, "prompt_tokens");
        assert_int_equal(n_toks, cJSON_GetArraySize(pt));
        for (int i = 0; i < n_toks; i++)
            assert_int_equal(toks[i], cJSON_GetArrayItem(pt, i)->valueint);

        qr_context_params cp = qr_context_default_params();
        cp.n_ctx = 512;
        cp.n_threads = 1;
        qr_context *ctx = NULL;
        assert_int_equal(qr_context_create(model, &cp, &ctx), QR_OK);
        qr_sampler_params sp = qr_sampler_default_params();
        sp.temp = 0.0f;
        sp.seed = 1;
        sp.grammar = grammar;
        qr_sampler *smpl = NULL;
        qr_status st = qr_sampler_create_for_model(&sp, model, &smpl);
        if (st != QR_OK) fail_msg("%s: the grammar was refused: %s", name, qr_last_error());
        cJSON *steps = cJSON_GetObjectItem(c, "steps");
        const int n_ref = cJSON_GetArraySize(steps);
        qr_generate_params gp = {.n_predict = cJSON_GetObjectItem(c, "n_gen")->valueint,
                                 .seq_id = 0};
        collect got = {.n = 0};
        qr_stop_reason why;
        st = qr_generate(ctx, smpl, toks, n_toks, &gp, on_token, &got, &why);
        if (st != QR_OK) fail_msg("%s: generation failed: %s", name, qr_last_error());

        /* compare up to the first near-tie of the reference */
        int checked = 0;
        bool tie = false;
        for (int i = 0; i < n_ref; i++) {
            cJSON *s = cJSON_GetArrayItem(steps, i);
            const int want = cJSON_GetObjectItem(s, "id")->valueint;
            const double gap = cJSON_GetObjectItem(s, "gap12")->valuedouble;
            if (gap <= tol) {
                tie = true;
                break;
            }
            if (i >= got.n || got.ids[i] != want)
                fail_msg("%s: step %d: llama.cpp chose token %d (gap %.3f > tolerance %.3f), "
                         "Quarrel %d",
                         name, i, want, gap, tol, i < got.n ? got.ids[i] : -1);
            checked++;
            if (i == n_ref - 1 && cJSON_IsTrue(cJSON_GetObjectItem(c, "stopped_at_eog")) &&
                (got.n != n_ref || why != QR_STOP_EOG))
                fail_msg("%s: llama.cpp ends with EOG after %d tokens; Quarrel gave %d (stop "
                         "reason %d)",
                         name, n_ref, got.n, (int)why);
        }
        if (!tie) n_full++;
        total_checked += checked;
        n_cases++;
        printf("%-28s %3d of %3d steps compared%s\n", name, checked, n_ref,
               tie ? " (then a near-tie)" : "");
        qr_sampler_free(smpl);
        qr_context_free(ctx);
    }
    qr_model_free(model);
    cJSON_Delete(refs);
    /* the comparison must have covered a real share of the steps */
    printf("%d steps compared over %d cases, %d cases compared to their end\n", total_checked,
           n_cases, n_full);
    assert_true(total_checked >= 150);
    assert_true(n_full >= 8);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_allowed_sets),
                                       cmocka_unit_test(test_greedy_refs)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
