/* threadpool.h - one pool of worker threads per context. qr_pool_run() splits a task into
 * chunks that the caller (thread 0) and the workers claim one at a time from a shared counter,
 * and returns when every chunk is done. Chunks are claimed, not assigned: a worker that is
 * asleep or descheduled (an oversubscribed machine) simply takes none, and the caller never
 * waits for a thread that has not started one. Workers spin briefly between tasks (yielding the
 * core while they do), then sleep. */
#ifndef QR_THREADPOOL_H
#define QR_THREADPOOL_H

#include "util/util.h"

typedef struct qr_pool qr_pool;
/* Runs chunk `chunk` of a task on thread `ith` (0 <= ith < qr_pool_size(); use it to pick
 * per-thread scratch). */
typedef void (*qr_task_fn)(void *arg, int64_t chunk, int ith);

/* The most chunks one task may have. */
#define QR_POOL_MAX_CHUNKS ((int64_t)1 << 20)

qr_status qr_pool_create(int n_threads, qr_pool **out);
void qr_pool_free(qr_pool *pool);
int qr_pool_size(const qr_pool *pool);
/* Runs fn for every chunk in [0, n_chunks), n_chunks <= QR_POOL_MAX_CHUNKS; one chunk runs on
 * the caller without waking anybody. */
void qr_pool_run(qr_pool *pool, qr_task_fn fn, void *arg, int64_t n_chunks);

#endif
