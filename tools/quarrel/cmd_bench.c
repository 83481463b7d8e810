/* cmd_bench.c - `quarrel bench`: prompt processing (pp) and token generation (tg) speed with
 * llama-bench's definitions (tools/llama-bench/llama-bench.cpp):
 *   pp<P>: P prompt tokens decoded in batches of at most -b from an empty cache (the first
 *          token BOS when the vocabulary adds one, the rest random), logits for the last one;
 *   tg<N>: N single-token decodes from an empty cache (with --tg-after-pp: after an untimed
 *          P-token prompt, as the peer's llamabench.py does);
 *   one warm-up run of each test first (a whole prompt; one generated token), then -r timed
 *   repetitions, each from a cleared cache; tokens/s is mean +- sample sd over them.
 *   -d D (llama-bench's -d/--n-depth, a list): each test runs after D tokens already in the
 *   cache, labelled "pp128 @ d4096": the D tokens are decoded once per context (untimed, in
 *   batches of -b) and every run drops back to them (qr_kv_remove), as llama-bench restores
 *   its saved depth state before each repetition.
 * Beside tokens/s: the weight bytes read per token times tokens/s (GB/s) and its share of the
 * machine's streaming read bandwidth (measured once per thread count in a child process so the
 * 512 MB buffer does not count toward the peak RSS reported here, or given with --bw).
 *
 * With speculative decoding (-md DRAFT or --spec-type ngram-simple) two more tests, not
 * llama-bench's: gen<N>, N tokens generated greedily by qr_generate from --spec-prompt, and
 * gen<N>+spec, the same with speculation, their repetitions interleaved so both see the same
 * machine load; tokens/s counts the tokens over the wall time, drafting included, and the
 * speculative rows report the acceptance (accepted / drafted) and tokens per target pass. GB/s
 * is the target's weight bytes times tokens/s: above 100% of bw is past the bandwidth bound. */
#include "cli.h"
#include "options.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREAD_COUNTS 16
#define MAX_DEPTHS 8
#define BW_BUFFER_BYTES ((size_t)512 << 20)

typedef struct bench_opts {
    const char *model;
    int32_t n_prompt, n_gen, n_reps, n_batch;
    int32_t threads[MAX_THREAD_COUNTS];
    int n_threads_list;
    int32_t depths[MAX_DEPTHS]; /* -d: tokens in the cache before each test */
    int n_depths;
    bool json, no_warmup, tg_after_pp, no_repack;
    double bw_given;      /* GB/s, 0: measure */
    qr_context_params cp; /* the RoPE overrides */
    spec_opts spec;
    qr_generate_params gp; /* the speculation fields (spec_type NONE: no gen tests) */
    const char *spec_prompt;
    lora_opts lora;
} bench_opts;

static void usage(FILE *f) {
    fprintf(
        f, "usage: quarrel bench -m MODEL [options]\n"
           "  -m, --model NAME      GGUF path or model name\n"
           "  -p, --n-prompt N      prompt tokens of the pp test (default 128; 0: no pp test)\n"
           "  -n, --n-gen N         generated tokens of the tg test (default 64; 0: no tg test)\n"
           "  -t, --threads LIST    comma-separated thread counts (default 1,2)\n"
           "  -r, --repetitions N   timed repetitions of each test (default 5)\n"
           "  -b, --batch-size N    most prompt tokens per decode (default 2048)\n"
           "  -d, --n-depth LIST    comma-separated cache depths: each test after that many\n"
           "                        tokens already in the cache (default 0)\n"
           "  -o, --output md|json  a markdown table (default) or one JSON object\n"
           "  --bw GBPS             the machine's read bandwidth in GB/s (default: measured)\n"
           "  --no-warmup           skip the warm-up runs\n"
           "  --tg-after-pp         time tg after an untimed P-token prompt (llamabench.py's way)\n"
           "  --no-repack           keep the weights on the file's mapping, in the file's layout\n"
           "Definitions as llama-bench's; GB/s is the model's weight bytes read per token times\n"
           "tokens/s; 'bw' is its share of the measured streaming read bandwidth.\n"
           "With -md DRAFT (or --spec-type ngram-simple): gen<N> and gen<N>+spec, greedy\n"
           "generation without and with speculation from --spec-prompt TEXT (default \"The\n"
           "quick brown fox\"), with the acceptance and the tokens per target pass.\n");
    rope_options_usage(f);
    kv_cache_options_usage(f);
    lora_options_usage(f);
    spec_options_usage(f);
}

