/* End to end: retry policies (gRPC A6) of the client channel against an
 * in-process server whose methods fail a set number of times.  Attempt
 * counts are taken on the server; the grpc-previous-rpc-attempts header and
 * grpc-retry-pushback-ms trailer are "grpc-" names, reserved: the server
 * API neither shows the first to handlers nor lets them send the second,
 * so both are checked against a raw HTTP/2 server in tests/retry/run.sh.
 * SPDX-License-Identifier: Apache-2.0 */
#include "e2e_common.h"

#include <math.h>

/* ---- the retry service ---- */

enum { M_FLAKY, M_OTHER, M_SVC2, M_STREAM, M_COLLECT, M_COUNT };
#define UNARY_M(path)                                                        \
  {path, MRPC_UNARY, E2E_D(simple_request), E2E_D(simple_response)}
static const mrpc_method k_m[M_COUNT] = {
    [M_FLAKY] = UNARY_M("/e2e.Retry/Flaky"),
    [M_OTHER] = UNARY_M("/e2e.Retry/Other"),
    /* Shares "/e2e.Retry" as a string prefix but is another service. */
    [M_SVC2] = UNARY_M("/e2e.Retry2/Flaky"),
    /* One response, then the failure: the call has committed. */
    [M_STREAM] = {"/e2e.Retry/StreamThenFail", MRPC_SERVER_STREAMING,
                  E2E_D(streaming_output_call_request),
                  E2E_D(streaming_output_call_response)},
    /* Collects the requests; fails at half-close while attempts last. */
    [M_COLLECT] = {"/e2e.Retry/Collect", MRPC_CLIENT_STREAMING,
                   E2E_D(streaming_input_call_request),
                   E2E_D(streaming_input_call_response)},
};

#define MAX_SEEN 16
/* Per test (reset_server): attempts seen per method; the first g_fail_n of
 * each fail with g_fail_code. */
static atomic_int g_attempts[M_COUNT];
static atomic_int g_fail_n, g_fail_code;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
/* Flaky, per attempt: grpc-previous-rpc-attempts as the handler saw it
 * ("" when absent).  Collect, per attempt: the request bodies, "|"-joined. */
static char g_prev[MAX_SEEN + 1][16];
static char g_seen[MAX_SEEN + 1][256];

static void reset_server(int fail_n, mrpc_status_code code) {
  for (int i = 0; i < M_COUNT; i++) atomic_store(&g_attempts[i], 0);
  atomic_store(&g_fail_n, fail_n);
  atomic_store(&g_fail_code, (int)code);
  pthread_mutex_lock(&g_mu);
  memset(g_prev, 0, sizeof g_prev);
  memset(g_seen, 0, sizeof g_seen);
  pthread_mutex_unlock(&g_mu);
}

static int attempts(int m) { return atomic_load(&g_attempts[m]); }

static int fails(intptr_t n) { return n <= atomic_load(&g_fail_n); }

/* The attempt number travels in the call's ctx. */
static intptr_t begin_attempt(int m) {
  return atomic_fetch_add(&g_attempts[m], 1) + 1;
}

static void unary_on_message(mrpc_call *call, const ProtobufCMessage *msg,
                             void *ctx) {
  if (fails((intptr_t)ctx)) {
    /* Why pushback is tested elsewhere: a handler can not send it. */
    E2E_CHECK(mrpc_call_add_trailer(call, "grpc-retry-pushback-ms", "0", 1) ==
              MRPC_ERR_RESERVED);
    mrpc_call_finish(call, (mrpc_status_code)atomic_load(&g_fail_code),
                     "flaky", NULL, 0);
    return;
  }
  size_t len;
  const uint8_t *b = e2e_body(msg, &len);
  e2e_msg r;
  E2E_CHECK(mrpc_call_send(call, e2e_msg_init(&r, E2E_D(simple_response), b,
                                              len)) == 0);
  mrpc_call_finish(call, MRPC_STATUS_OK, NULL, NULL, 0);
}

static void unary_handler(mrpc_call *call, void *user) {
  int m = (int)(intptr_t)user;
  intptr_t n = begin_attempt(m);
  size_t len;
  const uint8_t *v =
      mrpc_metadata_get(mrpc_call_metadata(call), "grpc-previous-rpc-attempts",
                        &len);
  if (m == M_FLAKY && n <= MAX_SEEN) {
    pthread_mutex_lock(&g_mu);
    snprintf(g_prev[n], sizeof g_prev[n], "%.*s", v ? (int)len : 0,
             v ? (const char *)v : "");
    pthread_mutex_unlock(&g_mu);
  }
  static const mrpc_call_ops ops = {unary_on_message, NULL, NULL, NULL};
  mrpc_call_set_ops(call, &ops, (void *)n);
}

