/* interop_client: the gRPC interop test cases (grpc/grpc
 * doc/interop-test-descriptions.md) run against any TestService server.
 *
 *   interop_client --server_host=H --server_port=N --test_case=NAME[,NAME..]
 *                  [--use_tls=false] [--server_host_override=AUTHORITY]
 *
 * NAME is a case below or "all".  Prints "PASS name" or "FAIL name: why"
 * per case; exits 0 only when every case passed (2 on bad usage).  Calls go
 * through the client stubs protoc-gen-minirpc generates (test.mrpc.h), in
 * their blocking form; empty_unary, large_unary and server_compressed_unary
 * also run through the event-driven stubs so that both client styles meet
 * real peers.  The compression cases ask for gzip per call
 * (mrpc_call_opts.compression) and send single messages uncompressed with
 * mrpc_call_set_message_compression; for that some calls are opened with
 * mrpc_channel_open_stream, as the generated unary stubs send at once.
 * SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <minirpc/minirpc.h>

#include "test.mrpc.h"

#define CALL_TIMEOUT_MS 10000 /* every call gets a deadline: nothing hangs */
#define LARGE_REQ 271828
#define LARGE_RESP 314159
#define ECHO_INITIAL "x-grpc-test-echo-initial"
#define ECHO_INITIAL_VALUE "test_initial_metadata_value"
#define ECHO_TRAILING "x-grpc-test-echo-trailing-bin"
#define ECHO_TRAILING_VALUE "\xab\xab\xab"

static const int32_t k_req_sizes[4] = {27182, 8, 1828, 45904};
static const int32_t k_resp_sizes[4] = {31415, 9, 2653, 58979};

/* Every request body is zeros: one shared buffer, never written. */
static uint8_t g_zeros[LARGE_REQ];

/* The generated names, shortened. */
#define TS(name) grpc__testing__test_service__##name
typedef Grpc__Testing__StreamingOutputCallRequest OutputRequest;
typedef Grpc__Testing__StreamingOutputCallResponse OutputResponse;

/* ---- helpers ---------------------------------------------------------- */

static const char *g_case;  /* the case running, for fatal errors */
static char g_why[1024];    /* why the case running failed */

/* Records why the case failed; returns false for `return fail(...)`. */
static bool fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(g_why, sizeof g_why, fmt, ap);
  va_end(ap);
  return false;
}

static const char *code_name(int code) {
  const char *n = mrpc_status_code_name(code);
  return n ? n : "?";
}

static mrpc_call_opts *call_opts(mrpc_call_opts *o, const mrpc_metadata *md,
                                 int64_t timeout_ms) {
  mrpc_call_opts_init(o);
  o->timeout_ms = timeout_ms;
  o->metadata = md;
  return o;
}

/* The standard deadline, no metadata. */
static mrpc_call_opts *std_opts(mrpc_call_opts *o) {
  return call_opts(o, NULL, CALL_TIMEOUT_MS);
}

/* Frees a message the library handed over (any type), or nothing. */
static void free_msg(void *m) {
  if (m) protobuf_c_message_free_unpacked(m, NULL);
}

static Grpc__Testing__Payload zero_payload(size_t len) {
  Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
  p.body.data = g_zeros;
  p.body.len = len;
  return p;
}

/* Checks the status; msg NULL means any message. */
static bool expect_status(const char *what, const mrpc_status *st,
                          mrpc_status_code code, const char *msg) {
  const char *got = st->message ? st->message : "";
  if (st->code != code)
    return fail("%s: status %s (%d) \"%s\", want %s", what,
                code_name(st->code), st->code, got, code_name(code));
  if (msg && strcmp(got, msg) != 0)
    return fail("%s: status message \"%s\", want \"%s\"", what, got, msg);
  return true;
}

static bool check_body(const char *what, const Grpc__Testing__Payload *p,
                       size_t want) {
  if (!p) return fail("%s: response has no payload", what);
  if (p->body.len != want)
    return fail("%s: payload of %zu bytes, want %zu", what, p->body.len, want);
  for (size_t i = 0; i < p->body.len; i++)
    if (p->body.data[i] != 0) return fail("%s: payload not all zero", what);
  return true;
}

/* Checks what a blocking unary stub (__call) returned. */
static bool called(int rc) {
  if (rc != 0) return fail("unary call: %s", mrpc_strerror(rc));
  return true;
}

/* Checks what an __open stub returned. */
static bool opened(int rc) {
  if (rc != 0) return fail("opening the call: %s", mrpc_strerror(rc));
  return true;
}

/* Gives up on a stream after a failed check: cancels (so that finish does
 * not wait for the deadline), frees it, and adds the final status to the
 * reason (it explains an early end).  Returns false. */
static bool abort_stream(mrpc_stream *s) {
  mrpc_status st = {0};
  mrpc_call_cancel(mrpc_stream_call(s));
  mrpc_stream_finish(s, &st);
  size_t n = strlen(g_why);
  snprintf(g_why + n, sizeof g_why - n, " [call status %s: \"%s\"]",
           code_name(st.code), st.message ? st.message : "");
  mrpc_status_free(&st);
  return false;
}

/* Fills *req (with rp and p) asking for one response of resp_len bytes
 * (none when resp_len < 0) with a req_len payload. */
