/* Limits (server) and keepalive (client) of an HTTP/2 connection
 * (conn.h; the session glue is in h2.c): the frame-header scan, flood
 * budgets, ping strikes, the idle / age / grace / preface / header-block
 * timers and the client's keepalive PINGs. */
#include "conn_int.h"

#include <nghttp2/nghttp2.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* Limits (docs/security.md, "Limits"). */
#define FLOOD_WINDOW_US 10000000LL /* flood budgets: N per 10 s, burst N */
#define KILL_MS 1000               /* close this long after a fatal GOAWAY */
#define IDLE_PING_MIN_MS (2 * 3600 * 1000LL) /* pings without calls */
#define PREFACE_LEN 24
#define WU_SLACK 100 /* WINDOW_UPDATEs allowed before any DATA ratio */

int64_t mrpc__keepalive_min_time_ms = 10000;
int64_t mrpc__server_keepalive_min_time_ms = 1000;

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

void mrpc__conn_flood(mrpc__conn *c, int64_t *tat, uint32_t max,
                      const char *why) {
  if (over_budget(tat, max))
    conn_terminate(c, NGHTTP2_ENHANCE_YOUR_CALM, why);
}

/* Server: the preface (and first SETTINGS) did not come in time, or
 * (after it) a header block stayed incomplete. */
void mrpc__conn_rx_fire(mrpc__timer *t) {
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
void mrpc__conn_rx_update(mrpc__conn *c) {
  if (!c->got_settings || !c->cfg.limits->header_ms) return;
  int open = c->hdr_open ||
             (c->scan_skip && (c->scan_type == NGHTTP2_HEADERS ||
                               c->scan_type == NGHTTP2_CONTINUATION));
  if (open && !c->rx_timer.heap_idx)
    mrpc__timer_start(c->loop, &c->rx_timer,
                      mrpc__now_ms() + c->cfg.limits->header_ms,
                      mrpc__conn_rx_fire);
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
    c->headers_in++;
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
  case NGHTTP2_SETTINGS:
    if (!(flags & NGHTTP2_FLAG_ACK))
      mrpc__conn_flood(c, &c->tat_settings, l->max_settings,
                       "too_many_settings");
    break;
  case NGHTTP2_PRIORITY:
    mrpc__conn_flood(c, &c->tat_priority, l->max_priority,
                     "too_many_priority_frames");
    break;
  case NGHTTP2_WINDOW_UPDATE:
    /* Legitimate ones follow our DATA (or open a new stream's window); a
     * flood has none to follow. */
    if (l->max_wu_per_data &&
        ++c->wu_in > WU_SLACK + 2 * c->headers_in +
                         (uint64_t)l->max_wu_per_data * c->data_out)
      conn_terminate(c, NGHTTP2_ENHANCE_YOUR_CALM, "too_many_window_updates");
    break;
  default:
    if (type > NGHTTP2_CONTINUATION)
      mrpc__conn_flood(c, &c->tat_unknown, l->max_unknown,
                       "too_many_unknown_frames");
    break;
  }
  if (empty)
    mrpc__conn_flood(c, &c->tat_empty, l->max_empty, "too_many_empty_frames");
}

/* Every frame header the peer sends passes here before nghttp2 sees the
 * bytes: nghttp2 1.52 calls nothing for the frames it ignores (unknown
 * types, DATA of streams it forgot), and the header-block timer must know
 * when a frame is only partly in.  Costs a few steps per frame. */
void mrpc__conn_scan_frames(mrpc__conn *c, const uint8_t *p, size_t n) {
  while (n && !c->terminated) {
    if (c->scan_skip) {
      if (c->scan_pad) { /* a padded frame: empty if all padding */
        size_t pad = (size_t)p[0] + 1;
        if (c->scan_type == NGHTTP2_HEADERS &&
            (c->scan_pad & NGHTTP2_FLAG_PRIORITY))
          pad += 5;
        c->scan_pad = 0;
        if (c->scan_len <= pad)
          mrpc__conn_flood(c, &c->tat_empty, c->cfg.limits->max_empty,
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
  mrpc__conn_rx_update(c);
}

/* Server: a PING (not an ACK).  A8: one sooner than the minimum interval
 * after the previous one is a strike, unless the server sent HEADERS or
 * DATA in between; one strike more than allowed ends the connection. */
void mrpc__conn_ping_recv(mrpc__conn *c) {
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
void mrpc__conn_limits_start(mrpc__conn *c) {
  const mrpc__conn_limits *l = c->cfg.limits;
  int64_t now = mrpc__now_ms();
  c->last_ping_ms = PING_NEVER;
  c->idle_since_ms = now;
  c->scan_on = l->max_empty || l->max_unknown || l->header_ms ||
               l->max_settings || l->max_priority || l->max_wu_per_data;
  c->scan_skip = PREFACE_LEN;
  if (l->preface_ms && !c->tls)
    mrpc__timer_start(c->loop, &c->rx_timer, now + l->preface_ms,
                      mrpc__conn_rx_fire);
  if (l->idle_ms)
    mrpc__timer_start(c->loop, &c->idle_timer, now + l->idle_ms, idle_fire);
  if (l->age_ms)
    mrpc__timer_start(c->loop, &c->age_timer, now + jittered(l->age_ms),
                      age_fire);
}

/* Keepalive: a PING once nothing has been received for time_ms (while
 * calls are open, or always with permit_without_calls); no ACK within
 * timeout_ms closes the connection (a client's calls: UNAVAILABLE; a
 * server's: cancelled). */
void mrpc__conn_ka_fire(mrpc__timer *t) {
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
    mrpc__timer_start(c->loop, t, c->last_rx_ms + k->time_ms,
                      mrpc__conn_ka_fire);
    return;
  }
  if ((c->n_calls == 0 && !k->permit_without_calls) ||
      nghttp2_submit_ping(c->ng, NGHTTP2_FLAG_NONE, NULL) != 0) {
    mrpc__timer_start(c->loop, t, now + k->time_ms, mrpc__conn_ka_fire);
    return;
  }
  c->ka_wait_ack = 1;
  mrpc__timer_start(c->loop, t, now + k->timeout_ms, mrpc__conn_ka_fire);
  mrpc__conn_flush(c);
}

void mrpc__conn_ka_start(mrpc__conn *c) {
  c->last_rx_ms = mrpc__now_ms();
  mrpc__timer_start(c->loop, &c->ka_timer,
                    c->last_rx_ms + c->cfg.keepalive.time_ms,
                    mrpc__conn_ka_fire);
}

int mrpc__conn_got_too_many_pings(const mrpc__conn *c) {
  return c->too_many_pings;
}
