/* End to end: client-side load balancing (lib/channel.c): round_robin and
 * pick_first over several in-process servers, connection pools, servers
 * that leave and come back, DNS targets re-resolved through the test hook
 * (mrpc__resolve_hook), and channels deleted with work in flight.
 * Every server counts the calls it serves and the distinct peers
 * (connections) they came from; the tests assert counts and orderings,
 * never tight timings, and every wait is bounded.
 * SPDX-License-Identifier: Apache-2.0 */
#include "e2e_common.h"

#include "resolver.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <sys/socket.h>

/* ---- counting servers ---- */

#define MAX_PEERS 32
#define WAIT_MS 10000 /* bound of every E2E_WAIT_UNTIL */

static const mrpc_method k_count = {"/lb.Count/Unary", MRPC_UNARY,
                                    E2E_D(simple_request),
                                    E2E_D(simple_response)};

typedef struct backend {
  e2e_server s;
  int port; /* kept across a stop, to start again there */
  pthread_mutex_t mu;
  int calls;
  int n_peers;
  char peers[MAX_PEERS][64];
} backend;

/* The echo handler, after noting the call and its connection. */
static void count_echo(mrpc_call *call, void *user) {
  backend *b = user;
  const char *peer = mrpc_call_peer(call);
  pthread_mutex_lock(&b->mu);
  b->calls++;
  int known = 0;
  for (int i = 0; i < b->n_peers && !known; i++)
    known = strcmp(b->peers[i], peer) == 0;
  if (!known && b->n_peers < MAX_PEERS)
    snprintf(b->peers[b->n_peers++], sizeof b->peers[0], "%s", peer);
  pthread_mutex_unlock(&b->mu);
  e2e_event_echo(call, NULL);
}

/* Starts b on port (0: any free one). */
static void backend_start(backend *b, int port) {
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
  mrpc_method_handler h = {count_echo, NULL, b};
  e2e_server_start(&b->s, NULL, addr, &k_count, &h, 1);
  b->port = b->s.port;
}

static void backends_start(backend *b, int n) {
  for (int i = 0; i < n; i++) {
    memset(&b[i], 0, sizeof b[i]);
    pthread_mutex_init(&b[i].mu, NULL);
    backend_start(&b[i], 0);
  }
}

static void backend_stop(backend *b) {
  if (b->s.srv) e2e_server_stop(&b->s);
}

static void backends_free(backend *b, int n) {
  for (int i = 0; i < n; i++) {
    backend_stop(&b[i]);
    pthread_mutex_destroy(&b[i].mu);
  }
}

static int backend_calls(backend *b) {
  pthread_mutex_lock(&b->mu);
  int n = b->calls;
  pthread_mutex_unlock(&b->mu);
  return n;
}

static int backend_peers(backend *b) {
  pthread_mutex_lock(&b->mu);
  int n = b->n_peers;
  pthread_mutex_unlock(&b->mu);
  return n;
}

static void backends_reset(backend *b, int n) {
  for (int i = 0; i < n; i++) {
    pthread_mutex_lock(&b[i].mu);
    b[i].calls = 0;
    b[i].n_peers = 0;
    pthread_mutex_unlock(&b[i].mu);
  }
}

/* ---- channels and calls ---- */

/* "ipv4:127.0.0.1:P1,127.0.0.1:P2,..." */
static void ipv4_target(char *buf, size_t cap, const int *ports, int n) {
  size_t len = (size_t)snprintf(buf, cap, "ipv4:");
  for (int i = 0; i < n; i++)
    len += (size_t)snprintf(buf + len, cap - len, "%s127.0.0.1:%d",
                            i ? "," : "", ports[i]);
  assert_true(len < cap);
}

static mrpc_channel *backends_channel(backend *b, int n,
                                      const mrpc_channel_opts *o) {
  int ports[8];
  char target[256];
  for (int i = 0; i < n; i++) ports[i] = b[i].port;
  ipv4_target(target, sizeof target, ports, n);
  return e2e_channel(target, o);
}

/* Short backoff so that lost servers are retried within tens of ms. */
static mrpc_channel_opts lb_opts(mrpc_lb_policy policy, int pool) {
  mrpc_channel_opts o;
  mrpc_channel_opts_init(&o);
  o.lb_policy = policy;
  o.pool_size = pool;
  o.backoff_initial_ms = 50;
  o.backoff_max_ms = 200;
  return o;
}

/* One unary call of the counting method; returns its status code (-1 if
 * it could not be made) and its message in why.  Any thread. */
