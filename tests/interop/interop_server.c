/* interop_server: grpc.testing.TestService as the gRPC interop test
 * descriptions (grpc/grpc doc/interop-test-descriptions.md) define the
 * server, so that any gRPC interop client can test libminirpc.
 *
 *   interop_server --port=N [--host=ADDR] [--use_tls=true --tls_cert_file=F --tls_key_file=F] [--handlers=event|blocking]
 *                  [--max_recv_message=BYTES] [--LIMIT=N ...]
 *
 * --host binds one address (e.g. 127.0.0.1) instead of all interfaces;
 * --port=0 takes a free port, printed as "listening on PORT".
 * --LIMIT=N sets the mrpc_server_opts field LIMIT (the keepalive and
 * connection limits of docs/security.md, "Limits"; tests/h2/test_limits.py
 * sets them small); --rlimit_nofile_headroom=N lowers RLIMIT_NOFILE, once
 * the server runs, to the descriptors then open plus N (to provoke EMFILE).
 * The service comes from protoc-gen-minirpc (test.mrpc.h): one handler
 * table, both handler styles.  By default EmptyCall, UnaryCall and
 * FullDuplexCall are event-driven and the other methods blocking;
 * --handlers=blocking serves every method with blocking handlers.
 * UnimplementedCall has no handler in the table (-> UNIMPLEMENTED) and
 * UnimplementedService is not registered at all, so both ways of answering
 * UNIMPLEMENTED are covered.  CacheableUnaryCall needs a caching proxy and is
 * left unimplemented too.
 * SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include <minirpc/minirpc.h>

#include "test.mrpc.h"

#define ECHO_INITIAL "x-grpc-test-echo-initial"
#define ECHO_TRAILING "x-grpc-test-echo-trailing-bin"

/* The generated names, shortened. */
#define TS(name) grpc__testing__test_service__##name
typedef Grpc__Testing__StreamingOutputCallRequest OutputRequest;

/* ---- shared by both handler styles ------------------------------------ */

static mrpc_status_code clamp_code(int32_t code) {
  return code >= 0 && code < MRPC_STATUS_CODE_COUNT ? (mrpc_status_code)code
                                                    : MRPC_STATUS_UNKNOWN;
}

/* CompressedRequest: a request with expect_compressed set must have come
 * compressed on the wire (its message flag; compressed is
 * mrpc_call_message_compressed / mrpc_stream_last_compressed), else the
 * call fails with INVALID_ARGUMENT. */
static bool compression_unmet(const Grpc__Testing__BoolValue *expect,
                              bool compressed) {
  return expect && expect->value && !compressed;
}

/* CompressedResponse: whether a response was asked to go compressed
 * (response_compressed, ResponseParameters.compressed); unset = no. */
static bool wants_compressed(const Grpc__Testing__BoolValue *b) {
  return b && b->value;
}

/* Before a call's first response: gzip for the call when any of its
 * responses is to be compressed (the algorithm goes out with the response
 * headers, so it can not be chosen later; each message then opts in or out
 * with response_compression).  Ignored when the client does not accept
 * gzip: the responses then go uncompressed. */
static void call_compression(mrpc_call *call, bool wanted) {
  if (wanted) mrpc_call_set_compression(call, MRPC_COMPRESS_GZIP);
}

/* Right before each response (on the thread that sends it): compressed or
 * not.  Only effective once call_compression chose gzip. */
static void response_compression(mrpc_call *call, bool compressed) {
  mrpc_call_set_message_compression(call, compressed);
}

static bool any_compressed(const OutputRequest *r) {
  for (size_t i = 0; i < r->n_response_parameters; i++)
    if (wants_compressed(r->response_parameters[i]->compressed)) return true;
  return false;
}

/* What a request asks for: OK (and *why NULL) to answer normally, else the
 * status the call must end with (Echo Status, or INVALID_ARGUMENT for a
 * request we can not serve).  compressed: the request came compressed.
 * *why is borrowed from the request or static. */
static mrpc_status_code check_simple(const Grpc__Testing__SimpleRequest *r,
                                     bool compressed, const char **why) {
  if (r->response_status && r->response_status->code != 0) {
    *why = r->response_status->message;
    return clamp_code(r->response_status->code);
  }
  *why = NULL;
  if (r->response_type != GRPC__TESTING__PAYLOAD_TYPE__COMPRESSABLE ||
      r->response_size < 0)
    *why = "invalid request";
  else if (compression_unmet(r->expect_compressed, compressed))
    *why = "expected a compressed request (expect_compressed), got an "
           "uncompressed one";
  return *why ? MRPC_STATUS_INVALID_ARGUMENT : MRPC_STATUS_OK;
}

