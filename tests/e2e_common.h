/* Shared helpers of the end-to-end tests (tests/e2e_*.c): our client
 * (mrpc_channel_*) against our server (mrpc_server_*) over 127.0.0.1.
 * Header-only (every test binary links only its own .c), all static.
 *
 * The echo service is served twice, by event-driven handlers under
 * "/e2e.Event/..." and by blocking handlers under "/e2e.Blocking/...", and
 * both answer the same way (e2e_methods[style][kind], kind = mrpc_method_kind):
 *   Unary   SimpleRequest: response_status with a code != 0 -> that status,
 *           its message and the request payload as details; else a
 *           SimpleResponse with response_size pattern bytes when
 *           response_size > 0, else the request payload echoed.
 *   Server streaming StreamingOutputCallRequest: one response per
 *           response_parameters entry i: size > 0 -> e2e_fill(size, seed i),
 *           else "<request payload>#<i>"; then response_status (or OK).
 *   Client streaming: aggregated_payload_size = e2e_fold over the request
 *           payloads in order (order-sensitive), then OK.
 *   Bidi    every request payload is echoed at once; OK at half-close.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef E2E_COMMON_H
#define E2E_COMMON_H

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include <minirpc/minirpc.h>

#include "test.pb-c.h"

#define E2E_FN static __attribute__((unused))
/* Deadline of every call that is not about deadlines: a bug fails the test
 * instead of hanging it. */
#define E2E_TIMEOUT_MS 10000
#define E2E_MAX_PARAMS 64
#define E2E_D(name) (&grpc__testing__##name##__descriptor)

enum { E2E_EVENT = 0, E2E_BLOCKING = 1 }; /* handler / client style */

/* ---- time ---- */

E2E_FN int64_t e2e_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

E2E_FN void e2e_sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* Absolute CLOCK_REALTIME time ms from now, for pthread_cond_timedwait. */
E2E_FN struct timespec e2e_abstime(int ms) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  int64_t ns = ts.tv_nsec + (int64_t)ms * 1000000;
  ts.tv_sec += ns / 1000000000;
  ts.tv_nsec = ns % 1000000000;
  return ts;
}

/* Polls cond (an expression) every ms until true or timeout_ms. */
#define E2E_WAIT_UNTIL(cond, timeout_ms)                                     \
  do {                                                                       \
    int64_t e2e_until_ = e2e_now_ms() + (timeout_ms);                        \
    while (!(cond) && e2e_now_ms() < e2e_until_) e2e_sleep_ms(1);            \
  } while (0)

/* ---- payload helpers ---- */

/* Deterministic bytes for a payload of n bytes with a seed. */
E2E_FN void e2e_fill(uint8_t *p, size_t n, unsigned seed) {
  for (size_t j = 0; j < n; j++)
    p[j] = (uint8_t)(seed * 131u + j * 7u + (j >> 8) + (j >> 16));
}

E2E_FN bool e2e_check_fill(const uint8_t *p, size_t n, unsigned seed) {
  for (size_t j = 0; j < n; j++)
    if (p[j] != (uint8_t)(seed * 131u + j * 7u + (j >> 8) + (j >> 16)))
      return false;
  return true;
}

#define E2E_FOLD_INIT 17u
/* Order-sensitive hash of a sequence of payloads (client streaming). */
E2E_FN uint32_t e2e_fold(uint32_t acc, const uint8_t *p, size_t n) {
  acc = acc * 31u + (uint32_t)n;
  for (size_t i = 0; i < n; i++) acc = acc * 31u + p[i];
  return acc & 0x7fffffffu;
}

/* ---- the echo service ---- */

#define E2E_SVC(style)                                                       \
  {                                                                          \
    [MRPC_UNARY] = {"/e2e." style "/Unary", MRPC_UNARY,                      \
                    E2E_D(simple_request), E2E_D(simple_response)},          \
    [MRPC_CLIENT_STREAMING] = {"/e2e." style "/ClientStream",                \
                               MRPC_CLIENT_STREAMING,                        \
                               E2E_D(streaming_input_call_request),          \
                               E2E_D(streaming_input_call_response)},        \
    [MRPC_SERVER_STREAMING] = {"/e2e." style "/ServerStream",                \
                               MRPC_SERVER_STREAMING,                        \
                               E2E_D(streaming_output_call_request),         \
                               E2E_D(streaming_output_call_response)},       \
    [MRPC_BIDI_STREAMING] = {"/e2e." style "/Bidi", MRPC_BIDI_STREAMING,     \
                             E2E_D(streaming_output_call_request),           \
                             E2E_D(streaming_output_call_response)},         \
  }
