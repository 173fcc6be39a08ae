/* grpc-timeout header: "<1-8 digits><H|M|S|m|u|n>".
 * SPDX-License-Identifier: Apache-2.0 */
#include "timeout.h"

#define MAX_DIGITS 8
#define MAX_VALUE 99999999

/* Finest first, so formatting can stop at the first unit that fits. */
static const struct {
  char unit;
  int64_t ns;
} units[] = {
    {'n', 1},
    {'u', 1000},
    {'m', 1000000},
    {'S', 1000000000},
    {'M', 60LL * 1000000000},
    {'H', 3600LL * 1000000000},
};

#define NUNITS (sizeof(units) / sizeof(units[0]))

int mrpc__timeout_parse(const uint8_t *s, size_t len, int64_t *out_ns) {
  int64_t v = 0;
  size_t i, digits = len ? len - 1 : 0;
  if (!s || digits < 1 || digits > MAX_DIGITS) return MRPC_ERR_PARSE;
  for (i = 0; i < digits; i++) {
    if (s[i] < '0' || s[i] > '9') return MRPC_ERR_PARSE;
    v = v * 10 + (s[i] - '0');
  }
  for (i = 0; i < NUNITS; i++) {
    if (s[digits] != (uint8_t)units[i].unit) continue;
    /* 99999999H does not fit in int64 nanoseconds: saturate. */
    *out_ns = v > INT64_MAX / units[i].ns ? INT64_MAX : v * units[i].ns;
    return 0;
  }
  return MRPC_ERR_PARSE;
}

size_t mrpc__timeout_format(int64_t ns, char *out) {
  char tmp[MAX_DIGITS];
  int64_t v = 1;
  size_t i, n = 0, u = 0;
  if (ns > 0) {
    for (u = 0; u < NUNITS; u++) {
      /* Round up so the peer never sees a shorter deadline. */
      v = (ns - 1) / units[u].ns + 1;
      if (v <= MAX_VALUE) break;
    }
    /* INT64_MAX is ~2.6e6 hours, so the loop always breaks. */
  }
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  for (i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
  out[n] = units[u].unit;
  out[n + 1] = '\0';
  return n + 1;
}
