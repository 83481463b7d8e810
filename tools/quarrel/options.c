/* options.c - shared option parsing for the CLI. */
#include "options.h"
#include "cli.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int parse_int(const char *flag, const char *v, int64_t lo, int64_t hi, int32_t *out) {
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) {
        fprintf(stderr, "quarrel: %s expects an integer from %lld to %lld, got '%s'\n", flag,
                (long long)lo, (long long)hi, v);
        return 1;
    }
    *out = (int32_t)x;
    return 0;
}

int parse_float(const char *flag, const char *v, double lo, double hi, float *out) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !(x >= lo && x <= hi)) {
        fprintf(stderr, "quarrel: %s expects a number from %g to %g, got '%s'\n", flag, lo, hi, v);
        return 1;
    }
    *out = (float)x;
    return 0;
}

int value_option(const char *cmd, const char *flag, const char *v, const char *const *names,
                 size_t n_names) {
    bool known = false;
    for (size_t k = 0; k < n_names; k++)
        known = known || !strcmp(flag, names[k]);
    if (!known) {
        fprintf(stderr, "quarrel %s: unknown option '%s' (see quarrel %s --help)\n", cmd, flag,
                cmd);
        return 1;
    }
    if (!v) {
        fprintf(stderr, "quarrel %s: %s needs a value\n", cmd, flag);
        return 1;
    }
    return 0;
}

