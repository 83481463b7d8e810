/* cmd_serve.c - `quarrel serve`: the OpenAI-compatible and ollama-compatible HTTP server
 * (qr_server_run) until SIGINT or SIGTERM. Binds 127.0.0.1 unless --host says otherwise. */
#include "cli.h"
#include "options.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static volatile int stop_flag; /* written by the signal handler, polled by the server */

static void on_signal(int sig) {
    (void)sig;
    stop_flag = 1;
}

static void on_listening(const char *host, int port, void *user) {
    (void)user;
    fprintf(stderr, "quarrel serve: listening on http://%s%s%s:%d\n", strchr(host, ':') ? "[" : "",
            host, strchr(host, ':') ? "]" : "", port);
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: quarrel serve [-m MODEL] [options]\n"
            "  -m, --model NAME      GGUF path or model name (default: stories260K)\n"
            "  --host ADDR           address to bind (default 127.0.0.1; 0.0.0.0 exposes it)\n"
            "  --port N              port (default 8080; 0: any free port, printed on stderr)\n"
            "  --parallel N          slots decoded together (default 1)\n"
            "  -c, --ctx-size N      KV cells shared by the slots (default: the model's, at "
            "most 4096)\n"
            "  -t, --threads N       threads (default: all CPUs)\n"
            "  --queue N             requests waiting for a slot before 429 (default 64)\n"
            "  --max-body BYTES      larger request bodies get 413 (default 1048576)\n"
            "  --alias NAME          model id reported by /v1/models and /api/tags (default: the\n"
            "                        name given to -m, or the file name without .gguf)\n"
            "  --pooling P           embeddings' pooling: none, mean, cls or last (default: the\n"
            "                        model's pooling_type, else mean; none refuses the\n"
            "                        embedding routes, which need one vector per input)\n"
            "  --api-key KEY         require 'Authorization: Bearer KEY'\n"
            "  --api-key-file F      the same, with the key read from a file (first line)\n"
            "  --chat-template T     a built-in template name (chatml, llama3, ...) or Jinja\n"
            "                        source (default: the model's, else chatml)\n"
            "  --chat-template-file F  the chat template read from a Jinja file\n"
            "  --registry URL        /api/pull's registry, a mirror of registry.ollama.ai\n"
            "                        (default $QUARREL_REGISTRY, else registry.ollama.ai)\n"
            "  --insecure            let /api/pull use plain http\n"
            "  --slot-save-path DIR  the folder of POST /slots/{id}?action=save|restore's files\n"
            "                        (default: slot actions disabled)\n");
    spec_options_usage(f);
    fprintf(f, "  (per slot; a request turns it off with \"speculative\": false, or sets\n"
               "  \"speculative.n_max\" (at most the server's), \"speculative.n_min\",\n"
               "  \"speculative.p_min\")\n");
    rope_options_usage(f);
    kv_cache_options_usage(f);
    ctxshift_options_usage(f);
    lora_options_usage(f);
    fprintf(f, "  (per slot; a request sets llama.cpp's \"n_keep\" and \"n_discard\")\n");
}

static int parse_pooling(const char *v, qr_pooling *out) {
    static const char *const names[] = {"none", "mean", "cls", "last"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(v, names[i])) {
            *out = (qr_pooling)i; /* QR_POOLING_NONE .. QR_POOLING_LAST */
            return 0;
        }
    fprintf(stderr, "quarrel serve: --pooling must be none, mean, cls or last, not '%s'\n", v);
    return 1;
}

static int read_key_file(const char *path, char **key) {
    char *text;
    size_t len;
    if (read_file(path, &text, &len)) return 1;
    text[strcspn(text, "\r\n")] = '\0';
    if (!text[0]) {
        fprintf(stderr, "quarrel serve: the API key file '%s' is empty\n", path);
        free(text);
        return 1;
    }
    *key = text;
    return 0;
}

