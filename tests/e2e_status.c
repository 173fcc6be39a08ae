/* End to end: status codes, messages and details; UNIMPLEMENTED for unknown
 * methods and services; UNKNOWN for a blocking handler without a status;
 * UNAVAILABLE without a server; graceful server shutdown with calls in
 * flight.
 * SPDX-License-Identifier: Apache-2.0 */
#include "e2e_common.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

static const char k_special[] =
    "\t\ntest with whitespace\r\nand Unicode BMP \u263A and non-BMP "
    "\U0001F608\t\n";

/* ---- extra methods ---- */

enum { X_NO_STATUS, X_SEND_NO_STATUS, X_NO_HANDLER, X_HOLD_EVENT,
       X_HOLD_BLOCKING, X_IGNORE_REQUEST, X_COUNT };
#define XM(path) {"/e2e.Extra/" path, MRPC_UNARY, E2E_D(simple_request), \
                  E2E_D(simple_response)}
static const mrpc_method k_extra[X_COUNT] = {
    [X_NO_STATUS] = XM("NoStatus"),
    [X_SEND_NO_STATUS] = XM("SendNoStatus"),
    [X_NO_HANDLER] = XM("NoHandler"),
    [X_HOLD_EVENT] = XM("HoldEvent"),
    [X_HOLD_BLOCKING] = XM("HoldBlocking"),
    /* Served as Payload -> SimpleResponse: see ignore_request. */
    [X_IGNORE_REQUEST] = {"/e2e.Extra/IgnoreRequest", MRPC_UNARY,
                          E2E_D(payload), E2E_D(simple_response)},
};

/* A blocking handler that reads the request and returns without a status
 * (optionally after sending a response). */
static void no_status(mrpc_stream *s, void *user) {
  ProtobufCMessage *req;
  while (mrpc_stream_recv(s, &req) == 1) {
    if (user) {
      e2e_msg r;
      mrpc_stream_send(s, e2e_msg_str(&r, E2E_D(simple_response), "x"));
    }
    protobuf_c_message_free_unpacked(req, NULL);
  }
}

/* Held calls: the handlers note that they started and answer "held" once
 * g_release is set (blocking) or the test answers them (event). */
static atomic_int g_started, g_release, g_saw_cancel;
static mrpc_call *g_held;

static void hold_event(mrpc_call *call, void *user) {
  (void)user;
  g_held = mrpc_call_ref(call);
  atomic_fetch_add(&g_started, 1);
}

static void hold_blocking(mrpc_stream *s, void *user) {
  (void)user;
  ProtobufCMessage *req;
  if (mrpc_stream_recv(s, &req) == 1) protobuf_c_message_free_unpacked(req, NULL);
  atomic_fetch_add(&g_started, 1);
  int64_t until = e2e_now_ms() + 15000;
  while (!atomic_load(&g_release) && e2e_now_ms() < until) {
    if (mrpc_call_is_cancelled(mrpc_stream_call(s))) {
      atomic_store(&g_saw_cancel, 1);
      return;
    }
    e2e_sleep_ms(2);
  }
  e2e_msg r;
  mrpc_stream_send(s, e2e_msg_str(&r, E2E_D(simple_response), "held"));
  mrpc_stream_set_status(s, MRPC_STATUS_OK, NULL, NULL, 0);
}

/* Answers OK without reading its request. */
static void ignore_request(mrpc_stream *s, void *user) {
  (void)user;
  e2e_msg r;
  mrpc_stream_send(s, e2e_msg_str(&r, E2E_D(simple_response), "ignored"));
  mrpc_stream_set_status(s, MRPC_STATUS_OK, NULL, NULL, 0);
}

static const mrpc_method_handler k_extra_h[X_COUNT] = {
    [X_NO_STATUS] = {NULL, no_status, NULL},
    [X_SEND_NO_STATUS] = {NULL, no_status, (void *)1},
    [X_NO_HANDLER] = {NULL, NULL, NULL},
    [X_HOLD_EVENT] = {hold_event, NULL, NULL},
    [X_HOLD_BLOCKING] = {NULL, hold_blocking, NULL},
    [X_IGNORE_REQUEST] = {NULL, ignore_request, NULL},
};