static const mrpc_method e2e_methods[2][4] = {E2E_SVC("Event"),
                                              E2E_SVC("Blocking")};

/* Any of the six test messages, with the parts it points to. */
typedef struct e2e_msg {
  union {
    ProtobufCMessage base;
    Grpc__Testing__SimpleRequest sreq;
    Grpc__Testing__SimpleResponse sresp;
    Grpc__Testing__StreamingOutputCallRequest oreq;
    Grpc__Testing__StreamingOutputCallResponse oresp;
    Grpc__Testing__StreamingInputCallRequest ireq;
    Grpc__Testing__StreamingInputCallResponse iresp;
  } u;
  Grpc__Testing__Payload payload;
  Grpc__Testing__EchoStatus status;
  Grpc__Testing__ResponseParameters params[E2E_MAX_PARAMS];
  Grpc__Testing__ResponseParameters *pp[E2E_MAX_PARAMS];
} e2e_msg;

/* Makes a message of type d carrying body (borrowed) as its payload. */
E2E_FN ProtobufCMessage *e2e_msg_init(e2e_msg *m,
                                      const ProtobufCMessageDescriptor *d,
                                      const void *body, size_t len) {
  memset(m, 0, sizeof *m);
  protobuf_c_message_init(d, &m->u);
  grpc__testing__payload__init(&m->payload);
  m->payload.body.data = (uint8_t *)body;
  m->payload.body.len = len;
  if (d == E2E_D(simple_request)) m->u.sreq.payload = &m->payload;
  else if (d == E2E_D(simple_response)) m->u.sresp.payload = &m->payload;
  else if (d == E2E_D(streaming_output_call_request))
    m->u.oreq.payload = &m->payload;
  else if (d == E2E_D(streaming_output_call_response))
    m->u.oresp.payload = &m->payload;
  else if (d == E2E_D(streaming_input_call_request))
    m->u.ireq.payload = &m->payload;
  return &m->u.base;
}

E2E_FN ProtobufCMessage *e2e_msg_str(e2e_msg *m,
                                     const ProtobufCMessageDescriptor *d,
                                     const char *body) {
  return e2e_msg_init(m, d, body, strlen(body));
}

/* Asks (SimpleRequest / StreamingOutputCallRequest) for a final status. */
E2E_FN void e2e_msg_ask_status(e2e_msg *m, int code, const char *message) {
  grpc__testing__echo_status__init(&m->status);
  m->status.code = code;
  m->status.message = (char *)message;
  if (m->u.base.descriptor == E2E_D(simple_request))
    m->u.sreq.response_status = &m->status;
  else
    m->u.oreq.response_status = &m->status;
}

/* StreamingOutputCallRequest: asks for n responses of size bytes each. */
E2E_FN void e2e_msg_ask_responses(e2e_msg *m, size_t n, int32_t size) {
  assert_true(n <= E2E_MAX_PARAMS);
  for (size_t i = 0; i < n; i++) {
    grpc__testing__response_parameters__init(&m->params[i]);
    m->params[i].size = size;
    m->pp[i] = &m->params[i];
  }
  m->u.oreq.n_response_parameters = n;
  m->u.oreq.response_parameters = m->pp;
}

/* The payload of any message that has one (NULL/0 otherwise). */
E2E_FN const uint8_t *e2e_body(const ProtobufCMessage *msg, size_t *len) {
  const Grpc__Testing__Payload *p = NULL;
  const ProtobufCMessageDescriptor *d = msg->descriptor;
  if (d == E2E_D(simple_request))
    p = ((const Grpc__Testing__SimpleRequest *)msg)->payload;
  else if (d == E2E_D(simple_response))
    p = ((const Grpc__Testing__SimpleResponse *)msg)->payload;
  else if (d == E2E_D(streaming_output_call_request))
    p = ((const Grpc__Testing__StreamingOutputCallRequest *)msg)->payload;
  else if (d == E2E_D(streaming_output_call_response))
    p = ((const Grpc__Testing__StreamingOutputCallResponse *)msg)->payload;
  else if (d == E2E_D(streaming_input_call_request))
    p = ((const Grpc__Testing__StreamingInputCallRequest *)msg)->payload;
  *len = p ? p->body.len : 0;
  return p && p->body.len ? p->body.data : (const uint8_t *)"";
}

