/* End to end: grpc.health.v1.Health (lib/health.c) through our client and
 * our server.  Every call has a deadline.
 *
 *   e2e_health              the cmocka suite
 *   e2e_health --serve ...  a server for tests/examples/services.sh
 *                           (tests/services/serve.h)
 * SPDX-License-Identifier: Apache-2.0 */
#include "e2e_common.h"

#include "grpc/health/v1/health.mrpc.h"
#include "services/serve.h"

typedef Grpc__Health__V1__HealthCheckRequest CheckReq;
typedef Grpc__Health__V1__HealthCheckResponse CheckResp;

#define H_SERVING MRPC_HEALTH_SERVING
#define H_NOT_SERVING MRPC_HEALTH_NOT_SERVING
#define H_UNKNOWN_SVC MRPC_HEALTH_SERVICE_UNKNOWN

/* ---- fixture: one server (1 worker) with health and a blocking echo ---- */

typedef struct hsrv {
  mrpc_server *srv;
  mrpc_health *h;
  mrpc_channel *ch;
  char target[64];
} hsrv;

static hsrv g;

static void hsrv_start(hsrv *x) {
  mrpc_server_opts o;
  mrpc_server_opts_init(&o);
  o.io_threads = 2;
  o.max_workers = 1;
  memset(x, 0, sizeof *x);
  assert_int_equal(mrpc_server_new(&o, &x->srv), 0);
  assert_int_equal(mrpc_health_new(&x->h), 0);
  assert_int_equal(mrpc_health_register(x->srv, x->h), 0);
  mrpc_method_handler bl = {NULL, e2e_blocking_echo, NULL};
  assert_int_equal(mrpc_server_add_method(
                       x->srv, &e2e_methods[E2E_BLOCKING][MRPC_UNARY], &bl),
                   0);
  int port = 0;
  assert_int_equal(mrpc_server_listen(x->srv, "127.0.0.1:0", &port), 0);
  assert_int_equal(mrpc_server_start(x->srv), 0);
  snprintf(x->target, sizeof x->target, "127.0.0.1:%d", port);
  x->ch = e2e_channel(x->target, NULL);
}

static void hsrv_stop(hsrv *x) {
  mrpc_channel_del(x->ch);
  mrpc_server_del(x->srv);
  mrpc_health_del(x->h);
  memset(x, 0, sizeof *x);
}

static int setup(void **state) {
  (void)state;
  hsrv_start(&g);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  hsrv_stop(&g);
  return 0;
}

/* ---- client helpers ---- */

/* Check(service) over ch: returns the status code; *out the serving status
 * when OK. */
static int check(mrpc_channel *ch, const char *service, int *out) {
  CheckReq req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  req.service = (char *)service;
  mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS, NULL);
  CheckResp *resp = NULL;
  mrpc_status st;
  assert_int_equal(
      grpc__health__v1__health__check__call(ch, &req, &o, &resp, &st), 0);
  int code = st.code;
  if (code == MRPC_STATUS_OK) {
    assert_non_null(resp);
    if (out) *out = resp->status;
    grpc__health__v1__health_check_response__free_unpacked(resp, NULL);
  } else {
    assert_null(resp);
  }
  mrpc_status_free(&st);
  return code;
}

#define WCAP 4096

/* An event-driven Watch: every status seen, and the end. */
typedef struct wcli {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int st[WCAP];
  size_t n;       /* statuses seen (only the first WCAP kept) */
  int dups;       /* the same status twice in a row */
  int done;
  mrpc_status_code code;
  mrpc_call *call;
} wcli;

