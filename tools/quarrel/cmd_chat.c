/* cmd_chat.c - `quarrel chat`: an interactive conversation with a model.
 *
 * Each turn renders the whole conversation with the chat template, tokenizes it, keeps the
 * longest prefix the KV cache already holds and evaluates only the rest, so earlier turns are
 * never evaluated again. The reply streams until an end-of-generation token, the template's
 * end-of-turn text (found by rendering a sample conversation and reading what follows the
 * assistant's message), -n tokens, Ctrl-C, or a full context.
 *
 * On a terminal the line is read with libedit (history, editing); otherwise stdin is read one
 * turn per line and stdout gets only the replies. Status messages go to stderr. */
#include "cli.h"
#include "options.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <histedit.h>
#include <langinfo.h>
#include <locale.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wchar.h>

#define MAX_STOPS 16
#define MAX_BIASES 64

/* Set by the SIGINT handler, polled between tokens and after an interrupted read. A signal
 * flag has to live at file scope; this is the CLI, not the library. */
static volatile sig_atomic_t interrupted;

static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

typedef struct chat_opts {
    const char *model;
    const char *system;
    const char *template_arg;
    int32_t n_predict;
    int32_t n_ctx, n_batch, n_threads;
    bool ignore_eos, verbose;
    qr_context_params cp; /* the RoPE overrides */
    qr_sampler_params sp;
    const char *stops[MAX_STOPS];
    int n_stops;
    qr_logit_bias biases[MAX_BIASES];
    const char *dry_breakers[MAX_DRY_BREAKERS];
    grammar_opts grammar;
    spec_opts spec;
    qr_generate_params spec_gp; /* the speculation fields for qr_generate */
    ctxshift_opts shift;
    lora_opts lora;
} chat_opts;

typedef struct message {
    char *role;
    char *content;
} message;

typedef struct chat {
    const chat_opts *o;
    qr_model *model;
    qr_context *ctx;
    qr_model *draft_model; /* speculative decoding's draft (NULL: none) */
    qr_context *draft_ctx; /* its cache mirrors ctx's sequence 0 */
    qr_sampler *sampler;
    qr_batch batch;
    int32_t n_ctx;
    bool tty;

    const char *tmpl;   /* a built-in family name or Jinja source */
    char *tmpl_owned;   /* the file's text with --chat-template FILE */
    const char *family; /* the family the template is, or NULL */
    const char *bos_text, *eos_text;
    char *end_of_turn; /* the text that closes an assistant message, or NULL */
    const char *stops[MAX_STOPS + 1];
    int n_stops;

    message *msgs;
    size_t n_msgs, cap_msgs;

    qr_token *cached; /* the tokens in KV sequence 0, n_ctx of room */
    int32_t n_cached;
    /* --context-shift: the tokens a shift keeps, resolved on the first turn of a
     * conversation (--keep -1: that turn's whole prompt, as llama-cli's initial prompt);
     * -1 until then */
    int32_t n_keep;
    qr_token *tokens; /* the rendered conversation's tokens */
    int32_t cap_tokens;
    int turn;
} chat;

/* ---- options ---- */

static void usage(FILE *f) {
    fprintf(f,
            "usage: quarrel chat [-m MODEL] [--system TEXT] [--chat-template NAME|FILE] [options]\n"
            "  -m, --model NAME          GGUF path or model name (default: stories260K)\n"
            "  --system TEXT             a system message to start the conversation\n"
            "  --chat-template NAME|FILE a Jinja template file, or a built-in family (chatml,\n"
            "                            llama2, llama3, zephyr, phi3, gemma, ...); default: the\n"
            "                            model's tokenizer.chat_template, else chatml\n"
            "  -n, --n-predict N         most tokens per reply (default 512; -1: no limit)\n"
            "  -c, --ctx-size N          context size (default: the model's, at most 4096)\n"
            "  -b, --batch-size N        tokens evaluated at once (default 512)\n"
            "  -t, --threads N           threads (default: all CPUs)\n"
            "  --ignore-eos              keep generating after an end-of-generation token\n"
            "  --verbose                 per-turn token counts (evaluated, reused) on stderr\n"
            "commands: /clear, /save FILE, /load FILE, /help, /exit (or Ctrl-D); Ctrl-C stops a "
            "reply\n");
    rope_options_usage(f);
    kv_cache_options_usage(f);
    ctxshift_options_usage(f);
    fprintf(f, "  (in chat: the tokens kept count from the start of the conversation; -1 keeps\n"
               "  the first turn's prompt)\n");
    lora_options_usage(f);
    sampler_options_usage(f);
    spec_options_usage(f);
}

