/* test_fp16.c - the half and bfloat16 conversions of src/util (qr_fp16_to_fp32, qr_fp32_to_fp16,
 * qr_bf16_to_fp32, qr_fp32_to_bf16), which every f16/bf16 tensor and every block scale goes
 * through:
 *   - every half and every bfloat16 to float, against the IEEE formula worked out in double;
 *   - every one back to itself; NaNs stay NaN, quiet, with their sign;
 *   - float to half/bf16 at every rounding boundary: for each representable value, the value
 *     itself, the midpoint to the next one (ties go to the even neighbour), and the floats just
 *     below and above that midpoint; overflow to infinity and underflow to zero by hand;
 *   - against the CPU's own conversions (F16C, where the CPU has it): every half to float
 *     (vcvtph2ps), and float to half (vcvtps2ph, round to nearest even) on the boundary cases
 *     and a stride through all 2^32 bit patterns. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <math.h>

#include <cmocka.h>

#include "util/util.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#define HAVE_X86 1
#endif

/* Every STRIDE-th float bit pattern is compared with F16C (a prime, so every bit position of the
 * mantissa varies): 2^32 / 4099 ~ 1M conversions. */
#define F16C_STRIDE 4099u

static float bits_to_float(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static uint32_t float_to_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* IEEE binary16: (-1)^s * 2^(e-15) * (1 + m/1024), subnormal 2^-14 * m/1024 */
static double half_value(uint16_t h) {
    const int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
    return s ? -v : v;
}

static void test_half_to_float_all(void **state) {
    (void)state;
    for (uint32_t i = 0; i < 65536; i++) {
        const uint16_t h = (uint16_t)i;
        const float f = qr_fp16_to_fp32(h);
        const double want = half_value(h);
        if (isnan(want)) {
            /* NaN: sign and payload kept (shifted into the float), made quiet as F16C's
             * vcvtph2ps and ggml do */
            const uint32_t u = float_to_bits(f);
            const uint32_t want_u = (i >> 15) << 31 | 0x7fc00000u | (i & 1023) << 13;
            if (u != want_u) fail_msg("half 0x%04x -> float 0x%08x, want 0x%08x", i, u, want_u);
        } else if ((double)f != want || !signbit(f) != !signbit(want)) {
            fail_msg("half 0x%04x -> %a, want %a", i, f, want);
        }
        /* and back */
        const uint16_t back = qr_fp32_to_fp16(f);
        if (isnan(want)) {
            if ((back & 0x7c00) != 0x7c00 || !(back & 0x200) || (back >> 15) != (i >> 15))
                fail_msg("NaN 0x%04x -> 0x%04x: not a quiet NaN of the same sign", i, back);
        } else if (back != h) {
            fail_msg("half 0x%04x -> %a -> 0x%04x", i, f, back);
        }
    }
}

/* Nearest half of x by the definition: the candidates are the halves around it. */
static uint16_t nearest_half_by_search(float x) {
    const double v = x;
    uint16_t best = 0x7c00;
    double best_err = INFINITY;
    /* binary search for the largest positive finite half <= |v| (halves are ordered as ints) */
    const double a = fabs(v);
    int lo = 0, hi = 0x7bff;
    while (lo < hi) {
        const int mid = (lo + hi + 1) / 2;
        if (half_value((uint16_t)mid) <= a)
            lo = mid;
        else
            hi = mid - 1;
    }
    for (int c = lo; c <= lo + 1 && c <= 0x7c00; c++) {
        /* past the largest finite half, the "next" value is 2^16 (inf's slot when rounding) */
        const double cv = c == 0x7c00 ? 65536.0 : half_value((uint16_t)c);
        const double err = fabs(cv - a);
        if (err < best_err || (err == best_err && !(c & 1))) {
            best = (uint16_t)c;
            best_err = err;
        }
    }
    return (uint16_t)(best | (signbit(x) ? 0x8000 : 0));
}

/* For each positive finite half h < 0x7bff: h, the midpoint to h+1, and its float neighbours;
 * calls check(x, want) for them and their negatives. */
static int for_each_half_boundary(void (*check)(float x, uint16_t want)) {
    int n = 0;
    for (uint32_t h = 0; h < 0x7bff; h++) {
        const double lo = half_value((uint16_t)h), hi = half_value((uint16_t)(h + 1));
        const float mid = (float)((lo + hi) / 2); /* exact: halves have 11 significant bits */
        assert_true((double)mid == (lo + hi) / 2);
        const uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
        const float below = nextafterf(mid, 0.0f), above = nextafterf(mid, INFINITY);
        const float xs[4] = {(float)lo, mid, below, above};
        const uint16_t want[4] = {(uint16_t)h, even, (uint16_t)h, (uint16_t)(h + 1)};
        for (int k = 0; k < 4; k++) {
            check(xs[k], want[k]);
            check(-xs[k], (uint16_t)(want[k] | 0x8000));
            n += 2;
        }
    }
    return n;
}

static void check_fp16(float x, uint16_t want) {
    const uint16_t got = qr_fp32_to_fp16(x);
    if (got != want) fail_msg("%a -> 0x%04x, want 0x%04x", x, got, want);
}

static void test_float_to_half_boundaries(void **state) {
    (void)state;
    const int n = for_each_half_boundary(check_fp16);
    assert_true(n > 8 * 0x7b00);
    /* the search-based definition agrees on the same points (checks the table above) */
    const float samples[] = {0x1p-25f,        0x1.000002p-25f,   0x1.8p-24f,
                             1.0f + 0x1p-11f, 1.0f + 0x1.8p-10f, 2049.0f,
                             2051.0f,         65504.0f,          65519.99f};
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++)
        check_fp16(samples[i], nearest_half_by_search(samples[i]));
}