static void output_req(OutputRequest *req,
                       Grpc__Testing__ResponseParameters *rp,
                       Grpc__Testing__ResponseParameters **rps,
                       Grpc__Testing__Payload *p, int32_t resp_len,
                       size_t req_len) {
  grpc__testing__streaming_output_call_request__init(req);
  grpc__testing__response_parameters__init(rp);
  *p = zero_payload(req_len);
  rp->size = resp_len;
  rps[0] = rp;
  if (resp_len >= 0) {
    req->n_response_parameters = 1;
    req->response_parameters = rps;
  }
  req->payload = p;
}

/* Sends on a FullDuplexCall a request asking for one response of resp_len
 * bytes (none when resp_len < 0) with a req_len payload. */
static bool send_output_req(mrpc_stream *s, int32_t resp_len,
                            size_t req_len) {
  OutputRequest req;
  Grpc__Testing__ResponseParameters rp, *rps[1];
  Grpc__Testing__Payload p;
  output_req(&req, &rp, rps, &p, resp_len, req_len);
  int rc = TS(full_duplex_call__stream_send_request)(s, &req);
  if (rc != 0) return fail("send: %s", mrpc_strerror(rc));
  return true;
}

/* Checks a response's compressed message flag: want_compressed 1 or 0,
 * or -1 for either. */
static bool check_compressed(const char *what, int got, int want_compressed) {
  if (want_compressed >= 0 && !got != !want_compressed)
    return fail("%s came %scompressed, want %scompressed", what,
                got ? "" : "un", want_compressed ? "" : "un");
  return true;
}

/* Receives one StreamingOutputCallResponse (StreamingOutputCall and
 * FullDuplexCall both answer with it) and checks its payload and, unless
 * want_compressed is -1, its compressed flag. */
static bool recv_output_c(mrpc_stream *s, int i, int32_t want,
                          int want_compressed) {
  OutputResponse *m = NULL;
  int rc = TS(full_duplex_call__stream_recv_response)(s, &m);
  if (rc != 1)
    return fail("response %d: %s", i,
                rc == 0 ? "stream ended" : mrpc_strerror(rc));
  char what[32];
  snprintf(what, sizeof what, "response %d", i);
  bool ok = check_body(what, m->payload, (size_t)want) &&
            check_compressed(what, mrpc_stream_last_compressed(s),
                             want_compressed);
  free_msg(m);
  return ok;
}

static bool recv_output(mrpc_stream *s, int i, int32_t want) {
  return recv_output_c(s, i, want, -1);
}

/* Expects the end of the server's messages. */
static bool recv_end(mrpc_stream *s) {
  ProtobufCMessage *m = NULL;
  int rc = mrpc_stream_recv(s, &m);
  if (rc == 1) protobuf_c_message_free_unpacked(m, NULL);
  if (rc != 0)
    return fail("expected the end of the stream, got %s",
                rc == 1 ? "another message" : mrpc_strerror(rc));
  return true;
}

/* Reads until the call ends (recv <= 0); an error is the expected outcome,
 * but no message is. */
static bool drain(mrpc_stream *s) {
  ProtobufCMessage *m = NULL;
  int n = 0;
  while (mrpc_stream_recv(s, &m) == 1) {
    protobuf_c_message_free_unpacked(m, NULL);
    n++;
  }
  if (n) return fail("got %d unexpected response(s)", n);
  return true;
}

/* Frees the stream and checks its final status. */
static bool finish(mrpc_stream *s, const char *what, mrpc_status_code code,
                   const char *msg) {
  mrpc_status st = {0};
  mrpc_stream_finish(s, &st);
  bool ok = expect_status(what, &st, code, msg);
  mrpc_status_free(&st);
  return ok;
}

static bool close_send(mrpc_stream *s) {
  int rc = mrpc_stream_close_send(s);
  if (rc != 0) return fail("close_send: %s", mrpc_strerror(rc));
  return true;
}

/* ---- event-driven unary call ------------------------------------------ */

/* What the callbacks saw; filled on the channel's I/O thread. */
typedef struct ev_wait {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool done;
  int n_msgs;
  int compressed; /* the (last) response came compressed */
  Grpc__Testing__Payload *payload; /* copy of a SimpleResponse's payload */
  mrpc_status_code code;
  char message[256];
} ev_wait;

static void ev_init(ev_wait *w) {
  pthread_condattr_t ca;
  memset(w, 0, sizeof *w);
  pthread_mutex_init(&w->mu, NULL);
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&w->cv, &ca);
  pthread_condattr_destroy(&ca);
}

static void ev_destroy(ev_wait *w) {
  if (w->payload) {
    free(w->payload->body.data);
    free(w->payload);
  }
  pthread_cond_destroy(&w->cv);
  pthread_mutex_destroy(&w->mu);
}

/* msg is borrowed: the payload is copied out. */
static void ev_on_message(mrpc_call *call, const ProtobufCMessage *msg,
                          void *ctx) {
  ev_wait *w = ctx;
  pthread_mutex_lock(&w->mu);
  w->n_msgs++;
  w->compressed = mrpc_call_message_compressed(call);
  const Grpc__Testing__SimpleResponse *r = (const void *)msg;
  if (msg->descriptor == &grpc__testing__simple_response__descriptor &&
      r->payload && !w->payload) {
    Grpc__Testing__Payload *p = malloc(sizeof *p);
    if (p) {
      *p = *r->payload;
      p->body.data = malloc(p->body.len ? p->body.len : 1);
      if (p->body.data) {
        memcpy(p->body.data, r->payload->body.data, p->body.len);
        w->payload = p;
      } else {
        free(p);
      }
    }
  }
  pthread_mutex_unlock(&w->mu);
}

