/* grpc.testing.TestService/EmptyCall with a retry policy, for
 * tests/retry/run.sh (the interop client has no way to set one).
 *
 *   retry_client --target=T [--max_attempts=N] [--backoff_ms=MS]
 *                [--timeout_ms=MS] [--calls=N] [--max_tokens=N]
 *                [--token_ratio_milli=N]
 *
 * --max_attempts 0 (the default): no policy; else a policy for every method
 * with N attempts, UNAVAILABLE retryable, initial and maximum backoff MS
 * (default 10), multiplier 1.  --max_tokens (0: none) and
 * --token_ratio_milli (thousandths, default 1000) set retry throttling.
 * Makes --calls calls (default 1) one after the other on one channel and
 * prints "status CODE MESSAGE" for each, then "elapsed_ms N" (all of
 * them); exits 0 whatever the statuses, 1 if a call could not be made, 2
 * on a bad argument.
 * SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <minirpc/minirpc.h>

#include "test.mrpc.h"

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "--name=N" with N a non-negative integer. */
static int int_flag(const char *arg, const char *name, long long *out) {
  size_t n = strlen(name);
  if (strncmp(arg, "--", 2) != 0 || strncmp(arg + 2, name, n) != 0 ||
      arg[2 + n] != '=')
    return 0;
  char *end;
  *out = strtoll(arg + 3 + n, &end, 10);
  return arg[3 + n] && !*end && *out >= 0 ? 1 : -1;
}

int main(int argc, char **argv) {
  const char *target = NULL;
  long long attempts = 0, backoff = 10, timeout = 10000, calls = 1;
  long long max_tokens = 0, ratio_milli = 1000;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int r = 0;
    if (strncmp(a, "--target=", 9) == 0) {
      target = a + 9;
      r = 1;
    } else if (!(r = int_flag(a, "max_attempts", &attempts)) &&
               !(r = int_flag(a, "backoff_ms", &backoff)) &&
               !(r = int_flag(a, "calls", &calls)) &&
               !(r = int_flag(a, "max_tokens", &max_tokens)) &&
               !(r = int_flag(a, "token_ratio_milli", &ratio_milli))) {
      r = int_flag(a, "timeout_ms", &timeout);
    }
    if (r != 1) {
      fprintf(stderr, "retry_client: bad argument '%s'\n", a);
      return 2;
    }
  }
  if (!target || backoff < 1 || calls < 1 || calls > 100) {
    fprintf(stderr, "usage: retry_client --target=T [--max_attempts=N] "
                    "[--backoff_ms=MS] [--timeout_ms=MS] [--calls=N] "
                    "[--max_tokens=N] [--token_ratio_milli=N]\n");
    return 2;
  }
  mrpc_retry_policy p = {NULL,          (int)attempts,
                         backoff,       backoff,
                         1.0,           MRPC_RETRY_ON(MRPC_STATUS_UNAVAILABLE)};
  mrpc_channel_opts o;
  mrpc_channel_opts_init(&o);
  if (attempts) {
    o.retry_policies = &p;
    o.n_retry_policies = 1;
  }
  o.retry_max_tokens = (int)max_tokens;
  o.retry_token_ratio = (double)ratio_milli / 1000;
  mrpc_channel *ch;
  int rc = mrpc_channel_new(target, &o, &ch);
  if (rc) {
    fprintf(stderr, "retry_client: channel: %s\n", mrpc_strerror(rc));
    return 1;
  }
  mrpc_call_opts co;
  mrpc_call_opts_init(&co);
  co.timeout_ms = timeout;
  Grpc__Testing__Empty req = GRPC__TESTING__EMPTY__INIT, *resp = NULL;
  mrpc_status st;
  int64_t t0 = now_ms();
  for (long long i = 0; i < calls && rc == 0; i++) {
    resp = NULL;
    rc = grpc__testing__test_service__empty_call__call(ch, &req, &co, &resp,
                                                        &st);
    if (rc) {
      fprintf(stderr, "retry_client: call: %s\n", mrpc_strerror(rc));
      break;
    }
    printf("status %d %s\n", (int)st.code, st.message ? st.message : "");
    if (resp) protobuf_c_message_free_unpacked(&resp->base, NULL);
    mrpc_status_free(&st);
  }
  if (rc == 0) printf("elapsed_ms %lld\n", (long long)(now_ms() - t0));
  mrpc_channel_del(ch);
  return rc ? 1 : 0;
}
