/* End to end: channel connectivity state (IDLE, CONNECTING, READY,
 * TRANSIENT_FAILURE, SHUTDOWN), mrpc_channel_get_state and
 * mrpc_channel_wait_for_state_change, connection backoff, fail-fast and
 * wait-for-ready calls (docs/design.md, "Channel states").
 * Timing is asserted loosely: orderings and generous upper bounds only.
 * SPDX-License-Identifier: Apache-2.0 */
#include "e2e_common.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

static const mrpc_method *const k_unary = &e2e_methods[E2E_EVENT][MRPC_UNARY];


static mrpc_channel_opts backoff_opts(int64_t initial, double mult,
                                      double jitter, int64_t max) {
  mrpc_channel_opts o;
  mrpc_channel_opts_init(&o);
  o.backoff_initial_ms = initial;
  o.backoff_multiplier = mult;
  o.backoff_jitter = jitter;
  o.backoff_max_ms = max;
  return o;
}

static mrpc_call_opts wfr_opts(int64_t timeout_ms) {
  mrpc_call_opts o = e2e_copts(timeout_ms, NULL);
  o.wait_for_ready = 1;
  return o;
}

/* Starts an event-driven unary call (request sent and half-closed). */
static void start_unary(e2e_cli *c, mrpc_channel *ch, const mrpc_call_opts *o,
                        const char *body) {
  e2e_cli_init(c);
  e2e_cli_start(c, ch, k_unary, o);
  e2e_assert_sent(e2e_cli_send_str(c->call, k_unary, body));
  e2e_assert_sent(mrpc_call_close_send(c->call));
}


/* ---- watching the state from another thread ---- */

typedef struct watcher {
  mrpc_channel *ch;
  pthread_t th;
  atomic_int stop;
  mrpc_channel_state seen[64];
  atomic_int n;
} watcher;

static void *watch_main(void *arg) {
  watcher *w = arg;
  mrpc_channel_state last = mrpc_channel_get_state(w->ch, 0);
  w->seen[atomic_fetch_add(&w->n, 1)] = last;
  while (!atomic_load(&w->stop) && atomic_load(&w->n) < 64) {
    if (mrpc_channel_wait_for_state_change(w->ch, last, 20) == 1) {
      last = mrpc_channel_get_state(w->ch, 0);
      w->seen[atomic_fetch_add(&w->n, 1)] = last;
    }
  }
  return NULL;
}

static void watch_start(watcher *w, mrpc_channel *ch) {
  memset(w, 0, sizeof *w);
  w->ch = ch;
  assert_int_equal(pthread_create(&w->th, NULL, watch_main, w), 0);
  E2E_WAIT_UNTIL(atomic_load(&w->n) > 0, 2000);
}

static void watch_stop(watcher *w) {
  atomic_store(&w->stop, 1);
  pthread_join(w->th, NULL);
}

/* The states seen, in order, are a subsequence of want (consecutive
 * duplicates can not occur; states may be skipped). */
static void assert_seen_in_order(const watcher *w,
                                 const mrpc_channel_state *want, int n_want) {
  int j = 0;
  for (int i = 0; i < atomic_load(&w->n); i++) {
    while (j < n_want && want[j] != w->seen[i]) j++;
    if (j == n_want)
      fail_msg("state %s (#%d) out of order",
               mrpc_channel_state_name(w->seen[i]), i);
  }
}

/* ---- tests ---- */

static void test_state_names(void **state) {
  (void)state;
  assert_string_equal(mrpc_channel_state_name(MRPC_CHANNEL_IDLE), "IDLE");
  assert_string_equal(mrpc_channel_state_name(MRPC_CHANNEL_TRANSIENT_FAILURE),
                      "TRANSIENT_FAILURE");
  assert_string_equal(mrpc_channel_state_name((mrpc_channel_state)99), "?");
  assert_int_equal(mrpc_channel_get_state(NULL, 1), MRPC_CHANNEL_SHUTDOWN);
  assert_true(mrpc_channel_wait_for_state_change(NULL, MRPC_CHANNEL_IDLE, 0) <
              0);
  mrpc_channel_opts o = backoff_opts(-1, 0, 0, 0);
  mrpc_channel *ch = NULL;
  assert_int_equal(mrpc_channel_new("127.0.0.1:1", &o, &ch), MRPC_ERR_INVAL);
  mrpc_call_opts co = e2e_copts(0, NULL);
  co.wait_for_ready = 2;
  ch = e2e_channel("127.0.0.1:1", NULL);
  mrpc_call *call = NULL;
  assert_int_equal(mrpc_channel_start_call(ch, k_unary, &co, NULL, NULL, &call),
                   MRPC_ERR_INVAL);
  mrpc_channel_del(ch);
}