static void ev_on_done(mrpc_call *call, const mrpc_status *st, void *ctx) {
  ev_wait *w = ctx;
  (void)call;
  pthread_mutex_lock(&w->mu);
  w->done = true;
  w->code = st->code;
  snprintf(w->message, sizeof w->message, "%s", st->message ? st->message
                                                            : "");
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

static const mrpc_call_ops k_ev_ops = {.on_message = ev_on_message,
                                       .on_done = ev_on_done};

/* Waits up to secs for on_done. */
static bool ev_wait_for(ev_wait *w, int secs) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  ts.tv_sec += secs;
  pthread_mutex_lock(&w->mu);
  while (!w->done)
    if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT) break;
  bool done = w->done;
  pthread_mutex_unlock(&w->mu);
  return done;
}

/* The end of a unary call started by a __start stub that returned rc: the
 * outcome is in *w (initialized by the caller, given to the stub).  Returns
 * false on an API failure. */
static bool event_unary(ev_wait *w, int rc, mrpc_call *call) {
  if (rc != 0) return fail("event API: __start: %s", mrpc_strerror(rc));
  if (!ev_wait_for(w, CALL_TIMEOUT_MS / 1000 + 5)) {
    mrpc_call_cancel(call);
    if (!ev_wait_for(w, 5)) {
      /* w is still the call's: leaving is the only safe way out. */
      printf("FAIL %s: event API: on_done never came\n", g_case);
      fflush(stdout);
      _exit(1);
    }
  }
  mrpc_call_unref(call);
  return true;
}

/* ---- the test cases --------------------------------------------------- */

static bool empty_unary(mrpc_channel *ch) {
  Grpc__Testing__Empty req = GRPC__TESTING__EMPTY__INIT;
  Grpc__Testing__Empty *resp = NULL;
  mrpc_status st = {0};
  mrpc_call_opts o;
  bool ok = called(TS(empty_call__call)(ch, &req, std_opts(&o), &resp, &st)) &&
            expect_status("blocking", &st, MRPC_STATUS_OK, NULL);
  if (ok && !resp) ok = fail("blocking: no response");
  free_msg(resp);
  mrpc_status_free(&st);
  if (!ok) return false;

  ev_wait w;
  ev_init(&w);
  mrpc_call *call = NULL;
  int rc = TS(empty_call__start)(ch, &req, std_opts(&o), &k_ev_ops, &w,
                                 &call);
  ok = event_unary(&w, rc, call);
  if (ok) {
    mrpc_status est = {w.code, w.message, NULL, 0}; /* borrowed, not freed */
    ok = expect_status("event API", &est, MRPC_STATUS_OK, NULL);
  }
  if (ok && w.n_msgs != 1)
    ok = fail("event API: %d responses, want 1", w.n_msgs);
  ev_destroy(&w);
  return ok;
}

static bool large_unary(mrpc_channel *ch) {
  Grpc__Testing__Payload p = zero_payload(LARGE_REQ);
  Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
  req.response_size = LARGE_RESP;
  req.payload = &p;
  Grpc__Testing__SimpleResponse *resp = NULL;
  mrpc_status st = {0};
  mrpc_call_opts o;
  bool ok = called(TS(unary_call__call)(ch, &req, std_opts(&o), &resp, &st)) &&
            expect_status("blocking", &st, MRPC_STATUS_OK, NULL);
  if (ok && !resp) ok = fail("blocking: no response");
  if (ok) ok = check_body("blocking", resp->payload, LARGE_RESP);
  free_msg(resp);
  mrpc_status_free(&st);
  if (!ok) return false;

  ev_wait w;
  ev_init(&w);
  mrpc_call *call = NULL;
  int rc = TS(unary_call__start)(ch, &req, std_opts(&o), &k_ev_ops, &w,
                                 &call);
  ok = event_unary(&w, rc, call);
  if (ok) {
    mrpc_status est = {w.code, w.message, NULL, 0};
    ok = expect_status("event API", &est, MRPC_STATUS_OK, NULL);
  }
  if (ok && w.n_msgs != 1)
    ok = fail("event API: %d responses, want 1", w.n_msgs);
  if (ok) ok = check_body("event API", w.payload, LARGE_RESP);
  ev_destroy(&w);
  return ok;
}

static bool client_streaming(mrpc_channel *ch) {
  mrpc_call_opts o;
  mrpc_stream *s = NULL;
  if (!opened(TS(streaming_input_call__open)(ch, std_opts(&o), &s)))
    return false;
  for (int i = 0; i < 4; i++) {
    Grpc__Testing__Payload p = zero_payload((size_t)k_req_sizes[i]);
    Grpc__Testing__StreamingInputCallRequest req =
        GRPC__TESTING__STREAMING_INPUT_CALL_REQUEST__INIT;
    req.payload = &p;
    int rc = TS(streaming_input_call__stream_send_request)(s, &req);
    if (rc != 0) {
      fail("send %d: %s", i, mrpc_strerror(rc));
      return abort_stream(s);
    }
  }
  if (!close_send(s)) return abort_stream(s);
  Grpc__Testing__StreamingInputCallResponse *m = NULL;
  int rc = TS(streaming_input_call__stream_recv_response)(s, &m);
  if (rc != 1) {
    fail("no response: %s", rc == 0 ? "stream ended" : mrpc_strerror(rc));
    return abort_stream(s);
  }
  int32_t got = m->aggregated_payload_size;
  free_msg(m);
  if (got != 74922) {
    fail("aggregated_payload_size %d, want 74922", (int)got);
    return abort_stream(s);
  }
  if (!recv_end(s)) return abort_stream(s);
  return finish(s, "call", MRPC_STATUS_OK, NULL);
}

