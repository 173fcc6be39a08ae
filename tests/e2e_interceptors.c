/* End-to-end tests of interceptors: the core (hook points, ordering,
 * rejection, per-method conditions, both sides, the four patterns, both
 * handler styles, both client styles) and each shipped interceptor.
 *
 * Also a standalone server for tests/examples/interceptors.sh:
 *   e2e_interceptors --serve PORT [--token TOKEN]...
 * serves grpc.testing.TestService (UnaryCall, StreamingOutputCall,
 * StreamingInputCall, FullDuplexCall) and /grpc.health.v1.Health/Check
 * behind request_id, logging, auth (the given tokens) and recovery; prints
 * "listening on N" and runs until SIGTERM / SIGINT.
 * SPDX-License-Identifier: Apache-2.0 */
#include "e2e_common.h"

#include <signal.h>

/* ====================================================================
 * Recording: what the hooks did, in order, from any thread.
 * ================================================================== */

#define REC_MAX 8192
static pthread_mutex_t rec_mu = PTHREAD_MUTEX_INITIALIZER;
static char *rec_log[REC_MAX];
static int rec_n;
static pthread_t g_test_thread;

static void rec(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void rec(const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  pthread_mutex_lock(&rec_mu);
  if (rec_n < REC_MAX) rec_log[rec_n++] = strdup(buf);
  pthread_mutex_unlock(&rec_mu);
}

static void rec_reset(void) {
  pthread_mutex_lock(&rec_mu);
  for (int i = 0; i < rec_n; i++) free(rec_log[i]);
  rec_n = 0;
  pthread_mutex_unlock(&rec_mu);
}

/* Index of the k-th (0-based) entry equal to s, or -1. */
static int rec_find_k(const char *s, int k) {
  int r = -1;
  pthread_mutex_lock(&rec_mu);
  for (int i = 0; i < rec_n; i++)
    if (strcmp(rec_log[i], s) == 0 && k-- == 0) {
      r = i;
      break;
    }
  pthread_mutex_unlock(&rec_mu);
  return r;
}

static int rec_find(const char *s) { return rec_find_k(s, 0); }

/* Entries that start with prefix. */
static int rec_count(const char *prefix) {
  int n = 0;
  size_t l = strlen(prefix);
  pthread_mutex_lock(&rec_mu);
  for (int i = 0; i < rec_n; i++) n += strncmp(rec_log[i], prefix, l) == 0;
  pthread_mutex_unlock(&rec_mu);
  return n;
}

/* The first entry starting with prefix (a copy, "" if none). */
static char *rec_first(const char *prefix) {
  char *r = NULL;
  size_t l = strlen(prefix);
  pthread_mutex_lock(&rec_mu);
  for (int i = 0; i < rec_n && !r; i++)
    if (strncmp(rec_log[i], prefix, l) == 0) r = strdup(rec_log[i]);
  pthread_mutex_unlock(&rec_mu);
  return r ? r : strdup("");
}

static void rec_dump(void) {
  pthread_mutex_lock(&rec_mu);
  for (int i = 0; i < rec_n; i++) fprintf(stderr, "  rec[%d] %s\n", i, rec_log[i]);
  pthread_mutex_unlock(&rec_mu);
}

#define assert_rec_before(a, b)                                              \
  do {                                                                       \
    int ia_ = rec_find(a), ib_ = rec_find(b);                                \
    if (ia_ < 0 || ib_ < 0 || ia_ >= ib_) {                                  \
      rec_dump();                                                            \
      fail_msg("want \"%s\" (%d) before \"%s\" (%d)", a, ia_, b, ib_);       \
    }                                                                        \
  } while (0)

#define assert_rec_count(prefix, n)                                          \
  do {                                                                       \
    int c_ = rec_count(prefix);                                              \
    if (c_ != (int)(n)) {                                                    \
      rec_dump();                                                            \
      fail_msg("\"%s\": %d entries, want %d", prefix, c_, (int)(n));         \
    }                                                                        \
  } while (0)

/* ====================================================================
 * A configurable test interceptor.  ctx is a tic; each call gets a tcall
 * (allocated in on_start, freed in on_end: ASan sees a hook that runs
 * after on_end or an on_end that never runs).
 * ================================================================== */

typedef struct tic {
  const char *name;
  mrpc_status_code start_code; /* != OK: refuse at start */
  const char *start_msg;
  const char *recv_reject;     /* refuse a message with this body */
  mrpc_status_code recv_code;
  const char *recv_from, *recv_to; /* replace this body */
  const char *send_reject;
  mrpc_status_code send_code;
  const char *send_from, *send_to;
  const char *hdr_key, *hdr_val; /* on_start: mrpc_call_add_header */
  const char *trl_key, *trl_val; /* on_end: mrpc_call_add_trailer */
  int end_code;                  /* > 0: on_end sets this status */
  const char *end_msg;
  const char *md_probe;          /* on_start: record this key's value */
  int quiet;                     /* per-message hooks only count */
} tic;

static atomic_int g_quiet_msgs;

typedef struct tcall {
  const tic *t;
  pthread_t start_thr;
  int is_server;
  e2e_msg repl; /* the replacement on_send gives, valid until on_end */
  char body[64];
  atomic_uint_fast64_t touched; /* recv and send hooks may run at once */
} tcall;

static char side_of(mrpc_call *call) { return mrpc_call_is_server(call) ? 'S' : 'C'; }

static int body_is(const ProtobufCMessage *m, const char *s) {
  size_t len;
  const uint8_t *b = e2e_body(m, &len);
  return s && len == strlen(s) && memcmp(b, s, len) == 0;
}

static mrpc_status_code t_start(mrpc_call *call, void *ctx, void **data,
                                const char **message) {
  const tic *t = ctx;
  tcall *tc = calloc(1, sizeof *tc);
  if (!tc) abort();
  tc->t = t;
  tc->start_thr = pthread_self();
  tc->is_server = mrpc_call_is_server(call);
  *data = tc;
  rec("%s start %c %s", t->name, side_of(call), mrpc_call_method(call)->path);
  /* Client start hooks run on the thread starting the call; server ones on
   * an I/O thread. */
  if (tc->is_server) {
    E2E_CHECK(!pthread_equal(pthread_self(), g_test_thread));
    /* routed, with its peer and deadline (every test call has one) */
    E2E_CHECK(strncmp(mrpc_call_peer(call), "ipv4:127.0.0.1:", 15) == 0);
    E2E_CHECK(mrpc_call_deadline_ms(call) != INT64_MAX);
  } else {
    E2E_CHECK(pthread_equal(pthread_self(), g_test_thread));
  }
  if (t->md_probe) {
    const mrpc_metadata *md = tc->is_server ? mrpc_call_metadata(call)
                                            : mrpc_call_outgoing_metadata(call);
    const uint8_t *v = mrpc_metadata_get(md, t->md_probe, NULL);
    rec("%s md %c %s", t->name, side_of(call), v ? (const char *)v : "(none)");
  }
  if (t->hdr_key)
    E2E_CHECK(mrpc_call_add_header(call, t->hdr_key, t->hdr_val,
                                   strlen(t->hdr_val)) == 0);
  if (t->start_code != MRPC_STATUS_OK) {
    *message = t->start_msg;
    return t->start_code;
  }
  return MRPC_STATUS_OK;
}

/* A heap copy of m (default allocator) with its payload body set to s. */
static ProtobufCMessage *with_body(const ProtobufCMessage *m, const char *s) {
  size_t n = protobuf_c_message_get_packed_size(m);
  uint8_t *buf = e2e_xmalloc(n);
  protobuf_c_message_pack(m, buf);
  ProtobufCMessage *c = protobuf_c_message_unpack(m->descriptor, NULL, n, buf);
  free(buf);
  if (!c) abort();
  Grpc__Testing__Payload **pp = NULL;
  if (c->descriptor == E2E_D(simple_request))
    pp = &((Grpc__Testing__SimpleRequest *)c)->payload;
  else if (c->descriptor == E2E_D(simple_response))
    pp = &((Grpc__Testing__SimpleResponse *)c)->payload;
  else if (c->descriptor == E2E_D(streaming_output_call_request))
    pp = &((Grpc__Testing__StreamingOutputCallRequest *)c)->payload;
  else if (c->descriptor == E2E_D(streaming_output_call_response))
    pp = &((Grpc__Testing__StreamingOutputCallResponse *)c)->payload;
  else if (c->descriptor == E2E_D(streaming_input_call_request))
    pp = &((Grpc__Testing__StreamingInputCallRequest *)c)->payload;
  if (!pp) abort();
  if (!*pp) {
    *pp = calloc(1, sizeof **pp);
    if (!*pp) abort();
    grpc__testing__payload__init(*pp);
  }
  free((*pp)->body.data);
  (*pp)->body.len = strlen(s);
  (*pp)->body.data = e2e_memdup(s, strlen(s));
  return c;
}

static mrpc_status_code t_recv(mrpc_call *call, void *ctx, void *data,
                               ProtobufCMessage **msg, const char **message) {
  const tic *t = ctx;
  tcall *tc = data;
  atomic_fetch_add(&tc->touched, 1);
  if (t->quiet) {
    atomic_fetch_add(&g_quiet_msgs, 1);
    return MRPC_STATUS_OK;
  }
  /* Receive hooks run on the call's I/O thread: on the server the one the
   * start hook ran on; on the client the channel's, not ours. */
  if (tc->is_server)
    E2E_CHECK(pthread_equal(pthread_self(), tc->start_thr));
  else
    E2E_CHECK(!pthread_equal(pthread_self(), g_test_thread));
  size_t len;
  const uint8_t *b = e2e_body(*msg, &len);
  rec("%s recv %c %.*s", t->name, side_of(call), (int)len, (const char *)b);
  if (body_is(*msg, t->recv_reject)) {
    *message = "refused on receive";
    return t->recv_code;
  }
  if (body_is(*msg, t->recv_from)) {
    ProtobufCMessage *n = with_body(*msg, t->recv_to);
    protobuf_c_message_free_unpacked(*msg, NULL);
    *msg = n;
  }
  return MRPC_STATUS_OK;
}

static mrpc_status_code t_send(mrpc_call *call, void *ctx, void *data,
                               const ProtobufCMessage **msg,
                               const char **message) {
  const tic *t = ctx;
  tcall *tc = data;
  atomic_fetch_add(&tc->touched, 1);
  if (t->quiet) {
    atomic_fetch_add(&g_quiet_msgs, 1);
    return MRPC_STATUS_OK;
  }
  size_t len;
  const uint8_t *b = e2e_body(*msg, &len);
  rec("%s send %c %.*s", t->name, side_of(call), (int)len, (const char *)b);
  rec("%s sendthr %c %s", t->name, side_of(call),
      pthread_equal(pthread_self(), tc->start_thr) ? "start" : "other");
  if (body_is(*msg, t->send_reject)) {
    *message = "refused on send";
    return t->send_code;
  }
  if (body_is(*msg, t->send_from)) {
    snprintf(tc->body, sizeof tc->body, "%s", t->send_to);
    *msg = e2e_msg_str(&tc->repl, (*msg)->descriptor, tc->body);
  }
  return MRPC_STATUS_OK;
}

static void t_end(mrpc_call *call, void *ctx, void *data, mrpc_status *st,
                  int64_t duration_us) {
  const tic *t = ctx;
  tcall *tc = data;
  if (tc->is_server)
    E2E_CHECK(pthread_equal(pthread_self(), tc->start_thr));
  E2E_CHECK(duration_us >= 0);
  uint64_t in, out;
  mrpc_call_bytes(call, &in, &out);
  rec("%s end %c %s", t->name, side_of(call), mrpc_status_code_name(st->code));
  rec("%s endmsg %c %s", t->name, side_of(call), st->message ? st->message : "");
  rec("%s bytes %c %llu %llu", t->name, side_of(call), (unsigned long long)in,
      (unsigned long long)out);
  rec("%s faults %c %u", t->name, side_of(call), mrpc_call_faults(call));
  if (t->trl_key)
    E2E_CHECK(mrpc_call_add_trailer(call, t->trl_key, t->trl_val,
                                    strlen(t->trl_val)) == 0);
  if (t->end_code > 0)
    E2E_CHECK(mrpc_status_set(st, (mrpc_status_code)t->end_code,
                              t->end_msg) == 0);
  atomic_store(&tc->touched, 0xdead);
  free(tc);
}

static const mrpc_interceptor t_table = {
    .version = MRPC_INTERCEPTOR_VERSION,
    .name = "test",
    .on_start = t_start,
    .on_recv = t_recv,
    .on_send = t_send,
    .on_end = t_end,
};

/* ====================================================================
 * Server and channel with interceptors.
 * ================================================================== */

static atomic_int g_handler_calls;

static void counting_event(mrpc_call *call, void *user) {
  atomic_fetch_add(&g_handler_calls, 1);
  e2e_event_echo(call, user);
}

static void counting_blocking(mrpc_stream *s, void *user) {
  atomic_fetch_add(&g_handler_calls, 1);
  e2e_blocking_echo(s, user);
}

typedef struct ic_reg {
  const mrpc_interceptor *ic;
  void *ctx;
  const mrpc_interceptor_filter *f;
} ic_reg;

/* e2e_server_start with counting echo handlers, the interceptors regs
 * registered before the start, and optionally a second listener. */
static void ic_server_start2(e2e_server *s, const ic_reg *regs, size_t n,
                             const mrpc_method *extra,
                             const mrpc_method_handler *extra_h,
                             size_t n_extra, const char *addr2, int *port2) {
  mrpc_server_opts o;
  mrpc_server_opts_init(&o);
  o.io_threads = 2;
  memset(s, 0, sizeof *s);
  assert_int_equal(mrpc_server_new(&o, &s->srv), 0);
  for (int k = 0; k < 4; k++) {
    mrpc_method_handler ev = {counting_event, NULL, NULL};
    mrpc_method_handler bl = {NULL, counting_blocking, NULL};
    assert_int_equal(
        mrpc_server_add_method(s->srv, &e2e_methods[E2E_EVENT][k], &ev), 0);
    assert_int_equal(
        mrpc_server_add_method(s->srv, &e2e_methods[E2E_BLOCKING][k], &bl),
        0);
  }
  for (size_t i = 0; i < n_extra; i++)
    assert_int_equal(mrpc_server_add_method(s->srv, &extra[i], &extra_h[i]),
                     0);
  for (size_t i = 0; i < n; i++)
    assert_int_equal(
        mrpc_server_add_interceptor(s->srv, regs[i].ic, regs[i].ctx, regs[i].f),
        0);
  assert_int_equal(mrpc_server_listen(s->srv, "127.0.0.1:0", &s->port), 0);
  /* the second listener is optional (no IPv6 here?): *port2 = 0 then */
  if (addr2 && mrpc_server_listen(s->srv, addr2, port2) != 0) *port2 = 0;
  snprintf(s->target, sizeof s->target, "127.0.0.1:%d", s->port);
  assert_int_equal(mrpc_server_start(s->srv), 0);
}

static void ic_server_start(e2e_server *s, const ic_reg *regs, size_t n,
                            const mrpc_method *extra,
                            const mrpc_method_handler *extra_h,
                            size_t n_extra) {
  ic_server_start2(s, regs, n, extra, extra_h, n_extra, NULL, NULL);
}

static mrpc_channel *ic_channel(const char *target, const ic_reg *regs,
                                size_t n) {
  mrpc_channel *ch = e2e_channel(target, NULL);
  for (size_t i = 0; i < n; i++)
    assert_int_equal(mrpc_channel_add_interceptor(ch, regs[i].ic, regs[i].ctx,
                                                  regs[i].f),
                     0);
  return ch;
}

/* ====================================================================
 * One call of any pattern, with either client style.
 * ================================================================== */

enum { CLI_EVENT = 0, CLI_BLOCKING = 1 };

typedef struct outcome {
  int code;
  char *message;
  mrpc_metadata *headers, *trailers;
  char *bodies[16];
  size_t n;
  int32_t agg;
} outcome;

static void outcome_free(outcome *o) {
  free(o->message);
  mrpc_metadata_del(o->headers);
  mrpc_metadata_del(o->trailers);
  for (size_t i = 0; i < o->n; i++) free(o->bodies[i]);
  memset(o, 0, sizeof *o);
}

static void outcome_add(outcome *o, const uint8_t *b, size_t len) {
  if (o->n == 16) return;
  char *s = e2e_xmalloc(len + 1);
  memcpy(s, b, len);
  s[len] = '\0';
  o->bodies[o->n++] = s;
}

/* The requests each pattern sends, and the responses the echo gives. */
static size_t pattern_reqs(mrpc_method_kind k, const char **r) {
  switch (k) {
  case MRPC_UNARY: r[0] = "hello"; return 1;
  case MRPC_CLIENT_STREAMING: r[0] = "a"; r[1] = "b"; r[2] = "c"; return 3;
  case MRPC_SERVER_STREAMING: r[0] = "s"; return 1;
  default: r[0] = "x"; r[1] = "y"; return 2;
  }
}

static size_t pattern_resps(mrpc_method_kind k, const char **r) {
  switch (k) {
  case MRPC_UNARY: r[0] = "hello"; return 1;
  case MRPC_CLIENT_STREAMING: r[0] = ""; return 1;
  case MRPC_SERVER_STREAMING:
    r[0] = "s#0"; r[1] = "s#1"; r[2] = "s#2"; return 3;
  default: r[0] = "x"; r[1] = "y"; return 2;
  }
}

static void make_req(e2e_msg *msg, const mrpc_method *m, const char *body) {
  e2e_msg_str(msg, m->request, body);
  if (m->kind == MRPC_SERVER_STREAMING) e2e_msg_ask_responses(msg, 3, 0);
}

/* Runs one call of m sending reqs (NULL: the pattern's own), metadata md
 * (may be NULL). */
static void run_call_reqs(mrpc_channel *ch, const mrpc_method *m, int cli,
                          const mrpc_metadata *md, const char **reqs,
                          size_t n_reqs, outcome *out) {
  const char *own[4];
  if (!reqs) {
    n_reqs = pattern_reqs(m->kind, own);
    reqs = own;
  }
  memset(out, 0, sizeof *out);
  mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS, md);
  if (cli == CLI_EVENT) {
    e2e_cli c;
    e2e_cli_init(&c);
    e2e_cli_start(&c, ch, m, &o);
    for (size_t i = 0; i < n_reqs; i++) {
      e2e_msg msg;
      make_req(&msg, m, reqs[i]);
      e2e_assert_sent(mrpc_call_send(c.call, &msg.u.base));
    }
    e2e_assert_sent(mrpc_call_close_send(c.call));
    e2e_cli_wait(&c, E2E_TIMEOUT_MS + 5000);
    out->code = c.st.code;
    out->message = strdup(c.st.message ? c.st.message : "");
    out->headers = c.headers;
    out->trailers = c.trailers;
    c.headers = c.trailers = NULL;
    for (size_t i = 0; i < c.n; i++) outcome_add(out, c.bodies[i], c.lens[i]);
    out->agg = c.agg;
    e2e_cli_free(&c);
    return;
  }
  mrpc_stream *s;
  assert_int_equal(mrpc_channel_open_stream(ch, m, &o, &s), 0);
  mrpc_call *call = mrpc_call_ref(mrpc_stream_call(s));
  for (size_t i = 0; i < n_reqs; i++) {
    e2e_msg msg;
    make_req(&msg, m, reqs[i]);
    e2e_assert_sent(mrpc_stream_send(s, &msg.u.base));
  }
  int rc = mrpc_stream_close_send(s);
  if (rc != 0 && rc != MRPC_ERR_CLOSED && rc != MRPC_ERR_STATE)
    fail_msg("close_send: %d", rc);
  ProtobufCMessage *resp;
  while (mrpc_stream_recv(s, &resp) == 1) {
    size_t len;
    const uint8_t *b = e2e_body(resp, &len);
    outcome_add(out, b, len);
    if (resp->descriptor == E2E_D(streaming_input_call_response))
      out->agg = ((Grpc__Testing__StreamingInputCallResponse *)resp)
                     ->aggregated_payload_size;
    protobuf_c_message_free_unpacked(resp, NULL);
  }
  mrpc_status st;
  assert_int_equal(mrpc_stream_finish(s, &st), 0);
  out->code = st.code;
  out->message = strdup(st.message ? st.message : "");
  mrpc_status_free(&st);
  out->headers = e2e_md_copy(mrpc_call_metadata(call));
  out->trailers = e2e_md_copy(mrpc_call_trailers(call));
  mrpc_call_unref(call);
}

