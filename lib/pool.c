#include "pool.h"

#include "alloc.h"

#include <pthread.h>

typedef struct worker {
  struct worker *next;
  pthread_t thread;
} worker;

struct mrpc__pool {
  const mrpc_allocator *alloc;
  pthread_mutex_t mu;
  pthread_cond_t work, idle_cv;
  mrpc__job *head, *tail;
  worker *workers;
  int max, n, idle, busy, stopping;
};

static void *worker_main(void *arg) {
  mrpc__pool *p = arg;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (!p->head && !p->stopping) {
      p->idle++;
      pthread_cond_wait(&p->work, &p->mu);
      p->idle--;
    }
    if (!p->head) break;
    mrpc__job *j = p->head;
    p->head = j->next;
    if (!p->head) p->tail = NULL;
    p->busy++;
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
  pthread_cond_init(&p->work, NULL);
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
  job->next = NULL;
  if (p->tail)
    p->tail->next = job;
  else
    p->head = job;
  p->tail = job;
  /* Count queued jobs against idle workers: spawn when they outnumber. */
  int queued = 0;
  for (mrpc__job *j = p->head; j && queued <= p->idle; j = j->next) queued++;
  if (queued > p->idle && p->n < p->max) {
    worker *w = mrpc__malloc(p->alloc, sizeof *w);
    if (w && pthread_create(&w->thread, NULL, worker_main, p) == 0) {
      w->next = p->workers;
      p->workers = w;
      p->n++;
    } else {
      mrpc__free(p->alloc, w);
    }
  }
  pthread_cond_signal(&p->work);
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
  pthread_cond_broadcast(&p->work);
  pthread_mutex_unlock(&p->mu);
  for (worker *w = p->workers; w;) {
    worker *n = w->next;
    pthread_join(w->thread, NULL);
    mrpc__free(p->alloc, w);
    w = n;
  }
  pthread_cond_destroy(&p->work);
  pthread_cond_destroy(&p->idle_cv);
  pthread_mutex_destroy(&p->mu);
  mrpc__free(p->alloc, p);
}
