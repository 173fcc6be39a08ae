/* End to end: client keepalive (keepalive.md, A8) against our server and
 * against a fake HTTP/2 server that answers nothing, and the server's
 * connection lifetime limits as our channel sees them.
 *
 * The channel raises a keepalive time under 10 s to 10 s; these tests lower
 * that floor (mrpc__keepalive_min_time_ms, internal) to use 100 ms.
 * SPDX-License-Identifier: Apache-2.0 */
#include "e2e_common.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

/* Internal (lib/conn.h): the floor of keepalive_time_ms, and the keepalive
 * time the channel's next connection gets. */
extern int64_t mrpc__keepalive_min_time_ms;
int64_t mrpc__channel_keepalive_time_ms(const mrpc_channel *ch);

static const mrpc_method *k_bidi = &e2e_methods[E2E_EVENT][MRPC_BIDI_STREAMING];

static mrpc_channel *ka_channel(const char *target, int64_t time_ms,
                                int64_t timeout_ms, int permit) {
  mrpc_channel_opts o;
  mrpc_channel_opts_init(&o);
  o.keepalive_time_ms = time_ms;
  o.keepalive_timeout_ms = timeout_ms;
  o.keepalive_permit_without_calls = permit;
  return e2e_channel(target, &o);
}

/* Opens a bidi call that sends nothing (the server sends nothing either)
 * and waits for its end; returns how long it took, *code its status. */
static int64_t idle_call_until_done(mrpc_channel *ch, int *code) {
  e2e_cli c;
  e2e_cli_init(&c);
  mrpc_call_opts o = e2e_copts(20000, NULL);
  int64_t t0 = e2e_now_ms();
  e2e_cli_start(&c, ch, k_bidi, &o);
  e2e_cli_wait(&c, 15000);
  int64_t took = c.done_at - t0;
  *code = c.st.code;
  e2e_cli_free(&c);
  return took;
}

/* ---- against our server ---- */

/* The client pings every 100 ms, the server permits one per 5 s: ping 1 is
 * free, 2 and 3 are strikes, 4 gets GOAWAY ENHANCE_YOUR_CALM
 * "too_many_pings"; the call fails with UNAVAILABLE and the channel doubles
 * its keepalive time (A8), again on the next connection. */
static void test_too_many_pings_doubles_the_keepalive_time(void **state) {
  (void)state;
  mrpc_server_opts so;
  mrpc_server_opts_init(&so);
  so.keepalive_min_time_ms = 5000;
  e2e_server srv;
  e2e_server_start(&srv, &so, NULL, NULL, NULL, 0);
  mrpc_channel *ch = ka_channel(srv.target, 100, 5000, 0);
  assert_int_equal(mrpc__channel_keepalive_time_ms(ch), 100);

  int code;
  int64_t took1 = idle_call_until_done(ch, &code);
  assert_int_equal(code, MRPC_STATUS_UNAVAILABLE);
  assert_true(took1 >= 300); /* 4 pings 100 ms apart */
  assert_int_equal(mrpc__channel_keepalive_time_ms(ch), 200);

  int64_t took2 = idle_call_until_done(ch, &code);
  assert_int_equal(code, MRPC_STATUS_UNAVAILABLE);
  assert_true(took2 >= 600); /* now 200 ms apart */
  assert_int_equal(mrpc__channel_keepalive_time_ms(ch), 400);

  /* The channel goes on working (a new connection). */
  assert_int_equal(e2e_unary_echo(ch, E2E_EVENT, "after"), MRPC_STATUS_OK);
  mrpc_channel_del(ch);
  e2e_server_stop(&srv);
}

/* Pings every 100 ms while the server permits one per 50 ms: the idle call
 * lives on and ends normally; the keepalive time is unchanged. */
