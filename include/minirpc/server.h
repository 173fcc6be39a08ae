/* libminirpc: the server.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef MINIRPC_SERVER_H
#define MINIRPC_SERVER_H

#include <minirpc/call.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A server: N I/O threads (shared nothing; each owns its connections) and
 * a worker pool for blocking handlers.  Configure (add methods, listen)
 * before mrpc_server_start; after start only mrpc_server_shutdown and
 * mrpc_server_del may be called.  Those two are for one thread. */
typedef struct mrpc_server mrpc_server;

/* Event-driven handler: runs on the I/O thread when a call starts; must not
 * block.  It sets callbacks with mrpc_call_set_ops and answers through
 * mrpc_call_send / mrpc_call_finish, now or later (from any thread, holding
 * a reference).  A call that is never finished runs until its deadline or
 * until the client cancels it. */
typedef void (*mrpc_event_handler)(mrpc_call *call, void *user);

/* Blocking handler: runs on a worker thread; reads with mrpc_stream_recv,
 * writes with mrpc_stream_send, sets the status with mrpc_stream_set_status
 * and returns.  The stream is the library's: do not use it after return. */
typedef void (*mrpc_blocking_handler)(mrpc_stream *s, void *user);

/* How one method is served: exactly one of event and blocking, or neither
 * (the method then answers UNIMPLEMENTED). */
typedef struct mrpc_method_handler {
  mrpc_event_handler event;
  mrpc_blocking_handler blocking;
  void *user;
} mrpc_method_handler;

/* A service: plain data, usually generated.  name is "pkg.Service"; methods
 * is an array of n_methods.  Kept by pointer: must outlive the server. */
typedef struct mrpc_service {
  const char *name;
  size_t n_methods;
  const mrpc_method *methods;
} mrpc_service;

typedef struct mrpc_server_opts {
  /* sizeof(mrpc_server_opts): lets later versions add fields. */
  size_t size;
  /* I/O threads; 0 = one per core. */
  int io_threads;
  /* Worker threads for blocking handlers; grows on demand up to this; 0 =
   * 256.  Each blocking call holds a worker until its handler returns:
   * past this many, new blocking calls wait in a queue. */
  int max_workers;
  /* SETTINGS_MAX_CONCURRENT_STREAMS per connection; 0 = 100. */
  uint32_t max_concurrent_streams;
  /* Largest message accepted, bytes; 0 = 4 MiB.  Larger ones end the call
   * with RESOURCE_EXHAUSTED. */
  size_t max_recv_message;
  /* Largest message sent, bytes; 0 = unlimited (SIZE_MAX). */
  size_t max_send_message;
  /* Bytes queued per call before mrpc_call_send says MRPC_ERR_AGAIN; 0 =
   * 256 KiB.  Per connection it is 16 times that. */
  size_t send_queue_limit;
  /* NULL = libc. */
  const mrpc_allocator *alloc;
  /* Compression of responses by default, when the client accepts it
   * (per call: mrpc_call_set_compression).  Incoming compressed messages
   * are always accepted. */
  mrpc_compression compression;
  /* TLS on every listener (minirpc/tls.h: mrpc_tls_server_creds_new);
   * NULL = plaintext HTTP/2 (h2c).  The server takes a reference. */
  struct mrpc_tls_creds *tls;

  /* ---- Keepalive enforcement and connection limits (docs/security.md,
   * "Limits").  Times in ms.  For each, 0 = the default given. ---- */
  /* PERMIT_KEEPALIVE_TIME: a client PING sooner than this after its
   * previous one, with no HEADERS or DATA sent by the server in between,
   * is a strike; 0 = 5 min; < 0 = any interval is fine. */
  int64_t keepalive_min_time_ms;
  /* 1: pings while the connection has no call are held to
   * keepalive_min_time_ms too; 0 (default): to once per 2 hours. */
  int keepalive_permit_without_calls;
  /* MAX_PING_STRIKES: one more strike than this gets GOAWAY
   * ENHANCE_YOUR_CALM "too_many_pings" and the connection is closed;
   * 0 = 2; < 0 = pings are never enforced. */
  int max_ping_strikes;
  /* MAX_CONNECTION_IDLE: a connection without calls for this long gets a
   * graceful GOAWAY "max_idle"; 0 = never. */
  int64_t max_connection_idle_ms;
  /* MAX_CONNECTION_AGE: a connection this old (+-10% jitter) gets a
   * graceful GOAWAY "max_age"; 0 = never. */
  int64_t max_connection_age_ms;
  /* MAX_CONNECTION_AGE_GRACE: calls still open this long after the
   * "max_age" GOAWAY are cut (the connection is closed); 0 = no limit. */
  int64_t max_connection_age_grace_ms;
  /* A connection whose client preface and first SETTINGS do not arrive
   * within this (after the TLS handshake, if any) is closed; 0 = 10 s;
   * < 0 = no limit. */
  int64_t preface_timeout_ms;
  /* A header block (HEADERS + CONTINUATIONs) not complete this long after
   * it began gets GOAWAY ENHANCE_YOUR_CALM "header_block_timeout" and the
   * connection is closed; 0 = 10 s; < 0 = no limit. */
  int64_t header_timeout_ms;
  /* Connections open at once, over all I/O threads; one more is accepted
   * and closed at once; 0 = 32768; < 0 = no limit. */
  int max_connections;
  /* Flood budgets per connection: more than N in a burst, or more than N
   * per 10 s on average, get GOAWAY ENHANCE_YOUR_CALM and the connection
   * is closed.  0 = 100; < 0 = no limit.
   * - streams the server is made to reset (RST_STREAM it sends with a
   *   code other than NO_ERROR or CANCEL): "too_many_resets";
   * - DATA frames with no data and no END_STREAM, HEADERS or CONTINUATION
   *   frames with an empty block fragment: "too_many_empty_frames";
   * - frames of unknown (extension) types: "too_many_unknown_frames". */
  int max_reset_streams;
  int max_empty_frames;
  int max_unknown_frames;

  /* ---- Server keepalive (keepalive.md): finds clients that are gone
   * without a word (host down, network cut), whose calls would otherwise
   * wait for their deadline or TCP's own timeout. ---- */
  /* A PING once nothing has been received from the client for this long,
   * with or without calls; 0 = 2 hours (gRPC's default); < 0 = never;
   * less than 1 s is raised to 1 s. */
  int64_t keepalive_time_ms;
  /* A keepalive PING not acknowledged within this closes the connection;
   * its calls end as if the client had gone (cancelled: a blocking
   * handler sees mrpc_call_is_cancelled); 0 = 20 s. */
  int64_t keepalive_timeout_ms;

  /* ---- More flood budgets (docs/security.md): frames nghttp2 handles in
   * constant time, but without end.  GOAWAY ENHANCE_YOUR_CALM and the
   * connection closed. ---- */
  /* SETTINGS frames (not ACKs), as the budgets above: more than N in a
   * burst or per 10 s on average: "too_many_settings"; 0 = 100; < 0 = no
   * limit. */
  int max_settings_frames;
  /* PRIORITY frames, the same: "too_many_priority_frames"; 0 = 100; < 0 =
   * no limit. */
  int max_priority_frames;
  /* WINDOW_UPDATE frames: more than 100 + 2 per HEADERS frame received + N
   * per DATA frame the server has sent: "too_many_window_updates" (a
   * client reopens windows as our data arrives); 0 = 10; < 0 = no limit. */
  int max_window_updates_per_data_frame;
} mrpc_server_opts;