static int parse(int argc, char **argv, chat_opts *o) {
    o->n_predict = 512;
    o->sp = qr_sampler_default_params();
    o->cp = qr_context_default_params();
    int n_bias = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int used = sampler_option(a, v, &o->sp, o->stops, &o->n_stops, MAX_STOPS, o->biases,
                                  &n_bias, MAX_BIASES, o->dry_breakers);
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
        bool takes_value =
            !strcmp(a, "-m") || !strcmp(a, "--model") || !strcmp(a, "--system") ||
            !strcmp(a, "--chat-template") || !strcmp(a, "-n") || !strcmp(a, "--n-predict") ||
            !strcmp(a, "-c") || !strcmp(a, "--ctx-size") || !strcmp(a, "-b") ||
            !strcmp(a, "--batch-size") || !strcmp(a, "-t") || !strcmp(a, "--threads");
        if (takes_value) {
            if (!v) {
                fprintf(stderr, "quarrel chat: %s needs a value\n", a);
                return 2;
            }
            i++;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return -1;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            o->model = v;
        } else if (!strcmp(a, "--system")) {
            o->system = v;
        } else if (!strcmp(a, "--chat-template")) {
            o->template_arg = v;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            if (parse_int(a, v, -1, INT32_MAX, &o->n_predict)) return 2;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
            if (parse_int(a, v, 0, 1 << 24, &o->n_ctx)) return 2;
        } else if (!strcmp(a, "-b") || !strcmp(a, "--batch-size")) {
            if (parse_int(a, v, 1, 1 << 16, &o->n_batch)) return 2;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (parse_int(a, v, 1, 512, &o->n_threads)) return 2;
        } else if (!strcmp(a, "--ignore-eos")) {
            o->ignore_eos = true;
        } else if (!strcmp(a, "--verbose")) {
            o->verbose = true;
        } else {
            fprintf(stderr, "quarrel chat: unknown option '%s' (see quarrel chat --help)\n", a);
            return 2;
        }
    }
    o->sp.n_logit_bias = n_bias;
    o->sp.logit_bias = o->biases;
    return 0;
}

/* ---- the conversation ---- */

static char *dup_str(const char *s) {
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d) memcpy(d, s, n + 1);
    return d;
}

static int push_message(chat *c, const char *role, const char *content) {
    if (c->n_msgs == c->cap_msgs) {
        size_t cap = c->cap_msgs ? 2 * c->cap_msgs : 16;
        message *m = realloc(c->msgs, cap * sizeof *m);
        if (!m) return 1;
        c->msgs = m;
        c->cap_msgs = cap;
    }
    message *m = &c->msgs[c->n_msgs];
    m->role = dup_str(role);
    m->content = dup_str(content);
    if (!m->role || !m->content) {
        free(m->role);
        free(m->content);
        return 1;
    }
    c->n_msgs++;
    return 0;
}

static void pop_message(chat *c) {
    if (!c->n_msgs) return;
    c->n_msgs--;
    free(c->msgs[c->n_msgs].role);
    free(c->msgs[c->n_msgs].content);
}

static void clear_messages(chat *c) {
    while (c->n_msgs)
        pop_message(c);
}

static qr_status render(const chat *c, const qr_chat_message *msgs, size_t n, bool add_gen,
                        char **out) {
    return qr_chat_apply_template(c->tmpl, msgs, n, add_gen, c->bos_text, c->eos_text, out);
}

/* Render the conversation so far, with the assistant's header to follow; non-zero (after
 * printing why) on failure. */
