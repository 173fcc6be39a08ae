/* End to end: message size limits both ways, the header list limit, many
 * concurrent calls, and flow control with slow readers on either side.
 * SPDX-License-Identifier: Apache-2.0 */
#include "e2e_common.h"

#define LIMIT (64 * 1024)  /* max_recv_message where one is set */
#define BIG (100 * 1024)   /* a message over it */
#define CHUNK (64 * 1024)  /* slow-reader message size */
#define N_CHUNKS 64

/* ---- a slow sink: client streaming, blocking, reads 1 message / ms ---- */

static const mrpc_method k_sink = {"/e2e.Lim/SlowSink", MRPC_CLIENT_STREAMING,
                                   E2E_D(streaming_input_call_request),
                                   E2E_D(streaming_input_call_response)};

static void slow_sink(mrpc_stream *s, void *user) {
  (void)user;
  uint32_t fold = E2E_FOLD_INIT;
  ProtobufCMessage *req;
  int rc;
  while ((rc = mrpc_stream_recv(s, &req)) == 1) {
    size_t len;
    const uint8_t *b = e2e_body(req, &len);
    fold = e2e_fold(fold, b, len);
    protobuf_c_message_free_unpacked(req, NULL);
    /* 3 ms a message: slower than the client fills them even under TSan
     * (at 1 ms the two could keep pace, and the client never waited). */
    e2e_sleep_ms(3);
  }
  if (rc < 0) return;
  Grpc__Testing__StreamingInputCallResponse r =
      GRPC__TESTING__STREAMING_INPUT_CALL_RESPONSE__INIT;
  r.aggregated_payload_size = (int32_t)fold;
  mrpc_stream_send(s, &r.base);
  mrpc_stream_set_status(s, MRPC_STATUS_OK, NULL, NULL, 0);
}

static const mrpc_method_handler k_sink_h = {NULL, slow_sink, NULL};

/* A unary call of a body of len pattern bytes asking for a response of
 * resp_size bytes (0: echo); returns the code. */
static int sized_unary(mrpc_channel *ch, int srv, int cli, size_t len,
                       int32_t resp_size) {
  const mrpc_method *m = &e2e_methods[srv][MRPC_UNARY];
  mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS, NULL);
  uint8_t *body = malloc(len ? len : 1);
  assert_non_null(body);
  e2e_fill(body, len, 3);
  e2e_msg req;
  e2e_msg_init(&req, m->request, body, len);
  req.u.sreq.response_size = resp_size;
  int code;
  size_t want = resp_size > 0 ? (size_t)resp_size : len;
  if (cli == E2E_BLOCKING) {
    ProtobufCMessage *resp;
    mrpc_status st;
    assert_int_equal(mrpc_channel_unary(ch, m, &req.u.base, &o, &resp, &st),
                     0);
    code = st.code;
    if (code == MRPC_STATUS_OK) {
      size_t n;
      e2e_body(resp, &n);
      assert_int_equal(n, want);
      protobuf_c_message_free_unpacked(resp, NULL);
    }
    mrpc_status_free(&st);
  } else {
    e2e_cli c;
    e2e_cli_init(&c);
    e2e_cli_start(&c, ch, m, &o);
    e2e_assert_sent(mrpc_call_send(c.call, &req.u.base));
    e2e_assert_sent(mrpc_call_close_send(c.call));
    e2e_cli_wait(&c, E2E_TIMEOUT_MS + 5000);
    code = c.st.code;
    assert_int_equal(c.n, code == MRPC_STATUS_OK ? 1 : 0);
    if (c.n) assert_int_equal(c.lens[0], want);
    e2e_cli_free(&c);
  }
  free(body);
  return code;
}

/* ---- size limits ---- */

static void test_request_over_server_limit_is_resource_exhausted(
    void **state) {
  (void)state;
  mrpc_server_opts so;
  mrpc_server_opts_init(&so);
  so.max_recv_message = LIMIT;
  e2e_server srv;
  e2e_server_start(&srv, &so, NULL, NULL, NULL, 0);
  mrpc_channel *ch = e2e_channel(srv.target, NULL);
  for (int s = 0; s < 2; s++)
    for (int cli = 0; cli < 2; cli++) {
      assert_int_equal(sized_unary(ch, s, cli, BIG, 0),
                       MRPC_STATUS_RESOURCE_EXHAUSTED);
      /* The same channel goes on: at the limit is fine. */
      assert_int_equal(sized_unary(ch, s, cli, LIMIT - 16, 0),
                       MRPC_STATUS_OK);
    }
  mrpc_channel_del(ch);
  e2e_server_stop(&srv);
}

