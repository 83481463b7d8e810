/* quantize_iq_grid.c - f32 to the seven grid IQ types, step for step as ggml-quants.c so that
 * the bytes equal ggml_quantize_chunk's, with and without an importance matrix:
 *   iq2_xxs, iq2_xs, iq2_s, iq3_xxs, iq3_s (quantize_row_<type>_impl): per group of 8 (4 for
 *       iq3) magnitudes a least-squares scale search; a group whose rounded levels are not a
 *       grid point takes the best of that point's precomputed nearest grid points
 *       (iq2_find_best_neighbour, iq3_find_best_neighbour; make_qp_quants, in quantize_k.c as
 *       qr_fit_scale_pos, seeds iq2_xxs).
 *   iq1_s, iq1_m (quantize_row_iq1_s_impl, quantize_row_iq1_m_impl): the values sorted, every
 *       pair of thresholds splitting them into -1, 0, +1 tried (+-0.125, per half for iq1_m),
 *       then the same neighbour step (iq1_find_best_neighbour2).
 * The weights are imatrix[j] * sqrt(sigma2 + x^2) with an importance, x^2 (iq2_s: sigma2/4 +
 * x^2) without; iq2_xxs, iq2_xs and iq1_s need the importance, as ggml's.
 *
 * The search structures (ggml_quantize_init: iq2xs_init_impl, iq3xs_init_impl) are built on
 * first use, once per grid under a lock, and kept until the process ends: they are constants
 * derived from the fixed grids, reachable from the static table below (not a leak).
 *
 * Float expressions are in ggml's order (no FMA in this build, none in ggml's). ggml aborts on
 * a few states that only non-finite input reaches (no neighbour with a finite error, a point
 * off the grid at the end); here those take the nearest grid point instead, so any input gives
 * in-range indices and the loops end. */
#include "tensor/blocks.h"
#include "tensor/iq_tables.h"
#include "tensor/quantize_fit.h"
#include "tensor/tensor.h"
#include "util/util.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

/* below these a group is all zero (ggml's GROUP_MAX_EPS, _IQ2_S, _IQ3_XXS, _IQ1_S, _IQ1_M) */
#define GROUP_MAX_EPS 1e-15f
#define GROUP_MAX_EPS_IQ2_S 1e-8f
#define GROUP_MAX_EPS_IQ3_XXS 1e-8f
#define GROUP_MAX_EPS_IQ1_S 1e-12f
#define GROUP_MAX_EPS_IQ1_M 1e-7f

/* ggml's MAX(a, b): a when a > b, else b (which matters only for NaN) */
static inline float max_ggml(float a, float b) {
    return a > b ? a : b;
}

/* ------------------------------------------------------------------------------------------ */
/* Search structures                                                                          */

/* A grid point is n_coord levels l (0 .. n_levels-1); its key packs them, bits each, first
 * value lowest. ggml keeps the points as the odd values 2l + 1, which its searches use. */
typedef struct grid_search {
    int n_coord, bits, n_levels;
    int8_t *odd;          /* per grid point, its n_coord values 2l + 1 */
    float *odd_f;         /* the same as floats, for the neighbour searches */
    int32_t *map;         /* key -> grid index, or -(start + 1) of the key's neighbour list */
    uint16_t *neighbours; /* lists: a count, then grid indices, nearest first, ties by index */
} grid_search;

enum { GRID_IQ2XXS, GRID_IQ2XS, GRID_IQ2S, GRID_IQ1S, GRID_IQ3XXS, GRID_IQ3S, N_GRIDS };

/* n_want: how many distinct distances a neighbour list spans (ggml's nwant) */
static const struct grid_spec {
    int n_points, n_coord, bits, n_levels, n_want;
} grid_specs[N_GRIDS] = {
    [GRID_IQ2XXS] = {256, 8, 2, 3, 2}, [GRID_IQ2XS] = {512, 8, 2, 3, 2},
    [GRID_IQ2S] = {1024, 8, 2, 3, 1},  [GRID_IQ1S] = {2048, 8, 2, 3, 3},
    [GRID_IQ3XXS] = {256, 4, 3, 8, 2}, [GRID_IQ3S] = {512, 4, 3, 8, 3},
};

/* value j of grid point p as stored in ggml-common.h's table */
static int grid_value(int grid, int p, int j) {
    switch (grid) {
    case GRID_IQ2XXS:
        return qr_iq_grid8(qr_iq2xxs_grid[p], j);
    case GRID_IQ2XS:
        return qr_iq_grid8(qr_iq2xs_grid[p], j);
    case GRID_IQ2S:
        return qr_iq_grid8(qr_iq2s_grid[p], j);
    case GRID_IQ1S:
        return qr_iq_grid8_signed(qr_iq1s_grid[p], j);
    case GRID_IQ3XXS:
        return qr_iq_grid4(qr_iq3xxs_grid[p], j);
    default:
        return qr_iq_grid4(qr_iq3s_grid[p], j);
    }
}

static void grid_search_free(grid_search *s) {
    free(s->odd);
    free(s->odd_f);
    free(s->map);
    free(s->neighbours);
    memset(s, 0, sizeof *s);
}

/* ggml builds its grids from packed level tables (kgrid_*) whose order is that of the tables
 * in ggml-common.h; the level of a stored value is its rank among the values the grid uses. */
