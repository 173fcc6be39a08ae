/* End to end: request metadata (ASCII and "-bin" with any bytes) reaches
 * the handler; response headers and trailers reach the client (event API
 * in on_done, blocking API through mrpc_stream_call); duplicate keys keep
 * their order; peer strings.
 * SPDX-License-Identifier: Apache-2.0 */
#include "e2e_common.h"

/* ---- the metadata service: both styles do the same ---- */

enum { MD_EVENT, MD_BLOCKING, MD_EVENT_EMPTY, MD_BLOCKING_EMPTY, MD_COUNT };
static const mrpc_method k_md[MD_COUNT] = {
    [MD_EVENT] = {"/e2e.Md/Event", MRPC_UNARY, E2E_D(simple_request),
                  E2E_D(simple_response)},
    [MD_BLOCKING] = {"/e2e.Md/Blocking", MRPC_UNARY, E2E_D(simple_request),
                     E2E_D(simple_response)},
    /* Server streaming that answers no message at all: OK, trailers only. */
    [MD_EVENT_EMPTY] = {"/e2e.Md/EventEmpty", MRPC_SERVER_STREAMING,
                        E2E_D(streaming_output_call_request),
                        E2E_D(streaming_output_call_response)},
    [MD_BLOCKING_EMPTY] = {"/e2e.Md/BlockingEmpty", MRPC_SERVER_STREAMING,
                           E2E_D(streaming_output_call_request),
                           E2E_D(streaming_output_call_response)},
};

static const uint8_t k_hbin[] = {0x00, 0xff, 0x7f, 0x80, 0x0a, 0x00};
static const uint8_t k_tbin[] = {0xff, 0x00, 0xfe, 0x01};

/* What the handlers saw (copies, under g_mu). */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static mrpc_metadata *g_req_md;
static char g_peer[128];

static void capture(mrpc_call *call) {
  mrpc_metadata *md = e2e_md_copy(mrpc_call_metadata(call));
  pthread_mutex_lock(&g_mu);
  mrpc_metadata_del(g_req_md);
  g_req_md = md;
  snprintf(g_peer, sizeof g_peer, "%s", mrpc_call_peer(call));
  pthread_mutex_unlock(&g_mu);
}

static void add_headers(mrpc_call *call) {
  E2E_CHECK(mrpc_call_add_header(call, "x-h", "h1", 2) == 0);
  E2E_CHECK(mrpc_call_add_header(call, "x-h-dup", "1", 1) == 0);
  E2E_CHECK(mrpc_call_add_header(call, "x-h-bin", k_hbin, sizeof k_hbin) ==
            0);
  E2E_CHECK(mrpc_call_add_header(call, "x-h-dup", "2", 1) == 0);
  E2E_CHECK(mrpc_call_add_header(call, "x-h-dup", "3", 1) == 0);
  /* The library's names are refused. */
  E2E_CHECK(mrpc_call_add_header(call, "grpc-x", "v", 1) ==
            MRPC_ERR_RESERVED);
  E2E_CHECK(mrpc_call_add_header(call, "content-type", "v", 1) ==
            MRPC_ERR_RESERVED);
}

static void add_trailers(mrpc_call *call) {
  E2E_CHECK(mrpc_call_add_trailer(call, "x-t-dup", "a", 1) == 0);
  E2E_CHECK(mrpc_call_add_trailer(call, "x-t", "t1", 2) == 0);
  E2E_CHECK(mrpc_call_add_trailer(call, "x-t-bin", k_tbin, sizeof k_tbin) ==
            0);
  E2E_CHECK(mrpc_call_add_trailer(call, "x-t-dup", "b", 1) == 0);
}

static void ev_on_message(mrpc_call *call, const ProtobufCMessage *msg,
                          void *ctx) {
  (void)ctx;
  size_t len;
  const uint8_t *b = e2e_body(msg, &len);
  e2e_msg r;
  if (mrpc_call_method(call)->kind == MRPC_UNARY)
    E2E_CHECK(mrpc_call_send(call, e2e_msg_init(&r, E2E_D(simple_response), b,
                                                len)) == 0);
  /* On the I/O thread the send acted at once: headers are out. */
  if (mrpc_call_method(call)->kind == MRPC_UNARY)
    E2E_CHECK(mrpc_call_add_header(call, "x-late", "v", 1) == MRPC_ERR_STATE);
  add_trailers(call);
  E2E_CHECK(mrpc_call_finish(call, MRPC_STATUS_OK, NULL, NULL, 0) == 0);
}

static void md_event(mrpc_call *call, void *user) {
  (void)user;
  static const mrpc_call_ops ops = {ev_on_message, NULL, NULL, NULL};
  capture(call);
  add_headers(call);
  mrpc_call_set_ops(call, &ops, NULL);
}