int read_file(const char *path, char **out, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "quarrel: cannot open '%s': %s\n", path, strerror(errno));
        return 1;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) break;
        if (n + 1 >= cap) {
            char *b = realloc(buf, cap *= 2);
            if (!b) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = b;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    bool err = ferror(f);
    fclose(f);
    if (!buf || err) {
        fprintf(stderr, "quarrel: cannot read '%s'\n", path);
        free(buf);
        return 1;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

void sampler_options_usage(FILE *f) {
    fprintf(
        f,
        "sampling (llama.cpp's names):\n"
        "  --temp T              temperature (default 0.8; 0 = greedy)\n"
        "  --top-k K             keep the K most likely tokens (default 40; 0 = off)\n"
        "  --top-p P             nucleus sampling (default 0.95; 1 = off)\n"
        "  --min-p P             drop tokens below P x the top probability (default 0.05)\n"
        "  --typical P           locally typical sampling (default 1 = off)\n"
        "  --xtc-probability P   XTC: chance per token to cut the top choices (default 0 = off)\n"
        "  --xtc-threshold P     XTC cuts tokens with p >= P but the least likely (default 0.1)\n"
        "  --repeat-penalty X    penalise repeated tokens (default 1 = off)\n"
        "  --repeat-last-n N     tokens of history the penalties see (default 64; -1 = all)\n"
        "  --presence-penalty X  --frequency-penalty X   (default 0 = off)\n"
        "  --dry-multiplier X    DRY: penalise tokens that extend a repetition (default 0 = off)\n"
        "  --dry-base X          DRY: the penalty's growth per repeated token (default 1.75, >= "
        "1)\n"
        "  --dry-allowed-length N   repetitions of up to N tokens go unpenalised (default 2)\n"
        "  --dry-penalty-last-n N   tokens of history DRY scans (default 64; -1 = all, 0 = off)\n"
        "  --dry-sequence-breaker S  a repetition does not reach back across S (repeatable;\n"
        "                        replaces the defaults '\\n' ':' '\"' '*'; 'none': no breakers)\n"
        "  --mirostat N          0 = off, 1 = mirostat, 2 = mirostat v2\n"
        "  --mirostat-lr ETA     --mirostat-ent TAU\n"
        "  --dynatemp-range R    --dynatemp-exp E   entropy-adaptive temperature\n"
        "  --logit-bias ID(+|-)BIAS   e.g. 15043+1 or 15043-inf (repeatable)\n"
        "  --quality             a preset: adaptive temperature and frequency-weighted penalties\n"
        "  --seed N              random seed (default: random, printed)\n"
        "  --stop TEXT           stop at this text (repeatable; not printed)\n"
        "structured output (llama.cpp's names; one of them):\n"
        "  --grammar TEXT        only text this GBNF grammar accepts (root rule 'root')\n"
        "  --grammar-file FILE   the grammar from a file\n"
        "  -j, --json-schema JSON   only JSON matching this schema (converted to a grammar)\n"
        "  -jf, --json-schema-file FILE   the schema from a file\n");
}

int grammar_option(const char *a, const char *v, grammar_opts *g) {
    if (strcmp(a, "--grammar") && strcmp(a, "--grammar-file") && strcmp(a, "-j") &&
        strcmp(a, "--json-schema") && strcmp(a, "-jf") && strcmp(a, "--json-schema-file"))
        return 0;
    if (!v) {
        fprintf(stderr, "quarrel: %s needs a value\n", a);
        return -1;
    }
    if (g->flag) {
        fprintf(stderr, "quarrel: %s and %s both give a grammar: use one of them\n", g->flag, a);
        return -1;
    }
    g->flag = a;
    g->value = v;
    return 2;
}

int grammar_options_finish(grammar_opts *g, qr_sampler_params *sp) {
    if (!g->flag) return 0;
    const bool file = !strcmp(g->flag, "--grammar-file") || !strcmp(g->flag, "-jf") ||
                      !strcmp(g->flag, "--json-schema-file");
    const bool schema = !strcmp(g->flag, "-j") || !strcmp(g->flag, "--json-schema") ||
                        !strcmp(g->flag, "-jf") || !strcmp(g->flag, "--json-schema-file");
    char *src = NULL;
    size_t len = strlen(g->value);
    if (file && read_file(g->value, &src, &len)) return 1;
    const char *in = file ? src : g->value;
    if (schema) {
        if (qr_json_schema_to_grammar(in, len, &g->text) != QR_OK) {
            fprintf(stderr, "quarrel: %s%s%s: %s\n", g->flag, file ? " " : "", file ? g->value : "",
                    qr_last_error());
            free(src);
            return 1;
        }
        free(src);
    } else {
        g->text = file ? src : strdup(g->value);
        if (!g->text) {
            fprintf(stderr, "quarrel: out of memory\n");
            return 1;
        }
    }
    if (qr_grammar_check(g->text, NULL) != QR_OK) {
        fprintf(stderr, "quarrel: %s%s%s: %s\n", g->flag, file ? " " : "", file ? g->value : "",
                qr_last_error());
        free(g->text);
        g->text = NULL;
        return 1;
    }
    sp->grammar = g->text;
    return 0;
}

static int parse_bias(const char *v, qr_logit_bias *b) {
    char *end;
    errno = 0;
    long id = strtol(v, &end, 10);
    if (errno || end == v || id < 0 || id > INT32_MAX || (*end != '+' && *end != '-')) return 1;
    const char *num = end;
    if (!strcmp(num + 1, "inf") || !strcmp(num + 1, "infinity")) {
        b->bias = *num == '-' ? -INFINITY : INFINITY;
    } else {
        char *e2;
        double x = strtod(num, &e2);
        if (e2 == num || *e2 || !isfinite(x)) return 1;
        b->bias = (float)x;
    }
    b->token = (qr_token)id;
    return 0;
}

/* --dry-sequence-breaker, as llama.cpp: the first one replaces the defaults, "none" clears the
 * list so far. The strings are argv's. */
static int dry_breaker_option(const char *v, qr_sampler_params *sp, const char **breakers) {
    if (sp->dry_sequence_breakers != breakers) {
        sp->dry_sequence_breakers = breakers;
        sp->n_dry_sequence_breakers = 0;
    }
    if (!strcmp(v, "none")) {
        sp->n_dry_sequence_breakers = 0;
        return 2;
    }
    if (!*v) {
        fprintf(stderr, "quarrel: --dry-sequence-breaker needs a non-empty string (or 'none')\n");
        return -1;
    }
    if (sp->n_dry_sequence_breakers >= MAX_DRY_BREAKERS) {
        fprintf(stderr, "quarrel: at most %d --dry-sequence-breaker strings\n", MAX_DRY_BREAKERS);
        return -1;
    }
    breakers[sp->n_dry_sequence_breakers++] = v;
    return 2;
}

int sampler_option(const char *a, const char *v, qr_sampler_params *sp, const char **stops,
                   int *n_stops, int max_stops, qr_logit_bias *biases, int *n_biases,
                   int max_biases, const char **breakers) {
    static const struct {
        const char *flag;
        size_t off;
        double lo, hi;
    } floats[] = {
        {"--temp", offsetof(qr_sampler_params, temp), -1e9, 1e9},
        {"--top-p", offsetof(qr_sampler_params, top_p), 0, 1},
        {"--min-p", offsetof(qr_sampler_params, min_p), 0, 1},
        {"--typical", offsetof(qr_sampler_params, typical_p), 0, 1},
        {"--xtc-probability", offsetof(qr_sampler_params, xtc_probability), 0, 1},
        {"--xtc-threshold", offsetof(qr_sampler_params, xtc_threshold), 0, 1},
        {"--repeat-penalty", offsetof(qr_sampler_params, repeat_penalty), 0, 1e9},
        {"--presence-penalty", offsetof(qr_sampler_params, presence_penalty), -1e9, 1e9},
        {"--frequency-penalty", offsetof(qr_sampler_params, frequency_penalty), -1e9, 1e9},
        {"--mirostat-lr", offsetof(qr_sampler_params, mirostat_eta), 0, 1e9},
        {"--mirostat-ent", offsetof(qr_sampler_params, mirostat_tau), 0, 1e9},
        {"--dynatemp-range", offsetof(qr_sampler_params, dynatemp_range), 0, 1e9},
        {"--dynatemp-exp", offsetof(qr_sampler_params, dynatemp_exp), 0, 1e9},
        {"--dry-multiplier", offsetof(qr_sampler_params, dry_multiplier), 0, 1e9},
        {"--dry-base", offsetof(qr_sampler_params, dry_base), 1, 1e9},
    };
    for (size_t i = 0; i < sizeof floats / sizeof floats[0]; i++) {
        if (strcmp(a, floats[i].flag)) continue;
        if (!v) {
            fprintf(stderr, "quarrel: %s needs a value\n", a);
            return -1;
        }
        return parse_float(a, v, floats[i].lo, floats[i].hi, (float *)((char *)sp + floats[i].off))
                   ? -1
                   : 2;
    }
    bool is_int = !strcmp(a, "--top-k") || !strcmp(a, "--repeat-last-n") ||
                  !strcmp(a, "--mirostat") || !strcmp(a, "--dry-allowed-length") ||
                  !strcmp(a, "--dry-penalty-last-n");
    if (is_int || !strcmp(a, "--seed") || !strcmp(a, "--logit-bias") || !strcmp(a, "--stop") ||
        !strcmp(a, "--dry-sequence-breaker")) {
        if (!v) {
            fprintf(stderr, "quarrel: %s needs a value\n", a);
            return -1;
        }
    }
    if (!strcmp(a, "--top-k")) return parse_int(a, v, 0, INT32_MAX, &sp->top_k) ? -1 : 2;
    if (!strcmp(a, "--repeat-last-n"))
        return parse_int(a, v, -1, INT32_MAX, &sp->repeat_last_n) ? -1 : 2;
    if (!strcmp(a, "--dry-allowed-length"))
        return parse_int(a, v, 0, INT32_MAX, &sp->dry_allowed_length) ? -1 : 2;
    if (!strcmp(a, "--dry-penalty-last-n"))
        return parse_int(a, v, -1, INT32_MAX, &sp->dry_penalty_last_n) ? -1 : 2;
    if (!strcmp(a, "--dry-sequence-breaker")) return dry_breaker_option(v, sp, breakers);
    if (!strcmp(a, "--mirostat")) {
        return parse_int(a, v, 0, 2, &sp->mirostat) ? -1 : 2;
    }
    if (!strcmp(a, "--seed")) {
        char *end;
        errno = 0;
        unsigned long long s = strtoull(v, &end, 10);
        if (errno || end == v || *end || v[0] == '-' || s == QR_SEED_RANDOM) {
            fprintf(stderr,
                    "quarrel: --seed expects a non-negative integer below 2^64-1, got '%s'\n", v);
            return -1;
        }
        sp->seed = s;
        return 2;
    }
    if (!strcmp(a, "--logit-bias")) {
        if (*n_biases >= max_biases) {
            fprintf(stderr, "quarrel: at most %d --logit-bias options\n", max_biases);
            return -1;
        }
        if (parse_bias(v, &biases[*n_biases])) {
            fprintf(stderr,
                    "quarrel: --logit-bias expects TOKEN_ID+BIAS or TOKEN_ID-BIAS (e.g. 15043+1.5, "
                    "2-inf), "
                    "got '%s'\n",
                    v);
            return -1;
        }
        (*n_biases)++;
        return 2;
    }
    if (!strcmp(a, "--stop")) {
        if (*n_stops >= max_stops) {
            fprintf(stderr, "quarrel: at most %d --stop strings\n", max_stops);
            return -1;
        }
        if (!*v) {
            fprintf(stderr, "quarrel: --stop needs a non-empty string\n");
            return -1;
        }
        stops[(*n_stops)++] = v;
        return 2;
    }
    if (!strcmp(a, "--quality")) {
        sp->quality = true;
        return 1;
    }
    return 0;
}

/* ---- RoPE overrides ---- */

void rope_options_usage(FILE *f) {
    fprintf(f,
            "RoPE (llama.cpp's names; default: what the model's GGUF declares):\n"
            "  --rope-scaling none|linear|yarn   frequency scaling method (none: no scaling)\n"
            "  --rope-scale N        expand the context by a factor of N (= --rope-freq-scale "
            "1/N)\n"
            "  --rope-freq-base N    RoPE base frequency (NTK-aware scaling)\n"
            "  --rope-freq-scale N   frequency scaling factor; expands the context by 1/N\n"
            "  --yarn-orig-ctx N     YaRN: the model's original context (default 0: the GGUF's,\n"
            "                        else its training context)\n"
            "  --yarn-ext-factor N   YaRN: extrapolation mix, 0 to 1 (default: 1 with yarn "
            "scaling,\n"
            "                        else 0; 0 = full interpolation)\n"
            "  --yarn-attn-factor N  YaRN: attention magnitude scale (default: the model's, 1)\n"
            "  --yarn-beta-fast N    YaRN: low correction dim (default: the model's, 32)\n"
            "  --yarn-beta-slow N    YaRN: high correction dim (default: the model's, 1)\n");
}

/* A finite number > 0 that stays a normal positive float (so 1/x is finite too). */
static int parse_positive(const char *flag, const char *v, float *out) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !(x >= FLT_MIN && x <= FLT_MAX)) {
        fprintf(stderr, "quarrel: %s expects a positive number, got '%s'\n", flag, v);
        return 1;
    }
    *out = (float)x;
    return 0;
}