static bool grid_search_build(int grid, grid_search *s) {
    const struct grid_spec *g = &grid_specs[grid];
    const int n = g->n_points, c = g->n_coord;
    int n_keys = 0;
    for (int i = 0; i < c; i++)
        n_keys |= (g->n_levels - 1) << (g->bits * i);
    n_keys += 1;
    *s = (grid_search){.n_coord = c, .bits = g->bits, .n_levels = g->n_levels};
    s->odd = malloc((size_t)n * c);
    s->odd_f = malloc((size_t)n * c * sizeof(float));
    s->map = malloc((size_t)n_keys * sizeof(int32_t));
    int *d2 = malloc((size_t)n * sizeof(int));
    size_t used = 0, cap = 0; /* entries of s->neighbours */
    if (!s->odd || !s->odd_f || !s->map || !d2) goto fail;

    int rank[512] = {0}; /* stored value + 256 -> 1 + level */
    for (int p = 0; p < n; p++)
        for (int j = 0; j < c; j++)
            rank[grid_value(grid, p, j) + 256] = 1;
    int n_levels = 0;
    for (int v = 0; v < 512; v++)
        if (rank[v]) rank[v] = ++n_levels;
    if (n_levels != g->n_levels) goto fail; /* the tables are not ggml's */
    for (int k = 0; k < n_keys; k++)
        s->map[k] = -1;
    for (int p = 0; p < n; p++) {
        int key = 0;
        for (int j = 0; j < c; j++) {
            const int l = rank[grid_value(grid, p, j) + 256] - 1;
            s->odd[p * c + j] = (int8_t)(2 * l + 1);
            s->odd_f[p * c + j] = (float)(2 * l + 1);
            key |= l << (g->bits * j);
        }
        s->map[key] = p;
    }

    /* every key made only of levels 0 .. n_levels-1 and not on the grid gets its list: the grid
     * points at the n_want smallest squared distances (in odd values), by distance then index
     * (ggml sorts (distance, index) pairs); other keys are never formed */
    for (int key = 0; key < n_keys; key++) {
        if (s->map[key] >= 0) continue;
        int8_t pos[8];
        bool reachable = true;
        for (int j = 0; j < c; j++) {
            const int l = (key >> (g->bits * j)) & ((1 << g->bits) - 1);
            reachable = reachable && l < g->n_levels;
            pos[j] = (int8_t)(2 * l + 1);
        }
        if (!reachable) continue;
        int dist[3], n_dist = 0; /* the smallest distinct distances, ascending */
        for (int p = 0; p < n; p++) {
            int d = 0;
            for (int j = 0; j < c; j++)
                d += (s->odd[p * c + j] - pos[j]) * (s->odd[p * c + j] - pos[j]);
            d2[p] = d;
            if (n_dist == g->n_want && d >= dist[n_dist - 1]) continue;
            int at = n_dist;
            while (at > 0 && dist[at - 1] > d)
                at--;
            if (at > 0 && dist[at - 1] == d) continue;
            if (n_dist < g->n_want) n_dist++;
            for (int m = n_dist - 1; m > at; m--)
                dist[m] = dist[m - 1];
            dist[at] = d;
        }
        if (used + 1 + (size_t)n > cap) {
            cap = cap ? 2 * cap : 65536;
            uint16_t *grown = realloc(s->neighbours, cap * sizeof(uint16_t));
            if (!grown) goto fail;
            s->neighbours = grown;
        }
        const size_t start = used++;
        int count = 0;
        for (int m = 0; m < n_dist; m++)
            for (int p = 0; p < n; p++)
                if (d2[p] == dist[m]) s->neighbours[used++] = (uint16_t)p, count++;
        s->neighbours[start] = (uint16_t)count;
        s->map[key] = -(int32_t)start - 1;
    }
    free(d2);
    return true;
fail:
    free(d2);
    grid_search_free(s);
    return false;
}

/* Built once each, on first use; published with release ordering so a reader that sees the
 * pointer sees the arrays. A failed build (out of memory) is retried on the next call. */
static grid_search search_storage[N_GRIDS];
static _Atomic(const grid_search *) search_ready[N_GRIDS];
static pthread_mutex_t search_lock = PTHREAD_MUTEX_INITIALIZER;

static const grid_search *grid_search_get(int grid) {
    const grid_search *s = atomic_load_explicit(&search_ready[grid], memory_order_acquire);
    if (s) return s;
    pthread_mutex_lock(&search_lock);
    s = atomic_load_explicit(&search_ready[grid], memory_order_relaxed);
    if (!s && grid_search_build(grid, &search_storage[grid])) {
        s = &search_storage[grid];
        atomic_store_explicit(&search_ready[grid], s, memory_order_release);
    }
    pthread_mutex_unlock(&search_lock);
    return s;
}

static int grid_of_type(int type) {
    switch (type) {
    case QR_TYPE_IQ2_XXS:
        return GRID_IQ2XXS;
    case QR_TYPE_IQ2_XS:
        return GRID_IQ2XS;
    case QR_TYPE_IQ2_S:
        return GRID_IQ2S;
    case QR_TYPE_IQ1_S:
    case QR_TYPE_IQ1_M:
        return GRID_IQ1S;
    case QR_TYPE_IQ3_XXS:
        return GRID_IQ3XXS;
    case QR_TYPE_IQ3_S:
        return GRID_IQ3S;
    default:
        return -1;
    }
}

qr_status qr_quantize_iq_init(int type) {
    const int grid = grid_of_type(type);
    if (grid < 0 || grid_search_get(grid)) return QR_OK;
    return qr_error(QR_ERR_NOMEM, "quantizing to %s: out of memory building the grid search",
                    qr_type_name(type));
}

/* The key of a group's levels; a level out of range (only after non-finite input) is clamped
 * so the key stays inside the map. */
static int group_key(const grid_search *s, const int8_t *L) {
    int key = 0;
    for (int i = 0; i < s->n_coord; i++)
        key |= clamp_int(L[i], 0, s->n_levels - 1) << (s->bits * i);
    return key;
}

static const uint16_t *neighbour_list(const grid_search *s, int key) {
    return s->neighbours + (-s->map[key] - 1);
}

/* The grid index of a group's levels: the point itself, or where ggml would abort (a group off
 * the grid at the end, non-finite input only) its nearest grid point. */
static int grid_index_of(const grid_search *s, const int8_t *L) {
    const int key = group_key(s, L);
    return s->map[key] >= 0 ? s->map[key] : neighbour_list(s, key)[1];
}

/* Sets L to the levels of the listed grid point nearest scale * (2L + 1) ~ xval in the weighted
 * squared distance (the first on ties), returns its index (iq2_ / iq3_find_best_neighbour).
 * c = s->n_coord, a constant where it is inlined (the search loops' hot spot). */
static inline int best_neighbour(const grid_search *s, int c, const uint16_t *list,
                                 const float *xval, const float *weight, float scale, int8_t *L) {
    float best_d2 = FLT_MAX;
    int best = list[1]; /* kept only if no distance is finite (ggml aborts) */
    for (int j = 1; j <= list[0]; j++) {
        const float *pg = s->odd_f + list[j] * c;
        float d2 = 0;
        /* -O2 leaves this loop rolled; unrolled it is a tenth faster (ggml builds with -O3) */
#pragma GCC unroll 8
        for (int i = 0; i < c; i++) {
            const float diff = scale * pg[i] - xval[i];
            d2 += weight[i] * diff * diff;
        }
        if (d2 < best_d2) {
            best_d2 = d2;
            best = list[j];
        }
    }
    for (int i = 0; i < c; i++)
        L[i] = (int8_t)((s->odd[best * c + i] - 1) / 2);
    return best;
}

/* The levels of the group of c (8, or 4 for iq3) magnitudes xval at 1/id, each (id * x - 1) / 2
 * rounded into 0 .. kmax-1, then moved onto the grid: returns whether they were on it. */
static inline bool round_group(const grid_search *s, int c, const float *xval, const float *waux,
                               float id, float scale, int kmax, int8_t *L) {
    int key = 0;
    for (int i = 0; i < c; i++) {
        L[i] = (int8_t)clamp_int(nearest_int(0.5f * (id * xval[i] - 1)), 0, kmax - 1);
        key |= L[i] << (s->bits * i);
    }
    if (s->map[key] >= 0) return true;
    best_neighbour(s, c, neighbour_list(s, key), xval, waux, scale, L);
    return false;
}

