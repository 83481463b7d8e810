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
} qr_quant_model;

typedef struct qr_quant_tensor {
    const char *name;
    int type; /* current qr_type */
    int64_t ne[4];
} qr_quant_tensor;

/* Sort order of llama.cpp's loader (and of its output files): tensors outside blk.N. first,
 * then by layer number, then by name. The per-layer counters of the rules depend on it. */
int qr_quant_tensor_cmp(const char *a, const char *b);

/* Choose the type of each tensor, visited in the order given (use qr_quant_tensor_cmp order),
 * as llama.cpp's llama_tensor_get_type: tensors that are not weight matrices keep their type,
 * the mix rules pick a type per tensor, then rows not a multiple of the block size fall back
 * (q4_K -> q5_0, q5_K -> q5_1, q6_K -> q8_0, q2_K/q3_K -> q4_0, iq4_xs -> iq4_nl, else
 * f16). *n_fallback counts
 * the fallbacks. Fails (QR_ERR_FORMAT) only for a model with experts whose per-layer tensors
 * have no blk.N. layer number in range. */
qr_status qr_quant_choose_types(const qr_quant_ftype *ft, const qr_quant_model *model,
                                const qr_quant_tensor *tensors, int64_t n, int *out_types,
                                int *n_fallback);

#endif
