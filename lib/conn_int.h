/* The inside of an HTTP/2 connection (conn.h), shared by the three files
 * that implement it: h2.c (the nghttp2 session glue and the connection's
 * lifetime), conn_io.c (socket and TLS I/O with back-pressure) and
 * conn_limits.c (server limits and client keepalive).  Included only by
 * them; the rest of the library uses conn.h.  Loop-thread only. */
#ifndef MRPC_LIB_CONN_INT_H
#define MRPC_LIB_CONN_INT_H

#include "conn.h"
#include "tls.h"

#include <stddef.h>
#include <stdint.h>

#define PING_NEVER INT64_MIN /* last_ping_ms: none since HEADERS or DATA */

struct mrpc__conn {
  mrpc__loop *loop;
  mrpc__io io;
  struct nghttp2_session *ng; /* nghttp2.h is included by the .c files */
  mrpc__conn_cfg cfg;
  const mrpc__conn_owner *owner;
  void *owner_data;
  char peer[128];
  int connecting;
  int closed;
  int draining;
  int got_settings;
  int read_paused;
  size_t queued; /* bytes queued by calls, not yet given to nghttp2 */
  uint8_t *out;  /* bytes from nghttp2 the socket did not take yet */
  size_t out_len, out_off;
  int flush_posted;
  mrpc__task flush_task;
  mrpc__task free_task;
  mrpc__timer goaway_timer;
  mrpc_call *calls; /* list through conn_next/conn_prev */
  size_t n_calls;
  int32_t last_sid; /* stream_call's last answer (h2.c) */
  mrpc_call *last_call;
  /* TLS (NULL: plaintext h2c; every TLS path hangs off this pointer).
   * out then holds ciphertext; plain gathers nghttp2's output before it is
   * encrypted. */
  mrpc__tls *tls;
  int tls_ready;  /* handshake over: HTTP/2 bytes may flow */
  uint8_t *plain;
  size_t out_cap; /* allocated size of out */
  mrpc__timer hs_timer;
  int hs_timeout_ms;
  char err[256]; /* why it failed, for the owner (mrpc__conn_error) */
  /* Limits (server: cfg.limits) and keepalive (client).  Timers are armed
   * only for the options that are set. */
  const char *goaway_why; /* debug data of the final graceful GOAWAY */
  int terminated;         /* fatal GOAWAY queued: read nothing more */
  int lingering;          /* it is out: write side shut, wait for EOF */
  mrpc__timer rx_timer;   /* server: preface, then an open header block */
  mrpc__timer idle_timer; /* server: MAX_CONNECTION_IDLE */
  mrpc__timer age_timer;  /* server: MAX_CONNECTION_AGE, then its grace */
  mrpc__timer kill_timer; /* after a fatal GOAWAY that can not go out */
  int64_t idle_since_ms;
  int64_t last_ping_ms; /* server: previous PING (PING_NEVER after data) */
  int ping_strikes;
  int64_t tat_resets, tat_empty, tat_unknown; /* flood budgets (GCRA, us) */
  int64_t tat_settings, tat_priority;
  /* WINDOW_UPDATE budget: those received, HEADERS received, DATA sent */
  uint64_t wu_in, headers_in, data_out;
  /* Frame scanner (server): every frame header the peer sends. */
  int scan_on;
  uint32_t scan_skip;   /* preface bytes, then payload of the frame */
  uint8_t scan_hdr[9];
  uint8_t scan_hlen;    /* bytes of a split frame header gathered */
  uint8_t scan_type;    /* type of the frame being skipped */
  uint8_t scan_pad;     /* flags of a padded frame whose pad byte is next */
  uint32_t scan_len;    /* its length */
  int hdr_open;         /* HEADERS without END_HEADERS, no last CONTINUATION */
  /* Client keepalive. */
  mrpc__timer ka_timer;
  int64_t last_rx_ms;
  int ka_wait_ack;
  int too_many_pings; /* the peer's GOAWAY said so */
};

/* ---- conn_io.c ---- */

/* The socket's event handler (mrpc__io_start). */
void mrpc__conn_io(mrpc__io *io, uint32_t events);
/* Writes what nghttp2 has while the socket takes it. */
void mrpc__conn_flush(mrpc__conn *c);
/* Room for n more bytes at c->out + c->out_len.  0 or -1 (no memory). */
int mrpc__conn_out_reserve(mrpc__conn *c, size_t n);
/* The TLS handshake timer (hs_timer). */
void mrpc__conn_hs_timeout(mrpc__timer *t);
/* From mrpc__conn_close: close_notify and a last try at what is queued. */
void mrpc__conn_tls_goodbye(mrpc__conn *c);

/* ---- conn_limits.c ---- */

/* Server, at accept: the timers of the options that are set. */
void mrpc__conn_limits_start(mrpc__conn *c);
/* Counts an event against a flood budget; over it ends the connection. */
void mrpc__conn_flood(mrpc__conn *c, int64_t *tat, uint32_t max,
                      const char *why);
/* The preface / header-block timer (rx_timer). */
void mrpc__conn_rx_fire(mrpc__timer *t);
/* After the preface: starts or stops the header-block timer. */
void mrpc__conn_rx_update(mrpc__conn *c);
/* Every frame header the peer sends, before nghttp2 sees the bytes. */
void mrpc__conn_scan_frames(mrpc__conn *c, const uint8_t *p, size_t n);
/* Server: a PING (not an ACK) arrived: ping strikes. */
void mrpc__conn_ping_recv(mrpc__conn *c);
/* Client keepalive: starts it (first SETTINGS), and its timer (ka_timer). */
void mrpc__conn_ka_start(mrpc__conn *c);
void mrpc__conn_ka_fire(mrpc__timer *t);

#endif