static bool server_streaming(mrpc_channel *ch) {
  Grpc__Testing__ResponseParameters rp[4], *rps[4];
  OutputRequest req = GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
  for (int i = 0; i < 4; i++) {
    grpc__testing__response_parameters__init(&rp[i]);
    rp[i].size = k_resp_sizes[i];
    rps[i] = &rp[i];
  }
  req.n_response_parameters = 4;
  req.response_parameters = rps;
  /* The stub sends the request and half-closes. */
  mrpc_call_opts o;
  mrpc_stream *s = NULL;
  if (!opened(TS(streaming_output_call__open)(ch, &req, std_opts(&o), &s)))
    return false;
  for (int i = 0; i < 4; i++)
    if (!recv_output(s, i, k_resp_sizes[i])) return abort_stream(s);
  if (!recv_end(s)) return abort_stream(s);
  return finish(s, "call", MRPC_STATUS_OK, NULL);
}

/* ---- compression (CompressedRequest / CompressedResponse) ------------- */

static Grpc__Testing__BoolValue bool_value(bool v) {
  Grpc__Testing__BoolValue b = GRPC__TESTING__BOOL_VALUE__INIT;
  b.value = v;
  return b;
}

/* The standard deadline, requests gzip-compressed (per call). */
static mrpc_call_opts *gzip_opts(mrpc_call_opts *o) {
  std_opts(o);
  o->compression = MRPC_CALL_COMPRESS(MRPC_COMPRESS_GZIP);
  return o;
}

/* Sends msg with the call's compression on or off for it alone; the call
 * may already have ended (a server that refuses a request may answer before
 * the client is done): that is left to the final status. */
static bool send_maybe_compressed(mrpc_stream *s, const ProtobufCMessage *msg,
                                  bool compressed) {
  mrpc_call_set_message_compression(mrpc_stream_call(s), compressed);
  int rc = mrpc_stream_send(s, msg);
  if (rc != 0 && rc != MRPC_ERR_CLOSED)
    return fail("send: %s", mrpc_strerror(rc));
  rc = mrpc_stream_close_send(s);
  if (rc != 0 && rc != MRPC_ERR_CLOSED)
    return fail("close_send: %s", mrpc_strerror(rc));
  return true;
}

/* A UnaryCall on a gzip call whose one request goes compressed or not.  The
 * generated __call / __open stubs send the request straight away, so the
 * method is opened generically to opt out before the send. */
static mrpc_stream *unary_gzip(mrpc_channel *ch,
                               const Grpc__Testing__SimpleRequest *req,
                               bool compressed) {
  mrpc_call_opts o;
  mrpc_stream *s = NULL;
  if (!opened(mrpc_channel_open_stream(
          ch, GRPC__TESTING__TEST_SERVICE__UNARY_CALL__METHOD, gzip_opts(&o),
          &s)))
    return NULL;
  if (!send_maybe_compressed(s, &req->base, compressed)) {
    abort_stream(s);
    return NULL;
  }
  return s;
}

/* Reads the one SimpleResponse of a unary stream: LARGE_RESP zero bytes,
 * compressed as want_compressed says (-1: either way), then the end and OK.
 * Frees s. */
static bool unary_result(mrpc_stream *s, const char *what,
                         int want_compressed) {
  Grpc__Testing__SimpleResponse *m = NULL;
  int rc = TS(unary_call__stream_recv_response)(s, &m);
  if (rc != 1) {
    fail("%s: no response: %s", what,
         rc == 0 ? "stream ended" : mrpc_strerror(rc));
    return abort_stream(s);
  }
  bool ok = check_body(what, m->payload, LARGE_RESP) &&
            check_compressed(what, mrpc_stream_last_compressed(s),
                             want_compressed);
  free_msg(m);
  if (!ok || !recv_end(s)) return abort_stream(s);
  return finish(s, what, MRPC_STATUS_OK, NULL);
}

/* The end of a feature probe (an uncompressed request that says
 * expect_compressed): no response, INVALID_ARGUMENT.  Frees s. */
static bool probe_refused(mrpc_stream *s) {
  const char *what = "probe (uncompressed, expect_compressed=true)";
  if (!drain(s)) {
    fail("%s was answered: the server does not check CompressedRequest",
         what);
    return abort_stream(s);
  }
  return finish(s, what, MRPC_STATUS_INVALID_ARGUMENT, NULL);
}