int rope_option(const char *a, const char *v, qr_context_params *cp) {
    static const char *const flags[] = {
        "--rope-scaling",     "--rope-scale",     "--rope-freq-base",
        "--rope-freq-scale",  "--yarn-orig-ctx",  "--yarn-ext-factor",
        "--yarn-attn-factor", "--yarn-beta-fast", "--yarn-beta-slow"};
    bool known = false;
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        known = known || !strcmp(a, flags[i]);
    if (!known) return 0;
    if (!v) {
        fprintf(stderr, "quarrel: %s needs a value\n", a);
        return -1;
    }
    if (!strcmp(a, "--rope-scaling")) {
        /* llama.cpp's set. LongRoPE needs the model's long/short factor tables, so it is only
         * ever the model's own choice (DEFAULT), never an override. */
        if (!strcmp(v, "none"))
            cp->rope_scaling = QR_ROPE_SCALING_NONE;
        else if (!strcmp(v, "linear"))
            cp->rope_scaling = QR_ROPE_SCALING_LINEAR;
        else if (!strcmp(v, "yarn"))
            cp->rope_scaling = QR_ROPE_SCALING_YARN;
        else {
            fprintf(stderr, "quarrel: --rope-scaling expects none, linear or yarn, got '%s'%s\n", v,
                    !strcmp(v, "longrope") ? " (LongRoPE is used when the model declares it: it "
                                             "needs the model's factor tables)"
                                           : "");
            return -1;
        }
        return 2;
    }
    if (!strcmp(a, "--rope-scale")) {
        float factor;
        if (parse_positive(a, v, &factor)) return -1;
        cp->rope_freq_scale = 1.0f / factor; /* as llama.cpp: expands the context N times */
        return 2;
    }
    if (!strcmp(a, "--rope-freq-base")) return parse_positive(a, v, &cp->rope_freq_base) ? -1 : 2;
    if (!strcmp(a, "--rope-freq-scale")) return parse_positive(a, v, &cp->rope_freq_scale) ? -1 : 2;
    if (!strcmp(a, "--yarn-orig-ctx")) /* 0: the model's, as llama.cpp */
        return parse_int(a, v, 0, INT32_MAX, &cp->yarn_orig_ctx) ? -1 : 2;
    /* the mix between interpolated and extrapolated angles: outside 0..1 it is neither */
    if (!strcmp(a, "--yarn-ext-factor"))
        return parse_float(a, v, 0, 1, &cp->yarn_ext_factor) ? -1 : 2;
    if (!strcmp(a, "--yarn-attn-factor"))
        return parse_positive(a, v, &cp->yarn_attn_factor) ? -1 : 2;
    if (!strcmp(a, "--yarn-beta-fast")) return parse_positive(a, v, &cp->yarn_beta_fast) ? -1 : 2;
    return parse_positive(a, v, &cp->yarn_beta_slow) ? -1 : 2; /* --yarn-beta-slow */
}

