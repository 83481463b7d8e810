/* sysinfo.c - what benchmarks need to know about the machine and the process: peak resident
 * memory (getrusage) and the streaming read bandwidth that bounds token generation (a model of
 * B weight bytes per token cannot generate faster than bandwidth / B tokens per second). */
#include "util/util.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>

uint64_t qr_peak_rss_bytes(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0 || ru.ru_maxrss <= 0) return 0;
    return (uint64_t)ru.ru_maxrss * 1024; /* Linux reports kilobytes */
}

/* 16-byte vectors are plain SSE2 on x86-64; where AVX2 is there, 32-byte loads (chosen at run
 * time, compiled with a target attribute so no ISA flags are needed). Four independent
 * accumulators keep several loads in flight. */
typedef uint64_t qr_v2u64 __attribute__((vector_size(16)));

typedef struct read_job {
    const qr_v2u64 *p;
    size_t n; /* 16-byte vectors, a multiple of 8 */
    bool avx2;
    uint64_t sink;
} read_job;

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
typedef uint64_t qr_v4u64 __attribute__((vector_size(32)));

__attribute__((target("avx2"))) static uint64_t read_avx2(const qr_v2u64 *p16, size_t n16) {
    const qr_v4u64 *p = (const qr_v4u64 *)p16;
    const size_t n = n16 / 2;
    qr_v4u64 a0 = {0, 0, 0, 0}, a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i < n; i += 4) {
        a0 += p[i];
        a1 += p[i + 1];
        a2 += p[i + 2];
        a3 += p[i + 3];
    }
    qr_v4u64 s = a0 + a1 + a2 + a3;
    return s[0] + s[1] + s[2] + s[3];
}
#define QR_HAVE_AVX2_READ 1
#endif

static void *read_slice(void *arg) {
    read_job *j = arg;
#ifdef QR_HAVE_AVX2_READ
    if (j->avx2) {
        j->sink = read_avx2(j->p, j->n);
        return NULL;
    }
#endif
    qr_v2u64 a0 = {0, 0}, a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i < j->n; i += 4) {
        a0 += j->p[i];
        a1 += j->p[i + 1];
        a2 += j->p[i + 2];
        a3 += j->p[i + 3];
    }
    qr_v2u64 s = a0 + a1 + a2 + a3;
    j->sink = s[0] + s[1];
    return NULL;
}

qr_status qr_measure_read_bandwidth(size_t bytes, int n_threads, int passes, double *gb_per_s) {
    if (!gb_per_s) return qr_error(QR_ERR_INVALID_ARG, "bandwidth: no output pointer");
    if (n_threads < 1 || n_threads > 1024)
        return qr_error(QR_ERR_INVALID_ARG, "bandwidth: n_threads must be 1..1024, got %d",
                        n_threads);
    if (passes < 1) return qr_error(QR_ERR_INVALID_ARG, "bandwidth: passes must be >= 1");
    const size_t unit = (size_t)n_threads * 8 * sizeof(qr_v2u64);
    if (bytes < unit)
        return qr_error(QR_ERR_INVALID_ARG,
                        "bandwidth: a buffer of %zu bytes is too small for %d "
                        "threads (at least %zu)",
                        bytes, n_threads, unit);
    bytes -= bytes % unit;

    void *buf = NULL;
    const size_t huge = (size_t)2 << 20;
    int err = posix_memalign(&buf, huge, bytes);
    if (err) return qr_error(QR_ERR_NOMEM, "bandwidth: cannot allocate %zu bytes", bytes);
#ifdef MADV_HUGEPAGE
    madvise(buf, bytes - bytes % huge, MADV_HUGEPAGE); /* fewer page faults; a hint only */
#endif
    memset(buf, 1, bytes); /* fault every page in before timing */
    bool avx2 = false;
#ifdef QR_HAVE_AVX2_READ
    avx2 = __builtin_cpu_supports("avx2");
#endif

    read_job *jobs = qr_calloc((size_t)n_threads, sizeof *jobs);
    pthread_t *tids = qr_calloc((size_t)n_threads, sizeof *tids);
    if (!jobs || !tids) {
        free(buf);
        free(jobs);
        free(tids);
        return QR_ERR_NOMEM;
    }
    const size_t per = bytes / (size_t)n_threads / sizeof(qr_v2u64);
    for (int t = 0; t < n_threads; t++) {
        jobs[t].p = (const qr_v2u64 *)buf + (size_t)t * per;
        jobs[t].n = per;
        jobs[t].avx2 = avx2;
    }
    double best = 0;
    qr_status st = QR_OK;
    for (int pass = 0; pass < passes && st == QR_OK; pass++) {
        double t0 = qr_time_now();
        int started = 0;
        for (; started < n_threads - 1; started++) {
            err = pthread_create(&tids[started], NULL, read_slice, &jobs[started]);
            if (err) {
                st = qr_error(QR_ERR_NOMEM, "bandwidth: cannot start a thread: %s", strerror(err));
                break;
            }
        }
        if (st == QR_OK) read_slice(&jobs[n_threads - 1]); /* the caller reads the last slice */
        for (int t = 0; t < started; t++)
            pthread_join(tids[t], NULL);
        double dt = qr_time_now() - t0;
        if (st == QR_OK && dt > 0 && (double)bytes / dt > best) best = (double)bytes / dt;
    }
    volatile uint64_t sink = 0; /* the sums are used, so the loads cannot be optimised away */
    for (int t = 0; t < n_threads; t++)
        sink += jobs[t].sink;
    (void)sink;
    free(buf);
    free(jobs);
    free(tids);
    if (st != QR_OK) return st;
    *gb_per_s = best / 1e9;
    return QR_OK;
}
