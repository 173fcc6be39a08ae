/* End to end: deadlines and cancellation, seen from both ends.  Timing is
 * asserted only as generous upper bounds.
 * SPDX-License-Identifier: Apache-2.0 */
#include "e2e_common.h"

#define SLACK_MS 5000 /* "promptly" on a loaded machine */

enum {
  DL_BLOCKING_UNARY,
  DL_BLOCKING_BIDI,
  DL_EVENT_UNARY,
  DL_SEND_THEN_WAIT,
  DL_COUNT
};
static const mrpc_method k_dl[DL_COUNT] = {
    [DL_BLOCKING_UNARY] = {"/e2e.Dl/BlockingUnary", MRPC_UNARY,
                           E2E_D(simple_request), E2E_D(simple_response)},
    [DL_BLOCKING_BIDI] = {"/e2e.Dl/BlockingBidi", MRPC_BIDI_STREAMING,
                          E2E_D(streaming_output_call_request),
                          E2E_D(streaming_output_call_response)},
    [DL_EVENT_UNARY] = {"/e2e.Dl/EventUnary", MRPC_UNARY,
                        E2E_D(simple_request), E2E_D(simple_response)},
    [DL_SEND_THEN_WAIT] = {"/e2e.Dl/SendThenWait", MRPC_UNARY,
                           E2E_D(simple_request), E2E_D(simple_response)},
};

/* What the slow handlers saw. */
static atomic_int g_started;    /* handlers entered */
static atomic_int g_ended;      /* handlers that saw the end */
static atomic_int g_result;     /* see each handler */
static atomic_llong g_left_ms;  /* deadline - now at handler start */
static atomic_llong g_end_ms;   /* when the handler saw the end */

static void reset(void) {
  atomic_store(&g_started, 0);
  atomic_store(&g_ended, 0);
  atomic_store(&g_result, -100);
  atomic_store(&g_left_ms, -1);
  atomic_store(&g_end_ms, 0);
}

static void ended(int result) {
  atomic_store(&g_result, result);
  atomic_store(&g_end_ms, e2e_now_ms());
  atomic_fetch_add(&g_ended, 1);
}

static void note_start(mrpc_call *call) {
  int64_t d = mrpc_call_deadline_ms(call);
  atomic_store(&g_left_ms, d == INT64_MAX ? INT64_MAX : d - e2e_now_ms());
  atomic_fetch_add(&g_started, 1);
}

/* Unary, never answers: polls mrpc_call_is_cancelled for up to 3 s.
 * g_result: 1 = saw the cancellation, 0 = gave up. */
static void blocking_unary(mrpc_stream *s, void *user) {
  (void)user;
  mrpc_call *call = mrpc_stream_call(s);
  note_start(call);
  ProtobufCMessage *req;
  if (mrpc_stream_recv(s, &req) == 1) protobuf_c_message_free_unpacked(req, NULL);
  for (int64_t until = e2e_now_ms() + 3000; e2e_now_ms() < until;) {
    if (mrpc_call_is_cancelled(call)) {
      ended(1);
      return;
    }
    e2e_sleep_ms(1);
  }
  ended(0);
  mrpc_stream_set_status(s, MRPC_STATUS_OK, "too late", NULL, 0);
}

/* Unary that sends its response (held by the library until the handler
 * returns: a unary response goes with the status), then waits past the
 * deadline: the held response must be dropped, not leaked or sent after
 * the end.  g_result: 1 = saw the cancellation, 0 = gave up; g_send_rc:
 * what the send returned. */
static atomic_int g_send_rc;
static void send_then_wait(mrpc_stream *s, void *user) {
  (void)user;
  mrpc_call *call = mrpc_stream_call(s);
  note_start(call);
  ProtobufCMessage *req;
  if (mrpc_stream_recv(s, &req) == 1) protobuf_c_message_free_unpacked(req, NULL);
  e2e_msg r;
  atomic_store(&g_send_rc,
               mrpc_stream_send(s, e2e_msg_str(&r, E2E_D(simple_response),
                                               "early")));
  int saw = 0;
  for (int64_t until = e2e_now_ms() + 3000; e2e_now_ms() < until && !saw;) {
    saw = mrpc_call_is_cancelled(call);
    if (!saw) e2e_sleep_ms(1);
  }
  ended(saw);
  mrpc_stream_set_status(s, MRPC_STATUS_OK, NULL, NULL, 0);
}