static void run_call(mrpc_channel *ch, const mrpc_method *m, int cli,
                     const mrpc_metadata *md, outcome *out) {
  run_call_reqs(ch, m, cli, md, NULL, 0, out);
}

static void assert_pattern_ok(const outcome *o, mrpc_method_kind k) {
  if (o->code != MRPC_STATUS_OK)
    fail_msg("status %d \"%s\", want OK", o->code, o->message);
  const char *want[4];
  size_t n = pattern_resps(k, want);
  assert_int_equal(o->n, n);
  for (size_t i = 0; i < n; i++) assert_string_equal(o->bodies[i], want[i]);
  if (k == MRPC_CLIENT_STREAMING) {
    uint32_t f = E2E_FOLD_INIT;
    f = e2e_fold(f, (const uint8_t *)"a", 1);
    f = e2e_fold(f, (const uint8_t *)"b", 1);
    f = e2e_fold(f, (const uint8_t *)"c", 1);
    assert_int_equal(o->agg, (int32_t)f);
  }
}

static const char *md_str(const mrpc_metadata *md, const char *key) {
  const uint8_t *v = mrpc_metadata_get(md, key, NULL);
  return v ? (const char *)v : "(none)";
}

/* A call refused before any message gets a trailers-only response: what
 * the server put in its headers arrives with the trailers. */
static const char *md_either(const outcome *o, const char *key) {
  const uint8_t *v = mrpc_metadata_get(o->headers, key, NULL);
  if (!v) v = mrpc_metadata_get(o->trailers, key, NULL);
  return v ? (const char *)v : "(none)";
}

/* Waits (bounded) until the entry s is recorded. */
static void rec_wait(const char *s) {
  E2E_WAIT_UNTIL(rec_find(s) >= 0, 5000);
  if (rec_find(s) < 0) {
    rec_dump();
    fail_msg("\"%s\" never recorded", s);
  }
}

static int test_setup(void **state) {
  (void)state;
  rec_reset();
  atomic_store(&g_handler_calls, 0);
  return 0;
}

static int test_teardown(void **state) {
  (void)state;
  rec_reset();
  assert_int_equal(atomic_load(&e2e_thread_errors), 0);
  return 0;
}

/* ====================================================================
 * The core.
 * ================================================================== */

/* Every hook point on both sides, chain order, metadata both ways, bytes,
 * threads: the four patterns x both handler styles x both client styles. */
static void test_chain_all_patterns(void **state) {
  (void)state;
  tic A = {.name = "A", .md_probe = "x-from-client",
           .hdr_key = "x-from-server", .hdr_val = "a"};
  tic B = {.name = "B"};
  tic C = {.name = "C", .hdr_key = "x-from-client", .hdr_val = "c"};
  tic D = {.name = "D", .md_probe = "x-from-client"};
  ic_reg sregs[] = {{&t_table, &A, NULL}, {&t_table, &B, NULL}};
  ic_reg cregs[] = {{&t_table, &C, NULL}, {&t_table, &D, NULL}};
  e2e_server s;
  ic_server_start(&s, sregs, 2, NULL, NULL, 0);
  mrpc_channel *ch = ic_channel(s.target, cregs, 2);
  for (int style = 0; style < 2; style++)
    for (int k = 0; k < 4; k++)
      for (int cli = 0; cli < 2; cli++) {
        rec_reset();
        const mrpc_method *m = &e2e_methods[style][k];
        outcome o;
        run_call(ch, m, cli, NULL, &o);
        assert_pattern_ok(&o, (mrpc_method_kind)k);
        /* response header added by the server's start hook */
        assert_string_equal(md_str(o.headers, "x-from-server"), "a");
        outcome_free(&o);
        rec_wait("A end S OK");
        char a[160], b[160];
        snprintf(a, sizeof a, "A start S %s", m->path);
        snprintf(b, sizeof b, "B start S %s", m->path);
        assert_rec_before(a, b);
        assert_rec_before(b, "B end S OK");
        assert_rec_before("B end S OK", "A end S OK");
        snprintf(a, sizeof a, "C start C %s", m->path);
        snprintf(b, sizeof b, "D start C %s", m->path);
        assert_rec_before(a, b);
        assert_rec_before(b, "D end C OK");
        assert_rec_before("D end C OK", "C end C OK");
        /* metadata: C added it before D's start hook looked; the server
         * got it */
        assert_int_equal(rec_find("D md C c") >= 0, 1);
        assert_int_equal(rec_find("A md S c") >= 0, 1);
        /* per-message hooks: as many as messages, A before B for each */
        const char *rq[4], *rs[4];
        size_t nq = pattern_reqs((mrpc_method_kind)k, rq);
        size_t ns = pattern_resps((mrpc_method_kind)k, rs);
        assert_rec_count("A recv S", nq);
        assert_rec_count("B recv S", nq);
        assert_rec_count("A send S", ns);
        assert_rec_count("B send S", ns);
        assert_rec_count("C send C", nq);
        assert_rec_count("D send C", nq);
        assert_rec_count("C recv C", ns);
        assert_rec_count("D recv C", ns);
        for (size_t i = 0; i < nq; i++) {
          char e[80];
          snprintf(e, sizeof e, "A recv S %s", rq[i]);
          snprintf(a, sizeof a, "B recv S %s", rq[i]);
          assert_rec_before(e, a);
          assert_rec_before(b, e); /* after the client's start hooks */
          assert_rec_before(e, "B end S OK");
          snprintf(e, sizeof e, "C send C %s", rq[i]);
          snprintf(a, sizeof a, "D send C %s", rq[i]);
          assert_rec_before(e, a);
        }
        for (size_t i = 0; i < ns; i++) {
          char e[80];
          snprintf(e, sizeof e, "A send S %s", rs[i]);
          snprintf(a, sizeof a, "B send S %s", rs[i]);
          assert_rec_before(e, a);
          snprintf(e, sizeof e, "C recv C %s", rs[i]);
          snprintf(a, sizeof a, "D recv C %s", rs[i]);
          assert_rec_before(e, a);
          assert_rec_before(a, "D end C OK");
        }
        /* send hooks: on the I/O thread for event handlers, on the
         * worker for blocking ones */
        assert_rec_count(style == E2E_EVENT ? "A sendthr S other"
                                            : "A sendthr S start",
                         0);
        /* both sides counted the same framed bytes */
        char *sb = rec_first("A bytes S "), *cb = rec_first("C bytes C ");
        unsigned long long sin, sout, cin, cout;
        assert_int_equal(sscanf(sb, "A bytes S %llu %llu", &sin, &sout), 2);
        assert_int_equal(sscanf(cb, "C bytes C %llu %llu", &cin, &cout), 2);
        assert_true(sin > 0 && sout > 0);
        assert_true(sin == cout && sout == cin);
        free(sb);
        free(cb);
        assert_int_equal(atomic_load(&e2e_thread_errors), 0);
      }
  mrpc_channel_del(ch);
  e2e_server_stop(&s);
  assert_int_equal(atomic_load(&g_handler_calls), 16);
}

/* A server start hook refuses: the handler never runs, later interceptors
 * never start, the end hooks of those that started (the refusing one
 * included) run in reverse; response headers added before still go. */
static void test_server_start_reject(void **state) {
  (void)state;
  tic A = {.name = "A", .hdr_key = "x-seen-by", .hdr_val = "a"};
  tic B = {.name = "B", .start_code = MRPC_STATUS_PERMISSION_DENIED,
           .start_msg = "nope"};
  tic C = {.name = "C"};
  ic_reg sregs[] = {{&t_table, &A, NULL}, {&t_table, &B, NULL},
                    {&t_table, &C, NULL}};
  e2e_server s;
  ic_server_start(&s, sregs, 3, NULL, NULL, 0);
  mrpc_channel *ch = e2e_channel(s.target, NULL);
  for (int style = 0; style < 2; style++)
    for (int k = 0; k < 4; k++) {
      rec_reset();
      outcome o;
      run_call(ch, &e2e_methods[style][k], (style + k) & 1, NULL, &o);
      assert_int_equal(o.code, MRPC_STATUS_PERMISSION_DENIED);
      assert_string_equal(o.message, "nope");
      assert_int_equal(o.n, 0);
      assert_string_equal(md_either(&o, "x-seen-by"), "a");
      outcome_free(&o);
      rec_wait("A end S PERMISSION_DENIED");
      assert_rec_before("B end S PERMISSION_DENIED",
                        "A end S PERMISSION_DENIED");
      assert_rec_count("C ", 0);
      assert_rec_count("A recv", 0);
      assert_rec_count("B recv", 0);
      assert_rec_count("A send", 0);
    }
  assert_int_equal(atomic_load(&g_handler_calls), 0);
  mrpc_channel_del(ch);
  e2e_server_stop(&s);
}

