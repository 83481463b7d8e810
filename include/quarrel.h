/* quarrel.h - the public API of libquarrel, an LLM inference engine for GGUF models.
 *
 * Conventions: every function that can fail returns a qr_status (or NULL) and leaves a message
 * for qr_last_error() (thread-local). Each _create/_load/_open has its _free. Handles are
 * opaque. Strings are UTF-8. Token ids are int32_t.
 */
#ifndef QUARREL_H
#define QUARREL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------ */
/* Errors                                                                                     */

typedef enum qr_status {
    QR_OK = 0,
    QR_ERR_INVALID_ARG,  /* a caller passed a bad value (flag, parameter, request field) */
    QR_ERR_IO,           /* open/read/write/mmap failed */
    QR_ERR_FORMAT,       /* malformed input file or data */
    QR_ERR_UNSUPPORTED,  /* valid but not supported (GGUF v1, unknown arch or tensor type) */
    QR_ERR_NOMEM,        /* allocation failed */
    QR_ERR_CONTEXT_FULL, /* tokens do not fit the context */
    QR_ERR_NUMERIC,      /* NaN/inf logits, all candidates filtered, ... */
    QR_ERR_BUFFER_SMALL, /* the output buffer is too small; the needed size is reported */
    QR_ERR_CANCELLED,    /* stopped by a callback */
    QR_ERR_TEMPLATE,     /* a chat template failed to render */
} qr_status;

/* The message of the last error on this thread ("" if none). */
const char *qr_last_error(void);
/* A short name of a status ("ok", "invalid argument", ...). */
const char *qr_status_name(qr_status status);

/* ------------------------------------------------------------------------------------------ */
/* Tensor types (numbered as ggml numbers them, so GGUF files carry these values)             */

typedef enum qr_type {
    QR_TYPE_F32 = 0,
    QR_TYPE_F16 = 1,
    QR_TYPE_Q4_0 = 2,
    QR_TYPE_Q4_1 = 3,
    QR_TYPE_Q5_0 = 6,
    QR_TYPE_Q5_1 = 7,
    QR_TYPE_Q8_0 = 8,
    QR_TYPE_Q8_1 = 9,
    QR_TYPE_Q2_K = 10,
    QR_TYPE_Q3_K = 11,
    QR_TYPE_Q4_K = 12,
    QR_TYPE_Q5_K = 13,
    QR_TYPE_Q6_K = 14,
    QR_TYPE_Q8_K = 15,
    QR_TYPE_IQ2_XXS = 16,
    QR_TYPE_IQ2_XS = 17,
    QR_TYPE_IQ3_XXS = 18,
    QR_TYPE_IQ1_S = 19,
    QR_TYPE_IQ4_NL = 20,
    QR_TYPE_IQ3_S = 21,
    QR_TYPE_IQ2_S = 22,
    QR_TYPE_IQ4_XS = 23,
    QR_TYPE_IQ1_M = 29,
    QR_TYPE_BF16 = 30,
    QR_TYPE_TQ1_0 = 34,
    QR_TYPE_TQ2_0 = 35,
    QR_TYPE_MXFP4 = 39,
    QR_TYPE_COUNT = 40, /* upper bound on ggml type ids, for tables */
} qr_type;

/* Name ("q4_K"), or NULL for an id Quarrel does not know. */
const char *qr_type_name(int type);
/* Parse a type name, case-insensitive ("Q4_K", "f16"); -1 if unknown. */
int qr_type_from_name(const char *name);
/* Elements per block and bytes per block; 0 for an unknown type. */
int64_t qr_type_block_size(int type);
size_t qr_type_block_bytes(int type);
/* Bytes of a row of n elements (n a multiple of the block size), 0 if not representable. */
size_t qr_type_row_bytes(int type, int64_t n);
/* Dequantize n elements (a multiple of the block size) of a tensor of this type. */
qr_status qr_dequantize(int type, const void *src, float *dst, int64_t n);
/* Quantize n elements (a multiple of the block size) into dst (qr_type_row_bytes(type, n)). */
qr_status qr_quantize(int type, const float *src, void *dst, int64_t n);
/* Quantize n_rows rows of n_per_row elements (a multiple of the block size) into dst
 * (n_rows * qr_type_row_bytes(type, n_per_row)) with an importance matrix as llama-quantize's
 * --imatrix gives it to ggml_quantize_chunk: imatrix holds n_per_row weights, one per column,
 * or is NULL for none. Byte-exact with ggml for the IQ types (which use it), tq1_0, tq2_0,
 * mxfp4, q8_0 and the float types (which ignore it); without importance for every type
 * qr_quantize supports. Other types with an importance: QR_ERR_UNSUPPORTED. iq2_xxs, iq2_xs
 * and iq1_s need one (QR_ERR_INVALID_ARG without). */
qr_status qr_quantize_rows(int type, const float *src, void *dst, int64_t n_rows, int64_t n_per_row,
                           const float *imatrix);

/* ------------------------------------------------------------------------------------------ */
/* GGUF files                                                                                 */

typedef enum qr_gguf_type {
    QR_GGUF_UINT8 = 0,
    QR_GGUF_INT8 = 1,
    QR_GGUF_UINT16 = 2,
    QR_GGUF_INT16 = 3,
    QR_GGUF_UINT32 = 4,
    QR_GGUF_INT32 = 5,
    QR_GGUF_FLOAT32 = 6,
    QR_GGUF_BOOL = 7,
    QR_GGUF_STRING = 8,
    QR_GGUF_ARRAY = 9,
    QR_GGUF_UINT64 = 10,
    QR_GGUF_INT64 = 11,
    QR_GGUF_FLOAT64 = 12,
} qr_gguf_type;

/* A parsed metadata value. Strings are NUL-terminated copies (len excludes the NUL).
 * Arrays of numbers point at the raw little-endian values inside the file (possibly
 * unaligned: read them with qr_gguf_arr_*); arrays of strings and of arrays have items[]. */
typedef struct qr_gguf_value {
    qr_gguf_type type;
    union {
        uint64_t u64; /* every unsigned integer type */
        int64_t i64;  /* every signed integer type */
        double f64;   /* FLOAT32 and FLOAT64 */
        bool b;
        struct {
            const char *ptr;
            uint64_t len;
        } str;
        struct {
            qr_gguf_type type;
            uint64_t n;
            const void *data;                  /* numeric and bool element arrays */
            const struct qr_gguf_value *items; /* string and array element arrays */
        } arr;
    };
} qr_gguf_value;

typedef struct qr_gguf_tensor {
    const char *name;
    int type; /* qr_type */
    uint32_t n_dims;
    int64_t ne[4];   /* ne[0] is the fastest-varying (row length); unused dims are 1 */
    uint64_t offset; /* from the start of the data section */
    size_t nbytes;
    const void *data; /* inside the mapping */
} qr_gguf_tensor;

typedef struct qr_gguf qr_gguf;

/* Map a file read-only (MAP_PRIVATE) and parse it. */
qr_status qr_gguf_open(const char *path, qr_gguf **out);
/* Parse a GGUF image in memory; the caller keeps data alive and unchanged until free. */
qr_status qr_gguf_open_memory(const void *data, size_t size, qr_gguf **out);
void qr_gguf_free(qr_gguf *gguf);

uint32_t qr_gguf_version(const qr_gguf *gguf);
size_t qr_gguf_alignment(const qr_gguf *gguf);
size_t qr_gguf_data_offset(const qr_gguf *gguf);
size_t qr_gguf_file_size(const qr_gguf *gguf);

int64_t qr_gguf_n_kv(const qr_gguf *gguf);
const char *qr_gguf_key(const qr_gguf *gguf, int64_t i);
const qr_gguf_value *qr_gguf_value_at(const qr_gguf *gguf, int64_t i);
int64_t qr_gguf_find_key(const qr_gguf *gguf, const char *key); /* -1 if absent */
/* Typed lookups: NULL/false when absent or of another type (integers convert if in range). */
const char *qr_gguf_get_str(const qr_gguf *gguf, const char *key);
bool qr_gguf_get_u32(const qr_gguf *gguf, const char *key, uint32_t *out);
bool qr_gguf_get_i64(const qr_gguf *gguf, const char *key, int64_t *out);
bool qr_gguf_get_f32(const qr_gguf *gguf, const char *key, float *out);
bool qr_gguf_get_bool(const qr_gguf *gguf, const char *key, bool *out);
const qr_gguf_value *qr_gguf_get_arr(const qr_gguf *gguf, const char *key);
/* Element j of a numeric/bool array, converted. */
int64_t qr_gguf_arr_i64(const qr_gguf_value *arr, uint64_t j);
double qr_gguf_arr_f64(const qr_gguf_value *arr, uint64_t j);
/* Size in bytes of one element of a scalar type (0 for STRING/ARRAY). */
size_t qr_gguf_type_size(qr_gguf_type type);
const char *qr_gguf_type_name(qr_gguf_type type);

