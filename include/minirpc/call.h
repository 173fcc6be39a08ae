/* libminirpc: methods, calls (event-driven) and streams (blocking).
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef MINIRPC_CALL_H
#define MINIRPC_CALL_H

#include <minirpc/common.h>
#include <minirpc/metadata.h>
#include <minirpc/status.h>
#include <protobuf-c/protobuf-c.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The four RPC patterns. */
typedef enum mrpc_method_kind {
  MRPC_UNARY = 0,
  MRPC_CLIENT_STREAMING = 1,
  MRPC_SERVER_STREAMING = 2,
  MRPC_BIDI_STREAMING = 3
} mrpc_method_kind;

/* Message compression (compression.md): per message, negotiated with
 * grpc-encoding / grpc-accept-encoding. */
typedef enum mrpc_compression {
  MRPC_COMPRESS_NONE = 0, /* "identity" */
  MRPC_COMPRESS_DEFLATE = 1,
  MRPC_COMPRESS_GZIP = 2
} mrpc_compression;

/* A method: plain data, usually generated.  path is "/pkg.Service/Method".
 * The descriptors say how messages are packed and unpacked; both must be
 * set.  The library keeps a pointer: the struct must outlive every server
 * and channel that uses it (generated ones are static). */
typedef struct mrpc_method {
  const char *path;
  mrpc_method_kind kind;
  const ProtobufCMessageDescriptor *request;
  const ProtobufCMessageDescriptor *response;
} mrpc_method;

/* ---------------------------------------------------------------------
 * mrpc_call: one RPC, server or client side, event-driven.
 *
 * A call lives on one I/O thread.  Its callbacks (mrpc_call_ops) always run
 * on that thread and must not block; any of them may be NULL.  The
 * mrpc_call_* functions may be called from any thread: on the I/O thread
 * they act at once, from other threads they are queued to the I/O thread in
 * the order made.  Errors are reported from what the calling thread can see;
 * an operation queued from another thread that the call can no longer take
 * when it runs (the call ended meanwhile) is dropped.  Operations on one
 * call take effect in the order they were made, whatever thread made them
 * (on the I/O thread an operation waits behind those still queued from other
 * threads).  On the I/O thread with nothing queued, mrpc_call_cancel
 * delivers on_done before it returns; no other function calls back into the
 * application synchronously.
 *
 * Received string fields must be valid UTF-8 without NUL bytes (protobuf-c
 * keeps them as C strings): a message that breaks this ends the call with
 * INTERNAL, as a message that does not parse.
 *
 * The library enforces cardinality: a second request on a unary or
 * server-streaming method, or none at all, ends the call with UNIMPLEMENTED
 * before the handler sees it (a second response at the client: INTERNAL).
 *
 * Lifetime: a call is reference-counted.  On the server the handler's
 * reference is valid until on_done returns; take mrpc_call_ref() to keep it
 * longer.  On the client, mrpc_channel_start_call() returns a reference the
 * caller must drop with mrpc_call_unref().
 * ------------------------------------------------------------------- */
typedef struct mrpc_call mrpc_call;

typedef struct mrpc_call_ops {
  /* A message arrived.  msg is borrowed: it is freed when the callback
   * returns (copy what you need, or protobuf-c pack it elsewhere). */
  void (*on_message)(mrpc_call *call, const ProtobufCMessage *msg, void *ctx);
  /* The peer will send no more messages (client: END_STREAM; on a client
   * call this comes just before on_done). */
  void (*on_half_close)(mrpc_call *call, void *ctx);
  /* The send queue went below its limit after an MRPC_ERR_AGAIN. */
  void (*on_writable)(mrpc_call *call, void *ctx);
  /* The call is over, exactly once, last.  st is the final status: on the
   * client the one received (or synthesized: DEADLINE_EXCEEDED, UNAVAILABLE,
   * CANCELLED, ...); on the server the one sent, or CANCELLED /
   * DEADLINE_EXCEEDED when the call was cut short.  st is borrowed. */
  void (*on_done)(mrpc_call *call, const mrpc_status *st, void *ctx);
} mrpc_call_ops;

/* Attaches callbacks and their context.  Server: call it from the event
 * handler before it returns (messages are delivered only after).  Client: set
 * through mrpc_channel_start_call.  ops is copied.  Returns 0 or
 * MRPC_ERR_INVAL. */
MRPC_EXTERN int mrpc_call_set_ops(mrpc_call *call, const mrpc_call_ops *ops,
                                  void *ctx);

