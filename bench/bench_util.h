/* bench_util.h - what the small benchmark programs share: a monotonic clock and a seeded
 * xorshift uniform in (0, 1) (open at both ends, so log() of it is finite). */
#ifndef QR_BENCH_UTIL_H
#define QR_BENCH_UTIL_H

#include <stdint.h>
#include <time.h>

static inline double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t bench_rng_state = 88172645463325252ull;
static inline double bench_uniform(void) {
    bench_rng_state ^= bench_rng_state << 13;
    bench_rng_state ^= bench_rng_state >> 7;
    bench_rng_state ^= bench_rng_state << 17;
    return ((double)(bench_rng_state >> 11) + 0.5) * 0x1p-53;
}

#endif