/* Bidi: reads until the end; g_result = the last mrpc_stream_recv result
 * (MRPC_ERR_CLOSED when the call was cut short). */
static void blocking_bidi(mrpc_stream *s, void *user) {
  (void)user;
  note_start(mrpc_stream_call(s));
  ProtobufCMessage *req;
  int rc;
  while ((rc = mrpc_stream_recv(s, &req)) == 1)
    protobuf_c_message_free_unpacked(req, NULL);
  ended(rc);
  mrpc_stream_set_status(s, MRPC_STATUS_OK, NULL, NULL, 0);
}

/* Event unary that never finishes: g_result = on_done's code. */
static void ev_done(mrpc_call *call, const mrpc_status *st, void *ctx) {
  (void)call;
  (void)ctx;
  ended((int)st->code);
}

static void event_unary(mrpc_call *call, void *user) {
  (void)user;
  static const mrpc_call_ops ops = {NULL, NULL, NULL, ev_done};
  note_start(call);
  mrpc_call_set_ops(call, &ops, NULL);
}

static const mrpc_method_handler k_dl_h[DL_COUNT] = {
    [DL_BLOCKING_UNARY] = {NULL, blocking_unary, NULL},
    [DL_BLOCKING_BIDI] = {NULL, blocking_bidi, NULL},
    [DL_EVENT_UNARY] = {event_unary, NULL, NULL},
    [DL_SEND_THEN_WAIT] = {NULL, send_then_wait, NULL},
};

/* Waits for the handler to see the end of its call; returns g_result. */
static int server_result(void) {
  E2E_WAIT_UNTIL(atomic_load(&g_ended) > 0, 12000);
  assert_int_equal(atomic_load(&g_ended), 1);
  return atomic_load(&g_result);
}

/* A unary call with timeout_ms to m (client style cli); returns the code
 * and checks that it came within SLACK_MS. */
static int timed_unary(const mrpc_method *m, int cli, int64_t timeout_ms) {
  mrpc_call_opts o = e2e_copts(timeout_ms, NULL);
  int64_t t0 = e2e_now_ms();
  int code;
  if (cli == E2E_BLOCKING) {
    e2e_msg req;
    ProtobufCMessage *resp;
    mrpc_status st;
    assert_int_equal(mrpc_channel_unary(g_ch, m,
                                        e2e_msg_str(&req, m->request, "slow"),
                                        &o, &resp, &st),
                     0);
    code = st.code;
    assert_true(code == MRPC_STATUS_OK ? resp != NULL : resp == NULL);
    if (resp) protobuf_c_message_free_unpacked(resp, NULL);
    mrpc_status_free(&st);
  } else {
    e2e_cli c;
    e2e_cli_unary(&c, g_ch, m, &o, "slow");
    code = c.st.code;
    assert_int_equal(c.n, code == MRPC_STATUS_OK ? 1 : 0);
    e2e_cli_free(&c);
  }
  assert_true(e2e_now_ms() - t0 < timeout_ms + SLACK_MS);
  return code;
}

/* ---- deadlines ---- */

static void test_deadline_shorter_than_a_slow_blocking_handler(void **state) {
  (void)state;
  for (int cli = 0; cli < 2; cli++) {
    reset();
    assert_int_equal(timed_unary(&k_dl[DL_BLOCKING_UNARY], cli, 100),
                     MRPC_STATUS_DEADLINE_EXCEEDED);
    /* The handler knew its deadline and sees the call as cancelled. */
    int64_t left = atomic_load(&g_left_ms);
    assert_true(left <= 100); /* may be < 0 if the worker started late */
    assert_int_equal(server_result(), 1);
  }
}

/* A blocking unary handler that sent its response and then outlived the
 * deadline: the client gets DEADLINE_EXCEEDED and no response, the handler
 * sees the cancellation, and the held response is freed (ASan). */
static void test_response_sent_before_the_deadline_passes_is_dropped(
    void **state) {
  (void)state;
  for (int cli = 0; cli < 2; cli++) {
    reset();
    atomic_store(&g_send_rc, -100);
    assert_int_equal(timed_unary(&k_dl[DL_SEND_THEN_WAIT], cli, 150),
                     MRPC_STATUS_DEADLINE_EXCEEDED);
    assert_int_equal(server_result(), 1);
    assert_int_equal(atomic_load(&g_send_rc), 0);
  }
}

