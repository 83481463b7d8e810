/* rng.c - the sampler's PRNG: xoshiro256** (Blackman & Vigna, 2018) with its state filled by
 * splitmix64 from the 64-bit seed, so one seed gives one bit-for-bit reproducible stream. */
#include "sample/sample_internal.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

void qr_rng_seed(qr_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

uint64_t qr_rng_next(qr_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double qr_rng_uniform(qr_rng *r) {
    return (double)(qr_rng_next(r) >> 11) * 0x1p-53;
}

uint64_t qr_rng_random_seed(void) {
    uint64_t seed = 0;
    bool got = false;
    FILE *f = fopen("/dev/urandom", "rb");
    if (f) {
        got = fread(&seed, sizeof seed, 1, f) == 1;
        fclose(f);
    }
    if (!got) { /* mix the clock and the pid so two processes started together still differ */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
        x ^= (uint64_t)getpid() << 32;
        seed = splitmix64(&x);
    }
    if (seed == QR_SEED_RANDOM) seed = 0x5eed; /* the sentinel itself is never a real seed */
    return seed;
}
