/* HTTP/2 connections through nghttp2: socket I/O with back-pressure, and
 * the translation of nghttp2 callbacks into call events.  The only file
 * that includes nghttp2. */
#include "conn.h"

#include "alloc.h"
#include "call.h"
#include "tls.h"

#include <errno.h>
#include <limits.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_BUF 16384
#define OUT_BUF_MAX 65536     /* gather mem_send output up to this */
#define READS_PER_EVENT 8     /* fairness between connections */
#define STREAM_WINDOW (1 << 20)
#define CONN_WINDOW (16 << 20)
/* Limits (docs/security.md, "Limits"). */
#define FLOOD_WINDOW_US 10000000LL /* flood budgets: N per 10 s, burst N */
#define KILL_MS 1000               /* close this long after a fatal GOAWAY */
#define IDLE_PING_MIN_MS (2 * 3600 * 1000LL) /* pings without calls */
#define PING_NEVER INT64_MIN
#define OBQ_PAUSE 1024 /* control frames queued behind a full socket */
#define PREFACE_LEN 24

int64_t mrpc__keepalive_min_time_ms = 10000;

struct mrpc__conn {
  mrpc__loop *loop;
  mrpc__io io;
  nghttp2_session *ng;
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

static void conn_io(mrpc__io *io, uint32_t events);
static void conn_flush(mrpc__conn *c);
static void tls_flush(mrpc__conn *c);
static void tls_read(mrpc__conn *c);
static void tls_goodbye(mrpc__conn *c);
static void conn_terminate(mrpc__conn *c, uint32_t code, const char *why);
static void rx_update(mrpc__conn *c);
static void ka_start(mrpc__conn *c);

/* ---- call list ---- */

static void link_call(mrpc__conn *c, mrpc_call *call, int32_t sid) {
  if (c->tls && !call->tls_peer)
    __atomic_store_n(&call->tls_peer,
                     mrpc__tls_peer_ref(mrpc__tls_peer_of(c->tls)),
                     __ATOMIC_RELEASE);
  call->conn = c;
  call->stream_id = sid;
  call->conn_prev = NULL;
  call->conn_next = c->calls;
  if (c->calls) c->calls->conn_prev = call;
  c->calls = call;
  c->n_calls++;
}

static void unlink_call(mrpc__conn *c, mrpc_call *call) {
  if (call->conn_prev)
    call->conn_prev->conn_next = call->conn_next;
  else
    c->calls = call->conn_next;
  if (call->conn_next) call->conn_next->conn_prev = call->conn_prev;
  call->conn_prev = call->conn_next = NULL;
  call->conn = NULL;
  c->queued -= call->in_conn; /* what it still had queued is not ours now */
  call->in_conn = 0;
  c->n_calls--;
  if (c->n_calls == 0 && c->cfg.limits && c->cfg.limits->idle_ms)
    c->idle_since_ms = mrpc__now_ms();
}

/* ---- limits (server) and keepalive (client) ----
 *
 * docs/security.md, "Limits".  Everything here is off unless its option
 * is set: no timer is armed and the frame scanner does not run. */

#define CONN_OF(t, field) \
  ((mrpc__conn *)((char *)(t) - offsetof(mrpc__conn, field)))

/* Flood budgets as a GCRA: each event costs FLOOD_WINDOW / max; more than
 * max within a window (a burst of max, then max per window) is over.
 * Returns 1 when over. */
static int over_budget(int64_t *tat, uint32_t max) {
  if (!max) return 0;
  int64_t now = mrpc__now_ms() * 1000;
  int64_t t = (*tat > now ? *tat : now) + FLOOD_WINDOW_US / max;
  *tat = t;
  return t - now > FLOOD_WINDOW_US;
}

static void kill_fire(mrpc__timer *t) {
  mrpc__conn *c = CONN_OF(t, kill_timer);
  if (!c->err[0])
    snprintf(c->err, sizeof c->err, "closed after GOAWAY %s", c->goaway_why);
  mrpc__conn_close(c);
}

/* Ends the connection for abuse: GOAWAY with code and why (a static
 * string) as debug data; nothing more is handed to nghttp2.  Once the
 * GOAWAY is out the write side is shut (flush_done) and the connection
 * closes at the peer's EOF, or after KILL_MS in any case. */
static void conn_terminate(mrpc__conn *c, uint32_t code, const char *why) {
  if (c->terminated || c->closed) return;
  c->terminated = 1;
  c->draining = 1;
  c->goaway_why = why;
  snprintf(c->err, sizeof c->err, "GOAWAY %s sent", why);
  nghttp2_submit_goaway(c->ng, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(c->ng), code,
                        (const uint8_t *)why, strlen(why));
  mrpc__timer_start(c->loop, &c->kill_timer, mrpc__now_ms() + KILL_MS,
                    kill_fire);
  mrpc__conn_want_flush(c);
}

static void flood(mrpc__conn *c, int64_t *tat, uint32_t max,
                  const char *why) {
  if (over_budget(tat, max))
    conn_terminate(c, NGHTTP2_ENHANCE_YOUR_CALM, why);
}

/* Server: the preface (and first SETTINGS) did not come in time, or
 * (after it) a header block stayed incomplete. */
static void rx_fire(mrpc__timer *t) {
  mrpc__conn *c = CONN_OF(t, rx_timer);
  if (c->closed) return;
  if (!c->got_settings) {
    snprintf(c->err, sizeof c->err,
             "no client preface and SETTINGS within %lld ms",
             (long long)c->cfg.limits->preface_ms);
    mrpc__conn_close(c);
    return;
  }
  conn_terminate(c, NGHTTP2_ENHANCE_YOUR_CALM, "header_block_timeout");
}

/* After the preface: the header-block timer runs while a block is open or
 * a HEADERS / CONTINUATION frame is partly received, from its start. */
static void rx_update(mrpc__conn *c) {
  if (!c->got_settings || !c->cfg.limits->header_ms) return;
  int open = c->hdr_open ||
             (c->scan_skip && (c->scan_type == NGHTTP2_HEADERS ||
                               c->scan_type == NGHTTP2_CONTINUATION));
  if (open && !c->rx_timer.heap_idx)
    mrpc__timer_start(c->loop, &c->rx_timer,
                      mrpc__now_ms() + c->cfg.limits->header_ms, rx_fire);
  else if (!open)
    mrpc__timer_stop(c->loop, &c->rx_timer);
}

/* One frame header from the peer (server, scanner on). */
static void scan_frame(mrpc__conn *c, uint32_t len, uint8_t type,
                       uint8_t flags) {
  const mrpc__conn_limits *l = c->cfg.limits;
  int empty = 0;
  switch (type) {
  case NGHTTP2_DATA:
    if (flags & NGHTTP2_FLAG_END_STREAM) break;
    if (len == 0)
      empty = 1;
    else if (flags & NGHTTP2_FLAG_PADDED)
      c->scan_pad = flags; /* empty if all padding: see the pad byte */
    break;
  case NGHTTP2_HEADERS:
    c->hdr_open = !(flags & NGHTTP2_FLAG_END_HEADERS);
    if (len == 0)
      empty = 1;
    else if (flags & NGHTTP2_FLAG_PADDED)
      c->scan_pad = flags;
    break;
  case NGHTTP2_CONTINUATION:
    if (flags & NGHTTP2_FLAG_END_HEADERS) c->hdr_open = 0;
    empty = len == 0;
    break;
  default:
    if (type > NGHTTP2_CONTINUATION)
      flood(c, &c->tat_unknown, l->max_unknown, "too_many_unknown_frames");
    break;
  }
  if (empty) flood(c, &c->tat_empty, l->max_empty, "too_many_empty_frames");
}

/* Every frame header the peer sends passes here before nghttp2 sees the
 * bytes: nghttp2 1.52 calls nothing for the frames it ignores (unknown
 * types, DATA of streams it forgot), and the header-block timer must know
 * when a frame is only partly in.  Costs a few steps per frame. */
static void scan_frames(mrpc__conn *c, const uint8_t *p, size_t n) {
  while (n && !c->terminated) {
    if (c->scan_skip) {
      if (c->scan_pad) { /* a padded frame: empty if all padding */
        size_t pad = (size_t)p[0] + 1;
        if (c->scan_type == NGHTTP2_HEADERS &&
            (c->scan_pad & NGHTTP2_FLAG_PRIORITY))
          pad += 5;
        c->scan_pad = 0;
        if (c->scan_len <= pad)
          flood(c, &c->tat_empty, c->cfg.limits->max_empty,
                "too_many_empty_frames");
      }
      size_t k = n < c->scan_skip ? n : c->scan_skip;
      c->scan_skip -= (uint32_t)k;
      p += k;
      n -= k;
      continue;
    }
    const uint8_t *h;
    if (c->scan_hlen == 0 && n >= 9) {
      h = p;
      p += 9;
      n -= 9;
    } else {
      size_t k = 9 - c->scan_hlen;
      if (k > n) k = n;
      memcpy(c->scan_hdr + c->scan_hlen, p, k);
      c->scan_hlen += (uint8_t)k;
      p += k;
      n -= k;
      if (c->scan_hlen < 9) break;
      c->scan_hlen = 0;
      h = c->scan_hdr;
    }
    c->scan_len = (uint32_t)h[0] << 16 | (uint32_t)h[1] << 8 | h[2];
    c->scan_type = h[3];
    c->scan_skip = c->scan_len;
    scan_frame(c, c->scan_len, h[3], h[4]);
  }
  rx_update(c);
}

/* Hands received HTTP/2 bytes to nghttp2.  Returns -1 on a fatal error
 * (the caller closes). */
static int conn_feed(mrpc__conn *c, const uint8_t *p, size_t n) {
  if (c->terminated) return 0; /* a fatal GOAWAY is queued: drop */
  if (c->scan_on) scan_frames(c, p, n);
  if (c->cfg.keepalive.time_ms) c->last_rx_ms = mrpc__now_ms();
  return nghttp2_session_mem_recv(c->ng, p, n) < 0 ? -1 : 0;
}

/* Server: a PING (not an ACK).  A8: one sooner than the minimum interval
 * after the previous one is a strike, unless the server sent HEADERS or
 * DATA in between; one strike more than allowed ends the connection. */
static void ping_recv(mrpc__conn *c) {
  const mrpc__conn_limits *l = c->cfg.limits;
  int64_t now = mrpc__now_ms();
  int64_t min = c->n_calls == 0 && !l->ping_permit_idle ? IDLE_PING_MIN_MS
                                                        : l->ping_min_ms;
  if (c->last_ping_ms != PING_NEVER && now - c->last_ping_ms < min)
    c->ping_strikes++;
  c->last_ping_ms = now;
  if (c->ping_strikes > l->ping_strikes)
    conn_terminate(c, NGHTTP2_ENHANCE_YOUR_CALM, "too_many_pings");
}

static void idle_fire(mrpc__timer *t) {
  mrpc__conn *c = CONN_OF(t, idle_timer);
  int64_t idle = c->cfg.limits->idle_ms, now = mrpc__now_ms();
  if (c->closed || c->draining) return;
  if (c->n_calls)
    mrpc__timer_start(c->loop, t, now + idle, idle_fire);
  else if (now - c->idle_since_ms < idle)
    mrpc__timer_start(c->loop, t, c->idle_since_ms + idle, idle_fire);
  else
    mrpc__conn_goaway(c, "max_idle");
}

static void grace_fire(mrpc__timer *t) {
  mrpc__conn *c = CONN_OF(t, age_timer);
  if (!c->err[0])
    snprintf(c->err, sizeof c->err, "max connection age grace over");
  mrpc__conn_close(c);
}

static void age_fire(mrpc__timer *t) {
  mrpc__conn *c = CONN_OF(t, age_timer);
  if (c->closed) return;
  mrpc__conn_goaway(c, "max_age");
  if (!c->closed && c->cfg.limits->age_grace_ms)
    mrpc__timer_start(c->loop, t, mrpc__now_ms() + c->cfg.limits->age_grace_ms,
                      grace_fire);
}

/* ms with +-10% jitter (MAX_CONNECTION_AGE), so that connections made
 * together do not all go at once. */
static int64_t jittered(int64_t ms) {
  static __thread uint64_t x;
  if (!x) x = ((uint64_t)mrpc__now_ms() << 20) ^ (uint64_t)(uintptr_t)&x ^ 1;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  int64_t j = ms / 10;
  return j ? ms - j + (int64_t)(x % (uint64_t)(2 * j + 1)) : ms;
}

/* Server, at accept: the timers of the options that are set.  The preface
 * clock starts now for plaintext, when the handshake is over for TLS. */
static void limits_start(mrpc__conn *c) {
  const mrpc__conn_limits *l = c->cfg.limits;
  int64_t now = mrpc__now_ms();
  c->last_ping_ms = PING_NEVER;
  c->idle_since_ms = now;
  c->scan_on = l->max_empty || l->max_unknown || l->header_ms;
  c->scan_skip = PREFACE_LEN;
  if (l->preface_ms && !c->tls)
    mrpc__timer_start(c->loop, &c->rx_timer, now + l->preface_ms, rx_fire);
  if (l->idle_ms)
    mrpc__timer_start(c->loop, &c->idle_timer, now + l->idle_ms, idle_fire);
  if (l->age_ms)
    mrpc__timer_start(c->loop, &c->age_timer, now + jittered(l->age_ms),
                      age_fire);
}

/* Client keepalive: a PING once nothing has been received for time_ms
 * (while calls are open, or always with permit_without_calls); no ACK
 * within timeout_ms closes the connection (its calls: UNAVAILABLE). */
static void ka_fire(mrpc__timer *t) {
  mrpc__conn *c = CONN_OF(t, ka_timer);
  const mrpc__conn_keepalive *k = &c->cfg.keepalive;
  int64_t now = mrpc__now_ms();
  if (c->closed) return;
  if (c->ka_wait_ack) {
    snprintf(c->err, sizeof c->err,
             "keepalive ping not acknowledged within %lld ms",
             (long long)k->timeout_ms);
    mrpc__conn_close(c);
    return;
  }
  if (now - c->last_rx_ms < k->time_ms) {
    mrpc__timer_start(c->loop, t, c->last_rx_ms + k->time_ms, ka_fire);
    return;
  }
  if ((c->n_calls == 0 && !k->permit_without_calls) ||
      nghttp2_submit_ping(c->ng, NGHTTP2_FLAG_NONE, NULL) != 0) {
    mrpc__timer_start(c->loop, t, now + k->time_ms, ka_fire);
    return;
  }
  c->ka_wait_ack = 1;
  mrpc__timer_start(c->loop, t, now + k->timeout_ms, ka_fire);
  conn_flush(c);
}

static void ka_start(mrpc__conn *c) {
  c->last_rx_ms = mrpc__now_ms();
  mrpc__timer_start(c->loop, &c->ka_timer,
                    c->last_rx_ms + c->cfg.keepalive.time_ms, ka_fire);
}

int mrpc__conn_got_too_many_pings(const mrpc__conn *c) {
  return c->too_many_pings;
}

/* ---- nghttp2 callbacks ---- */

static mrpc_call *stream_call(nghttp2_session *s, int32_t sid) {
  return sid > 0 ? nghttp2_session_get_stream_user_data(s, sid) : NULL;
}

/* Trailers: a second header block, or on the client a trailers-only
 * response (one block with END_STREAM). */
static int is_trailer(const mrpc_call *call, const nghttp2_frame *f) {
  if (f->headers.cat == NGHTTP2_HCAT_HEADERS && call->got_headers) return 1;
  return !call->is_server && (f->hd.flags & NGHTTP2_FLAG_END_STREAM);
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f,
                            void *ud) {
  mrpc__conn *c = ud;
  if (!c->cfg.is_server || f->hd.type != NGHTTP2_HEADERS ||
      f->headers.cat != NGHTTP2_HCAT_REQUEST)
    return 0;
  mrpc_call *call = c->owner->new_call(c->owner_data, c, f->hd.stream_id);
  if (!call) {
    nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, f->hd.stream_id,
                              NGHTTP2_REFUSED_STREAM);
    return 0;
  }
  link_call(c, call, f->hd.stream_id);
  nghttp2_session_set_stream_user_data(s, f->hd.stream_id, call);
  return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f,
                     const uint8_t *name, size_t nlen, const uint8_t *value,
                     size_t vlen, uint8_t flags, void *ud) {
  (void)flags;
  (void)ud;
  mrpc_call *call = stream_call(s, f->hd.stream_id);
  if (!call) return 0;
  mrpc__call_on_header(call, name, nlen, value, vlen, is_trailer(call, f));
  return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f,
                         void *ud) {
  mrpc__conn *c = ud;
  switch (f->hd.type) {
  case NGHTTP2_SETTINGS:
    if (!(f->hd.flags & NGHTTP2_FLAG_ACK) && !c->got_settings) {
      c->got_settings = 1;
      if (c->cfg.limits) { /* the preface is in: header blocks from now */
        mrpc__timer_stop(c->loop, &c->rx_timer);
        rx_update(c);
      }
      if (c->cfg.keepalive.time_ms) ka_start(c);
      if (c->owner->ready) c->owner->ready(c->owner_data, c);
    }
    return 0;
  case NGHTTP2_PING:
    if (f->hd.flags & NGHTTP2_FLAG_ACK) {
      if (c->ka_wait_ack) { /* keepalive answered: the next in time_ms */
        c->ka_wait_ack = 0;
        mrpc__timer_start(c->loop, &c->ka_timer,
                          mrpc__now_ms() + c->cfg.keepalive.time_ms, ka_fire);
      }
    } else if (c->cfg.limits && c->cfg.limits->ping_strikes >= 0) {
      ping_recv(c);
    }
    return 0;
  case NGHTTP2_GOAWAY:
    if (f->goaway.error_code == NGHTTP2_ENHANCE_YOUR_CALM &&
        f->goaway.opaque_data_len == 14 &&
        memcmp(f->goaway.opaque_data, "too_many_pings", 14) == 0)
      c->too_many_pings = 1;
    c->draining = 1;
    if (c->owner->goaway) c->owner->goaway(c->owner_data, c);
    return 0;
  case NGHTTP2_HEADERS: {
    mrpc_call *call = stream_call(s, f->hd.stream_id);
    if (!call) return 0;
    int es = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    mrpc__call_on_headers_end(call, is_trailer(call, f), es);
    if (es) mrpc__call_on_remote_end(call);
    return 0;
  }
  case NGHTTP2_DATA: {
    mrpc_call *call = stream_call(s, f->hd.stream_id);
    if (call && (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
      mrpc__call_on_remote_end(call);
    return 0;
  }
  default:
    return 0;
  }
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t sid,
                         const uint8_t *data, size_t len, void *ud) {
  (void)flags;
  mrpc__conn *c = ud;
  mrpc_call *call = stream_call(s, sid);
  if (!call) {
    /* Stream already gone on our side: keep the connection window open. */
    nghttp2_session_consume_connection(s, len);
    return 0;
  }
  mrpc__call_on_data(call, data, len);
  if (!call->rx_hold || atomic_load(&call->done)) {
    nghttp2_session_consume(s, sid, len);
  } else {
    call->rx_unconsumed += len;
  }
  (void)c;
  return 0;
}

static int on_frame_send(nghttp2_session *s, const nghttp2_frame *f,
                         void *ud) {
  mrpc__conn *c = ud;
  if (f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) {
    /* A8: the ping strikes reset when the server sends HEADERS or DATA. */
    c->last_ping_ms = PING_NEVER;
    c->ping_strikes = 0;
    if (f->hd.flags & NGHTTP2_FLAG_END_STREAM) {
      mrpc_call *call = stream_call(s, f->hd.stream_id);
      if (call) mrpc__call_on_end_sent(call);
    }
  } else if (f->hd.type == NGHTTP2_RST_STREAM && c->cfg.limits &&
             f->rst_stream.error_code != NGHTTP2_NO_ERROR &&
             f->rst_stream.error_code != NGHTTP2_CANCEL) {
    /* A stream we were made to reset (bad headers, bad frames). */
    flood(c, &c->tat_resets, c->cfg.limits->max_resets, "too_many_resets");
  }
  return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t sid, uint32_t err,
                           void *ud) {
  mrpc__conn *c = ud;
  mrpc_call *call = stream_call(s, sid);
  if (!call) return 0;
  nghttp2_session_set_stream_user_data(s, sid, NULL);
  /* Bytes held back for a slow reader still count against the connection
   * window: give them back with the stream. */
  if (call->rx_unconsumed) {
    nghttp2_session_consume_connection(s, call->rx_unconsumed);
    call->rx_unconsumed = 0;
  }
  unlink_call(c, call);
  mrpc__call_on_stream_close(call, err, 0);
  mrpc_call_unref(call);
  return 0;
}

static ssize_t data_read(nghttp2_session *s, int32_t sid, uint8_t *buf,
                         size_t len, uint32_t *flags,
                         nghttp2_data_source *src, void *ud) {
  (void)ud;
  mrpc_call *call = src->ptr;
  int eof = 0;
  size_t n = mrpc__call_pull(call, buf, len, &eof);
  if (n == 0 && !eof) return NGHTTP2_ERR_DEFERRED;
  if (eof) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (call->is_server) {
      mrpc__hdrbuf hb;
      mrpc__hdrbuf_init(&hb, call->alloc);
      if (mrpc__call_build_trailers(call, &hb) == 0) {
        nghttp2_nv nv[hb.n ? hb.n : 1];
        for (size_t i = 0; i < hb.n; i++)
          nv[i] = (nghttp2_nv){(uint8_t *)hb.h[i].name,
                               (uint8_t *)hb.h[i].value, hb.h[i].nlen,
                               hb.h[i].vlen, NGHTTP2_NV_FLAG_NONE};
        if (nghttp2_submit_trailer(s, sid, nv, hb.n) == 0)
          *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      }
      mrpc__hdrbuf_free(&hb);
    }
  }
  return (ssize_t)n;
}

static int submit_common(mrpc__conn *c, mrpc_call *call, const mrpc__hdr *h,
                         size_t n, int with_body, int32_t *sid) {
  if (c->closed) return MRPC_ERR_CLOSED;
  nghttp2_nv nv[n ? n : 1];
  for (size_t i = 0; i < n; i++)
    nv[i] = (nghttp2_nv){(uint8_t *)h[i].name, (uint8_t *)h[i].value,
                         h[i].nlen, h[i].vlen, NGHTTP2_NV_FLAG_NONE};
  nghttp2_data_provider prd = {.source.ptr = call, .read_callback = data_read};
  int rv;
  if (c->cfg.is_server) {
    rv = nghttp2_submit_response(c->ng, call->stream_id, nv, n,
                                 with_body ? &prd : NULL);
  } else {
    rv = nghttp2_submit_request(c->ng, NULL, nv, n, &prd, call);
    if (rv > 0) {
      *sid = rv;
      rv = 0;
    }
  }
  if (rv != 0) return rv == NGHTTP2_ERR_NOMEM ? MRPC_ERR_NOMEM : MRPC_ERR_PROTO;
  mrpc__conn_want_flush(c);
  return 0;
}

int mrpc__conn_submit_request(mrpc__conn *c, mrpc_call *call,
                              const mrpc__hdr *h, size_t n) {
  if (c->draining) return MRPC_ERR_CLOSED;
  int32_t sid = 0;
  int rv = submit_common(c, call, h, n, 1, &sid);
  if (rv) return rv;
  mrpc_call_ref(call);
  link_call(c, call, sid);
  return 0;
}

int mrpc__conn_submit_response(mrpc__conn *c, mrpc_call *call,
                               const mrpc__hdr *h, size_t n, int with_body) {
  return submit_common(c, call, h, n, with_body, NULL);
}

void mrpc__conn_resume(mrpc__conn *c, mrpc_call *call) {
  if (c->closed || call->stream_id <= 0) return;
  nghttp2_session_resume_data(c->ng, call->stream_id);
  mrpc__conn_want_flush(c);
}

void mrpc__conn_reset(mrpc__conn *c, mrpc_call *call, uint32_t err) {
  if (c->closed || call->stream_id <= 0) return;
  nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, call->stream_id, err);
  mrpc__conn_want_flush(c);
}

