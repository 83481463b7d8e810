/* rope.c - rotary position embedding as llama.cpp applies it: the context's RoPE settings from
 * the model's declaration and llama.cpp's overrides (llama_context's constructor: scaling type,
 * base, scale, YaRN's extrapolation and attention factors, original context), and the rotation
 * itself as ggml's CPU rope (ggml_rope_cache_init, rope_yarn): pair i of the rotated dimensions
 * turns by theta_i = pos * base^(-2i/n_rot) / factor_i, interpolated by freq_scale and, with
 * YaRN, ramped back to the unscaled angle between the correction dimensions; cos and sin are
 * multiplied by the magnitude factor. */
#include "model/model.h"

#include <math.h>

static float yarn_corr_dim(int n_dims, int n_ctx_orig, float n_rot, float base) {
    return (float)n_dims * logf((float)n_ctx_orig / (n_rot * 2.0f * (float)M_PI)) /
           (2.0f * logf(base));
}

static void set_base(qr_rope *r, float base) {
    r->freq_base = base;
    r->theta_scale = powf(base, -2.0f / (float)r->n_rot);
    /* ggml_rope_yarn_corr_dims */
    const float start = floorf(yarn_corr_dim(r->n_rot, r->n_ctx_orig, r->beta_fast, base));
    const float end = ceilf(yarn_corr_dim(r->n_rot, r->n_ctx_orig, r->beta_slow, base));
    r->corr_dims[0] = start > 0.0f ? start : 0.0f;
    r->corr_dims[1] = end < (float)(r->n_rot - 1) ? end : (float)(r->n_rot - 1);
}

void qr_rope_init(const qr_model *m, const qr_context_params *p, int32_t n_ctx_seq,
                  qr_rope rope[2]) {
    const qr_hparams *hp = &m->hp;
    qr_rope g = {.n_rot = hp->n_rot, .type = m->arch->rope_type};
    const qr_rope_scaling scaling =
        p->rope_scaling == QR_ROPE_SCALING_DEFAULT ? hp->rope_scaling : p->rope_scaling;
    const float base = p->rope_freq_base == 0.0f ? hp->rope_freq_base : p->rope_freq_base;
    g.freq_scale = p->rope_freq_scale == 0.0f ? hp->rope_freq_scale : p->rope_freq_scale;
    if (scaling == QR_ROPE_SCALING_NONE) g.freq_scale = 1.0f;
    g.n_ctx_orig = p->yarn_orig_ctx != 0 ? p->yarn_orig_ctx : hp->n_ctx_orig;
    g.ext_factor = p->yarn_ext_factor >= 0.0f        ? p->yarn_ext_factor
                   : scaling == QR_ROPE_SCALING_YARN ? 1.0f
                                                     : 0.0f;
    g.attn_factor = p->yarn_attn_factor >= 0.0f ? p->yarn_attn_factor : 1.0f;
    g.beta_fast = p->yarn_beta_fast >= 0.0f ? p->yarn_beta_fast : 32.0f;
    g.beta_slow = p->yarn_beta_slow >= 0.0f ? p->yarn_beta_slow : 1.0f;
    if (g.ext_factor != 0.0f) {
        /* llama.cpp's magnitude: get_mscale(factor) = 1 + 0.1 ln(factor), divided by the same
         * factor rope_yarn multiplies in again */
        const float factor = 1.0f / g.freq_scale;
        g.attn_factor = factor <= 1.0f ? 1.0f : 0.1f * logf(factor) + 1.0f;
        g.attn_factor *= 1.0f / (1.0f + 0.1f * logf(factor));
    }
    g.attn_factor *= hp->rope_attn_factor;
    /* per-dimension factors: Llama 3.1's rope_freqs, else LongRoPE's long ones past the
     * original context and short ones within it */
    g.factors = m->rope_freqs.data;
    if (!g.factors) g.factors = n_ctx_seq > hp->n_ctx_orig ? m->rope_long.data : m->rope_short.data;
    set_base(&g, base);
    rope[0] = g;

    /* the windowed layers: OLMo 3 turns scaling off there; gemma keeps its own base and scale
     * (not the overrides) */
    qr_rope w = g;
    if (!strcmp(m->arch->name, "olmo2")) {
        w.freq_scale = 1.0f;
        w.ext_factor = 0.0f;
        w.attn_factor = 1.0f;
    } else {
        w.freq_scale = hp->rope_freq_scale_swa;
        set_base(&w, hp->rope_freq_base_swa);
    }
    rope[1] = w;
}

void qr_rope_cache(const qr_rope *r, int32_t pos, float *cache) {
    float theta = (float)pos;
    for (int32_t i0 = 0; i0 < r->n_rot; i0 += 2) {
        const float extrap = r->factors ? theta / r->factors[i0 / 2] : theta;
        const float interp = r->freq_scale * extrap;
        float th = interp, mscale = r->attn_factor;
        if (r->ext_factor != 0.0f) {
            const float y = (float)(i0 / 2 - r->corr_dims[0]) /
                            fmaxf(0.001f, r->corr_dims[1] - r->corr_dims[0]);
            const float ramp = (1.0f - fminf(1.0f, fmaxf(0.0f, y))) * r->ext_factor;
            th = interp * (1.0f - ramp) + extrap * ramp;
            mscale *= 1.0f + 0.1f * logf(1.0f / r->freq_scale);
        }
        cache[i0] = cosf(th) * mscale;
        cache[i0 + 1] = sinf(th) * mscale;
        theta *= r->theta_scale;
    }
}

void qr_rope_apply(const qr_rope *r, const float *cache, float *x, int32_t n_heads,
                   int32_t head_dim) {
    const int32_t half = r->n_rot / 2;
    for (int32_t h = 0; h < n_heads; h++, x += head_dim)
        for (int32_t i = 0; i < half; i++) {
            const int32_t a = r->type == QR_ROPE_NEOX ? i : 2 * i;
            const int32_t b = r->type == QR_ROPE_NEOX ? i + half : 2 * i + 1;
            const float x0 = x[a], x1 = x[b], c = cache[2 * i], s = cache[2 * i + 1];
            x[a] = x0 * c - x1 * s;
            x[b] = x0 * s + x1 * c;
        }
}
