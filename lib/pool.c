#include "pool.h"

#include "alloc.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>

/* A job goes straight to an idle worker when there is one: the submitter
 * hands it over under the lock and wakes that worker alone, after
 * unlocking, so the worker does not wake into a held lock.  Idle workers
 * are a stack: the one that ran last (warm) runs next. */
typedef struct worker {
  struct worker *next;      /* every worker */
  struct worker *next_idle; /* in the idle stack */
  struct mrpc__pool *pool;
  pthread_t thread;
  mrpc__job *job; /* handed over by submit, under mu */
  sem_t wake;
} worker;

struct mrpc__pool {
  const mrpc_allocator *alloc;
  pthread_mutex_t mu;
  pthread_cond_t idle_cv;
  mrpc__job *head, *tail; /* jobs no worker has taken */
  worker *workers;
  worker *idle;
  /* busy: jobs handed over or running (mrpc__pool_wait_idle) */
  int max, n, busy, stopping;
};

static void *worker_main(void *arg) {
  worker *w = arg;
  mrpc__pool *p = w->pool;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    mrpc__job *j = w->job;
    w->job = NULL;
    if (!j && p->head) {
      j = p->head;
      p->head = j->next;
      if (!p->head) p->tail = NULL;
      p->busy++;
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
    pthread_mutex_unlock(&p->mu);
    j->fn(j);
    pthread_mutex_lock(&p->mu);
    p->busy--;
    if (!p->busy && !p->head) pthread_cond_broadcast(&p->idle_cv);
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

int mrpc__pool_submit(mrpc__pool *p, mrpc__job *job) {
  pthread_mutex_lock(&p->mu);
  if (p->stopping) {
    pthread_mutex_unlock(&p->mu);
    return MRPC_ERR_SHUTDOWN;
  }
  worker *w = p->idle;
  if (w) {
    p->idle = w->next_idle;
    w->job = job;
    p->busy++;
    pthread_mutex_unlock(&p->mu);
    sem_post(&w->wake);
    return 0;
  }
  job->next = NULL;
  if (p->tail)
    p->tail->next = job;
  else
    p->head = job;
  p->tail = job;
  /* Every worker is busy: one more, up to the maximum. */
  if (p->n < p->max) {
    w = mrpc__calloc(p->alloc, 1, sizeof *w);
    if (w && sem_init(&w->wake, 0, 0) == 0) {
      w->pool = p;
      if (pthread_create(&w->thread, NULL, worker_main, w) == 0) {
        w->next = p->workers;
        p->workers = w;
        p->n++;
        w = NULL;
      } else {
        sem_destroy(&w->wake);
      }
    }
    mrpc__free(p->alloc, w);
  }
  pthread_mutex_unlock(&p->mu);
  return 0;
}

void mrpc__pool_wait_idle(mrpc__pool *p) {
  pthread_mutex_lock(&p->mu);
  while (p->busy || p->head) pthread_cond_wait(&p->idle_cv, &p->mu);
  pthread_mutex_unlock(&p->mu);
}

void mrpc__pool_del(mrpc__pool *p) {
  if (!p) return;
  mrpc__pool_wait_idle(p);
  pthread_mutex_lock(&p->mu);
  p->stopping = 1;
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