static void test_pings_within_the_policy_keep_the_call(void **state) {
  (void)state;
  mrpc_server_opts so;
  mrpc_server_opts_init(&so);
  so.keepalive_min_time_ms = 50;
  e2e_server srv;
  e2e_server_start(&srv, &so, NULL, NULL, NULL, 0);
  mrpc_channel *ch = ka_channel(srv.target, 100, 5000, 0);
  e2e_cli c;
  e2e_cli_init(&c);
  mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS, NULL);
  e2e_cli_start(&c, ch, k_bidi, &o);
  e2e_sleep_ms(1000); /* about 10 pings */
  pthread_mutex_lock(&c.mu);
  int done = c.done;
  pthread_mutex_unlock(&c.mu);
  assert_int_equal(done, 0);
  e2e_assert_sent(e2e_cli_send_str(c.call, k_bidi, "still here"));
  e2e_assert_sent(mrpc_call_close_send(c.call));
  e2e_cli_wait(&c, E2E_TIMEOUT_MS + 5000);
  assert_int_equal(c.st.code, MRPC_STATUS_OK);
  e2e_cli_assert_body(&c, 0, "still here");
  e2e_cli_free(&c);
  assert_int_equal(mrpc__channel_keepalive_time_ms(ch), 100);
  mrpc_channel_del(ch);
  e2e_server_stop(&srv);
}

/* With the server's defaults (pings without calls: one per 2 hours), a
 * client that pings an idle connection (permit_without_calls) gets
 * "too_many_pings" too, and backs off. */
static void test_idle_pings_against_the_default_policy(void **state) {
  (void)state;
  e2e_server srv;
  e2e_server_start(&srv, NULL, NULL, NULL, NULL, 0);
  mrpc_channel *ch = ka_channel(srv.target, 100, 5000, 1);
  assert_int_equal(e2e_unary_echo(ch, E2E_EVENT, "x"), MRPC_STATUS_OK);
  E2E_WAIT_UNTIL(mrpc__channel_keepalive_time_ms(ch) == 200, 5000);
  assert_int_equal(mrpc__channel_keepalive_time_ms(ch), 200);
  assert_int_equal(e2e_unary_echo(ch, E2E_EVENT, "y"), MRPC_STATUS_OK);
  mrpc_channel_del(ch);
  e2e_server_stop(&srv);
}

/* MAX_CONNECTION_IDLE and MAX_CONNECTION_AGE as the channel sees them:
 * graceful GOAWAYs, the calls in flight finish, the next call reconnects. */
static void test_idle_and_age_limits_are_graceful(void **state) {
  (void)state;
  mrpc_server_opts so;
  mrpc_server_opts_init(&so);
  so.max_connection_idle_ms = 200;
  so.max_connection_age_ms = 600;
  e2e_server srv;
  e2e_server_start(&srv, &so, NULL, NULL, NULL, 0);
  mrpc_channel *ch = e2e_channel(srv.target, NULL);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(e2e_unary_echo(ch, E2E_BLOCKING, "idle"),
                     MRPC_STATUS_OK);
    e2e_sleep_ms(700); /* the server closes the idle connection */
  }
  /* A call open across the connection's max age (no grace: unlimited). */
  e2e_cli c;
  e2e_cli_init(&c);
  mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS, NULL);
  e2e_cli_start(&c, ch, k_bidi, &o);
  for (int i = 0; i < 8; i++) {
    e2e_assert_sent(e2e_cli_send_str(c.call, k_bidi, "tick"));
    e2e_sleep_ms(150);
  }
  e2e_assert_sent(mrpc_call_close_send(c.call));
  e2e_cli_wait(&c, E2E_TIMEOUT_MS + 5000);
  assert_int_equal(c.st.code, MRPC_STATUS_OK);
  assert_int_equal(c.n, 8);
  e2e_cli_free(&c);
  assert_int_equal(e2e_unary_echo(ch, E2E_EVENT, "after"), MRPC_STATUS_OK);
  mrpc_channel_del(ch);
  e2e_server_stop(&srv);
}

/* ---- against a fake server: SETTINGS, then silence (or PING ACKs) ---- */

