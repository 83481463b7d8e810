/* cmd_synth.c - `quarrel synth`: a random-weight llama model of a known shape (SmolLM2-135M,
 * TinyLlama-1.1B, Llama-2-7B, or a tiny one for tests), so benchmarks can run on models far
 * larger than the caches without downloads. The tokenizer (every tokenizer.* key) is copied
 * from a vocabulary GGUF.
 *
 * Weights are seeded and deterministic and scaled as /work/shared/models/synth/mk_synth.py
 * scales them, so activations stay like a trained model's: matrices fed by a normed input have
 * std 1/sqrt(fan_in); residual outputs (attn_output, ffn_down) another 2/sqrt(2 n_layer); norm
 * gains 1 + N(0, 0.05); embedding rows with lognormal(0, 0.2) norms; the output norm gain set
 * for final logits of std ~4. (Same recipe, not the same numbers: the generator differs.)
 *
 * Tensors are generated into a scratch file mapped shared (unlinked at once), so even a 7B
 * model does not need its size in RAM. A plain type (F32, F16, Q8_0, Q4_K, ...) is produced
 * tensor by tensor with qr_quantize; a mix (Q4_K_M, ...) goes through an F16 temporary file and
 * qr_quantize_file, so it is exactly what `quarrel quantize` makes of the F16 model. */
#include "cli.h"
#include "options.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct synth_shape {
    const char *name, *what;
    int32_t n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx;
    float rope_base, eps;
    bool tied;
    const char *vocab; /* default vocabulary, under the shared tokenizer-vectors folder */
} synth_shape;

static const synth_shape shapes[] = {
    {"tiny", "test-sized llama (256 wide, 2 layers)", 256, 2, 4, 2, 512, 512, 10000.0f, 1e-5f,
     false, "ggml-vocab-llama-spm.gguf"},
    {"smol135", "SmolLM2-135M", 576, 30, 9, 3, 1536, 8192, 100000.0f, 1e-5f, true,
     "ggml-vocab-starcoder.gguf"},
    {"tinyllama", "TinyLlama-1.1B", 2048, 22, 32, 4, 5632, 2048, 10000.0f, 1e-5f, false,
     "ggml-vocab-llama-spm.gguf"},
    {"llama7b", "Llama-2-7B", 4096, 32, 32, 32, 11008, 4096, 10000.0f, 1e-5f, false,
     "ggml-vocab-llama-spm.gguf"},
};
#define N_SHAPES (sizeof shapes / sizeof shapes[0])

/* mk_synth.py's knobs */
#define LOGIT_STD 4.0
#define EMB_STD 0.01
#define NORM_SIGMA 0.2
#define RES_GAIN 2.0

static void usage(FILE *f) {
    fprintf(f, "usage: quarrel synth --shape NAME -o OUT.gguf [--type TYPE] [--vocab FILE] "
               "[--seed N]\n"
               "  --shape NAME   one of:\n");
    for (size_t i = 0; i < N_SHAPES; i++)
        fprintf(f, "                   %-10s %s\n", shapes[i].name, shapes[i].what);
    fprintf(f, "  -o, --output FILE  the GGUF file to write\n"
               "  --type TYPE    F16 (default), F32, a tensor type (Q8_0, Q4_K, ...) or a mix\n"
               "                 (Q4_K_M, Q5_K_M, ...: written as F16, then quantized)\n"
               "  --vocab FILE   copy tokenizer.* from this GGUF (default: the shape's usual\n"
               "                 vocabulary from the shared tokenizer-vectors folder)\n"
               "  --seed N       random seed (default 1)\n"
               "  -t, --threads N  quantizer threads for mixes (default 2)\n");
}

/* ---- deterministic normals: splitmix64 + Box-Muller ---- */

typedef struct rng {
    uint64_t s;
    bool has_spare;
    double spare;
} rng;