int64_t qr_gguf_n_tensors(const qr_gguf *gguf);
const qr_gguf_tensor *qr_gguf_tensor_at(const qr_gguf *gguf, int64_t i);
const qr_gguf_tensor *qr_gguf_find_tensor(const qr_gguf *gguf, const char *name);

/* Writer: collect KVs and tensors, then write a GGUF v3 file (data aligned to
 * general.alignment, default 32). Tensor data pointers must stay valid until write. */
typedef struct qr_gguf_writer qr_gguf_writer;
qr_gguf_writer *qr_gguf_writer_create(void);
void qr_gguf_writer_free(qr_gguf_writer *w);
/* Set a key (replacing an earlier one of the same name) to a copy of value. */
qr_status qr_gguf_writer_set(qr_gguf_writer *w, const char *key, const qr_gguf_value *value);
qr_status qr_gguf_writer_set_str(qr_gguf_writer *w, const char *key, const char *s);
qr_status qr_gguf_writer_set_u32(qr_gguf_writer *w, const char *key, uint32_t v);
qr_status qr_gguf_writer_set_f32(qr_gguf_writer *w, const char *key, float v);
qr_status qr_gguf_writer_set_bool(qr_gguf_writer *w, const char *key, bool v);
qr_status qr_gguf_writer_add_tensor(qr_gguf_writer *w, const char *name, int type, uint32_t n_dims,
                                    const int64_t *ne, const void *data, size_t nbytes);
qr_status qr_gguf_writer_write(qr_gguf_writer *w, const char *path);

/* ------------------------------------------------------------------------------------------ */
/* Quantizing a model file                                                                    */

/* An importance matrix (llama-imatrix's output, what llama-quantize --imatrix reads): per
 * weight matrix, named as the tensor ("blk.0.attn_q.weight"), one importance per column (ne0),
 * times the number of matrices for 3-D expert tensors. Both of llama.cpp's formats are read:
 * the legacy imatrix.dat (importance = sums / ncall) and the GGUF one (<name>.in_sum2 and
 * <name>.counts, importance = in_sum2 / counts per matrix, 1 where a count is 0). */
typedef struct qr_imatrix qr_imatrix;
/* Read a file of either format (told apart by the GGUF magic). */
qr_status qr_imatrix_load(const char *path, qr_imatrix **out);
/* The same from memory; nothing of data is kept after the call. */
qr_status qr_imatrix_load_memory(const void *data, size_t size, qr_imatrix **out);
void qr_imatrix_free(qr_imatrix *im);
int64_t qr_imatrix_n_entries(const qr_imatrix *im);
/* Entry i (0 <= i < n_entries, sorted by name): its name; *values and *n_values if non-NULL. */
const char *qr_imatrix_entry(const qr_imatrix *im, int64_t i, const float **values,
                             int64_t *n_values);
/* The importance of the named tensor, NULL if the file has none; *n_values its length. */
const float *qr_imatrix_find(const qr_imatrix *im, const char *name, int64_t *n_values);

typedef struct qr_quantize_params {
    int n_threads;
    bool verbose;              /* per-tensor lines on stderr */
    bool pure;                 /* every weight matrix gets the file type's default type */
    const qr_imatrix *imatrix; /* NULL: none */
    /* llama-quantize's --allow-requantize: quantized input tensors are dequantized and
     * quantized again (refused otherwise) */
    bool allow_requantize;
    bool leave_output_tensor; /* --leave-output-tensor: output.weight keeps its type */
    /* --output-tensor-type / --token-embedding-type: a tensor type name ("q8_0", "f16", any
     * case) for output.weight / token_embd.weight, over the mix's rules; NULL: the rules */
    const char *output_tensor_type;
    const char *token_embedding_type;
} qr_quantize_params;

/* ftype: one of llama.cpp's file types ("Q8_0", "Q4_K_M", "IQ2_XXS", "MXFP4_MOE", "F32", ...;
 * qr_quantize_file's error lists them) or a bare "Q3_K"/"Q4_K"/"Q5_K" (every weight matrix of
 * that type), in any case, with llama-quantize's per-tensor rules. With params->imatrix each
 * tensor uses the entry named as it (an entry whose length is not ne0 x matrices is
 * QR_ERR_FORMAT, except for token_embd, which then goes without); a tensor that llama-quantize
 * will not make without an importance (iq1_*, iq2_*, iq3_xxs, q2_K of Q2_K_S; not token_embd
 * or output) and has none is refused before anything is written. */
qr_status qr_quantize_file(const char *in_path, const char *out_path, const char *ftype,
                           const qr_quantize_params *params);

/* ------------------------------------------------------------------------------------------ */
/* Models                                                                                     */

typedef int32_t qr_token;
typedef struct qr_model qr_model;

typedef struct qr_model_params {
    bool vocab_only; /* load only the tokenizer (vocabulary-only GGUF files) */
    /* Keep every weight in place on the read-only mapping. By default the weights are copied
     * once at load into one allocation in huge pages, the matrices this CPU's kernels read
     * faster in a repacked layout (f16, bf16, q4_0, q5_0, q8_0, q4_K; q6_K with AVX512-VNNI)
     * converted on the way, and the mapping's pages are released as they are copied, so
     * memory use does not grow. A model that would take more than 80% of the available memory
     * (or one the allocation fails for) stays on the mapping, as with this flag
     * (`--no-repack` in `quarrel run` and `quarrel bench`). */
    bool no_repack;
} qr_model_params;

qr_model_params qr_model_default_params(void);

/* Resolve a model name (path, $QUARREL_MODELS, ollama store; NULL means the default
 * stories260K) into a file path. The error message lists the places looked at. */
qr_status qr_model_resolve(const char *name, const char *default_dir, char *path, size_t path_size);
qr_status qr_model_load(const char *path, const qr_model_params *params, qr_model **out);
void qr_model_free(qr_model *model);

const char *qr_model_arch(const qr_model *model);
const qr_gguf *qr_model_gguf(const qr_model *model);
int32_t qr_model_n_vocab(const qr_model *model);
int32_t qr_model_n_ctx_train(const qr_model *model);
int32_t qr_model_n_embd(const qr_model *model);
int32_t qr_model_n_layer(const qr_model *model);
uint64_t qr_model_size_bytes(const qr_model *model);
uint64_t qr_model_n_params(const qr_model *model);
/* The tokenizer.chat_template string, or NULL. */
const char *qr_model_chat_template(const qr_model *model);

/* ------------------------------------------------------------------------------------------ */
/* Tokenizer                                                                                  */

/* Tokenize text[0..len). add_special: BOS/EOS as the vocabulary asks. parse_special: text
 * like "<|im_start|>" becomes the special token. On QR_ERR_BUFFER_SMALL *n_tokens is the
 * number needed. */
qr_status qr_tokenize(const qr_model *model, const char *text, size_t len, bool add_special,
                      bool parse_special, qr_token *tokens, int32_t n_max, int32_t *n_tokens);
/* The bytes of one token (not NUL-terminated); returns the length, or -(needed) if len is too
 * small. special: render control tokens ("</s>") instead of nothing. */
int32_t qr_token_to_piece(const qr_model *model, qr_token token, char *buf, int32_t len,
                          bool special);
/* Detokenize a sequence with llama.cpp's rules (leading space after BOS removed for SPM);
 * returns the length, or -(needed). */
int32_t qr_detokenize(const qr_model *model, const qr_token *tokens, int32_t n_tokens, char *buf,
                      int32_t len, bool remove_special, bool unparse_special);
const char *qr_token_text(const qr_model *model, qr_token token); /* vocabulary string */
qr_token qr_token_bos(const qr_model *model);                     /* -1 if none */
qr_token qr_token_eos(const qr_model *model);
bool qr_token_is_eog(const qr_model *model, qr_token token); /* EOS, EOT, ... */
bool qr_token_is_control(const qr_model *model, qr_token token);
bool qr_model_adds_bos(const qr_model *model); /* the vocabulary wants a BOS first */

