/* mk_imatrix_ref.c - the importance matrix llama-imatrix computes, through the peer's libllama
 * (llama.cpp v0.5.0) with an eval callback, for the reference files of test_imatrix_cli.sh.
 * Built and run by mk_imatrix_refs.sh; not part of the Quarrel build.
 *
 * It follows tools/imatrix/imatrix.cpp of that release: -f read verbatim with one trailing
 * newline dropped, tokenized with add_special (BOS where the vocab adds it), no special
 * parsing; n_seq = max(1, 2048 / n_ctx) chunks a batch, context n_seq * n_ctx cells, n_batch
 * min(2048, that), n_ubatch 512, n_seq_max n_seq, non-unified cache, flash attention auto,
 * repacking on, the best CPU variant (MK_FA_OFF=1, MK_NO_REPACK=1 and MK_CPU=<variant> change
 * those three: mk_imatrix_refs.sh's canonical run sets all three); each chunk from a cleared cache, its first token replaced by BOS where the vocab adds it,
 * logits for every token. The callback asks for GGML_OP_MUL_MAT nodes whose weight (src[0],
 * name between '#'s stripped) starts with "blk." and whose src[1] is F32 with ne[1] >= 16, and
 * adds x[j]^2 (float) over src[1]'s rows and the row count; and every GGML_OP_MUL_MAT_ID
 * node (a mixture's experts), whose rows it adds into the routed expert's slice and count, slot
 * by slot and token by token, as the tool's MUL_MAT_ID branch. The perplexity is computed as
 * the tool does (second half of each chunk, expf sum in double).
 *
 * Output: PREFIX.json (metadata, per entry its count (an expert tensor: "n_mat" and one count
 * per expert in "counts", its sums n x n_mat) and where its sums are) and PREFIX.bin
 * (the sums, float32 little-endian; entries with bit-identical sums, such as q, k and v, share
 * one copy). */
#include "ggml-backend.h"
#include "ggml.h"
#include "llama.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    char name[GGML_MAX_NAME];
    int64_t n, count, n_mat; /* n_mat > 1: an expert tensor, counts per expert */
    int64_t *counts;
    float *sums;
} entry;

static entry entries[4096];
static int n_entries;
static char *src1_copy;
static size_t src1_cap;

static const char *weight_name(const char *name, char *buf) {
    const char *p = strchr(name, '#');
    if (!p) return name;
    p++;
    const char *q = strchr(p, '#');
    size_t len = q ? (size_t)(q - p) : strlen(p);
    memcpy(buf, p, len);
    buf[len] = '\0';
    return buf;
}

