/* A client that keeps making grpc.testing.TestService/EmptyCall calls, one
 * at a time, for tests/lb/run.sh (servers killed and restarted under it).
 *
 *   lb_client --target=T [--lb=round_robin|pick_first] [--wait_for_ready=0|1]
 *             [--calls=N] [--interval_ms=MS] [--timeout_ms=MS]
 *             [--backoff_ms=MS] [--retry=N] [--control=DIR]
 *
 * Makes up to N calls (default 100000), MS apart (default 5), each with a
 * deadline of --timeout_ms (default 5000).  --backoff_ms sets the channel's
 * initial connection backoff (its maximum is 4 times that; default: the
 * library's).  --retry=N gives EmptyCall a retry policy: N attempts,
 * UNAVAILABLE retryable, 10-50 ms backoff.  Prints, flushed line by line:
 *   ok I PEER            call I succeeded on PEER (mrpc_call_peer)
 *   fail I CODE MESSAGE  call I ended with that status
 *   paused / resumed ready=R   see below
 *   summary ok=N failed=N
 *   peer PEER N          successful calls per peer, at the end
 * Control, with --control=DIR, checked before each call:
 *   DIR/stop    ends the run
 *   DIR/pause   the client prints "paused" and waits (no call in flight) for
 *               DIR/resume; if that file holds a number R it then waits until
 *               the channel has R READY connections (mrpc_channel_ready_count),
 *               prints "resumed ready=R", removes both files and goes on.
 * Exits 0 when the run ended (whatever the calls' statuses), 1 on a setup
 * error or a wait that timed out, 2 on a bad argument.
 * SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <minirpc/minirpc.h>

#include "test.mrpc.h"

#define MAX_PEERS 16
#define CONTROL_WAIT_MS 30000

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *g_dir;

static int control_exists(const char *name) {
  char p[4096];
  snprintf(p, sizeof p, "%s/%s", g_dir, name);
  return access(p, F_OK) == 0;
}

/* The pause handshake; 0 or -1 when a wait timed out. */
static int do_pause(mrpc_channel *ch) {
  char p[4096];
  printf("paused\n");
  int64_t until = now_ms() + CONTROL_WAIT_MS;
  while (!control_exists("resume"))
    if (now_ms() > until) return -1;
    else sleep_ms(2);
  snprintf(p, sizeof p, "%s/resume", g_dir);
  long want = -1;
  FILE *f = fopen(p, "r");
  if (f) {
    if (fscanf(f, "%ld", &want) != 1) want = -1;
    fclose(f);
  }
  if (want >= 0) {
    until = now_ms() + CONTROL_WAIT_MS;
    while ((long)mrpc_channel_ready_count(ch) != want)
      if (now_ms() > until) return -1;
      else sleep_ms(1);
  }
  unlink(p);
  snprintf(p, sizeof p, "%s/pause", g_dir);
  unlink(p);
  printf("resumed ready=%ld\n", want);
  return 0;
}

static const char *flag(const char *arg, const char *name) {
  size_t n = strlen(name);
  if (strncmp(arg, "--", 2) != 0 || strncmp(arg + 2, name, n) != 0 ||
      arg[2 + n] != '=')
    return NULL;
  return arg + 3 + n;
}

static int number(const char *v, long long *out) {
  char *end;
  *out = strtoll(v, &end, 10);
  return *v && !*end && *out >= 0;
}