/* a comma-separated list of at most max integers from lo to hi into out[*n]; what: its name in
 * the message */
static int parse_list(const char *opt, const char *what, const char *v, long lo, long hi,
                      int32_t *out, int *n, int max) {
    *n = 0;
    const char *p = v;
    for (;;) {
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (errno || end == p || x < lo || x > hi || (*end != ',' && *end != '\0') || *n >= max) {
            fprintf(stderr,
                    "quarrel bench: %s expects a comma-separated list of at most %d %s from %ld "
                    "to %ld, got '%s'\n",
                    opt, max, what, lo, hi, v);
            return 1;
        }
        out[(*n)++] = (int32_t)x;
        if (*end == '\0') return 0;
        p = end + 1;
    }
}

static int parse(int argc, char **argv, bench_opts *o) {
    o->n_prompt = 128;
    o->n_gen = 64;
    o->n_reps = 5;
    o->n_batch = 2048;
    o->threads[0] = 1;
    o->threads[1] = 2;
    o->n_threads_list = 2;
    o->n_depths = 1; /* depth 0 */
    o->cp = qr_context_default_params();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int used = rope_option(a, v, &o->cp);
        if (used == 0) used = kv_cache_option(a, v, &o->cp);
        if (used == 0) used = spec_option(a, v, &o->spec);
        if (used == 0) used = lora_option(a, v, &o->lora);
        if (used < 0) return 2;
        if (used > 0) {
            i += used - 1;
            continue;
        }
        bool takes_value = !strcmp(a, "-m") || !strcmp(a, "--model") || !strcmp(a, "-p") ||
                           !strcmp(a, "--n-prompt") || !strcmp(a, "-n") || !strcmp(a, "--n-gen") ||
                           !strcmp(a, "-t") || !strcmp(a, "--threads") || !strcmp(a, "-r") ||
                           !strcmp(a, "--repetitions") || !strcmp(a, "-b") ||
                           !strcmp(a, "--batch-size") || !strcmp(a, "-o") || !strcmp(a, "-d") ||
                           !strcmp(a, "--n-depth") ||
                           !strcmp(a, "--output") || !strcmp(a, "--bw") ||
                           !strcmp(a, "--spec-prompt");
        if (takes_value) {
            if (!v) {
                fprintf(stderr, "quarrel bench: %s needs a value\n", a);
                return 2;
            }
            i++;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            o->model = v;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--n-prompt")) {
            if (parse_int(a, v, 0, 1 << 20, &o->n_prompt)) return 2;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-gen")) {
            if (parse_int(a, v, 0, 1 << 20, &o->n_gen)) return 2;
        } else if (!strcmp(a, "-r") || !strcmp(a, "--repetitions")) {
            if (parse_int(a, v, 1, 100000, &o->n_reps)) return 2;
        } else if (!strcmp(a, "-b") || !strcmp(a, "--batch-size")) {
            if (parse_int(a, v, 1, 1 << 16, &o->n_batch)) return 2;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (parse_list("-t", "thread counts", v, 1, 512, o->threads, &o->n_threads_list,
                           MAX_THREAD_COUNTS))
                return 2;
        } else if (!strcmp(a, "-d") || !strcmp(a, "--n-depth")) {
            if (parse_list("-d", "depths", v, 0, 1 << 20, o->depths, &o->n_depths, MAX_DEPTHS))
                return 2;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (!strcmp(v, "json"))
                o->json = true;
            else if (!strcmp(v, "md"))
                o->json = false;
            else {
                fprintf(stderr, "quarrel bench: -o must be md or json, not '%s'\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--bw")) {
            float bw;
            if (parse_float(a, v, 0.001, 1e6, &bw)) return 2;
            o->bw_given = bw;
        } else if (!strcmp(a, "--spec-prompt")) {
            o->spec_prompt = v;
        } else if (!strcmp(a, "--no-warmup")) {
            o->no_warmup = true;
        } else if (!strcmp(a, "--tg-after-pp")) {
            o->tg_after_pp = true;
        } else if (!strcmp(a, "--no-repack")) {
            o->no_repack = true;
        } else {
            fprintf(stderr, "quarrel bench: unknown option '%s' (see quarrel bench --help)\n", a);
            return 2;
        }
    }
    if (!o->model) {
        fprintf(stderr, "quarrel bench: give a model with -m (see quarrel bench --help)\n");
        return 2;
    }
    if (o->n_prompt == 0 && o->n_gen == 0) {
        fprintf(stderr, "quarrel bench: -p and -n are both 0: nothing to measure\n");
        return 2;
    }
    if (spec_options_finish(&o->spec, &o->gp)) return 2;
    if (!o->spec_prompt) o->spec_prompt = "The quick brown fox";
    return 0;
}

