/* libminirpc: gRPC status codes and the status of a finished call.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef MINIRPC_STATUS_H
#define MINIRPC_STATUS_H

#include <minirpc/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The 17 gRPC status codes with their wire values (statuscodes.md). */
typedef enum mrpc_status_code {
  MRPC_STATUS_OK = 0,
  MRPC_STATUS_CANCELLED = 1,
  MRPC_STATUS_UNKNOWN = 2,
  MRPC_STATUS_INVALID_ARGUMENT = 3,
  MRPC_STATUS_DEADLINE_EXCEEDED = 4,
  MRPC_STATUS_NOT_FOUND = 5,
  MRPC_STATUS_ALREADY_EXISTS = 6,
  MRPC_STATUS_PERMISSION_DENIED = 7,
  MRPC_STATUS_RESOURCE_EXHAUSTED = 8,
  MRPC_STATUS_FAILED_PRECONDITION = 9,
  MRPC_STATUS_ABORTED = 10,
  MRPC_STATUS_OUT_OF_RANGE = 11,
  MRPC_STATUS_UNIMPLEMENTED = 12,
  MRPC_STATUS_INTERNAL = 13,
  MRPC_STATUS_UNAVAILABLE = 14,
  MRPC_STATUS_DATA_LOSS = 15,
  MRPC_STATUS_UNAUTHENTICATED = 16
} mrpc_status_code;

#define MRPC_STATUS_CODE_COUNT 17

/* The canonical name of a code ("OK", "DEADLINE_EXCEEDED", ...), or NULL for
 * a value outside 0..16.  Thread-safe; the string is static. */
MRPC_EXTERN const char *mrpc_status_code_name(int code);

/* The outcome of a call.  Plain data: message is a NUL-terminated UTF-8
 * string (never NULL once filled in by the library, possibly ""), details the
 * raw bytes of grpc-status-details-bin (a serialized google.rpc.Status), or
 * NULL.  Filled by the library; release with mrpc_status_free(). */
typedef struct mrpc_status {
  mrpc_status_code code;
  char *message;
  uint8_t *details;
  size_t details_len;
} mrpc_status;

/* Sets the code and a copy of message (NULL -> ""), keeping the details.
 * For interceptors' end hooks and the like.  Returns 0 or MRPC_ERR_INVAL
 * (st NULL, code outside 0..16), MRPC_ERR_NOMEM (message then ""). */
MRPC_EXTERN int mrpc_status_set(mrpc_status *st, mrpc_status_code code,
                                const char *message);

/* Frees message and details and resets *st to OK/NULL.  NULL is a no-op.
 * Not thread-safe for the same object. */
MRPC_EXTERN void mrpc_status_free(mrpc_status *st);

#ifdef __cplusplus
}
#endif
#endif