/* Fills *o with the defaults (size set, everything else 0 = default). */
MRPC_EXTERN void mrpc_server_opts_init(mrpc_server_opts *o);

/* Creates a server.  opts may be NULL (defaults); it is copied.  Returns 0
 * and *out, or MRPC_ERR_INVAL (bad opts), MRPC_ERR_NOMEM. */
MRPC_EXTERN int mrpc_server_new(const mrpc_server_opts *opts,
                                mrpc_server **out);

/* Registers one method.  Both structs are kept by pointer (m) or copied (h).
 * Returns 0 or MRPC_ERR_INVAL (bad path or descriptors, or both handler
 * styles set), MRPC_ERR_EXISTS (path already registered), MRPC_ERR_STATE
 * (server started), MRPC_ERR_NOMEM. */
MRPC_EXTERN int mrpc_server_add_method(mrpc_server *srv, const mrpc_method *m,
                                       const mrpc_method_handler *h);

/* Registers every method of svc; handlers is an array parallel to
 * svc->methods.  Errors as mrpc_server_add_method; on error nothing of svc
 * is registered. */
MRPC_EXTERN int mrpc_server_add_service(mrpc_server *srv,
                                        const mrpc_service *svc,
                                        const mrpc_method_handler *handlers);

/* Listens on "host:port", "[v6]:port", ":port" (all interfaces) or
 * "unix:/path".  Port 0 picks a free port, returned in *port (may be NULL).
 * Returns 0 or MRPC_ERR_ADDR, MRPC_ERR_IO (bind/listen failed; errno is
 * kept), MRPC_ERR_STATE (started), MRPC_ERR_NOMEM. */
MRPC_EXTERN int mrpc_server_listen(mrpc_server *srv, const char *addr,
                                   int *port);

/* Starts the I/O threads and returns.  Returns 0 or MRPC_ERR_STATE (no
 * listener, or already started), MRPC_ERR_IO, MRPC_ERR_NOMEM. */
MRPC_EXTERN int mrpc_server_start(mrpc_server *srv);

/* Graceful shutdown: stops accepting, sends GOAWAY (new calls get
 * UNAVAILABLE), lets calls in flight finish for up to grace_ms, then cancels
 * the rest and closes every connection.  Blocks until done.  Idempotent.
 * Returns 0. */
MRPC_EXTERN int mrpc_server_shutdown(mrpc_server *srv, int grace_ms);

/* Shuts down (grace 0) if needed and frees the server.  NULL is a no-op. */
MRPC_EXTERN void mrpc_server_del(mrpc_server *srv);

#ifdef __cplusplus
}
#endif
#endif