static int load_template(const char *path, char **text) {
    size_t len;
    if (read_file(path, text, &len)) return 1;
    if (len == 0 || strlen(*text) != len) {
        fprintf(stderr, "quarrel serve: --chat-template-file '%s' is %s\n", path,
                len == 0 ? "empty" : "not text (it holds a NUL byte)");
        free(*text);
        *text = NULL;
        return 1;
    }
    return 0;
}

/* A template must render a one-message conversation: a broken one fails now, not per request.
 * A bare word that is no built-in name is a typo, not Jinja source. */
static int check_template(const char *tmpl) {
    if (!strstr(tmpl, "{{") && !strstr(tmpl, "{%")) {
        const char *fam = qr_chat_detect_family(tmpl);
        if (!fam || strcmp(fam, tmpl)) {
            fprintf(stderr,
                    "quarrel serve: --chat-template '%s' is neither a built-in template name "
                    "(chatml, llama2, llama3, zephyr, phi3, gemma, ...) nor Jinja source\n",
                    tmpl);
            return 1;
        }
    }
    char *out = NULL;
    if (qr_chat_apply_template_json(tmpl, "[{\"role\":\"user\",\"content\":\"Hello\"}]", NULL, true,
                                    "", "", &out) != QR_OK) {
        fprintf(stderr, "quarrel serve: the chat template does not render: %s\n", qr_last_error());
        return 1;
    }
    free(out);
    return 0;
}