static mrpc_status_code check_output(
    const Grpc__Testing__StreamingOutputCallRequest *r, const char **why) {
  if (r->response_status && r->response_status->code != 0) {
    *why = r->response_status->message;
    return clamp_code(r->response_status->code);
  }
  *why = NULL;
  if (r->response_type != GRPC__TESTING__PAYLOAD_TYPE__COMPRESSABLE)
    *why = "invalid request";
  for (size_t i = 0; i < r->n_response_parameters; i++)
    if (r->response_parameters[i]->size < 0 ||
        r->response_parameters[i]->interval_us < 0)
      *why = "invalid request";
  return *why ? MRPC_STATUS_INVALID_ARGUMENT : MRPC_STATUS_OK;
}

/* The status to end with when sending failed (on CLOSED it is moot). */
static mrpc_status_code send_fail_code(int err) {
  return err == MRPC_ERR_TOO_LARGE || err == MRPC_ERR_NOMEM
             ? MRPC_STATUS_RESOURCE_EXHAUSTED
             : MRPC_STATUS_INTERNAL;
}

/* A payload of size zero bytes in *p; *body must be freed. */
static int zero_payload(Grpc__Testing__Payload *p, uint8_t **body,
                        int32_t size) {
  grpc__testing__payload__init(p);
  *body = calloc(size > 0 ? (size_t)size : 1, 1);
  if (!*body) return MRPC_ERR_NOMEM;
  p->body.data = *body;
  p->body.len = size > 0 ? (size_t)size : 0;
  return 0;
}

/* Sends a SimpleResponse whose payload is size zero bytes: through call
 * (event style) or s (blocking style). */
static int send_simple(mrpc_call *call, mrpc_stream *s, int32_t size) {
  Grpc__Testing__SimpleResponse resp = GRPC__TESTING__SIMPLE_RESPONSE__INIT;
  Grpc__Testing__Payload p;
  uint8_t *body;
  int rc = zero_payload(&p, &body, size);
  if (rc != 0) return rc;
  resp.payload = &p;
  rc = call ? TS(unary_call__send_response)(call, &resp)
            : TS(unary_call__stream_send_response)(s, &resp);
  free(body);
  return rc;
}

/* The same with a StreamingOutputCallResponse (StreamingOutputCall,
 * FullDuplexCall and HalfDuplexCall answer with it). */
static int send_output(mrpc_call *call, mrpc_stream *s, int32_t size) {
  Grpc__Testing__StreamingOutputCallResponse resp =
      GRPC__TESTING__STREAMING_OUTPUT_CALL_RESPONSE__INIT;
  Grpc__Testing__Payload p;
  uint8_t *body;
  int rc = zero_payload(&p, &body, size);
  if (rc != 0) return rc;
  resp.payload = &p;
  rc = call ? TS(full_duplex_call__send_response)(call, &resp)
            : TS(full_duplex_call__stream_send_response)(s, &resp);
  free(body);
  return rc;
}

/* Echo Metadata: the initial key comes back as a response header, the
 * trailing one as a trailer, both with the value received. */
static void echo_metadata(mrpc_call *call) {
  const mrpc_metadata *md = mrpc_call_metadata(call);
  for (size_t i = 0; i < mrpc_metadata_count(md); i++) {
    const char *key;
    const uint8_t *val;
    size_t len;
    if (mrpc_metadata_at(md, i, &key, &val, &len) != 0) break;
    if (strcmp(key, ECHO_INITIAL) == 0)
      mrpc_call_add_header(call, key, val, len);
    else if (strcmp(key, ECHO_TRAILING) == 0)
      mrpc_call_add_trailer(call, key, val, len);
  }
}

/* ---- event-driven handlers: EmptyCall, UnaryCall, FullDuplexCall ------ */