static int render_conversation(const chat *c, char **out) {
    qr_chat_message *cm = malloc((c->n_msgs ? c->n_msgs : 1) * sizeof *cm);
    if (!cm) {
        fprintf(stderr, "quarrel chat: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < c->n_msgs; i++)
        cm[i] = (qr_chat_message){.role = c->msgs[i].role, .content = c->msgs[i].content};
    qr_status st = render(c, cm, c->n_msgs, true, out);
    free(cm);
    if (st != QR_OK) {
        fprintf(stderr, "quarrel chat: the chat template failed: %s\n", qr_last_error());
        return 1;
    }
    return 0;
}

/* Tokenize the rendered conversation into c->tokens. The vocabulary's BOS is added unless the
 * template already wrote it. */
static qr_status tokenize(chat *c, const char *text, int32_t *n) {
    size_t len = strlen(text);
    bool add_bos = qr_model_adds_bos(c->model);
    if (add_bos && c->bos_text && *c->bos_text &&
        strncmp(text, c->bos_text, strlen(c->bos_text)) == 0)
        add_bos = false;
    qr_status st = qr_tokenize(c->model, text, len, add_bos, true, c->tokens, c->cap_tokens, n);
    if (st == QR_ERR_BUFFER_SMALL) {
        qr_token *t = realloc(c->tokens, (size_t)*n * sizeof *t);
        if (!t) return QR_ERR_NOMEM;
        c->tokens = t;
        c->cap_tokens = *n;
        st = qr_tokenize(c->model, text, len, add_bos, true, c->tokens, c->cap_tokens, n);
    }
    return st;
}

/* ---- the template ---- */

/* The text a template puts after an assistant message ("<|im_end|>", "</s>", "<|eot_id|>"),
 * read off a rendered sample: a reply ends when the model writes it. NULL when the template
 * adds nothing there (then only end-of-generation tokens end a reply). */
static char *find_end_of_turn(const chat *c) {
    static const char marker[] = "QRCHATREPLYMARK";
    const qr_chat_message with_sys[] = {{"system", "S"}, {"user", "U"}, {"assistant", marker}};
    char *text = NULL;
    if (render(c, with_sys + 1, 2, false, &text) != QR_OK &&
        render(c, with_sys, 3, false, &text) != QR_OK)
        return NULL;
    char *m = strstr(text, marker);
    char *res = NULL;
    if (m) {
        const char *s = m + sizeof marker - 1;
        while (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')
            s++;
        size_t n = 0;
        while (s[n] && s[n] != ' ' && s[n] != '\n' && s[n] != '\r' && s[n] != '\t')
            n++;
        if (n > 0 && n <= 64) {
            res = malloc(n + 1);
            if (res) {
                memcpy(res, s, n);
                res[n] = '\0';
            }
        }
    }
    free(text);
    return res;
}

/* --chat-template: a readable file is Jinja source; otherwise it must name a built-in family. */
static int choose_template(chat *c) {
    const char *arg = c->o->template_arg;
    if (arg) {
        FILE *f = fopen(arg, "rb");
        if (f) {
            fclose(f);
            size_t len;
            if (read_file(arg, &c->tmpl_owned, &len)) return 1;
            if (len == 0 || strlen(c->tmpl_owned) != len) {
                fprintf(stderr, "quarrel chat: --chat-template file '%s' is %s\n", arg,
                        len == 0 ? "empty" : "not text (it holds a NUL byte)");
                return 1;
            }
            c->tmpl = c->tmpl_owned;
        } else {
            const char *fam = qr_chat_detect_family(arg);
            if (!fam || strcmp(fam, arg) != 0) {
                fprintf(stderr,
                        "quarrel chat: --chat-template '%s' is neither a readable file nor a "
                        "built-in template name (chatml, llama2, llama3, zephyr, phi3, gemma, "
                        "...)\n",
                        arg);
                return 1;
            }
            c->tmpl = arg;
        }
    } else {
        c->tmpl = qr_model_chat_template(c->model);
        if (!c->tmpl) c->tmpl = "chatml";
    }
    c->family = qr_chat_detect_family(c->tmpl);

    /* render a one-line conversation now so a broken template fails before the first turn */
    const qr_chat_message probe[] = {{"system", "S"}, {"user", "Hello"}};
    char *text = NULL;
    if (render(c, c->o->system ? probe : probe + 1, c->o->system ? 2 : 1, true, &text) != QR_OK) {
        fprintf(stderr, "quarrel chat: the chat template does not render: %s\n", qr_last_error());
        return 1;
    }
    free(text);

    c->end_of_turn = find_end_of_turn(c);
    for (int i = 0; i < c->o->n_stops; i++)
        c->stops[c->n_stops++] = c->o->stops[i];
    if (c->end_of_turn) c->stops[c->n_stops++] = c->end_of_turn;
    return 0;
}

/* ---- a turn ---- */

static void emit(const char *s, size_t n) {
    fwrite(s, 1, n, stdout);
    fflush(stdout);
}

/* Bring the KV cache to the rendered conversation: keep the prefix it shares with the cache,
 * evaluate the rest. Returns non-zero (after printing why) if the turn cannot go on. */
/* Render and tokenize the conversation, keep the prefix the cache already holds and drop the
 * rest; *first is the first token still to evaluate. */
static int prepare_conversation(chat *c, int32_t *n_out, int32_t *first) {
    char *text = NULL;
    if (render_conversation(c, &text)) return 1;
    int32_t n = 0;
    qr_status st = tokenize(c, text, &n);
    free(text);
    if (st != QR_OK) {
        fprintf(stderr, "quarrel chat: tokenizing the conversation: %s\n", qr_last_error());
        return 1;
    }
    /* --context-shift: a conversation longer than the context loses its middle as the cache
     * does, the kept tokens first, then half of the rest dropped until the prompt and one
     * token fit */
    while (c->o->shift.on && c->n_keep >= 0 && n + 1 >= c->n_ctx) {
        const int32_t n_discard = (n - c->n_keep) / 2;
        if (n_discard < 1) break;
        memmove(c->tokens + c->n_keep, c->tokens + c->n_keep + n_discard,
                (size_t)(n - c->n_keep - n_discard) * sizeof *c->tokens);
        n -= n_discard;
    }
    if (n >= c->n_ctx) {
        fprintf(stderr,
                "quarrel chat: context full: the conversation is %d tokens but the context "
                "holds %d; /clear starts a new one (or use a larger -c)\n",
                n, c->n_ctx);
        return 1;
    }
    int32_t keep = 0;
    while (keep < n && keep < c->n_cached && c->tokens[keep] == c->cached[keep])
        keep++;
    if (keep == n) keep--; /* evaluate at least one token to get logits */
    if (c->draft_ctx) qr_kv_remove(c->draft_ctx, 0, keep, -1);
    if (qr_kv_remove(c->ctx, 0, keep, -1) != QR_OK) {
        fprintf(stderr, "quarrel chat: trimming the KV cache: %s\n", qr_last_error());
        return 1;
    }
    c->n_cached = keep;
    if (c->o->verbose)
        fprintf(stderr,
                "chat: turn %d: %d tokens in the conversation, %d reused from the cache, %d "
                "evaluated\n",
                c->turn, n, keep, n - keep);
    *n_out = n;
    *first = keep;
    return 0;
}

typedef struct text_buf {
    char *p;
    size_t n, cap;
    bool oom;
} text_buf;

static void tb_append(text_buf *b, const char *s, size_t n) {
    if (b->oom || n == 0) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

typedef struct reply_state {
    chat *c;
    text_buf *reply;
    qr_token *generated; /* the ids sampled, in order (cap_generated of room: a context shift
                            lets a reply run past the context) */
    int32_t n_generated, cap_generated;
    bool end_of_turn;
} reply_state;

static bool on_token(qr_token id, const char *text, size_t n_text, const float *logits,
                     const qr_token_logprobs *lp, void *user) {
    (void)logits;
    (void)lp;
    reply_state *r = user;
    chat *c = r->c;
    emit(text, n_text);
    tb_append(r->reply, text, n_text);
    if (id < 0) return true; /* the held-back text at the end */
    if (r->n_generated == r->cap_generated) {
        qr_token *g = realloc(r->generated, 2 * (size_t)r->cap_generated * sizeof *g);
        if (!g) return false; /* out of memory: the reply stops here */
        r->generated = g;
        r->cap_generated *= 2;
    }
    r->generated[r->n_generated++] = id;
    if (interrupted) return false;
    /* control tokens print nothing, but one spelled like the end of turn ends the reply */
    if (qr_token_is_control(c->model, id) && c->end_of_turn) {
        char piece[64];
        int32_t n = qr_token_to_piece(c->model, id, piece, sizeof piece, true);
        if (n > 0 && (size_t)n == strlen(c->end_of_turn) &&
            !memcmp(piece, c->end_of_turn, (size_t)n)) {
            r->end_of_turn = true;
            return false;
        }
    }
    return true;
}

/* Evaluate the new part of the conversation, then sample and stream the reply; *reply gets
 * the text shown (stop strings left out). Returns 0, 1 when the reply failed, 2 when the
 * conversation could not even be prepared. */
static int generate_reply(chat *c, text_buf *reply) {
    int32_t n, first;
    if (prepare_conversation(c, &n, &first)) return 2;
    reply_state r = {.c = c, .reply = reply};
    r.cap_generated = c->n_ctx + 1;
    r.generated = malloc((size_t)r.cap_generated * sizeof *r.generated);
    if (!r.generated) return 1;
    qr_sampler_restart_grammar(c->sampler); /* each reply matches the grammar on its own */
    qr_generate_params gp = c->o->spec_gp;
    gp.n_predict = c->o->n_predict;
    gp.stops = c->stops;
    gp.n_stops = c->n_stops;
    gp.ignore_eos = c->o->ignore_eos;
    gp.context_shift = c->o->shift.on;
    if (c->n_keep < 0) c->n_keep = ctxshift_keep(&c->o->shift, n, qr_model_adds_bos(c->model));
    gp.n_keep = c->n_keep;
    const int64_t shifts0 = qr_context_timings(c->ctx).n_ctx_shifts;
    qr_stop_reason reason;
    qr_status st =
        qr_generate(c->ctx, c->sampler, c->tokens + first, n - first, &gp, on_token, &r, &reason);
    int rc = 0;
    if (st != QR_OK) {
        fprintf(stderr, "\nquarrel chat: %s\n", qr_last_error());
        qr_kv_clear(c->ctx); /* the cache state is unknown: start over next turn */
        if (c->draft_ctx) qr_kv_clear(c->draft_ctx);
        c->n_cached = 0;
        rc = 1;
    } else {
        /* the cache holds the conversation and the generated tokens that were evaluated */
        memcpy(c->cached + first, c->tokens + first, (size_t)(n - first) * sizeof *c->cached);
        int32_t n_kv = qr_kv_seq_pos_max(c->ctx, 0) + 1;
        for (int32_t i = n; i < n_kv; i++)
            c->cached[i] = r.generated[i - n];
        c->n_cached = n_kv;
        /* after a context shift the cells past the kept ones saw tokens that are gone: the
         * next turn reuses only the kept ones */
        if (qr_context_timings(c->ctx).n_ctx_shifts != shifts0 && c->n_cached > c->n_keep)
            c->n_cached = c->n_keep;
    }
    emit("\n", 1);
    const char *why = reason == QR_STOP_EOG       ? "end-of-generation token"
                      : reason == QR_STOP_STRING  ? "stop string"
                      : reason == QR_STOP_CONTEXT ? "context full"
                      : reason == QR_STOP_LENGTH  ? "limit of -n tokens"
                      : r.end_of_turn             ? "end-of-turn token"
                                                  : "interrupted";
    if (st == QR_OK && reason == QR_STOP_CONTEXT)
        fprintf(stderr,
                "quarrel chat: context full (%d tokens): the reply is cut short; /clear "
                "starts a new conversation\n",
                c->n_ctx);
    if (interrupted) {
        interrupted = 0;
        if (c->tty) fprintf(stderr, "(reply stopped)\n");
    }
    if (c->o->verbose && st == QR_OK)
        fprintf(stderr, "chat: reply: %d tokens (%s)\n", r.n_generated, why);
    free(r.generated);
    return rc;
}

static void user_turn(chat *c, const char *line) {
    c->turn++;
    if (push_message(c, "user", line)) {
        fprintf(stderr, "quarrel chat: out of memory\n");
        return;
    }
    text_buf reply = {0};
    int rc = generate_reply(c, &reply);
    if (rc == 2) { /* the conversation did not fit or render: forget this turn */
        pop_message(c);
        return;
    }
    if (reply.oom || push_message(c, "assistant", reply.p ? reply.p : "")) {
        fprintf(stderr, "quarrel chat: out of memory\n");
        rc = 1;
    }
    if (rc) pop_message(c); /* a failed turn leaves the conversation as it was */
    free(reply.p);
}

/* ---- commands ---- */

static void clear_conversation(chat *c) {
    clear_messages(c);
    if (c->o->system) push_message(c, "system", c->o->system);
    qr_kv_clear(c->ctx);
    if (c->draft_ctx) qr_kv_clear(c->draft_ctx);
    c->n_cached = 0;
    c->n_keep = -1;
    qr_sampler_reset(c->sampler);
}

static int save_conversation(const chat *c, const char *path) {
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = root ? cJSON_AddArrayToObject(root, "messages") : NULL;
    bool ok = arr != NULL;
    for (size_t i = 0; ok && i < c->n_msgs; i++) {
        cJSON *m = cJSON_CreateObject();
        ok = m && cJSON_AddStringToObject(m, "role", c->msgs[i].role) &&
             cJSON_AddStringToObject(m, "content", c->msgs[i].content);
        if (m) cJSON_AddItemToArray(arr, m);
    }
    char *s = ok ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (!s) {
        fprintf(stderr, "quarrel chat: /save: out of memory\n");
        return 1;
    }
    FILE *f = fopen(path, "wb");
    size_t len = strlen(s);
    bool written = f && fwrite(s, 1, len, f) == len && fputc('\n', f) != EOF;
    int err = errno;
    if (f && fclose(f) != 0 && written) {
        written = false;
        err = errno;
    }
    free(s);
    if (!written) {
        fprintf(stderr, "quarrel chat: /save: cannot write '%s': %s\n", path, strerror(err));
        return 1;
    }
    return 0;
}

/* /load: {"messages": [{"role": ..., "content": ...}, ...]} or the bare array. */
static int load_conversation(chat *c, const char *path) {
    char *text = NULL;
    size_t len;
    if (read_file(path, &text, &len)) return 1;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!root) {
        fprintf(stderr, "quarrel chat: /load: '%s' is not valid JSON\n", path);
        return 1;
    }
    const cJSON *arr =
        cJSON_IsArray(root) ? root : cJSON_GetObjectItemCaseSensitive(root, "messages");
    int rc = 1;
    if (!cJSON_IsArray(arr)) {
        fprintf(stderr,
                "quarrel chat: /load: '%s' holds neither a \"messages\" array nor an array of "
                "messages\n",
                path);
        goto done;
    }
    int i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, arr) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!cJSON_IsString(role) || !cJSON_IsString(content)) {
            fprintf(stderr,
                    "quarrel chat: /load: message %d of '%s' needs string \"role\" and "
                    "\"content\" fields\n",
                    i, path);
            goto done;
        }
        const char *r = role->valuestring;
        if (strcmp(r, "system") && strcmp(r, "user") && strcmp(r, "assistant")) {
            fprintf(stderr,
                    "quarrel chat: /load: message %d of '%s' has role '%s' (expected system, "
                    "user or assistant)\n",
                    i, path, r);
            goto done;
        }
        i++;
    }
    clear_messages(c);
    cJSON_ArrayForEach(m, arr) {
        if (push_message(c, cJSON_GetObjectItemCaseSensitive(m, "role")->valuestring,
                         cJSON_GetObjectItemCaseSensitive(m, "content")->valuestring)) {
            fprintf(stderr, "quarrel chat: /load: out of memory\n");
            clear_messages(c);
            goto done;
        }
    }
    /* the KV cache stays: the next turn reuses whatever prefix it shares with this */
    qr_sampler_reset(c->sampler);
    rc = 0;
done:
    cJSON_Delete(root);
    return rc;
}