/* One unary call asking the echo service for a status; returns the status
 * the client got (the caller frees it). */
static mrpc_status ask_status(mrpc_channel *ch, int srv, int cli, int code,
                              const char *msg, const void *details,
                              size_t dlen) {
  const mrpc_method *m = &e2e_methods[srv][MRPC_UNARY];
  mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS, NULL);
  e2e_msg req;
  e2e_msg_init(&req, m->request, details, dlen);
  e2e_msg_ask_status(&req, code, msg);
  mrpc_status st;
  if (cli == E2E_BLOCKING) {
    ProtobufCMessage *resp = (ProtobufCMessage *)&req; /* must be reset */
    assert_int_equal(mrpc_channel_unary(ch, m, &req.u.base, &o, &resp, &st),
                     0);
    assert_null(resp);
    return st;
  }
  e2e_cli c;
  e2e_cli_init(&c);
  e2e_cli_start(&c, ch, m, &o);
  e2e_assert_sent(mrpc_call_send(c.call, &req.u.base));
  e2e_assert_sent(mrpc_call_close_send(c.call));
  e2e_cli_wait(&c, E2E_TIMEOUT_MS + 5000);
  assert_int_equal(c.n, 0);
  st = c.st;
  memset(&c.st, 0, sizeof c.st);
  e2e_cli_free(&c);
  return st;
}

static void test_every_status_code_and_its_message_arrive_unchanged(
    void **state) {
  (void)state;
  for (int srv = 0; srv < 2; srv++)
    for (int cli = 0; cli < 2; cli++)
      for (int code = 1; code <= 16; code++) {
        char msg[96];
        snprintf(msg, sizeof msg, "handler says %s (%d)",
                 mrpc_status_code_name(code), code);
        mrpc_status st = ask_status(g_ch, srv, cli, code, msg, NULL, 0);
        assert_int_equal(st.code, code);
        assert_string_equal(st.message, msg);
        assert_null(st.details);
        assert_int_equal(st.details_len, 0);
        mrpc_status_free(&st);
      }
}

static void test_message_with_whitespace_and_unicode_round_trips(
    void **state) {
  (void)state;
  for (int srv = 0; srv < 2; srv++)
    for (int cli = 0; cli < 2; cli++) {
      mrpc_status st = ask_status(g_ch, srv, cli, MRPC_STATUS_UNKNOWN,
                                  k_special, NULL, 0);
      assert_int_equal(st.code, MRPC_STATUS_UNKNOWN);
      assert_string_equal(st.message, k_special);
      mrpc_status_free(&st);
    }
}

static void test_status_details_bytes_reach_the_client(void **state) {
  (void)state;
  uint8_t det[300];
  for (size_t i = 0; i < sizeof det; i++) det[i] = (uint8_t)(255 - i);
  for (int srv = 0; srv < 2; srv++)
    for (int cli = 0; cli < 2; cli++)
      for (size_t len = 1; len <= sizeof det; len += 299) { /* 1 and 300 */
        mrpc_status st = ask_status(g_ch, srv, cli,
                                    MRPC_STATUS_INVALID_ARGUMENT, "bad", det,
                                    len);
        assert_int_equal(st.code, MRPC_STATUS_INVALID_ARGUMENT);
        assert_string_equal(st.message, "bad");
        assert_int_equal(st.details_len, len);
        assert_non_null(st.details);
        assert_memory_equal(st.details, det, len);
        mrpc_status_free(&st);
      }
}

/* Messages first, then a non-OK status: all messages, then the status.  The
 * blocking client's recv says CLOSED after the last message. */