/* The same, with the order of events fixed: the server's own deadline
 * timer ends the call before the client's RST_STREAM can arrive (the
 * client's I/O thread is held up by another call's callback across the
 * deadline).  mrpc_call_is_cancelled must become true all the same ("its
 * deadline passed", call.h). */
static void stall_on_message(mrpc_call *call, const ProtobufCMessage *msg,
                             void *ctx) {
  (void)call;
  (void)msg;
  (void)ctx;
  e2e_sleep_ms(800);
}

static void test_server_side_deadline_marks_the_call_cancelled(void **state) {
  (void)state;
  reset();
  mrpc_channel *ch = e2e_channel(g_srv.target, NULL);
  assert_int_equal(e2e_unary_echo(ch, E2E_EVENT, "connect"), MRPC_STATUS_OK);
  const mrpc_method *m = &k_dl[DL_BLOCKING_UNARY];
  mrpc_call_opts o = e2e_copts(300, NULL);
  e2e_cli a;
  e2e_cli_init(&a);
  e2e_cli_start(&a, ch, m, &o);
  assert_int_equal(e2e_cli_send_str(a.call, m, "slow"), 0);
  assert_int_equal(mrpc_call_close_send(a.call), 0);
  E2E_WAIT_UNTIL(atomic_load(&g_started) > 0, 5000);
  /* Stall the client's I/O thread from now until well past 300 ms. */
  static const mrpc_call_ops stall_ops = {stall_on_message, NULL, NULL, NULL};
  const mrpc_method *em = &e2e_methods[E2E_EVENT][MRPC_UNARY];
  mrpc_call_opts eo = e2e_copts(E2E_TIMEOUT_MS, NULL);
  mrpc_call *b;
  assert_int_equal(mrpc_channel_start_call(ch, em, &eo, &stall_ops, NULL, &b),
                   0);
  assert_int_equal(e2e_cli_send_str(b, em, "stall"), 0);
  assert_int_equal(mrpc_call_close_send(b), 0);
  e2e_cli_wait(&a, E2E_TIMEOUT_MS);
  assert_int_equal(a.st.code, MRPC_STATUS_DEADLINE_EXCEEDED);
  e2e_cli_free(&a);
  int res = server_result();
  mrpc_channel_del(ch);
  mrpc_call_unref(b);
  assert_int_equal(res, 1); /* 0: is_cancelled stayed false for 3 s */
}

static void test_deadline_ends_a_blocking_handlers_recv_with_closed(
    void **state) {
  (void)state;
  reset();
  const mrpc_method *m = &k_dl[DL_BLOCKING_BIDI];
  mrpc_call_opts o = e2e_copts(200, NULL);
  mrpc_stream *s;
  ProtobufCMessage *r;
  e2e_msg req;
  int64_t t0 = e2e_now_ms();
  assert_int_equal(mrpc_channel_open_stream(g_ch, m, &o, &s), 0);
  assert_int_equal(mrpc_stream_send(s, e2e_msg_str(&req, m->request, "one")),
                   0);
  assert_int_equal(mrpc_stream_recv(s, &r), MRPC_ERR_CLOSED);
  mrpc_status st;
  assert_int_equal(mrpc_stream_finish(s, &st), 0);
  assert_int_equal(st.code, MRPC_STATUS_DEADLINE_EXCEEDED);
  mrpc_status_free(&st);
  assert_true(e2e_now_ms() - t0 < 200 + SLACK_MS);
  assert_int_equal(server_result(), MRPC_ERR_CLOSED);
  assert_true(atomic_load(&g_end_ms) - t0 < 200 + SLACK_MS);
}

static void test_deadline_ends_an_event_handlers_call(void **state) {
  (void)state;
  for (int cli = 0; cli < 2; cli++) {
    reset();
    assert_int_equal(timed_unary(&k_dl[DL_EVENT_UNARY], cli, 100),
                     MRPC_STATUS_DEADLINE_EXCEEDED);
    int code = server_result();
    assert_true(code == MRPC_STATUS_DEADLINE_EXCEEDED ||
                code == MRPC_STATUS_CANCELLED);
  }
}