/* ---- machine ---- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Streaming read bandwidth with n threads, measured in a child process so its buffer stays out
 * of this process's peak RSS. Returns 0 (and prints why) when it cannot be measured. */
static double measure_bandwidth(int n_threads) {
    int fds[2];
    if (pipe(fds) != 0) {
        fprintf(stderr, "quarrel bench: cannot measure bandwidth: pipe: %s\n", strerror(errno));
        return 0;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "quarrel bench: cannot measure bandwidth: fork: %s\n", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return 0;
    }
    if (pid == 0) {
        close(fds[0]);
        double gbps = 0;
        if (qr_measure_read_bandwidth(BW_BUFFER_BYTES, n_threads, 3, &gbps) != QR_OK) {
            fprintf(stderr, "quarrel bench: bandwidth: %s\n", qr_last_error());
            gbps = 0;
        }
        ssize_t w = write(fds[1], &gbps, sizeof gbps);
        _exit(w == (ssize_t)sizeof gbps ? 0 : 1);
    }
    close(fds[1]);
    double gbps = 0;
    ssize_t r = read(fds[0], &gbps, sizeof gbps);
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    if (r != (ssize_t)sizeof gbps || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return 0;
    return gbps;
}

/* ---- model ---- */

/* Weight bytes one decode reads: every tensor, except that the token embedding is only looked
 * up (one row per token) when a separate output matrix exists; with tied embeddings it is read
 * whole as the output matrix. Of a mixture's 3-D expert tensors (and gpt-oss's 2-D expert
 * biases, one row per expert) a token reads its expert_used_count experts' slices. */
static uint64_t weight_bytes_per_decode(const qr_model *model) {
    const qr_gguf *g = qr_model_gguf(model);
    bool has_output = qr_gguf_find_tensor(g, "output.weight") != NULL;
    char key[96];
    int64_t n_expert = 0, n_used = 0;
    snprintf(key, sizeof key, "%s.expert_count", qr_model_arch(model));
    qr_gguf_get_i64(g, key, &n_expert);
    snprintf(key, sizeof key, "%s.expert_used_count", qr_model_arch(model));
    qr_gguf_get_i64(g, key, &n_used);
    uint64_t total = 0;
    for (int64_t i = 0; i < qr_gguf_n_tensors(g); i++) {
        const qr_gguf_tensor *t = qr_gguf_tensor_at(g, i);
        if (has_output && !strcmp(t->name, "token_embd.weight")) continue;
        const bool bias = t->ne[2] == 1 && t->ne[1] == n_expert && strstr(t->name, ".bias");
        if (n_expert > 0 && n_used > 0 && n_used <= n_expert && (t->ne[2] == n_expert || bias) &&
            strstr(t->name, "_exps."))
            total += t->nbytes / (uint64_t)n_expert * (uint64_t)n_used;
        else
            total += t->nbytes;
    }
    return total;
}

/* ---- the tests ---- */

typedef struct bench_ctx {
    qr_model *model, *draft_model;
    qr_context *ctx, *draft_ctx;
    qr_batch batch;
    int32_t n_batch, n_vocab;
    qr_token bos;
    uint64_t rng;
} bench_ctx;

/* llama-bench draws std::rand() % n_vocab; any fixed sequence serves (speed does not depend on
 * which tokens), so a seeded xorshift keeps runs repeatable. */
static qr_token random_token(bench_ctx *b) {
    b->rng ^= b->rng << 13;
    b->rng ^= b->rng >> 7;
    b->rng ^= b->rng << 17;
    return (qr_token)(b->rng % (uint64_t)b->n_vocab);
}

/* n_prompt tokens at positions pos0.. (BOS first on an empty cache where the vocabulary adds
 * it), in batches of at most n_batch */
static qr_status run_prompt(bench_ctx *b, int32_t pos0, int32_t n_prompt, int32_t *n_decodes) {
    for (int32_t done = 0; done < n_prompt;) {
        int32_t n = n_prompt - done < b->n_batch ? n_prompt - done : b->n_batch;
        b->batch.n_tokens = 0;
        for (int32_t i = 0; i < n; i++) {
            qr_token t = pos0 + done + i == 0 && b->bos >= 0 ? b->bos : random_token(b);
            qr_batch_add(&b->batch, t, pos0 + done + i, 0, i == n - 1);
        }
        qr_status st = qr_decode(b->ctx, &b->batch);
        if (st != QR_OK) return st;
        done += n;
        if (n_decodes) (*n_decodes)++;
    }
    return QR_OK;
}

static qr_status run_gen(bench_ctx *b, int32_t pos0, int32_t n_gen) {
    qr_token t = b->bos >= 0 ? b->bos : random_token(b);
    for (int32_t i = 0; i < n_gen; i++) {
        b->batch.n_tokens = 0;
        qr_batch_add(&b->batch, t, pos0 + i, 0, true);
        qr_status st = qr_decode(b->ctx, &b->batch);
        if (st != QR_OK) return st;
        t = random_token(b);
    }
    return QR_OK;
}

typedef struct bench_result {
    int32_t threads, depth;
    bool is_pp;
    int gen;                            /* 0: pp or tg; 1: gen (qr_generate); 2: gen+spec */
    double acceptance, tokens_per_pass; /* gen+spec, over all repetitions */
    int32_t n_tokens;
    double *samples_ts; /* tokens/s of each repetition */
    int32_t n_samples;
    double avg_ts, sd_ts;
    double bytes_per_token; /* weight bytes read per token */
    double gbps, bw_gbps;   /* achieved; the bound (0: unknown) */
} bench_result;

static void summarise(bench_result *r) {
    double sum = 0, sq = 0;
    for (int32_t i = 0; i < r->n_samples; i++)
        sum += r->samples_ts[i];
    r->avg_ts = sum / r->n_samples;
    for (int32_t i = 0; i < r->n_samples; i++)
        sq += (r->samples_ts[i] - r->avg_ts) * (r->samples_ts[i] - r->avg_ts);
    r->sd_ts = r->n_samples > 1 ? sqrt(sq / (r->n_samples - 1)) : 0.0;
    r->gbps = r->bytes_per_token * r->avg_ts / 1e9;
}

/* One thread count and depth: a context, the depth's tokens, the pp test, the tg test. Appends
 * to res[*n_res]. */
static int bench_threads(bench_ctx *b, const bench_opts *o, int32_t threads, int32_t depth,
                         uint64_t w_bytes, double bw, bench_result *res, int *n_res) {
    qr_context_params cp = o->cp;
    int32_t need =
        o->tg_after_pp ? o->n_prompt + o->n_gen : (o->n_prompt > o->n_gen ? o->n_prompt : o->n_gen);
    cp.n_ctx = depth + need + 16;
    const int32_t longest = o->n_prompt > depth ? o->n_prompt : depth > 0 ? depth : 1;
    cp.n_batch = o->n_batch < longest ? o->n_batch : longest;
    cp.n_threads = threads;
    b->n_batch = cp.n_batch;
    if (qr_context_create(b->model, &cp, &b->ctx) != QR_OK) return cli_fail("creating context");
    if (lora_options_attach(&o->lora, b->ctx)) return 1;
    if (depth > 0 && run_prompt(b, 0, depth, NULL) != QR_OK) return cli_fail("filling the depth");

    for (int test = 0; test < 2; test++) {
        bool is_pp = test == 0;
        int32_t n = is_pp ? o->n_prompt : o->n_gen;
        if (n == 0) continue;
        bench_result *r = &res[(*n_res)++];
        r->threads = threads;
        r->depth = depth;
        r->is_pp = is_pp;
        r->n_tokens = n;
        r->bw_gbps = bw;
        r->samples_ts = calloc((size_t)o->n_reps, sizeof *r->samples_ts);
        if (!r->samples_ts) {
            fprintf(stderr, "quarrel bench: out of memory\n");
            return 1;
        }
        qr_status st = QR_OK;
        /* back to the depth's tokens (an empty cache at depth 0) */
        if (!o->no_warmup) {
            qr_kv_remove(b->ctx, 0, depth, -1);
            st = is_pp ? run_prompt(b, depth, n, NULL) : run_gen(b, depth, 1);
            if (st != QR_OK) return cli_fail("warm-up run");
        }
        int32_t n_decodes = 0;
        for (int32_t rep = 0; rep < o->n_reps; rep++) {
            qr_kv_remove(b->ctx, 0, depth, -1);
            int32_t pos0 = depth;
            if (!is_pp && o->tg_after_pp && o->n_prompt > 0) {
                if (run_prompt(b, depth, o->n_prompt, NULL) != QR_OK)
                    return cli_fail("prompt before tg");
                pos0 = depth + o->n_prompt;
            }
            n_decodes = 0;
            double t0 = now_s();
            st = is_pp ? run_prompt(b, depth, n, &n_decodes) : run_gen(b, pos0, n);
            double dt = now_s() - t0;
            if (st != QR_OK) return cli_fail(is_pp ? "prompt run" : "generation run");
            r->samples_ts[r->n_samples++] = dt > 0 ? n / dt : 0.0;
        }
        /* pp reads the weights once per decode call, tg once per token */
        r->bytes_per_token = is_pp ? (double)w_bytes * n_decodes / n : (double)w_bytes;
        summarise(r);
    }
    qr_context_free(b->ctx);
    b->ctx = NULL;
    return 0;
}

/* ---- speculative decoding: greedy qr_generate without and with it ---- */

static bool count_token(qr_token id, const char *text, size_t n, const float *logits,
                        const qr_token_logprobs *lp, void *user) {
    (void)id, (void)text, (void)n, (void)logits, (void)lp, (void)user;
    return true;
}

/* One greedy generation of n tokens from the prompt on a cleared cache; its tokens/s. */
static qr_status gen_once(bench_ctx *b, const qr_token *prompt, int32_t n_prompt, int32_t n,
                          const qr_generate_params *gp, double *ts) {
    qr_sampler_params sp = qr_sampler_default_params();
    sp.temp = 0;
    sp.seed = 1;
    qr_sampler *s;
    qr_status st = qr_sampler_create(&sp, b->n_vocab, &s);
    if (st) return st;
    qr_kv_clear(b->ctx);
    if (b->draft_ctx) qr_kv_clear(b->draft_ctx);
    qr_generate_params p = *gp;
    p.n_predict = n;
    p.ignore_eos = true;
    const qr_timings t0 = qr_context_timings(b->ctx);
    st = qr_generate(b->ctx, s, prompt, n_prompt, &p, count_token, NULL, NULL);
    qr_sampler_free(s);
    const qr_timings t1 = qr_context_timings(b->ctx);
    const double dt = t1.gen_seconds - t0.gen_seconds;
    *ts = dt > 0 ? (double)(t1.n_gen_tokens - t0.n_gen_tokens) / dt : 0.0;
    return st;
}

static int bench_spec(bench_ctx *b, const bench_opts *o, int32_t threads, uint64_t w_bytes,
                      double bw, bench_result *res, int *n_res) {
    qr_token prompt[256];
    int32_t n_prompt = 0;
    const size_t len = strlen(o->spec_prompt);
    if (qr_tokenize(b->model, o->spec_prompt, len, true, false, prompt, 256, &n_prompt) != QR_OK)
        return cli_fail("--spec-prompt (at most 256 tokens)");
    qr_context_params cp = o->cp;
    cp.n_ctx = n_prompt + o->n_gen + o->gp.spec_n_max + 16;
    cp.n_threads = threads;
    if (qr_context_create(b->model, &cp, &b->ctx) != QR_OK) return cli_fail("creating context");
    if (lora_options_attach(&o->lora, b->ctx)) return 1;
    qr_generate_params gp = o->gp;
    cp.share_pool = b->ctx; /* the draft and the target take turns on one pool */
    if (b->draft_model) {
        if (qr_context_create(b->draft_model, &cp, &b->draft_ctx) != QR_OK)
            return cli_fail("creating the draft's context");
        gp.spec_draft = b->draft_ctx;
    }
    const qr_generate_params plain = {0};
    bench_result *r[2] = {&res[*n_res], &res[*n_res + 1]};
    *n_res += 2;
    for (int k = 0; k < 2; k++) {
        r[k]->threads = threads;
        r[k]->gen = k + 1;
        r[k]->n_tokens = o->n_gen;
        r[k]->bw_gbps = bw;
        r[k]->bytes_per_token = (double)w_bytes;
        r[k]->samples_ts = calloc((size_t)o->n_reps, sizeof *r[k]->samples_ts);
        if (!r[k]->samples_ts) {
            fprintf(stderr, "quarrel bench: out of memory\n");
            return 1;
        }
    }
    double ts;
    if (!o->no_warmup && (gen_once(b, prompt, n_prompt, 4, &plain, &ts) != QR_OK ||
                          gen_once(b, prompt, n_prompt, 4, &gp, &ts) != QR_OK))
        return cli_fail("warm-up run");
    qr_context_reset_timings(b->ctx);
    for (int32_t rep = 0; rep < o->n_reps; rep++) { /* interleaved: the same load for both */
        if (gen_once(b, prompt, n_prompt, o->n_gen, &plain, &ts) != QR_OK)
            return cli_fail("generation run");
        r[0]->samples_ts[r[0]->n_samples++] = ts;
        const qr_timings before = qr_context_timings(b->ctx);
        if (gen_once(b, prompt, n_prompt, o->n_gen, &gp, &ts) != QR_OK)
            return cli_fail("speculative generation run");
        r[1]->samples_ts[r[1]->n_samples++] = ts;
        const qr_timings after = qr_context_timings(b->ctx);
        r[1]->acceptance += (double)(after.n_draft_accepted - before.n_draft_accepted);
        r[1]->tokens_per_pass += (double)(after.n_draft_tokens - before.n_draft_tokens);
    }
    const qr_timings t = qr_context_timings(b->ctx);
    /* acceptance: accepted over drafted; tokens per pass: every token of the speculative runs
     * over their target passes */
    r[1]->acceptance = r[1]->tokens_per_pass > 0 ? r[1]->acceptance / r[1]->tokens_per_pass : 0;
    r[1]->tokens_per_pass =
        t.n_spec_passes > 0 ? (double)o->n_gen * o->n_reps / (double)t.n_spec_passes : 0;
    summarise(r[0]);
    summarise(r[1]);
    qr_context_free(b->draft_ctx);
    b->draft_ctx = NULL;
    qr_context_free(b->ctx);
    b->ctx = NULL;
    return 0;
}

/* ---- output ---- */

/* llama-bench's labels: pp128, tg64, "tg64 @ d4096" after a depth */
static void test_name(const bench_result *r, char *buf, size_t size) {
    int n = snprintf(buf, size, "%s%d%s",
                     r->is_pp ? "pp"
                     : r->gen ? "gen"
                              : "tg",
                     r->n_tokens, r->gen == 2 ? "+spec" : "");
    if (r->depth > 0 && n > 0 && (size_t)n < size)
        snprintf(buf + n, size - (size_t)n, " @ d%d", r->depth);
}

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static void print_md(const char *model_name, const qr_model *model, const bench_result *res,
                     int n_res, uint64_t peak_rss, uint64_t w_bytes) {
    double size_gib = (double)qr_model_size_bytes(model) / (1024.0 * 1024.0 * 1024.0);
    double params_m = (double)qr_model_n_params(model) / 1e6;
    printf("| model | size | params | threads | test | t/s | GB/s | bw |\n");
    printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for (int i = 0; i < n_res; i++) {
        const bench_result *r = &res[i];
        char test[48], bwpct[32];
        test_name(r, test, sizeof test);
        if (r->bw_gbps > 0)
            snprintf(bwpct, sizeof bwpct, "%.0f%% of %.1f", 100.0 * r->gbps / r->bw_gbps,
                     r->bw_gbps);
        else
            snprintf(bwpct, sizeof bwpct, "?");
        printf("| %s | %.2f GiB | %.2f M | %d | %s | %.2f ± %.2f | %.2f | %s |\n", model_name,
               size_gib, params_m, r->threads, test, r->avg_ts, r->sd_ts, r->gbps, bwpct);
    }
    printf("\nweight bytes per decode: %.1f MB; peak RSS: %.1f MiB\n", (double)w_bytes / 1e6,
           (double)peak_rss / (1024.0 * 1024.0));
    for (int i = 0; i < n_res; i++)
        if (res[i].gen == 2)
            printf("speculation, %d thread%s: acceptance %.3f, %.2f tokens per target pass, "
                   "%.2fx gen%d\n",
                   res[i].threads, res[i].threads > 1 ? "s" : "", res[i].acceptance,
                   res[i].tokens_per_pass, res[i].avg_ts / res[i - 1].avg_ts, res[i].n_tokens);
}

static int print_json(const char *model_name, const char *path, const qr_model *model,
                      const bench_opts *o, const bench_result *res, int n_res, uint64_t peak_rss,
                      uint64_t w_bytes) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", model_name);
    cJSON_AddStringToObject(root, "model_path", path);
    cJSON_AddStringToObject(root, "arch", qr_model_arch(model));
    cJSON_AddNumberToObject(root, "model_size", (double)qr_model_size_bytes(model));
    cJSON_AddNumberToObject(root, "model_n_params", (double)qr_model_n_params(model));
    cJSON_AddNumberToObject(root, "weight_bytes_per_decode", (double)w_bytes);
    cJSON_AddNumberToObject(root, "n_prompt", o->n_prompt);
    cJSON_AddNumberToObject(root, "n_gen", o->n_gen);
    cJSON_AddNumberToObject(root, "n_batch", o->n_batch);
    cJSON_AddNumberToObject(root, "repetitions", o->n_reps);
    cJSON_AddBoolToObject(root, "warmup", !o->no_warmup);
    cJSON_AddBoolToObject(root, "tg_after_pp", o->tg_after_pp);
    cJSON_AddStringToObject(root, "bandwidth_source", o->bw_given > 0 ? "given" : "measured");
    cJSON_AddNumberToObject(root, "peak_rss_bytes", (double)peak_rss);
    cJSON *arr = cJSON_AddArrayToObject(root, "results");
    for (int i = 0; i < n_res; i++) {
        const bench_result *r = &res[i];
        cJSON *e = cJSON_CreateObject();
        char test[48];
        test_name(r, test, sizeof test);
        cJSON_AddNumberToObject(e, "threads", r->threads);
        cJSON_AddNumberToObject(e, "n_depth", r->depth);
        cJSON_AddStringToObject(e, "test", test);
        cJSON_AddNumberToObject(e, "n_prompt", r->is_pp ? r->n_tokens : 0);
        cJSON_AddNumberToObject(e, "n_gen", r->is_pp ? 0 : r->n_tokens);
        cJSON_AddNumberToObject(e, "avg_ts", r->avg_ts);
        cJSON_AddNumberToObject(e, "stddev_ts", r->sd_ts);
        cJSON *s = cJSON_AddArrayToObject(e, "samples_ts");
        for (int32_t j = 0; j < r->n_samples; j++)
            cJSON_AddItemToArray(s, cJSON_CreateNumber(r->samples_ts[j]));
        cJSON_AddNumberToObject(e, "bytes_per_token", r->bytes_per_token);
        cJSON_AddNumberToObject(e, "gbps", r->gbps);
        if (r->gen == 2) {
            cJSON_AddNumberToObject(e, "acceptance", r->acceptance);
            cJSON_AddNumberToObject(e, "tokens_per_pass", r->tokens_per_pass);
        }
        if (r->bw_gbps > 0) {
            cJSON_AddNumberToObject(e, "bw_gbps", r->bw_gbps);
            cJSON_AddNumberToObject(e, "bw_share", r->gbps / r->bw_gbps);
        } else {
            cJSON_AddNullToObject(e, "bw_gbps");
            cJSON_AddNullToObject(e, "bw_share");
        }
        cJSON_AddItemToArray(arr, e);
    }
    char *txt = cJSON_Print(root);
    cJSON_Delete(root);
    if (!txt) {
        fprintf(stderr, "quarrel bench: out of memory\n");
        return 1;
    }
    puts(txt);
    free(txt);
    return 0;
}

