/* Unit tests for the worker pool (lib/pool.c): every job runs; a queued
 * job never waits behind a handler that blocks while the pool may still
 * grow, not even in a burst submitted faster than workers wake; past
 * max_workers jobs wait for a free worker; jobs queued for later wait for
 * the kick; wait_idle waits for them all.
 * Waits are bounded (a broken pool fails, it does not hang the suite). */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "loop.h"
#include "pool.h"

#define WAIT_S 20 /* bound of every wait: a hang guard, not a timing check */

typedef struct gate {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int running, done, open;
} gate;

typedef struct gjob {
  mrpc__job job;
  gate *g;
  int block; /* wait for the gate to open */
} gjob;

static void gate_init(gate *g) {
  pthread_mutex_init(&g->mu, NULL);
  pthread_cond_init(&g->cv, NULL);
  g->running = g->done = g->open = 0;
}

static void gate_destroy(gate *g) {
  pthread_cond_destroy(&g->cv);
  pthread_mutex_destroy(&g->mu);
}

/* Under g->mu: waits until *v >= want or WAIT_S pass; returns *v. */
static int wait_for(gate *g, const int *v, int want) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += WAIT_S;
  while (*v < want)
    if (pthread_cond_timedwait(&g->cv, &g->mu, &until) == ETIMEDOUT) break;
  return *v;
}

static void job_fn(mrpc__job *j) {
  gjob *gj = (gjob *)j;
  gate *g = gj->g;
  pthread_mutex_lock(&g->mu);
  g->running++;
  pthread_cond_broadcast(&g->cv);
  if (gj->block) wait_for(g, &g->open, 1);
  g->running--;
  g->done++;
  pthread_cond_broadcast(&g->cv);
  pthread_mutex_unlock(&g->mu);
}

static void open_gate(gate *g) {
  pthread_mutex_lock(&g->mu);
  g->open = 1;
  pthread_cond_broadcast(&g->cv);
  pthread_mutex_unlock(&g->mu);
}

static void submit_all(mrpc__pool *p, gjob *jobs, int n, gate *g, int block) {
  for (int i = 0; i < n; i++) {
    jobs[i] = (gjob){.job = {.fn = job_fn}, .g = g, .block = block};
    assert_int_equal(mrpc__pool_submit(p, &jobs[i].job), 0);
  }
}

/* Many short jobs from a burst and from a trickle: each runs once. */
static void test_every_job_runs(void **state) {
  (void)state;
  enum { N = 2000 };
  static gjob jobs[N];
  gate g;
  gate_init(&g);
  mrpc__pool *p;
  assert_int_equal(mrpc__pool_new(8, NULL, &p), 0);
  submit_all(p, jobs, N / 2, &g, 0);
  for (int i = N / 2; i < N; i++) {
    jobs[i] = (gjob){.job = {.fn = job_fn}, .g = &g};
    assert_int_equal(mrpc__pool_submit(p, &jobs[i].job), 0);
    if (i % 100 == 0) mrpc__pool_wait_idle(p);
  }
  mrpc__pool_wait_idle(p);
  assert_int_equal(g.done, N);
  mrpc__pool_del(p);
  gate_destroy(&g);
}

/* K jobs that block until all K run at once: each must get its own worker
 * although they were submitted in one burst, while at most one worker is
 * being woken at a time. */
static void test_burst_of_blocking_jobs_all_run(void **state) {
  (void)state;
  enum { K = 40 };
  gjob jobs[K];
  gate g;
  gate_init(&g);
  mrpc__pool *p;
  assert_int_equal(mrpc__pool_new(64, NULL, &p), 0);
  submit_all(p, jobs, K, &g, 1);
  pthread_mutex_lock(&g.mu);
  int seen = wait_for(&g, &g.running, K);
  pthread_mutex_unlock(&g.mu);
  open_gate(&g);
  mrpc__pool_wait_idle(p);
  assert_int_equal(seen, K);
  assert_int_equal(g.done, K);
  mrpc__pool_del(p);
  gate_destroy(&g);
}

/* A job submitted while the only running worker blocks (and the previous
 * workers went idle) is run by another worker. */
static void test_job_does_not_wait_behind_blocked_worker(void **state) {
  (void)state;
  gjob blocker, quick[3];
  gate gb, gq;
  gate_init(&gb);
  gate_init(&gq);
  mrpc__pool *p;
  assert_int_equal(mrpc__pool_new(4, NULL, &p), 0);
  submit_all(p, quick, 3, &gq, 0); /* workers exist and go idle */
  pthread_mutex_lock(&gq.mu);
  wait_for(&gq, &gq.done, 3);
  pthread_mutex_unlock(&gq.mu);
  submit_all(p, &blocker, 1, &gb, 1);
  pthread_mutex_lock(&gb.mu);
  int blocked = wait_for(&gb, &gb.running, 1);
  pthread_mutex_unlock(&gb.mu);
  gjob after;
  gate ga;
  gate_init(&ga);
  submit_all(p, &after, 1, &ga, 0);
  pthread_mutex_lock(&ga.mu);
  int done = wait_for(&ga, &ga.done, 1);
  pthread_mutex_unlock(&ga.mu);
  open_gate(&gb);
  mrpc__pool_wait_idle(p);
  assert_int_equal(blocked, 1);
  assert_int_equal(done, 1);
  mrpc__pool_del(p);
  gate_destroy(&ga);
  gate_destroy(&gb);
  gate_destroy(&gq);
}

/* With max_workers busy, a further job waits in the queue and runs when a
 * worker frees. */
