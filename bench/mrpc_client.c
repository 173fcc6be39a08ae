/* libminirpc bench client: drives bench.Bench through libminirpc's
 * event-driven client API (callbacks on the channel's I/O thread).
 *
 *   mrpc_client --target=HOST:PORT --mode=MODE [--count=N] [--size=BYTES]
 *               [--conc=C] [--timeout-ms=MS]
 *
 * Modes:
 *   unary     N Unary calls of a SIZE-byte body, C in flight at a time
 *   stream    one Stream call asking for N messages of SIZE bytes
 *   pingpong  one PingPong call, N round trips of a SIZE-byte message
 *
 * First a warm-up Unary call brings the connection up (not timed).  Prints
 * one line "RESULT mode=... msgs=... secs=... rate=... mbps=... p50_us=...
 * p99_us=... cpu_us_per_msg=..." (rate in messages or calls per second, mbps
 * in 10^6 bytes of message body per second, latency per call or round trip,
 * CPU time of this whole process per message).  Exits 1 on any failed call
 * or when --timeout-ms (default 60000) passes: every loop is bounded.
 * SPDX-License-Identifier: Apache-2.0 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_methods.h"
#include "bench_util.h"

static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool done;
} g_wait = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false};

static void signal_done(void) {
  pthread_mutex_lock(&g_wait.mu);
  g_wait.done = true;
  pthread_cond_broadcast(&g_wait.cv);
  pthread_mutex_unlock(&g_wait.mu);
}

/* Waits for signal_done until deadline_ns (CLOCK_REALTIME based wait on a
 * monotonic deadline: polled in 100 ms steps).  Returns true when done. */
static bool wait_done(int64_t deadline_ns) {
  pthread_mutex_lock(&g_wait.mu);
  while (!g_wait.done && bench_now_ns() < deadline_ns) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 100000000;
    if (ts.tv_nsec >= 1000000000) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&g_wait.cv, &g_wait.mu, &ts);
  }
  bool d = g_wait.done;
  pthread_mutex_unlock(&g_wait.mu);
  return d;
}

/* Settings and counters; callbacks run on the channel's one I/O thread. */
static mrpc_channel *g_ch;
static long g_count = 1000, g_conc = 1;
static int g_size = 16;
static int64_t *g_lat;
static Bench__Msg g_msg = BENCH__MSG__INIT;
static atomic_long g_errors, g_msgs;
static double g_bytes;
static int64_t g_start_ns, g_last_ns;

/* ---- unary: C calls in flight; each on_done starts the next ----------- */

/* A call has two owners: whoever started it (until it has sent and
 * half-closed) and on_done.  The last one drops the call reference, so
 * neither can use a freed call whatever thread on_done runs on. */
typedef struct uctx {
  mrpc_call *call;
  int64_t t0;
  atomic_int owners;
} uctx;

static atomic_long g_started, g_finished;
static void unary_start_one(void);

static void uctx_release(uctx *u) {
  if (atomic_fetch_sub(&u->owners, 1) == 1) {
    mrpc_call_unref(u->call);
    free(u);
  }
}

static void unary_message(mrpc_call *call, const ProtobufCMessage *msg,
                          void *ctx) {
  (void)call;
  (void)ctx;
  g_bytes += (double)((const Bench__Msg *)msg)->body.len; /* I/O thread */
}

static void unary_done(mrpc_call *call, const mrpc_status *st, void *ctx) {
  (void)call;
  uctx *u = ctx;
  int64_t now = bench_now_ns();
  if (st->code != MRPC_STATUS_OK) {
    if (atomic_fetch_add(&g_errors, 1) < 5)
      fprintf(stderr, "unary: status %d %s\n", st->code, st->message);
  }
  long i = atomic_fetch_add(&g_finished, 1);
  if (i < g_count) g_lat[i] = now - u->t0;
  g_last_ns = now;
  uctx_release(u);
  if (i + 1 >= g_count)
    signal_done();
  else
    unary_start_one();
}