typedef struct fake {
  int lfd, port;
  int ack_pings; /* answer PINGs (else never answer anything) */
  pthread_t th;
  atomic_int stop, pings, conns, eofs;
} fake;

static void fake_write(int fd, const void *p, size_t n) {
  if (send(fd, p, n, MSG_NOSIGNAL) != (ssize_t)n) {
  }
}

/* Serves one connection until EOF or stop. */
static void fake_conn(fake *f, int fd) {
  static const uint8_t settings[9] = {0, 0, 0, 4, 0, 0, 0, 0, 0};
  static const uint8_t settings_ack[9] = {0, 0, 0, 4, 1, 0, 0, 0, 0};
  uint8_t buf[65536];
  size_t len = 0, skip = 24; /* the client preface */
  fake_write(fd, settings, sizeof settings);
  while (!atomic_load(&f->stop)) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 20) <= 0) continue;
    ssize_t r = recv(fd, buf + len, sizeof buf - len, 0);
    if (r <= 0) {
      atomic_fetch_add(&f->eofs, 1);
      break;
    }
    len += (size_t)r;
    size_t off = 0;
    for (;;) {
      if (skip) {
        size_t k = len - off < skip ? len - off : skip;
        off += k;
        skip -= k;
        if (skip) break;
      }
      if (len - off < 9) break;
      uint8_t *h = buf + off;
      size_t flen = (size_t)h[0] << 16 | (size_t)h[1] << 8 | h[2];
      if (len - off < 9 + flen) break;
      if (h[3] == 4 && !(h[4] & 1)) fake_write(fd, settings_ack, 9);
      if (h[3] == 6 && !(h[4] & 1) && flen == 8) {
        atomic_fetch_add(&f->pings, 1);
        if (f->ack_pings) {
          uint8_t ack[17] = {0, 0, 8, 6, 1, 0, 0, 0, 0};
          memcpy(ack + 9, h + 9, 8);
          fake_write(fd, ack, sizeof ack);
        }
      }
      off += 9 + flen;
    }
    memmove(buf, buf + off, len - off);
    len -= off;
  }
  close(fd);
}

static void *fake_main(void *arg) {
  fake *f = arg;
  while (!atomic_load(&f->stop)) {
    struct pollfd p = {f->lfd, POLLIN, 0};
    if (poll(&p, 1, 20) <= 0) continue;
    int fd = accept(f->lfd, NULL, NULL);
    if (fd < 0) continue;
    atomic_fetch_add(&f->conns, 1);
    fake_conn(f, fd);
  }
  return NULL;
}

static void fake_start(fake *f, int ack_pings) {
  memset(f, 0, sizeof *f);
  f->ack_pings = ack_pings;
  f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(f->lfd >= 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t al = sizeof a;
  assert_int_equal(bind(f->lfd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(f->lfd, 16), 0);
  assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&a, &al), 0);
  f->port = ntohs(a.sin_port);
  assert_int_equal(pthread_create(&f->th, NULL, fake_main, f), 0);
}

static void fake_stop(fake *f) {
  atomic_store(&f->stop, 1);
  pthread_join(f->th, NULL);
  close(f->lfd);
}

static mrpc_channel *fake_channel(const fake *f, int64_t time_ms,
                                  int64_t timeout_ms, int permit) {
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", f->port);
  return ka_channel(target, time_ms, timeout_ms, permit);
}

/* A server that stops answering: the keepalive PING is not acknowledged
 * within the timeout, the connection is closed, the call ends with
 * UNAVAILABLE long before its deadline. */