/* A deadline that is over before the call could even be sent. */
static void test_tiny_deadline_gives_deadline_exceeded(void **state) {
  (void)state;
  for (int cli = 0; cli < 2; cli++) {
    int code = timed_unary(&e2e_methods[E2E_EVENT][MRPC_UNARY], cli, 1);
    /* The echo may win the race against 1 ms; anything else is wrong. */
    assert_true(code == MRPC_STATUS_DEADLINE_EXCEEDED ||
                code == MRPC_STATUS_OK);
  }
  /* The channel still works. */
  assert_int_equal(e2e_unary_echo(g_ch, E2E_BLOCKING, "after"),
                   MRPC_STATUS_OK);
}

/* ---- cancellation ---- */

typedef struct canceller {
  mrpc_call *call;
  int rc;
} canceller;

/* Cancels once a handler has started. */
static void *cancel_main(void *arg) {
  canceller *c = arg;
  E2E_WAIT_UNTIL(atomic_load(&g_started) > 0, 5000);
  e2e_sleep_ms(20);
  c->rc = mrpc_call_cancel(c->call);
  return NULL;
}

static void test_client_cancel_from_another_thread_reaches_the_server(
    void **state) {
  (void)state;
  for (int k = 0; k < 2; k++) { /* event handler, blocking handler */
    reset();
    const mrpc_method *m = &k_dl[k ? DL_BLOCKING_UNARY : DL_EVENT_UNARY];
    mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS, NULL);
    e2e_cli c;
    e2e_cli_init(&c);
    e2e_cli_start(&c, g_ch, m, &o);
    assert_int_equal(e2e_cli_send_str(c.call, m, "x"), 0);
    assert_int_equal(mrpc_call_close_send(c.call), 0);
    canceller cc = {c.call, -100};
    pthread_t th;
    int64_t t0 = e2e_now_ms();
    assert_int_equal(pthread_create(&th, NULL, cancel_main, &cc), 0);
    e2e_cli_wait(&c, E2E_TIMEOUT_MS);
    pthread_join(th, NULL);
    assert_int_equal(cc.rc, 0);
    assert_int_equal(c.st.code, MRPC_STATUS_CANCELLED);
    assert_int_equal(c.done, 1);
    assert_true(e2e_now_ms() - t0 < SLACK_MS);
    assert_int_equal(mrpc_call_cancel(c.call), MRPC_ERR_CLOSED); /* over */
    e2e_cli_free(&c);
    int res = server_result();
    if (k)
      assert_int_equal(res, 1); /* is_cancelled */
    else
      assert_int_equal(res, MRPC_STATUS_CANCELLED); /* on_done */
  }
}

/* A blocking client waits in recv; another thread cancels the call. */
static void test_cancel_wakes_a_blocking_client_and_its_handler(
    void **state) {
  (void)state;
  reset();
  const mrpc_method *m = &k_dl[DL_BLOCKING_BIDI];
  mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS, NULL);
  mrpc_stream *s;
  ProtobufCMessage *r;
  e2e_msg req;
  assert_int_equal(mrpc_channel_open_stream(g_ch, m, &o, &s), 0);
  assert_int_equal(mrpc_stream_send(s, e2e_msg_str(&req, m->request, "one")),
                   0);
  canceller cc = {mrpc_stream_call(s), -100};
  pthread_t th;
  int64_t t0 = e2e_now_ms();
  assert_int_equal(pthread_create(&th, NULL, cancel_main, &cc), 0);
  assert_int_equal(mrpc_stream_recv(s, &r), MRPC_ERR_CLOSED);
  pthread_join(th, NULL);
  assert_int_equal(cc.rc, 0);
  mrpc_status st;
  assert_int_equal(mrpc_stream_finish(s, &st), 0);
  assert_int_equal(st.code, MRPC_STATUS_CANCELLED);
  mrpc_status_free(&st);
  assert_true(e2e_now_ms() - t0 < SLACK_MS);
  assert_int_equal(server_result(), MRPC_ERR_CLOSED);
}

/* Cancelled right after the start, before any message: CANCELLED once,
 * later operations say CLOSED, and the channel goes on. */