static bool client_compressed_unary(mrpc_channel *ch) {
  Grpc__Testing__Payload p = zero_payload(LARGE_REQ);
  Grpc__Testing__BoolValue yes = bool_value(true), no = bool_value(false);
  Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
  req.response_size = LARGE_RESP;
  req.payload = &p;

  /* 1. The feature probe: expect_compressed, yet sent uncompressed; the
   * server must refuse it with INVALID_ARGUMENT. */
  req.expect_compressed = &yes;
  mrpc_stream *s = unary_gzip(ch, &req, false);
  if (!s) return false;
  if (!probe_refused(s)) return false;

  /* 2. Compressed, expect_compressed: per-call compression through the
   * plain blocking stub. */
  Grpc__Testing__SimpleResponse *resp = NULL;
  mrpc_status st = {0};
  mrpc_call_opts o;
  bool ok = called(TS(unary_call__call)(ch, &req, gzip_opts(&o), &resp,
                                        &st)) &&
            expect_status("compressed request", &st, MRPC_STATUS_OK, NULL);
  if (ok && !resp) ok = fail("compressed request: no response");
  if (ok) ok = check_body("compressed request", resp->payload, LARGE_RESP);
  free_msg(resp);
  mrpc_status_free(&st);
  if (!ok) return false;

  /* 3. Uncompressed (opted out on a gzip call), !expect_compressed. */
  req.expect_compressed = &no;
  if (!(s = unary_gzip(ch, &req, false))) return false;
  return unary_result(s, "uncompressed request", -1);
}

static bool server_compressed_unary(mrpc_channel *ch) {
  Grpc__Testing__Payload p = zero_payload(LARGE_REQ);
  Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
  req.response_size = LARGE_RESP;
  req.payload = &p;
  for (int want = 1; want >= 0; want--) {
    Grpc__Testing__BoolValue rc_val = bool_value(want);
    req.response_compressed = &rc_val;
    char what[64];

    /* Blocking: the flag of the message mrpc_stream_recv returned. */
    snprintf(what, sizeof what, "blocking, response_compressed=%s",
             want ? "true" : "false");
    mrpc_call_opts o;
    mrpc_stream *s = NULL;
    if (!opened(TS(unary_call__open)(ch, &req, std_opts(&o), &s)) ||
        !unary_result(s, what, want))
      return false;

    /* Event-driven: mrpc_call_message_compressed in on_message. */
    snprintf(what, sizeof what, "event API, response_compressed=%s",
             want ? "true" : "false");
    ev_wait w;
    ev_init(&w);
    mrpc_call *call = NULL;
    int rc = TS(unary_call__start)(ch, &req, std_opts(&o), &k_ev_ops, &w,
                                   &call);
    bool ok = event_unary(&w, rc, call);
    if (ok) {
      mrpc_status est = {w.code, w.message, NULL, 0};
      ok = expect_status(what, &est, MRPC_STATUS_OK, NULL);
    }
    if (ok && w.n_msgs != 1)
      ok = fail("%s: %d responses, want 1", what, w.n_msgs);
    if (ok) ok = check_body(what, w.payload, LARGE_RESP);
    if (ok) ok = check_compressed(what, w.compressed, want);
    ev_destroy(&w);
    if (!ok) return false;
  }
  return true;
}

static bool client_compressed_streaming(mrpc_channel *ch) {
  Grpc__Testing__BoolValue yes = bool_value(true), no = bool_value(false);
  Grpc__Testing__Payload p = zero_payload(27182);
  Grpc__Testing__StreamingInputCallRequest req =
      GRPC__TESTING__STREAMING_INPUT_CALL_REQUEST__INIT;
  req.payload = &p;
  req.expect_compressed = &yes;
  mrpc_call_opts o;
  mrpc_stream *s = NULL;

  /* 1. The feature probe: expect_compressed, sent uncompressed (opted out
   * on a gzip call); the call must fail with INVALID_ARGUMENT. */
  if (!opened(TS(streaming_input_call__open)(ch, gzip_opts(&o), &s)))
    return false;
  if (!send_maybe_compressed(s, &req.base, false)) return abort_stream(s);
  if (!probe_refused(s)) return false;

  /* 2. One call: the compressed message, then the uncompressed one. */
  if (!opened(TS(streaming_input_call__open)(ch, gzip_opts(&o), &s)))
    return false;
  mrpc_call *call = mrpc_stream_call(s);
  mrpc_call_set_message_compression(call, 1);
  int rc = TS(streaming_input_call__stream_send_request)(s, &req);
  if (rc != 0) {
    fail("send 0 (compressed): %s", mrpc_strerror(rc));
    return abort_stream(s);
  }
  Grpc__Testing__Payload p2 = zero_payload(45904);
  req.payload = &p2;
  req.expect_compressed = &no;
  mrpc_call_set_message_compression(call, 0);
  rc = TS(streaming_input_call__stream_send_request)(s, &req);
  if (rc != 0) {
    fail("send 1 (uncompressed): %s", mrpc_strerror(rc));
    return abort_stream(s);
  }
  if (!close_send(s)) return abort_stream(s);
  Grpc__Testing__StreamingInputCallResponse *m = NULL;
  rc = TS(streaming_input_call__stream_recv_response)(s, &m);
  if (rc != 1) {
    fail("no response: %s", rc == 0 ? "stream ended" : mrpc_strerror(rc));
    return abort_stream(s);
  }
  int32_t got = m->aggregated_payload_size;
  free_msg(m);
  if (got != 73086) {
    fail("aggregated_payload_size %d, want 73086", (int)got);
    return abort_stream(s);
  }
  if (!recv_end(s)) return abort_stream(s);
  return finish(s, "call", MRPC_STATUS_OK, NULL);
}