/* ---- KV cache types ---- */

void kv_cache_options_usage(FILE *f) {
    fprintf(f, "KV cache (llama.cpp's names):\n"
               "  -ctk, --cache-type-k T  K cache type: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, "
               "q5_1,\n"
               "                        iq4_nl (default f16; the quantized types need a head size\n"
               "                        that 32 divides)\n"
               "  -ctv, --cache-type-v T  V cache type, the same types (default f16)\n"
               "  --kv-type T           both at once (the older flag)\n"
               "  -fa, --flash-attn on|off|auto  flash attention (default auto: where the cache\n"
               "                        types need it; a quantized or bf16 V cache needs it)\n");
}

int kv_cache_option(const char *a, const char *v, qr_context_params *cp) {
    if (!strcmp(a, "-fa") || !strcmp(a, "--flash-attn")) {
        if (!v) {
            fprintf(stderr, "quarrel: %s needs a value\n", a);
            return -1;
        }
        if (!strcmp(v, "on"))
            cp->flash_attn = QR_FLASH_ATTN_ON;
        else if (!strcmp(v, "off"))
            cp->flash_attn = QR_FLASH_ATTN_OFF;
        else if (!strcmp(v, "auto"))
            cp->flash_attn = QR_FLASH_ATTN_AUTO;
        else {
            fprintf(stderr, "quarrel: %s expects on, off or auto, got '%s'\n", a, v);
            return -1;
        }
        return 2;
    }
    const bool k = !strcmp(a, "-ctk") || !strcmp(a, "--cache-type-k");
    const bool both = !strcmp(a, "--kv-type");
    if (!k && !both && strcmp(a, "-ctv") && strcmp(a, "--cache-type-v")) return 0;
    if (!v) {
        fprintf(stderr, "quarrel: %s needs a value\n", a);
        return -1;
    }
    qr_kv_type t;
    if (qr_kv_type_parse(v, &t) != QR_OK) {
        fprintf(stderr, "quarrel: %s: %s\n", a, qr_last_error());
        return -1;
    }
    if (k || both) cp->type_k = t;
    if (!k || both) cp->type_v = t;
    return 2;
}