static void test_status_after_streamed_messages_comes_after_them(
    void **state) {
  (void)state;
  for (int srv = 0; srv < 2; srv++) {
    const mrpc_method *m = &e2e_methods[srv][MRPC_SERVER_STREAMING];
    mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS, NULL);
    e2e_msg req;
    e2e_msg_str(&req, m->request, "s");
    e2e_msg_ask_responses(&req, 3, 0);
    e2e_msg_ask_status(&req, MRPC_STATUS_ABORTED, "after three");
    mrpc_stream *s;
    ProtobufCMessage *r;
    assert_int_equal(mrpc_channel_open_stream(g_ch, m, &o, &s), 0);
    assert_int_equal(mrpc_stream_send(s, &req.u.base), 0);
    e2e_assert_sent(mrpc_stream_close_send(s)); /* the server may be done */
    for (int i = 0; i < 3; i++) {
      char want[16];
      snprintf(want, sizeof want, "s#%d", i);
      assert_int_equal(mrpc_stream_recv(s, &r), 1);
      e2e_assert_body(r, want);
      protobuf_c_message_free_unpacked(r, NULL);
    }
    assert_int_equal(mrpc_stream_recv(s, &r), MRPC_ERR_CLOSED);
    assert_null(r);
    mrpc_status st;
    assert_int_equal(mrpc_stream_finish(s, &st), 0);
    assert_int_equal(st.code, MRPC_STATUS_ABORTED);
    assert_string_equal(st.message, "after three");
    mrpc_status_free(&st);
  }
}

/* ---- UNIMPLEMENTED ---- */

static void expect_unimplemented(const mrpc_method *m) {
  mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS, NULL);
  e2e_msg req;
  ProtobufCMessage *resp;
  mrpc_status st;
  e2e_msg_str(&req, m->request, "x");
  if (m->kind == MRPC_UNARY) {
    assert_int_equal(mrpc_channel_unary(g_ch, m, &req.u.base, &o, &resp, &st),
                     0);
    assert_null(resp);
    assert_int_equal(st.code, MRPC_STATUS_UNIMPLEMENTED);
    mrpc_status_free(&st);
  }
  e2e_cli c;
  e2e_cli_unary(&c, g_ch, m, &o, "x");
  assert_int_equal(c.st.code, MRPC_STATUS_UNIMPLEMENTED);
  assert_int_equal(c.n, 0);
  e2e_cli_free(&c);
}

static void test_unknown_method_of_a_known_service_is_unimplemented(
    void **state) {
  (void)state;
  static const mrpc_method m[] = {
      {"/e2e.Event/NoSuchMethod", MRPC_UNARY, E2E_D(simple_request),
       E2E_D(simple_response)},
      {"/e2e.Blocking/NoSuchMethod", MRPC_BIDI_STREAMING,
       E2E_D(streaming_output_call_request),
       E2E_D(streaming_output_call_response)}};
  expect_unimplemented(&m[0]);
  expect_unimplemented(&m[1]);
}

static void test_unknown_service_is_unimplemented(void **state) {
  (void)state;
  static const mrpc_method m = {"/no.such.Service/Unary", MRPC_UNARY,
                                E2E_D(simple_request),
                                E2E_D(simple_response)};
  expect_unimplemented(&m);
  /* The channel is fine afterwards. */
  assert_int_equal(e2e_unary_echo(g_ch, E2E_EVENT, "still ok"),
                   MRPC_STATUS_OK);
}

static void test_method_registered_without_handler_is_unimplemented(
    void **state) {
  (void)state;
  expect_unimplemented(&k_extra[X_NO_HANDLER]);
}

/* ---- UNKNOWN ---- */

static void test_blocking_handler_returning_without_status_gives_unknown(
    void **state) {
  (void)state;
  for (int x = X_NO_STATUS; x <= X_SEND_NO_STATUS; x++) {
    mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS, NULL);
    e2e_msg req;
    ProtobufCMessage *resp;
    mrpc_status st;
    assert_int_equal(
        mrpc_channel_unary(g_ch, &k_extra[x],
                           e2e_msg_str(&req, E2E_D(simple_request), "x"), &o,
                           &resp, &st),
        0);
    assert_null(resp);
    assert_int_equal(st.code, MRPC_STATUS_UNKNOWN);
    mrpc_status_free(&st);
  }
}

/* ---- INTERNAL ---- */

