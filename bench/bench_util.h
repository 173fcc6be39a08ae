/* Small helpers shared by the bench's C programs: clocks, CPU time,
 * percentiles, the RESULT line.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

static inline int64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* CPU time (user + system, every thread) of this process, in ns. */
static inline int64_t bench_cpu_ns(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
         ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

static int bench_cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* The p-th percentile (0..100, nearest rank) of v[0..n) in us; sorts v. */
static inline double bench_pct_us(int64_t *v, size_t n, double p) {
  if (n == 0) return 0;
  qsort(v, n, sizeof *v, bench_cmp_i64);
  size_t k = (size_t)(p / 100.0 * (double)n + 0.999999);
  if (k < 1) k = 1;
  if (k > n) k = n;
  return (double)v[k - 1] / 1000.0;
}

/* One line the harness parses: key=value pairs. */
static inline void bench_result(const char *mode, long msgs, long errors,
                                double bytes, int64_t wall_ns, int64_t cpu_ns,
                                double p50_us, double p99_us) {
  double secs = (double)wall_ns / 1e9;
  printf("RESULT mode=%s msgs=%ld errors=%ld bytes=%.0f secs=%.6f rate=%.1f "
         "mbps=%.2f p50_us=%.2f p99_us=%.2f cpu_us_per_msg=%.3f\n",
         mode, msgs, errors, bytes, secs, secs > 0 ? (double)msgs / secs : 0,
         secs > 0 ? bytes / secs / 1e6 : 0, p50_us, p99_us,
         msgs > 0 ? (double)cpu_ns / 1000.0 / (double)msgs : 0);
  fflush(stdout);
}

#endif