/* A client start hook refuses: nothing is sent (the server sees nothing,
 * and a channel to nowhere does not even connect), the application gets
 * the hook's status, end hooks of the started ones run. */
static void test_client_start_reject(void **state) {
  (void)state;
  tic S = {.name = "S"};
  tic C = {.name = "C", .hdr_key = "x-c", .hdr_val = "1"};
  tic D = {.name = "D", .start_code = MRPC_STATUS_FAILED_PRECONDITION,
           .start_msg = "client says no"};
  tic E = {.name = "E"};
  ic_reg sregs[] = {{&t_table, &S, NULL}};
  ic_reg cregs[] = {{&t_table, &C, NULL}, {&t_table, &D, NULL},
                    {&t_table, &E, NULL}};
  e2e_server s;
  ic_server_start(&s, sregs, 1, NULL, NULL, 0);
  mrpc_channel *chs[2] = {ic_channel(s.target, cregs, 3),
                          ic_channel("127.0.0.1:1", cregs, 3)};
  for (int c = 0; c < 2; c++)
    for (int k = 0; k < 4; k++)
      for (int cli = 0; cli < 2; cli++) {
        rec_reset();
        outcome o;
        run_call(chs[c], &e2e_methods[E2E_EVENT][k], cli, NULL, &o);
        assert_int_equal(o.code, MRPC_STATUS_FAILED_PRECONDITION);
        assert_string_equal(o.message, "client says no");
        outcome_free(&o);
        assert_rec_before("D end C FAILED_PRECONDITION",
                          "C end C FAILED_PRECONDITION");
        assert_rec_count("E ", 0);
        assert_rec_count("C send", 0); /* sends after refusal: CLOSED */
        assert_rec_count("S ", 0);
      }
  e2e_sleep_ms(50);
  assert_rec_count("S ", 0);
  assert_int_equal(atomic_load(&g_handler_calls), 0);
  mrpc_channel_del(chs[0]);
  mrpc_channel_del(chs[1]);
  e2e_server_stop(&s);
}

/* Receive hooks: replace a message, refuse one; both sides. */
static void test_recv_hooks(void **state) {
  (void)state;
  tic A = {.name = "A", .recv_from = "swap-me", .recv_to = "swapped",
           .recv_reject = "poison", .recv_code = MRPC_STATUS_INVALID_ARGUMENT};
  tic C = {.name = "C", .recv_from = "swapped", .recv_to = "client-swapped",
           .recv_reject = "bad-resp", .recv_code = MRPC_STATUS_DATA_LOSS};
  ic_reg sregs[] = {{&t_table, &A, NULL}};
  ic_reg cregs[] = {{&t_table, &C, NULL}};
  e2e_server s;
  ic_server_start(&s, sregs, 1, NULL, NULL, 0);
  mrpc_channel *ch = ic_channel(s.target, cregs, 1);
  for (int style = 0; style < 2; style++)
    for (int cli = 0; cli < 2; cli++) {
      outcome o;
      /* replaced twice: by the server's hook, then by the client's */
      const char *r1[] = {"swap-me"};
      run_call_reqs(ch, &e2e_methods[style][MRPC_UNARY], cli, NULL, r1, 1, &o);
      assert_int_equal(o.code, MRPC_STATUS_OK);
      assert_int_equal(o.n, 1);
      assert_string_equal(o.bodies[0], "client-swapped");
      outcome_free(&o);
      /* server refuses the second request of a bidi */
      rec_reset();
      const char *r2[] = {"ok1", "poison", "after"};
      run_call_reqs(ch, &e2e_methods[style][MRPC_BIDI_STREAMING], cli, NULL,
                    r2, 3, &o);
      assert_int_equal(o.code, MRPC_STATUS_INVALID_ARGUMENT);
      assert_string_equal(o.message, "refused on receive");
      assert_true(o.n <= 1);
      outcome_free(&o);
      rec_wait("A end S INVALID_ARGUMENT");
      assert_rec_count("A recv S after", 0);
      /* client refuses a response (bidi echo of "bad-resp") */
      const char *r3[] = {"bad-resp"};
      run_call_reqs(ch, &e2e_methods[style][MRPC_BIDI_STREAMING], cli, NULL,
                    r3, 1, &o);
      assert_int_equal(o.code, MRPC_STATUS_DATA_LOSS);
      assert_string_equal(o.message, "refused on receive");
      assert_int_equal(o.n, 0);
      outcome_free(&o);
    }
  mrpc_channel_del(ch);
  e2e_server_stop(&s);
}

/* An event handler whose send an interceptor refuses: on_done must not run
 * inside mrpc_call_send, and the handler can no longer finish the call. */
typedef struct deny_ctx {
  bool done;
} deny_ctx;

static void deny_on_message(mrpc_call *call, const ProtobufCMessage *msg,
                            void *ctx) {
  deny_ctx *d = ctx;
  e2e_msg r;
  size_t len;
  const uint8_t *b = e2e_body(msg, &len);
  e2e_msg_init(&r, E2E_D(simple_response), b, len);
  int rc = mrpc_call_send(call, &r.u.base);
  if (body_is(msg, "deny")) {
    E2E_CHECK(rc == MRPC_ERR_CLOSED);
    E2E_CHECK(!d->done); /* not synchronously */
    E2E_CHECK(mrpc_call_finish(call, MRPC_STATUS_OK, NULL, NULL, 0) ==
              MRPC_ERR_CLOSED);
    E2E_CHECK(mrpc_call_send(call, &r.u.base) == MRPC_ERR_CLOSED);
    E2E_CHECK(!d->done);
  } else {
    E2E_CHECK(rc == 0);
    E2E_CHECK(mrpc_call_finish(call, MRPC_STATUS_OK, NULL, NULL, 0) == 0);
  }
}

static void deny_on_done(mrpc_call *call, const mrpc_status *st, void *ctx) {
  (void)call;
  (void)st;
  deny_ctx *d = ctx;
  d->done = true;
  free(d);
}

static void deny_handler(mrpc_call *call, void *user) {
  (void)user;
  static const mrpc_call_ops ops = {deny_on_message, NULL, NULL,
                                    deny_on_done};
  deny_ctx *d = calloc(1, sizeof *d);
  if (!d) abort();
  mrpc_call_set_ops(call, &ops, d);
}

static const mrpc_method deny_method = {"/ic.Test/Deny", MRPC_UNARY,
                                        E2E_D(simple_request),
                                        E2E_D(simple_response)};

/* Send hooks: replace a message, refuse one; both sides, both styles. */
static void test_send_hooks(void **state) {
  (void)state;
  tic A = {.name = "A", .send_from = "hello", .send_to = "HELLO",
           .send_reject = "deny", .send_code = MRPC_STATUS_ABORTED};
  tic C = {.name = "C", .send_from = "cli-swap", .send_to = "cli-swapped",
           .send_reject = "cli-deny",
           .send_code = MRPC_STATUS_RESOURCE_EXHAUSTED};
  ic_reg sregs[] = {{&t_table, &A, NULL}};
  ic_reg cregs[] = {{&t_table, &C, NULL}};
  mrpc_method_handler dh = {deny_handler, NULL, NULL};
  e2e_server s;
  ic_server_start(&s, sregs, 1, &deny_method, &dh, 1);
  mrpc_channel *ch = ic_channel(s.target, cregs, 1);
  for (int style = 0; style < 2; style++)
    for (int cli = 0; cli < 2; cli++) {
      outcome o;
      const mrpc_method *u = &e2e_methods[style][MRPC_UNARY];
      const mrpc_method *bi = &e2e_methods[style][MRPC_BIDI_STREAMING];
      const char *r1[] = {"hello"};
      run_call_reqs(ch, u, cli, NULL, r1, 1, &o);
      assert_int_equal(o.code, MRPC_STATUS_OK);
      assert_string_equal(o.bodies[0], "HELLO");
      outcome_free(&o);
      const char *r2[] = {"one", "deny", "three"};
      run_call_reqs(ch, bi, cli, NULL, r2, 3, &o);
      assert_int_equal(o.code, MRPC_STATUS_ABORTED);
      assert_string_equal(o.message, "refused on send");
      assert_true(o.n <= 1);
      outcome_free(&o);
      const char *r3[] = {"cli-swap"};
      run_call_reqs(ch, u, cli, NULL, r3, 1, &o);
      assert_int_equal(o.code, MRPC_STATUS_OK);
      assert_string_equal(o.bodies[0], "cli-swapped");
      outcome_free(&o);
      const char *r4[] = {"fine", "cli-deny", "never"};
      rec_reset();
      run_call_reqs(ch, bi, cli, NULL, r4, 3, &o);
      assert_int_equal(o.code, MRPC_STATUS_RESOURCE_EXHAUSTED);
      assert_string_equal(o.message, "refused on send");
      outcome_free(&o);
      assert_rec_count("C send C never", 0);
    }
  for (int cli = 0; cli < 2; cli++) {
    outcome o;
    const char *r[] = {"deny"};
    run_call_reqs(ch, &deny_method, cli, NULL, r, 1, &o);
    assert_int_equal(o.code, MRPC_STATUS_ABORTED);
    outcome_free(&o);
    const char *r2[] = {"plain"};
    run_call_reqs(ch, &deny_method, cli, NULL, r2, 1, &o);
    assert_int_equal(o.code, MRPC_STATUS_OK);
    assert_string_equal(o.bodies[0], "plain");
    outcome_free(&o);
  }
  mrpc_channel_del(ch);
  e2e_server_stop(&s);
}

/* End hooks: the inner one runs first and may change the status and add
 * trailers; the outer one sees its change; on the client the application
 * sees what the end hooks left. */
static void test_end_hooks(void **state) {
  (void)state;
  tic A = {.name = "A"};
  tic B = {.name = "B", .trl_key = "x-end-b", .trl_val = "b",
           .end_code = MRPC_STATUS_DATA_LOSS, .end_msg = "rewritten by B"};
  tic C = {.name = "C"};
  tic D = {.name = "D", .end_code = MRPC_STATUS_UNAUTHENTICATED,
           .end_msg = "client rewrote"};
  ic_reg sregs[] = {{&t_table, &A, NULL}, {&t_table, &B, NULL}};
  ic_reg cregs1[] = {{&t_table, &C, NULL}};
  ic_reg cregs2[] = {{&t_table, &C, NULL}, {&t_table, &D, NULL}};
  e2e_server s;
  ic_server_start(&s, sregs, 2, NULL, NULL, 0);
  mrpc_channel *ch1 = ic_channel(s.target, cregs1, 1);
  mrpc_channel *ch2 = ic_channel(s.target, cregs2, 1 + 1);
  for (int style = 0; style < 2; style++)
    for (int k = 0; k < 4; k++)
      for (int cli = 0; cli < 2; cli++) {
        rec_reset();
        outcome o;
        run_call(ch1, &e2e_methods[style][k], cli, NULL, &o);
        assert_int_equal(o.code, MRPC_STATUS_DATA_LOSS);
        assert_string_equal(o.message, "rewritten by B");
        assert_string_equal(md_str(o.trailers, "x-end-b"), "b");
        outcome_free(&o);
        rec_wait("A end S DATA_LOSS");
        assert_rec_before("B end S OK", "A end S DATA_LOSS");
        assert_int_equal(rec_find("C end C DATA_LOSS") >= 0, 1);
        run_call(ch2, &e2e_methods[style][k], cli, NULL, &o);
        assert_int_equal(o.code, MRPC_STATUS_UNAUTHENTICATED);
        assert_string_equal(o.message, "client rewrote");
        outcome_free(&o);
      }
  mrpc_channel_del(ch1);
  mrpc_channel_del(ch2);
  e2e_server_stop(&s);
}

/* Per-method conditions: include by method and by service, exclude,
 * predicate; both sides. */
static int pred_not_bidi(const mrpc_method *m, void *ctx) {
  (void)ctx;
  return m->kind != MRPC_BIDI_STREAMING;
}

static void test_filters(void **state) {
  (void)state;
  static const char *const only_unary[] = {"/e2e.Event/Unary",
                                           "/e2e.Blocking/Unary", NULL};
  static const char *const event_svc[] = {"/e2e.Event/", NULL};
  static const char *const no_server_stream[] = {"/e2e.Event/ServerStream",
                                                 "/e2e.Blocking/ServerStream",
                                                 NULL};
  static const mrpc_interceptor_filter f_unary = {only_unary, NULL, NULL};
  static const mrpc_interceptor_filter f_event = {event_svc, NULL, NULL};
  static const mrpc_interceptor_filter f_excl = {NULL, no_server_stream, NULL};
  static const mrpc_interceptor_filter f_pred = {NULL, NULL, pred_not_bidi};
  /* exclude wins over include */
  static const mrpc_interceptor_filter f_both = {event_svc, only_unary, NULL};
  tic U = {.name = "U"}, V = {.name = "V"}, X = {.name = "X"},
      P = {.name = "P"}, W = {.name = "W"};
  ic_reg regs[] = {{&t_table, &U, &f_unary}, {&t_table, &V, &f_event},
                   {&t_table, &X, &f_excl},  {&t_table, &P, &f_pred},
                   {&t_table, &W, &f_both}};
  e2e_server s;
  ic_server_start(&s, regs, 5, NULL, NULL, 0);
  mrpc_channel *ch = ic_channel(s.target, regs, 5);
  for (int style = 0; style < 2; style++)
    for (int k = 0; k < 4; k++) {
      rec_reset();
      const mrpc_method *m = &e2e_methods[style][k];
      outcome o;
      run_call(ch, m, CLI_EVENT, NULL, &o);
      assert_pattern_ok(&o, (mrpc_method_kind)k);
      outcome_free(&o);
      int want[5] = {k == MRPC_UNARY, style == E2E_EVENT,
                     k != MRPC_SERVER_STREAMING, k != MRPC_BIDI_STREAMING,
                     style == E2E_EVENT && k != MRPC_UNARY};
      const char *names = "UVXPW";
      int n_want = 0;
      for (int i = 0; i < 5; i++) n_want += want[i];
      E2E_WAIT_UNTIL(rec_count("U end S") + rec_count("V end S") +
                         rec_count("X end S") + rec_count("P end S") +
                         rec_count("W end S") >= n_want,
                     5000);
      for (int side = 0; side < 2; side++) {
        char p[64];
        for (int i = 0; i < 5; i++) {
          snprintf(p, sizeof p, "%c start %c", names[i], side ? 'S' : 'C');
          assert_rec_count(p, want[i]);
          snprintf(p, sizeof p, "%c end %c", names[i], side ? 'S' : 'C');
          assert_rec_count(p, want[i]);
        }
      }
    }
  /* the matcher itself */
  const mrpc_method *u = &e2e_methods[E2E_EVENT][MRPC_UNARY];
  assert_int_equal(mrpc_interceptor_filter_match(NULL, u, NULL), 1);
  assert_int_equal(mrpc_interceptor_filter_match(&f_unary, u, NULL), 1);
  assert_int_equal(mrpc_interceptor_filter_match(&f_both, u, NULL), 0);
  static const char *const partial[] = {"/e2e.Event/Un", NULL};
  static const mrpc_interceptor_filter f_partial = {partial, NULL, NULL};
  /* no '/' at the end: a full path, not a prefix */
  assert_int_equal(mrpc_interceptor_filter_match(&f_partial, u, NULL), 0);
  mrpc_channel_del(ch);
  e2e_server_stop(&s);
}