/* ---- speculative decoding ---- */

void spec_options_usage(FILE *f) {
    fprintf(
        f,
        "speculative decoding (llama.cpp's names):\n"
        "  -md, --model-draft, --spec-draft-model FILE   a draft model with the target's\n"
        "                        vocabulary, smaller and faster (greedy text as without one\n"
        "                        where the logits are batch-invariant)\n"
        "  --spec-type draft-simple|ngram-simple   a draft model's guesses (the default with\n"
        "                        -md), or the continuation of the last n-gram's latest earlier\n"
        "                        occurrence in the context (no draft model)\n"
        "  --spec-draft-n-max N  most tokens guessed per step (default %d)\n"
        "  --spec-draft-n-min N  a shorter guess is not checked (default 0)\n"
        "  --spec-draft-p-min P  the draft stops where its top probability is below P "
        "(default 0)\n",
        QR_SPEC_N_MAX_DEFAULT);
}

int spec_option(const char *a, const char *v, spec_opts *so) {
    const bool draft =
        !strcmp(a, "-md") || !strcmp(a, "--model-draft") || !strcmp(a, "--spec-draft-model");
    if (!draft && strcmp(a, "--spec-type") && strcmp(a, "--spec-draft-n-max") &&
        strcmp(a, "--spec-draft-n-min") && strcmp(a, "--spec-draft-p-min"))
        return 0;
    if (!v) {
        fprintf(stderr, "quarrel: %s needs a value\n", a);
        return -1;
    }
    if (draft) {
        so->draft = v;
    } else if (!strcmp(a, "--spec-type")) {
        if (strcmp(v, "draft-simple") && strcmp(v, "ngram-simple")) {
            fprintf(stderr, "quarrel: --spec-type expects draft-simple or ngram-simple, got '%s'\n",
                    v);
            return -1;
        }
        so->type = v;
    } else if (!strcmp(a, "--spec-draft-n-max")) {
        so->n_max_arg = v;
    } else if (!strcmp(a, "--spec-draft-n-min")) {
        if (parse_int(a, v, 0, 1 << 16, &so->n_min)) return -1;
    } else if (parse_float(a, v, 0, 1, &so->p_min)) {
        return -1;
    }
    return 2;
}