static bool collect(struct ggml_tensor *t, bool ask, void *user) {
    (void)user;
    const struct ggml_tensor *src0 = t->src[0], *src1 = t->src[1];
    char buf[GGML_MAX_NAME];
    if (ask) {
        if (t->op == GGML_OP_MUL_MAT_ID) return true; /* every routed product */
        if (t->op != GGML_OP_MUL_MAT) return false;
        if (src1->ne[1] < 16 || src1->type != GGML_TYPE_F32) return false;
        return strncmp(weight_name(src0->name, buf), "blk.", 4) == 0;
    }
    const char *w = weight_name(src0->name, buf);
    const size_t nbytes = ggml_nbytes(src1);
    if (nbytes > src1_cap) {
        src1_copy = realloc(src1_copy, nbytes);
        src1_cap = nbytes;
    }
    ggml_backend_tensor_get(src1, src1_copy, 0, nbytes);
    if (t->op == GGML_OP_MUL_MAT_ID) {
        /* ids [n_used, n_tokens] (not contiguous), src1 [n, 1 or n_used, n_tokens] */
        const struct ggml_tensor *ids = t->src[2];
        static char *ids_copy;
        ids_copy = realloc(ids_copy, ggml_nbytes(ids));
        ggml_backend_tensor_get(ids, ids_copy, 0, ggml_nbytes(ids));
        const int64_t n_as = src0->ne[2], n = src1->ne[0];
        entry *e = NULL;
        for (int i = 0; i < n_entries && !e; i++)
            if (!strcmp(entries[i].name, w)) e = &entries[i];
        if (!e) {
            e = &entries[n_entries++];
            snprintf(e->name, sizeof e->name, "%s", w);
            e->n = n;
            e->n_mat = n_as;
            e->sums = calloc((size_t)(n * n_as), sizeof(float));
            e->counts = calloc((size_t)n_as, sizeof(int64_t));
        }
        for (int64_t idx = 0; idx < ids->ne[0]; idx++)
            for (int64_t row = 0; row < src1->ne[2]; row++) {
                const int32_t ex = *(const int32_t *)(ids_copy + row * ids->nb[1] + idx * ids->nb[0]);
                const float *x = (const float *)(src1_copy + (idx % src1->ne[1]) * src1->nb[1] +
                                                 row * src1->nb[2]);
                float *acc = e->sums + ex * n;
                e->counts[ex]++;
                for (int64_t j = 0; j < n; j++)
                    acc[j] += x[j] * x[j];
            }
        return true;
    }
    if (src0->ne[2] * src0->ne[3] != 1) {
        fprintf(stderr, "mk_imatrix_ref: 3-D weight %s not handled\n", w);
        exit(1);
    }
    entry *e = NULL;
    for (int i = 0; i < n_entries && !e; i++)
        if (!strcmp(entries[i].name, w)) e = &entries[i];
    if (!e) {
        e = &entries[n_entries++];
        snprintf(e->name, sizeof e->name, "%s", w);
        e->n = src1->ne[0];
        e->n_mat = 1;
        e->sums = calloc((size_t)e->n, sizeof(float));
    }
    if (e->n != src1->ne[0]) {
        fprintf(stderr, "mk_imatrix_ref: %s: sizes %lld and %lld\n", w, (long long)e->n,
                (long long)src1->ne[0]);
        exit(1);
    }
    for (int64_t i3 = 0; i3 < src1->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < src1->ne[2]; i2++)
            for (int64_t r = 0; r < src1->ne[1]; r++) {
                const float *x = (const float *)(src1_copy + r * src1->nb[1] + i2 * src1->nb[2] +
                                                 i3 * src1->nb[3]);
                for (int64_t j = 0; j < e->n; j++)
                    e->sums[j] += x[j] * x[j];
            }
    e->count += ggml_nrows(src1);
    return true;
}

static int cmp_entry(const void *a, const void *b) {
    return strcmp(((const entry *)a)->name, ((const entry *)b)->name);
}