/* Takes / drops a reference.  Thread-safe.  unref(NULL) is a no-op. */
MRPC_EXTERN mrpc_call *mrpc_call_ref(mrpc_call *call);
MRPC_EXTERN void mrpc_call_unref(mrpc_call *call);

/* Serializes msg (with the method's descriptor, at once, on the calling
 * thread) and queues it.  msg stays the caller's.  A message is accepted
 * whenever the call's queue holds less than its limit, whatever the
 * message's size.  Returns 0 or one of:
 * MRPC_ERR_AGAIN (the call's send queue is at or over its limit; nothing
 * was queued; on_writable follows once it drains below), MRPC_ERR_STATE (already
 * finished or half-closed, or a second response on a unary/client-streaming
 * server call), MRPC_ERR_CLOSED (the call is over), MRPC_ERR_TOO_LARGE,
 * MRPC_ERR_SERIALIZE (msg is not of the method's type), MRPC_ERR_NOMEM. */
MRPC_EXTERN int mrpc_call_send(mrpc_call *call, const ProtobufCMessage *msg);

/* Client: no more messages will be sent (END_STREAM).  Returns 0 or
 * MRPC_ERR_STATE / MRPC_ERR_CLOSED. */
MRPC_EXTERN int mrpc_call_close_send(mrpc_call *call);

/* Server: adds response-header metadata (sent before the first message, or
 * with the trailers-only response).  Client: adds request metadata, only
 * from an interceptor's on_start (MRPC_ERR_STATE otherwise).  Returns 0 or MRPC_ERR_INVAL /
 * MRPC_ERR_RESERVED (see mrpc_metadata_add), MRPC_ERR_STATE (headers already
 * sent), MRPC_ERR_CLOSED, MRPC_ERR_NOMEM. */
MRPC_EXTERN int mrpc_call_add_header(mrpc_call *call, const char *key,
                                     const void *value, size_t len);

/* Server: adds trailer metadata, sent with the status.  Errors as
 * mrpc_call_add_header (MRPC_ERR_STATE once finished). */
MRPC_EXTERN int mrpc_call_add_trailer(mrpc_call *call, const char *key,
                                      const void *value, size_t len);

/* Server: ends the call with a status after every queued message.  message
 * may be NULL; details (grpc-status-details-bin, a serialized
 * google.rpc.Status) may be NULL.  Both are copied.  Returns 0 or one of:
 * MRPC_ERR_INVAL (call NULL, or code outside 0..16: a server call is then
 * ended all the same, with UNKNOWN as a peer would read such a code, and
 * MRPC_FAULT_BAD_STATUS, see mrpc_call_faults), MRPC_ERR_STATE (already
 * finished), MRPC_ERR_CLOSED (cancelled, or an interceptor refused a send),
 * MRPC_ERR_NOMEM. */
MRPC_EXTERN int mrpc_call_finish(mrpc_call *call, mrpc_status_code code,
                                 const char *message, const void *details,
                                 size_t details_len);

/* Cancels the call (RST_STREAM CANCEL); on_done follows with CANCELLED
 * unless the call already ended.  Thread-safe, idempotent.  Returns 0 or
 * MRPC_ERR_CLOSED when it was already over. */
MRPC_EXTERN int mrpc_call_cancel(mrpc_call *call);

/* The method (never NULL).  Thread-safe. */
MRPC_EXTERN const mrpc_method *mrpc_call_method(const mrpc_call *call);

/* Server: the request metadata.  Client: the response headers (empty until
 * they arrive: read them in on_message or on_done).  Borrowed, read-only,
 * valid while you hold the call. */
MRPC_EXTERN const mrpc_metadata *mrpc_call_metadata(const mrpc_call *call);

/* Client: trailer metadata, complete once on_done has run.  Server: NULL. */
MRPC_EXTERN const mrpc_metadata *mrpc_call_trailers(const mrpc_call *call);

/* The peer address, "ipv4:127.0.0.1:5000", "ipv6:[::1]:5000" or
 * "unix:/path".  Client: the address of the latest attempt's connection
 * (a retry may move to another server), "" until the first attempt is on
 * one; unlike mrpc_call_peer_identity, which stays the first connection's.
 * Borrowed: valid while you hold the call, even once a later attempt
 * changes what this returns.  Thread-safe. */
MRPC_EXTERN const char *mrpc_call_peer(const mrpc_call *call);

/* Deadline as CLOCK_MONOTONIC milliseconds, or INT64_MAX for none. */
MRPC_EXTERN int64_t mrpc_call_deadline_ms(const mrpc_call *call);

/* Nonzero once the call was cancelled, its deadline passed or its connection
 * was lost.  Thread-safe. */
MRPC_EXTERN int mrpc_call_is_cancelled(const mrpc_call *call);