/* Streaming-safe text output: feed token bytes as they come, get back only complete UTF-8
 * characters. */
typedef struct qr_utf8_stream {
    char pending[4];
    int n_pending;
} qr_utf8_stream;
/* Appends the complete characters of pending+in to out (capacity >= 3 * n + 9: each invalid
 * byte becomes the 3-byte U+FFFD); returns bytes written. */
size_t qr_utf8_stream_push(qr_utf8_stream *s, const char *in, size_t n, char *out);
/* Flush what is left (an incomplete tail becomes U+FFFD). */
size_t qr_utf8_stream_flush(qr_utf8_stream *s, char *out);

/* ------------------------------------------------------------------------------------------ */
/* Contexts, batches, evaluation                                                              */

typedef struct qr_context qr_context;

/* KV cache types, llama.cpp's --cache-type-k / --cache-type-v. F16 and F32 caches (both K and
 * V) attend as llama.cpp does without flash attention (the canonical reference settings); a
 * cache with any other type on K or V attends as llama.cpp's CPU flash-attention path: the
 * query rounded to the K type's dot partner, an online softmax, V accumulated in f32 (f16 for
 * an f16 V). The quantized types need a head size their block (32) divides. */
typedef enum qr_kv_type {
    QR_KV_F16 = 0,
    QR_KV_F32 = 1,
    QR_KV_BF16,
    QR_KV_Q8_0,
    QR_KV_Q4_0,
    QR_KV_Q4_1,
    QR_KV_Q5_0,
    QR_KV_Q5_1,
    QR_KV_IQ4_NL,
    QR_KV_TYPE_COUNT
} qr_kv_type;
/* Flash attention, llama.cpp's -fa/--flash-attn (llama_flash_attn_type): AUTO uses it where the
 * cache needs it (a type other than f16/f32 on K or V), ON always (the f16/f32 caches then
 * attend with its arithmetic too), OFF never: a quantized or bf16 V cache is then refused, as
 * llama.cpp refuses a quantized V without it. */
typedef enum qr_flash_attn {
    QR_FLASH_ATTN_AUTO = -1,
    QR_FLASH_ATTN_OFF = 0,
    QR_FLASH_ATTN_ON = 1,
} qr_flash_attn;
/* llama.cpp's name of a KV type ("f16", "q8_0", ...), NULL for a value that is none */
const char *qr_kv_type_name(qr_kv_type type);
/* The KV type of that name (case-insensitive); QR_ERR_INVALID_ARG with a message that lists
 * the allowed names if there is none. */
qr_status qr_kv_type_parse(const char *name, qr_kv_type *out);

/* RoPE scaling (llama.cpp's --rope-scaling); DEFAULT: what the model's GGUF declares */
typedef enum qr_rope_scaling {
    QR_ROPE_SCALING_DEFAULT = 0,
    QR_ROPE_SCALING_NONE,
    QR_ROPE_SCALING_LINEAR,
    QR_ROPE_SCALING_YARN,
    QR_ROPE_SCALING_LONGROPE,
} qr_rope_scaling;

/* Debug hook: called with every named intermediate of the forward pass (names as llama.cpp's
 * graph: "attn_norm-3", "Qcur-0.rope", "result_output", ...), data as [n_tokens][ne0] f32. */
typedef void (*qr_debug_fn)(const char *name, const float *data, int64_t ne0, int64_t n_tokens,
                            void *user);

/* Weight observer: called on the evaluating thread before each matrix product by a weight of
 * the model (the attention and FFN matrices of every layer, the output head), with the
 * weight's GGUF tensor name ("blk.3.attn_q.weight"; a fused tensor such as phi3's attn_qkv
 * once, under its own name) and the product's f32 input, n_rows rows of n_cols values, as they
 * are before any conversion for the kernels. The rows are the tokens of one forward step (at
 * most n_batch). A mixture's expert matrices (3-D tensors such as "blk.3.ffn_up_exps.weight")
 * come one row at a time with the expert's index (0 .. n_expert - 1): for each slot of the
 * tokens' chosen experts (best first), the tokens in order, as llama-imatrix sees a
 * MUL_MAT_ID's rows; every other product has expert -1 and n_expert 0. What
 * qr_imatrix_compute collects its statistics with; NULL: not called. */
typedef void (*qr_matmul_fn)(const char *weight, int32_t expert, int32_t n_expert, const float *x,
                             int64_t n_cols, int32_t n_rows, void *user);

typedef struct qr_context_params {
    int32_t n_ctx;     /* total KV cells (0: the model's training context, capped at 4096) */
    int32_t n_batch;   /* most tokens evaluated at once (0: 512) */
    int32_t n_threads; /* 0: number of online CPUs */
    int32_t n_seq_max; /* independent sequences (server slots) sharing the cache (0: 1) */
    qr_kv_type type_k, type_v; /* KV cache types (default f16, f16) */
    qr_flash_attn flash_attn;  /* default AUTO */
    /* RoPE overrides with llama.cpp's meaning (llama_context_params); qr_context_default_params
     * leaves each at "the model's": */
    qr_rope_scaling rope_scaling; /* DEFAULT: the model's; NONE also forces freq_scale 1 */
    float rope_freq_base;         /* 0: the model's */
    float rope_freq_scale;        /* 0: the model's (1 / scaling factor) */
    float yarn_ext_factor;        /* < 0: 1 with YaRN scaling, else 0 */
    float yarn_attn_factor;       /* < 0: the model's (1) */
    float yarn_beta_fast;         /* < 0: the model's (32) */
    float yarn_beta_slow;         /* < 0: the model's (1) */
    int32_t yarn_orig_ctx;        /* 0: the model's original context (else its training one) */
    qr_debug_fn debug_fn;
    void *debug_user;
    qr_matmul_fn matmul_observer;
    void *matmul_user;
    /* Use this context's thread pool (and its thread count) instead of starting one: a
     * speculative draft beside its target, evaluated in turn from one thread, so two pools'
     * idle workers do not compete for the cores. It must outlive this context. NULL: own. */
    qr_context *share_pool;
} qr_context_params;

qr_context_params qr_context_default_params(void);
qr_status qr_context_create(qr_model *model, const qr_context_params *params, qr_context **out);
void qr_context_free(qr_context *ctx);
int32_t qr_context_n_ctx(const qr_context *ctx);
const qr_model *qr_context_model(const qr_context *ctx);

/* LoRA adapters, as llama.cpp writes them (GGUF: general.type "adapter", adapter.type "lora",
 * adapter.lora.alpha, general.architecture the base's; tensor pairs <weight>.lora_a [n_in, r]
 * and <weight>.lora_b [r, n_out], F32 or F16). An adapter is loaded once for a model and
 * attached to contexts with a scale; a product W x of an adapted weight then becomes
 * W x + sum_i s_i B_i (A_i x), s_i = scale_i * alpha / r (scale_i when alpha is 0 or absent),
 * the base weights untouched (llama.cpp's build_lora_mm). Pairs on the attention and FFN
 * matrices, the router and an untied output head are applied; an adapter for another base
 * (architecture, a missing tensor, shapes), a missing half of a pair, a rank mismatch, NaN or
 * infinite values, pairs on token_embd or on expert tensors: an error naming the tensor. */
typedef struct qr_lora qr_lora;
/* Load the adapter at path for model (which must outlive it); free with qr_lora_free. */
qr_status qr_lora_load(const qr_model *model, const char *path, qr_lora **out);
void qr_lora_free(qr_lora *lora);
float qr_lora_alpha(const qr_lora *lora);   /* adapter.lora.alpha (0 when absent) */
int32_t qr_lora_n_pairs(const qr_lora *lora); /* adapted weights */
const char *qr_lora_path(const qr_lora *lora);
/* Merge adapters into the base model's weights and write a plain model (llama-export-lora):
 * every adapted tensor becomes W + sum_i s_i B_i A_i (F32 where the base tensor is F32, F16
 * otherwise: a quantized base tensor is dequantized first), the others and all metadata are
 * copied (general.file_type 1, as llama-export-lora writes). The adapters are checked as
 * qr_lora_load checks them. */
