/* test_mix.c - the Q4_K_M mix against llama.cpp on a whole model, and the type rules on
 * hand-worked layer lists.
 *
 * End to end: regenerate smol135's F16 source (../shared/models/synth/mk_synth.py, needs
 * Debian's python3 with numpy) into the build folder, quantize it to Q4_K_M, and compare with
 * ../shared/models/smol135-q4_k_m.gguf (llama.cpp's llama_model_quantize of that same source):
 * every tensor's type and bytes, the per-tensor RMSE against the F16 source (ratio to
 * llama.cpp's), and the whole file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <math.h>
#include <unistd.h>

#include <cmocka.h>

#include "quantize/quantize_internal.h"
#include "quarrel.h"

/* per-tensor RMSE of ours over llama.cpp's may exceed 1 by this much (last-bit summation) */
#define RMSE_RATIO_SLACK 1.0001

static double rmse_vs(const qr_gguf_tensor *q, const qr_gguf_tensor *src) {
    const int64_t n = q->ne[0] * q->ne[1] * q->ne[2] * q->ne[3];
    float *a = malloc((size_t)n * sizeof(float)), *b = malloc((size_t)n * sizeof(float));
    assert_non_null(a);
    assert_non_null(b);
    if (qr_dequantize(q->type, q->data, a, n) || qr_dequantize(src->type, src->data, b, n))
        fail_msg("%s: %s", q->name, qr_last_error());
    double se = 0;
    for (int64_t i = 0; i < n; i++)
        se += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    free(a);
    free(b);
    return sqrt(se / (double)n);
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static bool files_equal(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    bool same = fa && fb;
    while (same) {
        char ba[65536], bb[65536];
        size_t na = fread(ba, 1, sizeof ba, fa), nb = fread(bb, 1, sizeof bb, fb);
        if (na != nb || memcmp(ba, bb, na)) same = false;
        if (na == 0) break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return same;
}

static void test_smol135_q4_k_m_matches_llama_cpp(void **state) {
    (void)state;
    char src_path[256], out_path[256], cmd[1024];
    snprintf(src_path, sizeof src_path, "quantize-smol135-f16.%ld.gguf", (long)getpid());
    snprintf(out_path, sizeof out_path, "quantize-smol135-q4_k_m.%ld.gguf", (long)getpid());
    if (system("/usr/bin/python3 -c 'import numpy' 2>/dev/null") != 0)
        fail_msg("/usr/bin/python3 cannot import numpy: install python3-numpy (apt-get install "
                 "-y python3-numpy) to regenerate smol135's F16 source");
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 " QR_SHARED_DIR "/models/synth/mk_synth.py smol135 %s >/dev/null",
             src_path);
    if (system(cmd) != 0) fail_msg("mk_synth.py failed: %s", cmd);

    qr_quantize_params params = {.n_threads = 2};
    if (qr_quantize_file(src_path, out_path, "Q4_K_M", &params) != QR_OK)
        fail_msg("%s", qr_last_error());

    qr_gguf *src, *ours, *ref;
    if (qr_gguf_open(src_path, &src) || qr_gguf_open(out_path, &ours) ||
        qr_gguf_open(QR_SHARED_DIR "/models/smol135-q4_k_m.gguf", &ref))
        fail_msg("%s", qr_last_error());
    const int64_t n = qr_gguf_n_tensors(ref);
    assert_int_equal(qr_gguf_n_tensors(ours), n);
    double *ratios = calloc((size_t)n, sizeof(double));
    assert_non_null(ratios);
    int n_ratios = 0, n_same_bytes = 0, n_type_diff = 0;
    for (int64_t i = 0; i < n; i++) {
        const qr_gguf_tensor *r = qr_gguf_tensor_at(ref, i);
        const qr_gguf_tensor *o = qr_gguf_find_tensor(ours, r->name);
        const qr_gguf_tensor *s = qr_gguf_find_tensor(src, r->name);
        assert_non_null(o);
        assert_non_null(s);
        if (o->type != r->type) {
            printf("  %s: type %s, llama.cpp %s\n", r->name, qr_type_name(o->type),
                   qr_type_name(r->type));
            n_type_diff++;
            continue;
        }
        assert_memory_equal(o->ne, r->ne, sizeof o->ne);
        if (o->nbytes == r->nbytes && !memcmp(o->data, r->data, r->nbytes)) n_same_bytes++;
        if (r->type == s->type) continue; /* copied, nothing to compare */
        const double rr = rmse_vs(r, s), ro = rmse_vs(o, s);
        ratios[n_ratios++] = rr > 0 ? ro / rr : (ro == 0 ? 1.0 : INFINITY);
    }
    qsort(ratios, (size_t)n_ratios, sizeof(double), cmp_double);
    const double median = n_ratios ? ratios[n_ratios / 2] : NAN;
    const double max = n_ratios ? ratios[n_ratios - 1] : NAN;
    const bool same_file = files_equal(out_path, QR_SHARED_DIR "/models/smol135-q4_k_m.gguf");
    printf("  smol135 Q4_K_M: %lld tensors, %d type differences, %d byte-identical, "
           "RMSE ratio vs llama.cpp over %d quantized tensors: median %.6f max %.6f; "
           "whole file %s\n",
           (long long)n, n_type_diff, n_same_bytes, n_ratios, median, max,
           same_file ? "identical" : "differs");
    free(ratios);
    qr_gguf_free(src);
    qr_gguf_free(ours);
    qr_gguf_free(ref);
    unlink(src_path);
    unlink(out_path);
    assert_int_equal(n_type_diff, 0);
    assert_true(n_ratios > 200);
    assert_true(max <= RMSE_RATIO_SLACK);
    assert_int_equal(n_same_bytes, n);
    assert_true(same_file);
}

/* ---- the rules on hand-made tensor lists ---- */

#define MAX_T 320
typedef struct model_list {
    qr_quant_tensor t[MAX_T];
    char names[MAX_T][64];
    int types[MAX_T];
    int n;
} model_list;

static void add(model_list *m, const char *name, int64_t ne0, int64_t ne1, int type) {
    assert_true(m->n < MAX_T);
    snprintf(m->names[m->n], sizeof m->names[m->n], "%s", name);
    m->t[m->n] = (qr_quant_tensor){.name = m->names[m->n], .type = type, .ne = {ne0, ne1, 1, 1}};
    m->n++;
}

/* a llama-shaped list of n_layer layers, rows of n_embd (n_ff = 2 * n_embd), in llama.cpp's
 * order (non-layer tensors first, then by layer) */
static void llama_list(model_list *m, int n_layer, int64_t n_embd, bool tied) {
    m->n = 0;
    if (!tied) add(m, "output.weight", n_embd, 1000, QR_TYPE_F16);
    add(m, "output_norm.weight", n_embd, 1, QR_TYPE_F32);
    add(m, "token_embd.weight", n_embd, 1000, QR_TYPE_F16);
    for (int l = 0; l < n_layer; l++) {
        static const char *mats[] = {"attn_k",   "attn_norm", "attn_output", "attn_q", "attn_v",
                                     "ffn_down", "ffn_gate",  "ffn_norm",    "ffn_up"};
        for (int k = 0; k < 9; k++) {
            char name[64];
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, mats[k]);
            const bool norm = strstr(mats[k], "norm") != NULL;
            const bool down = !strcmp(mats[k], "ffn_down");
            add(m, name, down ? 2 * n_embd : n_embd, norm ? 1 : n_embd,
                norm ? QR_TYPE_F32 : QR_TYPE_F16);
        }
    }
}

