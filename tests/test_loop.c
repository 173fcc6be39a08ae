/* Unit tests for the loop's cross-thread task queue (mrpc__loop_post,
 * lib/loop.c, a lock-free stack the loop takes whole): tasks posted from
 * several threads at once all run, on the loop thread, each thread's in the
 * order it posted them; tasks still queued when the loop is deleted are
 * handed back cancelled. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "loop.h"

enum { POSTERS = 4, PER_POSTER = 20000 };

typedef struct seq_task {
  mrpc__task task; /* first: the task is the struct */
  int poster, seq;
} seq_task;

static seq_task g_tasks[POSTERS][PER_POSTER];
static int g_next[POSTERS]; /* loop thread only */
static int g_ran, g_out_of_order, g_off_thread, g_cancelled;
static mrpc__loop *g_loop;

static void seq_fn(mrpc__task *t, int cancelled) {
  seq_task *st = (seq_task *)t;
  if (st->seq != g_next[st->poster]) g_out_of_order++;
  g_next[st->poster] = st->seq + 1;
  if (cancelled) {
    g_cancelled++;
    return;
  }
  if (!mrpc__loop_on_thread(g_loop)) g_off_thread++;
  if (++g_ran == POSTERS * PER_POSTER) mrpc__loop_stop(g_loop);
}

static void *poster(void *arg) {
  int p = (int)(intptr_t)arg;
  for (int i = 0; i < PER_POSTER; i++) {
    g_tasks[p][i] = (seq_task){.task = {.fn = seq_fn}, .poster = p, .seq = i};
    mrpc__loop_post(g_loop, &g_tasks[p][i].task);
  }
  return NULL;
}

static void *run_loop(void *l) {
  mrpc__loop_run(l);
  return NULL;
}

static void test_posts_from_many_threads_all_run_in_each_threads_order(
    void **state) {
  (void)state;
  assert_int_equal(mrpc__loop_new(NULL, &g_loop), 0);
  pthread_t lt, pt[POSTERS];
  assert_int_equal(pthread_create(&lt, NULL, run_loop, g_loop), 0);
  for (int p = 0; p < POSTERS; p++)
    assert_int_equal(
        pthread_create(&pt[p], NULL, poster, (void *)(intptr_t)p), 0);
  for (int p = 0; p < POSTERS; p++) pthread_join(pt[p], NULL);
  pthread_join(lt, NULL); /* the last task stops the loop */
  assert_int_equal(g_ran, POSTERS * PER_POSTER);
  assert_int_equal(g_out_of_order, 0);
  assert_int_equal(g_off_thread, 0);
  for (int p = 0; p < POSTERS; p++) assert_int_equal(g_next[p], PER_POSTER);
  mrpc__loop_del(g_loop);
  assert_int_equal(g_cancelled, 0);
}

static void test_tasks_left_at_delete_are_cancelled_in_order(void **state) {
  (void)state;
  assert_int_equal(mrpc__loop_new(NULL, &g_loop), 0);
  g_next[0] = 0;
  g_out_of_order = g_cancelled = 0;
  seq_task t[3];
  for (int i = 0; i < 3; i++) {
    t[i] = (seq_task){.task = {.fn = seq_fn}, .poster = 0, .seq = i};
    mrpc__loop_post(g_loop, &t[i].task);
  }
  mrpc__loop_del(g_loop); /* never ran */
  assert_int_equal(g_cancelled, 3);
  assert_int_equal(g_out_of_order, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(
          test_posts_from_many_threads_all_run_in_each_threads_order),
      cmocka_unit_test(test_tasks_left_at_delete_are_cancelled_in_order),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