static int lb_call(mrpc_channel *ch, int wfr, int64_t timeout_ms, char *why,
                   size_t why_len) {
  e2e_msg m;
  mrpc_call_opts o = e2e_copts(timeout_ms, NULL);
  o.wait_for_ready = wfr;
  ProtobufCMessage *resp = NULL;
  mrpc_status st;
  int rc = mrpc_channel_unary(ch, &k_count,
                              e2e_msg_str(&m, k_count.request, "lb"), &o,
                              &resp, &st);
  if (rc != 0) {
    if (why)
      snprintf(why, why_len, "mrpc_channel_unary: %s", mrpc_strerror(rc));
    return -1;
  }
  int code = st.code;
  if (why) snprintf(why, why_len, "%s", st.message ? st.message : "");
  if (resp) protobuf_c_message_free_unpacked(resp, NULL);
  mrpc_status_free(&st);
  return code;
}

/* n fail-fast calls, each of which must succeed. */
static void calls_ok(mrpc_channel *ch, int n) {
  for (int i = 0; i < n; i++) {
    char why[256];
    int code = lb_call(ch, 0, E2E_TIMEOUT_MS, why, sizeof why);
    if (code != MRPC_STATUS_OK)
      fail_msg("call %d of %d: status %d (%s)", i, n, code, why);
  }
}

/* Connects (try_to_connect) and waits for n READY connections. */
static void wait_ready(mrpc_channel *ch, size_t n) {
  mrpc_channel_get_state(ch, 1);
  E2E_WAIT_UNTIL(mrpc_channel_ready_count(ch) == n, WAIT_MS);
  assert_int_equal(mrpc_channel_ready_count(ch), n);
  assert_int_equal(mrpc_channel_get_state(ch, 0), MRPC_CHANNEL_READY);
}


static mrpc_call_opts wfr_copts(int64_t timeout_ms) {
  mrpc_call_opts o = e2e_copts(timeout_ms, NULL);
  o.wait_for_ready = 1;
  return o;
}

/* An event-driven unary call, sent and half-closed; the caller waits. */
static void start_unary(e2e_cli *c, mrpc_channel *ch, const mrpc_call_opts *o) {
  e2e_cli_init(c);
  e2e_cli_start(c, ch, &k_count, o);
  e2e_assert_sent(e2e_cli_send_str(c->call, &k_count, "lb"));
  e2e_assert_sent(mrpc_call_close_send(c->call));
}


/* ---- wait-for-ready calls in a loop on another thread ---- */

typedef struct pumper {
  mrpc_channel *ch;
  pthread_t th;
  atomic_int stop, ok, failed, failed_other; /* other: not UNAVAILABLE */
  char why[256]; /* the first failure; read after the join */
} pumper;

static void *pump_main(void *arg) {
  pumper *p = arg;
  while (!atomic_load(&p->stop)) {
    char why[200];
    int code = lb_call(p->ch, 1, E2E_TIMEOUT_MS, why, sizeof why);
    if (code == MRPC_STATUS_OK) {
      atomic_fetch_add(&p->ok, 1);
      continue;
    }
    if (code != MRPC_STATUS_UNAVAILABLE) atomic_fetch_add(&p->failed_other, 1);
    if (atomic_fetch_add(&p->failed, 1) == 0)
      snprintf(p->why, sizeof p->why, "status %d: %s", code, why);
  }
  return NULL;
}

static void pump_start(pumper *p, mrpc_channel *ch) {
  memset(p, 0, sizeof *p);
  p->ch = ch;
  assert_int_equal(pthread_create(&p->th, NULL, pump_main, p), 0);
  E2E_WAIT_UNTIL(atomic_load(&p->ok) + atomic_load(&p->failed) >= 10, WAIT_MS);
}

static void pump_stop(pumper *p) {
  atomic_store(&p->stop, 1);
  pthread_join(p->th, NULL);
  assert_true(atomic_load(&p->ok) >= 10);
}

/* ---- the DNS hook: answers "svc.test" with ports on 127.0.0.1 ---- */

static pthread_mutex_t dns_mu = PTHREAD_MUTEX_INITIALIZER;
static int dns_ports[8], dns_n;
static int dns_fail, dns_delay_ms;
static int dns_lookups, dns_busy;

/* Runs on the channel's resolver thread. */
static int dns_hook(const char *host, const char *port, mrpc__addr_list *out) {
  (void)port;
  int ports[8];
  pthread_mutex_lock(&dns_mu);
  int n = dns_n, fail = dns_fail, delay = dns_delay_ms;
  memcpy(ports, dns_ports, sizeof ports);
  dns_lookups++;
  dns_busy++;
  pthread_mutex_unlock(&dns_mu);
  if (delay) e2e_sleep_ms(delay);
  int rc = -1;
  if (!fail && strcmp(host, "svc.test") == 0) {
    out->n = 0;
    for (int i = 0; i < n; i++) {
      struct sockaddr_in *in = (struct sockaddr_in *)&out->a[out->n];
      memset(in, 0, sizeof *in);
      in->sin_family = AF_INET;
      in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      in->sin_port = htons((uint16_t)ports[i]);
      out->len[out->n++] = sizeof *in;
    }
    rc = 0;
  }
  pthread_mutex_lock(&dns_mu);
  dns_busy--;
  pthread_mutex_unlock(&dns_mu);
  return rc;
}

