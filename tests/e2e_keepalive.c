/* End to end: client keepalive (keepalive.md, A8) against our server and
 * against a fake HTTP/2 server that answers nothing, the server's
 * connection lifetime limits as our channel sees them, and the server's
 * own keepalive against a raw client that stops answering.
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
extern int64_t mrpc__server_keepalive_min_time_ms;
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

/* Reads the whole frames in buf[0..len): counts PINGs in *pings and
 * acknowledges them (ack_pings) and SETTINGS (ack_settings).  Returns the
 * bytes used. */
static size_t take_frames(int fd, const uint8_t *buf, size_t len,
                          int ack_pings, int ack_settings, int *pings) {
  static const uint8_t settings_ack[9] = {0, 0, 0, 4, 1, 0, 0, 0, 0};
  size_t off = 0;
  while (len - off >= 9) {
    const uint8_t *h = buf + off;
    size_t flen = (size_t)h[0] << 16 | (size_t)h[1] << 8 | h[2];
    if (len - off < 9 + flen) break;
    if (ack_settings && h[3] == 4 && !(h[4] & 1))
      fake_write(fd, settings_ack, 9);
    if (h[3] == 6 && !(h[4] & 1) && flen == 8) {
      (*pings)++;
      if (ack_pings) {
        uint8_t ack[17] = {0, 0, 8, 6, 1, 0, 0, 0, 0};
        memcpy(ack + 9, h + 9, 8);
        fake_write(fd, ack, sizeof ack);
      }
    }
    off += 9 + flen;
  }
  return off;
}

/* Serves one connection until EOF or stop. */
static void fake_conn(fake *f, int fd) {
  static const uint8_t settings[9] = {0, 0, 0, 4, 0, 0, 0, 0, 0};
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
    size_t off = len < skip ? len : skip;
    skip -= off;
    int pings = 0;
    if (!skip)
      off += take_frames(fd, buf + off, len - off, f->ack_pings, 1, &pings);
    atomic_fetch_add(&f->pings, pings);
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

/* ---- server keepalive, against a client that stops answering ---- */

/* An event bidi handler that never answers; on_done records its code. */
static atomic_int g_srv_done, g_srv_code;
static void hold_done(mrpc_call *call, const mrpc_status *st, void *ctx) {
  (void)call;
  (void)ctx;
  atomic_store(&g_srv_code, (int)st->code);
  atomic_store(&g_srv_done, 1);
}
static void hold_handler(mrpc_call *call, void *user) {
  (void)user;
  static const mrpc_call_ops ops = {NULL, NULL, NULL, hold_done};
  mrpc_call_set_ops(call, &ops, NULL);
}
static const mrpc_method k_hold = {"/e2e.Ka/Hold", MRPC_BIDI_STREAMING,
                                   E2E_D(simple_request),
                                   E2E_D(simple_response)};

/* A server with k_hold and the given keepalive; resets g_srv_done. */
static void hold_server(e2e_server *srv, int64_t time_ms, int64_t timeout_ms) {
  mrpc_server_opts so;
  mrpc_server_opts_init(&so);
  so.keepalive_time_ms = time_ms;
  so.keepalive_timeout_ms = timeout_ms;
  mrpc_method_handler hh = {hold_handler, NULL, NULL};
  e2e_server_start(srv, &so, NULL, &k_hold, &hh, 1);
  atomic_store(&g_srv_done, 0);
}

/* One HPACK field, literal without indexing, new name, no Huffman. */
static size_t hpack_lit(uint8_t *o, const char *n, const char *v) {
  size_t nl = strlen(n), vl = strlen(v), k = 0;
  o[k++] = 0;
  o[k++] = (uint8_t)nl;
  memcpy(o + k, n, nl);
  k += nl;
  o[k++] = (uint8_t)vl;
  memcpy(o + k, v, vl);
  return k + vl;
}

/* A raw client: preface, SETTINGS, HEADERS of a call to k_hold; then it
 * reads, answering nothing (or only PINGs, with ack_pings) until the
 * server closes or until_ms passes.  Returns 1 on the server's EOF;
 * *pings counts the server's PINGs. */
static int raw_silent_client(int port, int ack_pings, int64_t until_ms,
                             int *pings) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons((uint16_t)port);
  assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  uint8_t out[512];
  size_t n = 0;
  memcpy(out, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
  n = 24;
  static const uint8_t settings[9] = {0, 0, 0, 4, 0, 0, 0, 0, 0};
  memcpy(out + n, settings, 9);
  n += 9;
  uint8_t *h = out + n;
  size_t b = 9;
  b += hpack_lit(h + b, ":method", "POST");
  b += hpack_lit(h + b, ":scheme", "http");
  b += hpack_lit(h + b, ":path", k_hold.path);
  b += hpack_lit(h + b, ":authority", "localhost");
  b += hpack_lit(h + b, "content-type", "application/grpc");
  b += hpack_lit(h + b, "te", "trailers");
  size_t flen = b - 9;
  uint8_t hd[9] = {0, (uint8_t)(flen >> 8), (uint8_t)flen, 1, 4, 0, 0, 0, 1};
  memcpy(h, hd, 9); /* HEADERS, END_HEADERS, stream 1 */
  n += b;
  assert_int_equal(send(fd, out, n, MSG_NOSIGNAL), (ssize_t)n);
  uint8_t buf[65536];
  size_t len = 0;
  int eof = 0;
  *pings = 0;
  while (!eof && e2e_now_ms() < until_ms) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 20) <= 0) continue;
    ssize_t r = recv(fd, buf + len, sizeof buf - len, 0);
    if (r <= 0) {
      eof = 1;
      break;
    }
    len += (size_t)r;
    size_t off = take_frames(fd, buf, len, ack_pings, 0, pings);
    memmove(buf, buf + off, len - off);
    len -= off;
  }
  close(fd);
  return eof;
}