int main(int argc, char **argv) {
  const char *target = NULL, *v;
  long long calls = 100000, interval = 5, timeout = 5000, wfr = 0,
            backoff = 0, retry = 0;
  mrpc_lb_policy lb = MRPC_LB_PICK_FIRST;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int ok;
    if ((v = flag(a, "target")))
      target = v, ok = 1;
    else if ((v = flag(a, "control")))
      g_dir = v, ok = 1;
    else if ((v = flag(a, "lb")))
      ok = (strcmp(v, "round_robin") == 0 && (lb = MRPC_LB_ROUND_ROBIN, 1)) ||
           strcmp(v, "pick_first") == 0;
    else if ((v = flag(a, "wait_for_ready")))
      ok = number(v, &wfr) && wfr <= 1;
    else if ((v = flag(a, "calls")))
      ok = number(v, &calls);
    else if ((v = flag(a, "interval_ms")))
      ok = number(v, &interval);
    else if ((v = flag(a, "timeout_ms")))
      ok = number(v, &timeout);
    else if ((v = flag(a, "backoff_ms")))
      ok = number(v, &backoff);
    else if ((v = flag(a, "retry")))
      ok = number(v, &retry) && retry >= 2;
    else
      ok = 0;
    if (!ok) {
      fprintf(stderr, "lb_client: bad argument '%s'\n", a);
      return 2;
    }
  }
  if (!target) {
    fprintf(stderr, "lb_client: --target is required\n");
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0); /* the script follows the lines */

  mrpc_channel_opts o;
  mrpc_channel_opts_init(&o);
  o.lb_policy = lb;
  o.backoff_initial_ms = backoff;
  o.backoff_max_ms = 4 * backoff;
  mrpc_retry_policy rp = {"/grpc.testing.TestService/EmptyCall",
                          (int)retry,
                          10,
                          50,
                          2.0,
                          MRPC_RETRY_ON(MRPC_STATUS_UNAVAILABLE)};
  if (retry) {
    o.retry_policies = &rp;
    o.n_retry_policies = 1;
  }
  mrpc_channel *ch;
  int rc = mrpc_channel_new(target, &o, &ch);
  if (rc) {
    fprintf(stderr, "lb_client: channel to %s: %s\n", target,
            mrpc_strerror(rc));
    return 1;
  }
  mrpc_call_opts co;
  mrpc_call_opts_init(&co);
  co.timeout_ms = timeout;
  co.wait_for_ready = (int)wfr;

  char peers[MAX_PEERS][64];
  long counts[MAX_PEERS] = {0};
  int n_peers = 0, status = 0;
  long n_ok = 0, n_failed = 0;
  for (long long i = 0; i < calls; i++) {
    if (g_dir && control_exists("stop")) break;
    if (g_dir && control_exists("pause") && do_pause(ch) != 0) {
      fprintf(stderr, "lb_client: control wait timed out\n");
      status = 1;
      break;
    }
    Grpc__Testing__Empty req = GRPC__TESTING__EMPTY__INIT, *resp = NULL;
    mrpc_stream *s;
    rc = grpc__testing__test_service__empty_call__open(ch, &req, &co, &s);
    if (rc) {
      fprintf(stderr, "lb_client: call: %s\n", mrpc_strerror(rc));
      status = 1;
      break;
    }
    mrpc_call *call = mrpc_call_ref(mrpc_stream_call(s)); /* for the peer */
    if (grpc__testing__test_service__empty_call__stream_recv_response(
            s, &resp) == 1)
      protobuf_c_message_free_unpacked(&resp->base, NULL);
    mrpc_status st;
    mrpc_stream_finish(s, &st);
    const char *peer = mrpc_call_peer(call);
    if (st.code == MRPC_STATUS_OK) {
      n_ok++;
      printf("ok %lld %s\n", i, peer);
      int k = 0;
      while (k < n_peers && strcmp(peers[k], peer) != 0) k++;
      if (k == n_peers && n_peers < MAX_PEERS)
        snprintf(peers[n_peers++], sizeof peers[0], "%s", peer);
      if (k < n_peers) counts[k]++;
    } else {
      n_failed++;
      printf("fail %lld %d %s\n", i, (int)st.code,
             st.message ? st.message : "");
    }
    mrpc_status_free(&st);
    mrpc_call_unref(call);
    if (interval) sleep_ms((long)interval);
  }
  printf("summary ok=%ld failed=%ld\n", n_ok, n_failed);
  for (int k = 0; k < n_peers; k++) printf("peer %s %ld\n", peers[k], counts[k]);
  mrpc_channel_del(ch);
  return status;
}
