/* Socket and TLS I/O of an HTTP/2 connection (conn.h; the session glue is
 * in h2.c): reading into nghttp2, gathering and writing its output, the
 * TLS filter through memory BIOs (tls.c), the epoll interest and the
 * back-pressure that pauses reading. */
#include "conn_int.h"

#include "alloc.h"
#include "tls.h"

#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#define READ_BUF 16384
#define OUT_BUF_MAX 65536     /* gather mem_send output up to this */
#define READS_PER_EVENT 8     /* fairness between connections */
#define OBQ_PAUSE 1024 /* control frames queued behind a full socket */

static void tls_flush(mrpc__conn *c);
static void tls_read(mrpc__conn *c);

/* ---- socket I/O ---- */

void mrpc__conn_queued_add(mrpc__conn *c, ssize_t delta) {
  c->queued += (size_t)delta;
}

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

int mrpc__conn_out_reserve(mrpc__conn *c, size_t n) {
  size_t need = c->out_len + n;
  if (need <= c->out_cap) return 0;
  /* Grows to about OUT_BUF_MAX once, then is reused. */
  size_t cap = need > OUT_BUF_MAX ? need : OUT_BUF_MAX;
  uint8_t *o = mrpc__realloc(c->cfg.alloc, c->out, cap);
  if (!o) return -1;
  c->out = o;
  c->out_cap = cap;
  return 0;
}

/* Writes what nghttp2 has while the socket takes it. */
void mrpc__conn_flush(mrpc__conn *c) {
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
      if (mrpc__conn_out_reserve(c, (size_t)n) != 0) {
        mrpc__conn_close(c);
        return;
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
  if (!cancelled) mrpc__conn_flush(c);
}

void mrpc__conn_want_flush(mrpc__conn *c) {
  if (c->flush_posted || c->closed) return;
  c->flush_posted = 1;
  c->flush_task.fn = flush_task;
  mrpc__loop_post(c->loop, &c->flush_task);
}

/* Hands received HTTP/2 bytes to nghttp2.  Returns -1 on a fatal error
 * (the caller closes). */
static int conn_feed(mrpc__conn *c, const uint8_t *p, size_t n) {
  if (c->terminated) return 0; /* a fatal GOAWAY is queued: drop */
  if (c->scan_on) mrpc__conn_scan_frames(c, p, n);
  if (c->cfg.keepalive.time_ms) c->last_rx_ms = mrpc__now_ms();
  return nghttp2_session_mem_recv(c->ng, p, n) < 0 ? -1 : 0;
}

#define SOCK_EOF (-1)
#define SOCK_ERROR (-2)

/* One recv() for both read loops (plain and TLS): bytes read (> 0), 0 when
 * the socket has nothing now, SOCK_EOF at the end of the stream, SOCK_ERROR
 * on an error.  The caller closes on either of the last two. */
static ssize_t sock_recv(mrpc__conn *c, uint8_t *buf, size_t n) {
  for (;;) {
    ssize_t r = recv(c->io.fd, buf, n, 0);
    if (r > 0) return r;
    if (r == 0) return SOCK_EOF;
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : SOCK_ERROR;
  }
}

static void conn_read(mrpc__conn *c) {
  if (c->tls) {
    tls_read(c);
    return;
  }
  uint8_t buf[READ_BUF];
  for (int i = 0; i < READS_PER_EVENT && !c->closed && !c->read_paused;
       i++) {
    ssize_t r = sock_recv(c, buf, sizeof buf);
    if (r == 0) break;
    if (r < 0) {
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
  mrpc__conn_flush(c);
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

void mrpc__conn_hs_timeout(mrpc__timer *t) {
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
                      mrpc__now_ms() + c->cfg.limits->preface_ms,
                      mrpc__conn_rx_fire);
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
    ssize_t r = sock_recv(c, buf, sizeof buf);
    if (r == 0) break;
    if (r < 0) {
      if (r == SOCK_EOF && !c->tls_ready && !c->err[0])
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
  mrpc__conn_flush(c);
}

/* From mrpc__conn_close: close_notify, then one non-blocking try at what
 * is queued (an alert after a failed handshake). */
void mrpc__conn_tls_goodbye(mrpc__conn *c) {
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

void mrpc__conn_io(mrpc__io *io, uint32_t events) {
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
                        mrpc__now_ms() + c->hs_timeout_ms,
                        mrpc__conn_hs_timeout);
    mrpc__conn_flush(c);
    return;
  }
  if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) conn_read(c);
  if (!c->closed && (events & EPOLLOUT)) mrpc__conn_flush(c);
}