static void stream_on_message(mrpc_call *call, const ProtobufCMessage *msg,
                              void *ctx) {
  (void)msg;
  (void)ctx;
  e2e_msg r;
  E2E_CHECK(mrpc_call_send(call, e2e_msg_str(
                                     &r, E2E_D(streaming_output_call_response),
                                     "first")) == 0);
  mrpc_call_finish(call, MRPC_STATUS_UNAVAILABLE, "after a response", NULL,
                   0);
}

static void stream_handler(mrpc_call *call, void *user) {
  (void)user;
  begin_attempt(M_STREAM);
  static const mrpc_call_ops ops = {stream_on_message, NULL, NULL, NULL};
  mrpc_call_set_ops(call, &ops, NULL);
}

typedef struct collect {
  intptr_t n;
  int count;
  char seen[256];
} collect;

static void collect_on_message(mrpc_call *call, const ProtobufCMessage *msg,
                               void *ctx) {
  (void)call;
  collect *c = ctx;
  size_t len, used = strlen(c->seen);
  const uint8_t *b = e2e_body(msg, &len);
  snprintf(c->seen + used, sizeof c->seen - used, "%s%.*s",
           c->count++ ? "|" : "", (int)len, (const char *)b);
}

static void collect_on_half_close(mrpc_call *call, void *ctx) {
  collect *c = ctx;
  if (c->n <= MAX_SEEN) {
    pthread_mutex_lock(&g_mu);
    memcpy(g_seen[c->n], c->seen, sizeof c->seen);
    pthread_mutex_unlock(&g_mu);
  }
  if (fails(c->n)) { /* nothing sent yet: trailers only */
    mrpc_call_finish(call, MRPC_STATUS_UNAVAILABLE, "flaky", NULL, 0);
    return;
  }
  Grpc__Testing__StreamingInputCallResponse r =
      GRPC__TESTING__STREAMING_INPUT_CALL_RESPONSE__INIT;
  r.aggregated_payload_size = c->count;
  E2E_CHECK(mrpc_call_send(call, &r.base) == 0);
  mrpc_call_finish(call, MRPC_STATUS_OK, NULL, NULL, 0);
}

static void collect_on_done(mrpc_call *call, const mrpc_status *st,
                            void *ctx) {
  (void)call;
  (void)st;
  free(ctx);
}

static void collect_handler(mrpc_call *call, void *user) {
  (void)user;
  collect *c = calloc(1, sizeof *c);
  if (!c) abort();
  c->n = begin_attempt(M_COLLECT);
  static const mrpc_call_ops ops = {collect_on_message, collect_on_half_close,
                                    NULL, collect_on_done};
  mrpc_call_set_ops(call, &ops, c);
}

static const mrpc_method_handler k_h[M_COUNT] = {
    [M_FLAKY] = {unary_handler, NULL, (void *)(intptr_t)M_FLAKY},
    [M_OTHER] = {unary_handler, NULL, (void *)(intptr_t)M_OTHER},
    [M_SVC2] = {unary_handler, NULL, (void *)(intptr_t)M_SVC2},
    [M_STREAM] = {stream_handler, NULL, NULL},
    [M_COLLECT] = {collect_handler, NULL, NULL},
};

/* ---- client side ---- */

static mrpc_retry_policy policy(const char *name, int max_attempts,
                                int64_t backoff_ms, double multiplier,
                                uint32_t codes) {
  mrpc_retry_policy p = {name,       max_attempts, backoff_ms,
                         backoff_ms, multiplier,   codes};
  return p;
}

/* A channel to the group's server with these policies. */
static mrpc_channel *retry_channel(const mrpc_retry_policy *p, size_t n,
                                   size_t buffer) {
  mrpc_channel_opts o;
  mrpc_channel_opts_init(&o);
  o.retry_policies = p;
  o.n_retry_policies = n;
  o.retry_buffer_size = buffer;
  return e2e_channel(g_srv.target, &o);
}

static const mrpc_retry_policy k_unavailable_3 = {
    NULL, 3, 10, 10, 1.0, MRPC_RETRY_ON(MRPC_STATUS_UNAVAILABLE)};

/* One unary call to m, blocking or event API, with a deadline (0: none);
 * returns the code, having checked the echo (OK) or the server's message
 * (else: every status here comes from the handler). */