/* What the next lookups answer: the backends' ports, or a failure. */
static void dns_set(backend *const *b, int n, int fail, int delay_ms) {
  pthread_mutex_lock(&dns_mu);
  dns_n = n;
  for (int i = 0; i < n; i++) dns_ports[i] = b[i]->port;
  dns_fail = fail;
  dns_delay_ms = delay_ms;
  pthread_mutex_unlock(&dns_mu);
}

static int dns_get(const int *v) {
  pthread_mutex_lock(&dns_mu);
  int r = *v;
  pthread_mutex_unlock(&dns_mu);
  return r;
}

static mrpc_channel_opts dns_opts(void) {
  mrpc_channel_opts o = lb_opts(MRPC_LB_ROUND_ROBIN, 1);
  o.resolve_interval_ms = 100;
  return o;
}

/* ---- round_robin and pick_first ---- */

/* round_robin connects to every address and rotates over them. */
static void test_round_robin_spreads_calls(void **state) {
  (void)state;
  backend b[3];
  backends_start(b, 3);
  mrpc_channel_opts o = lb_opts(MRPC_LB_ROUND_ROBIN, 1);
  mrpc_channel *ch = backends_channel(b, 3, &o);
  wait_ready(ch, 3);
  calls_ok(ch, 30);
  for (int i = 0; i < 3; i++) {
    assert_true(backend_calls(&b[i]) >= 5);
    assert_int_equal(backend_peers(&b[i]), 1);
  }
  assert_int_equal(backend_calls(&b[0]) + backend_calls(&b[1]) +
                       backend_calls(&b[2]),
                   30);
  mrpc_channel_del(ch);
  backends_free(b, 3);
}

/* pick_first sends everything to the first address that works. */
static void test_pick_first_uses_the_first_address(void **state) {
  (void)state;
  backend b[3];
  backends_start(b, 3);
  mrpc_channel_opts o = lb_opts(MRPC_LB_PICK_FIRST, 1);
  mrpc_channel *ch = backends_channel(b, 3, &o);
  calls_ok(ch, 10);
  assert_int_equal(mrpc_channel_ready_count(ch), 1);
  assert_int_equal(backend_calls(&b[0]), 10);
  assert_int_equal(backend_calls(&b[1]), 0);
  assert_int_equal(backend_calls(&b[2]), 0);
  mrpc_channel_del(ch);
  backends_free(b, 3);
}

static void test_pick_first_skips_a_refusing_address(void **state) {
  (void)state;
  backend b[3];
  backends_start(b, 3);
  int fd;
  int ports[3] = {e2e_refusing_port(&fd), b[1].port, b[2].port};
  char target[256];
  ipv4_target(target, sizeof target, ports, 3);
  mrpc_channel_opts o = lb_opts(MRPC_LB_PICK_FIRST, 1);
  mrpc_channel *ch = e2e_channel(target, &o);
  calls_ok(ch, 10);
  assert_int_equal(mrpc_channel_ready_count(ch), 1);
  assert_int_equal(backend_calls(&b[1]), 10);
  assert_int_equal(backend_calls(&b[2]), 0);
  mrpc_channel_del(ch);
  close(fd);
  backends_free(b, 3);
}

/* ---- pools ---- */

static void test_pick_first_pool_of_four(void **state) {
  (void)state;
  backend b[1];
  backends_start(b, 1);
  mrpc_channel_opts o = lb_opts(MRPC_LB_PICK_FIRST, 4);
  mrpc_channel *ch = backends_channel(b, 1, &o);
  wait_ready(ch, 4);
  calls_ok(ch, 20); /* in turn over the four */
  assert_int_equal(backend_calls(&b[0]), 20);
  assert_int_equal(backend_peers(&b[0]), 4);
  mrpc_channel_del(ch);
  backends_free(b, 1);
}

static void test_round_robin_pool_of_two_per_address(void **state) {
  (void)state;
  backend b[2];
  backends_start(b, 2);
  mrpc_channel_opts o = lb_opts(MRPC_LB_ROUND_ROBIN, 2);
  mrpc_channel *ch = backends_channel(b, 2, &o);
  wait_ready(ch, 4);
  calls_ok(ch, 20);
  for (int i = 0; i < 2; i++) {
    assert_int_equal(backend_calls(&b[i]), 10);
    assert_int_equal(backend_peers(&b[i]), 2);
  }
  mrpc_channel_del(ch);
  backends_free(b, 2);
}

/* ---- servers leaving and coming back ---- */

/* A server stops (GOAWAY, close): calls go on on the other two, and once it
 * listens again on its port it rejoins.  Wait-for-ready calls are made all
 * the while from another thread, one at a time.  Only one that was in
 * flight on the stopping server may fail (a stop with no grace ends the
 * calls on the connection, and they had left: no transparent retry): at
 * most two, UNAVAILABLE, and none once the channel noticed the stop. */