static void help(void) {
    fprintf(stderr, "  /clear       start a new conversation\n"
                    "  /save FILE   write the conversation as JSON messages\n"
                    "  /load FILE   read a conversation written by /save and continue it\n"
                    "  /exit        quit (also Ctrl-D, or Ctrl-C twice at the prompt)\n"
                    "  Ctrl-C       stop a reply\n");
}

/* Returns 1 when the REPL should end. */
static int command(chat *c, char *line) {
    char *arg = line;
    while (*arg && *arg != ' ' && *arg != '\t')
        arg++;
    if (*arg) *arg++ = '\0';
    while (*arg == ' ' || *arg == '\t')
        arg++;
    if (!strcmp(line, "/exit") || !strcmp(line, "/quit")) return 1;
    if (!strcmp(line, "/help")) {
        help();
    } else if (!strcmp(line, "/clear")) {
        clear_conversation(c);
        fprintf(stderr, "(conversation cleared)\n");
    } else if (!strcmp(line, "/save") || !strcmp(line, "/load")) {
        if (!*arg) {
            fprintf(stderr, "quarrel chat: %s needs a file name\n", line);
        } else if (line[1] == 's') {
            if (!save_conversation(c, arg))
                fprintf(stderr, "(saved %zu messages to %s)\n", c->n_msgs, arg);
        } else if (!load_conversation(c, arg)) {
            fprintf(stderr, "(loaded %zu messages from %s)\n", c->n_msgs, arg);
        }
    } else {
        fprintf(stderr, "quarrel chat: unknown command '%s' (/help lists them)\n", line);
    }
    return 0;
}