static bool round_group8(const grid_search *s, const float *xval, const float *waux, float id,
                         float scale, int kmax, int8_t *L) {
    return round_group(s, 8, xval, waux, id, scale, kmax, L);
}

static bool round_group4(const grid_search *s, const float *xval, const float *waux, float id,
                         float scale, int kmax, int8_t *L) {
    return round_group(s, 4, xval, waux, id, scale, kmax, L);
}

/* sum w x q and sum w q^2 over n values at q = 2L + 1 */
static void odd_sums(int n, const float *weight, const float *xval, const int8_t *L, float *sumqx,
                     float *sumq2) {
    float qx = 0, q2 = 0;
    for (int i = 0; i < n; i++) {
        const float w = weight[i];
        const float q = 2 * L[i] + 1;
        qx += w * xval[i] * q;
        q2 += w * q * q;
    }
    *sumqx = qx;
    *sumq2 = q2;
}

/* ggml's running MAX over x[0..n-1], from x[0] */
static float max_of(int n, const float *x) {
    float max = x[0];
    for (int i = 1; i < n; i++)
        max = max_ggml(max, x[i]);
    return max;
}

/* the same over |x| */
static float max_abs_of(int n, const float *x) {
    float max = fabsf(x[0]);
    for (int i = 1; i < n; i++)
        max = max_ggml(max, fabsf(x[i]));
    return max;
}

/* One step of the scale searches: the least-squares scale of the candidate levels Laux (n
 * values) and its score scale * sumqx; where the score beats *best (compared as ggml, without
 * dividing), Laux becomes L. Returns whether it did. */
static bool keep_if_better(int n, const float *weight, const float *xval, const int8_t *Laux,
                           float *best, float *scale, int8_t *L) {
    float sumqx, sumq2;
    odd_sums(n, weight, xval, Laux, &sumqx, &sumq2);
    if (!(sumq2 > 0 && sumqx * sumqx > *best * sumq2)) return false;
    *scale = sumqx / sumq2;
    *best = *scale * sumqx;
    memcpy(L, Laux, (size_t)n);
    return true;
}

/* The least-squares scale of the final levels L, or scale where they give none */
static float refit_scale(int n, const float *weight, const float *xval, const int8_t *L,
                         float scale) {
    float sumqx, sumq2;
    odd_sums(n, weight, xval, L, &sumqx, &sumq2);
    return sumq2 > 0 ? sumqx / sumq2 : scale;
}

/* A negative scale (ggml: "should never happen") is stored positive with the n sign bytes
 * inverted (7 bits each with even_parity, 8 otherwise). */
static float positive_scale(float scale, int n, bool even_parity, uint8_t *signs) {
    if (!(scale < 0)) return scale; /* a NaN scale stays, as in ggml */
    for (int k = 0; k < n; k++)
        signs[k] = (uint8_t)(even_parity ? ~signs[k] & 127 : ~signs[k]);
    return -scale;
}

/* The magnitudes of 8 values and all 8 sign bits (iq2_s, iq3_s). */
static uint8_t all_signs(const float *xb, float *xval) {
    uint8_t s = 0;
    for (int i = 0; i < 8; i++) {
        if (xb[i] >= 0) {
            xval[i] = xb[i];
        } else {
            xval[i] = -xb[i];
            s |= (uint8_t)(1 << i);
        }
    }
    return s;
}

/* The magnitudes of 8 values and their sign bits. iq2_xxs, iq2_xs and iq3_xxs keep 7 sign bits
 * with an even count: with an odd number of negatives, the value of least weighted square
 * (the first on ties) keeps its sign and enters as a negative magnitude. */
static uint8_t even_signs(const float *xb, const float *weight, float *xval) {
    uint8_t s = all_signs(xb, xval);
    int n_flip = 0;
    for (int i = 0; i < 8; i++)
        n_flip += (s >> i) & 1;
    if (n_flip % 2) {
        int imin = 0;
        float min = weight[0] * xb[0] * xb[0];
        for (int i = 1; i < 8; i++) {
            const float ax = weight[i] * xb[i] * xb[i];
            if (ax < min) {
                min = ax;
                imin = i;
            }
        }
        xval[imin] = -xval[imin];
        s ^= (uint8_t)(1 << imin);
    }
    return s & 127;
}

/* sigma2 of a super-block: factor * sum x^2 / QK_K (factor 1 for iq2_xxs and iq2_xs, 2 else) */
static float block_sigma2(const float *xbl, float factor) {
    float sumx2 = 0;
    for (int i = 0; i < QK_K; i++)
        sumx2 += xbl[i] * xbl[i];
    return factor * sumx2 / QK_K;
}

static void importance_weights(int n, const float *xb, const float *qw, float sigma2,
                               float *weight) {
    for (int i = 0; i < n; i++)
        weight[i] = qw[i] * sqrtf(sigma2 + xb[i] * xb[i]);
}

/* weights of n values (iq3_xxs, iq3_s, iq1_m): with the importance qw, or x^2 */
static void weights_or_squares(int n, const float *xb, const float *qw, float sigma2,
                               float *weight) {
    if (qw) {
        importance_weights(n, xb, qw, sigma2, weight);
    } else {
        for (int i = 0; i < n; i++)
            weight[i] = xb[i] * xb[i];
    }
}

/* The 4-bit sub-block scale: (scale / d - 1) / 2 rounded into 0..15 (0..7 for iq1) */
static int scale_level(float id, float scale, int max) {
    return clamp_int(nearest_int(0.5f * (id * scale - 1)), 0, max);
}