static int type_of(const model_list *m, const char *name) {
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->t[i].name, name)) return m->types[i];
    fail_msg("no tensor %s", name);
    return -1;
}

static void choose(model_list *m, const char *ftype, int n_layer, int n_head, int n_head_kv,
                   int *n_fallback) {
    const qr_quant_ftype *ft = qr_quant_ftype_find(ftype);
    assert_non_null(ft);
    qr_quant_model model = {
        .arch = "llama", .n_layer = n_layer, .n_head = n_head, .n_head_kv = n_head_kv};
    int nf = 0;
    if (qr_quant_choose_types(ft, &model, m->t, m->n, m->types, &nf) != QR_OK)
        fail_msg("%s", qr_last_error());
    if (n_fallback) *n_fallback = nf;
}

/* 8 layers: use_more_bits(i, 8) = i < 1 || i >= 7 || (i - 1) % 3 == 2 -> layers 0, 3, 6, 7 */
static void test_q4_k_m_rules_by_hand(void **state) {
    (void)state;
    static model_list m;
    llama_list(&m, 8, 256, false);
    int nf;
    choose(&m, "q4_k_m", 8, 8, 8, &nf);
    assert_int_equal(nf, 0);
    assert_int_equal(type_of(&m, "output.weight"), QR_TYPE_Q6_K);
    assert_int_equal(type_of(&m, "token_embd.weight"), QR_TYPE_Q4_K); /* untied: plain */
    assert_int_equal(type_of(&m, "output_norm.weight"), QR_TYPE_F32);
    assert_int_equal(type_of(&m, "blk.5.attn_norm.weight"), QR_TYPE_F32);
    const int more[8] = {1, 0, 0, 1, 0, 0, 1, 1};
    for (int l = 0; l < 8; l++) {
        char v[64], d[64], q[64];
        snprintf(v, sizeof v, "blk.%d.attn_v.weight", l);
        snprintf(d, sizeof d, "blk.%d.ffn_down.weight", l);
        snprintf(q, sizeof q, "blk.%d.attn_q.weight", l);
        assert_int_equal(type_of(&m, v), more[l] ? QR_TYPE_Q6_K : QR_TYPE_Q4_K);
        assert_int_equal(type_of(&m, d), more[l] ? QR_TYPE_Q6_K : QR_TYPE_Q4_K);
        assert_int_equal(type_of(&m, q), QR_TYPE_Q4_K);
    }
}

