/* End to end: the four RPC patterns, each with both server handler styles
 * (event-driven, blocking) and both client styles (blocking
 * mrpc_channel_unary / mrpc_channel_open_stream, event-driven
 * mrpc_channel_start_call), over 127.0.0.1 and over a unix socket.
 * SPDX-License-Identifier: Apache-2.0 */
#include "e2e_common.h"

#define N_STREAM 10 /* messages per streaming call */

/* ---- unary ---- */

static void unary(mrpc_channel *ch, int srv, int cli) {
  const mrpc_method *m = &e2e_methods[srv][MRPC_UNARY];
  mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS, NULL);
  for (int i = 0; i < 3; i++) { /* several calls on one channel */
    char body[32];
    snprintf(body, sizeof body, "hello unary %d", i);
    if (cli == E2E_BLOCKING) {
      assert_int_equal(e2e_unary_echo(ch, srv, body), MRPC_STATUS_OK);
      continue;
    }
    e2e_cli c;
    e2e_cli_unary(&c, ch, m, &o, body);
    assert_int_equal(c.st.code, MRPC_STATUS_OK);
    assert_string_equal(c.st.message, "");
    assert_int_equal(c.n, 1);
    e2e_cli_assert_body(&c, 0, body);
    assert_int_equal(c.done, 1);
    assert_int_equal(c.half_closed, 1);
    e2e_cli_free(&c);
  }
}

/* ---- server streaming ---- */

static void server_streaming(mrpc_channel *ch, int srv, int cli) {
  const mrpc_method *m = &e2e_methods[srv][MRPC_SERVER_STREAMING];
  mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS, NULL);
  e2e_msg req;
  e2e_msg_str(&req, m->request, "ss");
  e2e_msg_ask_responses(&req, N_STREAM, 0);
  char want[32];
  if (cli == E2E_BLOCKING) {
    mrpc_stream *s;
    assert_int_equal(mrpc_channel_open_stream(ch, m, &o, &s), 0);
    assert_int_equal(mrpc_stream_send(s, &req.u.base), 0);
    e2e_assert_sent(mrpc_stream_close_send(s)); /* the server may be done */
    ProtobufCMessage *r;
    int i = 0, rc;
    while ((rc = mrpc_stream_recv(s, &r)) == 1) {
      assert_true(i < N_STREAM);
      snprintf(want, sizeof want, "ss#%d", i++);
      e2e_assert_body(r, want);
      protobuf_c_message_free_unpacked(r, NULL);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(i, N_STREAM);
    mrpc_status st;
    assert_int_equal(mrpc_stream_finish(s, &st), 0);
    assert_int_equal(st.code, MRPC_STATUS_OK);
    mrpc_status_free(&st);
    return;
  }
  e2e_cli c;
  e2e_cli_init(&c);
  e2e_cli_start(&c, ch, m, &o);
  assert_int_equal(mrpc_call_send(c.call, &req.u.base), 0);
  /* The server may have finished already (it needs no half-close). */
  e2e_assert_sent(mrpc_call_close_send(c.call));
  e2e_cli_wait(&c, E2E_TIMEOUT_MS + 5000);
  assert_int_equal(c.st.code, MRPC_STATUS_OK);
  assert_int_equal(c.n, N_STREAM);
  for (int i = 0; i < N_STREAM; i++) {
    snprintf(want, sizeof want, "ss#%d", i);
    e2e_cli_assert_body(&c, (size_t)i, want);
  }
  e2e_cli_free(&c);
}

/* ---- client streaming ---- */

