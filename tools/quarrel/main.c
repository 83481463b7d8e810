/* main.c - `quarrel <command> [args]`: dispatch to the subcommands. */
#include "cli.h"
#include "options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} command;

static const command commands[] = {
    {"run", cmd_run, "generate text from a prompt"},
    {"chat", cmd_chat, "chat with a model"},
    {"inspect", cmd_inspect, "show a GGUF file's metadata and tensors"},
    {"tokenize", cmd_tokenize, "show the tokens of a text"},
    {"quantize", cmd_quantize, "convert a GGUF model to another tensor type or mix"},
    {"serve", cmd_serve, "OpenAI-compatible HTTP server"},
    {"bench", cmd_bench, "measure prompt and generation speed (like llama-bench)"},
    {"synth", cmd_synth, "write a random-weight model of a given architecture and shape"},
    {"perplexity", cmd_perplexity, "perplexity of a text, KL divergence between two models"},
    {"eval", cmd_eval, "multiple-choice accuracy on a JSONL task file"},
    {"embed", cmd_embed, "embeddings of texts (like llama-embedding)"},
    {"imatrix", cmd_imatrix, "importance matrix of a text for quantizing (like llama-imatrix)"},
    {"export-lora", cmd_export_lora, "merge LoRA adapters into a model (like llama-export-lora)"},
    {"pull", cmd_pull, "download a model from an ollama registry into the ollama store"},
    {"list", cmd_list, "list the models of the ollama store"},
    {"rm", cmd_rm, "remove a model from the ollama store"},
};

int cli_fail(const char *what) {
    fprintf(stderr, "quarrel: %s: %s\n", what, qr_last_error());
    return 1;
}

int cli_fail_status(const char *what, qr_status st) {
    cli_fail(what);
    return st == QR_ERR_UNSUPPORTED ? 2 : 1;
}

int cli_load_model(const char *path, const qr_model_params *mp, qr_model **out) {
    qr_status st = qr_model_load(path, mp, out);
    return st == QR_OK ? 0 : cli_fail_status("loading model", st);
}

int cli_load_model_text(const char *path, const char *file, qr_model **model, qr_token **tokens,
                        int32_t *n_tokens) {
    char *text = NULL;
    size_t len = 0;
    *tokens = NULL;
    *n_tokens = 0;
    if (file && read_file(file, &text, &len)) return 1;
    const int rc = cli_load_model(path, NULL, model);
    if (rc) {
        free(text);
        return rc;
    }
    if (text && qr_eval_tokenize(*model, text, len, tokens, n_tokens) != QR_OK) {
        free(text);
        qr_model_free(*model);
        *model = NULL;
        return cli_fail(file);
    }
    free(text);
    return 0;
}

static void usage(FILE *f) {
    fprintf(f, "usage: quarrel <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\n`quarrel <command> --help` for a command's options.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) return cmd_run(argc, argv); /* a bare `quarrel` tells a story */
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    if (argv[1][0] == '-') return cmd_run(argc, argv); /* `quarrel -p ...` means run */
    fprintf(stderr, "quarrel: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