/* llama.cpp's --slot-save-path: an existing folder */
static int check_slot_save_path(const char *v, const char **out) {
    struct stat sb;
    if (!v[0] || stat(v, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        fprintf(stderr, "quarrel serve: --slot-save-path: not a directory: %s\n", v);
        return 1;
    }
    *out = v;
    return 0;
}

int cmd_serve(int argc, char **argv) {
    qr_server_params p = qr_server_default_params();
    p.port = 8080;
    const char *model = NULL, *key_file = NULL, *tmpl_file = NULL;
    int32_t port = 8080, queue = 64, max_body = 1 << 20;
    qr_context_params cp = qr_context_default_params(); /* the RoPE overrides */
    spec_opts spec = {0};
    ctxshift_opts shift = {0};
    static lora_opts lora; /* 8 KB of names: off the stack */
    p.registry = getenv("QUARREL_REGISTRY");
    p.context = &cp;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        int used = rope_option(a, v, &cp);
        if (used == 0) used = kv_cache_option(a, v, &cp);
        if (used == 0) used = spec_option(a, v, &spec);
        if (used == 0) used = ctxshift_option(a, v, &shift);
        if (used == 0) used = lora_option(a, v, &lora);
        if (used < 0) return 2;
        if (used > 0) {
            i += used - 1;
            continue;
        }
        if (!strcmp(a, "--insecure")) {
            p.insecure = true;
            continue;
        }
        bool takes_value =
            strcmp(a, "-m") == 0 || !strcmp(a, "--model") || !strcmp(a, "--host") ||
            !strcmp(a, "--port") || !strcmp(a, "--parallel") || !strcmp(a, "-c") ||
            !strcmp(a, "--ctx-size") || !strcmp(a, "-t") || !strcmp(a, "--threads") ||
            !strcmp(a, "--api-key") || !strcmp(a, "--api-key-file") || !strcmp(a, "--queue") ||
            !strcmp(a, "--max-body") || !strcmp(a, "--alias") || !strcmp(a, "--chat-template") ||
            !strcmp(a, "--chat-template-file") || !strcmp(a, "--pooling") ||
            !strcmp(a, "--registry") || !strcmp(a, "--slot-save-path");
        if (!takes_value) {
            fprintf(stderr, "quarrel serve: unknown option '%s' (see quarrel serve --help)\n", a);
            return 2;
        }
        if (!v) {
            fprintf(stderr, "quarrel serve: %s needs a value\n", a);
            return 2;
        }
        i++;
        int bad = 0;
        if (!strcmp(a, "-m") || !strcmp(a, "--model"))
            model = v;
        else if (!strcmp(a, "--host"))
            p.host = v;
        else if (!strcmp(a, "--port"))
            bad = parse_int(a, v, 0, 65535, &port);
        else if (!strcmp(a, "--parallel"))
            bad = parse_int(a, v, 1, 256, &p.n_parallel);
        else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size"))
            bad = parse_int(a, v, 0, 1 << 24, &p.n_ctx);
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads"))
            bad = parse_int(a, v, 1, 512, &p.n_threads);
        else if (!strcmp(a, "--queue"))
            bad = parse_int(a, v, 1, 1 << 20, &queue);
        else if (!strcmp(a, "--max-body"))
            bad = parse_int(a, v, 1, 1 << 30, &max_body);
        else if (!strcmp(a, "--alias"))
            p.model_alias = v;
        else if (!strcmp(a, "--api-key"))
            p.api_key = v;
        else if (!strcmp(a, "--chat-template"))
            p.chat_template = v;
        else if (!strcmp(a, "--chat-template-file"))
            tmpl_file = v;
        else if (!strcmp(a, "--registry"))
            p.registry = v;
        else if (!strcmp(a, "--pooling"))
            bad = parse_pooling(v, &p.pooling);
        else if (!strcmp(a, "--slot-save-path"))
            bad = check_slot_save_path(v, &p.slot_save_path);
        else
            key_file = v;
        if (bad) return 2;
    }
    if (p.api_key && key_file) {
        fprintf(stderr, "quarrel serve: give either --api-key or --api-key-file, not both\n");
        return 2;
    }
    if (p.api_key && !p.api_key[0]) {
        fprintf(stderr, "quarrel serve: --api-key must not be empty\n");
        return 2;
    }
    if (p.chat_template && tmpl_file) {
        fprintf(stderr, "quarrel serve: give either --chat-template or --chat-template-file, not "
                        "both\n");
        return 2;
    }
    qr_generate_params sgp = {0};
    if (spec_options_finish(&spec, &sgp)) return 2;
    p.spec_type = sgp.spec_type;
    p.spec_n_max = sgp.spec_n_max;
    p.spec_n_min = sgp.spec_n_min;
    p.spec_p_min = sgp.spec_p_min;
    p.context_shift = shift.on;
    p.n_keep = shift.keep;
    p.lora_paths = (const char *const *)lora.path;
    p.lora_scales = lora.scale;
    p.n_loras = lora.n;
    char draft_path[4096];
    if (sgp.spec_type == QR_SPEC_DRAFT_SIMPLE) {
        if (qr_model_resolve(spec.draft, QR_MODELS_DIR, draft_path, sizeof draft_path) != QR_OK)
            return cli_fail("draft model");
        p.draft_model_path = draft_path;
    }
    char *tmpl_text = NULL;
    if (tmpl_file && load_template(tmpl_file, &tmpl_text)) return 1;
    if (tmpl_text) p.chat_template = tmpl_text;
    if (p.chat_template && check_template(p.chat_template)) {
        free(tmpl_text);
        return 1;
    }
    char *file_key = NULL;
    if (key_file) {
        if (read_key_file(key_file, &file_key)) {
            free(tmpl_text);
            return 1;
        }
        p.api_key = file_key;
    }
    p.port = port;
    p.max_queue = queue;
    p.max_body_bytes = (size_t)max_body;

    char path[4096];
    if (qr_model_resolve(model, QR_MODELS_DIR, path, sizeof path) != QR_OK) {
        free(file_key);
        free(tmpl_text);
        return cli_fail("model");
    }
    p.model_path = path;
    /* a model named rather than given as a path (an ollama store name, a name under
     * $QUARREL_MODELS) is listed under that name, as ollama lists it */
    if (!p.model_alias && model && strcmp(path, model) && !strchr(model, '/'))
        p.model_alias = model;
    p.on_listening = on_listening;
    p.stop = &stop_flag;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    qr_status st = qr_server_run(&p);
    free(file_key);
    free(tmpl_text);
    if (st != QR_OK) return cli_fail_status("serve", st);
    fprintf(stderr, "quarrel serve: stopped\n");
    return 0;
}