/* A request that does not parse ends the call with INTERNAL even when the
 * blocking handler never reads it (a small one is parsed on the worker,
 * before the handler runs).  The client sends a SimpleRequest whose field
 * 2 (response_size, a varint) the server's Payload holds as bytes (field
 * 2, length-delimited): protobuf-c refuses the wire type. */
static void test_unparsable_request_gives_internal_though_never_read(
    void **state) {
  (void)state;
  mrpc_method as_sent = k_extra[X_IGNORE_REQUEST];
  as_sent.request = E2E_D(simple_request);
  mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS, NULL);
  Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
  req.response_size = 7;
  ProtobufCMessage *resp;
  mrpc_status st;
  assert_int_equal(
      mrpc_channel_unary(g_ch, &as_sent, &req.base, &o, &resp, &st), 0);
  assert_null(resp);
  assert_int_equal(st.code, MRPC_STATUS_INTERNAL);
  assert_string_equal(st.message, "could not parse the request message");
  mrpc_status_free(&st);
  /* The same method answers a request that parses. */
  Grpc__Testing__Payload ok = GRPC__TESTING__PAYLOAD__INIT;
  as_sent.request = E2E_D(payload);
  assert_int_equal(mrpc_channel_unary(g_ch, &as_sent, &ok.base, &o, &resp, &st),
                   0);
  assert_int_equal(st.code, MRPC_STATUS_OK);
  assert_non_null(resp);
  e2e_assert_body(resp, "ignored");
  protobuf_c_message_free_unpacked(resp, NULL);
  mrpc_status_free(&st);
}

/* ---- UNAVAILABLE ---- */


static void test_connection_refused_gives_unavailable(void **state) {
  (void)state;
  int fd, port = e2e_refusing_port(&fd);
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", port);
  mrpc_channel *ch = e2e_channel(target, NULL);
  int64_t t0 = e2e_now_ms();
  /* blocking unary */
  assert_int_equal(e2e_unary_echo(ch, E2E_EVENT, "x"), MRPC_STATUS_UNAVAILABLE);
  /* event call */
  e2e_cli c;
  mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS, NULL);
  e2e_cli_unary(&c, ch, &e2e_methods[E2E_EVENT][MRPC_UNARY], &o, "x");
  assert_int_equal(c.st.code, MRPC_STATUS_UNAVAILABLE);
  e2e_cli_free(&c);
  /* blocking stream: recv says CLOSED, finish says UNAVAILABLE */
  mrpc_stream *s;
  ProtobufCMessage *r;
  assert_int_equal(mrpc_channel_open_stream(
                       ch, &e2e_methods[E2E_BLOCKING][MRPC_BIDI_STREAMING], &o,
                       &s),
                   0);
  assert_int_equal(mrpc_stream_recv(s, &r), MRPC_ERR_CLOSED);
  mrpc_status st;
  assert_int_equal(mrpc_stream_finish(s, &st), 0);
  assert_int_equal(st.code, MRPC_STATUS_UNAVAILABLE);
  mrpc_status_free(&st);
  assert_true(e2e_now_ms() - t0 < 5000); /* refused, not timed out */
  mrpc_channel_del(ch);
  close(fd);
}

/* "reconnects after a failure" (channel.h): once a server listens on the
 * port, the very next call on the channel that failed to connect succeeds. */
/* After a failed connection the channel backs off (TRANSIENT_FAILURE:
 * calls fail fast, connection-backoff.md); once the backoff ends it is IDLE
 * and the next call connects again, to the server that is now up. */
