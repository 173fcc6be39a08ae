/* HTTP/2 connections through nghttp2: the session glue (the translation
 * of nghttp2 callbacks into call events; submit, resume, reset, consume)
 * and the connection's lifetime.  Socket and TLS I/O with back-pressure
 * are in conn_io.c, the limits and keepalive in conn_limits.c; conn_int.h
 * holds what the three share.  They are the only files that include
 * nghttp2. */
#include "conn_int.h"

#include "alloc.h"
#include "call.h"
#include "tls.h"

#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define STREAM_WINDOW (1 << 20)
#define CONN_WINDOW (16 << 20)

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
  if (c->last_call == call) c->last_call = NULL;
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

/* ---- nghttp2 callbacks ---- */

/* The call of a stream.  Callbacks come in runs for one stream (a header
 * block is a callback per field): the last answer is kept, which spares
 * nghttp2's stream map lookup.  unlink_call forgets it. */
static mrpc_call *stream_call(mrpc__conn *c, int32_t sid) {
  if (sid == c->last_sid && c->last_call) return c->last_call;
  mrpc_call *call =
      sid > 0 ? nghttp2_session_get_stream_user_data(c->ng, sid) : NULL;
  if (call) {
    c->last_sid = sid;
    c->last_call = call;
  }
  return call;
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
  (void)s;
  mrpc_call *call = stream_call(ud, f->hd.stream_id);
  if (!call) return 0;
  mrpc__call_on_header(call, name, nlen, value, vlen, is_trailer(call, f));
  return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f,
                         void *ud) {
  mrpc__conn *c = ud;
  (void)s;
  switch (f->hd.type) {
  case NGHTTP2_SETTINGS:
    if (!(f->hd.flags & NGHTTP2_FLAG_ACK) && !c->got_settings) {
      c->got_settings = 1;
      if (c->cfg.limits) { /* the preface is in: header blocks from now */
        mrpc__timer_stop(c->loop, &c->rx_timer);
        mrpc__conn_rx_update(c);
      }
      if (c->cfg.keepalive.time_ms) mrpc__conn_ka_start(c);
      if (c->owner->ready) c->owner->ready(c->owner_data, c);
    }
    return 0;
  case NGHTTP2_PING:
    if (f->hd.flags & NGHTTP2_FLAG_ACK) {
      if (c->ka_wait_ack) { /* keepalive answered: the next in time_ms */
        c->ka_wait_ack = 0;
        mrpc__timer_start(c->loop, &c->ka_timer,
                          mrpc__now_ms() + c->cfg.keepalive.time_ms,
                          mrpc__conn_ka_fire);
      }
    } else if (c->cfg.limits && c->cfg.limits->ping_strikes >= 0) {
      mrpc__conn_ping_recv(c);
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
    mrpc_call *call = stream_call(c, f->hd.stream_id);
    if (!call) return 0;
    int es = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    mrpc__call_on_headers_end(call, is_trailer(call, f), es);
    if (es) mrpc__call_on_remote_end(call);
    return 0;
  }
  case NGHTTP2_DATA: {
    mrpc_call *call = stream_call(c, f->hd.stream_id);
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
  mrpc_call *call = stream_call(c, sid);
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
  (void)s;
  if (f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) {
    /* WINDOW_UPDATE budget: DATA frames sent (without a copy they are
     * counted in send_data). */
    if (f->hd.type == NGHTTP2_DATA && c->tls) c->data_out++;
    /* A8: the ping strikes reset when the server sends HEADERS or DATA. */
    c->last_ping_ms = PING_NEVER;
    c->ping_strikes = 0;
    if (f->hd.type == NGHTTP2_HEADERS && !c->cfg.is_server) {
      /* The request has left: no transparent retry after this (A6). */
      mrpc_call *call = stream_call(c, f->hd.stream_id);
      if (call) atomic_store(&call->headers_sent, 1);
    }
    if (f->hd.flags & NGHTTP2_FLAG_END_STREAM) {
      mrpc_call *call = stream_call(c, f->hd.stream_id);
      if (call) mrpc__call_on_end_sent(call);
    }
  } else if (f->hd.type == NGHTTP2_RST_STREAM && c->cfg.limits &&
             f->rst_stream.error_code != NGHTTP2_NO_ERROR &&
             f->rst_stream.error_code != NGHTTP2_CANCEL) {
    /* A stream we were made to reset (bad headers, bad frames). */
    mrpc__conn_flood(c, &c->tat_resets, c->cfg.limits->max_resets,
                     "too_many_resets");
  }
  return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t sid, uint32_t err,
                           void *ud) {
  mrpc__conn *c = ud;
  mrpc_call *call = stream_call(c, sid);
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

_Static_assert(MRPC__HDR_STATIC_NAME == NGHTTP2_NV_FLAG_NO_COPY_NAME &&
                   MRPC__HDR_STATIC_VALUE == NGHTTP2_NV_FLAG_NO_COPY_VALUE,
               "mrpc__hdr flags are nghttp2's");

/* Static parts go uncopied: nghttp2 keeps the pointers until the frame is
 * sent or dropped, and static storage outlives both. */
static void to_nv(nghttp2_nv *nv, const mrpc__hdr *h, size_t n) {
  for (size_t i = 0; i < n; i++)
    nv[i] = (nghttp2_nv){(uint8_t *)h[i].name, (uint8_t *)h[i].value,
                         h[i].nlen, h[i].vlen,
                         (uint8_t)(h[i].flags & MRPC__HDR_STATIC)};
}

static ssize_t data_read(nghttp2_session *s, int32_t sid, uint8_t *buf,
                         size_t len, uint32_t *flags,
                         nghttp2_data_source *src, void *ud) {
  mrpc__conn *c = ud;
  mrpc_call *call = src->ptr;
  int eof = 0;
  size_t n;
  if (!c->tls) {
    /* No copy into nghttp2's frame buffer: send_data copies the bytes
     * from the call's queue straight into the output buffer. */
    n = mrpc__call_ready(call, len, &eof);
    if (n) *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
  } else {
    n = mrpc__call_pull(call, buf, len, &eof);
  }
  if (n == 0 && !eof) return NGHTTP2_ERR_DEFERRED;
  if (eof) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (call->is_server) {
      mrpc__hdrbuf hb;
      mrpc__hdrbuf_init(&hb, call->alloc);
      if (mrpc__call_build_trailers(call, &hb) == 0) {
        nghttp2_nv nv[hb.n ? hb.n : 1];
        to_nv(nv, hb.h, hb.n);
        if (nghttp2_submit_trailer(s, sid, nv, hb.n) == 0)
          *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      }
      mrpc__hdrbuf_free(&hb);
    }
  }
  return (ssize_t)n;
}

/* A DATA frame of data_read's NO_COPY: its header, then the bytes it
 * promised, appended to the output gathered by mrpc__conn_flush (the frames
 * before it are there already).  No padding is ever asked for. */
static int send_data(nghttp2_session *s, nghttp2_frame *f,
                     const uint8_t *framehd, size_t length,
                     nghttp2_data_source *src, void *ud) {
  (void)s;
  (void)f;
  mrpc__conn *c = ud;
  if (mrpc__conn_out_reserve(c, 9 + length) != 0)
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  int eof;
  uint8_t *p = c->out + c->out_len;
  memcpy(p, framehd, 9);
  if (mrpc__call_pull(src->ptr, p + 9, length, &eof) != length)
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  c->out_len += 9 + length;
  c->data_out++;
  return 0;
}

static int submit_common(mrpc__conn *c, mrpc_call *call, const mrpc__hdr *h,
                         size_t n, int with_body, int32_t *sid) {
  if (c->closed) return MRPC_ERR_CLOSED;
  nghttp2_nv nv[n ? n : 1];
  to_nv(nv, h, n);
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
  if (c->tls) mrpc__conn_tls_goodbye(c);
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
  mrpc__conn_flush(c);
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
  mrpc__conn_flush(c);
}

static void *ng_malloc(size_t n, void *ud) { return mrpc__blk_alloc(ud, n); }
static void ng_free(void *p, void *ud) { mrpc__blk_free(ud, p); }
static void *ng_calloc(size_t m, size_t n, void *ud) {
  return mrpc__blk_calloc(ud, m, n);
}
static void *ng_realloc(void *p, size_t n, void *ud) {
  return mrpc__blk_realloc(ud, p, n);
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
  nghttp2_session_callbacks_set_send_data_callback(cbs, send_data);
  nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(
      cbs, on_invalid_frame);
  /* Windows are reopened as the application takes the data. */
  nghttp2_option_set_no_auto_window_update(opt, 1);
  /* gRPC allows any 0x20-0x7E in metadata values, edge spaces included. */
  nghttp2_option_set_no_rfc9113_leading_and_trailing_ws_validation(opt, 1);
  if (cfg->is_server)
    nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);

  /* nghttp2 allocates and frees several blocks per stream: the loop's
   * block cache recycles them. */
  nghttp2_mem mem = {loop, ng_malloc, ng_free, ng_calloc, ng_realloc};
  int rv = cfg->is_server
               ? nghttp2_session_server_new3(&c->ng, cbs, c, opt, &mem)
               : nghttp2_session_client_new3(&c->ng, cbs, c, opt, &mem);
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
  if (mrpc__io_start(loop, &c->io, fd, ev, mrpc__conn_io) != 0) {
    nghttp2_session_del(c->ng);
    close(fd);
    mrpc__tls_free(c->tls);
    mrpc__free(cfg->alloc, c);
    return MRPC_ERR_IO;
  }
  /* Server: the handshake clock starts now; client: once connected. */
  if (c->tls && !connecting)
    mrpc__timer_start(loop, &c->hs_timer, mrpc__now_ms() + c->hs_timeout_ms,
                      mrpc__conn_hs_timeout);
  if (cfg->limits) mrpc__conn_limits_start(c);
  mrpc__conn_want_flush(c);
  *out = c;
  return 0;
oom:
  close(fd);
  mrpc__tls_free(c->tls);
  mrpc__free(cfg->alloc, c);
  return MRPC_ERR_NOMEM;
}
