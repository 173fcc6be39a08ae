/* libminirpc bench server: bench.Bench (bench/bench.proto) on libminirpc,
 * with event-driven handlers (run on the I/O thread) or blocking handlers
 * (run on the worker pool).
 *
 *   mrpc_server [--port=N] [--handlers=event|blocking] [--io-threads=N]
 *
 * Listens on 127.0.0.1 only (port 0 = pick one), prints "listening on PORT"
 * once it accepts connections, and exits 0 on SIGTERM or SIGINT.
 * --io-threads defaults to 1: the bench pins each server to one core.
 * SPDX-License-Identifier: Apache-2.0 */
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_methods.h"

#define MAX_STREAM_SIZE (16 << 20)

/* ---- event-driven ----------------------------------------------------- */

static void ev_unary_message(mrpc_call *call, const ProtobufCMessage *msg,
                             void *ctx) {
  (void)ctx;
  int rc = mrpc_call_send(call, msg); /* the request is the response */
  if (rc == 0)
    mrpc_call_finish(call, MRPC_STATUS_OK, NULL, NULL, 0);
  else if (rc != MRPC_ERR_CLOSED)
    mrpc_call_finish(call, MRPC_STATUS_INTERNAL, mrpc_strerror(rc), NULL, 0);
}

static void ev_pingpong_message(mrpc_call *call, const ProtobufCMessage *msg,
                                void *ctx) {
  (void)ctx;
  /* One message in flight at a time: the send queue never fills. */
  int rc = mrpc_call_send(call, msg);
  if (rc != 0 && rc != MRPC_ERR_CLOSED)
    mrpc_call_finish(call, MRPC_STATUS_RESOURCE_EXHAUSTED, mrpc_strerror(rc),
                     NULL, 0);
}

static void ev_pingpong_half_close(mrpc_call *call, void *ctx) {
  (void)ctx;
  mrpc_call_finish(call, MRPC_STATUS_OK, NULL, NULL, 0);
}

/* Server streaming: sends until the queue is full, resumes on on_writable. */
typedef struct ev_stream {
  Bench__Msg msg;
  uint8_t *buf;
  int32_t left;
  bool finished;
} ev_stream;

static void ev_stream_pump(mrpc_call *call, ev_stream *st) {
  while (!st->finished && st->left > 0) {
    int rc = mrpc_call_send(call, &st->msg.base);
    if (rc == MRPC_ERR_AGAIN) return;
    if (rc != 0) {
      st->finished = true;
      if (rc != MRPC_ERR_CLOSED)
        mrpc_call_finish(call, MRPC_STATUS_INTERNAL, mrpc_strerror(rc), NULL,
                         0);
      return;
    }
    st->left--;
  }
  if (!st->finished && st->left == 0) {
    st->finished = true;
    mrpc_call_finish(call, MRPC_STATUS_OK, NULL, NULL, 0);
  }
}

static void ev_stream_message(mrpc_call *call, const ProtobufCMessage *msg,
                              void *ctx) {
  ev_stream *st = ctx;
  const Bench__StreamReq *r = (const Bench__StreamReq *)msg;
  if (r->count < 0 || r->size < 0 || r->size > MAX_STREAM_SIZE) {
    st->finished = true;
    mrpc_call_finish(call, MRPC_STATUS_INVALID_ARGUMENT, "bad count or size",
                     NULL, 0);
    return;
  }
  st->buf = calloc((size_t)r->size + 1, 1);
  if (!st->buf) {
    st->finished = true;
    mrpc_call_finish(call, MRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory",
                     NULL, 0);
    return;
  }
  st->msg.body.data = st->buf;
  st->msg.body.len = (size_t)r->size;
  st->left = r->count;
  ev_stream_pump(call, st);
}

static void ev_stream_writable(mrpc_call *call, void *ctx) {
  ev_stream_pump(call, ctx);
}

static void ev_stream_done(mrpc_call *call, const mrpc_status *st, void *ctx) {
  (void)call;
  (void)st;
  ev_stream *s = ctx;
  free(s->buf);
  free(s);
}

static void ev_unary(mrpc_call *call, void *user) {
  static const mrpc_call_ops ops = {ev_unary_message, NULL, NULL, NULL};
  (void)user;
  mrpc_call_set_ops(call, &ops, NULL);
}

static void ev_pingpong(mrpc_call *call, void *user) {
  static const mrpc_call_ops ops = {ev_pingpong_message,
                                    ev_pingpong_half_close, NULL, NULL};
  (void)user;
  mrpc_call_set_ops(call, &ops, NULL);
}

static void ev_stream_start(mrpc_call *call, void *user) {
  static const mrpc_call_ops ops = {ev_stream_message, NULL,
                                    ev_stream_writable, ev_stream_done};
  (void)user;
  ev_stream *st = calloc(1, sizeof *st);
  if (!st) {
    mrpc_call_finish(call, MRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory",
                     NULL, 0);
    return;
  }
  bench__msg__init(&st->msg);
  if (mrpc_call_set_ops(call, &ops, st) != 0) {
    free(st);
    mrpc_call_finish(call, MRPC_STATUS_INTERNAL, "set_ops failed", NULL, 0);
  }
}

/* ---- blocking --------------------------------------------------------- */