static void test_float_to_half_by_hand(void **state) {
    (void)state;
    static const struct {
        float x;
        uint16_t want;
    } cases[] = {
        {0.0f, 0x0000},
        {-0.0f, 0x8000},
        {1.0f, 0x3c00},
        {-2.0f, 0xc000},
        {0.1f, 0x2e66},              /* 0.0999755859375 below, 0.10003662109375 above: down */
        {1.0f + 0x1p-11f, 0x3c00},   /* tie between 0x3c00 and 0x3c01: even */
        {1.0f + 0x1.8p-10f, 0x3c02}, /* tie between 0x3c01 and 0x3c02: even */
        {65504.0f, 0x7bff},          /* largest half */
        {65519.99f, 0x7bff},         /* below the midpoint to 2^16 */
        {65520.0f, 0x7c00},          /* the midpoint: rounds to even, i.e. overflows */
        {1e10f, 0x7c00},
        {-1e10f, 0xfc00},
        {INFINITY, 0x7c00},
        {-INFINITY, 0xfc00},
        {0x1p-14f, 0x0400},     /* smallest normal */
        {0x1p-24f, 0x0001},     /* smallest subnormal */
        {0x1p-25f, 0x0000},     /* half of it: tie, to even zero */
        {0x1.8p-24f, 0x0002},   /* 1.5 subnormal units: tie, to even 2 */
        {0x1.01p-25f, 0x0001},  /* just above the tie */
        {-0x1p-26f, 0x8000},    /* underflow keeps the sign */
        {0x1.ffcp-15f, 0x0400}, /* largest subnormal + half a unit: tie, rounds up to normal */
        {1e-30f, 0x0000},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const uint16_t got = qr_fp32_to_fp16(cases[i].x);
        if (got != cases[i].want)
            fail_msg("%a -> 0x%04x, want 0x%04x", cases[i].x, got, cases[i].want);
    }
    /* NaN: quiet, sign kept */
    assert_int_equal(qr_fp32_to_fp16(bits_to_float(0x7fc00000u)), 0x7e00);
    assert_int_equal(qr_fp32_to_fp16(bits_to_float(0x7f800001u)) & 0x7e00, 0x7e00);
    assert_int_equal(qr_fp32_to_fp16(bits_to_float(0xffc00000u)), 0xfe00);
}

#ifdef HAVE_X86
static bool cpu_has_f16c(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
    if (!(c & bit_F16C) || !(c & bit_OSXSAVE) || !(c & bit_AVX)) return false;
    /* the OS must save the YMM state (XCR0 bits 1 and 2) for VEX instructions */
    unsigned lo, hi;
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    (void)hi;
    return (lo & 6) == 6;
}

__attribute__((target("f16c"))) static uint16_t f16c_convert(float x) {
    return (uint16_t)_cvtss_sh(x, 0); /* imm 0: round to nearest even */
}

__attribute__((target("f16c"))) static float f16c_to_float(uint16_t h) {
    return _cvtsh_ss(h);
}

__attribute__((target("f16c"))) static void check_vs_f16c(float x, uint16_t want) {
    (void)want;
    const uint16_t got = qr_fp32_to_fp16(x), cpu = f16c_convert(x);
    if (got != cpu) fail_msg("%a -> 0x%04x, F16C 0x%04x", x, got, cpu);
}
#endif