static void client_streaming(mrpc_channel *ch, int srv, int cli) {
  const mrpc_method *m = &e2e_methods[srv][MRPC_CLIENT_STREAMING];
  mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS, NULL);
  uint32_t want = E2E_FOLD_INIT;
  char body[32];
  for (int i = 0; i < N_STREAM; i++) {
    snprintf(body, sizeof body, "in-%d", i);
    want = e2e_fold(want, (const uint8_t *)body, strlen(body));
  }
  mrpc_stream *s = NULL;
  e2e_cli c;
  if (cli == E2E_BLOCKING) {
    assert_int_equal(mrpc_channel_open_stream(ch, m, &o, &s), 0);
  } else {
    e2e_cli_init(&c);
    e2e_cli_start(&c, ch, m, &o);
  }
  for (int i = 0; i < N_STREAM; i++) {
    e2e_msg req;
    snprintf(body, sizeof body, "in-%d", i);
    e2e_msg_str(&req, m->request, body);
    assert_int_equal(s ? mrpc_stream_send(s, &req.u.base)
                       : mrpc_call_send(c.call, &req.u.base),
                     0);
  }
  if (cli == E2E_BLOCKING) {
    assert_int_equal(mrpc_stream_close_send(s), 0);
    ProtobufCMessage *r;
    assert_int_equal(mrpc_stream_recv(s, &r), 1);
    assert_ptr_equal(r->descriptor, m->response);
    assert_int_equal(
        ((Grpc__Testing__StreamingInputCallResponse *)r)->aggregated_payload_size,
        (int32_t)want);
    protobuf_c_message_free_unpacked(r, NULL);
    assert_int_equal(mrpc_stream_recv(s, &r), 0);
    mrpc_status st;
    assert_int_equal(mrpc_stream_finish(s, &st), 0);
    assert_int_equal(st.code, MRPC_STATUS_OK);
    mrpc_status_free(&st);
    return;
  }
  assert_int_equal(mrpc_call_close_send(c.call), 0);
  e2e_cli_wait(&c, E2E_TIMEOUT_MS + 5000);
  assert_int_equal(c.st.code, MRPC_STATUS_OK);
  assert_int_equal(c.n, 1);
  assert_int_equal(c.agg, (int32_t)want);
  e2e_cli_free(&c);
}

/* ---- bidi: ping-pong (each request answered before the next) ---- */

static void bidi(mrpc_channel *ch, int srv, int cli) {
  const mrpc_method *m = &e2e_methods[srv][MRPC_BIDI_STREAMING];
  mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS, NULL);
  char body[32];
  if (cli == E2E_BLOCKING) { /* reads borrowed (the other patterns own) */
    mrpc_stream *s;
    const ProtobufCMessage *r;
    assert_int_equal(mrpc_channel_open_stream(ch, m, &o, &s), 0);
    for (int i = 0; i < N_STREAM; i++) {
      e2e_msg req;
      snprintf(body, sizeof body, "ping-%d", i);
      assert_int_equal(
          mrpc_stream_send(s, e2e_msg_str(&req, m->request, body)), 0);
      assert_int_equal(mrpc_stream_recv_borrowed(s, &r), 1);
      e2e_assert_body(r, body); /* freed by the next recv */
    }
    assert_int_equal(mrpc_stream_close_send(s), 0);
    assert_int_equal(mrpc_stream_recv_borrowed(s, &r), 0);
    assert_null(r);
    mrpc_status st;
    assert_int_equal(mrpc_stream_finish(s, &st), 0);
    assert_int_equal(st.code, MRPC_STATUS_OK);
    mrpc_status_free(&st);
    return;
  }
  e2e_cli c;
  e2e_cli_init(&c);
  c.pp_method = m;
  c.pp_total = N_STREAM;
  e2e_cli_start(&c, ch, m, &o);
  e2e_cli_pp_next(&c, c.call); /* the rest is sent from on_message */
  e2e_cli_wait(&c, E2E_TIMEOUT_MS + 5000);
  assert_int_equal(c.st.code, MRPC_STATUS_OK);
  assert_int_equal(c.n, N_STREAM);
  for (int i = 0; i < N_STREAM; i++) {
    snprintf(body, sizeof body, "ping-%d", i);
    e2e_cli_assert_body(&c, (size_t)i, body);
  }
  e2e_cli_free(&c);
}

#define STYLE_event E2E_EVENT
#define STYLE_blocking E2E_BLOCKING
#define COMBOS(X)                                                            \
  X(unary_echoes_each_request, unary, event, event)                          \
  X(unary_echoes_each_request, unary, event, blocking)                       \
  X(unary_echoes_each_request, unary, blocking, event)                       \
  X(unary_echoes_each_request, unary, blocking, blocking)                    \
  X(server_streaming_delivers_every_response_in_order, server_streaming,     \
    event, event)                                                            \
  X(server_streaming_delivers_every_response_in_order, server_streaming,     \
    event, blocking)                                                         \
  X(server_streaming_delivers_every_response_in_order, server_streaming,     \
    blocking, event)                                                         \
  X(server_streaming_delivers_every_response_in_order, server_streaming,     \
    blocking, blocking)                                                      \
  X(client_streaming_aggregates_every_request_in_order, client_streaming,    \
    event, event)                                                            \
  X(client_streaming_aggregates_every_request_in_order, client_streaming,    \
    event, blocking)                                                         \
  X(client_streaming_aggregates_every_request_in_order, client_streaming,    \
    blocking, event)                                                         \
  X(client_streaming_aggregates_every_request_in_order, client_streaming,    \
    blocking, blocking)                                                      \
  X(bidi_ping_pong_echoes_each_message_in_turn, bidi, event, event)          \
  X(bidi_ping_pong_echoes_each_message_in_turn, bidi, event, blocking)       \
  X(bidi_ping_pong_echoes_each_message_in_turn, bidi, blocking, event)       \
  X(bidi_ping_pong_echoes_each_message_in_turn, bidi, blocking, blocking)