static uint64_t rng_next(rng *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double rng_uniform(rng *r) { /* (0, 1] */
    return ((double)(rng_next(r) >> 11) + 1.0) * 0x1p-53;
}

static double rng_normal(rng *r) {
    if (r->has_spare) {
        r->has_spare = false;
        return r->spare;
    }
    double rad = sqrt(-2.0 * log(rng_uniform(r)));
    double th = 2.0 * M_PI * rng_uniform(r);
    r->spare = rad * sin(th);
    r->has_spare = true;
    return rad * cos(th);
}

/* ---- the tensor list ---- */

typedef enum tkind { T_MAT, T_EMB, T_VEC } tkind;

typedef struct synth_tensor {
    char name[64];
    tkind kind;
    int64_t n_in, n_out; /* ne[0], ne[1] (n_out = 1 for vectors) */
    double std, mean;    /* mean: vectors only */
    int type;
    size_t nbytes, offset; /* in the scratch arena */
} synth_tensor;

typedef struct synth_plan {
    synth_tensor *t;
    int n;
} synth_plan;

static void add(synth_plan *p, const char *name, tkind kind, int64_t n_in, int64_t n_out,
                double std, double mean) {
    synth_tensor *t = &p->t[p->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->kind = kind;
    t->n_in = n_in;
    t->n_out = n_out;
    t->std = std;
    t->mean = mean;
}

static void plan_tensors(const synth_shape *s, int64_t n_vocab, synth_plan *p) {
    const int64_t E = s->n_embd, L = s->n_layer, FF = s->n_ff;
    const int64_t hd = E / s->n_head;
    const double s_in = 1.0 / sqrt((double)E), s_res = RES_GAIN / sqrt(2.0 * (double)L);
    const double out_std = s->tied ? EMB_STD : LOGIT_STD / sqrt((double)E);
    const double g_out = LOGIT_STD / (sqrt((double)E) * out_std);
    char n[64];
    add(p, "token_embd.weight", T_EMB, E, n_vocab, EMB_STD, 0);
    for (int64_t l = 0; l < L; l++) {
#define NAME(x) (snprintf(n, sizeof n, "blk.%d." x, (int)l), n)
        add(p, NAME("attn_norm.weight"), T_VEC, E, 1, 0.05, 1.0);
        add(p, NAME("attn_q.weight"), T_MAT, E, s->n_head * hd, s_in, 0);
        add(p, NAME("attn_k.weight"), T_MAT, E, s->n_head_kv * hd, s_in, 0);
        add(p, NAME("attn_v.weight"), T_MAT, E, s->n_head_kv * hd, s_in, 0);
        add(p, NAME("attn_output.weight"), T_MAT, s->n_head * hd, E, s_in * s_res, 0);
        add(p, NAME("ffn_norm.weight"), T_VEC, E, 1, 0.05, 1.0);
        add(p, NAME("ffn_gate.weight"), T_MAT, E, FF, s_in, 0);
        add(p, NAME("ffn_up.weight"), T_MAT, E, FF, s_in, 0);
        add(p, NAME("ffn_down.weight"), T_MAT, FF, E, s_res / sqrt((double)FF), 0);
#undef NAME
    }
    add(p, "output_norm.weight", T_VEC, E, 1, 0.05 * g_out, g_out);
    if (!s->tied) add(p, "output.weight", T_EMB, E, n_vocab, out_std, 0);
}

/* Fill rows [r0, r0 + n_rows) of tensor t as f32 into buf. Each tensor has its own stream
 * (seed, tensor index), so the values do not depend on the chunking. */
static void gen_rows(const synth_tensor *t, rng *r, int64_t n_rows, float *buf) {
    for (int64_t row = 0; row < n_rows; row++) {
        float *x = buf + row * t->n_in;
        double scale = t->std;
        if (t->kind == T_EMB) /* a row norm ~ lognormal(0, sigma), normalised to RMS 1 */
            scale *= exp(NORM_SIGMA * rng_normal(r) - NORM_SIGMA * NORM_SIGMA);
        for (int64_t j = 0; j < t->n_in; j++)
            x[j] = (float)(t->mean + scale * rng_normal(r));
    }
}

/* ---- scratch arena: a shared mapping of an unlinked file beside the output ---- */

typedef struct arena {
    void *base;
    size_t size;
} arena;

static int arena_create(arena *a, const char *out_path, size_t size) {
    char tmpl[4200];
    snprintf(tmpl, sizeof tmpl, "%s.scratch.XXXXXX", out_path);
    int fd = mkstemp(tmpl);
    if (fd < 0) {
        fprintf(stderr, "quarrel synth: cannot create a scratch file '%s': %s\n", tmpl,
                strerror(errno));
        return 1;
    }
    unlink(tmpl);
    if (size == 0) size = 1;
    int err = posix_fallocate(fd, 0, (off_t)size);
    if (err) {
        fprintf(stderr,
                "quarrel synth: cannot reserve %zu bytes of scratch space beside '%s': %s\n", size,
                out_path, strerror(err));
        close(fd);
        return 1;
    }
    a->base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (a->base == MAP_FAILED) {
        fprintf(stderr, "quarrel synth: cannot map %zu bytes of scratch space: %s\n", size,
                strerror(errno));
        a->base = NULL;
        return 1;
    }
    a->size = size;
    return 0;
}

static void arena_free(arena *a) {
    if (a->base) munmap(a->base, a->size);
    a->base = NULL;
}

/* ---- metadata ---- */

/* llama.cpp's general.file_type for the plain types (llama_ftype), -1 where there is none */
static int file_type_of(int type) {
    switch (type) {
    case QR_TYPE_F32:
        return 0;
    case QR_TYPE_F16:
        return 1;
    case QR_TYPE_Q4_0:
        return 2;
    case QR_TYPE_Q4_1:
        return 3;
    case QR_TYPE_Q8_0:
        return 7;
    case QR_TYPE_Q5_0:
        return 8;
    case QR_TYPE_Q5_1:
        return 9;
    case QR_TYPE_Q6_K:
        return 18;
    case QR_TYPE_BF16:
        return 32;
    default:
        return -1;
    }
}

static qr_status set_metadata(qr_gguf_writer *w, const synth_shape *s, const qr_gguf *vocab,
                              int64_t n_vocab, int file_type, uint64_t seed) {
    char name[128], key[128];
    snprintf(name, sizeof name, "quarrel-synth-%s-seed%llu", s->name, (unsigned long long)seed);
    qr_status st = QR_OK;
#define KEY(x) (snprintf(key, sizeof key, "llama." x), key)
    if ((st = qr_gguf_writer_set_str(w, "general.architecture", "llama")) ||
        (st = qr_gguf_writer_set_str(w, "general.name", name)) ||
        (st = qr_gguf_writer_set_u32(w, KEY("context_length"), (uint32_t)s->n_ctx)) ||
        (st = qr_gguf_writer_set_u32(w, KEY("embedding_length"), (uint32_t)s->n_embd)) ||
        (st = qr_gguf_writer_set_u32(w, KEY("block_count"), (uint32_t)s->n_layer)) ||
        (st = qr_gguf_writer_set_u32(w, KEY("feed_forward_length"), (uint32_t)s->n_ff)) ||
        (st = qr_gguf_writer_set_u32(w, KEY("attention.head_count"), (uint32_t)s->n_head)) ||
        (st = qr_gguf_writer_set_u32(w, KEY("attention.head_count_kv"), (uint32_t)s->n_head_kv)) ||
        (st = qr_gguf_writer_set_f32(w, KEY("rope.freq_base"), s->rope_base)) ||
        (st = qr_gguf_writer_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), s->eps)) ||
        (st = qr_gguf_writer_set_u32(w, KEY("rope.dimension_count"),
                                     (uint32_t)(s->n_embd / s->n_head))) ||
        (st = qr_gguf_writer_set_u32(w, KEY("vocab_size"), (uint32_t)n_vocab)))
        return st;
#undef KEY
    if (file_type >= 0 &&
        (st = qr_gguf_writer_set_u32(w, "general.file_type", (uint32_t)file_type)))
        return st;
    for (int64_t i = 0; i < qr_gguf_n_kv(vocab); i++) {
        const char *k = qr_gguf_key(vocab, i);
        if (strncmp(k, "tokenizer.", 10) != 0) continue;
        if ((st = qr_gguf_writer_set(w, k, qr_gguf_value_at(vocab, i)))) return st;
    }
    return QR_OK;
}

