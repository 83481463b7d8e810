/* test_util.h - helpers shared by the C tests. */
#ifndef QR_TEST_UTIL_H
#define QR_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>

/* The whole file, NUL-terminated (*len without the NUL; len may be NULL); NULL if it cannot
 * be read. The caller frees. */
static inline char *qr_test_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0)
        buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (!buf) return NULL;
    buf[n] = '\0';
    if (len) *len = (size_t)n;
    return buf;
}

/* Deterministic test data: xorshift64 uniform in [-1, 1), one stream per test program, and rows
 * with a spread of magnitudes (so block scales differ and some blocks are near zero). */
#include <stdint.h>
static uint64_t qr_test_rng_state = 0x9E3779B97F4A7C15ULL;
static inline float qr_test_frand(void) {
    qr_test_rng_state ^= qr_test_rng_state << 13;
    qr_test_rng_state ^= qr_test_rng_state >> 7;
    qr_test_rng_state ^= qr_test_rng_state << 17;
    return (float)((double)(qr_test_rng_state >> 11) / (double)(1ULL << 53) * 2.0 - 1.0);
}
static inline void qr_test_fill_random(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        x[i] = qr_test_frand() * (i % 37 == 0 ? 4.0f : 1.0f) * (i % 97 < 5 ? 0.01f : 1.0f);
}

/* Replays every file of a fuzz corpus folder through `parse` (an exact-size copy of the file,
 * so a read past its end is caught by ASan): parse returns 1 when the input was accepted, 0
 * when it was refused with a message, -1 when it was refused without one. Returns the number
 * of files; *n_ok the accepted ones; a refusal without a message or an unreadable folder or
 * file is -1 with the file's name in bad (at least 256 bytes). */
#include <dirent.h>
#include <string.h>
static inline int qr_test_replay_corpus(const char *dir, int (*parse)(const void *, size_t),
                                        int *n_ok, char *bad) {
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(bad, 256, "%s", dir);
        return -1;
    }
    int n_files = 0;
    *n_ok = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        size_t n = 0;
        char *text = qr_test_read_file(path, &n);
        unsigned char *buf = text ? malloc(n ? n : 1) : NULL;
        int r = -1;
        if (buf) {
            memcpy(buf, text, n);
            r = parse(buf, n);
        }
        free(buf);
        free(text);
        if (r < 0) {
            snprintf(bad, 256, "%s", e->d_name);
            closedir(d);
            return -1;
        }
        *n_ok += r;
        n_files++;
    }
    closedir(d);
    return n_files;
}

#endif
