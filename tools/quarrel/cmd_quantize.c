/* cmd_quantize.c - `quarrel quantize IN.gguf OUT.gguf TYPE [--imatrix FILE] [--pure] [-t N]
 * [-v]`: write a copy of a model with its weights converted to TYPE (a tensor type or one of
 * llama.cpp's mixes), as llama-quantize. OUT appears only when complete (the writer renames a
 * finished temp file). Options go before or after the positionals. */
#include "cli.h"
#include "options.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: quarrel quantize IN.gguf OUT.gguf TYPE [--imatrix FILE] [--pure] [-t N] [-v]\n"
            "\n"
            "Converts the F32/F16/BF16 weight matrices of IN to TYPE; norms and other 1-D tensors\n"
            "keep their type. TYPE is one of\n"
            "  F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q6_K   llama.cpp's file types of those names\n"
            "  Q3_K Q4_K Q5_K                           every weight matrix of that type (pure)\n"
            "  Q2_K Q3_K_S Q3_K_M Q3_K_L                llama.cpp's mixes (more bits for attn_v,\n"
            "  Q4_K_S Q4_K_M Q5_K_S Q5_K_M              ffn_down, attn_output and output, by\n"
            "  IQ4_NL IQ4_XS                            layer)\n"
            "(names in any case). Rows whose length is not a multiple of a type's block fall back\n"
            "as in llama.cpp (q4_K -> q5_0, q5_K -> q5_1, q6_K -> q8_0, q2_K/q3_K -> q4_0,\n"
            "iq4_xs -> iq4_nl).\n"
            "\n"
            "options:\n"
            "  --imatrix FILE    importance matrix (llama-imatrix's imatrix.dat or GGUF): the\n"
            "                    q4_0..q5_1, k-quant, iq4_nl and iq4_xs tensors use the entry\n"
            "                    named as the tensor (as llama-quantize --imatrix); q8_0 and the\n"
            "                    float types ignore it\n"
            "  --pure            every weight matrix gets TYPE's main type (no mix rules)\n"
            "  -t, --threads N   threads (default: all CPUs)\n"
            "  -v, --verbose     one line per tensor on stderr\n");
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
            if (i + 1 >= argc) {
                fprintf(stderr, "quarrel quantize: %s needs a value\n", a);
                return 2;
            }
            if (parse_int(a, argv[++i], 1, 1024, &params.n_threads)) return 2;
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            params.verbose = true;
        } else if (!strcmp(a, "--pure")) {
            params.pure = true;
        } else if (!strcmp(a, "--imatrix")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "quarrel quantize: %s needs a value\n", a);
                return 2;
            }
            imatrix_path = argv[++i];
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