/* Registration rules. */
static void test_registration(void **state) {
  (void)state;
  mrpc_server *srv;
  assert_int_equal(mrpc_server_new(NULL, &srv), 0);
  mrpc_interceptor bad = t_table;
  bad.version = 99;
  assert_int_equal(mrpc_server_add_interceptor(srv, NULL, NULL, NULL),
                   MRPC_ERR_INVAL);
  assert_int_equal(mrpc_server_add_interceptor(srv, &bad, NULL, NULL),
                   MRPC_ERR_INVAL);
  assert_int_equal(mrpc_server_add_interceptor(NULL, &t_table, NULL, NULL),
                   MRPC_ERR_INVAL);
  assert_int_equal(
      mrpc_server_add_interceptor(srv, mrpc_ic_logging_interceptor(NULL), NULL,
                                  NULL),
      MRPC_ERR_INVAL);
  assert_int_equal(mrpc_server_listen(srv, "127.0.0.1:0", NULL), 0);
  assert_int_equal(mrpc_server_start(srv), 0);
  tic A = {.name = "A"};
  assert_int_equal(mrpc_server_add_interceptor(srv, &t_table, &A, NULL),
                   MRPC_ERR_STATE);
  mrpc_server_del(srv);
  mrpc_channel *ch = e2e_channel("127.0.0.1:1", NULL);
  assert_int_equal(mrpc_channel_add_interceptor(ch, &bad, NULL, NULL),
                   MRPC_ERR_INVAL);
  assert_int_equal(mrpc_channel_add_interceptor(NULL, &t_table, NULL, NULL),
                   MRPC_ERR_INVAL);
  /* a channel takes interceptors at any time, for calls started after */
  assert_int_equal(mrpc_channel_add_interceptor(ch, &t_table, &A, NULL), 0);
  mrpc_channel_del(ch);
  /* outside hooks, a client call takes no request metadata */
  assert_int_equal(mrpc_call_is_server(NULL), 0);
  assert_null(mrpc_call_outgoing_metadata(NULL));
  assert_int_equal(mrpc_call_faults(NULL), 0u);
}

/* The end hooks free call_data: no receive hook may run after them (a
 * server that finished while the client still sends), nor a send hook (a
 * blocking handler still sending while the call is cancelled). */
typedef struct early_ctx {
  int n;
} early_ctx;

static void early_on_message(mrpc_call *call, const ProtobufCMessage *msg,
                             void *ctx) {
  early_ctx *e = ctx;
  if (e->n++ == 0) {
    e2e_msg r;
    size_t len;
    const uint8_t *b = e2e_body(msg, &len);
    e2e_msg_init(&r, E2E_D(streaming_output_call_response), b, len);
    mrpc_call_send(call, &r.u.base);
    mrpc_call_finish(call, MRPC_STATUS_OK, NULL, NULL, 0);
  }
}

static void early_on_done(mrpc_call *call, const mrpc_status *st, void *ctx) {
  (void)call;
  (void)st;
  free(ctx);
}

static void early_handler(mrpc_call *call, void *user) {
  (void)user;
  static const mrpc_call_ops ops = {early_on_message, NULL, NULL,
                                    early_on_done};
  early_ctx *e = calloc(1, sizeof *e);
  if (!e) abort();
  mrpc_call_set_ops(call, &ops, e);
}

static void flood_handler(mrpc_stream *s, void *user) {
  (void)user;
  ProtobufCMessage *req;
  if (mrpc_stream_recv(s, &req) != 1) return;
  protobuf_c_message_free_unpacked(req, NULL);
  e2e_msg r;
  e2e_msg_str(&r, E2E_D(streaming_output_call_response), "flood");
  while (mrpc_stream_send(s, &r.u.base) == 0) {
  }
}

static const mrpc_method race_methods[] = {
    {"/ic.Race/Early", MRPC_BIDI_STREAMING, E2E_D(streaming_output_call_request),
     E2E_D(streaming_output_call_response)},
    {"/ic.Race/Flood", MRPC_BIDI_STREAMING, E2E_D(streaming_output_call_request),
     E2E_D(streaming_output_call_response)},
};

static void test_hooks_never_after_end(void **state) {
  (void)state;
  tic A = {.name = "A", .quiet = 1};
  ic_reg sregs[] = {{&t_table, &A, NULL}};
  mrpc_method_handler hs[] = {{early_handler, NULL, NULL},
                              {NULL, flood_handler, NULL}};
  e2e_server s;
  ic_server_start(&s, sregs, 1, race_methods, hs, 2);
  mrpc_channel *ch = e2e_channel(s.target, NULL);
  for (int round = 0; round < 10; round++) {
    rec_reset();
    /* the server ends after the first message; 50 more follow */
    mrpc_stream *st;
    mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS, NULL);
    assert_int_equal(mrpc_channel_open_stream(ch, &race_methods[0], &o, &st),
                     0);
    for (int i = 0; i < 50; i++) {
      e2e_msg m;
      e2e_msg_str(&m, E2E_D(streaming_output_call_request), "more");
      if (mrpc_stream_send(st, &m.u.base) != 0) break;
    }
    mrpc_stream_close_send(st);
    mrpc_status status;
    mrpc_stream_finish(st, &status);
    assert_int_equal(status.code, MRPC_STATUS_OK);
    mrpc_status_free(&status);
    rec_wait("A end S OK");
    /* cancel a call whose handler sends as fast as it can */
    e2e_cli c;
    e2e_cli_init(&c);
    e2e_cli_start(&c, ch, &race_methods[1], &o);
    e2e_msg m;
    e2e_msg_str(&m, E2E_D(streaming_output_call_request), "go");
    e2e_assert_sent(mrpc_call_send(c.call, &m.u.base));
    int base = atomic_load(&g_quiet_msgs);
    E2E_WAIT_UNTIL(atomic_load(&g_quiet_msgs) >= base + 1 + round * 7, 5000);
    mrpc_call_cancel(c.call);
    e2e_cli_wait(&c, E2E_TIMEOUT_MS);
    e2e_cli_free(&c);
    rec_wait("A end S CANCELLED");
  }
  mrpc_channel_del(ch);
  e2e_server_stop(&s);
}

/* ====================================================================
 * Handler mistakes the library catches (MRPC_FAULT_*), seen by an end
 * hook; the recovery interceptor acts on them further down.
 * ================================================================== */

static atomic_int g_send_rc;

static void send_echo(mrpc_stream *s, const ProtobufCMessage *req) {
  size_t len;
  const uint8_t *b = e2e_body(req, &len);
  e2e_msg r;
  e2e_msg_init(&r, E2E_D(simple_response), b, len);
  mrpc_stream_send(s, &r.u.base);
}

static void fault_no_status(mrpc_stream *s, void *user) {
  (void)user;
  ProtobufCMessage *req;
  if (mrpc_stream_recv(s, &req) != 1) return;
  send_echo(s, req);
  protobuf_c_message_free_unpacked(req, NULL);
  /* returns without mrpc_stream_set_status */
}

static void fault_bad_stream_code(mrpc_stream *s, void *user) {
  (void)user;
  ProtobufCMessage *req;
  if (mrpc_stream_recv(s, &req) != 1) return;
  protobuf_c_message_free_unpacked(req, NULL);
  E2E_CHECK(mrpc_stream_set_status(s, (mrpc_status_code)99, "x", NULL, 0) ==
            MRPC_ERR_INVAL);
}

static void fault_wrong_type(mrpc_stream *s, void *user) {
  (void)user;
  ProtobufCMessage *req;
  if (mrpc_stream_recv(s, &req) != 1) return;
  /* a request where a response belongs */
  atomic_store(&g_send_rc, mrpc_stream_send(s, req));
  protobuf_c_message_free_unpacked(req, NULL);
  mrpc_stream_set_status(s, MRPC_STATUS_OK, NULL, NULL, 0);
}

static void bad_code_on_message(mrpc_call *call, const ProtobufCMessage *msg,
                                void *ctx) {
  (void)msg;
  (void)ctx;
  E2E_CHECK(mrpc_call_finish(call, (mrpc_status_code)42, "forty-two", NULL,
                             0) == MRPC_ERR_INVAL);
}

static void fault_bad_code(mrpc_call *call, void *user) {
  (void)user;
  static const mrpc_call_ops ops = {bad_code_on_message, NULL, NULL, NULL};
  mrpc_call_set_ops(call, &ops, NULL);
}

/* A response protobuf-c can not pack: its payload is not a message (no
 * descriptor).  Only ever sent with the recovery interceptor in front. */
static void unpackable_on_message(mrpc_call *call, const ProtobufCMessage *msg,
                                  void *ctx) {
  (void)msg;
  (void)ctx;
  static Grpc__Testing__Payload broken; /* all zero: descriptor NULL */
  Grpc__Testing__SimpleResponse r = GRPC__TESTING__SIMPLE_RESPONSE__INIT;
  r.payload = &broken;
  int rc = mrpc_call_send(call, &r.base);
  atomic_store(&g_send_rc, rc);
  if (rc == 0) mrpc_call_finish(call, MRPC_STATUS_OK, NULL, NULL, 0);
}

static void fault_unpackable(mrpc_call *call, void *user) {
  (void)user;
  static const mrpc_call_ops ops = {unpackable_on_message, NULL, NULL, NULL};
  mrpc_call_set_ops(call, &ops, NULL);
}

#define FAULT_M(name)                                                        \
  { "/ic.Fault/" name, MRPC_UNARY, E2E_D(simple_request),                    \
    E2E_D(simple_response) }
static const mrpc_method fault_methods[] = {
    FAULT_M("NoStatus"), FAULT_M("BadStreamCode"), FAULT_M("WrongType"),
    FAULT_M("BadCode"),  FAULT_M("Unpackable")};
static const mrpc_method_handler fault_handlers[] = {
    {NULL, fault_no_status, NULL},
    {NULL, fault_bad_stream_code, NULL},
    {NULL, fault_wrong_type, NULL},
    {fault_bad_code, NULL, NULL},
    {fault_unpackable, NULL, NULL}};
enum { F_NO_STATUS, F_BAD_STREAM_CODE, F_WRONG_TYPE, F_BAD_CODE, F_UNPACKABLE };

/* One event-driven unary call; returns the outcome (caller frees). */
static void unary(mrpc_channel *ch, const mrpc_method *m,
                  const mrpc_metadata *md, const char *body, outcome *o) {
  const char *r[] = {body};
  run_call_reqs(ch, m, CLI_EVENT, md, r, 1, o);
}

static void test_faults_without_recovery(void **state) {
  (void)state;
  tic F = {.name = "F"};
  ic_reg sregs[] = {{&t_table, &F, NULL}};
  e2e_server s;
  ic_server_start(&s, sregs, 1, fault_methods, fault_handlers, 4);
  mrpc_channel *ch = e2e_channel(s.target, NULL);
  outcome o;
  static const struct {
    int m;
    int code;
    const char *msg;
    unsigned faults;
  } cases[] = {
      {F_NO_STATUS, MRPC_STATUS_UNKNOWN, "handler returned without a status",
       MRPC_FAULT_NO_STATUS},
      {F_BAD_STREAM_CODE, MRPC_STATUS_UNKNOWN,
       "handler set an invalid status code", MRPC_FAULT_BAD_STATUS},
      {F_BAD_CODE, MRPC_STATUS_UNKNOWN,
       "handler finished with invalid status code 42", MRPC_FAULT_BAD_STATUS},
      {F_WRONG_TYPE, MRPC_STATUS_OK, "", MRPC_FAULT_SERIALIZE},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    rec_reset();
    unary(ch, &fault_methods[cases[i].m], NULL, "f", &o);
    assert_int_equal(o.code, cases[i].code);
    assert_string_equal(o.message, cases[i].msg);
    outcome_free(&o);
    char want[64];
    snprintf(want, sizeof want, "F faults S %u", cases[i].faults);
    rec_wait(want);
  }
  assert_int_equal(atomic_load(&g_send_rc), MRPC_ERR_SERIALIZE);
  /* an UNKNOWN the handler chose is no fault; the server still serves */
  rec_reset();
  e2e_msg m;
  e2e_msg_str(&m, E2E_D(simple_request), "p");
  e2e_msg_ask_status(&m, MRPC_STATUS_UNKNOWN, "my own unknown");
  e2e_cli c;
  e2e_cli_init(&c);
  mrpc_call_opts co = e2e_copts(E2E_TIMEOUT_MS, NULL);
  e2e_cli_start(&c, ch, &e2e_methods[E2E_BLOCKING][MRPC_UNARY], &co);
  e2e_assert_sent(mrpc_call_send(c.call, &m.u.base));
  e2e_assert_sent(mrpc_call_close_send(c.call));
  e2e_cli_wait(&c, E2E_TIMEOUT_MS);
  assert_int_equal(c.st.code, MRPC_STATUS_UNKNOWN);
  assert_string_equal(c.st.message, "my own unknown");
  e2e_cli_free(&c);
  rec_wait("F faults S 0");
  assert_int_equal(e2e_unary_echo(ch, E2E_EVENT, "still here"), 0);
  mrpc_channel_del(ch);
  e2e_server_stop(&s);
}

/* ====================================================================
 * Shipped interceptors.
 * ================================================================== */