static int unary(mrpc_channel *ch, int m, int style, int64_t timeout_ms) {
  mrpc_call_opts o = e2e_copts(timeout_ms, NULL);
  int code;
  if (style == E2E_BLOCKING) {
    e2e_msg req;
    ProtobufCMessage *resp = NULL;
    mrpc_status st;
    assert_int_equal(
        mrpc_channel_unary(ch, &k_m[m],
                           e2e_msg_str(&req, E2E_D(simple_request), "again"),
                           &o, &resp, &st),
        0);
    code = st.code;
    if (code == MRPC_STATUS_OK)
      e2e_assert_body(resp, "again");
    else
      assert_string_equal(st.message, "flaky");
    if (resp) protobuf_c_message_free_unpacked(resp, NULL);
    mrpc_status_free(&st);
  } else {
    e2e_cli c;
    e2e_cli_unary(&c, ch, &k_m[m], &o, "again");
    code = c.st.code;
    if (code == MRPC_STATUS_OK) {
      assert_int_equal(c.n, 1);
      e2e_cli_assert_body(&c, 0, "again");
    } else {
      assert_int_equal(c.n, 0);
      assert_string_equal(c.st.message, "flaky");
    }
    e2e_cli_free(&c);
  }
  return code;
}

/* ---- tests ---- */

static void test_two_failures_then_success_takes_three_attempts(void **s) {
  (void)s;
  for (int style = 0; style < 2; style++) {
    mrpc_channel *ch = retry_channel(&k_unavailable_3, 1, 0);
    reset_server(2, MRPC_STATUS_UNAVAILABLE);
    assert_int_equal(unary(ch, M_FLAKY, style, E2E_TIMEOUT_MS),
                     MRPC_STATUS_OK);
    assert_int_equal(attempts(M_FLAKY), 3);
    /* The header is reserved and so not shown to handlers (see the top):
     * it is either absent on every attempt or numbers the earlier ones. */
    pthread_mutex_lock(&g_mu);
    assert_string_equal(g_prev[1], "");
    if (g_prev[2][0] || g_prev[3][0]) {
      assert_string_equal(g_prev[2], "1");
      assert_string_equal(g_prev[3], "2");
    }
    pthread_mutex_unlock(&g_mu);
    mrpc_channel_del(ch);
  }
}

static void test_failing_every_attempt_gives_the_last_status(void **s) {
  (void)s;
  for (int style = 0; style < 2; style++) {
    mrpc_channel *ch = retry_channel(&k_unavailable_3, 1, 0);
    reset_server(3, MRPC_STATUS_UNAVAILABLE);
    assert_int_equal(unary(ch, M_FLAKY, style, E2E_TIMEOUT_MS),
                     MRPC_STATUS_UNAVAILABLE);
    assert_int_equal(attempts(M_FLAKY), 3);
    mrpc_channel_del(ch);
  }
}

static void test_max_attempts_above_five_counts_as_five(void **s) {
  (void)s;
  mrpc_retry_policy p =
      policy("/e2e.Retry/Flaky", 10, 5, 1.0,
             MRPC_RETRY_ON(MRPC_STATUS_UNAVAILABLE));
  mrpc_channel *ch = retry_channel(&p, 1, 0);
  reset_server(100, MRPC_STATUS_UNAVAILABLE);
  assert_int_equal(unary(ch, M_FLAKY, E2E_EVENT, E2E_TIMEOUT_MS),
                   MRPC_STATUS_UNAVAILABLE);
  assert_int_equal(attempts(M_FLAKY), 5);
  mrpc_channel_del(ch);
}

static void test_codes_not_listed_are_not_retried(void **s) {
  (void)s;
  mrpc_channel *ch = retry_channel(&k_unavailable_3, 1, 0);
  reset_server(1, MRPC_STATUS_INVALID_ARGUMENT);
  assert_int_equal(unary(ch, M_FLAKY, E2E_BLOCKING, E2E_TIMEOUT_MS),
                   MRPC_STATUS_INVALID_ARGUMENT);
  assert_int_equal(attempts(M_FLAKY), 1);
  mrpc_channel_del(ch);
  /* Listed, the same code is retried: nothing special about UNAVAILABLE. */
  mrpc_retry_policy p =
      policy(NULL, 2, 5, 1.0, MRPC_RETRY_ON(MRPC_STATUS_INVALID_ARGUMENT));
  ch = retry_channel(&p, 1, 0);
  reset_server(1, MRPC_STATUS_INVALID_ARGUMENT);
  assert_int_equal(unary(ch, M_FLAKY, E2E_BLOCKING, E2E_TIMEOUT_MS),
                   MRPC_STATUS_OK);
  assert_int_equal(attempts(M_FLAKY), 2);
  mrpc_channel_del(ch);
}

