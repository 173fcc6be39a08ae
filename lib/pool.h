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
/* The same, but no worker is woken for it until mrpc__pool_kick (or
 * mrpc__pool_wait_idle): an I/O thread queues the jobs of one pass this
 * way and kicks once before it polls again.  Only for the pool that the
 * calling loop's prepare hook kicks (a server's loops kick its own). */
int mrpc__pool_submit_later(mrpc__pool *p, mrpc__job *job);
/* Wakes a worker for jobs queued by submit_later, if any and none is on
 * its way.  Cheap when there are none (one atomic load). */
void mrpc__pool_kick(mrpc__pool *p);
/* Waits until no job is queued or running. */
void mrpc__pool_wait_idle(mrpc__pool *p);
/* Waits for the jobs, stops and joins the workers, frees.  NULL no-op. */
void mrpc__pool_del(mrpc__pool *p);

#endif