/* Failures seen on threads other than the test's (I/O threads, workers),
 * where cmocka's assertions must not be used: e2e_cli_wait asserts 0. */
static atomic_int e2e_thread_errors;
#define E2E_CHECK(cond)                                                      \
  do {                                                                       \
    if (!(cond)) {                                                           \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,       \
              #cond);                                                        \
      atomic_fetch_add(&e2e_thread_errors, 1);                               \
    }                                                                        \
  } while (0)

/* malloc for any thread: out of memory aborts. */
E2E_FN void *e2e_xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) abort();
  return p;
}

E2E_FN uint8_t *e2e_memdup(const void *p, size_t n) {
  uint8_t *d = e2e_xmalloc(n);
  if (n) memcpy(d, p, n);
  return d;
}

/* Asserts that a message's payload is the string want. */
#define e2e_assert_body(msg, want)                                           \
  do {                                                                       \
    size_t e2e_l_;                                                           \
    const uint8_t *e2e_b_ = e2e_body((msg), &e2e_l_);                        \
    assert_int_equal(e2e_l_, strlen(want));                                  \
    assert_memory_equal(e2e_b_, (want), e2e_l_);                             \
  } while (0)

/* The responses the echo service makes for a request (see the top).  Calls
 * out(body, len, ctx) for each; returns the status code to end with (or -1
 * for none yet) and sets *msg / *details (borrowed from req). */
typedef void (*e2e_out_fn)(uint8_t *body, size_t len, void *ctx);

E2E_FN int e2e_echo_request(const ProtobufCMessage *req, mrpc_method_kind k,
                            e2e_out_fn out, void *ctx, uint32_t *fold,
                            const char **msg, const uint8_t **det,
                            size_t *det_len) {
  size_t len;
  const uint8_t *body = e2e_body(req, &len);
  *msg = NULL;
  *det = NULL;
  *det_len = 0;
  if (k == MRPC_UNARY) {
    const Grpc__Testing__SimpleRequest *r = (const void *)req;
    if (r->response_status && r->response_status->code) {
      *msg = r->response_status->message;
      *det = len ? body : NULL;
      *det_len = len;
      return r->response_status->code;
    }
    if (r->response_size > 0) {
      uint8_t *b = e2e_xmalloc((size_t)r->response_size);
      e2e_fill(b, (size_t)r->response_size, 0);
      out(b, (size_t)r->response_size, ctx);
    } else {
      out(e2e_memdup(body, len), len, ctx);
    }
    return MRPC_STATUS_OK;
  }
  if (k == MRPC_SERVER_STREAMING) {
    const Grpc__Testing__StreamingOutputCallRequest *r = (const void *)req;
    for (size_t i = 0; i < r->n_response_parameters; i++) {
      int32_t size = r->response_parameters[i]->size;
      if (size > 0) {
        uint8_t *b = e2e_xmalloc((size_t)size);
        e2e_fill(b, (size_t)size, (unsigned)i);
        out(b, (size_t)size, ctx);
      } else {
        char *b = e2e_xmalloc(len + 16);
        memcpy(b, body, len);
        int n = snprintf(b + len, 16, "#%zu", i);
        out((uint8_t *)b, len + (size_t)n, ctx);
      }
    }
    if (r->response_status && r->response_status->code) {
      *msg = r->response_status->message;
      return r->response_status->code;
    }
    return MRPC_STATUS_OK;
  }
  if (k == MRPC_CLIENT_STREAMING) {
    *fold = e2e_fold(*fold, body, len);
    return -1;
  }
  out(e2e_memdup(body, len), len, ctx); /* bidi */
  return -1;
}

/* ---- event-driven echo handler ---- */

