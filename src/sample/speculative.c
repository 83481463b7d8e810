/* speculative.c - the acceptance rule of speculative sampling (Leviathan et al. 2023, "Fast
 * Inference from Transformers via Speculative Decoding", Algorithm 1; Chen et al. 2023,
 * "Accelerating Large Language Model Decoding with Speculative Sampling", Algorithm 2).
 *
 * A draft proposed token x with probability q(x); the target's final distribution is p. Keep x
 * with probability min(1, p(x) / q(x)); otherwise draw from norm(max(0, p - q)). Whatever q is,
 * the token returned is distributed as p: P(x kept) = min(p(x), q(x)), and the residual gives
 * each token the rest of its mass, p(y) - min(p(y), q(y)). */
#include "sample/sample_internal.h"

qr_token qr_spec_verify(const qr_candidate *cand, size_t n, qr_token draft, const float *q,
                        qr_rng *rng, bool *accepted) {
    double p_draft = 0.0;
    for (size_t i = 0; i < n; i++)
        if (cand[i].id == draft) p_draft = cand[i].p;
    const double q_draft = q ? q[draft] : 1.0;
    /* the uniform is drawn only when the outcome is uncertain, so a greedy chain (p a point
     * mass) never touches the random state */
    if (p_draft > 0.0 && (p_draft >= q_draft || qr_rng_uniform(rng) * q_draft < p_draft)) {
        *accepted = true;
        return draft;
    }
    *accepted = false;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double qi = q ? q[cand[i].id] : (cand[i].id == draft ? 1.0 : 0.0);
        const double r = cand[i].p - qi;
        if (r > 0.0) sum += r;
    }
    /* sum is 0 only where p <= q everywhere, i.e. p == q up to rounding: then the draft was
     * kept with probability 1 in exact arithmetic; draw from p itself */
    const bool from_p = !(sum > 0.0);
    if (from_p) {
        sum = 0.0;
        for (size_t i = 0; i < n; i++)
            sum += cand[i].p;
    }
    const double target = qr_rng_uniform(rng) * sum;
    double run = 0.0;
    size_t last = n; /* the last token with weight, for a sum rounded short */
    for (size_t i = 0; i < n; i++) {
        const double qi = q ? q[cand[i].id] : (cand[i].id == draft ? 1.0 : 0.0);
        const double w = from_p ? cand[i].p : cand[i].p - qi;
        if (!(w > 0.0)) continue;
        run += w;
        last = i;
        if (run > target) return cand[i].id;
    }
    return last < n ? cand[last].id : cand[0].id;
}