static void test_float_to_half_vs_f16c(void **state) {
    (void)state;
#ifdef HAVE_X86
    if (!cpu_has_f16c()) {
        printf("  no F16C on this CPU\n");
        skip();
    }
    for (uint32_t h = 0; h < 65536; h++) { /* every half, NaNs included, bit for bit */
        const uint32_t ours = float_to_bits(qr_fp16_to_fp32((uint16_t)h));
        const uint32_t cpu = float_to_bits(f16c_to_float((uint16_t)h));
        if (ours != cpu) fail_msg("half 0x%04x -> 0x%08x, F16C 0x%08x", h, ours, cpu);
    }
    for_each_half_boundary(check_vs_f16c);
    long n = 0;
    for (uint64_t u = 0; u < (1ull << 32); u += F16C_STRIDE, n++) {
        const float x = bits_to_float((uint32_t)u);
        if (isnan(x)) { /* F16C keeps the payload; ggml and Quarrel give the plain quiet NaN */
            assert_true((qr_fp32_to_fp16(x) & 0x7e00) == 0x7e00);
            continue;
        }
        check_vs_f16c(x, 0);
    }
    printf("  every half to float, every rounding boundary and %ld strided floats to half agree "
           "with F16C\n",
           n);
#else
    skip();
#endif
}

/* bfloat16: the top 16 bits of a float, rounded to nearest even. */
static void test_bf16_all(void **state) {
    (void)state;
    for (uint32_t i = 0; i < 65536; i++) {
        const uint16_t h = (uint16_t)i;
        const float f = qr_bf16_to_fp32(h);
        assert_int_equal(float_to_bits(f), i << 16);
        const uint16_t back = qr_fp32_to_bf16(f);
        if (isnan(f)) {
            /* quiet (bit 6 set), sign and the payload's top bits kept, as ggml */
            if (back != (h | 0x40)) fail_msg("bf16 NaN 0x%04x -> 0x%04x", i, back);
        } else if (back != h) {
            fail_msg("bf16 0x%04x -> %a -> 0x%04x", i, f, back);
        }
        /* rounding boundaries between h and h+1 (same sign, finite, not the largest) */
        if ((i & 0x7fff) >= 0x7f7f) continue;
        const uint32_t mid = (i << 16) | 0x8000u; /* exactly halfway, a float */
        const uint16_t even = (i & 1) ? (uint16_t)(i + 1) : h;
        if (qr_fp32_to_bf16(bits_to_float(mid)) != even)
            fail_msg("0x%08x (tie) -> 0x%04x, want 0x%04x", mid,
                     qr_fp32_to_bf16(bits_to_float(mid)), even);
        if (qr_fp32_to_bf16(bits_to_float(mid - 1)) != h)
            fail_msg("0x%08x -> 0x%04x, want 0x%04x", mid - 1,
                     qr_fp32_to_bf16(bits_to_float(mid - 1)), h);
        if (qr_fp32_to_bf16(bits_to_float(mid + 1)) != (uint16_t)(i + 1))
            fail_msg("0x%08x -> 0x%04x, want 0x%04x", mid + 1,
                     qr_fp32_to_bf16(bits_to_float(mid + 1)), i + 1);
    }
}

static void test_bf16_by_hand(void **state) {
    (void)state;
    static const struct {
        uint32_t x;
        uint16_t want;
    } cases[] = {
        {0x3f800000u, 0x3f80}, /* 1.0 */
        {0x3f808000u, 0x3f80}, /* 1 + 2^-8: tie, to even 0x3f80 */
        {0x3f818000u, 0x3f82}, /* 1 + 3*2^-8: tie, to even 0x3f82 */
        {0x3f808001u, 0x3f81}, /* just above the tie */
        {0x3dcccccdu, 0x3dcd}, /* 0.1: 0x3dcc + 0.8 units, up */
        {0x7f7fffffu, 0x7f80}, /* largest float rounds to inf, as ggml */
        {0x7f7f7fffu, 0x7f7f}, /* below that midpoint stays finite */
        {0x00000001u, 0x0000}, /* smallest subnormal float: below half a bf16 unit */
        {0x00008000u, 0x0000}, /* exactly half a unit: tie, to even zero */
        {0x00018000u, 0x0002}, /* 1.5 units: tie, to even 2 (subnormals are not flushed) */
        {0x80000000u, 0x8000}, /* -0 */
        {0xff800000u, 0xff80}, /* -inf */
        {0x7f800001u, 0x7fc0}, /* signalling NaN made quiet */
        {0xffc00000u, 0xffc0}, /* negative quiet NaN kept */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const uint16_t got = qr_fp32_to_bf16(bits_to_float(cases[i].x));
        if (got != cases[i].want)
            fail_msg("0x%08x -> 0x%04x, want 0x%04x", cases[i].x, got, cases[i].want);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_half_to_float_all),
        cmocka_unit_test(test_float_to_half_boundaries),
        cmocka_unit_test(test_float_to_half_by_hand),
        cmocka_unit_test(test_float_to_half_vs_f16c),
        cmocka_unit_test(test_bf16_all),
        cmocka_unit_test(test_bf16_by_hand),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