/* tied embeddings: token_embd is the output matrix (q6_K, or q8_0 when rows do not fit 256);
 * rows of 576 fall back: q4_K -> q5_0, q6_K -> q8_0, ffn_down (1152 = 4.5 * 256) too */
static void test_tied_and_fallback(void **state) {
    (void)state;
    static model_list m;
    llama_list(&m, 8, 512, true);
    choose(&m, "Q4_K_M", 8, 8, 8, NULL);
    assert_int_equal(type_of(&m, "token_embd.weight"), QR_TYPE_Q6_K);
    llama_list(&m, 8, 576, true);
    int nf;
    choose(&m, "Q4_K_M", 8, 8, 8, &nf);
    assert_int_equal(type_of(&m, "token_embd.weight"), QR_TYPE_Q8_0);
    assert_int_equal(type_of(&m, "blk.1.attn_q.weight"), QR_TYPE_Q5_0);
    assert_int_equal(type_of(&m, "blk.0.attn_v.weight"), QR_TYPE_Q8_0);
    assert_int_equal(type_of(&m, "blk.0.ffn_down.weight"), QR_TYPE_Q8_0);
    assert_int_equal(type_of(&m, "blk.1.ffn_down.weight"), QR_TYPE_Q5_0);
    assert_int_equal(nf, 8 * 7); /* every matrix of every layer; token_embd chose q8_0 itself */
    /* rows of 48: not even 32-block types fit -> f16 (output too: its q8_0 falls back) */
    llama_list(&m, 2, 48, false);
    choose(&m, "Q4_0", 2, 8, 8, NULL);
    assert_int_equal(type_of(&m, "blk.0.attn_q.weight"), QR_TYPE_F16);
    assert_int_equal(type_of(&m, "output.weight"), QR_TYPE_F16);
}

/* Q2_K: attn_v q3_K (q4_K with n_head / n_head_kv >= 4), ffn_down q3_K, attn_output q3_K.
 * Q3_K_M: attn_v q5_K for the first two then q4_K; ffn_down q5_K below n_layer/16, else q4_K;
 * attn_output q4_K. Q5_K_M: attn_v/ffn_down q6_K on use_more_bits layers. */
static void test_other_mixes_by_hand(void **state) {
    (void)state;
    static model_list m;
    llama_list(&m, 32, 256, false);
    choose(&m, "Q2_K", 32, 32, 32, NULL);
    assert_int_equal(type_of(&m, "blk.3.attn_v.weight"), QR_TYPE_Q3_K);
    assert_int_equal(type_of(&m, "blk.3.ffn_down.weight"), QR_TYPE_Q3_K);
    assert_int_equal(type_of(&m, "blk.3.attn_output.weight"), QR_TYPE_Q3_K);
    assert_int_equal(type_of(&m, "blk.3.attn_q.weight"), QR_TYPE_Q2_K);
    assert_int_equal(type_of(&m, "output.weight"), QR_TYPE_Q6_K);
    choose(&m, "Q2_K", 32, 32, 8, NULL);
    assert_int_equal(type_of(&m, "blk.3.attn_v.weight"), QR_TYPE_Q4_K);

    choose(&m, "Q3_K_M", 32, 32, 32, NULL);
    assert_int_equal(type_of(&m, "blk.0.attn_v.weight"), QR_TYPE_Q5_K);
    assert_int_equal(type_of(&m, "blk.1.attn_v.weight"), QR_TYPE_Q5_K);
    assert_int_equal(type_of(&m, "blk.2.attn_v.weight"), QR_TYPE_Q4_K);
    assert_int_equal(type_of(&m, "blk.1.ffn_down.weight"), QR_TYPE_Q5_K); /* 1 < 32/16 */
    assert_int_equal(type_of(&m, "blk.2.ffn_down.weight"), QR_TYPE_Q4_K);
    assert_int_equal(type_of(&m, "blk.2.attn_output.weight"), QR_TYPE_Q4_K);
    assert_int_equal(type_of(&m, "blk.2.ffn_up.weight"), QR_TYPE_Q3_K);

    /* 32 layers: more bits for i < 4, i >= 28, (i - 4) % 3 == 2: 6, 9, ... */
    choose(&m, "Q5_K_M", 32, 32, 32, NULL);
    assert_int_equal(type_of(&m, "blk.3.attn_v.weight"), QR_TYPE_Q6_K);
    assert_int_equal(type_of(&m, "blk.4.attn_v.weight"), QR_TYPE_Q5_K);
    assert_int_equal(type_of(&m, "blk.6.ffn_down.weight"), QR_TYPE_Q6_K);
    assert_int_equal(type_of(&m, "blk.7.ffn_down.weight"), QR_TYPE_Q5_K);
    assert_int_equal(type_of(&m, "blk.28.ffn_down.weight"), QR_TYPE_Q6_K);

    /* pure Q4_K: no rules (output too), and F16: every matrix f16, norms stay f32 */
    choose(&m, "Q4_K", 32, 32, 32, NULL);
    assert_int_equal(type_of(&m, "output.weight"), QR_TYPE_Q4_K);
    assert_int_equal(type_of(&m, "blk.0.attn_v.weight"), QR_TYPE_Q4_K);
    choose(&m, "f16", 32, 32, 32, NULL);
    assert_int_equal(type_of(&m, "output.weight"), QR_TYPE_F16);
    assert_int_equal(type_of(&m, "blk.0.ffn_norm.weight"), QR_TYPE_F32);
}