static void md_blocking(mrpc_stream *s, void *user) {
  (void)user;
  mrpc_call *call = mrpc_stream_call(s);
  capture(call);
  add_headers(call);
  ProtobufCMessage *req;
  if (mrpc_stream_recv(s, &req) != 1) return;
  size_t len;
  const uint8_t *b = e2e_body(req, &len);
  e2e_msg r;
  if (mrpc_call_method(call)->kind == MRPC_UNARY)
    E2E_CHECK(mrpc_stream_send(s, e2e_msg_init(&r, E2E_D(simple_response), b,
                                               len)) == 0);
  protobuf_c_message_free_unpacked(req, NULL);
  add_trailers(call);
  mrpc_stream_set_status(s, MRPC_STATUS_OK, NULL, NULL, 0);
}

static const mrpc_method_handler k_md_h[MD_COUNT] = {
    [MD_EVENT] = {md_event, NULL, NULL},
    [MD_BLOCKING] = {NULL, md_blocking, NULL},
    [MD_EVENT_EMPTY] = {md_event, NULL, NULL},
    [MD_BLOCKING_EMPTY] = {NULL, md_blocking, NULL},
};

/* ---- checks ---- */

/* The request metadata: ASCII, binary with every byte value (0 and 0xff
 * included), every base64 tail length, empty values, a key given thrice
 * among others. */
static mrpc_metadata *request_md(void) {
  static uint8_t all[256];
  for (int i = 0; i < 256; i++) all[i] = (uint8_t)i;
  mrpc_metadata *md = mrpc_metadata_new(NULL);
  assert_non_null(md);
  assert_int_equal(mrpc_metadata_add_str(md, "x-ascii",
                                         "Hello, World! ~{}[]|\\\"'` 0123"),
                   0);
  assert_int_equal(mrpc_metadata_add_str(md, "x-dup", "first"), 0);
  assert_int_equal(mrpc_metadata_add(md, "x-all-bin", all, 256), 0);
  assert_int_equal(mrpc_metadata_add(md, "x-zero-bin", "\0", 1), 0);
  assert_int_equal(mrpc_metadata_add_str(md, "x-dup", "second"), 0);
  assert_int_equal(mrpc_metadata_add(md, "x-ff-bin", "\xff\xff", 2), 0);
  assert_int_equal(mrpc_metadata_add(md, "x-three-bin", "\0\xff\x80", 3), 0);
  assert_int_equal(mrpc_metadata_add(md, "x-empty-bin", "", 0), 0);
  assert_int_equal(mrpc_metadata_add_str(md, "x-empty", ""), 0);
  assert_int_equal(mrpc_metadata_add_str(md, "x-dup", "third"), 0);
  assert_int_equal(mrpc_metadata_add_str(md, "x_under.dot-key", "v"), 0);
  return md;
}

/* a and b hold the same entries in the same order. */
static void assert_md_equal(const mrpc_metadata *a, const mrpc_metadata *b) {
  assert_int_equal(mrpc_metadata_count(a), mrpc_metadata_count(b));
  for (size_t i = 0; i < mrpc_metadata_count(a); i++) {
    const char *k;
    const uint8_t *v;
    size_t len;
    assert_int_equal(mrpc_metadata_at(a, i, &k, &v, &len), 0);
    e2e_assert_md_at(b, i, k, v, len);
  }
}

static void assert_response_headers(const mrpc_metadata *h) {
  assert_non_null(h);
  assert_int_equal(mrpc_metadata_count(h), 5);
  e2e_assert_md_at(h, 0, "x-h", "h1", 2);
  e2e_assert_md_at(h, 1, "x-h-dup", "1", 1);
  e2e_assert_md_at(h, 2, "x-h-bin", k_hbin, sizeof k_hbin);
  e2e_assert_md_at(h, 3, "x-h-dup", "2", 1);
  e2e_assert_md_at(h, 4, "x-h-dup", "3", 1);
}

static void assert_trailers(const mrpc_metadata *t) {
  assert_non_null(t);
  assert_int_equal(mrpc_metadata_count(t), 4);
  e2e_assert_md_at(t, 0, "x-t-dup", "a", 1);
  e2e_assert_md_at(t, 1, "x-t", "t1", 2);
  e2e_assert_md_at(t, 2, "x-t-bin", k_tbin, sizeof k_tbin);
  e2e_assert_md_at(t, 3, "x-t-dup", "b", 1);
}

static void assert_server_saw(const mrpc_metadata *want) {
  pthread_mutex_lock(&g_mu);
  assert_non_null(g_req_md);
  assert_md_equal(want, g_req_md);
  mrpc_metadata_del(g_req_md);
  g_req_md = NULL;
  pthread_mutex_unlock(&g_mu);
}