void mrpc__conn_consume(mrpc__conn *c, mrpc_call *call, size_t n) {
  if (c->closed || n == 0) return;
  nghttp2_session_consume(c->ng, call->stream_id, n);
  mrpc__conn_want_flush(c);
}

void mrpc__conn_queued_add(mrpc__conn *c, ssize_t delta) {
  c->queued += (size_t)delta;
}

int mrpc__conn_draining(const mrpc__conn *c) {
  return c->closed || c->draining;
}
const char *mrpc__conn_peer(const mrpc__conn *c) { return c->peer; }
const char *mrpc__conn_error(const mrpc__conn *c) { return c->err; }
mrpc__loop *mrpc__conn_loop(const mrpc__conn *c) { return c->loop; }
size_t mrpc__conn_stream_count(const mrpc__conn *c) { return c->n_calls; }

/* ---- lifetime ---- */

static void free_task(mrpc__task *t, int cancelled) {
  (void)cancelled;
  mrpc__conn *c = (mrpc__conn *)((char *)t - offsetof(mrpc__conn, free_task));
  mrpc__tls_free(c->tls);
  mrpc__free(c->cfg.alloc, c->plain);
  mrpc__free(c->cfg.alloc, c->out);
  mrpc__free(c->cfg.alloc, c);
}