qr_status qr_lora_export(const char *base_path, const char *const *lora_paths,
                         const float *scales, int32_t n, const char *out_path);
/* the most adapters attached to one context */
#define QR_MAX_LORAS 16
/* Attach n adapters (loaded for ctx's model) with their scales to every sequence of ctx,
 * replacing those attached before (n = 0 detaches all), as llama_set_adapters_lora does.
 * The adapters must stay loaded while attached. The cache is not cleared: positions already
 * evaluated keep what they were computed with. */
qr_status qr_set_loras(qr_context *ctx, qr_lora *const *adapters, const float *scales, int32_t n);
/* The scale of attached adapter i (0 .. n - 1 of qr_set_loras) for one sequence only (0:
 * off for it): sequences of one batch may use different scales (the server's per-request
 * "lora"). */
qr_status qr_set_lora_scale_seq(qr_context *ctx, int32_t seq_id, int32_t i, float scale);

/* A batch of tokens to evaluate, each with its position, sequence and whether its logits are
 * wanted. */
typedef struct qr_batch {
    int32_t n_tokens;
    qr_token *token;
    int32_t *pos;
    int32_t *seq_id;
    int8_t *logits;
} qr_batch;

qr_status qr_batch_init(qr_batch *batch, int32_t n_max);
void qr_batch_free(qr_batch *batch);
/* Append one token. */
void qr_batch_add(qr_batch *batch, qr_token token, int32_t pos, int32_t seq_id, bool logits);

/* Evaluate a batch (split into n_batch pieces internally). Positions of a sequence must
 * continue its cache. */
qr_status qr_decode(qr_context *ctx, const qr_batch *batch);
/* Logits of the i-th token of the last batch that asked for them (i = -1: the last one). */
const float *qr_get_logits(qr_context *ctx, int32_t i);

/* KV cache: forget positions [p0, p1) of a sequence (p1 = -1: to the end), all sequences when
 * seq_id = -1. */
qr_status qr_kv_remove(qr_context *ctx, int32_t seq_id, int32_t p0, int32_t p1);
/* KV cache: move positions [p0, p1) of a sequence (p1 = -1: to the end) by delta, the cached
 * keys turned by delta positions with each layer's RoPE, as llama_memory_seq_add does (its
 * k-shift arithmetic: the rotated key roped again by delta, rounded to the cache type).
 * Quarrel's cells are a sequence's positions 0 .. n-1 without holes, so the one move it takes
 * is the one a context shift makes: delta < 0 with p1 the end of the sequence, which drops the
 * positions [p0 + delta, p0) it lands on (llama.cpp's llama_memory_seq_rm(p0 + delta, p0)
 * then llama_memory_seq_add(p0, p1, delta)); the sequence then ends delta earlier. Any other
 * move, or p0 + delta < 0: QR_ERR_UNSUPPORTED / QR_ERR_INVALID_ARG, the cache untouched.
 * delta = 0 or an empty range: nothing to do. */
qr_status qr_kv_shift(qr_context *ctx, int32_t seq_id, int32_t p0, int32_t p1, int32_t delta);
void qr_kv_clear(qr_context *ctx);
int32_t qr_kv_seq_pos_max(const qr_context *ctx, int32_t seq_id); /* -1 if empty */
int32_t qr_kv_used_cells(const qr_context *ctx);

/* Sequence state (src/runtime/state.c): a sequence's tokens and KV rows saved to a file and
 * restored into a sequence of another context of the same model later, so a prompt that starts
 * with the saved tokens skips evaluating them (`quarrel run --prompt-cache`, the server's slot
 * save/restore). The file (all little-endian):
 *   char magic[8] = "QRSTATE1"; uint32 version = 1; uint32 header_bytes = 128;
 *   char arch[32] (NUL-padded); uint64 model_hash (tensor names, types and shapes, every
 *   token's text, hyperparameters); uint64 rope_hash (the context's RoPE settings, which the
 *   cached keys were turned with); uint32 n_tensors, n_vocab, n_layer, n_head_kv, head_dim,
 *   n_embd; uint32 k_type, v_type (qr_type ids of the cache rows); uint32 n_tokens; uint32 0;
 *   uint64 k_row_bytes, v_row_bytes (one KV head's row of one position); uint64 0;
 *   then int32 tokens[n_tokens]; then per layer, K then V, per KV head, the n_tokens rows of
 *   positions 0 .. n_tokens - 1 as the cache stores them; then uint64 checksum of every byte
 *   before it.
 * The rows are the cache's own bytes, so restoring gives bit for bit the cells that evaluating
 * the tokens would. A file is checked whole before any cell changes: magic, version, the
 * model (architecture, shape, hash), the cache types and row sizes, the RoPE settings, the
 * size (truncated or too long), the checksum, the token ids. */
#define QR_STATE_MAGIC "QRSTATE1"
#define QR_STATE_VERSION 1
/* Save positions 0 .. n_tokens - 1 of sequence seq_id, which hold tokens[0 .. n_tokens) (the
 * caller's record of them; n_tokens at most what the sequence holds), to path (written beside
 * it and renamed: whole or not at all). *n_written (may be NULL): the file's bytes. */
qr_status qr_state_save_seq(qr_context *ctx, int32_t seq_id, const qr_token *tokens,
                            int32_t n_tokens, const char *path, size_t *n_written);
/* Replace sequence seq_id's cells with a saved state: tokens[0 .. *n_tokens) get its tokens, the
 * sequence then holds positions 0 .. *n_tokens - 1. A file of another model, cache type or RoPE
 * (QR_ERR_INVALID_ARG), malformed, truncated or corrupt (QR_ERR_FORMAT), longer than a sequence
 * of ctx (QR_ERR_CONTEXT_FULL) or than n_max (QR_ERR_BUFFER_SMALL, *n_tokens the count) leaves
 * the sequence untouched. *n_read (may be NULL): the file's bytes. */
qr_status qr_state_load_seq(qr_context *ctx, int32_t seq_id, const char *path, qr_token *tokens,
                            int32_t n_max, int32_t *n_tokens, size_t *n_read);
/* The same from a file's bytes in memory (untrusted: checked as above). */
qr_status qr_state_load_seq_memory(qr_context *ctx, int32_t seq_id, const void *data, size_t size,
                                   qr_token *tokens, int32_t n_max, int32_t *n_tokens);

/* Embeddings: a sequence's final hidden state (after the output norm, before the output head),
 * as llama.cpp computes with embeddings on. Pooling has llama.cpp's enum values. */
typedef enum qr_pooling {
    QR_POOLING_MODEL = -1, /* the GGUF's pooling_type, else mean */
    QR_POOLING_NONE = 0,   /* every token's row */
    QR_POOLING_MEAN = 1,   /* the mean over all tokens, BOS included */
    QR_POOLING_CLS = 2,    /* the first token's row */
    QR_POOLING_LAST = 3,   /* the last token's row */
} qr_pooling;
/* QR_POOLING_MODEL resolved for this model. */
qr_pooling qr_model_pooling(const qr_model *model);
/* Evaluate tokens[0..n_tokens) as sequence seq_id of ctx (whose cache is cleared before and
 * after) and write its embedding to out: n_embd floats pooled, or n_tokens rows of n_embd with
 * QR_POOLING_NONE. Not normalised (qr_embd_normalize). */
qr_status qr_embed(qr_context *ctx, int32_t seq_id, const qr_token *tokens, int32_t n_tokens,
                   qr_pooling pooling, float *out);
/* llama.cpp's common_embd_normalize: norm -1 none, 0 max-abs scaled to int16 range, 1 taxicab,
 * 2 Euclidean (L2), p > 2 the p-norm. */
void qr_embd_normalize(const float *in, float *out, int64_t n, int norm);

/* Timings accumulated since creation or the last reset. */
typedef struct qr_timings {
    int64_t n_prompt_tokens, n_gen_tokens;
    double prompt_seconds, gen_seconds;
    /* speculative decoding (qr_generate with a spec_type): tokens drafted, drafted tokens the
     * target accepted, and the target's verifying passes (each gives accepted + 1 tokens) */
    int64_t n_draft_tokens, n_draft_accepted, n_spec_passes;
    /* context shifts qr_generate made (qr_generate_params.context_shift) */
    int64_t n_ctx_shifts;
} qr_timings;
qr_timings qr_context_timings(const qr_context *ctx);
void qr_context_reset_timings(qr_context *ctx);

