/* Unit tests of the rate limiter's buckets (mrpc_ic_ratelimit_allow), with
 * a clock of our own: refill, burst cap, bounded table with LRU eviction,
 * many threads on one bucket.  The interceptor side is in
 * e2e_interceptors.c.
 * SPDX-License-Identifier: Apache-2.0 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <minirpc/minirpc.h>

static _Atomic int64_t now_ns;
static int64_t clock_fn(void *user) {
  (void)user;
  return atomic_load(&now_ns);
}

static mrpc_ic_ratelimit *make(mrpc_ic_ratelimit_scope scope, double rate,
                               double burst, size_t max_keys) {
  mrpc_ic_ratelimit_opts o;
  mrpc_ic_ratelimit_opts_init(&o);
  o.scope = scope;
  o.rate = rate;
  o.burst = burst;
  o.max_keys = max_keys;
  o.clock_ns = clock_fn;
  mrpc_ic_ratelimit *rl = NULL;
  assert_int_equal(mrpc_ic_ratelimit_new(&o, &rl), 0);
  return rl;
}

static void test_refill(void **state) {
  (void)state;
  atomic_store(&now_ns, 5000000000);
  mrpc_ic_ratelimit *rl = make(MRPC_IC_RATELIMIT_GLOBAL, 4, 2, 0);
  assert_int_equal(mrpc_ic_ratelimit_allow(rl, NULL), 1);
  assert_int_equal(mrpc_ic_ratelimit_allow(rl, "ignored"), 1);
  assert_int_equal(mrpc_ic_ratelimit_allow(rl, NULL), 0);
  atomic_fetch_add(&now_ns, 125000000); /* 0.125 s x 4/s = half a token */
  assert_int_equal(mrpc_ic_ratelimit_allow(rl, NULL), 0);
  atomic_fetch_add(&now_ns, 125000000); /* and the other half */
  assert_int_equal(mrpc_ic_ratelimit_allow(rl, NULL), 1);
  assert_int_equal(mrpc_ic_ratelimit_allow(rl, NULL), 0);
  atomic_fetch_add(&now_ns, 3600000000000); /* an hour: still only burst */
  assert_int_equal(mrpc_ic_ratelimit_allow(rl, NULL), 1);
  assert_int_equal(mrpc_ic_ratelimit_allow(rl, NULL), 1);
  assert_int_equal(mrpc_ic_ratelimit_allow(rl, NULL), 0);
  atomic_fetch_sub(&now_ns, 1000000000); /* a clock going back: no refill */
  assert_int_equal(mrpc_ic_ratelimit_allow(rl, NULL), 0);
  uint64_t a, l;
  size_t k;
  mrpc_ic_ratelimit_stats(rl, &a, &l, &k);
  assert_int_equal(a, 5);
  assert_int_equal(l, 5);
  assert_int_equal(k, 1);
  mrpc_ic_ratelimit_del(rl);
  /* burst 0 = max(1, rate) */
  rl = make(MRPC_IC_RATELIMIT_GLOBAL, 3, 0, 0);
  for (int i = 0; i < 3; i++) assert_int_equal(mrpc_ic_ratelimit_allow(rl, NULL), 1);
  assert_int_equal(mrpc_ic_ratelimit_allow(rl, NULL), 0);
  mrpc_ic_ratelimit_del(rl);
}

static void test_keys_bounded_lru(void **state) {
  (void)state;
  atomic_store(&now_ns, 1);
  /* 8 buckets: one set of 8 ways */
  mrpc_ic_ratelimit *rl = make(MRPC_IC_RATELIMIT_PER_METHOD, 0, 1, 8); /* any keyed scope */
  char key[32];
  for (int i = 0; i < 8; i++) {
    snprintf(key, sizeof key, "k%d", i);
    atomic_fetch_add(&now_ns, 1);
    assert_int_equal(mrpc_ic_ratelimit_allow(rl, key), 1);
  }
  size_t keys;
  mrpc_ic_ratelimit_stats(rl, NULL, NULL, &keys);
  assert_int_equal(keys, 8);
  atomic_fetch_add(&now_ns, 1);
  assert_int_equal(mrpc_ic_ratelimit_allow(rl, "k0"), 0); /* k0 used last */
  atomic_fetch_add(&now_ns, 1);
  assert_int_equal(mrpc_ic_ratelimit_allow(rl, "k8"), 1); /* evicts k1 */
  mrpc_ic_ratelimit_stats(rl, NULL, NULL, &keys);
  assert_int_equal(keys, 8);
  atomic_fetch_add(&now_ns, 1);
  assert_int_equal(mrpc_ic_ratelimit_allow(rl, "k0"), 0); /* still known */
  atomic_fetch_add(&now_ns, 1);
  assert_int_equal(mrpc_ic_ratelimit_allow(rl, "k1"), 1); /* fresh again */
  /* a thousand keys later the table is the same size */
  for (int i = 0; i < 1000; i++) {
    snprintf(key, sizeof key, "many-%d", i);
    atomic_fetch_add(&now_ns, 1);
    mrpc_ic_ratelimit_allow(rl, key);
  }
  mrpc_ic_ratelimit_stats(rl, NULL, NULL, &keys);
  assert_int_equal(keys, 8);
  /* long keys: the hash tells apart keys that share the stored prefix */
  char a[200], b[200];
  memset(a, 'x', sizeof a - 2);
  a[sizeof a - 2] = 'a';
  a[sizeof a - 1] = '\0';
  memcpy(b, a, sizeof a);
  b[sizeof b - 2] = 'b';
  atomic_fetch_add(&now_ns, 1);
  assert_int_equal(mrpc_ic_ratelimit_allow(rl, a), 1);
  atomic_fetch_add(&now_ns, 1);
  assert_int_equal(mrpc_ic_ratelimit_allow(rl, b), 1);
  atomic_fetch_add(&now_ns, 1);
  assert_int_equal(mrpc_ic_ratelimit_allow(rl, a), 0);
  mrpc_ic_ratelimit_del(rl);
}

