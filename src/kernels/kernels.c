/* kernels.c - picks the kernel set once, from the CPU's features (cpuid through
 * __builtin_cpu_supports, which also checks that the OS saves the wider registers). The
 * environment variable QR_KERNELS=scalar|avx2|avx512 caps the choice (for benchmarks and for
 * comparing sets); it can never select a set the CPU lacks. */
#include "kernels/kernels.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum { SET_SCALAR, SET_AVX2, SET_AVX512, SET_COUNT };

/* written once under pthread_once, read-only afterwards */
static qr_kernels sets[SET_COUNT];
static int n_supported; /* sets[0..n_supported) run on this CPU */
static int best;
static pthread_once_t once = PTHREAD_ONCE_INIT;

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
/* clang 14's __builtin_cpu_supports does not know "f16c": CPUID leaf 1, ECX bit 29 */
static int has_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
}
/* AVX512-BF16: CPUID leaf 7, sub-leaf 1, EAX bit 5 */
static int has_avx512_bf16(void) {
    unsigned a, b, c, d;
    return __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 5));
}
#endif

static void init(void) {
    qr_kernels_fill_scalar(&sets[SET_SCALAR]);
    n_supported = 1;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c() &&
        __builtin_cpu_supports("bmi2")) {
        qr_kernels_fill_avx2(&sets[SET_AVX2]);
        n_supported = 2;
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
            __builtin_cpu_supports("avx512vnni")) {
            qr_kernels_fill_avx512(&sets[SET_AVX512]);
            if (has_avx512_bf16()) qr_kernels_use_avx512_bf16(&sets[SET_AVX512]);
            n_supported = 3;
        }
    }
#endif
    best = n_supported - 1;
    const char *cap = getenv("QR_KERNELS");
    if (cap)
        for (int i = 0; i < n_supported; i++)
            if (strcmp(cap, sets[i].name) == 0) best = i;
}

const qr_kernels *qr_kernels_best(void) {
    pthread_once(&once, init);
    return &sets[best];
}

const qr_kernels *qr_kernels_named(const char *name) {
    pthread_once(&once, init);
    for (int i = 0; i < n_supported; i++)
        if (strcmp(name, sets[i].name) == 0) return &sets[i];
    return NULL;
}