/* Per-call state.  Everything runs on the call's I/O thread, so no lock.
 * Responses are queued (payload size, compressed or not) and pumped out;
 * MRPC_ERR_AGAIN
 * parks the queue until on_writable.  A call ends once the client has
 * half-closed and the queue is empty, or at once when the request says so
 * (Echo Status, bad request) or sending fails.  Unary calls too wait for the
 * half-close, so that a second request message still ends the call with
 * UNIMPLEMENTED (the library enforces that; an early status would hide
 * it). */
typedef struct ev_resp {
  int32_t size;    /* payload: that many zero bytes */
  bool compressed; /* CompressedResponse */
} ev_resp;

typedef struct ev_call {
  mrpc_call *call;
  /* sends one response with a payload of that many zero bytes */
  int (*send)(mrpc_call *call, mrpc_stream *s, int32_t size);
  ev_resp *resps; /* the responses not yet sent */
  size_t head, n, cap;
  bool sent;        /* a response went out: the algorithm is fixed */
  bool half_closed; /* the client sent everything */
  bool ending;      /* end with code/message once the queue drains */
  bool finished;    /* mrpc_call_finish was called */
  bool done;        /* on_done ran: free once no pump is running */
  int busy;         /* > 0 inside ev_pump (library calls may re-enter) */
  mrpc_status_code code;
  char *message;
} ev_call;

static void ev_free(ev_call *ev) {
  free(ev->resps);
  free(ev->message);
  free(ev);
}

/* Ends the call with code once every queued response is out; the first
 * reason wins and later requests are ignored (Echo Status). */
static void ev_end(ev_call *ev, mrpc_status_code code, const char *message) {
  if (ev->ending) return;
  ev->ending = true;
  ev->code = code;
  ev->message = message ? strdup(message) : NULL;
}