int spec_options_finish(const spec_opts *so, qr_generate_params *gp) {
    int32_t n_max = QR_SPEC_N_MAX_DEFAULT;
    if (so->n_max_arg && parse_int("--spec-draft-n-max", so->n_max_arg, 1, 1 << 16, &n_max))
        return 1;
    const bool ngram = so->type && !strcmp(so->type, "ngram-simple");
    if (so->type && !ngram && !so->draft) {
        fprintf(stderr, "quarrel: --spec-type draft-simple needs a draft model (-md FILE)\n");
        return 1;
    }
    if (ngram && so->draft) {
        fprintf(stderr, "quarrel: --spec-type ngram-simple uses no draft model; drop -md %s\n",
                so->draft);
        return 1;
    }
    if (!so->draft && !ngram) return 0;
    if (so->n_min > n_max) {
        fprintf(stderr, "quarrel: --spec-draft-n-min %d is more than --spec-draft-n-max %d\n",
                (int)so->n_min, (int)n_max);
        return 1;
    }
    gp->spec_type = ngram ? QR_SPEC_NGRAM_SIMPLE : QR_SPEC_DRAFT_SIMPLE;
    gp->spec_n_max = n_max;
    gp->spec_n_min = so->n_min;
    gp->spec_p_min = so->p_min;
    return 0;
}

int spec_load_draft(const spec_opts *so, const qr_model *target, qr_context *target_ctx,
                    const qr_context_params *cp, qr_model **draft_model, qr_context **draft_ctx,
                    qr_generate_params *gp) {
    *draft_model = NULL;
    *draft_ctx = NULL;
    if (gp->spec_type != QR_SPEC_DRAFT_SIMPLE) return 0;
    char path[4096];
    if (qr_model_resolve(so->draft, QR_MODELS_DIR, path, sizeof path) != QR_OK)
        return cli_fail("draft model");
    int rc = cli_load_model(path, NULL, draft_model);
    if (rc) return rc;
    if (qr_spec_check_vocab(target, *draft_model) != QR_OK) {
        fprintf(stderr, "quarrel: draft model %s: %s\n", so->draft, qr_last_error());
        goto fail;
    }
    if (qr_model_size_bytes(*draft_model) >= qr_model_size_bytes(target))
        fprintf(stderr,
                "quarrel: warning: the draft model (%llu bytes) is not smaller than the target "
                "(%llu bytes): speculation will be slower than none\n",
                (unsigned long long)qr_model_size_bytes(*draft_model),
                (unsigned long long)qr_model_size_bytes(target));
    qr_context_params dcp = *cp;
    dcp.debug_fn = NULL;
    dcp.matmul_observer = NULL;
    dcp.share_pool = target_ctx; /* evaluated in turn: one pool for both (NULL: its own) */
    if (qr_context_create(*draft_model, &dcp, draft_ctx) != QR_OK) {
        cli_fail("creating the draft model's context");
        goto fail;
    }
    gp->spec_draft = *draft_ctx;
    return 0;
fail:
    qr_model_free(*draft_model);
    *draft_model = NULL;
    return 1;
}

/* ---- context shift ---- */