static void test_round_robin_survives_a_stop_and_a_restart(void **state) {
  (void)state;
  backend b[3];
  backends_start(b, 3);
  mrpc_channel_opts o = lb_opts(MRPC_LB_ROUND_ROBIN, 1);
  mrpc_channel *ch = backends_channel(b, 3, &o);
  wait_ready(ch, 3);
  pumper p;
  pump_start(&p, ch);
  assert_int_equal(atomic_load(&p.failed), 0);

  backend_stop(&b[1]);
  E2E_WAIT_UNTIL(mrpc_channel_ready_count(ch) == 2, WAIT_MS);
  assert_int_equal(mrpc_channel_ready_count(ch), 2);
  int before0 = backend_calls(&b[0]), before2 = backend_calls(&b[2]);
  calls_ok(ch, 30); /* fail fast, and none fails */
  /* Strict turns over the two: each gets half of all calls (the pumper's
   * included), so at least 15 of the 30. */
  assert_true(backend_calls(&b[0]) - before0 >= 10);
  assert_true(backend_calls(&b[2]) - before2 >= 10);
  assert_int_equal(mrpc_channel_get_state(ch, 0), MRPC_CHANNEL_READY);
  int failed_in_stop = atomic_load(&p.failed);
  if (failed_in_stop > 2 || atomic_load(&p.failed_other))
    fail_msg("%d wait-for-ready calls failed in the stop, first: %s",
             failed_in_stop, p.why);

  backends_reset(&b[1], 1);
  backend_start(&b[1], b[1].port);
  E2E_WAIT_UNTIL(mrpc_channel_ready_count(ch) == 3, WAIT_MS);
  assert_int_equal(mrpc_channel_ready_count(ch), 3);
  calls_ok(ch, 30);
  assert_true(backend_calls(&b[1]) >= 5);

  pump_stop(&p);
  if (atomic_load(&p.failed) != failed_in_stop)
    fail_msg("%d wait-for-ready calls failed after the stop settled",
             atomic_load(&p.failed) - failed_in_stop);
  mrpc_channel_del(ch);
  backends_free(b, 3);
}

/* Every server gone: fail-fast calls end UNAVAILABLE in TRANSIENT_FAILURE,
 * a wait-for-ready call with a deadline ends DEADLINE_EXCEEDED, one without
 * completes when a server is back. */
static void test_round_robin_all_servers_gone(void **state) {
  (void)state;
  backend b[3];
  backends_start(b, 3);
  mrpc_channel_opts o = lb_opts(MRPC_LB_ROUND_ROBIN, 1);
  mrpc_channel *ch = backends_channel(b, 3, &o);
  wait_ready(ch, 3);
  for (int i = 0; i < 3; i++) backend_stop(&b[i]);
  E2E_WAIT_UNTIL(mrpc_channel_ready_count(ch) == 0 &&
                     mrpc_channel_get_state(ch, 0) ==
                         MRPC_CHANNEL_TRANSIENT_FAILURE,
                 WAIT_MS);
  assert_int_equal(mrpc_channel_ready_count(ch), 0);
  assert_int_equal(mrpc_channel_get_state(ch, 0),
                   MRPC_CHANNEL_TRANSIENT_FAILURE);
  for (int i = 0; i < 5; i++) {
    char why[256];
    assert_int_equal(lb_call(ch, 0, E2E_TIMEOUT_MS, why, sizeof why),
                     MRPC_STATUS_UNAVAILABLE);
    assert_non_null(strstr(why, "connect"));
  }
  assert_int_equal(lb_call(ch, 1, 300, NULL, 0), MRPC_STATUS_DEADLINE_EXCEEDED);

  e2e_cli c;
  mrpc_call_opts co = wfr_copts(0);
  start_unary(&c, ch, &co);
  e2e_sleep_ms(200); /* several attempts fail meanwhile */
  assert_int_equal(e2e_cli_done(&c), 0);
  backend_start(&b[2], b[2].port);
  e2e_cli_wait(&c, WAIT_MS);
  assert_int_equal(c.st.code, MRPC_STATUS_OK);
  e2e_cli_free(&c);
  assert_int_equal(backend_calls(&b[2]), 1);
  assert_int_equal(mrpc_channel_get_state(ch, 0), MRPC_CHANNEL_READY);
  mrpc_channel_del(ch);
  backends_free(b, 3);
}

/* ---- DNS targets ---- */

/* The addresses follow the lookups: A,B -> A,B,C (C joins) -> C (A and B
 * are drained: no new calls, while a stream already open on one of them
 * goes on to its end). */