static void test_unanswered_ping_closes_the_connection(void **state) {
  (void)state;
  fake f;
  fake_start(&f, 0);
  mrpc_channel *ch = fake_channel(&f, 100, 300, 0);
  e2e_cli c;
  e2e_cli_init(&c);
  mrpc_call_opts o = e2e_copts(20000, NULL);
  int64_t t0 = e2e_now_ms();
  e2e_cli_start(&c, ch, &e2e_methods[E2E_EVENT][MRPC_UNARY], &o);
  e2e_assert_sent(e2e_cli_send_str(
      c.call, &e2e_methods[E2E_EVENT][MRPC_UNARY], "anyone?"));
  e2e_assert_sent(mrpc_call_close_send(c.call));
  e2e_cli_wait(&c, 15000);
  int64_t took = c.done_at - t0;
  assert_int_equal(c.st.code, MRPC_STATUS_UNAVAILABLE);
  assert_true(took >= 350);   /* a ping after 100 ms idle + 300 ms wait */
  assert_true(took < 10000); /* not the deadline */
  e2e_cli_free(&c);
  E2E_WAIT_UNTIL(atomic_load(&f.eofs) == 1, 5000);
  assert_int_equal(atomic_load(&f.eofs), 1);
  assert_true(atomic_load(&f.pings) >= 1);
  mrpc_channel_del(ch);
  fake_stop(&f);
}

/* Pings that are answered keep an idle call's connection up; without
 * permit_without_calls they stop when the last call ends, with it they go
 * on.  The keepalive off (0) sends none. */
static void test_permit_without_calls(void **state) {
  (void)state;
  for (int permit = 0; permit <= 2; permit++) {
    fake f;
    fake_start(&f, 1);
    /* permit 2: keepalive off */
    mrpc_channel *ch = fake_channel(&f, permit == 2 ? 0 : 100, 300,
                                    permit == 1);
    e2e_cli c;
    e2e_cli_init(&c);
    mrpc_call_opts o = e2e_copts(800, NULL);
    e2e_cli_start(&c, ch, k_bidi, &o);
    e2e_cli_wait(&c, 10000);
    /* Alive (pings answered) until the deadline. */
    assert_int_equal(c.st.code, MRPC_STATUS_DEADLINE_EXCEEDED);
    e2e_cli_free(&c);
    int during = atomic_load(&f.pings);
    if (permit == 2)
      assert_int_equal(during, 0);
    else
      assert_true(during >= 3);
    e2e_sleep_ms(200);
    int before = atomic_load(&f.pings);
    e2e_sleep_ms(600);
    int after = atomic_load(&f.pings);
    if (permit == 1)
      assert_true(after >= before + 3);
    else
      assert_int_equal(after, before);
    assert_int_equal(atomic_load(&f.eofs), 0);
    assert_int_equal(atomic_load(&f.conns), 1);
    mrpc_channel_del(ch);
    fake_stop(&f);
  }
}

/* keepalive_time_ms under the floor (10 s outside these tests) is raised. */
static void test_keepalive_time_is_clamped(void **state) {
  (void)state;
  int64_t floor_ms = mrpc__keepalive_min_time_ms;
  mrpc__keepalive_min_time_ms = 10000;
  mrpc_channel *ch = ka_channel("127.0.0.1:1", 1000, 0, 0);
  assert_int_equal(mrpc__channel_keepalive_time_ms(ch), 10000);
  mrpc_channel_del(ch);
  ch = ka_channel("127.0.0.1:1", 0, 0, 0);
  assert_int_equal(mrpc__channel_keepalive_time_ms(ch), 0);
  mrpc_channel_del(ch);
  ch = ka_channel("127.0.0.1:1", 60000, 0, 0);
  assert_int_equal(mrpc__channel_keepalive_time_ms(ch), 60000);
  mrpc_channel_del(ch);
  mrpc__keepalive_min_time_ms = floor_ms;
}

int main(void) {
  mrpc__keepalive_min_time_ms = 10;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_too_many_pings_doubles_the_keepalive_time),
      cmocka_unit_test(test_pings_within_the_policy_keep_the_call),
      cmocka_unit_test(test_idle_pings_against_the_default_policy),
      cmocka_unit_test(test_idle_and_age_limits_are_graceful),
      cmocka_unit_test(test_unanswered_ping_closes_the_connection),
      cmocka_unit_test(test_permit_without_calls),
      cmocka_unit_test(test_keepalive_time_is_clamped),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
