/* libminirpc: shared definitions (visibility, API error codes, allocator).
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef MINIRPC_COMMON_H
#define MINIRPC_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define MRPC_EXTERN __attribute__((visibility("default")))
#else
#define MRPC_EXTERN
#endif

#define MRPC_VERSION_MAJOR 0
#define MRPC_VERSION_MINOR 1
#define MRPC_VERSION_PATCH 0
#define MRPC_VERSION_STRING "0.1.0"

/* API results: 0 on success, one of these (all negative, in -1..-99) on
 * failure.  They say what went wrong with a library call; the outcome of an
 * RPC is an mrpc_status_code instead (status.h).  The list is the single
 * X-macro of the project: name, value, message. */
#define MRPC_ERRORS(X)                                                       \
  X(NOMEM, -1, "out of memory")                                              \
  X(INVAL, -2, "invalid argument")                                           \
  X(AGAIN, -3, "send queue full: wait for on_writable and try again")        \
  X(STATE, -4, "operation not allowed in the call's current state")          \
  X(CLOSED, -5, "call, connection or stream is closed")                      \
  X(TOO_LARGE, -6, "message exceeds the configured size limit")              \
  X(PARSE, -7, "malformed input")                                            \
  X(IO, -8, "system I/O error")                                              \
  X(ADDR, -9, "bad or unresolvable address")                                 \
  X(PROTO, -10, "HTTP/2 or gRPC protocol error")                             \
  X(TIMEOUT, -11, "timed out")                                               \
  X(SHUTDOWN, -12, "server or channel is shutting down")                     \
  X(EXISTS, -13, "already registered")                                       \
  X(SERIALIZE, -14, "message could not be serialized or parsed")             \
  X(RESERVED, -15, "metadata key is reserved for the library")

typedef enum mrpc_err {
  MRPC_OK = 0,
#define MRPC__ERR_ENUM(name, value, msg) MRPC_ERR_##name = (value),
  MRPC_ERRORS(MRPC__ERR_ENUM)
#undef MRPC__ERR_ENUM
} mrpc_err;

/* Human-readable text for an MRPC_ERR_* value (or 0).  Never NULL; unknown
 * values give "unknown error".  Thread-safe; the string is static. */
MRPC_EXTERN const char *mrpc_strerror(int err);

/* Allocator hook.  Handed to servers and channels through their options;
 * every object they create allocates through it.  NULL means libc.
 * Functions must be thread-safe: I/O threads and workers call them
 * concurrently.  Protobuf messages handed to the application are allocated
 * with protobuf-c's default allocator so that the usual
 * protobuf_c_message_free_unpacked(msg, NULL) frees them. */
typedef struct mrpc_allocator {
  void *(*malloc)(size_t size, void *user_data);
  void *(*calloc)(size_t nmemb, size_t size, void *user_data);
  void *(*realloc)(void *ptr, size_t size, void *user_data);
  void (*free)(void *ptr, void *user_data);
  void *user_data;
} mrpc_allocator;

/* Returns the library version string ("0.1.0").  Thread-safe. */
MRPC_EXTERN const char *mrpc_version(void);

#ifdef __cplusplus
}
#endif
#endif