static void choose_model(model_list *m, const char *ftype, const qr_quant_model *model) {
    const qr_quant_ftype *ft = qr_quant_ftype_find(ftype);
    assert_non_null(ft);
    int nf = 0;
    if (qr_quant_choose_types(ft, model, m->t, m->n, m->types, &nf) != QR_OK)
        fail_msg("%s", qr_last_error());
}

/* The _S and _L mixes (llama_tensor_get_type_impl), 16 layers. Q4_K_S: attn_v q5_K for the
 * first four, ffn_down q5_K below n_layer/8 (not falcon). Q3_K_L: attn_v, ffn_down and
 * attn_output q5_K (falcon: ffn_down and attn_output q4_K). Q3_K_S, Q5_K_S: only the output
 * head differs. With 8 experts attn_output is q5_K for Q3_K_S and Q4_K_S, attn_v q8_0. The
 * real files of these mixes are compared with llama.cpp's in test_mix_arch.sh. */
static void test_s_and_l_mixes_by_hand(void **state) {
    (void)state;
    static model_list m;
    llama_list(&m, 16, 256, false);
    qr_quant_model llama = {.arch = "llama", .n_layer = 16, .n_head = 8, .n_head_kv = 8};
    choose_model(&m, "Q4_K_S", &llama);
    assert_int_equal(qr_quant_ftype_find("Q4_K_S")->llama_ftype, 14);
    assert_int_equal(type_of(&m, "output.weight"), QR_TYPE_Q6_K);
    assert_int_equal(type_of(&m, "blk.3.attn_v.weight"), QR_TYPE_Q5_K);
    assert_int_equal(type_of(&m, "blk.4.attn_v.weight"), QR_TYPE_Q4_K);
    assert_int_equal(type_of(&m, "blk.1.ffn_down.weight"), QR_TYPE_Q5_K);
    assert_int_equal(type_of(&m, "blk.2.ffn_down.weight"), QR_TYPE_Q4_K);
    assert_int_equal(type_of(&m, "blk.15.ffn_down.weight"), QR_TYPE_Q4_K);
    assert_int_equal(type_of(&m, "blk.0.attn_output.weight"), QR_TYPE_Q4_K);
    assert_int_equal(type_of(&m, "blk.0.attn_q.weight"), QR_TYPE_Q4_K);

    choose_model(&m, "Q3_K_L", &llama);
    assert_int_equal(qr_quant_ftype_find("q3_k_l")->llama_ftype, 13);
    assert_int_equal(type_of(&m, "blk.9.attn_v.weight"), QR_TYPE_Q5_K);
    assert_int_equal(type_of(&m, "blk.9.ffn_down.weight"), QR_TYPE_Q5_K);
    assert_int_equal(type_of(&m, "blk.9.attn_output.weight"), QR_TYPE_Q5_K);
    assert_int_equal(type_of(&m, "blk.9.attn_k.weight"), QR_TYPE_Q3_K);
    assert_int_equal(type_of(&m, "blk.9.ffn_up.weight"), QR_TYPE_Q3_K);

    for (int k = 0; k < 2; k++) {
        const char *name = k ? "Q5_K_S" : "Q3_K_S";
        const int plain = k ? QR_TYPE_Q5_K : QR_TYPE_Q3_K;
        choose_model(&m, name, &llama);
        assert_int_equal(qr_quant_ftype_find(name)->llama_ftype, k ? 16 : 11);
        assert_int_equal(type_of(&m, "output.weight"), QR_TYPE_Q6_K);
        assert_int_equal(type_of(&m, "token_embd.weight"), plain);
        assert_int_equal(type_of(&m, "blk.0.attn_v.weight"), plain);
        assert_int_equal(type_of(&m, "blk.0.ffn_down.weight"), plain);
        assert_int_equal(type_of(&m, "blk.0.attn_output.weight"), plain);
    }

    qr_quant_model falcon = llama;
    falcon.arch = "falcon";
    choose_model(&m, "Q3_K_L", &falcon);
    assert_int_equal(type_of(&m, "output.weight"), QR_TYPE_Q8_0);
    assert_int_equal(type_of(&m, "blk.9.ffn_down.weight"), QR_TYPE_Q4_K);
    assert_int_equal(type_of(&m, "blk.9.attn_output.weight"), QR_TYPE_Q4_K);
    choose_model(&m, "Q4_K_S", &falcon);
    assert_int_equal(type_of(&m, "blk.0.ffn_down.weight"), QR_TYPE_Q4_K);

    qr_quant_model moe = llama;
    moe.n_expert = 8;
    choose_model(&m, "Q4_K_S", &moe);
    assert_int_equal(type_of(&m, "blk.9.attn_output.weight"), QR_TYPE_Q5_K);
    assert_int_equal(type_of(&m, "blk.9.attn_v.weight"), QR_TYPE_Q8_0);
    choose_model(&m, "Q3_K_S", &moe);
    assert_int_equal(type_of(&m, "blk.9.attn_output.weight"), QR_TYPE_Q5_K);
    choose_model(&m, "Q5_K_S", &moe);
    assert_int_equal(type_of(&m, "blk.9.attn_output.weight"), QR_TYPE_Q5_K);
}