/* ---- input ---- */

static const char *prompt_fn(EditLine *el) {
    (void)el;
    return "> ";
}

typedef struct reader {
    EditLine *el;
    History *hist;
    char *line; /* getline's buffer */
    size_t cap;
    sigset_t open_mask; /* the signal mask with SIGINT deliverable */
    mbstate_t mb;       /* UTF-8 decoding state of the character being read */
} reader;

enum { READ_LINE, READ_EOF, READ_INTERRUPT };

/* libedit's character reader. SIGINT is blocked while libedit runs and let through only
 * inside ppoll, so a Ctrl-C at the prompt always ends the wait (none slips in between a check
 * of the flag and a blocking read). Returns 1 with a character, 0 at end of input, -1 on
 * error or interrupt. */
static int read_char(EditLine *el, wchar_t *wc) {
    reader *r = NULL;
    el_get(el, EL_CLIENTDATA, &r);
    for (;;) {
        if (interrupted) {
            errno = EINTR;
            return -1;
        }
        struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
        if (ppoll(&p, 1, NULL, &r->open_mask) < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        char ch;
        ssize_t got = read(STDIN_FILENO, &ch, 1);
        if (got == 0) return 0;
        if (got < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            return -1;
        }
        size_t k = mbrtowc(wc, &ch, 1, &r->mb);
        if (k == (size_t)-2) continue; /* more bytes of this character to come */
        if (k == (size_t)-1) {         /* not valid in this locale: drop it */
            memset(&r->mb, 0, sizeof r->mb);
            continue;
        }
        if (k == 0) *wc = L'\0';
        return 1;
    }
}

/* The next line without its newline in *out (valid until the next call). */
static int read_line(reader *r, const char **out) {
    if (r->el) {
        int count = 0;
        sigset_t block, saved;
        sigemptyset(&block);
        sigaddset(&block, SIGINT);
        pthread_sigmask(SIG_BLOCK, &block, &saved);
        memset(&r->mb, 0, sizeof r->mb);
        const char *s = el_gets(r->el, &count);
        pthread_sigmask(SIG_SETMASK, &saved, NULL);
        if (!s || count <= 0) return interrupted ? READ_INTERRUPT : READ_EOF;
        size_t n = strlen(s);
        if (n + 1 > r->cap) {
            char *p = realloc(r->line, n + 1);
            if (!p) return READ_EOF;
            r->line = p;
            r->cap = n + 1;
        }
        memcpy(r->line, s, n + 1);
    } else {
        ssize_t n = getline(&r->line, &r->cap, stdin);
        if (n < 0) return interrupted ? READ_INTERRUPT : READ_EOF;
    }
    size_t n = strlen(r->line);
    while (n > 0 && (r->line[n - 1] == '\n' || r->line[n - 1] == '\r'))
        r->line[--n] = '\0';
    *out = r->line;
    return READ_LINE;
}

static void repl(chat *c) {
    reader r = {0};
    pthread_sigmask(SIG_SETMASK, NULL, &r.open_mask);
    sigdelset(&r.open_mask, SIGINT);
    if (c->tty) {
        /* libedit decodes input in the locale's encoding: make that UTF-8 */
        if (!setlocale(LC_CTYPE, "") || strcmp(nl_langinfo(CODESET), "UTF-8") != 0)
            setlocale(LC_CTYPE, "C.UTF-8");
        r.el = el_init("quarrel", stdin, stdout, stderr);
        r.hist = history_init();
        if (r.el && r.hist) {
            HistEvent ev;
            history(r.hist, &ev, H_SETSIZE, 1000);
            el_set(r.el, EL_PROMPT, prompt_fn);
            el_set(r.el, EL_EDITOR, "emacs");
            el_set(r.el, EL_HIST, history, r.hist);
            el_set(r.el, EL_CLIENTDATA, &r);
            el_set(r.el, EL_GETCFN, read_char);
        } else {
            fprintf(stderr, "quarrel chat: line editing unavailable; reading plain lines\n");
            if (r.el) el_end(r.el);
            if (r.hist) history_end(r.hist);
            r.el = NULL;
            r.hist = NULL;
        }
    }
    bool interrupt_pending = false;
    for (;;) {
        const char *line;
        int got = read_line(&r, &line);
        if (got == READ_EOF) {
            if (c->tty) fputc('\n', stderr);
            break;
        }
        if (got == READ_INTERRUPT) {
            interrupted = 0;
            if (!c->tty || interrupt_pending) break;
            interrupt_pending = true;
            fprintf(stderr, "\n(Ctrl-C again to quit, or /exit)\n");
            continue;
        }
        interrupt_pending = false;
        if (!*line) continue;
        if (r.hist) {
            HistEvent ev;
            history(r.hist, &ev, H_ENTER, line);
        }
        if (line[0] == '/') {
            char *cmd = dup_str(line);
            int quit = cmd ? command(c, cmd) : 0;
            free(cmd);
            if (quit) break;
            continue;
        }
        user_turn(c, line);
    }
    if (r.el) el_end(r.el);
    if (r.hist) history_end(r.hist);
    free(r.line);
}

int cmd_chat(int argc, char **argv) {
    chat_opts o = {0};
    int rc = parse(argc, argv, &o);
    if (rc) return rc < 0 ? 0 : rc;
    if (spec_options_finish(&o.spec, &o.spec_gp)) return 2;
    /* a grammar that does not parse fails before the model is loaded */
    if (grammar_options_finish(&o.grammar, &o.sp)) return 1;

    char path[4096];
    if (qr_model_resolve(o.model, QR_MODELS_DIR, path, sizeof path) != QR_OK) {
        free(o.grammar.text);
        return cli_fail("model");
    }

    chat c = {.o = &o, .tty = isatty(STDIN_FILENO) == 1, .n_keep = -1};
    rc = 1;
    int load_rc = cli_load_model(path, NULL, &c.model);
    if (load_rc || (load_rc = lora_options_load(&o.lora, c.model))) {
        rc = load_rc;
        goto done;
    }
    qr_token bos = qr_token_bos(c.model), eos = qr_token_eos(c.model);
    c.bos_text = bos >= 0 ? qr_token_text(c.model, bos) : "";
    c.eos_text = eos >= 0 ? qr_token_text(c.model, eos) : "";
    if (!c.bos_text) c.bos_text = "";
    if (!c.eos_text) c.eos_text = "";
    if (choose_template(&c)) goto done;

    qr_context_params cp = o.cp;
    cp.n_ctx = o.n_ctx;
    if (o.n_batch) cp.n_batch = o.n_batch;
    cp.n_threads = o.n_threads;
    /* the context's worker threads start with SIGINT blocked (they inherit this thread's
     * mask), so a Ctrl-C always reaches this thread and the flag it polls */
    sigset_t block, saved_mask;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    pthread_sigmask(SIG_BLOCK, &block, &saved_mask);
    qr_status st = qr_context_create(c.model, &cp, &c.ctx);
    pthread_sigmask(SIG_SETMASK, &saved_mask, NULL);
    if (st != QR_OK) {
        cli_fail("creating context");
        goto done;
    }
    if (lora_options_attach(&o.lora, c.ctx)) goto done;
    c.n_ctx = qr_context_n_ctx(c.ctx);
    cp.n_ctx = c.n_ctx; /* the draft keeps up with the target */
    pthread_sigmask(SIG_BLOCK, &block, &saved_mask);
    load_rc =
        spec_load_draft(&o.spec, c.model, c.ctx, &cp, &c.draft_model, &c.draft_ctx, &o.spec_gp);
    pthread_sigmask(SIG_SETMASK, &saved_mask, NULL);
    if (load_rc) {
        rc = load_rc;
        goto done;
    }
    c.cached = malloc((size_t)c.n_ctx * sizeof *c.cached);
    if (!c.cached || qr_batch_init(&c.batch, c.n_ctx) != QR_OK) {
        fprintf(stderr, "quarrel chat: out of memory\n");
        goto done;
    }
    if (qr_sampler_create_for_model(&o.sp, c.model, &c.sampler) != QR_OK) {
        cli_fail("sampler");
        goto done;
    }
    if (o.sp.seed == QR_SEED_RANDOM && (c.tty || o.verbose))
        fprintf(stderr, "seed: %llu\n", (unsigned long long)qr_sampler_seed(c.sampler));
    if (o.system && push_message(&c, "system", o.system)) {
        fprintf(stderr, "quarrel chat: out of memory\n");
        goto done;
    }
    if (o.verbose)
        fprintf(stderr, "chat: template %s, end of turn '%s', context %d tokens\n",
                c.family ? c.family : (c.tmpl_owned ? "from file" : "from the model"),
                c.end_of_turn ? c.end_of_turn : "(none)", c.n_ctx);
    if (c.tty)
        fprintf(stderr,
                "quarrel chat: %s (%s template, %d tokens of context)\n"
                "/help for commands; Ctrl-C stops a reply; /exit or Ctrl-D quits\n",
                path, c.family ? c.family : "Jinja", c.n_ctx);

    struct sigaction sa, old_sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask); /* no SA_RESTART: a read at the prompt returns on Ctrl-C */
    sigaction(SIGINT, &sa, &old_sa);
    interrupted = 0;
    repl(&c);
    sigaction(SIGINT, &old_sa, NULL);
    rc = 0;
done:
    clear_messages(&c);
    free(c.msgs);
    free(o.grammar.text);
    free(c.cached);
    free(c.tokens);
    free(c.tmpl_owned);
    free(c.end_of_turn);
    qr_batch_free(&c.batch);
    qr_sampler_free(c.sampler);
    qr_context_free(c.draft_ctx);
    qr_model_free(c.draft_model);
    qr_context_free(c.ctx);
    lora_options_free(&o.lora);
    qr_model_free(c.model);
    return rc;
}