static void test_policy_of_another_method_or_service_does_not_apply(void **s) {
  (void)s;
  const uint32_t u = MRPC_RETRY_ON(MRPC_STATUS_UNAVAILABLE);
  mrpc_retry_policy ps[2] = {policy("/e2e.Retry/Other", 3, 5, 1.0, u),
                             policy("/e2e.Retry2/", 3, 5, 1.0, u)};
  mrpc_channel *ch = retry_channel(ps, 2, 0);
  reset_server(1, MRPC_STATUS_UNAVAILABLE);
  assert_int_equal(unary(ch, M_FLAKY, E2E_EVENT, E2E_TIMEOUT_MS),
                   MRPC_STATUS_UNAVAILABLE);
  assert_int_equal(attempts(M_FLAKY), 1);
  /* ... while the methods they name are retried. */
  assert_int_equal(unary(ch, M_OTHER, E2E_EVENT, E2E_TIMEOUT_MS),
                   MRPC_STATUS_OK);
  assert_int_equal(attempts(M_OTHER), 2);
  assert_int_equal(unary(ch, M_SVC2, E2E_EVENT, E2E_TIMEOUT_MS),
                   MRPC_STATUS_OK);
  assert_int_equal(attempts(M_SVC2), 2);
  mrpc_channel_del(ch);
}

static void test_most_specific_policy_wins(void **s) {
  (void)s;
  const uint32_t u = MRPC_RETRY_ON(MRPC_STATUS_UNAVAILABLE);
  /* Listed out of order: the order must not matter. */
  mrpc_retry_policy ps[3] = {policy("/e2e.Retry/Flaky", 4, 5, 1.0, u),
                             policy(NULL, 2, 5, 1.0, u),
                             policy("/e2e.Retry/", 3, 5, 1.0, u)};
  mrpc_channel *ch = retry_channel(ps, 3, 0);
  reset_server(100, MRPC_STATUS_UNAVAILABLE);
  assert_int_equal(unary(ch, M_FLAKY, E2E_EVENT, E2E_TIMEOUT_MS),
                   MRPC_STATUS_UNAVAILABLE);
  assert_int_equal(unary(ch, M_OTHER, E2E_BLOCKING, E2E_TIMEOUT_MS),
                   MRPC_STATUS_UNAVAILABLE);
  /* "/e2e.Retry/" does not cover "/e2e.Retry2/...": the default does. */
  assert_int_equal(unary(ch, M_SVC2, E2E_EVENT, E2E_TIMEOUT_MS),
                   MRPC_STATUS_UNAVAILABLE);
  assert_int_equal(attempts(M_FLAKY), 4);
  assert_int_equal(attempts(M_OTHER), 3);
  assert_int_equal(attempts(M_SVC2), 2);
  mrpc_channel_del(ch);
}

/* mrpc_channel_new refuses o: MRPC_ERR_INVAL and no channel. */
static void assert_refused(const mrpc_channel_opts *o) {
  mrpc_channel *ch = NULL;
  assert_int_equal(mrpc_channel_new(g_srv.target, o, &ch), MRPC_ERR_INVAL);
  assert_null(ch);
}

static void test_invalid_policies_are_refused(void **s) {
  (void)s;
  const uint32_t u = MRPC_RETRY_ON(MRPC_STATUS_UNAVAILABLE);
  mrpc_retry_policy bad[] = {
      policy(NULL, 1, 5, 1.0, u),                      /* < 2 attempts */
      policy(NULL, 2, 0, 1.0, u),                      /* no backoff */
      policy(NULL, 2, 5, 0.0, u),                      /* no multiplier */
      policy(NULL, 2, 5, 1.0, 0),                      /* no codes */
      policy(NULL, 2, 5, 1.0, MRPC_RETRY_ON(0)),       /* OK is no failure */
      policy("e2e.Retry/Flaky", 2, 5, 1.0, u),         /* no leading '/' */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    mrpc_channel_opts o;
    mrpc_channel_opts_init(&o);
    o.retry_policies = &bad[i];
    o.n_retry_policies = 1;
    assert_refused(&o);
  }
}

