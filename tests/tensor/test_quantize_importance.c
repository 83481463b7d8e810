/* test_quantize_importance.c - the legacy types and k-quants quantized with an importance
 * matrix against ggml: tests/tensor/data/quantize_importance.ref (mk_kquant_imatrix_refs.py)
 * holds the sha256 of every row ggml_quantize_chunk writes for two inputs, with the importance
 * (ggml's quantize_row_*_impl) and without (the _ref quantizers). Quarrel's qr_quantize_rows must
 * give the same bytes for all of them, and without importance the same bytes as qr_quantize row
 * by row. Plus: NaN and infinite weights end (any bytes), and the bad-input errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <math.h>

#include <cmocka.h>

#include "quarrel.h"
#include "test_util.h"

#define REF_FILE QR_TEST_DIR "/tensor/data/quantize_importance.ref"

static const struct {
    const char *name;
    int type;
} types[] = {
    {"q4_0", QR_TYPE_Q4_0}, {"q4_1", QR_TYPE_Q4_1}, {"q5_0", QR_TYPE_Q5_0},
    {"q5_1", QR_TYPE_Q5_1}, {"q2_K", QR_TYPE_Q2_K}, {"q3_K", QR_TYPE_Q3_K},
    {"q4_K", QR_TYPE_Q4_K}, {"q5_K", QR_TYPE_Q5_K}, {"q6_K", QR_TYPE_Q6_K},
};
#define N_TYPES (sizeof types / sizeof types[0])

/* ---- sha256 (FIPS 180-4), for comparing with the generator's hashlib digests ---- */

static const uint32_t sha_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static uint32_t rotr(uint32_t x, int n) {
    return x >> n | x << (32 - n);
}

