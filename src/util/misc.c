/* misc.c - half-precision conversion, clocks, CPU count and checked allocation. */
#include "util/util.h"

#include <stdlib.h>
#include <time.h>
#include <unistd.h>

float qr_fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t u;
    if (exp == 0x1f) { /* inf / nan; a signalling NaN comes out quiet, as from F16C and ggml */
        u = sign | 0x7f800000u | (mant << 13) | (mant ? 0x400000u : 0);
    } else if (exp != 0) {
        u = sign | ((exp + 112) << 23) | (mant << 13);
    } else if (mant == 0) {
        u = sign;
    } else { /* subnormal: value = mant * 2^-24 */
        float f = (float)mant * 0x1p-24f;
        memcpy(&u, &f, 4);
        u |= sign;
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t qr_fp32_to_fp16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t au = u & 0x7fffffffu;
    if (au >= 0x7f800000u) /* inf or nan */
        return sign | 0x7c00 | (au > 0x7f800000u ? 0x200 : 0);
    if (au >= 0x477ff000u) /* rounds to >= 65520: overflow to inf */
        return sign | 0x7c00;
    if (au < 0x38800000u) { /* below the smallest normal half: subnormal or zero */
        float a;
        memcpy(&a, &au, 4);
        /* adding 0.5 aligns the half-subnormal bits in the mantissa, rounding to nearest even */
        float t = a + 0.5f;
        uint32_t tu;
        memcpy(&tu, &t, 4);
        return sign | (uint16_t)(tu - 0x3f000000u);
    }
    uint32_t mant_odd = (au >> 13) & 1;
    au += 0xc8000fffu + mant_odd; /* rebias exponent (-112 << 23) and round to nearest even */
    return sign | (uint16_t)(au >> 13);
}

uint16_t qr_fp32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) /* nan: keep it quiet */
        return (uint16_t)((u >> 16) | 64);
    return (uint16_t)((u + (0x7fff + ((u >> 16) & 1))) >> 16);
}

double qr_time_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int qr_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}

void *qr_malloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) qr_error(QR_ERR_NOMEM, "out of memory allocating %zu bytes", n);
    return p;
}

void *qr_calloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) qr_error(QR_ERR_NOMEM, "out of memory allocating %zu x %zu bytes", n, size);
    return p;
}

char *qr_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = qr_malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

void qr_strbuf_append(qr_strbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}