/* ---- tests ---- */

static void test_request_metadata_reaches_the_handler_in_order(void **state) {
  (void)state;
  mrpc_metadata *md = request_md();
  mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS, md);
  for (int srv = 0; srv < 2; srv++) {
    const mrpc_method *m = &k_md[srv ? MD_BLOCKING : MD_EVENT];
    /* blocking unary */
    e2e_msg req;
    ProtobufCMessage *resp;
    mrpc_status st;
    assert_int_equal(mrpc_channel_unary(g_ch, m,
                                        e2e_msg_str(&req, m->request, "md"),
                                        &o, &resp, &st),
                     0);
    assert_int_equal(st.code, MRPC_STATUS_OK);
    e2e_assert_body(resp, "md");
    protobuf_c_message_free_unpacked(resp, NULL);
    mrpc_status_free(&st);
    assert_server_saw(md);
    /* event-driven */
    e2e_cli c;
    e2e_cli_unary(&c, g_ch, m, &o, "md");
    assert_int_equal(c.st.code, MRPC_STATUS_OK);
    e2e_cli_free(&c);
    assert_server_saw(md);
  }
  /* A call without metadata: the handler sees none (nothing of the
   * library's own headers leaks in). */
  e2e_cli c;
  mrpc_call_opts none = e2e_copts(E2E_TIMEOUT_MS, NULL);
  e2e_cli_unary(&c, g_ch, &k_md[MD_EVENT], &none, "none");
  assert_int_equal(c.st.code, MRPC_STATUS_OK);
  e2e_cli_free(&c);
  mrpc_metadata *empty = mrpc_metadata_new(NULL);
  assert_server_saw(empty);
  mrpc_metadata_del(empty);
  mrpc_metadata_del(md);
}

static void test_response_headers_and_trailers_reach_the_event_client(
    void **state) {
  (void)state;
  mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS, NULL);
  for (int srv = 0; srv < 2; srv++) {
    e2e_cli c;
    e2e_cli_unary(&c, g_ch, &k_md[srv ? MD_BLOCKING : MD_EVENT], &o, "x");
    assert_int_equal(c.st.code, MRPC_STATUS_OK);
    assert_int_equal(c.n, 1);
    assert_response_headers(c.headers); /* copied in on_done */
    assert_trailers(c.trailers);
    /* Still readable from the call while referenced. */
    assert_response_headers(mrpc_call_metadata(c.call));
    assert_trailers(mrpc_call_trailers(c.call));
    e2e_cli_free(&c);
  }
}

static void test_response_headers_and_trailers_reach_the_blocking_client(
    void **state) {
  (void)state;
  mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS, NULL);
  for (int srv = 0; srv < 2; srv++) {
    const mrpc_method *m = &k_md[srv ? MD_BLOCKING : MD_EVENT];
    mrpc_stream *s;
    ProtobufCMessage *r;
    e2e_msg req;
    assert_int_equal(mrpc_channel_open_stream(g_ch, m, &o, &s), 0);
    assert_int_equal(mrpc_stream_send(s, e2e_msg_str(&req, m->request, "x")),
                     0);
    e2e_assert_sent(mrpc_stream_close_send(s)); /* the server may be done */
    assert_int_equal(mrpc_stream_recv(s, &r), 1);
    protobuf_c_message_free_unpacked(r, NULL);
    /* A message arrived: the headers came before it. */
    assert_response_headers(mrpc_call_metadata(mrpc_stream_call(s)));
    /* The end of the messages: the call is over, trailers complete. */
    assert_int_equal(mrpc_stream_recv(s, &r), 0);
    assert_trailers(mrpc_call_trailers(mrpc_stream_call(s)));
    mrpc_status st;
    assert_int_equal(mrpc_stream_finish(s, &st), 0);
    assert_int_equal(st.code, MRPC_STATUS_OK);
    mrpc_status_free(&st);
  }
}

/* The entries of md whose key starts with prefix, as "key=value;..." (the
 * values here are printable or checked elsewhere). */
static void md_filter(const mrpc_metadata *md, const char *prefix, char *out,
                      size_t cap) {
  size_t n = 0;
  out[0] = '\0';
  for (size_t i = 0; i < mrpc_metadata_count(md); i++) {
    const char *k;
    const uint8_t *v;
    size_t len;
    mrpc_metadata_at(md, i, &k, &v, &len);
    if (strncmp(k, prefix, strlen(prefix)) != 0) continue;
    bool bin = strlen(k) > 4 && strcmp(k + strlen(k) - 4, "-bin") == 0;
    n += (size_t)snprintf(out + n, cap - n, "%s=%.*s;", k,
                          bin ? 0 : (int)len, (const char *)v);
    if (n >= cap) break;
  }
}

