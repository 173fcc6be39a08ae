/* End-to-end compression: requests and responses compressed per message with
 * gzip or deflate, negotiated through grpc-encoding / grpc-accept-encoding;
 * per-message opt-out; the receive limit applies after decompression. */
#include "e2e_common.h"

/* /e2e.Comp/Check: answers with username "compressed" or "plain" for how
 * the request arrived, echoes the payload, and compresses the response with
 * gzip when response_compressed is set. */
static void check_on_message(mrpc_call *call, const ProtobufCMessage *msg,
                             void *ctx) {
  (void)ctx;
  const Grpc__Testing__SimpleRequest *r = (const void *)msg;
  if (r->response_compressed && r->response_compressed->value)
    E2E_CHECK(mrpc_call_set_compression(call, MRPC_COMPRESS_GZIP) == 0);
  Grpc__Testing__SimpleResponse resp = GRPC__TESTING__SIMPLE_RESPONSE__INIT;
  resp.username = mrpc_call_message_compressed(call) ? "compressed" : "plain";
  resp.payload = r->payload;
  E2E_CHECK(mrpc_call_send(call, &resp.base) == 0);
  mrpc_call_finish(call, MRPC_STATUS_OK, NULL, NULL, 0);
}

static void check_handler(mrpc_call *call, void *user) {
  (void)user;
  static const mrpc_call_ops ops = {.on_message = check_on_message};
  mrpc_call_set_ops(call, &ops, NULL);
}

static const mrpc_method k_check = {"/e2e.Comp/Check", MRPC_UNARY,
                                    E2E_D(simple_request),
                                    E2E_D(simple_response)};
static const mrpc_method_handler k_check_h = {check_handler, NULL, NULL};

typedef struct result {
  int code;
  char username[16];
  size_t body_len;
  int resp_compressed;
} result;

/* One Check call through the blocking API; compression per call (0 = the
 * channel's default), optionally with message compression turned off. */
static result check_call(mrpc_channel *ch, int compression, int msg_off,
                         int ask_compressed, size_t body_len) {
  uint8_t *body = calloc(1, body_len ? body_len : 1);
  assert_non_null(body);
  e2e_fill(body, body_len, 3);
  e2e_msg m;
  e2e_msg_init(&m, k_check.request, body, body_len);
  Grpc__Testing__BoolValue bv = GRPC__TESTING__BOOL_VALUE__INIT;
  bv.value = ask_compressed;
  m.u.sreq.response_compressed = &bv;
  mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS, NULL);
  o.compression = compression;
  mrpc_stream *s;
  assert_int_equal(mrpc_channel_open_stream(ch, &k_check, &o, &s), 0);
  if (msg_off) mrpc_call_set_message_compression(mrpc_stream_call(s), 0);
  e2e_assert_sent(mrpc_stream_send(s, &m.u.base));
  e2e_assert_sent(mrpc_stream_close_send(s));
  result r = {0};
  ProtobufCMessage *resp;
  if (mrpc_stream_recv(s, &resp) == 1) {
    const Grpc__Testing__SimpleResponse *sr = (const void *)resp;
    snprintf(r.username, sizeof r.username, "%s", sr->username);
    e2e_body(resp, &r.body_len);
    r.resp_compressed = mrpc_stream_last_compressed(s);
    protobuf_c_message_free_unpacked(resp, NULL);
  }
  mrpc_status st;
  mrpc_stream_finish(s, &st);
  r.code = st.code;
  mrpc_status_free(&st);
  free(body);
  return r;
}

static void test_gzip_and_deflate_requests_arrive_compressed(void **state) {
  (void)state;
  int algs[] = {MRPC_COMPRESS_GZIP, MRPC_COMPRESS_DEFLATE};
  for (int i = 0; i < 2; i++) {
    result r = check_call(g_ch, MRPC_CALL_COMPRESS(algs[i]), 0, 0, 10000);
    assert_int_equal(r.code, MRPC_STATUS_OK);
    assert_string_equal(r.username, "compressed");
    assert_int_equal(r.body_len, 10000);
    assert_int_equal(r.resp_compressed, 0);
  }
  result r = check_call(g_ch, 0, 0, 0, 100); /* channel default: none */
  assert_string_equal(r.username, "plain");
}