int cmd_bench(int argc, char **argv) {
    bench_opts o = {0};
    int rc = parse(argc, argv, &o);
    if (rc) return rc;

    char path[4096];
    if (qr_model_resolve(o.model, QR_MODELS_DIR, path, sizeof path) != QR_OK)
        return cli_fail("model");

    /* bandwidth first, before the model is mapped, each thread count once */
    double bw[MAX_THREAD_COUNTS] = {0};
    for (int i = 0; i < o.n_threads_list; i++) {
        if (o.bw_given > 0) {
            bw[i] = o.bw_given;
            continue;
        }
        for (int j = 0; j < i; j++)
            if (o.threads[j] == o.threads[i]) bw[i] = bw[j];
        if (bw[i] == 0) bw[i] = measure_bandwidth(o.threads[i]);
    }

    bench_ctx b = {.rng = 0x9E3779B97F4A7C15ull};
    bench_result res[4 * MAX_THREAD_COUNTS * MAX_DEPTHS];
    memset(res, 0, sizeof res);
    int n_res = 0;
    rc = 1;
    qr_model_params mp = qr_model_default_params();
    mp.no_repack = o.no_repack;
    int load_rc = cli_load_model(path, &mp, &b.model);
    if (load_rc || (load_rc = lora_options_load(&o.lora, b.model))) {
        rc = load_rc;
        goto done;
    }
    b.n_vocab = qr_model_n_vocab(b.model);
    b.bos = qr_model_adds_bos(b.model) ? qr_token_bos(b.model) : -1;
    if (qr_batch_init(&b.batch, o.n_batch) != QR_OK) {
        cli_fail("batch");
        goto done;
    }
    uint64_t w_bytes = weight_bytes_per_decode(b.model);
    if (o.gp.spec_type == QR_SPEC_DRAFT_SIMPLE) { /* its contexts come per thread count */
        qr_context_params dcp = o.cp;
        dcp.n_ctx = 64;
        dcp.n_threads = 1;
        load_rc =
            spec_load_draft(&o.spec, b.model, NULL, &dcp, &b.draft_model, &b.draft_ctx, &o.gp);
        if (load_rc) {
            rc = load_rc;
            goto done;
        }
        qr_context_free(b.draft_ctx);
        b.draft_ctx = NULL;
    }
    for (int i = 0; i < o.n_threads_list; i++) {
        if (!o.json)
            fprintf(stderr, "quarrel bench: %d thread%s...\n", o.threads[i],
                    o.threads[i] > 1 ? "s" : "");
        for (int d = 0; d < o.n_depths; d++)
            if (bench_threads(&b, &o, o.threads[i], o.depths[d], w_bytes, bw[i], res, &n_res))
                goto done;
        if (o.gp.spec_type != QR_SPEC_NONE && o.n_gen > 0 &&
            bench_spec(&b, &o, o.threads[i], w_bytes, bw[i], res, &n_res))
            goto done;
    }
    uint64_t peak = qr_peak_rss_bytes();
    if (o.json)
        rc = print_json(base_name(path), path, b.model, &o, res, n_res, peak, w_bytes);
    else {
        print_md(base_name(path), b.model, res, n_res, peak, w_bytes);
        rc = 0;
    }
done:
    for (int i = 0; i < n_res; i++)
        free(res[i].samples_ts);
    qr_context_free(b.ctx);
    qr_context_free(b.draft_ctx);
    qr_batch_free(&b.batch);
    qr_model_free(b.draft_model);
    lora_options_free(&o.lora);
    qr_model_free(b.model);
    return rc;
}