/* A server-streaming call answered with no message is a trailers-only
 * response (headers and status in one HEADERS frame).  The handler added
 * headers (mrpc_call_add_header) and trailers (mrpc_call_add_trailer): the
 * trailers must be the client's mrpc_call_trailers, in order; the headers
 * may come as headers or (trailers-only has no header block of its own) as
 * trailers, but must come. */
static void test_trailers_of_a_trailers_only_response_arrive_as_trailers(
    void **state) {
  (void)state;
  mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS, NULL);
  for (int srv = 0; srv < 2; srv++) {
    e2e_cli c;
    e2e_cli_unary(&c, g_ch, &k_md[srv ? MD_BLOCKING_EMPTY : MD_EVENT_EMPTY],
                  &o, "x");
    assert_int_equal(c.st.code, MRPC_STATUS_OK);
    assert_int_equal(c.n, 0);
    char t_in_trailers[256], t_in_headers[256], h_in_headers[256],
        h_in_trailers[256];
    md_filter(c.trailers, "x-t", t_in_trailers, sizeof t_in_trailers);
    md_filter(c.headers, "x-t", t_in_headers, sizeof t_in_headers);
    md_filter(c.headers, "x-h", h_in_headers, sizeof h_in_headers);
    md_filter(c.trailers, "x-h", h_in_trailers, sizeof h_in_trailers);
    e2e_cli_free(&c); /* before asserting: a failure leaks nothing */
    static const char want_h[] = "x-h=h1;x-h-dup=1;x-h-bin=;x-h-dup=2;x-h-dup=3;";
    static const char want_t[] = "x-t-dup=a;x-t=t1;x-t-bin=;x-t-dup=b;";
    assert_string_equal(t_in_headers, "");
    assert_string_equal(t_in_trailers, want_t);
    if (strcmp(h_in_headers, want_h) != 0)
      assert_string_equal(h_in_trailers, want_h);
  }
}

static void test_ascii_value_with_edge_spaces_is_refused_or_delivered(
    void **state) {
  (void)state;
  static const char *const vals[] = {" lead", "trail ", " both "};
  for (size_t i = 0; i < 3; i++) {
    mrpc_metadata *md = mrpc_metadata_new(NULL);
    int rc = mrpc_metadata_add_str(md, "x-space", vals[i]);
    if (rc == MRPC_ERR_INVAL) {
      mrpc_metadata_del(md);
      continue;
    }
    assert_int_equal(rc, 0);
    mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS, md);
    e2e_cli c;
    e2e_cli_unary(&c, g_ch, &k_md[MD_EVENT], &o, "x");
    int code = c.st.code;
    char msg[128];
    snprintf(msg, sizeof msg, "%s", c.st.message);
    e2e_cli_free(&c);
    if (code != MRPC_STATUS_OK) {
      mrpc_metadata_del(md);
      fail_msg("value \"%s\" accepted, then the call failed: %s (%s)",
               vals[i], mrpc_status_code_name(code), msg);
    }
    assert_server_saw(md);
    mrpc_metadata_del(md);
  }
}

static void test_peer_strings_name_the_loopback_addresses(void **state) {
  (void)state;
  mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS, NULL);
  e2e_cli c;
  e2e_cli_unary(&c, g_ch, &k_md[MD_EVENT], &o, "peer");
  assert_int_equal(c.st.code, MRPC_STATUS_OK);
  char want[64];
  snprintf(want, sizeof want, "ipv4:127.0.0.1:%d", g_srv.port);
  assert_string_equal(mrpc_call_peer(c.call), want); /* client: the server */
  e2e_cli_free(&c);
  pthread_mutex_lock(&g_mu);
  const char *p = g_peer; /* server: the client's ephemeral port */
  const char *prefix = "ipv4:127.0.0.1:";
  assert_memory_equal(p, prefix, strlen(prefix));
  char *end;
  long port = strtol(p + strlen(prefix), &end, 10);
  assert_true(*end == '\0' && port > 0 && port < 65536 && port != g_srv.port);
  pthread_mutex_unlock(&g_mu);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_request_metadata_reaches_the_handler_in_order),
      cmocka_unit_test(
          test_response_headers_and_trailers_reach_the_event_client),
      cmocka_unit_test(
          test_response_headers_and_trailers_reach_the_blocking_client),
      cmocka_unit_test(
          test_trailers_of_a_trailers_only_response_arrive_as_trailers),
      cmocka_unit_test(
          test_ascii_value_with_edge_spaces_is_refused_or_delivered),
      cmocka_unit_test(test_peer_strings_name_the_loopback_addresses),
  };
  e2e_group_methods(k_md, k_md_h, MD_COUNT);
  return cmocka_run_group_tests(tests, e2e_group_setup, e2e_group_teardown);
}
