/* libminirpc: the client channel.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef MINIRPC_CHANNEL_H
#define MINIRPC_CHANNEL_H

#include <minirpc/call.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A channel to one target.  It owns an I/O thread, connects lazily on the
 * first call, reconnects after a failure, and multiplexes many calls on a
 * connection.  Every function here is thread-safe except mrpc_channel_del. */
typedef struct mrpc_channel mrpc_channel;

typedef struct mrpc_channel_opts {
  size_t size; /* sizeof(mrpc_channel_opts) */
  /* Largest message accepted; 0 = 4 MiB. */
  size_t max_recv_message;
  /* Largest message sent; 0 = unlimited. */
  size_t max_send_message;
  /* Bytes queued per call before MRPC_ERR_AGAIN; 0 = 256 KiB. */
  size_t send_queue_limit;
  /* :authority; NULL = the target's host:port. */
  const char *authority;
  /* user-agent prefix; NULL = none (the library appends its own). */
  const char *user_agent;
  const mrpc_allocator *alloc; /* NULL = libc */
  /* Compression of requests by default (per call: mrpc_call_opts). */
  mrpc_compression compression;
  /* TLS (minirpc/tls.h: mrpc_tls_client_creds_new); NULL = plaintext
   * HTTP/2 (h2c).  The channel takes a reference.  The server certificate
   * must name the creds' server_host_override, else the host of
   * `authority` when set, else the target's host ("localhost" for unix
   * targets); that name is sent as SNI unless it is an IP address.  With an
   * override and no authority, :authority is the override. */
  struct mrpc_tls_creds *tls;
  /* Keepalive (docs/security.md, "Limits"): a PING when nothing has been
   * received for keepalive_time_ms; 0 = never (the default); less than
   * 10 s is raised to 10 s.  A GOAWAY "too_many_pings" from the server
   * doubles it for the channel's later connections. */
  int64_t keepalive_time_ms;
  /* A keepalive PING not acknowledged within this closes the connection
   * (its calls end with UNAVAILABLE); 0 = 20 s. */
  int64_t keepalive_timeout_ms;
  /* 1: keepalive pings also while the connection has no call; 0
   * (default): only while calls are open. */
  int keepalive_permit_without_calls;
} mrpc_channel_opts;

MRPC_EXTERN void mrpc_channel_opts_init(mrpc_channel_opts *o);

/* Per-call options (all optional: pass NULL for none). */
typedef struct mrpc_call_opts {
  size_t size; /* sizeof(mrpc_call_opts) */
  /* Relative timeout in ms; 0 = none.  Sent as grpc-timeout and enforced
   * locally: the call ends with DEADLINE_EXCEEDED. */
  int64_t timeout_ms;
  /* Outgoing metadata; copied at call start.  NULL = none. */
  const mrpc_metadata *metadata;
  /* Compression of this call's requests: 0 = the channel's default, else
   * the algorithm + 1 (MRPC_CALL_COMPRESS(alg)); the server is told with
   * grpc-encoding. */
  int compression;
} mrpc_call_opts;

#define MRPC_CALL_COMPRESS(alg) ((int)(alg) + 1)

MRPC_EXTERN void mrpc_call_opts_init(mrpc_call_opts *o);

/* Creates a channel to target: "host:port", "[v6]:port" or "unix:/path".
 * Nothing is connected yet.  Returns 0 and *out, or MRPC_ERR_ADDR (target
 * can not be parsed), MRPC_ERR_INVAL, MRPC_ERR_NOMEM, MRPC_ERR_IO (thread). */
MRPC_EXTERN int mrpc_channel_new(const char *target,
                                 const mrpc_channel_opts *opts,
                                 mrpc_channel **out);

/* Ends every call (those on a connection with UNAVAILABLE, those still
 * waiting for one with CANCELLED), closes connections, joins
 * the I/O thread and frees the channel.  Calls still referenced stay valid
 * to unref.  Not to be called from the channel's own callbacks.  NULL is a
 * no-op. */
MRPC_EXTERN void mrpc_channel_del(mrpc_channel *ch);

/* Event-driven call: starts m, callbacks in ops (copied) with ctx, on the
 * channel's I/O thread.  Send with mrpc_call_send, end with
 * mrpc_call_close_send; on_done comes exactly once.  *out is a reference
 * for the caller (mrpc_call_unref when done).  If this function fails no
 * callback runs.  Returns 0 or MRPC_ERR_INVAL, MRPC_ERR_SHUTDOWN,
 * MRPC_ERR_NOMEM.  Connection failures are not errors here: they arrive as
 * an UNAVAILABLE status in on_done. */
MRPC_EXTERN int mrpc_channel_start_call(mrpc_channel *ch, const mrpc_method *m,
                                        const mrpc_call_opts *opts,
                                        const mrpc_call_ops *ops, void *ctx,
                                        mrpc_call **out);

/* Blocking unary call.  On return *st holds the status (the caller frees it
 * with mrpc_status_free) and, when OK, *resp the response (free with
 * protobuf_c_message_free_unpacked(*resp, NULL)); otherwise *resp is NULL.
 * Response metadata can be had with mrpc_channel_open_stream instead.
 * Returns 0 (whatever the status) or MRPC_ERR_INVAL, MRPC_ERR_SHUTDOWN,
 * MRPC_ERR_NOMEM, MRPC_ERR_SERIALIZE (req not of m's type). */
MRPC_EXTERN int mrpc_channel_unary(mrpc_channel *ch, const mrpc_method *m,
                                   const ProtobufCMessage *req,
                                   const mrpc_call_opts *opts,
                                   ProtobufCMessage **resp, mrpc_status *st);

/* Blocking streaming call of any kind: send, close_send, recv, then
 * mrpc_stream_finish (which frees the stream).  Returns 0 and *out, or
 * MRPC_ERR_INVAL, MRPC_ERR_SHUTDOWN, MRPC_ERR_NOMEM. */
MRPC_EXTERN int mrpc_channel_open_stream(mrpc_channel *ch,
                                         const mrpc_method *m,
                                         const mrpc_call_opts *opts,
                                         mrpc_stream **out);

#ifdef __cplusplus
}
#endif
#endif