/* A new channel is IDLE and stays so (no connection) until asked. */
static void test_new_channel_is_idle_and_wait_times_out(void **state) {
  (void)state;
  e2e_server srv;
  e2e_server_start(&srv, NULL, NULL, NULL, NULL, 0);
  mrpc_channel *ch = e2e_channel(srv.target, NULL);
  assert_int_equal(mrpc_channel_get_state(ch, 0), MRPC_CHANNEL_IDLE);
  int64_t t0 = e2e_now_ms();
  assert_int_equal(mrpc_channel_wait_for_state_change(ch, MRPC_CHANNEL_IDLE, 150),
                   0);
  int64_t took = e2e_now_ms() - t0;
  assert_true(took >= 100);
  assert_true(took < 5000);
  assert_int_equal(mrpc_channel_get_state(ch, 0), MRPC_CHANNEL_IDLE);
  /* Not the state it is in: returns at once. */
  assert_int_equal(
      mrpc_channel_wait_for_state_change(ch, MRPC_CHANNEL_READY, 5000), 1);
  mrpc_channel_del(ch);
  e2e_server_stop(&srv);
}

/* get_state(try_to_connect = 1): IDLE -> CONNECTING -> READY, seen by
 * wait_for_state_change; READY then stays (a wait times out). */
static void test_try_to_connect_goes_idle_connecting_ready(void **state) {
  (void)state;
  e2e_server srv;
  e2e_server_start(&srv, NULL, NULL, NULL, NULL, 0);
  mrpc_channel *ch = e2e_channel(srv.target, NULL);
  watcher w;
  watch_start(&w, ch);
  assert_int_equal(mrpc_channel_get_state(ch, 1), MRPC_CHANNEL_IDLE);
  mrpc_channel_state s = MRPC_CHANNEL_IDLE;
  int64_t until = e2e_now_ms() + 5000;
  while (s != MRPC_CHANNEL_READY && e2e_now_ms() < until) {
    assert_int_equal(mrpc_channel_wait_for_state_change(ch, s, 5000), 1);
    mrpc_channel_state n = mrpc_channel_get_state(ch, 0);
    if (s == MRPC_CHANNEL_IDLE)
      assert_true(n == MRPC_CHANNEL_CONNECTING || n == MRPC_CHANNEL_READY);
    else
      assert_int_equal(n, MRPC_CHANNEL_READY);
    s = n;
  }
  assert_int_equal(s, MRPC_CHANNEL_READY);
  assert_int_equal(
      mrpc_channel_wait_for_state_change(ch, MRPC_CHANNEL_READY, 100), 0);
  assert_int_equal(e2e_unary_echo(ch, E2E_EVENT, "ready"), MRPC_STATUS_OK);
  watch_stop(&w);
  const mrpc_channel_state order[] = {MRPC_CHANNEL_IDLE,
                                      MRPC_CHANNEL_CONNECTING,
                                      MRPC_CHANNEL_READY};
  assert_seen_in_order(&w, order, 3);
  assert_int_equal(w.seen[atomic_load(&w.n) - 1], MRPC_CHANNEL_READY);
  mrpc_channel_del(ch);
  e2e_server_stop(&srv);
}