static void test_response_over_channel_limit_is_resource_exhausted(
    void **state) {
  (void)state;
  mrpc_channel_opts co;
  mrpc_channel_opts_init(&co);
  co.max_recv_message = LIMIT;
  mrpc_channel *ch = e2e_channel(g_srv.target, &co);
  for (int s = 0; s < 2; s++)
    for (int cli = 0; cli < 2; cli++) {
      assert_int_equal(sized_unary(ch, s, cli, 10, BIG),
                       MRPC_STATUS_RESOURCE_EXHAUSTED);
      assert_int_equal(sized_unary(ch, s, cli, 10, LIMIT - 16),
                       MRPC_STATUS_OK);
    }
  mrpc_channel_del(ch);
}

/* Request metadata over the 8192-byte header list limit: the call fails
 * with RESOURCE_EXHAUSTED, the connection survives. */
static void test_request_metadata_over_8k_is_resource_exhausted(
    void **state) {
  (void)state;
  mrpc_channel *ch = e2e_channel(g_srv.target, NULL);
  assert_int_equal(e2e_unary_echo(ch, E2E_EVENT, "before"), MRPC_STATUS_OK);
  mrpc_metadata *md = mrpc_metadata_new(NULL);
  char val[1001];
  memset(val, 'v', 1000);
  val[1000] = '\0';
  for (int i = 0; i < 10; i++) { /* ~10 KB */
    char key[24];
    snprintf(key, sizeof key, "x-big-%d", i);
    assert_int_equal(mrpc_metadata_add_str(md, key, val), 0);
  }
  mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS, md);
  for (int s = 0; s < 2; s++) {
    const mrpc_method *m = &e2e_methods[s][MRPC_UNARY];
    e2e_msg req;
    ProtobufCMessage *resp;
    mrpc_status st;
    assert_int_equal(mrpc_channel_unary(ch, m, e2e_msg_str(&req, m->request,
                                                            "x"),
                                        &o, &resp, &st),
                     0);
    assert_null(resp);
    assert_int_equal(st.code, MRPC_STATUS_RESOURCE_EXHAUSTED);
    mrpc_status_free(&st);
    e2e_cli c;
    e2e_cli_unary(&c, ch, m, &o, "x");
    assert_int_equal(c.st.code, MRPC_STATUS_RESOURCE_EXHAUSTED);
    e2e_cli_free(&c);
    /* The next call on the same channel succeeds. */
    assert_int_equal(e2e_unary_echo(ch, s, "after"), MRPC_STATUS_OK);
  }
  mrpc_metadata_del(md);
  mrpc_channel_del(ch);
}

/* ---- concurrency ---- */

static void test_200_concurrent_event_calls_all_succeed(void **state) {
  (void)state;
  enum { N = 200 };
  e2e_cli *c = calloc(N, sizeof *c);
  assert_non_null(c);
  mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS, NULL);
  char body[32];
  for (int i = 0; i < N; i++) {
    const mrpc_method *m = &e2e_methods[i & 1][MRPC_UNARY];
    e2e_cli_init(&c[i]);
    e2e_cli_start(&c[i], g_ch, m, &o);
    snprintf(body, sizeof body, "call-%d", i);
    assert_int_equal(e2e_cli_send_str(c[i].call, m, body), 0);
    e2e_assert_sent(mrpc_call_close_send(c[i].call));
  }
  for (int i = 0; i < N; i++) {
    e2e_cli_wait(&c[i], E2E_TIMEOUT_MS + 5000);
    assert_int_equal(c[i].st.code, MRPC_STATUS_OK);
    snprintf(body, sizeof body, "call-%d", i);
    e2e_cli_assert_body(&c[i], 0, body);
  }
  for (int i = 0; i < N; i++) e2e_cli_free(&c[i]);
  free(c);
}

typedef struct worker {
  pthread_t th;
  int id, ok, failed;
} worker;