#define DEFINE(name, fn, srv, cli)                                           \
  static void test_##name##__##srv##_handler__##cli##_client(void **state) { \
    (void)state;                                                             \
    fn(g_ch, STYLE_##srv, STYLE_##cli);                                      \
  }
COMBOS(DEFINE)

/* ---- more shapes ---- */

/* Bidi with every request sent before any response is read: the server
 * answers while the client is still sending (full duplex). */
static void bidi_burst(int srv) {
  const mrpc_method *m = &e2e_methods[srv][MRPC_BIDI_STREAMING];
  mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS, NULL);
  enum { N = 200 };
  char body[32];
  e2e_cli c;
  e2e_cli_init(&c);
  e2e_cli_start(&c, g_ch, m, &o);
  for (int i = 0; i < N; i++) {
    snprintf(body, sizeof body, "burst-%d", i);
    assert_int_equal(e2e_cli_send_str(c.call, m, body), 0);
  }
  assert_int_equal(mrpc_call_close_send(c.call), 0);
  e2e_cli_wait(&c, E2E_TIMEOUT_MS + 5000);
  assert_int_equal(c.st.code, MRPC_STATUS_OK);
  assert_int_equal(c.n, N);
  for (int i = 0; i < N; i++) {
    snprintf(body, sizeof body, "burst-%d", i);
    e2e_cli_assert_body(&c, (size_t)i, body);
  }
  e2e_cli_free(&c);
}

static void test_bidi_burst_echoes_everything_in_order__event_handler(
    void **state) {
  (void)state;
  bidi_burst(E2E_EVENT);
}

static void test_bidi_burst_echoes_everything_in_order__blocking_handler(
    void **state) {
  (void)state;
  bidi_burst(E2E_BLOCKING);
}

/* Server streaming of messages larger than an HTTP/2 frame (16 KiB) and
 * than the stream window: every byte arrives, in order. */
static void large_server_stream(int srv) {
  const mrpc_method *m = &e2e_methods[srv][MRPC_SERVER_STREAMING];
  mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS, NULL);
  enum { N = 24, SIZE = 100000 };
  e2e_msg req;
  e2e_msg_str(&req, m->request, "");
  e2e_msg_ask_responses(&req, N, SIZE);
  mrpc_stream *s;
  assert_int_equal(mrpc_channel_open_stream(g_ch, m, &o, &s), 0);
  assert_int_equal(mrpc_stream_send(s, &req.u.base), 0);
  e2e_assert_sent(mrpc_stream_close_send(s)); /* the server may be done */
  ProtobufCMessage *r;
  int i = 0, rc;
  while ((rc = mrpc_stream_recv(s, &r)) == 1) {
    size_t len;
    const uint8_t *b = e2e_body(r, &len);
    assert_int_equal(len, SIZE);
    assert_true(e2e_check_fill(b, len, (unsigned)i));
    i++;
    protobuf_c_message_free_unpacked(r, NULL);
  }
  assert_int_equal(rc, 0);
  assert_int_equal(i, N);
  mrpc_status st;
  assert_int_equal(mrpc_stream_finish(s, &st), 0);
  assert_int_equal(st.code, MRPC_STATUS_OK);
  mrpc_status_free(&st);
}

static void test_server_streaming_of_large_messages_arrives_intact__event_handler(
    void **state) {
  (void)state;
  large_server_stream(E2E_EVENT);
}

static void
test_server_streaming_of_large_messages_arrives_intact__blocking_handler(
    void **state) {
  (void)state;
  large_server_stream(E2E_BLOCKING);
}