/* The first call connects: the watcher sees IDLE, (CONNECTING,) READY. */
static void test_first_call_connects(void **state) {
  (void)state;
  e2e_server srv;
  e2e_server_start(&srv, NULL, NULL, NULL, NULL, 0);
  mrpc_channel *ch = e2e_channel(srv.target, NULL);
  watcher w;
  watch_start(&w, ch);
  assert_int_equal(e2e_unary_echo(ch, E2E_BLOCKING, "first"), MRPC_STATUS_OK);
  assert_int_equal(mrpc_channel_get_state(ch, 0), MRPC_CHANNEL_READY);
  E2E_WAIT_UNTIL(atomic_load(&w.n) >= 2 &&
                     w.seen[atomic_load(&w.n) - 1] == MRPC_CHANNEL_READY,
                 2000);
  watch_stop(&w);
  assert_int_equal(w.seen[0], MRPC_CHANNEL_IDLE);
  const mrpc_channel_state order[] = {MRPC_CHANNEL_IDLE,
                                      MRPC_CHANNEL_CONNECTING,
                                      MRPC_CHANNEL_READY};
  assert_seen_in_order(&w, order, 3);
  assert_int_equal(w.seen[atomic_load(&w.n) - 1], MRPC_CHANNEL_READY);
  /* The server goes away: the ready connection is lost -> IDLE. */
  e2e_server_stop(&srv);
  E2E_WAIT_UNTIL(mrpc_channel_get_state(ch, 0) == MRPC_CHANNEL_IDLE, 5000);
  assert_int_equal(mrpc_channel_get_state(ch, 0), MRPC_CHANNEL_IDLE);
  mrpc_channel_del(ch);
}

/* A dead address: the first call fails (UNAVAILABLE) and the channel is
 * TRANSIENT_FAILURE for the backoff; calls then fail at once without a
 * connection attempt; after the backoff, with nothing waiting, IDLE. */
static void test_dead_address_is_transient_failure_and_fails_fast(
    void **state) {
  (void)state;
  int fd, port = e2e_refusing_port(&fd);
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", port);
  mrpc_channel_opts o = backoff_opts(1500, 0, -1, 0);
  mrpc_channel *ch = e2e_channel(target, &o);
  int64_t t0 = e2e_now_ms();
  assert_int_equal(e2e_unary_echo(ch, E2E_EVENT, "x"), MRPC_STATUS_UNAVAILABLE);
  assert_int_equal(mrpc_channel_get_state(ch, 0),
                   MRPC_CHANNEL_TRANSIENT_FAILURE);
  /* fail fast: event and blocking, well before the backoff ends */
  e2e_cli c;
  mrpc_call_opts co = e2e_copts(E2E_TIMEOUT_MS, NULL);
  e2e_cli_unary(&c, ch, k_unary, &co, "y");
  assert_int_equal(c.st.code, MRPC_STATUS_UNAVAILABLE);
  assert_non_null(strstr(c.st.message, "connect"));
  e2e_cli_free(&c);
  assert_int_equal(e2e_unary_echo(ch, E2E_BLOCKING, "z"),
                   MRPC_STATUS_UNAVAILABLE);
  int64_t took = e2e_now_ms() - t0;
  if (mrpc_channel_get_state(ch, 0) == MRPC_CHANNEL_TRANSIENT_FAILURE)
    assert_true(took < 1500); /* the calls did not wait for the backoff */
  /* Backoff over, nothing waits: IDLE (seen by a waiter). */
  if (mrpc_channel_get_state(ch, 0) == MRPC_CHANNEL_TRANSIENT_FAILURE)
    assert_int_equal(mrpc_channel_wait_for_state_change(
                         ch, MRPC_CHANNEL_TRANSIENT_FAILURE, 10000),
                     1);
  assert_int_equal(mrpc_channel_get_state(ch, 0), MRPC_CHANNEL_IDLE);
  assert_true(e2e_now_ms() - t0 >= 1000); /* 1500 ms, loosely */
  mrpc_channel_del(ch);
  close(fd);
}

/* A wait-for-ready call started before the server exists waits through
 * the failures and completes once a server listens on the port. */