/* ---- a sink that keeps log records ---- */

typedef struct logrec {
  int is_server;
  char method[96], peer[96], message[128], request_id[80], line[512];
  int code;
  int64_t duration_us;
  uint64_t in, out;
} logrec;

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static logrec g_logs[256];
static int g_n_logs;

static void log_sink(const mrpc_ic_log_record *r, const char *line,
                     void *user) {
  (void)user;
  pthread_mutex_lock(&log_mu);
  if (g_n_logs < 256) {
    logrec *l = &g_logs[g_n_logs++];
    l->is_server = r->is_server;
    snprintf(l->method, sizeof l->method, "%s", r->method);
    snprintf(l->peer, sizeof l->peer, "%s", r->peer);
    snprintf(l->message, sizeof l->message, "%s", r->message);
    snprintf(l->request_id, sizeof l->request_id, "%s",
             r->request_id ? r->request_id : "");
    snprintf(l->line, sizeof l->line, "%s", line);
    l->code = r->code;
    l->duration_us = r->duration_us;
    l->in = r->bytes_in;
    l->out = r->bytes_out;
  }
  pthread_mutex_unlock(&log_mu);
}

static int logs_count(void) {
  pthread_mutex_lock(&log_mu);
  int n = g_n_logs;
  pthread_mutex_unlock(&log_mu);
  return n;
}

static void logs_reset(void) {
  pthread_mutex_lock(&log_mu);
  g_n_logs = 0;
  pthread_mutex_unlock(&log_mu);
}

/* The first record of a side (a copy); fails if none. */
static logrec log_of(int is_server) {
  logrec r;
  int found = 0;
  pthread_mutex_lock(&log_mu);
  for (int i = 0; i < g_n_logs && !found; i++)
    if (g_logs[i].is_server == is_server) {
      r = g_logs[i];
      found = 1;
    }
  pthread_mutex_unlock(&log_mu);
  if (!found) fail_msg("no %s log record", is_server ? "server" : "client");
  return r;
}

static void test_logging(void **state) {
  (void)state;
  logs_reset();
  mrpc_ic_logging_opts lo;
  mrpc_ic_logging_opts_init(&lo);
  lo.sink = log_sink;
  mrpc_ic_logging *log;
  assert_int_equal(mrpc_ic_logging_new(&lo, &log), 0);
  ic_reg regs[] = {{mrpc_ic_logging_interceptor(log), log, NULL}};
  e2e_server s;
  ic_server_start(&s, regs, 1, NULL, NULL, 0);
  mrpc_channel *ch = ic_channel(s.target, regs, 1);
  /* one line per call on each side, for every pattern and style */
  for (int style = 0; style < 2; style++)
    for (int k = 0; k < 4; k++) {
      logs_reset();
      outcome o;
      run_call(ch, &e2e_methods[style][k], CLI_EVENT, NULL, &o);
      assert_pattern_ok(&o, (mrpc_method_kind)k);
      outcome_free(&o);
      E2E_WAIT_UNTIL(logs_count() == 2, 2000);
      assert_int_equal(logs_count(), 2);
      logrec sv = log_of(1), cl = log_of(0);
      assert_string_equal(sv.method, e2e_methods[style][k].path);
      assert_string_equal(cl.method, e2e_methods[style][k].path);
      assert_int_equal(sv.code, MRPC_STATUS_OK);
      assert_true(strncmp(sv.peer, "ipv4:127.0.0.1:", 15) == 0);
      char want[64];
      snprintf(want, sizeof want, "ipv4:127.0.0.1:%d", s.port);
      assert_string_equal(cl.peer, want);
      assert_true(sv.in > 0 && sv.out > 0);
      assert_true(sv.in == cl.out && sv.out == cl.in);
      assert_true(cl.duration_us >= 0 && sv.duration_us >= 0);
      char head[320];
      snprintf(head, sizeof head, "minirpc server %s peer=%s status=OK ",
               sv.method, sv.peer);
      assert_true(strncmp(sv.line, head, strlen(head)) == 0);
      char inout[64];
      snprintf(inout, sizeof inout, " in=%llu out=%llu",
               (unsigned long long)sv.in, (unsigned long long)sv.out);
      assert_non_null(strstr(sv.line, inout));
      assert_non_null(strstr(sv.line, "duration_ms="));
      assert_null(strstr(sv.line, "message="));
      assert_true(strncmp(cl.line, "minirpc client ", 15) == 0);
    }
  /* an error: the status message is in the line, quoted */
  logs_reset();
  e2e_msg m;
  e2e_msg_str(&m, E2E_D(simple_request), "p");
  e2e_msg_ask_status(&m, MRPC_STATUS_NOT_FOUND, "no \"such\" thing");
  ProtobufCMessage *resp;
  mrpc_status st;
  mrpc_call_opts co = e2e_copts(E2E_TIMEOUT_MS, NULL);
  assert_int_equal(mrpc_channel_unary(ch, &e2e_methods[0][MRPC_UNARY],
                                      &m.u.base, &co, &resp, &st),
                   0);
  assert_int_equal(st.code, MRPC_STATUS_NOT_FOUND);
  mrpc_status_free(&st);
  E2E_WAIT_UNTIL(logs_count() == 2, 2000);
  logrec sv = log_of(1);
  assert_int_equal(sv.code, MRPC_STATUS_NOT_FOUND);
  assert_string_equal(sv.message, "no \"such\" thing");
  assert_non_null(strstr(sv.line, " status=NOT_FOUND "));
  assert_non_null(strstr(sv.line, " message=\"no \\\"such\\\" thing\""));
  /* a client call that never connected: peer "-" */
  mrpc_channel *dead = ic_channel("127.0.0.1:1", regs, 1);
  logs_reset();
  assert_int_equal(e2e_unary_echo(dead, E2E_EVENT, "x"), MRPC_STATUS_UNAVAILABLE);
  E2E_WAIT_UNTIL(logs_count() == 1, 2000);
  logrec cl = log_of(0);
  assert_string_equal(cl.peer, "");
  assert_non_null(strstr(cl.line, " peer=- status=UNAVAILABLE "));
  mrpc_channel_del(dead);
  mrpc_channel_del(ch);
  e2e_server_stop(&s);
  mrpc_ic_logging_del(log);

  /* errors_only, and the default sink (stderr) */
  lo.errors_only = 1;
  assert_int_equal(mrpc_ic_logging_new(&lo, &log), 0);
  mrpc_ic_logging *log2;
  assert_int_equal(mrpc_ic_logging_new(NULL, &log2), 0);
  ic_reg regs2[] = {{mrpc_ic_logging_interceptor(log), log, NULL},
                    {mrpc_ic_logging_interceptor(log2), log2, NULL}};
  ic_server_start(&s, regs2, 2, NULL, NULL, 0);
  ch = e2e_channel(s.target, NULL);
  logs_reset();
  fflush(stderr);
  int saved = dup(2);
  FILE *tmp = tmpfile();
  assert_non_null(tmp);
  dup2(fileno(tmp), 2);
  assert_int_equal(e2e_unary_echo(ch, E2E_EVENT, "quiet"), 0);
  mrpc_channel_del(ch);
  e2e_server_stop(&s); /* every hook has run */
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  assert_int_equal(logs_count(), 0); /* OK: not an error */
  char buf[1024] = {0};
  rewind(tmp);
  size_t n = fread(buf, 1, sizeof buf - 1, tmp);
  fclose(tmp);
  assert_true(n > 0);
  assert_non_null(strstr(buf, "minirpc server /e2e.Event/Unary peer=ipv4:"));
  assert_non_null(strstr(buf, " status=OK "));
  assert_int_equal(buf[n - 1], '\n');
  mrpc_ic_logging_del(log);
  mrpc_ic_logging_del(log2);
  mrpc_ic_logging_opts bad;
  mrpc_ic_logging_opts_init(&bad);
  bad.size = 1;
  assert_int_equal(mrpc_ic_logging_new(&bad, &log), MRPC_ERR_INVAL);
  assert_int_equal(mrpc_ic_logging_new(NULL, NULL), MRPC_ERR_INVAL);
  mrpc_ic_logging_del(NULL);
}

/* ---- auth ---- */

static mrpc_status_code verify_cb(mrpc_call *call, const char *token,
                                  void *user, const char **message) {
  (void)call;
  atomic_fetch_add((atomic_int *)user, 1);
  if (strcmp(token, "cb-token") == 0) return MRPC_STATUS_OK;
  if (strcmp(token, "denied-token") == 0) {
    *message = "no access for you";
    return MRPC_STATUS_PERMISSION_DENIED;
  }
  return MRPC_STATUS_UNAUTHENTICATED;
}

static const mrpc_method health_method = {"/grpc.health.v1.Health/Check",
                                          MRPC_UNARY, E2E_D(simple_request),
                                          E2E_D(simple_response)};

static mrpc_metadata *md1(const char *k, const char *v) {
  mrpc_metadata *md = mrpc_metadata_new(NULL);
  assert_int_equal(mrpc_metadata_add_str(md, k, v), 0);
  return md;
}

/* Status of a unary echo with "authorization: value" (NULL: none). */
static int auth_call(mrpc_channel *ch, const mrpc_method *m, const char *value,
                     char **message) {
  mrpc_metadata *md = value ? md1("authorization", value) : NULL;
  outcome o;
  unary(ch, m, md, "secret stuff", &o);
  mrpc_metadata_del(md);
  int code = o.code;
  if (code == MRPC_STATUS_OK) {
    assert_int_equal(o.n, 1);
    assert_string_equal(o.bodies[0], "secret stuff");
  }
  if (message) *message = strdup(o.message);
  outcome_free(&o);
  return code;
}

static void test_auth(void **state) {
  (void)state;
  atomic_int verified = 0;
  static const char *const tokens[] = {"t1", "t2", NULL};
  mrpc_ic_auth_opts ao;
  mrpc_ic_auth_opts_init(&ao);
  ao.tokens = tokens;
  ao.verify = verify_cb;
  ao.user = &verified;
  mrpc_ic_auth *auth;
  assert_int_equal(mrpc_ic_auth_new(&ao, &auth), 0);
  tic A = {.name = "A"};
  ic_reg regs[] = {{&t_table, &A, NULL},
                   {mrpc_ic_auth_interceptor(auth), auth, NULL}};
  mrpc_method_handler hh = {counting_event, NULL, NULL};
  e2e_server s;
  ic_server_start(&s, regs, 2, &health_method, &hh, 1);
  mrpc_channel *ch = e2e_channel(s.target, NULL);
  const mrpc_method *u = &e2e_methods[E2E_EVENT][MRPC_UNARY];
  char *msg;
  assert_int_equal(auth_call(ch, u, NULL, &msg), MRPC_STATUS_UNAUTHENTICATED);
  assert_string_equal(msg, "missing authorization metadata (want "
                           "\"authorization: Bearer <token>\")");
  free(msg);
  assert_int_equal(auth_call(ch, u, "Bearer wrong", &msg),
                   MRPC_STATUS_UNAUTHENTICATED);
  assert_string_equal(msg, "invalid token");
  free(msg);
  assert_int_equal(auth_call(ch, u, "Basic dDE6", &msg),
                   MRPC_STATUS_UNAUTHENTICATED);
  assert_string_equal(msg, "authorization is not a Bearer token");
  free(msg);
  assert_int_equal(auth_call(ch, u, "Bearer t", NULL),
                   MRPC_STATUS_UNAUTHENTICATED);  /* prefix of t1 */
  assert_int_equal(auth_call(ch, u, "Bearer t12", NULL),
                   MRPC_STATUS_UNAUTHENTICATED);
  assert_int_equal(atomic_load(&g_handler_calls), 0);
  assert_int_equal(auth_call(ch, u, "Bearer t1", NULL), MRPC_STATUS_OK);
  assert_int_equal(auth_call(ch, u, "bearer t2", NULL), MRPC_STATUS_OK);
  assert_int_equal(auth_call(ch, u, "Bearer cb-token", NULL), MRPC_STATUS_OK);
  assert_int_equal(auth_call(ch, u, "Bearer denied-token", &msg),
                   MRPC_STATUS_PERMISSION_DENIED);
  assert_string_equal(msg, "no access for you");
  free(msg);
  /* the health service needs no token */
  assert_int_equal(auth_call(ch, &health_method, NULL, NULL), MRPC_STATUS_OK);
  assert_int_equal(atomic_load(&g_handler_calls), 4);
  /* every pattern and style is guarded; the end hooks of the interceptors
   * in front still run */
  for (int style = 0; style < 2; style++)
    for (int k = 0; k < 4; k++) {
      rec_reset();
      outcome o;
      run_call(ch, &e2e_methods[style][k], (k & 1), NULL, &o);
      assert_int_equal(o.code, MRPC_STATUS_UNAUTHENTICATED);
      outcome_free(&o);
      rec_wait("A end S UNAUTHENTICATED");
      mrpc_metadata *md = md1("authorization", "Bearer t2");
      run_call(ch, &e2e_methods[style][k], (k & 1), md, &o);
      mrpc_metadata_del(md);
      assert_pattern_ok(&o, (mrpc_method_kind)k);
      outcome_free(&o);
    }
  uint64_t acc, rej;
  mrpc_ic_auth_stats(auth, &acc, &rej);
  assert_int_equal(acc, 4 + 8);
  assert_int_equal(rej, 6 + 8);
  assert_true(atomic_load(&verified) >= 3);

  /* the client side: bearer */
  mrpc_ic_bearer *bearer;
  assert_int_equal(mrpc_ic_bearer_new("t1", &bearer), 0);
  ic_reg cregs[] = {{mrpc_ic_bearer_interceptor(bearer), bearer, NULL}};
  mrpc_channel *bch = ic_channel(s.target, cregs, 1);
  for (int k = 0; k < 4; k++)
    for (int cli = 0; cli < 2; cli++) {
      outcome o;
      run_call(bch, &e2e_methods[E2E_BLOCKING][k], cli, NULL, &o);
      assert_pattern_ok(&o, (mrpc_method_kind)k);
      outcome_free(&o);
    }
  /* the application's own authorization entry wins */
  assert_int_equal(auth_call(bch, u, "Bearer nope", NULL),
                   MRPC_STATUS_UNAUTHENTICATED);
  assert_int_equal(mrpc_ic_bearer_set_token(bearer, "wrong"), 0);
  assert_int_equal(auth_call(bch, u, NULL, NULL), MRPC_STATUS_UNAUTHENTICATED);
  assert_int_equal(mrpc_ic_bearer_set_token(bearer, "t2"), 0);
  assert_int_equal(auth_call(bch, u, NULL, NULL), MRPC_STATUS_OK);
  assert_int_equal(mrpc_ic_bearer_set_token(bearer, "has space"),
                   MRPC_ERR_INVAL);
  assert_int_equal(auth_call(bch, u, NULL, NULL), MRPC_STATUS_OK);
  mrpc_channel_del(bch);
  mrpc_channel_del(ch);
  e2e_server_stop(&s);
  mrpc_ic_bearer_del(bearer);
  mrpc_ic_auth_del(auth);

  /* options */
  static const char *const none[] = {NULL};
  static const char *const bad_tok[] = {"a b", NULL};
  static const char *const empty_tok[] = {"", NULL};
  mrpc_ic_auth_opts_init(&ao);
  assert_int_equal(mrpc_ic_auth_new(&ao, &auth), MRPC_ERR_INVAL);
  assert_int_equal(mrpc_ic_auth_new(NULL, &auth), MRPC_ERR_INVAL);
  ao.tokens = bad_tok;
  assert_int_equal(mrpc_ic_auth_new(&ao, &auth), MRPC_ERR_INVAL);
  ao.tokens = empty_tok;
  assert_int_equal(mrpc_ic_auth_new(&ao, &auth), MRPC_ERR_INVAL);
  assert_int_equal(mrpc_ic_bearer_new("", &bearer), MRPC_ERR_INVAL);
  assert_int_equal(mrpc_ic_bearer_new(NULL, &bearer), MRPC_ERR_INVAL);
  /* no exemption at all */
  ao.tokens = tokens;
  ao.exempt = none;
  assert_int_equal(mrpc_ic_auth_new(&ao, &auth), 0);
  ic_reg regs3[] = {{mrpc_ic_auth_interceptor(auth), auth, NULL}};
  ic_server_start(&s, regs3, 1, &health_method, &hh, 1);
  ch = e2e_channel(s.target, NULL);
  assert_int_equal(auth_call(ch, &health_method, NULL, NULL),
                   MRPC_STATUS_UNAUTHENTICATED);
  assert_int_equal(auth_call(ch, &health_method, "Bearer t1", NULL),
                   MRPC_STATUS_OK);
  mrpc_channel_del(ch);
  e2e_server_stop(&s);
  mrpc_ic_auth_del(auth);
}