static void *worker_main(void *arg) {
  worker *w = arg;
  mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS, NULL);
  for (int i = 0; i < 25; i++) {
    const mrpc_method *m = &e2e_methods[(w->id + i) & 1][MRPC_UNARY];
    char body[32];
    snprintf(body, sizeof body, "w%d-%d", w->id, i);
    e2e_msg req;
    ProtobufCMessage *resp;
    mrpc_status st;
    int rc = mrpc_channel_unary(g_ch, m, e2e_msg_str(&req, m->request, body),
                                &o, &resp, &st);
    size_t len = 0;
    const uint8_t *b = rc == 0 && resp ? e2e_body(resp, &len) : NULL;
    if (rc == 0 && st.code == MRPC_STATUS_OK && b && len == strlen(body) &&
        memcmp(b, body, len) == 0)
      w->ok++;
    else
      w->failed++;
    if (resp) protobuf_c_message_free_unpacked(resp, NULL);
    mrpc_status_free(&st);
  }
  return NULL;
}

static void test_8_threads_of_blocking_calls_all_succeed(void **state) {
  (void)state;
  worker w[8];
  for (int i = 0; i < 8; i++) {
    w[i] = (worker){.id = i};
    assert_int_equal(pthread_create(&w[i].th, NULL, worker_main, &w[i]), 0);
  }
  for (int i = 0; i < 8; i++) pthread_join(w[i].th, NULL);
  for (int i = 0; i < 8; i++) {
    assert_int_equal(w[i].failed, 0);
    assert_int_equal(w[i].ok, 25);
  }
}

/* ---- flow control ---- */

/* The server streams N_CHUNKS x 64 KiB to a blocking client that reads
 * slowly.  Event handler: its sends hit MRPC_ERR_AGAIN and resume in
 * on_writable; blocking handler: mrpc_stream_send waits.  Everything
 * arrives intact and in order. */
static void slow_reader(int srv) {
  const mrpc_method *m = &e2e_methods[srv][MRPC_SERVER_STREAMING];
  mrpc_call_opts o = e2e_copts(30000, NULL);
  e2e_msg req;
  e2e_msg_str(&req, m->request, "");
  e2e_msg_ask_responses(&req, N_CHUNKS, CHUNK);
  atomic_store(&e2e_again_count, 0);
  mrpc_stream *s;
  assert_int_equal(mrpc_channel_open_stream(g_ch, m, &o, &s), 0);
  assert_int_equal(mrpc_stream_send(s, &req.u.base), 0);
  e2e_assert_sent(mrpc_stream_close_send(s)); /* the server may be done */
  ProtobufCMessage *r;
  int i = 0, rc;
  while ((rc = mrpc_stream_recv(s, &r)) == 1) {
    size_t len;
    const uint8_t *b = e2e_body(r, &len);
    assert_int_equal(len, CHUNK);
    assert_true(e2e_check_fill(b, len, (unsigned)i));
    protobuf_c_message_free_unpacked(r, NULL);
    i++;
    e2e_sleep_ms(3);
  }
  assert_int_equal(rc, 0);
  assert_int_equal(i, N_CHUNKS);
  mrpc_status st;
  assert_int_equal(mrpc_stream_finish(s, &st), 0);
  assert_int_equal(st.code, MRPC_STATUS_OK);
  mrpc_status_free(&st);
}

static void test_slow_reader_back_pressures_an_event_handler(void **state) {
  (void)state;
  slow_reader(E2E_EVENT);
  assert_true(atomic_load(&e2e_again_count) >= 1);
}

static void test_slow_reader_back_pressures_a_blocking_handler(void **state) {
  (void)state;
  slow_reader(E2E_BLOCKING);
}

/* A slow reader that gives up: cancelling after one message releases the
 * server's back-pressured sender (event: on_done; blocking: send returns)
 * and the channel goes on. */