void mrpc__conn_close(mrpc__conn *c) {
  if (c->closed) return;
  c->closed = 1;
  mrpc__timer_stop(c->loop, &c->goaway_timer);
  mrpc__timer_stop(c->loop, &c->rx_timer);
  mrpc__timer_stop(c->loop, &c->idle_timer);
  mrpc__timer_stop(c->loop, &c->age_timer);
  mrpc__timer_stop(c->loop, &c->kill_timer);
  mrpc__timer_stop(c->loop, &c->ka_timer);
  mrpc__io_stop(c->loop, &c->io);
  if (c->tls) tls_goodbye(c);
  close(c->io.fd);
  c->io.fd = -1;
  while (c->calls) {
    mrpc_call *call = c->calls;
    nghttp2_session_set_stream_user_data(c->ng, call->stream_id, NULL);
    unlink_call(c, call);
    mrpc__call_on_stream_close(call, NGHTTP2_INTERNAL_ERROR, 1);
    mrpc_call_unref(call);
  }
  nghttp2_session_del(c->ng);
  c->ng = NULL;
  c->owner->closed(c->owner_data, c);
  /* Freed after this loop round: an event for it may still be in hand. */
  c->free_task.fn = free_task;
  mrpc__loop_post(c->loop, &c->free_task);
}