/* IQ4_NL and IQ4_XS (llama_tensor_get_type_impl), 16 layers: output q6_K; attn_v q5_K with 4
 * or more query heads per kv head; ffn_down q5_K below n_layer/8 only without an importance
 * matrix; attn_output q5_K with 8 experts. Real files: test_mix_arch.sh. */
static void test_iq4_mixes_by_hand(void **state) {
    (void)state;
    static model_list m;
    llama_list(&m, 16, 256, false);
    qr_quant_model llama = {.arch = "llama", .n_layer = 16, .n_head = 8, .n_head_kv = 8};
    for (int k = 0; k < 2; k++) {
        const char *name = k ? "iq4_xs" : "IQ4_NL";
        const int plain = k ? QR_TYPE_IQ4_XS : QR_TYPE_IQ4_NL;
        assert_int_equal(qr_quant_ftype_find(name)->llama_ftype, k ? 30 : 25);
        llama.n_head_kv = 8;
        llama.has_imatrix = false;
        choose_model(&m, name, &llama);
        assert_int_equal(type_of(&m, "output.weight"), QR_TYPE_Q6_K);
        assert_int_equal(type_of(&m, "token_embd.weight"), plain);
        assert_int_equal(type_of(&m, "blk.0.attn_v.weight"), plain);
        assert_int_equal(type_of(&m, "blk.1.ffn_down.weight"), QR_TYPE_Q5_K);
        assert_int_equal(type_of(&m, "blk.2.ffn_down.weight"), plain);
        assert_int_equal(type_of(&m, "blk.0.attn_output.weight"), plain);
        llama.has_imatrix = true;
        choose_model(&m, name, &llama);
        assert_int_equal(type_of(&m, "blk.1.ffn_down.weight"), plain);
        llama.n_head_kv = 2; /* 4 query heads per kv head */
        choose_model(&m, name, &llama);
        assert_int_equal(type_of(&m, "blk.5.attn_v.weight"), QR_TYPE_Q5_K);
        qr_quant_model moe = llama;
        moe.n_expert = 8;
        choose_model(&m, name, &moe);
        assert_int_equal(type_of(&m, "blk.9.attn_output.weight"), QR_TYPE_Q5_K);
        assert_int_equal(type_of(&m, "blk.9.attn_v.weight"), QR_TYPE_Q8_0);
    }
}

/* The IQ1/IQ2 group and IQ3_XXS (llama_tensor_get_type_impl), 16 layers of 256 wide: output
 * q5_K, untied token_embd q2_K (IQ1_*, IQ2_XXS/XS) or iq3_s (IQ2_S/M, IQ3_XXS); attn_v q2_K or
 * iq3_s, q4_K with 4+ query heads per kv head or 4+ experts; ffn_down of the first
 * n_layer/8 = 2 layers q2_K or iq3_s; attn_output iq2_xxs for IQ1_*, iq3_s for IQ2_S/M.
 * Real files: test_mix_arch.sh. */