static void test_cancelling_a_slow_reader_releases_the_sender(void **state) {
  (void)state;
  for (int srv = 0; srv < 2; srv++) {
    const mrpc_method *m = &e2e_methods[srv][MRPC_SERVER_STREAMING];
    mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS, NULL);
    e2e_msg req;
    e2e_msg_str(&req, m->request, "");
    e2e_msg_ask_responses(&req, N_CHUNKS, CHUNK);
    mrpc_stream *s;
    ProtobufCMessage *r;
    assert_int_equal(mrpc_channel_open_stream(g_ch, m, &o, &s), 0);
    assert_int_equal(mrpc_stream_send(s, &req.u.base), 0);
    e2e_assert_sent(mrpc_stream_close_send(s)); /* the server may be done */
    assert_int_equal(mrpc_stream_recv(s, &r), 1);
    protobuf_c_message_free_unpacked(r, NULL);
    e2e_sleep_ms(50); /* let the server fill every buffer */
    assert_int_equal(mrpc_call_cancel(mrpc_stream_call(s)), 0);
    mrpc_status st;
    assert_int_equal(mrpc_stream_finish(s, &st), 0);
    assert_int_equal(st.code, MRPC_STATUS_CANCELLED);
    mrpc_status_free(&st);
    assert_int_equal(e2e_unary_echo(g_ch, srv, "after"), MRPC_STATUS_OK);
  }
}

/* The other way: an event-driven client streams N_CHUNKS x 64 KiB to a
 * handler that reads slowly; its sends hit MRPC_ERR_AGAIN and resume from
 * on_writable. */
typedef struct sender {
  e2e_cli cli;
  pthread_mutex_t mu;
  int next, again;
} sender;

static void sender_pump(sender *sd, mrpc_call *call) {
  pthread_mutex_lock(&sd->mu);
  static uint8_t buf[CHUNK];
  while (sd->next < N_CHUNKS) {
    e2e_fill(buf, CHUNK, (unsigned)sd->next);
    e2e_msg req;
    int rc = mrpc_call_send(call, e2e_msg_init(&req, k_sink.request, buf,
                                               CHUNK));
    if (rc == MRPC_ERR_AGAIN) {
      sd->again++;
      break;
    }
    E2E_CHECK(rc == 0);
    if (rc) break;
    sd->next++;
  }
  if (sd->next == N_CHUNKS) {
    sd->next++;
    E2E_CHECK(mrpc_call_close_send(call) == 0);
  }
  pthread_mutex_unlock(&sd->mu);
}

static void sender_on_writable(mrpc_call *call, void *ctx) {
  sender_pump(ctx, call);
}

static void test_slow_handler_back_pressures_an_event_client(void **state) {
  (void)state;
  sender sd;
  memset(&sd, 0, sizeof sd);
  e2e_cli_init(&sd.cli); /* first member: the ops' ctx is the sender */
  pthread_mutex_init(&sd.mu, NULL);
  mrpc_call_ops ops = e2e_cli_ops;
  ops.on_writable = sender_on_writable;
  mrpc_call_opts o = e2e_copts(30000, NULL);
  assert_int_equal(
      mrpc_channel_start_call(g_ch, &k_sink, &o, &ops, &sd, &sd.cli.call), 0);
  sender_pump(&sd, sd.cli.call);
  e2e_cli_wait(&sd.cli, 35000);
  assert_int_equal(sd.cli.st.code, MRPC_STATUS_OK);
  uint32_t want = E2E_FOLD_INIT;
  static uint8_t buf[CHUNK];
  for (int i = 0; i < N_CHUNKS; i++) {
    e2e_fill(buf, CHUNK, (unsigned)i);
    want = e2e_fold(want, buf, CHUNK);
  }
  assert_int_equal(sd.cli.n, 1);
  assert_int_equal(sd.cli.agg, (int32_t)want);
  assert_int_equal(sd.next, N_CHUNKS + 1);
  assert_true(sd.again >= 1);
  e2e_cli_free(&sd.cli);
  pthread_mutex_destroy(&sd.mu);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_request_over_server_limit_is_resource_exhausted),
      cmocka_unit_test(test_response_over_channel_limit_is_resource_exhausted),
      cmocka_unit_test(test_request_metadata_over_8k_is_resource_exhausted),
      cmocka_unit_test(test_200_concurrent_event_calls_all_succeed),
      cmocka_unit_test(test_8_threads_of_blocking_calls_all_succeed),
      cmocka_unit_test(test_slow_reader_back_pressures_an_event_handler),
      cmocka_unit_test(test_slow_reader_back_pressures_a_blocking_handler),
      cmocka_unit_test(test_cancelling_a_slow_reader_releases_the_sender),
      cmocka_unit_test(test_slow_handler_back_pressures_an_event_client),
  };
  e2e_group_methods(&k_sink, &k_sink_h, 1);
  return cmocka_run_group_tests(tests, e2e_group_setup, e2e_group_teardown);
}