static void goaway_final(mrpc__timer *t) {
  mrpc__conn *c =
      (mrpc__conn *)((char *)t - offsetof(mrpc__conn, goaway_timer));
  if (c->terminated) return; /* a fatal GOAWAY went instead */
  const char *why = c->goaway_why;
  nghttp2_submit_goaway(c->ng, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(c->ng),
                        NGHTTP2_NO_ERROR, (const uint8_t *)why,
                        why ? strlen(why) : 0);
  conn_flush(c);
}

void mrpc__conn_shutdown(mrpc__conn *c) { mrpc__conn_goaway(c, NULL); }

void mrpc__conn_goaway(mrpc__conn *c, const char *why) {
  if (c->closed || c->draining) return;
  c->draining = 1;
  c->goaway_why = why;
  if (c->cfg.is_server) {
    /* Two GOAWAYs: a notice with the highest id, then the real last id
     * once requests already in flight towards us have arrived. */
    nghttp2_submit_shutdown_notice(c->ng);
    mrpc__timer_start(c->loop, &c->goaway_timer, mrpc__now_ms() + 100,
                      goaway_final);
  } else {
    nghttp2_submit_goaway(c->ng, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, NULL,
                          0);
  }
  conn_flush(c);
}

/* ---- socket I/O ---- */

