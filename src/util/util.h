/* util.h - internal helpers shared by every module: error reporting, checked arithmetic,
 * little-endian reads, fp16/bf16 conversion, timing. */
#ifndef QR_UTIL_H
#define QR_UTIL_H

#include "quarrel.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Record a formatted message for qr_last_error() and return code (so `return qr_error(...)`). */
qr_status qr_error(qr_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefix the current error message with "prefix: ". */
void qr_error_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void qr_error_clear(void);

/* Overflow-checked size arithmetic: false on overflow. */
static inline bool qr_add_overflows(uint64_t a, uint64_t b, uint64_t *out) {
    return __builtin_add_overflow(a, b, out);
}
static inline bool qr_mul_overflows(uint64_t a, uint64_t b, uint64_t *out) {
    return __builtin_mul_overflow(a, b, out);
}

static inline uint16_t qr_rd_u16(const void *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}
static inline uint32_t qr_rd_u32(const void *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static inline uint64_t qr_rd_u64(const void *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* IEEE half <-> float, exact (round to nearest even), as ggml's GGML_FP32_TO_FP16. */
float qr_fp16_to_fp32(uint16_t h);
uint16_t qr_fp32_to_fp16(float f);
/* bfloat16 <-> float; to-bf16 rounds to nearest even and keeps NaNs quiet, like ggml. */
static inline float qr_bf16_to_fp32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
uint16_t qr_fp32_to_bf16(float f);

/* Monotonic seconds. */
/* sum over i < n of exp(x[i] - shift), in double; exp within 2 ulp of expf (SIMD where the
 * target has SSE2), 0 for x[i] - shift below -87.33 or -inf. The normaliser of a softmax with
 * shift = the row's maximum. */
double qr_sum_exp(const float *x, int64_t n, float shift);
/* the same, replacing x[i] by exp(x[i] - shift); returns the sum */
double qr_exp_shift(float *x, int64_t n, float shift);

double qr_time_now(void);
/* Number of online CPUs (at least 1). */
int qr_cpu_count(void);

/* A growable NUL-terminated byte string. A failed allocation sets oom and drops later
 * appends; the caller checks oom once at the end and frees p. */
typedef struct qr_strbuf {
    char *p;
    size_t n, cap;
    bool oom;
} qr_strbuf;
void qr_strbuf_append(qr_strbuf *b, const char *s, size_t n);

/* malloc that reports QR_ERR_NOMEM through qr_error on failure. */
void *qr_malloc(size_t n);
void *qr_calloc(size_t n, size_t size);
char *qr_strdup(const char *s);

#endif
