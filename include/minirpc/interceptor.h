/* libminirpc: interceptors, one table shape for server and client.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef MINIRPC_INTERCEPTOR_H
#define MINIRPC_INTERCEPTOR_H

#include <minirpc/call.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MRPC_INTERCEPTOR_VERSION 1

/* An interceptor: a table of optional hooks (a NULL hook passes through)
 * plus a name.  Registered with a context pointer (ctx) on a server or a
 * channel; chains run start hooks in registration order and end hooks in
 * reverse.  The table is kept by pointer and must outlive the server or
 * channel (usually static).
 *
 * Threads: hooks may run on any thread (on_send runs on the sending
 * thread; the others on the call's I/O thread, except the client's on_start,
 * which runs on the thread that starts the call), and several calls run
 * them at once: they must be thread-safe and must not block.
 *
 * Messages returned through `message` are copied when the hook returns. */
typedef struct mrpc_interceptor {
  int version; /* MRPC_INTERCEPTOR_VERSION */
  const char *name;

  /* The call starts.  Server: after routing, before the handler: the method
   * (mrpc_call_method), request metadata (mrpc_call_metadata), peer and
   * deadline are known; mrpc_call_add_header adds response headers.
   * Client: before anything is sent; mrpc_call_add_header adds request
   * metadata.  *call_data (NULL at first) is this hook's per-call slot.
   * Return MRPC_STATUS_OK to go on, or a code (and optionally *message) to
   * reject the call: the handler never runs (server) or nothing is sent
   * (client); the call ends with that status, and the end hooks of the
   * interceptors that already started run. */
  mrpc_status_code (*on_start)(mrpc_call *call, void *ctx, void **call_data,
                               const char **message);

  /* A message arrived, before the handler (server) or the application
   * (client) sees it.  The hook may replace *msg: it then frees the old one
   * with protobuf_c_message_free_unpacked(old, NULL) and puts a message of
   * the same type allocated by protobuf-c's default allocator.  A non-OK
   * return ends the call with that status. */
  mrpc_status_code (*on_recv)(mrpc_call *call, void *ctx, void *call_data,
                              ProtobufCMessage **msg, const char **message);

  /* A message is about to be serialized and sent (on the sending thread).
   * The hook may point *msg at another message of the same type, which it
   * keeps valid until the hook chain returns.  A non-OK return ends the call
   * with that status and the send fails with MRPC_ERR_CLOSED. */
  mrpc_status_code (*on_send)(mrpc_call *call, void *ctx, void *call_data,
                              const ProtobufCMessage **msg,
                              const char **message);

  /* The call ends, with its final status in *st, duration_us after it
   * started.  Server: runs when the status is decided, before the trailers
   * go out: the hook may change *st (use mrpc_status_set) and add trailers
   * (mrpc_call_add_trailer); when the call was cut short (cancelled,
   * deadline, connection lost) nothing more can be sent.  Client: runs
   * before on_done; *st is what the application will see.  Free call_data
   * here: this is the last hook of the call. */
  void (*on_end)(mrpc_call *call, void *ctx, void *call_data, mrpc_status *st,
                 int64_t duration_us);
} mrpc_interceptor;

/* Which methods an interceptor applies to.  Lists are NULL-terminated and
 * hold full method paths ("/pkg.Service/Method") or service prefixes ending
 * in '/' ("/pkg.Service/").  include NULL = every method; exclude wins over
 * include; predicate (NULL = yes) is asked last.  Kept by pointer. */
typedef struct mrpc_interceptor_filter {
  const char *const *include;
  const char *const *exclude;
  int (*predicate)(const mrpc_method *m, void *ctx);
} mrpc_interceptor_filter;

/* Appends an interceptor to the server's chain.  filter may be NULL (every
 * method).  Before mrpc_server_start only.  Returns 0 or MRPC_ERR_INVAL
 * (NULL or unknown version), MRPC_ERR_STATE (started), MRPC_ERR_NOMEM. */
struct mrpc_server;
MRPC_EXTERN int mrpc_server_add_interceptor(struct mrpc_server *srv,
                                            const mrpc_interceptor *ic,
                                            void *ctx,
                                            const mrpc_interceptor_filter *f);

/* Appends an interceptor to the channel's chain: it applies to calls started
 * after this returns.  Thread-safe with respect to starting calls.  Returns 0
 * or MRPC_ERR_INVAL, MRPC_ERR_NOMEM. */
struct mrpc_channel;
MRPC_EXTERN int mrpc_channel_add_interceptor(struct mrpc_channel *ch,
                                             const mrpc_interceptor *ic,
                                             void *ctx,
                                             const mrpc_interceptor_filter *f);

/* 1 if filter f (NULL = every method) selects m. */
MRPC_EXTERN int mrpc_interceptor_filter_match(const mrpc_interceptor_filter *f,
                                              const mrpc_method *m, void *ctx);

/* Bytes of framed messages received and sent so far by the call (5-byte
 * prefixes included).  Either pointer may be NULL.  Thread-safe. */
MRPC_EXTERN void mrpc_call_bytes(const mrpc_call *call, uint64_t *in,
                                 uint64_t *out);

#ifdef __cplusplus
}
#endif
#endif