/* n sub-block scales as 4-bit levels, two a byte (even sub-block low), into the zeroed out */
static void pack_scale_nibbles(int n, const float *scales, float id, uint8_t *out) {
    for (int ib = 0; ib < n; ib++) {
        const int l = scale_level(id, scales[ib], 15);
        out[ib / 2] |= (uint8_t)(ib % 2 ? l << 4 : l);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* iq2_xxs, iq2_xs, iq2_s                                                                     */

static void quantize_iq2_xxs_row(const grid_search *s, const float *x, void *dst, int64_t nbl,
                                 const float *imatrix) {
    block_iq2_xxs *y = dst;
    const int kmax = 3;
    float scales[QK_K / 32], weight[32], xval[32], waux[32];
    int8_t L[32], Laux[32];
    uint8_t Lqp[32], signs[4];
    uint32_t q2[QK_K / 16];
    for (int64_t ibl = 0; ibl < nbl; ibl++) {
        y[ibl].d = qr_fp32_to_fp16(0.f);
        memset(q2, 0, sizeof q2);
        float max_scale = 0;
        const float *xbl = x + QK_K * ibl;
        const float sigma2 = block_sigma2(xbl, 1);
        for (int ib = 0; ib < QK_K / 32; ib++) {
            const float *xb = xbl + 32 * ib;
            importance_weights(32, xb, imatrix + QK_K * ibl + 32 * ib, sigma2, weight);
            for (int i = 0; i < 32; i++)
                waux[i] = sqrtf(weight[i]);
            for (int k = 0; k < 4; k++)
                signs[k] = even_signs(xb + 8 * k, weight + 8 * k, xval + 8 * k);
            if (max_of(32, xval) < GROUP_MAX_EPS) {
                scales[ib] = 0;
                continue;
            }
            float scale = qr_fit_scale_pos(32, kmax + 1, xval, Lqp, weight);
            memcpy(L, Lqp, 32);
            const float eff_max = scale * kmax;
            if (eff_max <= 0) {
                scales[ib] = 0;
                continue;
            }
            float best = 0;
            for (int is = -6; is <= 6; is++) {
                const float id = (2 * kmax - 1 + is * 0.1f) / eff_max;
                const float this_scale = 1 / id;
                for (int k = 0; k < 4; k++)
                    round_group8(s, xval + 8 * k, waux + 8 * k, id, this_scale, kmax, Laux + 8 * k);
                keep_if_better(32, weight, xval, Laux, &best, &scale, L);
            }
            if (scale > 0) {
                const float id = 1 / scale;
                for (int k = 0; k < 4; k++)
                    round_group8(s, xval + 8 * k, waux + 8 * k, id, scale, kmax, L + 8 * k);
                scale = refit_scale(32, weight, xval, L, scale);
            }
            scale = positive_scale(scale, 4, true, signs);
            for (int k = 0; k < 4; k++) {
                q2[2 * ib + 0] |= (uint32_t)grid_index_of(s, L + 8 * k) << (8 * k);
                q2[2 * ib + 1] |= (uint32_t)signs[k] << (7 * k);
            }
            scales[ib] = scale;
            max_scale = max_ggml(max_scale, scale);
        }
        if (!max_scale) {
            memset(y[ibl].qs, 0, sizeof y[ibl].qs);
            continue;
        }
        const float d = max_scale / 31;
        y[ibl].d = qr_fp32_to_fp16(d);
        const float id = 1 / d;
        for (int ib = 0; ib < QK_K / 32; ib++)
            q2[2 * ib + 1] |= (uint32_t)scale_level(id, scales[ib], 15) << 28;
        memcpy(y[ibl].qs, q2, sizeof y[ibl].qs);
    }
}

/* What differs between the sub-block searches of quantize_row_iq2_xs_impl, _iq2_s_impl,
 * _iq3_xxs_impl and _iq3_s_impl: the size, the grid, the signs, the zero test, the scales tried,
 * and for iq3_s the starting on-grid state and which groups are redone at the best scale. */
typedef struct sub_block_spec {
    int n, c, kmax;   /* values a sub-block (16, 32), a grid group (8, 4); levels (3, 8) */
    int n_try;        /* the scales tried: (2 kmax - 1 + is * step) / max, is in -n_try..n_try */
    float step;       /* (0.1 for iq2, 0.2 for iq3) */
    bool even_parity; /* 7 sign bits of even count a group of 8 (even_signs), or all 8 */
    float eps;        /* all zero where the largest magnitude is below eps (iq3_s: 0, only 0) */
    bool redo_all;    /* iq3_s: no group counts as on the grid before the search, and at the
                       * best scale all groups are redone (the others redo those off it) */
} sub_block_spec;

static const sub_block_spec spec_iq2_xs = {16, 8, 3, 9, 0.1f, true, GROUP_MAX_EPS, false};
static const sub_block_spec spec_iq2_s = {16, 8, 3, 9, 0.1f, false, GROUP_MAX_EPS_IQ2_S, false};
static const sub_block_spec spec_iq3_xxs = {32, 4, 8, 15, 0.2f, true, GROUP_MAX_EPS_IQ3_XXS, false};
static const sub_block_spec spec_iq3_s = {32, 4, 8, 9, 0.2f, false, 0, true};

/* round_group with the group size a constant (8 or 4) where it is inlined */
static bool round_group_c(const grid_search *s, int c, const float *xval, const float *waux,
                          float id, float scale, int kmax, int8_t *L) {
    return c == 8 ? round_group8(s, xval, waux, id, scale, kmax, L)
                  : round_group4(s, xval, waux, id, scale, kmax, L);
}

/* One sub-block of iq2_xs, iq2_s, iq3_xxs or iq3_s (sp): sets the n/8 sign bytes, the scale and
 * the levels L; false for an all-zero sub-block, which ggml leaves unpacked. */
static bool quantize_sub_block(const grid_search *s, const sub_block_spec *sp, const float *xb,
                               const float *weight, uint8_t *signs, float *scale_out, int8_t *L) {
    const int n = sp->n, c = sp->c, kmax = sp->kmax, n_groups = sp->n / sp->c;
    float xval[32] = {0}, waux[32]; /* (initialised only for gcc, which cannot see n >= 8) */
    int8_t Laux[32];
    bool on_grid[8], on_grid_aux[8];
    for (int i = 0; i < n; i++)
        waux[i] = sqrtf(weight[i]);
    for (int k = 0; k < n / 8; k++)
        signs[k] = sp->even_parity ? even_signs(xb + 8 * k, weight + 8 * k, xval + 8 * k)
                                   : all_signs(xb + 8 * k, xval + 8 * k);
    const float max = max_of(n, xval);
    for (int i = 0; i < n; i++)
        L[i] = 0;
    if (max < sp->eps || !max) { /* !max: iq3_s's test; below a positive eps it adds nothing */
        *scale_out = 0;
        return false;
    }
    float best = 0, scale = max / (2 * kmax - 1);
    for (int k = 0; k < n_groups; k++)
        on_grid[k] = !sp->redo_all;
    for (int is = -sp->n_try; is <= sp->n_try; is++) {
        const float id = (2 * kmax - 1 + is * sp->step) / max;
        const float this_scale = 1 / id;
        for (int k = 0; k < n_groups; k++)
            on_grid_aux[k] =
                round_group_c(s, c, xval + c * k, waux + c * k, id, this_scale, kmax, Laux + c * k);
        if (keep_if_better(n, weight, xval, Laux, &best, &scale, L))
            for (int k = 0; k < n_groups; k++)
                on_grid[k] = on_grid_aux[k];
    }
    int n_off_grid = 0;
    for (int k = 0; k < n_groups; k++)
        n_off_grid += !on_grid[k];
    if (n_off_grid > 0 && scale > 0) {
        const float id = 1 / scale;
        for (int k = 0; k < n_groups; k++)
            if (sp->redo_all || !on_grid[k])
                round_group_c(s, c, xval + c * k, waux + c * k, id, scale, kmax, L + c * k);
        scale = refit_scale(n, weight, xval, L, scale);
    }
    *scale_out = positive_scale(scale, n / 8, sp->even_parity, signs);
    return true;
}

static void quantize_iq2_xs_row(const grid_search *s, const float *x, void *dst, int64_t nbl,
                                const float *imatrix) {
    block_iq2_xs *y = dst;
    float scales[QK_K / 16], weight[16];
    int8_t L[16];
    uint8_t signs[2];
    uint16_t q2[QK_K / 8];
    for (int64_t ibl = 0; ibl < nbl; ibl++) {
        y[ibl].d = qr_fp32_to_fp16(0.f);
        memset(q2, 0, sizeof q2);
        memset(y[ibl].scales, 0, sizeof y[ibl].scales);
        float max_scale = 0;
        const float *xbl = x + QK_K * ibl;
        const float sigma2 = block_sigma2(xbl, 1);
        for (int ib = 0; ib < QK_K / 16; ib++) {
            const float *xb = xbl + 16 * ib;
            importance_weights(16, xb, imatrix + QK_K * ibl + 16 * ib, sigma2, weight);
            if (!quantize_sub_block(s, &spec_iq2_xs, xb, weight, signs, &scales[ib], L)) continue;
            for (int k = 0; k < 2; k++)
                q2[2 * ib + k] = (uint16_t)(grid_index_of(s, L + 8 * k) | signs[k] << 9);
            max_scale = max_ggml(max_scale, scales[ib]);
        }
        if (!max_scale) {
            memset(y[ibl].qs, 0, sizeof y[ibl].qs);
            continue;
        }
        const float d = max_scale / 31;
        y[ibl].d = qr_fp32_to_fp16(d);
        const float id = 1 / d;
        pack_scale_nibbles(QK_K / 16, scales, id, y[ibl].scales);
        memcpy(y[ibl].qs, q2, sizeof y[ibl].qs);
    }
}

static void quantize_iq2_s_row(const grid_search *s, const float *x, void *dst, int64_t nbl,
                               const float *imatrix) {
    block_iq2_s *y = dst;
    float scales[QK_K / 16], weight[16];
    int8_t L[16];
    uint8_t signs[2];
    for (int64_t ibl = 0; ibl < nbl; ibl++) {
        memset(&y[ibl], 0, sizeof y[ibl]);
        y[ibl].d = qr_fp32_to_fp16(0.f);
        float max_scale = 0;
        const float *xbl = x + QK_K * ibl;
        const float sigma2 = block_sigma2(xbl, 2);
        for (int ib = 0; ib < QK_K / 16; ib++) {
            const float *xb = xbl + 16 * ib;
            if (imatrix) {
                importance_weights(16, xb, imatrix + QK_K * ibl + 16 * ib, sigma2, weight);
            } else {
                for (int i = 0; i < 16; i++)
                    weight[i] = 0.25f * sigma2 + xb[i] * xb[i];
            }
            if (!quantize_sub_block(s, &spec_iq2_s, xb, weight, signs, &scales[ib], L)) continue;
            for (int k = 0; k < 2; k++) {
                const int i8 = 2 * ib + k, index = grid_index_of(s, L + 8 * k);
                y[ibl].qs[i8] = (uint8_t)(index & 255);
                y[ibl].qh[i8 / 4] |= (uint8_t)((index >> 8) << 2 * (i8 % 4));
                y[ibl].qs[QK_K / 8 + i8] = signs[k];
            }
            max_scale = max_ggml(max_scale, scales[ib]);
        }
        if (!max_scale) continue;
        const float d = max_scale / 31;
        y[ibl].d = qr_fp32_to_fp16(d * 0.9875f);
        const float id = 1 / d;
        pack_scale_nibbles(QK_K / 16, scales, id, y[ibl].scales);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* iq3_xxs, iq3_s                                                                             */

static void quantize_iq3_xxs_row(const grid_search *s, const float *x, void *dst, int64_t nbl,
                                 const float *imatrix) {
    block_iq3_xxs *y = dst;
    float scales[QK_K / 32], weight[32];
    int8_t L[32];
    uint8_t signs[4];
    /* qs: 64 grid indices, then per sub-block a u32 of 4 x 7 sign bits and the 4-bit scale */
    uint8_t q3[3 * QK_K / 8];
    uint32_t scales_and_signs[QK_K / 32];
    for (int64_t ibl = 0; ibl < nbl; ibl++) {
        y[ibl].d = qr_fp32_to_fp16(0.f);
        memset(q3, 0, sizeof q3);
        memset(scales_and_signs, 0, sizeof scales_and_signs);
        float max_scale = 0;
        const float *xbl = x + QK_K * ibl;
        const float sigma2 = block_sigma2(xbl, 2);
        for (int ib = 0; ib < QK_K / 32; ib++) {
            const float *xb = xbl + 32 * ib;
            weights_or_squares(32, xb, imatrix ? imatrix + QK_K * ibl + 32 * ib : NULL, sigma2,
                               weight);
            if (!quantize_sub_block(s, &spec_iq3_xxs, xb, weight, signs, &scales[ib], L)) continue;
            for (int k = 0; k < 8; k++)
                q3[8 * ib + k] = (uint8_t)grid_index_of(s, L + 4 * k);
            scales_and_signs[ib] = signs[0] | (uint32_t)signs[1] << 7 | (uint32_t)signs[2] << 14 |
                                   (uint32_t)signs[3] << 21;
            max_scale = max_ggml(max_scale, scales[ib]);
        }
        if (!max_scale) {
            memset(y[ibl].qs, 0, sizeof y[ibl].qs);
            continue;
        }
        const float d = max_scale / 31;
        y[ibl].d = qr_fp32_to_fp16(d * 1.0125f);
        const float id = 1 / d;
        for (int ib = 0; ib < QK_K / 32; ib++)
            scales_and_signs[ib] |= (uint32_t)scale_level(id, scales[ib], 15) << 28;
        memcpy(q3 + QK_K / 4, scales_and_signs, sizeof scales_and_signs);
        memcpy(y[ibl].qs, q3, sizeof y[ibl].qs);
    }
}

static void quantize_iq3_s_row(const grid_search *s, const float *x, void *dst, int64_t nbl,
                               const float *imatrix) {
    block_iq3_s *y = dst;
    float scales[QK_K / 32], weight[32];
    int8_t L[32];
    uint8_t signs[4];
    for (int64_t ibl = 0; ibl < nbl; ibl++) {
        memset(&y[ibl], 0, sizeof y[ibl]);
        y[ibl].d = qr_fp32_to_fp16(0.f);
        float max_scale = 0;
        const float *xbl = x + QK_K * ibl;
        const float sigma2 = block_sigma2(xbl, 2);
        for (int ib = 0; ib < QK_K / 32; ib++) {
            const float *xb = xbl + 32 * ib;
            weights_or_squares(32, xb, imatrix ? imatrix + QK_K * ibl + 32 * ib : NULL, sigma2,
                               weight);
            if (!quantize_sub_block(s, &spec_iq3_s, xb, weight, signs, &scales[ib], L)) continue;
            for (int k = 0; k < 8; k++) {
                const int index = grid_index_of(s, L + 4 * k);
                y[ibl].qs[8 * ib + k] = (uint8_t)(index & 255);
                y[ibl].qh[ib] |= (uint8_t)((index >> 8) << k);
            }
            memcpy(y[ibl].signs + 4 * ib, signs, 4);
            max_scale = max_ggml(max_scale, scales[ib]);
        }
        if (!max_scale) continue;
        const float d = max_scale / 31;
        y[ibl].d = qr_fp32_to_fp16(d * 1.033f);
        const float id = 1 / d;
        pack_scale_nibbles(QK_K / 32, scales, id, y[ibl].scales);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* iq1_s, iq1_m                                                                               */

/* order[] = 0..n-1 sorted by x ascending, equal values in index order: the order glibc's qsort
 * (a stable merge sort) gives ggml's pairs. */
static void sort_by_value(const float *x, int n, int *order) {
    for (int j = 0; j < n; j++) {
        int i = j;
        while (i > 0 && x[order[i - 1]] > x[j]) {
            order[i] = order[i - 1];
            i--;
        }
        order[i] = j;
    }
}

/* Sets L to the levels of the listed grid point nearest scale * xg[L] ~ xval (the first on ties)
 * and returns its index (iq1_find_best_neighbour2). Where no distance is finite ggml scans the
 * whole grid reading past xval (non-finite or overflowing input only); here the first listed
 * point is taken. */
static int best_neighbour_iq1(const grid_search *s, const uint16_t *list, const float *xval,
                              const float *weight, float scale, const float *xg, int8_t *L) {
    float best_d2 = FLT_MAX;
    int best = list[1];
    for (int j = 1; j <= list[0]; j++) {
        const int8_t *pg = s->odd + list[j] * 8;
        float d2 = 0;
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) {
            const float q = xg[(pg[i] - 1) / 2];
            const float w = weight[i];
            const float diff = scale * q - xval[i];
            d2 += w * diff * diff;
        }
        if (d2 < best_d2) {
            best_d2 = d2;
            best = list[j];
        }
    }
    for (int i = 0; i < 8; i++)
        L[i] = (int8_t)((s->odd[best * 8 + i] - 1) / 2);
    return best;
}

/* The grid index of the group of 8 levels L (moved to the best neighbour if off the grid, with
 * L updated); *on_grid cleared when it was off. */
static int iq1_group_index(const grid_search *s, const float *xb, const float *weight, float scale,
                           const float *xg, int8_t *L, bool *on_grid) {
    const int key = group_key(s, L);
    if (s->map[key] >= 0) return s->map[key];
    *on_grid = false;
    return best_neighbour_iq1(s, neighbour_list(s, key), xb, weight, scale, xg, L);
}

/* L from the split of the sorted values (order) at i1 <= i2 into levels 0, 1, 2; a negative
 * *scale is made positive with the levels mirrored (2 - L), and then true is returned (the
 * caller flips its delta signs). */
static bool iq1_split_levels(int n, const int *order, int i1, int i2, float *scale, int8_t *L) {
    for (int j = 0; j < n; j++)
        L[order[j]] = (int8_t)(j < i1 ? 0 : j < i2 ? 1 : 2);
    if (!(*scale < 0)) return false; /* as ggml: a NaN scale stays */
    for (int j = 0; j < n; j++)
        L[j] = (int8_t)(2 - L[j]);
    *scale = -*scale;
    return true;
}

/* The grid indices of n_groups groups of 8 (group k at levels levels[k], L updated where it is
 * moved to a neighbour); if any group was off the grid, *scale is refitted by least squares to
 * the grid points taken (kept where the sums are not positive). */
static void iq1_place_groups(const grid_search *s, int n_groups, const float *xb,
                             const float *weight, const float *const *levels, int8_t *L,
                             uint16_t *index, float *scale) {
    bool all_on_grid = true;
    for (int k = 0; k < n_groups; k++)
        index[k] = (uint16_t)iq1_group_index(s, xb + 8 * k, weight + 8 * k, *scale, levels[k],
                                             L + 8 * k, &all_on_grid);
    if (all_on_grid) return;
    float sumqx = 0, sumq2 = 0;
    for (int k = 0; k < n_groups; k++) {
        const float *xx = levels[k];
        const int8_t *pg = s->odd + index[k] * 8;
        for (int j = 0; j < 8; j++) {
            const float w = weight[8 * k + j];
            const float q = xx[(pg[j] - 1) / 2];
            sumqx += w * q * xb[8 * k + j];
            sumq2 += w * q * q;
        }
    }
    if (sumqx > 0 && sumq2 > 0) *scale = sumqx / sumq2;
}

static const float iq1_plus[3] = {-1 + QR_IQ1S_DELTA, QR_IQ1S_DELTA, 1 + QR_IQ1S_DELTA};
static const float iq1_minus[3] = {-1 - QR_IQ1S_DELTA, -QR_IQ1S_DELTA, 1 - QR_IQ1S_DELTA};

static void quantize_iq1_s_row(const grid_search *s, const float *x, void *dst, int64_t nbl,
                               const float *imatrix) {
    block_iq1_s *y = dst;
    const int bs = 32;
    const float *x_p = iq1_plus, *x_m = iq1_minus;
    float scales[QK_K / 32], weight[32], sumx[33], sumw[33];
    int8_t L[32], shifts[QK_K / 32];
    int order[32];
    uint16_t index[4];
    for (int64_t ibl = 0; ibl < nbl; ibl++) {
        y[ibl].d = qr_fp32_to_fp16(0.f);
        memset(y[ibl].qs, 0, sizeof y[ibl].qs);
        memset(y[ibl].qh, 0, sizeof y[ibl].qh);
        float max_scale = 0;
        const float *xbl = x + QK_K * ibl;
        const float sigma2 = block_sigma2(xbl, 2);
        for (int ib = 0; ib < QK_K / bs; ib++) {
            const float *xb = xbl + bs * ib;
            importance_weights(bs, xb, imatrix + QK_K * ibl + bs * ib, sigma2, weight);
            const float max = max_abs_of(bs, xb);
            if (max < GROUP_MAX_EPS_IQ1_S) {
                scales[ib] = 0;
                shifts[ib] = 1;
                continue;
            }
            /* the best split of the sorted values into three runs at levels xx[0..2]: prefix
             * sums give every split's weighted least-squares score */
            sort_by_value(xb, bs, order);
            sumx[0] = sumw[0] = 0;
            for (int j = 0; j < bs; j++) {
                const int i = order[j];
                sumx[j + 1] = sumx[j] + weight[i] * xb[i];
                sumw[j + 1] = sumw[j] + weight[i];
            }
            float best_score = -FLT_MAX, scale = max;
            int besti1 = -1, besti2 = -1, best_shift = 0;
            for (int i1 = 0; i1 <= bs; i1++) {
                for (int i2 = i1; i2 <= bs; i2++) {
                    float sumqx = (sumx[i1] - sumx[0]) * x_p[0] + (sumx[i2] - sumx[i1]) * x_p[1] +
                                  (sumx[bs] - sumx[i2]) * x_p[2];
                    float sumq2 = (sumw[i1] - sumw[0]) * x_p[0] * x_p[0] +
                                  (sumw[i2] - sumw[i1]) * x_p[1] * x_p[1] +
                                  (sumw[bs] - sumw[i2]) * x_p[2] * x_p[2];
                    if (sumq2 > 0 && sumqx * sumqx > best_score * sumq2) {
                        scale = sumqx / sumq2;
                        best_score = scale * sumqx;
                        besti1 = i1, besti2 = i2, best_shift = 1;
                    }
                    sumqx = (sumx[i1] - sumx[0]) * x_m[0] + (sumx[i2] - sumx[i1]) * x_m[1] +
                            (sumx[bs] - sumx[i2]) * x_m[2];
                    sumq2 = (sumw[i1] - sumw[0]) * x_m[0] * x_m[0] +
                            (sumw[i2] - sumw[i1]) * x_m[1] * x_m[1] +
                            (sumw[bs] - sumw[i2]) * x_m[2] * x_m[2];
                    if (sumq2 > 0 && sumqx * sumqx > best_score * sumq2) {
                        scale = sumqx / sumq2;
                        best_score = scale * sumqx;
                        besti1 = i1, besti2 = i2, best_shift = -1;
                    }
                }
            }
            if (besti1 < 0 || besti2 < 0 || best_shift == 0) {
                scales[ib] = 0;
                shifts[ib] = 1;
                continue;
            }
            if (iq1_split_levels(bs, order, besti1, besti2, &scale, L)) best_shift = -best_shift;
            const float *xx = best_shift == 1 ? x_p : x_m;
            const float *const levels[4] = {xx, xx, xx, xx};
            iq1_place_groups(s, bs / 8, xb, weight, levels, L, index, &scale);
            uint16_t h = 0;
            for (int k = 0; k < bs / 8; k++) {
                y[ibl].qs[(bs / 8) * ib + k] = (uint8_t)(index[k] & 255);
                h |= (uint16_t)((index[k] >> 8) << 3 * k);
            }
            y[ibl].qh[ib] = h;
            scales[ib] = scale;
            shifts[ib] = (int8_t)best_shift;
            max_scale = max_ggml(max_scale, scale);
        }
        if (!max_scale) continue;
        const float d = max_scale / 15;
        y[ibl].d = qr_fp32_to_fp16(d * 1.125f);
        const float id = 1 / d;
        for (int ib = 0; ib < QK_K / bs; ib++) {
            int l = scale_level(id, scales[ib], 7);
            if (shifts[ib] == -1) l |= 8;
            y[ibl].qh[ib] |= (uint16_t)(l << 12);
        }
    }
}

/* iq1_m's delta signs per group of 8: k = 0 (+,+), 1 (+,-), 2 (-,+), 3 (-,-) for the two groups
 * of a sub-block of 16 */
static const float *iq1_m_levels(int k, int group) {
    const bool plus = group == 0 ? k < 2 : k % 2 == 0;
    return plus ? iq1_plus : iq1_minus;
}

static void quantize_iq1_m_row(const grid_search *s, const float *x, void *dst, int64_t nbl,
                               const float *imatrix) {
    block_iq1_m *y = dst;
    enum { bs = 16 };
    const float *x_p = iq1_plus, *x_m = iq1_minus;
    static const uint8_t masks[4] = {0x00, 0x80, 0x08, 0x88};
    float scales[QK_K / bs], weight[bs];
    int8_t L[bs], shifts[QK_K / bs];
    int order[bs];
    uint16_t index[2];
    for (int64_t ibl = 0; ibl < nbl; ibl++) {
        memset(y[ibl].qs, 0, sizeof y[ibl].qs);
        memset(y[ibl].qh, 0, sizeof y[ibl].qh);
        memset(y[ibl].scales, 0, sizeof y[ibl].scales);
        float max_scale = 0;
        const float *xbl = x + QK_K * ibl;
        const float sigma2 = block_sigma2(xbl, 2);
        for (int ib = 0; ib < QK_K / bs; ib++) {
            const float *xb = xbl + bs * ib;
            weights_or_squares(bs, xb, imatrix ? imatrix + QK_K * ibl + bs * ib : NULL, sigma2,
                               weight);
            const float max = max_abs_of(bs, xb);
            if (max < GROUP_MAX_EPS_IQ1_M) {
                scales[ib] = 0;
                shifts[ib] = 0;
                continue;
            }
            /* as iq1_s, but each half of 16 has its own delta sign: prefix sums per half, and
             * since the level steps are 1 for both deltas a split's sums reduce to the totals
             * and the sums at the two thresholds (ggml's formulation, kept for its rounding) */
            sort_by_value(xb, bs, order);
            float best_score = -FLT_MAX, scale = max;
            int besti1 = -1, besti2 = -1, best_k = -1;
            float px[2][bs + 1], pw[2][bs + 1];
            px[0][0] = px[1][0] = 0;
            pw[0][0] = pw[1][0] = 0;
            for (int j = 0; j < bs; j++) {
                const int i = order[j];
                const int h = i < bs / 2 ? 0 : 1;
                px[h][j + 1] = px[h][j] + weight[i] * xb[i];
                px[1 - h][j + 1] = px[1 - h][j];
                pw[h][j + 1] = pw[h][j] + weight[i];
                pw[1 - h][j + 1] = pw[1 - h][j];
            }
            const float txs[2] = {px[0][bs], px[1][bs]}, tws[2] = {pw[0][bs], pw[1][bs]};
            const float p2 = x_p[2], m2 = x_m[2];
            const float cp1 = x_p[0] * x_p[0] - x_p[1] * x_p[1];
            const float cp2 = x_p[1] * x_p[1] - x_p[2] * x_p[2];
            const float cm1 = x_m[0] * x_m[0] - x_m[1] * x_m[1];
            const float cm2 = x_m[1] * x_m[1] - x_m[2] * x_m[2];
            for (int i1 = 0; i1 <= bs; i1++) {
                for (int i2 = i1; i2 <= bs; i2++) {
                    float qx_p[2], qx_m[2], q2_p[2], q2_m[2], sumqx[4], sumq2[4];
                    for (int h = 0; h < 2; h++) {
                        const float sx = px[h][i1] + px[h][i2];
                        qx_p[h] = txs[h] * p2 - sx;
                        qx_m[h] = txs[h] * m2 - sx;
                        q2_p[h] = tws[h] * p2 * p2 + pw[h][i1] * cp1 + pw[h][i2] * cp2;
                        q2_m[h] = tws[h] * m2 * m2 + pw[h][i1] * cm1 + pw[h][i2] * cm2;
                    }
                    sumqx[0] = qx_p[0] + qx_p[1];
                    sumqx[1] = qx_p[0] + qx_m[1];
                    sumqx[2] = qx_m[0] + qx_p[1];
                    sumqx[3] = qx_m[0] + qx_m[1];
                    sumq2[0] = q2_p[0] + q2_p[1];
                    sumq2[1] = q2_p[0] + q2_m[1];
                    sumq2[2] = q2_m[0] + q2_p[1];
                    sumq2[3] = q2_m[0] + q2_m[1];
#pragma GCC unroll 4
                    for (int k = 0; k < 4; k++) {
                        if (sumq2[k] > 0 && sumqx[k] * sumqx[k] > best_score * sumq2[k]) {
                            scale = sumqx[k] / sumq2[k];
                            best_score = scale * sumqx[k];
                            besti1 = i1, besti2 = i2, best_k = k;
                        }
                    }
                }
            }
            if (besti1 < 0 || besti2 < 0 || best_k < 0) {
                scales[ib] = 0;
                shifts[ib] = 0;
                continue;
            }
            if (iq1_split_levels(bs, order, besti1, besti2, &scale, L))
                best_k = 3 - best_k; /* both delta signs flip */
            const float *const levels[2] = {iq1_m_levels(best_k, 0), iq1_m_levels(best_k, 1)};
            iq1_place_groups(s, 2, xb, weight, levels, L, index, &scale);
            y[ibl].qs[2 * ib + 0] = (uint8_t)(index[0] & 255);
            y[ibl].qs[2 * ib + 1] = (uint8_t)(index[1] & 255);
            y[ibl].qh[ib] = (uint8_t)((index[0] >> 8) | ((index[1] >> 8) << 4));
            scales[ib] = scale;
            shifts[ib] = (int8_t)best_k;
            max_scale = max_ggml(max_scale, scale);
        }
        if (!max_scale) continue;

        /* 3-bit sub-block scales, then the super-block scale refitted to them by least squares
         * over the whole block (all-zero sub-blocks included, at grid point 0) */
        uint16_t sc[4] = {0, 0, 0, 0};
        float d = max_scale / 15;
        const float id = 1 / d;
        float sumqx_f = 0, sumq2_f = 0;
        for (int ib = 0; ib < QK_K / bs; ib++) {
            const int l = scale_level(id, scales[ib], 7);
            sc[ib / 4] |= (uint16_t)(l << 3 * (ib % 4));
            y[ibl].qh[ib] |= masks[shifts[ib]];
            const float *xb = xbl + bs * ib;
            weights_or_squares(bs, xb, imatrix ? imatrix + QK_K * ibl + bs * ib : NULL, sigma2,
                               weight);
            for (int k = 0; k < 2; k++) {
                const float *xx = iq1_m_levels(shifts[ib], k);
                const int gi = y[ibl].qs[2 * ib + k] + ((y[ibl].qh[ib] << (8 - 4 * k)) & 0x700);
                const int8_t *pg = s->odd + gi * 8;
                for (int j = 0; j < 8; j++) {
                    const float w = weight[8 * k + j];
                    const float q = xx[(pg[j] - 1) / 2] * (2 * l + 1);
                    sumqx_f += w * q * xb[8 * k + j];
                    sumq2_f += w * q * q;
                }
            }
        }
        if (sumq2_f > 0) d = sumqx_f / sumq2_f;
        const uint16_t dh = qr_fp32_to_fp16(d * 1.1125f);
        sc[0] |= (uint16_t)((dh & 0x000f) << 12);
        sc[1] |= (uint16_t)((dh & 0x00f0) << 8);
        sc[2] |= (uint16_t)((dh & 0x0f00) << 4);
        sc[3] |= (uint16_t)(dh & 0xf000);
        memcpy(y[ibl].scales, sc, sizeof sc);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Entry points                                                                               */

typedef void (*grid_row_fn)(const grid_search *s, const float *x, void *y, int64_t nbl,
                            const float *imatrix);

/* n_rows rows, each with the same per-column importance (ggml's quantize_<type>). Without the
 * search structures (out of memory; qr_quantize_rows reports that first) or without the
 * importance a type needs (qr_quantize_rows refuses first) the rows are zeroed. */
static void quantize_grid_rows(int type, grid_row_fn row_fn, bool needs_importance,
                               const float *src, void *dst, int64_t n_rows, int64_t n_per_row,
                               const float *imatrix) {
    const grid_search *s = grid_search_get(grid_of_type(type));
    const size_t row_bytes = qr_type_row_bytes(type, n_per_row);
    for (int64_t r = 0; r < n_rows; r++) {
        char *y = (char *)dst + (size_t)r * row_bytes;
        if (!s || (needs_importance && !imatrix))
            memset(y, 0, row_bytes);
        else
            row_fn(s, src + r * n_per_row, y, n_per_row / QK_K, imatrix);
    }
}

/* qr_quantize_<type> for each grid type; needs_importance: ggml's quantize_<type> requires one */
#define QUANTIZE_GRID(type, TYPE, needs_importance)                                                \
    void qr_quantize_##type(const float *src, void *dst, int64_t n_rows, int64_t n_per_row,        \
                            const float *imatrix) {                                                \
        quantize_grid_rows(TYPE, quantize_##type##_row, needs_importance, src, dst, n_rows,        \
                           n_per_row, imatrix);                                                    \
    }
QUANTIZE_GRID(iq2_xxs, QR_TYPE_IQ2_XXS, true)
QUANTIZE_GRID(iq2_xs, QR_TYPE_IQ2_XS, true)
QUANTIZE_GRID(iq2_s, QR_TYPE_IQ2_S, false)
QUANTIZE_GRID(iq3_xxs, QR_TYPE_IQ3_XXS, false)
QUANTIZE_GRID(iq3_s, QR_TYPE_IQ3_S, false)
QUANTIZE_GRID(iq1_s, QR_TYPE_IQ1_S, true)
QUANTIZE_GRID(iq1_m, QR_TYPE_IQ1_M, false)

/* Without importance (ggml's quantize_row_<type>_ref; iq1_m has none in ggml: quantize_iq1_m
 * with NULL): the blocks are independent, so n elements are one row. */
#define QUANT_GRID_WITHOUT_IMPORTANCE(type)                                                        \
    void qr_quant_##type(const float *src, void *dst, int64_t n) {                                 \
        qr_quantize_##type(src, dst, 1, n, NULL);                                                  \
    }
QUANT_GRID_WITHOUT_IMPORTANCE(iq2_s)
QUANT_GRID_WITHOUT_IMPORTANCE(iq3_xxs)
QUANT_GRID_WITHOUT_IMPORTANCE(iq3_s)
QUANT_GRID_WITHOUT_IMPORTANCE(iq1_m)