typedef struct e2e_evcall {
  mrpc_call *call;
  uint8_t **bodies; /* responses not yet sent (NULL: the aggregate) */
  size_t *lens;
  size_t head, n, cap;
  uint32_t fold;
  bool ending, finished, done;
  int busy;
  int code;
  char *msg;
  uint8_t *det;
  size_t det_len;
} e2e_evcall;

/* Times the event server handlers got MRPC_ERR_AGAIN. */
static atomic_int e2e_again_count;

E2E_FN void e2e_ev_push(uint8_t *body, size_t len, void *ctx) {
  e2e_evcall *ev = ctx;
  if (ev->n == ev->cap) {
    ev->cap = ev->cap ? 2 * ev->cap : 8;
    ev->bodies = realloc(ev->bodies, ev->cap * sizeof *ev->bodies);
    ev->lens = realloc(ev->lens, ev->cap * sizeof *ev->lens);
    if (!ev->bodies || !ev->lens) abort();
  }
  ev->bodies[ev->n] = body;
  ev->lens[ev->n++] = len;
}

E2E_FN void e2e_ev_end(e2e_evcall *ev, int code, const char *msg,
                       const uint8_t *det, size_t det_len) {
  if (ev->ending) return;
  ev->ending = true;
  ev->code = code;
  ev->msg = msg ? strdup(msg) : NULL;
  ev->det = det_len ? e2e_memdup(det, det_len) : NULL;
  ev->det_len = det_len;
}

E2E_FN void e2e_ev_free(e2e_evcall *ev) {
  for (size_t i = ev->head; i < ev->n; i++) free(ev->bodies[i]);
  free(ev->bodies);
  free(ev->lens);
  free(ev->msg);
  free(ev->det);
  free(ev);
}

/* Sends what is queued until MRPC_ERR_AGAIN, then finishes once drained. */
E2E_FN void e2e_ev_pump(e2e_evcall *ev) {
  if (ev->busy || ev->done) return;
  ev->busy++;
  const mrpc_method *m = mrpc_call_method(ev->call);
  while (ev->head < ev->n && !ev->done) {
    e2e_msg r;
    e2e_msg_init(&r, m->response, ev->bodies[ev->head], ev->lens[ev->head]);
    if (m->response == E2E_D(streaming_input_call_response))
      r.u.iresp.aggregated_payload_size = (int32_t)ev->fold;
    int rc = mrpc_call_send(ev->call, &r.u.base);
    if (rc == MRPC_ERR_AGAIN) {
      atomic_fetch_add(&e2e_again_count, 1);
      break; /* on_writable resumes */
    }
    free(ev->bodies[ev->head]);
    ev->head++;
    if (rc != 0) {
      e2e_ev_end(ev, MRPC_STATUS_INTERNAL, mrpc_strerror(rc), NULL, 0);
      while (ev->head < ev->n) free(ev->bodies[ev->head++]);
    }
  }
  if (ev->head == ev->n && ev->ending && !ev->finished && !ev->done) {
    ev->finished = true;
    mrpc_call_finish(ev->call, (mrpc_status_code)ev->code, ev->msg, ev->det,
                     ev->det_len);
  }
  ev->busy--;
  if (ev->done) e2e_ev_free(ev);
}

E2E_FN void e2e_ev_on_message(mrpc_call *call, const ProtobufCMessage *msg,
                              void *ctx) {
  e2e_evcall *ev = ctx;
  const char *m;
  const uint8_t *det;
  size_t det_len;
  int code = e2e_echo_request(msg, mrpc_call_method(call)->kind, e2e_ev_push,
                              ev, &ev->fold, &m, &det, &det_len);
  if (code >= 0) e2e_ev_end(ev, code, m, det, det_len);
  e2e_ev_pump(ev);
}

E2E_FN void e2e_ev_on_half_close(mrpc_call *call, void *ctx) {
  e2e_evcall *ev = ctx;
  if (mrpc_call_method(call)->kind == MRPC_CLIENT_STREAMING)
    e2e_ev_push(NULL, 0, ev);
  e2e_ev_end(ev, MRPC_STATUS_OK, NULL, NULL, 0);
  e2e_ev_pump(ev);
}