/* Retry throttling (A6) with 4 tokens and 1 back per OK call, every
 * attempt of Flaky failing UNAVAILABLE: the first call's first failure
 * leaves 3 tokens (over half: retried), its second 2 (not over half: no
 * more); the next call's one failure leaves 1.  Failures with a code the
 * policy does not retry take nothing; three OK calls bring the count back
 * to 4 (its maximum), and Flaky gets two attempts again.  Without
 * throttling the same calls would make 5 attempts each. */
static void test_retry_throttling_stops_retries_at_half_the_tokens(void **s) {
  (void)s;
  mrpc_retry_policy p =
      policy(NULL, 5, 5, 1.0, MRPC_RETRY_ON(MRPC_STATUS_UNAVAILABLE));
  mrpc_channel_opts o;
  mrpc_channel_opts_init(&o);
  o.retry_policies = &p;
  o.n_retry_policies = 1;
  o.retry_max_tokens = 4;
  o.retry_token_ratio = 1.0;
  mrpc_channel *ch = e2e_channel(g_srv.target, &o);
  reset_server(100, MRPC_STATUS_UNAVAILABLE);
  assert_int_equal(unary(ch, M_FLAKY, E2E_BLOCKING, E2E_TIMEOUT_MS),
                   MRPC_STATUS_UNAVAILABLE);
  assert_int_equal(attempts(M_FLAKY), 2);
  assert_int_equal(unary(ch, M_FLAKY, E2E_EVENT, E2E_TIMEOUT_MS),
                   MRPC_STATUS_UNAVAILABLE);
  assert_int_equal(attempts(M_FLAKY), 3);
  reset_server(100, MRPC_STATUS_INVALID_ARGUMENT);
  for (int i = 0; i < 3; i++)
    assert_int_equal(unary(ch, M_OTHER, E2E_BLOCKING, E2E_TIMEOUT_MS),
                     MRPC_STATUS_INVALID_ARGUMENT);
  reset_server(0, MRPC_STATUS_UNAVAILABLE);
  for (int i = 0; i < 3; i++)
    assert_int_equal(unary(ch, M_OTHER, E2E_BLOCKING, E2E_TIMEOUT_MS),
                     MRPC_STATUS_OK);
  reset_server(100, MRPC_STATUS_UNAVAILABLE);
  assert_int_equal(unary(ch, M_FLAKY, E2E_BLOCKING, E2E_TIMEOUT_MS),
                   MRPC_STATUS_UNAVAILABLE);
  assert_int_equal(attempts(M_FLAKY), 2);
  mrpc_channel_del(ch);
}

static void test_invalid_retry_throttling_is_refused(void **s) {
  (void)s;
  struct {
    int max;
    double ratio;
  } bad[] = {{-1, 0.1}, {1001, 0.1}, {10, 0.0}, {10, -1.0}, {10, NAN}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    mrpc_channel_opts o;
    mrpc_channel_opts_init(&o);
    o.retry_max_tokens = bad[i].max;
    o.retry_token_ratio = bad[i].ratio;
    assert_refused(&o);
  }
}

static void test_no_retry_once_a_response_arrived(void **s) {
  (void)s;
  mrpc_retry_policy p =
      policy(NULL, 5, 5, 1.0, MRPC_RETRY_ON(MRPC_STATUS_UNAVAILABLE));
  mrpc_channel *ch = retry_channel(&p, 1, 0);
  reset_server(0, MRPC_STATUS_OK);
  e2e_cli c;
  e2e_cli_init(&c);
  mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS, NULL);
  e2e_cli_start(&c, ch, &k_m[M_STREAM], &o);
  e2e_assert_sent(e2e_cli_send_str(c.call, &k_m[M_STREAM], "go"));
  e2e_assert_sent(mrpc_call_close_send(c.call));
  e2e_cli_wait(&c, E2E_TIMEOUT_MS + 5000);
  assert_int_equal(c.st.code, MRPC_STATUS_UNAVAILABLE);
  assert_string_equal(c.st.message, "after a response");
  assert_int_equal(c.n, 1);
  e2e_cli_assert_body(&c, 0, "first");
  assert_int_equal(attempts(M_STREAM), 1);
  e2e_cli_free(&c);
  mrpc_channel_del(ch);
}

/* A6 waits a random time in [0, backoff): backoffs of 10^9 ms make "too
 * long" certain but for a chance in a million. */
#define HUGE_BACKOFF_MS 1000000000

