/* Worker threads for blocking handlers.  Grows on demand up to a maximum;
 * a job waits for a running handler only when every worker is busy and the
 * maximum is reached (otherwise only for wake-ups).  Thread-safe. */
#ifndef MRPC_LIB_POOL_H
#define MRPC_LIB_POOL_H

#include <minirpc/common.h>

typedef struct mrpc__job mrpc__job;
struct mrpc__job {
  mrpc__job *next;
  void (*fn)(mrpc__job *job);
};

typedef struct mrpc__pool mrpc__pool;

int mrpc__pool_new(int max_workers, const mrpc_allocator *alloc,
                   mrpc__pool **out);
/* Queues job (owned by the caller until fn runs).  Returns 0 or
 * MRPC_ERR_SHUTDOWN (pool stopping). */
int mrpc__pool_submit(mrpc__pool *p, mrpc__job *job);
/* The same, but the job waits on this thread, and no worker is woken for
 * it, until this thread calls mrpc__pool_kick(p) (or mrpc__pool_wait_idle):
 * an I/O thread queues the jobs of one pass this way and hands them over
 * in one lock round before it polls again (and before its loop exits: the
 * loop's prepare hook).  Only for the pool that the calling loop's prepare
 * hook kicks (a server's loops kick its own). */
int mrpc__pool_submit_later(mrpc__pool *p, mrpc__job *job);
/* Queues the jobs this thread submitted later for p and wakes a worker for
 * them unless one is on its way.  Cheap when there are none. */
void mrpc__pool_kick(mrpc__pool *p);
/* Kicks this thread's batch, then waits until no job is queued or running
 * (jobs in other threads' batches are not seen: a loop kicks its own
 * before it polls and as it exits). */
void mrpc__pool_wait_idle(mrpc__pool *p);
/* Waits for the jobs, stops and joins the workers, frees.  NULL no-op. */
void mrpc__pool_del(mrpc__pool *p);

#endif