static void update_interest(mrpc__conn *c) {
  uint32_t ev = 0;
  int backed_up = c->out_len > c->out_off;
  /* Stop reading while our output is blocked and a lot is queued: a peer
   * that does not read must not make us buffer without limit.  That
   * includes the control frames nghttp2 queues in answer to what it reads
   * (RST_STREAM, WINDOW_UPDATE, ...: it bounds only PING/SETTINGS ACKs). */
  size_t obq = backed_up ? nghttp2_session_get_outbound_queue_size(c->ng) : 0;
  if (backed_up &&
      (c->queued + (c->out_len - c->out_off) > c->cfg.queue_limit ||
       obq > OBQ_PAUSE))
    c->read_paused = 1;
  else if ((c->queued < c->cfg.queue_limit / 2 && obq <= OBQ_PAUSE / 2) ||
           !backed_up)
    c->read_paused = 0;
  if (!c->read_paused && !c->connecting) ev |= EPOLLIN;
  if (backed_up || c->connecting) ev |= EPOLLOUT;
  mrpc__io_set(c->loop, &c->io, ev);
}

/* After a flush: close when the session is over, else set the interest. */
static void flush_done(mrpc__conn *c) {
  if (c->terminated && !c->tls) {
    /* The fatal GOAWAY is out.  Closing with unread input would send an
     * RST that can destroy it in flight: shut the write side and drop
     * what comes until EOF (or the kill timer). */
    if (!c->lingering) {
      c->lingering = 1;
      shutdown(c->io.fd, SHUT_WR);
    }
    c->read_paused = 0;
    mrpc__io_set(c->loop, &c->io, EPOLLIN);
    return;
  }
  if (c->terminated || (!nghttp2_session_want_read(c->ng) &&
                        !nghttp2_session_want_write(c->ng))) {
    mrpc__conn_close(c);
    return;
  }
  if (c->draining && c->cfg.is_server && c->n_calls == 0 &&
      !c->goaway_timer.heap_idx) {
    /* Final GOAWAY sent and nothing left: done. */
    mrpc__conn_close(c);
    return;
  }
  update_interest(c);
}