static void test_backoff_past_the_deadline_gives_the_servers_status(void **s) {
  (void)s;
  const uint32_t u = MRPC_RETRY_ON(MRPC_STATUS_UNAVAILABLE);
  mrpc_retry_policy p = policy(NULL, 5, HUGE_BACKOFF_MS, 1.0, u);
  mrpc_channel *ch = retry_channel(&p, 1, 0);
  reset_server(100, MRPC_STATUS_UNAVAILABLE);
  /* The server's status (with its message, see unary()), not
   * DEADLINE_EXCEEDED at 500 ms. */
  assert_int_equal(unary(ch, M_FLAKY, E2E_EVENT, 500),
                   MRPC_STATUS_UNAVAILABLE);
  assert_int_equal(attempts(M_FLAKY), 1);
  mrpc_channel_del(ch);
  /* The first wait (< 50 ms) fits, the second (< 5 * 10^8) does not. */
  p = policy(NULL, 5, 50, 1e7, u);
  p.max_backoff_ms = HUGE_BACKOFF_MS;
  ch = retry_channel(&p, 1, 0);
  reset_server(100, MRPC_STATUS_UNAVAILABLE);
  assert_int_equal(unary(ch, M_FLAKY, E2E_BLOCKING, 1500),
                   MRPC_STATUS_UNAVAILABLE);
  assert_int_equal(attempts(M_FLAKY), 2);
  mrpc_channel_del(ch);
}

static const char *const k_bodies[3] = {"alpha", "bravo", "charlie"};

/* Client streaming of k_bodies (each padded to pad bytes when pad > 0);
 * returns the code, and the response's count in *count. */
static int collect_call(mrpc_channel *ch, int style, size_t pad,
                        int32_t *count) {
  char b[3][512];
  for (int i = 0; i < 3; i++) {
    snprintf(b[i], sizeof b[i], "%s", k_bodies[i]);
    size_t n = strlen(b[i]);
    if (pad > n) {
      memset(b[i] + n, '.', pad - n);
      b[i][pad] = '\0';
    }
  }
  const mrpc_method *m = &k_m[M_COLLECT];
  mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS, NULL);
  e2e_msg msg;
  int code;
  *count = -1;
  if (style == E2E_BLOCKING) {
    mrpc_stream *st;
    assert_int_equal(mrpc_channel_open_stream(ch, m, &o, &st), 0);
    for (int i = 0; i < 3; i++)
      assert_int_equal(
          mrpc_stream_send(st, e2e_msg_str(&msg, m->request, b[i])), 0);
    assert_int_equal(mrpc_stream_close_send(st), 0);
    ProtobufCMessage *r = NULL;
    if (mrpc_stream_recv(st, &r) == 1) {
      *count = ((Grpc__Testing__StreamingInputCallResponse *)r)
                   ->aggregated_payload_size;
      protobuf_c_message_free_unpacked(r, NULL);
    }
    mrpc_status sts;
    assert_int_equal(mrpc_stream_finish(st, &sts), 0);
    code = sts.code;
    mrpc_status_free(&sts);
  } else {
    e2e_cli c;
    e2e_cli_init(&c);
    e2e_cli_start(&c, ch, m, &o);
    for (int i = 0; i < 3; i++)
      e2e_assert_sent(e2e_cli_send_str(c.call, m, b[i]));
    e2e_assert_sent(mrpc_call_close_send(c.call));
    e2e_cli_wait(&c, E2E_TIMEOUT_MS + 5000);
    code = c.st.code;
    if (c.n) *count = c.agg;
    e2e_cli_free(&c);
  }
  return code;
}

static void test_client_stream_is_replayed_whole_on_retry(void **s) {
  (void)s;
  for (int style = 0; style < 2; style++) {
    mrpc_channel *ch = retry_channel(&k_unavailable_3, 1, 0);
    reset_server(1, MRPC_STATUS_UNAVAILABLE);
    int32_t count;
    assert_int_equal(collect_call(ch, style, 0, &count), MRPC_STATUS_OK);
    assert_int_equal(count, 3);
    assert_int_equal(attempts(M_COLLECT), 2);
    pthread_mutex_lock(&g_mu);
    assert_string_equal(g_seen[1], "alpha|bravo|charlie");
    assert_string_equal(g_seen[2], "alpha|bravo|charlie");
    pthread_mutex_unlock(&g_mu);
    mrpc_channel_del(ch);
  }
}