static void test_channel_reconnects_on_the_next_call_once_the_server_is_up(
    void **state) {
  (void)state;
  int fd, port = e2e_refusing_port(&fd);
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", port);
  mrpc_channel_opts co;
  mrpc_channel_opts_init(&co);
  co.backoff_initial_ms = 100;
  co.backoff_jitter = -1; /* none */
  mrpc_channel *ch = e2e_channel(target, &co);
  assert_int_equal(e2e_unary_echo(ch, E2E_EVENT, "x"), MRPC_STATUS_UNAVAILABLE);
  close(fd);
  e2e_server srv;
  e2e_server_start(&srv, NULL, target, NULL, NULL, 0);
  /* Wait out the backoff: the channel leaves TRANSIENT_FAILURE by itself. */
  int64_t until = e2e_now_ms() + 5000;
  while (mrpc_channel_get_state(ch, 0) == MRPC_CHANNEL_TRANSIENT_FAILURE &&
         e2e_now_ms() < until)
    mrpc_channel_wait_for_state_change(ch, MRPC_CHANNEL_TRANSIENT_FAILURE,
                                       until - e2e_now_ms());
  int first = e2e_unary_echo(ch, E2E_BLOCKING, "back");
  int second = e2e_unary_echo(ch, E2E_BLOCKING, "back");
  mrpc_channel_del(ch);
  e2e_server_stop(&srv);
  assert_int_equal(first, MRPC_STATUS_OK);
  assert_int_equal(second, MRPC_STATUS_OK);
}

/* ---- graceful shutdown ---- */

typedef struct shut {
  mrpc_server *srv;
  int grace;
  int64_t took;
  atomic_int returned;
} shut;

static void *shutdown_main(void *arg) {
  shut *sh = arg;
  int64_t t0 = e2e_now_ms();
  mrpc_server_shutdown(sh->srv, sh->grace);
  sh->took = e2e_now_ms() - t0;
  atomic_store(&sh->returned, 1);
  return NULL;
}

/* Two calls are held in their handlers (one per style) when the server
 * shuts down with a long grace: new calls get UNAVAILABLE at once, the held
 * ones then finish OK and shutdown returns without using the whole grace;
 * after it, calls still get UNAVAILABLE. */
static void test_shutdown_lets_calls_in_flight_finish_and_refuses_new_ones(
    void **state) {
  (void)state;
  e2e_server srv;
  e2e_server_start(&srv, NULL, NULL, k_extra, k_extra_h, X_COUNT);
  mrpc_channel *ch = e2e_channel(srv.target, NULL);
  atomic_store(&g_started, 0);
  atomic_store(&g_release, 0);
  atomic_store(&g_saw_cancel, 0);
  g_held = NULL;
  mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS, NULL);
  e2e_cli held[2];
  for (int i = 0; i < 2; i++) {
    const mrpc_method *m = &k_extra[i ? X_HOLD_BLOCKING : X_HOLD_EVENT];
    e2e_cli_init(&held[i]);
    e2e_cli_start(&held[i], ch, m, &o);
    assert_int_equal(e2e_cli_send_str(held[i].call, m, "hold"), 0);
    assert_int_equal(mrpc_call_close_send(held[i].call), 0);
  }
  E2E_WAIT_UNTIL(atomic_load(&g_started) == 2, 5000);
  assert_int_equal(atomic_load(&g_started), 2);

  shut sh = {.srv = srv.srv, .grace = 8000};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, shutdown_main, &sh), 0);
  /* New calls: UNAVAILABLE once the shutdown took effect (a call racing
   * with its start may still be served). */
  int code = -1;
  for (int64_t until = e2e_now_ms() + 5000; e2e_now_ms() < until;) {
    code = e2e_unary_echo(ch, E2E_EVENT, "new");
    if (code != MRPC_STATUS_OK) break;
    e2e_sleep_ms(5);
  }
  assert_int_equal(code, MRPC_STATUS_UNAVAILABLE);
  for (int i = 0; i < 3; i++)
    assert_int_equal(e2e_unary_echo(ch, i & 1, "new"),
                     MRPC_STATUS_UNAVAILABLE);
  assert_false(atomic_load(&sh.returned)); /* the held calls are running */

  /* Let the held calls finish. */
  e2e_msg r;
  assert_int_equal(
      mrpc_call_send(g_held, e2e_msg_str(&r, E2E_D(simple_response), "held")),
      0);
  assert_int_equal(mrpc_call_finish(g_held, MRPC_STATUS_OK, NULL, NULL, 0), 0);
  atomic_store(&g_release, 1);
  for (int i = 0; i < 2; i++) {
    e2e_cli_wait(&held[i], 10000);
    assert_int_equal(held[i].st.code, MRPC_STATUS_OK);
    assert_int_equal(held[i].n, 1);
    e2e_cli_assert_body(&held[i], 0, "held");
    e2e_cli_free(&held[i]);
  }
  pthread_join(th, NULL);
  assert_true(sh.took < sh.grace - 1000); /* did not wait out the grace */
  assert_int_equal(atomic_load(&g_saw_cancel), 0);
  mrpc_call_unref(g_held);
  g_held = NULL;

  /* After shutdown: still UNAVAILABLE, event and blocking clients. */
  assert_int_equal(e2e_unary_echo(ch, E2E_BLOCKING, "after"),
                   MRPC_STATUS_UNAVAILABLE);
  e2e_cli c;
  e2e_cli_unary(&c, ch, &e2e_methods[E2E_EVENT][MRPC_UNARY], &o, "after");
  assert_int_equal(c.st.code, MRPC_STATUS_UNAVAILABLE);
  e2e_cli_free(&c);
  mrpc_channel_del(ch);
  e2e_server_stop(&srv);
}

