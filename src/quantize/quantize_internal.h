/* quantize_internal.h - the pieces of qr_quantize_file shared with its tests: the file types
 * (ftype names) and the choice of each tensor's type (mix.c), llama.cpp's rules. */
#ifndef QR_QUANTIZE_INTERNAL_H
#define QR_QUANTIZE_INTERNAL_H

#include "quarrel.h"

#include <stdbool.h>
#include <stdint.h>

/* The mixes whose per-tensor rules differ from "every weight matrix gets default_type". */
typedef enum qr_mix {
    QR_MIX_NONE,   /* plain llama.cpp ftypes: Q4_0 ... Q8_0, Q6_K, F16, BF16 */
    QR_MIX_PURE,   /* Q2_K..Q5_K named as bare types: no mix rules (llama-quantize --pure) */
    QR_MIX_Q2_K,   /* llama.cpp's Q2_K; the mixes from here on need the layer count */
    QR_MIX_Q3_K_S, /* Q3_K_S */
    QR_MIX_Q3_K_M, /* Q3_K_M */
    QR_MIX_Q3_K_L, /* Q3_K_L */
    QR_MIX_Q4_K_S, /* Q4_K_S */
    QR_MIX_Q4_K_M, /* Q4_K_M */
    QR_MIX_Q5_K_S, /* Q5_K_S */
    QR_MIX_Q5_K_M, /* Q5_K_M */
    QR_MIX_IQ4_NL, /* IQ4_NL */
    QR_MIX_IQ4_XS, /* IQ4_XS */
    QR_MIX_Q2_K_S, /* Q2_K_S */
    QR_MIX_IQ2_XXS,
    QR_MIX_IQ2_XS,
    QR_MIX_IQ2_S, /* mostly iq2_xs */
    QR_MIX_IQ2_M, /* mostly iq2_s */
    QR_MIX_IQ3_XXS,
    QR_MIX_IQ3_XS, /* mostly iq3_s, iq3_xxs in the middle layers' ffn_gate/up */
    QR_MIX_IQ3_S,
    QR_MIX_IQ3_M,
    QR_MIX_IQ1_S,
    QR_MIX_IQ1_M,
    QR_MIX_TQ1_0,
    QR_MIX_TQ2_0,
    QR_MIX_MXFP4_MOE, /* mxfp4 experts, q8_0 elsewhere */
} qr_mix;

typedef struct qr_quant_ftype {
    const char *name;     /* as the user writes it ("Q4_K_M"), matched case-insensitively */
    uint32_t llama_ftype; /* general.file_type written: llama.cpp's LLAMA_FTYPE_* value */
    int default_type;     /* qr_type of the ordinary weight matrices */
    qr_mix mix;
} qr_quant_ftype;

/* NULL if the name is not a known ftype. */
const qr_quant_ftype *qr_quant_ftype_find(const char *name);
/* "F16, BF16, Q8_0, ..." for messages. */
const char *qr_quant_ftype_names(void);

/* What the rules need to know about the model (from its metadata). */
typedef struct qr_quant_model {
    const char *arch; /* general.architecture */
    int n_layer, n_head, n_head_kv, n_expert;
    bool has_imatrix; /* quantizing with an importance matrix (llama.cpp's qs.has_imatrix) */
    /* llama-quantize's --output-tensor-type / --token-embedding-type (a qr_type, used where
     * the flag beside it is set) and --leave-output-tensor (output.weight keeps its type) */
    bool set_output_type, set_token_embd_type, keep_output;
    int output_type, token_embd_type;
} qr_quant_model;

typedef struct qr_quant_tensor {
    const char *name;
    int type; /* current qr_type */
    int64_t ne[4];
} qr_quant_tensor;

/* Sort order of llama.cpp's loader (and of its output files): tensors outside blk.N. first,
 * then by layer number, then by name. The per-layer counters of the rules depend on it. */
int qr_quant_tensor_cmp(const char *a, const char *b);

/* llama.cpp's tensor_requires_imatrix: a tensor (not token_embd or output) that becomes
 * iq1_s, iq1_m, iq2_xxs, iq2_xs, iq2_s or iq3_xxs, or q2_K in a Q2_K_S file, is not
 * quantized without an importance matrix ("the result will be garbage"). */
bool qr_quant_requires_imatrix(const qr_quant_ftype *ft, const char *name, int type);

/* Choose the type of each tensor, visited in the order given (use qr_quant_tensor_cmp order),
 * as llama.cpp's llama_tensor_get_type: tensors that are not weight matrices keep their type,
 * --token-embedding-type / --output-tensor-type win, the mix rules pick a type per tensor,
 * then rows not a multiple of the block size fall back (the 256-block IQ types -> iq4_nl,
 * q2_K/q3_K/tq1_0/tq2_0 -> q4_0, q4_K -> q5_0, q5_K -> q5_1, q6_K -> q8_0, else f16).
 * *n_fallback counts the fallbacks. Fails (QR_ERR_FORMAT) only for a model with experts whose
 * per-layer tensors have no blk.N. layer number in range. */
qr_status qr_quant_choose_types(const qr_quant_ftype *ft, const qr_quant_model *model,
                                const qr_quant_tensor *tensors, int64_t n, int *out_types,
                                int *n_fallback);

#endif