static void test_low_bit_mixes_by_hand(void **state) {
    (void)state;
    static model_list m;
    llama_list(&m, 16, 256, false);
    qr_quant_model llama = {
        .arch = "llama", .n_layer = 16, .n_head = 8, .n_head_kv = 8, .has_imatrix = true};
    static const struct {
        const char *name;
        int plain, embd, v, down0, out;
    } cases[] = {
        {"IQ1_S", QR_TYPE_IQ1_S, QR_TYPE_Q2_K, QR_TYPE_Q2_K, QR_TYPE_Q2_K, QR_TYPE_IQ2_XXS},
        {"iq1_m", QR_TYPE_IQ1_M, QR_TYPE_Q2_K, QR_TYPE_Q2_K, QR_TYPE_Q2_K, QR_TYPE_IQ2_XXS},
        {"IQ2_XXS", QR_TYPE_IQ2_XXS, QR_TYPE_Q2_K, QR_TYPE_Q2_K, QR_TYPE_Q2_K, QR_TYPE_IQ2_XXS},
        {"IQ2_XS", QR_TYPE_IQ2_XS, QR_TYPE_Q2_K, QR_TYPE_Q2_K, QR_TYPE_Q2_K, QR_TYPE_IQ2_XS},
        {"IQ2_S", QR_TYPE_IQ2_XS, QR_TYPE_IQ3_S, QR_TYPE_IQ3_S, QR_TYPE_IQ3_S, QR_TYPE_IQ3_S},
        {"IQ2_M", QR_TYPE_IQ2_S, QR_TYPE_IQ3_S, QR_TYPE_IQ3_S, QR_TYPE_IQ3_S, QR_TYPE_IQ3_S},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        llama.n_head_kv = 8;
        choose_model(&m, cases[k].name, &llama);
        assert_int_equal(type_of(&m, "output.weight"), QR_TYPE_Q5_K);
        assert_int_equal(type_of(&m, "token_embd.weight"), cases[k].embd);
        assert_int_equal(type_of(&m, "blk.3.attn_v.weight"), cases[k].v);
        assert_int_equal(type_of(&m, "blk.1.ffn_down.weight"), cases[k].down0);
        assert_int_equal(type_of(&m, "blk.2.ffn_down.weight"), cases[k].plain);
        assert_int_equal(type_of(&m, "blk.4.attn_output.weight"), cases[k].out);
        assert_int_equal(type_of(&m, "blk.4.attn_q.weight"), cases[k].plain);
        assert_int_equal(type_of(&m, "blk.4.ffn_gate.weight"), cases[k].plain);
        llama.n_head_kv = 2;
        choose_model(&m, cases[k].name, &llama);
        assert_int_equal(type_of(&m, "blk.3.attn_v.weight"), QR_TYPE_Q4_K);
    }
    /* IQ3_XXS: q/k iq2_s, v iq3_xxs with an importance (iq3_s without), output q5_K,
     * attn_output iq3_s; without an importance ffn_down q4_K / q3_K */
    llama.n_head_kv = 8;
    choose_model(&m, "IQ3_XXS", &llama);
    assert_int_equal(type_of(&m, "output.weight"), QR_TYPE_Q5_K);
    assert_int_equal(type_of(&m, "token_embd.weight"), QR_TYPE_IQ3_S);
    assert_int_equal(type_of(&m, "blk.0.attn_q.weight"), QR_TYPE_IQ2_S);
    assert_int_equal(type_of(&m, "blk.0.attn_k.weight"), QR_TYPE_IQ2_S);
    assert_int_equal(type_of(&m, "blk.0.attn_v.weight"), QR_TYPE_IQ3_XXS);
    assert_int_equal(type_of(&m, "blk.0.attn_output.weight"), QR_TYPE_IQ3_S);
    assert_int_equal(type_of(&m, "blk.0.ffn_down.weight"), QR_TYPE_IQ3_XXS);
    llama.has_imatrix = false;
    choose_model(&m, "IQ3_XXS", &llama);
    assert_int_equal(type_of(&m, "blk.0.attn_v.weight"), QR_TYPE_IQ3_S);
    assert_int_equal(type_of(&m, "blk.1.ffn_down.weight"), QR_TYPE_Q4_K);
    assert_int_equal(type_of(&m, "blk.2.ffn_down.weight"), QR_TYPE_Q3_K);
    /* IQ3_XS: iq3_xxs for q, k, and the middle layers' gate and up (2 <= layer < 14) */
    choose_model(&m, "IQ3_XS", &llama);
    assert_int_equal(type_of(&m, "output.weight"), QR_TYPE_Q6_K);
    assert_int_equal(type_of(&m, "blk.0.attn_q.weight"), QR_TYPE_IQ3_XXS);
    assert_int_equal(type_of(&m, "blk.1.ffn_up.weight"), QR_TYPE_IQ3_S);
    assert_int_equal(type_of(&m, "blk.2.ffn_up.weight"), QR_TYPE_IQ3_XXS);
    assert_int_equal(type_of(&m, "blk.13.ffn_gate.weight"), QR_TYPE_IQ3_XXS);
    assert_int_equal(type_of(&m, "blk.14.ffn_gate.weight"), QR_TYPE_IQ3_S);
    /* IQ3_M: attn_v, attn_output and the first two ffn_down q4_K */
    choose_model(&m, "IQ3_M", &llama);
    assert_int_equal(type_of(&m, "blk.7.attn_v.weight"), QR_TYPE_Q4_K);
    assert_int_equal(type_of(&m, "blk.7.attn_output.weight"), QR_TYPE_Q4_K);
    assert_int_equal(type_of(&m, "blk.1.ffn_down.weight"), QR_TYPE_Q4_K);
    assert_int_equal(type_of(&m, "blk.2.ffn_down.weight"), QR_TYPE_IQ3_S);
    /* Q2_K_S: attn_v plain unless 4+ query heads per kv head, the first ffn_down q4_K */
    choose_model(&m, "Q2_K_S", &llama);
    assert_int_equal(type_of(&m, "blk.7.attn_v.weight"), QR_TYPE_Q2_K);
    assert_int_equal(type_of(&m, "blk.1.ffn_down.weight"), QR_TYPE_Q4_K);
    assert_int_equal(type_of(&m, "blk.2.ffn_down.weight"), QR_TYPE_Q2_K);
    /* TQ1_0/TQ2_0: an untied token_embd q4_K; the 256-wide matrices ternary */
    choose_model(&m, "tq2_0", &llama);
    assert_int_equal(type_of(&m, "token_embd.weight"), QR_TYPE_Q4_K);
    assert_int_equal(type_of(&m, "blk.0.attn_q.weight"), QR_TYPE_TQ2_0);
    assert_int_equal(type_of(&m, "output.weight"), QR_TYPE_Q6_K);
    /* MXFP4_MOE without experts: q8_0 everywhere */
    choose_model(&m, "MXFP4_MOE", &llama);
    assert_int_equal(type_of(&m, "output.weight"), QR_TYPE_Q8_0);
    assert_int_equal(type_of(&m, "token_embd.weight"), QR_TYPE_Q8_0);
    assert_int_equal(type_of(&m, "blk.0.ffn_up.weight"), QR_TYPE_Q8_0);
    /* which tensors need an importance */
    const qr_quant_ftype *q2ks = qr_quant_ftype_find("Q2_K_S"), *q2k = qr_quant_ftype_find("Q2_K");
    assert_true(qr_quant_requires_imatrix(q2ks, "blk.0.attn_q.weight", QR_TYPE_Q2_K));
    assert_false(qr_quant_requires_imatrix(q2k, "blk.0.attn_q.weight", QR_TYPE_Q2_K));
    assert_false(qr_quant_requires_imatrix(q2ks, "token_embd.weight", QR_TYPE_IQ2_XXS));
    assert_false(qr_quant_requires_imatrix(q2ks, "output.weight", QR_TYPE_IQ1_S));
    assert_true(qr_quant_requires_imatrix(q2k, "blk.3.ffn_down.weight", QR_TYPE_IQ3_XXS));
    assert_false(qr_quant_requires_imatrix(q2k, "blk.3.ffn_down.weight", QR_TYPE_IQ3_S));
}

