/* test_threadpool.c - the pool runs every chunk exactly once, on a valid thread index, for
 * any thread and chunk count; back-to-back tasks (workers arriving late must not run a chunk
 * of the wrong task), tasks after the workers fell asleep, and a pool torn down while idle. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stdatomic.h>
#include <time.h>

#include <cmocka.h>

#include "runtime/threadpool.h"

typedef struct task {
    int id; /* which task this is: a chunk run with another task's arg would see a wrong id */
    int expected_id;
    int n_threads;
    atomic_int *hits;
    atomic_int bad;
} task;

static void count_chunk(void *arg, int64_t chunk, int ith) {
    task *t = arg;
    if (t->id != t->expected_id || ith < 0 || ith >= t->n_threads) atomic_fetch_add(&t->bad, 1);
    atomic_fetch_add(&t->hits[chunk], 1);
}

static void run_and_check(qr_pool *pool, int n_threads, int64_t n_chunks, int id) {
    atomic_int *hits = calloc((size_t)(n_chunks > 0 ? n_chunks : 1), sizeof *hits);
    assert_non_null(hits);
    task t = {.id = id, .expected_id = id, .n_threads = n_threads, .hits = hits};
    qr_pool_run(pool, count_chunk, &t, n_chunks);
    assert_int_equal(atomic_load(&t.bad), 0);
    for (int64_t c = 0; c < n_chunks; c++)
        if (atomic_load(&hits[c]) != 1)
            fail_msg("chunk %lld of %lld ran %d times", (long long)c, (long long)n_chunks,
                     atomic_load(&hits[c]));
    free(hits);
}

static void test_every_chunk_once(void **state) {
    (void)state;
    static const int64_t chunks[] = {0, 1, 2, 3, 7, 64, 1000};
    for (int nth = 1; nth <= 4; nth++) {
        qr_pool *pool;
        assert_int_equal(qr_pool_create(nth, &pool), QR_OK);
        assert_int_equal(qr_pool_size(pool), nth);
        int id = 0;
        for (int rep = 0; rep < 300; rep++)
            for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++)
                run_and_check(pool, nth, chunks[i], ++id);
        qr_pool_free(pool);
    }
}

static void test_after_sleep(void **state) {
    (void)state;
    qr_pool *pool;
    assert_int_equal(qr_pool_create(3, &pool), QR_OK);
    for (int rep = 0; rep < 3; rep++) {
        struct timespec ts = {0, 20 * 1000 * 1000}; /* past the workers' spin: they sleep */
        nanosleep(&ts, NULL);
        run_and_check(pool, 3, 50, rep + 1);
    }
    qr_pool_free(pool);
}

static void test_create_clamps_and_free_null(void **state) {
    (void)state;
    qr_pool *pool;
    assert_int_equal(qr_pool_create(0, &pool), QR_OK);
    assert_int_equal(qr_pool_size(pool), 1);
    run_and_check(pool, 1, 5, 1);
    qr_pool_free(pool);
    qr_pool_free(NULL);
    assert_int_equal(qr_pool_create(2, &pool), QR_OK); /* freed without ever running a task */
    qr_pool_free(pool);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_chunk_once),
        cmocka_unit_test(test_after_sleep),
        cmocka_unit_test(test_create_clamps_and_free_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
