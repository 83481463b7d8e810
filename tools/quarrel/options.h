/* options.h - option parsing shared by the subcommands: numbers with range checks, files, the
 * sampler flags and the RoPE override flags (llama.cpp's names). */
#ifndef QR_CLI_OPTIONS_H
#define QR_CLI_OPTIONS_H

#include "quarrel.h"

#include <stdio.h>

/* Parse an integer/float option value in [lo, hi]; prints an error naming the flag and returns
 * non-zero when the value is not one. */
int parse_int(const char *flag, const char *v, int64_t lo, int64_t hi, int32_t *out);
int parse_float(const char *flag, const char *v, double lo, double hi, float *out);
/* Whether `flag`, not otherwise known to subcommand cmd, is one of its n_names options that take
 * a value (names) and has one (v); if not, prints "quarrel <cmd>: unknown option" or "... needs a
 * value" and returns non-zero. */
int value_option(const char *cmd, const char *flag, const char *v, const char *const *names,
                 size_t n_names);
/* Read a whole file (NUL-terminated, *len without the NUL); prints an error on failure. */
int read_file(const char *path, char **out, size_t *len);

#define MAX_DRY_BREAKERS 16

/* If `flag` is a sampler option, apply it (value v) and return how many argv entries it used
 * (1 or 2); 0 if it is not one; -1 after printing an error. The --dry-sequence-breaker values
 * go to breakers[0..MAX_DRY_BREAKERS), which sp then points to (the first one replaces the
 * default breakers). */
int sampler_option(const char *flag, const char *v, qr_sampler_params *sp, const char **stops,
                   int *n_stops, int max_stops, qr_logit_bias *biases, int *n_biases,
                   int max_biases, const char **breakers);
void sampler_options_usage(FILE *f);

/* The grammar flags (llama.cpp's names): --grammar TEXT, --grammar-file FILE, -j/--json-schema
 * JSON, -jf/--json-schema-file FILE; at most one of them. */
typedef struct grammar_opts {
    const char *flag;  /* the one given, NULL if none */
    const char *value; /* its argument (argv's) */
    char *text;        /* the GBNF text once grammar_options_finish succeeds (malloc'd) */
} grammar_opts;
/* If `flag` is a grammar flag, record it and return 2; 0 if it is not one; -1 after printing an
 * error (no value, a second grammar flag). */
int grammar_option(const char *flag, const char *v, grammar_opts *g);
/* Read the file, convert the schema, check the grammar, and point sp->grammar at the text; 0,
 * or 1 after printing an error naming the flag and the problem (line and column for GBNF). */
int grammar_options_finish(grammar_opts *g, qr_sampler_params *sp);

/* If `flag` is a RoPE override (llama.cpp's --rope-scaling, --rope-scale, --rope-freq-base,
 * --rope-freq-scale, --yarn-orig-ctx, --yarn-ext-factor, --yarn-attn-factor, --yarn-beta-fast,
 * --yarn-beta-slow), set its field of cp from value v and return 2 (the argv entries used); 0
 * if it is not one; -1 after printing an error naming the flag and the value. */
int rope_option(const char *flag, const char *v, qr_context_params *cp);
void rope_options_usage(FILE *f);

/* If `flag` is a KV cache type flag (llama.cpp's -ctk/--cache-type-k, -ctv/--cache-type-v;
 * --kv-type sets both) or -fa/--flash-attn on|off|auto, set cp's type_k and/or type_v or
 * flash_attn from value v and return 2; 0 if it is not one; -1 after printing an error naming the
 * flag and the allowed types. Whether the model can hold the type (its head size) is
 * qr_context_create's to say. */
int kv_cache_option(const char *flag, const char *v, qr_context_params *cp);
void kv_cache_options_usage(FILE *f);

/* Speculative decoding (llama.cpp's names): -md/--model-draft/--spec-draft-model FILE,
 * --spec-type draft-simple|ngram-simple, --spec-draft-n-max N, --spec-draft-n-min N,
 * --spec-draft-p-min P. */
typedef struct spec_opts {
    const char *draft;     /* the draft model's name (NULL: none) */
    const char *type;      /* --spec-type as given (NULL: draft-simple with a draft, else off) */
    const char *n_max_arg; /* --spec-draft-n-max as given (checked in spec_options_finish) */
    int32_t n_min;
    float p_min;
} spec_opts;
/* If `flag` is a speculative-decoding flag, record it and return 2; 0 if not; -1 after an
 * error. */
int spec_option(const char *flag, const char *v, spec_opts *so);
void spec_options_usage(FILE *f);
/* Check the flags into gp's spec fields (nothing when speculation is off); 0, or 1 after
 * printing the error. */
int spec_options_finish(const spec_opts *so, qr_generate_params *gp);
/* With a draft model: load it, check its vocabulary against the target's (an error) and its
 * size (a warning when it is not smaller), and create its context with cp and target_ctx's
 * thread pool (target_ctx NULL: its own); gp->spec_draft is set. 0, or the exit status after
 * printing the failure. */
int spec_load_draft(const spec_opts *so, const qr_model *target, qr_context *target_ctx,
                    const qr_context_params *cp, qr_model **draft_model, qr_context **draft_ctx,
                    qr_generate_params *gp);
/* Context shift (llama.cpp's names): --context-shift / --no-context-shift, --keep N (tokens
 * kept from the start of the prompt when the context shifts; -1: the whole prompt). */
typedef struct ctxshift_opts {
    bool on;
    int32_t keep;
} ctxshift_opts;
/* If `flag` is a context-shift flag, apply it and return the argv entries used (1 or 2); 0 if
 * not; -1 after printing an error naming the flag and the value. */
int ctxshift_option(const char *flag, const char *v, ctxshift_opts *co);
void ctxshift_options_usage(FILE *f);
/* llama.cpp's n_keep (tools/completion): --keep N plus one when the prompt starts with the
 * vocabulary's BOS; the whole prompt (n_prompt tokens) when N < 0 or longer than it. */
int32_t ctxshift_keep(const ctxshift_opts *co, int32_t n_prompt, bool bos_added);

/* LoRA adapters (llama.cpp's syntax): --lora FILE (scale 1) and --lora-scaled FILE:SCALE, each
 * repeatable and taking comma-separated lists. */
typedef struct lora_opts {
    int32_t n;
    char *path[QR_MAX_LORAS]; /* in buf */
    char buf[8192];
    size_t buf_used;
    float scale[QR_MAX_LORAS];
    qr_lora *adapter[QR_MAX_LORAS]; /* lora_options_load's */
} lora_opts;
/* If `flag` is a LoRA flag, record its files and return 2; 0 if not; -1 after an error. */
int lora_option(const char *flag, const char *v, lora_opts *lo);
void lora_options_usage(FILE *f);
/* Load every adapter for model; 0, or the exit status after printing the failure (naming the
 * file and the problem). */
int lora_options_load(lora_opts *lo, const qr_model *model);
/* Attach the loaded adapters to ctx with their scales (nothing without any); 0, or 1 after
 * printing the failure. */
int lora_options_attach(const lora_opts *lo, qr_context *ctx);
/* free the loaded adapters */
void lora_options_free(lora_opts *lo);
#endif