/* ---- rate limit ---- */

static _Atomic int64_t g_fake_ns;
static int64_t fake_clock(void *user) {
  (void)user;
  return atomic_load(&g_fake_ns);
}

static int api_key(mrpc_call *call, char *buf, size_t cap, void *user) {
  (void)user;
  const uint8_t *v = mrpc_metadata_get(mrpc_call_metadata(call), "x-api-key",
                                       NULL);
  if (!v) return 0;
  snprintf(buf, cap, "%s", (const char *)v);
  return 1;
}

static int unary_code(mrpc_channel *ch, const mrpc_method *m,
                      const mrpc_metadata *md) {
  outcome o;
  unary(ch, m, md, "r", &o);
  int code = o.code;
  if (code == MRPC_STATUS_RESOURCE_EXHAUSTED)
    assert_string_equal(o.message, "rate limit exceeded");
  outcome_free(&o);
  return code;
}

typedef struct hammer {
  mrpc_channel *ch;
  int ok, limited;
} hammer;

static void *hammer_main(void *arg) {
  hammer *h = arg;
  for (int i = 0; i < 25; i++) {
    e2e_msg m;
    ProtobufCMessage *resp = NULL;
    mrpc_status st;
    mrpc_call_opts o;
    mrpc_call_opts_init(&o);
    o.timeout_ms = E2E_TIMEOUT_MS;
    if (mrpc_channel_unary(h->ch, &e2e_methods[E2E_EVENT][MRPC_UNARY],
                           e2e_msg_str(&m, E2E_D(simple_request), "h"), &o,
                           &resp, &st) != 0)
      continue;
    if (st.code == MRPC_STATUS_OK) h->ok++;
    if (st.code == MRPC_STATUS_RESOURCE_EXHAUSTED) h->limited++;
    if (resp) protobuf_c_message_free_unpacked(resp, NULL);
    mrpc_status_free(&st);
  }
  return NULL;
}

static void test_ratelimit(void **state) {
  (void)state;
  const mrpc_method *u = &e2e_methods[E2E_EVENT][MRPC_UNARY];
  const mrpc_method *ub = &e2e_methods[E2E_BLOCKING][MRPC_UNARY];
  mrpc_ic_ratelimit_opts ro;
  mrpc_ic_ratelimit *rl;
  e2e_server s;
  mrpc_channel *ch;

  /* per server: burst 3, refilled by a clock we move */
  atomic_store(&g_fake_ns, 1000000000);
  mrpc_ic_ratelimit_opts_init(&ro);
  ro.rate = 10;
  ro.burst = 3;
  ro.clock_ns = fake_clock;
  assert_int_equal(mrpc_ic_ratelimit_new(&ro, &rl), 0);
  ic_reg regs[] = {{mrpc_ic_ratelimit_interceptor(rl), rl, NULL}};
  ic_server_start(&s, regs, 1, NULL, NULL, 0);
  ch = e2e_channel(s.target, NULL);
  for (int i = 0; i < 3; i++)
    assert_int_equal(unary_code(ch, i & 1 ? u : ub, NULL), MRPC_STATUS_OK);
  assert_int_equal(unary_code(ch, u, NULL), MRPC_STATUS_RESOURCE_EXHAUSTED);
  assert_int_equal(unary_code(ch, ub, NULL), MRPC_STATUS_RESOURCE_EXHAUSTED);
  assert_int_equal(atomic_load(&g_handler_calls), 3);
  atomic_fetch_add(&g_fake_ns, 100000000); /* 0.1 s: one token */
  assert_int_equal(unary_code(ch, u, NULL), MRPC_STATUS_OK);
  assert_int_equal(unary_code(ch, u, NULL), MRPC_STATUS_RESOURCE_EXHAUSTED);
  atomic_fetch_add(&g_fake_ns, 10000000000); /* 10 s: full, not more */
  for (int i = 0; i < 3; i++)
    assert_int_equal(unary_code(ch, u, NULL), MRPC_STATUS_OK);
  assert_int_equal(unary_code(ch, u, NULL), MRPC_STATUS_RESOURCE_EXHAUSTED);
  /* every pattern is limited */
  for (int k = 0; k < 4; k++) {
    outcome o;
    run_call(ch, &e2e_methods[k & 1][k], CLI_BLOCKING, NULL, &o);
    assert_int_equal(o.code, MRPC_STATUS_RESOURCE_EXHAUSTED);
    outcome_free(&o);
  }
  uint64_t allowed, limited;
  size_t keys;
  mrpc_ic_ratelimit_stats(rl, &allowed, &limited, &keys);
  assert_int_equal(allowed, 7);
  assert_int_equal(limited, 8);
  assert_int_equal(keys, 1);
  mrpc_channel_del(ch);
  e2e_server_stop(&s);
  mrpc_ic_ratelimit_del(rl);

  /* per method */
  mrpc_ic_ratelimit_opts_init(&ro);
  ro.scope = MRPC_IC_RATELIMIT_PER_METHOD;
  ro.burst = 2; /* rate 0: no refill */
  assert_int_equal(mrpc_ic_ratelimit_new(&ro, &rl), 0);
  regs[0] = (ic_reg){mrpc_ic_ratelimit_interceptor(rl), rl, NULL};
  ic_server_start(&s, regs, 1, NULL, NULL, 0);
  ch = e2e_channel(s.target, NULL);
  assert_int_equal(unary_code(ch, u, NULL), MRPC_STATUS_OK);
  assert_int_equal(unary_code(ch, u, NULL), MRPC_STATUS_OK);
  assert_int_equal(unary_code(ch, u, NULL), MRPC_STATUS_RESOURCE_EXHAUSTED);
  assert_int_equal(unary_code(ch, ub, NULL), MRPC_STATUS_OK);
  assert_int_equal(unary_code(ch, ub, NULL), MRPC_STATUS_OK);
  assert_int_equal(unary_code(ch, ub, NULL), MRPC_STATUS_RESOURCE_EXHAUSTED);
  mrpc_ic_ratelimit_stats(rl, NULL, NULL, &keys);
  assert_int_equal(keys, 2);
  mrpc_channel_del(ch);
  e2e_server_stop(&s);
  mrpc_ic_ratelimit_del(rl);

  /* per peer: clients from 127.0.0.1 and from ::1 have a bucket each; a
   * second connection from the same host shares its host's */
  mrpc_ic_ratelimit_opts_init(&ro);
  ro.scope = MRPC_IC_RATELIMIT_PER_PEER;
  ro.burst = 2;
  assert_int_equal(mrpc_ic_ratelimit_new(&ro, &rl), 0);
  regs[0] = (ic_reg){mrpc_ic_ratelimit_interceptor(rl), rl, NULL};
  int port2;
  ic_server_start2(&s, regs, 1, NULL, NULL, 0, "[::1]:0", &port2);
  mrpc_channel *ch1 = e2e_channel(s.target, NULL);
  mrpc_channel *ch1b = e2e_channel(s.target, NULL);
  assert_int_equal(unary_code(ch1, u, NULL), MRPC_STATUS_OK);
  assert_int_equal(unary_code(ch1b, ub, NULL), MRPC_STATUS_OK);
  assert_int_equal(unary_code(ch1, u, NULL), MRPC_STATUS_RESOURCE_EXHAUSTED);
  if (port2) {
    char t2[64];
    snprintf(t2, sizeof t2, "[::1]:%d", port2);
    mrpc_channel *ch2 = e2e_channel(t2, NULL);
    assert_int_equal(unary_code(ch2, u, NULL), MRPC_STATUS_OK);
    assert_int_equal(unary_code(ch2, u, NULL), MRPC_STATUS_OK);
    assert_int_equal(unary_code(ch2, u, NULL), MRPC_STATUS_RESOURCE_EXHAUSTED);
    mrpc_ic_ratelimit_stats(rl, NULL, NULL, &keys);
    assert_int_equal(keys, 2);
    mrpc_channel_del(ch2);
  } else {
    fprintf(stderr, "(no IPv6 loopback: per-peer test with one host only)\n");
  }
  mrpc_channel_del(ch1);
  mrpc_channel_del(ch1b);
  e2e_server_stop(&s);
  mrpc_ic_ratelimit_del(rl);

  /* per key, bounded: 8 buckets whatever the number of keys */
  mrpc_ic_ratelimit_opts_init(&ro);
  ro.scope = MRPC_IC_RATELIMIT_PER_KEY;
  ro.burst = 1;
  ro.max_keys = 8;
  ro.key = api_key;
  assert_int_equal(mrpc_ic_ratelimit_new(&ro, &rl), 0);
  regs[0] = (ic_reg){mrpc_ic_ratelimit_interceptor(rl), rl, NULL};
  ic_server_start(&s, regs, 1, NULL, NULL, 0);
  ch = e2e_channel(s.target, NULL);
  for (int i = 0; i < 40; i++) {
    char k[32];
    snprintf(k, sizeof k, "key-%d", i);
    mrpc_metadata *md = md1("x-api-key", k);
    assert_int_equal(unary_code(ch, u, md), MRPC_STATUS_OK);
    assert_int_equal(unary_code(ch, u, md), MRPC_STATUS_RESOURCE_EXHAUSTED);
    mrpc_metadata_del(md);
    mrpc_ic_ratelimit_stats(rl, NULL, NULL, &keys);
    assert_true(keys <= 8);
  }
  assert_int_equal(keys, 8);
  /* no key: not limited */
  for (int i = 0; i < 3; i++)
    assert_int_equal(unary_code(ch, u, NULL), MRPC_STATUS_OK);
  mrpc_channel_del(ch);
  e2e_server_stop(&s);
  mrpc_ic_ratelimit_del(rl);

  /* many client threads against one bucket: exactly burst get through */
  mrpc_ic_ratelimit_opts_init(&ro);
  ro.burst = 100;
  assert_int_equal(mrpc_ic_ratelimit_new(&ro, &rl), 0);
  regs[0] = (ic_reg){mrpc_ic_ratelimit_interceptor(rl), rl, NULL};
  ic_server_start(&s, regs, 1, NULL, NULL, 0);
  hammer hs[8];
  pthread_t th[8];
  for (int i = 0; i < 8; i++) {
    hs[i] = (hammer){e2e_channel(s.target, NULL), 0, 0};
    assert_int_equal(pthread_create(&th[i], NULL, hammer_main, &hs[i]), 0);
  }
  int ok = 0, lim = 0;
  for (int i = 0; i < 8; i++) {
    pthread_join(th[i], NULL);
    ok += hs[i].ok;
    lim += hs[i].limited;
    mrpc_channel_del(hs[i].ch);
  }
  assert_int_equal(ok, 100);
  assert_int_equal(lim, 100);
  e2e_server_stop(&s);
  mrpc_ic_ratelimit_del(rl);

  /* on a channel: refused before anything is sent */
  mrpc_ic_ratelimit_opts_init(&ro);
  ro.burst = 1;
  assert_int_equal(mrpc_ic_ratelimit_new(&ro, &rl), 0);
  regs[0] = (ic_reg){mrpc_ic_ratelimit_interceptor(rl), rl, NULL};
  ic_server_start(&s, NULL, 0, NULL, NULL, 0);
  ch = ic_channel(s.target, regs, 1);
  atomic_store(&g_handler_calls, 0);
  assert_int_equal(unary_code(ch, u, NULL), MRPC_STATUS_OK);
  assert_int_equal(unary_code(ch, u, NULL), MRPC_STATUS_RESOURCE_EXHAUSTED);
  assert_int_equal(atomic_load(&g_handler_calls), 1);
  mrpc_channel_del(ch);
  e2e_server_stop(&s);
  mrpc_ic_ratelimit_del(rl);

  /* options */
  mrpc_ic_ratelimit_opts_init(&ro);
  ro.rate = -1;
  assert_int_equal(mrpc_ic_ratelimit_new(&ro, &rl), MRPC_ERR_INVAL);
  ro.rate = 1;
  ro.burst = 0.5;
  assert_int_equal(mrpc_ic_ratelimit_new(&ro, &rl), MRPC_ERR_INVAL);
  ro.burst = 0;
  ro.scope = MRPC_IC_RATELIMIT_PER_KEY;
  assert_int_equal(mrpc_ic_ratelimit_new(&ro, &rl), MRPC_ERR_INVAL);
  ro.scope = (mrpc_ic_ratelimit_scope)9;
  assert_int_equal(mrpc_ic_ratelimit_new(&ro, &rl), MRPC_ERR_INVAL);
  assert_int_equal(mrpc_ic_ratelimit_new(NULL, &rl), MRPC_ERR_INVAL);
  assert_int_equal(mrpc_ic_ratelimit_allow(NULL, "k"), MRPC_ERR_INVAL);
}