/* A client that stops answering (here: it never reads its PINGs' way
 * back): the server's keepalive PING goes unanswered, the server closes
 * the connection and the call ends, long before any deadline. */
static void test_server_keepalive_finds_a_silent_client(void **state) {
  (void)state;
  e2e_server srv;
  hold_server(&srv, 100, 300);
  int pings;
  int64_t t0 = e2e_now_ms();
  int eof = raw_silent_client(srv.port, 0, t0 + 10000, &pings);
  int64_t took = e2e_now_ms() - t0;
  assert_int_equal(eof, 1);
  assert_true(pings >= 1);
  assert_true(took >= 350); /* a ping after 100 ms idle + 300 ms wait */
  E2E_WAIT_UNTIL(atomic_load(&g_srv_done), 5000);
  assert_int_equal(atomic_load(&g_srv_done), 1);
  assert_int_equal(atomic_load(&g_srv_code), MRPC_STATUS_CANCELLED);
  e2e_server_stop(&srv);
}

/* The same client answering the PINGs keeps its connection and its call
 * (for 1.2 s: several pings, no close); keepalive off (< 0) sends none. */
static void test_server_keepalive_answered_or_off_keeps_the_call(
    void **state) {
  (void)state;
  for (int off = 0; off <= 1; off++) {
    e2e_server srv;
    hold_server(&srv, off ? -1 : 100, 300);
    int pings;
    int eof = raw_silent_client(srv.port, 1, e2e_now_ms() + 1200, &pings);
    assert_int_equal(eof, 0);
    if (off)
      assert_int_equal(pings, 0);
    else
      assert_true(pings >= 2);
    /* The client went away (closed): the call ends. */
    E2E_WAIT_UNTIL(atomic_load(&g_srv_done), 5000);
    assert_int_equal(atomic_load(&g_srv_done), 1);
    e2e_server_stop(&srv);
  }
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

/* The server's keepalive time under its floor (1 s outside these tests)
 * is raised: 1 ms sends no PING within 600 ms. */
static void test_server_keepalive_time_is_clamped(void **state) {
  (void)state;
  int64_t floor_ms = mrpc__server_keepalive_min_time_ms;
  mrpc__server_keepalive_min_time_ms = 1000;
  e2e_server srv;
  hold_server(&srv, 1, 300);
  int pings;
  int eof = raw_silent_client(srv.port, 0, e2e_now_ms() + 600, &pings);
  mrpc__server_keepalive_min_time_ms = floor_ms;
  assert_int_equal(eof, 0);
  assert_int_equal(pings, 0);
  E2E_WAIT_UNTIL(atomic_load(&g_srv_done), 5000);
  e2e_server_stop(&srv);
}

int main(void) {
  mrpc__keepalive_min_time_ms = 10;
  mrpc__server_keepalive_min_time_ms = 10;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_too_many_pings_doubles_the_keepalive_time),
      cmocka_unit_test(test_pings_within_the_policy_keep_the_call),
      cmocka_unit_test(test_idle_pings_against_the_default_policy),
      cmocka_unit_test(test_idle_and_age_limits_are_graceful),
      cmocka_unit_test(test_unanswered_ping_closes_the_connection),
      cmocka_unit_test(test_permit_without_calls),
      cmocka_unit_test(test_server_keepalive_finds_a_silent_client),
      cmocka_unit_test(test_server_keepalive_answered_or_off_keeps_the_call),
      cmocka_unit_test(test_server_keepalive_time_is_clamped),
      cmocka_unit_test(test_keepalive_time_is_clamped),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