/* Writes what nghttp2 has while the socket takes it. */
static void conn_flush(mrpc__conn *c) {
  if (c->closed || c->connecting) return;
  if (c->tls) {
    tls_flush(c);
    return;
  }
  for (;;) {
    while (c->out_off < c->out_len) {
      ssize_t w = send(c->io.fd, c->out + c->out_off, c->out_len - c->out_off,
                       MSG_NOSIGNAL);
      if (w < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          update_interest(c);
          return;
        }
        mrpc__conn_close(c);
        return;
      }
      c->out_off += (size_t)w;
    }
    c->out_off = c->out_len = 0;
    /* Gather several frames into one send(). */
    while (c->out_len < OUT_BUF_MAX) {
      const uint8_t *p;
      ssize_t n = nghttp2_session_mem_send(c->ng, &p);
      if (n < 0) {
        mrpc__conn_close(c);
        return;
      }
      if (n == 0) break;
      if (c->out_len == 0 && (size_t)n >= OUT_BUF_MAX) {
        /* Big frame: send straight from nghttp2's buffer, keep the rest. */
        ssize_t w = send(c->io.fd, p, (size_t)n, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
            errno != EINTR) {
          mrpc__conn_close(c);
          return;
        }
        if (w < 0) w = 0;
        p += w;
        n -= w;
        if (n == 0) continue;
      }
      size_t need = c->out_len + (size_t)n;
      if (need > c->out_cap) { /* grows once, then is reused */
        size_t cap = need > OUT_BUF_MAX ? need : OUT_BUF_MAX;
        uint8_t *o = mrpc__realloc(c->cfg.alloc, c->out, cap);
        if (!o) {
          mrpc__conn_close(c);
          return;
        }
        c->out = o;
        c->out_cap = cap;
      }
      memcpy(c->out + c->out_len, p, (size_t)n);
      c->out_len += (size_t)n;
    }
    if (c->out_len == 0) break;
  }
  flush_done(c);
}

static void flush_task(mrpc__task *t, int cancelled) {
  mrpc__conn *c =
      (mrpc__conn *)((char *)t - offsetof(mrpc__conn, flush_task));
  c->flush_posted = 0;
  if (!cancelled) conn_flush(c);
}

void mrpc__conn_want_flush(mrpc__conn *c) {
  if (c->flush_posted || c->closed) return;
  c->flush_posted = 1;
  c->flush_task.fn = flush_task;
  mrpc__loop_post(c->loop, &c->flush_task);
}

static void conn_read(mrpc__conn *c) {
  if (c->tls) {
    tls_read(c);
    return;
  }
  uint8_t buf[READ_BUF];
  for (int i = 0; i < READS_PER_EVENT && !c->closed && !c->read_paused;
       i++) {
    ssize_t r = recv(c->io.fd, buf, sizeof buf, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      mrpc__conn_close(c);
      return;
    }
    if (r == 0) {
      mrpc__conn_close(c);
      return;
    }
    if (conn_feed(c, buf, (size_t)r) < 0) {
      /* Every mem_recv error is fatal (<= -900: bad preface, flood,
       * callback failure, OOM): the session must not be used again. */
      mrpc__conn_close(c);
      return;
    }
    if ((size_t)r < sizeof buf) break;
  }
  conn_flush(c);
}

/* ---- TLS: the same I/O through memory BIOs (tls.c) ----
 *
 * Socket bytes go into the TLS engine's read BIO; what it decrypts goes to
 * nghttp2_session_mem_recv.  nghttp2's output is gathered (up to
 * OUT_BUF_MAX) and encrypted into the write BIO, whose bytes are moved to
 * out and sent with the same rules as plaintext: nghttp2 is asked for more
 * only when out and the write BIO are empty, and update_interest pauses
 * reading on the same conditions.  Until the handshake is over only its
 * records flow; the handshake timer closes a connection that takes too
 * long. */