static void test_past_max_jobs_queue(void **state) {
  (void)state;
  gjob blockers[2], extra;
  gate gb, ge;
  gate_init(&gb);
  gate_init(&ge);
  mrpc__pool *p;
  assert_int_equal(mrpc__pool_new(2, NULL, &p), 0);
  submit_all(p, blockers, 2, &gb, 1);
  pthread_mutex_lock(&gb.mu);
  int both = wait_for(&gb, &gb.running, 2);
  pthread_mutex_unlock(&gb.mu);
  submit_all(p, &extra, 1, &ge, 0);
  pthread_mutex_lock(&ge.mu);
  int early = ge.done; /* no worker is free: it cannot have run */
  pthread_mutex_unlock(&ge.mu);
  open_gate(&gb);
  mrpc__pool_wait_idle(p);
  assert_int_equal(both, 2);
  assert_int_equal(early, 0);
  assert_int_equal(ge.done, 1);
  assert_int_equal(gb.done, 2);
  mrpc__pool_del(p);
  gate_destroy(&ge);
  gate_destroy(&gb);
}

/* Jobs queued with submit_later wait for the kick (no worker is on its
 * way before it), then one kick starts them all, blocking ones included. */
static void test_submit_later_waits_for_kick(void **state) {
  (void)state;
  enum { K = 12 };
  gjob jobs[K];
  gate g;
  gate_init(&g);
  mrpc__pool *p;
  assert_int_equal(mrpc__pool_new(32, NULL, &p), 0);
  for (int i = 0; i < K; i++) {
    jobs[i] = (gjob){.job = {.fn = job_fn}, .g = &g, .block = 1};
    assert_int_equal(mrpc__pool_submit_later(p, &jobs[i].job), 0);
  }
  struct timespec pause = {0, 20 * 1000 * 1000};
  nanosleep(&pause, NULL); /* room for a wrong wake-up to show */
  pthread_mutex_lock(&g.mu);
  int before = g.running + g.done;
  pthread_mutex_unlock(&g.mu);
  mrpc__pool_kick(p);
  mrpc__pool_kick(p); /* a second kick finds nothing to do */
  pthread_mutex_lock(&g.mu);
  int seen = wait_for(&g, &g.running, K);
  pthread_mutex_unlock(&g.mu);
  open_gate(&g);
  mrpc__pool_wait_idle(p);
  assert_int_equal(before, 0);
  assert_int_equal(seen, K);
  assert_int_equal(g.done, K);
  mrpc__pool_del(p);
  gate_destroy(&g);
}

/* wait_idle does the kick itself: nothing queued is left behind. */
static void test_wait_idle_kicks(void **state) {
  (void)state;
  gjob j;
  gate g;
  gate_init(&g);
  mrpc__pool *p;
  assert_int_equal(mrpc__pool_new(2, NULL, &p), 0);
  j = (gjob){.job = {.fn = job_fn}, .g = &g};
  assert_int_equal(mrpc__pool_submit_later(p, &j.job), 0);
  mrpc__pool_wait_idle(p);
  assert_int_equal(g.done, 1);
  mrpc__pool_del(p);
  gate_destroy(&g);
}

/* A job an I/O thread queued for later in its loop's last pass is handed
 * to the pool as the loop exits (the prepare hook runs once more): it is
 * not left in the thread's batch, where no other thread could see it. */
typedef struct last_pass {
  mrpc__task task; /* first: the task is the struct */
  mrpc__loop *loop;
  mrpc__pool *pool;
  gjob job;
} last_pass;

static void kick(void *pool) { mrpc__pool_kick(pool); }

static void submit_then_stop(mrpc__task *t, int cancelled) {
  last_pass *lp = (last_pass *)t;
  if (cancelled) return;
  assert_int_equal(mrpc__pool_submit_later(lp->pool, &lp->job.job), 0);
  mrpc__loop_stop(lp->loop);
}

static void *run_loop(void *l) {
  mrpc__loop_run(l);
  return NULL;
}

static void test_loop_exit_hands_over_its_batch(void **state) {
  (void)state;
  gate g;
  gate_init(&g);
  last_pass lp = {.task = {.fn = submit_then_stop}};
  lp.job = (gjob){.job = {.fn = job_fn}, .g = &g};
  assert_int_equal(mrpc__pool_new(2, NULL, &lp.pool), 0);
  assert_int_equal(mrpc__loop_new(NULL, &lp.loop), 0);
  mrpc__loop_set_prepare(lp.loop, kick, lp.pool);
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, run_loop, lp.loop), 0);
  mrpc__loop_post(lp.loop, &lp.task);
  pthread_join(th, NULL);
  pthread_mutex_lock(&g.mu);
  int done = wait_for(&g, &g.done, 1);
  pthread_mutex_unlock(&g.mu);
  assert_int_equal(done, 1);
  mrpc__pool_del(lp.pool);
  mrpc__loop_del(lp.loop);
  gate_destroy(&g);
}

static void test_del_with_no_jobs_and_null(void **state) {
  (void)state;
  mrpc__pool *p;
  assert_int_equal(mrpc__pool_new(0, NULL, &p), 0);
  mrpc__pool_wait_idle(p);
  mrpc__pool_del(p);
  mrpc__pool_del(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_job_runs),
      cmocka_unit_test(test_burst_of_blocking_jobs_all_run),
      cmocka_unit_test(test_job_does_not_wait_behind_blocked_worker),
      cmocka_unit_test(test_past_max_jobs_queue),
      cmocka_unit_test(test_submit_later_waits_for_kick),
      cmocka_unit_test(test_wait_idle_kicks),
      cmocka_unit_test(test_loop_exit_hands_over_its_batch),
      cmocka_unit_test(test_del_with_no_jobs_and_null),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