static void ev_push(ev_call *ev, int32_t size, bool compressed) {
  if (ev->n == ev->cap) {
    size_t cap = ev->cap ? 2 * ev->cap : 4;
    ev_resp *p = realloc(ev->resps, cap * sizeof *p);
    if (!p) {
      ev_end(ev, MRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
      return;
    }
    ev->resps = p;
    ev->cap = cap;
  }
  ev->resps[ev->n++] = (ev_resp){size, compressed};
}

/* Sends what is queued, then finishes when the call is due to end.  A
 * library call made here may run on_done at once, hence busy/done. */
static void ev_pump(ev_call *ev) {
  ev->busy++;
  while (!ev->done && !ev->finished && ev->head < ev->n) {
    response_compression(ev->call, ev->resps[ev->head].compressed);
    int rc = ev->send(ev->call, NULL, ev->resps[ev->head].size);
    if (rc == MRPC_ERR_AGAIN) goto out; /* on_writable resumes */
    if (rc != 0) {
      ev->finished = true;
      mrpc_call_finish(ev->call, send_fail_code(rc), mrpc_strerror(rc), NULL,
                       0);
      goto out;
    }
    ev->sent = true;
    ev->head++;
  }
  if (ev->head == ev->n) ev->head = ev->n = 0; /* reuse the array */
  if (!ev->done && !ev->finished && ev->n == 0 &&
      (ev->ending || ev->half_closed)) {
    ev->finished = true;
    mrpc_call_finish(ev->call, ev->code, ev->message, NULL, 0);
  }
out:
  if (--ev->busy == 0 && ev->done) ev_free(ev);
}

/* FullDuplexCall: each request is answered as it arrives.  interval_us is
 * not observed here: an event handler must not sleep on the I/O thread and
 * the library offers no timer.  --handlers=blocking observes it.  msg is
 * borrowed: everything needed is copied into ev before return. */
static void ev_on_message(mrpc_call *call, const ProtobufCMessage *msg,
                          void *ctx) {
  ev_call *ev = ctx;
  (void)call;
  if (ev->ending || ev->finished) return;
  const OutputRequest *r = (const OutputRequest *)msg;
  const char *why = NULL;
  mrpc_status_code code = check_output(r, &why);
  /* A later request can not turn compression on once responses are out. */
  if (code == MRPC_STATUS_OK && !ev->sent)
    call_compression(ev->call, any_compressed(r));
  for (size_t i = 0; code == MRPC_STATUS_OK && i < r->n_response_parameters;
       i++)
    ev_push(ev, r->response_parameters[i]->size,
            wants_compressed(r->response_parameters[i]->compressed));
  if (code != MRPC_STATUS_OK) ev_end(ev, code, why);
  ev_pump(ev);
}

static void ev_on_half_close(mrpc_call *call, void *ctx) {
  ev_call *ev = ctx;
  (void)call;
  ev->half_closed = true;
  ev_pump(ev);
}

static void ev_on_writable(mrpc_call *call, void *ctx) {
  (void)call;
  ev_pump(ctx);
}

static void ev_on_done(mrpc_call *call, const mrpc_status *st, void *ctx) {
  ev_call *ev = ctx;
  (void)call;
  (void)st;
  ev->done = true;
  if (ev->busy == 0) ev_free(ev);
}

/* Takes the call over (its own callbacks, the state above).  NULL when that
 * failed: the call is then finished. */
static ev_call *ev_start(mrpc_call *call,
                         int (*send)(mrpc_call *, mrpc_stream *, int32_t)) {
  static const mrpc_call_ops ops = {.on_message = ev_on_message,
                                    .on_half_close = ev_on_half_close,
                                    .on_writable = ev_on_writable,
                                    .on_done = ev_on_done};
  echo_metadata(call);
  ev_call *ev = calloc(1, sizeof *ev);
  if (!ev) {
    mrpc_call_finish(call, MRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory",
                     NULL, 0);
    return NULL;
  }
  ev->call = call;
  ev->send = send;
  if (mrpc_call_set_ops(call, &ops, ev) != 0) {
    free(ev);
    mrpc_call_finish(call, MRPC_STATUS_INTERNAL, "set_ops failed", NULL, 0);
    return NULL;
  }
  return ev;
}

static int send_empty(mrpc_call *call, mrpc_stream *s, int32_t size) {
  Grpc__Testing__Empty resp = GRPC__TESTING__EMPTY__INIT;
  (void)size;
  return call ? TS(empty_call__send_response)(call, &resp)
              : TS(empty_call__stream_send_response)(s, &resp);
}

/* EmptyCall: the generated table calls it with the request in. */
static void ev_empty_call(mrpc_call *call, const Grpc__Testing__Empty *req,
                          void *user) {
  (void)req;
  (void)user;
  ev_call *ev = ev_start(call, send_empty);
  if (!ev) return;
  ev_push(ev, 0, false);
  ev_pump(ev);
}

static void ev_unary_call(mrpc_call *call,
                          const Grpc__Testing__SimpleRequest *req,
                          void *user) {
  (void)user;
  /* Still inside the request's on_message: its compressed flag is readable. */
  bool req_compressed = mrpc_call_message_compressed(call);
  ev_call *ev = ev_start(call, send_simple);
  if (!ev) return;
  const char *why = NULL;
  mrpc_status_code code = check_simple(req, req_compressed, &why);
  bool compressed = wants_compressed(req->response_compressed);
  if (code == MRPC_STATUS_OK) {
    call_compression(call, compressed);
    ev_push(ev, req->response_size, compressed);
  } else {
    ev_end(ev, code, why);
  }
  ev_pump(ev);
}

/* FullDuplexCall: called at the start; requests come to ev_on_message. */
static void ev_full_duplex_call(mrpc_call *call, void *user) {
  (void)user;
  ev_start(call, send_output);
}

/* ---- blocking handlers ------------------------------------------------ */

static void sleep_us(int32_t us) {
  struct timespec ts = {us / 1000000, (long)(us % 1000000) * 1000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* Ends a one-response call: OK, or what sending failed with. */
static void blk_status_after_send(mrpc_stream *s, int rc) {
  if (rc != 0)
    mrpc_stream_set_status(s, send_fail_code(rc), mrpc_strerror(rc), NULL, 0);
  else
    mrpc_stream_set_status(s, MRPC_STATUS_OK, NULL, NULL, 0);
}

/* EmptyCall and UnaryCall (--handlers=blocking): the generated table hands
 * over the request and frees it after return. */
static void blk_empty_call(mrpc_stream *s, const Grpc__Testing__Empty *req,
                           void *user) {
  (void)req;
  (void)user;
  echo_metadata(mrpc_stream_call(s));
  blk_status_after_send(s, send_empty(NULL, s, 0));
}

static void blk_unary_call(mrpc_stream *s,
                           const Grpc__Testing__SimpleRequest *req,
                           void *user) {
  (void)user;
  mrpc_call *call = mrpc_stream_call(s);
  echo_metadata(call);
  const char *why = NULL;
  /* The generated code received the request just before calling us. */
  mrpc_status_code code =
      check_simple(req, mrpc_stream_last_compressed(s), &why);
  if (code != MRPC_STATUS_OK) {
    mrpc_stream_set_status(s, code, why, NULL, 0); /* copies why */
    return;
  }
  bool compressed = wants_compressed(req->response_compressed);
  call_compression(call, compressed);
  response_compression(call, compressed);
  blk_status_after_send(s, send_simple(NULL, s, req->response_size));
}

/* Answers one StreamingOutputCallRequest, sleeping interval_us before each
 * response, each compressed or not as its parameters say.  *sent: a
 * response of this call went out already (then the call's algorithm is
 * fixed; it is only chosen before, here on the sending thread).  Returns
 * false when the call must end now (status set). */
static bool serve_output(mrpc_stream *s, const OutputRequest *r, bool *sent) {
  mrpc_call *call = mrpc_stream_call(s);
  const char *why = NULL;
  mrpc_status_code code = check_output(r, &why);
  if (code == MRPC_STATUS_OK && !*sent)
    call_compression(call, any_compressed(r));
  for (size_t i = 0; code == MRPC_STATUS_OK && i < r->n_response_parameters;
       i++) {
    const Grpc__Testing__ResponseParameters *p = r->response_parameters[i];
    if (p->interval_us > 0) sleep_us(p->interval_us);
    response_compression(call, wants_compressed(p->compressed));
    int rc = send_output(NULL, s, p->size);
    if (rc != 0) {
      code = send_fail_code(rc);
      why = mrpc_strerror(rc);
    }
    *sent = true;
  }
  if (code != MRPC_STATUS_OK) mrpc_stream_set_status(s, code, why, NULL, 0);
  return code == MRPC_STATUS_OK;
}

static void blk_streaming_output_call(mrpc_stream *s, const OutputRequest *req,
                                      void *user) {
  (void)user;
  echo_metadata(mrpc_stream_call(s));
  bool sent = false;
  if (serve_output(s, req, &sent))
    mrpc_stream_set_status(s, MRPC_STATUS_OK, NULL, NULL, 0);
}

static void blk_streaming_input_call(mrpc_stream *s, void *user) {
  (void)user;
  echo_metadata(mrpc_stream_call(s));
  size_t total = 0;
  Grpc__Testing__StreamingInputCallRequest *r;
  int rc;
  while ((rc = TS(streaming_input_call__stream_recv_request)(s, &r)) == 1) {
    if (r->payload) total += r->payload->body.len;
    bool unmet = compression_unmet(r->expect_compressed,
                                   mrpc_stream_last_compressed(s));
    protobuf_c_message_free_unpacked(&r->base, NULL);
    if (unmet) { /* CompressedRequest: fail at once, as gRPC's servers do */
      mrpc_stream_set_status(s, MRPC_STATUS_INVALID_ARGUMENT,
                             "expected a compressed request "
                             "(expect_compressed), got an uncompressed one",
                             NULL, 0);
      return;
    }
  }
  if (rc < 0) return; /* the call is over */
  Grpc__Testing__StreamingInputCallResponse resp =
      GRPC__TESTING__STREAMING_INPUT_CALL_RESPONSE__INIT;
  resp.aggregated_payload_size = (int32_t)total;
  blk_status_after_send(
      s, TS(streaming_input_call__stream_send_response)(s, &resp));
}

/* FullDuplexCall (--handlers=blocking): each request answered on arrival. */
static void blk_full_duplex_call(mrpc_stream *s, void *user) {
  (void)user;
  echo_metadata(mrpc_stream_call(s));
  bool sent = false;
  for (;;) {
    OutputRequest *req;
    int rc = TS(full_duplex_call__stream_recv_request)(s, &req);
    if (rc < 0) return;
    if (rc == 0) break;
    bool go_on = serve_output(s, req, &sent);
    protobuf_c_message_free_unpacked(&req->base, NULL);
    if (!go_on) return;
  }
  mrpc_stream_set_status(s, MRPC_STATUS_OK, NULL, NULL, 0);
}

/* HalfDuplexCall: every request is collected, answers come after the
 * client half-closes. */
static void blk_half_duplex_call(mrpc_stream *s, void *user) {
  (void)user;
  echo_metadata(mrpc_stream_call(s));
  OutputRequest **reqs = NULL;
  size_t n = 0, cap = 0;
  int rc;
  for (;;) {
    if (n == cap) {
      cap = cap ? 2 * cap : 8;
      OutputRequest **p = realloc(reqs, cap * sizeof *p);
      if (!p) {
        mrpc_stream_set_status(s, MRPC_STATUS_RESOURCE_EXHAUSTED,
                               "out of memory", NULL, 0);
        rc = -1;
        break;
      }
      reqs = p;
    }
    if ((rc = TS(half_duplex_call__stream_recv_request)(s, &reqs[n])) != 1)
      break;
    n++;
  }
  bool ok = rc == 0, sent = false;
  for (size_t i = 0; ok && i < n; i++) ok = serve_output(s, reqs[i], &sent);
  if (ok) mrpc_stream_set_status(s, MRPC_STATUS_OK, NULL, NULL, 0);
  for (size_t i = 0; i < n; i++)
    protobuf_c_message_free_unpacked(&reqs[i]->base, NULL);
  free(reqs);
}

/* ---- main ------------------------------------------------------------- */

static int g_sig_pipe[2] = {-1, -1};

/* Async-signal-safe: only wakes main through the pipe. */
static void on_signal(int sig) {
  (void)sig;
  int saved = errno;
  char c = 1;
  if (write(g_sig_pipe[1], &c, 1) < 0) {
  }
  errno = saved;
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

/* Numeric flags named after their mrpc_server_opts field (0 = default). */
static const char *const k_limits[] = {
    "keepalive_min_time_ms",  "keepalive_permit_without_calls",
    "max_ping_strikes",       "max_connection_idle_ms",
    "max_connection_age_ms",  "max_connection_age_grace_ms",
    "preface_timeout_ms",     "header_timeout_ms",
    "max_connections",        "max_reset_streams",
    "max_empty_frames",       "max_unknown_frames",
    "rlimit_nofile_headroom", "max_settings_frames",
    "max_priority_frames",    "max_window_updates_per_data_frame",
    "keepalive_time_ms",      "keepalive_timeout_ms"};
#define N_LIMITS (sizeof k_limits / sizeof *k_limits)

/* Lowers RLIMIT_NOFILE to the descriptors open now plus headroom. */
static void lower_nofile(long long headroom) {
  DIR *d = opendir("/proc/self/fd");
  long long open_fds = -1; /* the DIR's own descriptor is not counted */
  if (!d) return;
  while (readdir(d))
    open_fds++;
  closedir(d);
  open_fds -= 2; /* "." and ".." */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  rl.rlim_cur = (rlim_t)(open_fds + headroom);
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) perror("setrlimit");
}

static int usage(const char *bad) {
  fprintf(stderr,
          "interop_server: bad argument '%s'\n"
          "usage: interop_server --port=N [--host=ADDR]"
          " [--use_tls=false|true"
          " --tls_cert_file=PEM --tls_key_file=PEM]"
          " [--handlers=event|blocking] [--max_recv_message=BYTES]"
          " [--LIMIT=N ...]\n",
          bad);
  return 2;
}

int main(int argc, char **argv) {
  long port = -1;
  bool blocking = false, use_tls = false;
  const char *tls_cert = NULL, *tls_key = NULL, *host = "";
  size_t max_recv = 0;
  long long lim[N_LIMITS] = {0};
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i], *v;
    char *end;
    if ((v = flag_value(argc, argv, &i, "port"))) {
      port = strtol(v, &end, 10);
      if (!*v || *end || port < 0 || port > 65535) return usage(arg);
    } else if ((v = flag_value(argc, argv, &i, "host"))) {
      host = v;
    } else if ((v = flag_value(argc, argv, &i, "use_tls"))) {
      if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0) return usage(arg);
      use_tls = strcmp(v, "true") == 0;
    } else if ((v = flag_value(argc, argv, &i, "tls_cert_file"))) {
      tls_cert = v;
    } else if ((v = flag_value(argc, argv, &i, "tls_key_file"))) {
      tls_key = v;
    } else if ((v = flag_value(argc, argv, &i, "handlers"))) {
      if (strcmp(v, "blocking") == 0)
        blocking = true;
      else if (strcmp(v, "event") != 0)
        return usage(arg);
    } else if ((v = flag_value(argc, argv, &i, "max_recv_message"))) {
      unsigned long long b = strtoull(v, &end, 10);
      if (!*v || *end || *v == '-') return usage(arg);
      max_recv = (size_t)b;
    } else {
      size_t k = 0;
      while (k < N_LIMITS && !(v = flag_value(argc, argv, &i, k_limits[k])))
        k++;
      if (k == N_LIMITS) return usage(arg);
      lim[k] = strtoll(v, &end, 10);
      if (!*v || *end) return usage(arg);
    }
  }
  if (port < 0) return usage("--port is required");
  if (use_tls && (!tls_cert || !tls_key))
    return usage("--use_tls=true needs --tls_cert_file and --tls_key_file");

  /* Non-blocking write end: a signal storm must never block the handler. */
  if (pipe2(g_sig_pipe, O_CLOEXEC) != 0 ||
      fcntl(g_sig_pipe[1], F_SETFL, O_NONBLOCK) != 0) {
    perror("pipe");
    return 1;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  /* One handler table for the whole service; kept by pointer, so static.
   * CacheableUnaryCall and UnimplementedCall stay empty: UNIMPLEMENTED. */
  static Grpc__Testing__TestService_MrpcHandlers h;
  h.streaming_output_call_blocking = blk_streaming_output_call;
  h.streaming_input_call_blocking = blk_streaming_input_call;
  h.half_duplex_call_blocking = blk_half_duplex_call;
  if (blocking) {
    h.empty_call_blocking = blk_empty_call;
    h.unary_call_blocking = blk_unary_call;
    h.full_duplex_call_blocking = blk_full_duplex_call;
  } else {
    h.empty_call = ev_empty_call;
    h.unary_call = ev_unary_call;
    h.full_duplex_call = ev_full_duplex_call;
  }

  mrpc_server_opts opts;
  mrpc_server_opts_init(&opts);
  opts.max_recv_message = max_recv;
  opts.keepalive_min_time_ms = lim[0];
  opts.keepalive_permit_without_calls = (int)lim[1];
  opts.max_ping_strikes = (int)lim[2];
  opts.max_connection_idle_ms = lim[3];
  opts.max_connection_age_ms = lim[4];
  opts.max_connection_age_grace_ms = lim[5];
  opts.preface_timeout_ms = lim[6];
  opts.header_timeout_ms = lim[7];
  opts.max_connections = (int)lim[8];
  opts.max_reset_streams = (int)lim[9];
  opts.max_empty_frames = (int)lim[10];
  opts.max_unknown_frames = (int)lim[11];
  opts.max_settings_frames = (int)lim[13];
  opts.max_priority_frames = (int)lim[14];
  opts.max_window_updates_per_data_frame = (int)lim[15];
  opts.keepalive_time_ms = lim[16];
  opts.keepalive_timeout_ms = lim[17];
  if (use_tls) {
    mrpc_tls_server_opts to;
    mrpc_tls_server_opts_init(&to);
    to.cert_chain_file = tls_cert;
    to.private_key_file = tls_key;
    char err[256];
    if (mrpc_tls_server_creds_new(&to, &opts.tls, err, sizeof err) != 0) {
      fprintf(stderr, "interop_server: TLS: %s\n", err);
      return 1;
    }
  }
  mrpc_server *srv = NULL;
  char addr[300];
  int bound = 0, rc;
  /* An IPv6 literal needs its brackets to be told from the port. */
  snprintf(addr, sizeof addr, strchr(host, ':') ? "[%s]:%ld" : "%s:%ld", host,
           port);
  rc = mrpc_server_new(&opts, &srv);
  mrpc_tls_creds_unref(opts.tls); /* the server holds its own reference */
  if (rc != 0 ||
      (rc = TS(mrpc_register)(srv, &h)) != 0 ||
      (rc = mrpc_server_listen(srv, addr, &bound)) != 0 ||
      (rc = mrpc_server_start(srv)) != 0) {
    fprintf(stderr, "interop_server: %s\n", mrpc_strerror(rc));
    mrpc_server_del(srv);
    return 1;
  }
  if (lim[12] > 0) lower_nofile(lim[12]);
  printf("listening on %d\n", bound);
  fflush(stdout);

  char c;
  while (read(g_sig_pipe[0], &c, 1) < 0 && errno == EINTR) {
  }
  mrpc_server_shutdown(srv, 1000);
  mrpc_server_del(srv);
  close(g_sig_pipe[0]);
  close(g_sig_pipe[1]);
  return 0;
}