#define TLS_OUT_CAP (OUT_BUF_MAX + 4096) /* ciphertext of a full gather */

static void tls_fail(mrpc__conn *c, const char *what) {
  if (!c->err[0])
    snprintf(c->err, sizeof c->err, "%s: %s", what, mrpc__tls_error(c->tls));
  mrpc__conn_close(c);
}

static void hs_timeout(mrpc__timer *t) {
  mrpc__conn *c = (mrpc__conn *)((char *)t - offsetof(mrpc__conn, hs_timer));
  if (c->closed || c->tls_ready) return;
  snprintf(c->err, sizeof c->err, "TLS handshake timed out after %d ms",
           c->hs_timeout_ms);
  mrpc__conn_close(c);
}

/* Drives the handshake.  Returns 0 when the connection was closed. */
static int tls_step(mrpc__conn *c) {
  int rv = mrpc__tls_handshake(c->tls);
  if (rv == 0) return 1;
  if (rv < 0) {
    tls_fail(c, "TLS handshake failed");
    return 0;
  }
  c->tls_ready = 1;
  mrpc__timer_stop(c->loop, &c->hs_timer);
  if (c->cfg.limits && c->cfg.limits->preface_ms && !c->got_settings)
    mrpc__timer_start(c->loop, &c->rx_timer,
                      mrpc__now_ms() + c->cfg.limits->preface_ms, rx_fire);
  return 1;
}

/* Sends out while the socket takes it.  Returns 1 when all of it went, 0
 * when the socket is full (interest set) or the connection closed. */
static int tls_send_out(mrpc__conn *c) {
  while (c->out_off < c->out_len) {
    ssize_t w = send(c->io.fd, c->out + c->out_off, c->out_len - c->out_off,
                     MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        update_interest(c);
        return 0;
      }
      mrpc__conn_close(c);
      return 0;
    }
    c->out_off += (size_t)w;
  }
  c->out_off = c->out_len = 0;
  return 1;
}

/* Moves ciphertext from the write BIO to out.  Returns 1 if it moved
 * some, 0 if there was none, -1 when the connection was closed. */
static int tls_take(mrpc__conn *c) {
  if (!mrpc__tls_out_pending(c->tls)) return 0;
  if (!c->out_cap) {
    uint8_t *o = mrpc__realloc(c->cfg.alloc, c->out, TLS_OUT_CAP);
    if (!o) {
      mrpc__conn_close(c);
      return -1;
    }
    c->out = o;
    c->out_cap = TLS_OUT_CAP;
  }
  c->out_len = mrpc__tls_out_take(c->tls, c->out, c->out_cap);
  c->out_off = 0;
  return c->out_len > 0;
}

/* Encrypts what nghttp2 has, up to about OUT_BUF_MAX.  Returns 1 if it
 * encrypted some, 0 if nghttp2 had nothing, -1 when closed. */
static int tls_encrypt(mrpc__conn *c) {
  if (!c->plain && !(c->plain = mrpc__malloc(c->cfg.alloc, OUT_BUF_MAX))) {
    mrpc__conn_close(c);
    return -1;
  }
  size_t plen = 0;
  int any = 0;
  for (;;) {
    const uint8_t *p;
    ssize_t n = nghttp2_session_mem_send(c->ng, &p);
    if (n < 0) {
      mrpc__conn_close(c);
      return -1;
    }
    if (n == 0) break;
    any = 1;
    if (plen + (size_t)n > OUT_BUF_MAX) {
      /* Full: encrypt what is gathered and this one straight from
       * nghttp2's buffer (valid until the next mem_send). */
      if ((plen && mrpc__tls_write(c->tls, c->plain, plen) != 0) ||
          mrpc__tls_write(c->tls, p, (size_t)n) != 0) {
        tls_fail(c, "TLS error");
        return -1;
      }
      plen = 0;
      break;
    }
    memcpy(c->plain + plen, p, (size_t)n);
    plen += (size_t)n;
  }
  if (plen && mrpc__tls_write(c->tls, c->plain, plen) != 0) {
    tls_fail(c, "TLS error");
    return -1;
  }
  return any;
}

static void tls_flush(mrpc__conn *c) {
  if (!c->tls_ready && !tls_step(c)) return;
  for (;;) {
    if (!tls_send_out(c)) return;
    int rv = tls_take(c);
    if (rv < 0) return;
    if (rv > 0) continue;
    if (!c->tls_ready) break;
    if ((rv = tls_encrypt(c)) < 0) return;
    if (rv == 0) break;
  }
  flush_done(c);
}

static void tls_read(mrpc__conn *c) {
  uint8_t buf[READ_BUF]; /* ciphertext in, then plaintext out */
  for (int i = 0; i < READS_PER_EVENT && !c->closed && !c->read_paused;
       i++) {
    ssize_t r = recv(c->io.fd, buf, sizeof buf, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      mrpc__conn_close(c);
      return;
    }
    if (r == 0) {
      if (!c->tls_ready && !c->err[0])
        snprintf(c->err, sizeof c->err,
                 "TLS handshake failed: the peer closed the connection");
      mrpc__conn_close(c);
      return;
    }
    if (mrpc__tls_feed(c->tls, buf, (size_t)r) != 0) {
      mrpc__conn_close(c);
      return;
    }
    if (!c->tls_ready && !tls_step(c)) return;
    /* Everything complete goes to nghttp2 now: nothing decryptable stays
     * behind in the engine while reading is paused. */
    while (c->tls_ready) {
      ssize_t n = mrpc__tls_read(c->tls, buf, sizeof buf);
      if (n == 0) break;
      if (n < 0) {
        tls_fail(c, "TLS error");
        return;
      }
      if (conn_feed(c, buf, (size_t)n) < 0) {
        mrpc__conn_close(c);
        return;
      }
      if (c->closed) return;
    }
    if ((size_t)r < sizeof buf) break;
  }
  conn_flush(c);
}