typedef struct worker {
  mrpc_ic_ratelimit *rl;
  int got;
  int id;
} worker;

static void *work(void *arg) {
  worker *w = arg;
  char key[16];
  snprintf(key, sizeof key, "w%d", w->id % 2);
  for (int i = 0; i < 5000; i++) w->got += mrpc_ic_ratelimit_allow(w->rl, key);
  return NULL;
}

static void test_threads(void **state) {
  (void)state;
  atomic_store(&now_ns, 1);
  for (int keyed = 0; keyed < 2; keyed++) {
    mrpc_ic_ratelimit *rl =
        make(keyed ? MRPC_IC_RATELIMIT_PER_PEER : MRPC_IC_RATELIMIT_GLOBAL, 0,
             3000, 64);
    worker w[8];
    pthread_t t[8];
    for (int i = 0; i < 8; i++) {
      w[i] = (worker){rl, 0, i};
      assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
    }
    int got = 0;
    for (int i = 0; i < 8; i++) {
      pthread_join(t[i], NULL);
      got += w[i].got;
    }
    assert_int_equal(got, keyed ? 6000 : 3000); /* keyed: 2 keys */
    uint64_t a, l;
    mrpc_ic_ratelimit_stats(rl, &a, &l, NULL);
    assert_int_equal(a, (uint64_t)got);
    assert_int_equal(a + l, 40000);
    mrpc_ic_ratelimit_del(rl);
  }
}

static int no_key(mrpc_call *call, char *buf, size_t cap, void *user) {
  (void)call, (void)buf, (void)cap, (void)user;
  return 0;
}

static void test_options(void **state) {
  (void)state;
  mrpc_ic_ratelimit_opts o;
  mrpc_ic_ratelimit *rl = (mrpc_ic_ratelimit *)1;
  mrpc_ic_ratelimit_opts_init(&o);
  assert_int_equal(o.size, sizeof o);
  assert_int_equal(mrpc_ic_ratelimit_new(&o, NULL), MRPC_ERR_INVAL);
  assert_int_equal(mrpc_ic_ratelimit_new(&o, &rl), 0); /* burst 1, rate 0 */
  assert_int_equal(mrpc_ic_ratelimit_allow(rl, NULL), 1);
  assert_int_equal(mrpc_ic_ratelimit_allow(rl, NULL), 0);
  assert_non_null(mrpc_ic_ratelimit_interceptor(rl));
  mrpc_ic_ratelimit_del(rl);
  assert_null(mrpc_ic_ratelimit_interceptor(NULL));
  o.size = sizeof o + 8;
  assert_int_equal(mrpc_ic_ratelimit_new(&o, &rl), MRPC_ERR_INVAL);
  assert_null(rl);
  mrpc_ic_ratelimit_opts_init(&o);
  o.rate = 1.0 / 0.0;
  assert_int_equal(mrpc_ic_ratelimit_new(&o, &rl), MRPC_ERR_INVAL);
  o.rate = 0;
  o.scope = MRPC_IC_RATELIMIT_PER_KEY;
  assert_int_equal(mrpc_ic_ratelimit_new(&o, &rl), MRPC_ERR_INVAL);
  o.key = no_key;
  assert_int_equal(mrpc_ic_ratelimit_new(&o, &rl), 0);
  mrpc_ic_ratelimit_del(rl);
  mrpc_ic_ratelimit_del(NULL);
  uint64_t a = 9;
  size_t k = 9;
  mrpc_ic_ratelimit_stats(NULL, &a, NULL, &k);
  assert_int_equal(a, 0);
  assert_int_equal(k, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_refill),
      cmocka_unit_test(test_keys_bounded_lru),
      cmocka_unit_test(test_threads),
      cmocka_unit_test(test_options),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