static void unary_start_one(void) {
  static const mrpc_call_ops ops = {unary_message, NULL, NULL, unary_done};
  if (atomic_fetch_add(&g_started, 1) >= g_count) return;
  uctx *u = calloc(1, sizeof *u);
  if (!u) abort();
  atomic_init(&u->owners, 2);
  u->t0 = bench_now_ns();
  int rc = mrpc_channel_start_call(g_ch, &bench_methods[M_UNARY], NULL, &ops,
                                   u, &u->call);
  if (rc != 0) {
    fprintf(stderr, "start_call: %s\n", mrpc_strerror(rc));
    exit(1);
  }
  mrpc_call_send(u->call, &g_msg.base); /* failures show in on_done */
  mrpc_call_close_send(u->call);
  uctx_release(u);
}

/* ---- stream ----------------------------------------------------------- */

static void stream_message(mrpc_call *call, const ProtobufCMessage *msg,
                           void *ctx) {
  (void)call;
  (void)ctx;
  g_bytes += (double)((const Bench__Msg *)msg)->body.len;
  atomic_fetch_add(&g_msgs, 1);
}

static void single_done(mrpc_call *call, const mrpc_status *st, void *ctx) {
  (void)call;
  (void)ctx;
  g_last_ns = bench_now_ns();
  if (st->code != MRPC_STATUS_OK) {
    atomic_fetch_add(&g_errors, 1);
    fprintf(stderr, "call: status %d %s\n", st->code, st->message);
  }
  signal_done();
}

/* ---- pingpong --------------------------------------------------------- */

static int64_t g_sent_ns;

static void pingpong_message(mrpc_call *call, const ProtobufCMessage *msg,
                             void *ctx) {
  (void)ctx;
  int64_t now = bench_now_ns();
  long i = atomic_fetch_add(&g_msgs, 1);
  if (i < g_count) g_lat[i] = now - g_sent_ns;
  g_bytes += (double)((const Bench__Msg *)msg)->body.len;
  if (i + 1 < g_count) {
    g_sent_ns = bench_now_ns();
    int rc = mrpc_call_send(call, &g_msg.base);
    if (rc != 0) {
      fprintf(stderr, "pingpong send: %s\n", mrpc_strerror(rc));
      atomic_fetch_add(&g_errors, 1);
      mrpc_call_cancel(call);
    }
  } else {
    mrpc_call_close_send(call);
  }
}

static void usage(void) {
  fprintf(stderr,
          "usage: mrpc_client --target=HOST:PORT --mode=unary|stream|pingpong"
          " [--count=N] [--size=BYTES] [--conc=C] [--timeout-ms=MS]\n");
  exit(2);
}