E2E_FN void e2e_ev_on_writable(mrpc_call *call, void *ctx) {
  (void)call;
  e2e_ev_pump(ctx);
}

E2E_FN void e2e_ev_on_done(mrpc_call *call, const mrpc_status *st,
                           void *ctx) {
  (void)call;
  (void)st;
  e2e_evcall *ev = ctx;
  ev->done = true;
  if (!ev->busy) e2e_ev_free(ev);
}

E2E_FN void e2e_event_echo(mrpc_call *call, void *user) {
  (void)user;
  static const mrpc_call_ops ops = {e2e_ev_on_message, e2e_ev_on_half_close,
                                    e2e_ev_on_writable, e2e_ev_on_done};
  e2e_evcall *ev = calloc(1, sizeof *ev);
  if (!ev) abort();
  ev->call = call;
  ev->fold = E2E_FOLD_INIT;
  mrpc_call_set_ops(call, &ops, ev);
}

/* ---- blocking echo handler ---- */

E2E_FN void e2e_stream_out(uint8_t *body, size_t len, void *ctx) {
  mrpc_stream *s = ctx;
  e2e_msg r;
  e2e_msg_init(&r, mrpc_call_method(mrpc_stream_call(s))->response, body,
               len);
  mrpc_stream_send(s, &r.u.base);
  free(body);
}

/* Unary and bidi methods read with mrpc_stream_recv_borrowed, the other
 * two with mrpc_stream_recv: each way is used both for a single request
 * (unpacked on the worker) and for a stream of them. */
E2E_FN void e2e_blocking_echo(mrpc_stream *s, void *user) {
  (void)user;
  const mrpc_method *m = mrpc_call_method(mrpc_stream_call(s));
  int borrow = m->kind == MRPC_UNARY || m->kind == MRPC_BIDI_STREAMING;
  uint32_t fold = E2E_FOLD_INIT;
  ProtobufCMessage *req;
  const ProtobufCMessage *lent;
  int rc, code = -1;
  while ((rc = borrow ? mrpc_stream_recv_borrowed(s, &lent)
                      : mrpc_stream_recv(s, &req)) == 1) {
    const char *msg;
    const uint8_t *det;
    size_t det_len;
    int c = e2e_echo_request(borrow ? lent : req, m->kind, e2e_stream_out, s,
                             &fold, &msg, &det, &det_len);
    if (c >= 0 && code < 0) {
      code = c;
      mrpc_stream_set_status(s, (mrpc_status_code)c, msg, det, det_len);
    }
    if (!borrow) protobuf_c_message_free_unpacked(req, NULL);
  }
  if (rc < 0) return; /* the call is over: the status is moot */
  if (m->kind == MRPC_CLIENT_STREAMING) {
    Grpc__Testing__StreamingInputCallResponse r =
        GRPC__TESTING__STREAMING_INPUT_CALL_RESPONSE__INIT;
    r.aggregated_payload_size = (int32_t)fold;
    mrpc_stream_send(s, &r.base);
  }
  if (code < 0) mrpc_stream_set_status(s, MRPC_STATUS_OK, NULL, NULL, 0);
}

/* ---- server and channel ---- */

typedef struct e2e_server {
  mrpc_server *srv;
  int port;
  char target[128];
} e2e_server;

/* Starts a server with the echo service in both styles plus n_extra more
 * methods, listening on addr (NULL: "127.0.0.1:0"); opts may be NULL (then
 * defaults with 2 I/O threads). */