/* ---- the command ---- */

typedef struct synth_opts {
    const synth_shape *shape;
    const char *out, *type_name, *vocab;
    uint64_t seed;
    int32_t threads;
} synth_opts;

static int parse(int argc, char **argv, synth_opts *o) {
    o->type_name = "F16";
    o->seed = 1;
    o->threads = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        }
        bool known = !strcmp(a, "--shape") || !strcmp(a, "-o") || !strcmp(a, "--output") ||
                     !strcmp(a, "--type") || !strcmp(a, "--vocab") || !strcmp(a, "--seed") ||
                     !strcmp(a, "-t") || !strcmp(a, "--threads");
        if (!known) {
            fprintf(stderr, "quarrel synth: unknown option '%s' (see quarrel synth --help)\n", a);
            return 2;
        }
        if (!v) {
            fprintf(stderr, "quarrel synth: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--shape")) {
            o->shape = NULL;
            for (size_t j = 0; j < N_SHAPES; j++)
                if (!strcmp(v, shapes[j].name)) o->shape = &shapes[j];
            if (!o->shape) {
                fprintf(stderr,
                        "quarrel synth: unknown shape '%s' (tiny, smol135, tinyllama, "
                        "llama7b)\n",
                        v);
                return 2;
            }
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            o->out = v;
        } else if (!strcmp(a, "--type")) {
            o->type_name = v;
        } else if (!strcmp(a, "--vocab")) {
            o->vocab = v;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (parse_int(a, v, 1, 512, &o->threads)) return 2;
        } else { /* --seed */
            char *end;
            errno = 0;
            unsigned long long s = strtoull(v, &end, 10);
            if (errno || end == v || *end || v[0] == '-') {
                fprintf(stderr, "quarrel synth: --seed expects a non-negative integer, got '%s'\n",
                        v);
                return 2;
            }
            o->seed = s;
        }
    }
    if (!o->shape) {
        fprintf(stderr, "quarrel synth: give a shape with --shape (see quarrel synth --help)\n");
        return 2;
    }
    if (!o->out) {
        fprintf(stderr, "quarrel synth: give an output file with -o\n");
        return 2;
    }
    return 0;
}