static void test_message_compression_can_be_turned_off(void **state) {
  (void)state;
  result r = check_call(g_ch, MRPC_CALL_COMPRESS(MRPC_COMPRESS_GZIP), 1, 0,
                        5000);
  assert_int_equal(r.code, MRPC_STATUS_OK);
  assert_string_equal(r.username, "plain");
  assert_int_equal(r.body_len, 5000);
}

static void test_server_compresses_responses_when_asked(void **state) {
  (void)state;
  result r = check_call(g_ch, 0, 0, 1, 20000);
  assert_int_equal(r.code, MRPC_STATUS_OK);
  assert_int_equal(r.resp_compressed, 1);
  assert_int_equal(r.body_len, 20000);
}

static void test_server_default_compression_applies_to_echo(void **state) {
  (void)state;
  e2e_server srv;
  mrpc_server_opts so;
  mrpc_server_opts_init(&so);
  so.io_threads = 1;
  so.compression = MRPC_COMPRESS_DEFLATE;
  e2e_server_start(&srv, &so, NULL, NULL, NULL, 0);
  mrpc_channel *ch = e2e_channel(srv.target, NULL);
  for (int style = 0; style < 2; style++) {
    const mrpc_method *m = &e2e_methods[style][MRPC_SERVER_STREAMING];
    e2e_msg req;
    e2e_msg_str(&req, m->request, "x");
    e2e_msg_ask_responses(&req, 3, 4096);
    mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS, NULL);
    mrpc_stream *s;
    assert_int_equal(mrpc_channel_open_stream(ch, m, &o, &s), 0);
    e2e_assert_sent(mrpc_stream_send(s, &req.u.base));
    e2e_assert_sent(mrpc_stream_close_send(s));
    ProtobufCMessage *resp;
    int n = 0;
    while (mrpc_stream_recv(s, &resp) == 1) {
      size_t len;
      const uint8_t *b = e2e_body(resp, &len);
      assert_int_equal(len, 4096);
      assert_true(e2e_check_fill(b, len, (unsigned)n));
      assert_int_equal(mrpc_stream_last_compressed(s), 1);
      protobuf_c_message_free_unpacked(resp, NULL);
      n++;
    }
    mrpc_status st;
    mrpc_stream_finish(s, &st);
    assert_int_equal(st.code, MRPC_STATUS_OK);
    assert_int_equal(n, 3);
    mrpc_status_free(&st);
  }
  mrpc_channel_del(ch);
  e2e_server_stop(&srv);
}

static void test_channel_default_compression_round_trips(void **state) {
  (void)state;
  mrpc_channel_opts co;
  mrpc_channel_opts_init(&co);
  co.compression = MRPC_COMPRESS_GZIP;
  mrpc_channel *ch = e2e_channel(g_srv.target, &co);
  for (int style = 0; style < 2; style++)
    assert_int_equal(e2e_unary_echo(ch, style, "hello compressed world"),
                     MRPC_STATUS_OK);
  result r = check_call(ch, 0, 0, 0, 300);
  assert_string_equal(r.username, "compressed");
  mrpc_channel_del(ch);
}

/* 8 MiB of one byte packs into a few KiB: the server must measure the
 * message after inflating it and refuse it, not buffer it all. */
static void test_compressed_message_over_the_limit_is_refused(void **state) {
  (void)state;
  result r = check_call(g_ch, MRPC_CALL_COMPRESS(MRPC_COMPRESS_GZIP), 0, 0,
                        8u << 20);
  assert_int_equal(r.code, MRPC_STATUS_RESOURCE_EXHAUSTED);
  assert_int_equal(e2e_unary_echo(g_ch, E2E_EVENT, "after"), MRPC_STATUS_OK);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_gzip_and_deflate_requests_arrive_compressed),
      cmocka_unit_test(test_message_compression_can_be_turned_off),
      cmocka_unit_test(test_server_compresses_responses_when_asked),
      cmocka_unit_test(test_server_default_compression_applies_to_echo),
      cmocka_unit_test(test_channel_default_compression_round_trips),
      cmocka_unit_test(test_compressed_message_over_the_limit_is_refused),
  };
  e2e_group_methods(&k_check, &k_check_h, 1);
  return cmocka_run_group_tests(tests, e2e_group_setup, e2e_group_teardown);
}
