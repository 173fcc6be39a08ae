/* Unit tests for the loop's block cache (mrpc__blk_*, lib/loop.c): blocks
 * keep their contents through realloc across every size boundary, freed
 * blocks are reused on the loop thread, and blocks may be freed on any
 * thread, also after the loop is gone. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "loop.h"

/* ---- helpers ---- */

static void fill(void *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++) ((uint8_t *)p)[i] = (uint8_t)(seed + i * 7);
}

static void check_fill(const void *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++)
    assert_int_equal(((const uint8_t *)p)[i], (uint8_t)(seed + i * 7));
}

/* Runs fn(arg) as a task on a loop thread, then stops the loop. */
typedef struct on_loop {
  mrpc__task task;
  mrpc__loop *loop;
  void (*fn)(mrpc__loop *l, void *arg);
  void *arg;
} on_loop;

static void on_loop_task(mrpc__task *t, int cancelled) {
  on_loop *o = (on_loop *)t;
  if (!cancelled) o->fn(o->loop, o->arg);
  mrpc__loop_stop(o->loop);
}

static void *loop_thread(void *arg) {
  mrpc__loop_run(arg);
  return NULL;
}

static void run_on_loop(mrpc__loop *l, void (*fn)(mrpc__loop *, void *),
                        void *arg) {
  pthread_t th;
  on_loop o = {.loop = l, .fn = fn, .arg = arg};
  o.task.fn = on_loop_task;
  mrpc__loop_post(l, &o.task);
  assert_int_equal(pthread_create(&th, NULL, loop_thread, l), 0);
  pthread_join(th, NULL);
}

/* ---- on the loop thread ---- */

static const size_t sizes[] = {0,   1,    15,   16,   17,   100,  1000,
                               2000, 2016, 2017, 2032, 2048, 4096, 70000};
#define N_SIZES (sizeof sizes / sizeof sizes[0])

static void contents_survive_realloc(mrpc__loop *l, void *arg) {
  (void)arg;
  /* Every pair of sizes: small to small, small to plain, plain to small,
   * plain to plain; the common prefix must survive. */
  for (size_t i = 0; i < N_SIZES; i++)
    for (size_t j = 0; j < N_SIZES; j++) {
      uint8_t *p = mrpc__blk_alloc(l, sizes[i]);
      assert_non_null(p);
      fill(p, sizes[i], (unsigned)(i * 31 + j));
      uint8_t *q = mrpc__blk_realloc(l, p, sizes[j]);
      assert_non_null(q);
      size_t keep = sizes[i] < sizes[j] ? sizes[i] : sizes[j];
      check_fill(q, keep, (unsigned)(i * 31 + j));
      fill(q, sizes[j], 3); /* the whole new size is usable */
      mrpc__blk_free(l, q);
    }
  uint8_t *p = mrpc__blk_realloc(l, NULL, 40); /* NULL: an allocation */
  assert_non_null(p);
  fill(p, 40, 9);
  mrpc__blk_free(l, p);
  mrpc__blk_free(l, NULL); /* a no-op */
}

static void test_blk_contents_survive_realloc(void **state) {
  (void)state;
  mrpc__loop *l;
  assert_int_equal(mrpc__loop_new(NULL, &l), 0);
  run_on_loop(l, contents_survive_realloc, NULL);
  mrpc__loop_del(l);
}

static void freed_blocks_are_reused(mrpc__loop *l, void *arg) {
  (void)arg;
  void *a = mrpc__blk_alloc(l, 100);
  assert_non_null(a);
  mrpc__blk_free(l, a);
  assert_ptr_equal(mrpc__blk_alloc(l, 100), a); /* same size: same block */
  fill(a, 100, 1);
  mrpc__blk_free(l, a);
  uint8_t *z = mrpc__blk_calloc(l, 10, 10); /* reused, and zeroed */
  assert_ptr_equal(z, a);
  for (int i = 0; i < 100; i++) assert_int_equal(z[i], 0);
  mrpc__blk_free(l, z);
  assert_null(mrpc__blk_calloc(l, SIZE_MAX / 2, 4)); /* overflow */
  /* Many blocks at once, then all back: the cache keeps a bounded amount
   * and the loop frees what it kept (LeakSanitizer checks). */
  enum { N = 3000 };
  void **v = malloc(N * sizeof *v);
  assert_non_null(v);
  for (int i = 0; i < N; i++) {
    v[i] = mrpc__blk_alloc(l, (size_t)(i % 2100));
    assert_non_null(v[i]);
    fill(v[i], (size_t)(i % 2100), (unsigned)i);
  }
  for (int i = 0; i < N; i++) {
    check_fill(v[i], (size_t)(i % 2100), (unsigned)i);
    mrpc__blk_free(l, v[i]);
  }
  free(v);
}

static void test_blk_freed_blocks_are_reused(void **state) {
  (void)state;
  mrpc__loop *l;
  assert_int_equal(mrpc__loop_new(NULL, &l), 0);
  run_on_loop(l, freed_blocks_are_reused, NULL);
  mrpc__loop_del(l);
}

/* ---- other threads ---- */

static void make_blocks(mrpc__loop *l, void *arg) {
  void **out = arg;
  out[0] = mrpc__blk_alloc(l, 64);
  out[1] = mrpc__blk_alloc(l, 5000);
  fill(out[0], 64, 1);
  fill(out[1], 5000, 2);
}

static void free_blocks(mrpc__loop *l, void *arg) {
  void **in = arg;
  check_fill(in[0], 64, 1);
  mrpc__blk_free(l, in[0]);
  mrpc__blk_free(l, in[1]);
}

static void test_blk_any_thread_any_time(void **state) {
  (void)state;
  mrpc__loop *l;
  assert_int_equal(mrpc__loop_new(NULL, &l), 0);
  /* Made off the loop thread, freed on it (kept), and the reverse. */
  void *b[2] = {mrpc__blk_alloc(l, 64), mrpc__blk_alloc(l, 5000)};
  assert_non_null(b[0]);
  assert_non_null(b[1]);
  fill(b[0], 64, 1);
  free_blocks(l, (void *[]){b[0], b[1]}); /* off the loop: straight to libc */
  void *made[2];
  run_on_loop(l, make_blocks, made);
  b[0] = mrpc__blk_alloc(l, 64);
  b[1] = mrpc__blk_alloc(l, 5000);
  fill(b[0], 64, 1);
  run_on_loop(l, free_blocks, b);
  /* Blocks of a deleted loop are still freed (and resized) correctly. */
  check_fill(made[1], 5000, 2);
  mrpc__loop_del(l);
  check_fill(made[0], 64, 1);
  made[0] = mrpc__blk_realloc(l, made[0], 3000);
  assert_non_null(made[0]);
  check_fill(made[0], 64, 1);
  mrpc__blk_free(l, made[0]);
  mrpc__blk_free(l, made[1]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_blk_contents_survive_realloc),
      cmocka_unit_test(test_blk_freed_blocks_are_reused),
      cmocka_unit_test(test_blk_any_thread_any_time),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