/* ---- recovery ---- */

static pthread_mutex_t line_mu = PTHREAD_MUTEX_INITIALIZER;
static char g_lines[16][512];
static int g_n_lines;

static void line_sink(const char *line, void *user) {
  (void)user;
  pthread_mutex_lock(&line_mu);
  if (g_n_lines < 16) snprintf(g_lines[g_n_lines++], 512, "%s", line);
  pthread_mutex_unlock(&line_mu);
}

static int lines_count(void) {
  pthread_mutex_lock(&line_mu);
  int n = g_n_lines;
  pthread_mutex_unlock(&line_mu);
  return n;
}

static void test_recovery(void **state) {
  (void)state;
  logs_reset();
  g_n_lines = 0;
  mrpc_ic_recovery_opts ro;
  mrpc_ic_recovery_opts_init(&ro);
  ro.log = line_sink;
  mrpc_ic_recovery *rec_ic;
  assert_int_equal(mrpc_ic_recovery_new(&ro, &rec_ic), 0);
  mrpc_ic_logging_opts lo;
  mrpc_ic_logging_opts_init(&lo);
  lo.sink = log_sink;
  mrpc_ic_logging *log;
  assert_int_equal(mrpc_ic_logging_new(&lo, &log), 0);
  mrpc_ic_metrics *met;
  assert_int_equal(mrpc_ic_metrics_new(NULL, &met), 0);
  /* the recommended order: recovery last */
  ic_reg regs[] = {{mrpc_ic_logging_interceptor(log), log, NULL},
                   {mrpc_ic_metrics_interceptor(met), met, NULL},
                   {mrpc_ic_recovery_interceptor(rec_ic), rec_ic, NULL}};
  e2e_server s;
  ic_server_start(&s, regs, 3, fault_methods, fault_handlers, 5);
  mrpc_channel *ch = e2e_channel(s.target, NULL);
  static const char *const why[] = {
      [F_NO_STATUS] = "returned without a status",
      [F_BAD_STREAM_CODE] = "invalid status code",
      [F_WRONG_TYPE] = "wrong type",
      [F_BAD_CODE] = "invalid status code",
      [F_UNPACKABLE] = "can not be serialized"};
  for (int f = 0; f < 5; f++) {
    logs_reset();
    pthread_mutex_lock(&line_mu);
    g_n_lines = 0;
    pthread_mutex_unlock(&line_mu);
    atomic_store(&g_send_rc, 1);
    for (int cli = 0; cli < 2; cli++) {
      outcome o;
      const char *r[] = {"boom"};
      run_call_reqs(ch, &fault_methods[f], cli, NULL, r, 1, &o);
      assert_int_equal(o.code, MRPC_STATUS_INTERNAL);
      assert_string_equal(o.message, "internal error");
      outcome_free(&o);
    }
    E2E_WAIT_UNTIL(logs_count() == 2 && lines_count() == 2, 2000);
    assert_int_equal(lines_count(), 2);
    assert_non_null(strstr(g_lines[0], fault_methods[f].path));
    if (!strstr(g_lines[0], why[f]))
      fail_msg("recovery line \"%s\" lacks \"%s\"", g_lines[0], why[f]);
    /* logging (outside) saw what recovery made of it */
    assert_int_equal(log_of(1).code, MRPC_STATUS_INTERNAL);
    if (f == F_WRONG_TYPE || f == F_UNPACKABLE)
      assert_int_equal(atomic_load(&g_send_rc), MRPC_ERR_CLOSED);
    /* and the server goes on */
    assert_int_equal(e2e_unary_echo(ch, f & 1, "next"), 0);
  }
  assert_int_equal(mrpc_ic_recovery_count(rec_ic), 10);
  mrpc_ic_metrics_method mm;
  assert_int_equal(mrpc_ic_metrics_get(met, "/ic.Fault/NoStatus", 1, &mm), 0);
  assert_int_equal(mm.codes[MRPC_STATUS_INTERNAL], 2);
  assert_int_equal(mm.codes[MRPC_STATUS_UNKNOWN], 0);
  /* statuses the handler chose stay as they are */
  e2e_msg m;
  e2e_msg_str(&m, E2E_D(simple_request), "p");
  e2e_msg_ask_status(&m, MRPC_STATUS_UNKNOWN, "mine");
  ProtobufCMessage *resp;
  mrpc_status st;
  mrpc_call_opts co = e2e_copts(E2E_TIMEOUT_MS, NULL);
  assert_int_equal(mrpc_channel_unary(ch, &e2e_methods[1][MRPC_UNARY],
                                      &m.u.base, &co, &resp, &st),
                   0);
  assert_int_equal(st.code, MRPC_STATUS_UNKNOWN);
  assert_string_equal(st.message, "mine");
  mrpc_status_free(&st);
  assert_int_equal(mrpc_ic_recovery_count(rec_ic), 10);
  mrpc_channel_del(ch);
  e2e_server_stop(&s);
  mrpc_ic_recovery_del(rec_ic);
  mrpc_ic_logging_del(log);
  mrpc_ic_metrics_del(met);

  /* own message, default sink (stderr: not checked), on a channel: inert */
  ro.log = NULL;
  ro.message = "try again later";
  assert_int_equal(mrpc_ic_recovery_new(&ro, &rec_ic), 0);
  ic_reg r2[] = {{mrpc_ic_recovery_interceptor(rec_ic), rec_ic, NULL}};
  ic_server_start(&s, r2, 1, fault_methods, fault_handlers, 5);
  ch = ic_channel(s.target, r2, 1);
  outcome o;
  unary(ch, &fault_methods[F_NO_STATUS], NULL, "x", &o);
  assert_int_equal(o.code, MRPC_STATUS_INTERNAL);
  assert_string_equal(o.message, "try again later");
  outcome_free(&o);
  assert_int_equal(e2e_unary_echo(ch, E2E_BLOCKING, "fine"), 0);
  mrpc_channel_del(ch);
  e2e_server_stop(&s);
  assert_int_equal(mrpc_ic_recovery_count(rec_ic), 1);
  mrpc_ic_recovery_del(rec_ic);
}

/* ---- metrics ---- */

static void test_metrics(void **state) {
  (void)state;
  mrpc_ic_metrics *met;
  assert_int_equal(mrpc_ic_metrics_new(NULL, &met), 0);
  ic_reg regs[] = {{mrpc_ic_metrics_interceptor(met), met, NULL}};
  e2e_server s;
  ic_server_start(&s, regs, 1, NULL, NULL, 0);
  mrpc_channel *ch = ic_channel(s.target, regs, 1);
  const mrpc_method *u = &e2e_methods[E2E_EVENT][MRPC_UNARY];
  for (int i = 0; i < 3; i++) assert_int_equal(e2e_unary_echo(ch, 0, "m"), 0);
  e2e_msg m;
  e2e_msg_str(&m, E2E_D(simple_request), "p");
  e2e_msg_ask_status(&m, MRPC_STATUS_NOT_FOUND, "nf");
  ProtobufCMessage *resp;
  mrpc_status st;
  mrpc_call_opts co = e2e_copts(E2E_TIMEOUT_MS, NULL);
  assert_int_equal(mrpc_channel_unary(ch, u, &m.u.base, &co, &resp, &st), 0);
  mrpc_status_free(&st);
  for (int k = 1; k < 4; k++) {
    outcome o;
    run_call(ch, &e2e_methods[E2E_BLOCKING][k], CLI_EVENT, NULL, &o);
    assert_pattern_ok(&o, (mrpc_method_kind)k);
    outcome_free(&o);
  }
  mrpc_channel_del(ch); /* every hook has run on the client */
  e2e_server_stop(&s);  /* and on the server */
  mrpc_ic_metrics_method r;
  assert_int_equal(mrpc_ic_metrics_get(met, u->path, 1, &r), 0);
  assert_string_equal(r.method, u->path);
  assert_int_equal(r.is_server, 1);
  assert_int_equal(r.kind, MRPC_UNARY);
  assert_int_equal(r.started, 4);
  assert_int_equal(r.handled, 4);
  assert_int_equal(r.codes[MRPC_STATUS_OK], 3);
  assert_int_equal(r.codes[MRPC_STATUS_NOT_FOUND], 1);
  assert_int_equal(r.msg_received, 4);
  assert_int_equal(r.msg_sent, 3);
  assert_int_equal(r.n_bounds, 14);
  assert_int_equal(r.buckets[r.n_bounds], 4);
  for (size_t i = 1; i <= r.n_bounds; i++)
    assert_true(r.buckets[i] >= r.buckets[i - 1]);
  assert_true(r.sum_seconds > 0);
  assert_int_equal(mrpc_ic_metrics_get(met, u->path, 0, &r), 0);
  assert_int_equal(r.is_server, 0);
  assert_int_equal(r.started, 4);
  assert_int_equal(r.msg_sent, 4);
  assert_int_equal(r.msg_received, 3);
  static const struct {
    int k;
    uint64_t in, out;
  } streams[] = {{MRPC_CLIENT_STREAMING, 3, 1},
                 {MRPC_SERVER_STREAMING, 1, 3},
                 {MRPC_BIDI_STREAMING, 2, 2}};
  for (int i = 0; i < 3; i++) {
    const char *path = e2e_methods[E2E_BLOCKING][streams[i].k].path;
    assert_int_equal(mrpc_ic_metrics_get(met, path, 1, &r), 0);
    assert_int_equal(r.kind, streams[i].k);
    assert_int_equal(r.codes[MRPC_STATUS_OK], 1);
    assert_int_equal(r.msg_received, streams[i].in);
    assert_int_equal(r.msg_sent, streams[i].out);
    assert_int_equal(mrpc_ic_metrics_get(met, path, 0, &r), 0);
    assert_int_equal(r.msg_received, streams[i].out);
    assert_int_equal(r.msg_sent, streams[i].in);
  }
  assert_int_equal(mrpc_ic_metrics_count(met), 8);
  assert_int_equal(mrpc_ic_metrics_at(met, 0, &r), 0);
  assert_int_equal(mrpc_ic_metrics_at(met, 8, &r), MRPC_ERR_INVAL);
  assert_int_equal(mrpc_ic_metrics_get(met, "/no.Such/Method", 1, &r),
                   MRPC_ERR_INVAL);

  /* Prometheus text */
  size_t len;
  char *text = mrpc_ic_metrics_prometheus_alloc(met, &len);
  assert_non_null(text);
  assert_int_equal(strlen(text), len);
  static const char *const want[] = {
      "# TYPE grpc_server_started_total counter\n",
      "grpc_server_started_total{grpc_type=\"unary\",grpc_service=\"e2e.Event\","
      "grpc_method=\"Unary\"} 4\n",
      "grpc_server_handled_total{grpc_type=\"unary\",grpc_service=\"e2e.Event\","
      "grpc_method=\"Unary\",grpc_code=\"OK\"} 3\n",
      "grpc_server_handled_total{grpc_type=\"unary\",grpc_service=\"e2e.Event\","
      "grpc_method=\"Unary\",grpc_code=\"NOT_FOUND\"} 1\n",
      "grpc_server_msg_received_total{grpc_type=\"bidi_stream\","
      "grpc_service=\"e2e.Blocking\",grpc_method=\"Bidi\"} 2\n",
      "grpc_server_msg_sent_total{grpc_type=\"server_stream\","
      "grpc_service=\"e2e.Blocking\",grpc_method=\"ServerStream\"} 3\n",
      "# TYPE grpc_server_handling_seconds histogram\n",
      "grpc_server_handling_seconds_bucket{grpc_type=\"unary\",grpc_service="
      "\"e2e.Event\",grpc_method=\"Unary\",le=\"+Inf\"} 4\n",
      "grpc_server_handling_seconds_count{grpc_type=\"unary\",grpc_service="
      "\"e2e.Event\",grpc_method=\"Unary\"} 4\n",
      "grpc_server_handling_seconds_bucket{grpc_type=\"client_stream\","
      "grpc_service=\"e2e.Blocking\",grpc_method=\"ClientStream\",le=\"0.0005\"}",
      "grpc_client_handled_total{grpc_type=\"unary\",grpc_service=\"e2e.Event\","
      "grpc_method=\"Unary\",grpc_code=\"OK\"} 3\n",
      "# TYPE grpc_client_handling_seconds histogram\n",
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    if (!strstr(text, want[i]))
      fail_msg("no \"%s\" in:\n%s", want[i], text);
  assert_null(strstr(text, "grpc_code=\"UNKNOWN\"")); /* zero: not listed */
  assert_int_equal(text[len - 1], '\n');
  /* snprintf-like */
  char small[16];
  assert_int_equal(mrpc_ic_metrics_prometheus(met, small, sizeof small), len);
  assert_int_equal(strlen(small), sizeof small - 1);
  assert_memory_equal(small, text, sizeof small - 1);
  assert_int_equal(mrpc_ic_metrics_prometheus(met, NULL, 0), len);
  char *exact = e2e_xmalloc(len + 1);
  assert_int_equal(mrpc_ic_metrics_prometheus(met, exact, len + 1), len);
  assert_string_equal(exact, text);
  free(exact);
  free(text);
  mrpc_ic_metrics_del(met);

  /* own bounds; past max_methods everything goes to "(other)" */
  static const double bounds[] = {1e-9, 100};
  mrpc_ic_metrics_opts mo;
  mrpc_ic_metrics_opts_init(&mo);
  mo.bounds = bounds;
  mo.n_bounds = 2;
  mo.max_methods = 1;
  assert_int_equal(mrpc_ic_metrics_new(&mo, &met), 0);
  regs[0] = (ic_reg){mrpc_ic_metrics_interceptor(met), met, NULL};
  ic_server_start(&s, regs, 1, NULL, NULL, 0);
  ch = e2e_channel(s.target, NULL);
  assert_int_equal(e2e_unary_echo(ch, 0, "a"), 0);
  assert_int_equal(e2e_unary_echo(ch, 1, "b"), 0);
  assert_int_equal(e2e_unary_echo(ch, 1, "c"), 0);
  mrpc_channel_del(ch);
  e2e_server_stop(&s);
  assert_int_equal(mrpc_ic_metrics_count(met), 2);
  assert_int_equal(mrpc_ic_metrics_get(met, u->path, 1, &r), 0);
  assert_int_equal(r.n_bounds, 2);
  assert_int_equal(r.buckets[0], 0);
  assert_int_equal(r.buckets[1], 1);
  assert_int_equal(r.buckets[2], 1);
  assert_int_equal(mrpc_ic_metrics_get(met, "(other)", 1, &r), 0);
  assert_int_equal(r.handled, 2);
  text = mrpc_ic_metrics_prometheus_alloc(met, NULL);
  assert_non_null(strstr(text, "le=\"1e-09\"} 0\n"));
  assert_non_null(strstr(text, "le=\"100\"} 1\n"));
  free(text);
  mrpc_ic_metrics_del(met);

  /* options */
  static const double unsorted[] = {1, 0.5};
  mo.bounds = unsorted;
  assert_int_equal(mrpc_ic_metrics_new(&mo, &met), MRPC_ERR_INVAL);
  mo.bounds = bounds;
  mo.n_bounds = 0;
  assert_int_equal(mrpc_ic_metrics_new(&mo, &met), MRPC_ERR_INVAL);
  mo.n_bounds = MRPC_IC_METRICS_MAX_BOUNDS + 1;
  assert_int_equal(mrpc_ic_metrics_new(&mo, &met), MRPC_ERR_INVAL);
  assert_int_equal(mrpc_ic_metrics_prometheus(NULL, NULL, 0), 0);
}

/* ---- request id ---- */

static atomic_int g_ids;
static void counter_id(char *buf, size_t cap, void *user) {
  (void)user;
  snprintf(buf, cap, "cli-%d", atomic_fetch_add(&g_ids, 1));
}

static int is_uuid4(const char *s) {
  if (strlen(s) != 36) return 0;
  for (int i = 0; i < 36; i++) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') return 0;
    } else if (!strchr("0123456789abcdef", s[i])) {
      return 0;
    }
  }
  return s[14] == '4' && strchr("89ab", s[19]) != NULL;
}

