/* threadpool.c - persistent workers woken by a generation counter. A worker spins on the
 * counter for a short while after each task, so consecutive matmuls of one decode step do not
 * pay for a sleep/wake-up; after that it sleeps on a condition variable. */
#include "runtime/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#define SPIN_ROUNDS 20000

struct qr_pool {
    int n_threads;
    pthread_t *threads;
    pthread_mutex_t mutex;
    pthread_cond_t wake;
    atomic_uint generation; /* bumped for each task */
    atomic_int n_done;      /* workers finished with the current task */
    atomic_bool stop;
    atomic_int n_sleeping;
    qr_task_fn fn;
    void *arg;
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

static void *worker_main(void *p) {
    worker_arg wa = *(worker_arg *)p;
    free(p);
    qr_pool *pool = wa.pool;
    unsigned seen = 0;
    for (;;) {
        unsigned gen;
        int spins = 0;
        while ((gen = atomic_load_explicit(&pool->generation, memory_order_acquire)) == seen &&
               !atomic_load(&pool->stop)) {
            if (++spins < SPIN_ROUNDS) {
                cpu_relax();
                continue;
            }
            pthread_mutex_lock(&pool->mutex);
            atomic_fetch_add(&pool->n_sleeping, 1);
            while (atomic_load(&pool->generation) == seen && !atomic_load(&pool->stop))
                pthread_cond_wait(&pool->wake, &pool->mutex);
            atomic_fetch_sub(&pool->n_sleeping, 1);
            pthread_mutex_unlock(&pool->mutex);
            spins = 0;
        }
        if (atomic_load(&pool->stop)) return NULL;
        seen = gen;
        pool->fn(pool->arg, wa.ith, pool->n_threads);
        atomic_fetch_add_explicit(&pool->n_done, 1, memory_order_release);
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
        for (int i = 1; i < pool->n_threads; i++) pthread_join(pool->threads[i], NULL);
    pthread_mutex_destroy(&pool->mutex);
    pthread_cond_destroy(&pool->wake);
    free(pool->threads);
    free(pool);
}

int qr_pool_size(const qr_pool *pool) {
    return pool->n_threads;
}

void qr_pool_run(qr_pool *pool, qr_task_fn fn, void *arg) {
    if (pool->n_threads == 1) {
        fn(arg, 0, 1);
        return;
    }
    pool->fn = fn;
    pool->arg = arg;
    atomic_store(&pool->n_done, 0);
    atomic_fetch_add(&pool->generation, 1); /* seq_cst: pairs with n_sleeping */
    if (atomic_load(&pool->n_sleeping) > 0) {
        pthread_mutex_lock(&pool->mutex);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->mutex);
    }
    fn(arg, 0, pool->n_threads);
    int spins = 0;
    while (atomic_load_explicit(&pool->n_done, memory_order_acquire) < pool->n_threads - 1) {
        if (++spins < SPIN_ROUNDS)
            cpu_relax();
        else
            sched_yield();
    }
}