/* ------------------------------------------------------------------------------------------ */
/* Sampling                                                                                   */

typedef struct qr_logit_bias {
    qr_token token;
    float bias; /* -INFINITY bans the token */
} qr_logit_bias;

typedef struct qr_sampler_params {
    uint64_t seed;          /* QR_SEED_RANDOM: pick one (read it back with qr_sampler_seed) */
    float temp;             /* <= 0: greedy */
    int32_t top_k;          /* <= 0: off */
    float top_p;            /* 1: off */
    float min_p;            /* 0: off */
    float typical_p;        /* 1: off */
    float repeat_penalty;   /* 1: off */
    int32_t repeat_last_n;  /* tokens of history the penalties look at (-1: all) */
    float presence_penalty; /* 0: off */
    float frequency_penalty;
    float dynatemp_range; /* 0: off; temperature ranges over temp +- range */
    float dynatemp_exp;
    int32_t mirostat; /* 0 off, 1 = mirostat, 2 = mirostat v2 */
    float mirostat_tau;
    float mirostat_eta;
    /* XTC, "exclude top choices" (llama.cpp's): with chance xtc_probability per token, the
     * tokens with p >= xtc_threshold are dropped except the least likely of them */
    float xtc_probability; /* 0: off */
    float xtc_threshold;   /* > 0.5: off */
    /* DRY, "don't repeat yourself" (llama.cpp's): a token that would extend a repetition of the
     * recent text of length L >= dry_allowed_length loses
     * dry_multiplier * dry_base^(L - dry_allowed_length) from its logit. Repetitions do not
     * reach back across a sequence breaker; breakers are strings matched against the token
     * texts, so DRY with breakers needs the vocabulary: qr_sampler_create_for_model. */
    float dry_multiplier;                     /* 0: off */
    float dry_base;                           /* < 1: off (default 1.75) */
    int32_t dry_allowed_length;               /* default 2 */
    int32_t dry_penalty_last_n;               /* history scanned (default 64; -1: all, 0: off) */
    const char *const *dry_sequence_breakers; /* not owned; default "\n" ":" "\"" "*" */
    int32_t n_dry_sequence_breakers;          /* 0: none */
    bool quality;                             /* the --quality preset */
    int32_t n_logit_bias;
    const qr_logit_bias *logit_bias;
    int32_t n_probs; /* top alternatives reported with each token (0: none) */
    /* Grammar-constrained sampling (src/grammar/): a GBNF grammar in llama.cpp's syntax. Only
     * tokens whose bytes the grammar can accept from its current state are drawn (as
     * llama.cpp's grammar sampler, applied before every other stage); an end-of-generation
     * token only where the grammar may end, and nothing else once it is complete. Token texts
     * are needed: create with qr_sampler_create_for_model. The grammar advances with the
     * tokens qr_sampler_sample picks, never with qr_sampler_accept's (prompt) tokens. */
    const char *grammar;      /* NULL or "": off; not owned (parsed at create) */
    const char *grammar_root; /* NULL: "root" */
    /* Lazy grammar (tool calls): off until the generated text contains one of the trigger
     * words, or matches one of the trigger patterns (PCRE2, the whole generated text so far,
     * as llama.cpp's lazy grammar: the grammar is then fed from the first capture group, or
     * from the match's start); from there it constrains the rest. */
    bool grammar_lazy;
    const char *const *grammar_trigger_words; /* not owned */
    int32_t n_grammar_trigger_words;
    const char *const *grammar_trigger_patterns; /* not owned */
    int32_t n_grammar_trigger_patterns;
} qr_sampler_params;

/* Parse a GBNF grammar only to check it: QR_OK, or QR_ERR_INVALID_ARG with a message naming
 * the line and column of the problem ("grammar: line 3, column 7: ..."). root NULL: "root". */
qr_status qr_grammar_check(const char *gbnf, const char *root);
/* Convert a JSON schema (JSON text, n bytes) into a GBNF grammar accepting the strings that
 * llama.cpp's converter's grammar accepts (common/json-schema-to-grammar.cpp). *out is
 * malloc'd (caller frees). A schema that is not JSON, or uses a keyword the converter does not
 * support, fails with QR_ERR_INVALID_ARG and a message naming it. */
qr_status qr_json_schema_to_grammar(const char *schema, size_t n, char **out);

#define QR_SEED_RANDOM UINT64_MAX
#define QR_MAX_TOP_LOGPROBS 20

typedef struct qr_token_logprobs {
    float logprob; /* of the chosen token, under the distribution before sampling filters */
    int32_t n_top;
    qr_token top_ids[QR_MAX_TOP_LOGPROBS];
    float top_logprobs[QR_MAX_TOP_LOGPROBS];
} qr_token_logprobs;

typedef struct qr_sampler qr_sampler;

qr_sampler_params qr_sampler_default_params(void);
qr_status qr_sampler_create(const qr_sampler_params *params, int32_t n_vocab, qr_sampler **out);
/* The same for the model's vocabulary size, with its token texts for DRY's sequence breakers
 * (which qr_sampler_create refuses). With DRY on this reads the whole vocabulary once. */
qr_status qr_sampler_create_for_model(const qr_sampler_params *params, const qr_model *model,
                                      qr_sampler **out);
void qr_sampler_free(qr_sampler *s);
uint64_t qr_sampler_seed(const qr_sampler *s);
/* Pick the next token from n_vocab logits; logprobs may be NULL. */
qr_status qr_sampler_sample(qr_sampler *s, const float *logits, qr_token *out,
                            qr_token_logprobs *logprobs);
/* Speculative decoding's acceptance step (Leviathan et al. 2023, Chen et al. 2023): at a
 * position where a draft proposed `draft`, with q its distribution over the vocabulary
 * (n_vocab floats indexed by token; NULL: a greedy draft, a point mass on draft), keep the
 * draft with probability min(1, p(draft) / q(draft)) under the sampler's final distribution p
 * (after the whole chain), else draw from norm(max(0, p - q)). *out (== draft when kept) is
 * distributed exactly as qr_sampler_sample's pick, and recorded in the history and the grammar
 * the same way; with a greedy chain it is the greedy pick. Under mirostat (whose state follows
 * each draw) this is qr_sampler_sample. */
qr_status qr_sampler_sample_draft(qr_sampler *s, const float *logits, qr_token draft,
                                  const float *q, qr_token *out, qr_token_logprobs *logprobs);
/* Record a token in the history (penalties); sample() does this for its own picks, call it
 * for prompt tokens. */
void qr_sampler_accept(qr_sampler *s, qr_token token);
void qr_sampler_reset(qr_sampler *s);
/* Start the grammar over (a new reply of a chat), keeping the penalties' history and the
 * random state; nothing without a grammar. A lazy grammar waits for its trigger again. */
void qr_sampler_restart_grammar(qr_sampler *s);

/* Stop strings matched across token boundaries: feed generated text; text that might be the
 * start of a stop string is held back. */
typedef struct qr_stop_matcher qr_stop_matcher;
qr_status qr_stop_matcher_create(const char *const *stops, int n_stops, qr_stop_matcher **out);
void qr_stop_matcher_free(qr_stop_matcher *m);
/* Feed text; *emit and *n_emit give what may be printed now (valid until the next call). Returns
 * true once a stop string has been matched (the stop string itself is never emitted). */
bool qr_stop_matcher_push(qr_stop_matcher *m, const char *text, size_t n, const char **emit,
                          size_t *n_emit);
/* At the end of generation: the held-back text. */
void qr_stop_matcher_flush(qr_stop_matcher *m, const char **emit, size_t *n_emit);

/* ------------------------------------------------------------------------------------------ */
/* Generation: evaluate a prompt, then sample, stream and stop                                */

/* Called for each generated token: its id, the text that may be shown now (complete UTF-8,
 * stop strings held back and never shown; may be empty), the logits it was sampled from and
 * its log-probabilities. Return false to stop. When generation ends by length or a full
 * context, a last call with token -1 (logits NULL) carries the text that was held back. */
typedef bool (*qr_token_fn)(qr_token token, const char *text, size_t n_text, const float *logits,
                            const qr_token_logprobs *logprobs, void *user);

