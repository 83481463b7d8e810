/* cmd_run.c - `quarrel run`: load a model, evaluate the prompt in batches, sample and stream
 * the continuation, then a timing line on stderr. --json prints one object per generated token
 * with its top-10 logits so a run can be checked against a reference. */
#include "cli.h"
#include "options.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOP_N 10

typedef struct run_opts {
    const char *model;
    const char *prompt;
    const char *prompt_file;
    int32_t n_predict;
    int32_t n_ctx, n_batch, n_threads;
    bool json, ignore_eos, special, no_bos, no_repack;
    qr_context_params cp; /* the RoPE overrides */
    const char *dump_name, *dump_dir;
    qr_sampler_params sp;
    const char *stops[16];
    int n_stops;
    qr_logit_bias biases[64];
    const char *dry_breakers[MAX_DRY_BREAKERS];
    grammar_opts grammar;
    spec_opts spec;
    ctxshift_opts shift;
    const char *prompt_cache; /* --prompt-cache FILE */
    bool prompt_cache_all, prompt_cache_ro;
    lora_opts lora;
} run_opts;

static void usage(FILE *f) {
    fprintf(
        f,
        "usage: quarrel run [-m MODEL] [-p PROMPT | -f FILE] [-n N] [options]\n"
        "  -m, --model NAME      GGUF path or model name (default: stories260K)\n"
        "  -p, --prompt TEXT     prompt (default: \"Once upon a time\")\n"
        "  -f, --file FILE       read the prompt from a file\n"
        "  -n, --n-predict N     tokens to generate (default 256; -1: until the context is full)\n"
        "  -c, --ctx-size N      context size (default: the model's, at most 4096)\n"
        "  -b, --batch-size N    prompt tokens evaluated at once (default 512)\n"
        "  -t, --threads N       threads (default: all CPUs)\n"
        "  --no-repack           keep the weights on the file's mapping (no copy in the kernels'\n"
        "                        layout: slower, and pages can be dropped under memory pressure)\n"
        "  --json                one JSON object per generated token, with the top-10 logits\n"
        "  --ignore-eos          keep generating after an end-of-generation token\n"
        "  --special             print control tokens\n"
        "  --no-bos              do not add the vocabulary's BOS token\n"
        "  --dump NAME --dump-dir DIR   write the named intermediate (e.g. attn_norm-3) as f32\n"
        "  --prompt-cache FILE   reuse the state saved in FILE for the prompt's start it shares,\n"
        "                        and save the prompt's state there (created if missing)\n"
        "  --prompt-cache-all    save the generated tokens too (with --prompt-cache)\n"
        "  --prompt-cache-ro     use the prompt cache but never write it\n");
    rope_options_usage(f);
    kv_cache_options_usage(f);
    ctxshift_options_usage(f);
    lora_options_usage(f);
    sampler_options_usage(f);
    spec_options_usage(f);
}