static void w_on_message(mrpc_call *call, const ProtobufCMessage *msg,
                         void *ctx) {
  (void)call;
  wcli *w = ctx;
  int s = ((const CheckResp *)msg)->status;
  pthread_mutex_lock(&w->mu);
  if (w->n && w->n <= WCAP && w->st[w->n - 1] == s) w->dups++;
  if (w->n < WCAP) w->st[w->n] = s;
  w->n++;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

static void w_on_done(mrpc_call *call, const mrpc_status *st, void *ctx) {
  (void)call;
  wcli *w = ctx;
  pthread_mutex_lock(&w->mu);
  w->done = 1;
  w->code = st->code;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

static wcli *watch_start(mrpc_channel *ch, const char *service,
                         int64_t timeout_ms) {
  wcli *w = calloc(1, sizeof *w);
  assert_non_null(w);
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
  CheckReq req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  req.service = (char *)service;
  mrpc_call_opts o = e2e_copts(timeout_ms, NULL);
  mrpc_call_ops ops = {.on_message = w_on_message, .on_done = w_on_done};
  assert_int_equal(
      grpc__health__v1__health__watch__start(ch, &req, &o, &ops, w, &w->call),
      0);
  return w;
}

/* Waits up to ms for n statuses (or the end); returns the count seen. */
static size_t watch_wait(wcli *w, size_t n, int ms) {
  struct timespec until = e2e_abstime(ms);
  pthread_mutex_lock(&w->mu);
  while (w->n < n && !w->done)
    if (pthread_cond_timedwait(&w->cv, &w->mu, &until) != 0) break;
  size_t got = w->n;
  pthread_mutex_unlock(&w->mu);
  return got;
}

static int watch_wait_done(wcli *w, int ms) {
  struct timespec until = e2e_abstime(ms);
  pthread_mutex_lock(&w->mu);
  while (!w->done)
    if (pthread_cond_timedwait(&w->cv, &w->mu, &until) != 0) break;
  int done = w->done;
  pthread_mutex_unlock(&w->mu);
  return done;
}

static int watch_at(wcli *w, size_t i) {
  pthread_mutex_lock(&w->mu);
  int s = i < w->n && i < WCAP ? w->st[i] : -1;
  pthread_mutex_unlock(&w->mu);
  return s;
}

/* Cancels (if still running), waits for the end and frees. */
static void watch_end(wcli *w) {
  mrpc_call_cancel(w->call);
  assert_true(watch_wait_done(w, E2E_TIMEOUT_MS));
  mrpc_call_unref(w->call);
  pthread_cond_destroy(&w->cv);
  pthread_mutex_destroy(&w->mu);
  free(w);
}

/* ---- Check ---- */

static void test_check_whole_server_is_serving(void **state) {
  (void)state;
  int s = -1;
  assert_int_equal(check(g.ch, "", &s), MRPC_STATUS_OK);
  assert_int_equal(s, H_SERVING);
  assert_int_equal(mrpc_health_get(g.h, ""), H_SERVING);
}

static void test_check_set_clear_and_unknown(void **state) {
  (void)state;
  int s = -1;
  assert_int_equal(check(g.ch, "chk.Unknown", NULL), MRPC_STATUS_NOT_FOUND);
  assert_int_equal(mrpc_health_set(g.h, "chk.A", H_NOT_SERVING), 0);
  assert_int_equal(check(g.ch, "chk.A", &s), MRPC_STATUS_OK);
  assert_int_equal(s, H_NOT_SERVING);
  assert_int_equal(mrpc_health_set(g.h, "chk.A", H_SERVING), 0);
  assert_int_equal(check(g.ch, "chk.A", &s), MRPC_STATUS_OK);
  assert_int_equal(s, H_SERVING);
  assert_int_equal(mrpc_health_set(g.h, "chk.A", MRPC_HEALTH_UNKNOWN), 0);
  assert_int_equal(check(g.ch, "chk.A", &s), MRPC_STATUS_OK);
  assert_int_equal(s, MRPC_HEALTH_UNKNOWN);
  assert_int_equal(mrpc_health_get(g.h, "chk.A"), MRPC_HEALTH_UNKNOWN);
  assert_int_equal(mrpc_health_clear(g.h, "chk.A"), 0);
  assert_int_equal(mrpc_health_clear(g.h, "chk.never"), 0);
  assert_int_equal(check(g.ch, "chk.A", NULL), MRPC_STATUS_NOT_FOUND);
  assert_int_equal(mrpc_health_get(g.h, "chk.A"), H_UNKNOWN_SVC);
  /* Misuse. */
  assert_int_equal(mrpc_health_set(g.h, "chk.A", H_UNKNOWN_SVC),
                   MRPC_ERR_INVAL);
  assert_int_equal(mrpc_health_set(g.h, "chk.A", (mrpc_health_status)7),
                   MRPC_ERR_INVAL);
  assert_int_equal(mrpc_health_set(g.h, NULL, H_SERVING), MRPC_ERR_INVAL);
  assert_int_equal(mrpc_health_set(NULL, "x", H_SERVING), MRPC_ERR_INVAL);
  assert_int_equal(mrpc_health_clear(g.h, NULL), MRPC_ERR_INVAL);
  assert_int_equal(mrpc_health_get(NULL, ""), H_UNKNOWN_SVC);
  assert_int_equal(mrpc_health_new(NULL), MRPC_ERR_INVAL);
  mrpc_health_del(NULL);
  mrpc_health_shutdown(NULL);
}

static void test_register_errors(void **state) {
  (void)state;
  mrpc_server *srv;
  mrpc_health *h;
  assert_int_equal(mrpc_server_new(NULL, &srv), 0);
  assert_int_equal(mrpc_health_new(&h), 0);
  assert_int_equal(mrpc_health_register(NULL, h), MRPC_ERR_INVAL);
  assert_int_equal(mrpc_health_register(srv, NULL), MRPC_ERR_INVAL);
  assert_int_equal(mrpc_health_register(srv, h), 0);
  assert_int_equal(mrpc_health_register(srv, h), MRPC_ERR_EXISTS);
  /* Never started: deleting still runs the shutdown hook. */
  mrpc_server_del(srv);
  assert_int_equal(mrpc_health_get(h, ""), H_NOT_SERVING);
  mrpc_health_del(h);
  /* After start. */
  assert_int_equal(mrpc_server_new(NULL, &srv), 0);
  assert_int_equal(mrpc_health_new(&h), 0);
  assert_int_equal(mrpc_server_listen(srv, "127.0.0.1:0", NULL), 0);
  assert_int_equal(mrpc_server_start(srv), 0);
  assert_int_equal(mrpc_health_register(srv, h), MRPC_ERR_STATE);
  mrpc_server_del(srv);
  assert_int_equal(mrpc_health_get(h, ""), H_SERVING); /* not registered */
  mrpc_health_del(h);
}

/* ---- List ---- */

static void test_list(void **state) {
  (void)state;
  assert_int_equal(mrpc_health_set(g.h, "list.A", H_SERVING), 0);
  assert_int_equal(mrpc_health_set(g.h, "list.B", H_NOT_SERVING), 0);
  /* A watched service nobody set is not listed. */
  wcli *w = watch_start(g.ch, "list.Watched", E2E_TIMEOUT_MS);
  assert_int_equal(watch_wait(w, 1, E2E_TIMEOUT_MS), 1);

  Grpc__Health__V1__HealthListRequest req =
      GRPC__HEALTH__V1__HEALTH_LIST_REQUEST__INIT;
  mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS, NULL);
  Grpc__Health__V1__HealthListResponse *resp = NULL;
  mrpc_status st;
  assert_int_equal(
      grpc__health__v1__health__list__call(g.ch, &req, &o, &resp, &st), 0);
  assert_int_equal(st.code, MRPC_STATUS_OK);
  mrpc_status_free(&st);
  assert_non_null(resp);
  int seen = 0;
  for (size_t i = 0; i < resp->n_statuses; i++) {
    const char *k = resp->statuses[i]->key;
    int v = resp->statuses[i]->value ? (int)resp->statuses[i]->value->status
                                     : 0;
    assert_string_not_equal(k, "list.Watched");
    assert_int_equal(v, mrpc_health_get(g.h, k));
    if (!strcmp(k, "")) seen |= 1;
    if (!strcmp(k, "list.A")) seen |= 2, assert_int_equal(v, H_SERVING);
    if (!strcmp(k, "list.B")) seen |= 4, assert_int_equal(v, H_NOT_SERVING);
  }
  assert_int_equal(seen, 7);
  size_t have = resp->n_statuses;
  grpc__health__v1__health_list_response__free_unpacked(resp, NULL);

  /* Up to 100 services is fine; 101 is RESOURCE_EXHAUSTED. */
  char name[32];
  size_t added = 0;
  for (; have + added < 100; added++) {
    snprintf(name, sizeof name, "list.many%zu", added);
    assert_int_equal(mrpc_health_set(g.h, name, H_SERVING), 0);
  }
  assert_int_equal(
      grpc__health__v1__health__list__call(g.ch, &req, &o, &resp, &st), 0);
  assert_int_equal(st.code, MRPC_STATUS_OK);
  assert_int_equal(resp->n_statuses, 100);
  grpc__health__v1__health_list_response__free_unpacked(resp, NULL);
  mrpc_status_free(&st);
  snprintf(name, sizeof name, "list.many%zu", added++);
  assert_int_equal(mrpc_health_set(g.h, name, H_SERVING), 0);
  assert_int_equal(
      grpc__health__v1__health__list__call(g.ch, &req, &o, &resp, &st), 0);
  assert_int_equal(st.code, MRPC_STATUS_RESOURCE_EXHAUSTED);
  assert_null(resp);
  mrpc_status_free(&st);

  for (size_t i = 0; i < added; i++) {
    snprintf(name, sizeof name, "list.many%zu", i);
    assert_int_equal(mrpc_health_clear(g.h, name), 0);
  }
  assert_int_equal(mrpc_health_clear(g.h, "list.A"), 0);
  assert_int_equal(mrpc_health_clear(g.h, "list.B"), 0);
  watch_end(w);
}

/* ---- Watch ---- */

static void test_watch_sees_every_change(void **state) {
  (void)state;
  assert_int_equal(mrpc_health_set(g.h, "w.Changes", H_SERVING), 0);
  wcli *w = watch_start(g.ch, "w.Changes", E2E_TIMEOUT_MS);
  assert_int_equal(watch_wait(w, 1, E2E_TIMEOUT_MS), 1);
  assert_int_equal(watch_at(w, 0), H_SERVING);
  assert_int_equal(mrpc_health_set(g.h, "w.Changes", H_NOT_SERVING), 0);
  assert_int_equal(watch_wait(w, 2, E2E_TIMEOUT_MS), 2);
  assert_int_equal(watch_at(w, 1), H_NOT_SERVING);
  /* No change, no message. */
  assert_int_equal(mrpc_health_set(g.h, "w.Changes", H_NOT_SERVING), 0);
  assert_int_equal(mrpc_health_set(g.h, "w.Changes", H_SERVING), 0);
  assert_int_equal(watch_wait(w, 3, E2E_TIMEOUT_MS), 3);
  assert_int_equal(watch_at(w, 2), H_SERVING);
  /* Another service's changes are not this watcher's. */
  assert_int_equal(mrpc_health_set(g.h, "w.Other", H_NOT_SERVING), 0);
  /* Cleared: SERVICE_UNKNOWN. */
  assert_int_equal(mrpc_health_clear(g.h, "w.Changes"), 0);
  assert_int_equal(watch_wait(w, 4, E2E_TIMEOUT_MS), 4);
  assert_int_equal(watch_at(w, 3), H_UNKNOWN_SVC);
  e2e_sleep_ms(100);
  assert_int_equal(watch_wait(w, 5, 0), 4);
  assert_false(watch_wait_done(w, 0));
  watch_end(w);
  assert_int_equal(mrpc_health_clear(g.h, "w.Other"), 0);
}

static void test_watch_unknown_service_stays_open(void **state) {
  (void)state;
  wcli *w = watch_start(g.ch, "w.Unknown", E2E_TIMEOUT_MS);
  assert_int_equal(watch_wait(w, 1, E2E_TIMEOUT_MS), 1);
  assert_int_equal(watch_at(w, 0), H_UNKNOWN_SVC);
  e2e_sleep_ms(200);
  assert_false(watch_wait_done(w, 0));
  /* Later known: the watcher is told. */
  assert_int_equal(mrpc_health_set(g.h, "w.Unknown", H_SERVING), 0);
  assert_int_equal(watch_wait(w, 2, E2E_TIMEOUT_MS), 2);
  assert_int_equal(watch_at(w, 1), H_SERVING);
  /* Check agrees. */
  int s = -1;
  assert_int_equal(check(g.ch, "w.Unknown", &s), MRPC_STATUS_OK);
  assert_int_equal(s, H_SERVING);
  watch_end(w);
  assert_int_equal(mrpc_health_clear(g.h, "w.Unknown"), 0);
}

static void test_watch_deadline_and_cancel_remove_the_watcher(void **state) {
  (void)state;
  wcli *a = watch_start(g.ch, "w.Gone", 300);
  wcli *b = watch_start(g.ch, "w.Gone", E2E_TIMEOUT_MS);
  assert_int_equal(watch_wait(a, 1, E2E_TIMEOUT_MS), 1);
  assert_int_equal(watch_wait(b, 1, E2E_TIMEOUT_MS), 1);
  assert_true(watch_wait_done(a, E2E_TIMEOUT_MS));
  assert_int_equal(a->code, MRPC_STATUS_DEADLINE_EXCEEDED);
  mrpc_call_cancel(b->call);
  assert_true(watch_wait_done(b, E2E_TIMEOUT_MS));
  e2e_sleep_ms(50); /* the server sees the RST_STREAM */
  /* Changes after the ends go nowhere (ASan: no use after free). */
  for (int i = 0; i < 10; i++)
    assert_int_equal(
        mrpc_health_set(g.h, "w.Gone", i & 1 ? H_SERVING : H_NOT_SERVING), 0);
  watch_end(a);
  watch_end(b);
  assert_int_equal(mrpc_health_clear(g.h, "w.Gone"), 0);
}

/* Watches are event-driven: with one worker, many watches and a blocking
 * call at once. */
static void test_watches_hold_no_worker(void **state) {
  (void)state;
  enum { N = 40 };
  wcli *w[N];
  for (int i = 0; i < N; i++) w[i] = watch_start(g.ch, "", E2E_TIMEOUT_MS);
  for (int i = 0; i < N; i++) {
    assert_int_equal(watch_wait(w[i], 1, E2E_TIMEOUT_MS), 1);
    assert_int_equal(watch_at(w[i], 0), H_SERVING);
  }
  assert_int_equal(e2e_unary_echo(g.ch, E2E_BLOCKING, "still served"),
                   MRPC_STATUS_OK);
  assert_int_equal(e2e_unary_echo(g.ch, E2E_BLOCKING, "twice"),
                   MRPC_STATUS_OK);
  for (int i = 0; i < N; i++) watch_end(w[i]);
}

typedef struct setter {
  mrpc_health *h;
  const char *svc;
  int n, seed;
} setter;

static void *setter_main(void *arg) {
  setter *s = arg;
  for (int i = 0; i < s->n; i++)
    mrpc_health_set(s->h, s->svc,
                    (i + s->seed) & 1 ? H_SERVING : H_NOT_SERVING);
  return NULL;
}

/* Several threads set statuses at once: every watcher sees no repeats and
 * ends on the last status set. */
static void test_watch_with_concurrent_setters(void **state) {
  (void)state;
  enum { W = 8, T = 4 };
  assert_int_equal(mrpc_health_set(g.h, "w.Race", H_SERVING), 0);
  wcli *w[W];
  for (int i = 0; i < W; i++) {
    w[i] = watch_start(g.ch, "w.Race", E2E_TIMEOUT_MS);
    assert_int_equal(watch_wait(w[i], 1, E2E_TIMEOUT_MS), 1);
  }
  pthread_t th[T];
  setter st[T];
  for (int i = 0; i < T; i++) {
    st[i] = (setter){g.h, "w.Race", 2000, i};
    assert_int_equal(pthread_create(&th[i], NULL, setter_main, &st[i]), 0);
  }
  for (int i = 0; i < T; i++) pthread_join(th[i], NULL);
  assert_int_equal(mrpc_health_set(g.h, "w.Race", MRPC_HEALTH_UNKNOWN), 0);
  for (int i = 0; i < W; i++) {
    int64_t until = e2e_now_ms() + E2E_TIMEOUT_MS;
    for (;;) {
      pthread_mutex_lock(&w[i]->mu);
      size_t n = w[i]->n;
      int last = n && n <= WCAP ? w[i]->st[n - 1] : -1;
      pthread_mutex_unlock(&w[i]->mu);
      if (last == MRPC_HEALTH_UNKNOWN || e2e_now_ms() > until) break;
      e2e_sleep_ms(2);
    }
    pthread_mutex_lock(&w[i]->mu);
    assert_true(w[i]->n <= WCAP);
    assert_int_equal(w[i]->st[w[i]->n - 1], MRPC_HEALTH_UNKNOWN);
    assert_int_equal(w[i]->dups, 0);
    pthread_mutex_unlock(&w[i]->mu);
  }
  for (int i = 0; i < W; i++) watch_end(w[i]);
  assert_int_equal(mrpc_health_clear(g.h, "w.Race"), 0);
}

/* A watcher that does not read: the server coalesces (bounded memory) and
 * the reader ends up with the latest status. */
static void test_slow_watcher_gets_the_latest(void **state) {
  (void)state;
  /* More changes than the client's stream window (1 MiB of 7-byte
   * messages) takes. */
  enum { FLOOD = 400000 };
  assert_int_equal(mrpc_health_set(g.h, "w.Slow", H_SERVING), 0);
  CheckReq req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  req.service = "w.Slow";
  mrpc_call_opts o = e2e_copts(12 * E2E_TIMEOUT_MS, NULL);
  mrpc_stream *s = NULL;
  assert_int_equal(grpc__health__v1__health__watch__open(g.ch, &req, &o, &s),
                   0);
  CheckResp *r = NULL;
  assert_int_equal(grpc__health__v1__health__watch__stream_recv_response(s, &r),
                   1);
  assert_int_equal(r->status, H_SERVING);
  grpc__health__v1__health_check_response__free_unpacked(r, NULL);
  /* Nobody reads while the statuses change. */
  for (int i = 0; i < FLOOD; i++)
    assert_int_equal(
        mrpc_health_set(g.h, "w.Slow", i & 1 ? H_SERVING : H_NOT_SERVING),
        0);
  assert_int_equal(mrpc_health_clear(g.h, "w.Slow"), 0);
  size_t n = 0;
  int last = H_SERVING, dups = 0;
  for (;;) {
    int rc = grpc__health__v1__health__watch__stream_recv_response(s, &r);
    assert_int_equal(rc, 1);
    int v = r->status;
    grpc__health__v1__health_check_response__free_unpacked(r, NULL);
    n++;
    dups += v == last;
    last = v;
    if (v == H_UNKNOWN_SVC) break;
  }
  assert_int_equal(dups, 0);
  /* Far fewer than were set: the window's worth, then the latest. */
  assert_true(n < FLOOD / 2);
  if (getenv("E2E_VERBOSE")) printf("slow watcher: %zu of %d\n", n, FLOOD);
  mrpc_call_cancel(mrpc_stream_call(s));
  mrpc_status st;
  mrpc_stream_finish(s, &st);
  mrpc_status_free(&st);
}

/* ---- shutdown ---- */

static void test_server_shutdown_turns_not_serving(void **state) {
  (void)state;
  hsrv x;
  hsrv_start(&x);
  assert_int_equal(mrpc_health_set(x.h, "sd.A", H_SERVING), 0);
  wcli *wa = watch_start(x.ch, "sd.A", E2E_TIMEOUT_MS);
  wcli *wall = watch_start(x.ch, "", E2E_TIMEOUT_MS);
  wcli *wu = watch_start(x.ch, "sd.Unknown", E2E_TIMEOUT_MS);
  assert_int_equal(watch_wait(wa, 1, E2E_TIMEOUT_MS), 1);
  assert_int_equal(watch_wait(wall, 1, E2E_TIMEOUT_MS), 1);
  assert_int_equal(watch_wait(wu, 1, E2E_TIMEOUT_MS), 1);
  int64_t t0 = e2e_now_ms();
  /* The watches end with the change, so the grace period is not waited. */
  assert_int_equal(mrpc_server_shutdown(x.srv, 8000), 0);
  assert_true(e2e_now_ms() - t0 < 5000);
  assert_true(watch_wait_done(wa, E2E_TIMEOUT_MS));
  assert_true(watch_wait_done(wall, E2E_TIMEOUT_MS));
  assert_true(watch_wait_done(wu, E2E_TIMEOUT_MS));
  assert_int_equal(wa->n, 2);
  assert_int_equal(watch_at(wa, 1), H_NOT_SERVING);
  assert_int_equal(wall->n, 2);
  assert_int_equal(watch_at(wall, 1), H_NOT_SERVING);
  assert_int_equal(wu->n, 1); /* still unknown */
  assert_int_equal(wa->code, MRPC_STATUS_UNAVAILABLE);
  assert_int_equal(wall->code, MRPC_STATUS_UNAVAILABLE);
  assert_int_equal(mrpc_health_get(x.h, ""), H_NOT_SERVING);
  assert_int_equal(mrpc_health_get(x.h, "sd.A"), H_NOT_SERVING);
  assert_int_equal(mrpc_health_set(x.h, "sd.A", H_SERVING), MRPC_ERR_SHUTDOWN);
  assert_int_equal(mrpc_health_clear(x.h, "sd.A"), MRPC_ERR_SHUTDOWN);
  watch_end(wa);
  watch_end(wall);
  watch_end(wu);
  hsrv_stop(&x);
}

/* mrpc_health_shutdown by hand (draining): watchers see NOT_SERVING and
 * stay; Check says NOT_SERVING; later sets are ignored. */
static void test_manual_shutdown_drains(void **state) {
  (void)state;
  hsrv x;
  hsrv_start(&x);
  assert_int_equal(mrpc_health_set(x.h, "dr.A", H_SERVING), 0);
  wcli *w = watch_start(x.ch, "dr.A", E2E_TIMEOUT_MS);
  assert_int_equal(watch_wait(w, 1, E2E_TIMEOUT_MS), 1);
  mrpc_health_shutdown(x.h);
  mrpc_health_shutdown(x.h);
  assert_int_equal(watch_wait(w, 2, E2E_TIMEOUT_MS), 2);
  assert_int_equal(watch_at(w, 1), H_NOT_SERVING);
  int s = -1;
  assert_int_equal(check(x.ch, "", &s), MRPC_STATUS_OK);
  assert_int_equal(s, H_NOT_SERVING);
  assert_int_equal(mrpc_health_set(x.h, "dr.A", H_SERVING), MRPC_ERR_SHUTDOWN);
  assert_int_equal(check(x.ch, "dr.A", &s), MRPC_STATUS_OK);
  assert_int_equal(s, H_NOT_SERVING);
  e2e_sleep_ms(50);
  assert_int_equal(watch_wait(w, 3, 0), 2);
  assert_false(watch_wait_done(w, 0));
  /* A new watcher during the drain. */
  wcli *w2 = watch_start(x.ch, "dr.A", E2E_TIMEOUT_MS);
  assert_int_equal(watch_wait(w2, 1, E2E_TIMEOUT_MS), 1);
  assert_int_equal(watch_at(w2, 0), H_NOT_SERVING);
  assert_int_equal(mrpc_server_shutdown(x.srv, 8000), 0);
  assert_true(watch_wait_done(w, E2E_TIMEOUT_MS));
  assert_int_equal(w->code, MRPC_STATUS_UNAVAILABLE);
  assert_int_equal(w->n, 2);
  watch_end(w);
  watch_end(w2);
  hsrv_stop(&x);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--serve") == 0)
    return services_serve(argc, argv);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_check_whole_server_is_serving),
      cmocka_unit_test(test_check_set_clear_and_unknown),
      cmocka_unit_test(test_register_errors),
      cmocka_unit_test(test_list),
      cmocka_unit_test(test_watch_sees_every_change),
      cmocka_unit_test(test_watch_unknown_service_stays_open),
      cmocka_unit_test(test_watch_deadline_and_cancel_remove_the_watcher),
      cmocka_unit_test(test_watches_hold_no_worker),
      cmocka_unit_test(test_watch_with_concurrent_setters),
      cmocka_unit_test(test_slow_watcher_gets_the_latest),
      cmocka_unit_test(test_server_shutdown_turns_not_serving),
      cmocka_unit_test(test_manual_shutdown_drains),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