static bool server_compressed_streaming(mrpc_channel *ch) {
  static const int32_t sizes[2] = {31415, 92653};
  Grpc__Testing__BoolValue flags[2] = {bool_value(true), bool_value(false)};
  Grpc__Testing__ResponseParameters rp[2], *rps[2];
  OutputRequest req = GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
  for (int i = 0; i < 2; i++) {
    grpc__testing__response_parameters__init(&rp[i]);
    rp[i].size = sizes[i];
    rp[i].compressed = &flags[i];
    rps[i] = &rp[i];
  }
  req.n_response_parameters = 2;
  req.response_parameters = rps;
  mrpc_call_opts o;
  mrpc_stream *s = NULL;
  if (!opened(TS(streaming_output_call__open)(ch, &req, std_opts(&o), &s)))
    return false;
  for (int i = 0; i < 2; i++)
    if (!recv_output_c(s, i, sizes[i], flags[i].value)) return abort_stream(s);
  if (!recv_end(s)) return abort_stream(s);
  return finish(s, "call", MRPC_STATUS_OK, NULL);
}

static mrpc_stream *open_full_duplex(mrpc_channel *ch,
                                     const mrpc_metadata *md,
                                     int64_t timeout_ms) {
  mrpc_call_opts o;
  mrpc_stream *s = NULL;
  if (!opened(TS(full_duplex_call__open)(ch, call_opts(&o, md, timeout_ms),
                                         &s)))
    return NULL;
  return s;
}

static bool ping_pong(mrpc_channel *ch) {
  mrpc_stream *s = open_full_duplex(ch, NULL, CALL_TIMEOUT_MS);
  if (!s) return false;
  for (int i = 0; i < 4; i++)
    if (!send_output_req(s, k_resp_sizes[i], (size_t)k_req_sizes[i]) ||
        !recv_output(s, i, k_resp_sizes[i]))
      return abort_stream(s);
  if (!close_send(s) || !recv_end(s)) return abort_stream(s);
  return finish(s, "call", MRPC_STATUS_OK, NULL);
}

static bool empty_stream(mrpc_channel *ch) {
  mrpc_stream *s = open_full_duplex(ch, NULL, CALL_TIMEOUT_MS);
  if (!s) return false;
  if (!close_send(s) || !recv_end(s)) return abort_stream(s);
  return finish(s, "call", MRPC_STATUS_OK, NULL);
}

static bool check_md(const char *what, const mrpc_metadata *md,
                     const char *key, const char *want, size_t want_len) {
  size_t len = 0;
  const uint8_t *v = mrpc_metadata_get(md, key, &len);
  if (!v) return fail("%s: no %s", what, key);
  if (len != want_len || memcmp(v, want, len) != 0)
    return fail("%s: %s has the wrong value (%zu bytes)", what, key, len);
  return true;
}

/* Finishes s and checks OK plus the echoed header and trailer.  The stream
 * dies in finish, so a reference keeps the call (and its metadata) for the
 * checks: the trailers are complete only once the call is over. */
static bool finish_echo(mrpc_stream *s, const char *what) {
  mrpc_call *call = mrpc_call_ref(mrpc_stream_call(s));
  mrpc_status st = {0};
  mrpc_stream_finish(s, &st);
  char w[64];
  snprintf(w, sizeof w, "%s: initial metadata", what);
  bool ok = expect_status(what, &st, MRPC_STATUS_OK, NULL) &&
            check_md(w, mrpc_call_metadata(call), ECHO_INITIAL,
                     ECHO_INITIAL_VALUE, strlen(ECHO_INITIAL_VALUE));
  snprintf(w, sizeof w, "%s: trailers", what);
  ok = ok && check_md(w, mrpc_call_trailers(call), ECHO_TRAILING,
                      ECHO_TRAILING_VALUE, 3);
  mrpc_status_free(&st);
  mrpc_call_unref(call);
  return ok;
}

static bool custom_metadata(mrpc_channel *ch) {
  mrpc_metadata *md = mrpc_metadata_new(NULL);
  if (!md) return fail("mrpc_metadata_new: out of memory");
  int rc = mrpc_metadata_add_str(md, ECHO_INITIAL, ECHO_INITIAL_VALUE);
  if (rc == 0)
    rc = mrpc_metadata_add(md, ECHO_TRAILING, ECHO_TRAILING_VALUE, 3);
  if (rc != 0) {
    mrpc_metadata_del(md);
    return fail("mrpc_metadata_add: %s", mrpc_strerror(rc));
  }
  bool ok = false;

  /* UnaryCall, through a stream: only a stream shows response metadata.
   * The __open stub of a unary method sends the request and half-closes. */
  Grpc__Testing__Payload p = zero_payload(LARGE_REQ);
  Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
  req.response_size = LARGE_RESP;
  req.payload = &p;
  mrpc_call_opts o;
  mrpc_stream *s = NULL;
  if (!opened(TS(unary_call__open)(ch, &req,
                                   call_opts(&o, md, CALL_TIMEOUT_MS), &s)))
    goto out;
  Grpc__Testing__SimpleResponse *m = NULL;
  if ((rc = TS(unary_call__stream_recv_response)(s, &m)) != 1) {
    fail("unary: no response: %s",
         rc == 0 ? "stream ended" : mrpc_strerror(rc));
    abort_stream(s);
    goto out;
  }
  ok = check_body("unary", m->payload, LARGE_RESP) && recv_end(s);
  free_msg(m);
  if (!ok) {
    abort_stream(s);
    goto out;
  }
  if (!(ok = finish_echo(s, "unary"))) goto out;

  /* FullDuplexCall. */
  ok = false;
  if (!(s = open_full_duplex(ch, md, CALL_TIMEOUT_MS))) goto out;
  if (!send_output_req(s, LARGE_RESP, LARGE_REQ) || !close_send(s) ||
      !recv_output(s, 0, LARGE_RESP) || !recv_end(s)) {
    abort_stream(s);
    goto out;
  }
  ok = finish_echo(s, "full duplex");
out:
  mrpc_metadata_del(md);
  return ok;
}