/* A call still running when the grace ends is cancelled: the client gets a
 * non-OK status and the blocking handler sees the cancellation. */
static void test_shutdown_cancels_calls_still_running_after_the_grace(
    void **state) {
  (void)state;
  e2e_server srv;
  e2e_server_start(&srv, NULL, NULL, k_extra, k_extra_h, X_COUNT);
  mrpc_channel *ch = e2e_channel(srv.target, NULL);
  atomic_store(&g_started, 0);
  atomic_store(&g_release, 0);
  atomic_store(&g_saw_cancel, 0);
  mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS, NULL);
  e2e_cli c;
  e2e_cli_init(&c);
  e2e_cli_start(&c, ch, &k_extra[X_HOLD_BLOCKING], &o);
  assert_int_equal(e2e_cli_send_str(c.call, &k_extra[X_HOLD_BLOCKING], "hold"),
                   0);
  assert_int_equal(mrpc_call_close_send(c.call), 0);
  E2E_WAIT_UNTIL(atomic_load(&g_started) == 1, 5000);
  assert_int_equal(atomic_load(&g_started), 1);
  int64_t t0 = e2e_now_ms();
  assert_int_equal(mrpc_server_shutdown(srv.srv, 200), 0);
  assert_true(e2e_now_ms() - t0 < 5000);
  assert_int_equal(atomic_load(&g_saw_cancel), 1);
  e2e_cli_wait(&c, 5000);
  assert_int_not_equal(c.st.code, MRPC_STATUS_OK);
  assert_int_equal(c.n, 0);
  e2e_cli_free(&c);
  mrpc_channel_del(ch);
  e2e_server_stop(&srv);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_status_code_and_its_message_arrive_unchanged),
      cmocka_unit_test(test_message_with_whitespace_and_unicode_round_trips),
      cmocka_unit_test(test_status_details_bytes_reach_the_client),
      cmocka_unit_test(test_status_after_streamed_messages_comes_after_them),
      cmocka_unit_test(test_unknown_method_of_a_known_service_is_unimplemented),
      cmocka_unit_test(test_unknown_service_is_unimplemented),
      cmocka_unit_test(test_method_registered_without_handler_is_unimplemented),
      cmocka_unit_test(
          test_blocking_handler_returning_without_status_gives_unknown),
      cmocka_unit_test(
          test_unparsable_request_gives_internal_though_never_read),
      cmocka_unit_test(test_connection_refused_gives_unavailable),
      cmocka_unit_test(
          test_channel_reconnects_on_the_next_call_once_the_server_is_up),
      cmocka_unit_test(
          test_shutdown_lets_calls_in_flight_finish_and_refuses_new_ones),
      cmocka_unit_test(
          test_shutdown_cancels_calls_still_running_after_the_grace),
  };
  e2e_group_methods(k_extra, k_extra_h, X_COUNT);
  return cmocka_run_group_tests(tests, e2e_group_setup, e2e_group_teardown);
}