static void test_requests_beyond_the_retry_buffer_end_retries(void **s) {
  (void)s;
  for (int style = 0; style < 2; style++) {
    /* Each message is over 100 bytes framed: the second passes 200. */
    mrpc_channel *ch = retry_channel(&k_unavailable_3, 1, 200);
    reset_server(1, MRPC_STATUS_UNAVAILABLE);
    int32_t count;
    assert_int_equal(collect_call(ch, style, 100, &count),
                     MRPC_STATUS_UNAVAILABLE);
    assert_int_equal(attempts(M_COLLECT), 1);
    mrpc_channel_del(ch);
    /* Within the buffer the same call is retried. */
    ch = retry_channel(&k_unavailable_3, 1, 4096);
    reset_server(1, MRPC_STATUS_UNAVAILABLE);
    assert_int_equal(collect_call(ch, style, 100, &count), MRPC_STATUS_OK);
    assert_int_equal(attempts(M_COLLECT), 2);
    mrpc_channel_del(ch);
  }
}

/* A call whose first attempt failed and that now waits out a huge backoff
 * (it would have ended with UNAVAILABLE otherwise).  No deadline: one would
 * end the retries at once. */
static mrpc_channel *start_waiting_call(e2e_cli *c) {
  mrpc_retry_policy p =
      policy(NULL, 3, HUGE_BACKOFF_MS, 1.0,
             MRPC_RETRY_ON(MRPC_STATUS_UNAVAILABLE));
  mrpc_channel *ch = retry_channel(&p, 1, 0);
  reset_server(100, MRPC_STATUS_UNAVAILABLE);
  e2e_cli_init(c);
  mrpc_call_opts o = e2e_copts(0, NULL);
  e2e_cli_start(c, ch, &k_m[M_FLAKY], &o);
  e2e_assert_sent(e2e_cli_send_str(c->call, &k_m[M_FLAKY], "wait"));
  e2e_assert_sent(mrpc_call_close_send(c->call));
  E2E_WAIT_UNTIL(attempts(M_FLAKY) == 1, E2E_TIMEOUT_MS);
  assert_int_equal(attempts(M_FLAKY), 1);
  e2e_sleep_ms(200); /* the failure reaches the client meanwhile */
  pthread_mutex_lock(&c->mu);
  assert_int_equal(c->done, 0);
  pthread_mutex_unlock(&c->mu);
  return ch;
}

static void test_cancel_between_attempts_ends_the_call_at_once(void **s) {
  (void)s;
  e2e_cli c;
  mrpc_channel *ch = start_waiting_call(&c);
  int64_t t0 = e2e_now_ms();
  assert_int_equal(mrpc_call_cancel(c.call), 0);
  e2e_cli_wait(&c, 3000);
  assert_int_equal(c.st.code, MRPC_STATUS_CANCELLED);
  assert_true(c.done_at - t0 < 1000);
  assert_int_equal(c.done, 1);
  assert_int_equal(attempts(M_FLAKY), 1);
  e2e_cli_free(&c);
  mrpc_channel_del(ch);
}

static void test_channel_deleted_between_attempts_cancels_the_call(void **s) {
  (void)s;
  e2e_cli c;
  mrpc_channel *ch = start_waiting_call(&c);
  int64_t t0 = e2e_now_ms();
  mrpc_channel_del(ch);
  assert_true(e2e_now_ms() - t0 < 1000);
  e2e_cli_wait(&c, 1000);
  assert_int_equal(c.st.code, MRPC_STATUS_CANCELLED);
  assert_int_equal(c.done, 1);
  assert_int_equal(attempts(M_FLAKY), 1);
  e2e_cli_free(&c); /* the call outlives its channel */
}

/* ---- a retry that moves to another server ---- */

static atomic_int g_refused; /* attempts the refusing server saw */

static void refuse_on_message(mrpc_call *call, const ProtobufCMessage *msg,
                              void *ctx) {
  (void)msg;
  (void)ctx;
  mrpc_call_finish(call, MRPC_STATUS_UNAVAILABLE, "flaky", NULL, 0);
}

/* The second server's Flaky: every attempt fails. */
static void refuse_handler(mrpc_call *call, void *user) {
  (void)user;
  atomic_fetch_add(&g_refused, 1);
  static const mrpc_call_ops ops = {refuse_on_message, NULL, NULL, NULL};
  mrpc_call_set_ops(call, &ops, NULL);
}

typedef struct peer_reader {
  e2e_cli *c;
  const char *ok[2]; /* the peers it may see besides "" */
  int bad, reads;
} peer_reader;

/* Reads the peer while the call runs, as mrpc_call_peer allows from any
 * thread: each read must be a whole address (TSan: no race). */