/* Experts (3-D tensors) in MXFP4_MOE are mxfp4; 2-D ones q8_0. The user's output and
 * token_embd types win over the rules and are not demoted by the row-length fallback. */
static void test_mxfp4_moe_and_user_types(void **state) {
    (void)state;
    static model_list m;
    llama_list(&m, 4, 256, false);
    m.t[m.n - 1].ne[2] = 8; /* the last ffn_up: 8 experts */
    qr_quant_model moe = {.arch = "llama", .n_layer = 4, .n_head = 8, .n_head_kv = 8,
                          .n_expert = 8};
    choose_model(&m, "MXFP4_MOE", &moe);
    assert_string_equal(m.t[m.n - 1].name, "blk.3.ffn_up.weight");
    assert_int_equal(m.types[m.n - 1], QR_TYPE_MXFP4);
    assert_int_equal(type_of(&m, "blk.3.ffn_gate.weight"), QR_TYPE_Q8_0);
    m.t[m.n - 1].ne[2] = 1;

    qr_quant_model llama = {.arch = "llama", .n_layer = 4, .n_head = 8, .n_head_kv = 8};
    llama.set_output_type = true;
    llama.output_type = QR_TYPE_Q4_0;
    llama.set_token_embd_type = true;
    llama.token_embd_type = QR_TYPE_Q8_0;
    choose_model(&m, "Q4_K_M", &llama);
    assert_int_equal(type_of(&m, "output.weight"), QR_TYPE_Q4_0);
    assert_int_equal(type_of(&m, "token_embd.weight"), QR_TYPE_Q8_0);
    llama.output_type = QR_TYPE_Q6_K; /* 200 columns: no q6_K rows, yet no fallback */
    llama_list(&m, 4, 200, false);
    choose_model(&m, "Q8_0", &llama);
    assert_int_equal(type_of(&m, "output.weight"), QR_TYPE_Q6_K);
    llama.set_output_type = llama.set_token_embd_type = false;
    llama.keep_output = true;
    llama_list(&m, 4, 256, false);
    choose_model(&m, "Q8_0", &llama);
    assert_int_equal(type_of(&m, "output.weight"), QR_TYPE_F16);
    assert_int_equal(type_of(&m, "token_embd.weight"), QR_TYPE_Q8_0);
}

/* phi3's fused attn_qkv follows the attn_v rules and counts as one (llama.cpp v0.5.0: its own
 * ATTENTION_QKV branch is never reached); a fused ffn_up of 2 * n_ff rows is a plain ffn_up */