/* UnaryCall and FullDuplexCall asking for code 2 with msg (Echo Status). */
static bool echo_status(mrpc_channel *ch, const char *msg, bool duplex) {
  Grpc__Testing__EchoStatus es = GRPC__TESTING__ECHO_STATUS__INIT;
  es.code = MRPC_STATUS_UNKNOWN;
  es.message = (char *)msg;
  Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
  req.response_status = &es;
  Grpc__Testing__SimpleResponse *resp = NULL;
  mrpc_status st = {0};
  mrpc_call_opts o;
  bool ok = called(TS(unary_call__call)(ch, &req, std_opts(&o), &resp, &st)) &&
            expect_status("unary", &st, MRPC_STATUS_UNKNOWN, msg);
  free_msg(resp);
  mrpc_status_free(&st);
  if (!ok || !duplex) return ok;

  OutputRequest dreq = GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
  dreq.response_status = &es;
  mrpc_stream *s = open_full_duplex(ch, NULL, CALL_TIMEOUT_MS);
  if (!s) return false;
  int rc = TS(full_duplex_call__stream_send_request)(s, &dreq);
  if (rc != 0 && rc != MRPC_ERR_CLOSED) {
    fail("full duplex: send: %s", mrpc_strerror(rc));
    return abort_stream(s);
  }
  mrpc_stream_close_send(s); /* CLOSED is fine: the server may have ended */
  if (!drain(s)) return abort_stream(s);
  return finish(s, "full duplex", MRPC_STATUS_UNKNOWN, msg);
}

static bool status_code_and_message(mrpc_channel *ch) {
  return echo_status(ch, "test status message", true);
}

static bool special_status_message(mrpc_channel *ch) {
  return echo_status(ch,
                     "\t\ntest with whitespace\r\nand Unicode BMP \u263A and "
                     "non-BMP \U0001F608\t\n",
                     false);
}

/* A unary stub taking and returning Empty. */
typedef int (*empty_stub)(mrpc_channel *ch, const Grpc__Testing__Empty *req,
                          const mrpc_call_opts *opts,
                          Grpc__Testing__Empty **resp, mrpc_status *st);

static bool expect_unimplemented(mrpc_channel *ch, empty_stub stub) {
  Grpc__Testing__Empty req = GRPC__TESTING__EMPTY__INIT;
  Grpc__Testing__Empty *resp = NULL;
  mrpc_status st = {0};
  mrpc_call_opts o;
  bool ok = called(stub(ch, &req, std_opts(&o), &resp, &st)) &&
            expect_status("call", &st, MRPC_STATUS_UNIMPLEMENTED, NULL);
  free_msg(resp);
  mrpc_status_free(&st);
  return ok;
}

static bool unimplemented_method(mrpc_channel *ch) {
  return expect_unimplemented(ch, TS(unimplemented_call__call));
}

static bool unimplemented_service(mrpc_channel *ch) {
  return expect_unimplemented(
      ch, grpc__testing__unimplemented_service__unimplemented_call__call);
}

static bool cancel_after_begin(mrpc_channel *ch) {
  mrpc_call_opts o;
  mrpc_stream *s = NULL;
  if (!opened(TS(streaming_input_call__open)(ch, std_opts(&o), &s)))
    return false;
  int rc = mrpc_call_cancel(mrpc_stream_call(s));
  if (rc != 0) {
    fail("cancel: %s", mrpc_strerror(rc));
    return abort_stream(s);
  }
  return finish(s, "call", MRPC_STATUS_CANCELLED, NULL);
}

static bool cancel_after_first_response(mrpc_channel *ch) {
  mrpc_stream *s = open_full_duplex(ch, NULL, CALL_TIMEOUT_MS);
  if (!s) return false;
  if (!send_output_req(s, 31415, 27182) || !recv_output(s, 0, 31415))
    return abort_stream(s);
  int rc = mrpc_call_cancel(mrpc_stream_call(s));
  if (rc != 0) {
    fail("cancel: %s", mrpc_strerror(rc));
    return abort_stream(s);
  }
  return finish(s, "call", MRPC_STATUS_CANCELLED, NULL);
}

static bool timeout_on_sleeping_server(mrpc_channel *ch) {
  mrpc_stream *s = open_full_duplex(ch, NULL, 1);
  if (!s) return false;
  /* May fail: the deadline may already be past.  That is no error here. */
  if (!send_output_req(s, -1, 27182)) g_why[0] = '\0';
  if (!drain(s)) return abort_stream(s);
  return finish(s, "call", MRPC_STATUS_DEADLINE_EXCEEDED, NULL);
}

/* ---- main ------------------------------------------------------------- */

typedef struct test_case {
  const char *name;
  bool (*run)(mrpc_channel *ch);
} test_case;