static void quiet(enum ggml_log_level level, const char *text, void *user) {
    (void)user;
    if (level == GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: mk_imatrix_ref BIN_DIR MODEL TEXT N_CTX N_CHUNKS PREFIX\n");
        return 2;
    }
    const char *bin_dir = argv[1], *model_path = argv[2], *text_path = argv[3], *prefix = argv[6];
    const int n_ctx = atoi(argv[4]), n_chunks_max = atoi(argv[5]);

    FILE *f = fopen(text_path, "rb");
    if (!f) return perror(text_path), 1;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)len + 1);
    if (fread(text, 1, (size_t)len, f) != (size_t)len) return perror(text_path), 1;
    fclose(f);
    if (len > 0 && text[len - 1] == '\n') len--;

    llama_log_set(quiet, NULL);
    const char *cpu = getenv("MK_CPU"); /* a libggml-cpu-<variant>.so to use alone */
    if (cpu) {
        char lib[4096];
        snprintf(lib, sizeof lib, "%s/libggml-cpu-%s.so", bin_dir, cpu);
        if (!ggml_backend_load(lib)) return fprintf(stderr, "cannot load %s\n", lib), 1;
    } else {
        ggml_backend_load_all_from_path(bin_dir);
    }
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    mp.use_extra_bufts = getenv("MK_NO_REPACK") == NULL;
    struct llama_model *model = llama_model_load_from_file(model_path, mp);
    if (!model) return fprintf(stderr, "cannot load %s\n", model_path), 1;
    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    const bool add_bos = llama_vocab_get_add_bos(vocab);
    const int n_vocab = llama_vocab_n_tokens(vocab);

    int cap = (int)len + 16;
    llama_token *tokens = malloc((size_t)cap * sizeof *tokens);
    const int n_tokens = llama_tokenize(vocab, text, (int32_t)len, tokens, cap, true, false);
    if (n_tokens < 2 * n_ctx) return fprintf(stderr, "only %d tokens\n", n_tokens), 1;

    const int n_seq = 2048 / n_ctx > 1 ? 2048 / n_ctx : 1;
    const int n_kv = n_seq * n_ctx, n_batch = n_kv < 2048 ? n_kv : 2048;
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)n_kv;
    cp.n_batch = (uint32_t)n_batch;
    cp.n_ubatch = 512;
    cp.n_seq_max = (uint32_t)n_seq;
    cp.n_threads = cp.n_threads_batch = 2;
    cp.flash_attn_type =
        getenv("MK_FA_OFF") ? LLAMA_FLASH_ATTN_TYPE_DISABLED : LLAMA_FLASH_ATTN_TYPE_AUTO;
    cp.kv_unified = false;
    cp.cb_eval = collect;
    cp.cb_eval_user_data = NULL;
    struct llama_context *ctx = llama_init_from_model(model, cp);
    if (!ctx) return fprintf(stderr, "cannot create the context\n"), 1;

    int n_chunk = n_tokens / n_ctx;
    if (n_chunks_max > 0 && n_chunks_max < n_chunk) n_chunk = n_chunks_max;
    const int num_batches = (n_ctx + n_batch - 1) / n_batch, first = n_ctx / 2;
    struct llama_batch batch = llama_batch_init(n_batch, 0, 1);
    const int n_keep = n_seq < n_chunk ? n_seq : n_chunk; /* chunks whose logits are kept */
    float *logits = malloc((size_t)n_ctx * (size_t)n_vocab * sizeof(float) * (size_t)n_keep);
    double nll = 0, nll2 = 0;
    int count = 0;
    char running[65536] = "";
    for (int i = 0; i < n_chunk; i += n_seq) {
        const int start = i * n_ctx, n_seq_batch = n_chunk - i < n_seq ? n_chunk - i : n_seq;
        llama_memory_clear(llama_get_memory(ctx), true);
        for (int j = 0; j < num_batches; j++) {
            const int batch_start = start + j * n_batch;
            const int batch_size =
                start + n_ctx - batch_start < n_batch ? start + n_ctx - batch_start : n_batch;
            batch.n_tokens = 0;
            for (int s = 0; s < n_seq_batch; s++) {
                const int seq_start = batch_start + s * n_ctx;
                for (int k = 0; k < batch_size; k++) {
                    const int b = batch.n_tokens++;
                    batch.token[b] = add_bos && j == 0 && k == 0 ? llama_vocab_bos(vocab)
                                                                 : tokens[seq_start + k];
                    batch.pos[b] = j * n_batch + k;
                    batch.n_seq_id[b] = 1;
                    batch.seq_id[b][0] = s;
                    batch.logits[b] = 1;
                }
            }
            if (llama_decode(ctx, batch)) return fprintf(stderr, "llama_decode failed\n"), 1;
            /* the logits of position p of sequence s, for the single-batch case */
            if (num_batches > 1) return fprintf(stderr, "use n_ctx <= 2048\n"), 1;
            memcpy(logits, llama_get_logits(ctx),
                   (size_t)batch.n_tokens * (size_t)n_vocab * sizeof(float));
        }
        for (int s = 0; s < n_seq_batch; s++) {
            for (int k = first; k < n_ctx - 1; k++) {
                const float *l = logits + ((size_t)s * n_ctx + (size_t)k) * (size_t)n_vocab;
                float mx = l[0];
                for (int v = 1; v < n_vocab; v++)
                    mx = l[v] > mx ? l[v] : mx;
                double sum = 0;
                for (int v = 0; v < n_vocab; v++)
                    sum += expf(l[v] - mx);
                const double v = -((double)(l[tokens[start + s * n_ctx + k + 1]] - mx) - log(sum));
                nll += v;
                nll2 += v * v;
            }
            count += n_ctx - first - 1;
            snprintf(running + strlen(running), sizeof running - strlen(running), "%s%.6f",
                     running[0] ? ", " : "", exp(nll / count));
        }
    }
    nll /= count;
    nll2 = nll2 / count - nll * nll;
    const double ppl = exp(nll);

    qsort(entries, (size_t)n_entries, sizeof *entries, cmp_entry);
    int64_t max_count = 0;
    for (int i = 0; i < n_entries; i++) {
        if (entries[i].count > max_count) max_count = entries[i].count;
        for (int64_t m = 0; m < (entries[i].n_mat > 1 ? entries[i].n_mat : 0); m++)
            if (entries[i].counts[m] > max_count) max_count = entries[i].counts[m];
    }

    char path[4096];
    snprintf(path, sizeof path, "%s.bin", prefix);
    FILE *bin = fopen(path, "wb");
    snprintf(path, sizeof path, "%s.json", prefix);
    FILE *js = fopen(path, "w");
    if (!bin || !js) return perror(prefix), 1;
    const char *base = strrchr(prefix, '/');
    fprintf(js,
            "{\n  \"made_by\": \"tests/quantize/mk_imatrix_refs.sh: llama.cpp v0.5.0 (the peer's "
            "libllama) with llama-imatrix's collection in an eval callback\",\n"
            "  \"model\": \"%s\",\n  \"text\": \"%s\",\n  \"bin\": \"%s.bin\",\n"
            "  \"n_ctx\": %d,\n  \"chunks\": %d,\n  \"n_tokens\": %d,\n  \"add_bos\": %s,\n"
            "  \"general.type\": \"imatrix\",\n  \"imatrix.chunk_count\": %lld,\n"
            "  \"imatrix.chunk_size\": %d,\n"
            "  \"datasets_rule\": \"[the -f argument as given]\",\n"
            "  \"ppl\": %.6f,\n  \"ppl_uncertainty\": %.6f,\n  \"ppl_running\": [%s],\n"
            "  \"entries\": [\n",
            strrchr(model_path, '/') ? strrchr(model_path, '/') + 1 : model_path,
            strrchr(text_path, '/') ? strrchr(text_path, '/') + 1 : text_path,
            base ? base + 1 : prefix, n_ctx, n_chunk, n_tokens, add_bos ? "true" : "false",
            (long long)(max_count / n_ctx), n_ctx, ppl,
            nll2 > 0 ? ppl * sqrt(nll2 / (count - 1)) : 0.0, running);
    int64_t *offset = malloc((size_t)n_entries * sizeof *offset), at = 0;
    for (int i = 0; i < n_entries; i++) {
        offset[i] = -1;
        for (int k = 0; k < i && offset[i] < 0; k++)
            if (entries[k].n * entries[k].n_mat == entries[i].n * entries[i].n_mat &&
                !memcmp(entries[k].sums, entries[i].sums,
                        (size_t)(entries[i].n * entries[i].n_mat) * sizeof(float)))
                offset[i] = offset[k];
        if (offset[i] < 0) {
            offset[i] = at;
            fwrite(entries[i].sums, sizeof(float), (size_t)(entries[i].n * entries[i].n_mat), bin);
            at += entries[i].n * entries[i].n_mat;
        }
        char counts[4096] = ""; /* an expert tensor: n_mat and the per-expert counts */
        if (entries[i].n_mat > 1) {
            size_t o = (size_t)snprintf(counts, sizeof counts, ", \"n_mat\": %lld, \"counts\": [",
                                        (long long)entries[i].n_mat);
            for (int64_t m = 0; m < entries[i].n_mat && o < sizeof counts; m++)
                o += (size_t)snprintf(counts + o, sizeof counts - o, "%s%lld", m ? ", " : "",
                                      (long long)entries[i].counts[m]);
            if (o < sizeof counts) snprintf(counts + o, sizeof counts - o, "]");
        }
        fprintf(js, "    {\"name\": \"%s\", \"n\": %lld, \"count\": %lld%s, \"offset\": %lld}%s\n",
                entries[i].name, (long long)entries[i].n, (long long)entries[i].count, counts,
                (long long)offset[i], i + 1 < n_entries ? "," : "");
    }
    fprintf(js, "  ]\n}\n");
    fclose(js);
    fclose(bin);
    fprintf(stderr, "%s: %d entries, %lld floats, chunk_count %lld, PPL %.4f\n", prefix, n_entries,
            (long long)at, (long long)(max_count / n_ctx), ppl);
    llama_batch_free(batch);
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}