static void *read_peers(void *arg) {
  peer_reader *r = arg;
  while (!e2e_cli_done(r->c)) {
    const char *p = mrpc_call_peer(r->c->call);
    if (p[0] && strcmp(p, r->ok[0]) != 0 && strcmp(p, r->ok[1]) != 0) r->bad++;
    r->reads++;
  }
  return NULL;
}

static void test_peer_after_a_retry_on_another_server_is_that_server(
    void **s) {
  (void)s;
  mrpc_method_handler h[M_COUNT];
  memcpy(h, k_h, sizeof h);
  h[M_FLAKY] = (mrpc_method_handler){refuse_handler, NULL, NULL};
  e2e_server other;
  e2e_server_start(&other, NULL, NULL, k_m, h, M_COUNT);
  atomic_store(&g_refused, 0);
  reset_server(0, MRPC_STATUS_UNAVAILABLE);
  char target[128], first[64], second[64];
  snprintf(target, sizeof target, "ipv4:127.0.0.1:%d,127.0.0.1:%d",
           other.port, g_srv.port);
  snprintf(first, sizeof first, "ipv4:127.0.0.1:%d", other.port);
  snprintf(second, sizeof second, "ipv4:127.0.0.1:%d", g_srv.port);
  mrpc_channel_opts o;
  mrpc_channel_opts_init(&o);
  o.lb_policy = MRPC_LB_ROUND_ROBIN;
  o.retry_policies = &k_unavailable_3;
  o.n_retry_policies = 1;
  mrpc_channel *ch = e2e_channel(target, &o);
  /* Both READY: the first attempt goes to the first address, the retry to
   * the next. */
  mrpc_channel_get_state(ch, 1);
  E2E_WAIT_UNTIL(mrpc_channel_ready_count(ch) == 2, E2E_TIMEOUT_MS);
  assert_int_equal(mrpc_channel_ready_count(ch), 2);

  e2e_cli c;
  e2e_cli_init(&c);
  mrpc_call_opts co = e2e_copts(E2E_TIMEOUT_MS, NULL);
  e2e_cli_start(&c, ch, &k_m[M_FLAKY], &co);
  peer_reader r = {&c, {first, second}, 0, 0};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, read_peers, &r), 0);
  e2e_assert_sent(e2e_cli_send_str(c.call, &k_m[M_FLAKY], "again"));
  e2e_assert_sent(mrpc_call_close_send(c.call));
  e2e_cli_wait(&c, E2E_TIMEOUT_MS + 5000);
  assert_int_equal(pthread_join(t, NULL), 0);

  assert_int_equal(c.st.code, MRPC_STATUS_OK);
  e2e_cli_assert_body(&c, 0, "again");
  assert_int_equal(atomic_load(&g_refused), 1);
  assert_int_equal(attempts(M_FLAKY), 1);
  assert_string_equal(mrpc_call_peer(c.call), second);
  assert_int_equal(r.bad, 0);
  assert_true(r.reads > 0);
  e2e_cli_free(&c);
  mrpc_channel_del(ch);
  e2e_server_stop(&other);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_two_failures_then_success_takes_three_attempts),
      cmocka_unit_test(test_failing_every_attempt_gives_the_last_status),
      cmocka_unit_test(test_max_attempts_above_five_counts_as_five),
      cmocka_unit_test(test_codes_not_listed_are_not_retried),
      cmocka_unit_test(
          test_policy_of_another_method_or_service_does_not_apply),
      cmocka_unit_test(test_most_specific_policy_wins),
      cmocka_unit_test(test_invalid_policies_are_refused),
      cmocka_unit_test(test_retry_throttling_stops_retries_at_half_the_tokens),
      cmocka_unit_test(test_invalid_retry_throttling_is_refused),
      cmocka_unit_test(test_no_retry_once_a_response_arrived),
      cmocka_unit_test(
          test_backoff_past_the_deadline_gives_the_servers_status),
      cmocka_unit_test(test_client_stream_is_replayed_whole_on_retry),
      cmocka_unit_test(test_requests_beyond_the_retry_buffer_end_retries),
      cmocka_unit_test(test_cancel_between_attempts_ends_the_call_at_once),
      cmocka_unit_test(
          test_channel_deleted_between_attempts_cancels_the_call),
      cmocka_unit_test(
          test_peer_after_a_retry_on_another_server_is_that_server),
  };
  e2e_group_methods(k_m, k_h, M_COUNT);
  return cmocka_run_group_tests(tests, e2e_group_setup, e2e_group_teardown);
}