/* Server: compress this call's responses with alg (before the first
 * response; when the client did not list alg in grpc-accept-encoding the
 * responses go uncompressed).  Returns 0 or MRPC_ERR_INVAL, MRPC_ERR_STATE
 * (client call, or headers already sent).  Loop thread or any thread before
 * the first send. */
MRPC_EXTERN int mrpc_call_set_compression(mrpc_call *call,
                                          mrpc_compression alg);

/* Whether the following messages are compressed when the call has an
 * algorithm (default 1): compression can be turned off for one message.
 * Applies to sends made after it on the same thread.  Returns 0 or
 * MRPC_ERR_INVAL. */
MRPC_EXTERN int mrpc_call_set_message_compression(mrpc_call *call,
                                                  int enabled);

/* In on_message: 1 if the message being delivered came compressed. */
MRPC_EXTERN int mrpc_call_message_compressed(const mrpc_call *call);

/* ---------------------------------------------------------------------
 * mrpc_stream: a blocking view of a call, for worker threads.  Built on
 * mrpc_call.  Each function blocks the calling thread until the I/O thread
 * has done the work.  One thread at a time per direction: one may recv
 * while another sends.  Never call these on an I/O thread.
 * ------------------------------------------------------------------- */
typedef struct mrpc_stream mrpc_stream;

/* Waits for the next message.  Returns 1 and *out (the caller's: free with
 * protobuf_c_message_free_unpacked(*out, NULL)); 0 at the end of the peer's
 * messages; or MRPC_ERR_CLOSED when the call ended early (cancelled,
 * deadline, connection lost, or on the client a non-OK status: see
 * mrpc_stream_finish).  MRPC_ERR_NOMEM. */
MRPC_EXTERN int mrpc_stream_recv(mrpc_stream *s, ProtobufCMessage **out);

/* As mrpc_stream_recv, but *out stays the stream's (never free it): valid
 * until the next recv on s, or until mrpc_stream_finish (client); a
 * server's unary or server-streaming request until the handler returns.
 * Cheaper for that request when it is small (the library unpacks it on the
 * handler's thread into the stream's own memory, without malloc; recv
 * would copy it for the caller).  Same returns; *out is NULL unless 1 is
 * returned. */
MRPC_EXTERN int mrpc_stream_recv_borrowed(mrpc_stream *s,
                                          const ProtobufCMessage **out);

/* Sends msg, waiting while the send queue is full (flow control).  Errors as
 * mrpc_call_send, except that MRPC_ERR_AGAIN is never returned.  In a
 * server's unary or client-streaming handler the one response leaves with
 * the status, when the handler returns (the client waits for both anyway;
 * a call that ends first drops it). */
MRPC_EXTERN int mrpc_stream_send(mrpc_stream *s, const ProtobufCMessage *msg);

/* 1 if the message the last successful mrpc_stream_recv returned came
 * compressed on the wire. */
MRPC_EXTERN int mrpc_stream_last_compressed(const mrpc_stream *s);

/* The underlying call, for metadata, peer, headers and trailers.  Borrowed:
 * valid as long as the stream. */
MRPC_EXTERN mrpc_call *mrpc_stream_call(mrpc_stream *s);

/* Server: sets the status the call ends with when the handler returns.
 * Copies message and details.  Without it the call ends with UNKNOWN
 * (library-made: MRPC_FAULT_NO_STATUS, or MRPC_FAULT_BAD_STATUS when the
 * last try was a code outside 0..16; see mrpc_call_faults).
 * Returns 0 or MRPC_ERR_INVAL / MRPC_ERR_NOMEM. */
MRPC_EXTERN int mrpc_stream_set_status(mrpc_stream *s, mrpc_status_code code,
                                       const char *message,
                                       const void *details,
                                       size_t details_len);

/* Client: END_STREAM.  Returns 0 or MRPC_ERR_STATE / MRPC_ERR_CLOSED. */
MRPC_EXTERN int mrpc_stream_close_send(mrpc_stream *s);

/* Client: waits for the call to end, fills *st (the caller's: free with
 * mrpc_status_free), and frees the stream.  To read response headers and
 * trailers afterwards, take mrpc_call_ref(mrpc_stream_call(s)) first and
 * read them from the call (trailers are complete once this returns).  If messages are still unread
 * they are dropped.  st may be NULL.  Returns 0 (whatever the status) or
 * MRPC_ERR_INVAL. */
MRPC_EXTERN int mrpc_stream_finish(mrpc_stream *s, mrpc_status *st);

#ifdef __cplusplus
}
#endif
#endif