typedef enum qr_stop_reason {
    QR_STOP_EOG,      /* an end-of-generation token */
    QR_STOP_STRING,   /* a stop string */
    QR_STOP_LENGTH,   /* n_predict tokens */
    QR_STOP_CONTEXT,  /* the context is full */
    QR_STOP_CALLBACK, /* the callback returned false */
} qr_stop_reason;

/* Speculative decoding: a cheap guess of the next tokens that the target checks in one batched
 * pass (src/runtime/speculative.c). */
typedef enum qr_spec_type {
    QR_SPEC_NONE = 0,
    QR_SPEC_DRAFT_SIMPLE, /* a draft model proposes greedily (spec_draft) */
    QR_SPEC_NGRAM_SIMPLE, /* prompt lookup: what followed the latest earlier occurrence of the
                             last n-gram of the context (prompt + generated) */
} qr_spec_type;
#define QR_SPEC_N_MAX_DEFAULT 2 /* measured best: "Speculative decoding" in bench/README.md */

/* QR_OK when a draft model can speculate for a target: the same vocabulary (its size and every
 * token's text); else QR_ERR_INVALID_ARG with a message naming the difference. qr_generate
 * checks this itself; a caller may check before it loads more. */
qr_status qr_spec_check_vocab(const qr_model *target, const qr_model *draft);

typedef struct qr_generate_params {
    int32_t n_predict;        /* most tokens to generate (-1: until the context is full) */
    int32_t seq_id;           /* the sequence to extend (0 unless the context has several) */
    const char *const *stops; /* stop strings (may be NULL) */
    int n_stops;
    bool ignore_eos;    /* keep going after an end-of-generation token */
    bool special;       /* render control tokens in the text */
    bool want_logprobs; /* pass log-probabilities (the sampler's n_probs alternatives) */
    /* Speculative decoding (all zero: off). Greedy output is the same as without (given
     * batch-invariant logits); sampled output follows the same distribution (the sampler's
     * qr_sampler_sample_draft). Everything else (stops, callbacks, logprobs, the grammar)
     * behaves as without. The counts go to the target context's qr_timings. */
    qr_spec_type spec_type;
    /* DRAFT_SIMPLE: a context on a draft model with the target's vocabulary (checked: its size
     * and every token's text). Its sequence seq_id follows the target's: qr_generate keeps it
     * in step; where a caller removes from the target's cache, a draft cache found longer is
     * cut to the target's length and one found shorter is cleared (drafting from the prompt
     * alone is slower, never wrong). Not owned. */
    qr_context *spec_draft;
    int32_t spec_n_max; /* most tokens drafted per step (>= 1, QR_SPEC_N_MAX_DEFAULT) */
    int32_t spec_n_min; /* a draft shorter than this is not checked (0) */
    float spec_p_min;   /* DRAFT_SIMPLE: stop drafting where the draft's top probability is
                           below this (0) */
    /* Context shift, llama.cpp's --context-shift (tools/completion): before a token is
     * evaluated, when the sequence holds n_past positions with n_past + 1 >= the context's
     * size, the first n_keep positions stay, the next n_discard = (n_past - n_keep) / 2 are
     * dropped and the rest move back over them (qr_kv_shift), so generation goes on past the
     * context's size. n_keep counts positions from the start of the sequence, as given (the
     * caller adds the BOS, as llama.cpp's --keep does); negative: everything up to the end of
     * this prompt; at most what the sequence holds. A shift with nothing to drop stops with
     * QR_STOP_CONTEXT. false: a full context stops generation (QR_STOP_CONTEXT), as before.
     * With speculative decoding, speculation ends at the first shift (the rest of the call
     * goes token by token: the same tokens, greedy) and the draft context's sequence is
     * cleared (the next call drafts from its prompt). After a shift only the first n_keep
     * cells hold what evaluating the sequence's tokens afresh would give (the moved ones saw
     * the dropped tokens): a caller reusing the cache for a new prompt keeps no more. */
    bool context_shift;
    int32_t n_keep;
} qr_generate_params;

/* Append prompt[0..n_prompt) to sequence seq_id of ctx (after what its cache holds), then
 * generate with the sampler, calling on_token for each token. The prompt tokens are given to
 * the sampler's history. *reason (may be NULL) says why it stopped. */
qr_status qr_generate(qr_context *ctx, qr_sampler *sampler, const qr_token *prompt,
                      int32_t n_prompt, const qr_generate_params *params, qr_token_fn on_token,
                      void *user, qr_stop_reason *reason);

/* ------------------------------------------------------------------------------------------ */
/* Chat templates                                                                             */

typedef struct qr_chat_message {
    const char *role; /* "system", "user", "assistant" */
    const char *content;
} qr_chat_message;

/* Render a conversation. tmpl is a Jinja template source or a built-in family name
 * ("chatml", "llama2", "llama3", "zephyr", "phi3", "gemma", ...); NULL = chatml.
 * *out is malloc'd (caller frees). */
qr_status qr_chat_apply_template(const char *tmpl, const qr_chat_message *messages,
                                 size_t n_messages, bool add_generation_prompt,
                                 const char *bos_token, const char *eos_token, char **out);
/* The built-in family a template source is recognised as (NULL if none). */
const char *qr_chat_detect_family(const char *tmpl);

/* Render a conversation given as OpenAI chat messages: messages_json is a JSON array of
 * {role, content (string, array of parts, or null), name, tool_call_id, tool_calls: [{id, type,
 * function: {name, arguments}}]}; tools_json is NULL (the template sees tools = None) or a JSON
 * array of {type: "function", function: {name, description, parameters}}. Jinja templates see
 * every field as transformers' apply_chat_template passes its dicts, with two adjustments that
 * llama.cpp's common/chat.cpp also makes: a tool call's arguments given as a JSON string are
 * parsed into the object (templates render `arguments | tojson`), and a message with tool_calls
 * and no content gets content "". Built-in families see role and content only (content parts
 * joined, null as ""). *out is malloc'd (caller frees). */
qr_status qr_chat_apply_template_json(const char *tmpl, const char *messages_json,
                                      const char *tools_json, bool add_generation_prompt,
                                      const char *bos_token, const char *eos_token, char **out);

/* ------------------------------------------------------------------------------------------ */
/* Server                                                                                     */

/* An OpenAI-compatible HTTP server: /v1/chat/completions, /v1/completions, /v1/embeddings,
 * /v1/models, /health, /metrics, /tokenize, /detokenize, /lora-adapters; and ollama's REST API: /api/generate,
 * /api/chat, /api/embed, /api/embeddings, /api/tags, /api/show, /api/ps, /api/version,
 * /api/pull, /api/delete. */