static void sha_block(uint32_t h[8], const uint8_t *p) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        const uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ w[i - 15] >> 3;
        const uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ w[i - 2] >> 10;
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (int i = 0; i < 64; i++) {
        const uint32_t t1 =
            k + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + sha_k[i] + w[i];
        const uint32_t t2 =
            (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        k = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += k;
}

/* hex digest of n bytes into out (65 bytes) */
static void sha256_hex(const void *data, size_t n, char out[65]) {
    uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                     0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    const uint8_t *p = data;
    size_t left = n;
    for (; left >= 64; left -= 64, p += 64)
        sha_block(h, p);
    uint8_t tail[128] = {0};
    memcpy(tail, p, left);
    tail[left] = 0x80;
    const size_t tail_len = left < 56 ? 64 : 128;
    const uint64_t bits = (uint64_t)n * 8;
    for (int i = 0; i < 8; i++)
        tail[tail_len - 1 - i] = (uint8_t)(bits >> (8 * i));
    for (size_t off = 0; off < tail_len; off += 64)
        sha_block(h, tail + off);
    for (int i = 0; i < 8; i++)
        snprintf(out + 8 * i, 9, "%08x", h[i]);
}

static void test_sha256(void **state) {
    (void)state;
    char hex[65];
    sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    /* 56 bytes: the length spills into a second padding block */
    sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

/* ---- the inputs ---- */

typedef struct input {
    float *x, *imatrix;
    int64_t rows, n_per_row;
    qr_gguf *g; /* alltypes-iq: x and imatrix point into it */
} input;

static uint64_t xorshift64(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static int trailing_zeros(uint64_t v) {
    int n = 0;
    while (!(v & 1))
        v >>= 1, n++;
    return n;
}

/* mk_kquant_imatrix_refs.py's synth_case, value for value (every value is exact in f32) */
static void make_synth(input *in) {
    enum { ROWS = 6, N = 1536 };
    in->rows = ROWS;
    in->n_per_row = N;
    in->x = malloc(sizeof(float) * ROWS * N);
    in->imatrix = malloc(sizeof(float) * N);
    assert_non_null(in->x);
    assert_non_null(in->imatrix);
    uint64_t s = 0x2545F4914F6CDD1DULL;
    for (int r = 0; r < ROWS; r++)
        for (int j = 0; j < N; j++) {
            const uint64_t v = xorshift64(&s);
            const int m = (int)(v & 0x7FF) - 1024;
            const int t = trailing_zeros(v >> 11 | 0x100);
            float val = ldexpf((float)m, t - 16 + r - 2);
            if (r == 3 && j >= 768 && j < 800) val = 0.0f;
            if (r == 4 && (v >> 40) % 10 != 0) val = 0.0f;
            if (r == 5 && j % 509 == 0) val = v >> 63 ? 300.0f : -300.0f;
            in->x[r * N + j] = val;
        }
    s = 0x9E3779B97F4A7C15ULL;
    for (int j = 0; j < N; j++) {
        const uint64_t v = xorshift64(&s);
        const int k = (int)(v & 0x3FF);
        const int t = trailing_zeros(v >> 10 | 0x400);
        float val = ldexpf((float)(k + 1), t - 12);
        if (j % 7 == 3 || (j >= 256 && j < 272) || (j >= 512 && j < 544) || j >= 1280) val = 0.0f;
        in->imatrix[j] = val;
    }
}

static void load_alltypes(input *in) {
    if (qr_gguf_open(QR_SHARED_DIR "/reference/alltypes-iq.gguf", &in->g) != QR_OK)
        fail_msg("%s", qr_last_error());
    const qr_gguf_tensor *src = qr_gguf_find_tensor(in->g, "source");
    const qr_gguf_tensor *im = qr_gguf_find_tensor(in->g, "imatrix");
    assert_non_null(src);
    assert_non_null(im);
    assert_int_equal(src->type, QR_TYPE_F32);
    assert_int_equal(im->type, QR_TYPE_F32);
    assert_int_equal(im->ne[0], src->ne[0]);
    in->x = (float *)src->data;
    in->imatrix = (float *)im->data;
    in->rows = src->ne[1];
    in->n_per_row = src->ne[0];
}

static void free_input(input *in) {
    if (in->g) {
        qr_gguf_free(in->g);
    } else {
        free(in->x);
        free(in->imatrix);
    }
}

/* ---- the comparison with ggml ---- */

static int type_index(const char *name) {
    for (size_t i = 0; i < N_TYPES; i++)
        if (!strcmp(types[i].name, name)) return (int)i;
    return -1;
}

static void test_against_ggml(void **state) {
    (void)state;
    char *text = qr_test_read_file(REF_FILE, NULL);
    if (!text) fail_msg("cannot read %s", REF_FILE);
    input in = {0};
    char case_name[64] = "";
    /* per case: row digests of the last quantization, keyed by (type, mode) */
    char(*digest)[2][64][65] = calloc(N_TYPES, sizeof *digest);
    assert_non_null(digest);
    int n_lines = 0, n_diff = 0, n_cases = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#') continue;
        char a[64], b[64], c[65], d[65], e[65];
        long long rows, n;
        if (sscanf(line, "case %63s %lld %lld %64s %64s", a, &rows, &n, d, e) == 5) {
            free_input(&in);
            memset(&in, 0, sizeof in);
            if (!strcmp(a, "alltypes-iq"))
                load_alltypes(&in);
            else if (!strcmp(a, "synth"))
                make_synth(&in);
            else
                fail_msg("%s: unknown case %s", REF_FILE, a);
            assert_int_equal(in.rows, rows);
            assert_int_equal(in.n_per_row, n);
            char hex[65];
            sha256_hex(in.x, sizeof(float) * (size_t)(rows * n), hex);
            if (strcmp(hex, d)) fail_msg("case %s: the source is not the one ggml quantized", a);
            sha256_hex(in.imatrix, sizeof(float) * (size_t)n, hex);
            if (strcmp(hex, e)) fail_msg("case %s: the importance is not the one ggml used", a);
            snprintf(case_name, sizeof case_name, "%s", a);
            assert_true(rows <= 64);
            /* Quarrel's bytes for every type, with and without the importance */
            for (size_t t = 0; t < N_TYPES; t++) {
                const size_t row_bytes = qr_type_row_bytes(types[t].type, n);
                uint8_t *q = malloc(row_bytes * (size_t)rows), *q_rows = malloc(row_bytes);
                assert_non_null(q);
                assert_non_null(q_rows);
                for (int mode = 0; mode < 2; mode++) {
                    if (qr_quantize_rows(types[t].type, in.x, q, rows, n,
                                         mode == 0 ? in.imatrix : NULL) != QR_OK)
                        fail_msg("%s %s: %s", a, types[t].name, qr_last_error());
                    for (long long r = 0; r < rows; r++)
                        sha256_hex(q + (size_t)r * row_bytes, row_bytes, digest[t][mode][r]);
                }
                /* without importance: the reference quantizer, row by row */
                for (long long r = 0; r < rows; r++) {
                    assert_int_equal(qr_quantize(types[t].type, in.x + r * n, q_rows, n), QR_OK);
                    char hex_row[65];
                    sha256_hex(q_rows, row_bytes, hex_row);
                    if (strcmp(hex_row, digest[t][1][r]))
                        fail_msg("%s %s row %lld: qr_quantize_rows without importance differs "
                                 "from qr_quantize",
                                 a, types[t].name, r);
                }
                free(q);
                free(q_rows);
            }
            n_cases++;
            continue;
        }
        long long row;
        if (sscanf(line, "%63s %63s %64s %lld %64s", a, b, c, &row, d) != 5 || strcmp(a, case_name))
            fail_msg("%s: bad line '%s'", REF_FILE, line);
        const int t = type_index(b);
        const int mode = !strcmp(c, "imatrix") ? 0 : !strcmp(c, "none") ? 1 : -1;
        if (t < 0 || mode < 0 || row < 0 || row >= in.rows)
            fail_msg("%s: bad line '%s'", REF_FILE, line);
        if (strcmp(digest[t][mode][row], d)) {
            printf("  %s %s %s row %lld: bytes DIFFER from ggml's\n", a, b, c, row);
            n_diff++;
        }
        n_lines++;
    }
    printf("  %d rows of %d cases x %zu types, with and without importance: %d differ\n", n_lines,
           n_cases, N_TYPES, n_diff);
    free_input(&in);
    free(text);
    free(digest);
    assert_int_equal(n_cases, 2);
    assert_int_equal(n_lines, 2 * (12 + 6) * (int)N_TYPES);
    assert_int_equal(n_diff, 0);
}

/* The importance must change the bytes (so the comparison above covers the weighted paths):
 * on the synth case every type differs from its no-importance bytes in most rows. */
static void test_importance_matters(void **state) {
    (void)state;
    input in = {0};
    make_synth(&in);
    for (size_t t = 0; t < N_TYPES; t++) {
        const size_t row_bytes = qr_type_row_bytes(types[t].type, in.n_per_row);
        uint8_t *with = malloc(row_bytes * (size_t)in.rows);
        uint8_t *without = malloc(row_bytes * (size_t)in.rows);
        assert_non_null(with);
        assert_non_null(without);
        assert_int_equal(
            qr_quantize_rows(types[t].type, in.x, with, in.rows, in.n_per_row, in.imatrix), QR_OK);
        assert_int_equal(
            qr_quantize_rows(types[t].type, in.x, without, in.rows, in.n_per_row, NULL), QR_OK);
        int n_differ = 0;
        for (int64_t r = 0; r < in.rows; r++)
            n_differ +=
                memcmp(with + r * row_bytes, without + r * row_bytes, row_bytes) != 0 ? 1 : 0;
        if (n_differ < in.rows - 1)
            fail_msg("%s: the importance changed only %d of %lld rows", types[t].name, n_differ,
                     (long long)in.rows);
        free(with);
        free(without);
    }
    free_input(&in);
}

/* NaN, infinities and the largest floats in a row: every quantizer must return (the bytes are
 * whatever ggml's arithmetic gives; quarrel quantize refuses such weights before this). */
static void test_non_finite_rows(void **state) {
    (void)state;
    enum { N = 512 };
    float x[4 * N], w[N];
    for (int j = 0; j < N; j++) {
        w[j] = 1.0f + (float)(j % 5);
        x[j] = (float)(j % 13) - 6.0f;
        x[N + j] = (float)(j % 7) - 3.0f;
        x[2 * N + j] = j % 3 ? 3.0e38f : -3.0e38f;
        x[3 * N + j] = (float)j;
    }
    x[5] = NAN;
    x[N + 40] = INFINITY;
    x[N + 300] = -INFINITY;
    for (int j = 0; j < N; j += 64)
        x[3 * N + j] = NAN;
    uint8_t q[4 * N];
    for (size_t t = 0; t < N_TYPES; t++) {
        assert_int_equal(qr_quantize_rows(types[t].type, x, q, 4, N, w), QR_OK);
        assert_int_equal(qr_quantize_rows(types[t].type, x, q, 4, N, NULL), QR_OK);
    }
}

static void test_bad_input(void **state) {
    (void)state;
    float x[512] = {0}, w[512] = {0};
    uint8_t q[1024];
    assert_int_equal(qr_quantize_rows(QR_TYPE_Q4_K, x, q, 1, 384, w), QR_ERR_INVALID_ARG);
    assert_non_null(strstr(qr_last_error(), "q4_K block size 256"));
    assert_int_equal(qr_quantize_rows(QR_TYPE_Q5_1, x, q, 1, 48, w), QR_ERR_INVALID_ARG);
    assert_non_null(strstr(qr_last_error(), "q5_1 block size 32"));
    assert_int_equal(qr_quantize_rows(QR_TYPE_Q2_K, x, q, -2, 256, w), QR_ERR_INVALID_ARG);
    assert_non_null(strstr(qr_last_error(), "negative"));
    /* zero rows: nothing written, no error */
    assert_int_equal(qr_quantize_rows(QR_TYPE_Q6_K, x, q, 0, 256, w), QR_OK);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256),
        cmocka_unit_test(test_against_ggml),
        cmocka_unit_test(test_importance_matters),
        cmocka_unit_test(test_non_finite_rows),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