static void test_dns_addresses_come_and_go(void **state) {
  (void)state;
  backend b[3];
  backends_start(b, 3);
  backend *ab[2] = {&b[0], &b[1]}, *abc[3] = {&b[0], &b[1], &b[2]},
          *c[1] = {&b[2]};
  dns_set(ab, 2, 0, 0);
  mrpc_channel_opts o = dns_opts();
  mrpc_channel *ch = e2e_channel("dns:///svc.test:1234", &o);
  wait_ready(ch, 2);
  calls_ok(ch, 20);
  assert_int_equal(backend_calls(&b[0]), 10);
  assert_int_equal(backend_calls(&b[1]), 10);
  assert_int_equal(backend_calls(&b[2]), 0);
  /* A bidi echo stream, on A or B. */
  const mrpc_method *bidi = &e2e_methods[E2E_EVENT][MRPC_BIDI_STREAMING];
  e2e_cli s;
  e2e_cli_init(&s);
  mrpc_call_opts so = e2e_copts(E2E_TIMEOUT_MS, NULL);
  e2e_cli_start(&s, ch, bidi, &so);
  e2e_assert_sent(e2e_cli_send_str(s.call, bidi, "one"));

  dns_set(abc, 3, 0, 0);
  E2E_WAIT_UNTIL(mrpc_channel_ready_count(ch) == 3, WAIT_MS);
  assert_int_equal(mrpc_channel_ready_count(ch), 3);
  backends_reset(b, 3);
  calls_ok(ch, 30);
  for (int i = 0; i < 3; i++) assert_true(backend_calls(&b[i]) >= 5);

  dns_set(c, 1, 0, 0);
  /* Lookups read the answer when they begin, and the next begins only
   * after the last one's result was applied: two more and C alone is in. */
  int n = dns_get(&dns_lookups);
  E2E_WAIT_UNTIL(dns_get(&dns_lookups) >= n + 2, WAIT_MS);
  assert_true(dns_get(&dns_lookups) >= n + 2);
  backends_reset(b, 3);
  calls_ok(ch, 20);
  assert_int_equal(backend_calls(&b[0]), 0);
  assert_int_equal(backend_calls(&b[1]), 0);
  assert_int_equal(backend_calls(&b[2]), 20);
  /* The stream on the drained connection still works and ends OK. */
  e2e_assert_sent(e2e_cli_send_str(s.call, bidi, "two"));
  e2e_assert_sent(mrpc_call_close_send(s.call));
  e2e_cli_wait(&s, WAIT_MS);
  assert_int_equal(s.st.code, MRPC_STATUS_OK);
  assert_int_equal(s.n, 2);
  e2e_cli_assert_body(&s, 0, "one");
  e2e_cli_assert_body(&s, 1, "two");
  e2e_cli_free(&s);
  E2E_WAIT_UNTIL(mrpc_channel_ready_count(ch) == 1, WAIT_MS);
  assert_int_equal(mrpc_channel_ready_count(ch), 1);
  assert_int_equal(mrpc_channel_get_state(ch, 0), MRPC_CHANNEL_READY);
  mrpc_channel_del(ch);
  backends_free(b, 3);
}

/* A name that does not resolve: TRANSIENT_FAILURE, fail-fast calls get
 * the resolver's error; the channel recovers once it resolves. */
static void test_dns_failure_then_recovery(void **state) {
  (void)state;
  backend b[1];
  backends_start(b, 1);
  backend *a[1] = {&b[0]};
  dns_set(NULL, 0, 1, 0);
  mrpc_channel_opts o = dns_opts();
  mrpc_channel *ch = e2e_channel("dns:///svc.test:1234", &o);
  char why[256];
  assert_int_equal(lb_call(ch, 0, E2E_TIMEOUT_MS, why, sizeof why),
                   MRPC_STATUS_UNAVAILABLE);
  assert_non_null(strstr(why, "resolve"));
  assert_non_null(strstr(why, "svc.test"));
  E2E_WAIT_UNTIL(mrpc_channel_get_state(ch, 0) ==
                     MRPC_CHANNEL_TRANSIENT_FAILURE,
                 WAIT_MS);
  assert_int_equal(mrpc_channel_get_state(ch, 0),
                   MRPC_CHANNEL_TRANSIENT_FAILURE);
  assert_int_equal(mrpc_channel_ready_count(ch), 0);
  assert_int_equal(backend_calls(&b[0]), 0);

  dns_set(a, 1, 0, 0);
  E2E_WAIT_UNTIL(mrpc_channel_get_state(ch, 0) == MRPC_CHANNEL_READY,
                 WAIT_MS);
  assert_int_equal(mrpc_channel_get_state(ch, 0), MRPC_CHANNEL_READY);
  calls_ok(ch, 3);
  assert_int_equal(backend_calls(&b[0]), 3);
  mrpc_channel_del(ch);
  backends_free(b, 1);
}

/* ---- deleting a channel with work in flight ---- */

