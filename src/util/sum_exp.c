/* sum_exp.c - the sum of exp(x[i] - shift) over a row: the normaliser of a softmax over a
 * whole vocabulary (log-probabilities in the sampler, perplexity and scoring in eval).
 * With SSE2 (every x86-64) four lanes at a time: exp as 2^k * e^r with r = x - k ln 2 split in
 * two parts (Cody-Waite) and a degree-6 polynomial for e^r (Cephes' expf coefficients), within
 * 2 ulp of libm's expf over the range a normaliser sees (x - shift <= 0); arguments below
 * -87.33 (e^-87.33 is the smallest normal float) and -inf give 0. Lanes are summed in double,
 * as the scalar loops did. */
#include "util/util.h"

#include <math.h>

#if defined(__SSE2__)
#include <emmintrin.h>

static inline __m128 exp4(__m128 x) {
    const __m128 lo = _mm_set1_ps(-87.33654f);
    const __m128 under = _mm_cmplt_ps(x, lo); /* also true for -inf */
    x = _mm_min_ps(_mm_max_ps(x, lo), _mm_set1_ps(88.37626f)); /* 2^k stays a normal float */
    /* k = round(x / ln 2), r = x - k ln 2 */
    const __m128i k = _mm_cvtps_epi32(_mm_mul_ps(x, _mm_set1_ps(1.44269504088896341f)));
    const __m128 kf = _mm_cvtepi32_ps(k);
    __m128 r = _mm_sub_ps(x, _mm_mul_ps(kf, _mm_set1_ps(0.693359375f)));
    r = _mm_sub_ps(r, _mm_mul_ps(kf, _mm_set1_ps(-2.12194440e-4f)));
    __m128 p = _mm_set1_ps(1.9875691500e-4f);
    p = _mm_add_ps(_mm_mul_ps(p, r), _mm_set1_ps(1.3981999507e-3f));
    p = _mm_add_ps(_mm_mul_ps(p, r), _mm_set1_ps(8.3334519073e-3f));
    p = _mm_add_ps(_mm_mul_ps(p, r), _mm_set1_ps(4.1665795894e-2f));
    p = _mm_add_ps(_mm_mul_ps(p, r), _mm_set1_ps(1.6666665459e-1f));
    p = _mm_add_ps(_mm_mul_ps(p, r), _mm_set1_ps(5.0000001201e-1f));
    p = _mm_add_ps(_mm_add_ps(_mm_mul_ps(_mm_mul_ps(p, r), r), r), _mm_set1_ps(1.0f));
    /* times 2^k: k + 127 into the exponent field (k >= -126 here, so no subnormal result) */
    const __m128 scale = _mm_castsi128_ps(_mm_slli_epi32(_mm_add_epi32(k, _mm_set1_epi32(127)), 23));
    return _mm_andnot_ps(under, _mm_mul_ps(p, scale));
}
#endif

/* sum of exp(x[i] - shift); each term also into out[i] when out is not NULL */
static double exp_row(const float *x, float *out, int64_t n, float shift) {
    double sum = 0.0;
    int64_t i = 0;
#if defined(__SSE2__)
    __m128d s0 = _mm_setzero_pd(), s1 = _mm_setzero_pd();
    const __m128 sh = _mm_set1_ps(shift);
    for (; i + 4 <= n; i += 4) {
        const __m128 e = exp4(_mm_sub_ps(_mm_loadu_ps(x + i), sh));
        if (out) _mm_storeu_ps(out + i, e);
        s0 = _mm_add_pd(s0, _mm_cvtps_pd(e));
        s1 = _mm_add_pd(s1, _mm_cvtps_pd(_mm_movehl_ps(e, e)));
    }
    s0 = _mm_add_pd(s0, s1);
    sum = _mm_cvtsd_f64(s0) + _mm_cvtsd_f64(_mm_unpackhi_pd(s0, s0));
#endif
    for (; i < n; i++) {
        const float e = expf(x[i] - shift);
        if (out) out[i] = e;
        sum += e;
    }
    return sum;
}

double qr_exp_shift(float *x, int64_t n, float shift) {
    return exp_row(x, x, n, shift);
}

double qr_sum_exp(const float *x, int64_t n, float shift) {
    return exp_row(x, NULL, n, shift);
}