/* Generate every tensor of the plan into the arena and register it with the writer. */
static int generate(const synth_opts *o, synth_plan *p, arena *a, qr_gguf_writer *w) {
    const int64_t chunk_elems = (int64_t)1 << 22;
    float *buf = malloc((size_t)chunk_elems * sizeof *buf); /* holds >= 1 row of any shape */
    if (!buf) {
        fprintf(stderr, "quarrel synth: out of memory\n");
        return 1;
    }
    int rc = 0;
    for (int i = 0; i < p->n && rc == 0; i++) {
        synth_tensor *t = &p->t[i];
        rng r = {.s = o->seed * 0x100000001B3ull + (uint64_t)i * 0x9E3779B97F4A7C15ull};
        rng_next(&r);
        const int64_t rows_per_chunk = chunk_elems / t->n_in;
        const size_t row_bytes = qr_type_row_bytes(t->type, t->n_in);
        char *dst = (char *)a->base + t->offset;
        for (int64_t r0 = 0; r0 < t->n_out; r0 += rows_per_chunk) {
            int64_t nr = t->n_out - r0 < rows_per_chunk ? t->n_out - r0 : rows_per_chunk;
            gen_rows(t, &r, nr, buf);
            char *d = dst + (size_t)r0 * row_bytes;
            if (t->type == QR_TYPE_F32) {
                memcpy(d, buf, (size_t)(nr * t->n_in) * sizeof(float));
            } else if (qr_quantize(t->type, buf, d, nr * t->n_in) != QR_OK) {
                fprintf(stderr, "quarrel synth: %s as %s: %s\n", t->name, qr_type_name(t->type),
                        qr_last_error());
                rc = 1;
                break;
            }
        }
        if (rc) break;
        int64_t ne[2] = {t->n_in, t->n_out};
        if (qr_gguf_writer_add_tensor(w, t->name, t->type, t->kind == T_VEC ? 1 : 2, ne, dst,
                                      t->nbytes) != QR_OK)
            rc = cli_fail(t->name);
    }
    free(buf);
    return rc;
}