/* Wait-for-ready calls waiting through connection failures end CANCELLED. */
static void test_del_with_calls_waiting_for_ready(void **state) {
  (void)state;
  int fd;
  int port = e2e_refusing_port(&fd);
  mrpc_channel_opts o = lb_opts(MRPC_LB_ROUND_ROBIN, 1);
  char target[64];
  snprintf(target, sizeof target, "ipv4:127.0.0.1:%d", port);
  mrpc_channel *ch = e2e_channel(target, &o);
  e2e_cli c[3];
  mrpc_call_opts co = wfr_copts(0);
  for (int i = 0; i < 3; i++) start_unary(&c[i], ch, &co);
  E2E_WAIT_UNTIL(mrpc_channel_get_state(ch, 0) ==
                     MRPC_CHANNEL_TRANSIENT_FAILURE,
                 WAIT_MS);
  e2e_sleep_ms(100);
  for (int i = 0; i < 3; i++) assert_int_equal(e2e_cli_done(&c[i]), 0);
  mrpc_channel_del(ch);
  for (int i = 0; i < 3; i++) {
    e2e_cli_wait(&c[i], WAIT_MS);
    assert_int_equal(c[i].st.code, MRPC_STATUS_CANCELLED);
    e2e_cli_free(&c[i]);
  }
  close(fd);
}

/* A lookup that takes 300 ms is under way: del ends the waiting calls
 * (CANCELLED); the detached resolver thread finishes on its own later and
 * its result goes nowhere (LSan checks that nothing is left behind). */
static void test_del_during_a_slow_lookup(void **state) {
  (void)state;
  backend b[1];
  backends_start(b, 1);
  backend *a[1] = {&b[0]};
  dns_set(a, 1, 0, 300);
  mrpc_channel_opts o = dns_opts();
  mrpc_channel *ch = e2e_channel("dns:///svc.test:1234", &o);
  e2e_cli wfr, ff;
  mrpc_call_opts co = wfr_copts(0), fo = e2e_copts(0, NULL);
  start_unary(&wfr, ch, &co);
  start_unary(&ff, ch, &fo);
  E2E_WAIT_UNTIL(dns_get(&dns_busy) == 1, WAIT_MS);
  assert_int_equal(dns_get(&dns_busy), 1);
  assert_int_equal(mrpc_channel_get_state(ch, 0), MRPC_CHANNEL_CONNECTING);
  mrpc_channel_del(ch);
  e2e_cli_wait(&wfr, WAIT_MS);
  e2e_cli_wait(&ff, WAIT_MS);
  assert_int_equal(wfr.st.code, MRPC_STATUS_CANCELLED);
  assert_int_equal(ff.st.code, MRPC_STATUS_CANCELLED);
  e2e_cli_free(&wfr);
  e2e_cli_free(&ff);
  /* The detached thread returns from the hook and frees what it holds. */
  E2E_WAIT_UNTIL(dns_get(&dns_busy) == 0, WAIT_MS);
  assert_int_equal(dns_get(&dns_busy), 0);
  e2e_sleep_ms(50);
  assert_int_equal(backend_calls(&b[0]), 0);
  dns_set(NULL, 0, 1, 0);
  backends_free(b, 1);
}

/* ---- the shutdown notice window, lookups on leaving IDLE ---- */

/* A bare HTTP/2 client (nghttp2) on a blocking socket: the library's own
 * client stops using a connection as soon as it reads the shutdown notice,
 * so it can hit the window below only by chance. */
typedef struct raw_h2 {
  int fd, eof;
  nghttp2_session *ng;
  int settings, goaways; /* GOAWAYs: counted by raw_io */
  int32_t goaway_last;
  int status; /* grpc-status, -1 none */
  size_t data_bytes;
  int closed;
  uint32_t close_code;
  uint8_t body[64];
  size_t body_len, body_off;
  uint8_t in[65536]; /* received, not yet a whole frame */
  size_t in_len;
} raw_h2;

static ssize_t raw_send(nghttp2_session *s, const uint8_t *d, size_t n,
                        int flags, void *ud) {
  (void)s;
  (void)flags;
  ssize_t w = send(((raw_h2 *)ud)->fd, d, n, MSG_NOSIGNAL);
  return w < 0 ? NGHTTP2_ERR_CALLBACK_FAILURE : w;
}

static int raw_on_frame(nghttp2_session *s, const nghttp2_frame *f,
                        void *ud) {
  (void)s;
  raw_h2 *r = ud;
  if (f->hd.type == NGHTTP2_SETTINGS && !(f->hd.flags & NGHTTP2_FLAG_ACK))
    r->settings++;
  return 0;
}

static int raw_on_header(nghttp2_session *s, const nghttp2_frame *f,
                         const uint8_t *name, size_t nlen,
                         const uint8_t *value, size_t vlen, uint8_t flags,
                         void *ud) {
  (void)s;
  (void)f;
  (void)vlen;
  (void)flags;
  if (nlen == 11 && memcmp(name, "grpc-status", 11) == 0)
    ((raw_h2 *)ud)->status = atoi((const char *)value);
  return 0;
}

