/* grpc-timeout header: parse and format.  Pure functions. */
#ifndef MRPC_LIB_TIMEOUT_H
#define MRPC_LIB_TIMEOUT_H

#include <minirpc/common.h>

/* Parses "<1-8 digits><unit>" with unit H M S m u n into nanoseconds
 * (saturating at INT64_MAX).  Returns 0, or MRPC_ERR_PARSE for anything else
 * (empty, more than 8 digits, no or unknown unit, trailing bytes, sign,
 * spaces). */
int mrpc__timeout_parse(const uint8_t *s, size_t len, int64_t *out_ns);

/* Formats ns (> 0; <= 0 is sent as "1n") with the finest unit whose value
 * fits in 8 digits, rounding up so the peer never sees a shorter deadline.
 * Writes a NUL-terminated string into out (at least 10 bytes) and returns
 * its length. */
size_t mrpc__timeout_format(int64_t ns, char *out);

#endif