static int parse(int argc, char **argv, run_opts *o) {
    o->n_predict = 256;
    o->sp = qr_sampler_default_params();
    o->cp = qr_context_default_params();
    int n_bias = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int used = sampler_option(a, v, &o->sp, o->stops, &o->n_stops, 16, o->biases, &n_bias, 64,
                                  o->dry_breakers);
        if (used == 0) used = rope_option(a, v, &o->cp);
        if (used == 0) used = kv_cache_option(a, v, &o->cp);
        if (used == 0) used = grammar_option(a, v, &o->grammar);
        if (used == 0) used = spec_option(a, v, &o->spec);
        if (used == 0) used = ctxshift_option(a, v, &o->shift);
        if (used == 0) used = lora_option(a, v, &o->lora);
        if (used < 0) return 2;
        if (used > 0) {
            i += used - 1;
            continue;
        }
#define NEED()                                                                                     \
    do {                                                                                           \
        if (!v) {                                                                                  \
            fprintf(stderr, "quarrel run: %s needs a value\n", a);                                 \
            return 2;                                                                              \
        }                                                                                          \
        i++;                                                                                       \
    } while (0)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            NEED();
            o->model = v;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            NEED();
            o->prompt = v;
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            NEED();
            o->prompt_file = v;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            NEED();
            if (parse_int(a, v, -1, INT32_MAX, &o->n_predict)) return 2;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
            NEED();
            if (parse_int(a, v, 0, 1 << 24, &o->n_ctx)) return 2;
        } else if (!strcmp(a, "-b") || !strcmp(a, "--batch-size")) {
            NEED();
            if (parse_int(a, v, 1, 1 << 16, &o->n_batch)) return 2;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            NEED();
            if (parse_int(a, v, 1, 512, &o->n_threads)) return 2;
        } else if (!strcmp(a, "--prompt-cache")) {
            NEED();
            o->prompt_cache = v;
        } else if (!strcmp(a, "--prompt-cache-all")) {
            o->prompt_cache_all = true;
        } else if (!strcmp(a, "--prompt-cache-ro")) {
            o->prompt_cache_ro = true;
        } else if (!strcmp(a, "--dump")) {
            NEED();
            o->dump_name = v;
        } else if (!strcmp(a, "--dump-dir")) {
            NEED();
            o->dump_dir = v;
        } else if (!strcmp(a, "--json")) {
            o->json = true;
        } else if (!strcmp(a, "--no-repack")) {
            o->no_repack = true;
        } else if (!strcmp(a, "--ignore-eos")) {
            o->ignore_eos = true;
        } else if (!strcmp(a, "--special")) {
            o->special = true;
        } else if (!strcmp(a, "--no-bos")) {
            o->no_bos = true;
        } else {
            fprintf(stderr, "quarrel run: unknown option '%s' (see quarrel run --help)\n", a);
            return 2;
        }
#undef NEED
    }
    o->sp.n_logit_bias = n_bias;
    o->sp.logit_bias = o->biases;
    if (o->prompt && o->prompt_file) {
        fprintf(stderr, "quarrel run: give either -p or -f, not both\n");
        return 2;
    }
    if (o->dump_name && !o->dump_dir) o->dump_dir = ".";
    if ((o->prompt_cache_all || o->prompt_cache_ro) && !o->prompt_cache) {
        fprintf(stderr, "quarrel run: %s needs --prompt-cache FILE\n",
                o->prompt_cache_all ? "--prompt-cache-all" : "--prompt-cache-ro");
        return 2;
    }
    if (o->prompt_cache_all && o->prompt_cache_ro) {
        fprintf(stderr, "quarrel run: --prompt-cache-all writes the cache; --prompt-cache-ro "
                        "never does: give one of them\n");
        return 2;
    }
    if (o->json && o->sp.n_probs < TOP_N) o->sp.n_probs = TOP_N;
    return 0;
}

/* ---- --dump: append the named intermediate's rows to DIR/NAME.f32 ---- */

typedef struct dump_state {
    const char *name, *dir;
    bool failed;
} dump_state;

static void dump_fn(const char *name, const float *data, int64_t ne0, int64_t n_tokens,
                    void *user) {
    dump_state *d = user;
    if (strcmp(name, d->name) != 0 || d->failed) return;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.f32", d->dir, name);
    FILE *f = fopen(path, "ab");
    if (!f ||
        fwrite(data, sizeof(float), (size_t)(ne0 * n_tokens), f) != (size_t)(ne0 * n_tokens)) {
        fprintf(stderr, "quarrel run: cannot write %s: %s\n", path, strerror(errno));
        d->failed = true;
    }
    if (f) fclose(f);
}

/* ---- output ---- */

/* The length of the valid UTF-8 sequence at s (n bytes left), or 0 if none starts there
 * (a stray continuation byte, an overlong or surrogate form, or one cut short). */