static int raw_on_data(nghttp2_session *s, uint8_t flags, int32_t id,
                       const uint8_t *d, size_t n, void *ud) {
  (void)s;
  (void)flags;
  (void)id;
  (void)d;
  ((raw_h2 *)ud)->data_bytes += n;
  return 0;
}

static int raw_on_close(nghttp2_session *s, int32_t id, uint32_t code,
                        void *ud) {
  (void)s;
  (void)id;
  raw_h2 *r = ud;
  r->closed = 1;
  r->close_code = code;
  return 0;
}

static ssize_t raw_read_body(nghttp2_session *s, int32_t id, uint8_t *buf,
                             size_t len, uint32_t *flags,
                             nghttp2_data_source *src, void *ud) {
  (void)s;
  (void)id;
  (void)src;
  raw_h2 *r = ud;
  size_t n = r->body_len - r->body_off;
  if (n > len) n = len;
  memcpy(buf, r->body + r->body_off, n);
  r->body_off += n;
  if (r->body_off == r->body_len) *flags |= NGHTTP2_DATA_FLAG_EOF;
  return (ssize_t)n;
}

/* Sends what nghttp2 has queued, then reads for up to 20 ms.  GOAWAY
 * frames are noted and kept from nghttp2, which would otherwise refuse our
 * later request itself, as a client that had not read them yet would not. */
static void raw_io(raw_h2 *r) {
  nghttp2_session_send(r->ng);
  struct pollfd p = {r->fd, POLLIN, 0};
  if (poll(&p, 1, 20) != 1) return;
  ssize_t n = recv(r->fd, r->in + r->in_len, sizeof r->in - r->in_len, 0);
  if (n <= 0) {
    r->eof = 1;
    return;
  }
  r->in_len += (size_t)n;
  size_t off = 0;
  while (r->in_len - off >= 9) {
    const uint8_t *f = r->in + off;
    size_t flen = 9 + ((size_t)f[0] << 16 | (size_t)f[1] << 8 | f[2]);
    if (r->in_len - off < flen) break;
    if (f[3] == NGHTTP2_GOAWAY && flen >= 17) {
      r->goaways++;
      r->goaway_last = (int32_t)((uint32_t)(f[9] & 0x7f) << 24 |
                                 (uint32_t)f[10] << 16 | (uint32_t)f[11] << 8 |
                                 f[12]);
    } else {
      nghttp2_session_mem_recv(r->ng, f, flen);
    }
    off += flen;
  }
  memmove(r->in, r->in + off, r->in_len - off);
  r->in_len -= off;
}

#define RAW_UNTIL(r, cond)                                                   \
  do {                                                                       \
    int64_t raw_until_ = e2e_now_ms() + WAIT_MS;                             \
    while (!(cond) && !(r)->eof && e2e_now_ms() < raw_until_) raw_io(r);     \
  } while (0)

static void raw_connect(raw_h2 *r, int port) {
  memset(r, 0, sizeof *r);
  r->status = -1;
  r->fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(r->fd >= 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sa.sin_port = htons((uint16_t)port);
  assert_int_equal(connect(r->fd, (struct sockaddr *)&sa, sizeof sa), 0);
  nghttp2_session_callbacks *cb;
  assert_int_equal(nghttp2_session_callbacks_new(&cb), 0);
  nghttp2_session_callbacks_set_send_callback(cb, raw_send);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, raw_on_frame);
  nghttp2_session_callbacks_set_on_header_callback(cb, raw_on_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, raw_on_data);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, raw_on_close);
  assert_int_equal(nghttp2_session_client_new(&r->ng, cb, r), 0);
  nghttp2_session_callbacks_del(cb);
  assert_int_equal(nghttp2_submit_settings(r->ng, NGHTTP2_FLAG_NONE, NULL, 0),
                   0);
  RAW_UNTIL(r, r->settings > 0);
  assert_int_equal(r->settings, 1);
}

/* A unary request of the counting method on a new stream. */
static void raw_unary(raw_h2 *r) {
  e2e_msg m;
  ProtobufCMessage *req = e2e_msg_str(&m, k_count.request, "lb");
  size_t len = protobuf_c_message_get_packed_size(req);
  assert_true(len + 5 <= sizeof r->body);
  r->body[0] = 0;
  r->body[1] = (uint8_t)(len >> 24);
  r->body[2] = (uint8_t)(len >> 16);
  r->body[3] = (uint8_t)(len >> 8);
  r->body[4] = (uint8_t)len;
  protobuf_c_message_pack(req, r->body + 5);
  r->body_len = len + 5;
#define NV(n, v)                                                             \
  {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1,             \
   NGHTTP2_NV_FLAG_NONE}
  nghttp2_nv h[] = {NV(":method", "POST"), NV(":scheme", "http"),
                    NV(":path", "/lb.Count/Unary"),
                    NV(":authority", "localhost"),
                    NV("content-type", "application/grpc"),
                    NV("te", "trailers")};
#undef NV
  nghttp2_data_provider dp = {.read_callback = raw_read_body};
  assert_true(nghttp2_submit_request(r->ng, NULL, h, sizeof h / sizeof h[0],
                                     &dp, NULL) > 0);
}