static void test_cancel_before_any_message(void **state) {
  (void)state;
  for (int srv = 0; srv < 2; srv++)
    for (int kind = 0; kind < 4; kind++) {
      const mrpc_method *m = &e2e_methods[srv][kind];
      mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS, NULL);
      e2e_cli c;
      e2e_cli_init(&c);
      e2e_cli_start(&c, g_ch, m, &o);
      assert_int_equal(mrpc_call_cancel(c.call), 0);
      e2e_cli_wait(&c, E2E_TIMEOUT_MS);
      assert_int_equal(c.st.code, MRPC_STATUS_CANCELLED);
      assert_int_equal(mrpc_call_cancel(c.call), MRPC_ERR_CLOSED);
      assert_int_equal(e2e_cli_send_str(c.call, m, "late"), MRPC_ERR_CLOSED);
      assert_int_equal(mrpc_call_close_send(c.call), MRPC_ERR_CLOSED);
      e2e_sleep_ms(20); /* nothing more may come */
      assert_int_equal(c.done, 1);
      assert_int_equal(c.n, 0);
      e2e_cli_free(&c);
    }
  /* Blocking client: cancel through the stream's call, then finish. */
  mrpc_stream *s;
  mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS, NULL);
  assert_int_equal(mrpc_channel_open_stream(
                       g_ch, &e2e_methods[E2E_BLOCKING][MRPC_BIDI_STREAMING],
                       &o, &s),
                   0);
  assert_int_equal(mrpc_call_cancel(mrpc_stream_call(s)), 0);
  ProtobufCMessage *r;
  assert_int_equal(mrpc_stream_recv(s, &r), MRPC_ERR_CLOSED);
  mrpc_status st;
  assert_int_equal(mrpc_stream_finish(s, &st), 0);
  assert_int_equal(st.code, MRPC_STATUS_CANCELLED);
  mrpc_status_free(&st);
  for (int srv = 0; srv < 2; srv++)
    assert_int_equal(e2e_unary_echo(g_ch, srv, "still fine"), MRPC_STATUS_OK);
}

/* Deleting a channel ends its calls in flight: a call on a connection ends
 * with UNAVAILABLE (channel.h) and the server's handler sees the call
 * cancelled. */
static void test_channel_del_ends_calls_in_flight(void **state) {
  (void)state;
  for (int k = 0; k < 2; k++) { /* event handler, blocking handler */
    reset();
    mrpc_channel *ch = e2e_channel(g_srv.target, NULL);
    const mrpc_method *m = &k_dl[k ? DL_BLOCKING_UNARY : DL_EVENT_UNARY];
    mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS, NULL);
    e2e_cli c;
    e2e_cli_init(&c);
    e2e_cli_start(&c, ch, m, &o);
    assert_int_equal(e2e_cli_send_str(c.call, m, "x"), 0);
    assert_int_equal(mrpc_call_close_send(c.call), 0);
    E2E_WAIT_UNTIL(atomic_load(&g_started) > 0, 5000);
    assert_int_equal(atomic_load(&g_started), 1);
    mrpc_channel_del(ch);
    e2e_cli_wait(&c, 1000); /* on_done came during mrpc_channel_del */
    int code = c.st.code, done = c.done;
    e2e_cli_free(&c); /* the call outlives its channel: unref is fine */
    int res = server_result();
    assert_int_equal(done, 1);
    if (k)
      assert_int_equal(res, 1);
    else
      assert_int_equal(res, MRPC_STATUS_CANCELLED);
    assert_int_equal(code, MRPC_STATUS_UNAVAILABLE); /* channel.h */
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_deadline_shorter_than_a_slow_blocking_handler),
      cmocka_unit_test(test_server_side_deadline_marks_the_call_cancelled),
      cmocka_unit_test(
          test_response_sent_before_the_deadline_passes_is_dropped),
      cmocka_unit_test(test_deadline_ends_a_blocking_handlers_recv_with_closed),
      cmocka_unit_test(test_deadline_ends_an_event_handlers_call),
      cmocka_unit_test(test_tiny_deadline_gives_deadline_exceeded),
      cmocka_unit_test(
          test_client_cancel_from_another_thread_reaches_the_server),
      cmocka_unit_test(test_cancel_wakes_a_blocking_client_and_its_handler),
      cmocka_unit_test(test_cancel_before_any_message),
      cmocka_unit_test(test_channel_del_ends_calls_in_flight),
  };
  e2e_group_methods(k_dl, k_dl_h, DL_COUNT);
  return cmocka_run_group_tests(tests, e2e_group_setup, e2e_group_teardown);
}