static void test_fused_qkv_as_attn_v(void **state) {
    (void)state;
    static model_list m;
    m.n = 0;
    add(&m, "output.weight", 256, 1000, QR_TYPE_F16);
    add(&m, "output_norm.weight", 256, 1, QR_TYPE_F32);
    add(&m, "rope_factors_long.weight", 32, 1, QR_TYPE_F32);
    add(&m, "token_embd.weight", 256, 1000, QR_TYPE_F16);
    for (int l = 0; l < 4; l++) {
        char name[64];
#define ADD(x, ne0, ne1, type)                                                                     \
    (snprintf(name, sizeof name, "blk.%d." x, l), add(&m, name, ne0, ne1, type))
        ADD("attn_norm.weight", 256, 1, QR_TYPE_F32);
        ADD("attn_output.weight", 256, 256, QR_TYPE_F16);
        ADD("attn_qkv.weight", 256, 512, QR_TYPE_F16);
        ADD("ffn_down.weight", 512, 256, QR_TYPE_F16);
        ADD("ffn_norm.weight", 256, 1, QR_TYPE_F32);
        ADD("ffn_up.weight", 256, 1024, QR_TYPE_F16);
#undef ADD
    }
    qr_quant_model phi3 = {.arch = "phi3", .n_layer = 4, .n_head = 4, .n_head_kv = 2};
    /* use_more_bits(i, 4): layers 2 and 3 */
    const int q4_k_m[4] = {QR_TYPE_Q4_K, QR_TYPE_Q4_K, QR_TYPE_Q6_K, QR_TYPE_Q6_K};
    const int q3_k_m[4] = {QR_TYPE_Q5_K, QR_TYPE_Q5_K, QR_TYPE_Q4_K, QR_TYPE_Q4_K};
    for (int l = 0; l < 4; l++) {
        char qkv[64], up[64];
        snprintf(qkv, sizeof qkv, "blk.%d.attn_qkv.weight", l);
        snprintf(up, sizeof up, "blk.%d.ffn_up.weight", l);
        choose_model(&m, "Q4_K_M", &phi3);
        assert_int_equal(type_of(&m, qkv), q4_k_m[l]);
        assert_int_equal(type_of(&m, up), QR_TYPE_Q4_K);
        choose_model(&m, "Q3_K_M", &phi3);
        assert_int_equal(type_of(&m, qkv), q3_k_m[l]);
        choose_model(&m, "Q5_K_M", &phi3);
        assert_int_equal(type_of(&m, qkv), l >= 2 ? QR_TYPE_Q6_K : QR_TYPE_Q5_K);
    }
    assert_int_equal(type_of(&m, "rope_factors_long.weight"), QR_TYPE_F32);
}

/* llama.cpp's order: non-layer tensors first, then layer by number (not as text) */
static void test_tensor_order(void **state) {
    (void)state;
    assert_true(qr_quant_tensor_cmp("output.weight", "blk.0.attn_q.weight") < 0);
    assert_true(qr_quant_tensor_cmp("blk.2.attn_q.weight", "blk.10.attn_k.weight") < 0);
    assert_true(qr_quant_tensor_cmp("blk.2.attn_q.weight", "blk.2.attn_k.weight") > 0);
    assert_true(qr_quant_tensor_cmp("output.weight", "output_norm.weight") < 0);
}

static void test_ftype_names(void **state) {
    (void)state;
    assert_int_equal(qr_quant_ftype_find("q4_k_m")->llama_ftype, 15);
    assert_int_equal(qr_quant_ftype_find("Q8_0")->llama_ftype, 7);
    assert_int_equal(qr_quant_ftype_find("BF16")->llama_ftype, 32);
    assert_int_equal(qr_quant_ftype_find("Q2_K")->llama_ftype, 10);
    assert_int_equal(qr_quant_ftype_find("Q4_K_S")->llama_ftype, 14);
    assert_int_equal(qr_quant_ftype_find("Q4_K")->mix, QR_MIX_PURE); /* pure, also 14 */
    assert_null(qr_quant_ftype_find("Q4_K_X"));
    assert_null(qr_quant_ftype_find("q8_1"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_q4_k_m_rules_by_hand),
        cmocka_unit_test(test_tied_and_fallback),
        cmocka_unit_test(test_other_mixes_by_hand),
        cmocka_unit_test(test_s_and_l_mixes_by_hand),
        cmocka_unit_test(test_iq4_mixes_by_hand),
        cmocka_unit_test(test_low_bit_mixes_by_hand),
        cmocka_unit_test(test_mxfp4_moe_and_user_types),
        cmocka_unit_test(test_fused_qkv_as_attn_v),
        cmocka_unit_test(test_tensor_order),
        cmocka_unit_test(test_ftype_names),
        cmocka_unit_test(test_smol135_q4_k_m_matches_llama_cpp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