/* A unary request larger than a frame and the window, echoed back. */
static void test_large_unary_request_is_echoed_intact(void **state) {
  (void)state;
  enum { SIZE = 3 * 1024 * 1024 };
  uint8_t *big = malloc(SIZE);
  assert_non_null(big);
  e2e_fill(big, SIZE, 9);
  mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS, NULL);
  for (int srv = 0; srv < 2; srv++) {
    const mrpc_method *m = &e2e_methods[srv][MRPC_UNARY];
    e2e_msg req;
    ProtobufCMessage *resp;
    mrpc_status st;
    assert_int_equal(mrpc_channel_unary(g_ch, m,
                                        e2e_msg_init(&req, m->request, big,
                                                     SIZE),
                                        &o, &resp, &st),
                     0);
    assert_int_equal(st.code, MRPC_STATUS_OK);
    size_t len;
    const uint8_t *b = e2e_body(resp, &len);
    assert_int_equal(len, SIZE);
    assert_true(e2e_check_fill(b, len, 9));
    protobuf_c_message_free_unpacked(resp, NULL);
    mrpc_status_free(&st);
  }
  free(big);
}

/* An empty request message (zero-length gRPC frame) works too. */
static void test_empty_messages_round_trip(void **state) {
  (void)state;
  for (int srv = 0; srv < 2; srv++)
    assert_int_equal(e2e_unary_echo(g_ch, srv, ""), MRPC_STATUS_OK);
}

/* A message borrowed from a client stream and not followed by another recv
 * is freed by mrpc_stream_finish (the sanitizers' leak check watches). */
static void test_message_borrowed_last_is_freed_by_finish(void **state) {
  (void)state;
  for (int srv = 0; srv < 2; srv++) {
    const mrpc_method *m = &e2e_methods[srv][MRPC_BIDI_STREAMING];
    mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS, NULL);
    mrpc_stream *s;
    assert_int_equal(mrpc_channel_open_stream(g_ch, m, &o, &s), 0);
    e2e_msg req;
    assert_int_equal(
        mrpc_stream_send(s, e2e_msg_str(&req, m->request, "lent")), 0);
    const ProtobufCMessage *r;
    assert_int_equal(mrpc_stream_recv_borrowed(s, &r), 1);
    e2e_assert_body(r, "lent");
    assert_int_equal(mrpc_stream_close_send(s), 0);
    mrpc_status st;
    assert_int_equal(mrpc_stream_finish(s, &st), 0);
    assert_int_equal(st.code, MRPC_STATUS_OK);
    mrpc_status_free(&st);
  }
}

/* ---- unix socket ---- */

static void test_all_patterns_work_over_a_unix_socket(void **state) {
  (void)state;
  char addr[128];
  snprintf(addr, sizeof addr, "unix:/tmp/e2e_patterns_%d.sock", (int)getpid());
  e2e_server us;
  e2e_server_start(&us, NULL, addr, NULL, NULL, 0);
  assert_string_equal(us.target, addr);
  mrpc_channel *ch = e2e_channel(us.target, NULL);
  for (int srv = 0; srv < 2; srv++)
    for (int cli = 0; cli < 2; cli++) {
      unary(ch, srv, cli);
      server_streaming(ch, srv, cli);
      client_streaming(ch, srv, cli);
      bidi(ch, srv, cli);
    }
  /* The peer of a unix call says so. */
  e2e_cli c;
  mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS, NULL);
  e2e_cli_unary(&c, ch, &e2e_methods[E2E_EVENT][MRPC_UNARY], &o, "peer");
  assert_int_equal(c.st.code, MRPC_STATUS_OK);
  assert_string_equal(mrpc_call_peer(c.call), addr);
  e2e_cli_free(&c);
  mrpc_channel_del(ch);
  e2e_server_stop(&us);
  unlink(addr + 5);
}

int main(void) {
#define LIST(name, fn, srv, cli)                                             \
  cmocka_unit_test(test_##name##__##srv##_handler__##cli##_client),
  const struct CMUnitTest tests[] = {
      COMBOS(LIST)
      cmocka_unit_test(test_bidi_burst_echoes_everything_in_order__event_handler),
      cmocka_unit_test(
          test_bidi_burst_echoes_everything_in_order__blocking_handler),
      cmocka_unit_test(
          test_server_streaming_of_large_messages_arrives_intact__event_handler),
      cmocka_unit_test(
          test_server_streaming_of_large_messages_arrives_intact__blocking_handler),
      cmocka_unit_test(test_large_unary_request_is_echoed_intact),
      cmocka_unit_test(test_empty_messages_round_trip),
      cmocka_unit_test(test_message_borrowed_last_is_freed_by_finish),
      cmocka_unit_test(test_all_patterns_work_over_a_unix_socket),
  };
  e2e_group_methods(NULL, NULL, 0);
  return cmocka_run_group_tests(tests, e2e_group_setup, e2e_group_teardown);
}