int ctxshift_option(const char *a, const char *v, ctxshift_opts *co) {
    if (!strcmp(a, "--context-shift")) {
        co->on = true;
        return 1;
    }
    if (!strcmp(a, "--no-context-shift")) {
        co->on = false;
        return 1;
    }
    if (strcmp(a, "--keep")) return 0;
    if (!v) {
        fprintf(stderr, "quarrel: %s needs a value\n", a);
        return -1;
    }
    return parse_int(a, v, -1, INT32_MAX, &co->keep) ? -1 : 2;
}

void ctxshift_options_usage(FILE *f) {
    fprintf(f, "context shift (llama.cpp's):\n"
               "  --context-shift       when the context is full, keep the first --keep tokens,\n"
               "                        drop half of the rest and go on (default: stop)\n"
               "  --no-context-shift    stop when the context is full (the default)\n"
               "  --keep N              tokens of the prompt kept by a shift, after the BOS\n"
               "                        (default 0; -1: the whole prompt)\n");
}

int32_t ctxshift_keep(const ctxshift_opts *co, int32_t n_prompt, bool bos_added) {
    if (co->keep < 0 || co->keep > n_prompt) return n_prompt;
    return co->keep + (bos_added ? 1 : 0);
}

/* ---- LoRA adapters ---- */

void lora_options_usage(FILE *f) {
    fprintf(f, "LoRA adapters (llama.cpp's syntax):\n"
               "  --lora FILE           apply a LoRA adapter at scale 1 (repeatable; FILE,FILE...)\n"
               "  --lora-scaled FILE:SCALE   at a scale of your choice (repeatable;\n"
               "                        FILE:SCALE,FILE:SCALE...)\n");
}

int lora_option(const char *a, const char *v, lora_opts *lo) {
    const bool scaled = !strcmp(a, "--lora-scaled");
    if (!scaled && strcmp(a, "--lora")) return 0;
    if (!v) {
        fprintf(stderr, "quarrel: %s needs a value\n", a);
        return -1;
    }
    const char *p = v;
    for (;;) {
        const char *comma = strchr(p, ',');
        const size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (lo->buf_used + len + 1 > sizeof lo->buf) {
            fprintf(stderr, "quarrel: %s: the LoRA file names are too long\n", a);
            return -1;
        }
        char *item = lo->buf + lo->buf_used;
        memcpy(item, p, len);
        item[len] = '\0';
        float scale = 1.0f;
        if (scaled) {
            char *colon = strrchr(item, ':');
            char *end = NULL;
            double x = 0;
            if (colon) {
                errno = 0;
                x = strtod(colon + 1, &end);
            }
            if (!colon || colon == item || end == colon + 1 || *end || errno || !isfinite(x)) {
                fprintf(stderr, "quarrel: --lora-scaled expects FILE:SCALE (comma-separated for "
                                "several), got '%s'\n", item);
                return -1;
            }
            *colon = '\0';
            scale = (float)x;
        } else if (!*item) {
            fprintf(stderr, "quarrel: --lora expects a file (comma-separated for several), got "
                            "'%s'\n", v);
            return -1;
        }
        if (lo->n >= QR_MAX_LORAS) {
            fprintf(stderr, "quarrel: at most %d LoRA adapters\n", QR_MAX_LORAS);
            return -1;
        }
        lo->buf_used += len + 1;
        lo->path[lo->n] = item;
        lo->scale[lo->n++] = scale;
        if (!comma) break;
        p = comma + 1;
    }
    return 2;
}

int lora_options_load(lora_opts *lo, const qr_model *model) {
    for (int32_t i = 0; i < lo->n; i++) {
        qr_status st = qr_lora_load(model, lo->path[i], &lo->adapter[i]);
        if (st) {
            fprintf(stderr, "quarrel: %s\n", qr_last_error());
            return st == QR_ERR_UNSUPPORTED ? 2 : 1;
        }
    }
    return 0;
}

int lora_options_attach(const lora_opts *lo, qr_context *ctx) {
    if (lo->n == 0) return 0;
    if (qr_set_loras(ctx, lo->adapter, lo->scale, lo->n) != QR_OK)
        return cli_fail("attaching the LoRA adapters");
    return 0;
}

void lora_options_free(lora_opts *lo) {
    for (int32_t i = 0; i < lo->n; i++) {
        qr_lora_free(lo->adapter[i]);
        lo->adapter[i] = NULL;
    }
}
