/* cmd_quantize.c - `quarrel quantize IN.gguf OUT.gguf TYPE [options]`: write a copy of a
 * model with its weights converted to TYPE (one of llama.cpp's file types), as
 * llama-quantize. OUT appears only when complete (the writer renames a
 * finished temp file). Options go before or after the positionals. */
#include "cli.h"
#include "options.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: quarrel quantize IN.gguf OUT.gguf TYPE [--imatrix FILE] [--pure]\n"
            "                        [--allow-requantize] [--leave-output-tensor]\n"
            "                        [--output-tensor-type T] [--token-embedding-type T] [-t N] [-v]\n"
            "\n"
            "Converts the weight matrices of IN to TYPE, as llama-quantize; norms and other 1-D\n"
            "tensors keep their type. TYPE is one of llama.cpp's file types (any case):\n"
            "  F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q6_K\n"
            "  Q2_K Q2_K_S Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M Q5_K_S Q5_K_M   (k-quant mixes)\n"
            "  IQ1_S IQ1_M IQ2_XXS IQ2_XS IQ2_S IQ2_M IQ3_XXS IQ3_XS IQ3_S IQ3_M IQ4_NL IQ4_XS\n"
            "  TQ1_0 TQ2_0 MXFP4_MOE\n"
            "or Q3_K, Q4_K, Q5_K: every weight matrix of that type. The mixes give attn_v, ffn_down,\n"
            "attn_output, token_embd and output their own types by layer, with llama.cpp's rules;\n"
            "rows whose length is not a multiple of a type's block fall back as in llama.cpp (the\n"
            "256-wide IQ types -> iq4_nl, q2_K/q3_K/tq* -> q4_0, q4_K -> q5_0, q5_K -> q5_1,\n"
            "q6_K -> q8_0). IQ1_*, IQ2_*, IQ3_XXS and Q2_K_S need an importance matrix.\n"
            "\n"
            "options:\n"
            "  --imatrix FILE              importance matrix (llama-imatrix's imatrix.dat or GGUF,\n"
            "                              `quarrel imatrix` makes one): each tensor uses the entry\n"
            "                              named as it\n"
            "  --pure                      every weight matrix gets TYPE's main type (no mix rules)\n"
            "  --allow-requantize          accept quantized input (dequantized, then quantized)\n"
            "  --leave-output-tensor       output.weight keeps its type\n"
            "  --output-tensor-type T      type of output.weight (q8_0, f16, q6_K, ...)\n"
            "  --token-embedding-type T    type of token_embd.weight\n"
            "  -t, --threads N             threads (default: all CPUs)\n"
            "  -v, --verbose               one line per tensor on stderr\n");
}

/* the value of option argv[*i], advancing *i; NULL (after a message) if there is none */
static const char *option_value(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        fprintf(stderr, "quarrel quantize: %s needs a value\n", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

int cmd_quantize(int argc, char **argv) {
    const char *pos[3];
    int n_pos = 0;
    qr_quantize_params params = {.n_threads = 0, .verbose = false};
    const char *imatrix_path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            const char *v = option_value(argc, argv, &i);
            if (!v || parse_int(a, v, 1, 1024, &params.n_threads)) return 2;
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            params.verbose = true;
        } else if (!strcmp(a, "--pure")) {
            params.pure = true;
        } else if (!strcmp(a, "--allow-requantize")) {
            params.allow_requantize = true;
        } else if (!strcmp(a, "--leave-output-tensor")) {
            params.leave_output_tensor = true;
        } else if (!strcmp(a, "--imatrix")) {
            if (!(imatrix_path = option_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--output-tensor-type")) {
            if (!(params.output_tensor_type = option_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--token-embedding-type")) {
            if (!(params.token_embedding_type = option_value(argc, argv, &i))) return 2;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "quarrel quantize: unknown option '%s'\n\n", a);
            usage(stderr);
            return 2;
        } else if (n_pos < 3) {
            pos[n_pos++] = a;
        } else {
            fprintf(stderr, "quarrel quantize: unexpected argument '%s'\n\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (n_pos != 3) {
        fprintf(stderr, "quarrel quantize: expected IN.gguf OUT.gguf TYPE, got %d argument%s\n\n",
                n_pos, n_pos == 1 ? "" : "s");
        usage(stderr);
        return 2;
    }
    qr_imatrix *imatrix = NULL;
    if (imatrix_path) {
        if (qr_imatrix_load(imatrix_path, &imatrix) != QR_OK) return cli_fail("quantize");
        params.imatrix = imatrix;
    }
    const qr_status st = qr_quantize_file(pos[0], pos[1], pos[2], &params);
    qr_imatrix_free(imatrix);
    if (st != QR_OK) return cli_fail("quantize");
    printf("quarrel: wrote %s (%s%s%s)\n", pos[1], pos[2], params.pure ? ", pure" : "",
           imatrix_path ? ", with importance matrix" : "");
    return 0;
}