static void *graceful_shutdown_main(void *srv) {
  mrpc_server_shutdown(srv, 2000);
  return NULL;
}

/* mrpc_server_shutdown sends a GOAWAY notice (last stream id 2^31-1: new
 * streams are still allowed) and the real last id 100 ms later, so that
 * requests already on their way are taken in.  A request that arrives in
 * between must be served (the final GOAWAY's last id covers it), or at
 * least refused with RST_STREAM(REFUSED_STREAM), which clients retry
 * transparently; an UNAVAILABLE answer would fail calls racing a graceful
 * stop although other servers are up. */
static void test_call_in_the_shutdown_notice_window_is_served(void **state) {
  (void)state;
  backend b[1];
  backends_start(b, 1);
  raw_h2 r;
  raw_connect(&r, b[0].port);
  pthread_t th;
  assert_int_equal(
      pthread_create(&th, NULL, graceful_shutdown_main, b[0].s.srv), 0);
  RAW_UNTIL(&r, r.goaways > 0);
  assert_int_equal(r.goaways, 1);
  assert_int_equal(r.goaway_last, INT32_MAX); /* the notice */
  raw_unary(&r);
  RAW_UNTIL(&r, r.closed);
  close(r.fd);
  nghttp2_session_del(r.ng);
  pthread_join(th, NULL);
  assert_true(r.closed);
  int served = r.status == MRPC_STATUS_OK && r.data_bytes > 0;
  int refused = r.close_code == NGHTTP2_REFUSED_STREAM;
  int calls = backend_calls(&b[0]);
  backends_free(b, 1);
  (void)refused; /* allowed by the protocol; this server serves it */
  if (!served || calls != 1)
    fail_msg("request after the notice: grpc-status %d, %zu DATA bytes, "
             "stream closed with code %u, handler ran %d times: not served",
             r.status, r.data_bytes, r.close_code, calls);
}

/* channel.h: resolve_interval_ms < 0 resolves "only when the channel leaves
 * IDLE" -- every time it does, not only the first: a server that moved is
 * found by the next call after the connection was lost. */
static void test_negative_interval_looks_up_on_leaving_idle(void **state) {
  (void)state;
  backend b[1];
  backends_start(b, 1);
  backend *a[1] = {&b[0]};
  dns_set(a, 1, 0, 0);
  mrpc_channel_opts o = lb_opts(MRPC_LB_PICK_FIRST, 1);
  o.resolve_interval_ms = -1;
  mrpc_channel *ch = e2e_channel("dns:///svc.test:1234", &o);
  int n0 = dns_get(&dns_lookups);
  calls_ok(ch, 1); /* leaves IDLE: the first lookup */
  assert_int_equal(dns_get(&dns_lookups), n0 + 1);
  backend_stop(&b[0]); /* the READY connection is lost: IDLE */
  E2E_WAIT_UNTIL(mrpc_channel_get_state(ch, 0) == MRPC_CHANNEL_IDLE, WAIT_MS);
  assert_int_equal(mrpc_channel_get_state(ch, 0), MRPC_CHANNEL_IDLE);
  int n1 = dns_get(&dns_lookups);
  mrpc_channel_get_state(ch, 1); /* leaves IDLE again */
  E2E_WAIT_UNTIL(dns_get(&dns_lookups) > n1, 3000);
  int n2 = dns_get(&dns_lookups);
  mrpc_channel_del(ch);
  backends_free(b, 1);
  if (n2 == n1)
    fail_msg("leaving IDLE again made no lookup (%d lookups in all)", n2 - n0);
}

int main(void) {
  /* Set once: resolver threads read it; only DNS targets reach it. */
  mrpc__resolve_hook = dns_hook;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_robin_spreads_calls),
      cmocka_unit_test(test_pick_first_uses_the_first_address),
      cmocka_unit_test(test_pick_first_skips_a_refusing_address),
      cmocka_unit_test(test_pick_first_pool_of_four),
      cmocka_unit_test(test_round_robin_pool_of_two_per_address),
      cmocka_unit_test(test_round_robin_survives_a_stop_and_a_restart),
      cmocka_unit_test(test_round_robin_all_servers_gone),
      cmocka_unit_test(test_dns_addresses_come_and_go),
      cmocka_unit_test(test_dns_failure_then_recovery),
      cmocka_unit_test(test_del_with_calls_waiting_for_ready),
      cmocka_unit_test(test_del_during_a_slow_lookup),
      cmocka_unit_test(test_call_in_the_shutdown_notice_window_is_served),
      cmocka_unit_test(
          test_negative_interval_looks_up_on_leaving_idle),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