E2E_FN void e2e_server_start(e2e_server *s, const mrpc_server_opts *opts,
                             const char *addr, const mrpc_method *extra,
                             const mrpc_method_handler *extra_h,
                             size_t n_extra) {
  mrpc_server_opts o;
  mrpc_server_opts_init(&o);
  if (opts) o = *opts;
  if (!o.io_threads) o.io_threads = 2;
  memset(s, 0, sizeof *s);
  assert_int_equal(mrpc_server_new(&o, &s->srv), 0);
  for (int k = 0; k < 4; k++) {
    mrpc_method_handler ev = {e2e_event_echo, NULL, NULL};
    mrpc_method_handler bl = {NULL, e2e_blocking_echo, NULL};
    assert_int_equal(
        mrpc_server_add_method(s->srv, &e2e_methods[E2E_EVENT][k], &ev), 0);
    assert_int_equal(
        mrpc_server_add_method(s->srv, &e2e_methods[E2E_BLOCKING][k], &bl),
        0);
  }
  for (size_t i = 0; i < n_extra; i++)
    assert_int_equal(mrpc_server_add_method(s->srv, &extra[i], &extra_h[i]),
                     0);
  if (!addr) addr = "127.0.0.1:0";
  assert_int_equal(mrpc_server_listen(s->srv, addr, &s->port), 0);
  if (strncmp(addr, "unix:", 5) == 0) {
    snprintf(s->target, sizeof s->target, "%s", addr);
  } else {
    assert_true(s->port > 0);
    snprintf(s->target, sizeof s->target, "127.0.0.1:%d", s->port);
  }
  assert_int_equal(mrpc_server_start(s->srv), 0);
}

E2E_FN void e2e_server_stop(e2e_server *s) {
  mrpc_server_del(s->srv);
  s->srv = NULL;
}

/* A port on 127.0.0.1 that refuses connections: bound, not listening.
 * The caller closes *fd. */