static int utf8_valid_len(const unsigned char *s, int32_t n) {
    const unsigned char c = s[0];
    int len;
    unsigned lo = 0x80, hi = 0xBF; /* the second byte's range */
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi) return 0;
    for (int i = 2; i < len; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    return len;
}

/* A token's piece as JSON text: JSON is UTF-8, and a byte token (<0xC9>) may hold part of a
 * character only; each byte of no valid sequence becomes U+FFFD, as a UTF-8 decoder's
 * replacement. Returns a malloc'd string. */
static char *json_piece(const char *piece, int32_t n) {
    char *text = malloc((size_t)n * 3 + 1);
    if (!text) return NULL;
    size_t o = 0;
    for (int32_t i = 0; i < n;) {
        const int len = utf8_valid_len((const unsigned char *)piece + i, n - i);
        if (len == 0) {
            memcpy(text + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            memcpy(text + o, piece + i, (size_t)len);
            o += (size_t)len;
            i += len;
        }
    }
    text[o] = '\0';
    return text;
}

static void print_json_token(const qr_model *model, qr_token id, const float *logits,
                             const qr_token_logprobs *lp) {
    char piece[256];
    int32_t n = qr_token_to_piece(model, id, piece, sizeof piece, true);
    if (n < 0) n = 0;
    int32_t n_vocab = qr_model_n_vocab(model);
    /* the 10 highest raw logits, highest first */
    qr_token top[TOP_N];
    int n_top = 0;
    for (qr_token t = 0; t < n_vocab; t++) {
        if (n_top < TOP_N || logits[t] > logits[top[n_top - 1]]) {
            int j = n_top < TOP_N ? n_top++ : TOP_N - 1;
            while (j > 0 && logits[top[j - 1]] < logits[t]) {
                top[j] = top[j - 1];
                j--;
            }
            top[j] = t;
        }
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", id);
    char *text = json_piece(piece, n);
    cJSON_AddStringToObject(o, "text", text ? text : "");
    free(text);
    cJSON *arr = cJSON_AddArrayToObject(o, "top");
    for (int i = 0; i < n_top; i++) {
        cJSON *pair = cJSON_CreateArray();
        cJSON_AddItemToArray(pair, cJSON_CreateNumber(top[i]));
        cJSON_AddItemToArray(pair, cJSON_CreateNumber(logits[top[i]]));
        cJSON_AddItemToArray(arr, pair);
    }
    if (lp) {
        cJSON_AddNumberToObject(o, "logprob", lp->logprob);
        cJSON *tl = cJSON_AddArrayToObject(o, "top_logprobs");
        for (int i = 0; i < lp->n_top; i++) {
            cJSON *pair = cJSON_CreateArray();
            cJSON_AddItemToArray(pair, cJSON_CreateNumber(lp->top_ids[i]));
            cJSON_AddItemToArray(pair, cJSON_CreateNumber(lp->top_logprobs[i]));
            cJSON_AddItemToArray(tl, pair);
        }
    }
    char *s = cJSON_PrintUnformatted(o);
    if (s) puts(s);
    free(s);
    cJSON_Delete(o);
    fflush(stdout);
}

static void emit(const char *s, size_t n) {
    fwrite(s, 1, n, stdout);
    fflush(stdout);
}

typedef struct run_state {
    const qr_model *model;
    bool json;
    /* --prompt-cache: the prompt's state is saved once it is evaluated (before the first
     * token is); with --prompt-cache-all the generated tokens are recorded for the end */
    qr_context *ctx;
    const char *cache_path;
    bool save_prompt, saved, failed;
    const qr_token *prompt;
    int32_t n_prompt;
    qr_token *gen; /* prompt then generated tokens, n_ctx + 1 room (cache-all) */
    int32_t n_gen, cap_gen;
} run_state;

/* Save the evaluated prompt's state to the prompt cache (once). */
static void save_prompt_state(run_state *rs) {
    if (!rs->save_prompt || rs->saved || rs->failed) return;
    rs->saved = true;
    if (qr_kv_seq_pos_max(rs->ctx, 0) + 1 < rs->n_prompt) return; /* never evaluated */
    if (qr_state_save_seq(rs->ctx, 0, rs->prompt, rs->n_prompt, rs->cache_path, NULL) != QR_OK) {
        fprintf(stderr, "quarrel run: --prompt-cache: %s\n", qr_last_error());
        rs->failed = true;
    }
}

static bool on_token(qr_token id, const char *text, size_t n_text, const float *logits,
                     const qr_token_logprobs *lp, void *user) {
    run_state *rs = user;
    if (id >= 0) {
        save_prompt_state(rs); /* the cache holds the prompt, nothing generated yet */
        if (rs->failed) return false;
        if (rs->gen && rs->n_gen < rs->cap_gen) rs->gen[rs->n_gen++] = id;
    }
    if (rs->json) {
        if (id >= 0) print_json_token(rs->model, id, logits, lp);
    } else {
        emit(text, n_text);
    }
    return true;
}

/* Read the prompt cache into sequence 0 (*cached: its tokens, n_max room, malloc'd); a
 * missing or empty file is an empty cache, as llama.cpp has it. 0, or 1 after the error. */
static int load_prompt_cache(qr_context *ctx, const char *path, int32_t n_max, qr_token **cached,
                             int32_t *n_cached) {
    *n_cached = 0;
    *cached = malloc(((size_t)n_max + 1) * sizeof **cached);
    if (!*cached) {
        fprintf(stderr, "quarrel run: out of memory\n");
        return 1;
    }
    FILE *f = fopen(path, "rb");
    if (!f && errno == ENOENT) {
        fprintf(stderr, "prompt cache: %s does not exist; it will be created\n", path);
        return 0;
    }
    int c = f ? fgetc(f) : EOF;
    if (f) fclose(f);
    if (f && c == EOF) {
        fprintf(stderr, "prompt cache: %s is empty; a new one will be saved\n", path);
        return 0;
    }
    if (qr_state_load_seq(ctx, 0, path, *cached, n_max, n_cached, NULL) != QR_OK) {
        fprintf(stderr, "quarrel run: --prompt-cache: %s\n", qr_last_error());
        return 1;
    }
    return 0;
}

int cmd_run(int argc, char **argv) {
    run_opts o = {0};
    int rc = parse(argc, argv, &o);
    if (rc) return rc;
    qr_generate_params gp = {.n_predict = o.n_predict,
                             .stops = o.stops,
                             .n_stops = o.n_stops,
                             .ignore_eos = o.ignore_eos,
                             .special = o.special,
                             .want_logprobs = o.json,
                             .context_shift = o.shift.on};
    if (spec_options_finish(&o.spec, &gp)) return 2;
    /* a grammar that does not parse fails before the model is loaded */
    if (grammar_options_finish(&o.grammar, &o.sp)) return 1;

    char path[4096];
    if (qr_model_resolve(o.model, QR_MODELS_DIR, path, sizeof path) != QR_OK) {
        free(o.grammar.text);
        return cli_fail("model");
    }
    char *file_prompt = NULL;
    size_t prompt_len;
    const char *prompt;
    if (o.prompt_file) {
        if (read_file(o.prompt_file, &file_prompt, &prompt_len)) {
            free(o.grammar.text);
            return 1;
        }
        prompt = file_prompt;
    } else {
        prompt = o.prompt ? o.prompt : "Once upon a time";
        prompt_len = strlen(prompt);
    }

    qr_model *model = NULL, *draft_model = NULL;
    qr_context *ctx = NULL, *draft_ctx = NULL;
    qr_sampler *sampler = NULL;
    qr_token *tokens = NULL, *cached = NULL, *gen = NULL;
    rc = 1;
    qr_model_params mp = qr_model_default_params();
    mp.no_repack = o.no_repack;
    int load_rc = cli_load_model(path, &mp, &model);
    if (load_rc || (load_rc = lora_options_load(&o.lora, model))) {
        rc = load_rc;
        goto done;
    }
    qr_context_params cp = o.cp;
    cp.n_ctx = o.n_ctx;
    if (o.n_batch) cp.n_batch = o.n_batch;
    cp.n_threads = o.n_threads;
    dump_state ds = {.name = o.dump_name, .dir = o.dump_dir};
    if (o.dump_name) {
        cp.debug_fn = dump_fn;
        cp.debug_user = &ds;
    }
    if (qr_context_create(model, &cp, &ctx) != QR_OK) {
        cli_fail("creating context");
        goto done;
    }
    if (lora_options_attach(&o.lora, ctx)) goto done;
    const int32_t n_ctx = qr_context_n_ctx(ctx);
    cp.n_ctx = n_ctx; /* the draft keeps up with the target */
    if ((load_rc = spec_load_draft(&o.spec, model, ctx, &cp, &draft_model, &draft_ctx, &gp))) {
        rc = load_rc;
        goto done;
    }

    int32_t n_prompt = 0;
    qr_status st = qr_tokenize(model, prompt, prompt_len, !o.no_bos, false, NULL, 0, &n_prompt);
    if (st != QR_OK && st != QR_ERR_BUFFER_SMALL) {
        cli_fail("tokenizing the prompt");
        goto done;
    }
    tokens = malloc(((size_t)n_prompt + 1) * sizeof *tokens);
    if (!tokens || qr_tokenize(model, prompt, prompt_len, !o.no_bos, false, tokens, n_prompt,
                               &n_prompt) != QR_OK) {
        cli_fail("tokenizing the prompt");
        goto done;
    }
    if (n_prompt == 0) {
        fprintf(stderr, "quarrel run: the prompt is empty (and the model adds no BOS token)\n");
        goto done;
    }
    if (n_prompt >= n_ctx) {
        fprintf(
            stderr,
            "quarrel run: the prompt is %d tokens but the context holds %d; use a larger -c or a "
            "shorter prompt\n",
            n_prompt, n_ctx);
        goto done;
    }

    gp.n_keep = ctxshift_keep(&o.shift, n_prompt, !o.no_bos && qr_model_adds_bos(model));

    if (qr_sampler_create_for_model(&o.sp, model, &sampler) != QR_OK) {
        cli_fail("sampler");
        goto done;
    }
    if (o.sp.seed == QR_SEED_RANDOM)
        fprintf(stderr, "seed: %llu\n", (unsigned long long)qr_sampler_seed(sampler));
    run_state rs = {.model = model,
                    .json = o.json,
                    .ctx = ctx,
                    .cache_path = o.prompt_cache,
                    .prompt = tokens,
                    .n_prompt = n_prompt};
    /* --prompt-cache, llama.cpp's: the saved state's tokens that start this prompt are not
     * evaluated again (all but the prompt's last, whose logits are needed) */
    int32_t n_reuse = 0;
    if (o.prompt_cache) {
        int32_t n_match = 0, n_cached = 0;
        if (load_prompt_cache(ctx, o.prompt_cache, n_ctx, &cached, &n_cached)) goto done;
        while (n_match < n_cached && n_match < n_prompt && cached[n_match] == tokens[n_match])
            n_match++;
        n_reuse = n_match < n_prompt ? n_match : n_prompt - 1;
        if (qr_kv_remove(ctx, 0, n_reuse, -1) != QR_OK) {
            cli_fail("prompt cache");
            goto done;
        }
        if (n_cached > 0)
            fprintf(stderr,
                    "prompt cache: %d of the prompt's %d tokens match the %d saved in %s; "
                    "%d reused\n",
                    n_match, n_prompt, n_cached, o.prompt_cache, n_reuse);
        rs.save_prompt = !o.prompt_cache_ro && n_match < n_prompt;
        if (o.prompt_cache_all) {
            gen = malloc(((size_t)n_ctx + 1) * sizeof *gen);
            if (!gen) {
                fprintf(stderr, "quarrel run: out of memory\n");
                goto done;
            }
            memcpy(gen, tokens, (size_t)n_prompt * sizeof *gen);
            rs.gen = gen;
            rs.n_gen = n_prompt;
            rs.cap_gen = n_ctx + 1;
        }
        for (int32_t i = 0; i < n_reuse; i++) /* the penalties see the whole prompt */
            qr_sampler_accept(sampler, tokens[i]);
    }
    if (!o.json) emit(prompt, prompt_len); /* echo the prompt, as llama-cli does */
    qr_stop_reason why;
    if (qr_generate(ctx, sampler, tokens + n_reuse, n_prompt - n_reuse, &gp, on_token, &rs, &why) !=
        QR_OK) {
        if (!rs.failed) cli_fail("generating");
        goto done;
    }
    save_prompt_state(&rs); /* nothing was generated (-n 0) */
    if (rs.failed) goto done;
    if (!o.json) emit("\n", 1);
    if (why == QR_STOP_CONTEXT)
        fprintf(stderr, "quarrel run: context full (%d tokens); stopping\n", n_ctx);
    qr_timings t = qr_context_timings(ctx);
    fprintf(stderr, "prompt: %lld tokens, %.1f tok/s | generation: %lld tokens, %.1f tok/s\n",
            (long long)t.n_prompt_tokens,
            t.prompt_seconds > 0 ? (double)t.n_prompt_tokens / t.prompt_seconds : 0.0,
            (long long)t.n_gen_tokens,
            t.gen_seconds > 0 ? (double)t.n_gen_tokens / t.gen_seconds : 0.0);
    if (t.n_ctx_shifts > 0)
        fprintf(stderr, "context shifts: %lld (keeping the first %d tokens)\n",
                (long long)t.n_ctx_shifts, (int)gp.n_keep);
    if (gp.spec_type != QR_SPEC_NONE)
        fprintf(stderr,
                "speculation: %lld drafted, %lld accepted (%.1f%%), %lld target passes, %.2f "
                "tokens per pass\n",
                (long long)t.n_draft_tokens, (long long)t.n_draft_accepted,
                t.n_draft_tokens ? 100.0 * (double)t.n_draft_accepted / (double)t.n_draft_tokens
                                 : 0.0,
                (long long)t.n_spec_passes,
                t.n_spec_passes ? (double)t.n_gen_tokens / (double)t.n_spec_passes : 0.0);
    if (o.prompt_cache_all) {
        /* the cells hold the prompt and every generated token but the last (never evaluated) */
        const int32_t n_cells = qr_kv_seq_pos_max(ctx, 0) + 1;
        if (t.n_ctx_shifts > 0)
            fprintf(stderr, "quarrel run: --prompt-cache-all: the context shifted, so the cache "
                            "no longer holds the tokens from the start; only the prompt was "
                            "saved\n");
        else if (n_cells > rs.n_gen) /* cannot happen: every evaluated token was recorded */
            fprintf(stderr,
                    "quarrel run: --prompt-cache-all: %d cells but %d tokens known; not "
                    "saved\n",
                    n_cells, rs.n_gen);
        else if (qr_state_save_seq(ctx, 0, gen, n_cells, o.prompt_cache, NULL) != QR_OK) {
            fprintf(stderr, "quarrel run: --prompt-cache-all: %s\n", qr_last_error());
            goto done;
        } else
            fprintf(stderr, "prompt cache: saved %d tokens to %s\n", n_cells, o.prompt_cache);
    }
    rc = ds.failed ? 1 : 0;
done:
    qr_sampler_free(sampler);
    qr_context_free(draft_ctx);
    qr_model_free(draft_model);
    qr_context_free(ctx);
    lora_options_free(&o.lora);
    qr_model_free(model);
    free(tokens);
    free(cached);
    free(gen);
    free(file_prompt);
    free(o.grammar.text);
    return rc;
}