typedef struct qr_server_params {
    const char *model_path;  /* a GGUF file (resolve names with qr_model_resolve first) */
    const char *model_alias; /* the id /v1/models reports (NULL: the file name without .gguf) */
    const char *host;        /* numeric IPv4/IPv6 address or "localhost" (NULL: 127.0.0.1) */
    int port;                /* 0: any free port (reported through on_listening) */
    int32_t n_parallel;      /* slots decoded together (0: 1) */
    int32_t n_ctx;           /* KV cells shared by all slots (0: the model's, at most 4096) */
    int32_t n_threads;       /* 0: all CPUs */
    int32_t max_queue;       /* requests waiting for a slot before 429 (0: 64) */
    size_t max_body_bytes;   /* larger request bodies get 413 (0: 1 MiB) */
    const char *api_key;     /* non-NULL: every /v1/ and /api/ route, /tokenize, /detokenize,
                                /metrics need "Authorization: Bearer <api_key>" */
    /* Called once the socket listens (before the model is loaded; /health says 503 until it
     * is), with the port bound. */
    void (*on_listening)(const char *host, int port, void *user);
    void *user;
    /* The server returns QR_OK once *stop becomes non-zero (set it from a signal handler). */
    const volatile int *stop;
    /* The slots' context starts from these (NULL: qr_context_default_params()), e.g. for RoPE
     * overrides; n_ctx, n_seq_max and n_threads come from the fields above. */
    const qr_context_params *context;
    /* The chat template: Jinja source or a built-in family name ("chatml", "llama3", ...);
     * NULL: the model's tokenizer.chat_template, else chatml. It also decides the tool-call
     * syntax the server asks for and parses (Hermes, Llama 3.x, Mistral, else a generic JSON
     * form). */
    const char *chat_template;
    /* The embedding routes' pooling (QR_POOLING_MODEL: the GGUF's pooling_type, else mean);
     * QR_POOLING_NONE makes them answer 400, as one vector per input is needed. */
    qr_pooling pooling;
    /* /api/pull: the registry (NULL: registry.ollama.ai, as qr_pull_params.registry) and
     * whether plain http is allowed; models go to the ollama store (qr_registry_store_dir). */
    const char *registry;
    bool insecure;
    /* Speculative decoding in every slot (QR_SPEC_NONE: off; requests turn it off with
     * "speculative": false): DRAFT_SIMPLE with the GGUF draft_model_path (the target's
     * vocabulary, checked at load; its context shares the target's threads), or NGRAM_SIMPLE;
     * spec_n_max 0: QR_SPEC_N_MAX_DEFAULT. Greedy requests' text is the same as without. */
    qr_spec_type spec_type;
    const char *draft_model_path;
    int32_t spec_n_max, spec_n_min;
    float spec_p_min;
    /* Context shift per slot (llama.cpp's server --context-shift): a generating slot whose
     * cache is full (n_cache + 1 >= its context) keeps n_keep tokens (a request's "n_keep",
     * else this; negative: the whole prompt; plus the BOS when the vocabulary adds one; at most
     * the context - 4), drops n_discard (a request's "n_discard", else half of the rest) and
     * goes on. false: a full slot stops with finish_reason "length". */
    bool context_shift;
    int32_t n_keep;
    /* llama.cpp's --slot-save-path: the folder of POST /slots/{id}?action=save|restore's
     * files ({"filename": NAME}, a plain file name: no '/', '\\', leading or trailing '.' or
     * space, control characters, at most 255 bytes), in qr_state_save_seq's format;
     * action=erase forgets a slot's cache. NULL: the slot actions answer 501. */
    const char *slot_save_path;
    /* LoRA adapters (llama.cpp's server --lora / --lora-scaled): n_loras files with their
     * global scales, listed and rescaled through GET / POST /lora-adapters; a request's "lora"
     * ([{"id", "scale"}], the others at 0) overrides them for that request, batched with
     * requests at other scales. */
    const char *const *lora_paths;
    const float *lora_scales;
    int32_t n_loras;
} qr_server_params;

qr_server_params qr_server_default_params(void);
/* Listen, load the model, serve until *stop; QR_ERR_IO if the address cannot be bound. */
qr_status qr_server_run(const qr_server_params *params);

/* ------------------------------------------------------------------------------------------ */
/* Evaluation: perplexity, KL divergence, multiple choice                                     */

/* Tokenize a perplexity text as llama-perplexity reads it: one trailing '\n' dropped, BOS if
 * the vocabulary adds it, special tokens not parsed. *tokens is malloc'd (caller frees). */
qr_status qr_eval_tokenize(const qr_model *model, const char *text, size_t len, qr_token **tokens,
                           int32_t *n_tokens);

/* One finished chunk, for progress reports. */
typedef struct qr_ppl_chunk {
    int32_t chunk;      /* from 0 */
    int32_t n_chunk;    /* chunks in the whole run */
    int32_t n_scored;   /* positions scored in this chunk (n_ctx - 1 - n_ctx/2) */
    double nll_sum;     /* sum of -ln p(next token) over them */
    double ppl_running; /* exp(mean NLL) over chunks 0..chunk */
    double kld_sum;     /* with kl_base: sum of the KL divergences over them */
} qr_ppl_chunk;

typedef void (*qr_ppl_progress_fn)(const qr_ppl_chunk *chunk, void *user);

typedef struct qr_ppl_params {
    int32_t n_ctx;     /* tokens per chunk (0: 512; with kl_base, 0 or the file's) */
    int32_t n_batch;   /* tokens per decode (0: 512); n_batch / n_ctx chunks go together */
    int32_t n_threads; /* 0: all CPUs */
    int32_t n_chunks;  /* evaluate at most this many chunks (0: all) */
    /* Write the log-probabilities of every scored position to this file (format below). */
    const char *save_logits;
    /* Compare with a file written by save_logits: its tokens are evaluated (the tokens argument
     * is ignored) and the KL divergence from its distributions is reported. */
    const char *kl_base;
    qr_ppl_progress_fn progress; /* called after each chunk (may be NULL) */
    void *progress_user;
    /* The context starts from these (NULL: qr_context_default_params()), e.g. for RoPE
     * overrides; n_ctx, n_seq_max, n_batch and n_threads follow from the fields above. */
    const qr_context_params *context;
    /* LoRA adapters attached to the context with these scales (qr_set_loras); n_loras 0: none */
    qr_lora *const *loras;
    const float *lora_scales;
    int32_t n_loras;
} qr_ppl_params;

/* The log-probabilities file (all little-endian):
 *   char magic[8] = "QRLOGPRB"; uint32 version = 1; uint32 n_vocab; uint32 n_ctx;
 *   uint32 n_chunk; int32 tokens[n_chunk * n_ctx] (the text's tokens, before BOS substitution);
 *   then for each chunk, for each scored position p = n_ctx/2 .. n_ctx-2:
 *   float32 log_softmax[n_vocab] of the logits at p (they predict token p+1).
 * Uncompressed: n_chunk * (n_ctx - 1 - n_ctx/2) * n_vocab * 4 bytes of log-probabilities. */
#define QR_LOGPROB_MAGIC "QRLOGPRB"
#define QR_LOGPROB_VERSION 1

typedef struct qr_ppl_result {
    int32_t n_ctx, n_chunk;
    int64_t n_tokens; /* tokens of the text (or of the kl_base file) */
    int64_t n_scored; /* positions scored */
    double mean_nll, ppl;
    double ppl_uncertainty; /* PPL * sqrt(var(NLL) / (N - 1)), llama-perplexity's estimate */
    double seconds;         /* wall time of decoding and scoring */
    /* With kl_base (llama-perplexity --kl-divergence's statistics): */
    bool has_kld;
    double base_ppl, ln_ppl_ratio, ppl_ratio; /* ratio: PPL(this model) / PPL(base) */
    double kld_mean, kld_uncertainty, kld_median, kld_p90, kld_p95, kld_p99, kld_max;
    double same_top; /* fraction of positions whose most likely token is the base's */
} qr_ppl_result;

/* llama-perplexity's method: chunks of n_ctx tokens, each from an empty cache, the first token
 * replaced by BOS when the vocabulary adds one; the logits at positions n_ctx/2 .. n_ctx-2 are
 * scored against the next token. Needs at least 2 * n_ctx tokens. */
qr_status qr_perplexity(qr_model *model, const qr_token *tokens, int32_t n_tokens,
                        const qr_ppl_params *params, qr_ppl_result *out);

/* Importance matrices as llama-imatrix computes them (tools/imatrix/imatrix.cpp), the file
 * `quarrel quantize --imatrix` (and llama-quantize) reads: the tokens are cut into chunks of
 * n_ctx, each evaluated from an empty cache with its first token replaced by BOS when the
 * vocabulary adds one; for every product by a blk.* weight whose input has at least 16 rows,
 * in_sum2[j] += x[j]^2 over the rows x and counts += rows (see qr_matmul_fn). Chunks are
 * grouped into batches and steps as llama-imatrix's defaults group them (batch 2048, steps
 * of 512), so the same products reach the 16-row threshold. */
typedef enum qr_imatrix_format {
    QR_IMATRIX_GGUF = 0, /* llama-imatrix's default: <name>.in_sum2 and <name>.counts */
    QR_IMATRIX_DAT = 1,  /* the legacy imatrix.dat (--output-format dat) */
} qr_imatrix_format;

/* One finished chunk, for progress reports. */
typedef struct qr_imatrix_chunk {
    int32_t chunk;      /* from 0 */
    int32_t n_chunk;    /* chunks in the whole run */
    double ppl_running; /* perplexity over chunks 0..chunk as llama-imatrix prints it (its
                           second halves scored as qr_perplexity does); 0 with no_ppl */
    double seconds;     /* since the first chunk started */
} qr_imatrix_chunk;

typedef void (*qr_imatrix_progress_fn)(const qr_imatrix_chunk *chunk, void *user);