/* In the order "all" runs them. */
static const test_case k_cases[] = {
  {"empty_unary", empty_unary},
  {"large_unary", large_unary},
  {"client_compressed_unary", client_compressed_unary},
  {"server_compressed_unary", server_compressed_unary},
  {"client_streaming", client_streaming},
  {"client_compressed_streaming", client_compressed_streaming},
  {"server_streaming", server_streaming},
  {"server_compressed_streaming", server_compressed_streaming},
  {"ping_pong", ping_pong},
  {"empty_stream", empty_stream},
  {"custom_metadata", custom_metadata},
  {"status_code_and_message", status_code_and_message},
  {"special_status_message", special_status_message},
  {"unimplemented_method", unimplemented_method},
  {"unimplemented_service", unimplemented_service},
  {"cancel_after_begin", cancel_after_begin},
  {"cancel_after_first_response", cancel_after_first_response},
  {"timeout_on_sleeping_server", timeout_on_sleeping_server},
};
#define N_CASES (sizeof k_cases / sizeof k_cases[0])

static const test_case *find_case(const char *name) {
  for (size_t i = 0; i < N_CASES; i++)
    if (strcmp(k_cases[i].name, name) == 0) return &k_cases[i];
  return NULL;
}

/* "--name=value" or "--name value"; advances *i for the latter. */
static const char *flag_value(int argc, char **argv, int *i,
                              const char *name) {
  const char *a = argv[*i];
  size_t n = strlen(name);
  if (strncmp(a, "--", 2) != 0 || strncmp(a + 2, name, n) != 0) return NULL;
  if (a[2 + n] == '=') return a + 3 + n;
  if (a[2 + n] == '\0' && *i + 1 < argc) return argv[++*i];
  return NULL;
}

static int usage(const char *bad) {
  fprintf(stderr,
          "interop_client: bad argument '%s'\n"
          "usage: interop_client --server_host=H --server_port=N"
          " --test_case=NAME[,NAME...]|all [--use_tls=false|true]"
          " [--use_test_ca=true --test_ca_file=PEM]"
          " [--server_host_override=AUTHORITY]\n",
          bad);
  return 2;
}

int main(int argc, char **argv) {
  const char *host = "localhost", *port = NULL, *cases = NULL,
             *authority = NULL, *ca_file = NULL;
  bool use_tls = false, use_test_ca = false;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i], *v;
    if ((v = flag_value(argc, argv, &i, "server_host")))
      host = v;
    else if ((v = flag_value(argc, argv, &i, "server_port")))
      port = v;
    else if ((v = flag_value(argc, argv, &i, "test_case")))
      cases = v;
    else if ((v = flag_value(argc, argv, &i, "server_host_override")))
      authority = v;
    else if ((v = flag_value(argc, argv, &i, "use_tls"))) {
      if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0) return usage(arg);
      use_tls = strcmp(v, "true") == 0;
    } else if ((v = flag_value(argc, argv, &i, "use_test_ca"))) {
      if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0) return usage(arg);
      use_test_ca = strcmp(v, "true") == 0;
    } else if ((v = flag_value(argc, argv, &i, "test_ca_file"))) {
      ca_file = v;
    } else {
      return usage(arg);
    }
  }
  if (!port || !*port) return usage("--server_port is required");
  if (!cases || !*cases) return usage("--test_case is required");
  if (use_tls && use_test_ca && !ca_file)
    return usage("--use_test_ca=true needs --test_ca_file (the suite makes "
                 "its test CA with openssl)");

  /* Resolve the list first: a typo must not run half the cases. */
  const test_case *todo[64];
  size_t n = 0;
  char *list = strdup(cases), *save = NULL;
  if (!list) return 1;
  for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    const test_case *tc = find_case(t);
    bool all = strcmp(t, "all") == 0;
    if (!tc && !all) {
      int rc = usage(t); /* t points into list */
      free(list);
      return rc;
    }
    for (size_t i = 0; i < (all ? N_CASES : 1); i++) {
      if (n == sizeof todo / sizeof todo[0]) {
        free(list);
        return usage("too many test cases");
      }
      todo[n++] = all ? &k_cases[i] : tc;
    }
  }
  free(list);

  signal(SIGPIPE, SIG_IGN);
  char target[512];
  snprintf(target, sizeof target, strchr(host, ':') ? "[%s]:%s" : "%s:%s",
           host, port);
  mrpc_channel_opts opts;
  mrpc_channel_opts_init(&opts);
  if (use_tls) {
    mrpc_tls_client_opts to;
    mrpc_tls_client_opts_init(&to);
    to.ca_file = use_test_ca ? ca_file : NULL; /* else the system store */
    to.server_host_override = authority;
    char err[256];
    if (mrpc_tls_client_creds_new(&to, &opts.tls, err, sizeof err) != 0) {
      fprintf(stderr, "interop_client: TLS: %s\n", err);
      return 1;
    }
  } else {
    opts.authority = authority;
  }
  mrpc_channel *ch = NULL;
  int rc = mrpc_channel_new(target, &opts, &ch);
  mrpc_tls_creds_unref(opts.tls); /* the channel holds its own reference */
  if (rc != 0) {
    fprintf(stderr, "interop_client: channel to %s: %s\n", target,
            mrpc_strerror(rc));
    return 1;
  }

  int failed = 0;
  for (size_t i = 0; i < n; i++) {
    g_case = todo[i]->name;
    g_why[0] = '\0';
    if (todo[i]->run(ch)) {
      printf("PASS %s\n", g_case);
    } else {
      printf("FAIL %s: %s\n", g_case, g_why[0] ? g_why : "unknown reason");
      failed++;
    }
    fflush(stdout);
  }
  mrpc_channel_del(ch);
  return failed ? 1 : 0;
}
