/* An HTTP/2 connection (server or client side) on one loop.  Implemented in
 * h2.c, conn_io.c and conn_limits.c, the only files that include nghttp2.
 * Loop-thread only. */
#ifndef MRPC_LIB_CONN_H
#define MRPC_LIB_CONN_H

#include "loop.h"

#include <minirpc/call.h>
#include <sys/types.h>

typedef struct mrpc__conn mrpc__conn;

/* One header field handed to the transport; copied on submit, except the
 * parts that flags mark as static storage, which the transport keeps
 * pointers to (a static name must be lowercase). */
typedef struct mrpc__hdr {
  const char *name;
  size_t nlen;
  const char *value;
  size_t vlen;
  unsigned flags; /* MRPC__HDR_STATIC_* */
} mrpc__hdr;
/* nghttp2's NO_COPY_NAME and NO_COPY_VALUE (h2.c checks). */
#define MRPC__HDR_STATIC_NAME 0x02u
#define MRPC__HDR_STATIC_VALUE 0x04u
#define MRPC__HDR_STATIC (MRPC__HDR_STATIC_NAME | MRPC__HDR_STATIC_VALUE)

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

/* Server-side limits (docs/security.md, "Limits"), normalized by the
 * server: 0 means off everywhere.  Kept by pointer; the owner's copy
 * outlives its connections. */
typedef struct mrpc__conn_limits {
  int64_t ping_min_ms;   /* PERMIT_KEEPALIVE_TIME (0: any interval) */
  int ping_permit_idle;  /* pings without calls are held to ping_min_ms */
  int ping_strikes;      /* MAX_PING_STRIKES; < 0: never GOAWAY */
  int64_t idle_ms;       /* MAX_CONNECTION_IDLE */
  int64_t age_ms;        /* MAX_CONNECTION_AGE (jittered by +-10%) */
  int64_t age_grace_ms;  /* MAX_CONNECTION_AGE_GRACE */
  int64_t preface_ms;    /* client preface + first SETTINGS */
  int64_t header_ms;     /* a header block that does not complete */
  uint32_t max_resets;   /* per FLOOD_WINDOW: RST_STREAM we are made to send */
  uint32_t max_empty;    /* empty DATA / HEADERS / CONTINUATION frames */
  uint32_t max_unknown;  /* frames of unknown (extension) types */
  uint32_t max_settings; /* SETTINGS frames (not ACKs) */
  uint32_t max_priority; /* PRIORITY frames */
  /* WINDOW_UPDATE frames: at most WU_SLACK + 2 per HEADERS received +
   * this many per DATA frame sent (a reader reopens windows as our DATA
   * arrives); 0: no limit. */
  uint32_t max_wu_per_data;
} mrpc__conn_limits;

/* Keepalive (keepalive.md): a client's time is clamped by the channel; a
 * server pings with or without calls (permit_without_calls). */
typedef struct mrpc__conn_keepalive {
  int64_t time_ms;    /* 0: off */
  int64_t timeout_ms; /* > 0 when time_ms is */
  int permit_without_calls;
} mrpc__conn_keepalive;

typedef struct mrpc__conn_cfg {
  int is_server;
  uint32_t max_concurrent_streams; /* server: advertised and enforced */
  uint32_t max_header_list;        /* advertised; enforced on receive */
  size_t queue_limit;              /* pause reading above this (bytes) */
  const mrpc_allocator *alloc;
  /* TLS credentials (NULL = plaintext h2c); kept alive by the owner. */
  struct mrpc_tls_creds *tls;
  const char *tls_host; /* client: name to verify and send as SNI */
  const mrpc__conn_limits *limits; /* server; NULL: none (no checks at all) */
  mrpc__conn_keepalive keepalive;
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

/* The same with the debug data of the final GOAWAY ("max_idle",
 * "max_age"; NULL: none).  why must be a static string. */
void mrpc__conn_goaway(mrpc__conn *c, const char *why);

/* Client: 1 if the peer's GOAWAY was ENHANCE_YOUR_CALM "too_many_pings"
 * (A8: the channel then doubles its keepalive time). */
int mrpc__conn_got_too_many_pings(const mrpc__conn *c);

/* The channel's floor for the keepalive time (10 s); tests lower it. */
extern int64_t mrpc__keepalive_min_time_ms;
/* The server's floor for its keepalive time (1 s, as grpc-go); tests
 * lower it. */
extern int64_t mrpc__server_keepalive_min_time_ms;
/* Tests: the keepalive time of the channel's next connection. */
struct mrpc_channel;
int64_t mrpc__channel_keepalive_time_ms(const struct mrpc_channel *ch);

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