typedef struct qr_imatrix_params {
    int32_t n_ctx;            /* tokens per chunk (0: 512), at most the model's training context */
    int32_t n_chunks;         /* evaluate at most this many chunks (0: all) */
    int32_t n_threads;        /* 0: all CPUs */
    qr_imatrix_format format; /* of the file written */
    bool no_ppl;              /* skip the perplexity (and the output head's products) */
    /* The text's name the file records (imatrix.datasets; llama-imatrix records its -f
     * argument as given); NULL or "": none. */
    const char *dataset;
    qr_imatrix_progress_fn progress; /* called after each chunk (may be NULL) */
    void *progress_user;
    /* The context starts from these (NULL: qr_context_default_params()); the sizes, threads
     * and the matmul observer are set here. */
    const qr_context_params *context;
} qr_imatrix_params;

typedef struct qr_imatrix_result {
    int32_t n_ctx, n_chunk;
    int64_t n_entries;      /* weight matrices in the file */
    double ppl;             /* with the perplexity: its final estimate, and */
    double ppl_uncertainty; /* PPL * sqrt(var(NLL) / (N - 1)) */
    double seconds;         /* wall time of the evaluation */
} qr_imatrix_result;

/* Compute the importance matrix of tokens (qr_eval_tokenize's) and write it to out_path.
 * Needs at least 2 * n_ctx tokens. The output path is checked before the evaluation starts;
 * the file appears whole or not at all. out may be NULL. */
qr_status qr_imatrix_compute(qr_model *model, const qr_token *tokens, int32_t n_tokens,
                             const qr_imatrix_params *params, const char *out_path,
                             qr_imatrix_result *out);

/* Multiple choice. A task file has one JSON object a line:
 *   {"context": "...", "choices": ["...", ...], "answer": INDEX}
 * (blank lines are skipped). A choice follows its context after one space, unless the context
 * is empty or ends in whitespace or the choice starts with whitespace. */
typedef struct qr_mc_task {
    char *context;
    char **choices;
    int32_t n_choices;
    int32_t answer;
    int32_t line; /* 1-based line in the file */
} qr_mc_task;

/* Parse a task file's text; errors name the line. Free with qr_mc_tasks_free. */
qr_status qr_mc_parse(const char *text, size_t len, qr_mc_task **tasks, int32_t *n_tasks);
void qr_mc_tasks_free(qr_mc_task *tasks, int32_t n_tasks);

/* Log-likelihood of a choice given its context: the sum of ln p over the tokens of
 * tokenize(BOS? + context + sep + choice) past its common prefix with tokenize(BOS? + context),
 * each predicted from the tokens before it (the first token of a text without BOS is not
 * scored); *n_tokens is how many. Clears sequence 0 of ctx and uses it. */
qr_status qr_mc_score_choice(qr_context *ctx, const char *context, const char *choice,
                             double *logprob, int32_t *n_tokens);

typedef struct qr_mc_result {
    int32_t n_tasks;
    int32_t n_correct_norm; /* best mean log-likelihood per token is the answer */
    int32_t n_correct;      /* best total log-likelihood is the answer */
    double acc_norm, acc_norm_lo, acc_norm_hi; /* accuracy and its Wilson 95% interval */
    double acc, acc_lo, acc_hi;
} qr_mc_result;

/* Called after each task with each choice's total log-likelihood and token count.
 * qr_mc_evaluate clears sequence 0 of ctx, uses it, and reuses the cached context of a task
 * across its choices. */
typedef void (*qr_mc_progress_fn)(int32_t index, const qr_mc_task *task, const double *logprob,
                                  const int32_t *n_tokens, void *user);

qr_status qr_mc_evaluate(qr_context *ctx, const qr_mc_task *tasks, int32_t n_tasks,
                         qr_mc_progress_fn progress, void *user, qr_mc_result *out);

/* Wilson score interval of k successes in n trials at normal quantile z (1.96: 95%). */
void qr_wilson_interval(int64_t k, int64_t n, double z, double *lo, double *hi);

/* ------------------------------------------------------------------------------------------ */
/* System information for benchmarks (src/runtime/sysinfo.c)                                  */

/* Peak resident set size of this process so far, in bytes (getrusage's ru_maxrss); 0 if the
 * system does not say. Mapped model pages count once touched. */
uint64_t qr_peak_rss_bytes(void);

/* Streaming read bandwidth: n_threads threads each read their share of a buffer of `bytes`
 * bytes (allocated and touched here, then freed), `passes` times; *gb_per_s is the best pass
 * in 1e9 bytes per second. The buffer counts toward this process's peak RSS: measure in a
 * child process if that matters. */
qr_status qr_measure_read_bandwidth(size_t bytes, int n_threads, int passes, double *gb_per_s);

/* ------------------------------------------------------------------------------------------ */
/* Model registry: pull, list and remove models in the ollama store (src/registry)           */
/*                                                                                            */
/* Names are ollama's: [HOST/][NAMESPACE/]MODEL[:TAG], HOST registry.ollama.ai, NAMESPACE      */
/* library and TAG latest by default. The store is ollama's layout under store_dir (NULL:      */
/* $OLLAMA_MODELS, else ~/.ollama/models): manifests/HOST/NAMESPACE/MODEL/TAG and              */
/* blobs/sha256-HEX, so ollama and `quarrel run -m NAME` find what is pulled.                  */

/* What a pull is doing, passed to the progress callback. */
typedef enum qr_pull_event {
    QR_PULL_MANIFEST,       /* the manifest was fetched and validated */
    QR_PULL_BLOB_START,     /* a blob's download starts (completed: bytes resumed from) */
    QR_PULL_BLOB_DATA,      /* bytes of the blob arrived */
    QR_PULL_BLOB_DONE,      /* the blob is downloaded and its sha256 checked */
    QR_PULL_BLOB_CACHED,    /* the blob was already in the store, sha256 checked */
    QR_PULL_WRITE_MANIFEST, /* every blob is in place; the manifest is written last */
} qr_pull_event;

typedef struct qr_pull_progress {
    qr_pull_event event;
    const char *digest;               /* "sha256:<64 hex>" of the blob; NULL for manifest events */
    int32_t index, count;             /* the blob's place among the manifest's unique blobs */
    int64_t completed, total;         /* this blob's bytes on disk so far, and its size */
    int64_t all_completed, all_total; /* the same over every blob of the model */
} qr_pull_progress;

/* Return false to stop the pull (QR_ERR_CANCELLED; a partial download is kept to resume). */
typedef bool (*qr_pull_progress_fn)(const qr_pull_progress *progress, void *user);

typedef struct qr_pull_params {
    const char *registry;         /* base URL of a mirror of registry.ollama.ai (its /v2/ API);
                                     NULL: https://registry.ollama.ai. A name with another host
                                     pulls from that host and ignores this. */
    bool insecure;                /* allow plain http (and use it for a name's own host) */
    const char *store_dir;        /* NULL: qr_registry_store_dir() */
    qr_pull_progress_fn progress; /* may be NULL */
    void *user;
} qr_pull_params;

qr_pull_params qr_pull_default_params(void);

/* Fetches NAME's manifest (GET /v2/NAMESPACE/MODEL/manifests/TAG), validates it, downloads
 * the config blob and every layer into the store (resuming a blob's sha256-HEX-partial file
 * with an HTTP Range request; a blob already stored with the right digest is not fetched),
 * checks each blob's sha256 and only then writes the manifest. A digest mismatch removes the
 * bad download and installs nothing. */
qr_status qr_registry_pull(const char *name, const qr_pull_params *params);

/* The store directory: $OLLAMA_MODELS, else $HOME/.ollama/models. */
qr_status qr_registry_store_dir(char *buf, size_t size);

typedef struct qr_registry_model {
    char name[640];   /* as ollama shows it: the default host and "library/" left out */
    char id[16];      /* the first 12 hex digits of the manifest file's sha256 */
    int64_t size;     /* bytes of the config blob and the layers */
    int64_t modified; /* the manifest's modification time, seconds since the epoch */
} qr_registry_model;

/* The models of the store, newest first (*models to free with free(); NULL when none).
 * Files under manifests/ that are not valid manifests are skipped. */
qr_status qr_registry_list(const char *store_dir, qr_registry_model **models, int32_t *n_models);

/* Removes NAME's manifest and the blobs that no other manifest of the store uses;
 * *n_blobs_removed (may be NULL) counts them. A model that is not in the store: QR_ERR_IO. */
qr_status qr_registry_remove(const char *store_dir, const char *name, int32_t *n_blobs_removed);

#ifdef __cplusplus
}
#endif
#endif /* QUARREL_H */
