/* cmd_export_lora.c - `quarrel export-lora`: LoRA adapters merged into a base model's weights,
 * written as a plain model (llama-export-lora's flags and output). */
#include "cli.h"
#include "options.h"

#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: quarrel export-lora -m BASE.gguf --lora A.gguf [--lora-scaled B.gguf:S] -o "
            "OUT.gguf\n"
            "  -m, --model FILE      the base model (a GGUF path or model name)\n"
            "  -o, --output FILE     the merged model (default ggml-lora-merged-f16.gguf)\n"
            "  -t, --threads N       accepted for llama-export-lora's syntax (one thread)\n"
            "Adapted tensors become W + scale * alpha / rank * B A, F32 where the base tensor is\n"
            "F32 and F16 otherwise (a quantized one is dequantized); the rest is copied.\n");
    lora_options_usage(f);
}

int cmd_export_lora(int argc, char **argv) {
    const char *model = NULL, *out = "ggml-lora-merged-f16.gguf";
    lora_opts lo;
    memset(&lo, 0, sizeof lo);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        int used = lora_option(a, v, &lo);
        if (used < 0) return 2;
        if (used > 0) {
            i++;
            continue;
        }
        static const char *const names[] = {"-m", "--model", "-o", "--output", "-t", "--threads"};
        if (value_option("export-lora", a, v, names, sizeof names / sizeof *names)) return 2;
        i++;
        int32_t threads;
        if (!strcmp(a, "-m") || !strcmp(a, "--model"))
            model = v;
        else if (!strcmp(a, "-o") || !strcmp(a, "--output"))
            out = v;
        else if (parse_int(a, v, 1, 1024, &threads))
            return 2;
    }
    if (!model) {
        fprintf(stderr, "quarrel export-lora: -m BASE.gguf is required\n");
        return 2;
    }
    if (lo.n == 0) {
        fprintf(stderr,
                "quarrel export-lora: no adapter (--lora FILE or --lora-scaled FILE:SCALE)\n");
        return 2;
    }
    char path[4096];
    if (qr_model_resolve(model, QR_MODELS_DIR, path, sizeof path) != QR_OK)
        return cli_fail("model");
    qr_status st = qr_lora_export(path, (const char *const *)lo.path, lo.scale, lo.n, out);
    if (st) return cli_fail_status("export-lora", st);
    fprintf(stderr, "quarrel export-lora: %d adapter%s merged into %s\n", (int)lo.n,
            lo.n > 1 ? "s" : "", out);
    return 0;
}