static void test_wait_for_ready_call_completes_when_the_server_starts(
    void **state) {
  (void)state;
  int fd, port = e2e_refusing_port(&fd);
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", port);
  mrpc_channel_opts o = backoff_opts(20, 1.5, 0, 100);
  mrpc_channel *ch = e2e_channel(target, &o);
  e2e_cli c;
  mrpc_call_opts co = wfr_opts(E2E_TIMEOUT_MS);
  start_unary(&c, ch, &co, "patient");
  /* Meanwhile a fail-fast call ends with UNAVAILABLE. */
  E2E_WAIT_UNTIL(mrpc_channel_get_state(ch, 0) ==
                     MRPC_CHANNEL_TRANSIENT_FAILURE,
                 5000);
  assert_int_equal(e2e_unary_echo(ch, E2E_EVENT, "hasty"),
                   MRPC_STATUS_UNAVAILABLE);
  e2e_sleep_ms(300); /* several attempts fail */
  assert_int_equal(e2e_cli_done(&c), 0);
  mrpc_channel_state s = mrpc_channel_get_state(ch, 0);
  assert_true(s == MRPC_CHANNEL_TRANSIENT_FAILURE ||
              s == MRPC_CHANNEL_CONNECTING);
  close(fd);
  e2e_server srv;
  e2e_server_start(&srv, NULL, target, NULL, NULL, 0);
  e2e_cli_wait(&c, 5000);
  assert_int_equal(c.st.code, MRPC_STATUS_OK);
  e2e_cli_assert_body(&c, 0, "patient");
  e2e_cli_free(&c);
  assert_int_equal(mrpc_channel_get_state(ch, 0), MRPC_CHANNEL_READY);
  mrpc_channel_del(ch);
  e2e_server_stop(&srv);
}

/* A wait-for-ready call whose deadline passes while waiting ends with
 * DEADLINE_EXCEEDED (not UNAVAILABLE), around its deadline. */
static void test_wait_for_ready_call_gets_deadline_exceeded(void **state) {
  (void)state;
  int fd, port = e2e_refusing_port(&fd);
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", port);
  mrpc_channel_opts o = backoff_opts(20, 1.5, 0, 100);
  mrpc_channel *ch = e2e_channel(target, &o);
  e2e_cli c;
  mrpc_call_opts co = wfr_opts(300);
  int64_t t0 = e2e_now_ms();
  start_unary(&c, ch, &co, "late");
  e2e_cli_wait(&c, 5000);
  int64_t took = c.done_at - t0;
  assert_int_equal(c.st.code, MRPC_STATUS_DEADLINE_EXCEEDED);
  assert_true(took >= 250);
  assert_true(took < 4000);
  e2e_cli_free(&c);
  mrpc_channel_del(ch);
  close(fd);
}

/* Backoff grows: a listener that accepts and at once closes every
 * connection (never a SETTINGS, so never READY) records when each attempt
 * arrives; with initial 100 ms, multiplier 2, no jitter and max 400 ms the
 * gaps are about 100, 200, 400, 400...  Asserted: they do not shrink much,
 * the third is longer than the first, none is far beyond the max. */
static void test_backoff_grows_between_attempts(void **state) {
  (void)state;
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
  assert_int_equal(listen(lfd, 16), 0);
  socklen_t len = sizeof sa;
  assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", ntohs(sa.sin_port));
  mrpc_channel_opts o = backoff_opts(100, 2.0, -1, 400);
  mrpc_channel *ch = e2e_channel(target, &o);
  e2e_cli c;
  mrpc_call_opts co = wfr_opts(1600);
  start_unary(&c, ch, &co, "x");
  int64_t at[32];
  int n = 0;
  while (!e2e_cli_done(&c) && n < 32) {
    struct pollfd p = {lfd, POLLIN, 0};
    if (poll(&p, 1, 20) == 1) {
      int cfd = accept(lfd, NULL, NULL);
      if (cfd >= 0) {
        at[n++] = e2e_now_ms();
        close(cfd);
      }
    }
  }
  e2e_cli_wait(&c, 5000);
  assert_int_equal(c.st.code, MRPC_STATUS_DEADLINE_EXCEEDED);
  e2e_cli_free(&c);
  mrpc_channel_del(ch);
  close(lfd);
  /* 0, 100, 300, 700, 1100, 1500: about 6 in 1600 ms */
  assert_true(n >= 4);
  assert_true(n <= 10);
  int64_t gap[32];
  for (int i = 1; i < n; i++) {
    gap[i] = at[i] - at[i - 1];
    assert_true(gap[i] >= 50);   /* never early (100 ms minus slack) */
    assert_true(gap[i] < 1400);  /* max 400 ms, plus a lot of slack */
  }
  assert_true(gap[3] > gap[1]); /* 400 vs 100 */
}

