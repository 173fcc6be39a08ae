#include "pool.h"

#include "alloc.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <semaphore.h>

/* Jobs go through one FIFO queue; at most one worker is being woken at a
 * time.  A woken worker that takes a job and still sees jobs queued wakes
 * the next one (or starts one), so a queued job never waits behind a
 * running handler, only behind wake-ups; and a burst of N jobs costs a
 * wake-up per worker that takes part, not one per job (running workers
 * take further jobs without sleeping).  Wake-ups happen after unlocking,
 * so the worker does not wake into a held lock.  Idle workers are a stack:
 * the one that ran last (warm) runs next. */
typedef struct worker {
  struct worker *next;      /* every worker */
  struct worker *next_idle; /* in the idle stack */
  struct mrpc__pool *pool;
  pthread_t thread;
  int waking; /* posted or started, has not looked at the queue yet; mu */
  sem_t wake;
} worker;

struct mrpc__pool {
  const mrpc_allocator *alloc;
  pthread_mutex_t mu;
  pthread_cond_t idle_cv;
  mrpc__job *head, *tail; /* jobs no worker has taken */
  worker *workers;
  worker *idle;
  int waking;        /* workers with waking set: 0 or 1 */
  int max, n;
  atomic_int stopping; /* set under mu; submit_later reads it without */
  int busy;          /* jobs running (mrpc__pool_wait_idle) */
  int idle_waiters;  /* threads in mrpc__pool_wait_idle */
};

/* Jobs submit_later kept on this thread, handed to their pool in one lock
 * round by the kick before the thread's loop polls (or exits). */
static _Thread_local struct {
  mrpc__pool *pool;
  mrpc__job *head, *tail;
} tl_batch;

static void *worker_main(void *arg);

/* Under mu: picks the worker to wake for the queued jobs: an idle one, or
 * a new one while under the maximum (started here, nothing to post).
 * Returns the idle worker to sem_post after unlocking, or NULL. */
static worker *wake_one(mrpc__pool *p) {
  worker *w = p->idle;
  if (w) {
    p->idle = w->next_idle;
    w->waking = 1;
    p->waking++;
    return w;
  }
  if (p->n >= p->max) return NULL; /* every worker busy: jobs wait */
  w = mrpc__calloc(p->alloc, 1, sizeof *w);
  if (w && sem_init(&w->wake, 0, 0) == 0) {
    w->pool = p;
    w->waking = 1;
    if (pthread_create(&w->thread, NULL, worker_main, w) == 0) {
      w->next = p->workers;
      p->workers = w;
      p->n++;
      p->waking++;
      return NULL;
    }
    sem_destroy(&w->wake);
  }
  /* Out of threads: running workers still drain the queue, and a later
   * submit tries again. */
  mrpc__free(p->alloc, w);
  return NULL;
}

static void *worker_main(void *arg) {
  worker *w = arg;
  mrpc__pool *p = w->pool;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    mrpc__job *j = p->head;
    worker *next = NULL;
    if (w->waking) {
      w->waking = 0;
      p->waking--;
      /* Wake the next worker for what this one leaves in the queue. */
      if (j && j->next && !p->waking) next = wake_one(p);
    }
    if (!j) {
      if (p->stopping) break;
      w->next_idle = p->idle;
      p->idle = w;
      pthread_mutex_unlock(&p->mu);
      while (sem_wait(&w->wake) != 0 && errno == EINTR) {
      }
      pthread_mutex_lock(&p->mu);
      continue;
    }
    p->head = j->next;
    if (!p->head) p->tail = NULL;
    p->busy++;
    pthread_mutex_unlock(&p->mu);
    if (next) sem_post(&next->wake);
    j->fn(j);
    pthread_mutex_lock(&p->mu);
    p->busy--;
    if (!p->busy && !p->head && p->idle_waiters)
      pthread_cond_broadcast(&p->idle_cv);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

int mrpc__pool_new(int max_workers, const mrpc_allocator *alloc,
                   mrpc__pool **out) {
  mrpc__pool *p = mrpc__calloc(alloc, 1, sizeof *p);
  if (!p) return MRPC_ERR_NOMEM;
  p->alloc = alloc;
  p->max = max_workers > 0 ? max_workers : 256;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->idle_cv, NULL);
  *out = p;
  return 0;
}

/* Queues the jobs head..tail and wakes a worker for them unless one is on
 * its way (it takes them or wakes the next; posted after unlocking).
 * 0 or MRPC_ERR_SHUTDOWN. */
static int submit(mrpc__pool *p, mrpc__job *head, mrpc__job *tail) {
  pthread_mutex_lock(&p->mu);
  if (p->stopping) {
    pthread_mutex_unlock(&p->mu);
    return MRPC_ERR_SHUTDOWN;
  }
  if (p->tail)
    p->tail->next = head;
  else
    p->head = head;
  p->tail = tail;
  worker *w = !p->waking ? wake_one(p) : NULL;
  pthread_mutex_unlock(&p->mu);
  if (w) sem_post(&w->wake);
  return 0;
}

int mrpc__pool_submit(mrpc__pool *p, mrpc__job *job) {
  job->next = NULL;
  return submit(p, job, job);
}

int mrpc__pool_submit_later(mrpc__pool *p, mrpc__job *job) {
  if (atomic_load_explicit(&p->stopping, memory_order_relaxed))
    return MRPC_ERR_SHUTDOWN;
  if (tl_batch.pool != p) {
    mrpc__pool_kick(tl_batch.pool);
    tl_batch.pool = p;
  }
  job->next = NULL;
  if (tl_batch.tail)
    tl_batch.tail->next = job;
  else
    tl_batch.head = job;
  tl_batch.tail = job;
  return 0;
}

void mrpc__pool_kick(mrpc__pool *p) {
  if (!p || tl_batch.pool != p || !tl_batch.head) return;
  mrpc__job *head = tl_batch.head, *tail = tl_batch.tail;
  tl_batch.head = tl_batch.tail = NULL;
  /* Not refused: the pool stops only after its loops have exited, and a
   * loop kicks on its way out. */
  (void)submit(p, head, tail);
}

void mrpc__pool_wait_idle(mrpc__pool *p) {
  mrpc__pool_kick(p);
  pthread_mutex_lock(&p->mu);
  p->idle_waiters++;
  while (p->busy || p->head) pthread_cond_wait(&p->idle_cv, &p->mu);
  p->idle_waiters--;
  pthread_mutex_unlock(&p->mu);
}

void mrpc__pool_del(mrpc__pool *p) {
  if (!p) return;
  mrpc__pool_wait_idle(p);
  pthread_mutex_lock(&p->mu);
  atomic_store(&p->stopping, 1);
  while (p->idle) {
    worker *w = p->idle;
    p->idle = w->next_idle;
    sem_post(&w->wake);
  }
  pthread_mutex_unlock(&p->mu);
  for (worker *w = p->workers; w;) {
    worker *n = w->next;
    pthread_join(w->thread, NULL);
    sem_destroy(&w->wake);
    mrpc__free(p->alloc, w);
    w = n;
  }
  pthread_cond_destroy(&p->idle_cv);
  pthread_mutex_destroy(&p->mu);
  mrpc__free(p->alloc, p);
}
