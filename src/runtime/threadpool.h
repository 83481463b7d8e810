/* threadpool.h - one pool of worker threads per context. qr_pool_run() runs a task on every
 * thread (the caller is thread 0) and returns when all are done; workers spin briefly between
 * tasks (decode steps come back-to-back) and then sleep. */
#ifndef QR_THREADPOOL_H
#define QR_THREADPOOL_H

#include "util/util.h"

typedef struct qr_pool qr_pool;
typedef void (*qr_task_fn)(void *arg, int ith, int nth);

qr_status qr_pool_create(int n_threads, qr_pool **out);
void qr_pool_free(qr_pool *pool);
int qr_pool_size(const qr_pool *pool);
void qr_pool_run(qr_pool *pool, qr_task_fn fn, void *arg);

#endif