static void test_request_id(void **state) {
  (void)state;
  mrpc_ic_request_id_opts ro;
  mrpc_ic_request_id_opts_init(&ro);
  ro.server_version = "1.0.0";
  mrpc_ic_request_id *rid;
  assert_int_equal(mrpc_ic_request_id_new(&ro, &rid), 0);
  mrpc_ic_logging_opts lo;
  mrpc_ic_logging_opts_init(&lo);
  lo.sink = log_sink;
  mrpc_ic_logging *log;
  assert_int_equal(mrpc_ic_logging_new(&lo, &log), 0);
  static const char *const tokens[] = {"tok", NULL};
  mrpc_ic_auth_opts ao;
  mrpc_ic_auth_opts_init(&ao);
  ao.tokens = tokens;
  mrpc_ic_auth *auth;
  assert_int_equal(mrpc_ic_auth_new(&ao, &auth), 0);
  ic_reg regs[] = {{mrpc_ic_request_id_interceptor(rid), rid, NULL},
                   {mrpc_ic_logging_interceptor(log), log, NULL},
                   {mrpc_ic_auth_interceptor(auth), auth, NULL}};
  e2e_server s;
  ic_server_start(&s, regs, 3, NULL, NULL, 0);
  mrpc_channel *ch = e2e_channel(s.target, NULL);
  mrpc_metadata *tok = md1("authorization", "Bearer tok");
  char first[64] = "";
  for (int k = 0; k < 4; k++)
    for (int cli = 0; cli < 2; cli++) {
      outcome o;
      logs_reset();
      run_call(ch, &e2e_methods[cli][k], cli, tok, &o);
      assert_pattern_ok(&o, (mrpc_method_kind)k);
      const char *id = md_str(o.headers, "x-request-id");
      if (!is_uuid4(id)) fail_msg("x-request-id \"%s\" is not a UUID v4", id);
      assert_string_equal(md_str(o.headers, "server-version"), "1.0.0");
      assert_true(strcmp(id, first) != 0);
      snprintf(first, sizeof first, "%s", id);
      /* the server's log line carries the generated id */
      E2E_WAIT_UNTIL(logs_count() == 1, 2000);
      assert_string_equal(log_of(1).request_id, id);
      outcome_free(&o);
    }
  /* the client's own id is echoed */
  mrpc_metadata *md = md1("authorization", "Bearer tok");
  assert_int_equal(mrpc_metadata_add_str(md, "x-request-id", "abc-123"), 0);
  outcome o;
  logs_reset();
  unary(ch, &e2e_methods[0][MRPC_UNARY], md, "x", &o);
  assert_int_equal(o.code, MRPC_STATUS_OK);
  assert_string_equal(md_str(o.headers, "x-request-id"), "abc-123");
  outcome_free(&o);
  E2E_WAIT_UNTIL(logs_count() == 1, 2000);
  assert_non_null(strstr(log_of(1).line, " request_id=\"abc-123\""));
  /* refused calls get their id too (request_id runs before auth) */
  unary(ch, &e2e_methods[0][MRPC_UNARY], NULL, "x", &o);
  assert_int_equal(o.code, MRPC_STATUS_UNAUTHENTICATED);
  assert_true(is_uuid4(md_either(&o, "x-request-id")));
  assert_string_equal(md_either(&o, "server-version"), "1.0.0");
  outcome_free(&o);
  mrpc_channel_del(ch);
  mrpc_metadata_del(md);

  /* client side: adds an id to calls without one, keeps the caller's */
  mrpc_ic_request_id_opts_init(&ro);
  ro.generate = counter_id;
  mrpc_ic_request_id *crid;
  assert_int_equal(mrpc_ic_request_id_new(&ro, &crid), 0);
  ic_reg cregs[] = {{mrpc_ic_request_id_interceptor(crid), crid, NULL}};
  ch = ic_channel(s.target, cregs, 1);
  atomic_store(&g_ids, 7);
  for (int cli = 0; cli < 2; cli++) {
    unary(ch, &e2e_methods[1][MRPC_UNARY], tok, "x", &o);
    assert_int_equal(o.code, MRPC_STATUS_OK);
    assert_string_equal(md_str(o.headers, "x-request-id"),
                        cli ? "cli-8" : "cli-7");
    outcome_free(&o);
  }
  md = md1("authorization", "Bearer tok");
  assert_int_equal(mrpc_metadata_add_str(md, "x-request-id", "mine"), 0);
  unary(ch, &e2e_methods[1][MRPC_UNARY], md, "x", &o);
  assert_string_equal(md_str(o.headers, "x-request-id"), "mine");
  outcome_free(&o);
  mrpc_metadata_del(md);
  mrpc_channel_del(ch);
  e2e_server_stop(&s);
  mrpc_metadata_del(tok);
  mrpc_ic_request_id_del(rid);
  mrpc_ic_request_id_del(crid);
  mrpc_ic_logging_del(log);
  mrpc_ic_auth_del(auth);

  /* options */
  mrpc_ic_request_id_opts_init(&ro);
  ro.header = "Bad Key";
  assert_int_equal(mrpc_ic_request_id_new(&ro, &rid), MRPC_ERR_INVAL);
  ro.header = "grpc-thing";
  assert_int_equal(mrpc_ic_request_id_new(&ro, &rid), MRPC_ERR_INVAL);
  ro.header = "x-id-bin";
  assert_int_equal(mrpc_ic_request_id_new(&ro, &rid), MRPC_ERR_INVAL);
  ro.header = "x-trace";
  ro.server_version = "bad\nversion";
  assert_int_equal(mrpc_ic_request_id_new(&ro, &rid), MRPC_ERR_INVAL);
  ro.server_version = NULL;
  assert_int_equal(mrpc_ic_request_id_new(&ro, &rid), 0);
  mrpc_ic_request_id_del(rid);
}

/* ====================================================================
 * --serve: a server for tests/interceptors/auth_client.py.
 * ================================================================== */

static const mrpc_method serve_methods[] = {
    {"/grpc.testing.TestService/UnaryCall", MRPC_UNARY, E2E_D(simple_request),
     E2E_D(simple_response)},
    {"/grpc.testing.TestService/StreamingOutputCall", MRPC_SERVER_STREAMING,
     E2E_D(streaming_output_call_request),
     E2E_D(streaming_output_call_response)},
    {"/grpc.testing.TestService/StreamingInputCall", MRPC_CLIENT_STREAMING,
     E2E_D(streaming_input_call_request),
     E2E_D(streaming_input_call_response)},
    {"/grpc.testing.TestService/FullDuplexCall", MRPC_BIDI_STREAMING,
     E2E_D(streaming_output_call_request),
     E2E_D(streaming_output_call_response)},
    /* grpc.health.v1.HealthCheckRequest/Response with service "" and
     * status UNKNOWN are empty messages: Empty reads and writes them */
    {"/grpc.health.v1.Health/Check", MRPC_UNARY, E2E_D(empty), E2E_D(empty)},
};

static void health_on_message(mrpc_call *call, const ProtobufCMessage *msg,
                              void *ctx) {
  (void)msg;
  (void)ctx;
  Grpc__Testing__Empty e = GRPC__TESTING__EMPTY__INIT;
  mrpc_call_send(call, &e.base);
  mrpc_call_finish(call, MRPC_STATUS_OK, NULL, NULL, 0);
}

static void health_check(mrpc_call *call, void *user) {
  (void)user;
  static const mrpc_call_ops ops = {health_on_message, NULL, NULL, NULL};
  mrpc_call_set_ops(call, &ops, NULL);
}

static int serve_main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s --serve PORT [--token TOKEN]...\n", argv[0]);
    return 2;
  }
  const char *tokens[16];
  int n_tokens = 0;
  for (int i = 3; i + 1 < argc && n_tokens < 15; i += 2)
    if (strcmp(argv[i], "--token") == 0) tokens[n_tokens++] = argv[i + 1];
  tokens[n_tokens] = NULL;
  /* SIGTERM / SIGINT are taken by sigwait below, on this thread only */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);

  mrpc_ic_request_id_opts rio;
  mrpc_ic_request_id_opts_init(&rio);
  rio.server_version = "minirpc-ic-test";
  mrpc_ic_request_id *rid;
  mrpc_ic_logging *log;
  mrpc_ic_auth_opts ao;
  mrpc_ic_auth_opts_init(&ao);
  ao.tokens = tokens;
  mrpc_ic_auth *auth;
  mrpc_ic_recovery *recov;
  if (mrpc_ic_request_id_new(&rio, &rid) || mrpc_ic_logging_new(NULL, &log) ||
      mrpc_ic_auth_new(&ao, &auth) || mrpc_ic_recovery_new(NULL, &recov)) {
    fprintf(stderr, "could not make the interceptors (no --token?)\n");
    return 2;
  }
  mrpc_server_opts o;
  mrpc_server_opts_init(&o);
  o.io_threads = 2;
  mrpc_server *srv;
  if (mrpc_server_new(&o, &srv) != 0) return 1;
  mrpc_method_handler hs[] = {{e2e_event_echo, NULL, NULL},
                              {NULL, e2e_blocking_echo, NULL},
                              {e2e_event_echo, NULL, NULL},
                              {NULL, e2e_blocking_echo, NULL},
                              {health_check, NULL, NULL}};
  for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++)
    if (mrpc_server_add_method(srv, &serve_methods[i], &hs[i]) != 0) return 1;
  if (mrpc_server_add_interceptor(srv, mrpc_ic_request_id_interceptor(rid),
                                  rid, NULL) ||
      mrpc_server_add_interceptor(srv, mrpc_ic_logging_interceptor(log), log,
                                  NULL) ||
      mrpc_server_add_interceptor(srv, mrpc_ic_auth_interceptor(auth), auth,
                                  NULL) ||
      mrpc_server_add_interceptor(srv, mrpc_ic_recovery_interceptor(recov),
                                  recov, NULL))
    return 1;
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%s", argv[2]);
  int port = 0;
  int rv = mrpc_server_listen(srv, addr, &port);
  if (rv == 0) rv = mrpc_server_start(srv);
  if (rv != 0) {
    fprintf(stderr, "listen/start on %s: %s\n", addr, mrpc_strerror(rv));
    mrpc_server_del(srv);
    return 1;
  }
  printf("listening on %d\n", port);
  fflush(stdout);
  int sig;
  sigwait(&sigs, &sig);
  mrpc_server_del(srv);
  uint64_t acc, rej;
  mrpc_ic_auth_stats(auth, &acc, &rej);
  printf("stopped: %llu calls accepted, %llu refused\n",
         (unsigned long long)acc, (unsigned long long)rej);
  mrpc_ic_request_id_del(rid);
  mrpc_ic_logging_del(log);
  mrpc_ic_auth_del(auth);
  mrpc_ic_recovery_del(recov);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "--serve") == 0)
    return serve_main(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  g_test_thread = pthread_self();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_chain_all_patterns, test_setup,
                                      test_teardown),
      cmocka_unit_test_setup_teardown(test_server_start_reject, test_setup,
                                      test_teardown),
      cmocka_unit_test_setup_teardown(test_client_start_reject, test_setup,
                                      test_teardown),
      cmocka_unit_test_setup_teardown(test_recv_hooks, test_setup,
                                      test_teardown),
      cmocka_unit_test_setup_teardown(test_send_hooks, test_setup,
                                      test_teardown),
      cmocka_unit_test_setup_teardown(test_end_hooks, test_setup,
                                      test_teardown),
      cmocka_unit_test_setup_teardown(test_filters, test_setup, test_teardown),
      cmocka_unit_test_setup_teardown(test_registration, test_setup,
                                      test_teardown),
      cmocka_unit_test_setup_teardown(test_hooks_never_after_end, test_setup,
                                      test_teardown),
      cmocka_unit_test_setup_teardown(test_faults_without_recovery, test_setup,
                                      test_teardown),
      cmocka_unit_test_setup_teardown(test_logging, test_setup, test_teardown),
      cmocka_unit_test_setup_teardown(test_auth, test_setup, test_teardown),
      cmocka_unit_test_setup_teardown(test_ratelimit, test_setup,
                                      test_teardown),
      cmocka_unit_test_setup_teardown(test_recovery, test_setup,
                                      test_teardown),
      cmocka_unit_test_setup_teardown(test_metrics, test_setup, test_teardown),
      cmocka_unit_test_setup_teardown(test_request_id, test_setup,
                                      test_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
