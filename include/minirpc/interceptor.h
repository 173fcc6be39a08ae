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
 * them at once: they must be thread-safe and must not block.  A hook must
 * not send on, finish or cancel its own call: to end it, return a status.
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
   * keeps valid until its next on_send or on_end on this call (the message
   * is packed before either can run).  A non-OK return ends the call with
   * that status (on the I/O thread, soon after: on_done never runs inside
   * mrpc_call_send) and this send, and any later send, finish or close_send
   * of the call, fails with MRPC_ERR_CLOSED.  Send hooks never overlap the
   * end hooks of their call and never run after them. */
  mrpc_status_code (*on_send)(mrpc_call *call, void *ctx, void *call_data,
                              const ProtobufCMessage **msg,
                              const char **message);

  /* The call ends, with its final status in *st, duration_us after it
   * started.  Server: runs when the status is decided, before the trailers
   * go out: the hook may change *st (use mrpc_status_set) and add trailers
   * (mrpc_call_add_trailer); when the call was cut short (cancelled,
   * deadline, connection lost) nothing more can be sent.  Client: runs
   * before on_done; *st is what the application will see.  Free call_data
   * here: this is the last hook of the call (no on_recv or on_send of the
   * call runs after it).  Do not send, finish or cancel the call here. */
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

/* 1 for a server call, 0 for a client call (or NULL).  Thread-safe.  Lets
 * one interceptor table serve both sides. */
MRPC_EXTERN int mrpc_call_is_server(const mrpc_call *call);

/* The metadata this side sends in its headers, as it stands: client, the
 * request metadata (call options plus what earlier start hooks added);
 * server, the response headers added so far.  NULL when there is none yet.
 * Borrowed, read-only.  Call it only from a hook other than on_send (the
 * map may change on the I/O thread meanwhile otherwise). */
MRPC_EXTERN const mrpc_metadata *
mrpc_call_outgoing_metadata(const mrpc_call *call);

/* Handler mistakes the library caught on a server call, as bits.  The call
 * then ends with a status the library made up (UNKNOWN), which an end hook
 * can tell from one the handler chose; the recovery interceptor
 * (interceptors.h) turns them into INTERNAL. */
#define MRPC_FAULT_NO_STATUS 0x1u  /* blocking handler returned without a
                                      status: UNKNOWN "handler returned
                                      without a status" */
#define MRPC_FAULT_BAD_STATUS 0x2u /* status code outside 0..16 given to
                                      mrpc_call_finish (the call still ends,
                                      with UNKNOWN), or to
                                      mrpc_stream_set_status by a blocking
                                      handler that then returned without a
                                      valid one */
#define MRPC_FAULT_SERIALIZE 0x4u  /* a send got MRPC_ERR_SERIALIZE (message
                                      of the wrong type) */

/* The MRPC_FAULT_* bits of call so far (0 on the client).  Thread-safe; the
 * bits are set before the status they cause reaches the end hooks. */
MRPC_EXTERN unsigned mrpc_call_faults(const mrpc_call *call);

#ifdef __cplusplus
}
#endif
#endif
