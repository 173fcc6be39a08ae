/* An HTTP/2 connection (server or client side) on one loop.  Implemented in
 * h2.c, the only file that includes nghttp2.  Loop-thread only. */
#ifndef MRPC_LIB_CONN_H
#define MRPC_LIB_CONN_H

#include "loop.h"

#include <minirpc/call.h>
#include <sys/types.h>

typedef struct mrpc__conn mrpc__conn;

/* One header field handed to the transport; copied on submit. */
typedef struct mrpc__hdr {
  const char *name;
  size_t nlen;
  const char *value;
  size_t vlen;
} mrpc__hdr;

/* What a connection tells its owner (server loop or channel). */
typedef struct mrpc__conn_owner {
  /* Server only: a request stream began; returns a new call (with the
   * transport's reference) or NULL to refuse the stream. */
  mrpc_call *(*new_call)(void *owner, mrpc__conn *c, int32_t stream_id);
  /* The connection is closed; it is freed after this returns. */
  void (*closed)(void *owner, mrpc__conn *c);
  /* Client only: the server's first SETTINGS arrived (connection ready). */
  void (*ready)(void *owner, mrpc__conn *c);
  /* Client only: GOAWAY received; no new calls on this connection. */
  void (*goaway)(void *owner, mrpc__conn *c);
} mrpc__conn_owner;

typedef struct mrpc__conn_cfg {
  int is_server;
  uint32_t max_concurrent_streams; /* server: advertised and enforced */
  uint32_t max_header_list;        /* advertised; enforced on receive */
  size_t queue_limit;              /* pause reading above this (bytes) */
  const mrpc_allocator *alloc;
  /* TLS credentials (NULL = plaintext h2c); kept alive by the owner. */
  struct mrpc_tls_creds *tls;
  const char *tls_host; /* client: name to verify and send as SNI */
} mrpc__conn_cfg;

/* Wraps a connected (server) or connecting (client) non-blocking socket.
 * Takes the fd (closed on failure too).  peer is copied.  Returns 0 and
 * *out, or MRPC_ERR_NOMEM / MRPC_ERR_IO. */
int mrpc__conn_new(mrpc__loop *loop, int fd, int connecting,
                   const mrpc__conn_cfg *cfg, const char *peer,
                   const mrpc__conn_owner *owner, void *owner_data,
                   mrpc__conn **out);

/* Closes at once: every call on it is told (connection lost), the socket
 * is closed, owner->closed runs and the memory is freed after the current
 * loop round. */
void mrpc__conn_close(mrpc__conn *c);

/* Starts a graceful close: GOAWAY notice now, the final GOAWAY shortly
 * after; the connection closes when its last stream ends. */
void mrpc__conn_shutdown(mrpc__conn *c);

/* 1 once the connection can take no new calls (closing, or GOAWAY). */
int mrpc__conn_draining(const mrpc__conn *c);
const char *mrpc__conn_peer(const mrpc__conn *c);
/* Why the connection failed or closed, when known ("" otherwise): TLS
 * handshake and record errors, handshake timeout. */
const char *mrpc__conn_error(const mrpc__conn *c);
mrpc__loop *mrpc__conn_loop(const mrpc__conn *c);
size_t mrpc__conn_stream_count(const mrpc__conn *c);

/* Client: submits a request; the call gets the transport's reference and
 * a stream id.  Returns 0 or MRPC_ERR_NOMEM / MRPC_ERR_CLOSED /
 * MRPC_ERR_PROTO. */
int mrpc__conn_submit_request(mrpc__conn *c, mrpc_call *call,
                              const mrpc__hdr *h, size_t n);

/* Server: response headers.  with_body = 0 sends them with END_STREAM
 * (trailers-only).  Returns 0 or an MRPC_ERR_*. */
int mrpc__conn_submit_response(mrpc__conn *c, mrpc_call *call,
                               const mrpc__hdr *h, size_t n, int with_body);

/* Queued data or the end of it is available for a stream whose data
 * source had nothing to give. */
void mrpc__conn_resume(mrpc__conn *c, mrpc_call *call);

/* RST_STREAM with an HTTP/2 error code (0 NO_ERROR, 8 CANCEL, ...). */
void mrpc__conn_reset(mrpc__conn *c, mrpc_call *call, uint32_t h2_error);

/* The application took n received bytes: reopen the flow-control window. */
void mrpc__conn_consume(mrpc__conn *c, mrpc_call *call, size_t n);

/* Asks for a write soon (after the current callback). */
void mrpc__conn_want_flush(mrpc__conn *c);

/* Bytes queued by calls on this connection (for read pausing). */
void mrpc__conn_queued_add(mrpc__conn *c, ssize_t delta);

#endif