/* Attempts that reach READY reset the backoff: after a ready connection
 * is lost, the next call reconnects at once even though earlier attempts
 * had grown the backoff. */
static void test_ready_resets_the_backoff(void **state) {
  (void)state;
  int fd, port = e2e_refusing_port(&fd);
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", port);
  /* initial 50 ms growing fast to 5 s */
  mrpc_channel_opts o = backoff_opts(50, 10.0, -1, 5000);
  mrpc_channel *ch = e2e_channel(target, &o);
  e2e_cli c;
  mrpc_call_opts co = wfr_opts(E2E_TIMEOUT_MS);
  start_unary(&c, ch, &co, "a");
  e2e_sleep_ms(100); /* attempts at 0 and 50 ms fail; next at 550 ms */
  close(fd);
  e2e_server srv;
  e2e_server_start(&srv, NULL, target, NULL, NULL, 0);
  e2e_cli_wait(&c, 8000);
  assert_int_equal(c.st.code, MRPC_STATUS_OK);
  e2e_cli_free(&c);
  assert_int_equal(mrpc_channel_get_state(ch, 0), MRPC_CHANNEL_READY);
  /* The server goes: the ready connection is lost (IDLE).  A call then
   * fails to connect: TRANSIENT_FAILURE for the reset backoff (50 ms), not
   * the grown one (5 s). */
  e2e_server_stop(&srv);
  E2E_WAIT_UNTIL(mrpc_channel_get_state(ch, 0) == MRPC_CHANNEL_IDLE, 5000);
  assert_int_equal(mrpc_channel_get_state(ch, 0), MRPC_CHANNEL_IDLE);
  assert_int_equal(e2e_unary_echo(ch, E2E_EVENT, "b"), MRPC_STATUS_UNAVAILABLE);
  int64_t t0 = e2e_now_ms();
  if (mrpc_channel_get_state(ch, 0) == MRPC_CHANNEL_TRANSIENT_FAILURE)
    assert_int_equal(mrpc_channel_wait_for_state_change(
                         ch, MRPC_CHANNEL_TRANSIENT_FAILURE, 10000),
                     1);
  assert_true(e2e_now_ms() - t0 < 2500);
  e2e_server_start(&srv, NULL, target, NULL, NULL, 0);
  assert_int_equal(e2e_unary_echo(ch, E2E_EVENT, "c"), MRPC_STATUS_OK);
  mrpc_channel_del(ch);
  e2e_server_stop(&srv);
}

/* mrpc_channel_del wakes a thread blocked in wait_for_state_change (it
 * sees SHUTDOWN) and waits for it to leave. */
typedef struct blocked_waiter {
  mrpc_channel *ch;
  atomic_int entered;
  int rv;
} blocked_waiter;

static void *blocked_main(void *arg) {
  blocked_waiter *b = arg;
  atomic_store(&b->entered, 1);
  b->rv = mrpc_channel_wait_for_state_change(b->ch, MRPC_CHANNEL_IDLE, -1);
  return NULL;
}

static void test_del_wakes_waiters(void **state) {
  (void)state;
  blocked_waiter b = {.ch = e2e_channel("127.0.0.1:1", NULL)};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, blocked_main, &b), 0);
  E2E_WAIT_UNTIL(atomic_load(&b.entered), 2000);
  e2e_sleep_ms(50);
  mrpc_channel_del(b.ch);
  pthread_join(th, NULL);
  assert_int_equal(b.rv, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_state_names),
      cmocka_unit_test(test_new_channel_is_idle_and_wait_times_out),
      cmocka_unit_test(test_try_to_connect_goes_idle_connecting_ready),
      cmocka_unit_test(test_first_call_connects),
      cmocka_unit_test(test_dead_address_is_transient_failure_and_fails_fast),
      cmocka_unit_test(test_wait_for_ready_call_completes_when_the_server_starts),
      cmocka_unit_test(test_wait_for_ready_call_gets_deadline_exceeded),
      cmocka_unit_test(test_backoff_grows_between_attempts),
      cmocka_unit_test(test_ready_resets_the_backoff),
      cmocka_unit_test(test_del_wakes_waiters),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