int cmd_synth(int argc, char **argv) {
    synth_opts o = {0};
    int rc = parse(argc, argv, &o);
    if (rc) return rc;
    const synth_shape *s = o.shape;

    /* what to produce: a plain type directly, a mix via F16 */
    int type = qr_type_from_name(o.type_name);
    bool mix = false;
    if (type < 0) {
        static const char *const mixes[] = {"Q2_K",   "Q3_K_S", "Q3_K_M", "Q3_K_L",
                                            "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M"};
        for (size_t i = 0; i < sizeof mixes / sizeof mixes[0]; i++)
            if (!strcasecmp(o.type_name, mixes[i])) mix = true;
        if (!mix) {
            fprintf(stderr,
                    "quarrel synth: unknown --type '%s' (F32, F16, Q8_0, Q4_K, ... or a "
                    "mix such as Q4_K_M)\n",
                    o.type_name);
            return 2;
        }
        type = QR_TYPE_F16;
    } else if (qr_type_block_size(type) <= 0) {
        fprintf(stderr, "quarrel synth: --type '%s' is not a tensor type Quarrel can write\n",
                o.type_name);
        return 2;
    }

    char vocab_path[4096];
    if (o.vocab)
        snprintf(vocab_path, sizeof vocab_path, "%s", o.vocab);
    else
        snprintf(vocab_path, sizeof vocab_path, "%s/../tokenizer-vectors/%s", QR_MODELS_DIR,
                 s->vocab);
    qr_gguf *vocab = NULL;
    if (qr_gguf_open(vocab_path, &vocab) != QR_OK) return cli_fail("vocabulary");
    const qr_gguf_value *tokens = qr_gguf_get_arr(vocab, "tokenizer.ggml.tokens");
    if (!tokens || tokens->arr.type != QR_GGUF_STRING || tokens->arr.n == 0) {
        fprintf(stderr,
                "quarrel synth: '%s' has no tokenizer.ggml.tokens string array: not a "
                "vocabulary\n",
                vocab_path);
        qr_gguf_free(vocab);
        return 1;
    }
    const int64_t n_vocab = (int64_t)tokens->arr.n;

    synth_plan plan = {0};
    plan.t = calloc((size_t)(3 + 9 * s->n_layer), sizeof *plan.t);
    qr_gguf_writer *w = qr_gguf_writer_create();
    arena a = {0};
    char tmp_path[4200] = "";
    rc = 1;
    if (!plan.t || !w) {
        fprintf(stderr, "quarrel synth: out of memory\n");
        goto done;
    }
    plan_tensors(s, n_vocab, &plan);
    size_t total = 0;
    int n_fallback = 0;
    for (int i = 0; i < plan.n; i++) {
        synth_tensor *t = &plan.t[i];
        t->type = t->kind == T_VEC ? QR_TYPE_F32 : type;
        if (t->n_in % qr_type_block_size(t->type) != 0) { /* rows not whole blocks */
            t->type = QR_TYPE_F16;
            n_fallback++;
        }
        t->nbytes = qr_type_row_bytes(t->type, t->n_in) * (size_t)t->n_out;
        t->offset = total;
        total += (t->nbytes + 63) / 64 * 64;
    }
    if (n_fallback)
        fprintf(stderr,
                "quarrel synth: %d tensors have rows of a size %s cannot hold; they are "
                "F16\n",
                n_fallback, qr_type_name(type));
    if (set_metadata(w, s, vocab, n_vocab, mix ? 1 : file_type_of(type), o.seed) != QR_OK) {
        cli_fail("metadata");
        goto done;
    }
    if (arena_create(&a, o.out, total)) goto done;
    fprintf(stderr, "quarrel synth: %s, %d tensors, %.1f MB as %s...\n", s->what, plan.n,
            (double)total / 1e6, mix ? "F16" : qr_type_name(type));
    if (generate(&o, &plan, &a, w)) goto done;

    const char *write_path = o.out;
    if (mix) {
        snprintf(tmp_path, sizeof tmp_path, "%s.f16.tmp", o.out);
        write_path = tmp_path;
    }
    if (qr_gguf_writer_write(w, write_path) != QR_OK) {
        cli_fail("writing");
        goto done;
    }
    arena_free(&a);
    if (mix) {
        fprintf(stderr, "quarrel synth: quantizing to %s...\n", o.type_name);
        qr_quantize_params qp = {.n_threads = o.threads, .verbose = false};
        if (qr_quantize_file(tmp_path, o.out, o.type_name, &qp) != QR_OK) {
            cli_fail("quantizing");
            goto done;
        }
    }
    fprintf(stderr, "quarrel synth: wrote %s\n", o.out);
    rc = 0;
done:
    if (tmp_path[0]) unlink(tmp_path);
    arena_free(&a);
    qr_gguf_writer_free(w);
    free(plan.t);
    qr_gguf_free(vocab);
    return rc;
}