int main(int argc, char **argv) {
  const char *target = NULL, *mode = NULL;
  long timeout_ms = 60000;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strncmp(a, "--target=", 9) == 0)
      target = a + 9;
    else if (strncmp(a, "--mode=", 7) == 0)
      mode = a + 7;
    else if (strncmp(a, "--count=", 8) == 0)
      g_count = atol(a + 8);
    else if (strncmp(a, "--size=", 7) == 0)
      g_size = atoi(a + 7);
    else if (strncmp(a, "--conc=", 7) == 0)
      g_conc = atol(a + 7);
    else if (strncmp(a, "--timeout-ms=", 13) == 0)
      timeout_ms = atol(a + 13);
    else
      usage();
  }
  if (!target || !mode || g_count < 1 || g_count > 100000000 || g_size < 0 ||
      g_size > (16 << 20) || g_conc < 1 || timeout_ms < 1)
    usage();

  uint8_t *body = calloc((size_t)g_size + 1, 1);
  g_lat = calloc((size_t)g_count, sizeof *g_lat);
  if (!body || !g_lat) return 1;
  memset(body, 'x', (size_t)g_size);
  g_msg.body.data = body;
  g_msg.body.len = (size_t)g_size;

  int rc = mrpc_channel_new(target, NULL, &g_ch);
  if (rc != 0) {
    fprintf(stderr, "mrpc_channel_new: %s\n", mrpc_strerror(rc));
    return 1;
  }
  int64_t deadline = bench_now_ns() + (int64_t)timeout_ms * 1000000;

  /* Warm-up: connects; not timed. */
  {
    mrpc_call_opts co;
    mrpc_call_opts_init(&co);
    co.timeout_ms = 10000;
    ProtobufCMessage *resp = NULL;
    mrpc_status st = {0};
    Bench__Msg small = BENCH__MSG__INIT;
    rc = mrpc_channel_unary(g_ch, &bench_methods[M_UNARY], &small.base, &co,
                            &resp, &st);
    if (rc != 0 || st.code != MRPC_STATUS_OK) {
      fprintf(stderr, "warm-up call failed: %s / status %d %s\n",
              mrpc_strerror(rc), st.code, st.message ? st.message : "");
      return 1;
    }
    protobuf_c_message_free_unpacked(resp, NULL);
    mrpc_status_free(&st);
  }

  mrpc_call_opts co;
  mrpc_call_opts_init(&co);
  co.timeout_ms = timeout_ms;
  int64_t cpu0 = bench_cpu_ns();
  g_start_ns = bench_now_ns();
  mrpc_call *call = NULL;
  long msgs = g_count;
  double p50 = 0, p99 = 0;

  if (strcmp(mode, "unary") == 0) {
    long c = g_conc < g_count ? g_conc : g_count;
    for (long i = 0; i < c; i++) unary_start_one();
  } else if (strcmp(mode, "stream") == 0) {
    static const mrpc_call_ops ops = {stream_message, NULL, NULL,
                                      single_done};
    Bench__StreamReq req = BENCH__STREAM_REQ__INIT;
    req.count = (int32_t)g_count;
    req.size = g_size;
    rc = mrpc_channel_start_call(g_ch, &bench_methods[M_STREAM], &co, &ops,
                                 NULL, &call);
    if (rc == 0) rc = mrpc_call_send(call, &req.base);
    if (rc == 0) rc = mrpc_call_close_send(call);
  } else if (strcmp(mode, "pingpong") == 0) {
    static const mrpc_call_ops ops = {pingpong_message, NULL, NULL,
                                      single_done};
    rc = mrpc_channel_start_call(g_ch, &bench_methods[M_PINGPONG], &co, &ops,
                                 NULL, &call);
    g_sent_ns = bench_now_ns();
    if (rc == 0) rc = mrpc_call_send(call, &g_msg.base);
  } else {
    usage();
  }
  if (rc != 0 && rc != MRPC_ERR_CLOSED) {
    fprintf(stderr, "%s: %s\n", mode, mrpc_strerror(rc));
    return 1;
  }
  bool finished = wait_done(deadline);
  int64_t cpu = bench_cpu_ns() - cpu0;
  if (!finished) {
    fprintf(stderr, "%s: timed out after %ld ms\n", mode, timeout_ms);
    return 1; /* exit without joining: the harness kills what is left */
  }
  int64_t wall = g_last_ns - g_start_ns;
  if (strcmp(mode, "stream") == 0) {
    msgs = atomic_load(&g_msgs);
  } else {
    p50 = bench_pct_us(g_lat, (size_t)g_count, 50);
    p99 = bench_pct_us(g_lat, (size_t)g_count, 99);
  }
  long errors = atomic_load(&g_errors);
  if (strcmp(mode, "stream") == 0 && msgs != g_count) errors++;
  bench_result(mode, msgs, errors, g_bytes, wall, cpu, p50, p99);
  mrpc_call_unref(call);
  mrpc_channel_del(g_ch);
  free(body);
  free(g_lat);
  return errors ? 1 : 0;
}