/* From mrpc__conn_close: close_notify, then one non-blocking try at what
 * is queued (an alert after a failed handshake). */
static void tls_goodbye(mrpc__conn *c) {
  mrpc__timer_stop(c->loop, &c->hs_timer);
  if (c->connecting || c->io.fd < 0) return;
  if (c->tls_ready) mrpc__tls_close_notify(c->tls);
  while (c->out_off < c->out_len) {
    ssize_t w = send(c->io.fd, c->out + c->out_off, c->out_len - c->out_off,
                     MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w <= 0) return;
    c->out_off += (size_t)w;
  }
  uint8_t buf[4096];
  size_t n;
  while ((n = mrpc__tls_out_take(c->tls, buf, sizeof buf)) > 0)
    if (send(c->io.fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)n)
      return;
}

static void conn_io(mrpc__io *io, uint32_t events) {
  mrpc__conn *c = (mrpc__conn *)((char *)io - offsetof(mrpc__conn, io));
  if (c->closed) return;
  if (c->connecting) {
    if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    int err = 0;
    socklen_t el = sizeof err;
    getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err) {
      mrpc__conn_close(c);
      return;
    }
    c->connecting = 0;
    if (c->tls)
      mrpc__timer_start(c->loop, &c->hs_timer,
                        mrpc__now_ms() + c->hs_timeout_ms, hs_timeout);
    conn_flush(c);
    return;
  }
  if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) conn_read(c);
  if (!c->closed && (events & EPOLLOUT)) conn_flush(c);
}

static int on_invalid_frame(nghttp2_session *s, const nghttp2_frame *f,
                            int lib_error, void *ud) {
  (void)s;
  (void)f;
  (void)lib_error;
  (void)ud;
  return 0;
}

int mrpc__conn_new(mrpc__loop *loop, int fd, int connecting,
                   const mrpc__conn_cfg *cfg, const char *peer,
                   const mrpc__conn_owner *owner, void *owner_data,
                   mrpc__conn **out) {
  mrpc__conn *c = mrpc__calloc(cfg->alloc, 1, sizeof *c);
  if (!c) {
    close(fd);
    return MRPC_ERR_NOMEM;
  }
  c->loop = loop;
  c->cfg = *cfg;
  c->owner = owner;
  c->owner_data = owner_data;
  c->connecting = connecting;
  c->io.fd = fd;
  snprintf(c->peer, sizeof c->peer, "%s", peer ? peer : "");
  c->cfg.tls_host = NULL; /* not kept */
  if (cfg->tls) {
    if (mrpc__tls_new(cfg->tls, cfg->tls_host, cfg->alloc, &c->tls) != 0)
      goto oom;
    c->hs_timeout_ms = mrpc__tls_creds_handshake_timeout_ms(cfg->tls);
  }

  nghttp2_session_callbacks *cbs;
  nghttp2_option *opt;
  if (nghttp2_session_callbacks_new(&cbs) != 0) goto oom;
  if (nghttp2_option_new(&opt) != 0) {
    nghttp2_session_callbacks_del(cbs);
    goto oom;
  }
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs,
                                                          on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs,
                                                            on_data_chunk);
  nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs,
                                                         on_stream_close);
  nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(
      cbs, on_invalid_frame);
  /* Windows are reopened as the application takes the data. */
  nghttp2_option_set_no_auto_window_update(opt, 1);
  /* gRPC allows any 0x20-0x7E in metadata values, edge spaces included. */
  nghttp2_option_set_no_rfc9113_leading_and_trailing_ws_validation(opt, 1);
  if (cfg->is_server)
    nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);

  nghttp2_mem mem = {0};
  (void)mem;
  int rv = cfg->is_server ? nghttp2_session_server_new2(&c->ng, cbs, c, opt)
                          : nghttp2_session_client_new2(&c->ng, cbs, c, opt);
  nghttp2_session_callbacks_del(cbs);
  nghttp2_option_del(opt);
  if (rv != 0) goto oom;

  nghttp2_settings_entry iv[4];
  size_t niv = 0;
  if (cfg->is_server)
    iv[niv++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
                                         cfg->max_concurrent_streams};
  iv[niv++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
                                       cfg->max_header_list};
  iv[niv++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE,
                                       STREAM_WINDOW};
  if (!cfg->is_server)
    iv[niv++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_ENABLE_PUSH, 0};
  if (nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, iv, niv) != 0 ||
      nghttp2_session_set_local_window_size(c->ng, NGHTTP2_FLAG_NONE, 0,
                                            CONN_WINDOW) != 0) {
    nghttp2_session_del(c->ng);
    goto oom;
  }
  uint32_t ev = connecting ? EPOLLOUT : EPOLLIN;
  if (mrpc__io_start(loop, &c->io, fd, ev, conn_io) != 0) {
    nghttp2_session_del(c->ng);
    close(fd);
    mrpc__tls_free(c->tls);
    mrpc__free(cfg->alloc, c);
    return MRPC_ERR_IO;
  }
  /* Server: the handshake clock starts now; client: once connected. */
  if (c->tls && !connecting)
    mrpc__timer_start(loop, &c->hs_timer, mrpc__now_ms() + c->hs_timeout_ms,
                      hs_timeout);
  if (cfg->limits) limits_start(c);
  mrpc__conn_want_flush(c);
  *out = c;
  return 0;
oom:
  close(fd);
  mrpc__tls_free(c->tls);
  mrpc__free(cfg->alloc, c);
  return MRPC_ERR_NOMEM;
}