E2E_FN int e2e_refusing_port(int *fd) {
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  *fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(*fd >= 0);
  int one = 1;
  setsockopt(*fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  assert_int_equal(bind(*fd, (struct sockaddr *)&sa, sizeof sa), 0);
  socklen_t len = sizeof sa;
  assert_int_equal(getsockname(*fd, (struct sockaddr *)&sa, &len), 0);
  return ntohs(sa.sin_port);
}

E2E_FN mrpc_channel *e2e_channel(const char *target,
                                 const mrpc_channel_opts *opts) {
  mrpc_channel *ch = NULL;
  assert_int_equal(mrpc_channel_new(target, opts, &ch), 0);
  assert_non_null(ch);
  return ch;
}

/* The group fixture of every suite: one server with the shared methods
 * plus the suite's own, and one channel to it. */
static e2e_server g_srv;
static mrpc_channel *g_ch;
static const mrpc_method *g_extra;
static const mrpc_method_handler *g_extra_h;
static size_t g_n_extra;

/* Sets the suite's own methods; call before cmocka_run_group_tests. */
E2E_FN void e2e_group_methods(const mrpc_method *m,
                              const mrpc_method_handler *h, size_t n) {
  g_extra = m;
  g_extra_h = h;
  g_n_extra = n;
}

E2E_FN int e2e_group_setup(void **state) {
  (void)state;
  e2e_server_start(&g_srv, NULL, NULL, g_extra, g_extra_h, g_n_extra);
  g_ch = e2e_channel(g_srv.target, NULL);
  return 0;
}

E2E_FN int e2e_group_teardown(void **state) {
  (void)state;
  mrpc_channel_del(g_ch);
  e2e_server_stop(&g_srv);
  return 0;
}

E2E_FN mrpc_call_opts e2e_copts(int64_t timeout_ms, const mrpc_metadata *md) {
  mrpc_call_opts o;
  mrpc_call_opts_init(&o);
  o.timeout_ms = timeout_ms;
  o.metadata = md;
  return o;
}

/* Blocking unary echo of body through the given style's service;
 * returns the status code and frees everything. */
E2E_FN int e2e_unary_echo(mrpc_channel *ch, int style, const char *body) {
  e2e_msg m;
  mrpc_call_opts o = e2e_copts(E2E_TIMEOUT_MS, NULL);
  const mrpc_method *meth = &e2e_methods[style][MRPC_UNARY];
  ProtobufCMessage *resp = NULL;
  mrpc_status st;
  assert_int_equal(mrpc_channel_unary(ch, meth, e2e_msg_str(&m, meth->request,
                                                             body),
                                      &o, &resp, &st),
                   0);
  int code = st.code;
  if (code == MRPC_STATUS_OK) {
    assert_non_null(resp);
    e2e_assert_body(resp, body);
    protobuf_c_message_free_unpacked(resp, NULL);
  } else {
    assert_null(resp);
  }
  mrpc_status_free(&st);
  return code;
}

/* ---- event-driven client: collects what arrives, waits for on_done ---- */

E2E_FN void e2e_status_copy(mrpc_status *dst, const mrpc_status *src) {
  dst->code = src->code;
  dst->message = strdup(src->message ? src->message : "");
  dst->details = src->details_len ? e2e_memdup(src->details, src->details_len)
                                  : NULL;
  dst->details_len = src->details_len;
}

E2E_FN mrpc_metadata *e2e_md_copy(const mrpc_metadata *src) {
  mrpc_metadata *md = mrpc_metadata_new(NULL);
  for (size_t i = 0; i < mrpc_metadata_count(src); i++) {
    const char *k;
    const uint8_t *v;
    size_t len;
    mrpc_metadata_at(src, i, &k, &v, &len);
    E2E_CHECK(mrpc_metadata_add(md, k, v, len) == 0);
  }
  return md;
}

typedef struct e2e_cli {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  mrpc_call *call;
  /* what arrived */
  uint8_t **bodies;
  size_t *lens;
  size_t n, cap;
  int32_t agg; /* client streaming: the aggregate */
  int half_closed;
  int done; /* times on_done ran */
  mrpc_status st;
  mrpc_metadata *headers, *trailers; /* copies made in on_done */
  int64_t done_at;
  /* bidi ping-pong: on each response send the next of pp_total requests,
   * then half-close (from the I/O thread) */
  const mrpc_method *pp_method;
  int pp_sent, pp_total;
} e2e_cli;

/* The result of mrpc_call_send / mrpc_call_close_send on a client call
 * that the peer may have ended already (the server may answer before the
 * client half-closes; a failed connection ends a call at once): 0 or
 * MRPC_ERR_CLOSED, on_done tells the outcome. */
#define e2e_assert_sent(expr)                                                \
  do {                                                                       \
    int e2e_rc_ = (expr);                                                    \
    if (e2e_rc_ != 0 && e2e_rc_ != MRPC_ERR_CLOSED)                          \
      fail_msg("%s: %d (%s)", #expr, e2e_rc_, mrpc_strerror(e2e_rc_));      \
  } while (0)

/* Sends body as a request of m; returns mrpc_call_send's result. */
E2E_FN int e2e_cli_send_str(mrpc_call *call, const mrpc_method *m,
                            const char *body) {
  e2e_msg msg;
  return mrpc_call_send(call, e2e_msg_str(&msg, m->request, body));
}

E2E_FN void e2e_cli_pp_next(e2e_cli *c, mrpc_call *call) {
  if (c->pp_sent < c->pp_total) {
    char b[32];
    snprintf(b, sizeof b, "ping-%d", c->pp_sent++);
    E2E_CHECK(e2e_cli_send_str(call, c->pp_method, b) == 0);
  } else if (c->pp_sent++ == c->pp_total) {
    E2E_CHECK(mrpc_call_close_send(call) == 0);
  }
}

E2E_FN void e2e_cli_on_message(mrpc_call *call, const ProtobufCMessage *msg,
                               void *ctx) {
  e2e_cli *c = ctx;
  pthread_mutex_lock(&c->mu);
  if (msg->descriptor == E2E_D(streaming_input_call_response))
    c->agg = ((const Grpc__Testing__StreamingInputCallResponse *)msg)
                 ->aggregated_payload_size;
  size_t len;
  const uint8_t *b = e2e_body(msg, &len);
  if (c->n == c->cap) {
    c->cap = c->cap ? 2 * c->cap : 16;
    c->bodies = realloc(c->bodies, c->cap * sizeof *c->bodies);
    c->lens = realloc(c->lens, c->cap * sizeof *c->lens);
    if (!c->bodies || !c->lens) abort();
  }
  c->bodies[c->n] = e2e_memdup(b, len);
  c->lens[c->n++] = len;
  pthread_mutex_unlock(&c->mu);
  if (c->pp_method) e2e_cli_pp_next(c, call);
}

E2E_FN void e2e_cli_on_half_close(mrpc_call *call, void *ctx) {
  (void)call;
  e2e_cli *c = ctx;
  pthread_mutex_lock(&c->mu);
  c->half_closed++;
  pthread_mutex_unlock(&c->mu);
}

E2E_FN void e2e_cli_on_done(mrpc_call *call, const mrpc_status *st,
                            void *ctx) {
  e2e_cli *c = ctx;
  pthread_mutex_lock(&c->mu);
  if (!c->done++) {
    e2e_status_copy(&c->st, st);
    c->headers = e2e_md_copy(mrpc_call_metadata(call));
    c->trailers = e2e_md_copy(mrpc_call_trailers(call));
    c->done_at = e2e_now_ms();
  }
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
}

static const mrpc_call_ops e2e_cli_ops = {e2e_cli_on_message,
                                          e2e_cli_on_half_close, NULL,
                                          e2e_cli_on_done};

E2E_FN void e2e_cli_init(e2e_cli *c) {
  memset(c, 0, sizeof *c);
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->cv, NULL);
}

/* Starts an event-driven call with the collecting ops. */
E2E_FN void e2e_cli_start(e2e_cli *c, mrpc_channel *ch, const mrpc_method *m,
                          const mrpc_call_opts *o) {
  assert_int_equal(mrpc_channel_start_call(ch, m, o, &e2e_cli_ops, c, &c->call),
                   0);
  assert_non_null(c->call);
}

/* 1 once on_done came (without waiting). */
E2E_FN int e2e_cli_done(e2e_cli *c) {
  pthread_mutex_lock(&c->mu);
  int d = c->done;
  pthread_mutex_unlock(&c->mu);
  return d;
}

/* Waits up to ms for on_done; on timeout cancels the call (so that nothing
 * refers to c afterwards) and fails. */
E2E_FN void e2e_cli_wait(e2e_cli *c, int ms) {
  struct timespec until = e2e_abstime(ms);
  pthread_mutex_lock(&c->mu);
  while (!c->done)
    if (pthread_cond_timedwait(&c->cv, &c->mu, &until) == ETIMEDOUT) break;
  int done = c->done;
  pthread_mutex_unlock(&c->mu);
  assert_int_equal(atomic_load(&e2e_thread_errors), 0);
  if (!done) {
    mrpc_call_cancel(c->call);
    until = e2e_abstime(2000);
    pthread_mutex_lock(&c->mu);
    while (!c->done)
      if (pthread_cond_timedwait(&c->cv, &c->mu, &until) == ETIMEDOUT) break;
    pthread_mutex_unlock(&c->mu);
    fail_msg("on_done did not come within %d ms", ms);
  }
}

E2E_FN void e2e_cli_free(e2e_cli *c) {
  mrpc_call_unref(c->call);
  for (size_t i = 0; i < c->n; i++) free(c->bodies[i]);
  free(c->bodies);
  free(c->lens);
  mrpc_status_free(&c->st);
  mrpc_metadata_del(c->headers);
  mrpc_metadata_del(c->trailers);
  pthread_cond_destroy(&c->cv);
  pthread_mutex_destroy(&c->mu);
}

E2E_FN void e2e_cli_assert_body(const e2e_cli *c, size_t i, const char *want) {
  assert_true(i < c->n);
  assert_int_equal(c->lens[i], strlen(want));
  assert_memory_equal(c->bodies[i], want, c->lens[i]);
}

/* One event-driven unary call of body to m; waits; the caller frees c. */
E2E_FN void e2e_cli_unary(e2e_cli *c, mrpc_channel *ch, const mrpc_method *m,
                          const mrpc_call_opts *o, const char *body) {
  e2e_cli_init(c);
  e2e_cli_start(c, ch, m, o);
  e2e_msg msg;
  e2e_msg_str(&msg, m->request, body);
  e2e_assert_sent(mrpc_call_send(c->call, &msg.u.base));
  e2e_assert_sent(mrpc_call_close_send(c->call));
  e2e_cli_wait(c, E2E_TIMEOUT_MS + 5000);
}

/* ---- metadata ---- */

/* Asserts md[i] == key -> value (len bytes). */
E2E_FN void e2e_assert_md_at(const mrpc_metadata *md, size_t i,
                             const char *key, const void *value, size_t len) {
  const char *k;
  const uint8_t *v;
  size_t l;
  assert_int_equal(mrpc_metadata_at(md, i, &k, &v, &l), 0);
  assert_string_equal(k, key);
  assert_int_equal(l, len);
  if (len) assert_memory_equal(v, value, len);
}

#endif
