/* threadpool.c - persistent workers claiming chunks of a task from one 64-bit atomic word.
 *
 * The word packs (generation, chunk count, next chunk). A thread claims a chunk with a
 * compare-and-swap that only succeeds while the word still names the task it read fn/arg for
 * and has unclaimed chunks; the caller publishes the next task only after every chunk of the
 * current one is done, so a successful claim always pairs fn/arg with their own task, and a
 * worker that wakes up late finds nothing to claim and goes back to waiting.
 *
 * Waiting: a worker polls the word with `pause` for a moment, then with sched_yield() (so on
 * an oversubscribed machine it hands its core to whoever can use it instead of fighting the
 * thread it waits for), and after a few milliseconds without work sleeps on a condition
 * variable. */
#include "runtime/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#define CHUNK_BITS 21
#define CHUNK_MASK ((UINT64_C(1) << CHUNK_BITS) - 1)
#define GEN_SHIFT (2 * CHUNK_BITS)
#define PAUSE_ROUNDS 2048 /* polls with `pause` (27 ns each on the EPYC dev box) before yielding */
#define YIELD_NS 3000000 /* then yield for up to 3 ms before sleeping */

struct qr_pool {
    int n_threads;
    pthread_t *threads;
    pthread_mutex_t mutex;
    pthread_cond_t wake;
    _Atomic uint64_t state; /* generation << 42 | n_chunks << 21 | next chunk */
    _Atomic(qr_task_fn) fn;
    _Atomic(void *) arg;
    atomic_llong n_done; /* chunks finished of the current task */
    atomic_int n_sleeping;
    atomic_bool stop;
    uint64_t generation; /* the caller's own count */
};

typedef struct worker_arg {
    qr_pool *pool;
    int ith;
} worker_arg;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static inline uint64_t gen_of(uint64_t s) {
    return s >> GEN_SHIFT;
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Claims and runs chunks of the task named by `s` until none is left. */
static void work(qr_pool *pool, uint64_t s, int ith) {
    const qr_task_fn fn = atomic_load_explicit(&pool->fn, memory_order_relaxed);
    void *const arg = atomic_load_explicit(&pool->arg, memory_order_relaxed);
    const uint64_t gen = gen_of(s);
    for (;;) {
        const uint64_t n = (s >> CHUNK_BITS) & CHUNK_MASK, next = s & CHUNK_MASK;
        if (gen_of(s) != gen || next >= n) return;
        if (!atomic_compare_exchange_weak_explicit(&pool->state, &s, s + 1, memory_order_acquire,
                                                   memory_order_acquire))
            continue; /* s now holds the current word */
        fn(arg, (int64_t)next, ith);
        atomic_fetch_add_explicit(&pool->n_done, 1, memory_order_release);
        s = atomic_load_explicit(&pool->state, memory_order_acquire);
    }
}

/* Waits until the word names a generation other than `seen` (or stop); returns the word. */
static uint64_t wait_for_task(qr_pool *pool, uint64_t seen) {
    uint64_t s;
    for (int i = 0; i < PAUSE_ROUNDS; i++) {
        s = atomic_load_explicit(&pool->state, memory_order_acquire);
        if (gen_of(s) != seen || atomic_load_explicit(&pool->stop, memory_order_relaxed)) return s;
        cpu_relax();
    }
    const int64_t t0 = now_ns();
    for (int i = 0;; i++) {
        s = atomic_load_explicit(&pool->state, memory_order_acquire);
        if (gen_of(s) != seen || atomic_load_explicit(&pool->stop, memory_order_relaxed)) return s;
        sched_yield();
        if ((i & 15) == 15 && now_ns() - t0 > YIELD_NS) break;
    }
    pthread_mutex_lock(&pool->mutex);
    atomic_fetch_add(&pool->n_sleeping, 1); /* seq_cst: pairs with the caller's store of state */
    while (gen_of(s = atomic_load(&pool->state)) == seen && !atomic_load(&pool->stop))
        pthread_cond_wait(&pool->wake, &pool->mutex);
    atomic_fetch_sub(&pool->n_sleeping, 1);
    pthread_mutex_unlock(&pool->mutex);
    return s;
}

static void *worker_main(void *p) {
    worker_arg wa = *(worker_arg *)p;
    free(p);
    qr_pool *pool = wa.pool;
    uint64_t seen = 0;
    for (;;) {
        uint64_t s = wait_for_task(pool, seen);
        if (atomic_load(&pool->stop)) return NULL;
        seen = gen_of(s);
        work(pool, s, wa.ith);
    }
}

qr_status qr_pool_create(int n_threads, qr_pool **out) {
    *out = NULL;
    if (n_threads < 1) n_threads = 1;
    qr_pool *pool = qr_calloc(1, sizeof *pool);
    if (!pool) return QR_ERR_NOMEM;
    pool->n_threads = n_threads;
    pthread_mutex_init(&pool->mutex, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pool->threads = qr_calloc((size_t)n_threads, sizeof *pool->threads);
    if (!pool->threads) {
        qr_pool_free(pool);
        return QR_ERR_NOMEM;
    }
    for (int i = 1; i < n_threads; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (wa) *wa = (worker_arg){pool, i};
        if (!wa || pthread_create(&pool->threads[i], NULL, worker_main, wa) != 0) {
            free(wa);
            pool->n_threads = i; /* join only the started ones */
            qr_pool_free(pool);
            return qr_error(QR_ERR_NOMEM, "cannot start worker thread %d", i);
        }
    }
    *out = pool;
    return QR_OK;
}

void qr_pool_free(qr_pool *pool) {
    if (!pool) return;
    pthread_mutex_lock(&pool->mutex);
    atomic_store(&pool->stop, true);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mutex);
    if (pool->threads)
        for (int i = 1; i < pool->n_threads; i++)
            pthread_join(pool->threads[i], NULL);
    pthread_mutex_destroy(&pool->mutex);
    pthread_cond_destroy(&pool->wake);
    free(pool->threads);
    free(pool);
}

int qr_pool_size(const qr_pool *pool) {
    return pool->n_threads;
}

void qr_pool_run(qr_pool *pool, qr_task_fn fn, void *arg, int64_t n_chunks) {
    if (n_chunks <= 0) return;
    if (pool->n_threads == 1 || n_chunks == 1) {
        for (int64_t c = 0; c < n_chunks; c++)
            fn(arg, c, 0);
        return;
    }
    if (n_chunks > QR_POOL_MAX_CHUNKS) n_chunks = QR_POOL_MAX_CHUNKS; /* programming error */
    /* every chunk of the previous task is done, so nobody can claim with the old fn/arg */
    atomic_store_explicit(&pool->fn, fn, memory_order_relaxed);
    atomic_store_explicit(&pool->arg, arg, memory_order_relaxed);
    atomic_store_explicit(&pool->n_done, 0, memory_order_relaxed);
    pool->generation = (pool->generation + 1) & (UINT64_MAX >> GEN_SHIFT);
    const uint64_t s = pool->generation << GEN_SHIFT | (uint64_t)n_chunks << CHUNK_BITS;
    atomic_store(&pool->state, s); /* seq_cst: pairs with a sleeper's n_sleeping */
    if (atomic_load(&pool->n_sleeping) > 0) {
        pthread_mutex_lock(&pool->mutex);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->mutex);
    }
    work(pool, s, 0);
    /* only chunks that a worker has actually started remain */
    for (int spins = 0; atomic_load_explicit(&pool->n_done, memory_order_acquire) < n_chunks;
         spins++) {
        if (spins < PAUSE_ROUNDS)
            cpu_relax();
        else
            sched_yield();
    }
}