/* As a generated typed handler does: the request borrowed from the stream. */
static void blk_unary(mrpc_stream *s, void *user) {
  (void)user;
  const ProtobufCMessage *req = NULL;
  int rc = mrpc_stream_recv_borrowed(s, &req);
  if (rc != 1) {
    if (rc == 0)
      mrpc_stream_set_status(s, MRPC_STATUS_INTERNAL, "no request", NULL, 0);
    return;
  }
  rc = mrpc_stream_send(s, req);
  if (rc == 0)
    mrpc_stream_set_status(s, MRPC_STATUS_OK, NULL, NULL, 0);
  else
    mrpc_stream_set_status(s, MRPC_STATUS_INTERNAL, mrpc_strerror(rc), NULL,
                           0);
}

static void blk_stream(mrpc_stream *s, void *user) {
  (void)user;
  ProtobufCMessage *req = NULL;
  int rc = mrpc_stream_recv(s, &req);
  if (rc != 1) {
    if (rc == 0)
      mrpc_stream_set_status(s, MRPC_STATUS_INTERNAL, "no request", NULL, 0);
    return;
  }
  Bench__StreamReq *r = (Bench__StreamReq *)req;
  int32_t count = r->count, size = r->size;
  protobuf_c_message_free_unpacked(req, NULL);
  if (count < 0 || size < 0 || size > MAX_STREAM_SIZE) {
    mrpc_stream_set_status(s, MRPC_STATUS_INVALID_ARGUMENT,
                           "bad count or size", NULL, 0);
    return;
  }
  uint8_t *buf = calloc((size_t)size + 1, 1);
  if (!buf) {
    mrpc_stream_set_status(s, MRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory",
                           NULL, 0);
    return;
  }
  Bench__Msg msg = BENCH__MSG__INIT;
  msg.body.data = buf;
  msg.body.len = (size_t)size;
  rc = 0;
  for (int32_t i = 0; i < count && rc == 0; i++)
    rc = mrpc_stream_send(s, &msg.base);
  free(buf);
  if (rc == 0)
    mrpc_stream_set_status(s, MRPC_STATUS_OK, NULL, NULL, 0);
  else
    mrpc_stream_set_status(s, MRPC_STATUS_INTERNAL, mrpc_strerror(rc), NULL,
                           0);
}

static void blk_pingpong(mrpc_stream *s, void *user) {
  (void)user;
  for (;;) {
    ProtobufCMessage *m = NULL;
    int rc = mrpc_stream_recv(s, &m);
    if (rc == 0) break;
    if (rc < 0) return; /* the call is over */
    rc = mrpc_stream_send(s, m);
    protobuf_c_message_free_unpacked(m, NULL);
    if (rc != 0) {
      mrpc_stream_set_status(s, MRPC_STATUS_INTERNAL, mrpc_strerror(rc),
                             NULL, 0);
      return;
    }
  }
  mrpc_stream_set_status(s, MRPC_STATUS_OK, NULL, NULL, 0);
}

/* ---- main ------------------------------------------------------------- */

static void usage(void) {
  fprintf(stderr, "usage: mrpc_server [--port=N] [--handlers=event|blocking]"
                  " [--io-threads=N]\n");
  exit(2);
}

int main(int argc, char **argv) {
  int port = 0, io_threads = 1;
  bool blocking = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strncmp(a, "--port=", 7) == 0)
      port = atoi(a + 7);
    else if (strcmp(a, "--handlers=event") == 0)
      blocking = false;
    else if (strcmp(a, "--handlers=blocking") == 0)
      blocking = true;
    else if (strncmp(a, "--io-threads=", 13) == 0)
      io_threads = atoi(a + 13);
    else
      usage();
  }
  if (port < 0 || port > 65535 || io_threads < 0) usage();

  /* Every thread inherits the mask; main waits for the signal. */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);
  signal(SIGPIPE, SIG_IGN);

  mrpc_server_opts o;
  mrpc_server_opts_init(&o);
  o.io_threads = io_threads;
  mrpc_server *srv = NULL;
  int rc = mrpc_server_new(&o, &srv);
  if (rc != 0) {
    fprintf(stderr, "mrpc_server_new: %s\n", mrpc_strerror(rc));
    return 1;
  }
  mrpc_method_handler h[M_COUNT] = {0};
  if (blocking) {
    h[M_UNARY].blocking = blk_unary;
    h[M_STREAM].blocking = blk_stream;
    h[M_PINGPONG].blocking = blk_pingpong;
  } else {
    h[M_UNARY].event = ev_unary;
    h[M_STREAM].event = ev_stream_start;
    h[M_PINGPONG].event = ev_pingpong;
  }
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
  if ((rc = mrpc_server_add_service(srv, &bench_service, h)) != 0 ||
      (rc = mrpc_server_listen(srv, addr, &port)) != 0 ||
      (rc = mrpc_server_start(srv)) != 0) {
    fprintf(stderr, "mrpc_server: %s\n", mrpc_strerror(rc));
    mrpc_server_del(srv);
    return 1;
  }
  printf("listening on %d\n", port);
  fflush(stdout);

  int sig = 0;
  while (sigwait(&sigs, &sig) != 0) {
  }
  mrpc_server_shutdown(srv, 500);
  mrpc_server_del(srv);
  return 0;
}
